"""compress_mlps on the tiny transformer double: exactness (check 2), orientation (check 6), r > d (check 4),
global masks (check 8), counts (check 5), group validation, and RigL on the returned masks (check 7)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsparse import dst, sharing

from ._double import tiny_transformer
from .conftest import GROUPS, WIDTHS

_is_none = lambda x: x is None


def _per_block_mse(model, inputs, outputs):
    return [
        jnp.mean((model.block_forward(i, x) - y) ** 2) for i, (x, y) in enumerate(zip(inputs, outputs, strict=True))
    ]


def _logits(model, images):
    return model(images)


def test_full_rank_zero_sparsity_is_exact(teacher):
    model = tiny_transformer()
    dense = [(np.asarray(b.mlp.fc1.kernel[...]), np.asarray(b.mlp.fc2.kernel[...]),
              np.asarray(b.mlp.fc1.bias[...]), np.asarray(b.mlp.fc2.bias[...])) for b in model.blocks]  # fmt: skip
    info = sharing.compress_mlps(model, GROUPS, ranks=WIDTHS, sparsity=0.0)
    assert info["ranks"] == WIDTHS
    assert [tuple(b[...].shape) for b in model.mlp_bases] == [(8, 8), (16, 16)]
    for i, block in enumerate(model.blocks):
        mlp = block.mlp
        assert isinstance(mlp, sharing.FiPSMLP) and mlp.group == (0 if i < 2 else 1)
        d = WIDTHS[mlp.group]
        assert mlp.V1[...].shape == (d, 4 * d) and mlp.V2[...].shape == (d, 4 * d)
        fc1, fc2 = mlp.to_dense(model.mlp_bases)  # orientation: fc1 = U V1, fc2 = (U V2)^T
        np.testing.assert_allclose(fc1, dense[i][0], atol=1e-5)
        np.testing.assert_allclose(fc2, dense[i][1], atol=1e-5)
        np.testing.assert_array_equal(mlp.b1[...], dense[i][2])  # biases copied
        np.testing.assert_array_equal(mlp.b2[...], dense[i][3])
    assert max(float(e) for e in _per_block_mse(model, teacher["inputs"], teacher["outputs"])) < 1e-10
    np.testing.assert_allclose(_logits(model, teacher["images"]), teacher["logits"], atol=1e-5)


def test_rank_above_width_leaves_outputs_unchanged(teacher):
    model = tiny_transformer()
    sharing.compress_mlps(model, GROUPS, ranks=[11, 29], sparsity=0.0)
    np.testing.assert_array_equal(np.asarray(model.mlp_bases[1][...])[:, 16:], 0.0)
    np.testing.assert_allclose(_logits(model, teacher["images"]), teacher["logits"], atol=1e-5)


def test_budget_masks_and_counts():
    model = tiny_transformer()
    info = sharing.compress_mlps(model, GROUPS, budget=0.5, sparsity=0.5)
    assert info["ranks"] == [sharing.fips_rank(8, 2, 0.5, 0.5), sharing.fips_rank(16, 2, 0.5, 0.5)]
    # The masks have the structure of the model's Param state, bool at the factors and None elsewhere.
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    assert jax.tree.structure(info["masks"], is_leaf=_is_none) == jax.tree.structure(params)
    flat = jax.tree_util.tree_flatten_with_path(info["masks"], is_leaf=_is_none)[0]
    sparse = {jax.tree_util.keystr(p): m for p, m in flat if m is not None}
    assert len(sparse) == 8 and all(k.endswith(("['V1']", "['V2']")) for k in sparse)
    # One global threshold: exact total nnz, non-uniform per-layer density.
    sizes = [m.size for m in sparse.values()]
    nnz = [int(m.sum()) for m in sparse.values()]
    assert sum(nnz) == sum(sizes) // 2
    densities = [n / s for n, s in zip(nnz, sizes, strict=True)]
    assert max(densities) - min(densities) > 0.05
    # Pruned factor values are exactly 0; kept ones are not.
    for i, block in enumerate(model.blocks):
        path_masks = [sparse[f"['blocks'][{i}]['mlp']['{name}']"] for name in ("V1", "V2")]
        for v, m in zip((block.mlp.V1[...], block.mlp.V2[...]), path_masks, strict=True):
            assert np.all(np.asarray(v)[~np.asarray(m)] == 0) and np.all(np.asarray(v)[np.asarray(m)] != 0)
    # Counts: U is dense, the factors count their nnz; the total stays within the budget.
    for g, (c, d, n) in enumerate(zip(info["counts"], WIDTHS, (2, 2), strict=True)):
        r = info["ranks"][g]
        assert c["base"] == d * r and c["factor_size"] == r * 8 * n * d and c["dense"] == 8 * n * d * d
    assert info["total"]["factor_nnz"] == sum(nnz)
    assert info["total"]["total"] == sum(d * r for d, r in zip(WIDTHS, info["ranks"], strict=True)) + sum(nnz)
    assert info["fraction"] == info["total"]["total"] / info["total"]["dense"] <= 0.5


def test_mask_sparsity_and_nm():
    model = tiny_transformer()
    info = sharing.compress_mlps(model, GROUPS, budget=0.5, sparsity=0.5, mask_sparsity=0.25)
    assert info["total"]["factor_density"] == pytest.approx(0.75, abs=1e-3)
    model = tiny_transformer()
    info = sharing.compress_mlps(model, GROUPS, budget=0.5, sparsity=0.5, nm=(2, 4))
    assert all(r % 4 == 0 for r in info["ranks"])
    for group in info["factor_masks"]:
        for pair in group:
            for m in pair:
                np.testing.assert_array_equal(np.asarray(m).reshape(-1, 4, m.shape[1]).sum(axis=1), 2)


@pytest.mark.parametrize(
    ("groups", "kwargs", "match"),
    [
        ([[0, 1], [1, 2]], {}, "disjoint"),
        ([[0, 4]], {}, "4 blocks"),
        ([[1, 2]], {}, "crosses a change of width"),
        ([[0], []], {}, "non-empty"),
        ([[0, 1.5]], {}, "groups\\[0\\] entry"),
        ([], {}, "non-empty"),
        ([[0]], {"budget": None}, "exactly one of budget"),
        ([[0]], {"ranks": 4}, "exactly one of budget"),
        ([[0]], {"budget": 1.0}, "budget"),
        ([[0]], {"budget": 0.0}, "budget"),
        ([[0]], {"sparsity": 1.0}, "sparsity"),
        ([[0]], {"sparsity": -0.5}, "sparsity"),
        ([[0]], {"nm": (3, 4)}, "more than 1 - sparsity"),
        ([[0, 1]], {"budget": None, "ranks": [4, 4]}, "one int per group"),
    ],
)
def test_bad_arguments(groups, kwargs, match):
    model = tiny_transformer()
    with pytest.raises(ValueError, match=match):
        sharing.compress_mlps(model, groups, **({"budget": 0.5, "sparsity": 0.5} | kwargs))
    assert model.mlp_bases is None  # nothing changed


def test_compressing_twice_fails():
    model = tiny_transformer()
    sharing.compress_mlps(model, [[0, 1]], budget=0.5, sparsity=0.5)
    with pytest.raises(ValueError, match="already compressed"):
        sharing.compress_mlps(model, [[3]], budget=0.5, sparsity=0.5)


def test_rigl_on_the_compressed_model_keeps_nnz_and_grows_zeros(teacher):
    """The returned masks drive jaxsparse.dst.rigl through nnx.Optimizer (a global fine-tuning stage)."""
    model = tiny_transformer()
    info = sharing.compress_mlps(model, GROUPS, budget=0.5, sparsity=0.5)
    tx = dst.rigl(optax.adam(1e-2), key=jax.random.key(0), initial_masks=info["masks"], update_every=2, end_step=12,
                  drop_fraction=0.3)  # fmt: skip
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    xs, ys = [jnp.asarray(a[:8]) for a in teacher["inputs"]], [jnp.asarray(a[:8]) for a in teacher["outputs"]]

    @nnx.jit
    def train_step(model, optimizer):
        loss, grads = nnx.value_and_grad(lambda m: sharing.reconstruction_loss(m, xs, ys))(model)
        optimizer.update(model, grads)
        return loss

    def factor_masks():
        masks = dst.find_sparse_state(nnx.as_pure(optimizer.opt_state)).masks
        return [np.asarray(m) for m in jax.tree.leaves(masks)]

    def factor_values():
        return [np.asarray(v) for blk in model.blocks for v in (blk.mlp.V1[...], blk.mlp.V2[...])]

    initial = [np.asarray(m) for m in jax.tree.leaves(info["masks"])]
    np.testing.assert_array_equal(np.concatenate([m.ravel() for m in factor_masks()]),
                                  np.concatenate([m.ravel() for m in initial]))  # fmt: skip
    prev, changed = initial, False
    for _ in range(8):
        train_step(model, optimizer)
        masks, values = factor_masks(), factor_values()
        for m, p, v in zip(masks, prev, values, strict=True):
            assert int(m.sum()) == int(p.sum())  # every factor keeps its nnz
            assert np.all(v[~m] == 0)  # pruned weights exactly 0
            assert np.all(v[m & ~p] == 0)  # grown weights are 0 when grown
        assert sum(int(m.sum()) for m in masks) == sum(int(m.sum()) for m in initial)
        changed |= any(not np.array_equal(m, p) for m, p in zip(masks, prev, strict=True))
        prev = masks
    assert changed
