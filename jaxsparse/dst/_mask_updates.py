"""Per-leaf mask updates of SET, RigL and SRigL, with static shapes and traced counts (no recompiles).

Each function takes one kernel's weights, dense gradient and mask (Flax layout: last axis = output
neurons) and returns (new_mask, grown), where `grown` marks connections that become active now (their
weights start at zero and their optimizer moments are reset). Ranking is by a stable sort, so ties go to
the lower flat index (row-major) and every update is deterministic given its inputs.
"""

import jax.numpy as jnp

__all__ = ["rank_descending", "srigl_mask_update", "unstructured_mask_update"]

_NEG = -jnp.inf


def rank_descending(scores, axis: int = -1):
    """Rank of every entry when sorted by decreasing score along `axis` (0 = largest; ties: lower index)."""
    order = jnp.argsort(-scores, axis=axis, stable=True)
    ranks = jnp.argsort(order, axis=axis, stable=True)
    return ranks


def unstructured_mask_update(weights, grow_scores, mask, drop_fraction):
    """SET/RigL: drop the floor(nnz * drop) smallest |w|, regrow as many by `grow_scores`; nnz is conserved.

    Args:
      weights: the leaf's current weights.
      grow_scores: |dense gradient| (RigL) or uniform noise (SET), same shape.
      mask: current bool mask.
      drop_fraction: scalar in [0, 1].

    Returns:
      (new_mask, grown).
    """
    shape = mask.shape
    w, s, m = weights.reshape(-1), grow_scores.reshape(-1), mask.reshape(-1)
    nnz = jnp.sum(m, dtype=jnp.int32)
    n_prune = jnp.floor(nnz.astype(jnp.float32) * drop_fraction).astype(jnp.int32)
    n_keep = nnz - n_prune
    keep = m & (rank_descending(jnp.where(m, jnp.abs(w).astype(jnp.float32), _NEG)) < n_keep)
    grow = ~keep & (rank_descending(jnp.where(keep, _NEG, s.astype(jnp.float32))) < n_prune)
    return (keep | grow).reshape(shape), grow.reshape(shape)


def srigl_mask_update(weights, grads, mask, drop_fraction, *, nnz_target: int, k0: int, gamma_sal: float):
    """SRigL (Lasby et al. 2024, Alg. 1): constant fan-in with neuron ablation.

    1. n_prune = floor(|mask| * drop), n_keep = |mask| - n_prune. Salient weights: the union of the layer's
       top n_keep active |w| and its top n_prune positions by |grad| (any position, as in the reference
       code); c_i counts them per neuron.
    2. Neurons with c_i < tau = max(1, floor(gamma_sal * k0)) are ablated (none when gamma_sal = 0). If that
       would leave fewer than ceil(nnz* / fan_in_dense) neurons (needed for k' <= fan_in_dense), tau is
       lowered to the c_i of the ceil(nnz* / fan_in_dense)-th most salient neuron (ties all survive).
    3. k' = floor(nnz* / n_active).
    4. Drop: keep the global top n_keep |w| among active weights of surviving neurons, then cap each
       neuron at its k' largest.
    5. Grow: each surviving neuron gets its highest-|grad| inactive positions up to exactly k'.

    Args:
      weights, grads, mask: the leaf's arrays, last axis = output neurons.
      drop_fraction: traced scalar.
      nnz_target: nnz* = floor(size * (1 - sparsity)) (static).
      k0: the initial fan-in floor(nnz* / n_out) (static), the base of the ablation threshold.
      gamma_sal: salience threshold fraction in [0, 1] (static).

    Returns:
      (new_mask, grown).
    """
    shape = mask.shape
    n_out = shape[-1]
    fan_in_dense = mask.size // n_out
    rows = lambda a: a.reshape(fan_in_dense, n_out).T  # [n_out, F]
    w, g, m = rows(jnp.abs(weights).astype(jnp.float32)), rows(jnp.abs(grads).astype(jnp.float32)), rows(mask)

    nnz = jnp.sum(m, dtype=jnp.int32)
    n_prune = jnp.floor(nnz.astype(jnp.float32) * drop_fraction).astype(jnp.int32)
    n_keep = nnz - n_prune

    # 1. Saliency over the whole layer.
    keep_mag = m & (rank_descending(jnp.where(m, w, _NEG).reshape(-1)).reshape(m.shape) < n_keep)
    grow_sal = rank_descending(g.reshape(-1)).reshape(m.shape) < n_prune
    salient_per_neuron = jnp.sum(keep_mag | grow_sal, axis=1, dtype=jnp.int32)  # c_i

    # 2. Ablation with the minimum-survivor clamp.
    tau = 0 if gamma_sal == 0 else max(1, int(gamma_sal * k0))
    min_active = -(-nnz_target // fan_in_dense)  # ceil
    kth_salience = jnp.sort(salient_per_neuron)[n_out - min_active]  # c of the min_active-th most salient
    survivors = salient_per_neuron >= jnp.minimum(tau, kth_salience)

    # 3. New fan-in.
    n_active = jnp.sum(survivors, dtype=jnp.int32)
    k_new = nnz_target // n_active

    # 4. Drop: global magnitude among survivors, then cap each neuron at k'.
    live = m & survivors[:, None]
    keep = live & (rank_descending(jnp.where(live, w, _NEG).reshape(-1)).reshape(m.shape) < n_keep)
    keep = keep & (rank_descending(jnp.where(keep, w, _NEG), axis=1) < k_new)

    # 5. Grow every surviving neuron back to exactly k' by |grad|.
    missing = jnp.where(survivors, k_new - jnp.sum(keep, axis=1, dtype=jnp.int32), 0)
    grow = ~keep & survivors[:, None] & (rank_descending(jnp.where(keep, _NEG, g), axis=1) < missing[:, None])

    back = lambda a: a.T.reshape(shape)
    return back(keep | grow), back(grow)
