"""Pure-JAX condensed matmul with a hand-written VJP.

A condensed weight keeps, for each output neuron i, `k` values and the input columns they connect to:
    y[b, i] = sum_j values[i, j] * x[b, indices[i, j]]
This equals `x @ W` for the dense W with W[indices[i, j], i] = values[i, j] (duplicates add up).

The forward gathers rows of x^T (feature-major: [n_out, k, batch]), which keeps each gathered slice
contiguous; the backward computes grad_values with the same gather and grad_x with a segment sum (the
transpose of a gather is a scatter-add).
"""

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_condensed_args", "condensed_matmul", "condensed_to_dense_kernel"]


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_condensed_args(x, values, indices, *, in_features: int | None = None) -> None:
    """Validates shapes, dtypes and (when concrete) the range of `indices`; raises ValueError naming the arg."""
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
    if indices.ndim != 2:
        raise ValueError(f"indices must have shape [n_out, k], got {indices.shape}")
    if not jnp.issubdtype(indices.dtype, jnp.integer):
        raise ValueError(f"indices must be an integer array, got dtype {indices.dtype}")
    if indices.shape != values.shape:
        raise ValueError(f"indices shape {indices.shape} must equal values shape {values.shape}")
    n_in = x.shape[-1]
    if in_features is not None and n_in != in_features:
        raise ValueError(f"x has {n_in} input features but the layer expects in_features={in_features}")
    if _is_concrete(indices) and indices.size:
        lo, hi = int(np.min(np.asarray(indices))), int(np.max(np.asarray(indices)))
        if lo < 0 or hi >= n_in:
            raise ValueError(f"indices out of range [0, {n_in}): found values in [{lo}, {hi}]")


@jax.custom_vjp
def _condensed_matmul(x2d, values, indices):
    gathered = x2d.T.at[indices].get(mode="promise_in_bounds")  # [n_out, k, batch]
    return jnp.einsum("okb,ok->bo", gathered, values)


def _fwd(x2d, values, indices):
    return _condensed_matmul(x2d, values, indices), (x2d, values, indices)


def _bwd(res, g):
    x2d, values, indices = res
    gathered = x2d.T.at[indices].get(mode="promise_in_bounds")  # [n_out, k, batch]
    grad_values = jnp.einsum("okb,bo->ok", gathered, g.astype(gathered.dtype)).astype(values.dtype)
    contrib = (values[:, :, None] * g.T[:, None, :]).reshape(-1, g.shape[0])  # [n_out*k, batch]
    grad_xt = jax.ops.segment_sum(contrib, indices.reshape(-1), num_segments=x2d.shape[1])
    grad_indices = np.zeros(indices.shape, dtype=jax.dtypes.float0)
    return grad_xt.T.astype(x2d.dtype), grad_values, grad_indices


_condensed_matmul.defvjp(_fwd, _bwd)


def condensed_matmul(x, values, indices):
    """Computes y[..., i] = sum_j values[i, j] * x[..., indices[i, j]].

    Equal to the masked dense product `x @ W` (W [in, n_out]) in value and in gradients with respect to
    `x` and `values`. Differentiable with `jax.grad`; jittable; batch dims of x are flattened.

    Args:
      x: [..., in_features] floating point.
      values: [n_out, k] floating point.
      indices: [n_out, k] integer column ids in [0, in_features). Checked when concrete; under `jit`
        they are trusted (validate them where they are built, e.g. `to_condensed`).

    Returns:
      [..., n_out] in the promoted dtype of x and values.
    """
    check_condensed_args(x, values, indices)
    dtype = jnp.result_type(x.dtype, values.dtype)
    batch_shape = x.shape[:-1]
    x2d = x.reshape(-1, x.shape[-1]).astype(dtype)
    y = _condensed_matmul(x2d, values.astype(dtype), indices)
    return y.reshape((*batch_shape, values.shape[0]))


def condensed_to_dense_kernel(values, indices, in_features: int):
    """Scatters condensed rows back into a dense kernel [in_features, n_out] (duplicates add)."""
    n_out = values.shape[0]
    cols = jnp.broadcast_to(jnp.arange(n_out)[:, None], indices.shape)
    return jnp.zeros((in_features, n_out), values.dtype).at[indices, cols].add(values)
