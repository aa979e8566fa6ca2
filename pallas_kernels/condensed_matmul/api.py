"""Public entry point of the condensed (constant fan-in) matmul with `implementation=` dispatch.

    y[..., o] = sum_j values[o, j] * x[..., indices[o, j]]  (+ bias[o])

Backends (one file each): "xla" (feature-major gather, any platform), "pallas" (Pallas-Triton GPU kernels;
interpreted elsewhere), "triton" (jax-triton, GPU, optional), "dense" (densify, then one GEMM). "auto" picks per
platform and batch size with `auto_implementation`: on GPU the Pallas kernel below the crossover batch of a
roofline cost model and the dense GEMM above it; on TPU (Mosaic cannot gather along a major dim) and CPU the
XLA gather at small batch and the dense GEMM above. Every backend is differentiable in x and values.
"""

from typing import ClassVar

import jax.numpy as jnp

from pallas_kernels._common import check_dense_kernel, check_implementation, default_interpret, on_gpu

from . import pallas_triton, triton
from ._validate import check_condensed_args
from .dense import condensed_matmul_dense
from .pallas_triton import BlockSizes
from .xla import condensed_matmul_xla

__all__ = ["CPU_GATHER_MAX_BATCH", "GpuCostModel", "auto_implementation", "condensed_matmul"]

# Measured on a 2-core CPU (JAX 0.10.2, fp32, 3072->768, 90% sparse; benchmarks/condensed_inference.py): the
# XLA gather beats the dense path up to batch 8 and loses 19x at batch 256.
CPU_GATHER_MAX_BATCH = 8


class GpuCostModel:
    """Time model of the two GPU paths, fitted to H200 measurements; the kernel runs where it predicts a win.

    condensed: kernel_launch_s + (values + indices bytes) / kernel_bytes_per_s + batch * n_out * k / gather rate
    dense:     dense_launch_s + max(weight bytes / hbm_bytes_per_s, 2 * batch * in * n_out / matmul_flops_per_s)
    Constants from benchmarks/results/kernels-h200-jax0.11.2.json (bf16, 90% sparse, 3072->768, 4096x4096,
    4096->14336, batch 1..4096; per call, 16 calls back to back in one jit, where even a one-tile kernel costs
    ~6.5 us). Beyond that floor the batch-1 kernel streams its weights at up to ~3.5 TB/s; with more than one
    batch column the gather rate drops (GEMV tiles ~4.5e11 FMA/s at batch 4 on 4096->14336, the batch-tiled
    form above 16 ~3e11), so the kernel wins at batch 1 and the matrix unit from a few columns on. The dense
    constants err towards a fast dense path (it is 1.3x faster than modelled on 3072->768 and 4096->14336 at
    batch 1), so `auto` errs towards dense. The f32 matmul rate (TF32) is half the bf16 one by the datasheet.
    `margin` keeps `auto` on the dense side where the two are within 10%.
    """

    kernel_launch_s = 7.6e-6
    kernel_bytes_per_s = 4.6e12
    gather_fma_per_s: ClassVar[dict[bool, float]] = {True: 4.5e11, False: 3.0e11}  # GEMV tiles or not
    gemv_max_batch = pallas_triton.GEMV_MAX_BATCH
    dense_launch_s = 8.3e-6
    hbm_bytes_per_s = 4.2e12
    matmul_flops_per_s: ClassVar[dict[int, float]] = {2: 7.4e14, 4: 3.7e14}  # by itemsize: bf16/f16; f32 (TF32)
    margin = 0.9

    @classmethod
    def condensed_s(cls, batch: int, n_out: int, k: int, itemsize: int, index_itemsize: int) -> float:
        weight_bytes = n_out * k * (itemsize + index_itemsize)
        gather_rate = cls.gather_fma_per_s[batch <= cls.gemv_max_batch]
        return cls.kernel_launch_s + weight_bytes / cls.kernel_bytes_per_s + batch * n_out * k / gather_rate

    @classmethod
    def dense_s(cls, batch: int, n_in: int, n_out: int, itemsize: int) -> float:
        rate = cls.matmul_flops_per_s.get(itemsize, cls.matmul_flops_per_s[4])
        return cls.dense_launch_s + max(
            n_in * n_out * itemsize / cls.hbm_bytes_per_s, 2.0 * batch * n_in * n_out / rate
        )

    @classmethod
    def kernel_wins(cls, batch: int, n_in: int, n_out: int, k: int, itemsize: int, index_itemsize: int) -> bool:
        t_cond = cls.condensed_s(batch, n_out, k, itemsize, index_itemsize)
        return t_cond < cls.margin * cls.dense_s(batch, n_in, n_out, itemsize)


def auto_implementation(
    batch: int, in_features: int, n_out: int, k: int, dtype=jnp.float32, index_dtype=jnp.int32, platform=None
) -> str:
    """The backend `implementation="auto"` runs for these sizes on `platform` (default: JAX's default backend)."""
    gpu = on_gpu() if platform is None else platform in ("gpu", "cuda", "rocm")
    if gpu:
        itemsize, index_itemsize = jnp.dtype(dtype).itemsize, jnp.dtype(index_dtype).itemsize
        wins = GpuCostModel.kernel_wins(batch, in_features, n_out, k, itemsize, index_itemsize)
        return "pallas" if wins else "dense"
    return "xla" if batch <= CPU_GATHER_MAX_BATCH else "dense"


def condensed_matmul(
    x,
    values,
    indices,
    bias=None,
    *,
    implementation: str = "auto",
    block_sizes: BlockSizes | None = None,
    interpret: bool | None = None,
    fan_in_chunk: int | None = None,
    dense_kernel=None,
):
    """Computes y[..., o] = sum_j values[o, j] * x[..., indices[o, j]] (+ bias).

    Equal to the masked dense product `x @ W` (W[indices[o, j], o] = values[o, j]; duplicates add up) in value
    and in gradients with respect to `x`, `values` and `bias`. Jittable, differentiable and vmappable (except
    "triton"). Accumulates in float32 for low-precision inputs.

    Args:
      x: [..., in_features] floating point; leading dims are flattened into one batch.
      values: [n_out, k] floating point.
      indices: [n_out, k] integers in [0, in_features]; `in_features` marks an empty slot (padding). Concrete
        indices are range-checked here; traced ones cannot be, and the kernels then treat any out-of-range
        index as an empty slot (never an out-of-bounds read). int16 halves the index bytes of the GPU kernel.
      bias: optional [n_out].
      implementation: "auto" | "xla" | "pallas" | "triton" | "dense" (see the module docstring).
      block_sizes: tiles of the "pallas"/"triton" kernels (forward and backward); None picks
        `default_block_sizes` for the forward and `default_backward_block_sizes` for the backward.
      interpret: run the Pallas kernels interpreted (default: True unless on a GPU).
      fan_in_chunk: "xla" only: process the fan-in in chunks of this many (bounds gather memory).
      dense_kernel: "dense"/"auto" only: a cached W [in_features, n_out] to use instead of re-scattering.

    Returns:
      [..., n_out] in the promoted dtype of x and values.
    """
    check_implementation(implementation)
    check_condensed_args(x, values, indices, bias)
    if block_sizes is not None and not isinstance(block_sizes, BlockSizes):
        raise ValueError(f"block_sizes must be a BlockSizes or None, got {type(block_sizes).__name__}")
    if fan_in_chunk is not None and (
        isinstance(fan_in_chunk, bool) or not isinstance(fan_in_chunk, int) or fan_in_chunk <= 0
    ):
        raise ValueError(f"fan_in_chunk must be a positive int or None, got {fan_in_chunk!r}")
    interpret = default_interpret(interpret)
    n_in = x.shape[-1]
    n_out, k = values.shape
    check_dense_kernel(dense_kernel, n_in, n_out)
    dtype = jnp.result_type(x.dtype, values.dtype)
    batch_shape = x.shape[:-1]
    x2d = x.reshape(-1, n_in).astype(dtype)
    batch = x2d.shape[0]
    if implementation == "auto":
        implementation = auto_implementation(batch, n_in, n_out, k, dtype, indices.dtype)
    if implementation == "xla":
        y = condensed_matmul_xla(x2d, values.astype(dtype), indices, fan_in_chunk=fan_in_chunk)
    elif implementation == "pallas":
        y = pallas_triton.condensed_matmul_pallas(
            x2d, values, indices, blocks=block_sizes, backward_blocks=block_sizes, interpret=interpret
        )
    elif implementation == "triton":
        y = triton.condensed_matmul_triton(x2d, values, indices, blocks=block_sizes)
    else:
        y = condensed_matmul_dense(x2d, values, indices, dense_kernel=dense_kernel)
    if bias is not None:
        y = (y + bias.astype(dtype)[None, :]).astype(dtype)
    return y.reshape((*batch_shape, n_out))
