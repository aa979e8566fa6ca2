"""Mask builders (random, magnitude, global magnitude, N:M, constant fan-in) against numpy references."""

import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.masks import (
    fan_in_for_sparsity,
    fan_in_mask,
    fan_in_masks,
    global_magnitude_masks,
    magnitude_mask,
    magnitude_masks,
    nm_mask,
    nm_masks,
    random_fan_in_mask,
    random_mask,
    random_masks,
    topk_mask,
)

# ----------------------------------------------------------------------------------------- references


def floor_keep(size, sparsity):
    """floor(size * (1 - sparsity)) with the sparsity read as the decimal it was written as."""
    return math.floor(size * (1 - Fraction(repr(float(sparsity)))))


def topk_reference(scores, k):
    """Top-k by score, ties broken towards the lower flat index."""
    flat = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-flat, kind="stable")
    keep = np.zeros(flat.size, bool)
    keep[order[:k]] = True
    return keep.reshape(np.shape(scores))


def nm_reference(scores, n, m, axis):
    moved = np.moveaxis(np.asarray(scores, np.float64), axis, -1)
    groups = moved.reshape(-1, m)
    keep = np.zeros(groups.shape, bool)
    for g in range(groups.shape[0]):
        keep[g, np.argsort(-groups[g], kind="stable")[:n]] = True
    return np.moveaxis(keep.reshape(moved.shape), -1, axis)


def fan_in_reference(scores, k):
    scores = np.asarray(scores, np.float64)
    cols = scores.reshape(-1, scores.shape[-1])
    keep = np.zeros(cols.shape, bool)
    for j in range(cols.shape[1]):
        keep[np.argsort(-cols[:, j], kind="stable")[:k], j] = True
    return keep.reshape(scores.shape)


def tied_weights(shape, seed=0):
    """Small integer-valued weights with many ties in |w| (both signs)."""
    return np.random.default_rng(seed).integers(-4, 5, size=shape).astype(np.float32)


def distinct_weights(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------------------------- random

SHAPES = [(1000,), (10, 100), (7, 13), (3, 3, 4, 8), (64,)]
SPARSITIES = [0.0, 0.5, 0.9, 0.95]


@pytest.mark.parametrize("shape", SHAPES)
def test_random_mask_exact_count(key, shape):
    size = math.prod(shape)
    for s in SPARSITIES:
        mask = np.asarray(random_mask(key, shape, s))
        assert mask.shape == shape and mask.dtype == np.bool_
        assert int(mask.sum()) == floor_keep(size, s), (shape, s)


def test_random_mask_float_rounding_case(key):
    # 1000 * (1 - 0.9) is 99.99999999999997 in binary floating point; the intended count is 100.
    assert int(np.asarray(random_mask(key, (1000,), 0.9)).sum()) == 100
    assert int(np.asarray(random_mask(key, (10, 100), 0.9)).sum()) == 100
    assert int(np.asarray(magnitude_mask(distinct_weights((1000,)), 0.9)).sum()) == 100


def test_random_mask_keeps_at_least_one(key):
    # Documented floor: at least one weight survives even when floor(size * (1 - s)) is 0.
    assert int(np.asarray(random_mask(key, (10,), 0.95)).sum()) == 1


def test_random_mask_deterministic_per_key(key):
    a = np.asarray(random_mask(key, (10, 100), 0.5))
    b = np.asarray(random_mask(key, (10, 100), 0.5))
    c = np.asarray(random_mask(jax.random.key(1), (10, 100), 0.5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_masks_tree(key):
    params = {"w1": np.zeros((10, 100), np.float32), "b1": np.zeros((100,)), "w2": np.zeros((7, 13))}
    masks = random_masks(key, params, 0.9)
    assert masks["b1"] is None
    assert int(np.asarray(masks["w1"]).sum()) == 100
    assert int(np.asarray(masks["w2"]).sum()) == floor_keep(91, 0.9)
    masks2 = random_masks(key, params, {"w1": 0.5, "b1": None, "w2": None})
    assert masks2["w2"] is None and masks2["b1"] is None
    assert int(np.asarray(masks2["w1"]).sum()) == 500


# ------------------------------------------------------------------------------------------ magnitude


@pytest.mark.parametrize("shape", [(1000,), (7, 13), (3, 3, 4, 8)])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9])
def test_magnitude_mask_matches_numpy_with_ties(shape, sparsity):
    w = tied_weights(shape)
    got = np.asarray(magnitude_mask(jnp.asarray(w), sparsity))
    np.testing.assert_array_equal(got, topk_reference(np.abs(w), floor_keep(w.size, sparsity)))


def test_magnitude_mask_distinct_values():
    w = distinct_weights((10, 100), seed=3)
    got = np.asarray(magnitude_mask(w, 0.95))
    assert int(got.sum()) == 50
    thresh = np.sort(np.abs(w).ravel())[-50]
    np.testing.assert_array_equal(got, np.abs(w) >= thresh)


def test_topk_mask_ties_lower_index_wins():
    scores = jnp.array([1.0, 3.0, 3.0, 2.0, 3.0, 0.0])
    np.testing.assert_array_equal(np.asarray(topk_mask(scores, 2)), [0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(np.asarray(topk_mask(scores, 0)), np.zeros(6, bool))
    with pytest.raises(ValueError, match="k must be"):
        topk_mask(scores, 7)


def test_magnitude_masks_tree():
    params = {"a": tied_weights((7, 13), 1), "b": tied_weights((13,), 2), "c": tied_weights((3, 3, 4, 8), 3)}
    masks = magnitude_masks(params, {"a": 0.5, "b": None, "c": 0.9})
    assert masks["b"] is None
    np.testing.assert_array_equal(np.asarray(masks["a"]), topk_reference(np.abs(params["a"]), 45))
    np.testing.assert_array_equal(np.asarray(masks["c"]), topk_reference(np.abs(params["c"]), 28))


def test_global_magnitude_masks_matches_numpy():
    params = {
        "a": tied_weights((7, 13), 11),
        "bias": tied_weights((13,), 12),
        "c": {"kernel": tied_weights((3, 3, 4, 8), 13)},
        "d": distinct_weights((13, 5), 14) * 4,
    }
    sparsity = 0.8
    masks = global_magnitude_masks(params, sparsity)
    assert masks["bias"] is None
    # Reference: one top-k over the eligible leaves concatenated in pytree-flatten order.
    names = [("a",), ("c", "kernel"), ("d",)]
    leaves = [params["a"], params["c"]["kernel"], params["d"]]
    flat = np.concatenate([np.abs(leaf).ravel() for leaf in leaves])
    keep = topk_reference(flat, floor_keep(flat.size, sparsity))
    offset = 0
    total = 0
    for name, leaf in zip(names, leaves, strict=True):
        got = masks
        for part in name:
            got = got[part]
        got = np.asarray(got)
        np.testing.assert_array_equal(got, keep[offset : offset + leaf.size].reshape(leaf.shape), name)
        offset += leaf.size
        total += int(got.sum())
    assert total == floor_keep(flat.size, sparsity)
    # Per-leaf densities differ (it is a global threshold, not uniform).
    assert len({round(float(np.asarray(masks[k]).mean()), 6) for k in ("a", "d")}) == 2


def test_global_magnitude_masks_no_eligible_leaf():
    with pytest.raises(ValueError, match="eligible"):
        global_magnitude_masks({"b": np.zeros((4,))}, 0.5)


# ------------------------------------------------------------------------------------------------ N:M


@pytest.mark.parametrize(
    ("shape", "n", "m", "axis"),
    [
        ((8, 6), 2, 4, 0),
        ((8, 6), 1, 2, -2),
        ((8, 6), 2, 3, 1),
        ((8, 6), 1, 3, -1),
        ((3, 3, 8, 4), 2, 4, -2),
        ((3, 3, 8, 4), 1, 3, 1),
    ],
)
def test_nm_mask_matches_numpy(shape, n, m, axis):
    w = tied_weights(shape, seed=sum(shape) + n + m)
    got = np.asarray(nm_mask(jnp.abs(jnp.asarray(w)), n, m, axis=axis))
    assert got.shape == shape and got.dtype == np.bool_
    moved = np.moveaxis(got, axis, -1)
    counts = moved.reshape(*moved.shape[:-1], moved.shape[-1] // m, m).sum(-1)
    assert np.all(counts == n)
    np.testing.assert_array_equal(got, nm_reference(np.abs(w), n, m, axis))


def test_nm_mask_n_equals_m_is_all_ones():
    w = distinct_weights((8, 6))
    np.testing.assert_array_equal(np.asarray(nm_mask(jnp.abs(w), 4, 4, axis=0)), np.ones((8, 6), bool))
    np.testing.assert_array_equal(np.asarray(nm_mask(jnp.abs(w), 3, 3, axis=1)), np.ones((8, 6), bool))


def test_nm_masks_tree():
    params = {"k": tied_weights((8, 6), 5), "b": tied_weights((6,), 6), "conv": tied_weights((3, 3, 8, 4), 7)}
    masks = nm_masks(params, 2, 4)
    assert masks["b"] is None
    np.testing.assert_array_equal(np.asarray(masks["k"]), nm_reference(np.abs(params["k"]), 2, 4, -2))
    np.testing.assert_array_equal(np.asarray(masks["conv"]), nm_reference(np.abs(params["conv"]), 2, 4, -2))


def test_nm_mask_bad_arguments():
    scores = jnp.ones((8, 6))
    with pytest.raises(ValueError, match=r"n must satisfy 0 <= n <= m"):
        nm_mask(scores, 5, 4, axis=0)
    with pytest.raises(ValueError, match=r"m=3 does not divide"):
        nm_mask(scores, 1, 3, axis=0)
    with pytest.raises(ValueError, match=r"m=4 does not divide"):
        nm_mask(scores, 2, 4, axis=1)
    with pytest.raises(ValueError, match="m must be positive"):
        nm_mask(scores, 0, 0, axis=0)
    with pytest.raises(ValueError, match="n must be an int"):
        nm_mask(scores, 2.0, 4, axis=0)
    with pytest.raises(ValueError, match="m must be an int"):
        nm_mask(scores, 2, "4", axis=0)
    with pytest.raises(ValueError, match="axis"):
        nm_mask(scores, 2, 4, axis=2)
    with pytest.raises(ValueError, match=r"n must satisfy"):
        nm_masks({"k": scores}, 5, 4)


# ------------------------------------------------------------------------------------ constant fan-in


@pytest.mark.parametrize(("shape", "k"), [((12, 6), 4), ((12, 6), 12), ((12, 6), 1), ((3, 3, 4, 8), 5)])
def test_fan_in_mask_matches_numpy(shape, k):
    w = tied_weights(shape, seed=k)
    got = np.asarray(fan_in_mask(jnp.abs(jnp.asarray(w)), k))
    assert got.shape == shape and got.dtype == np.bool_
    # Fan-in counts over every non-output axis (h * w * in for a conv kernel).
    np.testing.assert_array_equal(got.reshape(-1, shape[-1]).sum(0), np.full(shape[-1], k))
    np.testing.assert_array_equal(got, fan_in_reference(np.abs(w), k))


def test_random_fan_in_mask(key):
    shape = (3, 3, 4, 8)
    a = np.asarray(random_fan_in_mask(key, shape, 5))
    b = np.asarray(random_fan_in_mask(key, shape, 5))
    c = np.asarray(random_fan_in_mask(jax.random.key(1), shape, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    for mask in (a, c):
        assert mask.shape == shape
        np.testing.assert_array_equal(mask.reshape(36, 8).sum(0), np.full(8, 5))
    # Chosen independently per neuron: not all columns pick the same inputs.
    cols = a.reshape(36, 8).T
    assert len({c.tobytes() for c in cols}) > 1


@pytest.mark.parametrize(("shape", "sparsity"), [((12, 6), 0.5), ((12, 6), 0.9), ((3, 3, 4, 8), 0.8)])
def test_fan_in_for_sparsity(shape, sparsity):
    size = math.prod(shape)
    assert fan_in_for_sparsity(shape, sparsity) == floor_keep(size, sparsity) // shape[-1]


def test_fan_in_masks_tree(key):
    params = {"k": tied_weights((12, 6), 21), "b": tied_weights((6,), 22), "conv": tied_weights((3, 3, 4, 8), 23)}
    k_dense = floor_keep(72, 0.5) // 6  # 6
    k_conv = floor_keep(288, 0.8) // 8  # 7
    masks = fan_in_masks(params, {"k": 0.5, "b": None, "conv": 0.8})
    assert masks["b"] is None
    np.testing.assert_array_equal(np.asarray(masks["k"]), fan_in_reference(np.abs(params["k"]), k_dense))
    np.testing.assert_array_equal(np.asarray(masks["conv"]), fan_in_reference(np.abs(params["conv"]), k_conv))
    rmasks = fan_in_masks(params, {"k": 0.5, "b": None, "conv": 0.8}, key=key)
    np.testing.assert_array_equal(np.asarray(rmasks["k"]).sum(0), np.full(6, k_dense))
    np.testing.assert_array_equal(np.asarray(rmasks["conv"]).reshape(36, 8).sum(0), np.full(8, k_conv))
    again = fan_in_masks(params, {"k": 0.5, "b": None, "conv": 0.8}, key=key)
    np.testing.assert_array_equal(np.asarray(rmasks["conv"]), np.asarray(again["conv"]))


def test_fan_in_bad_arguments(key):
    scores = jnp.ones((12, 6))
    with pytest.raises(ValueError, match="fan_in"):
        fan_in_mask(scores, 13)
    with pytest.raises(ValueError, match="fan_in"):
        fan_in_mask(scores, 0)
    with pytest.raises(ValueError, match="fan_in"):
        fan_in_mask(scores, 2.0)
    with pytest.raises(ValueError, match="fan_in"):
        random_fan_in_mask(key, (3, 3, 4, 8), 37)
    with pytest.raises(ValueError, match="fan-in 0"):
        fan_in_for_sparsity((12, 6), 0.95)
    with pytest.raises(ValueError, match="fan-in 0"):
        fan_in_masks({"k": scores}, 0.95)
    with pytest.raises(ValueError, match="ndim >= 2"):
        fan_in_mask(jnp.ones((12,)), 2)


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.5", True, 2])
def test_builders_reject_bad_sparsity(key, bad):
    w = jnp.ones((7, 13))
    with pytest.raises(ValueError, match="sparsity"):
        random_mask(key, (7, 13), bad)
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_mask(w, bad)
    with pytest.raises(ValueError, match="sparsity"):
        global_magnitude_masks({"w": w}, bad)
    with pytest.raises(ValueError, match="sparsit"):
        random_masks(key, {"w": w}, bad)
    with pytest.raises(ValueError, match="sparsit"):
        magnitude_masks({"w": w}, {"w": bad})
    with pytest.raises(ValueError, match="sparsity"):
        fan_in_for_sparsity((7, 13), bad)


@pytest.mark.parametrize("bad_key", [0, "key", np.array([0, 1], np.uint32), jnp.zeros((3,), jnp.uint32)])
def test_builders_reject_bad_key(bad_key):
    with pytest.raises(ValueError, match="key"):
        random_mask(bad_key, (7, 13), 0.5)
    with pytest.raises(ValueError, match="key"):
        random_fan_in_mask(bad_key, (7, 13), 2)
    with pytest.raises(ValueError, match="key"):
        random_masks(bad_key, {"w": jnp.ones((7, 13))}, 0.5)
    with pytest.raises(ValueError, match="key"):
        fan_in_masks({"w": jnp.ones((7, 13))}, 0.5, key=bad_key)


def test_builders_reject_non_array_weights():
    with pytest.raises(ValueError, match="weights"):
        magnitude_mask([[1.0, 2.0]], 0.5)
    with pytest.raises(ValueError, match="scores"):
        nm_mask([[1.0, 2.0]], 1, 2, axis=1)


def test_tree_builders_reject_mismatched_sparsity_tree(key):
    params = {"a": jnp.ones((7, 13)), "b": jnp.ones((4, 4))}
    with pytest.raises(ValueError, match="sparsities"):
        magnitude_masks(params, {"a": 0.5})
    with pytest.raises(ValueError, match="filter_fn"):
        random_masks(key, params, {"a": 0.5, "b": 0.5}, filter_fn=lambda p, leaf: True)


# ------------------------------------------------------------------------------------------------ jit


def test_array_builders_jit_match_eager(key):
    w = jnp.asarray(tied_weights((12, 8), 31))
    cases = [
        (jax.jit(random_mask, static_argnums=(1, 2)), (key, (12, 8), 0.9), random_mask),
        (jax.jit(magnitude_mask, static_argnums=1), (w, 0.75), magnitude_mask),
        (jax.jit(nm_mask, static_argnums=(1, 2), static_argnames="axis"), (jnp.abs(w), 2, 4), nm_mask),
        (jax.jit(fan_in_mask, static_argnums=1), (jnp.abs(w), 3), fan_in_mask),
        (jax.jit(random_fan_in_mask, static_argnums=(1, 2)), (key, (12, 8), 5), random_fan_in_mask),
        (jax.jit(topk_mask, static_argnums=1), (jnp.abs(w).ravel(), 17), topk_mask),
    ]
    for jitted, args, eager in cases:
        got = np.asarray(jitted(*args))
        np.testing.assert_array_equal(got, np.asarray(eager(*args)), eager.__name__)
    # And the jitted results against the numpy references.
    np.testing.assert_array_equal(np.asarray(cases[1][0](w, 0.75)), topk_reference(np.abs(w), 24))
    np.testing.assert_array_equal(np.asarray(cases[2][0](jnp.abs(w), 2, 4)), nm_reference(np.abs(w), 2, 4, -2))
    np.testing.assert_array_equal(np.asarray(cases[3][0](jnp.abs(w), 3)), fan_in_reference(np.abs(w), 3))
    assert int(np.asarray(cases[0][0](key, (12, 8), 0.9)).sum()) == floor_keep(96, 0.9)


def test_split_flat_mask_inverts_the_concatenation_and_checks_sizes():
    from jaxsparse.masks import split_flat_mask

    rng = np.random.default_rng(0)
    leaves = [rng.random((3, 4)) > 0.5, np.zeros(5), rng.random((2, 2, 2)) > 0.5]
    selected = [True, False, True]
    flat = np.concatenate([leaves[0].reshape(-1), leaves[2].reshape(-1)])
    out = split_flat_mask(flat, leaves, selected)
    assert out[1] is None
    np.testing.assert_array_equal(out[0], leaves[0])
    np.testing.assert_array_equal(out[2], leaves[2])
    with pytest.raises(ValueError, match="flat must be 1-D"):
        split_flat_mask(flat[:-1], leaves, selected)
    with pytest.raises(ValueError, match="selected must have one flag per leaf"):
        split_flat_mask(flat, leaves, selected[:2])
