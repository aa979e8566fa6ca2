"""Meta-GCN: per-node loss weights from a one-step look-ahead on a balanced meta set (learning to reweight).

Per step t (Ren et al. 2018, arXiv 1803.09050; Meta-GCN, arXiv 2406.17073):
1. θ̂(ε) = θ_t − α ∇_θ Σ_i ε_i ℓ_i(θ_t), ε = 0 (one perturbation per training node; per-node losses);
2. w̃_i = max(−∂L_meta(θ̂(ε))/∂ε_i |_{ε=0}, 0), L_meta the mean cross-entropy on the meta nodes;
3. w_i = w̃_i / (Σ_j w̃_j + δ(Σ_j w̃_j)) (all-zero w̃ gives w = 0, no NaN);
4. θ_{t+1} = optimizer step on Σ_i w_i ℓ_i(θ_t).

At ε = 0, −∂L_meta/∂ε_i = α ⟨∇L_meta(θ_t), ∇ℓ_i(θ_t)⟩, so the normalised weights do not depend on α > 0.
The baselines (unweighted, class-frequency weighted) run through the same step with fixed weights.
"""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ._build import NodeGraph, induced_subgraph
from ._gcn import EdgeGraph, edge_graph, normalized_adjacency

__all__ = [
    "METHODS",
    "GraphTask",
    "MetaWeights",
    "TrainResult",
    "fixed_node_weights",
    "make_graph_task",
    "make_optimizer",
    "make_train_step",
    "meta_weights",
    "normalize_weights",
    "per_node_cross_entropy",
    "train_gcn",
]

METHODS = ("meta_gcn", "unweighted", "class_weighted")
META_GRAPHS = ("full", "induced")


def per_node_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Softmax cross-entropy per node (no reduction): the losses the per-node weights multiply."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(f"logits must be (n, C) and labels (n,), got {logits.shape} and {labels.shape}")
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def normalize_weights(raw: jax.Array) -> jax.Array:
    """w = w̃ / (Σ w̃ + δ(Σ w̃)): sums to 1 when any w̃ > 0, and is exactly 0 (not NaN) when all are 0."""
    total = jnp.sum(raw)
    return raw / (total + (total == 0).astype(raw.dtype))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MetaWeights:
    """Normalised per-node weights `weights` (n,) and the clipped, unnormalised `raw` w̃ (n,)."""

    weights: jax.Array
    raw: jax.Array


def _check_lookahead_lr(lookahead_lr) -> None:
    try:
        value = float(lookahead_lr)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return  # traced: checked by the caller that made it
    if not value > 0:
        raise ValueError(f"lookahead_lr must be positive, got {lookahead_lr}")


def meta_weights(train_losses_fn, meta_loss_fn, params, *, lookahead_lr: float = 1.0) -> MetaWeights:
    """Per-node weights by differentiating the look-ahead meta loss with respect to per-node perturbations.

    Args:
        train_losses_fn: params -> (n,) per-node training losses (no reduction).
        meta_loss_fn: params -> scalar mean loss on the meta set.
        params: pytree of the model parameters θ_t.
        lookahead_lr: α > 0 of the look-ahead SGD step (the normalised weights do not depend on it).

    Returns:
        `MetaWeights(weights, raw)` with raw = max(−∂L_meta(θ̂(ε))/∂ε |_{ε=0}, 0).
    """
    _check_lookahead_lr(lookahead_lr)
    n = jax.eval_shape(train_losses_fn, params)
    if len(n.shape) != 1:
        raise ValueError(f"train_losses_fn must return per-node losses of shape (n,), got {n.shape}")

    def lookahead_meta_loss(eps):
        grads = jax.grad(lambda p: jnp.sum(eps * train_losses_fn(p)))(params)
        return meta_loss_fn(jax.tree.map(lambda p, g: p - lookahead_lr * g, params, grads))

    grad_eps = jax.grad(lookahead_meta_loss)(jnp.zeros(n.shape, n.dtype))
    raw = jnp.maximum(-grad_eps, 0.0)
    return MetaWeights(weights=normalize_weights(raw), raw=raw)


def fixed_node_weights(train_labels, *, method: str) -> np.ndarray:
    """Baseline weights summing to 1: "unweighted" 1/n; "class_weighted" 1/(K n_c) (K classes in train)."""
    y = np.asarray(train_labels)
    if y.ndim != 1 or y.size == 0:
        raise ValueError("train_labels must be a non-empty 1-D array")
    if method == "unweighted":
        return np.full(y.shape, 1.0 / y.size, np.float32)
    if method == "class_weighted":
        classes, counts = np.unique(y, return_counts=True)
        per_class = dict(zip(classes.tolist(), (1.0 / (classes.size * counts)).tolist(), strict=True))
        return np.asarray([per_class[c] for c in y.tolist()], np.float32)
    raise ValueError(f"method must be 'unweighted' or 'class_weighted' for fixed weights, got {method!r}")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class GraphTask:
    """Everything one training run reads, as arrays (so seeds with equal shapes share one compiled program).

    `graph` is a dense normalised adjacency or an `EdgeGraph`; `meta_x`/`meta_graph` are None when the meta
    nodes are read from the full-graph forward pass, or the induced meta subgraph otherwise.
    """

    x: jax.Array
    graph: jax.Array | EdgeGraph
    labels: jax.Array
    train_idx: jax.Array
    meta_idx: jax.Array
    meta_labels: jax.Array
    fixed_weights: jax.Array
    meta_x: jax.Array | None = None
    meta_graph: jax.Array | EdgeGraph | None = None


def make_graph_task(
    graph: NodeGraph,
    train_idx,
    meta_idx,
    *,
    sparse: bool = False,
    meta_graph: str = "induced",
    fixed_weights: str = "unweighted",
) -> GraphTask:
    """Validated `GraphTask` for a `NodeGraph` and its train / meta node indices.

    Args:
        graph: the node-classification graph.
        train_idx: training node indices.
        meta_idx: meta node indices (must hold every class that occurs in training, disjoint from train).
        sparse: edge-list (`EdgeGraph`) propagation instead of a dense Â (the induced meta graph stays dense).
        meta_graph: "induced" (the public code: a separate normalised graph on the meta nodes only; the default)
            or "full" (meta nodes read from the forward pass on the whole graph, neighbours included).
        fixed_weights: the baseline weights stored in the task ("unweighted" or "class_weighted").
    """
    if not isinstance(graph, NodeGraph):
        raise TypeError(f"graph must be a NodeGraph, got {type(graph).__name__}")
    if meta_graph not in META_GRAPHS:
        raise ValueError(f"meta_graph must be one of {META_GRAPHS}, got {meta_graph!r}")
    n = graph.num_nodes
    idx = {}
    for name, value in (("train_idx", train_idx), ("meta_idx", meta_idx)):
        v = np.asarray(value)
        if v.ndim != 1 or v.size == 0 or not np.issubdtype(v.dtype, np.integer):
            raise ValueError(f"{name} must be a non-empty 1-D integer array")
        if v.min() < 0 or v.max() >= n or np.unique(v).size != v.size:
            raise ValueError(f"{name} must hold distinct node indices in [0, {n})")
        idx[name] = v
    if np.intersect1d(idx["train_idx"], idx["meta_idx"]).size:
        raise ValueError("train_idx and meta_idx must be disjoint")
    labels = np.asarray(graph.labels)
    train_classes, meta_classes = set(labels[idx["train_idx"]].tolist()), set(labels[idx["meta_idx"]].tolist())
    missing = sorted(train_classes - meta_classes)
    if missing:
        raise ValueError(f"class(es) {missing} absent from the meta set: its weights could not favour them")
    build = (lambda a: edge_graph(adjacency=a)) if sparse else normalized_adjacency
    meta_x = meta_g = None
    if meta_graph == "induced":
        meta_x = jnp.asarray(graph.features[idx["meta_idx"]])
        # Dense even when `sparse`: the meta graph is tiny, and a fixed (M, M) shape lets seeds whose induced
        # subgraphs have different edge counts share one compiled program.
        meta_g = normalized_adjacency(induced_subgraph(graph.adjacency, idx["meta_idx"]))
    return GraphTask(
        x=jnp.asarray(graph.features),
        graph=build(graph.adjacency),
        labels=jnp.asarray(labels, jnp.int32),
        train_idx=jnp.asarray(idx["train_idx"], jnp.int32),
        meta_idx=jnp.asarray(idx["meta_idx"], jnp.int32),
        meta_labels=jnp.asarray(labels[idx["meta_idx"]], jnp.int32),
        fixed_weights=jnp.asarray(fixed_node_weights(labels[idx["train_idx"]], method=fixed_weights)),
        meta_x=meta_x,
        meta_graph=meta_g,
    )


def _loss_fns(graphdef, task: GraphTask, dropout_key):
    """(train per-node losses, meta mean loss) as functions of params."""

    def apply(params, x, graph, key):
        return nnx.merge(graphdef, params)(x, graph, dropout_key=key)

    def train_losses(params):
        logits = apply(params, task.x, task.graph, dropout_key)
        return per_node_cross_entropy(logits[task.train_idx], task.labels[task.train_idx])

    def meta_loss(params):  # the meta set is evaluated deterministically (no dropout)
        if task.meta_x is None:
            logits = apply(params, task.x, task.graph, None)[task.meta_idx]
        else:
            logits = apply(params, task.meta_x, task.meta_graph, None)
        return jnp.mean(per_node_cross_entropy(logits, task.meta_labels))

    return train_losses, meta_loss


def make_optimizer(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """Adam with coupled L2 weight decay, as torch.optim.Adam(weight_decay=...) in the public code."""
    if not learning_rate > 0 or weight_decay < 0:
        raise ValueError(f"learning_rate must be > 0 and weight_decay >= 0, got {learning_rate}, {weight_decay}")
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))


def make_train_step(graphdef, optimizer: optax.GradientTransformation, *, method: str, lookahead_lr: float = 1.0):
    """A pure step (params, opt_state, key, task) -> (params, opt_state, loss, weights); jit it (or scan it).

    "meta_gcn" computes the weights by `meta_weights` inside the step (look-ahead, meta gradient, clipping,
    normalisation and the real update all in one program); the baselines use `task.fixed_weights`. The
    training forward pass uses dropout with `key` (the same mask in the look-ahead and the real update).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    _check_lookahead_lr(lookahead_lr)

    def step(params, opt_state, key, task: GraphTask):
        train_losses, meta_loss = _loss_fns(graphdef, task, key)
        if method == "meta_gcn":
            weights = jax.lax.stop_gradient(
                meta_weights(train_losses, meta_loss, params, lookahead_lr=lookahead_lr).weights
            )
        else:
            weights = task.fixed_weights
        loss, grads = jax.value_and_grad(lambda p: jnp.sum(weights * train_losses(p)))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, weights

    return step


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TrainResult:
    """Trained params; per-epoch loss (E,) and per-class weight mass (E, C); mean / final node weights (n,)."""

    params: nnx.State
    losses: jax.Array
    class_weight_mass: jax.Array
    mean_node_weights: jax.Array
    final_node_weights: jax.Array


@functools.partial(
    jax.jit, static_argnames=("graphdef", "method", "epochs", "num_classes", "learning_rate", "weight_decay",
                              "lookahead_lr")
)  # fmt: skip
def _train_scan(params, key, task, *, graphdef, method, epochs, num_classes, learning_rate, weight_decay, lookahead_lr):
    optimizer = make_optimizer(learning_rate, weight_decay)
    step = make_train_step(graphdef, optimizer, method=method, lookahead_lr=lookahead_lr)
    train_labels = task.labels[task.train_idx]

    def body(carry, key):
        params, opt_state, weight_sum, _ = carry
        params, opt_state, loss, weights = step(params, opt_state, key, task)
        mass = jax.ops.segment_sum(weights, train_labels, num_segments=num_classes)
        return (params, opt_state, weight_sum + weights, weights), (loss, mass)

    zeros = jnp.zeros(task.train_idx.shape, task.fixed_weights.dtype)
    carry = (params, optimizer.init(params), zeros, zeros)
    (params, _, weight_sum, last), (losses, masses) = jax.lax.scan(body, carry, jax.random.split(key, epochs))
    return TrainResult(params, losses, masses, weight_sum / epochs, last)


def train_gcn(
    model: nnx.Module,
    task: GraphTask,
    *,
    method: str,
    epochs: int,
    key: jax.Array,
    learning_rate: float = 0.01,
    weight_decay: float = 5e-4,
    lookahead_lr: float = 1.0,
) -> TrainResult:
    """Trains `model` on `task` for `epochs` full-batch steps with Adam (one jitted `lax.scan`).

    The model is updated in place with the trained params and also returned in `TrainResult.params`.
    Seeds with the same shapes and settings reuse one compiled program.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    _check_lookahead_lr(lookahead_lr)
    graphdef, params = nnx.split(model)
    num_classes = int(jnp.max(task.labels)) + 1
    result = _train_scan(
        params,
        key,
        task,
        graphdef=graphdef,
        method=method,
        epochs=epochs,
        num_classes=num_classes,
        learning_rate=float(learning_rate),
        weight_decay=float(weight_decay),
        lookahead_lr=float(lookahead_lr),
    )
    nnx.update(model, result.params)
    return result
