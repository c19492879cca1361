"""The statistics every analysis shares: one Benjamini–Hochberg, one seeded bootstrap over genes.

* :func:`benjamini_hochberg` — BH q-values (the FDR of notebooks 70, 80 and 90); NaN p-values stay
  NaN and are not counted in the number of tests. Tested against ``statsmodels``'
  ``multipletests(method="fdr_bh")``.
* :func:`bootstrap_ci` / :func:`bootstrap_indices` — the seeded percentile bootstrap behind every
  "95 % CI over genes" of the figures (same input, same seed, same interval).
* :func:`gene_summary` — the mean of a value per group with that CI, a gene's rows averaged first
  (the Fig. 6 summaries of notebooks 60 and 90, :mod:`chromexp.analyses.effects`).

Before this module the correction was written three times (``ldsc``, ``enrichment``, ``summary``);
each now asks here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd


def benjamini_hochberg(p: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (q), in the order of ``p``.

    ``q_(i) = min_{j >= i} min(1, p_(j) / (j / m))`` over the ``m`` finite p-values sorted
    ascending; NaN (or infinite) entries stay NaN and do not count in ``m``. The arithmetic is
    ``statsmodels``' (``p / (j / m)``, not ``p * m / j``), so the q-values equal
    ``multipletests(p, method="fdr_bh")[1]`` to the last bit.

    Parameters
    ----------
    p : sequence of float, shape (n,)
        p-values in [0, 1] (NaN allowed).

    Returns
    -------
    numpy.ndarray of float64, shape (n,)
    """
    p = np.asarray(list(p) if not isinstance(p, np.ndarray | pd.Series) else p, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be one-dimensional; got shape {p.shape}.")
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if not len(ok):
        return q
    if (p[ok] < 0).any() or (p[ok] > 1 + 1e-12).any():
        raise ValueError(f"p-values must lie in [0, 1]; got min {p[ok].min()}, max {p[ok].max()}.")
    order = ok[np.argsort(p[ok], kind="mergesort")]
    m = len(order)
    scaled = p[order] / (np.arange(1, m + 1) / float(m))
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q


def bootstrap_indices(rng: np.random.Generator, n: int, n_boot: int, max_cells: int = 2_000_000) -> Iterator:
    """Yield resampling index arrays of shape (chunk, n), ``n_boot`` rows in all, in bounded memory.

    (19,000 genes x 1,000 resamples would otherwise be a 150 MB index array per call.) The
    resamples do not depend on ``max_cells``: the chunks concatenate to the same array.
    """
    chunk = max(1, max_cells // max(n, 1))
    for start in range(0, n_boot, chunk):
        yield rng.integers(0, n, size=(min(chunk, n_boot - start), n))


def bootstrap_ci(
    values: Sequence[float], statistic: Callable = np.mean, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of ``statistic`` over ``values`` (seeded: same input, same CI).

    Non-finite values are left out; returns ``(nan, nan)`` for fewer than two finite values.
    ``statistic`` must accept ``axis=1`` (``np.mean``, ``np.median``).
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boots = np.concatenate([statistic(x[idx], axis=1) for idx in bootstrap_indices(rng, x.size, n_boot)])
    alpha = (1 - level) / 2
    return float(np.quantile(boots, alpha)), float(np.quantile(boots, 1 - alpha))


#: Provenance of rows whose table has no ``provenance`` column (never read as real).
UNKNOWN = "unknown"


def provenance_values(*tables: pd.DataFrame) -> list[str]:
    """Sorted distinct ``provenance`` values of the tables (``"unknown"`` where a table has none).

    Every summary row carries the provenance of the rows it summarises (joined when mixed).
    """
    values: set[str] = set()
    for t in tables:
        if t is None or t.empty:
            continue
        values |= set(t["provenance"].astype(str)) if "provenance" in t.columns else {UNKNOWN}
    return sorted(values)


def fold_count(table: pd.DataFrame) -> float:
    """The number of fold models behind ``table``'s rows (its ``n_folds`` column), when it is one number.

    NaN when the column is absent, empty or holds several numbers.
    """
    folds = sorted(set(table["n_folds"].dropna().astype(int))) if "n_folds" in table.columns else []
    return folds[0] if len(folds) == 1 else np.nan


def gene_summary(
    table: pd.DataFrame,
    by: Sequence[str],
    value: str = "effect",
    gene: str = "gene_id",
    seed: int = 0,
    n_boot: int = 1000,
) -> pd.DataFrame:
    """Mean of ``value`` per group with a bootstrap 95 % CI over genes (a gene's rows averaged first).

    Per group of ``by``: each gene's rows are averaged (e.g. the 16 distal 2 kb regions of a gene),
    then the mean over genes and its seeded percentile bootstrap CI (:func:`bootstrap_ci`, genes
    resampled). ``n_folds`` (when the table has that column, e.g. fold-averaged perturbation
    effects) is the number of fold models behind the group's values if it is the same for all its
    rows, else NaN.

    Returns
    -------
    pandas.DataFrame
        ``*by, n_genes, mean, ci_low, ci_high, n_folds, provenance``; groups in sorted order.
    """
    cols = [*by, "n_genes", "mean", "ci_low", "ci_high", "n_folds", "provenance"]
    if table.empty:
        return pd.DataFrame(columns=cols)
    missing = [c for c in [*by, value, gene] if c not in table.columns]
    if missing:
        raise ValueError(f"gene_summary: the table lacks column(s) {missing}.")
    rows = []
    for key, g in table.groupby(list(by), sort=True, observed=True):
        per_gene = g.groupby(gene)[value].mean()
        lo, hi = bootstrap_ci(per_gene.to_numpy(), seed=seed, n_boot=n_boot)
        rows.append(
            {
                **dict(zip(by, key if isinstance(key, tuple) else (key,))),
                "n_genes": len(per_gene),
                "mean": float(per_gene.mean()),
                "ci_low": lo,
                "ci_high": hi,
                "n_folds": fold_count(g),
                "provenance": ", ".join(provenance_values(g)),
            }
        )
    return pd.DataFrame(rows, columns=cols)


__all__ = [
    "UNKNOWN",
    "benjamini_hochberg",
    "bootstrap_ci",
    "bootstrap_indices",
    "fold_count",
    "gene_summary",
    "provenance_values",
]
