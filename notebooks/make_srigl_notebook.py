"""Writes notebooks/srigl.ipynb (no outputs stored). Run: `.venv/bin/python notebooks/make_srigl_notebook.py`."""

import pathlib

from nbformat.v4 import new_code_cell, new_markdown_cell

from _cells import INSTALL_CELL, write_notebook

HERE = pathlib.Path(__file__).resolve().parent

CELLS = [
    new_markdown_cell(
        """# SRigL on digits with `jaxsparse`

Dynamic sparse training with **SRigL** (Lasby et al. 2024, *Dynamic Sparse Training with Structured
Sparsity*, arXiv 2305.02299): RigL's drop/grow mask updates with a **constant fan-in** per output neuron
and **neuron ablation**. `jaxsparse.dst.srigl` is an optax transformation, so it drops into any training
loop.

This notebook

1. trains a dense MLP and a 90%-sparse SRigL MLP on scikit-learn's bundled 8x8 digits (no download),
2. plots the per-layer fan-in histogram and counts ablated neurons,
3. exports the sparse model to condensed layers (`condense_mlp`) and checks it computes the same logits
   as the masked dense model,
4. times condensed vs dense inference at batch 1.

Runs on CPU in about a minute. `STEPS` (below, or the `JAXSPARSE_NB_STEPS` environment variable) sets
the training length."""
    ),
    new_code_cell(INSTALL_CELL),
    new_code_cell(
        """import os

# Sizes: the test suite runs this notebook with a tiny JAXSPARSE_NB_STEPS.
STEPS = int(os.environ.get("JAXSPARSE_NB_STEPS", 1500))
SPARSITY = 0.9  # overall sparsity of the sparse layers (spread over them by ERK)
HIDDEN = (256, 256, 128)  # 64 -> 256 -> 256 -> 128 -> 10; the first and last layers stay dense
BATCH = 64
LEARNING_RATE = 2e-3
UPDATE_EVERY = max(2, STEPS // 30)  # ΔT: 50 steps between mask updates at STEPS = 1500
SEED = 0
TIMING_REPEATS = 300 if STEPS >= 500 else 30"""
    ),
    new_code_cell(
        """import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

from jaxsparse import dst
from jaxsparse.data import load_digits_split
from jaxsparse.nn import MLP, evaluate, fit_classifier, get_params, set_params

data = load_digits_split(seed=0)
print(f"jax {jax.__version__} on {jax.devices()[0].platform}; digits train {data.x_train.shape}, test {data.x_test.shape}")"""
    ),
    new_markdown_cell("## Dense baseline"),
    new_code_cell(
        """dense_model = MLP(data.input_shape[0], HIDDEN, data.num_classes, rngs=nnx.Rngs(SEED))
fit_classifier(
    dense_model, optax.adam(LEARNING_RATE), data.x_train, data.y_train,
    steps=STEPS, batch_size=BATCH, seed=SEED, progress=False,
)
dense_acc = evaluate(dense_model, data.x_test, data.y_test)["accuracy"]
print(f"dense accuracy: {dense_acc:.4f}")"""
    ),
    new_markdown_cell(
        """## SRigL

`dst.srigl` wraps the inner optimizer. Its state (`SparseState`) holds the masks; pruned weights are
exactly zero after every update. Mask updates happen every `UPDATE_EVERY` steps until 75% of training,
with a cosine-annealed drop fraction. We start from the masked model with SRigL's fan-in-aware rescaling
(`apply_initial_masks(..., rescale=True)`)."""
    ),
    new_code_cell(
        """model = MLP(data.input_shape[0], HIDDEN, data.num_classes, rngs=nnx.Rngs(SEED))
tx = dst.srigl(
    optax.adam(LEARNING_RATE), sparsity=SPARSITY, key=jax.random.key(1000 + SEED),
    update_every=UPDATE_EVERY, total_steps=STEPS, drop_fraction=0.3, gamma_sal=0.3,
)
initial_state = tx.init(get_params(model))  # fit_classifier's tx.init makes the same masks (same key)
set_params(model, dst.apply_initial_masks(get_params(model), initial_state, rescale=True))

optimizer, losses = fit_classifier(
    model, tx, data.x_train, data.y_train, steps=STEPS, batch_size=BATCH, seed=SEED, progress=False
)
srigl_acc = evaluate(model, data.x_test, data.y_test)["accuracy"]
masks = dst.find_sparse_state(nnx.as_pure(optimizer.opt_state)).masks
print(f"srigl accuracy: {srigl_acc:.4f}  (dense {dense_acc:.4f}, difference {srigl_acc - dense_acc:+.4f})")

# Pruned weights are exactly zero.
params = get_params(model)
for i, layer in enumerate(model.layers):
    m = masks["layers"][i]["kernel"]
    if m is not None:
        assert bool(jnp.all(jnp.where(m, True, layer.kernel[...] == 0))), f"layer {i}: pruned weight != 0"
print("pruned weights are exactly zero")"""
    ),
    new_markdown_cell(
        """## Constant fan-in and ablated neurons

Every surviving neuron of a sparse layer has the same fan-in; ablated neurons (fan-in 0) lost their
weights because too few of them were salient. `fan_in_histogram` counts neurons per fan-in."""
    ),
    new_code_cell(
        """histogram = dst.fan_in_histogram(masks)
summary = dst.mask_summary(masks)
for name, s in summary.items():
    print(
        f"{name}: {s['n_active']}/{s['n_out']} neurons active, {s['n_ablated']} ablated, "
        f"fan-in {s['fan_ins']}, density {s['density']:.4f}"
    )
    assert len(s["fan_ins"]) == 1, "SRigL keeps one fan-in per layer"
print("ablated neurons:", {name: s["n_ablated"] for name, s in summary.items()})

fig, axes = plt.subplots(1, len(histogram), figsize=(5 * len(histogram), 3.2), squeeze=False)
for ax, (name, counts) in zip(axes[0], histogram.items()):
    labels = [str(k) for k in counts]
    colors = ["tab:red" if k == 0 else "tab:blue" for k in counts]
    ax.bar(labels, list(counts.values()), color=colors)
    ax.set_title(f"{name}\\n(red: ablated neurons)")
    ax.set_xlabel("fan-in (active inputs per neuron)")
    ax.set_ylabel("neurons")
fig.tight_layout()
plt.show()"""
    ),
    new_markdown_cell(
        """## Export to condensed layers

`condense_mlp` turns each sparse layer into a `CondensedLinear` (per neuron: `k` values and input ids),
removes ablated neurons (their constant output folds into the next layer's bias), and keeps dense layers
dense. The result must compute the same logits as the masked dense model."""
    ),
    new_code_cell(
        """n_layers = len(model.layers)
kernels = [model.layers[i].kernel[...] for i in range(n_layers)]
biases = [model.layers[i].bias[...] for i in range(n_layers)]
layer_masks = [masks["layers"][i]["kernel"] for i in range(n_layers)]
condensed = dst.condense_mlp(kernels, biases, layer_masks, implementation="xla")

x_test = jnp.asarray(data.x_test)
gap = float(jnp.max(jnp.abs(condensed(x_test) - model(x_test))))
condensed_acc = evaluate(condensed, data.x_test, data.y_test)["accuracy"]
print(f"condensed accuracy {condensed_acc:.4f} (masked dense {srigl_acc:.4f}); max |logit gap| {gap:.2e}")
assert gap < 1e-4, f"condensed export differs from the masked dense model by {gap}"
for i, layer in enumerate(condensed.layers):
    shape = tuple(layer.values.shape) if hasattr(layer, "values") else tuple(layer.kernel.shape)
    print(f"layer {i}: {type(layer).__name__:<15} {shape}")
print(f"condensed matches dense: max |logit gap| = {gap:.2e}")"""
    ),
    new_markdown_cell(
        """## Inference time at batch 1

Both models jitted; the two are timed alternately and we report medians. This MLP is tiny, so
per-call dispatch dominates; `python -m benchmarks --only condensed_inference` measures a 3072 -> 768
layer, where the gather's advantage (or not) at small batch is visible."""
    ),
    new_code_cell(
        """def jitted(module):
    graphdef, state = nnx.split(module)
    fn = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    return lambda x: fn(state, x)


x1 = x_test[:1]
runners = {"masked dense": jitted(model), "condensed (gather)": jitted(condensed)}
for run in runners.values():
    jax.block_until_ready(run(x1))  # compile

times = {name: [] for name in runners}
for _ in range(TIMING_REPEATS):
    for name, run in runners.items():
        start = time.perf_counter()
        jax.block_until_ready(run(x1))
        times[name].append(time.perf_counter() - start)
medians = {name: float(np.median(t)) for name, t in times.items()}
for name, t in medians.items():
    print(f"{name:<20} {t * 1e6:8.1f} µs per call (median of {TIMING_REPEATS})")
print(f"condensed / dense time at batch 1: {medians['condensed (gather)'] / medians['masked dense']:.2f}x")"""
    ),
    new_code_cell(
        """print(
    f"SUMMARY steps={STEPS} sparsity={SPARSITY}: dense {dense_acc:.4f}, srigl {srigl_acc:.4f}, "
    f"ablated {sum(s['n_ablated'] for s in summary.values())}, condensed gap {gap:.1e}"
)
print("NOTEBOOK CHECKS PASSED")"""
    ),
]


def main() -> None:
    write_notebook(CELLS, HERE / "srigl.ipynb")


if __name__ == "__main__":
    main()
