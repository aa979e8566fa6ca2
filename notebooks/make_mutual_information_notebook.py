"""Writes notebooks/mutual_information.ipynb (no outputs).

Run: `.venv/bin/python notebooks/make_mutual_information_notebook.py`.
"""

import pathlib

from _cells import INSTALL_CELL, write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

HERE = pathlib.Path(__file__).resolve().parent

CELLS = [
    new_markdown_cell(
        """# Infinite-width mutual information with `jaxsparse.infowidth`

Two papers measure how much a network's output remembers about its input, I(X; Z), using the **infinite
ensemble of infinitely wide networks**: the NTK/NNGP Gaussian process gives every input a Gaussian output
distribution p(z | x) at every training time t, so I(X; Z) is finite and can be bounded.

1. *Bounding generalization error with input compression* (arXiv 2207.09408): the input-compression bound
   GE ≤ √((2^I + ln(1/δ)) / (2N)), compared with the measured generalization gap.
2. *Monitoring shortcut learning using mutual information* (arXiv 2206.13034): I(X; Z) along training with and
   without a patch shortcut, and the rule I(X_test; Z) < I(X_train; Z).

This notebook builds kernels (native closed form, cross-checked against neural-tangents), the ensemble, the MI
bounds, the ICB on a binary digits task, and MI curves with a shortcut. `JAXSPARSE_NB_STEPS` scales the sizes."""
    ),
    new_code_cell(INSTALL_CELL),
    new_code_cell(
        """import math
import os

import numpy as np

STEPS = int(os.environ.get("JAXSPARSE_NB_STEPS", 1000))
N_TRAIN = max(60, min(1000, STEPS))   # training images per task
N_TEST = max(40, N_TRAIN // 2)"""
    ),
    new_markdown_cell("## Kernels: native closed form vs neural-tangents"),
    new_code_cell(
        """from jaxsparse import infowidth as iw

x = np.random.default_rng(0).standard_normal((6, 10))
native = iw.fc_kernel_fn(depth=2, activation="relu", W_std=1.5, b_std=0.1)
try:
    nt_kernel_fn = iw.make_kernel_fn("relu", 2, 1.5, 0.1, backend="neural_tangents")
    a, b = iw.evaluate_kernel(native, x, x[:3]), iw.evaluate_kernel(nt_kernel_fn, x, x[:3])
    print(f"native vs neural-tangents: max |NNGP diff| {np.abs(a.nngp - b.nngp).max():.1e}, "
          f"max |NTK diff| {np.abs(a.ntk - b.ntk).max():.1e}")
except ImportError as err:  # neural-tangents is optional; the native kernel is the fallback
    print("neural-tangents unavailable:", err)"""
    ),
    new_markdown_cell("## The ensemble and I(X; Z) on a binary task (digits 3 vs 5)"),
    new_code_cell(
        """x_tr, y_tr, x_te, y_te = iw.binary_digit_task("3v5", n_train=N_TRAIN, n_test=N_TEST, seed=0)
fit = iw.fit_ensemble(native, x_tr, iw.encode_targets(y_tr, 2), mode="ntk")
times = [0.0, 1.0, 10.0, 100.0, 1000.0]
for t, pred in zip(times, iw.predict_ensemble(fit, times)):
    est = iw.mi_bounds(pred.mean, pred.variance, num_samples=2)
    print(f"t={t:7g}: I_NCE {est.nce_bits:.3f} ± {est.nce_se_bits:.3f} bits <= I_LOO {est.loo_bits:.3f} bits")

# t = inf without regularisation: the training variance is exactly 0 and I_LOO infinite -> refused.
try:
    iw.icb_report(x_tr, y_tr, x_te, y_te, [iw.ICBModel("relu", native)], [math.inf])
except ValueError as err:
    print("refused:", str(err)[:60], "...")"""
    ),
    new_markdown_cell("## The input-compression bound vs the measured gap"),
    new_code_cell(
        """models = [iw.ICBModel("relu-d2-ntk", native),
          iw.ICBModel("erf-d1-ntk", iw.fc_kernel_fn(depth=1, activation="erf", W_std=1.5, b_std=0.1)),
          iw.ICBModel("relu-d2-nngp", native, mode="nngp", diag_reg=0.01)]
report = iw.icb_report(x_tr, y_tr, x_te, y_te, models, [10.0, 100.0, 1000.0], num_samples=2)
for r in report["rows"]:
    print(f"{r['model']:13s} t={r['t']:6g} gap {r['gap']:+.3f}  I_LOO {r['mi_loo_bits']:.2f} bits  ICB {r['icb']:.3f}"
          f"  {'holds' if r['holds'] else 'VIOLATED'}")
print(f"ICB rows holding: {report['fraction_holds']:.0%}; informative below {report['threshold_bits']:.2f} bits")

import matplotlib.pyplot as plt

plt.figure(figsize=(4, 3.5))
plt.scatter([r["gap"] for r in report["rows"]], [r["icb"] for r in report["rows"]])
plt.plot([0, 0.2], [0, 0.2], "k--", lw=0.8)
plt.xlabel("measured gap"); plt.ylabel("ICB"); plt.title("bound vs gap")
plt.show()"""
    ),
    new_markdown_cell("## Shortcut: MI along training with and without a patch"),
    new_code_cell(
        """xo, yo, xo_te, yo_te = iw.binary_digit_task("odd_even", n_train=N_TRAIN, n_test=N_TEST, normalize=False)
xs, mask = iw.add_patch_shortcut(xo, yo, correlation=1.0, patch_size=2)      # patch marks odd digits
xs_te, _ = iw.add_patch_shortcut(xo_te, yo_te, correlation=0.0, seed=1)      # random patch at test time
unit = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True) * 8.0
t_tr, t_te = iw.encode_targets(yo, 2), iw.encode_targets(yo_te, 2)
times = [0.0, 10.0, 100.0, 1000.0]
n_eval = min(N_TEST, N_TRAIN)
curves = {name: iw.mi_curves(native, unit(a), t_tr, unit(b), t_te, times, n_eval=n_eval, num_samples=2)
          for name, (a, b) in {"clean": (xo, xo_te), "shortcut": (xs, xs_te)}.items()}
for name, c in curves.items():
    print(f"{name:8s} I(X_train;Z) bits:", np.round(np.array(c["train_mi_loo"]) / math.log(2), 3),
          "test acc:", np.round(c["test_acc"], 3))
    print(f"{name:8s} rule flags a shortcut at t={times[-1]:g}:",
          iw.shortcut_detected(c["test_mi_loo"][-1], c["train_mi_loo"][-1]))"""
    ),
    new_markdown_cell("## Checks"),
    new_code_cell(
        """# Identical means carry no information; well-separated means make I_NCE reach log N.
zero = iw.mi_bounds(np.zeros((8, 2)), np.ones(8))
assert abs(zero.nce) < 1e-12 and abs(zero.loo) < 1e-12
far = iw.mi_bounds(1e3 * np.arange(8.0)[:, None], np.full(8, 0.01))
assert abs(far.nce - math.log(8)) < 1e-12 and far.loo > far.nce
# The bound by hand: N = 1000, I = 5 bits, delta = 0.05.
assert abs(iw.input_compression_bound(5.0, 1000) - math.sqrt((32 + math.log(20)) / 2000)) < 1e-15
# At t = 0 the ensemble mean is exactly zero and, for equal-norm inputs, I(X; Z) is 0.
p0 = iw.predict_ensemble(fit, 0.0)
assert np.all(p0.mean == 0.0) and abs(iw.mi_bounds(p0.mean, p0.variance).loo) < 1e-9
assert all(abs(c["train_mi_loo"][0]) < 1e-9 for c in curves.values())
print("NOTEBOOK CHECKS PASSED")"""
    ),
]


def main() -> None:
    write_notebook(CELLS, HERE / "mutual_information.ipynb")


if __name__ == "__main__":
    main()
