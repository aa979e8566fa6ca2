"""Infinite-width mutual information: the input-compression bound and shortcut detection.

Reimplements Galloway et al., "Bounding generalization error with input compression: an empirical study with
infinite-width networks" (TMLR 2023, arXiv 2207.09408) and Adnan et al., "Monitoring shortcut learning using
mutual information" (arXiv 2206.13034).

* `fc_kernel`, `fc_kernel_fn`: closed-form NNGP/NTK of fully connected ReLU/Erf networks (cross-check and
  fallback for neural-tangents' stax ``kernel_fn``).
* `fit_ensemble`, `predict_ensemble`: mean and covariance of the infinite ensemble trained by gradient flow on
  MSE for time t (NTK) or of the Bayesian NNGP posterior, from any ``kernel_fn``.
* `mi_bounds`, `pairwise_mi_bounds`: I(X; Z) for the Gaussian-mixture representation (InfoNCE lower and
  leave-one-out upper bounds, nats and bits, standard errors; Kolchinsky-Tracey pairwise bounds).
* `input_compression_bound`, `informativeness_threshold_bits`, `icb_report`: the ICB and a sweep report.
* `add_patch_shortcut`, `mi_curves`, `shortcut_detected`: MI vs training time with an injected patch shortcut.
* `icb_study`, `shortcut_study`: the experiments behind ``jaxsparse reproduce icb`` / ``shortcut``.
"""

from ._bound import ICBModel as ICBModel
from ._bound import encode_targets as encode_targets
from ._bound import icb_report as icb_report
from ._bound import informativeness_threshold_bits as informativeness_threshold_bits
from ._bound import input_compression_bound as input_compression_bound
from ._bound import is_informative as is_informative
from ._bound import predict_labels as predict_labels
from ._gp import EnsembleFit as EnsembleFit
from ._gp import GaussianPrediction as GaussianPrediction
from ._gp import evaluate_kernel as evaluate_kernel
from ._gp import fit_ensemble as fit_ensemble
from ._gp import predict_ensemble as predict_ensemble
from ._kernels import ACTIVATIONS as ACTIVATIONS
from ._kernels import Kernel as Kernel
from ._kernels import fc_kernel as fc_kernel
from ._kernels import fc_kernel_fn as fc_kernel_fn
from ._mi import MIEstimate as MIEstimate
from ._mi import mi_bounds as mi_bounds
from ._mi import pairwise_mi_bounds as pairwise_mi_bounds
from ._shortcut import add_patch_shortcut as add_patch_shortcut
from ._shortcut import mi_curves as mi_curves
from ._shortcut import shortcut_detected as shortcut_detected
from ._study import DIGIT_TASKS as DIGIT_TASKS
from ._study import binary_digit_task as binary_digit_task
from ._study import icb_study as icb_study
from ._study import make_kernel_fn as make_kernel_fn
from ._study import shortcut_study as shortcut_study

__all__ = [
    "ACTIVATIONS",
    "DIGIT_TASKS",
    "EnsembleFit",
    "GaussianPrediction",
    "ICBModel",
    "Kernel",
    "MIEstimate",
    "add_patch_shortcut",
    "binary_digit_task",
    "encode_targets",
    "evaluate_kernel",
    "fc_kernel",
    "fc_kernel_fn",
    "fit_ensemble",
    "icb_report",
    "icb_study",
    "informativeness_threshold_bits",
    "input_compression_bound",
    "is_informative",
    "make_kernel_fn",
    "mi_bounds",
    "mi_curves",
    "pairwise_mi_bounds",
    "predict_ensemble",
    "predict_labels",
    "shortcut_detected",
    "shortcut_study",
]
