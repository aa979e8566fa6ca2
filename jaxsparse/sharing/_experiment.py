"""The FiPS study: train a ViT on digits, compress its MLPs to several budgets, reconstruct, fine-tune.

Returns a plain result dict (rows, curves, checks) that `jaxsparse reproduce fips` turns into a report.
"""

import time

import jax
import numpy as np
import optax
from flax import nnx

from jaxsparse._checks import check_fraction, check_int, check_seed

from ._compress import compress_mlps
from ._reconstruct import SPARSIFIERS, cache_block_io, reconstruct, reconstruction_loss

__all__ = ["fips_study"]


def _vit_tx(learning_rate: float, steps: int, weight_decay: float):
    warmup = max(1, steps // 20)
    return optax.adamw(optax.warmup_cosine_decay_schedule(0.0, learning_rate, warmup, steps), weight_decay=weight_decay)


def _mlp_weight_count(model) -> int:
    """Dense MLP weights (kernels only: biases are outside the FiPS budget)."""
    return sum(blk.mlp.fc1.kernel.size + blk.mlp.fc2.kernel.size for blk in model.blocks)


def _factor_support(model, masks) -> tuple[int, int]:
    """(nnz of the factor masks, nonzero factor weights outside them) for a compressed model."""
    state = nnx.as_pure(nnx.state(model, nnx.Param))
    pairs = []
    jax.tree_util.tree_map(
        lambda m, w: pairs.append((np.asarray(m), np.asarray(w))) if m is not None else None,
        masks,
        state,
        is_leaf=lambda x: x is None,
    )
    nnz = sum(int(m.sum()) for m, _ in pairs)
    outside = sum(int(np.count_nonzero(w[~m])) for m, w in pairs)
    return nnz, outside


def fips_study(
    *,
    budgets=(0.5, 0.4, 0.25),
    factor_sparsity: float = 0.75,
    groups=((0, 1, 2, 3),),
    dim: int = 64,
    depth: int = 4,
    heads: int = 4,
    patch_size: int = 2,
    train_steps: int = 800,
    train_lr: float = 3e-3,
    train_weight_decay: float = 1.0,
    batch_size: int = 64,
    calibration_size: int = 1024,
    recon_steps: int = 600,
    recon_batch_size: int = 128,
    recon_lr: float = 1e-3,
    sparsifier: str = "rigl",
    update_every: int = 50,
    drop_fraction: float = 0.1,
    finetune_steps: int = 300,
    finetune_lr: float = 3e-4,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Trains a ViT on digits, then for each budget p: compress (SVD init) -> block-wise reconstruction -> fine-tune.

    Args:
      budgets: fractions p of the MLP weights to keep, each in (0, 1).
      factor_sparsity: s of the sparse factors (sets the rank with p, spec section 3).
      groups: lists of consecutive block indices sharing one base.
      dim, depth, heads, patch_size: the ViT (8x8 digits, patches of patch_size x patch_size).
      train_steps, train_lr, train_weight_decay, batch_size: training of the original ViT (AdamW, warmup+cosine).
      calibration_size: training images whose block inputs/outputs are cached for reconstruction.
      recon_steps, recon_batch_size, recon_lr, sparsifier, update_every, drop_fraction: block-wise reconstruction
        (`reconstruct`; AdamW with cosine decay, RigL/GMP/static on the factors).
      finetune_steps, finetune_lr: optional global stage on the task loss, factor masks held fixed (0 skips it).
      seed: data split, initialisation and sparsifier seed.

    Returns:
      dict with "baseline" (accuracy, MLP weights), "rows" (one per budget: rank, counted parameters, fraction,
      accuracy at init / after reconstruction / after fine-tuning, reconstruction losses), "loss_curves"
      ({budget: per-step reconstruction loss}) and "checks".
    """
    from jaxsparse import dst
    from jaxsparse.data import load_digits_split
    from jaxsparse.nn import ViT, evaluate, fit_classifier

    budgets = tuple(check_fraction(p, f"budgets[{i}]", allow_zero=False) for i, p in enumerate(budgets))
    if not budgets:
        raise ValueError("budgets must be non-empty")
    if sparsifier not in SPARSIFIERS:
        raise ValueError(f"sparsifier must be one of {SPARSIFIERS}, got {sparsifier!r}")
    check_fraction(factor_sparsity, "factor_sparsity", allow_zero=True)
    for name, value in (
        ("train_steps", train_steps),
        ("batch_size", batch_size),
        ("calibration_size", calibration_size),
        ("recon_steps", recon_steps),
        ("recon_batch_size", recon_batch_size),
    ):
        check_int(value, name, minimum=1)
    check_int(finetune_steps, "finetune_steps", minimum=0)
    seed = check_seed(seed)

    data = load_digits_split(seed=seed)
    model = ViT(data.num_classes, dim=dim, depth=depth, heads=heads, patch_size=patch_size, rngs=nnx.Rngs(seed))
    start = time.perf_counter()
    fit_classifier(
        model,
        _vit_tx(train_lr, train_steps, train_weight_decay),
        data.x_train,
        data.y_train,
        steps=train_steps,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        desc="ViT",
    )
    baseline = evaluate(model, data.x_test, data.y_test)
    baseline.update(train_s=time.perf_counter() - start, mlp_weights=_mlp_weight_count(model))

    rng = np.random.default_rng(seed)
    calib = rng.permutation(len(data.x_train))[: min(calibration_size, len(data.x_train))]
    inputs, outputs = cache_block_io(model, data.x_train[calib], batch_size=256)
    test_inputs, test_outputs = cache_block_io(model, data.x_test, batch_size=256)

    rows, curves = [], {}
    for p in budgets:
        compressed = nnx.clone(model)
        info = compress_mlps(compressed, [list(g) for g in groups], budget=p, sparsity=factor_sparsity)
        init = evaluate(compressed, data.x_test, data.y_test)
        init_loss = float(reconstruction_loss(compressed, test_inputs, test_outputs))
        start = time.perf_counter()
        result = reconstruct(
            compressed,
            inputs,
            outputs,
            steps=recon_steps,
            batch_size=min(recon_batch_size, len(calib)),
            learning_rate=recon_lr,
            key=jax.random.key(seed),
            masks=info["masks"],
            sparsifier=sparsifier,
            update_every=update_every,
            drop_fraction=drop_fraction,
            progress=progress,
        )
        recon_s = time.perf_counter() - start
        recon = evaluate(compressed, data.x_test, data.y_test)
        recon_loss = float(reconstruction_loss(compressed, test_inputs, test_outputs))
        row = {
            "budget": p,
            "factor_sparsity": factor_sparsity,
            "ranks": list(info["ranks"]),
            "counted_params": int(info["total"]["total"]),
            "fraction_of_mlp_weights": float(info["fraction"]),
            "acc_original": baseline["accuracy"],
            "acc_svd_init": init["accuracy"],
            "acc_reconstructed": recon["accuracy"],
            "test_recon_loss_init": init_loss,
            "test_recon_loss_final": recon_loss,
            "recon_s": recon_s,
        }
        if finetune_steps:
            tx = dst.static_sparse(
                optax.adamw(optax.cosine_decay_schedule(finetune_lr, finetune_steps), weight_decay=0.05),
                key=jax.random.key(seed),
                initial_masks=result["masks"],
            )
            fit_classifier(
                compressed,
                tx,
                data.x_train,
                data.y_train,
                steps=finetune_steps,
                batch_size=batch_size,
                seed=seed + 1,
                progress=progress,
                desc=f"fine-tune p={p}",
            )
            row["acc_finetuned"] = evaluate(compressed, data.x_test, data.y_test)["accuracy"]
        row["factor_nnz"], row["factor_nonzero_outside_mask"] = _factor_support(compressed, result["masks"])
        row["factor_nnz_initial"] = int(info["total"]["factor_nnz"])
        rows.append(row)
        curves[str(p)] = [float(v) for v in result["loss_curve"]]

    checks_zero = all(r["factor_nonzero_outside_mask"] == 0 for r in rows)
    best = {r["budget"]: r.get("acc_finetuned", r["acc_reconstructed"]) for r in rows}
    checks = {
        "reconstruction lowers the held-out block error": {
            "passed": all(r["test_recon_loss_final"] < r["test_recon_loss_init"] for r in rows),
            "detail": "; ".join(
                f"p={r['budget']}: {r['test_recon_loss_init']:.2e} -> {r['test_recon_loss_final']:.2e}" for r in rows
            ),
        },
        "pruned factor weights exactly zero, factor density constant": {
            "passed": checks_zero and all(r["factor_nnz"] <= r["factor_nnz_initial"] for r in rows),
            "detail": "; ".join(
                f"p={r['budget']}: nnz {r['factor_nnz_initial']} -> mask {r['factor_nnz']}, "
                f"{r['factor_nonzero_outside_mask']} nonzeros outside it"
                for r in rows
            ),
        },
        "parameter counts within budget": {
            "passed": all(r["fraction_of_mlp_weights"] <= r["budget"] + 1e-9 for r in rows),
            "detail": "; ".join(f"p={r['budget']}: {r['fraction_of_mlp_weights']:.4f}" for r in rows),
        },
        "within 1 pp of the original at 25-40% (paper's claim)": {
            "passed": all(baseline["accuracy"] - acc <= 0.01 for p, acc in best.items() if 0.25 <= p <= 0.4),
            "detail": "; ".join(f"p={p}: {100 * (acc - baseline['accuracy']):+.2f} pp" for p, acc in best.items()),
        },
    }
    return {"baseline": baseline, "rows": rows, "loss_curves": curves, "checks": checks}
