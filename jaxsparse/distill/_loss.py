"""Knowledge-distillation loss (Hinton et al. 2015), in the convention of Mohammadshahi & Ioannou (2410.08407).

L = alpha * CE(y, softmax(z_s)) + (1 - alpha) * [T^2] * KL(softmax(z_t / T) || softmax(z_s / T)), mean over batch.

alpha weights the HARD (label) term, as in the paper's notation, so alpha = 1 is plain cross-entropy at any T.
"""

import math
from numbers import Real

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.nn import cross_entropy

__all__ = ["kd_loss", "soft_kl"]


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _check_real(value, name: str) -> float | None:
    """Returns a concrete float (None when traced, i.e. when called under jit with a traced hyper-parameter)."""
    if not _is_concrete(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if isinstance(value, Real):
        return float(value)
    arr = np.asarray(value)
    if arr.shape != () or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a real scalar, got {value!r}")
    return float(arr)


def soft_kl(student_logits, teacher_logits, *, temperature) -> jax.Array:
    """Per-example KL(softmax(teacher / T) || softmax(student / T)), shape `[batch]`.

    Computed from log-softmaxes so a teacher probability that underflows to 0 contributes exactly 0 (the
    0 * log 0 = 0 convention) instead of NaN. The teacher is a fixed target: its logits get `stop_gradient`.
    """
    log_ps = jax.nn.log_softmax(student_logits / temperature, axis=-1)
    log_pt = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits) / temperature, axis=-1)
    pt = jnp.exp(log_pt)
    return jnp.sum(jnp.where(pt > 0, pt * (log_pt - log_ps), 0.0), axis=-1)


def _kd_loss(student_logits, teacher_logits, labels, alpha, temperature, scale_by_t2: bool) -> jax.Array:
    """Unchecked loss, used inside the jitted training loop where alpha and T are traced."""
    soft = jnp.mean(soft_kl(student_logits, teacher_logits, temperature=temperature))
    if scale_by_t2:
        soft = temperature**2 * soft
    return alpha * cross_entropy(student_logits, labels) + (1.0 - alpha) * soft


def kd_loss(student_logits, teacher_logits, labels, *, alpha, temperature, scale_by_t2: bool = True) -> jax.Array:
    """Knowledge-distillation loss, mean over the batch.

    ``alpha * CE(labels, softmax(student)) + (1 - alpha) * [T**2] * KL(softmax(teacher/T) || softmax(student/T))``

    The hard term is the usual cross-entropy at T = 1 (`jaxsparse.nn.cross_entropy`). The T**2 factor
    (Hinton et al. 2015, §2) keeps the soft-term gradient, T * (p_s - p_t), comparable across temperatures;
    whether arXiv 2410.08407 used it is unconfirmed, so it can be switched off.

    Args:
        student_logits: `[batch, classes]` logits of the model being trained.
        teacher_logits: `[batch, classes]` logits of the fixed teacher (gradient is stopped).
        labels: `[batch]` integer labels in `[0, classes)`.
        alpha: Weight of the HARD (label) term, in [0, 1]; 1 gives plain cross-entropy, 0 pure distillation.
        temperature: Softmax temperature T > 0 of the soft term.
        scale_by_t2: Whether to multiply the soft term by T**2.

    Returns:
        A scalar.

    Raises:
        ValueError: On a bad alpha or T, mismatched shapes, or (when labels are concrete) a label out of range.
            Value checks on alpha, T and labels are skipped when they are traced under `jit`.

    Examples:
        >>> import jax.numpy as jnp
        >>> z = jnp.array([[2.0, 0.0, -1.0]])
        >>> float(kd_loss(z, z, jnp.array([0]), alpha=0.0, temperature=4.0))
        0.0
    """
    t = _check_real(temperature, "temperature")
    if t is not None and not (math.isfinite(t) and t > 0):
        raise ValueError(f"temperature must be a finite real > 0, got {temperature!r}")
    a = _check_real(alpha, "alpha")
    if a is not None and not (0.0 <= a <= 1.0):
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if not isinstance(scale_by_t2, bool | np.bool_):
        raise ValueError(f"scale_by_t2 must be a bool, got {scale_by_t2!r}")
    # Range-check labels on the host before any jnp op: under jit even closed-over constants become tracers.
    concrete_labels = np.asarray(labels) if _is_concrete(labels) else None
    student_logits = jnp.asarray(student_logits)
    teacher_logits = jnp.asarray(teacher_logits)
    labels = jnp.asarray(labels)
    if student_logits.ndim != 2:
        raise ValueError(f"student_logits must be [batch, classes], got shape {student_logits.shape}")
    if teacher_logits.shape != student_logits.shape:
        raise ValueError(
            f"teacher_logits shape {teacher_logits.shape} must equal student_logits shape {student_logits.shape}"
        )
    if labels.shape != student_logits.shape[:1]:
        raise ValueError(f"labels must have shape {student_logits.shape[:1]}, got {labels.shape}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if concrete_labels is not None and concrete_labels.size:
        lo, hi = int(concrete_labels.min()), int(concrete_labels.max())
        if lo < 0 or hi >= student_logits.shape[1]:
            raise ValueError(f"labels must lie in [0, {student_logits.shape[1]}), got range [{lo}, {hi}]")
    return _kd_loss(student_logits, teacher_logits, labels, alpha, temperature, bool(scale_by_t2))
