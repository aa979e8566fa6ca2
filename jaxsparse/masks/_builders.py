"""Mask builders: random, magnitude, global magnitude, N:M, constant fan-in and group-shared fan-in.

Array-level builders take static Python numbers for everything that fixes a shape (sparsity, n, m, fan-in)
and are jittable; tree-level builders map them over params with a sparsity pytree from
`uniform_sparsities` / `erk_sparsities`. Ties in magnitude are broken towards the lower flat index
(`lax.top_k` is stable), so every builder is deterministic.

Layout convention: a kernel's last axis indexes output neurons and every other axis is fan-in (Flax
`Linear` [in, out]; `Conv` [h, w, in, out]).
"""

from numbers import Real

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ._distributions import LeafFilter, uniform_sparsities
from ._validation import check_fan_in, check_group_size, check_nm, check_sparsity, is_none, num_active

__all__ = [
    "fan_in_for_sparsity",
    "fan_in_mask",
    "fan_in_masks",
    "global_magnitude_masks",
    "grouped_fan_in_mask",
    "magnitude_mask",
    "magnitude_masks",
    "nm_mask",
    "nm_masks",
    "random_fan_in_mask",
    "random_grouped_fan_in_mask",
    "random_mask",
    "random_masks",
    "split_flat_mask",
    "topk_mask",
]


def _check_key(key, name: str = "key"):
    if not isinstance(key, jax.Array) or not (
        jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or (key.dtype == jnp.uint32 and key.shape == (2,))
    ):
        raise ValueError(f"{name} must be a PRNG key from jax.random.key, got {key!r}")
    return key


def _as_array(x, name: str):
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"{name} must be an array, got {type(x).__name__}")
    return jnp.asarray(x)


def topk_mask(scores, k: int):
    """Bool mask of `scores`' shape with exactly `k` True entries at the largest scores (ties: lower index)."""
    scores = _as_array(scores, "scores")
    size = int(np.prod(scores.shape))
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= int(k) <= size:
        raise ValueError(f"k must be an int in [0, {size}], got {k!r}")
    flat = scores.reshape(-1)
    _, idx = lax.top_k(flat, int(k))
    return jnp.zeros(flat.shape, bool).at[idx].set(True).reshape(scores.shape)


def random_mask(key, shape, sparsity: float):
    """Uniformly random mask with exactly floor(size * (1 - sparsity)) True entries."""
    _check_key(key)
    shape = tuple(int(s) for s in shape)
    size = int(np.prod(shape))
    k = num_active(size, sparsity)
    return topk_mask(jax.random.uniform(key, shape), k)


def magnitude_mask(weights, sparsity: float):
    """Keeps the floor(size * (1 - sparsity)) largest-|w| entries."""
    weights = _as_array(weights, "weights")
    return topk_mask(jnp.abs(weights), num_active(weights.size, sparsity))


def nm_mask(scores, n: int, m: int, *, axis: int = -2):
    """N:M mask: in every group of `m` consecutive entries along `axis`, keep the `n` largest scores.

    Pass `jnp.abs(weights)` for magnitude N:M. For a Flax kernel [in, out], `axis=-2` groups inputs.
    """
    scores = _as_array(scores, "scores")
    if not isinstance(axis, int) or not -scores.ndim <= axis < scores.ndim:
        raise ValueError(f"axis must be an int in [-{scores.ndim}, {scores.ndim}), got {axis!r}")
    n, m = check_nm(n, m, scores.shape[axis], name_axis=f"axis {axis} of scores {scores.shape}")
    moved = jnp.moveaxis(scores, axis, -1)
    grouped = moved.reshape((*moved.shape[:-1], moved.shape[-1] // m, m))
    _, idx = lax.top_k(grouped, n)
    keep = jnp.any(idx[..., None] == jnp.arange(m).reshape((1,) * idx.ndim + (m,)), axis=-2)
    return jnp.moveaxis(keep.reshape(moved.shape), -1, axis)


def fan_in_for_sparsity(shape, sparsity: float) -> int:
    """Constant fan-in k = floor(nnz* / n_out) with nnz* = floor(size * (1 - sparsity)) (SRigL init)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"shape must have ndim >= 2 (fan-in axes + output axis), got {shape}")
    size = int(np.prod(shape))
    k = num_active(size, sparsity) // shape[-1]
    if k < 1:
        raise ValueError(f"sparsity {sparsity} leaves fewer weights than output neurons for shape {shape} (fan-in 0)")
    return k


def _fan_in_from_scores(scores, fan_in: int):
    n_out = scores.shape[-1]
    fan_in_dense = int(np.prod(scores.shape[:-1]))
    check_fan_in(fan_in, fan_in_dense)
    rows = scores.reshape(fan_in_dense, n_out).T  # [n_out, fan_in_dense]
    _, idx = lax.top_k(rows, fan_in)
    keep = jnp.zeros(rows.shape, bool).at[jnp.arange(n_out)[:, None], idx].set(True)
    return keep.T.reshape(scores.shape)


def fan_in_mask(scores, fan_in: int):
    """Constant fan-in mask: every output neuron (last axis) keeps its `fan_in` highest-scoring inputs.

    Pass `jnp.abs(weights)` for magnitude selection. Fan-in counts over every non-output axis, so a conv
    kernel [h, w, in, out] counts h * w * in inputs per output channel.
    """
    scores = _as_array(scores, "scores")
    if scores.ndim < 2:
        raise ValueError(f"scores must have ndim >= 2, got shape {scores.shape}")
    return _fan_in_from_scores(scores, fan_in)


def random_fan_in_mask(key, shape, fan_in: int):
    """Each output neuron keeps `fan_in` inputs chosen uniformly at random, independently per neuron."""
    _check_key(key)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"shape must have ndim >= 2, got {shape}")
    return _fan_in_from_scores(jax.random.uniform(key, shape), fan_in)


def _expand_groups(group_keep, group_size: int, shape):
    """[..., n_out // G] group pattern -> [..., n_out] with each group's column repeated G times."""
    return jnp.repeat(group_keep, group_size, axis=-1, total_repeat_length=shape[-1]).reshape(shape)


def grouped_fan_in_mask(scores, fan_in: int, group_size: int):
    """Group-shared constant fan-in: each block of `group_size` consecutive output neurons (last axis) keeps
    the same `fan_in` inputs, those with the highest score summed over the block's neurons.

    Sharing one index set per block turns a condensed layer into a gather followed by a dense GEMM over the
    block (tensor cores), instead of a per-neuron gather-reduce. Pass `jnp.abs(weights)` for magnitude
    selection (a group scores an input by the summed |w| over its G columns). Ties go to the lower input
    index. `group_size=1` is exactly `fan_in_mask(scores, fan_in)`.

    Args:
      scores: array of ndim >= 2; every axis but the last is fan-in (Flax `Linear` [in, out]).
      fan_in: k, active inputs per output neuron (static).
      group_size: G, a positive int dividing n_out (static).

    Returns:
      A bool mask of `scores.shape`.
    """
    scores = _as_array(scores, "scores")
    if scores.ndim < 2:
        raise ValueError(f"scores must have ndim >= 2, got shape {scores.shape}")
    n_out = scores.shape[-1]
    group_size = check_group_size(group_size, n_out, f"the last axis of scores {scores.shape}")
    if group_size == 1:
        return _fan_in_from_scores(scores, fan_in)
    fan_in_dense = int(np.prod(scores.shape[:-1]))
    # Sum in at least float32: a bf16 sum over G columns would create ties the per-column scores do not have.
    dtype = jnp.promote_types(scores.dtype, jnp.float32)
    grouped = scores.astype(dtype).reshape(fan_in_dense, n_out // group_size, group_size).sum(axis=-1)
    return _expand_groups(_fan_in_from_scores(grouped, fan_in), group_size, scores.shape)


def random_grouped_fan_in_mask(key, shape, fan_in: int, group_size: int):
    """Each block of `group_size` consecutive output neurons shares `fan_in` inputs chosen uniformly at
    random, independently per block. `group_size=1` is exactly `random_fan_in_mask(key, shape, fan_in)`."""
    _check_key(key)
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(f"shape must have ndim >= 2, got {shape}")
    group_size = check_group_size(group_size, shape[-1], f"the last axis of shape {shape}")
    # One draw per group rather than per neuron: at G = 1 this is the same draw as random_fan_in_mask.
    group_shape = (*shape[:-1], shape[-1] // group_size)
    keep = _fan_in_from_scores(jax.random.uniform(key, group_shape), fan_in)
    return keep if group_size == 1 else _expand_groups(keep, group_size, shape)


# ---------------------------------------------------------------------------------------------- trees


def _resolve_sparsities(params, sparsities, filter_fn: LeafFilter | None):
    if isinstance(sparsities, Real) and not isinstance(sparsities, bool):
        return uniform_sparsities(params, sparsities, filter_fn=filter_fn)
    if filter_fn is not None:
        raise ValueError("filter_fn applies only when sparsities is a single number")
    if jax.tree.structure(sparsities, is_leaf=is_none) != jax.tree.structure(params):
        raise ValueError("sparsities must be a number or a pytree with the params' structure (None = dense)")
    for s in jax.tree.leaves(sparsities, is_leaf=is_none):
        if s is not None:
            check_sparsity(s, "sparsities leaf")
    return sparsities


def _map_leaves(fn, params, sparsities):
    """Applies fn(index, leaf, sparsity) to leaves whose sparsity is not None; None elsewhere."""
    leaves, treedef = jax.tree.flatten(params)
    sps = jax.tree.leaves(sparsities, is_leaf=is_none)
    out = [None if s is None else fn(i, leaf, s) for i, (leaf, s) in enumerate(zip(leaves, sps, strict=True))]
    return jax.tree.unflatten(treedef, out)


def random_masks(key, params, sparsities, *, filter_fn: LeafFilter | None = None):
    """Random masks for every sparse leaf (an independent key per leaf, folded from `key`)."""
    _check_key(key)
    sparsities = _resolve_sparsities(params, sparsities, filter_fn)
    return _map_leaves(
        lambda i, leaf, s: random_mask(jax.random.fold_in(key, i), np.shape(leaf), s), params, sparsities
    )


def magnitude_masks(params, sparsities, *, filter_fn: LeafFilter | None = None):
    """Per-leaf magnitude masks at the given per-leaf sparsities."""
    sparsities = _resolve_sparsities(params, sparsities, filter_fn)
    return _map_leaves(lambda i, leaf, s: magnitude_mask(leaf, s), params, sparsities)


def global_magnitude_masks(params, sparsity: float, *, filter_fn: LeafFilter | None = None):
    """One global top-k by |w| across every eligible leaf; keeps exactly floor(total * (1 - sparsity))."""
    eligible = _resolve_sparsities(params, check_sparsity(sparsity), filter_fn)
    leaves, treedef = jax.tree.flatten(params)
    flags = [s is not None for s in jax.tree.leaves(eligible, is_leaf=is_none)]
    chosen = [jnp.abs(jnp.asarray(leaf)).reshape(-1) for leaf, ok in zip(leaves, flags, strict=True) if ok]
    if not chosen:
        raise ValueError("params has no eligible leaf for global_magnitude_masks (check filter_fn)")
    flat = jnp.concatenate([c.astype(jnp.float32) for c in chosen])
    keep = topk_mask(flat, num_active(flat.size, sparsity))
    return jax.tree.unflatten(treedef, split_flat_mask(keep, leaves, flags))


def split_flat_mask(flat, leaves, selected) -> list:
    """Cuts a mask over the concatenated, flattened selected leaves back into one mask per leaf.

    The inverse of `concatenate([leaf.reshape(-1) for selected leaves])`, the layout of every global selection
    (global magnitude, IMP, FiPS factor masks). Returns a list aligned with `leaves`: `flat`'s consecutive slices
    reshaped to the selected leaves' shapes, None for the others (feed it to `jax.tree.unflatten`).
    """
    leaves, selected = list(leaves), [bool(s) for s in selected]
    if len(selected) != len(leaves):
        raise ValueError(f"selected must have one flag per leaf ({len(leaves)}), got {len(selected)}")
    sizes = [int(np.prod(np.shape(leaf))) if ok else 0 for leaf, ok in zip(leaves, selected, strict=True)]
    if np.ndim(flat) != 1 or np.shape(flat)[0] != sum(sizes):
        raise ValueError(
            f"flat must be 1-D with one entry per selected element ({sum(sizes)}), got shape {np.shape(flat)}"
        )
    out, offset = [], 0
    for leaf, ok, size in zip(leaves, selected, sizes, strict=True):
        out.append(flat[offset : offset + size].reshape(np.shape(leaf)) if ok else None)
        offset += size
    return out


def nm_masks(params, n: int, m: int, *, axis: int = -2, filter_fn: LeafFilter | None = None):
    """Magnitude N:M masks for every eligible leaf (default: ndim >= 2), grouped along `axis`."""
    eligible = uniform_sparsities(params, 0.0, filter_fn=filter_fn)
    return _map_leaves(lambda i, leaf, s: nm_mask(jnp.abs(leaf), n, m, axis=axis), params, eligible)


def fan_in_masks(params, sparsities, *, key=None, filter_fn: LeafFilter | None = None, group_size: int = 1):
    """Constant fan-in masks with k = floor(nnz* / n_out) per leaf: random if `key` is given, else magnitude.

    With `group_size` G > 1 the masks are group-shared (`grouped_fan_in_mask`); G must divide every sparse
    leaf's n_out.
    """
    sparsities = _resolve_sparsities(params, sparsities, filter_fn)
    if key is not None:
        _check_key(key)
    if isinstance(group_size, bool) or not isinstance(group_size, int | np.integer) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")

    def build(i, leaf, s):
        k = fan_in_for_sparsity(np.shape(leaf), s)
        if key is None:
            return grouped_fan_in_mask(jnp.abs(leaf), k, group_size)
        return random_grouped_fan_in_mask(jax.random.fold_in(key, i), np.shape(leaf), k, group_size)

    return _map_leaves(build, params, sparsities)
