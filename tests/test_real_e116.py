"""Notebook 15's recipe (chromexp.experiments.real_e116) and its model (chromexp.models.binned_cnn).

Oracles: scikit-learn (ridge, AUROC), scipy's Friedman statistic (Kendall's W), closed-form
parameter counts; invariances (fold assignment, subsampling keeps labels, paired benchmarks keep
gene order); planted signals (the informative mark ranks first, the CNN learns a planted rule).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score

from chromexp import config
from chromexp.constants import CHROM_FOLD
from chromexp.data import binned
from chromexp.experiments import real_e116 as ex
from chromexp.models.binned_cnn import BinnedCNN, n_parameters
from chromexp.plots import panels as plots

BIN = 1000
CHROMS = ["chr1", "chr2", "chr3", "chr4", "chr5", "chr7", "chr9", "chr10", "chr13", "chr16"]


def planted(n_genes: int = 600, seed: int = 0):
    """A binned table and genes where H3K4me3 at the TSS bin drives expression, H3K9me3 is noise.

    Returns bins, genes, rpkm (one gene without RPKM, one with unknown strand).
    """
    rng = np.random.default_rng(seed)
    rows, genes = [], []
    per_chrom = n_genes // len(CHROMS)
    for c in CHROMS:
        n_bins = per_chrom * 4 + 20
        start = np.arange(n_bins) * BIN
        a = rng.poisson(20, n_bins)
        b = rng.poisson(20, n_bins)
        rows.append(pd.DataFrame({"chrom": c, "start": start, "end": start + BIN, "H3K4me3": a, "H3K9me3": b}))
        for g in range(per_chrom):
            j = 10 + 4 * g
            genes.append((f"{c}_g{g}", c, int(start[j] + rng.integers(0, BIN)), str(rng.choice(["+", "-"]))))
    bins = pd.concat(rows, ignore_index=True)
    genes = pd.DataFrame(genes, columns=["gene_id", "chrom", "tss", "strand"])
    genes["gene_name"] = genes["gene_id"]
    genes.loc[0, "strand"] = "."
    tss_bin = {(r.chrom, r.start): r.H3K4me3 for r in bins.itertuples()}
    signal = np.array([tss_bin[(g.chrom, g.tss // BIN * BIN)] for g in genes.itertuples()], dtype=float)
    rpkm = pd.Series(np.exp(0.2 * (signal - 20) + rng.normal(0, 0.3, len(genes))), index=genes["gene_id"])
    rpkm = rpkm.drop(genes["gene_id"].iloc[1])
    return bins, genes, rpkm


@pytest.fixture(scope="module")
def bench():
    bins, genes, rpkm = planted()
    return ex.build_benchmark(bins, genes, rpkm, cell_type="E116", k=2, provenance="real", source="planted")


# --------------------------------------------------------------------------------------------
# small exact pieces
# --------------------------------------------------------------------------------------------
def test_ridge_path_equals_sklearn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 7)) + 3.0
    y = x @ rng.normal(size=7) + rng.normal(size=200) + 5.0
    alphas = [1e-3, 0.5, 10.0, 1e4]
    for alpha, (w, b) in zip(alphas, ex.ridge_path(x, y, alphas)):
        ref = Ridge(alpha=alpha).fit(x, y)
        np.testing.assert_allclose(w, ref.coef_, rtol=1e-6, atol=1e-9)
        assert b == pytest.approx(ref.intercept_, rel=1e-6)


def test_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(2)
    label = rng.integers(0, 2, 500)
    score = np.round(label * 0.5 + rng.normal(size=500), 1)  # many ties
    assert ex.auroc(label, score) == pytest.approx(roc_auc_score(label, score), abs=1e-12)
    assert np.isnan(ex.auroc(np.ones(5), np.arange(5)))


def test_kendall_w_against_friedman():
    rng = np.random.default_rng(3)
    for m, n in [(4, 5), (3, 7), (6, 4)]:
        ranks = np.array([rng.permutation(n) + 1 for _ in range(m)])
        chi2 = stats.friedmanchisquare(*ranks.T).statistic  # no ties: W = chi2 / (m (n - 1))
        assert ex.kendall_w(ranks) == pytest.approx(chi2 / (m * (n - 1)))
    same = np.tile(np.arange(1, 6), (4, 1))
    assert ex.kendall_w(same) == pytest.approx(1.0)
    assert np.isnan(ex.kendall_w(same[:1]))


def test_fold_ranking_and_stability():
    values = {  # fold -> mark -> r
        1: {"A": 0.9, "B": 0.5, "C": 0.1},
        2: {"A": 0.8, "B": 0.6, "C": 0.2},
        3: {"A": 0.4, "B": 0.7, "C": 0.3},
    }
    rows = [
        {"cell_type": "E116", "model": "m", "marks": k, "scheme": "chrom_folds", "fold": f, "split": "test"}
        | {"n_genes": 10, "metric": "pearson_r", "value": v}
        for f, d in values.items()
        for k, v in d.items()
    ]
    metrics = pd.DataFrame(rows)
    marks = ["A", "B", "C"]
    metrics["marks"] = metrics["marks"].map({"A": "H3K4me3", "B": "H3K36me3", "C": "H3K9me3"})
    ranking = ex.fold_ranking(metrics, ["H3K4me3", "H3K36me3", "H3K9me3"])
    assert ranking[ranking["fold"] == 3].set_index("marks")["rank"].to_dict() == {
        "H3K36me3": 1,
        "H3K4me3": 2,
        "H3K9me3": 3,
    }
    s = ex.ranking_stability(ranking).iloc[0]
    assert s["best_mark"] == "H3K4me3" and s["n_folds_best_first"] == 2 and s["n_folds"] == 3
    expected = ex.kendall_w(np.array([[1, 2, 3], [1, 2, 3], [2, 1, 3]]))
    assert s["kendall_w"] == pytest.approx(expected) and len(marks) == 3
    assert s["ranking"] == "H3K4me3 > H3K36me3 > H3K9me3"


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------
def test_benchmark_genes_targets_folds(bench):
    bins, genes, rpkm = planted()
    reasons = bench.exclusions.set_index("reason")["n_genes"]
    assert reasons["unknown_strand"] == 1 and reasons["no_expression"] == 1 and reasons["subsampled"] == 0
    assert len(bench) == len(genes) - 2
    g = bench.genes
    np.testing.assert_allclose(g["target"], np.log2(g["rpkm"] + 1))
    assert bench.label_median == pytest.approx(np.median(g["rpkm"]))
    assert (g["label"] == (g["rpkm"] >= bench.label_median)).all()
    assert (g["fold"] == g["chrom"].map(CHROM_FOLD)).all()
    for fold in (1, 2, 3, 4):
        split = bench.split(fold)
        every = np.concatenate(list(split.values()))
        assert len(every) == len(bench) == len(set(every))  # disjoint, covering
        assert (g["fold"].to_numpy()[split["test"]] == fold).all()
        assert not set(g["chrom"].to_numpy()[split["validation"]]) & set(g["chrom"].to_numpy()[split["test"]])
    assert bench.x(["H3K9me3", "H3K4me3"], 1).shape == (len(bench), 2, 3)


def test_subsample_keeps_labels_and_counts_the_rest(bench):
    small = bench.subsample(100, seed=4)
    assert len(small) == 100 and small.label_median == bench.label_median
    merged = small.genes.merge(bench.genes, on="gene_id", suffixes=("", "_all"))
    assert (merged["label"] == merged["label_all"]).all() and len(merged) == 100
    assert small.exclusions.set_index("reason").loc["subsampled", "n_genes"] == len(bench) - 100
    assert small.subsample(100, seed=4).genes.equals(small.genes)
    assert bench.subsample(None, 0) is bench
    again = bench.subsample(100, seed=4)
    assert again.genes["gene_id"].tolist() == small.genes["gene_id"].tolist()  # seeded


def test_linear_baselines_find_the_planted_mark(bench):
    run = ex.linear_baselines(bench, ex.mark_sets(["H3K4me3", "H3K9me3"]), [1, 2, 3, 4], k=1)
    test = run.metrics[run.metrics["split"] == "test"]
    r = test[(test["model"] == "binned_ridge") & (test["metric"] == "pearson_r")].groupby("marks")["value"].mean()
    assert r["H3K4me3"] > 0.7 and abs(r["H3K9me3"]) < 0.3 and r["H3K4me3+H3K9me3"] > 0.7
    auc = test[(test["model"] == "binned_logistic") & (test["metric"] == "auroc")].groupby("marks")["value"].mean()
    assert auc["H3K4me3"] > 0.8 and auc["H3K4me3"] > auc["H3K9me3"] + 0.2
    for model in ("binned_ridge", "binned_logistic"):
        for fold in (1, 2, 3, 4):
            got = run.predictions[(run.predictions["model"] == model) & (run.predictions["fold"] == fold)]
            want = set(bench.genes["gene_id"].to_numpy()[bench.split(fold)["test"]])
            for key in ("H3K4me3", "H3K9me3", "H3K4me3+H3K9me3"):
                ids = got[got["marks"] == key]["gene_id"]
                assert ids.is_unique and set(ids) == want
    # the regressor's AUROC is its prediction scored against the label
    pred = run.predictions[(run.predictions["model"] == "binned_ridge") & (run.predictions["marks"] == "H3K4me3")]
    one = pred[pred["fold"] == 1]
    label = bench.genes.set_index("gene_id").loc[one["gene_id"], "label"]
    row = test[(test["model"] == "binned_ridge") & (test["marks"] == "H3K4me3") & (test["fold"] == 1)]
    assert row[row["metric"] == "auroc"]["value"].iloc[0] == pytest.approx(roc_auc_score(label, one["predicted"]))
    assert set(run.details["model"]) == {"binned_ridge", "binned_logistic"}


def test_expecto_features_equal_a_literal_loop_and_find_the_planted_mark(bench):
    """ExPecto's bases at each gene's own bin-centre distances (ExPecto predict.py's formula, written out)."""
    lambdas = (0.01, 0.02, 0.05, 0.1, 0.2)
    z = ex.expecto_features(bench, ["H3K4me3", "H3K9me3"], 2)
    x = bench.x(["H3K4me3", "H3K9me3"], 2)
    d = bench.windows.centre_distances(2)
    for g in (0, 1, 7, len(bench) - 1):
        expected = np.zeros((10, 2))
        for m in range(10):
            lam, upstream = lambdas[m % 5], m < 5
            for f in range(2):
                for j in range(5):
                    on = d[g, j] <= 0 if upstream else d[g, j] >= 0
                    expected[m, f] += x[g, f, j] * np.exp(-lam * np.floor(abs(d[g, j]) / 200)) * on
        np.testing.assert_allclose(z[g], expected.ravel(), rtol=1e-6)  # basis-major: m * F + f
    minus = np.flatnonzero(bench.genes["strand"].to_numpy() == "-")[0]
    assert d[minus, 0] < 0 < d[minus, -1]  # bin 0 upstream on both strands
    run = ex.expecto_models(bench, ex.mark_sets(["H3K4me3", "H3K9me3"]), [1, 2, 3, 4], k=2)
    test = run.metrics[(run.metrics["split"] == "test") & (run.metrics["metric"] == "pearson_r")]
    r = test.groupby("marks")["value"].mean()
    # weaker than the bar (the bases mix the TSS bin with its neighbours by each gene's distances)
    assert r["H3K4me3"] > 0.45 and r["H3K4me3"] > abs(r["H3K9me3"]) + 0.3
    assert set(run.details["model"]) == {"binned_expecto"} and run.details["alpha"].gt(0).all()


def test_cnn_learns_the_planted_mark_and_is_deterministic(bench, tmp_path, one_torch_thread):
    tp = {"lr": 1.0e-2, "batch_size": 128, "max_epochs": 6, "lr_factor": 0.2, "lr_patience": 3, "min_lr": 1.0e-6}
    tp["early_stopping_patience"] = 6
    cnn = {"channels": 8, "hidden": 8, "kernel_size": 3, "dropout": 0.0, "stacked": False}
    args = dict(k=2, cnn=cnn, train_params=tp, seed=0, device="cpu")
    run = ex.train_cnns(bench, [("H3K4me3",), ("H3K9me3",)], [1, 2], **args)
    r = run.metrics[(run.metrics["split"] == "test") & (run.metrics["metric"] == "pearson_r")]
    r = r.groupby("marks")["value"].mean()
    assert r["H3K4me3"] > 0.6 and r["H3K4me3"] > r["H3K9me3"] + 0.3
    # same seeds, same predictions (also through a checkpoint folder, and stacked with fit_many)
    again = ex.train_cnns(bench, [("H3K4me3",)], [1, 2], **args, checkpoint_dir=tmp_path)
    first = run.predictions[run.predictions["marks"] == "H3K4me3"].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again.predictions)
    assert sorted(p.name.split("_")[3] for p in tmp_path.glob("binned_cnn_*.pt")) == ["fold1", "fold2"]
    resumed = ex.train_cnns(bench, [("H3K4me3",)], [1, 2], **args, checkpoint_dir=tmp_path)  # read back
    pd.testing.assert_frame_equal(first, resumed.predictions)
    assert resumed.details["read_back"].all() and not again.details["read_back"].any()
    stacked = ex.train_cnns(bench, [("H3K4me3",)], [1, 2], **(args | {"cnn": cnn | {"stacked": True}}))
    np.testing.assert_allclose(stacked.predictions["predicted"], first["predicted"], rtol=1e-3, atol=1e-3)
    assert set(run.history.columns) >= {"epoch", "val_loss", "marks", "fold"}
    assert set(run.details["n_parameters"]) == {n_parameters(1, 5, channels=8, hidden=8)}


# --------------------------------------------------------------------------------------------
# the simulator check
# --------------------------------------------------------------------------------------------
def test_aggregate_reads_keeps_only_covered_bins():
    bins = pd.DataFrame({"chrom": "chr1", "start": np.arange(0, 50, 10), "end": np.arange(10, 60, 10)})
    reads = pd.DataFrame({"chrom": "chr1", "start": [1, 5, 12, 19, 33, 48], "end": [4, 8, 15, 22, 36, 51]})
    covered = np.array([True, True, False, True, True])
    table = ex.aggregate_reads({"H3K4me3": reads}, bins, covered)
    assert table["start"].tolist() == [0, 10, 30, 40]
    assert table["H3K4me3"].tolist() == [2, 2, 1, 1]  # the read 19-22 counts in bins 10 and 20 (20 dropped)
    with pytest.raises(ValueError, match="no bin is covered"):
        ex.aggregate_reads({"H3K4me3": reads}, bins, np.zeros(5, bool))


def test_paired_benchmarks_share_genes_targets_and_folds(bench):
    bins, _, _ = planted()
    other = bins.copy()
    other["H3K4me3"] = other["H3K9me3"]  # a "simulator" that lost the signal of A
    wanted = list(bench.genes["gene_id"].iloc[::3]) + ["not_a_gene"]
    own, sim, excluded = ex.paired_benchmarks(bench, other, wanted, k=1, provenance="semi-synthetic", source="sim")
    assert own.genes["gene_id"].tolist() == sim.genes["gene_id"].tolist()
    assert (own.genes["target"] == sim.genes["target"]).all() and (own.genes["label"] == sim.genes["label"]).all()
    assert sim.provenance == "semi-synthetic" and own.provenance == "real"
    assert excluded.set_index("reason").loc["not_in_benchmark", "n_genes"] == 1
    for fold in (1, 2):
        for part in ("train", "validation", "test"):
            np.testing.assert_array_equal(own.split(fold)[part], sim.split(fold)[part])
    real_fit = ex.linear_baselines(own, [("H3K4me3",), ("H3K9me3",)], [1, 2, 3, 4], k=1)
    sim_fit = ex.linear_baselines(sim, [("H3K4me3",), ("H3K9me3",)], [1, 2, 3, 4], k=1)
    rel = {name: ex.signal_relations(b, ["H3K4me3", "H3K9me3"]) for name, b in (("real", own), ("sim", sim))}
    table = ex.compare_sources(real_fit.metrics, sim_fit.metrics, rel["real"], rel["sim"], ["H3K4me3", "H3K9me3"], 0.1)
    r = table[table["quantity"] == "binned_ridge:pearson_r"].set_index("marks")
    np.testing.assert_allclose(r["difference"], r["simulated"] - r["real"])
    assert r.loc["H3K4me3", "off"] and r.loc["H3K4me3", "difference"] < -0.5 and not r.loc["H3K9me3", "off"]
    rho = table[table["quantity"] == "relation:spearman_tss_bin"].set_index("marks")
    assert rho.loc["H3K4me3", "real"] > 0.7 and rho.loc["H3K4me3", "off"]
    assert set(table["provenance_simulated"]) == {"semi-synthetic"}
    deciles = ex.expression_deciles(own, ["H3K4me3"])
    assert deciles["mean_log1p"].iloc[-1] > deciles["mean_log1p"].iloc[0] and deciles["n_genes"].sum() == len(own)
    stability = ex.ranking_stability(ex.fold_ranking(real_fit.metrics, ["H3K4me3", "H3K9me3"]))
    text = ex.answer(stability, real_fit.metrics, table, "real", BIN, len(own), "semi-synthetic", 0.1)
    assert "best single mark is **H3K4me3**" in text and "SEMI-SYNTHETIC" in text
    assert "Off by more than 0.1 in a correlation: H3K4me3." in text


# --------------------------------------------------------------------------------------------
# the model, the parameters, the figures
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n_marks", "n_bins"), [(1, 1), (1, 11), (5, 11), (5, 3)])
def test_binned_cnn_shapes_and_parameter_count(n_marks, n_bins):
    model = BinnedCNN(n_marks, n_bins)
    assert sum(p.numel() for p in model.parameters()) == n_parameters(n_marks, n_bins)
    assert model(torch.zeros(4, n_marks, n_bins)).shape == (4,)
    with pytest.raises(ValueError, match="expects input of shape"):
        model(torch.zeros(4, n_marks + 1, n_bins))
    with pytest.raises(ValueError, match="odd"):
        BinnedCNN(n_marks, n_bins, kernel_size=4)


def test_real_e116_parameters_are_validated():
    params = config.load_params(None)
    assert params["real_e116"]["cell_type"] == "E116" and params["real_e116"]["k"] == 5
    with pytest.raises(ValueError) as err:
        config.load_params(
            None, overrides={"real_e116": {"k": 6, "baseline_k": 3, "marks": ["H3K4me3", "H3K4me3"], "tolerance": 0}}
        )
    for key in ("real_e116.k", "real_e116.marks", "real_e116.tolerance"):
        assert key in str(err.value)
    with pytest.raises(ValueError, match="real_e116.baseline_k"):
        config.load_params(None, overrides={"real_e116": {"k": 2, "baseline_k": 3}})


def test_figures_say_which_data_they_show(bench):
    rows = []
    for model, metric in (("binned_ridge", "pearson_r"), ("binned_logistic", "auroc"), ("binned_cnn", "pearson_r")):
        for fold in (1, 2, 3, 4):
            for mark, v in (("H3K4me3", 0.7), ("H3K36me3", 0.65), ("H3K9me3", 0.1)):
                rows.append(
                    {"cell_type": "E116", "model": model, "marks": mark, "scheme": "chrom_folds", "fold": fold}
                    | {"split": "test", "n_genes": 100, "metric": metric, "value": v + 0.01 * fold}
                )
    metrics = pd.DataFrame(rows)
    fig = plots.plot_binned_benchmark(metrics, "real", 10_000, 1234, k=5, baseline_k=1)
    title = fig._suptitle.get_text()
    assert "real data" in title and "SEMI-SYNTHETIC" not in title and "1,234 genes" in title
    ranking = ex.fold_ranking(metrics[metrics["model"] != "binned_logistic"], ["H3K4me3", "H3K36me3", "H3K9me3"])
    fig = plots.plot_fold_ranking(ranking, ex.ranking_stability(ranking), "real", 10_000)
    assert len(fig.axes) == 3 and "real data" in fig._suptitle.get_text()
    perf = ex.performance_table({"real counts": (metrics, "real"), "simulated reads": (metrics, "semi-synthetic")})
    deciles = pd.DataFrame(
        [
            {
                "source": s,
                "provenance": p,
                "mark": "H3K4me3",
                "decile": d,
                "mean_target": d,
                "mean_log1p": d,
                "n_genes": 5,
            }
            for s, p in (("real counts", "real"), ("simulated reads", "semi-synthetic"))
            for d in range(1, 11)
        ]
    )
    fig = plots.plot_real_vs_simulated(perf, deciles, "real", "semi-synthetic", 50)
    title = fig._suptitle.get_text()
    assert "SEMI-SYNTHETIC" in title and "real data" in title and "only the TSS bin ± 1" in title
    import matplotlib.pyplot as plt

    plt.close("all")


def test_windows_flip_invariance_reaches_the_models():
    """A gene's window read on the minus strand is its plus-strand window reversed (bin 0 upstream)."""
    bins = pd.DataFrame({"chrom": "chr1", "start": np.arange(0, 20) * BIN, "end": np.arange(1, 21) * BIN})
    bins["H3K4me3"] = np.arange(20)
    genes = pd.DataFrame({"gene_id": ["p", "m"], "chrom": "chr1", "tss": [10_500, 10_500], "strand": ["+", "-"]})
    w = binned.tss_windows(bins, genes, 3)
    np.testing.assert_array_equal(w.counts[0, 0], w.counts[1, 0][::-1])
