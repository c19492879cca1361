"""Property-based fuzz test of the tagAlign, bedGraph, peak, binned-count and expression readers (issue 17 item 4).

Each example mutates a small valid file (inserted tokens such as tabs, newlines, signs, huge or
hexadecimal numbers, ``nan``, binary bytes; deleted or duplicated bytes and lines; truncation;
optionally gzip, possibly truncated) and checks the reader against an independent, deliberately
simple parser written here from the documented grammar (``chromexp.data.io`` module docstring):

* the oracle accepts -> the reader returns exactly the oracle's rows;
* the oracle finds a bad line -> the reader raises ``ValueError("<file>:<that line>: ...")``;
* the file has no usable record -> ``ValueError("<file>: ...")``;
* the gzip stream is damaged -> ``ValueError`` naming the file and a byte offset.

Fixed seed (``derandomize``); ~150 examples per reader in CI, 3,000 with ``--runslow``.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as hypothesis_event
from hypothesis import strategies as st

from chromexp.data import io

SIZES = {"chr1": 1_000, "chr2": 500}

# --------------------------------------------------------------------------------------------
# the grammar, written independently of chromexp.data.io
# --------------------------------------------------------------------------------------------
INT = re.compile(r" *-?[0-9]+ *")
NUMBER = r" *[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?|inf|infinity"
ARROW_FLOAT = re.compile(NUMBER + r"|nan) *", re.IGNORECASE)  # BED-like files (pyarrow)
PANDAS_FLOAT = re.compile(NUMBER + r") *", re.IGNORECASE)  # header tables (pandas)


class Bad(Exception):
    """The oracle's verdict: ``line`` is the 1-based bad line, None for a file-level error."""

    def __init__(self, line: int | None):
        super().__init__(line)
        self.line = line


def lines_of(data: bytes) -> list[str]:
    """Universal-newline split; a line that is not UTF-8 is bad."""
    parts = re.split(rb"\r\n|\r|\n", data)
    if parts and parts[-1] == b"":
        parts.pop()
    out = []
    for raw in parts:
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)  # the caller reports it when it reaches this line
    return out


def to_int(text: str) -> int | None:
    if not INT.fullmatch(text):
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def bed_records(data: bytes, n_fields: int, check) -> list[tuple[int, list[str]]]:
    """``(line, fields)`` of the data lines after the leading track/browser/# lines.

    ``check(fields)`` is True when the fields are lexically valid; raises Bad at the first bad line.
    """
    lines = lines_of(data)
    k = 0
    while k < len(lines) and lines[k] is not None and lines[k].startswith(("track", "browser", "#")):
        k += 1
    records = []
    for number in range(k + 1, len(lines) + 1):
        line = lines[number - 1]
        if line is None:
            raise Bad(number)
        if line == "":
            continue
        fields = line.split("\t")
        if len(fields) != n_fields or not check(fields):
            raise Bad(number)
        records.append((number, fields))
    return records


def first_semantic(records, problems) -> None:
    """Raise Bad at the earliest line where ``problems(fields)`` is true."""
    for number, fields in records:
        if problems(fields):
            raise Bad(number)


def oracle_tagalign(data: bytes):
    """Reads with ``chrom_sizes=SIZES, on_unknown_chrom="drop", past_end="clip"``."""
    records = bed_records(
        data, 6, lambda f: f[0] != "" and f[5] != "" and to_int(f[1]) is not None and to_int(f[2]) is not None
    )
    first_semantic(records, lambda f: f[5] not in ("+", "-") or int(f[1]) < 0 or int(f[1]) >= int(f[2]))
    if not records:
        raise Bad(None)
    rows = []
    for _, f in records:
        chrom, start, end = f[0], int(f[1]), int(f[2])
        if chrom not in SIZES or start >= SIZES[chrom]:
            continue  # unknown chromosome, or starts past the end: skipped
        rows.append((chrom, start, min(end, SIZES[chrom]), f[5]))
    if not rows:
        raise Bad(None)
    return rows


def oracle_bedgraph(data: bytes):
    """Intervals with ``chrom_sizes=SIZES`` (unknown chromosomes and overhangs are errors)."""
    records = bed_records(
        data,
        4,
        lambda f: f[0] != "" and to_int(f[1]) is not None and to_int(f[2]) is not None and ARROW_FLOAT.fullmatch(f[3]),
    )

    def problem(f):
        start, end, value = int(f[1]), int(f[2]), float(f[3])
        return start < 0 or start >= end or not math.isfinite(value) or f[0] not in SIZES or end > SIZES[f[0]]

    first_semantic(records, problem)
    if not records:
        raise Bad(None)
    return [(f[0], int(f[1]), int(f[2]), float(f[3])) for _, f in records]


def oracle_narrowpeak(data: bytes):
    numbers = (6, 7, 8)
    records = bed_records(
        data,
        10,
        lambda f: (
            f[0] != ""
            and to_int(f[1]) is not None
            and to_int(f[2]) is not None
            and all(ARROW_FLOAT.fullmatch(f[i]) for i in numbers)
        ),
    )
    first_semantic(
        records,
        lambda f: int(f[1]) < 0 or int(f[2]) <= int(f[1]) or not all(math.isfinite(float(f[i])) for i in numbers),
    )
    return [(f[0], int(f[1]), int(f[2]), f[3], float(f[6]), float(f[7]), float(f[8])) for _, f in records]


def oracle_binned(data: bytes):
    """A pre-binned count table with ``chrom_sizes=SIZES``: ``[header, *rows]``."""
    lines = lines_of(data)
    number, header = 0, None
    while number < len(lines):
        number += 1
        line = lines[number - 1]
        if line is None:
            raise Bad(number)
        if line != "" and not line.startswith("#"):
            header = line.split("\t")
            break
    if header is None:
        raise Bad(None)
    header_line = number
    if header[:3] != ["chrom", "start", "end"] or len(header) < 4:
        raise Bad(header_line)
    if any(name.strip() == "" for name in header) or len(set(header)) != len(header):
        raise Bad(header_line)
    records = []
    for number in range(header_line + 1, len(lines) + 1):
        line = lines[number - 1]
        if line is None:
            raise Bad(number)
        if line == "":
            continue
        fields = line.split("\t")
        if len(fields) != len(header) or fields[0] == "" or any(to_int(f) is None for f in fields[1:]):
            raise Bad(number)
        records.append((number, fields[0], [int(f) for f in fields[1:]]))
    if not records:
        raise Bad(None)
    size = records[0][2][1] - records[0][2][0]
    seen_blocks: set[str] = set()
    previous = None  # (chrom, start, end) of the previous bin
    block_start = 0
    for number, chrom, values in records:
        start, end, counts = values[0], values[1], values[2:]
        new_block = previous is None or chrom != previous[0]
        problems = [
            start < 0,
            start >= end,
            any(c < 0 for c in counts),
            end - start != size,
            new_block and chrom in seen_blocks,
            not new_block and start < previous[1],
            not new_block and start < previous[2],
            chrom not in SIZES or end > SIZES[chrom],
        ]
        if new_block:
            seen_blocks.add(chrom)
            block_start = start
        problems.append((start - block_start) % max(size, 1) != 0)
        if any(problems):
            raise Bad(number)
        previous = (chrom, start, end)
    for j in range(len(header) - 3):
        if sum(values[2 + j] for _, _, values in records) == 0:
            raise Bad(None)  # an empty track
    return [tuple(header), *[(chrom, *values) for _, chrom, values in records]]


def oracle_expression(data: bytes):
    lines = lines_of(data)
    number = 0
    header = None
    while number < len(lines):
        number += 1
        if lines[number - 1] is None:
            raise Bad(number)
        if lines[number - 1] != "":
            header = lines[number - 1].rstrip().split("\t")
            break
    if header is None:
        raise Bad(None)
    header_line = number
    eids = [h for h in header if re.fullmatch(r"E\d{3}", h)]
    if len(set(header)) != len(header) or "gene_id" not in header or not eids:
        raise Bad(header_line)
    records = []
    for number in range(header_line + 1, len(lines) + 1):
        line = lines[number - 1]
        if line is None:
            raise Bad(number)
        if line == "":
            continue
        fields = line.split("\t")
        if len(fields) == len(header) + 1 and fields[-1].strip() == "":
            fields = fields[:-1]
        if len(fields) != len(header):
            raise Bad(number)
        row = dict(zip(header, fields))
        if row["gene_id"] == "" or not all(PANDAS_FLOAT.fullmatch(row[e]) for e in eids):
            raise Bad(number)
        records.append((number, row["gene_id"], tuple(float(row[e]) for e in eids)))
    if not records:
        raise Bad(None)
    for number, _, values in records:
        if not all(math.isfinite(v) and v >= 0 for v in values):
            raise Bad(number)
    first: dict[str, tuple] = {}
    for number, gene, values in records:
        if gene in first and first[gene] != values:
            raise Bad(number)
        first.setdefault(gene, values)
    return [(gene, *values) for gene, values in first.items()]


# --------------------------------------------------------------------------------------------
# the readers, as row lists comparable with the oracles
# --------------------------------------------------------------------------------------------
def rows_tagalign(path):
    f = io.read_tagalign(path, SIZES, on_unknown_chrom="drop", past_end="clip")
    return list(zip(f["chrom"].astype(str), f["start"].tolist(), f["end"].tolist(), f["strand"].astype(str)))


def rows_bedgraph(path):
    f = io.read_bedgraph(path, SIZES)
    return list(zip(f["chrom"].astype(str), f["start"].tolist(), f["end"].tolist(), f["value"].tolist()))


def rows_narrowpeak(path):
    f = io.read_peaks(path, "narrowPeak")
    cols = ["chrom", "start", "end", "name", "signal_value", "p_value", "q_value"]
    return [tuple(r) for r in f[cols].itertuples(index=False, name=None)]


def rows_binned(path):
    f = io.read_binned_counts(path, SIZES)
    return [tuple(f.columns), *[(str(r[0]), *map(int, r[1:])) for r in f.itertuples(index=False, name=None)]]


def rows_expression(path):
    f = io.read_expression(path)
    return [(gene, *values) for gene, values in zip(f.index.tolist(), f.to_numpy().tolist())]


VALID = {
    "tagalign": (
        b"track name=reads\nchr1\t10\t46\tN\t1000\t+\nchr2\t470\t506\tN\t1000\t-\n"
        b"chrM\t5\t41\tN\t1000\t+\nchr1\t964\t1000\tN\t1000\t-\nchr2\t0\t36\tN\t1000\t+\n"
    ),
    "bedgraph": b"track type=bedGraph\nchr1\t0\t10\t1\nchr1\t10\t25\t2.5\nchr2\t100\t200\t0\n",
    "narrowpeak": (
        b"chr1\t100\t200\tp1\t0\t.\t5.5\t3.1\t2.0\t50\nchr1\t300\t400\tp2\t0\t.\t7.25\t-1\t-1\t-1\n"
        b"chr2\t10\t20\tp3\t0\t+\t1e2\t0\t0\t5\n"
    ),
    "binned": (
        b"# counts per bin\nchrom\tstart\tend\tH3K4me3\tH3K27me3\nchr1\t0\t100\t5\t0\nchr1\t100\t200\t7\t1\n"
        b"chr1\t300\t400\t2\t0\nchr2\t0\t100\t1\t3\nchr2\t100\t200\t0\t0\n"
    ),
    "expression": b"gene_id\tE003\tE116\tgene_name\nENSG1\t2.5\t0\tA\t\nENSG2\t0.25\t1e3\tB\t\nENSG1\t2.5\t0\tA2\t\n",
}
ORACLES = {
    "tagalign": (oracle_tagalign, rows_tagalign),
    "bedgraph": (oracle_bedgraph, rows_bedgraph),
    "narrowpeak": (oracle_narrowpeak, rows_narrowpeak),
    "binned": (oracle_binned, rows_binned),
    "expression": (oracle_expression, rows_expression),
}
TOKENS = [
    b"\t", b"\n", b"\r", b"\r\n", b" ", b"-", b"+", b"0", b"7", b".", b"e", b"E", b"x", b"0x1f",
    b"nan", b"inf", b"Infinity", b"NA", b"99999999999999999999", b"9223372036854775808", b"chrM",
    b"chr1", b"#", b"track ", b"\x00", b"\xff", b"\xc3\xa9", b"\x1f\x8b", b"E003", b"gene_id", b"+\t",
]  # fmt: skip

mutation = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.sampled_from(TOKENS)),
    st.tuples(st.just("replace"), st.integers(0, 10_000), st.sampled_from(TOKENS)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 6)),
    st.tuples(st.just("dupline"), st.integers(0, 10_000), st.integers(0, 10_000)),
    st.tuples(st.just("truncate"), st.integers(0, 10_000), st.just(0)),
)


def mutate(data: bytes, ops) -> bytes:
    for op, a, b in ops:
        i = a % (len(data) + 1)
        if op == "insert":
            data = data[:i] + b + data[i:]
        elif op == "replace":
            data = data[:i] + b + data[i + 1 :]
        elif op == "delete":
            data = data[:i] + data[i + b :]
        elif op == "dupline":
            lines = data.split(b"\n")
            line = lines[a % len(lines)]
            j = b % (len(lines) + 1)
            data = b"\n".join([*lines[:j], line, *lines[j:]])
        elif op == "truncate":
            data = data[: max(i, len(data) // 2)]
    return data


def gzip_ok(data: bytes) -> bool:
    """Whether ``data`` (gzip) decompresses completely (every member; independent of chromexp)."""
    try:
        while data:
            d = zlib.decompressobj(wbits=31)
            d.decompress(data)
            if not d.eof:
                return False
            data = d.unused_data
        return True
    except zlib.error:
        return False


def event(name: str) -> None:
    """Count the outcome (``--hypothesis-show-statistics``); a no-op outside hypothesis."""
    try:
        hypothesis_event(name)
    except Exception:  # InvalidArgument outside a hypothesis test (the regression examples)
        pass


def check(kind: str, tmp_path, ops, compress: str) -> None:
    oracle, read = ORACLES[kind]
    data = mutate(VALID[kind], ops)
    name = {"narrowpeak": "x.narrowPeak"}.get(kind, f"x.{kind}")
    path = tmp_path / name
    if compress != "plain":
        packed = gzip.compress(data, mtime=0)
        if compress == "gzip-truncated":
            packed = packed[: len(packed) - 1 - len(packed) // 3]
        path.write_bytes(packed)
        if not gzip_ok(packed):
            event("damaged gzip")
            with pytest.raises(
                ValueError, match=re.escape(f"{path}: the gzip stream is truncated or corrupt") + r".*byte \d+"
            ):
                read(path)
            return
    else:
        if data[:2] == b"\x1f\x8b":  # a mutation made a plain file look like gzip
            return
        path.write_bytes(data)
    try:
        expected = oracle(data)
    except Bad as bad:
        event("bad line" if bad.line is not None else "no record")
        where = f"{path}:{bad.line}: " if bad.line is not None else f"{path}: "
        with pytest.raises(ValueError) as info:
            read(path)
        assert str(info.value).startswith(where), (data, str(info.value))
        return
    event("parsed")
    assert read(path) == expected, data


fuzz_settings = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
compression = st.sampled_from(["plain", "plain", "plain", "gzip", "gzip-truncated"])
ops_strategy = st.lists(mutation, min_size=0, max_size=4)


@pytest.mark.parametrize("kind", sorted(ORACLES))
def test_unmutated_files_parse(tmp_path, kind):
    """Sanity: the oracle and the reader agree on the valid files (so the fuzz compares rows)."""
    oracle, read = ORACLES[kind]
    path = tmp_path / {"narrowpeak": "x.narrowPeak"}.get(kind, f"x.{kind}")
    path.write_bytes(VALID[kind])
    assert read(path) == oracle(VALID[kind]) and len(oracle(VALID[kind])) >= 2


@pytest.mark.parametrize("kind", sorted(ORACLES))
@fuzz_settings
@given(ops=ops_strategy, compress=compression)
def test_fuzz_reader_matches_oracle(tmp_path, kind, ops, compress):
    check(kind, tmp_path, ops, compress)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ORACLES))
@settings(fuzz_settings, max_examples=3000)
@given(ops=st.lists(mutation, min_size=0, max_size=8), compress=compression)
def test_fuzz_reader_matches_oracle_long(tmp_path, kind, ops, compress):
    check(kind, tmp_path, ops, compress)


# examples the long run found (kept as regression tests)
@pytest.mark.parametrize(
    ("kind", "ops"),
    [
        ("expression", [("insert", 1792, b" ")]),  # whitespace after the trailing tab
        ("narrowpeak", [("insert", 0, b"#"), ("truncate", 0, 0), ("truncate", 0, 0)]),  # only a comment line
    ],
)
def test_fuzz_regressions(tmp_path, kind, ops):
    check(kind, tmp_path, ops, "plain")
