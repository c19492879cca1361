"""Cross-cell-type summaries and the statistics behind the manuscript figures (notebook 90).

Everything here reads the tidy result tables of one run (``results/<run>/``) and nothing else:
never a model, never a dataset. :func:`load_run_tables` collects them; the other functions turn
them into the long tables written to ``results/<run>/summary/`` and drawn by
:mod:`chromexp.plots.manuscript`.

Conventions
-----------
* Provenance (``"semi-synthetic"`` / ``"real"``) is read from a table's ``provenance`` column
  when it has one, otherwise from the dataset QC tables notebook 10 writes for the same cell
  type (``dataset_genes.tsv``, ``dataset_splits.tsv``, ``dataset_exclusions.tsv``), never from a
  parameter. A cell type with neither is ``"unknown"`` and no caption calls it real.
* Every test names its statistic and its multiple-testing correction in the ``test`` and
  ``correction`` columns of the table it returns.
* Spread: fold-level summaries carry mean, SD and the number of folds; gene-level summaries a
  seeded percentile bootstrap 95 % CI over genes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..constants import CELL_STATES, MARKS, REAL, SEMI_SYNTHETIC
from ..results import (
    EFFECT_COLUMNS,
    METRIC_COLUMNS,
    METRICS_FILE,
    PCRE_COLUMNS,
    PREDICTION_COLUMNS,
    PREDICTIONS_FILE,
    read_table,
)
from . import effects as effects_tables
from .enrichment import BENCHMARK_COLUMNS, DECILE_COLUMNS, MATCHED_COLUMNS
from .ldsc import META_TABLE_COLUMNS, RESULTS_TABLE_COLUMNS
from .statistics import UNKNOWN, benjamini_hochberg, bootstrap_ci, bootstrap_indices, provenance_values

#: Marks the study calls active (promoter/enhancer/transcription marks) and repressive.
ACTIVE_MARKS: tuple[str, ...] = ("H3K4me1", "H3K4me3", "H3K36me3", "H3K27ac", "H3K9ac")
REPRESSIVE_MARKS: tuple[str, ...] = ("H3K9me3", "H3K27me3")
#: The four cell states in display order, and the two-group contrast of the paper's Fig. 2B.
STATES: tuple[str, ...] = ("ESC", "ESC-derived", "primary", "cancer line")
ESC_GROUP: tuple[str, ...] = ("ESC", "ESC-derived")
ESC_GROUP_NAME = "ESC + ESC-derived"
REST_GROUP_NAME = "other (primary + cancer line)"

#: Per-cell-type tables the figures read (file name under results/<run>/<EID>/).
CELL_TABLES: dict[str, str] = {
    "metrics": METRICS_FILE,
    "predictions": PREDICTIONS_FILE,
    "genes": "dataset_genes.tsv",
    "levels": "dataset_mark_levels.tsv.gz",
    "perturbation": effects_tables.EFFECTS_FILE,
    "pcre_ablation": effects_tables.PCRE_FILE,
}
#: Run-level tables (path under results/<run>/).
RUN_TABLES: dict[str, str] = {
    "eqtl_deciles": "eqtl/eqtl_deciles.tsv",
    "eqtl_benchmarks": "eqtl/eqtl_benchmarks.tsv",
    "eqtl_distance_matched": "eqtl/eqtl_distance_matched.tsv",
    "ldsc": "ldsc/ldsc_results.tsv",
    "ldsc_meta": "ldsc/ldsc_meta.tsv",
}
#: The documented columns of every table (docs/data-formats.md): a file that lacks one is not drawn from.
SCHEMAS: dict[str, tuple[str, ...]] = {
    "metrics": METRIC_COLUMNS,
    "predictions": PREDICTION_COLUMNS,
    "genes": ("gene_id", "label"),
    "levels": ("gene_id", "mark", "flank", "level"),
    "perturbation": EFFECT_COLUMNS,
    "pcre_ablation": PCRE_COLUMNS,
    "eqtl_deciles": DECILE_COLUMNS,
    "eqtl_benchmarks": BENCHMARK_COLUMNS,
    "eqtl_distance_matched": MATCHED_COLUMNS,
    "ldsc": RESULTS_TABLE_COLUMNS,
    "ldsc_meta": META_TABLE_COLUMNS,
}
#: QC tables of notebook 10 that carry a cell type's provenance (first one found wins).
PROVENANCE_TABLES: tuple[str, ...] = ("dataset_genes.tsv", "dataset_splits.tsv", "dataset_exclusions.tsv")
_EID = re.compile(r"^E\d{3}$")


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------
@dataclass
class RunTables:
    """Every tidy table of one run that the figures read (empty DataFrames where absent)."""

    run_dir: Path
    cell_types: list[str]
    provenance: dict[str, str]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    attributions: list[Path] = field(default_factory=list)
    sources: dict[str, list[str]] = field(default_factory=dict)
    #: table name -> why its files were not loaded (a file that breaks its schema); panels that need
    #: the table are skipped with this note and notebook 90 fails at its checks
    invalid: dict[str, list[str]] = field(default_factory=dict)
    #: derived statistics tables, computed once (chromexp.plots.manuscript.derived_tables)
    derived: dict[str, pd.DataFrame] = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables.get(name, pd.DataFrame())

    def has(self, name: str) -> bool:
        """Whether the table ``name`` was found and has rows."""
        return not self[name].empty

    def inventory(self) -> pd.DataFrame:
        """One row per table: rows, cell types and the files it came from (for the notebook)."""
        rows = []
        for name in [*CELL_TABLES, *RUN_TABLES]:
            t = self[name]
            rows.append(
                {
                    "table": name,
                    "rows": len(t),
                    "cell_types": ", ".join(sorted(set(t["cell_type"]))) if "cell_type" in t else "",
                    "provenance": ", ".join(sorted(set(t["provenance"]))) if "provenance" in t else "",
                    "files": len(self.sources.get(name, [])),
                    "schema": "; ".join(self.invalid[name]) if name in self.invalid else "ok",
                }
            )
        rows.append(
            {
                "table": "attribution_*.npz",
                "rows": len(self.attributions),
                "cell_types": ", ".join(sorted({p.parent.name for p in self.attributions})),
                "provenance": "",
                "files": len(self.attributions),
                "schema": "checked when Fig. 8 is drawn",
            }
        )
        return pd.DataFrame(rows)


def cell_type_dirs(run_dir: str | Path) -> list[Path]:
    """The ``results/<run>/<EID>/`` folders of a run, sorted by EID."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and _EID.match(p.name))


def provenance_by_cell_type(run_dir: str | Path) -> dict[str, str]:
    """Provenance of each cell type of a run, read from notebook 10's dataset QC tables.

    Returns ``{EID: "semi-synthetic" | "real" | "unknown"}``; a QC table listing both values is an
    error (one cell type's dataset has one provenance).
    """
    out = {}
    for d in cell_type_dirs(run_dir):
        value = UNKNOWN
        for name in PROVENANCE_TABLES:
            t = read_table(d / name)
            if "provenance" in t.columns and len(t):
                values = sorted(set(t["provenance"].astype(str)))
                if len(values) != 1:
                    raise ValueError(f"{d / name} lists several provenances {values}; expected one per cell type.")
                value = values[0]
                break
        out[d.name] = value
    return out


def attach_provenance(table: pd.DataFrame, by_cell_type: dict[str, str]) -> pd.DataFrame:
    """Give ``table`` a ``provenance`` column: its own where present, else from ``by_cell_type``, else unknown."""
    if table.empty:
        return table
    from_cells = table["cell_type"].map(by_cell_type) if "cell_type" in table.columns else pd.Series(index=table.index)
    own = table["provenance"] if "provenance" in table.columns else pd.Series(index=table.index, dtype=object)
    # rows of a table concatenated from files with and without the column: each keeps its own
    return table.assign(provenance=own.fillna(from_cells).fillna(UNKNOWN).astype(str))


def schema_problem(table: pd.DataFrame, name: str, path: str | Path) -> str | None:
    """Why ``table`` (read from ``path``) breaks the schema of ``name`` (:data:`SCHEMAS`), or ``None``."""
    missing = [c for c in SCHEMAS.get(name, ()) if c not in table.columns]
    if missing:
        return f"{path} lacks column(s) {missing} of the {name} table (docs/data-formats.md)"
    return None


def _read(name: str, path: Path) -> tuple[pd.DataFrame, str | None]:
    """One table file: (rows, None), (empty, None) when absent, or (empty, why) when it breaks its schema."""
    if not path.exists():
        return pd.DataFrame(), None
    if name in ("perturbation", "pcre_ablation"):
        try:  # the one reader of notebook 60's tables
            return effects_tables.read_effects(path, SCHEMAS[name]), None
        except ValueError as err:
            return pd.DataFrame(), str(err)
    t = read_table(path)
    if t.empty:
        return t, None
    why = schema_problem(t, name, path)
    return (pd.DataFrame(), why) if why else (t, None)


def load_run_tables(run_dir: str | Path) -> RunTables:
    """Read every tidy table of ``results/<run>/`` that the figures use, each checked against its schema.

    Per cell type (``<run>/<EID>/``): metrics, predictions, dataset genes and mark levels
    (notebook 10), perturbation effects and pCRE ablations (notebook 60), attribution ``.npz``
    files (notebook 60). Per run: eQTL (``eqtl/``, notebook 70) and s-LDSC (``ldsc/``, notebook
    80) tables. Absent tables are empty DataFrames; every table gets a ``provenance`` column
    (:func:`attach_provenance`). A file that lacks a column of its schema (:data:`SCHEMAS`) makes
    its whole table unusable (no panel is drawn from the other cell types' files alone): the table
    is left empty and the reason recorded in ``RunTables.invalid``.
    """
    run_dir = Path(run_dir)
    dirs = cell_type_dirs(run_dir)
    prov = provenance_by_cell_type(run_dir)
    tables: dict[str, pd.DataFrame] = {}
    sources: dict[str, list[str]] = {}
    invalid: dict[str, list[str]] = {}
    for name, file in CELL_TABLES.items():
        parts = []
        for d in dirs:
            t, why = _read(name, d / file)
            if why:
                invalid.setdefault(name, []).append(why)
            if not t.empty:
                if "cell_type" not in t.columns:
                    t = t.assign(cell_type=d.name)
                parts.append(t)
                sources.setdefault(name, []).append(str(d / file))
        t = pd.concat(parts, ignore_index=True) if parts and name not in invalid else pd.DataFrame()
        tables[name] = attach_provenance(t, prov)
    for name, file in RUN_TABLES.items():
        t, why = _read(name, run_dir / file)
        if why:
            invalid[name] = [why]
        if not t.empty:
            sources[name] = [str(run_dir / file)]
        tables[name] = attach_provenance(t, prov)
    attributions = sorted(p for d in dirs for p in d.glob("attribution_*.npz"))
    return RunTables(run_dir, [d.name for d in dirs], prov, tables, attributions, sources, invalid)


# ---------------------------------------------------------------------------------------------
# Provenance labels
# ---------------------------------------------------------------------------------------------
def provenance_label(*tables: pd.DataFrame, genetics: bool = False) -> str:
    """Caption text for the data a figure shows, from the tables' ``provenance`` columns.

    ``"real data"`` only when every row is real; ``"SEMI-SYNTHETIC ..."`` when every row is
    semi-synthetic (``genetics=True``: "simulated reads, eQTLs and GWAS; real expression", for the
    panels that show eQTLs or GWAS); otherwise a MIXED or UNKNOWN label that never reads as real alone.
    """
    from ..provenance import data_label

    values = provenance_values(*tables)
    if values == [REAL]:
        return data_label(REAL)
    if values == [SEMI_SYNTHETIC]:
        return data_label(SEMI_SYNTHETIC, genetics=genetics)
    if not values or values == [UNKNOWN]:
        return "data provenance UNKNOWN (no provenance column or dataset table): not claimed real"
    parts = []
    for t in tables:
        if t is None or t.empty or "provenance" not in t.columns or "cell_type" not in t.columns:
            continue
        for value, rows in t.groupby("provenance"):
            parts.append(f"{value.upper() if value != REAL else value}: {', '.join(sorted(set(rows['cell_type'])))}")
    detail = "; ".join(dict.fromkeys(parts)) or ", ".join(values)
    return f"MIXED data ({detail}) — only the cell types marked real are real"


# ---------------------------------------------------------------------------------------------
# Spread and tests
# ---------------------------------------------------------------------------------------------
def rank_sum(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon rank-sum (Mann–Whitney U) test; ``(U, p)``, NaN when a group is empty."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan"), float("nan")
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def cell_state(cell_type: str) -> str:
    """The cell state of an EID (ESC, ESC-derived, primary, cancer line) as the reference groups them."""
    return CELL_STATES.get(cell_type, UNKNOWN)


def mark_class(marks: str) -> str:
    """``"active"``, ``"repressive"`` or ``"mixed"`` for a ``+``-joined mark set."""
    items = set(marks.split("+"))
    if items <= set(ACTIVE_MARKS):
        return "active"
    if items <= set(REPRESSIVE_MARKS):
        return "repressive"
    return "mixed"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------
METRIC_KEY = ["cell_type", "model", "marks", "scheme", "split", "metric"]


def fold_summary(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean ± SD over folds of every metric of every model, mark set, scheme, split and cell type.

    Returns columns ``cell_type, cell_state, model, marks, scheme, split, metric, n_folds, mean,
    sd, min, max, provenance`` (SD with ddof 1; NaN for one fold).
    """
    if metrics.empty:
        return pd.DataFrame(columns=[*METRIC_KEY, "cell_state", "n_folds", "mean", "sd", "min", "max", "provenance"])
    key = METRIC_KEY + (["provenance"] if "provenance" in metrics.columns else [])
    g = metrics.groupby(key, sort=True, dropna=False)["value"]
    out = g.agg(n_folds="count", mean="mean", sd="std", min="min", max="max").reset_index()
    out.insert(1, "cell_state", out["cell_type"].map(cell_state))
    return out


def long_metrics(metrics: pd.DataFrame) -> pd.DataFrame:
    """Every per-fold metric row, with the fold mean and SD of its group and the cell state."""
    if metrics.empty:
        return metrics
    s = fold_summary(metrics).rename(columns={"mean": "fold_mean", "sd": "fold_sd"})
    keep = [c for c in [*METRIC_KEY, "n_folds", "fold_mean", "fold_sd"] if c in s.columns]
    out = metrics.merge(s[keep], on=METRIC_KEY, how="left")
    out.insert(1, "cell_state", out["cell_type"].map(cell_state))
    return out


def single_mark_tests(
    metrics: pd.DataFrame, model: str, metric: str = "pearson_r", split: str = "test"
) -> pd.DataFrame:
    """Per-fold test rows of the single-mark models of ``model`` (with cell state and mark class)."""
    if metrics.empty:
        return metrics
    t = metrics[(metrics["model"] == model) & (metrics["metric"] == metric) & (metrics["split"] == split)]
    t = t[t["marks"].isin(MARKS)]
    if "scheme" in t.columns:
        t = t[t["scheme"] == "chrom_folds"]
    return t.assign(cell_state=t["cell_type"].map(cell_state), mark_class=t["marks"].map(mark_class))


def state_contrasts(
    metrics: pd.DataFrame, model: str = "promoter_cnn", metric: str = "pearson_r", split: str = "test"
) -> pd.DataFrame:
    """Active vs repressive marks by cell state (paper Fig. 2B): rank-sum tests with BH-FDR.

    Units are the (cell type, fold) test values of the single-mark models. For each mark class
    (active, repressive) and each single mark, two families of tests:

    * ``ESC + ESC-derived`` vs the rest (the paper's contrast);
    * every pair of the four cell states (ESC, ESC-derived, primary, cancer line).

    Statistic: two-sided Wilcoxon rank-sum (Mann–Whitney U). Correction: Benjamini–Hochberg over
    all tests of one family (``contrast_kind``). Folds of one cell type share the cell type, so
    they are not independent replicates; the caption says so.

    Returns
    -------
    pandas.DataFrame
        ``contrast_kind, unit, group_a, group_b, n_a, n_b, median_a, median_b, U, p, q, test,
        correction, metric, model, provenance`` (``unit`` = mark class or mark).
    """
    t = single_mark_tests(metrics, model, metric, split)
    cols = ["contrast_kind", "unit", "group_a", "group_b", "n_a", "n_b", "median_a", "median_b", "U", "p", "q"]
    if t.empty:
        return pd.DataFrame(columns=[*cols, "test", "correction", "metric", "model", "provenance"])
    rows = []
    units = [(c, t[t["mark_class"] == c]) for c in ("active", "repressive")] + [
        (m, t[t["marks"] == m]) for m in MARKS if m in set(t["marks"])
    ]
    for unit, u in units:
        if u.empty:
            continue
        esc = u["cell_state"].isin(ESC_GROUP)
        pairs = [("two-group", ESC_GROUP_NAME, REST_GROUP_NAME, u[esc]["value"], u[~esc]["value"])]
        for i, a in enumerate(STATES):
            for b in STATES[i + 1 :]:
                va, vb = u[u["cell_state"] == a]["value"], u[u["cell_state"] == b]["value"]
                pairs.append(("four-state", a, b, va, vb))
        for kind, a, b, va, vb in pairs:
            if len(va) == 0 or len(vb) == 0:
                continue
            stat, p = rank_sum(va, vb)
            rows.append(
                {
                    "contrast_kind": kind,
                    "unit": unit,
                    "group_a": a,
                    "group_b": b,
                    "n_a": len(va),
                    "n_b": len(vb),
                    "median_a": float(np.median(va)),
                    "median_b": float(np.median(vb)),
                    "U": stat,
                    "p": p,
                }
            )
    out = pd.DataFrame(rows, columns=cols[:-1])
    out["q"] = np.nan
    for _kind, idx in out.groupby("contrast_kind").groups.items():
        out.loc[idx, "q"] = benjamini_hochberg(out.loc[idx, "p"])
    return out.assign(
        test="two-sided Wilcoxon rank-sum (Mann-Whitney U), units = cell type x fold",
        correction="Benjamini-Hochberg within contrast_kind",
        metric=metric,
        model=model,
        provenance=", ".join(provenance_values(t)),
    )


def prediction_correlations(predictions: pd.DataFrame, model: str = "promoter_cnn") -> pd.DataFrame:
    """Pearson r between the test predictions of every pair of single-mark models, per cell type.

    Each gene is predicted once per mark (by the fold model that held it out); genes predicted
    by every mark's model of the cell type enter. Returns ``cell_type, mark_a, mark_b, r,
    n_genes, provenance`` (both orders and the diagonal, so it pivots to a full matrix).
    """
    cols = ["cell_type", "mark_a", "mark_b", "r", "n_genes", "provenance"]
    if predictions.empty:
        return pd.DataFrame(columns=cols)
    p = predictions[(predictions["model"] == model) & predictions["marks"].isin(MARKS)]
    rows = []
    for cell, c in p.groupby("cell_type", sort=True):
        wide = c.pivot_table(index=["fold", "gene_id"], columns="marks", values="predicted", aggfunc="mean").dropna()
        marks = [m for m in MARKS if m in wide.columns]
        if len(marks) < 2 or len(wide) < 3:
            continue
        r = np.corrcoef(wide[marks].to_numpy().T)
        prov = ", ".join(provenance_values(c))
        for i, a in enumerate(marks):
            for j, b in enumerate(marks):
                rows.append(
                    {
                        "cell_type": cell,
                        "mark_a": a,
                        "mark_b": b,
                        "r": r[i, j],
                        "n_genes": len(wide),
                        "provenance": prov,
                    }
                )
    return pd.DataFrame(rows, columns=cols)


def mean_correlation_matrix(correlations: pd.DataFrame) -> pd.DataFrame:
    """Mark × mark matrix of the per-cell-type correlations averaged on Fisher's z scale."""
    if correlations.empty:
        return pd.DataFrame()
    z = np.arctanh(correlations["r"].clip(-0.999999, 0.999999))
    m = correlations.assign(z=z).groupby(["mark_a", "mark_b"])["z"].mean().unstack()
    order = [mk for mk in MARKS if mk in m.index]
    return np.tanh(m.loc[order, order])


def promoter_levels(levels: pd.DataFrame) -> pd.DataFrame:
    """Per-gene promoter levels (``dataset_mark_levels``) with cell state; the widest flank only."""
    if levels.empty:
        return levels
    if "flank" in levels.columns:
        levels = levels[levels["flank"] == levels["flank"].max()]
    return levels.assign(cell_state=levels["cell_type"].map(cell_state))


def level_vs_performance(
    levels: pd.DataFrame, metrics: pd.DataFrame, model: str = "promoter_cnn", metric: str = "pearson_r", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean promoter level of each (cell type, mark) against its single-mark model's performance (Fig. 3A).

    Returns
    -------
    points : pandas.DataFrame
        ``cell_type, cell_state, mark, level_mean, level_lo, level_hi`` (bootstrap 95 % CI over
        genes), ``perf_mean, perf_sd, n_folds, provenance``.
    tests : pandas.DataFrame
        Spearman ρ between level and performance over all points and per mark class, with its
        p-value (``test`` names the statistic; no correction: one test per row family).
    """
    lv = promoter_levels(levels)
    perf = single_mark_tests(metrics, model, metric)
    pcols = ["cell_type", "cell_state", "mark", "level_mean", "level_lo", "level_hi", "perf_mean", "perf_sd", "n_folds"]
    if lv.empty or perf.empty:
        return pd.DataFrame(columns=[*pcols, "provenance"]), pd.DataFrame()
    ps = perf.groupby(["cell_type", "marks"])["value"].agg(perf_mean="mean", perf_sd="std", n_folds="count")
    rows = []
    for (cell, mark), g in lv.groupby(["cell_type", "mark"], sort=True):
        if (cell, mark) not in ps.index:
            continue
        lo, hi = bootstrap_ci(g["level"], seed=seed)
        rows.append(
            {
                "cell_type": cell,
                "cell_state": cell_state(cell),
                "mark": mark,
                "level_mean": float(g["level"].mean()),
                "level_lo": lo,
                "level_hi": hi,
                **ps.loc[(cell, mark)].to_dict(),
            }
        )
    points = pd.DataFrame(rows, columns=pcols)
    prov = {c: ", ".join(provenance_values(g)) for c, g in pd.concat([lv, perf]).groupby("cell_type")}
    points["provenance"] = points["cell_type"].map(prov)
    tests = []
    for name, sub in [("all marks", points)] + [
        (c, points[points["mark"].map(mark_class) == c]) for c in ("active", "repressive")
    ]:
        if len(sub) >= 3:
            rho, p = stats.spearmanr(sub["level_mean"], sub["perf_mean"])
        else:
            rho, p = float("nan"), float("nan")
        tests.append({"points": name, "n": len(sub), "spearman_rho": rho, "p": p})
    tests = pd.DataFrame(tests).assign(
        test="Spearman rank correlation over (cell type, mark) points", correction="none (descriptive)"
    )
    return points, tests


def levels_by_state(levels: pd.DataFrame, genes: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Promoter levels by cell state for high vs low expressed genes (Fig. 3B).

    High/low = the dataset's label (RPKM ≥ the cell type's median RPKM), from
    ``dataset_genes.tsv``. Returns per (cell type, mark, group) mean level with a bootstrap 95 %
    CI over genes, and per (cell state, mark) a two-sided Wilcoxon rank-sum test of high vs low
    levels (genes of all cell types of the state pooled), BH over all (state, mark) tests.
    """
    lv = promoter_levels(levels)
    if lv.empty or genes.empty:
        return pd.DataFrame(), pd.DataFrame()
    lab = genes[["cell_type", "gene_id", "label"]].drop_duplicates(["cell_type", "gene_id"])
    d = lv.merge(lab, on=["cell_type", "gene_id"], how="inner")
    d["group"] = np.where(d["label"].astype(int) == 1, "high (RPKM ≥ median)", "low (RPKM < median)")
    rows = []
    for (cell, mark, group), g in d.groupby(["cell_type", "mark", "group"], sort=True):
        lo, hi = bootstrap_ci(g["level"], seed=seed)
        rows.append(
            {
                "cell_type": cell,
                "cell_state": cell_state(cell),
                "mark": mark,
                "group": group,
                "n_genes": len(g),
                "level_mean": float(g["level"].mean()),
                "level_lo": lo,
                "level_hi": hi,
                "provenance": ", ".join(provenance_values(g)),
            }
        )
    points = pd.DataFrame(rows)
    tests = []
    for (state, mark), g in d.groupby(["cell_state", "mark"], sort=True):
        hi_v = g[g["label"].astype(int) == 1]["level"]
        lo_v = g[g["label"].astype(int) == 0]["level"]
        u, p = rank_sum(hi_v, lo_v)
        tests.append(
            {
                "cell_state": state,
                "mark": mark,
                "n_high": len(hi_v),
                "n_low": len(lo_v),
                "median_high": float(hi_v.median()) if len(hi_v) else np.nan,
                "median_low": float(lo_v.median()) if len(lo_v) else np.nan,
                "U": u,
                "p": p,
            }
        )
    tests = pd.DataFrame(tests)
    tests["q"] = benjamini_hochberg(tests["p"])
    tests = tests.assign(
        test="two-sided Wilcoxon rank-sum (Mann-Whitney U), high vs low expressed genes",
        correction="Benjamini-Hochberg over all (cell state, mark) tests",
    )
    return points, tests


def levels_by_state_paper(
    levels: pd.DataFrame, genes: pd.DataFrame, states: tuple[str, str] = ("ESC", "primary")
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's Fig. 3B contrast: ESC vs primary cells, within high- and within low-expressed genes.

    The unit is a (cell type, fold): the mean promoter level of the mark over the genes of the fold
    (the genes on its test chromosomes, ``fold`` of ``dataset_genes.tsv``) in one expression group
    (label: RPKM vs the cell type's median). Per (mark, group), a two-sided Wilcoxon rank-sum test of
    the ESC points against the primary-cell points; BH over all (mark, group) tests.
    :func:`levels_by_state` (chromexp's earlier panel) instead compares high vs low genes within a
    state with every gene a point (thousands of pseudo-replicates of a few cell types); both are kept
    (docs/deviations.md).

    Returns
    -------
    points : pandas.DataFrame
        ``cell_type, cell_state, fold, mark, group, n_genes, level_mean, provenance``.
    tests : pandas.DataFrame
        ``mark, group, n_<state>`` for both states, ``median_<state>``, ``U, p, q, test, correction``.
    """
    lv = promoter_levels(levels)
    if lv.empty or genes.empty or "fold" not in genes.columns:
        return pd.DataFrame(), pd.DataFrame()
    lab = genes[["cell_type", "gene_id", "label", "fold"]].drop_duplicates(["cell_type", "gene_id"])
    d = lv.merge(lab, on=["cell_type", "gene_id"], how="inner")
    d["group"] = np.where(d["label"].astype(int) == 1, "high (RPKM ≥ median)", "low (RPKM < median)")
    keys = ["cell_type", "cell_state", "fold", "mark", "group"]
    points = (
        d.groupby(keys, sort=True)
        .agg(n_genes=("level", "size"), level_mean=("level", "mean"))
        .reset_index()
        .assign(provenance=", ".join(provenance_values(d)))
    )
    a, b = states
    tests = []
    for (mark, group), g in points.groupby(["mark", "group"], sort=True):
        va = g.loc[g["cell_state"] == a, "level_mean"]
        vb = g.loc[g["cell_state"] == b, "level_mean"]
        u, pv = rank_sum(va, vb)
        tests.append(
            {
                "mark": mark,
                "group": group,
                f"n_{a}": len(va),
                f"n_{b}": len(vb),
                f"median_{a}": float(va.median()) if len(va) else np.nan,
                f"median_{b}": float(vb.median()) if len(vb) else np.nan,
                "U": u,
                "p": pv,
            }
        )
    tests = pd.DataFrame(tests)
    if tests.empty:
        return points, tests
    tests["q"] = benjamini_hochberg(tests["p"].to_numpy())
    tests = tests.assign(
        test=f"two-sided Wilcoxon rank-sum (Mann-Whitney U), {a} vs {b}, points = (cell type, fold)",
        correction="Benjamini-Hochberg over all (mark, group) tests",
    )
    return points, tests


def distal_gain(
    predictions: pd.DataFrame,
    distal_model: str = "chromoformer_reg",
    promoter_model: str = "promoter_cnn",
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Does the distal model beat the promoter model on the same genes? A paired per-gene test (Fig. 4).

    For each (cell type, single mark) the test predictions of both models are matched on
    (fold, gene). Reported per pair:

    * ``delta_r``: Pearson r (distal) − r (promoter) over the matched genes, with a paired
      bootstrap 95 % CI over genes (``delta_r_lo``, ``delta_r_hi``);
    * ``mean_se_gain``: mean over genes of (promoter squared error − distal squared error);
    * a one-sided Wilcoxon signed-rank test of those per-gene differences (H1: the distal model
      has smaller errors), BH-corrected over all (cell type, mark) rows.
    """
    cols = [
        "cell_type",
        "marks",
        "n_genes",
        "folds",
        "r_distal",
        "r_promoter",
        "delta_r",
        "delta_r_lo",
        "delta_r_hi",
        "mean_se_gain",
        "W",
        "p",
        "q",
    ]
    if predictions.empty:
        return pd.DataFrame(columns=cols)
    key = ["cell_type", "marks", "fold", "gene_id"]
    a = predictions[predictions["model"] == distal_model]
    b = predictions[predictions["model"] == promoter_model]
    m = a[[*key, "observed", "predicted", "provenance"]].merge(
        b[[*key, "predicted"]], on=key, suffixes=("_distal", "_promoter")
    )
    rows, provs = [], []
    rng = np.random.default_rng(seed)
    for (cell, marks), g in m.groupby(["cell_type", "marks"], sort=True):
        if len(g) < 3:
            continue
        y = g["observed"].to_numpy(float)
        pd_, pp = g["predicted_distal"].to_numpy(float), g["predicted_promoter"].to_numpy(float)
        r_d, r_p = np.corrcoef(y, pd_)[0, 1], np.corrcoef(y, pp)[0, 1]
        deltas = np.concatenate(
            [
                _rowwise_r(y[idx], pd_[idx]) - _rowwise_r(y[idx], pp[idx])
                for idx in bootstrap_indices(rng, len(y), n_boot)
            ]
        )
        diff = (pp - y) ** 2 - (pd_ - y) ** 2
        if np.any(diff != 0):
            w = stats.wilcoxon(diff, alternative="greater")
            stat, p = float(w.statistic), float(w.pvalue)
        else:
            stat, p = float("nan"), float("nan")
        rows.append(
            {
                "cell_type": cell,
                "marks": marks,
                "n_genes": len(g),
                "folds": ",".join(map(str, sorted(set(g["fold"])))),
                "r_distal": r_d,
                "r_promoter": r_p,
                "delta_r": r_d - r_p,
                "delta_r_lo": float(np.nanquantile(deltas, 0.025)),
                "delta_r_hi": float(np.nanquantile(deltas, 0.975)),
                "mean_se_gain": float(diff.mean()),
                "W": stat,
                "p": p,
            }
        )
        provs.append(", ".join(provenance_values(g)))
    out = pd.DataFrame(rows, columns=cols[:-1])
    out["q"] = benjamini_hochberg(out["p"]) if len(out) else []
    out["provenance"] = provs
    return out.assign(
        test="one-sided Wilcoxon signed-rank of per-gene squared-error differences (promoter - distal > 0)",
        correction="Benjamini-Hochberg over (cell type, mark)",
    )


def _rowwise_r(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (n_boot, n) arrays (NaN for a constant row)."""
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean(axis=1, keepdims=True)
    den = np.sqrt((xc**2).sum(axis=1) * (yc**2).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (xc * yc).sum(axis=1) / den


def write_summaries(tables: dict[str, pd.DataFrame], out_dir: str | Path) -> list[Path]:
    """Write each non-empty table to ``out_dir/<name>.tsv`` atomically; return the paths."""
    from ..results import write_table

    out_dir = Path(out_dir)
    written = []
    for name, t in tables.items():
        if t is None or t.empty:
            continue
        written.append(write_table(t, out_dir / f"{name}.tsv"))
    return written


def missing(names: Iterable[str], run: RunTables) -> list[str]:
    """The table names among ``names`` that are absent or empty in ``run``."""
    return [n for n in names if not run.has(n)]
