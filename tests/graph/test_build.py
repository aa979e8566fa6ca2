"""Patient-similarity graph construction and per-class splits with a balanced meta set."""

import numpy as np
import pytest

from jaxsparse.graph import (
    NodeGraph,
    breast_cancer_graph,
    imbalanced_subsample,
    induced_subgraph,
    sample_meta_set,
    similarity_graph,
    split_nodes,
    stratified_node_split,
)


def test_similarity_graph_matches_brute_force():
    rng = np.random.default_rng(0)
    table = np.column_stack([rng.normal(size=50), rng.integers(0, 10, 50), rng.normal(size=50)])
    labels = rng.integers(0, 2, 50)
    g = similarity_graph(table, labels, edge_feature=1, threshold=2.0, standardize=False, feature_names=["a", "b", "c"])
    for i in range(50):
        for j in range(50):
            assert g.adjacency[i, j] == (i != j and abs(table[i, 1] - table[j, 1]) < 2.0)
    np.testing.assert_allclose(g.features, table[:, [0, 2]].astype(np.float32))
    assert g.feature_names == ("a", "c")
    z = similarity_graph(table, labels, edge_feature=1, threshold=2.0)
    np.testing.assert_allclose(z.features.mean(0), 0, atol=1e-6)
    np.testing.assert_allclose(z.features.std(0), 1, atol=1e-5)


def test_stratified_split_is_per_class_disjoint_and_complete():
    labels = np.array([0] * 50 + [1] * 20 + [2] * 10)
    train, val, test = stratified_node_split(labels, seed=3)
    assert np.intersect1d(train, val).size == np.intersect1d(train, test).size == np.intersect1d(val, test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val, test])), np.arange(80))
    for c, n in ((0, 50), (1, 20), (2, 10)):
        n_train, n_val = round(0.6 * n), round(0.2 * n)
        assert [np.sum(labels[s] == c) for s in (train, val, test)] == [n_train, n_val, n - n_train - n_val]
    other = stratified_node_split(labels, seed=4)[0]
    assert not np.array_equal(train, other)  # seeds change the split


def test_meta_set_is_balanced_and_drawn_from_validation():
    labels = np.array([0] * 100 + [1] * 60)
    split = split_nodes(labels, seed=0, meta_per_class=10)
    assert np.all(np.isin(split.meta, split.val))
    assert np.bincount(labels[split.meta]).tolist() == [10, 10]
    assert np.intersect1d(split.meta, split.test).size == 0


def test_meta_set_errors_name_the_class():
    labels = np.array([0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="class 1 is absent from the validation split"):
        sample_meta_set(labels, np.array([0, 1]), per_class=1, seed=0)
    with pytest.raises(ValueError, match="fewer than per_class=3"):
        sample_meta_set(labels, np.array([0, 1, 2, 3]), per_class=3, seed=0)
    with pytest.raises(ValueError, match="too few"):
        stratified_node_split(np.array([0, 0, 0, 1, 1]), seed=0)


def test_node_graph_validation():
    x, y, a = np.zeros((4, 2)), np.zeros(4, np.int32), np.zeros((4, 4))
    with pytest.raises(ValueError, match="one label per node"):
        NodeGraph(x, np.zeros(3, np.int32), a)
    with pytest.raises(ValueError, match="square"):
        NodeGraph(x, y, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="adjacency has 3 nodes"):
        NodeGraph(x, y, np.zeros((3, 3)))
    with pytest.raises(ValueError, match="one label per row"):
        similarity_graph(np.zeros((4, 3)), np.zeros(5, np.int32), edge_feature=0, threshold=1.0)
    with pytest.raises(ValueError, match="edge_feature"):
        similarity_graph(np.zeros((4, 3)), y, edge_feature=3, threshold=1.0)
    with pytest.raises(ValueError, match="threshold"):
        similarity_graph(np.zeros((4, 3)), y, edge_feature=0, threshold=0.0)


def test_imbalanced_subsample_and_induced_subgraph():
    labels = np.array([0] * 90 + [1] * 60)
    rows = imbalanced_subsample(labels, minority_class=1, minority_fraction=0.1, seed=0)
    assert np.sum(labels[rows] == 0) == 90 and np.sum(labels[rows] == 1) == 10
    a = np.arange(16).reshape(4, 4)
    np.testing.assert_array_equal(induced_subgraph(a, [1, 3]), [[5, 7], [13, 15]])
    with pytest.raises(ValueError, match="only 60 exist"):
        imbalanced_subsample(labels, minority_class=1, minority_fraction=0.5, seed=0)


def test_breast_cancer_graphs():
    g = breast_cancer_graph()
    assert g.num_nodes == 569 and g.features.shape == (569, 29) and np.bincount(g.labels).tolist() == [357, 212]
    assert "mean radius" not in g.feature_names and np.array_equal(g.adjacency, g.adjacency.T)
    small = breast_cancer_graph(minority_fraction=0.15)
    assert np.bincount(small.labels).tolist() == [357, 63]
