"""Named tensorflow-datasets (CIFAR-10, MNIST, ...) as numpy arrays, read through `tfds.data_source`.

`tfds.data_source` reads ArrayRecord files with plain Python, so TensorFlow is not needed (and
`tfds.load`, which needs it, is never used). `tensorflow_datasets` is imported only inside the functions
here, keeping `import jaxsparse` cheap.
"""

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from jaxsparse._checks import check_bool, check_int, check_optional_int, check_seed
from jaxsparse.data._batching import num_batches

__all__ = ["iter_tfds_batches", "load_tfds_arrays"]


def _check_str(value, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def _open_source(name: str, *, split: str, data_dir, download: bool) -> Sequence[Any]:
    """Opens one split with `tfds.data_source`, turning "not prepared" failures into FileNotFoundError."""
    name = _check_str(name, "name")
    split = _check_str(split, "split")
    download = check_bool(download, "download")
    if data_dir is not None and not isinstance(data_dir, str) and not hasattr(data_dir, "__fspath__"):
        raise ValueError(f"data_dir must be None or a path, got {data_dir!r}")
    import tensorflow_datasets as tfds  # lazy: heavy import

    # Random access needs ArrayRecord files; prepare in that format when allowed to download.
    builder_kwargs = {"file_format": "array_record"} if download else None
    try:
        return tfds.data_source(
            name,
            split=split,
            data_dir=data_dir,
            download=download,
            builder_kwargs=builder_kwargs,
            try_gcs=False,
        )
    except tfds.core.registered.DatasetNotFoundError as err:
        raise ValueError(f"name={name!r} is not a registered tensorflow-datasets dataset") from err
    except Exception as err:
        if download or _is_prepared(tfds, name, data_dir):
            raise
        where = data_dir
        if where is None:
            where = "the default data_dir ($TFDS_DATA_DIR, else ~/tensorflow_datasets)"
        raise FileNotFoundError(
            f"tensorflow-datasets dataset {name!r} is not prepared under {where}. Prepare it once in "
            "ArrayRecord format (e.g. pass download=True on a machine with network access, or copy a "
            "prepared data_dir), then pass data_dir= here. download=False never fetches anything."
        ) from err


def _is_prepared(tfds, name: str, data_dir) -> bool:
    try:
        return bool(tfds.builder(name, data_dir=data_dir).is_prepared())
    except Exception:
        return False


def _examples_to_arrays(examples: Sequence[dict], image_key: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Stacks decoded examples into `(images, labels)`: uint8 images become float32 in [0, 1]."""
    if examples:
        keys = sorted(examples[0])
        for key, argname in ((image_key, "image_key"), (label_key, "label_key")):
            if key not in examples[0]:
                raise ValueError(f"{argname}={key!r} is not a feature of the dataset; features: {keys}")
    images = np.stack([np.asarray(ex[image_key]) for ex in examples]) if examples else np.zeros((0,))
    labels = np.asarray([ex[label_key] for ex in examples])
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_:
        images = images.astype(np.float32)
    if np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        labels = labels.astype(np.int32)
    return images, labels


def _read(source: Sequence[Any], indices) -> list[dict]:
    # Per-record access: works on real ArrayRecord sources and on `tfds.testing.mock_data` sources alike.
    return [source[int(i)] for i in indices]


def load_tfds_arrays(
    name: str,
    *,
    split: str,
    data_dir=None,
    image_key: str = "image",
    label_key: str = "label",
    max_examples: int | None = None,
    download: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Reads a tensorflow-datasets split fully into memory as numpy arrays.

    Built on `tfds.data_source` (random access, no TensorFlow). With `download=False` (the default)
    nothing is fetched: the dataset must already be prepared in ArrayRecord format under `data_dir`.

    Args:
        name: Registered dataset name, optionally with config/version, e.g. `"cifar10"`, `"mnist:3.0.1"`.
        split: Split spec, e.g. `"train"`, `"test"`, `"train[:10%]"`.
        data_dir: Directory holding prepared datasets; None uses tensorflow-datasets' default.
        image_key: Feature holding the inputs.
        label_key: Feature holding the labels.
        max_examples: Optional cap (>= 0): only the first `max_examples` records of the split are read.
        download: Whether tensorflow-datasets may download and prepare the dataset (in ArrayRecord format).

    Returns:
        `(images, labels)`: images float32 (uint8 pixels scaled to [0, 1], other numbers cast unscaled),
        labels int32 when integer. The leading axis is the example axis, in the split's order.

    Raises:
        ValueError: If an argument is invalid or the dataset name is unknown (the message names it).
        FileNotFoundError: If `download=False` and the dataset is not prepared locally.
    """
    _check_str(image_key, "image_key")
    _check_str(label_key, "label_key")
    max_examples = check_optional_int(max_examples, "max_examples", minimum=0)
    source = _open_source(name, split=split, data_dir=data_dir, download=download)
    n = len(source) if max_examples is None else min(len(source), max_examples)
    return _examples_to_arrays(_read(source, range(n)), image_key, label_key)


def iter_tfds_batches(
    name: str,
    *,
    split: str,
    batch_size: int,
    seed: int | None = None,
    shuffle: bool = False,
    drop_remainder: bool = False,
    data_dir=None,
    image_key: str = "image",
    label_key: str = "label",
    max_examples: int | None = None,
    download: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Streams one epoch of a tensorflow-datasets split as numpy `(images, labels)` batches.

    Unlike `load_tfds_arrays`, records are read lazily batch by batch, so the split need not fit in
    memory. Arguments are checked, and the data source opened, when this is called.

    Args:
        name: Registered dataset name, e.g. `"cifar10"`.
        split: Split spec, e.g. `"train"`.
        batch_size: Examples per batch (>= 1).
        seed: Non-negative int seeding the shuffle (`np.random.default_rng(seed).permutation`); required
            when `shuffle` is True. Use e.g. `base_seed + epoch` for a fresh order per epoch.
        shuffle: Whether to visit the records in a seeded random order.
        drop_remainder: Whether to drop a final batch shorter than `batch_size`.
        data_dir: Directory holding prepared datasets; None uses tensorflow-datasets' default.
        image_key: Feature holding the inputs.
        label_key: Feature holding the labels.
        max_examples: Optional cap (>= 0) on the records used: the first `max_examples` of the split.
        download: Whether tensorflow-datasets may download and prepare the dataset.

    Returns:
        An iterator of `(images, labels)` with the conversions of `load_tfds_arrays`.

    Raises:
        ValueError: If an argument is invalid (the message names it).
        FileNotFoundError: If `download=False` and the dataset is not prepared locally.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    shuffle = check_bool(shuffle, "shuffle")
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    if shuffle and seed is None:
        raise ValueError("seed must be a non-negative int when shuffle=True, got None")
    if seed is not None:
        seed = check_seed(seed)
    _check_str(image_key, "image_key")
    _check_str(label_key, "label_key")
    max_examples = check_optional_int(max_examples, "max_examples", minimum=0)
    source = _open_source(name, split=split, data_dir=data_dir, download=download)
    n = len(source) if max_examples is None else min(len(source), max_examples)
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    count = num_batches(n, batch_size=batch_size, drop_remainder=drop_remainder)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(count):
            idx = order[i * batch_size : (i + 1) * batch_size]
            yield _examples_to_arrays(_read(source, idx), image_key, label_key)

    return batches()
