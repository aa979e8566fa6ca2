"""Bad arguments raise ValueError naming the argument (at construction, init or update)."""

import jax
import jax.numpy as jnp
import optax
import pytest

from jaxsparse import dst

from ._common import DYNAMIC, METHODS, SPARSITY, make_params, make_tx

FACTORIES = {
    "static": dst.static_sparse,
    "set": dst.sparse_evolutionary,
    "rigl": dst.rigl,
    "srigl": dst.srigl,
}


def build_and_init(method, **kw):
    """Construct the updater and run init (some checks need the params)."""
    tx = make_tx(method, kw.pop("key", jax.random.key(0)), **kw)
    return tx.init(make_params())


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), True, "0.5"])
def test_bad_number_sparsity(method, bad):
    with pytest.raises(ValueError, match="sparsity"):
        build_and_init(method, sparsity=bad)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad", [1.0, -0.5])
def test_bad_sparsity_tree_leaf(method, bad):
    tree = jax.tree.map(lambda s: s, SPARSITY, is_leaf=lambda x: x is None)
    tree["l0"]["kernel"] = bad
    with pytest.raises(ValueError, match="sparsity"):
        build_and_init(method, sparsity=tree)


@pytest.mark.parametrize("method", METHODS)
def test_mismatched_sparsity_tree(method):
    missing = {k: v for k, v in SPARSITY.items() if k != "head"}
    with pytest.raises(ValueError, match="sparsity"):
        build_and_init(method, sparsity=missing)
    extra_level = dict(SPARSITY, head={"kernel": None, "bias": None, "scale": None})
    with pytest.raises(ValueError, match="sparsity"):
        build_and_init(method, sparsity=extra_level)


@pytest.mark.parametrize("method", METHODS)
def test_sparse_leaf_must_be_a_matrix(method):
    tree = jax.tree.map(lambda s: s, SPARSITY, is_leaf=lambda x: x is None)
    tree["l0"]["bias"] = 0.5
    with pytest.raises(ValueError, match=r"params\['l0'\]\['bias'\].*ndim"):
        build_and_init(method, sparsity=tree)


@pytest.mark.parametrize("method", METHODS)
def test_sparse_leaves_only_with_a_number(method):
    with pytest.raises(ValueError, match="sparse_leaves"):
        build_and_init(method, sparsity=SPARSITY, sparse_leaves=lambda path, leaf: True)


@pytest.mark.parametrize("method", METHODS)
def test_bad_distribution(method):
    with pytest.raises(ValueError, match="distribution"):
        build_and_init(method, sparsity=0.5, distribution="lognormal")


@pytest.mark.parametrize("method", DYNAMIC)
@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_update_every(method, bad):
    with pytest.raises(ValueError, match="update_every"):
        make_tx(method, jax.random.key(0), update_every=bad)


@pytest.mark.parametrize("method", DYNAMIC)
@pytest.mark.parametrize("bad", [-0.1, 1.5, True])
def test_bad_drop_fraction(method, bad):
    with pytest.raises(ValueError, match="drop_fraction"):
        make_tx(method, jax.random.key(0), drop_fraction=bad)


@pytest.mark.parametrize("bad", [-0.01, 1.01, 2, True, "0.3"])
def test_bad_gamma_sal(bad):
    with pytest.raises(ValueError, match="gamma_sal"):
        make_tx("srigl", jax.random.key(0), gamma_sal=bad)


@pytest.mark.parametrize("method", DYNAMIC)
def test_missing_or_bad_schedule_length(method):
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="total_steps"):
        FACTORIES[method](optax.sgd(0.1), sparsity=SPARSITY, key=key)
    with pytest.raises(ValueError, match="total_steps"):
        FACTORIES[method](optax.sgd(0.1), sparsity=SPARSITY, key=key, total_steps=0)
    with pytest.raises(ValueError, match="end_step"):
        FACTORIES[method](optax.sgd(0.1), sparsity=SPARSITY, key=key, end_step=0)
    with pytest.raises(ValueError, match="end_fraction"):
        FACTORIES[method](optax.sgd(0.1), sparsity=SPARSITY, key=key, total_steps=100, end_fraction=0.0)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("bad_key", [jax.random.PRNGKey(0), 0, None])
def test_key_must_be_typed(method, bad_key):
    with pytest.raises(ValueError, match="key"):
        make_tx(method, bad_key)


@pytest.mark.parametrize("method", METHODS)
def test_inner_must_be_an_optax_transformation(method):
    with pytest.raises(ValueError, match="inner"):
        make_tx(method, jax.random.key(0), inner=lambda g: g)


def test_srigl_leaf_too_small_for_its_fan_in():
    # [32, 24] at sparsity 0.99: nnz* = floor(7.68) = 7 < 24 output neurons, so floor(nnz*/n_out) = 0.
    tree = jax.tree.map(lambda s: s, SPARSITY, is_leaf=lambda x: x is None)
    tree["l1"]["kernel"] = 0.99
    with pytest.raises(ValueError, match=r"params\['l1'\]\['kernel'\].*too small"):
        build_and_init("srigl", sparsity=tree)
    build_and_init("rigl", sparsity=tree)  # unstructured methods accept it (nnz* = 7)


@pytest.mark.parametrize("method", METHODS)
def test_update_needs_params_and_matching_trees(method):
    tx = make_tx(method, jax.random.key(0))
    params = make_params()
    state = tx.init(params)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state)
    with pytest.raises(ValueError, match="params"):
        tx.update(params, state, None)
    with pytest.raises(ValueError, match="grads"):
        tx.update({k: v for k, v in params.items() if k != "head"}, state, params)
    with pytest.raises(ValueError, match="state"):
        tx.update(params, optax.adam(1e-3).init(params), params)
    other = {**params, "head": {"kernel": jnp.zeros((24, 4)), "bias": jnp.zeros(4), "extra": jnp.zeros(2)}}
    with pytest.raises(ValueError, match=r"sparsity|state\.masks|params"):
        tx.update(other, state, other)
