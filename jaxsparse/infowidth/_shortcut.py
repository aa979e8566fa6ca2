"""Shortcut monitoring with I(X; Z) (Adnan et al. 2022, arXiv 2206.13034; ICLR-24 extension "Detecting
shortcuts using mutual information").

A network that relies on a shortcut compresses its input more, so I(X; Z) along training (as a function of the
NTK time t) should be lower on a training set with a shortcut than on a clean one. Algorithm 1 of the paper
flags a shortcut when ``I(X_test; Z) < I(X_train; Z)``: the representation of the test data, where the shortcut
no longer predicts the label, carries less information than that of the training data.
"""

from collections.abc import Callable, Sequence

import numpy as np

from ._gp import fit_ensemble, predict_ensemble
from ._mi import mi_bounds

__all__ = ["add_patch_shortcut", "mi_curves", "shortcut_detected"]


def add_patch_shortcut(
    images,
    labels,
    *,
    image_shape: tuple[int, int] = (8, 8),
    positive_label: int = 1,
    correlation: float = 1.0,
    patch_size: int = 2,
    value: float = 1.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Adds a ``patch_size`` square of ``value`` in the top-left corner of some images.

    With probability ``correlation`` an image's patch follows the label (present iff ``label ==
    positive_label``); otherwise it is present with probability 1/2 independently of the label. So
    ``correlation=1`` is the training-set shortcut and ``correlation=0`` the uncorrelated test set.

    Args:
        images: ``(n, H*W)`` flattened or ``(n, H, W)`` images.
        labels: ``(n,)`` integer labels.
        image_shape: ``(H, W)`` for flattened images.
        positive_label: The label the patch marks.
        correlation: In [0, 1].
        patch_size: Side of the square patch, 1 <= patch_size <= min(H, W).
        value: Pixel value written into the patch.
        seed: Seed of the numpy generator deciding which images get a patch.

    Returns:
        ``(patched images with the input's shape, boolean (n,) mask of patched images)``.

    Raises:
        ValueError: On mismatched shapes or out-of-range arguments.
    """
    x = np.array(images, dtype=np.float64)
    y = np.asarray(labels)
    if x.ndim not in (2, 3) or x.shape[0] == 0:
        raise ValueError(f"images must have shape (n, H*W) or (n, H, W) with n >= 1, got {x.shape}")
    h, w = image_shape if x.ndim == 2 else x.shape[1:]
    if x.ndim == 2 and x.shape[1] != h * w:
        raise ValueError(f"flattened images have {x.shape[1]} pixels, image_shape {image_shape} needs {h * w}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must lie in [0, 1], got {correlation}")
    if not 1 <= patch_size <= min(h, w):
        raise ValueError(f"patch_size must lie in [1, {min(h, w)}], got {patch_size}")
    rng = np.random.default_rng(seed)
    follows = rng.random(x.shape[0]) < correlation
    has_patch = np.where(follows, y == positive_label, rng.random(x.shape[0]) < 0.5)
    view = x.reshape(x.shape[0], h, w)
    view[has_patch, :patch_size, :patch_size] = value
    return view.reshape(x.shape), has_patch


def shortcut_detected(mi_test: float, mi_train: float) -> bool:
    """Algorithm 1's rule: a shortcut is flagged when ``I(X_test; Z) < I(X_train; Z)``."""
    if not (np.isfinite(mi_test) and np.isfinite(mi_train)):
        raise ValueError(f"mi_test and mi_train must be finite, got {mi_test}, {mi_train}")
    return bool(mi_test < mi_train)


def mi_curves(
    kernel_fn: Callable,
    x_train,
    targets_train,
    x_test,
    targets_test,
    times: Sequence[float],
    *,
    mode: str = "ntk",
    diag_reg: float = 0.0,
    n_eval: int | None = None,
    num_samples: int = 4,
    seed: int = 0,
) -> dict:
    """I(X; Z) on training and test inputs, MSE losses and accuracies of the ensemble along training time.

    The ensemble is trained on all of ``x_train``; MI is estimated on the first ``n_eval`` training and the first
    ``n_eval`` test inputs, so both estimates use the same batch size (``I_NCE <= log n_eval`` for both).

    Args:
        kernel_fn: neural-tangents-style kernel function.
        x_train, targets_train: Training inputs and ``(N,)``/``(N, k)`` MSE targets.
        x_test, targets_test: Test inputs and targets.
        times: Training times (>= 0; ``inf`` needs ``diag_reg > 0``).
        mode, diag_reg: See :func:`fit_ensemble`.
        n_eval: Batch size for the MI estimates (default: min of the two set sizes); >= 2.
        num_samples: Draws per input for the MI bounds.
        seed: Seed of the MI sampling.

    Returns:
        A dict of equal-length lists keyed ``t``, ``train_mi_loo``/``train_mi_nce`` and ``test_mi_*`` (nats),
        their ``*_se``, ``train_loss``/``test_loss`` (MSE, 1/2 mean over targets) and ``train_acc``/``test_acc``.

    Raises:
        ValueError: On bad sizes or a zero-variance configuration (``t = inf`` with ``diag_reg = 0``).
    """
    times = [float(t) for t in times]
    if any(np.isinf(t) for t in times) and diag_reg == 0:
        raise ValueError("t = inf with diag_reg = 0 is refused: training-set variances are 0 and I_LOO is infinite")
    y_tr = np.asarray(targets_train, dtype=np.float64).reshape(np.shape(x_train)[0], -1)
    y_te = np.asarray(targets_test, dtype=np.float64).reshape(np.shape(x_test)[0], -1)
    n_eval = min(y_tr.shape[0], y_te.shape[0]) if n_eval is None else int(n_eval)
    if not 2 <= n_eval <= min(y_tr.shape[0], y_te.shape[0]):
        raise ValueError(f"n_eval must lie in [2, min(n_train, n_test)], got {n_eval}")
    fit = fit_ensemble(kernel_fn, x_train, y_tr, mode=mode, diag_reg=diag_reg)
    train_preds = predict_ensemble(fit, times)
    test_preds = predict_ensemble(fit, times, x_test)
    out: dict[str, list] = {key: [] for key in ("t", "train_loss", "test_loss", "train_acc", "test_acc")}
    for split in ("train", "test"):
        for est in ("loo", "nce"):
            out[f"{split}_mi_{est}"] = []
            out[f"{split}_mi_{est}_se"] = []
    for tr, te in zip(train_preds, test_preds, strict=True):
        out["t"].append(tr.t)
        for split, pred, y in (("train", tr, y_tr), ("test", te, y_te)):
            out[f"{split}_loss"].append(float(0.5 * np.mean((pred.mean - y) ** 2)))
            if y.shape[1] == 1:
                acc = np.mean((pred.mean[:, 0] > 0) == (y[:, 0] > 0))
            else:
                acc = np.mean(np.argmax(pred.mean, 1) == np.argmax(y, 1))
            out[f"{split}_acc"].append(float(acc))
            est = mi_bounds(pred.mean[:n_eval], pred.variance[:n_eval], num_samples=num_samples, seed=seed)
            out[f"{split}_mi_loo"].append(est.loo)
            out[f"{split}_mi_loo_se"].append(est.loo_se)
            out[f"{split}_mi_nce"].append(est.nce)
            out[f"{split}_mi_nce_se"].append(est.nce_se)
    return out
