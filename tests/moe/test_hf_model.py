"""The JAX Mixtral / Qwen3-MoE / OLMoE forward against a plain float64 numpy re-implementation, padding included."""

import jax
import numpy as np
import pytest

from jaxsparse.moe import observe_layer
from jaxsparse.moe._checkpoint import load_hf_moe
from jaxsparse.moe._hf_model import hf_moe_forward, hf_moe_layer_inputs, hf_moe_nll, hf_moe_observe, prepare_hf_moe

from ._hf_fixtures import VOCAB, load_all, tiny_config, tiny_tensors, write_checkpoint

CASES = {
    "mixtral": {"sliding_window": 3},
    "qwen3_moe": {},
    "olmoe": {"clip_qkv": 0.7},
}


def _np_rms(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _np_rope(x, theta):
    """x [S, H, hd]; pairs (i, i + hd/2) rotate by angle pos * theta^(-2i/hd), written with complex numbers."""
    s, _, hd = x.shape
    half = hd // 2
    angle = np.arange(s)[:, None] * theta ** (-np.arange(half) * 2.0 / hd)[None, :]
    z = (x[..., :half] + 1j * x[..., half:]) * np.exp(1j * angle)[:, None, :]
    return np.concatenate([z.real, z.imag], axis=-1)


def _np_reference(cfg, t, ids):
    """One unpadded sequence: (logits [S, V], inputs of each MoE block [S, d]); float64, HF [out, in] weights."""
    t = {k: v.astype(np.float64) for k, v in t.items()}
    arch, eps, theta = cfg["model_type"], cfg["rms_norm_eps"], cfg["rope_theta"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // nh
    n_exp = cfg.get("num_local_experts", cfg.get("num_experts"))
    renorm = arch == "mixtral" or cfg.get("norm_topk_prob", False)
    s = len(ids)
    h = t["model.embed_tokens.weight"][ids]
    inputs = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        x = _np_rms(h, t[f"{p}.input_layernorm.weight"], eps)
        q, k, v = (x @ t[f"{p}.self_attn.{n}_proj.weight"].T for n in "qkv")
        if arch == "olmoe":
            q = _np_rms(q, t[f"{p}.self_attn.q_norm.weight"], eps)
            k = _np_rms(k, t[f"{p}.self_attn.k_norm.weight"], eps)
            if cfg.get("clip_qkv"):
                c = cfg["clip_qkv"]
                q, k, v = np.clip(q, -c, c), np.clip(k, -c, c), np.clip(v, -c, c)
        q, k, v = q.reshape(s, nh, hd), k.reshape(s, nkv, hd), v.reshape(s, nkv, hd)
        if arch == "qwen3_moe":
            q = _np_rms(q, t[f"{p}.self_attn.q_norm.weight"], eps)
            k = _np_rms(k, t[f"{p}.self_attn.k_norm.weight"], eps)
        q, k = _np_rope(q, theta), _np_rope(k, theta)
        out = np.zeros((s, nh, hd))
        window = cfg.get("sliding_window")
        for head in range(nh):
            kv = head // (nh // nkv)
            for a in range(s):
                keys = [b for b in range(a + 1) if window is None or a - b < window]
                sc = np.array([q[a, head] @ k[b, kv] for b in keys]) / np.sqrt(hd)
                w = np.exp(sc - sc.max())
                w /= w.sum()
                out[a, head] = sum(wi * v[b, kv] for wi, b in zip(w, keys, strict=True))
        h = h + out.reshape(s, nh * hd) @ t[f"{p}.self_attn.o_proj.weight"].T
        x = _np_rms(h, t[f"{p}.post_attention_layernorm.weight"], eps)
        if f"{p}.mlp.gate_proj.weight" in t:  # Qwen3 dense layer
            g, u = x @ t[f"{p}.mlp.gate_proj.weight"].T, x @ t[f"{p}.mlp.up_proj.weight"].T
            h = h + (g / (1 + np.exp(-g)) * u) @ t[f"{p}.mlp.down_proj.weight"].T
            continue
        inputs.append(x)
        blk = f"{p}.block_sparse_moe" if arch == "mixtral" else f"{p}.mlp"
        names = ("w1", "w3", "w2") if arch == "mixtral" else ("gate_proj", "up_proj", "down_proj")
        logits = x @ t[f"{blk}.gate.weight"].T
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        y = np.zeros_like(x)
        for r in range(s):
            top = np.argsort(-probs[r], kind="stable")[: cfg["num_experts_per_tok"]]
            gates = probs[r, top] / (probs[r, top].sum() if renorm else 1.0)
            for gate, e in zip(gates, top, strict=True):
                assert 0 <= e < n_exp
                a = x[r] @ t[f"{blk}.experts.{e}.{names[0]}.weight"].T
                b = x[r] @ t[f"{blk}.experts.{e}.{names[1]}.weight"].T
                y[r] += gate * ((a / (1 + np.exp(-a)) * b) @ t[f"{blk}.experts.{e}.{names[2]}.weight"].T)
        h = h + y
    logits = _np_rms(h, t["model.norm.weight"], eps) @ t["lm_head.weight"].T
    return logits, inputs


@pytest.mark.parametrize("arch", list(CASES))
def test_forward_matches_numpy_reference_with_padding(tmp_path, arch):
    cfg = {**tiny_config(arch), **CASES[arch]}
    src = write_checkpoint(tmp_path / arch, cfg, tiny_tensors(cfg, seed=11))
    _, tensors = load_all(src)
    ckpt = load_hf_moe(src)
    rng = np.random.default_rng(4)
    s = 7
    ids = rng.integers(0, VOCAB, size=(3, s))
    mask = np.ones((3, s), np.int32)
    mask[1, :3] = 0  # left padding
    mask[2, 5:] = 0  # right padding
    weights = prepare_hf_moe(ckpt)
    logits, moe_inputs = hf_moe_forward(weights, ids, mask)
    assert len(moe_inputs) == len(ckpt.moe_layer_ids)
    if arch == "mixtral":  # the inputs-only entry point (one more compilation: checked once)
        again = hf_moe_layer_inputs(weights, ids, mask)
        for a, b in zip(moe_inputs, again, strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    logits = np.asarray(logits)
    ref_nll, ref_count = 0.0, 0
    for row in range(3):
        valid = np.flatnonzero(mask[row])
        ref_logits, ref_inputs = _np_reference(cfg, tensors, ids[row, valid])
        logp = ref_logits - np.log(np.exp(ref_logits).sum(-1, keepdims=True))
        ref_nll -= logp[np.arange(valid.size - 1), ids[row, valid[1:]]].sum()
        ref_count += valid.size - 1
        np.testing.assert_allclose(logits[row, valid], ref_logits, rtol=2e-4, atol=2e-4)
        for got, want in zip(moe_inputs, ref_inputs, strict=True):
            got = np.asarray(got).reshape(3, s, -1)
            np.testing.assert_allclose(got[row, valid], want, rtol=2e-4, atol=2e-5)
            np.testing.assert_array_equal(got[row, mask[row] == 0], 0.0)  # padding rows are zero
    if arch == "qwen3_moe":
        nll, count = hf_moe_nll(weights, ids, mask)
        assert count == ref_count
        assert nll == pytest.approx(ref_nll, rel=1e-4)
    if arch == "olmoe":  # the fused observer equals observe_layer on the returned inputs, padding excluded
        fused = hf_moe_observe(weights, ids, mask)
        token_mask = mask.reshape(-1).astype(bool)
        for lid, x, st in zip(ckpt.moe_layer_ids, moe_inputs, fused, strict=True):
            want = jax.jit(observe_layer, static_argnames=("top_k", "renormalize"))(
                weights.layers[lid]["moe"], x, top_k=ckpt.top_k, renormalize=ckpt.renormalize, token_mask=token_mask
            )
            assert int(st.n_tokens) == int(mask.sum())
            np.testing.assert_array_equal(np.asarray(st.tokens), np.asarray(want.tokens))
            for field in ("gate_sum", "weighted_ean_sum", "ean_sum", "output_sum", "logit_outer"):
                np.testing.assert_allclose(
                    np.asarray(getattr(st, field)), np.asarray(getattr(want, field)), rtol=1e-5, atol=1e-5
                )


def test_bad_tokens_raise(tmp_path):
    cfg = tiny_config("olmoe")
    ckpt = load_hf_moe(write_checkpoint(tmp_path / "c", cfg, tiny_tensors(cfg)))
    with pytest.raises(ValueError, match=r"token_ids must lie in \[0, vocab_size=64\)"):
        hf_moe_layer_inputs(ckpt, np.array([[1, 64]]))
    with pytest.raises(ValueError, match="attention_mask must have the shape"):
        hf_moe_layer_inputs(ckpt, np.array([[1, 2]]), np.array([[1, 1, 1]]))
    with pytest.raises(ValueError, match="attention_mask must hold 0/1"):
        hf_moe_layer_inputs(ckpt, np.array([[1, 2]]), np.array([[1, 2]]))
    with pytest.raises(TypeError, match="model must be a HFMoECheckpoint"):
        hf_moe_layer_inputs({"a": 1}, np.array([[1, 2]]))
    with pytest.raises(ValueError, match="rope_scaling"):
        cfg2 = {**cfg, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}
        prepare_hf_moe(load_hf_moe(write_checkpoint(tmp_path / "y", cfg2, tiny_tensors(cfg2))))
