"""Argument checks shared by every condensed backend."""

import jax.numpy as jnp
import numpy as np

from pallas_kernels._common import check_x_and_values, is_concrete

__all__ = ["check_condensed_args"]


def check_condensed_args(x, values, indices, bias=None, *, in_features: int | None = None) -> None:
    """Validates shapes, dtypes and (when concrete) the range of `indices`; raises ValueError naming the arg.

    Indices lie in [0, in_features]; `in_features` itself marks an empty (padding) slot. Traced indices cannot
    be checked: the kernels then treat any out-of-range index as an empty slot and never read out of bounds.
    """
    check_x_and_values(x, values, indices)
    if indices.ndim != 2:
        raise ValueError(f"indices must have shape [n_out, k], got {indices.shape}")
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape != values.shape:
        raise ValueError(f"indices shape {indices.shape} must equal values shape {values.shape}")
    n_in = x.shape[-1]
    if in_features is not None and n_in != in_features:
        raise ValueError(f"x has {n_in} input features but the layer expects in_features={in_features}")
    if bias is not None:
        if not hasattr(bias, "shape") or bias.shape != (values.shape[0],):
            raise ValueError(f"bias must have shape ({values.shape[0]},), got {getattr(bias, 'shape', bias)}")
    if is_concrete(indices) and indices.size:
        host = np.asarray(indices)
        lo, hi = int(host.min()), int(host.max())
        if lo < 0 or hi > n_in:
            raise ValueError(f"indices out of range [0, {n_in}] ({n_in} = empty slot): found values in [{lo}, {hi}]")
