"""FiPS: Fine-grained Parameter Sharing (Üyük et al., arXiv 2411.09816).

The MLPs of a group of transformer blocks share one dense base U [d, r]; every fc1/fc2 becomes a sparse
combination of its columns (sparse factors V [r, h]), initialised by the SVD of the group's concatenated
kernels and refined by block-wise reconstruction with a sparsifier (RigL, GMP or static masks).

    inputs, outputs = cache_block_io(model, images, batch_size=128)        # teacher, before compression
    info = compress_mlps(model, [[0, 1, 2, 3], [4, 5, 6, 7]], budget=0.5, sparsity=0.75)
    result = reconstruct(model, inputs, outputs, steps=600, batch_size=128, learning_rate=1e-3,
                         key=jax.random.key(0), masks=info["masks"])
"""

from ._budget import fips_param_count as fips_param_count
from ._budget import fips_rank as fips_rank
from ._compress import compress_mlps as compress_mlps
from ._compress import fips_mlp_paths as fips_mlp_paths
from ._decompose import concat_mlp_kernels as concat_mlp_kernels
from ._decompose import split_factors as split_factors
from ._decompose import svd_init as svd_init
from ._experiment import fips_study as fips_study
from ._gmp import GMPState as GMPState
from ._gmp import gmp_sparsity as gmp_sparsity
from ._gmp import gradual_magnitude_pruning as gradual_magnitude_pruning
from ._layer import FactorIndex as FactorIndex
from ._layer import FiPSMLP as FiPSMLP
from ._layer import FiPSParam as FiPSParam
from ._layer import factor_to_condensed as factor_to_condensed
from ._layer import gelu as gelu
from ._masks import global_magnitude_masks as global_magnitude_masks
from ._masks import nm_factor_masks as nm_factor_masks
from ._reconstruct import SPARSIFIERS as SPARSIFIERS
from ._reconstruct import cache_block_io as cache_block_io
from ._reconstruct import reconstruct as reconstruct
from ._reconstruct import reconstruction_loss as reconstruction_loss

__all__ = [
    "SPARSIFIERS",
    "FactorIndex",
    "FiPSMLP",
    "FiPSParam",
    "GMPState",
    "cache_block_io",
    "compress_mlps",
    "concat_mlp_kernels",
    "factor_to_condensed",
    "fips_mlp_paths",
    "fips_param_count",
    "fips_rank",
    "fips_study",
    "gelu",
    "global_magnitude_masks",
    "gmp_sparsity",
    "gradual_magnitude_pruning",
    "nm_factor_masks",
    "reconstruct",
    "reconstruction_loss",
    "split_factors",
    "svd_init",
]
