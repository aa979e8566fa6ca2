"""Concatenating a group's MLP kernels, the SVD initialisation of FiPS, and slicing V per layer (fips.md §1, §2, §4).

Orientation (NNX `Linear` kernels are [in, out]): fc1's kernel [d, h] already has one hidden neuron's input
weights per column; fc2's kernel [h, d] is transposed to [d, h] so that each column holds that neuron's output
weights. Every column of W_cat then lives in the residual space R^d, and one shared base U [d, r] spans all of
them: W_cat ~= U V with V [r, 2 n h].
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from jaxsparse._checks import check_int

__all__ = ["concat_mlp_kernels", "split_factors", "svd_init"]


def _shape(x, name: str) -> tuple[int, ...]:
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        raise ValueError(f"{name} must be an array, got {type(x).__name__}")
    return tuple(int(s) for s in x.shape)


def concat_mlp_kernels(fc1_kernels: Sequence, fc2_kernels: Sequence):
    """W_cat [d, 2 n h] = [fc1_b0, fc2_b0^T, fc1_b1, fc2_b1^T, ...] for a group of n blocks.

    Args:
      fc1_kernels: n arrays [d, h], the fc1 kernels in block order.
      fc2_kernels: n arrays [h, d], the fc2 kernels in the same order.

    Returns:
      The concatenation along columns, in the kernels' promoted dtype.
    """
    fc1_kernels, fc2_kernels = list(fc1_kernels), list(fc2_kernels)
    if not fc1_kernels or len(fc1_kernels) != len(fc2_kernels):
        raise ValueError(
            f"need one fc2 kernel per fc1 kernel (at least one block), got {len(fc1_kernels)} and {len(fc2_kernels)}"
        )
    d, h = None, None
    parts = []
    for b, (k1, k2) in enumerate(zip(fc1_kernels, fc2_kernels, strict=True)):
        s1, s2 = _shape(k1, f"fc1_kernels[{b}]"), _shape(k2, f"fc2_kernels[{b}]")
        if len(s1) != 2 or len(s2) != 2 or s2 != s1[::-1]:
            raise ValueError(f"block {b}: fc1 kernel must be [d, h] and fc2 kernel [h, d], got {s1} and {s2}")
        if d is None:
            d, h = s1
        elif s1 != (d, h):
            raise ValueError(
                f"block {b} has MLP width d x h = {s1[0]} x {s1[1]} but block 0 of the group has {d} x {h}: "
                "a group cannot cross a change of width"
            )
        parts += [jnp.asarray(k1), jnp.asarray(k2).T]
    return jnp.concatenate(parts, axis=1)


def svd_init(w_cat, rank: int, *, tau: float = 32.0):
    """Shared base and coefficients from the thin SVD W_cat = U S V^T, singular values folded into V.

    With k = min(d, columns) singular values:
    - r <= k: U[:, :r] and S V^T[:r] (the best rank-r approximation; exact at r = k since rank(W_cat) <= k).
    - r > k: U gets r - k zero columns, and V gets r - k extra rows: copies of its top min(r - k, k) rows
      divided by `tau`, tiled until V has r rows (the official `svd_decompose`). U V is still exactly W_cat,
      but dL/dU_pad = G V_pad^T != 0, so the extra rank starts to train at the first step.

    The SVD runs on the host in float64 (a one-off init; the paper also decomposes on the CPU), so the
    returned factors are accurate to the input dtype.

    Args:
      w_cat: [d, m] matrix (`concat_mlp_kernels`).
      rank: r >= 1.
      tau: divisor of the padding rows (> 0).

    Returns:
      (U [d, r], V [r, m]) in w_cat's dtype.
    """
    shape = _shape(w_cat, "w_cat")
    if len(shape) != 2:
        raise ValueError(f"w_cat must be a matrix [d, m], got shape {shape}")
    rank = check_int(rank, "rank", minimum=1)
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau > 0:
        raise ValueError(f"tau must be a positive number, got {tau!r}")
    dtype = jnp.asarray(w_cat).dtype
    u, s, vt = np.linalg.svd(np.asarray(w_cat, np.float64), full_matrices=False)
    v = s[:, None] * vt  # [k, m]
    k = s.shape[0]
    if rank <= k:
        u, v = u[:, :rank], v[:rank]
    else:
        pad_rows = v[: rank - k] / tau
        reps = -(-(rank - k) // pad_rows.shape[0])
        u = np.concatenate([u, np.zeros((shape[0], rank - k))], axis=1)
        v = np.concatenate([v, np.tile(pad_rows, (reps, 1))[: rank - k]], axis=0)
    return jnp.asarray(u, dtype), jnp.asarray(v, dtype)


def split_factors(v, n_blocks: int, hidden: int) -> list:
    """Slices V [r, 2 n h] into per-block (V_fc1 [r, h], V_fc2 [r, h]), the inverse of the concatenation order.

    fc1 of block b is x @ (U V_fc1) and fc2 is h @ (U V_fc2)^T.
    """
    n_blocks = check_int(n_blocks, "n_blocks", minimum=1)
    hidden = check_int(hidden, "hidden", minimum=1)
    shape = _shape(v, "V")
    if len(shape) != 2 or shape[1] != 2 * n_blocks * hidden:
        raise ValueError(f"V must have shape [r, 2 * n_blocks * hidden] = [r, {2 * n_blocks * hidden}], got {shape}")
    return [
        (v[:, (2 * b) * hidden : (2 * b + 1) * hidden], v[:, (2 * b + 1) * hidden : (2 * b + 2) * hidden])
        for b in range(n_blocks)
    ]
