"""eQTL enrichment of model-prioritised loci (chromexp.analyses.enrichment, chromexp.plots.eqtl)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromexp.analyses import effects, enrichment
from chromexp.results import EFFECT_COLUMNS

TISSUES = {"E066": ["Liver"], "E116": ["Cells_EBV-transformed_lymphocytes"]}


# ---------------------------------------------------------------------------------------------
# a perturbation_effects table with planted signal (the contract of notebook 60)
# ---------------------------------------------------------------------------------------------
def effects_fixture(
    n_genes: int = 300, cell_types=("E066", "E116"), seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An effects table (every contract column, levels 1.0 and 0.0, promoter rows too) and eQTLs.

    Each gene has 16 distal loci; a locus with a large |effect| (the 'enhancer') carries an eQTL
    of its gene with probability 0.5, any other locus with probability 0.02.
    """
    rng = np.random.default_rng(seed)
    genes = pd.DataFrame(
        {
            "gene_id": [f"ENSG{i:011d}" for i in range(n_genes)],
            "chrom": rng.choice(["chr1", "chr2", "chr3"], n_genes),
            "tss": rng.integers(100_000, 50_000_000, n_genes),
            "strand": rng.choice(["+", "-"], n_genes),
        }
    )
    bins = enrichment.window_bins(genes)
    rows, variants = [], []
    for ct in cell_types:
        effect = -np.abs(rng.normal(0, 0.05, len(bins)))
        enhancer = rng.random(len(bins)) < 0.1
        effect[enhancer] -= rng.uniform(0.3, 1.0, enhancer.sum())
        p = np.where(enhancer, 0.5, 0.02)
        hit = rng.random(len(bins)) < p
        distal = ~bins["position"].isin(enrichment.PROMOTER_POSITIONS).to_numpy()
        hit &= distal
        b = bins[hit]
        variants.append(
            pd.DataFrame(
                {
                    "cell_type": ct,
                    "gene_id": b["gene_id"].to_numpy(),
                    "chrom_hg19": b["chrom"].to_numpy(),
                    "pos_hg19": b["start"].to_numpy() + rng.integers(0, 2000, len(b)),
                }
            )
        )
        for level in (1.0, 0.0):
            t = bins.assign(
                cell_type=ct,
                provenance="semi-synthetic",
                model="chromoformer-reg",
                mark="H3K27ac",
                gene_set="active",
                region=[f"distal_{k:02d}" for k in bins["position"]],
                region_kind="distal",
                level=level,
                effect=effect * (1 - level),
                effect_sd=0.01,
                concordance=1.0,
                n_folds=4,
                baseline=3.0,
            )[distal]
            rows.append(t)
        promoter = genes.assign(
            cell_type=ct,
            provenance="semi-synthetic",
            model="chromoformer-reg",
            mark="H3K27ac",
            gene_set="active",
            region="promoter",
            region_kind="promoter",
            position=-1,
            distance=0,
            start=genes["tss"] - 4000,
            end=genes["tss"] + 4000,
            level=0.0,
            effect=-1.0,
            effect_sd=0.0,
            concordance=1.0,
            n_folds=4,
            baseline=3.0,
        )
        rows.append(promoter)
    table = pd.concat(rows, ignore_index=True)[list(EFFECT_COLUMNS)]
    effects_fixture.genes = genes
    return table, pd.concat(variants, ignore_index=True)


@pytest.fixture(scope="module")
def fixture_tables(tmp_path_factory):
    table, variants = effects_fixture()
    path = tmp_path_factory.mktemp("effects") / "perturbation_effects.tsv.gz"
    table.to_csv(path, sep="\t", index=False)
    loci = enrichment.select_loci(effects.read_effects(path))
    has = np.zeros(len(loci), bool)
    for ct in TISSUES:
        m = (loci["cell_type"] == ct).to_numpy()
        has[m] = enrichment.count_eqtls(loci[m], variants[variants["cell_type"] == ct]) > 0
    return loci, has, variants


# ---------------------------------------------------------------------------------------------
# loci and deciles
# ---------------------------------------------------------------------------------------------
def test_select_loci_keeps_the_contract_filter(fixture_tables):
    loci, _, _ = fixture_tables
    assert set(loci["cell_type"]) == set(TISSUES)
    assert len(loci) == 2 * 300 * 16  # distal positions only, level 0 only
    assert not loci["position"].isin(enrichment.PROMOTER_POSITIONS).any()
    assert (loci["effect"] <= 0).all() and (loci["effect"] < 0).any()  # level 0.0 rows, not 1.0


def test_select_loci_errors_name_what_the_table_holds(fixture_tables):
    table, _ = effects_fixture(n_genes=5)
    with pytest.raises(
        ValueError,
        match=r"after the filter mark == 'H3K27me3'.*region_kind == 'distal': \d+; mark == 'H3K27me3': 0.*"
        r"\('chromoformer-reg', 'H3K27ac', 'active'\)",
    ):
        enrichment.select_loci(table, mark="H3K27me3")
    with pytest.raises(ValueError, match="Repeated"):
        enrichment.select_loci(pd.concat([table, table.iloc[[0]]]).assign(level=0.0).query("region_kind == 'distal'"))
    two = pd.concat([table, table.assign(model="other")])
    with pytest.raises(ValueError, match="several models"):
        enrichment.select_loci(two)
    assert len(enrichment.select_loci(two, model="other")) == 2 * 5 * 16


def test_window_bins_geometry():
    genes = pd.DataFrame(
        {"gene_id": ["p", "m"], "chrom": ["chr1", "chr1"], "tss": [100_000, 200_000], "strand": ["+", "-"]}
    )
    b = enrichment.window_bins(genes)
    plus, minus = b[b["gene_id"] == "p"], b[b["gene_id"] == "m"]
    assert plus["start"].tolist()[:2] == [80_000, 82_000] and plus["end"].iloc[-1] == 120_000
    # minus strand: position 0 (most upstream) is the genomic right end
    assert minus["start"].iloc[0] == 218_000 and minus["start"].iloc[-1] == 180_000
    assert plus["distance"].tolist() == minus["distance"].tolist()
    assert plus["distance"].iloc[0] == -19_000 and plus["distance"].iloc[-1] == 19_000
    # the TSS lies between positions 9 and 10 for both strands
    for g, tss in (("p", 100_000), ("m", 200_000)):
        row9, row10 = (
            b[(b["gene_id"] == g) & (b["position"] == 9)].iloc[0],
            b[(b["gene_id"] == g) & (b["position"] == 10)].iloc[0],
        )
        assert tss in (row9["end"], row9["start"]) and tss in (row10["start"], row10["end"])


def test_check_locus_geometry_catches_a_shifted_locus(fixture_tables):
    loci, _, _ = fixture_tables
    effects_fixture()  # same seed as the module fixture: its gene table (TSS, strand)
    genes = effects_fixture.genes
    e = loci[loci["cell_type"] == "E066"]
    enrichment.check_locus_geometry(e, genes)
    shifted = e.copy()
    shifted.loc[shifted.index[5], "start"] += 100
    with pytest.raises(ValueError, match="1 loci do not match their gene's 2 kb bin"):
        enrichment.check_locus_geometry(shifted, genes)


def test_deciles_without_ties_are_equal_and_ordered():
    rng = np.random.default_rng(1)
    s = rng.normal(size=1000)
    d = enrichment.assign_deciles(s)
    assert np.bincount(d)[1:].tolist() == [100] * 10
    order = np.argsort(s)
    assert (np.diff(d[order]) >= 0).all()
    assert enrichment.assign_deciles(np.arange(10.0)).tolist() == list(range(1, 11))


def test_deciles_with_ties_are_deterministic_and_shared():
    # 20 scores: 12 zeros (a tied block spanning deciles 1-6) and 8 distinct values
    s = np.array([0.0] * 12 + [1, 2, 3, 4, 5, 6, 7, 8], float)
    d = enrichment.assign_deciles(s)
    assert len(set(d[:12])) == 1  # tied scores share one decile
    assert d[0] == 4  # average rank 6.5 of 20 -> ceil(10 * 6.5 / 20) = 4
    assert d[12:].tolist() == [7, 7, 8, 8, 9, 9, 10, 10]
    rng = np.random.default_rng(2)
    for _ in range(5):  # independent of the input order
        p = rng.permutation(len(s))
        assert (enrichment.assign_deciles(s[p]) == d[p]).all()
    with pytest.raises(ValueError, match="NaN"):
        enrichment.assign_deciles([1.0, np.nan])


def test_per_side_signed_deciles_on_a_constructed_table():
    """The paper's deciles: each side cut on its own, ranked by the signed decrease (issue 30 item 1).

    20 upstream loci with small drops (-0.20 ... -0.01) and 20 downstream loci from -1.0 to +1.0
    (half of them *raise* the prediction). Pooled |effect| (the old default) fills the top decile with
    downstream loci only, half of which raise the prediction; per side and signed, the top decile
    holds the two largest drops of each side.
    """
    up = -np.arange(20, 0, -1) / 100.0  # -0.20 ... -0.01
    down = np.concatenate([-np.arange(10, 0, -1) / 10.0, np.arange(1, 11) / 10.0])  # -1.0 ... -0.1, 0.1 ... 1.0
    effect = np.concatenate([up, down])
    distance = np.concatenate([np.full(20, -11_000), np.full(20, 11_000)])
    new = enrichment.locus_deciles(effect, distance)  # defaults: decrease, per side
    top = np.flatnonzero(new == 10)
    assert sorted(effect[top].tolist()) == [-1.0, -0.9, -0.2, -0.19]
    assert (effect[new == 1] > 0).sum() == 2  # the largest *rises* are the bottom decile downstream
    assert np.bincount(new[distance < 0])[1:].tolist() == [2] * 10  # a tenth of each side in every decile
    assert np.bincount(new[distance > 0])[1:].tolist() == [2] * 10
    old = enrichment.locus_deciles(effect, distance, ranking="abs", per_side=False)
    old_top = np.flatnonzero(old == 10)
    assert (distance[old_top] > 0).all() and (effect[old_top] > 0).mean() == 0.5
    # per side with |effect|, and pooled with the signed decrease: each choice on its own
    both = enrichment.locus_deciles(effect, distance, ranking="abs", per_side=True)
    assert sorted(effect[both == 10].tolist()) == [-1.0, -0.2, -0.19, 1.0]
    pooled = enrichment.locus_deciles(effect, distance, ranking="decrease", per_side=False)
    assert sorted(effect[pooled == 10].tolist()) == [-1.0, -0.9, -0.8, -0.7]
    # float32 noise below the tie tolerance ties with 0; a repressive mark ranks by the rise
    noisy = np.array([0.0, 3e-7, -4e-7, -0.5, 0.4])
    assert enrichment.ranking_scores(noisy).tolist() == [0.0, 0.0, 0.0, 0.5, -0.4]
    assert enrichment.ranking_scores(noisy, "increase")[4] == 0.4
    with pytest.raises(ValueError, match="ranking"):
        enrichment.ranking_scores(noisy, "largest")
    with pytest.raises(ValueError, match="no side"):
        enrichment.locus_deciles([0.1], [0])


# ---------------------------------------------------------------------------------------------
# overlaps: once per locus, own gene only, half-open; bedtools oracle
# ---------------------------------------------------------------------------------------------
def test_eqtl_counted_once_per_locus_and_only_for_its_gene():
    loci = pd.DataFrame(
        {"gene_id": ["A", "A", "B"], "chrom": ["chr1"] * 3, "start": [1000, 3000, 1000], "end": [3000, 5000, 3000]}
    )
    variants = pd.DataFrame(
        {
            "gene_id": ["A", "A", "A", "B", "C"],
            "chrom_hg19": ["chr1", "chr1", "chr2", "chr1", "chr1"],
            # two eQTLs of A in locus 0 (start included), A at 3000 belongs to locus 1 (end excluded),
            # A on chr2 and C's eQTL in the same interval do not count
            "pos_hg19": [1000, 2999, 1500, 4999, 1500],
        }
    )
    variants.loc[len(variants)] = ["A", "chr1", 3000]
    counts = enrichment.count_eqtls(loci, variants)
    assert counts.tolist() == [2, 1, 0]
    has_sets = [counts[:2] > 0, counts[2:] > 0]
    res = enrichment.set_tests(has_sets, np.array([True, True, False, False]), 100, np.random.default_rng(0))
    assert res["n_with_eqtl"].tolist() == [2, 0]  # loci, not eQTLs


def test_pchic_fragment_counted_once():
    frags = pd.DataFrame(
        {"gene_id": ["A", "A"], "chrom": ["chr1", "chr1"], "start": [0, 10_000], "end": [6_000, 14_000]}
    )
    variants = pd.DataFrame({"gene_id": ["A"] * 4, "chrom_hg19": ["chr1"] * 4, "pos_hg19": [10, 20, 5_999, 12_000]})
    has = enrichment.count_eqtls(frags, variants) > 0
    res = enrichment.set_tests([has], np.array([True] * 3 + [False] * 7), 1000, np.random.default_rng(0))
    assert res.loc[0, "n_loci"] == 2 and res.loc[0, "n_with_eqtl"] == 2 and res.loc[0, "fraction"] == 1.0


def test_count_eqtls_matches_bedtools(tmp_path):
    pybedtools = pytest.importorskip("pybedtools")
    pybedtools.set_tempdir(str(tmp_path))
    rng = np.random.default_rng(3)
    n_loci, n_var = 3000, 2000
    genes = np.array([f"G{i}" for i in range(60)])
    starts = rng.integers(0, 200_000, n_loci)
    loci = pd.DataFrame(
        {
            "gene_id": rng.choice(genes, n_loci),
            "chrom": rng.choice(["chr1", "chr2"], n_loci),
            "start": starts,
            "end": starts + rng.choice([2000, 5000, 1], n_loci),
        }
    )
    pos = np.concatenate(
        [rng.integers(0, 202_000, n_var - 100), loci["start"].to_numpy()[:50], loci["end"].to_numpy()[:50]]
    )
    variants = pd.DataFrame(
        {"gene_id": rng.choice(genes, n_var), "chrom_hg19": rng.choice(["chr1", "chr2"], n_var), "pos_hg19": pos}
    )
    # make the boundary variants belong to the loci's own gene and chromosome
    variants.loc[n_var - 100 : n_var - 51, ["gene_id", "chrom_hg19"]] = loci[["gene_id", "chrom"]].to_numpy()[:50]
    variants.loc[n_var - 50 :, ["gene_id", "chrom_hg19"]] = loci[["gene_id", "chrom"]].to_numpy()[:50]
    ours = enrichment.count_eqtls(loci, variants)
    oracle = enrichment.count_eqtls_bedtools(loci, variants)
    assert ours.sum() > 100
    assert (ours == oracle).all()
    assert not list(tmp_path.glob("pybedtools.*.tmp"))  # pybedtools.cleanup() ran


# ---------------------------------------------------------------------------------------------
# the random-sample test
# ---------------------------------------------------------------------------------------------
def test_empirical_p_has_the_plus_one_correction():
    random = np.array([[5, 6, 4, 3], [0, 0, 0, 0], [9, 9, 9, 9]])
    p = enrichment.empirical_p(np.array([5, 1, 9]), random)
    # (1 + #{random >= observed}) / (1 + 4): ties count as at least as extreme
    assert p.tolist() == [3 / 5, 1 / 5, 5 / 5]


def test_constructed_case_reaches_the_smallest_possible_p():
    # pool of 100 loci, 10 with an eQTL; a set of 10 holding all of them: a random sample of 10
    # reaches 10 with probability 1 / C(100, 10) ~ 6e-14, so p = 1 / (1 + n_random) exactly
    pool = np.zeros(100, bool)
    pool[:10] = True
    res = enrichment.set_tests([pool[:10], pool[50:60]], pool, 10_000, np.random.default_rng(0))
    assert res.loc[0, "p"] == 1 / 10_001
    assert res.loc[1, "p"] == 1.0  # 0 observed: every random sample is >= 0
    assert abs(res.loc[0, "random_mean"] - 0.1) < 0.005


def test_exact_hypergeometric_tail_against_a_brute_force_sum():
    """p_exact = P(X >= observed), X ~ Hypergeometric(N, K, n), summed here from binomial coefficients."""
    from math import comb

    pool = np.zeros(60, bool)
    pool[:9] = True  # N = 60, K = 9
    sets = [pool[:12], pool[20:32], np.r_[pool[:3], pool[30:35]]]  # 9, 0 and 3 eQTL-carrying loci
    res = enrichment.set_tests(sets, pool, 20_000, np.random.default_rng(3))
    for (_, row), h in zip(res.iterrows(), sets, strict=True):
        n, k = len(h), int(h.sum())
        want = sum(comb(9, j) * comb(51, n - j) for j in range(k, min(9, n) + 1)) / comb(60, n)
        assert row["p_exact"] == pytest.approx(want, rel=1e-9)
        # the Monte-Carlo p of the reference's procedure estimates the same tail (20,000 samples)
        assert abs(row["p"] - want) < 0.01 + 1 / 20_001
    assert res.loc[1, "p_exact"] == 1.0


def test_gene_stratified_odds_ratio_removes_an_enrichment_explained_by_the_gene():
    """A set that only picks eQTL-rich genes is enriched overall but not against loci of the same gene."""
    rng = np.random.default_rng(11)
    gene = np.repeat(np.arange(200), 16)
    rich = gene < 40  # 40 genes whose loci carry eQTLs often
    has = rng.random(gene.size) < np.where(rich, 0.3, 0.02)
    in_set = rng.random(gene.size) < np.where(rich, 0.5, 0.05)  # the set prefers rich genes, not eQTL loci
    crude = enrichment.distance_matched_odds_ratio(in_set, has, np.zeros(gene.size))
    by_gene = enrichment.distance_matched_odds_ratio(in_set, has, gene)
    assert crude["odds_ratio"] > 3 and crude["p"] < 1e-6
    assert by_gene["ci_low"] < 1 < by_gene["ci_high"]


def test_hypergeometric_draws_match_explicit_subsets():
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(4)
    pool = rng.random(500) < 0.07
    sizes = np.array([50, 120])
    fast = enrichment.random_counts(pool, sizes, 3000, np.random.default_rng(5))
    slow = enrichment.random_counts(pool, sizes, 3000, np.random.default_rng(6), method="subsets")
    for i in range(2):
        assert ks_2samp(fast[i], slow[i]).pvalue > 1e-3
        expected = sizes[i] * pool.mean()
        assert abs(fast[i].mean() - expected) < 0.1 * expected and abs(slow[i].mean() - expected) < 0.1 * expected
    with pytest.raises(ValueError, match="cannot be drawn"):
        enrichment.random_counts(pool, [501], 10, rng)


def test_decile_test_recovers_the_planted_signal_and_bh_is_per_decile(fixture_tables):
    from statsmodels.stats.multitest import multipletests

    loci, has, _ = fixture_tables
    table = enrichment.decile_tests(loci, has, TISSUES, n_random=2000, seed=0)
    assert list(table.columns) == [
        *enrichment.DECILE_COLUMNS, "p_exact", *enrichment.DECILE_MAKEUP_COLUMNS, *enrichment.DECILE_RANKING_COLUMNS
    ]  # fmt: skip
    assert set(table["ranking"]) == {"decrease"} and table["per_side"].all()  # the default: the paper's
    assert len(table) == 20 and table.groupby("cell_type")["n_loci"].sum().tolist() == [4800, 4800]
    top, bottom = table[table["decile"] == 10], table[table["decile"] == 1]
    assert (top["p"] == 1 / 2001).all() and (top["fraction"] > 3 * top["random_mean"]).all()
    assert (bottom["p"] > 0.5).all()
    for _, g in table.groupby("decile"):
        assert np.allclose(g["q"], multipletests(g["p"], method="fdr_bh")[1])
    assert set(table["tissues"]) == {"Liver", "Cells_EBV-transformed_lymphocytes"}
    # deterministic, and independent of the order of the loci
    again = enrichment.decile_tests(loci.iloc[::-1], has[::-1], TISSUES, n_random=2000, seed=0)
    pd.testing.assert_frame_equal(table, again)
    # a shuffled-effect control is null
    rng = np.random.default_rng(8)
    shuffled = loci.assign(effect=rng.permutation(loci["effect"].to_numpy()))
    null = enrichment.decile_tests(shuffled, has, TISSUES, n_random=2000, seed=0)
    assert (null.loc[null["decile"] == 10, "p"] > 0.01).all()


# ---------------------------------------------------------------------------------------------
# distance matching
# ---------------------------------------------------------------------------------------------
def test_distance_matched_or_removes_an_enrichment_explained_by_distance():
    rng = np.random.default_rng(9)
    n = 20_000
    strata = rng.integers(0, 16, n)
    # eQTL rate depends only on distance (stratum 0 = next to the TSS); the set prefers stratum 0
    has = rng.random(n) < np.where(strata == 0, 0.3, 0.02)
    in_set = rng.random(n) < np.where(strata == 0, 0.5, 0.05)
    raw = (has & in_set).sum() * (~has & ~in_set).sum() / ((~has & in_set).sum() * (has & ~in_set).sum())
    assert raw > 3  # a naive odds ratio is large ...
    res = enrichment.distance_matched_odds_ratio(in_set, has, strata)
    assert res["ci_low"] < 1 < res["ci_high"] and 0.8 < res["odds_ratio"] < 1.25  # ... the matched one is not
    # a real within-distance enrichment is detected
    has2 = has | (in_set & (rng.random(n) < 0.2))
    res2 = enrichment.distance_matched_odds_ratio(in_set, has2, strata)
    assert res2["ci_low"] > 1.5 and res2["p"] < 1e-6 and res2["n_strata"] == 16


def test_distance_matched_or_degenerate_cases():
    res = enrichment.distance_matched_odds_ratio([True, True, False, False], [False, False, True, False], [0, 0, 0, 0])
    assert res["odds_ratio"] == 0.0 and np.isnan(res["ci_low"])
    res = enrichment.distance_matched_odds_ratio([True, False], [True, False], [0, 1])  # no stratum has both
    assert np.isnan(res["odds_ratio"]) and res["n_strata"] == 0


# ---------------------------------------------------------------------------------------------
# benchmark sets and the planted truth
# ---------------------------------------------------------------------------------------------
def test_max_activity_and_proximal_loci():
    genes = pd.DataFrame(
        {
            "gene_id": ["a", "b", "c"],
            "chrom": ["chr1"] * 3,
            "tss": [50_000, 150_000, 250_000],
            "strand": ["+", "-", "+"],
        }
    )
    bins = enrichment.window_bins(genes)
    signal = np.zeros((3, 20))
    signal[0, [3, 9, 15]] = [2.0, 9.0, 2.0]  # promoter bin 9 is highest; distal tie 3/15 -> most upstream
    signal[1, 17] = 1.0
    out = enrichment.max_activity_loci(bins, signal)
    assert out["gene_id"].tolist() == ["a", "b"] and out["position"].tolist() == [3, 17]
    assert out.attrs["no_signal"] == 1
    assert enrichment.max_activity_loci(bins, signal, distal_only=False)["position"].tolist() == [9, 17]
    # the proximal benchmark is drawn among the candidate distal bins, so it is a subset of the pool
    # its random samples come from (issue 30 item 6: before, it held the promoter bins 8-11 too)
    prox = enrichment.proximal_loci(bins, 6000)
    assert sorted(set(prox["position"])) == [7, 12] and len(prox) == 6
    assert prox["distance"].abs().max() == 5000
    reference = np.setdiff1d(np.arange(20), [8, 9, 10])  # perturbation.geometry: reference
    prox = enrichment.proximal_loci(bins, 6000, reference)
    assert sorted(set(prox["position"])) == [7, 11, 12]
    signal[0, 11] = 5.0  # +2 to +4 kb: a candidate with the reference geometry only
    assert enrichment.max_activity_loci(bins, signal)["position"].tolist() == [3, 17]
    assert enrichment.max_activity_loci(bins, signal, distal_positions=reference)["position"].tolist() == [11, 17]
    with pytest.raises(ValueError, match="proximal_max"):
        enrichment.proximal_loci(bins, 1000)


def test_planted_locus_effect_sums_the_gene_own_overlapping_enhancers():
    loci = pd.DataFrame({"gene_id": ["A", "A", "B"], "start": [0, 2000, 0], "end": [2000, 4000, 2000]})
    enh = pd.DataFrame(
        {
            "gene_id": ["A", "A", "B", "C"],
            "center": [1000, 2000, 5000, 1000],
            "width": [200, 600, 200, 200],
            "contribution_E116": [0.5, 0.25, 1.0, 9.0],
        }
    )
    # A's second enhancer [1700, 2300) overlaps both of A's loci; B's is outside; C is another gene
    assert enrichment.planted_locus_effect(loci, enh, "E116").tolist() == [0.75, 0.25, 0.0]
    with pytest.raises(ValueError, match="contribution_E066"):
        enrichment.planted_locus_effect(loci, enh, "E066")


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def test_plots_are_labelled_and_structured(fixture_tables):
    import matplotlib

    matplotlib.use("Agg")
    from chromexp.plots import eqtl as plots_eqtl

    loci, has, _ = fixture_tables
    deciles = enrichment.decile_tests(loci, has, TISSUES, n_random=200, seed=0)
    bench = deciles[deciles["decile"] == 5].drop(columns="decile").assign(set="proximal")
    fig = plots_eqtl.plot_eqtl_benchmarks(deciles, bench)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["model top decile", "proximal"]
    assert "SEMI-SYNTHETIC" in fig._suptitle.get_text()


# ---------------------------------------------------------------------------------------------
# notebook 70 on the smoke preset
# ---------------------------------------------------------------------------------------------
def _run_70(session_dirs, run_name, *extra):
    from chromexp.runner import cli

    args = ["run", "70", "-f", "params/smoke.yaml", "--run-name", run_name, "--quiet", *extra]
    for key, path in session_dirs.items():
        args += ["-p", f"paths.{key}", str(path)]
    return cli.main(args)


def test_missing_effects_name_notebook_60(tmp_path):
    (tmp_path / "run" / "E066").mkdir(parents=True)
    (tmp_path / "run" / "E066" / effects.EFFECTS_FILE).write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"notebook 60_perturbation are missing.*E116/perturbation_effects"
    ) as err:
        effects.read_run_effects(tmp_path / "run", ["E066", "E116"])
    assert "E066" not in str(err.value)


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_70_names_notebook_60_when_its_inputs_are_missing(session_dirs, smoke_raw):
    from chromexp import paths

    code = _run_70(session_dirs, "no_effects")
    assert code == 1
    message = (
        paths.Path(session_dirs["results_dir"]) / "no_effects" / "all" / "70_eqtl_enrichment.FAILED.txt"
    ).read_text()
    assert "perturbation effects of notebook 60_perturbation are missing" in message
    assert "E116/perturbation_effects.tsv.gz" in message


@pytest.mark.slow
@pytest.mark.notebook
def test_notebook_70_recovers_a_planted_enrichment_on_the_smoke_preset(smoke_params, session_dirs, smoke_raw):
    """End to end with a stand-in for notebook 60: effects = -(the bin's H3K27ac signal) + noise.

    H3K27ac marks the planted active enhancers, which carry most simulated eQTLs, so the top decile
    must be enriched; the notebook's Answer must say so and label the data semi-synthetic.
    """
    import nbformat

    from chromexp import config, paths
    from chromexp.data import dataset

    params = config.load_params(
        "E116", files=["params/smoke.yaml"], overrides={"paths": {k: str(v) for k, v in session_dirs.items()}}
    )
    dataset.build_dataset(params, "E116")
    ds = dataset.load_dataset(params, "E116")
    active = np.flatnonzero(ds.genes["label"].to_numpy() == 1)
    bins = enrichment.window_bins(ds.genes.iloc[active])
    signal = ds.promoter(marks=["H3K27ac"], resolution=2000, genes=active)[:, 0, :].reshape(-1)
    effect = -0.25 * signal + np.random.default_rng(0).normal(0, 0.03, signal.size)
    table = bins.assign(
        cell_type="E116", provenance=ds.provenance, model="chromoformer-reg", mark="H3K27ac", gene_set="active",
        region=[f"distal_{k:02d}" for k in bins["position"]], region_kind="distal", level=0.0, effect=effect,
        effect_sd=0.0, concordance=1.0, n_folds=1, baseline=0.0,
    )[lambda t: ~t["position"].isin(enrichment.PROMOTER_POSITIONS)][list(EFFECT_COLUMNS)]  # fmt: skip
    out = paths.run_dir(params, "standin", "E116") / effects.EFFECTS_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, sep="\t", index=False)
    assert _run_70(session_dirs, "standin") == 0
    result = paths.run_dir(params, "standin", None).parent / "eqtl"
    deciles = pd.read_csv(result / "eqtl_deciles.tsv", sep="\t")
    assert list(deciles.columns) == list(enrichment.DECILE_COLUMNS)
    top = deciles[deciles["decile"] == 10].iloc[0]
    assert top["q"] < 0.05 and top["provenance"] == "semi-synthetic"
    nb = nbformat.read(paths.run_dir(params, "standin", None) / "70_eqtl_enrichment.ipynb", as_version=4)
    answer = nb.cells[-1].outputs[0]["data"]["text/markdown"]
    assert "SEMI-SYNTHETIC" in answer and "Is the planted enrichment recovered?** Yes" in answer
    # issue 29: a test of zero eQTLs is an error naming the filter, never "no enrichment (p = 1)"
    out = paths.run_dir(params, "no_pip", "E116") / effects.EFFECTS_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, sep="\t", index=False)
    assert _run_70(session_dirs, "no_pip", "-p", "eqtl.pip_in", "1.0") == 1  # nothing has PIP > 1
    message = (paths.run_dir(params, "no_pip", None) / "70_eqtl_enrichment.FAILED.txt").read_text()
    assert "no eQTL to test after the filter 'tissue_unique'" in message and "rows_in_table" in message, message
    assert not (paths.run_dir(params, "no_pip", None).parent / "eqtl" / "eqtl_deciles.tsv").exists()


def test_distance_matched_table_has_position_and_gene_strata_and_the_signal_top_decile():
    """Notebook 70's table: every set under both stratifications, position rows first (issue 30 item 6)."""
    rng = np.random.default_rng(5)
    n_genes, positions = 30, np.r_[0:8, 12:20]
    loci = pd.DataFrame(
        {
            "cell_type": "E116",
            "gene_id": np.repeat([f"g{i}" for i in range(n_genes)], positions.size),
            "position": np.tile(positions, n_genes),
        }
    )
    loci["distance"] = (loci["position"] - 9.5) * 2000
    loci["effect"] = rng.normal(size=len(loci))
    loci["signal"] = rng.normal(size=len(loci))
    loci["has_eqtl"] = rng.random(len(loci)) < np.where(loci["effect"] < -1, 0.5, 0.05)
    got = enrichment.distance_matched_table(loci, {"E116": {}}, False, "semi-synthetic")
    sets = [f"decile_{d}" for d in range(1, 11)] + ["signal_decile_10"]
    assert got["strata"].tolist() == ["position"] * 11 + ["gene"] * 11
    assert got["set"].tolist() == sets * 2
    dec = enrichment.locus_deciles(loci["effect"].to_numpy(), loci["distance"].to_numpy())
    sig = enrichment.locus_deciles(loci["signal"].to_numpy(), loci["distance"].to_numpy(), "value")
    for strata, key in (("position", loci["position"]), ("gene", loci["gene_id"])):
        for name, in_set in (("decile_10", dec == 10), ("signal_decile_10", sig == 10)):
            want = enrichment.distance_matched_odds_ratio(in_set, loci["has_eqtl"].to_numpy(), key.to_numpy())
            row = got[(got["strata"] == strata) & (got["set"] == name)].iloc[0]
            assert row["odds_ratio"] == pytest.approx(want["odds_ratio"]) and row["n_strata"] == want["n_strata"]
    # the eQTLs follow the signed decrease: the model's top decile is enriched within positions
    top = got[(got["strata"] == "position") & (got["set"] == "decile_10")].iloc[0]
    assert top["ci_low"] > 1
