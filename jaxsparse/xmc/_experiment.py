"""SPARTEX reproduction: dense head vs fixed fan-in head without help, with an intermediate layer, with the
auxiliary objective, and with both, on the embedded long-tailed stdlib identifier task."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ._data import cluster_targets, label_clusters, load_stdlib_identifier_task
from ._metrics import PROPENSITY_AB, inverse_propensity, ndcg_at_k, precision_at_k, psp_at_k, top_k_streaming
from ._model import XMCModelSpec, init_xmc, make_train_step, memory_report, xmc_forward

__all__ = ["VARIANTS", "xmc_comparison"]

VARIANTS = ("dense", "sparse", "sparse+intermediate", "sparse+aux", "sparse+both")


@jax.jit
def _test_logits(params, indices, x):
    """Label logits for evaluation: params are arguments (not baked-in constants), one compile per shape."""
    return xmc_forward(params, indices, x)[0]


def _dense_rows(matrix, rows) -> np.ndarray:
    return np.asarray(matrix[rows].toarray(), dtype=np.float32)


def _spec_for(variant, *, num_features, hidden, num_labels, fan_in, intermediate, num_clusters):
    sparse = variant != "dense"
    use_inter = variant in ("sparse+intermediate", "sparse+both")
    use_aux = variant in ("sparse+aux", "sparse+both")
    return XMCModelSpec(
        num_features=num_features,
        hidden=hidden,
        num_labels=num_labels,
        fan_in=fan_in if sparse else None,
        intermediate=intermediate if use_inter else None,
        num_clusters=num_clusters if use_aux else None,
    )


def xmc_comparison(
    *,
    variants: tuple[str, ...] = VARIANTS,
    seeds: tuple[int, ...] = (0,),
    num_labels: int = 2048,
    num_features: int = 4096,
    hidden: int = 128,
    intermediate: int = 1024,
    fan_in: int = 8,
    num_clusters: int = 64,
    steps: int = 3000,
    batch_size: int = 128,
    learning_rate: float = 2e-3,
    loss: str = "squared_hinge",
    alpha0: float = 0.4,
    aux_cutoff_fraction: float = 0.5,
    rewire_every: int = 200,
    rewire_end_fraction: float = 0.66,
    rewire_fraction: float = 0.2,
    max_files: int | None = None,
    progress: bool = True,
) -> dict:
    """Trains every variant; returns {"rows", "dataset", "checks"} with P@k, PSP@k, nDCG@k and memory per run."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {variants!r}")
    if not seeds:
        raise ValueError("seeds must be non-empty")
    train, test = load_stdlib_identifier_task(
        num_labels=num_labels, num_features=num_features, seed=0, max_files=max_files
    )
    counts = np.asarray(train.labels.getnnz(axis=0)).ravel()
    a, b = PROPENSITY_AB["other"]
    inv_prop = inverse_propensity(counts, train.num_points, A=a, B=b)
    clusters = label_clusters(train, num_clusters, seed=0)
    train_clusters = cluster_targets(train.labels, clusters, num_clusters)
    # Small enough to densify once (N*D floats); batches are then plain numpy slices.
    dense_x = train.num_points * train.num_features <= 2**28
    x_train = _dense_rows(train.features, slice(None)) if dense_x else train.features
    y_train = _dense_rows(train.labels, slice(None)) if dense_x else train.labels
    c_train = _dense_rows(train_clusters, slice(None)) if dense_x else train_clusters
    batch_of = (lambda m, i: m[i]) if dense_x else _dense_rows
    rows = []
    fan_in_ok = True
    bar = tqdm(total=len(variants) * len(seeds), desc="xmc", disable=not progress)
    for seed in seeds:
        for variant in variants:
            spec = _spec_for(
                variant, num_features=train.num_features, hidden=hidden, num_labels=train.num_labels,
                fan_in=fan_in, intermediate=intermediate, num_clusters=num_clusters,
            )  # fmt: skip
            params, indices = init_xmc(jax.random.key(seed), spec)
            initial_indices = None if indices is None else np.asarray(indices)
            tx = optax.adam(learning_rate)
            opt_state = tx.init(params)
            step = make_train_step(
                tx, loss=loss, alpha0=alpha0, aux_cutoff_step=max(1, int(aux_cutoff_fraction * steps)),
                rewire_every=rewire_every, rewire_end_step=int(rewire_end_fraction * steps),
                rewire_fraction=rewire_fraction, in_features=spec.head_inputs,
            )  # fmt: skip
            rng = np.random.default_rng(seed)
            key = jax.random.key(10_000 + seed)
            start = time.perf_counter()
            losses = []
            for t in tqdm(range(steps), desc=variant, leave=False, disable=not progress):
                idx = rng.integers(0, train.num_points, batch_size)
                x = jnp.asarray(batch_of(x_train, idx))
                y = jnp.asarray(batch_of(y_train, idx))
                cy = jnp.asarray(batch_of(c_train, idx))
                params, indices, opt_state, value = step(params, indices, opt_state, jnp.int32(t), key, x, y, cy)
                losses.append(value)
            elapsed = time.perf_counter() - start
            if indices is not None:
                # Rewiring must have moved some slots, and every slot must still point at a real input.
                idx = np.asarray(indices)
                fan_in_ok &= bool(
                    idx.shape == (train.num_labels, fan_in)
                    and idx.min() >= 0
                    and idx.max() < spec.head_inputs
                    and (rewire_end_fraction * steps <= rewire_every or np.any(idx != initial_indices))
                )

            def score_fn(point_slice, label_slice, params=params, indices=indices):
                rows = np.arange(test.num_points)[point_slice]
                logits = _test_logits(params, indices, jnp.asarray(_dense_rows(test.features, rows)))
                return np.asarray(logits)[:, label_slice]

            top = top_k_streaming(
                score_fn, test.num_points, test.num_labels, 5, label_chunk=test.num_labels, point_chunk=512
            )
            p = precision_at_k(top, test.labels, ks=(1, 3, 5))
            psp = psp_at_k(top, test.labels, inv_prop, ks=(1, 3, 5))
            ndcg = ndcg_at_k(top, test.labels, ks=(1, 3, 5))
            mem = memory_report(params, indices, opt_state)
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    **{f"P@{k}": float(p[k]) for k in (1, 3, 5)},
                    **{f"PSP@{k}": float(psp[k]) for k in (1, 3, 5)},
                    **{f"nDCG@{k}": float(ndcg[k]) for k in (1, 3, 5)},
                    "head_MiB": mem["head_total_bytes"] / 2**20,
                    "head_vs_dense": mem["head_fraction_of_dense"],
                    "final_loss": float(np.mean(jax.device_get(losses[-100:]))),
                    "train_s": elapsed,
                }
            )
            bar.update()
    bar.close()
    dataset = {
        "train_points": train.num_points,
        "test_points": test.num_points,
        "features": train.num_features,
        "labels": train.num_labels,
        "avg_labels_per_point": float(train.labels.getnnz() / train.num_points),
        "labels_with_<5_train_points": float(np.mean(counts < 5)),
    }
    checks = {
        "fan_in_slots_valid_after_rewiring": {
            "passed": bool(fan_in_ok),
            "detail": f"every label keeps {fan_in} slots, all pointing at valid inputs; rewiring moved some",
        }
    }
    return {"rows": rows, "dataset": dataset, "checks": checks}
