"""The experiments layer's shared pieces: fold evaluation, the results check, planning and summaries."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromexp import results
from chromexp.experiments import chromoformer as cx
from chromexp.experiments import evaluation
from chromexp.experiments import promoter_cnn as px


class _Dataset:
    cell_type = "E003"

    def __init__(self, n=12):
        self.genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(n)]})
        self._fold = np.arange(n) % 2 + 1

    def split(self, fold):
        test = np.flatnonzero(self._fold == fold)
        rest = np.flatnonzero(self._fold != fold)
        return {"train": rest[2:], "validation": rest[:2], "test": test}


def _evaluate(ds, marks, fold, labels=None, predict=None):
    rng = np.random.default_rng(fold)
    observed = rng.normal(size=len(ds.genes)).astype(np.float32)
    if predict is None:

        def predict(rows):
            return observed[rows] + rng.normal(0, 0.1, rows.size).astype(np.float32)

    return evaluation.evaluate_fold(
        predict,
        evaluation.fold_split(ds, fold),
        cell_type=ds.cell_type,
        model="m",
        marks=marks,
        fold=fold,
        gene_ids=ds.genes["gene_id"].to_numpy(),
        observed=observed,
        labels=labels,
    )


def test_evaluate_fold_tables_and_values():
    ds = _Dataset()
    metrics, pred = _evaluate(ds, "H3K4me3", 1)
    metrics = pd.concat(metrics, ignore_index=True)
    results.validate(metrics, results.METRIC_COLUMNS, "metrics")
    results.validate(pred, results.PREDICTION_COLUMNS, "predictions")
    assert list(pred.columns) == list(results.PREDICTION_COLUMNS)
    assert set(metrics["split"]) == {"test", "validation"}
    assert set(pred["gene_id"]) == set(ds.genes["gene_id"][ds.split(1)["test"]])
    r = metrics.query("split == 'test' and metric == 'pearson_r'")["value"].item()
    assert r == pytest.approx(np.corrcoef(pred["observed"], pred["predicted"])[0, 1], abs=1e-6)


def test_evaluate_fold_classifier_adds_label_and_probability():
    ds = _Dataset()
    labels = np.arange(len(ds.genes)) % 2
    logits = np.stack([np.zeros(len(ds.genes)), np.linspace(-2, 2, len(ds.genes))], axis=1).astype(np.float32)
    metrics, pred = _evaluate(ds, "H3K4me3", 2, labels=labels, predict=lambda rows: logits[rows])
    assert list(pred.columns[-2:]) == ["label", "probability"]
    np.testing.assert_allclose(pred["probability"], 1 / (1 + np.exp(-logits[ds.split(2)["test"], 1])), rtol=1e-6)
    assert "auroc" in set(pd.concat(metrics)["metric"])


def test_fold_split_refuses_an_empty_part():
    ds = _Dataset()
    ds.split = lambda fold: {"train": np.arange(3), "validation": np.array([], int), "test": np.arange(3, 6)}
    with pytest.raises(ValueError, match="no validation genes"):
        evaluation.fold_split(ds, 1)


def test_check_fold_results_catches_missing_and_duplicated_predictions():
    ds = _Dataset()
    tables = [_evaluate(ds, "H3K4me3", f) for f in (1, 2)]
    metrics = pd.concat([m for t in tables for m in t[0]], ignore_index=True)
    pred = pd.concat([t[1] for t in tables], ignore_index=True)
    evaluation.check_fold_results(metrics, pred, ds, [("H3K4me3",)], [1, 2])
    with pytest.raises(ValueError, match="fold 2"):
        evaluation.check_fold_results(metrics, pred.iloc[:-1], ds, ["H3K4me3"], [1, 2])
    with pytest.raises(ValueError, match="exactly one"):
        evaluation.check_fold_results(metrics, pd.concat([pred, pred.iloc[:1]]), ds, ["H3K4me3"], [1, 2])
    with pytest.raises(ValueError, match="H3K27ac"):
        evaluation.check_fold_results(metrics, pred, ds, ["H3K27ac"], [1])
    bad = metrics.copy()
    bad.loc[bad["metric"] == "mse", "value"] = np.nan
    with pytest.raises(ValueError, match="missing metric"):
        evaluation.check_fold_results(bad, pred, ds, ["H3K4me3"], [1, 2])


def _metric_rows(model, marks, folds, value=0.5):
    return pd.DataFrame(
        [
            dict(
                cell_type="E003",
                model=model,
                marks=results.marks_key(marks),
                scheme="chrom_folds",
                fold=f,
                split="test",
                n_genes=10,
                metric="pearson_r",
                value=value,
            )
            for f in folds
        ]
    )


def test_pair_training_plan_reuses_only_complete_references():
    marks = ["H3K4me3", "H3K27me3", "H3K27ac"]
    previous = pd.concat(
        [
            _metric_rows("chromoformer_reg", ["H3K4me3"], [1, 2]),
            _metric_rows("chromoformer_reg", ["H3K27me3"], [1]),  # fold 2 missing: retrain
            _metric_rows("promoter_cnn", ["H3K27ac"], [1, 2]),  # another model: does not count
        ]
    )
    pairs = [("H3K27ac", "H3K4me3"), ("H3K27me3", "H3K4me3")]
    to_train, reused = cx.pair_training_plan(previous, pairs, marks, "chromoformer_reg", [1, 2])
    assert reused == [("H3K4me3",)]
    assert to_train == [*pairs, ("H3K27ac",), ("H3K27me3",), tuple(marks)]
    empty = pd.DataFrame(columns=list(results.METRIC_COLUMNS))
    assert cx.pair_training_plan(empty, pairs, marks, "chromoformer_reg", [1])[1] == []


def test_compare_with_naive_and_answers_say_semi_synthetic():
    test = pd.concat(
        [_metric_rows("promoter_cnn", ["H3K4me3"], [1, 2], 0.7), _metric_rows("promoter_cnn", ["H3K9me3"], [1, 2], 0.1)]
    )
    naive = pd.concat(
        [
            _metric_rows("naive_tss750", ["H3K4me3"], [1, 2], 0.6).assign(metric="abs_pearson_r"),
            _metric_rows("naive_tss750", ["H3K9me3"], [1, 2], 0.2).assign(metric="abs_pearson_r"),
        ]
    )
    table = px.compare_with_naive(test, naive, ["H3K9me3", "H3K4me3"], "semi-synthetic")
    assert list(table.index) == ["H3K9me3", "H3K4me3"]
    assert table.loc["H3K4me3", "cnn_minus_naive"] == pytest.approx(0.1)
    assert table.loc["H3K9me3", "cnn_minus_naive"] == pytest.approx(-0.1)
    text = px.answer(table, 2, "semi-synthetic")
    assert "semi-synthetic" in text and "H3K4me3" in text and "1 of 2 marks" in text
    assert "semi-synthetic" not in px.answer(table, 2, "real")
