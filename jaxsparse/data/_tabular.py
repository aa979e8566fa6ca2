"""Small real datasets bundled with scikit-learn (no download), split deterministically and stratified."""

import dataclasses
import math

import numpy as np

from jaxsparse._checks import check_bool, check_fraction, check_seed

__all__ = ["Split", "load_breast_cancer_split", "load_digits_split"]


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """A train/test (and optional validation) split of an in-memory dataset.

    Attributes:
        x_train: Training inputs, float32, shape `(n_train, *input_shape)`.
        y_train: Training labels, int32, shape `(n_train,)`.
        x_test: Test inputs, float32, shape `(n_test, *input_shape)`.
        y_test: Test labels, int32, shape `(n_test,)`.
        num_classes: Number of distinct labels; labels lie in `[0, num_classes)`.
        input_shape: Shape of one example, e.g. `(64,)` or `(8, 8, 1)`.
        x_val: Validation inputs, or None when no validation split was requested.
        y_val: Validation labels, or None when no validation split was requested.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple[int, ...]
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None

    @property
    def has_val(self) -> bool:
        """Whether the split carries a validation part."""
        return self.x_val is not None


def _split_indices(
    y: np.ndarray, *, seed: int, test_fraction: float, val_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Stratified train/test(/val) row indices via scikit-learn's `train_test_split`.

    The test part holds `ceil(test_fraction * n)` rows and the validation part `ceil(val_fraction * n)`,
    both fractions of the whole dataset.
    """
    from sklearn.model_selection import train_test_split  # lazy: scikit-learn is slow to import

    n = y.shape[0]
    num_classes = np.unique(y).size
    n_test = math.ceil(test_fraction * n)
    n_val = math.ceil(val_fraction * n) if val_fraction > 0 else 0
    if n_test < num_classes:
        raise ValueError(
            f"test_fraction={test_fraction} gives {n_test} test rows, fewer than the {num_classes} classes"
        )
    if n_val and n_val < num_classes:
        raise ValueError(
            f"val_fraction={val_fraction} gives {n_val} validation rows, fewer than the {num_classes} classes"
        )
    if n - n_test - n_val < num_classes:
        raise ValueError(
            f"test_fraction + val_fraction = {test_fraction + val_fraction} leaves {n - n_test - n_val} "
            f"training rows, fewer than the {num_classes} classes"
        )
    rows = np.arange(n)
    rest, test = train_test_split(rows, test_size=n_test, stratify=y, random_state=seed)
    if not n_val:
        return rest, test, None
    train, val = train_test_split(rest, test_size=n_val, stratify=y[rest], random_state=seed)
    return train, test, val


def _check_split_args(seed, test_fraction, val_fraction) -> tuple[int, float, float]:
    seed = check_seed(seed)
    test_fraction = check_fraction(test_fraction, "test_fraction", allow_zero=False)
    val_fraction = check_fraction(val_fraction, "val_fraction", allow_zero=True)
    if test_fraction + val_fraction >= 1.0:
        raise ValueError(
            f"test_fraction + val_fraction must be < 1, got test_fraction={test_fraction}, val_fraction={val_fraction}"
        )
    return seed, test_fraction, val_fraction


def _make_split(x: np.ndarray, y: np.ndarray, train, test, val) -> Split:
    return Split(
        x_train=x[train],
        y_train=y[train],
        x_test=x[test],
        y_test=y[test],
        num_classes=int(np.unique(y).size),
        input_shape=tuple(int(d) for d in x.shape[1:]),
        x_val=None if val is None else x[val],
        y_val=None if val is None else y[val],
    )


def load_digits_split(
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    flatten: bool = True,
    normalize: bool = True,
) -> Split:
    """Loads scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), split stratified.

    Nothing is downloaded: the data ships inside scikit-learn. The split is a deterministic function of
    the arguments (scikit-learn's `train_test_split` with `stratify` and `random_state=seed`).

    Args:
        seed: Non-negative int seeding the split.
        test_fraction: Fraction of all rows in the test part, in (0, 1); rounded up to whole rows.
        val_fraction: Fraction of all rows in the validation part, in [0, 1); 0 gives no validation part.
        flatten: If True inputs have shape `(64,)`; otherwise `(8, 8, 1)` (NHWC, for CNNs).
        normalize: If True pixels are divided by 16 into [0, 1]; otherwise the raw 0..16 values.

    Returns:
        A `Split` with float32 inputs and int32 labels in [0, 10).

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    seed, test_fraction, val_fraction = _check_split_args(seed, test_fraction, val_fraction)
    flatten = check_bool(flatten, "flatten")
    normalize = check_bool(normalize, "normalize")
    from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float32)
    if normalize:
        x = x / np.float32(16.0)
    if not flatten:
        x = x.reshape(-1, 8, 8, 1)
    y = np.asarray(bunch.target, dtype=np.int32)
    train, test, val = _split_indices(y, seed=seed, test_fraction=test_fraction, val_fraction=val_fraction)
    return _make_split(x, y, train, test, val)


def load_breast_cancer_split(
    *,
    seed: int = 0,
    test_fraction: float = 0.2,
    val_fraction: float = 0.0,
    standardize: bool = True,
) -> Split:
    """Loads scikit-learn's bundled Wisconsin breast-cancer table (569 rows, 30 features, 2 classes).

    Nothing is downloaded. The split is stratified and deterministic, as in `load_digits_split`. With
    `standardize`, every part is shifted and scaled by the per-feature mean and (population) standard
    deviation of the TRAINING rows only, so no test or validation statistics leak into the inputs.

    Args:
        seed: Non-negative int seeding the split.
        test_fraction: Fraction of all rows in the test part, in (0, 1); rounded up to whole rows.
        val_fraction: Fraction of all rows in the validation part, in [0, 1); 0 gives no validation part.
        standardize: Whether to standardize features with the training statistics.

    Returns:
        A `Split` with float32 inputs of shape `(30,)` and int32 labels (0 malignant, 1 benign).

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    seed, test_fraction, val_fraction = _check_split_args(seed, test_fraction, val_fraction)
    standardize = check_bool(standardize, "standardize")
    from sklearn.datasets import load_breast_cancer  # lazy: scikit-learn is slow to import

    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int32)
    train, test, val = _split_indices(y, seed=seed, test_fraction=test_fraction, val_fraction=val_fraction)
    if standardize:
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std = np.where(std > 0, std, 1.0)  # a constant feature stays put instead of dividing by zero
        x = (x - mean) / std
    return _make_split(x.astype(np.float32), y, train, test, val)
