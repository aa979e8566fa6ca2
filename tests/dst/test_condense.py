"""condense_mlp export of a masked MLP with ablated neurons, and the fan-in statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsparse import dst
from jaxsparse.condensed import CondensedLinear


def fan_in_mask(rng, n_in, n_out, k, ablated):
    mask = np.zeros((n_in, n_out), bool)
    for j in range(n_out):
        if j not in ablated:
            mask[rng.choice(n_in, k, replace=False), j] = True
    return mask


@pytest.fixture(scope="module")
def mlp():
    """6 -> 8 (fan-in 3, neurons 2 and 5 ablated) -> 5 (fan-in 4, neuron 1 ablated) -> 3 (dense)."""
    rng = np.random.default_rng(0)
    m0 = fan_in_mask(rng, 6, 8, 3, ablated={2, 5})
    m1 = fan_in_mask(rng, 8, 5, 4, ablated={1})
    # Make sure layer 1 reads the ablated neurons of layer 0 (their constant act(b) must be folded in).
    m1[:, 0] = False
    m1[[2, 5, 0, 7], 0] = True
    m1[:, 3] = False
    m1[[2, 1, 4, 6], 3] = True
    kernels = [rng.standard_normal(s).astype(np.float32) for s in ((6, 8), (8, 5), (5, 3))]  # nonzero off-mask
    biases = [rng.standard_normal(n).astype(np.float32) for n in (8, 5, 3)]
    biases[0][2], biases[0][5] = 0.7, -0.4  # ablated: relu(.7) = .7 is a constant input of layer 1, relu(-.4) = 0
    biases[1][1] = 0.3
    return kernels, biases, [m0, m1, None]


def reference_forward(x, kernels, biases, masks):
    h = np.asarray(x, np.float64)
    for i, (k, b, m) in enumerate(zip(kernels, biases, masks, strict=True)):
        w = k if m is None else np.where(m, k, 0.0)
        h = h @ w + b
        if i < len(kernels) - 1:
            h = np.maximum(h, 0.0)
    return h


@pytest.mark.parametrize(("implementation", "cache"), [("xla", False), ("dense", False), ("dense", True)])
def test_condensed_mlp_matches_masked_dense(mlp, implementation, cache):
    kernels, biases, masks = mlp
    model = dst.condense_mlp(kernels, biases, masks, implementation=implementation, cache_dense_kernel=cache)
    assert all(layer.has_dense_cache == cache for layer in model.layers if isinstance(layer, CondensedLinear))
    assert isinstance(model, dst.CondensedMLP)
    x = np.random.default_rng(1).standard_normal((7, 6)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(x))), reference_forward(x, *mlp), rtol=1e-5, atol=1e-5)
    # The folded constant matters: without it the output would differ.
    biases_without = [b.copy() for b in biases]
    biases_without[0][2] = -0.7
    assert not np.allclose(reference_forward(x, kernels, biases_without, masks), reference_forward(x, *mlp), atol=1e-3)


def test_condensed_mlp_widths_shrink_by_ablated_count(mlp):
    model = dst.condense_mlp(*mlp, implementation="xla")
    l0, l1, l2 = model.layers
    assert isinstance(l0, CondensedLinear) and isinstance(l1, CondensedLinear) and isinstance(l2, nnx.Linear)
    assert l0.in_features == 6 and l0.values[...].shape == (8 - 2, 3) and l0.out_features == 8
    np.testing.assert_array_equal(np.asarray(l0.active_neurons[...]), [0, 1, 3, 4, 6, 7])
    assert l1.in_features == 6 and l1.values[...].shape == (5 - 1, 4)
    np.testing.assert_array_equal(np.asarray(l1.active_neurons[...]), [0, 2, 3, 4])
    assert l2.kernel[...].shape == (4, 3) and l2.bias[...].shape == (3,)


def test_condensed_mlp_all_dense_and_jit(mlp):
    kernels, biases, _ = mlp
    model = dst.condense_mlp(kernels, biases, [None, None, None])
    x = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    out = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(out), reference_forward(x, kernels, biases, [None] * 3), rtol=1e-5, atol=1e-5)


def test_condense_mlp_rejects_bad_input(mlp):
    kernels, biases, masks = mlp
    with pytest.raises(ValueError, match="last layer"):
        dst.condense_mlp(kernels, biases, [masks[0], masks[1], np.ones((5, 3), bool)])
    with pytest.raises(ValueError, match="equal length"):
        dst.condense_mlp(kernels, biases[:2], masks)
    with pytest.raises(ValueError, match="mask"):
        dst.condense_mlp(kernels, biases, [masks[0].astype(np.float32), masks[1], None])


def test_mask_summary_and_fan_in_histogram(mlp):
    _, _, (m0, m1, _) = mlp
    ragged = np.zeros((4, 3), bool)
    ragged[:1, 0] = True
    ragged[:2, 1] = True  # fan-ins 1, 2, 0
    masks = {"a": {"kernel": jnp.asarray(m0), "bias": None}, "b": {"kernel": m1}, "c": ragged, "d": None}
    summary = dst.mask_summary(masks)
    assert summary == {
        "['a']['kernel']": {"n_out": 8, "n_active": 6, "n_ablated": 2, "fan_ins": [3], "density": 18 / 48},
        "['b']['kernel']": {"n_out": 5, "n_active": 4, "n_ablated": 1, "fan_ins": [4], "density": 16 / 40},
        "['c']": {"n_out": 3, "n_active": 2, "n_ablated": 1, "fan_ins": [1, 2], "density": 3 / 12},
    }
    assert dst.fan_in_histogram(masks) == {
        "['a']['kernel']": {0: 2, 3: 6},
        "['b']['kernel']": {0: 1, 4: 4},
        "['c']": {0: 1, 1: 1, 2: 1},
    }


def test_fan_in_statistics_of_conv_masks():
    # [3, 3, 2, 4] conv kernel: fan-in is counted over every axis but the last.
    mask = np.zeros((3, 3, 2, 4), bool)
    mask[0, 0, 0, 0] = mask[1, 2, 1, 0] = True  # neuron 0: 2
    mask[:, :, :, 2] = True  # neuron 2: 18
    summary = dst.mask_summary({"conv": mask})["['conv']"]
    assert summary["fan_ins"] == [2, 18] and summary["n_ablated"] == 2
    assert dst.fan_in_histogram({"conv": jax.numpy.asarray(mask)}) == {"['conv']": {0: 2, 2: 1, 18: 1}}
