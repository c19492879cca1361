"""The per-run eQTL benchmark figure of notebook 70 (the model's top decile beside the benchmark sets).

The deciles themselves (paper Fig. 7A) have one painter, :func:`chromexp.plots.manuscript.fig7a_eqtl_deciles`,
which notebook 70 and notebook 90 both call. Every title says which data it shows
(:func:`chromexp.provenance.data_label`).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..provenance import data_label


def _provenance(table: pd.DataFrame) -> str:
    values = sorted(set(table["provenance"]))
    if len(values) != 1:
        raise ValueError(f"The table mixes provenances {values}; plot them separately.")
    return values[0]


def plot_eqtl_benchmarks(deciles: pd.DataFrame, benchmarks: pd.DataFrame) -> plt.Figure:
    """The model's top decile beside the benchmark sets: fraction with an eQTL vs random samples.

    Parameters
    ----------
    deciles, benchmarks : pandas.DataFrame
        :func:`chromexp.analyses.enrichment.decile_tests` output and the benchmark table (``set`` instead
        of ``decile``), same columns.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per cell type; bars = observed fraction per set (the top decile first),
        error bars = the random samples' 95 % range around their mean; p above each bar.
    """
    top = deciles[deciles["decile"] == deciles["decile"].max()].assign(set="model top decile").drop(columns="decile")
    both = pd.concat([top, benchmarks], ignore_index=True)
    cells = sorted(both["cell_type"].unique())
    sets = list(dict.fromkeys(both["set"]))
    fig, axes = plt.subplots(1, len(cells), figsize=(3.4 * len(cells) + 0.6, 3.2), sharey=True, squeeze=False)
    for ax, ct in zip(axes[0], cells):
        t = both[both["cell_type"] == ct].set_index("set").reindex(sets)
        x = np.arange(len(sets))
        ax.bar(x, t["fraction"], color=["#CC79A7", *["#0072B2"] * (len(sets) - 1)], alpha=0.85)
        err = np.vstack([t["random_mean"] - t["random_lo"], t["random_hi"] - t["random_mean"]])
        ax.errorbar(x, t["random_mean"], yerr=err, fmt="_", color="black", capsize=3, label="random (mean, 95 %)")
        for xi, (f, p) in enumerate(zip(t["fraction"], t["p"])):
            if np.isfinite(f):
                ax.text(xi, f, f"p={p:.2g}", ha="center", va="bottom", fontsize=6)
        ax.set_xticks(x, sets, rotation=30, ha="right", fontsize=7)
        ax.set_title(ct, fontsize=8)
    axes[0][0].set_ylabel("fraction of loci with an eQTL")
    axes[0][-1].legend(fontsize=7, frameon=False)
    fig.suptitle(f"Model top decile vs benchmark loci · {data_label(_provenance(both))}", fontsize=9)
    fig.tight_layout()
    return fig
