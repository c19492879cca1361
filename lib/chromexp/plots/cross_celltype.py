"""Panels of notebook 55: every model on the cross-gene and the cross-celltype axis (Mittal 2025).

Each function takes the tidy tables of :mod:`chromexp.experiments.cross_celltype` (as read back
from ``results/<run>/cross_celltype/``), returns a figure and says in its title which data it shows
(:func:`chromexp.provenance.data_label`) and over how many cell types.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd

from ..provenance import data_label

#: Colour per model family of notebook 55 (Okabe–Ito).
FAMILY_COLORS: dict[str, str] = {
    "promoter CNN (30)": "#E69F00",
    "Chromoformer (40/50)": "#56B4E9",
    "ExPecto ridge (55)": "#009E73",
    "hierarchical CNN (55)": "#D55E00",
    "other": "#7F7F7F",
}


#: Horizontal boxes: ``orientation`` since Matplotlib 3.10 (``vert`` is deprecated there), ``vert`` before.
_HORIZONTAL = (
    {"orientation": "horizontal"}
    if tuple(int(x) for x in matplotlib.__version__.split(".")[:2]) >= (3, 10)
    else {"vert": False}
)


def plot_both_axes(summary, provenance: str, n_cell_types: int) -> plt.Figure:
    """Every model on both axes: cross-gene ρ (x) against cross-celltype ρ (y), one dot per (model, marks).

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`chromexp.experiments.cross_celltype.axes_summary` rows (``scheme == "chrom_folds"``):
        ``family, model, marks, cross_gene_spearman, baseline_cross_gene_spearman,
        cross_celltype_spearman, null_spearman_q95``.
    provenance : str
    n_cell_types : int
        Shown in the caption (cross-celltype ρ over few cell types is coarse).

    Returns
    -------
    matplotlib.figure.Figure
        The dashed vertical line is the mean-of-other-cell-types baseline (mean over the models'
        genes), the dotted horizontal line the highest 95th percentile of the permutation nulls.
    """
    s = summary[summary["cross_celltype_spearman"].notna()]
    fig, ax = plt.subplots(figsize=(6.4, 4.6), layout="constrained")
    for fam, g in s.groupby("family", sort=False):
        ax.scatter(
            g["cross_gene_spearman"],
            g["cross_celltype_spearman"],
            s=26,
            color=FAMILY_COLORS.get(fam, "0.5"),
            label=f"{fam} (n={len(g)})",
            edgecolors="white",
            linewidths=0.5,
            zorder=3,
        )
    ax.axvline(
        s["baseline_cross_gene_spearman"].mean(),
        color="0.3",
        ls="--",
        lw=0.8,
        label="mean of other cell types (cross-gene)",
    )
    ax.axhline(s["null_spearman_q95"].max(), color="0.3", ls=":", lw=0.8, label="permutation null, 95th pct")
    ax.set_xlabel("cross-gene Spearman ρ (per cell type, over genes)")
    ax.set_ylabel("cross-celltype Spearman ρ (per gene, over cell types)")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncols=2)
    ax.set_title(f"Both axes, every model ({n_cell_types} cell types)\n{data_label(provenance)}", fontsize=8.5)
    return fig


def plot_hybrid_tradeoff(curve, provenance: str, n_cell_types: int, variant: str) -> plt.Figure:
    """The hybrid-loss trade-off: cross-gene against cross-celltype ρ for each (α, β) (Mittal Fig. 3.2).

    Parameters
    ----------
    curve : pandas.DataFrame
        :func:`chromexp.experiments.cross_celltype.tradeoff` rows (grid order): ``alpha, beta,
        cross_gene_spearman, baseline_cross_gene_spearman, cross_celltype_spearman,
        cross_celltype_spearman_sem, null_spearman_q95``.
    provenance : str
    n_cell_types : int
    variant : str
        The CNN variant of the grid (caption).

    Returns
    -------
    matplotlib.figure.Figure
        Left: both axes against α (β = 1; the β = 0 point on the right, apart); right: the
        trade-off itself (each point labelled with its (α, β)).
    """
    import numpy as np

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9.6, 4.4), layout="constrained")
    with_mse = curve[curve["beta"] > 0].reset_index(drop=True)
    pos = np.arange(len(with_mse))
    labels = [f"{a:g}" for a in with_mse["alpha"]]
    pearson_only = curve[curve["beta"] == 0]
    if len(pearson_only):
        pos = np.append(pos, len(with_mse) + 0.6)
        labels.append("β = 0")
    both = pd.concat([with_mse, pearson_only], ignore_index=True) if len(pearson_only) else with_mse
    a1.errorbar(
        pos,
        both["cross_celltype_spearman"],
        yerr=both["cross_celltype_spearman_sem"],
        marker="o",
        color="#D55E00",
        label="cross-celltype ρ (±SEM over genes)",
        lw=1,
        ms=4,
    )
    a1.plot(pos, both["cross_gene_spearman"], marker="s", color="#0072B2", label="cross-gene ρ", lw=1, ms=4)
    a1.axhline(
        both["baseline_cross_gene_spearman"].mean(),
        color="#0072B2",
        ls="--",
        lw=0.8,
        label="mean of other cell types (cross-gene)",
    )
    a1.axhline(both["null_spearman_q95"].max(), color="#D55E00", ls=":", lw=0.8, label="permutation null, 95th pct")
    a1.set_xticks(pos, labels)
    a1.set_xlabel("α (β = 1 unless marked)")
    a1.set_ylabel("Spearman ρ")
    a1.set_ylim(min(0.0, float(both[["cross_celltype_spearman", "cross_gene_spearman"]].min().min()) - 0.05), 1.0)
    fig.legend(*a1.get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncols=2)
    a2.plot(with_mse["cross_gene_spearman"], with_mse["cross_celltype_spearman"], "-o", color="0.4", ms=4, lw=0.8)
    for r in both.itertuples():
        a2.annotate(
            f"({r.alpha:g}, {r.beta:g})",
            (r.cross_gene_spearman, r.cross_celltype_spearman),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    if len(pearson_only):
        a2.scatter(
            pearson_only["cross_gene_spearman"],
            pearson_only["cross_celltype_spearman"],
            marker="x",
            color="black",
            zorder=3,
        )
    a2.set_xlabel("cross-gene Spearman ρ")
    a2.set_ylabel("cross-celltype Spearman ρ")
    fig.suptitle(
        f"Hybrid loss α·(1 − Pearson across cell types) + β·MSE, {variant} CNN\n{data_label(provenance)}; "
        f"{n_cell_types} cell types, fold(s) {curve['folds'].iloc[0]}",
        fontsize=8.5,
    )
    return fig


def plot_cross_celltype_distribution(per_gene, summary, provenance: str, n_cell_types: int) -> plt.Figure:
    """Per-gene cross-celltype Spearman ρ of each model: boxes (5th–95th percentile whiskers), mean, null.

    Parameters
    ----------
    per_gene : pandas.DataFrame
        :func:`chromexp.metrics.cross_celltype_metrics` per-gene rows (``model, marks,
        cross_celltype_spearman``; masked genes NaN, left out).
    summary : pandas.DataFrame
        Rows of the models to draw (``model, marks, family, cross_celltype_spearman,
        null_spearman_q95``), top to bottom in this order.
    provenance : str
    n_cell_types : int
        With few cell types a gene's ρ takes few values (caption).
    """
    rows = summary.reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7.2, 0.38 * len(rows) + 1.8), layout="constrained")
    data, colors = [], []
    for r in rows.itertuples():
        v = per_gene[(per_gene["model"] == r.model) & (per_gene["marks"] == r.marks)]["cross_celltype_spearman"]
        data.append(v.dropna().to_numpy())
        colors.append(FAMILY_COLORS.get(r.family, "0.5"))
    pos = range(len(rows))[::-1]
    box = ax.boxplot(
        data,
        positions=list(pos),
        **_HORIZONTAL,
        whis=(5, 95),
        widths=0.6,
        showfliers=False,
        patch_artist=True,
        medianprops={"color": "black", "lw": 0.8},
    )
    for patch, c in zip(box["boxes"], colors, strict=True):
        patch.set_facecolor(c)
        patch.set_alpha(0.6)
    ax.scatter(rows["cross_celltype_spearman"], list(pos), marker="D", color="black", s=14, zorder=3, label="mean")
    ax.scatter(
        rows["null_spearman_q95"],
        list(pos),
        marker="|",
        color="red",
        s=90,
        zorder=3,
        label="permutation null, 95th pct of the mean",
    )
    ax.set_yticks(
        list(pos),
        [f"{r.model} · {r.marks if len(r.marks) < 24 else 'all marks'}" for r in rows.itertuples()],
        fontsize=7,
    )
    ax.axvline(0, color="0.7", lw=0.5)
    ax.set_xlabel(f"cross-celltype Spearman ρ per gene (over {n_cell_types} cell types; unmasked test genes)")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=7, loc="outside lower center", ncols=2)
    coarse = f"; over {n_cell_types} values a gene's ρ is coarse" if n_cell_types < 8 else ""
    ax.set_title(
        f"Per-gene cross-celltype correlation (boxes: quartiles, whiskers 5th–95th pct){coarse}\n{data_label(provenance)}",
        fontsize=8.5,
    )
    return fig
