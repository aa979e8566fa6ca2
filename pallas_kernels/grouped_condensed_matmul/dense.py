"""Dense fallback (densify W [in, n_out], or take a cached one, then one GEMM) and the dense <-> grouped helpers."""

import jax.numpy as jnp
import numpy as np

from pallas_kernels._cached_dense import cached_dense_matmul
from pallas_kernels._common import as_empty_slot, narrow_index_dtype

from ._validate import check_group_size, matmul_precision

__all__ = [
    "grouped_condensed_from_dense_kernel",
    "grouped_condensed_matmul_dense",
    "grouped_condensed_to_dense_kernel",
]


def grouped_condensed_to_dense_kernel(values, indices, in_features: int, group_size: int):
    """Scatters the grouped layer into a dense kernel W [in_features, n_out].

    W[indices[o // G, j], o] += values[o, j]: duplicates add, empty slots (and any out-of-range id) drop.
    Differentiable in `values` (the scatter-add's transpose is a gather).
    """
    group_size = check_group_size(group_size)
    n_out = values.shape[0]
    rows = jnp.repeat(as_empty_slot(indices, in_features), group_size, axis=0)  # [n_out, k]
    cols = jnp.broadcast_to(jnp.arange(n_out)[:, None], rows.shape)
    return jnp.zeros((in_features, n_out), values.dtype).at[rows, cols].add(values, mode="drop")


def grouped_condensed_from_dense_kernel(kernel, group_size: int, *, k: int | None = None, index_dtype=None):
    """The grouped layer of a dense kernel W [in, n_out] (host-side, concrete input; topology changes only).

    Group g's index row is the union of the nonzero input rows of its G columns, ascending, padded with the
    empty slot `in` up to k (default: the largest union over groups); values[o, j] = W[indices[o // G, j], o]
    (0 in padded slots, and wherever column o is zero on a row its group shares). Round-trips through
    `grouped_condensed_to_dense_kernel`. Returns (values [n_out, k] in W's dtype, indices [n_out // G, k]).
    """
    group_size = check_group_size(group_size)
    w = np.asarray(kernel)
    if w.ndim != 2:
        raise ValueError(f"kernel must have shape [in_features, n_out], got {w.shape}")
    n_in, n_out = w.shape
    if n_out % group_size:
        raise ValueError(f"group_size={group_size} must divide n_out={n_out} (kernel.shape[1])")
    n_groups = n_out // group_size
    used = (w != 0).reshape(n_in, n_groups, group_size).any(axis=2).T  # [n_groups, in]
    counts = used.sum(axis=1)
    k_min = int(counts.max(initial=0))
    if k is None:
        k = k_min
    elif isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < k_min:
        raise ValueError(f"k must be an int >= {k_min} (the largest group fan-in), got {k!r}")
    # A stable sort of "not used" puts each group's used rows first, in ascending order.
    order = np.argsort(~used, axis=1, kind="stable")[:, :k]
    if order.shape[1] < k:  # k > n_in: the tail is padding only
        order = np.pad(order, ((0, 0), (0, k - order.shape[1])))
    indices = np.where(np.arange(k)[None, :] < counts[:, None], order, n_in)
    w_padded = np.concatenate([w, np.zeros((1, n_out), w.dtype)])  # row n_in reads 0
    values = w_padded[np.repeat(indices, group_size, axis=0), np.arange(n_out)[:, None]]
    dtype = narrow_index_dtype(n_in + 1) if index_dtype is None else index_dtype
    return jnp.asarray(values), jnp.asarray(indices.astype(dtype))


def grouped_condensed_matmul_dense(x2d, values, indices, *, group_size: int, dense_kernel=None):
    """x2d @ W with float32 accumulation (full float32 products for float32, as the other backends); a cached
    `dense_kernel` [in, n_out] skips the per-call scatter (plain forwards only; differentiated calls rebuild it
    from values, see `pallas_kernels._cached_dense`)."""
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    if dense_kernel is not None:
        return cached_dense_matmul(
            x2d.astype(dtype),
            values.astype(dtype),
            indices,
            dense_kernel,
            densify=grouped_condensed_to_dense_kernel,
            static=(x2d.shape[1], group_size),
            precision=matmul_precision(dtype),
        )
    dense_kernel = grouped_condensed_to_dense_kernel(values, indices, x2d.shape[1], group_size)
    acc = jnp.promote_types(dtype, jnp.float32)
    y = jnp.dot(
        x2d.astype(dtype), dense_kernel.astype(dtype), precision=matmul_precision(dtype), preferred_element_type=acc
    )
    return y.astype(dtype)
