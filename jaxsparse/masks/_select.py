"""Exact top-n selection with a traced n, without sorting.

`top_n_mask` finds the n-th largest score by a 32-step bisection on the bits of an order-preserving
integer encoding of float32 (radix select), then takes everything above it plus the first ties by index.
Each step is one compare-and-count pass, so selecting among a million entries costs ~32 vectorised passes
instead of an O(N log N) sort (XLA's CPU sort is slow), and n may be a traced value: changing it never
recompiles. Ties go to the lower index, the same rule as a stable descending sort.

Two things keep the passes cheap on CPU (a 1024 x 1024 selection: 31 ms -> 3.6 ms): counts accumulate
along the leading axis of a 2-D view in int16 (a wide vector of narrow lanes; XLA's flat int32 reduction
is the slow part), and ranking the ties by index runs only when some ties must be left out, as a second
bisection over positions (no prefix sum: XLA's CPU cumsum costs more than the whole selection).
"""

import jax.numpy as jnp
from jax import lax

__all__ = ["top_n_mask"]

_SIGN = jnp.uint32(0x80000000)


def _order_keys(scores):
    """uint32 keys with the order of float32 scores (-inf smallest); 0 is reserved for invalid entries."""
    bits = lax.bitcast_convert_type(scores.astype(jnp.float32), jnp.uint32)
    keys = jnp.where(bits & _SIGN, ~bits, bits | _SIGN)  # negative floats: flip all bits; positive: set sign
    return jnp.maximum(keys, jnp.uint32(1))


def _count_dtype(length: int):
    """The narrowest accumulator that holds a count of up to `length` (int16 keeps twice the lanes of int32)."""
    return jnp.int16 if length <= jnp.iinfo(jnp.int16).max else jnp.int32


def top_n_mask(scores, n, *, valid=None, axis: int | None = None):
    """Bool mask selecting the n largest valid scores (fewer if fewer are valid); ties: lower index first.

    Args:
      scores: float array (NaN is not supported).
      n: int (Python or traced); with `axis`, an int array broadcastable to the other axes' shape.
      valid: optional bool mask of candidate entries (default: all).
      axis: None selects over the whole array; an int selects independently along that axis.

    Returns:
      A bool array of `scores.shape`.
    """
    scores = jnp.asarray(scores)
    keys = _order_keys(scores)
    if valid is not None:
        keys = jnp.where(valid, keys, jnp.uint32(0))
    if axis is None:
        # Whole-array selection on a 2-D view [rest, last] (free for row-major arrays): count along the
        # leading axis per column in a narrow accumulator, then add the columns up in int32.
        keys = keys.reshape(-1, keys.shape[-1]) if keys.ndim >= 2 else keys.reshape(-1, 1)
        narrow = _count_dtype(keys.shape[0])
        n = jnp.asarray(n, jnp.int32)
        if n.size != 1:
            raise ValueError(f"n must be a scalar when axis is None, got shape {n.shape}")
        n = n.reshape(())
        n_shape: tuple[int, ...] = ()

        def count(selected):
            return jnp.sum(jnp.sum(selected, axis=0, dtype=narrow), dtype=jnp.int32)

        n_positions = keys.size

        def position():  # flat row-major index into the 2-D view
            rows = lax.broadcasted_iota(jnp.int32, keys.shape, 0)
            return rows * keys.shape[1] + lax.broadcasted_iota(jnp.int32, keys.shape, 1)

    else:
        if not -scores.ndim <= axis < scores.ndim:
            raise ValueError(f"axis must be in [-{scores.ndim}, {scores.ndim}), got {axis}")
        axis = axis % scores.ndim
        narrow = _count_dtype(keys.shape[axis])
        n_shape = (*keys.shape[:axis], 1, *keys.shape[axis + 1 :])
        # Reductions run along `axis` in place (no transpose), so callers keep the arrays' own layout.
        n = jnp.expand_dims(jnp.asarray(n, jnp.int32), axis) if jnp.ndim(n) else jnp.asarray(n, jnp.int32)
        n = jnp.broadcast_to(n, n_shape)

        def count(selected):
            return jnp.sum(selected, axis=axis, keepdims=True, dtype=narrow).astype(jnp.int32)

        n_positions = keys.shape[axis]

        def position():
            return lax.broadcasted_iota(jnp.int32, keys.shape, axis)

    def bit_step(i, threshold):
        candidate = threshold | jnp.left_shift(jnp.uint32(1), (31 - i).astype(jnp.uint32))
        return jnp.where(count(keys >= candidate) >= n, candidate, threshold)

    # The largest threshold T with count(keys >= T) >= n: the n-th largest key (2^32 - 1 when n = 0).
    threshold = lax.fori_loop(0, 32, bit_step, jnp.zeros(n_shape, jnp.uint32))
    above = keys > threshold  # never an invalid entry: their key 0 is below every threshold
    ties = (keys == threshold) & (threshold > 0)
    ties_needed = n - count(above)

    def first_ties_by_position():
        # The ties at positions below B, for the largest B with count(ties below B) <= ties_needed: exactly
        # the first ties_needed of them, since each position adds at most one. Found by bisection on B's bits,
        # like the threshold: a handful of operations in one loop, where a prefix sum over the array
        # (`cumsum`) would cost more than the whole selection and `associative_scan` ~100 operations per call.
        pos = position()
        n_bits = n_positions.bit_length()  # B reaches n_positions: slices whose ties all fit keep them all

        def pos_step(i, bound):
            candidate = bound | jnp.left_shift(jnp.int32(1), (n_bits - 1 - i).astype(jnp.int32))
            return jnp.where(count(ties & (pos < candidate)) <= ties_needed, candidate, bound)

        bound = lax.fori_loop(0, n_bits, pos_step, jnp.zeros(n_shape, jnp.int32))
        return ties & (pos < bound)

    # Usually every tie fits (continuous scores have one entry at the threshold): skip the tie ranking.
    chosen_ties = lax.cond(jnp.all(count(ties) <= ties_needed), lambda: ties, first_ties_by_position)
    return (above | chosen_ties).reshape(scores.shape)
