"""Iterative magnitude pruning (IMP): global L1 pruning of a fraction of the remaining weights per round,
retraining between rounds, until each target sparsity is reached exactly."""

import itertools
import math
from collections.abc import Callable, Sequence

import jax
import numpy as np

from jaxsparse import masks as masks_lib
from jaxsparse._checks import check_fraction

__all__ = ["global_prune_step", "imp_schedule", "iterative_magnitude_pruning"]


def _is_none(x) -> bool:
    return x is None


def imp_schedule(total: int, target_sparsities: Sequence[float], fraction: float) -> list[int]:
    """Active-weight counts after every IMP round.

    Each round keeps floor(remaining * (1 - fraction)) weights, but never fewer than the next target's
    floor(total * (1 - sparsity)); the round that reaches a target stops there exactly.
    """
    if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
        raise ValueError(f"total must be a positive int, got {total!r}")
    fraction = check_fraction(fraction, "fraction", allow_zero=False)
    targets = _check_targets(target_sparsities)
    counts, nnz = [], total
    for s in targets:
        goal = masks_lib.num_active(total, s)
        if goal > nnz:
            raise ValueError(f"target sparsity {s} is below the current one")
        while nnz > goal:
            nnz = max(goal, math.floor(nnz * (1.0 - fraction) + 1e-9))
            counts.append(nnz)
    return counts


def _check_targets(target_sparsities) -> tuple[float, ...]:
    targets = tuple(masks_lib.check_sparsity(s) for s in target_sparsities)
    if not targets or any(b <= a for a, b in itertools.pairwise(targets)) or targets[0] <= 0:
        raise ValueError(f"target_sparsities must be increasing and in (0, 1), got {target_sparsities!r}")
    return targets


def _eligible_paths(params, filter_fn) -> list[bool]:
    filter_fn = masks_lib.default_leaf_filter if filter_fn is None else filter_fn
    if not callable(filter_fn):
        raise ValueError(f"filter_fn must be callable(path, leaf) -> bool, got {filter_fn!r}")
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    return [bool(filter_fn(path, leaf)) for path, leaf in flat]


def global_prune_step(params, mask_tree, keep: int, *, filter_fn=None):
    """Keeps the `keep` largest-|w| weights among the currently active eligible ones (one global top-k).

    Args:
      params: pytree of arrays.
      mask_tree: current masks (same structure, None = dense) or None (everything eligible is active).
      keep: active weights after the step; at most the current count.
      filter_fn: `(path, leaf) -> bool` choosing prunable leaves (default: ndim >= 2).

    Returns:
      The new mask pytree: bool arrays for eligible leaves, None elsewhere. Ties break to the lower index.
    """
    leaves, treedef = jax.tree.flatten(params)
    flags = _eligible_paths(params, filter_fn)
    if not any(flags):
        raise ValueError("no leaf of params is eligible for pruning (check filter_fn)")
    if mask_tree is None:
        old = [None] * len(leaves)
    else:
        masks_lib.check_masks_match(params, mask_tree)
        old = jax.tree.leaves(mask_tree, is_leaf=_is_none)
    scores, active_total = [], 0
    for leaf, ok, m in zip(leaves, flags, old, strict=True):
        if not ok:
            continue
        s = np.abs(np.asarray(jax.device_get(leaf), dtype=np.float64)).reshape(-1)
        if m is not None:
            m = np.asarray(m).reshape(-1)
            s = np.where(m, s, -np.inf)
            active_total += int(m.sum())
        else:
            active_total += s.size
        scores.append(s)
    if isinstance(keep, bool) or not isinstance(keep, int) or not 0 < keep <= active_total:
        raise ValueError(f"keep must be an int in [1, {active_total}] (the active count), got {keep!r}")
    flat = np.concatenate(scores)
    order = np.argsort(-flat, kind="stable")  # descending |w|; stable: ties to the lower flat index
    keep_flat = np.zeros(flat.size, bool)
    keep_flat[order[:keep]] = True
    return jax.tree.unflatten(treedef, masks_lib.split_flat_mask(keep_flat, leaves, flags))


def iterative_magnitude_pruning(
    params,
    *,
    target_sparsities: Sequence[float],
    fraction: float = 0.2,
    retrain: Callable | None = None,
    rewind_params=None,
    filter_fn=None,
) -> dict:
    """Global IMP: every round prunes min(`fraction` of the remaining, what reaches the next target), then
    calls `retrain(mask_tree, round_index, start)` for the new params. `start` is the current params ⊙ mask
    (continue training, as the paper's IMP does) or, with `rewind_params` (e.g. W(k) of the dense run),
    `rewind_params` ⊙ mask (IMP with rewinding to step k, Frankle et al.'s lottery-ticket procedure).

    Args:
      params: the trained dense params (pytree).
      target_sparsities: increasing sparsities in (0, 1), over the eligible leaves.
      fraction: fraction of the remaining weights pruned per round (0.2 in the paper).
      retrain: `(mask_tree, round, start) -> params` (train from `start` with the mask fixed), or None
        (one-shot rounds without retraining).
      rewind_params: params with the structure of `params` to restart every round from, or None.
      filter_fn: `(path, leaf) -> bool` choosing prunable leaves (default: ndim >= 2; exclude shortcut convs
        for ResNets).

    Returns:
      `{"masks": {sparsity: mask_tree}, "params": {sparsity: params after that target's retraining},
      "rounds": [{"round", "nnz", "density", "target"}], "total": eligible weights}`.
    """
    targets = _check_targets(target_sparsities)
    fraction = check_fraction(fraction, "fraction", allow_zero=False)
    if retrain is not None and not callable(retrain):
        raise ValueError(f"retrain must be callable(mask_tree, round, start) -> params or None, got {retrain!r}")
    if rewind_params is not None and jax.tree.structure(rewind_params) != jax.tree.structure(params):
        raise ValueError("rewind_params must have the structure of params")
    flags = _eligible_paths(params, filter_fn)
    sizes = [int(np.prod(np.shape(leaf))) for leaf in jax.tree.leaves(params)]
    total = sum(s for s, ok in zip(sizes, flags, strict=True) if ok)
    if total == 0:
        raise ValueError("no leaf of params is eligible for pruning (check filter_fn)")
    mask_tree, nnz, round_index = None, total, 0
    out_masks, out_params, rounds = {}, {}, []
    for s in targets:
        goal = masks_lib.num_active(total, s)
        while nnz > goal:
            nnz = max(goal, math.floor(nnz * (1.0 - fraction) + 1e-9))
            mask_tree = global_prune_step(params, mask_tree, nnz, filter_fn=filter_fn)
            if retrain is not None:
                start = masks_lib.apply_masks(params if rewind_params is None else rewind_params, mask_tree)
                params = retrain(mask_tree, round_index, start)
            rounds.append({"round": round_index, "nnz": nnz, "density": nnz / total, "target": s})
            round_index += 1
        out_masks[s], out_params[s] = mask_tree, params
    return {"masks": out_masks, "params": out_params, "rounds": rounds, "total": total}
