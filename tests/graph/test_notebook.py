"""notebooks/meta_gcn.ipynb runs end to end at a tiny size (tests/test_notebooks.py checks it is stored clean)."""

import pathlib

from tests.test_notebooks import _assert_printed, _run_notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "meta_gcn.ipynb"


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
