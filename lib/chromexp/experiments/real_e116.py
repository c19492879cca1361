"""Notebook 15's recipe: the real E116 benchmark at 10 kb, and the simulator checked against it.

docs/methods.md, "Real E116 benchmark at 10 kb". The inputs are a pre-binned count table (by
default the vendored **real** Roadmap E116 counts of 5 marks in 10-kb bins over chr1–22,
``chromexp.data.binned.read_e116_10kb``) and the vendored real RPKM table. Per gene the TSS bin ± k
bins (strand-oriented, ``ln(count + 1)``), the project's targets (log2(RPKM + 1); label RPKM >=
the median of the benchmark's genes), its 4 chromosome folds and validation chromosomes
(``chromexp.data.dataset.validation_chromosomes``), and per mark set (each single mark, all marks):

* ``binned_ridge`` / ``binned_logistic``: ridge regression / logistic regression on the TSS bin
  ± ``baseline_k`` bins (default ± 1), the bar every other model is reported beside;
* ``binned_expecto``: the ExPecto-style linear model (``chromexp.baselines.expecto``) over the
  TSS bin ± k bins, its spatial bases taken at each bin centre's distance from the TSS;
* ``binned_cnn``: a small CNN (``chromexp.models.binned_cnn``) over the TSS bin ± k bins, trained
  with the project's engine (``chromexp.training.train``; the models of one run stacked with
  ``chromexp.training.stacked.fit_many``).

Every model is tested on its held-out fold (Pearson r, Spearman ρ, R², MSE; AUROC of the
prediction against the label; the logistic model AUROC, AUPR, F1). :func:`fold_ranking` and
:func:`ranking_stability` answer the paper's Fig. 1A question on this data: which single mark
predicts best, per fold, and how stable that ranking is (Kendall's W over folds).

The simulator check (:func:`aggregate_reads`, :func:`signal_relations`, :func:`compare_sources`)
counts a dataset's reads of the same cell type (the semi-synthetic E116 reads of notebook 00)
into the same bins — only the bins wholly inside the simulated regions, i.e. about TSS ± 1 bin
(elsewhere a simulated count is unknown, not zero) — and compares per mark, on the same genes
and folds, the baseline's performance and the signal–expression relation.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..constants import CHROM_FOLD, FOLD_CHROMS
from ..data import binned
from ..data.dataset import validation_chromosomes
from ..metrics import classification_metrics, regression_metrics
from ..results import marks_key
from ..utils import get_logger
from .evaluation import metrics_table, predictions_table

log = get_logger(__name__)

#: Model names of the result tables (docs/data-formats.md, "Result tables").
MODELS: dict[str, str] = {
    "binned_ridge": "ridge regression on ln(count + 1) of the TSS bin ± baseline_k bins (the bar)",
    "binned_logistic": "logistic regression on the same features, active (RPKM >= median) vs inactive",
    "binned_expecto": "ExPecto-style spatial bases × marks over the TSS bin ± k bins, then ridge",
    "binned_cnn": "small CNN over the TSS bin ± k bins (chromexp.models.binned_cnn)",
}
#: Gene exclusions of the benchmark beyond ``binned.GENE_REASONS``.
BENCHMARK_REASONS: dict[str, str] = {
    "no_expression": "no RPKM for the cell type in the expression table",
    "subsampled": "left out by real_e116.n_genes (a seeded random subset, for quick runs)",
}
#: Metrics the relation table holds per mark (docs/data-formats.md, "Notebook 15 outputs").
RELATIONS: dict[str, str] = {
    "spearman_tss_bin": "Spearman rho of ln(count + 1) in the TSS bin with log2(RPKM + 1)",
    "active_minus_inactive": "mean ln(count + 1) in the TSS bin, active minus inactive genes",
    "median_count_active": "median count in the TSS bin, active genes",
    "median_count_inactive": "median count in the TSS bin, inactive genes",
}


# ----------------------------------------------------------------------------------------------
# the benchmark: genes, targets, folds, windows
# ----------------------------------------------------------------------------------------------
@dataclass
class Benchmark:
    """Genes with a TSS window, their targets and chromosome folds (a dataset-like object).

    Attributes
    ----------
    cell_type, provenance : str
        ``provenance`` from the files read (``chromexp.provenance``), never a parameter.
    genes : pandas.DataFrame, one row per gene (same order as ``windows.genes``)
        ``gene_id, gene_name, chrom, tss, strand, fold, rpkm, target, label``.
    windows : chromexp.data.binned.TSSWindows
    exclusions : pandas.DataFrame
        ``reason, n_genes, example_gene_ids, description``.
    label_median : float
    validation_fraction : float
    source : str
        The count table (or reads) the windows come from.
    """

    cell_type: str
    provenance: str
    genes: pd.DataFrame
    windows: binned.TSSWindows
    exclusions: pd.DataFrame
    label_median: float
    validation_fraction: float = 0.12
    source: str = ""
    _splits: dict[int, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def marks(self) -> tuple[str, ...]:
        """The tracks of the windows (marks), in table order."""
        return tuple(self.windows.tracks)

    def __len__(self) -> int:
        return len(self.genes)

    def x(self, marks: Sequence[str] | str, k: int) -> np.ndarray:
        """``ln(count + 1)``, shape (n_genes, n_marks, 2 k + 1), float32 (bin 0 most upstream)."""
        return self.windows.log1p([marks] if isinstance(marks, str) else list(marks), k=k)

    def split(self, fold: int) -> dict[str, np.ndarray]:
        """Test genes of ``fold``, validation chromosomes of the training folds, the rest (as ``CellDataset.split``)."""
        fold = int(fold)
        if fold not in FOLD_CHROMS:
            raise ValueError(f"fold must be one of {list(FOLD_CHROMS)}; got {fold}.")
        if fold not in self._splits:
            chroms = self.genes["chrom"].to_numpy()
            counts = self.genes["chrom"].value_counts().to_dict()
            val = validation_chromosomes(counts, fold, self.validation_fraction)
            test = np.flatnonzero(self.genes["fold"].to_numpy() == fold)
            validation = np.flatnonzero(np.isin(chroms, val))
            train = np.setdiff1d(np.arange(len(self)), np.concatenate([test, validation]))
            for part, idx in (("train", train), ("validation", validation), ("test", test)):
                if idx.size == 0:
                    raise ValueError(f"Fold {fold} of the {self.cell_type} benchmark has no {part} genes.")
            self._splits[fold] = {"train": train, "validation": validation, "test": test}
        return self._splits[fold]

    def subsample(self, n_genes: int | None, seed: int) -> Benchmark:
        """A seeded random subset of ``n_genes`` genes (quick runs), counted as ``subsampled``; labels unchanged.

        ``None`` or at least as many genes as there are: this benchmark itself.
        """
        if n_genes is None or int(n_genes) >= len(self):
            return self
        rng = np.random.default_rng(seed)
        keep = np.zeros(len(self), dtype=bool)
        keep[rng.choice(len(self), size=int(n_genes), replace=False)] = True
        out = self.with_windows(_select_windows(self.windows, keep), self.provenance, self.source)
        left = self.genes["gene_id"].to_numpy()[~keep]
        exclusions = self.exclusions.copy()
        row = exclusions["reason"] == "subsampled"
        exclusions.loc[row, "n_genes"] = int((~keep).sum())
        exclusions.loc[row, "example_gene_ids"] = ",".join(map(str, left[:5]))
        return replace(out, exclusions=exclusions)

    def subset(self, gene_ids: Sequence[str]) -> Benchmark:
        """The same benchmark on ``gene_ids`` (kept in this benchmark's order; labels unchanged)."""
        keep = self.genes["gene_id"].isin(set(gene_ids)).to_numpy()
        if not keep.any():
            raise ValueError("subset: none of the given genes is in the benchmark.")
        return self.with_windows(_select_windows(self.windows, keep), self.provenance, self.source)

    def with_windows(self, windows: binned.TSSWindows, provenance: str, source: str) -> Benchmark:
        """The same targets, labels and folds on ``windows`` (their genes, in their order).

        ``windows`` must hold only genes of this benchmark (e.g. another count table's windows of
        a subset of its genes): the simulator check compares two sources on the same genes.
        """
        ids = windows.genes["gene_id"].astype(str)
        known = ids.isin(set(self.genes["gene_id"]))
        if not known.all():
            raise ValueError(f"with_windows: {int((~known).sum())} genes of the windows are not in the benchmark.")
        genes = self.genes.set_index("gene_id").loc[ids].reset_index()
        return replace(self, genes=genes, windows=windows, provenance=provenance, source=source, _splits={})


def _select_windows(windows: binned.TSSWindows, keep: np.ndarray) -> binned.TSSWindows:
    return replace(windows, genes=windows.genes.loc[keep].reset_index(drop=True), counts=windows.counts[keep])


def build_benchmark(
    bins: pd.DataFrame,
    genes: pd.DataFrame,
    rpkm: pd.Series,
    *,
    cell_type: str,
    k: int,
    provenance: str,
    validation_fraction: float = 0.12,
    source: str = "",
) -> Benchmark:
    """Windows, targets, labels and folds of every gene the count table covers.

    Parameters
    ----------
    bins : pandas.DataFrame
        A pre-binned count table (``chromexp.data.io.read_binned_counts``).
    genes : pandas.DataFrame
        ``gene_id, gene_name, chrom, tss, strand`` (``chromexp.data.io.read_gene_table``).
    rpkm : pandas.Series
        RPKM of the cell type, indexed by gene_id.
    cell_type : str
    k : int
        Bins on each side of the TSS bin (the widest window any model uses).
    provenance : str
        Of ``bins`` (``chromexp.provenance.detect``).
    validation_fraction : float
        ``dataset.validation_fraction``.
    source : str
        Where ``bins`` came from (shown in tables).

    Returns
    -------
    Benchmark
        Exclusions list every reason of ``binned.GENE_REASONS`` and :data:`BENCHMARK_REASONS`.
    """
    windows = binned.tss_windows(bins, genes, k)
    kept = windows.genes
    values = rpkm.reindex(kept["gene_id"].astype(str)).to_numpy(np.float64)
    has_rpkm = np.isfinite(values)
    reasons = [windows.exclusions]
    ids = kept["gene_id"].astype(str).to_numpy()

    def reason_row(name: str, mask: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "reason": name,
                    "n_genes": int(mask.sum()),
                    "example_gene_ids": ",".join(ids[mask][:5]),
                    "description": BENCHMARK_REASONS[name],
                }
            ]
        )

    reasons.append(reason_row("no_expression", ~has_rpkm))
    reasons.append(reason_row("subsampled", np.zeros(len(kept), dtype=bool)))
    keep = has_rpkm
    if not keep.any():
        raise ValueError(f"No gene of the count table has an RPKM for {cell_type} (filter 'no_expression').")
    windows = _select_windows(windows, keep)
    table = windows.genes[["gene_id", "gene_name", "chrom", "tss", "strand"]].copy()
    table["fold"] = table["chrom"].map(CHROM_FOLD).fillna(0).astype(np.int64)
    if (table["fold"] == 0).any():
        bad = sorted(set(table.loc[table["fold"] == 0, "chrom"]))
        raise ValueError(f"Chromosomes {bad} belong to no fold (docs/methods.md, 'Genes, folds and pCREs').")
    table["rpkm"] = values[keep]
    table["target"] = np.log2(table["rpkm"] + 1.0)
    median = float(np.median(table["rpkm"]))
    table["label"] = (table["rpkm"] >= median).astype(np.int64)
    return Benchmark(
        cell_type=cell_type,
        provenance=provenance,
        genes=table.reset_index(drop=True),
        windows=windows,
        exclusions=pd.concat(reasons, ignore_index=True),
        label_median=median,
        validation_fraction=float(validation_fraction),
        source=source,
    )


def mark_sets(marks: Sequence[str], all_marks: bool = True) -> list[tuple[str, ...]]:
    """Each single mark, then (``all_marks``, more than one mark) all marks together."""
    sets = [(m,) for m in marks]
    if all_marks and len(marks) > 1:
        sets.append(tuple(marks))
    return sets


# ----------------------------------------------------------------------------------------------
# evaluation helpers
# ----------------------------------------------------------------------------------------------
def _evaluate(
    bench: Benchmark,
    split: Mapping[str, np.ndarray],
    predicted: Mapping[str, np.ndarray],
    *,
    model: str,
    marks: str,
    fold: int,
    classifier: bool = False,
) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """Metrics on the test and validation genes and the test predictions of one fitted model.

    A regressor's rows: Pearson r, Spearman ρ, R², MSE and the AUROC of its prediction against
    the label; a classifier's: AUROC, AUPR, F1 of its probability.
    """
    ids = dict(cell_type=bench.cell_type, model=model, marks=marks, fold=int(fold))
    target = bench.genes["target"].to_numpy(np.float64)
    label = bench.genes["label"].to_numpy(np.int64)
    gene_ids = bench.genes["gene_id"].to_numpy()
    tables, predictions = [], None
    for part in ("test", "validation"):
        rows = np.asarray(split[part])
        out = np.asarray(predicted[part], dtype=np.float64)
        if classifier:
            values = classification_metrics(label[rows], out)
            extra = {"label": label[rows], "probability": out}
        else:
            values = regression_metrics(target[rows], out)
            values["auroc"] = auroc(label[rows], out)
            extra = {}
        tables.append(metrics_table(values, **ids, split=part, n_genes=rows.size))
        if part == "test":
            predictions = predictions_table(
                **ids, gene_id=gene_ids[rows], observed=target[rows], predicted=out, **extra
            )
    return tables, predictions


def auroc(label: np.ndarray, score: np.ndarray) -> float:
    """AUROC of ``score`` for the 0/1 ``label`` (Mann–Whitney U with average ranks; NaN with one class).

    Equal to ``sklearn.metrics.roc_auc_score`` (tested) without its per-call input checks, which
    dominate when hundreds of small fits are scored.
    """
    from scipy.stats import rankdata

    label = np.asarray(label).astype(bool)
    n1 = int(label.sum())
    n0 = label.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.asarray(score, dtype=np.float64))
    return float((ranks[label].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def ridge_path(x: np.ndarray, y: np.ndarray, alphas: Sequence[float]) -> list[tuple[np.ndarray, float]]:
    """Ridge coefficients and intercept for every ``alpha`` from one eigendecomposition.

    Minimises ``||y - b - x w||² + alpha ||w||²`` (intercept not penalised), as
    ``sklearn.linear_model.Ridge(alpha)`` does (tested), for a whole grid of alphas at the cost of
    one fit.

    Returns
    -------
    list of (w, b)
        ``w`` shape (n_features,), ``b`` float; one pair per alpha, in order.
    """
    x_mean, y_mean = x.mean(axis=0), float(y.mean())
    xc, yc = x - x_mean, y - y_mean
    eigval, eigvec = np.linalg.eigh(xc.T @ xc)
    proj = eigvec.T @ (xc.T @ yc)
    out = []
    for alpha in alphas:
        w = eigvec @ (proj / (np.maximum(eigval, 0.0) + float(alpha)))
        out.append((w, y_mean - float(x_mean @ w)))
    return out


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """``(x - mean) / sd`` per feature with the training genes' mean and sd (sd 0 → 1)."""
    mean = x[train].mean(axis=0)
    sd = x[train].std(axis=0)
    return (x - mean) / np.where(sd > 0, sd, 1.0)


@dataclass
class ModelRun:
    """What a model family returns: tidy metrics, test predictions, and the choices made per fit."""

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    details: pd.DataFrame
    seconds: float
    history: pd.DataFrame | None = None


def _collect(model_tables: list, predictions: list, details: list, t0: float, history=None) -> ModelRun:
    return ModelRun(
        metrics=pd.concat(model_tables, ignore_index=True),
        predictions=pd.concat(predictions, ignore_index=True),
        details=pd.DataFrame(details),
        seconds=time.perf_counter() - t0,
        history=history,
    )


# ----------------------------------------------------------------------------------------------
# the bar: ridge / logistic on the TSS bin ± baseline_k bins
# ----------------------------------------------------------------------------------------------
def linear_baselines(
    bench: Benchmark,
    sets: Sequence[Sequence[str]],
    folds: Sequence[int],
    *,
    k: int = 1,
    alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0),
    cs: Sequence[float] = (0.01, 0.1, 1.0),
) -> ModelRun:
    """``binned_ridge`` and ``binned_logistic`` per mark set and fold.

    Features: ``ln(count + 1)`` of the TSS bin ± ``k`` bins of each mark, standardised with the
    training genes' mean and sd. Ridge α is chosen by validation MSE (:func:`ridge_path`), logistic
    C (inverse L2 strength; sklearn, Newton–Cholesky solver) by validation AUROC; both are fitted
    on the training genes only.

    Returns
    -------
    ModelRun
        ``details``: model, marks, fold, k, chosen alpha / C.
    """
    from sklearn.linear_model import LogisticRegression

    if not alphas or not cs:
        raise ValueError("alphas and cs must each hold at least one value.")
    t0 = time.perf_counter()
    tables, preds, details = [], [], []
    target = bench.genes["target"].to_numpy(np.float64)
    label = bench.genes["label"].to_numpy(np.int64)
    for marks in sets:
        key = marks_key(marks)
        x_all = bench.x(marks, k).reshape(len(bench), -1).astype(np.float64)
        for fold in folds:
            split = bench.split(fold)
            tr, va = split["train"], split["validation"]
            x = _standardise(x_all, tr)
            best = None
            for alpha, (w, b) in zip(alphas, ridge_path(x[tr], target[tr], alphas)):
                loss = float(np.mean((x[va] @ w + b - target[va]) ** 2))
                if best is None or loss < best[0]:
                    best = (loss, float(alpha), w, b)
            _, alpha, w, b = best
            m, p = _evaluate(
                bench,
                split,
                {part: x[split[part]] @ w + b for part in ("test", "validation")},
                model="binned_ridge",
                marks=key,
                fold=fold,
            )
            tables += m
            preds.append(p)
            details.append({"model": "binned_ridge", "marks": key, "fold": fold, "k": k, "alpha": alpha})
            best = None
            for c in cs:
                fit = LogisticRegression(C=float(c), solver="newton-cholesky", max_iter=200).fit(x[tr], label[tr])
                auc = auroc(label[va], fit.decision_function(x[va]))
                if best is None or auc > best[0]:
                    best = (auc, float(c), fit)
            _, c, logistic = best
            m, p = _evaluate(
                bench,
                split,
                {part: logistic.predict_proba(x[split[part]])[:, 1] for part in ("test", "validation")},
                model="binned_logistic",
                marks=key,
                fold=fold,
                classifier=True,
            )
            tables += m
            preds.append(p)
            details.append({"model": "binned_logistic", "marks": key, "fold": fold, "k": k, "C": c})
    return _collect(tables, preds, details, t0)


# ----------------------------------------------------------------------------------------------
# ExPecto-style linear model over the TSS bin ± k bins (chromexp.baselines.expecto)
# ----------------------------------------------------------------------------------------------
def expecto_features(bench: Benchmark, marks: Sequence[str], k: int) -> np.ndarray:
    """ExPecto's spatial features of each gene's TSS bin ± k bins, at the gene's own bin-centre distances.

    ``z[g, m·F + f] = Σ_j x[g, f, j] · b_m(d_gj)`` (basis-major, 10 · F columns) with ``x`` the
    ``ln(count + 1)`` of the bins and ``d_gj`` the signed distance of bin j's centre from gene g's
    TSS in transcription orientation (``TSSWindows.centre_distances``): the TSS is anywhere inside
    its 10-kb bin, so the distances differ by gene. The bases are
    ``chromexp.baselines.expecto.spatial_bases`` (ExPecto's, 200-bp steps).

    Returns
    -------
    numpy.ndarray, shape (n_genes, 10 · n_marks), float64
    """
    from ..baselines import expecto

    x = bench.x(marks, k).astype(np.float64)  # (genes, marks, bins)
    distance = bench.windows.centre_distances(k)  # (genes, bins)
    bases = expecto.spatial_bases(distance.ravel()).reshape(expecto.N_BASES, *distance.shape)  # (10, genes, bins)
    return np.einsum("gfj,mgj->gmf", x, bases).reshape(len(bench), -1)


def expecto_models(
    bench: Benchmark,
    sets: Sequence[Sequence[str]],
    folds: Sequence[int],
    *,
    k: int,
    alphas: Sequence[float] | None = None,
) -> ModelRun:
    """``binned_expecto`` per mark set and fold: ExPecto's bases over the TSS bin ± k bins, then ridge.

    ``chromexp.baselines.expecto.fit_ridge``: features standardised on the training genes, α from
    ``alphas`` (default ExPecto module's 15 values, 10^-3 … 10^4) by the validation Spearman ρ,
    fitted on the training genes.

    Returns
    -------
    ModelRun
        ``details``: model, marks, fold, k, alpha.
    """
    from ..baselines import expecto

    t0 = time.perf_counter()
    grid = tuple(expecto.ALPHAS if alphas is None else alphas)
    target = bench.genes["target"].to_numpy(np.float64)
    tables, preds, details = [], [], []
    for marks in sets:
        key = marks_key(marks)
        z = expecto_features(bench, marks, k)
        for fold in folds:
            split = bench.split(fold)
            tr, va = split["train"], split["validation"]
            fit = expecto.fit_ridge(z[tr], target[tr], z[va], target[va], grid)
            m, p = _evaluate(
                bench,
                split,
                {part: fit.predict(z[split[part]]) for part in ("test", "validation")},
                model="binned_expecto",
                marks=key,
                fold=fold,
            )
            tables += m
            preds.append(p)
            details.append({"model": "binned_expecto", "marks": key, "fold": fold, "k": k, "alpha": fit.alpha})
    return _collect(tables, preds, details, t0)


# ----------------------------------------------------------------------------------------------
# the small CNN over the TSS bin ± k bins (the project's training engine)
# ----------------------------------------------------------------------------------------------
def model_seed(seed: int, marks: Sequence[str], fold: int) -> int:
    """A seed per (mark set, fold) that does not depend on which other models are trained."""
    text = f"{int(seed)}|binned_cnn|{marks_key(marks)}|{int(fold)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def _cnn_inputs(bench: Benchmark, marks: Sequence[str], fold: int, k: int):
    """Standardised inputs (per mark, training genes' mean / sd over all bins) and the split."""
    split = bench.split(fold)
    x = bench.x(marks, k).astype(np.float32)  # (n, marks, bins)
    tr = x[split["train"]]
    mean = tr.mean(axis=(0, 2), keepdims=True)
    sd = tr.std(axis=(0, 2), keepdims=True)
    x = (x - mean) / np.where(sd > 0, sd, 1.0)
    return np.ascontiguousarray(x, dtype=np.float32), split


def train_cnns(
    bench: Benchmark,
    sets: Sequence[Sequence[str]],
    folds: Sequence[int],
    *,
    k: int,
    cnn: Mapping[str, Any],
    train_params: Mapping[str, Any],
    seed: int,
    device=None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> ModelRun:
    """Train and test one ``binned_cnn`` per (mark set, fold) with the study's protocol.

    ``train_params`` is the run's ``train`` block (Adam, lr, batch, ReduceLROnPlateau, early
    stopping on the fold's validation genes, best weights restored). The models with the same
    number of marks are trained at once with ``chromexp.training.stacked.fit_many`` (``cnn.stacked``;
    each keeps its own optimiser, schedule, early stopping and shuffling) or one after the other
    with ``chromexp.training.train.fit``. Checkpoints (one file per model) make an interrupted run resume.

    Parameters
    ----------
    cnn : mapping
        ``channels, hidden, kernel_size, dropout, stacked`` (the ``real_e116.cnn`` block;
        ``stacked: null`` = stacked on CUDA only).
    train_params : mapping
        :func:`cnn_train_params`.

    Returns
    -------
    ModelRun
        ``history``: one row per (marks, fold, epoch); ``details``: marks, fold, best_epoch,
        epochs, read_back (the finished model was read from its checkpoint, not trained), n_parameters.
    """
    import torch

    from ..models.binned_cnn import BinnedCNN
    from ..training import stacked as train_stacked
    from ..training import train as engine

    t0 = time.perf_counter()
    dev = engine.resolve_device(device)
    jobs = [(tuple(marks), int(fold)) for marks in sets for fold in folds]
    groups: dict[int, list[tuple[tuple[str, ...], int]]] = {}
    for job in jobs:
        groups.setdefault(len(job[0]), []).append(job)
    arch = {key: cnn[key] for key in ("channels", "hidden", "kernel_size", "dropout")}
    tables, preds, details, histories = [], [], [], []
    for n_marks, group in groups.items():
        data, models = [], []
        for marks, fold in group:
            x, split = _cnn_inputs(bench, marks, fold, k)
            y = bench.genes["target"].to_numpy(np.float32)
            data.append((x, y, split))
            torch.manual_seed(model_seed(seed, marks, fold))
            models.append(BinnedCNN(n_marks, 2 * k + 1, **arch))
        trains = [(x[s["train"]], y[s["train"]]) for x, y, s in data]
        vals = [(x[s["validation"]], y[s["validation"]]) for x, y, s in data]
        names = [f"binned_cnn {marks_key(m)} fold {f}" for m, f in group]
        genes_digest = hashlib.sha256(
            pd.util.hash_pandas_object(bench.genes[["gene_id", "target"]], index=False).to_numpy().tobytes()
        ).hexdigest()
        digests = [
            hashlib.sha256(
                json.dumps([marks_key(m), f, arch, dict(train_params), k, seed, genes_digest], default=str).encode()
            ).hexdigest()[:12]
            for m, f in group
        ]
        paths = [
            None if checkpoint_dir is None else Path(checkpoint_dir) / f"binned_cnn_{marks_key(m)}_fold{f}_{d}.pt"
            for (m, f), d in zip(group, digests)
        ]
        stacked = cnn.get("stacked")
        stacked = dev.type == "cuda" if stacked is None else bool(stacked)
        if stacked and len(group) > 1:
            group_digest = hashlib.sha256("".join(digests).encode()).hexdigest()[:12]
            path = None if checkpoint_dir is None else Path(checkpoint_dir) / f"binned_cnn_group_{group_digest}.pt"
            results = train_stacked.fit_many(
                models,
                trains,
                vals,
                train_params=train_params,
                device=dev,
                seeds=[model_seed(seed, m, f) for m, f in group],
                checkpoint_path=path,
                progress=progress,
                names=names,
                model_checkpoints=paths if checkpoint_dir is not None else None,
            )
        else:
            results = [
                engine.fit(
                    model,
                    tr,
                    va,
                    train_params=train_params,
                    device=dev,
                    seed=model_seed(seed, marks, fold),
                    checkpoint_path=path,
                    progress=progress,
                    name=name,
                )
                for model, tr, va, name, (marks, fold), path in zip(models, trains, vals, names, group, paths)
            ]
        for (marks, fold), result, (x, _, split) in zip(group, results, data):
            key = marks_key(marks)
            out = {
                part: engine.predict(result.model, x[split[part]], batch_size=4096, device=dev)
                for part in ("test", "validation")
            }
            m, p = _evaluate(bench, split, out, model="binned_cnn", marks=key, fold=fold)
            tables += m
            preds.append(p)
            details.append(
                {
                    "model": "binned_cnn",
                    "marks": key,
                    "fold": fold,
                    "k": k,
                    "best_epoch": result.best_epoch,
                    "epochs": len(result.history),
                    "read_back": bool(result.resumed_from >= len(result.history)),
                    "n_parameters": engine.n_parameters(result.model),
                }
            )
            histories.append(result.history.assign(marks=key, fold=fold))
    history = pd.concat(histories, ignore_index=True) if histories else None
    return _collect(tables, preds, details, t0, history)


# ----------------------------------------------------------------------------------------------
# Fig. 1A on real data: per-fold ranking of the single marks and its stability
# ----------------------------------------------------------------------------------------------
def cnn_train_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``train`` block with the ``real_e116.cnn.train`` overrides (batch size, learning rate)."""
    return {**params["train"], **params["real_e116"]["cnn"]["train"]}


def kendall_w(ranks: np.ndarray) -> float:
    """Kendall's coefficient of concordance W of ``m`` rankings of ``n`` items (no tie correction).

    ``ranks``: shape (m, n), each row a ranking 1..n. W = 12 S / (m² (n³ − n)) with S the sum
    of squared deviations of the items' rank sums from their mean; 1 = identical rankings,
    about 0 = no agreement. NaN for fewer than 2 rankings or items.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.ndim != 2:
        raise ValueError(f"ranks must be 2-D (rankings × items); got shape {ranks.shape}.")
    m, n = ranks.shape
    if m < 2 or n < 2:
        return float("nan")
    totals = ranks.sum(axis=0)
    s = float(((totals - totals.mean()) ** 2).sum())
    return 12.0 * s / (m**2 * (n**3 - n))


def fold_ranking(metrics: pd.DataFrame, marks: Sequence[str], metric: str = "pearson_r") -> pd.DataFrame:
    """Rank of each single mark per (model, fold) by a test metric (1 = best).

    Returns
    -------
    pandas.DataFrame
        ``cell_type, model, metric, fold, marks, value, rank``; ties share the lower rank.
    """
    t = metrics[(metrics["split"] == "test") & (metrics["metric"] == metric) & metrics["marks"].isin(list(marks))]
    if t.empty:
        raise ValueError(f"No single-mark test rows with metric {metric!r} to rank.")
    t = t[["cell_type", "model", "metric", "fold", "marks", "value"]].copy()
    t["rank"] = t.groupby(["model", "fold"])["value"].rank(ascending=False, method="min").astype(np.int64)
    return t.sort_values(["model", "fold", "rank"]).reset_index(drop=True)


def ranking_stability(ranking: pd.DataFrame) -> pd.DataFrame:
    """Per model: the best mark (highest mean over folds), in how many folds it ranks first, Kendall's W.

    Returns
    -------
    pandas.DataFrame
        ``model, metric, n_folds, n_marks, best_mark, best_mean, n_folds_best_first, kendall_w,
        ranking`` (marks by mean value, ``>``-joined), ``second_mark, second_mean``.
    """
    rows = []
    for model, t in ranking.groupby("model", sort=False):
        wide = t.pivot_table(index="fold", columns="marks", values="value")
        ranks = t.pivot_table(index="fold", columns="marks", values="rank")
        order = wide.mean(axis=0).sort_values(ascending=False)
        best = order.index[0]
        full = ranks.dropna()
        rows.append(
            {
                "model": model,
                "metric": t["metric"].iloc[0],
                "n_folds": len(wide),
                "n_marks": wide.shape[1],
                "best_mark": best,
                "best_mean": float(order.iloc[0]),
                "n_folds_best_first": int((ranks[best] == 1).sum()),
                "kendall_w": kendall_w(full.rank(axis=1, ascending=True, method="average").to_numpy()),
                "ranking": " > ".join(order.index),
                "second_mark": order.index[1] if len(order) > 1 else "",
                "second_mean": float(order.iloc[1]) if len(order) > 1 else float("nan"),
            }
        )
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------
# the simulator against the real counts
# ----------------------------------------------------------------------------------------------
def aggregate_reads(
    reads: Mapping[str, pd.DataFrame], bins: pd.DataFrame, covered: np.ndarray | None = None
) -> pd.DataFrame:
    """Count each mark's reads into ``bins``; keep only the ``covered`` bins (the others are unknown).

    Parameters
    ----------
    reads : mapping mark -> pandas.DataFrame
        ``chrom, start, end`` of the reads (``chromexp.data.io.read_tagalign``).
    bins : pandas.DataFrame
        ``chrom, start, end`` (e.g. the real table's bins).
    covered : numpy.ndarray of bool, optional
        Bins where reads were drawn everywhere (``chromexp.data.binned.bins_inside`` of the
        simulated regions); default all.

    Returns
    -------
    pandas.DataFrame
        A pre-binned count table (``chrom, start, end``, one int64 column per mark) of the covered
        bins only: an uncovered bin is a gap, so a window reaching it is reported, not read as 0.
    """
    keep = np.ones(len(bins), dtype=bool) if covered is None else np.asarray(covered, dtype=bool)
    if keep.shape != (len(bins),):
        raise ValueError(f"covered must have one value per bin ({len(bins)}); got shape {keep.shape}.")
    if not keep.any():
        raise ValueError("aggregate_reads: no bin is covered by the simulated regions (filter 'covered').")
    out = bins.loc[keep, ["chrom", "start", "end"]].reset_index(drop=True)
    out["chrom"] = out["chrom"].astype(str)
    for mark, frame in reads.items():
        out[mark] = binned.count_reads_in_bins(frame, out)
    return out


def paired_benchmarks(
    bench: Benchmark, bins: pd.DataFrame, gene_ids: Sequence[str], *, k: int, provenance: str, source: str
) -> tuple[Benchmark, Benchmark, pd.DataFrame]:
    """The benchmark's genes ``gene_ids`` with windows from ``bins`` and from the benchmark's own table.

    Parameters
    ----------
    bench : Benchmark
        The real benchmark (its windows reach at least ± ``k`` bins).
    bins : pandas.DataFrame
        Another count table of the same cell type on the same bin grid (e.g. :func:`aggregate_reads`
        of the simulated reads, covered bins only).
    gene_ids : sequence of str
        Genes to compare (e.g. the simulated dataset's genes).
    k : int
        Bins on each side of the TSS bin (the covered window).
    provenance, source : str
        Of ``bins``.

    Returns
    -------
    (Benchmark, Benchmark, pandas.DataFrame)
        The benchmark's own windows and ``bins``' windows on the same genes in the same order
        (same targets, labels and folds), and the exclusions of the genes asked for: not in the
        benchmark, or without a covered window in ``bins`` (``binned.GENE_REASONS``).
    """
    wanted = pd.Index(pd.unique(pd.Series(list(gene_ids), dtype=str)))
    inside = wanted.isin(bench.genes["gene_id"])
    genes = bench.genes[bench.genes["gene_id"].isin(wanted)]
    windows = binned.tss_windows(bins, genes, k)
    ids = windows.genes["gene_id"].astype(str).tolist()
    own = bench.subset(ids)
    other = own.with_windows(windows, provenance, source)
    # tss_windows keeps its input order (the benchmark's), as subset does: the rows pair up
    assert own.genes["gene_id"].tolist() == other.genes["gene_id"].tolist()
    missing = pd.DataFrame(
        [
            {
                "reason": "not_in_benchmark",
                "n_genes": int((~inside).sum()),
                "example_gene_ids": ",".join(wanted[~inside][:5]),
                "description": "not a gene of the benchmark (other chromosome, unknown strand, no RPKM, ...)",
            }
        ]
    )
    return own, other, pd.concat([missing, windows.exclusions], ignore_index=True)


def performance_table(sources: Mapping[str, tuple[pd.DataFrame, str]]) -> pd.DataFrame:
    """Test rows of several metrics tables side by side: ``source, provenance, model, metric, marks, fold, value``.

    ``sources``: name -> (tidy metrics, provenance).
    """
    rows = []
    for name, (metrics, provenance) in sources.items():
        t = metrics[metrics["split"] == "test"][["model", "metric", "marks", "fold", "value", "n_genes"]].copy()
        t.insert(0, "provenance", provenance)
        t.insert(0, "source", name)
        rows.append(t)
    return pd.concat(rows, ignore_index=True)


def fold_table(metrics: pd.DataFrame, metrics_shown: Sequence[str] = ("pearson_r", "auroc")) -> pd.DataFrame:
    """The benchmark table: one row per (model, marks, metric), one column per fold, and the mean.

    Logistic regression contributes its AUROC only (its regression metrics do not exist).
    """
    t = metrics[(metrics["split"] == "test") & metrics["metric"].isin(list(metrics_shown))]
    wide = t.pivot_table(index=["model", "marks", "metric"], columns="fold", values="value")
    wide.columns = [f"fold {c}" for c in wide.columns]
    wide["mean"] = wide.mean(axis=1)
    wide["sd"] = wide.drop(columns="mean").std(axis=1)
    return wide


def signal_relations(bench: Benchmark, marks: Sequence[str]) -> pd.DataFrame:
    """Per mark: how the TSS-bin count relates to expression (:data:`RELATIONS`).

    Returns
    -------
    pandas.DataFrame
        ``cell_type, provenance, source, mark, quantity, value, n_genes``.
    """
    from scipy import stats

    label = bench.genes["label"].to_numpy(np.int64)
    target = bench.genes["target"].to_numpy(np.float64)
    k0 = bench.windows.k
    rows = []
    for mark in marks:
        counts = bench.windows.counts[:, list(bench.marks).index(mark), k0].astype(np.float64)
        x = np.log1p(counts)
        values = {
            "spearman_tss_bin": float(stats.spearmanr(x, target)[0]) if np.ptp(x) > 0 else float("nan"),
            "active_minus_inactive": float(x[label == 1].mean() - x[label == 0].mean()),
            "median_count_active": float(np.median(counts[label == 1])),
            "median_count_inactive": float(np.median(counts[label == 0])),
        }
        for quantity, value in values.items():
            rows.append(
                {
                    "cell_type": bench.cell_type,
                    "provenance": bench.provenance,
                    "source": bench.source,
                    "mark": mark,
                    "quantity": quantity,
                    "value": value,
                    "n_genes": len(bench),
                }
            )
    return pd.DataFrame(rows)


def expression_deciles(bench: Benchmark, marks: Sequence[str], n_bins: int = 10) -> pd.DataFrame:
    """Mean ``ln(count + 1)`` of the TSS bin per expression decile (the signal–expression curve).

    Returns
    -------
    pandas.DataFrame
        ``provenance, source, mark, decile (1 = lowest), mean_target, mean_log1p, n_genes``.
    """
    target = bench.genes["target"].to_numpy(np.float64)
    decile = pd.qcut(pd.Series(target).rank(method="first"), n_bins, labels=False).to_numpy() + 1
    rows = []
    for mark in marks:
        x = np.log1p(bench.windows.counts[:, list(bench.marks).index(mark), bench.windows.k].astype(np.float64))
        for d in range(1, n_bins + 1):
            sel = decile == d
            rows.append(
                {
                    "provenance": bench.provenance,
                    "source": bench.source,
                    "mark": mark,
                    "decile": d,
                    "mean_target": float(target[sel].mean()),
                    "mean_log1p": float(x[sel].mean()),
                    "n_genes": int(sel.sum()),
                }
            )
    return pd.DataFrame(rows)


def compare_sources(
    real_metrics: pd.DataFrame,
    sim_metrics: pd.DataFrame,
    real_relations: pd.DataFrame,
    sim_relations: pd.DataFrame,
    marks: Sequence[str],
    tolerance: float,
) -> pd.DataFrame:
    """Per mark set: real vs simulated baseline performance and signal–expression relation.

    Performance is the mean over folds of the test metric (``binned_ridge`` Pearson r and
    Spearman ρ, ``binned_logistic`` AUROC); relations from :func:`signal_relations`. A mark is
    *off* when a correlation-type quantity (Pearson r, Spearman ρ, AUROC, the relation's Spearman
    ρ) differs by more than ``tolerance`` in absolute value.

    Returns
    -------
    pandas.DataFrame
        ``marks, quantity, real, simulated, difference (simulated − real), off,
        provenance_real, provenance_simulated, n_genes``.
    """
    wanted = [("binned_ridge", "pearson_r"), ("binned_ridge", "spearman_rho"), ("binned_logistic", "auroc")]
    rows = []

    def mean_test(table: pd.DataFrame, model: str, metric: str, key: str) -> tuple[float, int]:
        t = table[
            (table["model"] == model)
            & (table["metric"] == metric)
            & (table["split"] == "test")
            & (table["marks"] == key)
        ]
        return (float(t["value"].mean()), int(t["n_genes"].sum())) if len(t) else (float("nan"), 0)

    keys = list(dict.fromkeys(real_metrics["marks"]))
    for key in keys:
        for model, metric in wanted:
            real, n = mean_test(real_metrics, model, metric, key)
            sim, _ = mean_test(sim_metrics, model, metric, key)
            rows.append({"marks": key, "quantity": f"{model}:{metric}", "real": real, "simulated": sim, "n_genes": n})
    rel_r = real_relations.set_index(["mark", "quantity"])
    rel_s = sim_relations.set_index(["mark", "quantity"])
    for mark in marks:
        for quantity in RELATIONS:
            rows.append(
                {
                    "marks": mark,
                    "quantity": f"relation:{quantity}",
                    "real": float(rel_r.loc[(mark, quantity), "value"]),
                    "simulated": float(rel_s.loc[(mark, quantity), "value"]),
                    "n_genes": int(rel_r.loc[(mark, quantity), "n_genes"]),
                }
            )
    table = pd.DataFrame(rows)
    table["difference"] = table["simulated"] - table["real"]
    correlation = table["quantity"].str.contains("pearson_r|spearman|auroc")
    table["off"] = correlation & (table["difference"].abs() > float(tolerance))
    table["provenance_real"] = str(real_relations["provenance"].iloc[0])
    table["provenance_simulated"] = str(sim_relations["provenance"].iloc[0])
    return table[
        [
            "marks",
            "quantity",
            "real",
            "simulated",
            "difference",
            "off",
            "provenance_real",
            "provenance_simulated",
            "n_genes",
        ]
    ]


# ----------------------------------------------------------------------------------------------
# the Answer paragraph
# ----------------------------------------------------------------------------------------------
def answer(
    stability: pd.DataFrame,
    metrics: pd.DataFrame,
    comparison: pd.DataFrame | None,
    provenance: str,
    bin_size: int,
    n_genes: int,
    sim_provenance: str | None = None,
    tolerance: float = 0.1,
) -> str:
    """Notebook 15's **Answer**, written from its ranking, metrics and comparison tables."""
    from ..provenance import provenance_phrase

    test = metrics[(metrics["split"] == "test") & (metrics["metric"] == "pearson_r")]
    text = [f"**Answer.** {provenance_phrase(provenance)} ({n_genes:,} genes, {bin_size / 1000:g}-kb bins, 4 folds):"]
    for s in stability.itertuples():
        together = test[(test["model"] == s.model) & test["marks"].str.contains("+", regex=False)]["value"]
        text.append(
            f"with `{s.model}` the best single mark is **{s.best_mark}** (mean test Pearson r {s.best_mean:.3f}, "
            f"{s.best_mean - s.second_mean:.3f} above {s.second_mark}; first in {s.n_folds_best_first} of {s.n_folds} "
            f"folds; ranking {s.ranking}; Kendall's W over folds {s.kendall_w:.2f})"
            + (f" and all marks together reach {together.mean():.3f}" if len(together) else "")
            + ";"
        )
    out = " ".join(text).rstrip(";") + "."
    if comparison is None or comparison.empty:
        return out + " The simulator check did not run (no reads of this cell type in the run's dataset)."
    label = "SEMI-SYNTHETIC" if sim_provenance == "semi-synthetic" else str(sim_provenance)
    r = comparison[comparison["quantity"] == "binned_ridge:pearson_r"].set_index("marks")
    rho = comparison[comparison["quantity"] == "relation:spearman_tss_bin"].set_index("marks")
    singles = [m for m in r.index if "+" not in m]
    changes = ", ".join(
        f"{m} {r.loc[m, 'real']:.2f} → {r.loc[m, 'simulated']:.2f} ({r.loc[m, 'difference']:+.2f})" for m in singles
    )
    worst = r.loc[singles, "difference"].abs().idxmax()
    marks_off = sorted(set(comparison.loc[comparison["off"], "marks"]) & set(singles))
    out += (
        f" The {label} reads counted into the same bins cover only the TSS bin ± 1; on the same genes the TSS ± 1 "
        f"ridge Pearson r per mark goes real → simulated: {changes}; the largest gap is {worst}, whose TSS-bin "
        f"Spearman ρ with expression is {rho.loc[worst, 'real']:.2f} real vs {rho.loc[worst, 'simulated']:.2f} "
        "simulated. "
    )
    out += (
        f"Off by more than {tolerance:g} in a correlation: {', '.join(marks_off)}."
        if marks_off
        else f"No single mark is off by more than {tolerance:g} in any correlation."
    )
    return out
