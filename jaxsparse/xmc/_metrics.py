"""Extreme multi-label metrics (pyxclib conventions) and a streaming top-k that never builds [N, L] scores.

* `inverse_propensity`, `PROPENSITY_AB`: Jain et al. (2016) propensity weights w_l = 1 + C (N_l + B)^-A.
* `precision_at_k`, `ndcg_at_k`, `psp_at_k`, `psndcg_at_k`: P@k, nDCG@k, PSP@k and PSnDCG@k from top-k
  label indices (best first) and the true labels; as in pyxclib, propensity-scored metrics average their
  numerator and denominator over points separately before dividing.
* `XMCMetricAccumulator`: the same metrics accumulated over batches as sums and counts.
* `top_k_streaming`: top-k label indices from a chunked score function.
"""

from collections.abc import Callable, Sequence
from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp

__all__ = [
    "PROPENSITY_AB",
    "XMCMetricAccumulator",
    "inverse_propensity",
    "ndcg_at_k",
    "precision_at_k",
    "psndcg_at_k",
    "psp_at_k",
    "top_k_streaming",
]

# (A, B) of Jain et al. (2016) by dataset family, as in pyxclib's `compute_inv_propesity` docstring.
PROPENSITY_AB: dict[str, tuple[float, float]] = {"wikipedia": (0.5, 0.4), "amazon": (0.6, 2.6), "other": (0.55, 1.5)}


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_real(value, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def inverse_propensity(train_label_counts, num_train: int, *, A: float = 0.55, B: float = 1.5) -> np.ndarray:
    """Inverse propensity weights of Jain et al. (2016), as pyxclib's `compute_inv_propesity`.

    `w_l = 1 + C · (N_l + B)^(−A)` with `C = (ln N − 1) · (B + 1)^A`, where N_l is label l's training
    frequency and N the number of training points. For N >= 3 (so ln N > 1) every w_l >= 1, and w_l
    decreases as N_l grows. See `PROPENSITY_AB` for the usual (A, B) per dataset family.

    Args:
        train_label_counts: 1-D array [L] of non-negative label frequencies N_l (e.g.
            `MultiLabelDataset.label_counts`), each <= `num_train`.
        num_train: N (>= 1).
        A: Exponent A (> 0).
        B: Offset B (>= 0).

    Returns:
        float64 array [L] of weights.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    num_train = _check_int(num_train, "num_train", 1)
    A = _check_real(A, "A")
    B = _check_real(B, "B")
    if A <= 0:
        raise ValueError(f"A must be > 0, got {A}")
    if B < 0:
        raise ValueError(f"B must be >= 0, got {B}")
    counts = np.asarray(train_label_counts)
    if counts.ndim != 1 or not (np.issubdtype(counts.dtype, np.integer) or np.issubdtype(counts.dtype, np.floating)):
        raise ValueError(f"train_label_counts must be a 1-D real array, got {counts.dtype} {counts.shape}")
    counts = counts.astype(np.float64)
    if not np.all(np.isfinite(counts)) or np.any(counts < 0) or np.any(counts > num_train):
        raise ValueError(f"train_label_counts must be finite and in [0, num_train={num_train}]")
    c = (np.log(num_train) - 1.0) * (B + 1.0) ** A
    return 1.0 + c * (counts + B) ** (-A)


# --------------------------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------------------------


def _check_ks(ks) -> tuple[int, ...]:
    if isinstance(ks, Integral) and not isinstance(ks, bool | np.bool_):
        ks = (ks,)
    if not isinstance(ks, Sequence) or isinstance(ks, str) or not ks:
        raise ValueError(f"ks must be a non-empty sequence of positive ints, got {ks!r}")
    return tuple(_check_int(k, "ks", 1) for k in ks)


def _check_labels(true_labels, name: str = "true_labels") -> sp.csr_matrix:
    """Canonical binary CSR copy: sorted indices, no duplicates, no stored zeros."""
    if sp.issparse(true_labels):
        labels = sp.csr_matrix(true_labels, copy=True)
    else:
        dense = np.asarray(true_labels)
        if dense.ndim != 2 or dense.dtype == object:
            raise ValueError(f"{name} must be a 2-D sparse matrix or array, got shape {dense.shape}")
        labels = sp.csr_matrix(dense)
    if labels.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {labels.shape}")
    labels.sum_duplicates()
    labels.eliminate_zeros()
    return labels


def _check_top_k(top_k_indices, num_points: int, num_labels: int, min_k: int) -> np.ndarray:
    top_k = np.asarray(top_k_indices)
    if top_k.ndim != 2 or not np.issubdtype(top_k.dtype, np.integer):
        raise ValueError(f"top_k_indices must be a 2-D integer array, got {top_k.dtype} {top_k.shape}")
    if top_k.shape[0] != num_points:
        raise ValueError(f"top_k_indices must have one row per point ({num_points}), got {top_k.shape[0]}")
    if top_k.shape[1] < min_k:
        raise ValueError(f"top_k_indices must have at least max(ks) = {min_k} columns, got {top_k.shape[1]}")
    top_k = top_k[:, :min_k].astype(np.int64)
    if top_k.size and (top_k.min() < 0 or top_k.max() >= num_labels):
        raise ValueError(f"top_k_indices must lie in [0, num_labels={num_labels})")
    ordered = np.sort(top_k, axis=1)
    if np.any(ordered[:, 1:] == ordered[:, :-1]):
        raise ValueError("top_k_indices must not repeat a label within a row")
    return top_k


def _check_inv_prop(inv_prop, num_labels: int) -> np.ndarray:
    weights = np.asarray(inv_prop)
    if weights.shape != (num_labels,) or not (
        np.issubdtype(weights.dtype, np.floating) or np.issubdtype(weights.dtype, np.integer)
    ):
        raise ValueError(f"inv_prop must be a real array of shape ({num_labels},), got {weights.dtype} {weights.shape}")
    weights = weights.astype(np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("inv_prop must be finite and >= 0")
    return weights


# --------------------------------------------------------------------------------------------------------------
# Per-batch sums
# --------------------------------------------------------------------------------------------------------------


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def _batch_sums(top_k: np.ndarray, labels: sp.csr_matrix, ks: tuple[int, ...], weights: np.ndarray | None) -> dict:
    """Sums over the batch's points of each metric's per-point terms (see `XMCMetricAccumulator`)."""
    n, num_labels = labels.shape
    kmax = top_k.shape[1]
    counts = np.diff(labels.indptr)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    true_keys = rows * num_labels + labels.indices  # ascending: rows ascending, indices sorted in each row
    pred_keys = np.arange(n, dtype=np.int64)[:, None] * num_labels + top_k
    pos = np.searchsorted(true_keys, pred_keys)
    hits = true_keys[np.minimum(pos, true_keys.size - 1)] == pred_keys if true_keys.size else np.zeros_like(top_k, bool)

    disc = _discounts(kmax)
    ideal = np.cumsum(disc)  # ideal[j] = IDCG with j + 1 positives
    cum_hits = np.cumsum(hits, axis=1)
    dcg = np.cumsum(hits * disc, axis=1)
    sums: dict = {"points": n}
    for k in ks:
        sums[f"hits@{k}"] = int(cum_hits[:, k - 1].sum())
        idcg = ideal[np.clip(np.minimum(counts, k), 1, None) - 1]
        sums[f"ndcg@{k}"] = float(np.sum(np.where(counts > 0, dcg[:, k - 1] / idcg, 0.0)))
    if weights is None:
        return sums

    # Each point's true-label weights, sorted descending, in the first kmax columns of `best`.
    w_true = weights[labels.indices]
    order = np.lexsort((-w_true, rows))
    rank = np.arange(rows.size) - labels.indptr[rows[order]]
    keep = rank < kmax
    best = np.zeros((n, kmax), dtype=np.float64)
    best[rows[order][keep], rank[keep]] = w_true[order][keep]
    gained = np.where(hits, weights[top_k], 0.0)
    cum_gained, cum_best = np.cumsum(gained, axis=1), np.cumsum(best, axis=1)
    ps_dcg, best_dcg = np.cumsum(gained * disc, axis=1), np.cumsum(best * disc, axis=1)
    for k in ks:
        idcg = ideal[np.clip(np.minimum(counts, k), 1, None) - 1]
        sums[f"psp_num@{k}"] = float(cum_gained[:, k - 1].sum())
        sums[f"psp_den@{k}"] = float(cum_best[:, k - 1].sum())
        sums[f"psndcg_num@{k}"] = float(np.sum(ps_dcg[:, k - 1] / idcg))
        sums[f"psndcg_den@{k}"] = float(np.sum(best_dcg[:, k - 1] / idcg))
    return sums


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else 0.0


class XMCMetricAccumulator:
    """Accumulates P@k, nDCG@k and (given propensity weights) PSP@k and PSnDCG@k over batches.

    Every metric is kept as sums over points (and a point count), so `result()` after updates on any
    split of the points into batches equals the metric on all points at once (P@k exactly, the others up
    to float64 rounding of the sums). Per point i with positives y_i and top-k predictions p_1..p_k:

    * P@k: mean over points of |{j <= k: p_j in y_i}| / k (points without labels count as 0).
    * nDCG@k: mean over points of DCG@k / IDCG@k, DCG@k = sum_{j <= k, p_j in y_i} 1 / log2(j + 1) and
      IDCG@k the DCG of min(k, |y_i|) hits; 0 for a point without labels.
    * PSP@k: sum over points of sum_{j <= k, p_j in y_i} w_{p_j}, divided by the sum over points of the
      k largest w_l, l in y_i (pyxclib's ratio of averages); <= 1.
    * PSnDCG@k: as pyxclib: sum over points of PS-DCG@k / IDCG@k divided by the same with the best
      achievable PS-DCG@k (weights sorted descending); <= 1.

    A ratio whose denominator is 0 (no point has a label) reads 0.
    """

    def __init__(self, ks: Sequence[int] = (1, 3, 5), inv_prop=None):
        """Creates an empty accumulator.

        Args:
            ks: The cut-offs k (positive ints).
            inv_prop: Optional propensity weights [L] (finite, >= 0); when given, PSP@k and PSnDCG@k are
                reported too.

        Raises:
            ValueError: If an argument is invalid (the message names it).
        """
        self.ks = _check_ks(ks)
        self._weights = None
        if inv_prop is not None:
            shape = np.shape(inv_prop)
            if len(shape) != 1:
                raise ValueError(f"inv_prop must be a 1-D array of propensity weights, got shape {shape}")
            self._weights = _check_inv_prop(inv_prop, shape[0])
        self._num_labels = None if self._weights is None else self._weights.size
        self._sums: dict | None = None

    @property
    def num_points(self) -> int:
        """Number of points seen so far."""
        return 0 if self._sums is None else self._sums["points"]

    def update(self, top_k, true_labels) -> None:
        """Adds a batch.

        Args:
            top_k: Integer array [n, K] (numpy or JAX), K >= max(ks): each point's predicted labels, best
                first, no label repeated in a row; only the first max(ks) columns are used.
            true_labels: The batch's labels [n, L]: scipy sparse or a dense array (non-zero = positive).

        Raises:
            ValueError: If an argument is invalid or L differs from earlier batches / `inv_prop`.
        """
        labels = _check_labels(true_labels)
        num_labels = labels.shape[1]
        if self._num_labels is not None and num_labels != self._num_labels:
            raise ValueError(f"true_labels must have {self._num_labels} columns, got {num_labels}")
        top = _check_top_k(top_k, labels.shape[0], num_labels, max(self.ks))
        sums = _batch_sums(top, labels, self.ks, self._weights)
        self._num_labels = num_labels
        if self._sums is None:
            self._sums = sums
        else:
            for key, value in sums.items():
                self._sums[key] += value

    def result(self) -> dict[str, float]:
        """The metrics so far: keys `P@k`, `nDCG@k` and, with weights, `PSP@k` and `PSnDCG@k`.

        Raises:
            ValueError: If no point has been added.
        """
        if not self.num_points:
            raise ValueError("no points: call update() with a non-empty batch first")
        s, n = self._sums, self._sums["points"]
        out = {}
        for k in self.ks:
            out[f"P@{k}"] = s[f"hits@{k}"] / (k * n)
        for k in self.ks:
            out[f"nDCG@{k}"] = s[f"ndcg@{k}"] / n
        if self._weights is not None:
            for k in self.ks:
                out[f"PSP@{k}"] = _ratio(s[f"psp_num@{k}"], s[f"psp_den@{k}"])
            for k in self.ks:
                out[f"PSnDCG@{k}"] = _ratio(s[f"psndcg_num@{k}"], s[f"psndcg_den@{k}"])
        return out


def _one_shot(top_k_indices, true_labels_csr, inv_prop, ks, name: str) -> dict[int, float]:
    ks = _check_ks(ks)
    labels = _check_labels(true_labels_csr, "true_labels_csr")
    if inv_prop is not None:
        _check_inv_prop(inv_prop, labels.shape[1])
    acc = XMCMetricAccumulator(ks, inv_prop)
    acc.update(top_k_indices, labels)
    result = acc.result()
    return {k: result[f"{name}@{k}"] for k in ks}


def precision_at_k(top_k_indices, true_labels_csr, ks: Sequence[int] = (1, 3, 5)) -> dict[int, float]:
    """Precision at k, averaged over points (see `XMCMetricAccumulator` for the definition).

    Args:
        top_k_indices: Integer array [N, K], K >= max(ks): predicted labels per point, best first.
        true_labels_csr: Labels [N, L], scipy sparse (or dense; non-zero = positive).
        ks: Cut-offs (positive ints).

    Returns:
        `{k: P@k}`.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    return _one_shot(top_k_indices, true_labels_csr, None, ks, "P")


def ndcg_at_k(top_k_indices, true_labels_csr, ks: Sequence[int] = (1, 3, 5)) -> dict[int, float]:
    """nDCG at k, averaged over points (see `XMCMetricAccumulator` for the definition).

    Args:
        top_k_indices: Integer array [N, K], K >= max(ks): predicted labels per point, best first.
        true_labels_csr: Labels [N, L], scipy sparse (or dense; non-zero = positive).
        ks: Cut-offs (positive ints).

    Returns:
        `{k: nDCG@k}`.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    return _one_shot(top_k_indices, true_labels_csr, None, ks, "nDCG")


def psp_at_k(top_k_indices, true_labels_csr, inv_prop, ks: Sequence[int] = (1, 3, 5)) -> dict[int, float]:
    """Propensity-scored precision at k (pyxclib's `psprecision`; see `XMCMetricAccumulator`).

    Args:
        top_k_indices: Integer array [N, K], K >= max(ks): predicted labels per point, best first.
        true_labels_csr: Labels [N, L], scipy sparse (or dense; non-zero = positive).
        inv_prop: Propensity weights [L] (e.g. `inverse_propensity(...)`), finite and >= 0.
        ks: Cut-offs (positive ints).

    Returns:
        `{k: PSP@k}`, each in [0, 1].

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    if inv_prop is None:
        raise ValueError("inv_prop must be an array of propensity weights, got None")
    return _one_shot(top_k_indices, true_labels_csr, inv_prop, ks, "PSP")


def psndcg_at_k(top_k_indices, true_labels_csr, inv_prop, ks: Sequence[int] = (1, 3, 5)) -> dict[int, float]:
    """Propensity-scored nDCG at k (pyxclib's `psndcg`; see `XMCMetricAccumulator`).

    Args:
        top_k_indices: Integer array [N, K], K >= max(ks): predicted labels per point, best first.
        true_labels_csr: Labels [N, L], scipy sparse (or dense; non-zero = positive).
        inv_prop: Propensity weights [L], finite and >= 0.
        ks: Cut-offs (positive ints).

    Returns:
        `{k: PSnDCG@k}`, each in [0, 1].

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    if inv_prop is None:
        raise ValueError("inv_prop must be an array of propensity weights, got None")
    return _one_shot(top_k_indices, true_labels_csr, inv_prop, ks, "PSnDCG")


# --------------------------------------------------------------------------------------------------------------
# Streaming top-k
# --------------------------------------------------------------------------------------------------------------


def _sorted_top(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k (score, id) pairs with the largest scores, ties by lower id, sorted that way."""
    order = np.lexsort((ids, -scores), axis=-1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def _chunk_top(scores: np.ndarray, offset: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (descending, ties by lower index) of a [p, l] score chunk whose column 0 is label `offset`."""
    p, width = scores.shape
    if width > k:
        # Keep every score above the k-th largest, then the lowest-indexed ones equal to it: k per row.
        negated = -scores
        negated.partition(k - 1, axis=1)
        threshold = -negated[:, k - 1 : k]
        del negated
        keep = scores > threshold
        tied = scores == threshold
        room = k - keep.sum(axis=1)
        keep |= tied
        crowded = np.flatnonzero(tied.sum(axis=1) > room)  # more ties than free slots: lowest indices win
        if crowded.size:
            tied_c = tied[crowded]
            keep[crowded] &= ~tied_c | (np.cumsum(tied_c, axis=1) <= room[crowded, None])
        ids = np.nonzero(keep)[1].reshape(p, k)
        scores = np.take_along_axis(scores, ids, axis=1)
    else:
        ids = np.broadcast_to(np.arange(width), (p, width))
    return _sorted_top(scores, ids.astype(np.int64) + offset, min(k, width))


def top_k_streaming(
    score_fn: Callable,
    num_points: int,
    num_labels: int,
    k: int,
    *,
    label_chunk: int = 65536,
    point_chunk: int = 1024,
) -> np.ndarray:
    """Top-k label indices of every point without materialising the [N, L] score matrix.

    Points are processed `point_chunk` at a time; for each block, labels `label_chunk` at a time: the
    block's scores `score_fn(point_slice, label_slice)` are reduced to their top-k and merged into a running
    top-k, so memory is O(point_chunk · (label_chunk + k)). The order is descending score, ties broken by
    the lower label index (the same as a stable argsort of the negated full score matrix).

    Args:
        score_fn: `score_fn(point_slice, label_slice) -> [p, l]` array (numpy or JAX) of real scores for
            points `range(N)[point_slice]` and labels `range(L)[label_slice]` (both Python `slice`s with
            step 1); NaN is not allowed (±inf is).
        num_points: N (>= 0).
        num_labels: L (>= 1).
        k: Number of labels per point, in [1, L].
        label_chunk: Labels per score call (>= 1).
        point_chunk: Points per score call (>= 1).

    Returns:
        int32 array [N, k].

    Raises:
        ValueError: If an argument is invalid (the message names it), or `score_fn` returns the wrong
            shape, a non-real dtype or NaN.
    """
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable, got {type(score_fn).__name__}")
    num_points = _check_int(num_points, "num_points", 0)
    num_labels = _check_int(num_labels, "num_labels", 1)
    k = _check_int(k, "k", 1)
    if k > num_labels:
        raise ValueError(f"k must be <= num_labels={num_labels}, got {k}")
    label_chunk = _check_int(label_chunk, "label_chunk", 1)
    point_chunk = _check_int(point_chunk, "point_chunk", 1)
    out = np.empty((num_points, k), dtype=np.int32)
    for p0 in range(0, num_points, point_chunk):
        p1 = min(p0 + point_chunk, num_points)
        best_scores = best_ids = None
        for l0 in range(0, num_labels, label_chunk):
            l1 = min(l0 + label_chunk, num_labels)
            scores = np.asarray(score_fn(slice(p0, p1), slice(l0, l1)))
            if scores.shape != (p1 - p0, l1 - l0):
                raise ValueError(
                    f"score_fn must return shape {(p1 - p0, l1 - l0)} for points {p0}:{p1}, labels {l0}:{l1}; "
                    f"got {scores.shape}"
                )
            if scores.dtype.kind not in "iuf" and not (scores.dtype.kind == "V" and "float" in scores.dtype.name):
                raise ValueError(f"score_fn must return real scores, got dtype {scores.dtype}")
            if scores.dtype.kind != "f" or scores.dtype.itemsize < 4:
                scores = scores.astype(np.float64)  # exact for (b)float16 and small ints; ties stay ties
            if np.isnan(scores).any():
                raise ValueError(f"score_fn returned NaN for points {p0}:{p1}, labels {l0}:{l1}")
            chunk_scores, chunk_ids = _chunk_top(scores, l0, k)
            chunk_scores = chunk_scores.astype(np.float64)  # merged in float64: exact for any float32 scores
            if best_scores is None:
                best_scores, best_ids = chunk_scores, chunk_ids
            else:
                best_scores, best_ids = _sorted_top(
                    np.concatenate([best_scores, chunk_scores], axis=1),
                    np.concatenate([best_ids, chunk_ids], axis=1),
                    k,
                )
        out[p0:p1] = best_ids
    return out
