"""Panels of Chromoformer's own study (notebooks 45 and 46): window study, ablation, diff model.

Each function takes the tidy tables of :mod:`chromexp.analyses.chromoformer_study`, returns the
figure and states the data (semi-synthetic or real), the metric and n in its title.
"""

from __future__ import annotations

import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..provenance import data_label
from .style import metric_label

#: One colour per model family (Okabe–Ito), the same in every panel of the study.
FAMILY_COLORS: dict[str, str] = {
    "chromoformer": "#D55E00",
    "chromoformer_embedding_only": "#E69F00",
    "deepchrome": "#0072B2",
    "attentivechrome": "#009E73",
    "hmcrnn": "#CC79A7",
    "chromoformer_diff": "#D55E00",
    "chromoformer_reg_difference": "#0072B2",
    "chromoformer_clf_log_ratio": "#56B4E9",
    "deepdiff": "#7F7F7F",
}


def _family(model: str) -> str:
    if model.startswith("deepdiff_"):
        return "deepdiff"
    return model.rsplit("_", 1)[0] if model.endswith(("_clf", "_reg")) else model


def _label(model: str) -> str:
    if model.startswith("deepdiff_"):
        return f"DeepDiff ({model.removeprefix('deepdiff_')})"
    return {
        "chromoformer": "Chromoformer",
        "chromoformer_embedding_only": "Embedding-only",
        "deepchrome": "DeepChrome",
        "attentivechrome": "AttentiveChrome",
        "hmcrnn": "HM-CRNN",
        "chromoformer_diff": "Chromoformer-diff",
        "chromoformer_reg_difference": "two reg models (ŷ_B − ŷ_A)",
        "chromoformer_clf_log_ratio": "clf log2(p_B / p_A)",
    }.get(_family(model), model)


def plot_window_study(summary: pd.DataFrame, provenance: str, metric: str = "auroc") -> plt.Figure:
    """Metric vs promoter window per model, mean ± SE over folds, validation and test (paper Fig. 3a).

    Parameters
    ----------
    summary : pandas.DataFrame
        :func:`chromexp.analyses.chromoformer_study.fold_summary` rows (``model, window, split,
        metric, mean, se, n_folds``; ``cell_type``).
    provenance : str
    metric : str
        ``auroc`` (classifiers) or ``pearson_r`` (regressors).
    """
    t = summary[(summary["metric"] == metric) & ~summary["model"].str.startswith("chromoformer_embedding_only")]
    if t.empty:
        raise ValueError(f"No {metric} rows in the window-study summary to plot.")
    splits = [s for s in ("validation", "test") if s in set(t["split"])]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.6 * len(splits), 3.6), constrained_layout=True, squeeze=False)
    windows = sorted(t["window"].unique())
    for ax, split in zip(axes[0], splits, strict=True):
        for model, g in t[t["split"] == split].groupby("model", sort=True):
            g = g.sort_values("window")
            x = g["window"].to_numpy() / 1000
            ax.errorbar(
                x,
                g["mean"],
                yerr=g["se"].fillna(0),
                marker="o",
                ms=4,
                capsize=2,
                color=FAMILY_COLORS.get(_family(model), "0.4"),
                label=_label(model),
            )
        ax.set_xscale("log")
        ax.set_xticks([w / 1000 for w in windows], [f"{w / 1000:g}" for w in windows])
        ax.minorticks_off()
        ax.set_xlabel("promoter window (kb)")
        ax.set_ylabel(f"{split} {metric_label(metric)} (mean ± SE over folds)")
        ax.set_title(split, fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    n = int(t["n_folds"].max())
    cells = ", ".join(sorted(set(t["cell_type"]))) if "cell_type" in t.columns else ""
    fig.suptitle(
        f"Window study (Fig. 3a) {cells}: {metric_label(metric)}, {n} fold(s) · {data_label(provenance)}",
        fontsize=9,
    )
    return fig


def plot_ablation(folds: pd.DataFrame, subsets: pd.DataFrame, provenance: str, metric: str = "auroc") -> plt.Figure:
    """Intact vs Embedding-only Chromoformer per fold (Fig. 3b) and on genes with / without pCREs (Fig. 3c).

    Parameters
    ----------
    folds : pandas.DataFrame
        Test rows of both models (``model, fold, metric, value``).
    subsets : pandas.DataFrame
        :func:`chromexp.analyses.chromoformer_study.subset_metrics` rows (``model, fold, subset, metric, value``).
    """
    f = folds[(folds["metric"] == metric) & (folds["split"] == "test")]
    s = subsets[subsets["metric"] == metric]
    if f.empty:
        raise ValueError(f"No test {metric} rows of the ablation to plot.")
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.8), constrained_layout=True, gridspec_kw={"width_ratios": [1, 2]})
    panels = [(axes[0], f.assign(subset="all test genes"), "all test genes")]
    panels.append((axes[1], s, "by pCREs"))
    for ax, table, title in panels:
        if table.empty:
            ax.text(0.5, 0.5, "no subset metrics", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            continue
        groups = sorted(table["subset"].unique())
        models = sorted(table["model"].unique(), key=lambda m: "embedding_only" in m)
        for i, group in enumerate(groups):
            g = table[table["subset"] == group]
            wide = g.pivot_table(index="fold", columns="model", values="value")
            for j, model in enumerate(models):
                x = i + (j - 0.5) * 0.35
                if model in wide:
                    ax.scatter(
                        np.full(len(wide), x), wide[model], s=16, color=FAMILY_COLORS[_family(model)], zorder=3,
                        label=_label(model) if i == 0 else None,
                    )  # fmt: skip
            if all(m in wide for m in models) and len(models) == 2:
                for _, row in wide.iterrows():
                    ax.plot([i - 0.175, i + 0.175], [row[models[0]], row[models[1]]], color="0.6", lw=0.7)
        n = {gr: int(table[table["subset"] == gr]["n_genes"].max()) if "n_genes" in table else 0 for gr in groups}
        ax.set_xticks(range(len(groups)), [f"{gr}\n(n ≤ {n[gr]} / fold)" if n[gr] else gr for gr in groups])
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel(f"test {metric_label(metric)} (dots = folds)")
        ax.set_title(title, fontsize=9)
    axes[0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2)
    cells = ", ".join(sorted(set(f["cell_type"]))) if "cell_type" in f.columns else ""
    fig.suptitle(f"Embedding-only ablation (Fig. 3b, 3c) {cells} · {data_label(provenance)}", fontsize=9)
    return fig


def plot_diff(metrics: pd.DataFrame, by_group: pd.DataFrame | None, provenance: str) -> plt.Figure:
    """Test Pearson r of the lfc per pair and model (Fig. 2e analogue), and on the planted-truth gene groups.

    Parameters
    ----------
    metrics : pandas.DataFrame
        The pair metrics (``pair, model, fold, split, metric, value``).
    by_group : pandas.DataFrame or None
        :func:`chromexp.analyses.chromoformer_study.diff_by_group` rows; None or empty on real data
        (the right panel then says there is no planted truth).
    """
    t = metrics[(metrics["split"] == "test") & (metrics["metric"] == "pearson_r")]
    if t.empty:
        raise ValueError("No test pearson_r rows in the pair metrics to plot.")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), constrained_layout=True, gridspec_kw={"width_ratios": [3, 2]})
    pairs = sorted(t["pair"].unique())
    models = sorted(t["model"].unique(), key=lambda m: (m != "chromoformer_diff", m))
    width = 0.8 / len(models)
    ax = axes[0]
    for j, model in enumerate(models):
        g = t[t["model"] == model]
        means = g.groupby("pair")["value"].mean().reindex(pairs)
        x = np.arange(len(pairs)) + (j - (len(models) - 1) / 2) * width
        ax.bar(x, means, width=width, color=FAMILY_COLORS.get(_family(model), "0.6"), label=_label(model), alpha=0.9)
        for i, pair in enumerate(pairs):
            v = g[g["pair"] == pair]["value"].to_numpy()
            ax.scatter(np.full(v.size, x[i]), v, s=8, color="black", zorder=3)
    ax.set_xticks(range(len(pairs)), pairs, rotation=30, ha="right")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_ylabel("test Pearson r of log2 fold change")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title("per pair: bars = mean over folds, dots = folds", fontsize=9)
    ax = axes[1]
    if by_group is None or by_group.empty:
        ax.text(0.5, 0.5, "no planted truth (real data)", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        groups = sorted(by_group["subset"].unique())
        a, b = by_group["model_a"].iloc[0], by_group["model_b"].iloc[0]
        for i, group in enumerate(groups):
            g = by_group[by_group["subset"] == group]
            for j, (col, model) in enumerate((("r_a", a), ("r_b", b))):
                ax.scatter(
                    np.full(len(g), i + (j - 0.5) * 0.35), g[col], s=14, color=FAMILY_COLORS.get(_family(model), "0.5"),
                    zorder=3, label=_label(model) if i == 0 else None,
                )  # fmt: skip
            for _, row in g.iterrows():
                ax.plot([i - 0.175, i + 0.175], [row["r_a"], row["r_b"]], color="0.7", lw=0.6)
        n = by_group.groupby("subset")["n_genes"].sum()
        ax.set_xticks(range(len(groups)), [f"{textwrap.fill(gr, 16)}\n(n = {n[gr]})" for gr in groups])
        ax.set_xlim(-0.6, len(groups) - 0.4)
        ax.set_ylabel("test Pearson r of lfc")
        ax.legend(fontsize=7, loc="best")
        ax.set_title("planted enhancer activity of A vs B\n(dots = pair x fold; n = gene-folds)", fontsize=9)
    fig.suptitle(
        f"Chromoformer-diff (from the paper's description) vs baselines, {len(pairs)} pair(s) · {data_label(provenance)}",
        fontsize=9,
    )
    return fig


__all__ = ["FAMILY_COLORS", "plot_ablation", "plot_diff", "plot_window_study"]
