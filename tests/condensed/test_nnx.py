"""CondensedLinear and NMLinear against masked dense numpy layers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsparse.condensed import CondensedLinear, DenseCache, NMLinear, condensed_forward

N_IN, N_OUT, K = 12, 6, 4
ABLATED = (2,)
ACTIVE = np.array([j for j in range(N_OUT) if j not in ABLATED])
TOL = {"rtol": 1e-5, "atol": 1e-5}


def layer_np(seed=0):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((N_IN, N_OUT)).astype(np.float32)
    mask = np.zeros((N_IN, N_OUT), bool)
    for j in ACTIVE:
        mask[rng.choice(N_IN, K, replace=False), j] = True
    bias = rng.standard_normal(N_OUT).astype(np.float32)
    return kernel, mask, bias


def dense_out(x, kernel, mask, bias):
    """Masked dense layer restricted to the active neurons."""
    y = np.asarray(x, np.float64) @ np.where(mask, kernel, 0.0).astype(np.float64) + bias
    return y[..., ACTIVE]


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _has_scatter(fn, *args):
    return "scatter-add" in str(jax.make_jaxpr(fn)(*args))


# ------------------------------------------------------------------------------------ CondensedLinear


@pytest.mark.parametrize("implementation", ["xla", "dense", "auto"])
@pytest.mark.parametrize("x_shape", [(1, N_IN), (64, N_IN), (2, 3, N_IN), (N_IN,)])
def test_condensed_linear_matches_masked_dense(implementation, x_shape):
    kernel, mask, bias = layer_np()
    layer = CondensedLinear.from_dense(kernel, mask, bias, implementation=implementation)
    assert layer.in_features == N_IN and layer.out_features == N_OUT
    np.testing.assert_array_equal(np.asarray(layer.active_neurons[...]), ACTIVE)
    x = _x(x_shape)
    y = layer(jnp.asarray(x))
    assert y.shape == (*x_shape[:-1], ACTIVE.size) and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), dense_out(x, kernel, mask, bias), **TOL)


def test_auto_picks_xla_gather_at_batch_1_and_dense_at_batch_64():
    kernel, mask, bias = layer_np()
    layer = CondensedLinear.from_dense(kernel, mask, bias, implementation="auto")
    fwd = lambda x: layer(x)
    assert not _has_scatter(fwd, jnp.zeros((1, N_IN)))
    assert _has_scatter(fwd, jnp.zeros((64, N_IN)))


def test_auto_with_a_dense_cache_uses_it_instead_of_scattering():
    kernel, mask, bias = layer_np(seed=30)
    layer = CondensedLinear.from_dense(kernel, mask, bias, implementation="auto", cache_dense_kernel=True)
    assert layer.has_dense_cache
    cache = nnx.state(layer, DenseCache)
    assert len(jax.tree.leaves(cache)) == 1 and jax.tree.leaves(cache)[0].shape == (N_IN, ACTIVE.size)
    fwd = lambda x: layer(x)
    for batch in (1, 64):
        x = _x((batch, N_IN), seed=31)
        assert not _has_scatter(fwd, jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), dense_out(x, kernel, mask, bias), **TOL)
    layer.drop_dense_cache()
    assert not layer.has_dense_cache
    assert _has_scatter(lambda x: layer(x), jnp.zeros((64, N_IN)))  # a new function: traces are cached by it


@pytest.mark.parametrize("implementation", ["dense", "auto"])
def test_dense_cache_never_bends_training_and_refresh_resyncs_it(implementation):
    kernel, mask, bias = layer_np(seed=32)
    cached = CondensedLinear.from_dense(kernel, mask, bias, implementation=implementation, cache_dense_kernel=True)
    plain = CondensedLinear.from_dense(kernel, mask, bias, implementation="xla")
    x = jnp.asarray(_x((64, N_IN), seed=33))
    g = _x((64, ACTIVE.size), seed=34)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: jnp.sum(m(x) * g))(model)
        optimizer.update(model, grads)

    cache0 = np.asarray(cached.dense_kernel[...]).copy()
    for model in (cached, plain):
        optimizer = nnx.Optimizer(model, optax.sgd(0.1), wrt=nnx.Param)
        for _ in range(3):  # later steps run while the cache is stale: gradients must still be the true ones
            step(model, optimizer)
    np.testing.assert_allclose(np.asarray(cached.values[...]), np.asarray(plain.values[...]), **TOL)
    np.testing.assert_allclose(np.asarray(cached.bias[...]), np.asarray(plain.bias[...]), **TOL)
    np.testing.assert_array_equal(np.asarray(cached.dense_kernel[...]), cache0)  # the optimizer leaves it alone
    # Inference through the stale cache still gives the old kernel's output (documented); refresh fixes it.
    trained = np.asarray(plain(x))
    assert not np.allclose(np.asarray(cached(x)), trained, **TOL)  # "auto" runs dense at batch 64, cached
    cached.refresh_dense_cache()
    np.testing.assert_allclose(np.asarray(cached(x)), trained, **TOL)
    np.testing.assert_allclose(np.asarray(nnx.jit(lambda m, x: m(x))(cached, x)), trained, **TOL)


def test_condensed_linear_without_bias():
    kernel, mask, _ = layer_np(seed=3)
    layer = CondensedLinear.from_dense(kernel, mask, implementation="xla")
    assert layer.bias is None
    x = _x((5, N_IN), seed=4)
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), dense_out(x, kernel, mask, 0.0), **TOL)
    _, _, bias = layer.to_dense()
    assert bias is None


@pytest.mark.parametrize("implementation", ["xla", "dense"])
def test_condensed_linear_grads_match_dense(implementation):
    kernel, mask, bias = layer_np(seed=5)
    layer = CondensedLinear.from_dense(kernel, mask, bias, implementation=implementation)
    x = _x((8, N_IN), seed=6)
    g = _x((8, ACTIVE.size), seed=7)

    def loss(model, x):
        return jnp.sum(model(x) * g)

    grads = nnx.grad(loss, argnums=nnx.DiffState(0, nnx.Param))(layer, jnp.asarray(x))
    # Only nnx.Param leaves are differentiated: values and bias, never the integer connectivity.
    assert set(grads.keys()) == {"values", "bias"}
    grad_w = np.asarray(x, np.float64).T @ np.asarray(g, np.float64)  # [in, n_active]
    idx = np.asarray(layer.indices[...])
    ref_values = grad_w[idx, np.arange(ACTIVE.size)[:, None]]
    np.testing.assert_allclose(np.asarray(grads["values"][...]), ref_values, **TOL)
    np.testing.assert_allclose(np.asarray(grads["bias"][...]), g.astype(np.float64).sum(0), **TOL)

    # And grad w.r.t. x equals the masked dense layer's.
    gx = jax.grad(lambda x: loss(layer, x))(jnp.asarray(x))
    w_active = np.where(mask, kernel, 0.0)[:, ACTIVE].astype(np.float64)
    np.testing.assert_allclose(np.asarray(gx), g.astype(np.float64) @ w_active.T, **TOL)


def test_condensed_linear_to_dense_round_trip():
    kernel, mask, bias = layer_np(seed=8)
    layer = CondensedLinear.from_dense(kernel, mask, bias)
    k2, m2, b2 = layer.to_dense()
    np.testing.assert_array_equal(np.asarray(m2), mask)
    np.testing.assert_array_equal(np.asarray(k2), np.where(mask, kernel, 0.0))
    ref_bias = bias.copy()
    ref_bias[list(ABLATED)] = 0.0
    np.testing.assert_array_equal(np.asarray(b2), ref_bias)
    again = CondensedLinear.from_dense(k2, m2, b2)
    np.testing.assert_array_equal(np.asarray(again.values[...]), np.asarray(layer.values[...]))
    np.testing.assert_array_equal(np.asarray(again.indices[...]), np.asarray(layer.indices[...]))


@pytest.mark.parametrize("implementation", ["xla", "dense"])
def test_condensed_linear_int16_indices(implementation):
    kernel, mask, bias = layer_np(seed=9)
    layer = CondensedLinear.from_dense(kernel, mask, bias, implementation=implementation, index_dtype=jnp.int16)
    assert layer.indices[...].dtype == jnp.int16
    x = _x((5, N_IN), seed=10)
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), dense_out(x, kernel, mask, bias), **TOL)
    grads = nnx.grad(lambda m, x: jnp.sum(m(x)))(layer, jnp.asarray(x))
    assert grads["values"][...].shape == (ACTIVE.size, K)


def test_condensed_linear_under_nnx_jit():
    kernel, mask, bias = layer_np(seed=11)
    x = _x((5, N_IN), seed=12)
    for implementation in ("xla", "dense"):
        layer = CondensedLinear.from_dense(kernel, mask, bias, implementation=implementation)
        y = nnx.jit(lambda m, x: m(x))(layer, jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(y), dense_out(x, kernel, mask, bias), **TOL)


def test_condensed_linear_under_jax_jit_closure():
    kernel, mask, bias = layer_np(seed=16)
    x = _x((5, N_IN), seed=17)
    for implementation in ("xla", "dense"):
        layer = CondensedLinear.from_dense(kernel, mask, bias, implementation=implementation)
        y = jax.jit(lambda x, layer=layer: layer(x))(jnp.asarray(x))
        np.testing.assert_allclose(np.asarray(y), dense_out(x, kernel, mask, bias), **TOL)


def test_condensed_linear_optimizer_step_updates_values_not_indices():
    kernel, mask, bias = layer_np(seed=13)
    layer = CondensedLinear.from_dense(kernel, mask, bias, implementation="xla")
    optimizer = nnx.Optimizer(layer, optax.sgd(0.1), wrt=nnx.Param)
    x = jnp.asarray(_x((8, N_IN), seed=14))
    g = _x((8, ACTIVE.size), seed=15)
    values0 = np.asarray(layer.values[...]).copy()
    bias0 = np.asarray(layer.bias[...]).copy()
    indices0 = np.asarray(layer.indices[...]).copy()
    active0 = np.asarray(layer.active_neurons[...]).copy()

    @nnx.jit
    def step(model, optimizer, x):
        grads = nnx.grad(lambda m: jnp.sum(m(x) * g))(model)
        optimizer.update(model, grads)

    step(layer, optimizer, x)
    grad_w = np.asarray(x, np.float64).T @ g.astype(np.float64)
    ref_grad_values = grad_w[indices0, np.arange(ACTIVE.size)[:, None]]
    np.testing.assert_allclose(np.asarray(layer.values[...]), values0 - 0.1 * ref_grad_values, **TOL)
    np.testing.assert_allclose(np.asarray(layer.bias[...]), bias0 - 0.1 * g.sum(0), **TOL)
    assert not np.array_equal(np.asarray(layer.values[...]), values0)
    np.testing.assert_array_equal(np.asarray(layer.indices[...]), indices0)
    assert layer.indices[...].dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(layer.active_neurons[...]), active0)


def test_condensed_linear_rejects_bad_arguments():
    kernel, mask, bias = layer_np()
    layer = CondensedLinear.from_dense(kernel, mask, bias)
    v, i = layer.values[...], layer.indices[...]
    with pytest.raises(ValueError, match="implementation"):
        CondensedLinear.from_dense(kernel, mask, bias, implementation="pallas?")
    with pytest.raises(ValueError, match="in_features"):
        layer(jnp.zeros((2, N_IN + 1)))
    with pytest.raises(ValueError, match="in_features"):
        CondensedLinear(v, i, in_features=0)
    with pytest.raises(ValueError, match="indices out of range"):
        CondensedLinear(v, i, in_features=int(np.asarray(i).max()) - 1)  # max id = in_features + 1
    with pytest.raises(ValueError, match="bias"):
        CondensedLinear.from_dense(kernel, mask, bias[:3])
    with pytest.raises(ValueError, match="bias"):
        CondensedLinear(v, i, in_features=N_IN, bias=jnp.zeros(N_OUT))
    with pytest.raises(ValueError, match="active_neurons"):
        CondensedLinear(v, i, in_features=N_IN, active_neurons=jnp.arange(3))
    with pytest.raises(ValueError, match="active_neurons"):
        CondensedLinear(v, i, in_features=N_IN, active_neurons=jnp.arange(5) + 1)
    with pytest.raises(ValueError, match="kernel"):
        CondensedLinear.from_dense(kernel.reshape(2, 6, 6), mask.reshape(2, 6, 6))
    with pytest.raises(ValueError, match="constant fan-in"):
        CondensedLinear.from_dense(kernel, np.ones_like(mask) & (np.arange(N_IN)[:, None] <= np.arange(N_OUT)))
    with pytest.raises(ValueError, match="indices must be an integer"):
        CondensedLinear(v, i.astype(jnp.float32), in_features=N_IN)
    with pytest.raises(ValueError, match="cache_dense_kernel must be a bool"):
        CondensedLinear(v, i, in_features=N_IN, cache_dense_kernel="yes")
    with pytest.raises(ValueError, match="cache_dense_kernel must be a bool"):
        NMLinear(NM_IN, NM_OUT, n=N, m=M, rngs=nnx.Rngs(0), cache_dense_kernel=1)
    with pytest.raises(ValueError, match="dense_kernel must have shape"):
        condensed_forward(jnp.zeros((2, N_IN)), v, i, None, in_features=N_IN, dense_kernel=jnp.zeros((N_IN, 1)))


# --------------------------------------------------------------------------------------------- NMLinear

NM_IN, NM_OUT, N, M = 16, 6, 2, 4


def nm_reference(kernel, n, m):
    """Top-n |w| per group of m consecutive inputs, per output column (ties: lower index)."""
    keep = np.zeros(kernel.shape, bool)
    for j in range(kernel.shape[1]):
        for g0 in range(0, kernel.shape[0], m):
            order = np.argsort(-np.abs(kernel[g0 : g0 + m, j]), kind="stable")[:n]
            keep[g0 + order, j] = True
    return keep


@pytest.mark.parametrize("implementation", ["xla", "dense", "auto"])
def test_nm_linear_init(implementation):
    layer = NMLinear(NM_IN, NM_OUT, n=N, m=M, rngs=nnx.Rngs(0), implementation=implementation)
    kernel, mask, bias = layer.to_dense()
    mask = np.asarray(mask)
    assert mask.shape == (NM_IN, NM_OUT) and kernel.shape == (NM_IN, NM_OUT)
    np.testing.assert_array_equal(mask.reshape(NM_IN // M, M, NM_OUT).sum(1), N)
    np.testing.assert_array_equal(np.asarray(kernel)[~mask], 0.0)
    assert np.all(np.asarray(kernel)[mask] != 0.0)
    np.testing.assert_array_equal(np.asarray(bias), np.zeros(NM_OUT))
    assert layer.values[...].shape == (NM_OUT, NM_IN // M, N) and layer.positions[...].dtype == jnp.uint8
    x = _x((5, NM_IN), seed=20)
    ref = x.astype(np.float64) @ np.asarray(kernel, np.float64) + np.asarray(bias)
    np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), ref, **TOL)


@pytest.mark.parametrize("implementation", ["xla", "dense"])
def test_nm_linear_from_dense(implementation):
    rng = np.random.default_rng(21)
    kernel = rng.integers(-3, 4, size=(NM_IN, NM_OUT)).astype(np.float32)  # many ties in |w|
    bias = rng.standard_normal(NM_OUT).astype(np.float32)
    layer = NMLinear.from_dense(kernel, N, M, bias, implementation=implementation)
    k2, m2, b2 = layer.to_dense()
    ref_mask = nm_reference(kernel, N, M)
    np.testing.assert_array_equal(np.asarray(m2), ref_mask)
    np.testing.assert_array_equal(np.asarray(k2), np.where(ref_mask, kernel, 0.0))
    np.testing.assert_array_equal(np.asarray(b2), bias)
    for x_shape in [(5, NM_IN), (2, 3, NM_IN)]:
        x = _x(x_shape, seed=22)
        ref = x.astype(np.float64) @ np.where(ref_mask, kernel, 0.0) + bias
        np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), ref, **TOL)


def test_nm_linear_without_bias_and_n_equals_m():
    kernel = _x((NM_IN, NM_OUT), seed=23)
    layer = NMLinear.from_dense(kernel, M, M)
    k2, m2, b2 = layer.to_dense()
    assert b2 is None and layer.bias is None
    np.testing.assert_array_equal(np.asarray(m2), np.ones((NM_IN, NM_OUT), bool))
    np.testing.assert_array_equal(np.asarray(k2), kernel)
    layer = NMLinear(NM_IN, NM_OUT, n=1, m=2, rngs=nnx.Rngs(1), use_bias=False)
    assert layer.bias is None


@pytest.mark.parametrize(("implementation", "cache"), [("xla", False), ("auto", True), ("dense", True)])
def test_nm_linear_grads_match_dense(implementation, cache):
    kernel = _x((NM_IN, NM_OUT), seed=24)
    layer = NMLinear.from_dense(
        kernel, N, M, np.zeros(NM_OUT, np.float32), implementation=implementation, cache_dense_kernel=cache
    )
    assert layer.has_dense_cache == cache
    x = _x((8, NM_IN), seed=25)
    g = _x((8, NM_OUT), seed=26)
    if cache:  # the cache is what a plain forward multiplies by (here deliberately doubled)
        layer.dense_kernel[...] = 2 * layer.dense_kernel[...]
        dense, _, _ = layer.to_dense()
        np.testing.assert_allclose(np.asarray(layer(jnp.asarray(x))), 2 * x @ np.asarray(dense), **TOL)
    grads = nnx.grad(lambda m, x: jnp.sum(m(x) * g))(layer, jnp.asarray(x))  # never bent by the cache
    grad_w = x.astype(np.float64).T @ g.astype(np.float64)
    pos = np.asarray(layer.positions[...]).astype(np.int64)  # [out, in // M, N] offsets within each group
    rows = np.arange(NM_IN // M)[None, :, None] * M + pos
    expected = grad_w[rows, np.arange(NM_OUT)[:, None, None]]
    np.testing.assert_allclose(np.asarray(grads["values"][...]), expected, **TOL)
    np.testing.assert_allclose(np.asarray(grads["bias"][...]), g.sum(0), **TOL)


def test_nm_linear_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"n must satisfy 0 <= n <= m"):
        NMLinear(NM_IN, NM_OUT, n=5, m=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"m=3 does not divide"):
        NMLinear(NM_IN, NM_OUT, n=1, m=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="m must be positive"):
        NMLinear(NM_IN, NM_OUT, n=0, m=0, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n must be >= 1"):
        NMLinear(NM_IN, NM_OUT, n=0, m=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="n must be an int"):
        NMLinear(NM_IN, NM_OUT, n=1.5, m=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="rngs"):
        NMLinear(NM_IN, NM_OUT, n=2, m=4)
    with pytest.raises(ValueError, match="in_features"):
        NMLinear(0, NM_OUT, n=2, m=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="kernel must have shape"):
        NMLinear(NM_IN, NM_OUT, n=2, m=4, kernel=np.ones((NM_OUT, NM_IN), np.float32))
    with pytest.raises(ValueError, match="bias"):
        NMLinear.from_dense(np.ones((NM_IN, NM_OUT), np.float32), 2, 4, bias=np.zeros(3))
    with pytest.raises(ValueError, match="implementation"):
        NMLinear(NM_IN, NM_OUT, n=2, m=4, rngs=nnx.Rngs(0), implementation="fast")
