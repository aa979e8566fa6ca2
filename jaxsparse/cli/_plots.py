"""Matplotlib helpers for reproduction plots (Agg backend, files written atomically)."""

import os
import pathlib
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

__all__ = ["plt", "save_figure"]


def save_figure(fig, path: pathlib.Path) -> str:
    """Saves `fig` as PNG via a temporary file renamed into place; returns the file name."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        os.replace(tmp, path)
    finally:
        pathlib.Path(tmp).unlink(missing_ok=True)
        plt.close(fig)
    return path.name
