"""Masked SGD training of NNX classifiers with fixed masks (projected updates), with rewind checkpoints."""

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jaxsparse import masks as masks_lib
from jaxsparse._checks import check_int, check_seed

__all__ = ["get_state", "predict_logits", "set_state", "train_classifier"]


def get_state(model: nnx.Module):
    """A snapshot of the model's full state (params and BatchNorm statistics) as a pure `nnx.State`."""
    return nnx.as_pure(nnx.state(model))


def set_state(model: nnx.Module, state) -> None:
    """Writes a (possibly partial) pure state from `get_state` or `nnx.state(model, nnx.Param)` back."""
    nnx.update(model, state)


def _cosine_lr(base: float, step: int, total: int) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * step / total))


@functools.partial(jax.jit, static_argnums=0)
def _sgd_step(graphdef, params, rest, buf, mask_tree, hyper, xb, yb):
    """One PyTorch-style SGD step (L2 decay in the gradient, momentum buffer), projected onto the mask."""
    lr, momentum, weight_decay = hyper[0], hyper[1], hyper[2]

    def loss_fn(params):
        model = nnx.merge(graphdef, params, rest)
        loss = optax.softmax_cross_entropy_with_integer_labels(model(xb), yb).mean()
        # The forward pass updated the BatchNorm statistics in train mode: return them.
        return loss, nnx.as_pure(nnx.split(model, nnx.Param, ...)[2])

    (loss, new_rest), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    buf = jax.tree.map(lambda b, g, p: momentum * b + g + weight_decay * p, buf, grads, params)
    new_params = jax.tree.map(lambda p, b: p - lr * b, params, buf)
    # Projection: pruned weights keep their value (0), so they stay exactly zero.
    new_params = jax.tree.map(
        lambda m, new, old: new if m is None else jnp.where(m, new, old),
        mask_tree,
        new_params,
        params,
        is_leaf=_is_none,
    )
    return new_params, new_rest, buf, loss


def _is_none(x) -> bool:
    return x is None


@nnx.jit
def _logits(model, x):
    return model(x)


def predict_logits(model: nnx.Module, x, *, batch_size: int = 512) -> np.ndarray:
    """Eval-mode logits (BatchNorm uses running statistics) for numpy inputs, batched."""
    model.eval()
    out = [np.asarray(_logits(model, jnp.asarray(x[s : s + batch_size]))) for s in range(0, len(x), batch_size)]
    return np.concatenate(out, axis=0)


def train_classifier(
    model: nnx.Module,
    x,
    y,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    mask_tree=None,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    checkpoint_steps: Sequence[int] = (),
    progress: bool = False,
    desc: str = "train",
) -> dict:
    """Trains `model` in place by minibatch SGD with momentum (PyTorch semantics: L2 decay added to the gradient)
    and a cosine learning-rate schedule over `steps`, with an optional fixed mask.

    With `mask_tree` (the structure of `nnx.state(model, nnx.Param)`, None leaves dense) the params are masked
    first and every update is projected, so pruned weights are exactly 0 throughout.

    Returns:
      `{"losses": np.ndarray, "checkpoints": {step: full pure state before that step}}` (step 0 is the start).
    """
    steps = check_int(steps, "steps", minimum=1)
    seed = check_seed(seed)
    if not isinstance(batch_size, int) or not 0 < batch_size <= len(x):
        raise ValueError(f"batch_size must be in [1, {len(x)}], got {batch_size!r}")
    if len(x) != len(y):
        raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
    checkpoint_steps = {check_int(k, "checkpoint_steps", minimum=0) for k in checkpoint_steps}
    if any(k > steps for k in checkpoint_steps):
        raise ValueError(f"checkpoint_steps must be <= steps={steps}, got {sorted(checkpoint_steps)}")
    if mask_tree is not None:
        params = nnx.as_pure(nnx.state(model, nnx.Param))
        set_state(model, masks_lib.apply_masks(params, mask_tree))
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate}")
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = nnx.as_pure(params), nnx.as_pure(rest)  # plain arrays: Variables are rebuilt inside the jit
    if mask_tree is None:
        mask_tree = jax.tree.map(lambda p: None, params)
    else:
        masks_lib.check_masks_match(params, mask_tree)
        mask_tree = jax.tree.map(lambda m: None if m is None else jnp.asarray(m, bool), mask_tree, is_leaf=_is_none)
    buf = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(seed)
    per_epoch = len(x) // batch_size
    order = rng.permutation(len(x))
    losses, checkpoints = [], {}
    for i in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        if i in checkpoint_steps:
            nnx.update(model, params, rest)
            checkpoints[i] = get_state(model)
        j = i % per_epoch
        if j == 0 and i:
            order = rng.permutation(len(x))
        idx = order[j * batch_size : (j + 1) * batch_size]
        hyper = jnp.asarray([_cosine_lr(learning_rate, i, steps), momentum, weight_decay], jnp.float32)
        params, rest, buf, loss = _sgd_step(
            graphdef, params, rest, buf, mask_tree, hyper, jnp.asarray(x[idx]), jnp.asarray(y[idx])
        )
        losses.append(loss)
    nnx.update(model, params, rest)
    if steps in checkpoint_steps:
        checkpoints[steps] = get_state(model)
    model.eval()
    return {"losses": np.asarray(jax.device_get(losses), dtype=np.float32), "checkpoints": checkpoints}
