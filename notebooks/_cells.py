"""Cells shared by the notebook generators."""

import pathlib

import nbformat
from nbformat.v4 import new_notebook

__all__ = ["INSTALL_CELL", "write_notebook"]

INSTALL_CELL = """# Install jaxsparse only if it is not importable yet.
# Colab: jaxsparse is not on PyPI. Upload or clone the repository into the runtime first
# (e.g. `!git clone <URL of your copy of the repo> /content/jaxsparse`), then run this cell; it pip-installs
# from JAXSPARSE_REPO, or from the first of ../ (this notebook's repo) and /content/jaxsparse that exists.
import os
import pathlib
import subprocess
import sys

try:
    import jaxsparse
except ImportError:
    candidates = [os.environ.get("JAXSPARSE_REPO", ""), "..", "/content/jaxsparse"]
    repo = next((c for c in candidates if c and (pathlib.Path(c) / "pyproject.toml").exists()), None)
    if repo is None:
        raise RuntimeError("jaxsparse is not installed: set JAXSPARSE_REPO to a checkout of the repository")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", repo])
    import jaxsparse

print("jaxsparse from", jaxsparse.__file__)"""


def write_notebook(cells, path: pathlib.Path) -> None:
    """Writes `cells` as a clean Colab-ready notebook with stable cell ids (regenerating gives the same file)."""
    nb = new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i:02d}"
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["colab"] = {"provenance": []}
    nbformat.validate(nb)
    nbformat.write(nb, path)
    print(f"wrote {path}")
