"""Tests of the semi-synthetic generator (chromexp.simulate.roadmap, docs/methods.md, "Semi-synthetic data").

The smoke preset (``smoke_raw`` session fixture) is generated once and read back with the real
readers of chromexp.data.io; determinism and atomicity are checked on a tiny preset (30 genes).
"""

from __future__ import annotations

import copy
import gzip
import io as io_module
import json
import os

import numpy as np
import pandas as pd
import pytest

from chromexp.constants import CHROM_FOLD, FOLD_CHROMS, MARKS, PCHIC_TISSUE
from chromexp.data import binned, io
from chromexp.simulate import common, roadmap
from chromexp.simulate.calibration import reads_to_bins


def tiny_params(smoke_params, tmp_path, seed=0, n_genes=16, cell_types=("E003",)):
    p = copy.deepcopy(smoke_params)
    p["seed"] = seed
    p["simulate"]["presets"]["smoke"] = {"n_genes": n_genes, "cell_types": list(cell_types)}
    p["simulate"]["n_jobs"] = 1
    p["paths"]["data_dir"] = str(tmp_path)
    return p


def file_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------------------------
# formats
# ----------------------------------------------------------------------------------------------
def test_format_tagalign_matches_python_formatting():
    rng = np.random.default_rng(0)
    starts = np.concatenate([[0, 9, 10, 99, 100, 999_999, 1_000_000, 249_250_585], rng.integers(0, 2**28, 500)])
    minus = rng.random(len(starts)) < 0.5
    got = roadmap.format_tagalign("chr1", starts, minus, 36).decode().splitlines()
    want = [f"chr1\t{s}\t{s + 36}\tN\t1000\t{'-' if m else '+'}" for s, m in zip(starts, minus)]
    assert got == want
    assert roadmap.format_tagalign("chr2", np.zeros(0, int), np.zeros(0, bool), 36) == b""
    with pytest.raises(ValueError, match="starts must be >= 0"):
        roadmap.format_tagalign("chr1", np.array([-1]), np.array([False]), 36)


def test_gzip_bytes_header_has_no_timestamp_or_name():
    blob = common.gzip_bytes(b"hello\n")
    assert blob[4:8] == b"\x00\x00\x00\x00"  # MTIME = 0
    assert blob[3] & 0x08 == 0  # FLG.FNAME unset: no file name stored
    assert gzip.decompress(blob) == b"hello\n"
    assert common.gzip_bytes(b"hello\n") == blob


def test_smoke_files_pass_the_real_readers(smoke_params, smoke_raw):
    raw = smoke_raw
    sizes = io.read_chrom_sizes(raw / "hg19.chrom.sizes")
    genes = io.read_gene_table(raw / "genes.tsv")
    expr = io.read_expression(raw / "57epigenomes.RPKM.pc.gz")
    preset = smoke_params["simulate"]["presets"]["smoke"]
    assert len(genes) == preset["n_genes"] == 200
    assert list(genes.columns) == ["gene_id", "gene_name", "chrom", "tss", "strand", "gene_length"]
    assert set(genes["strand"]) <= {"+", "-"}
    # every fold has genes (chromosome spread), and the expression is the real vendored table
    assert {CHROM_FOLD[c] for c in genes["chrom"]} == set(FOLD_CHROMS)
    real = roadmap.load_real_genes().set_index("gene_id")
    assert set(expr.index) == set(genes["gene_id"])
    eids = list(expr.columns)
    assert len(eids) == 11
    np.testing.assert_array_equal(expr.loc[genes["gene_id"], eids], real.loc[genes["gene_id"], eids])
    assert (genes.set_index("gene_id")["tss"] == real.loc[genes["gene_id"], "tss"]).all()
    for ct in preset["cell_types"]:
        for mark in MARKS:
            reads = io.read_tagalign(raw / f"{ct}-{mark}.tagAlign.gz", sizes)
            assert len(reads) > 10_000
            assert ((reads["end"] - reads["start"]) == 36).all()
            assert set(reads["strand"].astype(str)) == {"+", "-"}
        tissue = PCHIC_TISSUE[ct]
        pchic = io.read_pchic(raw / "pchic" / f"{tissue}.tsv.gz", sizes)
        assert (pchic["frequency"] > 1.5).all()
        lengths = pchic["other_end"] - pchic["other_start"]
        assert 3_500 <= lengths.median() <= 7_500  # HindIII-like, median ~5 kb
        with gzip.open(raw / "pchic" / f"{tissue}.tsv.gz", "rt") as fh:
            assert fh.readline().rstrip("\n").split("\t") == list(roadmap.PCHIC_COLUMNS)
        # a gene's bait is the fragment containing its TSS; genes have 0 to more than 8 interactions
        merged = genes.merge(pchic, left_on="chrom", right_on="bait_chrom")
        holds = merged[(merged["tss"] >= merged["bait_start"]) & (merged["tss"] < merged["bait_end"])]
        counts = holds.groupby("gene_id").size().reindex(genes["gene_id"], fill_value=0)
        assert (counts > 0).mean() >= 0.8
        assert counts.min() == 0 and counts.max() > 8


def test_manifest_lists_every_file_with_its_hash(smoke_params, smoke_raw):
    manifest = json.loads((smoke_raw / "manifest.json").read_text())
    on_disk = {p.relative_to(smoke_raw).as_posix() for p in smoke_raw.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == on_disk - {"manifest.json"}
    assert manifest["params"]["preset"] == "smoke" and manifest["params"]["seed"] == smoke_params["seed"]
    assert roadmap.is_complete(smoke_raw, smoke_params, verify=True)
    readme = (smoke_raw / "truth" / "README.md").read_text()
    assert "SIMULATED" in readme and "eQTL" in readme


def test_generate_reuses_a_complete_dataset(smoke_params, smoke_raw):
    stamp = {p: p.stat().st_mtime_ns for p in smoke_raw.rglob("*") if p.is_file()}
    assert roadmap.generate(smoke_params) == smoke_raw
    assert {p: p.stat().st_mtime_ns for p in smoke_raw.rglob("*") if p.is_file()} == stamp


# ----------------------------------------------------------------------------------------------
# determinism, idempotence, atomicity
# ----------------------------------------------------------------------------------------------
def test_same_seed_gives_byte_identical_files_and_another_seed_differs(smoke_params, tmp_path):
    a = roadmap.generate(tiny_params(smoke_params, tmp_path / "a"))
    b = roadmap.generate(tiny_params(smoke_params, tmp_path / "b"))
    c = roadmap.generate(tiny_params(smoke_params, tmp_path / "c", seed=1))
    fa, fb, fc = file_bytes(a), file_bytes(b), file_bytes(c)
    assert fa.keys() == fb.keys() and all(fa[k] == fb[k] for k in fa)
    tag = "E003-H3K4me3.tagAlign.gz"
    assert fa[tag] != fc[tag]
    # the real inputs do not depend on the seed's read sampling... but gene choice offsets do: the
    # expression values of a chosen gene are always the real ones
    ea = io.read_expression(a / "57epigenomes.RPKM.pc.gz")
    ec = io.read_expression(c / "57epigenomes.RPKM.pc.gz")
    common = ea.index.intersection(ec.index)
    pd.testing.assert_frame_equal(ea.loc[common], ec.loc[common])


def test_parallel_and_serial_runs_are_identical(smoke_params, tmp_path):
    p1 = tiny_params(smoke_params, tmp_path / "serial", n_genes=12, cell_types=("E003", "E116"))
    p2 = copy.deepcopy(p1)
    p2["simulate"]["n_jobs"] = 2
    p2["paths"]["data_dir"] = str(tmp_path / "parallel")
    assert file_bytes(roadmap.generate(p1)) == file_bytes(roadmap.generate(p2))


def test_interrupted_run_never_looks_complete(smoke_params, tmp_path, monkeypatch):
    params = tiny_params(smoke_params, tmp_path)

    def boom(task):
        raise RuntimeError("killed")

    monkeypatch.setattr(roadmap, "_cell_type_task", boom)
    with pytest.raises(RuntimeError, match="killed"):
        roadmap.generate(params)
    raw = roadmap.paths.raw_dir(params)
    assert not raw.exists()
    assert not any(p.name.startswith(".raw.tmp") for p in raw.parent.iterdir())
    monkeypatch.undo()
    out = roadmap.generate(params)
    assert roadmap.is_complete(out, params, verify=True)
    # a changed knob invalidates the cache; a truncated file too
    changed = copy.deepcopy(params)
    changed["simulate"]["local_enhancers"] = 2.0
    assert not roadmap.is_complete(out, changed)
    tag = out / "E003-H3K27ac.tagAlign.gz"
    tag.write_bytes(tag.read_bytes()[:-10])
    assert not roadmap.is_complete(out, params)
    roadmap.generate(params)
    assert roadmap.is_complete(out, params, verify=True)


def test_bad_arguments_raise_clear_errors(smoke_params):
    p = copy.deepcopy(smoke_params)
    p["data"]["preset"] = "huge"
    with pytest.raises(ValueError, match="Unknown data.preset 'huge'"):
        roadmap.generate(p)
    p = copy.deepcopy(smoke_params)
    p["data"]["source"] = "roadmap"
    with pytest.raises(ValueError, match="only 'semisynthetic'"):
        roadmap.generate(p)
    table = roadmap.load_real_genes()
    with pytest.raises(ValueError, match="n_genes must be >= 1"):
        roadmap.select_genes(table, 0, 0)


# ----------------------------------------------------------------------------------------------
# gene choice and planted truth
# ----------------------------------------------------------------------------------------------
def test_gene_table_cleaning_and_demo_selection():
    table = roadmap.load_real_genes()
    assert set(table["strand"]) == {"+", "-"} and table["gene_id"].is_unique
    assert table["gene_length"].notna().all()
    demo = roadmap.select_genes(table, 2000, seed=0)
    assert len(demo) == 2000 and demo["gene_id"].is_unique
    assert set(demo["chrom"]) == set(table["chrom"])  # every chromosome, hence every fold
    share = demo["chrom"].value_counts() / 2000
    expected = table["chrom"].value_counts() / len(table)
    assert (share - expected.reindex(share.index)).abs().max() < 0.01
    pd.testing.assert_frame_equal(demo, roadmap.select_genes(table, 2000, seed=0))


def test_enhancers_explain_part_of_the_real_expression(smoke_params, smoke_raw):
    knobs = smoke_params["simulate"]
    enh = pd.read_csv(smoke_raw / "truth" / "enhancers.tsv.gz", sep="\t")
    truth = pd.read_csv(smoke_raw / "truth" / "genes.tsv.gz", sep="\t").set_index("gene_id")
    expr = io.read_expression(smoke_raw / "57epigenomes.RPKM.pc.gz")
    assert {"pchic", "local"} == set(enh["kind"])
    for ct in knobs["presets"]["smoke"]["cell_types"]:
        e = np.log2(expr.loc[truth.index, ct] + 1.0)
        contrib = enh.groupby("gene_id")[f"contribution_{ct}"].sum().reindex(truth.index, fill_value=0.0)
        np.testing.assert_allclose(truth[f"promoter_drive_{ct}"] + contrib, e, atol=1e-4)
        assert (contrib <= knobs["enhancer_max_share"] * e + 1e-4).all()
        assert (enh.loc[~enh[f"active_{ct}"], f"contribution_{ct}"] == 0).all()
        # enhancers of highly expressed genes are more often active (the stated mechanism)
        gene_e = e.reindex(enh["gene_id"]).to_numpy()
        hi = enh[f"active_{ct}"][gene_e > np.median(gene_e)].mean()
        lo = enh[f"active_{ct}"][gene_e <= np.median(gene_e)].mean()
        assert hi > lo
    pchic = enh[enh["kind"] == "pchic"]
    assert ((pchic["center"] >= pchic["fragment_start"]) & (pchic["center"] < pchic["fragment_end"])).all()


# ----------------------------------------------------------------------------------------------
# biology sanity on the smoke dataset (read back from the tagAlign files)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke_bins(smoke_raw):
    genes = io.read_gene_table(smoke_raw / "genes.tsv")
    expr = io.read_expression(smoke_raw / "57epigenomes.RPKM.pc.gz")
    target = np.log2(expr.loc[genes["gene_id"], "E003"].to_numpy() + 1.0)
    bins = {m: reads_to_bins(io.read_tagalign(smoke_raw / f"E003-{m}.tagAlign.gz"), genes) for m in MARKS}
    return genes, target, bins


def test_promoter_marks_follow_expression(smoke_bins):
    genes, target, bins = smoke_bins
    tss = {m: b[:, 199:201].mean(axis=1) for m, b in bins.items()}
    r = {m: np.corrcoef(tss[m], target)[0, 1] for m in MARKS}
    assert r["H3K4me3"] > 0.3 and r["H3K9ac"] > 0.3 and r["H3K27ac"] > 0.3
    # H3K27me3 is broad over repressed genes: its TSS ± 2 kb signal falls with expression
    k27 = bins["H3K27me3"][:, 180:220].mean(axis=1)
    assert np.corrcoef(k27, target)[0, 1] < 0


def test_h3k36me3_is_downstream_of_active_tss(smoke_bins):
    genes, target, bins = smoke_bins
    active = target > np.median(target)
    b = bins["H3K36me3"]
    downstream = b[active][:, 220:300].mean()  # +2 to +10 kb
    upstream = b[active][:, 100:180].mean()  # -10 to -2 kb
    assert downstream > upstream + 0.05
    assert b[active][:, 220:300].mean() > b[~active][:, 220:300].mean()


def test_reads_to_bins_matches_bedtools_genomecov(smoke_raw, tmp_path):
    import shutil
    import subprocess

    if shutil.which("bedtools") is None:
        pytest.skip("bedtools not installed")
    genes = io.read_gene_table(smoke_raw / "genes.tsv").head(6)
    reads = io.read_tagalign(smoke_raw / "E003-H3K4me3.tagAlign.gz")
    # bedtools allocates whole chromosomes: give it each window as its own 42 kb "chromosome"
    # (coverage is translation invariant), so the oracle stays fast
    chrom = reads["chrom"].astype(str).to_numpy()
    pieces, sizes = [], []
    for i, g in enumerate(genes.itertuples(index=False)):
        lo = g.tss - 21_000
        sel = (chrom == g.chrom) & (reads["end"].to_numpy() > lo) & (reads["start"].to_numpy() < lo + 42_000)
        r = reads[sel]
        pieces.append(pd.DataFrame({"c": f"w{i}", "s": (r["start"] - lo).clip(lower=0), "e": r["end"] - lo}))
        sizes.append(f"w{i}\t42000\n")
    bed, genome = tmp_path / "reads.bed", tmp_path / "windows.sizes"
    pd.concat(pieces).to_csv(bed, sep="\t", header=False, index=False)
    genome.write_text("".join(sizes))
    out = subprocess.run(
        ["bedtools", "genomecov", "-bga", "-i", str(bed), "-g", str(genome)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "LC_ALL": "C"},
    ).stdout
    cov = pd.read_csv(io_module.StringIO(out), sep="\t", header=None, names=["chrom", "start", "end", "v"])
    want = np.zeros((len(genes), 400), np.float32)
    for i, g in enumerate(genes.itertuples(index=False)):
        d = np.zeros(42_000)
        for a, b, v in cov[cov["chrom"] == f"w{i}"][["start", "end", "v"]].itertuples(index=False):
            d[a:b] = v
        x = np.log(d[1000:41_000].reshape(400, 100).mean(axis=1) + 1.0)
        want[i] = x[::-1] if g.strand == "-" else x
    assert want.max() > 1.0  # the windows hold H3K4me3 peaks, not just zeros
    np.testing.assert_allclose(reads_to_bins(reads, genes), want, rtol=1e-6, atol=1e-6)


def test_reads_near_a_chromosome_end_stay_inside_it(smoke_params):
    """A gene whose window reaches past the chromosome end gets reads that all end inside it."""
    knobs = smoke_params["simulate"]
    size = 1_000_000
    genes = pd.DataFrame({"chrom": ["chr21"], "tss": [size - 5_000]})
    fragments = pd.DataFrame({"chrom": ["chr21"], "start": [size - 3_000], "end": [size]})
    grid = roadmap.build_grid(genes, fragments, {"chr21": size}, knobs)
    step, length = int(knobs["grid_step"]), int(knobs["read_length"])
    # the last possible read of the last cell must end inside the chromosome
    assert grid["chr21"].max() + step - 1 + length <= size
    assert grid["chr21"].max() + step - 1 + length > size - step  # and the grid reaches the end
    depth = {"chr21": np.full(len(grid["chr21"]), 50.0)}
    starts, _ = roadmap.sample_reads(depth, grid, knobs, np.random.default_rng(0))["chr21"]
    assert len(starts) > 0
    assert starts.max() + int(knobs["read_length"]) <= size
    assert starts.min() >= 0


def test_simulated_regions_hold_every_read_and_every_gene_window(smoke_params, smoke_raw):
    """Where reads were drawn (notebook 15 keeps only bins wholly inside these regions)."""
    regions = roadmap.simulated_regions(smoke_raw)
    knobs = smoke_params["simulate"]
    for chrom, r in regions.groupby("chrom"):
        s, e = r["start"].to_numpy(), r["end"].to_numpy()
        assert (np.diff(s) > 0).all() and (s[1:] > e[:-1]).all(), chrom  # sorted, disjoint, not touching
    reads = io.read_tagalign(smoke_raw / "E116-H3K27me3.tagAlign.gz")
    for chrom, g in reads.groupby("chrom", observed=True):
        r = regions[regions["chrom"] == chrom]
        i = np.searchsorted(r["start"].to_numpy(), g["start"].to_numpy(), side="right") - 1
        assert (i >= 0).all() and (g["start"].to_numpy() < r["end"].to_numpy()[i]).all(), chrom
    genes = io.read_gene_table(smoke_raw / "genes.tsv")
    pad = int(knobs["half_window"]) + int(knobs["window_pad"]) - int(knobs["grid_step"])
    windows = pd.DataFrame({"chrom": genes["chrom"], "start": genes["tss"] - pad, "end": genes["tss"] + pad})
    windows = windows[windows["start"] >= 0]

    assert binned.bins_inside(windows, regions).all()
    total = int((regions["end"] - regions["start"]).sum())
    assert 0.5 * 200 * 2 * pad < total < 3e9  # more than the gene windows alone, far less than a genome
