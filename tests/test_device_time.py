"""benchmarks._device_time: the profiler-trace parser, checked on CPU where XLA ops run on host threads."""

import jax
import jax.numpy as jnp
import pytest

from benchmarks._device_time import device_events, per_call_device_s


def test_device_events_count_every_call_of_a_jitted_matmul():
    f = jax.jit(lambda a, b: jnp.tanh(a @ b))
    a = jnp.ones((128, 128))
    events = device_events(f, (a, a), calls=5, process_prefix="/host:CPU")
    assert events and all(d >= 0 for durations in events.values() for d in durations)
    client = {key: d for key, d in events.items() if "XLAPjRtCpuClient" in key[0]}
    # One matmul fusion and one tanh per call, each on one of the client's threads: 5 of each in all.
    by_name = {}
    for (_, name), durations in client.items():
        by_name[name] = by_name.get(name, 0) + len(durations)
    assert by_name.get("wrapped_tanh") == 5
    assert sum(n for name, n in by_name.items() if "fusion" in name or "dot" in name) >= 5
    per_call = per_call_device_s(events, 5, thread_contains="XLAPjRtCpuClient")
    assert 0 < per_call < 1.0
    with pytest.raises(RuntimeError, match="threads seen"):
        per_call_device_s(events, 5, thread_contains="Stream #")  # no GPU streams on CPU
    with pytest.raises(ValueError, match="calls must be a positive int"):
        device_events(f, (a, a), calls=0)
