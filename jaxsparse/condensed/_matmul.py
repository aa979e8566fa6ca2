"""Pure-JAX condensed matmul with a hand-written VJP.

A condensed weight keeps, for each output neuron i, `k` values and the input columns they connect to:
    y[b, i] = sum_j values[i, j] * x[b, indices[i, j]]
This equals `x @ W` for the dense W with W[indices[i, j], i] = values[i, j] (duplicates add up).

The forward gathers rows of x^T (feature-major: [n_out, k, batch]), which keeps each gathered slice
contiguous; the backward computes grad_values with the same gather and grad_x with a segment sum (the
transpose of a gather is a scatter-add).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_condensed_args", "condensed_matmul", "condensed_to_dense_kernel", "is_concrete"]


def is_concrete(x) -> bool:
    """False for a tracer (abstract value under jit/grad/vmap), True for a concrete array."""
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
    if is_concrete(indices) and indices.size:
        lo, hi = int(np.min(np.asarray(indices))), int(np.max(np.asarray(indices)))
        if lo < 0 or hi >= n_in:
            raise ValueError(f"indices out of range [0, {n_in}): found values in [{lo}, {hi}]")


def _acc_dtype(dtype):
    """Accumulate in at least float32 (bf16/f16 inputs), as a dense matmul would."""
    return jnp.promote_types(dtype, jnp.float32)


def _split_chunks(values, indices, chunk: int):
    """Splits the fan-in axis into a scanned part [n_chunks, n_out, chunk] and a remainder [n_out, r]."""
    n_out, k = values.shape
    n_full = k // chunk
    main = n_full * chunk
    to_scan = lambda a: a[:, :main].reshape(n_out, n_full, chunk).transpose(1, 0, 2)
    return (to_scan(values), to_scan(indices)), (values[:, main:], indices[:, main:])


def _gather_t(xt, idx):
    return xt.at[idx].get(mode="promise_in_bounds")  # [n_out, c, batch]


def _forward(x2d, values, indices, chunk: int):
    acc = _acc_dtype(x2d.dtype)
    xt = x2d.T
    dot = lambda i, v: jnp.einsum("ocb,oc->bo", _gather_t(xt, i), v, preferred_element_type=acc)
    if chunk >= values.shape[1]:
        return dot(indices, values).astype(x2d.dtype)
    (v_main, i_main), (v_rest, i_rest) = _split_chunks(values, indices, chunk)
    y, _ = jax.lax.scan(lambda y, vi: (y + dot(vi[1], vi[0]), None), dot(i_rest, v_rest), (v_main, i_main))
    return y.astype(x2d.dtype)


def _backward(x2d, values, indices, g, chunk: int):
    acc = _acc_dtype(x2d.dtype)
    xt, gt = x2d.T, g.T  # [in, batch], [n_out, batch]
    n_in, batch = xt.shape

    def grads(i, v):
        grad_v = jnp.einsum("ocb,ob->oc", _gather_t(xt, i), gt, preferred_element_type=acc)
        contrib = (v[:, :, None].astype(acc) * gt[:, None, :].astype(acc)).reshape(-1, batch)
        grad_xt = jax.ops.segment_sum(contrib, i.reshape(-1), num_segments=n_in)  # scatter-add: duplicates add
        return grad_v.astype(values.dtype), grad_xt

    if chunk >= values.shape[1]:
        grad_v, grad_xt = grads(indices, values)
    else:
        (v_main, i_main), (v_rest, i_rest) = _split_chunks(values, indices, chunk)
        grad_rest, grad_xt = grads(i_rest, v_rest)

        def body(carry, vi):
            gv, gx = grads(vi[1], vi[0])
            return carry + gx, gv

        grad_xt, grad_main = jax.lax.scan(body, grad_xt, (v_main, i_main))
        n_out = values.shape[0]
        grad_v = jnp.concatenate([grad_main.transpose(1, 0, 2).reshape(n_out, -1), grad_rest], axis=1)
    return grad_xt.T.astype(x2d.dtype), grad_v


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _condensed_matmul(x2d, values, indices, chunk):
    return _forward(x2d, values, indices, chunk)


def _fwd(x2d, values, indices, chunk):
    return _forward(x2d, values, indices, chunk), (x2d, values, indices)


def _bwd(chunk, res, g):
    x2d, values, indices = res
    grad_x, grad_values = _backward(x2d, values, indices, g, chunk)
    return grad_x, grad_values, np.zeros(indices.shape, dtype=jax.dtypes.float0)


_condensed_matmul.defvjp(_fwd, _bwd)


def condensed_matmul(x, values, indices, *, fan_in_chunk: int | None = None):
    """Computes y[..., i] = sum_j values[i, j] * x[..., indices[i, j]].

    Equal to the masked dense product `x @ W` (W [in, n_out]) in value and in gradients with respect to
    `x` and `values` (duplicate indices add up). Differentiable with `jax.grad`; jittable; the batch dims
    of x are flattened. Accumulates in float32 for low-precision inputs.

    Args:
      x: [..., in_features] floating point.
      values: [n_out, k] floating point.
      indices: [n_out, k] integer column ids in [0, in_features). Checked when concrete; under `jit`
        they are trusted (validate them where they are built, e.g. `to_condensed`).
      fan_in_chunk: process the fan-in in chunks of this many (a `lax.scan`), so the gathered
        activations take batch * n_out * fan_in_chunk elements instead of batch * n_out * k. Use it for
        huge output layers (extreme classification); None processes all k at once.

    Returns:
      [..., n_out] in the promoted dtype of x and values.
    """
    check_condensed_args(x, values, indices)
    if fan_in_chunk is not None and (
        isinstance(fan_in_chunk, bool) or not isinstance(fan_in_chunk, int) or fan_in_chunk <= 0
    ):
        raise ValueError(f"fan_in_chunk must be a positive int or None, got {fan_in_chunk!r}")
    dtype = jnp.result_type(x.dtype, values.dtype)
    batch_shape = x.shape[:-1]
    x2d = x.reshape(-1, x.shape[-1]).astype(dtype)
    chunk = values.shape[1] if fan_in_chunk is None else min(fan_in_chunk, max(values.shape[1], 1))
    y = _condensed_matmul(x2d, values.astype(dtype), indices, chunk)
    return y.reshape((*batch_shape, values.shape[0]))


def condensed_to_dense_kernel(values, indices, in_features: int):
    """Scatters condensed rows back into a dense kernel [in_features, n_out] (duplicates add)."""
    n_out = values.shape[0]
    cols = jnp.broadcast_to(jnp.arange(n_out)[:, None], indices.shape)
    return jnp.zeros((in_features, n_out), values.dtype).at[indices, cols].add(values)
