"""Class-wise bias statistics: per-class accuracy, McNemar, across-seed tests and Benjamini–Hochberg."""

import warnings
from typing import NamedTuple

import numpy as np

from jaxsparse._checks import check_int

__all__ = [
    "McNemarResult",
    "benjamini_hochberg",
    "classwise_seed_test",
    "mcnemar_test",
    "per_class_accuracy",
]

SEED_TESTS = ("welch", "paired_t", "wilcoxon")


def _labels(y, name: str, num_classes: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.mod(arr, 1) == 0):
            raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise ValueError(f"{name} must lie in [0, {num_classes}), got range [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def per_class_accuracy(y_true, y_pred, *, num_classes: int) -> np.ndarray:
    """Accuracy restricted to each true class (i.e. per-class recall), shape `[num_classes]`, float64.

    Raises:
        ValueError: On length mismatch, labels outside `[0, num_classes)`, or a class with no examples in
            `y_true` (its accuracy is undefined; silently reporting 0 or NaN would corrupt the class counts).
    """
    num_classes = check_int(num_classes, "num_classes", minimum=1)
    y_true = _labels(y_true, "y_true", num_classes)
    y_pred = _labels(y_pred, "y_pred", num_classes)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred must have equal length, got {y_true.size} and {y_pred.size}")
    support = np.bincount(y_true, minlength=num_classes)
    if np.any(support == 0):
        missing = np.flatnonzero(support == 0).tolist()
        raise ValueError(f"classes {missing} have no examples in y_true; their accuracy is undefined")
    hits = np.bincount(y_true, weights=(y_true == y_pred).astype(np.float64), minlength=num_classes)
    return hits / support


class McNemarResult(NamedTuple):
    """McNemar test outcome. `b` = A right & B wrong, `c` = A wrong & B right; `method` is "exact" or "chi2"."""

    statistic: float
    pvalue: float
    b: int
    c: int
    method: str


def _bools(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype != np.bool_:
        if arr.size and not np.all((arr == 0) | (arr == 1)):
            raise ValueError(f"{name} must be boolean (or 0/1), got values outside {{0, 1}}")
        arr = arr.astype(bool)
    return arr


def mcnemar_test(correct_a, correct_b, *, exact: bool | None = None, exact_below: int = 25) -> McNemarResult:
    """Paired McNemar test on per-example correctness of two classifiers over the same examples.

    Conventions follow `statsmodels.stats.contingency_tables.mcnemar`:

    * exact: statistic = min(b, c), p = two-sided binomial test of min(b, c) successes in b + c trials at
      0.5, i.e. `scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue` (= min(1, 2 * BinomCDF(min(b, c)))).
    * chi2 (with continuity correction): statistic = (|b - c| - 1)**2 / (b + c), p = `chi2.sf(stat, df=1)`.
      As in statsmodels the correction is applied literally, so b == c gives statistic 1 / (b + c).

    Args:
        correct_a: `[n]` booleans, whether model A got each example right.
        correct_b: `[n]` booleans for model B on the same examples.
        exact: Force the exact (True) or chi-square (False) version; None picks exact when b + c < `exact_below`
            (the usual rule of thumb for the chi-square approximation).
        exact_below: Discordant-count threshold used when `exact` is None.

    Returns:
        A `McNemarResult`; with no discordant pairs (b + c = 0) the p-value is 1.
    """
    from scipy import stats  # lazy: scipy.stats is slow to import

    a = _bools(correct_a, "correct_a")
    bb = _bools(correct_b, "correct_b")
    if a.shape != bb.shape:
        raise ValueError(f"correct_a and correct_b must have equal length, got {a.size} and {bb.size}")
    exact_below = check_int(exact_below, "exact_below", minimum=1)
    if exact is not None and not isinstance(exact, bool | np.bool_):
        raise ValueError(f"exact must be a bool or None, got {exact!r}")
    b = int(np.sum(a & ~bb))
    c = int(np.sum(~a & bb))
    n = b + c
    use_exact = bool(exact) if exact is not None else n < exact_below
    if use_exact:
        p = 1.0 if n == 0 else float(stats.binomtest(min(b, c), n, 0.5).pvalue)
        return McNemarResult(float(min(b, c)), min(p, 1.0), b, c, "exact")
    if n == 0:
        return McNemarResult(0.0, 1.0, b, c, "chi2")
    stat = (abs(b - c) - 1.0) ** 2 / n
    return McNemarResult(float(stat), float(stats.chi2.sf(stat, 1)), b, c, "chi2")


def classwise_seed_test(acc_a, acc_b, *, test: str = "welch") -> np.ndarray:
    """Per-class p-values comparing two models' class accuracies across seeds, shape `[num_classes]`.

    Args:
        acc_a: `[num_seeds, num_classes]` per-seed class accuracies of model A.
        acc_b: Same for model B; row s must come from the same seed as `acc_a[s]` for the paired tests.
        test: "welch" — two-sample Welch t-test (`scipy.stats.ttest_ind(equal_var=False)`), the reading of
            arXiv 2410.08407 that follows Hooker et al. (1911.05248) and the default; "paired_t" —
            `scipy.stats.ttest_rel` over seeds; "wilcoxon" — `scipy.stats.wilcoxon` signed-rank (note that
            with 5 seeds its smallest two-sided p is 0.0625, so it never rejects at 0.05).

    Returns:
        Two-sided p-values. A class where both models have identical accuracies on every seed gets p = 1
        (scipy would return NaN: no evidence of a difference). A class where each model is constant across
        seeds but the constants differ gets p = 0 from the t-tests (zero variance, non-zero difference).
    """
    from scipy import stats  # lazy: scipy.stats is slow to import

    if test not in SEED_TESTS:
        raise ValueError(f"test must be one of {SEED_TESTS}, got {test!r}")
    a = np.asarray(acc_a, dtype=np.float64)
    b = np.asarray(acc_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"acc_a and acc_b must be equal-shape [num_seeds, num_classes], got {a.shape}, {b.shape}")
    if a.shape[0] < 2:
        raise ValueError(f"need at least 2 seeds per model for a test across seeds, got {a.shape[0]}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("acc_a and acc_b must be finite")
    p = np.ones(a.shape[1])
    for k in range(a.shape[1]):
        x, y = a[:, k], b[:, k]
        if np.array_equal(x, y):
            continue  # identical on every seed: p = 1 (scipy gives NaN)
        if test == "wilcoxon":
            p[k] = stats.wilcoxon(x, y).pvalue
            continue
        if test == "paired_t":
            d = x - y
            # A constant non-zero difference has zero variance: scipy gives NaN, the evidence says p = 0.
            p[k] = 0.0 if np.ptp(d) == 0 else stats.ttest_rel(x, y).pvalue
            continue
        if np.ptp(x) == 0 and np.ptp(y) == 0:
            p[k] = 0.0  # both constant, different means: scipy would give NaN (0/0 variance)
            continue
        with warnings.catch_warnings():
            # A constant sample (e.g. a class the teacher always gets right) triggers scipy's precision-loss
            # warning, but the Welch statistic is still well defined from the other sample's variance.
            warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
            p[k] = stats.ttest_ind(x, y, equal_var=False).pvalue
    return p


def benjamini_hochberg(p_values, *, q: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini–Hochberg step-up procedure controlling the false discovery rate at `q`.

    Adjusted p-values equal `scipy.stats.false_discovery_control(p, method="bh")`: p_(i) * m / i, made
    monotone from the largest rank down and clipped to 1. Hypothesis i is rejected iff adjusted_i <= q.

    Args:
        p_values: 1-D p-values in [0, 1].
        q: Target FDR in (0, 1).

    Returns:
        `(rejected, adjusted)`: a boolean array and the adjusted p-values, both in the input order.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p.shape}")
    if p.size and (np.any(~np.isfinite(p)) or p.min() < 0 or p.max() > 1):
        raise ValueError("p_values must be finite and lie in [0, 1]")
    if isinstance(q, bool) or not (0.0 < float(q) < 1.0):
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    m = p.size
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted <= float(q), adjusted
