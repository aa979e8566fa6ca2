"""Condensed vs dense inference for SRigL's layer: 3072 -> 768, fp32, 90% sparse (constant fan-in k = 307).

Timed side by side (all jitted, medians over alternating repeats), per batch size:
  * dense `x @ W` with the masked dense kernel (the baseline every ratio refers to),
  * `condensed_matmul` (the library's feature-major gather),
  * `CondensedLinear` with implementation="xla", "dense" (re-scatters the kernel on every call) and
    "auto" (picks by `pallas_kernels.condensed_matmul.CPU_GATHER_MAX_BATCH` on CPU),
  * alternative pure-JAX condensed formulations (batch-major gather, multiply-and-sum, segment sum),
    to see which forward is fastest on this machine.

Run: `python -m benchmarks --only condensed_inference` (`--quick`, `--tiny` for a small layer).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse.condensed import CondensedLinear, condensed_matmul
from jaxsparse.masks import fan_in_for_sparsity
from pallas_kernels.condensed_matmul import CPU_GATHER_MAX_BATCH

from ._timing import interleaved_medians, ratio_line

NAME = "condensed_inference"

# (in, out, sparsity): SRigL's ViT-B/16 MLP down-projection size class (3072 -> 768).
FULL = {"in_features": 3072, "out_features": 768, "sparsity": 0.9}
TINY = {"in_features": 256, "out_features": 64, "sparsity": 0.9}


# --- alternative condensed forwards (x2d [B, in], values/indices [n_out, k]) -------------------------------


def _alt_batch_major_einsum(x, values, indices):
    gathered = x.at[:, indices].get(mode="promise_in_bounds")  # [B, n_out, k]
    return jnp.einsum("bok,ok->bo", gathered, values)


def _alt_batch_major_mulsum(x, values, indices):
    gathered = x.at[:, indices].get(mode="promise_in_bounds")  # [B, n_out, k]
    return jnp.sum(gathered * values[None], axis=-1)


def _alt_feature_major_mulsum(x, values, indices):
    gathered = x.T.at[indices].get(mode="promise_in_bounds")  # [n_out, k, B]
    return jnp.sum(gathered * values[:, :, None], axis=1).T


def _alt_take_flat_mulsum(x, values, indices):
    n_out, k = indices.shape
    gathered = jnp.take(x, indices.reshape(-1), axis=1, mode="clip")  # [B, n_out*k]
    return jnp.sum(gathered.reshape(x.shape[0], n_out, k) * values[None], axis=-1)


def _alt_segment_sum(x, values, indices):
    n_out, k = indices.shape
    gathered = jnp.take(x, indices.reshape(-1), axis=1, mode="clip")  # [B, n_out*k]
    prod = gathered * values.reshape(1, -1)
    rows = jnp.repeat(jnp.arange(n_out, dtype=jnp.int32), k)
    return jax.ops.segment_sum(prod.T, rows, num_segments=n_out, indices_are_sorted=True).T


ALTERNATIVES = {
    "alt batch-major x[:, idx] + einsum": _alt_batch_major_einsum,
    "alt batch-major x[:, idx] * v, sum": _alt_batch_major_mulsum,
    "alt feature-major x.T[idx] * v, sum": _alt_feature_major_mulsum,
    "alt take(flat idx) * v, sum": _alt_take_flat_mulsum,
    "alt take(flat idx) * v, segment_sum": _alt_segment_sum,
}


def _layer(in_features: int, out_features: int, sparsity: float, seed: int = 0):
    """A random constant fan-in layer: (masked dense kernel, CondensedLinear values, indices, k)."""
    rng = np.random.default_rng(seed)
    k = fan_in_for_sparsity((in_features, out_features), sparsity)  # floor(nnz* / n_out)
    indices = np.stack([np.sort(rng.choice(in_features, k, replace=False)) for _ in range(out_features)])
    values = rng.standard_normal((out_features, k)).astype(np.float32) / np.sqrt(k)
    kernel = np.zeros((in_features, out_features), np.float32)
    kernel[indices, np.arange(out_features)[:, None]] = values
    return jnp.asarray(kernel), jnp.asarray(values), jnp.asarray(indices, jnp.int32), k


def _layer_fn(values, indices, in_features: int, out_features: int, implementation: str):
    """Jitted CondensedLinear forward (module rebuilt from its state inside jit, as nnx.jit does)."""
    layer = CondensedLinear(values, indices, in_features=in_features, implementation=implementation)
    graphdef, state = nnx.split(layer)
    fn = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    return functools.partial(fn, state)


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    size = TINY if tiny else FULL
    n_in, n_out = size["in_features"], size["out_features"]
    kernel, values, indices, k = _layer(n_in, n_out, size["sparsity"])
    batches = (1, 4) if tiny else (1, 16, 256) if quick else (1, 2, 4, 8, 16, 64, 256)
    repeats = 5 if tiny else 9 if quick else 25
    target_s = 0.004 if tiny else 0.03 if quick else 0.06
    auto_max = CPU_GATHER_MAX_BATCH

    dense_mm = jax.jit(lambda x, w: x @ w)
    gather_mm = jax.jit(functools.partial(condensed_matmul, implementation="xla"))
    layer_gather = _layer_fn(values, indices, n_in, n_out, "xla")
    layer_dense = _layer_fn(values, indices, n_in, n_out, "dense")
    layer_auto = _layer_fn(values, indices, n_in, n_out, "auto")
    alts = {name: jax.jit(fn) for name, fn in ALTERNATIVES.items()}

    print(
        f"[{NAME}] {n_in} -> {n_out} fp32, sparsity {size['sparsity']:.0%}, constant fan-in k = {k}; "
        f"CPU_GATHER_MAX_BATCH = {auto_max}; {repeats} alternating repeats, medians"
    )
    results = {"sizes": {**size, "k": k, "batches": list(batches), "repeats": repeats}, "batches": {}}
    results["auto_gather_max_batch"] = auto_max
    for batch in batches:
        x = jax.random.normal(jax.random.key(batch), (batch, n_in), jnp.float32)
        ref = np.asarray(dense_mm(x, kernel))
        variants = {
            "dense x @ W (baseline)": lambda x=x: dense_mm(x, kernel),
            "condensed_matmul (gather)": lambda x=x: gather_mm(x, values, indices),
            "CondensedLinear gather": lambda x=x: layer_gather(x),
            "CondensedLinear dense (scatter+GEMM)": lambda x=x: layer_dense(x),
            f"CondensedLinear auto (-> {'gather' if batch <= auto_max else 'dense'})": lambda x=x: layer_auto(x),
        }
        if batch == 1 or not quick:
            variants.update({name: (lambda x=x, fn=fn: fn(x, values, indices)) for name, fn in alts.items()})
        for name, fn in variants.items():  # every variant computes the same product
            err = float(np.max(np.abs(np.asarray(fn()) - ref)))
            if err > 1e-3:
                raise AssertionError(f"{name} disagrees with x @ W at batch {batch}: max |diff| {err:.2e}")
        # The gather at large batch takes ~0.5 s a call on a 2-core CPU: fewer repeats there.
        batch_repeats = repeats if batch < 64 else max(3, repeats // 3)
        timed = interleaved_medians(variants, repeats=batch_repeats, target_s=target_s)
        base = timed["dense x @ W (baseline)"]["median_s"]
        print(f" batch {batch}:")
        row = {}
        for name, t in timed.items():
            print(ratio_line(name, t["median_s"], base, width=40, kind="x dense time"))
            row[name] = {**t, "speedup_vs_dense": base / t["median_s"]}
        fastest = min(timed, key=lambda n: timed[n]["median_s"])
        print(f"   fastest: {fastest}")
        results["batches"][str(batch)] = row
    results["recommended_auto_gather_max_batch"] = _crossover(results["batches"])
    print(
        f" gather beats CondensedLinear 'dense' up to batch {results['recommended_auto_gather_max_batch']} "
        f"(of those measured) -> suggested CPU_GATHER_MAX_BATCH; current {auto_max}"
    )
    return results


def _crossover(rows: dict) -> int:
    """Largest measured batch up to which the gather beats the layer's dense path at every batch."""
    best = 0
    for batch in sorted(rows, key=int):
        row = rows[batch]
        if row["CondensedLinear gather"]["median_s"] < row["CondensedLinear dense (scatter+GEMM)"]["median_s"]:
            best = int(batch)
        else:
            break
    return best
