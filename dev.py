#!/usr/bin/env python3
"""Two-command set-up for jaxsparse on a machine that has only Python 3.11+.

    python3 dev.py reproduce --quick     # builds .venv (first run only), then `jaxsparse reproduce --quick`
    python3 dev.py test                  # builds .venv (first run only), then ruff + the whole pytest suite
                                         # (two xdist workers unless you pass -n / -p)

The environment comes from `uv.lock` via uv (installed into `.cache/uv` with pip on first use), so it is
the same on every machine; TensorFlow is overridden away (see `[tool.uv]` in pyproject.toml). Any other
arguments go to the `jaxsparse` command line (`python3 dev.py list`, `python3 dev.py reproduce srigl`).
"""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent
UV_VERSION = "0.13.8"
UV_DIR = ROOT / ".cache" / "uv"
VENV = ROOT / ".venv"


def _run(cmd: list, **kwargs) -> None:
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if result.returncode:
        raise SystemExit(result.returncode)


def _uv() -> pathlib.Path:
    uv = UV_DIR / "bin" / "uv"
    if not uv.exists():
        print(f"dev.py: installing uv {UV_VERSION} into {UV_DIR}", file=sys.stderr)
        _run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
              "--target", UV_DIR, f"uv=={UV_VERSION}"])  # fmt: skip
    return uv


def _sync() -> None:
    env = dict(os.environ, UV_PROJECT_ENVIRONMENT=str(VENV), UV_PYTHON_DOWNLOADS="never")
    _run([_uv(), "sync", "--frozen", "--quiet", "--python", sys.executable], env=env)


def _venv_bin(name: str) -> pathlib.Path:
    return VENV / "bin" / name


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    _sync()
    if argv[0] == "test":
        extra = argv[1:]
        _run([_venv_bin("ruff"), "check", "."])
        _run([_venv_bin("ruff"), "format", "--check", "."])
        env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
        if not any(a.startswith(("-n", "--numprocesses", "-p")) for a in extra):
            # Two workers: most tests are compile-bound (XLA compiles on one thread), so the suite takes ~13
            # instead of ~19 minutes on a 2-core machine. Pass -n 0 (or your own -n / -p) to override.
            extra = ["-n", "2", *extra]
        result = subprocess.run([_venv_bin("python"), "-m", "pytest", *extra], cwd=ROOT, env=env)
        return result.returncode
    return subprocess.run([_venv_bin("jaxsparse"), *argv], cwd=ROOT).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
