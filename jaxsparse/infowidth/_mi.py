"""I(X; Z) for a Gaussian-mixture representation ``p(z | x_i) = N(mu_i, s_i I_k)``, with X over a batch of N inputs.

Sampling bounds (Poole et al. 2019, arXiv 1905.06922), with ``z_i ~ p(z | x_i)`` and the true critic
``log p(z | x)``:

* InfoNCE lower bound  ``I_NCE = E[ 1/N sum_i log p(z_i|x_i) / (1/N sum_j p(z_i|x_j)) ]  <= I``, and ``<= log N``;
* leave-one-out upper bound ``I_LOO = E[ 1/N sum_i log p(z_i|x_i) / (1/(N-1) sum_{j!=i} p(z_i|x_j)) ]  >= I``.

When X is *defined* as uniform over the N points, the InfoNCE denominator is exactly the mixture density, so
``I_NCE`` is an unbiased estimate of that mixture's MI; ``I_LOO`` upper-bounds the MI of the underlying
continuous input distribution (used by the input-compression bound). Both are in nats; ``*_bits`` divide by ln 2.

Deterministic alternative (Kolchinsky & Tracey 2017): pairwise-distance bounds on the mixture MI, Bhattacharyya
(lower) and KL (upper), closed form for isotropic Gaussians. Everything is float64 numpy with logsumexp.
"""

import dataclasses
import math

import numpy as np
from scipy.special import logsumexp

__all__ = ["MIEstimate", "check_gaussian_mixture", "mi_bounds", "pairwise_mi_bounds"]

LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class MIEstimate:
    """InfoNCE (lower) and leave-one-out (upper) estimates of I(X; Z) in nats, with standard errors.

    The standard error is that of a mean over the N per-input terms (each averaged over the samples).
    """

    nce: float
    loo: float
    nce_se: float
    loo_se: float
    n: int
    num_samples: int

    @property
    def nce_bits(self) -> float:
        return self.nce / LN2

    @property
    def loo_bits(self) -> float:
        return self.loo / LN2

    @property
    def nce_se_bits(self) -> float:
        return self.nce_se / LN2

    @property
    def loo_se_bits(self) -> float:
        return self.loo_se / LN2


def check_gaussian_mixture(means, variances, *, min_n: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Validates ``means`` ``(N,)``/``(N, k)`` and positive ``variances`` ``(N,)``; returns float64 copies.

    Raises:
        ValueError: Empty input, mismatched shapes, non-finite values, or a variance that is not > 0 (a zero
            variance makes ``p(z|x)`` a point mass and ``I_LOO`` infinite: use a finite ``t`` or ``diag_reg > 0``).
    """
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    if mu.ndim == 1:
        mu = mu[:, None]
    if mu.ndim != 2 or mu.shape[0] < min_n:
        raise ValueError(f"means must have shape (N,) or (N, k) with N >= {min_n}, got {np.shape(means)}")
    if var.shape != (mu.shape[0],):
        raise ValueError(f"variances must have shape ({mu.shape[0]},) to match means, got {var.shape}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(var))):
        raise ValueError("means and variances must be finite")
    if np.any(var <= 0):
        raise ValueError(
            f"variances must be > 0 (min {var.min():.3g}): a zero ensemble variance (e.g. NTK at t = inf with "
            "diag_reg = 0 on training inputs) makes I_LOO infinite; use a finite t or diag_reg > 0"
        )
    return mu, var


def _log_density_matrix(z: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``L[i, j] = log N(z_i; mu_j, var_j I_k)``; squared distances summed per axis (no cancellation)."""
    n, k = mu.shape
    sq = np.zeros((n, n))
    for c in range(k):
        sq += (z[:, c, None] - mu[None, :, c]) ** 2
    return -0.5 * k * np.log(2 * np.pi * var)[None, :] - sq / (2 * var)[None, :]


def mi_bounds(means, variances, *, num_samples: int = 8, seed: int = 0) -> MIEstimate:
    """InfoNCE and leave-one-out bounds on I(X; Z) for ``p(z|x_i) = N(means[i], variances[i] I_k)``.

    Args:
        means: ``(N,)`` or ``(N, k)`` conditional means, ``N >= 2``.
        variances: ``(N,)`` positive conditional variances (isotropic over the k outputs).
        num_samples: Number of draws ``z_i ~ p(z|x_i)`` per input averaged over (>= 1).
        seed: Seed of the numpy generator for the draws.

    Returns:
        An :class:`MIEstimate` (nats; ``*_bits`` properties for bits).

    Raises:
        ValueError: See :func:`check_gaussian_mixture`; also ``N < 2`` or ``num_samples < 1``.

    Example:
        >>> est = mi_bounds(np.zeros((5, 2)), np.ones(5))  # identical means: no information
        >>> abs(est.nce) < 1e-12 and abs(est.loo) < 1e-12
        True
    """
    mu, var = check_gaussian_mixture(means, variances, min_n=2)
    if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be an int >= 1, got {num_samples!r}")
    n, k = mu.shape
    rng = np.random.default_rng(seed)
    nce_terms = np.zeros(n)
    loo_terms = np.zeros(n)
    diag = np.arange(n)
    for _ in range(num_samples):
        z = mu + np.sqrt(var)[:, None] * rng.standard_normal((n, k))
        log_p = _log_density_matrix(z, mu, var)
        own = log_p[diag, diag].copy()
        nce_terms += own - logsumexp(log_p, axis=1) + math.log(n)
        log_p[diag, diag] = -np.inf
        loo_terms += own - logsumexp(log_p, axis=1) + math.log(n - 1)
    nce_terms /= num_samples
    loo_terms /= num_samples

    def se(x):
        return float(np.std(x, ddof=1) / math.sqrt(n))

    return MIEstimate(
        nce=float(nce_terms.mean()),
        loo=float(loo_terms.mean()),
        nce_se=se(nce_terms),
        loo_se=se(loo_terms),
        n=n,
        num_samples=int(num_samples),
    )


def pairwise_mi_bounds(means, variances) -> tuple[float, float]:
    """Kolchinsky & Tracey (2017) bounds on the MI of the uniform mixture of ``N(means[i], variances[i] I_k)``.

    ``I >= -1/N sum_i log 1/N sum_j exp(-BD_ij)`` (Bhattacharyya distance) and the same with KL(p_i || p_j) is
    an upper bound. Both lie in ``[0, log N]``.

    Returns:
        ``(lower, upper)`` in nats.

    Raises:
        ValueError: See :func:`check_gaussian_mixture`.
    """
    mu, var = check_gaussian_mixture(means, variances)
    n, k = mu.shape
    sq = np.zeros((n, n))
    for c in range(k):
        sq += (mu[:, c, None] - mu[None, :, c]) ** 2
    si, sj = var[:, None], var[None, :]
    kl = 0.5 * (k * si / sj + sq / sj - k + k * np.log(sj / si))
    avg = 0.5 * (si + sj)
    bd = sq / (8 * avg) + 0.5 * k * np.log(avg / np.sqrt(si * sj))

    def bound(dist):
        return float(-np.mean(logsumexp(-dist, axis=1) - math.log(n)))

    return bound(bd), bound(kl)
