"""Dense and edge-list GCN propagation agree with each other and with the formula D^-1/2 (A + I) D^-1/2."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsparse.graph import GCN, EdgeGraph, GCNLayer, edge_graph, normalized_adjacency, propagate

from .conftest import random_graph


def test_normalized_adjacency_matches_formula(small_graph):
    a = np.asarray(small_graph.adjacency, np.float64)
    a_hat = a + np.eye(a.shape[0])
    d = np.diag(1.0 / np.sqrt(a_hat.sum(1)))
    with jax.enable_x64(True):
        got = np.asarray(normalized_adjacency(a, dtype=jnp.float64))
    np.testing.assert_allclose(got, d @ a_hat @ d, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(got, got.T, atol=1e-15)  # symmetric for a symmetric graph


def test_edge_list_from_edges_equals_from_adjacency(small_graph):
    a = np.asarray(small_graph.adjacency)
    r, s = np.nonzero(a)
    from_edges = edge_graph(s, r, a.shape[0], edge_weights=a[r, s])
    from_dense = edge_graph(adjacency=a)
    dense_of = lambda g: np.asarray(jax.ops.segment_sum(g.weights[:, None] * jnp.eye(g.num_nodes)[g.senders],
                                                        g.receivers, num_segments=g.num_nodes))  # fmt: skip
    np.testing.assert_allclose(dense_of(from_edges), dense_of(from_dense), rtol=1e-6)
    np.testing.assert_allclose(dense_of(from_dense), np.asarray(normalized_adjacency(a)), rtol=1e-6, atol=1e-7)


def test_dense_and_edge_list_gcn_agree_in_float64_with_gradients():
    graph = random_graph(30, 4, seed=3)
    with jax.enable_x64(True):
        model = GCN(4, 8, 2, dropout=0.5, rngs=nnx.Rngs(1), param_dtype=jnp.float64)
        x = jnp.asarray(graph.features, jnp.float64)
        dense = normalized_adjacency(graph.adjacency, dtype=jnp.float64)
        sparse = edge_graph(adjacency=graph.adjacency, dtype=jnp.float64)
        graphdef, params = nnx.split(model)

        def loss(p, g, key):
            logits = nnx.merge(graphdef, p)(x, g, dropout_key=key)
            return jnp.sum(jnp.sin(logits))

        for key in (None, jax.random.key(0)):  # deterministic, and with the same dropout mask
            ld, gd = jax.value_and_grad(loss)(params, dense, key)
            ls, gs = jax.value_and_grad(loss)(params, sparse, key)
            np.testing.assert_allclose(float(ld), float(ls), rtol=1e-13)
            for a, b in zip(jax.tree.leaves(gd), jax.tree.leaves(gs), strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-11, atol=1e-13)
        out_dense, out_sparse = model(x, dense), model(x, sparse)
        np.testing.assert_allclose(np.asarray(out_dense), np.asarray(out_sparse), rtol=1e-13, atol=1e-14)


def test_gcn_layer_is_a_hat_x_w_plus_b(small_graph):
    layer = GCNLayer(5, 3, rngs=nnx.Rngs(0))
    a_hat = np.asarray(normalized_adjacency(small_graph.adjacency), np.float64)
    x = np.asarray(small_graph.features, np.float64)
    want = a_hat @ (x @ np.asarray(layer.kernel[...], np.float64)) + np.asarray(layer.bias[...])[None, :]
    got = layer(jnp.asarray(small_graph.features), edge_graph(adjacency=small_graph.adjacency))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-5)


def test_isolated_node_keeps_its_own_features():
    a = np.zeros((3, 3))
    a[0, 1] = a[1, 0] = 1.0
    h = jnp.arange(6.0).reshape(3, 2)
    out = propagate(edge_graph(adjacency=a), h)
    np.testing.assert_allclose(np.asarray(out[2]), np.asarray(h[2]))  # degree 1: only the self-loop
    np.testing.assert_allclose(np.asarray(out[0]), np.asarray(0.5 * (h[0] + h[1])))


def test_edge_graph_is_a_jit_friendly_pytree(small_graph):
    g = edge_graph(adjacency=small_graph.adjacency)
    leaves, treedef = jax.tree.flatten(g)
    assert len(leaves) == 3 and isinstance(jax.tree.unflatten(treedef, leaves), EdgeGraph)
    h = jnp.ones((small_graph.num_nodes, 2))
    np.testing.assert_allclose(np.asarray(jax.jit(propagate)(g, h)), np.asarray(propagate(g, h)), rtol=1e-6)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="square"):
        normalized_adjacency(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="square"):
        edge_graph(adjacency=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="zero diagonal"):
        normalized_adjacency(np.eye(3))
    with pytest.raises(ValueError, match="non-negative"):
        normalized_adjacency(-np.ones((2, 2)) + np.eye(2))
    with pytest.raises(ValueError, match="self-loops"):
        edge_graph(np.array([0, 1]), np.array([0, 0]), 2)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        edge_graph(np.array([0, 5]), np.array([1, 0]), 3)
    with pytest.raises(ValueError, match="rows"):
        propagate(normalized_adjacency(np.zeros((3, 3))), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="rows"):
        propagate(edge_graph(adjacency=np.zeros((3, 3))), jnp.ones((4, 2)))
    with pytest.raises(ValueError, match="dropout"):
        GCN(3, 4, 2, dropout=1.0, rngs=nnx.Rngs(0))


def test_bcoo_form_agrees_with_edge_list(small_graph):
    sparse = pytest.importorskip("jax.experimental.sparse")
    g = edge_graph(adjacency=small_graph.adjacency)
    bcoo = sparse.BCOO((g.weights, jnp.stack([g.receivers, g.senders], axis=1)), shape=(g.num_nodes, g.num_nodes))
    h = jnp.asarray(np.random.default_rng(0).standard_normal((g.num_nodes, 3)), jnp.float32)
    np.testing.assert_allclose(np.asarray(bcoo @ h), np.asarray(propagate(g, h)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(bcoo.todense()), np.asarray(normalized_adjacency(small_graph.adjacency)),
                               rtol=1e-6, atol=1e-7)  # fmt: skip
