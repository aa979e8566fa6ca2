"""FiPSMLP: orientation against nnx.Linear (check 6), to_dense, the condensed implementation, and gradients of
padded ranks at init (check 4)."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsparse.sharing import FactorIndex, FiPSMLP, FiPSParam, factor_to_condensed, gelu
from pallas_kernels.condensed_matmul import condensed_matmul

D, R, H = 6, 10, 16


def _arrays(seed=0, density=0.4):
    rng = np.random.default_rng(seed)
    f = lambda *s: jnp.asarray(rng.standard_normal(s), jnp.float32)
    m1, m2 = rng.random((R, H)) < density, rng.random((R, H)) < density
    m1[:, 0] = False  # an empty column (fan-in 0 for hidden neuron 0 of fc1)
    return dict(u=f(D, R), v1=jnp.where(m1, f(R, H), 0), v2=jnp.where(m2, f(R, H), 0), b1=f(H), b2=f(D),
                m1=m1, m2=m2, x=f(3, 5, D))  # fmt: skip


def _linear(kernel, bias):
    layer = nnx.Linear(kernel.shape[0], kernel.shape[1], rngs=nnx.Rngs(0))
    layer.kernel[...] = kernel
    layer.bias[...] = bias
    return layer


def test_orientation_against_linear():
    a = _arrays()
    mlp = FiPSMLP(a["v1"], a["v2"], a["b1"], a["b2"], group=1)
    bases = nnx.List([FiPSParam(jnp.zeros((D, R))), FiPSParam(a["u"])])  # group 1 picks the second base
    fc1 = _linear(a["u"] @ a["v1"], a["b1"])  # Linear with kernel U V1 ([in, out]; torch weight (U V1)^T)
    fc2 = _linear((a["u"] @ a["v2"]).T, a["b2"])  # Linear with kernel (U V2)^T (torch weight U V2)
    np.testing.assert_allclose(mlp.fc1_forward(a["x"], bases), fc1(a["x"]), atol=1e-5)
    hid = jnp.asarray(np.random.default_rng(5).standard_normal((3, 5, H)), jnp.float32)
    np.testing.assert_allclose(mlp.fc2_forward(hid, bases), fc2(hid), atol=1e-5)
    np.testing.assert_allclose(mlp(a["x"], mlp_bases=bases), fc2(gelu(fc1(a["x"]))), atol=1e-5)
    k1, k2 = mlp.to_dense(bases)
    np.testing.assert_allclose(k1, fc1.kernel[...], atol=1e-6)
    np.testing.assert_allclose(k2, fc2.kernel[...], atol=1e-6)
    k1u, _ = mlp.to_dense(bases[1])
    np.testing.assert_array_equal(k1u, k1)


def test_factor_to_condensed_pads_variable_fan_in():
    v = jnp.asarray([[1.0, 0.0, 5.0], [2.0, 0.0, 0.0], [3.0, 4.0, 6.0]])  # [in=3, out=3]
    values, indices = factor_to_condensed(v, v != 0)
    # Column fan-ins 3, 1, 2: k = 3, short columns padded with index in=3 and value 0.
    np.testing.assert_array_equal(indices, [[0, 1, 2], [2, 3, 3], [0, 2, 3]])
    np.testing.assert_array_equal(values, [[1, 2, 3], [4, 0, 0], [5, 6, 0]])
    x = jnp.asarray([[1.0, 10.0, 100.0]])
    np.testing.assert_allclose(condensed_matmul(x, values, indices, implementation="xla"), x @ v)
    with pytest.raises(ValueError, match="shape"):
        factor_to_condensed(v, (v != 0)[:2])


@pytest.mark.parametrize("backend", ["xla", "dense"])
def test_condensed_equals_dense(backend):
    a = _arrays(seed=1)
    bases = [a["u"]]
    dense = FiPSMLP(a["v1"], a["v2"], a["b1"], a["b2"], group=0)
    cond = FiPSMLP(a["v1"], a["v2"], a["b1"], a["b2"], group=0, implementation="condensed",
                   masks=(a["m1"], a["m2"]), backend=backend)  # fmt: skip
    assert isinstance(cond.fc1_indices, FactorIndex)
    assert cond.fc1_indices[...].shape[0] == H and cond.fc2_indices[...].shape[0] == R
    # Jitted: eager dispatch of the gather's many small ops is slow on CPU.
    forward = nnx.jit(lambda m, x: m(x, bases))
    np.testing.assert_allclose(forward(cond, a["x"]), forward(dense, a["x"]), rtol=1e-5, atol=1e-5)
    # Gradients reach the factors through the gather, and agree with the dense path on kept weights.
    grad = nnx.jit(nnx.grad(lambda m: jnp.sum(m(a["x"], bases) ** 2)))
    g_dense, g_cond = grad(dense), grad(cond)
    np.testing.assert_allclose(np.where(a["m1"], g_dense["V1"][...], 0), g_cond["V1"][...], rtol=1e-4, atol=1e-4)
    # Default masks are the factors' nonzeros; with_implementation switches and keeps the values.
    switched = dense.with_implementation("condensed", backend=backend)
    np.testing.assert_allclose(forward(switched, a["x"]), forward(dense, a["x"]), rtol=1e-5, atol=1e-5)


def test_padded_rank_gradients_at_init():
    """r > d: dL/dU_pad = G V_pad^T != 0 and dL/dV_pad = U_pad^T G = 0 at step 0 (check 4)."""
    from jaxsparse.sharing import svd_init

    rng = np.random.default_rng(2)
    d, h, r = 4, 16, 7
    w1, w2 = rng.standard_normal((d, h)), rng.standard_normal((h, d))
    u, v = svd_init(jnp.asarray(np.concatenate([w1, w2.T], axis=1), jnp.float32), r)
    mlp = FiPSMLP(v[:, :h], v[:, h:], group=0)
    bases = nnx.List([FiPSParam(u)])
    x = jnp.asarray(rng.standard_normal((8, d)), jnp.float32)
    target = jnp.asarray(rng.standard_normal((8, d)), jnp.float32)
    # Outputs are unchanged by the padding.
    ref = gelu(x @ jnp.asarray(w1, jnp.float32)) @ jnp.asarray(w2, jnp.float32)
    np.testing.assert_allclose(mlp(x, bases), ref, atol=1e-4)

    def loss(mlp, bases):
        return jnp.mean((mlp(x, bases) - target) ** 2)

    g_mlp, g_bases = nnx.grad(loss, argnums=(0, 1))(mlp, bases)
    g_u = np.asarray(g_bases[0][...])
    assert np.all(np.linalg.norm(g_u[:, d:], axis=0) > 1e-6)  # every padded base column gets a gradient
    for name in ("V1", "V2"):
        np.testing.assert_array_equal(np.asarray(g_mlp[name][...])[d:], 0.0)  # padded factor rows do not
        assert np.any(np.asarray(g_mlp[name][...])[:d] != 0)


def test_errors():
    a = _arrays()
    with pytest.raises(ValueError, match="v1 and v2"):
        FiPSMLP(a["v1"], a["v2"][:, :4], group=0)
    with pytest.raises(ValueError, match="b1"):
        FiPSMLP(a["v1"], a["v2"], a["b2"], group=0)
    with pytest.raises(ValueError, match="implementation"):
        FiPSMLP(a["v1"], a["v2"], group=0, implementation="sparse")
    with pytest.raises(ValueError, match="backend"):
        FiPSMLP(a["v1"], a["v2"], group=0, implementation="condensed", backend="cuda")
    with pytest.raises(ValueError, match="group"):
        FiPSMLP(a["v1"], a["v2"], group=-1)
    mlp = FiPSMLP(a["v1"], a["v2"], group=1)
    with pytest.raises(ValueError, match=r"mlp_bases=model\.mlp_bases"):
        mlp(a["x"])
    with pytest.raises(ValueError, match="uses group 1"):
        mlp(a["x"], [a["u"]])
    with pytest.raises(ValueError, match=r"\[d, 10\]"):
        mlp(a["x"], [a["u"], a["u"][:, :3]])
