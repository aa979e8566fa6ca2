"""A byte-level code corpus built from the Python standard library's own `.py` sources (no download)."""

import dataclasses
import hashlib
import os
import sysconfig
from numbers import Integral
from pathlib import Path

import numpy as np

from jaxsparse._checks import check_bool, check_fraction, check_int, check_optional_int, check_seed

__all__ = ["CodeCorpus", "load_stdlib_code_corpus", "sample_windows", "stdlib_root"]

VOCAB_SIZE = 256
# Never part of the standard library proper, wherever they sit under it.
_EXCLUDED_DIRS = frozenset({"site-packages", "dist-packages", "__pycache__"})
# Test suites (`test/`, `ctypes/test/`, `lib2to3/tests/`, `idlelib/idle_test/`, ...), dropped by default.
_TEST_DIRS = frozenset({"test", "tests", "idle_test"})


@dataclasses.dataclass(frozen=True, eq=False)
class CodeCorpus:
    """Byte tokens of source files, split into training and held-out parts by whole file.

    Attributes:
        train_tokens: int32 ids in [0, 256): the training files' bytes concatenated in `train_files` order.
        heldout_tokens: int32 ids in [0, 256): the held-out files' bytes in `heldout_files` order.
        train_files: Paths of the training files, relative to `root`, POSIX-style.
        heldout_files: Paths of the held-out files, relative to `root`; disjoint from `train_files`.
        vocab_size: Number of token ids (256, one per byte value).
        root: The directory the files were read from.
    """

    train_tokens: np.ndarray
    heldout_tokens: np.ndarray
    train_files: tuple[str, ...]
    heldout_files: tuple[str, ...]
    vocab_size: int = VOCAB_SIZE
    root: str = ""


def stdlib_root() -> Path:
    """Directory of the running interpreter's standard library (`sysconfig.get_paths()["stdlib"]`)."""
    return Path(sysconfig.get_paths()["stdlib"])


def _list_sources(root: Path, include_tests: bool) -> list[tuple[str, int]]:
    """Sorted `(relative POSIX path, size in bytes)` of the non-empty `.py` files under `root`."""
    skip = _EXCLUDED_DIRS if include_tests else _EXCLUDED_DIRS | _TEST_DIRS
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            if not name.endswith(".py"):
                continue
            path = Path(dirpath, name)
            if not path.is_file():
                continue
            size = path.stat().st_size
            if size > 0:
                found.append((path.relative_to(root).as_posix(), size))
    found.sort()
    return found


def _unit_hash(seed: int, relpath: str) -> float:
    """A uniform number in [0, 1) fixed by `(seed, relpath)`: stable across runs, platforms and versions."""
    digest = hashlib.blake2b(f"{seed}\0{relpath}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _take(files: list[tuple[str, int]], max_count: int | None, max_bytes: int | None) -> list[str]:
    """Greedily takes files in order, skipping any that would overflow `max_bytes`, up to `max_count`."""
    taken, total = [], 0
    for relpath, size in files:
        if max_count is not None and len(taken) >= max_count:
            break
        if max_bytes is not None and total + size > max_bytes:
            continue
        taken.append(relpath)
        total += size
    return taken


def _read_tokens(root: Path, files: list[str]) -> np.ndarray:
    data = b"".join((root / relpath).read_bytes() for relpath in files)
    return np.frombuffer(data, dtype=np.uint8).astype(np.int32)


def load_stdlib_code_corpus(
    *,
    seed: int = 0,
    heldout_fraction: float = 0.1,
    max_files: int | None = None,
    max_bytes: int | None = None,
    include_tests: bool = False,
    root: str | os.PathLike | None = None,
) -> CodeCorpus:
    """Builds a byte-level language-modelling corpus from the standard library's `.py` files.

    Files are found under `sysconfig.get_paths()["stdlib"]` (or `root`), skipping `site-packages`,
    `dist-packages`, `__pycache__`, empty files and — unless `include_tests` — test-suite directories
    (`test`, `tests`, `idle_test`). Each file gets a number u in [0, 1) from a hash of `seed` and its
    relative path; files with `u < heldout_fraction` are held out, the rest are for training. Within each
    part, files are ordered by u. Because u depends only on `(seed, path)`, a file held out under one
    `max_files`/`max_bytes` setting is never a training file under another (same seed and fraction).

    The caps are split between the parts in proportion to `heldout_fraction` (the held-out part gets at
    least one file when the fraction is positive): each part takes its files in order, skipping a file
    that would exceed its byte budget, until its file budget is met.

    Args:
        seed: Non-negative int selecting the file split and order.
        heldout_fraction: Expected fraction of files held out, in [0, 1); 0 gives an empty held-out part.
        max_files: Optional cap (>= 1, or >= 2 with a held-out part) on the total number of files.
        max_bytes: Optional cap (>= 1) on the total number of bytes (= tokens).
        include_tests: Whether to include the standard library's test suites.
        root: Directory to read instead of the standard library (files under it are treated alike).

    Returns:
        A `CodeCorpus`; token ids are the raw bytes (vocabulary 256), files concatenated without separator.

    Raises:
        ValueError: If an argument is invalid or leaves a part empty (the message names the argument).
    """
    seed = check_seed(seed)
    heldout_fraction = check_fraction(heldout_fraction, "heldout_fraction", allow_zero=True)
    want_heldout = heldout_fraction > 0
    max_files = check_optional_int(max_files, "max_files", minimum=2 if want_heldout else 1)
    max_bytes = check_optional_int(max_bytes, "max_bytes", minimum=1)
    include_tests = check_bool(include_tests, "include_tests")
    if root is None:
        root_path = stdlib_root()
    else:
        if not isinstance(root, str | os.PathLike):
            raise ValueError(f"root must be a path, got {root!r}")
        root_path = Path(root)
    if not root_path.is_dir():
        raise ValueError(f"root must be an existing directory, got {str(root_path)!r}")

    sources = _list_sources(root_path, include_tests)
    if not sources:
        raise ValueError(f"root {str(root_path)!r} holds no non-empty .py files")
    keyed = sorted((_unit_hash(seed, relpath), relpath, size) for relpath, size in sources)
    held_all = [(relpath, size) for u, relpath, size in keyed if u < heldout_fraction]
    train_all = [(relpath, size) for u, relpath, size in keyed if u >= heldout_fraction]

    held_count = train_count = held_bytes = train_bytes = None
    if max_files is not None:
        held_count = max(1, round(heldout_fraction * max_files)) if want_heldout else 0
        train_count = max_files - held_count
    if max_bytes is not None:
        held_bytes = round(heldout_fraction * max_bytes)
        train_bytes = max_bytes - held_bytes
    heldout_files = _take(held_all, held_count, held_bytes)
    train_files = _take(train_all, train_count, train_bytes)

    caps = "max_files/max_bytes" if max_files is not None or max_bytes is not None else "root"
    if not train_files:
        raise ValueError(f"no training file fits: raise {caps} (heldout_fraction={heldout_fraction})")
    if want_heldout and not heldout_files:
        raise ValueError(
            f"no held-out file fits: raise heldout_fraction={heldout_fraction} or {caps}"
            if caps != "root"
            else f"no held-out file: raise heldout_fraction={heldout_fraction}"
        )
    return CodeCorpus(
        train_tokens=_read_tokens(root_path, train_files),
        heldout_tokens=_read_tokens(root_path, heldout_files),
        train_files=tuple(train_files),
        heldout_files=tuple(heldout_files),
        vocab_size=VOCAB_SIZE,
        root=str(root_path),
    )


def _window_starts(key_or_seed, batch_size: int, num_starts: int) -> np.ndarray:
    """`batch_size` uniform window starts in [0, num_starts) from an int seed or a JAX PRNG key."""
    if isinstance(key_or_seed, Integral) and not isinstance(key_or_seed, bool | np.bool_):
        seed = check_seed(key_or_seed, "key_or_seed")
        return np.random.default_rng(seed).integers(0, num_starts, size=batch_size)
    import jax  # lazy: only needed for key-driven sampling

    dtype = getattr(key_or_seed, "dtype", None)
    shape = getattr(key_or_seed, "shape", None)
    if dtype is None:
        ok = False
    elif jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        ok = shape == ()  # a typed key from `jax.random.key`
    else:
        ok = dtype == np.uint32 and shape == (2,)  # a raw key from `jax.random.PRNGKey`
    if not ok:
        raise ValueError(
            "key_or_seed must be a non-negative int or a single JAX PRNG key, "
            f"got {type(key_or_seed).__name__} {key_or_seed!r}"
        )
    return np.asarray(jax.random.randint(key_or_seed, (batch_size,), 0, num_starts), dtype=np.int64)


def sample_windows(tokens, *, key_or_seed, batch_size: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Samples random next-token windows from a 1-D token stream.

    Each row starts at a uniformly random offset s; `inputs[i] = tokens[s : s + seq_len]` and
    `targets[i] = tokens[s + 1 : s + seq_len + 1]`, so targets are inputs shifted left by one.

    Args:
        tokens: 1-D integer array (numpy or JAX) with at least `seq_len + 1` entries.
        key_or_seed: A non-negative int seed (numpy `default_rng`) or a single JAX PRNG key.
        batch_size: Number of windows (>= 1).
        seq_len: Window length (>= 1).

    Returns:
        `(inputs, targets)`, two int32 numpy arrays of shape `(batch_size, seq_len)`.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seq_len = check_int(seq_len, "seq_len", minimum=1)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be a 1-D integer array, got shape {tokens.shape} dtype {tokens.dtype}")
    if tokens.shape[0] < seq_len + 1:
        raise ValueError(f"seq_len={seq_len} needs at least seq_len + 1 tokens, got {tokens.shape[0]}")
    starts = _window_starts(key_or_seed, batch_size, tokens.shape[0] - seq_len)
    windows = tokens[starts[:, None] + np.arange(seq_len + 1)].astype(np.int32)
    return windows[:, :-1], windows[:, 1:]
