"""Pre-processing reweighing (Kamiran & Calders 2012) and deterministic per-group decision thresholds.

Both run on the host in numpy float64: they are fitted once, not inside a training step.
"""

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ._counts import _as_1d, _binarize, _encode_groups

__all__ = ["GroupThresholds", "apply_group_thresholds", "fit_group_thresholds", "reweighing_weights"]

_CONSTRAINTS = {
    "demographic_parity": ("selection_rate",),
    "true_positive_rate_parity": ("true_positive_rate",),
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
}
_SLACK = 1e-12  # float rounding in rate comparisons; the tolerance itself is never widened


def reweighing_weights(y_true, sensitive_features) -> np.ndarray:
    """Kamiran & Calders reweighing: w_i = P(A=a_i) P(Y=y_i) / P(A=a_i, Y=y_i) = n_a n_y / (n n_ay).

    Afterwards every group's weighted label distribution equals the overall one (so each group's weighted
    positive rate is P(Y=1)) and the weights sum to n. Labels may be any discrete values.

    Returns:
        float64 array [N].
    """
    y = _as_1d(y_true, "y_true")
    if y.size == 0:
        raise ValueError("y_true must not be empty")
    _, a = _encode_groups(sensitive_features, y.size)
    _, yc = np.unique(y, return_inverse=True)
    n_a, n_y = np.bincount(a), np.bincount(yc)
    joint = np.zeros((n_a.size, n_y.size), dtype=np.int64)
    np.add.at(joint, (a, yc), 1)
    return n_a[a] * n_y[yc] / (y.size * joint[a, yc]).astype(np.float64)


class GroupThresholds(NamedTuple):
    """Fitted thresholds: predict 1 iff score >= thresholds[i] for a sample of groups[i].

    Attributes:
        groups: Sorted distinct sensitive values (list).
        thresholds: float64 array [G] (+inf means "never select").
        violation: Training constraint violation (max - min of the constrained rates, max over rates).
        accuracy: Training accuracy of the thresholded predictions.
    """

    groups: list
    thresholds: np.ndarray
    violation: float
    accuracy: float


def _group_curves(pos, scores, codes, num_groups, cand):
    """Per group g and candidate k: selection rate, TPR, FPR and #correct of `score >= cand[k]`."""
    curves = []
    for g in range(num_groups):
        s, y = scores[codes == g], pos[codes == g]
        pred = s[None, :] >= cand[:, None]  # [K, n_g]
        tp = (pred & y).sum(1)
        fp = (pred & ~y).sum(1)
        n_pos, n_neg = y.sum(), (~y).sum()
        curves.append(
            {
                "selection_rate": pred.sum(1) / y.size,
                "true_positive_rate": tp / n_pos if n_pos else None,
                "false_positive_rate": fp / n_neg if n_neg else None,
                "correct": tp + (n_neg - fp),
            }
        )
    return curves


def fit_group_thresholds(
    y_true, scores, sensitive_features, *, constraint="demographic_parity", grid=101, tolerance=0.02, pos_label=None
) -> GroupThresholds:
    """Per-group thresholds maximising training accuracy subject to a parity constraint within `tolerance`.

    A deterministic, exact search over a shared grid of candidate thresholds: unlike fairlearn's
    `ThresholdOptimizer` it never randomises between two thresholds, so equality holds only up to
    `tolerance`. Accuracy is a sum of per-group correct counts, so for each window [lo, lo + tolerance]
    of the constrained rate(s) (lo ranging over every achievable rate) the best threshold of each group is
    chosen independently; the best window is exactly optimal over all threshold vectors from the grid.
    Ties go to the first window and the smallest candidate threshold. +inf is always a candidate, so a
    feasible solution (select nobody) always exists.

    Args:
        y_true: 1-D labels [N] (binary unless `pos_label`).
        scores: 1-D real scores [N]; higher means more likely positive.
        sensitive_features: [N] raw sensitive values.
        constraint: "demographic_parity" (selection rate), "true_positive_rate_parity" or "equalized_odds"
            (TPR and FPR).
        grid: int >= 2 (candidate thresholds at that many evenly spaced quantiles of `scores`) or a 1-D
            array of candidate thresholds.
        tolerance: Allowed max - min spread of each constrained rate across groups, in [0, 1].
        pos_label: Positive label of `y_true`.

    Raises:
        ValueError: On invalid arguments, or a group lacking positives (negatives) for a TPR (FPR) constraint.
    """
    if constraint not in _CONSTRAINTS:
        raise ValueError(f"constraint must be one of {tuple(_CONSTRAINTS)}, got {constraint!r}")
    if not isinstance(tolerance, int | float) or isinstance(tolerance, bool) or not 0 <= tolerance <= 1:
        raise ValueError(f"tolerance must be a real number in [0, 1], got {tolerance!r}")
    y, s = _as_1d(y_true, "y_true"), _as_1d(scores, "scores").astype(np.float64)
    if y.shape != s.shape or y.size < 2:
        raise ValueError(f"y_true and scores must have the same length >= 2, got {y.shape[0]} and {s.shape[0]}")
    (pos,) = _binarize({"y_true": y}, pos_label).values()
    groups, codes = _encode_groups(sensitive_features, y.size)
    if isinstance(grid, int) and not isinstance(grid, bool):
        if grid < 2:
            raise ValueError(f"grid must be >= 2 when an int, got {grid}")
        cand = np.quantile(s, np.linspace(0.0, 1.0, grid))
    else:
        cand = _as_1d(grid, "grid").astype(np.float64)
    cand = np.unique(np.append(cand, np.inf))
    curves = _group_curves(pos, s, codes, len(groups), cand)
    rates = _CONSTRAINTS[constraint]
    for g, c in enumerate(curves):
        for r in rates:
            if c[r] is None:
                need = "positive" if r == "true_positive_rate" else "negative"
                raise ValueError(f"{r} is undefined: group {groups[g]!r} of sensitive_features has no {need} y_true")
    # Every achievable value of each constrained rate is a candidate window start; for each start (pair of
    # starts for equalized odds) each group independently takes its most accurate threshold in the window.
    starts = [np.unique(np.concatenate([c[r] for c in curves])) for r in rates]
    shape = tuple(st.size for st in starts)
    total = np.zeros(shape, dtype=np.int64)
    feasible = np.ones(shape, dtype=bool)
    choice = []
    for c in curves:
        ok = np.ones((*shape, cand.size), dtype=bool)
        for axis, (r, st) in enumerate(zip(rates, starts, strict=True)):
            lo = st.reshape((-1,) + (1,) * (len(rates) - axis))  # broadcast along this rate's window axis
            ok &= (c[r] >= lo - _SLACK) & (c[r] <= lo + tolerance + _SLACK)
        score = np.where(ok, c["correct"], -1)
        k = np.argmax(score, axis=-1)  # first max: the smallest candidate threshold
        feasible &= ok.any(axis=-1)
        total += np.take_along_axis(score, k[..., None], axis=-1)[..., 0]
        choice.append(k)
    # +inf is a candidate, so the window starting at rate 0 is always feasible; argmax keeps the first best.
    flat = int(np.argmax(np.where(feasible, total, -1)))
    best = int(total.reshape(-1)[flat])
    best_choice = [int(k.reshape(-1)[flat]) for k in choice]
    thresholds = cand[np.asarray(best_choice)]
    violation = max(float(np.ptp([c[r][k] for c, k in zip(curves, best_choice, strict=True)])) for r in rates)
    return GroupThresholds(groups, thresholds, violation, best / y.size)


def apply_group_thresholds(scores, sensitive_features, thresholds: GroupThresholds):
    """Predictions (int32 0/1) `scores >= threshold of the sample's group`; unseen groups raise ValueError."""
    if not isinstance(thresholds, GroupThresholds):
        raise ValueError(
            f"thresholds must be the GroupThresholds returned by fit_group_thresholds, got {type(thresholds).__name__}"
        )
    s = _as_1d(scores, "scores")
    groups, codes = _encode_groups(sensitive_features, s.size)
    index = {g: i for i, g in enumerate(thresholds.groups)}
    missing = [g for g in groups if g not in index]
    if missing:
        raise ValueError(f"sensitive_features has groups {missing} that the thresholds were not fitted on")
    per_sample = np.asarray([index[g] for g in groups], dtype=np.int32)[codes]
    return (jnp.asarray(s) >= jnp.asarray(thresholds.thresholds[per_sample], dtype=jnp.asarray(s).dtype)).astype(
        jnp.int32
    )
