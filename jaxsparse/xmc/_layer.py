"""The fixed fan-in output layer of SPARTEX (Ullah et al. 2024) and its in-row SET rewiring.

Every label row keeps exactly `fan_in` (value, input index) slots. The forward is the core's
`condensed_matmul` with the fan-in processed in chunks, so memory stays O(batch * labels): no [labels, d]
dense weight and no [batch, labels, fan_in] gather is ever built. Rewiring overwrites the pruned slots in
place with fresh random inputs at weight zero, so the fan-in is constant by construction.
"""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse._checks import check_int
from jaxsparse.condensed import condensed_matmul
from jaxsparse.masks import top_n_mask

__all__ = ["fixed_fan_in_logits", "init_fixed_fan_in", "set_rewire"]


def init_fixed_fan_in(key, in_features: int, num_labels: int, fan_in: int, *, dtype=jnp.float32, row_chunk=65536):
    """Random fixed fan-in layer: each label draws `fan_in` distinct inputs uniformly; values ~ N(0, 1/fan_in).

    Rows are drawn in chunks of `row_chunk` (top-k of uniform noise), so memory stays
    O(row_chunk * in_features) even for millions of labels.

    Returns:
      (values [num_labels, fan_in], indices [num_labels, fan_in] int32, ascending per row).
    """
    in_features = check_int(in_features, "in_features", minimum=1)
    num_labels = check_int(num_labels, "num_labels", minimum=1)
    fan_in = check_int(fan_in, "fan_in", minimum=1)
    row_chunk = check_int(row_chunk, "row_chunk", minimum=1)
    if fan_in > in_features:
        raise ValueError(f"fan_in must be <= in_features={in_features}, got {fan_in}")
    k_idx, k_val = jax.random.split(key)

    @jax.jit
    def draw(k, start):
        scores = jax.random.uniform(jax.random.fold_in(k, start), (row_chunk, in_features))
        return jnp.sort(jax.lax.top_k(scores, fan_in)[1], axis=1).astype(jnp.int32)

    parts = [draw(k_idx, start)[: min(row_chunk, num_labels - start)] for start in range(0, num_labels, row_chunk)]
    indices = jnp.concatenate(parts, axis=0)
    values = (jax.random.normal(k_val, (num_labels, fan_in), jnp.float32) / np.sqrt(fan_in)).astype(dtype)
    return values, indices


def fixed_fan_in_logits(x, values, indices, bias=None, *, fan_in_chunk: int | None = 8):
    """logits[b, l] = sum_j values[l, j] * x[b, indices[l, j]] (+ bias[l]), chunked over the fan-in."""
    # The XLA gather with a chunked fan-in keeps memory O(batch * labels); the dense fallback would not.
    y = condensed_matmul(x, values, indices, implementation="xla", fan_in_chunk=fan_in_chunk)
    if bias is not None:
        if bias.shape != (values.shape[0],):
            raise ValueError(f"bias must have shape ({values.shape[0]},), got {bias.shape}")
        y = y + bias.reshape((1,) * (y.ndim - 1) + (-1,))
    return y


def set_rewire(key, values, indices, *, in_features: int, fraction=None, threshold=None):
    """SET rewiring within rows: prune small weights, regrow each pruned slot at a random input with value 0.

    Exactly one of:
      fraction: prune the round(fraction * size) smallest |w| over the whole layer (ties: lower flat index);
        must be a static Python float.
      threshold: prune every |w| < threshold (may be traced, e.g. cosine-decayed).

    Regrown slots get a uniformly random input index (duplicates within a row are allowed and add up, as in
    the reference implementation), so every row keeps exactly fan_in slots.

    Returns:
      (values, indices, rewired) with `rewired` the bool [labels, fan_in] map of overwritten slots.
    """
    if (fraction is None) == (threshold is None):
        raise ValueError("give exactly one of fraction= or threshold=")
    in_features = check_int(in_features, "in_features", minimum=1)
    if values.shape != indices.shape or values.ndim != 2:
        raise ValueError(f"values and indices must both be [labels, fan_in]; got {values.shape}, {indices.shape}")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, float | int) or not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction must be a float in [0, 1], got {fraction!r}")
        rewired = top_n_mask(-jnp.abs(values).astype(jnp.float32), round(fraction * values.size))
    else:
        rewired = jnp.abs(values) < threshold
    fresh = jax.random.randint(key, indices.shape, 0, in_features, dtype=indices.dtype)
    new_indices = jnp.where(rewired, fresh, indices)
    new_values = jnp.where(rewired, jnp.zeros((), values.dtype), values)
    return new_values, new_indices, rewired
