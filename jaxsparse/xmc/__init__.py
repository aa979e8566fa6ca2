"""Dynamic sparse training for extreme multi-label output layers (SPARTEX, arXiv 2411.03171).

A fixed fan-in classifier (values and int32 indices [L, k]) over the core's chunked condensed matmul,
rewired in-row by SET; an optional dense intermediate layer; an auxiliary meta-classifier objective over
balanced label clusters; the Extreme Classification Repository loader; P@k, PSP@k and nDCG@k.
"""

from ._data import MultiLabelDataset as MultiLabelDataset
from ._data import cluster_targets as cluster_targets
from ._data import label_clusters as label_clusters
from ._data import label_embeddings as label_embeddings
from ._data import load_stdlib_identifier_task as load_stdlib_identifier_task
from ._data import read_xc_repository as read_xc_repository
from ._data import write_xc_repository as write_xc_repository
from ._experiment import VARIANTS as VARIANTS
from ._experiment import xmc_comparison as xmc_comparison
from ._layer import fixed_fan_in_logits as fixed_fan_in_logits
from ._layer import init_fixed_fan_in as init_fixed_fan_in
from ._layer import set_rewire as set_rewire
from ._metrics import PROPENSITY_AB as PROPENSITY_AB
from ._metrics import XMCMetricAccumulator as XMCMetricAccumulator
from ._metrics import inverse_propensity as inverse_propensity
from ._metrics import ndcg_at_k as ndcg_at_k
from ._metrics import precision_at_k as precision_at_k
from ._metrics import psndcg_at_k as psndcg_at_k
from ._metrics import psp_at_k as psp_at_k
from ._metrics import top_k_streaming as top_k_streaming
from ._model import XMCModelSpec as XMCModelSpec
from ._model import aux_weight as aux_weight
from ._model import bce_loss as bce_loss
from ._model import init_xmc as init_xmc
from ._model import make_train_step as make_train_step
from ._model import memory_report as memory_report
from ._model import squared_hinge_loss as squared_hinge_loss
from ._model import xmc_forward as xmc_forward

__all__ = [
    "PROPENSITY_AB",
    "VARIANTS",
    "MultiLabelDataset",
    "XMCMetricAccumulator",
    "XMCModelSpec",
    "aux_weight",
    "bce_loss",
    "cluster_targets",
    "fixed_fan_in_logits",
    "init_fixed_fan_in",
    "init_xmc",
    "inverse_propensity",
    "label_clusters",
    "label_embeddings",
    "load_stdlib_identifier_task",
    "make_train_step",
    "memory_report",
    "ndcg_at_k",
    "precision_at_k",
    "psndcg_at_k",
    "psp_at_k",
    "read_xc_repository",
    "set_rewire",
    "squared_hinge_loss",
    "top_k_streaming",
    "write_xc_repository",
    "xmc_comparison",
    "xmc_forward",
]
