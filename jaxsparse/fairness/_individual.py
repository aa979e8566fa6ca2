"""Individual fairness (consistency, Lipschitz violations) and AIF360's generalised entropy index; all jittable.

These are dtype-generic: they compute in the inputs' float dtype (float32 unless x64 is enabled).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse._checks import check_int

from ._counts import _binarize

__all__ = ["consistency_score", "generalized_entropy_error", "generalized_entropy_index", "lipschitz_violation"]

_METRICS = ("l1", "l2", "linf")


def _pairwise(x, metric):
    diff = x[:, None, :] - x[None, :, :]  # [N, N, D]: O(N^2 D) memory, meant for evaluation-sized N
    if metric == "l2":
        return jnp.sqrt(jnp.sum(diff * diff, axis=-1))
    if metric == "l1":
        return jnp.sum(jnp.abs(diff), axis=-1)
    return jnp.max(jnp.abs(diff), axis=-1)


def _check_xy(x, y, xname, yname):
    if jnp.ndim(x) != 2:
        raise ValueError(f"{xname} must be 2-D [N, D], got shape {jnp.shape(x)}")
    if jnp.ndim(y) != 1 or jnp.shape(y)[0] != jnp.shape(x)[0]:
        raise ValueError(f"{yname} must be 1-D with {xname}'s length {jnp.shape(x)[0]}, got shape {jnp.shape(y)}")


@functools.partial(jax.jit, static_argnames="n_neighbors")
def _consistency(x, y, n_neighbors):
    x = jnp.asarray(x)
    d2 = jnp.sum((x[:, None, :] - x[None, :, :]) ** 2, axis=-1)
    _, idx = jax.lax.top_k(-d2, n_neighbors)  # includes the point itself, as sklearn's kneighbors(X) does
    y = jnp.asarray(y).astype(x.dtype)
    # |k y_i - sum_j y_j| is exact for binary predictions; dividing once at the end (rather than XLA's fused
    # y - sum * (1/k)) keeps a perfectly consistent prediction at exactly 1.
    gaps = jnp.abs(n_neighbors * y - jnp.sum(y[idx], axis=1))
    return 1.0 - jnp.sum(gaps) / (y.shape[0] * n_neighbors)


def consistency_score(x, y_pred, *, n_neighbors: int = 5):
    """AIF360's `consistency_score`: 1 - mean_i |ŷ_i - mean_{j in kNN(i)} ŷ_j| (Zemel et al. 2013).

    As in AIF360 (sklearn `NearestNeighbors(n_neighbors).kneighbors(X)` on the training points) each point's
    k neighbours include itself; Euclidean distance; ties in distance may pick different neighbours than
    sklearn.

    Args:
        x: Features [N, D] (float).
        y_pred: Predictions [N] (binary or scores).
        n_neighbors: k, with 1 <= k <= N.

    Returns:
        Scalar in x's float dtype; 1 is perfectly consistent.
    """
    _check_xy(x, y_pred, "x", "y_pred")
    n_neighbors = check_int(n_neighbors, "n_neighbors", minimum=1)
    if n_neighbors > jnp.shape(x)[0]:
        raise ValueError(f"n_neighbors must be <= the number of samples {jnp.shape(x)[0]}, got {n_neighbors}")
    return _consistency(x, y_pred, n_neighbors)


@functools.partial(jax.jit, static_argnames="metric")
def _lipschitz(x, scores, metric, lipschitz):
    x = jnp.asarray(x)
    d = _pairwise(x, metric)
    s = jnp.asarray(scores).astype(x.dtype)
    gap = jnp.abs(s[:, None] - s[None, :])
    n = x.shape[0]
    upper = jnp.triu(jnp.ones((n, n), dtype=bool), k=1)  # each unordered pair i < j once
    violations = jnp.sum(upper & (gap > lipschitz * d))
    return violations / (n * (n - 1) // 2)


def lipschitz_violation(x, scores, *, metric: str = "l2", lipschitz: float = 1.0):
    """Fraction of unordered pairs i < j with |f(x_i) - f(x_j)| > L · d(x_i, x_j) (Dwork et al. 2012).

    Args:
        x: Features [N, D] (float), N >= 2.
        scores: Model outputs f(x) [N].
        metric: Distance d: "l2", "l1" or "linf".
        lipschitz: L >= 0 (may be traced).

    Returns:
        Scalar in [0, 1]; 0 means f is L-Lipschitz on the sample.
    """
    _check_xy(x, scores, "x", "scores")
    if metric not in _METRICS:
        raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
    if jnp.shape(x)[0] < 2:
        raise ValueError(f"x needs at least 2 samples to form a pair, got {jnp.shape(x)[0]}")
    if not isinstance(lipschitz, jax.core.Tracer) and not float(lipschitz) >= 0:
        raise ValueError(f"lipschitz must be >= 0, got {lipschitz!r}")
    return _lipschitz(x, scores, metric, lipschitz)


def _check_alpha(alpha):
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        raise ValueError(f"alpha must be a Python real number (it selects the formula), got {alpha!r}")
    return float(alpha)


@functools.partial(jax.jit, static_argnames="alpha")
def _ge(b, alpha):
    # r = n b / sum(b) and sum(r^alpha) - n before the single division: XLA fuses b / mean(b) and
    # mean(.) - 1 into FMAs with 1/n, which leaves ~1e-8 for perfectly equal benefits instead of exactly 0.
    n = b.shape[0]
    r = (b * n) / jnp.sum(b)
    if alpha == 0:
        return -jnp.sum(jnp.log(r)) / n
    if alpha == 1:
        return jnp.sum(jax.scipy.special.xlogy(r, r)) / n  # Theil index; 0 log 0 = 0
    return (jnp.sum(r**alpha) - n) / (n * alpha * (alpha - 1.0))


def generalized_entropy_index(b, *, alpha: float = 2):
    """AIF360's `generalized_entropy_index`: GE(α) = (1/(n α(α-1))) Σ [(b_i/μ)^α - 1] (Speicher et al. 2018).

    α = 1 is the Theil index (mean of r log r, r = b/μ) and α = 0 the mean log deviation.

    Args:
        b: 1-D non-negative benefits [N] with positive mean (float; ints are cast to float32).
        alpha: Static α.
    """
    alpha = _check_alpha(alpha)
    if jnp.ndim(b) != 1 or jnp.shape(b)[0] == 0:
        raise ValueError(f"b must be a non-empty 1-D array, got shape {jnp.shape(b)}")
    b = jnp.asarray(b)
    if not jnp.issubdtype(b.dtype, jnp.floating):
        b = b.astype(jnp.float32)
    return _ge(b, alpha)


def generalized_entropy_error(y_true, y_pred, *, alpha: float = 2, pos_label=None):
    """AIF360's `generalized_entropy_error`: GE(α) of b_i = ŷ_i - y_i + 1 (1 + [ŷ_i = pos] - [y_i = pos]).

    b is 2 for a false positive, 0 for a false negative and 1 when correct. With `pos_label=None` the labels
    must be binary ({0, 1} or {-1, 1}, positive 1; checked only on concrete inputs); pass `pos_label=` for
    one-vs-rest on multi-class labels.
    """
    alpha = _check_alpha(alpha)
    if jnp.ndim(y_true) != 1 or jnp.shape(y_true) != jnp.shape(y_pred):
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {jnp.shape(y_true)}, {jnp.shape(y_pred)}")
    if pos_label is None:
        if not any(isinstance(y, jax.core.Tracer) for y in (y_true, y_pred)):
            _binarize({"y_true": np.asarray(y_true), "y_pred": np.asarray(y_pred)}, None)  # raises if not binary
        pos_label = 1
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
    b = 1.0 + (jnp.asarray(y_pred) == pos_label).astype(dtype) - (jnp.asarray(y_true) == pos_label).astype(dtype)
    return generalized_entropy_index(b, alpha=alpha)
