import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsparse.moe import (
    MoELM,
    MoEParams,
    calibrate_lm,
    evaluate_lm,
    get_moe_params,
    lm_moe_inputs,
    moe_forward,
    observe_layer,
    prune_layers,
    with_moe_params,
)

from ._reference import tree_equal

V, L, B = 32, 12, 3


@nnx.jit
def _make_model():
    return MoELM(
        vocab_size=V, d_model=16, num_heads=2, d_ff=16, num_experts=4, num_layers=2, top_k=2, max_len=L,
        rngs=nnx.Rngs(params=0),
    )  # fmt: skip


@nnx.jit
def _apply(model, tokens):
    return model(tokens)


@pytest.fixture(scope="module")
def model():
    return _make_model()


@pytest.fixture(scope="module")
def tokens():
    return jnp.asarray(np.random.default_rng(0).integers(0, V, (2 * B, L)), jnp.int32)


def test_layers_hold_moe_params_and_match_the_layer_function(model, tokens):
    params = get_moe_params(model)
    assert len(params) == 2 and all(isinstance(p, MoEParams) for p in params)
    assert params[0].w_gate.shape == (4, 16, 16) and params[0].router.shape == (16, 4)
    logits, aux = _apply(model, tokens)
    assert logits.shape == (2 * B, L, V) and np.isfinite(float(aux["balance_loss"]))
    inputs = lm_moe_inputs(model, tokens)
    block = nnx.jit(lambda m, v: m(v)[0])(model.blocks[1].moe, inputs[1])
    layer = jax.jit(lambda p, v: moe_forward(p, v, top_k=2, renormalize=True))(params[1], inputs[1])
    np.testing.assert_allclose(np.asarray(block), np.asarray(layer), rtol=1e-6, atol=1e-7)


def test_calibration_equals_the_layer_observer_and_ignores_padding(model, tokens):
    inputs = lm_moe_inputs(model, tokens)
    mask = np.ones((2 * B, L), bool)
    mask[:, -3:] = False  # right padding
    stats = calibrate_lm(model, [tokens[:B], tokens[B:]], token_masks=[mask[:B], mask[B:]])
    for layer, s in enumerate(stats):
        want = observe_layer(
            get_moe_params(model)[layer],
            inputs[layer],
            top_k=2,
            renormalize=True,
            token_mask=jnp.asarray(mask).reshape(-1),
        )
        np.testing.assert_array_equal(s.tokens, np.asarray(want.tokens))
        assert int(s.n_tokens) == mask.sum()
        np.testing.assert_allclose(s.weighted_ean_sum, np.asarray(want.weighted_ean_sum), rtol=1e-5)
        assert s.gate_sum.dtype == np.float64  # accumulated on the host in float64
    # Padding tokens placed anywhere never count: garbage in masked positions leaves the statistics alone.
    junk = jnp.where(jnp.asarray(mask), tokens, (tokens * 7 + 3) % V)
    again = calibrate_lm(model, [junk[:B], junk[B:]], token_masks=[mask[:B], mask[B:]])
    np.testing.assert_array_equal(again[0].tokens, stats[0].tokens)  # causal: padding only at the end


def test_pruned_model_and_evaluation(model, tokens):
    stats = calibrate_lm(model, [tokens[:B]])  # the batch shape of the calibration test: no new compile
    layers, _ = prune_layers(get_moe_params(model), stats, method="reap", ratio=0.5, top_k=2)
    pruned = with_moe_params(model, layers)
    assert [p.num_experts for p in get_moe_params(pruned)] == [2, 2]
    assert [p.num_experts for p in get_moe_params(model)] == [4, 4]  # the original is untouched
    # Windows of L + 1 tokens whose inputs are `tokens` and whose last target wraps to the first token.
    windows = np.concatenate([np.asarray(tokens), np.asarray(tokens[:, :1])], axis=1)
    base = evaluate_lm(model, windows)
    assert base["tokens"] == 2 * B * L
    logits, _ = _apply(model, tokens)
    logp = np.asarray(jax.nn.log_softmax(logits), np.float64)
    nll = -np.take_along_axis(logp, windows[:, 1:, None], axis=-1).mean()
    accuracy = (np.argmax(logp, axis=-1) == windows[:, 1:]).mean()
    np.testing.assert_allclose(base["loss"], nll, rtol=1e-5)
    assert np.isclose(base["perplexity"], np.exp(base["loss"])) and base["accuracy"] == accuracy
    assert tree_equal(get_moe_params(with_moe_params(model, get_moe_params(model)))[0], get_moe_params(model)[0])
    assert 0 <= evaluate_lm(pruned, windows)["accuracy"] <= 1


def test_lm_rejects_bad_input(model, tokens):
    with pytest.raises(ValueError, match="top_k"):
        MoELM(num_experts=2, top_k=3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_heads"):
        MoELM(d_model=30, num_heads=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="params_list"):
        with_moe_params(model, get_moe_params(model)[:1])
    one = [jax.tree.map(lambda a: a[:1] if a.ndim == 3 else a[:, :1], p) for p in get_moe_params(model)]
    with pytest.raises(ValueError, match="top_k"):
        with_moe_params(model, one)
    with pytest.raises(ValueError, match="max_len"):
        model(jnp.zeros((1, L + 1), jnp.int32))
    with pytest.raises(ValueError, match="windows"):
        evaluate_lm(model, np.zeros((4,), np.int32))
