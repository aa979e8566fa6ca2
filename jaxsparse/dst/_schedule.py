"""The shared DST schedule: update every ΔT steps until T_end, with a cosine-annealed drop fraction."""

import jax.numpy as jnp

__all__ = ["cosine_drop_fraction", "is_mask_update_step"]


def cosine_drop_fraction(step, *, alpha: float, end_step: int):
    """drop(t) = alpha / 2 * (1 + cos(pi * t / T_end)) for t < T_end, else 0 (RigL/SRigL)."""
    t = jnp.asarray(step, jnp.float32)
    frac = 0.5 * alpha * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, end_step) / end_step))
    return jnp.where(t < end_step, frac, 0.0)


def is_mask_update_step(step, *, update_every: int, end_step: int):
    """True at step t when t > 0, t % ΔT == 0 and t < T_end (the first update comes after ΔT steps)."""
    step = jnp.asarray(step)
    return (step > 0) & (step % update_every == 0) & (step < end_step)
