"""Lazy, patched import of ``neural_tangents`` 0.6.5 on current JAX (0.10 and later).

Why this shim exists:
    neural-tangents 0.6.5, its last release, predates JAX 0.6 and cannot be imported unmodified on the JAX
    versions jaxsparse supports:

    * ``neural_tangents/__init__.py`` imports ``neural_tangents.experimental``, which imports TensorFlow,
      ``jax.experimental.jax2tf`` and ``tf2jax``. jaxsparse deliberately does not install TensorFlow (see
      the ``[tool.uv]`` overrides in ``pyproject.toml``).
    * Its modules run ``from jax.core import Jaxpr, JaxprEqn, Literal, Var, Primitive`` and
      ``from jax.util import safe_map, safe_zip``. Those names moved to ``jax.extend.core`` and
      ``jax._src.util``, and the ``jax.util`` module no longer exists.
    * ``neural_tangents._src.utils.rules`` registers a rule for ``jax.interpreters.ad.zeros_like_p``, a
      primitive JAX no longer has.
    * At call time a few private helpers use APIs that now warn or changed their results: ``jnp.size`` of a
      ``jax.ShapeDtypeStruct`` (empirical NTK implementation 2), ``jnp.dtype`` of an array, and
      ``Compiled.cost_analysis()`` that now returns a dict, not a list (``implementation=0``, "auto"). The
      structured-derivatives NTK (implementation 3) was written for the internals of
      ``jax.interpreters.ad`` from before JAX's "direct linearize" rewrite.

What it changes, and what it leaves alone:
    :func:`load` imports ``neural_tangents`` once, in three steps:

    1. It registers a stub ``neural_tangents.experimental`` module. Reading its TensorFlow-based
       ``empirical_ntk_fn_tf`` or ``get_apply_fn_and_params`` raises an ``AttributeError`` that says why.
    2. *Only while the import runs*, it adds the missing names to ``jax.core``, ``jax.interpreters.ad``
       and a temporary ``jax.util`` module in ``sys.modules``. It adds only names that are absent, and
       removes exactly those afterwards, so JAX's namespaces stay as they were. ``neural_tangents`` keeps
       the references it bound while importing. ``zeros_like_p`` is a fresh dummy primitive that never
       appears in a jaxpr, so the rule registered for it is unreachable and harmless.
    3. It replaces a few private functions *inside* ``neural_tangents._src.empirical`` with versions for
       current JAX, and gives that module views of ``jax.core`` and ``jax.interpreters.ad`` that fall back
       to ``jax.extend.core`` and ``jax._src`` for names that were removed. It never replaces a JAX function.

    The one lasting change outside ``neural_tangents`` is adding ``jax.core.eval_context``, which
    ``neural_tangents`` reads at call time. It happens only on a JAX version that has removed that name
    (0.10 still has it). :func:`applied_patches` lists what was done in this process.

Status on JAX 0.10.2 (covered by ``tests/_compat/test_neural_tangents.py``):
    The analytic ``kernel_fn`` of ``neural_tangents.stax`` models and ``empirical_ntk_fn`` implementations 1
    (Jacobian contraction) and 2 (NTK-vector products) work. Implementation 3 (structured derivatives)
    and ``0`` (auto) also work for the usual ``stax`` layers. Implementation 3 relies on private JAX
    internals (``jax._src.interpreters.ad.linearize`` with a ``FlatTree``), so a future JAX may break it
    even if implementations 1 and 2 still work. If this module does not recognise the internals, calling
    implementation 3 raises ``NotImplementedError``. It raises the same error for jaxprs that contain call
    or map primitives, which the original 0.6.5 code also cannot transpose on current JAX.

Example:
    >>> from jaxsparse._compat import neural_tangents as nt_compat
    >>> stax = nt_compat.stax()
    >>> init_fn, apply_fn, kernel_fn = stax.serial(stax.Dense(512), stax.Relu(), stax.Dense(1))
    >>> ntk_fn = nt_compat.empirical_ntk_fn(apply_fn, vmap_axes=0)
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import inspect
import itertools
import math
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "SUPPORTED_VERSION",
    "applied_patches",
    "empirical_kernel_fn",
    "empirical_nngp_fn",
    "empirical_ntk_fn",
    "load",
    "predict",
    "stax",
]

SUPPORTED_VERSION = "0.6.5"
"""The ``neural-tangents`` release this shim was written and tested against."""

_NT = "neural_tangents"
_EMPIRICAL = "neural_tangents._src.empirical"

# Names neural_tangents 0.6.5 reads from JAX modules *while it is imported*, and where current JAX keeps
# them. The first source that defines a name wins.
_CORE_NAMES = ("AbstractValue", "Jaxpr", "JaxprEqn", "Literal", "Primitive", "ShapedArray", "Value", "Var")
_CORE_SOURCES = ("jax.extend.core", "jax._src.core")
_AD_NAMES = ("UndefinedPrimal", "Zero", "add_jaxvals_p", "zeros_like_p")
_AD_SOURCES = ("jax._src.interpreters.ad",)
_UTIL_NAMES = ("safe_map", "safe_zip")
_UTIL_SOURCES = ("jax._src.util",)
# Primitives that ``rules.py`` only uses as dictionary keys: a dummy is fine when JAX has none.
_DUMMY_PRIMITIVES = ("add_jaxvals_p", "zeros_like_p")

_find_spec = importlib.util.find_spec  # Indirection so that tests can simulate a missing install.
_lock = threading.RLock()
_module: types.ModuleType | None = None
_patches: list[str] = []
_MISSING = object()


def load() -> types.ModuleType:
    """Imports ``neural_tangents`` with the compatibility patches applied and returns it.

    The first call does the work. Later calls return the same, cached module object. The call is thread-safe
    and idempotent: if ``neural_tangents`` is already imported, only the runtime fixes (step 3 in the module
    docstring) are applied, and only once.

    Returns:
        The ``neural_tangents`` package.

    Raises:
        ImportError: ``neural-tangents`` is not installed, or it cannot be imported even with the patches
            applied (for example, a JAX release removed another name it needs).
    """
    global _module
    if _module is not None:
        return _module
    with _lock:
        if _module is None:
            _module = _import_neural_tangents()
    return _module


def applied_patches() -> tuple[str, ...]:
    """Lists the patches :func:`load` applied in this process, in order; empty before the first load."""
    return tuple(_patches)


def stax() -> types.ModuleType:
    """Returns ``neural_tangents.stax``, importing it through :func:`load`."""
    return load().stax


def predict() -> types.ModuleType:
    """Returns ``neural_tangents.predict``, importing it through :func:`load`."""
    return load().predict


def empirical_ntk_fn(
    f: Callable[..., Any],
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: int = 1,
    **kwargs: Any,
) -> Callable[..., jax.Array]:
    """Thin wrapper around ``neural_tangents.empirical_ntk_fn``. Its defaults are those of 0.6.5.

    Args:
        f: Apply function ``f(params, x, **kwargs)``.
        trace_axes: Output axes to trace over. Use ``()`` for the full ``zip(f(x1).shape, f(x2).shape)``
            kernel.
        diagonal_axes: Output axes to keep only the diagonal of.
        vmap_axes: Batch axes ``f`` can be ``vmap``-ed over, e.g. ``0`` for an MLP. ``None`` (the default)
            is always correct but slower.
        implementation: ``1`` Jacobian contraction, ``2`` NTK-vector products, ``3`` structured
            derivatives, ``0`` choose automatically by FLOP count. See the module docstring for the status
            of 3 and 0.
        **kwargs: Passed through unchanged (``_j_rules``, ``_s_rules``, ``_fwd``).

    Returns:
        ``ntk_fn(x1, x2, params, **apply_kwargs)``. ``x2=None`` means ``x2 = x1``.
    """
    return load().empirical_ntk_fn(
        f,
        trace_axes=trace_axes,
        diagonal_axes=diagonal_axes,
        vmap_axes=vmap_axes,
        implementation=implementation,
        **kwargs,
    )


def empirical_nngp_fn(
    f: Callable[..., Any],
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
) -> Callable[..., jax.Array]:
    """Thin wrapper around ``neural_tangents.empirical_nngp_fn``, i.e. the kernel ``f(x1) f(x2)^T``.

    Args:
        f: Apply function ``f(params, x, **kwargs)``.
        trace_axes: Output axes to trace over.
        diagonal_axes: Output axes to keep only the diagonal of.

    Returns:
        ``nngp_fn(x1, x2, params, **apply_kwargs)``.
    """
    return load().empirical_nngp_fn(f, trace_axes=trace_axes, diagonal_axes=diagonal_axes)


def empirical_kernel_fn(
    f: Callable[..., Any],
    trace_axes: int | Sequence[int] = (-1,),
    diagonal_axes: int | Sequence[int] = (),
    vmap_axes: Any = None,
    implementation: int = 1,
    **kwargs: Any,
) -> Callable[..., Any]:
    """Thin wrapper around ``neural_tangents.empirical_kernel_fn``, which returns NNGP and/or NTK.

    Args:
        f: Apply function ``f(params, x, **kwargs)``.
        trace_axes: Output axes to trace over.
        diagonal_axes: Output axes to keep only the diagonal of.
        vmap_axes: Batch axes ``f`` can be ``vmap``-ed over (see :func:`empirical_ntk_fn`).
        implementation: NTK implementation (see :func:`empirical_ntk_fn`).
        **kwargs: Passed through unchanged.

    Returns:
        ``kernel_fn(x1, x2, get, params, **apply_kwargs)``, where ``get`` is ``"nngp"``, ``"ntk"`` or a
        tuple of both.
    """
    return load().empirical_kernel_fn(
        f,
        trace_axes=trace_axes,
        diagonal_axes=diagonal_axes,
        vmap_axes=vmap_axes,
        implementation=implementation,
        **kwargs,
    )


# --------------------------------------------------------------------------------------------------------
# Import machinery.
# --------------------------------------------------------------------------------------------------------


def _import_neural_tangents() -> types.ModuleType:
    """Does the uncached work of :func:`load`."""
    if _NT in sys.modules and _EMPIRICAL in sys.modules:  # Imported already, e.g. by an earlier load().
        nt = sys.modules[_NT]
    else:
        if _find_spec(_NT) is None:
            raise ImportError(
                "neural-tangents is not installed. jaxsparse imports it lazily, through "
                "jaxsparse._compat.neural_tangents, to compute analytic and empirical NNGP/NTK kernels. "
                f"Install the pinned version (neural-tangents=={SUPPORTED_VERSION}, declared in "
                "pyproject.toml) without TensorFlow, e.g. with `uv sync`."
            )
        _install_experimental_stub()
        try:
            with _temporary_jax_aliases():
                nt = importlib.import_module(_NT)
        except Exception as err:
            for name in [m for m in sys.modules if m == _NT or m.startswith(_NT + ".")]:
                del sys.modules[name]  # Leave no half-imported package behind; a retry starts clean.
            raise ImportError(
                f"neural_tangents could not be imported even with jaxsparse's compatibility patches for "
                f"JAX {jax.__version__} ({type(err).__name__}: {err}). The shim targets neural-tangents "
                f"{SUPPORTED_VERSION}; see jaxsparse/_compat/neural_tangents.py for what it patches."
            ) from err
    version = getattr(nt, "__version__", "unknown")
    if version != SUPPORTED_VERSION:
        warnings.warn(
            f"jaxsparse's neural_tangents shim was written for version {SUPPORTED_VERSION}, found {version}.",
            RuntimeWarning,
            stacklevel=3,
        )
    _ensure_lasting_jax_names()
    _patch_empirical(sys.modules[_EMPIRICAL])
    return nt


def _install_experimental_stub() -> None:
    """Registers a stand-in for ``neural_tangents.experimental``, which needs TensorFlow."""
    name = _NT + ".experimental"
    if name in sys.modules:
        return
    stub = types.ModuleType(name, "Stub installed by jaxsparse: the real subpackage needs TensorFlow.")

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise AttributeError(
            f"neural_tangents.experimental.{attr} is unavailable: the experimental subpackage needs "
            "TensorFlow and tf2jax, which jaxsparse does not install, so jaxsparse._compat.neural_tangents "
            "replaced it with a stub."
        )

    stub.__getattr__ = __getattr__  # type: ignore[method-assign]
    stub.__jaxsparse_stub__ = True  # type: ignore[attr-defined]
    sys.modules[name] = stub
    _patches.append(f"sys.modules[{name!r}] = stub (TensorFlow-only subpackage)")


def _lookup(name: str, sources: Sequence[str]) -> Any:
    """Returns the first definition of ``name`` in the modules ``sources``, without deprecation shims."""
    for source in sources:
        try:
            module = importlib.import_module(source)
        except ImportError:
            continue
        if name in vars(module):
            return vars(module)[name]
    return _MISSING


@contextmanager
def _temporary_jax_aliases() -> Iterator[None]:
    """Adds the JAX names that ``neural_tangents`` needs at import time; removes them again on exit."""
    added: list[tuple[types.ModuleType, str]] = []
    added_modules: list[str] = []

    def add_missing(module: types.ModuleType, names: Sequence[str], sources: Sequence[str]) -> None:
        for name in names:
            # Checking ``vars`` (not ``hasattr``) skips a module ``__getattr__`` that merely warns or
            # raises for a deprecated or removed name; assigning then bypasses it for the import.
            if name in vars(module):
                continue
            value = _lookup(name, sources)
            if value is _MISSING and name in _DUMMY_PRIMITIVES:
                primitive_cls = _lookup("Primitive", _CORE_SOURCES)
                value = primitive_cls(f"jaxsparse_compat_dummy_{name.removesuffix('_p')}")
            if value is _MISSING:
                continue  # Let the import fail with a precise message naming this attribute.
            setattr(module, name, value)
            added.append((module, name))
            _patches.append(f"{module.__name__}.{name} (during import only)")

    try:
        add_missing(importlib.import_module("jax.core"), _CORE_NAMES, _CORE_SOURCES)
        add_missing(importlib.import_module("jax.interpreters.ad"), _AD_NAMES, _AD_SOURCES)
        if _find_spec("jax.util") is not None:
            add_missing(importlib.import_module("jax.util"), _UTIL_NAMES, _UTIL_SOURCES)
        else:
            sys.modules["jax.util"] = types.ModuleType("jax.util", "Temporary alias installed by jaxsparse.")
            added_modules.append("jax.util")
            _patches.append("sys.modules['jax.util'] (during import only)")
            add_missing(sys.modules["jax.util"], _UTIL_NAMES, _UTIL_SOURCES)
        if _find_spec("jax.extend.linear_util") is None:
            sys.modules["jax.extend.linear_util"] = importlib.import_module("jax._src.linear_util")
            added_modules.append("jax.extend.linear_util")
            _patches.append("sys.modules['jax.extend.linear_util'] (during import only)")
        yield
    finally:
        for module, name in reversed(added):
            vars(module).pop(name, None)
        for name in added_modules:
            sys.modules.pop(name, None)


def _ensure_lasting_jax_names() -> None:
    """Adds ``jax.core`` names that ``neural_tangents`` reads at call time, only if JAX lacks them."""
    core = importlib.import_module("jax.core")
    if "eval_context" not in vars(core):
        value = _lookup("eval_context", ("jax._src.core",))
        if value is not _MISSING:
            core.eval_context = value  # type: ignore[attr-defined]
            _patches.append("jax.core.eval_context (lasting; absent in this JAX)")


class _FallbackModule(types.ModuleType):
    """A read-only view of a module that looks up missing attributes in fallback modules.

    ``neural_tangents._src.empirical`` receives such views as its globals ``core`` and ``ad``, so its
    call-time lookups of names such as ``ad.source_info_util`` work without changing JAX's modules.
    """

    def __init__(self, primary: types.ModuleType, fallbacks: Sequence[str]) -> None:
        super().__init__(primary.__name__, primary.__doc__)
        sources = [primary]
        for name in fallbacks:
            try:
                sources.append(importlib.import_module(name))
            except ImportError:  # A fallback that this JAX no longer has is simply skipped.
                continue
        self.__jaxsparse_sources__ = tuple(sources)

    def __getattr__(self, name: str) -> Any:
        sources = self.__jaxsparse_sources__
        for source in sources:
            if name in vars(source):
                return vars(source)[name]
        return getattr(sources[0], name)  # Preserves the primary module's own errors and deprecations.


def _patch_empirical(emp: types.ModuleType) -> None:
    """Replaces private helpers of ``neural_tangents._src.empirical`` that current JAX broke (idempotent)."""
    if getattr(emp, "__jaxsparse_patched__", False):
        return
    replacements: dict[str, Callable[..., Any]] = {
        "_std_basis": _nt_std_basis,
        "_unravel_array_into_pytree": _nt_unravel_array_into_pytree,
        "_get_fx_axis_and_dtype": _nt_get_fx_axis_and_dtype,
        "_get_flops": _nt_get_flops,
        "_eqn_vjp_fn": _nt_eqn_vjp_fn,
        "_write_cotangent": _nt_write_cotangent,
        "_read_primal": _nt_read_primal,
    }
    linearize_api = _linearize_api()
    if linearize_api == "flat_tree":
        replacements["_get_primals_out_and_pullback"] = _nt_get_primals_out_and_pullback
    elif linearize_api == "unknown":
        replacements["_get_primals_out_and_pullback"] = _nt_structured_derivatives_unsupported
    for name, replacement in replacements.items():
        if callable(getattr(emp, name, None)):
            setattr(emp, name, replacement)
            _patches.append(f"{emp.__name__}.{name} (replaced)")
    for name, fallbacks in (("core", _CORE_SOURCES), ("ad", _AD_SOURCES)):
        current = getattr(emp, name, None)
        if isinstance(current, types.ModuleType) and not isinstance(current, _FallbackModule):
            setattr(emp, name, _FallbackModule(current, fallbacks))
            _patches.append(f"{emp.__name__}.{name} -> fallback view over {', '.join(fallbacks)}")
    emp.__jaxsparse_patched__ = True


def _linearize_api() -> str:
    """Classifies ``jax._src.interpreters.ad.linearize``: ``"flat_tree"``, ``"legacy"`` or ``"unknown"``."""
    try:
        from jax._src.interpreters import ad as ad_internal
        from jax._src.tree_util import FlatTree  # noqa: F401
    except ImportError:
        return "unknown"
    try:
        params = inspect.signature(ad_internal.linearize).parameters
    except (AttributeError, TypeError, ValueError):
        return "unknown"
    if "primals_ft" in params:
        return "flat_tree"
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values()):
        return "legacy"  # The signature neural_tangents 0.6.5 was written for: keep its own code.
    return "unknown"


# --------------------------------------------------------------------------------------------------------
# Replacements for private helpers of neural_tangents._src.empirical (0.6.5). Each mirrors the original
# function of the same name minus the leading ``_nt``; comments note the differences.
# --------------------------------------------------------------------------------------------------------


def _nt_size(x: Any) -> int:
    """Number of elements of an array, scalar or ``ShapeDtypeStruct`` (``jnp.size`` warns for the latter)."""
    return math.prod(np.shape(x))


def _nt_std_basis(pytree: Any) -> Any:
    leaves = jax.tree_util.tree_leaves(pytree)
    ndim = sum(_nt_size(leaf) for leaf in leaves)
    dtype = jax.dtypes.result_type(*leaves)
    return _nt_unravel_array_into_pytree(pytree, 1, jnp.eye(ndim, dtype=dtype))


def _nt_unravel_array_into_pytree(pytree: Any, axis: int, arr: jax.Array) -> Any:
    leaves, treedef = jax.tree_util.tree_flatten(pytree)
    if arr.ndim > 0:
        axis %= arr.ndim
    shapes = [arr.shape[:axis] + tuple(np.shape(leaf)) + arr.shape[axis + 1 :] for leaf in leaves]
    split_points = list(itertools.accumulate(_nt_size(leaf) for leaf in leaves[:-1]))
    parts = jnp.split(arr, split_points, axis)
    return jax.tree_util.tree_unflatten(
        treedef, [jnp.reshape(part, shape) for part, shape in zip(parts, shapes, strict=True)]
    )


def _nt_get_fx_axis_and_dtype(fx: Any, fx_axis: Any, params: Any) -> tuple[Any, Any]:
    if fx_axis is None:
        fx_axis = jax.tree_util.tree_map(lambda x: None, fx)
    # The original applied ``jnp.dtype`` to arrays, which current JAX deprecates.
    dtypes = [
        jnp.dtype(leaf.dtype) if hasattr(leaf, "dtype") else jax.dtypes.result_type(leaf)
        for leaf in jax.tree_util.tree_leaves(params)
    ]
    dtype = functools.reduce(jnp.promote_types, dtypes) if dtypes else None
    return fx_axis, dtype


def _nt_get_flops(f: Callable[..., Any], optimize: bool, *a: Any, **kw: Any) -> float:
    lowered = jax.jit(f).lower(*a, **kw)
    analysis = lowered.compile().cost_analysis() if optimize else lowered.cost_analysis()
    if isinstance(analysis, list | tuple):  # Older JAX returned one dict per device program.
        analysis = analysis[0]
    return analysis["flops"]


def _nt_get_primals_out_and_pullback(
    fn: Callable[..., Any], mode: Any, _j_rules: bool, _s_rules: bool, _fwd: bool | None, *primals_in: Any
) -> tuple[Any, Callable[..., Any]]:
    # Current ``ad.linearize`` takes the function unflattened and the primals as a ``FlatTree``, and
    # returns, per flat output, whether its tangent is symbolically zero rather than partial values.
    from jax._src.interpreters import ad as ad_internal
    from jax._src.tree_util import FlatTree

    emp = sys.modules[_EMPIRICAL]
    in_tree = jax.tree_util.tree_structure(primals_in)
    with jax.disable_jit():  # As in the original: inline jitted calls, so no call primitives to transpose.
        out_ft, out_zeros, jaxpr, consts, *_ = ad_internal.linearize(fn, FlatTree.flatten(primals_in))
    primals_out = out_ft.unflatten()

    def pullback_fn(*cts_in: Any) -> Any:
        cts_flat = jax.tree_util.tree_leaves(cts_in)
        cts_nonzero = tuple(ct for ct, zero in zip(cts_flat, out_zeros, strict=False) if not zero)
        dummy_args = [emp.UndefinedPrimal(v.aval) for v in jaxpr.invars]
        cts_out = emp._backward_pass(
            jaxpr,
            mode=mode,
            consts=consts,
            primals_in=dummy_args,
            cotangents_in=cts_nonzero,
            _j_rules=_j_rules,
            _s_rules=_s_rules,
            _fwd=_fwd,
        )
        return jax.tree_util.tree_unflatten(in_tree, cts_out)

    return primals_out, pullback_fn


def _nt_structured_derivatives_unsupported(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError(
        f"neural_tangents empirical NTK implementation 3 (structured derivatives) is not supported on JAX "
        f"{jax.__version__}: jaxsparse._compat.neural_tangents does not recognise this JAX's private "
        "linearize API. Use implementation=1 or 2, which give the same kernel."
    )


def _nt_eqn_vjp_fn(eqn: Any, cts_in: Any, *invals: Any) -> Any:
    # The original read ``Primitive.map_primitive`` (now gone) and called call-primitive transposes with
    # an outdated signature. Call primitives cannot occur under ``jax.disable_jit`` for ordinary models.
    if eqn is None:
        return (cts_in,)
    from jax._src import source_info_util
    from jax._src.interpreters import ad as ad_internal

    primitive = eqn.primitive
    if getattr(primitive, "call_primitive", False) or getattr(primitive, "map_primitive", False):
        raise NotImplementedError(
            f"neural_tangents empirical NTK implementation 3 cannot transpose the call/map primitive "
            f"{primitive} on JAX {jax.__version__}; use implementation=1 or 2."
        )
    name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
    with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack):
        reducing_transposes = getattr(ad_internal, "reducing_transposes", {})
        if primitive in reducing_transposes:
            return reducing_transposes[primitive]((), (cts_in,), *invals, **eqn.params)
        return ad_internal.get_primitive_transpose(primitive)(cts_in, *invals, **eqn.params)


def _nt_write_cotangent(prim: Any, ct_env: dict[Any, Any], v: Any, ct: Any) -> None:
    # The original also ran a ``jax_enable_checks``-only assertion built on the removed
    # ``core.lattice_join`` and ``strip_named_shape``; it is dropped.
    emp = sys.modules[_EMPIRICAL]
    if ct is None or type(v) is emp.Literal or type(ct) is emp.Zero:
        return
    ct_env[v] = emp.ad.add_tangents(ct_env[v], ct) if v in ct_env else ct


def _nt_read_primal(env: dict[Any, Any], v: Any) -> Any:
    # The original special-cased ``core.DShapedArray`` (dynamic shapes), which JAX removed.
    emp = sys.modules[_EMPIRICAL]
    if type(v) is emp.Literal:
        return v.val
    return env.get(v, emp.UndefinedPrimal(v.aval))
