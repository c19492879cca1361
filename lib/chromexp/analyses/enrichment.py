"""eQTL enrichment of the loci a model prioritises (docs/methods.md, "eQTL enrichment"; notebook 70).

The paper's test, per tissue-matched cell type: the distal 2 kb loci of each gene with their
fold-averaged *in silico* perturbation effect (``perturbation_effects.tsv.gz`` of notebook 60) are
split into deciles of |effect|; for each decile, the fraction of loci that contain a fine-mapped
eQTL **of the same gene** is compared with 10,000 random equal-size samples of that cell type's
loci, ``p = (1 + #{random >= observed}) / (1 + 10,000)``, and p-values are adjusted by
Benjamini-Hochberg across cell types within a decile.

Where we differ from the reference code (chromexpress ``qtl_ovrlp``), on purpose:

* the variants are lifted from GRCh38 to hg19 before the overlap (the reference compares GRCh38
  positions with hg19 loci);
* a locus counts once however many eQTLs it holds ("fraction of loci containing an eQTL"; the
  reference counts eQTL-locus matches and divides by all eQTLs of the cell type);
* intervals are 0-based half-open ``[start, end)`` with the 1-based variant position converted
  (the reference compares a 1-based position with a 0-based start, both ends inclusive);
* ``p`` has the +1 correction and counts random samples *at least* as extreme (the reference:
  ``#{random > observed} / 10,000``, which can be 0);
* the effect is the log2 fold change of notebook 60 (the reference ranked a relative change
  divided by the perturbed prediction).

Vectorised sampling: the number of eQTL-carrying loci in a random sample of n of a cell type's
N loci (K of which carry one), drawn without replacement as ``DataFrame.sample(n)`` does, follows
the hypergeometric distribution (N, K, n) exactly, so the 10,000 samples of every decile are drawn
in one ``Generator.hypergeometric`` call instead of 10,000 explicit subsets
(``method="subsets"`` keeps the explicit procedure; tests check both give the same distribution,
``bench/bench_eqtl_enrichment.py`` times them).

Beyond the paper: a distance-matched odds ratio (Mantel-Haenszel over strata of the locus
position, i.e. of its distance to the TSS, with the Robins-Breslow-Greenland 95 % CI and the CMH
test, from ``statsmodels``), so that "closer to the TSS" cannot explain an enrichment; and the
same random-sample test for benchmark locus sets (2 kb bin of maximum histone signal per gene,
pcHi-C fragments counted once each, proximal 2 kb bins within 6 kb of the TSS).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ..results import EFFECT_COLUMNS
from ..utils import get_logger

log = get_logger("chromexp.analyses.enrichment")

LOCUS_COLUMNS = (
    "cell_type",
    "provenance",
    "gene_id",
    "region",
    "position",
    "distance",
    "chrom",
    "start",
    "end",
    "effect",
)
DECILE_COLUMNS = (
    "cell_type",
    "provenance",
    "tissues",
    "decile",
    "n_loci",
    "n_with_eqtl",
    "fraction",
    "random_mean",
    "random_lo",
    "random_hi",
    "p",
    "q",
)
BENCHMARK_COLUMNS = tuple("set" if c == "decile" else c for c in DECILE_COLUMNS)
MATCHED_COLUMNS = ("cell_type", "provenance", "set", "odds_ratio", "ci_low", "ci_high", "p")
EFFECTS_FILE = "perturbation_effects.tsv.gz"


# ----------------------------------------------------------------------------------------------
# loci
# ----------------------------------------------------------------------------------------------
def read_effects(path: str | Path) -> pd.DataFrame:
    """Read a ``perturbation_effects.tsv.gz`` table of notebook 60 and check its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run notebook 60_perturbation for this cell type first.")
    table = pd.read_csv(path, sep="\t", dtype={"chrom": str, "gene_id": str, "region": str})
    missing = [c for c in EFFECT_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: lacks column(s) {missing} of the perturbation_effects contract.")
    return table


def effects_paths(params: Mapping, run_name: str, cell_types: Sequence[str]) -> dict[str, Path]:
    """``results/<run>/<EID>/perturbation_effects.tsv.gz`` of each cell type, all required to exist.

    Raises
    ------
    FileNotFoundError
        Naming notebook 60 and every missing file.
    """
    from .. import paths

    found = {ct: paths.run_dir(params, run_name, ct) / EFFECTS_FILE for ct in cell_types}
    missing = [str(p) for p in found.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            "The perturbation effects of notebook 60_perturbation are missing for the eQTL-matched cell types: "
            f"{', '.join(missing)}. Run notebook 60 first (chromexp batch --notebooks 60 -f <params>)."
        )
    return found


def select_loci(
    effects: pd.DataFrame, mark: str = "H3K27ac", gene_set: str = "active", level: float = 0.0, model: str | None = None
) -> pd.DataFrame:
    """The distal 2 kb loci of one cell type's effects table with their fold-averaged effect.

    Keeps ``region_kind == "distal"``, the given ``mark``, ``gene_set`` and ``level`` (and
    ``model``; ``None`` requires the filtered rows to hold a single model).

    Returns
    -------
    pandas.DataFrame
        :data:`LOCUS_COLUMNS`, one row per (cell_type, gene, region), in a fixed order.

    Raises
    ------
    ValueError
        Nothing left after the filter (the message lists what the table holds), several models,
        a repeated (cell type, gene, region), or a missing effect.
    """
    sel = effects[
        (effects["region_kind"] == "distal")
        & (effects["mark"] == mark)
        & (effects["gene_set"] == gene_set)
        & np.isclose(effects["level"].astype(float), level)
    ]
    if model is not None:
        sel = sel[sel["model"] == model]
    if sel.empty:
        have = effects.groupby(["model", "mark", "gene_set"]).size().index.tolist()
        raise ValueError(
            f"No distal loci for mark {mark!r}, gene set {gene_set!r}, level {level}"
            f"{'' if model is None else f', model {model!r}'}; the effects table holds (model, mark, gene_set) {have}."
        )
    models = sorted(sel["model"].unique())
    if len(models) > 1:
        raise ValueError(f"The effects table holds several models {models} for {mark}; choose one (eqtl.model).")
    key = ["cell_type", "gene_id", "region"]
    if sel.duplicated(key).any():
        raise ValueError(
            f"Repeated (cell_type, gene_id, region) rows, e.g. {sel[sel.duplicated(key)][key].iloc[0].tolist()}."
        )
    if sel["effect"].isna().any():
        raise ValueError(f"{int(sel['effect'].isna().sum())} distal loci have no effect value.")
    out = sel[list(LOCUS_COLUMNS)].sort_values(["cell_type", "chrom", "start", "gene_id"], kind="mergesort")
    return out.reset_index(drop=True)


def window_bins(genes: pd.DataFrame, half_window: int = 20_000, bin_size: int = 2_000) -> pd.DataFrame:
    """Every ``bin_size`` bin of each gene's TSS ± ``half_window`` window, strand-oriented.

    Bin ``position`` 0 is the most upstream (bins of minus-strand genes are reversed, as in the
    dataset store); ``distance`` is the signed distance (bp) from the TSS to the bin centre in
    transcription orientation (negative = upstream).

    Parameters
    ----------
    genes : pandas.DataFrame
        gene_id, chrom, tss (0-based), strand.

    Returns
    -------
    pandas.DataFrame
        gene_id, chrom, position, start, end, distance; n_genes * (2 * half_window // bin_size) rows.
    """
    n = 2 * half_window // bin_size
    g = genes.reset_index(drop=True)
    k = np.tile(np.arange(n), len(g))
    gi = np.repeat(np.arange(len(g)), n)
    plus = g["strand"].to_numpy()[gi] == "+"
    j = np.where(plus, k, n - 1 - k)  # genomic bin index from the window start
    start = g["tss"].to_numpy(np.int64)[gi] - half_window + j * bin_size
    return pd.DataFrame(
        {
            "gene_id": g["gene_id"].to_numpy()[gi],
            "chrom": g["chrom"].to_numpy()[gi],
            "position": k,
            "start": start,
            "end": start + bin_size,
            "distance": -half_window + k * bin_size + bin_size // 2,
        }
    )


def assign_deciles(scores, n_bins: int = 10) -> np.ndarray:
    """Quantile bin (1 = smallest, ``n_bins`` = largest) of each score; tied scores share a bin.

    Bin = ceil(n_bins * r / N) with r the average rank of the score (1..N): independent of the
    input order, equal-size bins when there are no ties, and a block of tied scores goes
    whole into the bin of its average rank (so bins may be unequal or empty; e.g. many loci
    with exactly zero effect).

    Returns
    -------
    numpy.ndarray of int64, shape (n,)
    """
    s = np.asarray(scores, dtype=float)
    if s.size == 0:
        return np.zeros(0, np.int64)
    if np.isnan(s).any():
        raise ValueError("assign_deciles: scores contain NaN.")
    ranks = rankdata(s, method="average")
    return np.clip(np.ceil(n_bins * ranks / s.size - 1e-9), 1, n_bins).astype(np.int64)


# ----------------------------------------------------------------------------------------------
# overlaps
# ----------------------------------------------------------------------------------------------
def count_eqtls(loci: pd.DataFrame, variants: pd.DataFrame) -> np.ndarray:
    """Number of eQTLs of the locus's own gene inside each locus (``start <= pos < end``).

    Parameters
    ----------
    loci : pandas.DataFrame
        gene_id, chrom, start, end (hg19, 0-based half-open).
    variants : pandas.DataFrame
        gene_id, chrom_hg19, pos_hg19 (0-based), one row per (gene, variant).

    Returns
    -------
    numpy.ndarray of int64, shape (n_loci,)
        Sorted keys and two binary searches: O((n_loci + n_variants) log n_variants).
    """
    lk = loci["gene_id"].astype(str) + "|" + loci["chrom"].astype(str)
    vk = variants["gene_id"].astype(str) + "|" + variants["chrom_hg19"].astype(str)
    cats = pd.Index(pd.unique(pd.concat([lk, vk], ignore_index=True)))
    shift = np.int64(1) << np.int64(32)
    v = np.sort(cats.get_indexer(vk).astype(np.int64) * shift + variants["pos_hg19"].to_numpy(np.int64))
    base = cats.get_indexer(lk).astype(np.int64) * shift
    lo = np.searchsorted(v, base + loci["start"].to_numpy(np.int64), side="left")
    hi = np.searchsorted(v, base + loci["end"].to_numpy(np.int64), side="left")
    return (hi - lo).astype(np.int64)


def count_eqtls_bedtools(loci: pd.DataFrame, variants: pd.DataFrame) -> np.ndarray:
    """:func:`count_eqtls` with ``bedtools intersect -c`` semantics (the oracle; needs pybedtools).

    The gene restriction is applied by prefixing the chromosome with the gene id, so bedtools
    only compares a locus with the variants of its own gene.
    """
    import pybedtools

    try:
        a = pybedtools.BedTool.from_dataframe(
            pd.DataFrame(
                {
                    "chrom": loci["gene_id"].astype(str) + "|" + loci["chrom"].astype(str),
                    "start": loci["start"].to_numpy(np.int64),
                    "end": loci["end"].to_numpy(np.int64),
                    "name": np.arange(len(loci)),
                }
            )
        )
        b = pybedtools.BedTool.from_dataframe(
            pd.DataFrame(
                {
                    "chrom": variants["gene_id"].astype(str) + "|" + variants["chrom_hg19"].astype(str),
                    "start": variants["pos_hg19"].to_numpy(np.int64),
                    "end": variants["pos_hg19"].to_numpy(np.int64) + 1,
                }
            )
        )
        out = a.intersect(b, c=True).to_dataframe(header=None, names=["chrom", "start", "end", "name", "count"])
        counts = np.zeros(len(loci), np.int64)
        counts[out["name"].to_numpy(np.int64)] = out["count"].to_numpy(np.int64)
        return counts
    finally:
        pybedtools.cleanup()


# ----------------------------------------------------------------------------------------------
# the random-sample test
# ----------------------------------------------------------------------------------------------
def stream(seed: int, *names) -> np.random.Generator:
    """A generator keyed by ``seed`` and names (cell type, set): results do not depend on order."""
    return np.random.default_rng([int(seed), *(zlib.crc32(str(n).encode()) for n in names)])


def random_counts(
    pool_has, sizes, n_random: int, rng: np.random.Generator, method: str = "hypergeometric"
) -> np.ndarray:
    """Number of eQTL-carrying loci in ``n_random`` random samples (without replacement) per size.

    Parameters
    ----------
    pool_has : array of bool, shape (N,)
        Whether each locus of the pool (the cell type's loci) carries an eQTL.
    sizes : array of int, shape (n_sets,)
        Sample sizes (each <= N).
    method : str
        ``"hypergeometric"`` (exact distribution, vectorised) or ``"subsets"`` (explicit random
        subsets, the reference's procedure; slow).

    Returns
    -------
    numpy.ndarray of int64, shape (n_sets, n_random)
    """
    pool_has = np.asarray(pool_has, bool)
    sizes = np.asarray(sizes, np.int64)
    n, k = pool_has.size, int(pool_has.sum())
    if (sizes > n).any() or (sizes < 0).any():
        raise ValueError(f"random samples of sizes {sizes.tolist()} cannot be drawn from a pool of {n} loci.")
    if method == "hypergeometric":
        return rng.hypergeometric(k, n - k, sizes[:, None] * np.ones((1, n_random), np.int64)).astype(np.int64)
    if method == "subsets":
        out = np.empty((sizes.size, n_random), np.int64)
        for i, m in enumerate(sizes):
            for b in range(n_random):
                out[i, b] = pool_has[rng.choice(n, size=int(m), replace=False)].sum()
        return out
    raise ValueError(f"Unknown method {method!r}; use 'hypergeometric' or 'subsets'.")


def empirical_p(observed, random) -> np.ndarray:
    """``(1 + #{random >= observed}) / (1 + n_random)`` per row of ``random`` (shape (n_sets, n_random))."""
    observed = np.asarray(observed)
    random = np.atleast_2d(random)
    return (1.0 + (random >= observed[:, None]).sum(axis=1)) / (1.0 + random.shape[1])


def benjamini_hochberg(p) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q); NaN entries stay NaN and are not counted."""
    p = np.asarray(p, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return q
    pv = p[ok]
    order = np.argsort(pv, kind="mergesort")
    scaled = pv[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    q[ok] = out
    return q


def set_tests(
    set_has: Sequence[np.ndarray],
    pool_has: np.ndarray,
    n_random: int,
    rng: np.random.Generator,
    method: str = "hypergeometric",
) -> pd.DataFrame:
    """The random-sample test for several locus sets against one pool.

    Parameters
    ----------
    set_has : sequence of bool arrays
        Per set, whether each of its loci carries an eQTL of its gene.
    pool_has : bool array
        The same for every locus of the pool (the cell type's distal loci).

    Returns
    -------
    pandas.DataFrame
        One row per set: n_loci, n_with_eqtl, fraction, random_mean, random_lo, random_hi
        (2.5 and 97.5 percentiles of the random fractions), p.
    """
    sizes = np.array([len(h) for h in set_has], np.int64)
    observed = np.array([int(np.sum(h)) for h in set_has], np.int64)
    draws = random_counts(pool_has, sizes, n_random, rng, method)
    denom = np.maximum(sizes, 1)[:, None]
    frac = draws / denom
    return pd.DataFrame(
        {
            "n_loci": sizes,
            "n_with_eqtl": observed,
            "fraction": np.where(sizes > 0, observed / np.maximum(sizes, 1), np.nan),
            "random_mean": np.where(sizes > 0, frac.mean(axis=1), np.nan),
            "random_lo": np.where(sizes > 0, np.percentile(frac, 2.5, axis=1), np.nan),
            "random_hi": np.where(sizes > 0, np.percentile(frac, 97.5, axis=1), np.nan),
            "p": np.where(sizes > 0, empirical_p(observed, draws), np.nan),
        }
    )


def decile_tests(
    loci: pd.DataFrame,
    has: np.ndarray,
    tissues: Mapping[str, Sequence[str]],
    n_random: int = 10_000,
    seed: int = 0,
    score: str = "effect",
    n_bins: int = 10,
    method: str = "hypergeometric",
) -> pd.DataFrame:
    """The paper's test: per cell type, deciles of |score| vs random samples; BH per decile.

    Parameters
    ----------
    loci : pandas.DataFrame
        :func:`select_loci` output (several cell types allowed) with a ``score`` column.
    has : bool array, shape (n_loci,)
        Whether each locus holds an eQTL of its gene in its cell type's tissues.
    tissues : mapping
        cell type -> eQTL tissues (for the table).

    Returns
    -------
    pandas.DataFrame
        :data:`DECILE_COLUMNS`, one row per (cell type, decile 1..n_bins); ``q`` = BH across
        cell types within each decile (empty deciles, from ties, have NaN p and are not counted).
    """
    has = np.asarray(has, bool)
    rows = []
    for ct, idx in loci.groupby("cell_type", sort=True).indices.items():
        decile = assign_deciles(np.abs(loci[score].to_numpy(float)[idx]), n_bins)
        h = has[idx]
        sets = [h[decile == d] for d in range(1, n_bins + 1)]
        res = set_tests(sets, h, n_random, stream(seed, ct, "deciles", score), method)
        res.insert(0, "decile", np.arange(1, n_bins + 1))
        res.insert(0, "tissues", ";".join(tissues.get(ct, [])))
        res.insert(0, "provenance", loci["provenance"].to_numpy()[idx][0])
        res.insert(0, "cell_type", ct)
        rows.append(res)
    table = pd.concat(rows, ignore_index=True)
    table["q"] = np.nan
    for _, idx in table.groupby("decile").indices.items():
        table.loc[table.index[idx], "q"] = benjamini_hochberg(table["p"].to_numpy()[idx])
    return table[list(DECILE_COLUMNS)]


def distance_matched_odds_ratio(in_set, has, strata) -> dict[str, float]:
    """Mantel-Haenszel odds ratio of carrying an eQTL, in the set vs out of it, within strata.

    Parameters
    ----------
    in_set, has : bool arrays, shape (n,)
        Set membership and eQTL presence of every candidate locus.
    strata : array, shape (n,)
        Stratum of each locus (its position relative to the TSS): the comparison is only ever
        between loci at the same distance. Strata without loci both in and out of the set carry
        no information and are dropped.

    Returns
    -------
    dict
        odds_ratio, ci_low, ci_high (95 %, Robins-Breslow-Greenland), p (Cochran-Mantel-Haenszel
        test of OR = 1, two-sided, from ``statsmodels``), n_strata; NaN when undefined.
    """
    from statsmodels.stats.contingency_tables import StratifiedTable

    in_set = np.asarray(in_set, bool)
    has = np.asarray(has, bool)
    strata = np.asarray(strata)
    tables = []
    for s in np.unique(strata):
        m = strata == s
        a = int((in_set & has & m).sum())
        b = int((in_set & ~has & m).sum())
        c = int((~in_set & has & m).sum())
        d = int((~in_set & ~has & m).sum())
        if (a + b) == 0 or (c + d) == 0:
            continue
        tables.append(np.array([[a, b], [c, d]], float))
    nan = {"odds_ratio": np.nan, "ci_low": np.nan, "ci_high": np.nan, "p": np.nan, "n_strata": len(tables)}
    if not tables:
        return nan
    st = StratifiedTable(tables)
    num = sum(t[0, 0] * t[1, 1] / t.sum() for t in tables)
    den = sum(t[0, 1] * t[1, 0] / t.sum() for t in tables)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = float(st.test_null_odds(correction=True).pvalue)
    if num == 0 or den == 0:  # OR of 0 or infinity (or undefined): no finite estimate, no CI
        out = dict(nan, p=p)
        out["odds_ratio"] = 0.0 if den > 0 else (np.inf if num > 0 else np.nan)
        return out
    lo, hi = st.oddsratio_pooled_confint(alpha=0.05)
    return {
        "odds_ratio": float(st.oddsratio_pooled),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "p": p,
        "n_strata": len(tables),
    }


# ----------------------------------------------------------------------------------------------
# benchmark locus sets and the planted truth
# ----------------------------------------------------------------------------------------------
def max_activity_loci(bins: pd.DataFrame, signal: np.ndarray, distal_only: bool = True) -> pd.DataFrame:
    """Per gene, the 2 kb bin of maximum histone signal in its ±20 kb window.

    Parameters
    ----------
    bins : pandas.DataFrame
        :func:`window_bins` of the genes (n_genes * n_bins rows, gene-major, position order).
    signal : numpy.ndarray, shape (n_genes, n_bins)
        The mark's binned signal (dataset store, 2 kb resolution, strand-oriented).
    distal_only : bool
        Only the distal bins (positions outside the promoter bins 8-11) compete, so the set is
        drawn from the same candidates as the model's deciles (and can be distance-matched).

    Returns
    -------
    pandas.DataFrame
        One row of ``bins`` per gene with signal (genes whose candidate bins are all zero are
        left out; their number is in ``attrs["no_signal"]``); ties: the most upstream bin.
    """
    signal = np.asarray(signal, float)
    n_genes, n = signal.shape
    if len(bins) != n_genes * n:
        raise ValueError(f"bins has {len(bins)} rows, expected {n_genes} genes x {n} bins.")
    s = signal.copy()
    if distal_only:
        s[:, PROMOTER_POSITIONS] = -np.inf
    best = np.argmax(s, axis=1)
    has_signal = s[np.arange(n_genes), best] > 0
    rows = np.flatnonzero(has_signal) * n + best[has_signal]
    out = bins.iloc[rows].reset_index(drop=True)
    out.attrs["no_signal"] = int((~has_signal).sum())
    return out


#: Positions (2 kb bins) of the promoter in the 40 kb window (TSS ± 4 kb; docs/methods.md, "eQTL enrichment").
PROMOTER_POSITIONS = np.arange(8, 12)


def proximal_loci(bins: pd.DataFrame, max_distance: int = 6_000) -> pd.DataFrame:
    """The 2 kb bins whose centre lies within ``max_distance`` of the TSS."""
    return bins[bins["distance"].abs() <= max_distance].reset_index(drop=True)


def planted_locus_effect(loci: pd.DataFrame, enhancers: pd.DataFrame, cell_type: str) -> np.ndarray:
    """The planted truth as an "effect" per locus (semi-synthetic data only).

    The effect of a locus is the summed contribution (log2 units) in ``cell_type`` of the locus
    gene's own planted enhancers that overlap it.

    Parameters
    ----------
    loci : pandas.DataFrame
        gene_id, start, end.
    enhancers : pandas.DataFrame
        ``truth/enhancers.tsv.gz`` (gene_id, center, width, ``contribution_<EID>``).
    """
    col = f"contribution_{cell_type}"
    if col not in enhancers.columns:
        raise ValueError(f"The planted enhancers have no {col} column (cell type not simulated).")
    e = enhancers[["gene_id", "center", "width", col]].copy()
    e["e_start"] = (e["center"] - e["width"] / 2).astype(float)
    e["e_end"] = (e["center"] + e["width"] / 2).astype(float)
    left = loci[["gene_id", "start", "end"]].reset_index(drop=True).reset_index(names="_row")
    m = left.merge(e, on="gene_id")
    m = m[(m["e_start"] < m["end"]) & (m["e_end"] > m["start"])]
    total = m.groupby("_row")[col].sum()
    out = np.zeros(len(loci))
    out[total.index.to_numpy()] = total.to_numpy()
    return out


def benchmark_sets(
    ds, gene_ids: Sequence[str], mark: str, proximal_max: int = 6_000, distal_only: bool = True
) -> dict[str, pd.DataFrame]:
    """The benchmark locus sets of one cell type, from its dataset store.

    Parameters
    ----------
    ds : chromexp.data.dataset.CellDataset
        The cell type's store (genes, 2 kb binned signal, pCREs).
    gene_ids : sequence of str
        The genes of the test (those of the effects table's gene set).
    mark : str
        Mark whose 2 kb signal picks the max-activity bin.

    Returns
    -------
    dict
        ``max_activity`` (one 2 kb bin per gene), ``pchic`` (the gene's pCRE fragments used by
        the model, each once), ``proximal`` (2 kb bins within ``proximal_max`` of the TSS): each a
        table with gene_id, chrom, start, end (and position/distance for 2 kb bins).
    """
    sel = np.flatnonzero(ds.genes["gene_id"].isin(set(gene_ids)).to_numpy())
    genes = ds.genes.iloc[sel].reset_index(drop=True)
    bins = window_bins(genes, ds.half_window, 2000)
    signal = ds.promoter(marks=[mark], resolution=2000, genes=sel)[:, 0, :]
    pc = ds.pcre_table()
    pc = pc[pc["gene_id"].isin(set(genes["gene_id"]))]
    pc = pc.drop_duplicates(["gene_id", "chrom", "start", "end"])[["gene_id", "chrom", "start", "end"]]
    return {
        "max_activity": max_activity_loci(bins, signal, distal_only=distal_only),
        "pchic": pc.reset_index(drop=True),
        "proximal": proximal_loci(bins, proximal_max),
    }


def check_locus_geometry(loci: pd.DataFrame, genes: pd.DataFrame, half_window: int = 20_000) -> None:
    """Raise unless each locus's (chrom, start, end, distance) is its gene's 2 kb bin ``position``.

    Guards the hand-over from notebook 60: the loci must be the bins of the dataset's windows.
    """
    bins = window_bins(genes[genes["gene_id"].isin(set(loci["gene_id"]))], half_window, 2000)
    m = loci.merge(bins, on=["gene_id", "position"], how="left", suffixes=("", "_expected"))
    bad = (
        m["start_expected"].isna()
        | (m["chrom"] != m["chrom_expected"])
        | (m["start"] != m["start_expected"])
        | (m["end"] != m["end_expected"])
        | (m["distance"] != m["distance_expected"])
    )
    if bad.any():
        row = m[bad].iloc[0]
        raise ValueError(
            f"{int(bad.sum())} loci do not match their gene's 2 kb bin, e.g. {row['gene_id']} position "
            f"{row['position']}: {row['chrom']}:{row['start']}-{row['end']} (distance {row['distance']}), expected "
            f"{row['chrom_expected']}:{row['start_expected']}-{row['end_expected']} (distance {row['distance_expected']})."
        )
