"""Argument checks shared by the mask builders (each names the offending argument)."""

import math
from numbers import Integral, Real

import jax
import numpy as np

__all__ = [
    "check_fan_in",
    "check_masks_match",
    "check_nm",
    "check_sparsity",
    "is_none",
    "num_active",
]


def is_none(x) -> bool:
    return x is None


def check_sparsity(sparsity, name: str = "sparsity") -> float:
    """Returns `sparsity` as a float, raising unless it is a real number in [0, 1)."""
    if isinstance(sparsity, bool) or not isinstance(sparsity, Real | np.floating | np.integer):
        raise ValueError(f"{name} must be a real number in [0, 1), got {sparsity!r}")
    value = float(sparsity)
    if not (0.0 <= value < 1.0) or math.isnan(value):
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def num_active(size: int, sparsity: float) -> int:
    """Number of weights kept: floor(size * (1 - sparsity)), at least 1.

    A small tolerance absorbs binary rounding (1000 * (1 - 0.9) is 99.99999999999997 in floating point).
    """
    sparsity = check_sparsity(sparsity)
    if size <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return max(1, math.floor(size * (1.0 - sparsity) + 1e-6))


def check_nm(n, m, axis_size: int, name_axis: str = "axis") -> tuple[int, int]:
    """Validates an N:M pattern against the length of the grouped axis."""
    for value, name in ((n, "n"), (m, "m")):
        if isinstance(value, bool) or not isinstance(value, Integral):
            raise ValueError(f"{name} must be an int, got {value!r}")
    n, m = int(n), int(m)
    if m <= 0:
        raise ValueError(f"m must be positive, got {m}")
    if not 0 <= n <= m:
        raise ValueError(f"n must satisfy 0 <= n <= m, got n={n}, m={m}")
    if axis_size % m:
        raise ValueError(f"m={m} does not divide the size {axis_size} of {name_axis}")
    return n, m


def check_fan_in(fan_in, fan_in_dense: int) -> int:
    """Validates a per-neuron fan-in against the dense fan-in of the layer."""
    if isinstance(fan_in, bool) or not isinstance(fan_in, Integral):
        raise ValueError(f"fan_in must be an int, got {fan_in!r}")
    fan_in = int(fan_in)
    if not 1 <= fan_in <= fan_in_dense:
        raise ValueError(f"fan_in must be in [1, {fan_in_dense}] (the layer's in_features), got {fan_in}")
    return fan_in


def check_masks_match(params, masks, *, masks_name: str = "masks", params_name: str = "params") -> None:
    """Raises unless `masks` has the structure of `params`, with bool leaves of matching shape or None."""
    p_def = jax.tree.structure(params)
    m_def = jax.tree.structure(masks, is_leaf=is_none)
    if p_def != m_def:
        raise ValueError(f"{masks_name} must have the same tree structure as {params_name}; got {m_def} vs {p_def}")
    for path, (p, m) in zip(
        (jax.tree_util.keystr(k) for k, _ in jax.tree_util.tree_flatten_with_path(params)[0]),
        zip(jax.tree.leaves(params), jax.tree.leaves(masks, is_leaf=is_none), strict=True),
        strict=True,
    ):
        if m is None:
            continue
        if not hasattr(m, "dtype"):
            raise ValueError(f"{masks_name}{path} must be a bool array or None, got {type(m).__name__}")
        if tuple(np.shape(m)) != tuple(np.shape(p)):
            raise ValueError(
                f"{masks_name}{path} has shape {tuple(np.shape(m))} but {params_name}{path} has {tuple(np.shape(p))}"
            )
        if np.dtype(m.dtype) != np.bool_:
            raise ValueError(f"{masks_name}{path} must be a bool array, got dtype {m.dtype}")
