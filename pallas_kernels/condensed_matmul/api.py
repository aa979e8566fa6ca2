"""Public entry point of the condensed (constant fan-in) matmul with `implementation=` dispatch.

    y[..., o] = sum_j values[o, j] * x[..., indices[o, j]]  (+ bias[o])

Backends (one file each): "xla" (feature-major gather, any platform), "pallas" (Pallas-Triton GPU kernels;
interpreted elsewhere), "triton" (jax-triton, GPU, optional), "dense" (densify, or take a cached dense kernel,
then one GEMM). "auto" picks per platform, batch size and whether a dense kernel is cached, with
`auto_implementation`: on GPU the Pallas kernel where a roofline cost model (`GpuCostModel`) predicts it beats
the dense path, on CPU the XLA gather where `CpuCostModel` does; on TPU (Mosaic cannot gather along a major dim;
not measured) the XLA gather up to batch 8 and the dense GEMM above. Without a cached kernel the dense path pays
for scattering the weights on every call, and the models count that too. Every backend is differentiable in x
and values.
"""

from typing import ClassVar

import jax
import jax.numpy as jnp

from pallas_kernels._common import check_dense_kernel, check_implementation, default_interpret

from . import pallas_triton, triton
from ._validate import check_condensed_args
from .dense import condensed_matmul_dense
from .pallas_triton import BlockSizes
from .xla import condensed_matmul_xla

__all__ = ["TPU_GATHER_MAX_BATCH", "CpuCostModel", "GpuCostModel", "auto_implementation", "condensed_matmul"]

# TPU is not measured: the XLA gather up to this batch, the dense GEMM above (as on CPU for SRigL's layer).
TPU_GATHER_MAX_BATCH = 8


class CpuCostModel:
    """Time model of the XLA gather and the dense GEMM on CPU; the gather runs where it predicts a win.

    gather:  batch * n_out * k * (seconds per gathered element: 0.9 ns at batch 1, 1.8 ns above while the
             gathered [n_out, k, batch] block fits the last-level cache, 3.2 ns beyond)
    dense:   max(weight bytes / (50 GB/s in cache, 20 GB/s beyond), 2 * batch * in * n_out / 150 GFLOP/s)
    densify: weight bytes / (4 GB/s in cache, 1.4 GB/s beyond): the zero fill and scatter of an uncached dense
             kernel, paid on every call (beyond glibc's mmap threshold each call also page-faults a fresh buffer).
    Both paths pay the same per-call dispatch cost, so it is left out: for tiny layers the gather wins.
    Fitted to a 2-core AMD EPYC VM with a 32 MiB L3 (JAX 0.10.2, fp32; `python -m benchmarks --only
    condensed_inference`, committed in benchmarks/results/cpu-2core-jax0.10.2.json: 3072->768, 1024x1024,
    4096x4096 at 90% and 99% sparsity, batch 1-64). The dense constants err towards a fast GEMM, and `margin`
    keeps `auto` on the dense side where the two are within 10%, so `auto` errs towards dense.
    """

    gather_s_per_element_batch1 = 0.9e-9
    gather_s_per_element: ClassVar[dict[bool, float]] = {True: 1.8e-9, False: 3.2e-9}  # gathered block in cache
    cache_bytes = 32 * 2**20
    weight_bytes_per_s: ClassVar[dict[bool, float]] = {True: 50e9, False: 20e9}  # weights in cache or not
    matmul_flops_per_s = 150e9
    densify_bytes_per_s: ClassVar[dict[bool, float]] = {True: 4e9, False: 1.4e9}
    margin = 0.9

    @classmethod
    def gather_s(cls, batch: int, n_out: int, k: int, itemsize: int) -> float:
        elements = batch * n_out * k
        if batch <= 1:
            rate = cls.gather_s_per_element_batch1
        else:
            rate = cls.gather_s_per_element[elements * itemsize <= cls.cache_bytes]
        return elements * rate

    @classmethod
    def dense_s(cls, batch: int, n_in: int, n_out: int, itemsize: int, dense_kernel_cached: bool = False) -> float:
        weight_bytes = n_in * n_out * itemsize
        in_cache = weight_bytes <= cls.cache_bytes
        gemm = max(weight_bytes / cls.weight_bytes_per_s[in_cache], 2.0 * batch * n_in * n_out / cls.matmul_flops_per_s)
        densify = 0.0 if dense_kernel_cached else weight_bytes / cls.densify_bytes_per_s[in_cache]
        return gemm + densify

    @classmethod
    def gather_wins(
        cls, batch: int, n_in: int, n_out: int, k: int, itemsize: int, dense_kernel_cached: bool = False
    ) -> bool:
        t_dense = cls.dense_s(batch, n_in, n_out, itemsize, dense_kernel_cached)
        return cls.gather_s(batch, n_out, k, itemsize) < cls.margin * t_dense


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
    Without a cached dense kernel the dense path also scatters the weights on every call: densify-then-dot
    measured 21.6 / 76.3 / 255 us against 13.7 / 13.6 / 46.4 us for the cached GEMM at batch 1 (bf16), i.e.
    ~3.6 ps per dense element, ~0.56 TB/s of dense kernel written (`densify_bytes_per_s`).
    `margin` keeps `auto` on the dense side where the two are within 10%.
    """

    kernel_launch_s = 7.6e-6
    kernel_bytes_per_s = 4.6e12
    gather_fma_per_s: ClassVar[dict[bool, float]] = {True: 4.5e11, False: 3.0e11}  # GEMV tiles or not
    gemv_max_batch = pallas_triton.GEMV_MAX_BATCH
    dense_launch_s = 8.3e-6
    hbm_bytes_per_s = 4.2e12
    matmul_flops_per_s: ClassVar[dict[int, float]] = {2: 7.4e14, 4: 3.7e14}  # by itemsize: bf16/f16; f32 (TF32)
    densify_bytes_per_s = 5.6e11
    margin = 0.9

    @classmethod
    def condensed_s(cls, batch: int, n_out: int, k: int, itemsize: int, index_itemsize: int) -> float:
        weight_bytes = n_out * k * (itemsize + index_itemsize)
        gather_rate = cls.gather_fma_per_s[batch <= cls.gemv_max_batch]
        return cls.kernel_launch_s + weight_bytes / cls.kernel_bytes_per_s + batch * n_out * k / gather_rate

    @classmethod
    def dense_s(cls, batch: int, n_in: int, n_out: int, itemsize: int, dense_kernel_cached: bool = False) -> float:
        rate = cls.matmul_flops_per_s.get(itemsize, cls.matmul_flops_per_s[4])
        weight_bytes = n_in * n_out * itemsize
        densify = 0.0 if dense_kernel_cached else weight_bytes / cls.densify_bytes_per_s
        return cls.dense_launch_s + densify + max(weight_bytes / cls.hbm_bytes_per_s, 2.0 * batch * n_in * n_out / rate)

    @classmethod
    def kernel_wins(
        cls,
        batch: int,
        n_in: int,
        n_out: int,
        k: int,
        itemsize: int,
        index_itemsize: int,
        dense_kernel_cached: bool = False,
    ) -> bool:
        t_cond = cls.condensed_s(batch, n_out, k, itemsize, index_itemsize)
        return t_cond < cls.margin * cls.dense_s(batch, n_in, n_out, itemsize, dense_kernel_cached)


def auto_implementation(
    batch: int,
    in_features: int,
    n_out: int,
    k: int,
    dtype=jnp.float32,
    index_dtype=jnp.int32,
    platform=None,
    *,
    dense_kernel_cached: bool = False,
) -> str:
    """The backend `implementation="auto"` runs for these sizes on `platform` (default: JAX's default backend).

    `dense_kernel_cached`: whether the dense path has a cached kernel (`dense_kernel=`) or must scatter one.
    """
    platform = jax.default_backend() if platform is None else platform
    itemsize, index_itemsize = jnp.dtype(dtype).itemsize, jnp.dtype(index_dtype).itemsize
    if platform in ("gpu", "cuda", "rocm"):
        wins = GpuCostModel.kernel_wins(
            batch, in_features, n_out, k, itemsize, index_itemsize, dense_kernel_cached=dense_kernel_cached
        )
        return "pallas" if wins else "dense"
    if platform == "tpu":
        return "xla" if batch <= TPU_GATHER_MAX_BATCH else "dense"
    wins = CpuCostModel.gather_wins(batch, in_features, n_out, k, itemsize, dense_kernel_cached)
    return "xla" if wins else "dense"


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
      dense_kernel: a cached W [in_features, n_out] (`condensed_to_dense_kernel(values, indices, in_features)`)
        that "dense" (and "auto", when it picks dense) multiplies by instead of scattering the weights on every
        call. It must match values/indices: it is not checked (that would read the weights twice). Under
        differentiation the kernel is rebuilt from `values` instead, and gradients flow to `values` (the cache
        gets none).

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
        implementation = auto_implementation(
            batch, n_in, n_out, k, dtype, indices.dtype, dense_kernel_cached=dense_kernel is not None
        )
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
