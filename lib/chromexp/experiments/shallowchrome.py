"""Notebook 20's experiment: ShallowChrome for one cell type, from peaks to both protocols.

The model (features, logistic fits, selection, patterns) is :mod:`chromexp.baselines.shallowchrome`; this
module chains peak calling (:func:`chromexp.baselines.peaks.call_cell_peaks`), peak features and
:func:`chromexp.baselines.shallowchrome.evaluate` over the chromosome folds and the random thirds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import paths
from ..baselines import peaks
from ..baselines.shallowchrome import (
    CONFIGURATIONS,
    ShallowChromeResult,
    chrom_fold_splits,
    evaluate,
    random_third_splits,
)
from ..data.dataset import load_dataset


@dataclass
class CellTypeRun:
    """Inputs and outputs of ShallowChrome for one cell type (see :func:`run_cell_type`)."""

    cell_type: str
    dataset: object
    marks: tuple[str, ...]
    peak_table: pd.DataFrame
    features: dict[str, np.ndarray]
    result: ShallowChromeResult
    seconds: dict[str, float]


def run_cell_type(params: Mapping, cell_type: str, dataset=None, rules: Sequence[str] | None = None) -> CellTypeRun:
    """Peaks -> features -> both protocols for one cell type, from the merged parameters.

    Parameters
    ----------
    params : mapping
        Merged parameters (``peaks:``, ``shallowchrome:``, ``marks``, ``folds``, ``seed``).
    cell_type : str
        Roadmap EID; its dataset store (notebook 10) must exist unless ``dataset`` is given.
    dataset : CellDataset, optional
        Already loaded dataset (genes with ``gene_id, gene_name, chrom, tss, fold, rpkm``).
    rules : sequence of str, optional
        Label rules (default ``shallowchrome.thresholds``).
    """
    p = params["shallowchrome"]
    if dataset is None:
        dataset = load_dataset(params, cell_type)
    marks = tuple(p["marks"] or params["marks"])
    seconds = {}
    t0 = time.perf_counter()
    peak_table = peaks.call_cell_peaks(params, cell_type, marks)
    seconds["peaks"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    formats = sorted({f for c in p["configurations"] for f in CONFIGURATIONS[c]})
    features = peaks.peak_features(
        paths.peaks_dir(params, cell_type),
        cell_type,
        dataset.genes,
        marks,
        formats,
        flank=int(p["tss_flank"]),
        engine=p["feature_engine"],
    )
    seconds["features"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    splits = {
        "chrom_folds": chrom_fold_splits(dataset, params["folds"]),
        "random_thirds": random_third_splits(len(dataset.genes), int(p["repeats"]), seed=int(params["seed"])),
    }
    result = evaluate(
        features,
        dataset.genes,
        marks,
        cell_type=cell_type,
        splits=splits,
        configurations=p["configurations"],
        rules=tuple(rules or p["thresholds"]),
        valley_bins=int(p["valley_bins"]),
        alpha=float(p["alpha"]),
        max_iter=int(p["max_iter"]),
    )
    seconds["fits"] = time.perf_counter() - t0
    return CellTypeRun(cell_type, dataset, marks, peak_table, features, result, seconds)


def other_cell_type_runs(params: Mapping, cell_type: str) -> tuple[dict[str, CellTypeRun], list[str]]:
    """ShallowChrome (median labels) of the run's other cell types whose dataset store exists.

    Returns
    -------
    runs : dict
        ``{EID: CellTypeRun}`` of the cell types fitted.
    missing : list of str
        The cell types left out because notebook 10 has not built their store yet.
    """
    runs, missing = {}, []
    for other in params["cell_types"]:
        if other == cell_type:
            continue
        if not paths.processed_dir(params, other).exists():
            missing.append(other)
            continue
        runs[other] = run_cell_type(params, other, rules=("median",))
    return runs, missing


def pick_pattern_genes(listed: Sequence[str], runs: Mapping[str, CellTypeRun], n: int = 3) -> list[str]:
    """The genes whose regulative patterns notebook 20 draws.

    The ``listed`` genes (``shallowchrome.pattern_genes``) present in every cell type's dataset;
    when none is (small datasets), the ``n`` genes whose activity label varies most across the
    cell types, ties broken by expression in the first cell type.
    """
    wanted = [g for g in listed if all((r.dataset.genes["gene_name"] == g).any() for r in runs.values())]
    if wanted:
        return wanted
    first = next(iter(runs.values())).dataset.genes
    rpkm = first.set_index("gene_name")["rpkm"]
    lab = pd.DataFrame(
        {c: r.dataset.genes.drop_duplicates("gene_name").set_index("gene_name")["label"] for c, r in runs.items()}
    ).dropna()
    score = lab.var(axis=1).add(rpkm.reindex(lab.index).rank(pct=True) * 1e-3)
    return list(score.sort_values(ascending=False).index[:n])


def answer(metrics: pd.DataFrame, naive_table: pd.DataFrame, provenance: str) -> str:
    """Notebook 20's **Answer** paragraph, written from its test metrics and naive baselines."""
    from ..provenance import provenance_phrase

    auc = metrics.query("metric == 'auroc' and split == 'test' and model == 'shallowchrome'")
    by_scheme = auc.groupby("scheme")["value"].mean()
    naive_best = naive_table.max(axis=1).sort_values(ascending=False)
    parts = ", ".join(f"{v:.3f} ({k.replace('_', ' ')})" for k, v in by_scheme.items())
    return (
        f"**Answer.** {provenance_phrase(provenance)}, ShallowChrome separates active from inactive genes with a "
        f"mean test AUROC of {parts}. Without any model, the mark most correlated with expression is "
        f"{naive_best.index[0]} (|Pearson r| {naive_best.iloc[0]:.3f}) and the least is {naive_best.index[-1]} "
        f"({naive_best.iloc[-1]:.3f})."
    )
