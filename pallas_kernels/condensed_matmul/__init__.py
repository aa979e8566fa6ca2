"""Condensed (constant fan-in) matmul: `y[b, o] = sum_j values[o, j] * x[b, indices[o, j]]`."""

from .api import TPU_GATHER_MAX_BATCH as TPU_GATHER_MAX_BATCH
from .api import CpuCostModel as CpuCostModel
from .api import GpuCostModel as GpuCostModel
from .api import auto_implementation as auto_implementation
from .api import condensed_matmul as condensed_matmul
from .pallas_triton import GEMV_MAX_BATCH as GEMV_MAX_BATCH
from .pallas_triton import BlockSizes as BlockSizes
from .pallas_triton import default_backward_block_sizes as default_backward_block_sizes
from .pallas_triton import default_block_sizes as default_block_sizes
from .pallas_triton import next_pow2 as next_pow2
from .reference import condensed_matmul_reference as condensed_matmul_reference
from .triton import available as triton_available
from .xla import condensed_to_dense_kernel as condensed_to_dense_kernel

__all__ = [
    "GEMV_MAX_BATCH",
    "TPU_GATHER_MAX_BATCH",
    "BlockSizes",
    "CpuCostModel",
    "GpuCostModel",
    "auto_implementation",
    "condensed_matmul",
    "condensed_matmul_reference",
    "condensed_to_dense_kernel",
    "default_backward_block_sizes",
    "default_block_sizes",
    "next_pow2",
    "triton_available",
]
