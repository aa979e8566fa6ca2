"""Mask core: sparsity distributions, mask builders, application and density reports.

Masks are pytrees with the params' structure; a leaf is a bool array or None (that leaf stays dense).
"""

from ._builders import fan_in_for_sparsity as fan_in_for_sparsity
from ._builders import fan_in_mask as fan_in_mask
from ._builders import fan_in_masks as fan_in_masks
from ._builders import global_magnitude_masks as global_magnitude_masks
from ._builders import grouped_fan_in_mask as grouped_fan_in_mask
from ._builders import magnitude_mask as magnitude_mask
from ._builders import magnitude_masks as magnitude_masks
from ._builders import nm_mask as nm_mask
from ._builders import nm_masks as nm_masks
from ._builders import random_fan_in_mask as random_fan_in_mask
from ._builders import random_grouped_fan_in_mask as random_grouped_fan_in_mask
from ._builders import random_mask as random_mask
from ._builders import random_masks as random_masks
from ._builders import split_flat_mask as split_flat_mask
from ._builders import topk_mask as topk_mask
from ._distributions import default_leaf_filter as default_leaf_filter
from ._distributions import erk_sparsities as erk_sparsities
from ._distributions import uniform_sparsities as uniform_sparsities
from ._ops import apply_masks as apply_masks
from ._ops import density as density
from ._ops import density_report as density_report
from ._schedule import cosine_drop_fraction as cosine_drop_fraction
from ._schedule import is_mask_update_step as is_mask_update_step
from ._schedule import map_param_copies as map_param_copies
from ._select import top_n_mask as top_n_mask
from ._validation import check_masks_match as check_masks_match
from ._validation import check_sparsity as check_sparsity
from ._validation import is_grouped_fan_in as is_grouped_fan_in
from ._validation import num_active as num_active

__all__ = [
    "apply_masks",
    "check_masks_match",
    "check_sparsity",
    "cosine_drop_fraction",
    "default_leaf_filter",
    "density",
    "density_report",
    "erk_sparsities",
    "fan_in_for_sparsity",
    "fan_in_mask",
    "fan_in_masks",
    "global_magnitude_masks",
    "grouped_fan_in_mask",
    "is_grouped_fan_in",
    "is_mask_update_step",
    "magnitude_mask",
    "magnitude_masks",
    "map_param_copies",
    "nm_mask",
    "nm_masks",
    "num_active",
    "random_fan_in_mask",
    "random_grouped_fan_in_mask",
    "random_mask",
    "random_masks",
    "split_flat_mask",
    "top_n_mask",
    "topk_mask",
    "uniform_sparsities",
]
