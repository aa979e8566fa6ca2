"""The `jaxsparse` command line: help, one-line errors with exit 2, and a small real `reproduce` run."""

import json
import os
import subprocess
import sys

import pytest

from jaxsparse.cli import main
from jaxsparse.cli._registry import REPRODUCTIONS, find
from jaxsparse.cli._report import atomic_write_text


def _run_cli(*args, **kwargs):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "jaxsparse", *args], capture_output=True, text=True, env=env, timeout=300, **kwargs
    )


@pytest.mark.parametrize("argv", [["--help"], ["reproduce", "--help"], ["list", "--help"]])
def test_help_on_every_subcommand(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: jaxsparse" in out
    if argv[0] == "reproduce":
        assert "--quick" in out and "--out" in out


def test_list_names_every_reproduction(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()] == [r.name for r in REPRODUCTIONS]


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["reproduce", "nosuchpaper"], "unknown reproduction"),
        (["reproduce", "--frobnicate"], "unrecognized arguments"),
        (["reproduce", "oneshot", "--set", "nosuchfield=1"], "unknown config field 'nosuchfield'"),
        (["reproduce", "oneshot", "--set", "train_steps=abc"], "train_steps expects int"),
        (["reproduce", "oneshot", "--set", "train_steps"], "KEY=VALUE"),
        (["reproduce", "oneshot", "--set", "sparsities=1.5"], "bad config"),
        (["nosuchcommand"], "invalid choice"),
    ],
)
def test_bad_arguments_print_one_line_and_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert needle in lines[0]
    assert "Traceback" not in captured.err


def test_bad_arguments_exit_2_without_traceback_in_a_real_process():
    proc = _run_cli("reproduce", "nosuchpaper")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_find_keeps_table_order_and_rejects_unknown():
    names = [r.name for r in REPRODUCTIONS]
    assert [r.name for r in find([])] == names
    assert [r.name for r in find(list(reversed(names)))] == names
    with pytest.raises(ValueError, match="unknown reproduction"):
        find(["oneshot", "bogus"])


def test_reproduce_writes_report_json_and_plots(tmp_path):
    out = tmp_path / "rep"
    proc = _run_cli(
        "reproduce", "oneshot", "--quick", "--out", str(out),
        "--set", "train_steps=30", "--set", "finetune_steps=5", "--set", "sparsities=0.5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = (out / "report.md").read_text()
    assert "## oneshot" in report and "Status: **ok**" in report
    assert "![accuracy_vs_sparsity.png](oneshot/accuracy_vs_sparsity.png)" in report
    png = out / "oneshot" / "accuracy_vs_sparsity.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = json.loads((out / "results.json").read_text())
    res = results["results"]["oneshot"]
    assert res["status"] == "ok" and res["config"]["train_steps"] == 30
    assert all(c["passed"] for c in res["checks"].values()), res["checks"]
    methods = {row["method"] for row in res["rows"]}
    assert {"magnitude", "global_magnitude", "fan_in", "nm 2:4"} <= methods
    assert results["header"]["jax"]


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "f.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["f.txt"]
