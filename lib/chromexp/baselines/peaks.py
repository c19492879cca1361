"""Peaks for the ShallowChrome baseline: MACS2 calling, ENCODE peak-file readers, peak-max features.

Three steps (docs/methods.md, "ShallowChrome", issue 7):

1. **Calling** (:func:`call_peaks`, :func:`call_cell_peaks`): MACS2 — the caller Roadmap used —
   once per (cell type, mark, mode) on the ``{EID}-{MARK}.tagAlign.gz`` reads. The ``narrow`` mode
   gives ``narrowPeak``; the ``broad`` mode (``--broad``) gives both ``broadPeak`` and
   ``gappedPeak``, as in Roadmap. The shifting model is switched off (``--nomodel --extsize``):
   MACS2's model building fails on small or simulated data, and a fixed fragment size makes
   tracks comparable. Outputs are written atomically (MACS2 runs in a temporary folder; files are
   gzipped and moved on success) and a run is skipped when its outputs exist *and* were made by the
   same command (resume). Users with Roadmap's own peak files put them in the same folder under
   the same names (``{EID}-{MARK}.{narrowPeak,broadPeak,gappedPeak}.gz``) and set
   ``peaks.source: files``. MACS2 2.2.7 writes the same broad regions with the same
   signalValue to broadPeak and gappedPeak (the latter adds the narrow sub-blocks), so on called
   peaks the broad and gapped features are identical; they differ only for user-supplied files.
   What works on the semi-synthetic data (reads exist only within ~21 kb of the genes and on
   their pcHi-C fragments, 18 Mb for smoke, 174 Mb for demo): ``gsize: auto`` (the read-covered
   size; with ``hs`` the genome-wide lambda is ~100x too low and MACS2 calls 21,344 narrow
   H3K4me3 "peaks" on smoke instead of 687), the default p 0.01 cutoff and ``--nolambda`` for
   smoke (half the run time; 687 vs 785 H3K4me3 peaks with the local lambda). Measured on 2 shared
   cores: smoke 1-3 s per track and mode, demo 19-74 s (MACS2's p/q table pre-computation
   dominates).
2. **Reading**: :func:`chromexp.data.io.read_peaks` (re-exported here as :func:`read_peaks`, with
   :func:`peak_format_of` and the format tables): ``narrowPeak`` (10 columns), ``broadPeak`` (9)
   and ``gappedPeak`` (15), validated; errors name ``file:line``.
3. **Features** (:func:`peak_max_feature`, :func:`peak_features`): per gene and mark, the maximum
   ``signalValue`` (column 7 of narrowPeak/broadPeak, column 13 of gappedPeak) over the peaks
   overlapping the window ``[TSS - flank, TSS + flank)``; 0 when no peak overlaps. A gappedPeak
   region counts by its whole extent (chromStart..chromEnd), as in the reference's GMQL join.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from ..constants import FEATURE_ENGINES, MARKS
from ..data.io import (  # noqa: F401 (re-exported: the readers live in chromexp.data.io)
    PEAK_COLUMNS,
    PEAK_FORMATS,
    PEAK_N_COLUMNS,
    peak_format_of,
    read_peaks,
    read_tagalign,
)
from ..utils import atomic_path, get_logger

log = get_logger("chromexp.baselines.peaks")

#: MACS2 mode -> the peak formats it writes.
MODE_FORMATS: dict[str, tuple[str, ...]] = {"narrow": ("narrowPeak",), "broad": ("broadPeak", "gappedPeak")}
MACS2_INSTALL_HINT = (
    "MACS2 is needed to call peaks from tagAlign files. Install it with `apt-get install macs` "
    "(Debian/Ubuntu), `pip install macs2` or `conda install -c bioconda macs2`, or put the path of the "
    "executable in the parameter peaks.macs2. Alternatively pass your own peak files (e.g. Roadmap's "
    "consolidated peaks) named {EID}-{MARK}.narrowPeak.gz / .broadPeak.gz / .gappedPeak.gz in the "
    "peaks folder and set peaks.source: files."
)


# --------------------------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------------------------
def peak_max_feature(peaks: pd.DataFrame, genes: pd.DataFrame, flank: int = 5000) -> np.ndarray:
    """Maximum peak signalValue over the window ``[TSS - flank, TSS + flank)`` of each gene.

    A peak ``[start, end)`` overlaps the window when ``start < TSS + flank`` and
    ``end > TSS - flank`` (at least one shared base, as ``bedtools intersect``).

    Parameters
    ----------
    peaks : pandas.DataFrame
        ``chrom, start, end, signal_value`` (as returned by :func:`read_peaks`).
    genes : pandas.DataFrame
        ``chrom, tss`` (0-based TSS), one row per gene.
    flank : int
        Half-width of the window in bp (5,000 in ShallowChrome).

    Returns
    -------
    numpy.ndarray, shape (n_genes,), float64
        The maximum signalValue of the overlapping peaks; 0 when none overlaps.
    """
    if flank < 0:
        raise ValueError(f"'flank' must be >= 0, got {flank}.")
    for col in ("chrom", "start", "end", "signal_value"):
        if col not in peaks.columns:
            raise ValueError(f"The peak table lacks column {col!r}.")
    for col in ("chrom", "tss"):
        if col not in genes.columns:
            raise ValueError(f"The gene table lacks column {col!r}.")
    out = np.zeros(len(genes), dtype=np.float64)
    if len(peaks) == 0 or len(genes) == 0:
        return out
    gene_chrom = genes["chrom"].to_numpy()
    gene_tss = genes["tss"].to_numpy(dtype=np.int64)
    peak_groups = peaks.groupby("chrom", sort=False).indices
    for chrom, gidx in pd.Series(np.arange(len(genes))).groupby(gene_chrom).groups.items():
        pidx = peak_groups.get(chrom)
        if pidx is None:
            continue
        gidx = np.asarray(gidx)
        order = np.argsort(gene_tss[gidx], kind="stable")
        tss = gene_tss[gidx][order]
        s = peaks["start"].to_numpy(dtype=np.int64)[pidx]
        e = peaks["end"].to_numpy(dtype=np.int64)[pidx]
        v = peaks["signal_value"].to_numpy(dtype=np.float64)[pidx]
        # overlap <=> s - flank < tss < e + flank: a contiguous run of genes sorted by TSS
        lo = np.searchsorted(tss, s - flank, side="right")
        hi = np.searchsorted(tss, e + flank, side="left")
        n = np.maximum(hi - lo, 0)
        if n.sum() == 0:
            continue
        # expand every (peak, overlapped gene) pair and take the maximum per gene
        peak_of_pair = np.repeat(np.arange(len(s)), n)
        offset = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        gene_pos = lo[peak_of_pair] + offset
        best = np.full(len(tss), -np.inf)
        np.maximum.at(best, gene_pos, v[peak_of_pair])
        hit = np.isfinite(best)
        target = gidx[order]
        out[target[hit]] = best[hit]
    return out


def peak_path(peak_dir: str | Path, cell_type: str, mark: str, fmt: str) -> Path:
    """Where the peaks of (cell type, mark, format) live: ``<peak_dir>/{EID}-{MARK}.{fmt}.gz``."""
    if fmt not in PEAK_FORMATS:
        raise ValueError(f"Unknown peak format {fmt!r}; known: {', '.join(PEAK_FORMATS)}.")
    return Path(peak_dir) / f"{cell_type}-{mark}.{fmt}.gz"


def find_peak_file(peak_dir: str | Path, cell_type: str, mark: str, fmt: str) -> Path:
    """The peak file of (cell type, mark, format), gzipped or not; a clear error when absent."""
    gz = peak_path(peak_dir, cell_type, mark, fmt)
    for candidate in (gz, gz.with_suffix("")):
        if candidate.is_file():
            return candidate
    raise ValueError(
        f"No {fmt} file for {cell_type} {mark}: expected {gz} (or without .gz). Call peaks with "
        "chromexp.baselines.peaks.call_cell_peaks (peaks.source: macs2) or supply Roadmap peak files there."
    )


def peak_features(
    peak_dir: str | Path,
    cell_type: str,
    genes: pd.DataFrame,
    marks: Sequence[str] = MARKS,
    formats: Iterable[str] = tuple(PEAK_FORMATS),
    flank: int = 5000,
    chrom_sizes: Mapping[str, int] | None = None,
    engine: str = "numpy",
) -> dict[str, np.ndarray]:
    """Peak-max features of every gene for each mark and peak format.

    Parameters
    ----------
    peak_dir : path
        Folder with ``{EID}-{MARK}.{fmt}.gz`` files (see :func:`peak_path`).
    cell_type : str
        Roadmap EID.
    genes : pandas.DataFrame
        ``chrom, tss`` per gene (e.g. ``CellDataset.genes``).
    marks : sequence of str
        Marks, in the column order of the result.
    formats : iterable of str
        Peak formats to read.
    flank : int
        Half-width of the TSS window (bp).
    engine : {"numpy", "bedtools"}
        ``numpy`` = :func:`peak_max_feature` (the fast default); ``bedtools`` =
        :func:`chromexp.data.intervals.peak_max`, i.e. ``bedtools map -o max`` through pybedtools (needs
        the ``bedtools`` binary). Both give identical values (tested); ``shallowchrome.feature_engine``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``{fmt: array (n_genes, n_marks)}`` of maximum signalValue (0 = no peak).
    """
    if engine not in FEATURE_ENGINES:
        raise ValueError(f"Unknown peak feature engine {engine!r}; use one of {', '.join(FEATURE_ENGINES)}.")
    if engine == "bedtools":
        from ..data.intervals import peak_max as feature
    else:
        feature = peak_max_feature
    out = {}
    for fmt in formats:
        cols = []
        for mark in marks:
            path = find_peak_file(peak_dir, cell_type, mark, fmt)
            peaks = read_peaks(path, fmt, chrom_sizes=chrom_sizes)
            if peaks.empty:
                log.warning("%s is empty: the %s %s feature is 0 for every gene", path, mark, fmt)
            cols.append(feature(peaks, genes, flank=flank))
        out[fmt] = np.column_stack(cols) if cols else np.zeros((len(genes), 0))
    return out


# --------------------------------------------------------------------------------------------
# Calling (MACS2)
# --------------------------------------------------------------------------------------------
def find_macs2(executable: str | None = None) -> str:
    """Path of the MACS2 executable, or a ``RuntimeError`` saying how to install it or pass peaks."""
    exe = shutil.which(executable or "macs2")
    if exe is None:
        raise RuntimeError(f"Could not find the MACS2 executable {executable or 'macs2'!r}. {MACS2_INSTALL_HINT}")
    return exe


def macs2_command(
    tagalign: str | Path,
    name: str,
    outdir: str | Path,
    mode: str,
    peak_params: Mapping[str, Any],
    executable: str = "macs2",
) -> list[str]:
    """The ``macs2 callpeak`` command line for one track (without running it).

    Parameters
    ----------
    tagalign : path
        Reads (BED6 tagAlign, gzipped or not).
    name : str
        MACS2 ``-n`` name; outputs are ``<outdir>/<name>_peaks.<fmt>``.
    outdir : path
        MACS2 ``--outdir``.
    mode : {"narrow", "broad"}
        ``broad`` adds ``--broad --broad-cutoff`` (and writes broadPeak + gappedPeak).
    peak_params : mapping
        The ``peaks:`` block of the parameters (gsize, extsize, pvalue/qvalue, keep_dup, ...).
    """
    if mode not in MODE_FORMATS:
        raise ValueError(f"Unknown MACS2 mode {mode!r}; use 'narrow' or 'broad'.")
    p = peak_params
    cmd = [executable, "callpeak", "-t", str(tagalign), "-f", "BED", "-g", str(p["gsize"]), "-n", name]
    cmd += ["--outdir", str(outdir), "--nomodel", "--shift", "0", "--extsize", str(int(p["extsize"]))]
    cmd += ["--keep-dup", str(p["keep_dup"])]
    if p.get("qvalue") is not None:
        cmd += ["-q", repr(float(p["qvalue"]))]
    else:
        cmd += ["-p", repr(float(p["pvalue"]))]
    if p.get("nolambda"):
        cmd.append("--nolambda")
    if p.get("llocal") is not None:
        cmd += ["--llocal", str(int(p["llocal"]))]
    if mode == "broad":
        cmd += ["--broad", "--broad-cutoff", repr(float(p["broad_cutoff"]))]
    elif p.get("call_summits"):
        cmd.append("--call-summits")
    cmd += [str(a) for a in (p.get("extra_args") or [])]
    return cmd


def covered_genome_size(tagalign: str | Path, bin_size: int = 1000) -> int:
    """Effective genome size of a dataset that covers only part of the genome (semi-synthetic).

    The number of ``bin_size`` bins holding at least one read start, times ``bin_size``. MACS2's
    genome-wide background lambda is ``reads * extsize / gsize``; with ``gsize = hs`` on reads
    simulated over a few Mb, that lambda is ~100x too small and every bump becomes a peak (we
    measured 21,344 "peaks" on 17.8 Mb of smoke data with ``--nolambda``, 687 with this size).
    """
    reads = read_tagalign(tagalign)  # validated; an empty file is an error naming it
    bins = reads["chrom"].cat.codes.to_numpy(np.int64) * (1 << 40) + reads["start"].to_numpy() // bin_size
    return int(np.unique(bins).size) * int(bin_size)


def resolve_gsize(peak_params: Mapping[str, Any], tagalign: str | Path, provenance: str) -> str:
    """The ``-g`` value: as given, or for ``auto`` the covered size on semi-synthetic data, else ``hs``."""
    gsize = str(peak_params["gsize"])
    if gsize != "auto":
        return gsize
    if provenance == "semi-synthetic":
        return str(covered_genome_size(tagalign))
    return "hs"


def _cached_gsize(peak_params: Mapping[str, Any], tagalign: Path, provenance: str, cache: Path) -> str:
    """:func:`resolve_gsize`, remembered per tagAlign file (size and mtime) to keep resumes fast."""
    if str(peak_params["gsize"]) != "auto" or provenance != "semi-synthetic":
        return resolve_gsize(peak_params, tagalign, provenance)
    st = tagalign.stat()
    key = {"file": str(tagalign.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if cache.is_file():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return str(stored["gsize"])
    gsize = resolve_gsize(peak_params, tagalign, provenance)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache) as tmp:
        tmp.write_text(json.dumps({"key": key, "gsize": gsize}))
    return gsize


def _gzip_to(src: Path, dst: Path) -> int:
    """Gzip ``src`` atomically into ``dst``; return the number of data lines."""
    n = 0
    with atomic_path(dst) as tmp, open(src, "rb") as fin, gzip.GzipFile(tmp, "wb", mtime=0) as fout:
        for line in fin:
            if line.strip() and not line.startswith((b"track", b"browser", b"#")):
                n += 1
            fout.write(line)
    return n


def _stamp_path(peak_dir: Path, cell_type: str, mark: str, mode: str) -> Path:
    return peak_dir / f".{cell_type}-{mark}.{mode}.macs2.json"


def call_peaks(
    tagalign: str | Path,
    peak_dir: str | Path,
    cell_type: str,
    mark: str,
    mode: str,
    peak_params: Mapping[str, Any],
    force: bool = False,
) -> list[dict[str, Any]]:
    """Call one track's peaks with MACS2 into ``peak_dir`` (resumable, atomic).

    MACS2 runs in a temporary folder inside ``peak_dir``; on success its peak files are gzipped to
    ``{EID}-{MARK}.{fmt}.gz`` and a stamp file records the command. A later call with the same
    command and existing outputs is skipped; a different command (changed parameters) re-calls.

    Returns
    -------
    list of dict
        One record per peak format written: ``cell_type, mark, mode, format, path, n_peaks,
        seconds, status`` (``called`` or ``existing``), ``command``.
    """
    tagalign = Path(tagalign)
    peak_dir = Path(peak_dir)
    if not tagalign.is_file():
        raise ValueError(f"tagAlign file {tagalign} does not exist (needed to call {cell_type} {mark} peaks).")
    exe = find_macs2(peak_params.get("macs2"))
    name = f"{cell_type}-{mark}"
    # the stamp stores the command with a placeholder outdir so that it is comparable across runs
    stamp_cmd = shlex.join(macs2_command(tagalign.resolve(), name, "<tmp>", mode, peak_params, executable="macs2"))
    stamp = _stamp_path(peak_dir, cell_type, mark, mode)
    outputs = {fmt: peak_path(peak_dir, cell_type, mark, fmt) for fmt in MODE_FORMATS[mode]}
    if not force and stamp.is_file() and all(p.is_file() for p in outputs.values()):
        recorded = json.loads(stamp.read_text())
        if recorded.get("command") == stamp_cmd:
            return [
                {
                    "cell_type": cell_type,
                    "mark": mark,
                    "mode": mode,
                    "format": fmt,
                    "path": str(path),
                    "n_peaks": recorded["n_peaks"][fmt],
                    "seconds": recorded["seconds"],
                    "status": "existing",
                    "command": stamp_cmd,
                }
                for fmt, path in outputs.items()
            ]
        log.info("%s %s %s: parameters changed since the last call; calling again", cell_type, mark, mode)
    peak_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".macs2-{name}-{mode}-", dir=peak_dir))
    try:
        cmd = macs2_command(tagalign.resolve(), name, tmp, mode, peak_params, executable=exe)
        log.info("calling peaks: %s", shlex.join(cmd))
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
        (tmp / "macs2.log").write_text(proc.stderr)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise RuntimeError(
                f"MACS2 failed (exit {proc.returncode}) on {tagalign} ({mode}).\nCommand: {shlex.join(cmd)}\n{tail}\n"
                "On small or simulated data try a lower cutoff (peaks.pvalue), peaks.nolambda: true, or a "
                "genome size (peaks.gsize) matching the covered region."
            )
        counts = {}
        for fmt, dst in outputs.items():
            src = tmp / f"{name}_peaks.{fmt}"
            if not src.is_file():
                raise RuntimeError(f"MACS2 finished but wrote no {src.name} (command: {shlex.join(cmd)}).")
            counts[fmt] = _gzip_to(src, dst)
            if counts[fmt] == 0:
                log.warning(
                    "MACS2 called NO %s peaks for %s %s: its features will be 0 for every gene", fmt, cell_type, mark
                )
        shutil.copyfile(tmp / "macs2.log", peak_dir / f".{name}.{mode}.macs2.log")
        with atomic_path(stamp) as tmp_stamp:
            tmp_stamp.write_text(json.dumps({"command": stamp_cmd, "n_peaks": counts, "seconds": seconds}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [
        {
            "cell_type": cell_type,
            "mark": mark,
            "mode": mode,
            "format": fmt,
            "path": str(path),
            "n_peaks": counts[fmt],
            "seconds": seconds,
            "status": "called",
            "command": stamp_cmd,
        }
        for fmt, path in outputs.items()
    ]


def call_cell_peaks(
    params: Mapping[str, Any],
    cell_type: str,
    marks: Sequence[str] | None = None,
    force: bool = False,
) -> pd.DataFrame:
    """Make sure every peak file of a cell type exists: call with MACS2, or check user files.

    With ``peaks.source: macs2``, MACS2 runs once per (mark, mode) on
    ``<raw_dir>/{EID}-{MARK}.tagAlign.gz``, ``peaks.n_jobs`` at a time (MACS2 is single-threaded),
    and existing outputs made by the same command are reused. With ``peaks.source: files`` the
    files are only checked and counted.

    Returns
    -------
    pandas.DataFrame
        One row per (mark, format): ``cell_type, mark, mode, format, path, n_peaks, seconds,
        status`` (``called`` / ``existing`` / ``user file``) and ``command``. Empty peak files are
        reported (``n_peaks == 0``) and logged as a warning, never silently used.
    """
    p = params["peaks"]
    marks = tuple(params["marks"] if marks is None else marks)
    peak_dir = paths.peaks_dir(params, cell_type)
    modes = tuple(p["modes"])
    unknown = [m for m in modes if m not in MODE_FORMATS]
    if unknown:
        raise ValueError(f"Unknown peaks.modes {unknown}; use 'narrow' and/or 'broad'.")
    if p["source"] == "files":
        records = []
        for mark in marks:
            for mode in modes:
                for fmt in MODE_FORMATS[mode]:
                    path = find_peak_file(peak_dir, cell_type, mark, fmt)
                    n = len(read_peaks(path, fmt))
                    if n == 0:
                        log.warning("user peak file %s is empty", path)
                    records.append(
                        dict(
                            cell_type=cell_type,
                            mark=mark,
                            mode=mode,
                            format=fmt,
                            path=str(path),
                            n_peaks=n,
                            seconds=0.0,
                            status="user file",
                            command="",
                        )
                    )
        return pd.DataFrame(records)
    if p["source"] != "macs2":
        raise ValueError(f"peaks.source must be 'macs2' or 'files', got {p['source']!r}.")
    find_macs2(p.get("macs2"))  # fail early with the install hint
    raw = paths.raw_dir(params)

    from ..provenance import of_params

    # only gsize "auto" depends on the provenance, read from the files on disk (not data.source)
    provenance = of_params(params) if str(p["gsize"]) == "auto" else None

    def one(mark):
        # one job per mark (its modes in turn), so the genome size is estimated once per track
        tagalign = raw / f"{cell_type}-{mark}.tagAlign.gz"
        if not tagalign.is_file():
            raise ValueError(f"tagAlign file {tagalign} does not exist (needed to call {cell_type} {mark} peaks).")
        gsize = _cached_gsize(p, tagalign, provenance, peak_dir / f".{cell_type}-{mark}.gsize.json")
        records = []
        for mode in modes:
            records += call_peaks(tagalign, peak_dir, cell_type, mark, mode, {**p, "gsize": gsize}, force=force)
        return records

    n_jobs = max(1, min(int(p["n_jobs"]), len(marks), os.cpu_count() or 1))
    if n_jobs == 1:
        results = [one(m) for m in marks]
    else:
        # threads are enough: each job waits on a MACS2 subprocess
        with ThreadPoolExecutor(max_workers=n_jobs) as pool:
            results = list(pool.map(one, marks))
    table = pd.DataFrame([r for rs in results for r in rs])
    empty = table[table["n_peaks"] == 0]
    if len(empty):
        log.warning(
            "%d of %d peak files of %s are empty: %s",
            len(empty),
            len(table),
            cell_type,
            ", ".join(Path(x).name for x in empty["path"]),
        )
    return table
