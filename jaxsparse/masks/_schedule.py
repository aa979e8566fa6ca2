"""The shared DST schedule (update every ΔT steps until T_end, cosine-annealed drop fraction) and the
moment reset used by every sparse-training method (SRigL, RigL, SET, XMC rewiring)."""

import jax
import jax.numpy as jnp

__all__ = ["cosine_drop_fraction", "is_mask_update_step", "map_param_copies"]


def cosine_drop_fraction(step, *, alpha: float, end_step: int):
    """drop(t) = alpha / 2 * (1 + cos(pi * t / T_end)) for t < T_end, else 0 (RigL/SRigL)."""
    t = jnp.asarray(step, jnp.float32)
    frac = 0.5 * alpha * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, end_step) / end_step))
    return jnp.where(t < end_step, frac, 0.0)


def is_mask_update_step(step, *, update_every: int, end_step: int):
    """True at step t when t > 0, t % ΔT == 0 and t < T_end (the first update comes after ΔT steps)."""
    step = jnp.asarray(step)
    return (step > 0) & (step % update_every == 0) & (step < end_step)


def map_param_copies(opt_state, params, fn):
    """Applies `fn(copy)` to every subtree of an optimizer state with the params' exact tree structure.

    Optimizer moments (Adam's mu and nu, momentum traces) are such copies; use this to zero the moments of
    pruned or regrown weights without dispatching on optimizer state types.
    """
    treedef = jax.tree.structure(params)
    is_copy = lambda x: jax.tree.structure(x) == treedef
    return jax.tree.map(lambda x: fn(x) if is_copy(x) else x, opt_state, is_leaf=is_copy)
