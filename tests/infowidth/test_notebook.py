"""notebooks/mutual_information.ipynb runs end to end at a small size (stored clean: tests/test_notebooks.py)."""

import pathlib

from tests.test_notebooks import _assert_printed, _run_notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "mutual_information.ipynb"


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
