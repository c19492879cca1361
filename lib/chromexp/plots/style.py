"""The project's drawing style: mark colours, the theme and the one way figures are saved.

Every painter (:mod:`chromexp.plots.panels`, :mod:`chromexp.plots.eqtl`,
:mod:`chromexp.plots.manuscript`) draws with these: :data:`MARK_COLORS` gives each mark the same
colour in every figure, :func:`theme` applies the project theme, :func:`save_figure` writes
byte-identical SVG and PNG. Caption wording for the data shown (:func:`chromexp.provenance.data_label`)
lives with the provenance.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from ..utils import atomic_path

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


#: Plain-English names of the metric columns, for titles and axis labels (never ``pearson_r`` in a figure).
METRIC_LABELS: dict[str, str] = {
    "pearson_r": "Pearson r",
    "abs_pearson_r": "|Pearson r|",
    "spearman_rho": "Spearman ρ",
    "r2": "R²",
    "mse": "MSE",
    "auroc": "AUROC",
    "aupr": "AUPR",
    "f1": "F1",
}
#: GTEx tissue ids of the fine-mapped eQTLs (``cell.eqtl_tissues``) as a reader says them.
TISSUE_LABELS: dict[str, str] = {
    "Cells_EBV-transformed_lymphocytes": "EBV-transformed lymphocytes",
    "Brain_Cerebellum": "brain, cerebellum",
    "Brain_Hippocampus": "brain, hippocampus",
    "Liver": "liver",
    "Lung": "lung",
    "Pancreas": "pancreas",
}


def metric_label(metric: str) -> str:
    """``"pearson_r"`` -> ``"Pearson r"``; an unknown metric id with its underscores as spaces."""
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def tissue_label(tissue: str) -> str:
    """A GTEx tissue id as words (``Cells_EBV-transformed_lymphocytes`` -> ``EBV-transformed lymphocytes``)."""
    return TISSUE_LABELS.get(tissue, tissue.replace("_", " "))


#: Metadata that would change on every save: SVG's date; PNG's "Software" names the version only.
_STABLE_METADATA = {"svg": {"Date": None}, "png": {}}


def save_figure(fig: plt.Figure, name: str, out_dir: str | Path) -> list[Path]:
    """Save ``fig`` as ``<out_dir>/<name>.svg`` and ``.png`` (white background); return the paths.

    Byte-identical on regeneration (so ``make demo`` leaves a clean git tree): the SVG carries no
    date and its clip-path/element ids come from a fixed hash salt instead of random ones.
    """
    import matplotlib as mpl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("svg", "png"):
        path = out_dir / f"{name}.{ext}"
        # atomic: parallel notebook jobs never leave a half-written figure
        with atomic_path(path) as tmp, mpl.rc_context({"svg.hashsalt": "chromexp"}):
            fig.savefig(
                tmp, format=ext, dpi=150, facecolor="white", bbox_inches="tight", metadata=_STABLE_METADATA[ext]
            )
        written.append(path)
    return written


# ---- project theme (seaborn for the statistical panels; matplotlib for custom ones) ----------
def theme_rc() -> dict:
    """Matplotlib rcParams of the project theme: seaborn ``ticks`` style, ``paper`` context, no top/right spines."""
    import seaborn as sns

    rc = {**sns.axes_style("ticks"), **sns.plotting_context("paper", font_scale=1.1)}
    rc.update(
        {"axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False, "svg.hashsalt": "chromexp"}
    )
    return rc


def set_theme() -> None:
    """Apply the project theme globally (notebooks call it once; library functions use :func:`theme`)."""
    import matplotlib as mpl

    mpl.rcParams.update(theme_rc())


def theme():
    """Context manager: the project theme for the figures drawn inside it, restored afterwards."""
    import matplotlib as mpl

    return mpl.rc_context(theme_rc())
