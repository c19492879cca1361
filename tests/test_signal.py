"""chromexp.data.signal: exact bin means, checked against the bedtools binary and brute force.

The oracle is ``bedtools genomecov -bga`` / ``-bg`` on a tagAlign fixture (each read counted over
its own [start, end), no ``-fs``, as both reference codes), expanded to a per-base depth array
and averaged bin by bin in Python. Our path never builds a per-base array, yet must give the
*identical* float64 means (exact equality).
"""

from __future__ import annotations

import gzip
import io as stdio
import math
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from chromexp.data import io, signal

SIZES = {"chr1": 30_000, "chr2": 12_345, "chr10": 5_000}
READ = 36


def _reads(seed: int = 0, n: int = 4000) -> pd.DataFrame:
    """Random 36 bp reads on both strands, including reads touching both chromosome ends."""
    rng = np.random.default_rng(seed)
    chroms = rng.choice(list(SIZES), size=n, p=[0.6, 0.3, 0.1])
    length = np.array([SIZES[c] for c in chroms])
    start = rng.integers(0, length - READ + 1)
    # clustered reads (deep pileups) at a few spots, crossing bin edges (multiples of 100)
    hot = rng.random(n) < 0.3
    start[hot] = np.clip((rng.integers(1, 50, hot.sum()) * 100 - 18 + rng.integers(-5, 6, hot.sum())), 0, None)
    start = np.minimum(start, length - READ)
    extra = pd.DataFrame(
        {
            "chrom": ["chr1", "chr1", "chr2", "chr2", "chr10"],
            "start": [0, SIZES["chr1"] - READ, 0, SIZES["chr2"] - READ, SIZES["chr10"] - READ],
        }
    )
    frame = pd.concat([pd.DataFrame({"chrom": chroms, "start": start}), extra], ignore_index=True)
    frame["end"] = frame["start"] + READ
    frame["strand"] = np.where(rng.random(len(frame)) < 0.5, "+", "-")
    return frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # unsorted on purpose


def _write_tagalign(frame: pd.DataFrame, path) -> None:
    out = frame.assign(name="N", score=1000)[["chrom", "start", "end", "name", "score", "strand"]]
    with gzip.open(path, "wt") as handle:
        out.to_csv(handle, sep="\t", header=False, index=False)


def _bedtools(args, bed_path, genome_path) -> pd.DataFrame:
    text = subprocess.run(
        ["bedtools", "genomecov", *args, "-i", str(bed_path), "-g", str(genome_path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return pd.read_csv(stdio.StringIO(text), sep="\t", header=None, names=["chrom", "start", "end", "value"])


def _per_base(bedgraph: pd.DataFrame) -> dict[str, np.ndarray]:
    depth = {c: np.zeros(n, dtype=np.int64) for c, n in SIZES.items()}
    for c, s, e, v in bedgraph.itertuples(index=False):
        depth[c][s:e] = v
    return depth


def _brute_bins(depth: np.ndarray, start: int, length: int, bin_size: int) -> np.ndarray:
    return np.array([depth[start + o : start + min(o + bin_size, length)].mean() for o in range(0, length, bin_size)])


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    if shutil.which("bedtools") is None:
        pytest.skip("bedtools is not installed")
    root = tmp_path_factory.mktemp("signal")
    reads = _reads()
    tag = root / "E003-H3K4me3.tagAlign.gz"
    _write_tagalign(reads, tag)
    genome = root / "genome.txt"
    genome.write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    # bedtools needs reads grouped by chromosome; our reader takes the unsorted file as is
    sorted_bed = root / "sorted.bed"
    reads.sort_values(["chrom", "start"]).assign(name="N", score=1000)[
        ["chrom", "start", "end", "name", "score", "strand"]
    ].to_csv(sorted_bed, sep="\t", header=False, index=False)
    bga = _bedtools(["-bga"], sorted_bed, genome)
    bg = _bedtools(["-bg"], sorted_bed, genome)
    return {"reads": reads, "tag": tag, "bga": bga, "bg": bg, "depth": _per_base(bga), "root": root}


@pytest.mark.parametrize("bin_size", [100, 500, 2000, 37])
def test_bins_equal_bedtools_exactly(oracle, bin_size):
    reads = io.read_tagalign(oracle["tag"], SIZES)
    cov = signal.ReadCoverage.from_reads(reads)
    depth = oracle["depth"]
    assert depth["chr1"].sum() == READ * (reads["chrom"] == "chr1").sum()  # the oracle counts whole reads
    for chrom, n in SIZES.items():
        length = 4_321  # not a multiple of any bin size: the last bin is partial
        starts = np.array([0, 1, 99, 250, n - length])  # windows at both chromosome ends
        ours = signal.binned_means(cov, [chrom] * len(starts), starts, length, bin_size)
        brute = np.stack([_brute_bins(depth[chrom], s, length, bin_size) for s in starts])
        assert ours.shape == (len(starts), math.ceil(length / bin_size))
        np.testing.assert_array_equal(ours, brute)
        # the same from bedtools' own bedGraph (-bg omits zero runs; -bga lists them)
        for key in ("bg", "bga"):
            icov = signal.IntervalCoverage(oracle[key])
            np.testing.assert_array_equal(
                signal.binned_means(icov, [chrom] * len(starts), starts, length, bin_size), brute
            )


def test_whole_chromosome_bins_and_total(oracle):
    cov = signal.ReadCoverage.from_reads(oracle["reads"])
    for chrom, n in SIZES.items():
        ours = signal.binned_means(cov, [chrom], [0], n, 100)[0]
        np.testing.assert_array_equal(ours, _brute_bins(oracle["depth"][chrom], 0, n, 100))
    assert cov.window_sums("chr2", np.array([0]), np.array([SIZES["chr2"]]))[0] == oracle["depth"]["chr2"].sum()


def test_intervals_and_window_means(oracle):
    cov = signal.ReadCoverage.from_reads(oracle["reads"])
    depth = oracle["depth"]
    chroms = np.array(["chr1", "chr2", "chr1", "chr10"])
    starts = np.array([5, 100, 29_000, 4_000])
    ends = np.array([1_234, 7_777, 30_000, 5_000])
    values, offsets = signal.binned_intervals(cov, chroms, starts, ends, 500)
    for i, (c, s, e) in enumerate(zip(chroms, starts, ends)):
        np.testing.assert_array_equal(values[offsets[i] : offsets[i + 1]], _brute_bins(depth[c], s, e - s, 500))
    means = signal.window_means(cov, chroms, starts, ends)
    np.testing.assert_array_equal(means, [depth[c][s:e].mean() for c, s, e in zip(chroms, starts, ends)])


def test_strand_flip_invariance(oracle):
    """Mirroring the reads about the TSS and flipping the strand gives the same oriented bins.

    A minus-strand gene's oriented bins (upstream first) on mirrored reads equal the plus-strand
    gene's bins on the original reads; unoriented, the mirrored bins are the original ones reversed.
    """
    reads = oracle["reads"]
    tss, hw = 15_000, 10_000
    # mirror x -> 2 * tss - 1 - x maps [tss - hw, tss + hw) onto itself
    mirrored = reads.assign(start=2 * tss - reads["end"], end=2 * tss - reads["start"])
    mirrored = mirrored[(mirrored["start"] >= 0) & (mirrored["chrom"] == "chr1")]
    cov = signal.ReadCoverage.from_reads(reads[reads["chrom"] == "chr1"])
    cov_m = signal.ReadCoverage.from_reads(mirrored)
    for bin_size in (100, 500, 2000):
        raw = signal.binned_means(cov, ["chr1"], [tss - hw], 2 * hw, bin_size)
        raw_m = signal.binned_means(cov_m, ["chr1"], [tss - hw], 2 * hw, bin_size)
        np.testing.assert_array_equal(raw_m, raw[:, ::-1])
        plus = signal.orient(raw, ["+"])
        minus = signal.orient(raw_m, ["-"])
        np.testing.assert_array_equal(minus, plus)
        assert not np.array_equal(raw, raw[:, ::-1])  # the test is not vacuous
        assert minus.shape[1] == 2 * hw // bin_size


def test_log_transform_bases():
    mean = np.array([0.0, 0.5, 3.0, 100.0])
    np.testing.assert_array_equal(signal.log_transform(mean, "e"), np.log1p(mean).astype(np.float32))
    np.testing.assert_allclose(signal.log_transform(mean, 2), np.log2(mean + 1), rtol=1e-6)
    np.testing.assert_allclose(signal.log_transform(mean, "10"), np.log10(mean + 1), rtol=1e-6)
    assert signal.log_transform(mean).dtype == np.float32
    with pytest.raises(ValueError, match="log_base"):
        signal.log_transform(mean, 3)


def test_known_regions_and_overlap_errors():
    bg = pd.DataFrame({"chrom": ["chr1"] * 2, "start": [10, 30], "end": [20, 40], "value": [2.0, 1.0]})
    known = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [0, 25], "end": [25, 50]})  # touching: one region
    cov = signal.IntervalCoverage(bg, known)
    assert cov.known("chr1", np.array([0, 5, 45, 40]), np.array([50, 30, 51, 50])).tolist() == [True, True, False, True]
    assert not cov.known("chr2", np.array([0]), np.array([1]))[0]
    assert cov.window_sums("chr1", np.array([0, 15]), np.array([50, 35])).tolist() == [30, 15]
    assert cov.integral
    bad = pd.DataFrame({"chrom": ["chr1"] * 2, "start": [10, 15], "end": [20, 40], "value": [1.0, 1.0]})
    with pytest.raises(ValueError, match="overlap"):
        signal.IntervalCoverage(bad)
    frac = signal.IntervalCoverage(bg.assign(value=[0.5, 0.25]))
    assert not frac.integral and frac.window_sums("chr1", np.array([0]), np.array([50]))[0] == 7.5


def test_bad_reads_raise():
    with pytest.raises(ValueError, match="start < end"):
        signal.ReadCoverage.from_arrays(["chr1"], np.array([10]), np.array([10]))
    cov = signal.ReadCoverage.from_arrays(["chr1"], np.array([0]), np.array([36]))
    with pytest.raises(ValueError, match="end > start"):
        signal.window_means(cov, ["chr1"], [5], [5])
    with pytest.raises(ValueError, match="'\\+' or '-'"):
        signal.orient(np.zeros((1, 3)), ["."])


def test_bigwig_track_equals_bedtools(oracle):
    """A bigWig of bedtools' depth (as a user may supply) gives the same exact bins as the reads."""
    pybigwig = pytest.importorskip("pyBigWig")
    path = oracle["root"] / "depth.bw"
    bw = pybigwig.open(str(path), "w")
    bw.addHeader([(c, n) for c, n in sorted(SIZES.items())])
    bg = oracle["bg"].sort_values(["chrom", "start"])
    bw.addEntries(
        bg["chrom"].tolist(), bg["start"].tolist(), ends=bg["end"].tolist(), values=bg["value"].astype(float).tolist()
    )
    bw.close()
    cov = signal.IntervalCoverage.from_bigwig(path)
    reads = signal.ReadCoverage.from_reads(oracle["reads"])
    starts = np.array([0, 777, 7_000])
    for chrom in SIZES:
        np.testing.assert_array_equal(
            signal.binned_means(cov, [chrom] * 3, starts, 4_999, 500),
            signal.binned_means(reads, [chrom] * 3, starts, 4_999, 500),
        )


def test_multi_resolution_equals_single(oracle):
    cov = signal.ReadCoverage.from_reads(oracle["reads"])
    chroms, starts = ["chr1", "chr2", "chr1"], np.array([17_000, 3, 250])
    multi = signal.binned_means_multi(cov, chroms, starts, 9_001, [100, 37, 2000])
    for b, arr in multi.items():
        np.testing.assert_array_equal(arr, signal.binned_means(cov, chroms, starts, 9_001, b))
        want = np.stack([_brute_bins(oracle["depth"][c], s, 9_001, b) for c, s in zip(chroms, starts)])
        np.testing.assert_array_equal(arr, want)


def test_threaded_index_equals_sequential(monkeypatch):
    """ReadCoverage indexes chromosomes in threads from 10^6 reads on: same arrays as one thread."""
    rng = np.random.default_rng(3)
    n = 1_200_000
    chrom = pd.Categorical(rng.choice(["chr1", "chr2", "chr3"], n))
    start = rng.integers(0, 5_000_000, n)
    end = start + rng.integers(20, 40, n)  # unequal lengths: ends sorted separately
    built = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        built[threads] = signal.ReadCoverage.from_arrays(chrom, start, end)
    assert built["1"].chroms == built["2"].chroms
    for c in built["1"].chroms:
        for a, b in zip(built["1"]._data[c], built["2"]._data[c]):
            assert np.array_equal(a, b)


def test_grouped_and_shuffled_reads_give_the_same_index():
    """Reads grouped by chromosome take the no-sort path; shuffled ones the radix sort: same arrays."""
    rng = np.random.default_rng(4)
    n = 50_000
    chrom = np.sort(rng.choice(["chr1", "chr2", "chr9"], n))  # grouped (as bedtools wants)
    start = rng.integers(0, 100_000, n)
    end = start + 36
    shuffle = rng.permutation(n)
    grouped = signal.ReadCoverage.from_arrays(pd.Categorical(chrom), start, end)
    mixed = signal.ReadCoverage.from_arrays(pd.Categorical(chrom[shuffle]), start[shuffle], end[shuffle])
    assert grouped.chroms == mixed.chroms
    for c in grouped.chroms:
        for a, b in zip(grouped._data[c], mixed._data[c]):
            assert np.array_equal(a, b)
    x = np.arange(0, 100_001, 997)
    assert np.array_equal(grouped.cumulative("chr9", x), mixed.cumulative("chr9", x))
