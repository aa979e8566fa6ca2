"""to_condensed / from_condensed round trips against numpy, and their input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.condensed import CondensedWeight, from_condensed, to_condensed


def fan_in_mask_np(shape, k, ablated=(), seed=0):
    """Random constant fan-in mask (k per output column over the flattened fan-in); `ablated` columns empty."""
    rng = np.random.default_rng(seed)
    n_in = int(np.prod(shape[:-1]))
    mask = np.zeros((n_in, shape[-1]), bool)
    for j in range(shape[-1]):
        if j not in ablated:
            mask[rng.choice(n_in, k, replace=False), j] = True
    return mask.reshape(shape)


def kernel_np(shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize(
    ("shape", "k", "ablated"),
    [((12, 6), 4, ()), ((12, 6), 4, (1, 4)), ((12, 6), 12, (5,)), ((3, 3, 4, 8), 5, ()), ((3, 3, 4, 8), 5, (0, 7))],
)
def test_round_trip(shape, k, ablated):
    kernel, mask = kernel_np(shape), fan_in_mask_np(shape, k, ablated)
    w = to_condensed(jnp.asarray(kernel), jnp.asarray(mask))
    n_in, n_out = int(np.prod(shape[:-1])), shape[-1]
    active = np.array([j for j in range(n_out) if j not in ablated])
    assert isinstance(w, CondensedWeight)
    assert w.kernel_shape == shape and w.in_features == n_in and w.out_features == n_out
    assert w.fan_in == k and w.n_active == active.size
    assert w.indices.dtype == jnp.int32 and w.active_neurons.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(w.active_neurons), active)
    # Reference: for each active neuron, its kept flat input ids in ascending order and their weights.
    k2, m2 = kernel.reshape(n_in, n_out), mask.reshape(n_in, n_out)
    ref_idx = np.stack([np.flatnonzero(m2[:, j]) for j in active])
    np.testing.assert_array_equal(np.asarray(w.indices), ref_idx)
    np.testing.assert_array_equal(np.asarray(w.values), k2[ref_idx, active[:, None]])

    back_kernel, back_mask = from_condensed(w)
    assert back_kernel.shape == shape and back_mask.shape == shape and back_mask.dtype == jnp.bool_
    np.testing.assert_array_equal(np.asarray(back_mask), mask)
    np.testing.assert_array_equal(np.asarray(back_kernel), np.where(mask, kernel, 0.0))
    for j in ablated:  # ablated neurons come back as zero columns
        np.testing.assert_array_equal(np.asarray(back_kernel)[..., j], 0.0)


def test_int16_index_dtype():
    kernel, mask = kernel_np((12, 6)), fan_in_mask_np((12, 6), 4, (2,))
    w = to_condensed(kernel, mask, index_dtype=jnp.int16)
    assert w.indices.dtype == jnp.int16
    back_kernel, back_mask = from_condensed(w)
    np.testing.assert_array_equal(np.asarray(back_mask), mask)
    np.testing.assert_array_equal(np.asarray(back_kernel), np.where(mask, kernel, 0.0))


def test_condensed_weight_is_a_pytree():
    w = to_condensed(kernel_np((12, 6)), fan_in_mask_np((12, 6), 4, (3,)))
    leaves, treedef = jax.tree.flatten(w)
    assert len(leaves) == 3
    w2 = jax.tree.unflatten(treedef, leaves)
    assert w2.kernel_shape == (12, 6)
    doubled = jax.jit(lambda w: jax.tree.map(lambda a: a * 2, w))(w)
    np.testing.assert_array_equal(np.asarray(doubled.values), 2 * np.asarray(w.values))


def test_to_condensed_rejects_bad_masks():
    kernel = kernel_np((12, 6))
    mask = fan_in_mask_np((12, 6), 4)
    uneven = mask.copy()
    uneven[np.flatnonzero(~uneven[:, 2])[0], 2] = True  # column 2 keeps 5
    with pytest.raises(ValueError, match="constant fan-in"):
        to_condensed(kernel, uneven)
    with pytest.raises(ValueError, match="mask must be a bool array"):
        to_condensed(kernel, mask.astype(np.float32))
    with pytest.raises(ValueError, match="mask shape"):
        to_condensed(kernel, mask.T)
    with pytest.raises(ValueError, match="mask shape"):
        to_condensed(kernel, mask[:, :5])
    with pytest.raises(ValueError, match="ablated"):
        to_condensed(kernel, np.zeros((12, 6), bool))
    with pytest.raises(ValueError, match="kernel"):
        to_condensed(np.ones(12, np.float32), np.ones(12, bool))
    with pytest.raises(ValueError, match="index_dtype"):
        to_condensed(kernel, mask, index_dtype=jnp.float32)
    with pytest.raises(ValueError, match="index_dtype"):
        to_condensed(np.ones((200, 2), np.float32), np.ones((200, 2), bool), index_dtype=jnp.int8)
    with pytest.raises(ValueError, match="eagerly"):
        jax.jit(to_condensed)(jnp.asarray(kernel), jnp.asarray(mask))
    with pytest.raises(ValueError, match="CondensedWeight"):
        from_condensed((kernel, mask))
