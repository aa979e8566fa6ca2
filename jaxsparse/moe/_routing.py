"""Top-k softmax routing with and without top-k renormalisation (Mixtral / Qwen3-MoE vs OLMoE conventions)."""

import jax
import jax.numpy as jnp

__all__ = ["route"]

# Lower bound on the sum of the selected top-k probabilities before dividing (the official observer's clamp).
_RENORM_EPS = 1e-20


def _check_top_k(top_k, num_experts: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise TypeError(f"top_k must be an int, got {top_k!r}")
    if not 1 <= top_k <= num_experts:
        raise ValueError(f"top_k must be in [1, E={num_experts}], got {top_k}")
    return top_k


def route(logits, *, top_k: int, renormalize: bool):
    """Routes tokens: softmax over all E experts (float32), then the top-k by probability.

    Ties go to the lower expert id (`jax.lax.top_k` keeps the lower index first among equal values).

    Args:
        logits: `[T, E]` router logits.
        top_k: experts per token, 1 <= top_k <= E.
        renormalize: divide the selected probabilities by their sum (Mixtral, Qwen3-MoE with `norm_topk_prob`);
            when False the gates are the raw softmax probabilities (OLMoE, Qwen3 with `norm_topk_prob=False`).

    Returns:
        `(expert_idx [T, k] int32, gates [T, k] float32, probs [T, E] float32)`; row t of `expert_idx` lists the
        chosen experts by decreasing probability.
    """
    logits = jnp.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [T, E], got shape {logits.shape}")
    top_k = _check_top_k(top_k, logits.shape[1])
    if not isinstance(renormalize, bool):
        raise TypeError(f"renormalize must be a bool, got {renormalize!r}")
    probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
    gates, expert_idx = jax.lax.top_k(probs, top_k)
    if renormalize:
        gates = gates / jnp.maximum(jnp.sum(gates, axis=-1, keepdims=True), _RENORM_EPS)
    return expert_idx.astype(jnp.int32), gates, probs
