"""CPU runtime settings applied before JAX starts by the entry points (never by the library itself).

A dynamic-sparse-training step carries its mask update under `lax.cond`, so its XLA temporary arena holds
the update's scratch too (20-28 MB for a 784-1024-1024 MLP, against 6 MB for a static-sparse step), and
XLA's CPU runtime allocates that arena afresh on every execution.

* The `jaxsparse` CLI and `python -m benchmarks` set XLA's memory-optimised CPU scheduler: the default
  concurrency-optimised one takes the arena to 32-42 MB, past glibc's 32 MiB mmap ceiling, so it would be
  mmap'd and page-faulted on every step (1.4-1.6x a static step).
* `python -m benchmarks` also sets one malloc arena with a fixed 32 MiB mmap and a 256 MiB trim threshold.
  A benchmark runs several step programs in turn, and glibc then hands each program's freed arena back
  from its per-thread heaps, so the next step faults it in again (1100-3100 page faults per SRigL step,
  1.1-1.5x a static step; 0 after). One training loop running one program does not suffer this (0-15
  faults per step measured), while one arena slows small-step workloads whose threads allocate concurrently
  (the digits reproductions: 15-30%), so the CLI leaves malloc alone.

Library users set the XLA flag themselves (README). `JAXSPARSE_KEEP_XLA_FLAGS=1` turns both off.
"""

import ctypes
import os
import sys

__all__ = [
    "CPU_SCHEDULER_FLAG",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD",
    "MALLOC_TRIM_THRESHOLD",
    "apply_cpu_runtime_settings",
    "keep_freed_memory_in_process",
    "prefer_memory_optimized_cpu_scheduler",
]

CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
MALLOC_ARENA_MAX = 1
MALLOC_MMAP_THRESHOLD = 32 * 2**20  # glibc's largest allowed value on 64-bit (HEAP_MAX_SIZE / 2)
MALLOC_TRIM_THRESHOLD = 256 * 2**20
_OPT_OUT = "JAXSPARSE_KEEP_XLA_FLAGS"
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
_MALLOC_ENV = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def prefer_memory_optimized_cpu_scheduler(environ=None) -> bool:
    """Appends CPU_SCHEDULER_FLAG to XLA_FLAGS unless the user already chose a value; True if it did.

    Takes effect only when called before JAX initialises its first backend (XLA reads the flags then).
    `JAXSPARSE_KEEP_XLA_FLAGS=1` leaves XLA_FLAGS untouched.
    """
    environ = os.environ if environ is None else environ
    if environ.get(_OPT_OUT) == "1":
        return False
    flags = environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return False
    environ["XLA_FLAGS"] = f"{flags} {CPU_SCHEDULER_FLAG}".strip()
    return True


def _glibc_mallopt():
    """glibc's `mallopt`, or None off Linux/glibc (musl, macOS and Windows have other allocators)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (present only in glibc)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def keep_freed_memory_in_process(environ=None) -> bool:
    """One glibc malloc arena, mmap threshold 32 MiB, trim threshold 256 MiB (mallopt); True if it did.

    Call it before the process starts threads (arenas already made stay in use). Skipped off glibc, when
    the user set any of glibc's own `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` / `MALLOC_TRIM_THRESHOLD_`
    variables, or with `JAXSPARSE_KEEP_XLA_FLAGS=1`.
    """
    environ = os.environ if environ is None else environ
    if environ.get(_OPT_OUT) == "1" or any(name in environ for name in _MALLOC_ENV):
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    settings = (
        (_M_ARENA_MAX, MALLOC_ARENA_MAX),
        (_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD),
    )
    return all([bool(mallopt(param, value)) for param, value in settings])


def apply_cpu_runtime_settings(environ=None) -> None:
    """Both settings above; call first thing in an entry point, before JAX starts."""
    prefer_memory_optimized_cpu_scheduler(environ)
    keep_freed_memory_in_process(environ)
