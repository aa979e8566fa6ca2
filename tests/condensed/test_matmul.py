"""condensed_matmul: forward and custom VJP against dense numpy references; argument checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.condensed import condensed_matmul, condensed_to_dense_kernel

N_IN, N_OUT, K = 12, 6, 4
TOL = {"rtol": 1e-5, "atol": 1e-5}


def make_condensed(seed=0, duplicates=False):
    rng = np.random.default_rng(seed)
    indices = np.stack([np.sort(rng.choice(N_IN, K, replace=False)) for _ in range(N_OUT)]).astype(np.int32)
    if duplicates:
        indices[1] = [3, 3, 7, 3]  # one input read three times by neuron 1
        indices[4] = [0, 0, 11, 11]
    values = rng.standard_normal((N_OUT, K)).astype(np.float32)
    return values, indices


def dense_reference(values, indices):
    """W [in, out] with W[indices[i, j], i] += values[i, j] (duplicate indices add)."""
    w = np.zeros((N_IN, N_OUT), np.float64)
    np.add.at(w, (indices, np.broadcast_to(np.arange(N_OUT)[:, None], indices.shape)), values)
    return w


def grads_reference(x, g, values, indices):
    """Gradients of sum(y * g), y = x @ W: grad_x = g W^T, grad_values[i, j] = (x^T g)[indices[i, j], i]."""
    w = dense_reference(values, indices)
    x2 = np.asarray(x, np.float64).reshape(-1, N_IN)
    g2 = np.asarray(g, np.float64).reshape(-1, N_OUT)
    grad_x = (g2 @ w.T).reshape(np.shape(x))
    grad_w = x2.T @ g2
    grad_values = grad_w[indices, np.arange(N_OUT)[:, None]]
    return grad_x, grad_values


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("x_shape", [(5, N_IN), (2, 3, N_IN), (N_IN,)])
@pytest.mark.parametrize("duplicates", [False, True])
def test_forward_equals_masked_dense(x_shape, duplicates):
    values, indices = make_condensed(duplicates=duplicates)
    x = _x(x_shape)
    y = condensed_matmul(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices))
    assert y.shape == (*x_shape[:-1], N_OUT) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)


@pytest.mark.parametrize("x_shape", [(5, N_IN), (2, 3, N_IN)])
@pytest.mark.parametrize("duplicates", [False, True])
def test_backward_equals_dense_gradients(x_shape, duplicates):
    values, indices = make_condensed(seed=2, duplicates=duplicates)
    x = _x(x_shape, seed=3)
    g = _x((*x_shape[:-1], N_OUT), seed=4)

    def loss(x, v):
        return jnp.sum(condensed_matmul(x, v, jnp.asarray(indices)) * g)

    gx, gv = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(values))
    ref_gx, ref_gv = grads_reference(x, g, values, indices)
    assert gx.shape == x.shape and gv.shape == values.shape
    np.testing.assert_allclose(np.asarray(gx), ref_gx, **TOL)
    np.testing.assert_allclose(np.asarray(gv), ref_gv, **TOL)


def test_duplicate_indices_sum_in_grad_x():
    # Neuron 0 reads input 2 four times: grad_x[:, 2] must be g[:, 0] * sum(values[0]).
    values = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    indices = np.array([[2, 2, 2, 2]], np.int32)
    x = _x((3, N_IN), seed=5)
    g = _x((3, 1), seed=6)
    gx = jax.grad(lambda x: jnp.sum(condensed_matmul(x, jnp.asarray(values), jnp.asarray(indices)) * g))(jnp.asarray(x))
    expected = np.zeros((3, N_IN))
    expected[:, 2] = g[:, 0] * 10.0
    np.testing.assert_allclose(np.asarray(gx), expected, **TOL)


def test_matches_jax_dense_autodiff():
    values, indices = make_condensed(seed=7, duplicates=True)
    x = jnp.asarray(_x((5, N_IN), seed=8))
    w_dense = jnp.asarray(dense_reference(values, indices), jnp.float32)
    mask = jnp.asarray(dense_reference(np.ones_like(values), indices) > 0)

    def dense_loss(x, w):
        return jnp.sum(jnp.sin(x @ (w * mask)))

    def cond_loss(x, v):
        return jnp.sum(jnp.sin(condensed_matmul(x, v, jnp.asarray(indices))))

    dgx, dgw = jax.grad(dense_loss, argnums=(0, 1))(x, w_dense)
    cgx, cgv = jax.grad(cond_loss, argnums=(0, 1))(x, jnp.asarray(values))
    np.testing.assert_allclose(np.asarray(cgx), np.asarray(dgx), **TOL)
    np.testing.assert_allclose(np.asarray(cgv), np.asarray(dgw)[indices, np.arange(N_OUT)[:, None]], **TOL)


def test_jit_forward_and_grad():
    values, indices = make_condensed(seed=9, duplicates=True)
    x = _x((5, N_IN), seed=10)
    g = _x((5, N_OUT), seed=11)
    jx, jv, ji = jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices)
    y = jax.jit(condensed_matmul)(jx, jv, ji)
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)

    @jax.jit
    def grads(x, v, idx):
        return jax.grad(lambda x, v: jnp.sum(condensed_matmul(x, v, idx) * g), argnums=(0, 1))(x, v)

    gx, gv = grads(jx, jv, ji)
    ref_gx, ref_gv = grads_reference(x, g, values, indices)
    np.testing.assert_allclose(np.asarray(gx), ref_gx, **TOL)
    np.testing.assert_allclose(np.asarray(gv), ref_gv, **TOL)


def test_jit_with_closed_over_concrete_indices():
    # Indices captured as constants (the usual case for a fixed layer) are still range-checked eagerly
    # and must not break tracing.
    values, indices = make_condensed(seed=15, duplicates=True)
    jv, ji = jnp.asarray(values), jnp.asarray(indices)
    x = _x((5, N_IN), seed=16)
    y = jax.jit(lambda x: condensed_matmul(x, jv, ji))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)
    bad = ji.at[0, 0].set(N_IN)  # concrete, captured by the closure: checked while tracing
    with pytest.raises(ValueError, match="indices out of range"):
        jax.jit(lambda x: condensed_matmul(x, jv, bad))(jnp.asarray(x))


def test_int16_indices_and_dtype_promotion():
    values, indices = make_condensed(seed=12)
    x = _x((5, N_IN), seed=13)
    y = condensed_matmul(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices, jnp.int16))
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)
    y16 = condensed_matmul(jnp.asarray(x, jnp.bfloat16), jnp.asarray(values), jnp.asarray(indices))
    assert y16.dtype == jnp.float32


def test_condensed_to_dense_kernel():
    values, indices = make_condensed(seed=14, duplicates=True)
    w = condensed_to_dense_kernel(jnp.asarray(values), jnp.asarray(indices), N_IN)
    np.testing.assert_allclose(np.asarray(w), dense_reference(values, indices), **TOL)


def test_rejects_bad_arguments():
    values, indices = make_condensed()
    x, v, i = jnp.asarray(_x((5, N_IN))), jnp.asarray(values), jnp.asarray(indices)
    with pytest.raises(ValueError, match="indices must be an integer array"):
        condensed_matmul(x, v, i.astype(jnp.float32))
    with pytest.raises(ValueError, match="indices out of range"):
        condensed_matmul(x, v, i.at[2, 1].set(-1))
    with pytest.raises(ValueError, match="indices out of range"):
        condensed_matmul(x, v, i.at[0, 3].set(N_IN))
    with pytest.raises(ValueError, match="indices out of range"):
        condensed_matmul(x[:, : N_IN - 1], v, i.at[0, 3].set(N_IN - 1))
    with pytest.raises(ValueError, match="values must have shape"):
        condensed_matmul(x, v.reshape(-1), i)
    with pytest.raises(ValueError, match="values must have shape"):
        condensed_matmul(x, v[None], i)
    with pytest.raises(ValueError, match="indices must have shape"):
        condensed_matmul(x, v, i.reshape(-1))
    with pytest.raises(ValueError, match=r"indices shape \(6, 3\) must equal values shape \(6, 4\)"):
        condensed_matmul(x, v, i[:, :3])
    with pytest.raises(ValueError, match="x must be floating point"):
        condensed_matmul(x.astype(jnp.int32), v, i)
    with pytest.raises(ValueError, match="x must have ndim"):
        condensed_matmul(jnp.float32(1.0), v, i)
    with pytest.raises(ValueError, match="values must be floating point"):
        condensed_matmul(x, v.astype(jnp.int32), i)
    with pytest.raises(ValueError, match="x must be an array"):
        condensed_matmul([[1.0] * N_IN], v, i)
