"""jaxsparse: neural-network sparsity, compression and trustworthy-ML measurement in JAX/Flax.

Subpackages load on first access (`jaxsparse.masks`, `jaxsparse.condensed`, `jaxsparse.dst`, ...), so
`import jaxsparse` stays cheap and never imports optional heavy dependencies such as neural-tangents.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "masks",
    "condensed",
    "data",
    "nn",
    "dst",
    "sharing",
    "xmc",
    "distill",
    "fairness",
    "infowidth",
    "graph",
    "permute",
    "lth",
    "moe",
    "cli",
)

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'jaxsparse' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
