"""REAP observer overhead on CPU: calibration forward (layer + statistics) vs the plain MoE forward pass.

Variants, timed side by side in one process (jit-compiled, same routed tokens):
  * plain forward: dropless sparse MoE layer (sort + exact grouped matmul);
  * jaxsparse observer: the same forward plus every statistic (`moe_forward_with_stats`) — target <= 1.3x;
  * official-style observer: every expert on every token (the REAP repo's hooks), then masked statistics;
  * ragged_dot forward: `jax.lax.ragged_dot`, which XLA:CPU lowers to a dense masked matmul over all experts.
"""

import jax
import jax.numpy as jnp

from jaxsparse.moe import dense_expert_outputs, init_moe_params, moe_forward, moe_forward_with_stats, route

from ._timing import environment, interleaved_medians, ratio_line

__all__ = ["run"]

_TARGET = 1.3


def _official_observer(params, x, mask, top_k):
    """All experts on all tokens ([T, E, d], E x the FLOPs), then statistics of the routed pairs (repo style)."""
    logits = x @ params.router
    idx, gates, _ = route(logits, top_k=top_k, renormalize=True)
    dense = dense_expert_outputs(params, x)
    e = params.num_experts
    routed = jnp.zeros((x.shape[0], e), jnp.float32).at[jnp.arange(x.shape[0])[:, None], idx].add(gates)
    hit = (routed > 0) & mask[:, None]
    norms = jnp.linalg.norm(dense, axis=-1)
    w = jnp.where(hit, routed, 0.0)
    stats = {
        "tokens": jnp.sum(hit, axis=0),
        "gate_sum": jnp.sum(w, axis=0),
        "ean_sum": jnp.sum(jnp.where(hit, norms, 0.0), axis=0),
        "weighted_ean_sum": jnp.sum(w * norms, axis=0),
        "max_act": jnp.max(jnp.where(hit, jnp.max(dense, axis=-1), -jnp.inf), axis=0),
        "output_sum": jnp.einsum("te,ted->ed", hit.astype(jnp.float32), dense),
    }
    y = jnp.einsum("te,ted->td", routed, dense)
    return y, stats


def _ragged_forward(params, x, top_k):
    idx, gates, _ = route(x @ params.router, top_k=top_k, renormalize=True)
    flat = idx.reshape(-1)
    order = jnp.argsort(flat, stable=True)
    sizes = jnp.bincount(flat, length=params.num_experts).astype(jnp.int32)
    rows = x[order // top_k]
    h = jax.nn.silu(jax.lax.ragged_dot(rows, params.w_gate, sizes)) * jax.lax.ragged_dot(rows, params.w_up, sizes)
    out = jax.lax.ragged_dot(h, params.w_down, sizes)
    out = jnp.zeros_like(out).at[order].set(out).reshape(x.shape[0], top_k, -1)
    return jnp.einsum("tk,tkd->td", gates, out)


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    if tiny:
        tokens, experts, d, f, repeats = 64, 4, 16, 16, 2
    elif quick:
        tokens, experts, d, f, repeats = 2048, 16, 128, 256, 5
    else:
        tokens, experts, d, f, repeats = 8192, 16, 256, 512, 7
    top_k = 2
    params = init_moe_params(jax.random.key(0), num_experts=experts, d_model=d, d_ff=f)
    params = type(params)(params.router * 20.0, params.w_gate, params.w_up, params.w_down)  # peaked routing
    x = jax.random.normal(jax.random.key(1), (tokens, d), jnp.float32)
    mask = jnp.arange(tokens) % 16 != 15  # 1/16 padding

    plain = jax.jit(lambda p, v: moe_forward(p, v, top_k=top_k, renormalize=True))
    observer = jax.jit(lambda p, v, m: moe_forward_with_stats(p, v, top_k=top_k, renormalize=True, token_mask=m))
    official = jax.jit(lambda p, v, m: _official_observer(p, v, m, top_k))
    ragged = jax.jit(lambda p, v: _ragged_forward(p, v, top_k))
    variants = {
        "plain forward": lambda: plain(params, x),
        "jaxsparse observer": lambda: observer(params, x, mask),
        "official-style observer": lambda: official(params, x, mask),
        "ragged_dot forward": lambda: ragged(params, x),
    }
    timings = interleaved_medians(variants, repeats=repeats, target_s=0.02 if tiny else 0.1)
    base = timings["plain forward"]["median_s"]
    print(f"  MoE layer: T={tokens}, E={experts}, d={d}, f={f}, top-{top_k} (CPU: {jax.default_backend()})")
    for name, t in timings.items():
        print(ratio_line(name, t["median_s"], base, kind="x plain forward"))
    overhead = timings["jaxsparse observer"]["median_s"] / base
    print(f"  observer overhead {overhead:.3f}x (target <= {_TARGET}x: {'met' if overhead <= _TARGET else 'MISSED'})")
    return {
        "shape": {"tokens": tokens, "experts": experts, "d_model": d, "d_ff": f, "top_k": top_k},
        "plain_forward_median_s": base,
        "observer_median_s": timings["jaxsparse observer"]["median_s"],
        "official_observer_median_s": timings["official-style observer"]["median_s"],
        "ragged_dot_forward_median_s": timings["ragged_dot forward"]["median_s"],
        "observer_overhead": overhead,
        "official_overhead": timings["official-style observer"]["median_s"] / base,
        "target": _TARGET,
        "target_met": bool(overhead <= _TARGET),
        "timings": timings,
        "environment": environment(),
    }
