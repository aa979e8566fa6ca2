"""`jaxsparse reproduce fips`: a digits ViT's MLPs compressed with FiPS (shared SVD base + sparse factors)."""

import dataclasses
import pathlib

from jaxsparse.sharing import fips_study

from ._plots import plt, save_figure


def run(config, out_dir: pathlib.Path) -> dict:
    result = fips_study(**dataclasses.asdict(config), progress=True)
    base = result["baseline"]
    table = []
    for r in result["rows"]:
        table.append(
            {
                "MLP budget p": r["budget"],
                "ranks": ", ".join(map(str, r["ranks"])),
                "counted params": r["counted_params"],
                "fraction of MLP weights": round(r["fraction_of_mlp_weights"], 4),
                "acc original": round(100 * r["acc_original"], 2),
                "acc SVD init": round(100 * r["acc_svd_init"], 2),
                "acc reconstructed": round(100 * r["acc_reconstructed"], 2),
                "acc fine-tuned": round(100 * r["acc_finetuned"], 2) if "acc_finetuned" in r else "n/a",
                "held-out block MSE": f"{r['test_recon_loss_init']:.2e} -> {r['test_recon_loss_final']:.2e}",
            }
        )
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for p, curve in result["loss_curves"].items():
        axes[0].plot(curve, label=f"p = {p}")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("reconstruction step")
    axes[0].set_ylabel("summed block MSE (train batch)")
    axes[0].legend(fontsize=8)
    axes[0].set_title("Block-wise reconstruction")
    budgets = [r["budget"] for r in result["rows"]]
    for key, label in (
        ("acc_svd_init", "SVD init"),
        ("acc_reconstructed", "reconstructed"),
        ("acc_finetuned", "fine-tuned"),
    ):
        if all(key in r for r in result["rows"]):
            axes[1].plot(budgets, [100 * r[key] for r in result["rows"]], marker="o", label=label)
    axes[1].axhline(100 * base["accuracy"], color="k", lw=0.8, label="original")
    axes[1].set_xlabel("MLP parameter budget p")
    axes[1].set_ylabel("test accuracy (%)")
    axes[1].legend(fontsize=8)
    axes[1].set_title("Digits ViT after FiPS")
    plot = save_figure(fig, out_dir / "fips.png")
    summary = (
        f"ViT on digits (dim {config.dim}, depth {config.depth}, patches {config.patch_size}x{config.patch_size}): "
        f"test accuracy {100 * base['accuracy']:.2f}% with {base['mlp_weights']} MLP weights. MLPs of blocks "
        f"{list(map(list, config.groups))} share one base per group; factors {config.factor_sparsity:.0%} sparse "
        f"({config.sparsifier}, every {config.update_every} steps); reconstruction {config.recon_steps} steps on "
        f"{config.calibration_size} cached training images; fine-tuning {config.finetune_steps} steps with the "
        "factor masks fixed."
    )
    return {"summary": summary, "rows": table, "plots": [plot], "checks": result["checks"], "metrics": result}
