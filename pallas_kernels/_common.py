"""Helpers shared by the kernels: platform choice, padding arithmetic and argument checks."""

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "IMPLEMENTATIONS",
    "as_empty_slot",
    "check_dense_kernel",
    "check_implementation",
    "check_launch_params",
    "check_positive_pow2",
    "check_x_and_values",
    "default_interpret",
    "is_concrete",
    "narrow_index_dtype",
    "on_gpu",
    "round_up",
]

IMPLEMENTATIONS = ("auto", "xla", "pallas", "triton", "dense")


def is_concrete(x) -> bool:
    """False for a tracer (under jit/grad/vmap), True for a concrete array."""
    return not isinstance(x, jax.core.Tracer)


def on_gpu() -> bool:
    return jax.default_backend() in ("gpu", "cuda", "rocm")


def default_interpret(interpret: bool | None) -> bool:
    """Pallas kernels run compiled on a GPU and interpreted (a jit of a scan over the grid) elsewhere."""
    if interpret is None:
        return not on_gpu()
    if not isinstance(interpret, bool):
        raise ValueError(f"interpret must be a bool or None, got {interpret!r}")
    return interpret


def round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def check_positive_pow2(name: str, value) -> int:
    # Triton tensors must have power-of-2 sizes, so every tile dimension must be one.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a positive power of two, got {value!r}")
    return int(value)


def check_implementation(implementation: str, allowed=IMPLEMENTATIONS) -> str:
    if implementation not in allowed:
        raise ValueError(f"implementation must be one of {allowed}, got {implementation!r}")
    return implementation


def narrow_index_dtype(num_rows: int):
    """int16 when every row id (the zero padding row included) fits, else int32: indices are half the bytes."""
    return jnp.int16 if num_rows <= np.iinfo(np.int16).max else jnp.int32


def check_launch_params(blocks) -> None:
    """Triton launch parameters of a BlockSizes dataclass: positive ints."""
    for name in ("num_warps", "num_stages"):
        value = getattr(blocks, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def check_x_and_values(x, values, indices) -> None:
    """The checks every sparse matmul shares: arrays, x floating with a feature axis, values 2-D floating."""
    for name, arr in (("x", x), ("values", values), ("indices", indices)):
        if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
            raise ValueError(f"{name} must be an array, got {type(arr).__name__}")
    if x.ndim < 1:
        raise ValueError(f"x must have ndim >= 1 ([..., in_features]), got shape {x.shape}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"x must be floating point, got dtype {x.dtype}")
    if values.ndim != 2:
        raise ValueError(f"values must have shape [n_out, k], got {values.shape}")
    if not jnp.issubdtype(values.dtype, jnp.floating):
        raise ValueError(f"values must be floating point, got dtype {values.dtype}")


def check_dense_kernel(dense_kernel, n_in: int, n_out: int) -> None:
    if dense_kernel is not None and getattr(dense_kernel, "shape", None) != (n_in, n_out):
        raise ValueError(f"dense_kernel must have shape ({n_in}, {n_out}), got {getattr(dense_kernel, 'shape', None)}")


def as_empty_slot(idx, n_in: int):
    """int32 indices with every id outside [0, n_in) mapped to the empty slot n_in.

    Used by every backend (and inside the Pallas kernels), so unchecked traced indices mean the same thing
    everywhere and never read out of bounds: without it, XLA gathers clamp, `.at[]` wraps negative ids and
    Triton reads wild memory. Narrow ids are widened to int32 before the compare (an int16 cannot hold every
    n_in; a uint32 above 2**31 wraps negative, i.e. empty); 64-bit ids are compared before narrowing, so a
    huge id cannot wrap into range.
    """
    if jnp.dtype(idx.dtype).itemsize > 4:
        return jnp.where((idx >= 0) & (idx < n_in), idx, n_in).astype(jnp.int32)
    idx = idx.astype(jnp.int32)
    return jnp.where((idx >= 0) & (idx < n_in), idx, n_in)
