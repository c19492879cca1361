"""Evaluation metrics over all test genes of a fold, and their tidy long-format tables.

Every metric here is computed once over the complete vectors of observed and predicted values of
a fold's genes (docs/methods.md, "Training protocol") — never averaged over mini-batches, which is what the reference
``chromexpress`` code logged (a batch-averaged Pearson r is biased towards zero and depends on the
batch size). :func:`tidy_metrics` turns a ``{metric: value}`` dict into rows of the
``results.METRIC_COLUMNS`` schema (docs/data-formats.md, "Result tables").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from .results import METRIC_COLUMNS, SCHEMES, SPLITS, marks_key

REGRESSION_METRICS: tuple[str, ...] = ("pearson_r", "spearman_rho", "r2", "mse")
CLASSIFICATION_METRICS: tuple[str, ...] = ("auroc", "aupr", "f1")


def _as_vector(values, name: str) -> np.ndarray:
    """Return ``values`` as a 1-D float64 array, or raise a ``ValueError`` naming ``name``."""
    try:
        arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Argument {name!r} must be numeric; got {type(values).__name__} ({err}).") from None
    arr = np.squeeze(arr) if arr.ndim > 1 and sum(s != 1 for s in arr.shape) <= 1 else arr
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"Argument {name!r} must be one value per gene (1-D); got shape {arr.shape}.")
    return arr


def _check_pair(a, b, name_a: str, name_b: str, min_n: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x, y = _as_vector(a, name_a), _as_vector(b, name_b)
    if x.shape != y.shape:
        raise ValueError(f"{name_a!r} has {x.size} values but {name_b!r} has {y.size}; they must be the same genes.")
    if x.size < min_n:
        raise ValueError(f"Need at least {min_n} genes to compute metrics; got {x.size}.")
    for arr, name in ((x, name_a), (y, name_b)):
        bad = ~np.isfinite(arr)
        if bad.any():
            raise ValueError(
                f"{name!r} has {int(bad.sum())} non-finite value(s) (first at index {int(np.flatnonzero(bad)[0])})."
            )
    return x, y


def pearson_r(observed, predicted) -> float:
    """Pearson correlation over all genes; NaN when either vector is constant."""
    x, y = _check_pair(observed, predicted, "observed", "predicted")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.pearsonr(x, y)[0])


def spearman_rho(observed, predicted) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either vector is constant."""
    x, y = _check_pair(observed, predicted, "observed", "predicted")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(stats.spearmanr(x, y)[0])


def regression_metrics(observed, predicted) -> dict[str, float]:
    """Pearson r, Spearman ρ, R² and MSE of predictions over all genes of a fold.

    Parameters
    ----------
    observed : array-like, shape (n_genes,)
        Observed targets (log2(RPKM + 1)).
    predicted : array-like, shape (n_genes,)
        Model predictions for the same genes, in the same order.

    Returns
    -------
    dict
        ``{"pearson_r", "spearman_rho", "r2", "mse"}`` as floats. ``r2`` is the coefficient of
        determination ``1 - SS_res / SS_tot`` (sklearn's ``r2_score``; it can be negative), not the
        squared correlation. Correlations are NaN when a vector is constant.
    """
    x, y = _check_pair(observed, predicted, "observed", "predicted")
    return {
        "pearson_r": pearson_r(x, y),
        "spearman_rho": spearman_rho(x, y),
        "r2": float(skm.r2_score(x, y)) if np.ptp(x) > 0 else float("nan"),
        "mse": float(np.mean((x - y) ** 2)),
    }


def classification_metrics(labels, probability, threshold: float = 0.5) -> dict[str, float]:
    """AUROC, AUPR (average precision) and F1 at ``threshold`` over all genes of a fold.

    Parameters
    ----------
    labels : array-like of {0, 1}, shape (n_genes,)
        True classes (1 = active gene).
    probability : array-like, shape (n_genes,)
        Predicted probability (or any score for AUROC/AUPR) of class 1.
    threshold : float
        ``probability >= threshold`` is called class 1 for F1.

    Returns
    -------
    dict
        ``{"auroc", "aupr", "f1"}``; AUROC and AUPR are NaN when only one class is present.
    """
    y, p = _check_pair(labels, probability, "labels", "probability")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"'labels' must be 0/1; found values {sorted(set(np.unique(y)) - {0.0, 1.0})[:5]}.")
    y = y.astype(int)
    both = 0 < y.sum() < y.size
    return {
        "auroc": float(skm.roc_auc_score(y, p)) if both else float("nan"),
        "aupr": float(skm.average_precision_score(y, p)) if both else float("nan"),
        "f1": float(skm.f1_score(y, (p >= threshold).astype(int), zero_division=0.0)),
    }


def tidy_metrics(
    values: Mapping[str, float],
    *,
    cell_type: str,
    model: str,
    marks: str | Iterable[str],
    scheme: str,
    fold: int,
    split: str,
    n_genes: int,
) -> pd.DataFrame:
    """One row per metric in the ``results.METRIC_COLUMNS`` schema (docs/data-formats.md, "Result tables").

    Parameters
    ----------
    values : mapping of str to float
        E.g. the output of :func:`regression_metrics`.
    cell_type, model : str
        Roadmap EID and model name (e.g. ``"promoter_cnn"``).
    marks : str or iterable of str
        The input marks; stored canonically (sorted, ``+``-joined).
    scheme : str
        Split protocol, one of ``results.SCHEMES``.
    fold : int
        Fold (or repeat) index.
    split : str
        One of ``results.SPLITS``.
    n_genes : int
        Number of genes the metrics were computed on.
    """
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown scheme {scheme!r}; known: {SCHEMES}.")
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; known: {SPLITS}.")
    if not values:
        raise ValueError("No metric values given.")
    key = marks_key(marks)
    rows = [
        {
            "cell_type": cell_type,
            "model": model,
            "marks": key,
            "scheme": scheme,
            "fold": int(fold),
            "split": split,
            "n_genes": int(n_genes),
            "metric": str(name),
            "value": float(value),
        }
        for name, value in values.items()
    ]
    return pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
