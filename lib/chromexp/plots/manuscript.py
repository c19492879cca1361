"""The manuscript figures 1–8 (notebook 90): one function per panel, from tidy tables only.

Each ``figN_<panel>`` function takes the tidy tables of :mod:`chromexp.analyses.summary` (never a model
or a dataset) and returns a :class:`matplotlib.figure.Figure` whose title says which published
panel it corresponds to, the metric, the split and — from the tables' ``provenance`` column —
whether it shows semi-synthetic or real data. Statistical panels are drawn with seaborn under
the project theme (:func:`chromexp.plots.style.theme`); the locus view is custom matplotlib.

:data:`PANELS` registers every panel with the tables it needs; :func:`draw` builds one panel for
a run, or returns a visible note when its inputs are missing (never an error, never a fake panel).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..analyses import attribution, effects, gains, statistics, summary
from ..constants import MARKS
from .style import MARK_COLORS, metric_label, save_figure, theme, tissue_label

CLASS_COLORS = {"active": "#CC79A7", "repressive": "#0072B2"}
REGION_COLORS = {"promoter": "#D55E00", "distal": "#009E73"}
REGION_TITLES = {"promoter": "promoter", "distal": "distal 2 kb regions"}
#: Locus sets of the eQTL test (notebook 70) as a reader says them.
SET_LABELS = {
    "max_activity": "max-activity bin",
    "pchic": "pcHi-C fragments",
    "proximal": "proximal 2 kb bins",
}
#: s-LDSC annotations of notebook 80 as a reader says them (``top_<EID>`` is handled by :func:`annotation_label`).
ANNOTATION_LABELS = {
    "top_pooled": "top decile, all cell types",
    "planted_enhancers": "planted enhancers (positive control)",
    "random_bins": "random distal bins (null control)",
}
#: Below this a p-value is not resolved by double-precision arithmetic: shown as "< 1e-16", never "0".
P_FLOOR = 1e-16


def _title(fig: plt.Figure, what: str, paper: str, metric: str, split: str, label: str, y: float | None = None) -> None:
    """The caption every panel carries: what, published panel, metric, split, data provenance."""
    import textwrap

    kw = {} if y is None else {"y": y}
    width = max(70, min(140, int(fig.get_figwidth() * 15)))  # characters of 9-pt text across the figure
    nbsp = "\u00a0"  # the "(paper ...)" reference is never broken across lines
    ref = f"(paper {paper})"
    wrap = textwrap.TextWrapper(width, break_on_hyphens=False, break_long_words=False).fill
    head = wrap(f"{what} {ref.replace(' ', nbsp)}").replace(nbsp, " ")
    # the data label (provenance) is never broken either: "real data" must read as one phrase
    tail = wrap(f"{metric_label(metric)} · {split} · {label.replace(' ', nbsp)}").replace(nbsp, " ")
    fig.suptitle(f"{head}\n{tail}", fontsize=9, **kw)


def format_p(p: float, floor: float = P_FLOOR) -> str:
    """``"= 0.012"``, ``"< 1e-16"`` below the resolution ``floor`` (never "0"), ``"n/a"`` for NaN."""
    if p is None or not np.isfinite(p):
        return "n/a"
    return f"< {floor:.0e}" if p < floor else f"= {p:.2g}"


#: Attribution methods of notebook 60 (``perturbation.attribution.methods``) as a reader says them.
METHOD_LABELS = {
    "saliency": "input gradient (saliency)",
    "input_x_gradient": "gradient × input",
    "integrated_gradients": "integrated gradients",
}


def method_label(name: str) -> str:
    """``input_x_gradient`` -> ``gradient × input``."""
    return METHOD_LABELS.get(name, name.replace("_", " "))


def set_label(name: str) -> str:
    """``decile_10`` -> ``decile 10``, ``max_activity`` -> ``max-activity bin``."""
    if name.startswith("decile_"):
        return f"decile {name.split('_', 1)[1]}"
    return SET_LABELS.get(name, name.replace("_", " "))


def annotation_label(name: str) -> str:
    """``top_E066`` -> ``top decile, E066``; controls named as such."""
    if name in ANNOTATION_LABELS:
        return ANNOTATION_LABELS[name]
    if name.startswith("top_"):
        return f"top decile, {name[4:]}"
    return name.replace("_", " ")


def _folds(table: pd.DataFrame) -> str:
    """How many fold models are behind effects: never "averaged" for one."""
    n = _fold_count(table)
    if n is None:
        return "fold models (count not recorded)"
    return "1 fold model (not an average over folds)" if n == 1 else f"mean over {n} fold models"


class MissingInputError(ValueError):
    """A panel's input table is absent, empty or lacks the rows/columns the panel needs."""


def _grid(n_rows: int, n_cols: int, panel: tuple[float, float], margin: tuple[float, float], **kw):
    """A figure of ``n_rows`` × ``n_cols`` panels, ``axes`` always 2-D.

    Each panel is ``panel`` (width, height) inches; ``margin`` inches are added for titles and legends.
    Keywords (``sharey``...) go to :func:`matplotlib.pyplot.subplots`.
    """
    width, height = panel[0] * n_cols + margin[0], panel[1] * n_rows + margin[1]
    return plt.subplots(n_rows, n_cols, figsize=(width, height), squeeze=False, constrained_layout=True, **kw)


def _need(table: pd.DataFrame, columns, name: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if table.empty or missing:
        raise MissingInputError(f"The {name} table is empty or lacks column(s) {missing}; cannot draw this panel.")


def _marks_order(values) -> list[str]:
    values = set(values)
    singles = [m for m in MARKS if m in values]
    return singles + sorted((v for v in values if v not in singles), key=lambda v: (v.count("+"), v))


def _black(hues) -> dict:
    """A palette drawing every hue level in black (fold dots over coloured bars)."""
    return {h: "black" for h in dict.fromkeys(hues)}


def _boxes_with_points(ax, t: pd.DataFrame, x: str, hue: str, order, hue_order, palette) -> None:
    """Boxes of ``t["value"]`` per (x, hue) without fliers, every value drawn over them as a black dot."""
    import seaborn as sns

    common = dict(x=x, y="value", hue=hue, order=order, hue_order=hue_order, ax=ax)
    sns.boxplot(t, **common, fliersize=0, palette=palette)
    sns.stripplot(t, **common, dodge=True, palette=_black(hue_order), size=3, legend=False)


def _short(marks: str) -> str:
    return "all marks" if marks.count("+") >= 6 else marks


# ---------------------------------------------------------------------------------------------
# Fig. 1 — promoter model by mark and by cell type
# ---------------------------------------------------------------------------------------------
#: Where the naive-baseline markers of Fig. 1A sit: right of a 0.5-wide bar, one column per flank.
NAIVE_OFFSET, NAIVE_STEP = 0.36, 0.14


def fig1a_promoter_by_mark(
    metrics: pd.DataFrame, model: str = "promoter_cnn", metric: str = "pearson_r", naive_metric: str = "abs_pearson_r"
) -> plt.Figure:
    """Promoter model test performance per mark over all cell types, with the naive baselines (Fig. 1A).

    Bars: mean over (cell type, fold); dots: one per (cell type, fold), coloured by cell type;
    grey markers: naive |r| of the mean signal over TSS ± flank (mean over cell types and folds).
    """
    import seaborn as sns

    t = summary.single_mark_tests(metrics, model, metric)
    _need(t, ["marks", "value", "cell_type"], f"{model} {metric} test")
    naive = metrics[metrics["model"].str.startswith("naive_tss") & (metrics["metric"] == naive_metric)]
    marks = [m for m in MARKS if m in set(t["marks"])]
    with theme():
        fig, ax = plt.subplots(figsize=(1.0 * len(marks) + 3.0, 3.6), constrained_layout=True)
        sns.barplot(t, x="marks", y="value", order=marks, errorbar=None, color="0.85", width=0.5, ax=ax)
        for patch, mark in zip(ax.patches, marks):
            patch.set_facecolor(MARK_COLORS[mark])
            patch.set_alpha(0.6)
        sns.stripplot(t, x="marks", y="value", order=marks, hue="cell_type", dodge=False, jitter=0.12, size=3.5, ax=ax)
        for k, (name, rows) in enumerate(sorted(naive.groupby("model"), key=lambda kv: int(kv[0][9:] or 0))):
            nm = rows.groupby("marks")["value"].mean().reindex(marks)
            ax.scatter(
                np.arange(len(marks)) + NAIVE_OFFSET + NAIVE_STEP * k,  # beside the bar, apart from each other
                nm,
                marker=["_", "x", "+"][k % 3],
                s=55,
                color="0.25",
                zorder=4,
                label=f"naive |r|, TSS ± {name[9:]} bp",
            )
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xlabel("")
        ax.set_ylabel(f"test {metric_label(metric)}")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        _title(
            fig,
            f"Promoter CNN (TSS ± 3 kb) by mark, {t['cell_type'].nunique()} cell type(s); bars mean, dots (cell type, fold)",
            "Fig. 1A",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(t, naive),
        )
    return fig


def fig1b_promoter_by_cell_type(
    metrics: pd.DataFrame, model: str = "promoter_cnn", metric: str = "pearson_r"
) -> plt.Figure:
    """Heatmap of the promoter model's mean test performance per cell type × mark, annotated mean ± SD over folds (Fig. 1B)."""
    import seaborn as sns

    t = summary.single_mark_tests(metrics, model, metric)
    _need(t, ["marks", "value", "cell_type"], f"{model} {metric} test")
    g = t.groupby(["cell_type", "marks"])["value"]
    mean = g.mean().unstack()
    sd = g.std().unstack()
    n = g.count().unstack()
    marks = [m for m in MARKS if m in mean.columns]
    mean, sd, n = mean[marks], sd[marks], n[marks]
    rows = [f"{c} ({summary.cell_state(c)})" for c in mean.index]
    annot = np.vectorize(
        lambda m, s, k: "" if np.isnan(m) else f"{m:.2f}\n±{0 if np.isnan(s) else s:.2f} (n={int(k)})"
    )(mean.to_numpy(), sd.to_numpy(), n.fillna(0).to_numpy())
    with theme():
        fig, ax = plt.subplots(figsize=(1.3 * len(marks) + 2.5, 0.7 * len(rows) + 1.8), constrained_layout=True)
        sns.heatmap(
            pd.DataFrame(mean.to_numpy(), index=rows, columns=marks),
            annot=annot,
            fmt="",
            annot_kws={"fontsize": 6},
            cmap="viridis",
            vmin=min(0.0, float(np.nanmin(mean.to_numpy()))),
            vmax=1.0,
            cbar_kws={"label": f"mean test {metric_label(metric)}"},
            ax=ax,
        )
        ax.set_xlabel("")
        ax.set_ylabel("")
        _title(
            fig,
            "Promoter CNN by cell type and mark (mean ± SD over folds)",
            "Fig. 1B",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(t),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 2 — correlation of predictions, active vs repressive by cell state
# ---------------------------------------------------------------------------------------------
def fig2a_prediction_correlation(correlations: pd.DataFrame) -> plt.Figure:
    """Clustered matrix of correlations between single-mark models' predictions (Fig. 2A; seaborn clustermap).

    ``correlations``: :func:`chromexp.analyses.summary.prediction_correlations` (per cell type); the matrix
    is their Fisher-z mean, clustered by average linkage on 1 − r.
    """
    import seaborn as sns
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform

    _need(correlations, ["mark_a", "mark_b", "r", "cell_type"], "prediction correlation")
    m = summary.mean_correlation_matrix(correlations)
    if len(m) < 2:
        raise MissingInputError("Need predictions of at least two single-mark models to cluster.")
    dist = squareform(np.clip(1 - m.to_numpy(), 0, 2), checks=False)
    link = linkage(dist, method="average")
    spread = correlations[correlations["mark_a"] != correlations["mark_b"]].groupby(["mark_a", "mark_b"])["r"]
    lo, hi = spread.min().unstack().reindex_like(m), spread.max().unstack().reindex_like(m)
    ncell = correlations["cell_type"].nunique()
    annot = np.vectorize(lambda r, a, b: f"{r:.2f}" if np.isnan(a) or ncell < 2 else f"{r:.2f}\n[{a:.2f}, {b:.2f}]")(
        m.to_numpy(), lo.to_numpy(), hi.to_numpy()
    )
    with theme():
        size = 1.0 * len(m) + 2.5
        g = sns.clustermap(
            m,
            row_linkage=link,
            col_linkage=link,
            cmap="vlag",
            vmin=-1,
            vmax=1,
            annot=annot,
            fmt="",
            annot_kws={"fontsize": 6},
            figsize=(size, size),
            cbar_kws={"label": "r"},
        )
        g.ax_heatmap.set_xlabel("")
        g.ax_heatmap.set_ylabel("")
        fig = g.figure
        fig.chromexp_clustergrid = g  # the seaborn ClusterGrid (dendrograms, reordered labels)
        _title(
            fig,
            f"Correlation of single-mark promoter-model predictions across genes, mean over {ncell} cell type(s) "
            "(Fisher z; [min, max] over cell types); average-linkage clustering on 1 − r",
            "Fig. 2A",
            "Pearson r between models' test predictions",
            "test split of chromosome folds",
            summary.provenance_label(correlations),
            y=1.12,
        )
    return fig


def fig2b_cell_state(
    metrics: pd.DataFrame, contrasts: pd.DataFrame, model: str = "promoter_cnn", metric: str = "pearson_r"
) -> plt.Figure:
    """Active vs repressive marks by cell state (Fig. 2B): two-group and four-state panels with BH q-values."""
    t = summary.single_mark_tests(metrics, model, metric)
    _need(t, ["value", "cell_state", "mark_class"], f"{model} {metric} test")
    t = t.assign(
        group=np.where(t["cell_state"].isin(summary.ESC_GROUP), summary.ESC_GROUP_NAME, summary.REST_GROUP_NAME)
    )
    classes = [c for c in ("active", "repressive") if c in set(t["mark_class"])]
    groups = [summary.ESC_GROUP_NAME, summary.REST_GROUP_NAME]
    states = [s for s in summary.STATES if s in set(t["cell_state"])]
    with theme():
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), constrained_layout=True)
        ax = axes[0]
        _boxes_with_points(ax, t, "mark_class", "group", classes, groups, ["#E69F00", "0.6"])
        two = contrasts[(contrasts["contrast_kind"] == "two-group")] if not contrasts.empty else contrasts
        ytop = float(t["value"].max())
        for i, c in enumerate(classes):
            row = two[two["unit"] == c] if not two.empty else two
            text = f"q = {row['q'].iloc[0]:.2g}" if len(row) else "not testable (one group empty)"
            ax.text(i, ytop + 0.05, text, ha="center", fontsize=7)
        ax.set_ylim(top=ytop + 0.15)
        ax.set_xlabel("mark class")
        ax.set_ylabel(f"test {metric_label(metric)}")
        ax.legend(fontsize=7, loc="lower left")
        ax.set_title("ESC + ESC-derived vs the rest", fontsize=9)
        ax = axes[1]
        _boxes_with_points(ax, t, "cell_state", "mark_class", states, classes, CLASS_COLORS)
        four = contrasts[contrasts["contrast_kind"] == "four-state"] if not contrasts.empty else contrasts
        sig = four[four["q"] < 0.05] if not four.empty else four
        note = (
            "; ".join(f"{r.unit}: {r.group_a} vs {r.group_b} q={r.q:.2g}" for r in sig.itertuples())
            if len(sig)
            else "no pair of states differs at q < 0.05"
        )
        n = len(states)
        if n >= 2:
            ax.set_title(f"{n} cell states, every pair ({note})", fontsize=8)
        else:
            ax.set_title(f"{n} cell state{'s' if n != 1 else ''}: not testable (fewer than two states)", fontsize=8)
        ax.set_xlabel("cell state")
        ax.set_ylabel("")
        ax.legend(fontsize=7, loc="lower left")
        _title(
            fig,
            "Active vs repressive single-mark promoter models by cell state; dots = (cell type, fold); "
            "two-sided Wilcoxon rank-sum, BH-FDR within each family of contrasts (folds of a cell type are not "
            "independent)",
            "Fig. 2B",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(t),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 3 — histone level vs performance; levels by state for high/low expressed genes
# ---------------------------------------------------------------------------------------------
def fig3a_level_vs_performance(points: pd.DataFrame, tests: pd.DataFrame, metric: str = "pearson_r") -> plt.Figure:
    """Mean promoter level of a mark vs its model's performance, one point per (cell type, mark) (Fig. 3A).

    x error bars: bootstrap 95 % CI over genes; y error bars: SD over folds.
    """
    _need(points, ["mark", "level_mean", "perf_mean", "level_lo", "level_hi", "perf_sd"], "level vs performance")
    with theme():
        fig, ax = plt.subplots(figsize=(5.8, 4.0), constrained_layout=True)
        for mark in _marks_order(points["mark"]):
            p = points[points["mark"] == mark]
            ax.errorbar(
                p["level_mean"],
                p["perf_mean"],
                xerr=[p["level_mean"] - p["level_lo"], p["level_hi"] - p["level_mean"]],
                yerr=p["perf_sd"].fillna(0),
                fmt="o",
                ms=5,
                color=MARK_COLORS.get(mark, "0.3"),
                label=mark,
                capsize=2,
                lw=0.8,
            )
        ax.set_xlabel("mean promoter level, ln(depth + 1), TSS ± 3 kb (95 % CI over genes)")
        ax.set_ylabel(f"test {metric_label(metric)} (mean ± SD over folds)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        if not tests.empty:
            r = tests[tests["points"] == "all marks"].iloc[0]
            ax.set_title(
                f"Spearman ρ = {r['spearman_rho']:.2f} (p = {r['p']:.2g}, n = {int(r['n'])} points)", fontsize=8
            )
        _title(
            fig,
            "Histone mark level at the promoter vs single-mark promoter-model performance",
            "Fig. 3A",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(points),
        )
    return fig


def fig3b_levels_by_state(points: pd.DataFrame, tests: pd.DataFrame) -> plt.Figure:
    """Promoter levels by cell state for high vs low expressed genes, one panel per mark (Fig. 3B).

    Points: one per cell type (mean over genes, bootstrap 95 % CI); stars: BH q < 0.05 of a
    two-sided Wilcoxon rank-sum test of high vs low genes within the state.
    """
    _need(points, ["mark", "cell_state", "group", "level_mean", "level_lo", "level_hi"], "levels by state")
    marks = _marks_order(points["mark"])
    states = [s for s in summary.STATES if s in set(points["cell_state"])]
    groups = sorted(set(points["group"]))
    colors = dict(zip(groups, ["#D55E00", "#56B4E9"]))
    ncol = min(4, len(marks))
    nrow = int(np.ceil(len(marks) / ncol))
    with theme():
        fig, axes = _grid(nrow, ncol, (3.0, 2.8), (0.5, 0.8))
        for k, mark in enumerate(marks):
            ax = axes.flat[k]
            p = points[points["mark"] == mark]
            for j, group in enumerate(groups):
                q = p[p["group"] == group]
                x = q["cell_state"].map({s: i for i, s in enumerate(states)}) + (j - 0.5) * 0.3
                ax.errorbar(
                    x,
                    q["level_mean"],
                    yerr=[q["level_mean"] - q["level_lo"], q["level_hi"] - q["level_mean"]],
                    fmt="o",
                    ms=4,
                    capsize=2,
                    lw=0.8,
                    color=colors[group],
                    label=group if k == 0 else None,
                )
            if not tests.empty:
                for i, s in enumerate(states):
                    r = tests[(tests["mark"] == mark) & (tests["cell_state"] == s)]
                    if len(r) and r["q"].iloc[0] < 0.05:
                        ax.text(i, 0.93, "*", ha="center", fontsize=11, transform=ax.get_xaxis_transform())
            ax.set_xticks(range(len(states)), states, rotation=30, fontsize=7)
            ax.set_title(mark, fontsize=9)
            ax.set_ylabel("promoter ln(depth + 1)" if k % ncol == 0 else "")
        for ax in list(axes.flat)[len(marks) :]:
            ax.set_axis_off()
        axes.flat[0].legend(fontsize=6, loc="best")
        _title(
            fig,
            "Promoter mark levels by cell state, high vs low expressed genes (label: RPKM vs the cell type's median); "
            "* BH q < 0.05, two-sided Wilcoxon rank-sum",
            "Fig. 3B",
            "mean ln(depth + 1) over TSS ± 3 kb, 95 % bootstrap CI over genes",
            "all genes",
            summary.provenance_label(points),
        )
    return fig


def fig3b_paper_contrast(points: pd.DataFrame, tests: pd.DataFrame) -> plt.Figure:
    """The paper's Fig. 3B contrast: ESC vs primary cells within high- and within low-expressed genes.

    One point per (cell type, fold): the mean promoter level over the fold's genes of the group
    (``summary.levels_by_state_paper``); stars: BH q < 0.05 of a two-sided Wilcoxon rank-sum test of
    ESC vs primary points within the group.
    """
    _need(points, ["mark", "cell_state", "group", "level_mean", "cell_type", "fold"], "levels by state (paper)")
    marks = _marks_order(points["mark"])
    groups = sorted(set(points["group"]))
    colors = {"ESC": "#0072B2", "primary": "#E69F00"}
    ncol = min(4, len(marks))
    nrow = int(np.ceil(len(marks) / ncol))
    with theme():
        fig, axes = _grid(nrow, ncol, (3.0, 2.8), (0.5, 0.8))
        for k, mark in enumerate(marks):
            ax = axes.flat[k]
            p = points[(points["mark"] == mark) & points["cell_state"].isin(list(colors))]
            for j, state in enumerate(colors):
                q = p[p["cell_state"] == state]
                x = q["group"].map({g: i for i, g in enumerate(groups)}) + (j - 0.5) * 0.3
                ax.plot(x, q["level_mean"], "o", ms=3.5, color=colors[state], label=state if k == 0 else None)
            if not tests.empty:
                for i, g in enumerate(groups):
                    r = tests[(tests["mark"] == mark) & (tests["group"] == g)]
                    if len(r) and r["q"].iloc[0] < 0.05:
                        ax.text(i, 0.93, "*", ha="center", fontsize=11, transform=ax.get_xaxis_transform())
            ax.set_xticks(range(len(groups)), [g.split(" ")[0] for g in groups], fontsize=7)
            ax.set_xlim(-0.6, len(groups) - 0.4)
            ax.set_title(mark, fontsize=9)
            ax.set_ylabel("promoter ln(depth + 1)" if k % ncol == 0 else "")
        for ax in list(axes.flat)[len(marks) :]:
            ax.set_axis_off()
        axes.flat[0].legend(fontsize=6, loc="best")
        n = points.groupby(["cell_type", "fold"]).ngroups
        _title(
            fig,
            "Promoter mark levels, ESC vs primary cells within high and within low expressed genes "
            f"(the paper's contrast; points = {n} (cell type, fold)); * BH q < 0.05, two-sided Wilcoxon rank-sum",
            "Fig. 3B (paper contrast)",
            "mean ln(depth + 1) over TSS ± 3 kb of the fold's genes",
            "all genes, by expression group",
            summary.provenance_label(points),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 4 — distal model by cell type; improvement over the promoter model
# ---------------------------------------------------------------------------------------------
def fig4a_distal_by_cell_type(
    metrics: pd.DataFrame, model: str = "chromoformer_reg", metric: str = "pearson_r"
) -> plt.Figure:
    """Distal model (Chromoformer) test performance per mark set and cell type; bars mean, dots folds (Fig. 4A)."""
    import seaborn as sns

    t = metrics[(metrics["model"] == model) & (metrics["metric"] == metric) & (metrics["split"] == "test")]
    _need(t, ["marks", "value", "cell_type"], f"{model} {metric} test")
    t = t.assign(mark_set=t["marks"].map(_short))
    order = [_short(m) for m in _marks_order(t["marks"])]
    cells = sorted(set(t["cell_type"]))
    with theme():
        fig, ax = plt.subplots(figsize=(1.2 * len(order) + 3.0, 3.8), constrained_layout=True)
        sns.barplot(
            t, x="mark_set", y="value", hue="cell_type", order=order, hue_order=cells, errorbar=None, alpha=0.7, ax=ax
        )
        sns.stripplot(
            t,
            x="mark_set",
            y="value",
            hue="cell_type",
            order=order,
            hue_order=cells,
            dodge=True,
            palette=_black(cells),
            size=3,
            legend=False,
            ax=ax,
        )
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_xlabel("")
        ax.set_ylabel(f"test {metric_label(metric)}")
        ax.tick_params(axis="x", rotation=30)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="cell type")
        folds = ",".join(map(str, sorted(set(t["fold"]))))
        _title(
            fig,
            f"Distal model (Chromoformer, 40 kb + pcHi-C) per mark set and cell type; bars mean, dots folds ({folds})",
            "Fig. 4A",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(t),
        )
    return fig


def fig4c_distal_gain(fold_gains: pd.DataFrame, paired: pd.DataFrame, metric: str = "pearson_r") -> plt.Figure:
    """Improvement of the distal over the promoter model per (cell type, mark) (Fig. 4C + a paired test).

    Left: per-fold gain in ``metric`` (dots) and its mean (bar). Right: Δr over the matched genes
    with a paired bootstrap 95 % CI, labelled with the BH q of a one-sided Wilcoxon signed-rank
    test of per-gene squared-error differences (beyond the paper).
    """
    import seaborn as sns

    _need(fold_gains, ["cell_type", "marks", "gain"], "fold gain")
    _need(paired, ["cell_type", "marks", "delta_r", "delta_r_lo", "delta_r_hi", "q"], "paired per-gene test")
    marks = _marks_order(fold_gains["marks"])
    with theme():
        fig, axes = plt.subplots(1, 2, figsize=(11, 0.5 * len(paired) + 2.8), constrained_layout=True)
        ax = axes[0]
        sns.barplot(fold_gains, x="marks", y="gain", hue="cell_type", order=marks, errorbar=None, alpha=0.7, ax=ax)
        sns.stripplot(
            fold_gains,
            x="marks",
            y="gain",
            hue="cell_type",
            order=marks,
            dodge=True,
            palette=_black(fold_gains["cell_type"]),
            size=3,
            legend=False,
            ax=ax,
        )
        ax.axhline(0, color="0.4", lw=0.7)
        ax.set_xlabel("")
        ax.set_ylabel(f"distal − promoter, test {metric_label(metric)} (per fold)")
        ax.legend(fontsize=7, title="cell type")
        ax = axes[1]
        p = paired.sort_values(["marks", "cell_type"]).reset_index(drop=True)
        y = np.arange(len(p))
        ax.errorbar(
            p["delta_r"],
            y,
            xerr=[p["delta_r"] - p["delta_r_lo"], p["delta_r_hi"] - p["delta_r"]],
            fmt="o",
            color="0.2",
            capsize=2,
        )
        ax.axvline(0, color="0.4", lw=0.7)
        ax.set_yticks(
            y,
            [
                f"{r.cell_type} {r.marks} (n={r.n_genes}; SE gain {r.mean_se_gain:+.2f}, q={r.q:.2g})"
                for r in p.itertuples()
            ],
            fontsize=7,
        )
        ax.invert_yaxis()
        ax.set_xlabel("Δ Pearson r over matched genes (paired bootstrap 95 % CI)")
        ax.set_title(
            "labels: mean per-gene squared-error gain (promoter − distal) and BH q of a\n"
            "one-sided Wilcoxon signed-rank test of it (H1: distal errors smaller)",
            fontsize=7,
        )
        _title(
            fig,
            "Improvement of the distal model over the promoter CNN, same genes and folds",
            "Fig. 4C; paired test beyond the paper",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(fold_gains, paired),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 5 — mark pairs
# ---------------------------------------------------------------------------------------------
def fig5_mark_pairs(pairs: pd.DataFrame, metric: str = "pearson_r") -> plt.Figure:
    """Gain of each mark pair over its better single mark and vs all marks, all cell types (Fig. 5)."""
    import seaborn as sns

    _need(pairs, ["marks", "gain_over_best_single", "gain_over_all_marks", "cell_type"], "mark pairs")
    order = pairs.groupby("marks")["gain_over_best_single"].mean().sort_values().index.tolist()
    with theme():
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.45 * len(order) + 2.2), sharey=True, constrained_layout=True)
        for ax, col, title in (
            (axes[0], "gain_over_best_single", "pair − better single mark"),
            (axes[1], "gain_over_all_marks", "pair − all marks"),
        ):
            sns.barplot(pairs, y="marks", x=col, order=order, errorbar=None, color="#009E73", alpha=0.5, ax=ax)
            sns.stripplot(pairs, y="marks", x=col, order=order, hue="cell_type", size=3.5, ax=ax, legend=ax is axes[1])
            ax.axvline(0, color="0.4", lw=0.7)
            ax.set_xlabel(f"difference in test {metric_label(metric)}")
            ax.set_ylabel("")
            ax.set_title(title, fontsize=9)
        if axes[1].get_legend() is not None:
            axes[1].legend(fontsize=7, title="cell type", loc="upper left", bbox_to_anchor=(1.0, 1.0))
        _title(
            fig,
            "Chromoformer mark pairs; bars mean over (cell type, fold), dots (cell type, fold)",
            "Fig. 5",
            metric,
            "test split of chromosome folds",
            summary.provenance_label(pairs),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 6 — in silico perturbation
# ---------------------------------------------------------------------------------------------
def _facets(table: pd.DataFrame) -> list[tuple[str, str]]:
    keys = table[["mark", "gene_set"]].drop_duplicates()
    return sorted(map(tuple, keys.to_numpy()), key=lambda k: (MARKS.index(k[0]) if k[0] in MARKS else 99, k[1]))


def fig6a_perturbation_levels(curves: pd.DataFrame) -> plt.Figure:
    """Predicted effect vs level of the removed mark: one row per region kind, each with its own scale (Fig. 6A).

    ``curves``: :func:`chromexp.analyses.effects.level_curves` (mean over genes, bootstrap 95 % CI
    band). Rows: the promoter, then the distal 2 kb regions (a gene's distal regions averaged first);
    columns: the experiments (mark, gene set); one line per cell type. Every panel has its own y
    scale: distal effects are an order of magnitude smaller than promoter ones and would be flat
    lines on a shared axis.
    """
    _need(
        curves,
        ["mark", "gene_set", "region_kind", "level", "mean", "ci_low", "ci_high", "cell_type"],
        "perturbation curves",
    )
    facets = _facets(curves)
    kinds = [k for k in ("promoter", "distal") if k in set(curves["region_kind"])]
    cells = sorted(set(curves["cell_type"]))
    colors = {c: f"C{i % 10}" for i, c in enumerate(cells)}
    with theme():
        fig, axes = _grid(len(kinds), len(facets), (3.4, 2.6), (1.4, 1.0))
        for i, kind in enumerate(kinds):
            for j, (mark, gene_set) in enumerate(facets):
                ax = axes[i, j]
                f = curves[
                    (curves["mark"] == mark) & (curves["gene_set"] == gene_set) & (curves["region_kind"] == kind)
                ]
                for cell, g in f.groupby("cell_type", sort=True):
                    g = g.sort_values("level")
                    ax.plot(g["level"], g["mean"], "-", color=colors[cell], lw=1.2, label=cell)
                    ax.fill_between(g["level"], g["ci_low"], g["ci_high"], color=colors[cell], alpha=0.2, lw=0)
                ax.axhline(0, color="0.5", lw=0.5)
                ax.invert_xaxis()
                ax.set_title(f"{REGION_TITLES.get(kind, kind)}: {mark}, {gene_set} genes", fontsize=8)
                ax.set_xlabel("level of the mark kept (1 = unperturbed)" if i == len(kinds) - 1 else "")
            axes[i, 0].set_ylabel(f"{REGION_TITLES.get(kind, kind)}\npredicted Δ log2(RPKM + 1)")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, title="cell type", fontsize=7, loc="outside right center")
        _title(
            fig,
            "In silico removal of a mark: effect vs level; rows = promoter and distal 2 kb regions, each with its own "
            "scale (mean over genes of each gene's mean over its regions; 95 % bootstrap CI over genes)",
            "Fig. 6A",
            f"predicted log2 fold change, {_folds(curves)}",
            "all genes of the gene set",
            summary.provenance_label(curves),
        )
    return fig


def _fold_count(table: pd.DataFrame) -> int | None:
    """The number of fold models behind fold-averaged effects, from an ``n_folds`` column if any."""
    n = statistics.fold_count(table)
    return None if np.isnan(n) else int(n)


def fig6b_effect_by_distance(by_distance: pd.DataFrame) -> plt.Figure:
    """Effect of removing a distal 2 kb region vs its signed distance to the TSS, quantile bins (Fig. 6B)."""
    _need(
        by_distance,
        ["mark", "gene_set", "distance_mid", "mean", "ci_low", "ci_high", "cell_type"],
        "effect by distance",
    )
    facets = _facets(by_distance)
    cells = sorted(set(by_distance["cell_type"]))
    colors = {c: f"C{i % 10}" for i, c in enumerate(cells)}
    with theme():
        fig, axes = _grid(1, len(facets), (3.8, 3.4), (1.2, 0.0))
        for ax, (mark, gene_set) in zip(axes[0], facets):
            f = by_distance[(by_distance["mark"] == mark) & (by_distance["gene_set"] == gene_set)]
            for cell, g in f.groupby("cell_type", sort=True):
                g = g.sort_values("distance_mid")
                ax.errorbar(
                    g["distance_mid"] / 1000,
                    g["mean"],
                    yerr=[g["mean"] - g["ci_low"], g["ci_high"] - g["mean"]],
                    fmt="o-",
                    ms=3,
                    lw=0.8,
                    capsize=1.5,
                    color=colors[cell],
                    label=cell,
                )
            ax.axhline(0, color="0.5", lw=0.5)
            ax.axvline(0, color="0.7", lw=0.5)
            ax.set_xlabel("distance to TSS (kb, 5'→3'; bin centre)")
            ax.set_title(f"{mark}, {gene_set} genes", fontsize=9)
        axes[0, 0].set_ylabel("predicted Δ log2(RPKM + 1) at level 0")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, title="cell type", fontsize=7, loc="outside right center")
        nb = by_distance.groupby(["cell_type", "mark", "gene_set"]).size().max()
        _title(
            fig,
            f"Effect of removing a distal 2 kb region by distance ({nb} quantile bins of distance; mean over genes, "
            "95 % bootstrap CI)",
            "Fig. 6B",
            f"predicted log2 fold change at level 0, {_folds(by_distance)}",
            "distal regions of all genes of the gene set",
            summary.provenance_label(by_distance),
        )
    return fig


def fig6ef_effect_quantiles(quantiles: pd.DataFrame) -> plt.Figure:
    """The distribution of the level-0 effect at each distance in quantile bins (Fig. 6E/F).

    Per (mark, gene set) and cell type: the effect's quantile edges at each distance
    (``effects.effect_quantiles_by_distance``, 20 bins = 21 edges) drawn as nested bands (5-95 %,
    25-75 %) around the median, with the outer edges as thin lines.
    """
    _need(quantiles, ["cell_type", "mark", "gene_set", "distance", "quantile", "effect"], "effect quantiles")
    facets = _facets(quantiles)
    cells = sorted(set(quantiles["cell_type"]))
    with theme():
        fig, axes = _grid(len(cells), len(facets), (3.8, 2.6), (0.6, 0.9))
        for i, cell in enumerate(cells):
            for j, (mark, gene_set) in enumerate(facets):
                ax = axes[i, j]
                f = quantiles[
                    (quantiles["cell_type"] == cell) & (quantiles["mark"] == mark) & (quantiles["gene_set"] == gene_set)
                ]
                if f.empty:
                    ax.set_axis_off()
                    continue
                w = f.pivot_table(index="distance", columns="quantile", values="effect").sort_index()
                x = w.index.to_numpy() / 1000

                def edge(q, w=w):
                    return w[w.columns[np.argmin(np.abs(w.columns.to_numpy() - q))]].to_numpy()

                for lo, hi, alpha in ((0.05, 0.95, 0.25), (0.25, 0.75, 0.45)):
                    for side in (x < 0, x > 0):  # no band across the promoter gap
                        ax.fill_between(x[side], edge(lo)[side], edge(hi)[side], color="#0072B2", alpha=alpha, lw=0)
                for q in (0.0, 1.0):
                    ax.plot(x, edge(q), ".", color="0.5", ms=2)
                ax.plot(x, edge(0.5), "o", color="#0072B2", ms=3)
                ax.axhline(0, color="0.5", lw=0.5)
                ax.axvline(0, color="0.7", lw=0.5)
                ax.set_title(f"{cell} · {mark}, {gene_set} genes", fontsize=8)
                ax.set_xlabel("distance to TSS (kb, 5'→3')" if i == len(cells) - 1 else "")
                ax.set_ylabel("predicted Δ log2(RPKM + 1)" if j == 0 else "")
        nq = quantiles["quantile"].nunique() - 1
        _title(
            fig,
            f"Effect of removing a distal 2 kb region: its distribution over genes at each distance ({nq} quantile "
            "bins; bands 5-95 % and 25-75 %, dot = median, grey = min/max)",
            "Fig. 6E/F",
            f"predicted log2 fold change at level 0, {_folds(quantiles)}",
            "distal regions of all genes of the gene set",
            summary.provenance_label(quantiles),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 7 — eQTL enrichment and s-LDSC
# ---------------------------------------------------------------------------------------------
#: What the loci were ranked by (``enrichment.RANKINGS``), for the decile axis.
DECILE_AXES: dict[str, str] = {
    "decrease": "decile of the predicted decrease",
    "increase": "decile of the predicted increase",
    "abs": "decile of |predicted effect|",
    "value": "decile of the score",
}


def _decile_axis(deciles: pd.DataFrame) -> str:
    """The decile axis as the table's ``ranking`` / ``per_side`` columns say the deciles were cut."""
    rankings = set(deciles["ranking"].dropna()) if "ranking" in deciles.columns else set()
    if len(rankings) != 1:
        return "decile of predicted effect\n(10 = largest; ranking not recorded)"
    ranking = rankings.pop()
    sides = set(deciles["per_side"].dropna().astype(bool)) if "per_side" in deciles.columns else set()
    side = "per side of the TSS; " if sides == {True} else ""
    return f"{DECILE_AXES.get(ranking, f'decile of {ranking}')}\n({side}10 = largest)"


def fig7a_eqtl_deciles(deciles: pd.DataFrame, benchmarks: pd.DataFrame | None = None) -> plt.Figure:
    """Fraction of loci holding a fine-mapped eQTL per decile of predicted effect, vs random loci (Fig. 7A).

    Band: the random samples' interval (``random_lo``–``random_hi``), line: their mean; a star marks
    BH q < 0.05 (q across cell types within a decile, as notebook 70 computes it). ``benchmarks``
    (``eqtl_benchmarks.tsv``, optional): each benchmark set's fraction as a dashed line, starred at
    its right end when q < 0.05. The legend sits outside the panels; tissues and sets are named in
    words. Notebook 70 draws its per-run figure with this function too.
    """
    _need(deciles, ["cell_type", "decile", "fraction", "random_mean", "random_lo", "random_hi", "q"], "eqtl_deciles")
    cells = sorted(set(deciles["cell_type"]))
    has_bench = benchmarks is not None and not benchmarks.empty and "set" in benchmarks.columns
    sets = sorted(set(benchmarks["set"])) if has_bench else []
    styles = {name: dict(ls=(0, (4, 2 + k)), color=f"C{k + 2}") for k, name in enumerate(sets)}
    with theme():
        fig, axes = _grid(1, len(cells), (3.6, 3.8), (3.0, 0.0), sharey=True)
        for ax, cell in zip(axes[0], cells):
            d = deciles[deciles["cell_type"] == cell].sort_values("decile")
            ax.fill_between(d["decile"], d["random_lo"], d["random_hi"], color="0.85", label="random loci (95 % range)")
            ax.plot(d["decile"], d["random_mean"], color="0.5", lw=1, label="random loci (mean)")
            ax.plot(d["decile"], d["fraction"], "o-", color="#D55E00", ms=4, label="loci of the decile")
            for r in d[d["q"] < 0.05].itertuples():
                ax.text(r.decile, r.fraction, "*", ha="center", va="bottom", fontsize=12)
            if has_bench:
                for r in benchmarks[benchmarks["cell_type"] == cell].sort_values("set").itertuples():
                    ax.axhline(r.fraction, lw=0.9, label=f"benchmark: {set_label(r.set)}", **styles[r.set])
                    if getattr(r, "q", 1.0) < 0.05:
                        ax.text(
                            10.45, r.fraction, "*", ha="left", va="center", fontsize=10, color=styles[r.set]["color"]
                        )
            tissue = next((c for c in d.columns if c.startswith("tissue")), None)
            if tissue:
                names = sorted({tissue_label(t) for v in d[tissue].astype(str) for t in v.split(";") if t})
                ax.set_title(f"{cell} ({', '.join(names)})", fontsize=8)
            else:
                ax.set_title(cell, fontsize=8)
            ax.set_xlabel(_decile_axis(d))
            ax.set_xticks(range(1, 11))
            ax.set_xlim(0.5, 10.9)
        axes[0, 0].set_ylabel("fraction of loci with a\nfine-mapped eQTL of their gene")
        handles = {}
        for ax in axes[0]:
            for h, lab in zip(*ax.get_legend_handles_labels()):
                handles.setdefault(lab, h)
        fig.legend(list(handles.values()), list(handles), fontsize=7, loc="outside right center")
        _title(
            fig,
            "Fine-mapped eQTL enrichment of the loci with the largest predicted effect; * BH q < 0.05 (empirical p vs "
            "random loci; for a benchmark line, at its right end)",
            "Fig. 7A",
            "fraction of 2 kb loci containing an eQTL of the same gene",
            "upstream and downstream distal loci",
            summary.provenance_label(deciles, genetics=True),
        )
    return fig


def fig7c_eqtl_distance_matched(matched: pd.DataFrame) -> plt.Figure:
    """Distance-matched eQTL odds ratios with 95 % CIs per cell type and locus set (beyond the paper).

    Proximity to the TSS alone cannot produce an odds ratio above 1 here: the comparison loci are
    matched on distance (``eqtl_distance_matched.tsv`` of notebook 70). Rows: deciles in numeric
    order (1 … 10), then the other sets, each for every cell type. A row whose odds ratio is 0,
    infinite or undefined (no eQTL in the set, none outside it, or no stratum with loci in and
    out of the set) is marked "not estimable" instead of a point; p-values below double precision
    show as "< 1e-16", never 0.
    """
    _need(matched, ["cell_type", "set", "odds_ratio", "ci_low", "ci_high", "p"], "eqtl_distance_matched")
    if "strata" in matched.columns:  # the gene-stratified odds ratios (issue 30) are in the table, not this panel
        matched = matched[matched["strata"] == "position"]

    def order(name):
        return (0, int(name.split("_", 1)[1]), "") if name.startswith("decile_") else (1, 0, name)

    d = matched.assign(_o=matched["set"].map(order)).sort_values(["_o", "cell_type"], kind="mergesort")
    d = d.drop(columns="_o").reset_index(drop=True)
    ok = (
        np.isfinite(d["odds_ratio"].astype(float))
        & (d["odds_ratio"].astype(float) > 0)
        & np.isfinite(d["ci_low"].astype(float))
        & np.isfinite(d["ci_high"].astype(float))
    ).to_numpy()
    with theme():
        fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(d) + 1.8), constrained_layout=True)
        y = np.arange(len(d))
        e = d[ok]
        ax.errorbar(
            e["odds_ratio"],
            y[ok],
            xerr=[e["odds_ratio"] - e["ci_low"], e["ci_high"] - e["odds_ratio"]],
            fmt="o",
            color="0.2",
            capsize=2,
        )
        for yi in y[~ok]:
            ax.text(1, yi, "not estimable", ha="center", va="center", fontsize=7, color="0.4", style="italic")
        ax.axvline(1, color="0.5", lw=0.7)
        ax.set_xscale("log")
        lo = min(0.5, float(e["ci_low"].min())) if len(e) else 0.5
        hi = max(2.0, float(e["ci_high"].max())) if len(e) else 2.0
        ax.set_xlim(lo / 1.5, hi * 1.5)  # 1 (no enrichment) and every interval in view
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

        # 1-2-5 ticks over a narrow range, fewer over a wide one (they ran into each other, "0.1" twice)
        decades = np.log10(hi * 1.5) - np.log10(lo / 1.5)
        subs = (1.0, 2.0, 5.0) if decades <= 2.0 else (1.0, 3.0) if decades <= 3.5 else (1.0,)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())

        def why(odds_ratio):
            if odds_ratio == 0:
                return "no locus of the set holds an eQTL"
            if np.isinf(odds_ratio):
                return "no comparable locus outside the set holds an eQTL"
            return "no position with loci in and out of the set"

        labels = [
            f"{r.cell_type} · {set_label(r.set)} (p {format_p(r.p)})"
            + ("" if good else f" — not estimable: {why(float(r.odds_ratio))}")
            for r, good in zip(d.itertuples(), ok)
        ]
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_ylim(len(d) - 0.5, -0.5)
        ax.set_xlabel("odds ratio vs distance-matched loci (95 % CI, log scale)")
        _title(
            fig,
            "eQTL enrichment controlled for distance to the TSS (Mantel–Haenszel over the 2 kb positions; CMH test p)",
            "Fig. 7A extension, beyond the paper",
            "odds ratio",
            "distal loci vs distance-matched loci",
            summary.provenance_label(matched, genetics=True),
        )
    return fig


def _genetics_note(ldsc: pd.DataFrame) -> str:
    """`` (real genotypes ..., simulated traits)``: what notebook 80's genetics were (its ``genetics`` column)."""
    if "genetics" not in ldsc.columns:
        return ""
    return " (" + "; ".join(sorted(set(ldsc["genetics"].dropna().astype(str)))) + ")"


def fig7b_ldsc_bubble(ldsc: pd.DataFrame) -> plt.Figure:
    """s-LDSC bubble plot in the paper's encoding, and each bubble's enrichment with its 95 % CI (Fig. 7B).

    Left: one bubble per (trait, annotation); colour = BH FDR q of the one-sided coefficient test
    (enrichment conditional on the baseline model; log scale), size = |coefficient z|, open bubble =
    negative z; every row is drawn, whatever its sign. Right: enrichment ± 1.96 SE per (trait,
    annotation), black when q < 0.05. Both panels list the traits in one order, top to bottom.
    Notebook 80 draws its per-run figure with this function too.
    """
    from matplotlib.colors import LogNorm

    _need(ldsc, ["trait", "annotation", "enrichment", "enrichment_se", "coefficient_z", "q"], "ldsc_results")
    if "role" in ldsc.columns:  # the paper's panel: the model annotations (controls are notebook 80's tables)
        ldsc = ldsc[ldsc["role"] == "test"]
        _need(ldsc, ["trait"], "ldsc_results (test rows)")
    traits = sorted(set(ldsc["trait"]))

    def annot_order(a):
        return (2 if a in ("planted_enhancers", "random_bins") else 1 if a == "top_pooled" else 0, a)

    annots = sorted(set(ldsc["annotation"]), key=annot_order)
    d = ldsc.assign(
        x=ldsc["annotation"].map({a: i for i, a in enumerate(annots)}),
        y=ldsc["trait"].map({t: i for i, t in enumerate(traits)}),
        z=ldsc["coefficient_z"].astype(float),
    )
    from matplotlib.colors import ListedColormap

    norm = LogNorm(vmin=1e-3, vmax=1.0)
    q = np.clip(d["q"].astype(float).fillna(1.0).to_numpy(), norm.vmin, norm.vmax)
    size = 25 + 45 * np.abs(np.nan_to_num(d["z"].to_numpy()))
    # dark = small q (significant), light blue = q near 1: never white, so an open bubble stays visible
    cmap = ListedColormap(plt.get_cmap("Blues")(np.linspace(1.0, 0.3, 256)), name="fdr_blues")
    rows = d.sort_values(["y", "x"]).reset_index(drop=True)
    with theme():
        fig, axes = plt.subplots(
            1,
            2,
            figsize=(1.0 * len(annots) + 8.5, max(0.5 * len(traits) + 2.6, 0.24 * len(rows) + 1.6)),
            constrained_layout=True,
            gridspec_kw={"width_ratios": [1, 1.3]},
        )
        ax = axes[0]
        pos = (d["z"] >= 0).to_numpy()
        sc = ax.scatter(
            d["x"][pos], d["y"][pos], s=size[pos], c=q[pos], cmap=cmap, norm=norm, edgecolors="0.2", linewidths=0.5
        )
        ax.scatter(
            d["x"][~pos], d["y"][~pos], s=size[~pos], facecolors="none", edgecolors=cmap(norm(q[~pos])), linewidths=1.6
        )
        cb = fig.colorbar(sc, ax=ax, label="BH FDR q")
        cb.ax.tick_params(labelsize=7)
        for z in (1, 2, 4):
            ax.scatter([], [], s=25 + 45 * z, c="0.6", label=f"|z| = {z}")
        ax.scatter([], [], s=25 + 45 * 2, facecolors="none", edgecolors="0.3", linewidths=1.6, label="negative z")
        fig.legend(
            *ax.get_legend_handles_labels(),
            fontsize=7,
            title_fontsize=7,
            loc="outside lower left",
            ncol=4,
            title="bubble size (one-sided coefficient test)",
        )
        ax.set_xticks(
            range(len(annots)),
            [annotation_label(a).replace(" (", "\n(") for a in annots],
            rotation=30,
            ha="right",
            fontsize=7,
        )
        ax.set_yticks(range(len(traits)), traits, fontsize=7)
        ax.set_xlim(-0.7, len(annots) - 0.3)
        ax.set_ylim(len(traits) - 0.4, -0.6)  # first trait on top, as in the right panel
        withheld = "; q withheld (not calibrated): drawn at q = 1" if d["q"].isna().all() else ""
        ax.set_title(
            f"colour = BH FDR q; size = |coefficient z| (τ | baseline); open = negative z{withheld}", fontsize=8
        )
        ax = axes[1]
        for i, r in enumerate(rows.itertuples()):
            ax.errorbar(
                r.enrichment,
                i,
                xerr=1.96 * r.enrichment_se,
                fmt="o",
                ms=3,
                capsize=2,
                color="black" if r.q < 0.05 else "0.55",
            )
        ax.axvline(1, color="0.5", lw=0.6)
        ax.axvline(0, color="0.8", lw=0.5, ls=":")
        ax.set_yticks(range(len(rows)), [f"{r.trait} · {annotation_label(r.annotation)}" for r in rows.itertuples()])
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel("heritability enrichment (prop h² / prop SNPs) ± 1.96 SE; black: q < 0.05")
        _title(
            fig,
            "Stratified LD score regression of the top-decile loci (colour = FDR, size = coefficient z, as the paper; "
            "BH q over the test annotations × traits; withheld before calibration)",
            "Fig. 7B",
            "heritability enrichment, coefficient z",
            "GWAS traits",
            summary.provenance_label(ldsc, genetics=True) + _genetics_note(ldsc),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Fig. 8 — locus view
# ---------------------------------------------------------------------------------------------
def _oriented(pos, tss: int, strand: str):
    """Genomic position(s) → signed distance from the TSS in transcription orientation (bp)."""
    d = np.asarray(pos, dtype=float) - float(tss)
    return -d if strand == "-" else d


def fig8_locus_view(locus: dict) -> plt.Figure:
    """Locus view (Fig. 8): input signal and input gradients before/after ablating a region, with eQTLs.

    ``locus``: :func:`chromexp.analyses.attribution.read_locus` output. One row per (resolution, track) — signal,
    gradient before, gradient after — against the distance from the TSS in transcription
    orientation (bin 0 most upstream); the ablated region is shaded. The gene's fine-mapped eQTLs in
    the window (``eqtl_positions``, written by notebook 60) are drawn as red lines when there are
    any; the top panel's title says what they are, or why there are none (``eqtl_note``), and the
    axis label promises red lines only when they are drawn.
    """
    res = locus["resolutions"]
    hw, tss, strand = int(locus["half_window"]), int(locus["tss"]), str(locus["strand"])
    a, b = np.sort(_oriented(np.asarray(locus["ablated_region"], dtype=float), tss, strand)) / 1000
    eqtls = _oriented(np.atleast_1d(locus.get("eqtl_positions", np.array([]))), tss, strand) / 1000
    eqtl_note = str(locus.get("eqtl_note", "")) or (
        "the locus file records no eQTL positions" if "eqtl_positions" not in locus else ""
    )
    n_folds = len(np.atleast_1d(locus["folds"])) if "folds" in locus else None
    tracks = [
        ("signal", "input signal"),
        ("grad_before", "gradient, before"),
        ("grad_after", "gradient, after ablation"),
    ]
    with theme():
        fig, axes = plt.subplots(
            len(res) * 3, 1, figsize=(8, 1.1 * 3 * len(res) + 1.2), sharex=True, constrained_layout=True
        )
        axes = np.atleast_1d(axes)
        for i, r in enumerate(res):
            for j, (key, name) in enumerate(tracks):
                ax = axes[3 * i + j]
                y = np.asarray(locus[f"resolution_{r}_{key}"], dtype=float)
                x = ((np.arange(y.size) + 0.5) * r - hw) / 1000
                color = "0.35" if key == "signal" else ("#0072B2" if key == "grad_before" else "#D55E00")
                ax.bar(x, y, width=r / 1000, color=color, lw=0)
                ax.axvspan(a, b, color="#E69F00", alpha=0.25, lw=0)
                for e in eqtls:
                    ax.axvline(e, color="red", lw=0.8)
                ax.axvline(0, color="0.6", lw=0.5, ls="--")
                ax.set_ylabel(f"{name}\n{r} bp", fontsize=7)
                ax.tick_params(labelsize=7)
        if len(eqtls):
            tissues = [tissue_label(t) for t in str(locus.get("eqtl_tissues", "")).split(";") if t]
            where = f" in {', '.join(tissues)}" if tissues else ""
            simulated = " (SIMULATED eQTLs)" if str(locus["provenance"]) != "real" else ""
            axes[0].set_title(f"red lines: {len(eqtls)} fine-mapped eQTL(s) of the gene{where}{simulated}", fontsize=7)
        else:
            axes[0].set_title(f"no eQTL drawn: {eqtl_note}" if eqtl_note else "", fontsize=7)
        red = "; red lines: fine-mapped eQTLs of the gene" if len(eqtls) else ""
        axes[-1].set_xlabel(f"distance from TSS (kb, 5'→3'); shaded: ablated region{red}")
        gene = locus.get("gene_name") or locus["gene_id"]
        _title(
            fig,
            f"Locus view of {gene} ({locus['chrom']}:{tss} {strand}) in {locus['cell_type']}, "
            f"{locus.get('mark', '')} {locus.get('model', '')}, {method_label(str(locus.get('attribution', 'saliency')))}",
            "Fig. 8",
            "input signal and input attributions",
            "one gene, "
            + (
                "fold models (count not recorded)"
                if n_folds is None
                else "1 fold model (not an average over folds)"
                if n_folds == 1
                else f"mean over {n_folds} fold models"
            ),
            summary.provenance_label(
                pd.DataFrame({"provenance": [str(locus["provenance"])], "cell_type": [locus["cell_type"]]}),
                genetics=bool(len(eqtls)),
            ),
        )
    return fig


# ---------------------------------------------------------------------------------------------
# Registry: which tables each panel needs, and how a run's tables become the panel
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    """One manuscript panel: its file name, the tables it needs, who writes them, and how to build it."""

    name: str
    paper: str
    notebooks: str
    needs: tuple[str, ...]
    build: Callable
    describe: str
    #: what the file holds beyond one panel (two panels in one file, a panel beyond the paper)
    note: str = ""
    #: no panel of the paper: the file name keeps the figure's number only
    beyond_paper: bool = False


def _stats(run: summary.RunTables, opts: dict) -> dict:
    """The derived tables of every panel, computed once per run (cached on the RunTables)."""
    cache = run.derived
    if cache:
        return cache
    m, p = run["metrics"], run["predictions"]
    pm, dm = opts.get("promoter_model", "promoter_cnn"), opts.get("distal_model", "chromoformer_reg")
    cache["fig2_prediction_correlations"] = summary.prediction_correlations(p, pm)
    cache["fig2_state_contrasts"] = summary.state_contrasts(m, pm)
    cache["fig3_level_vs_performance"], cache["fig3_level_vs_performance_tests"] = summary.level_vs_performance(
        run["levels"], m, pm
    )
    cache["fig3_levels_by_state"], cache["fig3_levels_by_state_tests"] = summary.levels_by_state(
        run["levels"], run["genes"]
    )
    cache["fig3_paper_contrast"], cache["fig3_paper_contrast_tests"] = summary.levels_by_state_paper(
        run["levels"], run["genes"]
    )
    cache["fig4_fold_gain"] = gains.gain_over_promoter(m, dm, pm)
    cache["fig4_paired_gene_test"] = summary.distal_gain(p, dm, pm)
    cache["fig5_pair_gains"] = gains.pair_gains(m, dm)
    single = effects.single_mark(run["perturbation"])  # the paper's Fig. 6: single-mark models only
    cache["fig6_perturbation_curves"] = effects.level_curves(single)
    cache["fig6_effect_by_distance"] = effects.effect_by_distance(single, n_bins=opts.get("distance_bins", 20))
    cache["fig6_effect_quantiles"] = effects.effect_quantiles_by_distance(single, n_bins=opts.get("distance_bins", 20))
    return cache


def _first_locus(run: summary.RunTables, opts: dict) -> dict:
    """The Fig. 8 locus: ``figures.locus``, else the first file with eQTLs in its window, else the first.

    ``figures.locus`` is a string in the file name (gene id or name); Fig. 8 shows the gene's
    fine-mapped eQTLs, so a locus that has some is preferred.
    """
    paths = run.attributions
    want = opts.get("locus")
    if want:
        paths = [p for p in paths if want in p.name] or paths
        return attribution.read_locus(paths[0])
    loci = [attribution.read_locus(p) for p in paths]
    with_eqtls = [x for x in loci if len(np.atleast_1d(x.get("eqtl_positions", np.array([]))))]
    return (with_eqtls or loci)[0]


PANELS: tuple[Panel, ...] = (
    Panel(
        "fig1a_promoter_by_mark",
        "Fig. 1A",
        "20, 30",
        ("metrics",),
        lambda r, o: fig1a_promoter_by_mark(r["metrics"]),
        "promoter CNN by mark with naive baselines",
    ),
    Panel(
        "fig1b_promoter_by_cell_type",
        "Fig. 1B",
        "30",
        ("metrics",),
        lambda r, o: fig1b_promoter_by_cell_type(r["metrics"]),
        "promoter CNN by cell type",
    ),
    Panel(
        "fig2a_prediction_correlation",
        "Fig. 2A",
        "30",
        ("predictions",),
        lambda r, o: fig2a_prediction_correlation(_stats(r, o)["fig2_prediction_correlations"]),
        "clustered correlation of predictions across mark models",
    ),
    Panel(
        "fig2b_cell_state",
        "Fig. 2B",
        "30",
        ("metrics",),
        lambda r, o: fig2b_cell_state(r["metrics"], _stats(r, o)["fig2_state_contrasts"]),
        "active vs repressive marks by cell state",
        note="two panels in one file: ESC + ESC-derived vs the rest (the paper's contrast), every pair of states",
    ),
    Panel(
        "fig3a_level_vs_performance",
        "Fig. 3A",
        "10, 30",
        ("levels", "metrics"),
        lambda r, o: fig3a_level_vs_performance(*_pair(_stats(r, o), "fig3_level_vs_performance")),
        "histone level vs performance",
    ),
    Panel(
        "fig3b_levels_by_state",
        "Fig. 3B",
        "10",
        ("levels", "genes"),
        lambda r, o: fig3b_levels_by_state(*_pair(_stats(r, o), "fig3_levels_by_state")),
        "levels by state, high vs low expressed genes",
    ),
    Panel(
        "fig3b_paper_contrast",
        "Fig. 3B (paper contrast)",
        "10",
        ("levels", "genes"),
        lambda r, o: fig3b_paper_contrast(*_pair(_stats(r, o), "fig3_paper_contrast")),
        "levels, ESC vs primary within high and within low expressed genes, (cell type, fold) points",
    ),
    Panel(
        "fig4a_distal_by_cell_type",
        "Fig. 4A",
        "40",
        ("metrics",),
        lambda r, o: fig4a_distal_by_cell_type(r["metrics"]),
        "distal model by cell type",
    ),
    Panel(
        "fig4c_distal_gain",
        "Fig. 4C",
        "30, 40",
        ("metrics", "predictions"),
        lambda r, o: fig4c_distal_gain(_stats(r, o)["fig4_fold_gain"], _stats(r, o)["fig4_paired_gene_test"]),
        "improvement over the promoter model, paired per-gene test",
        note="two panels in one file: the per-fold gain (paper 4C) and a paired per-gene test (beyond the paper)",
    ),
    Panel(
        "fig5_mark_pairs",
        "Fig. 5",
        "40, 50",
        ("metrics",),
        lambda r, o: fig5_mark_pairs(_stats(r, o)["fig5_pair_gains"]),
        "mark pairs",
        note="two panels in one file: pair − better single mark, pair − all marks",
    ),
    Panel(
        "fig6a_perturbation_levels",
        "Fig. 6A",
        "60",
        ("perturbation",),
        lambda r, o: fig6a_perturbation_levels(_stats(r, o)["fig6_perturbation_curves"]),
        "perturbation level curves",
        note="one file, one row per region kind (promoter, distal) and one column per experiment",
    ),
    Panel(
        "fig6b_effect_by_distance",
        "Fig. 6B",
        "60",
        ("perturbation",),
        lambda r, o: fig6b_effect_by_distance(_stats(r, o)["fig6_effect_by_distance"]),
        "effect by distance",
    ),
    Panel(
        "fig6ef_effect_quantiles",
        "Fig. 6E/F",
        "60",
        ("perturbation",),
        lambda r, o: fig6ef_effect_quantiles(_stats(r, o)["fig6_effect_quantiles"]),
        "effect distribution at each distance (quantile bins)",
    ),
    Panel(
        "fig7a_eqtl_deciles",
        "Fig. 7A",
        "70",
        ("eqtl_deciles",),
        lambda r, o: fig7a_eqtl_deciles(r["eqtl_deciles"], r["eqtl_benchmarks"]),
        "eQTL enrichment by decile (with the benchmark sets when present)",
    ),
    Panel(
        "fig7b_ldsc_bubble",
        "Fig. 7B",
        "80",
        ("ldsc",),
        lambda r, o: fig7b_ldsc_bubble(r["ldsc"]),
        "s-LDSC bubble plot",
        note="two panels in one file: the bubble plot (paper 7B) and each bubble's enrichment ± 1.96 SE",
    ),
    Panel(
        "fig7c_eqtl_distance_matched",
        "Fig. 7A extension",
        "70",
        ("eqtl_distance_matched",),
        lambda r, o: fig7c_eqtl_distance_matched(r["eqtl_distance_matched"]),
        "distance-matched eQTL odds ratios (beyond the paper)",
        note="beyond the paper: an extension of Fig. 7A, not a panel of the paper",
        beyond_paper=True,
    ),
    Panel(
        "fig8_locus_view",
        "Fig. 8",
        "60",
        ("attribution",),
        lambda r, o: fig8_locus_view(_first_locus(r, o)),
        "locus view",
    ),
)

#: Table name → file(s) it comes from (for notes and the figures index).
TABLE_FILES: dict[str, str] = {
    **{k: f"<EID>/{v}" for k, v in summary.CELL_TABLES.items()},
    **summary.RUN_TABLES,
    "attribution": "<EID>/attribution_*.npz",
}


def _pair(cache: dict, name: str):
    return cache[name], cache[f"{name}_tests"]


def invalid_inputs(panel: Panel, run: summary.RunTables) -> list[str]:
    """Why the tables of ``panel`` cannot be drawn from: each input file that breaks its schema."""
    return [why for name in panel.needs for why in run.invalid.get(name, [])]


def missing_inputs(panel: Panel, run: summary.RunTables, opts: dict | None = None) -> list[str]:
    """The inputs of ``panel`` that ``run`` lacks (empty list: the panel can be drawn)."""
    missing = [n for n in panel.needs if n != "attribution" and not run.has(n)]
    if "attribution" in panel.needs and not run.attributions:
        missing.append("attribution")
    return missing


@dataclass
class Drawn:
    """Result of :func:`draw`: the figure (or ``None``), the files written and a note."""

    panel: Panel
    figure: plt.Figure | None
    files: list[Path]
    note: str

    @property
    def status(self) -> str:
        """``"drawn"`` when a figure was made, else ``"skipped"``."""
        return "drawn" if self.figure is not None else "skipped"


def draw(panel: Panel | str, run: summary.RunTables, out_dir: str | Path | None = None, **opts) -> Drawn:
    """Build one panel from a run's tables; save it to ``out_dir`` as ``<name>.{svg,png}``.

    When an input table is missing, breaks its documented schema (a file without a required column:
    ``RunTables.invalid``), or is present but without the rows the panel needs (e.g. no
    promoter-CNN rows), nothing is drawn: the returned note says which input is missing and
    which notebook writes it, and a stale ``<name>.*`` from an earlier run is removed so that
    ``figures/`` never shows a panel its run cannot support.
    """
    panel = next(p for p in PANELS if p.name == panel) if isinstance(panel, str) else panel
    stale = [Path(out_dir) / f"{panel.name}.{ext}" for ext in ("svg", "png")] if out_dir is not None else []
    invalid = invalid_inputs(panel, run)
    missing = missing_inputs(panel, run, opts)
    note = ""
    fig = None
    if invalid:  # a table that breaks its documented schema is never drawn from (not even in part)
        note = f"{panel.name} ({panel.paper}) skipped: " + "; ".join(invalid)
    elif missing:
        files = ", ".join(TABLE_FILES.get(m, m) for m in missing)
        note = f"{panel.name} ({panel.paper}) skipped: missing {files} (written by notebook(s) {panel.notebooks})."
    else:
        try:
            fig = panel.build(run, opts)
        except MissingInputError as err:  # the tables exist but hold no rows this panel can use
            note = f"{panel.name} ({panel.paper}) skipped: {err}"
    if fig is None:
        for path in stale:
            path.unlink(missing_ok=True)
        return Drawn(panel, None, [], note)
    files = save_figure(fig, panel.name, out_dir) if out_dir is not None else []
    return Drawn(panel, fig, files, f"{panel.name} ({panel.paper}) drawn.")


def derived_tables(run: summary.RunTables, **opts) -> dict[str, pd.DataFrame]:
    """Every statistics table behind the figures (for ``results/<run>/summary/``)."""
    return dict(_stats(run, opts))


def index_markdown(drawn: list[Drawn], run: summary.RunTables, run_name: str) -> str:
    """``figures/README.md``: figure → notebook → tables → data kind, for the panels of one run."""
    lines = [
        "# Manuscript figures",
        "",
        f"Regenerated by notebook `90_figures` (`make figures RUN={run_name}`) from the tidy tables of "
        f"`results/{run_name}/` only (never models or datasets). Statistics behind each panel: "
        f"`results/{run_name}/summary/`. Data kind comes from the tables' provenance.",
        "",
        "| figure | paper panel | what | notebook(s) | tables | data kind | status | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for d in drawn:
        p = d.panel
        tables = [run[n] for n in p.needs if n != "attribution"]
        kind = ", ".join(summary.provenance_values(*tables)) if d.figure is not None else "—"
        if p.name == "fig8_locus_view" and d.figure is not None:
            kind = str(attribution.read_locus(run.attributions[0])["provenance"])
        if p.name == "fig7b_ldsc_bubble" and d.figure is not None:
            kind += _genetics_note(run["ldsc"])
        link = f"[{p.name}]({p.name}.svg)" if d.figure is not None else p.name
        status = "drawn" if d.figure is not None else d.note.split("skipped: ", 1)[-1].replace("|", "/")
        files = ", ".join(f"`{TABLE_FILES[n]}`" for n in p.needs)
        lines.append(
            f"| {link} | {p.paper} | {p.describe} | {p.notebooks} | {files} | {kind} | {status} | {p.note or '—'} |"
        )
    lines += ["", "Every figure's title says whether it shows SEMI-SYNTHETIC or real data.", ""]
    return "\n".join(lines)
