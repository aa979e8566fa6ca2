"""Tests for the XMC data layer: repository format, the stdlib identifier task and balanced label clusters."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from jaxsparse.data._code import _unit_hash
from jaxsparse.xmc import _data
from jaxsparse.xmc._data import (
    MultiLabelDataset,
    _file_examples,
    cluster_targets,
    label_clusters,
    label_embeddings,
    load_stdlib_identifier_task,
    read_xc_repository,
    write_xc_repository,
)

# ----------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------


def _random_csr(rng, n, d, max_per_row, values):
    counts = rng.integers(0, max_per_row + 1, size=n)
    rows = np.repeat(np.arange(n), counts)
    cols = rng.integers(0, d, size=rows.size)
    m = sp.csr_matrix((values(rows.size), (rows, cols)), shape=(n, d))
    m.sum_duplicates()
    return m


def _random_dataset(seed=0, n=300, d=50, num_labels=30) -> MultiLabelDataset:
    rng = np.random.default_rng(seed)
    x = _random_csr(
        rng, n, d, 8, lambda s: (rng.standard_normal(s) * 10.0 ** rng.integers(-30, 30, s)).astype(np.float32)
    )
    y = _random_csr(rng, n, num_labels, 4, lambda s: np.ones(s, np.float32))
    y.data[:] = 1.0
    return MultiLabelDataset(x, y, d, num_labels)


def _assert_same_matrix(a: sp.csr_matrix, b: sp.csr_matrix):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data.view(np.uint8), b.data.view(np.uint8))  # bit-exact (incl. -0.0)


def _write(tmp_path: Path, text: str, name="data.txt") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


# ----------------------------------------------------------------------------------------------------------
# MultiLabelDataset
# ----------------------------------------------------------------------------------------------------------


def test_dataset_normalises_inputs_and_counts():
    x = sp.coo_matrix(np.array([[0, 2.0, 0], [1.0, 0, 0]]))
    y = sp.csr_matrix(np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=np.float64))
    y_zero = y.copy()
    y_zero.data[0] = 0.0  # an explicitly stored zero is not a label
    ds = MultiLabelDataset(x, y, 3, 4, label_names=("a", "b", "c", "d"))
    assert isinstance(ds.features, sp.csr_matrix) and ds.features.dtype == np.float32
    assert isinstance(ds.labels, sp.csr_matrix) and ds.labels.dtype == np.float32
    assert ds.num_points == 2
    np.testing.assert_array_equal(ds.label_counts, [1, 0, 1, 0])
    np.testing.assert_array_equal(ds.labels_per_point, [2, 0])
    ds2 = MultiLabelDataset(x, y_zero, 3, 4)
    np.testing.assert_array_equal(ds2.label_counts, [0, 0, 1, 0])
    assert MultiLabelDataset(x, y.astype(bool), 3, 4).labels.dtype == np.bool_


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": np.zeros((2, 3))}, "features"),
        ({"labels": np.zeros((2, 4))}, "labels"),
        ({"num_features": 4}, "num_features"),
        ({"num_labels": 0}, "num_labels"),
        ({"labels": sp.csr_matrix((3, 4))}, "same rows"),
        ({"features": sp.csr_matrix(np.array([[np.inf, 0, 0], [0, 0, 0]]))}, "finite"),
        ({"label_names": ("a",)}, "label_names"),
        ({"feature_names": "abc"}, "feature_names"),
        ({"point_names": ("p", 1)}, "point_names"),
    ],
)
def test_dataset_rejects_bad_fields(kwargs, match):
    base = {"features": sp.csr_matrix((2, 3)), "labels": sp.csr_matrix((2, 4)), "num_features": 3, "num_labels": 4}
    with pytest.raises(ValueError, match=match):
        MultiLabelDataset(**(base | kwargs))


# ----------------------------------------------------------------------------------------------------------
# Extreme Classification Repository format
# ----------------------------------------------------------------------------------------------------------


def test_read_hand_written_file(tmp_path):
    text = (
        "6 5 4\n"
        "0,3 0:1.5 4:-2\n"  # labels and features
        " 1:0.25\n"  # no labels (leading space)
        "2\n"  # labels only
        "\n"  # neither
        "1,0\t3:1e-3  2:7\r\n"  # unsorted ids, tab / double space, CRLF
        "2:1 0:0\n"  # no labels, no leading space; explicit zero value
        "\n\n"  # trailing blank lines are allowed
    )
    ds = read_xc_repository(_write(tmp_path, text))
    assert (ds.num_points, ds.num_features, ds.num_labels) == (6, 5, 4)
    expected_x = np.zeros((6, 5), np.float32)
    expected_x[0, [0, 4]] = [1.5, -2]
    expected_x[1, 1] = 0.25
    expected_x[4, [3, 2]] = [np.float32(1e-3), 7]
    expected_x[5, 2] = 1
    expected_y = np.zeros((6, 4), np.float32)
    expected_y[0, [0, 3]] = 1
    expected_y[2, 2] = 1
    expected_y[4, [0, 1]] = 1
    np.testing.assert_array_equal(ds.features.toarray(), expected_x)
    np.testing.assert_array_equal(ds.labels.toarray(), expected_y)
    assert ds.features.nnz == 7 and ds.features[5, 0] == 0  # the explicit 0:0 is kept (2 + 1 + 2 + 2)
    assert ds.features.has_canonical_format and ds.labels.has_canonical_format


def test_round_trip_is_exact(tmp_path):
    ds = _random_dataset()
    assert np.any(ds.labels_per_point == 0) and np.any(np.diff(ds.features.indptr) == 0)
    both_empty = (ds.labels_per_point == 0) & (np.diff(ds.features.indptr) == 0)
    assert both_empty.any()
    path = tmp_path / "rt.txt"
    write_xc_repository(ds, path)
    back = read_xc_repository(path)
    assert (back.num_points, back.num_features, back.num_labels) == (ds.num_points, ds.num_features, ds.num_labels)
    _assert_same_matrix(back.features, ds.features)
    _assert_same_matrix(back.labels, ds.labels)
    # A second round trip gives the same bytes.
    write_xc_repository(back, tmp_path / "rt2.txt")
    assert (tmp_path / "rt2.txt").read_bytes() == path.read_bytes()


def test_round_trip_special_values(tmp_path):
    values = np.array([0.0, -0.0, 1e-45, 3.4028235e38, -1.1754944e-38, 0.1, 1 / 3, 123456789.0], np.float32)
    x = sp.csr_matrix((values, np.arange(values.size), [0, values.size]), shape=(1, values.size))
    ds = MultiLabelDataset(x, sp.csr_matrix((1, 2), dtype=np.float32), values.size, 2)
    write_xc_repository(ds, tmp_path / "s.txt")
    lines = (tmp_path / "s.txt").read_text().split("\n")
    assert lines[0] == f"1 {values.size} 2" and lines[1].startswith(" 0:0 1:-0 ")
    _assert_same_matrix(read_xc_repository(tmp_path / "s.txt").features, ds.features)


def test_write_is_atomic_and_validates(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old contents")
    write_xc_repository(_random_dataset(n=20), path)
    assert read_xc_repository(path).num_points == 20
    assert sorted(os.listdir(tmp_path)) == ["out.txt"]  # no temporary file left behind
    with pytest.raises(ValueError, match="dataset"):
        write_xc_repository("not a dataset", path)
    with pytest.raises(ValueError, match="path"):
        write_xc_repository(_random_dataset(n=2), tmp_path / "missing" / "x.txt")
    with pytest.raises(ValueError, match="path"):
        write_xc_repository(_random_dataset(n=2), 3)


def test_read_rejects_missing_file(tmp_path):
    with pytest.raises(ValueError, match="path"):
        read_xc_repository(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="path"):
        read_xc_repository(None)


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("", 1, "missing header"),
        ("\n0 1:1\n", 1, "missing header"),
        ("2 3\n", 1, "header"),
        ("x 3 4\n", 1, "header"),
        ("1 3 4 5\n0 1:1\n", 1, "header"),
        ("-1 3 4\n", 1, "header"),
        ("1 0 4\n\n", 1, "num_features"),
        ("2 3 4\n0 1:1\n", 3, "file ends after 1"),
        ("3 3 4\n", 2, "file ends after 0"),
        ("1 3 4\n0 1:1\n1 2:1\n", 3, "more data lines"),
        ("1 3 4\n0 1:1\n\n1 2:1\n", 4, "more data lines"),
        ("2 3 4\n0 1:1\n4 2:1\n", 3, "label id 4 out of range"),
        ("2 3 4\n0 1:1\n-1 2:1\n", 3, "bad label id '-1'"),
        ("2 3 4\n0 1:1\na,1 2:1\n", 3, "bad label id 'a'"),
        ("2 3 4\n0 1:1\n1, 2:1\n", 3, "bad label id"),
        ("2 3 4\n0 1:1\n1.5 2:1\n", 3, "bad label id"),
        ("2 3 4\n1,1 1:1\n\n", 2, "duplicate label id 1"),
        ("2 3 4\n0 3:1\n\n", 2, "feature id 3 out of range"),
        ("2 3 4\n\n0 -1:1\n", 3, "bad feature:value token '-1:1'"),
        ("2 3 4\n\n0 1:2:3\n", 3, "bad feature:value token '1:2:3'"),
        ("2 3 4\n\n0 1:\n", 3, "bad feature:value token '1:'"),
        ("2 3 4\n\n0 :5\n", 3, "bad feature:value token ':5'"),
        ("2 3 4\n\n0 1:1 2\n", 3, "bad feature:value token '2'"),
        ("2 3 4\n\n0 x:1\n", 3, "bad feature:value token 'x:1'"),
        ("2 3 4\n0 1:1\n0 1:x\n", 3, "bad feature value 'x'"),
        ("2 3 4\n0 1:1\n0 1:nan\n", 3, "non-finite"),
        ("2 3 4\n0 1:-inf\n\n", 2, "non-finite"),
        ("2 3 4\n\n0 1:1e39\n", 3, "non-finite"),
        ("2 3 4\n0 1:1 0:2 1:3\n\n", 2, "duplicate feature id 1"),
    ],
)
def test_read_rejects_malformed_with_line_number(tmp_path, text, line, fragment):
    with pytest.raises(ValueError, match=f"line {line}: ") as info:
        read_xc_repository(_write(tmp_path, text))
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("bad_line", "fragment"),
    [("0 2:x", "bad feature value"), ("0 9:1", "feature id 9 out of range"), ("7 1:1", "label id 7 out of range")],
)
def test_line_numbers_survive_chunking(tmp_path, monkeypatch, bad_line, fragment):
    """Bulk conversion runs in chunks; errors found there still point at the right line."""
    monkeypatch.setattr(_data, "_CHUNK_TOKENS", 3)
    lines = [f"{i % 4} {i % 5}:1 {5 + i % 3}:2" if i % 7 else "" for i in range(60)]
    lines[41] = bad_line
    path = _write(tmp_path, "60 9 5\n" + "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 43: ") as info:
        read_xc_repository(path)
    assert fragment in str(info.value)
    lines[41] = "1 2:0.5"
    ds = read_xc_repository(_write(tmp_path, "60 9 5\n" + "\n".join(lines) + "\n", "ok.txt"))
    assert ds.num_points == 60 and ds.features[41, 2] == 0.5


def test_read_write_speed(tmp_path):
    """A 20k-line file (about 25 features a line) reads and writes in well under a few seconds."""
    rng = np.random.default_rng(1)
    x = _random_csr(rng, 20_000, 5_000, 50, lambda s: rng.random(s).astype(np.float32))
    y = _random_csr(rng, 20_000, 1_000, 6, lambda s: np.ones(s, np.float32))
    y.data[:] = 1
    ds = MultiLabelDataset(x, y, 5_000, 1_000)
    start = time.perf_counter()
    write_xc_repository(ds, tmp_path / "big.txt")
    back = read_xc_repository(tmp_path / "big.txt")
    assert time.perf_counter() - start < 10.0
    _assert_same_matrix(back.features, ds.features)


# ----------------------------------------------------------------------------------------------------------
# stdlib identifier task
# ----------------------------------------------------------------------------------------------------------

SMALL = {"max_files": 40, "num_labels": 300, "num_features": 500}


@pytest.fixture(scope="module")
def small_task():
    return load_stdlib_identifier_task(seed=0, test_fraction=0.25, **SMALL)


def _files(ds):
    return {name.split(":")[0] for name in ds.point_names}


def test_file_examples_extracts_inputs_and_labels(tmp_path):
    (tmp_path / "mod.py").write_text(
        "class Box:\n"
        "    def getHTTPResponse_code2(self, x):\n"
        '        """Return the Code, 42 times."""\n'
        "        y = self.code + len(x)\n"
        "        def inner():\n"
        "            return os.path.join(y)\n"
        "        return inner\n"
    )
    (tmp_path / "broken.py").write_text("def f(:\n")
    examples = _file_examples(tmp_path, "mod.py")
    assert [name for name, _, _ in examples] == [
        "mod.py:2:Box.getHTTPResponse_code2",
        "mod.py:5:Box.getHTTPResponse_code2.<locals>.inner",
    ]
    _, tokens, identifiers = examples[0]
    assert tokens == ["get", "http", "response", "code", "2", "return", "the", "code", "42", "times"]
    assert identifiers == {"y", "self", "code", "len", "x", "inner", "os", "path", "join"}
    assert examples[1][1] == ["inner"] and examples[1][2] == {"os", "path", "join", "y"}
    assert _file_examples(tmp_path, "broken.py") == []


def test_stdlib_task_shapes_and_invariants(small_task):
    train, test = small_task
    assert train.num_features == test.num_features <= SMALL["num_features"]
    assert train.num_labels == test.num_labels <= SMALL["num_labels"]
    assert train.feature_names == test.feature_names and train.label_names == test.label_names
    assert len(set(train.feature_names)) == train.num_features and len(set(train.label_names)) == train.num_labels
    for ds in (train, test):
        assert ds.num_points > 0 and len(ds.point_names) == ds.num_points
        assert ds.features.dtype == np.float32 and ds.labels.dtype == np.float32
        assert np.all(np.diff(ds.features.indptr) > 0) and np.all(ds.labels_per_point > 0)
        assert np.all(ds.features.data > 0)
        norms = np.sqrt(np.asarray(ds.features.multiply(ds.features).sum(axis=1)).ravel())
        np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    counts = train.label_counts
    assert counts.min() >= 1  # every label has a training point
    # Labels are ordered by training frequency, ties alphabetically.
    keys = list(zip((-counts).tolist(), train.label_names, strict=True))
    assert keys == sorted(keys)


def test_stdlib_task_is_long_tailed(small_task):
    train, _ = small_task
    counts = np.sort(train.label_counts)[::-1]
    assert counts[0] >= 10 * np.median(counts)  # a heavy head ("self", ...)
    assert np.mean(counts < 10) > 0.5  # and a long tail of rare labels:
    assert counts[counts.size // 2 :].sum() < 0.3 * counts.sum()  # the rarer half holds under 30% of positives
    assert "self" not in train.label_names and "cls" not in train.label_names  # excluded receivers


def test_stdlib_task_split_is_by_file_and_seeded(small_task):
    train, test = small_task
    train_files, test_files = _files(train), _files(test)
    assert train_files and test_files and not train_files & test_files
    assert len(train_files | test_files) <= SMALL["max_files"]
    assert all(_unit_hash(0, f) < 0.25 for f in test_files)
    assert all(_unit_hash(0, f) >= 0.25 for f in train_files)
    other_train, _ = load_stdlib_identifier_task(seed=1, test_fraction=0.25, **SMALL)
    assert _files(other_train) != train_files


def test_stdlib_task_is_deterministic(small_task):
    again = load_stdlib_identifier_task(seed=0, test_fraction=0.25, **SMALL)
    for a, b in zip(small_task, again, strict=True):
        _assert_same_matrix(a.features, b.features)
        _assert_same_matrix(a.labels, b.labels)
        assert a.point_names == b.point_names and a.label_names == b.label_names
        assert a.feature_names == b.feature_names


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_labels": 0}, "num_labels"),
        ({"num_features": 2.5}, "num_features"),
        ({"seed": -1}, "seed"),
        ({"test_fraction": 1.0}, "test_fraction"),
        ({"test_fraction": 0.0}, "test_fraction"),
        ({"max_files": 1}, "max_files"),
    ],
)
def test_stdlib_task_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_stdlib_identifier_task(**kwargs)


# ----------------------------------------------------------------------------------------------------------
# label clusters
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("num_labels", "num_clusters"), [(100, 4), (101, 4), (37, 5), (64, 64), (10, 1), (1000, 33)])
def test_label_clusters_are_balanced_and_deterministic(num_labels, num_clusters):
    emb = np.random.default_rng(num_labels).standard_normal((num_labels, 8))
    clusters = label_clusters(emb, num_clusters, seed=3)
    assert clusters.shape == (num_labels,) and clusters.dtype == np.int32
    sizes = np.bincount(clusters, minlength=num_clusters)
    assert sizes.size == num_clusters
    assert sizes.min() >= num_labels // num_clusters and sizes.max() <= -(-num_labels // num_clusters)
    np.testing.assert_array_equal(clusters, label_clusters(emb, num_clusters, seed=3))
    np.testing.assert_array_equal(clusters, label_clusters(sp.csr_matrix(emb), num_clusters, seed=3))


def test_label_clusters_recover_separated_groups():
    rng = np.random.default_rng(0)
    centres = np.eye(4, 16) * 10.0
    group = np.repeat(np.arange(4), 25)
    emb = centres[group] + rng.standard_normal((100, 16))
    perm = rng.permutation(100)
    clusters = label_clusters(emb[perm], 4, seed=0)
    # Each cluster is exactly one group.
    pairs = {(int(c), int(g)) for c, g in zip(clusters, group[perm], strict=True)}
    assert len(pairs) == 4 and len({c for c, _ in pairs}) == 4


def test_label_clusters_from_dataset(small_task):
    train, _ = small_task
    emb = label_embeddings(train)
    assert emb.shape == (train.num_labels, train.num_features)
    np.testing.assert_allclose(np.sqrt(np.asarray(emb.multiply(emb).sum(axis=1)).ravel()), 1.0, rtol=1e-5)
    clusters = label_clusters(train, 16, seed=0)
    np.testing.assert_array_equal(clusters, label_clusters(emb, 16, seed=0))
    sizes = np.bincount(clusters, minlength=16)
    assert sizes.max() - sizes.min() <= 1


def test_label_clusters_rejects_bad_arguments():
    emb = np.ones((5, 2))
    with pytest.raises(ValueError, match="num_clusters"):
        label_clusters(emb, 6, seed=0)
    with pytest.raises(ValueError, match="num_clusters"):
        label_clusters(emb, 0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        label_clusters(emb, 2, seed=-1)
    with pytest.raises(ValueError, match="data"):
        label_clusters(np.ones(5), 2, seed=0)
    with pytest.raises(ValueError, match="data"):
        label_clusters(np.full((5, 2), np.nan), 2, seed=0)
    with pytest.raises(ValueError, match="max_iter"):
        label_clusters(emb, 2, seed=0, max_iter=0)


def test_cluster_targets():
    labels = sp.csr_matrix(np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 1, 1]], np.float32))
    clusters = np.array([0, 2, 0, 1, 2])
    targets = cluster_targets(labels, clusters, 3)
    assert isinstance(targets, sp.csr_matrix) and targets.dtype == np.float32 and targets.has_canonical_format
    np.testing.assert_array_equal(targets.toarray(), [[1, 0, 0], [0, 0, 0], [0, 1, 1]])
    # Against a dense brute force on random data.
    rng = np.random.default_rng(0)
    y = sp.random(40, 30, density=0.1, random_state=0, format="csr")
    c = rng.integers(0, 7, size=30)
    dense = np.zeros((40, 7))
    for i, j in zip(*y.nonzero(), strict=True):
        dense[i, c[j]] = 1
    np.testing.assert_array_equal(cluster_targets(y, c, 7).toarray(), dense)
    with pytest.raises(ValueError, match="clusters"):
        cluster_targets(labels, clusters[:4], 3)
    with pytest.raises(ValueError, match="clusters"):
        cluster_targets(labels, clusters, 2)
    with pytest.raises(ValueError, match="labels_csr"):
        cluster_targets(labels.toarray(), clusters, 3)
