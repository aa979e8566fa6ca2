"""Initial masks of the FiPS factors: one global magnitude threshold, or N:M along the rank axis (fips.md §5).

Only the factors V are sparse; the shared bases U stay dense. With global pruning one threshold covers every
factor of the model, so the per-layer sparsity adapts along depth.
"""

import jax
import jax.numpy as jnp

from jaxsparse.masks import check_sparsity, nm_mask, num_active, split_flat_mask, top_n_mask

__all__ = ["global_magnitude_masks", "nm_factor_masks"]

_is_none = lambda x: x is None


def _factor_leaves(factors, name: str = "factors"):
    leaves, treedef = jax.tree.flatten(factors, is_leaf=_is_none)
    for i, leaf in enumerate(leaves):
        if leaf is not None and (not hasattr(leaf, "shape") or not hasattr(leaf, "dtype")):
            raise ValueError(f"{name} leaf {i} must be an array or None, got {type(leaf).__name__}")
    if all(leaf is None for leaf in leaves):
        raise ValueError(f"{name} has no array leaf to mask")
    return leaves, treedef


def global_magnitude_masks(factors, sparsity: float):
    """Keeps the floor(total (1 - s)) largest |w| over every factor together (one threshold).

    Unlike `jaxsparse.masks.global_magnitude_masks` (a sort-based top-k over filtered leaves), every array
    leaf here is a factor, and the selection is `top_n_mask`'s radix select: exact, no sort (a Swin-L has
    ~1e8 factor entries), jittable. Ties go to the lower index in the leaves' flattening order, so the masks
    are deterministic.

    Args:
      factors: pytree of arrays (None leaves are skipped and stay None).
      sparsity: s in [0, 1).

    Returns:
      Bool masks with the factors' structure; exactly floor(total (1 - s)) (at least 1) entries are True.
    """
    sparsity = check_sparsity(sparsity)
    leaves, treedef = _factor_leaves(factors)
    arrays = [jnp.asarray(leaf) for leaf in leaves if leaf is not None]
    flat = jnp.concatenate([jnp.abs(a).reshape(-1).astype(jnp.float32) for a in arrays])
    keep = top_n_mask(flat, num_active(int(flat.size), sparsity))
    return jax.tree.unflatten(treedef, split_flat_mask(keep, leaves, [leaf is not None for leaf in leaves]))


def nm_factor_masks(factors, n: int, m: int):
    """N:M magnitude masks along the rank axis (axis 0 of each V [r, h]): in every m consecutive ranks of a
    column, keep the n largest |w|. The spec's structured variants use n = floor((1 - s) 4), m = 4; m must
    divide r (round the rank with `round_to`).
    """
    leaves, treedef = _factor_leaves(factors)
    out = [None if leaf is None else nm_mask(jnp.abs(jnp.asarray(leaf)), n, m, axis=0) for leaf in leaves]
    return jax.tree.unflatten(treedef, out)
