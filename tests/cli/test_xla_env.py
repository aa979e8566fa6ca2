"""The CLI entry points' XLA flag choice: appended once, never over a user's own value."""

from jaxsparse.cli._xla_env import CPU_SCHEDULER_FLAG, prefer_memory_optimized_cpu_scheduler


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
