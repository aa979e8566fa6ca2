"""Independent numpy (float64) reference of a sparse-MoE layer and its per-expert statistics, for tests."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse.moe import MoEParams, moe_forward, observe_layer


def random_params(seed: int, *, num_experts: int, d: int, f: int, router_scale: float = 1.0) -> MoEParams:
    rng = np.random.default_rng(seed)
    return MoEParams(
        router=jnp.asarray(rng.normal(size=(d, num_experts)) * router_scale / np.sqrt(d), jnp.float32),
        w_gate=jnp.asarray(rng.normal(size=(num_experts, d, f)) / np.sqrt(d), jnp.float32),
        w_up=jnp.asarray(rng.normal(size=(num_experts, d, f)) / np.sqrt(d), jnp.float32),
        w_down=jnp.asarray(rng.normal(size=(num_experts, f, d)) / np.sqrt(f), jnp.float32),
    )


def np_params(params: MoEParams) -> dict:
    return {k: np.asarray(v, np.float64) for k, v in vars(params).items()}


def np_route(logits, top_k, renormalize):
    logits = np.asarray(logits, np.float64)
    z = np.exp(logits - logits.max(-1, keepdims=True))
    probs = z / z.sum(-1, keepdims=True)
    idx = np.argsort(-probs, axis=-1, kind="stable")[:, :top_k]
    gates = np.take_along_axis(probs, idx, axis=-1)
    if renormalize:
        gates = gates / gates.sum(-1, keepdims=True)
    return idx, gates, probs


def np_expert(p: dict, e: int, x):
    g = x @ p["w_gate"][e]
    return ((g / (1 + np.exp(-g))) * (x @ p["w_up"][e])) @ p["w_down"][e]


def np_forward(params: MoEParams, x, top_k, renormalize):
    p, x = np_params(params), np.asarray(x, np.float64)
    idx, gates, _ = np_route(x @ p["router"], top_k, renormalize)
    y = np.zeros_like(x)
    for t in range(x.shape[0]):
        for s in range(top_k):
            y[t] += gates[t, s] * np_expert(p, idx[t, s], x[t])
    return y


def np_stats(params: MoEParams, x, top_k, renormalize, mask=None) -> dict:
    """The official observer's statistics (as sums), token by token."""
    p, x = np_params(params), np.asarray(x, np.float64)
    e_count, d = p["w_gate"].shape[0], x.shape[1]
    mask = np.ones(x.shape[0], bool) if mask is None else np.asarray(mask)
    logits = x @ p["router"]
    idx, gates, _ = np_route(logits, top_k, renormalize)
    out = {
        "n_tokens": int(mask.sum()),
        "tokens": np.zeros(e_count, np.int64),
        "gate_sum": np.zeros(e_count),
        "ean_sum": np.zeros(e_count),
        "weighted_ean_sum": np.zeros(e_count),
        "max_act": np.full(e_count, -np.inf),
        "output_sum": np.zeros((e_count, d)),
        "dense_output_sum": np.zeros((e_count, d)),
    }
    for t in np.flatnonzero(mask):
        for e in range(e_count):
            out["dense_output_sum"][e] += np_expert(p, e, x[t])
        for s in range(top_k):
            e, g = idx[t, s], gates[t, s]
            f = np_expert(p, e, x[t])
            out["tokens"][e] += 1
            out["gate_sum"][e] += g
            out["ean_sum"][e] += np.linalg.norm(f)
            out["weighted_ean_sum"][e] += g * np.linalg.norm(f)
            out["max_act"][e] = max(out["max_act"][e], f.max())
            out["output_sum"][e] += f
    lm = logits[mask]
    out["logit_sum"] = lm.sum(0)
    out["logit_outer"] = lm.T @ lm
    return out


def assert_stats_close(stats, ref: dict, *, rtol=1e-5, atol=1e-5):
    """Counts exactly, float sums to float32 accuracy."""
    for name, want in ref.items():
        got = getattr(stats, name)
        if got is None:
            continue
        got = np.asarray(got)
        if name in ("n_tokens", "tokens"):
            np.testing.assert_array_equal(got, want, err_msg=name)
        else:
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, err_msg=name)


def tree_equal(a, b) -> bool:
    return all(bool(jnp.array_equal(x, y)) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


# Compiled once per shape: eager (op-by-op) execution of these layers would dominate the test time.
jit_forward = jax.jit(moe_forward, static_argnames=("top_k", "renormalize"))
jit_observe = jax.jit(observe_layer, static_argnames=("top_k", "renormalize", "dense_outputs"))
