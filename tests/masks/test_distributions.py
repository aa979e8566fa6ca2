"""Uniform and ERK sparsity distributions against an independent numpy ERK solver."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.masks import erk_sparsities, random_masks, uniform_sparsities


def erk_reference(shapes, sparsity, power_scale=1.0, include_kernel=True):
    """RigL-style ERK: every layer whose density would exceed 1 is made dense at once, then eps re-solved."""
    sizes = np.array([math.prod(s) for s in shapes], dtype=np.float64)
    dims = [s if include_kernel else s[-2:] for s in shapes]
    raw = np.array([sum(d) / math.prod(d) for d in dims], dtype=np.float64) ** power_scale
    target = (1.0 - sparsity) * sizes.sum()
    dense = np.zeros(len(shapes), bool)
    while True:
        eps = (target - sizes[dense].sum()) / (raw[~dense] * sizes[~dense]).sum()
        over = ~dense & (eps * raw > 1.0)
        if not over.any():
            break
        dense |= over
    return np.where(dense, 1.0, eps * raw), dense


def _params(shapes):
    return {f"l{i}": np.zeros(s, np.float32) for i, s in enumerate(shapes)}


def _as_list(tree, n):
    return [tree[f"l{i}"] for i in range(n)]


ERK_CASES = [
    # (shapes, sparsity, expect some layer forced dense)
    ([(64, 32), (32, 16), (16, 10)], 0.9, False),
    ([(3, 3, 3, 16), (3, 3, 16, 32), (512, 10)], 0.8, False),
    # A tiny layer next to big ones at low sparsity: its ERK density exceeds 1 and must be redistributed.
    ([(4, 2), (256, 256), (256, 128)], 0.5, True),
    # Two rounds: several small layers saturate.
    ([(2, 2), (8, 4), (16, 16), (200, 300)], 0.3, True),
]


@pytest.mark.parametrize(("shapes", "sparsity", "forced"), ERK_CASES)
def test_erk_matches_numpy_reference(shapes, sparsity, forced):
    ref_density, ref_dense = erk_reference(shapes, sparsity)
    assert ref_dense.any() == forced  # the case really exercises (or avoids) redistribution
    out = erk_sparsities(_params(shapes), sparsity)
    got = np.array(_as_list(out, len(shapes)), dtype=np.float64)
    assert all(isinstance(s, float) for s in _as_list(out, len(shapes)))
    np.testing.assert_allclose(1.0 - got, ref_density, rtol=0, atol=1e-12)
    assert np.all(got >= 0.0) and np.all(got < 1.0)  # no density above 1
    np.testing.assert_array_equal(got[ref_dense], 0.0)
    sizes = np.array([math.prod(s) for s in shapes], dtype=np.float64)
    np.testing.assert_allclose(((1.0 - got) * sizes).sum(), (1.0 - sparsity) * sizes.sum(), rtol=1e-12)


def test_erk_redistribution_mask_counts(key):
    shapes = [(4, 2), (256, 256), (256, 128)]
    params = _params(shapes)
    sps = erk_sparsities(params, 0.5)
    assert sps["l0"] == 0.0
    masks = random_masks(key, params, sps)
    sizes = [math.prod(s) for s in shapes]
    nnz = [int(np.asarray(masks[f"l{i}"]).sum()) for i in range(len(shapes))]
    assert nnz[0] == sizes[0]
    for n, size, s in zip(nnz, sizes, _as_list(sps, 3), strict=True):
        expected = size * (1.0 - s)
        assert expected - 1 < n <= expected + 1e-6  # floor, up to float rounding of the ERK density
    total = sum(sizes)
    assert abs(sum(nnz) - 0.5 * total) <= len(shapes)


def test_erk_include_kernel_false_and_power_scale():
    shapes = [(3, 3, 8, 16), (5, 5, 16, 32), (800, 10)]
    ref, _ = erk_reference(shapes, 0.9, include_kernel=False)
    got = _as_list(erk_sparsities(_params(shapes), 0.9, include_kernel=False), 3)
    np.testing.assert_allclose(1.0 - np.array(got), ref, rtol=0, atol=1e-12)

    ref_half, _ = erk_reference(shapes, 0.9, power_scale=0.5)
    got_half = _as_list(erk_sparsities(_params(shapes), 0.9, power_scale=0.5), 3)
    np.testing.assert_allclose(1.0 - np.array(got_half), ref_half, rtol=0, atol=1e-12)

    # power_scale 0 is uniform.
    got_uniform = _as_list(erk_sparsities(_params(shapes), 0.9, power_scale=0.0), 3)
    np.testing.assert_allclose(got_uniform, [0.9, 0.9, 0.9], rtol=0, atol=1e-12)


def test_erk_zero_sparsity_is_dense():
    got = _as_list(erk_sparsities(_params([(4, 2), (64, 64)]), 0.0), 2)
    np.testing.assert_allclose(got, [0.0, 0.0], atol=1e-12)


def test_erk_skips_ineligible_leaves_and_accepts_shape_structs():
    params = {
        "dense": {"kernel": jax.ShapeDtypeStruct((64, 32), jnp.float32), "bias": np.zeros(32, np.float32)},
        "out": {"kernel": jax.ShapeDtypeStruct((32, 10), jnp.float32), "bias": np.zeros(10, np.float32)},
    }
    out = erk_sparsities(params, 0.8)
    assert out["dense"]["bias"] is None and out["out"]["bias"] is None
    ref, _ = erk_reference([(64, 32), (32, 10)], 0.8)
    np.testing.assert_allclose([1.0 - out["dense"]["kernel"], 1.0 - out["out"]["kernel"]], ref, rtol=0, atol=1e-12)


def test_uniform_sparsities():
    params = {"a": np.zeros((4, 5)), "b": np.zeros((5,)), "c": [np.zeros((2, 3, 4)), np.zeros(())]}
    out = uniform_sparsities(params, 0.75)
    assert out == {"a": 0.75, "b": None, "c": [0.75, None]}
    out = uniform_sparsities(params, 0.5, filter_fn=lambda path, leaf: jax.tree_util.keystr(path) == "['b']")
    assert out == {"a": None, "b": 0.5, "c": [None, None]}


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.5", True, None, 1.5])
def test_distributions_reject_bad_sparsity(bad):
    params = {"a": np.zeros((4, 5))}
    with pytest.raises(ValueError, match="sparsity"):
        uniform_sparsities(params, bad)
    with pytest.raises(ValueError, match="sparsity"):
        erk_sparsities(params, bad)


def test_erk_rejects_bad_power_scale_and_1d_eligible_leaf():
    params = {"a": np.zeros((4, 5))}
    with pytest.raises(ValueError, match="power_scale"):
        erk_sparsities(params, 0.5, power_scale=-1.0)
    with pytest.raises(ValueError, match="ndim >= 2"):
        erk_sparsities({"a": np.zeros((4,))}, 0.5, filter_fn=lambda p, leaf: True)
    with pytest.raises(ValueError, match="filter_fn"):
        uniform_sparsities(params, 0.5, filter_fn="not callable")
