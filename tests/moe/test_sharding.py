"""Expert-parallel calibration on 8 simulated CPU devices (tests/conftest.py sets the XLA flag before jax starts)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from jaxsparse.moe import MoEParams, expert_scores, experts_to_keep, prune_experts
from jaxsparse.moe._sharding import (
    moe_forward_with_stats_sharded,
    observe_layer_sharded,
    prune_experts_sharded,
    shard_moe_params,
)

from ._reference import jit_forward, jit_observe, random_params, tree_equal

E, D, F, T = 16, 8, 12, 48
EXACT = ("n_tokens", "tokens", "max_act")
FLOAT = ("gate_sum", "ean_sum", "weighted_ean_sum", "output_sum", "logit_sum", "logit_outer")


@pytest.fixture(scope="module")
def setup():
    assert jax.device_count() >= 8, "tests/conftest.py must provide 8 host devices"
    params = random_params(21, num_experts=E, d=D, f=F, router_scale=4.0)
    x = jnp.asarray(np.random.default_rng(22).normal(size=(T, D)), jnp.float32)
    mask = jnp.asarray(np.arange(T) % 7 != 3)
    ref = jit_observe(params, x, top_k=2, renormalize=True, token_mask=mask)
    return params, x, mask, ref


def _assert_same_stats(got, ref):
    for name in EXACT:
        np.testing.assert_array_equal(np.asarray(getattr(got, name)), np.asarray(getattr(ref, name)), err_msg=name)
    for name in FLOAT:
        want = np.asarray(getattr(ref, name))
        # float32 sums in another order: error relative to the largest term (the Gram matrix has cancellations).
        atol = 1e-6 * float(np.abs(want).max()) + 1e-6
        np.testing.assert_allclose(np.asarray(getattr(got, name)), want, rtol=1e-5, atol=atol, err_msg=name)


def test_eight_expert_shards_give_single_device_statistics_and_outputs(setup):
    params, x, mask, ref = setup
    mesh = jax.make_mesh((8,), ("expert",))
    run = jax.jit(
        lambda p, v, m: moe_forward_with_stats_sharded(p, v, mesh=mesh, top_k=2, renormalize=True, token_mask=m)
    )
    y, stats = run(shard_moe_params(params, mesh), x, mask)
    _assert_same_stats(stats, ref)
    assert stats.tokens.sharding.spec == P("expert")
    assert len(stats.tokens.sharding.device_set) == 8
    np.testing.assert_allclose(
        np.asarray(y), np.asarray(jit_forward(params, x, top_k=2, renormalize=True)), rtol=1e-5, atol=1e-6
    )
    for method in ("reap", "frequency", "ean_sum"):  # the same experts survive
        np.testing.assert_array_equal(
            np.asarray(experts_to_keep(expert_scores(stats, method), 8)),
            np.asarray(experts_to_keep(expert_scores(ref, method), 8)),
        )


def test_data_and_expert_axes_with_padding(setup):
    params, x, mask, ref = setup
    mesh = jax.make_mesh((2, 4), ("data", "expert"))
    run = jax.jit(
        lambda p, v, m: observe_layer_sharded(
            p, v, mesh=mesh, top_k=2, renormalize=True, token_mask=m, data_axis="data"
        )
    )
    stats = run(params, x, mask)
    _assert_same_stats(stats, ref)


def test_sharded_pruning_and_divisibility_errors(setup):
    params, x, _, ref = setup
    mesh = jax.make_mesh((4,), ("expert",), devices=jax.devices()[:4])
    keep = experts_to_keep(expert_scores(ref, "reap"), 8)
    pruned = prune_experts_sharded(params, keep, mesh)
    assert tree_equal(pruned, prune_experts(params, keep))
    assert pruned.w_gate.sharding.spec == P("expert", None, None) and pruned.router.sharding.spec == P(None, "expert")
    with pytest.raises(ValueError, match="not divisible by the mesh's expert axis"):
        prune_experts_sharded(params, keep[:6], mesh)  # E' = 6 on EP = 4
    odd = MoEParams(params.router[:, :12], params.w_gate[:12], params.w_up[:12], params.w_down[:12])
    with pytest.raises(ValueError, match="E=12 experts is not divisible"):
        observe_layer_sharded(odd, x, mesh=jax.make_mesh((8,), ("expert",)), top_k=2, renormalize=True)
    with pytest.raises(ValueError, match="expert_axis"):
        observe_layer_sharded(params, x, mesh=mesh, top_k=2, renormalize=True, expert_axis="experts")
    with pytest.raises(TypeError, match="Mesh"):
        shard_moe_params(params, None)
