"""Peak readers, peak-max features (hand-made fixtures + bedtools oracle) and MACS2 end to end."""

from __future__ import annotations

import gzip
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from chromexp.baselines import peaks
from chromexp.config import load_params

NARROW = "chr1\t100\t200\tp1\t0\t.\t5.5\t3.1\t2.0\t50\nchr1\t300\t400\tp2\t0\t.\t7.25\t-1\t-1\t-1\n"
BROAD = "track name=x\nchr2\t1000\t5000\tb1\t0\t.\t2.5\t4\t3\n"
# gappedPeak: column 7 (thickStart) = 1000 must NOT be read as the signal; column 13 = 9.75 must
GAPPED = "chr2\t1000\t5000\tg1\t0\t.\t1000\t5000\t0\t2\t1,500\t0,3500\t9.75\t8\t7\n"


def _write(path, text, gz=False):
    if gz:
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_read_formats(tmp_path):
    n = peaks.read_peaks(_write(tmp_path / "a.narrowPeak", NARROW))
    assert list(n.columns) == list(peaks.PEAK_COLUMNS)
    assert n["signal_value"].tolist() == [5.5, 7.25]
    assert n["start"].dtype == np.int64 and n["end"].tolist() == [200, 400]
    b = peaks.read_peaks(_write(tmp_path / "E003-H3K4me1.broadPeak.gz", BROAD, gz=True))
    assert len(b) == 1 and b["signal_value"].item() == 2.5
    g = peaks.read_peaks(_write(tmp_path / "x_peaks.gappedPeak", GAPPED))
    assert g["signal_value"].item() == 9.75 and g["p_value"].item() == 8 and g["q_value"].item() == 7
    assert (g[["start", "end"]].to_numpy() == [[1000, 5000]]).all()
    empty = peaks.read_peaks(_write(tmp_path / "e.narrowPeak", ""))
    assert empty.empty and list(empty.columns) == list(peaks.PEAK_COLUMNS)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chr1\t100\t200\tp\t0\t.\t5\t3\t2\n", r"bad\.narrowPeak:1: .*10 tab-separated columns.*found 9"),
        (NARROW + "chr1\t500\t400\tp\t0\t.\t5\t3\t2\t1\n", r"bad\.narrowPeak:3: need 0 <= chromStart < chromEnd"),
        (NARROW + "chr1\t5x0\t600\tp\t0\t.\t5\t3\t2\t1\n", r"bad\.narrowPeak:3: .*chromStart.*'5x0'"),
        ("#c\nchr1\t500\t600\tp\t0\t.\tnan\t3\t2\t1\n", r"bad\.narrowPeak:2: signalValue"),
        ("chrZ\t500\t600\tp\t0\t.\t1\t3\t2\t1\n", r"bad\.narrowPeak:1: unknown chromosome"),
    ],
)
def test_read_errors_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        peaks.read_peaks(_write(tmp_path / "bad.narrowPeak", text), chrom_sizes={"chr1": 10_000})


def test_format_from_name():
    assert peaks.peak_format_of("E003-H3K4me3.gappedPeak.gz") == "gappedPeak"
    with pytest.raises(ValueError, match="Cannot tell the peak format"):
        peaks.peak_format_of("x.bed")


def _peaks(rows):
    return pd.DataFrame(rows, columns=["chrom", "start", "end", "signal_value"])


def test_feature_overlap_edges_none_and_several():
    genes = pd.DataFrame(
        {"chrom": ["chr1", "chr1", "chr1", "chr2", "chr3"], "tss": [10_000, 30_000, 50_000, 10_000, 10_000]}
    )
    # window of gene 0 is [5000, 15000) with flank 5000
    p = _peaks(
        [
            ("chr1", 4_000, 5_000, 100.0),  # ends exactly at the window start: no overlap
            ("chr1", 15_000, 16_000, 200.0),  # starts exactly at the window end: no overlap
            ("chr1", 4_000, 5_001, 3.0),  # one base inside
            ("chr1", 14_999, 15_000, 4.0),  # one base inside (last base of the window)
            ("chr1", 9_000, 11_000, 2.0),  # several peaks: the maximum wins
            ("chr1", 24_000, 56_000, 1.5),  # one broad peak covering genes 1 and 2
            ("chr1", 29_000, 29_500, 0.5),  # smaller than the broad one on gene 1
            ("chr2", 40_000, 41_000, 9.0),  # far from gene 3: 0
            ("chrM", 0, 100, 99.0),  # a chromosome without genes
        ]
    )
    got = peaks.peak_max_feature(p, genes, flank=5000)
    np.testing.assert_array_equal(got, [4.0, 1.5, 1.5, 0.0, 0.0])
    # gene order does not matter
    perm = [4, 2, 0, 3, 1]
    np.testing.assert_array_equal(peaks.peak_max_feature(p, genes.iloc[perm], flank=5000), got[perm])
    # a narrower window loses the edge peaks
    np.testing.assert_array_equal(peaks.peak_max_feature(p, genes.iloc[:1], flank=500), [2.0])
    assert peaks.peak_max_feature(p.iloc[:0], genes).sum() == 0


@pytest.mark.skipif(shutil.which("bedtools") is None, reason="bedtools not installed")
def test_feature_matches_bedtools_map(tmp_path):
    rng = np.random.default_rng(1)
    n_peaks, n_genes = 600, 300
    chrom = rng.choice(["chr1", "chr2"], size=n_peaks)
    start = rng.integers(0, 200_000, size=n_peaks)
    end = start + rng.integers(1, rng.choice([300, 20_000], size=n_peaks))
    p = pd.DataFrame({"chrom": chrom, "start": start, "end": end, "signal_value": rng.gamma(2, 3, n_peaks).round(3)})
    genes = pd.DataFrame(
        {"chrom": rng.choice(["chr1", "chr2", "chr3"], size=n_genes), "tss": rng.integers(6_000, 210_000, n_genes)}
    )
    flank = 5000
    win = pd.DataFrame(
        {"chrom": genes["chrom"], "s": genes["tss"] - flank, "e": genes["tss"] + flank, "i": np.arange(n_genes)}
    )
    win.sort_values(["chrom", "s"]).to_csv(tmp_path / "w.bed", sep="\t", header=False, index=False)
    bed = p.assign(name="x", score=0, strand=".")[["chrom", "start", "end", "name", "score", "strand", "signal_value"]]
    bed.sort_values(["chrom", "start"]).to_csv(tmp_path / "p.bed", sep="\t", header=False, index=False)
    out = subprocess.run(
        ["bedtools", "map", "-a", tmp_path / "w.bed", "-b", tmp_path / "p.bed", "-c", "7", "-o", "max"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    oracle = np.zeros(n_genes)
    for line in out.splitlines():
        f = line.split("\t")
        oracle[int(f[3])] = 0.0 if f[4] == "." else float(f[4])
    np.testing.assert_allclose(peaks.peak_max_feature(p, genes, flank=flank), oracle)
    assert (oracle > 0).sum() > 50 and (oracle == 0).sum() > 10  # the fixture exercises both cases


def test_peak_features_reads_each_format(tmp_path):
    _write(tmp_path / "E003-H3K4me3.narrowPeak.gz", NARROW, gz=True)
    _write(tmp_path / "E003-H3K4me3.gappedPeak", GAPPED)  # plain files are found too
    _write(tmp_path / "E003-H3K27me3.narrowPeak.gz", "", gz=True)
    _write(tmp_path / "E003-H3K27me3.gappedPeak.gz", GAPPED.replace("9.75", "1.25"), gz=True)
    genes = pd.DataFrame({"chrom": ["chr1", "chr2"], "tss": [250, 3000]})
    feats = peaks.peak_features(
        tmp_path, "E003", genes, marks=["H3K4me3", "H3K27me3"], formats=["narrowPeak", "gappedPeak"]
    )
    np.testing.assert_array_equal(feats["narrowPeak"], [[7.25, 0.0], [0.0, 0.0]])
    np.testing.assert_array_equal(feats["gappedPeak"], [[0.0, 0.0], [9.75, 1.25]])
    with pytest.raises(ValueError, match="No broadPeak file for E003 H3K4me3"):
        peaks.peak_features(tmp_path, "E003", genes, marks=["H3K4me3"], formats=["broadPeak"])
    if shutil.which("bedtools"):  # the bedtools engine (bedtools map -o max) reads the same files the same way
        oracle = peaks.peak_features(
            tmp_path, "E003", genes, ["H3K4me3", "H3K27me3"], ["narrowPeak", "gappedPeak"], engine="bedtools"
        )
        for fmt in feats:
            np.testing.assert_array_equal(oracle[fmt], feats[fmt])
    with pytest.raises(ValueError, match="Unknown peak feature engine 'awk'"):
        peaks.peak_features(tmp_path, "E003", genes, marks=["H3K4me3"], engine="awk")


def test_user_peak_files_are_checked_and_counted(tmp_path):
    params = load_params(
        "E003",
        overrides={
            "paths": {"data_dir": str(tmp_path)},
            "data": {"name": "toy"},
            "marks": ["H3K4me3"],
            "peaks": {"source": "files"},
        },
    )
    peak_dir = tmp_path / "toy" / "peaks" / "E003"
    peak_dir.mkdir(parents=True)
    _write(peak_dir / "E003-H3K4me3.narrowPeak.gz", NARROW, gz=True)
    _write(peak_dir / "E003-H3K4me3.broadPeak.gz", "", gz=True)
    with pytest.raises(ValueError, match="No gappedPeak file for E003 H3K4me3"):
        peaks.call_cell_peaks(params, "E003")
    _write(peak_dir / "E003-H3K4me3.gappedPeak.gz", GAPPED, gz=True)
    table = peaks.call_cell_peaks(params, "E003").set_index("format")
    assert (table["status"] == "user file").all()
    assert table["n_peaks"].to_dict() == {
        "narrowPeak": 2,
        "broadPeak": 0,
        "gappedPeak": 1,
    }  # the empty file is reported


def test_missing_macs2_says_how_to_install():
    with pytest.raises(RuntimeError, match="apt-get install macs.*peaks.source: files"):
        peaks.find_macs2("no-such-macs2-executable")


def _toy_tagalign(path, centres, seed=0):
    """Reads: uniform background on 300 kb of chr1 plus enriched piles at ``centres``."""
    rng = np.random.default_rng(seed)
    starts = [rng.integers(0, 300_000, size=1500)]
    for centre, width, n in centres:
        starts.append(rng.normal(centre, width / 2, size=n).astype(np.int64))
    s = np.sort(np.concatenate(starts))
    strand = rng.choice(["+", "-"], size=s.size)
    with gzip.open(path, "wt") as f:
        for a, b in zip(s, strand):
            f.write(f"chr1\t{a}\t{a + 36}\tN\t1000\t{b}\n")


def test_covered_genome_size_counts_read_bins(tmp_path):
    path = tmp_path / "r.tagAlign.gz"
    with gzip.open(path, "wt") as f:
        for chrom, start in [("chr1", 10), ("chr1", 999), ("chr1", 1000), ("chr1", 5500), ("chr2", 10)]:
            f.write(f"{chrom}\t{start}\t{start + 36}\tN\t1000\t+\n")
    assert peaks.covered_genome_size(path) == 4 * 1000  # chr1 bins 0, 1, 5 and chr2 bin 0
    auto = {"gsize": "auto"}
    assert peaks.resolve_gsize(auto, path, "semi-synthetic") == "4000"
    assert peaks.resolve_gsize(auto, path, "real") == "hs"
    assert peaks.resolve_gsize({"gsize": "hs"}, path, "semi-synthetic") == "hs"


@pytest.mark.skipif(shutil.which("macs2") is None, reason="macs2 not installed")
def test_macs2_end_to_end_resume_and_features(tmp_path):
    params = load_params(
        "E003",
        overrides={
            "paths": {"data_dir": str(tmp_path)},
            "data": {"name": "toy"},
            "marks": ["H3K4me3"],
            "peaks": {"gsize": "3.0e5"},
        },
    )
    raw = tmp_path / "toy" / "raw"
    raw.mkdir(parents=True)
    _toy_tagalign(raw / "E003-H3K4me3.tagAlign.gz", [(50_000, 600, 300), (200_000, 4_000, 900)])
    table = peaks.call_cell_peaks(params, "E003")
    assert sorted(table["format"]) == ["broadPeak", "gappedPeak", "narrowPeak"]
    assert (table["status"] == "called").all() and (table["n_peaks"] > 0).all()
    for path in table["path"]:
        assert path.endswith(".gz") and peaks.read_peaks(path).shape[0] > 0
    peak_dir = tmp_path / "toy" / "peaks" / "E003"
    assert not list(peak_dir.glob(".macs2-*")), "temporary MACS2 folders must be removed"
    # resume: same command -> nothing is called again
    again = peaks.call_cell_peaks(params, "E003")
    assert (again["status"] == "existing").all()
    assert again["n_peaks"].tolist() == table["n_peaks"].tolist()
    # features from the called peaks: genes at the planted piles get a signal, a far gene none
    genes = pd.DataFrame({"chrom": ["chr1"] * 3, "tss": [50_000, 200_000, 120_000]})
    feats = peaks.peak_features(peak_dir, "E003", genes, marks=["H3K4me3"])
    for fmt, x in feats.items():
        assert x[0, 0] > 0 and x[1, 0] > 0, fmt
    # changed parameters -> called again
    params["peaks"]["extsize"] = 150
    third = peaks.call_cell_peaks(params, "E003")
    assert (third["status"] == "called").all()
