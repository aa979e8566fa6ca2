"""Permuting a model (weights, BatchNorm statistics, masks, optimizer state) leaves its function unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsparse import masks, permute

from ._models import make, params_of

KINDS = ["mlp", "vgg", "vgg_nobn", "resnet20"]


@pytest.mark.parametrize("kind", KINDS)
def test_permuting_preserves_the_function(kind):
    _, state, x, spec, forward = make(kind)
    sizes = permute.permutation_sizes(spec, state)
    perm = permute.random_permutation(sizes, seed=3)
    assert any(not np.array_equal(p, np.arange(p.size)) for p in perm.values())
    permuted = permute.permute_params(spec, perm, state)
    ref = np.asarray(forward(state, x))
    out = np.asarray(forward(permuted, x))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # ... and it really moved the hidden units (a wrong spec axis would also fail the check above).
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(permuted), strict=True)
        if np.ndim(a) >= 1
    ]
    assert any(changed)
    # Each permutation alone also preserves the function (catches errors cancelling between groups).
    for name in sizes:
        single = permute.identity_permutation(sizes)
        single[name] = perm[name]
        out = np.asarray(forward(permute.permute_params(spec, single, state), x))
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(), err_msg=name)


def test_permuting_the_bn_stats_is_needed():
    _, state, x, spec, forward = make("vgg")
    perm = permute.random_permutation(permute.permutation_sizes(spec, state), seed=1)
    spec_weights_only = permute.PermutationSpec({p: a for p, a in spec.axes_to_perm.items() if p not in spec.optional})
    moved = permute.permute_params(spec_weights_only, perm, state)  # BN statistics left behind
    assert np.abs(np.asarray(forward(moved, x)) - np.asarray(forward(state, x))).max() > 1e-3


def test_inverse_and_compose():
    sizes = {"a": 6, "b": 4}
    p = permute.random_permutation(sizes, seed=0)
    q = permute.random_permutation(sizes, seed=1)
    inv = permute.invert_permutation(p)
    for name in sizes:
        np.testing.assert_array_equal(permute.compose_permutations(p, inv)[name], np.arange(sizes[name]))
    x = {"w": jnp.arange(24.0).reshape(6, 4)}
    spec = permute.PermutationSpec({("w",): ("a", "b")})
    twice = permute.permute_params(spec, q, permute.permute_params(spec, p, x))
    np.testing.assert_array_equal(twice["w"], permute.permute_params(spec, permute.compose_permutations(p, q), x)["w"])
    np.testing.assert_array_equal(permute.permute_params(spec, inv, permute.permute_params(spec, p, x))["w"], x["w"])
    np.testing.assert_array_equal(twice["w"], np.asarray(x["w"])[p["a"][q["a"]]][:, p["b"][q["b"]]])


def test_masked_model_keeps_function_layer_density_and_fan_ins():
    graphdef, state, x, spec, forward = make("resnet20", seed=1)
    params = params_of(graphdef, state)
    gm = masks.global_magnitude_masks(params, 0.7)
    mask_tree = jax.tree.map(lambda m: None if m is None else np.asarray(m), gm, is_leaf=lambda v: v is None)
    model = nnx.merge(graphdef, state)
    nnx.update(model, masks.apply_masks(params, mask_tree))
    masked_state = jax.tree.map(np.asarray, nnx.as_pure(nnx.state(model)))
    ref = np.asarray(forward(masked_state, x))
    perm = permute.random_permutation(permute.permutation_sizes(spec, state), seed=5)
    p_state = permute.permute_params(spec, perm, masked_state)
    p_mask = permute.permute_params(spec, perm, mask_tree)
    out = np.asarray(forward(p_state, x))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    # The permuted mask is exactly the permuted masked weights' support, layer by layer.
    p_params = params_of(graphdef, p_state)
    leaves_m = jax.tree.leaves(p_mask, is_leaf=lambda v: v is None)
    leaves_0 = jax.tree.leaves(mask_tree, is_leaf=lambda v: v is None)
    for m, m0, w in zip(leaves_m, leaves_0, jax.tree.leaves(p_params), strict=True):
        if m is None:
            assert m0 is None
            continue
        assert int(np.sum(m)) == int(np.sum(m0))
        np.testing.assert_array_equal(np.asarray(w) != 0, np.asarray(m))
        fan_in = lambda a: sorted(np.asarray(a).reshape(-1, a.shape[-1]).sum(0).tolist())
        assert fan_in(m) == fan_in(m0)
    assert masks.density_report(p_mask)["overall_masked"] == masks.density_report(mask_tree)["overall_masked"]


def test_identity_permutation_changes_nothing():
    _, state, _, spec, _ = make("mlp")
    out = permute.permute_params(spec, permute.identity_permutation(permute.permutation_sizes(spec, state)), state)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(out), strict=True):
        np.testing.assert_array_equal(a, b)


def test_numpy_trees_stay_numpy():
    spec = permute.PermutationSpec({("w",): (None, "P"), ("v",): ("P",)})
    tree = {"w": np.arange(6.0).reshape(2, 3), "v": np.arange(3), "other": np.ones(2)}
    out = permute.permute_params(spec, {"P": np.array([2, 0, 1])}, tree)
    assert isinstance(out["w"], np.ndarray)
    np.testing.assert_array_equal(out["w"], [[2, 0, 1], [5, 3, 4]])
    np.testing.assert_array_equal(out["v"], [2, 0, 1])
    np.testing.assert_array_equal(out["other"], tree["other"])


def test_adam_state_permutes_with_the_params():
    """One Adam step commutes with the permutation when mu/nu are permuted too."""
    graphdef, state0, x, spec, _ = make("mlp", seed=2)
    params = jax.tree.map(jnp.asarray, params_of(graphdef, state0))
    sizes = permute.permutation_sizes(spec, params)
    perm = permute.random_permutation(sizes, seed=4)
    tx = optax.adam(1e-2)

    def loss(p):
        return jnp.sum(nnx.merge(graphdef, p)(x) ** 2)

    @jax.jit
    def step(p, s):
        g = jax.grad(loss)(p)
        u, s = tx.update(g, s, p)
        return optax.apply_updates(p, u), s

    state = tx.init(params)
    for _ in range(2):  # non-trivial mu and nu
        params, state = step(params, state)
    p_params = permute.permute_params(spec, perm, params)
    p_state = permute.permute_opt_state(spec, perm, state, sizes=sizes)
    assert int(p_state[0].count) == int(state[0].count)
    next_then_perm = permute.permute_params(spec, perm, step(params, state)[0])
    perm_then_next = step(p_params, p_state)[0]
    for a, b in zip(jax.tree.leaves(next_then_perm), jax.tree.leaves(perm_then_next), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Without permuting the state the step does not commute.
    wrong = step(p_params, state)[0]
    gaps = [np.abs(a - b).max() for a, b in zip(jax.tree.leaves(next_then_perm), jax.tree.leaves(wrong), strict=True)]
    assert max(gaps) > 1e-4
    # permute_opt_state reads the sizes itself; a stateless optimizer passes through.
    again = permute.permute_opt_state(spec, perm, state)
    for a, b in zip(jax.tree.leaves(again), jax.tree.leaves(p_state), strict=True):
        np.testing.assert_array_equal(a, b)
    empty = optax.sgd(0.1).init(params)
    assert permute.permute_opt_state(spec, perm, empty) == empty


def test_opt_state_size_mismatch_raises():
    spec = permute.PermutationSpec({("w",): (None, "P")})
    state = (
        optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu={"w": jnp.ones((2, 3))}, nu={"w": jnp.ones((2, 3))}),
    )
    with pytest.raises(ValueError, match="has size 3"):
        permute.permute_opt_state(spec, {"P": np.arange(4)}, state, sizes={"P": 4})
