"""`jaxsparse reproduce rebasin`: lottery-ticket masks transfer to a new init once permuted into its basin."""

import dataclasses
import pathlib

import numpy as np

from jaxsparse.lth import lth_permutation_experiment

from ._plots import plt, save_figure

_LABELS = {
    "lth": "LTH (A init + A mask)",
    "naive": "naive (B init + A mask)",
    "permuted": "permuted (B init + π⁻¹(A mask))",
}


def _pm(stat: dict, scale: float = 100.0, digits: int = 2) -> str:
    return f"{scale * stat['mean']:.{digits}f} ± {scale * stat['std']:.{digits}f}"


def run(config, out_dir: pathlib.Path) -> dict:
    out_dir = pathlib.Path(out_dir)
    result = lth_permutation_experiment(**dataclasses.asdict(config), progress=True)
    sparsities = list(config.sparsities)
    table, metrics = [], {}
    for entry in result["summary"]:
        s, method = entry["sparsity"], entry["method"]
        row = {"sparsity": f"{100 * s:g}%", "method": method, "test accuracy %": _pm(entry["accuracy"])}
        if "disagreement" in entry:
            row["ensemble disagreement %"] = _pm(entry["disagreement"])
            row["ensemble JS (nats)"] = _pm(entry["js"], scale=1.0, digits=4)
            row["ensemble acc %"] = _pm(entry["ensemble_accuracy"])
        table.append(row)
        metrics[f"acc_{method}_s{round(100 * s)}"] = entry["accuracy"]["mean"]
    dense = [d["accuracy"] for d in result["dense"]]
    metrics["dense_accuracy_mean"] = float(np.mean(dense))

    fig, axes = plt.subplots(1, 2 if result["diversity"] else 1, figsize=(10 if result["diversity"] else 5.5, 3.8))
    axes = np.atleast_1d(axes)
    for method, style in (("lth", "o-"), ("naive", "s--"), ("permuted", "^-")):
        stats = [
            next(e["accuracy"] for e in result["summary"] if e["sparsity"] == s and e["method"] == method)
            for s in sparsities
        ]
        axes[0].errorbar(
            [100 * s for s in sparsities],
            [100 * st["mean"] for st in stats],
            yerr=[100 * st["std"] for st in stats],
            fmt=style,
            capsize=3,
            label=_LABELS[method],
        )
    axes[0].axhline(100 * metrics["dense_accuracy_mean"], color="gray", ls=":", lw=1, label="dense (mean)")
    axes[0].set_xlabel("sparsity (%)")
    axes[0].set_ylabel("test accuracy (%)")
    axes[0].set_title(f"{config.model} x{config.width} on {config.dataset}: {len(config.seeds)} seeds")
    axes[0].legend(fontsize=7)
    if result["diversity"]:
        for method, style in (("lth", "o-"), ("permuted", "^-")):
            vals = [
                next(
                    e["disagreement"]["mean"] for e in result["summary"] if e["sparsity"] == s and e["method"] == method
                )
                for s in sparsities
            ]
            axes[1].plot([100 * s for s in sparsities], [100 * v for v in vals], style, label=f"{method} ensemble")
        axes[1].set_xlabel("sparsity (%)")
        axes[1].set_ylabel("disagreement of 2 members (%)")
        axes[1].set_title("ensemble diversity")
        axes[1].legend(fontsize=7)
    plots = [save_figure(fig, out_dir / "rebasin_accuracy.png")]

    moved = [m["units_moved"] for m in result["matching"]]
    summary = (
        f"{config.model} (hidden {list(config.hidden)} x{config.width}) on {config.dataset}, "
        f"seeds {list(config.seeds)}:"
        f" dense A and B trained {config.dense_steps} steps (SGD momentum {config.momentum}, lr {config.learning_rate},"
        f" cosine); IMP on A removes {100 * config.imp_fraction:g}% of the remaining weights per round (global L1,"
        f" {config.imp_retrain_steps} retrain steps per round, no rewind); B aligned to A by {config.matching}"
        f" matching (mean {np.mean(moved):.0f} units moved); sparse runs train"
        f" {config.sparse_steps - config.rewind_step}"
        f" steps from the step-{config.rewind_step} weights with the mask fixed. Dense accuracy"
        f" {100 * metrics['dense_accuracy_mean']:.2f}%. "
        + " ".join(
            f"{k}: {'PASS' if v['passed'] else 'FAIL'} ({v['detail']})."
            for k, v in result["checks"].items()
            if k in ("permuted_beats_naive", "permuted_within_1pp_of_lth")
        )
    )
    return {"summary": summary, "rows": table, "plots": plots, "checks": result["checks"], "metrics": metrics}
