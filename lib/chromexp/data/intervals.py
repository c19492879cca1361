"""Interval operations with bedtools semantics, through pybedtools.

Users of this field think in bedtools terms: *the maximum signalValue of the peaks overlapping each
TSS window* is ``bedtools map -o max``; *the eQTLs inside each locus* is ``bedtools intersect -c``;
*an annotation's regions* is ``sort | merge``. This module runs exactly those commands (pybedtools
drives the ``bedtools`` binary) on pandas tables and returns numpy arrays aligned with the input
rows, so a result can be checked line by line against the command a user would type.

Where a numpy path exists for speed (the read binning of :mod:`chromexp.data.signal`, the peak-max
feature of :func:`chromexp.baselines.peaks.peak_max_feature`), it is the default and these functions are its
oracle in the tests (identical values).

Every call runs inside :func:`bedtools_session`: pybedtools' temporary files go to a private folder
that is deleted afterwards (``pybedtools.cleanup``), so long notebooks do not fill ``/tmp``. A
missing ``bedtools`` binary gives the same install message as ``make`` does.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

BEDTOOLS_MISSING = (
    "bedtools is needed for this interval operation but is not on the PATH. Install it with "
    "`sudo apt-get install bedtools` (Debian/Ubuntu), or `conda env create -f environment.yml` (bioconda)."
)


def require_bedtools() -> str:
    """Path of the ``bedtools`` binary; ``RuntimeError`` with the install command when absent."""
    path = shutil.which("bedtools")
    if path is None:
        raise RuntimeError(BEDTOOLS_MISSING)
    return path


@contextlib.contextmanager
def bedtools_session() -> Iterator[Path]:
    """Run pybedtools with a private temporary folder, removed (with its files) on exit."""
    require_bedtools()
    import pybedtools

    previous = pybedtools.get_tempdir()
    folder = Path(tempfile.mkdtemp(prefix="chromexp-bedtools-"))
    pybedtools.set_tempdir(str(folder))
    try:
        yield folder
    finally:
        pybedtools.cleanup(remove_all=True)
        pybedtools.set_tempdir(previous)
        shutil.rmtree(folder, ignore_errors=True)


def _check(frame: pd.DataFrame, columns: Sequence[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"The {name} table lacks column(s) {missing}; required: {list(columns)}.")
    if len(frame) and (frame["start"].to_numpy() > frame["end"].to_numpy()).any():
        raise ValueError(f"The {name} table has intervals with start > end.")


def _bedtool(frame: pd.DataFrame, extra: Sequence[str] = ()):
    """A sorted BedTool of ``chrom, start, end`` plus ``extra`` columns (row number as the name)."""
    import pybedtools

    bed = pd.DataFrame(
        {
            "chrom": frame["chrom"].astype(str).to_numpy(),
            "start": frame["start"].to_numpy(dtype=np.int64),
            "end": frame["end"].to_numpy(dtype=np.int64),
            "name": np.arange(len(frame)),
        }
    )
    for col in extra:
        bed[col] = frame[col].to_numpy()
    return pybedtools.BedTool.from_dataframe(bed).sort()


def _read(result, names: Sequence[str]) -> pd.DataFrame:
    if result.file_type == "empty" or Path(result.fn).stat().st_size == 0:
        return pd.DataFrame(columns=list(names))
    return pd.read_csv(result.fn, sep="\t", header=None, names=list(names))


def peak_max(peaks: pd.DataFrame, genes: pd.DataFrame, flank: int = 5000) -> np.ndarray:
    """``bedtools map -o max`` of peak ``signal_value`` over each gene's ``[TSS - flank, TSS + flank)``.

    Parameters
    ----------
    peaks : pandas.DataFrame
        ``chrom, start, end, signal_value``.
    genes : pandas.DataFrame
        ``chrom, tss`` (0-based), one row per gene.
    flank : int
        Window half-width in bp (ShallowChrome: 5,000).

    Returns
    -------
    numpy.ndarray, shape (n_genes,), float64
        Maximum signalValue of the overlapping peaks, 0 where none overlaps (as
        :func:`chromexp.baselines.peaks.peak_max_feature`).
    """
    _check(peaks, ("chrom", "start", "end", "signal_value"), "peak")
    tss = genes["tss"].to_numpy(dtype=np.int64)
    windows = pd.DataFrame({"chrom": genes["chrom"], "start": np.maximum(tss - flank, 0), "end": tss + flank})
    out = np.zeros(len(genes), dtype=np.float64)
    if len(peaks) == 0 or len(genes) == 0:
        return out
    with bedtools_session():
        mapped = _bedtool(windows).map(_bedtool(peaks, ["signal_value"]), c=5, o="max")
        table = _read(mapped, ["chrom", "start", "end", "row", "max"])
    values = pd.to_numeric(table["max"].replace(".", np.nan), errors="coerce").fillna(0.0).to_numpy()
    out[table["row"].to_numpy(dtype=np.int64)] = values
    return out


def count_overlaps(regions: pd.DataFrame, features: pd.DataFrame) -> np.ndarray:
    """``bedtools intersect -c``: how many ``features`` overlap each region (each feature once per region).

    Returns
    -------
    numpy.ndarray, shape (n_regions,), int64
    """
    _check(regions, ("chrom", "start", "end"), "region")
    _check(features, ("chrom", "start", "end"), "feature")
    out = np.zeros(len(regions), dtype=np.int64)
    if len(regions) == 0 or len(features) == 0:
        return out
    with bedtools_session():
        counted = _bedtool(regions).intersect(_bedtool(features), c=True)
        table = _read(counted, ["chrom", "start", "end", "row", "count"])
    out[table["row"].to_numpy(dtype=np.int64)] = table["count"].to_numpy(dtype=np.int64)
    return out


def overlap_pairs(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """``bedtools intersect -wa -wb``: every overlapping (row of ``a``, row of ``b``) pair.

    Returns
    -------
    pandas.DataFrame
        ``a, b``: row positions (0-based) into ``a`` and ``b``, sorted, one row per overlapping pair.
    """
    _check(a, ("chrom", "start", "end"), "first")
    _check(b, ("chrom", "start", "end"), "second")
    if len(a) == 0 or len(b) == 0:
        return pd.DataFrame({"a": np.array([], dtype=np.int64), "b": np.array([], dtype=np.int64)})
    with bedtools_session():
        pairs = _bedtool(a).intersect(_bedtool(b), wa=True, wb=True)
        table = _read(pairs, ["c1", "s1", "e1", "a", "c2", "s2", "e2", "b"])
    out = table[["a", "b"]].astype(np.int64).sort_values(["a", "b"], kind="stable")
    return out.reset_index(drop=True)


def merge(regions: pd.DataFrame) -> pd.DataFrame:
    """``bedtools sort | bedtools merge``: the union of ``regions`` as sorted, non-overlapping intervals.

    Book-ended intervals are merged, as bedtools does by default.
    """
    _check(regions, ("chrom", "start", "end"), "region")
    if len(regions) == 0:
        return pd.DataFrame({"chrom": [], "start": [], "end": []})
    with bedtools_session():
        merged = _bedtool(regions).merge()
        table = _read(merged, ["chrom", "start", "end"])
    return table.astype({"chrom": str, "start": np.int64, "end": np.int64})
