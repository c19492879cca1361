r"""Readers for every file format chromexp reads: reads, signal, peaks, regions, tables, pickles.

The formats are described in docs/data-formats.md ("Inputs").

Readers
-------
Every reader returns a pandas ``DataFrame`` (or a ``dict`` for chromosome sizes), validates its
input, and raises ``ValueError("<file>:<line>: <reason>")`` (1-based line number in the file,
header and comment lines counted) for the first bad line: malformed fields first, then the
earliest line failing a value check (start >= end, bad strand, …). Gzip is detected from the
file's magic bytes (:func:`is_gzip`), not its name; multi-member (bgzip) files are read; a
truncated or corrupt gzip stream is a ``ValueError`` naming the file and the compressed byte
offset; bytes that are not UTF-8 are an error naming the line. Input need not be sorted.
Nothing is dropped silently: what a reader excludes or collapses is logged with a count.

=====================  =================================================  ============================
reader                 file                                               columns returned
=====================  =================================================  ============================
read_tagalign          ``{EID}-{MARK}.tagAlign.gz`` (BED6: chrom, start,  chrom, start, end, strand
                       end, name, score, strand)
read_bedgraph          bedGraph (chrom, start, end, value)                chrom, start, end, value
read_bigwig_intervals  bigWig (needs the optional extra ``bigwig``)       chrom, start, end, value
read_binned_counts     pre-binned count table (header ``chrom start end   chrom, start, end, one int64
                       <track>…``; one bin size, sorted, gaps allowed)    column per track
read_peaks             narrowPeak / broadPeak / gappedPeak (ENCODE)       chrom, start, end, name,
                                                                          signal_value, p_value, q_value
read_regions           BED (first three columns used)                     chrom, start, end
read_chrom_sizes       ``hg19.chrom.sizes`` (chrom, length)               ``dict[str, int]``
read_gene_table        ``genes.tsv`` (header; gene_id, chrom, tss,        gene_id, gene_name, chrom,
                       strand required; gene_name, gene_length optional)  tss, strand, gene_length
read_expression        ``57epigenomes.RPKM.pc.gz`` (header; gene_id,      index gene_id; one float64
                       then one RPKM column per EID)                      column per EID
read_expression_table  a user's own table (header; gene_id, value)        float64 Series by gene_id
read_pchic             ``pchic/{TISSUE}.tsv.gz`` (header)                 bait_chrom, bait_start,
                                                                          bait_end, other_chrom,
                                                                          other_start, other_end,
                                                                          frequency
read_chromoformer_     Chromoformer's ``{TISSUE}_frag2neighbors.pickle``  same as read_pchic
pchic                  + ``{TISSUE}_pair2score.pickle``
read_tss2fragment      Chromoformer's ``tss2fragment.pickle``             tss_chrom, tss_start, tss_end,
                                                                          frag_chrom, frag_start,
                                                                          frag_end
read_ensg2tss          Chromoformer's ``ensg2tss.pickle``                 gene_id, rank, chrom, tss, strand
=====================  =================================================  ============================

Also: :func:`read_bigwig_chrom_sizes` (a bigWig's header) and :func:`write_pchic` (writes the
``pchic/{TISSUE}.tsv.gz`` table, e.g. converted from Chromoformer's pickles).

Conventions
-----------
* Coordinates are 0-based, half-open, ``int64``; ``tss`` is the 0-based first base of the
  transcript.
* Chromosome names: ``category`` dtype in the read/signal tables (tagAlign, bedGraph, bigWig, binned counts),
  which have millions of rows; pandas' default ``str`` dtype everywhere else (gene,
  expression, pcHi-C tables; chromosome-size dicts have ``str`` keys). ``strand`` of a tagAlign is a ``category`` with categories
  ``["+", "-"]``; in the gene table it is ``str`` and may be ``"."`` (unknown; logged).
* Pre-binned count tables (e.g. the vendored real E116 10-kb counts) are checked as a whole
  too: one bin size, each chromosome in one block, starts increasing, no overlap, one bin grid
  per chromosome; a gap is an unknown bin, not a zero; a track that is 0 in every bin is an
  error, one that is 0 on a whole chromosome is reported (``attrs["bin_report"]``).
* BED-like files (tagAlign, bedGraph, peaks, regions) may start with ``track``/``browser``/``#``
  lines; blank lines are skipped everywhere. Lines end at ``\n``, ``\r\n`` or a lone ``\r``.
  Every line has exactly the format's number of tab-separated fields: extra leading columns (a
  UCSC ``bin`` column, line numbers) or a file on one line are errors, never an index.
  tagAlign, bedGraph and peak files are parsed by pyarrow's multi-threaded CSV reader (a hard
  dependency; ~2x less CPU than pandas on 10 M reads), the line scanner runs only on error.
* ``chrom_sizes`` arguments accept a ``{chrom: length}`` mapping or a path to a chrom.sizes file.
  When given, unknown chromosomes and intervals/TSSs past the chromosome end are errors
  (``on_unknown_chrom="drop"`` drops unknown chromosomes instead, with a logged count per
  chromosome; real alignments often contain chrM or unplaced contigs; for reads,
  ``past_end="clip"`` clips overhanging reads as ``bedtools genomecov`` does, counted).
* Integers: optional spaces, an optional ``-``, ASCII digits, within int64 (``+5``, ``0x1F``,
  ``46.0``, ``1e3`` and values beyond 64 bits are errors naming the line). The header tables
  (gene table, pcHi-C, chrom sizes; parsed by pandas) also accept integral ``46.0``/``4.6e1``.
* Numbers: decimal with optional sign and exponent (``2.5``, ``.5``, ``1e-3``) or
  ``inf``/``infinity`` (any case; then refused as not finite); in BED-like files also ``nan``
  (refused likewise). The property-based test ``tests/test_io_fuzz.py`` checks every reader
  against an independent parser of this grammar.
* Header tables (gene table, expression, pcHi-C) tolerate trailing whitespace / one trailing
  tab per line, as in Roadmap's ``57epigenomes.RPKM.pc``.
* Pickles are loaded with a restricted unpickler (containers, strings, numbers only).
* The vendored ``resources/roadmap/genes_rpkm_11.tsv.gz`` holds the gene table and the RPKM
  matrix in one file: :func:`read_gene_table` ignores non-gene columns and
  :func:`read_expression` ignores columns that are not EIDs (``E`` + 3 digits), so both read it.
"""

from __future__ import annotations

import gzip
import io as io_module
import math
import os
import pickle
import re
import warnings
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from ..utils import get_logger

log = get_logger(__name__)

PathLike = str | os.PathLike
ChromSizes = Mapping[str, int] | PathLike | None

#: Columns of each reader's output (the table at the top of this module).
TAGALIGN_COLUMNS = ("chrom", "start", "end", "strand")
BEDGRAPH_COLUMNS = ("chrom", "start", "end", "value")
GENE_COLUMNS = ("gene_id", "gene_name", "chrom", "tss", "strand", "gene_length")
PCHIC_COLUMNS = ("bait_chrom", "bait_start", "bait_end", "other_chrom", "other_start", "other_end", "frequency")
TSS2FRAGMENT_COLUMNS = ("tss_chrom", "tss_start", "tss_end", "frag_chrom", "frag_start", "frag_end")

#: Roadmap epigenome identifiers (E000 … E129) as they head the RPKM matrix columns.
EID_PATTERN = re.compile(r"^E\d{3}$")

# Integer grammar of every reader: optional spaces, an optional minus, ASCII decimal digits,
# optional spaces; within int64. (pyarrow also takes "0x1F" as hex: refused, see _ByteSource.)
_INT_RE = re.compile(r"^ *-?[0-9]+ *$")
# Numbers of the BED-like readers (pyarrow's grammar): decimal with optional exponent, or
# inf/infinity/nan in any case (those parse, and are then rejected as not finite).
_ARROW_FLOAT_RE = re.compile(r"^ *[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity|nan) *$", re.I)
# Numbers of the header tables (pandas' C parser): the same without nan.
_FLOAT_RE = re.compile(r"^ *[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity) *$", re.I)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_GZIP_MAGIC = b"\x1f\x8b"
# What a damaged gzip stream raises inside pandas / gzip (zlib.error for corrupt deflate data).
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
_BED_HEADER_PREFIXES = ("track", "browser", "#")

# Column kinds understood by the line scanner (_first_bad_line).
_STR, _INT, _FLOAT, _FLOAT_NA, _ANY, _ARROW_FLOAT = "str", "int", "float", "float_na", "any", "arrow_float"
_NA_STRINGS = ("", "NA", "NaN", "nan", "N/A")
_TRAILING = "__trailing_field__"
_CHUNK = 1 << 22  # bytes per read of the streaming readers


# --------------------------------------------------------------------------------------------
# low-level helpers
# --------------------------------------------------------------------------------------------
def is_gzip(path: PathLike) -> bool:
    """Whether ``path`` starts with the gzip magic bytes (the only gzip test of chromexp)."""
    with open(path, "rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


_is_gzip = is_gzip  # the name used inside this module


def _check_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file.")
    if not path.is_file():
        raise ValueError(f"{path}: is not a regular file.")
    return path


class _ByteSource:
    """Binary stream of a file's (decompressed) content for pyarrow, with gzip damage located.

    Gzip (by magic bytes, multi-member/bgzip included) is decompressed here rather than by
    pyarrow so that a truncated or corrupt stream is a ``ValueError`` naming the file and the
    compressed byte offset. ``saw_hex`` records whether ``0x``/``0X`` occurs anywhere in the
    text (pyarrow would read ``0x1F`` as an integer): the caller then re-checks with the strict
    line scanner.
    """

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "rb")
        self._gzip = self._file.read(2) == _GZIP_MAGIC
        self._file.seek(0)
        self._inflate = zlib.decompressobj(wbits=31) if self._gzip else None
        self._pending = b""  # compressed bytes not yet fed
        self._out = bytearray()
        self._offset = 0  # compressed bytes consumed
        self._eof = False
        self._last = b""
        self.saw_hex = False
        self.non_ascii = False  # pyarrow checks UTF-8 only in the columns it converts
        self.error: ValueError | None = None

    # the file-object protocol pyarrow needs
    @property
    def closed(self) -> bool:
        return self._file.closed

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._read(n)
        except ValueError as err:
            self.error = err
            raise
        if data and not self.saw_hex:
            edge = self._last + data[:1]
            if _may_hold_hex(data) or edge in (b"0x", b"0X"):
                self.saw_hex = True
            self._last = data[-1:]
        if data and not self.non_ascii and not data.isascii():
            self.non_ascii = True
        return data

    def _read(self, n: int) -> bytes:
        if not self._gzip:
            return self._file.read(n)
        want = n if n is not None and n >= 0 else 1 << 62
        while len(self._out) < want and not self._eof:
            self._inflate_some(min(_CHUNK, max(want // 4, 1 << 16)))
        data = bytes(self._out[:want])
        del self._out[:want]
        return data

    def _inflate_some(self, size: int) -> None:
        if not self._pending:
            self._pending = self._file.read(size)
            if not self._pending:
                if self._inflate.eof or (self._offset == 0):
                    self._eof = True  # clean end (or an empty file)
                    return
                raise ValueError(
                    f"{self.path}: the gzip stream is truncated or corrupt: the file ends at byte {self._offset} "
                    "inside a compressed member; download the file again."
                )
        if self._inflate.eof:  # a new member starts (bgzip, concatenated gzip)
            if self._pending[:2] != _GZIP_MAGIC and len(self._pending) >= 2:
                raise ValueError(
                    f"{self.path}: the gzip stream is truncated or corrupt: the data at byte {self._offset}, "
                    "after the end of a compressed member, is not gzip; download the file again."
                )
            self._inflate = zlib.decompressobj(wbits=31)
        before = len(self._pending)
        try:
            self._out += self._inflate.decompress(self._pending)
        except zlib.error as err:
            raise ValueError(
                f"{self.path}: the gzip stream is truncated or corrupt: invalid compressed data after byte "
                f"{self._offset} ({err}); download the file again."
            ) from err
        self._pending = self._inflate.unused_data
        self._offset += before - len(self._pending)


def _may_hold_hex(data: bytes) -> bool:
    """Whether ``data`` contains ``0x`` or ``0X``, fast on genomics text.

    Searching a two-byte pattern in numeric text is slow (``0`` is everywhere); single bytes are
    found with ``memchr``, and an ``X`` outside ``chrX`` is rare.
    """
    if b"x" in data and b"0x" in data:
        return True
    return b"X" in data and data.count(b"X") != data.count(b"chrX") and b"0X" in data


def _gzip_error(path: Path, err: BaseException) -> ValueError:
    """The error of a damaged gzip ``path``, located by re-reading it with :class:`_ByteSource`."""
    try:
        with _ByteSource(path) as source:
            while source.read(_CHUNK):
                pass
    except ValueError as located:
        return located
    return ValueError(
        f"{path}: the gzip stream is truncated or corrupt ({type(err).__name__}: {err}); download the file again."
    )


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    r"""Yield ``(line_number, line)`` (1-based, line ending stripped), mapping gzip errors.

    Lines end at ``\n``, ``\r\n`` or a lone ``\r`` (as pandas and pyarrow split them). A line
    that is not UTF-8 is a ``ValueError`` naming the file and line.
    """
    try:
        with _ByteSource(path) as source:
            text = io_module.TextIOWrapper(
                io_module.BufferedReader(_RawAdapter(source)), encoding="utf-8", errors="surrogateescape", newline=""
            )
            for number, line in enumerate(text, start=1):
                line = line.rstrip("\r\n")
                if not line.isascii():
                    try:
                        line.encode("utf-8")
                    except UnicodeEncodeError as err:
                        raise _error(
                            path, number, f"is not UTF-8 text (binary data?) at column {err.start + 1}"
                        ) from err
                yield number, line
    except _GZIP_ERRORS as err:
        raise _gzip_error(path, err) from err


class _RawAdapter(io_module.RawIOBase):
    """``io.RawIOBase`` view of a :class:`_ByteSource` (for ``TextIOWrapper``)."""

    def __init__(self, source: _ByteSource):
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _error(path: Path, line: int | None, reason: str) -> ValueError:
    where = f"{path}:{line}" if line is not None else f"{path}"
    return ValueError(f"{where}: {reason}")


def _count_header_lines(path: Path, prefixes: Sequence[str]) -> int:
    """Number of leading lines starting with one of ``prefixes`` (track/browser/comment lines)."""
    n = 0
    for _, line in _iter_lines(path):
        if line.startswith(tuple(prefixes)):
            n += 1
        else:
            break
    return n


def _line_of_row(path: Path, row: int, n_skip: int) -> int:
    """1-based file line of data row ``row`` (0-based), after ``n_skip`` header lines.

    Computed by re-reading the file (only on error), because pandas skips blank lines and the
    header, so row indices and line numbers differ.
    """
    seen = -1
    for number, line in _iter_lines(path):
        if number <= n_skip or line == "":
            continue
        seen += 1
        if seen == row:
            return number
    raise AssertionError(f"{path}: row {row} not found while locating its line")  # pragma: no cover


def _check_field(value: str, kind: str) -> str | None:
    """Reason why ``value`` is not of ``kind``, or None."""
    if kind == _INT:
        if not _INT_RE.match(value):
            return f"expected an integer, got {value!r}"
        if not _INT64_MIN <= int(value) <= _INT64_MAX:
            return f"integer {value.strip()} is out of range (beyond 64 bits)"
    elif kind in (_FLOAT, _FLOAT_NA):
        if value in _NA_STRINGS:
            return None if kind == _FLOAT_NA else f"expected a number, got missing value {value!r}"
        if not _FLOAT_RE.match(value):
            return f"expected a number, got {value!r}"
    elif kind == _ARROW_FLOAT:
        if not _ARROW_FLOAT_RE.match(value):
            return f"expected a number, got {value!r}"
    elif kind == _STR and value == "":
        return "empty field"
    return None


def _first_bad_line(
    path: Path, kinds: Sequence[str], names: Sequence[str], n_skip: int, trailing_tab: bool = False
) -> tuple[int, str] | None:
    """Scan ``path`` line by line for the first line pandas could not parse (slow path).

    ``trailing_tab``: a line may end in one extra empty field (see :func:`_read_table`).
    """
    for number, line in _iter_lines(path):
        if number <= n_skip or line == "":
            continue
        fields = line.split("\t")
        if trailing_tab and len(fields) == len(kinds) + 1 and fields[-1].strip() == "":
            fields = fields[:-1]
        if len(fields) != len(kinds):
            return number, (f"expected {len(kinds)} tab-separated columns ({', '.join(names)}), found {len(fields)}")
        for field, kind, name in zip(fields, kinds, names):
            reason = _check_field(field, kind)
            if reason is not None:
                return number, f"column {name!r}: {reason}"
    return None


def _read_table(
    path: Path,
    *,
    names: Sequence[str],
    kinds: Sequence[str],
    dtype: Mapping[str, Any],
    n_skip: int,
    na_columns: Sequence[str] = (),
    trailing_tab: bool = False,
) -> pd.DataFrame:
    """Fast C-engine parse of a tab-separated file; on failure locate and report the bad line.

    ``names`` are all columns of the file (no header row is parsed: ``n_skip`` leading lines,
    including any header, are skipped). ``trailing_tab`` tolerates one extra empty field at
    the end of lines (Roadmap's ``57epigenomes.RPKM.pc`` has trailing whitespace; Chromoformer
    strips it with sed before reading).
    """
    na_values = {name: list(_NA_STRINGS) for name in na_columns}
    file_names = [*names, _TRAILING] if trailing_tab else list(names)

    def scan() -> tuple[int, str] | None:
        return _first_bad_line(path, kinds, names, n_skip, trailing_tab)

    try:
        with warnings.catch_warnings():
            # index_col=False: extra leading fields (a UCSC bin column, line numbers, a file on
            # one line) must not become an index; pandas then warns about the lost fields
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = _read_csv_c(path, file_names, dtype, n_skip, na_values)
    except _GZIP_ERRORS as err:
        raise _gzip_error(path, err) from err
    except pd.errors.EmptyDataError:
        return pd.DataFrame({name: pd.Series(dtype=dtype.get(name, object)) for name in names})
    except (ValueError, TypeError, OverflowError, pd.errors.ParserError, pd.errors.ParserWarning) as err:
        bad = scan()
        if bad is not None:
            raise _error(path, bad[0], bad[1]) from err
        raise ValueError(f"{path}: could not be parsed ({type(err).__name__}: {err}).") from err
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        # rows with more fields than names: pandas silently turns the extra leading fields
        # (a UCSC bin column, line numbers, a file on one line) into an index
        bad = scan()
        if bad is not None:
            raise _error(path, bad[0], bad[1])
        raise ValueError(f"{path}: some lines have more columns than {', '.join(names)}.")  # pragma: no cover
    # Rows shorter than the expected width parse without error but leave NaN or "" in their
    # last columns: whenever a column has missing entries, let the line scanner look for a
    # short row; only NA columns and free-form (_ANY) columns may then be empty.
    scanned = False
    if trailing_tab:
        trailing = frame.pop(_TRAILING)
        extra = trailing.notna().to_numpy() & (trailing.astype(str).str.strip() != "").to_numpy()
        if extra.any():  # a non-empty extra field: a line with too many columns
            bad = scan()
            if bad is not None:
                raise _error(path, bad[0], bad[1])
            row = int(np.flatnonzero(extra)[0])  # pragma: no cover (the scan finds it)
            raise _error(path, _line_of_row(path, row, n_skip), "too many columns")
    for name, kind in zip(names, kinds):
        missing = _missing(frame[name])
        if not missing.any():
            continue
        if not scanned:  # one scan finds any malformed line
            bad = scan()
            if bad is not None:
                raise _error(path, bad[0], bad[1])
            scanned = True
        if kind != _ANY and name not in na_columns:
            row = int(np.flatnonzero(missing)[0])
            raise _error(path, _line_of_row(path, row, n_skip), f"column {name!r} is empty")
    return frame


def _read_csv_c(path: Path, names: Sequence[str], dtype: Mapping[str, Any], n_skip: int, na_values) -> pd.DataFrame:
    return pd.read_csv(
        path,
        sep="\t",
        header=None,
        names=list(names),
        index_col=False,
        dtype=dict(dtype),
        skiprows=n_skip,
        engine="c",
        compression="gzip" if _is_gzip(path) else None,
        keep_default_na=False,
        na_values=na_values,
        quoting=3,  # csv.QUOTE_NONE: genomics files never quote; a quote is data
        skip_blank_lines=True,
        low_memory=False,
    )


def _missing(values: pd.Series) -> np.ndarray:
    """Boolean mask of NaN or empty-string entries (cheap on categoricals)."""
    missing = values.isna().to_numpy().copy()
    if isinstance(values.dtype, pd.CategoricalDtype):
        if "" in values.cat.categories:
            missing |= (values.cat.codes == values.cat.categories.get_loc("")).to_numpy()
    elif not pd.api.types.is_numeric_dtype(values.dtype):
        missing |= (values == "").to_numpy()
    return missing


def _raise_first(path: Path, bad: np.ndarray, n_skip: int, describe: Callable[[int], str]) -> None:
    """If any of the boolean mask ``bad`` is set, raise for the first such row."""
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise _error(path, _line_of_row(path, row, n_skip), describe(row))


def _resolve_chrom_sizes(chrom_sizes: ChromSizes) -> dict[str, int] | None:
    if chrom_sizes is None:
        return None
    if isinstance(chrom_sizes, Mapping):
        return {str(k): int(v) for k, v in chrom_sizes.items()}
    return read_chrom_sizes(chrom_sizes)


def _check_intervals(
    path: Path,
    frame: pd.DataFrame,
    n_skip: int,
    sizes: dict[str, int] | None,
    *,
    chrom: str = "chrom",
    start: str = "start",
    end: str = "end",
    row_index: np.ndarray | None = None,
    where: Callable[[int], str] | None = None,
) -> None:
    """Vectorised interval checks: start >= 0, start < end, chrom known, end <= chrom length.

    ``row_index`` maps rows of ``frame`` back to data-row numbers of the file (when rows were
    dropped or reordered before the check). ``where(i)`` names row ``i`` for files without
    lines (pickles); then ``n_skip`` is unused.
    """
    s = frame[start].to_numpy()
    e = frame[end].to_numpy()
    rows = np.arange(len(frame)) if row_index is None else row_index

    def fail(mask: np.ndarray, describe: Callable[[int], str]) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            if where is not None:
                raise ValueError(f"{path}: {where(i)}: {describe(i)}")
            raise _error(path, _line_of_row(path, int(rows[i]), n_skip), describe(i))

    fail(s < 0, lambda i: f"negative {start} {s[i]}")
    fail(s >= e, lambda i: f"{start} ({s[i]}) must be < {end} ({e[i]})")
    if sizes is not None:
        # work on category codes: 10M string lookups would dominate the reading time
        chroms = _categorical(frame[chrom])
        per_category = np.array([sizes.get(str(c), np.nan) for c in chroms.categories], dtype=float)
        codes = np.asarray(chroms.codes)
        length = np.where(codes >= 0, per_category[codes], np.nan)
        fail(np.isnan(length), lambda i: f"unknown chromosome {chroms[i]!r} (not in the chromosome sizes)")
        fail(e > length, lambda i: f"{end} ({e[i]}) is beyond the end of {chroms[i]} (length {int(length[i])})")


def _drop_unknown_chroms(
    path: Path, frame: pd.DataFrame, sizes: dict[str, int] | None, on_unknown_chrom: str, column: str = "chrom"
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Apply ``on_unknown_chrom="drop"``; return the kept frame and its original row numbers."""
    if on_unknown_chrom not in ("raise", "drop"):
        raise ValueError(f"on_unknown_chrom must be 'raise' or 'drop', got {on_unknown_chrom!r}")
    if sizes is None or on_unknown_chrom == "raise":
        return frame, None
    chroms = _categorical(frame[column])
    known_category = np.array([str(c) in sizes for c in chroms.categories], dtype=bool)
    codes = np.asarray(chroms.codes)
    known = (codes >= 0) & known_category[np.maximum(codes, 0)]
    if known.all():
        return frame, None
    dropped = pd.Series(np.asarray(chroms[~known]).astype(str)).value_counts()
    log.warning(
        "%s: dropped %d lines on %d chromosomes absent from the chromosome sizes: %s",
        path,
        int((~known).sum()),
        len(dropped),
        ", ".join(f"{c} ({n})" for c, n in dropped.head(10).items()) + (" …" if len(dropped) > 10 else ""),
    )
    rows = np.flatnonzero(known)
    return frame.loc[known].reset_index(drop=True), rows


def _categorical(values: pd.Series) -> pd.Categorical:
    """``values`` as a Categorical (free when it already is one)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return values.array
    return pd.Categorical(values)


def _as_category(values: pd.Series, all_used: bool = False) -> pd.Series:
    """Categorical with sorted ``str`` categories and no unused ones (cheap: works on categories).

    ``all_used``: the caller knows every category occurs (pyarrow's dictionaries of rows that
    were all kept), which saves a pass over the codes.
    """
    cat = _categorical(values)
    used = True if all_used else np.bincount(np.asarray(cat.codes) + 1, minlength=len(cat.categories) + 1)[1:] > 0
    if not np.all(used):  # np.unique inside remove_unused_categories is slow on 10M rows: skip if possible
        cat = cat.remove_unused_categories()
    names = [str(c) for c in cat.categories]
    cat = cat.rename_categories(names)
    if names != sorted(names):
        cat = cat.reorder_categories(sorted(names))
    return pd.Series(cat, index=values.index, name=values.name)


# --------------------------------------------------------------------------------------------
# BED-like files (no header row): one pyarrow pass, the line scanner only on error
# --------------------------------------------------------------------------------------------
def _read_bed(
    path: Path,
    names: Sequence[str],
    kinds: Sequence[str],
    n_skip: int,
    *,
    keep: Sequence[str],
    categorical: Sequence[str] = (),
) -> dict[str, Any]:
    """Parse a tab-separated file without header row with pyarrow's multi-threaded CSV reader.

    ``names``/``kinds`` describe every column (kinds ``_STR``, ``_INT``, ``_ARROW_FLOAT``,
    ``_ANY``); only the ``keep`` columns are converted and returned: ``_INT`` as int64 and
    ``_ARROW_FLOAT`` as float64 NumPy arrays, ``categorical`` ones as :class:`pandas.Categorical`,
    other strings as object arrays. Row ``i`` is data row ``i`` of the file (after ``n_skip``
    header lines, blank lines skipped). Any line pyarrow refuses (column count, a bad number,
    invalid UTF-8), an empty ``_STR`` field or a hexadecimal integer (which pyarrow alone would
    take) is reported by the line scanner as ``file:line: reason``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    def scan_and_raise(err: BaseException | None = None) -> None:
        bad = _first_bad_line(path, kinds, names, n_skip)
        if bad is not None:
            raise _error(path, bad[0], bad[1]) from err
        if err is not None:
            raise ValueError(f"{path}: could not be parsed ({type(err).__name__}: {err}).") from err

    dictionary = pa.dictionary(pa.int32(), pa.string())
    types = {}
    for name, kind in zip(names, kinds):
        if name in keep:
            if kind == _INT:
                types[name] = pa.int64()
            elif kind == _ARROW_FLOAT:
                types[name] = pa.float64()
            else:
                types[name] = dictionary if name in categorical else pa.string()
    source = _ByteSource(path)
    try:
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(column_names=list(names), skip_rows=n_skip, block_size=_CHUNK),
            parse_options=pacsv.ParseOptions(
                delimiter="\t", quote_char=False, double_quote=False, escape_char=False, ignore_empty_lines=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=types,
                include_columns=list(keep),
                null_values=[],
                true_values=[],
                false_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError, ValueError) as err:
        if source.error is not None:
            raise source.error from None
        # no data line at all (only header lines, or none): an empty table (callers decide)
        if "Empty CSV" not in str(err) and "Could not skip initial" not in str(err):
            scan_and_raise(err)
        table = pa.table({name: pa.array([], type=types[name]) for name in keep})
    finally:
        source.close()
    out: dict[str, Any] = {}
    empty_str = False
    for name, kind in zip(names, kinds):
        if name not in keep:
            continue
        column = table[name]
        if name in categorical:
            out[name] = column.to_pandas().array if table.num_rows else pd.Categorical([], categories=[])
            empty_str |= kind == _STR and "" in out[name].categories
        elif types[name] in (pa.int64(), pa.float64()):
            out[name] = column.to_numpy()
        else:
            out[name] = column.to_numpy(zero_copy_only=False).astype(object)
            empty_str |= kind == _STR and bool(table.num_rows) and pc.any(pc.equal(column, "")).as_py()
    if source.saw_hex or source.non_ascii or empty_str:
        scan_and_raise()
    return out


def _raise_first_of(
    path: Path, n_skip: int, checks: Sequence[tuple[np.ndarray, Callable[[int], str]]], rows: np.ndarray | None = None
) -> None:
    """Raise for the earliest row failing any of ``checks`` (``(mask, describe)`` pairs, in order).

    Several checks may fail on different rows: the error names the first such line of the file
    (on the same line, the first check in ``checks`` wins). ``rows`` maps positions of the masks
    to data rows of the file.
    """
    best: tuple[int, int] | None = None
    for k, (mask, _) in enumerate(checks):
        if mask.any():
            i = int(np.argmax(mask))
            if best is None or i < best[0]:
                best = (i, k)
    if best is not None:
        i, k = best
        row = i if rows is None else int(rows[i])
        raise _error(path, _line_of_row(path, row, n_skip), checks[k][1](i))


def _chrom_lengths(
    chroms: pd.Categorical, sizes: Mapping[str, int], end: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: chromosome length (int64, 0 where unknown) and whether the chromosome is unknown.

    Computed on the categories and gathered by code (10 M string lookups would dominate). When
    every chromosome is known and ``end`` (if given) ends within the shortest of them, the
    length is returned as a broadcast scalar array (no per-row gather).
    """
    per_category = np.array([sizes.get(str(c), -1) for c in chroms.categories], dtype=np.int64)
    codes = np.asarray(chroms.codes)
    if end is not None and len(per_category) and per_category.min() >= 0 and codes.min(initial=0) >= 0:
        if end.max(initial=0) <= per_category.min():  # nothing can run past an end
            n = len(codes)
            return np.broadcast_to(per_category.min(), n), np.zeros(n, dtype=bool)
    per_category = np.append(per_category, -1)  # code -1 (a missing value) -> unknown
    length = per_category[codes]
    unknown = length < 0
    if unknown.any():
        length = np.where(unknown, 0, length)
    return length, unknown


def _count_by_chrom(chroms: pd.Categorical, mask: np.ndarray) -> dict[str, int]:
    """``{chrom: n}`` of the rows in ``mask``, largest first."""
    counts = np.bincount(np.asarray(chroms.codes)[mask], minlength=len(chroms.categories))
    order = np.argsort(-counts, kind="stable")
    return {str(chroms.categories[k]): int(counts[k]) for k in order if counts[k]}


# --------------------------------------------------------------------------------------------
# chromosome sizes
# --------------------------------------------------------------------------------------------
def read_chrom_sizes(path: PathLike) -> dict[str, int]:
    """Read a UCSC ``chrom.sizes`` file (two tab-separated columns: chrom, length).

    Parameters
    ----------
    path : str or PathLike
        Plain or gzipped file; ``#`` lines at the top are skipped.

    Returns
    -------
    dict[str, int]
        Chromosome name -> length (bp), in file order.

    Raises
    ------
    ValueError
        ``file:line`` for a malformed line, a non-positive length, or a chromosome listed twice
        with different lengths (both lines named); also for an empty file.
    """
    path = _check_file(path)
    n_skip = _count_header_lines(path, ("#",))
    names, kinds = ("chrom", "length"), (_STR, _INT)
    frame = _read_table(path, names=names, kinds=kinds, dtype={"chrom": str, "length": "int64"}, n_skip=n_skip)
    if frame.empty:
        raise ValueError(f"{path}: contains no chromosomes.")
    lengths = frame["length"].to_numpy()
    _raise_first(path, lengths <= 0, n_skip, lambda i: f"chromosome length must be positive, got {lengths[i]}")
    sizes: dict[str, int] = {}
    first_row: dict[str, int] = {}
    for i, (chrom, length) in enumerate(zip(frame["chrom"].tolist(), lengths.tolist())):
        if chrom in sizes:
            if sizes[chrom] != length:
                line_a = _line_of_row(path, first_row[chrom], n_skip)
                line_b = _line_of_row(path, i, n_skip)
                raise _error(path, line_b, f"{chrom} has length {length} here but {sizes[chrom]} on line {line_a}")
            continue
        sizes[chrom] = int(length)
        first_row[chrom] = i
    if len(sizes) < len(frame):
        log.info("%s: collapsed %d identical duplicate lines", path, len(frame) - len(sizes))
    return sizes


# --------------------------------------------------------------------------------------------
# reads and signal tracks
# --------------------------------------------------------------------------------------------
def read_tagalign(
    path: PathLike,
    chrom_sizes: ChromSizes = None,
    *,
    on_unknown_chrom: Literal["raise", "drop"] = "raise",
    past_end: Literal["raise", "clip"] = "raise",
) -> pd.DataFrame:
    """Read aligned reads from a tagAlign / BED6 file (plain or gzip).

    Parameters
    ----------
    path : str or PathLike
        Six tab-separated columns ``chrom start end name score strand`` (Roadmap consolidated
        alignments: 36 bp reads, name ``N``, score 1000); need not be sorted.
    chrom_sizes : mapping or path, optional
        If given, every read must lie on a listed chromosome and end within it (unless
        ``on_unknown_chrom``/``past_end`` say otherwise).
    on_unknown_chrom : {"raise", "drop"}
        What to do with reads on chromosomes absent from ``chrom_sizes`` (ignored without it).
        ``"drop"`` skips them and logs how many reads were skipped per chromosome (real Roadmap
        files hold chrM and unplaced contigs such as ``chr1_gl000191_random``).
    past_end : {"raise", "clip"}
        What to do with reads that run past their chromosome's end. ``"clip"`` does what
        ``bedtools genomecov`` does: a read with ``start < length < end`` is cut to
        ``[start, length)``; a read starting at or past the end covers nothing and is skipped.
        Both are counted in the log.

    Returns
    -------
    pandas.DataFrame, shape (n_reads, 4)
        ``chrom`` (category), ``start``, ``end`` (int64, 0-based half-open), ``strand``
        (category ``["+", "-"]``), in file order. ``frame.attrs["read_report"]`` counts what was
        changed: ``n_records`` (data lines in the file), ``unknown_chromosomes`` (``{chrom: n}``
        skipped), ``clipped`` (reads cut at a chromosome end), ``past_end`` (reads starting at or
        past the end, skipped).

    Raises
    ------
    ValueError
        ``file:line: reason`` for the first malformed line (column count, non-integer or
        negative coordinate, start >= end, strand not +/-, unknown chromosome or end beyond the
        chromosome unless skipped/clipped); a truncated or corrupt gzip (with the compressed
        byte offset); an empty file ("contains no reads").

    Notes
    -----
    Parsing uses pyarrow's multi-threaded CSV reader (~3x faster than pandas on 10 M reads, see
    ``bench/bench_binning.py``); the line scanner that names the bad line runs only on error.
    """
    path = _check_file(path)
    _check_choice("on_unknown_chrom", on_unknown_chrom, ("raise", "drop"))
    _check_choice("past_end", past_end, ("raise", "clip"))
    sizes = _resolve_chrom_sizes(chrom_sizes)
    n_skip = _count_header_lines(path, _BED_HEADER_PREFIXES)
    names = ("chrom", "start", "end", "name", "score", "strand")
    kinds = (_STR, _INT, _INT, _ANY, _ANY, _STR)
    cols = _read_bed(
        path, names, kinds, n_skip, keep=("chrom", "start", "end", "strand"), categorical=("chrom", "strand")
    )
    chrom, start, end, strand = cols["chrom"], cols["start"], cols["end"], cols["strand"]
    n = len(start)
    if n == 0:
        raise ValueError(f"{path}: contains no reads (an empty track cannot be used; was the download complete?).")
    ok_category = np.array([c in ("+", "-") for c in strand.categories], dtype=bool)
    strand_codes = np.asarray(strand.codes)
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (~ok_category[strand_codes], lambda i: f"strand must be '+' or '-', got {strand[i]!r}"),
        (start < 0, lambda i: f"negative start {start[i]}"),
        (start >= end, lambda i: f"start ({start[i]}) must be < end ({end[i]})"),
    ]
    report: dict[str, Any] = {"n_records": n, "unknown_chromosomes": {}, "clipped": 0, "past_end": 0}
    keep = None
    if sizes is not None:
        length, unknown = _chrom_lengths(chrom, sizes, end)
        over = ~unknown & (end > length)
        if on_unknown_chrom == "raise":
            checks.append((unknown, lambda i: f"unknown chromosome {chrom[i]!r} (not in the chromosome sizes)"))
        if past_end == "raise":
            checks.append((over, lambda i: f"end ({end[i]}) is beyond the end of {chrom[i]} (length {int(length[i])})"))
        _raise_first_of(path, n_skip, checks)
        beyond = over & (start >= length)
        clipped = over & ~beyond
        if unknown.any():
            report["unknown_chromosomes"] = _count_by_chrom(chrom, unknown)
            dropped = report["unknown_chromosomes"]
            log.warning(
                "%s: dropped %d lines (reads) on %d chromosomes absent from the chromosome sizes: %s",
                path,
                int(unknown.sum()),
                len(dropped),
                ", ".join(f"{c} ({k})" for c, k in list(dropped.items())[:10]) + (" …" if len(dropped) > 10 else ""),
            )
        if over.any():
            report["clipped"], report["past_end"] = int(clipped.sum()), int(beyond.sum())
            log.warning(
                "%s: %d reads run past their chromosome end and were clipped to it, %d start at or past the "
                "end and were skipped (as bedtools genomecov does)",
                path,
                report["clipped"],
                report["past_end"],
            )
            end = np.where(clipped, length, end) if report["clipped"] else end
        if unknown.any() or beyond.any():
            keep = ~(unknown | beyond)
    else:
        _raise_first_of(path, n_skip, checks)
    if keep is not None:
        chrom, start, end, strand = chrom[keep], start[keep], end[keep], strand[keep]
        if len(start) == 0:
            raise ValueError(f"{path}: contains no reads on the chromosomes of the chromosome sizes.")
    frame = pd.DataFrame(
        {
            "chrom": _as_category(pd.Series(chrom, copy=False), all_used=keep is None),
            "start": np.asarray(start, dtype=np.int64),
            "end": np.asarray(end, dtype=np.int64),
            "strand": pd.Categorical(strand).set_categories(["+", "-"]),
        },
        copy=False,  # no consolidation copy of 10^7-row columns
    )
    frame.attrs["read_report"] = report
    return frame


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def read_bedgraph(
    path: PathLike,
    chrom_sizes: ChromSizes = None,
    *,
    on_unknown_chrom: Literal["raise", "drop"] = "raise",
) -> pd.DataFrame:
    """Read a bedGraph track (e.g. the per-base depth of ``bedtools genomecov -bg(a)``).

    Parameters
    ----------
    path : str or PathLike
        Four tab-separated columns ``chrom start end value``, plain or gzip, optional leading
        ``track``/``browser``/``#`` lines; need not be sorted. Overlaps are not checked.
    chrom_sizes : mapping or path, optional
        If given, every interval must lie on a listed chromosome and end within it.
    on_unknown_chrom : {"raise", "drop"}
        As in :func:`read_tagalign`.

    Returns
    -------
    pandas.DataFrame, shape (n_intervals, 4)
        ``chrom`` (category), ``start``, ``end`` (int64), ``value`` (float64, finite).

    Raises
    ------
    ValueError
        ``file:line: reason`` for the first bad line (as :func:`read_tagalign`, plus a
        non-numeric or non-finite value); an empty file ("contains no intervals").
    """
    path = _check_file(path)
    _check_choice("on_unknown_chrom", on_unknown_chrom, ("raise", "drop"))
    sizes = _resolve_chrom_sizes(chrom_sizes)
    n_skip = _count_header_lines(path, _BED_HEADER_PREFIXES)
    kinds = (_STR, _INT, _INT, _ARROW_FLOAT)
    cols = _read_bed(path, BEDGRAPH_COLUMNS, kinds, n_skip, keep=BEDGRAPH_COLUMNS, categorical=("chrom",))
    chrom, start, end, values = cols["chrom"], cols["start"], cols["end"], cols["value"]
    if len(start) == 0:
        raise ValueError(f"{path}: contains no intervals.")
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (start < 0, lambda i: f"negative start {start[i]}"),
        (start >= end, lambda i: f"start ({start[i]}) must be < end ({end[i]})"),
        (~np.isfinite(values), lambda i: f"value must be finite, got {values[i]}"),
    ]
    unknown = None
    if sizes is not None:
        length, unknown = _chrom_lengths(chrom, sizes)
        if on_unknown_chrom == "raise":
            checks.append((unknown, lambda i: f"unknown chromosome {chrom[i]!r} (not in the chromosome sizes)"))
        checks.append(
            (
                ~unknown & (end > length),
                lambda i: f"end ({end[i]}) is beyond the end of {chrom[i]} (length {int(length[i])})",
            )
        )
    _raise_first_of(path, n_skip, checks)
    if unknown is not None and unknown.any():
        dropped = _count_by_chrom(chrom, unknown)
        log.warning(
            "%s: dropped %d lines (intervals) on %d chromosomes absent from the chromosome sizes: %s",
            path,
            int(unknown.sum()),
            len(dropped),
            ", ".join(f"{c} ({k})" for c, k in list(dropped.items())[:10]) + (" …" if len(dropped) > 10 else ""),
        )
        keep = ~unknown
        chrom, start, end, values = chrom[keep], start[keep], end[keep], values[keep]
        if len(start) == 0:
            raise ValueError(f"{path}: contains no intervals on the chromosomes of the chromosome sizes.")
    return pd.DataFrame(
        {
            "chrom": _as_category(pd.Series(chrom, copy=False)),
            "start": np.asarray(start, dtype=np.int64),
            "end": np.asarray(end, dtype=np.int64),
            "value": np.asarray(values, dtype=np.float64),
        },
        copy=False,
    )


# --------------------------------------------------------------------------------------------
# pre-binned count tables
# --------------------------------------------------------------------------------------------
#: The fixed leading columns of a pre-binned count table (then one column per track).
BINNED_FIXED_COLUMNS = ("chrom", "start", "end")


def _binned_header(path: Path) -> tuple[list[str], int]:
    """Header fields of a pre-binned count table and its 1-based line (after ``#`` and blank lines)."""
    for number, line in _iter_lines(path):
        if line == "" or line.startswith("#"):
            continue
        fields = line.split("\t")
        if tuple(fields[:3]) != BINNED_FIXED_COLUMNS:
            raise _error(
                path,
                number,
                f"the header must start with the tab-separated columns chrom, start, end; found {fields[:3]} "
                "(a pre-binned count table has a header line 'chrom start end <track>...')",
            )
        tracks = fields[3:]
        if not tracks:
            raise _error(path, number, "the header names no track column after chrom, start, end")
        seen: dict[str, int] = {}
        for i, name in enumerate(fields):
            if name.strip() == "":
                raise _error(path, number, f"header column {i + 1} has an empty name")
            if name in seen:
                raise _error(
                    path, number, f"column {name!r} appears twice in the header (columns {seen[name] + 1} and {i + 1})"
                )
            seen[name] = i
        return fields, number
    raise ValueError(f"{path}: is empty (expected a header line 'chrom start end <track>...').")


def read_binned_counts(
    path: PathLike,
    chrom_sizes: ChromSizes = None,
    *,
    on_unknown_chrom: Literal["raise", "drop"] = "raise",
) -> pd.DataFrame:
    """Read a pre-binned count table: ``chrom start end <track>…`` with one bin size.

    Parameters
    ----------
    path : str or PathLike
        Tab-separated, plain or gzip, optional leading ``#`` lines, then a header line
        ``chrom start end <track> [<track> …]`` (unique, non-empty track names, e.g. histone
        marks), then one line per bin with integer counts ``>= 0`` (e.g. reads per bin). The bins
        must be sorted: each chromosome in one block, starts increasing within it; they must not
        overlap, must all have the same size (the first bin's), and lie on one grid per
        chromosome (``start - first start`` a multiple of the bin size). Gaps are allowed: a
        missing bin is *unknown*, not zero (e.g. unassembled sequence). A partial last bin of a
        chromosome is a different bin size: leave it out.
    chrom_sizes : mapping or path, optional
        If given, every bin must lie on a listed chromosome and end within it.
    on_unknown_chrom : {"raise", "drop"}
        What to do with bins on chromosomes absent from ``chrom_sizes`` (ignored without it);
        ``"drop"`` skips them and counts them per chromosome (report and log).

    Returns
    -------
    pandas.DataFrame, shape (n_bins, 3 + n_tracks)
        ``chrom`` (category), ``start``, ``end`` (int64, 0-based half-open), one int64 column per
        track, in file order. ``frame.attrs["bin_report"]``: ``n_bins``, ``bin_size``,
        ``tracks``, ``chromosomes`` (``{chrom: n_bins}`` in file order), ``gaps`` (``{chrom:
        number of gaps between consecutive bins}``), ``unknown_chromosomes`` (``{chrom: n}``
        dropped), ``empty_tracks`` (``{track: [chroms where it is 0 in every bin]}``, also
        logged: genes there have no usable signal).

    Raises
    ------
    ValueError
        ``file:line: reason`` for a bad header (not ``chrom start end``, no track, a repeated or
        empty name) and for the first bad line: column count, a non-integer field, a negative
        coordinate or count, ``start >= end``, a bin size other than the first bin's, a
        chromosome appearing in two blocks, a start before the previous bin's, a bin overlapping
        the previous one, a start off the chromosome's bin grid, an unknown chromosome or a bin
        past the chromosome end (with ``chrom_sizes``). Also: a truncated or corrupt gzip; a
        table without bins; a track that is 0 in every bin (an empty track).
    """
    path = _check_file(path)
    _check_choice("on_unknown_chrom", on_unknown_chrom, ("raise", "drop"))
    sizes = _resolve_chrom_sizes(chrom_sizes)
    header, n_skip = _binned_header(path)
    tracks = header[3:]
    kinds = (_STR, _INT, _INT, *([_INT] * len(tracks)))
    cols = _read_bed(path, header, kinds, n_skip, keep=header, categorical=("chrom",))
    chrom, start, end = cols["chrom"], cols["start"], cols["end"]
    n = len(start)
    if n == 0:
        raise ValueError(f"{path}: contains a header but no bins.")
    codes = np.asarray(chrom.codes)
    size = end - start
    bin_size = int(size[0])
    new_block = np.ones(n, dtype=bool)
    new_block[1:] = codes[1:] != codes[:-1]
    block = np.cumsum(new_block) - 1
    first_block = np.full(len(chrom.categories), n, dtype=np.int64)
    np.minimum.at(first_block, codes, block)
    block_first_start = start[np.flatnonzero(new_block)][block]
    prev_start = np.r_[0, start[:-1]]
    prev_end = np.r_[0, end[:-1]]
    same = ~new_block
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (start < 0, lambda i: f"negative start {start[i]}"),
        (start >= end, lambda i: f"start ({start[i]}) must be < end ({end[i]})"),
    ]
    for track in tracks:
        values = cols[track]
        checks.append(
            (values < 0, lambda i, t=track, v=values: f"column {t!r}: a count must be >= 0, got {v[i]}"),
        )
    checks += [
        (
            size != bin_size,
            lambda i: (
                f"bin size {size[i]} differs from the table's bin size {bin_size} (the first bin's): "
                "a table holds one bin size (leave a partial last bin out)"
            ),
        ),
        (
            new_block & (block != first_block[codes]),
            lambda i: (
                f"chromosome {chrom[i]!r} appears again after {chrom[i - 1]!r}: bins must be sorted "
                "(each chromosome in one block, starts increasing)"
            ),
        ),
        (
            same & (start < prev_start),
            lambda i: (
                f"start {start[i]} is before the previous bin's start {prev_start[i]}: bins must be sorted by "
                "start within a chromosome"
            ),
        ),
        (
            same & (start < prev_end),
            lambda i: (
                f"bin {chrom[i]}:{start[i]}-{end[i]} overlaps the previous bin {chrom[i]}:{prev_start[i]}-{prev_end[i]}"
            ),
        ),
        (
            (start - block_first_start) % max(bin_size, 1) != 0,
            lambda i: (
                f"start {start[i]} is off the bin grid of {chrom[i]} (its first bin starts at "
                f"{block_first_start[i]}, bin size {bin_size})"
            ),
        ),
    ]
    unknown = np.zeros(n, dtype=bool)
    if sizes is not None:
        length, unknown = _chrom_lengths(chrom, sizes)
        if on_unknown_chrom == "raise":
            checks.append((unknown, lambda i: f"unknown chromosome {chrom[i]!r} (not in the chromosome sizes)"))
        checks.append(
            (
                ~unknown & (end > length),
                lambda i: f"end ({end[i]}) is beyond the end of {chrom[i]} (length {length[i]})",
            )
        )
    _raise_first_of(path, n_skip, checks)

    report: dict[str, Any] = {"n_bins": n, "bin_size": bin_size, "tracks": list(tracks), "unknown_chromosomes": {}}
    keep = ~unknown
    if unknown.any():
        report["unknown_chromosomes"] = _count_by_chrom(chrom, unknown)
        log.warning(
            "%s: dropped %d bins on chromosomes absent from the chromosome sizes: %s",
            path,
            int(unknown.sum()),
            ", ".join(f"{c} ({k})" for c, k in report["unknown_chromosomes"].items()),
        )
        if not keep.any():
            raise ValueError(f"{path}: contains no bins on the chromosomes of the chromosome sizes.")
    frame = pd.DataFrame(
        {
            "chrom": _as_category(pd.Series(chrom[keep], copy=False), all_used=not unknown.any()),
            "start": np.asarray(start[keep], dtype=np.int64),
            "end": np.asarray(end[keep], dtype=np.int64),
            **{t: np.asarray(cols[t][keep], dtype=np.int64) for t in tracks},
        }
    )
    kept_codes = codes[keep]
    _, first_row = np.unique(kept_codes, return_index=True)
    order = kept_codes[np.sort(first_row)].tolist()  # chromosomes in file order
    names = [str(chrom.categories[c]) for c in order]
    per_chrom = np.bincount(kept_codes, minlength=len(chrom.categories))
    gap = keep & same & (start > prev_end)
    n_gaps = np.bincount(codes[gap], minlength=len(chrom.categories))
    report["n_bins"] = int(keep.sum())
    report["chromosomes"] = {name: int(per_chrom[c]) for name, c in zip(names, order)}
    report["gaps"] = {name: int(n_gaps[c]) for name, c in zip(names, order)}
    report["empty_tracks"] = {}
    for track in tracks:
        totals = np.bincount(
            kept_codes, weights=frame[track].to_numpy(dtype=np.float64), minlength=len(chrom.categories)
        )
        if totals.sum() == 0:
            raise ValueError(
                f"{path}: track {track!r} is 0 in every bin (an empty track cannot be used; is it the right column?)."
            )
        empty = [name for name, c in zip(names, order) if totals[c] == 0]
        if empty:
            report["empty_tracks"][track] = empty
    if report["empty_tracks"]:
        log.warning(
            "%s: tracks with no count at all on some chromosomes (genes there get no usable signal): %s",
            path,
            "; ".join(f"{t}: {', '.join(cs)}" for t, cs in report["empty_tracks"].items()),
        )
    frame.attrs["bin_report"] = report
    return frame


# --------------------------------------------------------------------------------------------
# peaks (narrowPeak / broadPeak / gappedPeak) and BED regions
# --------------------------------------------------------------------------------------------
#: Peak formats and the 1-based column of their signalValue (ENCODE file-format specification).
PEAK_FORMATS: dict[str, int] = {"narrowPeak": 7, "broadPeak": 7, "gappedPeak": 13}
_BED6 = ("chrom", "chromStart", "chromEnd", "name", "score", "strand")
#: Column names of each peak format (ENCODE).
PEAK_FIELDS: dict[str, tuple[str, ...]] = {
    "narrowPeak": (*_BED6, "signalValue", "pValue", "qValue", "peak"),
    "broadPeak": (*_BED6, "signalValue", "pValue", "qValue"),
    "gappedPeak": (
        *_BED6,
        "thickStart",
        "thickEnd",
        "itemRgb",
        "blockCount",
        "blockSizes",
        "blockStarts",
        "signalValue",
        "pValue",
        "qValue",
    ),
}
#: Number of columns of each format.
PEAK_N_COLUMNS: dict[str, int] = {fmt: len(fields) for fmt, fields in PEAK_FIELDS.items()}
#: Columns of the table :func:`read_peaks` returns.
PEAK_COLUMNS: tuple[str, ...] = ("chrom", "start", "end", "name", "signal_value", "p_value", "q_value")


def peak_format_of(path: PathLike) -> str:
    """Peak format from a file name (``x.narrowPeak``, ``x.broadPeak.gz``, ``x_peaks.gappedPeak``)."""
    name = Path(path).name
    if name.endswith(".gz"):
        name = name[:-3]
    suffix = name.rsplit(".", 1)[-1] if "." in name else ""
    for fmt in PEAK_FORMATS:
        if suffix.lower() == fmt.lower():
            return fmt
    raise ValueError(
        f"Cannot tell the peak format of {path}: its name must end in .narrowPeak, .broadPeak or .gappedPeak "
        "(optionally .gz)."
    )


def read_peaks(path: PathLike, fmt: str | None = None, chrom_sizes: ChromSizes = None) -> pd.DataFrame:
    """Read and validate a narrowPeak / broadPeak / gappedPeak file (plain or gzip).

    Leading ``track``/``browser``/``#`` lines and blank lines are skipped; an empty file is a
    valid empty table.

    Parameters
    ----------
    path : str or PathLike
        The peak file.
    fmt : {"narrowPeak", "broadPeak", "gappedPeak"}, optional
        Format; by default taken from the file name.
    chrom_sizes : mapping or path, optional
        If given, a peak on an unknown chromosome or past its end is an error.

    Returns
    -------
    pandas.DataFrame
        Columns ``chrom, start, end, name, signal_value, p_value, q_value`` (chrom and name str,
        0-based half-open int64 coordinates; ``signal_value`` from column 7, or 13 for
        gappedPeak; float64), one row per peak in file order.

    Raises
    ------
    ValueError
        ``file:line`` for a wrong number of columns, a non-integer or negative coordinate,
        ``start >= end``, a non-numeric or non-finite signalValue/pValue/qValue, an unknown
        chromosome or an end past it; a truncated or corrupt gzip (with the byte offset).
    """
    path = _check_file(path)
    fmt = peak_format_of(path) if fmt is None else fmt
    if fmt not in PEAK_FORMATS:
        raise ValueError(f"Unknown peak format {fmt!r}; known: {', '.join(PEAK_FORMATS)}.")
    sizes = _resolve_chrom_sizes(chrom_sizes)
    names = PEAK_FIELDS[fmt]
    numbers = ("signalValue", "pValue", "qValue")
    kind_of = {"chrom": _STR, "chromStart": _INT, "chromEnd": _INT, **{n: _ARROW_FLOAT for n in numbers}}
    kinds = [kind_of.get(n, _ANY) for n in names]
    n_skip = _count_header_lines(path, _BED_HEADER_PREFIXES)
    cols = _read_bed(path, names, kinds, n_skip, keep=("chrom", "chromStart", "chromEnd", "name", *numbers))
    chrom, start, end = cols["chrom"], cols["chromStart"], cols["chromEnd"]
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        ((start < 0) | (end <= start), lambda i: f"need 0 <= chromStart < chromEnd, got {start[i]}..{end[i]}")
    ]
    for name in numbers:
        v = cols[name]
        column = names.index(name) + 1
        checks.append(
            (~np.isfinite(v), lambda i, v=v, name=name, c=column: f"{name} (column {c}) must be finite, got {v[i]}")
        )
    if sizes is not None and len(start):
        length = np.array([sizes.get(c, np.nan) for c in chrom], dtype=float)
        checks.append((np.isnan(length), lambda i: f"unknown chromosome ({chrom[i]})"))
        checks.append(
            (
                end > np.nan_to_num(length, nan=np.inf),
                lambda i: f"end {end[i]} past the chromosome's length ({chrom[i]})",
            )
        )
    _raise_first_of(path, n_skip, checks)
    return pd.DataFrame(
        {
            "chrom": np.asarray(chrom, dtype=object).astype(str),
            "start": np.asarray(start, dtype=np.int64),
            "end": np.asarray(end, dtype=np.int64),
            "name": np.asarray(cols["name"], dtype=object).astype(str),
            "signal_value": np.asarray(cols["signalValue"], dtype=np.float64),
            "p_value": np.asarray(cols["pValue"], dtype=np.float64),
            "q_value": np.asarray(cols["qValue"], dtype=np.float64),
        }
    )


def read_regions(path: PathLike) -> pd.DataFrame:
    """Read the first three columns (chrom, start, end) of a BED file (plain or gzip).

    Further columns are ignored; leading ``track``/``browser``/``#`` lines and blank lines are
    skipped.

    Returns
    -------
    pandas.DataFrame
        ``chrom`` (str), ``start``, ``end`` (int64), in file order.

    Raises
    ------
    ValueError
        ``file:line`` for a line with fewer than 3 columns, a non-integer coordinate or one
        outside ``0 <= start < end``; a truncated or corrupt gzip; a file without regions.
    """
    path = _check_file(path)
    rows = []
    n_skip = _count_header_lines(path, _BED_HEADER_PREFIXES)
    for number, line in _iter_lines(path):
        if number <= n_skip or line == "":
            continue
        fields = line.split("\t")
        if len(fields) < 3:
            raise _error(
                path, number, f"expected at least 3 tab-separated columns (chrom, start, end), found {len(fields)}"
            )
        for name, value in (("chrom", fields[0]), ("start", fields[1]), ("end", fields[2])):
            reason = _check_field(value, _STR if name == "chrom" else _INT)
            if reason is not None:
                raise _error(path, number, f"column {name!r}: {reason}")
        start, end = int(fields[1]), int(fields[2])
        if not 0 <= start < end:
            raise _error(path, number, f"region must satisfy 0 <= start < end, got {start}-{end}")
        rows.append((fields[0], start, end))
    if not rows:
        raise ValueError(f"{path}: contains no regions.")
    return pd.DataFrame(rows, columns=["chrom", "start", "end"]).astype({"start": np.int64, "end": np.int64})


def _import_pybigwig():
    try:
        import pyBigWig
    except ImportError as err:  # optional dependency
        raise ImportError(
            "Reading bigWig files needs pyBigWig, which is in chromexp's optional extra 'bigwig': "
            "pip install 'chromexp[bigwig]' (or pip install pyBigWig)."
        ) from err
    return pyBigWig


def read_bigwig_chrom_sizes(path: PathLike) -> dict[str, int]:
    """Chromosome sizes stored in a bigWig header (needs the ``bigwig`` extra)."""
    path = _check_file(path)
    bw = _open_bigwig(path)
    try:
        return {str(k): int(v) for k, v in bw.chroms().items()}
    finally:
        bw.close()


def _open_bigwig(path: Path):
    pybigwig = _import_pybigwig()
    try:
        bw = pybigwig.open(str(path))
    except RuntimeError as err:
        raise ValueError(f"{path}: is not a readable bigWig file ({err}).") from err
    if bw is None or not bw.isBigWig():
        if bw is not None:
            bw.close()
        raise ValueError(f"{path}: is not a bigWig file.")
    return bw


def read_bigwig_intervals(path: PathLike, chrom: str, start: int | None = None, end: int | None = None) -> pd.DataFrame:
    """Intervals of a bigWig track overlapping ``chrom:[start, end)`` (needs the ``bigwig`` extra).

    Parameters
    ----------
    path : str or PathLike
        A bigWig file.
    chrom : str
        Chromosome; must be in the file's header.
    start, end : int, optional
        0-based half-open query range; default the whole chromosome. Intervals are returned
        as stored (not clipped to the range).

    Returns
    -------
    pandas.DataFrame, shape (n_intervals, 4)
        ``chrom`` (category), ``start``, ``end`` (int64), ``value`` (float64); empty if the
        range holds no data.

    Raises
    ------
    ImportError
        If pyBigWig is not installed (``pip install 'chromexp[bigwig]'``).
    ValueError
        Unknown chromosome, or a range that is empty or outside the chromosome.
    """
    path = _check_file(path)
    bw = _open_bigwig(path)
    try:
        chroms = bw.chroms()
        if chrom not in chroms:
            raise ValueError(f"{path}: chromosome {chrom!r} is not in this bigWig (it has {len(chroms)} others).")
        length = int(chroms[chrom])
        start = 0 if start is None else int(start)
        end = length if end is None else int(end)
        if not 0 <= start < end <= length:
            raise ValueError(f"{path}: invalid range {chrom}:{start}-{end} (chromosome length {length}).")
        intervals = bw.intervals(chrom, start, end) or ()
    finally:
        bw.close()
    arr = np.asarray(intervals, dtype=np.float64).reshape(-1, 3)
    return pd.DataFrame(
        {
            "chrom": pd.Categorical([chrom] * len(arr), categories=[chrom]),
            "start": arr[:, 0].astype(np.int64),
            "end": arr[:, 1].astype(np.int64),
            "value": arr[:, 2],
        }
    )


# --------------------------------------------------------------------------------------------
# header-based tables
# --------------------------------------------------------------------------------------------
def _read_header(path: Path) -> tuple[list[str], int]:
    """Return the header fields and the number of lines up to and including the header."""
    for number, line in _iter_lines(path):
        if line == "":
            continue
        # trailing whitespace (a trailing tab) would otherwise make an unnamed last column
        return line.rstrip().split("\t"), number
    raise ValueError(f"{path}: is empty (expected a header line).")


def _check_header(path: Path, header: list[str], line: int, required: Sequence[str]) -> None:
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        if name in seen:
            raise _error(
                path, line, f"column {name!r} appears twice in the header (columns {seen[name] + 1} and {i + 1})"
            )
        seen[name] = i
    missing = [name for name in required if name not in seen]
    if missing:
        raise _error(
            path,
            line,
            f"header lacks required column(s) {', '.join(missing)}; found {', '.join(header)} "
            "(is the file tab-separated with a header line?)",
        )


def _collapse_duplicates(
    path: Path,
    frame: pd.DataFrame,
    key: str,
    compare: Sequence[str],
    n_skip: int,
    what: str,
    row_index: np.ndarray | None = None,
) -> pd.DataFrame:
    """Collapse rows with the same ``key`` whose ``compare`` columns agree; raise otherwise.

    ``row_index`` maps rows of ``frame`` to data-row numbers of the file (after dropped rows).
    """
    rows = np.arange(len(frame)) if row_index is None else np.asarray(row_index)
    dup = frame[key].duplicated(keep=False).to_numpy()
    if not dup.any():
        return frame
    sub = frame.loc[dup, [key, *compare]]
    first_of: dict[Any, int] = {}
    for row, values in zip(np.flatnonzero(dup).tolist(), sub.itertuples(index=False, name=None)):
        k = values[0]
        if k not in first_of:
            first_of[k] = row
            continue
        ref = frame.loc[first_of[k], list(compare)].tolist()
        for name, a, b in zip(compare, ref, values[1:]):
            if not (a == b or (pd.isna(a) and pd.isna(b))):
                line_a = _line_of_row(path, int(rows[first_of[k]]), n_skip)
                line_b = _line_of_row(path, int(rows[row]), n_skip)
                raise _error(
                    path,
                    line_b,
                    f"{what} {k!r} also on line {line_a} with a different {name} ({b!r} here, {a!r} there)",
                )
    keep = ~frame[key].duplicated(keep="first").to_numpy()
    n_dropped = int((~keep).sum())
    log.info(
        "%s: collapsed %d duplicate %s rows identical in %s (kept the first; e.g. %s)",
        path,
        n_dropped,
        what,
        ", ".join(compare),
        ", ".join(map(str, frame.loc[~keep, key].head(5).tolist())),
    )
    return frame.loc[keep].reset_index(drop=True)


def read_gene_table(
    path: PathLike,
    chrom_sizes: ChromSizes = None,
    *,
    on_unknown_chrom: Literal["raise", "drop"] = "raise",
) -> pd.DataFrame:
    """Read a gene annotation table (``genes.tsv``).

    Parameters
    ----------
    path : str or PathLike
        Tab-separated with a header holding at least ``gene_id chrom tss strand`` (``tss``
        0-based; ``strand`` one of ``+ - .``), optionally ``gene_name`` and ``gene_length``
        (``NA`` allowed). Other columns (e.g. the RPKM columns of the vendored
        ``genes_rpkm_11.tsv.gz``) are ignored.
    chrom_sizes : mapping or path, optional
        If given, every TSS must lie on a listed chromosome, ``0 <= tss < length``.
    on_unknown_chrom : {"raise", "drop"}
        As in :func:`read_tagalign`.

    Returns
    -------
    pandas.DataFrame, shape (n_genes, 6)
        ``gene_id, gene_name, chrom`` (str), ``tss`` (int64), ``strand`` (str: ``+``, ``-`` or
        ``.``), ``gene_length`` (float64, NaN where unknown), one row per gene in file order.
        A missing ``gene_name`` (column or value) is filled with the ``gene_id`` (logged).

    Raises
    ------
    ValueError
        ``file:line`` for a malformed row, a negative TSS, a TSS outside its chromosome, a bad
        strand, a non-positive gene length, or a gene id listed twice with different
        chrom/tss/strand/gene_length (both lines named). Duplicate rows that agree on those
        columns are collapsed, keeping the first, with a logged count (the vendored table lists
        7 Ensembl ids twice with two gene symbols each).

    Notes
    -----
    Genes with strand ``.`` are kept and counted in a warning: whoever builds windows must
    decide (chromexp.data.dataset excludes them with a recorded reason).
    """
    path = _check_file(path)
    sizes = _resolve_chrom_sizes(chrom_sizes)
    header, header_line = _read_header(path)
    _check_header(path, header, header_line, ("gene_id", "chrom", "tss", "strand"))
    kind_of = {"gene_id": _STR, "chrom": _STR, "tss": _INT, "strand": _STR, "gene_length": _FLOAT_NA}
    kinds = [kind_of.get(name, _ANY) for name in header]
    dtype = {name: str for name in header if name not in ("tss", "gene_length")}
    dtype.update({"tss": "int64"})
    if "gene_length" in header:
        dtype["gene_length"] = "float64"
    na_columns = [c for c in ("gene_name", "gene_length") if c in header]
    frame = _read_table(
        path, names=header, kinds=kinds, dtype=dtype, n_skip=header_line, na_columns=na_columns, trailing_tab=True
    )
    if frame.empty:
        raise ValueError(f"{path}: contains a header but no genes.")
    extra = [c for c in header if c not in GENE_COLUMNS]
    if extra:
        log.debug("%s: ignoring %d non-gene columns: %s", path, len(extra), ", ".join(extra))

    strand = frame["strand"].to_numpy(dtype=object)
    _raise_first(
        path,
        ~np.isin(strand, ["+", "-", "."]),
        header_line,
        lambda i: f"strand must be '+', '-' or '.', got {strand[i]!r}",
    )
    tss = frame["tss"].to_numpy()
    _raise_first(path, tss < 0, header_line, lambda i: f"negative tss {tss[i]}")
    if "gene_length" in header:
        length = frame["gene_length"].to_numpy()
        _raise_first(path, length <= 0, header_line, lambda i: f"gene_length must be positive or NA, got {length[i]}")
    else:
        frame["gene_length"] = np.nan
    if "gene_name" not in header:
        frame["gene_name"] = frame["gene_id"]
    else:
        missing = frame["gene_name"].isna()
        if missing.any():
            log.info("%s: %d genes have no gene_name; using their gene_id", path, int(missing.sum()))
            frame.loc[missing, "gene_name"] = frame.loc[missing, "gene_id"]

    frame = frame[list(GENE_COLUMNS)]
    frame, rows = _drop_unknown_chroms(path, frame, sizes, on_unknown_chrom)
    if sizes is not None:
        chroms = frame["chrom"].to_numpy(dtype=object)
        length = np.array([sizes.get(c, np.nan) for c in chroms], dtype=float)
        tss = frame["tss"].to_numpy()
        row_of = np.arange(len(frame)) if rows is None else rows

        def fail(mask: np.ndarray, describe: Callable[[int], str]) -> None:
            if mask.any():
                i = int(np.flatnonzero(mask)[0])
                raise _error(path, _line_of_row(path, int(row_of[i]), header_line), describe(i))

        fail(np.isnan(length), lambda i: f"unknown chromosome {chroms[i]!r} (not in the chromosome sizes)")
        fail(tss >= length, lambda i: f"tss {tss[i]} is outside {chroms[i]} (length {int(length[i])})")
    frame = _collapse_duplicates(
        path, frame, "gene_id", ("chrom", "tss", "strand", "gene_length"), header_line, "gene_id", rows
    )
    n_unknown = int((frame["strand"] == ".").sum())
    if n_unknown:
        log.warning("%s: %d of %d genes have unknown strand '.'", path, n_unknown, len(frame))
    return frame.astype({"gene_id": str, "gene_name": str, "chrom": str, "strand": str}).reset_index(drop=True)


def read_expression(
    path: PathLike, cell_types: Sequence[str] | None = None, *, any_columns: bool = False
) -> pd.DataFrame:
    """Read a Roadmap expression matrix (``57epigenomes.RPKM.pc(.gz)``) or a user's expression table.

    Parameters
    ----------
    path : str or PathLike
        Tab-separated with a header: ``gene_id`` then one RPKM column per epigenome (``E003``
        …). Columns whose name is not an EID (``E`` + 3 digits), e.g. ``gene_name``/``chrom`` of
        the vendored ``genes_rpkm_11.tsv.gz``, are ignored (logged).
    cell_types : sequence of str, optional
        EIDs to return (in this order); each must be a column of the file. Default: all.
    any_columns : bool
        Every column but ``gene_id`` is a value column, whatever its name (a user's own table,
        :func:`read_expression_table`); default: only EID columns.

    Returns
    -------
    pandas.DataFrame, shape (n_genes, n_cell_types)
        Index ``gene_id`` (str, unique, file order); one float64 column per EID.

    Raises
    ------
    ValueError
        ``file:line`` for a malformed row, a non-numeric, negative or non-finite RPKM, or a
        gene id listed twice with different values (both lines named; identical duplicate rows
        are collapsed with a logged count); a header without ``gene_id`` or without EID
        columns; a requested cell type that is not in the file.
    """
    path = _check_file(path)
    header, header_line = _read_header(path)
    _check_header(path, header, header_line, ("gene_id",))
    eids = [name for name in header if (name != "gene_id" if any_columns else EID_PATTERN.match(name))]
    if not eids:
        raise _error(
            path, header_line, f"header has no epigenome (EID) columns such as E003; found {', '.join(header)}"
        )
    ignored = [name for name in header if name != "gene_id" and name not in eids]
    if ignored:
        log.info("%s: ignoring %d columns that are not EIDs: %s", path, len(ignored), ", ".join(ignored))
    if cell_types is not None:
        cell_types = list(cell_types)
        absent = [c for c in cell_types if c not in eids]
        if absent:
            raise ValueError(f"{path}: has no expression column for {', '.join(absent)} (it has {', '.join(eids)}).")
        eids = cell_types
    kinds = [_STR if n == "gene_id" else _FLOAT if n in eids else _ANY for n in header]
    dtype: dict[str, Any] = {n: "float64" if n in eids else str for n in header}
    frame = _read_table(path, names=header, kinds=kinds, dtype=dtype, n_skip=header_line, trailing_tab=True)
    if frame.empty:
        raise ValueError(f"{path}: contains a header but no genes.")
    values = frame[eids].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        row, col = (int(x[0]) for x in np.nonzero(bad))
        raise _error(
            path,
            _line_of_row(path, row, header_line),
            f"RPKM of {eids[col]} must be finite and >= 0, got {values[row, col]}",
        )
    frame = frame[["gene_id", *eids]]
    frame = _collapse_duplicates(path, frame, "gene_id", eids, header_line, "gene_id")
    out = frame.set_index("gene_id")
    out.index = out.index.astype(str)
    out.columns.name = None
    return out.astype(np.float64)


def read_expression_table(path: PathLike, column: str | None = None) -> pd.Series:
    """Read a user's own expression table: ``gene_id`` and one value column (RPKM or on its scale).

    Parameters
    ----------
    path : str or PathLike
        Tab-separated with a header: ``gene_id`` (Ensembl ids, as in the gene table) and the
        value column(s); the same checks as :func:`read_expression` (finite, >= 0, no gene twice
        with different values; ``file:line`` in every error).
    column : str, optional
        The value column; default: the only column besides ``gene_id`` (several → an error naming them).

    Returns
    -------
    pandas.Series
        float64 values indexed by ``gene_id`` (str), named after the column.
    """
    if column is not None:
        return read_expression(path, [column], any_columns=True)[column]
    table = read_expression(path, any_columns=True)
    if table.shape[1] != 1:
        raise ValueError(
            f"{path}: has {table.shape[1]} value columns ({', '.join(table.columns)}); name the one to use "
            "(cell.expression.column) or keep only gene_id and one value column."
        )
    return table.iloc[:, 0]


def read_pchic(path: PathLike, chrom_sizes: ChromSizes = None) -> pd.DataFrame:
    """Read promoter-capture Hi-C fragment pairs (``pchic/{TISSUE}.tsv.gz``).

    Parameters
    ----------
    path : str or PathLike
        Tab-separated with a header holding ``bait_chrom bait_start bait_end other_chrom
        other_start other_end frequency`` (normalised interaction frequency); other columns
        are ignored. One row per (bait fragment, interacting fragment) pair.
    chrom_sizes : mapping or path, optional
        If given, both fragments must lie on listed chromosomes and end within them.

    Returns
    -------
    pandas.DataFrame, shape (n_pairs, 7)
        The seven columns above: chromosomes as str, coordinates int64, frequency float64.

    Raises
    ------
    ValueError
        ``file:line`` for a malformed row, a bad fragment (negative start, start >= end,
        unknown chromosome, beyond the chromosome end) or a non-finite frequency; a file with
        no pairs.
    """
    path = _check_file(path)
    sizes = _resolve_chrom_sizes(chrom_sizes)
    header, header_line = _read_header(path)
    _check_header(path, header, header_line, PCHIC_COLUMNS)
    kind_of = {
        "bait_chrom": _STR,
        "other_chrom": _STR,
        "bait_start": _INT,
        "bait_end": _INT,
        "other_start": _INT,
        "other_end": _INT,
        "frequency": _FLOAT,
    }
    kinds = [kind_of.get(n, _ANY) for n in header]
    dtype = {n: "int64" if kind_of.get(n) == _INT else "float64" if n == "frequency" else str for n in header}
    frame = _read_table(path, names=header, kinds=kinds, dtype=dtype, n_skip=header_line, trailing_tab=True)
    if frame.empty:
        raise ValueError(f"{path}: contains a header but no fragment pairs.")
    freq = frame["frequency"].to_numpy()
    _raise_first(path, ~np.isfinite(freq), header_line, lambda i: f"frequency must be finite, got {freq[i]}")
    for side in ("bait", "other"):
        _check_intervals(
            path, frame, header_line, sizes, chrom=f"{side}_chrom", start=f"{side}_start", end=f"{side}_end"
        )
    return frame[list(PCHIC_COLUMNS)].astype({"bait_chrom": str, "other_chrom": str}).reset_index(drop=True)


def write_pchic(frame: pd.DataFrame, path: PathLike) -> Path:
    """Write fragment pairs in the ``pchic/{TISSUE}.tsv.gz`` format that :func:`read_pchic` reads.

    Parameters
    ----------
    frame : pandas.DataFrame
        With the columns of :data:`PCHIC_COLUMNS` (others are not written).
    path : str or PathLike
        Output file, gzip-compressed when its name ends in ``.gz``; written atomically.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from ..utils import atomic_path

    missing = [c for c in PCHIC_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"write_pchic: frame lacks column(s) {', '.join(missing)}.")
    path = Path(path)
    with atomic_path(path) as tmp:
        frame[list(PCHIC_COLUMNS)].to_csv(
            tmp, sep="\t", index=False, compression="gzip" if path.name.endswith(".gz") else None
        )
    return path


# --------------------------------------------------------------------------------------------
# Chromoformer's pickles (preprocessing/annotations in dohlee/chromoformer)
# --------------------------------------------------------------------------------------------
class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds dicts/sets/tuples/defaultdicts and NumPy scalars.

    Pickles can run arbitrary code; Chromoformer's annotation pickles hold nothing but
    containers of strings and numbers, so anything else is refused.
    """

    _ALLOWED = {
        ("collections", "defaultdict"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _load_pickle(path: PathLike, kind: type) -> Any:
    path = _check_file(path)
    try:
        with open(path, "rb") as handle:
            obj = _RestrictedUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as err:
        raise ValueError(f"{path}: is not a readable Chromoformer pickle ({type(err).__name__}: {err}).") from err
    if not isinstance(obj, kind):
        raise ValueError(f"{path}: expected a pickled {kind.__name__}, found {type(obj).__name__}.")
    if not obj:
        raise ValueError(f"{path}: the pickled {kind.__name__} is empty.")
    return obj


_INTERVAL_RE = re.compile(r"^([^:\s]+):(\d+)-(\d+)$")


def _parse_interval(path: Path, text: Any, what: str) -> tuple[str, int, int]:
    """``"chr1:100-200"`` -> ``("chr1", 100, 200)``; ValueError naming the file and entry."""
    match = _INTERVAL_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{path}: {what} {text!r} is not an interval 'chrom:start-end'.")
    chrom, start, end = match.group(1), int(match.group(2)), int(match.group(3))
    if start >= end:
        raise ValueError(f"{path}: {what} {text!r} has start >= end.")
    return chrom, start, end


def read_chromoformer_pchic(
    frag2neighbors_path: PathLike, pair2score_path: PathLike, chrom_sizes: ChromSizes = None
) -> pd.DataFrame:
    """Convert Chromoformer's 3DIV pickles to the fragment-pair table of :func:`read_pchic`.

    Chromoformer's preprocessing downloads, per 3DIV tissue, ``{TISSUE}_frag2neighbors.pickle``
    (``dict``: bait fragment ``"chrom:start-end"`` -> ``set`` of interacting fragments) and
    ``{TISSUE}_pair2score.pickle`` (``dict``: ``(bait, other)`` -> normalised interaction
    frequency) and looks scores up for the pairs of ``frag2neighbors`` (its
    ``prepare_train_metadata.get_neighbors``). This function does the same, one row per pair.

    Parameters
    ----------
    frag2neighbors_path, pair2score_path : str or PathLike
        The two pickles (loaded with a restricted unpickler: containers, strings and numbers only).
    chrom_sizes : mapping or path, optional
        If given, fragments must lie on listed chromosomes and end within them.

    Returns
    -------
    pandas.DataFrame, shape (n_pairs, 7)
        :data:`PCHIC_COLUMNS`, sorted by bait then other fragment (pickled sets are unordered).
        Coordinates are taken as written, as 0-based half-open intervals: that is how
        Chromoformer's ``extract_signals.py`` slices the per-base depth (``signal[start:end]``).

    Raises
    ------
    ValueError
        Unreadable/empty pickle, a malformed interval, a pair of ``frag2neighbors`` without a
        score (naming the pair), a non-finite score, or a fragment outside ``chrom_sizes``.
        Scored pairs absent from ``frag2neighbors`` are not used (as in Chromoformer) and counted
        in the log.
    """
    f2n_path, p2s_path = Path(frag2neighbors_path), Path(pair2score_path)
    frag2neighbors = _load_pickle(f2n_path, dict)
    pair2score = _load_pickle(p2s_path, dict)
    rows = []
    for bait, neighbors in frag2neighbors.items():
        b = _parse_interval(f2n_path, bait, "fragment")
        if isinstance(neighbors, str) or not hasattr(neighbors, "__iter__"):
            raise ValueError(f"{f2n_path}: neighbors of {bait!r} must be a set of intervals, got {neighbors!r}.")
        for other in neighbors:
            o = _parse_interval(f2n_path, other, f"neighbor of {bait!r}")
            if (bait, other) not in pair2score:
                raise ValueError(f"{p2s_path}: no score for the pair ({bait!r}, {other!r}) listed in {f2n_path}.")
            score = float(pair2score[(bait, other)])
            if not math.isfinite(score):
                raise ValueError(f"{p2s_path}: score of ({bait!r}, {other!r}) is {score}.")
            rows.append((*b, *o, score))
    unused = len(pair2score) - len(rows)
    if unused:
        log.info("%s: %d scored pairs are not in %s and are not used", p2s_path, unused, f2n_path.name)
    frame = pd.DataFrame(rows, columns=list(PCHIC_COLUMNS))
    frame = frame.sort_values(list(PCHIC_COLUMNS[:6]), kind="stable").reset_index(drop=True)
    sizes = _resolve_chrom_sizes(chrom_sizes)
    for side in ("bait", "other"):
        c, b, e = (frame[f"{side}_{x}"].to_numpy() for x in ("chrom", "start", "end"))
        _check_intervals(
            f2n_path,
            frame,
            0,
            sizes,
            chrom=f"{side}_chrom",
            start=f"{side}_start",
            end=f"{side}_end",
            where=lambda i, c=c, b=b, e=e, side=side: f"{side} fragment {c[i]}:{b[i]}-{e[i]}",
        )
    return frame.astype({"bait_chrom": str, "other_chrom": str})


#: Columns of :func:`read_ensg2tss`.
ENSG2TSS_COLUMNS: tuple[str, ...] = ("gene_id", "rank", "chrom", "tss", "strand")


def read_ensg2tss(path: PathLike) -> pd.DataFrame:
    """Read Chromoformer's ``ensg2tss.pickle``: every TSS of each gene, the chosen one first.

    Chromoformer's ``preprocessing/scripts/prepare_ensg2tss.py`` writes, for each protein-coding
    gene, the TSSs of its transcripts sorted by transcript length (longest first) as
    ``(chrom, tss, tss + 1, strand)`` tuples; its training metadata takes the first as the gene's TSS
    and pools the bait fragments of *all* of them when choosing pCREs (``get_neighbors``). Loaded
    with the restricted unpickler (containers, strings and numbers only: a pickle can run code).

    Returns
    -------
    pandas.DataFrame, shape (n_tss, 5)
        :data:`ENSG2TSS_COLUMNS`: ``rank`` 0 is the chosen TSS; ``tss`` 0-based; genes in file
        order, a gene's TSSs in its list's order (a TSS listed twice for a gene keeps its first rank).

    Raises
    ------
    ValueError
        An unreadable, empty or unsafe pickle (naming the refused class), a gene whose value is not a
        list of ``(chrom, start, end, strand)`` tuples with ``end == start + 1`` and strand ``+``/``-``.
    """
    path = Path(path)
    mapping = _load_pickle(path, dict)
    rows = []
    for gene, tsss in mapping.items():
        if not isinstance(gene, str) or not isinstance(tsss, (list, tuple)) or not tsss:
            raise ValueError(f"{path}: gene {gene!r} must map to a non-empty list of TSS tuples, got {tsss!r}.")
        seen = set()
        for rank, entry in enumerate(tsss):
            ok = isinstance(entry, (list, tuple)) and len(entry) == 4
            if ok:
                chrom, start, end, strand = entry
                try:
                    start, end = int(start), int(end)
                except (TypeError, ValueError):
                    ok = False
                ok = ok and isinstance(chrom, str) and end == start + 1 and start >= 0 and strand in ("+", "-")
            if not ok:
                raise ValueError(
                    f"{path}: TSS {rank + 1} of gene {gene!r} is not (chrom, tss, tss + 1, strand): {entry!r}."
                )
            if (chrom, start) not in seen:
                seen.add((chrom, start))
                rows.append((gene, rank, chrom, start, strand))
    frame = pd.DataFrame(rows, columns=list(ENSG2TSS_COLUMNS))
    return frame.astype({"gene_id": str, "rank": np.int64, "chrom": str, "tss": np.int64, "strand": str})


def read_tss2fragment(path: PathLike) -> pd.DataFrame:
    """Read Chromoformer's ``tss2fragment.pickle`` (TSS interval -> its bait fragment).

    Parameters
    ----------
    path : str or PathLike
        A pickled ``dict`` mapping ``"chrom:tss_start-tss_end"`` to ``"chrom:frag_start-frag_end"``
        (keys come from Chromoformer's ``ensg2tss``; a gene's bait is the fragment holding its TSS).

    Returns
    -------
    pandas.DataFrame, shape (n_tss, 6)
        :data:`TSS2FRAGMENT_COLUMNS`, chromosomes as str, coordinates int64, sorted by TSS.

    Raises
    ------
    ValueError
        Unreadable/empty pickle, a malformed interval, or a fragment on another chromosome than
        its TSS or not containing the TSS start. TSSs mapped to ``None`` (no bait fragment; 378
        of 30,448 in Chromoformer's file) are left out with a logged count.
    """
    path = Path(path)
    mapping = _load_pickle(path, dict)
    rows = []
    n_none = 0
    for tss, fragment in mapping.items():
        t = _parse_interval(path, tss, "TSS")
        if fragment is None:  # the real file maps 378 of 30,448 TSSs to None: no bait fragment
            n_none += 1
            continue
        f = _parse_interval(path, fragment, f"fragment of TSS {tss!r}")
        if t[0] != f[0] or not f[1] <= t[1] < f[2]:
            raise ValueError(f"{path}: fragment {fragment!r} does not contain TSS {tss!r}.")
        rows.append((*t, *f))
    if n_none:
        log.info("%s: %d of %d TSSs have no fragment (None) and are not returned", path, n_none, len(mapping))
    frame = pd.DataFrame(rows, columns=list(TSS2FRAGMENT_COLUMNS))
    frame = frame.sort_values(["tss_chrom", "tss_start", "tss_end"], kind="stable").reset_index(drop=True)
    return frame.astype({"tss_chrom": str, "frag_chrom": str})
