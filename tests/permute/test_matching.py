"""Weight matching and activation matching: self-recovery, monotone objective, independent references."""

import itertools

import jax
import numpy as np
import pytest
from flax import nnx
from scipy.optimize import linear_sum_assignment

from jaxsparse import permute
from jaxsparse.lth import model_activations

from ._models import make, params_of


@pytest.mark.parametrize("kind", ["mlp", "vgg", "resnet20"])
def test_weight_matching_recovers_a_random_permutation(kind):
    graphdef, state, _, spec, _ = make(kind, seed=3)
    params_a = params_of(graphdef, state)
    sizes = permute.permutation_sizes(spec, params_a)
    p = permute.random_permutation(sizes, seed=11)
    params_b = permute.permute_params(spec, p, params_a)
    res = permute.weight_matching(spec, params_a, params_b, seed=0)
    assert res.converged
    inv = permute.invert_permutation(p)
    for name in sizes:
        np.testing.assert_array_equal(res.perm[name], inv[name], err_msg=name)
    aligned = permute.permute_params(spec, res.perm, params_b)
    for a, b in zip(jax.tree.leaves(params_a), jax.tree.leaves(aligned), strict=True):
        np.testing.assert_array_equal(a, b)
    assert res.objective_history[-1] == pytest.approx(permute.matching_objective(spec, params_a, params_a))


def test_objective_never_decreases_and_matches_the_direct_sum():
    graphdef, state_a, _, spec, _ = make("resnet20_x2", seed=0)
    _, state_b, _, _, _ = make("resnet20_x2", seed=1)  # an unrelated model: many sweeps
    params_a, params_b = params_of(graphdef, state_a), params_of(graphdef, state_b)
    res = permute.weight_matching(spec, params_a, params_b, seed=2)
    history = np.asarray(res.objective_history)
    assert res.sweeps >= 3 and len(history) == res.sweeps + 1
    assert np.all(np.diff(history) >= 0.0), history
    assert history[-1] > history[0]
    assert history[-1] == pytest.approx(history[-2], abs=1e-12 * abs(history[-1]))  # last sweep gained nothing
    assert history[-1] == pytest.approx(permute.matching_objective(spec, params_a, params_b, res.perm), rel=1e-12)
    # Direct reference of the objective: sum over the spec's weights of <A, perm(B)> in numpy.
    aligned = permute.permute_params(spec, res.perm, params_b)
    flat_a = dict(jax.tree_util.tree_flatten_with_path(params_a)[0])
    flat_b = dict(jax.tree_util.tree_flatten_with_path(aligned)[0])
    direct = sum(
        float(np.vdot(np.asarray(flat_a[k], np.float64), np.asarray(flat_b[k], np.float64)))
        for k in flat_a
        if permute.normalize_path(k) in spec.axes_to_perm
    )
    assert history[-1] == pytest.approx(direct, rel=1e-9)
    # Starting from the result, nothing moves.
    again = permute.weight_matching(spec, params_a, params_b, seed=5, init_perm=res.perm)
    assert again.sweeps == 1 and again.converged
    for name in res.perm:
        np.testing.assert_array_equal(again.perm[name], res.perm[name])


def test_one_hidden_layer_is_solved_exactly_against_brute_force():
    rng = np.random.default_rng(0)
    n = 6
    params_a = {
        "l0": {"kernel": rng.normal(size=(4, n)), "bias": rng.normal(size=n)},
        "l1": {"kernel": rng.normal(size=(n, 3))},
    }
    params_b = jax.tree.map(lambda a: rng.normal(size=a.shape), params_a)
    spec = permute.PermutationSpec(
        {("l0", "kernel"): (None, "P"), ("l0", "bias"): ("P",), ("l1", "kernel"): ("P", None)}
    )
    res = permute.weight_matching(spec, params_a, params_b)
    assert res.sweeps <= 2  # one solve, then a sweep that gains nothing

    def value(p):
        return (
            np.vdot(params_a["l0"]["kernel"], params_b["l0"]["kernel"][:, p])
            + np.vdot(params_a["l0"]["bias"], params_b["l0"]["bias"][p])
            + np.vdot(params_a["l1"]["kernel"], params_b["l1"]["kernel"][p])
        )

    best = max(itertools.permutations(range(n)), key=lambda p: value(np.asarray(p)))
    np.testing.assert_array_equal(res.perm["P"], best)


def test_matching_a_model_with_itself_is_the_identity():
    graphdef, state, _, spec, _ = make("vgg", seed=2)
    params = params_of(graphdef, state)
    res = permute.weight_matching(spec, params, params)
    for p in res.perm.values():
        np.testing.assert_array_equal(p, np.arange(p.size))
    assert res.sweeps == 1


def test_weight_matching_rejects_bad_input():
    graphdef, state, _, spec, _ = make("mlp")
    params = params_of(graphdef, state)
    with pytest.raises(ValueError, match="max_iter"):
        permute.weight_matching(spec, params, params, max_iter=0)
    with pytest.raises(TypeError, match="PermutationSpec"):
        permute.weight_matching({"P_0": []}, params, params)
    bad = permute.mlp_permutation_spec(5)  # the model has 4 layers
    with pytest.raises(ValueError, match="missing from the tree"):
        permute.weight_matching(bad, params, params)
    with pytest.raises(ValueError, match="not a permutation"):
        permute.weight_matching(
            spec, params, params, init_perm={"P_0": np.zeros(9, int), "P_1": np.arange(7), "P_2": np.arange(5)}
        )


def test_correlation_matches_numpy_and_batches_combine():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    b[:, 0] += 2 * a[:, 1]
    full = permute.CorrelationStats.from_activations(a, b)
    parts = permute.CorrelationStats.from_activations(a[:20], b[:20]) + permute.CorrelationStats.from_activations(
        a[20:], b[20:]
    )
    ref = np.corrcoef(a.T, b.T)[:4, 4:]
    np.testing.assert_allclose(permute.correlation_from_stats(full, eps=0.0), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(permute.correlation_from_stats(parts, eps=0.0), ref, rtol=1e-9, atol=1e-12)
    perm = permute.activation_matching({"P": a}, {"P": b})["P"]
    rows, cols = linear_sum_assignment(-ref)
    np.testing.assert_array_equal(perm, cols[np.argsort(rows)])


@pytest.mark.parametrize("kind", ["mlp", "resnet20"])
def test_activation_matching_recovers_a_random_permutation(kind):
    graphdef, state, _, spec, _ = make(kind, seed=4)
    x = np.random.default_rng(0).normal(size=(64, 6) if kind == "mlp" else (32, 8, 8, 2)).astype(np.float32)
    sizes = permute.permutation_sizes(spec, state)
    p = permute.random_permutation(sizes, seed=9)
    acts = jax.jit(lambda st, x: model_activations(nnx.merge(graphdef, st), x)[1])
    acts_a = acts(state, x)
    acts_b = acts(permute.permute_params(spec, p, state), x)
    assert set(acts_a) == set(sizes)
    # Two batches combine exactly (sums, not means).
    half = {k: v[: v.shape[0] // 2] for k, v in acts_a.items()}, {k: v[v.shape[0] // 2 :] for k, v in acts_a.items()}
    half_b = {k: v[: v.shape[0] // 2] for k, v in acts_b.items()}, {k: v[v.shape[0] // 2 :] for k, v in acts_b.items()}
    inv = permute.invert_permutation(p)
    # A channel that is constant on the batch (dead after ReLU) correlates with nothing, so it can only be
    # matched up to the other dead channels; every live channel must be recovered exactly.
    live = {k: np.asarray(v).reshape(-1, v.shape[-1]).std(0) > 0 for k, v in acts_a.items()}
    assert sum(bool(v.all()) for v in live.values()) >= len(live) // 2
    for found in (permute.activation_matching(acts_a, acts_b), permute.activation_matching(half, half_b)):
        for name in sizes:
            np.testing.assert_array_equal(found[name][live[name]], inv[name][live[name]], err_msg=name)


def test_activation_matching_rejects_mismatched_groups():
    with pytest.raises(ValueError, match="same group names"):
        permute.activation_matching({"a": np.ones((3, 2))}, {"b": np.ones((3, 2))})
    with pytest.raises(ValueError, match="share a shape"):
        permute.activation_matching({"a": np.ones((3, 2))}, {"a": np.ones((3, 3))})
