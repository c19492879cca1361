"""Gains between models, from the tidy test metrics: one definition for notebooks 40, 50 and 90.

* :func:`gain_over_promoter` (Fig. 4A/C): the distal model's test metric minus the promoter CNN's,
  per (cell type, mark set, fold) that both models have (an inner join).
* :func:`pair_gains` (Fig. 5): each pair's test metric minus its better single mark's (the member
  with the higher mean over the folds: one choice per pair and cell type) and minus the all-marks
  model's, per fold (docs/methods.md, "Mark pairs").

Notebooks 40/50 (one cell type) and notebook 90 (every cell type of a run) call the same
functions, so the per-cell-type tables and the manuscript panels cannot disagree. The inputs are
``results.METRIC_COLUMNS`` tables; ``cell_type``, ``scheme`` and ``provenance`` are used when present.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..results import marks_key

__all__ = ["gain_over_promoter", "pair_gains", "metric_rows"]


def metric_rows(metrics: pd.DataFrame, model: str, metric: str = "pearson_r") -> pd.DataFrame:
    """``model``'s test rows of ``metric`` (chromosome-fold scheme where the table has a ``scheme``).

    Returns
    -------
    pandas.DataFrame
        ``[cell_type,] marks, fold, value[, provenance]``.
    """
    if metrics.empty:
        return pd.DataFrame(columns=["marks", "fold", "value"])
    sel = metrics[(metrics["model"] == model) & (metrics["split"] == "test") & (metrics["metric"] == metric)]
    if "scheme" in sel.columns:
        sel = sel[sel["scheme"].isna() | (sel["scheme"] == "chrom_folds")]
    cols = [c for c in ("cell_type", "marks", "fold", "value", "provenance") if c in sel.columns]
    return sel[cols].reset_index(drop=True)


def gain_over_promoter(
    metrics: pd.DataFrame,
    distal_model: str = "chromoformer_reg",
    promoter_model: str = "promoter_cnn",
    metric: str = "pearson_r",
) -> pd.DataFrame:
    """Per (cell type, mark set, fold): the distal model's test metric, the promoter CNN's, and the gain.

    Only the (cell type, marks, fold) present for both models are compared.

    Returns
    -------
    pandas.DataFrame
        ``[cell_type,] marks, fold, distal, promoter, gain[, provenance]`` (provenance of the
        distal rows), sorted by the key.
    """
    d = metric_rows(metrics, distal_model, metric).rename(columns={"value": "distal"})
    p = metric_rows(metrics, promoter_model, metric).rename(columns={"value": "promoter"})
    key = [c for c in ("cell_type", "marks", "fold") if c in d.columns and c in p.columns]
    out = d.merge(p[[*key, "promoter"]], on=key, how="inner")
    out["gain"] = out["distal"] - out["promoter"]
    cols = [*key, "distal", "promoter", "gain", *(["provenance"] if "provenance" in out.columns else [])]
    return out[cols].sort_values(key).reset_index(drop=True)


def pair_gains(
    metrics: pd.DataFrame,
    model: str = "chromoformer_reg",
    metric: str = "pearson_r",
    mark_sets: Sequence[Sequence[str]] | None = None,
    all_marks: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per (cell type, mark set, fold): the gain over the better single mark and vs all marks.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy metrics of one or several cell types.
    model, metric : str
        The model whose mark sets are compared, and the test metric.
    mark_sets : sequence of sequences of str, optional
        The sets to compare (notebook 50: its pairs); each must have test results. Default:
        every two-mark set of each cell type.
    all_marks : sequence of str, optional
        The all-marks model's marks. Default: each cell type's set with the most marks, when it
        has more than two.

    Returns
    -------
    pandas.DataFrame
        ``[cell_type,] marks, fold, value, best_single, best_single_value,
        gain_over_best_single, all_marks_value, gain_over_all_marks[, provenance]``. The better
        single mark is the member with the higher mean over the folds (one choice per set); sets
        whose single-mark or all-marks results are missing get NaN there.
    """
    t = metric_rows(metrics, model, metric)
    has_cell = "cell_type" in t.columns
    value_cols = ["value", "best_single", "best_single_value", "gain_over_best_single"]
    value_cols += ["all_marks_value", "gain_over_all_marks"]
    cols = [*(["cell_type"] if has_cell else []), "marks", "fold", *value_cols]
    cols += ["provenance"] if "provenance" in t.columns else []
    rows = []
    for cell, g in t.groupby("cell_type", sort=True) if has_cell else [(None, t)]:
        by = {k: s.set_index("fold")["value"] for k, s in g.groupby("marks")}
        provenance = g.set_index(["marks", "fold"])["provenance"] if "provenance" in g.columns else None
        if mark_sets is not None:
            sets = [marks_key(s) for s in mark_sets]
            missing = [k for k in sets if k not in by]
            if missing:
                where = f" of {cell}" if cell else ""
                raise ValueError(f"No {model} test results{where} for the mark set(s) {missing}.")
        else:
            sets = sorted(k for k in by if k.count("+") == 1)
        if all_marks is not None:
            all_key = marks_key(all_marks)
        else:
            largest = max(by, key=lambda k: k.count("+"), default="")
            all_key = largest if largest.count("+") >= 2 else None
        for key in sets:
            members = key.split("+")
            singles = {m: by[m] for m in members if m in by}
            best = max(singles, key=lambda m: singles[m].mean()) if len(singles) == len(members) else None
            for fold, value in by[key].items():
                b = singles[best].get(fold, np.nan) if best else np.nan
                a = by[all_key].get(fold, np.nan) if all_key in by else np.nan
                row = {"cell_type": cell} if has_cell else {}
                row.update(
                    marks=key,
                    fold=fold,
                    value=value,
                    best_single=best or "",
                    best_single_value=b,
                    gain_over_best_single=value - b,
                    all_marks_value=a,
                    gain_over_all_marks=value - a,
                )
                if provenance is not None:
                    row["provenance"] = provenance[(key, fold)]
                rows.append(row)
    return pd.DataFrame(rows, columns=cols)
