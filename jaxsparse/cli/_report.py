"""Writing `report.md` and `results.json` atomically (temporary file, then rename)."""

import json
import math
import os
import pathlib
import tempfile

import numpy as np

__all__ = ["atomic_write_text", "to_jsonable", "write_report"]


def atomic_write_text(path: pathlib.Path, text: str) -> None:
    """Writes `text` to a temporary file beside `path` and renames it into place."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        pathlib.Path(tmp).unlink(missing_ok=True)
        raise


def to_jsonable(obj):
    """Converts numpy/jax scalars and arrays, tuples and paths into JSON-compatible values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, pathlib.Path):
        return str(obj)
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):
        return to_jsonable(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    return obj


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_report(out_dir: pathlib.Path, header: dict, results: dict) -> None:
    """Writes report.md (human) and results.json (machine) for a `reproduce` run."""
    lines = ["# jaxsparse reproduce report", ""]
    lines += [f"- {k}: {v}" for k, v in header.items()]
    for name, res in results.items():
        lines += ["", f"## {name}: {res.get('title', '')}", ""]
        status = res.get("status", "ok")
        lines.append(f"Status: **{status}** in {res.get('elapsed_s', 0):.1f} s (budget {res.get('budget_s')} s)")
        if status == "error":
            lines += ["", "```", res.get("error", ""), "```"]
            continue
        if res.get("summary"):
            lines += ["", res["summary"]]
        if res.get("rows"):
            lines += ["", _table(res["rows"])]
        checks = res.get("checks") or {}
        if checks:
            lines += ["", "Checks:", ""]
            lines += [f"- [{'x' if c['passed'] else ' '}] {k}: {c.get('detail', '')}" for k, c in checks.items()]
        for plot in res.get("plots") or []:
            lines += ["", f"![{plot}]({name}/{plot})"]
    atomic_write_text(out_dir / "report.md", "\n".join(lines) + "\n")
    payload = {"header": header, "results": results}
    atomic_write_text(out_dir / "results.json", json.dumps(to_jsonable(payload), indent=2) + "\n")
