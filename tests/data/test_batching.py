"""Tests for deterministic minibatch iteration."""

import numpy as np
import pytest

from jaxsparse.data import iterate_minibatches, num_batches


def _data(n=23):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int32)
    return x, y


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_remainder", [True, False])
def test_epoch_covers_rows_once(shuffle, drop_remainder):
    x, y = _data()
    batches = list(iterate_minibatches(x, y, batch_size=5, seed=0, shuffle=shuffle, drop_remainder=drop_remainder))
    assert len(batches) == num_batches(23, batch_size=5, drop_remainder=drop_remainder)
    assert len(batches) == (4 if drop_remainder else 5)
    sizes = [yb.shape[0] for _, yb in batches]
    assert sizes == ([5] * 4 if drop_remainder else [5, 5, 5, 5, 3])
    seen = np.concatenate([yb for _, yb in batches])
    assert len(set(seen.tolist())) == seen.size  # no row twice
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, x[yb])  # x and y stay paired
    if not shuffle:
        np.testing.assert_array_equal(seen, y[: seen.size])
    if not drop_remainder:
        assert sorted(seen.tolist()) == y.tolist()


def test_deterministic_per_seed():
    x, y = _data(100)
    first = [yb for _, yb in iterate_minibatches(x, y, batch_size=10, seed=5)]
    again = [yb for _, yb in iterate_minibatches(x, y, batch_size=10, seed=5)]
    other = [yb for _, yb in iterate_minibatches(x, y, batch_size=10, seed=6)]
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(np.stack(first), np.stack(other))
    assert not np.array_equal(np.concatenate(first), y)  # actually shuffled


def test_unshuffled_needs_no_seed_and_short_data():
    x, y = _data(3)
    assert list(iterate_minibatches(x, y, batch_size=5, seed=None, shuffle=False)) == []
    (only,) = iterate_minibatches(x, y, batch_size=5, seed=None, shuffle=False, drop_remainder=False)
    np.testing.assert_array_equal(only[1], y)


def test_num_batches():
    assert num_batches(0, batch_size=4) == 0
    assert num_batches(8, batch_size=4) == 2
    assert num_batches(9, batch_size=4) == 2
    assert num_batches(9, batch_size=4, drop_remainder=False) == 3
    assert num_batches(np.int64(9), batch_size=np.int32(4)) == 2


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"seed": None}, "seed"),
        ({"seed": -3}, "seed"),
        ({"shuffle": "yes"}, "shuffle"),
        ({"drop_remainder": None}, "drop_remainder"),
        ({"y": np.arange(4)}, "x and y"),
        ({"x": np.float32(1.0)}, "x must"),
        ({"y": 3}, "y must"),
    ],
)
def test_bad_arguments(kwargs, argname):
    x, y = _data(5)
    args = {"x": x, "y": y, "batch_size": 2, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=argname):
        iterate_minibatches(**args)  # checked eagerly, before iteration


@pytest.mark.parametrize(
    ("args", "kwargs", "argname"),
    [
        ((-1,), {"batch_size": 2}, "num_examples"),
        ((True,), {"batch_size": 2}, "num_examples"),
        ((4,), {"batch_size": 0}, "batch_size"),
        ((4,), {"batch_size": 2, "drop_remainder": 1}, "drop_remainder"),
    ],
)
def test_num_batches_bad_arguments(args, kwargs, argname):
    with pytest.raises(ValueError, match=argname):
        num_batches(*args, **kwargs)
