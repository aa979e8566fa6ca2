"""GMP: the accelerated cubic schedule (fips.md §5) and the optax transform."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse.sharing import GMPState, gmp_sparsity, gradual_magnitude_pruning

# Swin-B's settings: 0.05 -> 0.5 (accelerated, t_accel = 150) -> 0.75; here t_end = 450, ΔT = 50.
SWIN_B = dict(final_sparsity=0.75, initial_sparsity=0.05, accelerated_sparsity=0.5, accel_step=150, end_step=450,
              update_every=50)  # fmt: skip


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 0.05),
        (149, 0.05),
        (150, 0.5),  # the accelerated jump
        (199, 0.5),  # piecewise constant between updates
        (200, 0.75 - 0.25 * (1 - 50 / 450) ** 3),
        (449, 0.75 - 0.25 * (1 - 250 / 450) ** 3),  # last cubic update at 400
        (450, 0.75),  # final sparsity from t_end on
        (10_000, 0.75),
    ],
)
def test_schedule_values(step, expected):
    assert gmp_sparsity(step, **SWIN_B) == pytest.approx(expected, abs=1e-12)
    assert float(gmp_sparsity(jnp.asarray(step), **SWIN_B)) == pytest.approx(expected, abs=1e-6)


def test_schedule_is_non_decreasing_and_plain_cubic_without_acceleration():
    s = gmp_sparsity(np.arange(500), **SWIN_B)
    assert np.all(np.diff(s) >= 0)
    plain = dict(final_sparsity=0.8, initial_sparsity=0.2, accel_step=0, end_step=100, update_every=10)
    assert gmp_sparsity(0, **plain) == pytest.approx(0.2)
    assert gmp_sparsity(55, **plain) == pytest.approx(0.8 - 0.6 * (1 - 0.5) ** 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(initial_sparsity=0.8), "must not decrease"),
        (dict(accelerated_sparsity=0.9), "must not decrease"),
        (dict(final_sparsity=1.0), "final_sparsity"),
        (dict(accel_step=450), "accel_step"),
        (dict(update_every=0), "update_every"),
        (dict(end_step=0), "end_step"),
    ],
)
def test_schedule_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gmp_sparsity(3, **(SWIN_B | kwargs))


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "v1": jnp.asarray(rng.standard_normal((8, 12)), jnp.float32),
        "v2": jnp.asarray(2.0 * rng.standard_normal((8, 12)), jnp.float32),
        "u": jnp.asarray(rng.standard_normal((4, 8)), jnp.float32),
    }


def test_transform_follows_the_schedule_to_the_final_sparsity():
    params = _params()
    schedule = dict(final_sparsity=0.8, initial_sparsity=0.2, accelerated_sparsity=0.5, accel_step=4, end_step=11,
                    update_every=3)  # fmt: skip
    tx = gradual_magnitude_pruning(optax.adam(1e-2), sparse_leaves=lambda path, leaf: leaf.shape == (8, 12), **schedule)
    state = tx.init(params)
    assert isinstance(state, GMPState) and state.masks["u"] is None
    total = 2 * 8 * 12
    assert int(state.masks["v1"].sum() + state.masks["v2"].sum()) == int(total * 0.8)  # s(0) = 0.2
    traces = []

    @jax.jit
    def step(params, state):
        traces.append(1)
        grads = jax.tree.map(lambda p: p - 0.5, params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    prev = state.masks
    for t in range(14):
        params, state = step(params, state)
        nnz = int(state.masks["v1"].sum() + state.masks["v2"].sum())
        assert nnz == max(1, int(np.floor(total * (1 - gmp_sparsity(t, **schedule)) + 1e-6))), t
        for k in ("v1", "v2"):
            m = np.asarray(state.masks[k])
            assert np.all(np.asarray(params[k])[~m] == 0)  # pruned weights exactly 0
            assert not np.any(m & ~np.asarray(prev[k]))  # only prunes
        prev = state.masks
    assert int(state.masks["v1"].sum() + state.masks["v2"].sum()) == int(total * 0.2 + 1e-6)  # s_f = 0.8
    assert len(traces) == 1  # mask updates never retrace
    # Global: the larger-scale leaf keeps more weights.
    assert int(state.masks["v2"].sum()) > int(state.masks["v1"].sum())


def test_transform_with_given_masks_and_errors():
    params = _params(1)
    masks = {"v1": jnp.abs(params["v1"]) > 0.5, "v2": jnp.abs(params["v2"]) > 0.5, "u": None}
    params = {k: v if masks[k] is None else jnp.where(masks[k], v, 0) for k, v in params.items()}
    tx = gradual_magnitude_pruning(optax.sgd(0.1), final_sparsity=0.9, end_step=2, update_every=1, masks=masks)
    state = tx.init(params)
    np.testing.assert_array_equal(state.masks["v1"], masks["v1"])
    for _ in range(3):
        updates, state = tx.update(params, state, params)
        params = optax.apply_updates(params, updates)
    assert int(state.masks["v1"].sum() + state.masks["v2"].sum()) == int(192 * 0.1 + 1e-6)
    with pytest.raises(ValueError, match="exactly one of masks"):
        gradual_magnitude_pruning(optax.sgd(0.1), final_sparsity=0.9, end_step=2, update_every=1)
    with pytest.raises(ValueError, match="needs params"):
        tx.update(params, state)
    bad = gradual_magnitude_pruning(optax.sgd(0.1), final_sparsity=0.9, end_step=2, update_every=1,
                                    masks={"v1": masks["v1"][:4], "v2": None, "u": None})  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        bad.init(params)
