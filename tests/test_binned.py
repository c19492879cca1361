"""Pre-binned count tables: the reader (file:line errors), TSS windows against brute force, reads → bins.

Oracles: a brute-force loop over bins for the per-gene windows of + and − strand genes (and the
reasons of excluded genes), ``bedtools intersect -c`` for counting reads into bins, and the
vendored real E116 table's documented extent (``resources/e116_10kb/README.md``).
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from chromexp import paths
from chromexp.data import binned, io

HEADER = "chrom\tstart\tend\tH3K4me3\tH3K27me3\n"
# chr1: contiguous bins 0-40 then a gap (40-60 unknown) then 60-80; chr2: starts at 20 (grid offset 0)
VALID = HEADER + (
    "chr1\t0\t10\t5\t0\n"
    "chr1\t10\t20\t7\t1\n"
    "chr1\t20\t30\t0\t2\n"
    "chr1\t30\t40\t3\t0\n"
    "chr1\t60\t70\t9\t4\n"
    "chr1\t70\t80\t1\t1\n"
    "chr2\t20\t30\t2\t2\n"
    "chr2\t30\t40\t4\t0\n"
)
SIZES = {"chr1": 100, "chr2": 50}


def write(path, text: str):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)
    return path


def error_at(path, line: int) -> str:
    return re.escape(f"{path}:{line}:")


# --------------------------------------------------------------------------------------------
# the reader
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["b.tsv", "b.tsv.gz"])
def test_reader_parses_contiguous_and_gapped_bins(tmp_path, name):
    frame = io.read_binned_counts(write(tmp_path / name, "# comment\n" + VALID), SIZES)
    assert list(frame.columns) == ["chrom", "start", "end", "H3K4me3", "H3K27me3"]
    assert frame["chrom"].astype(str).tolist() == ["chr1"] * 6 + ["chr2"] * 2
    assert frame["start"].tolist() == [0, 10, 20, 30, 60, 70, 20, 30]
    assert frame["H3K4me3"].tolist() == [5, 7, 0, 3, 9, 1, 2, 4]
    assert frame["H3K4me3"].dtype == np.int64
    report = frame.attrs["bin_report"]
    assert report["bin_size"] == 10 and report["n_bins"] == 8
    assert report["chromosomes"] == {"chr1": 6, "chr2": 2}
    assert report["gaps"] == {"chr1": 1, "chr2": 0}
    assert report["empty_tracks"] == {}


@pytest.mark.parametrize(
    ("lines", "bad_line", "message"),
    [
        # malformed lines
        (["chr1\t0\t10\t5\n"], 3, "expected 5 tab-separated columns"),
        (["chr1\t0\t10\t5\t1\t9\n"], 3, "expected 5 tab-separated columns"),
        (["chr1\t0\t10\t5.5\t1\n"], 3, "column 'H3K4me3': expected an integer"),
        (["chr1\t0\tten\t5\t1\n"], 3, "column 'end': expected an integer"),
        (["chr1\t0\t10\t0x1f\t1\n"], 3, "expected an integer"),
        (["\t0\t10\t5\t1\n"], 3, "empty field"),
        (["chr1\t-10\t0\t5\t1\n"], 3, "negative start"),
        (["chr1\t10\t10\t5\t1\n"], 3, "must be < end"),
        (["chr1\t0\t10\t-1\t1\n"], 3, "a count must be >= 0"),
        # overlaps and order
        (["chr1\t0\t10\t5\t1\n", "chr1\t5\t15\t5\t1\n"], 4, "overlaps the previous bin chr1:0-10"),
        (["chr1\t0\t10\t5\t1\n", "chr1\t0\t10\t5\t1\n"], 4, "overlaps the previous bin"),
        (["chr1\t20\t30\t5\t1\n", "chr1\t0\t10\t5\t1\n"], 4, "before the previous bin's start"),
        (["chr1\t0\t10\t5\t1\n", "chr2\t0\t10\t5\t1\n", "chr1\t10\t20\t5\t1\n"], 5, "'chr1' appears again"),
        # one bin size, one grid
        (["chr1\t0\t10\t5\t1\n", "chr1\t10\t15\t5\t1\n"], 4, "bin size 5 differs from the table's bin size 10"),
        (["chr1\t0\t10\t5\t1\n", "chr1\t10\t30\t5\t1\n", "chr1\t30\t40\t5\t1\n"], 4, "bin size 20"),
        (["chr1\t0\t10\t5\t1\n", "chr1\t25\t35\t5\t1\n"], 4, "off the bin grid of chr1"),
        # chromosome sizes
        (["chrM\t0\t10\t5\t1\n"], 3, "unknown chromosome 'chrM'"),
        (["chr2\t40\t50\t5\t1\n", "chr2\t50\t60\t5\t1\n"], 4, "beyond the end of chr2 (length 50)"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, lines, bad_line, message):
    path = write(tmp_path / "b.tsv", "# made by hand\n" + HEADER + "".join(lines))
    with pytest.raises(ValueError, match=error_at(path, bad_line) + ".*" + re.escape(message)):
        io.read_binned_counts(path, SIZES)


def test_reader_reports_the_earliest_bad_line(tmp_path):
    # line 5 overlaps, line 4 has a bad bin size: the earlier line is named
    lines = "chr1\t0\t10\t1\t1\nchr1\t10\t25\t1\t1\nchr1\t20\t30\t1\t1\n"
    path = write(tmp_path / "b.tsv", HEADER + lines)
    with pytest.raises(ValueError, match=error_at(path, 3) + ".*bin size 15"):
        io.read_binned_counts(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("chrom\tstart\tH3K4me3\n", "must start with the tab-separated columns chrom, start, end"),
        ("chr\tstart\tend\tH3K4me3\n", "must start with the tab-separated columns chrom, start, end"),
        ("chrom\tstart\tend\n", "names no track column"),
        ("chrom\tstart\tend\tH3K4me3\tH3K4me3\n", "'H3K4me3' appears twice"),
        ("chrom\tstart\tend\tH3K4me3\t\n", "empty name"),
    ],
)
def test_reader_header_errors(tmp_path, header, message):
    path = write(tmp_path / "b.tsv", "\n# c\n" + header + "chr1\t0\t10\t1\t1\n")
    with pytest.raises(ValueError, match=error_at(path, 3) + ".*" + re.escape(message)):
        io.read_binned_counts(path)


def test_reader_file_level_errors(tmp_path):
    empty = write(tmp_path / "empty.tsv", "# nothing\n\n")
    with pytest.raises(ValueError, match=re.escape(f"{empty}: is empty")):
        io.read_binned_counts(empty)
    no_bins = write(tmp_path / "nobins.tsv", HEADER)
    with pytest.raises(ValueError, match=re.escape(f"{no_bins}: contains a header but no bins")):
        io.read_binned_counts(no_bins)
    zero_track = write(tmp_path / "zero.tsv", HEADER + "chr1\t0\t10\t0\t1\nchr1\t10\t20\t0\t2\n")
    with pytest.raises(ValueError, match=re.escape(f"{zero_track}: track 'H3K4me3' is 0 in every bin")):
        io.read_binned_counts(zero_track)
    truncated = tmp_path / "t.tsv.gz"
    packed = gzip.compress(VALID.encode())
    truncated.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=re.escape(f"{truncated}: the gzip stream is truncated or corrupt")):
        io.read_binned_counts(truncated)


def test_reader_reports_unknown_chromosomes_and_empty_tracks(tmp_path, caplog):
    text = VALID + "chrM\t0\t10\t1\t1\nchrM\t10\t20\t1\t1\n"
    path = write(tmp_path / "b.tsv", text)
    frame = io.read_binned_counts(path, SIZES, on_unknown_chrom="drop")
    assert frame.attrs["bin_report"]["unknown_chromosomes"] == {"chrM": 2}
    assert len(frame) == 8 and "chrM" not in set(frame["chrom"].astype(str))
    # H3K27me3 is 0 on every chr3 bin: reported (not an error: other chromosomes have counts)
    path = write(tmp_path / "c.tsv", VALID + "chr3\t0\t10\t1\t0\nchr3\t10\t20\t2\t0\n")
    frame = io.read_binned_counts(path)
    assert frame.attrs["bin_report"]["empty_tracks"] == {"H3K27me3": ["chr3"]}
    assert "H3K27me3: chr3" in caplog.text


# --------------------------------------------------------------------------------------------
# TSS windows: equal to a brute-force loop over bins
# --------------------------------------------------------------------------------------------
def brute_force_windows(bins: pd.DataFrame, genes: pd.DataFrame, k: int, tracks):
    """For each gene: (reason or "", counts (n_tracks, 2k+1) with bin 0 most upstream), by scanning every bin."""
    records = list(bins.itertuples(index=False))
    size = records[0].end - records[0].start
    chroms = {str(r.chrom) for r in records}
    empty = {c for c in chroms if any(sum(getattr(r, t) for r in records if str(r.chrom) == c) == 0 for t in tracks)}
    out = {}
    for g in genes.itertuples(index=False):
        if g.chrom not in chroms:
            out[g.gene_id] = ("unknown_chromosome", None)
            continue
        if g.strand not in ("+", "-"):
            out[g.gene_id] = ("unknown_strand", None)
            continue
        home = [r for r in records if str(r.chrom) == g.chrom and r.start <= g.tss < r.end]
        if not home:
            out[g.gene_id] = ("tss_not_covered", None)
            continue
        window = []
        for step in range(-k, k + 1):  # in transcription orientation: upstream first
            wanted = home[0].start + (step if g.strand == "+" else -step) * size
            found = [r for r in records if str(r.chrom) == g.chrom and r.start == wanted]
            window.append(found[0] if found else None)
        if any(w is None for w in window):
            out[g.gene_id] = ("window_not_covered", None)
            continue
        if g.chrom in empty:
            out[g.gene_id] = ("empty_track", None)
            continue
        out[g.gene_id] = ("", np.array([[getattr(w, t) for w in window] for t in tracks]))
    return out


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    size = int(rng.choice([10, 25, 100]))
    rows = []
    for chrom in ("chr1", "chr2", "chr3"):
        origin = int(rng.integers(0, 4)) * size
        gaps = rng.choice(np.arange(40), size=int(rng.integers(0, 4)), replace=False)  # a few missing bins
        starts = origin + np.setdiff1d(np.arange(40), gaps) * size
        for s in starts:
            rows.append((chrom, int(s), int(s) + size, int(rng.integers(0, 50)), int(rng.integers(0, 3))))
    bins = pd.DataFrame(rows, columns=["chrom", "start", "end", "H3K4me3", "H3K27me3"])
    if seed % 2:  # a track empty on one chromosome
        bins.loc[bins["chrom"] == "chr3", "H3K27me3"] = 0
    n_genes = 80
    genes = pd.DataFrame(
        {
            "gene_id": [f"g{i}" for i in range(n_genes)],
            "chrom": rng.choice(["chr1", "chr2", "chr3", "chrX"], size=n_genes, p=[0.4, 0.3, 0.25, 0.05]),
            "tss": rng.integers(0, 44 * size, size=n_genes),  # some before the first / after the last bin
            "strand": rng.choice(["+", "-", "."], size=n_genes, p=[0.45, 0.45, 0.1]),
        }
    )
    return bins, genes


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("k", [0, 1, 2, 5])
def test_tss_windows_equal_brute_force(seed, k):
    bins, genes = random_case(seed)
    tracks = ["H3K27me3", "H3K4me3"]  # not the file order: the order asked for
    expected = brute_force_windows(bins, genes, k, tracks)
    try:
        got = binned.tss_windows(bins, genes, k, tracks)
    except ValueError as err:  # every gene excluded: must be what brute force says
        assert all(reason for reason, _ in expected.values()), err
        return
    kept = [gid for gid, (reason, _) in expected.items() if not reason]
    assert got.genes["gene_id"].tolist() == kept
    assert got.counts.shape == (len(kept), 2, 2 * k + 1)
    for i, gid in enumerate(kept):
        np.testing.assert_array_equal(got.counts[i], expected[gid][1], err_msg=gid)
    np.testing.assert_allclose(got.log1p(), np.log1p(got.counts).astype(np.float32))
    reasons = pd.Series([r for r, _ in expected.values() if r]).value_counts()
    table = got.exclusions.set_index("reason")["n_genes"]
    for reason in binned.GENE_REASONS:
        assert table[reason] == reasons.get(reason, 0), reason
    strands = set(got.genes["strand"])
    assert strands <= {"+", "-"}


def test_tss_windows_cover_both_strands_and_flip():
    """A minus-strand gene reads the same bins as a plus-strand gene at its TSS, reversed."""
    bins = pd.DataFrame(
        {"chrom": "chr1", "start": np.arange(0, 200, 10), "end": np.arange(10, 210, 10), "A": np.arange(20) + 1}
    )
    genes = pd.DataFrame({"gene_id": ["p", "m"], "chrom": "chr1", "tss": [95, 95], "strand": ["+", "-"]})
    w = binned.tss_windows(bins, genes, 2)
    assert w.counts[0, 0].tolist() == [8, 9, 10, 11, 12]  # bins 70..110, TSS bin 90-100 in the middle
    assert w.counts[1, 0].tolist() == [12, 11, 10, 9, 8]  # bin 0 = most upstream = highest coordinate
    # bin centre distances in transcription orientation: TSS 95, TSS-bin centre 95
    np.testing.assert_allclose(w.centre_distances()[0], [-20, -10, 0, 10, 20])
    np.testing.assert_allclose(w.centre_distances()[1], [-20, -10, 0, 10, 20])
    np.testing.assert_array_equal(w.log1p(k=1)[1, 0], np.log1p([11, 10, 9]).astype(np.float32))


def test_tss_windows_argument_errors():
    bins, genes = random_case(0)
    with pytest.raises(ValueError, match="k must be >= 0"):
        binned.tss_windows(bins, genes, -1)
    with pytest.raises(ValueError, match="tracks"):
        binned.tss_windows(bins, genes, 1, ["H3K9me3"])
    with pytest.raises(ValueError, match="lacks column"):
        binned.tss_windows(bins, genes.drop(columns="strand"), 1)
    mixed = bins.copy()
    mixed.loc[0, "end"] += 1
    with pytest.raises(ValueError, match="one bin size"):
        binned.tss_windows(mixed, genes, 1)
    far = genes.assign(chrom="chr9")
    with pytest.raises(ValueError, match="unknown_chromosome"):
        binned.tss_windows(bins, far, 1)


# --------------------------------------------------------------------------------------------
# reads into bins; bins inside regions
# --------------------------------------------------------------------------------------------
def test_count_reads_in_bins_equals_bedtools_intersect(tmp_path):
    if shutil.which("bedtools") is None:
        pytest.skip("bedtools is not installed")
    rng = np.random.default_rng(3)
    bins = pd.DataFrame(
        {
            "chrom": ["chr1"] * 6 + ["chr2"] * 3,
            "start": [0, 100, 200, 400, 500, 600, 50, 150, 250],
            "end": [100, 200, 300, 500, 600, 700, 150, 250, 350],
        }
    )
    n = 400
    reads = pd.DataFrame(
        {"chrom": rng.choice(["chr1", "chr2", "chr3"], size=n, p=[0.6, 0.35, 0.05]), "start": rng.integers(0, 700, n)}
    )
    reads["end"] = reads["start"] + 36  # many straddle a bin edge or fall in the gap 300-400
    got = binned.count_reads_in_bins(reads, bins)
    bins.to_csv(tmp_path / "bins.bed", sep="\t", header=False, index=False)
    reads.to_csv(tmp_path / "reads.bed", sep="\t", header=False, index=False)
    out = subprocess.run(
        ["bedtools", "intersect", "-c", "-a", str(tmp_path / "bins.bed"), "-b", str(tmp_path / "reads.bed")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    expected = [int(line.split("\t")[3]) for line in out.strip().splitlines()]
    assert got.tolist() == expected
    assert got.sum() > n * 0.5


def test_bins_inside_regions_brute_force():
    rng = np.random.default_rng(5)
    bins = pd.DataFrame({"chrom": "chr1", "start": np.arange(0, 1000, 50), "end": np.arange(50, 1050, 50)})
    starts = rng.integers(0, 1000, 12)
    regions = pd.DataFrame({"chrom": "chr1", "start": starts, "end": starts + rng.integers(10, 200, 12)})
    covered = np.zeros(1100, dtype=bool)
    for r in regions.itertuples():
        covered[r.start : r.end] = True
    expected = [bool(covered[b.start : b.end].all()) for b in bins.itertuples()]
    assert binned.bins_inside(bins, regions).tolist() == expected
    assert any(expected) and not all(expected)


# --------------------------------------------------------------------------------------------
# the vendored real E116 table
# --------------------------------------------------------------------------------------------
def test_vendored_e116_table_matches_its_provenance():
    frame = binned.read_e116_10kb()
    report = frame.attrs["bin_report"]
    assert report["n_bins"] == 279_606 and report["bin_size"] == 10_000
    assert report["tracks"] == ["H3K27me3", "H3K36me3", "H3K4me1", "H3K4me3", "H3K9me3"]
    assert list(report["chromosomes"]) == [f"chr{i}" for i in range(1, 23)]
    assert set(report["gaps"].values()) == {0} and report["empty_tracks"] == {}
    # README table: chr13 9,609 rows from 19,010,000 to 115,100,000
    chr13 = frame[frame["chrom"] == "chr13"]
    assert (len(chr13), chr13["start"].min(), chr13["end"].max()) == (9_609, 19_010_000, 115_100_000)
    assert frame["H3K36me3"].sum() == pytest.approx(21.06e6, rel=1e-3)
    # every TSS of the vendored gene table on chr1-22 falls in a covered bin
    genes = io.read_gene_table(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz")
    genes = genes[genes["chrom"].isin([f"chr{i}" for i in range(1, 23)])].assign(strand="+")
    windows = binned.tss_windows(frame, genes, 0)
    assert len(windows.genes) == 18_915


def test_vendored_e116_checksum_is_enforced(tmp_path, monkeypatch):
    fake = tmp_path / "resources"
    (fake / "e116_10kb").mkdir(parents=True)
    shutil.copy(paths.resources_dir() / "hg19.chrom.sizes", fake / "hg19.chrom.sizes")
    original = (paths.resources_dir() / "e116_10kb" / binned.E116_10KB_FILE).read_bytes()
    text = gzip.decompress(original).decode().replace("chr22\t51230000\t51240000\t", "chr22\t51230000\t51240000\t1", 1)
    (fake / "e116_10kb" / binned.E116_10KB_FILE).write_bytes(gzip.compress(text.encode(), compresslevel=1))
    monkeypatch.setattr(paths, "resources_dir", lambda: fake)
    with pytest.raises(ValueError, match="SHA-256 .* differs from the vendored table's"):
        binned.read_e116_10kb()
    # a user's own table (explicit path) is read without the vendored checksum
    frame = binned.read_e116_10kb(fake / "e116_10kb" / binned.E116_10KB_FILE)
    assert len(frame) == 279_606
