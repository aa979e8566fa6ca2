"""Individual-fairness metrics (hand cases, sklearn kNN reference), reweighing and group-threshold guarantees."""

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from jaxsparse import fairness as fx

# ---------------------------------------------------------------------------------------------------------
# consistency, Lipschitz, generalised entropy
# ---------------------------------------------------------------------------------------------------------


def test_consistency_hand_case():
    # two well-separated clusters of 3; k=3 includes the point itself (AIF360 / sklearn kneighbors(X))
    x = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]], dtype=np.float32)
    y = np.array([1, 1, 0, 0, 0, 0])
    # cluster 1 neighbours mean 2/3 for all three: |1-2/3|*2 + |0-2/3| = 4/3; cluster 2 exact -> mean 4/18
    assert float(fx.consistency_score(x, y, n_neighbors=3)) == pytest.approx(1 - 4 / 18, abs=1e-6)
    assert float(fx.consistency_score(x, np.ones(6), n_neighbors=3)) == 1.0
    jitted = jax.jit(functools.partial(fx.consistency_score, n_neighbors=3))
    assert float(jitted(x, y)) == pytest.approx(1 - 4 / 18, abs=1e-6)


def test_consistency_matches_sklearn_reference():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)), rng.integers(0, 2, 60)
    _, idx = NearestNeighbors(n_neighbors=5).fit(x).kneighbors(x)
    want = 1 - np.abs(y - y[idx].mean(axis=1)).mean()  # AIF360's formula
    with jax.enable_x64(True):
        got = float(fx.consistency_score(x, y, n_neighbors=5))
    assert abs(got - want) <= 1e-9


def test_lipschitz_violation_hand_case():
    x = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])  # d01 = 5, d02 = 1, d12 = sqrt(18)
    f = np.array([0.0, 6.0, 0.5])  # gaps 6 > 5 (violates), 0.5 <= 1, 5.5 > 4.24 (violates)
    with jax.enable_x64(True):
        assert float(fx.lipschitz_violation(x, f)) == pytest.approx(2 / 3, abs=1e-12)
        assert float(fx.lipschitz_violation(x, f, lipschitz=2.0)) == 0.0
        assert float(fx.lipschitz_violation(x, f, metric="l1")) == 0.0  # d01 = 7, d12 = 6
        assert float(fx.lipschitz_violation(x, f, metric="linf")) == pytest.approx(2 / 3, abs=1e-12)  # d01 = 4, d12 = 3
    assert float(jax.jit(fx.lipschitz_violation)(x, f)) == pytest.approx(2 / 3)


def _ge_reference(b, alpha):
    r = b / b.mean()
    if alpha == 1:
        return np.mean(np.where(r > 0, r * np.log(np.where(r > 0, r, 1)), 0))
    if alpha == 0:
        return -np.mean(np.log(r))
    return (np.mean(r**alpha) - 1) / (alpha * (alpha - 1))


def test_generalized_entropy_hand_cases():
    assert float(fx.generalized_entropy_index(np.ones(5))) == 0.0  # equal benefits
    # b = [0, 2]: mean 1, GE(2) = (mean([0, 4]) - 1) / 2 = 0.5; Theil = (0 + 2 log 2) / 2 = log 2
    assert float(fx.generalized_entropy_index(np.array([0.0, 2.0]), alpha=2)) == pytest.approx(0.5)
    assert float(fx.generalized_entropy_index(np.array([0.0, 2.0]), alpha=1)) == pytest.approx(np.log(2), rel=1e-6)
    # one false negative among 4 correct: b = [1,1,1,1,0], mean 0.8
    yt, yp = np.array([1, 0, 1, 0, 1]), np.array([1, 0, 1, 0, 0])
    want = (np.mean((np.array([1, 1, 1, 1, 0]) / 0.8) ** 2) - 1) / 2
    assert float(fx.generalized_entropy_error(yt, yp, alpha=2)) == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("alpha", [0, 0.5, 1, 2, 3])
def test_generalized_entropy_matches_reference(alpha):
    rng = np.random.default_rng(1)
    b = rng.random(50) + 0.1
    with jax.enable_x64(True):
        assert abs(float(fx.generalized_entropy_index(b, alpha=alpha)) - _ge_reference(b, alpha)) <= 1e-12


def test_individual_errors():
    with pytest.raises(ValueError, match="n_neighbors"):
        fx.consistency_score(np.zeros((3, 2)), np.zeros(3), n_neighbors=4)
    with pytest.raises(ValueError, match="y_pred must be 1-D"):
        fx.consistency_score(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="metric"):
        fx.lipschitz_violation(np.zeros((3, 2)), np.zeros(3), metric="cosine")
    with pytest.raises(ValueError, match="lipschitz"):
        fx.lipschitz_violation(np.zeros((3, 2)), np.zeros(3), lipschitz=-1.0)
    with pytest.raises(ValueError, match="y_true has labels"):
        fx.generalized_entropy_error(np.array([0, 2, 1]), np.array([0, 1, 1]))
    multi_t, multi_p = np.array([0, 2, 1, 2]), np.array([2, 2, 1, 0])
    got = float(fx.generalized_entropy_error(multi_t, multi_p, pos_label=2))
    assert got == pytest.approx(float(fx.generalized_entropy_error(multi_t == 2, multi_p == 2)))
    with pytest.raises(ValueError, match="alpha"):
        fx.generalized_entropy_index(np.ones(3), alpha=jnp.float32(2))


# ---------------------------------------------------------------------------------------------------------
# mitigation
# ---------------------------------------------------------------------------------------------------------


def test_reweighing_guarantee():
    rng = np.random.default_rng(0)
    s = rng.choice(["a", "b", "c"], 500, p=[0.6, 0.3, 0.1])
    y = (rng.random(500) < np.where(s == "a", 0.7, 0.2)).astype(int)
    w = fx.reweighing_weights(y, s)
    assert w.sum() == pytest.approx(500, abs=1e-9)
    for g in "abc":
        m = s == g
        assert np.sum(w[m] * y[m]) / np.sum(w[m]) == pytest.approx(y.mean(), abs=1e-12)
    # hand case: P(A=a)=1/2, P(Y=1)=1/2, P(a,1)=3/8 -> w = (1/2)(1/2)/(3/8) = 2/3
    w = fx.reweighing_weights(np.array([1, 1, 1, 0, 1, 0, 0, 0]), np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    assert w[0] == pytest.approx(2 / 3) and w[3] == pytest.approx(2.0)


def _brute_force(y, scores, s, constraint, cand, tol):
    groups = np.unique(s)
    cand = np.unique(np.append(cand, np.inf))
    best = -1
    for combo in itertools.product(cand, repeat=groups.size):
        t = np.asarray(combo)[np.searchsorted(groups, s)]
        pred = scores >= t
        rates = []
        for g in groups:
            m = s == g
            if constraint == "demographic_parity":
                rates.append([pred[m].mean()])
            else:
                tpr = pred[m & (y == 1)].mean()
                rates.append([tpr] if constraint == "true_positive_rate_parity" else [tpr, pred[m & (y == 0)].mean()])
        rates = np.asarray(rates)
        if np.all(np.ptp(rates, axis=0) <= tol + 1e-12):
            best = max(best, int(np.sum(pred == (y == 1))))
    return best / y.size


@pytest.mark.parametrize("constraint", ["demographic_parity", "true_positive_rate_parity", "equalized_odds"])
@pytest.mark.parametrize("seed", [0, 1])
def test_group_thresholds_guarantee(constraint, seed):
    rng = np.random.default_rng(seed)
    n = 60
    s = rng.choice(["a", "b", "c"], n)
    y = rng.integers(0, 2, n)
    scores = y * 0.6 + rng.random(n) + np.where(s == "a", 0.3, 0.0)
    grid = np.linspace(scores.min(), scores.max(), 7)
    tol = 0.1
    fitted = fx.fit_group_thresholds(y, scores, s, constraint=constraint, grid=grid, tolerance=tol)
    pred = np.asarray(fx.apply_group_thresholds(scores, s, fitted))
    # the reported violation and accuracy are those of the applied thresholds
    assert fitted.accuracy == pytest.approx(np.mean(pred == y), abs=1e-12)
    if constraint == "demographic_parity":
        from fairlearn.metrics import demographic_parity_difference as violation
    elif constraint == "equalized_odds":
        from fairlearn.metrics import equalized_odds_difference as violation
    else:
        from fairlearn.metrics import equal_opportunity_difference as violation
    v = violation(y, pred, sensitive_features=s)
    assert v <= tol + 1e-12 and v == pytest.approx(fitted.violation, abs=1e-12)
    # accuracy is maximal among all grid threshold vectors meeting the constraint
    assert fitted.accuracy == pytest.approx(_brute_force(y, scores, s, constraint, grid, tol), abs=1e-12)
    # deterministic
    again = fx.fit_group_thresholds(y, scores, s, constraint=constraint, grid=grid, tolerance=tol)
    np.testing.assert_array_equal(again.thresholds, fitted.thresholds)


def test_group_thresholds_errors():
    y, sc, s = np.array([0, 1, 0, 0]), np.array([0.1, 0.9, 0.3, 0.2]), np.array(["a", "a", "b", "b"])
    with pytest.raises(ValueError, match="group 'b' of sensitive_features has no positive"):
        fx.fit_group_thresholds(y, sc, s, constraint="equalized_odds")
    with pytest.raises(ValueError, match="constraint"):
        fx.fit_group_thresholds(y, sc, s, constraint="parity")
    with pytest.raises(ValueError, match="tolerance"):
        fx.fit_group_thresholds(y, sc, s, tolerance=2)
    fitted = fx.fit_group_thresholds(y, sc, s, grid=5)
    with pytest.raises(ValueError, match="not fitted"):
        fx.apply_group_thresholds(sc, np.array(["a", "z", "a", "a"]), fitted)


def test_apply_group_thresholds_needs_the_fitted_object():
    with pytest.raises(ValueError, match="thresholds must be the GroupThresholds"):
        fx.apply_group_thresholds(np.array([0.1, 0.9]), np.array([0, 1]), np.array([0.5, 0.5]))
