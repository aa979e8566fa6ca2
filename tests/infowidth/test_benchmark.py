"""benchmarks/icb.py runs in-process at tiny size and returns its structure (no timing limits)."""

from benchmarks import icb


def test_icb_benchmark_tiny():
    out = icb.run(quick=True, tiny=True)
    assert out["sizes"]["n_train"] == 200
    assert out["native"]["median_s"] > 0 and out["neural_tangents"]["median_s"] > 0
    assert out["neural_tangents_over_native"] > 0
    assert set(out["native_stages"]) == {"kernel_and_eigh_s", "predict_train_and_test_s", "mi_bounds_s"}
    # Same network, two kernel sources: the bounds agree (the MI draws share a seed).
    assert out["icb_abs_diff_native_vs_neural_tangents"] < 1e-6
    assert 0 < out["icb"] < 10
