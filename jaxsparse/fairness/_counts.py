"""Per-group confusion counts (jittable) and the host-side encoding of raw labels and sensitive values.

Everything downstream is a ratio of these integer counts, so batches and shards combine exactly by adding
`GroupCounts` leaf-wise (`jax.tree.map(operator.add, a, b)`) before any rate is formed.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse._checks import check_int

__all__ = ["GroupCounts", "group_counts", "selection_rate"]


class GroupCounts(NamedTuple):
    """Per-group counts, each an int32 array [num_groups]; sum two of them leaf-wise to merge batches.

    Attributes:
        n: Samples in the group.
        pred_pos: Predicted positives (the selection-rate numerator).
        tp: True positives.
        fp: False positives.
        fn: False negatives.
        tn: True negatives.
    """

    n: jax.Array
    pred_pos: jax.Array
    tp: jax.Array
    fp: jax.Array
    fn: jax.Array
    tn: jax.Array


def _is_traced(*xs) -> bool:
    return any(isinstance(x, jax.core.Tracer) for x in xs)


@functools.partial(jax.jit, static_argnames="num_groups")
def _group_counts(y_true, y_pred, sensitive, num_groups):
    t = jnp.asarray(y_true).astype(bool)
    p = jnp.asarray(y_pred).astype(bool)
    s = jnp.asarray(sensitive).astype(jnp.int32)

    # segment_sum drops ids outside [0, num_groups): the eager checks in `group_counts` catch those.
    def seg(mask):
        return jax.ops.segment_sum(mask.astype(jnp.int32), s, num_segments=num_groups)

    return GroupCounts(
        n=seg(jnp.ones_like(t)),
        pred_pos=seg(p),
        tp=seg(t & p),
        fp=seg(~t & p),
        fn=seg(t & ~p),
        tn=seg(~t & ~p),
    )


def group_counts(y_true, y_pred, sensitive, *, num_groups: int) -> GroupCounts:
    """Counts n, predicted positives, TP, FP, FN and TN per group; works under `jax.jit`.

    Args:
        y_true: 1-D array [N] of binary labels in {0, 1} (or bool); 1 is positive.
        y_pred: 1-D array [N] of binary predictions in {0, 1} (or bool).
        sensitive: 1-D int array [N] of group codes in [0, num_groups).
        num_groups: Static number of groups (fixes the output shape).

    Returns:
        `GroupCounts` of int32 arrays [num_groups].

    Raises:
        ValueError: On concrete inputs, if lengths differ, labels are outside {0, 1} or a code is outside
            [0, num_groups). Under `jax.jit` values cannot be checked: labels are read as `!= 0` and
            out-of-range codes are dropped.
    """
    num_groups = check_int(num_groups, "num_groups", minimum=1)
    arrays = {"y_true": y_true, "y_pred": y_pred, "sensitive": sensitive}
    shapes = {k: jnp.shape(v) for k, v in arrays.items()}
    for k, shape in shapes.items():
        if len(shape) != 1:
            raise ValueError(f"{k} must be 1-D, got shape {shape}")
    if len({s[0] for s in shapes.values()}) != 1:
        raise ValueError(f"y_true, y_pred and sensitive must have the same length, got {shapes}")
    if not _is_traced(y_true, y_pred, sensitive):
        for k in ("y_true", "y_pred"):
            bad = np.setdiff1d(np.unique(np.asarray(arrays[k])), [0, 1])
            if bad.size:
                raise ValueError(f"{k} must hold binary labels in {{0, 1}}, found {bad.tolist()}")
        s = np.asarray(sensitive)
        if not np.issubdtype(s.dtype, np.integer):
            raise ValueError(f"sensitive must hold integer group codes, got dtype {s.dtype}")
        if s.size and (s.min() < 0 or s.max() >= num_groups):
            raise ValueError(f"sensitive codes must be in [0, num_groups={num_groups}), got [{s.min()}, {s.max()}]")
    return _group_counts(y_true, y_pred, sensitive, num_groups)


class _DefaultPosLabel(int):
    """The int 1, distinguishable from an explicit `pos_label=1` (so the signature still reads `pos_label=1`)."""


_POS_LABEL_DEFAULT = _DefaultPosLabel(1)
_BINARY_SETS = (frozenset({0, 1}), frozenset({-1, 1}))


def _as_1d(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _binarize(arrays: dict, pos_label) -> dict:
    """Maps each label array to bool (== positive). Without `pos_label` the labels must be binary.

    fairlearn accepts {0, 1} or {-1, 1} when `pos_label` is None; anything else (e.g. multi-class) raises
    here instead of silently measuring "label 1" -- pass `pos_label=` for one-vs-rest.
    """
    if pos_label is None:
        union = set()
        for name, a in arrays.items():
            labels = set(np.unique(a).tolist())
            if not any(labels <= s for s in _BINARY_SETS):
                raise ValueError(
                    f"{name} has labels {sorted(labels)}, not a subset of {{0, 1}} or {{-1, 1}}; "
                    "pass pos_label= to measure one class against the rest"
                )
            union |= labels
        if not any(union <= s for s in _BINARY_SETS):
            raise ValueError(f"labels {sorted(union)} mix the {{0, 1}} and {{-1, 1}} conventions; pass pos_label=")
        pos_label = 1
    return {name: a == pos_label for name, a in arrays.items()}


def _encode_groups(sensitive_features, n: int, name: str = "sensitive_features"):
    """Host-side: sorted distinct groups (rows, for 2-D intersectional features) and int codes [N]."""
    s = np.asarray(sensitive_features)
    if s.ndim not in (1, 2) or s.shape[0] != n:
        raise ValueError(f"{name} must have shape [N] or [N, k] with N={n}, got {s.shape}")
    if s.ndim == 2:
        groups, codes = np.unique(s, axis=0, return_inverse=True)
        groups = [tuple(g.tolist()) for g in groups]
    else:
        groups, codes = np.unique(s, return_inverse=True)
        groups = groups.tolist()
    return groups, codes.reshape(-1).astype(np.int32)


def selection_rate(y_pred, *, pos_label=_POS_LABEL_DEFAULT):
    """Fraction of predictions equal to `pos_label` (fairlearn's `selection_rate`, without `y_true`).

    Args:
        y_pred: 1-D array [N] of predictions.
        pos_label: The positive label. Left at its default, `y_pred` must be binary ({0, 1} or {-1, 1});
            passing it explicitly (even `pos_label=1`) allows multi-class labels, one-vs-rest.

    Returns:
        A float (float64) on concrete input; a float32 scalar under `jax.jit` (no label checks there).

    Raises:
        ValueError: If `y_pred` is empty or not 1-D, or non-binary without an explicit `pos_label`.
    """
    if _is_traced(y_pred):
        return jnp.mean(jnp.asarray(y_pred) == pos_label)
    y = _as_1d(y_pred, "y_pred")
    if y.size == 0:
        raise ValueError("y_pred must not be empty")
    explicit = pos_label is not _POS_LABEL_DEFAULT
    (pos,) = _binarize({"y_pred": y}, pos_label if explicit else None).values()
    return float(np.count_nonzero(pos)) / y.size
