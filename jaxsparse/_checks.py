"""Argument checks shared across jaxsparse (data loaders, DST, XMC); every error names the offending argument."""

import math
from numbers import Integral, Real

import numpy as np

__all__ = ["check_bool", "check_fraction", "check_int", "check_optional_int", "check_seed"]

_MAX_SEED = 2**32 - 1  # numpy's legacy RandomState (used by scikit-learn) accepts [0, 2**32 - 1]


def check_int(value, name: str, *, minimum: int | None = None) -> int:
    """Returns `value` as an int, raising ValueError unless it is an integer >= `minimum`."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an int, got {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_optional_int(value, name: str, *, minimum: int | None = None) -> int | None:
    """Like `check_int`, but passes `None` through."""
    return None if value is None else check_int(value, name, minimum=minimum)


def check_seed(seed, name: str = "seed") -> int:
    """Returns `seed` as an int in [0, 2**32 - 1]."""
    seed = check_int(seed, name, minimum=0)
    if seed > _MAX_SEED:
        raise ValueError(f"{name} must be <= {_MAX_SEED}, got {seed}")
    return seed


def check_fraction(value, name: str, *, allow_zero: bool) -> float:
    """Returns `value` as a float in (0, 1) — or [0, 1) when `allow_zero`."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    low_ok = value >= 0.0 if allow_zero else value > 0.0
    if math.isnan(value) or not low_ok or value >= 1.0:
        interval = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}, got {value}")
    return value


def check_bool(value, name: str) -> bool:
    """Returns `value` unchanged, raising ValueError unless it is a bool."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{name} must be a bool, got {value!r}")
    return bool(value)
