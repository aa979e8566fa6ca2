"""Plain-jnp reference for the condensed matmul (the spec every backend is tested against).

    y[b, o] = sum_j values[o, j] * x[b, indices[o, j]]  (+ bias[o])

An index equal to `in_features` is an empty slot (contributes 0): kernels pad the fan-in with it.
"""

import jax
import jax.numpy as jnp

__all__ = ["condensed_matmul_reference"]


def condensed_matmul_reference(x, values, indices, bias=None):
    """Materialises the [batch, n_out, k] gather; for tests and small shapes only."""
    n_in = x.shape[-1]
    acc = jnp.promote_types(jnp.result_type(x.dtype, values.dtype), jnp.float32)
    x2d = x.reshape(-1, n_in).astype(acc)
    x_padded = jnp.concatenate([x2d, jnp.zeros((x2d.shape[0], 1), acc)], axis=1)
    gathered = x_padded[:, indices]  # [batch, n_out, k]
    y = jnp.einsum("bok,ok->bo", gathered, values.astype(acc), precision=jax.lax.Precision.HIGHEST)
    if bias is not None:
        y = y + bias.astype(acc)
    out_dtype = jnp.result_type(x.dtype, values.dtype)
    return y.astype(out_dtype).reshape((*x.shape[:-1], values.shape[0]))
