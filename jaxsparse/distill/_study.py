"""Small-scale reproduction of arXiv 2410.08407: class-wise bias (digits) and group fairness (breast cancer)."""

import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ._loss import kd_loss, soft_kl
from ._report import class_bias_report
from ._stats import SEED_TESTS, benjamini_hochberg
from ._train import train_teacher_and_students

__all__ = ["FAIRNESS_DATASETS", "SENSITIVE_FEATURE", "kd_bias_study"]

FAIRNESS_DATASETS = ("breast_cancer", None)
# Derived (synthetic) binary attribute: breast-cancer has no demographic column. Column 0 of scikit-learn's
# table is "mean radius"; A = 1 where it exceeds its TRAINING-set median. It is also an input feature, so the
# models are not "unaware" of A, and A is strongly associated with the label (large tumours are mostly malignant).
SENSITIVE_FEATURE = {"column": 0, "name": "mean radius", "rule": "above the training-set median"}


def _mean_std(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if values.size > 1 else 0.0}


def _loss_checks() -> dict:
    """Identities of the KD loss (spec §1), evaluated on random logits at run time."""
    rng = np.random.default_rng(0)
    zs = jnp.asarray(rng.normal(size=(16, 10)) * 3, dtype=jnp.float32)
    zt = jnp.asarray(rng.normal(size=(16, 10)) * 3, dtype=jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, 16), dtype=jnp.int32)
    ce = float(jnp.mean(-jax.nn.log_softmax(zs)[jnp.arange(16), y]))
    at_one = [float(kd_loss(zs, zt, y, alpha=1.0, temperature=t)) for t in (1.0, 4.0, 10.0)]
    self_soft = [float(kd_loss(zs, zs, y, alpha=0.0, temperature=t)) for t in (1.0, 4.0, 10.0)]
    t = 4.0
    grad = jax.grad(lambda z: t**2 * jnp.mean(soft_kl(z, zt, temperature=t)))(zs)
    expected = t * (jax.nn.softmax(zs / t) - jax.nn.softmax(zt / t)) / zs.shape[0]
    grad_err = float(jnp.max(jnp.abs(grad - expected)))
    return {
        "kd_loss_alpha1_equals_cross_entropy": {
            "passed": bool(np.allclose(at_one, ce, rtol=1e-6, atol=1e-6)),
            "detail": f"CE={ce:.6f}; kd_loss(alpha=1) at T=1,4,10: {[round(v, 6) for v in at_one]}",
        },
        "kd_soft_term_is_zero_when_student_equals_teacher": {
            "passed": bool(np.allclose(self_soft, 0.0, atol=1e-6)),
            "detail": f"kd_loss(alpha=0, z_s=z_t) at T=1,4,10: {self_soft} (a CE soft term would give H(p_t) > 0)",
        },
        "kd_soft_gradient_is_T_times_prob_gap": {
            "passed": grad_err < 1e-6,
            "detail": f"max |d(T^2 KL)/dz_s - T(p_s - p_t)/B| at T=4: {grad_err:.2e}",
        },
    }


def _fairness_rows(runs, sensitive) -> list[dict]:
    # Imported here: jaxsparse.fairness is a sibling subpackage that may be absent in minimal installs.
    from jaxsparse.fairness import demographic_parity_difference, equalized_odds_difference

    y = runs["y_test"]

    def row(model, temp, block):
        dpd = [demographic_parity_difference(y, p, sensitive_features=sensitive) for p in block["pred"]]
        eod = [equalized_odds_difference(y, p, sensitive_features=sensitive) for p in block["pred"]]
        return {
            "model": model,
            "temperature": temp,
            "accuracy": _mean_std(block["accuracy"]),
            "dpd": _mean_std(dpd),
            "eod": _mean_std(eod),
        }

    rows = [row("teacher", None, runs["teacher"]), row("non_distilled", None, runs["non_distilled"])]
    rows += [row("distilled", t, block) for t, block in runs["distilled"].items()]
    return rows


def kd_bias_study(
    *,
    temperatures: Sequence[float] = (1, 2, 4, 8, 10),
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    steps: int = 3000,
    teacher_hidden: Sequence[int] = (256, 256),
    student_hidden: Sequence[int] = (16,),
    alpha: float = 0.5,
    q: float = 0.05,
    test: str = "welch",
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    scale_by_t2: bool = True,
    fairness_dataset: str | None = "breast_cancer",
    progress: bool = True,
) -> dict:
    """Does distillation change class-wise accuracy and group fairness? (arXiv 2410.08407, scaled down.)

    Class bias: on scikit-learn digits (fixed stratified split, seed 0, 360 test images), trains per seed a
    teacher MLP, a non-distilled student and a distilled student per temperature
    (`train_teacher_and_students`), then `class_bias_report` counts classes whose accuracy differs
    significantly across seeds: #TC (teacher vs DS) and #SC (NDS vs DS), raw and BH-corrected.

    Group fairness: on breast cancer (label 1 = benign is the positive outcome), the same three kinds of model
    are trained and scored with `jaxsparse.fairness.demographic_parity_difference` and
    `equalized_odds_difference` against the DERIVED binary attribute in `SENSITIVE_FEATURE` (mean radius above
    its training median). It is a synthetic stand-in for a demographic attribute, not a protected group.

    Args:
        temperatures: Distillation temperatures.
        seeds: Training seeds (init and batch order); the data splits stay fixed so test sets are shared.
        steps: Adam steps per model.
        teacher_hidden: Hidden widths of the teacher MLP.
        student_hidden: Hidden widths of the student MLP.
        alpha: Hard-label weight of the KD loss.
        q: Benjamini–Hochberg FDR over classes; also the raw per-class significance level.
        test: Across-seed per-class test, "welch", "paired_t" or "wilcoxon" (`classwise_seed_test`).
        batch_size: Minibatch size.
        learning_rate: Adam learning rate.
        scale_by_t2: Whether the soft term is multiplied by T**2.
        fairness_dataset: "breast_cancer", or None to skip the fairness part.
        progress: tqdm bars.

    Returns:
        A plain dict with keys "rows" (per T: "temperature", "ds_accuracy", "n_tc", "n_tc_bh", "n_sc",
        "n_sc_bh", "disagree_teacher", "disagree_nds"), "teacher_accuracy", "non_distilled_accuracy"
        ({mean, std}), "per_class" (mean per-class accuracies of teacher, NDS and DS per T), "p_values",
        "fairness" (None, or {"dataset", "sensitive_feature", "group_sizes", "rows": per model/T
        {"model", "temperature", "accuracy", "dpd", "eod"}}), "settings", "timing_s" and "checks"
        ({name: {"passed", "detail"}}).
    """
    from jaxsparse.data import load_breast_cancer_split, load_digits_split

    if fairness_dataset not in FAIRNESS_DATASETS:
        raise ValueError(f"fairness_dataset must be one of {FAIRNESS_DATASETS}, got {fairness_dataset!r}")
    if not (0.0 < float(q) < 1.0):
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    # Fail before minutes of training, not after: the across-seed tests need >= 2 seeds and a known test.
    if test not in SEED_TESTS:
        raise ValueError(f"test must be one of {SEED_TESTS}, got {test!r}")
    if len(tuple(seeds)) < 2:
        raise ValueError(f"seeds must hold at least 2 seeds for the across-seed tests, got {tuple(seeds)!r}")
    settings = {
        "temperatures": tuple(temperatures),
        "seeds": tuple(seeds),
        "steps": steps,
        "teacher_hidden": tuple(teacher_hidden),
        "student_hidden": tuple(student_hidden),
        "alpha": alpha,
        "q": q,
        "test": test,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "scale_by_t2": scale_by_t2,
        "fairness_dataset": fairness_dataset,
    }
    train_kw = {k: settings[k] for k in settings if k not in ("q", "test", "fairness_dataset")}
    timing = {}
    checks = _loss_checks()

    start = time.perf_counter()
    digits = load_digits_split(seed=0)
    runs = train_teacher_and_students(digits, **train_kw, progress=progress, desc="kd digits")
    timing["digits_train"] = time.perf_counter() - start
    report = class_bias_report(
        runs["y_test"],
        runs["teacher"]["pred"],
        runs["non_distilled"]["pred"],
        {t: b["pred"] for t, b in runs["distilled"].items()},
        num_classes=runs["num_classes"],
        q=q,
        alpha_level=q,
        test=test,
    )
    # The spec's BH sanity vector (fairness_kd.md §2) gives exactly 2 discoveries at q = .05.
    spec_p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    rej, adj = benjamini_hochberg(spec_p, q=0.05)
    checks["benjamini_hochberg_matches_spec_values"] = {
        "passed": bool(rej.sum() == 2 and np.allclose(adj[:3], [0.01, 0.04, 0.084])),
        "detail": f"{int(rej.sum())} discoveries, adjusted[:3]={np.round(adj[:3], 4).tolist()}",
    }
    checks["bh_counts_never_exceed_raw_counts"] = {
        "passed": all(r["n_tc_bh"] <= r["n_tc"] and r["n_sc_bh"] <= r["n_sc"] for r in report["rows"]),
        "detail": "BH-adjusted p >= raw p, so with q equal to the raw level the BH counts are at most the raw ones",
    }

    fairness = None
    if fairness_dataset == "breast_cancer":
        start = time.perf_counter()
        cancer = load_breast_cancer_split(seed=0)
        col = SENSITIVE_FEATURE["column"]
        # Standardisation is affine and increasing, so thresholding the standardised column at its training
        # median is the same as thresholding raw mean radius at its raw training median.
        sensitive = (cancer.x_test[:, col] > np.median(cancer.x_train[:, col])).astype(np.int32)
        fruns = train_teacher_and_students(cancer, **train_kw, progress=progress, desc="kd breast_cancer")
        timing["fairness_train"] = time.perf_counter() - start
        y = fruns["y_test"]
        sizes = {
            f"A={a}": {"n": int(np.sum(sensitive == a)), "positives": int(np.sum((sensitive == a) & (y == 1)))}
            for a in (0, 1)
        }
        fairness = {
            "dataset": "breast_cancer",
            "sensitive_feature": dict(SENSITIVE_FEATURE),
            "positive_label": 1,
            "group_sizes": sizes,
            "rows": _fairness_rows(fruns, sensitive),
        }
        # fairlearn gotcha: a group without positives (or negatives) gets TPR (FPR) = 0 silently, inflating EOD.
        both = all(0 < s["positives"] < s["n"] for s in sizes.values())
        checks["fairness_groups_contain_both_labels"] = {"passed": both, "detail": str(sizes)}

    return {
        "rows": report["rows"],
        "teacher_accuracy": report["teacher_accuracy"],
        "non_distilled_accuracy": report["non_distilled_accuracy"],
        "per_class": report["per_class"],
        "p_values": report["p_values"],
        "fairness": fairness,
        "settings": settings,
        "timing_s": timing,
        "checks": checks,
    }
