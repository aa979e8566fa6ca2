"""Writes notebooks/kd_fairness.ipynb (no outputs). Run: `.venv/bin/python notebooks/make_kd_fairness_notebook.py`."""

import pathlib

from _cells import INSTALL_CELL, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = pathlib.Path(__file__).resolve().parent

CELLS = [
    new_markdown_cell(
        """# Knowledge distillation, class bias and group fairness with `jaxsparse`

*What is Left After Distillation?* (arXiv 2410.08407) asks which classes a distilled student gets
significantly better or worse at than its teacher and than a student trained without distillation, and how the
distillation temperature changes group fairness. This notebook

1. trains an MLP teacher, a non-distilled student and distilled students at several temperatures on
   scikit-learn's digits over several seeds (`jaxsparse.distill`),
2. counts classes whose accuracy changed significantly (Welch test across seeds, Benjamini–Hochberg),
3. measures demographic parity and equalized odds differences (`jaxsparse.fairness`, fairlearn semantics) on
   breast cancer with a **derived** binary attribute (mean radius above its median: synthetic, not a real
   demographic group),
4. applies two mitigations: reweighing and per-group thresholds.

`STEPS` (below, or `JAXSPARSE_NB_STEPS`) sets the training length."""
    ),
    new_code_cell(INSTALL_CELL),
    new_code_cell(
        """import os

STEPS = int(os.environ.get("JAXSPARSE_NB_STEPS", 2000))
SEEDS = (0, 1, 2, 3, 4) if STEPS >= 500 else (0, 1)
TEMPERATURES = (1.0, 4.0, 10.0)"""
    ),
    new_code_cell(
        """import numpy as np

from jaxsparse import distill, fairness
from jaxsparse.data import load_breast_cancer_split, load_digits_split

digits = load_digits_split(seed=0)
runs = distill.train_teacher_and_students(digits, teacher_hidden=(256, 256), student_hidden=(16,),
                                          temperatures=TEMPERATURES, seeds=SEEDS, steps=STEPS, alpha=0.5)
report = distill.class_bias_report(runs["y_test"], runs["teacher"]["pred"], runs["non_distilled"]["pred"],
                                   {t: b["pred"] for t, b in runs["distilled"].items()},
                                   num_classes=runs["num_classes"], q=0.05)
print("teacher accuracy:", np.round(runs["teacher"]["accuracy"], 4))
for row in report["rows"]:
    print(f"T={row['temperature']}: distilled accuracy {row['ds_accuracy']['mean']:.4f}, "
          f"classes changed vs teacher {row['n_tc']} (BH {row['n_tc_bh']}), "
          f"vs non-distilled {row['n_sc']} (BH {row['n_sc_bh']})")"""
    ),
    new_code_cell(
        """import matplotlib.pyplot as plt

per_class = report["per_class"]
plt.figure(figsize=(6, 3))
plt.plot(per_class["teacher"], "ko-", label="teacher")
plt.plot(per_class["non_distilled"], "s--", label="non-distilled")
for t in TEMPERATURES:
    plt.plot(per_class["distilled"][t], ".-", label=f"distilled T={t:g}")
plt.xlabel("class"); plt.ylabel("accuracy"); plt.legend(fontsize=7); plt.title("per-class accuracy (mean over seeds)")
plt.show()"""
    ),
    new_markdown_cell("## Group fairness on breast cancer (derived attribute)"),
    new_code_cell(
        """cancer = load_breast_cancer_split(seed=0)
sensitive = (cancer.x_test[:, 0] > np.median(cancer.x_train[:, 0])).astype(np.int32)
fruns = distill.train_teacher_and_students(cancer, teacher_hidden=(256, 256), student_hidden=(16,),
                                           temperatures=TEMPERATURES, seeds=SEEDS, steps=STEPS, alpha=0.5)
y = fruns["y_test"]


def gaps(pred):
    dpd = [fairness.demographic_parity_difference(y, p, sensitive_features=sensitive) for p in pred]
    eod = [fairness.equalized_odds_difference(y, p, sensitive_features=sensitive) for p in pred]
    return np.mean(dpd), np.mean(eod)


print("teacher        DPD %.4f  EOD %.4f" % gaps(fruns["teacher"]["pred"]))
print("non-distilled  DPD %.4f  EOD %.4f" % gaps(fruns["non_distilled"]["pred"]))
for t in TEMPERATURES:
    print(f"distilled T={t:<4g} DPD %.4f  EOD %.4f" % gaps(fruns["distilled"][t]["pred"]))"""
    ),
    new_markdown_cell("## Mitigations and checks"),
    new_code_cell(
        """# Reweighing: every group's weighted positive rate equals the overall positive rate.
train_sensitive = (cancer.x_train[:, 0] > np.median(cancer.x_train[:, 0])).astype(np.int32)
w = fairness.reweighing_weights(cancer.y_train, train_sensitive)
overall = cancer.y_train.mean()
for a in (0, 1):
    g = train_sensitive == a
    rate = np.sum(w[g] * cancer.y_train[g]) / np.sum(w[g])
    assert abs(rate - overall) < 1e-9, (a, rate, overall)
print(f"reweighing equalises positive rates: {overall:.4f} in both groups")

# Per-group thresholds on a score: demographic parity within the tolerance on the data they were fitted on.
score = cancer.x_test[:, 0] * -1.0  # a simple score: small radius -> benign (label 1)
fit = fairness.fit_group_thresholds(y, score, sensitive, constraint="demographic_parity", tolerance=0.05)
pred = fairness.apply_group_thresholds(score, sensitive, fit)
dpd = fairness.demographic_parity_difference(y, pred, sensitive_features=sensitive)
assert dpd <= 0.05 + 1e-12, dpd
print(f"group thresholds: DPD {dpd:.4f} <= 0.05, accuracy {np.mean(pred == y):.4f}")

# A fair-by-construction case: equal selection rates give a DPD of exactly 0.
assert fairness.demographic_parity_difference(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0]),
                                              sensitive_features=np.array([0, 0, 1, 1])) == 0.0
print("NOTEBOOK CHECKS PASSED")"""
    ),
]


def main() -> None:
    write_notebook(CELLS, HERE / "kd_fairness.ipynb")


if __name__ == "__main__":
    main()
