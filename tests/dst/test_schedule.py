"""The DST schedule: cosine drop fraction and the mask-update step predicate."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse import dst


@pytest.mark.parametrize("alpha", [0.3, 0.5, 1.0])
def test_cosine_drop_fraction_endpoints_and_monotone(alpha):
    end = 100
    assert float(dst.cosine_drop_fraction(0, alpha=alpha, end_step=end)) == np.float32(alpha)
    assert float(dst.cosine_drop_fraction(end, alpha=alpha, end_step=end)) == 0.0
    assert float(dst.cosine_drop_fraction(end + 7, alpha=alpha, end_step=end)) == 0.0
    drops = np.asarray(dst.cosine_drop_fraction(jnp.arange(end + 10), alpha=alpha, end_step=end))
    assert drops.dtype == np.float32
    assert np.all(np.diff(drops) <= 0)
    assert np.all(drops[:end] > 0) and np.all(drops[end:] == 0)
    for t in (1, 25, 50, 99):
        expected = alpha / 2 * (1 + math.cos(math.pi * t / end))
        # float32: 1 + cos(x) cancels near x = pi, so compare with an absolute tolerance of ~1 ulp of alpha.
        got = float(dst.cosine_drop_fraction(t, alpha=alpha, end_step=end))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_cosine_drop_fraction_traced():
    f = jax.jit(lambda t: dst.cosine_drop_fraction(t, alpha=0.3, end_step=10))
    np.testing.assert_allclose(float(f(jnp.int32(5))), 0.15, rtol=1e-6)
    assert float(f(jnp.int32(10))) == 0.0


@pytest.mark.parametrize(
    ("update_every", "end_step", "expected"),
    [(3, 10, {3, 6, 9}), (3, 9, {3, 6}), (5, 10, {5}), (1, 4, {1, 2, 3}), (4, 2, set())],
)
def test_is_mask_update_step_truth_table(update_every, end_step, expected):
    steps = np.arange(0, 14)
    got = np.asarray(dst.is_mask_update_step(steps, update_every=update_every, end_step=end_step))
    assert got.dtype == np.bool_
    assert {int(t) for t in steps[got]} == expected
    for t in steps:  # scalar form agrees
        assert bool(dst.is_mask_update_step(int(t), update_every=update_every, end_step=end_step)) == (t in expected)


@pytest.mark.parametrize(
    ("kwargs", "n_mask_updates"),
    [
        ({"total_steps": 40}, 5),  # T_end = 0.75 * 40 = 30: updates at 5, 10, 15, 20, 25
        ({"total_steps": 40, "end_fraction": 1.0}, 6),  # T_end = 40: 5, ..., 30 within 32 steps
        ({"end_step": 12}, 2),  # 5, 10
    ],
)
def test_updater_end_step_resolution(kwargs, n_mask_updates, key):
    """Count the steps whose mask changes: a 40x40 leaf at 50% has >= 9 drops at every scheduled update,
    and fresh random gradients regrow other connections than the dropped ones."""
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.standard_normal((40, 40)), jnp.float32), "b": jnp.zeros((4,), jnp.float32)}
    tx = dst.rigl(
        optax.adam(1e-2), sparsity={"w": 0.5, "b": None}, key=key, update_every=5, drop_fraction=0.3, **kwargs
    )
    state = tx.init(params)
    step = jax.jit(lambda g, p, s: tx.update(g, s, p)[1])
    changed = 0
    for _ in range(32):  # fresh gradients every step, so no mask update can be a fixed point
        grads = {"w": jnp.asarray(rng.standard_normal((40, 40)), jnp.float32), "b": jnp.zeros((4,), jnp.float32)}
        new_state = step(grads, params, state)
        changed += int(jnp.any(new_state.masks["w"] != state.masks["w"]))
        state = new_state
    assert int(state.count) == 32
    assert int(state.inner_state[0].count) == 32  # the optimizer steps every call
    assert changed == n_mask_updates
