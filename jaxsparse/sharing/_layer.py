"""The FiPS MLP layer: a block's fc1/fc2 as sparse factors over its group's shared base (fips.md §2).

    fc1: x @ (U V1) + b1        fc2: h @ (U V2)^T + b2

computed as (x @ U) @ V1 and (h @ V2^T) @ U^T, never materialising U V. The bases are not attributes of the
layer: in NNX tree mode no Variable may be referenced twice, so the model owns them once (`model.mlp_bases`)
and passes them down as a call argument.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse._checks import check_int
from jaxsparse.condensed import IMPLEMENTATIONS as KERNEL_BACKENDS
from pallas_kernels.condensed_matmul import condensed_matmul

__all__ = ["FactorIndex", "FiPSMLP", "FiPSParam", "factor_to_condensed", "gelu"]

LAYER_IMPLEMENTATIONS = ("dense", "condensed")


class FiPSParam(nnx.Param):
    """A trainable of a FiPS-compressed MLP: a shared base U, a factor V or a copied MLP bias.

    A subclass of `nnx.Param` (so `wrt=nnx.Param` still sees it) that the block-wise reconstruction selects
    to train exactly these while attention, norms and everything else stay frozen.
    """


class FactorIndex(nnx.Variable):
    """Padded condensed input indices of a factor (the "condensed" implementation; not trained)."""


def gelu(x):
    """Exact (erf) GELU, the activation of timm's `Mlp` that FiPS compresses."""
    return jax.nn.gelu(x, approximate=False)


def _as_matrix(x, name: str):
    if not hasattr(x, "shape") or not hasattr(x, "dtype") or np.ndim(x) != 2:
        raise ValueError(f"{name} must be a 2-D array, got {getattr(x, 'shape', type(x).__name__)}")
    return x


def _condensed_indices(mask) -> np.ndarray:
    """[out, k] input ids of each output column of `mask` [in, out], ascending, padded with `in` (an empty
    slot of `condensed_matmul`) up to the largest fan-in k (at least 1)."""
    if isinstance(mask, jax.core.Tracer):
        raise ValueError("the condensed form depends on the mask's values: build it outside jit")
    m = np.asarray(mask)
    if m.dtype != np.bool_:
        raise ValueError(f"mask must be a bool array, got dtype {m.dtype}")
    n_in = m.shape[0]
    rows = m.T  # [out, in]
    counts = rows.sum(axis=1)
    k = max(1, int(counts.max()))
    order = np.argsort(~rows, axis=1, kind="stable")[:, :k]  # kept inputs first, in ascending order
    return np.where(np.arange(k)[None, :] < counts[:, None], order, n_in).astype(np.int32)


def _gather_values(kernel, indices):
    """values[o, j] = kernel[indices[o, j], o], and 0 at padding slots (index == in)."""
    padded = jnp.concatenate([kernel, jnp.zeros((1, kernel.shape[1]), kernel.dtype)], axis=0)
    return jnp.take_along_axis(padded.T, indices, axis=1)


def factor_to_condensed(v, mask):
    """Padded condensed form of a sparse kernel with variable fan-in.

    Args:
      v: kernel [in, out] (V1 [r, h] as is for fc1's factor product; V2^T [h, r] for fc2's).
      mask: bool [in, out] (concrete), True at kept weights.

    Returns:
      (values [out, k], indices [out, k]) with k the largest fan-in of any output column. Each column's kept
      inputs come first in ascending order; shorter columns are padded with index `in` and value 0, the empty
      slot of `condensed_matmul`, so `condensed_matmul(x, values, indices) == x @ where(mask, v, 0)`.
    """
    v = _as_matrix(v, "v")
    if tuple(np.shape(mask)) != tuple(v.shape):
        raise ValueError(f"mask shape {tuple(np.shape(mask))} must equal v shape {tuple(v.shape)}")
    indices = jnp.asarray(_condensed_indices(mask))
    return _gather_values(jnp.asarray(v), indices), indices


def _bias_term(b, y):
    # Explicit broadcast: the tests run with rank promotion set to "raise".
    return y if b is None else y + b[...].reshape((1,) * (y.ndim - 1) + (-1,)).astype(y.dtype)


class FiPSMLP(nnx.Module):
    """One block's MLP as sparse factors V1, V2 [r, h] over the shared base of group `group`.

    Attributes:
      group: index of this block's base in `mlp_bases` (static).
      V1, V2: `FiPSParam` [r, h]; fc1 = U V1 ([d, h] kernel), fc2 = (U V2)^T ([h, d] kernel).
      b1, b2: `FiPSParam` [h] and [d] copied from the dense MLP (or None when it had no bias).
      activation: the hidden activation (default exact GELU).
      implementation: "dense" (two dense factor matmuls) or "condensed" (`condensed_matmul` over a padded
        condensed form of the factor masks, fixed when the layer is built: use "dense" while the masks train).
      backend: `condensed_matmul`'s implementation ("auto", "xla", "pallas", "triton", "dense").
    """

    def __init__(
        self,
        v1,
        v2,
        b1=None,
        b2=None,
        *,
        group: int,
        activation=gelu,
        implementation: str = "dense",
        masks=None,
        backend: str = "auto",
    ):
        """Args:
        v1, v2: [r, h] factors of fc1 and fc2.
        b1, b2: optional biases [h] and [d].
        group: the block's group (index into `mlp_bases`).
        activation: callable (static; a module-level function keeps jit caches warm).
        implementation: "dense" or "condensed".
        masks: (mask1, mask2) bool [r, h] for "condensed" (default: the nonzeros of v1, v2; pruned weights
          are exactly 0, so the product is the same).
        backend: `condensed_matmul` implementation for "condensed".
        """
        v1, v2 = _as_matrix(v1, "v1"), _as_matrix(v2, "v2")
        if tuple(v1.shape) != tuple(v2.shape):
            raise ValueError(f"v1 and v2 must both be [r, h], got {tuple(v1.shape)} and {tuple(v2.shape)}")
        r, h = (int(s) for s in v1.shape)
        if b1 is not None and tuple(np.shape(b1)) != (h,):
            raise ValueError(f"b1 must have shape ({h},), got {tuple(np.shape(b1))}")
        if b2 is not None and np.ndim(b2) != 1:
            raise ValueError(f"b2 must be 1-D [d], got shape {tuple(np.shape(b2))}")
        if implementation not in LAYER_IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {LAYER_IMPLEMENTATIONS}, got {implementation!r}")
        if backend not in KERNEL_BACKENDS:
            raise ValueError(f"backend must be one of {KERNEL_BACKENDS}, got {backend!r}")
        if not callable(activation):
            raise ValueError(f"activation must be callable, got {activation!r}")
        self.group = check_int(group, "group", minimum=0)
        self.rank, self.hidden = r, h
        self.activation = activation
        self.implementation = implementation
        self.backend = backend
        self.V1 = FiPSParam(jnp.asarray(v1))
        self.V2 = FiPSParam(jnp.asarray(v2))
        self.b1 = None if b1 is None else FiPSParam(jnp.asarray(b1))
        self.b2 = None if b2 is None else FiPSParam(jnp.asarray(b2))
        if implementation == "condensed":
            m1, m2 = (v1 != 0, v2 != 0) if masks is None else masks
            for name, m in (("masks[0]", m1), ("masks[1]", m2)):
                if tuple(np.shape(m)) != (r, h):
                    raise ValueError(f"{name} must have shape ({r}, {h}), got {tuple(np.shape(m))}")
            # fc1's product z @ V1 has in = r, out = h; fc2's h @ V2^T has in = h, out = r.
            self.fc1_indices = FactorIndex(jnp.asarray(_condensed_indices(m1)))
            self.fc2_indices = FactorIndex(jnp.asarray(_condensed_indices(np.asarray(m2).T)))
        else:
            self.fc1_indices = None
            self.fc2_indices = None

    def _base(self, mlp_bases):
        if mlp_bases is None:
            raise ValueError("FiPSMLP needs the model's shared bases: call it as mlp(x, mlp_bases=model.mlp_bases)")
        if not 0 <= self.group < len(mlp_bases):
            raise ValueError(f"mlp_bases has {len(mlp_bases)} bases, this layer uses group {self.group}")
        u = mlp_bases[self.group][...]
        if u.ndim != 2 or u.shape[1] != self.rank:
            raise ValueError(f"mlp_bases[{self.group}] must be [d, {self.rank}], got shape {tuple(u.shape)}")
        return u

    def fc1_forward(self, x, mlp_bases):
        """fc1 pre-activation: (x @ U) @ V1 + b1, i.e. `Linear` with kernel U V1."""
        u = self._base(mlp_bases)
        z = x @ u
        if self.implementation == "dense":
            y = z @ self.V1[...]
        else:
            idx = self.fc1_indices[...]
            y = condensed_matmul(z, _gather_values(self.V1[...], idx), idx, implementation=self.backend)
        return _bias_term(self.b1, y)

    def fc2_forward(self, h, mlp_bases):
        """fc2: (h @ V2^T) @ U^T + b2, i.e. `Linear` with kernel (U V2)^T."""
        u = self._base(mlp_bases)
        if self.implementation == "dense":
            t = h @ self.V2[...].T
        else:
            idx = self.fc2_indices[...]
            t = condensed_matmul(h, _gather_values(self.V2[...].T, idx), idx, implementation=self.backend)
        return _bias_term(self.b2, t @ u.T)

    def __call__(self, x, mlp_bases=None):
        return self.fc2_forward(self.activation(self.fc1_forward(x, mlp_bases)), mlp_bases)

    def to_dense(self, mlp_bases_or_base):
        """The equivalent dense kernels (fc1 [d, h] = U V1, fc2 [h, d] = (U V2)^T) for the base U, given either
        U itself or the model's `mlp_bases`."""
        if isinstance(mlp_bases_or_base, nnx.Variable | jax.Array | np.ndarray):
            u = jnp.asarray(mlp_bases_or_base[...])
            if u.ndim != 2 or u.shape[1] != self.rank:
                raise ValueError(f"the base must be [d, {self.rank}], got shape {tuple(u.shape)}")
        else:
            u = self._base(mlp_bases_or_base)
        return u @ self.V1[...], (u @ self.V2[...]).T

    def with_implementation(self, implementation: str, *, masks=None, backend: str = "auto") -> "FiPSMLP":
        """A new layer with the same factors, biases and group, running `implementation` (e.g. "condensed" for
        inference once the masks are final)."""
        return FiPSMLP(
            self.V1[...], self.V2[...],
            None if self.b1 is None else self.b1[...], None if self.b2 is None else self.b2[...],
            group=self.group, activation=self.activation, implementation=implementation, masks=masks,
            backend=backend,
        )  # fmt: skip
