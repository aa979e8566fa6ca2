import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.distill import kd_loss, soft_kl
from jaxsparse.nn import cross_entropy


def _logits(seed, shape=(8, 5), scale=3.0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, dtype=jnp.float32)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
def test_alpha_one_is_cross_entropy(temperature):
    zs, zt = _logits(0), _logits(1)
    y = jnp.array([0, 1, 2, 3, 4, 0, 1, 2])
    got = kd_loss(zs, zt, y, alpha=1.0, temperature=temperature)
    np.testing.assert_allclose(got, cross_entropy(zs, y), rtol=1e-6)
    # and by hand
    by_hand = -np.mean(np.asarray(jax.nn.log_softmax(zs))[np.arange(8), np.asarray(y)])
    np.testing.assert_allclose(got, by_hand, rtol=1e-6)


@pytest.mark.parametrize("temperature", [1.0, 2.0, 10.0, 40.0])
def test_student_equal_teacher_gives_zero_soft_term(temperature):
    z = _logits(2)
    y = jnp.zeros(8, jnp.int32)
    assert float(kd_loss(z, z, y, alpha=0.0, temperature=temperature)) == pytest.approx(0.0, abs=1e-6)
    # The mixed loss then reduces to alpha * CE.
    np.testing.assert_allclose(
        kd_loss(z, z, y, alpha=0.3, temperature=temperature), 0.3 * cross_entropy(z, y), rtol=1e-5, atol=1e-7
    )


def test_soft_term_is_kl_by_hand():
    zs, zt = _logits(3, (2, 3)), _logits(4, (2, 3))
    t = 3.0
    ps = np.asarray(jax.nn.softmax(zs / t), dtype=np.float64)
    pt = np.asarray(jax.nn.softmax(zt / t), dtype=np.float64)
    kl = np.sum(pt * (np.log(pt) - np.log(ps)), axis=1)
    np.testing.assert_allclose(soft_kl(zs, zt, temperature=t), kl, rtol=1e-5)
    y = jnp.array([0, 1])
    np.testing.assert_allclose(kd_loss(zs, zt, y, alpha=0.0, temperature=t), t**2 * kl.mean(), rtol=1e-5)
    np.testing.assert_allclose(kd_loss(zs, zt, y, alpha=0.0, temperature=t, scale_by_t2=False), kl.mean(), rtol=1e-5)


@pytest.mark.parametrize("temperature", [1.0, 4.0, 10.0])
def test_gradient_of_scaled_kl_is_t_times_prob_gap(temperature):
    zs, zt = _logits(5), _logits(6)
    y = jnp.zeros(8, jnp.int32)
    grad = jax.grad(lambda z: kd_loss(z, zt, y, alpha=0.0, temperature=temperature))(zs)
    expected = temperature * (jax.nn.softmax(zs / temperature) - jax.nn.softmax(zt / temperature)) / zs.shape[0]
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_teacher_gets_no_gradient_and_underflow_is_finite():
    zs = jnp.array([[0.0, 0.0, 0.0]])
    zt = jnp.array([[1000.0, 0.0, -1000.0]])  # teacher probabilities underflow to exactly 0
    y = jnp.array([0])
    value, grad_t = jax.value_and_grad(lambda t: kd_loss(zs, t, y, alpha=0.5, temperature=1.0))(zt)
    assert np.isfinite(float(value))
    np.testing.assert_array_equal(grad_t, 0.0)


def test_jit_with_traced_hyperparameters():
    zs, zt = _logits(7), _logits(8)
    y = jnp.zeros(8, jnp.int32)
    f = jax.jit(lambda a, t: kd_loss(zs, zt, y, alpha=a, temperature=t))
    np.testing.assert_allclose(f(0.25, 3.0), kd_loss(zs, zt, y, alpha=0.25, temperature=3.0), rtol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, "temperature"),
        ({"temperature": -1.0}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"alpha": 1.5}, "alpha"),
        ({"alpha": -0.1}, "alpha"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
    z = _logits(0)
    args = {"alpha": 0.5, "temperature": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        kd_loss(z, z, jnp.zeros(8, jnp.int32), **args)


def test_bad_shapes_and_labels_raise():
    z = _logits(0)
    with pytest.raises(ValueError, match="labels must lie"):
        kd_loss(z, z, jnp.full(8, 5), alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match="labels must lie"):
        kd_loss(z, z, jnp.full(8, -1), alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match="labels must have shape"):
        kd_loss(z, z, jnp.zeros(7, jnp.int32), alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match="teacher_logits shape"):
        kd_loss(z, z[:, :4], jnp.zeros(8, jnp.int32), alpha=0.5, temperature=2.0)
    with pytest.raises(ValueError, match="integers"):
        kd_loss(z, z, jnp.zeros(8), alpha=0.5, temperature=2.0)


def test_array_scalar_hyperparameters_are_accepted_and_checked():
    z = _logits(0)
    y = jnp.zeros(8, jnp.int32)
    expected = kd_loss(z, _logits(1), y, alpha=0.5, temperature=2.0)
    got = kd_loss(z, _logits(1), y, alpha=np.float32(0.5), temperature=jnp.float32(2.0))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(z, z, y, alpha=0.5, temperature=jnp.float32(0.0))
    with pytest.raises(ValueError, match="temperature must be a real scalar"):
        kd_loss(z, z, y, alpha=0.5, temperature=jnp.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="alpha"):
        kd_loss(z, z, y, alpha=True, temperature=2.0)
