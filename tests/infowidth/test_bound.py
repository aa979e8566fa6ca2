"""The input-compression bound by hand, its informativeness condition and the sweep report."""

import math

import numpy as np
import pytest

from jaxsparse.infowidth import (
    ICBModel,
    encode_targets,
    fc_kernel_fn,
    icb_report,
    informativeness_threshold_bits,
    input_compression_bound,
    is_informative,
    predict_labels,
)


def test_bound_values_by_hand():
    assert input_compression_bound(5.0, 1000, 0.05) == pytest.approx(math.sqrt((32 + math.log(20)) / 2000), rel=1e-15)
    assert round(input_compression_bound(5.0, 1000), 4) == 0.1323
    assert round(input_compression_bound(9.0, 1000), 4) == 0.5074
    assert input_compression_bound(0.0, 2, 0.5) == pytest.approx(math.sqrt((1 + math.log(2)) / 4), rel=1e-15)
    np.testing.assert_allclose(
        input_compression_bound(np.array([1.0, 2.0]), 100), np.sqrt((np.array([2.0, 4.0]) + math.log(20)) / 200)
    )


def test_bound_is_monotone_and_threshold_matches_non_vacuity():
    mis = np.linspace(0, 12, 50)
    assert np.all(np.diff(input_compression_bound(mis, 2000)) > 0)
    assert input_compression_bound(4.0, 100) > input_compression_bound(4.0, 1000)
    thr = informativeness_threshold_bits(2000, 0.05)
    assert thr == pytest.approx(math.log2(1000 - math.log(20)))
    assert round(thr, 2) == 9.96
    assert is_informative(thr - 1e-9, 2000) and not is_informative(thr + 1e-9, 2000)
    assert input_compression_bound(thr, 2000) == pytest.approx(0.5, abs=1e-12)
    assert informativeness_threshold_bits(4, 0.05) == -math.inf  # N/2 <= ln(1/delta): never informative


@pytest.mark.parametrize("delta", [0.0, 1.0, -0.1, 1.5, "0.05"])
def test_bad_delta_raises(delta):
    with pytest.raises(ValueError, match="delta"):
        input_compression_bound(1.0, 100, delta)


@pytest.mark.parametrize("n", [0, -3, 2.5, True])
def test_bad_n_raises(n):
    with pytest.raises(ValueError, match="n "):
        input_compression_bound(1.0, n)


def test_negative_mi_raises():
    with pytest.raises(ValueError, match="mi_bits"):
        input_compression_bound(-0.1, 100)


def test_targets_round_trip():
    y = np.array([0, 1, 1, 0])
    np.testing.assert_array_equal(encode_targets(y, 2)[:, 0], [-1, 1, 1, -1])
    np.testing.assert_array_equal(predict_labels(encode_targets(y, 2)), y)
    y3 = np.array([2, 0, 1])
    np.testing.assert_array_equal(predict_labels(encode_targets(y3, 3)), y3)
    with pytest.raises(ValueError, match="labels"):
        encode_targets(np.array([0, 3]), 2)


@pytest.fixture(scope="module")
def small_task():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 6))
    y = (x[:, 0] + 0.3 * rng.standard_normal(60) > 0).astype(np.int64)
    return x[:40], y[:40], x[40:], y[40:]


def test_icb_report_rows(small_task):
    x_tr, y_tr, x_te, y_te = small_task
    models = [
        ICBModel("relu-ntk", fc_kernel_fn(depth=2, W_std=1.5, b_std=0.1)),
        ICBModel("erf-nngp", fc_kernel_fn(depth=1, activation="erf"), mode="nngp", diag_reg=0.01),
    ]
    report = icb_report(x_tr, y_tr, x_te, y_te, models, [1.0, 100.0, 10_000.0], num_samples=2)
    assert len(report["rows"]) == 6 and report["n"] == 40
    for r in report["rows"]:
        assert r["gap"] == pytest.approx(r["train_acc"] - r["test_acc"])
        assert r["icb"] == pytest.approx(input_compression_bound(r["mi_loo_bits"], 40))
        assert r["holds"] == (r["gap"] <= r["icb"])
        assert r["mi_loo_bits"] >= r["mi_nce_bits"] - 1e-12 and r["mi_nce_bits"] <= math.log2(40) + 1e-12
    # Longer training memorises more: MI rises with t for the NTK model.
    ntk = [r["mi_loo_bits"] for r in report["rows"] if r["model"] == "relu-ntk"]
    assert ntk[0] < ntk[-1]
    assert report["best"]["test_acc"] == max(r["test_acc"] for r in report["rows"])


def test_icb_report_refuses_zero_variance_and_bad_input(small_task):
    x_tr, y_tr, x_te, y_te = small_task
    model = ICBModel("relu", fc_kernel_fn())
    with pytest.raises(ValueError, match="t = inf with diag_reg = 0 is refused"):
        icb_report(x_tr, y_tr, x_te, y_te, [model], [math.inf])
    with pytest.raises(ValueError, match="times"):
        icb_report(x_tr, y_tr, x_te, y_te, [model], [-1.0])
    with pytest.raises(ValueError, match="y_train"):
        icb_report(x_tr, y_tr[:5], x_te, y_te, [model], [1.0])
    with pytest.raises(ValueError, match="y_test"):
        icb_report(x_tr, y_tr, x_te, y_te[:3], [model], [1.0])
    with pytest.raises(ValueError, match="n "):
        icb_report(x_tr[:0], y_tr[:0], x_te, y_te, [model], [1.0])
    with pytest.raises(ValueError, match="delta"):
        icb_report(x_tr, y_tr, x_te, y_te, [model], [1.0], delta=1.0)
    with pytest.raises(ValueError, match="mode"):
        ICBModel("bad", fc_kernel_fn(), mode="sgd")
    # A regularised model is accepted at t = inf.
    ok = icb_report(x_tr, y_tr, x_te, y_te, [ICBModel("reg", fc_kernel_fn(), diag_reg=0.1)], [math.inf])
    assert np.isfinite(ok["rows"][0]["icb"])
