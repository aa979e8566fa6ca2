"""Pallas (Triton lowering) backend of the N:M matmul: decode the weight tile in registers, then a dense MMA.

Hopper has no sparse tensor-core MMA reachable from JAX (no `wgmma.sp`, no sparse Triton dot; see
../shared/reference/kernels.md §3), so on H100 N:M saves bytes, not FLOPs: the kernel streams the compressed
values and bit-packed positions (1.125 B per weight for 2:4 bf16 against 2 B dense), rebuilds the dense tile in
registers and feeds it to a dense `jnp.dot`. That can win only while the dense GEMM is weight-bandwidth bound,
i.e. at small batch; the first H200 measurement (api.GPU_KERNEL_MAX_BATCH) shows it does not win yet.

Grid (n_out tiles, batch tiles). A program owns y[batch tile, output tile] and loops over the input dim in
chunks of BI (a multiple of M): it loads the row-major x tile [BB, BI], the values [BO, BI/M, N] and the
positions of the chunk, decodes W[o, g*M + j] = sum_n v[o, g, n] * (pos[o, g, n] == j) by a broadcast compare
and a sum over n, and accumulates x_tile @ W_tile^T in float32. BB, BI, BO >= 16 keep the dot on tensor cores
(f32 inputs run as TF32, as XLA's default-precision dense dot does).

Triton needs every tensor dimension a power of two, so the wrapper pads: batch to BB, n_out to BO, the group
count to BI/M, N to a power of two (zero values; such layers pay an unpack per call, so store them at N rounded
up), and M to a power of two by inserting zero columns into every group of x. Padding never introduces a
nonzero weight, and positions are only ever compared, never used as addresses, so out-of-range positions
contribute nothing instead of reading wild memory.

Backward (custom VJP, XLA on the decompressed weight - dense for the same no-sparse-MMA reason):
  grad x      = dy @ W^T
  grad values = (x^T dy) gathered at the kept positions
  positions get a float0 (no) cotangent.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import pallas as pl

from pallas_kernels._common import check_launch_params, check_positive_pow2, round_up

from ._validate import entries_per_byte, position_bits
from .convert import decompress, gather_kept, unpacked

try:  # the Triton backend's compiler params; absent from a jax built without Pallas GPU support
    from jax.experimental.pallas import triton as pltriton
except ImportError:  # pragma: no cover - every supported jax has it
    pltriton = None

__all__ = ["KERNEL_DTYPES", "BlockSizes", "default_block_sizes", "nm_matmul_pallas"]

# Tensor-core dtypes; f64 has no Triton MMA at these tile shapes and goes to XLA.
KERNEL_DTYPES = (jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
# Elements of the [BO, BI/M, N, M] one-hot decode live at once; beyond this the registers spill badly.
MAX_DECODE_ELEMENTS = 65536


def _next_pow2(n: int) -> int:
    return 1 << max(int(n) - 1, 0).bit_length()


@dataclasses.dataclass(frozen=True)
class BlockSizes:
    """Tile sizes (powers of two, >= 16 for the tensor-core dot) and Triton launch parameters.

    block_out: outputs per program (BO). block_in: input features per loop step (BI), a multiple of M.
    block_batch: batch rows per program (BB). The decode holds BO * BI * N elements: keep it <= ~16K.
    """

    block_out: int = 16
    block_in: int = 128
    block_batch: int = 16
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self):
        for name in ("block_out", "block_in", "block_batch"):
            value = check_positive_pow2(name, getattr(self, name))
            if value < 16:
                raise ValueError(f"{name} must be >= 16 (the smallest tensor-core dot tile), got {value}")
        check_launch_params(self)


def _min_block_in(n: int, m: int, packed: bool) -> int:
    """Smallest BI: whole groups per step, and whole bytes of packed positions per step."""
    m_pad, n_pad = _next_pow2(m), _next_pow2(n)
    lowest = max(16, m_pad)
    if packed and n_pad == n:
        lowest = max(lowest, entries_per_byte(m) * m_pad // n_pad)
    return lowest


def default_block_sizes(batch: int, in_features: int, n: int, m: int, packed: bool = False) -> BlockSizes:
    """Many narrow programs (BO = 16) with a long input step and a decode of <= 8K elements.

    Best of a sweep on an H200 (4096 x 4096, 2:4 bf16, packed, batch 1-64): BO = 16 beat 32 and 64 by 1.2-2.4x
    (the kernel is bandwidth bound and needs programs on every SM), and BI = 256 beat 64 and 128.
    """
    n_pad = _next_pow2(n)
    block_batch = 16 if batch <= 16 else 32 if batch <= 32 else 64
    block_in = max(_min_block_in(n, m, packed), min(256, 8192 // (16 * n_pad), _next_pow2(in_features)))
    return BlockSizes(block_out=16, block_in=block_in, block_batch=block_batch)


def _check_blocks(blocks: BlockSizes, n: int, m: int, packed: bool) -> None:
    n_pad = _next_pow2(n)
    lowest = _min_block_in(n, m, packed)
    if blocks.block_in < lowest:
        raise ValueError(
            f"block_sizes.block_in = {blocks.block_in} is too small for n = {n}, m = {m}"
            f"{', packed' if packed else ''}: it must be >= {lowest}"
        )
    live = blocks.block_out * blocks.block_in * n_pad
    if live > MAX_DECODE_ELEMENTS:
        raise ValueError(
            f"block_sizes: block_out * block_in * n = {blocks.block_out} * {blocks.block_in} * {n_pad} = {live} "
            f"exceeds {MAX_DECODE_ELEMENTS} live decode elements per program; use smaller tiles "
            f"(or implementation='xla' for this n:m)"
        )


def _compiler_params(blocks: BlockSizes):
    if pltriton is None:  # pragma: no cover
        return None
    return pltriton.CompilerParams(num_warps=blocks.num_warps, num_stages=blocks.num_stages)


# ----------------------------------------------------------------------------------------------------- forward


def _decode_packed(raw, m: int, groups: int, n: int):
    """[BO, bytes] uint8 -> [BO, groups, n] int32 positions (fields little-endian inside each byte)."""
    per_byte, bits = entries_per_byte(m), position_bits(m)
    shifts = jax.lax.broadcasted_iota(jnp.int32, (1, 1, per_byte), 2) * bits
    fields = (raw.astype(jnp.int32)[:, :, None] >> shifts) & ((1 << bits) - 1)
    return fields.reshape(raw.shape[0], groups, n)


def _forward_kernel(x_ref, v_ref, p_ref, y_ref, *, m: int, m_pad: int, packed: bool, block_in: int, n_steps: int):
    block_out, _, n = v_ref.shape
    groups = block_in // m_pad
    offsets = jax.lax.broadcasted_iota(jnp.int32, (1, 1, 1, m_pad), 3)

    def step(s, acc):
        i0 = pl.multiple_of(s * block_in, block_in)
        g0 = pl.multiple_of(s * groups, groups)
        x = x_ref[:, pl.ds(i0, block_in)]  # [BB, BI]
        v = v_ref[:, pl.ds(g0, groups), :].astype(jnp.float32)  # [BO, BI/M, N]
        if packed:
            n_bytes = groups * n // entries_per_byte(m)
            b0 = pl.multiple_of(s * n_bytes, n_bytes)
            pos = _decode_packed(p_ref[:, pl.ds(b0, n_bytes)], m, groups, n)
        else:
            pos = p_ref[:, pl.ds(g0, groups), :].astype(jnp.int32)
        hits = jnp.where(pos[:, :, :, None] == offsets, v[:, :, :, None], 0.0)  # [BO, BI/M, N, M]
        w = jnp.sum(hits, axis=2).reshape(block_out, block_in).astype(x.dtype)
        return acc + jax.lax.dot_general(x, w, (((1,), (1,)), ((), ())), preferred_element_type=jnp.float32)

    acc = jax.lax.fori_loop(0, n_steps, step, jnp.zeros((x_ref.shape[0], block_out), jnp.float32))
    y_ref[...] = acc.astype(y_ref.dtype)


def _pad_to(a, shape, value=0):
    pad = [(0, t - s) for s, t in zip(a.shape, shape, strict=True)]
    return jnp.pad(a, pad, constant_values=value) if any(p for _, p in pad) else a


def _forward(x2d, values, positions, m: int, packed: bool, blocks: BlockSizes, interpret: bool):
    batch, _ = x2d.shape
    n_out, groups, n = values.shape
    m_pad, n_pad = _next_pow2(m), _next_pow2(n)
    bo, bi, bb = blocks.block_out, blocks.block_in, blocks.block_batch
    if n_pad != n:
        positions, packed = unpacked(values, positions, m, packed), False
    groups_pad = round_up(groups, bi // m_pad)
    n_out_pad, batch_pad = round_up(n_out, bo), round_up(max(batch, 1), bb)
    values_p = _pad_to(values, (n_out_pad, groups_pad, n_pad))
    if packed:
        positions_p = _pad_to(positions, (n_out_pad, groups_pad * n // entries_per_byte(m)))
        p_block = (bo, positions_p.shape[1])
    else:
        positions_p = _pad_to(positions, (n_out_pad, groups_pad, n_pad))
        p_block = (bo, groups_pad, n_pad)
    xg = x2d.reshape(batch, groups, m)
    xg = _pad_to(xg, (batch_pad, groups_pad, m_pad))  # zero columns for the padded group offsets
    x_p = xg.reshape(batch_pad, groups_pad * m_pad)
    out_dtype = jnp.result_type(x2d.dtype, values.dtype)
    kernel = functools.partial(
        _forward_kernel, m=m, m_pad=m_pad, packed=packed, block_in=bi, n_steps=groups_pad * m_pad // bi
    )
    y = pl.pallas_call(
        kernel,
        grid=(n_out_pad // bo, batch_pad // bb),
        in_specs=[
            pl.BlockSpec((bb, x_p.shape[1]), lambda i, j: (j, 0)),
            pl.BlockSpec((bo, groups_pad, n_pad), lambda i, j: (i, 0, 0)),
            pl.BlockSpec(p_block, lambda i, j: (i,) + (0,) * (len(p_block) - 1)),
        ],
        out_specs=pl.BlockSpec((bb, bo), lambda i, j: (j, i)),
        out_shape=jax.ShapeDtypeStruct((batch_pad, n_out_pad), out_dtype),
        compiler_params=_compiler_params(blocks),
        interpret=interpret,
        name="nm_matmul_fwd",
    )(x_p, values_p, positions_p)
    return y[:batch, :n_out]


# -------------------------------------------------------------------------------------------------- custom VJP


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _nm(x2d, values, positions, m, packed, blocks, interpret):
    return _forward(x2d, values, positions, m, packed, blocks, interpret)


def _nm_fwd(x2d, values, positions, m, packed, blocks, interpret):
    return _forward(x2d, values, positions, m, packed, blocks, interpret), (x2d, values, positions)


def _nm_bwd(m, packed, blocks, interpret, residuals, g):
    del blocks, interpret
    x2d, values, positions = residuals
    pos = unpacked(values, positions, m, packed)
    kernel = decompress(values, pos, m)  # [in, n_out]
    grad_x = jnp.dot(g, kernel.T, preferred_element_type=jnp.float32).astype(x2d.dtype)
    grad_kernel = jnp.dot(x2d.T, g, preferred_element_type=jnp.float32)
    grad_values = gather_kept(grad_kernel, pos, m, values.dtype)
    return grad_x, grad_values, np.zeros(positions.shape, dtype=jax.dtypes.float0)


_nm.defvjp(_nm_fwd, _nm_bwd)


def nm_matmul_pallas(
    x2d, values, positions, *, m: int, packed: bool, blocks: BlockSizes | None = None, interpret: bool = False
):
    """The Pallas backend on checked 2-D inputs: x2d [batch, in] -> [batch, n_out] in the promoted dtype.

    Differentiable in x2d and values; `interpret=True` runs the same kernel on any backend (CPU tests).
    """
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    if dtype not in KERNEL_DTYPES:
        raise ValueError(f"the pallas backend supports dtypes {[str(d) for d in KERNEL_DTYPES]}, got {dtype}")
    _, groups, n = values.shape
    if blocks is None:
        blocks = default_block_sizes(x2d.shape[0], groups * m, n, m, packed)
    _check_blocks(blocks, n, m, packed)
    return _nm(x2d.astype(dtype), values.astype(dtype), positions, m, packed, blocks, interpret)
