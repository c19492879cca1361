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
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexp.constants import CHROM_FOLD, FOLD_CHROMS, MARKS, PCHIC_TISSUE
from chromexp.data import binned, io, nascent
from chromexp.simulate import common, roadmap
from chromexp.simulate.calibration import reads_to_bins

REPO_TESTS = Path(__file__).resolve().parent


def tiny_params(smoke_params, tmp_path, seed=0, n_genes=16, cell_types=("E003",)):
    p = copy.deepcopy(smoke_params)
    p["seed"] = seed
    p["simulate"]["presets"]["smoke"] = {"n_genes": n_genes, "cell_types": list(cell_types)}
    p["simulate"]["n_jobs"] = 1
    p["paths"]["data_dir"] = str(tmp_path)
    return p


def file_bytes(root):
    """The generator's files under ``root`` (add-on streams made later, like ``nascent/``, carry their own stamp)."""
    add_on = nascent.nascent_dir(root)
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and add_on not in p.parents
    }


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
    # add-on streams made later into the raw folder carry their own stamp (notebook 47's nascent tracks,
    # data.nascent); the manifest covers what the generator wrote, and only that
    add_on = nascent.nascent_dir(smoke_raw)
    on_disk = {
        p.relative_to(smoke_raw).as_posix() for p in smoke_raw.rglob("*") if p.is_file() and add_on not in p.parents
    }
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


# ----------------------------------------------------------------------------------------------
# simulator versions (data.simulator_version; docs/methods.md, "Simulator versions")
# ----------------------------------------------------------------------------------------------
V1_MANIFEST = REPO_TESTS / "data" / "simulator_v1_smoke_manifest.json"


@pytest.fixture(scope="module")
def smoke_v1_raw(smoke_params, tmp_path_factory):
    """The smoke preset generated by simulator version 1 (the default is version 2)."""
    p = copy.deepcopy(smoke_params)
    p["data"]["simulator_version"] = 1
    p["paths"]["data_dir"] = str(tmp_path_factory.mktemp("v1") / "data")
    return roadmap.generate(p)


def test_version_1_files_are_bit_identical_to_the_pre_switch_simulator(smoke_v1_raw):
    """Version 1 = the simulator before the switch: every file and parameter of the smoke preset.

    The oracle is the manifest (sizes + SHA-256 of the 27 files) of the smoke data generated at commit
    7d93009 (tests/data/README.md); the decoys (or any later change) must leave it untouched.
    """
    want = json.loads(V1_MANIFEST.read_text())
    got = json.loads((smoke_v1_raw / "manifest.json").read_text())
    assert got.pop("simulator_version") == 1
    assert got["params"].pop("simulator_version") == 1
    want.pop("_provenance_of_this_file")
    assert got["files"] == want["files"]
    assert got == want
    assert not (smoke_v1_raw / "truth" / "decoys.tsv.gz").exists()


@pytest.mark.slow
def test_version_1_demo_files_are_bit_identical_to_the_pre_switch_simulator(session_dirs, tmp_path):
    """The demo preset too (43 files, 4 cell types; tests/data/README.md): version 1 leaves every demo file as it was.

    Regenerates the demo raw data (about 4 min on 2 loaded cores), so it runs only with --runslow.
    """
    from chromexp.config import load_params

    want = json.loads((REPO_TESTS / "data" / "simulator_v1_demo_manifest.json").read_text())
    want.pop("_provenance_of_this_file")
    paths_ = {k: str(v) for k, v in session_dirs.items()} | {"data_dir": str(tmp_path / "data")}
    params = load_params(
        "E003",
        files=[REPO_TESTS.parent / "params" / "demo.yaml"],
        overrides={"data": {"simulator_version": 1}, "paths": paths_},
    )
    got = json.loads((roadmap.generate(params) / "manifest.json").read_text())
    assert got.pop("simulator_version") == 1
    assert got["params"].pop("simulator_version") == 1
    assert got["files"] == want["files"]
    assert got == want


V2_MANIFEST = REPO_TESTS / "data" / "simulator_v2_smoke_manifest.json"


@pytest.fixture(scope="module")
def smoke_v2_raw(smoke_params, smoke_raw, tmp_path_factory):
    """The smoke preset generated by simulator version 2 (the session's smoke data when 2 is the default)."""
    if smoke_params["data"]["simulator_version"] == 2:
        return smoke_raw
    p = copy.deepcopy(smoke_params)
    p["data"]["simulator_version"] = 2
    p["paths"]["data_dir"] = str(tmp_path_factory.mktemp("v2") / "data")
    return roadmap.generate(p)


def test_version_2_files_are_bit_identical_to_its_release(smoke_v2_raw):
    """Version 2 as released at 577a4c8 (tests/data/README.md): every file and parameter of the smoke preset.

    Version 3 (the E116 calibration) must add its knobs and streams without touching version 2 data.
    """
    want = json.loads(V2_MANIFEST.read_text())
    want.pop("_provenance_of_this_file")
    got = json.loads((smoke_v2_raw / "manifest.json").read_text())
    assert got["files"] == want["files"]
    assert got == want
    assert "e116_calibration" not in got["params"]["simulate"]


def test_version_2_adds_decoys_from_their_own_streams(smoke_params, smoke_raw, smoke_v1_raw):
    """Version 2 changes only the marks decoys carry and the truth README; everything else is version 1's."""
    assert smoke_params["data"]["simulator_version"] == 2
    v1, v2 = file_bytes(smoke_v1_raw), file_bytes(smoke_raw)
    decoy_marks = ("H3K4me1", "H3K27ac", "H3K9ac")
    changed = {k for k in set(v1) & set(v2) if v1[k] != v2[k]}
    expected = {f"{ct}-{m}.tagAlign.gz" for ct in ("E003", "E116") for m in decoy_marks}
    assert changed == expected | {"manifest.json", "truth/README.md"}
    assert set(v2) - set(v1) == {"truth/decoys.tsv.gz"}
    manifest = json.loads(v2["manifest.json"])
    assert manifest["simulator_version"] == 2 and "decoys" in manifest["params"]["simulate"]
    assert "decoys" not in json.loads(v1["manifest.json"])["params"]["simulate"]
    decoys = pd.read_csv(smoke_raw / "truth" / "decoys.tsv.gz", sep="\t", keep_default_na=False)
    assert list(decoys.columns[: len(roadmap.DECOY_COLUMNS)]) == list(roadmap.DECOY_COLUMNS)
    assert set(decoys["kind"]) == set(roadmap.DECOY_KINDS) and set(decoys["placement"]) == {"local", "pchic"}


def test_decoys_follow_their_rule(smoke_params, smoke_raw):
    """Placement, kinds and neighbours of the decoys against brute-force recomputation."""
    genes = io.read_gene_table(smoke_raw / "genes.tsv").set_index("gene_id")
    decoys = pd.read_csv(smoke_raw / "truth" / "decoys.tsv.gz", sep="\t", keep_default_na=False)
    enh = pd.read_csv(smoke_raw / "truth" / "enhancers.tsv.gz", sep="\t")
    inter = pd.read_csv(smoke_raw / "truth" / "interactions.tsv.gz", sep="\t")
    # in the window: 2-19 kb from the TSS of their gene
    local = decoys[decoys["placement"] == "local"]
    dist = (local["center"] - genes.loc[local["gene_id"], "tss"].to_numpy()).abs()
    assert dist.between(1_999, 19_001).all()
    # on contacted fragments that carry no enhancer of the gene, inside the fragment
    pc = decoys[decoys["placement"] == "pchic"]
    contacts = set(zip(inter["gene_id"], inter["other_start"], inter["other_end"]))
    enh_frags = set(zip(enh["gene_id"], enh["fragment_start"], enh["fragment_end"]))
    keys = list(zip(pc["gene_id"], pc["fragment_start"], pc["fragment_end"]))
    assert len(pc) > 0 and all(k in contacts and k not in enh_frags for k in keys)
    assert ((pc["center"] >= pc["fragment_start"]) & (pc["center"] < pc["fragment_end"])).all()
    # a neighbour enhancer belongs to the real gene with the nearest TSS (brute force), never its own gene
    table = roadmap.load_real_genes()
    nb = decoys[decoys["kind"] == "neighbour_enhancer"]
    assert len(nb) > 0 and (nb["neighbour_id"] != nb["gene_id"]).all()
    for row in nb.itertuples():
        same = table[(table["chrom"] == row.chrom) & (table["gene_id"] != row.gene_id)]
        d = (same["tss"] - row.center).abs()
        assert d.min() == abs(int(table.set_index("gene_id").loc[row.neighbour_id, "tss"]) - row.center)
    assert (decoys.loc[decoys["kind"] == "acetylated_site", "neighbour_id"] == "").all()
    # no planted eQTL of the gene sits in a decoy unless the decoy overlaps one of its enhancers
    truth = pd.read_csv(smoke_raw / "truth" / "eqtls.tsv.gz", sep="\t")
    planted = truth[truth["kind"].str.startswith("enhancer")]
    assert set(planted["enhancer_id"]) <= set(enh["enhancer_id"])


def test_active_decoys_carry_h3k27ac_and_inactive_ones_do_not(smoke_raw, smoke_v1_raw):
    """Reads at acetylated decoys rise from version 1 to 2 (H3K27ac); at non-acetylated ones they do not."""
    decoys = pd.read_csv(smoke_raw / "truth" / "decoys.tsv.gz", sep="\t", keep_default_na=False)

    def counts(raw):
        reads = io.read_tagalign(raw / "E003-H3K27ac.tagAlign.gz")
        out = np.zeros(len(decoys))
        for chrom, idx in decoys.groupby("chrom").indices.items():
            s = np.sort(reads.loc[reads["chrom"] == chrom, "start"].to_numpy())
            c, w = decoys["center"].to_numpy()[idx], decoys["width"].to_numpy()[idx]
            out[idx] = np.searchsorted(s, c + w / 2) - np.searchsorted(s, c - w / 2)
        return out

    gain = counts(smoke_raw) - counts(smoke_v1_raw)
    on = decoys["active_E003"].to_numpy(bool)
    assert on.sum() > 10 and (~on).sum() > 10
    # an active decoy adds depth 3.0 x a Gaussian of sd w/2: 3.0 * (w/2) * sqrt(2 pi) * 0.683 / 36 bp per read
    # ~ 0.071 w read starts inside it (~75 for w = 1 kb); an inactive one only Poisson noise around 0
    expected = 3.0 * decoys["width"].to_numpy() / 2 * np.sqrt(2 * np.pi) * 0.683 / 36
    assert np.median(gain[on] / expected[on]) == pytest.approx(1.0, abs=0.25)
    assert abs(np.median(gain[~on])) < 8


def test_simulator_version_is_validated_and_recorded(smoke_params, smoke_raw, tmp_path):
    from chromexp import config, provenance

    with pytest.raises(ValueError, match="data.simulator_version"):
        config.load_params("E003", overrides={"data": {"simulator_version": 99}})
    with pytest.raises(ValueError, match="simulator_version"):
        config.load_params("E003", overrides={"data": {"simulator_version": "2"}})
    assert provenance.simulator_version(smoke_raw) == 2
    p = copy.deepcopy(smoke_params)
    p["data"]["simulator_version"] = 1
    assert not roadmap.is_complete(smoke_raw, p)  # version 1 parameters never reuse version 2 data
    with pytest.raises(provenance.ProvenanceError, match="simulator version 2 but data.simulator_version is 1"):
        provenance.check_simulator_version(p, smoke_raw)
    # a manifest written before the switch (no key) is version 1
    old = tmp_path / "raw"
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"files": {}, "params": {}}))
    assert provenance.simulator_version(old) == 1


def test_a_store_is_never_read_as_another_simulator_version(smoke_params, smoke_dataset):
    from chromexp import provenance
    from chromexp.data import dataset

    assert smoke_dataset.provenance == "semi-synthetic"
    p = copy.deepcopy(smoke_params)
    p["data"]["simulator_version"] = 1
    with pytest.raises(provenance.ProvenanceError, match="simulator version 2 but data.simulator_version is 1"):
        dataset.load_dataset(p, "E003")
    with pytest.raises(provenance.ProvenanceError, match="simulator version 2 but data.simulator_version is 1"):
        dataset.build_dataset(p, "E003")


# ----------------------------------------------------------------------------------------------
# simulator version 3: the marks recalibrated against real E116 (simulate.e116_calibration)
# ----------------------------------------------------------------------------------------------
def test_openness_is_the_closed_form_union_of_active_tss_gaussians():
    """O(x) = 1 - prod_g (1 - a_g * Gaussian(x - TSS_g, sd)), x the cell centre, each gene over the cells starting
    in [TSS - 4 sd, TSS + 4 sd) only; a = 0 adds nothing."""
    sd = 5000.0
    cells = np.arange(0, 200_000, 100)
    centre = cells + 50.0
    rec = {"activity_background_sd": sd}

    def g(t):
        inside = (cells >= t - 4 * sd) & (cells < t + 4 * sd)
        return np.where(inside, np.exp(-0.5 * ((centre - t) / sd) ** 2), 0.0)

    one = roadmap._openness(cells, centre, np.array([50_050]), np.array([0.5]), rec)
    np.testing.assert_allclose(one, 0.5 * g(50_050), atol=1e-12)
    assert one.max() == pytest.approx(0.5) and one[np.abs(centre - 50_050) > 4 * sd + 100].max() == 0.0
    two = roadmap._openness(cells, centre, np.array([50_050, 60_050, 150_050]), np.array([0.5, 0.8, 0.0]), rec)
    np.testing.assert_allclose(two, 1.0 - (1.0 - 0.5 * g(50_050)) * (1.0 - 0.8 * g(60_050)), atol=1e-12)


def test_version_3_replaces_only_its_knobs_and_refuses_unknown_ones(smoke_params):
    p = copy.deepcopy(smoke_params)
    knobs2, rec2 = roadmap.simulation_knobs(p)
    assert rec2 is None and knobs2 is p["simulate"]  # versions 1-2 run the knobs as they are
    p["data"]["simulator_version"] = 3
    knobs3, rec3 = roadmap.simulation_knobs(p)
    new = p["simulate"]["e116_calibration"]["knobs"]
    assert rec3 == p["simulate"]["e116_calibration"]
    for key, value in new.items():
        if isinstance(value, dict):
            assert knobs3[key] == {**p["simulate"][key], **value}
        else:
            assert knobs3[key] == value
    assert {k: v for k, v in knobs3.items() if k not in new} == {k: v for k, v in knobs2.items() if k not in new}
    p["simulate"]["e116_calibration"]["knobs"] = {"backgroun": {"H3K4me3": 0.1}}
    with pytest.raises(ValueError, match="simulate.e116_calibration.knobs.backgroun is not a simulate knob"):
        roadmap.simulation_knobs(p)


def _tss_spearman(params, version, marks=("H3K27me3", "H3K4me1", "H3K4me3")):
    """Spearman rho of E116 read starts in TSS +- 5 kb (notebook 15's 10-kb TSS bin) with log2 E116 RPKM."""
    from scipy.stats import spearmanr

    p = copy.deepcopy(params)
    p["data"]["simulator_version"] = version
    plan = roadmap.plan_dataset(p)
    reads = plan.simulate("E116", marks=marks)
    g = plan.genes
    expr = np.log2(plan.expression.set_index("gene_id").loc[g["gene_id"], "E116"].to_numpy(float) + 1.0)
    out = {}
    for mark in marks:
        n = np.zeros(len(g))
        for chrom, idx in g.groupby("chrom").indices.items():
            starts, tss = np.sort(reads[mark][chrom][0]), g["tss"].to_numpy()[idx]
            n[idx] = np.searchsorted(starts, tss + 5000) - np.searchsorted(starts, tss - 5000)
        out[mark] = spearmanr(n, expr).statistic
    return out


def test_version_3_brings_h3k27me3_and_h3k4me1_closer_to_real_e116(smoke_params):
    """On the smoke genes (200, E116) version 3's TSS-bin relations move the way real E116 demands.

    Real E116 (bench/simulator_vs_real_e116.py, docs/methods.md): H3K27me3 clearly anti-correlated
    with expression, H3K4me1 clearly correlated; version 2 had both near-flat. Reverting the
    repressive H3K27me3 domains or the activity-following H3K4me1 flanks fails this.
    """
    v2, v3 = _tss_spearman(smoke_params, 2), _tss_spearman(smoke_params, 3)
    assert v3["H3K27me3"] < -0.25 and v3["H3K27me3"] < v2["H3K27me3"] - 0.15
    assert v3["H3K4me1"] > 0.45 and v3["H3K4me1"] > v2["H3K4me1"] + 0.2
    assert v3["H3K4me3"] > 0.6 and v2["H3K4me3"] > 0.6  # the mark that was already right stays right


def test_version_3_is_recorded_and_writes_its_truth_column(smoke_params, tmp_path):
    p3 = tiny_params(smoke_params, tmp_path / "v3", cell_types=("E116",))
    p3["data"]["simulator_version"] = 3
    raw3 = roadmap.generate(p3)
    manifest = json.loads((raw3 / "manifest.json").read_text())
    assert manifest["simulator_version"] == 3 and "e116_calibration" in manifest["params"]["simulate"]
    truth = pd.read_csv(raw3 / "truth" / "genes.tsv.gz", sep="\t")
    assert "k27me3_domain" in truth.columns and not (truth["k27me3_domain"] & truth["polycomb"]).any()
    assert "data.simulator_version >= 3" in (raw3 / "truth" / "README.md").read_text()
    p2 = tiny_params(smoke_params, tmp_path / "v2", cell_types=("E116",))
    raw2 = roadmap.generate(p2)
    assert "e116_calibration" not in json.loads((raw2 / "manifest.json").read_text())["params"]["simulate"]
    assert "k27me3_domain" not in pd.read_csv(raw2 / "truth" / "genes.tsv.gz", sep="\t").columns
    assert not roadmap.is_complete(raw3, p2)  # version 2 parameters never reuse version 3 data
