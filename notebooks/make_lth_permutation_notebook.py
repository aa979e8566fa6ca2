"""Writes notebooks/lth_permutation.ipynb (no outputs).

Run: `.venv/bin/python notebooks/make_lth_permutation_notebook.py`.
"""

import pathlib

from _cells import INSTALL_CELL, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = pathlib.Path(__file__).resolve().parent

CELLS = [
    new_markdown_cell(
        """# Lottery-ticket masks across basins with `jaxsparse.permute` and `jaxsparse.lth`

*Sparse Training from Random Initialization: Aligning Lottery Ticket Masks using Weight Symmetry*
(Adnan et al., ICML 2025, arXiv 2505.05143): a lottery-ticket mask found by iterative magnitude pruning (IMP) of
model A does not transfer to a new random init B, but the same mask permuted into B's basin does. This notebook

1. shows the permutation symmetry: permuting hidden units (weights, BatchNorm statistics, masks) leaves a model's
   function unchanged, and weight matching (Git Re-Basin) recovers a hidden permutation exactly,
2. trains dense A and B on scikit-learn's digits, finds A's IMP mask, matches B to A,
3. sparse-trains LTH (A's init + A's mask), naive (B's init + A's mask) and permuted (B's init + permuted mask).

`STEPS` (below, or `JAXSPARSE_NB_STEPS`) sets the training length."""
    ),
    new_code_cell(INSTALL_CELL),
    new_code_cell(
        """import os

STEPS = int(os.environ.get("JAXSPARSE_NB_STEPS", 1500))
WIDTH = 4 if STEPS >= 500 else 2
BLOCKS = 3 if STEPS >= 500 else 1  # ResNet-20 has 3 blocks per stage; 1 keeps the quick check fast"""
    ),
    new_markdown_cell("## 1. Permutation symmetry and weight matching (ResNet-20 with BatchNorm)"),
    new_code_cell(
        """import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse import lth, permute

resnet = lth.build_model("resnet20", input_shape=(8, 8, 1), num_classes=10, width=1, seed=0, blocks_per_stage=BLOCKS)
spec = lth.model_permutation_spec(resnet)  # stage streams shared, one permutation per block's inner channels
print("permutation groups:", {k: len(v) for k, v in spec.perm_to_axes.items()})

x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8, 8, 1)), jnp.float32)
resnet.eval()  # BatchNorm uses running statistics
state = lth.get_state(resnet)  # params + BatchNorm statistics
sizes = permute.permutation_sizes(spec, state)
perm = permute.random_permutation(sizes, seed=1)
before = resnet(x)
lth.set_state(resnet, permute.permute_params(spec, perm, state))
print("max |logit change| after permuting:", float(jnp.abs(resnet(x) - before).max()))

params = nnx.as_pure(nnx.state(resnet, nnx.Param))  # now the permuted model's params
found = permute.weight_matching(spec, params, permute.permute_params(spec, perm, params))
inverse = permute.invert_permutation(perm)
print("weight matching recovers the permutation:", all(np.array_equal(found.perm[k], inverse[k]) for k in sizes),
      "in", found.sweeps, "sweeps")"""
    ),
    new_markdown_cell("## 2. Dense A and B, A's lottery ticket, B matched to A"),
    new_code_cell(
        """from jaxsparse.data import load_digits_split

digits = load_digits_split(seed=0)
train_kw = dict(batch_size=128, momentum=0.9, weight_decay=5e-4)
models = {}
for name, seed in (("A", 0), ("B", 1)):
    models[name] = lth.build_model("mlp", input_shape=(64,), num_classes=10, width=WIDTH, seed=seed)
    out = lth.train_classifier(models[name], digits.x_train, digits.y_train, steps=STEPS, learning_rate=0.08,
                               seed=seed, checkpoint_steps=(0,), **train_kw)
    models[name + "_init"] = out["checkpoints"][0]
    acc = np.mean(lth.predict_logits(models[name], digits.x_test).argmax(-1) == digits.y_test)
    print(f"dense {name} accuracy: {acc:.4f}")

mlp_spec = lth.model_permutation_spec(models["A"])  # derived from the layer chain
params_a = nnx.as_pure(nnx.state(models["A"], nnx.Param))
params_b = nnx.as_pure(nnx.state(models["B"], nnx.Param))
match = permute.weight_matching(mlp_spec, params_a, params_b, seed=0)
print("matching objective by sweep:", np.round(match.objective_history, 2))


def retrain(mask_tree, r, start):
    lth.set_state(models["A"], start)  # the current weights ⊙ mask (pass rewind_params= to rewind instead)
    lth.train_classifier(models["A"], digits.x_train, digits.y_train, steps=max(STEPS // 10, 10),
                         learning_rate=0.01, seed=100 + r, mask_tree=mask_tree, **train_kw)
    return nnx.as_pure(nnx.state(models["A"], nnx.Param))


SPARSITIES = (0.8, 0.95)
imp = lth.iterative_magnitude_pruning(params_a, target_sparsities=SPARSITIES, fraction=0.2, retrain=retrain)
print("IMP densities by round:", [round(r["density"], 4) for r in imp["rounds"]])"""
    ),
    new_markdown_cell("## 3. LTH vs naive vs permuted sparse training"),
    new_code_cell(
        """from jaxsparse import masks

results = {}
inverse = permute.invert_permutation(match.perm)  # π aligns B to A, so π⁻¹ moves A's mask into B's basin
for s in SPARSITIES:
    mask_a = imp["masks"][s]
    mask_b = permute.permute_params(mlp_spec, inverse, mask_a)
    same = [r["nnz"] for r in masks.density_report(mask_a)["leaves"].values()] == [
        r["nnz"] for r in masks.density_report(mask_b)["leaves"].values()]
    print(f"sparsity {s}: permuted mask keeps per-layer density: {same}")
    for method, (init, m) in {"lth": (models["A_init"], mask_a), "naive": (models["B_init"], mask_a),
                              "permuted": (models["B_init"], mask_b)}.items():
        net = lth.build_model("mlp", input_shape=(64,), num_classes=10, width=WIDTH, seed=0)
        lth.set_state(net, init)
        lth.train_classifier(net, digits.x_train, digits.y_train, steps=STEPS, learning_rate=0.02, seed=7,
                             mask_tree=m, **train_kw)
        results[(s, method)] = float(np.mean(lth.predict_logits(net, digits.x_test).argmax(-1) == digits.y_test))
        print(f"  {method:9s} accuracy: {results[(s, method)]:.4f}")"""
    ),
    new_code_cell(
        """import matplotlib.pyplot as plt

plt.figure(figsize=(5, 3.2))
for method, style in (("lth", "o-"), ("naive", "s--"), ("permuted", "^-")):
    plt.plot([100 * s for s in SPARSITIES], [100 * results[(s, method)] for s in SPARSITIES], style, label=method)
plt.xlabel("sparsity (%)"); plt.ylabel("test accuracy (%)"); plt.legend(); plt.title("digits MLP, one seed")
plt.show()

assert float(jnp.abs(resnet(x) - before).max()) < 1e-4
assert all(np.array_equal(found.perm[k], inverse_k) for k, inverse_k in permute.invert_permutation(perm).items())
assert all(np.diff(match.objective_history) >= 0)
print("NOTEBOOK CHECKS PASSED")"""
    ),
]

if __name__ == "__main__":
    write_notebook(CELLS, HERE / "lth_permutation.ipynb")
