"""Sparse-training updaters as optax transformations: static sparse, SET, RigL and SRigL.

Each factory wraps an inner optax optimizer and returns a `GradientTransformationExtraArgs` whose state
(`SparseState`) holds the masks, the step count and a PRNG key. `update(grads, state, params)`:

* on ordinary steps, feeds the inner optimizer the masked gradients and projects its updates with
  `where(mask, update, -params)`, so pruned weights are exactly zero after `optax.apply_updates`;
* at mask-update steps (every ΔT steps before T_end), first updates the masks from the weights and the
  dense gradients, then takes the optimizer step for the weights kept by the update: dropped and regrown
  weights become exactly zero, with zeroed gradients and optimizer moments, and regrown weights start
  training on the next step. (The RigL/SRigL reference code skips the optimizer step on mask-update
  steps instead; taking it for the kept weights costs nothing and keeps the inner step count in sync.)

The mask computation sits under `lax.cond` with masks as arrays in the state, so a mask update never
recompiles.
"""

import dataclasses
from collections.abc import Callable
from numbers import Real
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsparse._checks import check_int
from jaxsparse.masks import (
    check_sparsity,
    cosine_drop_fraction,
    erk_sparsities,
    is_mask_update_step,
    map_param_copies,
    num_active,
    random_fan_in_mask,
    random_grouped_fan_in_mask,
    random_mask,
)
from jaxsparse.masks import uniform_sparsities as _uniform_sparsities

from ._mask_updates import srigl_mask_update, unstructured_mask_update

__all__ = [
    "SparseState",
    "apply_initial_masks",
    "default_sparse_leaves",
    "find_sparse_state",
    "rigl",
    "sparse_evolutionary",
    "srigl",
    "static_sparse",
]

LeafFilter = Callable[[tuple, Any], bool]
_is_none = lambda x: x is None


class SparseState(NamedTuple):
    """State of a sparse-training updater.

    Attributes:
      count: int32 number of updates taken so far.
      masks: pytree with the params' structure; bool arrays for sparse leaves, None for dense ones.
      key: typed PRNG key, folded with the count at every mask update.
      inner_state: the wrapped optimizer's state.
    """

    count: jax.Array
    masks: Any
    key: jax.Array
    inner_state: Any


@dataclasses.dataclass(frozen=True)
class _LeafPlan:
    sparsity: float
    nnz_target: int
    k0: int  # initial constant fan-in (SRigL); 0 otherwise
    group_size: int = 1  # output neurons sharing one fan-in pattern (SRigL)


def default_sparse_leaves(params) -> LeafFilter:
    """Default choice of sparse leaves: every leaf with ndim >= 2 except the first and the last of them.

    "First" and "last" follow the params' flattening order, which for dicts is sorted by key; pass an
    explicit `sparse_leaves` filter (or a per-leaf `sparsity` tree) when that order is not the network's.
    """
    paths = [path for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if np.ndim(leaf) >= 2]
    excluded = {paths[0], paths[-1]} if len(paths) >= 2 else set()
    return lambda path, leaf: np.ndim(leaf) >= 2 and path not in excluded


def _check_key(key):
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise ValueError(f"key must be a typed PRNG key from jax.random.key, got {key!r}")
    return key


def _resolve_end_step(total_steps, end_step, end_fraction: float) -> int:
    if end_step is not None:
        return check_int(end_step, "end_step", minimum=1)
    if total_steps is None:
        raise ValueError("give total_steps (T_end = end_fraction * total_steps) or end_step")
    total_steps = check_int(total_steps, "total_steps", minimum=1)
    if not 0.0 < end_fraction <= 1.0:
        raise ValueError(f"end_fraction must be in (0, 1], got {end_fraction}")
    return max(1, int(end_fraction * total_steps))


def _leaf_sparsities(params, sparsity, distribution: str, sparse_leaves):
    """Per-leaf sparsities: a pytree (None = dense) passed through, or a number spread by `distribution`."""
    if isinstance(sparsity, Real) and not isinstance(sparsity, bool):
        check_sparsity(sparsity)
        leaf_filter = default_sparse_leaves(params) if sparse_leaves is None else sparse_leaves
        if distribution == "uniform":
            return _uniform_sparsities(params, sparsity, filter_fn=leaf_filter)
        if distribution == "erk":
            return erk_sparsities(params, sparsity, filter_fn=leaf_filter)
        raise ValueError(f"distribution must be 'erk' or 'uniform', got {distribution!r}")
    if sparse_leaves is not None:
        raise ValueError("sparse_leaves applies only when sparsity is a single number")
    if jax.tree.structure(sparsity, is_leaf=_is_none) != jax.tree.structure(params):
        raise ValueError(
            "sparsity must be a number or a pytree with the params' structure (None for dense leaves); "
            "the trees do not match"
        )
    for s in jax.tree.leaves(sparsity, is_leaf=_is_none):
        if s is not None:
            check_sparsity(s, "sparsity (a leaf of the tree)")
    return sparsity


def _plan(params, sparsities, method: str, group_size: int = 1):
    """Static per-leaf plan (None for dense leaves), validating each leaf can hold its sparsity."""
    plans = []
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for (path, leaf), s in zip(flat, jax.tree.leaves(sparsities, is_leaf=_is_none), strict=True):
        if s is None:
            plans.append(None)
            continue
        shape = np.shape(leaf)
        name = jax.tree_util.keystr(path)
        if len(shape) < 2:
            raise ValueError(f"sparse leaf params{name} must have ndim >= 2, got shape {shape}")
        size = int(np.prod(shape))
        nnz = num_active(size, s)
        k0 = 0
        if method == "srigl":
            k0 = nnz // shape[-1]
            if k0 < 1:
                raise ValueError(
                    f"params{name} of shape {shape} is too small for sparsity {s:.4f}: its fan-in "
                    f"floor(nnz*/n_out) = floor({nnz}/{shape[-1]}) is 0"
                )
            if shape[-1] % group_size:
                raise ValueError(
                    f"group_size={group_size} must divide the output size n_out={shape[-1]} of params{name} "
                    f"(shape {shape}); keep that leaf dense or pick a group_size dividing every sparse leaf's n_out"
                )
        plans.append(_LeafPlan(sparsity=float(s), nnz_target=nnz, k0=k0, group_size=group_size))
    return plans


def _init_masks(params, plans, key, method: str):
    leaves, treedef = jax.tree.flatten(params)
    out = []
    for i, (leaf, plan) in enumerate(zip(leaves, plans, strict=True)):
        if plan is None:
            out.append(None)
        elif method == "srigl" and plan.group_size > 1:
            out.append(random_grouped_fan_in_mask(jax.random.fold_in(key, i), np.shape(leaf), plan.k0, plan.group_size))
        elif method == "srigl":
            out.append(random_fan_in_mask(jax.random.fold_in(key, i), np.shape(leaf), plan.k0))
        else:
            out.append(random_mask(jax.random.fold_in(key, i), np.shape(leaf), plan.sparsity))
    return jax.tree.unflatten(treedef, out)


def _plans_from_initial_masks(initial_masks):
    """Static plans from user masks (None leaves dense): each sparse leaf's nnz target is its mask's nnz."""
    plans = []
    for path, m in jax.tree_util.tree_flatten_with_path(initial_masks, is_leaf=_is_none)[0]:
        if m is None:
            plans.append(None)
            continue
        name = jax.tree_util.keystr(path)
        if not hasattr(m, "shape") or not hasattr(m, "dtype"):
            raise ValueError(f"initial_masks{name} must be a bool array or None, got {type(m).__name__}")
        if np.dtype(m.dtype) != np.bool_:
            raise ValueError(f"initial_masks{name} must be a bool array, got dtype {m.dtype}")
        if isinstance(m, jax.core.Tracer):
            raise ValueError(f"initial_masks{name} must be a concrete array (build the updater outside jit)")
        size = int(np.prod(np.shape(m)))
        nnz = int(np.count_nonzero(np.asarray(m)))
        plans.append(_LeafPlan(sparsity=1.0 - nnz / size if size else 0.0, nnz_target=nnz, k0=0))
    if all(p is None for p in plans):
        raise ValueError("initial_masks has no bool mask leaf (every leaf is None): nothing would be sparse")
    return plans


def _match_initial_masks(params, initial_masks):
    """Checks `initial_masks` against params and returns them as bool arrays in the params' tree structure.

    A params leaf may sit one attribute deeper than its mask (an NNX `Variable` wraps its value: `nnx.Optimizer`
    calls `tx.init` on a state of Variables, while the masks are usually built from the pure state).
    """
    p_flat, treedef = jax.tree_util.tree_flatten_with_path(params)
    m_flat = jax.tree_util.tree_flatten_with_path(initial_masks, is_leaf=_is_none)[0]
    if len(p_flat) != len(m_flat):
        raise ValueError(
            f"initial_masks must have the params' tree structure (None for dense leaves): it has {len(m_flat)} "
            f"leaves, params has {len(p_flat)}"
        )
    out = []
    for (p_path, p), (m_path, m) in zip(p_flat, m_flat, strict=True):
        extra = p_path[len(m_path) :]
        if tuple(p_path[: len(m_path)]) != tuple(m_path) or not (
            not extra or (len(extra) == 1 and isinstance(extra[0], jax.tree_util.GetAttrKey))
        ):
            raise ValueError(
                f"initial_masks must have the params' tree structure: leaf initial_masks"
                f"{jax.tree_util.keystr(m_path)} lines up with params{jax.tree_util.keystr(p_path)}"
            )
        if m is None:
            out.append(None)
            continue
        if tuple(np.shape(m)) != tuple(np.shape(p)):
            raise ValueError(
                f"initial_masks{jax.tree_util.keystr(m_path)} has shape {tuple(np.shape(m))} but "
                f"params{jax.tree_util.keystr(p_path)} has {tuple(np.shape(p))}"
            )
        out.append(jnp.asarray(m, bool))
    return jax.tree.unflatten(treedef, out)


def _sparse_updater(
    inner: optax.GradientTransformation,
    *,
    method: str,
    sparsity,
    key,
    distribution: str,
    sparse_leaves,
    update_every: int,
    end_step: int | None,
    total_steps: int | None,
    end_fraction: float,
    drop_fraction: float,
    gamma_sal: float = 0.0,
    group_size: int = 1,
    initial_masks=None,
) -> optax.GradientTransformationExtraArgs:
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(f"inner must be an optax GradientTransformation, got {type(inner).__name__}")
    _check_key(key)
    update_every = check_int(update_every, "update_every (ΔT)", minimum=1)
    if method != "static":
        end = _resolve_end_step(total_steps, end_step, end_fraction)
    else:
        end = 1
    if isinstance(drop_fraction, bool) or not isinstance(drop_fraction, Real) or not 0.0 <= drop_fraction <= 1.0:
        raise ValueError(f"drop_fraction (alpha) must be in [0, 1], got {drop_fraction!r}")
    if isinstance(gamma_sal, bool) or not isinstance(gamma_sal, Real) or not 0.0 <= gamma_sal <= 1.0:
        raise ValueError(f"gamma_sal must be in [0, 1], got {gamma_sal!r}")
    group_size = check_int(group_size, "group_size", minimum=1)
    inner = optax.with_extra_args_support(inner)
    alpha, gamma = float(drop_fraction), float(gamma_sal)
    if initial_masks is None:
        if sparsity is None:
            raise ValueError("give sparsity (a number or a per-leaf pytree) or initial_masks")
        given_plans = None
    else:
        if sparsity is not None or sparse_leaves is not None:
            raise ValueError(
                "initial_masks fixes the sparse leaves and their nnz: leave sparsity and sparse_leaves unset"
            )
        given_plans = _plans_from_initial_masks(initial_masks)

    def init_fn(params):
        init_key, state_key = jax.random.split(key)
        if given_plans is None:
            sparsities = _leaf_sparsities(params, sparsity, distribution, sparse_leaves)
            plans = _plan(params, sparsities, method, group_size)
            masks = _init_masks(params, plans, init_key, method)
        else:
            masks = _match_initial_masks(params, initial_masks)
        return SparseState(
            count=jnp.zeros((), jnp.int32),
            masks=masks,
            key=state_key,
            inner_state=inner.init(params),
        )

    def _masked(tree, masks):
        return jax.tree.map(
            lambda m, x: x if m is None else jnp.where(m, x, jnp.zeros((), x.dtype)), masks, tree, is_leaf=_is_none
        )

    def _project(updates, masks, params):
        return jax.tree.map(
            lambda m, u, p: u if m is None else jnp.where(m, u, -p).astype(u.dtype),
            masks,
            updates,
            params,
            is_leaf=_is_none,
        )

    def _leaf_new_mask(i, p, g, m, plan, count, key):
        """One leaf's new mask and `keep` map (active before and after, not regrown); bool arrays only."""
        # Schedule and key are computed here, inside the update branch, not on every ordinary step.
        drop = cosine_drop_fraction(count, alpha=alpha, end_step=end)
        step_key = jax.random.fold_in(key, count)
        if method == "set":
            scores = jax.random.uniform(jax.random.fold_in(step_key, i), m.shape)
            new, grown = unstructured_mask_update(p, scores, m, drop)
        elif method == "rigl":
            new, grown = unstructured_mask_update(p, jnp.abs(g), m, drop)
        else:
            new, grown = srigl_mask_update(
                p, g, m, drop, nnz_target=plan.nnz_target, k0=plan.k0, gamma_sal=gamma, group_size=plan.group_size
            )
        return new, new & ~grown

    def update_fn(grads, state, params=None, **extra):
        if params is None:
            raise ValueError("sparse updaters need params: call tx.update(grads, state, params)")
        if not isinstance(state, SparseState):
            raise ValueError(f"state must be the SparseState from this updater's init, got {type(state).__name__}")
        if jax.tree.structure(grads) != jax.tree.structure(params):
            raise ValueError("grads and params must have the same tree structure")
        plans = _plans_from_state(params, state.masks)  # static: depends on shapes only
        if method == "static":
            updates, inner_state = inner.update(_masked(grads, state.masks), state.inner_state, params, **extra)
            return _project(updates, state.masks, params), state._replace(
                count=state.count + 1, inner_state=inner_state
            )
        # Only the bool masks come out of the cond: a cond returning params-sized floats would copy params and
        # moments out of it on every step. `keep` marks weights active before and after the update (on
        # ordinary steps it is the mask itself): dropped and regrown weights get zero moments and gradients,
        # so they stay exactly 0 through this step's update, and regrown ones start training on the next.
        do = is_mask_update_step(state.count, update_every=update_every, end_step=end)
        leaves_p, treedef = jax.tree.flatten(params)
        leaves_g = treedef.flatten_up_to(grads)
        leaves_m = jax.tree.leaves(state.masks, is_leaf=_is_none)
        new_masks, keeps = [], []
        # One cond per leaf, depending on that leaf's arrays only: a single cond over the whole tree would
        # wait for every gradient, so no leaf's optimizer update could overlap the rest of the backward pass
        # (ordinary steps 1.12-1.14x a static-sparse step on 2 CPU cores).
        for i, (p, g, m, plan) in enumerate(zip(leaves_p, leaves_g, leaves_m, plans, strict=True)):
            if m is None:
                new_masks.append(None)
                keeps.append(None)
                continue
            new, kept = jax.lax.cond(
                do,
                lambda i=i, p=p, g=g, m=m, plan=plan: _leaf_new_mask(i, p, g, m, plan, state.count, state.key),
                lambda m=m: (m, m),
            )
            new_masks.append(new)
            keeps.append(kept)
        masks, keep = jax.tree.unflatten(treedef, new_masks), jax.tree.unflatten(treedef, keeps)
        inner_state = map_param_copies(state.inner_state, params, lambda copy: _masked(copy, keep))
        updates, inner_state = inner.update(_masked(grads, keep), inner_state, params, **extra)
        return _project(updates, keep, params), SparseState(
            count=state.count + 1, masks=masks, key=state.key, inner_state=inner_state
        )

    def _plans_from_state(params, masks):
        if given_plans is None:
            sparsities = _leaf_sparsities(params, sparsity, distribution, sparse_leaves)
            plans = _plan(params, sparsities, method, group_size)
        else:
            plans = given_plans
        for plan, m in zip(plans, jax.tree.leaves(masks, is_leaf=_is_none), strict=True):
            if (plan is None) != (m is None):
                raise ValueError("state.masks does not match the sparse leaves of params (mismatched trees)")
        return plans

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def static_sparse(inner, *, sparsity=None, key, distribution: str = "erk", sparse_leaves=None, initial_masks=None):
    """Static sparse training: a random mask at init (per-leaf sparsities by ERK or uniform), never updated.

    `initial_masks` (a bool mask pytree with the params' structure, None for dense leaves) replaces the random
    masks: pass it instead of `sparsity`/`sparse_leaves` to train a given sparsity pattern (e.g. magnitude masks
    of a decomposition, which a random mask would overwrite).
    """
    return _sparse_updater(
        inner, method="static", sparsity=sparsity, key=key, distribution=distribution, sparse_leaves=sparse_leaves,
        update_every=1, end_step=None, total_steps=None, end_fraction=1.0, drop_fraction=0.0,
        initial_masks=initial_masks,
    )  # fmt: skip


def sparse_evolutionary(
    inner, *, sparsity=None, key, update_every: int = 100, total_steps=None, end_step=None,
    end_fraction: float = 0.75, drop_fraction: float = 0.3, distribution: str = "erk", sparse_leaves=None,
    initial_masks=None,
):  # fmt: skip
    """SET (Mocanu et al. 2018): drop smallest |w|, regrow uniformly at random; cosine drop schedule.

    `initial_masks` (bool mask pytree with the params' structure, None = dense) replaces the random initial
    masks; each sparse leaf then keeps its mask's nnz through every update. Pass it instead of `sparsity`.
    """
    return _sparse_updater(
        inner, method="set", sparsity=sparsity, key=key, distribution=distribution, sparse_leaves=sparse_leaves,
        update_every=update_every, end_step=end_step, total_steps=total_steps, end_fraction=end_fraction,
        drop_fraction=drop_fraction, initial_masks=initial_masks,
    )  # fmt: skip


def rigl(
    inner, *, sparsity=None, key, update_every: int = 100, total_steps=None, end_step=None,
    end_fraction: float = 0.75, drop_fraction: float = 0.3, distribution: str = "erk", sparse_leaves=None,
    initial_masks=None,
):  # fmt: skip
    """RigL (Evci et al. 2020): drop smallest |w|, regrow largest |dense grad|; cosine drop schedule.

    `initial_masks` (bool mask pytree with the params' structure, None = dense) replaces the random initial
    masks; each sparse leaf then keeps its mask's nnz through every update. Pass it instead of `sparsity`
    (FiPS starts RigL from the magnitude masks of its SVD factors).
    """
    return _sparse_updater(
        inner, method="rigl", sparsity=sparsity, key=key, distribution=distribution, sparse_leaves=sparse_leaves,
        update_every=update_every, end_step=end_step, total_steps=total_steps, end_fraction=end_fraction,
        drop_fraction=drop_fraction, initial_masks=initial_masks,
    )  # fmt: skip


def srigl(
    inner, *, sparsity, key, update_every: int = 100, total_steps=None, end_step=None, end_fraction: float = 0.75,
    drop_fraction: float = 0.3, gamma_sal: float = 0.3, distribution: str = "erk", sparse_leaves=None,
    group_size: int = 1,
):  # fmt: skip
    """SRigL (Lasby et al. 2024, arXiv 2305.02299): RigL with constant fan-in per neuron and neuron ablation.

    Args:
      inner: the optax optimizer to wrap (e.g. `optax.adamw(1e-3)`).
      sparsity: overall target sparsity (spread over leaves by `distribution`) or a per-leaf pytree.
      key: typed PRNG key (`jax.random.key`); drives the initial masks.
      update_every: ΔT, steps between mask updates.
      total_steps, end_step, end_fraction: T_end = end_step, or end_fraction * total_steps (default 0.75).
      drop_fraction: alpha, the initial drop fraction of the cosine schedule.
      gamma_sal: salience threshold γ_sal in [0, 1]; a neuron with fewer than max(1, floor(γ_sal k0))
        salient weights is ablated (0 disables ablation).
      distribution: "erk" or "uniform" layer densities when `sparsity` is a number.
      sparse_leaves: `(key_path, leaf) -> bool`; default: ndim >= 2 except the first and last such leaf.
      group_size: G, group-shared constant fan-in: each block of G consecutive output neurons of a sparse
        leaf shares one set of k input indices (a condensed layer then runs as a gather-GEMM). G must divide
        every sparse leaf's n_out. Initial masks come from `random_grouped_fan_in_mask`; every update
        prunes and regrows per group (a group scores an input by the sum over its G columns of |w|, or of
        |grad| for growth) and gives all G columns the same new pattern. Ablation treats a group as one
        neuron: its salient count is its number of salient shared inputs, and the whole group is ablated
        when that count falls below max(1, floor(γ_sal k0)). G = 1 (default) is ordinary SRigL. See
        `srigl_mask_update`.

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is a `SparseState`.
    """
    return _sparse_updater(
        inner, method="srigl", sparsity=sparsity, key=key, distribution=distribution, sparse_leaves=sparse_leaves,
        update_every=update_every, end_step=end_step, total_steps=total_steps, end_fraction=end_fraction,
        drop_fraction=drop_fraction, gamma_sal=gamma_sal, group_size=group_size,
    )  # fmt: skip


def find_sparse_state(opt_state) -> SparseState:
    """The (single) `SparseState` inside an optimizer state, e.g. within `optax.chain`."""
    found = [
        s
        for s in jax.tree.leaves(opt_state, is_leaf=lambda x: isinstance(x, SparseState))
        if isinstance(s, SparseState)
    ]
    if len(found) != 1:
        raise ValueError(f"opt_state must contain exactly one SparseState, found {len(found)}")
    return found[0]


def apply_initial_masks(params, opt_state, *, rescale: bool = False):
    """Zeros pruned weights right after `tx.init` (so the very first forward is already sparse).

    With `rescale=True`, each sparse kernel's kept weights are scaled by sqrt(fan_in_dense / fan_in) per
    output neuron, so a fan-in-aware init (variance 1/fan_in) sees its true sparse fan-in (SRigL's init).
    """
    masks = find_sparse_state(opt_state).masks

    def one(m, p):
        if m is None:
            return p
        out = jnp.where(m, p, jnp.zeros((), p.dtype))
        if rescale:
            n_out = m.shape[-1]
            fan_in_dense = m.size // n_out
            fan_in = jnp.sum(m.reshape(fan_in_dense, n_out), axis=0)
            scale = jnp.sqrt(fan_in_dense / jnp.maximum(fan_in, 1)).astype(p.dtype)
            out = out * scale.reshape((1,) * (out.ndim - 1) + (n_out,))  # explicit: no rank promotion
        return out

    return jax.tree.map(one, masks, params, is_leaf=_is_none)
