"""apply_masks, density / density_report and mask-tree validation."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.masks import apply_masks, check_masks_match, density, density_report, num_active


def _params():
    rng = np.random.default_rng(0)
    return {
        "dense": {"kernel": rng.standard_normal((6, 5)).astype(np.float32), "bias": np.arange(1.0, 6.0)},
        "conv": {"kernel": jnp.asarray(rng.standard_normal((3, 3, 2, 4)), jnp.bfloat16)},
    }


def _masks(params):
    rng = np.random.default_rng(1)
    return {
        "dense": {"kernel": rng.random((6, 5)) < 0.4, "bias": None},
        "conv": {"kernel": jnp.asarray(rng.random((3, 3, 2, 4)) < 0.7)},
    }


def test_apply_masks_zeros_exactly_the_masked_entries():
    params = _params()
    masks = _masks(params)
    out = apply_masks(params, masks)
    for name in ("dense", "conv"):
        p = np.asarray(params[name]["kernel"], np.float32)
        m = np.asarray(masks[name]["kernel"])
        got = out[name]["kernel"]
        assert got.shape == p.shape and got.dtype == jnp.asarray(params[name]["kernel"]).dtype
        got = np.asarray(got, np.float32)
        np.testing.assert_array_equal(got[~m], 0.0)
        np.testing.assert_array_equal(got[m], p[m])  # kept entries unchanged, bit for bit
    # None-mask leaves pass through untouched.
    np.testing.assert_array_equal(np.asarray(out["dense"]["bias"]), params["dense"]["bias"])
    assert np.asarray(out["dense"]["bias"]).dtype == params["dense"]["bias"].dtype


def test_apply_masks_is_idempotent_and_all_true_is_identity():
    params = _params()
    masks = _masks(params)
    once = apply_masks(params, masks)
    twice = apply_masks(once, masks)
    np.testing.assert_array_equal(np.asarray(once["dense"]["kernel"]), np.asarray(twice["dense"]["kernel"]))
    ones = {
        "dense": {"kernel": np.ones((6, 5), bool), "bias": None},
        "conv": {"kernel": np.ones((3, 3, 2, 4), bool)},
    }
    same = apply_masks(params, ones)
    np.testing.assert_array_equal(np.asarray(same["dense"]["kernel"]), params["dense"]["kernel"])


def test_apply_masks_rejects_mismatched_trees():
    params = _params()
    masks = _masks(params)
    missing = {"dense": masks["dense"]}
    with pytest.raises(ValueError, match="masks must have the same tree structure as params"):
        apply_masks(params, missing)
    renamed = {"dense": masks["dense"], "conv2": masks["conv"]}
    with pytest.raises(ValueError, match="tree structure"):
        apply_masks(params, renamed)
    bad_shape = {"dense": {"kernel": np.ones((5, 6), bool), "bias": None}, "conv": masks["conv"]}
    with pytest.raises(ValueError, match=r"masks\['dense'\]\['kernel'\] has shape \(5, 6\)"):
        apply_masks(params, bad_shape)
    bad_dtype = {"dense": {"kernel": np.ones((6, 5), np.float32), "bias": None}, "conv": masks["conv"]}
    with pytest.raises(ValueError, match=r"masks\['dense'\]\['kernel'\] must be a bool array"):
        apply_masks(params, bad_dtype)
    int_dtype = {"dense": {"kernel": np.ones((6, 5), np.int32), "bias": None}, "conv": masks["conv"]}
    with pytest.raises(ValueError, match="bool"):
        apply_masks(params, int_dtype)
    with pytest.raises(ValueError, match="bool"):
        check_masks_match(params, bad_dtype)


def test_density_report_numbers():
    params = _params()
    masks = _masks(params)
    nnz_d = int(masks["dense"]["kernel"].sum())
    nnz_c = int(np.asarray(masks["conv"]["kernel"]).sum())
    rep = density_report(masks, params)
    leaves = rep["leaves"]
    assert leaves["['dense']['kernel']"] == {"shape": (6, 5), "size": 30, "nnz": nnz_d, "density": nnz_d / 30}
    assert leaves["['conv']['kernel']"] == {
        "shape": (3, 3, 2, 4),
        "size": 72,
        "nnz": nnz_c,
        "density": nnz_c / 72,
    }
    assert leaves["['dense']['bias']"] == {"shape": (5,), "size": 5, "nnz": 5, "density": 1.0}
    assert rep["overall_masked"] == pytest.approx((nnz_d + nnz_c) / 102, abs=1e-15)
    assert rep["overall_all"] == pytest.approx((nnz_d + nnz_c + 5) / 107, abs=1e-15)

    rep_np = density_report(masks)
    assert rep_np["overall_all"] is None
    assert rep_np["overall_masked"] == pytest.approx((nnz_d + nnz_c) / 102, abs=1e-15)
    assert "['dense']['bias']" not in rep_np["leaves"]

    assert density(masks["dense"]["kernel"]) == pytest.approx(nnz_d / 30, abs=1e-15)
    assert density(None) == 1.0
    with pytest.raises(ValueError, match="bool"):
        density(np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="bool"):
        density_report({"a": np.ones((2, 2), np.float32)})
    with pytest.raises(ValueError, match="tree structure"):
        density_report({"dense": masks["dense"]}, params)


@pytest.mark.parametrize(
    ("size", "sparsity", "expected"),
    [(1000, 0.9, 100), (1000, 0.0, 1000), (1000, 0.5, 500), (1000, 0.95, 50), (91, 0.9, 9), (3, 0.5, 1)],
)
def test_num_active(size, sparsity, expected):
    assert num_active(size, sparsity) == expected


def test_num_active_rejects_bad_input():
    with pytest.raises(ValueError, match="size"):
        num_active(0, 0.5)
    with pytest.raises(ValueError, match="sparsity"):
        num_active(10, 1.0)
