import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.moe import ExpertStats, MoEParams, combine_stats, moe_forward_with_stats, observe_layer

from ._reference import assert_stats_close, jit_forward, jit_observe, np_stats, random_params

E, D, F, T = 6, 8, 10, 24


@pytest.fixture(scope="module")
def layer():
    params = random_params(3, num_experts=E, d=D, f=F, router_scale=3.0)
    x = jnp.asarray(np.random.default_rng(4).normal(size=(T, D)), jnp.float32)
    mask = np.ones(T, bool)
    mask[[2, 7, 19]] = False
    return params, x, jnp.asarray(mask)


@pytest.fixture(scope="module")
def observe():
    return jax.jit(observe_layer, static_argnames=("top_k", "renormalize", "dense_outputs"))


@pytest.mark.parametrize("renormalize", [True, False])
def test_statistics_match_a_token_by_token_reference(layer, observe, renormalize):
    params, x, mask = layer
    stats = observe(params, x, top_k=2, renormalize=renormalize, token_mask=mask, dense_outputs=True)
    assert_stats_close(stats, np_stats(params, x, 2, renormalize, np.asarray(mask)))
    assert int(stats.tokens.sum()) == 2 * int(mask.sum()) == 2 * int(stats.n_tokens)
    assert stats.reap_sum is stats.weighted_ean_sum


def test_forward_with_stats_returns_the_plain_forward(layer):
    params, x, mask = layer
    with_stats = jax.jit(lambda p, v, m: moe_forward_with_stats(p, v, top_k=2, renormalize=True, token_mask=m))
    y, _ = with_stats(params, x, mask)
    np.testing.assert_array_equal(np.asarray(y), np.asarray(jit_forward(params, x, top_k=2, renormalize=True)))


def test_batch_split_and_padding_do_not_change_statistics(layer, observe):
    params, x, mask = layer
    full = observe(params, x, top_k=2, renormalize=True, token_mask=mask, dense_outputs=True)
    a = observe(params, x[:10], top_k=2, renormalize=True, token_mask=mask[:10], dense_outputs=True)
    b = observe(params, x[10:], top_k=2, renormalize=True, token_mask=mask[10:], dense_outputs=True)
    # Padding: 8 junk rows with mask 0 appended.
    junk = jnp.asarray(np.random.default_rng(5).normal(size=(8, D)) * 10, jnp.float32)
    padded = observe(
        params,
        jnp.concatenate([x, junk]),
        top_k=2,
        renormalize=True,
        token_mask=jnp.concatenate([mask, jnp.zeros(8, bool)]),
        dense_outputs=True,
    )
    on_host = a.to_host().combine(b.to_host())
    for other in (combine_stats(a, b), ExpertStats.combine(a, b), padded, on_host):
        for name in ("n_tokens", "tokens"):
            np.testing.assert_array_equal(np.asarray(getattr(other, name)), np.asarray(getattr(full, name)))
        np.testing.assert_array_equal(np.asarray(other.max_act), np.asarray(full.max_act))
        for name in ("gate_sum", "ean_sum", "weighted_ean_sum", "output_sum", "logit_sum", "logit_outer"):
            np.testing.assert_allclose(
                np.asarray(getattr(other, name)), np.asarray(getattr(full, name)), rtol=1e-6, atol=1e-6, err_msg=name
            )
    assert isinstance(on_host.gate_sum, np.ndarray) and on_host.gate_sum.dtype == np.float64
    zero = ExpertStats.zeros(E, D, dense_outputs=True)
    for name in ("tokens", "gate_sum", "max_act", "logit_outer", "dense_output_sum"):
        np.testing.assert_array_equal(np.asarray(getattr(full.combine(zero), name)), np.asarray(getattr(full, name)))


def test_identities_of_the_criteria(layer, observe):
    params, x, mask = layer
    stats = observe(params, x, top_k=2, renormalize=True, token_mask=mask, dense_outputs=False)
    assert stats.dense_output_sum is None
    n = np.asarray(stats.tokens, np.float64)
    routed = n > 0
    reap = np.asarray(stats.weighted_ean_sum)[routed] / n[routed]
    ean_mean = np.asarray(stats.ean_sum)[routed] / n[routed]
    np.testing.assert_allclose(reap * n[routed], np.asarray(stats.weighted_ean_sum)[routed], rtol=1e-6)
    np.testing.assert_allclose(ean_mean * n[routed], np.asarray(stats.ean_sum)[routed], rtol=1e-6)
    # Top-1 with renormalisation: every gate is 1, so REAP = EAN mean and soft frequency = frequency.
    top1 = observe(params, x, top_k=1, renormalize=True, token_mask=mask, dense_outputs=False)
    np.testing.assert_allclose(np.asarray(top1.weighted_ean_sum), np.asarray(top1.ean_sum), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(top1.gate_sum), np.asarray(top1.tokens), rtol=1e-6)
    # Scaling expert j's down-projection by a > 0 scales its REAP by a (routing is unchanged).
    j, a = int(np.argmax(n)), 2.5
    scaled = MoEParams(params.router, params.w_gate, params.w_up, params.w_down.at[j].multiply(a))
    s2 = observe(scaled, x, top_k=2, renormalize=True, token_mask=mask, dense_outputs=False)
    np.testing.assert_array_equal(np.asarray(s2.tokens), np.asarray(stats.tokens))
    ratio = np.asarray(s2.weighted_ean_sum) / np.where(routed, np.asarray(stats.weighted_ean_sum), 1.0)
    expected = np.where(np.arange(E) == j, a, 1.0)
    np.testing.assert_allclose(ratio[routed], expected[routed], rtol=1e-5)


def test_observer_rejects_bad_input(layer):
    params, x, mask = layer
    with pytest.raises(ValueError, match="token_mask"):
        jit_observe(params, x, top_k=2, renormalize=True, token_mask=mask[:5])
    with pytest.raises(TypeError, match="token_mask"):
        jit_observe(params, x, top_k=2, renormalize=True, token_mask=jnp.ones(T))
    with pytest.raises(ValueError, match="x must be"):
        jit_observe(params, x[:, :4], top_k=2, renormalize=True)
    with pytest.raises(ValueError, match="different layers"):
        combine_stats(ExpertStats.zeros(E, D), ExpertStats.zeros(E + 1, D))
    with pytest.raises(ValueError, match="dense_output_sum"):
        combine_stats(ExpertStats.zeros(E, D), ExpertStats.zeros(E, D, dense_outputs=True))
    with pytest.raises(ValueError, match="num_experts"):
        ExpertStats.zeros(0, D)
