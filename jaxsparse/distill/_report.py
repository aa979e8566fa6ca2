"""Class-wise bias report: how many classes change significantly between teacher / NDS and distilled students."""

from collections.abc import Mapping

import numpy as np

from jaxsparse._checks import check_int

from ._stats import benjamini_hochberg, classwise_seed_test, per_class_accuracy

__all__ = ["class_bias_report"]


def _per_seed(y_true, preds, num_classes, name) -> np.ndarray:
    preds = np.asarray(preds)
    if preds.ndim != 2 or preds.shape[1] != len(y_true):
        raise ValueError(f"{name} must be [num_seeds, {len(y_true)}] predictions, got shape {preds.shape}")
    return np.stack([per_class_accuracy(y_true, p, num_classes=num_classes) for p in preds])


def _stats(values: np.ndarray) -> dict:
    # ddof=1: sample std over seeds, as papers report "mean ± std" over runs.
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0}


def class_bias_report(
    y_true,
    teacher_pred,
    non_distilled_pred,
    distilled_pred: Mapping[float, object],
    *,
    num_classes: int,
    q: float = 0.05,
    alpha_level: float = 0.05,
    test: str = "welch",
) -> dict:
    """Counts, per temperature, the classes whose accuracy changes significantly under distillation.

    #TC compares the teacher with the distilled student (DS), #SC the non-distilled student (NDS) with the DS
    (arXiv 2410.08407, §4). Each class gets a p-value from `classwise_seed_test(test=...)` across seeds (row s
    of every prediction array must come from seed s); counts are reported raw (p < `alpha_level`, as the paper
    appears to) and after Benjamini–Hochberg over the classes at FDR `q`.

    Args:
        y_true: `[n_test]` labels, shared by all models (a fixed test split).
        teacher_pred: `[num_seeds, n_test]` teacher predictions.
        non_distilled_pred: `[num_seeds, n_test]` NDS predictions.
        distilled_pred: {T: `[num_seeds, n_test]`} DS predictions per temperature.
        num_classes: Number of classes; every class must occur in `y_true`.
        q: BH false-discovery rate.
        alpha_level: Per-class significance level of the raw counts.
        test: "welch" (default), "paired_t" or "wilcoxon"; see `classwise_seed_test`.

    Returns:
        {"rows": [per T: {"temperature", "ds_accuracy": {mean, std}, "n_tc", "n_tc_bh", "n_sc", "n_sc_bh",
        "disagree_teacher", "disagree_nds"}], "per_class": {"teacher", "non_distilled", "distilled": {T: ...}}
        with mean class accuracies over seeds (lists of floats), "p_values": {T: {"tc", "sc"}} raw lists,
        "teacher_accuracy", "non_distilled_accuracy" ({mean, std}), and "test", "q", "alpha_level"}.
        The disagreement rates are the mean over seeds of the fraction of test examples on which the two
        models' predicted classes differ (the paper's CMP averaged over examples).
    """
    num_classes = check_int(num_classes, "num_classes", minimum=2)
    y_true = np.asarray(y_true)
    if not (0.0 < float(alpha_level) < 1.0):
        raise ValueError(f"alpha_level must be in (0, 1), got {alpha_level!r}")
    if not distilled_pred:
        raise ValueError("distilled_pred must hold at least one temperature")
    teacher = np.asarray(teacher_pred)
    nds = np.asarray(non_distilled_pred)
    acc_t = _per_seed(y_true, teacher, num_classes, "teacher_pred")
    acc_n = _per_seed(y_true, nds, num_classes, "non_distilled_pred")
    if acc_t.shape != acc_n.shape:
        raise ValueError(f"teacher and non-distilled predictions need the same seeds, got {teacher.shape}, {nds.shape}")
    rows, per_class_ds, p_values = [], {}, {}
    for temp, pred in distilled_pred.items():
        pred = np.asarray(pred)
        acc_d = _per_seed(y_true, pred, num_classes, f"distilled_pred[{temp}]")
        if acc_d.shape != acc_t.shape:
            raise ValueError(f"distilled_pred[{temp}] must cover the same {acc_t.shape[0]} seeds as the teacher")
        p_tc = classwise_seed_test(acc_t, acc_d, test=test)
        p_sc = classwise_seed_test(acc_n, acc_d, test=test)
        rows.append(
            {
                "temperature": temp,
                "ds_accuracy": _stats((pred == y_true[None]).mean(axis=1)),
                "n_tc": int(np.sum(p_tc < alpha_level)),
                "n_tc_bh": int(np.sum(benjamini_hochberg(p_tc, q=q)[0])),
                "n_sc": int(np.sum(p_sc < alpha_level)),
                "n_sc_bh": int(np.sum(benjamini_hochberg(p_sc, q=q)[0])),
                "disagree_teacher": float(np.mean(pred != teacher)),
                "disagree_nds": float(np.mean(pred != nds)),
            }
        )
        per_class_ds[temp] = acc_d.mean(axis=0).tolist()
        p_values[temp] = {"tc": p_tc.tolist(), "sc": p_sc.tolist()}
    return {
        "rows": rows,
        "per_class": {
            "teacher": acc_t.mean(axis=0).tolist(),
            "non_distilled": acc_n.mean(axis=0).tolist(),
            "distilled": per_class_ds,
        },
        "p_values": p_values,
        "teacher_accuracy": _stats((teacher == y_true[None]).mean(axis=1)),
        "non_distilled_accuracy": _stats((nds == y_true[None]).mean(axis=1)),
        "test": test,
        "q": float(q),
        "alpha_level": float(alpha_level),
    }
