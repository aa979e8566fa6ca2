"""Gradual magnitude pruning (GMP) with the accelerated cubic schedule of sparsimony, as an optax transform.

Schedule (fips.md §5; sparsimony `AcceleratedCubicScheduler`), evaluated at the last update step u <= t
(updates every ΔT steps):

    u < t_accel:   s = s_init
    u >= t_accel:  s = s_f + (s_acc - s_f) (1 - (u - t_accel) / t_end)^3

Upstream divides by t_end (not t_end - t_accel), so for t_accel > 0 the cubic ends short of s_f
(s_f + (s_acc - s_f)(t_accel / t_end)^3). Here the schedule is s_f from t_end on, with one last prune at
t_end, so the factors end exactly at the sparsity their rank was budgeted for.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsparse._checks import check_int
from jaxsparse.masks import check_masks_match, check_sparsity, map_param_copies, top_n_mask

__all__ = ["GMPState", "gmp_sparsity", "gradual_magnitude_pruning"]

_is_none = lambda x: x is None


class GMPState(NamedTuple):
    """State of `gradual_magnitude_pruning`.

    Attributes:
      count: int32 number of updates taken so far.
      masks: bool masks with the params' structure (None for dense leaves).
      inner_state: the wrapped optimizer's state.
    """

    count: jax.Array
    masks: Any
    inner_state: Any


def _check_schedule(final_sparsity, initial_sparsity, accelerated_sparsity, accel_step, end_step, update_every):
    s_f = check_sparsity(final_sparsity, "final_sparsity")
    s_i = check_sparsity(initial_sparsity, "initial_sparsity")
    s_a = s_i if accelerated_sparsity is None else check_sparsity(accelerated_sparsity, "accelerated_sparsity")
    # Pruning only removes weights: a schedule that went down would have to regrow pruned (zero) weights.
    if not s_i <= s_a <= s_f:
        raise ValueError(
            "the schedule must not decrease: need initial_sparsity <= accelerated_sparsity <= final_sparsity, "
            f"got {s_i}, {s_a}, {s_f}"
        )
    end_step = check_int(end_step, "end_step", minimum=1)
    accel_step = check_int(accel_step, "accel_step", minimum=0)
    if accel_step >= end_step:
        raise ValueError(f"accel_step must be < end_step, got {accel_step} and {end_step}")
    update_every = check_int(update_every, "update_every", minimum=1)
    return s_f, s_i, s_a, accel_step, end_step, update_every


def gmp_sparsity(
    step,
    *,
    final_sparsity: float,
    initial_sparsity: float,
    accelerated_sparsity: float | None = None,
    accel_step: int,
    end_step: int,
    update_every: int,
):
    """Scheduled sparsity at `step` (see the module docstring); piecewise constant between updates.

    Args:
      step: an int (returns a float, computed in float64), a numpy array (float64 array) or a jax array,
        possibly traced (float32 array).
      final_sparsity: s_f, reached at `end_step` and kept after it.
      initial_sparsity: s_init, before `accel_step`.
      accelerated_sparsity: s_acc, the jump at `accel_step` (default s_init: the plain cubic of Zhu & Gupta).
      accel_step: t_accel in [0, end_step).
      end_step: t_end, the last pruning step.
      update_every: ΔT.

    Returns:
      The sparsity in [0, 1).

    Example:
      >>> round(gmp_sparsity(200, final_sparsity=0.75, initial_sparsity=0.05, accelerated_sparsity=0.5,
      ...                    accel_step=150, end_step=450, update_every=50), 6)
      0.574417
    """
    s_f, s_i, s_a, accel, end, every = _check_schedule(
        final_sparsity, initial_sparsity, accelerated_sparsity, accel_step, end_step, update_every
    )
    if isinstance(step, jax.Array):
        xp, t = jnp, step.astype(jnp.int32)
    else:
        if isinstance(step, bool) or not np.issubdtype(np.asarray(step).dtype, np.integer):
            raise ValueError(f"step must be an integer or an integer array, got {step!r}")
        xp, t = np, np.asarray(step, np.int64)
        if np.any(t < 0):
            raise ValueError(f"step must be >= 0, got {step!r}")
    last_update = (t // every) * every
    frac = (last_update - accel) / end
    cubic = s_f + (s_a - s_f) * (1.0 - frac) ** 3
    s = xp.where(t >= end, s_f, xp.where(last_update < accel, s_i, cubic))
    return float(s) if xp is np and np.ndim(s) == 0 and not isinstance(step, np.ndarray) else s


def _nnz_table(total: int, schedule: dict, end_step: int) -> np.ndarray:
    """nnz kept after the update at each count 0..end_step, exact on the host: floor(total (1 - s(t))) with
    num_active's rule, so the traced update never rounds a float32 sparsity."""
    s = gmp_sparsity(np.arange(end_step + 1), **schedule)
    return np.maximum(1, np.floor(total * (1.0 - s) + 1e-6)).astype(np.int32)


def gradual_magnitude_pruning(
    inner: optax.GradientTransformation,
    *,
    final_sparsity: float,
    initial_sparsity: float = 0.0,
    accelerated_sparsity: float | None = None,
    accel_step: int = 0,
    end_step: int,
    update_every: int,
    masks=None,
    sparse_leaves: Callable[[tuple, Any], bool] | None = None,
) -> optax.GradientTransformationExtraArgs:
    """GMP: at every ΔT steps until `end_step` (and at `end_step`), re-prunes the sparse leaves jointly by
    global magnitude to the scheduled sparsity (`gmp_sparsity`); one threshold covers all of them.

    Like the DST updaters, `update(grads, state, params)` feeds the inner optimizer masked gradients and
    projects its updates with `where(mask, update, -params)`, so pruned weights are exactly 0 after
    `optax.apply_updates`. At an update step the masks are recomputed from the current params first and the
    step then trains only the weights kept by both the old and the new mask (their optimizer moments are
    zeroed elsewhere). The prune runs under `lax.cond` with masks as arrays in the state: jittable, no
    recompiles. Selection is `top_n_mask` (exact nnz, ties to the lower index) among the active weights
    first, so a non-decreasing schedule only ever removes weights.

    Args:
      inner: the optax optimizer to wrap.
      final_sparsity, initial_sparsity, accelerated_sparsity, accel_step, end_step, update_every: the schedule
        (`gmp_sparsity`); the sparsity is over all sparse leaves together.
      masks: initial bool masks with the params' structure (None = dense leaf), e.g. FiPS's magnitude masks
        at `initial_sparsity`. They choose the sparse leaves.
      sparse_leaves: alternatively, `(key_path, leaf) -> bool`; init then builds the masks by global
        magnitude at the schedule's sparsity at step 0. Give exactly one of `masks` and `sparse_leaves`.

    Returns:
      An `optax.GradientTransformationExtraArgs` whose state is a `GMPState`.

    References:
      Zhu & Gupta, "To prune, or not to prune", arXiv 1710.01878; Üyük et al., FiPS, arXiv 2411.09816.
    """
    if not isinstance(inner, optax.GradientTransformation):
        raise ValueError(f"inner must be an optax GradientTransformation, got {type(inner).__name__}")
    s_f, s_i, s_a, accel, end, every = _check_schedule(
        final_sparsity, initial_sparsity, accelerated_sparsity, accel_step, end_step, update_every
    )
    schedule = dict(
        final_sparsity=s_f, initial_sparsity=s_i, accelerated_sparsity=s_a,
        accel_step=accel, end_step=end, update_every=every,
    )  # fmt: skip
    if (masks is None) == (sparse_leaves is None):
        raise ValueError("give exactly one of masks (initial mask tree) and sparse_leaves (a leaf filter)")
    if sparse_leaves is not None and not callable(sparse_leaves):
        raise ValueError(f"sparse_leaves must be callable(path, leaf) -> bool, got {sparse_leaves!r}")
    inner = optax.with_extra_args_support(inner)

    def _leaf_flags(params):
        if masks is not None:
            check_masks_match(params, masks, masks_name="masks")
            flags = [m is not None for m in jax.tree.leaves(masks, is_leaf=_is_none)]
        else:
            flat = jax.tree_util.tree_flatten_with_path(params)[0]
            flags = [bool(sparse_leaves(path, leaf)) for path, leaf in flat]
        if not any(flags):
            raise ValueError("gradual_magnitude_pruning has no sparse leaf (masks all None or no leaf selected)")
        return flags

    def _prune(params, old_masks, n_keep, flags):
        """Global top-n |w| over the sparse leaves: first among active weights, then (only when the target
        exceeds the active count, e.g. masks sparser than the schedule) among the inactive ones."""
        leaves, treedef = jax.tree.flatten(params)
        olds = jax.tree.leaves(old_masks, is_leaf=_is_none)
        chosen = [(p, m) for p, m, f in zip(leaves, olds, flags, strict=True) if f]
        scores = jnp.concatenate([jnp.abs(p).reshape(-1).astype(jnp.float32) for p, _ in chosen])
        active = jnp.concatenate([m.reshape(-1) for _, m in chosen])
        keep = top_n_mask(scores, n_keep, valid=active)
        keep = keep | top_n_mask(scores, n_keep - jnp.sum(keep, dtype=jnp.int32), valid=~keep)
        out, offset = [], 0
        for p, f in zip(leaves, flags, strict=True):
            if not f:
                out.append(None)
                continue
            out.append(keep[offset : offset + p.size].reshape(p.shape))
            offset += p.size
        return jax.tree.unflatten(treedef, out)

    def _sizes(params, flags):
        return sum(int(np.prod(np.shape(p))) for p, f in zip(jax.tree.leaves(params), flags, strict=True) if f)

    def init_fn(params):
        flags = _leaf_flags(params)
        if masks is not None:
            init_masks = jax.tree.map(lambda m: None if m is None else jnp.asarray(m, bool), masks, is_leaf=_is_none)
        else:
            n0 = int(_nnz_table(_sizes(params, flags), schedule, 0)[0])
            empty = jax.tree.unflatten(
                jax.tree.structure(params),
                [
                    jnp.zeros(np.shape(p), bool) if f else None
                    for p, f in zip(jax.tree.leaves(params), flags, strict=True)
                ],
            )
            init_masks = _prune(params, empty, n0, flags)
        return GMPState(count=jnp.zeros((), jnp.int32), masks=init_masks, inner_state=inner.init(params))

    def _masked(tree, mask_tree):
        return jax.tree.map(
            lambda m, x: x if m is None else jnp.where(m, x, jnp.zeros((), x.dtype)), mask_tree, tree, is_leaf=_is_none
        )

    def update_fn(grads, state, params=None, **extra):
        if params is None:
            raise ValueError("gradual_magnitude_pruning needs params: call tx.update(grads, state, params)")
        if not isinstance(state, GMPState):
            raise ValueError(f"state must be the GMPState from this transform's init, got {type(state).__name__}")
        if jax.tree.structure(grads) != jax.tree.structure(params):
            raise ValueError("grads and params must have the same tree structure")
        flags = [m is not None for m in jax.tree.leaves(state.masks, is_leaf=_is_none)]
        table = jnp.asarray(_nnz_table(_sizes(params, flags), schedule, end))  # static: shapes only
        t = state.count
        do = ((t > 0) & (t % every == 0) & (t < end)) | (t == end)
        new_masks = jax.lax.cond(
            do, lambda: _prune(params, state.masks, table[jnp.minimum(t, end)], flags), lambda: state.masks
        )
        keep = jax.tree.map(lambda n, o: None if n is None else n & o, new_masks, state.masks, is_leaf=_is_none)
        inner_state = map_param_copies(state.inner_state, params, lambda copy: _masked(copy, keep))
        updates, inner_state = inner.update(_masked(grads, keep), inner_state, params, **extra)
        updates = jax.tree.map(
            lambda m, u, p: u if m is None else jnp.where(m, u, -p).astype(u.dtype),
            keep, updates, params, is_leaf=_is_none,
        )  # fmt: skip
        return updates, GMPState(count=t + 1, masks=new_masks, inner_state=inner_state)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
