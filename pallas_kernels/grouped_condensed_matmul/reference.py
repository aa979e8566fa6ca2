"""Plain-jnp reference for the group-shared condensed matmul (the spec every backend is tested against).

    y[b, o] = sum_j values[o, j] * x[b, indices[o // G, j]]  (+ bias[o])

G = group_size consecutive output neurons share one index row; values stay per output. An index equal to
`in_features` is an empty slot (contributes 0): kernels pad the fan-in with it.
"""

import jax
import jax.numpy as jnp

__all__ = ["grouped_condensed_matmul_reference"]


def grouped_condensed_matmul_reference(x, values, indices, bias=None, *, group_size: int):
    """Materialises the [batch, n_groups, k] gather; for tests and small shapes only."""
    n_in = x.shape[-1]
    n_out, k = values.shape
    acc = jnp.promote_types(jnp.result_type(x.dtype, values.dtype), jnp.float32)
    x2d = x.reshape(-1, n_in).astype(acc)
    x_padded = jnp.concatenate([x2d, jnp.zeros((x2d.shape[0], 1), acc)], axis=1)
    # int32 ids: jnp indexing normalises ids against the axis size in the ids' dtype, which int16 may not hold.
    gathered = x_padded[:, indices.astype(jnp.int32)]  # [batch, n_groups, k]
    v = values.astype(acc).reshape(n_out // group_size, group_size, k)
    y = jnp.einsum("bgk,gsk->bgs", gathered, v, precision=jax.lax.Precision.HIGHEST).reshape(-1, n_out)
    if bias is not None:
        y = y + bias.astype(acc)[None, :]
    out_dtype = jnp.result_type(x.dtype, values.dtype)
    return y.astype(out_dtype).reshape((*x.shape[:-1], n_out))
