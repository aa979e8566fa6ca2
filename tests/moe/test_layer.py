import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.moe import (
    MoEParams,
    dense_expert_outputs,
    expert_outputs,
    moe_forward_dense,
    route,
)

from ._reference import jit_forward, np_expert, np_forward, np_params, random_params

E, D, F, T = 6, 8, 12, 20


@pytest.fixture(scope="module")
def layer():
    params = random_params(0, num_experts=E, d=D, f=F, router_scale=3.0)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(T, D)), jnp.float32)
    return params, x


@pytest.mark.parametrize("renormalize", [True, False])
def test_dropless_forward_equals_dense_masked_reference_and_numpy(layer, renormalize):
    params, x = layer
    y = jit_forward(params, x, top_k=2, renormalize=renormalize)
    y_dense = jax.jit(lambda p, v: moe_forward_dense(p, v, top_k=2, renormalize=renormalize))(params, x)
    np.testing.assert_allclose(np.asarray(y), np.asarray(y_dense), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(y), np_forward(params, x, 2, renormalize), rtol=1e-5, atol=1e-5)


def test_expert_outputs_are_the_routed_experts_raw_outputs(layer):
    params, x = layer
    idx, _, _ = jax.jit(lambda v: route(v, top_k=3, renormalize=True))(x @ params.router)
    outs = np.asarray(jax.jit(expert_outputs)(params, x, idx))
    p, xs = np_params(params), np.asarray(x, np.float64)
    assert outs.shape == (T, 3, D)
    for t in range(T):
        for s in range(3):
            np.testing.assert_allclose(outs[t, s], np_expert(p, int(idx[t, s]), xs[t]), rtol=1e-5, atol=1e-5)
    dense = np.asarray(jax.jit(dense_expert_outputs)(params, x))
    routed = np.take_along_axis(dense, np.asarray(idx)[..., None], axis=1)
    np.testing.assert_allclose(outs, routed, rtol=1e-5, atol=1e-6)


def test_experts_without_tokens_and_a_single_expert(layer):
    params, x = layer
    idx = jnp.zeros((T, 1), jnp.int32).at[3].set(5)  # experts 1..4 get no rows: empty groups
    outs = np.asarray(jax.jit(expert_outputs)(params, x, idx))
    p, xs = np_params(params), np.asarray(x, np.float64)
    np.testing.assert_allclose(outs[3, 0], np_expert(p, 5, xs[3]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(outs[0, 0], np_expert(p, 0, xs[0]), rtol=1e-5, atol=1e-5)
    single = MoEParams(params.router[:, :1], params.w_gate[:1], params.w_up[:1], params.w_down[:1])
    y = jit_forward(single, x, top_k=1, renormalize=True)  # the gate is 1: y is the expert output
    np.testing.assert_allclose(
        np.asarray(y), np.asarray(jax.jit(dense_expert_outputs)(single, x))[:, 0], rtol=1e-6, atol=1e-7
    )


def test_layer_rejects_bad_shapes(layer):
    params, x = layer
    with pytest.raises(ValueError, match="x must be"):
        jit_forward(params, x[:, :3], top_k=2, renormalize=True)
    bad = MoEParams(params.router[:, :5], params.w_gate, params.w_up, params.w_down)
    with pytest.raises(ValueError, match="router"):
        jit_forward(bad, x, top_k=2, renormalize=True)
    bad = MoEParams(params.router, params.w_gate, params.w_up, params.w_down[:, :, :3])
    with pytest.raises(ValueError, match="w_down"):
        jit_forward(bad, x, top_k=2, renormalize=True)
    with pytest.raises(TypeError, match="MoEParams"):
        jit_forward(vars(params), x, top_k=2, renormalize=True)
    with pytest.raises(ValueError, match="top_k"):
        jit_forward(params, x, top_k=E + 1, renormalize=True)
    with pytest.raises(ValueError, match="expert_idx"):
        expert_outputs(params, x, jnp.full((T, 2), E, jnp.int32))
    with pytest.raises(ValueError, match="expert_idx"):
        expert_outputs(params, x, jnp.zeros((T + 1, 2), jnp.int32))


def test_cpu_tiled_grouped_matmul_equals_ragged_dot():
    from jaxsparse.moe._layer import _tiled_grouped_ffn

    params = random_params(2, num_experts=5, d=D, f=F)
    rng = np.random.default_rng(3)
    sorted_expert = np.sort(rng.integers(0, 5, 70)).astype(np.int32)
    sorted_expert[sorted_expert == 2] = 3  # an empty group in the middle
    group_sizes = jnp.asarray(np.bincount(sorted_expert, minlength=5), jnp.int32)
    rows = jnp.asarray(rng.normal(size=(70, D)), jnp.float32)
    gate = jax.lax.ragged_dot(rows, params.w_gate, group_sizes)
    up = jax.lax.ragged_dot(rows, params.w_up, group_sizes)
    want = jax.lax.ragged_dot(jax.nn.silu(gate) * up, params.w_down, group_sizes)
    got = _tiled_grouped_ffn(params, rows, group_sizes, jnp.asarray(sorted_expert))
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-5, atol=1e-6)
