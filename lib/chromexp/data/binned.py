"""Pre-binned count tables (docs/data-formats.md, "Pre-binned count tables"): per-gene TSS windows.

A pre-binned count table (:func:`chromexp.data.io.read_binned_counts`) holds read counts per fixed-size
bin, e.g. the vendored **real** E116 (GM12878) counts of 5 histone marks in 10-kb bins over
chr1–22 (``resources/e116_10kb``, :func:`read_e116_10kb`). From such a table:

* :func:`tss_windows` takes, for each gene, the bin that holds its TSS and the ``k`` bins on
  each side, strand-oriented (bin 0 the most upstream, as everywhere in chromexp), as raw counts
  and ``ln(count + 1)``. A gene whose window leaves the table's bins (a gap, a chromosome edge),
  whose strand is unknown, whose chromosome the table lacks or on whose chromosome a track is
  empty is *reported* with a reason (:data:`GENE_REASONS`), never silently dropped or padded
  with zeros;
* :func:`count_reads_in_bins` counts reads into the same bins (a read counts in every bin it
  overlaps, like ``bedtools intersect -c``), e.g. the semi-synthetic reads of a cell type;
* :func:`bins_inside` says which bins lie wholly inside given regions (e.g. where the simulator
  drew reads: elsewhere a simulated count is unknown, not zero).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..utils import file_sha256, get_logger
from . import io

log = get_logger(__name__)

#: The vendored real E116 10-kb table and the SHA-256 it must have (``resources/e116_10kb/README.md``).
E116_10KB_FILE = "E116_10kb_counts.tsv.gz"
E116_10KB_SHA256 = "9170471f42686d603a93d62cd0b82b7ade5d2a9c84309b626ef14d200e4090c3"

#: Why a gene gets no TSS window, checked in this order (a gene is counted under the first).
GENE_REASONS: dict[str, str] = {
    "unknown_chromosome": "the gene's chromosome has no bin in the table",
    "unknown_strand": "strand unknown ('.'): the window cannot be oriented",
    "tss_not_covered": "the TSS lies in no bin of the table (a gap, or before the first / after the last bin)",
    "window_not_covered": "TSS bin ± k reaches a bin the table does not have (a gap or a chromosome edge)",
    "empty_track": "a track is 0 in every bin of the gene's chromosome (no usable signal)",
}


def e116_10kb_dir() -> Path:
    """``resources/e116_10kb``: the vendored real E116 10-kb counts, licence and provenance."""
    return paths.resources_dir() / "e116_10kb"


sha256_of = file_sha256  # SHA-256 (hex) of a file (chromexp.utils.file_sha256)


def read_e116_10kb(path: str | Path | None = None) -> pd.DataFrame:
    """Read the real E116 10-kb count table (the vendored copy, checked, by default).

    Parameters
    ----------
    path : path, optional
        A pre-binned count table (:func:`chromexp.data.io.read_binned_counts`); default the vendored
        ``resources/e116_10kb/E116_10kb_counts.tsv.gz``, whose SHA-256 must be
        :data:`E116_10KB_SHA256` (a damaged or edited copy is refused).

    Returns
    -------
    pandas.DataFrame
        As :func:`chromexp.data.io.read_binned_counts`, checked against hg19 chromosome sizes;
        ``attrs["source"]`` is the file read.

    Raises
    ------
    ValueError
        The vendored file's SHA-256 differs (naming both hashes), or any reader error.
    """
    vendored = path is None
    file = e116_10kb_dir() / E116_10KB_FILE if vendored else Path(path)
    if vendored:
        if not file.is_file():
            raise FileNotFoundError(f"{file}: the vendored real E116 table is missing (a broken install?).")
        got = sha256_of(file)
        if got != E116_10KB_SHA256:
            raise ValueError(
                f"{file}: SHA-256 {got} differs from the vendored table's {E116_10KB_SHA256}: the file was damaged "
                "or changed; restore it from the repository (git checkout -- lib/chromexp/resources/e116_10kb)."
            )
    frame = io.read_binned_counts(file, paths.resources_dir() / "hg19.chrom.sizes")
    frame.attrs["source"] = str(file)
    return frame


def track_columns(bins: pd.DataFrame) -> list[str]:
    """The track columns of a binned table (every column after ``chrom, start, end``)."""
    return [c for c in bins.columns if c not in io.BINNED_FIXED_COLUMNS]


@dataclass
class TSSWindows:
    """Per-gene strand-oriented windows of binned counts: the TSS bin ± ``k`` bins.

    Attributes
    ----------
    genes : pandas.DataFrame, one row per kept gene (input order)
        The input gene columns plus ``tss_bin_start`` (start of the bin holding the TSS).
    counts : numpy.ndarray, shape (n_genes, n_tracks, 2 * k + 1), int64
        Raw counts; bin 0 is the most upstream (for a minus-strand gene the highest coordinate),
        bin ``k`` holds the TSS.
    tracks : tuple of str
    k : int
    bin_size : int
    exclusions : pandas.DataFrame
        ``reason, n_genes, example_gene_ids, description`` for every reason in
        :data:`GENE_REASONS` (``n_genes`` may be 0).
    """

    genes: pd.DataFrame
    counts: np.ndarray
    tracks: tuple[str, ...]
    k: int
    bin_size: int
    exclusions: pd.DataFrame

    def log1p(self, tracks: Sequence[str] | None = None, k: int | None = None) -> np.ndarray:
        """``ln(count + 1)``, float32, shape (n_genes, n_tracks, 2 * k + 1); optionally fewer tracks / bins.

        ``k`` (<= :attr:`k`) keeps the central TSS bin ± ``k`` bins.
        """
        idx = self._track_index(tracks)
        k = self.k if k is None else int(k)
        if not 0 <= k <= self.k:
            raise ValueError(f"k must be between 0 and the windows' k = {self.k}; got {k}.")
        counts = self.counts[:, idx, self.k - k : self.k + k + 1]
        return np.log1p(counts.astype(np.float64)).astype(np.float32)

    def centre_distances(self, k: int | None = None) -> np.ndarray:
        """Signed distance (bp) of each bin centre from the TSS, in transcription orientation.

        Returns
        -------
        numpy.ndarray, shape (n_genes, 2 * k + 1), float64
            Negative upstream, positive downstream (e.g. for ExPecto-style spatial bases).
        """
        k = self.k if k is None else int(k)
        if not 0 <= k <= self.k:
            raise ValueError(f"k must be between 0 and the windows' k = {self.k}; got {k}.")
        tss = self.genes["tss"].to_numpy(np.int64)
        centre_tss_bin = self.genes["tss_bin_start"].to_numpy(np.int64) + self.bin_size / 2.0
        minus = (self.genes["strand"].to_numpy() == "-")[:, None]
        offsets = np.arange(-k, k + 1)[None, :]  # in transcription orientation
        genomic = np.where(minus, -offsets, offsets)
        centre = centre_tss_bin[:, None] + genomic * self.bin_size
        return np.where(minus, tss[:, None] - centre, centre - tss[:, None])

    def _track_index(self, tracks: Sequence[str] | None) -> list[int]:
        if tracks is None:
            return list(range(len(self.tracks)))
        if isinstance(tracks, str):
            tracks = [tracks]
        unknown = [t for t in tracks if t not in self.tracks]
        if unknown or not tracks:
            raise ValueError(f"tracks {list(tracks)} must be among the table's tracks {list(self.tracks)}.")
        return [self.tracks.index(t) for t in tracks]


def _chrom_rows(chrom: pd.Series) -> dict[str, np.ndarray]:
    """Rows of each chromosome (in order of first appearance), computed on category codes."""
    cat = pd.Categorical(chrom)
    codes = np.asarray(cat.codes)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(cat.categories) + 1))
    rows = {str(c): order[bounds[i] : bounds[i + 1]] for i, c in enumerate(cat.categories)}
    first = {name: r[0] for name, r in rows.items() if r.size}
    return {name: rows[name] for name in sorted(first, key=first.get)}


def _chrom_grids(bins: pd.DataFrame, bin_size: int) -> dict[str, tuple[int, np.ndarray, np.ndarray]]:
    """Per chromosome: first bin start, dense array (grid index → row of ``bins``, -1 = no bin), its rows."""
    start = bins["start"].to_numpy(np.int64)
    grids = {}
    for name, rows in _chrom_rows(bins["chrom"]).items():
        origin = int(start[rows].min())
        index = (start[rows] - origin) // bin_size
        dense = np.full(int(index.max()) + 1, -1, dtype=np.int64)
        dense[index] = rows
        grids[name] = (origin, dense, rows)
    return grids


def tss_windows(bins: pd.DataFrame, genes: pd.DataFrame, k: int, tracks: Sequence[str] | None = None) -> TSSWindows:
    """The TSS bin ± ``k`` bins of every gene, strand-oriented (bin 0 the most upstream).

    Parameters
    ----------
    bins : pandas.DataFrame
        A pre-binned count table as :func:`chromexp.data.io.read_binned_counts` returns it (one bin
        size, sorted, one grid per chromosome, gaps allowed).
    genes : pandas.DataFrame
        ``gene_id, chrom, tss, strand`` (``tss`` 0-based; strand ``+``, ``-`` or ``.``); further
        columns are kept.
    k : int
        Bins on each side of the TSS bin (0 = the TSS bin alone).
    tracks : sequence of str, optional
        Tracks to take, in this order; default every track of ``bins``.

    Returns
    -------
    TSSWindows
        Counts of the kept genes and the excluded genes per reason (:data:`GENE_REASONS`).

    Raises
    ------
    ValueError
        A bad argument (``k < 0``, a missing column, an unknown track), bins of several sizes, or
        no gene left (naming the reason that removed the most).
    """
    k = int(k)
    if k < 0:
        raise ValueError(f"k must be >= 0 (bins on each side of the TSS bin); got {k}.")
    missing = [c for c in ("gene_id", "chrom", "tss", "strand") if c not in genes.columns]
    if missing:
        raise ValueError(f"genes lacks column(s) {missing}; required: gene_id, chrom, tss, strand.")
    all_tracks = track_columns(bins)
    tracks = tuple(all_tracks if tracks is None else ([tracks] if isinstance(tracks, str) else tracks))
    unknown_tracks = [t for t in tracks if t not in all_tracks]
    if unknown_tracks or not tracks:
        raise ValueError(f"tracks {list(tracks)} must be among the table's tracks {all_tracks}.")
    if len(bins) == 0:
        raise ValueError("bins is empty: no bin to take windows from.")
    sizes = np.unique(bins["end"].to_numpy(np.int64) - bins["start"].to_numpy(np.int64))
    if len(sizes) != 1:
        raise ValueError(
            f"bins must have one bin size; found {sizes[:5].tolist()} (read them with io.read_binned_counts)."
        )
    bin_size = int(sizes[0])
    grids = _chrom_grids(bins, bin_size)
    values = bins[list(tracks)].to_numpy(np.int64)
    empty_on = {name for name, (_, _, rows) in grids.items() if (values[rows].sum(axis=0) == 0).any()}

    gene_rows = _chrom_rows(genes["chrom"].astype(str))
    tss = genes["tss"].to_numpy(np.int64)
    strand = genes["strand"].astype(str).to_numpy()
    n = len(genes)
    reason = np.full(n, "", dtype=object)
    rows = np.full((n, 2 * k + 1), -1, dtype=np.int64)
    tss_bin_start = np.zeros(n, dtype=np.int64)

    def mark(mask: np.ndarray, why: str) -> None:
        reason[mask & (reason == "")] = why

    def mark_rows(idx: np.ndarray, why: str) -> None:
        mask = np.zeros(n, dtype=bool)
        mask[idx] = True
        mark(mask, why)

    for name, idx in gene_rows.items():
        if name not in grids:
            mark_rows(idx, "unknown_chromosome")
    mark(~np.isin(strand, ["+", "-"]), "unknown_strand")
    offsets = np.arange(-k, k + 1)
    for name, (origin, dense, _) in grids.items():
        sel = gene_rows.get(name, np.zeros(0, dtype=np.int64))
        sel = np.sort(sel[reason[sel] == ""])
        if sel.size == 0:
            continue
        j = (tss[sel] - origin) // bin_size  # floor: negative before the first bin
        inside = (tss[sel] >= origin) & (j < len(dense))
        covered = np.zeros(sel.size, dtype=bool)
        covered[inside] = dense[j[inside]] >= 0
        mark_rows(sel[~covered], "tss_not_covered")
        sel, j = sel[covered], j[covered]
        minus = strand[sel] == "-"
        grid = j[:, None] + np.where(minus[:, None], -offsets[None, :], offsets[None, :])
        in_grid = (grid >= 0) & (grid < len(dense))
        window = np.where(in_grid, dense[np.clip(grid, 0, len(dense) - 1)], -1)
        full = (window >= 0).all(axis=1)
        mark_rows(sel[~full], "window_not_covered")
        rows[sel[full]] = window[full]
        tss_bin_start[sel] = origin + j * bin_size
        if name in empty_on:
            mark_rows(sel[full], "empty_track")

    keep = reason == ""
    gene_ids = genes["gene_id"].astype(str).to_numpy()
    exclusions = pd.DataFrame(
        [
            {
                "reason": why,
                "n_genes": int((reason == why).sum()),
                "example_gene_ids": ",".join(gene_ids[reason == why][:5]),
                "description": text,
            }
            for why, text in GENE_REASONS.items()
        ]
    )
    dropped = exclusions[exclusions["n_genes"] > 0]
    if len(dropped):
        log.info(
            "TSS windows (k = %d): %d of %d genes kept; excluded: %s",
            k,
            int(keep.sum()),
            n,
            ", ".join(f"{r.reason} {r.n_genes}" for r in dropped.itertuples()),
        )
    if not keep.any():
        worst = exclusions.sort_values("n_genes", ascending=False).iloc[0] if n else None
        raise ValueError(
            f"No gene has a TSS window of ± {k} bins in the table"
            + (
                f" ({n} genes; most were removed by '{worst['reason']}': {worst['description']})."
                if n
                else " (no genes given)."
            )
        )
    counts = values[rows[keep]]  # (n_kept, 2k + 1, n_tracks)
    kept = genes.loc[keep].copy().reset_index(drop=True)
    kept["tss_bin_start"] = tss_bin_start[keep]
    return TSSWindows(
        genes=kept,
        counts=np.ascontiguousarray(counts.transpose(0, 2, 1)),
        tracks=tracks,
        k=k,
        bin_size=bin_size,
        exclusions=exclusions,
    )


def count_reads_in_bins(reads: pd.DataFrame, bins: pd.DataFrame) -> np.ndarray:
    """Reads overlapping each bin (a read spanning two bins counts in both), like ``bedtools intersect -c``.

    Parameters
    ----------
    reads : pandas.DataFrame
        ``chrom, start, end`` (e.g. :func:`chromexp.data.io.read_tagalign`), 0-based half-open.
    bins : pandas.DataFrame
        ``chrom, start, end`` of non-overlapping bins, sorted by start within a chromosome.

    Returns
    -------
    numpy.ndarray, shape (n_bins,), int64
        Counts in the order of ``bins``. Reads on chromosomes without bins count nowhere.
    """
    out = np.zeros(len(bins), dtype=np.int64)
    bin_chrom = bins["chrom"].astype(str).to_numpy()
    read_chrom = reads["chrom"].astype(str).to_numpy() if len(reads) else np.array([], dtype=object)
    for name in pd.unique(bin_chrom):
        rows = np.flatnonzero(bin_chrom == name)
        b_start = bins["start"].to_numpy(np.int64)[rows]
        b_end = bins["end"].to_numpy(np.int64)[rows]
        if np.any(b_start[1:] < b_end[:-1]):
            raise ValueError(f"bins on {name} overlap or are not sorted by start; count_reads_in_bins needs neither.")
        sel = read_chrom == name
        if not sel.any():
            continue
        r_start = reads["start"].to_numpy(np.int64)[sel]
        r_end = reads["end"].to_numpy(np.int64)[sel]
        first = np.searchsorted(b_end, r_start, side="right")  # first bin ending after the read starts
        last = np.searchsorted(b_start, r_end, side="left") - 1  # last bin starting before the read ends
        span = last - first + 1
        for offset in range(int(span.max(initial=0))):
            hit = span > offset
            np.add.at(out, rows[first[hit] + offset], 1)
    return out


def bins_inside(bins: pd.DataFrame, regions: pd.DataFrame | Mapping[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Whether each bin lies wholly inside the union of ``regions``.

    Parameters
    ----------
    bins : pandas.DataFrame
        ``chrom, start, end``.
    regions : pandas.DataFrame (``chrom, start, end``) or mapping chrom -> (starts, ends)
        Any intervals (overlapping ones are merged first).

    Returns
    -------
    numpy.ndarray of bool, shape (n_bins,)
    """
    if isinstance(regions, pd.DataFrame):
        regions = {
            str(c): (g["start"].to_numpy(np.int64), g["end"].to_numpy(np.int64))
            for c, g in regions.groupby(regions["chrom"].astype(str), sort=False)
        }
    out = np.zeros(len(bins), dtype=bool)
    bin_chrom = bins["chrom"].astype(str).to_numpy()
    b_start_all = bins["start"].to_numpy(np.int64)
    b_end_all = bins["end"].to_numpy(np.int64)
    for name, (starts, ends) in regions.items():
        rows = np.flatnonzero(bin_chrom == name)
        if rows.size == 0 or len(starts) == 0:
            continue
        order = np.argsort(starts, kind="mergesort")
        s, e = np.asarray(starts, np.int64)[order], np.asarray(ends, np.int64)[order]
        run_end = np.maximum.accumulate(e)
        new = np.r_[True, s[1:] > run_end[:-1]]
        m_start = s[new]
        m_end = np.maximum.reduceat(run_end, np.flatnonzero(new))
        i = np.searchsorted(m_start, b_start_all[rows], side="right") - 1
        ok = i >= 0
        out[rows[ok]] = b_end_all[rows[ok]] <= m_end[i[ok]]
    return out


__all__ = [
    "E116_10KB_FILE",
    "E116_10KB_SHA256",
    "GENE_REASONS",
    "TSSWindows",
    "bins_inside",
    "count_reads_in_bins",
    "e116_10kb_dir",
    "read_e116_10kb",
    "sha256_of",
    "track_columns",
    "tss_windows",
]
