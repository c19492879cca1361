"""Notebook 47's panels (CLASTER adapted): each takes a tidy table, returns a figure and states its data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..provenance import data_label

#: Colours of the structure-gain groups.
GROUP_COLORS = {"with_active_pchic_enhancer": "#c0392b", "without": "#7f8c8d", "all": "#2c3e50"}
GROUP_LABELS = {"with_active_pchic_enhancer": "genes with an active\nplanted pcHi-C enhancer",
                "without": "genes without one", "all": "all test genes"}  # fmt: skip


def plot_profiles(profile_predictions: pd.DataFrame, provenance: str, model: str, n_examples: int = 3) -> plt.Figure:
    """Observed vs predicted 1-kb nascent profiles: the mean over test genes and a few example genes.

    Parameters
    ----------
    profile_predictions : pandas.DataFrame
        ``claster_profile_predictions`` rows (``model, fold, gene_id, bin, offset_kb, observed,
        predicted``).
    provenance : str
        ``semi-synthetic`` (the only data with a nascent track).
    model : str
        Which profile model to draw.
    n_examples : int
        Example genes: the test genes with the highest observed total signal, one per panel.
    """
    p = profile_predictions[profile_predictions["model"] == model]
    if p.empty:
        raise ValueError(f"plot_profiles: no profile predictions of {model}.")
    n_genes = p.groupby(["fold", "gene_id"]).ngroups
    mean = p.groupby("offset_kb")[["observed", "predicted"]].mean()
    tot = p.groupby(["fold", "gene_id"])["observed"].sum().sort_values(ascending=False)
    examples = list(tot.index[: max(0, int(n_examples))])
    fig, axes = plt.subplots(1, 1 + len(examples), figsize=(3.1 * (1 + len(examples)), 2.7), squeeze=False,
                             constrained_layout=True)  # fmt: skip
    ax = axes[0, 0]
    ax.plot(mean.index + 0.5, mean["observed"], color="0.3", lw=1.5, label="observed (simulated)")
    ax.plot(mean.index + 0.5, mean["predicted"], color="#c0392b", lw=1.5, ls="--", label="predicted")
    ax.axvline(0, color="0.7", lw=0.8)
    ax.set_title(f"mean of {n_genes} test genes", fontsize=8)
    ax.set_xlabel("kb from TSS (transcription orientation)")
    ax.set_ylabel("nascent reads per 20 bp (1-kb mean)")
    ax.legend(fontsize=6, frameon=False)
    for ax, (fold, gid) in zip(axes[0, 1:], examples, strict=True):
        g = p[(p["fold"] == fold) & (p["gene_id"] == gid)].sort_values("bin")
        ax.plot(g["offset_kb"] + 0.5, g["observed"], color="0.3", lw=1.2)
        ax.plot(g["offset_kb"] + 0.5, g["predicted"], color="#c0392b", lw=1.2, ls="--")
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_title(f"{gid} (fold {fold})", fontsize=7)
        ax.set_xlabel("kb from TSS")
    fig.suptitle(f"CLASTER profile head ({model}): 1-kb nascent transcription, TSS ± 20 kb — {data_label(provenance)}",
                 fontsize=8)  # fmt: skip
    return fig


def plot_structure_gain(gain: pd.DataFrame, provenance: str, metric: str = "delta_r") -> plt.Figure:
    """Gain of the structure branch (test Pearson r with − without it) by gene group: folds as dots, pooled as bars.

    Parameters
    ----------
    gain : pandas.DataFrame
        :func:`chromexp.analyses.claster.structure_gain` (``fold`` 0 = pooled over folds).
    provenance : str
    metric : str
        ``delta_r`` (default) or ``delta_mse``.
    """
    if gain.empty:
        raise ValueError("plot_structure_gain: empty gain table.")
    groups = [g for g in ("with_active_pchic_enhancer", "without", "all") if g in set(gain["group"])]
    fig, ax = plt.subplots(figsize=(1.3 * len(groups) + 1.6, 2.8), constrained_layout=True)
    pooled = gain[gain["fold"] == 0].set_index("group")
    per_fold = gain[gain["fold"] != 0]
    x = np.arange(len(groups))
    ax.bar(x, [pooled.loc[g, metric] if g in pooled.index else np.nan for g in groups],
           color=[GROUP_COLORS[g] for g in groups], alpha=0.6, width=0.6)  # fmt: skip
    for i, g in enumerate(groups):
        v = per_fold.loc[per_fold["group"] == g, metric].to_numpy()
        ax.scatter(
            np.full(len(v), i) + np.linspace(-0.12, 0.12, max(len(v), 1))[: len(v)], v, color="k", s=10, zorder=3
        )
        n = int(pooled.loc[g, "n_genes"]) if g in pooled.index else 0
        ax.annotate(f"n = {n}", (i, 0), textcoords="offset points", xytext=(0, -24), ha="center", fontsize=6,
                    annotation_clip=False)  # fmt: skip
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xticks(x, [GROUP_LABELS[g] for g in groups], fontsize=7)
    ax.set_ylabel("Δ test Pearson r (structure − landscape)" if metric == "delta_r" else "Δ test MSE")
    ax.set_title(f"Does the virtual-4C structure branch help?\n{data_label(provenance)}", fontsize=8)
    return fig
