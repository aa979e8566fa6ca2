"""GPU kernel benchmark: condensed, group-shared condensed and N:M matmul against dense, side by side.

On a GPU (`python -m benchmarks --only kernels`, or `python -m benchmarks.kernels --json PATH` standalone):
  1. correctness of every compiled kernel (forward and gradients) against the plain-jnp references in
     float32 at HIGHEST precision, by relative Frobenius error, on odd shapes with duplicates and empty slots;
  2. forward time per call for each implementation: dense `jnp.dot` of the masked weight (f32 accumulation;
     f32 at DEFAULT = TF32 and at HIGHEST), the Pallas condensed kernel, the XLA gather, BCOO (n_batch=1),
     densify-then-dot, and `auto` with a cached dense weight; over SRigL's 3072->768, 4096x4096 and
     4096->14336, batch 1..4096, bf16 and f32, 90% sparsity (and 50/95/99% at a few batches);
  3. a block-size sweep of the Pallas kernel, forward+backward times, the grouped (G = 16, 64) and N:M (2:4)
     kernels;
  4. "device_time": the kernels' own device time from a profiler trace (no per-launch floor) at batch 1-16,
     with achieved bandwidth and % of the HBM roofline (H100 3.35 TB/s, H200 4.8 TB/s).
Timing: one jit holds COPIES independent calls, each on its own weight copy and input (more than the L2 in
total, so every call streams its weight from HBM); a sample runs it back to back and blocks at the end;
reported is the median over samples of time / COPIES, with the IQR. Achieved HBM bandwidth counts the
bytes each implementation must read (weights, indices, x) and write (y) once.

On CPU the Pallas kernels only run interpreted, so timings mean nothing there: `--tiny` runs the code path on a
tiny layer for the test-suite; otherwise the benchmark reports that it needs a GPU.
"""

import argparse
import dataclasses
import functools
import json
import os
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels import condensed_matmul as cm_pkg
from pallas_kernels.condensed_matmul import BlockSizes, condensed_matmul, condensed_to_dense_kernel

NAME = "kernels"
LEAN = False  # --lean: 90% sparsity, dense/pallas/auto only (a short device lease)
COPIES = 16
SHAPES = ((3072, 768), (4096, 4096), (4096, 14336))
BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
DTYPES = ("bfloat16", "float32")
SPARSITIES = (0.5, 0.95, 0.99)
# The block-size sweep of the forward kernel at small batch: (block_out, num_warps) with the whole fan-in in
# one step at batch 1 on every shape, and (block_out, block_k, num_warps) at batch 4 and 16 on 4096 x 4096.
SWEEP_BATCH1 = ((1, 1), (1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (4, 4), (8, 4), (16, 4), (16, 8), (32, 8))
SWEEP_BATCHED = {
    4: ((1, 512, 2), (2, 512, 4), (4, 256, 4), (8, 128, 4)),
    16: ((1, 512, 4), (2, 256, 4), (4, 128, 4), (8, 64, 4), (16, 32, 4)),
}
# Batch-major tiles (x read as it comes, one launch; the batch unrolled in the program), (block_out, num_warps)
# with the whole fan-in in one step, at these batches on every shape: not yet measured on a GPU.
SWEEP_BATCH_MAJOR = ((1, 1), (1, 2), (2, 2), (4, 4))
SWEEP_BATCH_MAJOR_BATCHES = (2, 4, 8, 16)


def _on_gpu():
    return jax.default_backend() in ("gpu", "cuda", "rocm")


def _rel_err(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if not np.all(np.isfinite(got)):
        return float("inf")
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


def _fan_in_indices(key, n_in, n_out, k):
    """Random constant fan-in: k distinct sorted inputs per output (top-k of uniform noise)."""
    return jnp.sort(jax.lax.top_k(jax.random.uniform(key, (n_out, n_in)), k)[1], axis=1)


def _time_per_call(fn, args, *, copies, min_sample_s, samples):
    """Median and IQR (seconds) of one call, from samples of back-to-back runs of a jit of `copies` calls."""
    jax.block_until_ready(fn(*args))
    jax.block_until_ready(fn(*args))
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    once = time.perf_counter() - start
    inner = max(1, int(min_sample_s / max(once, 1e-6)))
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        out = None
        for _ in range(inner):
            out = fn(*args)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / inner / copies)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


def _many(op, copies):
    """A jit of `copies` independent calls op(x_c, *weights_c), returning all outputs."""
    return jax.jit(lambda xs, ws: tuple(op(x, *w) for x, w in zip(xs, ws, strict=True)))


class _Bench:
    def __init__(self, budget_s, copies, samples, min_sample_s):
        self.deadline = time.perf_counter() + budget_s
        self.copies, self.samples, self.min_sample_s = copies, samples, min_sample_s
        self.skipped = []

    def left(self):
        return self.deadline - time.perf_counter()

    def time(self, op, xs, ws):
        fn = _many(op, self.copies)
        med, iqr = _time_per_call(
            fn, (xs, ws), copies=self.copies, min_sample_s=self.min_sample_s, samples=self.samples
        )
        return {"median_us": med * 1e6, "iqr_us": iqr * 1e6}, fn(xs, ws)[0]


# ------------------------------------------------------------------------------------------- correctness


def _correctness(interpret):
    """Compiled kernels vs references (float32 HIGHEST), forward and gradients; returns rows."""
    from pallas_kernels.condensed_matmul import condensed_matmul_reference

    rows = []
    rng = np.random.default_rng(0)
    n_in, n_out, k = 1000, 300, 37
    for dtype, idx_dtype, batch in (
        (jnp.float32, jnp.int32, 1),
        (jnp.float32, jnp.int16, 7),
        (jnp.bfloat16, jnp.int16, 300),
        (jnp.bfloat16, jnp.int32, 33),
        (jnp.float32, jnp.int32, 1030),
    ):
        idx = rng.integers(0, n_in, size=(n_out, k))
        idx[5, :4] = idx[5, 4]  # duplicates
        idx[7, -5:] = n_in  # empty slots
        idx = jnp.asarray(idx, idx_dtype)
        x = jnp.asarray(rng.normal(size=(batch, n_in)), dtype)
        v = jnp.asarray(rng.normal(size=(n_out, k)), dtype)
        g = jnp.asarray(rng.normal(size=(batch, n_out)), jnp.float32)
        x32, v32 = x.astype(jnp.float32), v.astype(jnp.float32)
        ref = condensed_matmul_reference(x32, v32, idx)
        ref_gx, ref_gv = jax.grad(lambda a, b, i, g: jnp.sum(condensed_matmul_reference(a, b, i) * g), (0, 1))(
            x32, v32, idx, g
        )
        impls = ["pallas", "xla"] + (["triton"] if cm_pkg.triton_available() else [])
        if batch <= cm_pkg.GEMV_MAX_BATCH:
            impls.append("pallas-batch-major")
        for impl in impls:
            kwargs = {"implementation": impl, "interpret": interpret}
            if impl == "pallas-batch-major":
                blocks = BlockSizes(1, cm_pkg.next_pow2(k), 1, num_warps=1, batch_major=True)
                kwargs.update(implementation="pallas", block_sizes=blocks)
            f = functools.partial(condensed_matmul, **kwargs)
            y = jax.jit(f)(x, v, idx)
            # indices as an argument: closed over, XLA would constant-fold the backward's argsort at compile time
            loss = lambda a, b, i, g, f=f: jnp.sum(f(a, b, i).astype(jnp.float32) * g)
            gx, gv = jax.jit(jax.grad(loss, (0, 1)))(x, v, idx, g)
            row = {
                "op": "condensed",
                "implementation": impl,
                "dtype": jnp.dtype(dtype).name,
                "index_dtype": jnp.dtype(idx_dtype).name,
                "batch": batch,
                "rel_err_y": _rel_err(y, ref),
                "rel_err_grad_x": _rel_err(gx, ref_gx),
                "rel_err_grad_values": _rel_err(gv, ref_gv),
            }
            tol = 1e-2 if dtype == jnp.bfloat16 else 1e-3
            row["ok"] = all(row[key] < tol for key in ("rel_err_y", "rel_err_grad_x", "rel_err_grad_values"))
            rows.append(row)
    if not LEAN:
        rows.extend(_correctness_optional(interpret, rng))
    return rows


def _correctness_optional(interpret, rng):
    rows = []
    try:
        from pallas_kernels import grouped_condensed_matmul as gpkg
    except ImportError:
        gpkg = None
    if gpkg is not None:
        n_in, group, n_groups, k = 700, 16, 5, 40
        for dtype, batch in ((jnp.float32, 3), (jnp.bfloat16, 130)):
            idx = jnp.asarray(rng.integers(0, n_in, size=(n_groups, k)), jnp.int32)
            x = jnp.asarray(rng.normal(size=(batch, n_in)), dtype)
            v = jnp.asarray(rng.normal(size=(n_groups * group, k)), dtype)
            ref = gpkg.grouped_condensed_matmul_reference(
                x.astype(jnp.float32), v.astype(jnp.float32), idx, group_size=group
            )
            y = jax.jit(
                functools.partial(
                    gpkg.grouped_condensed_matmul, group_size=group, implementation="pallas", interpret=interpret
                )
            )(x, v, idx)
            err = _rel_err(y, ref)
            tol = 1e-2 if dtype == jnp.bfloat16 else 1e-3
            rows.append(
                {"op": "grouped", "dtype": jnp.dtype(dtype).name, "batch": batch, "rel_err_y": err, "ok": err < tol}
            )
    try:
        from pallas_kernels import nm_matmul as npkg
    except ImportError:
        npkg = None
    if npkg is not None:
        n_in, n_out = 512, 96
        for dtype, batch in ((jnp.float32, 5), (jnp.bfloat16, 200)):
            w = jnp.asarray(rng.normal(size=(n_in, n_out)), jnp.float32)
            values, positions = npkg.nm_compress(w, 2, 4)
            x = jnp.asarray(rng.normal(size=(batch, n_in)), dtype)
            ref = npkg.nm_matmul_reference(x.astype(jnp.float32), values, positions)
            y = jax.jit(functools.partial(npkg.nm_matmul, m=4, implementation="pallas", interpret=interpret))(
                x, values.astype(dtype), positions
            )
            err = _rel_err(y, ref)
            tol = 1e-2 if dtype == jnp.bfloat16 else 1e-3
            rows.append(
                {"op": "nm_2_4", "dtype": jnp.dtype(dtype).name, "batch": batch, "rel_err_y": err, "ok": err < tol}
            )
    return rows


# ----------------------------------------------------------------------------------------------- timings


def _condensed_weights(key, n_in, n_out, sparsity, dtype, copies, block_k):
    k = max(1, round(n_in * (1.0 - sparsity)))
    k_pad = -(-k // block_k) * block_k  # block_k=1: unpadded, as the forward kernel reads them
    idx_dtype = jnp.int16 if n_in < 32767 else jnp.int32
    out = []
    for c in range(copies):
        kv, ki = jax.random.split(jax.random.fold_in(key, c))
        idx = _fan_in_indices(ki, n_in, n_out, k)
        vals = jax.random.normal(kv, (n_out, k), jnp.float32) / np.sqrt(k)
        dense = condensed_to_dense_kernel(vals, idx, n_in).astype(dtype)
        idx_p = jnp.pad(idx, ((0, 0), (0, k_pad - k)), constant_values=n_in).astype(idx_dtype)
        vals_p = jnp.pad(vals, ((0, 0), (0, k_pad - k))).astype(dtype)
        out.append((vals_p, idx_p, dense))
    return k, out


def _variants(n_in, n_out, k, batch, dtype, full):
    """name -> op(x, values, indices, dense) for one configuration."""
    acc = jnp.float32
    v = {
        "dense": lambda x, vals, idx, w: jnp.dot(x, w, preferred_element_type=acc).astype(x.dtype),
        "pallas": lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="pallas"),
        "auto": lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="auto", dense_kernel=w),
    }
    if dtype == jnp.float32:
        v["dense_highest"] = lambda x, vals, idx, w: jnp.dot(
            x, w, preferred_element_type=acc, precision=jax.lax.Precision.HIGHEST
        )
    if cm_pkg.triton_available() and batch <= 16:
        v["triton"] = lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="triton")
    if full and (not LEAN or (batch == 1 and dtype == jnp.bfloat16)):
        v["densify_dot"] = lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="dense")
        if batch * n_out * k * 4 <= 2**31:  # the XLA gather and BCOO materialise [batch, n_out, k]
            v["xla"] = lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="xla")
            v["bcoo"] = _bcoo_op(n_in, n_out)
    return v


def _bcoo_op(n_in, n_out):
    from jax.experimental import sparse

    def op(x, vals, idx, w):
        # n_batch=1 BCOO is exactly the condensed format: data [n_out, k], indices [n_out, k, 1] into W^T.
        mat = sparse.BCOO((vals, idx.astype(jnp.int32)[..., None]), shape=(n_out, n_in + 1), indices_sorted=True)
        xz = jnp.pad(x, ((0, 0), (0, 1)))  # column n_in is the zero row that padded slots point to
        return (mat @ xz.T).T

    return op


def _bytes(name, n_in, n_out, k_pad, batch, itemsize, idx_itemsize):
    io = batch * (n_in + n_out) * itemsize
    if name.startswith("dense") or name == "auto_dense":
        return n_in * n_out * itemsize + io
    return n_out * k_pad * (itemsize + idx_itemsize) + io


def _timings(bench, results, log):
    key = jax.random.key(1)
    for dtype in (jnp.dtype(d) for d in DTYPES):
        for n_in, n_out in SHAPES:
            for sparsity in (0.9,) if LEAN else (0.9, *SPARSITIES):
                full = sparsity == 0.9
                if not full and dtype == jnp.float32:
                    continue
                batches = BATCHES if full else (1, 64, 1024)
                if LEAN and dtype == jnp.float32:
                    batches = tuple(b for b in batches if b in (1, 1024)) or batches
                if bench.left() < 30:
                    bench.skipped.append(f"{n_in}x{n_out} {jnp.dtype(dtype).name} s={sparsity}")
                    continue
                k, weights = _condensed_weights(key, n_in, n_out, sparsity, dtype, bench.copies, 1)
                k_pad = weights[0][0].shape[1]
                itemsize, idx_itemsize = jnp.dtype(dtype).itemsize, weights[0][1].dtype.itemsize
                for batch in batches:
                    xs = tuple(
                        jax.random.normal(jax.random.fold_in(key, 1000 + c), (batch, n_in), jnp.float32).astype(dtype)
                        for c in range(bench.copies)
                    )
                    ref = None
                    row = {
                        "shape": [n_in, n_out],
                        "sparsity": sparsity,
                        "k": k,
                        "k_padded": k_pad,
                        "dtype": jnp.dtype(dtype).name,
                        "index_dtype": weights[0][1].dtype.name,
                        "batch": batch,
                        "auto_picks": cm_pkg.auto_implementation(  # "auto" is timed with a cached dense kernel
                            batch, n_in, n_out, k_pad, dtype, weights[0][1].dtype, dense_kernel_cached=True
                        ),
                        "block_sizes": str(cm_pkg.default_block_sizes(batch, n_out, k_pad)),
                        "times": {},
                    }
                    variants = _variants(n_in, n_out, k, batch, dtype, full)
                    tuned = results.get("best_blocks", {}).get(f"{n_in}x{n_out} b{batch}") if full else None
                    if tuned is not None and dtype == jnp.bfloat16:
                        tuned = BlockSizes(**tuned)
                    if (
                        tuned is not None
                        and dtype == jnp.bfloat16
                        and tuned != cm_pkg.default_block_sizes(batch, n_out, k)
                    ):
                        row["tuned_block_sizes"] = str(tuned)
                        variants["pallas_tuned"] = lambda x, vals, idx, w, tuned=tuned: condensed_matmul(
                            x, vals, idx, implementation="pallas", block_sizes=tuned
                        )
                    for name, op in variants.items():
                        if bench.left() < 15:
                            bench.skipped.append(f"{name} {n_in}x{n_out} b{batch}")
                            continue
                        try:
                            t, y = bench.time(op, xs, weights)
                        except Exception as e:
                            row["times"][name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
                            continue
                        if ref is None:
                            ref = jnp.dot(
                                xs[0].astype(jnp.float32),
                                weights[0][2].astype(jnp.float32),
                                precision=jax.lax.Precision.HIGHEST,
                            )
                        t["rel_err"] = _rel_err(y, ref)
                        nbytes = _bytes(
                            "auto_dense" if name == "auto" and row["auto_picks"] == "dense" else name,
                            n_in,
                            n_out,
                            k_pad,
                            batch,
                            itemsize,
                            idx_itemsize,
                        )
                        t["hbm_gb_per_s"] = nbytes / (t["median_us"] * 1e-6) / 1e9
                        row["times"][name] = t
                    dense_t = row["times"].get("dense", {}).get("median_us")
                    for t in row["times"].values():
                        if dense_t and "median_us" in t:
                            t["speedup_vs_dense"] = dense_t / t["median_us"]
                    results["forward"].append(row)
                    log(row)
                del weights


def _sweep_configs(batch, k):
    if batch == 1:
        return [BlockSizes(bo, cm_pkg.next_pow2(k), 1, num_warps=nw) for bo, nw in SWEEP_BATCH1]
    configs = [BlockSizes(bo, bk, batch, num_warps=nw) for bo, bk, nw in SWEEP_BATCHED.get(batch, ())]
    if batch in SWEEP_BATCH_MAJOR_BATCHES:
        block_k = min(cm_pkg.next_pow2(k), 8192)
        configs += [BlockSizes(bo, block_k, 1, num_warps=nw, batch_major=True) for bo, nw in SWEEP_BATCH_MAJOR]
    return configs


def _sweep(bench, results):
    """Times forward tile configurations; the fastest per (shape, batch) lands in results["best_blocks"], which the
    forward section then times next to the defaults as "pallas_tuned"."""
    key = jax.random.key(2)
    dtype = jnp.bfloat16
    best = results.setdefault("best_blocks", {})
    plan = [(shape, 1) for shape in SHAPES] + [((4096, 4096), b) for b in SWEEP_BATCHED if (4096, 4096) in SHAPES]
    plan += [(shape, b) for b in SWEEP_BATCH_MAJOR_BATCHES for shape in SHAPES if (shape, b) not in plan]
    for (n_in, n_out), batch in plan:
        k, weights = _condensed_weights(key, n_in, n_out, 0.9, dtype, bench.copies, 1)
        xs = tuple(jax.random.normal(jax.random.fold_in(key, c), (batch, n_in), dtype) for c in range(bench.copies))
        timed = []
        for blocks in _sweep_configs(batch, k):
            if bench.left() < 20:
                bench.skipped.append(f"sweep {n_in}x{n_out} b{batch} {blocks}")
                continue
            op = lambda x, vals, idx, w, blocks=blocks: condensed_matmul(
                x, vals, idx, implementation="pallas", block_sizes=blocks
            )
            try:
                t, _ = bench.time(op, xs, weights)
                timed.append((t["median_us"], blocks))
            except Exception as e:
                t = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
            is_default = blocks == cm_pkg.default_block_sizes(batch, n_out, k)
            results["sweep"].append(
                {"shape": [n_in, n_out], "sparsity": 0.9, "k": k, "batch": batch, "blocks": str(blocks),
                 "is_default": is_default, **t}
            )  # fmt: skip
            print(f"  sweep {n_in}x{n_out} b={batch:3d} {blocks}{' (default)' if is_default else ''}: {t}", flush=True)
        if timed:
            best[f"{n_in}x{n_out} b{batch}"] = dataclasses.asdict(min(timed, key=lambda pair: pair[0])[1])
        del weights


def _backward(bench, results):
    key = jax.random.key(3)
    n_in, n_out, dtype = 4096, 4096, jnp.bfloat16
    _, weights = _condensed_weights(key, n_in, n_out, 0.9, dtype, bench.copies, 1)
    for batch in (1, 64, 1024):
        if bench.left() < 30:
            break
        xs = tuple(jax.random.normal(jax.random.fold_in(key, c), (batch, n_in), dtype) for c in range(bench.copies))

        def pallas_grad(x, vals, idx, w):
            return jax.grad(
                lambda a, b: jnp.sum(condensed_matmul(a, b, idx, implementation="pallas").astype(jnp.float32)), (0, 1)
            )(x, vals)

        def dense_grad(x, vals, idx, w):
            return jax.grad(lambda a, b: jnp.sum(jnp.dot(a, b, preferred_element_type=jnp.float32)), (0, 1))(x, w)

        row = {"shape": [n_in, n_out], "sparsity": 0.9, "dtype": "bfloat16", "batch": batch}
        for name, op in (("dense_fwd_bwd", dense_grad), ("pallas_fwd_bwd", pallas_grad)):
            try:
                row[name], _ = bench.time(op, xs, weights)
            except Exception as e:
                row[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        results["backward"].append(row)
        print(f"  backward {row}", flush=True)


def _structured(bench, results, size=4096, batches=(1, 64, 256, 1024, 4096)):
    key = jax.random.key(4)
    n_in, n_out, dtype = size, size, jnp.bfloat16
    try:
        from pallas_kernels import grouped_condensed_matmul as gpkg
    except ImportError:
        gpkg = None
    try:
        from pallas_kernels import nm_matmul as npkg
    except ImportError:
        npkg = None
    dense_op = lambda x, w: jnp.dot(x, w, preferred_element_type=jnp.float32).astype(x.dtype)
    for batch in batches:
        if bench.left() < 30:
            break
        xs = tuple(jax.random.normal(jax.random.fold_in(key, c), (batch, n_in), dtype) for c in range(bench.copies))
        dense_ws = tuple(
            (jax.random.normal(jax.random.fold_in(key, 50 + c), (n_in, n_out), jnp.float32).astype(dtype),)
            for c in range(bench.copies)
        )
        row = {"shape": [n_in, n_out], "dtype": "bfloat16", "batch": batch}
        row["dense"], _ = bench.time(dense_op, xs, dense_ws)
        if gpkg is not None:
            k = round(0.1 * n_in)
            for group in (16, 64):
                ws = []
                for c in range(bench.copies):
                    kk = jax.random.fold_in(key, 100 + c)
                    idx = _fan_in_indices(kk, n_in, n_out // group, k).astype(jnp.int16)
                    vals = (jax.random.normal(kk, (n_out, k), jnp.float32) / np.sqrt(k)).astype(dtype)
                    ws.append((vals, idx))
                op = lambda x, vals, idx, group=group: gpkg.grouped_condensed_matmul(
                    x, vals, idx, group_size=group, implementation="pallas"
                )
                try:
                    row[f"grouped_G{group}"], _ = bench.time(op, xs, tuple(ws))
                except Exception as e:
                    row[f"grouped_G{group}"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        if npkg is not None:
            ws = []
            for c in range(bench.copies):
                w = jax.random.normal(jax.random.fold_in(key, 200 + c), (n_in, n_out), jnp.float32)
                values, positions = npkg.nm_compress(w, 2, 4)
                ws.append((values.astype(dtype), npkg.pack_positions(positions, 4)))
            op = lambda x, values, packed: npkg.nm_matmul(x, values, packed, m=4, packed=True, implementation="pallas")
            try:
                row["nm_2_4"], _ = bench.time(op, xs, tuple(ws))
            except Exception as e:
                row["nm_2_4"] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
        for t in row.values():
            if isinstance(t, dict) and "median_us" in t:
                t["speedup_vs_dense"] = row["dense"]["median_us"] / t["median_us"]
        results["structured"].append(row)
        print(f"  structured {row}", flush=True)


def _floor(bench, results):
    """Per-call time of doing almost nothing: a one-tile Pallas-Triton kernel vs a one-op XLA fusion, timed like
    every other variant. The gap between them is what a custom call costs over a fusion here."""
    from jax.experimental import pallas as pl
    from jax.experimental.pallas import triton as pltriton

    def tiny_kernel(x_ref, y_ref):
        y_ref[...] = x_ref[...] * 2

    def pallas_op(x, w):
        return pl.pallas_call(
            tiny_kernel,
            out_shape=jax.ShapeDtypeStruct((16,), x.dtype),
            in_specs=[pl.BlockSpec((16,), lambda: (0,))],
            out_specs=pl.BlockSpec((16,), lambda: (0,)),
            compiler_params=pltriton.CompilerParams(num_warps=1, num_stages=1),
        )(x[0, :16])

    xla_op = lambda x, w: x[0, :16] * 2 + w[:16]
    key = jax.random.key(5)
    xs = tuple(jax.random.normal(jax.random.fold_in(key, c), (1, 4096), jnp.bfloat16) for c in range(bench.copies))
    ws = tuple((jnp.ones((16,), jnp.bfloat16),) for _ in range(bench.copies))
    row = {}
    for name, op in (("pallas_one_tile", pallas_op), ("xla_one_fusion", xla_op)):
        try:
            row[name], _ = bench.time(op, xs, ws)
        except Exception as e:
            row[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    results["floor"] = row
    print(f"  floor {row}", flush=True)


# HBM bandwidth by device kind (datasheets), for "% of roofline" over the profiler's device time.
PEAK_HBM_BYTES_PER_S = {"H100": 3.35e12, "H200": 4.8e12}
DEVICE_TIME_BATCHES = (1, 4, 16)


def _peak_hbm(device_kind: str):
    return next((bw for name, bw in PEAK_HBM_BYTES_PER_S.items() if name in device_kind), None)


def _device_time(bench, results, *, calls=10, process_prefix="/device:GPU", thread_contains="Stream"):
    """Per-call device time of the kernels themselves (profiler events, no launch floor), bf16 90%: dense vs the
    Pallas kernel (default and batch-major tiles) vs the XLA gather, with achieved bandwidth and % of peak."""
    from ._device_time import device_events, per_call_device_s

    key = jax.random.key(6)
    dtype = jnp.bfloat16
    peak = _peak_hbm(jax.devices()[0].device_kind)
    rows = results.setdefault("device_time", [])
    for n_in, n_out in SHAPES:
        k, weights = _condensed_weights(key, n_in, n_out, 0.9, dtype, bench.copies, 1)
        k_pad = weights[0][0].shape[1]
        for batch in DEVICE_TIME_BATCHES:
            if bench.left() < 20:
                bench.skipped.append(f"device_time {n_in}x{n_out} b{batch}")
                continue
            xs = tuple(jax.random.normal(jax.random.fold_in(key, c), (batch, n_in), dtype) for c in range(bench.copies))
            variants = {
                "dense": lambda x, vals, idx, w: jnp.dot(x, w, preferred_element_type=jnp.float32).astype(x.dtype),
                "pallas": lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="pallas"),
                "xla": lambda x, vals, idx, w: condensed_matmul(x, vals, idx, implementation="xla"),
            }
            if 1 < batch <= cm_pkg.GEMV_MAX_BATCH:
                blocks = BlockSizes(1, min(cm_pkg.next_pow2(k), 8192), 1, num_warps=1, batch_major=True)
                variants["pallas_batch_major"] = lambda x, vals, idx, w, b=blocks: condensed_matmul(
                    x, vals, idx, implementation="pallas", block_sizes=b
                )
            row = {"shape": [n_in, n_out], "k": k, "batch": batch, "dtype": "bfloat16", "times": {}}
            for name, op in variants.items():
                try:
                    events = device_events(
                        _many(op, bench.copies), (xs, weights), calls=calls, process_prefix=process_prefix
                    )
                    per_call = per_call_device_s(events, calls * bench.copies, thread_contains=thread_contains)
                except Exception as e:
                    row["times"][name] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
                    continue
                nbytes = _bytes(name, n_in, n_out, k_pad, batch, 2, weights[0][1].dtype.itemsize)
                entry = {"device_us": per_call * 1e6, "gb_per_s": nbytes / per_call / 1e9}
                if peak:
                    entry["pct_of_peak_hbm"] = 100.0 * nbytes / per_call / peak
                row["times"][name] = entry
            dense_us = row["times"].get("dense", {}).get("device_us")
            for entry in row["times"].values():
                if dense_us and "device_us" in entry:
                    entry["speedup_vs_dense"] = dense_us / entry["device_us"]
            rows.append(row)
            print(f"  device_time {n_in}x{n_out} b={batch}: {row['times']}", flush=True)
        del weights


def _log_row(row):
    parts = []
    for name, t in row["times"].items():
        if "median_us" in t:
            parts.append(f"{name} {t['median_us']:.1f}us x{t.get('speedup_vs_dense', 0):.2f} e{t['rel_err']:.0e}")
        else:
            parts.append(f"{name} ERR {t['error'][:80]}")
    print(
        f"  {row['shape'][0]}x{row['shape'][1]} {row['dtype']} s={row['sparsity']} b={row['batch']} "
        f"auto->{row['auto_picks']}: " + " | ".join(parts),
        flush=True,
    )


def run(quick: bool = False, tiny: bool = False, budget_s: float = 420.0, sections=None, on_section=None) -> dict:
    """Runs the sections that fit `budget_s`; returns the results dict (see the module docstring)."""
    gpu = _on_gpu()
    results = {
        "gpu": gpu,
        "copies": COPIES,
        "correctness": [],
        "forward": [],
        "sweep": [],
        "backward": [],
        "structured": [],
    }
    if not gpu and not tiny:
        print(f"[{NAME}] needs a GPU (the Pallas kernels only run interpreted here); use --tiny for a smoke run")
        results["skipped"] = ["no GPU"]
        return results
    if tiny:
        return _run_tiny(results)
    bench = _Bench(budget_s, copies=COPIES, samples=5 if quick else 7, min_sample_s=0.003 if quick else 0.01)
    sections = sections or ("correctness", "sweep", "forward", "device_time", "structured", "backward")
    for section in sections:
        start = time.perf_counter()
        if section == "correctness":
            results["correctness"] = _correctness(interpret=False)
            for row in results["correctness"]:
                print(f"  correctness {row}", flush=True)
        elif section == "forward":

            def log(row):  # save after every row: a run cut short by its lease still leaves its numbers
                _log_row(row)
                if on_section is not None:
                    on_section(results)

            _timings(bench, results, log)
        elif section == "sweep":
            _sweep(bench, results)
        elif section == "backward":
            _backward(bench, results)
        elif section == "floor":
            _floor(bench, results)
        elif section == "device_time":
            _device_time(bench, results)
        elif section == "structured":
            _structured(bench, results)
        print(
            f"[{NAME}] {section} took {time.perf_counter() - start:.1f} s, {bench.left():.0f} s of budget left",
            flush=True,
        )
        if on_section is not None:
            on_section(results)
    results["skipped"] = bench.skipped
    return results


def _run_tiny(results):
    """The benchmark's code path on a tiny layer (interpreted kernels on CPU): for the test-suite only."""
    global SHAPES, BATCHES, SPARSITIES, SWEEP_BATCH1, SWEEP_BATCHED, SWEEP_BATCH_MAJOR, SWEEP_BATCH_MAJOR_BATCHES
    SHAPES, BATCHES, SPARSITIES = ((64, 32),), (1, 5), ()
    SWEEP_BATCH1, SWEEP_BATCHED = ((2, 1), (4, 2)), {}
    SWEEP_BATCH_MAJOR, SWEEP_BATCH_MAJOR_BATCHES = ((1, 1),), (5,)
    bench = _Bench(60.0, copies=2, samples=2, min_sample_s=0.0)
    _sweep(bench, results)
    _timings(bench, results, _log_row)
    _structured(bench, results, size=128, batches=(3,))
    global DEVICE_TIME_BATCHES
    DEVICE_TIME_BATCHES = (1, 5)
    # On CPU the XLA ops (the interpreted kernels included) run on the PjRt client's host threads.
    _device_time(bench, results, calls=2, process_prefix="/host:CPU", thread_contains="XLAPjRtCpuClient")
    results["skipped"] = bench.skipped
    return results


def _atomic_json(path, payload):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".kernels-", suffix=".json.tmp", dir=folder)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1, sort_keys=True, default=str)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels", description=__doc__.splitlines()[0])
    parser.add_argument("--json", metavar="PATH", help="write results here (rewritten after each section)")
    parser.add_argument("--budget-s", type=float, default=420.0, help="stop starting new work after this long")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sections", nargs="*", default=None)
    parser.add_argument("--lean", action="store_true", help="90%% sparsity, dense/pallas/auto only")
    parser.add_argument("--batches", type=int, nargs="*", default=None, help="forward section: only these batches")
    parser.add_argument("--dtypes", nargs="*", default=None, choices=("bfloat16", "float32"), help="forward dtypes")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    global LEAN, BATCHES, DTYPES  # run-wide switches, set once from the command line
    LEAN = args.lean
    if args.batches:
        BATCHES = tuple(args.batches)
    if args.dtypes:
        DTYPES = tuple(args.dtypes)
    dev = jax.devices()[0]
    env = {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "jax_version": jax.__version__,
        "python": sys.version.split()[0],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    print(f"[{NAME}] {env}", flush=True)
    payload = {"environment": env, "device": env["device"], "jax_version": jax.__version__}

    def save(results):
        if args.json:
            _atomic_json(args.json, {**payload, "kernels": results})

    results = run(quick=args.quick, budget_s=args.budget_s, sections=args.sections, on_section=save)
    save(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
