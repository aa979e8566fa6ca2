import numpy as np
import pytest

from jaxsparse.data import load_digits_split
from jaxsparse.distill import kd_bias_study, train_teacher_and_students


def test_train_teacher_and_students_shapes_and_pairing():
    data = load_digits_split(seed=0)
    runs = train_teacher_and_students(
        data, teacher_hidden=(16,), student_hidden=(8,), temperatures=(1, 4), seeds=(0, 1), steps=30,
        alpha=1.0, progress=False,
    )  # fmt: skip
    n = len(data.y_test)
    assert runs["teacher"]["pred"].shape == (2, n)
    assert set(runs["distilled"]) == {1, 4}
    # alpha = 1 makes every "distilled" student plain CE from the same init and batches: identical to the NDS.
    for block in runs["distilled"].values():
        np.testing.assert_array_equal(block["pred"], runs["non_distilled"]["pred"])
    assert np.all((runs["teacher"]["accuracy"] >= 0) & (runs["teacher"]["accuracy"] <= 1))


def test_train_bad_arguments():
    data = load_digits_split(seed=0)
    kw = dict(teacher_hidden=(8,), student_hidden=(4,), seeds=(0,), steps=2, progress=False)
    with pytest.raises(ValueError, match="temperatures"):
        train_teacher_and_students(data, temperatures=(0.0,), **kw)
    with pytest.raises(ValueError, match="temperatures"):
        train_teacher_and_students(data, temperatures=(), **kw)
    with pytest.raises(ValueError, match="alpha"):
        train_teacher_and_students(data, temperatures=(2,), alpha=2.0, **kw)


def test_kd_bias_study_tiny_end_to_end(fairness_metrics):
    out = kd_bias_study(
        temperatures=(1, 4), seeds=(0, 1), steps=40, teacher_hidden=(16,), student_hidden=(8,), progress=False
    )
    assert set(out) == {
        "rows", "teacher_accuracy", "non_distilled_accuracy", "per_class", "p_values", "fairness", "settings",
        "timing_s", "checks",
    }  # fmt: skip
    assert [r["temperature"] for r in out["rows"]] == [1, 4]
    row = out["rows"][0]
    assert set(row) == {
        "temperature",
        "ds_accuracy",
        "n_tc",
        "n_tc_bh",
        "n_sc",
        "n_sc_bh",
        "disagree_teacher",
        "disagree_nds",
    }
    assert 0 <= row["n_tc_bh"] <= row["n_tc"] <= 10
    assert len(out["per_class"]["teacher"]) == 10 and set(out["per_class"]["distilled"]) == {1, 4}
    fair = out["fairness"]
    assert [(r["model"], r["temperature"]) for r in fair["rows"]] == [
        ("teacher", None), ("non_distilled", None), ("distilled", 1), ("distilled", 4)
    ]  # fmt: skip
    for r in fair["rows"]:
        assert 0.0 <= r["dpd"]["mean"] <= 1.0 and 0.0 <= r["eod"]["mean"] <= 1.0
    assert all(set(c) == {"passed", "detail"} for c in out["checks"].values())
    assert all(c["passed"] for c in out["checks"].values()), out["checks"]
    assert "kd_loss_alpha1_equals_cross_entropy" in out["checks"]


def test_kd_bias_study_without_fairness_and_bad_args():
    out = kd_bias_study(
        temperatures=(2,), seeds=(0, 1), steps=5, teacher_hidden=(8,), student_hidden=(4,),
        fairness_dataset=None, progress=False,
    )  # fmt: skip
    assert out["fairness"] is None
    with pytest.raises(ValueError, match="at least 2 seeds"):
        kd_bias_study(seeds=(0,), steps=1)
    with pytest.raises(ValueError, match="test must be"):
        kd_bias_study(test="ttest", steps=1)
    with pytest.raises(ValueError, match="fairness_dataset"):
        kd_bias_study(fairness_dataset="adult", steps=1)
    with pytest.raises(ValueError, match="temperatures"):
        kd_bias_study(temperatures=(-1.0,), seeds=(0, 1), steps=1, fairness_dataset=None, progress=False)


def test_distillation_changes_the_student_when_teacher_is_soft():
    # A briefly trained teacher is far from one-hot, so alpha = 0 distillation must move the student away from
    # the CE-only one (guards against the soft term silently not reaching the student).
    data = load_digits_split(seed=0)
    runs = train_teacher_and_students(
        data, teacher_hidden=(16,), student_hidden=(8,), temperatures=(4,), seeds=(0,), steps=30,
        alpha=0.0, progress=False,
    )  # fmt: skip
    assert not np.array_equal(runs["distilled"][4]["pred"], runs["non_distilled"]["pred"])
    assert runs["distilled"][4]["final_loss"][0] != runs["non_distilled"]["final_loss"][0]
