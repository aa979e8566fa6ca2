"""Group metrics against fairlearn 0.15 (to 1e-9: counts are ints, rates numpy float64), AIF360 hand cases."""

import operator

import fairlearn.metrics as flm
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import fairness as fx


def _case(seed, n=200, groups=3, labels=(0, 1)):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(labels, size=n)
    y_pred = rng.choice(labels, size=n)
    names = np.array(["a", "b", "c", "d", "e"][:groups])
    s = names[rng.integers(0, groups, size=n)]
    return y_true, y_pred, s


CASES = [(seed, g, labels) for seed in range(2) for g in (2, 3, 5) for labels in ((0, 1), (-1, 1))]


@pytest.mark.parametrize(("seed", "groups", "labels"), CASES)
@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
def test_demographic_parity_matches_fairlearn(seed, groups, labels, method):
    yt, yp, s = _case(seed, groups=groups, labels=labels)
    for ours, theirs in [
        (fx.demographic_parity_difference, flm.demographic_parity_difference),
        (fx.demographic_parity_ratio, flm.demographic_parity_ratio),
    ]:
        got = ours(yt, yp, sensitive_features=s, method=method)
        want = theirs(yt, yp, sensitive_features=s, method=method)
        assert abs(got - want) <= 1e-9, (ours.__name__, got, want)


@pytest.mark.parametrize(("seed", "groups", "labels"), CASES)
@pytest.mark.parametrize("method", ["between_groups", "to_overall"])
@pytest.mark.parametrize("agg", ["worst_case", "mean"])
def test_equalized_odds_matches_fairlearn(seed, groups, labels, method, agg):
    yt, yp, s = _case(seed, groups=groups, labels=labels)
    for ours, theirs in [
        (fx.equalized_odds_difference, flm.equalized_odds_difference),
        (fx.equalized_odds_ratio, flm.equalized_odds_ratio),
    ]:
        got = ours(yt, yp, sensitive_features=s, method=method, agg=agg)
        want = theirs(yt, yp, sensitive_features=s, method=method, agg=agg)
        assert abs(got - want) <= 1e-9, (ours.__name__, got, want)


def test_intersectional_groups_match_fairlearn():
    rng = np.random.default_rng(7)
    yt, yp = rng.integers(0, 2, 300), rng.integers(0, 2, 300)
    s = np.stack([rng.integers(0, 2, 300), rng.integers(0, 3, 300)], axis=1)
    got = fx.equalized_odds_difference(yt, yp, sensitive_features=s)
    want = flm.equalized_odds_difference(yt, yp, sensitive_features=s)
    assert abs(got - want) <= 1e-9


def test_selection_rate_matches_fairlearn():
    yt, yp, _ = _case(1)
    assert abs(fx.selection_rate(yp) - flm.selection_rate(yt, yp)) <= 1e-12
    multi = np.array([0, 1, 2, 2, 1])
    assert fx.selection_rate(multi, pos_label=2) == 0.4
    assert fx.selection_rate(multi, pos_label=1) == 0.4  # explicit pos_label=1 is one-vs-rest
    with pytest.raises(ValueError, match="y_pred has labels"):
        fx.selection_rate(multi)


def test_equal_selection_rates_give_exactly_zero():
    # rates 1/3 in every group: computed from integer counts, so bit-identical and the difference exactly 0
    yp = np.array([1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1])
    s = np.repeat(["x", "y", "z"], 6)
    assert fx.demographic_parity_difference(yp, yp, sensitive_features=s) == 0.0
    assert fx.demographic_parity_ratio(yp, yp, sensitive_features=s) == 1.0


def test_pos_label_one_vs_rest_equals_binarised():
    rng = np.random.default_rng(3)
    yt, yp, s = rng.integers(0, 3, 100), rng.integers(0, 3, 100), rng.integers(0, 2, 100)
    got = fx.equalized_odds_difference(yt, yp, sensitive_features=s, pos_label=2)
    want = flm.equalized_odds_difference((yt == 2).astype(int), (yp == 2).astype(int), sensitive_features=s)
    assert abs(got - want) <= 1e-9


def test_group_counts_sum_over_batches_and_jit():
    yt, yp, s = _case(0, n=120, groups=3)
    codes = np.unique(s, return_inverse=True)[1]
    full = fx.group_counts(yt, yp, codes, num_groups=3)
    a = fx.group_counts(yt[:50], yp[:50], codes[:50], num_groups=3)
    b = fx.group_counts(yt[50:], yp[50:], codes[50:], num_groups=3)
    merged = jax.tree.map(operator.add, a, b)
    for x, y in zip(full, merged, strict=True):
        np.testing.assert_array_equal(x, y)
    jitted = jax.jit(fx.group_counts, static_argnames="num_groups")(yt, yp, codes, num_groups=3)
    for x, y in zip(full, jitted, strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(full.n, full.tp + full.fp + full.fn + full.tn)


def test_metrics_jit_with_num_groups():
    yt, yp, s = _case(2, groups=3)
    codes = np.unique(s, return_inverse=True)[1].astype(np.int32)

    @jax.jit
    def f(yt, yp, codes):
        return (
            fx.demographic_parity_difference(yt, yp, sensitive_features=codes, num_groups=3),
            fx.equalized_odds_ratio(yt, yp, sensitive_features=codes, method="to_overall", agg="mean", num_groups=3),
        )

    dpd, eor = f(jnp.asarray(yt), jnp.asarray(yp), jnp.asarray(codes))
    want_dpd = flm.demographic_parity_difference(yt, yp, sensitive_features=s)
    want_eor = flm.equalized_odds_ratio(yt, yp, sensitive_features=s, method="to_overall", agg="mean")
    assert abs(float(dpd) - want_dpd) < 1e-6 and abs(float(eor) - want_eor) < 1e-6  # float32 under jit
    # one-vs-rest on device, and NaN (not an error) for an undefined rate under jit
    multi = jnp.asarray(np.where(yp == 1, 2, 0))
    got = jax.jit(lambda a, b, c: fx.equalized_odds_difference(a, b, sensitive_features=c, pos_label=2, num_groups=3))(
        jnp.asarray(yt * 2), multi, jnp.asarray(codes)
    )
    assert abs(float(got) - flm.equalized_odds_difference(yt, yp, sensitive_features=s)) < 1e-6
    nan = jax.jit(lambda a, b, c: fx.equalized_odds_difference(a, b, sensitive_features=c, num_groups=4))(
        jnp.asarray(yt), jnp.asarray(yp), jnp.asarray(codes)
    )
    assert np.isnan(float(nan))
    with pytest.raises(ValueError, match="num_groups"):
        jax.jit(lambda a, b, c: fx.demographic_parity_difference(a, b, sensitive_features=c))(yt, yp, codes)


def test_aif360_conventions_hand_case():
    # privileged "p": 4 samples, unprivileged "u" + "v" pooled: 6 samples
    s = np.array(["p", "p", "p", "p", "u", "u", "u", "v", "v", "v"])
    yt = np.array([1, 1, 0, 0, 1, 1, 0, 1, 0, 0])
    yp = np.array([1, 1, 1, 0, 1, 0, 0, 0, 1, 0])
    # priv: SR 3/4, TPR 2/2, FPR 1/2, PPV 2/3.  unpriv: SR 2/6, TPR 1/3, FPR 1/3, PPV 1/2.
    kw = {"sensitive_features": s, "privileged_group": "p"}
    assert fx.statistical_parity_difference(yt, yp, **kw) == pytest.approx(2 / 6 - 3 / 4, abs=1e-15)
    assert fx.disparate_impact(yt, yp, **kw) == pytest.approx((2 / 6) / (3 / 4), abs=1e-15)
    assert fx.equal_opportunity_difference(yt, yp, **kw) == pytest.approx(1 / 3 - 1, abs=1e-15)
    assert fx.average_odds_difference(yt, yp, **kw) == pytest.approx(((1 / 3 - 1 / 2) + (1 / 3 - 1)) / 2, abs=1e-15)
    assert fx.predictive_parity_difference(yt, yp, **kw) == pytest.approx(1 / 2 - 2 / 3, abs=1e-15)
    # two groups: |signed| equals fairlearn's unsigned difference
    s2 = np.where(s == "p", "p", "u")
    kw2 = {"sensitive_features": s2, "privileged_group": "p"}
    assert abs(fx.equal_opportunity_difference(yt, yp, **kw2)) == pytest.approx(
        flm.equal_opportunity_difference(yt, yp, sensitive_features=s2), abs=1e-12
    )
    assert abs(fx.statistical_parity_difference(yt, yp, **kw2)) == pytest.approx(
        flm.demographic_parity_difference(yt, yp, sensitive_features=s2), abs=1e-12
    )


def test_average_odds_can_cancel():
    # TPR gap +0.5, FPR gap -0.5: AIF360's average odds is 0 while fairlearn's EOD mean is 0.5
    s = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    yt = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    yp = np.array([1, 0, 1, 0, 1, 1, 0, 0])
    assert fx.average_odds_difference(yt, yp, sensitive_features=s, privileged_group=0) == 0.0
    assert fx.equalized_odds_difference(yt, yp, sensitive_features=s, agg="mean") == 0.5


def test_calibration_by_group_matches_sklearn():
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        yp = rng.random(400)
        yp[:5] = [0.0, 1.0, 0.2, 0.4, 0.6]  # edges: sklearn puts p == edge in the lower bin
        yt = (rng.random(400) < yp).astype(int)
        s = rng.choice(["m", "f", "x"], 400)
        cal = fx.calibration_by_group(yt, yp, s, num_bins=5)
        for gi, g in enumerate(sorted(set(s))):
            want_true, want_pred = calibration_curve(yt[s == g], yp[s == g], n_bins=5)
            nonempty = np.asarray(cal.count[gi]) > 0
            np.testing.assert_allclose(np.asarray(cal.fraction_positive()[gi])[nonempty], want_true, atol=1e-12)
            np.testing.assert_allclose(np.asarray(cal.mean_prob()[gi])[nonempty], want_pred, atol=1e-12)
        assert float(jnp.sum(cal.count)) == 400
        codes = np.unique(s, return_inverse=True)[1]
        jitted = jax.jit(fx.calibration_by_group, static_argnames=("num_bins", "num_groups"))
        got = jitted(yt, yp, codes, num_bins=5, num_groups=3)
        np.testing.assert_allclose(got.count, cal.count)


# ---------------------------------------------------------------------------------------------------------
# argument errors
# ---------------------------------------------------------------------------------------------------------


def test_errors():
    yt, yp, s = np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), np.array(["a", "a", "b", "b"])
    kw = {"sensitive_features": s}
    with pytest.raises(ValueError, match="same length"):
        fx.demographic_parity_difference(yt, yp[:3], **kw)
    with pytest.raises(ValueError, match="sensitive_features must have shape"):
        fx.demographic_parity_difference(yt, yp, sensitive_features=s[:3])
    with pytest.raises(ValueError, match="at least 2 samples"):
        fx.equalized_odds_difference(yt[:1], yp[:1], sensitive_features=s[:1])
    with pytest.raises(ValueError, match="y_pred has labels"):
        fx.demographic_parity_difference(yt, np.array([0, 1, 2, 0]), **kw)
    with pytest.raises(ValueError, match="y_true has labels"):
        fx.equalized_odds_difference(np.array([0, 3, 1, 0]), yp, **kw)
    with pytest.raises(ValueError, match="mix"):
        fx.equalized_odds_difference(np.array([-1, 1, 1, -1]), yp, **kw)
    # group "c" has no positive y_true: fairlearn scores its TPR 0 silently, we name the group
    s3 = np.array(["a", "a", "c", "c"])
    with pytest.raises(ValueError, match="group 'c' of sensitive_features has no positive y_true"):
        fx.equalized_odds_difference(np.array([0, 1, 0, 0]), yp, sensitive_features=s3)
    with pytest.raises(ValueError, match="method"):
        fx.demographic_parity_difference(yt, yp, method="max", **kw)
    with pytest.raises(ValueError, match="agg"):
        fx.equalized_odds_difference(yt, yp, agg="sum", **kw)
    with pytest.raises(ValueError, match="every group's rate is 0"):
        fx.demographic_parity_ratio(yt, np.zeros(4, int), **kw)
    with pytest.raises(ValueError, match="privileged_group='z' does not occur"):
        fx.disparate_impact(yt, yp, sensitive_features=s, privileged_group="z")
    with pytest.raises(ValueError, match="no unprivileged"):
        fx.disparate_impact(yt, yp, sensitive_features=np.array(["a"] * 4), privileged_group="a")
    with pytest.raises(ValueError, match=r"privileged.*selection rate 0"):
        fx.disparate_impact(yt, np.array([0, 0, 1, 0]), sensitive_features=s, privileged_group="a")
    with pytest.raises(ValueError, match="sensitive codes"):
        fx.group_counts(yt, yp, np.array([0, 1, 2, 0]), num_groups=2)
    with pytest.raises(ValueError, match="y_true must hold binary"):
        fx.group_counts(np.array([0, 2, 1, 0]), yp, np.array([0, 1, 1, 0]), num_groups=2)
    with pytest.raises(ValueError, match="num_groups"):
        fx.group_counts(yt, yp, np.array([0, 1, 1, 0]), num_groups=0)
    with pytest.raises(ValueError, match="y_prob"):
        fx.calibration_by_group(yt, np.array([0.1, 1.2, 0.3, 0.4]), s, num_bins=3)
