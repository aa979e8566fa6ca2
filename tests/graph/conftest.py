"""Small random graphs shared by the graph tests."""

import numpy as np
import pytest

from jaxsparse.graph import NodeGraph


def random_graph(num_nodes: int = 40, features: int = 5, *, seed: int = 0, density: float = 0.2) -> NodeGraph:
    """A random weighted symmetric graph with informative features and ~30% class-1 nodes."""
    rng = np.random.default_rng(seed)
    labels = (rng.uniform(size=num_nodes) < 0.3).astype(np.int32)
    upper = np.triu(rng.uniform(size=(num_nodes, num_nodes)) < density, 1)
    weights = np.triu(rng.uniform(0.5, 2.0, size=(num_nodes, num_nodes)), 1)
    adjacency = (upper * weights) + (upper * weights).T
    x = rng.standard_normal((num_nodes, features)) + labels[:, None]
    return NodeGraph(x.astype(np.float32), labels, adjacency, name="random")


@pytest.fixture(scope="module")
def small_graph() -> NodeGraph:
    return random_graph()
