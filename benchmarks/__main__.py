"""`python -m benchmarks`: runs the benchmarks, prints their ratios, optionally writes a results JSON."""

import argparse
import datetime
import importlib
import json
import os
import sys
import tempfile
import time

from . import BENCHMARKS


def _parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", choices=BENCHMARKS, action="append", help="run only this one (repeatable)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats/sizes: each benchmark < 30 s")
    parser.add_argument("--tiny", action="store_true", help="tiny layers and models (for tests; not meaningful)")
    parser.add_argument("--json", metavar="PATH", help="write results (device, versions, sizes, medians) here")
    return parser.parse_args(argv)


def _write_json(path: str, payload: dict) -> None:
    """Atomic write: a temporary file in the same folder, then os.replace."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".bench-", suffix=".json.tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(payload, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    from jaxsparse.cli._cpu_runtime import apply_cpu_runtime_settings

    apply_cpu_runtime_settings()  # before JAX starts: the CLI's XLA flag, plus malloc settings (see _cpu_runtime)
    from ._timing import environment  # imports jax: after argparse so --help stays fast

    env = environment()
    print(
        f"benchmarks on {env['device']} ({env['processor']}, {env['cpu_count']} cpus), jax {env['jax_version']}"
        f"{', quick' if args.quick else ''}{', tiny' if args.tiny else ''}"
    )
    payload = {
        "environment": env,
        "device": env["device"],
        "jax_version": env["jax_version"],
        "quick": args.quick,
        "tiny": args.tiny,
        "started_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "benchmarks": {},
    }
    for name in args.only or BENCHMARKS:
        module = importlib.import_module(f".{name}", __package__)
        start = time.perf_counter()
        result = module.run(quick=args.quick, tiny=args.tiny)
        result["wall_s"] = time.perf_counter() - start
        print(f"[{name}] done in {result['wall_s']:.1f} s\n")
        payload["benchmarks"][name] = result
        if args.json:  # rewritten after each benchmark, so a partial run still leaves valid results
            _write_json(args.json, payload)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
