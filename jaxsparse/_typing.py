"""Type aliases shared across jaxsparse."""

from typing import Any

import jax

__all__ = ["Array", "KeyArray", "Masks", "Params", "PyTree"]

Array = jax.Array
KeyArray = jax.Array  # a typed key from `jax.random.key`
PyTree = Any
Params = Any  # a pytree of arrays
Masks = Any  # a pytree with the params' structure; bool leaves or None (dense)
