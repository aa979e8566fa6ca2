"""The input-compression bound end to end for N = 2000 training inputs on CPU (target <= 30 s per bound).

One ICB = train-train and test-train kernels, the eigendecomposition of the 2000 x 2000 NTK, the ensemble's mean
and variance on train and test inputs at one time t, the leave-one-out and InfoNCE MI bounds on the training set
(4 draws per input) and the bound itself. Timed side by side with two kernel sources for the same network
(Dense-ReLU-Dense-ReLU-Dense, W_std 1.5, b_std 0.1): the native closed form (float64 numpy) and
neural-tangents' analytic ``kernel_fn`` (float64 via ``jax.enable_x64``); the stage split is for the native one.

Data: digits has 1797 images, so the 2000 training inputs are drawn from the images and their one-pixel
right-shifted copies (3594 in all, odd vs even); 500 others form the test set.

Run: `python -m benchmarks --only icb` (`--quick`, `--tiny` for N = 200).
"""

import time

import jax.numpy as jnp
import numpy as np

from jaxsparse.infowidth import ICBModel, fit_ensemble, icb_report, make_kernel_fn, mi_bounds, predict_ensemble

from ._timing import interleaved_medians, ratio_line

NAME = "icb"


def _data(n_train: int, n_test: int):
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images / 16.0
    shifted = np.zeros_like(images)
    shifted[:, :, 1:] = images[:, :, :-1]
    x = np.concatenate([images, shifted]).reshape(-1, 64)
    y = np.concatenate([digits.target, digits.target]) % 2
    x = x / np.linalg.norm(x, axis=1, keepdims=True) * 8.0
    order = np.random.default_rng(0).permutation(len(x))
    tr, te = order[:n_train], order[n_train : n_train + n_test]
    return x[tr], y[tr], x[te], y[te]


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    n_train, n_test = (200, 100) if tiny else (2000, 500)
    repeats = 1 if (quick or tiny) else 3
    x_tr, y_tr, x_te, y_te = _data(n_train, n_test)
    t = 1000.0
    kernels = {b: make_kernel_fn("relu", 2, 1.5, 0.1, backend=b) for b in ("native", "neural_tangents")}
    results = {}

    def one_bound(backend):
        def call():
            report = icb_report(x_tr, y_tr, x_te, y_te, [ICBModel(backend, kernels[backend])], [t], num_samples=4)
            results[backend] = report["rows"][0]
            return jnp.asarray(report["rows"][0]["icb"])

        return call

    # Each call takes seconds, so one untimed warm-up call is enough (none at tiny size, where only structure counts).
    timings = interleaved_medians(
        {f"icb_{b}": one_bound(b) for b in kernels}, repeats=repeats, inner=1, warmup=0 if tiny else 1
    )
    # Stage split for the native kernel (one pass each).
    stages = {}
    start = time.perf_counter()
    fit = fit_ensemble(kernels["native"], x_tr, 2.0 * y_tr[:, None] - 1.0)
    stages["kernel_and_eigh_s"] = time.perf_counter() - start
    start = time.perf_counter()
    train_pred = predict_ensemble(fit, t)
    predict_ensemble(fit, t, x_te)
    stages["predict_train_and_test_s"] = time.perf_counter() - start
    start = time.perf_counter()
    mi_bounds(train_pred.mean, train_pred.variance, num_samples=4)
    stages["mi_bounds_s"] = time.perf_counter() - start

    native_s = timings["icb_native"]["median_s"]
    nt_s = timings["icb_neural_tangents"]["median_s"]
    row = results["native"]
    agree = abs(results["native"]["icb"] - results["neural_tangents"]["icb"])
    print(f"  ICB for N={n_train} training / {n_test} test inputs, relu depth 2 NTK at t={t:g}, 4 MI draws per input")
    print(ratio_line("native closed-form kernel", native_s, native_s, kind="x native"))
    print(ratio_line("neural-tangents kernel_fn", nt_s, native_s, kind="x native"))
    print("  native stages: " + ", ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    print(f"  train acc {row['train_acc']:.3f}, test acc {row['test_acc']:.3f}, I_LOO {row['mi_loo_bits']:.2f} bits, "
          f"ICB {row['icb']:.3f}; |ICB native - ICB neural-tangents| = {agree:.1e}; target <= 30 s: "
          f"{'met' if native_s <= 30 else 'MISSED'}")  # fmt: skip
    return {
        "sizes": {"n_train": n_train, "n_test": n_test, "t": t, "num_samples": 4},
        "native": {"median_s": native_s, **timings["icb_native"]},
        "neural_tangents": {"median_s": nt_s, **timings["icb_neural_tangents"]},
        "neural_tangents_over_native": nt_s / native_s,
        "native_stages": stages,
        "icb": row["icb"],
        "icb_abs_diff_native_vs_neural_tangents": agree,
        "mi_loo_bits": row["mi_loo_bits"],
        "within_30s_target": bool(native_s <= 30.0),
    }
