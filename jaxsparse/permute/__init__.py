"""Permutation symmetry of neural networks: specs, applying permutations, weight and activation matching.

* `PermutationSpec` keyed by JAX key paths, with builders for MLP, VGG-style CNN and ResNet-20
  (`mlp_permutation_spec`, `vgg_permutation_spec`, `resnet20_permutation_spec`) and derivation from an NNX
  chain model (`permutation_spec_from_model`).
* `permute_params` applies a permutation to params, BatchNorm statistics and masks; `permute_opt_state` to
  every params-shaped copy in an optimizer state.
* `weight_matching` (Git Re-Basin, arXiv 2209.04836) and `activation_matching` (REPAIR-style correlation,
  one pass) find the permutation aligning model B to model A.
"""

from ._activation_matching import CorrelationStats as CorrelationStats
from ._activation_matching import activation_matching as activation_matching
from ._activation_matching import correlation_from_stats as correlation_from_stats
from ._apply import check_permutation as check_permutation
from ._apply import compose_permutations as compose_permutations
from ._apply import identity_permutation as identity_permutation
from ._apply import invert_permutation as invert_permutation
from ._apply import permutation_sizes as permutation_sizes
from ._apply import permute_opt_state as permute_opt_state
from ._apply import permute_params as permute_params
from ._apply import random_permutation as random_permutation
from ._derive import permutation_spec_from_model as permutation_spec_from_model
from ._spec import PermutationSpec as PermutationSpec
from ._spec import mlp_permutation_spec as mlp_permutation_spec
from ._spec import normalize_path as normalize_path
from ._spec import path_str as path_str
from ._spec import resnet20_permutation_spec as resnet20_permutation_spec
from ._spec import vgg_permutation_spec as vgg_permutation_spec
from ._weight_matching import WeightMatchingResult as WeightMatchingResult
from ._weight_matching import matching_objective as matching_objective
from ._weight_matching import weight_matching as weight_matching

__all__ = [
    "CorrelationStats",
    "PermutationSpec",
    "WeightMatchingResult",
    "activation_matching",
    "check_permutation",
    "compose_permutations",
    "correlation_from_stats",
    "identity_permutation",
    "invert_permutation",
    "matching_objective",
    "mlp_permutation_spec",
    "normalize_path",
    "path_str",
    "permutation_sizes",
    "permutation_spec_from_model",
    "permute_opt_state",
    "permute_params",
    "random_permutation",
    "resnet20_permutation_spec",
    "vgg_permutation_spec",
    "weight_matching",
]
