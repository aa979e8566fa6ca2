"""The paper's medical datasets from user-supplied CSV files, turned into patient-similarity graphs.

* Haberman's survival (UCI `haberman.data`): age, operation year, positive axillary nodes, status (1 = survived
  5 years or longer, 2 = died within 5 years). Edges: |nodes_i - nodes_j| < 2; features: age and year.
* Pima Indians Diabetes (UCI `pima-indians-diabetes.data` or Kaggle `diabetes.csv`): 8 features and Outcome.
  Edges: |glucose_i - glucose_j| < 4; features: the other 7.

Thresholds follow the public Meta-GCN / RA-GCN code. Labels are 0/1 with the minority class as 1 (died,
diabetic). A header row is optional; with one, the columns are found by name.
"""

import csv
import os

import numpy as np

from ._build import NodeGraph, similarity_graph

__all__ = ["HABERMAN_COLUMNS", "PIMA_COLUMNS", "load_haberman_csv", "load_pima_csv"]

HABERMAN_COLUMNS = ("age", "year", "nodes", "status")
PIMA_COLUMNS = (
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
    "Outcome",
)


def _read_table(path, columns: tuple[str, ...]) -> np.ndarray:
    """Reads a numeric CSV with len(columns) columns, with or without a header; returns it in `columns` order."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such CSV file: {path}")
    with open(path, newline="") as f:
        rows = [[cell.strip() for cell in row] for row in csv.reader(f) if row and any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path} is empty")
    order, expected = list(range(len(columns))), len(columns)
    try:
        [float(c) for c in rows[0]]
    except ValueError:  # a header row: map columns by name
        header = [h.lower() for h in rows.pop(0)]
        missing = [c for c in columns if c.lower() not in header]
        if missing:
            raise ValueError(f"{path}: the header lacks column(s) {missing}") from None
        order, expected = [header.index(c.lower()) for c in columns], len(header)
    if not rows:
        raise ValueError(f"{path} has a header but no data rows")
    width = sorted({len(r) for r in rows})
    if width != [expected]:
        raise ValueError(f"{path}: expected {expected} columns {columns}, got rows of {width} columns")
    try:
        table = np.asarray([[float(r[i]) for i in order] for r in rows], dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{path}: non-numeric value ({err})") from None
    if not np.all(np.isfinite(table)):
        raise ValueError(f"{path}: missing or non-finite values")
    return table


def load_haberman_csv(path, *, threshold: float = 2.0) -> NodeGraph:
    """Haberman's survival graph: 306 patients, edge when positive axillary nodes differ by < `threshold`.

    Labels: 0 = survived >= 5 years (status 1), 1 = died within 5 years (status 2, the 26.5% minority).
    """
    table = _read_table(path, HABERMAN_COLUMNS)
    status = table[:, 3]
    if not np.all(np.isin(status, (1, 2))):
        raise ValueError(f"{path}: survival status must be 1 or 2, got {sorted(set(status.tolist()))}")
    labels = (status == 2).astype(np.int32)
    return similarity_graph(
        table[:, :3], labels, edge_feature=2, threshold=threshold, name="haberman", feature_names=HABERMAN_COLUMNS[:3]
    )


def load_pima_csv(path, *, threshold: float = 4.0) -> NodeGraph:
    """Pima Indians Diabetes graph: 768 patients, edge when glucose differs by < `threshold`, glucose dropped.

    Labels: Outcome (1 = diabetic, the 34.9% minority).
    """
    table = _read_table(path, PIMA_COLUMNS)
    outcome = table[:, 8]
    if not np.all(np.isin(outcome, (0, 1))):
        raise ValueError(f"{path}: Outcome must be 0 or 1, got {sorted(set(outcome.tolist()))}")
    return similarity_graph(
        table[:, :8],
        outcome.astype(np.int32),
        edge_feature=1,
        threshold=threshold,
        name="pima_diabetes",
        feature_names=PIMA_COLUMNS[:8],
    )
