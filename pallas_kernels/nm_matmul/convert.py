"""The N:M storage format: compress a dense kernel, decompress it back, and bit-pack the in-group positions.

A kernel W [in_features, n_out] (y = x @ W) is N:M sparse when, for every output o and every group g of M
consecutive input rows, at most N entries of W[g*M:(g+1)*M, o] are nonzero. It is stored as

    values    [n_out, in_features // M, N]   the kept entries
    positions [n_out, in_features // M, N]   their offsets 0..M-1 inside the group

so W[g*M + positions[o, g, n], o] = values[o, g, n]. Repeated positions in a group add up (decompression is a
one-hot sum), and a position outside [0, M) contributes nothing, so no backend ever indexes memory with it.

Packed positions store one field per entry, fields little-endian inside each byte, over the flattened
(group, n) stream of each output row: packed [n_out, ceil(groups * N / per_byte)] uint8. Fields are 1, 2, 4, 4
bits for M = 2, 4, 8, 16. M = 8 gets 4-bit fields rather than 3 so that no field straddles a byte: the GPU kernel
then decodes an aligned byte tile with one shift and mask per field instead of gathering byte pairs (cost: 0.5
byte more per 4:8 group, ~5% of a bf16 layer's bytes).
"""

import jax
import jax.numpy as jnp
import numpy as np

from ._validate import (
    PACKABLE_M,
    check_m,
    check_nm_format,
    check_positions_in_range,
    entries_per_byte,
    packed_length,
    position_bits,
)

__all__ = [
    "PACKABLE_M",
    "entries_per_byte",
    "nm_compress",
    "nm_decompress",
    "pack_positions",
    "packed_length",
    "position_bits",
    "unpack_positions",
]


def _field_shifts(m: int, ndim: int):
    per_byte = entries_per_byte(m)
    shape = (1,) * (ndim - 1) + (per_byte,)
    return jax.lax.broadcasted_iota(jnp.int32, shape, ndim - 1) * position_bits(m)


def pack_positions(positions, m: int):
    """[..., groups, n] positions in [0, m) -> [..., packed_length(groups, n, m)] uint8.

    Concrete positions are range-checked; traced ones are masked to the field width (a field cannot represent
    an out-of-range position, so those would silently alias in-range ones).
    """
    position_bits(m)  # raises for an m that cannot be packed
    m = int(m)
    if not hasattr(positions, "ndim") or positions.ndim < 2:
        raise ValueError(f"positions must have shape [..., groups, n], got {getattr(positions, 'shape', positions)}")
    if not jnp.issubdtype(positions.dtype, jnp.integer):
        raise ValueError(f"positions must be an integer array, got dtype {positions.dtype}")
    check_positions_in_range(positions, m)
    *lead, groups, n = positions.shape
    per_byte = entries_per_byte(m)
    length = packed_length(groups, n, m)
    mask = (1 << position_bits(m)) - 1
    flat = positions.reshape(*lead, groups * n).astype(jnp.int32) & mask
    flat = jnp.pad(flat, [(0, 0)] * len(lead) + [(0, length * per_byte - groups * n)])
    fields = flat.reshape(*lead, length, per_byte) << _field_shifts(m, len(lead) + 2)
    # Fields occupy disjoint bits, so their sum is their bitwise or.
    return jnp.sum(fields, axis=-1).astype(jnp.uint8)


def unpack_positions(packed, n: int, m: int, groups: int):
    """Inverse of `pack_positions`: [..., packed_length(groups, n, m)] uint8 -> [..., groups, n] uint8."""
    position_bits(m)  # raises for an m that cannot be packed
    m = int(m)
    for name, value in (("n", n), ("groups", groups)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not hasattr(packed, "ndim") or packed.ndim < 1 or packed.dtype != jnp.uint8:
        raise ValueError(
            f"packed must be a uint8 array [..., bytes], got {getattr(packed, 'dtype', type(packed).__name__)}"
        )
    length = packed_length(groups, n, m)
    if packed.shape[-1] != length:
        raise ValueError(f"packed has {packed.shape[-1]} bytes per row; groups={groups}, n={n}, m={m} need {length}")
    return _unpack(packed, n, m, groups)


def _unpack(packed, n: int, m: int, groups: int):
    lead = packed.shape[:-1]
    mask = (1 << position_bits(m)) - 1
    fields = (packed.astype(jnp.int32)[..., None] >> _field_shifts(m, len(lead) + 2)) & mask
    flat = fields.reshape(*lead, -1)[..., : groups * n]
    return flat.reshape(*lead, groups, n).astype(jnp.uint8)


def unpacked(values, positions, m: int, packed: bool):
    """The [n_out, groups, n] positions of a checked layer, unpacking them when `packed`."""
    if not packed:
        return positions
    _, groups, n = values.shape
    return _unpack(positions, n, m, groups)


def _one_hot(positions, m: int):
    """[..., n] positions -> [..., n, m] bool; out-of-range positions match no offset."""
    offsets = jax.lax.broadcasted_iota(jnp.int32, (1,) * positions.ndim + (m,), positions.ndim)
    return positions.astype(jnp.int32)[..., None] == offsets


def decompress(values, positions, m: int):
    """Unchecked decompression of unpacked positions: [n_out, groups, n] -> dense [groups * m, n_out]."""
    n_out, groups, _ = values.shape
    hits = jnp.where(_one_hot(positions, m), values[..., None], jnp.zeros((), values.dtype))
    return jnp.sum(hits, axis=2).reshape(n_out, groups * m).T


def gather_kept(dense, positions, m: int, dtype):
    """The transpose of `decompress`: dense [groups * m, n_out] -> its entries at the kept positions."""
    n_out, groups, _ = positions.shape
    by_group = dense.T.reshape(n_out, groups, 1, m)
    picked = jnp.where(_one_hot(positions, m), by_group, jnp.zeros((), dense.dtype))
    return jnp.sum(picked, axis=3).astype(dtype)


def nm_decompress(values, positions, m: int, *, packed: bool = False):
    """Dense kernel [in_features, n_out] (in_features = groups * m) of an N:M layer, in the dtype of values."""
    m = check_m(m)
    check_nm_format(values, positions, m, packed)
    return decompress(values, unpacked(values, positions, m, packed), m)


def nm_compress(kernel, n: int, m: int):
    """Keeps the n largest |w| of every group of m consecutive input rows of each output column.

    Args:
      kernel: dense [in_features, n_out] floating point, in_features a multiple of m.
      n, m: 1 <= n <= m.

    Returns:
      (values [n_out, in_features // m, n], positions [n_out, in_features // m, n]); positions are sorted
      ascending within each group, uint8 when m <= 256 (else int32). Ties keep the lowest offsets.
    """
    m = check_m(m)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= m:
        raise ValueError(f"n must be an int with 1 <= n <= m = {m}, got {n!r}")
    if not hasattr(kernel, "ndim") or kernel.ndim != 2:
        raise ValueError(f"kernel must have shape [in_features, n_out], got {getattr(kernel, 'shape', kernel)}")
    if not jnp.issubdtype(kernel.dtype, jnp.floating):
        raise ValueError(f"kernel must be floating point, got dtype {kernel.dtype}")
    in_features, n_out = kernel.shape
    if in_features % m:
        raise ValueError(f"kernel in_features = {in_features} must be a multiple of m = {m}")
    groups = in_features // m
    by_group = kernel.T.reshape(n_out, groups, m)
    # A stable sort on -|w| puts equal magnitudes in offset order, so ties keep the lowest offsets.
    order = jnp.argsort(-jnp.abs(by_group), axis=-1, stable=True)[..., :n]
    positions = jnp.sort(order, axis=-1)
    values = jnp.take_along_axis(by_group, positions, axis=-1)
    return values, positions.astype(jnp.uint8 if m <= 256 else jnp.int32)
