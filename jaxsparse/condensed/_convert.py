"""Conversion between (dense kernel, constant fan-in mask) and the condensed form."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from pallas_kernels._common import is_concrete

__all__ = ["CondensedWeight", "from_condensed", "to_condensed"]


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["values", "indices", "active_neurons"],
    meta_fields=["kernel_shape"],
)
@dataclasses.dataclass(frozen=True)
class CondensedWeight:
    """A constant fan-in kernel with its ablated output neurons removed.

    Attributes:
      values: [n_active, k] the kept weights of each active output neuron.
      indices: [n_active, k] integer ids of their inputs in the flattened fan-in (ascending per row).
      active_neurons: [n_active] int32 ids of the active neurons among the kernel's `out_features`.
      kernel_shape: the dense kernel's shape (fan-in axes..., out_features).
    """

    values: jax.Array
    indices: jax.Array
    active_neurons: jax.Array
    kernel_shape: tuple[int, ...]

    @property
    def in_features(self) -> int:
        return int(np.prod(self.kernel_shape[:-1]))

    @property
    def out_features(self) -> int:
        return int(self.kernel_shape[-1])

    @property
    def fan_in(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_active(self) -> int:
        return int(self.values.shape[0])


def to_condensed(kernel, mask, *, index_dtype=jnp.int32) -> CondensedWeight:
    """Condenses a kernel whose mask has constant fan-in over its active output neurons.

    An output neuron (last axis) with no kept input is ablated and dropped from the result; every other
    neuron must keep the same number k of inputs. Runs eagerly (the output shape depends on the mask).

    Args:
      kernel: [..., out_features] dense weights (fan-in axes first, Flax layout).
      mask: bool array of the kernel's shape.
      index_dtype: integer dtype of `indices` (int32, or int16 when in_features < 32768).

    Returns:
      A `CondensedWeight`.
    """
    if not hasattr(kernel, "shape") or np.ndim(kernel) < 2:
        raise ValueError(f"kernel must be an array with ndim >= 2, got {getattr(kernel, 'shape', kernel)!r}")
    if not (is_concrete(kernel) and is_concrete(mask)):
        raise ValueError("to_condensed runs eagerly: kernel and mask must be concrete (not traced under jit)")
    mask_np = np.asarray(mask)
    if mask_np.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array, got dtype {mask_np.dtype}")
    if mask_np.shape != tuple(kernel.shape):
        raise ValueError(f"mask shape {mask_np.shape} must equal kernel shape {tuple(kernel.shape)}")
    index_dtype = np.dtype(index_dtype)
    if not np.issubdtype(index_dtype, np.integer):
        raise ValueError(f"index_dtype must be an integer dtype, got {index_dtype}")
    kernel_shape = tuple(int(s) for s in kernel.shape)
    n_in = int(np.prod(kernel_shape[:-1]))
    if n_in - 1 > np.iinfo(index_dtype).max:
        raise ValueError(f"index_dtype {index_dtype} cannot index {n_in} inputs")
    rows = mask_np.reshape(n_in, kernel_shape[-1]).T  # [out, in]
    counts = rows.sum(axis=1)
    active = np.flatnonzero(counts)
    if active.size == 0:
        raise ValueError("mask keeps no weight: every output neuron is ablated")
    k = int(counts[active[0]])
    if np.any(counts[active] != k):
        raise ValueError(
            f"mask must have constant fan-in over active neurons; found fan-ins {sorted(set(counts[active]))}"
        )
    cols = np.nonzero(rows[active])[1].reshape(active.size, k)  # ascending within each row
    dense_rows = jnp.asarray(kernel).reshape(n_in, kernel_shape[-1]).T
    values = dense_rows[jnp.asarray(active)[:, None], jnp.asarray(cols)]
    return CondensedWeight(
        values=values,
        indices=jnp.asarray(cols.astype(index_dtype)),
        active_neurons=jnp.asarray(active.astype(np.int32)),
        kernel_shape=kernel_shape,
    )


def from_condensed(weight: CondensedWeight):
    """Inverse of `to_condensed`: returns (kernel, mask) of `weight.kernel_shape` (ablated neurons zero)."""
    if not isinstance(weight, CondensedWeight):
        raise ValueError(f"weight must be a CondensedWeight, got {type(weight).__name__}")
    n_in, n_out = weight.in_features, weight.out_features
    rows = jnp.broadcast_to(weight.active_neurons[:, None], weight.indices.shape)
    kernel = jnp.zeros((n_out, n_in), weight.values.dtype).at[rows, weight.indices].set(weight.values)
    mask = jnp.zeros((n_out, n_in), bool).at[rows, weight.indices].set(True)
    return kernel.T.reshape(weight.kernel_shape), mask.T.reshape(weight.kernel_shape)
