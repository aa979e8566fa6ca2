"""Per-layer sparsity distributions: uniform and Erdős–Rényi-kernel (ERK).

Both return a pytree with the params' structure whose leaves are Python floats (the leaf's sparsity) or
None (the leaf stays dense and gets no mask).
"""

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from ._validation import check_sparsity

__all__ = ["default_leaf_filter", "erk_sparsities", "uniform_sparsities"]

LeafFilter = Callable[[tuple, Any], bool]


def default_leaf_filter(path: tuple, leaf) -> bool:
    """Sparsify every leaf with two or more dimensions (kernels), never biases or norm scales."""
    del path
    return np.ndim(leaf) >= 2


def _eligible(params, filter_fn: LeafFilter | None):
    filter_fn = default_leaf_filter if filter_fn is None else filter_fn
    if not callable(filter_fn):
        raise ValueError(f"filter_fn must be callable(path, leaf) -> bool, got {filter_fn!r}")
    return jax.tree_util.tree_map_with_path(lambda path, leaf: bool(filter_fn(path, leaf)), params)


def uniform_sparsities(params, sparsity: float, *, filter_fn: LeafFilter | None = None):
    """Every eligible leaf gets the same sparsity.

    Args:
      params: pytree of arrays (or `jax.ShapeDtypeStruct`s).
      sparsity: target fraction of zeros in [0, 1).
      filter_fn: `(key_path, leaf) -> bool` choosing the sparse leaves; default: ndim >= 2.

    Returns:
      A pytree like `params` with float leaves for eligible leaves and None elsewhere.
    """
    sparsity = check_sparsity(sparsity)
    eligible = _eligible(params, filter_fn)
    return jax.tree.map(lambda leaf, ok: sparsity if ok else None, params, eligible)


def erk_sparsities(
    params,
    sparsity: float,
    *,
    filter_fn: LeafFilter | None = None,
    power_scale: float = 1.0,
    include_kernel: bool = True,
):
    """Erdős–Rényi-kernel sparsities (Evci et al. 2020), matching the overall target exactly.

    density_l = eps * (sum(shape_l) / prod(shape_l)) ** power_scale, with eps solved so that the eligible
    leaves keep (1 - sparsity) of their weights in total. A leaf whose density would exceed 1 is made dense
    and eps is solved again over the rest, until no leaf exceeds 1.

    Args:
      params: pytree of arrays (or `jax.ShapeDtypeStruct`s).
      sparsity: overall target sparsity of the eligible leaves, in [0, 1).
      filter_fn: `(key_path, leaf) -> bool` choosing the sparse leaves; default: ndim >= 2.
      power_scale: exponent on the ERK ratio (1 is ERK; 0 is uniform).
      include_kernel: use the spatial dims of conv kernels (ERK); False uses only the last two (ER).

    Returns:
      A pytree like `params` with float leaves (0.0 for leaves made dense) and None for ineligible leaves.
    """
    sparsity = check_sparsity(sparsity)
    if not np.isfinite(power_scale) or power_scale < 0:
        raise ValueError(f"power_scale must be a finite number >= 0, got {power_scale}")
    eligible = _eligible(params, filter_fn)
    leaves, treedef = jax.tree.flatten(params)
    flags = jax.tree.leaves(eligible)
    idx = [i for i, ok in enumerate(flags) if ok]
    for i in idx:
        if np.ndim(leaves[i]) < 2:
            raise ValueError(
                f"erk_sparsities needs ndim >= 2 for eligible leaves; leaf {i} has shape "
                f"{np.shape(leaves[i])} (adjust filter_fn)"
            )
    sizes = {i: float(np.prod(np.shape(leaves[i]))) for i in idx}
    raw = {}
    for i in idx:
        shape = np.shape(leaves[i]) if include_kernel else np.shape(leaves[i])[-2:]
        raw[i] = (float(np.sum(shape)) / float(np.prod(shape))) ** power_scale
    total_keep = (1.0 - sparsity) * sum(sizes.values())
    dense: set[int] = set()
    densities: dict[int, float] = {}
    while True:
        rest = [i for i in idx if i not in dense]
        if not rest:
            break
        budget = total_keep - sum(sizes[i] for i in dense)
        eps = budget / sum(raw[i] * sizes[i] for i in rest)
        worst = max(rest, key=lambda i: raw[i])
        if eps * raw[worst] > 1.0:
            top = raw[worst]
            dense.update(i for i in rest if raw[i] == top)
            continue
        densities = {i: eps * raw[i] for i in rest}
        break
    out = []
    for i in range(len(leaves)):
        if not flags[i]:
            out.append(None)
        elif i in dense:
            out.append(0.0)
        else:
            out.append(float(min(max(1.0 - densities[i], 0.0), 1.0)))
    return jax.tree.unflatten(treedef, out)
