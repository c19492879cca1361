"""Predict each fold's test (and validation) genes → tidy metrics and predictions tables.

Every experiment that trains one model per (mark set, fold) evaluates it the same way: metrics over
all test genes of a fold at once (never per batch), the same on the fold's validation genes, and
one prediction row per test gene. :func:`evaluate_fold` does this once for all of them; the rows
are built by :func:`metrics_table` and :func:`predictions_table` only, so a column added to the
results tables (``docs/data-formats.md``) is added in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics import classification_metrics, regression_metrics, tidy_metrics
from ..results import marks_key

#: Splits evaluated per fold; only the test split's predictions are kept.
EVALUATED_SPLITS: tuple[str, ...] = ("test", "validation")


def fold_split(dataset, fold: int) -> dict[str, np.ndarray]:
    """``dataset.split(fold)`` as int64 gene positions, refusing a fold without train, validation or test genes."""
    split = {k: np.asarray(v, dtype=np.int64) for k, v in dataset.split(fold).items()}
    for part in ("train", "validation", "test"):
        if split[part].size == 0:
            raise ValueError(f"Fold {fold} of {dataset.cell_type} has no {part} genes; cannot train or evaluate it.")
    return split


def metrics_table(
    values: Mapping[str, float], *, cell_type: str, model: str, marks: str, fold: int, split: str, n_genes: int
) -> pd.DataFrame:
    """Tidy metric rows (``results.METRIC_COLUMNS``) of one (model, marks, fold, split)."""
    return tidy_metrics(
        values,
        cell_type=cell_type,
        model=model,
        marks=marks,
        scheme="chrom_folds",
        fold=fold,
        split=split,
        n_genes=n_genes,
    )


def predictions_table(
    *, cell_type: str, model: str, marks: str, fold: int, gene_id, observed, predicted, **extra
) -> pd.DataFrame:
    """One row per gene (``results.PREDICTION_COLUMNS``, then the ``extra`` columns in order)."""
    return pd.DataFrame(
        {
            "cell_type": cell_type,
            "model": model,
            "marks": marks,
            "fold": fold,
            "gene_id": gene_id,
            "observed": observed,
            "predicted": predicted,
            **extra,
        }
    )


def evaluate_fold(
    predict: Callable[[np.ndarray], np.ndarray],
    split: Mapping[str, np.ndarray],
    *,
    cell_type: str,
    model: str,
    marks: str,
    fold: int,
    gene_ids: np.ndarray,
    observed: np.ndarray,
    labels: np.ndarray | None = None,
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Metrics of one trained (marks, fold) model on its test and validation genes, and its test predictions.

    Parameters
    ----------
    predict : callable
        ``predict(rows)`` → the model's outputs for the genes at positions ``rows``: one value per
        gene for a regressor, ``(n, 2)`` logits for a classifier.
    split : mapping
        ``dataset.split(fold)``: gene positions of ``"test"`` and ``"validation"``.
    cell_type, model, marks, fold : str, str, str, int
        Identify the rows.
    gene_ids, observed : numpy.ndarray
        Per gene of the dataset: identifier and log2(RPKM + 1).
    labels : numpy.ndarray or None
        Per gene 0/1 labels for a classifier (``None``: the model is a regressor).

    Returns
    -------
    metrics : list of pandas.DataFrame
        Tidy metric rows, test split first.
    predictions : pandas.DataFrame
        One row per test gene (a classifier's rows add ``label`` and ``probability``).
    """
    metrics, predictions = [], None
    ids = dict(cell_type=cell_type, model=model, marks=marks, fold=fold)
    for part in EVALUATED_SPLITS:
        rows = np.asarray(split[part])
        out = predict(rows)
        if labels is None:
            values, extra = regression_metrics(observed[rows], out), {"predicted": out}
        else:
            prob = torch.softmax(torch.as_tensor(out), dim=1)[:, 1].numpy()
            values = classification_metrics(labels[rows], prob)
            extra = {"predicted": prob, "label": labels[rows], "probability": prob}
        metrics.append(metrics_table(values, **ids, split=part, n_genes=rows.size))
        if part == "test":
            predictions = predictions_table(**ids, gene_id=gene_ids[rows], observed=observed[rows], **extra)
    return metrics, predictions


def check_fold_results(
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    dataset,
    mark_sets: Iterable[str | Sequence[str]],
    folds: Iterable[int],
) -> None:
    """Check an experiment's tables before they are saved (notebooks 30, 40, 50).

    Every test gene of each fold has exactly one finite prediction per mark set, and no metric
    other than R² (undefined on a constant target) is missing.

    Raises
    ------
    ValueError
        Naming the first (mark set, fold) whose predictions are incomplete or duplicated.
    """
    gene_ids = dataset.genes["gene_id"].to_numpy()
    keys = [marks_key(s) for s in mark_sets]
    for fold in folds:
        test_ids = set(gene_ids[dataset.split(fold)["test"]])
        for key in keys:
            got = predictions[(predictions["fold"] == fold) & (predictions["marks"] == key)]["gene_id"]
            if not got.is_unique or set(got) != test_ids:
                raise ValueError(
                    f"{dataset.cell_type} {key} fold {fold}: {len(got)} predictions ({got.nunique()} genes) for "
                    f"{len(test_ids)} test genes; every test gene needs exactly one."
                )
    if not np.isfinite(predictions["predicted"].to_numpy(dtype=float)).all():
        raise ValueError(f"{dataset.cell_type}: non-finite predictions.")
    missing = metrics.loc[(metrics["metric"] != "r2") & metrics["value"].isna()]
    if len(missing):
        raise ValueError(f"{dataset.cell_type}: missing metric values:\n{missing.head()}")


def mean_test_metric(metrics: pd.DataFrame, model: str, metric: str = "pearson_r") -> pd.Series:
    """Mean over folds of ``model``'s test ``metric`` per mark set, best first."""
    sel = metrics[(metrics["model"] == model) & (metrics["split"] == "test") & (metrics["metric"] == metric)]
    return sel.groupby("marks")["value"].mean().sort_values(ascending=False)
