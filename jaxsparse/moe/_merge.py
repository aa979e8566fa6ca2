"""Expert-merging baselines of the REAP comparison: HC-SMoE and M-SMoE.

* HC-SMoE (arXiv 2410.08589): agglomerative clustering (average linkage, Euclidean) of the experts' mean outputs,
  then a frequency-weighted average of the weights in each cluster, W = Σ p_i W_i / Σ p_i (gate, up and down).
* M-SMoE (arXiv 2310.01334): the most frequent experts are "dominant"; every other expert joins the dominant one
  whose router-logit column is most cosine-similar; before averaging, each member's hidden neurons are permuted to
  match the dominant expert's (Hungarian weight matching, a function-preserving permutation of the expert).

Two output layouts:
  * `"compact"` (default): E' experts, usable by `moe_forward` with an E'-way router. A merged expert keeps the
    router column of its cluster's most frequent (M-SMoE: dominant) member. This is what a smaller checkpoint holds.
  * `"replicated"`: the official repo's semantics. All E experts stay, every member of a cluster holds the merged
    weights and the router is unchanged, so a token whose top-k picks several members of one cluster sends the sum
    of their gates to the merged expert. Running this with `moe_forward` reproduces the repo's merged model exactly.

Deviation from the repo (documented, deliberate): with eps in the denominator, a cluster of never-routed experts
(Σ p = 0) is merged into all zeros there; here such a cluster takes the plain average. A singleton cluster is copied
bit-exactly (p W / p is not always W in floating point).
"""

import jax.numpy as jnp
import numpy as np
from scipy.optimize import linear_sum_assignment

from jaxsparse._checks import check_int

from ._observer import ExpertStats
from ._params import MoEParams, check_moe_params

__all__ = [
    "LINKAGES",
    "hc_smoe_clusters",
    "m_smoe_clusters",
    "m_smoe_dominant_experts",
    "merge_clusters",
    "merge_hc_smoe",
    "merge_m_smoe",
]

LINKAGES = ("average", "single", "complete")
_LAYOUTS = ("compact", "replicated")


def _check_stats(stats, num_experts: int | None = None) -> ExpertStats:
    if not isinstance(stats, ExpertStats):
        raise TypeError(f"stats must be an ExpertStats, got {type(stats).__name__}")
    if num_experts is not None and stats.num_experts != num_experts:
        raise ValueError(f"stats describe {stats.num_experts} experts but params hold {num_experts}")
    return stats


def _check_num_keep(num_keep, num_experts: int) -> int:
    num_keep = check_int(num_keep, "num_keep", minimum=1)
    if num_keep > num_experts:
        raise ValueError(f"num_keep must be <= E={num_experts}, got {num_keep}")
    return num_keep


def _agglomerative(points: np.ndarray, num_clusters: int, linkage: str) -> np.ndarray:
    """Deterministic agglomerative clustering (Lance-Williams updates, float64; ties: the lowest index pair)."""
    n = points.shape[0]
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt(np.einsum("ijd,ijd->ij", diff, diff))
    members = [[i] for i in range(n)]
    active = list(range(n))
    while len(active) > num_clusters:
        sub = dist[np.ix_(active, active)]
        sub = np.where(np.triu(np.ones_like(sub, bool), k=1), sub, np.inf)
        a, b = np.unravel_index(int(np.argmin(sub)), sub.shape)  # row-major: the lowest (a, b) among ties
        i, j = active[a], active[b]
        ni, nj = len(members[i]), len(members[j])
        if linkage == "average":
            new = (ni * dist[i] + nj * dist[j]) / (ni + nj)
        elif linkage == "single":
            new = np.minimum(dist[i], dist[j])
        else:
            new = np.maximum(dist[i], dist[j])
        dist[i, :], dist[:, i] = new, new
        dist[i, i] = 0.0
        members[i] = sorted(members[i] + members[j])
        active.remove(j)
    labels = np.empty(n, np.int32)
    for c, i in enumerate(sorted(active, key=lambda k: members[k][0])):
        labels[members[i]] = c
    return labels


def _signature(stats: ExpertStats, signature: str) -> np.ndarray:
    if signature not in ("auto", "all_tokens", "routed"):
        raise ValueError(f"signature must be 'auto', 'all_tokens' or 'routed', got {signature!r}")
    if signature == "all_tokens" and stats.dense_output_sum is None:
        raise ValueError("signature='all_tokens' needs stats observed with dense_outputs=True (dense_output_sum)")
    if signature != "routed" and stats.dense_output_sum is not None:
        n = max(int(np.asarray(stats.n_tokens)), 1)
        return np.asarray(stats.dense_output_sum, np.float64) / n
    counts = np.asarray(stats.tokens, np.float64)
    return np.asarray(stats.output_sum, np.float64) / np.maximum(counts, 1.0)[:, None]


def hc_smoe_clusters(stats: ExpertStats, num_clusters: int, *, linkage: str = "average", signature: str = "auto"):
    """HC-SMoE's clustering: `[E]` int32 cluster labels, numbered by each cluster's smallest expert id.

    Args:
        stats: the layer's calibration statistics.
        num_clusters: E', the number of clusters (1 <= E' <= E).
        linkage: "average" (HC-SMoE's choice), "single" or "complete".
        signature: "all_tokens" = mean of f_j over ALL tokens (HC-SMoE's signature; needs `observe_layer(...,
            dense_outputs=True)`), "routed" = mean over the tokens routed to j, "auto" = all_tokens when observed.
    """
    stats = _check_stats(stats)
    num_clusters = _check_num_keep(num_clusters, stats.num_experts)
    if linkage not in LINKAGES:
        raise ValueError(f"linkage must be one of {LINKAGES}, got {linkage!r}")
    return _agglomerative(_signature(stats, signature), num_clusters, linkage)


def _frequency(stats: ExpertStats) -> np.ndarray:
    return np.asarray(stats.tokens, np.float64)


def _most_frequent(ids, freq: np.ndarray) -> int:
    ids = sorted(int(i) for i in ids)
    return max(ids, key=lambda i: (freq[i], -i))  # highest frequency, then the lowest id


def _logit_cosine(stats: ExpertStats) -> np.ndarray:
    gram = np.asarray(stats.logit_outer, np.float64)
    norms = np.sqrt(np.maximum(np.diag(gram), 0.0))
    denom = norms[:, None] * norms[None, :]
    return np.where(denom > 0, gram / np.where(denom > 0, denom, 1.0), 0.0)


def m_smoe_dominant_experts(stats_list, num_keep: int) -> list:
    """M-SMoE's global choice of dominant experts across layers (the official repo's rule).

    First each layer's most frequent expert, then the most frequent remaining (layer, expert) pairs over all layers
    until L x num_keep are chosen (frequency ties: lower layer, then lower expert id). Layers therefore keep
    different numbers of experts. Returns one sorted int32 array of dominant ids per layer.
    """
    stats_list = list(stats_list)
    if not stats_list:
        raise ValueError("stats_list must hold at least one ExpertStats")
    for s in stats_list:
        _check_stats(s)
    num_keep = check_int(num_keep, "num_keep", minimum=1)
    n_layers = len(stats_list)
    total = n_layers * num_keep
    if total > sum(s.num_experts for s in stats_list):
        raise ValueError(f"num_keep={num_keep} per layer exceeds the experts available")
    chosen = [{_most_frequent(range(s.num_experts), _frequency(s))} for s in stats_list]
    rest = [
        (-_frequency(s)[e], layer, e)
        for layer, s in enumerate(stats_list)
        for e in range(s.num_experts)
        if e not in chosen[layer]
    ]
    for _, layer, e in sorted(rest)[: total - n_layers]:
        chosen[layer].add(e)
    return [np.array(sorted(c), np.int32) for c in chosen]


def m_smoe_clusters(stats: ExpertStats, num_keep: int | None = None, *, dominant=None):
    """M-SMoE's grouping: `(labels [E] int32, dominant [E'] int32)`.

    The dominant experts are the `num_keep` most frequent (ties: lower id) unless given explicitly (e.g. from
    `m_smoe_dominant_experts`); every other expert joins the dominant expert with the highest cosine similarity
    of router-logit columns over the calibration tokens (ties: lower id). Cluster c holds `dominant[c]`.
    """
    stats = _check_stats(stats)
    n_exp = stats.num_experts
    freq = _frequency(stats)
    if dominant is None:
        if num_keep is None:
            raise ValueError("give num_keep or dominant")
        num_keep = _check_num_keep(num_keep, n_exp)
        order = sorted(range(n_exp), key=lambda i: (-freq[i], i))
        dominant = np.array(sorted(order[:num_keep]), np.int32)
    else:
        dominant = np.asarray(dominant)
        if dominant.ndim != 1 or dominant.size < 1 or not np.issubdtype(dominant.dtype, np.integer):
            raise ValueError(f"dominant must be a non-empty 1-D array of expert ids, got {dominant!r}")
        if dominant.min() < 0 or dominant.max() >= n_exp or np.any(np.diff(dominant) <= 0):
            raise ValueError(f"dominant must be strictly increasing ids in [0, {n_exp}), got {dominant.tolist()}")
        if num_keep is not None and num_keep != dominant.size:
            raise ValueError(f"num_keep={num_keep} disagrees with {dominant.size} dominant experts")
        dominant = dominant.astype(np.int32)
    cos = _logit_cosine(stats)
    labels = np.empty(n_exp, np.int32)
    for c, d in enumerate(dominant.tolist()):
        labels[d] = c
    for e in range(n_exp):
        if e not in dominant:
            labels[e] = int(np.argmax(cos[e, dominant]))  # argmax: the first (lowest id) among ties
    return labels, dominant


def _neuron_permutation(params_np: dict, anchor: int, expert: int) -> np.ndarray:
    """Permutation `perm` of expert's hidden neurons maximising Σ_a <neuron a of anchor, neuron perm[a] of expert>.

    A neuron is its gate column, up column and down row concatenated; permuting them together leaves the expert's
    function unchanged (SwiGLU acts neuron-wise).
    """

    def features(e):
        return np.concatenate([params_np["w_gate"][e].T, params_np["w_up"][e].T, params_np["w_down"][e]], axis=1)

    similarity = features(anchor) @ features(expert).T
    rows, cols = linear_sum_assignment(similarity, maximize=True)
    perm = np.empty_like(cols)
    perm[rows] = cols
    return perm


def merge_clusters(params: MoEParams, labels, weights, *, representatives=None, align=False, layout="compact"):
    """Merges experts that share a label: W_c = Σ_i w_i W_i / Σ_i w_i over the members i of cluster c.

    Args:
        params: the layer (E experts).
        labels: `[E]` cluster ids 0..C-1 (every id used).
        weights: `[E]` non-negative merge weights (frequencies); a cluster whose weights sum to 0 is averaged.
        representatives: `[C]` expert per cluster whose router column the compact layer keeps and, with `align`,
            the anchor of the neuron alignment; default: the member with the largest weight (ties: lower id).
        align: permute each member's hidden neurons to match the representative's before averaging (M-SMoE).
        layout: "compact" (C experts, C-way router) or "replicated" (E experts, merged weights copied into every
            member, router unchanged: the official repo's merged model).
    """
    params = check_moe_params(params)
    n_exp = params.num_experts
    labels = np.asarray(labels)
    if labels.shape != (n_exp,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be [E={n_exp}] integers, got {labels!r}")
    n_clusters = int(labels.max()) + 1
    if labels.min() < 0 or set(labels.tolist()) != set(range(n_clusters)):
        raise ValueError(f"labels must use every cluster id 0..C-1, got {labels.tolist()}")
    weights = np.asarray(weights, np.float64)
    if weights.shape != (n_exp,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be [E={n_exp}] finite and non-negative, got {weights!r}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, got {layout!r}")
    members = [np.flatnonzero(labels == c) for c in range(n_clusters)]
    if representatives is None:
        representatives = np.array([_most_frequent(m, weights) for m in members], np.int32)
    representatives = np.asarray(representatives)
    if representatives.shape != (n_clusters,) or any(
        int(r) not in m.tolist() for r, m in zip(representatives, members, strict=True)
    ):
        raise ValueError(f"representatives must name one member of each of the {n_clusters} clusters")
    host = {k: np.asarray(getattr(params, k)) for k in ("w_gate", "w_up", "w_down")}
    merged = {k: [] for k in host}
    for rep, mem in zip(representatives.tolist(), members, strict=True):
        if mem.size == 1:  # a singleton is copied as is (bit-exact)
            for k in host:
                merged[k].append(host[k][mem[0]])
            continue
        w = weights[mem]
        w = w / w.sum() if w.sum() > 0 else np.full(mem.size, 1.0 / mem.size)
        acc = {k: np.zeros(host[k].shape[1:], np.float64) for k in host}
        for wi, e in zip(w.tolist(), mem.tolist(), strict=True):
            perm = _neuron_permutation(host, rep, e) if align and e != rep else None
            for k in host:
                mat = host[k][e].astype(np.float64)
                if perm is not None:
                    mat = mat[perm, :] if k == "w_down" else mat[:, perm]
                acc[k] += wi * mat
        for k in host:
            merged[k].append(acc[k].astype(host[k].dtype))
    stacked = {k: np.stack(v) for k, v in merged.items()}
    if layout == "replicated":
        return MoEParams(
            router=jnp.asarray(params.router),
            **{k: jnp.asarray(stacked[k][labels]) for k in stacked},
        )
    return MoEParams(
        router=jnp.asarray(np.asarray(params.router)[:, representatives]),
        **{k: jnp.asarray(v) for k, v in stacked.items()},
    )


def merge_hc_smoe(
    params: MoEParams,
    stats: ExpertStats,
    num_keep: int,
    *,
    linkage: str = "average",
    signature: str = "auto",
    layout: str = "compact",
) -> MoEParams:
    """HC-SMoE: cluster the experts on their mean outputs into `num_keep` groups, frequency-weighted merge.

    See `hc_smoe_clusters` (linkage, signature) and `merge_clusters` (layout). The compact layer keeps each
    cluster's most frequent member's router column; merged experts are ordered by their smallest member id.
    """
    params = check_moe_params(params)
    stats = _check_stats(stats, params.num_experts)
    labels = hc_smoe_clusters(stats, num_keep, linkage=linkage, signature=signature)
    return merge_clusters(params, labels, _frequency(stats), layout=layout)


def merge_m_smoe(
    params: MoEParams, stats: ExpertStats, num_keep: int | None = None, *, dominant=None, align=True, layout="compact"
) -> MoEParams:
    """M-SMoE: dominant experts by frequency, router-logit-similarity grouping, neuron alignment, frequency merge.

    `num_keep` dominant experts per layer, or an explicit `dominant` id array (from `m_smoe_dominant_experts`,
    the repo's global, non-uniform choice). The compact layer keeps the dominant experts' router columns.
    """
    params = check_moe_params(params)
    stats = _check_stats(stats, params.num_experts)
    labels, dominant = m_smoe_clusters(stats, num_keep, dominant=dominant)
    return merge_clusters(params, labels, _frequency(stats), representatives=dominant, align=align, layout=layout)
