"""Evaluation metrics over all test genes of a fold, and their tidy long-format tables.

Every metric here is computed once over the complete vectors of observed and predicted values of
a fold's genes (docs/methods.md, "Training protocol") — never averaged over mini-batches, which is what the reference
``chromexpress`` code logged (a batch-averaged Pearson r is biased towards zero and depends on the
batch size). :func:`tidy_metrics` turns a ``{metric: value}`` dict into rows of the
``results.METRIC_COLUMNS`` schema (docs/data-formats.md, "Result tables").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats
from sklearn import metrics as skm

from .results import METRIC_COLUMNS, NO_MARKS, SCHEMES, SPLITS, marks_key

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


# ----------------------------------------------------------------------------------------------
# The two axes of Mittal (2025): cross-gene and cross-celltype (docs/methods.md, "Cross-gene and
# cross-celltype metrics")
# ----------------------------------------------------------------------------------------------
#: Metric names of the cross-gene axis: one value per (model, marks, cell type, fold) over the
#: fold's test genes (the existing ``pearson_r`` / ``spearman_rho``, named for the axis).
CROSS_GENE_METRICS: tuple[str, ...] = ("cross_gene_spearman", "cross_gene_pearson")
#: Metric names of the cross-celltype axis (cell_type ``"all"``): the mean over a fold's unmasked
#: test genes of each gene's correlation across the run's cell types, Pearson r of the per-gene
#: centred values pooled over genes, the permutation null and the counts.
CROSS_CELLTYPE_METRICS: tuple[str, ...] = (
    "cross_celltype_spearman",
    "cross_celltype_pearson",
    "cross_celltype_centred_pearson",
    "cross_celltype_spearman_null_mean",
    "cross_celltype_spearman_null_q95",
    "cross_celltype_spearman_null_p",
    "cross_celltype_pearson_null_mean",
    "cross_celltype_pearson_null_q95",
    "cross_celltype_pearson_null_p",
    "n_genes_masked",
    "n_genes_constant_prediction",
    "n_genes_incomplete",
    "n_cell_types",
)
#: Up to this many cell types the permutation null enumerates every permutation once per gene.
MAX_ENUMERATED_CELL_TYPES = 6
#: ``cell_type`` of the cross-celltype rows (they span every cell type of the run).
ALL_CELL_TYPES = "all"
#: Model name of the cross-gene baseline: a gene's mean observed value over the *other* cell types.
MEAN_OTHER_MODEL = "mean_other_cell_types"


def _as_matrix(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"Argument {name!r} must be numeric; got {type(values).__name__} ({err}).") from None
    if arr.ndim != 2:
        raise ValueError(f"Argument {name!r} must be (genes, cell types); got shape {arr.shape}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        g, t = np.argwhere(bad)[0]
        raise ValueError(f"{name!r} has {int(bad.sum())} non-finite value(s) (first at gene {g}, cell type {t}).")
    return arr


def _row_ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank, as ``scipy.stats.rankdata``)."""
    return stats.rankdata(x, axis=-1, method="average")


def _row_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r of each row of ``a`` with the same row of ``b`` (last axis); NaN where a row is constant."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=-1) * (b * b).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=-1) / den
    return np.where(den > 0, np.clip(r, -1.0, 1.0), np.nan)


def cross_celltype_correlations(observed, predicted, method: str = "spearman") -> dict[str, np.ndarray]:
    """Per gene, the correlation across cell types of predicted with observed expression.

    The cross-celltype task of Mittal (2025, §3.1): for each gene, Spearman ρ (or Pearson r)
    between its predicted and measured values over the cell types. A gene whose observed values
    are constant across cell types (SD = 0) has no cross-celltype signal: it is **masked** (NaN,
    counted) rather than scored. A gene whose *prediction* is constant across cell types (e.g. a
    model that ignores the cell type) carries no cross-celltype information: it is scored 0 and
    counted [our choice; the correlation itself is undefined].

    Parameters
    ----------
    observed, predicted : array-like, shape (n_genes, n_cell_types)
        The same genes (rows) and cell types (columns); finite values.
    method : {"spearman", "pearson"}
        Spearman uses average ranks for ties.

    Returns
    -------
    dict
        ``r`` (n_genes,) float64, NaN for masked genes; ``masked`` (n_genes,) bool (observed
        constant); ``constant_prediction`` (n_genes,) bool (prediction constant, not masked).
    """
    y = _as_matrix(observed, "observed")
    p = _as_matrix(predicted, "predicted")
    if y.shape != p.shape:
        raise ValueError(
            f"'observed' has shape {y.shape} but 'predicted' {p.shape}; they must be the same genes × cell types."
        )
    if y.shape[1] < 2:
        raise ValueError(f"Need at least 2 cell types for a cross-celltype correlation; got {y.shape[1]}.")
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson'; got {method!r}.")
    masked = np.ptp(y, axis=1) == 0  # exact: a float mean of equal values can leave ±1e-17 residues
    const_pred = (np.ptp(p, axis=1) == 0) & ~masked
    a, b = (_row_ranks(y), _row_ranks(p)) if method == "spearman" else (y, p)
    r = _row_pearson(a, b)
    r[const_pred] = 0.0
    r[masked] = np.nan
    return {"r": r, "masked": masked, "constant_prediction": const_pred}


def centred_pearson(observed, predicted) -> float:
    """Pearson r over all (gene, cell type) pairs of per-gene centred values, unmasked genes only.

    A pooled cross-celltype score that stays informative with few cell types (a per-gene
    correlation over 4 values takes few distinct values): each gene's mean over cell types is
    removed from its observed and from its predicted values, which removes the cross-gene axis.
    NaN when no gene is left.
    """
    y = _as_matrix(observed, "observed")
    p = _as_matrix(predicted, "predicted")
    keep = np.ptp(y, axis=1) > 0
    if keep.sum() == 0:
        return float("nan")
    yc = (y - y.mean(axis=1, keepdims=True))[keep].ravel()
    pc = (p - p.mean(axis=1, keepdims=True))[keep].ravel()
    den = np.sqrt((yc * yc).sum() * (pc * pc).sum())
    return float((yc * pc).sum() / den) if den > 0 else float("nan")


def cross_celltype_permutation_null(
    observed,
    predicted,
    *,
    method: str = "spearman",
    n_permutations: int = 1000,
    seed: int = 0,
    chunk: int = 64,
) -> dict[str, float | np.ndarray]:
    """Per-gene permutation null of the mean cross-celltype correlation.

    Each draw permutes every gene's predicted values across the cell types independently (one
    uniformly random permutation per gene, ``numpy.random.default_rng(seed)``), recomputes the
    per-gene correlations exactly as :func:`cross_celltype_correlations` and averages them over
    the unmasked genes. With at most :data:`MAX_ENUMERATED_CELL_TYPES` cell types every
    permutation's correlation is computed once per gene and each draw picks one (fast); with
    more, each draw permutes by sorting random keys. The model's mean is compared with these ``n_permutations`` null means:
    ``p = (1 + #{null ≥ observed}) / (1 + n_permutations)`` (one-sided: the model must *beat*
    random assignment of its predictions to cell types).

    Parameters
    ----------
    observed, predicted : array-like, shape (n_genes, n_cell_types)
    method : {"spearman", "pearson"}
    n_permutations : int
        Null draws (≥ 1).
    seed : int
        Seed of the permutations (same seed → same null).
    chunk : int
        Draws computed at once (memory ``chunk × n_genes × n_cell_types`` floats; no effect on results).

    Returns
    -------
    dict
        ``observed`` (the model's mean over unmasked genes), ``null`` (n_permutations,) null
        means, ``null_mean``, ``null_q95`` (95th percentile) and ``p``.

    Raises
    ------
    ValueError
        When every gene is masked (no gene varies across cell types): nothing to test.
    """
    y = _as_matrix(observed, "observed")
    p = _as_matrix(predicted, "predicted")
    res = cross_celltype_correlations(y, p, method=method)
    keep = ~res["masked"]
    if not keep.any():
        raise ValueError(
            f"All {y.shape[0]} genes are constant across the {y.shape[1]} cell types (masked): no cross-celltype "
            "correlation to test."
        )
    if int(n_permutations) < 1:
        raise ValueError(f"n_permutations must be ≥ 1; got {n_permutations}.")
    y, p = y[keep], p[keep]
    n_genes, n_cells = p.shape
    # a permutation of a gene's predictions permutes their ranks, and keeps their mean and norm:
    # rank (Spearman) and centre once, then each draw only re-pairs the centred values
    ya, pa = (_row_ranks(y), _row_ranks(p)) if method == "spearman" else (y, p)
    yc = ya - ya.mean(axis=1, keepdims=True)
    pc = pa - pa.mean(axis=1, keepdims=True)
    den = np.sqrt((yc * yc).sum(axis=1) * (pc * pc).sum(axis=1))
    const_pred = den == 0  # observed varies (masked genes are gone): the prediction is constant, r = 0
    den = np.where(const_pred, 1.0, den)
    rng = np.random.default_rng(int(seed))
    null = np.empty(int(n_permutations), dtype=np.float64)
    if n_cells <= MAX_ENUMERATED_CELL_TYPES:
        # every permutation enumerated: r of gene g under permutation k, then draw k per (draw, gene)
        perms = np.array(list(itertools.permutations(range(n_cells))))
        r_all = np.einsum("gt,gkt->gk", yc, pc[:, perms]) / den[:, None]
        r_all[const_pred] = 0.0
        for start in range(0, int(n_permutations), int(chunk)):
            n = min(int(chunk), int(n_permutations) - start)
            k = rng.integers(0, len(perms), size=(n, n_genes))
            null[start : start + n] = np.take_along_axis(r_all, k.T, axis=1).mean(axis=0)
    else:
        for start in range(0, int(n_permutations), int(chunk)):
            n = min(int(chunk), int(n_permutations) - start)
            order = np.argsort(rng.random((n, n_genes, n_cells)), axis=-1)
            pp = np.take_along_axis(np.broadcast_to(pc, (n, n_genes, n_cells)), order, axis=-1)
            r = (pp * yc).sum(axis=-1) / den
            r[:, const_pred] = 0.0
            null[start : start + n] = r.mean(axis=1)
    obs = float(np.nanmean(res["r"]))
    return {
        "observed": obs,
        "null": null,
        "null_mean": float(null.mean()),
        "null_q95": float(np.quantile(null, 0.95)),
        "p": float((1 + np.sum(null >= obs - 1e-12)) / (1 + null.size)),
    }


def mean_of_other_cell_types(observed) -> np.ndarray:
    """The cross-gene baseline: each (gene, cell type) predicted by the gene's mean over the *other* cell types.

    On the real Roadmap RPKM of the 11 cell types this predictor already reaches a cross-gene
    Pearson r of ≈ 0.85 (docs/methods.md): any cross-gene score of a model is shown next to it.
    Across cell types it is exactly anti-correlated with the observed values (r = −1 for every
    gene that varies), so it is no cross-celltype baseline.

    Parameters
    ----------
    observed : array-like, shape (n_genes, n_cell_types)
        At least 2 cell types.

    Returns
    -------
    numpy.ndarray, shape (n_genes, n_cell_types), float64
    """
    y = _as_matrix(observed, "observed")
    if y.shape[1] < 2:
        raise ValueError(f"The mean of the other cell types needs at least 2 cell types; got {y.shape[1]}.")
    return (y.sum(axis=1, keepdims=True) - y) / (y.shape[1] - 1)


PREDICTION_GROUP: tuple[str, ...] = ("model", "marks", "fold")


def _group_keys(predictions: pd.DataFrame, folds: bool = True) -> list[str]:
    """What identifies one model's predictions: (scheme,) model, marks (, fold)."""
    keys = (["scheme"] if "scheme" in predictions.columns else []) + ["model", "marks"]
    return keys + (["fold"] if folds else [])


def _check_predictions(predictions: pd.DataFrame, name: str = "predictions") -> pd.DataFrame:
    need = ["cell_type", *PREDICTION_GROUP, "gene_id", "observed", "predicted"]
    missing = [c for c in need if c not in predictions.columns]
    if missing:
        raise ValueError(f"The {name} table lacks column(s) {missing}; required: {need}.")
    if predictions.empty:
        raise ValueError(f"The {name} table is empty: nothing to score.")
    key = ["cell_type", *_group_keys(predictions), "gene_id"]
    if "split" in predictions.columns:
        test = predictions["split"].astype(str) == "test"
        if not test.any():
            raise ValueError(f"The {name} table has no split == 'test' rows.")
        predictions = predictions[test]
    dup = predictions.duplicated(key, keep=False)
    if dup.any():
        raise ValueError(
            f"The {name} table has {int(dup.sum())} rows with the same {key} (e.g. "
            f"{predictions.loc[dup, key].head(2).to_dict('records')}); one prediction per gene and cell type is needed."
        )
    return predictions


def cross_gene_metrics(predictions: pd.DataFrame, scheme: str = "chrom_folds") -> pd.DataFrame:
    """Cross-gene Spearman ρ and Pearson r per (model, marks, cell type, fold) over its test genes.

    Parameters
    ----------
    predictions : pandas.DataFrame
        Tidy predictions (``results.PREDICTION_COLUMNS``): one row per (cell type, model, marks,
        fold, test gene); only ``split == "test"`` rows are used when a ``split`` column exists.
    scheme : str
        Written in the ``scheme`` column (``results.SCHEMES``) when the table has none.

    Returns
    -------
    pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``), ``split = "test"``, metrics
        :data:`CROSS_GENE_METRICS`.
    """
    pred = _check_predictions(predictions)
    if "scheme" not in pred.columns:
        pred = pred.assign(scheme=scheme)
    rows = []
    for (cell, scheme, model, marks, fold), g in pred.groupby(["cell_type", *_group_keys(pred)], sort=True):
        if len(g) < 2:
            raise ValueError(f"{model} {marks} {cell} fold {fold}: {len(g)} test gene(s); a correlation needs ≥ 2.")
        obs, prd = g["observed"].to_numpy(float), g["predicted"].to_numpy(float)
        values = {"cross_gene_spearman": spearman_rho(obs, prd), "cross_gene_pearson": pearson_r(obs, prd)}
        rows.append(
            tidy_metrics(
                values,
                cell_type=str(cell),
                model=str(model),
                marks=marks,
                scheme=scheme,
                fold=int(fold),
                split="test",
                n_genes=len(g),
            )
        )
    return pd.concat(rows, ignore_index=True)


def wide_by_cell_type(
    predictions: pd.DataFrame, cell_types: Iterable[str] | None = None, by_fold: bool = True
) -> dict[tuple, dict[str, object]]:
    """Predictions arranged per ([scheme,] model, marks, fold) as genes × cell types matrices.

    Genes that lack a prediction for one of ``cell_types`` (e.g. excluded from one cell type's
    dataset) cannot be scored across cell types; they are left out and counted
    (``n_incomplete``), never silently. ``by_fold=False`` pools a model's folds (each gene is a
    test gene of one fold, so its row still comes from one fold's models).

    Returns
    -------
    dict
        ``{([scheme,] model, marks[, fold]): {"gene_id": (n,), "fold": (n,), "observed": (n, T),
        "predicted": (n, T), "cell_types": [T], "n_incomplete": int}}``.
    """
    pred = _check_predictions(predictions)
    cells = sorted(pred["cell_type"].astype(str).unique()) if cell_types is None else [str(c) for c in cell_types]
    out = {}
    for key, g in pred.groupby(_group_keys(pred, by_fold), sort=True):
        g = g[g["cell_type"].astype(str).isin(cells)]
        obs = g.pivot(index="gene_id", columns="cell_type", values="observed").reindex(columns=cells)
        prd = g.pivot(index="gene_id", columns="cell_type", values="predicted").reindex(columns=cells)
        complete = obs.notna().all(axis=1) & prd.notna().all(axis=1)
        fold = g.drop_duplicates("gene_id").set_index("gene_id")["fold"]
        if g.groupby("gene_id")["fold"].nunique().max() > 1:
            raise ValueError(f"{key}: a gene has predictions from two folds; each gene is the test gene of one fold.")
        out[key] = {
            "gene_id": obs.index[complete].to_numpy(),
            "fold": fold.reindex(obs.index[complete]).to_numpy().astype(int),
            "observed": obs[complete].to_numpy(float),
            "predicted": prd[complete].to_numpy(float),
            "cell_types": cells,
            "n_incomplete": int((~complete).sum()),
        }
    return out


def cross_celltype_metrics(
    predictions: pd.DataFrame,
    cell_types: Iterable[str] | None = None,
    *,
    n_permutations: int = 1000,
    seed: int = 0,
    scheme: str = "chrom_folds",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-celltype correlations per gene and their tidy summary per (model, marks, fold).

    Each gene is a test gene of exactly one fold; its predictions in every cell type come from
    that fold's models (the rows of ``predictions`` with the gene's fold). Genes constant across
    the cell types are masked and counted (``n_genes_masked``); genes lacking a cell type are left
    out and counted (``n_genes_incomplete``). Beside each mean the per-gene permutation null
    (:func:`cross_celltype_permutation_null`, seeded by ``seed`` + fold).

    Parameters
    ----------
    predictions : pandas.DataFrame
        Tidy test predictions of one or more models in several cell types.
    cell_types : iterable of str, optional
        The run's cell types (default: those in ``predictions``); at least 2.
    n_permutations : int
        Draws of the permutation null.
    seed : int
        Seed of the null.
    scheme : str
        Written in the ``scheme`` column when the predictions have none.

    Returns
    -------
    per_gene : pandas.DataFrame
        ``scheme, model, marks, fold, gene_id, n_cell_types, observed_sd, masked, constant_prediction,
        cross_celltype_spearman, cross_celltype_pearson`` (NaN where masked).
    metrics : pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``), ``cell_type = "all"``, ``split = "test"``,
        ``n_genes`` = the scored (unmasked) genes, metrics :data:`CROSS_CELLTYPE_METRICS`.
    """
    pred = _check_predictions(predictions)
    if "scheme" not in pred.columns:
        pred = pred.assign(scheme=scheme)
    groups = wide_by_cell_type(pred, cell_types)
    per_gene, rows = [], []
    for (scheme, model, marks, fold), w in groups.items():
        y, p, n_t = w["observed"], w["predicted"], len(w["cell_types"])
        if n_t < 2:
            raise ValueError(f"Cross-celltype metrics need ≥ 2 cell types; {model} {marks} has {w['cell_types']}.")
        if y.shape[0] == 0:
            raise ValueError(
                f"{model} {marks} fold {fold}: no gene has a prediction in every one of {w['cell_types']} "
                f"({w['n_incomplete']} incomplete): nothing to score across cell types."
            )
        sp = cross_celltype_correlations(y, p, "spearman")
        pe = cross_celltype_correlations(y, p, "pearson")
        per_gene.append(
            pd.DataFrame(
                {
                    "scheme": scheme,
                    "model": model,
                    "marks": marks,
                    "fold": int(fold),
                    "gene_id": w["gene_id"],
                    "n_cell_types": n_t,
                    "observed_sd": y.std(axis=1),
                    "masked": sp["masked"],
                    "constant_prediction": sp["constant_prediction"],
                    "cross_celltype_spearman": sp["r"],
                    "cross_celltype_pearson": pe["r"],
                }
            )
        )
        values = {
            "n_genes_masked": int(sp["masked"].sum()),
            "n_genes_incomplete": w["n_incomplete"],
            "n_cell_types": n_t,
            "n_genes_constant_prediction": int(sp["constant_prediction"].sum()),
        }
        n_scored = int((~sp["masked"]).sum())
        if n_scored:
            for method in ("spearman", "pearson"):
                null = cross_celltype_permutation_null(
                    y, p, method=method, n_permutations=n_permutations, seed=int(seed) + int(fold)
                )
                values[f"cross_celltype_{method}"] = null["observed"]
                values[f"cross_celltype_{method}_null_mean"] = null["null_mean"]
                values[f"cross_celltype_{method}_null_q95"] = null["null_q95"]
                values[f"cross_celltype_{method}_null_p"] = null["p"]
            values["cross_celltype_centred_pearson"] = centred_pearson(y, p)
        rows.append(
            tidy_metrics(
                values,
                cell_type=ALL_CELL_TYPES,
                model=str(model),
                marks=marks,
                scheme=scheme,
                fold=int(fold),
                split="test",
                n_genes=n_scored,
            )
        )
    return pd.concat(per_gene, ignore_index=True), pd.concat(rows, ignore_index=True)


def mean_other_predictions(observed: pd.DataFrame) -> pd.DataFrame:
    """Predictions table of the mean-of-other-cell-types baseline from a table of observed values.

    Parameters
    ----------
    observed : pandas.DataFrame
        ``cell_type, fold, gene_id, observed``: one row per (cell type, test gene). Genes that
        lack a cell type are left out of the baseline (it needs every cell type of the gene).

    Returns
    -------
    pandas.DataFrame
        ``results.PREDICTION_COLUMNS`` with ``model = "mean_other_cell_types"``, ``marks = "none"``.
    """
    need = ["cell_type", "fold", "gene_id", "observed"]
    missing = [c for c in need if c not in observed.columns]
    if missing:
        raise ValueError(f"The observed table lacks column(s) {missing}; required: {need}.")
    obs = observed.drop_duplicates(["cell_type", "gene_id"])
    wide = obs.pivot(index="gene_id", columns="cell_type", values="observed").dropna()
    if wide.shape[1] < 2 or wide.empty:
        raise ValueError(
            f"The mean of the other cell types needs ≥ 2 cell types with the same genes; got {wide.shape[1]} cell "
            f"type(s) and {len(wide)} complete gene(s)."
        )
    base = pd.DataFrame(mean_of_other_cell_types(wide.to_numpy()), index=wide.index, columns=wide.columns)
    fold = obs.drop_duplicates("gene_id").set_index("gene_id")["fold"]
    long = base.stack().rename("predicted").reset_index()
    long = long.merge(obs[["cell_type", "gene_id", "observed"]], on=["cell_type", "gene_id"])
    long["fold"] = fold.reindex(long["gene_id"]).to_numpy().astype(int)
    long["model"] = MEAN_OTHER_MODEL
    long["marks"] = NO_MARKS
    return long[["cell_type", "model", "marks", "fold", "gene_id", "observed", "predicted"]]
