"""Node-classification metrics in numpy: accuracy, AUC-ROC (binary, or one-vs-rest macro) and macro-F1.

They follow scikit-learn's definitions (`accuracy_score`, `roc_auc_score`, `f1_score(average="macro")`) and are
tested against them. AUC uses the Mann–Whitney statistic with average ranks, so tied scores count one half.
"""

import numpy as np
from scipy.stats import rankdata

__all__ = ["accuracy", "classification_metrics", "macro_f1", "roc_auc"]


def _check_labels(name: str, y) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    return y


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    t, p = _check_labels("y_true", y_true), _check_labels("y_pred", y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.shape} and {p.shape}")
    return t, p


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact label matches."""
    t, p = _check_pair(y_true, y_pred)
    return float(np.mean(t == p))


def macro_f1(y_true, y_pred, *, labels=None) -> float:
    """Unweighted mean over classes of F1 = 2 TP / (2 TP + FP + FN); a class with 2TP+FP+FN = 0 scores 0.

    Classes are `labels`, or the union of those in y_true and y_pred (scikit-learn's default).
    """
    t, p = _check_pair(y_true, y_pred)
    classes = np.union1d(t, p) if labels is None else np.asarray(labels)
    scores = []
    for c in classes:
        tp = np.sum((t == c) & (p == c))
        denom = 2 * tp + np.sum((t != c) & (p == c)) + np.sum((t == c) & (p != c))
        scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC-ROC is undefined when y_true holds only one class")
    ranks = rankdata(score)  # average ranks: ties count one half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true, scores) -> float:
    """AUC-ROC. Binary: `scores` is (n,) positive-class scores or (n, 2) probabilities (column 1 used).

    Multiclass: `scores` is (n, C) and the result is the one-vs-rest macro average (every class must occur).
    """
    t = _check_labels("y_true", y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape[0] != t.shape[0] or s.ndim not in (1, 2):
        raise ValueError(f"scores must be (n,) or (n, C) with n = {t.shape[0]}, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    if s.ndim == 1 or s.shape[1] == 2:
        if np.any((t != 0) & (t != 1)):
            raise ValueError("binary AUC-ROC needs labels in {0, 1}")
        return _binary_auc(t == 1, s if s.ndim == 1 else s[:, 1])
    if t.max() >= s.shape[1]:
        raise ValueError(f"labels go up to {t.max()} but scores have {s.shape[1]} columns")
    return float(np.mean([_binary_auc(t == c, s[:, c]) for c in range(s.shape[1])]))


def classification_metrics(y_true, probabilities) -> dict:
    """{"accuracy", "auc_roc", "macro_f1"} of argmax predictions and class probabilities (n, C)."""
    p = np.asarray(probabilities)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (n, C), got shape {p.shape}")
    pred = np.argmax(p, axis=1)
    return {
        "accuracy": accuracy(y_true, pred),
        "auc_roc": roc_auc(y_true, p),
        "macro_f1": macro_f1(y_true, pred, labels=np.arange(p.shape[1])),
    }
