"""Accuracy, AUC-ROC and macro-F1 equal scikit-learn's; trivial-predictor identities."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from jaxsparse.graph import accuracy, classification_metrics, macro_f1, roc_auc


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.uniform(size=200) + 0.5 * y, 1)  # rounded: many ties
    pred = (score > 0.7).astype(int)
    assert accuracy(y, pred) == pytest.approx(accuracy_score(y, pred), abs=1e-15)
    assert macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-15)
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    probs = np.column_stack([1 - score / 2, score / 2])
    assert roc_auc(y, probs) == pytest.approx(roc_auc_score(y, probs[:, 1]), abs=1e-12)


def test_multiclass_metrics_equal_sklearn():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3)) + np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    pred = probs.argmax(1)
    got = classification_metrics(y, probs)
    assert got["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert got["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-15)
    assert got["auc_roc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-12)


def test_trivial_predictors():
    y = np.array([0] * 30 + [1] * 10)
    const = np.zeros_like(y)
    f1_majority = f1_score(y, const, pos_label=0)
    assert macro_f1(y, const, labels=[0, 1]) == pytest.approx(0.5 * f1_majority)
    assert roc_auc(y, np.full(40, 0.3)) == 0.5


def test_bad_metric_inputs_raise():
    with pytest.raises(ValueError, match="same length"):
        accuracy([0, 1], [0])
    with pytest.raises(ValueError, match="one class"):
        roc_auc(np.zeros(4, int), np.arange(4.0))
    with pytest.raises(TypeError, match="integer"):
        macro_f1(np.array([0.5, 1.0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="scores"):
        roc_auc(np.array([0, 1, 0]), np.zeros(4))
