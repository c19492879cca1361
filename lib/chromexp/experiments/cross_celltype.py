"""Notebook 55's scoring: every model family of a run on both axes, beside its baselines.

Mittal (2025) shows that a model scored by the usual **cross-gene** correlation (within a cell
type, over genes) can look excellent while it barely tells **which cell type** a gene is more
expressed in (**cross-celltype**: per gene, over cell types). This module puts every model family
of a run on both axes (:mod:`chromexp.metrics`), each number beside the baseline it has to beat:

* cross-gene: the gene's mean over the *other* cell types (``mean_other_cell_types``), scored on
  exactly the same (cell type, fold, genes) as the model;
* cross-celltype: the per-gene permutation null (the model's own predictions assigned to random
  cell types), pooled over the model's folds.

It reads the other notebooks' tidy predictions (promoter CNN of notebook 30, Chromoformer of
notebooks 40/50, and any later family's regression predictions in ``<EID>/predictions.tsv.gz``)
and takes notebook 55's own (ExPecto, hierarchical CNNs) as tables; it never opens a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics as _m
from ..provenance import provenance_phrase
from ..results import PREDICTIONS_FILE, read_table
from .hierarchical import LOCO_SCHEME, SCHEME, cnn_model_name, expecto_model_name

#: The thesis's numbers (Mittal 2025; text of §2–3, not the bar charts) that notebook 55 sets beside ours.
THESIS = pd.DataFrame(
    [
        ("cross-gene Spearman ρ", "ExPecto linear", 0.862, "Fig. 2.3, Beluga experimental tracks, test chr8"),
        ("cross-gene Spearman ρ", "single-tissue CNN", 0.884, "Fig. 2.3, Beluga experimental tracks, test chr8"),
        (
            "cross-celltype Spearman ρ",
            "multi-tissue CNN, MSE (α = 0)",
            0.427,
            "Fig. 3.1/3.2, Enformer-predicted tracks",
        ),
        ("cross-celltype Spearman ρ", "multi-tissue CNN, α = 100", 0.514, "Fig. 3.2, Enformer-predicted tracks"),
    ],
    columns=["axis", "model", "thesis", "source"],
)


def family(model: str) -> str:
    """The model family a model name belongs to (the rows of notebook 55's table)."""
    if model.startswith("promoter_cnn"):
        return "promoter CNN (30)"
    if model.startswith("chromoformer"):
        return "Chromoformer (40/50)"
    if model.startswith("expecto"):
        return "ExPecto ridge (55)"
    if model.startswith("hcnn"):
        return "hierarchical CNN (55)"
    if model == _m.MEAN_OTHER_MODEL:
        return "baseline"
    return "other"


def read_run_predictions(
    run_dir: str | Path, cell_types: Sequence[str], gene_ids: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The regression predictions the per-cell-type notebooks wrote, on the shared genes.

    Parameters
    ----------
    run_dir : path
        ``results/<run>/``; ``<EID>/predictions.tsv.gz`` is read for every cell type.
    cell_types : sequence of str
    gene_ids : iterable of str
        The genes every cell type shares (the other genes cannot be compared across cell types).

    Returns
    -------
    predictions : pandas.DataFrame
        ``cell_type, model, marks, scheme, fold, gene_id, observed, predicted, provenance`` of the
        regression models (classifier rows, which carry a ``probability``, are left out).
    report : pandas.DataFrame
        Per (cell type, model): rows read, rows kept, and why the others were left out.
    """
    keep_genes = set(gene_ids)
    frames, report = [], []
    for c in cell_types:
        path = Path(run_dir) / c / PREDICTIONS_FILE
        t = read_table(path)
        if t.empty:
            report.append({"cell_type": c, "model": "(none)", "rows": 0, "kept": 0, "note": f"no {path.name}"})
            continue
        if "probability" in t.columns:
            clf = t["probability"].notna()
        else:
            clf = pd.Series(False, index=t.index)
        if "split" in t.columns:
            clf |= t["split"].astype(str) != "test"
        shared = t["gene_id"].astype(str).isin(keep_genes)
        for model, g in t.groupby("model"):
            k = ~clf[g.index] & shared[g.index]
            note = []
            if clf[g.index].any():
                note.append(f"{int(clf[g.index].sum())} classifier / non-test rows")
            if (~shared[g.index]).any():
                note.append(f"{int((~shared[g.index]).sum())} rows of genes not in every cell type")
            report.append(
                {"cell_type": c, "model": model, "rows": len(g), "kept": int(k.sum()), "note": "; ".join(note)}
            )
        t = t[~clf & shared]
        if "scheme" not in t.columns:
            t = t.assign(scheme=SCHEME)
        frames.append(
            t[["cell_type", "model", "marks", "scheme", "fold", "gene_id", "observed", "predicted", "provenance"]]
        )
    pred = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return pred, pd.DataFrame(report)


def baseline_beside(predictions: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """The mean-of-other-cell-types baseline's cross-gene metrics on each model's own (cell type, fold, genes).

    Parameters
    ----------
    predictions : pandas.DataFrame
        Test predictions of the models (``scheme, model, marks, cell_type, fold, gene_id``).
    baseline : pandas.DataFrame
        :func:`chromexp.metrics.mean_other_predictions` over every shared (cell type, gene).

    Returns
    -------
    pandas.DataFrame
        ``scheme, model, marks, cell_type, fold, n_genes, metric, value`` with the baseline's
        :data:`chromexp.metrics.CROSS_GENE_METRICS`.
    """
    base = baseline[["cell_type", "gene_id", "observed", "predicted"]]
    out = []
    for (scheme, model, marks), g in predictions.groupby(["scheme", "model", "marks"], sort=True):
        rows = g[["cell_type", "fold", "gene_id"]].merge(base, on=["cell_type", "gene_id"], how="inner")
        if len(rows) != len(g):
            raise ValueError(
                f"{model} {marks}: {len(g) - len(rows)} prediction rows have no baseline (gene not in every cell type)."
            )
        t = _m.cross_gene_metrics(rows.assign(model=_m.MEAN_OTHER_MODEL, marks=_m.NO_MARKS, scheme=scheme))
        out.append(t.assign(scheme=scheme, model=model, marks=marks))
    return pd.concat(out, ignore_index=True)[
        ["scheme", "model", "marks", "cell_type", "fold", "n_genes", "metric", "value"]
    ]


def axes_summary(
    predictions: pd.DataFrame,
    baseline: pd.DataFrame,
    cell_types: Sequence[str],
    *,
    n_permutations: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Both axes for every (model, marks, scheme), with their baselines.

    Cross-gene: Spearman ρ and Pearson r per (cell type, fold), averaged over folds per cell type
    and then over cell types (SEM over cell types, as Mittal reports ±1 SEM over tissues), the
    mean-of-other-cell-types baseline on the same genes beside it. Cross-celltype (models with
    predictions in every cell type): per gene over the cell types, the mean over the model's
    unmasked test genes of all its folds (SEM over genes), the pooled per-gene permutation null
    (its 95th percentile and one-sided p), genes masked (constant across cell types) counted.

    Returns
    -------
    summary : pandas.DataFrame
        One row per (family, model, marks, scheme).
    metrics : pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``): cross-gene rows per (cell type, fold),
        cross-celltype rows per fold (``cell_type = "all"``), the baseline's rows (model
        ``mean_other_cell_types``).
    per_gene : pandas.DataFrame
        :func:`chromexp.metrics.cross_celltype_metrics`'s per-gene table.
    """
    cell_types = list(cell_types)
    cg = _m.cross_gene_metrics(predictions)
    base_rows = baseline_beside(predictions, baseline)
    full = predictions.groupby(["scheme", "model", "marks"])["cell_type"].transform("nunique") == len(cell_types)
    cc, per_gene = pd.DataFrame(), pd.DataFrame()
    if full.any():
        per_gene, cc = _m.cross_celltype_metrics(
            predictions[full], cell_types, n_permutations=n_permutations, seed=seed
        )
    base_metrics = _m.cross_gene_metrics(baseline)
    tidy = pd.concat([cg, cc, base_metrics], ignore_index=True)

    rows = []
    pooled = _m.wide_by_cell_type(predictions[full], cell_types, by_fold=False) if full.any() else {}
    for (scheme, model, marks), g in predictions.groupby(["scheme", "model", "marks"], sort=True):
        sel = (cg["scheme"] == scheme) & (cg["model"] == model) & (cg["marks"] == marks)
        bsel = (base_rows["scheme"] == scheme) & (base_rows["model"] == model) & (base_rows["marks"] == marks)
        row = {
            "family": family(model),
            "model": model,
            "marks": marks,
            "scheme": scheme,
            "folds": ",".join(str(f) for f in sorted(g["fold"].unique())),
            "n_cell_types": g["cell_type"].nunique(),
        }
        for metric in _m.CROSS_GENE_METRICS:
            per_cell = cg[sel & (cg["metric"] == metric)].groupby("cell_type")["value"].mean()
            base_cell = base_rows[bsel & (base_rows["metric"] == metric)].groupby("cell_type")["value"].mean()
            row[metric] = per_cell.mean()
            row[f"{metric}_sem"] = per_cell.std(ddof=1) / np.sqrt(len(per_cell)) if len(per_cell) > 1 else np.nan
            row[f"baseline_{metric}"] = base_cell.mean()
        w = pooled.get((scheme, model, marks))
        if w is not None and len(w["gene_id"]):
            sp = _m.cross_celltype_correlations(w["observed"], w["predicted"], "spearman")
            pe = _m.cross_celltype_correlations(w["observed"], w["predicted"], "pearson")
            keep = ~sp["masked"]
            row.update(
                cross_celltype_spearman=np.nanmean(sp["r"]) if keep.any() else np.nan,
                cross_celltype_spearman_sem=np.nanstd(sp["r"], ddof=1) / np.sqrt(keep.sum())
                if keep.sum() > 1
                else np.nan,
                cross_celltype_pearson=np.nanmean(pe["r"]) if keep.any() else np.nan,
                cross_celltype_centred_pearson=_m.centred_pearson(w["observed"], w["predicted"]),
                n_genes=int(keep.sum()),
                n_genes_masked=int(sp["masked"].sum()),
                n_genes_incomplete=int(w["n_incomplete"]),
            )
            if keep.any():
                null = _m.cross_celltype_permutation_null(
                    w["observed"], w["predicted"], method="spearman", n_permutations=n_permutations, seed=seed
                )
                row.update(null_spearman_mean=null["null_mean"], null_spearman_q95=null["null_q95"], null_p=null["p"])
        rows.append(row)
    summary = pd.DataFrame(rows)
    if "provenance" in predictions.columns:
        prov = sorted(set(predictions["provenance"].dropna().astype(str)))
        summary["data"] = "+".join(prov)
    return summary, tidy, per_gene


def tradeoff(summary: pd.DataFrame, variant: str, grid: Sequence[Sequence[float]]) -> pd.DataFrame:
    """The hybrid-loss trade-off: both axes of ``variant`` for each (α, β) of ``grid``, in grid order."""
    rows = []
    for alpha, beta in grid:
        name = cnn_model_name(variant, alpha, beta)
        r = summary[(summary["model"] == name) & (summary["scheme"] == SCHEME)]
        if r.empty:
            raise ValueError(f"No results for {name} (α = {alpha:g}, β = {beta:g}) in the summary.")
        r = r.iloc[0]
        rows.append(
            {
                "alpha": float(alpha),
                "beta": float(beta),
                "model": name,
                "cross_gene_spearman": r["cross_gene_spearman"],
                "baseline_cross_gene_spearman": r["baseline_cross_gene_spearman"],
                "cross_celltype_spearman": r.get("cross_celltype_spearman", np.nan),
                "cross_celltype_spearman_sem": r.get("cross_celltype_spearman_sem", np.nan),
                "cross_celltype_pearson": r.get("cross_celltype_pearson", np.nan),
                "cross_celltype_centred_pearson": r.get("cross_celltype_centred_pearson", np.nan),
                "null_spearman_q95": r.get("null_spearman_q95", np.nan),
                "folds": r["folds"],
            }
        )
    return pd.DataFrame(rows)


def loco_table(predictions: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """Unseen cell types: cross-gene ρ of each leave-one-out model beside the seen model and the baseline.

    Per held-out cell type: the model that never saw it, the same family trained *with* it, and the
    mean of the other cell types, all on the same (cell type, fold, genes).

    Returns
    -------
    pandas.DataFrame
        ``cell_type, model, folds, n_genes, unseen_cross_gene_spearman, seen_cross_gene_spearman,
        baseline_cross_gene_spearman`` (and the Pearson versions); means over the folds run.
    """
    loco = predictions[predictions["scheme"] == LOCO_SCHEME]
    if loco.empty:
        raise ValueError("No leave-one-cell-type-out predictions (scheme leave_one_cell_type_out).")
    seen_model = {
        cnn_model_name("matched_shared"): cnn_model_name("matched_shared"),
        expecto_model_name("matched"): expecto_model_name("matched"),
    }
    out = []
    for (model, cell), g in loco.groupby(["model", "cell_type"], sort=True):
        keys = g[["cell_type", "fold", "gene_id"]]
        un = _m.cross_gene_metrics(g)
        seen = predictions[(predictions["scheme"] == SCHEME) & (predictions["model"] == seen_model.get(model, model))]
        seen = seen.merge(keys, on=["cell_type", "fold", "gene_id"], how="inner")
        base = keys.merge(baseline[["cell_type", "gene_id", "observed", "predicted"]], on=["cell_type", "gene_id"])
        base = _m.cross_gene_metrics(base.assign(model=_m.MEAN_OTHER_MODEL, marks=_m.NO_MARKS, scheme=LOCO_SCHEME))
        seen_m = _m.cross_gene_metrics(seen) if len(seen) == len(g) else None
        row = {
            "cell_type": cell,
            "model": model,
            "folds": ",".join(map(str, sorted(g["fold"].unique()))),
            "n_genes": len(g),
        }
        for metric in ("cross_gene_spearman", "cross_gene_pearson"):
            row[f"unseen_{metric}"] = un.loc[un["metric"] == metric, "value"].mean()
            row[f"seen_{metric}"] = (
                seen_m.loc[seen_m["metric"] == metric, "value"].mean() if seen_m is not None else np.nan
            )
            row[f"baseline_{metric}"] = base.loc[base["metric"] == metric, "value"].mean()
        out.append(row)
    t = pd.DataFrame(out)
    t["beats_baseline"] = t["unseen_cross_gene_spearman"] > t["baseline_cross_gene_spearman"]
    return t


def thesis_comparison(summary: pd.DataFrame, linear: str, cnn: str, mse_model: str, hybrid_model: str) -> pd.DataFrame:
    """The thesis's four numbers beside ours (semi-synthetic or real, from the summary's ``data``)."""

    def val(model: str, col: str) -> float:
        r = summary[(summary["model"] == model) & (summary["scheme"] == SCHEME)]
        return float(r[col].iloc[0]) if len(r) and col in r else np.nan

    ours = [
        (linear, val(linear, "cross_gene_spearman"), val(linear, "baseline_cross_gene_spearman")),
        (cnn, val(cnn, "cross_gene_spearman"), val(cnn, "baseline_cross_gene_spearman")),
        (mse_model, val(mse_model, "cross_celltype_spearman"), np.nan),
        (hybrid_model, val(hybrid_model, "cross_celltype_spearman"), np.nan),
    ]
    t = THESIS.copy()
    t["our_model"] = [o[0] for o in ours]
    t["ours"] = [o[1] for o in ours]
    t["mean_other_cell_types_baseline"] = [o[2] for o in ours]
    t["data"] = summary["data"].iloc[0] if "data" in summary else ""
    return t


def common_folds(predictions: pd.DataFrame) -> list[int]:
    """The folds every model of ``predictions`` (chromosome-fold scheme) has test predictions for."""
    p = predictions[predictions["scheme"] == SCHEME]
    per_model = [set(int(f) for f in g.unique()) for _, g in p.groupby(["model", "marks"])["fold"]]
    if not per_model:
        raise ValueError("No chromosome-fold predictions to compare.")
    return sorted(set.intersection(*per_model))


def answer(
    summary: pd.DataFrame,
    curve: pd.DataFrame | None,
    loco: pd.DataFrame | None,
    n_cell_types: int,
    provenance: str,
    thesis: pd.DataFrame | None = None,
) -> str:
    """Notebook 55's **Answer**, written from its tables (``summary`` on the folds every family shares)."""
    s = summary[(summary["scheme"] == SCHEME) & summary["cross_celltype_spearman"].notna()]
    s = s.sort_values("cross_celltype_spearman", ascending=False)
    folds = sorted({f for x in s["folds"].astype(str) for f in x.split(",")}) if len(s) else []
    parts = [
        f"**Answer.** {provenance_phrase(provenance)}, over {n_cell_types} cell types and the test genes of "
        f"fold(s) {', '.join(folds)}:"
    ]
    if len(s):
        best, worst = s.iloc[0], s.iloc[-1]
        above = int((s["cross_celltype_spearman"] > s["null_spearman_q95"]).sum())
        parts.append(
            f"{above} of {len(s)} models rank a gene's cell types better than the 95th percentile of their permutation "
            f"null (≈ {s['null_spearman_q95'].max():.2f}); the best cross-celltype Spearman ρ is "
            f"{best['cross_celltype_spearman']:.3f} ({best['model']} {_short(best['marks'])}), the lowest "
            f"{worst['cross_celltype_spearman']:.3f} ({worst['model']} {_short(worst['marks'])}); "
            f"{int(s['n_genes_masked'].max())} genes were constant across the cell types and masked."
        )
        beat = s[s["cross_gene_spearman"] > s["baseline_cross_gene_spearman"]]
        parts.append(
            f"On the cross-gene axis {len(beat)} of {len(s)} beat the mean of the other cell types "
            f"(ρ {s['baseline_cross_gene_spearman'].mean():.3f} on the same genes)."
        )
    if thesis is not None and len(thesis) == 4 and np.isfinite(thesis["ours"].to_numpy(float)).all():
        t = thesis.reset_index(drop=True)
        parts.append(
            f"Cross-gene ρ, linear vs CNN: {t.loc[0, 'ours']:.3f} ({t.loc[0, 'our_model']}) vs {t.loc[1, 'ours']:.3f} "
            f"({t.loc[1, 'our_model']}), the mean of the other cell types {t.loc[1, 'mean_other_cell_types_baseline']:.3f} "
            f"(thesis: 0.862 vs 0.884, GTEx tissues, no such baseline reported); cross-celltype ρ of the "
            f"{t.loc[2, 'our_model']} from MSE to α = 100: {t.loc[2, 'ours']:.3f} → {t.loc[3, 'ours']:.3f} "
            "(thesis: 0.427 → 0.514)."
        )
    if curve is not None and len(curve) > 1:
        pts = "; ".join(
            f"(α={r.alpha:g}, β={r.beta:g}) {r.cross_gene_spearman:.3f} / {r.cross_celltype_spearman:.3f}"
            for r in curve.itertuples()
        )
        mse = curve[(curve["alpha"] == 0)]
        hyb = curve[(curve["alpha"] > 0) & (curve["beta"] > 0)]
        trend = ""
        if len(mse) and len(hyb):
            up = hyb["cross_celltype_spearman"].max() - mse["cross_celltype_spearman"].iloc[0]
            trend = (
                f" Adding the cross-celltype term {'raises' if up > 0 else 'does not raise'} the cross-celltype ρ "
                f"(best hybrid {hyb['cross_celltype_spearman'].max():.3f} vs MSE {mse['cross_celltype_spearman'].iloc[0]:.3f})."
            )
        parts.append(f"Hybrid loss, cross-gene / cross-celltype ρ: {pts}.{trend}")
    if loco is not None and len(loco):
        words = []
        for m, g in loco.groupby("model"):
            margin = g["unseen_cross_gene_spearman"] - g["baseline_cross_gene_spearman"]
            cost = g["seen_cross_gene_spearman"] - g["unseen_cross_gene_spearman"]
            words.append(
                f"{m} beats the mean of the other cell types in {int(g['beats_baseline'].sum())} of {len(g)} held-out "
                f"cell types (Δρ {margin.min():+.3f} to {margin.max():+.3f}); the same model trained with the cell "
                f"type scores {cost.mean():+.3f} ρ more on average"
            )
        parts.append("Unseen cell types: " + "; ".join(words) + ".")
    if n_cell_types < 8:
        parts.append(
            f"A per-gene correlation over {n_cell_types} cell types takes few distinct values: the cross-celltype numbers "
            "are coarse here (the full preset has 11 cell types); the pooled centred Pearson r is shown beside them."
        )
    return " ".join(parts)


def _short(marks: str) -> str:
    return "(all 7 marks)" if marks.count("+") == 6 else marks


def selection_summary(selection: pd.DataFrame) -> pd.DataFrame:
    """How often each ridge α was chosen, per ExPecto model."""
    chosen = selection[selection["chosen"]]
    return chosen.groupby(["model", "alpha"]).size().rename("times_chosen").reset_index()


def check_tables(summary: pd.DataFrame, expected: Mapping[str, Sequence[str]]) -> None:
    """Every expected model has a summary row and finite cross-gene numbers; raises naming the first gap."""
    for scheme, models in expected.items():
        for model in models:
            r = summary[(summary["scheme"] == scheme) & (summary["model"] == model)]
            if r.empty:
                raise ValueError(f"No results for {model} ({scheme}).")
            if not np.isfinite(r["cross_gene_spearman"].to_numpy(float)).all():
                raise ValueError(f"{model} ({scheme}): non-finite cross-gene Spearman.")


def expected_models(
    modes: Sequence[str],
    variants: Sequence[str],
    hybrid_variant: str,
    grid: Sequence[Sequence[float]],
    held_out: Sequence[str],
) -> dict[str, list[str]]:
    """The models notebook 55 must have trained, per scheme (for :func:`check_tables`)."""
    chrom = [expecto_model_name(m) for m in modes] + [cnn_model_name(v) for v in variants]
    chrom += [cnn_model_name(hybrid_variant, a, b) for a, b in grid]
    out = {SCHEME: sorted(set(chrom))}
    if held_out:
        out[LOCO_SCHEME] = [expecto_model_name("matched"), cnn_model_name("matched_shared")]
    return out


def distribution_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The models of the per-gene distribution figure: each single-mark family's best mark set, and every other model.

    Families with one model per mark set (promoter CNN, Chromoformer) contribute their best two
    mark sets by cross-celltype ρ; ExPecto and the hierarchical CNNs every model. Ordered by
    family, then by cross-celltype ρ (best first).
    """
    s = summary[(summary["scheme"] == SCHEME) & summary["cross_celltype_spearman"].notna()]
    parts = []
    for fam, g in s.groupby("family", sort=True):
        g = g.sort_values("cross_celltype_spearman", ascending=False)
        parts.append(g.head(2) if fam in ("promoter CNN (30)", "Chromoformer (40/50)") else g)
    if not parts:
        raise ValueError("No model has cross-celltype results to draw.")
    return pd.concat(parts, ignore_index=True)
