"""notebooks/mutual_information.ipynb: stored clean, and runs end to end at a small size."""

import pathlib

import pytest

from tests.test_notebooks import _assert_printed, _run_notebook

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "mutual_information.ipynb"


def test_notebook_is_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "store the notebook without outputs"


def test_notebook_runs(tmp_path):
    out = _run_notebook(NOTEBOOK, tmp_path, "80")
    _assert_printed(
        out,
        "native vs neural-tangents: max |NNGP diff|",
        "I_NCE",
        "refused:",
        "ICB rows holding:",
        "rule flags a shortcut",
        "NOTEBOOK CHECKS PASSED",
    )
