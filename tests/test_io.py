"""Tests of chromexp.data.io: every reader round-trips a tiny file and rejects bad input with file:line."""

from __future__ import annotations

import gzip
import logging
import pickle
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexp.constants import CELL_TYPES
from chromexp.data import io
from chromexp.paths import resources_dir

DATA = Path(__file__).resolve().parent / "data"
SIZES = {"chr1": 1_000, "chr2": 500}
READS = (
    "chr2\t100\t136\tN\t1000\t-\n"  # unsorted on purpose
    "chr1\t10\t46\tN\t1000\t+\n"
    "chr1\t0\t36\tN\t1000\t-\n"
)


def write(path, text: str, gz: bool | None = None):
    """Write ``text`` to ``path``; gzip when the name ends in .gz (or ``gz`` says so)."""
    if gz if gz is not None else str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def error_at(path, line: int) -> str:
    """Regex for an error message naming ``path:line``."""
    return re.escape(f"{path}:{line}:")


# --------------------------------------------------------------------------------------------
# tagAlign
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["r.tagAlign.gz", "r.tagAlign"])
def test_tagalign_round_trip_unsorted(tmp_path, name):
    frame = io.read_tagalign(write(tmp_path / name, READS), SIZES)
    assert list(frame.columns) == list(io.TAGALIGN_COLUMNS)
    assert frame["chrom"].astype(str).tolist() == ["chr2", "chr1", "chr1"]  # file order kept
    assert frame["start"].tolist() == [100, 10, 0]
    assert frame["end"].tolist() == [136, 46, 36]
    assert frame["strand"].astype(str).tolist() == ["-", "+", "-"]
    assert frame["start"].dtype == np.int64 and frame["end"].dtype == np.int64
    assert isinstance(frame["chrom"].dtype, pd.CategoricalDtype)
    assert list(frame["strand"].cat.categories) == ["+", "-"]


def test_tagalign_gzip_detected_by_content_not_name(tmp_path):
    path = write(tmp_path / "misnamed.tagAlign", READS, gz=True)
    assert len(io.read_tagalign(path)) == 3


def test_tagalign_track_line_and_blank_lines(tmp_path):
    path = write(tmp_path / "t.tagAlign", "track name=x\n" + READS + "\n" + "chr1\t5\t41\tN\t1000\t+\n")
    assert io.read_tagalign(path)["start"].tolist() == [100, 10, 0, 5]


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("chr1\t10\t46\tN\t1000\t+\textra", "expected 6 tab-separated columns"),
        ("chr1\t10\t46\tN\t1000", "expected 6 tab-separated columns"),
        ("chr1 10 46 N 1000 +", "expected 6 tab-separated columns"),
        ("chr1\tten\t46\tN\t1000\t+", "column 'start': expected an integer, got 'ten'"),
        ("chr1\t10\t4.65e1\tN\t1000\t+", "column 'end': expected an integer"),
        ("chr1\t-5\t31\tN\t1000\t+", "negative start -5"),
        ("chr1\t46\t46\tN\t1000\t+", "start (46) must be < end (46)"),
        ("chr1\t10\t46\tN\t1000\t*", "strand must be '+' or '-', got '*'"),
        ("chrUn_gl000220\t10\t46\tN\t1000\t+", "unknown chromosome 'chrUn_gl000220'"),
        ("chr2\t480\t516\tN\t1000\t+", "end (516) is beyond the end of chr2 (length 500)"),
    ],
)
def test_tagalign_bad_line_names_file_and_line(tmp_path, bad_line, reason):
    # the bad line is line 5: a track line, three good reads, then the bad one
    path = write(tmp_path / "bad.tagAlign.gz", "track name=x\n" + READS + bad_line + "\n" + READS)
    with pytest.raises(ValueError, match=error_at(path, 5) + ".*" + re.escape(reason)):
        io.read_tagalign(path, SIZES)


def test_tagalign_line_number_counts_blank_lines(tmp_path):
    path = write(tmp_path / "b.tagAlign", READS + "\n\n" + "chr1\t9\t3\tN\t1000\t+\n")
    with pytest.raises(ValueError, match=error_at(path, 6)):
        io.read_tagalign(path)


def test_tagalign_unknown_chrom_only_checked_with_sizes(tmp_path):
    path = write(tmp_path / "u.tagAlign", READS + "chrM\t1\t37\tN\t1000\t+\n")
    assert len(io.read_tagalign(path)) == 4
    with pytest.raises(ValueError, match=error_at(path, 4) + ".*unknown chromosome 'chrM'"):
        io.read_tagalign(path, SIZES)


def test_tagalign_drop_unknown_chroms_is_logged(tmp_path, caplog):
    path = write(tmp_path / "u.tagAlign", READS + "chrM\t1\t37\tN\t1000\t+\nchrM\t2\t38\tN\t1000\t+\n")
    with caplog.at_level(logging.WARNING, logger="chromexp"):
        logging.getLogger("chromexp").propagate = True
        try:
            frame = io.read_tagalign(path, SIZES, on_unknown_chrom="drop")
        finally:
            logging.getLogger("chromexp").propagate = False
    assert len(frame) == 3 and "chrM" not in frame["chrom"].astype(str).tolist()
    assert "dropped 2 lines (reads)" in caplog.text and "chrM (2)" in caplog.text


def test_tagalign_drop_keeps_line_numbers_right(tmp_path):
    path = write(tmp_path / "u.tagAlign", "chrM\t1\t37\tN\t1000\t+\n" + READS + "chr1\t9\t3\tN\t1000\t+\n")
    with pytest.raises(ValueError, match=error_at(path, 5)):
        io.read_tagalign(path, SIZES, on_unknown_chrom="drop")


def test_tagalign_chrom_sizes_from_file(tmp_path):
    sizes = write(tmp_path / "g.sizes", "chr1\t1000\nchr2\t120\n")
    path = write(tmp_path / "r.tagAlign", READS)
    with pytest.raises(ValueError, match=error_at(path, 1) + ".*beyond the end of chr2"):
        io.read_tagalign(path, sizes)


def test_tagalign_empty_file_is_reported(tmp_path):
    for path in (write(tmp_path / "e.tagAlign", ""), write(tmp_path / "e.tagAlign.gz", "")):
        with pytest.raises(ValueError, match=re.escape(f"{path}: contains no reads")):
            io.read_tagalign(path)


def test_truncated_gzip_names_the_file(tmp_path):
    data = gzip.compress(READS.encode() * 2000)
    path = tmp_path / "trunc.tagAlign.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*truncated or corrupt"):
        io.read_tagalign(path)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        io.read_bedgraph(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tagAlign"):
        io.read_tagalign(tmp_path / "nope.tagAlign")


def test_tagalign_matches_bedtools_read_count(tmp_path):
    """Oracle: bedtools reads the same (chrom, start, end, strand) records from the file."""
    import shutil
    import subprocess

    if shutil.which("bedtools") is None:
        pytest.skip("bedtools not installed")
    rng = np.random.default_rng(0)
    starts = rng.integers(0, 900, 500)
    text = "".join(
        f"chr{c}\t{s}\t{s + 36}\tN\t1000\t{'+-'[k]}\n"
        for c, s, k in zip(rng.integers(1, 3, 500), starts, rng.integers(0, 2, 500))
    )
    path = write(tmp_path / "r.tagAlign", text)
    frame = io.read_tagalign(path)
    out = subprocess.run(["bedtools", "sort", "-i", str(path)], capture_output=True, text=True, check=True).stdout
    theirs = sorted((f[0], int(f[1]), int(f[2]), f[5]) for f in (x.split("\t") for x in out.splitlines()))
    ours = sorted(zip(frame["chrom"].astype(str), frame["start"], frame["end"], frame["strand"].astype(str)))
    assert ours == theirs and len(ours) == 500


# --------------------------------------------------------------------------------------------
# bedGraph and bigWig
# --------------------------------------------------------------------------------------------
def test_bedgraph_round_trip(tmp_path):
    path = write(tmp_path / "x.bedGraph.gz", "track type=bedGraph\nchr2\t0\t10\t0\nchr1\t5\t9\t2.5\n")
    frame = io.read_bedgraph(path, SIZES)
    assert list(frame.columns) == list(io.BEDGRAPH_COLUMNS)
    assert frame["chrom"].astype(str).tolist() == ["chr2", "chr1"]
    assert frame["value"].tolist() == [0.0, 2.5]
    assert frame["value"].dtype == np.float64


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        ("chr1\t5\t9", "expected 4 tab-separated columns"),
        ("chr1\t5\t9\tlots", "column 'value': expected a number"),
        ("chr1\t5\t9\tinf", "value must be finite"),
        ("chr1\tx\t9\t1", "column 'start': expected an integer"),
        ("chr1\t9\t5\t1", "start (9) must be < end (5)"),
        ("chr3\t5\t9\t1", "unknown chromosome 'chr3'"),
    ],
)
def test_bedgraph_bad_line(tmp_path, bad_line, reason):
    path = write(tmp_path / "x.bedGraph", "chr1\t0\t5\t1\n" + bad_line + "\n")
    with pytest.raises(ValueError, match=error_at(path, 2) + ".*" + re.escape(reason)):
        io.read_bedgraph(path, SIZES)


def test_bedgraph_empty(tmp_path):
    path = write(tmp_path / "x.bedGraph", "track type=bedGraph\n")
    with pytest.raises(ValueError, match="contains no intervals"):
        io.read_bedgraph(path)


def test_vendored_e003_bedgraphs_parse():
    sizes = io.read_chrom_sizes(resources_dir() / "hg19.chrom.sizes")
    covered = pd.read_csv(resources_dir() / "e003_real" / "covered_regions.bed", sep="\t", header=None)
    covered_bp = int((covered[2] - covered[1]).sum())
    paths = sorted((resources_dir() / "e003_real").glob("E003-*.demo.bedGraph.gz"))
    assert len(paths) == 7
    for path in paths:
        frame = io.read_bedgraph(path, sizes)
        # genomecov -bga over the covered regions: intervals tile exactly those regions
        assert int((frame["end"] - frame["start"]).sum()) == covered_bp
        assert (frame["value"] >= 0).all() and np.array_equal(frame["value"], np.round(frame["value"]))


def test_bigwig_round_trip(tmp_path):
    pybigwig = pytest.importorskip("pyBigWig")
    path = tmp_path / "x.bw"
    bw = pybigwig.open(str(path), "w")
    bw.addHeader([("chr1", 1000), ("chr2", 500)])
    bw.addEntries(["chr1", "chr1"], [0, 100], ends=[50, 120], values=[1.0, 3.5])
    bw.close()
    frame = io.read_bigwig_intervals(path, "chr1", 40, 200)
    assert frame[["start", "end", "value"]].values.tolist() == [[0, 50, 1.0], [100, 120, 3.5]]
    assert io.read_bigwig_chrom_sizes(path) == {"chr1": 1000, "chr2": 500}
    assert io.read_bigwig_intervals(path, "chr2").empty
    with pytest.raises(ValueError, match="chromosome 'chr9' is not in this bigWig"):
        io.read_bigwig_intervals(path, "chr9")
    with pytest.raises(ValueError, match="invalid range"):
        io.read_bigwig_intervals(path, "chr1", 10, 2000)
    not_bw = write(tmp_path / "x.txt", "hello\n")
    with pytest.raises(ValueError, match="bigWig"):
        io.read_bigwig_intervals(not_bw, "chr1")


def test_bigwig_without_pybigwig_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pyBigWig", None)  # makes `import pyBigWig` fail
    path = write(tmp_path / "x.bw", "x")
    with pytest.raises(ImportError, match=re.escape("chromexp[bigwig]")):
        io.read_bigwig_intervals(path, "chr1")


# --------------------------------------------------------------------------------------------
# chromosome sizes
# --------------------------------------------------------------------------------------------
def test_chrom_sizes_round_trip_and_vendored():
    sizes = io.read_chrom_sizes(resources_dir() / "hg19.chrom.sizes")
    assert len(sizes) == 24 and sizes["chr1"] == 249_250_621 and sizes["chrY"] == 59_373_566


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("chr1\t100\nchr2\n", 2, "expected 2 tab-separated columns"),
        ("chr1\t100\nchr2\tbig\n", 2, "expected an integer"),
        ("chr1\t100\nchr2\t0\n", 2, "must be positive"),
        ("chr1\t100\nchr2\t5\nchr1\t101\n", 3, "chr1 has length 101 here but 100 on line 1"),
    ],
)
def test_chrom_sizes_bad(tmp_path, text, line, reason):
    path = write(tmp_path / "g.sizes", text)
    with pytest.raises(ValueError, match=error_at(path, line) + ".*" + re.escape(reason)):
        io.read_chrom_sizes(path)


def test_chrom_sizes_empty(tmp_path):
    with pytest.raises(ValueError, match="contains no chromosomes"):
        io.read_chrom_sizes(write(tmp_path / "g.sizes", ""))


# --------------------------------------------------------------------------------------------
# gene table
# --------------------------------------------------------------------------------------------
GENES = (
    "gene_id\tgene_name\tchrom\ttss\tstrand\tgene_length\n"
    "G1\tA\tchr1\t100\t+\t2000\n"
    "G2\tB\tchr2\t400\t-\tNA\n"
    "G3\t\tchr1\t900\t.\tNA\n"
)


def test_gene_table_round_trip(tmp_path):
    frame = io.read_gene_table(write(tmp_path / "genes.tsv", GENES), SIZES)
    assert list(frame.columns) == list(io.GENE_COLUMNS)
    assert frame["gene_id"].tolist() == ["G1", "G2", "G3"]
    assert frame["gene_name"].tolist() == ["A", "B", "G3"]  # missing name -> gene_id
    assert frame["tss"].tolist() == [100, 400, 900] and frame["tss"].dtype == np.int64
    assert frame["strand"].tolist() == ["+", "-", "."]
    assert frame["gene_length"].iloc[0] == 2000 and frame["gene_length"].iloc[1:].isna().all()


def test_gene_table_optional_columns_and_extra_columns(tmp_path):
    text = "chrom\tgene_id\tstrand\ttss\tE003\nchr1\tG1\t+\t5\t1.5\n"
    frame = io.read_gene_table(write(tmp_path / "g.tsv", text))
    assert frame.loc[0, "gene_name"] == "G1" and np.isnan(frame.loc[0, "gene_length"])
    assert list(frame.columns) == list(io.GENE_COLUMNS)


def test_gene_table_unknown_strand_is_reported(tmp_path, caplog):
    logging.getLogger("chromexp").propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="chromexp"):
            io.read_gene_table(write(tmp_path / "genes.tsv", GENES))
    finally:
        logging.getLogger("chromexp").propagate = False
    assert "1 of 3 genes have unknown strand" in caplog.text


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("G4\tD\tchr1\t1000\t+\t10", "tss 1000 is outside chr1 (length 1000)"),  # TSS outside
        ("G4\tD\tchr7\t10\t+\t10", "unknown chromosome 'chr7'"),
        ("G4\tD\tchr1\t-1\t+\t10", "negative tss -1"),
        ("G4\tD\tchr1\tabc\t+\t10", "column 'tss': expected an integer"),
        ("G4\tD\tchr1\t10\tplus\t10", "strand must be '+', '-' or '.'"),
        ("G4\tD\tchr1\t10\t+", "expected 6 tab-separated columns"),
        ("G4\tD\tchr1\t10\t+\t0", "gene_length must be positive"),
    ],
)
def test_gene_table_bad_row(tmp_path, row, reason):
    path = write(tmp_path / "genes.tsv", GENES + row + "\n")
    with pytest.raises(ValueError, match=error_at(path, 5) + ".*" + re.escape(reason)):
        io.read_gene_table(path, SIZES)


def test_gene_table_short_row_in_extra_column(tmp_path):
    path = write(tmp_path / "g.tsv", "gene_id\tchrom\ttss\tstrand\tnote\nG1\tchr1\t5\t+\tok\nG2\tchr1\t9\t-\n")
    with pytest.raises(ValueError, match=error_at(path, 3) + ".*expected 5 tab-separated columns"):
        io.read_gene_table(path)


def test_gene_table_tss_at_last_base_is_inside(tmp_path):
    path = write(tmp_path / "genes.tsv", GENES + "G4\tD\tchr1\t999\t+\t10\n")
    assert io.read_gene_table(path, SIZES)["tss"].iloc[-1] == 999


def test_gene_table_identical_duplicates_collapse(tmp_path, caplog):
    # same gene, same coordinates, different symbol: as the 7 duplicates of the vendored table
    path = write(tmp_path / "genes.tsv", GENES + "G1\tA-alias\tchr1\t100\t+\t2000\n")
    logging.getLogger("chromexp").propagate = True
    try:
        with caplog.at_level(logging.INFO, logger="chromexp"):
            frame = io.read_gene_table(path)
    finally:
        logging.getLogger("chromexp").propagate = False
    assert frame["gene_id"].tolist() == ["G1", "G2", "G3"] and frame.loc[0, "gene_name"] == "A"
    assert "collapsed 1 duplicate gene_id rows" in caplog.text


def test_gene_table_conflicting_duplicates_name_both_lines(tmp_path):
    path = write(tmp_path / "genes.tsv", GENES + "G9\tZ\tchr2\t1\t+\t5\nG2\tB\tchr2\t401\t-\tNA\n")
    with pytest.raises(ValueError, match=error_at(path, 6) + r".*'G2' also on line 3 with a different tss"):
        io.read_gene_table(path)


def test_gene_table_bad_header(tmp_path):
    path = write(tmp_path / "genes.tsv", "gene\tchrom\ttss\tstrand\nG1\tchr1\t5\t+\n")
    with pytest.raises(ValueError, match=error_at(path, 1) + ".*lacks required column.*gene_id"):
        io.read_gene_table(path)
    path = write(tmp_path / "genes2.tsv", "gene_id,chrom,tss,strand\nG1,chr1,5,+\n")
    with pytest.raises(ValueError, match="tab-separated"):
        io.read_gene_table(path)


def test_gene_table_empty(tmp_path):
    with pytest.raises(ValueError, match="is empty"):
        io.read_gene_table(write(tmp_path / "genes.tsv", ""))
    with pytest.raises(ValueError, match="no genes"):
        io.read_gene_table(write(tmp_path / "genes2.tsv", GENES.splitlines()[0] + "\n"))


# --------------------------------------------------------------------------------------------
# expression matrix
# --------------------------------------------------------------------------------------------
RPKM = "gene_id\tE000\tE003\tE004\nG1\t1.5\t0\t2\nG2\t0.25\t3\t4\n"


def test_expression_round_trip(tmp_path):
    frame = io.read_expression(write(tmp_path / "57epigenomes.RPKM.pc.gz", RPKM))
    assert list(frame.columns) == ["E000", "E003", "E004"]
    assert frame.index.tolist() == ["G1", "G2"] and frame.index.name == "gene_id"
    assert frame.loc["G2", "E003"] == 3.0 and (frame.dtypes == np.float64).all()
    sub = io.read_expression(tmp_path / "57epigenomes.RPKM.pc.gz", cell_types=["E004", "E003"])
    assert list(sub.columns) == ["E004", "E003"]
    with pytest.raises(ValueError, match="no expression column for E116"):
        io.read_expression(tmp_path / "57epigenomes.RPKM.pc.gz", cell_types=["E116"])


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("G3\t1\tx\t2", "column 'E003': expected a number"),
        ("G3\t1\t-2\t2", "RPKM of E003 must be finite and >= 0, got -2.0"),
        ("G3\t1\t2", "expected 4 tab-separated columns"),
        ("G1\t1.5\t0\t2.5", "'G1' also on line 2 with a different E004"),
    ],
)
def test_expression_bad_row(tmp_path, row, reason):
    path = write(tmp_path / "rpkm.tsv", RPKM + row + "\n")
    with pytest.raises(ValueError, match=error_at(path, 4) + ".*" + re.escape(reason)):
        io.read_expression(path)


@pytest.mark.parametrize("header_end", ["", "\t"])
def test_expression_tolerates_trailing_whitespace(tmp_path, header_end):
    # the real 57epigenomes.RPKM.pc has trailing whitespace (Chromoformer strips it with sed)
    text = f"gene_id\tE003\tE004{header_end}\nG1\t1.5\t0 \t\nG2\t2\t3\t\n"
    frame = io.read_expression(write(tmp_path / "rpkm.tsv", text))
    assert frame.to_numpy().tolist() == [[1.5, 0.0], [2.0, 3.0]]
    path = write(tmp_path / "rpkm2.tsv", text + "G3\t1\t2\t7\n")  # a real extra field is still an error
    with pytest.raises(ValueError, match=error_at(path, 4) + ".*expected 3 tab-separated columns"):
        io.read_expression(path)


def test_expression_identical_duplicates_collapse(tmp_path):
    frame = io.read_expression(write(tmp_path / "rpkm.tsv", RPKM + "G1\t1.5\t0\t2\n"))
    assert frame.index.tolist() == ["G1", "G2"]


def test_expression_needs_eid_columns(tmp_path):
    path = write(tmp_path / "rpkm.tsv", "gene_id\tliver\nG1\t1\n")
    with pytest.raises(ValueError, match=error_at(path, 1) + ".*no epigenome"):
        io.read_expression(path)


def test_vendored_gene_rpkm_table_parses():
    """The vendored real table holds genes and RPKM in one file: both readers read it."""
    path = resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz"
    sizes = io.read_chrom_sizes(resources_dir() / "hg19.chrom.sizes")
    genes = io.read_gene_table(path, sizes)
    expression = io.read_expression(path)
    raw = pd.read_csv(path, sep="\t")
    n_unique = raw["gene_id"].nunique()
    # 19,802 rows with 7 ids listed twice (resources/README.md)
    assert len(raw) == 19_802 and n_unique == 19_802 - 7
    assert len(genes) == n_unique and genes["gene_id"].is_unique
    assert list(expression.columns) == list(CELL_TYPES)
    assert expression.index.tolist() == genes["gene_id"].tolist()
    assert set(genes["strand"]) == {"+", "-", "."}
    # unknown strand for 1,330 rows in the raw file, as the provenance note says (1,215 + 115)
    assert int((raw["strand"] == ".").sum()) == 1_330
    first = raw.drop_duplicates("gene_id").set_index("gene_id")
    np.testing.assert_array_equal(expression.to_numpy(), first[list(CELL_TYPES)].to_numpy())


# --------------------------------------------------------------------------------------------
# pcHi-C fragment pairs
# --------------------------------------------------------------------------------------------
PCHIC_HEADER = "\t".join(io.PCHIC_COLUMNS) + "\n"
PCHIC = PCHIC_HEADER + "chr1\t0\t100\tchr1\t300\t450\t2.5\nchr2\t10\t60\tchr2\t200\t260\t1.75\n"


def test_pchic_round_trip(tmp_path):
    frame = io.read_pchic(write(tmp_path / "H1.tsv.gz", PCHIC), SIZES)
    assert list(frame.columns) == list(io.PCHIC_COLUMNS)
    assert frame["other_start"].tolist() == [300, 200] and frame["frequency"].tolist() == [2.5, 1.75]
    assert frame["bait_start"].dtype == np.int64 and frame["frequency"].dtype == np.float64


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("chr1\t0\t100\tchr1\t450\t300\t2", "other_start (450) must be < other_end (300)"),
        ("chr1\t0\t100\tchr9\t300\t450\t2", "unknown chromosome 'chr9'"),
        ("chr1\t0\t100\tchr2\t300\t550\t2", "other_end (550) is beyond the end of chr2"),
        ("chr1\t0\t100\tchr1\t300\t450\tnan", "column 'frequency': expected a number"),
        ("chr1\t0\t100\tchr1\t300\t450", "expected 7 tab-separated columns"),
    ],
)
def test_pchic_bad_row(tmp_path, row, reason):
    path = write(tmp_path / "H1.tsv", PCHIC + row + "\n")
    with pytest.raises(ValueError, match=error_at(path, 4) + ".*" + re.escape(reason)):
        io.read_pchic(path, SIZES)


def test_pchic_bad_header(tmp_path):
    path = write(tmp_path / "H1.tsv", "bait_chrom\tbait_start\nchr1\t0\n")
    with pytest.raises(ValueError, match="lacks required column"):
        io.read_pchic(path)


# --------------------------------------------------------------------------------------------
# Chromoformer's pickles
# --------------------------------------------------------------------------------------------
def _chromoformer_pickles(tmp_path, frag2neighbors, pair2score):
    f2n, p2s = tmp_path / "H1_frag2neighbors.pickle", tmp_path / "H1_pair2score.pickle"
    f2n.write_bytes(pickle.dumps(frag2neighbors))
    p2s.write_bytes(pickle.dumps(pair2score))
    return f2n, p2s


def test_chromoformer_pickles_convert_to_pchic_table(tmp_path):
    # as written by Chromoformer's preprocessing: defaultdict(set) and a dict of NumPy floats
    frag2neighbors = defaultdict(set)
    frag2neighbors["chr2:100-400"].update({"chr2:450-480", "chr2:10-90"})
    frag2neighbors["chr1:0-50"].add("chr1:600-900")
    pair2score = {
        ("chr2:100-400", "chr2:450-480"): np.float64(1.6),
        ("chr2:100-400", "chr2:10-90"): np.float64(4.0),
        ("chr1:0-50", "chr1:600-900"): 2.0,
        ("chr1:0-50", "chr1:700-800"): 9.0,  # scored but not a neighbour: not used, as in Chromoformer
    }
    frame = io.read_chromoformer_pchic(*_chromoformer_pickles(tmp_path, frag2neighbors, pair2score), SIZES)
    assert list(frame.columns) == list(io.PCHIC_COLUMNS)
    assert frame.values.tolist() == [
        ["chr1", 0, 50, "chr1", 600, 900, 2.0],
        ["chr2", 100, 400, "chr2", 10, 90, 4.0],
        ["chr2", 100, 400, "chr2", 450, 480, 1.6],
    ]
    # and it round-trips through the pipeline's pcHi-C file format
    out = io.write_pchic(frame, tmp_path / "pchic" / "H1.tsv.gz")
    assert io.read_pchic(out).equals(frame)


def test_chromoformer_pickles_bad_content(tmp_path):
    f2n, p2s = _chromoformer_pickles(tmp_path, {"chr1:0-50": {"chr1:600-900"}}, {})
    with pytest.raises(ValueError, match="pickled dict is empty"):
        io.read_chromoformer_pchic(f2n, p2s)
    f2n, p2s = _chromoformer_pickles(tmp_path, {"chr1:0-50": {"chr1:600-900"}}, {("a", "b"): 1.0})
    with pytest.raises(ValueError, match=re.escape("no score for the pair ('chr1:0-50', 'chr1:600-900')")):
        io.read_chromoformer_pchic(f2n, p2s)
    f2n, p2s = _chromoformer_pickles(tmp_path, {"chr1:0-50": {"chr1_600_900"}}, {("a", "b"): 1.0})
    with pytest.raises(ValueError, match="'chr1_600_900' is not an interval"):
        io.read_chromoformer_pchic(f2n, p2s)
    f2n, p2s = _chromoformer_pickles(tmp_path, {"chr1:0-50": {"chr1:600-2000"}}, {("chr1:0-50", "chr1:600-2000"): 2.0})
    with pytest.raises(ValueError, match="other fragment chr1:600-2000: other_end .* beyond the end of chr1"):
        io.read_chromoformer_pchic(f2n, p2s, SIZES)
    f2n.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="not a readable Chromoformer pickle"):
        io.read_chromoformer_pchic(f2n, p2s)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickle_reader_refuses_code(tmp_path, capsys):
    path = tmp_path / "tss2fragment.pickle"
    path.write_bytes(pickle.dumps({"chr1:1-2": _Exploit()}))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        io.read_tss2fragment(path)
    assert "must never run" not in capsys.readouterr().out


def test_real_tss2fragment_subset_parses():
    """First 40 entries of Chromoformer's real tss2fragment.pickle (tests/data/README.md)."""
    frame = io.read_tss2fragment(DATA / "chromoformer_tss2fragment_head.pickle")
    with open(DATA / "chromoformer_tss2fragment_head.pickle", "rb") as handle:
        raw = pickle.load(handle)
    n_none = sum(v is None for v in raw.values())
    assert n_none > 0 and len(frame) == len(raw) - n_none  # TSSs without a fragment are left out
    assert list(frame.columns) == list(io.TSS2FRAGMENT_COLUMNS)
    assert ((frame["frag_start"] <= frame["tss_start"]) & (frame["tss_start"] < frame["frag_end"])).all()
    assert (frame["tss_end"] - frame["tss_start"] == 1).all()


def test_tss2fragment_fragment_must_contain_tss(tmp_path):
    path = tmp_path / "t.pickle"
    path.write_bytes(pickle.dumps({"chr1:50-51": "chr1:100-200"}))
    with pytest.raises(ValueError, match="does not contain TSS 'chr1:50-51'"):
        io.read_tss2fragment(path)
