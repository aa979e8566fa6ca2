"""Lottery tickets across basins: IMP masks, masked training, and the sparse re-basin experiment.

* `iterative_magnitude_pruning` (global, per-round fraction, retrain callback per round), `imp_schedule`,
  `global_prune_step`.
* `train_classifier` (SGD with a fixed mask, rewind checkpoints), `predict_logits`.
* NNX models `VGG`, `ResNet20` (and `jaxsparse.nn.MLP`) with `model_activations` / `model_permutation_spec`.
* `lth_permutation_experiment`: dense A and B, A's IMP mask, B matched to A, LTH / naive / permuted sparse
  runs, accuracy and ensemble diversity (arXiv 2505.05143).
"""

from ._diversity import ensemble_diversity as ensemble_diversity
from ._experiment import build_model as build_model
from ._experiment import lth_permutation_experiment as lth_permutation_experiment
from ._experiment import prunable_filter as prunable_filter
from ._imp import global_prune_step as global_prune_step
from ._imp import imp_schedule as imp_schedule
from ._imp import iterative_magnitude_pruning as iterative_magnitude_pruning
from ._models import VGG as VGG
from ._models import ResNet20 as ResNet20
from ._models import model_activations as model_activations
from ._models import model_permutation_spec as model_permutation_spec
from ._train import get_state as get_state
from ._train import predict_logits as predict_logits
from ._train import set_state as set_state
from ._train import train_classifier as train_classifier

__all__ = [
    "VGG",
    "ResNet20",
    "build_model",
    "ensemble_diversity",
    "get_state",
    "global_prune_step",
    "imp_schedule",
    "iterative_magnitude_pruning",
    "lth_permutation_experiment",
    "model_activations",
    "model_permutation_spec",
    "predict_logits",
    "prunable_filter",
    "set_state",
    "train_classifier",
]
