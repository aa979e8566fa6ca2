"""Public entry point of the group-shared condensed matmul with `implementation=` dispatch.

    y[..., o] = sum_j values[o, j] * x[..., indices[o // G, j]]  (+ bias[o])

G = group_size consecutive outputs share one index row, which turns the layer into a gather-GEMM.
Backends (one file each): "xla" (one feature-major gather per group + batched GEMM, any platform), "pallas"
(Pallas-Triton gather-GEMM on the tensor cores; interpreted off GPU; needs G a multiple of 16), "dense" (densify,
then one GEMM). "auto" picks with `auto_implementation`. Every backend is differentiable in x, values and bias.
"""

import jax.numpy as jnp

from pallas_kernels._common import check_dense_kernel, check_implementation, default_interpret, on_gpu

from ._validate import check_grouped_args
from .dense import grouped_condensed_matmul_dense
from .pallas_triton import BlockSizes, grouped_condensed_matmul_pallas, pallas_supports
from .xla import grouped_condensed_matmul_xla

__all__ = [
    "GPU_KERNEL_MIN_BATCH",
    "GPU_KERNEL_MIN_GROUP",
    "IMPLEMENTATIONS",
    "XLA_GATHER_MAX_BATCH",
    "auto_implementation",
    "grouped_condensed_matmul",
]

IMPLEMENTATIONS = ("auto", "xla", "pallas", "dense")

# Where "auto" runs the Pallas kernel on GPU: only where it measured faster than dense. The H100 roofline
# (kernels.md section 4) has the grouped kernel ahead of dense at every batch (4.7x at B=256, 6.1x at B=4096 for
# G=16), but the one H200 reading so far (JAX 0.11.2, 4096x4096, 90% sparse, int16 ids, default tiles, best of 3
# means of 40 back-to-back jitted calls, vs a cached dense W) is: bf16 forward at B=4096 240 us vs 170 dense at
# G=16 and 117 vs 171 at G=64; forward+backward 469 vs 1013 (G=16); f32 (both without TF32) 562 vs 2686. Smaller
# batches were not resolved (a dispatch floor of 40-60 us in that method). So: G >= 64 and B >= 4096 only, until
# `python -m benchmarks.kernels --sections structured` measures more.
GPU_KERNEL_MIN_GROUP = 64
GPU_KERNEL_MIN_BATCH = 4096

# Largest batch at which "auto" runs the XLA gather where the Pallas kernel does not apply (CPU, TPU, or a GPU
# with G not a multiple of 16). Measured on a 2-core CPU (JAX 0.10.2, fp32, 3072->768, 90% sparse, G=16, median
# of 20 jitted calls): the gather beats the per-call densify-then-GEMM 2.3x at batch 32 and ~1.1-2x at 64, and
# loses 1.2-1.7x at 128; it also beats a cached dense kernel up to 64. 32 keeps a margin below the crossover.
XLA_GATHER_MAX_BATCH = 32


def auto_implementation(batch: int, group_size: int, dtype=jnp.float32, platform=None) -> str:
    """The backend `implementation="auto"` runs for these sizes on `platform` (default: JAX's default backend)."""
    gpu = on_gpu() if platform is None else platform in ("gpu", "cuda", "rocm")
    measured_win = group_size >= GPU_KERNEL_MIN_GROUP and batch >= GPU_KERNEL_MIN_BATCH
    if gpu and pallas_supports(group_size, dtype) and measured_win:
        return "pallas"
    return "xla" if batch <= XLA_GATHER_MAX_BATCH else "dense"


def grouped_condensed_matmul(
    x,
    values,
    indices,
    bias=None,
    *,
    group_size: int,
    implementation: str = "auto",
    block_sizes: BlockSizes | None = None,
    interpret: bool | None = None,
    dense_kernel=None,
):
    """Computes y[..., o] = sum_j values[o, j] * x[..., indices[o // group_size, j]] (+ bias).

    Equal to the masked dense product `x @ W` (W[indices[o // G, j], o] = values[o, j]; duplicates add up) in
    value and in gradients with respect to `x`, `values` and `bias`. Jittable, differentiable and vmappable.
    Accumulates in float32 for low-precision inputs.

    Args:
      x: [..., in_features] floating point; leading dims are flattened into one batch.
      values: [n_out, k] floating point; n_out must be a multiple of group_size.
      indices: [n_out // group_size, k] integers in [0, in_features]; row g serves outputs g*G .. g*G + G - 1.
        `in_features` marks an empty slot (padding). Concrete indices are range-checked here; traced ones cannot
        be, and every backend then treats an out-of-range index as an empty slot (never an out-of-bounds read).
      bias: optional [n_out].
      group_size: G, a static positive int. "pallas" needs a multiple of 16.
      implementation: "auto" | "xla" | "pallas" | "dense" (see the module docstring and `auto_implementation`).
      block_sizes: tiles of the "pallas" kernels; None picks `default_block_sizes`.
      interpret: run the Pallas kernels interpreted (default: True unless on a GPU).
      dense_kernel: "dense"/"auto" only: a cached W [in_features, n_out] used instead of re-scattering in plain
        forwards. It must match values/indices (not checked). Differentiated calls rebuild W from values
        instead: gradients go to values, never to the cache.

    Returns:
      [..., n_out] in the promoted dtype of x and values.
    """
    check_implementation(implementation, IMPLEMENTATIONS)
    group_size = check_grouped_args(x, values, indices, bias, group_size=group_size)
    if block_sizes is not None and not isinstance(block_sizes, BlockSizes):
        raise ValueError(f"block_sizes must be a BlockSizes or None, got {type(block_sizes).__name__}")
    interpret = default_interpret(interpret)
    n_in = x.shape[-1]
    n_out = values.shape[0]
    check_dense_kernel(dense_kernel, n_in, n_out)
    dtype = jnp.result_type(x.dtype, values.dtype)
    batch_shape = x.shape[:-1]
    x2d = x.reshape(-1, n_in).astype(dtype)
    batch = x2d.shape[0]
    if implementation == "auto":
        implementation = auto_implementation(batch, group_size, dtype)
    if implementation == "xla":
        y = grouped_condensed_matmul_xla(x2d, values.astype(dtype), indices, group_size=group_size)
    elif implementation == "pallas":
        y = grouped_condensed_matmul_pallas(
            x2d, values, indices, group_size=group_size, blocks=block_sizes, interpret=interpret
        )
    else:
        y = grouped_condensed_matmul_dense(x2d, values, indices, group_size=group_size, dense_kernel=dense_kernel)
    if bias is not None:
        y = (y + bias.astype(dtype)[None, :]).astype(dtype)
    return y.reshape((*batch_shape, n_out))
