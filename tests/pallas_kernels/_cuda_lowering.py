"""Lowering a jitted function for CUDA on a machine without a GPU (catches Triton-lowering errors early)."""

import contextlib

import jax

__all__ = ["TRITON_CALL", "lower_for_cuda"]

TRITON_CALL = "__gpu$xla.gpu.triton"


def _abstract_h100():
    # JAX >= 0.11 asks the device for its compute capability while lowering a Triton kernel; an abstract mesh
    # with an H100 device answers that without a GPU. Older JAX lowers without it.
    try:
        from jax.sharding import AbstractDevice, AbstractMesh
    except ImportError:
        return contextlib.nullcontext()
    device = AbstractDevice(device_kind="NVIDIA H100 80GB HBM3", num_cores=132, platform="gpu")
    try:
        mesh = AbstractMesh((1,), ("x",), abstract_device=device)
    except TypeError:  # an AbstractMesh without abstract_device (JAX 0.10): no device query at lowering
        return contextlib.nullcontext()
    return jax.sharding.use_abstract_mesh(mesh)


def lower_for_cuda(fn, *specs) -> str:
    """The StableHLO text of `jax.jit(fn)` lowered for CUDA on abstract inputs `specs`."""
    with _abstract_h100():
        return jax.jit(fn).trace(*specs).lower(lowering_platforms=("cuda",)).as_text()
