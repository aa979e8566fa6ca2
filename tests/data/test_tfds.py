"""Tests for the tensorflow-datasets loaders, on `tfds.testing.mock_data` (no TensorFlow, no download)."""

import subprocess
import sys

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

from jaxsparse.data import iter_tfds_batches, load_tfds_arrays  # noqa: E402

NUM_EXAMPLES = 12


@pytest.fixture
def mocked():
    with tfds.testing.mock_data(num_examples=NUM_EXAMPLES):
        yield


@pytest.mark.parametrize(("name", "shape", "num_classes"), [("mnist", (28, 28, 1), 10), ("cifar10", (32, 32, 3), 10)])
def test_load_arrays(mocked, name, shape, num_classes):
    for split in ("train", "test"):
        x, y = load_tfds_arrays(name, split=split)
        assert x.shape == (NUM_EXAMPLES, *shape) and x.dtype == np.float32
        assert y.shape == (NUM_EXAMPLES,) and y.dtype == np.int32
        assert x.min() >= 0.0 and x.max() <= 1.0 and x.max() > 0.5  # uint8 pixels scaled by 1/255
        assert y.min() >= 0 and y.max() < num_classes
        # Scaling is exactly /255 of the raw uint8 records.
        raw = tfds.data_source(name, split=split, download=False)[0]["image"]
        np.testing.assert_allclose(x[0], raw.astype(np.float32) / 255.0)
    first, first_y = load_tfds_arrays(name, split="train")
    again, again_y = load_tfds_arrays(name, split="train")
    np.testing.assert_array_equal(again, first)
    np.testing.assert_array_equal(again_y, first_y)
    capped, capped_y = load_tfds_arrays(name, split="train", max_examples=5)
    assert capped.shape == (5, *shape) and capped_y.shape == (5,)
    none, none_y = load_tfds_arrays(name, split="train", max_examples=0)
    assert none.shape[0] == 0 and none_y.shape == (0,)


def test_iterate_batches(mocked):
    x, y = load_tfds_arrays("cifar10", split="train")
    batches = list(iter_tfds_batches("cifar10", split="train", batch_size=5))
    assert [b[0].shape for b in batches] == [(5, 32, 32, 3), (5, 32, 32, 3), (2, 32, 32, 3)]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    shuffled = list(iter_tfds_batches("cifar10", split="train", batch_size=5, shuffle=True, seed=3))
    again = list(iter_tfds_batches("cifar10", split="train", batch_size=5, shuffle=True, seed=3))
    order = np.random.default_rng(3).permutation(NUM_EXAMPLES)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in shuffled]), x[order])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in again]), y[order])
    dropped = list(iter_tfds_batches("mnist", split="test", batch_size=5, drop_remainder=True))
    assert len(dropped) == 2


def test_missing_feature_names_argument(mocked):
    with pytest.raises(ValueError, match="image_key"):
        load_tfds_arrays("mnist", split="train", image_key="pixels")
    with pytest.raises(ValueError, match="label_key"):
        load_tfds_arrays("mnist", split="train", label_key="target")


def test_not_prepared_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="not prepared"):
        load_tfds_arrays("mnist", split="train", data_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="not prepared"):
        iter_tfds_batches("cifar10", split="test", batch_size=4, data_dir=str(tmp_path))
    assert not any(tmp_path.rglob("*.array_record*"))  # nothing was fetched


def test_unknown_dataset_names_argument(tmp_path):
    with pytest.raises(ValueError, match="name"):
        load_tfds_arrays("surely_not_a_dataset_xyz", split="train", data_dir=tmp_path)


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"name": ""}, "name"),
        ({"name": 3}, "name"),
        ({"split": None}, "split"),
        ({"split": ["train"]}, "split"),
        ({"max_examples": -1}, "max_examples"),
        ({"image_key": ""}, "image_key"),
        ({"label_key": None}, "label_key"),
        ({"download": "no"}, "download"),
        ({"data_dir": 5}, "data_dir"),
    ],
)
def test_load_bad_arguments(kwargs, argname):
    args = {"name": "mnist", "split": "train"} | kwargs
    name = args.pop("name")
    with pytest.raises(ValueError, match=argname):
        load_tfds_arrays(name, **args)


@pytest.mark.parametrize(
    ("kwargs", "argname"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"shuffle": True}, "seed"),
        ({"shuffle": True, "seed": -1}, "seed"),
        ({"drop_remainder": 0}, "drop_remainder"),
        ({"shuffle": 1, "seed": 0}, "shuffle"),
    ],
)
def test_iterate_bad_arguments(kwargs, argname):
    args = {"split": "train", "batch_size": 4} | kwargs
    with pytest.raises(ValueError, match=argname):
        iter_tfds_batches("mnist", **args)


def test_importing_jaxsparse_data_stays_light():
    code = (
        "import sys, jaxsparse.data; "
        "heavy = [m for m in ('tensorflow_datasets', 'sklearn', 'tensorflow') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
