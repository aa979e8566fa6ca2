"""Extreme multi-label data: the Extreme Classification Repository format, a stdlib task, label clusters.

* `MultiLabelDataset`: sparse features and labels (scipy CSR) with their sizes.
* `read_xc_repository` / `write_xc_repository`: the repository's sparse text (BoW) format, as read by
  pyxclib's `read_data`: a header `N D L`, then one line per point, `l1,l2,... f1:v1 f2:v2 ...`.
* `load_stdlib_identifier_task`: an offline, long-tailed task built from the Python standard library's own
  source: predict the identifiers a function body uses from its name and docstring.
* `label_embeddings`, `label_clusters`, `cluster_targets`: PIFA label embeddings, balanced hierarchical
  2-means label clusters and the multi-hot cluster targets they induce (for meta-classifier heads).
"""

import ast
import contextlib
import dataclasses
import os
import re
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from jaxsparse._checks import check_fraction, check_int, check_optional_int, check_seed
from jaxsparse.data._code import _list_sources, _unit_hash, stdlib_root

__all__ = [
    "MultiLabelDataset",
    "cluster_targets",
    "label_clusters",
    "label_embeddings",
    "load_stdlib_identifier_task",
    "read_xc_repository",
    "write_xc_repository",
]


# --------------------------------------------------------------------------------------------------------------
# The dataset container
# --------------------------------------------------------------------------------------------------------------


def _check_names(names, name: str, size: int) -> tuple[str, ...] | None:
    if names is None:
        return None
    if isinstance(names, str | bytes) or not hasattr(names, "__len__"):
        raise ValueError(f"{name} must be a sequence of str or None, got {type(names).__name__}")
    names = tuple(names)
    if len(names) != size or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{name} must hold {size} str entries, got {len(names)} entries")
    return names


@dataclasses.dataclass(frozen=True, eq=False)
class MultiLabelDataset:
    """Sparse multi-label data: N points, D features, L labels.

    Inputs are normalised on construction: any scipy sparse matrix becomes a canonical `csr_matrix`
    (sorted indices, duplicates summed); features become float32; labels stay bool if given bool and
    become float32 otherwise. A stored non-zero label entry means "positive".

    Attributes:
        features: `scipy.sparse.csr_matrix`, float32, shape [N, D]; values must be finite.
        labels: `scipy.sparse.csr_matrix`, float32 (or bool), shape [N, L]; explicitly stored zeros are
            dropped, so every stored entry is a positive label.
        num_features: D (>= 1).
        num_labels: L (>= 1).
        feature_names: Optional D names (e.g. the vocabulary).
        label_names: Optional L names.
        point_names: Optional N names (e.g. where each point came from).
    """

    features: sp.csr_matrix
    labels: sp.csr_matrix
    num_features: int
    num_labels: int
    feature_names: tuple[str, ...] | None = None
    label_names: tuple[str, ...] | None = None
    point_names: tuple[str, ...] | None = None

    def __post_init__(self):
        num_features = check_int(self.num_features, "num_features", minimum=1)
        num_labels = check_int(self.num_labels, "num_labels", minimum=1)
        features, labels = self.features, self.labels
        if not sp.issparse(features):
            raise ValueError(f"features must be a scipy sparse matrix, got {type(features).__name__}")
        if not sp.issparse(labels):
            raise ValueError(f"labels must be a scipy sparse matrix, got {type(labels).__name__}")
        if features.ndim != 2 or features.shape[1] != num_features:
            raise ValueError(f"features must have shape [N, num_features={num_features}], got {features.shape}")
        if labels.ndim != 2 or labels.shape[1] != num_labels:
            raise ValueError(f"labels must have shape [N, num_labels={num_labels}], got {labels.shape}")
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"features and labels must have the same rows, got {features.shape} and {labels.shape}")
        if not (np.issubdtype(features.dtype, np.floating) or np.issubdtype(features.dtype, np.integer)):
            raise ValueError(f"features must hold real numbers, got dtype {features.dtype}")
        features = _canonical_csr(features, np.float32)
        if not np.all(np.isfinite(features.data)):
            raise ValueError("features must be finite (float32), found a non-finite value")
        if labels.dtype == np.bool_:
            labels = _canonical_csr(labels, np.bool_)
        elif np.issubdtype(labels.dtype, np.floating) or np.issubdtype(labels.dtype, np.integer):
            labels = _canonical_csr(labels, np.float32)
        else:
            raise ValueError(f"labels must be bool or real, got dtype {labels.dtype}")
        if not np.all(labels.data):  # explicitly stored zeros are not labels: drop them
            labels = labels.copy()
            labels.eliminate_zeros()
        n = features.shape[0]
        object.__setattr__(self, "features", features)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "num_features", num_features)
        object.__setattr__(self, "num_labels", num_labels)
        object.__setattr__(self, "feature_names", _check_names(self.feature_names, "feature_names", num_features))
        object.__setattr__(self, "label_names", _check_names(self.label_names, "label_names", num_labels))
        object.__setattr__(self, "point_names", _check_names(self.point_names, "point_names", n))

    @property
    def num_points(self) -> int:
        """N, the number of points."""
        return int(self.features.shape[0])

    @property
    def label_counts(self) -> np.ndarray:
        """int64 [L]: how many points have each label (its frequency N_l, for propensity weights)."""
        return np.bincount(self.labels.indices, minlength=self.num_labels).astype(np.int64)

    @property
    def labels_per_point(self) -> np.ndarray:
        """int64 [N]: the number of positive labels of each point."""
        return np.diff(self.labels.indptr).astype(np.int64)


def _canonical_csr(matrix, dtype) -> sp.csr_matrix:
    """`matrix` as a `csr_matrix` of `dtype` with sorted indices and no duplicates (copies only if needed)."""
    out = matrix if isinstance(matrix, sp.csr_matrix) else sp.csr_matrix(matrix)
    if out.dtype != dtype:
        out = out.astype(dtype)
    if not out.has_canonical_format:
        out = out.copy()
        out.sum_duplicates()
    return out


# --------------------------------------------------------------------------------------------------------------
# Extreme Classification Repository text format
# --------------------------------------------------------------------------------------------------------------

_ID = rb"\d{1,18}"  # ASCII digits only (no sign, no "_"); <= 18 digits always fits int64
_LABELS_RE = re.compile(_ID + rb"(?:," + _ID + rb")*")
_FEATURES_RE = re.compile(_ID + rb":[^\s:,]+(?:[ \t]+" + _ID + rb":[^\s:,]+)*")
_ID_RE = re.compile(_ID)
_CHUNK_TOKENS = 1 << 20  # feature tokens parsed in bulk at a time


class _Parser:
    """Accumulates parsed lines; converts feature tokens to arrays in bulk, one chunk at a time."""

    def __init__(self, where: str, num_features: int, num_labels: int):
        self.where = where
        self.num_features = num_features
        self.num_labels = num_labels
        self.label_tokens: list[bytes] = []
        self.label_counts: list[int] = []
        self.feature_counts: list[int] = []
        self.chunk: list[bytes] = []
        self.chunk_start_line = 2
        self.chunk_tokens = 0
        self.feature_ids: list[np.ndarray] = []
        self.feature_values: list[np.ndarray] = []

    def error(self, lineno: int, message: str) -> ValueError:
        return ValueError(f"{self.where}: line {lineno}: {message}")

    def add(self, lineno: int, line: bytes) -> None:
        body = line.strip()
        labels = features = b""
        if body:
            parts = body.split(None, 1)
            if b":" in parts[0]:
                features = body
            else:
                labels = parts[0]
                features = parts[1] if len(parts) == 2 else b""
        if labels and _LABELS_RE.fullmatch(labels) is None:
            bad = next((t for t in labels.split(b",") if _ID_RE.fullmatch(t) is None), labels)
            raise self.error(lineno, f"bad label id {bad.decode(errors='replace')!r} (want a non-negative int)")
        if features and _FEATURES_RE.fullmatch(features) is None:
            raise self.error(lineno, self._diagnose_features(features))
        if labels:
            self.label_tokens.append(labels)
            self.label_counts.append(labels.count(b",") + 1)
        else:
            self.label_counts.append(0)
        count = features.count(b":")
        self.feature_counts.append(count)
        self.chunk.append(features)
        self.chunk_tokens += count
        if self.chunk_tokens >= _CHUNK_TOKENS:
            self.flush(lineno + 1)

    @staticmethod
    def _diagnose_features(features: bytes) -> str:
        for token in features.split():
            pieces = token.split(b":")
            if len(pieces) != 2 or _ID_RE.fullmatch(pieces[0]) is None or not pieces[1] or b"," in pieces[1]:
                return f"bad feature:value token {token.decode(errors='replace')!r}"
        return f"bad features {features.decode(errors='replace')!r}"  # pragma: no cover - the loop always finds one

    def flush(self, next_line: int) -> None:
        """Converts the pending feature tokens (lines `chunk_start_line ..`) to arrays and checks them."""
        if self.chunk_tokens:
            tokens = b" ".join(self.chunk).replace(b":", b" ").split()
            ids = np.fromiter(map(int, tokens[0::2]), dtype=np.int64, count=self.chunk_tokens)
            try:
                values = np.fromiter(map(float, tokens[1::2]), dtype=np.float64, count=self.chunk_tokens)
            except ValueError:
                values = self._values_slowly()
            with np.errstate(over="ignore"):
                values32 = values.astype(np.float32)  # overflow to inf is reported below
            counts = np.asarray(self.feature_counts[-len(self.chunk) :], dtype=np.int64)
            self._check_range(ids, counts, self.num_features, "feature id")
            bad = np.flatnonzero(~np.isfinite(values32))
            if bad.size:
                lineno = self._line_of(bad[0], counts)
                raise self.error(lineno, f"non-finite feature value (as float32) {values[bad[0]]!r}")
            self.feature_ids.append(ids)
            self.feature_values.append(values32)
        self.chunk = []
        self.chunk_tokens = 0
        self.chunk_start_line = next_line

    def _values_slowly(self) -> np.ndarray:
        values = []
        for offset, features in enumerate(self.chunk):
            for token in features.split():
                text = token.rpartition(b":")[2]
                try:
                    values.append(float(text))
                except ValueError:
                    raise self.error(
                        self.chunk_start_line + offset, f"bad feature value {text.decode(errors='replace')!r}"
                    ) from None
        return np.asarray(values, dtype=np.float64)

    def _line_of(self, position: int, counts: np.ndarray) -> int:
        """Line number of the `position`-th token of the current chunk, given its per-line token counts."""
        return self.chunk_start_line + int(np.searchsorted(np.cumsum(counts), position, side="right"))

    def _check_range(self, ids: np.ndarray, counts: np.ndarray, size: int, what: str) -> None:
        bad = np.flatnonzero(ids >= size)
        if bad.size:
            lineno = self._line_of(bad[0], counts)
            raise self.error(lineno, f"{what} {int(ids[bad[0]])} out of range [0, {size})")

    def finish(self) -> MultiLabelDataset:
        self.flush(0)
        n = len(self.label_counts)
        label_counts = np.asarray(self.label_counts, dtype=np.int64)
        feature_counts = np.asarray(self.feature_counts, dtype=np.int64)
        if self.label_tokens:
            label_ids = np.fromiter(map(int, b",".join(self.label_tokens).split(b",")), dtype=np.int64)
        else:
            label_ids = np.zeros(0, dtype=np.int64)
        self.chunk_start_line = 2
        self._check_range(label_ids, label_counts, self.num_labels, "label id")
        feature_ids = np.concatenate([np.zeros(0, np.int64), *self.feature_ids])
        feature_values = np.concatenate([np.zeros(0, np.float32), *self.feature_values])
        features = self._build(feature_ids, feature_values, feature_counts, self.num_features, "feature id")
        labels = self._build(label_ids, np.ones(label_ids.size, np.float32), label_counts, self.num_labels, "label id")
        assert features.shape[0] == labels.shape[0] == n
        return MultiLabelDataset(features, labels, self.num_features, self.num_labels)

    def _build(self, ids, values, counts, width, what) -> sp.csr_matrix:
        indptr = np.concatenate([[0], np.cumsum(counts)])
        rows = np.repeat(np.arange(counts.size), counts)
        same_row = rows[1:] == rows[:-1]
        if np.any(same_row & (ids[1:] <= ids[:-1])):  # not already ascending within every row
            order = np.lexsort((ids, rows))
            ids, values = ids[order], values[order]
        dup = np.flatnonzero(same_row & (ids[1:] == ids[:-1]))
        if dup.size:
            raise self.error(2 + int(rows[dup[0]]), f"duplicate {what} {int(ids[dup[0]])}")
        index_dtype = np.int32 if max(width, ids.size) < 2**31 else np.int64
        matrix = sp.csr_matrix(
            (values, ids.astype(index_dtype), indptr.astype(index_dtype)), shape=(counts.size, width), copy=False
        )
        matrix.has_sorted_indices = True
        return matrix


def _parse_header(line: bytes | None, where: str) -> tuple[int, int, int]:
    if line is None or not line.strip():
        raise ValueError(f"{where}: line 1: missing header 'num_points num_features num_labels'")
    parts = line.split()
    if len(parts) != 3 or not all(_ID_RE.fullmatch(p) for p in parts):
        shown = line.strip()[:80].decode(errors="replace")
        raise ValueError(f"{where}: line 1: header must be 'num_points num_features num_labels', got {shown!r}")
    n, d, num_labels = (int(p) for p in parts)
    if d < 1 or num_labels < 1:
        raise ValueError(f"{where}: line 1: header needs num_features >= 1 and num_labels >= 1, got {d} {num_labels}")
    return n, d, num_labels


def read_xc_repository(path: str | os.PathLike) -> MultiLabelDataset:
    """Reads a dataset in the Extreme Classification Repository sparse text format.

    The first line is the header `num_points num_features num_labels`. Each of the next `num_points`
    lines is `l1,l2,...,lm f1:v1 f2:v2 ...`: comma-separated zero-based label ids, then space-separated
    zero-based `feature:value` pairs. A line may have no labels (it then starts with a space or with a
    `feature:value` pair), no features, or neither (an empty line). Lines after the last data line must be
    blank. The file is read line by line; feature tokens are converted in bulk, about a million at a time.

    Args:
        path: The file to read.

    Returns:
        A `MultiLabelDataset` with float32 features (values rounded to float32) and float32 one-valued
        labels, both canonical CSR.

    Raises:
        ValueError: If `path` is not a readable file, or the file is malformed; the message gives the
            (1-based) line number: a missing or bad header, fewer or more data lines than the header says,
            a bad label id (not a non-negative int, or >= num_labels), a bad `feature:value` token, a
            feature id >= num_features, a value that is not a finite float32, or a repeated id on a line.
    """
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path must be an existing file, got {str(path)!r}")
    where = str(path)
    with open(path, "rb") as f:
        n, d, num_labels = _parse_header(f.readline() or None, where)
        parser = _Parser(where, d, num_labels)
        lineno = 1
        for lineno, line in enumerate(f, start=2):
            if lineno - 1 > n:
                if line.strip():
                    raise ValueError(f"{where}: line {lineno}: more data lines than the header's num_points={n}")
                continue
            parser.add(lineno, line)
        if len(parser.label_counts) < n:
            raise ValueError(
                f"{where}: line {lineno + 1}: file ends after {len(parser.label_counts)} data lines, "
                f"the header promised num_points={n}"
            )
    return parser.finish()


def write_xc_repository(dataset: MultiLabelDataset, path: str | os.PathLike) -> None:
    """Writes `dataset` in the Extreme Classification Repository sparse text format, atomically.

    The file is written to a temporary file in the same directory, then moved over `path` with
    `os.replace`, so readers never see a partial file. Feature values are written with 9 significant digits,
    which always read back to the same float32 (explicitly stored zeros included), ids in ascending order; a point
    without labels gets a line starting with a space. `read_xc_repository` of the result reproduces the features
    exactly and labels as one-valued float32. Names are not part of the format and are not written.

    Args:
        dataset: The `MultiLabelDataset` to write.
        path: Destination file; its directory must exist.

    Raises:
        ValueError: If `dataset` is not a `MultiLabelDataset`, or `path` is not a path in an existing directory.
    """
    if not isinstance(dataset, MultiLabelDataset):
        raise ValueError(f"dataset must be a MultiLabelDataset, got {type(dataset).__name__}")
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"path must be in an existing directory, got {str(path)!r}")
    features, labels = dataset.features, dataset.labels
    feature_ids, values = features.indices.tolist(), features.data.tolist()  # float32 -> float exactly
    label_ids = [str(i) for i in labels.indices.tolist()]
    fptr, lptr = features.indptr.tolist(), labels.indptr.tolist()
    pair = "{}:{:.9g}".format  # 9 significant digits always read back to the same float32
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii", newline="\n") as f:
            f.write(f"{dataset.num_points} {dataset.num_features} {dataset.num_labels}\n")
            lines = []
            for i in range(dataset.num_points):
                line = ",".join(label_ids[lptr[i] : lptr[i + 1]])
                a, b = fptr[i], fptr[i + 1]
                if b > a:
                    line += " " + " ".join(map(pair, feature_ids[a:b], values[a:b]))
                lines.append(line)
                if len(lines) >= 8192:
                    f.write("\n".join(lines) + "\n")
                    lines = []
            if lines:
                f.write("\n".join(lines) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------------------------
# A long-tailed task from the standard library's source
# --------------------------------------------------------------------------------------------------------------

_NAME_PART_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_WORD_RE = re.compile(r"[a-z0-9]+")
_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)


def _name_tokens(name: str) -> list[str]:
    """`getHTTPResponse_code2` -> ['get', 'http', 'response', 'code', '2'] (underscore and camelCase split)."""
    return [part.lower() for part in _NAME_PART_RE.findall(name)]


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every (qualified name, node) function or method definition in `tree`, in source order."""
    found = []
    stack = [(tree, "")]
    while stack:
        node, prefix = stack.pop()
        children = []
        for child in ast.iter_child_nodes(node):
            if isinstance(child, _FUNCTION_NODES):
                qualname = prefix + child.name
                found.append((qualname, child))
                children.append((child, qualname + ".<locals>."))
            elif isinstance(child, ast.ClassDef):
                children.append((child, prefix + child.name + "."))
            else:
                children.append((child, prefix))
        stack.extend(reversed(children))
    found.sort(key=lambda item: (item[1].lineno, item[1].col_offset))
    return found


def _body_identifiers(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names (`ast.Name.id`) and attributes (`ast.Attribute.attr`) used anywhere in the function's body."""
    found = set()
    for statement in node.body:
        for sub in ast.walk(statement):
            if isinstance(sub, ast.Name):
                found.add(sub.id)
            elif isinstance(sub, ast.Attribute):
                found.add(sub.attr)
    return found


def _file_examples(root: Path, relpath: str) -> list[tuple[str, list[str], set[str]]]:
    """(point name, input tokens, body identifiers) of each function in a file; [] if it does not parse."""
    try:
        source = (root / relpath).read_bytes()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for invalid escapes in old sources
            tree = ast.parse(source, filename=relpath)
    except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError, OSError):
        return []
    examples = []
    for qualname, node in _functions(tree):
        tokens = _name_tokens(node.name)
        doc = ast.get_docstring(node, clean=False)
        if doc:
            tokens.extend(_WORD_RE.findall(doc.lower()))
        examples.append((f"{relpath}:{node.lineno}:{qualname}", tokens, _body_identifiers(node)))
    return examples


def _top_by_frequency(counter: Counter, size: int) -> list[str]:
    """The `size` most frequent keys, ties broken alphabetically."""
    return sorted(counter, key=lambda key: (-counter[key], key))[:size]


def _split_stdlib_files(root: Path, seed: int, test_fraction: float, max_files: int | None):
    """Deterministic split of the stdlib `.py` files (tests excluded) by a hash of (seed, path)."""
    keyed = sorted((_unit_hash(seed, relpath), relpath) for relpath, _ in _list_sources(root, include_tests=False))
    test_all = [relpath for u, relpath in keyed if u < test_fraction]
    train_all = [relpath for u, relpath in keyed if u >= test_fraction]
    if max_files is not None:
        num_test = max(1, round(test_fraction * max_files))
        test_all, train_all = test_all[:num_test], train_all[: max_files - num_test]
    return sorted(train_all), sorted(test_all)


def _tfidf_rows(rows: list[Counter], idf: np.ndarray, num_features: int) -> sp.csr_matrix:
    """L2-normalised rows of log(1 + count) * idf from per-row {feature id: count}."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    cols = np.fromiter((c for r in rows for c in sorted(r)), dtype=np.int64, count=int(indptr[-1]))
    counts = np.fromiter((r[c] for r in rows for c in sorted(r)), dtype=np.float64, count=int(indptr[-1]))
    values = np.log1p(counts) * idf[cols]
    norms = np.sqrt(np.add.reduceat(values**2, indptr[:-1])) if values.size else np.zeros(0)
    values /= np.repeat(norms, np.diff(indptr))
    return sp.csr_matrix(
        (values.astype(np.float32), cols.astype(np.int32), indptr.astype(np.int32)), shape=(len(rows), num_features)
    )


def _label_rows(rows: list[list[int]], num_labels: int) -> sp.csr_matrix:
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(r) for r in rows])
    cols = np.fromiter((c for r in rows for c in r), dtype=np.int32, count=int(indptr[-1]))
    return sp.csr_matrix((np.ones(cols.size, np.float32), cols, indptr.astype(np.int32)), shape=(len(rows), num_labels))


def load_stdlib_identifier_task(
    *,
    num_labels: int = 2048,
    num_features: int = 4096,
    seed: int = 0,
    test_fraction: float = 0.2,
    max_files: int | None = None,
    exclude_labels: tuple[str, ...] = ("self", "cls"),
) -> tuple[MultiLabelDataset, MultiLabelDataset]:
    """A long-tailed extreme multi-label task from the running Python's standard library source (offline).

    One point per function or method definition (nested ones included) in the stdlib's `.py` files
    (test suites, `site-packages` and `__pycache__` excluded; files that fail to parse are skipped):

    * **Input**: the words of the function's name (split on underscores and camelCase) and of its
      docstring (lower-cased ASCII alphanumeric runs), as a bag of words over a vocabulary of the
      `num_features` tokens found in the most training points (ties alphabetical). Weights are
      `log(1 + count) * idf` with `idf = ln((1 + N) / (1 + df)) + 1` from the training points, rows
      L2-normalised.
    * **Labels**: the identifiers the function body uses (`ast.Name` ids and `ast.Attribute` attrs),
      restricted to the `num_labels` found in the most training points (ties alphabetical). The method
      receivers `self` and `cls` are excluded by default: `self` alone occurs in ~70% of functions and would
      make P@1 a constant-predictor score.

    Files are split by a hash of `(seed, path)`: a file is a test file when its hash is below
    `test_fraction`, so the split of a file never depends on `max_files`. Vocabularies are chosen on the
    training points only: first the features; points without a known feature are dropped; then the labels
    (so every label has at least one training point); points without a known label are dropped. Nothing is
    cached on disk. The full stdlib takes a few seconds.

    Args:
        num_labels: Maximum number of labels L (>= 1); fewer if fewer distinct identifiers occur.
        num_features: Maximum number of features D (>= 1); fewer if fewer distinct tokens occur.
        seed: Non-negative int selecting the file split.
        test_fraction: Expected fraction of files in the test split, in (0, 1).
        max_files: Optional cap (>= 2) on the number of files: `max(1, round(test_fraction * max_files))`
            test files and the rest training files, each taken in hash order.
        exclude_labels: Identifiers never used as labels.

    Returns:
        `(train, test)` `MultiLabelDataset`s sharing the vocabularies (`feature_names`, `label_names`);
        `point_names` are `"relpath:lineno:qualname"`. `train.label_counts` gives each label's training
        frequency N_l.

    Raises:
        ValueError: If an argument is invalid (the message names it), or a split ends up without points.
    """
    num_labels = check_int(num_labels, "num_labels", minimum=1)
    num_features = check_int(num_features, "num_features", minimum=1)
    seed = check_seed(seed)
    test_fraction = check_fraction(test_fraction, "test_fraction", allow_zero=False)
    max_files = check_optional_int(max_files, "max_files", minimum=2)
    if isinstance(exclude_labels, str) or not all(isinstance(e, str) for e in exclude_labels):
        raise ValueError(f"exclude_labels must be a sequence of identifier strings, got {exclude_labels!r}")
    excluded = frozenset(exclude_labels)

    root = stdlib_root()
    train_files, test_files = _split_stdlib_files(root, seed, test_fraction, max_files)
    train_examples = [ex for relpath in train_files for ex in _file_examples(root, relpath)]
    test_examples = [ex for relpath in test_files for ex in _file_examples(root, relpath)]

    token_df = Counter(token for _, tokens, _ in train_examples for token in set(tokens))
    vocab = _top_by_frequency(token_df, num_features)
    token_id = {token: i for i, token in enumerate(vocab)}

    def featurise(examples):
        out = []
        for name, tokens, identifiers in examples:
            counts = Counter(token_id[t] for t in tokens if t in token_id)
            if counts:
                out.append((name, counts, identifiers))
        return out

    train_examples, test_examples = featurise(train_examples), featurise(test_examples)
    label_df = Counter(ident for _, _, identifiers in train_examples for ident in identifiers if ident not in excluded)
    label_vocab = _top_by_frequency(label_df, num_labels)
    label_id = {ident: i for i, ident in enumerate(label_vocab)}

    def labelise(examples):
        out = []
        for name, counts, identifiers in examples:
            ids = sorted(label_id[i] for i in identifiers if i in label_id)
            if ids:
                out.append((name, counts, ids))
        return out

    train_examples, test_examples = labelise(train_examples), labelise(test_examples)
    if not train_examples or not test_examples:
        which = "training" if not train_examples else "test"
        raise ValueError(f"the {which} split has no points: raise max_files={max_files} or change test_fraction")

    num_train = len(train_examples)
    df = np.bincount([c for _, counts, _ in train_examples for c in counts], minlength=len(vocab))
    idf = np.log((1.0 + num_train) / (1.0 + df)) + 1.0

    def build(examples):
        return MultiLabelDataset(
            features=_tfidf_rows([counts for _, counts, _ in examples], idf, len(vocab)),
            labels=_label_rows([ids for _, _, ids in examples], len(label_vocab)),
            num_features=len(vocab),
            num_labels=len(label_vocab),
            feature_names=tuple(vocab),
            label_names=tuple(label_vocab),
            point_names=tuple(name for name, _, _ in examples),
        )

    return build(train_examples), build(test_examples)


# --------------------------------------------------------------------------------------------------------------
# Label clusters
# --------------------------------------------------------------------------------------------------------------


def _normalize_rows(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to unit L2 norm (all-zero rows stay zero); float64 CSR."""
    matrix = sp.csr_matrix(matrix, dtype=np.float64, copy=True)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel())
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(scale) @ matrix)


def label_embeddings(dataset: MultiLabelDataset) -> sp.csr_matrix:
    """PIFA label embeddings: each label's L2-normalised sum of the L2-normalised features of its points.

    Args:
        dataset: The training `MultiLabelDataset`.

    Returns:
        float32 `csr_matrix` [L, D]; rows of labels without training points are zero.

    Raises:
        ValueError: If `dataset` is not a `MultiLabelDataset`.
    """
    if not isinstance(dataset, MultiLabelDataset):
        raise ValueError(f"dataset must be a MultiLabelDataset, got {type(dataset).__name__}")
    labels = sp.csr_matrix(dataset.labels, dtype=np.float64)
    sums = sp.csr_matrix(labels.T @ _normalize_rows(dataset.features))
    return _normalize_rows(sums).astype(np.float32)


def _balanced_split(x: sp.csr_matrix, num_left: int, rng: np.random.Generator, max_iter: int) -> np.ndarray:
    """Boolean mask (exactly `num_left` True) of a balanced spherical 2-means split of the rows of `x`."""
    n = x.shape[0]
    first, second = rng.choice(n, size=2, replace=False)
    c_left = x[first].toarray().ravel()
    c_right = x[second].toarray().ravel()
    left = None
    for _ in range(max_iter):
        margin = x @ (c_left - c_right)
        order = np.argsort(-margin, kind="stable")  # the num_left rows preferring the left centre, lowest first
        new_left = np.zeros(n, dtype=bool)
        new_left[order[:num_left]] = True
        if left is not None and np.array_equal(new_left, left):
            break
        left = new_left
        c_left = np.asarray(x[left].sum(axis=0)).ravel()
        c_right = np.asarray(x[~left].sum(axis=0)).ravel()
        c_left /= max(np.linalg.norm(c_left), 1e-30)
        c_right /= max(np.linalg.norm(c_right), 1e-30)
    return left


def label_clusters(data, num_clusters: int, *, seed: int = 0, max_iter: int = 20) -> np.ndarray:
    """Balanced label clusters by recursive balanced spherical 2-means (PECOS-style hierarchical k-means).

    Label embeddings are `label_embeddings(data)` (PIFA) when `data` is a training `MultiLabelDataset`,
    otherwise the rows of `data` ([L, E], dense or sparse), L2-normalised. The clusters 0..K-1 get target
    sizes `L // K` or `L // K + 1` (the first `L % K` clusters get one more). A node owning clusters
    `[a, b)` splits its labels in two: the left half `[a, (a + b) // 2)` receives exactly as many labels as
    its clusters' target sizes add up to — the labels whose embeddings prefer the left centroid most
    (ties by lower position) — then both centroids are recomputed, up to `max_iter` times or until stable.
    Centroids start at two distinct random labels drawn from `np.random.default_rng(seed)`.

    Args:
        data: A training `MultiLabelDataset`, or a label-embedding matrix [L, E] (numpy array or scipy
            sparse) of finite values.
        num_clusters: K, in [1, L].
        seed: Non-negative int seeding the centroid initialisation; same inputs and seed, same clusters.
        max_iter: Maximum 2-means iterations per split (>= 1).

    Returns:
        int32 array [L]: the cluster of each label; every cluster has `L // K` or `L // K + 1` labels.

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    if isinstance(data, MultiLabelDataset):
        embeddings = label_embeddings(data)
    elif sp.issparse(data):
        embeddings = sp.csr_matrix(data)
    else:
        try:
            embeddings = np.asarray(data)
        except Exception as e:  # pragma: no cover - odd array-likes
            raise ValueError(f"data must be a MultiLabelDataset or an [L, E] matrix, got {type(data).__name__}") from e
        if embeddings.dtype == object or embeddings.ndim != 2:
            raise ValueError(f"data must be a MultiLabelDataset or an [L, E] matrix, got shape {embeddings.shape}")
        embeddings = sp.csr_matrix(embeddings)
    if embeddings.ndim != 2 or embeddings.shape[0] < 1:
        raise ValueError(f"data must give at least one label embedding, got shape {embeddings.shape}")
    if not (np.issubdtype(embeddings.dtype, np.floating) or np.issubdtype(embeddings.dtype, np.integer)):
        raise ValueError(f"data must be real, got dtype {embeddings.dtype}")
    if not np.all(np.isfinite(embeddings.data)):
        raise ValueError("data must be finite")
    num_labels = embeddings.shape[0]
    num_clusters = check_int(num_clusters, "num_clusters", minimum=1)
    if num_clusters > num_labels:
        raise ValueError(f"num_clusters must be <= the number of labels {num_labels}, got {num_clusters}")
    seed = check_seed(seed)
    max_iter = check_int(max_iter, "max_iter", minimum=1)

    x = _normalize_rows(embeddings)
    base, extra = divmod(num_labels, num_clusters)
    sizes = np.full(num_clusters, base, dtype=np.int64)
    sizes[:extra] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rng = np.random.default_rng(seed)
    clusters = np.empty(num_labels, dtype=np.int32)
    stack = [(np.arange(num_labels), 0, num_clusters)]
    while stack:
        members, a, b = stack.pop()
        if b - a == 1:
            clusters[members] = a
            continue
        mid = (a + b) // 2
        left = _balanced_split(x[members], int(starts[mid] - starts[a]), rng, max_iter)
        stack.append((members[~left], mid, b))
        stack.append((members[left], a, mid))
    return clusters


def cluster_targets(labels_csr, clusters, num_clusters: int) -> sp.csr_matrix:
    """Multi-hot cluster targets: point i has cluster c iff one of its positive labels is in cluster c.

    Args:
        labels_csr: Labels [N, L], scipy sparse (any stored non-zero entry is a positive label).
        clusters: Integer array [L] of cluster ids in [0, num_clusters).
        num_clusters: K (>= 1).

    Returns:
        float32 `csr_matrix` [N, K] of ones, canonical (sorted indices, no duplicates).

    Raises:
        ValueError: If an argument is invalid (the message names it).
    """
    if not sp.issparse(labels_csr) or labels_csr.ndim != 2:
        raise ValueError(f"labels_csr must be a 2-D scipy sparse matrix, got {type(labels_csr).__name__}")
    num_clusters = check_int(num_clusters, "num_clusters", minimum=1)
    clusters = np.asarray(clusters)
    num_points, num_labels = labels_csr.shape
    if clusters.shape != (num_labels,) or not np.issubdtype(clusters.dtype, np.integer):
        raise ValueError(
            f"clusters must be an integer array of shape ({num_labels},), got {clusters.dtype} {clusters.shape}"
        )
    if clusters.size and (clusters.min() < 0 or clusters.max() >= num_clusters):
        raise ValueError(f"clusters must lie in [0, num_clusters={num_clusters})")
    labels = sp.csr_matrix(labels_csr, copy=True)
    labels.eliminate_zeros()
    rows = np.repeat(np.arange(num_points), np.diff(labels.indptr))
    out = sp.csr_matrix(
        (np.ones(rows.size, np.float32), (rows, clusters[labels.indices])), shape=(num_points, num_clusters)
    )
    out.sum_duplicates()
    out.data[:] = 1.0
    return out
