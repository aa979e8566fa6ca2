"""Shared test data and float64 numpy ground truth for the grouped condensed matmul tests."""

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels.grouped_condensed_matmul import grouped_condensed_matmul, grouped_condensed_matmul_reference


def make_case(batch, n_in, group_size, n_groups, k, dtype=jnp.float32, index_dtype=jnp.int32, seed=0):
    """Random x, values, indices and bias; every index row has a duplicate id and two empty slots (id n_in)."""
    rng = np.random.default_rng(seed)
    n_out = group_size * n_groups
    x = jnp.asarray(rng.normal(size=(batch, n_in)), dtype)
    values = jnp.asarray(rng.normal(size=(n_out, k)), dtype)
    bias = jnp.asarray(rng.normal(size=(n_out,)), dtype)
    idx = rng.integers(0, n_in, size=(n_groups, k))
    if k >= 4:
        idx[:, 1] = idx[:, 0]  # duplicates add up
        idx[:, 2] = n_in  # empty slots contribute nothing
        idx[:, -1] = n_in
    return x, values, jnp.asarray(idx, index_dtype), bias


def _f64(a):
    return np.asarray(jnp.asarray(a, jnp.float32), np.float64)


def numpy_dense_math(x, values, indices, bias, cotangent, group_size):
    """y = x @ W + bias and the grads of sum(y * cotangent) wrt (x, values, bias), in float64 numpy."""
    x64, v64, b64, ct = _f64(x), _f64(values), _f64(bias), _f64(cotangent)
    n_in = x64.shape[1]
    n_out = v64.shape[0]
    rows = np.repeat(np.asarray(indices, np.int64), group_size, axis=0)  # [n_out, k]
    cols = np.broadcast_to(np.arange(n_out)[:, None], rows.shape)
    live = (rows >= 0) & (rows < n_in)
    w = np.zeros((n_in, n_out))
    np.add.at(w, (rows[live], cols[live]), v64[live])
    y = x64 @ w + b64
    x_padded = np.concatenate([x64, np.zeros((x64.shape[0], 1))], axis=1)
    gathered = x_padded[:, np.where(live, rows, n_in)]  # [batch, n_out, k]
    grad_values = np.einsum("bo,bok->ok", ct, gathered)
    return y, (ct @ w.T, grad_values, ct.sum(axis=0))


def tolerance(dtype):
    """(rtol, atol relative to the largest magnitude): bf16 keeps 8 mantissa bits."""
    return (2e-2, 2e-2) if jnp.dtype(dtype) == jnp.bfloat16 else (1e-5, 1e-5)


def assert_close(actual, expected, dtype, what=""):
    rtol, atol = tolerance(dtype)
    expected = np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(_f64(actual), expected, rtol=rtol, atol=atol * scale, err_msg=what)


def check_against_truth(x, values, indices, bias, group_size, **kwargs):
    """Forward and (x, values, bias) grads of one backend vs the reference and vs float64 dense numpy."""
    dtype = jnp.result_type(x.dtype, values.dtype)
    rng = np.random.default_rng(1)
    cotangent = jnp.asarray(rng.normal(size=(x.shape[0], values.shape[0])), dtype)

    def run(fn):
        # One jit per backend: compiling once is cheaper than dispatching the eager VJP op by op.
        @jax.jit
        def forward_and_vjp(x, values, bias, cotangent):
            y, vjp = jax.vjp(lambda x, v, b: fn(x, v, indices, b, group_size=group_size), x, values, bias)
            return y, vjp(cotangent)

        return forward_and_vjp(x, values, bias, cotangent)

    y, grads = run(lambda *a, **kw: grouped_condensed_matmul(*a, **kw, **kwargs))
    y_ref, grads_ref = run(grouped_condensed_matmul_reference)
    y_np, grads_np = numpy_dense_math(x, values, indices, bias, cotangent, group_size)
    assert y.dtype == dtype and y.shape == (x.shape[0], values.shape[0])
    for g, arg in zip(grads, (x, values, bias), strict=True):
        assert g.dtype == arg.dtype and g.shape == arg.shape
    assert_close(y, y_np, dtype, "forward vs numpy")
    assert_close(y, y_ref, dtype, "forward vs reference")
    for name, g, g_ref, g_np in zip(("x", "values", "bias"), grads, grads_ref, grads_np, strict=True):
        assert_close(g, g_np, dtype, f"grad {name} vs numpy")
        assert_close(g, g_ref, dtype, f"grad {name} vs reference")
