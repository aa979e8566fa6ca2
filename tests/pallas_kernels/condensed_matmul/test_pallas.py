"""The Pallas condensed kernels: GPU lowering checked on CPU, tile validation, `auto` dispatch, a real-GPU run."""

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.condensed_matmul import (
    BlockSizes,
    CpuCostModel,
    GpuCostModel,
    auto_implementation,
    condensed_matmul,
    condensed_matmul_reference,
    default_backward_block_sizes,
    default_block_sizes,
)
from tests.pallas_kernels._cuda_lowering import TRITON_CALL, lower_for_cuda


@pytest.mark.parametrize(
    ("dtype", "index_dtype", "batch", "blocks"),
    [
        (jnp.float32, jnp.int32, 5, None),
        (jnp.bfloat16, jnp.int16, 1, BlockSizes(128, 32, 1)),
        (jnp.bfloat16, jnp.int16, 300, BlockSizes(16, 32, 64, num_warps=8)),
        (jnp.bfloat16, jnp.int16, 1, BlockSizes(1, 16, 1, num_warps=1)),  # GEMV tiles, fan-in in 1 masked step
        (jnp.bfloat16, jnp.int16, 5, BlockSizes(1, 16, 1, num_warps=1, batch_major=True)),  # batch unrolled
        (jnp.float32, jnp.int32, 16, BlockSizes(4, 8, 1, batch_major=True)),
    ],
)
def test_forward_and_backward_lower_to_triton_for_cuda(dtype, index_dtype, batch, blocks):
    # Catches non-power-of-2 tensors and ops without a Triton lowering rule, without a GPU.
    n_in, n_out, k = 37, 21, 11
    x = jax.ShapeDtypeStruct((batch, n_in), dtype)
    v = jax.ShapeDtypeStruct((n_out, k), dtype)
    i = jax.ShapeDtypeStruct((n_out, k), index_dtype)
    f = functools.partial(condensed_matmul, implementation="pallas", block_sizes=blocks, interpret=False)
    fwd = lower_for_cuda(f, x, v, i)
    assert fwd.count(TRITON_CALL) == 1
    grad = jax.grad(lambda a, b, c: jnp.sum(f(a, b, c).astype(jnp.float32)), (0, 1))
    bwd = lower_for_cuda(grad, x, v, i)
    assert bwd.count(TRITON_CALL) == 3  # forward, grad values, grad x (the fan-out gather)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_out": 24}, "block_out must be a positive power of two"),
        ({"block_k": 0}, "block_k must be a positive power of two"),
        ({"block_batch": True}, "block_batch must be a positive power of two"),
        ({"num_warps": 0}, "num_warps must be a positive int"),
        ({"block_out": 256, "block_k": 64, "block_batch": 64}, "exceeds 65536"),
        ({"batch_major": 1}, "batch_major must be a bool"),
    ],
)
def test_block_sizes_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockSizes(**kwargs)


@pytest.mark.parametrize("batch", [1, 3, 16, 17, 4096])
@pytest.mark.parametrize(("n_out", "k"), [(768, 320), (8, 5), (14336, 2048)])
def test_default_block_sizes_are_valid_and_cover_small_batches(batch, n_out, k):
    blocks = default_block_sizes(batch, n_out, k)
    assert blocks.block_out * blocks.block_k * blocks.block_batch <= 16384
    assert blocks.block_batch <= max(1, 2 ** int(np.ceil(np.log2(batch))))  # no tile wider than the batch needs


@pytest.mark.parametrize(("n_out", "k"), [(768, 307), (4096, 410), (14336, 410), (21, 11)])
def test_small_batch_forward_tiles_take_the_fan_in_in_one_step_and_fill_the_gpu(n_out, k):
    blocks = default_block_sizes(1, n_out, k)
    assert blocks.block_batch == 1 and blocks.block_k >= k  # one masked step over the unpadded fan-in
    assert blocks.block_out == 1  # one row per program: n_out programs keep every SM's loads in flight
    # The backward keeps its own square-ish tiles.
    assert default_backward_block_sizes(1, n_out, k).block_out >= 16


def test_batch_major_inference_is_one_kernel_at_any_small_batch_and_refuses_large_batches():
    # Batch-major tiles read x as it comes: at batch 4 there is no transposed (or padded) copy of x to launch.
    x = jax.ShapeDtypeStruct((4, 3072), jnp.bfloat16)
    v = jax.ShapeDtypeStruct((768, 307), jnp.bfloat16)
    i = jax.ShapeDtypeStruct((768, 307), jnp.int16)
    blocks = BlockSizes(1, 512, 1, num_warps=1, batch_major=True)
    f = functools.partial(condensed_matmul, implementation="pallas", interpret=False, block_sizes=blocks)
    text = lower_for_cuda(f, x, v, i)
    assert text.count(TRITON_CALL) == 1
    assert "stablehlo.transpose" not in text and "stablehlo.pad" not in text
    feature_major = functools.partial(condensed_matmul, implementation="pallas", interpret=False)
    assert "stablehlo.transpose" in lower_for_cuda(feature_major, x, v, i)  # what batch-major saves
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="batch_major unrolls the batch"):
        condensed_matmul(
            jnp.asarray(rng.standard_normal((17, 12)), jnp.float32),
            jnp.ones((3, 2)),
            jnp.zeros((3, 2), jnp.int32),
            implementation="pallas",
            block_sizes=BlockSizes(1, 2, 1, batch_major=True),
        )


def test_batch_one_inference_lowers_to_one_kernel_without_padding_ops():
    # At batch 1 the forward is x.T (a bitcast) and the kernel: no padded copy of the weights, no zero row.
    x = jax.ShapeDtypeStruct((1, 3072), jnp.bfloat16)
    v = jax.ShapeDtypeStruct((768, 307), jnp.bfloat16)
    i = jax.ShapeDtypeStruct((768, 307), jnp.int16)
    text = lower_for_cuda(functools.partial(condensed_matmul, implementation="pallas", interpret=False), x, v, i)
    assert text.count(TRITON_CALL) == 1
    assert "stablehlo.pad" not in text and "stablehlo.concatenate" not in text


def test_auto_dispatch_by_platform_batch_and_cache():
    cpu = functools.partial(auto_implementation, platform="cpu")
    assert cpu(1, 3072, 768, 307) == "xla"  # without a cache the dense path scatters 9.4 MB on every call
    assert cpu(256, 3072, 768, 307) == "dense"
    assert cpu(1, 3072, 768, 307, dense_kernel_cached=True) == "dense"  # the gather measured 0.66-0.94x a GEMV
    assert cpu(1, 4096, 4096, 41, dense_kernel_cached=True) == "xla"  # 99% sparse: 1/10 of the bytes
    assert cpu(64, 4096, 4096, 41, dense_kernel_cached=True) == "dense"
    assert cpu(1, 12, 6, 4) == "xla"  # tiny layers: the same dispatch cost either way, the gather does less
    assert auto_implementation(1, 3072, 768, 307, platform="tpu") == "xla"  # Mosaic TPU cannot gather rows
    assert auto_implementation(256, 3072, 768, 307, platform="tpu", dense_kernel_cached=True) == "dense"
    gpu = functools.partial(auto_implementation, platform="gpu", dtype=jnp.bfloat16, index_dtype=jnp.int16)
    assert gpu(1, 4096, 14336, 64) == "pallas"  # 98% sparse, large layer: the dense GEMV streams 117 MB
    assert gpu(4096, 4096, 14336, 64) == "dense"  # gather bound beyond the crossover
    assert gpu(1, 4096, 4096, 3072, dense_kernel_cached=True) == "dense"  # 25% sparse: no byte saving to gather
    assert gpu(1, 4096, 4096, 3072) == "pallas"  # ... unless the dense path must scatter 34 MB first
    for cached in (False, True):
        for cost_model_pick in (cpu, gpu):
            picks = [
                cost_model_pick(b, 4096, 14336, 64, dense_kernel_cached=cached)
                for b in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
            ]
            assert picks == sorted(picks, key=lambda p: p == "dense")  # one crossover, gather/kernel below it
    # A cache only ever moves the choice towards dense.
    for b in (1, 4, 16, 64, 256):
        for n_in, n_out, k in ((3072, 768, 307), (4096, 4096, 41), (1024, 1024, 10)):
            if cpu(b, n_in, n_out, k) == "dense":
                assert cpu(b, n_in, n_out, k, dense_kernel_cached=True) == "dense"
            if gpu(b, n_in, n_out, k) == "dense":
                assert gpu(b, n_in, n_out, k, dense_kernel_cached=True) == "dense"


def test_cost_model_kernel_loses_when_gather_dominates():
    assert GpuCostModel.kernel_wins(1, 4096, 14336, 41, 2, 2)
    assert not GpuCostModel.kernel_wins(100_000, 4096, 14336, 41, 2, 2)
    assert CpuCostModel.gather_wins(1, 4096, 4096, 41, 4)
    assert not CpuCostModel.gather_wins(100_000, 4096, 4096, 41, 4)
    # The densify term: uncached dense costs more than cached by exactly the scatter model.
    extra = CpuCostModel.dense_s(8, 1024, 1024, 4) - CpuCostModel.dense_s(8, 1024, 1024, 4, dense_kernel_cached=True)
    assert extra == pytest.approx(1024 * 1024 * 4 / CpuCostModel.densify_bytes_per_s[True])


def test_auto_is_never_slower_than_dense_on_the_committed_gpu_measurements():
    # The dispatch policy replayed on measured per-call times: wherever `auto` would run the kernel it must
    # have measured within 5% of dense (plus its spread); where it runs dense it is dense.
    path = pathlib.Path(__file__).parents[3] / "benchmarks" / "results" / "kernels-h200-jax0.11.2.json"
    rows = json.loads(path.read_text())["kernels"]["forward"]
    checked = 0
    for row in rows:
        times = row["times"]
        if "median_us" not in times.get("pallas", {}) or "median_us" not in times.get("dense", {}):
            continue
        n_in, n_out = row["shape"]
        pick = auto_implementation(  # the benchmark's "auto" is handed a cached dense kernel
            row["batch"],
            n_in,
            n_out,
            row["k_padded"],
            row["dtype"],
            row["index_dtype"],
            platform="gpu",
            dense_kernel_cached=True,
        )
        if pick == "pallas":
            slack = 1.05 * times["dense"]["median_us"] + times["pallas"]["iqr_us"]
            assert times["pallas"]["median_us"] <= slack, row
        checked += 1
    assert checked >= 15


def test_auto_on_cpu_is_never_slower_than_its_alternative_on_the_committed_cpu_measurements():
    # The CPU policy replayed on measured medians (benchmarks/condensed_inference.py, fp32, 2-core VM): wherever
    # `auto` runs the gather, the gather measured within 5% (plus its spread) of the dense path it replaced:
    # the stored GEMM with a cached kernel, scatter-then-GEMM without. Where it runs dense it is that path.
    path = pathlib.Path(__file__).parents[3] / "benchmarks" / "results" / "cpu-2core-jax0.10.2.json"
    bench = json.loads(path.read_text())["benchmarks"]["condensed_inference"]
    checked = gathers = 0
    for layer in bench["layers"]:
        n_in, n_out, k = layer["in_features"], layer["out_features"], layer["k"]
        for batch, row in layer["batches"].items():
            gather = row["condensed_matmul xla (gather)"]
            for cached, dense_name in (
                (False, "condensed_matmul dense (scatter+GEMM)"),
                (True, "dense x @ W (baseline)"),
            ):
                pick = auto_implementation(int(batch), n_in, n_out, k, platform="cpu", dense_kernel_cached=cached)
                assert pick == layer["auto_picks"][batch]["cached" if cached else "uncached"]  # same policy
                if pick == "xla":
                    assert gather["median_s"] <= 1.05 * row[dense_name]["median_s"] + gather["iqr_s"], (layer, batch)
                    gathers += 1
                checked += 1
    assert checked >= 40 and gathers >= 10


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "tol"), [(jnp.float32, 1e-3), (jnp.bfloat16, 1e-2)])
@pytest.mark.parametrize(("batch", "batch_major"), [(1, False), (9, False), (300, False), (9, True), (16, True)])
def test_compiled_kernel_matches_reference_on_gpu(dtype, tol, batch, batch_major):
    rng = np.random.default_rng(batch)
    n_in, n_out, k = 1000, 200, 45
    idx = rng.integers(0, n_in + 1, size=(n_out, k))  # includes empty slots (n_in)
    x = jnp.asarray(rng.standard_normal((batch, n_in)), dtype)
    v = jnp.asarray(rng.standard_normal((n_out, k)), dtype)
    i = jnp.asarray(idx, jnp.int16)
    g = jnp.asarray(rng.standard_normal((batch, n_out)), jnp.float32)
    blocks = BlockSizes(1, 64, 1, num_warps=1, batch_major=True) if batch_major else None
    f = functools.partial(condensed_matmul, implementation="pallas", interpret=False, block_sizes=blocks)
    loss = lambda a, b, c, fn: jnp.sum(fn(a, b, c).astype(jnp.float32) * g)
    y = jax.jit(f)(x, v, i)
    gx, gv = jax.jit(jax.grad(loss, (0, 1)), static_argnums=3)(x, v, i, f)
    x32, v32 = x.astype(jnp.float32), v.astype(jnp.float32)
    ref = condensed_matmul_reference(x32, v32, i)
    rgx, rgv = jax.grad(loss, (0, 1))(x32, v32, i, condensed_matmul_reference)
    for got, want in ((y, ref), (gx, rgx), (gv, rgv)):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < tol
