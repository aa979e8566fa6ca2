"""Tests for the scikit-learn-bundled splits: sizes, determinism, stratification, leakage, scaling."""

import hashlib
import math

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from jaxsparse.data import Split, load_breast_cancer_split, load_digits_split

N_DIGITS = 1797
N_CANCER = 569


def _row_hashes(x: np.ndarray) -> list[str]:
    x = np.ascontiguousarray(x.reshape(x.shape[0], -1))
    return [hashlib.sha1(row.tobytes()).hexdigest() for row in x]


def _parts(split: Split):
    parts = [(split.x_train, split.y_train), (split.x_test, split.y_test)]
    if split.has_val:
        parts.append((split.x_val, split.y_val))
    return parts


def _assert_same(a: Split, b: Split):
    for (xa, ya), (xb, yb) in zip(_parts(a), _parts(b), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.parametrize("loader", [load_digits_split, load_breast_cancer_split])
@pytest.mark.parametrize(("test_fraction", "val_fraction"), [(0.2, 0.0), (0.25, 0.15)])
def test_sizes_dtypes_and_determinism(loader, test_fraction, val_fraction):
    n = N_DIGITS if loader is load_digits_split else N_CANCER
    split = loader(seed=3, test_fraction=test_fraction, val_fraction=val_fraction)
    n_test = math.ceil(test_fraction * n)
    n_val = math.ceil(val_fraction * n) if val_fraction else 0
    assert split.x_test.shape[0] == split.y_test.shape[0] == n_test
    assert split.x_train.shape[0] == split.y_train.shape[0] == n - n_test - n_val
    if n_val:
        assert split.has_val and split.x_val.shape[0] == split.y_val.shape[0] == n_val
    else:
        assert not split.has_val and split.x_val is None and split.y_val is None
    for x, y in _parts(split):
        assert x.dtype == np.float32 and y.dtype == np.int32
        assert x.shape[1:] == split.input_shape
        assert y.min() >= 0 and y.max() < split.num_classes
    _assert_same(split, loader(seed=3, test_fraction=test_fraction, val_fraction=val_fraction))
    other = loader(seed=4, test_fraction=test_fraction, val_fraction=val_fraction)
    assert not np.array_equal(split.y_test, other.y_test) or not np.array_equal(split.x_test, other.x_test)
    assert not np.array_equal(split.x_train, other.x_train)


@pytest.mark.parametrize(
    ("loader", "raw"), [(load_digits_split, load_digits), (load_breast_cancer_split, load_breast_cancer)]
)
def test_stratified_and_disjoint(loader, raw):
    full = raw()
    assert np.unique(full.data, axis=0).shape[0] == full.data.shape[0]  # so row hashes identify rows
    totals = np.bincount(full.target)
    n = totals.sum()
    split = loader(seed=1, test_fraction=0.2, val_fraction=0.1)
    assert split.num_classes == totals.size
    for _, y in _parts(split):
        counts = np.bincount(y, minlength=totals.size)
        expected = totals * (y.shape[0] / n)
        assert np.all(np.abs(counts - expected) <= 1.0), (counts, expected)
    hashes = [set(_row_hashes(x)) for x, _ in _parts(split)]
    sizes = [x.shape[0] for x, _ in _parts(split)]
    assert [len(h) for h in hashes] == sizes  # no duplicated row inside a part
    assert not hashes[0] & hashes[1] and not hashes[0] & hashes[2] and not hashes[1] & hashes[2]
    assert sum(sizes) == n


def test_digits_images_and_scaling():
    flat = load_digits_split(seed=0)
    assert flat.input_shape == (64,) and flat.num_classes == 10
    assert flat.x_train.min() >= 0.0 and flat.x_train.max() <= 1.0 and flat.x_train.max() == 1.0
    images = load_digits_split(seed=0, flatten=False)
    assert images.input_shape == (8, 8, 1) and images.x_train.shape[1:] == (8, 8, 1)
    np.testing.assert_array_equal(images.x_train.reshape(-1, 64), flat.x_train)
    raw = load_digits_split(seed=0, normalize=False)
    np.testing.assert_allclose(raw.x_train / 16.0, flat.x_train)
    # The rows match scikit-learn's own data, labels included.
    full = load_digits()
    lookup = dict(zip(_row_hashes(full.data.astype(np.float32)), full.target, strict=True))
    assert all(lookup[h] == label for h, label in zip(_row_hashes(raw.x_test), raw.y_test, strict=True))


def test_breast_cancer_standardized_with_train_statistics():
    split = load_breast_cancer_split(seed=2, val_fraction=0.1)
    assert split.input_shape == (30,) and split.num_classes == 2
    np.testing.assert_allclose(split.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(split.x_train.std(axis=0), 1.0, atol=1e-5)
    # Independent check: the same split unstandardized, standardized here with plain numpy.
    raw = load_breast_cancer_split(seed=2, val_fraction=0.1, standardize=False)
    np.testing.assert_array_equal(raw.y_train, split.y_train)
    train = raw.x_train.astype(np.float64)
    mean, std = train.mean(axis=0), train.std(axis=0)
    for x_raw, x_std in ((raw.x_test, split.x_test), (raw.x_val, split.x_val)):
        np.testing.assert_allclose(x_std, (x_raw - mean) / std, rtol=1e-4, atol=1e-4)
    # The test part is NOT standardized by its own statistics.
    assert np.abs(split.x_test.mean(axis=0)).max() > 1e-3
    full = load_breast_cancer().data
    assert {*_row_hashes(raw.x_train)} <= {*_row_hashes(full.astype(np.float32))}


@pytest.mark.parametrize("loader", [load_digits_split, load_breast_cancer_split])
@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"seed": True}, "seed"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": "0.2"}, "test_fraction"),
        ({"test_fraction": float("nan")}, "test_fraction"),
        ({"val_fraction": -0.1}, "val_fraction"),
        ({"test_fraction": 0.6, "val_fraction": 0.5}, "val_fraction"),
        ({"test_fraction": 0.001}, "test_fraction"),
    ],
)
def test_bad_arguments(loader, kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        loader(**kwargs)


def test_bad_flags():
    with pytest.raises(ValueError, match="flatten"):
        load_digits_split(flatten="no")
    with pytest.raises(ValueError, match="normalize"):
        load_digits_split(normalize=1)
    with pytest.raises(ValueError, match="standardize"):
        load_breast_cancer_split(standardize=None)


def test_split_is_frozen():
    split = load_breast_cancer_split()
    with pytest.raises(AttributeError):
        split.x_train = None
