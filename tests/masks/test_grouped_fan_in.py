"""Group-shared constant fan-in masks (G consecutive output neurons share one input set) and their validator."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.masks import (
    fan_in_for_sparsity,
    fan_in_mask,
    fan_in_masks,
    grouped_fan_in_mask,
    is_grouped_fan_in,
    random_fan_in_mask,
    random_grouped_fan_in_mask,
)


def tied_weights(shape, seed=0):
    """Small integer-valued weights: many ties, and group sums stay exact in float32."""
    return np.random.default_rng(seed).integers(-4, 5, size=shape).astype(np.float32)


def grouped_reference(scores, k, group_size):
    """Per group: sum the scores over its G columns (float64), keep the k largest (ties: lower input index)."""
    scores = np.asarray(scores, np.float64)
    n_out = scores.shape[-1]
    cols = scores.reshape(-1, n_out)
    keep = np.zeros(cols.shape, bool)
    for start in range(0, n_out, group_size):
        summed = cols[:, start : start + group_size].sum(axis=1)
        keep[np.argsort(-summed, kind="stable")[:k], start : start + group_size] = True
    return keep.reshape(scores.shape)


def check_grouped(mask, shape, k, group_size):
    """The invariants, checked directly (independently of is_grouped_fan_in)."""
    mask = np.asarray(mask)
    assert mask.shape == shape and mask.dtype == np.bool_
    cols = mask.reshape(-1, shape[-1])
    np.testing.assert_array_equal(cols.sum(axis=0), np.full(shape[-1], k))
    for start in range(0, shape[-1], group_size):
        for j in range(start + 1, start + group_size):
            np.testing.assert_array_equal(cols[:, j], cols[:, start])
    assert is_grouped_fan_in(mask, group_size, fan_in=k)


# --------------------------------------------------------------------------------------- magnitude


@pytest.mark.parametrize(
    ("shape", "k", "group_size"),
    [((12, 8), 4, 2), ((12, 8), 5, 4), ((12, 8), 12, 8), ((12, 8), 1, 8), ((3, 3, 2, 8), 7, 4), ((5, 6), 2, 3)],
)
def test_grouped_magnitude_matches_numpy(shape, k, group_size):
    w = tied_weights(shape, seed=k + group_size)
    got = grouped_fan_in_mask(jnp.abs(jnp.asarray(w)), k, group_size)
    check_grouped(got, shape, k, group_size)
    np.testing.assert_array_equal(np.asarray(got), grouped_reference(np.abs(w), k, group_size))


def test_grouped_magnitude_sums_over_the_group():
    """The group's choice follows the summed score, not any single column's own top-k."""
    # 3 inputs x 2 neurons, one group. Column 0 alone prefers input 0, column 1 alone prefers input 2;
    # summed |w| = [3, 2.5, 4] selects input 2 for both at k = 1, and inputs 2, 0 at k = 2.
    w = np.array([[3.0, 0.0], [1.5, 1.0], [0.0, 4.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(grouped_fan_in_mask(w, 1, 2)), [[0, 0], [0, 0], [1, 1]])
    np.testing.assert_array_equal(np.asarray(grouped_fan_in_mask(w, 2, 2)), [[1, 1], [0, 0], [1, 1]])
    assert not np.array_equal(np.asarray(fan_in_mask(w, 1)), np.asarray(grouped_fan_in_mask(w, 1, 2)))


def test_grouped_magnitude_sums_bf16_in_float32():
    # Summed in bf16, 256 + 1 rounds to 256 and ties input 0 (lower index wins); in float32 input 1 wins.
    w = jnp.asarray([[256.0, 0.0], [256.0, 1.0]], jnp.bfloat16)
    np.testing.assert_array_equal(np.asarray(grouped_fan_in_mask(w, 1, 2)), [[0, 0], [1, 1]])


# ------------------------------------------------------------------------------------------ random


def test_random_grouped(key):
    shape, k, group_size = (3, 3, 4, 8), 5, 2
    a = random_grouped_fan_in_mask(key, shape, k, group_size)
    b = random_grouped_fan_in_mask(key, shape, k, group_size)
    c = random_grouped_fan_in_mask(jax.random.key(1), shape, k, group_size)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))
    for mask in (a, c):
        check_grouped(mask, shape, k, group_size)
    # Chosen independently per group: the 4 groups do not all pick the same inputs.
    groups = np.asarray(a).reshape(36, 8)[:, ::group_size].T
    assert len({g.tobytes() for g in groups}) > 1


# --------------------------------------------------------------------------- group_size = 1 is fan-in


@pytest.mark.parametrize("shape", [(12, 6), (3, 3, 4, 8)])
def test_group_size_one_is_constant_fan_in(key, shape):
    scores = jnp.abs(jnp.asarray(tied_weights(shape, seed=3)))
    np.testing.assert_array_equal(np.asarray(grouped_fan_in_mask(scores, 4, 1)), np.asarray(fan_in_mask(scores, 4)))
    np.testing.assert_array_equal(
        np.asarray(random_grouped_fan_in_mask(key, shape, 4, 1)), np.asarray(random_fan_in_mask(key, shape, 4))
    )


def test_fan_in_masks_group_size(key):
    params = {"k": tied_weights((12, 6), 21), "b": tied_weights((6,), 22)}
    sparsities = {"k": 0.5, "b": None}
    k = fan_in_for_sparsity((12, 6), 0.5)
    masks = fan_in_masks(params, sparsities, group_size=2)
    assert masks["b"] is None
    np.testing.assert_array_equal(np.asarray(masks["k"]), grouped_reference(np.abs(params["k"]), k, 2))
    check_grouped(fan_in_masks(params, sparsities, key=key, group_size=2)["k"], (12, 6), k, 2)
    np.testing.assert_array_equal(
        np.asarray(fan_in_masks(params, sparsities, key=key, group_size=1)["k"]),
        np.asarray(fan_in_masks(params, sparsities, key=key)["k"]),
    )
    with pytest.raises(ValueError, match="group_size=4 must divide n_out=6"):
        fan_in_masks(params, sparsities, group_size=4)


def test_grouped_builders_jit_match_eager(key):
    scores = jnp.abs(jnp.asarray(tied_weights((12, 8), 31)))
    jitted = jax.jit(grouped_fan_in_mask, static_argnums=(1, 2))
    np.testing.assert_array_equal(np.asarray(jitted(scores, 3, 4)), grouped_reference(np.asarray(scores), 3, 4))
    jitted_random = jax.jit(random_grouped_fan_in_mask, static_argnums=(1, 2, 3))
    np.testing.assert_array_equal(
        np.asarray(jitted_random(key, (12, 8), 5, 2)), np.asarray(random_grouped_fan_in_mask(key, (12, 8), 5, 2))
    )


# ------------------------------------------------------------------------------------- validator

R = lambda rows: np.array(rows, bool).T  # rows = output neurons -> the [in, out] layout


def test_is_grouped_fan_in_accepts_and_rejects():
    good = R([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0]])  # 2 groups of 2, fan-in 2
    assert is_grouped_fan_in(good, 2) and is_grouped_fan_in(good, 1) and is_grouped_fan_in(good, 2, fan_in=2)
    assert not is_grouped_fan_in(good, 4)  # the two groups differ
    assert not is_grouped_fan_in(good, 2, fan_in=3)
    split = R([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 0], [0, 1, 1, 0]])  # columns 0, 1 disagree
    assert not is_grouped_fan_in(split, 2) and is_grouped_fan_in(split, 1)
    uneven = R([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 1], [0, 1, 1, 1]])  # groups share, fan-ins 2 vs 3
    assert not is_grouped_fan_in(uneven, 2) and not is_grouped_fan_in(uneven, 2, allow_ablated=True)
    ablated = R([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert not is_grouped_fan_in(ablated, 2)
    assert is_grouped_fan_in(ablated, 2, allow_ablated=True)
    assert is_grouped_fan_in(ablated, 2, fan_in=2, allow_ablated=True)
    half_ablated = R([[1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 0]])  # a group cannot lose one column
    assert not is_grouped_fan_in(half_ablated, 2, allow_ablated=True)
    empty = np.zeros((4, 4), bool)
    assert not is_grouped_fan_in(empty, 2) and not is_grouped_fan_in(empty, 2, allow_ablated=True)
    conv = np.asarray(random_grouped_fan_in_mask(jax.random.key(0), (3, 3, 2, 8), 4, 4))
    assert is_grouped_fan_in(conv, 4, fan_in=4) and is_grouped_fan_in(jnp.asarray(conv), 2)


# --------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, None, 3])  # 3 does not divide n_out = 8
def test_bad_group_size(key, bad):
    with pytest.raises(ValueError, match="group_size"):
        grouped_fan_in_mask(jnp.ones((12, 8)), 2, bad)
    with pytest.raises(ValueError, match="group_size"):
        random_grouped_fan_in_mask(key, (12, 8), 2, bad)
    with pytest.raises(ValueError, match="group_size"):
        is_grouped_fan_in(np.ones((12, 8), bool), bad)
    with pytest.raises(ValueError, match="group_size"):
        fan_in_masks({"w": jnp.ones((12, 8))}, 0.5, group_size=bad)


def test_grouped_other_bad_arguments(key):
    with pytest.raises(ValueError, match="fan_in"):
        grouped_fan_in_mask(jnp.ones((12, 8)), 13, 2)
    with pytest.raises(ValueError, match="fan_in"):
        random_grouped_fan_in_mask(key, (12, 8), 0, 2)
    with pytest.raises(ValueError, match="ndim >= 2"):
        grouped_fan_in_mask(jnp.ones((8,)), 2, 2)
    with pytest.raises(ValueError, match="ndim >= 2"):
        random_grouped_fan_in_mask(key, (8,), 2, 2)
    with pytest.raises(ValueError, match="key"):
        random_grouped_fan_in_mask(jax.random.PRNGKey(0)[None], (12, 8), 2, 2)
    with pytest.raises(ValueError, match="scores"):
        grouped_fan_in_mask([[1.0, 2.0]], 1, 1)
    with pytest.raises(ValueError, match="bool"):
        is_grouped_fan_in(np.ones((4, 4)), 2)
    with pytest.raises(ValueError, match="ndim >= 2"):
        is_grouped_fan_in(np.ones((4,), bool), 2)
    with pytest.raises(ValueError, match="fan_in"):
        is_grouped_fan_in(np.ones((4, 4), bool), 2, fan_in=0)
