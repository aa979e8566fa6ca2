"""Dense path with a cached kernel: x @ W for a W [in, n_out] decompressed once (inference).

Plain forwards multiply by the cache; differentiated calls rebuild it from values, so gradients go to `values`
and a stale cache never bends a training step (see `pallas_kernels._cached_dense`).
"""

import jax.numpy as jnp

from pallas_kernels._cached_dense import cached_dense_matmul

from .convert import decompress, unpacked
from .xla import nm_matmul_xla

__all__ = ["nm_matmul_dense"]


def _decompress_packed(values, positions, m: int, packed: bool):
    return decompress(values, unpacked(values, positions, m, packed), m)


def nm_matmul_dense(x2d, values, positions, *, m: int, packed: bool, dense_kernel=None):
    """x2d @ W with float32 accumulation; `dense_kernel` [in, n_out] skips the per-call decompression.

    Without `dense_kernel` this is the "xla" backend.
    """
    if dense_kernel is None:
        return nm_matmul_xla(x2d, values, positions, m=m, packed=packed)
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    return cached_dense_matmul(
        x2d.astype(dtype),
        values.astype(dtype),
        positions,
        dense_kernel,
        densify=_decompress_packed,
        static=(m, packed),
    )
