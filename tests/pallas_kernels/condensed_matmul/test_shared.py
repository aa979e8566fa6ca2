"""Every condensed_matmul backend against dense numpy references: forward, custom VJP, argument checks.

The Pallas kernels run interpreted here (CPU); "pallas-tiny-tiles" uses 2x2x2 tiles so that every test spans
several output, fan-in and batch tiles and the padding paths. "dense-cached" is the dense backend handed a
cached kernel built from the same values/indices, as a `CondensedLinear` with a cache does.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.condensed_matmul import BlockSizes, condensed_matmul, condensed_to_dense_kernel, triton_available

IMPLEMENTATIONS = {
    "xla": {"implementation": "xla"},
    "xla-chunked": {"implementation": "xla", "fan_in_chunk": 3},
    "pallas": {"implementation": "pallas", "interpret": True},
    "pallas-tiny-tiles": {"implementation": "pallas", "interpret": True, "block_sizes": BlockSizes(2, 2, 2)},
    "pallas-batch-major": {
        "implementation": "pallas",
        "interpret": True,
        "block_sizes": BlockSizes(2, 4, 1, batch_major=True),
    },
    "dense": {"implementation": "dense"},
}


def _with_cached_dense_kernel(x, values, indices, bias=None, *, implementation):
    kernel = None
    try:  # bad arguments get no cache: condensed_matmul must then reject them with its own message
        kernel = condensed_to_dense_kernel(values, indices, x.shape[-1])
    except (AttributeError, TypeError, IndexError, ValueError):
        pass
    return condensed_matmul(x, values, indices, bias, implementation=implementation, dense_kernel=kernel)


@pytest.fixture(params=[*sorted(IMPLEMENTATIONS), "dense-cached"])
def cm(request):
    if request.param == "dense-cached":
        return functools.partial(_with_cached_dense_kernel, implementation="dense")
    return functools.partial(condensed_matmul, **IMPLEMENTATIONS[request.param])


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
def test_forward_equals_masked_dense(x_shape, duplicates, cm):
    values, indices = make_condensed(duplicates=duplicates)
    x = _x(x_shape)
    y = cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices))
    assert y.shape == (*x_shape[:-1], N_OUT) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)


@pytest.mark.parametrize("x_shape", [(5, N_IN), (2, 3, N_IN)])
@pytest.mark.parametrize("duplicates", [False, True])
def test_backward_equals_dense_gradients(x_shape, duplicates, cm):
    values, indices = make_condensed(seed=2, duplicates=duplicates)
    x = _x(x_shape, seed=3)
    g = _x((*x_shape[:-1], N_OUT), seed=4)

    def loss(x, v):
        return jnp.sum(cm(x, v, jnp.asarray(indices)) * g)

    gx, gv = jax.grad(loss, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(values))
    ref_gx, ref_gv = grads_reference(x, g, values, indices)
    assert gx.shape == x.shape and gv.shape == values.shape
    np.testing.assert_allclose(np.asarray(gx), ref_gx, **TOL)
    np.testing.assert_allclose(np.asarray(gv), ref_gv, **TOL)


def test_duplicate_indices_sum_in_grad_x(cm):
    # Neuron 0 reads input 2 four times: grad_x[:, 2] must be g[:, 0] * sum(values[0]).
    values = np.array([[1.0, 2.0, 3.0, 4.0]], np.float32)
    indices = np.array([[2, 2, 2, 2]], np.int32)
    x = _x((3, N_IN), seed=5)
    g = _x((3, 1), seed=6)
    gx = jax.grad(lambda x: jnp.sum(cm(x, jnp.asarray(values), jnp.asarray(indices)) * g))(jnp.asarray(x))
    expected = np.zeros((3, N_IN))
    expected[:, 2] = g[:, 0] * 10.0
    np.testing.assert_allclose(np.asarray(gx), expected, **TOL)


def test_matches_jax_dense_autodiff(cm):
    values, indices = make_condensed(seed=7, duplicates=True)
    x = jnp.asarray(_x((5, N_IN), seed=8))
    w_dense = jnp.asarray(dense_reference(values, indices), jnp.float32)
    mask = jnp.asarray(dense_reference(np.ones_like(values), indices) > 0)

    def dense_loss(x, w):
        return jnp.sum(jnp.sin(x @ (w * mask)))

    def cond_loss(x, v):
        return jnp.sum(jnp.sin(cm(x, v, jnp.asarray(indices))))

    dgx, dgw = jax.grad(dense_loss, argnums=(0, 1))(x, w_dense)
    cgx, cgv = jax.grad(cond_loss, argnums=(0, 1))(x, jnp.asarray(values))
    np.testing.assert_allclose(np.asarray(cgx), np.asarray(dgx), **TOL)
    np.testing.assert_allclose(np.asarray(cgv), np.asarray(dgw)[indices, np.arange(N_OUT)[:, None]], **TOL)


def test_jit_forward_and_grad(cm):
    values, indices = make_condensed(seed=9, duplicates=True)
    x = _x((5, N_IN), seed=10)
    g = _x((5, N_OUT), seed=11)
    jx, jv, ji = jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices)
    y = jax.jit(cm)(jx, jv, ji)
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)

    @jax.jit
    def grads(x, v, idx):
        return jax.grad(lambda x, v: jnp.sum(cm(x, v, idx) * g), argnums=(0, 1))(x, v)

    gx, gv = grads(jx, jv, ji)
    ref_gx, ref_gv = grads_reference(x, g, values, indices)
    np.testing.assert_allclose(np.asarray(gx), ref_gx, **TOL)
    np.testing.assert_allclose(np.asarray(gv), ref_gv, **TOL)


def test_jit_with_closed_over_concrete_indices(cm):
    # Indices captured as constants (the usual case for a fixed layer) are still range-checked eagerly
    # and must not break tracing.
    values, indices = make_condensed(seed=15, duplicates=True)
    jv, ji = jnp.asarray(values), jnp.asarray(indices)
    x = _x((5, N_IN), seed=16)
    y = jax.jit(lambda x: cm(x, jv, ji))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)
    bad = ji.at[0, 0].set(N_IN + 1)  # concrete, captured by the closure: checked while tracing
    with pytest.raises(ValueError, match="indices out of range"):
        jax.jit(lambda x: cm(x, jv, bad))(jnp.asarray(x))


def test_int16_indices_and_dtype_promotion(cm):
    values, indices = make_condensed(seed=12)
    x = _x((5, N_IN), seed=13)
    y = cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices, jnp.int16))
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices), **TOL)
    y16 = cm(jnp.asarray(x, jnp.bfloat16), jnp.asarray(values), jnp.asarray(indices))
    assert y16.dtype == jnp.float32


def test_cached_dense_kernel_is_used_forward_but_never_bends_gradients():
    values, indices = make_condensed(seed=40, duplicates=True)
    values[2, 3] = 0.0  # the reference reads index 0 there: same product as the empty slot
    indices[2, 3] = N_IN  # an empty slot
    x, g = _x((5, N_IN), seed=41), _x((5, N_OUT), seed=42)
    v, i = jnp.asarray(values), jnp.asarray(indices)
    w = condensed_to_dense_kernel(v, i, N_IN)
    # A plain forward multiplies by the cache as given (here deliberately 2x the true kernel: it is not re-checked).
    w_ref = dense_reference(values, np.where(indices == N_IN, 0, indices))
    y = condensed_matmul(jnp.asarray(x), v, i, implementation="dense", dense_kernel=2 * w)
    np.testing.assert_allclose(np.asarray(y), 2 * x.astype(np.float64) @ w_ref, **TOL)

    def loss(x, v, cache):
        return jnp.sum(condensed_matmul(x, v, i, implementation="dense", dense_kernel=cache) * g)

    # Differentiated, the kernel is rebuilt from values: the gradients (and the loss) are the true ones even
    # with a wrong cache, and the cache itself gets a zero cotangent.
    value, (gx, gv, gw) = jax.value_and_grad(loss, argnums=(0, 1, 2))(jnp.asarray(x), v, 2 * w)
    ref_x, ref_v = grads_reference(x, g, values, np.where(indices == N_IN, 0, indices))
    ref_v[2, 3] = 0.0  # an empty slot reads nothing, so its value gets no gradient
    np.testing.assert_allclose(float(value), float(np.sum((x.astype(np.float64) @ w_ref) * g)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(gx), ref_x, **TOL)
    np.testing.assert_allclose(np.asarray(gv), ref_v, **TOL)
    assert gv[2, 3] == 0.0
    np.testing.assert_array_equal(np.asarray(gw), 0.0)
    with pytest.raises(ValueError, match=r"dense_kernel must have shape \(12, 6\)"):
        condensed_matmul(jnp.asarray(x), v, i, implementation="dense", dense_kernel=w.T)


def test_condensed_to_dense_kernel():
    values, indices = make_condensed(seed=14, duplicates=True)
    w = condensed_to_dense_kernel(jnp.asarray(values), jnp.asarray(indices), N_IN)
    np.testing.assert_allclose(np.asarray(w), dense_reference(values, indices), **TOL)


def test_rejects_bad_arguments(cm):
    values, indices = make_condensed()
    x, v, i = jnp.asarray(_x((5, N_IN))), jnp.asarray(values), jnp.asarray(indices)
    with pytest.raises(ValueError, match="indices must be an integer array"):
        cm(x, v, i.astype(jnp.float32))
    with pytest.raises(ValueError, match="indices out of range"):
        cm(x, v, i.at[2, 1].set(-1))
    with pytest.raises(ValueError, match="indices out of range"):
        cm(x, v, i.at[0, 3].set(N_IN + 1))
    with pytest.raises(ValueError, match="indices out of range"):
        cm(x[:, : N_IN - 1], v, i.at[0, 3].set(N_IN))
    with pytest.raises(ValueError, match="values must have shape"):
        cm(x, v.reshape(-1), i)
    with pytest.raises(ValueError, match="values must have shape"):
        cm(x, v[None], i)
    with pytest.raises(ValueError, match="indices must have shape"):
        cm(x, v, i.reshape(-1))
    with pytest.raises(ValueError, match=r"indices shape \(6, 3\) must equal values shape \(6, 4\)"):
        cm(x, v, i[:, :3])
    with pytest.raises(ValueError, match="x must be floating point"):
        cm(x.astype(jnp.int32), v, i)
    with pytest.raises(ValueError, match="x must have ndim"):
        cm(jnp.float32(1.0), v, i)
    with pytest.raises(ValueError, match="values must be floating point"):
        cm(x, v.astype(jnp.int32), i)
    with pytest.raises(ValueError, match="x must be an array"):
        cm([[1.0] * N_IN], v, i)


def test_empty_slots_contribute_nothing_even_next_to_inf(cm):
    # Index N_IN is an empty slot: it must not read x[:, 0] (an Inf there would turn padding into NaN).
    if cm.keywords["implementation"] == "dense":
        pytest.skip("a dense GEMM multiplies the Inf by the zeros of W: NaN in every output, as dense math says")
    values, indices = make_condensed(seed=20)
    indices[2, 1:] = N_IN
    indices[5, :] = N_IN
    x = _x((3, N_IN), seed=21)
    x[:, 0] = np.inf
    live = indices != N_IN
    y = np.asarray(cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices)))
    assert np.all(y[:, 5] == 0.0)
    reads_col0 = np.any((indices == 0) & live, axis=1)
    assert np.all(np.isfinite(y[:, ~reads_col0]))
    assert np.all(np.isinf(y[:, reads_col0]) | np.isnan(y[:, reads_col0]))  # Inf propagates as in dense
    x[:, 0] = 1.0
    w = dense_reference(np.where(live, values, 0.0), np.where(live, indices, 0))
    y = np.asarray(cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices)))
    np.testing.assert_allclose(y, x.astype(np.float64) @ w, **TOL)


def test_nan_propagates_to_every_output_that_reads_it(cm):
    values, indices = make_condensed(seed=22)
    x = _x((2, N_IN), seed=23)
    col = indices[3, 0]
    x[1, col] = np.nan
    y = np.asarray(cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices)))
    assert not np.isnan(y[0]).any()
    if cm.keywords["implementation"] == "dense":  # NaN * 0 = NaN: a dense GEMM poisons the whole row
        assert np.isnan(y[1]).all()
    else:
        np.testing.assert_array_equal(np.isnan(y[1]), np.any(indices == col, axis=1))


def test_traced_out_of_range_indices_read_nothing(cm):
    # Under jit indices cannot be checked; every backend treats them as empty slots (never a wild read).
    values, indices = make_condensed(seed=24)
    bad = indices.copy()
    bad[0, 0], bad[3, 2] = -5, N_IN + 100
    x = _x((4, N_IN), seed=25)
    y = jax.jit(lambda x, v, i: cm(x, v, i))(jnp.asarray(x), jnp.asarray(values), jnp.asarray(bad))
    ok = (bad >= 0) & (bad < N_IN)
    w = dense_reference(np.where(ok, values, 0.0), np.where(ok, bad, 0))
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ w, **TOL)


def test_bias_forward_and_gradient(cm):
    values, indices = make_condensed(seed=26)
    x, g = _x((5, N_IN), seed=27), _x((5, N_OUT), seed=28)
    bias = _x((N_OUT,), seed=29)
    y = cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices), jnp.asarray(bias))
    np.testing.assert_allclose(np.asarray(y), x.astype(np.float64) @ dense_reference(values, indices) + bias, **TOL)
    gb = jax.grad(lambda b: jnp.sum(cm(jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices), b) * g))(
        jnp.asarray(bias)
    )
    np.testing.assert_allclose(np.asarray(gb), g.sum(0), **TOL)


def test_vmap_over_a_stack_of_inputs_and_weights(cm):
    values, indices = make_condensed(seed=30, duplicates=True)
    xs = _x((3, 4, N_IN), seed=31)
    vs = np.stack([values, 2 * values, -values])
    y = jax.vmap(lambda x, v: cm(x, v, jnp.asarray(indices)))(jnp.asarray(xs), jnp.asarray(vs))
    for n in range(3):
        np.testing.assert_allclose(np.asarray(y[n]), xs[n].astype(np.float64) @ dense_reference(vs[n], indices), **TOL)


@pytest.mark.parametrize("batch", [1, 7])
def test_bf16_matches_reference_with_f32_accumulation(batch, cm):
    from pallas_kernels.condensed_matmul import condensed_matmul_reference

    values, indices = make_condensed(seed=32, duplicates=True)
    x = jnp.asarray(_x((batch, N_IN), seed=33), jnp.bfloat16)
    v = jnp.asarray(values, jnp.bfloat16)
    y = cm(x, v, jnp.asarray(indices, jnp.int16))
    assert y.dtype == jnp.bfloat16
    ref = condensed_matmul_reference(x, v, jnp.asarray(indices))
    np.testing.assert_allclose(np.asarray(y, np.float32), np.asarray(ref, np.float32), rtol=1e-2, atol=1e-2)
    gx, gv = jax.grad(lambda x, v: jnp.sum(cm(x, v, jnp.asarray(indices)).astype(jnp.float32)), (0, 1))(x, v)
    rgx, rgv = jax.grad(
        lambda x, v: jnp.sum(condensed_matmul_reference(x, v, jnp.asarray(indices)).astype(jnp.float32)), (0, 1)
    )(x, v)
    assert gx.dtype == jnp.bfloat16 and gv.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(gx, np.float32), np.asarray(rgx, np.float32), rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(np.asarray(gv, np.float32), np.asarray(rgv, np.float32), rtol=1e-2, atol=1e-2)


def test_triton_backend_unavailable_off_gpu_raises_clearly():
    if triton_available():
        pytest.skip("jax-triton is installed here")
    values, indices = make_condensed()
    with pytest.raises(RuntimeError, match="jax-triton"):
        condensed_matmul(jnp.asarray(_x((2, N_IN))), jnp.asarray(values), jnp.asarray(indices), implementation="triton")
