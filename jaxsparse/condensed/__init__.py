"""Condensed core: constant fan-in weights as values/indices, their matmul, and NNX layers."""

from pallas_kernels.condensed_matmul import condensed_matmul as condensed_matmul
from pallas_kernels.condensed_matmul import condensed_to_dense_kernel as condensed_to_dense_kernel

from ._convert import CondensedWeight as CondensedWeight
from ._convert import from_condensed as from_condensed
from ._convert import to_condensed as to_condensed
from ._nnx import IMPLEMENTATIONS as IMPLEMENTATIONS
from ._nnx import ActiveNeurons as ActiveNeurons
from ._nnx import CondensedLinear as CondensedLinear
from ._nnx import ConnIndex as ConnIndex
from ._nnx import DenseCache as DenseCache
from ._nnx import NMLinear as NMLinear
from ._nnx import condensed_forward as condensed_forward

__all__ = [
    "IMPLEMENTATIONS",
    "ActiveNeurons",
    "CondensedLinear",
    "CondensedWeight",
    "ConnIndex",
    "DenseCache",
    "NMLinear",
    "condensed_forward",
    "condensed_matmul",
    "condensed_to_dense_kernel",
    "from_condensed",
    "to_condensed",
]
