"""Condensed vs dense inference on CPU, and what `auto` picks: SRigL's layer (3072 -> 768) and two more shapes.

Per layer (fp32, random constant fan-in) and batch size, timed side by side (all jitted, medians over
alternating repeats):
  * dense `x @ W` with the masked dense kernel stored (the baseline every ratio refers to),
  * `condensed_matmul` "xla" (the feature-major gather) and "dense" (scatter the kernel, then one GEMM: what a
    condensed layer without a cached kernel pays for the dense path),
  * `CondensedLinear` "auto", without and with a cached dense kernel (`cache_dense_kernel=True`), whose picks
    come from `pallas_kernels.condensed_matmul.CpuCostModel`,
  * at batch 1 of the first layer, alternative pure-JAX condensed formulations (batch-major gather,
    multiply-and-sum, segment sum), to see which forward is fastest on this machine.

Run: `python -m benchmarks --only condensed_inference` (`--quick`: SRigL's layer only, `--tiny`: a small layer).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse.condensed import CondensedLinear, condensed_matmul
from jaxsparse.masks import fan_in_for_sparsity
from pallas_kernels.condensed_matmul import auto_implementation

from ._timing import interleaved_medians, ratio_line

NAME = "condensed_inference"

# (in, out, sparsity): SRigL's ViT-B/16 MLP down-projection size class (3072 -> 768) first, then a layer that
# fits the last-level cache and one that does not, each at 90% and 99%.
FULL = (
    (3072, 768, 0.9),
    (3072, 768, 0.99),
    (1024, 1024, 0.9),
    (1024, 1024, 0.99),
    (4096, 4096, 0.9),
    (4096, 4096, 0.99),
)
QUICK = ((3072, 768, 0.9),)
TINY = ((256, 64, 0.9),)

BASELINE = "dense x @ W (baseline)"
GATHER = "condensed_matmul xla (gather)"
SCATTER = "condensed_matmul dense (scatter+GEMM)"
AUTO = "CondensedLinear auto"
AUTO_CACHED = "CondensedLinear auto, cached kernel"


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


def _layer_fn(values, indices, in_features: int, dense_kernel=None):
    """Jitted CondensedLinear "auto" forward (module rebuilt from its state inside jit, as nnx.jit does).

    With `dense_kernel` the layer caches that very buffer (equal to the kernel it would build): on this VM two
    buffers holding the same matrix time up to ~20% apart in the same GEMM (where they land in the L3), so the
    cached layer and the dense baseline share one and differ only by what the layer itself costs.
    """
    layer = CondensedLinear(values, indices, in_features=in_features, cache_dense_kernel=dense_kernel is not None)
    if dense_kernel is not None:
        np.testing.assert_array_equal(np.asarray(layer.dense_kernel[...]), np.asarray(dense_kernel))
        layer.dense_kernel[...] = dense_kernel
    graphdef, state = nnx.split(layer)
    fn = jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))
    return functools.partial(fn, state)


def _time_layer(n_in, n_out, sparsity, batches, *, repeats, target_s, with_alternatives):
    kernel, values, indices, k = _layer(n_in, n_out, sparsity)
    dense_mm = jax.jit(lambda x, w: x @ w)
    gather_mm = jax.jit(functools.partial(condensed_matmul, implementation="xla"))
    scatter_mm = jax.jit(functools.partial(condensed_matmul, implementation="dense"))
    layer_auto = _layer_fn(values, indices, n_in)
    layer_cached = _layer_fn(values, indices, n_in, dense_kernel=kernel)
    alts = {name: jax.jit(fn) for name, fn in ALTERNATIVES.items()} if with_alternatives else {}
    print(f"[{NAME}] {n_in} -> {n_out} fp32, sparsity {sparsity:.0%}, constant fan-in k = {k}")
    row = {"in_features": n_in, "out_features": n_out, "sparsity": sparsity, "k": k, "batches": {}, "auto_picks": {}}
    for batch in batches:
        x = jax.random.normal(jax.random.key(batch), (batch, n_in), jnp.float32)
        ref = np.asarray(dense_mm(x, kernel))
        variants = {
            BASELINE: lambda x=x: dense_mm(x, kernel),
            GATHER: lambda x=x: gather_mm(x, values, indices),
            SCATTER: lambda x=x: scatter_mm(x, values, indices),
            AUTO: lambda x=x: layer_auto(x),
            AUTO_CACHED: lambda x=x: layer_cached(x),
        }
        if batch == 1:
            variants.update({name: (lambda x=x, fn=fn: fn(x, values, indices)) for name, fn in alts.items()})
        for name, fn in variants.items():  # every variant computes the same product
            err = float(np.max(np.abs(np.asarray(fn()) - ref)))
            if err > 1e-3:
                raise AssertionError(f"{name} disagrees with x @ W at batch {batch}: max |diff| {err:.2e}")
        picks = {
            "uncached": auto_implementation(batch, n_in, n_out, k, jnp.float32, indices.dtype, platform="cpu"),
            "cached": auto_implementation(
                batch, n_in, n_out, k, jnp.float32, indices.dtype, platform="cpu", dense_kernel_cached=True
            ),
        }
        # The gather at large batch takes up to ~0.3 s a call on a 2-core CPU: fewer repeats there.
        batch_repeats = repeats if batch * n_out * k < 2e7 else max(3, repeats // 3)
        timed = interleaved_medians(variants, repeats=batch_repeats, target_s=target_s)
        base = timed[BASELINE]["median_s"]
        print(f" batch {batch} (auto -> {picks['uncached']}, with a cached kernel -> {picks['cached']}):")
        out = {}
        for name, t in timed.items():
            print(ratio_line(name, t["median_s"], base, width=40, kind="x dense time"))
            out[name] = {**t, "speedup_vs_dense": base / t["median_s"]}
        row["batches"][str(batch)] = out
        row["auto_picks"][str(batch)] = picks
    return row


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    layers = TINY if tiny else QUICK if quick else FULL
    batches = (1, 4) if tiny else (1, 16, 64) if quick else (1, 4, 16, 64)
    repeats = 5 if tiny else 7 if quick else 11
    target_s = 0.004 if tiny else 0.03 if quick else 0.05
    results = {"batches": list(batches), "repeats": repeats, "layers": []}
    for n, (n_in, n_out, sparsity) in enumerate(layers):
        results["layers"].append(
            _time_layer(n_in, n_out, sparsity, batches, repeats=repeats, target_s=target_s, with_alternatives=n == 0)
        )
    results["auto_vs_dense"] = _auto_summary(results["layers"])
    summary = results["auto_vs_dense"]
    print(
        f" auto / stored dense: without a cache worst {summary['uncached_worst']:.2f}x (its own dense path: worst "
        f"{summary['uncached_vs_scatter_worst']:.2f}x), with a cached kernel worst {summary['cached_worst']:.2f}x, "
        f"best {summary['cached_best']:.2f}x"
    )
    return results


def _auto_summary(layers: list) -> dict:
    """Time ratios of the two `auto` layers to the stored dense GEMM (and, uncached, to its own dense path)."""
    uncached, uncached_vs_scatter, cached = [], [], []
    for layer in layers:
        for row in layer["batches"].values():
            uncached.append(row[AUTO]["median_s"] / row[BASELINE]["median_s"])
            uncached_vs_scatter.append(row[AUTO]["median_s"] / row[SCATTER]["median_s"])
            cached.append(row[AUTO_CACHED]["median_s"] / row[BASELINE]["median_s"])
    return {
        "uncached_worst": max(uncached),
        "uncached_vs_scatter_worst": max(uncached_vs_scatter),
        "cached_worst": max(cached),
        "cached_best": min(cached),
    }
