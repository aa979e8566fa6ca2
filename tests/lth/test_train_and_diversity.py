"""Masked training keeps pruned weights at 0 and rewinds exactly; ensemble diversity vs scipy."""

import jax
import numpy as np
import pytest
from flax import nnx
from scipy.spatial.distance import jensenshannon
from scipy.special import softmax
from scipy.stats import entropy

from jaxsparse import lth, masks


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 8, 8, 1)).astype(np.float32)
    y = (x.mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    return x, y


def test_masked_training_with_batchnorm(data):
    x, y = data
    model = lth.build_model("vgg", input_shape=(8, 8, 1), num_classes=2, width=1, seed=0, vgg_channels=(4, 6))
    init = lth.get_state(model)
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    mask_tree = masks.global_magnitude_masks(params, 0.6)
    out = lth.train_classifier(
        model,
        x,
        y,
        steps=12,
        batch_size=32,
        learning_rate=0.05,
        seed=0,
        mask_tree=mask_tree,
        checkpoint_steps=(0, 5, 12),
    )
    assert sorted(out["checkpoints"]) == [0, 5, 12] and out["losses"].shape == (12,)
    trained = nnx.as_pure(nnx.state(model, nnx.Param))
    for p, m in zip(jax.tree.leaves(trained), jax.tree.leaves(mask_tree, is_leaf=lambda v: v is None), strict=True):
        if m is not None:
            assert not np.any(np.asarray(p)[~np.asarray(m)])  # exactly zero
            assert np.any(np.asarray(p)[np.asarray(m)] != 0)
    # Checkpoint 0 is the masked init (BN statistics untouched); BN statistics moved during training.
    ck0 = out["checkpoints"][0]
    np.testing.assert_array_equal(ck0["layers"][1]["mean"], init["layers"][1]["mean"])
    assert not np.allclose(out["checkpoints"][12]["layers"][1]["mean"], init["layers"][1]["mean"])
    np.testing.assert_array_equal(
        ck0["layers"][0]["kernel"], np.where(mask_tree["layers"][0]["kernel"], init["layers"][0]["kernel"], 0)
    )
    # The last checkpoint is the trained model; restoring an earlier one changes the eval-mode function.
    final = lth.predict_logits(model, x)
    lth.set_state(model, out["checkpoints"][5])
    assert final.shape == (96, 2) and not np.allclose(lth.predict_logits(model, x), final)
    lth.set_state(model, out["checkpoints"][12])
    np.testing.assert_array_equal(lth.predict_logits(model, x), final)
    with pytest.raises(ValueError, match="checkpoint_steps"):
        lth.train_classifier(model, x, y, steps=3, batch_size=8, learning_rate=0.1, seed=0, checkpoint_steps=(4,))
    with pytest.raises(ValueError, match="batch_size"):
        lth.train_classifier(model, x, y, steps=3, batch_size=0, learning_rate=0.1, seed=0)


def test_ensemble_diversity_matches_scipy():
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(40, 5)), rng.normal(size=(40, 5))
    y = rng.integers(0, 5, 40)
    d = lth.ensemble_diversity([z1, z2], y)
    p1, p2 = softmax(z1, axis=1), softmax(z2, axis=1)
    assert d["disagreement"] == pytest.approx(np.mean(p1.argmax(1) != p2.argmax(1)))
    assert d["js"] == pytest.approx(np.mean(jensenshannon(p1, p2, axis=1) ** 2), rel=1e-9)
    kl = 0.5 * (np.mean(entropy(p1, p2, axis=1)) + np.mean(entropy(p2, p1, axis=1)))
    assert d["kl"] == pytest.approx(kl, rel=1e-9)
    ens = ((p1 + p2) / 2).argmax(1)
    assert d["ensemble_accuracy"] == pytest.approx(np.mean(ens == y))
    assert d["ensemble_gain"] == pytest.approx(
        d["ensemble_accuracy"] - 0.5 * (np.mean(p1.argmax(1) == y) + np.mean(p2.argmax(1) == y))
    )
    same = lth.ensemble_diversity([z1, z1], y)
    assert same["disagreement"] == 0 and same["js"] == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="at least two"):
        lth.ensemble_diversity([z1], y)
