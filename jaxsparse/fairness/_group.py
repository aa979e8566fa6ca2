"""Group-fairness metrics: fairlearn's unsigned disparities and AIF360's signed privileged-group contrasts.

Host wrappers (raw `sensitive_features`) infer the groups eagerly with `np.unique`, count with the jitted
`group_counts`, and form every rate in numpy float64 from the integer counts -- exact to rounding, so they
match fairlearn to ~1e-15. Passing `num_groups=` instead takes integer codes in [0, num_groups) and stays
in `jax.numpy`, so the call works under `jax.jit`; that path cannot raise on data-dependent problems and
returns NaN for an undefined rate instead.

Differences from fairlearn 0.15 (deliberate):
* A rate with an empty denominator (a group with no positive `y_true` for a TPR, no negatives for an FPR)
  raises ValueError naming the group; fairlearn silently returns 0 for it (sklearn's normalised confusion
  matrix maps 0/0 to 0), so a perfect predictor can score EOD = 1.
* Non-binary labels raise unless `pos_label=` is given (then one-vs-rest); fairlearn's DPD silently
  measures "selection of label 1".
* Fewer than two samples raise. A ratio whose denominator is 0 (all rates 0) raises; fairlearn gives NaN.
"""

from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse._checks import check_int

from ._counts import _as_1d, _binarize, _encode_groups, _is_traced, group_counts

__all__ = [
    "CalibrationCounts",
    "average_odds_difference",
    "calibration_by_group",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "disparate_impact",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "predictive_parity_difference",
    "statistical_parity_difference",
]

_METHODS = ("between_groups", "to_overall")
_AGGS = ("worst_case", "mean")
# numerator / denominator fields of GroupCounts for each rate
_RATES = {
    "selection_rate": ("pred_pos", ("n",)),
    "true_positive_rate": ("tp", ("tp", "fn")),
    "false_positive_rate": ("fp", ("fp", "tn")),
    "positive_predictive_value": ("tp", ("tp", "fp")),
}
_WHY_EMPTY = {
    "selection_rate": "has no samples",
    "true_positive_rate": "has no positive y_true",
    "false_positive_rate": "has no negative y_true",
    "positive_predictive_value": "has no positive y_pred",
}


def _check_choice(value, name, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def _prepare(y_true, y_pred, sensitive_features, pos_label, num_groups):
    """Returns (GroupCounts, group names, xp): numpy int64 counts on the host path, jax on the codes path."""
    if num_groups is not None:
        if pos_label is not None:  # one-vs-rest on device; no label checks are possible under jit
            y_true, y_pred = jnp.asarray(y_true) == pos_label, jnp.asarray(y_pred) == pos_label
        c = group_counts(y_true, y_pred, sensitive_features, num_groups=num_groups)
        return c, list(range(num_groups)), jnp
    if _is_traced(y_true, y_pred, sensitive_features):
        raise ValueError("under jax.jit pass num_groups= (static) and integer group codes as sensitive_features")
    yt, yp = _as_1d(y_true, "y_true"), _as_1d(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {yt.shape[0]} and {yp.shape[0]}")
    if yt.size < 2:
        raise ValueError(f"need at least 2 samples to compare groups, got {yt.size}")
    groups, codes = _encode_groups(sensitive_features, yt.size)
    b = _binarize({"y_true": yt, "y_pred": yp}, pos_label)
    c = group_counts(b["y_true"], b["y_pred"], codes, num_groups=len(groups))
    return type(c)(*(np.asarray(x, dtype=np.int64) for x in c)), groups, np


def _rate(c, groups, xp, name):
    """(per-group rates [G], overall rate) of `name`, float64 on the host path (raising on 0/0)."""
    num, dens = _RATES[name]
    top = getattr(c, num)
    bottom = sum(getattr(c, d) for d in dens)
    if xp is np:
        empty = np.flatnonzero(bottom == 0)
        if empty.size:
            g = groups[empty[0]]
            raise ValueError(f"{name} is undefined: group {g!r} of sensitive_features {_WHY_EMPTY[name]}")
        return top / bottom, top.sum() / bottom.sum()
    top, bottom = top.astype(jnp.float32), bottom.astype(jnp.float32)
    return top / bottom, top.sum() / bottom.sum()  # 0/0 -> NaN, the only signal available under jit


def _difference(values, overall, method, xp, name=None):
    if method == "between_groups":
        return xp.max(values) - xp.min(values)
    return xp.max(xp.abs(values - overall))


def _ratio(values, overall, method, xp, name):
    if method == "between_groups":
        lo, hi = xp.min(values), xp.max(values)
        if xp is np and hi == 0:
            raise ValueError(f"{name} ratio is undefined: every group's rate is 0")
        return lo / hi
    if xp is np:
        if overall == 0:
            raise ValueError(f"{name} ratio to_overall is undefined: the overall rate is 0")
        # fairlearn: min over groups of min(v/overall, overall/v); a zero group rate gives ratio 0.
        safe = np.where(values == 0, 1.0, values)
        return float(np.min(np.where(values == 0, 0.0, np.minimum(values / overall, overall / safe))))
    return xp.min(xp.minimum(values / overall, overall / values))


def _out(x, xp):
    return float(x) if xp is np else x


def demographic_parity_difference(
    y_true,
    y_pred,
    *,
    sensitive_features,
    method: Literal["between_groups", "to_overall"] = "between_groups",
    pos_label=None,
    num_groups: int | None = None,
):
    """Largest minus smallest group selection rate (fairlearn's `demographic_parity_difference`).

    `method="to_overall"` gives max_g |SR_g - SR_overall|. `y_true` is only length-checked, as in fairlearn.

    Args:
        y_true: 1-D labels [N].
        y_pred: 1-D predictions [N], binary ({0, 1} or {-1, 1}) unless `pos_label` is given.
        sensitive_features: [N] (or [N, k]: intersectional groups) raw values; with `num_groups`, int codes.
        method: "between_groups" or "to_overall".
        pos_label: Positive label (one-vs-rest for multi-class); None requires binary labels, positive 1.
        num_groups: If given, `sensitive_features` are codes in [0, num_groups) and the call is jittable.

    Returns:
        A float, or a jax scalar when `num_groups` is given.

    Raises:
        ValueError: On invalid arguments (the message names the argument) or an empty-group rate.
    """
    _check_choice(method, "method", _METHODS)
    c, groups, xp = _prepare(y_true, y_pred, sensitive_features, pos_label, num_groups)
    values, overall = _rate(c, groups, xp, "selection_rate")
    return _out(_difference(values, overall, method, xp), xp)


def demographic_parity_ratio(
    y_true,
    y_pred,
    *,
    sensitive_features,
    method: Literal["between_groups", "to_overall"] = "between_groups",
    pos_label=None,
    num_groups: int | None = None,
):
    """Smallest over largest group selection rate (fairlearn's `demographic_parity_ratio`); see DPD for args.

    `method="to_overall"` gives min_g min(SR_g / SR, SR / SR_g). Raises ValueError where fairlearn gives NaN
    (every rate 0).
    """
    _check_choice(method, "method", _METHODS)
    c, groups, xp = _prepare(y_true, y_pred, sensitive_features, pos_label, num_groups)
    values, overall = _rate(c, groups, xp, "selection_rate")
    return _out(_ratio(values, overall, method, xp, "selection_rate"), xp)


def _eo(y_true, y_pred, sensitive_features, method, agg, pos_label, num_groups, combine):
    _check_choice(method, "method", _METHODS)
    _check_choice(agg, "agg", _AGGS)
    c, groups, xp = _prepare(y_true, y_pred, sensitive_features, pos_label, num_groups)
    parts = [combine(*_rate(c, groups, xp, r), method, xp, r) for r in ("true_positive_rate", "false_positive_rate")]
    return parts, xp


def equalized_odds_difference(
    y_true,
    y_pred,
    *,
    sensitive_features,
    method: Literal["between_groups", "to_overall"] = "between_groups",
    agg: Literal["worst_case", "mean"] = "worst_case",
    pos_label=None,
    num_groups: int | None = None,
):
    """fairlearn's `equalized_odds_difference`: max (`agg="worst_case"`) or mean of the TPR and FPR disparities.

    Each disparity is max - min over groups (or max |rate_g - overall| for `method="to_overall"`). Unlike
    fairlearn, a group without positive (negative) `y_true` raises instead of scoring TPR (FPR) = 0.
    Other arguments as in `demographic_parity_difference`.
    """
    (dt, df), xp = _eo(y_true, y_pred, sensitive_features, method, agg, pos_label, num_groups, _difference)
    out = xp.maximum(dt, df) if agg == "worst_case" else (dt + df) / 2
    return _out(out, xp)


def equalized_odds_ratio(
    y_true,
    y_pred,
    *,
    sensitive_features,
    method: Literal["between_groups", "to_overall"] = "between_groups",
    agg: Literal["worst_case", "mean"] = "worst_case",
    pos_label=None,
    num_groups: int | None = None,
):
    """fairlearn's `equalized_odds_ratio`: min (`agg="worst_case"`) or mean of the TPR and FPR ratios."""
    (rt, rf), xp = _eo(y_true, y_pred, sensitive_features, method, agg, pos_label, num_groups, _ratio)
    out = xp.minimum(rt, rf) if agg == "worst_case" else (rt + rf) / 2
    return _out(out, xp)


# ---------------------------------------------------------------------------------------------------------
# AIF360 (aif360.sklearn.metrics) signed conventions: unprivileged - privileged, or unprivileged / privileged.
# The unprivileged side pools every sample whose sensitive value differs from `privileged_group`, as AIF360
# does. For two groups |difference| equals fairlearn's between_groups difference of the same rate; with more
# groups they differ (fairlearn compares the extreme groups, AIF360 privileged vs the pooled rest).
# ---------------------------------------------------------------------------------------------------------


def _privileged_rates(y_true, y_pred, sensitive_features, privileged_group, pos_label, names):
    yt, yp = _as_1d(y_true, "y_true"), _as_1d(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {yt.shape[0]} and {yp.shape[0]}")
    if yt.size < 2:
        raise ValueError(f"need at least 2 samples to compare groups, got {yt.size}")
    s = _as_1d(sensitive_features, "sensitive_features")
    if s.shape != yt.shape:
        raise ValueError(f"sensitive_features must have length {yt.size}, got {s.shape[0]}")
    priv = s == privileged_group
    if not priv.any():
        raise ValueError(f"privileged_group={privileged_group!r} does not occur in sensitive_features")
    if priv.all():
        raise ValueError(f"sensitive_features holds only privileged_group={privileged_group!r}: no unprivileged group")
    b = _binarize({"y_true": yt, "y_pred": yp}, pos_label)
    codes = (~priv).astype(np.int32)  # 0 = privileged, 1 = unprivileged
    c = group_counts(b["y_true"], b["y_pred"], codes, num_groups=2)
    c = type(c)(*(np.asarray(x, dtype=np.int64) for x in c))
    groups = [f"privileged ({privileged_group!r})", "unprivileged (all others)"]
    return [_rate(c, groups, np, n)[0] for n in names]  # each [privileged, unprivileged]


def statistical_parity_difference(y_true, y_pred, *, sensitive_features, privileged_group, pos_label=None) -> float:
    """AIF360's `statistical_parity_difference`: SR_unprivileged - SR_privileged (signed; 0 is parity)."""
    (sr,) = _privileged_rates(y_true, y_pred, sensitive_features, privileged_group, pos_label, ["selection_rate"])
    return float(sr[1] - sr[0])


def disparate_impact(y_true, y_pred, *, sensitive_features, privileged_group, pos_label=None) -> float:
    """AIF360's `disparate_impact_ratio`: SR_unprivileged / SR_privileged (1 is parity; the 4/5 rule flags < 0.8).

    Not fairlearn's `demographic_parity_ratio` (min/max, always <= 1): this one exceeds 1 when the
    unprivileged side is selected more. Raises if the privileged selection rate is 0 (AIF360 gives inf/NaN).
    """
    (sr,) = _privileged_rates(y_true, y_pred, sensitive_features, privileged_group, pos_label, ["selection_rate"])
    if sr[0] == 0:
        raise ValueError(f"disparate_impact is undefined: privileged_group={privileged_group!r} has selection rate 0")
    return float(sr[1] / sr[0])


def equal_opportunity_difference(y_true, y_pred, *, sensitive_features, privileged_group, pos_label=None) -> float:
    """AIF360's `equal_opportunity_difference`: TPR_unprivileged - TPR_privileged (signed).

    fairlearn's function of the same name is unsigned (max - min TPR over all groups); for two groups it is
    the absolute value of this one.
    """
    (tpr,) = _privileged_rates(y_true, y_pred, sensitive_features, privileged_group, pos_label, ["true_positive_rate"])
    return float(tpr[1] - tpr[0])


def average_odds_difference(y_true, y_pred, *, sensitive_features, privileged_group, pos_label=None) -> float:
    """AIF360's `average_odds_difference`: ((FPR_u - FPR_p) + (TPR_u - TPR_p)) / 2 (signed).

    The two terms can cancel (a TPR gap hidden by an opposite FPR gap), so it is not fairlearn's
    `equalized_odds_difference(agg="mean")`, which averages the unsigned gaps.
    """
    tpr, fpr = _privileged_rates(
        y_true, y_pred, sensitive_features, privileged_group, pos_label, ["true_positive_rate", "false_positive_rate"]
    )
    return float(((fpr[1] - fpr[0]) + (tpr[1] - tpr[0])) / 2)


def predictive_parity_difference(y_true, y_pred, *, sensitive_features, privileged_group, pos_label=None) -> float:
    """PPV_unprivileged - PPV_privileged (signed), PPV = TP / (TP + FP); raises if a side predicts no positive."""
    (ppv,) = _privileged_rates(
        y_true, y_pred, sensitive_features, privileged_group, pos_label, ["positive_predictive_value"]
    )
    return float(ppv[1] - ppv[0])


# ---------------------------------------------------------------------------------------------------------
# calibration
# ---------------------------------------------------------------------------------------------------------


class CalibrationCounts(NamedTuple):
    """Per-(group, bin) sums [num_groups, num_bins]; add leaf-wise to merge batches.

    Bins are sklearn `calibration_curve(strategy="uniform")`'s: edges linspace(0, 1, num_bins + 1), bin b
    holding p in (edge_b, edge_{b+1}] (the first bin also holds 0). Groups are in sorted order of the raw
    values (or code order with `num_groups`).
    """

    count: object
    sum_prob: object
    sum_true: object

    def mean_prob(self):
        """Mean predicted probability per (group, bin); NaN for empty bins (sklearn's `prob_pred`)."""
        return self.sum_prob / self.count

    def fraction_positive(self):
        """Fraction of positive labels per (group, bin); NaN for empty bins (sklearn's `prob_true`)."""
        return self.sum_true / self.count


def calibration_by_group(y_true, y_prob, sensitive, *, num_bins: int, num_groups: int | None = None):
    """Reliability-diagram statistics per group: counts, summed probabilities and summed labels per bin.

    Args:
        y_true: 1-D binary labels [N] in {0, 1}.
        y_prob: 1-D predicted probabilities of label 1 [N], in [0, 1].
        sensitive: [N] raw sensitive values (groups inferred on the host), or int codes with `num_groups`.
        num_bins: Number of equal-width bins on [0, 1].
        num_groups: If given, `sensitive` are codes in [0, num_groups) and the call is jittable (no value
            checks; out-of-range codes are dropped).

    Returns:
        `CalibrationCounts` with arrays [num_groups, num_bins] in `y_prob`'s float dtype (counts as floats
        so that the ratio helpers divide without casts).
    """
    num_bins = check_int(num_bins, "num_bins", minimum=1)
    if num_groups is None:
        if _is_traced(y_true, y_prob, sensitive):
            raise ValueError("calibration_by_group under jax.jit needs a static num_groups and integer codes")
        yt, yp = _as_1d(y_true, "y_true"), _as_1d(y_prob, "y_prob")
        if yt.shape != yp.shape:
            raise ValueError(f"y_true and y_prob must have the same length, got {yt.shape[0]} and {yp.shape[0]}")
        bad = np.setdiff1d(np.unique(yt), [0, 1])
        if bad.size:
            raise ValueError(f"y_true must hold binary labels in {{0, 1}}, found {bad.tolist()}")
        if yp.size and (not np.issubdtype(yp.dtype, np.floating) or yp.min() < 0 or yp.max() > 1):
            raise ValueError("y_prob must hold floating-point probabilities in [0, 1]")
        groups, sensitive = _encode_groups(sensitive, yt.size, "sensitive")
        num_groups = len(groups)
        y_true, y_prob = yt, yp
    num_groups = check_int(num_groups, "num_groups", minimum=1)
    p = jnp.asarray(y_prob)
    edges = jnp.linspace(0.0, 1.0, num_bins + 1, dtype=p.dtype)
    bins = jnp.searchsorted(edges[1:-1], p, side="left")  # sklearn's np.searchsorted(bins[1:-1], y_prob)
    cell = jnp.asarray(sensitive).astype(jnp.int32) * num_bins + bins.astype(jnp.int32)
    in_range = (jnp.asarray(sensitive) >= 0) & (jnp.asarray(sensitive) < num_groups)
    cell = jnp.where(in_range, cell, num_groups * num_bins)  # dropped by segment_sum

    def seg(v):
        return jax.ops.segment_sum(v, cell, num_segments=num_groups * num_bins).reshape(num_groups, num_bins)

    return CalibrationCounts(
        count=seg(jnp.ones_like(p)), sum_prob=seg(p), sum_true=seg(jnp.asarray(y_true).astype(p.dtype))
    )
