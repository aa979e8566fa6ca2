"""The dense path of every sparse op when the caller holds a cached dense kernel.

A cache `kernel` stands for `densify(values, structure, *static)` (the op's own scatter / decompression). A plain
forward multiplies by it instead of rebuilding it, which is the point of caching. Under differentiation the
kernel is rebuilt from `values` instead: training is then exactly the uncached dense path, so a cache that went
stale while `values` were trained never bends a gradient step. `values` get the dense weight gradient x^T g
pulled back through `densify` (a gather at the kept slots); the cache and the integer structure get none.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["cached_dense_matmul"]


def _dot(a, b, dtype, precision):
    acc = jnp.promote_types(dtype, jnp.float32)
    return jnp.dot(a.astype(dtype), b.astype(dtype), precision=precision, preferred_element_type=acc)


def _float0_like(tree):
    return jax.tree.map(lambda a: np.zeros(np.shape(a), dtype=jax.dtypes.float0), tree)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _matmul(x2d, values, structure, kernel, densify, static, precision):
    return _dot(x2d, kernel, x2d.dtype, precision).astype(x2d.dtype)


def _fwd(x2d, values, structure, kernel, densify, static, precision):
    del kernel  # training: values may have moved since the cache was built; rebuild from them
    kernel = densify(values, structure, *static)
    return _dot(x2d, kernel, x2d.dtype, precision).astype(x2d.dtype), (x2d, values, structure, kernel)


def _bwd(densify, static, precision, residuals, g):
    x2d, values, structure, kernel = residuals
    dtype = x2d.dtype
    grad_x = _dot(g, kernel.T, dtype, precision).astype(dtype)
    grad_kernel = _dot(x2d.T, g, dtype, precision).astype(kernel.dtype)  # [in, n_out]
    _, pull_back = jax.vjp(lambda v: densify(v, structure, *static), values)
    (grad_values,) = pull_back(grad_kernel)
    return grad_x, grad_values, _float0_like(structure), None


_matmul.defvjp(_fwd, _bwd)


def cached_dense_matmul(x2d, values, structure, kernel, *, densify, static=(), precision=None):
    """x2d @ kernel [in, n_out] with float32 accumulation, `kernel` being a cache of
    `densify(values, structure, *static)`; differentiable in x2d and values (see the module docstring).

    x2d and values must share a dtype; `densify` must be a module-level function (it keys jit caches), `static`
    a tuple of hashable extra arguments, `structure` a pytree of integer arrays.
    """
    return _matmul(x2d, values, structure, kernel.astype(x2d.dtype), densify, tuple(static), precision)
