"""Dense path with a cached kernel: x @ W for a W [in, n_out] decompressed once (inference)."""

import jax.numpy as jnp

from .xla import nm_matmul_xla

__all__ = ["nm_matmul_dense"]


def nm_matmul_dense(x2d, values, positions, *, m: int, packed: bool, dense_kernel=None):
    """x2d @ W with float32 accumulation; `dense_kernel` [in, n_out] skips the per-call decompression.

    Without `dense_kernel` this is the "xla" backend. With it, gradients flow to `dense_kernel`, not to
    `values`: a cached kernel is for inference.
    """
    if dense_kernel is None:
        return nm_matmul_xla(x2d, values, positions, m=m, packed=packed)
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    acc = jnp.promote_types(dtype, jnp.float32)
    return jnp.dot(x2d.astype(dtype), dense_kernel.astype(dtype), preferred_element_type=acc).astype(dtype)
