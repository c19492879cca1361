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
