"""The fixed fan-in head, SET rewiring, the auxiliary schedule, losses and memory accounting."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse.xmc import (
    XMCModelSpec,
    aux_weight,
    bce_loss,
    fixed_fan_in_logits,
    init_fixed_fan_in,
    init_xmc,
    make_train_step,
    memory_report,
    set_rewire,
    squared_hinge_loss,
    xmc_forward,
)


def _dense_kernel(values, indices, n_in):
    """Independent numpy scatter: W[indices[l, j], l] += values[l, j] (duplicates add)."""
    w = np.zeros((n_in, values.shape[0]), np.float64)
    for label in range(values.shape[0]):
        for j in range(values.shape[1]):
            w[indices[label, j], label] += values[label, j]
    return w


@pytest.mark.parametrize("chunk", [None, 1, 3, 5])
def test_fixed_fan_in_forward_backward_match_dense(chunk):
    rng = np.random.default_rng(0)
    n_in, labels, k, batch = 11, 9, 5, 4
    values = rng.standard_normal((labels, k)).astype(np.float32)
    indices = rng.integers(0, n_in, (labels, k)).astype(np.int32)
    indices[0, :2] = 3  # a duplicate: contributions add up
    bias = rng.standard_normal(labels).astype(np.float32)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    w = _dense_kernel(values, indices, n_in)
    logits = fixed_fan_in_logits(
        jnp.asarray(x), jnp.asarray(values), jnp.asarray(indices), jnp.asarray(bias), fan_in_chunk=chunk
    )
    np.testing.assert_allclose(logits, x @ w + bias, rtol=1e-5, atol=1e-5)
    g = rng.standard_normal((batch, labels)).astype(np.float32)
    f = lambda x, v: jnp.sum(fixed_fan_in_logits(x, v, jnp.asarray(indices), fan_in_chunk=chunk) * g)
    gx, gv = jax.grad(f, argnums=(0, 1))(jnp.asarray(x), jnp.asarray(values))
    np.testing.assert_allclose(gx, g @ w.T, rtol=1e-5, atol=1e-5)
    dense_gw = x.T @ g  # d/dW of sum((x W) * g)
    np.testing.assert_allclose(gv, dense_gw[indices, np.arange(labels)[:, None]], rtol=1e-5, atol=1e-5)


def test_init_fixed_fan_in_distinct_sorted_deterministic(key):
    values, indices = init_fixed_fan_in(key, 20, 37, 6, row_chunk=8)  # several row chunks, ragged last one
    idx = np.asarray(indices)
    assert values.shape == idx.shape == (37, 6) and idx.dtype == np.int32
    assert np.all(np.diff(idx, axis=1) > 0)  # sorted and distinct per row
    assert idx.min() >= 0 and idx.max() < 20
    again = init_fixed_fan_in(key, 20, 37, 6, row_chunk=8)[1]
    np.testing.assert_array_equal(idx, np.asarray(again))
    assert len({tuple(r) for r in idx}) > 30  # rows are drawn independently
    with pytest.raises(ValueError, match="fan_in"):
        init_fixed_fan_in(key, 4, 3, 5)
    with pytest.raises(ValueError, match="num_labels"):
        init_fixed_fan_in(key, 4, 0, 2)


def test_set_rewire_fraction_prunes_smallest_and_keeps_fan_in(key):
    values = jnp.asarray([[0.5, -0.1, 0.3], [0.1, 2.0, -0.05], [1.0, 0.2, -0.1]])
    indices = jnp.asarray([[0, 1, 2], [3, 4, 5], [6, 7, 8]], jnp.int32)
    new_v, new_i, rewired = set_rewire(key, values, indices, in_features=9, fraction=0.4)
    # round(0.4 * 9) = 4 smallest |w|: 0.05 (1,2), then 0.1 at (0,1), (1,0), (2,2) (ties: lower flat index first).
    expected = np.zeros((3, 3), bool)
    expected[1, 2] = expected[0, 1] = expected[1, 0] = expected[2, 2] = True
    np.testing.assert_array_equal(np.asarray(rewired), expected)
    assert np.all(np.asarray(new_v)[expected] == 0) and np.all(
        np.asarray(new_v)[~expected] == np.asarray(values)[~expected]
    )
    assert new_i.shape == indices.shape  # every row keeps exactly its fan-in
    np.testing.assert_array_equal(np.asarray(new_i)[~expected], np.asarray(indices)[~expected])
    assert np.all((np.asarray(new_i) >= 0) & (np.asarray(new_i) < 9))


def test_set_rewire_threshold_counts_and_bad_args(key):
    values = jax.random.normal(key, (50, 4))
    _, _, rewired = set_rewire(key, values, jnp.zeros((50, 4), jnp.int32), in_features=10, threshold=0.3)
    assert int(rewired.sum()) == int(np.sum(np.abs(np.asarray(values)) < 0.3))
    with pytest.raises(ValueError, match="exactly one"):
        set_rewire(key, values, jnp.zeros((50, 4), jnp.int32), in_features=10)
    with pytest.raises(ValueError, match="fraction"):
        set_rewire(key, values, jnp.zeros((50, 4), jnp.int32), in_features=10, fraction=1.5)
    with pytest.raises(ValueError, match="values and indices"):
        set_rewire(key, values, jnp.zeros((50, 3), jnp.int32), in_features=10, fraction=0.1)


def test_losses_against_numpy():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((3, 7)).astype(np.float32)
    y = (rng.random((3, 7)) < 0.3).astype(np.float32)
    hinge = np.mean(np.sum(np.maximum(0.0, 1.0 - (2 * y - 1) * z) ** 2, axis=1))
    bce = np.mean(np.sum(np.log1p(np.exp(-z)) * y + np.log1p(np.exp(z)) * (1 - y), axis=1))
    np.testing.assert_allclose(squared_hinge_loss(jnp.asarray(z), jnp.asarray(y)), hinge, rtol=1e-5)
    np.testing.assert_allclose(bce_loss(jnp.asarray(z), jnp.asarray(y)), bce, rtol=1e-5)


def test_aux_weight_schedule():
    assert float(aux_weight(0, alpha0=0.4, cutoff_step=10)) == pytest.approx(0.4)
    assert float(aux_weight(5, alpha0=0.4, cutoff_step=10)) == pytest.approx(0.2)
    assert float(aux_weight(10, alpha0=0.4, cutoff_step=10)) == 0.0
    assert float(aux_weight(25, alpha0=0.4, cutoff_step=10)) == 0.0
    vals = [float(aux_weight(t, alpha0=0.4, cutoff_step=10)) for t in range(12)]
    assert all(a >= b for a, b in itertools.pairwise(vals))


@pytest.fixture(scope="module")
def small_model():
    spec = XMCModelSpec(num_features=30, hidden=16, num_labels=40, fan_in=4, intermediate=24, num_clusters=5)
    params, indices = init_xmc(jax.random.key(3), spec)
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.random((8, 30), dtype=np.float32))
    y = jnp.asarray((rng.random((8, 40)) < 0.1).astype(np.float32))
    cy = jnp.asarray((rng.random((8, 5)) < 0.3).astype(np.float32))
    return spec, params, indices, x, y, cy


def test_train_step_rewires_with_zero_values_and_moments(small_model):
    spec, params, indices, x, y, cy = small_model
    tx = optax.adam(1e-2)
    opt_state = tx.init(params)
    step = make_train_step(
        tx, alpha0=0.4, aux_cutoff_step=6, rewire_every=3, rewire_end_step=7, rewire_fraction=0.25,
        in_features=spec.head_inputs,
    )  # fmt: skip
    key = jax.random.key(9)
    history = []
    for t in range(9):
        prev_indices = indices
        params, indices, opt_state, _ = step(params, indices, opt_state, jnp.int32(t), key, x, y, cy)
        changed = np.asarray(indices != prev_indices)
        history.append(changed.any())
        if t in (3, 6):
            values = np.asarray(params["head"]["values"])
            mu, nu = opt_state[0].mu["head"]["values"], opt_state[0].nu["head"]["values"]
            rewired = np.abs(values) == 0
            assert rewired.sum() == round(0.25 * values.size)  # exactly the pruned slots are zero
            assert np.all(np.asarray(mu)[rewired] == 0) and np.all(np.asarray(nu)[rewired] == 0)
            assert changed[~rewired].sum() == 0  # only rewired slots may get a new input
    assert history == [False, False, False, True, False, False, True, False, False]  # t % 3 == 0, 0 < t < 7
    assert indices.shape == (spec.num_labels, spec.fan_in)


def test_after_cutoff_loss_is_the_main_loss(small_model):
    spec, params, indices, x, y, cy = small_model
    tx = optax.sgd(0.0)
    step = make_train_step(tx, alpha0=0.4, aux_cutoff_step=2, rewire_end_step=0, in_features=spec.head_inputs)
    logits, _ = xmc_forward(params, indices, x)
    _, _, _, loss_after = step(params, indices, tx.init(params), jnp.int32(5), jax.random.key(0), x, y, cy)
    np.testing.assert_allclose(loss_after, squared_hinge_loss(logits, y), rtol=1e-6)
    _, _, _, loss_at0 = step(params, indices, tx.init(params), jnp.int32(0), jax.random.key(0), x, y, cy)
    _, meta = xmc_forward(params, indices, x)
    expected = 0.6 * squared_hinge_loss(logits, y) + 0.4 * bce_loss(meta, cy)
    np.testing.assert_allclose(loss_at0, expected, rtol=1e-5)


def test_memory_report_exact_bytes():
    spec = XMCModelSpec(num_features=10, hidden=8, num_labels=100, fan_in=2)
    params, indices = init_xmc(jax.random.key(0), spec)
    opt_state = optax.adam(1e-3).init(params)
    report = memory_report(params, indices, opt_state)
    assert report["head_param_bytes"] == (100 * 2 + 100) * 4
    assert report["head_index_bytes"] == 100 * 2 * 4
    assert report["head_grad_bytes"] == report["head_param_bytes"]
    assert report["head_optimizer_bytes"] == pytest.approx(2 * report["head_param_bytes"], rel=0.01)  # mu + nu
    dense = (8 * 100 + 100) * 4
    assert report["dense_head_total_bytes"] == pytest.approx(4 * dense, rel=0.01)
    assert report["head_fraction_of_dense"] < 0.5


def test_spec_and_step_validation():
    with pytest.raises(ValueError, match="fan_in"):
        XMCModelSpec(num_features=10, hidden=8, num_labels=5, fan_in=9)
    with pytest.raises(ValueError, match="num_labels"):
        XMCModelSpec(num_features=10, hidden=8, num_labels=0)
    with pytest.raises(ValueError, match="loss"):
        make_train_step(optax.sgd(0.1), loss="mse")
    with pytest.raises(ValueError, match="rewire_every"):
        make_train_step(optax.sgd(0.1), rewire_every=0)
