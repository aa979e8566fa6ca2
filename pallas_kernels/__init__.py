"""Custom sparse matmul kernels for JAX (depends on jax only; never imports jaxsparse).

One folder per op, each with `api.py` (the entry point, `implementation="auto" | "xla" | "pallas" | ...`), a
plain-jnp `reference.py`, one file per backend and shared tests:

* `condensed_matmul`: constant fan-in, `y[b, o] = sum_j values[o, j] * x[b, indices[o, j]]`.
* `grouped_condensed_matmul`: the same with G consecutive outputs sharing one index set (a gather-GEMM).
* `nm_matmul`: N:M structured sparsity with (packed) in-group positions.

The Pallas GPU kernels use the Triton lowering (the only GPU Pallas backend that can gather on Hopper); they run
interpreted on CPU. JAX >= 0.11 warns that this backend is deprecated when it lowers them.
"""

# The ops live in subpackages named after them (`from pallas_kernels.condensed_matmul import condensed_matmul`);
# re-exporting the functions here would shadow those subpackages.
__all__ = ["condensed_matmul", "grouped_condensed_matmul", "nm_matmul"]  # the op subpackages
