"""Deterministic epoch iteration over in-memory numpy arrays."""

from collections.abc import Iterator

import numpy as np

from jaxsparse._checks import check_bool, check_int, check_seed

__all__ = ["iterate_minibatches", "num_batches"]


def num_batches(num_examples: int, *, batch_size: int, drop_remainder: bool = True) -> int:
    """Number of minibatches one epoch over `num_examples` rows yields.

    Args:
        num_examples: Number of rows (>= 0).
        batch_size: Rows per batch (>= 1).
        drop_remainder: If True a final short batch is dropped; otherwise it is counted.

    Returns:
        `num_examples // batch_size`, or the ceiling of the ratio when `drop_remainder` is False.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    num_examples = check_int(num_examples, "num_examples", minimum=0)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    if drop_remainder:
        return num_examples // batch_size
    return -(-num_examples // batch_size)


def iterate_minibatches(
    x,
    y,
    *,
    batch_size: int,
    seed: int | None,
    shuffle: bool = True,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields `(x_batch, y_batch)` pairs covering one epoch of `(x, y)`.

    The order is a deterministic function of `seed`: `np.random.default_rng(seed).permutation(n)` when
    `shuffle`, the identity otherwise. Pass e.g. `seed=base_seed + epoch` for a new order every epoch.
    Arguments are checked when this is called, before the first batch is requested.

    Args:
        x: Array-like whose leading axis indexes examples.
        y: Array-like with the same leading length as `x`.
        batch_size: Rows per batch (>= 1).
        seed: Non-negative int seeding the shuffle; may be None only when `shuffle` is False.
        shuffle: Whether to permute the rows.
        drop_remainder: If True, a final batch shorter than `batch_size` is dropped.

    Returns:
        An iterator of `num_batches(len(x), batch_size=..., drop_remainder=...)` numpy pairs.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    shuffle = check_bool(shuffle, "shuffle")
    drop_remainder = check_bool(drop_remainder, "drop_remainder")
    if seed is not None or shuffle:
        if seed is None:
            raise ValueError("seed must be a non-negative int when shuffle=True, got None")
        seed = check_seed(seed)
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim == 0:
        raise ValueError("x must have a leading example axis, got a scalar")
    if y.ndim == 0:
        raise ValueError("y must have a leading example axis, got a scalar")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same leading length, got x {x.shape[0]} and y {y.shape[0]}")
    n = x.shape[0]
    order = np.random.default_rng(seed).permutation(n) if shuffle else np.arange(n)
    count = num_batches(n, batch_size=batch_size, drop_remainder=drop_remainder)
    return _batches(x, y, order, batch_size, count)


def _batches(x, y, order, batch_size, count) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(count):
        idx = order[i * batch_size : (i + 1) * batch_size]
        yield x[idx], y[idx]
