"""The input-compression bound (Galloway et al., TMLR 2023, arXiv 2207.09408) and a one-call sweep report.

With probability at least ``1 - delta`` over ``N`` training samples (Shwartz-Ziv, Painsky & Tishby 2018)::

    GE <= ICB = sqrt((2 ** I(X; Z) + log(1 / delta)) / (2 N))

with ``I(X; Z)`` in **bits** (``2**I`` counts the epsilon-partition cells and replaces ``log |H|`` of the
finite-class bound) and ``log`` natural. ``GE`` = train accuracy - test accuracy under 0-1 loss. The bound is
informative for a binary task (``ICB < 0.5``) iff ``2**I + log(1/delta) < N / 2``.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from ._gp import fit_ensemble, predict_ensemble
from ._mi import mi_bounds

__all__ = [
    "ICBModel",
    "encode_targets",
    "icb_report",
    "informativeness_threshold_bits",
    "input_compression_bound",
    "is_informative",
    "predict_labels",
]


def _check_n_delta(n, delta) -> tuple[int, float]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (number of training samples) must be an int >= 1, got {n!r}")
    if not isinstance(delta, (int, float, np.floating)) or not 0.0 < float(delta) < 1.0:
        raise ValueError(f"delta must lie in the open interval (0, 1), got {delta!r}")
    return int(n), float(delta)


def input_compression_bound(mi_bits, n: int, delta: float = 0.05):
    """``sqrt((2**mi_bits + ln(1/delta)) / (2 n))``; a float for a scalar ``mi_bits``, else an array.

    Raises:
        ValueError: ``n < 1``, ``delta`` outside (0, 1), or a negative / NaN ``mi_bits``.

    Example:
        >>> round(input_compression_bound(5.0, 1000), 4)
        0.1323
    """
    n, delta = _check_n_delta(n, delta)
    mi = np.asarray(mi_bits, dtype=np.float64)
    if np.any(np.isnan(mi)) or np.any(mi < 0):
        raise ValueError(f"mi_bits must be >= 0 (bits), got {mi_bits!r}")
    with np.errstate(over="ignore"):
        icb = np.sqrt((np.exp2(mi) + math.log(1.0 / delta)) / (2.0 * n))
    return float(icb) if icb.ndim == 0 else icb


def informativeness_threshold_bits(n: int, delta: float = 0.05) -> float:
    """Largest I (bits) with ICB < 0.5: ``log2(n / 2 - ln(1/delta))``; ``-inf`` if no I qualifies."""
    n, delta = _check_n_delta(n, delta)
    room = n / 2.0 - math.log(1.0 / delta)
    return math.log2(room) if room > 0 else -math.inf


def is_informative(mi_bits: float, n: int, delta: float = 0.05) -> bool:
    """True iff the bound is non-vacuous for a binary task, i.e. ``ICB < 0.5``."""
    return bool(input_compression_bound(mi_bits, n, delta) < 0.5)


@dataclasses.dataclass(frozen=True)
class ICBModel:
    """One point of a sweep: a kernel (architecture + hyper-parameters), the ensemble mode and regulariser."""

    name: str
    kernel_fn: Callable = dataclasses.field(repr=False, compare=False)
    mode: str = "ntk"
    diag_reg: float = 0.0

    def __post_init__(self):
        if not callable(self.kernel_fn):
            raise TypeError(f"ICBModel {self.name!r}: kernel_fn must be callable")
        if self.mode not in ("ntk", "nngp"):
            raise ValueError(f"ICBModel {self.name!r}: mode must be 'ntk' or 'nngp', got {self.mode!r}")
        if not np.isfinite(self.diag_reg) or self.diag_reg < 0:
            raise ValueError(f"ICBModel {self.name!r}: diag_reg must be >= 0, got {self.diag_reg!r}")


def encode_targets(labels, num_classes: int) -> np.ndarray:
    """MSE targets: ``+-1`` column for 2 classes, centred one-hot (``onehot - 1/C``) for more."""
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got dtype {y.dtype} shape {y.shape}")
    if num_classes < 2 or y.min(initial=0) < 0 or y.max(initial=0) >= num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes}) with num_classes >= 2")
    if num_classes == 2:
        return (2.0 * y - 1.0)[:, None]
    return np.eye(num_classes)[y] - 1.0 / num_classes


def predict_labels(mean: np.ndarray) -> np.ndarray:
    """Class decisions from ensemble means encoded by :func:`encode_targets`."""
    mean = np.asarray(mean)
    return (mean[:, 0] > 0).astype(np.int64) if mean.shape[1] == 1 else np.argmax(mean, axis=1)


def icb_report(
    x_train,
    y_train,
    x_test,
    y_test,
    models: Sequence[ICBModel],
    times: Sequence[float],
    *,
    delta: float = 0.05,
    num_samples: int = 4,
    seed: int = 0,
    num_classes: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """For every model and time: the GP predictor's accuracies, the gap, I(X; Z) and the ICB.

    ``I(X; Z)`` is estimated on the training set (reference §2) from the ensemble's ``p(z | x_i)``; the bound
    uses the leave-one-out (upper) estimate in bits. The GP predictor is the ensemble mean.

    Args:
        x_train, y_train, x_test, y_test: A classification task (integer labels).
        models: The sweep (architectures / hyper-parameters / modes / regularisers).
        times: Training times (``math.inf`` allowed only with ``diag_reg > 0``).
        delta: Confidence parameter in (0, 1).
        num_samples: Draws per input for the MI bounds.
        seed: Seed of the MI sampling.
        num_classes: Defaults to ``max(label) + 1`` over train and test.
        progress: Optional callback receiving a short message per model.

    Returns:
        ``{"rows": [...], "n": N, "delta": delta, "threshold_bits": ..., "fraction_holds": ...,
        "best": row of highest test accuracy}``.

    Raises:
        ValueError: Bad shapes, ``delta``, times, or a model with ``t = inf`` and ``diag_reg = 0``, whose
            training-set variance is exactly zero (I_LOO infinite): the report refuses it.
    """
    y_tr = np.asarray(y_train)
    y_te = np.asarray(y_test)
    n = int(np.shape(x_train)[0]) if np.ndim(x_train) else 0
    n, delta = _check_n_delta(n, delta)
    if y_tr.shape != (n,):
        raise ValueError(f"y_train must have shape ({n},) to match x_train, got {y_tr.shape}")
    if np.ndim(x_test) == 0 or y_te.shape != (np.shape(x_test)[0],):
        raise ValueError(f"y_test must have shape (n_test,) to match x_test, got {y_te.shape}")
    if not models:
        raise ValueError("models must hold at least one ICBModel")
    times = [float(t) for t in times]
    if not times or any(math.isnan(t) or t < 0 for t in times):
        raise ValueError(f"times must be a non-empty sequence of numbers >= 0, got {times}")
    for m in models:
        if not isinstance(m, ICBModel):
            raise TypeError(f"models must be ICBModel instances, got {type(m).__name__}")
        if m.diag_reg == 0 and math.isinf(max(times)):
            raise ValueError(
                f"model {m.name!r}: t = inf with diag_reg = 0 is refused: the ensemble interpolates, its "
                "variance on training inputs is exactly 0 and I_LOO is infinite; use a finite t or diag_reg > 0"
            )
    c = int(num_classes) if num_classes is not None else int(max(y_tr.max(), y_te.max())) + 1
    targets = encode_targets(y_tr, c)
    threshold = informativeness_threshold_bits(n, delta)
    rows = []
    for m in models:
        if progress is not None:
            progress(m.name)
        fit = fit_ensemble(m.kernel_fn, x_train, targets, mode=m.mode, diag_reg=m.diag_reg)
        train_preds = predict_ensemble(fit, times)
        test_preds = predict_ensemble(fit, times, x_test)
        for tr, te in zip(train_preds, test_preds, strict=True):
            train_acc = float(np.mean(predict_labels(tr.mean) == y_tr))
            test_acc = float(np.mean(predict_labels(te.mean) == y_te))
            try:
                est = mi_bounds(tr.mean, tr.variance, num_samples=num_samples, seed=seed)
            except ValueError as err:
                raise ValueError(f"model {m.name!r} at t={tr.t:g}: {err}") from err
            icb = input_compression_bound(max(est.loo_bits, 0.0), n, delta)
            gap = train_acc - test_acc
            rows.append(
                {
                    "model": m.name,
                    "mode": m.mode,
                    "diag_reg": m.diag_reg,
                    "t": tr.t,
                    "train_acc": train_acc,
                    "test_acc": test_acc,
                    "gap": gap,
                    "mi_loo_bits": est.loo_bits,
                    "mi_loo_se_bits": est.loo_se_bits,
                    "mi_nce_bits": est.nce_bits,
                    "mi_nce_se_bits": est.nce_se_bits,
                    "icb": icb,
                    "holds": bool(gap <= icb),
                    "informative": bool(est.loo_bits < threshold),
                }
            )
    best = max(rows, key=lambda r: (r["test_acc"], -r["icb"]))
    return {
        "rows": rows,
        "n": n,
        "delta": delta,
        "threshold_bits": threshold,
        "fraction_holds": float(np.mean([r["holds"] for r in rows])),
        "best": best,
    }
