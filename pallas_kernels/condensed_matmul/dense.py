"""Dense fallback: scatter the condensed rows into W [in, n_out] (or take a cached one) and run one GEMM."""

import jax.numpy as jnp

from .xla import condensed_to_dense_kernel

__all__ = ["condensed_matmul_dense"]


def condensed_matmul_dense(x2d, values, indices, *, dense_kernel=None):
    """x2d @ W with float32 accumulation; `dense_kernel` [in, n_out] skips the per-call scatter (inference)."""
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    kernel = condensed_to_dense_kernel(values, indices, x2d.shape[1]) if dense_kernel is None else dense_kernel
    acc = jnp.promote_types(dtype, jnp.float32)
    return jnp.dot(x2d.astype(dtype), kernel.astype(dtype), preferred_element_type=acc).astype(dtype)
