"""Expert saliency criteria (REAP and the baselines) and one-shot expert pruning with router slicing."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxsparse._checks import check_fraction, check_int

from ._observer import ExpertStats
from ._params import MoEParams, check_moe_params

__all__ = [
    "PRUNE_METHODS",
    "expert_scores",
    "experts_to_keep",
    "num_experts_after_pruning",
    "prune_experts",
    "prune_layers",
    "super_experts",
]

# name -> what is ranked (higher = keep). "soft_frequency" is the repo's "weighted_frequency_sum".
PRUNE_METHODS = (
    "reap",
    "frequency",
    "soft_frequency",
    "weighted_frequency_sum",
    "ean_sum",
    "ean_mean",
    "weighted_ean_sum",
    "max_activations",
    "ean_ca",
    "random",
)
# Listed as choices by the official repo but never computed there (selecting them fails); refused here too.
_UNIMPLEMENTED_UPSTREAM = ("reap_l2", "weighted_ean_sum_l2", "spectral")
_ROUNDING = ("error", "up", "down")


def _safe_mean(total, count):
    count = jnp.asarray(count, jnp.float32)
    return jnp.where(count > 0, jnp.asarray(total, jnp.float32) / jnp.maximum(count, 1.0), 0.0)


def expert_scores(stats: ExpertStats, method: str, *, key=None):
    """Per-expert saliency, `[E]` float32; higher means keep.

    Methods (sums over X_j, the valid tokens routed to j; never-routed experts score 0, or -inf for
    `max_activations`): "reap" = mean g_j‖f_j‖; "frequency" = |X_j|; "soft_frequency" (alias
    "weighted_frequency_sum") = Σ g_j; "ean_sum" = Σ‖f_j‖ (the EAN baseline); "ean_mean" = mean ‖f_j‖;
    "weighted_ean_sum" = Σ g_j‖f_j‖; "max_activations" = largest element of f_j; "ean_ca" = ‖mean f_j‖;
    "random" = uniform in [0, 1) from `key`.
    """
    if not isinstance(stats, ExpertStats):
        raise TypeError(f"stats must be an ExpertStats, got {type(stats).__name__}")
    if method in _UNIMPLEMENTED_UPSTREAM:
        raise ValueError(
            f"method {method!r} is listed by the official REAP code but never defined there; use one of {PRUNE_METHODS}"
        )
    if method not in PRUNE_METHODS:
        raise ValueError(f"method must be one of {PRUNE_METHODS}, got {method!r}")
    tokens = stats.tokens
    if method == "reap":
        return _safe_mean(stats.weighted_ean_sum, tokens)
    if method == "frequency":
        return jnp.asarray(tokens, jnp.float32)
    if method in ("soft_frequency", "weighted_frequency_sum"):
        return jnp.asarray(stats.gate_sum, jnp.float32)
    if method == "ean_sum":
        return jnp.asarray(stats.ean_sum, jnp.float32)
    if method == "ean_mean":
        return _safe_mean(stats.ean_sum, tokens)
    if method == "weighted_ean_sum":
        return jnp.asarray(stats.weighted_ean_sum, jnp.float32)
    if method == "max_activations":
        return jnp.asarray(stats.max_act, jnp.float32)
    if method == "ean_ca":
        mean = jnp.asarray(stats.output_sum, jnp.float32) / jnp.maximum(jnp.asarray(tokens, jnp.float32), 1.0)[:, None]
        return jnp.linalg.norm(mean, axis=-1)
    if key is None:
        raise ValueError("method 'random' needs a PRNG key: pass key=jax.random.key(seed)")
    return jax.random.uniform(key, (stats.num_experts,), jnp.float32)


def experts_to_keep(scores, num_keep: int):
    """The `num_keep` highest-scoring experts, sorted by id (`[num_keep]` int32); equal scores: lower id wins."""
    if not isinstance(scores, jax.core.Tracer):
        scores = jnp.asarray(np.asarray(scores))  # gathers expert-sharded scores (sorting needs the whole axis)
    if scores.ndim != 1:
        raise ValueError(f"scores must be [E], got shape {scores.shape}")
    num_keep = check_int(num_keep, "num_keep", minimum=1)
    if num_keep > scores.shape[0]:
        raise ValueError(f"num_keep must be <= E={scores.shape[0]}, got {num_keep}")
    if not isinstance(scores, jax.core.Tracer) and bool(jnp.any(jnp.isnan(scores))):
        raise ValueError("scores must not contain NaN")
    # `+ 0.0` turns -0.0 into +0.0 so that a zero score ties with another zero (the sort orders -0.0 first).
    order = jnp.argsort(-scores.astype(jnp.float32) + 0.0, stable=True)
    return jnp.sort(order[:num_keep]).astype(jnp.int32)


def prune_experts(params: MoEParams, keep) -> MoEParams:
    """Keeps experts `keep` (strictly increasing ids) in their original order and the matching router columns.

    Nothing is rescaled: at inference the router's softmax runs over the E' remaining logits, then top-k.
    """
    params = check_moe_params(params)
    keep = jnp.asarray(keep)
    if keep.ndim != 1 or keep.shape[0] < 1:
        raise ValueError(f"keep must be a non-empty 1-D array of expert ids, got shape {keep.shape}")
    if not jnp.issubdtype(keep.dtype, jnp.integer):
        raise TypeError(f"keep must hold integer expert ids, got dtype {keep.dtype}")
    if not isinstance(keep, jax.core.Tracer):
        ids = np.asarray(keep)
        if ids.min() < 0 or ids.max() >= params.num_experts:
            raise ValueError(f"keep must lie in [0, E={params.num_experts}), got {ids.tolist()}")
        if np.any(np.diff(ids) <= 0):
            raise ValueError(f"keep must be strictly increasing (no duplicates), got {ids.tolist()}")
    return MoEParams(
        router=jnp.take(params.router, keep, axis=1),
        w_gate=jnp.take(params.w_gate, keep, axis=0),
        w_up=jnp.take(params.w_up, keep, axis=0),
        w_down=jnp.take(params.w_down, keep, axis=0),
    )


def num_experts_after_pruning(
    num_experts: int, ratio: float, *, top_k: int, expert_parallel: int = 1, rounding: str = "error"
) -> int:
    """E' = E - int(E·ratio) (the paper's per-layer budget), checked against top_k and the expert-parallel size.

    Args:
        num_experts: E.
        ratio: fraction of experts pruned, in [0, 1).
        top_k: the layer's top-k (unchanged by pruning); E' must be >= top_k.
        expert_parallel: size of the mesh's expert axis; E' must be a multiple of it.
        rounding: when E' is not a multiple of `expert_parallel`: "error" raises, "up" keeps more experts (prunes
            fewer), "down" keeps fewer (never below top_k).
    """
    num_experts = check_int(num_experts, "num_experts", minimum=1)
    ratio = check_fraction(ratio, "ratio", allow_zero=True)
    top_k = check_int(top_k, "top_k", minimum=1)
    expert_parallel = check_int(expert_parallel, "expert_parallel", minimum=1)
    if rounding not in _ROUNDING:
        raise ValueError(f"rounding must be one of {_ROUNDING}, got {rounding!r}")
    if top_k > num_experts:
        raise ValueError(f"top_k={top_k} exceeds num_experts={num_experts}")
    if num_experts % expert_parallel:
        raise ValueError(f"num_experts={num_experts} is not divisible by the expert-parallel size {expert_parallel}")
    keep = num_experts - int(num_experts * ratio)
    if keep < top_k:
        raise ValueError(
            f"ratio={ratio} prunes {num_experts - keep} of {num_experts} experts, leaving E'={keep} < top_k={top_k}; "
            "the router must still find top_k experts"
        )
    if keep % expert_parallel:
        if rounding == "error":
            raise ValueError(
                f"E'={keep} experts after pruning (ratio={ratio}, E={num_experts}) is not divisible by the "
                f"expert-parallel mesh size {expert_parallel}; pass rounding='up' or 'down', or change ratio"
            )
        if rounding == "up":
            keep = math.ceil(keep / expert_parallel) * expert_parallel
        else:
            keep = keep // expert_parallel * expert_parallel
            if keep < max(top_k, 1):
                raise ValueError(
                    f"rounding E' down to a multiple of {expert_parallel} leaves {keep} < top_k={top_k} experts"
                )
    return keep


def super_experts(stats_list, *, layer_fraction: float = 0.75, percentile: float = 99.5) -> list:
    """Super experts (arXiv 2507.23279, as the REAP repo): max_act > max(percentile of all, global max / 10).

    Only the first `layer_fraction` of the layers is checked (the repo's rule). Returns one bool `[E]` per layer.
    """
    stats_list = list(stats_list)
    if not stats_list or not all(isinstance(s, ExpertStats) for s in stats_list):
        raise TypeError("stats_list must be a non-empty sequence of ExpertStats")
    checked = max(1, int(len(stats_list) * layer_fraction))
    acts = [np.asarray(s.max_act, np.float64) for s in stats_list[:checked]]
    finite = np.concatenate([a[np.isfinite(a)] for a in acts])
    if finite.size == 0:
        return [np.zeros(s.num_experts, bool) for s in stats_list]
    threshold = max(float(np.percentile(finite, percentile)), float(finite.max()) / 10.0)
    masks = [np.isfinite(a) & (a > threshold) for a in acts]
    return masks + [np.zeros(s.num_experts, bool) for s in stats_list[checked:]]


def _layer_scores(stats_list, method, key, preserve_super_experts):
    keys = [None] * len(stats_list) if key is None else list(jax.random.split(key, len(stats_list)))
    scores = [np.asarray(expert_scores(s, method, key=k), np.float64) for s, k in zip(stats_list, keys, strict=True)]
    if preserve_super_experts:
        for s, mask in zip(scores, super_experts(stats_list), strict=True):
            s[mask] = np.inf
    return scores


def _global_keep_counts(scores, ratio, top_k, expert_parallel, rounding):
    """Non-uniform E'_l: drop the globally lowest layer-normalised scores (each score / its layer's total)."""
    for layer, s in enumerate(scores):
        finite = s[np.isfinite(s)]
        if np.any(finite < 0):
            raise ValueError(f"budget='global' needs non-negative scores; layer {layer} has negative ones")
    total = sum(s.size for s in scores)
    n_prune = int(total * ratio)
    entries = []
    for layer, s in enumerate(scores):
        finite_sum = float(s[np.isfinite(s)].sum())
        norm = s / finite_sum if finite_sum > 0 else np.zeros_like(s)
        entries += [(float(norm[e]), layer, e) for e in range(s.size)]
    entries.sort()
    counts = [s.size for s in scores]
    for _, layer, _ in entries:
        if n_prune == 0:
            break
        if counts[layer] > top_k:
            counts[layer] -= 1
            n_prune -= 1
    for layer, count in enumerate(counts):
        if count % expert_parallel:
            if rounding == "error":
                raise ValueError(
                    f"global budget leaves E'={count} experts in layer {layer}, not divisible by the expert-parallel "
                    f"mesh size {expert_parallel}; pass rounding='up' or 'down'"
                )
            up = math.ceil(count / expert_parallel) * expert_parallel
            down = count // expert_parallel * expert_parallel
            counts[layer] = up if rounding == "up" or down < top_k else down
    return counts


def prune_layers(
    params_list,
    stats_list,
    *,
    method: str,
    ratio: float,
    top_k: int,
    budget: str = "uniform",
    expert_parallel: int = 1,
    rounding: str = "error",
    key=None,
    preserve_super_experts: bool = False,
):
    """Prunes every MoE layer of a model; returns `(pruned MoEParams list, kept ids list)`.

    Args:
        params_list, stats_list: one `MoEParams` and its `ExpertStats` per layer.
        method: a criterion of `expert_scores`.
        ratio: fraction of experts pruned, in [0, 1); 0 returns the layers unchanged.
        top_k: the model's top-k; every layer keeps at least top_k experts.
        budget: "uniform" prunes int(E·ratio) experts in every layer (the paper); "global" prunes
            int(ratio · Σ_l E_l) experts with the lowest layer-normalised scores (score / layer total), giving
            non-uniform E'_l (a list of layers, not a scanned stack). No layer goes below top_k experts, so when
            that floor binds fewer than int(ratio · Σ_l E_l) experts are pruned.
        expert_parallel, rounding: see `num_experts_after_pruning` (applied per layer).
        key: PRNG key for method "random" (split per layer).
        preserve_super_experts: never prune `super_experts` (their score is set to +inf).
    """
    params_list, stats_list = list(params_list), list(stats_list)
    if not params_list or len(params_list) != len(stats_list):
        raise ValueError(
            f"params_list and stats_list must be non-empty and of equal length, got {len(params_list)} and "
            f"{len(stats_list)}"
        )
    for layer, (p, s) in enumerate(zip(params_list, stats_list, strict=True)):
        check_moe_params(p, f"params_list[{layer}]")
        if not isinstance(s, ExpertStats) or s.num_experts != p.num_experts:
            raise ValueError(f"stats_list[{layer}] must be ExpertStats for E={p.num_experts} experts")
    if budget not in ("uniform", "global"):
        raise ValueError(f"budget must be 'uniform' or 'global', got {budget!r}")
    ratio = check_fraction(ratio, "ratio", allow_zero=True)
    # The uniform budget checks every layer here; the global one checks E divisibility and top_k <= E (ratio 0).
    counts = [
        num_experts_after_pruning(
            p.num_experts,
            ratio if budget == "uniform" else 0.0,
            top_k=top_k,
            expert_parallel=expert_parallel,
            rounding=rounding,
        )
        for p in params_list
    ]
    if ratio == 0.0:
        return params_list, [jnp.arange(p.num_experts, dtype=jnp.int32) for p in params_list]
    scores = _layer_scores(stats_list, method, key, preserve_super_experts)
    if budget == "global":
        counts = _global_keep_counts(scores, ratio, top_k, expert_parallel, rounding)
    keeps = [experts_to_keep(jnp.asarray(s, jnp.float32), n) for s, n in zip(scores, counts, strict=True)]
    return [prune_experts(p, k) for p, k in zip(params_list, keeps, strict=True)], keeps
