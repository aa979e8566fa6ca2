"""Tests for the XMC metrics: propensity weights, P@k / nDCG@k / PSP@k / PSnDCG@k, accumulation, streaming top-k."""

import math

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.sparse as sp

from jaxsparse.xmc._metrics import (
    PROPENSITY_AB,
    XMCMetricAccumulator,
    inverse_propensity,
    ndcg_at_k,
    precision_at_k,
    psndcg_at_k,
    psp_at_k,
    top_k_streaming,
)

# ----------------------------------------------------------------------------------------------------------
# propensity
# ----------------------------------------------------------------------------------------------------------


def test_inverse_propensity_matches_hand_computation():
    counts = [0, 1, 10, 100, 1000]
    n, a, b = 1000, 0.55, 1.5
    c = (math.log(n) - 1.0) * (b + 1.0) ** a
    expected = [1.0 + c * (cnt + b) ** (-a) for cnt in counts]
    got = inverse_propensity(np.array(counts), n, A=a, B=b)
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    # by hand for N_l = 10: C = (6.907755 - 1) * 2.5^0.55 = 5.907755 * 1.655... ; w = 1 + C * 11.5^-0.55
    assert got[2] == pytest.approx(1.0 + 5.907755278982137 * 2.5**0.55 / 11.5**0.55, rel=1e-12)
    assert got.dtype == np.float64


@pytest.mark.parametrize("family", sorted(PROPENSITY_AB))
def test_inverse_propensity_at_least_one_and_decreasing(family):
    a, b = PROPENSITY_AB[family]
    counts = np.arange(0, 5000)
    w = inverse_propensity(counts, 5000, A=a, B=b)
    assert np.all(w >= 1.0)
    assert np.all(np.diff(w) < 0)


def test_propensity_table():
    assert PROPENSITY_AB == {"wikipedia": (0.5, 0.4), "amazon": (0.6, 2.6), "other": (0.55, 1.5)}


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (([1, 2], 0), {}, "num_train"),
        (([1, 2], 2.0), {}, "num_train"),
        (([1, 2], 10), {"A": 0.0}, "A"),
        (([1, 2], 10), {"B": -1.0}, "B"),
        (([1, 2], 10), {"A": float("nan")}, "A"),
        (([-1, 2], 10), {}, "train_label_counts"),
        (([1, 20], 10), {}, "train_label_counts"),
        (([[1, 2]], 10), {}, "train_label_counts"),
    ],
)
def test_inverse_propensity_rejects_bad_arguments(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        inverse_propensity(*args, **kwargs)


# ----------------------------------------------------------------------------------------------------------
# hand-computed tiny example
# ----------------------------------------------------------------------------------------------------------

# Two points, five labels. Point 0 has labels {0, 2} and predictions [2, 1, 0]; point 1 has {4} and [0, 1, 2].
Y = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 1]], np.float32))
TOP = np.array([[2, 1, 0], [0, 1, 2]])
W = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
L3 = math.log2(3)


def test_precision_by_hand():
    assert precision_at_k(TOP, Y, ks=(1, 2, 3)) == pytest.approx({1: 0.5, 2: 0.25, 3: 1 / 3})


def test_ndcg_by_hand():
    # Point 0: DCG@3 = 1/log2(2) + 1/log2(4) = 1.5; IDCG (2 positives) = 1 + 1/log2(3). Point 1: 0.
    expected = {1: 0.5, 2: 0.5 * (1 / (1 + 1 / L3)), 3: 0.5 * 1.5 / (1 + 1 / L3)}
    assert ndcg_at_k(TOP, Y, ks=(1, 2, 3)) == pytest.approx(expected, rel=1e-12)


def test_psp_by_hand():
    # @1: numerators 3 + 0, best 3 + 5.  @3: numerators (3 + 1) + 0, best (3 + 1) + 5.
    assert psp_at_k(TOP, Y, W, ks=(1, 3)) == pytest.approx({1: 3 / 8, 3: 4 / 9}, rel=1e-12)


def test_psndcg_by_hand():
    # pyxclib: mean_i(PS-DCG_i / IDCG_i) / mean_i(best PS-DCG_i / IDCG_i).
    idcg0 = 1 + 1 / L3
    num = (3 + 1 / 2) / idcg0 + 0.0
    den = (3 + 1 / L3) / idcg0 + 5 / 1
    assert psndcg_at_k(TOP, Y, W, ks=(3,)) == pytest.approx({3: num / den}, rel=1e-12)
    assert psndcg_at_k(TOP, Y, W, ks=(1,)) == pytest.approx({1: 3 / 8}, rel=1e-12)


def test_metrics_accept_dense_labels_and_jax_indices():
    assert precision_at_k(jnp.asarray(TOP), Y.toarray(), ks=(1, 3)) == pytest.approx({1: 0.5, 3: 1 / 3})
    assert precision_at_k(TOP, Y, ks=3) == pytest.approx({3: 1 / 3})


# ----------------------------------------------------------------------------------------------------------
# brute force on random data
# ----------------------------------------------------------------------------------------------------------


def _brute(top, y_dense, w, k):
    """Independent per-point loops following the textbook / pyxclib definitions."""
    n = y_dense.shape[0]
    p = nd = 0.0
    psp_num = psp_den = psn_num = psn_den = 0.0
    for i in range(n):
        pos = set(np.flatnonzero(y_dense[i]).tolist())
        pred = top[i, :k].tolist()
        p += sum(1 for lbl in pred if lbl in pos) / k
        dcg = sum(1 / math.log2(r + 2) for r, lbl in enumerate(pred) if lbl in pos)
        m = min(k, len(pos))
        idcg = sum(1 / math.log2(r + 2) for r in range(m))
        nd += dcg / idcg if pos else 0.0
        best = sorted((w[lbl] for lbl in pos), reverse=True)[:k]
        psp_num += sum(w[lbl] for lbl in pred if lbl in pos)
        psp_den += sum(best)
        ps_dcg = sum(w[lbl] / math.log2(r + 2) for r, lbl in enumerate(pred) if lbl in pos)
        best_dcg = sum(v / math.log2(r + 2) for r, v in enumerate(best))
        norm = idcg if pos else 1.0
        psn_num += ps_dcg / norm
        psn_den += best_dcg / norm
    return {
        "P": p / n,
        "nDCG": nd / n,
        "PSP": psp_num / psp_den if psp_den else 0.0,
        "PSnDCG": psn_num / psn_den if psn_den else 0.0,
    }


def _random_problem(seed, n=60, num_labels=40, kmax=7):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, num_labels)) < rng.choice([0.02, 0.1, 0.3])).astype(np.float32)
    y[rng.random(n) < 0.15] = 0  # some points without labels
    scores = rng.random((n, num_labels)) + y * rng.random((n, 1))  # informative, imperfect
    top = np.argsort(-scores, axis=1)[:, :kmax]
    counts = np.maximum(y.sum(axis=0), rng.integers(0, 50, num_labels))
    w = inverse_propensity(counts, 1000)
    return top, y, w


@pytest.mark.parametrize("seed", range(8))
def test_metrics_match_brute_force(seed):
    top, y, w = _random_problem(seed)
    ks = (1, 3, 5, 7)
    y_csr = sp.csr_matrix(y)
    got = {
        "P": precision_at_k(top, y_csr, ks),
        "nDCG": ndcg_at_k(top, y_csr, ks),
        "PSP": psp_at_k(top, y_csr, w, ks),
        "PSnDCG": psndcg_at_k(top, y_csr, w, ks),
    }
    for k in ks:
        expected = _brute(top, y, w, k)
        for name in expected:
            assert got[name][k] == pytest.approx(expected[name], rel=1e-12, abs=1e-15), (name, k)
            assert 0.0 <= got[name][k] <= 1.0 + 1e-12


def test_propensity_metrics_equal_one_for_the_ideal_ranking():
    _, y, w = _random_problem(3)
    y[:, 0] = 1  # every point has a label
    order = np.argsort(-(y * w + 1e-9 * np.arange(y.shape[1])), axis=1)[:, :5]  # true labels by weight first
    assert psp_at_k(order, sp.csr_matrix(y), w, (1, 3, 5)) == pytest.approx({1: 1.0, 3: 1.0, 5: 1.0})
    assert psndcg_at_k(order, sp.csr_matrix(y), w, (1, 3, 5)) == pytest.approx({1: 1.0, 3: 1.0, 5: 1.0})


def test_psp_is_at_most_one_on_random_predictions():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = sp.random(50, 30, density=0.1, random_state=rng, format="csr")
        top = np.argsort(rng.random((50, 30)), axis=1)[:, :5]
        w = inverse_propensity(np.asarray((y > 0).sum(axis=0)).ravel(), 50, A=0.5, B=0.4)
        assert all(v <= 1.0 + 1e-12 for v in psp_at_k(top, y, w).values())


# ----------------------------------------------------------------------------------------------------------
# accumulator
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_accumulator_over_batches_equals_all_at_once(seed):
    top, y, w = _random_problem(seed, n=97)
    y_csr = sp.csr_matrix(y)
    whole = XMCMetricAccumulator((1, 3, 5), inv_prop=w)
    whole.update(top, y_csr)
    batched = XMCMetricAccumulator((1, 3, 5), inv_prop=w)
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, 97), size=6, replace=False))
    for lo, hi in zip([0, *cuts], [*cuts, 97], strict=True):
        batched.update(top[lo:hi], y_csr[lo:hi])
    assert batched.num_points == whole.num_points == 97
    a, b = whole.result(), batched.result()
    assert list(a) == [f"{m}@{k}" for m in ("P", "nDCG", "PSP", "PSnDCG") for k in (1, 3, 5)]
    for key in a:
        if key.startswith("P@"):
            assert a[key] == b[key]  # integer hit counts: exact
        else:
            assert a[key] == pytest.approx(b[key], rel=1e-13)
    assert a["PSP@3"] == psp_at_k(top, y_csr, w, (3,))[3]
    assert a["P@5"] == precision_at_k(top, y_csr, (5,))[5]


def test_accumulator_without_weights_and_errors():
    acc = XMCMetricAccumulator(ks=(1, 2))
    with pytest.raises(ValueError, match="no points"):
        acc.result()
    acc.update(TOP, Y)
    assert set(acc.result()) == {"P@1", "P@2", "nDCG@1", "nDCG@2"}
    with pytest.raises(ValueError, match="true_labels"):
        acc.update(TOP, sp.csr_matrix((2, 6)))
    with pytest.raises(ValueError, match="inv_prop"):
        XMCMetricAccumulator(inv_prop=np.ones((2, 2)))
    with pytest.raises(ValueError, match="inv_prop"):
        XMCMetricAccumulator(inv_prop=np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="ks"):
        XMCMetricAccumulator(ks=())
    with pytest.raises(ValueError, match="ks"):
        XMCMetricAccumulator(ks=(0,))


@pytest.mark.parametrize(
    ("top", "match"),
    [
        (np.array([[2, 1], [0, 1]]), "at least max"),
        (np.array([[2, 2, 0], [0, 1, 2]]), "repeat"),
        (np.array([[2, 1, 5], [0, 1, 2]]), r"\[0, num_labels=5\)"),
        (np.array([[2, 1, -1], [0, 1, 2]]), "num_labels"),
        (np.array([[2, 1, 0]]), "one row per point"),
        (np.array([[2.0, 1, 0], [0, 1, 2]]), "integer"),
    ],
)
def test_metrics_reject_bad_top_k(top, match):
    with pytest.raises(ValueError, match=match):
        precision_at_k(top, Y, ks=(1, 3))


def test_metrics_reject_bad_weights_and_labels():
    with pytest.raises(ValueError, match="inv_prop"):
        psp_at_k(TOP, Y, W[:4])
    with pytest.raises(ValueError, match="inv_prop"):
        psp_at_k(TOP, Y, None)
    with pytest.raises(ValueError, match="true_labels_csr"):
        precision_at_k(TOP, np.zeros(5), ks=(1,))


def test_no_positive_labels_reads_zero():
    y = sp.csr_matrix((2, 5), dtype=np.float32)
    assert psp_at_k(TOP, y, W, (1, 3)) == {1: 0.0, 3: 0.0}
    assert ndcg_at_k(TOP, y, (3,)) == {3: 0.0}


# ----------------------------------------------------------------------------------------------------------
# streaming top-k
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_top_k_streaming_equals_argsort(seed):
    rng = np.random.default_rng(seed)
    n, num_labels = int(rng.integers(1, 50)), int(rng.integers(1, 80))
    k = int(rng.integers(1, num_labels + 1))
    dtype = [np.float32, np.float64, np.int32][seed % 3]
    scores = rng.integers(0, 5, size=(n, num_labels)).astype(dtype)  # plenty of ties
    if seed % 2:
        scores = (scores + rng.random((n, num_labels))).astype(dtype) if dtype != np.int32 else scores
    calls = []

    def score_fn(points, labels):
        calls.append((points, labels))
        return scores[points, labels]

    chunks = {"label_chunk": int(rng.integers(1, 20)), "point_chunk": int(rng.integers(1, 12))}
    got = top_k_streaming(score_fn, n, num_labels, k, **chunks)
    expected = np.argsort(-scores.astype(np.float64), axis=1, kind="stable")[:, :k]
    assert got.dtype == np.int32 and got.shape == (n, k)
    np.testing.assert_array_equal(got, expected)
    assert max(s.stop - s.start for _, s in calls) <= chunks["label_chunk"]
    assert max(s.stop - s.start for s, _ in calls) <= chunks["point_chunk"]


def test_top_k_streaming_with_jax_scores_and_infinities():
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((23, 6)).astype(np.float32), rng.standard_normal((6, 41)).astype(np.float32)
    x_j, w_j = jnp.asarray(x), jnp.asarray(w)
    got = top_k_streaming(lambda p, q: x_j[p] @ w_j[:, q], 23, 41, 5, label_chunk=8, point_chunk=7)
    full = np.asarray(x_j @ w_j)
    np.testing.assert_array_equal(got, np.argsort(-full, axis=1, kind="stable")[:, :5])
    s = np.zeros((3, 10))
    s[:, 7] = np.inf
    s[:, 2] = -np.inf
    got = top_k_streaming(lambda p, q: s[p, q], 3, 10, 10, label_chunk=3)
    np.testing.assert_array_equal(got[0], [7, 0, 1, 3, 4, 5, 6, 8, 9, 2])
    assert top_k_streaming(lambda p, q: s[p, q], 0, 10, 2).shape == (0, 2)


def test_top_k_streaming_rejects_bad_input():
    s = np.zeros((4, 6))
    fn = lambda p, q: s[p, q]
    with pytest.raises(ValueError, match="k must be <="):
        top_k_streaming(fn, 4, 6, 7)
    with pytest.raises(ValueError, match="k must be"):
        top_k_streaming(fn, 4, 6, 0)
    with pytest.raises(ValueError, match="label_chunk"):
        top_k_streaming(fn, 4, 6, 2, label_chunk=0)
    with pytest.raises(ValueError, match="point_chunk"):
        top_k_streaming(fn, 4, 6, 2, point_chunk=0)
    with pytest.raises(ValueError, match="score_fn"):
        top_k_streaming("nope", 4, 6, 2)
    with pytest.raises(ValueError, match="shape"):
        top_k_streaming(lambda p, q: s, 4, 6, 2, label_chunk=3)
    with pytest.raises(ValueError, match="NaN"):
        top_k_streaming(lambda p, q: np.full((p.stop - p.start, q.stop - q.start), np.nan), 4, 6, 2)
    with pytest.raises(ValueError, match="real"):
        top_k_streaming(lambda p, q: s[p, q].astype(complex), 4, 6, 2)
