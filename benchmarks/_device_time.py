"""Device-side time of jitted calls, read from a profiler trace: what the kernels themselves take.

Wall-clock timing of a small kernel includes a per-launch floor (~6-7 us per call on an H200 even 16 calls back
to back); the profiler's device events do not, so achieved bandwidth over them says how close a kernel gets to
the HBM roofline. `jax.profiler.trace(..., create_perfetto_trace=True)` writes a Chrome-trace JSON next to the
xplane; this module runs a function under it and groups the complete ("X") events of the matching processes
by thread and name. On a GPU the kernels sit on "Stream" threads of "/device:GPU:N" processes, the XLA
programs on an "XLA Modules" thread; on CPU the XLA ops run on "/host:CPU" threads (how the tests check it).
"""

import collections
import glob
import gzip
import json
import os
import tempfile

import jax

__all__ = ["device_events", "per_call_device_s"]


def _load_trace(log_dir: str) -> list[dict]:
    paths = glob.glob(os.path.join(log_dir, "**", "perfetto_trace.json.gz"), recursive=True)
    if not paths:
        raise RuntimeError(f"the profiler wrote no perfetto_trace.json.gz under {log_dir}")
    with gzip.open(max(paths, key=os.path.getmtime), "rt") as f:
        trace = json.load(f)
    return trace["traceEvents"] if isinstance(trace, dict) else trace


def device_events(fn, args, *, calls: int, process_prefix: str = "/device:GPU") -> dict[tuple[str, str], list[float]]:
    """Runs `fn(*args)` `calls` times (after one untimed call) under the profiler.

    Returns {(thread name, event name): [durations in seconds]} for the complete events of every process whose
    name starts with `process_prefix`.
    """
    if not isinstance(calls, int) or calls < 1:
        raise ValueError(f"calls must be a positive int, got {calls!r}")
    jax.block_until_ready(fn(*args))  # compile outside the trace
    with tempfile.TemporaryDirectory() as log_dir:
        with jax.profiler.trace(log_dir, create_perfetto_trace=True):
            for _ in range(calls):
                jax.block_until_ready(fn(*args))
        events = _load_trace(log_dir)
    processes, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            processes[e["pid"]] = e["args"]["name"]
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e["pid"], e.get("tid"))] = e["args"]["name"]
    out = collections.defaultdict(list)
    for e in events:
        if e.get("ph") != "X" or not processes.get(e.get("pid"), "").startswith(process_prefix):
            continue
        thread = threads.get((e["pid"], e.get("tid")), str(e.get("tid")))
        out[(thread, e["name"])].append(float(e.get("dur", 0.0)) * 1e-6)  # trace times are in microseconds
    return dict(out)


def per_call_device_s(events: dict[tuple[str, str], list[float]], calls: int, *, thread_contains: str) -> float:
    """Total duration of the events on threads whose name contains `thread_contains`, per call (seconds)."""
    total = sum(sum(d) for (thread, _), d in events.items() if thread_contains in thread)
    if total <= 0:
        seen = sorted({thread for thread, _ in events})
        raise RuntimeError(f"no events on a thread containing {thread_contains!r}; threads seen: {seen}")
    return total / calls
