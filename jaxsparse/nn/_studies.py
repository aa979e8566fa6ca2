"""Core-only study: one-shot pruning of a trained digits MLP with every mask family of `jaxsparse.masks`.

Trains a dense MLP, prunes it with magnitude, global magnitude, constant fan-in and N:M masks, measures
accuracy before and after a short masked fine-tune, and checks the condensed layers reproduce the masked
dense model's outputs.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jaxsparse import condensed, masks
from jaxsparse.data import load_digits_split

from ._models import MLP
from ._train import evaluate, fit_classifier

__all__ = ["get_params", "mask_updates", "oneshot_pruning_study", "set_params"]


def get_params(model: nnx.Module):
    """The model's `nnx.Param` values as a pytree of arrays (a pure `nnx.State`)."""
    return nnx.as_pure(nnx.state(model, nnx.Param))


def set_params(model: nnx.Module, params) -> None:
    """Writes a pytree from `get_params` back into the model."""
    nnx.update(model, params)


def mask_updates(mask_tree) -> optax.GradientTransformation:
    """Zeros updates where the mask is False (a fixed mask; DST updaters live in `jaxsparse.dst`)."""

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return masks.apply_masks(updates, mask_tree), state

    return optax.GradientTransformation(init_fn, update_fn)


def _max_condensed_gap(model: MLP, mask_tree, x, *, nm: tuple[int, int] | None) -> float:
    """Max |logits| gap between the masked dense MLP and the same MLP run through condensed layers."""
    ref = np.asarray(model(jnp.asarray(x)))
    h = jnp.asarray(x)
    n_layers = len(model.layers)
    for i, layer in enumerate(model.layers):
        kernel, bias = layer.kernel[...], layer.bias[...]
        mask = mask_tree["layers"][i]["kernel"]
        if nm is not None:
            sparse = condensed.NMLinear.from_dense(
                jnp.where(mask, kernel, 0.0), nm[0], nm[1], bias, implementation="xla"
            )
            h = sparse(h)
        else:
            sparse = condensed.CondensedLinear.from_dense(kernel, mask, bias, implementation="xla")
            # Ablated neurons output relu(bias); scatter back so the next dense-shaped layer lines up.
            out = jnp.broadcast_to(bias, (*h.shape[:-1], bias.shape[0]))
            h = out.at[..., sparse.active_neurons[...]].set(sparse(h))
        if i < n_layers - 1:
            h = jax.nn.relu(h)
    return float(np.max(np.abs(np.asarray(h) - ref)))


def oneshot_pruning_study(
    *,
    seeds: tuple[int, ...] = (0,),
    hidden: tuple[int, ...] = (256, 128),
    train_steps: int = 600,
    finetune_steps: int = 150,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    sparsities: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95),
    nm_patterns: tuple[tuple[int, int], ...] = ((2, 4), (1, 4), (1, 8)),
    progress: bool = True,
) -> dict:
    """Runs the study; returns {"rows": [...], "dense": [...], "checks": {...}} with plain numbers.

    Each row: seed, method, sparsity (target), density (measured over masked leaves), acc_pruned,
    acc_finetuned, condensed_gap (max |logit difference|, or None where not applicable).
    """
    if not seeds:
        raise ValueError("seeds must be non-empty")
    for s in sparsities:
        masks.check_sparsity(s, "sparsities")
    data = load_digits_split(seed=0)
    rows, dense_rows = [], []
    exact_density, constant_fan_in, nm_ok = True, True, True
    jobs = [(m, s, None) for s in sparsities for m in ("magnitude", "global_magnitude", "fan_in")]
    jobs += [("nm", 1.0 - n / m, (n, m)) for n, m in nm_patterns]
    total = len(seeds) * (1 + len(jobs))
    bar = tqdm(total=total, desc="oneshot", disable=not progress)
    for seed in seeds:
        model = MLP(data.input_shape[0], hidden, data.num_classes, rngs=nnx.Rngs(seed))
        fit_classifier(
            model, optax.adam(learning_rate), data.x_train, data.y_train,
            steps=train_steps, batch_size=batch_size, seed=seed, progress=False,
        )  # fmt: skip
        dense_acc = evaluate(model, data.x_test, data.y_test)["accuracy"]
        dense_rows.append({"seed": seed, "accuracy": dense_acc})
        bar.update()
        trained = get_params(model)
        for method, sparsity, nm in jobs:
            if method == "magnitude":
                mask_tree = masks.magnitude_masks(trained, sparsity)
            elif method == "global_magnitude":
                mask_tree = masks.global_magnitude_masks(trained, sparsity)
            elif method == "fan_in":
                mask_tree = masks.fan_in_masks(trained, sparsity)
            else:
                mask_tree = masks.nm_masks(trained, nm[0], nm[1], axis=0)
            report = masks.density_report(mask_tree, trained)
            leaves = [m for m in jax.tree.leaves(mask_tree, is_leaf=lambda v: v is None) if m is not None]
            if method != "nm":
                expected = [masks.num_active(m.size, sparsity) for m in leaves] if method == "magnitude" else None
                if expected is not None:
                    exact_density &= [int(m.sum()) for m in leaves] == expected
                if method == "global_magnitude":
                    exact_density &= sum(int(m.sum()) for m in leaves) == masks.num_active(
                        sum(m.size for m in leaves), sparsity
                    )
            if method == "fan_in":
                constant_fan_in &= all(len(set(np.asarray(m).sum(0).tolist())) == 1 for m in leaves)
            if method == "nm":
                n, m_ = nm
                nm_ok &= all(bool(np.all(np.asarray(m).reshape(-1, m_, m.shape[1]).sum(1) == n)) for m in leaves)
            pruned = MLP(data.input_shape[0], hidden, data.num_classes, rngs=nnx.Rngs(seed))
            set_params(pruned, masks.apply_masks(trained, mask_tree))
            acc_pruned = evaluate(pruned, data.x_test, data.y_test)["accuracy"]
            gap = None
            if method in ("fan_in", "nm"):
                gap = _max_condensed_gap(pruned, mask_tree, data.x_test, nm=nm)
            fit_classifier(
                pruned, optax.chain(optax.adam(learning_rate / 3), mask_updates(mask_tree)),
                data.x_train, data.y_train, steps=finetune_steps, batch_size=batch_size, seed=seed + 1,
                progress=False,
            )  # fmt: skip
            acc_ft = evaluate(pruned, data.x_test, data.y_test)["accuracy"]
            rows.append(
                {
                    "seed": seed,
                    "method": method if nm is None else f"nm {nm[0]}:{nm[1]}",
                    "sparsity": round(sparsity, 4),
                    "density": report["overall_masked"],
                    "acc_pruned": acc_pruned,
                    "acc_finetuned": acc_ft,
                    "condensed_gap": gap,
                }
            )
            bar.update()
    bar.close()
    gaps = [r["condensed_gap"] for r in rows if r["condensed_gap"] is not None]
    return {
        "rows": rows,
        "dense": dense_rows,
        "checks": {
            "exact_density": {"passed": bool(exact_density), "detail": "nnz == floor(size*(1-s)) per leaf"},
            "constant_fan_in": {"passed": bool(constant_fan_in), "detail": "every column keeps k inputs"},
            "nm_groups": {"passed": bool(nm_ok), "detail": "every group of M inputs keeps N"},
            "condensed_matches_dense": {
                "passed": bool(gaps) and max(gaps) < 1e-4,
                "detail": f"max |logit gap| {max(gaps):.2e}" if gaps else "no condensed run",
            },
        },
    }
