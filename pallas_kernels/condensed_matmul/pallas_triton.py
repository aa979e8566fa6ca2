"""Pallas (Triton lowering) backend of the condensed matmul, forward and backward.

Layout (see ../shared/reference/kernels.md §5): activations go in feature-major, xT [in + 1, batch_pad], with an
appended all-zero row at index `in`; an index tile idx [BO, BK] then gathers xT[idx, batch tile] -> [BO, BK, BB],
whose rows are contiguous batch segments. The grid is (output tiles, batch tiles) with output tiles fastest, so
one batch tile of xT stays in L2 while every output tile reads it. Each program loops over the fan-in in chunks
of BK with a float32 accumulator and stores y[batch tile, output tile] through the transposed accumulator.

Padding never reads real data: the fan-in is padded with the zero-row index (an Inf in x[:, 0] stays out of
padded slots, unlike padding with index 0), outputs and batch are padded and sliced off. Inside the kernels every
index outside [0, in) is mapped to the zero row, so even unchecked (traced) bad indices cannot read wild memory.

Backward:
  * grad values: dvalues[o, j] = sum_b dy[b, o] * x[b, idx[o, j]] - the same gather, reduced over batch tiles.
  * grad x: a scatter-add, done deterministically as a gather over the transposed (fan-out) structure: the
    (o, j) slots sorted by input id give each input row a contiguous run of slots (CSR); a program owns BI input
    rows and loops over its longest run in chunks of BK. No atomics, so results are bitwise reproducible.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from pallas_kernels._common import as_empty_slot, check_launch_params, check_positive_pow2, round_up

try:  # the Triton backend's compiler params; absent from a jax built without Pallas GPU support
    from jax.experimental.pallas import triton as pltriton
except ImportError:  # pragma: no cover - every supported jax has it
    pltriton = None

__all__ = ["BlockSizes", "condensed_matmul_pallas", "default_block_sizes"]


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes (powers of two) and Triton launch parameters of the condensed kernels.

    block_out: output neurons per program (BO). block_k: fan-in slots per loop step (BK).
    block_batch: batch columns per program (BB). BO * BK * BB elements are live at once: keep it <= ~16K.
    """

    block_out: int = 32
    block_k: int = 32
    block_batch: int = 16
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self):
        for name in ("block_out", "block_k", "block_batch"):
            check_positive_pow2(name, getattr(self, name))
        check_launch_params(self)
        if self.block_out * self.block_k * self.block_batch > 65536:
            raise ValueError(
                f"block_out * block_k * block_batch = {self.block_out * self.block_k * self.block_batch} "
                "exceeds 65536 live elements per program"
            )


def default_block_sizes(batch: int, n_out: int, k: int) -> BlockSizes:
    """Tiles by batch size: a GEMV-like shape at tiny batch, square-ish tiles of <= 16K live elements above."""
    if batch <= 1:
        block_batch = 1
    elif batch <= 16:
        block_batch = int(2 ** int(np.ceil(np.log2(batch))))
    else:
        block_batch = 32
    widest_k = 64 if block_batch < 32 else 32
    block_k = widest_k if k >= widest_k else max(8, int(2 ** int(np.ceil(np.log2(max(k, 1))))))
    budget = 16384 // (block_k * block_batch)
    block_out = int(max(16, min(128, budget)))
    while block_out > 16 and n_out <= block_out // 2:
        block_out //= 2
    return BlockSizes(block_out=block_out, block_k=block_k, block_batch=block_batch)


def _compiler_params(blocks: BlockSizes):
    if pltriton is None:  # pragma: no cover
        return None
    return pltriton.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)


# ----------------------------------------------------------------------------------------------------- forward


def _forward_kernel(idx_ref, val_ref, xt_ref, y_ref, *, n_in: int, block_k: int, n_k_steps: int):
    block_out = idx_ref.shape[0]
    block_batch = xt_ref.shape[1]

    def step(s, acc):
        k0 = pl.multiple_of(s * block_k, block_k)
        idx = as_empty_slot(idx_ref[:, pl.ds(k0, block_k)], n_in)  # [BO, BK]
        v = val_ref[:, pl.ds(k0, block_k)].astype(jnp.float32)
        xg = xt_ref[idx, :].astype(jnp.float32)  # [BO, BK, BB] gather of contiguous batch segments
        return acc + jnp.sum(v[:, :, None] * xg, axis=1)

    acc = jax.lax.fori_loop(0, n_k_steps, step, jnp.zeros((block_out, block_batch), jnp.float32))
    y_ref[...] = acc.T.astype(y_ref.dtype)


def _pad_rows(values, indices, n_in: int, block_out: int, block_k: int):
    n_out, k = values.shape
    n_out_pad, k_pad = round_up(max(n_out, 1), block_out), round_up(max(k, 1), block_k)
    if (n_out_pad, k_pad) != (n_out, k):
        pad = ((0, n_out_pad - n_out), (0, k_pad - k))
        values = jnp.pad(values, pad)
        indices = jnp.pad(indices, pad, constant_values=n_in)
    return values, indices


def _feature_major(x2d, batch_pad: int):
    """xT [in + 1, batch_pad]: the transposed activations with the all-zero row that empty slots read."""
    batch = x2d.shape[0]
    return jnp.pad(x2d.T, ((0, 1), (0, batch_pad - batch)))


def _operands(x2d, values, indices, blocks: BlockSizes):
    """The kernels' layout, built once per call and kept for the backward: (xT, padded values, padded indices)."""
    values_p, indices_p = _pad_rows(values, indices, x2d.shape[1], blocks.block_out, blocks.block_k)
    xt = _feature_major(x2d, round_up(max(x2d.shape[0], 1), blocks.block_batch))
    return xt, values_p, indices_p


def _forward(xt, values_p, indices_p, blocks: BlockSizes, interpret: bool):
    """y_pad [batch_pad, n_out_pad] from the prepared operands."""
    n_in, batch_pad = xt.shape[0] - 1, xt.shape[1]
    n_out_pad, k_pad = values_p.shape
    bo, bk, bb = blocks.block_out, blocks.block_k, blocks.block_batch
    out_dtype = jnp.result_type(xt.dtype, values_p.dtype)
    kernel = functools.partial(_forward_kernel, n_in=n_in, block_k=bk, n_k_steps=k_pad // bk)
    return pl.pallas_call(
        kernel,
        grid=(n_out_pad // bo, batch_pad // bb),  # output tiles fastest: one xT batch tile stays in L2
        in_specs=[
            pl.BlockSpec((bo, k_pad), lambda i, j: (i, 0)),
            pl.BlockSpec((bo, k_pad), lambda i, j: (i, 0)),
            pl.BlockSpec((n_in + 1, bb), lambda i, j: (0, j)),
        ],
        out_specs=pl.BlockSpec((bb, bo), lambda i, j: (j, i)),
        out_shape=jax.ShapeDtypeStruct((batch_pad, n_out_pad), out_dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="condensed_matmul_fwd",
    )(indices_p, values_p, xt)


# ---------------------------------------------------------------------------------------------- grad of values


def _grad_values_kernel(idx_ref, xt_ref, gt_ref, dv_ref, *, n_in: int, block_batch: int, n_b_steps: int):
    idx = as_empty_slot(idx_ref[...], n_in)  # [BO, BK]

    def step(s, acc):
        b0 = pl.multiple_of(s * block_batch, block_batch)
        xg = xt_ref[idx, pl.ds(b0, block_batch)].astype(jnp.float32)  # [BO, BK, BB]
        g = gt_ref[:, pl.ds(b0, block_batch)].astype(jnp.float32)  # [BO, BB]
        return acc + jnp.sum(xg * g[:, None, :], axis=2)

    acc = jax.lax.fori_loop(0, n_b_steps, step, jnp.zeros(idx.shape, jnp.float32))
    dv_ref[...] = acc.astype(dv_ref.dtype)


def _grad_values(xt, gt, indices_p, n_in: int, values_dtype, blocks: BlockSizes, interpret: bool):
    n_out_pad, k_pad = indices_p.shape
    batch_pad = xt.shape[1]
    bo, bk, bb = blocks.block_out, blocks.block_k, blocks.block_batch
    kernel = functools.partial(_grad_values_kernel, n_in=n_in, block_batch=bb, n_b_steps=batch_pad // bb)
    return pl.pallas_call(
        kernel,
        grid=(n_out_pad // bo, k_pad // bk),
        in_specs=[
            pl.BlockSpec((bo, bk), lambda i, j: (i, j)),
            pl.BlockSpec((n_in + 1, batch_pad), lambda i, j: (0, 0)),
            pl.BlockSpec((bo, batch_pad), lambda i, j: (i, 0)),
        ],
        out_specs=pl.BlockSpec((bo, bk), lambda i, j: (i, j)),
        out_shape=jax.ShapeDtypeStruct((n_out_pad, k_pad), values_dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="condensed_matmul_grad_values",
    )(indices_p, xt, gt)


# --------------------------------------------------------------------------------------------------- grad of x


def _fan_out(indices_p, n_in: int, n_in_pad: int):
    """The transposed structure: slots sorted by input id, and each input's [start, start + count) run.

    Returns (slots [n_slots + 1] int32 with a sentinel slot id n_slots at the end, starts [n_in_pad], counts
    [n_in_pad]); empty slots (id n_in) sort last and belong to no input.
    """
    flat = as_empty_slot(indices_p.reshape(-1), n_in)
    n_slots = flat.shape[0]
    slots = jnp.argsort(flat, stable=True).astype(jnp.int32)
    counts = jnp.zeros((n_in_pad,), jnp.int32).at[flat].add(1, mode="drop")
    starts = jnp.cumsum(counts) - counts
    return jnp.concatenate([slots, jnp.full((1,), n_slots, jnp.int32)]), starts.astype(jnp.int32), counts


def _grad_x_kernel(start_ref, count_ref, slot_ref, val_ref, gt_ref, dx_ref, *, k_pad: int, n_slots: int, block_k: int):
    starts, counts = start_ref[...], count_ref[...]  # [BI]
    block_in = starts.shape[0]
    block_batch = gt_ref.shape[1]
    offsets = jax.lax.broadcasted_iota(jnp.int32, (block_in, block_k), 1)
    n_steps = (jnp.max(counts) + block_k - 1) // block_k

    def step(s, acc):
        rel = s * block_k + offsets  # [BI, BK] position within each input's run
        pos = jnp.where(rel < counts[:, None], starts[:, None] + rel, n_slots + 0 * rel)
        slot = slot_ref[pos]  # [BI, BK] flat slot id o * k_pad + j, or the sentinel n_slots
        v = val_ref[slot].astype(jnp.float32)  # the sentinel reads the appended 0
        g = gt_ref[slot // k_pad, :].astype(jnp.float32)  # [BI, BK, BB]; the sentinel reads the zero row
        return acc + jnp.sum(v[:, :, None] * g, axis=1)

    acc = jax.lax.fori_loop(0, n_steps, step, jnp.zeros((block_in, block_batch), jnp.float32))
    dx_ref[...] = acc.T.astype(dx_ref.dtype)


def _grad_x(gt, values_p, indices_p, n_in: int, x_dtype, blocks: BlockSizes, interpret: bool):
    n_out_pad, k_pad = values_p.shape
    batch_pad = gt.shape[1]
    bi, bk, bb = blocks.block_out, blocks.block_k, blocks.block_batch
    n_in_pad = round_up(n_in, bi)
    n_slots = n_out_pad * k_pad
    slots, starts, counts = _fan_out(indices_p, n_in, n_in_pad)
    values_flat = jnp.concatenate([values_p.reshape(-1), jnp.zeros((1,), values_p.dtype)])
    gt_zero_row = jnp.pad(gt, ((0, 1), (0, 0)))  # row n_out_pad is the sentinel's zero row
    kernel = functools.partial(_grad_x_kernel, k_pad=k_pad, n_slots=n_slots, block_k=bk)
    dx = pl.pallas_call(
        kernel,
        grid=(n_in_pad // bi, batch_pad // bb),
        in_specs=[
            pl.BlockSpec((bi,), lambda i, j: (i,)),
            pl.BlockSpec((bi,), lambda i, j: (i,)),
            pl.BlockSpec((n_slots + 1,), lambda i, j: (0,)),
            pl.BlockSpec((n_slots + 1,), lambda i, j: (0,)),
            pl.BlockSpec((n_out_pad + 1, bb), lambda i, j: (0, j)),
        ],
        out_specs=pl.BlockSpec((bb, bi), lambda i, j: (j, i)),
        out_shape=jax.ShapeDtypeStruct((batch_pad, n_in_pad), x_dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="condensed_matmul_grad_x",
    )(starts, counts, slots, values_flat, gt_zero_row)
    return dx[:, :n_in]


# -------------------------------------------------------------------------------------------------- custom VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _condensed(x2d, values, indices, blocks, interpret):
    return _condensed_fwd(x2d, values, indices, blocks, interpret)[0]


def _condensed_fwd(x2d, values, indices, blocks, interpret):
    operands = _operands(x2d, values, indices, blocks)
    y = _forward(*operands, blocks, interpret)[: x2d.shape[0], : values.shape[0]]
    # The padded layout is the backward's input too: keep it rather than rebuild it from x2d.
    return y, (*operands, indices)


def _condensed_bwd(blocks, interpret, residuals, g):
    xt, values_p, indices_p, indices = residuals
    batch, n_out = g.shape
    n_in, batch_pad = xt.shape[0] - 1, xt.shape[1]
    k = indices.shape[1]
    gt = jnp.pad(g.T, ((0, values_p.shape[0] - n_out), (0, batch_pad - batch)))  # [n_out_pad, batch_pad]
    grad_values = _grad_values(xt, gt, indices_p, n_in, values_p.dtype, blocks, interpret)[:n_out, :k]
    grad_x = _grad_x(gt, values_p, indices_p, n_in, xt.dtype, blocks, interpret)[:batch]
    return grad_x, grad_values, np.zeros(indices.shape, dtype=jax.dtypes.float0)


_condensed.defvjp(_condensed_fwd, _condensed_bwd)


def condensed_matmul_pallas(x2d, values, indices, *, blocks: BlockSizes | None = None, interpret: bool = False):
    """The Pallas backend on checked 2-D inputs: x2d [batch, in], values/indices [n_out, k] -> [batch, n_out].

    Differentiable in x2d and values (custom VJP with two more Pallas kernels); `interpret=True` runs the same
    kernels on any backend (CPU tests).
    """
    if blocks is None:
        blocks = default_block_sizes(x2d.shape[0], values.shape[0], values.shape[1])
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    return _condensed(x2d.astype(dtype), values.astype(dtype), indices, blocks, interpret)
