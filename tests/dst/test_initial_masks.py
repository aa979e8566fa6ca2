"""`initial_masks` of static_sparse, sparse_evolutionary (SET) and rigl: given masks replace the random init and
fix every sparse leaf's nnz."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsparse import dst
from jaxsparse.nn import MLP, get_params

from ._common import fake_grads, make_params, make_tx, noise

METHODS = ("static", "set", "rigl")


def _run(tx, params, n_steps: int):
    state = tx.init(params)

    @jax.jit
    def step(params, state, step_noise):
        updates, state = tx.update(fake_grads(params, step_noise), state, params)
        return optax.apply_updates(params, updates), state

    history = [(params, state)]
    for i in range(n_steps):
        params, state = step(params, state, noise(i))
        history.append((params, state))
    return history


@pytest.mark.parametrize("method", METHODS)
def test_given_random_masks_reproduce_the_default_trajectory_bitwise(method, key):
    """Passing the masks the default init would draw gives the same run, step for step: init takes the given
    masks as they are, and nothing else (keys, counts, updates) changes."""
    params = make_params()
    ref_tx = make_tx(method, key)
    masks0 = ref_tx.init(params).masks
    given_tx = make_tx(method, key, sparsity=None, initial_masks=masks0)
    for (p_ref, s_ref), (p_giv, s_giv) in zip(_run(ref_tx, params, 10), _run(given_tx, params, 10), strict=True):
        for a, b in zip(jax.tree.leaves((p_ref, s_ref)), jax.tree.leaves((p_giv, s_giv)), strict=True):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_array_equal(a, b)


def _custom_masks(params):
    """Masks whose nnz follow no sparsity formula: l0 keeps 37, conv keeps its first 50 entries, l1 and head
    stay dense, every bias dense."""
    rng = np.random.default_rng(3)
    m0 = np.zeros(512, bool)
    m0[rng.choice(512, 37, replace=False)] = True
    conv = np.zeros(288, bool)
    conv[:50] = True
    masks = jax.tree.map(lambda _: None, params)
    masks["l0"]["kernel"] = jnp.asarray(m0.reshape(16, 32))
    masks["conv"]["kernel"] = jnp.asarray(conv.reshape(3, 3, 4, 8))
    return masks


@pytest.mark.parametrize("method", METHODS)
def test_custom_masks_keep_their_nnz(method, key):
    params = make_params()
    masks = _custom_masks(params)
    params = dst.apply_initial_masks(params, make_tx(method, key, sparsity=None, initial_masks=masks).init(params))
    history = _run(make_tx(method, key, sparsity=None, initial_masks=masks), params, 13)
    _, state0 = history[0]
    np.testing.assert_array_equal(state0.masks["l0"]["kernel"], masks["l0"]["kernel"])
    assert state0.masks["l1"]["kernel"] is None and state0.masks["head"]["kernel"] is None
    changed = False
    for params_t, state_t in history[1:]:
        for name, nnz in (("l0", 37), ("conv", 50)):
            m = np.asarray(state_t.masks[name]["kernel"])
            assert int(m.sum()) == nnz
            assert np.all(np.asarray(params_t[name]["kernel"])[~m] == 0)
            changed |= not np.array_equal(m, np.asarray(masks[name]["kernel"]))
        assert np.all(np.asarray(params_t["l1"]["kernel"]) != 0)  # dense leaves are untouched by masking
    assert changed == (method != "static")


def test_nnx_optimizer_with_masks_from_the_pure_state():
    """nnx.Optimizer calls tx.init on a state of Variables; masks built from the pure state still line up."""
    model = MLP(6, (12,), 3, rngs=nnx.Rngs(0))
    params = get_params(model)
    masks = jax.tree.map(lambda p: jnp.abs(p) > 0.3 if p.ndim == 2 else None, params)
    masks["layers"][1]["kernel"] = None
    nnz = int(masks["layers"][0]["kernel"].sum())
    tx = dst.rigl(optax.adam(1e-2), key=jax.random.key(0), initial_masks=masks, update_every=1, end_step=10)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((16, 6)), jnp.float32)

    @nnx.jit
    def step(model, optimizer):
        grads = nnx.grad(lambda m: jnp.mean(m(x) ** 2))(model)
        optimizer.update(model, grads)

    for _ in range(3):
        step(model, optimizer)
        m = dst.find_sparse_state(nnx.as_pure(optimizer.opt_state)).masks["layers"][0]["kernel"]
        assert int(m.sum()) == nnz
        assert np.all(np.asarray(model.layers[0].kernel[...])[~np.asarray(m)] == 0)


@pytest.mark.parametrize("method", METHODS)
def test_errors(method, key):
    params = make_params()
    good = _custom_masks(params)
    with pytest.raises(ValueError, match="leave sparsity and sparse_leaves unset"):
        make_tx(method, key, initial_masks=good)  # make_tx's default sparsity tree is also given
    with pytest.raises(ValueError, match="give sparsity"):
        make_tx(method, key, sparsity=None)
    with pytest.raises(ValueError, match="no bool mask leaf"):
        make_tx(method, key, sparsity=None, initial_masks=jax.tree.map(lambda _: None, params))
    bad_dtype = _custom_masks(params)
    bad_dtype["l0"]["kernel"] = bad_dtype["l0"]["kernel"].astype(jnp.float32)
    with pytest.raises(ValueError, match=r"initial_masks\['l0'\]\['kernel'\] must be a bool array"):
        make_tx(method, key, sparsity=None, initial_masks=bad_dtype)
    bad_shape = _custom_masks(params)
    bad_shape["l0"]["kernel"] = bad_shape["l0"]["kernel"][:8]
    with pytest.raises(ValueError, match=r"initial_masks\['l0'\]\['kernel'\] has shape \(8, 32\)"):
        make_tx(method, key, sparsity=None, initial_masks=bad_shape).init(params)
    missing = _custom_masks(params)
    del missing["head"]
    with pytest.raises(ValueError, match="tree structure"):
        make_tx(method, key, sparsity=None, initial_masks=missing).init(params)
