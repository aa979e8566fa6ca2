"""XLA backend of the group-shared condensed matmul: one gather per group, then a batched GEMM.

G consecutive outputs share the index row indices[g], so the gather is done once per group, not per output:
    xg[g, j, b] = x[b, indices[g, j]]              (feature-major: rows of x^T, [n_groups, k, batch])
    y[b, g*G + s] = sum_j values[g*G + s, j] * xg[g, j, b]     (a batched GEMM, batch dim g)
The gathered activations take n_groups * k * batch elements, G times fewer than the ungrouped layer.

The hand-written VJP keeps only (x, values, indices) as residuals and re-gathers in the backward, instead of
autodiff saving the [n_groups, k, batch] gather:
    grad values[g*G + s, j] = sum_b dy[b, g*G + s] * xg[g, j, b]          (batched GEMM over the same gather)
    grad x^T[i, :] = sum_{(g, j): indices[g, j] = i} p[g, j, :],  p = values_g^T @ dy_g^T  (GEMM + segment sum)
The segment sum (a scatter-add of contiguous batch rows) is the transpose of the gather; empty slots fall into
a dropped segment. p takes n_groups * k * batch floats, so at large batch grad x is dy @ W^T with the layer
densified instead (`grad_x_via_dense`). The Pallas backend reuses `grad_x` for its backward. float32 products
run at full float32 precision (`matmul_precision`), not TF32.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels._common import as_empty_slot

from ._validate import matmul_precision
from .dense import grouped_condensed_to_dense_kernel

__all__ = ["grad_x", "grad_x_via_dense", "grouped_condensed_matmul_xla"]


def _acc_dtype(dtype):
    """Accumulate in at least float32 (bf16/f16 inputs), as a dense matmul would."""
    return jnp.promote_types(dtype, jnp.float32)


def _gather_t(xt, indices):
    # Empty slots and out-of-range ids become id n_in, one past the last row: "fill" reads 0 there.
    return xt.at[as_empty_slot(indices, xt.shape[0])].get(mode="fill", fill_value=0)  # [n_groups, k, batch]


def _forward(x2d, values, indices, group_size: int):
    n_out, k = values.shape
    batch = x2d.shape[0]
    xg = _gather_t(x2d.T, indices)
    v = values.reshape(n_out // group_size, group_size, k)
    precision = matmul_precision(x2d.dtype)
    y = jnp.einsum("gsk,gkb->bgs", v, xg, precision=precision, preferred_element_type=_acc_dtype(x2d.dtype))
    return y.reshape(batch, n_out).astype(x2d.dtype)


def grad_x_via_dense(n_groups: int, k: int, batch: int, n_in: int, n_out: int) -> bool:
    """Whether `grad_x` densifies: when the per-slot buffer p [n_groups * k, batch] would exceed W [n_in, n_out].

    p grows with the batch (for 4096x4096, 90% sparse, G=16 it passes W's size at batch 160), while dy @ W^T
    costs one scatter of the n_out * k values and a tensor-core GEMM at any batch.
    """
    return n_groups * k * batch > n_in * n_out


def grad_x(g, values, indices, n_in: int, group_size: int, x_dtype):
    """grad of x [batch, n_in] from the output cotangent g [batch, n_out].

    Small batch: per group p[g, j, :] = sum_s values[g*G + s, j] * g[:, g*G + s] (a batched GEMM) is what slot
    (g, j) sends back to its input row, and the rows of p are summed per input id (a segment sum; duplicates
    add). On GPU XLA lowers the segment sum to atomic adds, so the float summation order (and the last bits) can
    vary between runs. Large batch (`grad_x_via_dense`): g @ W^T with W [n_in, n_out] densified from the layer.
    """
    n_out, k = values.shape
    batch = g.shape[0]
    n_groups = n_out // group_size
    acc = _acc_dtype(x_dtype)
    precision = matmul_precision(x_dtype)
    if grad_x_via_dense(n_groups, k, batch, n_in, n_out):
        w = grouped_condensed_to_dense_kernel(values, indices, n_in, group_size)
        return jnp.dot(g.astype(w.dtype), w.T, precision=precision, preferred_element_type=acc).astype(x_dtype)
    gt = g.T.reshape(n_groups, group_size, batch)
    v = values.reshape(n_groups, group_size, k)
    p = jnp.einsum("gsk,gsb->gkb", v, gt, precision=precision, preferred_element_type=acc).reshape(-1, batch)
    # Empty slots map to segment n_in, which is out of range for num_segments=n_in and so dropped.
    grad_xt = jax.ops.segment_sum(p, as_empty_slot(indices, n_in).reshape(-1), num_segments=n_in)
    return grad_xt.T.astype(x_dtype)


def _backward(x2d, values, indices, g, group_size: int):
    n_out, k = values.shape
    batch, n_in = x2d.shape
    acc = _acc_dtype(x2d.dtype)
    xg = _gather_t(x2d.T, indices)
    gt = g.T.reshape(n_out // group_size, group_size, batch)
    precision = matmul_precision(x2d.dtype)
    grad_v = jnp.einsum("gsb,gkb->gsk", gt, xg, precision=precision, preferred_element_type=acc).reshape(n_out, k)
    return grad_x(g, values, indices, n_in, group_size, x2d.dtype), grad_v.astype(values.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _grouped(x2d, values, indices, group_size):
    return _forward(x2d, values, indices, group_size)


def _grouped_fwd(x2d, values, indices, group_size):
    return _forward(x2d, values, indices, group_size), (x2d, values, indices)


def _grouped_bwd(group_size, residuals, g):
    x2d, values, indices = residuals
    grad_x2d, grad_values = _backward(x2d, values, indices, g, group_size)
    return grad_x2d, grad_values, np.zeros(indices.shape, dtype=jax.dtypes.float0)


_grouped.defvjp(_grouped_fwd, _grouped_bwd)


def grouped_condensed_matmul_xla(x2d, values, indices, *, group_size: int):
    """The XLA backend on checked 2-D inputs: x2d [batch, in], values [n_out, k], indices [n_out // G, k].

    x2d and values must share a dtype (the API casts both to the promoted one); returns [batch, n_out].
    """
    return _grouped(x2d, values, indices, group_size)
