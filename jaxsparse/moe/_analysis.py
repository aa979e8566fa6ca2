"""Functional subspace collapse (REAP §5): how far a layer's outputs spread, original vs pruned vs merged.

Merging experts i and j replaces g_i f_i + g_j f_j by (g_i + g_j) f~ with one input-independent f~, so the merged
layer's outputs contract towards a lower-dimensional set; pruning drops g_j f_j but keeps the survivors' functions.
The paper shows this with a PCA of per-layer MoE outputs. `subspace_spread` measures it: PCA in float64, with the
principal axes taken from a `reference` (the original model's outputs) so the models are compared on the same axes.
"""

import numpy as np

__all__ = ["plot_subspaces", "subspace_spread"]


def _check_outputs(outputs, name: str) -> np.ndarray:
    arr = np.asarray(outputs, np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be [T, d] with T >= 2, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


def _pca(arr: np.ndarray):
    mean = arr.mean(axis=0)
    _, sing, vt = np.linalg.svd(arr - mean, full_matrices=False)
    return mean, sing**2 / (arr.shape[0] - 1), vt  # eigenvalues of the (ddof=1) covariance, axes as rows


def subspace_spread(outputs, *, reference=None, n_components: int = 2) -> dict:
    """PCA spread of layer outputs `[T, d]`.

    Args:
        outputs: the MoE layer's outputs over T tokens.
        reference: optional `[T', d]` outputs (the original model) whose mean and principal axes are used for the
            projections, so several models are measured on the same axes; default: `outputs` itself.
        n_components: number of principal axes reported (<= min(T, d)).

    Returns:
        A dict of plain floats/lists: "total_variance" (trace of the covariance; basis-free), "effective_rank"
        (participation ratio (Σλ)²/Σλ² of the covariance spectrum), "explained_variance_ratio" (own top
        `n_components` eigenvalues / total), "pc_std" (std of the projections on the first `n_components`
        reference axes), "pc_radius" (mean distance from the reference mean in that plane), "mean_norm" (mean
        ‖y‖), and with a reference also "variance_ratio" (total variance / the reference's) and "pc_std_ratio".
    """
    arr = _check_outputs(outputs, "outputs")
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be a positive int, got {n_components!r}")
    if n_components > min(arr.shape):
        raise ValueError(f"n_components must be <= min(T, d)={min(arr.shape)}, got {n_components}")
    _, eig, _ = _pca(arr)
    total = float(eig.sum())
    ref = arr if reference is None else _check_outputs(reference, "reference")
    if ref.shape[1] != arr.shape[1]:
        raise ValueError(f"reference must have d={arr.shape[1]} columns, got shape {ref.shape}")
    if n_components > min(ref.shape):
        raise ValueError(f"n_components must be <= min(T', d)={min(ref.shape)} of the reference, got {n_components}")
    ref_mean, ref_eig, ref_axes = _pca(ref)
    proj = (arr - ref_mean) @ ref_axes[:n_components].T
    result = {
        "total_variance": total,
        "effective_rank": float(total**2 / np.sum(eig**2)) if total > 0 else 0.0,
        "explained_variance_ratio": (eig[:n_components] / total if total > 0 else np.zeros(n_components)).tolist(),
        "pc_std": proj.std(axis=0, ddof=1).tolist(),
        "pc_radius": float(np.linalg.norm(proj - proj.mean(axis=0), axis=1).mean()),
        "mean_norm": float(np.linalg.norm(arr, axis=1).mean()),
    }
    if reference is not None:
        ref_total = float(ref_eig.sum())
        ref_std = np.sqrt(ref_eig[:n_components])
        result["variance_ratio"] = total / ref_total if ref_total > 0 else float("nan")
        result["pc_std_ratio"] = np.where(
            ref_std > 0, np.asarray(result["pc_std"]) / np.maximum(ref_std, 1e-300), np.nan
        ).tolist()
    return result


def plot_subspaces(outputs_by_name: dict, path, *, reference: str | None = None, title: str = "") -> None:
    """Scatter of each model's outputs on the first two principal axes of `outputs_by_name[reference]`
    (default: the first entry), one panel per model, written as a PNG to `path` (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not isinstance(outputs_by_name, dict) or not outputs_by_name:
        raise ValueError("outputs_by_name must be a non-empty dict of name -> [T, d] outputs")
    reference = next(iter(outputs_by_name)) if reference is None else reference
    if reference not in outputs_by_name:
        raise ValueError(f"reference {reference!r} is not one of {list(outputs_by_name)}")
    ref = _check_outputs(outputs_by_name[reference], f"outputs_by_name[{reference!r}]")
    if min(ref.shape) < 2:
        raise ValueError("the reference outputs need T >= 2 and d >= 2 for a 2-D projection")
    mean, _, axes = _pca(ref)
    fig, panels = plt.subplots(1, len(outputs_by_name), figsize=(3.2 * len(outputs_by_name), 3.2), squeeze=False)
    projs = {n: (_check_outputs(o, f"outputs_by_name[{n!r}]") - mean) @ axes[:2].T for n, o in outputs_by_name.items()}
    lim = max(float(np.abs(p).max()) for p in projs.values()) * 1.05 or 1.0
    for ax, (name, proj) in zip(panels[0], projs.items(), strict=True):
        ax.scatter(proj[:, 0], proj[:, 1], s=4, alpha=0.5)
        ax.set(title=name, xlim=(-lim, lim), ylim=(-lim, lim), xlabel="PC1", ylabel="PC2" if ax is panels[0][0] else "")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
