"""Plots a kernels benchmark JSON: speedup over dense vs batch size, one panel per layer shape.

Usage: `python -m benchmarks.plot_kernels RESULTS.json OUT.png`
"""

import json
import os
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STYLES = {
    "pallas": "o-",
    "pallas_tuned": "*",
    "auto": "s--",
    "triton": "P:",
    "xla": "^:",
    "bcoo": "v:",
    "densify_dot": "x:",
    "dense_highest": "d-.",
}


def plot(results: dict, out_path: str, *, sparsity: float = 0.9) -> None:
    rows = [r for r in results["kernels"]["forward"] if r["sparsity"] == sparsity]
    shapes = sorted({tuple(r["shape"]) for r in rows})
    dtypes = sorted({r["dtype"] for r in rows})
    fig, axes = plt.subplots(len(dtypes), len(shapes), figsize=(4.2 * len(shapes), 3.4 * len(dtypes)), squeeze=False)
    for i, dtype in enumerate(dtypes):
        for j, shape in enumerate(shapes):
            ax = axes[i][j]
            sel = sorted(
                (r for r in rows if r["dtype"] == dtype and tuple(r["shape"]) == shape), key=lambda r: r["batch"]
            )
            for color, (name, style) in enumerate(STYLES.items()):  # one colour per variant on every panel
                pts = [
                    (r["batch"], r["times"][name]["speedup_vs_dense"])
                    for r in sel
                    if "speedup_vs_dense" in r["times"].get(name, {})
                ]
                if pts:
                    ax.plot(*zip(*pts, strict=True), style, color=f"C{color}", label=name, ms=4)
            ax.axhline(1.0, color="k", lw=0.8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{shape[0]}->{shape[1]} {dtype}, {sparsity:.0%} sparse", fontsize=9)
            ax.set_xlabel("batch")
            ax.set_ylabel("speedup vs dense")
            ax.grid(alpha=0.3, which="both")
    for row_axes in axes:  # each dtype row has its own set of variants (dense_highest: f32 only)
        row_axes[0].legend(fontsize=7)
    fig.suptitle(f"{results.get('device', '')}, jax {results.get('jax_version', '')}", fontsize=10)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(out_path))
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out_path)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        plot(json.load(f), sys.argv[2])
