"""N:M structured-sparse matmul: `y = x @ W`, W keeping at most N of every M consecutive inputs per output."""

from .api import GPU_KERNEL_MAX_BATCH as GPU_KERNEL_MAX_BATCH
from .api import IMPLEMENTATIONS as IMPLEMENTATIONS
from .api import auto_implementation as auto_implementation
from .api import nm_matmul as nm_matmul
from .convert import PACKABLE_M as PACKABLE_M
from .convert import nm_compress as nm_compress
from .convert import nm_decompress as nm_decompress
from .convert import pack_positions as pack_positions
from .convert import packed_length as packed_length
from .convert import position_bits as position_bits
from .convert import unpack_positions as unpack_positions
from .pallas_triton import BlockSizes as BlockSizes
from .pallas_triton import default_block_sizes as default_block_sizes
from .reference import nm_matmul_reference as nm_matmul_reference

__all__ = [
    "GPU_KERNEL_MAX_BATCH",
    "IMPLEMENTATIONS",
    "PACKABLE_M",
    "BlockSizes",
    "auto_implementation",
    "default_block_sizes",
    "nm_compress",
    "nm_decompress",
    "nm_matmul",
    "nm_matmul_reference",
    "pack_positions",
    "packed_length",
    "position_bits",
    "unpack_positions",
]
