"""Naive correlation baselines (paper Fig. 1A): how much of expression raw promoter signal explains.

For each mark, the mean signal over TSS ± 750 / 1,500 / 3,000 bp (``CellDataset.flank_means``,
``ln(mean depth + 1)``) is correlated with the expression target ``log2(RPKM + 1)`` over the test
genes of each chromosome fold. The paper reports the absolute Pearson r, so that a repressive mark
(negative r) and an activating mark (positive r) can be compared on one axis; the sign is kept in
a separate metric for readers who want it.

Intended difference from chromexpress: we correlate ``ln(mean depth over TSS ± flank + 1)``, one
mean taken over the whole window of per-base depth; chromexpress averaged the ``ln``-transformed
100 bp bins within the window (a mean of logs, which weighs low-signal bins more). Both rank genes
by promoter signal; the values, and so the correlations, differ somewhat. Not yet implemented as
an option.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from ..constants import FOLD_CHROMS
from ..metrics import pearson_r, tidy_metrics
from ..results import METRIC_COLUMNS

#: Flanks (bp each side of the TSS) of the paper's naive baselines.
NAIVE_FLANKS: tuple[int, ...] = (750, 1500, 3000)


def naive_model_name(flank: int) -> str:
    """Model name of the naive baseline with half-width ``flank`` (``"naive_tss750"``)."""
    return f"naive_tss{int(flank)}"


def naive_correlations(
    dataset,
    marks: Sequence[str] | None = None,
    flanks: Iterable[int] = NAIVE_FLANKS,
    folds: Iterable[int] = (1, 2, 3, 4),
) -> pd.DataFrame:
    """|Pearson r| between each mark's mean TSS-flank signal and log2 expression, per fold.

    Parameters
    ----------
    dataset : chromexp.data.dataset.CellDataset
        Needs ``.cell_type``, ``.marks``, ``.genes`` (with a ``target`` column),
        ``.flank_means(marks, flank)`` -> float array (n_genes, n_marks) and ``.split(fold)``.
    marks : sequence of str, optional
        Marks to evaluate (default: all marks of the dataset), each as a single-mark baseline.
    flanks : iterable of int
        Half-widths in bp (default 750, 1500, 3000 as in the paper).
    folds : iterable of int
        Chromosome folds; the correlation of fold k is computed over fold k's test genes
        (``dataset.split(k)["test"]``), i.e. the genes a fold-k model is evaluated on.

    Returns
    -------
    pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``): one row per (flank, mark, fold) with
        ``model = "naive_tss<flank>"``, ``metric = "abs_pearson_r"``, ``scheme = "chrom_folds"``,
        ``split = "test"``. NaN when a mark is constant over a fold's genes (e.g. no reads).
    """
    marks = tuple(dataset.marks) if marks is None else tuple([marks] if isinstance(marks, str) else marks)
    unknown = [m for m in marks if m not in dataset.marks]
    if unknown:
        raise ValueError(f"Mark(s) {unknown} are not in the dataset of {dataset.cell_type} (it has {dataset.marks}).")
    flanks = tuple(int(f) for f in flanks)
    if not flanks or any(f <= 0 for f in flanks):
        raise ValueError(f"'flanks' must be positive half-widths in bp; got {flanks}.")
    folds = tuple(int(k) for k in folds)
    bad = [k for k in folds if k not in FOLD_CHROMS]
    if bad or not folds:
        raise ValueError(f"'folds' must be among {tuple(FOLD_CHROMS)}; got {folds}.")
    if "target" not in dataset.genes.columns:
        raise ValueError("The dataset's gene table has no 'target' column (log2(RPKM + 1)).")
    target = dataset.genes["target"].to_numpy(dtype=np.float64)

    tables = []
    for flank in flanks:
        x = np.asarray(dataset.flank_means(list(marks), flank), dtype=np.float64)
        if x.shape != (len(target), len(marks)):
            raise ValueError(
                f"flank_means({list(marks)}, {flank}) returned shape {x.shape}; expected {(len(target), len(marks))}."
            )
        for fold in folds:
            test = np.asarray(dataset.split(fold)["test"], dtype=np.int64)
            for j, mark in enumerate(marks):
                r = pearson_r(target[test], x[test, j]) if test.size >= 2 else float("nan")
                tables.append(
                    tidy_metrics(
                        {"abs_pearson_r": abs(r), "pearson_r_signed": r},
                        cell_type=dataset.cell_type,
                        model=naive_model_name(flank),
                        marks=mark,
                        scheme="chrom_folds",
                        fold=fold,
                        split="test",
                        n_genes=int(test.size),
                    )
                )
    if not tables:
        return pd.DataFrame(columns=list(METRIC_COLUMNS))
    return pd.concat(tables, ignore_index=True)
