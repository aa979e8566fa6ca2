"""Meta-GCN training-step cost vs a plain GCN step, with dense Â and edge-list (segment_sum) propagation.

A Meta-GCN step adds a look-ahead SGD step and the meta gradient with respect to the per-node perturbations
(differentiating through the inner gradient) to the plain weighted-loss step, so it is expected to cost a few
plain steps. The meta loss is read from the induced meta subgraph (the default, 20 nodes) or from a forward pass
on the whole graph ("full-graph meta set", one more full forward/backward per step). Each variant is one
jitted step (params, opt_state, key, task) -> new state on one patient graph; variants are timed side by side
(compiled first, alternated, medians):

* full: a random similarity-style graph of 4000 nodes, mean degree ~20 (dense Â is 4000 x 4000);
* quick: the breast-cancer patient graph (569 nodes, 4.6% dense);
* tiny: 64 random nodes, without the full-graph meta variants (for tests; not meaningful).

Run: `python -m benchmarks --only meta_gcn_step` (`--quick`, `--tiny`).
"""

import jax
import numpy as np
from flax import nnx

from jaxsparse.graph import (
    GCN,
    NodeGraph,
    breast_cancer_graph,
    make_graph_task,
    make_optimizer,
    make_train_step,
    split_nodes,
)

from ._timing import interleaved_medians, ratio_line

NAME = "meta_gcn_step"
HIDDEN = 64
BASELINE = "plain GCN step, dense"


def _random_graph(num_nodes: int, mean_degree: float, features: int, seed: int) -> NodeGraph:
    """A 1-D similarity graph like the patient graphs: an edge when a latent score differs by < a threshold."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(size=num_nodes)
    labels = (score + 0.3 * rng.standard_normal(num_nodes) > 0.75).astype(np.int32)  # ~ 25% minority
    threshold = mean_degree / (2 * num_nodes)
    adjacency = np.abs(score[:, None] - score[None, :]) < threshold
    np.fill_diagonal(adjacency, False)
    x = (rng.standard_normal((num_nodes, features)) + labels[:, None]).astype(np.float32)
    return NodeGraph(x, labels, adjacency, name=f"random_{num_nodes}")


def _variants(graph: NodeGraph, *, full_graph_meta: bool = True) -> dict:
    split = split_nodes(graph.labels, seed=0, meta_per_class=10 if graph.num_nodes >= 200 else 2)
    model = GCN(graph.features.shape[1], HIDDEN, graph.num_classes, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    optimizer = make_optimizer(0.01, 5e-4)
    opt_state = optimizer.init(params)
    variants = {}
    key = jax.random.key(0)
    kinds = [("unweighted", "induced", "plain GCN step"), ("meta_gcn", "induced", "Meta-GCN step")]
    if full_graph_meta:
        kinds.append(("meta_gcn", "full", "Meta-GCN step (full-graph meta set)"))
    for sparse in (False, True):
        for method, meta_graph, label in kinds:
            task = make_graph_task(graph, split.train, split.meta, sparse=sparse, meta_graph=meta_graph)
            step = jax.jit(make_train_step(graphdef, optimizer, method=method))
            name = f"{label}, {'edge list' if sparse else 'dense'}"
            variants[name] = lambda step=step, task=task: step(params, opt_state, key, task)[:3]
    return variants


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    if tiny:
        graph = _random_graph(64, 8.0, 8, seed=0)
    elif quick:
        graph = breast_cancer_graph()
    else:
        graph = _random_graph(4000, 20.0, 32, seed=0)
    repeats = 2 if tiny else 3 if quick else 9
    edges = int(np.count_nonzero(graph.adjacency))
    print(
        f"[{NAME}] {graph.name}: {graph.num_nodes} nodes, {edges // 2} undirected edges "
        f"(density {edges / graph.num_nodes / (graph.num_nodes - 1):.2%}), {graph.features.shape[1]} features, "
        f"GCN hidden {HIDDEN}, Adam; {repeats} alternating repeats, medians"
    )
    if tiny:  # structure only: fewer variants to compile, one warm-up and single-call samples
        timings = interleaved_medians(_variants(graph, full_graph_meta=False), repeats=2, inner=1, warmup=1)
    else:
        timings = interleaved_medians(_variants(graph), repeats=repeats, target_s=0.1)
    base = timings[BASELINE]["median_s"]
    for name, t in timings.items():
        print(ratio_line(name, t["median_s"], base, width=48, kind="x plain dense step"))
    ratios = {
        "meta_vs_plain_dense": timings["Meta-GCN step, dense"]["median_s"] / base,
        "meta_vs_plain_edge_list": timings["Meta-GCN step, edge list"]["median_s"]
        / timings["plain GCN step, edge list"]["median_s"],
        "edge_list_vs_dense_plain": timings["plain GCN step, edge list"]["median_s"] / base,
        "edge_list_vs_dense_meta": timings["Meta-GCN step, edge list"]["median_s"]
        / timings["Meta-GCN step, dense"]["median_s"],
    }
    if not tiny:
        full_meta = "Meta-GCN step (full-graph meta set)"
        ratios["full_graph_meta_vs_plain_dense"] = timings[f"{full_meta}, dense"]["median_s"] / base
        ratios["full_graph_meta_vs_plain_edge_list"] = (
            timings[f"{full_meta}, edge list"]["median_s"] / timings["plain GCN step, edge list"]["median_s"]
        )
    print("  " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    return {
        "sizes": {
            "graph": graph.name,
            "nodes": graph.num_nodes,
            "undirected_edges": edges // 2,
            "features": int(graph.features.shape[1]),
            "hidden": HIDDEN,
            "repeats": repeats,
        },
        "steps": {name: {k: t[k] for k in ("median_s", "min_s", "inner")} for name, t in timings.items()},
        "ratios": ratios,
    }
