"""Applying masks and reporting densities."""

import jax
import jax.numpy as jnp
import numpy as np

from ._validation import check_masks_match, is_none

__all__ = ["apply_masks", "density", "density_report"]


def apply_masks(params, masks):
    """Zeros every masked-out weight; leaves whose mask is None pass through unchanged."""
    check_masks_match(params, masks)
    return jax.tree.map(
        lambda m, p: p if m is None else jnp.where(m, p, jnp.zeros((), jnp.asarray(p).dtype)),
        masks,
        params,
        is_leaf=is_none,
    )


def density(mask) -> float:
    """Fraction of True entries in one mask."""
    if mask is None:
        return 1.0
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array, got dtype {mask.dtype}")
    return float(mask.sum()) / float(mask.size) if mask.size else 1.0


def density_report(masks, params=None) -> dict:
    """Per-leaf and overall densities.

    Args:
      masks: a mask pytree (None leaves are dense).
      params: optional params; when given, None-mask leaves count as dense in `overall_all`, and the
        structure is checked.

    Returns:
      `{"leaves": {path: {"size", "nnz", "density", "shape"}}, "overall_masked": float,
      "overall_all": float | None}`. `overall_masked` is over masked leaves only.
    """
    if params is not None:
        check_masks_match(params, masks)
        shapes = [np.shape(p) for p in jax.tree.leaves(params)]
    else:
        shapes = [None if m is None else np.shape(m) for m in jax.tree.leaves(masks, is_leaf=is_none)]
    paths = [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(masks, is_leaf=is_none)[0]]
    leaves = {}
    nnz_m = size_m = nnz_all = size_all = 0
    for path, m, shape in zip(paths, jax.tree.leaves(masks, is_leaf=is_none), shapes, strict=True):
        if m is None:
            if shape is not None:
                size = int(np.prod(shape))
                nnz_all += size
                size_all += size
                leaves[path] = {"shape": tuple(shape), "size": size, "nnz": size, "density": 1.0}
            continue
        arr = np.asarray(m)
        if arr.dtype != np.bool_:
            raise ValueError(f"masks{path} must be a bool array, got dtype {arr.dtype}")
        nnz, size = int(arr.sum()), int(arr.size)
        leaves[path] = {"shape": arr.shape, "size": size, "nnz": nnz, "density": nnz / size if size else 1.0}
        nnz_m += nnz
        size_m += size
        nnz_all += nnz
        size_all += size
    return {
        "leaves": leaves,
        "overall_masked": nnz_m / size_m if size_m else 1.0,
        "overall_all": (nnz_all / size_all if size_all else 1.0) if params is not None else None,
    }
