"""`jaxsparse reproduce reap`: one-shot expert pruning (REAP vs frequency/EAN/random) and merging of a tiny MoE LM."""

import dataclasses
import pathlib

import numpy as np

from jaxsparse.moe import reap_study

from ._plots import plt, save_figure


def run(config, out_dir: pathlib.Path) -> dict:
    result = reap_study(**dataclasses.asdict(config), progress=True)
    base = result["original"]
    table = []
    for r in result["rows"]:
        if "loss" not in r:
            table.append({"method": r["method"], "pruned": f"{100 * r['ratio']:.0f}%", "note": r["note"]})
            continue
        table.append(
            {
                "method": r["method"],
                "pruned": f"{100 * r['ratio']:.0f}%",
                "experts/layer": ",".join(str(e) for e in r["experts_per_layer"]),
                "held-out loss": f"{r['loss']:.4f}",
                "Δloss": f"{r['loss'] - base['loss']:+.4f}",
                "perplexity": f"{r['perplexity']:.3f}",
                "next-token acc": f"{100 * r['accuracy']:.2f}%",
                "note": r["note"],
            }
        )
    plots = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    methods = [m for m in dict.fromkeys(r["method"] for r in result["rows"]) if m != "original"]
    for method in methods:
        pts = [(0.0, base["loss"], base["accuracy"])] + [
            (r["ratio"], r["loss"], r["accuracy"]) for r in result["rows"] if r["method"] == method and "loss" in r
        ]
        if len(pts) < 2:
            continue
        style = "o-" if method in ("reap", "frequency", "ean_sum", "random") else "s--"
        axes[0].plot([100 * p[0] for p in pts], [p[1] for p in pts], style, label=method)
        axes[1].plot([100 * p[0] for p in pts], [100 * p[2] for p in pts], style, label=method)
    axes[0].set_ylabel("held-out loss (nats/byte)")
    axes[1].set_ylabel("held-out next-token accuracy (%)")
    for ax in axes:
        ax.set_xlabel("experts removed per layer (%)")
        ax.legend(fontsize=8)
    axes[0].set_title("Loss vs compression")
    axes[1].set_title("Accuracy vs compression")
    plots.append(save_figure(fig, out_dir / "reap_loss_vs_compression.png"))

    sub = result["subspace"]
    sub_rows = {k: v for k, v in sub.items() if isinstance(v, dict) and "total_variance" in v}
    if sub_rows:
        fig, ax = plt.subplots(figsize=(6, 3.6))
        names = list(sub_rows)
        ax.bar(names, [sub_rows[n]["total_variance"] for n in names], color="tab:blue")
        ax.set_ylabel("total variance of layer outputs")
        ax.set_title(f"Layer {sub['layer']} output spread at {100 * sub['ratio']:.0f}% (same inputs)")
        ax.tick_params(axis="x", rotation=30)
        plots.append(save_figure(fig, out_dir / "reap_subspace_spread.png"))

    c = result["corpus"]
    summary = (
        f"Tiny MoE LM ({config.num_layers} layers, {config.num_experts} experts, top-{config.top_k}, "
        f"{'renormalised' if config.renormalize else 'raw softmax'} gates, d={config.d_model}) trained "
        f"{config.train_steps} steps on {c['train_files']} stdlib files ({c['train_tokens']:,} bytes); calibrated on "
        f"{result['calibration']['tokens']:,} training tokens; evaluated on {c['eval_windows']} windows of "
        f"{c['heldout_files']} held-out files. Original: loss {base['loss']:.4f}, perplexity {base['perplexity']:.3f}, "
        f"accuracy {100 * base['accuracy']:.2f}%. Pruning drops int(E·ratio) experts per layer and the matching "
        "router columns (no rescaling); merging keeps E' = E - int(E·ratio) merged experts (compact layout)."
    )
    if sub_rows:
        spread = ", ".join(
            f"{n} {sub_rows[n]['total_variance']:.4g}" for n in sub_rows
        )  # the collapse measurement: merged outputs contract
        summary += f"\n\nOutput spread (total variance) of layer {sub['layer']} at {100 * sub['ratio']:.0f}%: {spread}."
    metrics = {
        "original_loss": base["loss"],
        "original_accuracy": base["accuracy"],
        **{
            f"{r['method']}_{round(100 * r['ratio'])}_loss": r["loss"]
            for r in result["rows"]
            if "loss" in r and r["method"] != "original"
        },
        "train_final_loss": float(np.mean(result["train_losses"][-10:])),
        **{k: float(v) for k, v in result["timings"].items()},
    }
    return {"summary": summary, "rows": table, "plots": plots, "checks": result["checks"], "metrics": metrics}
