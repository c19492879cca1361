"""Notebook 60's effects tables, read once and summarised once (paper Fig. 6; inputs of Figs. 7A/7B).

Notebook 60 writes ``results/<run>/<EID>/perturbation_effects.tsv.gz`` (one row per gene, region
and level; columns :data:`chromexp.results.EFFECT_COLUMNS`) and ``pcre_ablation.tsv.gz``
(:data:`chromexp.results.PCRE_COLUMNS`). Everything downstream asks this module:

* **Reading** — :func:`read_effects` (one file, checked against its contract) and
  :func:`read_run_effects` (the cell types of a run; a missing file names notebook 60). Notebooks
  70, 80 and 90 read the table only through these.
* **Distal loci** — :func:`distal_loci`: the rows the eQTL (notebook 70) and s-LDSC (notebook 80)
  tests rank (distal 2 kb regions, one mark, gene set, level and model). When a filter leaves
  nothing, the error names that filter and gives the rows left after each step.
* **Fig. 6 statistics** — :func:`level_curves` (mean effect per level, promoter vs distal) and
  :func:`effect_by_distance` (level-0 distal effect by distance to the TSS), each a mean over
  genes with a seeded bootstrap 95 % CI over genes (a gene's rows averaged first:
  :func:`chromexp.analyses.statistics.gene_summary`); :func:`decay_length` fits the e-fold decay
  of mean |effect| with distance. Notebook 60 (one cell type) and notebook 90 (every cell type)
  call the same functions, so a cell type's rows in ``results/<run>/summary/`` equal its own
  ``perturbation_levels.tsv``.

This module imports no model code (it never needs ``torch``): the perturbation engine is
:mod:`chromexp.analyses.perturb`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..results import EFFECT_COLUMNS, PCRE_COLUMNS, read_tsv
from .statistics import fold_count, gene_summary

#: File names of notebook 60's tables under ``results/<run>/<EID>/``.
EFFECTS_FILE = "perturbation_effects.tsv.gz"
PCRE_FILE = "pcre_ablation.tsv.gz"
#: Columns read as text whatever they hold (a chromosome named "1", an id that looks like a number).
TEXT_COLUMNS = {"chrom": str, "gene_id": str, "region": str}
#: The keys of :func:`level_curves` and :func:`effect_by_distance` rows.
CURVE_KEY = ("cell_type", "mark", "gene_set", "region_kind", "level")
DISTANCE_KEY = ("cell_type", "mark", "gene_set", "distance_bin")
#: The columns :func:`distal_loci` filters and keys on (of :data:`~chromexp.results.EFFECT_COLUMNS`).
LOCUS_NEEDS = tuple(
    c for c in EFFECT_COLUMNS if c not in ("position", "distance", "effect_sd", "concordance", "n_folds", "baseline")
)


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_effects(path: str | Path, columns: Sequence[str] = EFFECT_COLUMNS) -> pd.DataFrame:
    """Read one ``perturbation_effects.tsv.gz`` (or, with ``columns=PCRE_COLUMNS``, a pCRE table).

    Parameters
    ----------
    path : path
        The table notebook 60 wrote.
    columns : sequence of str
        The contract it must hold (docs/data-formats.md, "Perturbation outputs"); extra columns
        are kept.

    Returns
    -------
    pandas.DataFrame
        The rows as written (``chrom``, ``gene_id``, ``region`` as text).

    Raises
    ------
    FileNotFoundError
        The file is absent (the message names notebook 60).
    ValueError
        The file lacks a column of the contract, or has no rows (the message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebook 60_perturbation for this cell type first.")
    table = read_tsv(path, dtype={k: v for k, v in TEXT_COLUMNS.items()})  # truncated/binary -> ValueError
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {missing} of the {path.name.split('.')[0]} contract.")
    if table.empty:
        raise ValueError(f"{path}: the table has no rows (notebook 60 wrote an empty table?).")
    return table


def read_run_effects(run_dir: str | Path, cell_types: Sequence[str], file: str = EFFECTS_FILE) -> pd.DataFrame:
    """Notebook 60's tables of ``cell_types`` from ``<run_dir>/<EID>/``, concatenated in that order.

    Raises
    ------
    FileNotFoundError
        One message naming every missing file, notebook 60 and the command that writes them.
    """
    if not len(cell_types):
        raise ValueError("No cell types given: name the cell types whose perturbation effects to read.")
    found = {ct: Path(run_dir) / ct / file for ct in cell_types}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"The perturbation effects of notebook 60_perturbation are missing: {', '.join(missing)}. Run notebook "
            "60 for these cell types in this run first (chromexp batch --notebooks 60 -f <params>)."
        )
    columns = PCRE_COLUMNS if file == PCRE_FILE else EFFECT_COLUMNS
    return pd.concat([read_effects(p, columns) for p in found.values()], ignore_index=True)


# ---------------------------------------------------------------------------------------------
# the distal loci of the eQTL and s-LDSC tests
# ---------------------------------------------------------------------------------------------
def distal_loci(
    effects: pd.DataFrame,
    mark: str = "H3K27ac",
    gene_set: str = "active",
    level: float = 0.0,
    model: str | None = None,
    param: str = "model",
) -> pd.DataFrame:
    """The distal 2 kb loci of the effects tables that one test ranks, in table order.

    Keeps ``region_kind == "distal"``, then ``mark``, ``gene_set``, the perturbation ``level``
    (0.0 = mark removed) and ``model`` (``None``: the rows left must hold a single model). The rows
    left after each step are in ``out.attrs["filter_counts"]`` (``(step, rows)`` pairs;
    :func:`filter_counts` shows them as a table).

    Parameters
    ----------
    effects : pandas.DataFrame
        :func:`read_run_effects` output (one or several cell types).
    param : str
        The parameter that chooses the model, named in the error for several models
        (``eqtl.model``, ``ldsc.model``).

    Returns
    -------
    pandas.DataFrame
        The selected rows, every column kept, index reset; one row per (cell_type, gene, region).

    Raises
    ------
    ValueError
        A filter leaves no row (the message names it, with the counts per step and what the table
        holds), several models remain, a (cell_type, gene_id, region) repeats, or an effect is missing.
    """
    missing = [c for c in LOCUS_NEEDS if c not in effects.columns]
    if missing:
        raise ValueError(f"The perturbation effects table lacks column(s) {missing} (docs/data-formats.md).")
    steps = [
        ("rows of the effects table(s)", np.ones(len(effects), bool)),
        ("region_kind == 'distal'", (effects["region_kind"] == "distal").to_numpy()),
        (f"mark == {mark!r}", (effects["mark"] == mark).to_numpy()),
        (f"gene_set == {gene_set!r}", (effects["gene_set"] == gene_set).to_numpy()),
        (f"level == {level}", np.isclose(effects["level"].astype(float), level)),
    ]
    if model is not None:
        steps.append((f"model == {model!r}", (effects["model"] == model).to_numpy()))
    keep = np.ones(len(effects), bool)
    counts = []
    for name, mask in steps:
        keep &= mask
        counts.append({"step": name, "rows": int(keep.sum())})
        if not keep.any():
            have = effects.groupby(["model", "mark", "gene_set"]).size().index.tolist() if len(effects) else []
            levels = sorted(set(effects["level"].astype(float))) if len(effects) else []
            trail = "; ".join(f"{c['step']}: {c['rows']}" for c in counts)
            raise ValueError(
                f"No distal loci left after the filter {name} (rows after each step: {trail}); the effects table "
                f"holds (model, mark, gene_set) {have} at levels {levels}."
            )
    sel = effects.loc[keep]
    models = sorted(sel["model"].unique())
    if len(models) > 1:
        raise ValueError(f"The effects tables hold several models {models} for {mark}; choose one ({param}).")
    key = ["cell_type", "gene_id", "region"]
    if sel.duplicated(key).any():
        raise ValueError(
            f"Repeated (cell_type, gene_id, region) rows, e.g. {sel[sel.duplicated(key)][key].iloc[0].tolist()}."
        )
    if sel["effect"].isna().any():
        raise ValueError(f"{int(sel['effect'].isna().sum())} distal loci have no effect value.")
    out = sel.reset_index(drop=True)
    out.attrs["filter_counts"] = tuple((c["step"], c["rows"]) for c in counts)
    return out


def filter_counts(loci: pd.DataFrame) -> pd.DataFrame:
    """The rows left after each filter of :func:`distal_loci` (``step, rows``), for the notebooks."""
    return pd.DataFrame(list(loci.attrs.get("filter_counts", ())), columns=["step", "rows"])


# ---------------------------------------------------------------------------------------------
# Fig. 6 statistics
# ---------------------------------------------------------------------------------------------
def level_curves(effects: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean predicted effect by perturbation level, promoter vs distal regions (Fig. 6A).

    One row per (cell type, mark, gene set, region kind, level): the mean over genes of each gene's
    mean effect over the regions of that kind (the promoter, or its 16 distal 2 kb regions) with a
    seeded percentile bootstrap 95 % CI over genes (1,000 resamples).

    Returns
    -------
    pandas.DataFrame
        ``cell_type, mark, gene_set, region_kind, level, n_genes, mean, ci_low, ci_high, n_folds,
        provenance`` (:func:`chromexp.analyses.statistics.gene_summary`).
    """
    if effects.empty:
        return pd.DataFrame()
    return gene_summary(effects, list(CURVE_KEY), seed=seed)


def effect_by_distance(
    table: pd.DataFrame, n_bins: int = 20, level: float = 0.0, seed: int = 0, absolute: bool = False
) -> pd.DataFrame:
    """Effect of removing a distal 2 kb region by its signed distance to the TSS (Fig. 6B).

    Takes the rows with ``region_kind == "distal"`` at ``level`` of a perturbation table, or every
    row of a pCRE ablation table (no ``level`` column). Bins: one per distinct distance when there
    are no more distinct distances than ``n_bins`` (the study's 16 distal positions: quantile bins
    would merge neighbouring positions), else ``n_bins`` quantile bins of distance (ties merged).
    Per (cell type, mark, gene set, bin): mean over genes with a bootstrap 95 % CI over genes;
    ``absolute=True`` summarises |effect| instead (the input of :func:`decay_length`).

    Returns
    -------
    pandas.DataFrame
        ``cell_type, mark, gene_set, distance_bin, distance_mid, n_genes, mean, ci_low, ci_high,
        n_folds, provenance``; ``distance_mid`` is the bin's distance (one per position) or the
        centre of its quantile interval (bp, transcription orientation, negative = upstream).
    """
    if table.empty:
        return pd.DataFrame()
    d = table
    if "level" in d.columns:
        d = d[(d["region_kind"] == "distal") & np.isclose(d["level"].astype(float), level)]
    d = d.copy()
    if d.empty:
        return pd.DataFrame()
    if absolute:
        d["effect"] = d["effect"].abs()
    distances = np.sort(d["distance"].unique())
    one_per_distance = len(distances) <= n_bins
    if one_per_distance:
        edges = np.concatenate([[distances[0] - 1], (distances[:-1] + distances[1:]) / 2, [distances[-1] + 1]])
        d["distance_bin"] = pd.cut(d["distance"], bins=edges)
    else:
        d["distance_bin"] = pd.qcut(d["distance"], q=n_bins, duplicates="drop")
    out = gene_summary(d, list(DISTANCE_KEY), seed=seed)
    if one_per_distance:
        mid = out["distance_bin"].map(lambda iv: distances[(distances > iv.left) & (distances <= iv.right)][0])
    else:
        mid = out["distance_bin"].map(lambda iv: iv.mid)
    out.insert(out.columns.get_loc("distance_bin") + 1, "distance_mid", mid.astype(float))
    out["distance_bin"] = out["distance_bin"].astype(str)
    return out


#: The keys of :func:`effect_quantiles_by_distance` rows.
QUANTILE_KEY = ("cell_type", "mark", "gene_set", "distance", "quantile")


def effect_quantiles_by_distance(table: pd.DataFrame, n_bins: int = 20, level: float = 0.0) -> pd.DataFrame:
    """The distribution of the level-0 effect at each distance: its ``n_bins``-quantile edges (Fig. 6E/F).

    The paper's Fig. 6E/F show the effect at each distance "in 20 quantile bins": bins of the
    *effect distribution* at that distance (not of distance, which :func:`effect_by_distance`
    summarises as a mean). Per (cell type, mark, gene set, distance), the quantiles at
    ``k / n_bins``, k = 0..``n_bins`` (0 and 1 are the minimum and maximum), over the genes'
    level-``level`` effects (a gene is one value per distance).

    Returns
    -------
    pandas.DataFrame
        ``cell_type, mark, gene_set, distance, quantile, effect, n_genes, n_folds, provenance``
        (``n_folds``: the number of fold models behind the effects where the table records it
        and it is one number, else NaN).
    """
    if table.empty:
        return pd.DataFrame()
    d = table
    if "level" in d.columns:
        d = d[(d["region_kind"] == "distal") & np.isclose(d["level"].astype(float), level)]
    if d.empty:
        return pd.DataFrame()
    qs = np.linspace(0.0, 1.0, int(n_bins) + 1)
    rows = []
    for (ct, mark, gs, dist), g in d.groupby(["cell_type", "mark", "gene_set", "distance"], sort=True):
        values = np.quantile(g["effect"].to_numpy(float), qs)
        prov = ", ".join(sorted(set(g["provenance"]))) if "provenance" in g.columns else ""
        rows += [
            {
                "cell_type": ct,
                "mark": mark,
                "gene_set": gs,
                "distance": int(dist),
                "quantile": float(q),
                "effect": v,
                "n_genes": int(g["gene_id"].nunique()),
                "n_folds": fold_count(g),
                "provenance": prov,
            }  # fmt: skip
            for q, v in zip(qs, values)
        ]
    return pd.DataFrame(rows)


def single_mark(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the single-mark models (``model == "chromoformer-reg"``): the paper's Fig. 6.

    Notebook 60 may also perturb a mark inside a multi-mark model (``chromoformer-reg-all``); those
    rows enter the planted-truth recovery, not the Fig. 6 statistics.
    """
    if table.empty or "model" not in table.columns:
        return table
    return table[table["model"] == "chromoformer-reg"]


def decay_length(abs_by_distance: pd.DataFrame) -> pd.DataFrame:
    """Per cell type, mark and gene set, the e-fold decay length (bp) of mean |effect| with |distance|.

    Least-squares fit of ``log(mean |effect|) = a - |distance| / lambda`` over the bins of
    ``effect_by_distance(..., absolute=True)`` (sequence-model papers show effect decaying with
    distance from the TSS). NaN when fewer than 3 bins have a positive mean or the slope is not
    negative.

    Returns
    -------
    pandas.DataFrame
        ``mark, gene_set, decay_length_bp, n_bins, cell_type, provenance``.
    """
    cols = ["mark", "gene_set", "decay_length_bp", "n_bins", "cell_type", "provenance"]
    if abs_by_distance.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for (cell, mark, gs), sub in abs_by_distance.groupby(["cell_type", "mark", "gene_set"], sort=True):
        d, e = sub["distance_mid"].abs().to_numpy(float), sub["mean"].to_numpy(float)
        ok = e > 0
        lam = np.nan
        if ok.sum() >= 3:
            slope = np.polyfit(d[ok], np.log(e[ok]), 1)[0]
            lam = -1.0 / slope if slope < 0 else np.nan
        prov = ", ".join(sorted(set(sub["provenance"].astype(str))))
        rows.append(
            {
                "mark": mark,
                "gene_set": gs,
                "decay_length_bp": lam,
                "n_bins": int(ok.sum()),
                "cell_type": cell,
                "provenance": prov,
            }
        )
    return pd.DataFrame(rows, columns=cols)


__all__ = [
    "EFFECTS_FILE",
    "PCRE_FILE",
    "read_effects",
    "read_run_effects",
    "distal_loci",
    "filter_counts",
    "level_curves",
    "effect_by_distance",
    "decay_length",
]
