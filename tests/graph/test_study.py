"""meta_gcn_study end to end on a tiny budget: structure, structural checks, argument validation."""

import numpy as np
import pytest

from jaxsparse.graph import METHODS, meta_gcn_study


@pytest.fixture(scope="module")
def tiny_study():
    return meta_gcn_study(datasets=("breast_cancer_imbalanced",), seeds=(0, 1), epochs=4, hidden=8, progress=False)


def test_study_rows_and_weights(tiny_study):
    rows = tiny_study["rows"]
    assert [r["method"] for r in rows] == list(METHODS)
    for r in rows:
        assert r["seeds"] == 2
        for k in ("accuracy", "auc_roc", "macro_f1"):
            assert 0.0 <= r[k]["mean"] <= 1.0 and r[k]["std"] >= 0.0
    w = tiny_study["weights"]["breast_cancer_imbalanced"]
    mass = np.asarray(w["class_mass_per_epoch"])
    assert mass.shape == (4, 2)
    np.testing.assert_allclose(mass.sum(1)[mass.sum(1) > 0], 1.0, rtol=1e-5)
    # Pooled per-node weights: every training node of both seeds, split by class.
    counts = [len(w["mean_node_weight_per_class"][c]) for c in (0, 1)]
    assert counts == [2 * round(0.6 * 357), 2 * round(0.6 * 63)]
    assert tiny_study["graphs"]["breast_cancer_imbalanced"]["nodes"] == 420


def test_structural_checks_pass_on_a_tiny_run(tiny_study):
    checks = tiny_study["checks"]
    structural = [k for k in checks if "zero" in k]
    assert len(structural) >= 4
    for k in structural:
        assert checks[k]["passed"], (k, checks[k])


def test_study_rejects_bad_arguments():
    with pytest.raises(ValueError, match="datasets"):
        meta_gcn_study(datasets=("cora",))
    with pytest.raises(ValueError, match="methods"):
        meta_gcn_study(methods=("focal",))
    with pytest.raises(ValueError, match="epochs"):
        meta_gcn_study(epochs=0)
