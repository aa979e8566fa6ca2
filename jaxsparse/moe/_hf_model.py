"""A JAX forward pass of the Mixtral, Qwen3-MoE and OLMoE decoders, for calibrating expert pruning on real checkpoints.

Follows the Hugging Face modelling code in float32: token embedding; per layer, pre-RMSNorm GQA causal attention
with rotary embeddings (`rotate_half` convention, default RoPE only), optional q/k RMSNorm (Qwen3: per head, over
`head_dim`; OLMoE: over the whole projection, before splitting into heads; chosen by the norm weight's shape) and
OLMoE's optional `clip_qkv`, then a post-attention RMSNorm and the MoE block (`moe_forward`: softmax over all experts,
top-k, renormalised for Mixtral and `norm_topk_prob` models) or Qwen3's dense MLP layers. No KV cache, no dropout.

The point is the hidden state *entering* each MoE block (after the post-attention norm), which is what the observer
needs; `hf_moe_forward` also returns logits so a pruned checkpoint's loss can be measured.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ._checkpoint import HFMoECheckpoint
from ._layer import moe_forward
from ._observer import moe_forward_with_stats
from ._params import MoEParams

__all__ = ["HFMoEWeights", "hf_moe_forward", "hf_moe_layer_inputs", "hf_moe_nll", "hf_moe_observe", "prepare_hf_moe"]

_MASKED = -1e30  # finite, so a query row with no visible key (left padding) gives a uniform row, not NaN


@dataclasses.dataclass(frozen=True)
class _Arch:
    """Static (hashable) description of the decoder, a `jit` static argument."""

    n_heads: int
    n_kv_heads: int
    head_dim: int
    eps: float
    rope_theta: float
    top_k: int
    renormalize: bool
    clip_qkv: float | None
    sliding_window: int | None
    kinds: tuple  # per decoder layer: "moe" or "dense"
    qk_norm: str  # "none", "head" (Qwen3) or "full" (OLMoE)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class HFMoEWeights:
    """Device (float32) weights of a checkpoint in `x @ W` orientation, plus its static architecture.

    Build once with `prepare_hf_moe` and pass to `hf_moe_forward` / `hf_moe_layer_inputs` for many batches.
    """

    embed: jax.Array
    final_norm: jax.Array
    lm_head: jax.Array
    layers: tuple  # per decoder layer: dict of arrays (attention, norms, and "moe": MoEParams or "mlp": dict)
    arch: _Arch = dataclasses.field(metadata={"static": True})


def _f32(array) -> jax.Array:
    return jnp.asarray(np.asarray(array), jnp.float32)


def _t(array) -> jax.Array:
    return _f32(np.asarray(array).T)


def prepare_hf_moe(ckpt: HFMoECheckpoint) -> HFMoEWeights:
    """Converts a loaded checkpoint's weights to float32 device arrays (validating the attention shapes)."""
    if not isinstance(ckpt, HFMoECheckpoint):
        raise TypeError(f"ckpt must be a HFMoECheckpoint, got {type(ckpt).__name__}")
    cfg, t = ckpt.config, ckpt.tensors
    d, n_heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    n_kv = int(cfg.get("num_key_value_heads") or n_heads)
    head_dim = int(cfg.get("head_dim") or d // n_heads)
    if n_heads % n_kv:
        raise ValueError(f"num_attention_heads={n_heads} must be a multiple of num_key_value_heads={n_kv}")
    scaling = cfg.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise ValueError(f"rope_scaling {scaling!r} is not supported (default RoPE only)")

    def need(name):
        if name not in t:
            raise ValueError(f"checkpoint {ckpt.source}: missing tensor {name!r}")
        return t[name]

    moe_of = dict(zip(ckpt.moe_layer_ids, ckpt.layers, strict=True))
    layers, kinds, qk_norm = [], [], "none"
    for i in range(int(cfg["num_hidden_layers"])):
        p = f"model.layers.{i}"
        layer = {
            "input_norm": _f32(need(f"{p}.input_layernorm.weight")),
            "post_norm": _f32(need(f"{p}.post_attention_layernorm.weight")),
        }
        for proj, rows in (("q", n_heads * head_dim), ("k", n_kv * head_dim), ("v", n_kv * head_dim)):
            w = need(f"{p}.self_attn.{proj}_proj.weight")
            if w.shape != (rows, d):
                raise ValueError(f"{p}.self_attn.{proj}_proj.weight has shape {w.shape}, expected {(rows, d)}")
            layer[proj] = _t(w)
            bias = t.get(f"{p}.self_attn.{proj}_proj.bias")
            layer[f"{proj}_bias"] = _f32(bias) if bias is not None else jnp.zeros((rows,), jnp.float32)
        layer["o"] = _t(need(f"{p}.self_attn.o_proj.weight"))
        if f"{p}.self_attn.q_norm.weight" in t:
            qn, kn = need(f"{p}.self_attn.q_norm.weight"), need(f"{p}.self_attn.k_norm.weight")
            qk_norm = "head" if qn.shape == (head_dim,) else "full"
            if qk_norm == "full" and (qn.shape != (n_heads * head_dim,) or kn.shape != (n_kv * head_dim,)):
                raise ValueError(f"{p}.self_attn q_norm/k_norm shapes {qn.shape}/{kn.shape} fit neither layout")
            layer["q_norm"], layer["k_norm"] = _f32(qn), _f32(kn)
        if i in moe_of:
            m = moe_of[i]
            layer["moe"] = MoEParams(
                router=_f32(m.router), w_gate=_f32(m.w_gate), w_up=_f32(m.w_up), w_down=_f32(m.w_down)
            )
            kinds.append("moe")
        else:
            layer["mlp"] = {k: _t(need(f"{p}.mlp.{k}_proj.weight")) for k in ("gate", "up", "down")}
            kinds.append("dense")
        layers.append(layer)
    embed = _f32(need("model.embed_tokens.weight"))
    head = t.get("lm_head.weight")
    if head is None and not cfg.get("tie_word_embeddings", False):
        raise ValueError(f"checkpoint {ckpt.source}: missing tensor 'lm_head.weight' (and embeddings are not tied)")
    window = cfg.get("sliding_window") if cfg.get("use_sliding_window", True) else None
    arch = _Arch(
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        eps=float(cfg.get("rms_norm_eps", 1e-6)),
        rope_theta=float(cfg.get("rope_theta", 10000.0)),
        top_k=ckpt.top_k,
        renormalize=ckpt.renormalize,
        clip_qkv=None if cfg.get("clip_qkv") is None else float(cfg["clip_qkv"]),
        sliding_window=None if window is None else int(window),
        kinds=tuple(kinds),
        qk_norm=qk_norm,
    )
    return HFMoEWeights(
        embed=embed,
        final_norm=_f32(need("model.norm.weight")),
        lm_head=embed.T if head is None else _t(head),
        layers=tuple(layers),
        arch=arch,
    )


def _bcast(v, ndim):
    """`v [n]` as `[1, ..., 1, n]` (explicit: tests run with rank promotion disabled)."""
    return v.reshape((1,) * (ndim - 1) + (-1,))


def _rms_norm(x, weight, eps):
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * _bcast(weight, x.ndim)


def _rope(x, positions, theta):
    """`x [B, S, H, hd]` rotated by `positions [B, S]` (HF `rotate_half` convention)."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
    freqs = positions[..., None].astype(jnp.float32) * _bcast(inv_freq, 3)
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    half = hd // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * jnp.cos(emb) + rotated * jnp.sin(emb)


def _attention(layer, h, positions, mask, arch: _Arch):
    b, s, _ = h.shape
    q = h @ layer["q"] + _bcast(layer["q_bias"], 3)
    k = h @ layer["k"] + _bcast(layer["k_bias"], 3)
    v = h @ layer["v"] + _bcast(layer["v_bias"], 3)
    if arch.qk_norm == "full":
        q, k = _rms_norm(q, layer["q_norm"], arch.eps), _rms_norm(k, layer["k_norm"], arch.eps)
    if arch.clip_qkv is not None:
        q, k, v = (jnp.clip(a, -arch.clip_qkv, arch.clip_qkv) for a in (q, k, v))
    q = q.reshape(b, s, arch.n_heads, arch.head_dim)
    k = k.reshape(b, s, arch.n_kv_heads, arch.head_dim)
    v = v.reshape(b, s, arch.n_kv_heads, arch.head_dim)
    if arch.qk_norm == "head":
        q, k = _rms_norm(q, layer["q_norm"], arch.eps), _rms_norm(k, layer["k_norm"], arch.eps)
    q, k = _rope(q, positions, arch.rope_theta), _rope(k, positions, arch.rope_theta)
    groups = arch.n_heads // arch.n_kv_heads
    k, v = jnp.repeat(k, groups, axis=2), jnp.repeat(v, groups, axis=2)  # head h reads kv head h // groups
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k, precision=jax.lax.Precision.HIGHEST) / np.sqrt(arch.head_dim)
    idx = jnp.arange(s)
    visible = idx[None, :] <= idx[:, None]
    if arch.sliding_window is not None:
        visible &= idx[:, None] - idx[None, :] < arch.sliding_window
    visible = visible[None, None] & mask[:, None, None, :]
    probs = jax.nn.softmax(jnp.where(visible, scores, _MASKED), axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v, precision=jax.lax.Precision.HIGHEST)
    return out.reshape(b, s, arch.n_heads * arch.head_dim) @ layer["o"]


@functools.partial(jax.jit, static_argnames=("with_logits", "with_inputs", "observe", "dense_outputs"))
def _forward(weights: HFMoEWeights, token_ids, mask, *, with_logits, with_inputs, observe=False, dense_outputs=False):
    """(logits or None, MoE-layer inputs (or []), ExpertStats per MoE layer (or [])) in one jitted pass."""
    arch = weights.arch
    b, s = token_ids.shape
    positions = jnp.maximum(jnp.cumsum(mask.astype(jnp.int32), axis=1) - 1, 0)  # = arange for right padding
    h = weights.embed[token_ids]
    flat_mask = mask.reshape(-1)
    moe_inputs, stats = [], []
    for layer, kind in zip(weights.layers, arch.kinds, strict=True):
        h = h + _attention(layer, _rms_norm(h, layer["input_norm"], arch.eps), positions, mask, arch)
        x = _rms_norm(h, layer["post_norm"], arch.eps).reshape(b * s, -1)
        if kind == "moe":
            if with_inputs:
                moe_inputs.append(jnp.where(flat_mask[:, None], x, 0.0))
            if observe:  # the layer output and its statistics from one grouped matmul
                y, layer_stats = moe_forward_with_stats(
                    layer["moe"],
                    x,
                    top_k=arch.top_k,
                    renormalize=arch.renormalize,
                    token_mask=flat_mask,
                    dense_outputs=dense_outputs,
                )
                stats.append(layer_stats)
            else:
                y = moe_forward(layer["moe"], x, top_k=arch.top_k, renormalize=arch.renormalize)
        else:
            mlp = layer["mlp"]
            y = (jax.nn.silu(x @ mlp["gate"]) * (x @ mlp["up"])) @ mlp["down"]
        h = h + y.reshape(b, s, -1)
    logits = _rms_norm(h, weights.final_norm, arch.eps) @ weights.lm_head if with_logits else None
    return logits, moe_inputs, stats


def _check_tokens(weights: HFMoEWeights, token_ids, attention_mask):
    token_ids = np.asarray(token_ids)
    if token_ids.ndim == 1:
        token_ids = token_ids[None]
    if token_ids.ndim != 2 or token_ids.size == 0 or not np.issubdtype(token_ids.dtype, np.integer):
        raise ValueError(f"token_ids must be a non-empty [B, S] (or [S]) integer array, got {token_ids!r}")
    vocab = weights.embed.shape[0]
    if token_ids.min() < 0 or token_ids.max() >= vocab:
        raise ValueError(f"token_ids must lie in [0, vocab_size={vocab}), got [{token_ids.min()}, {token_ids.max()}]")
    if attention_mask is None:
        mask = np.ones(token_ids.shape, bool)
    else:
        mask = np.asarray(attention_mask)
        mask = mask[None] if mask.ndim == 1 else mask
        if mask.shape != token_ids.shape:
            raise ValueError(f"attention_mask must have the shape of token_ids {token_ids.shape}, got {mask.shape}")
        if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool) or not np.isin(mask, (0, 1)).all():
            raise ValueError("attention_mask must hold 0/1 (or bool) values")
        mask = mask.astype(bool)
    return jnp.asarray(token_ids, jnp.int32), jnp.asarray(mask)


def _weights(model) -> HFMoEWeights:
    if isinstance(model, HFMoEWeights):
        return model
    if isinstance(model, HFMoECheckpoint):
        return prepare_hf_moe(model)
    raise TypeError(f"model must be a HFMoECheckpoint or HFMoEWeights, got {type(model).__name__}")


def hf_moe_forward(model, token_ids, attention_mask=None):
    """Logits `[B, S, vocab]` and the MoE-layer inputs (see `hf_moe_layer_inputs`).

    Args:
        model: a `HFMoECheckpoint` or (faster for many batches) its `prepare_hf_moe` weights.
        token_ids: `[B, S]` or `[S]` token ids.
        attention_mask: same shape, 1 for real tokens and 0 for padding (default: all real).
    """
    weights = _weights(model)
    ids, mask = _check_tokens(weights, token_ids, attention_mask)
    logits, inputs, _ = _forward(weights, ids, mask, with_logits=True, with_inputs=True)
    return logits, inputs


def hf_moe_layer_inputs(model, token_ids, attention_mask=None) -> list:
    """The hidden states entering each MoE block (after the post-attention RMSNorm), one `[B*S, d]` array per MoE
    layer in `ckpt.moe_layer_ids` order; padding rows are zero. Pass `token_mask=attention_mask.reshape(-1) == 1`
    to `observe_layer` so padding is never counted."""
    weights = _weights(model)
    ids, mask = _check_tokens(weights, token_ids, attention_mask)
    return _forward(weights, ids, mask, with_logits=False, with_inputs=True)[1]


def hf_moe_observe(model, token_ids, attention_mask=None, *, dense_outputs: bool = False) -> list:
    """Calibration statistics: one `ExpertStats` per MoE layer over the non-padding tokens of this batch.

    One jitted forward pass; each MoE block's output and statistics come from the same grouped matmul
    (`moe_forward_with_stats`), so the observer adds only reductions. Combine batches with `ExpertStats.combine`
    (on `to_host()` copies for float64 accumulation). `dense_outputs=True` also sums every expert's output over
    all tokens (HC-SMoE's signature; runs all experts on all tokens).
    """
    if not isinstance(dense_outputs, bool):
        raise TypeError(f"dense_outputs must be a bool, got {dense_outputs!r}")
    weights = _weights(model)
    ids, mask = _check_tokens(weights, token_ids, attention_mask)
    return _forward(
        weights, ids, mask, with_logits=False, with_inputs=False, observe=True, dense_outputs=dense_outputs
    )[2]


@jax.jit
def _nll(weights: HFMoEWeights, token_ids, mask):
    logits, _, _ = _forward(weights, token_ids, mask, with_logits=True, with_inputs=False)
    logp = jax.nn.log_softmax(logits[:, :-1], axis=-1)
    nll = -jnp.take_along_axis(logp, token_ids[:, 1:, None], axis=-1)[..., 0]
    valid = mask[:, 1:] & mask[:, :-1]
    return jnp.sum(jnp.where(valid, nll, 0.0)), jnp.sum(valid.astype(jnp.int32))


def hf_moe_nll(model, token_ids, attention_mask=None) -> tuple[float, int]:
    """Next-token negative log-likelihood summed over the predictable positions (both the token and its
    predecessor real), and their count: `total / count` is the mean loss; sums combine over batches."""
    weights = _weights(model)
    ids, mask = _check_tokens(weights, token_ids, attention_mask)
    total, count = _nll(weights, ids, mask)
    return float(total), int(count)
