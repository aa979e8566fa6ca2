"""CLI runtime settings: the XLA flag appended once, glibc malloc settings, never over a user's own choice."""

import subprocess
import sys

import pytest

from jaxsparse.cli._cpu_runtime import CPU_SCHEDULER_FLAG, prefer_memory_optimized_cpu_scheduler


def test_flag_is_appended_to_existing_flags():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    assert prefer_memory_optimized_cpu_scheduler(env)
    assert env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=8 {CPU_SCHEDULER_FLAG}"
    assert not prefer_memory_optimized_cpu_scheduler(env)  # idempotent
    assert env["XLA_FLAGS"].count("concurrency_optimized_scheduler") == 1


def test_user_choice_and_opt_out_are_respected():
    env = {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}
    assert not prefer_memory_optimized_cpu_scheduler(env)
    assert env["XLA_FLAGS"] == "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    env = {"JAXSPARSE_KEEP_XLA_FLAGS": "1"}
    assert not prefer_memory_optimized_cpu_scheduler(env)
    assert "XLA_FLAGS" not in env
    env = {}
    assert prefer_memory_optimized_cpu_scheduler(env) and env["XLA_FLAGS"] == CPU_SCHEDULER_FLAG


def test_malloc_settings_respect_user_variables_and_opt_out(monkeypatch):
    from jaxsparse.cli import _cpu_runtime

    calls = []
    monkeypatch.setattr(_cpu_runtime, "_glibc_mallopt", lambda: lambda param, value: calls.append((param, value)) or 1)
    for env in ({"JAXSPARSE_KEEP_XLA_FLAGS": "1"}, {"MALLOC_ARENA_MAX": "4"}, {"MALLOC_TRIM_THRESHOLD_": "0"}):
        assert not _cpu_runtime.keep_freed_memory_in_process(env)
    assert calls == []
    assert _cpu_runtime.keep_freed_memory_in_process({})
    assert calls == [(-8, 1), (-3, 32 * 2**20), (-1, 256 * 2**20)]  # M_ARENA_MAX, M_MMAP_, M_TRIM_THRESHOLD
    monkeypatch.setattr(_cpu_runtime, "_glibc_mallopt", lambda: lambda param, value: 0)  # mallopt refused
    assert not _cpu_runtime.keep_freed_memory_in_process({})


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_mallopt_is_found_and_accepts_the_settings_on_glibc():
    # In a fresh interpreter (the settings are process-wide), as the CLI runs them before JAX starts.
    code = (
        "import platform, sys; from jaxsparse.cli._cpu_runtime import keep_freed_memory_in_process as k;"
        "sys.exit(0 if k({}) or platform.libc_ver()[0] != 'glibc' else 1)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False, timeout=120).returncode == 0
