"""ShallowChrome: Wald z against statsmodels and an independent computation, valley threshold,
configurations, splits, patterns, and AUROC on separable vs shuffled toy data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.metrics import roc_auc_score

from chromexp.baselines import shallowchrome as sc
from chromexp.constants import MARKS
from chromexp.results import METRIC_COLUMNS


def _toy_logistic(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.gamma(1.0, 10.0, size=(n, 4)) * (rng.random((n, 4)) < 0.6)
    beta = np.array([-0.8, 0.12, -0.05, 0.0, 0.02])
    y = (rng.random(n) < 1 / (1 + np.exp(-(beta[0] + x @ beta[1:])))).astype(int)
    return x, y


def _softmax_two_class_fit(x, y, c=1e8):
    """Class-1 weights (bias first) of a two-class softmax model, as the reference's
    ``LogisticRegression(multi_class='multinomial')`` fitted them (one weight vector per class,
    L2 penalty 1/(2C) on the weights, not the intercepts), by L-BFGS from scipy. sklearn >= 1.7
    no longer offers the multinomial option for two classes, so it is written out here."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    design = np.column_stack([np.ones(len(y)), x])
    scale = np.r_[1.0, x.std(axis=0)]  # conditioning only; undone below
    d = design / scale
    k = d.shape[1]

    def loss(theta):
        wmat = theta.reshape(2, k)
        logits = d @ wmat.T
        lse = logsumexp(logits, axis=1)
        nll = -(logits[np.arange(len(y)), y] - lse).sum()
        prob = np.exp(logits - lse[:, None])
        onehot = np.eye(2)[y]
        grad = (prob - onehot).T @ d
        pen = wmat[:, 1:]
        grad[:, 1:] += pen / c
        return nll + 0.5 * (pen**2).sum() / c, grad.ravel()

    res = minimize(loss, np.zeros(2 * k), jac=True, method="L-BFGS-B", options={"gtol": 1e-10, "maxiter": 5000})
    wmat = res.x.reshape(2, k) / scale
    # sklearn centres the intercepts of a multinomial fit (sum zero): symmetric like the weights
    return wmat[1] - wmat.mean(axis=0)


def test_fit_and_wald_z_equal_statsmodels_and_are_not_halved():
    x, y = _toy_logistic()
    names = ["a", "b", "c", "d"]
    fit = sc.fit_logistic(x, y, names=names)
    ref = sm.Logit(y, sm.add_constant(x)).fit(method="newton", disp=0)
    np.testing.assert_allclose(np.r_[fit.bias, fit.coef], ref.params, rtol=1e-7, atol=1e-10)
    assert fit.converged
    table = sc.wald_table(x, y, names=names)
    assert table["term"].tolist() == ["(bias)", *names]
    np.testing.assert_allclose(table["z"], ref.tvalues, rtol=1e-10)
    np.testing.assert_allclose(table["p_value"], ref.pvalues, rtol=1e-8)
    # independent: z = beta / sqrt(diag((X' W X)^-1)) with W = p(1 - p) at the MLE
    design = sm.add_constant(x)
    p = fit.predict_proba(x)
    cov = np.linalg.inv((design * (p * (1 - p))[:, None]).T @ design)
    z = np.r_[fit.bias, fit.coef] / np.sqrt(np.diag(cov))
    np.testing.assert_allclose(table["z"], z, rtol=1e-6)
    # the reference's z: its two-class *multinomial* (softmax) fit's class-1 coefficients over the
    # full logistic standard errors; fitted here independently, it is half the true z
    w = _softmax_two_class_fit(x, y)
    z_reference = w / ref.bse
    np.testing.assert_allclose(sc.wald_z_reference_halved(table["z"]), z_reference, rtol=2e-4)
    assert not np.allclose(table["z"], z_reference, rtol=0.1)  # the bug is a factor of 2, not rounding
    assert abs(table.loc[1, "z"]) > 10  # the strong activator ...
    assert table.loc[1, "role"] == "activator" and table.loc[2, "role"] == "repressor"
    assert table.loc[3, "role"] == "not significant"  # ... and the null feature (true weight 0)
    np.testing.assert_allclose(table["p_value"], 2 * stats.norm.sf(np.abs(table["z"])), rtol=1e-8)


def test_constant_feature_is_dropped_not_zeroed():
    x, y = _toy_logistic(n=800)
    x[:, 2] = 0.0  # e.g. a mark without any peak
    fit = sc.fit_logistic(x, y, names=list("abcd"))
    assert fit.dropped == ("c",) and np.isnan(fit.coef[2]) and np.isfinite(fit.coef[[0, 1, 3]]).all()
    table = sc.wald_table(x, y, names=list("abcd"))
    assert table.loc[3, "role"] == "not estimable" and np.isnan(table.loc[3, "z"])
    ref = sm.Logit(y, sm.add_constant(x[:, [0, 1, 3]])).fit(disp=0)
    np.testing.assert_allclose(table["z"].dropna(), ref.tvalues, rtol=1e-8)


def test_fast_auroc_equals_sklearn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500)
    score = rng.integers(0, 20, 500).astype(float)  # many ties
    assert sc.fast_auroc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert np.isnan(sc.fast_auroc(np.ones(5), np.arange(5.0)))


def _reference_find_valley(t, bins=100):
    """ShallowChrome utils.find_valley, as the reference calls it (oracle)."""
    freqs, edges = np.histogram(t, bins=bins)
    end = np.percentile(t, 50)
    slicer = np.where(edges < end)
    return edges[np.argmin(freqs[slicer])]


def test_valley_threshold_on_constructed_histogram():
    # ln(1 + RPKM) from 0 to 10 in 100 bins of width 0.1; 20 genes per bin except:
    counts = np.full(100, 20)
    counts[7] = 3  # the first lowest bin left of the median ...
    counts[12] = 3  # ... tied with a later one: the first wins
    counts[70] = 0  # an emptier bin right of the median is ignored
    t = np.repeat((np.arange(100) + 0.5) * 0.1, counts)
    t = np.concatenate([t, [0.0, 10.0]])  # pin the histogram range to [0, 10]
    rpkm = np.expm1(t)
    threshold = sc.valley_threshold(rpkm, bins=100)
    assert threshold == pytest.approx(np.expm1(0.7), rel=1e-9)
    labels, thr = sc.make_labels(rpkm, "valley")
    assert thr == threshold and labels.sum() == (rpkm >= threshold).sum()
    # the median rule is the study's label
    labels, thr = sc.make_labels(rpkm, "median")
    assert thr == np.median(rpkm) and labels.mean() == pytest.approx(0.5, abs=0.02)


def test_valley_threshold_matches_reference_on_bimodal_expression():
    rng = np.random.default_rng(5)
    rpkm = np.concatenate([rng.exponential(0.05, 4000), rng.lognormal(2.5, 1.2, 6000)])
    expected = np.expm1(_reference_find_valley(np.log1p(rpkm)))
    assert sc.valley_threshold(rpkm) == pytest.approx(expected, rel=1e-12)
    assert 0 < sc.valley_threshold(rpkm) < np.median(rpkm)
    with pytest.raises(ValueError, match="non-negative"):
        sc.valley_threshold(np.array([1.0, -1.0, 2.0]))


def test_configurations_follow_the_reference_grouping():
    f = sc.configuration_formats("broad_narrow", MARKS)
    assert {m: f[m] for m in ("H3K27me3", "H3K36me3", "H3K9me3")} == dict.fromkeys(
        ("H3K27me3", "H3K36me3", "H3K9me3"), "broadPeak"
    )
    assert {f[m] for m in ("H3K4me1", "H3K4me3", "H3K27ac", "H3K9ac")} == {"narrowPeak"}
    assert set(sc.configuration_formats("gapped_broad", MARKS).values()) == {"gappedPeak", "broadPeak"}
    assert len(sc.CONFIGURATIONS) == 6
    with pytest.raises(ValueError, match="Unknown ShallowChrome configuration"):
        sc.configuration_formats("narrow_gapped")


def test_random_thirds_sizes_and_determinism():
    splits = sc.random_thirds(19_802, repeats=3, seed=7)
    for s in splits:
        assert (len(s["train"]), len(s["validation"]), len(s["test"])) == (6601, 6601, 6600)
        assert np.array_equal(np.sort(np.concatenate(list(s.values()))), np.arange(19_802))
    again = sc.random_thirds(19_802, repeats=3, seed=7)
    assert all(np.array_equal(a["test"], b["test"]) for a, b in zip(splits, again))
    assert not np.array_equal(splits[0]["test"], splits[1]["test"])


def test_regulative_patterns_sum_to_the_logit():
    x, y = _toy_logistic(n=500)
    fit = sc.fit_logistic(x, y, names=list("abcd"))
    pat = sc.regulative_patterns(fit, x)
    assert list(pat.columns) == ["(bias)", "a", "b", "c", "d"]
    np.testing.assert_allclose(pat.sum(axis=1), fit.decision_function(x), rtol=1e-12)
    np.testing.assert_allclose(pat["b"], x[:, 1] * fit.coef[1])


def _toy_dataset(n=2400, seed=0, noise=2.5):
    """Features where narrowPeak carries the signal of the active marks and gappedPeak that of the
    repressive ones; every other format is noise. Chromosome folds = gene index mod 4."""
    rng = np.random.default_rng(seed)
    # bimodal like real expression: a silent mode near 0 and an expressed log-normal mode
    rpkm = np.where(rng.random(n) < 0.35, rng.exponential(0.05, n), rng.lognormal(2.0, 1.2, n))
    active = (rpkm >= np.median(rpkm)).astype(float)
    marks = MARKS
    feats = {fmt: rng.gamma(1.0, 2.0, (n, len(marks))) for fmt in ("narrowPeak", "broadPeak", "gappedPeak")}
    for j, mark in enumerate(marks):
        sign = -1 if mark in sc.REPRESSIVE_MARKS else 1
        fmt = "gappedPeak" if sign < 0 else "narrowPeak"
        feats[fmt][:, j] = np.clip(3 + sign * 3 * (active - 0.5) + noise * rng.normal(size=n), 0, None)
    genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(n)], "rpkm": rpkm, "target": np.log2(rpkm + 1)})
    fold = np.arange(n) % 4 + 1
    chrom = []
    for k in (1, 2, 3, 4):
        test = np.flatnonzero(fold == k)
        rest = np.flatnonzero(fold != k)
        chrom.append((k, {"train": rest[len(rest) // 8 :], "validation": rest[: len(rest) // 8], "test": test}))
    return feats, genes, marks, chrom


def test_evaluate_separable_selects_right_configuration_and_shuffled_is_chance():
    feats, genes, marks, chrom = _toy_dataset()
    splits = {"chrom_folds": chrom, "random_thirds": sc.random_third_splits(len(genes), repeats=2, seed=1)}
    res = sc.evaluate(feats, genes, marks, cell_type="E003", splits=splits, rules=("median", "valley"))
    assert set(res.metrics.columns) >= set(METRIC_COLUMNS)
    test_auc = res.metrics[
        (res.metrics["metric"] == "auroc")
        & (res.metrics["split"] == "test")
        & (res.metrics["model"] == "shallowchrome")
    ]
    assert len(test_auc) == 4 + 2 and (test_auc["value"] > 0.95).all()
    sel = res.selection[res.selection["model"] == "shallowchrome"]
    assert set(sel["config"]) == {"gapped_narrow"}
    assert len(res.grid) == 2 * 6 * 6 * 2  # rules x splits x configurations x (validation, test)
    # predictions: every gene once per model on the chromosome folds
    pred = res.predictions[res.predictions["model"] == "shallowchrome"]
    assert sorted(pred["gene_id"]) == sorted(genes["gene_id"])
    assert np.allclose(pred["predicted"], pred["probability"]) and set(pred["label"]) == {0, 1}
    # coefficients: one Wald table per selected model; the activating marks are activators
    coef = res.coefficients[
        (res.coefficients["model"] == "shallowchrome") & (res.coefficients["scheme"] == "chrom_folds")
    ]
    assert len(coef) == 4 * (1 + len(marks))
    assert set(coef.loc[coef["term"] == "H3K4me3", "role"]) == {"activator"}
    assert set(coef.loc[coef["term"] == "H3K27me3", "role"]) == {"repressor"}
    assert set(res.thresholds) == {"median", "valley"}

    shuffled = genes.copy()
    shuffled["rpkm"] = np.random.default_rng(9).permutation(genes["rpkm"].to_numpy())
    res0 = sc.evaluate(feats, shuffled, marks, cell_type="E003", splits={"chrom_folds": chrom})
    auc0 = res0.metrics.query("metric == 'auroc' and split == 'test'")["value"]
    assert abs(auc0.mean() - 0.5) < 0.05 and (auc0 - 0.5).abs().max() < 0.1


def test_perfectly_separable_data_give_auroc_one_and_no_wald_test():
    feats, genes, marks, chrom = _toy_dataset(n=400, noise=0.0)
    res = sc.evaluate(
        feats, genes, marks, cell_type="E003", splits={"chrom_folds": chrom[:1]}, configurations=["gapped_narrow"]
    )
    assert res.metrics.query("metric == 'auroc' and split == 'test'")["value"].item() == 1.0
    assert (res.coefficients["role"] == "not estimable (separable)").all()


@pytest.mark.skipif(__import__("shutil").which("macs2") is None, reason="macs2 not installed")
def test_smoke_dataset_end_to_end(smoke_params, smoke_dataset):
    """MACS2 on the smoke tagAligns -> peak-max features of the dataset's genes -> both protocols."""
    import copy

    params = copy.deepcopy(smoke_params)
    params["shallowchrome"].update({"marks": ["H3K4me3"], "repeats": 2, "thresholds": ["median"]})
    from chromexp.experiments import shallowchrome as sx

    run = sx.run_cell_type(params, "E003", dataset=smoke_dataset)
    assert (run.peak_table["n_peaks"] > 0).all()
    assert run.features["narrowPeak"].shape == (len(smoke_dataset.genes), 1)
    auc = run.result.metrics.query("metric == 'auroc' and split == 'test'")
    assert set(auc["scheme"]) == {"chrom_folds", "random_thirds"} and len(auc) == 4 + 2
    # the simulated H3K4me3 marks active promoters: its peaks must predict activity well above chance
    assert auc["value"].mean() > 0.75


@pytest.mark.skipif(__import__("shutil").which("macs2") is None, reason="macs2 not installed")
@pytest.mark.skipif(__import__("shutil").which("bedtools") is None, reason="bedtools not installed")
def test_bedtools_feature_engine_gives_identical_features_and_leaves_no_temp_files(
    smoke_params, smoke_dataset, tmp_path, monkeypatch
):
    """shallowchrome.feature_engine: bedtools (`bedtools map -o max`) = numpy on the smoke peaks."""
    import copy
    import tempfile

    import pybedtools

    from chromexp.experiments import shallowchrome as sx

    params = copy.deepcopy(smoke_params)
    params["shallowchrome"].update({"marks": ["H3K4me3"], "repeats": 2, "thresholds": ["median"]})
    fast = sx.run_cell_type(params, "E003", dataset=smoke_dataset)  # calls the peaks (or finds them)
    # every temporary file of the bedtools run would land under these two folders
    system_tmp, pbt_tmp = tmp_path / "tmp", tmp_path / "pybedtools"
    system_tmp.mkdir()
    pbt_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    before = pybedtools.get_tempdir()
    pybedtools.set_tempdir(str(pbt_tmp))
    try:
        params["shallowchrome"]["feature_engine"] = "bedtools"
        oracle = sx.run_cell_type(params, "E003", dataset=smoke_dataset)
    finally:
        pybedtools.set_tempdir(before)
    assert set(oracle.features) == {"narrowPeak", "broadPeak", "gappedPeak"} == set(fast.features)
    for fmt, x in fast.features.items():
        np.testing.assert_array_equal(oracle.features[fmt], x, err_msg=fmt)
    values = np.concatenate([x.ravel() for x in fast.features.values()])
    assert (values > 0).sum() >= 100 and (values == 0).any()  # both cases occur: peaks near most TSSs, not all
    pd.testing.assert_frame_equal(oracle.result.metrics, fast.result.metrics)
    assert list(system_tmp.iterdir()) == [] and list(pbt_tmp.iterdir()) == []
