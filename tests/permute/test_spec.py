"""PermutationSpec construction, builders vs derivation from NNX models, and clear errors on bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsparse import permute
from jaxsparse.lth import VGG
from jaxsparse.nn import MLP


def test_spec_inverts_axes_to_perm():
    spec = permute.PermutationSpec({("a", "kernel"): (None, "P"), ("b", "kernel"): ("P", None), ("a", "bias"): ("P",)})
    assert spec.perm_to_axes == {"P": ((("a", "kernel"), 1), (("b", "kernel"), 0), (("a", "bias"), 0))}
    assert spec.perm_names == ("P",)


def test_spec_accepts_jax_key_paths_and_drops_variable_value():
    path = (jax.tree_util.DictKey("layers"), jax.tree_util.SequenceKey(0), jax.tree_util.GetAttrKey("kernel"))
    spec = permute.PermutationSpec({path: (None, "P")})
    assert list(spec.axes_to_perm) == [("layers", 0, "kernel")]
    boxed = (jax.tree_util.DictKey("w"), jax.tree_util.GetAttrKey("value"))
    assert permute.normalize_path(boxed) == ("w",)


@pytest.mark.parametrize(
    "axes, match",
    [
        ({}, "non-empty"),
        ({("w",): (None, None)}, "names no permutation"),
        ({("w",): ("P", "P")}, "two axes"),
        ({("w",): "P"}, "tuple"),
        ({("w",): (3,)}, "non-empty str"),
    ],
)
def test_bad_specs_raise(axes, match):
    with pytest.raises(ValueError, match=match):
        permute.PermutationSpec(axes)


def test_mlp_builder_matches_derivation():
    model = nnx.eval_shape(lambda: MLP(5, [7, 6], 3, rngs=nnx.Rngs(0)))
    derived = permute.permutation_spec_from_model(model)
    built = permute.mlp_permutation_spec(3)
    assert derived.axes_to_perm == built.axes_to_perm
    assert built.axes_to_perm[("layers", 1, "kernel")] == ("P_0", "P_1")
    assert built.axes_to_perm[("layers", 2, "kernel")] == ("P_1", None)
    assert ("layers", 2, "bias") not in built.axes_to_perm  # logits are not permuted


@pytest.mark.parametrize("batch_norm", [True, False])
def test_vgg_builder_matches_derivation(batch_norm):
    model = nnx.eval_shape(lambda: VGG(3, 10, channels=(4, 5, 6), batch_norm=batch_norm, rngs=nnx.Rngs(0)))
    derived = permute.permutation_spec_from_model(model)
    built = permute.vgg_permutation_spec(3, batch_norm=batch_norm)
    assert derived.axes_to_perm == built.axes_to_perm
    assert derived.optional == built.optional
    assert len(built.optional) == (6 if batch_norm else 0)


def test_resnet20_spec_shares_stage_permutations():
    spec = permute.resnet20_permutation_spec()
    assert sorted(n for n in spec.perm_names if n.startswith("stage")) == ["stage_0", "stage_1", "stage_2"]
    assert len([n for n in spec.perm_names if n.endswith("inner")]) == 9
    a = spec.axes_to_perm
    assert a[("stem", "kernel")] == (None, None, None, "stage_0")
    assert a[("blocks", 2, "conv2", "kernel")] == (None, None, "block_2_inner", "stage_0")
    assert a[("blocks", 3, "conv1", "kernel")] == (None, None, "stage_0", "block_3_inner")
    assert a[("blocks", 3, "shortcut", "kernel")] == (None, None, "stage_0", "stage_1")
    assert a[("blocks", 6, "shortcut_bn", "mean")] == ("stage_2",)
    assert a[("head", "kernel")] == ("stage_2", None)
    assert ("blocks", 4, "shortcut", "kernel") not in a


def test_derivation_rejects_a_spatial_flatten():
    class Flat(nnx.Module):
        def __init__(self):
            self.layers = nnx.List([nnx.Conv(1, 4, (3, 3), rngs=nnx.Rngs(0)), nnx.Linear(64, 2, rngs=nnx.Rngs(0))])

    flat = nnx.eval_shape(Flat)

    with pytest.raises(ValueError, match="not a chain"):
        permute.permutation_spec_from_model(flat)
    with pytest.raises(ValueError, match="no attribute"):
        permute.permutation_spec_from_model(flat, attribute="blocks")


def _mlp_params():
    return nnx.as_pure(nnx.state(MLP(4, [5], 2, rngs=nnx.Rngs(0)), nnx.Param))


def test_missing_parameter_raises():
    spec = permute.PermutationSpec({("layers", 0, "kernel"): (None, "P"), ("layers", 9, "kernel"): ("P", None)})
    with pytest.raises(ValueError, match=r"missing from the tree.*layers/9/kernel"):
        permute.permute_params(spec, {"P": np.arange(5)}, _mlp_params())


def test_axis_size_mismatch_raises():
    params = {"a": jnp.ones((3, 4)), "b": jnp.ones((5, 2))}
    spec = permute.PermutationSpec({("a",): (None, "P"), ("b",): ("P", None)})
    with pytest.raises(ValueError, match="axis size mismatch for permutation 'P'"):
        permute.permute_params(spec, {"P": np.arange(4)}, params)
    with pytest.raises(ValueError, match="has shape"):
        permute.permute_params(permute.PermutationSpec({("a",): ("P",)}), {"P": np.arange(3)}, params)


@pytest.mark.parametrize(
    "perm, match",
    [
        ({"P_0": np.array([0, 1, 1, 3, 4])}, "not a permutation"),
        ({"P_0": np.arange(4)}, "length 4"),
        ({"P_0": np.arange(5.0)}, "integer"),
        ({"Q": np.arange(5)}, "differ from the spec"),
        ([0, 1, 2, 3, 4], "mapping"),
    ],
)
def test_bad_permutation_raises(perm, match):
    spec = permute.mlp_permutation_spec(2)
    with pytest.raises((ValueError, TypeError), match=match):
        permute.permute_params(spec, perm, _mlp_params())


def test_partial_batch_stats_raise():
    spec = permute.vgg_permutation_spec(2)
    model = nnx.eval_shape(lambda: VGG(1, 2, channels=(3, 4), rngs=nnx.Rngs(0)))
    state = nnx.as_pure(nnx.state(model))
    sizes = permute.permutation_sizes(spec, state)
    assert sizes == {"P_0": 3, "P_1": 4}
    params_only = nnx.as_pure(nnx.state(model, nnx.Param))
    assert permute.permutation_sizes(spec, params_only) == sizes  # BN statistics are optional as a group
    flat = nnx.to_flat_state(state)
    partial = nnx.from_flat_state([(k, v) for k, v in flat if k != ("layers", 1, "mean")])
    with pytest.raises(ValueError, match="some BatchNorm statistics"):
        permute.permutation_sizes(spec, partial)
