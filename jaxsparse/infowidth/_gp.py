"""Output distribution of the infinite ensemble of infinitely wide networks: gradient flow on MSE, or Bayesian.

For training data ``(X, Y)`` (``N`` inputs, ``k`` outputs), time ``t``, learning rate ``eta`` and
``tau = eta * t / (N k)`` (neural-tangents' convention: the loss is 1/2 of the *mean* over the N k targets):

* ``mode="ntk"`` (every layer trained; Lee et al. 2019, arXiv 1902.06720):
  ``mu(x) = Theta(x,X) Theta^-1 (I - exp(-tau Theta)) Y`` and
  ``Sigma(x,x') = K(x,x') + A(x) K A(x')^T - (A(x) K(X,x') + K(x,X) A(x')^T)`` with
  ``A(x) = Theta(x,X) Theta^-1 (I - exp(-tau Theta))``;
* ``mode="nngp"`` (readout only; the Bayesian posterior at ``t = inf``):
  ``mu(x) = K(x,X) K^-1 (I - exp(-tau K)) Y`` and ``Sigma = K(x,x') - K(x,X) K^-1 (I - exp(-2 tau K)) K(X,x')``.

``diag_reg`` is added to the train-train kernel that is inverted (relative to its mean diagonal unless
``diag_reg_absolute_scale``), exactly as in ``neural_tangents.predict.gradient_descent_mse_ensemble``. The same
covariance holds for every one of the ``k`` outputs (the ``Theta (x) I_k`` structure), so one ``(n, n)``
covariance (or its diagonal) describes ``p(z | x) = N(mu(x), Sigma(x, x) I_k)``.

Everything after the kernel call is float64 numpy: the inverses and exponentials of kernel matrices need it
(reference §3), and it does not touch JAX's global x64 flag.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ._kernels import Kernel

__all__ = ["EnsembleFit", "GaussianPrediction", "evaluate_kernel", "fit_ensemble", "predict_ensemble"]

MODES = ("ntk", "nngp")


@dataclasses.dataclass(frozen=True)
class GaussianPrediction:
    """``p(z | x_i) = N(mean[i], variance[i] I_k)`` for each of ``n`` inputs at one time ``t``.

    Attributes:
        t: The training time (``inf`` for the converged / Bayesian ensemble).
        mean: ``(n, k)`` output means.
        variance: ``(n,)`` per-input variance, the diagonal of ``covariance`` (clipped at 0 against rounding).
        covariance: ``(n, n)`` covariance across inputs, or ``None`` unless requested.
    """

    t: float
    mean: np.ndarray
    variance: np.ndarray
    covariance: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class EnsembleFit:
    """A train-train eigendecomposition reused for every ``t`` and test set (see :func:`fit_ensemble`)."""

    kernel_fn: Callable = dataclasses.field(repr=False)
    x_train: np.ndarray = dataclasses.field(repr=False)
    y_train: np.ndarray = dataclasses.field(repr=False)
    mode: str
    diag_reg: float
    reg_absolute: float  # what was added to the diagonal before the eigendecomposition
    learning_rate: float
    normalization: float  # N k, or 1 when time is not normalised
    nngp_train: np.ndarray = dataclasses.field(repr=False)  # unregularised K(X, X)
    eigenvalues: np.ndarray = dataclasses.field(repr=False)  # of the regularised Theta (ntk) or K (nngp)
    eigenvectors: np.ndarray = dataclasses.field(repr=False)


def _float_array(x, name: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from err
    if arr.ndim == 0 or arr.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one row (N >= 1), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def evaluate_kernel(kernel_fn: Callable, x1, x2=None, get: tuple[str, ...] = ("nngp", "ntk")) -> Kernel:
    """Calls a neural-tangents-style ``kernel_fn(x1, x2, get)`` in float64 and returns float64 numpy kernels.

    neural-tangents kernels are evaluated on float64 inputs inside ``jax.enable_x64(True)``, so the global
    flag is left as it was. Native kernels (:func:`fc_kernel_fn`) are float64 numpy already.

    Raises:
        TypeError: If ``kernel_fn`` is not callable or returns no ``nngp`` / ``ntk`` of the right shape.
    """
    if not callable(kernel_fn):
        raise TypeError(f"kernel_fn must be callable, got {type(kernel_fn).__name__}")
    x1 = _float_array(x1, "x1")
    x2 = None if x2 is None else _float_array(x2, "x2")
    import jax
    import jax.numpy as jnp

    with jax.enable_x64(True):
        out = kernel_fn(jnp.asarray(x1), None if x2 is None else jnp.asarray(x2), tuple(get))
        values = {g: getattr(out, g, None) for g in get}
        values = {g: None if v is None else np.asarray(v, dtype=np.float64) for g, v in values.items()}
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    for g, v in values.items():
        if v is None or v.shape != (x1.shape[0], n2):
            shape = None if v is None else v.shape
            raise TypeError(
                f"kernel_fn must return {g!r} of shape {(x1.shape[0], n2)} (output channels traced out), got {shape}"
            )
    return Kernel(nngp=values.get("nngp"), ntk=values.get("ntk"))


def fit_ensemble(
    kernel_fn: Callable,
    x_train,
    y_train,
    *,
    mode: str = "ntk",
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    learning_rate: float = 1.0,
    normalize_time: bool = True,
) -> EnsembleFit:
    """Evaluates the train-train kernels and eigendecomposes the regularised one.

    Args:
        kernel_fn: ``kernel_fn(x1, x2, get)`` returning ``.nngp`` and ``.ntk`` (neural-tangents' stax kernel or
            :func:`fc_kernel_fn`).
        x_train: ``(N, ...)`` training inputs.
        y_train: ``(N,)`` or ``(N, k)`` regression targets.
        mode: ``"ntk"`` (gradient flow, all layers) or ``"nngp"`` (readout only / Bayesian).
        diag_reg: Non-negative diagonal regulariser of the inverted kernel.
        diag_reg_absolute_scale: If False, ``diag_reg`` is multiplied by the kernel's mean diagonal (NT default).
        learning_rate: Positive gradient-flow learning rate ``eta``.
        normalize_time: If True (NT's convention) the exponent is ``eta t Theta / (N k)``; otherwise ``eta t Theta``.

    Returns:
        An :class:`EnsembleFit` for :func:`predict_ensemble`.

    Raises:
        ValueError: On a bad mode, negative ``diag_reg``, non-positive learning rate, empty or mismatched data.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not np.isfinite(diag_reg) or diag_reg < 0:
        raise ValueError(f"diag_reg must be a finite number >= 0, got {diag_reg!r}")
    if not np.isfinite(learning_rate) or learning_rate <= 0:
        raise ValueError(f"learning_rate must be a positive finite number, got {learning_rate!r}")
    x = _float_array(x_train, "x_train")
    y = _float_array(y_train, "y_train")
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2:
        raise ValueError(f"y_train must have shape (N,) or (N, k), got {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"x_train and y_train must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    kern = evaluate_kernel(kernel_fn, x, None, ("nngp", "ntk") if mode == "ntk" else ("nngp",))
    inverted = kern.ntk if mode == "ntk" else kern.nngp
    inverted = 0.5 * (inverted + inverted.T)
    scale = diag_reg if diag_reg_absolute_scale else diag_reg * np.trace(inverted) / inverted.shape[0]
    evals, evecs = np.linalg.eigh(inverted + scale * np.eye(inverted.shape[0]))
    return EnsembleFit(
        kernel_fn=kernel_fn,
        x_train=x,
        y_train=y,
        mode=mode,
        diag_reg=float(diag_reg),
        reg_absolute=float(scale),
        learning_rate=float(learning_rate),
        normalization=float(y.size) if normalize_time else 1.0,
        nngp_train=kern.nngp,
        eigenvalues=evals,
        eigenvectors=evecs,
    )


def _check_time(t) -> float:
    try:
        t = float(t)
    except (TypeError, ValueError) as err:
        raise TypeError(f"t must be a number (or inf), got {t!r}") from err
    if math.isnan(t) or t < 0:
        raise ValueError(f"t must be >= 0 (inf for the converged ensemble), got {t}")
    return t


def _spectral_factor(evals: np.ndarray, tau: float, two: bool) -> np.ndarray:
    """``(1 - exp(-c tau lam)) / lam`` (c = 2 if ``two``), its limits at lam -> 0 and tau -> inf."""
    lam = np.maximum(evals, 0.0)
    c = 2.0 if two else 1.0
    tol = lam.size * np.finfo(np.float64).eps * max(float(lam.max(initial=0.0)), np.finfo(np.float64).tiny)
    big = lam > tol
    safe = np.where(big, lam, 1.0)
    if math.isinf(tau):
        return np.where(big, 1.0 / safe, 0.0)  # pseudo-inverse on the numerically null space
    return np.where(big, -np.expm1(-c * tau * safe) / safe, c * tau)


def predict_ensemble(
    fit: EnsembleFit, times: float | Sequence[float], x_test=None, *, full_covariance: bool = False
) -> GaussianPrediction | tuple[GaussianPrediction, ...]:
    """Mean and covariance of the ensemble's outputs on ``x_test`` at time(s) ``times``.

    Args:
        fit: The result of :func:`fit_ensemble`.
        times: One time ``t >= 0`` (``math.inf`` = converged) or a sequence of them; kernels are computed once.
        x_test: ``(n, ...)`` inputs; ``None`` means the training inputs *with* the regulariser (neural-tangents'
            ``x_test=x_train``, not its unregularised ``x_test=None``).
        full_covariance: Also return the ``(n, n)`` covariance (otherwise only its diagonal).

    Returns:
        One :class:`GaussianPrediction` for a scalar ``times``, else a tuple of them in the same order.

    Raises:
        ValueError: On a negative or NaN time, or test inputs whose feature shape differs from the training one.
    """
    scalar = np.ndim(times) == 0
    ts = [_check_time(t) for t in np.atleast_1d(np.asarray(times, dtype=object))]
    if not ts:
        raise ValueError("times must hold at least one time")
    if x_test is None:
        return _predict_train(fit, ts, scalar, full_covariance)
    x = _float_array(x_test, "x_test")
    if x.shape[1:] != fit.x_train.shape[1:]:
        raise ValueError(f"x_test has feature shape {x.shape[1:]}, x_train {fit.x_train.shape[1:]}")
    get = ("nngp", "ntk") if fit.mode == "ntk" else ("nngp",)
    k_td = evaluate_kernel(fit.kernel_fn, x, fit.x_train, get)
    nngp_tt = evaluate_kernel(fit.kernel_fn, x, None, ("nngp",)).nngp if full_covariance else None
    if full_covariance:
        k_tt_diag = np.diag(nngp_tt)
    else:  # only the diagonal is needed; native kernels compute it in O(n)
        k_tt_diag = _kernel_diagonal(fit.kernel_fn, x)
    v, evals = fit.eigenvectors, fit.eigenvalues
    inverted_td = k_td.ntk if fit.mode == "ntk" else k_td.nngp
    b = inverted_td @ v  # (n, N)
    y_rot = v.T @ fit.y_train  # (N, k)
    if fit.mode == "ntk":
        c = v.T @ fit.nngp_train @ v
        d = k_td.nngp @ v
    out = []
    for t in ts:
        tau = fit.learning_rate * t / fit.normalization
        g = _spectral_factor(evals, tau, two=False)
        bg = b * g[None, :]
        mean = bg @ y_rot
        if fit.mode == "ntk":
            bgc = bg @ c
            variance = k_tt_diag + np.sum(bgc * bg, axis=1) - 2.0 * np.sum(bg * d, axis=1)
            cov = None
            if full_covariance:
                cross = bg @ d.T
                cov = nngp_tt + bgc @ bg.T - (cross + cross.T)
        else:
            g2 = _spectral_factor(evals, tau, two=True)
            variance = k_tt_diag - np.sum(b * b * g2[None, :], axis=1)
            cov = nngp_tt - (b * g2[None, :]) @ b.T if full_covariance else None
        out.append(GaussianPrediction(t=t, mean=mean, variance=np.maximum(variance, 0.0), covariance=cov))
    return out[0] if scalar else tuple(out)


def _predict_train(fit: EnsembleFit, ts: list[float], scalar: bool, full_covariance: bool):
    """Training inputs in the eigenbasis, where the covariance is a product instead of a difference.

    With ``M = V diag(lam) V^T`` the regularised kernel (``lam`` its eigenvalues, ``r`` the absolute regulariser),
    ``A = (M - r I) M^-1 (I - exp(-tau M))`` and ``I - A = V diag(h) V^T`` with ``h = exp(-tau lam) + r g``.
    NTK: ``Sigma = (I - A) K (I - A)^T``; NNGP: ``Sigma = V diag((lam - r)(exp(-2 tau lam) + r g2)) V^T``.
    Both are exact rewritings of the general formulas for ``x = X``, but free of the cancellation that turns
    small late-time variances into rounding noise.
    """
    v, evals = fit.eigenvectors, fit.eigenvalues
    reg = fit.reg_absolute
    y_rot = v.T @ fit.y_train
    c = v.T @ fit.nngp_train @ v if fit.mode == "ntk" else None
    out = []
    for t in ts:
        tau = fit.learning_rate * t / fit.normalization
        g = _spectral_factor(evals, tau, two=False)
        mean = v @ (((evals - reg) * g)[:, None] * y_rot)
        decay = np.zeros_like(evals) if math.isinf(tau) else np.exp(-tau * np.maximum(evals, 0.0))
        if fit.mode == "ntk":
            h = decay + reg * g
            null = g == 0.0  # numerically null directions at t = inf keep their prior (A = 0 there)
            h = np.where(null, 1.0, h)
            vh = v * h[None, :]
            vhc = vh @ c
            variance = np.sum(vhc * vh, axis=1)
            cov = vhc @ vh.T if full_covariance else None
        else:
            g2 = _spectral_factor(evals, tau, two=True)
            decay2 = np.zeros_like(evals) if math.isinf(tau) else np.exp(-2 * tau * np.maximum(evals, 0.0))
            s = np.maximum(evals - reg, 0.0) * np.where(g2 == 0.0, 1.0, decay2 + reg * g2)
            variance = np.sum(v * v * s[None, :], axis=1)
            cov = (v * s[None, :]) @ v.T if full_covariance else None
        out.append(GaussianPrediction(t=t, mean=mean, variance=np.maximum(variance, 0.0), covariance=cov))
    return out[0] if scalar else tuple(out)


def _kernel_diagonal(kernel_fn: Callable, x: np.ndarray) -> np.ndarray:
    """``diag K(x, x)`` without the full matrix, when ``kernel_fn`` supports it cheaply."""
    diag_fn = getattr(kernel_fn, "nngp_diagonal", None)
    if diag_fn is not None:
        return np.asarray(diag_fn(x), dtype=np.float64)
    return np.diag(evaluate_kernel(kernel_fn, x, None, ("nngp",)).nngp).copy()
