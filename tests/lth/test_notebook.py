"""notebooks/lth_permutation.ipynb runs end to end at a small size (stored clean: tests/test_notebooks.py)."""

import pathlib

from tests.test_notebooks import _assert_printed, _run_notebook

NOTEBOOK = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "lth_permutation.ipynb"


def test_notebook_runs(tmp_path):
    out = _run_notebook(NOTEBOOK, tmp_path, "60")
    _assert_printed(
        out,
        "permutation groups:",
        "max |logit change| after permuting:",
        "weight matching recovers the permutation: True",
        "dense A accuracy:",
        "matching objective by sweep:",
        "IMP densities by round:",
        "permuted mask keeps per-layer density: True",
        "permuted  accuracy:",
        "NOTEBOOK CHECKS PASSED",
    )
