"""`jaxsparse reproduce kd_bias`: which classes distillation changes, and group fairness vs temperature."""

import dataclasses
import pathlib

import numpy as np

from jaxsparse.distill import kd_bias_study

from ._plots import plt, save_figure
from ._report import _table


def run(config, out_dir: pathlib.Path) -> dict:
    result = kd_bias_study(**dataclasses.asdict(config), progress=True)
    teacher, nds = result["teacher_accuracy"], result["non_distilled_accuracy"]
    table = []
    for r in result["rows"]:
        table.append(
            {
                "T": r["temperature"],
                "DS accuracy": f"{100 * r['ds_accuracy']['mean']:.2f} ± {100 * r['ds_accuracy']['std']:.2f}",
                "#TC (teacher vs DS)": r["n_tc"],
                "#TC after BH": r["n_tc_bh"],
                "#SC (NDS vs DS)": r["n_sc"],
                "#SC after BH": r["n_sc_bh"],
            }
        )
    plots = []
    temps = [r["temperature"] for r in result["rows"]]
    fig, axes = plt.subplots(1, 2 if result["fairness"] else 1, figsize=(10 if result["fairness"] else 5, 3.6))
    axes = np.atleast_1d(axes)
    axes[0].plot(temps, [r["n_tc"] for r in result["rows"]], "o-", label="#TC teacher vs distilled")
    axes[0].plot(temps, [r["n_sc"] for r in result["rows"]], "s-", label="#SC non-distilled vs distilled")
    axes[0].plot(temps, [r["n_sc_bh"] for r in result["rows"]], "s--", label="#SC after BH")
    axes[0].set_xlabel("temperature T")
    axes[0].set_ylabel("classes changed significantly")
    axes[0].set_title("Digits: class-wise effect of distillation")
    axes[0].legend(fontsize=8)
    fairness_rows = []
    if result["fairness"]:
        rows = result["fairness"]["rows"]
        for metric, style in (("dpd", "o-"), ("eod", "s-")):
            ds = [r for r in rows if r["model"] == "distilled"]
            axes[1].plot(
                [r["temperature"] for r in ds],
                [r[metric]["mean"] for r in ds],
                style,
                label=f"distilled {metric.upper()}",
            )
            for model, ls in (("teacher", ":"), ("non_distilled", "--")):
                base = [r for r in rows if r["model"] == model]
                if base:
                    axes[1].axhline(
                        base[0][metric]["mean"],
                        ls=ls,
                        lw=0.9,
                        color="k" if metric == "dpd" else "gray",
                        label=f"{model} {metric.upper()}",
                    )
        axes[1].set_xlabel("temperature T")
        axes[1].set_ylabel("difference")
        axes[1].set_title("Breast cancer (derived attribute): DPD and EOD")
        axes[1].legend(fontsize=7)
        for r in rows:
            fairness_rows.append(
                {
                    "model": r["model"],
                    "T": r["temperature"],
                    "accuracy": f"{100 * r['accuracy']['mean']:.2f}",
                    "DPD": f"{r['dpd']['mean']:.4f} ± {r['dpd']['std']:.4f}",
                    "EOD": f"{r['eod']['mean']:.4f} ± {r['eod']['std']:.4f}",
                }
            )
    plots.append(save_figure(fig, out_dir / "kd_bias.png"))
    summary = (
        f"Digits, {len(config.seeds)} seeds, MLP teacher {list(config.teacher_hidden)} "
        f"({100 * teacher['mean']:.2f}% ± {100 * teacher['std']:.2f}) and student {list(config.student_hidden)} "
        f"(non-distilled {100 * nds['mean']:.2f}% ± {100 * nds['std']:.2f}); KD loss alpha={config.alpha} on the "
        f"hard term, T² scaling {'on' if config.scale_by_t2 else 'off'}; per-class {config.test} test across seeds "
        f"at level {config.q}, Benjamini–Hochberg at q={config.q} over the 10 classes."
    )
    if result["fairness"]:
        fair, attr = result["fairness"], result["fairness"]["sensitive_feature"]
        summary += (
            f" Group fairness on {fair['dataset']}: the sensitive attribute is DERIVED (synthetic), "
            f"{attr['name']} {attr['rule']}; DPD and EOD are fairlearn's (unsigned, between groups)."
        )
    if fairness_rows:  # a second table with its own columns: group fairness per model and temperature
        summary += "\n\n" + _table(fairness_rows) + "\n\nClass-wise bias on digits:"
    return {"summary": summary, "rows": table, "plots": plots, "checks": result["checks"], "metrics": result}
