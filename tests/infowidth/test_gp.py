"""The ensemble's mean and covariance against neural_tangents.predict, endpoints and input validation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse._compat import neural_tangents as nt_compat
from jaxsparse.infowidth import fc_kernel, fc_kernel_fn, fit_ensemble, predict_ensemble

RNG = np.random.default_rng(1)
X = RNG.standard_normal((12, 5))
XT = RNG.standard_normal((7, 5))
Y = RNG.standard_normal((12, 2))
KF = fc_kernel_fn(depth=1, activation="relu", W_std=1.3, b_std=0.2)


@pytest.fixture(scope="module")
def nt_kernel_fn():
    stax = nt_compat.stax()
    return stax.serial(stax.Dense(64, 1.3, 0.2), stax.Relu(), stax.Dense(1, 1.3, 0.2))[2]


@pytest.mark.parametrize("mode", ["ntk", "nngp"])
@pytest.mark.parametrize("diag_reg", [0.0, 0.1])
def test_matches_neural_tangents_gradient_descent_mse_ensemble(nt_kernel_fn, mode, diag_reg):
    times = (0.0, 3.0, 50.0)
    # Our fit uses the NT kernel_fn; the native kernel is cross-checked against it in test_kernels.py.
    fit = fit_ensemble(nt_kernel_fn, X, Y, mode=mode, diag_reg=diag_reg)
    ours = {x_name: predict_ensemble(fit, times, x, full_covariance=True) for x_name, x in (("test", XT), ("train", X))}
    with jax.enable_x64(True):
        predict_fn = nt_compat.predict().gradient_descent_mse_ensemble(
            nt_kernel_fn, jnp.asarray(X), jnp.asarray(Y), diag_reg=diag_reg
        )
        for x_name, x in (("test", XT), ("train", X)):
            for t, p in zip(times, ours[x_name], strict=True):
                ref = predict_fn(t=t, x_test=jnp.asarray(x), get=mode, compute_cov=True)
                np.testing.assert_allclose(p.mean, np.asarray(ref.mean), rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(p.covariance, np.asarray(ref.covariance), rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(p.variance, np.diag(np.asarray(ref.covariance)), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("mode", ["ntk", "nngp"])
@pytest.mark.parametrize("diag_reg", [0.0, 0.1])
def test_training_inputs_shortcut_equals_general_formula(mode, diag_reg):
    fit = fit_ensemble(KF, X, Y, mode=mode, diag_reg=diag_reg)
    times = (0.0, 3.0, 50.0, 1e4) + ((math.inf,) if diag_reg else ())
    for a, b in zip(predict_ensemble(fit, times, full_covariance=True),
                    predict_ensemble(fit, times, X, full_covariance=True), strict=True):  # fmt: skip
        np.testing.assert_allclose(a.mean, b.mean, atol=1e-12)
        np.testing.assert_allclose(a.covariance, b.covariance, atol=1e-12)
        np.testing.assert_allclose(a.variance, np.diag(a.covariance), atol=1e-15)
        # The eigenbasis form never goes negative, unlike the cancelling general formula.
        assert np.all(a.variance >= 0)


def test_endpoints():
    fit = fit_ensemble(KF, X, Y, mode="ntk")
    p0 = predict_ensemble(fit, 0.0, XT, full_covariance=True)
    assert np.all(p0.mean == 0.0)
    np.testing.assert_allclose(p0.covariance, fc_kernel(XT, depth=1, W_std=1.3, b_std=0.2, get="nngp"), atol=1e-14)
    p_inf = predict_ensemble(fit, math.inf, full_covariance=True)
    np.testing.assert_allclose(p_inf.mean, Y, atol=1e-10)
    np.testing.assert_allclose(p_inf.covariance, 0.0, atol=1e-12)
    # Regularised: the training variance stays positive even at t = inf.
    p_reg = predict_ensemble(fit_ensemble(KF, X, Y, mode="ntk", diag_reg=0.1), math.inf)
    assert p_reg.variance.min() > 1e-4


def test_time_sequences_and_time_convention():
    fit = fit_ensemble(KF, X, Y, mode="ntk", learning_rate=0.5)
    seq = predict_ensemble(fit, [1.0, 10.0], XT)
    assert isinstance(seq, tuple) and len(seq) == 2
    np.testing.assert_array_equal(seq[1].mean, predict_ensemble(fit, 10.0, XT).mean)
    # normalize_time=False: the exponent is eta t Theta instead of eta t Theta / (N k).
    raw = fit_ensemble(KF, X, Y, mode="ntk", learning_rate=0.5, normalize_time=False)
    np.testing.assert_allclose(
        predict_ensemble(raw, 10.0 / Y.size, XT).mean, predict_ensemble(fit, 10.0, XT).mean, rtol=1e-12
    )


def test_bad_inputs_raise():
    fit = fit_ensemble(KF, X, Y)
    with pytest.raises(ValueError, match="t must be >= 0"):
        predict_ensemble(fit, -1.0)
    with pytest.raises(ValueError, match="t must be >= 0"):
        predict_ensemble(fit, [1.0, float("nan")])
    with pytest.raises(ValueError, match="feature shape"):
        predict_ensemble(fit, 1.0, np.ones((3, 4)))
    with pytest.raises(ValueError, match="same number of rows"):
        fit_ensemble(KF, X, Y[:5])
    with pytest.raises(ValueError, match="N >= 1"):
        fit_ensemble(KF, X[:0], Y[:0])
    with pytest.raises(ValueError, match="mode"):
        fit_ensemble(KF, X, Y, mode="gp")
    with pytest.raises(ValueError, match="diag_reg"):
        fit_ensemble(KF, X, Y, diag_reg=-1.0)
    with pytest.raises(ValueError, match="learning_rate"):
        fit_ensemble(KF, X, Y, learning_rate=0.0)
    with pytest.raises(TypeError, match="kernel_fn must return"):
        fit_ensemble(lambda a, b, get: None, X, Y)


def test_conv_kernel_fn_from_neural_tangents():
    # Any stax kernel_fn works, not only fully connected ones: a small CNN on 4x4 images.
    stax = nt_compat.stax()
    kernel_fn = stax.serial(stax.Conv(8, (2, 2), padding="SAME"), stax.Relu(), stax.Flatten(), stax.Dense(1, 1.5, 0.1))[
        2
    ]
    rng = np.random.default_rng(2)
    x, xt, y = rng.standard_normal((8, 4, 4, 1)), rng.standard_normal((3, 4, 4, 1)), rng.standard_normal((8, 1))
    fit = fit_ensemble(kernel_fn, x, y, mode="ntk", diag_reg=1e-3)
    ours = predict_ensemble(fit, 5.0, xt, full_covariance=True)
    with jax.enable_x64(True):
        ref = nt_compat.predict().gradient_descent_mse_ensemble(
            kernel_fn, jnp.asarray(x), jnp.asarray(y), diag_reg=1e-3
        )(t=5.0, x_test=jnp.asarray(xt), get="ntk", compute_cov=True)
    np.testing.assert_allclose(ours.mean, np.asarray(ref.mean), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.covariance, np.asarray(ref.covariance), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="feature shape"):
        predict_ensemble(fit, 1.0, xt.reshape(3, 16))
