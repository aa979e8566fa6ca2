"""Patch shortcut injection, MI curves along training time and Algorithm 1's rule."""

import math

import numpy as np
import pytest

from jaxsparse.infowidth import add_patch_shortcut, encode_targets, fc_kernel_fn, mi_curves, shortcut_detected


def test_patch_follows_label_in_training_and_is_independent_at_test():
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.5, (400, 64))
    y = rng.integers(0, 2, 400)
    xs, mask = add_patch_shortcut(x, y, correlation=1.0, patch_size=2, value=1.0)
    np.testing.assert_array_equal(mask, y == 1)
    img = xs.reshape(-1, 8, 8)
    assert np.all(img[mask, :2, :2] == 1.0) and np.array_equal(img[~mask], x.reshape(-1, 8, 8)[~mask])
    assert np.array_equal(img[:, 2:, :], x.reshape(-1, 8, 8)[:, 2:, :])  # nothing outside the patch changes
    _, test_mask = add_patch_shortcut(x, y, correlation=0.0, seed=1)
    assert 0.4 < test_mask.mean() < 0.6
    # Independent of the label: the patch rate is about the same in both classes.
    assert abs(test_mask[y == 1].mean() - test_mask[y == 0].mean()) < 0.15
    x3, m3 = add_patch_shortcut(x.reshape(-1, 8, 8), y, correlation=1.0)
    assert x3.shape == (400, 8, 8) and np.array_equal(m3, mask)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"correlation": 1.5}, "correlation"), ({"patch_size": 0}, "patch_size"), ({"image_shape": (4, 4)}, "pixels")],
)
def test_bad_patch_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        add_patch_shortcut(np.zeros((3, 64)), np.zeros(3, int), **kwargs)
    with pytest.raises(ValueError, match="labels"):
        add_patch_shortcut(np.zeros((3, 64)), np.zeros(4, int))


def test_rule():
    assert shortcut_detected(1.0, 2.0) and not shortcut_detected(2.0, 1.0) and not shortcut_detected(1.0, 1.0)
    with pytest.raises(ValueError, match="finite"):
        shortcut_detected(float("inf"), 1.0)


def test_mi_curves_start_at_zero_and_rise():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8))
    x = x / np.linalg.norm(x, axis=1, keepdims=True)  # equal norms: every K(x, x) is equal
    y = encode_targets((x[:, 0] > 0).astype(int), 2)
    c = mi_curves(fc_kernel_fn(depth=2), x[:30], y[:30], x[30:], y[30:], [0.0, 10.0, 1000.0], n_eval=20,
                  num_samples=2)  # fmt: skip
    assert len(c["t"]) == 3 and len(c["test_mi_nce"]) == 3
    for key in ("train_mi_loo", "train_mi_nce", "test_mi_loo", "test_mi_nce"):
        assert abs(c[key][0]) < 1e-12  # t = 0: mean 0 and equal variances, so no information
    assert c["train_mi_loo"][-1] > c["train_mi_loo"][1] > 0
    assert max(c["train_mi_nce"]) <= math.log(20) + 1e-12
    assert c["train_loss"][-1] < c["train_loss"][0]
    with pytest.raises(ValueError, match="refused"):
        mi_curves(fc_kernel_fn(), x[:30], y[:30], x[30:], y[30:], [math.inf])
    with pytest.raises(ValueError, match="n_eval"):
        mi_curves(fc_kernel_fn(), x[:30], y[:30], x[30:], y[30:], [1.0], n_eval=25)
