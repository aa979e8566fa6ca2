"""Initial factor masks: one global magnitude threshold (fips.md §5, check 8) and N:M along the rank axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.sharing import global_magnitude_masks, nm_factor_masks


def test_global_threshold_exact_total_and_non_uniform_layers():
    rng = np.random.default_rng(0)
    # Three "layers" with different scales: one threshold keeps more of the large one.
    factors = {
        "a": jnp.asarray(rng.standard_normal((6, 20)), jnp.float32),
        "b": jnp.asarray(3.0 * rng.standard_normal((6, 20)), jnp.float32),
        "c": jnp.asarray(0.3 * rng.standard_normal((6, 20)), jnp.float32),
        "dense": None,
    }
    masks = global_magnitude_masks(factors, 0.75)
    assert masks["dense"] is None
    nnz = {k: int(masks[k].sum()) for k in "abc"}
    assert sum(nnz.values()) == 90  # floor(360 * 0.25)
    assert nnz["b"] > nnz["a"] > nnz["c"]  # non-uniform per-layer sparsity
    # One threshold: every kept |w| is >= every pruned |w| across all factors.
    kept = np.concatenate([np.abs(np.asarray(factors[k]))[np.asarray(masks[k])] for k in "abc"])
    pruned = np.concatenate([np.abs(np.asarray(factors[k]))[~np.asarray(masks[k])] for k in "abc"])
    assert kept.min() >= pruned.max()


def test_ties_go_to_the_lower_index_in_flattening_order():
    factors = [jnp.ones((2, 3)), jnp.ones((2, 3))]
    masks = global_magnitude_masks(factors, 0.5)  # keep 6 of 12 equal weights: the first leaf, all of it
    np.testing.assert_array_equal(masks[0], True)
    np.testing.assert_array_equal(masks[1], False)
    again = jax.jit(global_magnitude_masks, static_argnums=1)(factors, 0.5)
    np.testing.assert_array_equal(again[0], masks[0])


def test_zero_sparsity_keeps_everything():
    masks = global_magnitude_masks([jnp.arange(6.0).reshape(2, 3)], 0.0)
    assert bool(jnp.all(masks[0]))


def test_nm_along_the_rank_axis():
    rng = np.random.default_rng(1)
    v = jnp.asarray(rng.standard_normal((8, 5)), jnp.float32)  # [r, h]
    (mask,) = nm_factor_masks([v], 1, 4)
    groups = np.asarray(mask).reshape(2, 4, 5)  # rank groups of 4 per column
    np.testing.assert_array_equal(groups.sum(axis=1), 1)
    best = np.abs(np.asarray(v)).reshape(2, 4, 5).argmax(axis=1)
    np.testing.assert_array_equal(groups.argmax(axis=1), best)


def test_errors():
    with pytest.raises(ValueError, match="sparsity"):
        global_magnitude_masks([jnp.ones((2, 2))], 1.0)
    with pytest.raises(ValueError, match="no array leaf"):
        global_magnitude_masks([None], 0.5)
    with pytest.raises(ValueError, match="m=4 does not divide"):
        nm_factor_masks([jnp.ones((6, 2))], 1, 4)
