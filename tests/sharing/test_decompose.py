"""Concatenation orientation, SVD initialisation (Eckart–Young, r > d padding) and slicing (fips.md §1, §2, §4)."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.sharing import concat_mlp_kernels, split_factors, svd_init


def kernels(n: int, d: int, h: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    fc1 = [jnp.asarray(rng.standard_normal((d, h)), jnp.float32) for _ in range(n)]
    fc2 = [jnp.asarray(rng.standard_normal((h, d)), jnp.float32) for _ in range(n)]
    return fc1, fc2


def test_shapes_and_orientation():
    d, h = 6, 24
    fc1, fc2 = kernels(1, d, h)
    w = concat_mlp_kernels(fc1, fc2)
    assert w.shape == (d, 8 * d)  # one block: (d, 8d)
    np.testing.assert_array_equal(w[:, :h], fc1[0])  # fc1's columns: hidden neurons' input weights
    np.testing.assert_array_equal(w[:, h:], fc2[0].T)  # fc2 transposed: output weights as columns
    u, v = svd_init(w, 4)
    assert u.shape == (d, 4) and v.shape == (4, 8 * d)
    ((v1, v2),) = split_factors(v, 1, h)
    assert v1.shape == (4, 4 * d) and v2.shape == (4, 4 * d)


def test_block_order_and_split_inverts_concat():
    d, h, n = 5, 20, 3
    fc1, fc2 = kernels(n, d, h, seed=1)
    w = concat_mlp_kernels(fc1, fc2)
    assert w.shape == (d, 2 * n * h)
    # Full rank: U V == W_cat, and each slice reproduces its block's kernels.
    u, v = svd_init(w, d)
    for b, (v1, v2) in enumerate(split_factors(v, n, h)):
        np.testing.assert_allclose(u @ v1, fc1[b], atol=2e-5)
        np.testing.assert_allclose((u @ v2).T, fc2[b], atol=2e-5)


def test_eckart_young():
    d, h, n = 8, 32, 2
    fc1, fc2 = kernels(n, d, h, seed=2)
    w = concat_mlp_kernels(fc1, fc2)
    sigma = np.linalg.svd(np.asarray(w, np.float64), compute_uv=False)
    for r in (1, 3, 7):
        u, v = svd_init(w, r)
        err = float(np.sum((np.asarray(w, np.float64) - np.asarray(u, np.float64) @ np.asarray(v, np.float64)) ** 2))
        np.testing.assert_allclose(err, np.sum(sigma[r:] ** 2), rtol=1e-4)
    # U has orthonormal columns; the singular values are folded into V's rows.
    u, v = svd_init(w, 5)
    np.testing.assert_allclose(u.T @ u, np.eye(5), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), sigma[:5], rtol=1e-5)


@pytest.mark.parametrize("extra", [3, 8, 13])  # fewer than d, exactly d, more than d padding rows (tiled)
def test_padding_above_width(extra):
    d, h = 8, 32
    fc1, fc2 = kernels(1, d, h, seed=3)
    w = concat_mlp_kernels(fc1, fc2)
    r = d + extra
    u, v = svd_init(w, r, tau=32.0)
    u_d, v_d = svd_init(w, d)
    assert u.shape == (d, r) and v.shape == (r, 2 * h)
    np.testing.assert_array_equal(u[:, d:], 0)  # zero columns
    np.testing.assert_array_equal(u[:, :d], u_d)
    np.testing.assert_array_equal(v[:d], v_d)
    pad_rows = min(extra, d)
    expected = np.tile(np.asarray(v_d[:pad_rows]) / 32.0, (-(-extra // pad_rows), 1))[:extra]
    np.testing.assert_allclose(v[d:], expected, rtol=1e-6)
    np.testing.assert_allclose(u @ v, w, atol=3e-5)  # U V == W_cat at init


def test_tau_scales_padding():
    fc1, fc2 = kernels(1, 4, 16, seed=4)
    w = concat_mlp_kernels(fc1, fc2)
    _, v8 = svd_init(w, 6, tau=8.0)
    _, v32 = svd_init(w, 6, tau=32.0)
    np.testing.assert_allclose(v8[4:], 4.0 * v32[4:], rtol=1e-6)


def test_errors():
    fc1, fc2 = kernels(2, 4, 16)
    wide1, wide2 = kernels(1, 8, 32)
    with pytest.raises(ValueError, match=r"block 2 .*change of width"):
        concat_mlp_kernels([*fc1, wide1[0]], [*fc2, wide2[0]])
    with pytest.raises(ValueError, match="block 0: fc1 kernel must be"):
        concat_mlp_kernels([fc1[0]], [fc1[0]])
    with pytest.raises(ValueError, match="one fc2 kernel per fc1"):
        concat_mlp_kernels(fc1, fc2[:1])
    w = concat_mlp_kernels(fc1, fc2)
    with pytest.raises(ValueError, match="rank"):
        svd_init(w, 0)
    with pytest.raises(ValueError, match="tau"):
        svd_init(w, 2, tau=0.0)
    with pytest.raises(ValueError, match="w_cat"):
        svd_init(w[0], 2)
    with pytest.raises(ValueError, match="2 \\* n_blocks \\* hidden"):
        split_factors(jnp.zeros((3, 60)), 2, 16)
