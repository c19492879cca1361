"""Readers reject what they cannot parse (issue 17 item 4), each probe naming the file and line.

Every case here was accepted silently or failed with a bare/unlocated error before: extra leading
columns became a pandas index, coordinates beyond int64 raised ``OverflowError``, a truncated gzip
in the peak/region readers raised ``EOFError``, binary garbage gave no line.
"""

from __future__ import annotations

import gzip
import re

import pytest

from chromexp.baselines import peaks
from chromexp.data import io, signal

READS = "chr1\t10\t46\tN\t1000\t+\nchr1\t0\t36\tN\t1000\t-\nchr2\t100\t136\tN\t1000\t-\n"
SIZES = {"chr1": 1_000, "chr2": 500}
NARROW = "chr1\t100\t200\tp1\t0\t.\t5.5\t3.1\t2.0\t50\n" * 400


def at(path, line) -> str:
    return re.escape(f"{path}:{line}: ")


# --------------------------------------------------------------------------------------------
# extra leading columns must not become an index
# --------------------------------------------------------------------------------------------
def test_tagalign_whole_file_on_one_line(tmp_path):
    path = tmp_path / "one.tagAlign"
    path.write_text(READS.replace("\n", "\t").rstrip("\t") + "\n")
    with pytest.raises(ValueError, match=at(path, 1) + "expected 6 tab-separated columns.*found 18"):
        io.read_tagalign(path)


def test_bedgraph_with_ucsc_bin_column(tmp_path):
    path = tmp_path / "bin.bedGraph"
    path.write_text("585\tchr1\t0\t10\t1\n585\tchr1\t10\t20\t2\n")
    with pytest.raises(ValueError, match=at(path, 1) + "expected 4 tab-separated columns.*found 5"):
        io.read_bedgraph(path)


def test_expression_with_line_numbers(tmp_path):
    path = tmp_path / "rpkm.tsv"
    path.write_text("gene_id\tE003\n1\tENSG1\t2.5\n2\tENSG2\t0.5\n")
    with pytest.raises(ValueError, match=at(path, 2) + "expected 2 tab-separated columns.*found 3"):
        io.read_expression(path)


def test_gene_table_with_ucsc_bin_column(tmp_path):
    path = tmp_path / "genes.tsv"
    path.write_text("gene_id\tchrom\ttss\tstrand\n585\tG1\tchr1\t100\t+\n")
    with pytest.raises(ValueError, match=at(path, 2) + "expected 4 tab-separated columns.*found 5"):
        io.read_gene_table(path)


def test_pchic_with_extra_leading_column(tmp_path):
    path = tmp_path / "pchic.tsv"
    head = "bait_chrom\tbait_start\tbait_end\tother_chrom\tother_start\tother_end\tfrequency\n"
    path.write_text(head + "7\tchr1\t0\t10\tchr1\t50\t60\t2.0\n")
    with pytest.raises(ValueError, match=at(path, 2) + "expected 7 tab-separated columns.*found 8"):
        io.read_pchic(path)


# --------------------------------------------------------------------------------------------
# numbers beyond int64, hexadecimal, garbage
# --------------------------------------------------------------------------------------------
HUGE = "99999999999999999999"


@pytest.mark.parametrize(
    ("reader", "text", "line"),
    [
        (io.read_tagalign, READS + f"chr1\t{HUGE}\t{HUGE}9\tN\t1000\t+\n", 4),
        (io.read_bedgraph, f"chr1\t0\t{HUGE}\t1\n", 1),
        (io.read_chrom_sizes, f"chr1\t1000\nchr2\t{HUGE}\n", 2),
        (io.read_gene_table, f"gene_id\tchrom\ttss\tstrand\nG1\tchr1\t{HUGE}\t+\n", 2),
        (io.read_peaks, f"chr1\t{HUGE}\t1\tp\t0\t.\t1\t1\t1\t1\n", 1),
        (io.read_regions, f"chr1\t0\t10\nchr1\t0\t{HUGE}\n", 2),
    ],
)
def test_beyond_int64_is_a_located_value_error(tmp_path, reader, text, line):
    path = tmp_path / "x.narrowPeak"
    path.write_text(text)
    with pytest.raises(ValueError, match=at(path, line) + ".*(out of range|beyond 64 bits)"):
        reader(path)


def test_hexadecimal_coordinates_are_refused(tmp_path):
    # pyarrow alone would read 0x10 as 16
    path = tmp_path / "hex.tagAlign"
    path.write_text(READS + "chr1\t0x10\t46\tN\t1000\t+\n")
    with pytest.raises(ValueError, match=at(path, 4) + "column 'start': expected an integer, got '0x10'"):
        io.read_tagalign(path)


@pytest.mark.parametrize("reader", [io.read_tagalign, io.read_bedgraph, io.read_expression, io.read_regions])
def test_binary_garbage_names_file_and_line(tmp_path, reader):
    path = tmp_path / "garbage.txt"
    path.write_bytes(b"gene_id\tE003\n" + b"\x00\xff\xfe\x80\x81\tabc\n" * 3)
    with pytest.raises(ValueError, match=re.escape(str(path)) + r":\d+: "):
        reader(path)


def test_invalid_utf8_is_located(tmp_path):
    path = tmp_path / "latin1.tagAlign"
    path.write_bytes(READS.encode() + "chré\t1\t37\tN\t1000\t+\n".encode("latin-1"))
    with pytest.raises(ValueError, match=at(path, 4) + "is not UTF-8"):
        io.read_tagalign(path)


# --------------------------------------------------------------------------------------------
# damaged gzip: a ValueError naming the file and the byte offset, in every reader
# --------------------------------------------------------------------------------------------
def _truncated(path, text):
    data = gzip.compress(text.encode())
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


@pytest.mark.parametrize(
    ("reader", "name", "text"),
    [
        (peaks.read_peaks, "p.narrowPeak.gz", NARROW),
        (signal.read_regions, "r.bed.gz", "chr1\t0\t10\n" * 3000),
        (io.read_tagalign, "t.tagAlign.gz", READS * 1000),
        (io.read_bedgraph, "b.bedGraph.gz", "chr1\t0\t10\t1\n" * 3000),
        (io.read_expression, "e.tsv.gz", "gene_id\tE003\n" + "".join(f"G{i}\t1.5\n" for i in range(3000))),
    ],
)
def test_truncated_gzip_names_file_and_byte_offset(tmp_path, reader, name, text):
    path = _truncated(tmp_path / name, text)
    size = path.stat().st_size
    with pytest.raises(
        ValueError, match=re.escape(f"{path}: the gzip stream is truncated or corrupt") + f".*byte {size}"
    ):
        reader(path)


def test_corrupt_gzip_names_the_offset(tmp_path):
    data = bytearray(gzip.compress((READS * 2000).encode()))
    data[200:260] = b"\x00" * 60
    path = tmp_path / "c.tagAlign.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=re.escape(f"{path}: the gzip stream is truncated or corrupt") + r".*byte \d+"):
        io.read_tagalign(path)


def test_bgzip_multi_member_is_read(tmp_path):
    path = tmp_path / "multi.tagAlign.gz"
    path.write_bytes(gzip.compress(READS.encode()) + gzip.compress(READS.encode()))
    assert len(io.read_tagalign(path)) == 6


def test_errors_report_the_earliest_bad_line(tmp_path):
    # a bad strand on line 3 and start > end on line 2: the first line in the file is named
    path = tmp_path / "two.tagAlign"
    path.write_text("chr1\t0\t36\tN\t1000\t+\nchr1\t50\t10\tN\t1000\t+\nchr1\t0\t36\tN\t1000\t*\n")
    with pytest.raises(ValueError, match=at(path, 2) + re.escape("start (50) must be < end (10)")):
        io.read_tagalign(path)


def test_readers_live_in_io():
    assert peaks.read_peaks is io.read_peaks and signal.read_regions is io.read_regions
    assert peaks.peak_format_of is io.peak_format_of


def test_chrom_sizes_with_line_numbers(tmp_path):
    path = tmp_path / "hg19.chrom.sizes"
    path.write_text("1\tchr1\t1000\n2\tchr2\t500\n")
    with pytest.raises(ValueError, match=at(path, 1) + "expected 2 tab-separated columns.*found 3"):
        io.read_chrom_sizes(path)


def test_invalid_utf8_in_an_unused_column_is_located(tmp_path):
    path = tmp_path / "name.tagAlign"
    path.write_bytes(READS.encode() + b"chr1\t1\t37\t\xff\t1000\t+\n")
    with pytest.raises(ValueError, match=at(path, 4) + "is not UTF-8"):
        io.read_tagalign(path)


def test_uppercase_hex_next_to_chrx_is_refused(tmp_path):
    path = tmp_path / "hexx.tagAlign"
    path.write_text("chrX\t10\t46\tN\t1000\t+\n" * 3 + "chrX\t0X10\t46\tN\t1000\t+\n")
    with pytest.raises(ValueError, match=at(path, 4) + "column 'start': expected an integer, got '0X10'"):
        io.read_tagalign(path)
