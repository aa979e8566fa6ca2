"""Meta-GCN weights: the autodiff look-ahead equals explicit per-node gradient dot products; invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsparse.graph import (
    GCN,
    GraphTask,
    NodeGraph,
    breast_cancer_graph,
    fixed_node_weights,
    make_graph_task,
    make_optimizer,
    make_train_step,
    meta_weights,
    normalize_weights,
    normalized_adjacency,
    per_node_cross_entropy,
    split_nodes,
    train_gcn,
)

from .conftest import random_graph


def _loss_fns(model, x, a_hat, labels, train_idx, meta_idx):
    graphdef, params = nnx.split(model)

    def logits(p):
        return nnx.merge(graphdef, p)(x, a_hat)

    def train_losses(p):
        return per_node_cross_entropy(logits(p)[train_idx], labels[train_idx])

    def meta_loss(p):
        return jnp.mean(per_node_cross_entropy(logits(p)[meta_idx], labels[meta_idx]))

    return params, logits, train_losses, meta_loss


def _explicit_raw(params, logits, labels, train_idx, meta_loss, lookahead_lr):
    """relu(alpha <grad L_meta, grad l_i>) with per-node gradients from vmap(grad): no epsilon, no look-ahead."""

    def node_loss(p, i):
        return per_node_cross_entropy(logits(p)[i][None], labels[i][None])[0]

    per_node = jax.vmap(jax.grad(node_loss), in_axes=(None, 0))(params, train_idx)
    meta_grad = jax.grad(meta_loss)(params)
    dots = sum(
        jnp.einsum("n...,...->n", g, m)
        for g, m in zip(jax.tree.leaves(per_node), jax.tree.leaves(meta_grad), strict=True)
    )
    return jnp.maximum(lookahead_lr * dots, 0.0)


@pytest.fixture(scope="module")
def float64_problem():
    graph = random_graph(36, 4, seed=5)
    split = split_nodes(graph.labels, seed=0, meta_per_class=2)
    with jax.enable_x64(True):
        model = GCN(4, 6, 2, rngs=nnx.Rngs(2), param_dtype=jnp.float64)
        x = jnp.asarray(graph.features, jnp.float64)
        a_hat = normalized_adjacency(graph.adjacency, dtype=jnp.float64)
        labels = jnp.asarray(graph.labels)
        train_idx, meta_idx = jnp.asarray(split.train), jnp.asarray(split.meta)
        fns = _loss_fns(model, x, a_hat, labels, train_idx, meta_idx)
        auto_fn = jax.jit(lambda p, lr: meta_weights(fns[2], fns[3], p, lookahead_lr=lr))
        explicit_fn = jax.jit(lambda p, lr: _explicit_raw(p, fns[1], labels, train_idx, fns[3], lr))
        out = {}
        for lr in (1.0, 0.1, 7.0):  # a traced learning rate: one compilation for all three
            lr_arr = jnp.asarray(lr, jnp.float64)
            out[lr] = (jax.tree.map(np.asarray, auto_fn(fns[0], lr_arr)), np.asarray(explicit_fn(fns[0], lr_arr)))
    return out


def test_autodiff_weights_equal_explicit_gradient_dot_products(float64_problem):
    for auto, explicit in float64_problem.values():
        assert auto.raw.dtype == np.float64 and explicit.dtype == np.float64
        assert explicit.max() > 0 and explicit.min() == 0  # some nodes clipped, some positive
        np.testing.assert_allclose(auto.raw, explicit, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(auto.weights, explicit / explicit.sum(), rtol=1e-10)


def test_weights_sum_to_one_and_do_not_depend_on_lookahead_lr(float64_problem):
    base = float64_problem[1.0][0]
    assert base.weights.min() >= 0.0
    np.testing.assert_allclose(base.weights.sum(), 1.0, rtol=1e-14)
    for lr, (auto, _) in float64_problem.items():
        np.testing.assert_allclose(auto.weights, base.weights, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(auto.raw, lr * base.raw, rtol=1e-10, atol=1e-14)


def test_identical_training_nodes_get_equal_weights():
    # No edges (no graph coupling); six identical training nodes; meta nodes: two copies of them and two others
    # of both classes (so w~ > 0 and the weights are not trivially all zero).
    n = 10
    x = np.zeros((n, 3), np.float32)
    x[:8] = [1.0, -0.5, 2.0]
    x[8:] = np.random.default_rng(0).standard_normal((2, 3))
    labels = np.array([0] * 8 + [0, 1], np.int32)
    graph = NodeGraph(x, labels, np.zeros((n, n)))
    task = make_graph_task(graph, np.arange(6), np.arange(6, 10))
    model = GCN(3, 8, 2, dropout=0.0, rngs=nnx.Rngs(0))
    graphdef, params = nnx.split(model)
    step = jax.jit(make_train_step(graphdef, optax.sgd(0.1), method="meta_gcn"))
    for _ in range(3):  # several steps: the weights stay uniform as the params move
        params, _, _, w = step(params, optax.sgd(0.1).init(params), jax.random.key(0), task)
        assert float(jnp.sum(w)) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(np.asarray(w), np.full(6, 1 / 6), rtol=1e-6)


def test_all_zero_weights_give_zero_update_without_nan():
    np.testing.assert_array_equal(np.asarray(normalize_weights(jnp.zeros(5))), np.zeros(5))
    # Training nodes all of class 0 and meta nodes of class 1 on the same input: every per-node gradient points
    # against the meta gradient (binary softmax: p - e_1 = -(p0/p1)(p - e_0)), so every w~ is clipped to 0.
    n = 8
    x = np.tile(np.array([[0.3, -1.0]], np.float32), (n, 1))
    labels = np.array([0] * 5 + [1] * 3, np.int32)
    task = GraphTask(  # built directly: make_graph_task rightly refuses a meta set without class 0
        x=jnp.asarray(x),
        graph=normalized_adjacency(np.zeros((n, n))),
        labels=jnp.asarray(labels),
        train_idx=jnp.arange(5),
        meta_idx=jnp.arange(5, 8),
        meta_labels=jnp.asarray(labels[5:]),
        fixed_weights=jnp.full(5, 0.2),
    )
    model = GCN(2, 4, 2, dropout=0.0, rngs=nnx.Rngs(1))
    graphdef, params = nnx.split(model)
    optimizer = make_optimizer(0.01, 0.0)  # Adam without weight decay: a zero gradient is a zero update
    step = jax.jit(make_train_step(graphdef, optimizer, method="meta_gcn"))
    new_params, _, loss, w = step(params, optimizer.init(params), jax.random.key(0), task)
    assert not bool(jnp.any(jnp.isnan(w))) and float(jnp.max(w)) == 0.0
    assert float(loss) == 0.0
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(new_params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("meta_graph", ["induced", "full"])
def test_step_weights_equal_meta_weights_and_update_uses_them(small_graph, meta_graph):
    split = split_nodes(small_graph.labels, seed=1, meta_per_class=2)
    task = make_graph_task(small_graph, split.train, split.meta, sparse=True, meta_graph=meta_graph)
    assert (task.meta_x is None) == (meta_graph == "full")
    model = GCN(5, 8, 2, rngs=nnx.Rngs(3))
    graphdef, params = nnx.split(model)
    key = jax.random.key(4)
    sgd = optax.sgd(0.5)
    _, _, loss, w = jax.jit(make_train_step(graphdef, sgd, method="meta_gcn", lookahead_lr=0.3))(
        params, sgd.init(params), key, task
    )

    def train_losses(p):  # the same dropout key as the step; the meta forward has no dropout
        logits = nnx.merge(graphdef, p)(task.x, task.graph, dropout_key=key)
        return per_node_cross_entropy(logits[task.train_idx], task.labels[task.train_idx])

    def meta_loss(p):  # written out independently of the library's branch
        if meta_graph == "induced":
            logits = nnx.merge(graphdef, p)(task.meta_x, task.meta_graph)
        else:
            logits = nnx.merge(graphdef, p)(task.x, task.graph)[task.meta_idx]
        return jnp.mean(per_node_cross_entropy(logits, task.meta_labels))

    want, want_loss = jax.jit(
        lambda p: (mw := meta_weights(train_losses, meta_loss, p), jnp.sum(mw.weights * train_losses(p)))
    )(params)
    assert float(jnp.sum(want.weights)) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(np.asarray(w), np.asarray(want.weights), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(float(loss), float(want_loss), rtol=1e-5)


def test_fixed_weights_of_the_baselines():
    y = np.array([0, 0, 0, 1])
    np.testing.assert_allclose(fixed_node_weights(y, method="unweighted"), [0.25] * 4)
    w = fixed_node_weights(y, method="class_weighted")
    np.testing.assert_allclose(w, [1 / 6, 1 / 6, 1 / 6, 1 / 2], rtol=1e-6)
    assert w[y == 0].sum() == pytest.approx(w[y == 1].sum())
    with pytest.raises(ValueError, match="method"):
        fixed_node_weights(y, method="meta_gcn")


def test_minority_gets_more_weight_than_its_frequency_on_average():
    # Statistical check (reference section 7.6): balanced meta set, minority at 15% of training nodes.
    graph = breast_cancer_graph(minority_fraction=0.15)
    split = split_nodes(graph.labels, seed=0)
    task = make_graph_task(graph, split.train, split.meta, sparse=True)
    model = GCN(graph.features.shape[1], 16, 2, rngs=nnx.Rngs(0))
    result = train_gcn(model, task, method="meta_gcn", epochs=60, key=jax.random.key(0))
    freq = float(np.mean(graph.labels[split.train] == 1))
    mass = np.asarray(result.class_weight_mass)
    assert freq < 0.2
    assert mass[:, 1].mean() > freq, (mass[:, 1].mean(), freq)
    np.testing.assert_allclose(mass.sum(axis=1)[mass.sum(axis=1) > 0], 1.0, rtol=1e-5)


def test_bad_inputs_raise(small_graph):
    split = split_nodes(small_graph.labels, seed=0, meta_per_class=2)
    only_class_0 = split.meta[small_graph.labels[split.meta] == 0]
    with pytest.raises(ValueError, match=r"class\(es\) \[1\] absent from the meta set"):
        make_graph_task(small_graph, split.train, only_class_0)
    with pytest.raises(ValueError, match="disjoint"):
        make_graph_task(small_graph, split.train, split.train[:3])
    with pytest.raises(ValueError, match="meta_graph"):
        make_graph_task(small_graph, split.train, split.meta, meta_graph="other")
    with pytest.raises(ValueError, match="lookahead_lr"):
        meta_weights(lambda p: p, lambda p: jnp.sum(p), jnp.ones(3), lookahead_lr=0.0)
    with pytest.raises(ValueError, match="method"):
        make_train_step(None, optax.sgd(0.1), method="focal")
    with pytest.raises(ValueError, match="per-node"):
        meta_weights(lambda p: jnp.sum(p), lambda p: jnp.sum(p), jnp.ones(3))
    with pytest.raises(ValueError, match="labels"):
        per_node_cross_entropy(jnp.zeros((3, 2)), jnp.zeros(4, jnp.int32))


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("meta_graph", ["induced", "full"])
def test_tasks_of_different_seeds_share_one_compiled_program(small_graph, sparse, meta_graph):
    # Same tree structure, static fields and leaf shapes/dtypes => jit reuses one program across seeds.
    def signature(seed):
        split = split_nodes(small_graph.labels, seed=seed, meta_per_class=2)
        task = make_graph_task(small_graph, split.train, split.meta, sparse=sparse, meta_graph=meta_graph)
        leaves, treedef = jax.tree.flatten(task)
        return treedef, [(leaf.shape, leaf.dtype) for leaf in leaves]

    assert signature(0) == signature(1) == signature(2)
