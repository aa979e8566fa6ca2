"""Per-leaf mask updates of SET, RigL and SRigL, with static shapes and traced counts (no recompiles).

Each function takes one kernel's weights, dense gradient and mask (Flax layout: last axis = output
neurons) and returns (new_mask, grown), where `grown` marks connections that become active now (their
weights start at zero and their optimizer moments are reset). Every "keep the n largest" is an exact
`top_n_mask` (radix select, no sort), with ties going to the lower flat index (row-major), so every update
is deterministic given its inputs.
"""

import jax.numpy as jnp
from jax import lax

from jaxsparse.masks import top_n_mask
from jaxsparse.masks._validation import check_group_size

__all__ = ["srigl_mask_update", "unstructured_mask_update"]


def _prune_count(nnz, drop_fraction):
    return jnp.floor(nnz.astype(jnp.float32) * drop_fraction).astype(jnp.int32)


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
    nnz = jnp.sum(mask, dtype=jnp.int32)
    n_prune = _prune_count(nnz, drop_fraction)
    keep = top_n_mask(jnp.abs(weights), nnz - n_prune, valid=mask)
    grow = top_n_mask(grow_scores, n_prune, valid=~keep)
    return keep | grow, grow


def srigl_mask_update(
    weights, grads, mask, drop_fraction, *, nnz_target: int, k0: int, gamma_sal: float, group_size: int = 1
):
    """SRigL (Lasby et al. 2024, Alg. 1): constant fan-in with neuron ablation.

    1. n_prune = floor(|mask| * drop), n_keep = |mask| - n_prune. Salient weights: the union of the layer's
       top n_keep active |w| and its top n_prune positions by |grad| (over the whole layer, so the two
       may overlap); c_i counts them per neuron.
    2. Neurons with c_i < tau = max(1, floor(gamma_sal * k0)) are ablated (none when gamma_sal = 0). If
       fewer than ceil(nnz* / fan_in_dense) neurons reach tau, tau is lowered to the c_i of the
       ceil(nnz* / fan_in_dense)-th most salient neuron, so that k' <= fan_in_dense.
    3. k' = floor(nnz* / n_active).
    4. Drop: keep the global top n_keep |w| among active weights of surviving neurons, then cap each
       neuron at its k' largest.
    5. Grow: each surviving neuron gets its highest-|grad| inactive positions up to exactly k'.

    Group-shared fan-in (`group_size` G > 1): each block of G consecutive output neurons shares one input
    pattern, and the steps above run on the groups as if each were one neuron. A group scores input j by
    the sum over its G columns of |w[j]| (drop, saliency) and of |grad[j]| (growth, saliency); a group
    connection counts once, so n_prune = floor(|mask| / G * drop) group connections (G weights each) are
    dropped and as many regrown, and every column of a group gets the group's new pattern. Ablation: a
    group's salient count c_g is its number of salient group connections and the whole group is ablated
    when c_g < tau (the same tau, in inputs per neuron), with the survivor clamp counted in groups
    (ceil((nnz* // G) / fan_in_dense)). So a group survives or dies as a unit and its columns always
    agree; k' = floor((nnz* // G) / n_active_groups) = floor(nnz* / n_active_neurons). `mask` must
    already be group-shared (the updater's masks are); G = 1 is ordinary SRigL.

    Args:
      weights, grads, mask: the leaf's arrays, last axis = output neurons.
      drop_fraction: traced scalar.
      nnz_target: nnz* = floor(size * (1 - sparsity)) (static).
      k0: the initial fan-in floor(nnz* / n_out) (static), the base of the ablation threshold.
      gamma_sal: salience threshold fraction in [0, 1] (static).
      group_size: G, a positive int dividing n_out (static).

    Returns:
      (new_mask, grown).
    """
    shape = mask.shape
    n_out = shape[-1]
    fan_in_dense = mask.size // n_out
    group_size = check_group_size(group_size, n_out, f"the output axis of the kernel {tuple(shape)}")
    # Work on [fan_in_dense, n_out] (a free reshape): neurons are columns, per-neuron ops run along axis 0.
    w = jnp.abs(weights).reshape(fan_in_dense, n_out)
    g = jnp.abs(grads).reshape(fan_in_dense, n_out)
    m = mask.reshape(fan_in_dense, n_out)
    if group_size == 1:
        new, grown = _srigl_columns(w, g, m, drop_fraction, nnz_target=nnz_target, k0=k0, gamma_sal=gamma_sal)
        return new.reshape(shape), grown.reshape(shape)

    n_groups = n_out // group_size
    # float32 sums: bf16 sums of G columns would tie scores that differ.
    group_sum = lambda a: a.astype(jnp.float32).reshape(fan_in_dense, n_groups, group_size).sum(axis=-1)
    m_group = jnp.any(m.reshape(fan_in_dense, n_groups, group_size), axis=-1)
    new_g, grown_g = _srigl_columns(
        group_sum(w), group_sum(g), m_group, drop_fraction,
        nnz_target=nnz_target // group_size, k0=k0, gamma_sal=gamma_sal,
    )  # fmt: skip
    expand = lambda a: jnp.repeat(a, group_size, axis=-1, total_repeat_length=n_out)
    new = expand(new_g)
    # A kept group connection is new to any column where `mask` lacked it (a mask that was not group-shared):
    # mark those grown too, so their weights and moments start from zero like every other new connection.
    grown = expand(grown_g) | (new & ~m)
    return new.reshape(shape), grown.reshape(shape)


def _srigl_columns(w, g, m, drop_fraction, *, nnz_target: int, k0: int, gamma_sal: float):
    """SRigL on [fan_in_dense, n_cols] arrays of |w|, |grad| and mask, one column per (group) neuron."""
    fan_in_dense = m.shape[0]
    nnz = jnp.sum(m, dtype=jnp.int32)
    n_prune = _prune_count(nnz, drop_fraction)
    n_keep = nnz - n_prune

    # 1. Saliency over the whole layer.
    keep_mag = top_n_mask(w, n_keep, valid=m)
    grow_sal = top_n_mask(g, n_prune)  # over the whole layer: may overlap the kept set (spec §1.2)
    salient_per_neuron = jnp.sum(keep_mag | grow_sal, axis=0, dtype=jnp.int32)  # c_i

    # 2. Ablation with the minimum-survivor clamp.
    tau = 0 if gamma_sal == 0 else max(1, int(gamma_sal * k0))
    min_active = -(-nnz_target // fan_in_dense)  # ceil
    # If fewer than min_active neurons reach tau, lower tau to the min_active-th largest c_i (so neurons
    # tied at that count all survive, as lowering the threshold implies).
    most_salient = top_n_mask(salient_per_neuron.astype(jnp.float32), min_active)
    kth_largest = jnp.min(jnp.where(most_salient, salient_per_neuron, jnp.iinfo(jnp.int32).max))
    survivors = salient_per_neuron >= jnp.minimum(tau, kth_largest)

    # 3. New fan-in.
    n_active = jnp.sum(survivors, dtype=jnp.int32)
    k_new = nnz_target // n_active

    # 4. Drop: global magnitude among survivors, then cap each neuron at k'. Each selection is skipped when
    # it cannot change anything (the usual case), which halves the cost of an update: with every neuron
    # surviving the global selection is the saliency one (same scores, n and candidates), and a neuron
    # holding at most k' kept weights keeps all of them.
    keep = lax.cond(jnp.all(survivors), lambda: keep_mag, lambda: top_n_mask(w, n_keep, valid=m & survivors[None, :]))
    keep = lax.cond(
        jnp.any(jnp.sum(keep, axis=0, dtype=jnp.int32) > k_new),
        lambda: top_n_mask(w, k_new, valid=keep, axis=0),
        lambda: keep,
    )

    # 5. Grow every surviving neuron back to exactly k' by |grad|.
    missing = jnp.where(survivors, k_new - jnp.sum(keep, axis=0, dtype=jnp.int32), 0)
    grow = top_n_mask(g, missing, valid=~keep & survivors[None, :], axis=0)

    return keep | grow, grow
