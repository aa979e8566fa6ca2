"""Dynamic sparse training: static sparse, SET, RigL and SRigL as optax transformations.

    tx = jaxsparse.dst.srigl(optax.adamw(1e-3), sparsity=0.9, key=jax.random.key(0), total_steps=10_000)

The updater's state holds the masks; pruned weights are exactly zero after every `optax.apply_updates`.
"""

from jaxsparse.masks import cosine_drop_fraction as cosine_drop_fraction
from jaxsparse.masks import is_mask_update_step as is_mask_update_step

from ._condense import CondensedMLP as CondensedMLP
from ._condense import condense_mlp as condense_mlp
from ._condense import fan_in_histogram as fan_in_histogram
from ._condense import mask_summary as mask_summary
from ._experiment import METHODS as METHODS
from ._experiment import dst_comparison as dst_comparison
from ._mask_updates import srigl_mask_update as srigl_mask_update
from ._mask_updates import unstructured_mask_update as unstructured_mask_update
from ._updaters import SparseState as SparseState
from ._updaters import apply_initial_masks as apply_initial_masks
from ._updaters import default_sparse_leaves as default_sparse_leaves
from ._updaters import find_sparse_state as find_sparse_state
from ._updaters import rigl as rigl
from ._updaters import sparse_evolutionary as sparse_evolutionary
from ._updaters import srigl as srigl
from ._updaters import static_sparse as static_sparse

__all__ = [
    "METHODS",
    "CondensedMLP",
    "SparseState",
    "apply_initial_masks",
    "condense_mlp",
    "cosine_drop_fraction",
    "default_sparse_leaves",
    "dst_comparison",
    "fan_in_histogram",
    "find_sparse_state",
    "is_mask_update_step",
    "mask_summary",
    "rigl",
    "sparse_evolutionary",
    "srigl",
    "srigl_mask_update",
    "static_sparse",
    "unstructured_mask_update",
]
