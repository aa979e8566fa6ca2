"""XLA backend of the condensed matmul: a feature-major gather with a hand-written VJP.

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

from pallas_kernels._common import as_empty_slot

__all__ = ["condensed_matmul_xla", "condensed_to_dense_kernel"]


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
    # Index n_in (an empty slot) and anything out of range reads 0, never out of bounds.
    return xt.at[idx].get(mode="fill", fill_value=0)  # [n_out, c, batch]


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
        # Scatter-add: duplicates add; out-of-range ids (empty slots) are dropped.
        grad_xt = jax.ops.segment_sum(contrib, i.reshape(-1), num_segments=n_in)
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


def condensed_matmul_xla(x2d, values, indices, *, fan_in_chunk: int | None = None):
    """The XLA backend on checked 2-D inputs: x2d [batch, in], values/indices [n_out, k] -> [batch, n_out].

    `fan_in_chunk` processes the fan-in in chunks (a `lax.scan`), so the gathered activations take
    batch * n_out * fan_in_chunk elements instead of batch * n_out * k (huge output layers).
    """
    chunk = values.shape[1] if fan_in_chunk is None else min(fan_in_chunk, max(values.shape[1], 1))
    n_in = x2d.shape[1]
    # Gathers normalise negative ids numpy-style (-1 -> last row); make every out-of-range id an empty slot.
    indices = as_empty_slot(indices, n_in)
    return _condensed_matmul(x2d, values, indices, chunk)


def condensed_to_dense_kernel(values, indices, in_features: int):
    """Scatters condensed rows back into a dense kernel [in_features, n_out] (duplicates add, empty slots drop)."""
    n_out = values.shape[0]
    cols = jnp.broadcast_to(jnp.arange(n_out)[:, None], indices.shape)
    # Negative ids would wrap around (numpy semantics); send every out-of-range id past the end to be dropped.
    rows = as_empty_slot(indices, in_features)
    return jnp.zeros((in_features, n_out), values.dtype).at[rows, cols].add(values, mode="drop")
