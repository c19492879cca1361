"""chromexp.data.intervals (pybedtools, bedtools semantics) against the numpy paths and brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromexp.baselines import peaks
from chromexp.data import intervals


@pytest.fixture
def fixture_tables():
    rng = np.random.default_rng(7)
    n_peaks, n_genes = 300, 120
    chroms = np.array(["chr1", "chr2", "chr10"])
    start = rng.integers(0, 200_000, n_peaks)
    peak_table = pd.DataFrame(
        {
            "chrom": rng.choice(chroms, n_peaks),
            "start": start,
            "end": start + rng.integers(1, 3000, n_peaks),
            "signal_value": np.round(rng.gamma(2.0, 3.0, n_peaks), 3),
        }
    )
    genes = pd.DataFrame(
        {"chrom": rng.choice(np.append(chroms, "chrX"), n_genes), "tss": rng.integers(0, 210_000, n_genes)}
    )
    genes.loc[0, "tss"] = 100  # window clipped at the chromosome start
    return peak_table, genes


def _brute_max(peak_table, genes, flank):
    out = np.zeros(len(genes))
    for i, g in genes.iterrows():
        hit = peak_table[
            (peak_table.chrom == g.chrom) & (peak_table.start < g.tss + flank) & (peak_table.end > g.tss - flank)
        ]
        out[i] = hit.signal_value.max() if len(hit) else 0.0
    return out


def test_peak_max_equals_the_numpy_feature_and_brute_force(fixture_tables):
    peak_table, genes = fixture_tables
    for flank in (0, 750, 5000):
        ours = peaks.peak_max_feature(peak_table, genes, flank=flank)
        with_bedtools = intervals.peak_max(peak_table, genes, flank=flank)
        np.testing.assert_array_equal(with_bedtools, ours)
        np.testing.assert_array_equal(with_bedtools, _brute_max(peak_table, genes, flank))
    assert (with_bedtools > 0).any() and (with_bedtools == 0).any()


def test_overlaps_count_each_feature_once_per_region(fixture_tables):
    peak_table, genes = fixture_tables
    regions = pd.DataFrame({"chrom": genes.chrom, "start": np.maximum(genes.tss - 2000, 0), "end": genes.tss + 2000})
    variants = pd.DataFrame({"chrom": peak_table.chrom, "start": peak_table.start, "end": peak_table.start + 1})
    variants = pd.concat([variants, variants.iloc[:5]], ignore_index=True)  # duplicated features count twice
    counts = intervals.count_overlaps(regions, variants)
    pairs = intervals.overlap_pairs(regions, variants)
    brute = [
        (i, j)
        for i, r in regions.iterrows()
        for j, v in variants.iterrows()
        if r.chrom == v.chrom and v.start < r.end and v.end > r.start
    ]
    assert list(map(tuple, pairs[["a", "b"]].to_numpy())) == sorted(brute)
    np.testing.assert_array_equal(counts, np.bincount([i for i, _ in brute], minlength=len(regions)))


def test_merge_is_the_union(fixture_tables):
    peak_table, _ = fixture_tables
    merged = intervals.merge(peak_table)
    for chrom, group in peak_table.groupby("chrom"):
        covered = np.zeros(205_000, dtype=bool)
        for s, e in zip(group.start, group.end, strict=True):
            covered[s:e] = True
        m = merged[merged.chrom == chrom]
        mine = np.zeros_like(covered)
        for s, e in zip(m.start, m.end, strict=True):
            mine[s:e] = True
        np.testing.assert_array_equal(mine, covered)
        assert (m.start.to_numpy()[1:] > m.end.to_numpy()[:-1]).all()  # book-ended runs merged


def test_temporary_files_are_removed(fixture_tables, tmp_path, monkeypatch):
    import pybedtools

    folders, seen = [], []

    def mkdtemp(prefix):
        folders.append(tmp_path / f"bt{len(folders)}")
        folders[-1].mkdir()
        return str(folders[-1])

    read = intervals._read

    def spy(result, names):
        seen.append(sorted(p.name for p in folders[-1].iterdir()))  # files pybedtools made meanwhile
        return read(result, names)

    monkeypatch.setattr(intervals.tempfile, "mkdtemp", mkdtemp)
    monkeypatch.setattr(intervals, "_read", spy)
    before = pybedtools.get_tempdir()
    peak_table, genes = fixture_tables
    intervals.peak_max(peak_table, genes)
    intervals.count_overlaps(peak_table, peak_table)
    assert len(folders) == 2 and all(seen), seen  # temp files existed during each call ...
    assert not any(f.exists() for f in folders)  # ... and are gone afterwards
    assert pybedtools.get_tempdir() == before  # the previous temp dir is restored


def test_missing_bedtools_gives_the_install_message(fixture_tables, monkeypatch):
    peak_table, genes = fixture_tables
    monkeypatch.setattr(intervals.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install bedtools"):
        intervals.peak_max(peak_table, genes)


def test_bad_tables_are_rejected():
    with pytest.raises(ValueError, match="signal_value"):
        intervals.peak_max(pd.DataFrame({"chrom": [], "start": [], "end": []}), pd.DataFrame({"chrom": [], "tss": []}))
    with pytest.raises(ValueError, match="start > end"):
        intervals.merge(pd.DataFrame({"chrom": ["chr1"], "start": [10], "end": [5]}))
