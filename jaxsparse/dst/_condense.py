"""After training: per-neuron fan-in statistics and export of a sparse MLP to condensed layers."""

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse.condensed import CondensedLinear

__all__ = ["CondensedMLP", "condense_mlp", "fan_in_histogram", "mask_summary"]

_is_none = lambda x: x is None


def _fan_ins(mask) -> np.ndarray:
    m = np.asarray(mask)
    return m.reshape(-1, m.shape[-1]).sum(axis=0)


def mask_summary(masks) -> dict:
    """Per sparse leaf: n_out, active/ablated neuron counts, distinct fan-ins of active neurons, density."""
    out = {}
    for path, m in jax.tree_util.tree_flatten_with_path(masks, is_leaf=_is_none)[0]:
        if m is None:
            continue
        fan = _fan_ins(m)
        active = fan > 0
        out[jax.tree_util.keystr(path)] = {
            "n_out": int(fan.size),
            "n_active": int(active.sum()),
            "n_ablated": int((~active).sum()),
            "fan_ins": sorted({int(v) for v in fan[active]}),
            "density": float(np.asarray(m).mean()),
        }
    return out


def fan_in_histogram(masks) -> dict:
    """Per sparse leaf: {fan_in: number of output neurons with that fan-in} (ablated neurons count at 0)."""
    out = {}
    for path, m in jax.tree_util.tree_flatten_with_path(masks, is_leaf=_is_none)[0]:
        if m is None:
            continue
        values, counts = np.unique(_fan_ins(m), return_counts=True)
        out[jax.tree_util.keystr(path)] = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
    return out


class CondensedMLP(nnx.Module):
    """A stack of (condensed or dense) linear layers with an activation between them."""

    def __init__(self, layers: Sequence[nnx.Module], activation: Callable = jax.nn.relu):
        self.layers = nnx.List(list(layers))
        self.activation = activation

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def condense_mlp(
    kernels: Sequence,
    biases: Sequence,
    masks: Sequence,
    *,
    activation: Callable = jax.nn.relu,
    implementation: str = "auto",
    cache_dense_kernel: bool = False,
) -> CondensedMLP:
    """Exports a masked MLP (x -> act(x W_0 + b_0) -> ... -> x W_L + b_L) with condensed sparse layers.

    Sparse layers (mask given) become `CondensedLinear` with their ablated neurons removed. An ablated
    neuron's output is the constant act(b_i); it is folded into the next layer's bias and that layer's
    inputs are sliced to the surviving neurons (its condensed connections to ablated inputs get value 0,
    which keeps the constant fan-in). Dense layers (mask None) stay `nnx.Linear`-equivalent dense layers.
    The result computes the same function as the masked dense MLP.

    Args:
      kernels: per layer, [in, out] kernels.
      biases: per layer, [out] biases.
      masks: per layer, a bool mask of the kernel's shape (constant fan-in over active neurons) or None.
      activation: the hidden activation.
      implementation: passed to each `CondensedLinear`.
      cache_dense_kernel: passed to each `CondensedLinear`: also keep a dense copy of each sparse kernel for
        inference where the dense GEMM is faster (large batch; on CPU most batches at <= 90% sparsity).
    """
    if not (len(kernels) == len(biases) == len(masks)) or not kernels:
        raise ValueError("kernels, biases and masks must be non-empty sequences of equal length")
    if masks[-1] is not None:
        raise ValueError("the last layer must be dense (mask None): its outputs are the model's outputs")
    layers = []
    kept_inputs = None  # positions of surviving inputs; None = all
    ablated_const = None  # (ids, constant outputs) of the previous layer's ablated neurons
    for i, (kernel, bias, mask) in enumerate(zip(kernels, biases, masks, strict=True)):
        kernel, bias = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
        if kernel.ndim != 2 or bias.shape != (kernel.shape[1],):
            raise ValueError(f"layer {i}: kernel must be [in, out] and bias [out]; got {kernel.shape}, {bias.shape}")
        effective = kernel if mask is None else np.where(np.asarray(mask), kernel, 0.0)
        bias = bias.copy()
        if ablated_const is not None:
            ids, const = ablated_const
            bias += const @ effective[ids]
        if mask is None:
            rows = effective if kept_inputs is None else effective[kept_inputs]
            linear = nnx.Linear(rows.shape[0], rows.shape[1], rngs=nnx.Rngs(0))
            linear.kernel[...] = jnp.asarray(rows)
            linear.bias[...] = jnp.asarray(bias)
            layers.append(linear)
            kept_inputs, ablated_const = None, None
            continue
        mask = np.asarray(mask)
        if mask.shape != kernel.shape or mask.dtype != np.bool_:
            raise ValueError(f"layer {i}: mask must be a bool array of shape {kernel.shape}")
        layer = CondensedLinear.from_dense(jnp.asarray(effective), jnp.asarray(mask), jnp.asarray(bias))
        values, indices = np.asarray(layer.values[...]), np.asarray(layer.indices[...])
        if kept_inputs is not None:
            position = np.full(kernel.shape[0], -1, np.int64)
            position[kept_inputs] = np.arange(kept_inputs.size)
            dead = position[indices] < 0
            values = np.where(dead, 0.0, values)  # their constant contribution is already in the bias
            indices = np.where(dead, 0, position[indices])
        active = np.asarray(layer.active_neurons[...])
        layers.append(
            CondensedLinear(
                jnp.asarray(values, jnp.float32),
                jnp.asarray(indices, jnp.int32),
                in_features=int(kernel.shape[0] if kept_inputs is None else kept_inputs.size),
                bias=jnp.asarray(bias[active]),
                active_neurons=jnp.asarray(active),
                out_features=int(kernel.shape[1]),
                implementation=implementation,
                cache_dense_kernel=cache_dense_kernel,
            )
        )
        ablated = np.setdiff1d(np.arange(kernel.shape[1]), active)
        const = np.asarray(activation(jnp.asarray(bias[ablated])), np.float32)
        ablated_const = (ablated, const) if ablated.size else None
        # Ablated ids refer to this layer's full output numbering; the next layer slices its rows.
        kept_inputs = active
    return CondensedMLP(layers, activation)
