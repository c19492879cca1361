"""Read depth over genomic windows, exactly and without a per-base array (docs/methods.md, "Signal, windows and bins" / "Genes, folds and pCREs").

The signal of both reference codes is the per-base read depth of ``bedtools genomecov``
(each read counted over its own ``[start, end)``, i.e. ``-bg``/``-bga`` without ``-fs``), averaged
over bins (a partial last bin averages only its own bases) and log-transformed as
``ln(mean + 1)`` in float32.

How it is computed here
-----------------------
Every question we ask is "total depth over ``[a, b)``", so we never build the per-base depth.
With the *cumulative depth* ``C(x) = sum of depth over [0, x)`` the total over ``[a, b)`` is
``C(b) - C(a)``, and for reads ``[s_i, e_i)``::

    C(x) = sum_i |[s_i, e_i) ∩ [0, x)| = sum_{s_i < x} (x - s_i) - sum_{e_i < x} (x - e_i)
         = x * (#starts < x - #ends < x) - (sum of starts < x - sum of ends < x)

which needs, per chromosome, the sorted read starts and ends with their prefix sums: one sort
per chromosome, then one binary search per requested bin edge. All arithmetic is in int64, so
bin means are *exact* rationals (``sum / n_bases``), equal to averaging the bedtools per-base
depth (tested against the ``bedtools`` binary). The same interface covers piecewise-constant
tracks (bedGraph, bigWig): there ``C(x)`` is the integral of the step function.

Unknown signal
--------------
A bedGraph is only a complete description of the depth where it was computed. The vendored real
E003 tracks (``resources/e003_real``) cover only ``covered_regions.bed``: outside it the depth is
*unknown*, not zero. :class:`IntervalCoverage` therefore takes optional ``known`` regions and
answers :meth:`Coverage.known` per window; the dataset builder excludes windows that are not
entirely known (with a recorded reason) instead of reading zeros there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from .io import read_regions  # noqa: F401 (re-exported: the readers live in chromexp.data.io)

_INT32_LIMIT = 2**31 - 1


def _n_threads() -> int:
    """Threads for CPU work: ``OMP_NUM_THREADS`` when set (as BLAS and pyarrow), else all cores."""
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        return os.cpu_count() or 1


#: Accepted values of ``params["signal"]["log_base"]``.
LOG_BASES: dict[str, float] = {"e": math.e, "2": 2.0, "10": 10.0}


def log_base_value(base: str | float | int) -> float:
    """Return the numeric log base for ``"e"``, ``2`` or ``10`` (``params.signal.log_base``)."""
    key = str(base).strip()
    if key.endswith(".0"):
        key = key[:-2]
    if key not in LOG_BASES:
        raise ValueError(f"signal.log_base must be one of e, 2, 10; got {base!r}.")
    return LOG_BASES[key]


def log_transform(mean: np.ndarray, base: str | float | int = "e") -> np.ndarray:
    """``log_base(mean + 1)`` as float32 (computed in float64, then rounded once).

    Parameters
    ----------
    mean : numpy.ndarray, any shape
        Mean depth (>= 0).
    base : {"e", 2, 10}
        Log base; ``"e"`` (natural log) is what both reference codes use.

    Returns
    -------
    numpy.ndarray, same shape, float32
    """
    b = log_base_value(base)
    out = np.log1p(np.asarray(mean, dtype=np.float64))
    if b != math.e:
        out = out / math.log(b)
    return out.astype(np.float32)


class Coverage:
    """Depth track on a set of chromosomes that answers totals over windows exactly.

    Subclasses implement :meth:`cumulative` (``C(x)``, the total depth over ``[0, x)``) and
    may restrict :meth:`known`.
    """

    #: ``True`` when every :meth:`cumulative` value is an exact integer (read counts).
    integral: bool = True

    @property
    def chroms(self) -> tuple[str, ...]:
        """Chromosomes holding any signal."""
        raise NotImplementedError

    def cumulative(self, chrom: str, x: np.ndarray) -> np.ndarray:
        """Total depth over ``[0, x)`` for each position in ``x`` (int64 or float64, shape of ``x``)."""
        raise NotImplementedError

    def has_signal(self, chrom: str) -> bool:
        """Whether the track holds any read / interval on ``chrom``."""
        return chrom in self.chroms

    def known(self, chrom: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Whether the depth over each window ``[starts, ends)`` is known (default: everywhere)."""
        return np.ones(np.shape(starts), dtype=bool)

    # ---------------------------------------------------------------------------------------
    def window_sums(self, chrom: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Total depth over windows ``[starts, ends)`` of one chromosome (arrays of equal shape)."""
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        if starts.shape != ends.shape:
            raise ValueError(f"starts {starts.shape} and ends {ends.shape} must have the same shape.")
        if np.any(ends < starts) or (starts.size and starts.min() < 0):
            raise ValueError(f"Windows on {chrom} must satisfy 0 <= start <= end.")
        return self.cumulative(chrom, ends) - self.cumulative(chrom, starts)


class ReadCoverage(Coverage):
    """Depth of aligned reads, each counted over its own ``[start, end)`` (``genomecov -bg``).

    Build it with :meth:`from_reads` from the table of :func:`chromexp.data.io.read_tagalign`.
    Input need not be sorted; strand does not matter (no fragment-size shift, as the references).
    """

    integral = True

    def __init__(self, per_chrom: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]], n_reads: int):
        self._data = dict(per_chrom)
        self.n_reads = int(n_reads)

    @classmethod
    def from_arrays(cls, chrom: Sequence | np.ndarray | pd.Series, start: np.ndarray, end: np.ndarray) -> ReadCoverage:
        """Build from parallel arrays of read chromosomes, starts and ends (0-based half-open).

        Parameters
        ----------
        chrom : array-like of str, shape (n_reads,)
            Chromosome of each read (a pandas ``category`` is fastest).
        start, end : numpy.ndarray of int, shape (n_reads,)
            Read coordinates; ``0 <= start < end``.
        """
        start = np.asarray(start, dtype=np.int64)
        end = np.asarray(end, dtype=np.int64)
        cat = chrom.array if isinstance(chrom, pd.Series) else chrom
        if not isinstance(cat, pd.Categorical):
            cat = pd.Categorical(np.asarray(chrom))
        codes = np.asarray(cat.codes)
        if not (len(codes) == len(start) == len(end)):
            raise ValueError("chrom, start and end must have the same length.")
        if len(start) and (np.any(start < 0) or np.any(end <= start)):
            bad = int(np.flatnonzero((start < 0) | (end <= start))[0])
            raise ValueError(f"Read {bad} ({cat[bad]}:{start[bad]}-{end[bad]}) must satisfy 0 <= start < end.")
        if np.any(codes < 0):
            raise ValueError("Some reads have a missing chromosome name.")
        counts = np.bincount(codes, minlength=len(cat.categories))
        # Files grouped by chromosome (as bedtools genomecov requires; most tagAlign files are):
        # each chromosome is one slice, no reordering needed. Otherwise a stable sort of the
        # small integer codes (a radix sort in numpy, cheap even for 10^7 reads).
        changes = np.flatnonzero(codes[1:] != codes[:-1]) + 1
        first = np.concatenate([[0], changes]) if len(codes) else np.zeros(0, dtype=np.int64)
        grouped = len(first) == int(np.count_nonzero(counts))
        order = None if grouped else np.argsort(codes, kind="stable")
        bounds = np.concatenate([[0], np.cumsum(counts)])
        first_of = dict(zip(codes[first].tolist(), first.tolist())) if grouped else {}

        def index(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            if grouped:
                lo = first_of[k]
                s_k, e_k = start[lo : lo + counts[k]], end[lo : lo + counts[k]]
            else:
                idx = order[bounds[k] : bounds[k + 1]]
                s_k, e_k = start[idx], end[idx]
            # int32 sorts twice as fast and halves the memory; hg19 coordinates fit easily
            small = e_k.max() < _INT32_LIMIT
            s = np.sort(s_k.astype(np.int32) if small else s_k)
            width = e_k[0] - s_k[0]
            if np.all(e_k - s_k == width):
                e = s + width  # equal read lengths (tagAlign: 36 bp): sorted ends = sorted starts + length
            else:
                e = np.sort(e_k.astype(np.int32) if small else e_k)
            cs = np.zeros(len(s) + 1, dtype=np.int64)
            np.cumsum(s, out=cs[1:])
            ce = np.zeros(len(e) + 1, dtype=np.int64)
            np.cumsum(e, out=ce[1:])
            return s, cs, e, ce

        present = [k for k in range(len(cat.categories)) if counts[k]]
        # chromosomes are independent and NumPy's sort releases the GIL: index them in threads
        # (as many as OMP_NUM_THREADS allows); the result does not depend on the thread count
        workers = min(_n_threads(), len(present))
        if workers > 1 and len(start) >= 1_000_000:
            with ThreadPoolExecutor(workers) as pool:
                arrays = list(pool.map(index, present))
        else:
            arrays = [index(k) for k in present]
        per_chrom = {str(cat.categories[k]): a for k, a in zip(present, arrays)}
        return cls(per_chrom, len(start))

    @classmethod
    def from_reads(cls, reads: pd.DataFrame) -> ReadCoverage:
        """Build from a reads table with columns ``chrom, start, end`` (as ``io.read_tagalign``)."""
        missing = {"chrom", "start", "end"} - set(reads.columns)
        if missing:
            raise ValueError(f"The reads table lacks columns {sorted(missing)}.")
        return cls.from_arrays(reads["chrom"], reads["start"].to_numpy(), reads["end"].to_numpy())

    @property
    def chroms(self) -> tuple[str, ...]:
        """Chromosomes with at least one read."""
        return tuple(self._data)

    def cumulative(self, chrom: str, x: np.ndarray) -> np.ndarray:
        """Total read depth over ``[0, x)`` for each position in ``x`` (int64, shape of ``x``)."""
        x = np.asarray(x, dtype=np.int64)
        if chrom not in self._data:
            return np.zeros(x.shape, dtype=np.int64)
        s, cs, e, ce = self._data[chrom]
        # query with the array's own dtype: a mixed-dtype searchsorted would copy the whole array
        xq = x.astype(s.dtype) if s.dtype == np.int32 and (x.size == 0 or x.max() < _INT32_LIMIT) else x
        if xq.dtype != s.dtype:
            s, e = s.astype(np.int64), e.astype(np.int64)
        i_s = np.searchsorted(s, xq, side="left")  # number of starts < x
        i_e = np.searchsorted(e, xq, side="left")  # number of ends < x
        return x * (i_s - i_e) - (cs[i_s] - ce[i_e])


class IntervalCoverage(Coverage):
    """Piecewise-constant depth given as intervals (bedGraph / bigWig), optionally with known regions.

    Depth is 0 between intervals (as ``genomecov -bg`` omits zero runs). If ``known`` regions are
    given, :meth:`known` is true only for windows entirely inside them (the union of regions).
    Integral values are summed in int64 (exact); other values in float64.
    """

    def __init__(self, intervals: pd.DataFrame, known: pd.DataFrame | None = None, source: str = "intervals"):
        missing = {"chrom", "start", "end", "value"} - set(intervals.columns)
        if missing:
            raise ValueError(f"{source}: the interval table lacks columns {sorted(missing)}.")
        values = intervals["value"].to_numpy(np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"{source}: depth values must be finite and >= 0.")
        self.integral = bool(np.all(values == np.round(values)))
        self._data: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        chrom = intervals["chrom"].astype(str).to_numpy()
        start = intervals["start"].to_numpy(np.int64)
        end = intervals["end"].to_numpy(np.int64)
        for name in pd.unique(chrom):
            m = chrom == name
            order = np.argsort(start[m], kind="stable")
            s, e, v = start[m][order], end[m][order], values[m][order]
            if np.any(s[1:] < e[:-1]):
                i = int(np.flatnonzero(s[1:] < e[:-1])[0])
                raise ValueError(
                    f"{source}: intervals overlap on {name} ({s[i]}-{e[i]} and {s[i + 1]}-{e[i + 1]}); "
                    "a depth track must have one value per base."
                )
            vv = v.astype(np.int64) if self.integral else v
            area = vv * (e - s)
            acc = np.zeros(len(s) + 1, dtype=area.dtype)
            np.cumsum(area, out=acc[1:])
            self._data[str(name)] = (s, e, vv, acc)
        self._known: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
        if known is not None:
            self._known = {}
            kc = known["chrom"].astype(str).to_numpy()
            for name in pd.unique(kc):
                m = kc == name
                ks = known["start"].to_numpy(np.int64)[m]
                ke = known["end"].to_numpy(np.int64)[m]
                order = np.argsort(ks, kind="stable")
                ks, ke = ks[order], ke[order]
                # merge overlapping / touching regions so that "inside one region" = "inside the union"
                run_end = np.maximum.accumulate(ke)
                new = np.concatenate([[True], ks[1:] > run_end[:-1]])
                group = np.cumsum(new) - 1
                ms = ks[new]
                me = np.zeros(len(ms), dtype=np.int64)
                np.maximum.at(me, group, ke)
                self._known[str(name)] = (ms, me)

    @classmethod
    def from_bedgraph(cls, path, known_regions=None, chrom_sizes=None) -> IntervalCoverage:
        """Read a bedGraph (``io.read_bedgraph``) and optional known regions (BED, first 3 columns)."""
        from . import io

        intervals = io.read_bedgraph(path, chrom_sizes)
        known = None
        if known_regions is not None:
            known = read_regions(known_regions)
        return cls(intervals, known, source=str(path))

    @classmethod
    def from_bigwig(cls, path, chroms: Sequence[str] | None = None) -> IntervalCoverage:
        """Read a bigWig track (``io.read_bigwig_intervals``; needs the optional ``pyBigWig``)."""
        from . import io

        sizes = io.read_bigwig_chrom_sizes(path)
        frames = [io.read_bigwig_intervals(path, c) for c in (chroms or sizes)]
        table = pd.concat([f.astype({"chrom": str}) for f in frames], ignore_index=True)
        return cls(table, None, source=str(path))

    @property
    def chroms(self) -> tuple[str, ...]:
        """Chromosomes with at least one interval."""
        return tuple(self._data)

    def cumulative(self, chrom: str, x: np.ndarray) -> np.ndarray:
        """Total depth over ``[0, x)`` for each position in ``x`` (int64 if :attr:`integral`, else float64)."""
        x = np.asarray(x, dtype=np.int64)
        dtype = np.int64 if self.integral else np.float64
        if chrom not in self._data:
            return np.zeros(x.shape, dtype=dtype)
        s, e, v, acc = self._data[chrom]
        k = np.searchsorted(s, x, side="right") - 1  # last interval starting at or before x
        kk = np.clip(k, 0, None)
        partial = v[kk] * np.clip(x - s[kk], 0, e[kk] - s[kk])
        out = acc[kk] + partial
        return np.where(k >= 0, out, 0).astype(dtype)

    def known(self, chrom: str, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Whether each window ``[starts, ends)`` lies inside the known regions (all true without them)."""
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        if self._known is None:
            return np.ones(starts.shape, dtype=bool)
        if chrom not in self._known:
            return np.zeros(starts.shape, dtype=bool)
        ks, ke = self._known[chrom]
        k = np.searchsorted(ks, starts, side="right") - 1
        return (k >= 0) & (ends <= ke[np.clip(k, 0, None)])


# -------------------------------------------------------------------------------------------
# windows and bins
# -------------------------------------------------------------------------------------------
def _by_chrom(chroms: np.ndarray):
    chroms = np.asarray(chroms).astype(str)
    for name in pd.unique(chroms):
        yield str(name), np.flatnonzero(chroms == name)


def window_means(cov: Coverage, chroms, starts, ends) -> np.ndarray:
    """Mean depth over many windows ``[starts, ends)`` on any chromosomes.

    Parameters
    ----------
    cov : Coverage
        A depth track.
    chroms : array-like of str, shape (n,)
    starts, ends : array-like of int, shape (n,)
        ``0 <= start < end``.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        Exact means (``sum / length``; the sum is an exact integer for read tracks).
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if np.any(ends <= starts):
        raise ValueError("window_means: every window must have end > start.")
    out = np.empty(len(starts), dtype=np.float64)
    for chrom, idx in _by_chrom(chroms):
        out[idx] = cov.window_sums(chrom, starts[idx], ends[idx]) / (ends[idx] - starts[idx])
    return out


def windows_known(cov: Coverage, chroms, starts, ends) -> np.ndarray:
    """Whether each window's depth is entirely known (see :meth:`Coverage.known`), shape (n,)."""
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    out = np.empty(len(starts), dtype=bool)
    for chrom, idx in _by_chrom(chroms):
        out[idx] = cov.known(chrom, starts[idx], ends[idx])
    return out


def binned_means(cov: Coverage, chroms, starts, length: int, bin_size: int) -> np.ndarray:
    """Mean depth in consecutive bins of equal-length windows ``[start, start + length)``.

    Bins start at each window's start; if ``length`` is not a multiple of ``bin_size`` the last
    bin is partial and averages only its own bases (as the reference does).

    Returns
    -------
    numpy.ndarray, shape (n_windows, ceil(length / bin_size)), float64
        In genomic order (no strand flip; see :func:`orient`).
    """
    return binned_means_multi(cov, chroms, starts, length, [bin_size])[bin_size]


def binned_means_multi(cov: Coverage, chroms, starts, length: int, bin_sizes: Sequence[int]) -> dict[int, np.ndarray]:
    """:func:`binned_means` at several bin sizes, querying each distinct bin edge once.

    Returns
    -------
    dict
        bin size -> numpy.ndarray, shape (n_windows, ceil(length / bin size)), float64.
    """
    if length <= 0 or any(b <= 0 for b in bin_sizes):
        raise ValueError(f"length ({length}) and bin sizes ({list(bin_sizes)}) must be positive.")
    starts = np.asarray(starts, dtype=np.int64)
    edges = {b: np.unique(np.minimum(np.arange(0, length + b, b, dtype=np.int64), length)) for b in bin_sizes}
    offsets = np.unique(np.concatenate(list(edges.values())))  # every edge of every bin size
    where = {b: np.searchsorted(offsets, e) for b, e in edges.items()}
    out = {b: np.empty((len(starts), len(e) - 1), dtype=np.float64) for b, e in edges.items()}
    for chrom, idx in _by_chrom(chroms):
        idx = idx[np.argsort(starts[idx], kind="stable")]  # neighbouring queries: cache-friendly searches
        c = cov.cumulative(chrom, starts[idx, None] + offsets[None, :])
        for b, w in where.items():
            out[b][idx] = np.diff(c[:, w], axis=1) / np.diff(edges[b])
    return out


def binned_intervals(cov: Coverage, chroms, starts, ends, bin_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean depth in bins of intervals of any length, each binned from its own start.

    Returns
    -------
    values : numpy.ndarray, shape (total_bins,), float64
        Interval ``i``'s bins are ``values[offsets[i]:offsets[i + 1]]``
        (``ceil(length / bin_size)`` bins, the last possibly partial).
    offsets : numpy.ndarray, shape (n + 1,), int64
    """
    starts = np.asarray(starts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if np.any(ends <= starts):
        raise ValueError("binned_intervals: every interval must have end > start.")
    n_bins = -(-(ends - starts) // bin_size)
    offsets = np.concatenate([[0], np.cumsum(n_bins)]).astype(np.int64)
    values = np.empty(int(offsets[-1]), dtype=np.float64)
    for chrom, idx in _by_chrom(chroms):
        nb = n_bins[idx]
        owner = np.repeat(idx, nb)
        j = np.arange(int(nb.sum())) - np.repeat(np.cumsum(nb) - nb, nb)  # bin number within its interval
        b_start = starts[owner] + j * bin_size
        b_end = np.minimum(b_start + bin_size, ends[owner])
        values[offsets[owner] + j] = cov.window_sums(chrom, b_start, b_end) / (b_end - b_start)
    return values, offsets


def orient(binned: np.ndarray, strand) -> np.ndarray:
    """Reverse the bins (last axis) of minus-strand rows so bin 0 is the most upstream.

    Parameters
    ----------
    binned : numpy.ndarray, shape (n, ..., n_bins)
    strand : array-like of {"+", "-"}, shape (n,)
    """
    strand = np.asarray(strand).astype(str)
    if not np.all(np.isin(strand, ["+", "-"])):
        raise ValueError("orient: strand must be '+' or '-' for every row.")
    out = np.array(binned, copy=True)
    minus = strand == "-"
    out[minus] = out[minus][..., ::-1]
    return out
