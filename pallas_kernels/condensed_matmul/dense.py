"""Dense fallback: scatter the condensed rows into W [in, n_out] (or take a cached one) and run one GEMM.

A cached `dense_kernel` stands for `condensed_to_dense_kernel(values, indices, in)`; see
`pallas_kernels._cached_dense` for how it is used (plain forwards only; differentiated calls rebuild it).
"""

import jax.numpy as jnp

from pallas_kernels._cached_dense import cached_dense_matmul

from .xla import condensed_to_dense_kernel

__all__ = ["condensed_matmul_dense"]


def condensed_matmul_dense(x2d, values, indices, *, dense_kernel=None):
    """x2d @ W with float32 accumulation; `dense_kernel` [in, n_out] (a cache of W) skips the per-call scatter.

    x2d and values must share a dtype (the api promotes them).
    """
    n_in = x2d.shape[1]
    if dense_kernel is not None:
        return cached_dense_matmul(
            x2d, values, indices, dense_kernel, densify=condensed_to_dense_kernel, static=(n_in,)
        )
    kernel = condensed_to_dense_kernel(values, indices, n_in)
    acc = jnp.promote_types(x2d.dtype, jnp.float32)
    return jnp.dot(x2d, kernel.astype(x2d.dtype), preferred_element_type=acc).astype(x2d.dtype)
