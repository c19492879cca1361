"""Tidy result tables (docs/data-formats.md, "Result tables"): what notebooks write and what figures read.

Two long-format tables per run and cell type, under ``results/<run>/<cell_type>/``:

* ``metrics.tsv``: ``cell_type, model, marks, scheme, fold, split, n_genes, metric, value``
  (one row per metric; ``marks`` is a ``+``-joined sorted list such as ``H3K27ac+H3K4me3``);
* ``predictions.tsv.gz``: ``cell_type, model, marks, fold, gene_id, observed, predicted`` (plus
  ``label`` and ``probability`` for classifiers, and ``scheme``/``split`` where a producer has them).

Both carry a ``provenance`` column (``semi-synthetic`` or ``real``), taken from the dataset the
rows were computed on (``CellDataset.provenance``, decided by :mod:`chromexp.provenance` from the
files on disk), never from a parameter: pass ``provenance=ds.provenance`` to :func:`save_metrics`
/ :func:`save_predictions` or give the table the column. One table never mixes provenances.

No result is ever lost
----------------------
Several notebooks, and several jobs of one notebook (one per fold, per mark...), add rows to the
same tables. :func:`append_table` replaces only the rows with the same *identity*: for metrics
(cell_type, model, marks, scheme, fold, split) -- every metric of that group is replaced
together -- and for predictions (cell_type, model, marks, [scheme], fold, [split], gene_id).
Re-saving fold 2 therefore keeps folds 1, 3 and 4. The read-merge-write runs under an exclusive
``fcntl`` lock on ``<table>.lock``, so two processes appending to the same table at once both
keep their rows; the write itself stays atomic (readers never see a half-written table and need
no lock).
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pandas as pd

from .constants import MARKS, REAL, SEMI_SYNTHETIC
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
#: Columns of ``perturbation_effects.tsv.gz`` (docs/data-formats.md, "Perturbation outputs").
EFFECT_COLUMNS: tuple[str, ...] = (
    "cell_type",
    "provenance",
    "model",
    "mark",
    "gene_set",
    "gene_id",
    "region",
    "region_kind",
    "position",
    "distance",
    "chrom",
    "start",
    "end",
    "level",
    "effect",
    "effect_sd",
    "concordance",
    "n_folds",
    "baseline",
)
#: Columns of ``pcre_ablation.tsv.gz`` (docs/data-formats.md, "Perturbation outputs").
PCRE_COLUMNS: tuple[str, ...] = (
    "cell_type",
    "provenance",
    "model",
    "mark",
    "gene_set",
    "gene_id",
    "slot",
    "chrom",
    "start",
    "end",
    "frequency",
    "distance",
    "effect",
    "effect_sd",
    "concordance",
    "n_folds",
)
#: Split protocols: the study's chromosome folds, ShallowChrome's random thirds, and the
#: chromosome folds with one cell type held out of training (notebook 55, "unseen cell types").
SCHEMES: tuple[str, ...] = ("chrom_folds", "random_thirds", "leave_one_cell_type_out")
#: ``marks`` of a model that reads no histone mark (e.g. the mean of the other cell types' expression).
NO_MARKS = "none"
SPLITS: tuple[str, ...] = ("test", "validation", "train")

#: What identifies a row: a save replaces the old rows that share these values with a new row.
#: Optional key columns are used when the table has them (predictions of two split schemes).
METRIC_KEY: tuple[str, ...] = ("cell_type", "model", "marks", "scheme", "fold", "split")
PREDICTION_KEY: tuple[str, ...] = ("cell_type", "model", "marks", "fold", "gene_id")
OPTIONAL_KEY: tuple[str, ...] = ("scheme", "split")
PROVENANCES: tuple[str, ...] = (SEMI_SYNTHETIC, REAL)

METRICS_FILE = "metrics.tsv"
PREDICTIONS_FILE = "predictions.tsv.gz"


def marks_key(marks: str | Iterable[str]) -> str:
    """Canonical ``+``-joined, sorted name of a set of marks (``"H3K27ac+H3K4me3"``).

    :data:`NO_MARKS` (``"none"``) names the empty set, for models that read no mark. Raises
    ``ValueError`` for a mark that is not one of the seven of the study.
    """
    if isinstance(marks, str) and marks == NO_MARKS:
        return NO_MARKS
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
    if "provenance" in table.columns:
        bad = set(table["provenance"].astype(str)) - set(PROVENANCES)
        if bad or table["provenance"].isna().any():
            raise ValueError(
                f"The {name} table has unknown provenance value(s) {sorted(bad)}; use {list(PROVENANCES)} "
                "(from the dataset: CellDataset.provenance)."
            )
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
    """Write a TSV atomically (a reader never sees a half-written table).

    ``.gz`` tables use gzip level 1 with a zero header timestamp: the same table gives the same
    bytes, and the write is faster than the default level 9 (the formatting dominates anyway).
    """
    path = Path(path)
    gz = {"method": "gzip", "compresslevel": 1, "mtime": 0}
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, compression=gz if path.suffix == ".gz" else None)
    return path


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[None]:
    """Hold an exclusive ``fcntl`` lock on ``<path>.lock`` (blocks until other holders release it).

    Serialises read-merge-write cycles on one table across processes (and across threads holding
    separate file descriptors). The lock file is left in place: deleting it while another process
    waits on it would let a third process take a different lock.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _comparable(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Key columns as strings, so that keys read back from a TSV match keys built in memory.

    E.g. fold 2 read as the int 2 and gene ids read as str compare equal to the in-memory key.
    """
    return pd.DataFrame({c: frame[c].astype(str).to_numpy() for c in columns}, index=frame.index)


def append_table(
    table: pd.DataFrame,
    path: str | Path,
    replace_on: Sequence[str] = ("model", "marks"),
) -> pd.DataFrame:
    """Add ``table`` to the table at ``path``, replacing the old rows with the same ``replace_on`` values.

    ``replace_on`` names the columns that identify a row (or a group of rows replaced together);
    rows of the old table whose values differ from every new row's are kept. The whole
    read-merge-write holds :func:`locked`, and the write is atomic, so concurrent appenders never
    lose each other's rows.

    Raises ``ValueError`` if the old and new rows differ in ``provenance`` (a table never mixes
    semi-synthetic and real results) or lack a ``replace_on`` column.

    Returns the combined table (also written to ``path``).
    """
    path = Path(path)
    replace_on = list(replace_on)
    missing = [c for c in replace_on if c not in table.columns]
    if missing:
        raise ValueError(f"Cannot append to {path}: the new rows lack the key column(s) {missing}.")
    with locked(path):
        old = read_table(path)
        if not old.empty:
            absent = [c for c in replace_on if c not in old.columns]
            if absent:
                raise ValueError(
                    f"{path} has no column(s) {absent} (written by an older version of chromexp?); "
                    "delete it or write to a new run name."
                )
            _check_same_provenance(old, table, path)
            old_key = _comparable(old, replace_on)
            new_keys = _comparable(table, replace_on).drop_duplicates()
            merged = old_key.merge(new_keys, on=replace_on, how="left", indicator=True)
            old = old[(merged["_merge"] == "left_only").to_numpy()]
            table = pd.concat([old, table], ignore_index=True)
        write_table(table, path)
    return table


def _check_same_provenance(old: pd.DataFrame, new: pd.DataFrame, path: Path) -> None:
    if "provenance" not in new.columns:
        return
    if "provenance" not in old.columns:
        raise ValueError(
            f"{path} was written without a provenance column (an older chromexp); delete it or write to a new run name."
        )
    both = set(old["provenance"].astype(str)) | set(new["provenance"].astype(str))
    if len(both) > 1:
        raise ValueError(
            f"{path} holds {sorted(set(old['provenance']))} results and the new rows are "
            f"{sorted(set(new['provenance']))}: one table never mixes provenances; use another run name."
        )


def _with_provenance(table: pd.DataFrame, provenance: str | None, name: str) -> pd.DataFrame:
    """``table`` with a validated ``provenance`` column (from the argument or the table itself)."""
    if provenance is not None:
        if provenance not in PROVENANCES:
            raise ValueError(f"provenance must be one of {list(PROVENANCES)}, got {provenance!r}.")
        if "provenance" in table.columns and set(table["provenance"].astype(str)) != {provenance}:
            raise ValueError(
                f"The {name} table's provenance column {sorted(set(table['provenance']))} contradicts "
                f"provenance={provenance!r}."
            )
        table = table.assign(provenance=provenance)
    if "provenance" not in table.columns:
        raise ValueError(
            f"The {name} table has no provenance: pass provenance=ds.provenance (the dataset's, never a "
            "parameter's) or add a 'provenance' column."
        )
    return table


def _unique_key(table: pd.DataFrame, key: Sequence[str], name: str) -> None:
    dup = table.duplicated(list(key), keep=False)
    if dup.any():
        example = table.loc[dup, list(key)].head(3).to_dict("records")
        raise ValueError(
            f"The {name} table lists {int(dup.sum())} rows with the same identity {list(key)}, e.g. {example}."
        )


def prediction_key(table: pd.DataFrame) -> list[str]:
    """The identity columns of a predictions table.

    They are :data:`PREDICTION_KEY` plus ``scheme`` and ``split`` when the table has them.
    """
    key = list(PREDICTION_KEY)
    return key[:4] + [c for c in OPTIONAL_KEY if c in table.columns] + key[4:]


def save_metrics(table: pd.DataFrame, run_dir: str | Path, provenance: str | None = None) -> pd.DataFrame:
    """Validate and merge a metrics table into ``<run_dir>/metrics.tsv``; returns the whole table.

    Rows replace old rows of the same (cell_type, model, marks, scheme, fold, split); everything
    else in the file is kept. ``provenance`` (``ds.provenance``) is added as a column; it is
    required unless the table already has one.
    """
    table = _with_provenance(table, provenance, "metrics")
    validate(table, METRIC_COLUMNS, "metrics")
    _unique_key(table, [*METRIC_KEY, "metric"], "metrics")
    return append_table(table, Path(run_dir) / METRICS_FILE, replace_on=METRIC_KEY)


def save_predictions(table: pd.DataFrame, run_dir: str | Path, provenance: str | None = None) -> pd.DataFrame:
    """Validate and merge a predictions table into ``<run_dir>/predictions.tsv.gz``.

    Rows replace old rows of the same (cell_type, model, marks, [scheme], fold, [split], gene_id);
    everything else in the file is kept. ``provenance`` as in :func:`save_metrics`.
    """
    table = _with_provenance(table, provenance, "predictions")
    validate(table, PREDICTION_COLUMNS, "predictions")
    key = prediction_key(table)
    _unique_key(table, key, "predictions")
    return append_table(table, Path(run_dir) / PREDICTIONS_FILE, replace_on=key)


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
