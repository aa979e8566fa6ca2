"""SRigL reproduction on digits: dense vs static vs SET vs RigL vs SRigL at a fixed sparsity."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jaxsparse.data import load_digits_split
from jaxsparse.nn import MLP, SmallCNN, evaluate, fit_classifier, get_params, set_params

from ._condense import condense_mlp, fan_in_histogram, mask_summary
from ._updaters import apply_initial_masks, find_sparse_state, rigl, sparse_evolutionary, srigl, static_sparse

__all__ = ["METHODS", "dst_comparison"]

METHODS = ("dense", "static", "set", "rigl", "srigl")


def _make_tx(method: str, *, learning_rate, sparsity, key, update_every, total_steps, drop_fraction, gamma_sal):
    inner = optax.adam(learning_rate)
    dynamic = dict(
        sparsity=sparsity, key=key, update_every=update_every, total_steps=total_steps, drop_fraction=drop_fraction
    )
    if method == "dense":
        return inner
    if method == "static":
        return static_sparse(inner, sparsity=sparsity, key=key)
    if method == "set":
        return sparse_evolutionary(inner, **dynamic)
    if method == "rigl":
        return rigl(inner, **dynamic)
    if method == "srigl":
        return srigl(inner, gamma_sal=gamma_sal, **dynamic)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _build(model_kind: str, data, seed: int):
    if model_kind == "mlp":
        return MLP(data.input_shape[0], (256, 256, 128), data.num_classes, rngs=nnx.Rngs(seed))
    if model_kind == "cnn":
        return SmallCNN(1, data.num_classes, image_size=8, rngs=nnx.Rngs(seed))
    raise ValueError(f"model must be 'mlp' or 'cnn', got {model_kind!r}")


def _condensed_gap(model: MLP, masks, x) -> float:
    """Max |logit| gap between the trained masked MLP and its condensed export (ablated neurons removed)."""
    n = len(model.layers)
    kernels = [model.layers[i].kernel[...] for i in range(n)]
    biases = [model.layers[i].bias[...] for i in range(n)]
    layer_masks = [masks["layers"][i]["kernel"] for i in range(n)]
    exported = condense_mlp(kernels, biases, layer_masks, implementation="xla")
    xb = jnp.asarray(x)
    return float(jnp.max(jnp.abs(exported(xb) - model(xb))))


def dst_comparison(
    *,
    model: str = "mlp",
    methods: tuple[str, ...] = METHODS,
    seeds: tuple[int, ...] = (0, 1, 2),
    sparsity: float = 0.9,
    steps: int = 1500,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    update_every: int = 50,
    drop_fraction: float = 0.3,
    gamma_sal: float = 0.3,
    progress: bool = True,
) -> dict:
    """Trains each method on digits and returns {"rows", "fan_in_histograms", "mask_summaries", "checks"}.

    Each row: model, method, seed, accuracy (test), final_loss, train_time_s (the first seed of a method also
    compiles its training step, which the later seeds reuse), and for sparse methods the
    overall density of the sparse leaves, ablated neurons, and (SRigL MLP) the condensed-export gap.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {methods!r}")
    if not seeds:
        raise ValueError("seeds must be non-empty")
    data = load_digits_split(seed=0, flatten=(model == "mlp"))
    rows, histograms, summaries = [], {}, {}
    constant_fan_in, exact_zero = True, True
    gaps = []
    bar = tqdm(total=len(methods) * len(seeds), desc=f"srigl/{model}", disable=not progress)
    # One transformation per method drives every seed's training step, so each method compiles once; a seed's
    # own transformation (its key: initial masks and the PRNG stream in the state) only builds its state.
    shared_tx = {}
    for seed in seeds:
        for method in methods:
            net = _build(model, data, seed)
            tx = _make_tx(
                method, learning_rate=learning_rate, sparsity=sparsity, key=jax.random.key(1000 + seed),
                update_every=update_every, total_steps=steps, drop_fraction=drop_fraction, gamma_sal=gamma_sal,
            )  # fmt: skip
            step_tx = shared_tx.setdefault(method, tx)
            if method != "dense":
                # Start from the masked model, as the reference implementations do.
                state = tx.init(get_params(net))
                set_params(net, apply_initial_masks(get_params(net), state, rescale=(method == "srigl")))
            start = time.perf_counter()
            optimizer, losses = fit_classifier(
                net, step_tx, data.x_train, data.y_train, steps=steps, batch_size=batch_size, seed=seed,
                progress=False, init_tx=tx,
            )  # fmt: skip
            elapsed = time.perf_counter() - start
            metrics = evaluate(net, data.x_test, data.y_test)
            row = {
                "model": model,
                "method": method,
                "seed": seed,
                "accuracy": metrics["accuracy"],
                "final_loss": float(losses[-50:].mean()),
                "train_time_s": elapsed,
            }
            if method != "dense":
                masks = find_sparse_state(nnx.as_pure(optimizer.opt_state)).masks
                params = get_params(net)
                leaves_m = jax.tree.leaves(masks, is_leaf=lambda v: v is None)
                leaves_p = jax.tree.leaves(params)
                sparse_pairs = [(m, p) for m, p in zip(leaves_m, leaves_p, strict=True) if m is not None]
                exact_zero &= all(bool(jnp.all(jnp.where(m, True, p == 0))) for m, p in sparse_pairs)
                summary = mask_summary(masks)
                row["density"] = float(sum(int(np.asarray(m).sum()) for m, _ in sparse_pairs)) / float(
                    sum(m.size for m, _ in sparse_pairs)
                )
                row["ablated_neurons"] = sum(s["n_ablated"] for s in summary.values())
                if method == "srigl":
                    constant_fan_in &= all(len(s["fan_ins"]) == 1 for s in summary.values())
                    histograms[f"{model}/seed{seed}"] = fan_in_histogram(masks)
                    summaries[f"{model}/seed{seed}"] = summary
                    if model == "mlp":
                        gap = _condensed_gap(net, masks, data.x_test)
                        row["condensed_gap"] = gap
                        gaps.append(gap)
            rows.append(row)
            bar.update()
    bar.close()
    checks = {
        "pruned_weights_exactly_zero": {"passed": bool(exact_zero), "detail": "after training, every method"},
    }
    if "srigl" in methods:
        checks["srigl_constant_fan_in"] = {"passed": bool(constant_fan_in), "detail": "every active neuron"}
    if gaps:
        checks["condensed_export_matches"] = {
            "passed": max(gaps) < 1e-4,
            "detail": f"max |logit gap| {max(gaps):.2e} (ablated neurons removed, next layer sliced)",
        }
    return {"rows": rows, "fan_in_histograms": histograms, "mask_summaries": summaries, "checks": checks}
