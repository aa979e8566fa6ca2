"""Every registered reproduction runs end to end on a tiny config and returns what the report needs."""

import dataclasses
import importlib

import pytest

from jaxsparse.cli._registry import REPRODUCTIONS

TINY = {
    "oneshot": {"train_steps": 20, "finetune_steps": 5, "sparsities": (0.5,)},
    "srigl": {"models": ("mlp",), "methods": ("dense", "srigl"), "seeds": (0,), "steps": 60, "update_every": 20},
    "xmc": {"variants": ("dense", "sparse+both"), "num_labels": 64, "num_features": 128, "hidden": 16,
            "intermediate": 32, "fan_in": 4, "num_clusters": 4, "steps": 30, "rewire_every": 10, "max_files": 30},
    "fips": {"budgets": (0.5,), "dim": 16, "depth": 2, "heads": 2, "groups": ((0, 1),), "train_steps": 30,
             "calibration_size": 64, "recon_steps": 20, "recon_batch_size": 32, "update_every": 5, "finetune_steps": 5},
    "kd_bias": {"temperatures": (1.0, 4.0), "seeds": (0, 1), "steps": 30, "teacher_hidden": (32,),
                "student_hidden": (8,)},
    "reap": {"num_layers": 1, "num_experts": 4, "d_model": 16, "d_ff": 16, "num_heads": 2, "seq_len": 16,
             "batch_size": 4, "train_steps": 6, "calib_batches": 1, "eval_windows": 6, "max_bytes": 200_000},
    "rebasin": {"width": 1, "hidden": (32,), "sparsities": (0.5, 0.8), "seeds": (0, 1), "dense_steps": 40,
                "imp_retrain_steps": 5, "imp_fraction": 0.5, "sparse_steps": 30, "batch_size": 64},
    "meta_gcn": {"datasets": ("breast_cancer_imbalanced",), "seeds": (0, 1), "epochs": 5, "hidden": 8},
    "icb": {"tasks": ("3v5",), "n_train": 60, "n_test": 40, "architectures": (("relu", 1, 1.5, 0.1, "ntk", 0.0),),
            "times": (1.0, 100.0), "random_label_fractions": (0.0, 1.0), "sample_sizes": (20,), "num_samples": 1},
    "shortcut": {"seeds": (0,), "n_train": 60, "n_test": 40, "n_eval": 40, "times": (0.0, 10.0, 1000.0),
                 "num_samples": 1},
}  # fmt: skip


def _load(spec):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_every_reproduction_has_a_tiny_config():
    assert {r.name for r in REPRODUCTIONS} == set(TINY)


@pytest.mark.parametrize("repro", REPRODUCTIONS, ids=lambda r: r.name)
def test_reproduction_runs_and_reports(repro, tmp_path):
    quick = _load(repro.config)(quick=True)
    full = _load(repro.config)(quick=False)
    assert dataclasses.asdict(quick) != dataclasses.asdict(full)  # --quick is smaller than the full study
    config = dataclasses.replace(quick, **TINY[repro.name])
    result = _load(repro.runner)(config, tmp_path)
    assert result["summary"] and result["rows"]
    for plot in result["plots"]:
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"
    checks = result["checks"]
    assert checks
    # Structural checks (exact zeros, constant fan-in, condensed agreement) must pass even on tiny runs;
    # accuracy comparisons need the real budget, so they are not asserted here.
    structural = [k for k in checks if any(w in k for w in ("zero", "fan_in", "fan-in", "condensed", "density", "nm_"))]
    assert structural, checks
    for k in structural:
        assert checks[k]["passed"], (k, checks[k])


def test_quick_budgets_fit_fifteen_minutes():
    # `reproduce --quick` over everything must fit 15 minutes on 2 CPU cores.
    assert sum(r.quick_budget_s for r in REPRODUCTIONS) <= 900.0
