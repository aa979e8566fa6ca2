"""Group-shared condensed matmul: `y[b, o] = sum_j values[o, j] * x[b, indices[o // G, j]]`.

G consecutive output neurons share one index row, which makes the layer a gather-GEMM on the matrix units.
"""

from .api import GPU_KERNEL_MIN_BATCH as GPU_KERNEL_MIN_BATCH
from .api import GPU_KERNEL_MIN_GROUP as GPU_KERNEL_MIN_GROUP
from .api import XLA_GATHER_MAX_BATCH as XLA_GATHER_MAX_BATCH
from .api import auto_implementation as auto_implementation
from .api import grouped_condensed_matmul as grouped_condensed_matmul
from .dense import grouped_condensed_from_dense_kernel as grouped_condensed_from_dense_kernel
from .dense import grouped_condensed_to_dense_kernel as grouped_condensed_to_dense_kernel
from .pallas_triton import BlockSizes as BlockSizes
from .pallas_triton import default_block_sizes as default_block_sizes
from .reference import grouped_condensed_matmul_reference as grouped_condensed_matmul_reference

__all__ = [
    "GPU_KERNEL_MIN_BATCH",
    "GPU_KERNEL_MIN_GROUP",
    "XLA_GATHER_MAX_BATCH",
    "BlockSizes",
    "auto_implementation",
    "default_block_sizes",
    "grouped_condensed_from_dense_kernel",
    "grouped_condensed_matmul",
    "grouped_condensed_matmul_reference",
    "grouped_condensed_to_dense_kernel",
]
