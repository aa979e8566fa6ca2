"""fit_classifier: one compiled step shared by runs with the same transformation, and `init_tx`."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxsparse import dst
from jaxsparse.nn import MLP, fit_classifier, get_params


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((96, 12)).astype(np.float32), rng.integers(0, 3, 96)


def _compiles_of_train_step(records) -> int:
    return sum(r.getMessage().startswith("Compiling jit(_train_step)") for r in records)


def _srigl(seed):
    return dst.srigl(optax.adam(1e-2), sparsity=0.8, key=jax.random.key(seed), update_every=2, total_steps=8)


def test_runs_sharing_one_transformation_compile_once(caplog):
    x, y = _data()
    tx = optax.adam(1e-2)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        for seed in (0, 1, 2):
            fit_classifier(
                MLP(12, (16,), 3, rngs=nnx.Rngs(seed)), tx, x, y, steps=3, batch_size=16, seed=seed, progress=False
            )
    assert _compiles_of_train_step(caplog.records) == 1


def test_init_tx_builds_the_state_and_the_shared_tx_steps_exactly_as_the_seeds_own(caplog):
    # A DST updater's key only seeds its initial state (masks, PRNG stream): another seed's updater can step it.
    x, y = _data(1)
    shared = _srigl(100)
    results = {}
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        for seed in (1, 2):
            model = MLP(12, (16, 16), 3, rngs=nnx.Rngs(seed))
            fit_classifier(model, shared, x, y, steps=8, batch_size=16, seed=seed, progress=False, init_tx=_srigl(seed))
            results[seed] = (get_params(model), np.asarray(model.layers[1].kernel[...]))  # the sparse layer
    assert _compiles_of_train_step(caplog.records) == 1
    for seed in (1, 2):  # the reference: the seed's own updater throughout
        model = MLP(12, (16, 16), 3, rngs=nnx.Rngs(seed))
        fit_classifier(model, _srigl(seed), x, y, steps=8, batch_size=16, seed=seed, progress=False)
        for got, want in zip(jax.tree.leaves(results[seed][0]), jax.tree.leaves(get_params(model)), strict=True):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    # Different seeds' masks really differ (the init came from init_tx, not from the shared updater).
    a, b = (results[s][1] for s in (1, 2))
    assert 0.1 < np.mean(a == 0) < 0.9 and not np.array_equal(a == 0, b == 0)


def test_init_tx_must_match_the_state_layout():
    x, y = _data()
    model = MLP(12, (16, 16), 3, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="init_tx must build an optimizer state"):
        fit_classifier(model, optax.adam(1e-2), x, y, steps=1, batch_size=16, seed=0, init_tx=optax.sgd(0.1, 0.9))
    with pytest.raises(ValueError, match="init_tx must build an optimizer state"):
        fit_classifier(model, _srigl(0), x, y, steps=1, batch_size=16, seed=0, init_tx=optax.adam(1e-2))
    assert jnp.isfinite(model.layers[0].kernel[...]).all()  # nothing was trained by the refused calls
