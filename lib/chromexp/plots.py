"""Figure functions (DESIGN.md §4.8): each takes a tidy table, returns a figure, states its data.

Conventions (STYLE.md, from greenelab/ccc):

* one function per panel type; input is a tidy results table, output a ``matplotlib`` figure;
* every figure's title or caption says which data it shows — :func:`data_label` makes the text
  (``semi-synthetic`` results must never look real);
* :func:`save_figure` writes SVG and PNG with a white background to ``figures/<name>.*``.

Contributors: add new panel functions at the end of this file (append; keep the helpers above).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .constants import REAL, SEMI_SYNTHETIC

#: One colour per mark, fixed across figures (colour-blind-safe Okabe–Ito + grey).
MARK_COLORS: dict[str, str] = {
    "H3K4me1": "#E69F00",
    "H3K4me3": "#D55E00",
    "H3K9me3": "#7F7F7F",
    "H3K27me3": "#0072B2",
    "H3K36me3": "#009E73",
    "H3K27ac": "#CC79A7",
    "H3K9ac": "#56B4E9",
}


def data_label(provenance: str) -> str:
    """Text that a caption must carry: ``"SEMI-SYNTHETIC data"`` or ``"real Roadmap data"``."""
    if provenance == SEMI_SYNTHETIC:
        return "SEMI-SYNTHETIC data (simulated reads, real expression)"
    if provenance == REAL:
        return "real data"
    raise ValueError(f"Unknown data provenance {provenance!r}; use {SEMI_SYNTHETIC!r} or {REAL!r}.")


def provenance_of(params) -> str:
    """Provenance of the dataset selected by ``params`` (``data.source``)."""
    return SEMI_SYNTHETIC if params["data"]["source"] == "semisynthetic" else REAL


def save_figure(fig: plt.Figure, name: str, out_dir: str | Path) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.svg`` and ``.png`` (white background); return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("svg", "png"):
        path = out_dir / f"{name}.{ext}"
        fig.savefig(path, dpi=150, facecolor="white", bbox_inches="tight")
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------
# Simulator calibration (notebook 00; chromexp.calibration) — appended by the simulator helper
# ----------------------------------------------------------------------------------------------
def plot_calibration(real_profiles, simulated_profiles, table, marks=None) -> plt.Figure:
    """Real E003 vs SEMI-SYNTHETIC mean profiles around the TSS, side by side, with summary bars.

    Parameters
    ----------
    real_profiles, simulated_profiles : pandas.DataFrame
        :func:`chromexp.calibration.mean_profiles` tables (mark, group, position, value).
    table : pandas.DataFrame
        :func:`chromexp.calibration.compare` output (for the zero-fraction and TSS-r bars).
    marks : sequence of str, optional
        Rows of the figure (default: every mark in ``real_profiles``, in MARKS order).

    Returns
    -------
    matplotlib.figure.Figure
        One row per mark: real (left) and simulated (right) mean ln(mean depth + 1) in 100 bp
        bins, active vs inactive genes, shared y axis per row; a last row compares the fraction
        of zero bins and the TSS-signal/expression Pearson r per mark.
    """
    from .constants import MARKS

    marks = [m for m in MARKS if m in set(real_profiles["mark"])] if marks is None else list(marks)
    fig, axes = plt.subplots(
        len(marks) + 1, 2, figsize=(9, 1.7 * (len(marks) + 1) + 0.6), squeeze=False, constrained_layout=True
    )
    styles = {"active": "-", "inactive": "--"}
    for i, mark in enumerate(marks):
        ymax = 0.0
        for j, (profiles, name) in enumerate(((real_profiles, "real E003"), (simulated_profiles, "SEMI-SYNTHETIC"))):
            ax = axes[i, j]
            for group, ls in styles.items():
                p = profiles[(profiles["mark"] == mark) & (profiles["group"] == group)]
                ax.plot(p["position"] / 1000, p["value"], ls, color=MARK_COLORS[mark], lw=1, label=f"{group} genes")
                ymax = max(ymax, float(p["value"].max()))
            ax.set_title(f"{mark} · {name}", fontsize=9)
            ax.axvline(0, color="0.7", lw=0.5)
            if j == 0:
                ax.set_ylabel("ln(depth+1)", fontsize=8)
            ax.tick_params(labelsize=7)
        for j in range(2):
            axes[i, j].set_ylim(0, ymax * 1.08)
    for j in range(2):
        axes[len(marks) - 1, j].set_xlabel("distance from TSS (kb, 5'→3')", fontsize=8)
    axes[0, 0].legend(fontsize=7, frameon=False)
    x = range(len(marks))
    for ax, stat, title in (
        (axes[-1, 0], "zero_fraction", "fraction of 100 bp bins with no read"),
        (axes[-1, 1], "tss_r", "Pearson r: TSS signal vs log2(RPKM+1)"),
    ):
        t = table[table["statistic"] == stat].set_index("mark").reindex(marks)
        ax.bar([k - 0.2 for k in x], t["real"], width=0.4, color="0.4", label="real E003")
        ax.bar([k + 0.2 for k in x], t["simulated"], width=0.4, color=[MARK_COLORS[m] for m in marks], label="SEMI-SYNTHETIC")
        ax.set_xticks(list(x), marks, rotation=45, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.axhline(0, color="0.5", lw=0.5)
        ax.tick_params(labelsize=7)
    axes[-1, 0].legend(fontsize=7, frameon=False)
    fig.suptitle(
        "Simulator calibration on the same 100 E003 genes: real data (left) vs "
        + data_label(SEMI_SYNTHETIC)
        + " (right)",
        fontsize=9,
    )
    return fig


# ----------------------------------------------------------------------------------------------
# Promoter CNN (notebook 30; paper Fig. 1A) — appended by the promoter-CNN helper
# ----------------------------------------------------------------------------------------------
def plot_promoter_performance(
    metrics,
    provenance: str,
    model: str = "promoter_cnn",
    metric: str = "pearson_r",
    naive_prefix: str = "naive_tss",
    naive_metric: str = "abs_pearson_r",
    cell_type: str | None = None,
) -> plt.Figure:
    """Test performance of single-mark promoter models by mark, with the naive baselines (Fig. 1A).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``) holding ``model`` rows (one per mark and fold,
        ``split == "test"``) and, optionally, naive-baseline rows (``model`` starting with
        ``naive_prefix``, e.g. ``naive_tss750``, metric ``naive_metric``).
    provenance : str
        ``"semi-synthetic"`` or ``"real"``; goes into the title.
    model, metric : str
        The model rows and metric to plot (bars: mean over folds; dots: folds).
    naive_prefix, naive_metric : str
        Which rows are naive baselines (markers: mean over folds per flank).
    cell_type : str, optional
        Restrict to one cell type (default: all rows, which should then be one cell type).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    from .constants import MARKS

    t = metrics[metrics["split"] == "test"]
    if cell_type is not None:
        t = t[t["cell_type"] == cell_type]
    cnn = t[(t["model"] == model) & (t["metric"] == metric)]
    if cnn.empty:
        raise ValueError(f"No test rows of model {model!r} with metric {metric!r} to plot.")
    marks = [m for m in MARKS if m in set(cnn["marks"])]
    naive = t[t["model"].str.startswith(naive_prefix) & (t["metric"] == naive_metric) & t["marks"].isin(marks)]
    fig, ax = plt.subplots(figsize=(1.0 * len(marks) + 2.5, 3.6), constrained_layout=True)
    pos = np.arange(len(marks))
    means = cnn.groupby("marks")["value"].mean().reindex(marks)
    ax.bar(pos, means, width=0.6, color=[MARK_COLORS[m] for m in marks], alpha=0.85, label=f"{model} (mean of folds)")
    rng = np.random.default_rng(0)  # fixed jitter: the figure is the same on every run
    for i, mark in enumerate(marks):
        v = cnn[cnn["marks"] == mark]["value"].to_numpy()
        ax.scatter(
            i + rng.uniform(-0.12, 0.12, v.size), v, s=12, color="black", zorder=3, label="folds" if i == 0 else None
        )
    markers = ["_", "x", "+", "1", "2"]
    for k, (name, rows) in enumerate(
        sorted(naive.groupby("model"), key=lambda kv: int(kv[0][len(naive_prefix) :] or 0))
    ):
        nm = rows.groupby("marks")["value"].mean().reindex(marks)
        ax.scatter(
            pos + 0.36,
            nm,
            marker=markers[k % len(markers)],
            s=60,
            color="0.25",
            zorder=4,
            label=f"naive |r|, TSS ± {name[len(naive_prefix) :]} bp",
        )
    ax.set_xticks(pos, marks, rotation=30)
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_ylim(min(0.0, float(cnn["value"].min()) - 0.05), 1.0)
    ax.legend(fontsize=7, frameon=False, loc="upper left", ncol=2)
    cells = ", ".join(sorted(set(cnn["cell_type"])))
    ax.set_title(f"{cells}: promoter CNN (TSS ± 3 kb) by mark, chromosome folds\n{data_label(provenance)}", fontsize=9)
    return fig


def plot_training_curves(history, provenance: str, loss: str = "val_loss") -> plt.Figure:
    """Validation (or training) loss per epoch of every (mark, fold) model; the best epoch marked.

    Parameters
    ----------
    history : pandas.DataFrame
        ``PromoterRun.history``: columns ``epoch``, ``train_loss``, ``val_loss``, ``marks``,
        ``fold``, ``best_epoch``.
    provenance : str
        ``"semi-synthetic"`` or ``"real"``.
    loss : str
        Column to plot.
    """
    from .constants import MARKS

    folds = sorted(set(history["fold"]))
    fig, axes = plt.subplots(
        1, len(folds), figsize=(2.6 * len(folds) + 0.6, 2.6), sharey=True, squeeze=False, constrained_layout=True
    )
    for ax, fold in zip(axes[0], folds, strict=True):
        h = history[history["fold"] == fold]
        for mark in [m for m in MARKS if m in set(h["marks"])]:
            hm = h[h["marks"] == mark]
            ax.plot(hm["epoch"], hm[loss], color=MARK_COLORS.get(mark, "0.3"), lw=1, label=mark)
            best = hm[hm["epoch"] == hm["best_epoch"]]
            ax.scatter(best["epoch"], best[loss], color=MARK_COLORS.get(mark, "0.3"), s=14, zorder=3)
        ax.set_title(f"fold {fold}", fontsize=9)
        ax.set_xlabel("epoch")
    axes[0, 0].set_ylabel(loss.replace("_", " ") + " (MSE)")
    axes[0, -1].legend(fontsize=6, frameon=False)
    fig.suptitle(f"Promoter CNN training curves (dot = restored best epoch) — {data_label(provenance)}", fontsize=9)
    return fig


def plot_semisynthetic_summary(reads, folds, pcres) -> plt.Figure:
    """Overview of a generated SEMI-SYNTHETIC dataset: reads per track, genes per fold, pCREs per gene.

    Parameters
    ----------
    reads : pandas.DataFrame
        cell_type, mark, n_reads (``chromexp.simulate.dataset_summary()["reads"]``).
    folds : pandas.DataFrame
        fold, n_genes.
    pcres : pandas.DataFrame
        tissue, gene_id, n_pcres (after the dataset's pCRE filter and top-8 cap).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels; the title says the data are semi-synthetic.
    """
    from .constants import MARKS

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
    ax = axes[0]
    cells = list(dict.fromkeys(reads["cell_type"]))
    width = 0.8 / max(len(MARKS), 1)
    for k, mark in enumerate(MARKS):
        r = reads[reads["mark"] == mark].set_index("cell_type").reindex(cells)
        ax.bar([i + k * width for i in range(len(cells))], r["n_reads"] / 1e6, width, color=MARK_COLORS[mark], label=mark)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cells))], cells)
    ax.set_ylabel("reads (millions)")
    ax.set_title("simulated reads per track", fontsize=10)
    ax.legend(fontsize=6, ncol=2, frameon=False)
    axes[1].bar(folds["fold"].astype(str), folds["n_genes"], color="0.5")
    axes[1].set_xlabel("fold (chromosome group)")
    axes[1].set_ylabel("genes")
    axes[1].set_title("genes per cross-validation fold", fontsize=10)
    ax = axes[2]
    tissues = list(dict.fromkeys(pcres["tissue"]))
    top = int(pcres["n_pcres"].max()) if len(pcres) else 0
    for k, tissue in enumerate(tissues):
        counts = pcres[pcres["tissue"] == tissue]["n_pcres"].value_counts().reindex(range(top + 1), fill_value=0)
        w = 0.8 / max(len(tissues), 1)
        ax.bar([i + k * w for i in range(top + 1)], counts.to_numpy(), w, label=f"pcHi-C {tissue}")
    ax.set_xlabel("pCREs per gene (frequency > 1.5, ≤ 40 kb, top 8)")
    ax.set_ylabel("genes")
    ax.set_title("pcHi-C-linked regions per gene", fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"Generated dataset — {data_label(SEMI_SYNTHETIC)}", fontsize=10)
    return fig
