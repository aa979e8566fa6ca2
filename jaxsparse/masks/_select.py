"""Exact top-n selection with a traced n, without sorting.

`top_n_mask` finds the n-th largest score by a 32-step bisection on the bits of an order-preserving
integer encoding of float32 (radix select), then takes everything above it plus the first ties by index.
Each step is one compare-and-count pass, so selecting among a million entries costs ~32 vectorised passes
instead of an O(N log N) sort (XLA's CPU sort is slow), and n may be a traced value: changing it never
recompiles. Ties go to the lower index, the same rule as a stable descending sort.
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
        keys = keys.reshape(-1)
        axis = 0
        n_shape: tuple[int, ...] = (1,)
    else:
        if not -scores.ndim <= axis < scores.ndim:
            raise ValueError(f"axis must be in [-{scores.ndim}, {scores.ndim}), got {axis}")
        axis = axis % scores.ndim
        n_shape = (*keys.shape[:axis], 1, *keys.shape[axis + 1 :])
    # Reductions run along `axis` in place (no transpose), so callers keep the arrays' own layout.
    n = jnp.expand_dims(jnp.asarray(n, jnp.int32), axis) if jnp.ndim(n) else jnp.asarray(n, jnp.int32)
    n = jnp.broadcast_to(n, n_shape)

    def count_at_least(threshold):
        return jnp.sum(keys >= threshold, axis=axis, keepdims=True, dtype=jnp.int32)

    def bit_step(i, threshold):
        candidate = threshold | jnp.left_shift(jnp.uint32(1), jnp.uint32(31 - i))
        return jnp.where(count_at_least(candidate) >= n, candidate, threshold)

    # The largest threshold T with count(keys >= T) >= n: the n-th largest key (2^32 - 1 when n = 0).
    threshold = lax.fori_loop(0, 32, bit_step, jnp.zeros(n_shape, jnp.uint32))
    above = keys > threshold
    ties_needed = n - jnp.sum(above, axis=axis, keepdims=True, dtype=jnp.int32)
    ties = (keys == threshold) & (keys > 0)
    chosen = above | (ties & (jnp.cumsum(ties, axis=axis, dtype=jnp.int32) <= ties_needed))
    return (chosen & (keys > 0)).reshape(scores.shape)
