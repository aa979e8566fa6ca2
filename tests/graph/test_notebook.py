"""notebooks/meta_gcn.ipynb is stored clean and runs end to end at a tiny size."""

import pathlib

import pytest

from tests.test_notebooks import _assert_printed, _run_notebook

nbformat = pytest.importorskip("nbformat")

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "meta_gcn.ipynb"


def test_meta_gcn_notebook_is_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "store the notebook without outputs"


def test_meta_gcn_notebook_runs(tmp_path):
    out = _run_notebook(NOTEBOOK, tmp_path, "20")
    _assert_printed(
        out,
        "graph: 420 nodes",
        "dense and edge-list GCN agree",
        "meta weights equal gradient dot products",
        "meta_gcn ",
        "class_weighted ",
        "minority weight share",
        "haberman-format graph:",
        "NOTEBOOK CHECKS PASSED",
    )
