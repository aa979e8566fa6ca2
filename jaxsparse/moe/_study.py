"""REAP reproduction at small scale: a tiny MoE LM on Python-stdlib code, pruned and merged one-shot."""

import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse.data import load_stdlib_code_corpus, sample_windows

from ._layer import moe_forward
from ._lm import MoELM, calibrate_lm, evaluate_lm, get_moe_params, lm_moe_inputs, train_moe_lm, with_moe_params
from ._prune import PRUNE_METHODS, expert_scores, num_experts_after_pruning, prune_layers

__all__ = ["MERGE_METHODS", "reap_study"]

MERGE_METHODS = ("hc_smoe", "m_smoe")

_layer_forward = jax.jit(moe_forward, static_argnames=("top_k", "renormalize"))


def _merge_functions():
    """moe_io's merging baselines and subspace measure, when that part of the package is present."""
    try:
        from . import _analysis, _merge
    except ImportError:  # pragma: no cover - only while the merging module is absent
        return None, None
    return _merge, _analysis


def _heldout_windows(tokens: np.ndarray, seq_len: int, count: int) -> np.ndarray:
    """`count` non-overlapping `[seq_len + 1]` windows spread evenly over the held-out stream (deterministic)."""
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise ValueError(f"the held-out files hold {len(tokens)} tokens, fewer than seq_len + 1 = {seq_len + 1}")
    picks = np.unique(np.linspace(0, n - 1, num=min(count, n)).astype(int))
    return np.stack([tokens[i * seq_len : i * seq_len + seq_len + 1] for i in picks]).astype(np.int32)


def _merged_layers(merge, method, params_list, stats_list, num_keep, top_k):
    """Merged layers and a note; M-SMoE uses the repo's global dominant-expert choice when every layer keeps
    >= top_k experts, else a per-layer choice."""
    if method == "hc_smoe":
        return [merge.merge_hc_smoe(p, s, num_keep) for p, s in zip(params_list, stats_list, strict=True)], ""
    dominant = merge.m_smoe_dominant_experts(stats_list, num_keep)
    if min(len(d) for d in dominant) >= top_k:
        layers = [
            merge.merge_m_smoe(p, s, dominant=d) for p, s, d in zip(params_list, stats_list, dominant, strict=True)
        ]
        return layers, "global dominant experts: E' per layer " + ",".join(str(len(d)) for d in dominant)
    layers = [merge.merge_m_smoe(p, s, num_keep) for p, s in zip(params_list, stats_list, strict=True)]
    return layers, "per-layer dominant experts (the global choice left a layer below top_k)"


def reap_study(
    *,
    num_layers: int = 4,
    num_experts: int = 16,
    top_k: int = 2,
    renormalize: bool = True,
    d_model: int = 64,
    d_ff: int = 64,
    num_heads: int = 4,
    seq_len: int = 64,
    batch_size: int = 16,
    train_steps: int = 1500,
    learning_rate: float = 3e-3,
    balance_weight: float = 0.01,
    calib_batches: int = 8,
    eval_windows: int = 256,
    ratios: tuple = (0.25, 0.5),
    methods: tuple = ("reap", "frequency", "ean_sum", "random", "hc_smoe", "m_smoe"),
    max_files: int | None = None,
    max_bytes: int | None = 4_000_000,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Trains a tiny MoE LM on stdlib code, calibrates on training windows, prunes/merges, evaluates held-out files.

    Returns a dict with "rows" (one per (method, ratio), plus the original at ratio 0): held-out loss, perplexity,
    next-token accuracy, experts per layer; "subspace" (PCA spread of the last MoE layer's outputs, original vs
    pruned vs merged at the largest ratio); "train_losses"; "checks"; "calibration" summaries and timings.
    """
    for name, value in (("calib_batches", calib_batches), ("eval_windows", eval_windows),
                        ("batch_size", batch_size), ("seq_len", seq_len), ("train_steps", train_steps)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    for ratio in ratios:
        if not isinstance(ratio, int | float) or not 0.0 <= ratio < 1.0:
            raise ValueError(f"every ratio must be in [0, 1), got {ratio!r}")
    for method in methods:
        if method not in PRUNE_METHODS + MERGE_METHODS:
            raise ValueError(f"unknown method {method!r}; pruning: {PRUNE_METHODS}, merging: {MERGE_METHODS}")
    timings = {}
    t0 = time.perf_counter()
    corpus = load_stdlib_code_corpus(seed=seed, heldout_fraction=0.1, max_files=max_files, max_bytes=max_bytes)
    model = MoELM(
        vocab_size=corpus.vocab_size, d_model=d_model, num_heads=num_heads, d_ff=d_ff, num_experts=num_experts,
        num_layers=num_layers, top_k=top_k, renormalize=renormalize, max_len=seq_len, rngs=nnx.Rngs(params=seed),
    )  # fmt: skip

    def sample(step):
        inputs, targets = sample_windows(
            corpus.train_tokens, key_or_seed=seed * 1_000_003 + step, batch_size=batch_size, seq_len=seq_len
        )
        return np.concatenate([inputs, targets[:, -1:]], axis=1)

    train_losses = train_moe_lm(
        model, sample, steps=train_steps, learning_rate=learning_rate, balance_weight=balance_weight, progress=progress
    )
    timings["train_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    merge, analysis = _merge_functions()
    wants_merge = any(m in MERGE_METHODS for m in methods)
    calib = [sample(10_000_000 + i)[:, :-1] for i in range(calib_batches)]
    stats = calibrate_lm(model, calib, dense_outputs=wants_merge and merge is not None)
    timings["calibrate_s"] = time.perf_counter() - t1

    heldout = _heldout_windows(corpus.heldout_tokens, seq_len, eval_windows)
    t2 = time.perf_counter()
    base = evaluate_lm(model, heldout)
    params_list = get_moe_params(model)
    rows = [{"method": "original", "ratio": 0.0, **base, "experts_per_layer": [num_experts] * num_layers, "note": ""}]
    pruned_models = {}
    for ratio in ratios:
        num_keep = num_experts_after_pruning(num_experts, ratio, top_k=top_k)
        for method in methods:
            note = ""
            if method in MERGE_METHODS:
                if merge is None:
                    rows.append({"method": method, "ratio": ratio, "note": "skipped: merging module not available"})
                    continue
                layers, note = _merged_layers(merge, method, params_list, stats, num_keep, top_k)
            else:
                key = jax.random.key(seed + 17) if method == "random" else None
                layers, _ = prune_layers(params_list, stats, method=method, ratio=ratio, top_k=top_k, key=key)
            pruned = with_moe_params(model, layers)
            pruned_models[(method, ratio)] = layers
            row = {"method": method, "ratio": ratio, **evaluate_lm(pruned, heldout)}
            row["experts_per_layer"] = [p.num_experts for p in layers]
            row["note"] = note
            rows.append(row)
    timings["evaluate_s"] = time.perf_counter() - t2

    subspace = _subspace(analysis, model, params_list, pruned_models, heldout, max(ratios) if ratios else None)
    checks = _checks(model, params_list, stats, heldout, base, rows, ratios, top_k, num_experts)
    return {
        "rows": rows,
        "original": base,
        "subspace": subspace,
        "train_losses": train_losses,
        "checks": checks,
        "calibration": {
            "tokens": int(np.asarray(stats[0].n_tokens)),
            "frequency_per_layer": [np.asarray(s.tokens).tolist() for s in stats],
        },
        "corpus": {
            "train_files": len(corpus.train_files),
            "heldout_files": len(corpus.heldout_files),
            "train_tokens": int(corpus.train_tokens.size),
            "heldout_tokens": int(corpus.heldout_tokens.size),
            "eval_windows": int(heldout.shape[0]),
        },
        "timings": timings,
    }


def _subspace(analysis, model, params_list, pruned_models, heldout, ratio) -> dict:
    """PCA spread of the last MoE layer's outputs on the same (original) inputs: original vs pruned vs merged."""
    if analysis is None or ratio is None:
        return {"note": "skipped: subspace_spread not available"}
    x = lm_moe_inputs(model, jnp.asarray(heldout[:16, :-1]))[-1]
    top_k, renorm = model.top_k, model.renormalize
    reference = np.asarray(_layer_forward(params_list[-1], x, top_k=top_k, renormalize=renorm))
    out = {"layer": len(params_list) - 1, "ratio": ratio, "original": analysis.subspace_spread(reference)}
    for (method, r), layers in pruned_models.items():
        if r == ratio:
            y = np.asarray(_layer_forward(layers[-1], x, top_k=top_k, renormalize=renorm))
            out[method] = analysis.subspace_spread(y, reference=reference)
    return out


def _checks(model, params_list, stats, heldout, base, rows, ratios, top_k, num_experts) -> dict:
    checks = {}
    # Structural: 0% pruning is the identity (same parameters, same held-out loss).
    same, _ = prune_layers(params_list, stats, method="reap", ratio=0.0, top_k=top_k)
    identical = all(
        bool(jnp.array_equal(a, b))
        for p, q in zip(same, params_list, strict=True)
        for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q), strict=True)
    )
    zero = evaluate_lm(with_moe_params(model, same), heldout)
    checks["zero_ratio_pruning_is_identity_zero_diff"] = {
        "passed": identical and zero["loss"] == base["loss"],
        "detail": f"parameters bit-identical: {identical}; held-out loss {zero['loss']:.6f} vs {base['loss']:.6f}",
    }
    # Structural: every pruned layer keeps E - int(E·ratio) experts (expert density 1 - ratio, rounded down).
    bad = [
        r
        for r in rows
        if r["method"] in PRUNE_METHODS and "experts_per_layer" in r
        if set(r["experts_per_layer"]) != {num_experts - int(num_experts * r["ratio"])}
    ]
    checks["kept_expert_density_matches_budget"] = {
        "passed": not bad,
        "detail": f"{len(bad)} pruned rows with a wrong expert count (want E - int(E * ratio) in every layer)",
    }
    # Identity of the statistics: weighted EAN sum = REAP x frequency (per layer, routed experts).
    err = 0.0
    for s in stats:
        n = np.asarray(s.tokens, np.float64)
        reap = np.asarray(expert_scores(s, "reap"), np.float64)
        wes = np.asarray(s.weighted_ean_sum, np.float64)
        err = max(err, float(np.max(np.abs(reap * n - wes) / np.maximum(np.abs(wes), 1e-12))))
    checks["weighted_ean_sum_equals_reap_times_frequency"] = {
        "passed": err < 1e-5,
        "detail": f"max relative error over layers and experts: {err:.2e}",
    }
    by = {(r["method"], r["ratio"]): r for r in rows if "loss" in r}
    top = max(ratios) if ratios else None
    if top is not None and ("reap", top) in by and ("frequency", top) in by:
        reap, freq = by[("reap", top)]["loss"], by[("frequency", top)]["loss"]
        checks[f"reap_loss_not_above_frequency_at_{int(100 * top)}pct"] = {
            "passed": reap <= freq,
            "detail": f"held-out loss REAP {reap:.4f} vs frequency {freq:.4f} (original {base['loss']:.4f})",
        }
    merged = [by[(m, top)]["loss"] for m in MERGE_METHODS if (m, top) in by]
    if top is not None and ("reap", top) in by and merged:
        reap = by[("reap", top)]["loss"]
        checks[f"reap_loss_not_above_merging_at_{int(100 * top)}pct"] = {
            "passed": reap <= min(merged),
            "detail": f"held-out loss REAP {reap:.4f} vs best merge {min(merged):.4f}",
        }
    return checks
