"""XLA settings the command-line entry points apply before JAX starts (never the library itself).

On CPU, XLA's default concurrency-optimised scheduler lets independent computations overlap, and a
training step that carries a dynamic-sparse-training mask update (under `lax.cond`) then needs a
temporary arena of 32-42 MB for a 784-1024-1024 MLP: past glibc's 32 MB mmap threshold, that arena is
mmap'd and page-faulted on every step, mask update or not (1.4-1.6x a static-sparse step). The
memory-optimised scheduler keeps it at 23-30 MB. Library users set the same flag themselves (README).
"""

import os

__all__ = ["CPU_SCHEDULER_FLAG", "prefer_memory_optimized_cpu_scheduler"]

CPU_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def prefer_memory_optimized_cpu_scheduler(environ=None) -> bool:
    """Appends CPU_SCHEDULER_FLAG to XLA_FLAGS unless the user already chose a value; True if it did.

    Takes effect only when called before JAX initialises its first backend (XLA reads the flags then).
    `JAXSPARSE_KEEP_XLA_FLAGS=1` leaves XLA_FLAGS untouched.
    """
    environ = os.environ if environ is None else environ
    if environ.get("JAXSPARSE_KEEP_XLA_FLAGS") == "1":
        return False
    flags = environ.get("XLA_FLAGS", "")
    if "xla_cpu_enable_concurrency_optimized_scheduler" in flags:
        return False
    environ["XLA_FLAGS"] = f"{flags} {CPU_SCHEDULER_FLAG}".strip()
    return True
