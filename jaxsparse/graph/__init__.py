"""Graph neural networks for class-imbalanced node classification: Meta-GCN (arXiv 2406.17073).

* `GCN`, `GCNLayer`, `normalized_adjacency`, `edge_graph`, `EdgeGraph`, `propagate`: graph convolution with
  symmetric normalisation D̃^-1/2 (A + I) D̃^-1/2, dense or edge-list (segment_sum), same results.
* `meta_weights`, `normalize_weights`, `make_train_step`, `train_gcn`, `make_graph_task`: Meta-GCN's per-node
  learning-to-reweight step (look-ahead, meta gradient, clipping, normalisation and update in one jitted step)
  and the unweighted / class-weighted baselines in the same harness.
* `similarity_graph`, `breast_cancer_graph`, `split_nodes`, `sample_meta_set`: patient-similarity graphs and
  per-class 60/20/20 splits with a balanced meta set; `load_haberman_csv`, `load_pima_csv`: the paper's data.
* `accuracy`, `roc_auc`, `macro_f1`, `classification_metrics`: metrics (scikit-learn's definitions).
* `meta_gcn_study`: Meta-GCN vs the baselines over seeds (the `meta_gcn` reproduction).
"""

from ._build import NodeGraph as NodeGraph
from ._build import NodeSplit as NodeSplit
from ._build import breast_cancer_graph as breast_cancer_graph
from ._build import imbalanced_subsample as imbalanced_subsample
from ._build import induced_subgraph as induced_subgraph
from ._build import sample_meta_set as sample_meta_set
from ._build import similarity_graph as similarity_graph
from ._build import split_nodes as split_nodes
from ._build import stratified_node_split as stratified_node_split
from ._gcn import GCN as GCN
from ._gcn import EdgeGraph as EdgeGraph
from ._gcn import GCNLayer as GCNLayer
from ._gcn import edge_graph as edge_graph
from ._gcn import normalized_adjacency as normalized_adjacency
from ._gcn import propagate as propagate
from ._loaders import HABERMAN_COLUMNS as HABERMAN_COLUMNS
from ._loaders import PIMA_COLUMNS as PIMA_COLUMNS
from ._loaders import load_haberman_csv as load_haberman_csv
from ._loaders import load_pima_csv as load_pima_csv
from ._meta import METHODS as METHODS
from ._meta import GraphTask as GraphTask
from ._meta import MetaWeights as MetaWeights
from ._meta import TrainResult as TrainResult
from ._meta import fixed_node_weights as fixed_node_weights
from ._meta import make_graph_task as make_graph_task
from ._meta import make_optimizer as make_optimizer
from ._meta import make_train_step as make_train_step
from ._meta import meta_weights as meta_weights
from ._meta import normalize_weights as normalize_weights
from ._meta import per_node_cross_entropy as per_node_cross_entropy
from ._meta import train_gcn as train_gcn
from ._metrics import accuracy as accuracy
from ._metrics import classification_metrics as classification_metrics
from ._metrics import macro_f1 as macro_f1
from ._metrics import roc_auc as roc_auc
from ._study import meta_gcn_study as meta_gcn_study

__all__ = [
    "GCN",
    "HABERMAN_COLUMNS",
    "METHODS",
    "PIMA_COLUMNS",
    "EdgeGraph",
    "GCNLayer",
    "GraphTask",
    "MetaWeights",
    "NodeGraph",
    "NodeSplit",
    "TrainResult",
    "accuracy",
    "breast_cancer_graph",
    "classification_metrics",
    "edge_graph",
    "fixed_node_weights",
    "imbalanced_subsample",
    "induced_subgraph",
    "load_haberman_csv",
    "load_pima_csv",
    "macro_f1",
    "make_graph_task",
    "make_optimizer",
    "make_train_step",
    "meta_gcn_study",
    "meta_weights",
    "normalize_weights",
    "normalized_adjacency",
    "per_node_cross_entropy",
    "propagate",
    "roc_auc",
    "sample_meta_set",
    "similarity_graph",
    "split_nodes",
    "stratified_node_split",
    "train_gcn",
]
