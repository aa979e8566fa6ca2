"""The `jaxsparse` command line: `jaxsparse reproduce [NAME ...] [--quick] [--out DIR]` and `jaxsparse list`.

Bad arguments or configs print one line and exit with status 2 (no traceback).
"""

import argparse
import dataclasses
import datetime
import importlib
import pathlib
import platform
import sys
import time
import traceback

from ._cpu_runtime import prefer_memory_optimized_cpu_scheduler
from ._registry import REPRODUCTIONS, Reproduction, find
from ._report import write_report

__all__ = ["main"]


class UsageError(Exception):
    """A bad argument or config: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _load(spec: str):
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr)


def _coerce(field: dataclasses.Field, current, raw: str):
    kind = type(current)
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes"):
                return True
            if raw.lower() in ("0", "false", "no"):
                return False
            raise ValueError(raw)
        if kind in (int, float, str):
            return kind(raw)
        if kind is tuple:
            items = [s for s in raw.split(",") if s]
            elem = type(current[0]) if current else str
            return tuple(elem(s) for s in items)
    except ValueError:
        raise UsageError(f"config field {field.name} expects {kind.__name__}, got {raw!r}") from None
    raise UsageError(f"config field {field.name} of type {kind.__name__} cannot be set from the command line")


def _apply_overrides(config, overrides: list[str]):
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects KEY=VALUE, got {item!r}")
        if key not in fields:
            raise UsageError(f"unknown config field {key!r} for {type(config).__name__}; fields: {', '.join(fields)}")
        changes[key] = _coerce(fields[key], getattr(config, key), raw)
    try:
        return dataclasses.replace(config, **changes)
    except ValueError as err:
        raise UsageError(f"bad config: {err}") from None


def _header(quick: bool, names: list[str]) -> dict:
    import jax

    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": "jaxsparse reproduce " + " ".join([*names, *(["--quick"] if quick else [])]),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "machine": platform.machine(),
    }


def _run_one(repro: Reproduction, config, out_dir: pathlib.Path, quick: bool) -> dict:
    target = out_dir / repro.name
    target.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    budget = repro.quick_budget_s if quick else None
    try:
        result = dict(_load(repro.runner)(config, target))
        result["status"] = "ok"
    except Exception as err:  # recorded in the report; the run goes on with the next reproduction
        result = {"status": "error", "error": "".join(traceback.format_exception(err))[-4000:]}
        print(f"jaxsparse: reproduction {repro.name} failed: {err!r}", file=sys.stderr)
    result["elapsed_s"] = time.perf_counter() - start
    result["budget_s"] = budget
    result["title"] = repro.title
    result["config"] = dataclasses.asdict(config)
    if budget is not None and result["elapsed_s"] > budget and result["status"] == "ok":
        result["status"] = "over budget"
    return result


def _cmd_reproduce(args) -> int:
    try:
        selected = find(args.names)
    except ValueError as err:
        raise UsageError(str(err)) from None
    configs = {}
    for repro in selected:
        try:
            config = _load(repro.config)(quick=args.quick)
        except ValueError as err:
            raise UsageError(f"bad config for {repro.name}: {err}") from None
        configs[repro.name] = _apply_overrides(config, args.set) if args.set else config
    out_dir = pathlib.Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out {out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    header = _header(args.quick, args.names)
    results = {}
    for repro in selected:
        print(f"== {repro.name}: {repro.title}", file=sys.stderr)
        results[repro.name] = _run_one(repro, configs[repro.name], out_dir, args.quick)
        write_report(out_dir, header, results)  # after each, so an interrupted run keeps what finished
        print(f"   {results[repro.name]['status']} in {results[repro.name]['elapsed_s']:.1f} s", file=sys.stderr)
    print(f"report: {out_dir / 'report.md'}")
    return 0 if all(r["status"] != "error" for r in results.values()) else 1


def _cmd_list(args) -> int:
    del args
    for repro in REPRODUCTIONS:
        print(f"{repro.name:12s} {repro.title}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxsparse", description="jaxsparse: sparsity, compression and trustworthy-ML tools.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    rep = sub.add_parser(
        "reproduce",
        help="run registered small-scale reproductions and write report.md, results.json and plots",
        description="Run the registered small-scale paper reproductions on embedded data.",
    )
    rep.add_argument("names", nargs="*", help="reproductions to run (default: all; see `jaxsparse list`)")
    rep.add_argument("--quick", action="store_true", help="small budgets: everything within 15 min on 2 CPU cores")
    rep.add_argument("--out", default="out/reproduce", help="output directory (default: out/reproduce)")
    rep.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field (repeatable)"
    )
    rep.set_defaults(func=_cmd_reproduce)
    lst = sub.add_parser("list", help="list the registered reproductions", description="List reproductions.")
    lst.set_defaults(func=_cmd_list)
    from . import _moe  # light: jax and jaxsparse.moe are imported only when the command runs

    _moe.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `jaxsparse` console script; returns the exit status."""
    prefer_memory_optimized_cpu_scheduler()  # before anything imports JAX's backends (see _cpu_runtime)
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return 2
        return args.func(args)
    except UsageError as err:
        print(f"jaxsparse: error: {err}" if not str(err).startswith("jaxsparse") else f"{err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("jaxsparse: interrupted", file=sys.stderr)
        return 130
