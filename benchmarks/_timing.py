"""Side-by-side timing: warm up (compile) every variant, then alternate them over repeats and take medians.

Every variant is a zero-argument callable that returns JAX arrays (or pytrees of them). A sample runs it
`inner` times back to back (dispatch stays asynchronous) and blocks on the last result, so per-call
dispatch cost is included once per call, as in real use. Variants run in a rotated order in every repeat,
so slow drifts of the machine (thermal, other processes) hit all of them alike.
"""

import platform
import statistics
import time
from collections.abc import Callable

import jax

__all__ = ["calibrate_inner", "environment", "interleaved_medians", "ratio_line"]


def _sample(fn: Callable, inner: int) -> float:
    start = time.perf_counter()
    out = None
    for _ in range(inner):
        out = fn()
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / inner


def calibrate_inner(fn: Callable, *, target_s: float, max_inner: int = 100_000) -> int:
    """Calls per sample so one sample lasts about `target_s` (fn must already be compiled)."""
    once = _sample(fn, 1)
    if once >= target_s:
        return 1
    once = min(once, *(_sample(fn, 1) for _ in range(2)))
    return max(1, min(max_inner, int(target_s / max(once, 1e-7))))


def interleaved_medians(
    variants: dict[str, Callable],
    *,
    repeats: int,
    target_s: float = 0.05,
    inner: dict[str, int] | int | None = None,
    warmup: int = 2,
) -> dict[str, dict]:
    """Times every variant side by side; returns {name: {"median_s", "min_s", "iqr_s", "samples", "inner"}}.

    Args:
      variants: name -> zero-argument callable returning arrays.
      repeats: samples per variant (median over them).
      target_s: seconds per sample used to choose `inner` when it is not given.
      inner: calls per sample, one number for all or per variant; calibrated when None.
      warmup: untimed calls per variant before calibration (the first one compiles).
    """
    for fn in variants.values():
        for _ in range(warmup):
            jax.block_until_ready(fn())
    if inner is None:
        inner = {name: calibrate_inner(fn, target_s=target_s) for name, fn in variants.items()}
    elif isinstance(inner, int):
        inner = dict.fromkeys(variants, inner)
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(_sample(variants[name], inner[name]))
    return {
        name: {
            "median_s": statistics.median(samples[name]),
            "min_s": min(samples[name]),
            "iqr_s": _iqr(samples[name]),
            "samples": len(samples[name]),
            "inner": inner[name],
        }
        for name in names
    }


def _iqr(values: list[float]) -> float:
    """Interquartile range (0 for fewer than two samples): the spread a policy check on medians must allow."""
    if len(values) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def ratio_line(name: str, seconds: float, baseline_s: float, *, width: int = 34, kind: str = "x slower") -> str:
    """One aligned line: name, time in µs/ms, and time / baseline."""
    unit, scale = ("ms", 1e3) if seconds >= 1e-3 else ("µs", 1e6)
    return f"  {name:<{width}} {seconds * scale:10.3f} {unit}   {seconds / baseline_s:7.3f}{kind}"


def environment() -> dict:
    """Device, versions and host facts recorded with every result."""
    import os

    import flax
    import numpy as np
    import optax

    dev = jax.devices()[0]
    return {
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "backend": jax.default_backend(),
        "num_devices": jax.device_count(),
        "jax_version": jax.__version__,
        "jaxlib_version": getattr(jax.lib, "__version__", None) or _jaxlib_version(),
        "flax_version": flax.__version__,
        "optax_version": optax.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": _cpu_model() or platform.processor(),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def _jaxlib_version() -> str | None:
    try:
        import jaxlib

        return jaxlib.__version__
    except (ImportError, AttributeError):
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
