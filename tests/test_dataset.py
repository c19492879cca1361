"""chromexp.data.dataset: a tiny raw dataset built in tmp_path, checked against brute force.

The fixture writes the raw files of one cell type in the real formats (genes.tsv, RPKM matrix,
tagAlign.gz per mark, chrom sizes, pcHi-C pairs) with planted special cases: genes that must be
excluded (unknown strand, unknown chromosome, no expression, window past the chromosome start,
chromosome without any read), and pcHi-C pairs that test the pCRE rule (frequency exactly at the
threshold, a fragment longer than 40 kb, a trans pair, more than 8 partners, a frequency tie).
Signals are compared with brute force over a per-base depth array built with ``np.add.at``.
"""

from __future__ import annotations

import gzip
import math

import numpy as np
import pandas as pd
import pytest

from chromexp.config import load_params
from chromexp.constants import CHROMOSOMES, FOLD_CHROMS, MARKS
from chromexp.data import dataset, io

SIZE = 200_000
GENE_CHROMS = ["chr1", "chr2", "chr3", "chr5", "chr7", "chr9", "chr10", "chr13", "chr16", "chr21", "chrX", "chr22"]
TSS_A = 50_000  # gene A: chr1, plus strand, 11 pcHi-C partners
TSS_B = 100_000  # gene B: chr2, minus strand, 2 pCREs of odd bin counts


def _make_raw(root, seed=0):
    rng = np.random.default_rng(seed)
    raw = root / "data" / "toy" / "raw"
    (raw / "pchic").mkdir(parents=True)
    chroms = [*CHROMOSOMES, "chrUn_gl000220"]
    (raw / "hg19.chrom.sizes").write_text("".join(f"{c}\t{SIZE}\n" for c in chroms))
    rows = []
    for c in GENE_CHROMS:
        for k, tss in enumerate((TSS_A, TSS_B, 150_000)):
            strand = "+" if (k + len(c)) % 2 == 0 else "-"
            rows.append((f"G_{c}_{k}", c, tss, strand))
    genes = pd.DataFrame(rows, columns=["gene_id", "chrom", "tss", "strand"])
    genes.loc[genes["gene_id"] == "G_chr1_0", "strand"] = "+"
    genes.loc[genes["gene_id"] == "G_chr2_1", "strand"] = "-"
    bad = pd.DataFrame(
        [
            ("BAD_strand", "chr3", 60_000, "."),
            ("BAD_chrom", "chrUn_gl000220", 60_000, "+"),
            ("BAD_noexpr", "chr5", 60_000, "+"),
            ("BAD_edge", "chr7", 10_000, "-"),
            ("BAD_empty", "chrY", 60_000, "+"),
        ],
        columns=genes.columns,
    )
    genes = pd.concat([genes, bad], ignore_index=True)
    genes["gene_name"] = genes["gene_id"].str.lower()
    genes["gene_length"] = 5000
    genes[["gene_id", "gene_name", "chrom", "tss", "strand", "gene_length"]].to_csv(
        raw / "genes.tsv", sep="\t", index=False
    )
    expr = genes.loc[genes["gene_id"] != "BAD_noexpr", ["gene_id"]].copy()
    expr["E003"] = np.round(rng.exponential(5.0, len(expr)), 3)
    expr["E116"] = 1.0
    with gzip.open(raw / "57epigenomes.RPKM.pc.gz", "wt") as h:
        expr.to_csv(h, sep="\t", index=False)
    reads = {}
    read_chroms = [c for c in GENE_CHROMS] + ["chr4"]  # no read on chrY: BAD_empty has an empty track
    for m in MARKS:
        n = 6000
        c = rng.choice(read_chroms, n)
        s = rng.integers(0, SIZE - 36, n)
        hot = rng.random(n) < 0.4  # pile reads up near the TSSs and fragments of genes A and B
        s[hot] = np.clip(rng.normal(TSS_A if m != "H3K9me3" else TSS_B, 4000, hot.sum()).astype(int), 0, SIZE - 36)
        frame = pd.DataFrame({"chrom": c, "start": s, "end": s + 36, "name": "N", "score": 1000})
        frame["strand"] = np.where(rng.random(n) < 0.5, "+", "-")
        reads[m] = frame
        with gzip.open(raw / f"E003-{m}.tagAlign.gz", "wt") as h:
            frame.to_csv(h, sep="\t", header=False, index=False)
    pairs = []
    bait_a = ("chr1", 49_000, 52_000)
    partners_a = [  # (start, end, frequency)
        (60_000, 63_000, 3.0),
        (20_000, 23_000, 2.5),  # tie with the next; "chr1:120000-125000" < "chr1:20000-23000" as strings
        (120_000, 125_000, 2.5),
        (70_000, 71_234, 2.0),
        (80_000, 86_000, 1.9),
        (90_000, 95_000, 1.8),
        (30_000, 31_000, 1.7),
        (32_000, 33_000, 1.6),
        (34_000, 36_000, 1.55),  # 9th valid partner: trimmed
        (40_000, 41_000, 1.5),  # not > 1.5
        (130_000, 175_001, 5.0),  # 45,001 bp > 40 kb
    ]
    for s, e, f in partners_a:
        pairs.append((*bait_a, "chr1", s, e, f))
    pairs.append((*bait_a, "chr2", 10_000, 12_000, 4.0))  # trans
    bait_b = ("chr2", 98_500, 100_500)
    pairs.append((*bait_b, "chr2", 120_000, 124_250, 2.2))  # 4,250 bp: 43 bins at 100 bp, 3 at 2 kb
    pairs.append((*bait_b, "chr2", 60_000, 60_150, 1.8))  # 150 bp: 2 bins (one partial) at 100 bp
    cols = ["bait_chrom", "bait_start", "bait_end", "other_chrom", "other_start", "other_end", "frequency"]
    with gzip.open(raw / "pchic" / "H1.tsv.gz", "wt") as h:
        pd.DataFrame(pairs, columns=cols).to_csv(h, sep="\t", index=False)
    return raw, reads, expr


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    raw, reads, expr = _make_raw(root)
    # hand-written files in the real formats, not generated: real as far as provenance goes
    params = load_params(
        "E003", overrides={"paths": {"data_dir": str(root / "data")}, "data": {"name": "toy", "source": "roadmap"}}
    )
    path = dataset.build_dataset(params, "E003")
    depth = {}
    for m, frame in reads.items():
        depth[m] = {}
        for c, g in frame.groupby("chrom"):
            d = np.zeros(SIZE + 1, dtype=np.int64)
            np.add.at(d, g["start"].to_numpy(), 1)
            np.add.at(d, g["end"].to_numpy(), -1)
            depth[m][c] = np.cumsum(d)[:SIZE]
    return {"params": params, "path": path, "ds": dataset.load_dataset(params, "E003"), "depth": depth, "expr": expr}


def _brute(depth, chrom, start, end, bin_size):
    d = depth.get(chrom, np.zeros(SIZE, dtype=np.int64))
    return np.array([d[a : min(a + bin_size, end)].mean() for a in range(start, end, bin_size)])


def test_genes_table_and_exclusions(toy):
    ds = toy["ds"]
    # hand-written files without the generator's manifest: real as far as provenance goes (from disk)
    assert ds.provenance == "real" and ds.cell_type == "E003" and ds.marks == MARKS
    assert ds.resolutions == (100, 500, 2000)
    assert list(ds.genes.columns) == [
        "gene_id",
        "gene_name",
        "chrom",
        "tss",
        "strand",
        "fold",
        "rpkm",
        "target",
        "label",
    ]
    assert len(ds) == 3 * len(GENE_CHROMS)
    assert not ds.genes["gene_id"].str.startswith("BAD").any()
    ex = ds.exclusions.set_index("reason")
    expected = {
        "unknown_strand": "BAD_strand",
        "unknown_chromosome": "BAD_chrom",
        "no_expression": "BAD_noexpr",
        "window_outside_chromosome": "BAD_edge",
        "empty_track": "BAD_empty",
    }
    for reason, gene in expected.items():
        assert ex.loc[reason, "n_genes"] == 1 and ex.loc[reason, "example_gene_ids"] == gene
    for reason in ("pcre_low_frequency", "pcre_too_long", "pcre_trans", "pcre_trimmed"):
        assert ex.loc[reason, "n_items"] == 1 and ex.loc[reason, "example_gene_ids"] == "G_chr1_0"
    reasons = set(dataset.GENE_REASONS) | set(dataset.PCRE_REASONS) | set(dataset.READ_REASONS)
    assert reasons == set(ex.index)  # zero counts reported too
    g = ds.genes
    median = np.median(g["rpkm"])
    assert np.array_equal(g["label"], (g["rpkm"] >= median).astype(int)) and ds.label_median == median
    np.testing.assert_allclose(g["target"], np.log2(g["rpkm"] + 1))
    assert g["fold"].tolist() == [dataset.CHROM_FOLD[c] for c in g["chrom"]]


def test_promoter_bins_equal_brute_force_both_strands(toy):
    ds, depth = toy["ds"], toy["depth"]
    for gene, strand in (("G_chr1_0", "+"), ("G_chr2_1", "-")):
        i = int(np.flatnonzero(ds.genes["gene_id"] == gene)[0])
        assert ds.genes.loc[i, "strand"] == strand
        tss = int(ds.genes.loc[i, "tss"])
        chrom = ds.genes.loc[i, "chrom"]
        for res in (100, 500, 2000):
            x = ds.promoter(resolution=res)[i]
            assert x.shape == (7, 40_000 // res) and x.dtype == np.float32
            for k, m in enumerate(MARKS):
                bins = _brute(depth[m], chrom, tss - 20_000, tss + 20_000, res)
                if strand == "-":
                    bins = bins[::-1]
                np.testing.assert_array_equal(x[k], np.log1p(bins).astype(np.float32))
        # the promoter CNN's view: TSS ± 3 kb at 100 bp = 60 bins, the central bins of the 40 kb window
        cnn = ds.promoter(marks=["H3K4me3"], resolution=100, half_window=3000)
        assert cnn.shape == (len(ds), 1, 60)
        np.testing.assert_array_equal(cnn[i, 0], ds.promoter(resolution=100)[i, 1, 170:230])
        for flank in (750, 1500, 3000):
            f = ds.flank_means(marks=["H3K27ac", "H3K4me1"], flank=flank)[i]
            want = [np.log1p(depth[m][chrom][tss - flank : tss + flank].mean()) for m in ("H3K27ac", "H3K4me1")]
            np.testing.assert_array_equal(f, np.array(want).astype(np.float32))


def test_pcre_order_trimming_and_padding(toy):
    ds, depth = toy["ds"], toy["depth"]
    table = ds.pcre_table()
    a = table[table["gene_id"] == "G_chr1_0"].sort_values("slot")
    assert a["start"].tolist() == [60_000, 120_000, 20_000, 70_000, 80_000, 90_000, 30_000, 32_000]
    np.testing.assert_allclose(a["frequency"], [3.0, 2.5, 2.5, 2.0, 1.9, 1.8, 1.7, 1.6])
    for res in (100, 500, 2000):
        x, mask, freq, n = ds.pcres(resolution=res)
        length = 40_000 // res
        assert x.shape == (len(ds), 8, 7, length) and mask.shape == (len(ds), 8, length) and freq.shape == (len(ds), 8)
        ib = int(np.flatnonzero(ds.genes["gene_id"] == "G_chr2_1")[0])
        assert n[ib] == 2 and ds.genes.loc[ib, "strand"] == "-"
        np.testing.assert_allclose(freq[ib], [2.2, 1.8, 0, 0, 0, 0, 0, 0], rtol=1e-6)
        for slot, (start, end) in enumerate([(120_000, 124_250), (60_000, 60_150)]):
            nb = math.ceil((end - start) / res)
            left = math.ceil((length - nb) / 2)  # right pad = floor
            assert np.array_equal(np.flatnonzero(~mask[ib, slot]), np.arange(left, left + nb))
            for k, m in enumerate(MARKS):
                want = np.log1p(_brute(depth[m], "chr2", start, end, res)).astype(np.float32)  # never flipped
                np.testing.assert_array_equal(x[ib, slot, k, left : left + nb], want)
                assert np.all(x[ib, slot, k, :left] == 0) and np.all(x[ib, slot, k, left + nb :] == 0)
        assert np.all(x[ib, 2:] == 0) and np.all(mask[ib, 2:]) and np.all(freq[n == 0] == 0)
    # subsets of marks and genes are slices of the full tensors
    x_all = ds.pcres(resolution=500)[0]
    x_sub = ds.pcres(marks=["H3K9ac", "H3K4me1"], resolution=500, genes=[3, 0])[0]
    np.testing.assert_array_equal(x_sub, x_all[[3, 0]][:, :, [6, 0]])


def test_split_is_deterministic_and_disjoint(toy):
    ds = toy["ds"]
    for fold in (1, 2, 3, 4):
        s1, s2 = ds.split(fold), ds.split(fold)
        for key in ("train", "validation", "test"):
            assert np.array_equal(s1[key], s2[key])
        allidx = np.concatenate([s1["train"], s1["validation"], s1["test"]])
        assert np.array_equal(np.sort(allidx), np.arange(len(ds)))  # disjoint and complete
        chroms = ds.genes["chrom"].to_numpy()
        assert set(chroms[s1["test"]]) == set(FOLD_CHROMS[fold]) & set(chroms)
        val = set(chroms[s1["validation"]])
        assert val and not val & set(FOLD_CHROMS[fold]) and not val & set(chroms[s1["train"]])


def test_validation_rule_on_real_gene_counts():
    """On the real 19k-gene table every fold's validation set is ≈ 12 % of its training genes."""
    genes = io.read_gene_table(dataset.paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz")
    counts = genes["chrom"].value_counts().to_dict()
    for fold in (1, 2, 3, 4):
        chosen = dataset.validation_chromosomes(counts, fold, 0.12)
        assert chosen == dataset.validation_chromosomes(dict(reversed(list(counts.items()))), fold, 0.12)
        n_train = sum(n for c, n in counts.items() if dataset.CHROM_FOLD.get(c, fold) != fold)
        frac = sum(counts[c] for c in chosen) / n_train
        assert 0.10 <= frac <= 0.14, (fold, chosen, frac)
        assert not set(chosen) & set(FOLD_CHROMS[fold])
    with pytest.raises(ValueError, match="validation_fraction"):
        dataset.validation_chromosomes(counts, 1, 1.5)


def test_store_is_reused_rebuilt_and_checked(toy):
    params, path = toy["params"], toy["path"]
    mtime = path.stat().st_mtime_ns
    assert dataset.build_dataset(params, "E003") == path and path.stat().st_mtime_ns == mtime  # reused
    # a run restricted to fewer marks reuses the 7-mark store; the validation fraction is a load-time choice
    fewer = load_params(
        "E003",
        overrides={
            "paths": params["paths"],
            "data": params["data"],
            "marks": ["H3K4me3"],
            "dataset": {"validation_fraction": 0.3},
        },
    )
    assert dataset.build_dataset(fewer, "E003") == path and path.stat().st_mtime_ns == mtime
    ds_fewer = dataset.load_dataset(fewer, "E003")
    assert ds_fewer.marks == MARKS and ds_fewer.validation_fraction == 0.3
    assert len(ds_fewer.split(1)["validation"]) > len(toy["ds"].split(1)["validation"])
    other = load_params(
        "E003", overrides={**{"paths": params["paths"]}, "data": params["data"], "signal": {"log_base": "2"}}
    )
    with pytest.raises(ValueError, match="other parameters"):
        dataset.load_dataset(other, "E003")
    dataset.build_dataset(params, "E003", force=True)
    assert path.stat().st_mtime_ns != mtime
    again = dataset.load_dataset(params, "E003")
    np.testing.assert_array_equal(again.promoter(resolution=2000), toy["ds"].promoter(resolution=2000))
    with pytest.raises(ValueError, match="resolution"):
        again.promoter(resolution=250)
    with pytest.raises(ValueError, match="not in this dataset"):
        again.promoter(marks=["H3K79me2"])
    with pytest.raises(ValueError, match="naive_flanks"):
        again.flank_means(flank=1000)


def test_missing_raw_inputs_raise(tmp_path):
    params = load_params("E003", overrides={"paths": {"data_dir": str(tmp_path)}, "data": {"name": "nothing"}})
    with pytest.raises(ValueError, match="missing"):
        dataset.build_dataset(params, "E003")
    with pytest.raises(ValueError, match="No dataset store"):
        dataset.load_dataset(params, "E003")


def test_smoke_dataset_api(smoke_dataset):
    """The semi-synthetic smoke preset (shared session fixture) through the public API."""
    ds = smoke_dataset
    assert ds.provenance == "semi-synthetic" and len(ds) > 0
    n = len(ds)
    assert ds.promoter().shape == (n, 7, 400) and ds.promoter(resolution=2000).shape == (n, 7, 20)
    assert ds.promoter(marks="H3K4me3", half_window=3000).shape == (n, 1, 60)
    x, mask, freq, n_pcres = ds.pcres(marks=["H3K27ac"], resolution=500)
    assert x.shape == (n, 8, 1, 80) and mask.shape == (n, 8, 80) and n_pcres.max() <= 8
    assert np.isfinite(ds.promoter()).all() and np.isfinite(x).all()
    assert abs(ds.genes["label"].mean() - 0.5) < 0.1  # median threshold: about half the genes are active
    # active promoters carry more H3K4me3 at the TSS than inactive ones (the simulator's model)
    tss_bins = ds.promoter(marks="H3K4me3", half_window=1000)[:, 0].mean(axis=1)
    assert tss_bins[ds.genes["label"] == 1].mean() > tss_bins[ds.genes["label"] == 0].mean()
