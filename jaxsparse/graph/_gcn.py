"""Graph convolution (Kipf & Welling) with symmetric normalisation, dense or edge-list (segment_sum) adjacency.

Both forms compute Â H with Â = D̃^-1/2 (A + I) D̃^-1/2, D̃ the row sums of A + I:
* dense: `normalized_adjacency(A) @ H`, the fastest choice for small dense patient graphs;
* edge list: `EdgeGraph` (senders, receivers, per-edge weights Â[r, s], self-loops included) and
  `segment_sum(w_e * H[s_e] -> r_e)`, linear in the number of edges for large sparse graphs.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["GCN", "EdgeGraph", "GCNLayer", "edge_graph", "normalized_adjacency", "propagate"]


def _check_adjacency(adjacency) -> np.ndarray:
    a = np.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be a square (N, N) matrix, got shape {a.shape}")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise TypeError(f"adjacency must be numeric or boolean, got dtype {a.dtype}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError("adjacency must hold finite, non-negative edge weights")
    if np.any(np.diag(a) != 0):
        raise ValueError("adjacency must have a zero diagonal: the normalisation adds the self-loops (A + I)")
    return a


def normalized_adjacency(adjacency, *, dtype=jnp.float32) -> jax.Array:
    """Dense Â = D̃^-1/2 (A + I) D̃^-1/2 with D̃ = diag(rowsum(A + I)).

    Args:
        adjacency: (N, N) non-negative edge weights, zero diagonal; A[r, s] is the weight of the message s -> r.
        dtype: dtype of the result.
    """
    a = _check_adjacency(adjacency)
    a_hat = a + np.eye(a.shape[0])
    inv_sqrt = 1.0 / np.sqrt(a_hat.sum(axis=1))
    return jnp.asarray(inv_sqrt[:, None] * a_hat * inv_sqrt[None, :], dtype=dtype)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EdgeGraph:
    """Normalised edge list: message s -> r with weight Â[r, s]; self-loops included.

    `num_nodes` is static (a Python int): `segment_sum` needs it at trace time.
    """

    senders: jax.Array
    receivers: jax.Array
    weights: jax.Array
    num_nodes: int = dataclasses.field(metadata={"static": True})


def edge_graph(
    senders=None, receivers=None, num_nodes: int | None = None, *, edge_weights=None, adjacency=None, dtype=jnp.float32
) -> EdgeGraph:
    """Builds the normalised `EdgeGraph` from an edge list (s -> r, no self-loops) or from a dense adjacency.

    Equivalent to `normalized_adjacency`: the degree of node r is 1 + Σ_{edges into r} w_e, and the edge
    weight becomes w_e / sqrt(d_s d_r). Give either `adjacency`, or `senders`, `receivers` and `num_nodes`.
    """
    if adjacency is not None:
        if senders is not None or receivers is not None:
            raise ValueError("give either adjacency or senders/receivers, not both")
        a = _check_adjacency(adjacency)
        receivers, senders = np.nonzero(a)
        edge_weights = a[receivers, senders]
        num_nodes = a.shape[0]
    if senders is None or receivers is None or num_nodes is None:
        raise ValueError("senders, receivers and num_nodes are required when adjacency is not given")
    if not isinstance(num_nodes, (int, np.integer)) or num_nodes <= 0:
        raise ValueError(f"num_nodes must be a positive int, got {num_nodes!r}")
    num_nodes = int(num_nodes)
    s, r = np.asarray(senders), np.asarray(receivers)
    if s.ndim != 1 or s.shape != r.shape:
        raise ValueError(f"senders and receivers must be 1-D of equal length, got {s.shape} and {r.shape}")
    if s.size and not (np.issubdtype(s.dtype, np.integer) and np.issubdtype(r.dtype, np.integer)):
        raise TypeError("senders and receivers must be integer node indices")
    if s.size and (min(s.min(), r.min()) < 0 or max(s.max(), r.max()) >= num_nodes):
        raise ValueError(f"edge indices must lie in [0, {num_nodes}), got range [{min(s.min(), r.min())}, "
                         f"{max(s.max(), r.max())}]")  # fmt: skip
    if np.any(s == r):
        raise ValueError("the edge list must not contain self-loops: the normalisation adds them")
    w = np.ones(s.shape, np.float64) if edge_weights is None else np.asarray(edge_weights, np.float64)
    if w.shape != s.shape or not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("edge_weights must be finite, non-negative and match senders in length")
    loops = np.arange(num_nodes)
    s = np.concatenate([s.astype(np.int64), loops])
    r = np.concatenate([r.astype(np.int64), loops])
    w = np.concatenate([w, np.ones(num_nodes)])
    degree = np.bincount(r, weights=w, minlength=num_nodes)
    norm = w / np.sqrt(degree[s] * degree[r])
    return EdgeGraph(
        senders=jnp.asarray(s, jnp.int32),
        receivers=jnp.asarray(r, jnp.int32),
        weights=jnp.asarray(norm, dtype),
        num_nodes=num_nodes,
    )


def propagate(graph, h: jax.Array) -> jax.Array:
    """Â H for a dense normalised adjacency (N, N) or an `EdgeGraph`."""
    if isinstance(graph, EdgeGraph):
        if h.shape[0] != graph.num_nodes:
            raise ValueError(f"features have {h.shape[0]} rows but the graph has {graph.num_nodes} nodes")
        messages = graph.weights[:, None].astype(h.dtype) * h[graph.senders]
        return jax.ops.segment_sum(messages, graph.receivers, num_segments=graph.num_nodes)
    if graph.ndim != 2 or graph.shape[0] != graph.shape[1]:
        raise ValueError(f"a dense graph must be a square (N, N) matrix, got shape {graph.shape}")
    if graph.shape[1] != h.shape[0]:
        raise ValueError(f"features have {h.shape[0]} rows but the graph has {graph.shape[0]} nodes")
    return graph.astype(h.dtype) @ h


class GCNLayer(nnx.Module):
    """One graph convolution Â (H W) + b (no activation), Glorot-uniform W as in Kipf & Welling."""

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs, param_dtype=jnp.float32):
        if in_features <= 0 or out_features <= 0:
            raise ValueError(f"in_features and out_features must be positive, got {in_features}, {out_features}")
        init = jax.nn.initializers.glorot_uniform()
        self.kernel = nnx.Param(init(rngs.params(), (in_features, out_features), param_dtype))
        self.bias = nnx.Param(jnp.zeros((out_features,), param_dtype))

    def __call__(self, x: jax.Array, graph) -> jax.Array:
        return propagate(graph, x @ self.kernel[...]) + self.bias[...][None, :]


def _dropout(h: jax.Array, rate: float, key) -> jax.Array:
    if key is None or rate == 0.0:
        return h
    keep = jax.random.bernoulli(key, 1.0 - rate, h.shape)
    return jnp.where(keep, h / (1.0 - rate), jnp.zeros_like(h))


class GCN(nnx.Module):
    """Two GCN layers and a linear classifier, LeakyReLU and dropout (the Meta-GCN public-code model).

    Dropout takes an explicit key (`dropout_key=None` evaluates deterministically), so the model stays a pure
    function of (params, inputs, key) inside jitted meta steps.
    """

    def __init__(
        self,
        in_features: int,
        hidden: int,
        num_classes: int,
        *,
        dropout: float = 0.5,
        rngs: nnx.Rngs,
        param_dtype=jnp.float32,
    ):
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.dropout = dropout
        self.conv1 = GCNLayer(in_features, hidden, rngs=rngs, param_dtype=param_dtype)
        self.conv2 = GCNLayer(hidden, hidden, rngs=rngs, param_dtype=param_dtype)
        self.head = nnx.Linear(hidden, num_classes, rngs=rngs, param_dtype=param_dtype)

    def __call__(self, x: jax.Array, graph, *, dropout_key=None) -> jax.Array:
        keys = (None, None) if dropout_key is None else tuple(jax.random.split(dropout_key))
        h = _dropout(jax.nn.leaky_relu(self.conv1(x, graph)), self.dropout, keys[0])
        h = _dropout(jax.nn.leaky_relu(self.conv2(h, graph)), self.dropout, keys[1])
        return self.head(h)
