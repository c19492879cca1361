"""Nascent-transcription tracks (EU-seq-like bedGraph) → CLASTER's 1-kb targets (docs/methods.md, "CLASTER adapted").

CLASTER's target pipeline (RasmussenLab/CLASTER ``scripts/I_Data_obtention.ipynb`` at 9a88170,
``create_target_array``), for one gene and track:

1. the track's mean over 20-bp bins of the target window (``pyBigWig.stats(..., type="mean",
   nBins=20001)`` over TSS ± 200,010 bp), ``None`` → 0, clipped at 0;
2. ``scipy.ndimage.gaussian_filter1d(sigma=50)`` (σ = 50 bins = 1 kb; scipy's default
   ``mode="reflect"``, ``truncate=4``);
3. 1-kb means: ``Σ_{i<50} np.roll(s, −i) / 50`` taken every 50th bin (401 values, in reads, not
   logged). The last value wraps around the array end (``np.roll``) and averages bin 20,000 with
   bins 0–48.

:func:`claster_targets_reference` is that code, literally; :func:`claster_targets` is the same
computation on a window of whole 1-kb bins (``n · 50`` cells), so no bin wraps (a documented
deviation: docs/deviations.md). This project's option A target is 40 × 1 kb over TSS ± 20 kb,
aligned with the landscape's 100-bp grid (TSS between bins 19 and 20), strand-oriented like
every input of the project (bin 0 most upstream); the Gaussian filter with reflecting edges and
the block means commute with the flip, so orienting before or after processing is the same.

The track is read with the project's bedGraph reader (:func:`chromexp.data.io.read_bedgraph`);
positions without an interval are 0, as in a bigWig made from a bedGraph without zero runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from . import io

#: CLASTER's target grid: 20-bp cells, Gaussian σ of 50 cells (1 kb), 1-kb bins of 50 cells.
CELL_BP = 20
SIGMA_CELLS = 50
BIN_CELLS = 50
#: Columns of the per-bin planted truth (``nascent/<EID>.truth.tsv.gz``; docs/data-formats.md).
TRUTH_COMPONENTS = ("pause", "body", "readthrough", "antisense", "neighbours", "erna", "floor")


def claster_targets_reference(stats: np.ndarray, sigma: int = SIGMA_CELLS, binsize: int = BIN_CELLS) -> np.ndarray:
    """CLASTER's ``create_target_array`` on one gene's 20-bp stats (literal: clip, Gaussian, rolled means).

    Parameters
    ----------
    stats : numpy.ndarray, shape (n_cells,)
        Mean signal per 20-bp bin (``None``/NaN allowed: read as 0).

    Returns
    -------
    numpy.ndarray, shape (ceil(n_cells / binsize),)
        The rolled 1-kb means, the last one wrapping around when ``n_cells % binsize != 0``.
    """
    from scipy.ndimage import gaussian_filter1d

    s = np.array([float(v) if v is not None else 0.0 for v in np.asarray(stats, dtype=object)])
    s = np.nan_to_num(s, nan=0.0)
    s = np.clip(s, 0, None)
    s = gaussian_filter1d(s, sigma=sigma)
    target = np.zeros_like(s)
    for i in range(binsize):
        target += 1 / binsize * np.roll(s, -i)
    return target[::binsize]


def claster_targets(cells: np.ndarray, sigma: int = SIGMA_CELLS, binsize: int = BIN_CELLS) -> np.ndarray:
    """CLASTER's target processing on whole 1-kb bins (no wrapped bin), for many genes at once.

    Parameters
    ----------
    cells : numpy.ndarray, shape (n_genes, n_bins * binsize)
        Mean signal per 20-bp cell of each gene's window (NaN read as 0).

    Returns
    -------
    numpy.ndarray, shape (n_genes, n_bins), float64
        Clip at 0 → ``gaussian_filter1d(sigma, mode="reflect")`` along the window → means of
        consecutive ``binsize`` cells; equal to :func:`claster_targets_reference`'s first
        ``n_bins`` values on the same cells.
    """
    from scipy.ndimage import gaussian_filter1d

    x = np.asarray(cells, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] == 0 or x.shape[1] % binsize:
        raise ValueError(f"cells must have shape (n_genes, n_bins * {binsize}); got {x.shape}.")
    x = np.clip(np.nan_to_num(x, nan=0.0), 0, None)
    x = gaussian_filter1d(x, sigma=sigma, axis=1)
    return x.reshape(len(x), -1, binsize).mean(axis=2)


def window_cells(track: pd.DataFrame, genes: pd.DataFrame, half_window: int, cell_bp: int = CELL_BP) -> np.ndarray:
    """Mean value per ``cell_bp`` cell over each gene's TSS ± ``half_window``, strand-oriented.

    Parameters
    ----------
    track : pandas.DataFrame
        ``chrom, start, end, value`` (:func:`chromexp.data.io.read_bedgraph`); non-overlapping
        intervals. A cell partly covered gets the base-weighted mean (uncovered bases count 0),
        as ``pyBigWig.stats(type="mean")`` of a bigWig made from this bedGraph with zeros
        filled in.
    genes : pandas.DataFrame
        ``chrom, tss, strand``.
    half_window : int
        Multiple of ``cell_bp``.

    Returns
    -------
    numpy.ndarray, shape (n_genes, 2 * half_window // cell_bp), float64
        Cell 0 is the most upstream (reversed for minus-strand genes).
    """
    if half_window <= 0 or half_window % cell_bp:
        raise ValueError(f"half_window ({half_window}) must be a positive multiple of the cell size {cell_bp}.")
    n_cells = 2 * half_window // cell_bp
    out = np.zeros((len(genes), n_cells))
    chroms = track["chrom"].astype(str).to_numpy()
    by_chrom = {c: np.flatnonzero(chroms == c) for c in pd.unique(chroms)}
    starts_all, ends_all = track["start"].to_numpy(np.int64), track["end"].to_numpy(np.int64)
    values_all = track["value"].to_numpy(np.float64)
    for i, (chrom, tss, strand) in enumerate(zip(genes["chrom"], genes["tss"], genes["strand"], strict=True)):
        idx = by_chrom.get(str(chrom))
        if idx is None or not len(idx):
            continue
        lo, hi = int(tss) - half_window, int(tss) + half_window
        s, e = starts_all[idx], ends_all[idx]
        order = np.argsort(s, kind="stable")
        s, e, v = s[order], e[order], values_all[idx][order]
        a = np.searchsorted(e, lo, side="right")
        b = np.searchsorted(s, hi, side="left")
        if b <= a:
            continue
        # per-base values from the intervals (a difference array: no Python loop over intervals)
        diff = np.zeros(2 * half_window + 1)
        np.add.at(diff, np.maximum(s[a:b], lo) - lo, v[a:b])
        np.add.at(diff, np.minimum(e[a:b], hi) - lo, -v[a:b])
        cells = np.cumsum(diff[:-1]).reshape(n_cells, cell_bp).mean(axis=1)
        out[i] = cells[::-1] if strand == "-" else cells
    return out


def nascent_dir(raw_dir: str | os.PathLike) -> Path:
    """``<raw>/nascent``: the simulated nascent tracks and their planted truth."""
    return Path(raw_dir) / "nascent"


def track_path(raw_dir: str | os.PathLike, cell_type: str) -> Path:
    """``<raw>/nascent/<EID>.bedGraph.gz``."""
    return nascent_dir(raw_dir) / f"{cell_type}.bedGraph.gz"


def truth_path(raw_dir: str | os.PathLike, cell_type: str) -> Path:
    """``<raw>/nascent/<EID>.truth.tsv.gz`` (per gene and 1-kb bin; semi-synthetic data only)."""
    return nascent_dir(raw_dir) / f"{cell_type}.truth.tsv.gz"


def read_track(
    path: str | os.PathLike, chrom_sizes: Mapping[str, int] | str | os.PathLike | None = None
) -> pd.DataFrame:
    """Read a nascent-transcription bedGraph (a clear error names the file and line of a bad record)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"No nascent-transcription track at {path}: on semi-synthetic data notebook 47 simulates it "
            "(chromexp.simulate.nascent.ensure_nascent); real data have none (use the gene head)."
        )
    return io.read_bedgraph(path, chrom_sizes)


def profile_targets(
    track: pd.DataFrame, genes: pd.DataFrame, half_window: int = 20_000, bin_bp: int = 1_000
) -> np.ndarray:
    """The 1-kb nascent profile of each gene over TSS ± ``half_window``, processed as CLASTER does.

    Returns
    -------
    numpy.ndarray, shape (n_genes, 2 * half_window // bin_bp), float32
        Reads per 20-bp cell, smoothed and averaged per 1-kb bin; bin 0 most upstream.
    """
    if bin_bp % CELL_BP or (2 * half_window) % bin_bp:
        raise ValueError(f"bin_bp ({bin_bp}) must be a multiple of {CELL_BP} and divide the window {2 * half_window}.")
    cells = window_cells(track, genes, half_window)
    return claster_targets(cells, binsize=bin_bp // CELL_BP).astype(np.float32)


def read_truth(raw_dir: str | os.PathLike, cell_type: str) -> pd.DataFrame:
    """The planted decomposition of the nascent profile (``<raw>/nascent/<EID>.truth.tsv.gz``)."""
    path = truth_path(raw_dir, cell_type)
    if not path.is_file():
        raise ValueError(f"No planted nascent truth at {path}: it exists for semi-synthetic data only.")
    return pd.read_csv(path, sep="\t")


def body_area(profile: np.ndarray, gene_lengths: np.ndarray, bin_bp: int = 1_000) -> np.ndarray:
    """Length-normalised nascent signal over each gene's body inside the window (CLASTER's gene-level value).

    ``profile``: (n_genes, n_bins), strand-oriented, the TSS at the boundary of bins n/2 − 1 and n/2.
    The body spans bins n/2 … n/2 + ceil(length / bin_bp) − 1, clipped to the window; the value is
    Simpson's integral over those bins divided by their span (one bin: its value).
    """
    from scipy.integrate import simpson

    p = np.asarray(profile, float)
    n = p.shape[1]
    start = n // 2
    ends = np.minimum(n, start + np.maximum(1, np.ceil(np.asarray(gene_lengths, float) / bin_bp).astype(int)))
    out = np.empty(len(p))
    for i, e in enumerate(ends):
        y = p[i, start:e]
        out[i] = y[0] if len(y) == 1 else simpson(y, dx=1.0) / (len(y) - 1)
    return out
