"""Metrics equal scipy / sklearn over all genes, and tidy tables follow the results schema."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from chromexp import metrics
from chromexp.results import METRIC_COLUMNS, validate


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_regression_metrics_equal_scipy_sklearn(rng):
    obs = rng.normal(size=500)
    pred = 0.6 * obs + rng.normal(size=500)
    out = metrics.regression_metrics(obs, pred)
    assert out["pearson_r"] == pytest.approx(stats.pearsonr(obs, pred)[0], abs=1e-12)
    assert out["spearman_rho"] == pytest.approx(stats.spearmanr(obs, pred)[0], abs=1e-12)
    assert out["r2"] == pytest.approx(skm.r2_score(obs, pred), abs=1e-12)
    assert out["mse"] == pytest.approx(skm.mean_squared_error(obs, pred), abs=1e-12)


def test_regression_metrics_are_not_batch_averages(rng):
    # the all-gene Pearson r differs from the mean of per-batch r (what the reference logged)
    obs = rng.normal(size=256)
    pred = obs + rng.normal(size=256)
    whole = metrics.regression_metrics(obs, pred)["pearson_r"]
    per_batch = np.mean([stats.pearsonr(obs[i : i + 8], pred[i : i + 8])[0] for i in range(0, 256, 8)])
    assert whole == pytest.approx(np.corrcoef(obs, pred)[0, 1])
    assert abs(whole - per_batch) > 1e-3


def test_accepts_tensors_and_column_vectors(rng):
    obs = rng.normal(size=50)
    pred = rng.normal(size=50)
    ref = metrics.regression_metrics(obs, pred)
    got = metrics.regression_metrics(torch.tensor(obs).reshape(-1, 1), torch.tensor(pred))
    assert got == pytest.approx(ref)


def test_classification_metrics_equal_sklearn(rng):
    y = rng.integers(0, 2, size=400)
    p = np.clip(0.3 * y + rng.uniform(size=400) * 0.7, 0, 1)
    out = metrics.classification_metrics(y, p, threshold=0.5)
    assert out["auroc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert out["aupr"] == pytest.approx(skm.average_precision_score(y, p))
    assert out["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5))


def test_degenerate_inputs():
    assert np.isnan(metrics.regression_metrics([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])["pearson_r"])
    assert np.isnan(metrics.classification_metrics([1, 1, 1], [0.1, 0.2, 0.9])["auroc"])


@pytest.mark.parametrize(
    ("obs", "pred", "match"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], "same genes"),
        ([1.0], [1.0], "at least 2"),
        ([1.0, np.nan, 3.0], [1.0, 2.0, 3.0], "non-finite"),
        (np.ones((3, 2)), np.ones((3, 2)), "1-D"),
        (["a", "b"], [1.0, 2.0], "numeric"),
    ],
)
def test_bad_input_raises(obs, pred, match):
    with pytest.raises(ValueError, match=match):
        metrics.regression_metrics(obs, pred)


def test_bad_labels_raise():
    with pytest.raises(ValueError, match="0/1"):
        metrics.classification_metrics([0, 2, 1], [0.1, 0.2, 0.3])


def test_tidy_metrics_schema():
    vals = {"pearson_r": 0.5, "mse": 1.25}
    table = metrics.tidy_metrics(
        vals,
        cell_type="E003",
        model="promoter_cnn",
        marks=["H3K4me3", "H3K27ac"],
        scheme="chrom_folds",
        fold=2,
        split="test",
        n_genes=10,
    )
    assert list(table.columns) == list(METRIC_COLUMNS)
    validate(table, METRIC_COLUMNS, "metrics")
    assert (table["marks"] == "H3K27ac+H3K4me3").all()
    pd.testing.assert_series_equal(table.set_index("metric")["value"], pd.Series(vals, name="value"), check_names=False)
    with pytest.raises(ValueError, match="scheme"):
        metrics.tidy_metrics(
            vals, cell_type="E003", model="m", marks="H3K4me3", scheme="x", fold=1, split="test", n_genes=1
        )
    with pytest.raises(ValueError, match="split"):
        metrics.tidy_metrics(
            vals, cell_type="E003", model="m", marks="H3K4me3", scheme="chrom_folds", fold=1, split="x", n_genes=1
        )
