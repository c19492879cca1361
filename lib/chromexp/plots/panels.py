"""Per-run figure panels (notebooks 00–80): each takes a tidy table, returns a figure, states its data.

Conventions (from greenelab/ccc):

* one function per panel type; input is a tidy results table, output a ``matplotlib`` figure;
* every figure's title or caption says which data it shows — :func:`chromexp.provenance.data_label`
  makes the text (``semi-synthetic`` results must never look real);
* colours, theme and saving come from :mod:`chromexp.plots.style` (:func:`~chromexp.plots.style.save_figure`
  writes SVG and PNG with a white background to ``figures/<name>.*``).

Contributors: add new panel functions at the end of this file.
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from ..constants import SEMI_SYNTHETIC
from ..provenance import data_label
from .style import MARK_COLORS, metric_label

#: Fig. 1A per cell type: bar width, and where the naive-baseline markers sit (right of the bar, one
#: column per flank, far enough apart that the markers never overlap the bar or each other).
BAR_WIDTH, NAIVE_OFFSET, NAIVE_STEP = 0.5, 0.36, 0.14


# ----------------------------------------------------------------------------------------------
# Simulator calibration (notebook 00; chromexp.simulate.calibration) — appended by the simulator helper
# ----------------------------------------------------------------------------------------------
def plot_calibration(real_profiles, simulated_profiles, table, marks=None) -> plt.Figure:
    """Real E003 vs SEMI-SYNTHETIC mean profiles around the TSS, side by side, with summary bars.

    Parameters
    ----------
    real_profiles, simulated_profiles : pandas.DataFrame
        :func:`chromexp.simulate.calibration.mean_profiles` tables (mark, group, position, value).
    table : pandas.DataFrame
        :func:`chromexp.simulate.calibration.compare` output (for the zero-fraction and TSS-r bars).
    marks : sequence of str, optional
        Rows of the figure (default: every mark in ``real_profiles``, in MARKS order).

    Returns
    -------
    matplotlib.figure.Figure
        One row per mark: real (left) and simulated (right) mean ln(mean depth + 1) in 100 bp
        bins, active vs inactive genes, shared y axis per row; a last row compares the fraction
        of zero bins and the TSS-signal/expression Pearson r per mark.
    """
    from ..constants import MARKS

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
        ax.bar(
            [k + 0.2 for k in x],
            t["simulated"],
            width=0.4,
            color=[MARK_COLORS[m] for m in marks],
            label="SEMI-SYNTHETIC",
        )
        ax.set_xticks(list(x), marks, rotation=45, fontsize=7)
        ax.set_title(title, fontsize=9)
        lo, hi = ax.get_ylim()
        ax.set_ylim(lo, hi + 0.3 * (hi - lo))  # room for the legend above the bars
        ax.axhline(0, color="0.5", lw=0.5)
        ax.tick_params(labelsize=7)
    axes[-1, 0].legend(fontsize=7, frameon=False, ncol=2, loc="upper center")
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

    from ..constants import MARKS

    t = metrics[metrics["split"] == "test"]
    if cell_type is not None:
        t = t[t["cell_type"] == cell_type]
    cnn = t[(t["model"] == model) & (t["metric"] == metric)]
    if cnn.empty:
        raise ValueError(f"No test rows of model {model!r} with metric {metric!r} to plot.")
    marks = [m for m in MARKS if m in set(cnn["marks"])]
    naive = t[t["model"].str.startswith(naive_prefix) & (t["metric"] == naive_metric) & t["marks"].isin(marks)]
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(1.0 * len(marks) + 2.5, 3.6), constrained_layout=True)
    pos = np.arange(len(marks))
    means = cnn.groupby("marks")["value"].mean().reindex(marks)
    ax.bar(pos, means, width=BAR_WIDTH, color=[MARK_COLORS[m] for m in marks], alpha=0.85)
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
            pos + NAIVE_OFFSET + NAIVE_STEP * k,  # one column per flank, right of the bar, apart
            nm,
            marker=markers[k % len(markers)],
            s=60,
            color="0.25",
            zorder=4,
            label=f"naive |r|, TSS ± {name[len(naive_prefix) :]} bp",
        )
    ax.set_xticks(pos, marks, rotation=30)
    ax.set_xlim(-0.6, len(marks) - 1 + NAIVE_OFFSET + NAIVE_STEP * 2 + 0.25)
    ax.set_ylabel(f"test {metric_label(metric)}")
    ax.axhline(0, color="0.5", lw=0.5)
    ax.set_ylim(min(0.0, float(cnn["value"].min()) - 0.05), 1.0)
    # the bars are coloured by mark: the legend's bar swatch is neutral grey, not one mark's colour
    name = "promoter CNN" if model == "promoter_cnn" else model.replace("_", " ")
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Patch(facecolor="0.6", alpha=0.85, label=f"{name} (mean of folds; colour = mark)"))
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
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
    from matplotlib.ticker import MaxNLocator

    from ..constants import MARKS

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
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    axes[0, 0].set_ylabel({"val_loss": "validation loss", "train_loss": "training loss"}.get(loss, loss) + " (MSE)")
    axes[0, -1].legend(fontsize=6, frameon=False)
    fig.suptitle(f"Promoter CNN training curves (dot = restored best epoch) — {data_label(provenance)}", fontsize=9)
    return fig


def plot_semisynthetic_summary(reads, folds, pcres) -> plt.Figure:
    """Overview of a generated SEMI-SYNTHETIC dataset: reads per track, genes per fold, pCREs per gene.

    Parameters
    ----------
    reads : pandas.DataFrame
        cell_type, mark, n_reads (``chromexp.simulate.roadmap.dataset_summary()["reads"]``).
    folds : pandas.DataFrame
        fold, n_genes.
    pcres : pandas.DataFrame
        tissue, gene_id, n_pcres (after the dataset's pCRE filter and top-8 cap).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels; the title says the data are semi-synthetic.
    """
    from ..constants import MARKS

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4), constrained_layout=True)
    ax = axes[0]
    cells = list(dict.fromkeys(reads["cell_type"]))
    width = 0.8 / max(len(MARKS), 1)
    for k, mark in enumerate(MARKS):
        r = reads[reads["mark"] == mark].set_index("cell_type").reindex(cells)
        ax.bar(
            [i + k * width for i in range(len(cells))], r["n_reads"] / 1e6, width, color=MARK_COLORS[mark], label=mark
        )
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


# ---- ShallowChrome baseline (notebook 20) ---------------------------------------------------
def plot_shallowchrome_configurations(grid, provenance: str, split: str = "validation") -> plt.Figure:
    """AUROC of every peak-format configuration on every split (ShallowChrome's selection grid).

    Parameters
    ----------
    grid : pandas.DataFrame
        ``ShallowChromeResult.grid``: ``model, scheme, fold, config, split, auroc``.
    provenance : str
        ``"semi-synthetic"`` or ``"real"`` (goes into the title).
    split : str
        Which split's AUROC to show (``validation`` = the one the selection uses).
    """
    sub = grid[(grid["split"] == split) & (grid["model"] == "shallowchrome")]
    schemes = list(dict.fromkeys(sub["scheme"]))
    configs = list(dict.fromkeys(sub["config"]))
    fig, axes = plt.subplots(1, len(schemes), figsize=(4.2 * len(schemes), 3.4), squeeze=False, constrained_layout=True)
    for ax, scheme in zip(axes[0], schemes):
        s = sub[sub["scheme"] == scheme]
        data = [s.loc[s["config"] == c, "auroc"].to_numpy() for c in configs]
        ax.boxplot(data, showfliers=False)
        for i, d in enumerate(data):
            ax.plot([i + 1] * len(d), d, "o", ms=3, alpha=0.6, color="0.3")
        ax.set_xticks(range(1, len(configs) + 1), configs, rotation=35, ha="right", fontsize=8)
        ax.set_ylabel(f"{split} AUROC")
        ax.set_title(f"{scheme} ({s['fold'].nunique()} splits)", fontsize=9)
    cell = ", ".join(map(str, dict.fromkeys(sub["cell_type"])))
    fig.suptitle(
        f"ShallowChrome peak configurations (<repressive>_<active> format), {cell} — {data_label(provenance)}",
        fontsize=9,
    )
    return fig


def plot_valley_threshold(
    rpkm, median: float, valley: float, provenance: str, cell_type: str, bins: int = 100
) -> plt.Figure:
    """Histogram of ln(1 + RPKM) with the median and the 'valley' thresholds (ShallowChrome Fig. S2)."""
    import numpy as np

    t = np.log1p(np.asarray(rpkm, dtype=float))
    fig, ax = plt.subplots(figsize=(5.5, 3.2), constrained_layout=True)
    ax.hist(t, bins=bins, color="cadetblue")
    ax.axvline(np.log1p(median), color="#D55E00", lw=1.2, label=f"median threshold (RPKM {median:.3g})")
    ax.axvline(np.log1p(valley), color="#009E73", lw=1.2, label=f"valley threshold (RPKM {valley:.3g})")
    ax.set_xlabel("ln(1 + RPKM)")
    ax.set_ylabel("genes per bin")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"{cell_type}: activity thresholds — expression is real; {data_label(provenance)}", fontsize=8)
    return fig


def plot_regulative_patterns(patterns, provenance: str) -> plt.Figure:
    """ShallowChrome gene-wise regulative patterns (the paper's PAX5 figure): genes x cell types.

    Parameters
    ----------
    patterns : pandas.DataFrame
        ``shallowchrome.gene_patterns`` output for one or more cell types: ``cell_type,
        gene_name, term, value, role, label, probability``.
    """
    import numpy as np

    genes = list(dict.fromkeys(patterns["gene_name"]))
    cells = list(dict.fromkeys(patterns["cell_type"]))
    colors = {"activator": "cadetblue", "repressor": "indianred"}
    fig, axes = plt.subplots(
        len(genes),
        len(cells),
        figsize=(2.6 * len(cells) + 0.6, 2.2 * len(genes) + 0.6),
        squeeze=False,
        sharey="row",
        constrained_layout=True,
    )
    for i, gene in enumerate(genes):
        for j, cell in enumerate(cells):
            ax = axes[i][j]
            p = patterns[(patterns["gene_name"] == gene) & (patterns["cell_type"] == cell)]
            if p.empty:
                ax.set_axis_off()
                continue
            col = [
                ("cadetblue" if v > 0 else "indianred") if t == "(bias)" else colors.get(r, "lightgray")
                for t, v, r in zip(p["term"], p["value"], p["role"])
            ]
            ax.bar(np.arange(len(p)), p["value"], color=col)
            ax.axhline(0, color="0.3", lw=0.6)
            ax.set_xticks(np.arange(len(p)), p["term"], rotation=90, fontsize=7)
            first = p.iloc[0]
            ax.set_title(
                f"{gene} in {cell}: label {int(first['label'])}, P(active) {first['probability']:.2f}", fontsize=7
            )
            if j == 0:
                ax.set_ylabel("contribution to log-odds")
    fig.suptitle(
        "ShallowChrome regulative patterns (bias, w·x per mark; blue activator, red repressor, grey p ≥ 1e-4) — "
        + data_label(provenance),
        fontsize=8,
    )
    return fig


def plot_auroc_vs_published(ours, published, provenance: str) -> plt.Figure:
    """Our ShallowChrome test AUROC per cell type beside DeepChrome's published AUROC.

    The two are on DIFFERENT data: DeepChrome's numbers are real Roadmap results (single
    sequential split, 2 decimals); ours are on the data of this run (semi-synthetic unless real
    data was supplied), so the comparison is a sanity anchor, not a benchmark.

    Parameters
    ----------
    ours : pandas.DataFrame
        ``cell_type, scheme, auroc_mean, auroc_sd`` (``shallowchrome.summarise`` output).
    published : pandas.DataFrame
        ``epigenome, auroc`` (``resources/roadmap/published_auroc_deepchrome.tsv``).
    """
    import numpy as np

    cells = list(dict.fromkeys(ours["cell_type"]))
    schemes = list(dict.fromkeys(ours["scheme"]))
    pub = published.set_index("epigenome")["auroc"]
    width = 0.8 / (len(schemes) + 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(cells) + 2.5, 3.4), constrained_layout=True)
    x = np.arange(len(cells))
    ax.bar(
        x, [pub.get(c, np.nan) for c in cells], width, color="0.6", label="DeepChrome, published (REAL Roadmap data)"
    )
    for k, scheme in enumerate(schemes):
        s = ours[ours["scheme"] == scheme].set_index("cell_type").reindex(cells)
        ax.bar(
            x + (k + 1) * width,
            s["auroc_mean"],
            width,
            yerr=s["auroc_sd"],
            capsize=2,
            label=f"ShallowChrome (ours), {scheme} — {provenance}",
        )
    ax.set_xticks(x + width * len(schemes) / 2, cells)
    ax.set_ylim(0.5, 1.0)
    ax.set_ylabel("test AUROC")
    ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(f"Different data: published real-data AUROCs vs ours on {data_label(provenance)}", fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------
# Chromoformer (notebooks 40 and 50; paper Fig. 4A/C and Fig. 5) — appended by the Chromoformer helper
# ----------------------------------------------------------------------------------------------
def plot_distal_vs_promoter(
    metrics, gains, provenance: str, model: str = "chromoformer_reg", metric: str = "pearson_r"
) -> plt.Figure:
    """Distal model per mark set (Fig. 4A) and its gain over the promoter CNN per mark (Fig. 4C).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy metrics with ``model`` test rows (one per mark set and fold).
    gains : pandas.DataFrame
        :func:`chromexp.analyses.gains.gain_over_promoter` output (marks, fold,
        distal, promoter, gain); may be empty (then the right panel says so).
    provenance : str
        ``"semi-synthetic"`` or ``"real"``; goes into the title.

    Returns
    -------
    matplotlib.figure.Figure
        Left: bars = mean test ``metric`` over folds per mark set, dots = folds. Right: gain
        (distal − promoter CNN) per mark, dots = folds.
    """
    import numpy as np

    from ..constants import MARKS

    t = metrics[(metrics["split"] == "test") & (metrics["model"] == model) & (metrics["metric"] == metric)]
    if t.empty:
        raise ValueError(f"No test rows of model {model!r} with metric {metric!r} to plot.")
    sets = [m for m in MARKS if m in set(t["marks"])] + sorted(s for s in set(t["marks"]) if s not in MARKS)
    fig, axes = plt.subplots(1, 2, figsize=(2.0 + 1.6 * len(sets), 3.8), constrained_layout=True)
    rng = np.random.default_rng(0)  # fixed jitter
    for ax, table, col, keys, ylabel in (
        (axes[0], t, "value", sets, f"test {metric_label(metric)}"),
        (
            axes[1],
            gains,
            "gain",
            [s for s in sets if len(gains) and s in set(gains["marks"])],
            f"gain in {metric_label(metric)} over promoter CNN",
        ),
    ):
        if not keys:
            ax.text(
                0.5,
                0.5,
                "no promoter CNN results in this run\n(run notebook 30 first)",
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
            ax.set_axis_off()
            continue
        pos = np.arange(len(keys))
        means = table.groupby("marks")[col].mean().reindex(keys)
        colors = [MARK_COLORS.get(k, "0.35") for k in keys]
        ax.bar(pos, means, width=0.6, color=colors, alpha=0.85)
        for i, k in enumerate(keys):
            v = table[table["marks"] == k][col].to_numpy()
            ax.scatter(i + rng.uniform(-0.12, 0.12, v.size), v, s=12, color="black", zorder=3)
        ax.set_xticks(pos, ["all marks" if k.count("+") >= 6 else k for k in keys], rotation=30, ha="right")
        ax.axhline(0, color="0.5", lw=0.5)
        ax.set_ylabel(ylabel)
    axes[0].set_title("Chromoformer (distal), per mark set", fontsize=9)
    cells = ", ".join(sorted(set(t["cell_type"])))
    fig.suptitle(f"Distal model vs promoter CNN (Fig. 4A/C), {cells} · {data_label(provenance)}", fontsize=9)
    return fig


def plot_pair_gains(pairs, provenance: str, metric: str = "pearson_r") -> plt.Figure:
    """Gain of each mark pair over its better single mark and vs all marks (Fig. 5).

    Parameters
    ----------
    pairs : pandas.DataFrame
        :func:`chromexp.analyses.gains.pair_gains` output.
    provenance : str
        ``"semi-synthetic"`` or ``"real"``; goes into the title.

    Returns
    -------
    matplotlib.figure.Figure
        Horizontal bars per pair (mean over folds, dots = folds): left, gain over the better
        single mark; right, difference to the all-marks model.
    """
    import numpy as np

    if pairs.empty:
        raise ValueError("No mark-set results to plot.")
    order = pairs.groupby("marks")["gain_over_best_single"].mean().sort_values().index.tolist()
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.35 * len(order) + 1.8), sharey=True, constrained_layout=True)
    pos = np.arange(len(order))
    rng = np.random.default_rng(0)
    for ax, col, title in (
        (axes[0], "gain_over_best_single", "pair − better single mark"),
        (axes[1], "gain_over_all_marks", "pair − all marks"),
    ):
        means = pairs.groupby("marks")[col].mean().reindex(order)
        ax.barh(pos, means, color=["#009E73" if v > 0 else "#D55E00" for v in means.fillna(0)], alpha=0.85)
        for i, k in enumerate(order):
            v = pairs[pairs["marks"] == k][col].to_numpy()
            ax.scatter(v, i + rng.uniform(-0.15, 0.15, v.size), s=10, color="black", zorder=3)
        ax.axvline(0, color="0.5", lw=0.5)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(f"difference in test {metric_label(metric)}")
        ax.locator_params(axis="x", nbins=4)
    axes[0].set_yticks(pos, order)
    fig.suptitle(f"Chromoformer mark pairs (Fig. 5) · {data_label(provenance)}", fontsize=9)
    return fig


# ---- dataset QC (notebook 10) ----------------------------------------------------------------
def plot_dataset_overview(splits, exclusions, genes, median: float, provenance: str, cell_type: str) -> plt.Figure:
    """Dataset QC: genes per fold and split role, exclusions by reason, expression with the label threshold.

    Parameters
    ----------
    splits : pandas.DataFrame
        fold, split (train/validation/test), n_genes (``chromexp.data.dataset.split_table``).
    exclusions : pandas.DataFrame
        reason, level, n_genes, n_items (``CellDataset.exclusions``).
    genes : pandas.DataFrame
        rpkm, label (``CellDataset.genes``).
    median : float
        The label threshold (RPKM).
    provenance : str
        ``"semi-synthetic"`` or ``"real"``.
    cell_type : str
    """
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), constrained_layout=True)
    ax = axes[0]
    roles = ["train", "validation", "test"]
    colors = {"train": "0.65", "validation": "#E69F00", "test": "#0072B2"}
    folds = sorted(splits["fold"].unique())
    bottom = np.zeros(len(folds))
    for role in roles:
        n = splits[splits["split"] == role].set_index("fold").reindex(folds)["n_genes"].fillna(0).to_numpy()
        ax.bar([str(f) for f in folds], n, bottom=bottom, color=colors[role], label=role)
        bottom += n
    ax.set_xlabel("test fold (chromosome group)")
    ax.set_ylabel("genes")
    ax.set_title("genes per split when each fold is the test fold", fontsize=9)
    ax.set_ylim(0, bottom.max() * 1.2)
    ax.legend(fontsize=7, frameon=False, ncol=3, loc="upper center")
    ax = axes[1]
    ex = exclusions.iloc[::-1]
    pos = np.arange(len(ex))
    counts = np.where(ex["level"] == "gene", ex["n_genes"], ex["n_items"])
    ax.barh(pos, counts, color=["#D55E00" if lvl == "gene" else "#56B4E9" for lvl in ex["level"]])
    ax.set_yticks(pos, [f"{r} ({lvl})" for r, lvl in zip(ex["reason"], ex["level"])], fontsize=7)
    for p, c in zip(pos, counts):
        ax.text(c, p, f" {int(c)}", va="center", fontsize=7)
    ax.set_xlabel("excluded genes (gene reasons) / pCREs (pcre reasons)")
    ax.set_title("exclusions by reason (nothing dropped silently)", fontsize=9)
    ax = axes[2]
    target = np.log2(genes["rpkm"].to_numpy() + 1)
    ax.hist(target, bins=50, color="0.6")
    ax.axvline(np.log2(median + 1), color="#D55E00", label=f"median RPKM {median:.3g} (label threshold)")
    ax.set_xlabel("log2(RPKM + 1)")
    ax.set_ylabel("genes")
    n_active = int(genes["label"].sum())
    ax.set_title(f"expression ({n_active} active / {len(genes) - n_active} inactive)", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    fig.suptitle(f"Dataset {cell_type} — {data_label(provenance)}", fontsize=10)
    return fig


def plot_promoter_profiles(profiles, marks=None) -> plt.Figure:
    """Mean promoter profile per mark, active vs inactive genes, one line style per data source.

    Parameters
    ----------
    profiles : pandas.DataFrame
        Tidy: source ("semi-synthetic"/"real"), mark, group (active/inactive), position (bp from
        the TSS), mean (``chromexp.data.dataset.promoter_profiles``), n_genes; several sources overlay.
    marks : sequence of str, optional
        Panels to draw (default: every mark in ``profiles``).
    """
    marks = list(marks) if marks is not None else list(dict.fromkeys(profiles["mark"]))
    sources = list(dict.fromkeys(profiles["source"]))
    fig, axes = plt.subplots(1, len(marks), figsize=(2.3 * len(marks), 2.9), sharex=True, constrained_layout=True)
    axes = [axes] if len(marks) == 1 else list(axes)
    styles = ["-", "--", ":"]
    for ax, mark in zip(axes, marks):
        for s, source in enumerate(sources):
            for group, alpha in (("active", 1.0), ("inactive", 0.45)):
                d = profiles[(profiles["mark"] == mark) & (profiles["source"] == source) & (profiles["group"] == group)]
                if d.empty:
                    continue
                ax.plot(
                    d["position"] / 1000,
                    d["mean"],
                    styles[s % len(styles)],
                    color=MARK_COLORS.get(mark, "k"),
                    alpha=alpha,
                    lw=1.2,
                    label=f"{source}, {group} (n={int(d['n_genes'].iloc[0])})",
                )
        ax.set_title(mark, fontsize=9)
        ax.set_xlabel("kb from TSS")
    axes[0].set_ylabel("mean ln(depth + 1)")
    axes[-1].legend(fontsize=6, frameon=False, loc="upper right")
    names = ["solid", "dashed", "dotted"]
    label = " vs ".join(f"{data_label(s)} ({names[i % len(names)]})" for i, s in enumerate(sources))
    fig.suptitle(f"Promoter profiles, active vs inactive genes — {label}", fontsize=9)
    return fig


def plot_pcres_per_gene(n_pcres, provenance: str, max_pcres: int = 8) -> plt.Figure:
    """Histogram of the number of pCREs per gene (0 … max_pcres) after the pCRE rule."""
    import numpy as np

    counts = np.bincount(np.asarray(n_pcres, dtype=int), minlength=max_pcres + 1)
    fig, ax = plt.subplots(figsize=(4.5, 3), constrained_layout=True)
    ax.bar(np.arange(len(counts)), counts, color="0.5")
    ax.set_xlabel(f"pCREs per gene (frequency > 1.5, ≤ 40 kb, top {max_pcres})")
    ax.set_ylabel("genes")
    ax.set_title(f"pcHi-C-linked regions per gene — {data_label(provenance)}", fontsize=8)
    return fig


# ----------------------------------------------------------------------------------------------
# Real E116 at 10 kb (notebook 15; chromexp.experiments.real_e116)
# ----------------------------------------------------------------------------------------------
def _mark_set_order(keys) -> list[str]:
    """Single marks in MARKS order, then multi-mark sets (``+``-joined), as they come."""
    from ..constants import MARKS

    keys = list(dict.fromkeys(keys))
    singles = [m for m in MARKS if m in keys]
    return singles + [k for k in keys if k not in singles]


def _mark_set_label(key: str) -> str:
    return f"all {key.count('+') + 1} marks" if "+" in key else key


def plot_binned_benchmark(
    metrics,
    provenance: str,
    bin_size: int,
    n_genes: int,
    models=None,
    k: int | None = None,
    baseline_k: int | None = None,
) -> plt.Figure:
    """Test Pearson r and AUROC of every model per mark set on a binned count table (bars: mean, dots: folds).

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``) of ``binned_*`` models, ``split == "test"`` rows used.
    provenance : str
        Of the count table (``"real"`` for the vendored E116 counts); goes into the title.
    bin_size, n_genes : int
        For the title.
    models : sequence of str, optional
        Models in drawing order (default: those present).
    k, baseline_k : int, optional
        Windows (TSS bin ± bins) of the models and of the bar, for the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import numpy as np

    t = metrics[metrics["split"] == "test"]
    models = [m for m in (models or list(dict.fromkeys(t["model"])))]
    keys = _mark_set_order(t["marks"])
    colors = {"binned_ridge": "0.45", "binned_logistic": "0.75", "binned_expecto": "#56B4E9", "binned_cnn": "#D55E00"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), constrained_layout=True)
    rng = np.random.default_rng(0)  # fixed jitter
    for ax, metric in zip(axes, ("pearson_r", "auroc")):
        shown = [m for m in models if len(t[(t["model"] == m) & (t["metric"] == metric)])]
        width = 0.8 / max(1, len(shown))
        for j, model in enumerate(shown):
            rows = t[(t["model"] == model) & (t["metric"] == metric)]
            means = rows.groupby("marks")["value"].mean().reindex(keys)
            pos = np.arange(len(keys)) - 0.4 + width * (j + 0.5)
            ax.bar(pos, means, width=width * 0.9, color=colors.get(model, "0.3"), alpha=0.85, label=model)
            for i, key in enumerate(keys):
                v = rows[rows["marks"] == key]["value"].to_numpy()
                ax.scatter(pos[i] + rng.uniform(-width / 5, width / 5, v.size), v, s=7, color="black", zorder=3)
        ax.set_xticks(np.arange(len(keys)), [_mark_set_label(k) for k in keys], rotation=30)
        ax.set_ylabel(f"test {metric.replace('_', ' ')} (dots: folds)")
        low = 0.5 if metric == "auroc" else 0.0
        ax.set_ylim(min(low, float(t[t["metric"] == metric]["value"].min()) - 0.05), 1.12)  # legend room
        ax.set_yticks([v for v in ax.get_yticks() if v <= 1.0 + 1e-9])
        ax.axhline(low, color="0.6", lw=0.6)
        ax.legend(fontsize=7, frameon=False, loc="upper left", ncol=4)
    axes[0].set_title("Pearson r with log2(RPKM + 1)", fontsize=9)
    axes[1].set_title("AUROC, active (RPKM >= median) vs inactive", fontsize=9)
    cells = ", ".join(sorted(set(t["cell_type"])))
    fig.suptitle(
        f"{cells}: histone read counts in {bin_size / 1000:g}-kb bins around the TSS, {n_genes:,} genes, "
        f"4 chromosome folds — {data_label(provenance)}"
        + (
            f"\nridge / logistic on the TSS bin ± {baseline_k} (the bar); ExPecto-style and CNN on the TSS bin ± {k}"
            if k is not None and baseline_k is not None
            else ""
        ),
        fontsize=9,
    )
    return fig


def plot_fold_ranking(ranking, stability, provenance: str, bin_size: int) -> plt.Figure:
    """Per-fold ranking of the single marks (paper Fig. 1A question) for each model: heatmaps.

    Parameters
    ----------
    ranking : pandas.DataFrame
        ``chromexp.experiments.real_e116.fold_ranking`` (model, fold, marks, value, rank).
    stability : pandas.DataFrame
        ``ranking_stability`` (model, kendall_w, n_folds_best_first, n_folds, best_mark).
    provenance : str
    bin_size : int

    Returns
    -------
    matplotlib.figure.Figure
        One panel per model: rows are marks (best mean first), columns folds; colour is the test
        metric, the text the rank within the fold (1 = best).
    """
    import numpy as np

    models = list(dict.fromkeys(ranking["model"]))
    metric = str(ranking["metric"].iloc[0])
    fig, axes = plt.subplots(1, len(models), figsize=(3.3 * len(models) + 0.8, 3.4), constrained_layout=True)
    axes = np.atleast_1d(axes)
    vmin, vmax = float(ranking["value"].min()), float(ranking["value"].max())
    image = None
    for ax, model in zip(axes, models):
        t = ranking[ranking["model"] == model]
        value = t.pivot_table(index="marks", columns="fold", values="value")
        rank = t.pivot_table(index="marks", columns="fold", values="rank")
        order = value.mean(axis=1).sort_values(ascending=False).index
        value, rank = value.loc[order], rank.loc[order]
        image = ax.imshow(value.to_numpy(), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(value.shape[0]):
            for j in range(value.shape[1]):
                dark = value.iat[i, j] < (vmin + vmax) / 2
                ax.text(
                    j,
                    i,
                    f"{int(rank.iat[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=9,
                    color="white" if dark else "black",
                )
        ax.set_xticks(range(value.shape[1]), [f"fold {f}" for f in value.columns], fontsize=8)
        ax.set_yticks(range(value.shape[0]), list(order), fontsize=8)
        s = stability[stability["model"] == model].iloc[0]
        ax.set_title(
            f"{model}\nKendall's W {s['kendall_w']:.2f}; {s['best_mark']} first in "
            f"{s['n_folds_best_first']}/{s['n_folds']} folds",
            fontsize=8,
        )
    fig.colorbar(image, ax=list(axes), shrink=0.8, label=f"test {metric.replace('_', ' ')}")
    fig.suptitle(
        f"Which single mark predicts expression best, per fold (numbers: rank), {bin_size / 1000:g}-kb bins — "
        f"{data_label(provenance)}",
        fontsize=9,
    )
    return fig


def plot_real_vs_simulated(
    performance,
    deciles,
    provenance_real: str,
    provenance_sim: str,
    n_genes: int,
    bin_size: int = 10_000,
    cell_type: str = "E116",
) -> plt.Figure:
    """Per mark: the TSS ± 1 bin baseline on real counts vs the simulator's reads in the same bins.

    Parameters
    ----------
    performance : pandas.DataFrame
        ``source, provenance, model, metric, marks, fold, value`` (test rows; ``source`` is
        ``"real counts"`` or ``"simulated reads"``).
    deciles : pandas.DataFrame
        ``chromexp.experiments.real_e116.expression_deciles`` of both sources (``source`` column).
    provenance_real, provenance_sim : str
    n_genes, bin_size : int
        For the title.
    cell_type : str

    Returns
    -------
    matplotlib.figure.Figure
        Top: ridge Pearson r and logistic AUROC per mark set (bars: mean over folds, dots: folds),
        real vs simulated side by side. Bottom: per mark, mean ln(count + 1) in the TSS bin per
        expression decile (deciles of log2(RPKM + 1) over the compared genes), real (solid) vs
        simulated (dashed).
    """
    import numpy as np

    from ..constants import MARKS

    keys = _mark_set_order(performance["marks"])
    marks = [m for m in MARKS if m in set(deciles["mark"])]
    sources = list(dict.fromkeys(performance["source"]))
    fig = plt.figure(figsize=(max(10, 2.2 * len(marks)), 6.6), constrained_layout=True)
    n = max(1, len(marks))
    grid = fig.add_gridspec(2, 2 * n)
    names = {
        s: f"{s} ({'SEMI-SYNTHETIC' if p == 'semi-synthetic' else p})"
        for s, p in performance[["source", "provenance"]].drop_duplicates().itertuples(index=False)
    }
    colors = dict(zip(sources, ("0.35", "#E69F00")))
    rng = np.random.default_rng(0)
    for panel, (model, metric, title) in enumerate(
        (
            ("binned_ridge", "pearson_r", "ridge, TSS bin ± 1: test Pearson r"),
            ("binned_logistic", "auroc", "logistic, TSS bin ± 1: test AUROC"),
        )
    ):
        ax = fig.add_subplot(grid[0, panel * n : (panel + 1) * n])
        for j, source in enumerate(sources):
            rows = performance[
                (performance["source"] == source) & (performance["model"] == model) & (performance["metric"] == metric)
            ]
            means = rows.groupby("marks")["value"].mean().reindex(keys)
            pos = np.arange(len(keys)) - 0.2 + 0.4 * j
            ax.bar(pos, means, width=0.36, color=colors[source], alpha=0.85, label=names[source])
            for i, key in enumerate(keys):
                v = rows[rows["marks"] == key]["value"].to_numpy()
                ax.scatter(pos[i] + rng.uniform(-0.07, 0.07, v.size), v, s=6, color="black", zorder=3)
        ax.set_xticks(np.arange(len(keys)), [_mark_set_label(k) for k in keys], rotation=30, fontsize=8)
        ax.set_title(title, fontsize=9)
        shown = performance[(performance["model"] == model) & (performance["metric"] == metric)]["value"]
        ax.set_ylim(min(0.5 if metric == "auroc" else 0.0, float(shown.min()) - 0.05), 1.17)  # legend room
        ax.axhline(0.5 if metric == "auroc" else 0.0, color="0.6", lw=0.6)
        ax.set_yticks([t for t in ax.get_yticks() if t <= 1.0 + 1e-9])
        ax.legend(fontsize=7, frameon=False, loc="upper left", ncol=2)
    for i, mark in enumerate(marks):
        ax = fig.add_subplot(grid[1, 2 * i : 2 * i + 2])
        for source, style in zip(sources, ("-", "--")):
            d = deciles[(deciles["source"] == source) & (deciles["mark"] == mark)].sort_values("decile")
            ax.plot(
                d["decile"],
                d["mean_log1p"],
                style,
                marker="o",
                ms=3,
                color=MARK_COLORS.get(mark, "k"),
                label=names.get(source, source),
            )
        ax.set_title(mark, fontsize=9)
        ax.set_xticks(range(1, int(deciles["decile"].max()) + 1, 3))
        ax.set_xlabel("expression decile (1 = lowest)", fontsize=8)
        if i == 0:
            ax.set_ylabel("mean ln(count + 1), TSS bin", fontsize=8)
            from matplotlib.lines import Line2D

            handles = [Line2D([], [], color="0.2", ls=style, marker="o", ms=3) for style in ("-", "--")]
            fig.legend(
                handles,
                [f"{names.get(src, src)}: mean over the genes of each expression decile" for src in sources],
                loc="outside lower center",
                ncol=2,
                fontsize=7,
                frameon=False,
                handlelength=4,
            )
        ax.tick_params(labelsize=7)
    fig.suptitle(
        f"{cell_type}, {n_genes:,} genes, {bin_size / 1000:g}-kb bins: real histone read counts ({data_label(provenance_real)}) "
        f"vs the simulator's reads counted into the same bins\n({data_label(provenance_sim)}); only the TSS bin ± 1 "
        "is covered by simulated reads, so only it is compared",
        fontsize=9,
    )
    return fig
