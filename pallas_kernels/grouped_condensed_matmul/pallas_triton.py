"""Pallas (Triton lowering) backend of the group-shared condensed matmul: a gather-GEMM on the tensor cores.

Because G consecutive outputs share one index row, a program that owns BG rows of one group gathers an x tile
once and reuses it for all BG rows, so the inner product is a real GEMM (`jnp.dot`), not the per-output
multiply-and-reduce of the ungrouped kernel (../shared/reference/kernels.md §4, last bullet).

Layout (kernels.md §5): activations go in feature-major, xT [in + 1, batch_pad], with an appended all-zero row at
index `in`. The grid is (row tiles, batch tiles), row tiles fastest so one batch tile of xT stays in L2 while
every row tile reads it. Program (i, b) owns output rows [i*BG, (i+1)*BG), all in group i*BG // G (BG divides
G; when G > BG, G // BG programs share the group's index row), and loops over the fan-in in chunks of BK:
    idx = indices[group, chunk]                  [BK]
    xg  = xT[idx, batch tile]                    [BK, BB]  (a gather of contiguous batch segments)
    acc += values[rows, chunk] @ xg              [BG, BB]  (f32 accumulation)
and stores y[batch tile, rows] through the transposed accumulator. Triton needs power-of-2 tensors and tensor-
core dots need every dim >= 16, hence BG, BK, BB are powers of two >= 16 and G must be a multiple of 16.

Padding never reads real data: the fan-in is padded with the zero-row index (an Inf in x[:, 0] stays out of
padded slots, unlike padding with index 0) and value 0, the batch with zero columns that are sliced off. Inside
the kernels every index outside [0, in) is mapped to the zero row, so even unchecked (traced) bad indices
cannot read wild memory.

float32 inputs use full-precision (IEEE) dots, in the kernels and in the XLA grad x, so the backend matches the
f32 reference to ~1e-6 instead of TF32's ~1e-3; bf16/f16 inputs feed the tensor cores directly.

Backward (jax.custom_vjp):
  * grad values: per group a GEMM dy_g^T [G, B] @ xg [B, k], in a second Pallas kernel over (row tiles, fan-in
    tiles) that gathers xT[idx, batch chunk] -> [BK, BB] and accumulates dy^T[rows, chunk] @ xg^T over batch.
  * grad x: XLA (`xla.grad_x`): per group p = values_g^T @ dy_g^T [k, B] (a batched GEMM), then a segment sum
    of p's rows by input id. It is a scatter-add; on GPU XLA lowers it to atomics, so it is not bitwise
    reproducible. p takes n_groups * k * batch floats, so once that exceeds the dense W [in, n_out] grad x is
    dy @ W^T with W densified instead (one scatter of the values and a tensor-core GEMM).
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from pallas_kernels._common import as_empty_slot, check_launch_params, check_positive_pow2, round_up

from ._validate import matmul_precision
from .xla import grad_x

try:  # the Triton backend's compiler params; absent from a jax built without Pallas GPU support
    from jax.experimental.pallas import triton as pltriton
except ImportError:  # pragma: no cover - every supported jax has it
    pltriton = None

__all__ = [
    "MIN_TILE",
    "SUPPORTED_DTYPES",
    "BlockSizes",
    "default_block_sizes",
    "grouped_condensed_matmul_pallas",
    "pallas_supports",
]

# Smallest dot dimension Triton lowers to tensor-core MMA; every tile dim and the group size build on it.
MIN_TILE = 16
# Dtypes the kernel's dots take (Triton has no generic float64 MMA).
SUPPORTED_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
# Largest live tile (elements) of one program: acc [BG, BB], gather [BK, BB], values [BG, BK].
_MAX_TILE_ELEMENTS = 16384


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes (powers of two >= 16) and Triton launch parameters of the grouped kernels.

    block_group: output rows per program (BG); must divide group_size. block_k: fan-in slots per loop step
    (BK). block_batch: batch columns per program (BB). Each of BG*BB, BK*BB, BG*BK must be <= 16384 elements.
    """

    block_group: int = 16
    block_k: int = 32
    block_batch: int = 16
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self):
        for name in ("block_group", "block_k", "block_batch"):
            value = check_positive_pow2(name, getattr(self, name))
            if value < MIN_TILE:
                raise ValueError(f"{name} must be >= {MIN_TILE} (tensor-core dot dims), got {value}")
        check_launch_params(self)
        for a, b in (("block_group", "block_batch"), ("block_k", "block_batch"), ("block_group", "block_k")):
            size = getattr(self, a) * getattr(self, b)
            if size > _MAX_TILE_ELEMENTS:
                raise ValueError(f"{a} * {b} = {size} exceeds {_MAX_TILE_ELEMENTS} live elements per program")


def pallas_supports(group_size: int, dtype) -> bool:
    """Whether the Pallas kernel handles this group size (a multiple of 16) and compute dtype."""
    return group_size % MIN_TILE == 0 and jnp.dtype(dtype) in SUPPORTED_DTYPES


def default_block_sizes(batch: int, group_size: int, k: int) -> BlockSizes:
    """Starting tiles (kernels.md §5), to be calibrated on the GPU.

    BG: the largest power of two dividing G, capped at 64. BK: 64 for a long fan-in, less for a short one so
    padding stays small. BB: the batch rounded up to a power of two in [16, 128] (16 is the dot minimum, so
    batch 1 computes 16 columns; the extra MMA work is free next to the gather).
    """
    if group_size % MIN_TILE:
        raise ValueError(f"the Pallas kernel needs group_size to be a multiple of {MIN_TILE}, got {group_size}")
    block_group = MIN_TILE
    while block_group < 64 and group_size % (2 * block_group) == 0:
        block_group *= 2
    block_k = MIN_TILE if k <= 16 else 32 if k <= 32 else 64
    block_batch = int(min(128, max(MIN_TILE, 2 ** int(np.ceil(np.log2(max(batch, 1)))))))
    num_warps = 8 if block_group * block_batch >= 8192 else 4
    return BlockSizes(block_group=block_group, block_k=block_k, block_batch=block_batch, num_warps=num_warps)


def _compiler_params(blocks: BlockSizes):
    if pltriton is None:  # pragma: no cover
        return None
    return pltriton.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)


# ----------------------------------------------------------------------------------------------------- forward


def _forward_kernel(idx_ref, val_ref, xt_ref, y_ref, *, n_in: int, block_k: int, n_k_steps: int):
    block_group = val_ref.shape[0]
    block_batch = xt_ref.shape[1]
    precision = matmul_precision(xt_ref.dtype)  # Triton lowers DEFAULT on f32 to TF32

    def step(s, acc):
        k0 = pl.multiple_of(s * block_k, block_k)
        idx = as_empty_slot(idx_ref[pl.ds(k0, block_k)], n_in)  # [BK] ids of this group's chunk
        xg = xt_ref[idx, :]  # [BK, BB] gather of contiguous batch segments
        v = val_ref[:, pl.ds(k0, block_k)]  # [BG, BK]
        return acc + jnp.dot(v, xg, precision=precision, preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(0, n_k_steps, step, jnp.zeros((block_group, block_batch), jnp.float32))
    y_ref[...] = acc.T.astype(y_ref.dtype)


def _pad_fan_in(values, indices, n_in: int, block_k: int):
    """Pads k to a multiple of BK with (value 0, index n_in); flattens indices to [n_groups * k_pad]."""
    k = values.shape[1]
    k_pad = round_up(max(k, 1), block_k)
    if n_in > np.iinfo(indices.dtype).max:  # the padding id n_in must fit the index dtype
        indices = indices.astype(jnp.int32)
    if k_pad != k:
        values = jnp.pad(values, ((0, 0), (0, k_pad - k)))
        indices = jnp.pad(indices, ((0, 0), (0, k_pad - k)), constant_values=n_in)
    if jnp.dtype(indices.dtype).itemsize > 4:  # Triton handles <= 32-bit ids; map big ones to n_in first
        indices = as_empty_slot(indices, n_in)
    return values, indices.reshape(-1), k_pad


def _feature_major(x2d, batch_pad: int):
    """xT [in + 1, batch_pad]: the transposed activations with the all-zero row that empty slots read."""
    batch, _ = x2d.shape
    return jnp.pad(x2d.T, ((0, 1), (0, batch_pad - batch)))


def _tiles_per_group(group_size: int, blocks: BlockSizes) -> int:
    if group_size % blocks.block_group:
        raise ValueError(f"block_sizes.block_group={blocks.block_group} must divide group_size={group_size}")
    return group_size // blocks.block_group


def _forward(x2d, values, indices, group_size: int, blocks: BlockSizes, interpret: bool):
    batch, n_in = x2d.shape
    n_out, _ = values.shape
    bg, bk, bb = blocks.block_group, blocks.block_k, blocks.block_batch
    tiles = _tiles_per_group(group_size, blocks)
    values_p, idx_flat, k_pad = _pad_fan_in(values, indices, n_in, bk)
    batch_pad = round_up(max(batch, 1), bb)
    xt = _feature_major(x2d, batch_pad)
    kernel = functools.partial(_forward_kernel, n_in=n_in, block_k=bk, n_k_steps=k_pad // bk)
    y = pl.pallas_call(
        kernel,
        grid=(n_out // bg, batch_pad // bb),  # row tiles fastest: one xT batch tile stays in L2
        in_specs=[
            # Block i // tiles of the flat [n_groups * k_pad] ids is its group's whole index row.
            pl.BlockSpec((k_pad,), lambda i, j: (jax.lax.div(i, tiles),)),
            pl.BlockSpec((bg, k_pad), lambda i, j: (i, 0)),
            pl.BlockSpec((n_in + 1, bb), lambda i, j: (0, j)),
        ],
        out_specs=pl.BlockSpec((bb, bg), lambda i, j: (j, i)),
        out_shape=jax.ShapeDtypeStruct((batch_pad, n_out), x2d.dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="grouped_condensed_matmul_fwd",
    )(idx_flat, values_p, xt)
    return y[:batch]


# ---------------------------------------------------------------------------------------------- grad of values


def _grad_values_kernel(idx_ref, xt_ref, gt_ref, dv_ref, *, n_in: int, block_batch: int, n_b_steps: int):
    idx = as_empty_slot(idx_ref[...], n_in)  # [BK]
    block_group, block_k = dv_ref.shape
    precision = matmul_precision(xt_ref.dtype)  # Triton lowers DEFAULT on f32 to TF32

    def step(s, acc):
        b0 = pl.multiple_of(s * block_batch, block_batch)
        xg = xt_ref[idx, pl.ds(b0, block_batch)]  # [BK, BB]
        g = gt_ref[:, pl.ds(b0, block_batch)]  # [BG, BB]
        # acc[BG, BK] += g @ xg^T: contract the batch dims (Triton transposes xg in registers).
        dims = (((1,), (1,)), ((), ()))
        return acc + jax.lax.dot_general(g, xg, dims, precision=precision, preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(0, n_b_steps, step, jnp.zeros((block_group, block_k), jnp.float32))
    dv_ref[...] = acc.astype(dv_ref.dtype)


def _grad_values(xt, gt, idx_flat, k_pad: int, n_in: int, group_size: int, blocks, interpret: bool):
    n_out, batch_pad = gt.shape
    bg, bk, bb = blocks.block_group, blocks.block_k, blocks.block_batch
    tiles, k_steps = _tiles_per_group(group_size, blocks), k_pad // bk
    kernel = functools.partial(_grad_values_kernel, n_in=n_in, block_batch=bb, n_b_steps=batch_pad // bb)
    return pl.pallas_call(
        kernel,
        grid=(n_out // bg, k_steps),
        in_specs=[
            # Fan-in chunk j of row tile i's group: block (i // tiles) * k_steps + j of the flat ids.
            pl.BlockSpec((bk,), lambda i, j: (jax.lax.div(i, tiles) * k_steps + j,)),
            pl.BlockSpec((n_in + 1, batch_pad), lambda i, j: (0, 0)),
            pl.BlockSpec((bg, batch_pad), lambda i, j: (i, 0)),
        ],
        out_specs=pl.BlockSpec((bg, bk), lambda i, j: (i, j)),
        out_shape=jax.ShapeDtypeStruct((n_out, k_pad), xt.dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="grouped_condensed_matmul_grad_values",
    )(idx_flat, xt, gt)


# -------------------------------------------------------------------------------------------------- custom VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _grouped(x2d, values, indices, group_size, blocks, interpret):
    return _forward(x2d, values, indices, group_size, blocks, interpret)


def _grouped_fwd(x2d, values, indices, group_size, blocks, interpret):
    return _forward(x2d, values, indices, group_size, blocks, interpret), (x2d, values, indices)


def _grouped_bwd(group_size, blocks, interpret, residuals, g):
    x2d, values, indices = residuals
    batch, n_in = x2d.shape
    k = values.shape[1]
    _, idx_flat, k_pad = _pad_fan_in(values, indices, n_in, blocks.block_k)
    batch_pad = round_up(max(batch, 1), blocks.block_batch)
    xt = _feature_major(x2d, batch_pad)
    gt = jnp.pad(g.astype(x2d.dtype).T, ((0, 0), (0, batch_pad - batch)))  # [n_out, batch_pad]
    grad_values = _grad_values(xt, gt, idx_flat, k_pad, n_in, group_size, blocks, interpret)[:, :k]
    grad_x2d = grad_x(g, values, indices, n_in, group_size, x2d.dtype)
    return grad_x2d, grad_values.astype(values.dtype), np.zeros(indices.shape, dtype=jax.dtypes.float0)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


def grouped_condensed_matmul_pallas(
    x2d, values, indices, *, group_size: int, blocks: BlockSizes | None = None, interpret: bool = False
):
    """The Pallas backend on checked 2-D inputs: x2d [batch, in], values [n_out, k], indices [n_out // G, k].

    Differentiable in x2d and values (custom VJP: a Pallas grad-values kernel and an XLA grad-x); `interpret=True`
    runs the same kernels on any backend (CPU tests). Raises ValueError where the kernel cannot run: a group size
    that is not a multiple of 16, a dtype other than float32/bfloat16/float16, or a block_group not dividing G.
    """
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    if group_size % MIN_TILE:
        raise ValueError(
            f"implementation='pallas' needs group_size to be a multiple of {MIN_TILE} (tensor-core tiles), got "
            f"{group_size}; use 'xla' or 'dense'"
        )
    if jnp.dtype(dtype) not in SUPPORTED_DTYPES:
        raise ValueError(f"implementation='pallas' supports float32, bfloat16 and float16, got dtype {dtype}")
    n_out, k = values.shape
    if blocks is None:
        blocks = default_block_sizes(x2d.shape[0], group_size, k)
    _tiles_per_group(group_size, blocks)  # a clear error before tracing the kernel
    if n_out == 0:  # no groups: an empty grid would not launch
        return jnp.zeros((x2d.shape[0], 0), dtype)
    return _grouped(x2d.astype(dtype), values.astype(dtype), indices, group_size, blocks, interpret)
