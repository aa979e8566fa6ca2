"""Haberman and Pima loaders on CSV files the tests write (the paper's edge rules and label maps)."""

import numpy as np
import pytest

from jaxsparse.graph import PIMA_COLUMNS, load_haberman_csv, load_pima_csv


def _haberman_rows(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.integers(30, 80, n), rng.integers(58, 70, n), rng.integers(0, 12, n),
                            np.where(rng.uniform(size=n) < 0.3, 2, 1)])  # fmt: skip


def test_haberman_without_header(tmp_path):
    rows = _haberman_rows()
    path = tmp_path / "haberman.data"
    path.write_text("\n".join(",".join(str(v) for v in r) for r in rows) + "\n")
    g = load_haberman_csv(path)
    assert g.name == "haberman" and g.features.shape == (40, 2) and g.feature_names == ("age", "year")
    np.testing.assert_array_equal(g.labels, (rows[:, 3] == 2).astype(int))
    nodes = rows[:, 2]
    want = (np.abs(nodes[:, None] - nodes[None, :]) < 2) & ~np.eye(40, dtype=bool)
    np.testing.assert_array_equal(g.adjacency, want)
    age = rows[:, 0]
    np.testing.assert_allclose(g.features[:, 0], (age - age.mean()) / age.std(), rtol=1e-5)


def test_pima_with_and_without_header(tmp_path):
    rng = np.random.default_rng(1)
    n = 30
    table = np.column_stack([rng.integers(0, 10, (n, 1)), rng.integers(60, 200, (n, 1)), rng.normal(size=(n, 6)),
                             (rng.uniform(size=(n, 1)) < 0.35).astype(int)])  # fmt: skip
    plain = tmp_path / "pima.data"
    plain.write_text("\n".join(",".join(f"{v:g}" for v in r) for r in table))
    # A Kaggle-style file: header, columns in another order.
    order = [8, 0, 2, 1, 3, 4, 5, 6, 7]
    header = tmp_path / "diabetes.csv"
    header.write_text(",".join(PIMA_COLUMNS[i] for i in order) + "\n"
                      + "\n".join(",".join(f"{r[i]:g}" for i in order) for r in table))  # fmt: skip
    g1, g2 = load_pima_csv(plain), load_pima_csv(header)
    glucose = np.array([float(f"{v:g}") for v in table[:, 1]])
    want = (np.abs(glucose[:, None] - glucose[None, :]) < 4) & ~np.eye(n, dtype=bool)
    for g in (g1, g2):
        np.testing.assert_array_equal(g.adjacency, want)
        np.testing.assert_array_equal(g.labels, table[:, 8].astype(int))
        assert g.features.shape == (n, 7) and "Glucose" not in g.feature_names
    np.testing.assert_allclose(g1.features, g2.features, rtol=1e-6)


def test_loader_errors(tmp_path):
    bad_status = tmp_path / "h.csv"
    bad_status.write_text("30,64,1,3\n31,65,2,1\n")
    with pytest.raises(ValueError, match="status must be 1 or 2"):
        load_haberman_csv(bad_status)
    ragged = tmp_path / "r.csv"
    ragged.write_text("30,64,1,1\n31,65,2\n")
    with pytest.raises(ValueError, match="expected 4 columns"):
        load_haberman_csv(ragged)
    no_glucose = tmp_path / "p.csv"
    no_glucose.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="lacks column"):
        load_pima_csv(no_glucose)
    text = tmp_path / "t.csv"
    text.write_text("30,64,1,1\n30,64,x,1\n")
    with pytest.raises(ValueError, match="non-numeric"):
        load_haberman_csv(text)
    with pytest.raises(FileNotFoundError):
        load_haberman_csv(tmp_path / "missing.csv")
