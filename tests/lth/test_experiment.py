"""The sparse re-basin experiment end to end on a tiny digits MLP."""

import jax
import numpy as np
import pytest

from jaxsparse import lth, permute


@pytest.fixture(scope="module")
def result():
    return lth.lth_permutation_experiment(
        model="mlp",
        width=1,
        hidden=(32,),
        sparsities=(0.5, 0.8),
        seeds=(0, 1),
        dense_steps=60,
        imp_retrain_steps=10,
        imp_fraction=0.4,
        sparse_steps=40,
        rewind_step=5,
        batch_size=64,
    )


def test_structure_and_structural_checks(result):
    assert len(result["rows"]) == 2 * 2 * 3
    assert {r["method"] for r in result["rows"]} == {"lth", "naive", "permuted"}
    for r in result["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0
    assert len(result["summary"]) == 2 * 3
    for key in (
        "permutation_preserves_function_zero_diff",
        "permuted_mask_keeps_layer_density",
        "imp_mask_hits_target_density",
        "pruned_weights_stay_zero",
    ):
        assert result["checks"][key]["passed"], result["checks"][key]
    assert {"permuted_beats_naive", "permuted_within_1pp_of_lth"} <= set(result["checks"])
    densities = sorted({round(r["density"], 6) for r in result["rows"]})
    assert densities == pytest.approx([0.2, 0.5], abs=1 / 2000)
    # Matching moved units (two independent inits are not aligned) and diversity was measured.
    assert all(m["units_moved"] > 0 for m in result["matching"])
    assert {d["method"] for d in result["diversity"]} == {"lth", "permuted"}
    assert all(0 <= d["disagreement"] <= 1 for d in result["diversity"])


def test_activation_matching_variant_runs():
    out = lth.lth_permutation_experiment(
        model="mlp",
        width=1,
        hidden=(16,),
        sparsities=(0.5,),
        seeds=(3,),
        dense_steps=30,
        imp_retrain_steps=0,
        sparse_steps=20,
        matching="activation",
        ensemble=False,
        batch_size=64,
    )
    assert out["checks"]["permutation_preserves_function_zero_diff"]["passed"]
    assert out["checks"]["permuted_mask_keeps_layer_density"]["passed"]
    assert not out["diversity"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"model": "transformer"}, "model must be"),
        ({"matching": "ste"}, "matching"),
        ({"sparsities": (0.9, 0.8)}, "increasing"),
        ({"seeds": (1, 1)}, "distinct"),
        ({"rewind_step": 5000}, "rewind_step"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lth.lth_permutation_experiment(**kwargs)


def test_identity_matching_gives_the_naive_mask():
    """Naive = permuted when π is the identity (B aligned with A already)."""
    rng = np.random.default_rng(0)
    params = {
        "layers": {
            0: {"kernel": rng.normal(size=(4, 6)), "bias": rng.normal(size=6)},
            1: {"kernel": rng.normal(size=(6, 2)), "bias": rng.normal(size=2)},
        }
    }
    spec = permute.mlp_permutation_spec(2)
    res = permute.weight_matching(spec, params, params)
    mask_tree = lth.global_prune_step(params, None, 10)
    moved = permute.permute_params(spec, permute.invert_permutation(res.perm), mask_tree)
    for a, b in zip(jax.tree.leaves(mask_tree), jax.tree.leaves(moved), strict=True):
        np.testing.assert_array_equal(a, b)


def test_build_model_matches_eager_construction():
    from flax import nnx

    from jaxsparse.nn import MLP

    built = lth.build_model("mlp", input_shape=(8,), num_classes=3, width=2, seed=5, hidden=(4,))
    eager = MLP(8, [8], 3, rngs=nnx.Rngs(5))
    for a, b in zip(jax.tree.leaves(nnx.state(built)), jax.tree.leaves(nnx.state(eager)), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="image inputs"):
        lth.build_model("vgg", input_shape=(64,), num_classes=3, width=1, seed=0)


def test_imp_with_rewinding_runs():
    out = lth.lth_permutation_experiment(
        model="mlp",
        width=1,
        hidden=(16,),
        sparsities=(0.6,),
        seeds=(4,),
        dense_steps=20,
        imp_retrain_steps=5,
        imp_rewind_step=3,
        sparse_steps=10,
        ensemble=False,
        batch_size=64,
    )
    assert out["config"]["imp_rewind_step"] == 3
    assert out["checks"]["imp_mask_hits_target_density"]["passed"]
    assert out["checks"]["pruned_weights_stay_zero"]["passed"]
