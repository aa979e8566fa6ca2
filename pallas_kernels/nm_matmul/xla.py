"""XLA backend of the N:M matmul: decompress to the dense kernel, then one GEMM.

Differentiable through plain jnp ops: the decompression is a one-hot select-and-sum, whose transpose gathers
the dense weight gradient at the kept positions, so XLA fuses both directions into the surrounding GEMMs. This
is also the fast path above the GPU kernel's batch crossover, where the GEMM is compute bound and reading the
weight once in dense form costs little.
"""

import jax.numpy as jnp

from .convert import decompress, unpacked

__all__ = ["nm_matmul_xla"]


def nm_matmul_xla(x2d, values, positions, *, m: int, packed: bool):
    """The XLA backend on checked 2-D inputs: x2d [batch, in] -> [batch, n_out], float32 accumulation."""
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    kernel = decompress(values.astype(dtype), unpacked(values, positions, m, packed), m)
    acc = jnp.promote_types(dtype, jnp.float32)
    return jnp.dot(x2d.astype(dtype), kernel, preferred_element_type=acc).astype(dtype)
