"""`python -m benchmarks` runs end to end (tiny sizes) and writes a well-formed results JSON; no timing limits."""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args, timeout=120):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one plain CPU device
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _positive_medians(node):
    """All values under keys named median_s / *_median_s, recursively."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "median_s" or key.endswith("_median_s"):
                yield value
            else:
                yield from _positive_medians(value)
    elif isinstance(node, list):
        for value in node:
            yield from _positive_medians(value)


def test_condensed_inference_quick_tiny_json(tmp_path):
    path = tmp_path / "sub" / "results.json"
    result = _run("--quick", "--tiny", "--only", "condensed_inference", "--json", str(path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "x dense time" in result.stdout
    data = json.loads(path.read_text())
    assert not list(path.parent.glob(".bench-*")), "temporary file left behind"
    for key in ("device", "jax_version", "environment", "benchmarks", "quick", "tiny"):
        assert key in data
    assert data["quick"] is True and data["tiny"] is True
    assert list(data["benchmarks"]) == ["condensed_inference"]
    bench = data["benchmarks"]["condensed_inference"]
    assert bench["layers"] and bench["batches"]
    for layer in bench["layers"]:
        assert layer["in_features"] > 0 and layer["k"] > 0
        assert set(layer["batches"]) == set(layer["auto_picks"]) == {str(b) for b in bench["batches"]}
        for batch, row in layer["batches"].items():
            for name in (
                "dense x @ W (baseline)",
                "condensed_matmul xla (gather)",
                "condensed_matmul dense (scatter+GEMM)",
                "CondensedLinear auto",
                "CondensedLinear auto, cached kernel",
            ):
                assert name in row
            for timing in row.values():
                assert timing["median_s"] > 0 and timing["speedup_vs_dense"] > 0 and timing["iqr_s"] >= 0
            assert set(layer["auto_picks"][batch].values()) <= {"xla", "dense"}
    assert set(bench["auto_vs_dense"]) == {"uncached_worst", "uncached_vs_scatter_worst", "cached_worst", "cached_best"}
    medians = list(_positive_medians(bench))
    assert medians and all(m > 0 for m in medians)


def test_help_and_bad_name():
    assert _run("--help").returncode == 0
    bad = _run("--only", "no_such_benchmark")
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


def test_dst_step_quick_tiny_json(tmp_path):
    path = tmp_path / "dst.json"
    result = _run("--quick", "--tiny", "--only", "dst_step", "--json", str(path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(path.read_text())["benchmarks"]["dst_step"]
    assert set(bench["steady_state"]) >= {"dense", "static", "srigl", "rigl", "set"}
    for method in ("srigl", "rigl", "set"):
        assert bench["steady_state"][method]["ratio_vs_static"] > 0
        step = bench["single_step"][method]
        assert step["mask_update_step_median_s"] > 0 and step["ordinary_step_median_s"] > 0
    medians = list(_positive_medians(bench))
    assert medians and all(m > 0 for m in medians)


def test_xmc_scale_tiny_json(tmp_path):
    path = tmp_path / "xmc.json"
    result = _run("--tiny", "--only", "xmc_scale", "--json", str(path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(path.read_text())["benchmarks"]["xmc_scale"]
    assert bench["constant_fan_in"] is True
    memory = bench["memory"]
    # values + bias (fp32) and int32 indices: exact bytes, and well under the dense head.
    assert memory["head_param_bytes"] == (bench["labels"] * bench["fan_in"] + bench["labels"]) * 4
    assert memory["head_index_bytes"] == bench["labels"] * bench["fan_in"] * 4
    assert memory["head_total_bytes"] < memory["dense_head_total_bytes"]
    assert bench["step_s_median"] > 0


def test_kernels_tiny_json(tmp_path):
    # On CPU the kernels run interpreted: this checks the benchmark's code path and records, not speed.
    path = tmp_path / "kernels.json"
    result = _run("--tiny", "--only", "kernels", "--json", str(path), timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bench = json.loads(path.read_text())["benchmarks"]["kernels"]
    assert bench["gpu"] is False and bench["forward"] and bench["structured"] and bench["sweep"]
    assert any("pallas_tuned" in row["times"] for row in bench["forward"])  # the sweep's best, timed again
    assert any("batch_major=True" in row["blocks"] and "median_us" in row for row in bench["sweep"])
    # The profiler-based section ran its parser on the CPU trace: per-call time for every variant at both batches.
    assert {row["batch"] for row in bench["device_time"]} == {1, 5}
    for row in bench["device_time"]:
        assert {"dense", "pallas", "xla"} <= set(row["times"])
        assert all(t["device_us"] > 0 and t["gb_per_s"] > 0 for t in row["times"].values()), row
    assert any("pallas_batch_major" in row["times"] for row in bench["device_time"])
    for row in bench["forward"]:
        assert {"dense", "pallas", "auto"} <= set(row["times"])
        for timing in row["times"].values():
            assert timing["median_us"] > 0
            tol = 1e-2 if row["dtype"] == "bfloat16" else 1e-5
            assert timing["rel_err"] < tol  # every implementation computed the dense product


def test_kernels_without_gpu_says_so():
    result = _run("--only", "kernels")
    assert result.returncode == 0 and "needs a GPU" in result.stdout
