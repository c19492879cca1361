"""Tidy result tables (docs/data-formats.md, "Result tables"): what notebooks write and what figures read.

Two long-format tables per run and cell type, under ``results/<run>/<cell_type>/``:

* ``metrics.tsv``: ``cell_type, model, marks, scheme, fold, split, n_genes, metric, value``
  (one row per metric; ``marks`` is a ``+``-joined sorted list such as ``H3K27ac+H3K4me3``);
* ``predictions.tsv.gz``: ``cell_type, model, marks, fold, gene_id, observed, predicted`` (plus
  ``label`` and ``probability`` for classifiers).

Several notebooks add rows to the same tables; :func:`append_table` replaces the rows of the same
(model, marks, scheme) so that re-running a notebook never duplicates results.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from .constants import MARKS
from .utils import atomic_path

METRIC_COLUMNS: tuple[str, ...] = (
    "cell_type",
    "model",
    "marks",
    "scheme",
    "fold",
    "split",
    "n_genes",
    "metric",
    "value",
)
PREDICTION_COLUMNS: tuple[str, ...] = ("cell_type", "model", "marks", "fold", "gene_id", "observed", "predicted")
SCHEMES: tuple[str, ...] = ("chrom_folds", "random_thirds")
SPLITS: tuple[str, ...] = ("test", "validation", "train")

METRICS_FILE = "metrics.tsv"
PREDICTIONS_FILE = "predictions.tsv.gz"


def marks_key(marks: str | Iterable[str]) -> str:
    """Canonical ``+``-joined, sorted name of a set of marks (``"H3K27ac+H3K4me3"``).

    Raises ``ValueError`` for a mark that is not one of the seven of the study.
    """
    items = [marks] if isinstance(marks, str) else list(marks)
    items = [m for item in items for m in item.split("+")]
    unknown = [m for m in items if m not in MARKS]
    if unknown:
        raise ValueError(f"Unknown histone mark(s) {unknown}; known: {', '.join(MARKS)}.")
    if len(set(items)) != len(items):
        raise ValueError(f"Mark set {items} lists a mark twice.")
    return "+".join(sorted(items))


def validate(table: pd.DataFrame, columns: Sequence[str], name: str) -> pd.DataFrame:
    """Check that ``table`` has ``columns`` (extra columns allowed) and no missing key values."""
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"The {name} table lacks column(s) {missing}; required: {list(columns)}.")
    key = [c for c in columns if c not in ("value", "observed", "predicted")]
    if table[key].isna().any().any():
        bad = table[key].isna().any()
        raise ValueError(f"The {name} table has missing values in {list(bad[bad].index)}.")
    if name == "metrics":
        bad_scheme = set(table["scheme"]) - set(SCHEMES)
        bad_split = set(table["split"]) - set(SPLITS)
        if bad_scheme or bad_split:
            raise ValueError(
                f"Unknown scheme(s) {sorted(bad_scheme)} or split(s) {sorted(bad_split)} in the metrics table."
            )
    return table


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a results table (TSV, optionally gzipped); an absent file gives an empty table."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame()
    return pd.read_csv(path, sep="\t")


def write_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a TSV atomically (a reader never sees a half-written table)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, compression="gzip" if path.suffix == ".gz" else None)
    return path


def append_table(table: pd.DataFrame, path: str | Path, replace_on: Sequence[str] = ("model", "marks")) -> pd.DataFrame:
    """Add ``table`` to the table at ``path``, replacing rows with the same ``replace_on`` values.

    Returns the combined table (also written atomically to ``path``).
    """
    old = read_table(path)
    if not old.empty:
        keys = table[list(replace_on)].drop_duplicates()
        merged = old.merge(keys, on=list(replace_on), how="left", indicator=True)
        old = old[(merged["_merge"] == "left_only").to_numpy()]
        table = pd.concat([old, table], ignore_index=True)
    write_table(table, path)
    return table


def save_metrics(table: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """Validate and merge a metrics table into ``<run_dir>/metrics.tsv``; returns the whole table."""
    validate(table, METRIC_COLUMNS, "metrics")
    return append_table(table, Path(run_dir) / METRICS_FILE, replace_on=("model", "marks", "scheme"))


def save_predictions(table: pd.DataFrame, run_dir: str | Path) -> pd.DataFrame:
    """Validate and merge a predictions table into ``<run_dir>/predictions.tsv.gz``."""
    validate(table, PREDICTION_COLUMNS, "predictions")
    return append_table(table, Path(run_dir) / PREDICTIONS_FILE, replace_on=("model", "marks"))


def load_metrics(run_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate the metrics tables of one or more ``results/<run>/<cell_type>`` folders."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    tables = [read_table(Path(d) / METRICS_FILE) for d in dirs]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(METRIC_COLUMNS))


def load_predictions(run_dirs: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Concatenate the prediction tables of one or more ``results/<run>/<cell_type>`` folders."""
    dirs = [run_dirs] if isinstance(run_dirs, (str, Path)) else list(run_dirs)
    tables = [read_table(Path(d) / PREDICTIONS_FILE) for d in dirs]
    tables = [t for t in tables if not t.empty]
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=list(PREDICTION_COLUMNS))
