"""End to end: an NNX MLP trained with nnx.Optimizer(model, dst.srigl(...), wrt=nnx.Param)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxsparse import dst
from jaxsparse.nn import MLP, get_params, set_params


def test_nnx_optimizer_srigl_keeps_exact_zeros_and_constant_fan_in():
    model = MLP(8, (16, 16, 16), 4, rngs=nnx.Rngs(0))
    tx = dst.srigl(optax.adam(1e-2), sparsity=0.7, key=jax.random.key(0), update_every=5, end_step=30, gamma_sal=0.3)
    set_params(model, dst.apply_initial_masks(get_params(model), tx.init(get_params(model)), rescale=True))
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((64, 8)), jnp.float32)
    y = jnp.asarray(np.argmax(np.asarray(x) @ rng.standard_normal((8, 4)), axis=1))

    @nnx.jit
    def train_step(model, optimizer, x, y):
        def loss_fn(model):
            return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    def masks():
        return dst.find_sparse_state(nnx.as_pure(optimizer.opt_state)).masks["layers"]

    initial = [None if masks()[i]["kernel"] is None else np.asarray(masks()[i]["kernel"]) for i in range(4)]
    # Default sparse leaves: every kernel except the first and the last; ERK over two equal 16x16 layers.
    assert initial[0] is None and initial[3] is None
    assert all(masks()[i]["bias"] is None for i in range(4))
    losses, changed = [], False
    for step in range(40):
        losses.append(float(train_step(model, optimizer, x, y)))
        for i in (1, 2):
            m = np.asarray(masks()[i]["kernel"])
            kernel = np.asarray(model.layers[i].kernel[...])
            assert np.all(kernel[~m] == 0), (step, i)
            fan = m.sum(axis=0)
            active = fan > 0
            assert np.all(fan[active] == 76 // active.sum())  # nnz* = floor(256 * .3) = 76, k' = 76 // n_active
            changed |= not np.array_equal(m, initial[i])
    assert changed  # the masks did evolve
    assert int(dst.find_sparse_state(nnx.as_pure(optimizer.opt_state)).count) == 40
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
