"""Compatibility shims for third-party libraries that lag behind current JAX.

Every shim lives in its own submodule and imports its target library lazily, so importing
``jaxsparse`` (or this package) never imports the shimmed library. Import the submodule you need, e.g.
``from jaxsparse._compat import neural_tangents as nt_compat; nt = nt_compat.load()``.
"""

__all__: list[str] = []
