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

__all__ = [
    "GEMV_MAX_BATCH",
    "BlockSizes",
    "backward",
    "condensed_matmul_pallas",
    "default_backward_block_sizes",
    "default_block_sizes",
    "next_pow2",
]


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes (powers of two) and Triton launch parameters of the condensed kernels.

    block_out: output neurons per program (BO). block_k: fan-in slots per loop step (BK).
    block_batch: batch columns per program (BB). BO * BK * BB elements are live at once: keep it <= ~16K.
    batch_major: forward only, batch <= GEMV_MAX_BATCH: read x as it comes ([batch, in], no transposed copy, so
    one launch at any small batch) and unroll the batch inside the program: each row b is its own [BO, BK]
    gather x[b, idx] with the values and indices loaded once for all rows (block_batch is then unused).
    """

    block_out: int = 32
    block_k: int = 32
    block_batch: int = 16
    num_warps: int = 4
    num_stages: int = 2
    batch_major: bool = False

    def __post_init__(self):
        for name in ("block_out", "block_k", "block_batch"):
            check_positive_pow2(name, getattr(self, name))
        check_launch_params(self)
        if not isinstance(self.batch_major, bool):
            raise ValueError(f"batch_major must be a bool, got {self.batch_major!r}")
        if self.block_out * self.block_k * self.block_batch > 65536:
            raise ValueError(
                f"block_out * block_k * block_batch = {self.block_out * self.block_k * self.block_batch} "
                "exceeds 65536 live elements per program"
            )


# Up to this batch the forward uses GEMV tiles (see default_block_sizes); the cost model in api.py follows it.
GEMV_MAX_BATCH = 16


def default_block_sizes(batch: int, n_out: int, k: int) -> BlockSizes:
    """Forward tiles by batch size: a GEMV shape at batch <= 16, the backward's square-ish tiles above.

    At batch <= 16 the forward streams values and indices once and is bound by HBM latency and launch cost:
    one output row per program (the most programs in flight), the whole power-of-two-padded fan-in in one
    masked step (up to 8K gathered elements), and one warp per 2K of them. On an H200 (bf16, 90% sparse,
    benchmarks/results/kernels-h200-jax0.11.2.json "sweep") this beat 2-32 rows per program and 2-8 warps
    at batch 1 on 4096x4096 and 4096->14336, and was within noise on 3072->768.
    """
    if batch > GEMV_MAX_BATCH:
        return default_backward_block_sizes(batch, n_out, k)
    block_batch = next_pow2(batch)
    block_k = min(next_pow2(k), max(16, 8192 // block_batch))
    num_warps = max(1, min(8, block_k * block_batch // 2048))
    return BlockSizes(block_out=1, block_k=block_k, block_batch=block_batch, num_warps=num_warps)


def default_backward_block_sizes(batch: int, n_out: int, k: int) -> BlockSizes:
    """Tiles of the backward kernels (and of the forward above batch 16): square-ish, <= 16K live elements."""
    if batch <= 1:
        block_batch = 1
    elif batch <= 16:
        block_batch = next_pow2(batch)
    else:
        block_batch = 32
    widest_k = 64 if block_batch < 32 else 32
    block_k = widest_k if k >= widest_k else max(8, next_pow2(k))
    budget = 16384 // (block_k * block_batch)
    block_out = int(max(16, min(128, budget)))
    while block_out > 16 and n_out <= block_out // 2:
        block_out //= 2
    return BlockSizes(block_out=block_out, block_k=block_k, block_batch=block_batch)


def next_pow2(n: int) -> int:
    """The smallest power of two >= max(n, 1)."""
    return 1 << max(int(n) - 1, 0).bit_length()


def _compiler_params(blocks: BlockSizes):
    if pltriton is None:  # pragma: no cover
        return None
    return pltriton.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)


# ----------------------------------------------------------------------------------------------------- forward


def _weight_tiles(idx_ref, val_ref, *, n_in: int, block_out: int, block_k: int):
    """This program's first output row, and a loader of fan-in step s of its unpadded weight rows.

    The loader returns (ids, take, values): [BO, BK] ids with every slot that reads nothing (past the last row or
    column, empty, out of range) set to 0, the mask of slots that read x, and float32 values (0 outside the
    tile). Reading row 0 for dead slots keeps an Inf elsewhere in x away from padding; callers zero them by
    `take`. The weights stream through once (evict first); x is re-read by every program and stays in cache.
    """
    n_out, k = idx_ref.shape
    row0 = pl.multiple_of(pl.program_id(0) * block_out, block_out)
    rows = row0 + jax.lax.broadcasted_iota(jnp.int32, (block_out, block_k), 0)
    cols = jax.lax.broadcasted_iota(jnp.int32, (block_out, block_k), 1)
    row_ok = rows < n_out

    def load(s):
        k0 = pl.multiple_of(s * block_k, block_k)
        in_tile = row_ok & (k0 + cols < k)
        tile = (pl.ds(row0, block_out), pl.ds(k0, block_k))
        idx = pltriton.load(idx_ref.at[tile], mask=in_tile, other=0, eviction_policy="evict_first")
        idx = as_empty_slot(idx, n_in)  # int32
        take = in_tile & (idx < n_in)
        v = pltriton.load(val_ref.at[tile], mask=in_tile, other=0, eviction_policy="evict_first")
        return jnp.where(take, idx, 0), take, v.astype(jnp.float32)

    return row0, load


def _forward_kernel(idx_ref, val_ref, xt_ref, y_ref, *, n_in: int, block_out: int, block_k: int, n_k_steps: int):
    """One program: y[batch tile, block_out outputs] over the whole fan-in, in chunks of block_k.

    values/indices come unpadded ([n_out, k], any k): loads past the last row or column are masked, as are empty
    slots and out-of-range ids, whose gathered x is replaced by 0 (row 0 is read instead, so an Inf elsewhere in x
    never meets a padded slot). Needing no padded copy of the weights, a batch-1 call is this one kernel.
    """
    n_out = idx_ref.shape[0]
    row0, load = _weight_tiles(idx_ref, val_ref, n_in=n_in, block_out=block_out, block_k=block_k)

    def step(s, acc):
        idx, take, v = load(s)
        xg = xt_ref[idx, :].astype(jnp.float32)  # [BO, BK, BB]: contiguous batch segments
        xg = jnp.where(take[:, :, None], xg, 0.0)
        return acc + jnp.sum(v[:, :, None] * xg, axis=1)

    acc = jax.lax.fori_loop(0, n_k_steps, step, jnp.zeros((block_out, xt_ref.shape[1]), jnp.float32))
    out_cols = row0 + jax.lax.broadcasted_iota(jnp.int32, (xt_ref.shape[1], block_out), 1)
    pltriton.store(y_ref.at[:, pl.ds(row0, block_out)], acc.T.astype(y_ref.dtype), mask=out_cols < n_out)


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


def _forward(xt, values, indices, n_in: int, blocks: BlockSizes, interpret: bool):
    """y [batch_pad, n_out] from xT [>= n_in rows, batch_pad] and values/indices [n_out, k] (padded or not)."""
    batch_pad = xt.shape[1]
    n_out, k = values.shape
    bo, bk, bb = blocks.block_out, blocks.block_k, blocks.block_batch
    out_dtype = jnp.result_type(xt.dtype, values.dtype)
    kernel = functools.partial(_forward_kernel, n_in=n_in, block_out=bo, block_k=bk, n_k_steps=pl.cdiv(k, bk))
    return pl.pallas_call(
        kernel,
        grid=(pl.cdiv(n_out, bo), batch_pad // bb),  # output tiles fastest: one xT batch tile stays in L2
        in_specs=[
            pl.BlockSpec((n_out, k), lambda i, j: (0, 0)),  # rows sliced in the kernel (masked at the edge)
            pl.BlockSpec((n_out, k), lambda i, j: (0, 0)),
            pl.BlockSpec((xt.shape[0], bb), lambda i, j: (0, j)),
        ],
        out_specs=pl.BlockSpec((bb, n_out), lambda i, j: (j, 0)),
        out_shape=jax.ShapeDtypeStruct((batch_pad, n_out), out_dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="condensed_matmul_fwd",
    )(indices, values, xt)


def _forward_batch_major_kernel(
    idx_ref, val_ref, x_ref, y_ref, *, n_in: int, block_out: int, block_k: int, n_k_steps: int
):
    """One program: y[:, block_out outputs] for every (<= GEMV_MAX_BATCH) batch row, over the whole fan-in.

    The weights are loaded once per step as in `_forward_kernel`; the batch is unrolled, each row b gathering
    x[b, idx] ([BO, BK], the batch-1 access pattern) into its own float32 accumulator.
    """
    n_out, batch = idx_ref.shape[0], x_ref.shape[0]
    row0, load = _weight_tiles(idx_ref, val_ref, n_in=n_in, block_out=block_out, block_k=block_k)

    def step(s, accs):
        idx, take, v = load(s)
        out = []
        for b in range(batch):  # static: batch <= GEMV_MAX_BATCH
            xb = pltriton.load(x_ref.at[b, idx], mask=take, other=0).astype(jnp.float32)  # [BO, BK]
            out.append(accs[b] + jnp.sum(v * xb, axis=1))
        return tuple(out)

    zeros = tuple(jnp.zeros((block_out,), jnp.float32) for _ in range(batch))
    accs = jax.lax.fori_loop(0, n_k_steps, step, zeros)
    out_ok = row0 + jax.lax.broadcasted_iota(jnp.int32, (1, block_out), 1) < n_out
    for b in range(batch):
        out = accs[b][None, :].astype(y_ref.dtype)
        pltriton.store(y_ref.at[pl.ds(b, 1), pl.ds(row0, block_out)], out, mask=out_ok)


def _forward_batch_major(x2d, values, indices, blocks: BlockSizes, interpret: bool):
    """y [batch, n_out] from x2d [batch <= GEMV_MAX_BATCH, in] as it is, and unpadded values/indices."""
    batch, n_in = x2d.shape
    n_out, k = values.shape
    bo, bk = blocks.block_out, blocks.block_k
    out_dtype = jnp.result_type(x2d.dtype, values.dtype)
    kernel = functools.partial(
        _forward_batch_major_kernel, n_in=n_in, block_out=bo, block_k=bk, n_k_steps=pl.cdiv(k, bk)
    )
    return pl.pallas_call(
        kernel,
        grid=(pl.cdiv(n_out, bo),),
        in_specs=[
            pl.BlockSpec((n_out, k), lambda i: (0, 0)),
            pl.BlockSpec((n_out, k), lambda i: (0, 0)),
            pl.BlockSpec((batch, n_in), lambda i: (0, 0)),
        ],
        out_specs=pl.BlockSpec((batch, n_out), lambda i: (0, 0)),
        out_shape=jax.ShapeDtypeStruct((batch, n_out), out_dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="condensed_matmul_fwd_batch_major",
    )(indices, values, x2d)


def _check_batch_major(blocks: BlockSizes, batch: int) -> None:
    if blocks.batch_major and batch > GEMV_MAX_BATCH:
        raise ValueError(
            f"block_sizes.batch_major unrolls the batch and supports batch <= {GEMV_MAX_BATCH}, got batch {batch}"
        )


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


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5))
def _condensed(x2d, values, indices, blocks, backward_blocks, interpret):
    if blocks.batch_major:  # inference, one launch: x as it comes, weights unpadded
        return _forward_batch_major(x2d, values, indices, blocks, interpret)
    # Inference: no padded copies at all; xT is x2d.T (a free bitcast at batch 1), padded along batch if needed.
    batch = x2d.shape[0]
    batch_pad = round_up(max(batch, 1), blocks.block_batch)
    xt = x2d.T if batch_pad == batch else jnp.pad(x2d.T, ((0, 0), (0, batch_pad - batch)))
    y = _forward(xt, values, indices, x2d.shape[1], blocks, interpret)
    return y if batch_pad == batch else y[:batch]


def _condensed_fwd(x2d, values, indices, blocks, backward_blocks, interpret):
    # The backward's padded layout (xT with the zero row, values/indices padded to its tiles) is built here and
    # kept as residuals; the forward kernel reads that xT and the unpadded weights.
    operands = _operands(x2d, values, indices, backward_blocks)
    if blocks.batch_major:
        return _forward_batch_major(x2d, values, indices, blocks, interpret), (*operands, indices)
    xt = operands[0]
    if xt.shape[1] % blocks.block_batch:
        xt = jnp.pad(xt, ((0, 0), (0, round_up(xt.shape[1], blocks.block_batch) - xt.shape[1])))
    y = _forward(xt, values, indices, x2d.shape[1], blocks, interpret)[: x2d.shape[0]]
    return y, (*operands, indices)


def _condensed_bwd(blocks, backward_blocks, interpret, residuals, g):
    del blocks  # the forward's tiles; the backward kernels use their own
    return backward(backward_blocks, interpret, residuals, g)


def backward(blocks: BlockSizes, interpret: bool, residuals, g):
    """(grad x, grad values, float0 for indices) from the residuals (xT with the zero row, padded values and
    indices, indices) built with `blocks` and the output cotangent g [batch, n_out]."""
    xt, values_p, indices_p, indices = residuals
    batch, n_out = g.shape
    n_in, batch_pad = xt.shape[0] - 1, xt.shape[1]
    k = indices.shape[1]
    gt = jnp.pad(g.T, ((0, values_p.shape[0] - n_out), (0, batch_pad - batch)))  # [n_out_pad, batch_pad]
    grad_values = _grad_values(xt, gt, indices_p, n_in, values_p.dtype, blocks, interpret)[:n_out, :k]
    grad_x = _grad_x(gt, values_p, indices_p, n_in, xt.dtype, blocks, interpret)[:batch]
    return grad_x, grad_values, np.zeros(indices.shape, dtype=jax.dtypes.float0)


_condensed.defvjp(_condensed_fwd, _condensed_bwd)


def condensed_matmul_pallas(
    x2d,
    values,
    indices,
    *,
    blocks: BlockSizes | None = None,
    backward_blocks: BlockSizes | None = None,
    interpret: bool = False,
):
    """The Pallas backend on checked 2-D inputs: x2d [batch, in], values/indices [n_out, k] -> [batch, n_out].

    Differentiable in x2d and values (custom VJP with two more Pallas kernels); `interpret=True` runs the same
    kernels on any backend (CPU tests). `blocks` tiles the forward kernel, `backward_blocks` the backward ones
    (each defaults to its `default_*block_sizes`; the backward never uses `batch_major` tiles).
    """
    batch, (n_out, k) = x2d.shape[0], values.shape
    if blocks is None:
        blocks = default_block_sizes(batch, n_out, k)
    if backward_blocks is None or backward_blocks.batch_major:
        backward_blocks = default_backward_block_sizes(batch, n_out, k)
    _check_batch_major(blocks, batch)
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    return _condensed(x2d.astype(dtype), values.astype(dtype), indices, blocks, backward_blocks, interpret)
