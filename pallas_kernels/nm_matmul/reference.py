"""Plain-jnp reference for the N:M matmul (the spec every backend is tested against).

    y[b, o] = sum_i x[b, i] * W[i, o]  (+ bias[o]),  W = nm_decompress(values, positions, m)

with m = in_features // groups. Computed in float32 at HIGHEST precision, whatever the input dtypes.
"""

import jax
import jax.numpy as jnp

from .convert import decompress, unpacked

__all__ = ["nm_matmul_reference"]


def nm_matmul_reference(x, values, positions, bias=None, *, packed: bool = False):
    """Decompresses the kernel and runs one float32 HIGHEST-precision dot; for tests and small shapes only."""
    n_in = x.shape[-1]
    m = n_in // values.shape[1]
    acc = jnp.promote_types(jnp.result_type(x.dtype, values.dtype), jnp.float32)
    kernel = decompress(values.astype(acc), unpacked(values, positions, m, packed), m)
    y = jnp.dot(x.reshape(-1, n_in).astype(acc), kernel, precision=jax.lax.Precision.HIGHEST)
    if bias is not None:
        y = y + bias.astype(acc)[None, :]
    out_dtype = jnp.result_type(x.dtype, values.dtype)
    return y.astype(out_dtype).reshape((*x.shape[:-1], values.shape[0]))
