"""Flax NNX layers over the condensed core: `CondensedLinear` and `NMLinear`.

Both are thin shells: parameters (`values`, `bias`) are `nnx.Param`; the integer connectivity lives in
`ConnIndex` / `ActiveNeurons` variables, which `nnx.Optimizer(..., wrt=nnx.Param)` and `nnx.grad` ignore.
No submodule is shared and nothing is sown, so both are valid in NNX tree mode.

`implementation=` picks the backend of `pallas_kernels.condensed_matmul`: "xla" (feature-major gather), "pallas"
(the Pallas GPU kernel, interpreted off GPU), "triton" (jax-triton), "dense" (scatter into a dense kernel, one
GEMM) or "auto" (per platform, batch size and cache; see `pallas_kernels.condensed_matmul.auto_implementation`).

A `CondensedLinear` can also hold a dense copy of its kernel (`cache_dense_kernel=True`, `DenseCache`
variables): memory for speed where the dense GEMM wins (large batch, or on CPU most batches at <= 90%
sparsity). Without it the dense path scatters the weights on every call, which on CPU costs more than the GEMM.
"""

import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse.masks import nm_mask
from pallas_kernels.condensed_matmul import condensed_matmul, condensed_to_dense_kernel
from pallas_kernels.condensed_matmul._validate import check_condensed_args
from pallas_kernels.nm_matmul import IMPLEMENTATIONS as NM_IMPLEMENTATIONS
from pallas_kernels.nm_matmul import nm_compress, nm_decompress, nm_matmul

from ._convert import CondensedWeight, from_condensed, to_condensed

__all__ = [
    "IMPLEMENTATIONS",
    "ActiveNeurons",
    "CondensedLinear",
    "ConnIndex",
    "DenseCache",
    "NMLinear",
    "condensed_forward",
]

IMPLEMENTATIONS = ("auto", "xla", "pallas", "triton", "dense")


_DEFAULT_KERNEL_INIT = nnx.initializers.lecun_normal()

# An attribute that is None now and a Variable later must be declared data (flax >= 0.12 checks this).
_as_data = getattr(nnx, "data", lambda value: value)


class ConnIndex(nnx.Variable):
    """Integer input ids of a condensed layer (not trained)."""


class ActiveNeurons(nnx.Variable):
    """Ids of a condensed layer's surviving output neurons in the original dense layer (not trained)."""


class DenseCache(nnx.Variable):
    """A dense copy of a condensed layer's kernel, for inference (not trained)."""


def _check_implementation(implementation: str) -> str:
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}")
    return implementation


def condensed_forward(x, values, indices, bias, *, in_features: int, implementation: str = "auto", dense_kernel=None):
    """The layers' forward as a pure function: y = condensed(x) + bias, over the chosen implementation.

    dense_kernel: optional cached kernel [in_features, n_out] built from these values/indices
    (`condensed_to_dense_kernel`); the dense path ("dense", or "auto" choosing it) then multiplies by it
    instead of scattering the weights on every call (see `condensed_matmul`).
    """
    _check_implementation(implementation)
    check_condensed_args(x, values, indices, in_features=in_features)
    return condensed_matmul(x, values, indices, bias, implementation=implementation, dense_kernel=dense_kernel)


class _DenseCacheHolder:
    """The cache methods both layers share; each layer says how to build its dense kernel (`_dense_kernel_now`)."""

    def refresh_dense_cache(self) -> None:
        """(Re)builds the cached dense kernel from the current values and connectivity."""
        self.dense_kernel = DenseCache(self._dense_kernel_now())

    def drop_dense_cache(self) -> None:
        """Frees the cached dense kernel (the dense path rebuilds it on every call again)."""
        self.dense_kernel = _as_data(None)

    @property
    def has_dense_cache(self) -> bool:
        return self.dense_kernel is not None


class CondensedLinear(_DenseCacheHolder, nnx.Module):
    """A linear layer stored condensed: output neuron i reads `k` inputs `indices[i]` with `values[i]`.

    Outputs only the active neurons ([..., n_active]); `active_neurons` maps them back to the dense layer.
    Build from a trained masked layer with `from_dense`; `to_dense` restores the dense kernel.

    `cache_dense_kernel=True` also keeps the dense kernel (a `DenseCache` variable, in * n_active elements), which
    the dense path then multiplies by instead of scattering the weights on every call, and which
    `implementation="auto"` takes into account. It is an inference device: differentiated calls rebuild the
    kernel from `values` (so training is never affected by it), but after changing `values` (training, loading)
    call `refresh_dense_cache()` before inference; a stale cache is not detected (checking would read the
    weights twice on every call).
    """

    def __init__(
        self,
        values,
        indices,
        *,
        in_features: int,
        bias=None,
        active_neurons=None,
        out_features: int | None = None,
        implementation: str = "auto",
        cache_dense_kernel: bool = False,
    ):
        values, indices = jnp.asarray(values), jnp.asarray(indices)
        if not isinstance(cache_dense_kernel, bool):
            raise ValueError(f"cache_dense_kernel must be a bool, got {cache_dense_kernel!r}")
        if isinstance(in_features, bool) or not isinstance(in_features, int | np.integer) or in_features <= 0:
            raise ValueError(f"in_features must be a positive int, got {in_features!r}")
        dummy = jnp.zeros((1, int(in_features)), values.dtype if values.ndim else jnp.float32)
        check_condensed_args(dummy, values, indices, in_features=int(in_features))
        n_active = values.shape[0]
        if active_neurons is None:
            active_neurons = jnp.arange(n_active, dtype=jnp.int32)
        active_neurons = jnp.asarray(active_neurons)
        if active_neurons.shape != (n_active,) or not jnp.issubdtype(active_neurons.dtype, jnp.integer):
            raise ValueError(f"active_neurons must be an int array of shape ({n_active},)")
        out_features = n_active if out_features is None else int(out_features)
        if active_neurons.size and (int(active_neurons.min()) < 0 or int(active_neurons.max()) >= out_features):
            raise ValueError(f"active_neurons must lie in [0, out_features={out_features})")
        if bias is not None:
            bias = jnp.asarray(bias)
            if bias.shape != (n_active,):
                raise ValueError(f"bias must have shape ({n_active},) (one per active neuron), got {bias.shape}")
        self.in_features = int(in_features)
        self.out_features = out_features
        self.implementation = _check_implementation(implementation)
        self.values = nnx.Param(values)
        self.indices = ConnIndex(indices)
        self.active_neurons = ActiveNeurons(active_neurons.astype(jnp.int32))
        self.bias = None if bias is None else nnx.Param(bias)
        self.drop_dense_cache()
        if cache_dense_kernel:
            self.refresh_dense_cache()

    def _dense_kernel_now(self):
        return condensed_to_dense_kernel(self.values[...], self.indices[...], self.in_features)

    @classmethod
    def from_dense(
        cls,
        kernel,
        mask,
        bias=None,
        *,
        implementation: str = "auto",
        index_dtype=jnp.int32,
        cache_dense_kernel: bool = False,
    ):
        """Condenses a [in, out] kernel with a constant fan-in mask; ablated neurons are dropped."""
        if np.ndim(kernel) != 2:
            raise ValueError(f"kernel must be [in_features, out_features], got shape {np.shape(kernel)}")
        weight = to_condensed(kernel, mask, index_dtype=index_dtype)
        if bias is not None:
            bias = jnp.asarray(bias)
            if bias.shape != (weight.out_features,):
                raise ValueError(f"bias must have shape ({weight.out_features},), got {bias.shape}")
            bias = bias[weight.active_neurons]
        return cls(
            weight.values,
            weight.indices,
            in_features=weight.in_features,
            bias=bias,
            active_neurons=weight.active_neurons,
            out_features=weight.out_features,
            implementation=implementation,
            cache_dense_kernel=cache_dense_kernel,
        )

    @property
    def condensed_weight(self) -> CondensedWeight:
        return CondensedWeight(
            values=self.values[...],
            indices=self.indices[...],
            active_neurons=self.active_neurons[...],
            kernel_shape=(self.in_features, self.out_features),
        )

    def to_dense(self):
        """Returns (kernel [in, out_features], mask, bias [out_features] or None); ablated neurons are 0."""
        kernel, mask = from_condensed(self.condensed_weight)
        bias = None
        if self.bias is not None:
            bias = jnp.zeros((self.out_features,), self.bias.dtype).at[self.active_neurons[...]].set(self.bias[...])
        return kernel, mask, bias

    def __call__(self, x):
        return condensed_forward(
            x,
            self.values[...],
            self.indices[...],
            None if self.bias is None else self.bias[...],
            in_features=self.in_features,
            implementation=self.implementation,
            dense_kernel=None if self.dense_kernel is None else self.dense_kernel[...],
        )


class NMLinear(_DenseCacheHolder, nnx.Module):
    """A linear layer with N:M sparsity along its inputs: each group of `m` consecutive inputs feeds `n` weights.

    Stored in the N:M format of `pallas_kernels.nm_matmul`: `values [out, in // m, n]` (trained) and the
    in-group `positions [out, in // m, n]` (uint8, not trained). `implementation` is that op's: "auto", "xla"
    (decompress, then one GEMM), "pallas" (decode on chip, GPU) or "dense".
    `cache_dense_kernel=True` keeps the decompressed kernel (a `DenseCache`) for inference, as in
    `CondensedLinear` (same contract: `refresh_dense_cache()` after changing values; training is unaffected).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        n: int,
        m: int,
        rngs: nnx.Rngs | None = None,
        use_bias: bool = True,
        implementation: str = "auto",
        kernel_init=_DEFAULT_KERNEL_INIT,
        dtype=jnp.float32,
        kernel=None,
        bias=None,
        cache_dense_kernel: bool = False,
    ):
        if not isinstance(cache_dense_kernel, bool):
            raise ValueError(f"cache_dense_kernel must be a bool, got {cache_dense_kernel!r}")
        for name, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if implementation not in NM_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {NM_IMPLEMENTATIONS}, got {implementation!r}")
        if kernel is None:
            if rngs is None:
                raise ValueError("rngs is required unless kernel is given")
            kernel = kernel_init(rngs.params(), (in_features, out_features), dtype)
            bias = jnp.zeros((out_features,), dtype) if use_bias else None
        kernel = jnp.asarray(kernel)
        if kernel.shape != (in_features, out_features):
            raise ValueError(f"kernel must have shape ({in_features}, {out_features}), got {kernel.shape}")
        if bias is not None and jnp.shape(bias) != (out_features,):
            raise ValueError(f"bias must have shape ({out_features},), got {jnp.shape(bias)}")
        nm_mask(jnp.abs(kernel), n, m, axis=0)  # the core's checks and messages for n and m
        if n == 0:
            raise ValueError("n must be >= 1 for an NMLinear layer (n=0 keeps no weight)")
        values, positions = nm_compress(kernel, int(n), int(m))
        self.n, self.m = int(n), int(m)
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.implementation = implementation
        self.values = nnx.Param(values)
        self.positions = ConnIndex(positions)
        self.bias = None if bias is None else nnx.Param(jnp.asarray(bias))
        self.drop_dense_cache()
        if cache_dense_kernel:
            self.refresh_dense_cache()

    def _dense_kernel_now(self):
        return nm_decompress(self.values[...], self.positions[...], self.m)

    @classmethod
    def from_dense(
        cls, kernel, n: int, m: int, bias=None, *, implementation: str = "auto", cache_dense_kernel: bool = False
    ):
        """Magnitude N:M pruning of a dense [in, out] kernel (groups of m consecutive inputs)."""
        if np.ndim(kernel) != 2:
            raise ValueError(f"kernel must be [in_features, out_features], got shape {np.shape(kernel)}")
        n_in, n_out = np.shape(kernel)
        return cls(
            n_in,
            n_out,
            n=n,
            m=m,
            kernel=kernel,
            bias=bias,
            implementation=implementation,
            cache_dense_kernel=cache_dense_kernel,
        )

    def to_dense(self):
        """Returns (kernel [in, out], mask, bias or None)."""
        ones = jnp.ones(self.values.shape, jnp.float32)
        mask = nm_decompress(ones, self.positions[...], self.m) != 0
        kernel = nm_decompress(self.values[...], self.positions[...], self.m)
        return kernel, mask, None if self.bias is None else self.bias[...]

    def __call__(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x has {x.shape[-1]} input features but the layer expects in_features={self.in_features}")
        bias = None if self.bias is None else self.bias[...]
        dense_kernel = None
        if self.dense_kernel is not None and self.implementation in ("auto", "dense"):
            dense_kernel = self.dense_kernel[...]
        return nm_matmul(
            x,
            self.values[...],
            self.positions[...],
            bias,
            m=self.m,
            implementation=self.implementation,
            dense_kernel=dense_kernel,
        )
