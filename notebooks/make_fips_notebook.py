"""Writes notebooks/fips.ipynb (no outputs stored). Run: `.venv/bin/python notebooks/make_fips_notebook.py`."""

import pathlib

from _cells import INSTALL_CELL, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = pathlib.Path(__file__).resolve().parent

CELLS = [
    new_markdown_cell(
        """# FiPS on a digits ViT with `jaxsparse`

**Fine-grained Parameter Sharing** (Üyük et al., arXiv 2411.09816): the MLPs of a group of consecutive
transformer blocks share one dense base U (d x r); every fc1/fc2 becomes a *sparse* combination of U's columns
(factors V_i, r x 4d). U and V start from the SVD of the blocks' concatenated kernels and are refined by
**block-wise reconstruction**: each compressed block is fed the original block's input and trained to match
its output, all blocks jointly, with RigL keeping the factors sparse.

This notebook

1. trains a small ViT on scikit-learn's bundled 8x8 digits (no download),
2. compresses its MLPs to 40% of their weights (factor sparsity 75%) and reports ranks and exact counts,
3. runs block-wise reconstruction and plots its loss curve,
4. checks: pruned factor weights are exactly 0, rank = d at sparsity 0 reproduces the model exactly, and the
   condensed factor kernels compute the same logits.

Runs on CPU in a few minutes. `STEPS` (below, or the `JAXSPARSE_NB_STEPS` environment variable) sets the
training length."""
    ),
    new_code_cell(INSTALL_CELL),
    new_code_cell(
        """import os

# Sizes: the test suite runs this notebook with a tiny JAXSPARSE_NB_STEPS.
STEPS = int(os.environ.get("JAXSPARSE_NB_STEPS", 800))  # ViT training steps
RECON_STEPS = max(20, STEPS // 2)  # block-wise reconstruction steps
BUDGET = 0.4  # keep 40% of the MLP weights
FACTOR_SPARSITY = 0.75
DIM, DEPTH, HEADS = (64, 4, 4) if STEPS >= 200 else (16, 2, 2)
GROUPS = [list(range(DEPTH))]  # one shared base for all blocks (DeiT-B groups 4 blocks)"""
    ),
    new_code_cell(
        """import jax
import numpy as np
import optax
from flax import nnx

from jaxsparse import sharing
from jaxsparse.data import load_digits_split
from jaxsparse.nn import ViT, evaluate, fit_classifier

data = load_digits_split(seed=0)
model = ViT(data.num_classes, dim=DIM, depth=DEPTH, heads=HEADS, rngs=nnx.Rngs(0))
schedule = optax.warmup_cosine_decay_schedule(0.0, 3e-3, max(1, STEPS // 20), STEPS)
fit_classifier(model, optax.adamw(schedule, weight_decay=1.0), data.x_train, data.y_train,
               steps=STEPS, batch_size=64, seed=0, desc="ViT")
original_acc = evaluate(model, data.x_test, data.y_test)["accuracy"]
print(f"original accuracy: {original_acc:.4f}")"""
    ),
    new_markdown_cell(
        """## Compress: shared SVD base, global magnitude masks

`fips_rank` turns the budget into a rank: budget = p * 8nd^2 weights, each rank costs d (a column of U) plus
8nd(1 - s) factor nonzeros. With s = 0.75 the rank can exceed d; the base is then padded with zero columns
(and V with scaled copies of its top rows) so the model is unchanged at initialisation."""
    ),
    new_code_cell(
        """calib = np.random.default_rng(0).permutation(len(data.x_train))[:512]
inputs, outputs = sharing.cache_block_io(model, data.x_train[calib], batch_size=256)  # teacher signals

compressed = nnx.clone(model)
info = sharing.compress_mlps(compressed, GROUPS, budget=BUDGET, sparsity=FACTOR_SPARSITY)
print("ranks:", info["ranks"], "(d =", DIM, ")")
print("counted parameters:", info["total"]["total"], f"= {info['fraction']:.4f} of the MLP weights")
init_acc = evaluate(compressed, data.x_test, data.y_test)["accuracy"]
print(f"accuracy after SVD init: {init_acc:.4f}")"""
    ),
    new_code_cell(
        """import matplotlib.pyplot as plt

result = sharing.reconstruct(compressed, inputs, outputs, steps=RECON_STEPS, batch_size=128,
                             learning_rate=1e-3, key=jax.random.key(0), masks=info["masks"],
                             sparsifier="rigl", update_every=max(5, RECON_STEPS // 12))
recon_acc = evaluate(compressed, data.x_test, data.y_test)["accuracy"]
print(f"accuracy after reconstruction: {recon_acc:.4f} (original {original_acc:.4f})")
plt.figure(figsize=(5, 3))
plt.semilogy(result["loss_curve"])
plt.xlabel("step"); plt.ylabel("summed block MSE"); plt.title("block-wise reconstruction")
plt.show()"""
    ),
    new_markdown_cell("""## Checks"""),
    new_code_cell(
        """# 1. Pruned factor weights are exactly zero and RigL kept the number of nonzeros.
state = nnx.as_pure(nnx.state(compressed, nnx.Param))
pairs = []
jax.tree_util.tree_map(lambda m, w: pairs.append((np.asarray(m), np.asarray(w))) if m is not None else None,
                       result["masks"], state, is_leaf=lambda x: x is None)
outside = sum(int(np.count_nonzero(w[~m])) for m, w in pairs)
nnz = sum(int(m.sum()) for m, _ in pairs)
assert outside == 0 and nnz == info["total"]["factor_nnz"], (outside, nnz)
print(f"pruned factor weights are exactly zero ({nnz} nonzeros kept)")

# 2. Rank d at sparsity 0 reproduces the original model (the SVD of a rank <= d matrix is exact).
exact = nnx.clone(model)
sharing.compress_mlps(exact, GROUPS, ranks=DIM, sparsity=0.0)
gap = float(np.max(np.abs(np.asarray(exact(data.x_test[:64])) - np.asarray(model(data.x_test[:64])))))
assert gap < 1e-3, gap
print(f"rank d, sparsity 0 reproduces the model: max |logit gap| {gap:.1e}")

# 3. The factors as condensed kernels (inference) give the same logits.
fast = nnx.clone(compressed)
for block in fast.blocks:
    block.mlp = block.mlp.with_implementation("condensed")
cgap = float(np.max(np.abs(np.asarray(fast(data.x_test[:64])) - np.asarray(compressed(data.x_test[:64])))))
assert cgap < 1e-3, cgap
print(f"condensed factors match dense: max |logit gap| {cgap:.1e}")"""
    ),
    new_code_cell(
        """print(f"SUMMARY steps={STEPS} budget={BUDGET}: original {original_acc:.4f}, SVD init {init_acc:.4f}, "
      f"reconstructed {recon_acc:.4f}, fraction {info['fraction']:.4f}")
print("NOTEBOOK CHECKS PASSED")"""
    ),
]


def main() -> None:
    write_notebook(CELLS, HERE / "fips.ipynb")


if __name__ == "__main__":
    main()
