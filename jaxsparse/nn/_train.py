"""A minimal classifier training loop over NNX models and any optax transformation (DST updaters included)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

__all__ = ["accuracy", "cross_entropy", "evaluate", "fit_classifier"]


def cross_entropy(logits, labels):
    """Mean softmax cross-entropy with integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def accuracy(logits, labels) -> jax.Array:
    return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


@nnx.jit
def _eval_logits(model, x):
    return model(x)


def evaluate(model, x, y, *, batch_size: int = 512) -> dict:
    """Accuracy and mean loss of `model` on numpy arrays (batched, exact over all examples)."""
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"x and y must be non-empty with equal length, got {len(x)} and {len(y)}")
    correct, loss_sum = 0, 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = jnp.asarray(x[start : start + batch_size]), jnp.asarray(y[start : start + batch_size])
        logits = _eval_logits(model, xb)
        correct += int(jnp.sum(jnp.argmax(logits, -1) == yb))
        loss_sum += float(optax.softmax_cross_entropy_with_integer_labels(logits, yb).sum())
    return {"accuracy": correct / len(x), "loss": loss_sum / len(x)}


@nnx.jit
def _train_step(model, optimizer, xb, yb):
    # Module level, so one compiled step serves every call whose model structure and `tx` object match
    # (e.g. several seeds of one method): nnx.jit caches on the function and the graph structure.
    def loss_fn(model):
        return cross_entropy(model(xb), yb)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    return loss


def _same_layout(a, b) -> bool:
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    return jax.tree.structure(a) == jax.tree.structure(b) and all(
        (x.shape, x.dtype) == (y.shape, y.dtype) for x, y in zip(leaves_a, leaves_b, strict=True)
    )


def fit_classifier(
    model: nnx.Module,
    tx: optax.GradientTransformation,
    x,
    y,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    progress: bool = True,
    desc: str = "train",
    init_tx: optax.GradientTransformation | None = None,
):
    """Trains `model` in place with `tx` on (x, y) by minibatch SGD; returns (optimizer, losses).

    Batches are drawn by a seeded permutation per epoch. Only `nnx.Param` variables are optimized, and
    `tx.update` receives the params, so DST updaters can read and project them.

    init_tx: a transformation whose `init` builds the optimizer state instead of `tx.init` (same state
    structure and the same `update`, e.g. a DST updater built with another seed's key): the compiled step is
    keyed on `tx`, so runs sharing one `tx` object compile once.
    """
    if not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or not 0 < batch_size <= len(x):
        raise ValueError(f"batch_size must be in [1, {len(x)}], got {batch_size!r}")
    if init_tx is not None:
        params = nnx.state(model, nnx.Param)
        if not _same_layout(jax.eval_shape(tx.init, params), jax.eval_shape(init_tx.init, params)):
            raise ValueError("init_tx must build an optimizer state of the same structure, shapes and dtypes as tx")
    optimizer = nnx.Optimizer(model, tx if init_tx is None else init_tx, wrt=nnx.Param)
    if init_tx is not None:
        optimizer.tx = tx  # what the (shared, compiled) step applies

    rng = np.random.default_rng(seed)
    per_epoch = len(x) // batch_size
    order = rng.permutation(len(x))
    losses = []
    for i in tqdm(range(steps), desc=desc, disable=not progress, leave=False):
        j = i % per_epoch
        if j == 0 and i:
            order = rng.permutation(len(x))
        idx = order[j * batch_size : (j + 1) * batch_size]
        losses.append(_train_step(model, optimizer, jnp.asarray(x[idx]), jnp.asarray(y[idx])))
    return optimizer, np.asarray(jax.device_get(losses), dtype=np.float32)
