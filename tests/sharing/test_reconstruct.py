"""Block-wise reconstruction (fips.md §6): cached teacher signals, the loss, and training with each sparsifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxsparse import sharing

from ._double import tiny_transformer
from .conftest import GROUPS, WIDTHS

_is_none = lambda x: x is None
_loss = sharing.reconstruction_loss


def test_cache_block_io(teacher):
    inputs, outputs = teacher["inputs"], teacher["outputs"]
    assert [a.shape for a in inputs] == [(32, 4, 8)] * 3 + [(32, 4, 16)]  # block 2 downsamples 8 -> 16 itself
    assert [a.shape for a in outputs] == [(32, 4, 8)] * 2 + [(32, 4, 16)] * 2
    assert all(inputs[i + 1] is outputs[i] for i in range(3))  # stored once
    model = tiny_transformer()
    tokens = model.embed(jnp.asarray(teacher["images"]))
    np.testing.assert_allclose(inputs[0], tokens, atol=1e-6)
    for i in range(4):
        tokens = model.block_forward(i, tokens)
        np.testing.assert_allclose(outputs[i], tokens, atol=1e-5)
    assert float(_loss(model, inputs, outputs)) < 1e-10  # the original model: 0


def _frozen(model):
    """Every variable that reconstruction must not touch."""
    _, _, rest = nnx.split(model, sharing.FiPSParam, ...)
    return [np.asarray(x) for x in jax.tree.leaves(nnx.as_pure(rest))]


@pytest.mark.parametrize("sparsifier", sharing.SPARSIFIERS)
def test_reconstruction_decreases_the_loss_and_keeps_sparsity(teacher, sparsifier):
    model = tiny_transformer()
    gmp = sparsifier == "gmp"
    info = sharing.compress_mlps(model, GROUPS, budget=0.5, sparsity=0.5, mask_sparsity=0.3 if gmp else None)
    frozen = _frozen(model)
    result = sharing.reconstruct(
        model, teacher["inputs"], teacher["outputs"], steps=40, batch_size=16, learning_rate=1e-2,
        key=jax.random.key(0), masks=info["masks"], sparsifier=sparsifier, update_every=5, end_fraction=0.75,
        final_sparsity=0.5, initial_sparsity=0.3, progress=False,
    )  # fmt: skip
    curve = result["loss_curve"]
    assert len(curve) == 40 and all(np.isfinite(curve))
    final_loss = float(_loss(model, teacher["inputs"], teacher["outputs"]))
    assert final_loss < 0.5 * curve[0]
    # Frozen: attention stand-in, norms, embedding, head and the downsampling layer are bitwise unchanged.
    for before, after in zip(frozen, _frozen(model), strict=True):
        np.testing.assert_array_equal(before, after)
    # Sparsity: the final masks have the Param structure; the factors are exactly 0 outside them.
    masks = result["masks"]
    assert jax.tree.structure(masks, is_leaf=_is_none) == jax.tree.structure(nnx.as_pure(nnx.state(model, nnx.Param)))
    for i, block in enumerate(model.blocks):
        for name in ("V1", "V2"):
            m = np.asarray(masks["blocks"][i]["mlp"][name])
            assert np.all(np.asarray(getattr(block.mlp, name)[...])[~m] == 0)
    before = [int(m.sum()) for m in jax.tree.leaves(info["masks"])]
    after = [int(m.sum()) for m in jax.tree.leaves(masks)]
    if gmp:
        assert sum(after) == result["factor_nnz"] == sum(m.size for m in jax.tree.leaves(masks)) // 2  # s_f = 0.5
    else:
        assert after == before  # RigL and static keep every factor's nnz
    if sparsifier == "static":
        for m0, m1 in zip(jax.tree.leaves(info["masks"]), jax.tree.leaves(masks), strict=True):
            np.testing.assert_array_equal(m0, m1)


def test_full_rank_zero_sparsity_reconstructs_to_zero(teacher):
    model = tiny_transformer()
    info = sharing.compress_mlps(model, GROUPS, ranks=WIDTHS, sparsity=0.0)
    assert float(_loss(model, teacher["inputs"], teacher["outputs"])) < 1e-10
    # Perturb the shared bases: the exact solution is still reachable, and reconstruction finds it again.
    rng = np.random.default_rng(0)
    for base in model.mlp_bases:
        base[...] = base[...] + 0.05 * jnp.asarray(rng.standard_normal(base[...].shape), jnp.float32)
    start = float(_loss(model, teacher["inputs"], teacher["outputs"]))
    sharing.reconstruct(
        model, teacher["inputs"], teacher["outputs"], steps=100, batch_size=16, learning_rate=1e-2,
        key=jax.random.key(1), masks=info["masks"], sparsifier="static", weight_decay=0.0, progress=False,
    )  # fmt: skip
    end = float(_loss(model, teacher["inputs"], teacher["outputs"]))
    assert end < 1e-2 * start


def test_errors(teacher):
    model = tiny_transformer()
    kw = dict(steps=2, batch_size=4, learning_rate=1e-3, key=jax.random.key(0), progress=False)
    with pytest.raises(ValueError, match="not compressed"):
        sharing.reconstruct(model, teacher["inputs"], teacher["outputs"], masks=None, **kw)
    info = sharing.compress_mlps(model, GROUPS, budget=0.5, sparsity=0.5)
    with pytest.raises(ValueError, match="original model"):
        sharing.cache_block_io(model, teacher["images"], batch_size=8)
    with pytest.raises(ValueError, match="sparsifier"):
        sharing.reconstruct(model, teacher["inputs"], teacher["outputs"], masks=info["masks"], sparsifier="set", **kw)
    with pytest.raises(ValueError, match="final_sparsity"):
        sharing.reconstruct(model, teacher["inputs"], teacher["outputs"], masks=info["masks"], sparsifier="gmp", **kw)
    with pytest.raises(ValueError, match="batch_size"):
        sharing.reconstruct(
            model, teacher["inputs"], teacher["outputs"], masks=info["masks"], **(kw | {"batch_size": 64})
        )
    with pytest.raises(ValueError, match="no entry"):
        sharing.reconstruct(model, teacher["inputs"], teacher["outputs"], masks={"blocks": {}}, **kw)
    with pytest.raises(ValueError, match="typed PRNG key"):
        sharing.reconstruct(model, teacher["inputs"], teacher["outputs"], masks=info["masks"], **(kw | {"key": 0}))
    with pytest.raises(ValueError, match="one input and one output"):
        sharing.reconstruction_loss(model, teacher["inputs"], teacher["outputs"][:2])
