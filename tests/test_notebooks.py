"""Executes notebooks/srigl.ipynb's code cells in a fresh subprocess (no Jupyter kernel) at a tiny size."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "srigl.ipynb"
FIPS_NOTEBOOK = ROOT / "notebooks" / "fips.ipynb"
KD_NOTEBOOK = ROOT / "notebooks" / "kd_fairness.ipynb"

# Runs each cell in one shared namespace, naming the failing cell in the traceback.
_DRIVER = """
import json, sys
cells = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for i, source in enumerate(cells):
    exec(compile(source, f"<notebook cell {i}>", "exec"), namespace)
"""


def _code_cells(path: pathlib.Path) -> list[str]:
    """Code cells' sources with IPython magics and shell lines (% or ! first) removed."""
    nb = nbformat.read(path, as_version=4)
    cells = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        lines = [line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        cells.append("\n".join(lines))
    return cells


# Every notebook in notebooks/ (each package's own test runs it).
@pytest.mark.parametrize("path", sorted((ROOT / "notebooks").glob("*.ipynb")), ids=lambda p: p.stem)
def test_notebook_is_clean(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "store the notebook without outputs"


def _run_notebook(path, tmp_path, steps: str):
    cells_file = tmp_path / "cells.json"
    cells_file.write_text(json.dumps(_code_cells(path)))
    env = dict(os.environ, JAXSPARSE_NB_STEPS=steps, MPLBACKEND="Agg", JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)  # one plain CPU device, as a notebook user has
    result = subprocess.run(
        [sys.executable, "-c", _DRIVER, str(cells_file)],
        cwd=path.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"notebook failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


def _assert_printed(out: str, *markers: str) -> None:
    for marker in markers:
        assert marker in out, f"missing {marker!r} in the notebook's output:\n{out[-4000:]}"


def test_fips_notebook_runs(tmp_path):
    out = _run_notebook(FIPS_NOTEBOOK, tmp_path, "40")
    _assert_printed(
        out,
        "original accuracy:",
        "ranks:",
        "accuracy after reconstruction:",
        "pruned factor weights are exactly zero",
        "rank d, sparsity 0 reproduces the model",
        "condensed factors match dense",
        "NOTEBOOK CHECKS PASSED",
    )


def test_kd_fairness_notebook_runs(tmp_path):
    out = _run_notebook(KD_NOTEBOOK, tmp_path, "60")
    _assert_printed(
        out,
        "teacher accuracy:",
        "classes changed vs teacher",
        "teacher        DPD",
        "reweighing equalises positive rates",
        "group thresholds: DPD",
        "NOTEBOOK CHECKS PASSED",
    )


def test_srigl_notebook_runs(tmp_path):
    out = _run_notebook(NOTEBOOK, tmp_path, "60")
    _assert_printed(
        out,
        "dense accuracy:",
        "srigl accuracy:",
        "pruned weights are exactly zero",
        "ablated neurons:",
        "condensed matches dense: max |logit gap|",
        "condensed / dense time at batch 1:",
        "NOTEBOOK CHECKS PASSED",
    )
