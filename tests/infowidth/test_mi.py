"""I(X; Z) bounds: linear-Gaussian bracket, extremes, exact mixture MI and the Kolchinsky-Tracey bracket."""

import math

import numpy as np
import pytest
from scipy.special import logsumexp

from jaxsparse.infowidth import mi_bounds, pairwise_mi_bounds


def test_linear_gaussian_bounds_bracket_true_mi_and_tighten_with_n():
    # X ~ N(0, I_2), Z = X + N(0, I_2): I = 1/2 log det(2 I) = ln 2. The batch is redrawn every time.
    rng = np.random.default_rng(0)
    gaps = {}
    for n, batches in ((16, 200), (64, 60), (256, 20)):
        nce, loo = [], []
        for b in range(batches):
            x = rng.standard_normal((n, 2))
            est = mi_bounds(x, np.ones(n), num_samples=4, seed=b)
            nce.append(est.nce)
            loo.append(est.loo)
        nce, loo = np.array(nce), np.array(loo)
        se_nce, se_loo = nce.std(ddof=1) / math.sqrt(batches), loo.std(ddof=1) / math.sqrt(batches)
        assert nce.mean() <= math.log(2) + 3 * se_nce, (n, nce.mean())
        assert loo.mean() >= math.log(2) - 3 * se_loo, (n, loo.mean())
        assert np.all(loo >= nce)  # per batch: LOO drops the own term from a mean that includes it
        gaps[n] = float(np.mean(loo - nce))
    assert gaps[16] > gaps[64] > gaps[256] > 0, gaps  # measured: 0.15, 0.043, 0.011
    # At small N the bracket is strict well beyond noise: NCE is capped near log N.
    assert gaps[16] > 0.1


def test_identical_means_give_zero():
    est = mi_bounds(np.full((20, 3), 0.7), np.full(20, 0.2), num_samples=3, seed=1)
    assert abs(est.nce) < 1e-12 and abs(est.loo) < 1e-12
    lower, upper = pairwise_mi_bounds(np.full((20, 3), 0.7), np.full(20, 0.2))
    assert abs(lower) < 1e-12 and abs(upper) < 1e-12


def test_well_separated_means_reach_log_n():
    n = 32
    means = 1e3 * np.arange(n)[:, None]
    est = mi_bounds(means, np.full(n, 1e-2), num_samples=2)
    assert est.nce == pytest.approx(math.log(n), abs=1e-12)
    assert est.loo > 1e6  # no other component explains z_i: the upper bound explodes
    assert est.nce_bits == pytest.approx(5.0, abs=1e-12)
    lower, upper = pairwise_mi_bounds(means, np.full(n, 1e-2))
    assert lower == pytest.approx(math.log(n), abs=1e-12) and upper == pytest.approx(math.log(n), abs=1e-12)


def _exact_mixture_mi_1d(means, variances) -> float:
    """I = H(Z) - H(Z|X) for X uniform over the components; H(Z) by quadrature on a fine grid."""
    sd = np.sqrt(variances)
    grid = np.linspace(means.min() - 12 * sd.max(), means.max() + 12 * sd.max(), 200_001)
    log_comp = -0.5 * np.log(2 * np.pi * variances)[:, None] - (grid[None, :] - means[:, None]) ** 2 / (
        2 * variances[:, None]
    )
    log_mix = logsumexp(log_comp, axis=0) - math.log(len(means))
    h_z = -np.trapezoid(np.exp(log_mix) * log_mix, grid)
    h_z_given_x = np.mean(0.5 * np.log(2 * np.pi * math.e * variances))
    return float(h_z - h_z_given_x)


def test_nce_is_the_mixture_mi_and_pairwise_bounds_bracket_it():
    rng = np.random.default_rng(3)
    means = rng.standard_normal(10) * 2.0
    variances = rng.uniform(0.2, 1.5, 10)
    exact = _exact_mixture_mi_1d(means, variances)
    est = mi_bounds(means, variances, num_samples=4000, seed=0)
    # With the whole support in the batch, the InfoNCE denominator is the mixture density itself, so I_NCE is an
    # unbiased Monte Carlo estimate of the exact value; 4000 draws per component leave ~0.005 nats of noise.
    # (nce_se measures the spread over the 10 inputs, a different quantity, so it is not the tolerance here.)
    assert est.nce == pytest.approx(exact, abs=0.02)
    assert est.loo > est.nce
    lower, upper = pairwise_mi_bounds(means, variances)
    assert lower <= exact <= upper, (lower, exact, upper)
    assert est.loo_bits == pytest.approx(est.loo / math.log(2))


@pytest.mark.parametrize(
    ("means", "variances", "kwargs", "match"),
    [
        (np.zeros((4, 2)), np.array([1.0, 1.0, 0.0, 1.0]), {}, "variances must be > 0"),
        (np.zeros((4, 2)), np.ones(3), {}, "shape"),
        (np.zeros((1, 2)), np.ones(1), {}, "N >= 2"),
        (np.zeros((0, 2)), np.ones(0), {}, "N >= 2"),
        (np.zeros((4, 2)), np.ones(4), {"num_samples": 0}, "num_samples"),
        (np.full((4, 2), np.nan), np.ones(4), {}, "finite"),
    ],
)
def test_bad_inputs_raise(means, variances, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mi_bounds(means, variances, **kwargs)
