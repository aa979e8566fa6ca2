"""Teacher, non-distilled student and distilled students per temperature, trained per seed.

Each model is trained by one jitted `lax.scan` over precomputed minibatch indices (no Python per step), and
the non-distilled student plus every distilled student of a seed are trained together under `vmap`: they
share the student architecture, the initial parameters and the batch order, so per-seed comparisons between
them are paired and differ only in the loss (alpha, T).
"""

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jaxsparse._checks import check_bool, check_int, check_seed
from jaxsparse.nn import MLP

from ._loss import _kd_loss

__all__ = ["train_teacher_and_students"]


def _batch_indices(n: int, *, steps: int, batch_size: int, seed: int) -> np.ndarray:
    """`[steps, batch_size]` row indices: a fresh seeded permutation per epoch (as `nn.fit_classifier`)."""
    rng = np.random.default_rng(seed)
    per_epoch = n // batch_size
    epochs = -(-steps // per_epoch)
    rows = [rng.permutation(n)[: per_epoch * batch_size].reshape(per_epoch, batch_size) for _ in range(epochs)]
    return np.concatenate(rows)[:steps].astype(np.int32)


@functools.partial(jax.jit, static_argnames=("graphdef", "scale_by_t2"))
def _train(graphdef, params, x, y, teacher_logits, batch_idx, alpha, temperature, learning_rate, scale_by_t2):
    """Adam on the KD loss for `len(batch_idx)` steps; alpha/T/lr are traced so one compile serves every T."""
    tx = optax.adam(learning_rate)

    def step(carry, idx):
        params, opt_state = carry

        def loss_fn(p):
            logits = nnx.merge(graphdef, p)(x[idx])
            return _kd_loss(logits, teacher_logits[idx], y[idx], alpha, temperature, scale_by_t2)

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), batch_idx)
    return params, losses


# Students: vmap over (alpha, T); params, data and batch order are shared (in_axes None).
_train_students = jax.vmap(_train, in_axes=(None, None, None, None, None, None, 0, 0, None, None))


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _logits(graphdef, params, x):
    return nnx.merge(graphdef, params)(x)


_student_logits = jax.vmap(_logits, in_axes=(None, 0, None))


def _check_hidden(name, hidden) -> tuple[int, ...]:
    hidden = tuple(hidden)
    for h in hidden:
        check_int(h, name, minimum=1)
    return tuple(int(h) for h in hidden)


def _check_temperatures(temperatures) -> tuple[float, ...]:
    temps = tuple(temperatures)
    if not temps:
        raise ValueError("temperatures must be non-empty")
    for t in temps:
        if isinstance(t, bool) or not isinstance(t, int | float | np.integer | np.floating) or not (0 < t < np.inf):
            raise ValueError(f"temperatures must be finite reals > 0, got {t!r}")
    if len(set(temps)) != len(temps):
        raise ValueError(f"temperatures must be distinct, got {temps!r}")
    return temps


def train_teacher_and_students(
    data,
    *,
    teacher_hidden: Sequence[int],
    student_hidden: Sequence[int],
    temperatures: Sequence[float],
    seeds: Sequence[int],
    steps: int,
    alpha: float = 0.5,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    scale_by_t2: bool = True,
    progress: bool = True,
    desc: str = "kd",
) -> dict:
    """Trains, for every seed, a teacher MLP, a non-distilled student and one distilled student per temperature.

    Per seed: the teacher (`jaxsparse.nn.MLP(teacher_hidden)`) is trained on cross-entropy; its train-set logits
    are computed once; then the non-distilled student (NDS, cross-entropy only, i.e. the KD loss at alpha = 1)
    and the distilled students (DS, `kd_loss(alpha, T)`) are trained from the SAME student initialisation with
    the SAME batch order. Everything uses Adam for `steps` minibatch steps.

    Args:
        data: A `jaxsparse.data.Split` (or any object with `x_train, y_train, x_test, y_test, num_classes`).
        teacher_hidden: Hidden widths of the teacher MLP.
        student_hidden: Hidden widths of the (smaller) student MLP.
        temperatures: Distillation temperatures T > 0, distinct.
        seeds: Non-negative int seeds (model init and batch order; the data split is fixed by `data`).
        steps: Optimiser steps per model.
        alpha: Weight of the hard-label term in the KD loss, in [0, 1].
        batch_size: Minibatch size, at most the number of training rows.
        learning_rate: Adam learning rate.
        scale_by_t2: Whether the soft term is multiplied by T**2.
        progress: Show a tqdm bar over seeds.
        desc: tqdm label.

    Returns:
        A dict: "temperatures", "seeds" (tuples), "y_test" `[n_test]`, "num_classes", and for each of
        "teacher", "non_distilled" a dict {"pred": int `[num_seeds, n_test]`, "accuracy": `[num_seeds]`,
        "final_loss": `[num_seeds]`}, and "distilled": {T: the same dict} per temperature.
    """
    temps = _check_temperatures(temperatures)
    seeds = tuple(check_seed(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be non-empty and distinct, got {seeds!r}")
    steps = check_int(steps, "steps", minimum=1)
    teacher_hidden = _check_hidden("teacher_hidden", teacher_hidden)
    student_hidden = _check_hidden("student_hidden", student_hidden)
    if isinstance(alpha, bool) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha!r}")
    if isinstance(learning_rate, bool) or not float(learning_rate) > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    scale_by_t2 = check_bool(scale_by_t2, "scale_by_t2")
    progress = check_bool(progress, "progress")
    x_train = np.asarray(data.x_train, dtype=np.float32).reshape(len(data.x_train), -1)
    y_train = np.asarray(data.y_train)
    x_test = np.asarray(data.x_test, dtype=np.float32).reshape(len(data.x_test), -1)
    y_test = np.asarray(data.y_test)
    num_classes = check_int(data.num_classes, "data.num_classes", minimum=2)
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or not len(y_test):
        raise ValueError("data must have non-empty test rows and matching x/y lengths")
    for name, y in (("y_train", y_train), ("y_test", y_test)):
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"data.{name} must be integer labels in [0, {num_classes})")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if batch_size > len(x_train):
        raise ValueError(f"batch_size must be <= {len(x_train)} training rows, got {batch_size}")

    xj, yj, xt = jnp.asarray(x_train), jnp.asarray(y_train, dtype=jnp.int32), jnp.asarray(x_test)
    in_features = x_train.shape[1]
    lr = jnp.float32(learning_rate)
    # NDS first (alpha = 1: the soft term is multiplied by exactly 0), then one DS per temperature.
    student_alpha = jnp.asarray([1.0] + [float(alpha)] * len(temps), dtype=jnp.float32)
    student_temp = jnp.asarray([1.0, *temps], dtype=jnp.float32)
    zeros = jnp.zeros((len(x_train), num_classes), jnp.float32)

    out = {"teacher": [], "students": []}
    for seed in tqdm(seeds, desc=desc, disable=not progress, leave=False):
        key_teacher, key_student = jax.random.split(jax.random.key(seed))
        teacher = MLP(in_features, teacher_hidden, num_classes, rngs=nnx.Rngs(params=key_teacher))
        t_graph, t_params = nnx.split(teacher)
        t_batches = jnp.asarray(_batch_indices(len(x_train), steps=steps, batch_size=batch_size, seed=seed))
        t_params, t_losses = _train(
            t_graph, t_params, xj, yj, zeros, t_batches, jnp.float32(1.0), jnp.float32(1.0), lr, scale_by_t2
        )
        teacher_train_logits = _logits(t_graph, t_params, xj)  # computed once, reused by every student
        teacher_test = np.asarray(_logits(t_graph, t_params, xt))

        student = MLP(in_features, student_hidden, num_classes, rngs=nnx.Rngs(params=key_student))
        s_graph, s_params = nnx.split(student)
        s_batches = jnp.asarray(_batch_indices(len(x_train), steps=steps, batch_size=batch_size, seed=seed + 1_000_003))
        s_params, s_losses = _train_students(
            s_graph, s_params, xj, yj, teacher_train_logits, s_batches, student_alpha, student_temp, lr, scale_by_t2
        )
        student_test = np.asarray(_student_logits(s_graph, s_params, xt))  # [1 + len(temps), n_test, classes]
        out["teacher"].append((teacher_test.argmax(-1), float(np.mean(np.asarray(t_losses)[-20:]))))
        s_final = np.asarray(s_losses)[:, -20:].mean(axis=1)
        out["students"].append([(student_test[i].argmax(-1), float(s_final[i])) for i in range(1 + len(temps))])

    def pack(items):
        pred = np.stack([p for p, _ in items]).astype(np.int32)
        return {
            "pred": pred,
            "accuracy": (pred == y_test[None]).mean(axis=1),
            "final_loss": np.asarray([loss for _, loss in items]),
        }

    return {
        "temperatures": temps,
        "seeds": seeds,
        "y_test": y_test.astype(np.int32),
        "num_classes": num_classes,
        "teacher": pack(out["teacher"]),
        "non_distilled": pack([s[0] for s in out["students"]]),
        "distilled": {t: pack([s[1 + i] for s in out["students"]]) for i, t in enumerate(temps)},
    }
