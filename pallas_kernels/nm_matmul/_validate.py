"""Argument checks shared by every N:M backend, and the packed-field arithmetic they check against."""

import jax.numpy as jnp
import numpy as np

from pallas_kernels._common import is_concrete

__all__ = [
    "PACKABLE_M",
    "check_m",
    "check_nm_args",
    "check_nm_format",
    "check_positions_in_range",
    "entries_per_byte",
    "packed_length",
    "position_bits",
]

PACKABLE_M = (2, 4, 8, 16)
# M = 8 gets 4-bit fields rather than 3 so that no field straddles a byte (see convert.py).
_FIELD_BITS = {2: 1, 4: 2, 8: 4, 16: 4}


def check_m(m) -> int:
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
        raise ValueError(f"m must be a positive int, got {m!r}")
    return int(m)


def _check_packable(m) -> int:
    m = check_m(m)
    if m not in _FIELD_BITS:
        raise ValueError(
            f"m must be one of {PACKABLE_M} to pack positions, got {m}; store positions unpacked as uint8 instead"
        )
    return m


def position_bits(m: int) -> int:
    """Bits of one packed position field for group size m (1, 2, 4, 4 for m = 2, 4, 8, 16)."""
    return _FIELD_BITS[_check_packable(m)]


def entries_per_byte(m: int) -> int:
    return 8 // position_bits(m)


def packed_length(groups: int, n: int, m: int) -> int:
    """Bytes per output row of packed positions: groups * n fields, rounded up to whole bytes."""
    return -(-(groups * n) // entries_per_byte(m))


def _host_fields(packed: np.ndarray, m: int) -> np.ndarray:
    bits = position_bits(m)
    shifts = np.arange(8 // bits, dtype=np.int32) * bits
    return ((packed.astype(np.int32)[..., None] >> shifts) & ((1 << bits) - 1)).reshape(*packed.shape[:-1], -1)


def check_positions_in_range(positions, m: int, *, packed: bool = False, count: int | None = None) -> None:
    """Concrete positions must lie in [0, m); traced ones cannot be checked (backends then drop them).

    For packed positions only the first `count` fields of each row are real; fields can only exceed m when a
    field is wider than log2(m) bits (m = 8).
    """
    if not is_concrete(positions) or not positions.size:
        return
    if packed:
        if (1 << position_bits(m)) == m:
            return
        host = _host_fields(np.asarray(positions), m)[..., :count]
    else:
        host = np.asarray(positions)
    if not host.size:
        return
    lo, hi = int(host.min()), int(host.max())
    if lo < 0 or hi >= m:
        raise ValueError(f"positions out of range [0, {m}): found values in [{lo}, {hi}]")


def check_nm_format(values, positions, m: int, packed: bool, *, in_features: int | None = None) -> None:
    """Validates an N:M layer (values, positions) for group size m; raises ValueError naming the argument."""
    if not isinstance(packed, bool):
        raise ValueError(f"packed must be a bool, got {packed!r}")
    for name, arr in (("values", values), ("positions", positions)):
        if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
            raise ValueError(f"{name} must be an array, got {type(arr).__name__}")
    if values.ndim != 3:
        raise ValueError(f"values must have shape [n_out, groups, n], got {values.shape}")
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise ValueError(f"values must be floating point, got dtype {values.dtype}")
    n_out, groups, n = values.shape
    if not 1 <= n <= m:
        raise ValueError(f"values.shape[2] = n = {n} must satisfy 1 <= n <= m = {m}")
    if in_features is not None and groups * m != in_features:
        raise ValueError(
            f"x has {in_features} input features but values has {groups} groups of m = {m} "
            f"({groups * m} features); in_features must equal groups * m"
        )
    if packed:
        length = packed_length(groups, n, m)
        if positions.dtype != jnp.uint8:
            raise ValueError(f"packed positions must be uint8, got dtype {positions.dtype}")
        if positions.shape != (n_out, length):
            raise ValueError(
                f"packed positions must have shape ({n_out}, {length}) for {groups} groups of n = {n}, m = {m}; "
                f"got {positions.shape}"
            )
        check_positions_in_range(positions, m, packed=True, count=groups * n)
    else:
        if not jnp.issubdtype(positions.dtype, jnp.integer):
            raise ValueError(f"positions must be an integer array, got dtype {positions.dtype}")
        if positions.shape != values.shape:
            raise ValueError(
                f"positions shape {positions.shape} must equal values shape {values.shape} "
                "(pass packed=True for packed positions)"
            )
        check_positions_in_range(positions, m)


def check_nm_args(x, values, positions, bias, *, m, packed: bool) -> int:
    """Checks the arguments of an N:M matmul; returns m as an int."""
    m = check_m(m)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"x must be an array, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"x must have ndim >= 1 ([..., in_features]), got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")
    check_nm_format(values, positions, m, packed, in_features=x.shape[-1])
    if bias is not None and (not hasattr(bias, "shape") or bias.shape != (values.shape[0],)):
        raise ValueError(f"bias must have shape ({values.shape[0]},), got {getattr(bias, 'shape', bias)}")
    return m
