import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.moe import (
    PRUNE_METHODS,
    ExpertStats,
    MoEParams,
    expert_scores,
    experts_to_keep,
    num_experts_after_pruning,
    prune_experts,
    prune_layers,
    route,
    super_experts,
)

from ._reference import jit_forward, jit_observe, random_params, tree_equal

E, D, F, T = 8, 8, 10, 32


def _hand_stats() -> ExpertStats:
    """4 experts, routed (gate, ‖f‖) records: e0 4x(0.2, 1), e1 1x(0.9, 3), e2 3x(0.5, 2), e3 never routed."""
    records = {0: [(0.2, 1.0)] * 4, 1: [(0.9, 3.0)], 2: [(0.5, 2.0)] * 3, 3: []}
    stats = ExpertStats.zeros(4, 2)
    return ExpertStats(
        n_tokens=jnp.asarray(4, jnp.int32),
        tokens=jnp.asarray([len(records[e]) for e in range(4)], jnp.int32),
        gate_sum=jnp.asarray([sum(g for g, _ in records[e]) for e in range(4)], jnp.float32),
        ean_sum=jnp.asarray([sum(n for _, n in records[e]) for e in range(4)], jnp.float32),
        weighted_ean_sum=jnp.asarray([sum(g * n for g, n in records[e]) for e in range(4)], jnp.float32),
        max_act=jnp.asarray([0.5, 2.0, 1.0, -np.inf], jnp.float32),
        output_sum=jnp.asarray([[4.0, 0.0], [0.0, 3.0], [3.0, 0.0], [0.0, 0.0]], jnp.float32),
        logit_sum=stats.logit_sum,
        logit_outer=stats.logit_outer,
    )


def test_hand_computed_criteria_where_frequency_and_reap_disagree():
    stats = _hand_stats()
    want = {
        "frequency": [4, 1, 3, 0],
        "soft_frequency": [0.8, 0.9, 1.5, 0],
        "ean_sum": [4, 3, 6, 0],
        "ean_mean": [1, 3, 2, 0],
        "weighted_ean_sum": [0.8, 2.7, 3.0, 0],
        "reap": [0.2, 2.7, 1.0, 0],
        "max_activations": [0.5, 2.0, 1.0, -np.inf],
        "ean_ca": [1.0, 3.0, 1.0, 0.0],
    }
    for method, scores in want.items():
        np.testing.assert_allclose(np.asarray(expert_scores(stats, method)), scores, rtol=1e-6, err_msg=method)
    np.testing.assert_array_equal(
        np.asarray(expert_scores(stats, "weighted_frequency_sum")), np.asarray(expert_scores(stats, "soft_frequency"))
    )
    keep = {m: np.asarray(experts_to_keep(expert_scores(stats, m), 2)).tolist() for m in want}
    assert keep["frequency"] == [0, 2] and keep["ean_sum"] == [0, 2]
    assert keep["reap"] == [1, 2] and keep["weighted_ean_sum"] == [1, 2] and keep["ean_mean"] == [1, 2]
    # The never-routed expert scores 0 and is the first to go under every criterion.
    for method in want:
        assert 3 not in np.asarray(experts_to_keep(expert_scores(stats, method), 3)).tolist()


def test_experts_to_keep_tie_break_and_validation():
    np.testing.assert_array_equal(np.asarray(experts_to_keep(jnp.asarray([0.0, 1.0, 1.0, -0.0, 1.0]), 2)), [1, 2])
    np.testing.assert_array_equal(np.asarray(experts_to_keep(jnp.asarray([-0.0, 0.0, 0.0]), 2)), [0, 1])
    keep = experts_to_keep(jnp.asarray([3.0, -np.inf, np.inf, 1.0]), 2)
    assert keep.dtype == jnp.int32 and np.asarray(keep).tolist() == [0, 2]
    with pytest.raises(ValueError, match="num_keep"):
        experts_to_keep(jnp.ones(4), 5)
    with pytest.raises(ValueError, match="num_keep"):
        experts_to_keep(jnp.ones(4), 0)
    with pytest.raises(ValueError, match="NaN"):
        experts_to_keep(jnp.asarray([1.0, np.nan]), 1)


def test_scores_reject_unknown_methods_and_random_needs_a_key():
    stats = _hand_stats()
    for method in ("reap_l2", "weighted_ean_sum_l2", "spectral"):
        with pytest.raises(ValueError, match="never defined"):
            expert_scores(stats, method)
    with pytest.raises(ValueError, match="method must be one of"):
        expert_scores(stats, "frequncy")
    with pytest.raises(ValueError, match="key"):
        expert_scores(stats, "random")
    a = expert_scores(stats, "random", key=jax.random.key(1))
    assert a.shape == (4,) and np.all((np.asarray(a) >= 0) & (np.asarray(a) < 1))
    with pytest.raises(TypeError, match="ExpertStats"):
        expert_scores({}, "reap")


@pytest.fixture(scope="module")
def layer():
    params = random_params(7, num_experts=E, d=D, f=F, router_scale=4.0)
    x = jnp.asarray(np.random.default_rng(8).normal(size=(T, D)), jnp.float32)
    return params, x


def test_zero_pruning_is_the_identity(layer):
    params, x = layer
    stats = jit_observe(params, x, top_k=2, renormalize=True)
    pruned, keeps = prune_layers([params], [stats], method="reap", ratio=0.0, top_k=2)
    assert tree_equal(pruned[0], params) and np.asarray(keeps[0]).tolist() == list(range(E))
    everything = prune_experts(params, jnp.arange(E))
    assert tree_equal(everything, params)
    np.testing.assert_array_equal(
        np.asarray(jit_forward(everything, x, top_k=2, renormalize=True)),
        np.asarray(jit_forward(params, x, top_k=2, renormalize=True)),
    )


@pytest.mark.parametrize("renormalize", [True, False])
def test_router_slicing_and_tokens_whose_top_k_survives(layer, renormalize):
    params, x = layer
    stats = jit_observe(params, x, top_k=2, renormalize=renormalize)
    (pruned,), (keep,) = prune_layers([params], [stats], method="reap", ratio=0.5, top_k=2)
    keep = np.asarray(keep)
    assert pruned.num_experts == 4 and keep.tolist() == sorted(keep.tolist())
    np.testing.assert_array_equal(np.asarray(x @ pruned.router), np.asarray(x @ params.router)[:, keep])
    np.testing.assert_array_equal(np.asarray(pruned.w_down), np.asarray(params.w_down)[keep])
    idx, _, probs = route(x @ params.router, top_k=2, renormalize=renormalize)
    survives = np.isin(np.asarray(idx), keep).all(axis=1)
    assert survives.any() and not survives.all()
    y = np.asarray(jit_forward(params, x, top_k=2, renormalize=renormalize))[survives]
    y_pruned = np.asarray(jit_forward(pruned, x, top_k=2, renormalize=renormalize))[survives]
    if renormalize:  # same experts, same renormalised gates: the same output
        np.testing.assert_allclose(y_pruned, y, rtol=1e-5, atol=1e-6)
    else:  # gates scale by Σ_all p / Σ_kept p = 1 / Σ_kept p
        scale = 1.0 / np.asarray(probs)[:, keep].sum(axis=1)[survives]
        np.testing.assert_allclose(y_pruned, y * scale[:, None], rtol=1e-5, atol=1e-6)


def test_permuting_experts_permutes_scores_and_keeps_the_pruned_function(layer):
    params, x = layer
    perm = np.random.default_rng(9).permutation(E)
    permuted = MoEParams(params.router[:, perm], params.w_gate[perm], params.w_up[perm], params.w_down[perm])
    s = jit_observe(params, x, top_k=2, renormalize=True)
    sp = jit_observe(permuted, x, top_k=2, renormalize=True)
    for method in ("reap", "frequency", "ean_sum", "ean_mean", "soft_frequency", "max_activations"):
        np.testing.assert_allclose(
            np.asarray(expert_scores(sp, method)), np.asarray(expert_scores(s, method))[perm], rtol=1e-5, err_msg=method
        )
    (a,), (ka,) = prune_layers([params], [s], method="reap", ratio=0.25, top_k=2)
    (b,), (kb,) = prune_layers([permuted], [sp], method="reap", ratio=0.25, top_k=2)
    assert sorted(perm[np.asarray(kb)].tolist()) == np.asarray(ka).tolist()
    np.testing.assert_allclose(
        np.asarray(jit_forward(b, x, top_k=2, renormalize=True)),
        np.asarray(jit_forward(a, x, top_k=2, renormalize=True)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_budget_rules_and_bad_input():
    assert num_experts_after_pruning(16, 0.5, top_k=2) == 8
    assert num_experts_after_pruning(16, 0.25, top_k=2, expert_parallel=4) == 12
    assert num_experts_after_pruning(8, 0.3, top_k=2) == 6  # int(8 * 0.3) = 2 pruned
    with pytest.raises(ValueError, match="divisible by the expert-parallel"):
        num_experts_after_pruning(8, 0.25, top_k=2, expert_parallel=4)  # Mixtral 8 -> 6 breaks EP=4
    assert num_experts_after_pruning(8, 0.25, top_k=2, expert_parallel=4, rounding="up") == 8
    assert num_experts_after_pruning(8, 0.25, top_k=2, expert_parallel=4, rounding="down") == 4
    with pytest.raises(ValueError, match="top_k"):
        num_experts_after_pruning(8, 0.7, top_k=2, expert_parallel=4, rounding="down")  # E'=3 -> 0
    with pytest.raises(ValueError, match="top_k"):
        num_experts_after_pruning(4, 0.75, top_k=2)
    for bad in (-0.1, 1.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="ratio"):
            num_experts_after_pruning(8, bad, top_k=2)
    with pytest.raises(ValueError, match="rounding"):
        num_experts_after_pruning(8, 0.25, top_k=2, rounding="nearest")
    with pytest.raises(ValueError, match="num_experts=6 is not divisible"):
        num_experts_after_pruning(6, 0.0, top_k=2, expert_parallel=4)


def test_prune_experts_rejects_bad_keep(layer):
    params, _ = layer
    for keep, match in (([2, 1], "increasing"), ([1, 1], "increasing"), ([0, E], r"\[0, E=8\)"), ([], "non-empty")):
        with pytest.raises(ValueError, match=match):
            prune_experts(params, jnp.asarray(keep, jnp.int32))
    with pytest.raises(TypeError, match="integer"):
        prune_experts(params, jnp.asarray([0.0, 1.0]))


def _stats_with_tokens(tokens) -> ExpertStats:
    zero = ExpertStats.zeros(len(tokens), D)
    return ExpertStats(**{**vars(zero), "tokens": jnp.asarray(tokens, jnp.int32)})


def test_global_budget_is_non_uniform_and_respects_top_k(layer):
    params, x = layer
    other = random_params(11, num_experts=E, d=D, f=F)
    # Layer shares: peaked (0.5, 0.3, 0.1, 0.05, 0.025, 0.025, 0, 0) and uniform (0.125 each): the 8 lowest shares
    # are six of the peaked layer's and two of the uniform one's.
    stats = [_stats_with_tokens([20, 12, 4, 2, 1, 1, 0, 0]), _stats_with_tokens([5] * E)]
    pruned, keeps = prune_layers([params, other], stats, method="frequency", ratio=0.5, top_k=2, budget="global")
    assert [p.num_experts for p in pruned] == [2, 6]
    assert np.asarray(keeps[0]).tolist() == [0, 1] and np.asarray(keeps[1]).tolist() == [0, 1, 2, 3, 4, 5]
    # top_k floor: at ratio 0.75 (12 to prune) both layers stop at top_k = 3, so only 10 go.
    pruned, _ = prune_layers([params, other], stats, method="frequency", ratio=0.75, top_k=3, budget="global")
    assert [p.num_experts for p in pruned] == [3, 3]
    with pytest.raises(ValueError, match="divisible"):
        prune_layers([params, other], stats, method="frequency", ratio=0.5, top_k=2, budget="global", expert_parallel=4)
    pruned, _ = prune_layers(
        [params, other],
        stats,
        method="frequency",
        ratio=0.5,
        top_k=2,
        budget="global",
        expert_parallel=4,
        rounding="up",
    )
    assert [p.num_experts for p in pruned] == [4, 8]
    real = [jit_observe(params, x, top_k=2, renormalize=True)]
    with pytest.raises(ValueError, match="budget"):
        prune_layers([params], real, method="reap", ratio=0.5, top_k=2, budget="layerwise")
    with pytest.raises(ValueError, match="equal length"):
        prune_layers([params, other], real, method="reap", ratio=0.5, top_k=2)
    with pytest.raises(ValueError, match="divisible"):
        prune_layers([params], real, method="reap", ratio=0.25, top_k=2, expert_parallel=4)
    for method in PRUNE_METHODS:
        pruned, _ = prune_layers([params], real, method=method, ratio=0.5, top_k=2, key=jax.random.key(0))
        assert pruned[0].num_experts == 4


def test_super_experts_are_preserved(layer):
    params, x = layer
    boosted = MoEParams(params.router, params.w_gate, params.w_up, params.w_down.at[5].multiply(1000.0))
    stats = jit_observe(boosted, x, top_k=2, renormalize=True)
    masks = super_experts([stats, stats])
    assert masks[0].tolist() == [e == 5 for e in range(E)] and not masks[1].any()  # only the first 75% of layers
    (_,), (keep,) = prune_layers(
        [boosted], [stats], method="frequency", ratio=0.75, top_k=2, preserve_super_experts=True
    )
    assert 5 in np.asarray(keep).tolist() and len(keep) == 2
