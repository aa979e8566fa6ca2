"""The experiment functions and configs behind `reproduce icb` / `reproduce shortcut`, on tiny sizes."""

import dataclasses

import numpy as np
import pytest

from configs import icb as icb_config
from configs import shortcut as shortcut_config
from jaxsparse.infowidth import binary_digit_task, icb_study, make_kernel_fn, shortcut_study

STRUCTURAL = ("zero", "fan_in", "condensed", "density", "nm_")


def test_binary_digit_task():
    x_tr, y_tr, x_te, _ = binary_digit_task("3v5", n_train=50, n_test=20, seed=1)
    assert x_tr.shape == (50, 64) and x_te.shape == (20, 64) and set(np.unique(y_tr)) == {0, 1}
    np.testing.assert_allclose(np.linalg.norm(x_tr, axis=1), 8.0)
    raw = binary_digit_task("odd_even", n_train=30, n_test=10, normalize=False)[0]
    assert raw.min() >= 0 and raw.max() <= 1
    with pytest.raises(ValueError, match="task"):
        binary_digit_task("cats")
    with pytest.raises(ValueError, match="n_train"):
        binary_digit_task("3v5", n_train=1)
    with pytest.raises(ValueError, match="backend"):
        make_kernel_fn("relu", 1, 1.0, 0.0, backend="torch")


def test_icb_study_tiny():
    result = icb_study(
        tasks=("3v5",), n_train=40, n_test=30, architectures=(("relu", 1, 1.5, 0.1, "ntk", 0.0),),
        times=(1.0, 100.0), random_label_fractions=(0.0, 1.0), sample_sizes=(20,), num_samples=1,
    )  # fmt: skip
    assert len(result["rows"]) == 2 and len(result["label_rows"]) == 2
    assert [r["n"] for r in result["size_rows"]] == [20, 40]
    checks = result["checks"]
    structural = [k for k in checks if any(w in k for w in STRUCTURAL)]
    assert len(structural) >= 3
    for k in structural:
        assert checks[k]["passed"], (k, checks[k])
    assert checks["native_kernel_matches_neural_tangents"]["passed"], checks["native_kernel_matches_neural_tangents"]
    assert 0.0 <= result["metrics"]["fraction_holds"] <= 1.0


def test_shortcut_study_tiny():
    result = shortcut_study(seeds=(0,), n_train=40, n_test=30, n_eval=30, times=(0.0, 10.0, 1000.0), num_samples=1)
    assert {r["scenario"] for r in result["rows"]} == {"clean", "shortcut"}
    for k in (k for k in result["checks"] if any(w in k for w in STRUCTURAL)):
        assert result["checks"][k]["passed"], (k, result["checks"][k])
    assert len(result["curves"]["shortcut"][0]["train_mi_loo"]) == 3
    with pytest.raises(ValueError, match="detect_time"):
        shortcut_study(seeds=(0,), times=(0.0, 1.0), detect_time=5.0)


def test_configs():
    for module in (icb_config, shortcut_config):
        quick, full = module.get_config(quick=True), module.get_config()
        assert dataclasses.asdict(quick) != dataclasses.asdict(full)
    with pytest.raises(ValueError, match="delta"):
        icb_config.ICBConfig(delta=1.0)
    with pytest.raises(ValueError, match="tasks"):
        icb_config.ICBConfig(tasks=("cats",))
    with pytest.raises(ValueError, match="n_train"):
        icb_config.ICBConfig(n_train=5000)
    with pytest.raises(ValueError, match="detect_time"):
        shortcut_config.ShortcutConfig(detect_time=7.0)
    with pytest.raises(ValueError, match="n_eval"):
        shortcut_config.ShortcutConfig(n_eval=10_000)
