"""Public entry point of the N:M structured-sparse matmul with `implementation=` dispatch.

    y[..., o] = sum_i x[..., i] * W[i, o]  (+ bias[o]),  W = nm_decompress(values, positions, m)

Backends (one file each): "pallas" (Pallas-Triton GPU kernel that decodes the weight tile in registers; interpreted
elsewhere), "xla" (decompress, then one GEMM; any platform), "dense" (one GEMM against a cached dense kernel).
"auto" picks with `auto_implementation`: the kernel on a GPU up to GPU_KERNEL_MAX_BATCH (0 for now: it measured
slower than the XLA path), else the cached dense kernel when given, else decompress-then-dot. Every backend is
differentiable in x and values (with a cached dense kernel, in x and the kernel).
"""

import jax.numpy as jnp

from pallas_kernels._common import check_implementation, default_interpret, on_gpu

from ._validate import check_nm_args
from .dense import nm_matmul_dense
from .pallas_triton import KERNEL_DTYPES, BlockSizes, nm_matmul_pallas
from .xla import nm_matmul_xla

__all__ = ["GPU_KERNEL_MAX_BATCH", "IMPLEMENTATIONS", "auto_implementation", "nm_matmul"]

IMPLEMENTATIONS = ("auto", "xla", "pallas", "dense")

# Placeholder from the roofline, not from a measured crossover. By kernels.md §4 a 2:4 bf16 layer moves 1.125 B
# per weight against 2 B dense; decode-then-MMA does the dense FLOPs, so it can only win while the dense GEMM is
# bound by reading the weight, which for 4096 x 4096 on an H100 lasts to a batch of about 64. First measurement
# (H200, JAX 0.11.2, 4096 x 4096 2:4 bf16 packed, 40 chained calls over 4 weight sets, batch 1/16/64): the kernel
# at its best tiles 58/58/69 us, XLA decompress-then-dot 39/36/43 us, a GEMM on a cached dense kernel 14/15/24 us.
# The kernel does not win yet, so "auto" never runs it (0); raise this from a measured crossover once it does.
GPU_KERNEL_MAX_BATCH = 0


def auto_implementation(batch: int, dtype=jnp.float32, *, dense_kernel: bool = False, platform=None) -> str:
    """The backend `implementation="auto"` runs for this batch and dtype on `platform` (default: JAX's default).

    `dense_kernel=True` says a cached dense kernel is available: the GEMM path then uses it ("dense").
    """
    gpu = on_gpu() if platform is None else platform in ("gpu", "cuda", "rocm")
    if gpu and batch <= GPU_KERNEL_MAX_BATCH and jnp.dtype(dtype) in KERNEL_DTYPES:
        return "pallas"
    return "dense" if dense_kernel else "xla"


def nm_matmul(
    x,
    values,
    positions,
    bias=None,
    *,
    m: int,
    packed: bool = False,
    implementation: str = "auto",
    block_sizes: BlockSizes | None = None,
    interpret: bool | None = None,
    dense_kernel=None,
):
    """Computes x @ W (+ bias) for the N:M sparse kernel W stored as (values, positions).

    Jittable, vmappable and differentiable in x, values and bias (positions get no gradient). Accumulates in
    float32 for low-precision inputs.

    Args:
      x: [..., in_features] floating point; leading dims are flattened into one batch.
      values: [n_out, in_features // m, n] floating point, 1 <= n <= m.
      positions: the in-group offsets of the values: [n_out, in_features // m, n] integers in [0, m), or with
        `packed=True` the uint8 output of `pack_positions` (m in {2, 4, 8, 16}). Concrete positions are
        range-checked; traced out-of-range ones contribute nothing.
      bias: optional [n_out].
      m: the group size M.
      packed: whether `positions` is bit-packed. The GPU kernel reads packed positions directly; they are what
        makes N:M beat dense on bandwidth (2 bits per entry for m = 4 instead of 8+).
      implementation: "auto" | "xla" | "pallas" | "dense" (see the module docstring).
      block_sizes: tiles of the "pallas" kernel; None picks `default_block_sizes`.
      interpret: run the Pallas kernel interpreted (default: True unless on a GPU).
      dense_kernel: "dense"/"auto" only: a cached W [in_features, n_out] (e.g. `nm_decompress`) to multiply
        by instead of decompressing. It must match values/positions (not checked). Differentiated calls
        rebuild W from values instead: gradients go to values, never to the cache.

    Returns:
      [..., n_out] in the promoted dtype of x and values.
    """
    check_implementation(implementation, IMPLEMENTATIONS)
    m = check_nm_args(x, values, positions, bias, m=m, packed=packed)
    if block_sizes is not None and not isinstance(block_sizes, BlockSizes):
        raise ValueError(f"block_sizes must be a BlockSizes or None, got {type(block_sizes).__name__}")
    interpret = default_interpret(interpret)
    n_in = x.shape[-1]
    n_out = values.shape[0]
    if dense_kernel is not None:
        if implementation not in ("auto", "dense"):
            raise ValueError(f"dense_kernel is only used by implementation 'dense' or 'auto', not {implementation!r}")
        if getattr(dense_kernel, "shape", None) != (n_in, n_out):
            raise ValueError(
                f"dense_kernel must have shape ({n_in}, {n_out}), got {getattr(dense_kernel, 'shape', None)}"
            )
    dtype = jnp.result_type(x.dtype, values.dtype)
    batch_shape = x.shape[:-1]
    x2d = x.reshape(-1, n_in).astype(dtype)
    if implementation == "auto":
        implementation = auto_implementation(x2d.shape[0], dtype, dense_kernel=dense_kernel is not None)
    if implementation == "pallas":
        y = nm_matmul_pallas(x2d, values, positions, m=m, packed=packed, blocks=block_sizes, interpret=interpret)
    elif implementation == "xla":
        y = nm_matmul_xla(x2d, values, positions, m=m, packed=packed)
    else:
        y = nm_matmul_dense(x2d, values, positions, m=m, packed=packed, dense_kernel=dense_kernel)
    if bias is not None:
        y = (y + bias.astype(dtype)[None, :]).astype(dtype)
    return y.reshape((*batch_shape, n_out))
