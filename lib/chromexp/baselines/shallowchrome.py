"""ShallowChrome (Frasca et al. 2022): peak-max features + unpenalised logistic regression.

What this module does (docs/methods.md, "ShallowChrome", issue 7):

* **Configurations.** A peak format per mark group is a hyper-parameter: the repressive marks
  H3K9me3, H3K27me3, H3K36me3 share one format, the "active" marks another. The six
  configurations are named ``<repressive>_<active>`` (``broad``, ``narrow``, ``gapped`` = one
  format for all). The reference (DEIB-GECO/ShallowChrome, ``data extraction.ipynb``) used only
  the five core marks; its '- broad narrow' folder is broadPeak for H3K27me3/H3K36me3/H3K9me3 and
  narrowPeak for H3K4me1/H3K4me3. It had no acetylation marks, so we had to choose: H3K27ac and
  H3K9ac join H3K4me1/H3K4me3 (punctate promoter/enhancer marks, called as narrow peaks by Roadmap
  just like H3K4me3). ``shallowchrome.marks`` can restrict the model to the reference's five.
* **Model.** Unpenalised binary logistic regression (intercept + one weight per mark), fitted by
  Newton-Raphson (:func:`fit_logistic`, exact maximum likelihood; equal to statsmodels' ``Logit``
  to 1e-8, see the tests, and ~30× faster, which the configuration grid needs). Coefficient tables
  use statsmodels' Wald z-tests (:func:`wald_table`). The reference fitted sklearn's
  ``LogisticRegression(multi_class='multinomial')`` on two classes, whose symmetric softmax
  parametrisation returns *half* the logistic coefficients, and then divided them by the standard
  errors of the full coefficients: its z-values are halved. We report the correct z.
* **Selection.** For each split, every configuration is fitted on the training genes and the one
  with the highest validation AUROC is evaluated on the test genes (as the reference, per split).
* **Protocols.** ``random_thirds``: the paper's repeated random splits into thirds
  (6601 / 6601 / 6600 of 19,802 genes; :func:`random_thirds`); ``chrom_folds``: our four
  chromosome folds with their validation genes.
* **Labels.** ``median`` (RPKM >= the cell type's median, the study's label) or ``valley``
  (:func:`valley_threshold`, the paper's supplementary alternative).
* **Regulative patterns.** Gene-wise ``psi = w * x`` plus the bias; ``logit = b + sum(psi)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import special, stats

from ..constants import MARKS
from ..metrics import classification_metrics, tidy_metrics
from ..results import METRIC_COLUMNS, marks_key
from ..utils import get_logger

log = get_logger("chromexp.baselines.shallowchrome")

#: Marks that share the "repressive" format (the reference's grouping).
REPRESSIVE_MARKS: tuple[str, ...] = ("H3K9me3", "H3K27me3", "H3K36me3")
#: Marks that share the "active" format (H3K4me1/H3K4me3 in the reference; acetylation added here).
ACTIVE_MARKS: tuple[str, ...] = ("H3K4me1", "H3K4me3", "H3K27ac", "H3K9ac")
#: The reference's five core marks.
CORE_MARKS: tuple[str, ...] = ("H3K4me1", "H3K4me3", "H3K9me3", "H3K27me3", "H3K36me3")

#: Configuration -> (format of the repressive marks, format of the active marks).
CONFIGURATIONS: dict[str, tuple[str, str]] = {
    "broad": ("broadPeak", "broadPeak"),
    "narrow": ("narrowPeak", "narrowPeak"),
    "gapped": ("gappedPeak", "gappedPeak"),
    "broad_narrow": ("broadPeak", "narrowPeak"),
    "gapped_broad": ("gappedPeak", "broadPeak"),
    "gapped_narrow": ("gappedPeak", "narrowPeak"),
}
LABEL_RULES: tuple[str, ...] = ("median", "valley")
BIAS = "(bias)"


# --------------------------------------------------------------------------------------------
# Configurations and design matrices
# --------------------------------------------------------------------------------------------
def configuration_formats(configuration: str, marks: Sequence[str] = MARKS) -> dict[str, str]:
    """Peak format of each mark under a configuration (``{"H3K4me3": "narrowPeak", ...}``)."""
    if configuration not in CONFIGURATIONS:
        raise ValueError(f"Unknown ShallowChrome configuration {configuration!r}; known: {', '.join(CONFIGURATIONS)}.")
    repressive, active = CONFIGURATIONS[configuration]
    out = {}
    for mark in marks:
        if mark in REPRESSIVE_MARKS:
            out[mark] = repressive
        elif mark in ACTIVE_MARKS:
            out[mark] = active
        else:
            raise ValueError(f"Unknown histone mark {mark!r}; known: {', '.join(MARKS)}.")
    return out


def design_matrix(features: Mapping[str, np.ndarray], marks: Sequence[str], configuration: str) -> np.ndarray:
    """Feature matrix of a configuration from per-format features.

    Parameters
    ----------
    features : mapping of str to numpy.ndarray
        ``{fmt: array (n_genes, n_marks)}`` with columns in the order of ``marks``
        (as returned by :func:`chromexp.baselines.peaks.peak_features`).
    marks : sequence of str
        The marks of the feature columns.
    configuration : str
        One of :data:`CONFIGURATIONS`.

    Returns
    -------
    numpy.ndarray, shape (n_genes, n_marks), float64
    """
    fmts = configuration_formats(configuration, marks)
    cols = []
    for j, mark in enumerate(marks):
        fmt = fmts[mark]
        if fmt not in features:
            raise ValueError(f"Configuration {configuration!r} needs {fmt} features, which were not computed.")
        arr = np.asarray(features[fmt], dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != len(marks):
            raise ValueError(f"{fmt} features have shape {arr.shape}; expected (n_genes, {len(marks)}).")
        cols.append(arr[:, j])
    return np.column_stack(cols)


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------
def valley_threshold(rpkm: np.ndarray, bins: int = 100) -> float:
    """The paper's 'valley' RPKM threshold between non-expressed and expressed genes.

    Histogram (``bins`` equal-width bins) of ``ln(1 + RPKM)``; among the bins whose left edge
    lies left of the median, the first bin with the lowest count; the threshold is
    ``exp(left edge) - 1`` (reference ``utils.find_valley``).

    Parameters
    ----------
    rpkm : array-like, shape (n_genes,)
        Non-negative expression values.
    bins : int
        Number of histogram bins (100 in the paper).

    Returns
    -------
    float
        The RPKM threshold; genes with ``RPKM >= threshold`` are active.
    """
    rpkm = np.asarray(rpkm, dtype=np.float64)
    if rpkm.ndim != 1 or rpkm.size < 2:
        raise ValueError(f"'rpkm' must be a 1-D array of at least two genes; got shape {rpkm.shape}.")
    if not np.isfinite(rpkm).all() or (rpkm < 0).any():
        raise ValueError("'rpkm' must be finite and non-negative.")
    t = np.log1p(rpkm)
    freqs, edges = np.histogram(t, bins=int(bins))
    median = np.percentile(t, 50)
    left = np.flatnonzero(edges[:-1] < median)
    if left.size == 0:
        raise ValueError("No histogram bin lies left of the median (all genes have the same expression?).")
    first_min = left[np.argmin(freqs[left])]  # argmin returns the first of tied minima
    return float(np.expm1(edges[first_min]))


def make_labels(rpkm: np.ndarray, rule: str = "median", bins: int = 100) -> tuple[np.ndarray, float]:
    """Binary activity labels (1 = ``RPKM >= threshold``) and the threshold of a label rule."""
    rpkm = np.asarray(rpkm, dtype=np.float64)
    if rule == "median":
        threshold = float(np.median(rpkm))
    elif rule == "valley":
        threshold = valley_threshold(rpkm, bins=bins)
    else:
        raise ValueError(f"Unknown label rule {rule!r}; known: {LABEL_RULES}.")
    labels = (rpkm >= threshold).astype(np.int64)
    if labels.min() == labels.max():
        raise ValueError(
            f"The {rule} threshold (RPKM {threshold:.4g}) puts every gene in one class; cannot fit a classifier."
        )
    return labels, threshold


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------
def random_thirds(n_genes: int, repeats: int = 10, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """The paper's random train/validation/test thirds, ``repeats`` times, seeded.

    Sizes follow the reference (``utils.random_splits``): ``step = n // 3``; the first ``step + 1``
    genes of a permutation train, the next ``step + 1`` validate, the rest test (6601 / 6601 /
    6600 for 19,802 genes).

    Returns
    -------
    list of dict
        ``repeats`` dicts with int64 index arrays ``train``, ``validation``, ``test``.
    """
    if n_genes < 6:
        raise ValueError(f"Need at least 6 genes for random thirds; got {n_genes}.")
    if repeats < 1:
        raise ValueError(f"'repeats' must be >= 1, got {repeats}.")
    step = n_genes // 3
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        perm = rng.permutation(n_genes)
        out.append(
            {"train": perm[: step + 1], "validation": perm[step + 1 : 2 * (step + 1)], "test": perm[2 * (step + 1) :]}
        )
    return out


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------
@dataclass
class LogitFit:
    """An unpenalised logistic regression: ``logit P(active) = bias + x @ coef``."""

    names: tuple[str, ...]
    bias: float
    coef: np.ndarray  # (n_features,), NaN for features dropped as constant
    converged: bool
    n_iter: int
    dropped: tuple[str, ...] = field(default=())

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        """Log-odds, shape (n_genes,); dropped (constant) features contribute nothing."""
        w = np.nan_to_num(self.coef, nan=0.0)
        return self.bias + np.asarray(x, dtype=np.float64) @ w

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """P(active), shape (n_genes,)."""
        return special.expit(self.decision_function(x))


def _check_xy(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise ValueError(f"Need x of shape (n, p) and y of shape (n,); got {x.shape} and {y.shape}.")
    if not np.isfinite(x).all():
        raise ValueError("The feature matrix has non-finite values.")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("Labels must be 0/1.")
    if y.min() == y.max():
        raise ValueError("Only one class among the training genes; cannot fit a logistic regression.")
    return x, y


def fit_logistic(x, y, names: Sequence[str] | None = None, max_iter: int = 100, tol: float = 1e-10) -> LogitFit:
    """Unpenalised maximum-likelihood logistic regression by Newton-Raphson.

    Columns that are constant over the training genes (e.g. a mark without any peak) cannot be
    estimated next to the intercept; they are dropped from the fit, reported in ``dropped`` and
    given a NaN coefficient (with a logged warning), never silently set to 0.

    Parameters
    ----------
    x : array-like, shape (n_genes, n_features)
    y : array-like of {0, 1}, shape (n_genes,)
    names : sequence of str, optional
        Feature names (default ``x0, x1, ...``).
    max_iter : int
        Newton iterations; ``converged`` is False when the log-likelihood has not settled (e.g.
        perfectly separable data, where the maximum-likelihood estimate does not exist).

    Returns
    -------
    LogitFit
    """
    x, y = _check_xy(x, y)
    names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(x.shape[1]))
    if len(names) != x.shape[1]:
        raise ValueError(f"{len(names)} names for {x.shape[1]} features.")
    keep = np.ptp(x, axis=0) > 0
    dropped = tuple(n for n, k in zip(names, keep) if not k)
    if dropped:
        log.warning("features constant over the training genes, dropped from the fit: %s", ", ".join(dropped))
    design = np.column_stack([np.ones(len(y)), x[:, keep]])
    beta = np.zeros(design.shape[1])
    # start at the intercept-only solution: Newton then converges in a handful of steps
    beta[0] = special.logit(np.clip(y.mean(), 1e-12, 1 - 1e-12))
    converged = False
    prev = -np.inf
    n_iter = 0
    for it in range(1, max_iter + 1):
        n_iter = it
        eta = design @ beta
        p = special.expit(eta)
        w = p * (1.0 - p)
        grad = design.T @ (y - p)
        hess = (design * w[:, None]).T @ design
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(hess, grad, rcond=None)[0]
        beta = beta + step
        eta = design @ beta
        loglik = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        if np.max(np.abs(step)) < 1e-8 or abs(loglik - prev) < tol * (1.0 + abs(loglik)):
            converged = True
            break
        prev = loglik
    if not converged:
        log.warning("logistic regression did not converge in %d Newton iterations (separable data?)", max_iter)
    coef = np.full(x.shape[1], np.nan)
    coef[keep] = beta[1:]
    return LogitFit(names=names, bias=float(beta[0]), coef=coef, converged=converged, n_iter=n_iter, dropped=dropped)


def wald_table(x, y, names: Sequence[str], alpha: float = 1e-4, max_iter: int = 100) -> pd.DataFrame:
    """Maximum-likelihood coefficients with statsmodels' Wald z-tests (two-sided).

    The reference (ShallowChrome ``utils.z_test``) divided the *halved* coefficients of a
    two-class multinomial sklearn model by the standard errors of the full logistic
    coefficients, so its z-values are half the true ones; these are statsmodels' ``Logit``
    z-values, unchanged.

    Parameters
    ----------
    x : array-like, shape (n_genes, n_features)
        Training features.
    y : array-like of {0, 1}, shape (n_genes,)
    names : sequence of str
        Feature names.
    alpha : float
        ``p < alpha`` marks a significant activator (coef > 0) or repressor (coef < 0).

    Returns
    -------
    pandas.DataFrame
        One row per term (``(bias)`` first): ``term, coef, se, z, p_value, significant, role``.
        Dropped constant features have NaN statistics and role ``not estimable``.
    """
    import warnings

    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    x, y = _check_xy(x, y)
    names = tuple(names)
    keep = np.ptp(x, axis=0) > 0
    design = np.column_stack([np.ones(len(y)), x[:, keep]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            res = sm.Logit(y, design).fit(method="newton", disp=0, maxiter=max_iter)
        except PerfectSeparationWarning as err:
            raise ValueError(f"The training genes are perfectly separable; Wald tests do not exist ({err}).") from None
    terms = (BIAS, *names)
    full_keep = np.concatenate([[True], keep])
    table = pd.DataFrame({"term": terms})
    for col, values in (("coef", res.params), ("se", res.bse), ("z", res.tvalues), ("p_value", res.pvalues)):
        arr = np.full(len(terms), np.nan)
        arr[full_keep] = np.asarray(values)
        table[col] = arr
    table["significant"] = table["p_value"] < alpha
    table["role"] = np.where(
        table["p_value"].isna(),
        "not estimable",
        np.where(table["significant"], np.where(table["coef"] > 0, "activator", "repressor"), "not significant"),
    )
    table.attrs["converged"] = bool(res.mle_retvals.get("converged", True))
    return table


def regulative_patterns(fit: LogitFit, x: np.ndarray) -> pd.DataFrame:
    """Gene-wise regulative patterns: the bias and ``psi_m = w_m * x_m`` for each mark.

    ``bias + sum(psi)`` is the gene's predicted log-odds of being active.

    Parameters
    ----------
    fit : LogitFit
    x : numpy.ndarray, shape (n_genes, n_features)

    Returns
    -------
    pandas.DataFrame, shape (n_genes, 1 + n_features)
        Columns ``(bias)`` and one per feature name.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(fit.names):
        raise ValueError(f"x must have shape (n_genes, {len(fit.names)}); got {x.shape}.")
    psi = x * np.nan_to_num(fit.coef, nan=0.0)
    out = pd.DataFrame(psi, columns=list(fit.names))
    out.insert(0, BIAS, fit.bias)
    return out


def fast_auroc(labels: np.ndarray, score: np.ndarray) -> float:
    """AUROC by the Mann-Whitney rank formula (ties count one half), NaN with one class.

    Equal to ``sklearn.metrics.roc_auc_score`` (tested) and ~20x faster; used only inside the
    configuration grid, where thousands of AUROCs are needed. Reported metrics of the selected
    models come from :func:`chromexp.metrics.classification_metrics`.
    """
    y = np.asarray(labels).astype(bool)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# --------------------------------------------------------------------------------------------
# Protocols
# --------------------------------------------------------------------------------------------
@dataclass
class ShallowChromeResult:
    """Everything one cell type's evaluation produced (tidy tables)."""

    #: AUROC of every configuration on every split: model, label_rule, scheme, fold, config, split, auroc
    grid: pd.DataFrame
    #: selected configuration per split: results.METRIC_COLUMNS + config (validation and test rows)
    metrics: pd.DataFrame
    #: cell_type, model, scheme, fold, config, validation_auroc
    selection: pd.DataFrame
    #: statsmodels Wald table of each selected model (training fit)
    coefficients: pd.DataFrame
    #: chrom_folds test predictions of the selected models (every gene once per model)
    predictions: pd.DataFrame
    #: label rule -> RPKM threshold
    thresholds: dict[str, float]
    #: (model, scheme, fold) -> (selected configuration, fit)
    fits: dict[tuple[str, str, int], tuple[str, LogitFit]] = field(default_factory=dict)


def model_name(rule: str) -> str:
    """Result-table model name of a label rule (``shallowchrome`` / ``shallowchrome_valley``)."""
    return "shallowchrome" if rule == "median" else f"shallowchrome_{rule}"


def evaluate(
    features: Mapping[str, np.ndarray],
    genes: pd.DataFrame,
    marks: Sequence[str],
    *,
    cell_type: str,
    splits: Mapping[str, Sequence[tuple[int, Mapping[str, np.ndarray]]]],
    configurations: Sequence[str] = tuple(CONFIGURATIONS),
    rules: Sequence[str] = ("median",),
    valley_bins: int = 100,
    alpha: float = 1e-4,
    max_iter: int = 100,
) -> ShallowChromeResult:
    """Fit every configuration on every split, select on validation AUROC, evaluate on test.

    Parameters
    ----------
    features : mapping of str to numpy.ndarray
        ``{fmt: (n_genes, n_marks)}`` peak-max features (:func:`chromexp.baselines.peaks.peak_features`).
    genes : pandas.DataFrame
        ``gene_id, rpkm`` (optionally ``label``, used for the median rule, and ``target`` =
        log2(RPKM + 1), kept in the predictions), in the row order of the features.
    marks : sequence of str
        Marks of the feature columns.
    cell_type : str
    splits : mapping
        ``{scheme: [(fold, {"train", "validation", "test"} index arrays), ...]}`` with scheme
        ``chrom_folds`` and/or ``random_thirds`` (fold = repeat number for the latter).
    configurations : sequence of str
        Candidates (default: the six of docs/methods.md, "ShallowChrome").
    rules : sequence of str
        Label rules (``median``, ``valley``), each a separate model.

    Returns
    -------
    ShallowChromeResult
    """
    marks = tuple(marks)
    n = len(genes)
    for fmt, arr in features.items():
        if np.asarray(arr).shape != (n, len(marks)):
            raise ValueError(f"{fmt} features have shape {np.asarray(arr).shape}; expected {(n, len(marks))}.")
    rpkm = genes["rpkm"].to_numpy(dtype=np.float64)
    gene_id = genes["gene_id"].to_numpy()
    target = genes["target"].to_numpy(dtype=np.float64) if "target" in genes else np.log2(rpkm + 1.0)
    designs = {c: design_matrix(features, marks, c) for c in configurations}
    key = marks_key(marks)
    grid_rows, metric_tables, selection_rows, coef_tables, pred_tables = [], [], [], [], []
    fitted: dict[tuple[str, str, int], tuple[str, LogitFit]] = {}
    thresholds = {}
    for rule in rules:
        y, thresholds[rule] = make_labels(rpkm, rule, bins=valley_bins)
        if rule == "median" and "label" in genes:
            # the dataset's own label (the one the neural models use) wins over our recomputation
            given = genes["label"].to_numpy(dtype=np.int64)
            if (given != y).any():
                log.warning(
                    "%s: %d genes' dataset label differs from RPKM >= median; using the dataset's",
                    cell_type,
                    int((given != y).sum()),
                )
            y = given
        model = model_name(rule)
        for scheme, scheme_splits in splits.items():
            for fold, split in scheme_splits:
                tr, va, te = (np.asarray(split[k], dtype=np.int64) for k in ("train", "validation", "test"))
                fits, val_auc = {}, {}
                for config in configurations:
                    x = designs[config]
                    fit = fit_logistic(x[tr], y[tr], names=marks, max_iter=max_iter)
                    fits[config] = fit
                    for split_name, idx in (("validation", va), ("test", te)):
                        auc = fast_auroc(y[idx], fit.decision_function(x[idx]))
                        grid_rows.append(
                            dict(
                                cell_type=cell_type,
                                model=model,
                                label_rule=rule,
                                scheme=scheme,
                                fold=int(fold),
                                config=config,
                                split=split_name,
                                n_genes=int(idx.size),
                                auroc=auc,
                                converged=fit.converged,
                            )
                        )
                        if split_name == "validation":
                            val_auc[config] = auc
                # first configuration of the highest validation AUROC (NaN never wins)
                best = max(configurations, key=lambda c: -np.inf if np.isnan(val_auc[c]) else val_auc[c])
                fit = fits[best]
                x = designs[best]
                fitted[(model, scheme, int(fold))] = (best, fit)
                selection_rows.append(
                    dict(
                        cell_type=cell_type,
                        model=model,
                        scheme=scheme,
                        fold=int(fold),
                        config=best,
                        validation_auroc=val_auc[best],
                    )
                )
                for split_name, idx in (("validation", va), ("test", te)):
                    prob = fit.predict_proba(x[idx])
                    t = tidy_metrics(
                        classification_metrics(y[idx], prob),
                        cell_type=cell_type,
                        model=model,
                        marks=key,
                        scheme=scheme,
                        fold=int(fold),
                        split=split_name,
                        n_genes=int(idx.size),
                    )
                    t["config"] = best
                    metric_tables.append(t)
                try:
                    coef = wald_table(x[tr], y[tr], names=marks, alpha=alpha, max_iter=max_iter)
                except ValueError as err:
                    # perfectly separable training genes: no maximum-likelihood estimate, no test
                    log.warning("%s %s %s fold %s: %s", cell_type, model, scheme, fold, err)
                    coef = pd.DataFrame({"term": (BIAS, *marks)})
                    for col in ("coef", "se", "z", "p_value"):
                        coef[col] = np.nan
                    coef["significant"] = False
                    coef["role"] = "not estimable (separable)"
                fmts = configuration_formats(best, marks)
                coef.insert(0, "format", [""] + [fmts[m] for m in marks])
                for col, val in (
                    ("n_train", int(tr.size)),
                    ("config", best),
                    ("fold", int(fold)),
                    ("scheme", scheme),
                    ("model", model),
                    ("cell_type", cell_type),
                ):
                    coef.insert(0, col, val)
                coef_tables.append(coef)
                if scheme == "chrom_folds":
                    prob = fit.predict_proba(x[te])
                    pred_tables.append(
                        pd.DataFrame(
                            {
                                "cell_type": cell_type,
                                "model": model,
                                "marks": key,
                                "fold": int(fold),
                                "gene_id": gene_id[te],
                                "observed": y[te].astype(np.float64),
                                "predicted": prob,
                                "label": y[te],
                                "probability": prob,
                                "logit": fit.decision_function(x[te]),
                                "target": target[te],
                                "config": best,
                            }
                        )
                    )
    metrics = (
        pd.concat(metric_tables, ignore_index=True)
        if metric_tables
        else pd.DataFrame(columns=[*METRIC_COLUMNS, "config"])
    )
    return ShallowChromeResult(
        grid=pd.DataFrame(grid_rows),
        metrics=metrics,
        selection=pd.DataFrame(selection_rows),
        coefficients=pd.concat(coef_tables, ignore_index=True) if coef_tables else pd.DataFrame(),
        predictions=pd.concat(pred_tables, ignore_index=True) if pred_tables else pd.DataFrame(),
        thresholds=thresholds,
        fits=fitted,
    )


def chrom_fold_splits(dataset, folds: Sequence[int] = (1, 2, 3, 4)) -> list[tuple[int, dict[str, np.ndarray]]]:
    """``[(fold, dataset.split(fold)), ...]``: the chromosome-fold protocol of a ``CellDataset``."""
    return [(int(k), dataset.split(int(k))) for k in folds]


def random_third_splits(n_genes: int, repeats: int = 10, seed: int = 0) -> list[tuple[int, dict[str, np.ndarray]]]:
    """``[(repeat, split), ...]`` (repeats numbered from 1) of :func:`random_thirds`."""
    return [(i + 1, s) for i, s in enumerate(random_thirds(n_genes, repeats, seed))]


def summarise(metrics: pd.DataFrame, metric: str = "auroc", split: str = "test") -> pd.DataFrame:
    """Mean ± sd of a metric over folds/repeats per (cell type, model, scheme)."""
    sub = metrics[(metrics["metric"] == metric) & (metrics["split"] == split)]
    out = sub.groupby(["cell_type", "model", "scheme"])["value"].agg(["mean", "std", "count"]).reset_index()
    return out.rename(columns={"mean": f"{metric}_mean", "std": f"{metric}_sd", "count": "n_splits"})


def wald_z_reference_halved(z: np.ndarray) -> np.ndarray:
    """What the reference's ``z_test`` reports for true Wald z-values ``z`` (documentation aid).

    A two-class softmax model with symmetric weights has ``P(1) = sigmoid(2 * w @ x)``, so
    sklearn's ``coef_`` is half the logistic coefficient while the reference's standard errors are
    those of the full coefficient: ``z_ref = z / 2``. Used in the notebook to show the size of the
    bug; never used for inference.
    """
    return np.asarray(z, dtype=np.float64) / 2.0


__all__ = [
    "ACTIVE_MARKS",
    "CONFIGURATIONS",
    "CORE_MARKS",
    "REPRESSIVE_MARKS",
    "LogitFit",
    "ShallowChromeResult",
    "chrom_fold_splits",
    "configuration_formats",
    "design_matrix",
    "evaluate",
    "fast_auroc",
    "gene_patterns",
    "fit_logistic",
    "make_labels",
    "model_name",
    "random_third_splits",
    "random_thirds",
    "regulative_patterns",
    "summarise",
    "valley_threshold",
    "wald_table",
]


# --------------------------------------------------------------------------------------------
# Whole cell type (notebook 20) and gene-wise patterns
# --------------------------------------------------------------------------------------------
def gene_patterns(
    result: ShallowChromeResult,
    features: Mapping[str, np.ndarray],
    genes: pd.DataFrame,
    marks: Sequence[str],
    gene_names: Sequence[str],
    model: str = "shallowchrome",
    cell_type: str | None = None,
) -> pd.DataFrame:
    """Regulative patterns of chosen genes, each from the chromosome-fold model that did not see it.

    For a gene on fold k's chromosomes, the model of fold k (trained on the other folds, with
    the configuration selected for fold k) gives ``psi = w * x`` and the bias; a mark's role
    (activator / repressor / not significant, Wald ``p < alpha``) comes from that model's
    coefficient table, as in the reference's PAX5 figure.

    Returns
    -------
    pandas.DataFrame
        Tidy: ``cell_type, gene_id, gene_name, fold, config, label, probability, term, value,
        coef, z, p_value, role`` — one row per term (``(bias)`` first), value = psi (or bias).
    """
    coef = result.coefficients
    rows = []
    name_col = genes["gene_name"].astype(str).to_numpy()
    for name in gene_names:
        hits = np.flatnonzero(name_col == name)
        if hits.size == 0:
            raise ValueError(f"Gene {name!r} is not in the gene table of {cell_type}.")
        i = int(hits[0])
        fold = int(genes["fold"].iloc[i])
        key = (model, "chrom_folds", fold)
        if key not in result.fits:
            raise ValueError(f"No {model} chrom_folds model for fold {fold} (the fold of {name}).")
        config, fit = result.fits[key]
        x = design_matrix(features, marks, config)[i : i + 1]
        pattern = regulative_patterns(fit, x).iloc[0]
        table = coef[(coef["model"] == model) & (coef["scheme"] == "chrom_folds") & (coef["fold"] == fold)].set_index(
            "term"
        )
        label = make_labels(genes["rpkm"].to_numpy(), "median" if model == "shallowchrome" else model.split("_", 1)[1])[
            0
        ][i]
        for term, value in pattern.items():
            rows.append(
                dict(
                    cell_type=cell_type,
                    gene_id=genes["gene_id"].iloc[i],
                    gene_name=name,
                    fold=fold,
                    config=config,
                    label=int(label),
                    probability=float(fit.predict_proba(x)[0]),
                    term=term,
                    value=float(value),
                    coef=float(table.loc[term, "coef"]),
                    z=float(table.loc[term, "z"]),
                    p_value=float(table.loc[term, "p_value"]),
                    role=str(table.loc[term, "role"]),
                )
            )
    return pd.DataFrame(rows)
