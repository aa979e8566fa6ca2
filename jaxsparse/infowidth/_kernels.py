"""Closed-form NNGP and NTK of fully connected ReLU / Erf networks (NTK parameterisation), in float64 numpy.

The network mirrors neural-tangents' ``stax.serial(*[Dense(w, W_std, b_std), act] * depth, Dense(k, W_std, b_std))``
with the default ``parameterization="ntk"``: a Dense layer computes ``W_std / sqrt(n_in) * W @ x + b_std * b``
with standard-normal ``W`` and ``b``. Recursion (Lee et al. 2018; Jacot et al. 2018):

* first layer: ``K1(x, x') = W_std**2 x.x' / d + b_std**2`` and ``Theta1 = K1``;
* through an activation phi and the next Dense layer: ``K_{l+1} = W_std**2 E[phi(u) phi(v)] + b_std**2`` and
  ``Theta_{l+1} = K_{l+1} + W_std**2 E[phi'(u) phi'(v)] Theta_l``,
  the expectations over ``(u, v) ~ N(0, [[K_l(x,x), K_l(x,x')], [K_l(x',x), K_l(x',x')]])``.

ReLU uses Cho & Saul's arc-cosine kernels, Erf Williams' arcsine kernel. Everything is float64 numpy so that the
kernels are usable without touching JAX's global x64 flag, and as a fallback when neural-tangents is missing.
"""

import dataclasses
from collections.abc import Callable

import numpy as np

__all__ = ["ACTIVATIONS", "Kernel", "fc_kernel", "fc_kernel_fn"]

ACTIVATIONS = ("relu", "erf")


@dataclasses.dataclass(frozen=True)
class Kernel:
    """NNGP and NTK matrices (float64, shape ``(n1, n2)``); either may be ``None`` if it was not requested."""

    nngp: np.ndarray | None
    ntk: np.ndarray | None


def _as_2d(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (n, features...), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one input, got shape {x.shape}")
    x = x.reshape(x.shape[0], -1)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains non-finite values")
    return x


def _check_hyper(depth, activation, W_std, b_std) -> None:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth (number of hidden layers) must be an int >= 0, got {depth!r}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    if not np.isfinite(W_std) or W_std <= 0:
        raise ValueError(f"W_std must be a positive finite number, got {W_std!r}")
    if not np.isfinite(b_std) or b_std < 0:
        raise ValueError(f"b_std must be a non-negative finite number (0 = no bias), got {b_std!r}")


def _relu_expectations(k12, k11, k22):
    norms = np.sqrt(k11 * k22)
    # The clip only absorbs rounding: |k12| <= sqrt(k11 k22) holds exactly for a PSD kernel.
    cos = np.clip(np.divide(k12, norms, out=np.zeros_like(k12), where=norms > 0), -1.0, 1.0)
    theta = np.arccos(cos)
    e_phi = norms * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    e_dphi = (np.pi - theta) / (2 * np.pi)
    return e_phi, e_dphi


def _erf_expectations(k12, k11, k22):
    a = 1 + 2 * k11
    b = 1 + 2 * k22
    e_phi = (2 / np.pi) * np.arcsin(np.clip(2 * k12 / np.sqrt(a * b), -1.0, 1.0))
    det = a * b - 4 * k12**2  # det(I + 2 Lambda) for the 2x2 covariance Lambda
    e_dphi = (4 / np.pi) / np.sqrt(np.maximum(det, np.finfo(np.float64).tiny))
    return e_phi, e_dphi


def fc_kernel(
    x1,
    x2=None,
    *,
    depth: int = 1,
    activation: str = "relu",
    W_std: float = 1.0,
    b_std: float = 0.0,
    get: tuple[str, ...] | str = ("nngp", "ntk"),
):
    """Infinite-width NNGP/NTK of a fully connected network with ``depth`` hidden layers (output channels traced).

    Args:
        x1: Inputs of shape ``(n1, ...)``; trailing axes are flattened.
        x2: Inputs of shape ``(n2, ...)``; ``None`` means ``x1``.
        depth: Number of hidden (Dense + activation) layers; 0 gives the linear model.
        activation: ``"relu"`` or ``"erf"``.
        W_std: Weight standard deviation of every Dense layer (NTK parameterisation).
        b_std: Bias standard deviation of every Dense layer; 0 means no bias (neural-tangents' ``b_std=None``).
        get: ``"nngp"``, ``"ntk"`` or a tuple of both.

    Returns:
        A float64 array when ``get`` is a string, otherwise a :class:`Kernel`.

    Raises:
        ValueError: If an argument is invalid (the message names it).

    Example:
        >>> import numpy as np
        >>> k = fc_kernel(np.eye(3), depth=2, activation="erf", W_std=1.5, b_std=0.1)
        >>> k.nngp.shape, bool(np.all(k.ntk >= k.nngp - 1e-12))
        ((3, 3), True)
    """
    _check_hyper(depth, activation, W_std, b_std)
    single = isinstance(get, str)
    gets = (get,) if single else tuple(get)
    if not gets or any(g not in ("nngp", "ntk") for g in gets):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them, got {get!r}")
    a = _as_2d(x1, "x1")
    b = a if x2 is None else _as_2d(x2, "x2")
    if b.shape[1] != a.shape[1]:
        raise ValueError(f"x1 and x2 must have the same number of features, got {a.shape[1]} and {b.shape[1]}")
    d = a.shape[1]
    w2, b2 = float(W_std) ** 2, float(b_std) ** 2
    k12 = w2 * (a @ b.T) / d + b2
    k11 = (w2 * np.sum(a * a, axis=1) / d + b2)[:, None]
    k22 = (w2 * np.sum(b * b, axis=1) / d + b2)[None, :]
    ntk = k12.copy()
    expect = _relu_expectations if activation == "relu" else _erf_expectations
    for _ in range(depth):
        e_phi, e_dphi = expect(k12, k11, k22)
        d11, _ = expect(k11, k11, k11)
        d22, _ = expect(k22, k22, k22)
        k12 = w2 * e_phi + b2
        ntk = k12 + w2 * e_dphi * ntk
        k11, k22 = w2 * d11 + b2, w2 * d22 + b2
    out = Kernel(nngp=k12 if "nngp" in gets else None, ntk=ntk if "ntk" in gets else None)
    return getattr(out, gets[0]) if single else out


def fc_kernel_fn(
    *, depth: int = 1, activation: str = "relu", W_std: float = 1.0, b_std: float = 0.0
) -> Callable[..., object]:
    """Returns ``kernel_fn(x1, x2=None, get=("nngp", "ntk"))`` with neural-tangents' call signature.

    The result can be passed wherever this package takes a neural-tangents ``kernel_fn``.

    Raises:
        ValueError: If a hyper-parameter is invalid.
    """
    _check_hyper(depth, activation, W_std, b_std)

    def kernel_fn(x1, x2=None, get=("nngp", "ntk")):
        return fc_kernel(x1, x2, depth=depth, activation=activation, W_std=W_std, b_std=b_std, get=get)

    def nngp_diagonal(x):
        """``diag K(x, x)`` in O(n) (the recursion on the diagonal only)."""
        a = _as_2d(x, "x")
        w2, b2 = float(W_std) ** 2, float(b_std) ** 2
        k = w2 * np.sum(a * a, axis=1) / a.shape[1] + b2
        expect = _relu_expectations if activation == "relu" else _erf_expectations
        for _ in range(depth):
            k = w2 * expect(k, k, k)[0] + b2
        return k

    kernel_fn.nngp_diagonal = nngp_diagonal
    kernel_fn.__doc__ = f"Native FC kernel: depth={depth}, {activation}, W_std={W_std}, b_std={b_std}."
    return kernel_fn
