"""Patient-similarity graphs from tabular data (RA-GCN / Meta-GCN construction) and per-class node splits.

An edge joins patients i != j when a chosen feature differs by less than a threshold; that feature is then
removed from the node features. Splits are stratified per class (60/20/20 by default), and the meta set is a
balanced sample of `per_class` nodes of every class drawn from the validation split (never from test).
"""

import dataclasses

import numpy as np

__all__ = [
    "NodeGraph",
    "NodeSplit",
    "breast_cancer_graph",
    "imbalanced_subsample",
    "induced_subgraph",
    "sample_meta_set",
    "similarity_graph",
    "split_nodes",
    "stratified_node_split",
]


@dataclasses.dataclass(frozen=True, eq=False)
class NodeGraph:
    """A node-classification graph held in numpy: features (N, F), integer labels (N,), adjacency (N, N).

    The adjacency has a zero diagonal (self-loops are added by the GCN normalisation).
    """

    features: np.ndarray
    labels: np.ndarray
    adjacency: np.ndarray
    name: str = ""
    feature_names: tuple[str, ...] = ()

    def __post_init__(self):
        x, y, a = np.asarray(self.features), np.asarray(self.labels), np.asarray(self.adjacency)
        if x.ndim != 2:
            raise ValueError(f"features must be 2-D (N, F), got shape {x.shape}")
        if y.ndim != 1 or y.shape[0] != x.shape[0]:
            raise ValueError(f"labels must be 1-D with one label per node ({x.shape[0]}), got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
            raise ValueError("labels must be non-negative integers")
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"adjacency must be square (N, N), got shape {a.shape}")
        if a.shape[0] != x.shape[0]:
            raise ValueError(f"adjacency has {a.shape[0]} nodes but features have {x.shape[0]} rows")
        if np.any(np.diag(a) != 0):
            raise ValueError("adjacency must have a zero diagonal")
        if self.feature_names and len(self.feature_names) != x.shape[1]:
            raise ValueError(f"feature_names has {len(self.feature_names)} names for {x.shape[1]} features")

    @property
    def num_nodes(self) -> int:
        return int(self.features.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.labels.max()) + 1

    @property
    def num_edges(self) -> int:
        """Undirected edges (the adjacency is symmetric for similarity graphs)."""
        return int(np.count_nonzero(self.adjacency) // 2)


@dataclasses.dataclass(frozen=True, eq=False)
class NodeSplit:
    """Node indices of the train / validation / test splits and the meta set (a subset of validation)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    meta: np.ndarray


def similarity_graph(
    table,
    labels,
    *,
    edge_feature: int,
    threshold: float,
    name: str = "",
    feature_names=None,
    standardize: bool = True,
) -> NodeGraph:
    """Patient-similarity graph: edge i -- j (i != j) when |table[i, f] - table[j, f]| < threshold.

    Column `edge_feature` defines the edges and is dropped from the node features. With `standardize`, the
    remaining features are z-scored over all nodes (label-free, transductive); constant columns are left at 0.

    Args:
        table: (N, D) numeric table.
        labels: (N,) integer labels.
        edge_feature: column of `table` that defines the edges.
        threshold: positive similarity threshold, in the column's raw units.
        name: dataset name.
        feature_names: optional D column names.
        standardize: z-score the node features.
    """
    t = np.asarray(table, dtype=np.float64)
    y = np.asarray(labels)
    if t.ndim != 2 or t.shape[1] < 2:
        raise ValueError(f"table must be 2-D with at least 2 columns, got shape {t.shape}")
    if y.ndim != 1 or y.shape[0] != t.shape[0]:
        raise ValueError(f"labels must be 1-D with one label per row of table ({t.shape[0]}), got shape {y.shape}")
    if not np.all(np.isfinite(t)):
        raise ValueError("table must hold finite numbers")
    if not 0 <= edge_feature < t.shape[1]:
        raise ValueError(f"edge_feature must be a column index in [0, {t.shape[1]}), got {edge_feature}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    col = t[:, edge_feature]
    adjacency = np.abs(col[:, None] - col[None, :]) < threshold
    np.fill_diagonal(adjacency, False)
    x = np.delete(t, edge_feature, axis=1)
    if standardize:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    names = ()
    if feature_names is not None:
        names = tuple(str(n) for i, n in enumerate(feature_names) if i != edge_feature)
        if len(names) != x.shape[1]:
            raise ValueError(f"feature_names must name all {t.shape[1]} columns of table")
    return NodeGraph(x.astype(np.float32), y.astype(np.int32), adjacency, name=name, feature_names=names)


def _check_labels(labels) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer) or (y.size and y.min() < 0):
        raise ValueError("labels must be a 1-D array of non-negative integers")
    return y


def stratified_node_split(labels, *, seed: int, fractions=(0.6, 0.2, 0.2)) -> tuple[np.ndarray, ...]:
    """Per-class train / validation / test node indices (sorted), `fractions` of every class (rounded).

    Every class must get at least one node in each split; otherwise a ValueError names the class.
    """
    y = _check_labels(labels)
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or np.any(f <= 0) or not np.isclose(f.sum(), 1.0):
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    parts = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = int(np.rint(f[0] * idx.size))
        n_val = int(np.rint(f[1] * idx.size))
        if n_train < 1 or n_val < 1 or idx.size - n_train - n_val < 1:
            raise ValueError(f"class {c} has {idx.size} nodes, too few for a {fractions} split")
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def sample_meta_set(labels, val_idx, *, per_class: int, seed: int, num_classes: int | None = None) -> np.ndarray:
    """A balanced meta set: `per_class` nodes of every class, drawn without replacement from `val_idx`.

    Raises ValueError when a class is absent from (or too rare in) the validation split: the meta set would
    not be balanced, and Meta-GCN's weights would ignore that class.
    """
    y = _check_labels(labels)
    val = np.asarray(val_idx)
    if val.ndim != 1 or not np.issubdtype(val.dtype, np.integer):
        raise ValueError("val_idx must be a 1-D integer index array")
    if per_class < 1:
        raise ValueError(f"per_class must be >= 1, got {per_class}")
    classes = range(int(y.max()) + 1 if num_classes is None else num_classes)
    rng = np.random.default_rng(seed)
    meta = []
    for c in classes:
        pool = val[y[val] == c]
        if pool.size == 0:
            raise ValueError(f"class {c} is absent from the validation split: the meta set needs every class")
        if pool.size < per_class:
            raise ValueError(f"class {c} has {pool.size} validation nodes, fewer than per_class={per_class}")
        meta.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(meta))


def split_nodes(labels, *, seed: int, meta_per_class: int = 10, fractions=(0.6, 0.2, 0.2)) -> NodeSplit:
    """`stratified_node_split` and a balanced meta set of `meta_per_class` per class from its validation part."""
    y = _check_labels(labels)
    train, val, test = stratified_node_split(y, seed=seed, fractions=fractions)
    meta = sample_meta_set(y, val, per_class=meta_per_class, seed=seed + 7919)
    return NodeSplit(train=train, val=val, test=test, meta=meta)


def induced_subgraph(adjacency, nodes) -> np.ndarray:
    """Adjacency of the subgraph induced on `nodes` (the public code's meta graph)."""
    a = np.asarray(adjacency)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square (N, N), got shape {a.shape}")
    nodes = np.asarray(nodes)
    return a[np.ix_(nodes, nodes)]


def imbalanced_subsample(labels, *, minority_class: int, minority_fraction: float, seed: int) -> np.ndarray:
    """Sorted row indices keeping every other row and just enough `minority_class` rows for the given share."""
    y = _check_labels(labels)
    if not 0.0 < minority_fraction < 1.0:
        raise ValueError(f"minority_fraction must be in (0, 1), got {minority_fraction}")
    minority = np.flatnonzero(y == minority_class)
    rest = np.flatnonzero(y != minority_class)
    if minority.size == 0:
        raise ValueError(f"minority_class {minority_class} does not occur in labels")
    keep = int(np.rint(minority_fraction * rest.size / (1.0 - minority_fraction)))
    if keep > minority.size:
        raise ValueError(f"minority_fraction {minority_fraction} needs {keep} rows of class {minority_class}, "
                         f"only {minority.size} exist")  # fmt: skip
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rest, rng.choice(minority, size=max(keep, 1), replace=False)]))


# Breast cancer (scikit-learn): 212 malignant, 357 benign. Relabelled so the minority, malignant, is class 1.
# Edges from "mean radius" (column 0): |r_i - r_j| < 0.25 gives about 5% density and 79% same-label edges.
BREAST_CANCER_EDGE_FEATURE = 0
BREAST_CANCER_THRESHOLD = 0.25


def breast_cancer_graph(
    *,
    edge_feature: int = BREAST_CANCER_EDGE_FEATURE,
    threshold: float = BREAST_CANCER_THRESHOLD,
    minority_fraction: float | None = None,
    seed: int = 0,
) -> NodeGraph:
    """Patient-similarity graph on scikit-learn's breast cancer table (label 1 = malignant, the minority).

    Args:
        edge_feature: column defining the edges (dropped from the features); default "mean radius".
        threshold: edge threshold in that column's raw units.
        minority_fraction: None for all 569 patients (37.3% malignant), or the malignant share of a subsample
            that keeps every benign patient (e.g. 0.1).
        seed: seed of the subsample.
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    table, labels = data.data, 1 - data.target  # sklearn: 0 = malignant; here malignant is the positive class 1
    name = "breast_cancer"
    if minority_fraction is not None:
        rows = imbalanced_subsample(labels, minority_class=1, minority_fraction=minority_fraction, seed=seed)
        table, labels = table[rows], labels[rows]
        name = f"breast_cancer_{round(100 * minority_fraction)}pct_malignant"
    return similarity_graph(
        table, labels, edge_feature=edge_feature, threshold=threshold, name=name, feature_names=data.feature_names
    )
