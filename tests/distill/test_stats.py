import numpy as np
import pytest
from scipy import stats

from jaxsparse.distill import (
    benjamini_hochberg,
    class_bias_report,
    classwise_seed_test,
    mcnemar_test,
    per_class_accuracy,
)


def test_per_class_accuracy_by_hand():
    y_true = [0, 0, 1, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 0, 0]
    np.testing.assert_allclose(per_class_accuracy(y_true, y_pred, num_classes=3), [0.5, 2 / 3, 0.0])


def test_per_class_accuracy_errors():
    with pytest.raises(ValueError, match="no examples"):
        per_class_accuracy([0, 0, 1], [0, 0, 1], num_classes=3)
    with pytest.raises(ValueError, match="equal length"):
        per_class_accuracy([0, 1], [0], num_classes=2)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        per_class_accuracy([0, 1], [0, 2], num_classes=2)
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        per_class_accuracy([0, -1], [0, 1], num_classes=2)


def _pair(b, c, both=3, neither=2):
    a = [True] * b + [False] * c + [True] * both + [False] * neither
    bb = [False] * b + [True] * c + [True] * both + [False] * neither
    return np.array(a), np.array(bb)


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (3, 9), (10, 2), (7, 7)])
def test_mcnemar_exact_matches_binomtest(b, c):
    r = mcnemar_test(*_pair(b, c))
    assert (r.b, r.c, r.method) == (b, c, "exact")
    expected = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5).pvalue
    assert r.pvalue == pytest.approx(expected, rel=1e-12)
    assert r.statistic == min(b, c)


def test_mcnemar_exact_hand_value():
    # b=1, c=7: p = 2 * P(X <= 1), X ~ Bin(8, 1/2) = 2 * 9 / 256.
    assert mcnemar_test(*_pair(1, 7)).pvalue == pytest.approx(18 / 256)


@pytest.mark.parametrize(("b", "c"), [(20, 10), (5, 25), (15, 15), (40, 3)])
def test_mcnemar_chi2_matches_continuity_formula(b, c):
    r = mcnemar_test(*_pair(b, c))
    assert r.method == "chi2"
    stat = (abs(b - c) - 1) ** 2 / (b + c)
    assert r.statistic == pytest.approx(stat)
    assert r.pvalue == pytest.approx(stats.chi2.sf(stat, df=1), rel=1e-12)


def test_mcnemar_forced_method_and_errors():
    assert mcnemar_test(*_pair(3, 9), exact=False).method == "chi2"
    assert mcnemar_test(*_pair(20, 10), exact=True).method == "exact"
    with pytest.raises(ValueError, match="equal length"):
        mcnemar_test([True, False], [True])
    with pytest.raises(ValueError, match="boolean"):
        mcnemar_test([0, 2], [1, 1])


def test_benjamini_hochberg_spec_values_and_scipy():
    p = np.array([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216])
    rej, adj = benjamini_hochberg(p, q=0.05)
    np.testing.assert_allclose(adj, [0.01, 0.04, 0.084, 0.084, 0.084, 0.1, 0.1057, 0.216, 0.216, 0.216], atol=1e-4)
    assert rej.tolist() == [True, True] + [False] * 8
    np.testing.assert_allclose(adj, stats.false_discovery_control(p, method="bh"), rtol=1e-12)
    # Unsorted input with ties and ones.
    rng = np.random.default_rng(0)
    p2 = np.concatenate([rng.uniform(size=30) ** 3, [0.01, 0.01, 1.0]])
    rng.shuffle(p2)
    rej2, adj2 = benjamini_hochberg(p2, q=0.1)
    np.testing.assert_allclose(adj2, stats.false_discovery_control(p2, method="bh"), rtol=1e-12)
    np.testing.assert_array_equal(rej2, adj2 <= 0.1)


def test_benjamini_hochberg_errors():
    with pytest.raises(ValueError, match="q"):
        benjamini_hochberg([0.1], q=0.0)
    with pytest.raises(ValueError, match="p_values"):
        benjamini_hochberg([1.2], q=0.05)


def test_classwise_seed_test_matches_scipy():
    a = np.array([[0.70, 0.5], [0.72, 0.5], [0.71, 0.5], [0.69, 0.5], [0.73, 0.5]])
    b = np.array([[0.64, 0.5], [0.66, 0.5], [0.65, 0.5], [0.63, 0.5], [0.67, 0.5]])
    p = classwise_seed_test(a, b, test="welch")
    assert p[0] == pytest.approx(3.23e-4, rel=1e-2)  # spec sanity value: t = 6, df = 8
    assert p[1] == 1.0  # identical on every seed
    b2 = b + np.array([[0.01, 0], [-0.02, 0], [0.0, 0], [0.03, 0], [-0.01, 0]])
    np.testing.assert_allclose(
        classwise_seed_test(a, b2, test="paired_t")[0], stats.ttest_rel(a[:, 0], b2[:, 0]).pvalue
    )
    np.testing.assert_allclose(classwise_seed_test(a, b2, test="wilcoxon")[0], stats.wilcoxon(a[:, 0], b2[:, 0]).pvalue)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        classwise_seed_test(a[:1], b[:1])
    with pytest.raises(ValueError, match="test must be"):
        classwise_seed_test(a, b, test="mannwhitney")


def test_class_bias_report_counts():
    y = np.array([0, 0, 1, 1, 2, 2])
    teacher = np.tile(y, (3, 1))
    nds = np.array([[0, 0, 0, 0, 2, 2], [0, 0, 0, 1, 2, 2], [0, 0, 0, 0, 2, 2]])
    ds = {2.0: teacher.copy(), 4.0: nds.copy()}
    rep = class_bias_report(y, teacher, nds, ds, num_classes=3, q=0.05)
    by_t = {r["temperature"]: r for r in rep["rows"]}
    assert by_t[2.0]["n_tc"] == 0 and by_t[4.0]["n_sc"] == 0  # identical models: nothing changes
    assert by_t[2.0]["disagree_teacher"] == 0.0 and by_t[4.0]["disagree_nds"] == 0.0
    assert by_t[2.0]["n_sc"] <= 1 and by_t[2.0]["n_sc_bh"] <= by_t[2.0]["n_sc"]
    np.testing.assert_allclose(rep["per_class"]["non_distilled"], [1.0, 1 / 6, 1.0])
    with pytest.raises(ValueError, match="no examples"):
        class_bias_report(y, teacher, nds, ds, num_classes=4)
    with pytest.raises(ValueError, match="predictions"):
        class_bias_report(y, teacher[:, :5], nds, ds, num_classes=3)
