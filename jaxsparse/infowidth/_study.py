"""Experiments behind ``jaxsparse reproduce icb`` and ``jaxsparse reproduce shortcut`` (binary digit tasks)."""

import math
from collections.abc import Sequence

import numpy as np

from ._bound import ICBModel, encode_targets, icb_report, input_compression_bound
from ._gp import evaluate_kernel, fit_ensemble, predict_ensemble
from ._kernels import fc_kernel_fn
from ._mi import mi_bounds
from ._shortcut import add_patch_shortcut, mi_curves, shortcut_detected

__all__ = ["DIGIT_TASKS", "binary_digit_task", "icb_study", "make_kernel_fn", "shortcut_study"]

# Binary tasks from scikit-learn's digits: (negative classes, positive classes).
DIGIT_TASKS = {
    "odd_even": ((0, 2, 4, 6, 8), (1, 3, 5, 7, 9)),
    "low_high": ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9)),
    "3v5": ((3,), (5,)),
    "4v9": ((4,), (9,)),
    "1v7": ((1,), (7,)),
    "3v8": ((3,), (8,)),
}


def _unit_scale(x: np.ndarray) -> np.ndarray:
    """Scales every input to norm sqrt(d): all ``K(x, x)`` are equal, so at t = 0 I(X; Z) = 0 exactly."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.linalg.norm(x, axis=1, keepdims=True) * math.sqrt(x.shape[1])


def binary_digit_task(
    task: str, *, n_train: int | None = None, n_test: int | None = None, seed: int = 0, normalize: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A binary task from digits: ``(x_train, y_train, x_test, y_test)`` with labels in {0, 1}.

    The stratified 60/40 split of :func:`jaxsparse.data.load_digits_split` (seed ``seed``) is filtered to the
    task's classes and subsampled (seeded) to at most ``n_train`` / ``n_test`` rows. With ``normalize`` every
    input is scaled to norm sqrt(64) (raw pixel images otherwise, in [0, 1]).

    Raises:
        ValueError: Unknown task or non-positive sizes.
    """
    from jaxsparse.data import load_digits_split

    if task not in DIGIT_TASKS:
        raise ValueError(f"task must be one of {sorted(DIGIT_TASKS)}, got {task!r}")
    for name, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and value < 2:
            raise ValueError(f"{name} must be >= 2 (or None for all rows), got {value}")
    neg, pos = DIGIT_TASKS[task]
    split = load_digits_split(seed=seed, test_fraction=0.4)
    rng = np.random.default_rng(seed)
    out = []
    for x, y, n in ((split.x_train, split.y_train, n_train), (split.x_test, split.y_test, n_test)):
        keep = np.flatnonzero(np.isin(y, neg + pos))
        keep = rng.permutation(keep)[: n if n is not None else len(keep)]
        xs = np.asarray(x[keep], dtype=np.float64)
        out += [_unit_scale(xs) if normalize else xs, np.isin(y[keep], pos).astype(np.int64)]
    return tuple(out)


def make_kernel_fn(activation: str, depth: int, W_std: float, b_std: float, backend: str = "native"):
    """A fully connected ``kernel_fn``: native closed form, or neural-tangents' ``stax`` (``backend``)."""
    if backend == "native":
        return fc_kernel_fn(depth=depth, activation=activation, W_std=W_std, b_std=b_std)
    if backend != "neural_tangents":
        raise ValueError(f"backend must be 'native' or 'neural_tangents', got {backend!r}")
    from jaxsparse._compat import neural_tangents as nt_compat

    stax = nt_compat.stax()
    act = {"relu": stax.Relu, "erf": stax.Erf}[activation]
    layers = []
    for _ in range(depth):
        layers += [stax.Dense(512, W_std, b_std or None), act()]
    layers.append(stax.Dense(1, W_std, b_std or None))
    return stax.serial(*layers)[2]


def _arch_name(arch) -> str:
    act, depth, w, b, mode, reg = arch
    return f"{act}-d{depth}-w{w:g}-b{b:g}-{mode}-reg{reg:g}"


def _check(passed: bool, detail: str) -> dict:
    return {"passed": bool(passed), "detail": detail}


def _spearman(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    from scipy.stats import spearmanr

    return float(spearmanr(a[ok], b[ok]).statistic)


def icb_study(
    *,
    tasks: Sequence[str] = ("odd_even", "low_high", "3v5", "4v9", "1v7"),
    n_train: int = 1000,
    n_test: int = 500,
    architectures: Sequence[tuple] = (
        ("relu", 1, 1.5, 0.1, "ntk", 0.0),
        ("relu", 3, 1.5, 0.1, "ntk", 0.0),
        ("erf", 2, 1.5, 0.1, "ntk", 0.0),
        ("relu", 2, 1.5, 0.1, "nngp", 0.01),
    ),
    times: Sequence[float] = (1.0, 10.0, 100.0, 1000.0, 10000.0),
    random_label_fractions: Sequence[float] = (0.0, 0.25, 0.5, 1.0),
    sample_sizes: Sequence[int] = (50, 100, 200, 400),
    delta: float = 0.05,
    num_samples: int = 4,
    seed: int = 0,
    backend: str = "native",
    progress: bool = False,
) -> dict:
    """The input-compression bound on binary digit tasks, a sweep of architectures x times, plus two stress tests.

    1. Sweep: for every task, architecture ``(activation, depth, W_std, b_std, mode, diag_reg)`` and time, the
       ICB (from the leave-one-out MI in bits) vs the GP predictor's generalization gap.
    2. Label randomisation: on the first task with its best model (highest test accuracy), a fraction of the
       training labels is replaced by uniform random labels.
    3. Fewer samples: the same model on ``sample_sizes`` training subsets.

    Returns:
        ``{"rows", "label_rows", "size_rows", "checks", "metrics", "config"}`` (plain Python values).

    Raises:
        ValueError: On an unknown task, an empty sweep or invalid sizes / fractions.
    """
    if not tasks or not architectures or not times:
        raise ValueError("tasks, architectures and times must be non-empty")
    if any(not 0.0 <= f <= 1.0 for f in random_label_fractions):
        raise ValueError(f"random_label_fractions must lie in [0, 1], got {random_label_fractions}")
    if any(n < 2 for n in sample_sizes):
        raise ValueError(f"sample_sizes must be >= 2, got {sample_sizes}")
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(tasks) * len(architectures), desc="icb", disable=not progress) if tqdm else None
    rows, best_rows, data = [], {}, {}
    for task in tasks:
        x_tr, y_tr, x_te, y_te = binary_digit_task(task, n_train=n_train, n_test=n_test, seed=seed)
        data[task] = (x_tr, y_tr, x_te, y_te)
        models = [
            ICBModel(_arch_name(a), make_kernel_fn(a[0], a[1], a[2], a[3], backend), mode=a[4], diag_reg=a[5])
            for a in architectures
        ]
        report = icb_report(
            x_tr, y_tr, x_te, y_te, models, times, delta=delta, num_samples=num_samples, seed=seed,
            progress=(lambda _m: bar.update(1)) if bar is not None else None,
        )  # fmt: skip
        for r in report["rows"]:
            rows.append({"task": task, "n": report["n"], **r})
        best_rows[task] = {"task": task, "n": report["n"], **report["best"]}
    if bar is not None:
        bar.close()

    # Stress tests on the first task with its best model and time.
    task0 = tasks[0]
    best = best_rows[task0]
    arch = next(a for a in architectures if _arch_name(a) == best["model"])
    kernel_fn = make_kernel_fn(arch[0], arch[1], arch[2], arch[3], backend)
    model = ICBModel(best["model"], kernel_fn, mode=arch[4], diag_reg=arch[5])
    x_tr, y_tr, x_te, y_te = data[task0]
    rng = np.random.default_rng(seed + 1)
    label_rows = []
    for frac in random_label_fractions:
        y_noisy = y_tr.copy()
        flip = rng.permutation(len(y_tr))[: round(frac * len(y_tr))]
        y_noisy[flip] = rng.integers(0, 2, len(flip))
        r = icb_report(x_tr, y_noisy, x_te, y_te, [model], [best["t"]], delta=delta, num_samples=num_samples,
                       seed=seed, num_classes=2)["rows"][0]  # fmt: skip
        label_rows.append({"random_label_fraction": float(frac), **r})
    size_rows = []
    for n in sorted(set(int(n) for n in sample_sizes if n <= len(y_tr)) | {len(y_tr)}):
        idx = rng.permutation(len(y_tr))[:n]
        if len(np.unique(y_tr[idx])) < 2:
            continue
        r = icb_report(x_tr[idx], y_tr[idx], x_te, y_te, [model], [best["t"]], delta=delta,
                       num_samples=num_samples, seed=seed, num_classes=2)["rows"][0]  # fmt: skip
        size_rows.append({"n": n, **r})

    checks = _icb_checks(rows, best_rows, label_rows, size_rows, data[task0], architectures, backend)
    holds = [r["holds"] for r in rows]
    metrics = {
        "num_rows": len(rows),
        "fraction_holds": float(np.mean(holds)),
        "fraction_informative": float(np.mean([r["informative"] for r in rows])),
        "spearman_icb_gap": _spearman([r["icb"] for r in rows], [r["gap"] for r in rows]),
        "best": {
            t: {k: b[k] for k in ("model", "t", "test_acc", "gap", "icb", "mi_loo_bits")} for t, b in best_rows.items()
        },
        "mean_best_tightness": float(np.mean([b["icb"] - b["gap"] for b in best_rows.values()])),
    }  # fmt: skip
    return {
        "rows": rows,
        "best_rows": list(best_rows.values()),
        "label_rows": label_rows,
        "size_rows": size_rows,
        "checks": checks,
        "metrics": metrics,
    }


def _icb_checks(rows, best_rows, label_rows, size_rows, task0_data, architectures, backend) -> dict:
    x_tr, y_tr, _, _ = task0_data
    checks = {}
    # Structural: at t = 0 the ensemble mean is exactly zero and MI exactly zero (inputs have equal norms).
    kf = make_kernel_fn(*architectures[0][:4], backend=backend)
    fit = fit_ensemble(kf, x_tr, encode_targets(y_tr, 2), mode=architectures[0][4], diag_reg=architectures[0][5])
    p0 = predict_ensemble(fit, 0.0)
    max_mean = float(np.abs(p0.mean).max())
    checks["t0_ensemble_mean_zero"] = _check(max_mean == 0.0, f"max |mean| at t=0: {max_mean}")
    est0 = mi_bounds(p0.mean, p0.variance, num_samples=2)
    checks["t0_mi_zero_for_equal_norm_inputs"] = _check(
        abs(est0.nce) < 1e-9 and abs(est0.loo) < 1e-9, f"I_NCE={est0.nce:.2e}, I_LOO={est0.loo:.2e} nats at t=0"
    )
    same = mi_bounds(np.ones((16, 2)), np.full(16, 0.3), num_samples=2)
    checks["identical_means_mi_zero"] = _check(
        abs(same.nce) < 1e-12 and abs(same.loo) < 1e-12, f"I_NCE={same.nce:.1e}, I_LOO={same.loo:.1e} nats"
    )
    icb_hand = input_compression_bound(5.0, 1000, 0.05)
    checks["icb_formula_by_hand"] = _check(
        abs(icb_hand - math.sqrt((32 + math.log(20)) / 2000)) < 1e-15, f"ICB(5 bits, N=1000)={icb_hand:.4f}"
    )
    # Kernel cross-check against neural-tangents on a few inputs (result check: NT may be absent).
    try:
        nngp_diff, ntk_diff = 0.0, 0.0
        for a in architectures:
            native = evaluate_kernel(make_kernel_fn(*a[:4], backend="native"), x_tr[:12])
            nt = evaluate_kernel(make_kernel_fn(*a[:4], backend="neural_tangents"), x_tr[:12])
            nngp_diff = max(nngp_diff, float(np.abs(native.nngp - nt.nngp).max()))
            ntk_diff = max(ntk_diff, float(np.abs(native.ntk - nt.ntk).max()))
        # NNGP agrees to rounding; on the NTK diagonal (angle 0) arccos turns one ulp into ~sqrt(eps) (ref. §6).
        checks["native_kernel_matches_neural_tangents"] = _check(
            nngp_diff < 1e-12 and ntk_diff < 1e-6,
            f"max |native - neural-tangents|: NNGP {nngp_diff:.1e}, NTK {ntk_diff:.1e} (float64)",
        )
    except ImportError as err:
        checks["native_kernel_matches_neural_tangents"] = _check(False, f"neural-tangents unavailable: {err}")
    # Results, reported as measured.
    frac = float(np.mean([r["holds"] for r in rows]))
    checks["bound_holds_at_95pct"] = _check(frac >= 0.95, f"GE <= ICB in {frac:.1%} of {len(rows)} task/model/t rows")
    best_hold = [b["holds"] for b in best_rows.values()]
    checks["bound_holds_for_best_models"] = _check(
        all(best_hold), f"{sum(best_hold)}/{len(best_hold)} tasks' best model (highest test accuracy)"
    )
    best_inf = [b["icb"] < 0.5 for b in best_rows.values()]
    tight = ", ".join(f"{b['task']}: ICB {b['icb']:.3f} vs gap {b['gap']:.3f}" for b in best_rows.values())
    checks["bound_nonvacuous_for_best_models"] = _check(all(best_inf), tight)
    if len(label_rows) >= 2:
        lo, hi = label_rows[0], label_rows[-1]
        checks["mi_and_icb_rise_with_random_labels"] = _check(
            hi["mi_loo_bits"] > lo["mi_loo_bits"] and hi["icb"] > lo["icb"],
            f"I_LOO {lo['mi_loo_bits']:.2f} -> {hi['mi_loo_bits']:.2f} bits, ICB {lo['icb']:.3f} -> {hi['icb']:.3f} "
            f"(random-label fraction {lo['random_label_fraction']:g} -> {hi['random_label_fraction']:g})",
        )
        held = [r["holds"] for r in label_rows]
        checks["bound_holds_under_random_labels"] = _check(
            all(held),
            ", ".join(f"fraction {r['random_label_fraction']:g}: gap {r['gap']:+.3f} vs ICB {r['icb']:.3f}"
                      for r in label_rows),
        )  # fmt: skip
    if len(size_rows) >= 2:
        small, large = size_rows[0], size_rows[-1]
        checks["icb_rises_with_fewer_samples"] = _check(
            small["icb"] > large["icb"],
            f"ICB {small['icb']:.3f} at N={small['n']} vs {large['icb']:.3f} at N={large['n']}",
        )
    return checks


def shortcut_study(
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    task: str = "odd_even",
    n_train: int = 600,
    n_test: int = 300,
    n_eval: int = 300,
    times: Sequence[float] = (0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0),
    detect_time: float = 1000.0,
    activation: str = "relu",
    depth: int = 2,
    W_std: float = 1.5,
    b_std: float = 0.1,
    mode: str = "ntk",
    diag_reg: float = 0.0,
    patch_size: int = 2,
    patch_value: float = 1.0,
    estimator: str = "loo",
    num_samples: int = 2,
    backend: str = "native",
    progress: bool = False,
) -> dict:
    """MI vs training time with and without a patch shortcut, and Algorithm 1's verdict over seeds.

    For each seed: a clean training set, and a shortcut one where a white ``patch_size`` square marks the
    positive class in every training image (correlation 1); its test set carries the patch on a random half
    (correlation 0). The rule ``I(X_test; Z) < I(X_train; Z)`` (``estimator`` = ``"loo"`` or ``"nce"``) is
    evaluated at ``detect_time`` on both, so its false-positive rate on clean data is reported too.

    Returns:
        ``{"curves": {scenario: [per-seed mi_curves dicts]}, "rows", "checks", "metrics"}``.

    Raises:
        ValueError: Bad arguments (``detect_time`` not among ``times``, unknown estimator, ...).
    """
    if not seeds:
        raise ValueError("seeds must be non-empty")
    if estimator not in ("loo", "nce"):
        raise ValueError(f"estimator must be 'loo' or 'nce', got {estimator!r}")
    times = [float(t) for t in times]
    if float(detect_time) not in times:
        raise ValueError(f"detect_time {detect_time} must be one of times {times}")
    di = times.index(float(detect_time))
    kernel_fn = make_kernel_fn(activation, depth, W_std, b_std, backend)
    curves = {"clean": [], "shortcut": []}
    try:
        from tqdm.auto import tqdm

        seed_iter = tqdm(seeds, desc="shortcut", disable=not progress)
    except ImportError:  # pragma: no cover
        seed_iter = seeds
    patched_fraction = []
    for seed in seed_iter:
        x_tr, y_tr, x_te, y_te = binary_digit_task(task, n_train=n_train, n_test=n_test, seed=seed, normalize=False)
        xs_tr, mask_tr = add_patch_shortcut(x_tr, y_tr, correlation=1.0, patch_size=patch_size, value=patch_value,
                                            seed=seed)  # fmt: skip
        xs_te, mask_te = add_patch_shortcut(x_te, y_te, correlation=0.0, patch_size=patch_size, value=patch_value,
                                            seed=seed + 10_000)  # fmt: skip
        patched_fraction.append((float(np.mean(mask_tr == (y_tr == 1))), float(np.mean(mask_te))))
        t_tr, t_te = encode_targets(y_tr, 2), encode_targets(y_te, 2)
        for scenario, (a, b) in (("clean", (x_tr, x_te)), ("shortcut", (xs_tr, xs_te))):
            c = mi_curves(kernel_fn, _unit_scale(a), t_tr, _unit_scale(b), t_te, times, mode=mode, diag_reg=diag_reg,
                          n_eval=n_eval, num_samples=num_samples, seed=seed)  # fmt: skip
            c["seed"] = seed
            c["flagged"] = [
                shortcut_detected(te, tr)
                for tr, te in zip(c[f"train_mi_{estimator}"], c[f"test_mi_{estimator}"], strict=True)
            ]
            curves[scenario].append(c)
    rows = []
    for scenario in ("clean", "shortcut"):
        for c in curves[scenario]:
            rows.append(
                {
                    "scenario": scenario,
                    "seed": c["seed"],
                    "t": times[di],
                    "train_acc": c["train_acc"][di],
                    "test_acc": c["test_acc"][di],
                    "I_train_bits": c[f"train_mi_{estimator}"][di] / math.log(2),
                    "I_test_bits": c[f"test_mi_{estimator}"][di] / math.log(2),
                    "flagged": c["flagged"][di],
                }
            )
    checks, metrics = _shortcut_checks(curves, times, di, estimator, patched_fraction)
    return {"curves": curves, "times": times, "rows": rows, "checks": checks, "metrics": metrics}


def _shortcut_checks(curves, times, di, estimator, patched_fraction) -> tuple[dict, dict]:
    def mean_curve(scenario, key):
        return np.mean([c[key] for c in curves[scenario]], axis=0)

    checks = {}
    t0 = times.index(0.0) if 0.0 in times else None
    if t0 is not None:
        at0 = [abs(c[f"{s}_mi_{e}"][t0]) for sc in curves.values() for c in sc for s in ("train", "test")
               for e in ("loo", "nce")]  # fmt: skip
        checks["t0_mi_zero_for_norm_matched_inputs"] = _check(max(at0) < 1e-9, f"max |I| at t=0: {max(at0):.2e} nats")
    exact = all(p[0] == 1.0 for p in patched_fraction)
    checks["train_patch_correlation_exact_zero_mismatch"] = _check(
        exact, f"training patch == label in {min(p[0] for p in patched_fraction):.0%} of images; test patched "
        f"{np.mean([p[1] for p in patched_fraction]):.0%}",
    )  # fmt: skip
    key = f"train_mi_{estimator}"
    clean_i, short_i = mean_curve("clean", key), mean_curve("shortcut", key)
    below = [bool(s < c) for s, c, t in zip(short_i, clean_i, times, strict=True) if t > 0]
    checks["shortcut_train_mi_below_clean"] = _check(
        below[-1] if below else False,
        "mean I(X_train; Z) shortcut < clean at t>0: "
        + ", ".join(f"t={t:g}: {b}" for t, b in zip([t for t in times if t > 0], below, strict=True)),
    )  # fmt: skip
    flagged_short = [c["flagged"][di] for c in curves["shortcut"]]
    flagged_clean = [c["flagged"][di] for c in curves["clean"]]
    checks["rule_flags_shortcut_sets"] = _check(
        all(flagged_short), f"flagged {sum(flagged_short)}/{len(flagged_short)} shortcut runs at t={times[di]:g}"
    )
    checks["rule_does_not_flag_clean_sets"] = _check(
        not any(flagged_clean), f"flagged {sum(flagged_clean)}/{len(flagged_clean)} clean runs at t={times[di]:g}"
    )
    acc_drop = float(mean_curve("clean", "test_acc")[di] - mean_curve("shortcut", "test_acc")[di])
    checks["shortcut_hurts_test_accuracy"] = _check(
        acc_drop > 0, f"mean test accuracy clean - shortcut at t={times[di]:g}: {acc_drop:+.3f}"
    )
    metrics = {
        "detect_time": times[di],
        "true_positive_rate": float(np.mean(flagged_short)),
        "false_positive_rate": float(np.mean(flagged_clean)),
        "test_accuracy_drop": acc_drop,
        "mean_train_mi_bits": {s: (mean_curve(s, key) / math.log(2)).tolist() for s in curves},
        "mean_test_mi_bits": {s: (mean_curve(s, f"test_mi_{estimator}") / math.log(2)).tolist() for s in curves},
        "times": times,
    }
    return checks, metrics
