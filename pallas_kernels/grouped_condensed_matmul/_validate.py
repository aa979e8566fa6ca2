"""Argument checks and the index and precision conventions shared by every grouped condensed backend."""

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels._common import check_x_and_values, is_concrete

__all__ = ["check_group_size", "check_grouped_args", "matmul_precision"]


def check_group_size(group_size) -> int:
    # group_size fixes array shapes (n_out // group_size index rows), so it must be a static Python int.
    if isinstance(group_size, bool) or not isinstance(group_size, (int, np.integer)) or group_size < 1:
        raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    return int(group_size)


def check_grouped_args(x, values, indices, bias=None, *, group_size) -> int:
    """Validates shapes, dtypes and (when concrete) the range of `indices`; raises ValueError naming the arg.

    values is [n_out, k] and indices [n_out // group_size, k]: output o reads the index row o // group_size.
    Indices lie in [0, in_features]; `in_features` itself marks an empty (padding) slot. Traced indices cannot
    be checked: every backend then treats an out-of-range index as an empty slot. Returns the checked group_size.
    """
    group_size = check_group_size(group_size)
    check_x_and_values(x, values, indices)
    n_out, k = values.shape
    if n_out % group_size:
        raise ValueError(f"group_size={group_size} must divide n_out={n_out} (values.shape[0])")
    if indices.ndim != 2:
        raise ValueError(f"indices must have shape [n_out // group_size, k], got {indices.shape}")
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape != (n_out // group_size, k):
        raise ValueError(
            f"indices must have shape (n_out // group_size, k) = ({n_out // group_size}, {k}) for values "
            f"{values.shape} and group_size={group_size}, got {indices.shape}"
        )
    n_in = x.shape[-1]
    if bias is not None:
        if not hasattr(bias, "shape") or bias.shape != (n_out,):
            raise ValueError(f"bias must have shape ({n_out},), got {getattr(bias, 'shape', bias)}")
        if not jnp.issubdtype(bias.dtype, jnp.floating):
            raise ValueError(f"bias must be floating point, got dtype {bias.dtype}")
    if is_concrete(indices) and indices.size:
        host = np.asarray(indices)
        lo, hi = int(host.min()), int(host.max())
        if lo < 0 or hi > n_in:
            raise ValueError(f"indices out of range [0, {n_in}] ({n_in} = empty slot): found values in [{lo}, {hi}]")
    return group_size


def matmul_precision(dtype):
    """HIGHEST for float32 inputs, else None (the default).

    On GPU the default precision runs float32 products in TF32 (~1e-3 relative error), in XLA and in Triton
    alike; every backend asks for full float32 instead, so all of them agree with the float32 reference to
    ~1e-6. bf16/f16 products are unaffected (they accumulate in float32 either way).
    """
    return jax.lax.Precision.HIGHEST if jnp.dtype(dtype) == jnp.float32 else None
