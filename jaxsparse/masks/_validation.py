"""Argument checks shared by the mask builders (each names the offending argument), and mask validators."""

import math
from numbers import Integral, Real

import jax
import numpy as np

__all__ = [
    "check_fan_in",
    "check_group_size",
    "check_masks_match",
    "check_nm",
    "check_sparsity",
    "is_grouped_fan_in",
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


def check_group_size(group_size, n_out: int, name_axis: str = "the output axis") -> int:
    """Validates the number of consecutive output neurons that share one set of fan-in indices."""
    if isinstance(group_size, bool | np.bool_) or not isinstance(group_size, Integral):
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    group_size = int(group_size)
    if group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size}")
    if n_out % group_size:
        raise ValueError(f"group_size={group_size} must divide n_out={n_out}, the size of {name_axis}")
    return group_size


def is_grouped_fan_in(mask, group_size: int, *, fan_in: int | None = None, allow_ablated: bool = False) -> bool:
    """Whether `mask` has group-shared constant fan-in: every output neuron (last axis) has the same number
    of active inputs, and each block of `group_size` consecutive neurons has one identical input pattern.

    A host-side check on a concrete array (not traceable under jit).

    Args:
      mask: bool array of ndim >= 2; every axis but the last is fan-in (Flax `Linear` [in, out]).
      group_size: G, a positive int dividing n_out. G = 1 checks ordinary constant fan-in.
      fan_in: if given, the fan-in every active neuron must have.
      allow_ablated: accept neurons with no active input (whole groups, as SRigL ablation leaves them);
        the others must still share one fan-in. Without it, every neuron needs the same fan-in >= 1. A
        mask with no active input at all is never grouped fan-in.

    Returns:
      True or False; raises ValueError only for bad arguments.
    """
    if not hasattr(mask, "shape") or not hasattr(mask, "dtype"):
        raise ValueError(f"mask must be a bool array, got {type(mask).__name__}")
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array, got dtype {m.dtype}")
    if m.ndim < 2:
        raise ValueError(f"mask must have ndim >= 2 (fan-in axes + output axis), got shape {m.shape}")
    n_out = m.shape[-1]
    group_size = check_group_size(group_size, n_out, f"the last axis of mask {m.shape}")
    if fan_in is not None and (isinstance(fan_in, bool) or not isinstance(fan_in, Integral) or fan_in < 1):
        raise ValueError(f"fan_in must be a positive int or None, got {fan_in!r}")
    groups = m.reshape(-1, n_out // group_size, group_size)
    if not np.all(groups == groups[..., :1]):
        return False
    counts = groups[..., 0].sum(axis=0)
    active = counts[counts > 0] if allow_ablated else counts
    if active.size == 0:
        return False  # no active neuron at all: nothing shares a fan-in
    k = int(active[0]) if fan_in is None else int(fan_in)
    return bool(k >= 1 and np.all(active == k))


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
