"""The embedded semi-synthetic mini-Roadmap (docs/methods.md, "Semi-synthetic data"): real genes and expression, simulated reads.

:func:`generate` writes, deterministically from ``params["seed"]`` and the preset
``params["data"]["preset"]`` (sizes and model knobs in the ``simulate:`` block of
``params/defaults.yaml``), the raw inputs of one dataset in the real Roadmap file formats into
:func:`chromexp.paths.raw_dir`::

    genes.tsv                      gene_id gene_name chrom tss strand gene_length (real hg19 genes)
    57epigenomes.RPKM.pc.gz        gene_id + one RPKM column per EID (the real Roadmap values)
    {EID}-{MARK}.tagAlign.gz       simulated 36 bp reads (BED6), one file per cell type and mark
    hg19.chrom.sizes               the chromosomes the dataset uses
    pchic/{TISSUE}.tsv.gz          simulated promoter-capture Hi-C fragment pairs
    truth/                         what was planted: enhancers, per-gene latent states, interactions
                                   (and, simulator version 2, the decoys)
    manifest.json                  preset, seed, parameters and sha256 of every file (written last)

Generative model (stated in full in ``notebooks/00_demo_data``)
---------------------------------------------------------------
For gene g in cell type c, e_gc = log2(RPKM_gc + 1) is the *real* Roadmap value. Each gene's
promoter-capture Hi-C fragments may carry an enhancer with effect beta (log2 units) that is
active in c with a probability rising with e_gc; the active enhancers explain part of e_gc,
C_gc = sum(beta * active) (at most ``enhancer_max_share`` of e_gc), and the promoter carries the
rest, p_gc = e_gc - C_gc. Promoter activity a_gc = sigmoid((p_gc - activity_midpoint) /
activity_scale). The expected per-base read depth of mark m is

    D_m(x) = b_m * B_shared(x) * B_mc(x) * (1 - ndr_m * a_gc * NDR(x))  +  sum_g S_mg(x)  +  sum_e E_me(x)

with a regional background (b_m from the real E003 depth; B are piecewise-constant log-normal
factors over ``block_size`` bp), a nucleosome-depleted dip at active TSSs, gene terms S (promoter
peaks scaled by a_gc for H3K4me3/H3K9ac/H3K27ac, H3K4me1 flanking the TSS, H3K36me3 over the
transcribed body ramping up over a few kb, a broad H3K27me3 domain over repressed Polycomb
targets, H3K9me3 heterochromatin patches weakly more frequent at inactive genes) and enhancer
terms E (H3K4me1 primed and active, H3K27ac active only). Gene terms carry per-gene log-normal
noise; real genes outside the preset whose window or body reaches the simulated regions add
their own terms from their own real expression (:func:`context_genes`). The NDR dip applies to
``ndr_marks``. Reads are drawn per ``grid_step`` cell as Poisson(D * gamma noise * step / read_length)
with uniform starts and random strand. Nothing in the model refers to cell states or ranks marks:
the same mechanism runs in every cell type, driven only by that cell type's real expression.

Fine-mapped eQTLs are planted by :mod:`chromexp.simulate.eqtl` (anchored on the planted enhancers,
written to ``eqtl/`` in GRCh38 with a simulated chain file); GWAS simulation is not part of this
module yet.

Simulator versions (``data.simulator_version``; docs/methods.md, "Simulator versions")
---------------------------------------------------------------------------------------
Version 1 is the model above, byte for byte as before the switch existed. Version 2 adds
**decoys** (:func:`plant_decoys`, ``truth/decoys.tsv.gz``): acetylated elements beside each gene
and on its contacted pcHi-C fragments that regulate no simulated gene -- active enhancers of a
neighbouring gene and acetylated non-regulatory sites -- drawn from streams of their own, so that
the H3K27ac signal of a distal bin no longer identifies a planted enhancer by itself. A new
version adds a feature to :data:`chromexp.constants.SIMULATOR_VERSIONS` and tests it with
:func:`chromexp.simulate.common.has_feature`; released versions never change.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import gzip
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from ..constants import CELL_TYPES, CHROMOSOMES, MARKS, PCHIC_TISSUE
from ..data.io import EID_PATTERN, read_expression_table
from ..utils import check_removable, file_sha256, get_logger, remove_stale_temporaries
from ..utils import die_with_parent as _die_with_parent
from . import eqtl as simulate_eqtl
from .common import gzip_bytes, has_feature, seeded_rng, simulator_version, table_bytes

log = get_logger("chromexp.simulate.roadmap")

#: The internal revision of simulator version 1 (written into every manifest as before). The
#: generative model now changes only under a new ``data.simulator_version``
#: (:data:`chromexp.constants.SIMULATOR_VERSIONS`), never in place, so old data stay reproducible.
MODEL_VERSION = 3

#: Header of the pcHi-C tables (data contract, docs/data-formats.md, "Inputs").
PCHIC_COLUMNS = ("bait_chrom", "bait_start", "bait_end", "other_chrom", "other_start", "other_end", "frequency")
GENE_COLUMNS = ("gene_id", "gene_name", "chrom", "tss", "strand", "gene_length")


# ----------------------------------------------------------------------------------------------
# small deterministic helpers (seeded generators and byte-stable writers: chromexp.simulate.common)
# ----------------------------------------------------------------------------------------------
def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def format_tagalign(chrom: str, starts: np.ndarray, minus: np.ndarray, read_length: int) -> bytes:
    """Format reads as BED6 tagAlign lines ``chrom start end N 1000 strand`` (vectorised).

    Parameters
    ----------
    chrom : str
        Chromosome of every read.
    starts : numpy.ndarray of int, shape (n_reads,)
        0-based read starts.
    minus : numpy.ndarray of bool, shape (n_reads,)
        True for reads on the minus strand.
    read_length : int
        Read length (end = start + read_length).

    Returns
    -------
    bytes
        ``n_reads`` newline-terminated lines (ASCII).
    """
    starts = np.asarray(starts, dtype=np.int64)
    n = len(starts)
    if n == 0:
        return b""
    if starts.min() < 0:
        raise ValueError("format_tagalign: read starts must be >= 0.")
    ends = starts + int(read_length)
    if ends.max() >= 2**32:
        raise ValueError("format_tagalign: coordinates must be below 2**32.")
    width = len(str(int(ends.max())))
    prefix = np.frombuffer((chrom + "\t").encode(), np.uint8)
    middle = np.frombuffer(b"\tN\t1000\t", np.uint8)
    thresholds = 10 ** np.arange(1, width, dtype=np.int64)  # 10, 100, ...: n_digits = 1 + #{t <= v}

    def digits(values):
        # (n, width) ASCII digits, zero padded (uint32 arithmetic is ~10x faster than int64 here),
        # plus a mask that drops the leading zeros
        out = np.empty((n, width), np.uint8)
        v = values.astype(np.uint32)
        for k in range(width - 1, -1, -1):
            q = v // 10
            out[:, k] = v - q * 10 + 48
            v = q
        n_digits = 1 + np.searchsorted(thresholds, values, side="right")
        keep = np.arange(width)[None, :] >= (width - n_digits)[:, None]
        return out, keep

    s_dig, s_keep = digits(starts)
    e_dig, e_keep = digits(ends)
    cols = [
        np.broadcast_to(prefix, (n, len(prefix))),
        s_dig,
        np.full((n, 1), 9, np.uint8),
        e_dig,
        np.broadcast_to(middle, (n, len(middle))),
        np.where(np.asarray(minus, bool), ord("-"), ord("+")).astype(np.uint8)[:, None],
        np.full((n, 1), 10, np.uint8),
    ]
    keeps = [
        np.ones((n, len(prefix)), bool),
        s_keep,
        np.ones((n, 1), bool),
        e_keep,
        np.ones((n, len(middle)), bool),
        np.ones((n, 1), bool),
        np.ones((n, 1), bool),
    ]
    mat = np.concatenate(cols, axis=1)
    keep = np.concatenate(keeps, axis=1)
    return mat[keep].tobytes()


# ----------------------------------------------------------------------------------------------
# genes
# ----------------------------------------------------------------------------------------------
def load_real_genes() -> pd.DataFrame:
    """The vendored real gene table with RPKM of the 11 cell types, cleaned for simulation.

    Genes with unknown strand (``.``), unknown gene length, a chromosome outside chr1-22/X/Y,
    or a repeated gene_id (identical rows, second copy) are excluded, and the counts are logged.

    Returns
    -------
    pandas.DataFrame
        Columns gene_id, gene_name, chrom, tss, strand, gene_length (int64), then one RPKM
        column per EID; sorted by chromosome (CHROMOSOMES order) and TSS.
    """
    path = paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz"
    table = pd.read_csv(path, sep="\t", dtype={"chrom": str, "strand": str, "gene_id": str, "gene_name": str})
    n0 = len(table)
    excluded = {
        "unknown strand": ~table["strand"].isin(["+", "-"]),
        "unknown gene length": table["gene_length"].isna(),
        "chromosome not in chr1-22, X, Y": ~table["chrom"].isin(CHROMOSOMES),
        "repeated gene_id": table["gene_id"].duplicated(keep="first"),
    }
    drop = np.zeros(n0, bool)
    for reason, mask in excluded.items():
        new = mask.to_numpy() & ~drop
        if new.any():
            log.info("excluding %d of %d real genes: %s", int(new.sum()), n0, reason)
        drop |= new
    table = table.loc[~drop].copy()
    table["tss"] = table["tss"].astype(np.int64)
    table["gene_length"] = table["gene_length"].astype(np.int64)
    order = {c: i for i, c in enumerate(CHROMOSOMES)}
    table["_o"] = table["chrom"].map(order)
    table = table.sort_values(["_o", "tss", "gene_id"], kind="mergesort").drop(columns="_o")
    return table.reset_index(drop=True)


def select_genes(
    table: pd.DataFrame, n_genes: int | None, seed: int, complete_chromosomes: Sequence[str] = ()
) -> pd.DataFrame:
    """Choose ``n_genes`` genes spread over every chromosome (and so every fold), deterministically.

    Each chromosome gets a share proportional to its number of genes (at least one while
    ``n_genes`` allows); within a chromosome, genes are taken evenly spaced along the sorted TSS
    list from a seeded offset, so windows overlap only as often as real neighbouring genes do.
    Every gene of ``complete_chromosomes`` is taken and counts towards ``n_genes``; the rest are
    spread over the other chromosomes as above (with none, the selection is the one without the
    argument, gene for gene).

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`load_real_genes` (sorted by chromosome and TSS).
    n_genes : int or None
        Number of genes; ``None`` (or more than available) keeps every gene.
    seed : int
        Seed of the offsets.
    complete_chromosomes : sequence of str
        Chromosomes whose genes are all kept (notebook 80's real LD reference covers chr21/chr22).

    Returns
    -------
    pandas.DataFrame
        The selected rows, in the order of ``table``.
    """
    if n_genes is None or n_genes >= len(table):
        return table.reset_index(drop=True)
    if n_genes < 1:
        raise ValueError(f"simulate: n_genes must be >= 1 or null (all genes), got {n_genes}.")
    complete = list(dict.fromkeys(complete_chromosomes))
    if complete:
        unknown = sorted(set(complete) - set(table["chrom"]))
        if unknown:
            raise ValueError(f"simulate: complete_chromosomes {unknown} have no genes in the gene table.")
        whole = table["chrom"].isin(complete).to_numpy()
        if whole.sum() >= n_genes:
            raise ValueError(
                f"simulate: complete_chromosomes {complete} hold {int(whole.sum())} genes, not fewer than "
                f"n_genes = {n_genes}."
            )
        rest = select_genes(table[~whole], n_genes - int(whole.sum()), seed)
        keep = pd.concat([table[whole], rest])
        order = {c: i for i, c in enumerate(CHROMOSOMES)}
        keep = keep.assign(_o=keep["chrom"].map(order))
        return keep.sort_values(["_o", "tss", "gene_id"], kind="mergesort").drop(columns="_o").reset_index(drop=True)
    counts = table.groupby("chrom", sort=False).size()
    share = counts / counts.sum() * n_genes
    alloc = np.floor(share).astype(int)
    if n_genes >= len(counts):
        alloc = alloc.clip(lower=1)
    # hand out the remainder by largest fractional part (ties by chromosome order)
    remainder = n_genes - int(alloc.sum())
    if remainder > 0:
        frac = (share - np.floor(share)).sort_values(ascending=False, kind="mergesort")
        for chrom in frac.index[:remainder]:
            alloc[chrom] += 1
    while alloc.sum() > n_genes:  # the clip(lower=1) may overshoot: take from the largest
        alloc[alloc.idxmax()] -= 1
    alloc = np.minimum(alloc, counts)
    rng = seeded_rng(seed, "select_genes")
    keep = []
    for chrom, group in table.groupby("chrom", sort=False):
        k = int(alloc[chrom])
        if k == 0:
            continue
        stride = len(group) / k
        idx = (np.floor(rng.random() * stride + stride * np.arange(k))).astype(int)
        keep.append(group.index.to_numpy()[np.minimum(idx, len(group) - 1)])
    return table.loc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def expression_spread_rank(table: pd.DataFrame) -> pd.Series:
    """Rank in (0, 1) of each gene's sd of log2(RPKM+1) across the 11 cell types (real data).

    Tissue-specific (developmental) genes vary most; the rank feeds the Polycomb-target
    probability in :func:`gene_latents`. Computed over the whole vendored table, so a gene's
    rank does not depend on the preset.
    """
    eids = [c for c in table.columns if EID_PATTERN.match(c)]  # the vendored table's own RPKM columns
    spread = np.log2(table[eids].to_numpy(float) + 1.0).std(axis=1)
    rank = (pd.Series(spread).rank(method="average").to_numpy() - 0.5) / max(len(table), 1)
    return pd.Series(rank, index=table["gene_id"].to_numpy()).groupby(level=0).first()


def gene_latents(
    genes: pd.DataFrame,
    spread_rank: pd.Series,
    knobs: Mapping[str, Any],
    seed: int,
    recalibration: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Cell-type-agnostic hidden properties of each gene (the same in every cell type and preset).

    Drawn from a generator keyed by (seed, gene_id), so a gene's hidden state does not depend
    on which other genes are simulated:

    * ``cpg``: CpG-island-like promoter (keeps basal promoter marks when inactive and can be a
      Polycomb target), Bernoulli(``p_cpg``);
    * ``polycomb``: Polycomb target (H3K27me3 domain), for CpG promoters with probability
      ``p_polycomb`` * (0.5 + rank of the gene's real cross-cell-type expression spread);
    * ``noise_<mark>``: log-normal gene-level amplitude factors (a shared and a mark-specific part);
    * ``k27_width``, ``k27_offset``: width and centre of the H3K27me3 domain;
    * ``k9_domain``, ``k9_offset``: uniform draw deciding an H3K9me3 patch, and its centre;
    * simulator version 3 only (``recalibration`` given): ``k27me3_domain``, whether a gene that is
      not a Polycomb target carries a repressive H3K27me3 domain (probability
      ``e116_calibration.k27me3_domain_p``, from a stream of its own keyed by (seed, gene_id)), and
      ``k27_domain_width``, its width (the same log-normal draw as ``k27_width``, median
      ``e116_calibration.k27me3_domain_width``).

    Parameters
    ----------
    genes : pandas.DataFrame
        Gene table (gene_id first).
    spread_rank : pandas.Series
        :func:`expression_spread_rank`; genes missing from it get 0.5.
    knobs : mapping
        The ``simulate`` block as the simulator version runs it (:func:`simulation_knobs`).
    seed : int
        Dataset seed.
    recalibration : mapping, optional
        The ``e116_calibration`` block (simulator version 3); ``None`` (versions 1-2) returns exactly
        the columns and values those versions always had.
    """
    n = len(genes)
    draws = np.empty((n, 7 + len(MARKS)))
    for i, gid in enumerate(genes["gene_id"].to_numpy()):
        r = seeded_rng(seed, "gene", gid)
        draws[i] = np.concatenate([r.random(3), r.standard_normal(4 + len(MARKS))])
    rank = spread_rank.reindex(genes["gene_id"]).fillna(0.5).to_numpy()
    out = pd.DataFrame({"gene_id": genes["gene_id"].to_numpy()})
    out["cpg"] = draws[:, 0] < knobs["p_cpg"]
    out["polycomb"] = out["cpg"].to_numpy() & (draws[:, 1] < knobs["p_polycomb"] * (0.5 + rank))
    out["k9_domain"] = draws[:, 2]
    out["k27_width"] = knobs["k27me3_domain_width"] * np.exp(0.5 * draws[:, 3])
    out["k27_offset"] = 500.0 + 1500.0 * draws[:, 4]
    out["k9_offset"] = 20_000.0 * np.tanh(draws[:, 5])
    for j, mark in enumerate(MARKS):
        out[f"noise_{mark}"] = np.exp(
            knobs["gene_noise_shared"] * draws[:, 6] + knobs["gene_noise_mark"] * draws[:, 7 + j]
        )
    if recalibration is not None:
        u = np.array([seeded_rng(seed, "k27me3_domain", gid).random() for gid in out["gene_id"].to_numpy()])
        out["k27me3_domain"] = ~out["polycomb"].to_numpy() & (u < float(recalibration["k27me3_domain_p"]))
        out["k27_domain_width"] = float(recalibration["k27me3_domain_width"]) * np.exp(0.5 * draws[:, 3])
    return out


# ----------------------------------------------------------------------------------------------
# promoter-capture Hi-C structure and planted enhancers
# ----------------------------------------------------------------------------------------------
def _fragments(chrom: str, size: int, median: float, sigma: float, seed: int) -> np.ndarray:
    """HindIII-like restriction fragment boundaries of one chromosome (log-normal lengths)."""
    rng = seeded_rng(seed, "fragments", chrom)
    n = int(size / median * 1.3) + 10
    lengths = np.maximum(np.round(median * np.exp(sigma * rng.standard_normal(n))), 200).astype(np.int64)
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    bounds = bounds[bounds < size]
    return np.append(bounds, size)


def simulate_interactions(
    genes: pd.DataFrame, chrom_sizes: Mapping[str, int], tissues: Sequence[str], knobs: Mapping[str, Any], seed: int
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Promoter-capture Hi-C: a shared interaction structure and one table per tissue.

    Every gene's bait is the restriction fragment containing its TSS. It interacts with
    NegBin(mean ``pchic_mean_interactions``) other fragments (capped at
    ``pchic_max_interactions``, so 0 to more than 8), at log-normal distances (median
    ``pchic_distance_median``); the base normalised frequency is 1.5 + Exp(``pchic_frequency_mean``
    - 1.5). Each tissue keeps an interaction with probability ``pchic_tissue_keep`` and jitters its
    frequency (log-normal, sd ``pchic_tissue_jitter``), never below ``pchic_min_frequency``.

    Returns
    -------
    structure : pandas.DataFrame
        One row per (gene, fragment): gene_id, chrom, bait_start, bait_end, other_start,
        other_end, base_frequency, and ``in_<TISSUE>`` flags and ``freq_<TISSUE>`` values.
    tables : dict
        Tissue -> DataFrame with the :data:`PCHIC_COLUMNS` (one row per distinct bait/other pair).
    """
    rng = seeded_rng(seed, "interactions")
    rows = []
    frag_cache: dict[str, np.ndarray] = {}
    fmin = float(knobs["pchic_min_frequency"])
    for g in genes.itertuples(index=False):
        if g.chrom not in frag_cache:
            frag_cache[g.chrom] = _fragments(
                g.chrom, chrom_sizes[g.chrom], knobs["fragment_median"], knobs["fragment_sigma"], seed
            )
        bounds = frag_cache[g.chrom]
        ib = int(np.searchsorted(bounds, g.tss, side="right") - 1)
        mean = knobs["pchic_mean_interactions"]
        r = knobs["pchic_dispersion"]
        k = min(int(rng.negative_binomial(r, r / (r + mean))), int(knobs["pchic_max_interactions"]))
        if k == 0:
            continue
        dist = knobs["pchic_distance_median"] * np.exp(knobs["pchic_distance_sigma"] * rng.standard_normal(k))
        dist = np.clip(dist, 8_000, 2_000_000) * np.where(rng.random(k) < 0.5, -1, 1)
        pos = np.clip(g.tss + dist, 0, chrom_sizes[g.chrom] - 1).astype(np.int64)
        idx = np.unique(np.searchsorted(bounds, pos, side="right") - 1)
        idx = idx[(idx != ib) & (idx < len(bounds) - 1)]
        freq = fmin + 0.01 + rng.exponential(knobs["pchic_frequency_mean"] - fmin, len(idx))
        for j, f in zip(idx, freq):
            rows.append((g.gene_id, g.chrom, bounds[ib], bounds[ib + 1], bounds[j], bounds[j + 1], f))
    structure = pd.DataFrame(
        rows, columns=["gene_id", "chrom", "bait_start", "bait_end", "other_start", "other_end", "base_frequency"]
    )
    for c in ("bait_start", "bait_end", "other_start", "other_end"):
        structure[c] = structure[c].astype(np.int64)
    tables = {}
    for tissue in tissues:
        trng = seeded_rng(seed, "tissue", tissue)
        n = len(structure)
        keep = trng.random(n) < knobs["pchic_tissue_keep"]
        freq = np.maximum(
            structure["base_frequency"].to_numpy() * np.exp(knobs["pchic_tissue_jitter"] * trng.standard_normal(n)),
            fmin + 0.001,
        )
        structure[f"in_{tissue}"] = keep
        structure[f"freq_{tissue}"] = np.where(keep, freq, 0.0)
        t = pd.DataFrame(
            {
                "bait_chrom": structure["chrom"],
                "bait_start": structure["bait_start"],
                "bait_end": structure["bait_end"],
                "other_chrom": structure["chrom"],
                "other_start": structure["other_start"],
                "other_end": structure["other_end"],
                "frequency": np.round(freq, 4),
            }
        )[keep]
        # two genes sharing a bait fragment share its interactions: one row per fragment pair
        t = t.groupby(list(PCHIC_COLUMNS[:-1]), sort=True, as_index=False)["frequency"].max()
        tables[tissue] = t.reset_index(drop=True)
    return structure, tables


def plant_enhancers(
    genes: pd.DataFrame,
    structure: pd.DataFrame,
    expression: pd.DataFrame,
    cell_types: Sequence[str],
    knobs: Mapping[str, Any],
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Plant enhancers on pcHi-C fragments and inside gene windows; split expression into parts.

    Each (gene, pcHi-C fragment) pair carries an enhancer with probability ``p_enhancer_pchic``;
    each gene also has Poisson(``local_enhancers``) enhancers 2-20 kb from its TSS. An enhancer
    has a centre, a width and an effect beta (log2 units; larger for higher interaction
    frequency). It is active in cell type c with probability
    sigmoid(``enhancer_activity_bias`` + ``enhancer_activity_slope`` * (e_gc - 2)), and only if
    the interaction exists in c's pcHi-C tissue. The active enhancers' betas add up to
    C_gc = min(sum beta, ``enhancer_max_share`` * e_gc) (contributions scaled down
    proportionally at the cap); the promoter drive is p_gc = e_gc - C_gc.

    Returns
    -------
    enhancers : pandas.DataFrame
        enhancer_id, gene_id, kind (pchic/local), chrom, center, width, effect_log2,
        fragment_start, fragment_end (-1 for local), then ``active_<EID>`` (bool) and
        ``contribution_<EID>`` (log2 units) per cell type.
    drive : pandas.DataFrame, shape (n_genes, n_cell_types)
        Promoter drive p_gc (log2 units), indexed by gene_id.
    """
    rng = seeded_rng(seed, "enhancers")
    parts = []
    if len(structure):
        has = rng.random(len(structure)) < knobs["p_enhancer_pchic"]
        s = structure[has]
        lo, hi = s["other_start"].to_numpy(), s["other_end"].to_numpy()
        center = (lo + rng.random(len(s)) * (hi - lo)).astype(np.int64)
        beta = (
            knobs["enhancer_effect"]
            * np.sqrt(np.maximum(s["base_frequency"].to_numpy() - 1.0, 0.1))
            * rng.uniform(0.5, 1.5, len(s))
        )
        parts.append(
            pd.DataFrame(
                {
                    "gene_id": s["gene_id"].to_numpy(),
                    "kind": "pchic",
                    "chrom": s["chrom"].to_numpy(),
                    "center": center,
                    "width": rng.uniform(600, 1500, len(s)).round().astype(np.int64),
                    "effect_log2": beta,
                    "fragment_start": lo,
                    "fragment_end": hi,
                    "_row": np.flatnonzero(has),
                }
            )
        )
    n_local = rng.poisson(knobs["local_enhancers"], len(genes))
    gi = np.repeat(np.arange(len(genes)), n_local)
    if len(gi):
        sign = np.where(genes["strand"].to_numpy()[gi] == "+", 1, -1)
        offset = rng.uniform(2_000, 19_000, len(gi)) * np.where(rng.random(len(gi)) < 0.5, -1, 1)
        parts.append(
            pd.DataFrame(
                {
                    "gene_id": genes["gene_id"].to_numpy()[gi],
                    "kind": "local",
                    "chrom": genes["chrom"].to_numpy()[gi],
                    "center": (genes["tss"].to_numpy()[gi] + sign * offset).astype(np.int64),
                    "width": rng.uniform(600, 1500, len(gi)).round().astype(np.int64),
                    "effect_log2": knobs["enhancer_effect"] * rng.uniform(0.25, 0.75, len(gi)),
                    "fragment_start": -1,
                    "fragment_end": -1,
                    "_row": -1,
                }
            )
        )
    enh = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["gene_id", "_row"])
    gene_pos = pd.Series(np.arange(len(genes)), index=genes["gene_id"].to_numpy())
    eg = gene_pos.loc[enh["gene_id"]].to_numpy() if len(enh) else np.zeros(0, int)
    drive = pd.DataFrame(index=genes["gene_id"].to_numpy())
    for ct in cell_types:
        e = np.log2(expression[ct].to_numpy(float) + 1.0)
        crng = seeded_rng(seed, "enhancer_activity", ct)
        p = _sigmoid(knobs["enhancer_activity_bias"] + knobs["enhancer_activity_slope"] * (e[eg] - 2.0))
        active = crng.random(len(enh)) < p
        if len(enh):
            col = f"in_{PCHIC_TISSUE[ct]}"  # a cell type without pcHi-C (None): no link test
            rows = enh["_row"].to_numpy()
            if col in structure:
                linked = np.ones(len(enh), bool)
                linked[rows >= 0] = structure[col].to_numpy()[rows[rows >= 0]]
                active &= linked
        contrib = np.where(active, enh["effect_log2"].to_numpy(float) if len(enh) else 0.0, 0.0)
        total = np.bincount(eg, weights=contrib, minlength=len(genes))
        cap = knobs["enhancer_max_share"] * e
        scale = np.where(total > cap, cap / np.maximum(total, 1e-12), 1.0)
        contrib = contrib * scale[eg]
        enh[f"active_{ct}"] = active
        enh[f"contribution_{ct}"] = contrib
        drive[ct] = e - np.bincount(eg, weights=contrib, minlength=len(genes))
    enh = enh.drop(columns="_row")
    enh.insert(0, "enhancer_id", [f"enh{i:06d}" for i in range(len(enh))])
    return enh, drive


#: Columns of ``truth/decoys.tsv.gz`` before the per-cell-type ``active_<EID>`` flags.
DECOY_COLUMNS = (
    "decoy_id",
    "gene_id",
    "kind",
    "placement",
    "chrom",
    "center",
    "width",
    "fragment_start",
    "fragment_end",
    "neighbour_id",
)
#: The two kinds of decoy (``data.simulator_version`` >= 2).
DECOY_KINDS = ("neighbour_enhancer", "acetylated_site")


def _nearest_other_gene(table: pd.DataFrame, chrom: np.ndarray, pos: np.ndarray, exclude: np.ndarray) -> np.ndarray:
    """Row index in ``table`` of the gene whose TSS is nearest to ``pos`` on ``chrom``, other than ``exclude``.

    -1 where the chromosome has no other gene. Ties: the upstream (smaller TSS) gene.
    """
    out = np.full(len(pos), -1, np.int64)
    ids = table["gene_id"].to_numpy()
    for c in pd.unique(chrom):
        rows = np.flatnonzero(table["chrom"].to_numpy() == c)
        if rows.size == 0:
            continue
        order = rows[np.argsort(table["tss"].to_numpy()[rows], kind="mergesort")]
        tss = table["tss"].to_numpy(np.int64)[order]
        for i in np.flatnonzero(chrom == c):
            j = int(np.searchsorted(tss, pos[i]))
            cands = [k for k in range(max(j - 2, 0), min(j + 2, len(order))) if ids[order[k]] != exclude[i]]
            if cands:
                best = min(cands, key=lambda k: (abs(int(tss[k]) - int(pos[i])), tss[k]))
                out[i] = order[best]
    return out


def plant_decoys(
    genes: pd.DataFrame,
    structure: pd.DataFrame,
    enhancers: pd.DataFrame,
    table: pd.DataFrame,
    cell_types: Sequence[str],
    knobs: Mapping[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Plant decoys: acetylated elements that regulate no simulated gene (simulator version 2).

    Placed where the gene's own enhancers are (docs/methods.md, "Simulator versions"):

    * **in the window**: each gene gets Poisson(``decoys.local_rate``) decoys 2-19 kb from its TSS,
      upstream or downstream with equal probability (the local enhancers' rule), drawn from a
      stream keyed by the gene id;
    * **on contacted fragments**: each (gene, pcHi-C fragment) pair *without* an enhancer of the gene
      carries a decoy with probability ``decoys.p_pchic`` (uniform inside the fragment).

    A decoy is a ``neighbour_enhancer`` with probability ``decoys.neighbour_share``, else an
    ``acetylated_site``. A neighbour enhancer is an enhancer of the real gene whose TSS is nearest
    to it (other than the gene it sits beside): active in a cell type with the enhancers' probability
    sigmoid(``enhancer_activity_bias`` + ``enhancer_activity_slope`` * (log2(RPKM + 1) of that
    neighbour - 2)), and marked exactly like an enhancer (H3K4me1 primed and active, H3K27ac and
    H3K9ac when active). An acetylated site is acetylated in each cell type with probability
    ``decoys.site_activity``, whatever any gene's expression, with an active enhancer's H3K27ac and
    H3K9ac but only ``decoys.site_h3k4me1`` of its H3K4me1 increment (no primed state). Widths are
    the enhancers' (600-1,500 bp). No decoy changes any simulated gene's expression, and no eQTL is
    planted at them (:mod:`chromexp.simulate.eqtl` anchors on the enhancers only).

    Every random number comes from streams of their own (``"decoys"``, ``"decoy_activity"``), so the
    genes, enhancers, pcHi-C and eQTLs are exactly those of version 1.

    Parameters
    ----------
    genes : pandas.DataFrame
        The dataset's genes (gene_id, chrom, tss, strand).
    structure : pandas.DataFrame
        :func:`simulate_interactions` structure (gene_id, chrom, other_start, other_end).
    enhancers : pandas.DataFrame
        :func:`plant_enhancers` output (which (gene, fragment) pairs carry an enhancer).
    table : pandas.DataFrame
        Every real gene with one expression column per cell type (:func:`with_cell_expression`):
        the neighbours whose expression drives the neighbour enhancers.
    knobs : mapping
        The ``simulate`` block (``decoys`` and the enhancer activity knobs).

    Returns
    -------
    pandas.DataFrame
        :data:`DECOY_COLUMNS` (fragment_start/end -1 in the window; neighbour_id "" for acetylated
        sites), then ``active_<EID>`` (bool) per cell type; local decoys first, by gene.
    """
    d = knobs["decoys"]
    parts = []
    g_ids = genes["gene_id"].to_numpy()
    for i, gid in enumerate(g_ids):
        r = seeded_rng(seed, "decoys", gid)
        n = int(r.poisson(d["local_rate"]))
        if n == 0:
            continue
        sign = 1 if genes["strand"].to_numpy()[i] == "+" else -1
        offset = r.uniform(2_000, 19_000, n) * np.where(r.random(n) < 0.5, -1, 1)
        parts.append(
            pd.DataFrame(
                {
                    "gene_id": gid,
                    "placement": "local",
                    "chrom": genes["chrom"].to_numpy()[i],
                    "center": (int(genes["tss"].to_numpy()[i]) + sign * offset).astype(np.int64),
                    "width": r.uniform(600, 1500, n).round().astype(np.int64),
                    "fragment_start": -1,
                    "fragment_end": -1,
                    "_u": r.random(n),
                }
            )
        )
    if len(structure):
        key = ["gene_id", "other_start", "other_end"]
        with_enh = enhancers.loc[enhancers["kind"] == "pchic", ["gene_id", "fragment_start", "fragment_end"]]
        with_enh = with_enh.set_axis(key, axis=1).drop_duplicates().assign(_enh=True)
        free = structure[key + ["chrom"]].merge(with_enh, on=key, how="left")["_enh"].isna().to_numpy()
        r = seeded_rng(seed, "decoys", "pchic")
        hit = (r.random(len(structure)) < d["p_pchic"]) & free
        sub = structure[hit]
        lo, hi = sub["other_start"].to_numpy(), sub["other_end"].to_numpy()
        parts.append(
            pd.DataFrame(
                {
                    "gene_id": sub["gene_id"].to_numpy(),
                    "placement": "pchic",
                    "chrom": sub["chrom"].to_numpy(),
                    "center": (lo + r.random(len(sub)) * (hi - lo)).astype(np.int64),
                    "width": r.uniform(600, 1500, len(sub)).round().astype(np.int64),
                    "fragment_start": lo,
                    "fragment_end": hi,
                    "_u": r.random(len(sub)),
                }
            )
        )
    columns = [c for c in DECOY_COLUMNS if c not in ("decoy_id", "kind", "neighbour_id")]
    dec = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({c: [] for c in [*columns, "_u"]})
    neighbour = dec["_u"].to_numpy(float) < d["neighbour_share"]
    nb = np.full(len(dec), -1, np.int64)
    if neighbour.any():
        nb[neighbour] = _nearest_other_gene(
            table,
            dec["chrom"].to_numpy()[neighbour],
            dec["center"].to_numpy(np.int64)[neighbour],
            dec["gene_id"].to_numpy()[neighbour],
        )
    neighbour &= nb >= 0  # a chromosome without another gene: an acetylated site
    dec["kind"] = np.where(neighbour, DECOY_KINDS[0], DECOY_KINDS[1])
    dec["neighbour_id"] = np.where(neighbour, table["gene_id"].to_numpy()[np.maximum(nb, 0)], "")
    dec.insert(0, "decoy_id", [f"dec{i:06d}" for i in range(len(dec))])
    for ct in cell_types:
        r = seeded_rng(seed, "decoy_activity", ct)
        u = r.random(len(dec))
        e_nb = np.log2(table[ct].to_numpy(float)[np.maximum(nb, 0)] + 1.0)
        p_nb = _sigmoid(knobs["enhancer_activity_bias"] + knobs["enhancer_activity_slope"] * (e_nb - 2.0))
        dec[f"active_{ct}"] = u < np.where(neighbour, p_nb, d["site_activity"])
    out = dec[[*DECOY_COLUMNS, *(f"active_{ct}" for ct in cell_types)]]
    for c in ("center", "width", "fragment_start", "fragment_end"):
        out = out.astype({c: np.int64})
    return out.reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# expected depth on a grid and read sampling
# ----------------------------------------------------------------------------------------------
def _merge(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(starts, kind="mergesort")
    s, e = starts[order], ends[order]
    run_end = np.maximum.accumulate(e)
    new = np.ones(len(s), bool)
    new[1:] = s[1:] > run_end[:-1]
    grp = np.cumsum(new) - 1
    if len(s) == 0:
        return s, e, np.zeros(0, np.int64)
    return s[new], np.maximum.reduceat(run_end, np.flatnonzero(new)), grp


def build_grid(
    genes: pd.DataFrame, fragments: pd.DataFrame, chrom_sizes: Mapping[str, int], knobs: Mapping[str, Any]
) -> dict[str, np.ndarray]:
    """Cell starts (every ``grid_step`` bp) over the regions where reads are simulated.

    Regions: each gene's TSS ± (``half_window`` + ``window_pad``) and each pcHi-C fragment
    ± ``window_pad``, merged and clipped to the chromosome (minus one read length).

    Returns
    -------
    dict
        chrom -> sorted int64 array of cell starts.
    """
    step, pad, hw = int(knobs["grid_step"]), int(knobs["window_pad"]), int(knobs["half_window"])
    read_length = int(knobs["read_length"])
    out = {}
    present = set(genes["chrom"]) | (set(fragments["chrom"]) if len(fragments) else set())
    chroms = [c for c in CHROMOSOMES if c in present] + sorted(present - set(CHROMOSOMES))
    for chrom in chroms:
        g = genes[genes["chrom"] == chrom]
        f = fragments[fragments["chrom"] == chrom] if len(fragments) else fragments
        s = np.concatenate([g["tss"].to_numpy() - hw - pad, f["start"].to_numpy() - pad if len(f) else []])
        e = np.concatenate([g["tss"].to_numpy() + hw + pad, f["end"].to_numpy() + pad if len(f) else []])
        # a read starts anywhere in its cell [cell, cell + step), so the last cell must end one read
        # length before the chromosome does (a read past the end is invalid tagAlign)
        limit = chrom_sizes[chrom] - read_length - step + 1
        s = (np.clip(s, 0, limit) // step * step).astype(np.int64)
        e = np.clip(e, 0, limit).astype(np.int64)
        ms, me, _ = _merge(s, e)
        cells = [np.arange(a, b, step, dtype=np.int64) for a, b in zip(ms, me) if b > a]
        out[chrom] = np.concatenate(cells) if cells else np.zeros(0, np.int64)
    return out


#: Promoter peak shapes: (centre bp from the TSS, downstream > 0; sd bp; weight) of Gaussian
#: components: the -1 and +1 nucleosomes flanking the nucleosome-depleted TSS, the next
#: downstream nucleosomes, and a weak tail into the gene (peak height is set by ``amplitude``).
PROMOTER_SHAPES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "H3K4me3": ((-300.0, 220.0, 0.6), (350.0, 250.0, 1.0), (1000.0, 600.0, 0.45), (2500.0, 1500.0, 0.08)),
    "H3K9ac": ((-300.0, 200.0, 0.55), (300.0, 220.0, 1.0), (900.0, 500.0, 0.3), (2500.0, 1500.0, 0.05)),
    "H3K27ac": ((-300.0, 200.0, 0.6), (300.0, 220.0, 1.0), (900.0, 500.0, 0.3), (2500.0, 1500.0, 0.05)),
}


def _gauss(u, mu, sd):
    return np.exp(-0.5 * ((u - mu) / sd) ** 2)


def _openness(
    cells: np.ndarray, centre: np.ndarray, tss: np.ndarray, activity: np.ndarray, recalibration: Mapping[str, Any]
) -> np.ndarray:
    """Activity-weighted openness O(x) = 1 - prod_g (1 - a_g * Gaussian(x - TSS_g, sd)) on one chromosome's grid.

    In [0, 1]: about a_g near one active TSS, higher where active TSSs crowd; each gene is evaluated
    over TSS ± 4 sd (``e116_calibration.activity_background_sd``) only. Simulator version 3.
    """
    sd = float(recalibration["activity_background_sd"])
    closed = np.ones(len(cells))
    for t, a in zip(tss, activity):
        if a <= 0:
            continue
        i0, i1 = np.searchsorted(cells, [t - 4.0 * sd, t + 4.0 * sd])
        if i1 > i0:
            closed[i0:i1] *= 1.0 - a * _gauss(centre[i0:i1], float(t), sd)
    return 1.0 - closed


def expected_depth(
    cell_type: str,
    genes: pd.DataFrame,
    latents: pd.DataFrame,
    drive: np.ndarray,
    enhancers: pd.DataFrame,
    grid: Mapping[str, np.ndarray],
    knobs: Mapping[str, Any],
    seed: int,
    decoys: pd.DataFrame | None = None,
    recalibration: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Expected per-base read depth of each mark on the grid, for one cell type.

    Parameters
    ----------
    cell_type : str
        EID (keys the background and enhancer columns).
    genes, latents : pandas.DataFrame
        Every gene whose marks can reach the grid (the dataset's genes and their real
        neighbours, see :func:`context_genes`) and its :func:`gene_latents` row, aligned.
    drive : numpy.ndarray, shape (n_genes,)
        Promoter drive p_gc (log2 units) of each gene in this cell type.
    enhancers : pandas.DataFrame
        :func:`plant_enhancers` output (needs ``active_<cell_type>``).
    grid : dict
        :func:`build_grid` output.
    decoys : pandas.DataFrame, optional
        :func:`plant_decoys` output (simulator version 2); ``None`` (version 1) adds nothing, and the
        depth is then computed exactly as before the decoys existed.
    recalibration : mapping, optional
        The ``e116_calibration`` block (simulator version 3; ``knobs`` must then be
        :func:`simulation_knobs`' and ``latents`` carry its columns): every mark's background times
        (1 + ``activity_background`` * O(x)), O(x) = 1 - prod_g (1 - a_g * Gaussian(x - TSS_g, sd))
        the activity-weighted openness near TSSs; an H3K27me3 plateau over the non-Polycomb genes
        with ``k27me3_domain`` (level 1 - ``k27me3_domain_loss`` * a); H3K4me1 promoter flanks at
        ``k4me1_flank_basal`` + (1 - basal) * a. ``None`` (versions 1-2): none of these, the depth
        computed exactly as those versions always did.

    Returns
    -------
    dict
        mark -> chrom -> float64 array (n_cells,) of expected depth at the cell centres.
    """
    step = int(knobs["grid_step"])
    block = int(knobs["block_size"])
    bg = knobs["background"]
    amp = knobs["amplitude"]
    basal = knobs["promoter_basal"]
    ndr_marks = set(knobs["ndr_marks"])
    drive = np.asarray(drive, float)
    activity = _sigmoid((drive - knobs["activity_midpoint"]) / knobs["activity_scale"])
    depth: dict[str, dict[str, np.ndarray]] = {m: {} for m in MARKS}
    g_chrom = genes["chrom"].to_numpy()
    g_tss = genes["tss"].to_numpy(np.int64)
    g_sign = np.where(genes["strand"].to_numpy() == "+", 1.0, -1.0)
    g_len = genes["gene_length"].to_numpy(float)
    cpg = latents["cpg"].to_numpy(float)
    polycomb = latents["polycomb"].to_numpy(bool)
    noise = {m: latents[f"noise_{m}"].to_numpy(float) for m in MARKS}
    k27w, k27o = latents["k27_width"].to_numpy(float), latents["k27_offset"].to_numpy(float)
    k9d, k9o = latents["k9_domain"].to_numpy(float), latents["k9_offset"].to_numpy(float)
    hw = int(knobs["half_window"]) + int(knobs["window_pad"])
    shapes = PROMOTER_SHAPES
    if recalibration is not None:  # simulator version 3 (versions 1-2 never enter these branches)
        k27dom = latents["k27me3_domain"].to_numpy(bool)
        k27dw = latents["k27_domain_width"].to_numpy(float)
        flank_basal = float(recalibration["k4me1_flank_basal"])
    for chrom, cells in grid.items():
        centre = cells + step / 2.0
        blocks = cells // block
        nb = int(blocks.max()) + 1 if len(blocks) else 1
        shared = np.exp(knobs["background_sigma_shared"] * seeded_rng(seed, "bg_shared", chrom).standard_normal(nb))
        lift = None
        if recalibration is not None:
            on_chrom = g_chrom == chrom
            lift = 1.0 + float(recalibration["activity_background"]) * _openness(
                cells, centre, g_tss[on_chrom], activity[on_chrom], recalibration
            )
        for mark in MARKS:
            own = np.exp(
                knobs["background_sigma_mark"] * seeded_rng(seed, "bg", chrom, mark, cell_type).standard_normal(nb)
            )
            depth[mark][chrom] = bg[mark] * shared[blocks] * own[blocks]
            if lift is not None:
                depth[mark][chrom] *= lift
        ndr = np.ones(len(cells))
        for gi in np.flatnonzero(g_chrom == chrom):
            tss, sign, a = g_tss[gi], g_sign[gi], activity[gi]
            # the window plus, for H3K36me3, the transcribed body downstream
            lo, hi = (tss - hw, tss + max(hw, g_len[gi])) if sign > 0 else (tss - max(hw, g_len[gi]), tss + hw)
            j0, j1 = np.searchsorted(cells, [lo, hi])
            if j1 <= j0:
                continue
            u_all = (centre[j0:j1] - tss) * sign
            # H3K36me3 over the transcribed body, ramping up over the first few kb
            body = (u_all > 0) & (u_all < g_len[gi])
            strength = a * np.clip(drive[gi] / knobs["k36me3_reference"], 0.0, 2.0)
            if strength > 0 and body.any():
                ramp = (1.0 - np.exp(-np.maximum(u_all, 0.0) / knobs["k36me3_ramp"])) * body
                depth["H3K36me3"][chrom][j0:j1] += amp["H3K36me3"] * noise["H3K36me3"][gi] * strength * ramp
            i0, i1 = np.searchsorted(cells, [tss - hw, tss + hw])
            if i1 <= i0:
                continue
            u = (centre[i0:i1] - tss) * sign
            # nucleosome-depleted region at active TSSs lowers the background of the ndr_marks
            ndr[i0:i1] *= 1.0 - knobs["ndr_depth"] * a * _gauss(u, 0.0, 250.0)
            # promoter peaks driven by activity; CpG promoters keep a basal (poised) level when inactive
            # (the promoter terms are negligible beyond 8 kb: evaluate them on TSS ± 8 kb only)
            p0, p1 = np.searchsorted(cells, [tss - 8000, tss + 8000])
            up = (centre[p0:p1] - tss) * sign
            for mark, components in shapes.items():
                level = a + basal[mark] * cpg[gi] * (1.0 - a)
                shape = sum(w * _gauss(up, mu, sd) for mu, sd, w in components)
                depth[mark][chrom][p0:p1] += amp[mark] * noise[mark][gi] * level * shape
            # H3K4me1 flanks promoters (primed and active alike), depleted over the active core
            flank = _gauss(up, 300.0, 1800.0) * (1.0 - 0.95 * a * _gauss(up, 100.0, 450.0))
            flank_level = (0.5 + 0.5 * a) if recalibration is None else flank_basal + (1.0 - flank_basal) * a
            depth["H3K4me1"][chrom][p0:p1] += amp["H3K4me1"] * noise["H3K4me1"][gi] * flank_level * flank
            # H3K27me3: broad Polycomb domain over targets, weakened (not removed) by activity
            if polycomb[gi]:
                w = k27w[gi]
                dom = 0.5 * _sigmoid((u - k27o[gi] + w / 2) / 500.0) * _sigmoid((k27o[gi] + w / 2 - u) / 500.0)
                dom += _gauss(u, 300.0, 900.0)  # strongest over the CpG island at the TSS
                level = 1.0 - knobs["k27me3_activity_loss"] * a
                depth["H3K27me3"][chrom][i0:i1] += amp["H3K27me3"] * noise["H3K27me3"][gi] * level * dom
            elif recalibration is not None and k27dom[gi]:
                # version 3: a broad repressive plateau (no CpG-island peak) at the other genes, lost with activity
                w = k27dw[gi]
                dom = _sigmoid((u - k27o[gi] + w / 2) / 500.0) * _sigmoid((k27o[gi] + w / 2 - u) / 500.0)
                level = max(1.0 - float(recalibration["k27me3_domain_loss"]) * a, 0.0)
                amp27 = float(recalibration["k27me3_domain_amplitude"])
                depth["H3K27me3"][chrom][i0:i1] += amp27 * noise["H3K27me3"][gi] * level * dom
            # H3K9me3: heterochromatin patches, a little more frequent over inactive genes
            if k9d[gi] < knobs["k9me3_domain_p"] * (1.0 + knobs["k9me3_inactive_boost"] * (1.0 - a)):
                dom = _gauss(u, k9o[gi], knobs["k9me3_domain_width"])
                depth["H3K9me3"][chrom][i0:i1] += amp["H3K9me3"] * noise["H3K9me3"][gi] * dom
        for mark in ndr_marks:
            depth[mark][chrom] = depth[mark][chrom] * ndr
    # enhancers: H3K4me1 primed (inactive) and active, H3K27ac (and weak H3K9ac) only when active
    if len(enhancers):
        active = enhancers[f"active_{cell_type}"].to_numpy(bool)
        k4me1 = amp["enhancer_H3K4me1"] * (knobs["enhancer_primed"] + active.astype(float))
        _add_elements(depth, grid, enhancers, k4me1, active, knobs)
    if decoys is not None and len(decoys):
        _add_decoys(depth, grid, decoys, cell_type, knobs)
    return depth


def _add_decoys(depth, grid, decoys: pd.DataFrame, cell_type: str, knobs: Mapping[str, Any]) -> None:
    """Add the decoys' marks to ``depth`` in place (:func:`plant_decoys` states them)."""
    amp = knobs["amplitude"]
    active = decoys[f"active_{cell_type}"].to_numpy(bool)
    neighbour = (decoys["kind"] == DECOY_KINDS[0]).to_numpy()
    k4me1 = np.where(neighbour, knobs["enhancer_primed"] + active, knobs["decoys"]["site_h3k4me1"] * active) * float(
        amp["enhancer_H3K4me1"]
    )
    _add_elements(depth, grid, decoys, k4me1, active, knobs)


def _add_elements(depth, grid, elements: pd.DataFrame, k4me1: np.ndarray, active: np.ndarray, knobs) -> None:
    """Add Gaussian marks of enhancer-like elements (planted enhancers, decoys) to ``depth`` in place.

    Each element (``chrom, center, width``) gets H3K4me1 of height ``k4me1``; active ones also get
    H3K27ac and a weaker H3K9ac (``enhancer_h3k9ac_share``), all with the same shape (sd = width / 2,
    cut at ± 4 widths).
    """
    step = int(knobs["grid_step"])
    amp = knobs["amplitude"]
    e_chrom = elements["chrom"].to_numpy()
    e_center = elements["center"].to_numpy(float)
    e_width = elements["width"].to_numpy(float)
    for chrom, cells in grid.items():
        centre = cells + step / 2.0
        for ei in np.flatnonzero(e_chrom == chrom):
            c, w = e_center[ei], e_width[ei]
            i0, i1 = np.searchsorted(cells, [c - 4 * w, c + 4 * w])
            if i1 <= i0:
                continue
            shape = _gauss(centre[i0:i1], c, w / 2.0)
            on = float(active[ei])
            depth["H3K4me1"][chrom][i0:i1] += k4me1[ei] * shape
            depth["H3K27ac"][chrom][i0:i1] += amp["enhancer_H3K27ac"] * on * shape
            depth["H3K9ac"][chrom][i0:i1] += knobs["enhancer_h3k9ac_share"] * amp["enhancer_H3K27ac"] * on * shape


def context_genes(table: pd.DataFrame, genes: pd.DataFrame, grid: Mapping[str, np.ndarray], knobs) -> pd.DataFrame:
    """Real genes outside ``genes`` whose window or transcribed body reaches the simulated regions.

    Their marks (driven by their own real expression) fall into the dataset's windows as real
    neighbours' marks do; they get no planted enhancers and are not written to genes.tsv.
    """
    hw = int(knobs["half_window"]) + int(knobs["window_pad"])
    t = table[~table["gene_id"].isin(set(genes["gene_id"])) & table["chrom"].isin(list(grid))]
    plus = t["strand"].to_numpy() == "+"
    lo = np.where(plus, t["tss"] - hw, t["tss"] - np.maximum(hw, t["gene_length"]))
    hi = np.where(plus, t["tss"] + np.maximum(hw, t["gene_length"]), t["tss"] + hw)
    keep = np.zeros(len(t), bool)
    chroms = t["chrom"].to_numpy()
    for chrom, cells in grid.items():
        sel = np.flatnonzero(chroms == chrom)
        if len(cells) == 0 or len(sel) == 0:
            continue
        # a span [lo, hi) holds a grid cell iff some cell start falls in [lo - step, hi)
        a = np.searchsorted(cells, lo[sel] - int(knobs["grid_step"]))
        b = np.searchsorted(cells, hi[sel])
        keep[sel] = b > a
    return t[keep]


def sample_reads(
    depth: Mapping[str, np.ndarray], grid: Mapping[str, np.ndarray], knobs: Mapping[str, Any], rng: np.random.Generator
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Draw reads from expected depth: Poisson counts per cell with gamma (over-dispersion) noise.

    Returns
    -------
    dict
        chrom -> (sorted read starts int64, minus-strand flags bool), in the grid's chromosome order.
    """
    step, read_length = int(knobs["grid_step"]), int(knobs["read_length"])
    shape = float(knobs["overdispersion_shape"])
    out = {}
    for chrom, cells in grid.items():
        lam = depth[chrom] * (step / read_length) * rng.gamma(shape, 1.0 / shape, len(cells))
        counts = rng.poisson(lam)
        starts = np.repeat(cells, counts) + rng.integers(0, step, int(counts.sum()))
        starts.sort()
        out[chrom] = (starts, rng.random(len(starts)) < 0.5)
    return out


def simulate_cell_type(
    cell_type: str,
    genes: pd.DataFrame,
    latents: pd.DataFrame,
    drive: np.ndarray,
    enhancers: pd.DataFrame,
    grid: Mapping[str, np.ndarray],
    knobs: Mapping[str, Any],
    seed: int,
    marks: Sequence[str] = MARKS,
    decoys: pd.DataFrame | None = None,
    recalibration: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Reads of every mark in one cell type: mark -> chrom -> (starts, minus).

    ``decoys`` and ``recalibration`` as :func:`expected_depth` (``None``: simulator versions without them).
    """
    depth = expected_depth(
        cell_type, genes, latents, drive, enhancers, grid, knobs, seed, decoys, recalibration=recalibration
    )
    return {m: sample_reads(depth[m], grid, knobs, seeded_rng(seed, "reads", cell_type, m)) for m in marks}


def with_cell_expression(table: pd.DataFrame, cell_types: Sequence[str]) -> pd.DataFrame:
    """The vendored gene table with one real-expression column per cell type, from its cell-type file.

    A cell type whose ``cell.expression`` is a Roadmap column uses that column of the vendored table
    (the 11 study EIDs); one with its own table (``source: table``) gets the table's values. The
    simulated reads of a cell type are driven by this real expression, so a user's new cell type gets
    semi-synthetic data of its own. Columns are named by cell-type id; the study's eleven leave the
    table unchanged.

    Raises
    ------
    ValueError
        A Roadmap column the vendored table does not have, or genes of the vendored table missing from
        a user's table (counted, with examples): every generated gene needs an expression value.
    """
    from .. import cells

    table = table.copy()
    vendored = [c for c in table.columns if EID_PATTERN.match(c)]
    for ct in cell_types:
        cell = cells.get(ct)
        src = cell.expression
        if src.source == "roadmap":
            if src.column not in vendored:
                raise ValueError(
                    f"Cell type {ct} ({cell.file}): 'cell.expression.column' {src.column!r} is not a column of the "
                    f"vendored RPKM table ({', '.join(vendored)}); semi-synthetic reads need the cell type's real "
                    "expression: give your own table (cell.expression.source: table)."
                )
            if src.column != ct:
                table[ct] = table[src.column]
            continue
        values = read_expression_table(src.table, src.column)
        missing = ~table["gene_id"].isin(values.index)
        if missing.any():
            examples = ", ".join(table.loc[missing, "gene_id"].head(3))
            raise ValueError(
                f"Cell type {ct}: its expression table {src.table} has no value for {int(missing.sum())} of the "
                f"{len(table)} vendored genes (e.g. {examples}); semi-synthetic data are generated for every "
                "vendored gene (lib/chromexp/resources/roadmap/genes_rpkm_11.tsv.gz)."
            )
        table[ct] = table["gene_id"].map(values).astype(float).to_numpy()
    return table


def _expression_tables(cell_types: Sequence[str]) -> dict[str, list]:
    """``{cell type: [file, size, sha256]}`` of the user's own expression tables (part of the manifest)."""
    from .. import cells

    out = {}
    for ct in cell_types:
        src = cells.get(ct).expression
        if src.source == "table":
            out[ct] = [str(src.table), src.table.stat().st_size, _sha256(src.table)]
    return out


# ----------------------------------------------------------------------------------------------
# the generator
# ----------------------------------------------------------------------------------------------
def preset_config(params: Mapping[str, Any]) -> dict[str, Any]:
    """The preset named by ``params['data']['preset']``: n_genes and cell_types, validated."""
    sim = params["simulate"]
    name = params["data"]["preset"]
    if name not in sim["presets"]:
        raise ValueError(f"Unknown data.preset {name!r}; known presets: {', '.join(sim['presets'])}.")
    preset = dict(sim["presets"][name])
    unknown = [c for c in preset["cell_types"] if c not in CELL_TYPES]
    if unknown:
        raise ValueError(f"simulate.presets.{name}.cell_types has unknown EIDs {unknown}.")
    return {"name": name, **preset}


#: ``simulate`` keys that do not change the output (left out of the manifest and the cache key).
_NOT_IN_MANIFEST = ("n_jobs",)

#: ``simulate`` blocks read only by one simulator feature: left out of the manifest of a version
#: without it (so version 1's manifest parameters stay those written before the switch existed).
_FEATURE_KNOBS = {"decoys": ("decoys",), "e116_calibration": ("e116_calibration",)}


def _replace_knobs(knobs: Mapping[str, Any], new: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``knobs`` with the values of ``new`` (nested blocks key by key); every key must exist in ``knobs``."""
    out = dict(knobs)
    for key, value in new.items():
        if key not in knobs:
            raise ValueError(f"{where}.{key} is not a simulate knob; known: {', '.join(sorted(map(str, knobs)))}.")
        if isinstance(value, Mapping):
            if not isinstance(knobs[key], Mapping):
                raise ValueError(f"{where}.{key} is a block but simulate.{key} is a value ({knobs[key]!r}).")
            out[key] = _replace_knobs(knobs[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def simulation_knobs(params: Mapping[str, Any]) -> tuple[Mapping[str, Any], dict[str, Any] | None]:
    """The ``simulate`` knobs the parameters' simulator version runs with, and its recalibration block.

    Versions 1-2 run with ``params["simulate"]`` itself and no recalibration. Version 3
    (feature ``e116_calibration``) runs with a copy in which ``simulate.e116_calibration.knobs``
    replace the knobs of the same name, and returns the ``e116_calibration`` block (its own knobs,
    :func:`expected_depth`).

    Raises
    ------
    ValueError
        A replacement names a knob the ``simulate`` block does not have.
    """
    knobs = params["simulate"]
    if not has_feature(params, "e116_calibration"):
        return knobs, None
    block = dict(knobs["e116_calibration"])
    return _replace_knobs(knobs, block.get("knobs") or {}, "simulate.e116_calibration.knobs"), block


def complete_chromosomes(params: Mapping[str, Any]) -> list[str]:
    """The generating preset's ``complete_chromosomes``, in effect from ``data.simulator_version`` 2 on.

    Version 1 is the simulator before the switch, gene selection included: it ignores the option, so
    its data stay byte-identical to the pre-switch release for every preset (the demo's too).
    """
    if simulator_version(params) < 2:
        return []
    return list(preset_config(params).get("complete_chromosomes") or [])


def _manifest_params(params: Mapping[str, Any]) -> dict[str, Any]:
    version = simulator_version(params)
    unused = {k for f, keys in _FEATURE_KNOBS.items() if not has_feature(version, f) for k in keys}
    sim = {k: v for k, v in params["simulate"].items() if k not in _NOT_IN_MANIFEST and k not in unused}
    # a preset's complete_chromosomes is recorded once, where it applies (the generating preset, from
    # version 2 on, when not empty): the manifests of data made before the option keep comparing equal
    sim = json.loads(json.dumps(sim))
    for preset in (sim.get("presets") or {}).values():
        if isinstance(preset, dict):
            preset.pop("complete_chromosomes", None)
    out = {
        "model_version": MODEL_VERSION,
        "preset": params["data"]["preset"],
        "seed": int(params["seed"]),
        "simulate": sim,
        "simulator_version": version,
    }
    complete = complete_chromosomes(params)
    if complete:
        out["complete_chromosomes"] = complete
    tables = _expression_tables(preset_config(params)["cell_types"])
    if tables:  # only for cell types with their own expression table (the study's data keep their manifest)
        out["expression_tables"] = tables
    return out


_sha256 = file_sha256


def read_manifest(raw: Path) -> dict[str, Any] | None:
    """The manifest of a raw folder, or None when absent or unreadable."""
    try:
        return json.loads((Path(raw) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def is_complete(raw: Path, params: Mapping[str, Any], verify: bool = False) -> bool:
    """Whether ``raw`` holds a finished dataset made with these parameters.

    Complete = manifest.json present with the same preset, seed, ``simulate`` block, model
    version and ``data.simulator_version``, and every listed file present with its recorded size (and sha256 when ``verify``).
    """
    manifest = read_manifest(raw)
    if manifest is None or manifest.get("params") != _manifest_params(params):
        return False
    for name, info in manifest.get("files", {}).items():
        path = Path(raw) / name
        if not path.is_file() or path.stat().st_size != info["bytes"]:
            return False
        if verify and _sha256(path) != info["sha256"]:
            return False
    return True


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _cell_type_task(args) -> list[str]:
    """Worker: simulate and write the 7 tagAlign files of one cell type (runs in a subprocess)."""
    (ct, genes, latents, drive, enhancers, grid, knobs, seed, out, decoys, recalibration) = args
    reads = simulate_cell_type(
        ct, genes, latents, drive, enhancers, grid, knobs, seed, decoys=decoys, recalibration=recalibration
    )
    written = []
    for mark in MARKS:
        chunks = [format_tagalign(c, s, m, knobs["read_length"]) for c, (s, m) in reads[mark].items()]
        name = f"{ct}-{mark}.tagAlign.gz"
        _write(Path(out) / name, gzip_bytes(b"".join(chunks), int(knobs["gzip_level"])))
        written.append(name)
    return written


@dataclasses.dataclass
class DatasetPlan:
    """Everything :func:`generate` simulates reads from (in memory; :func:`plan_dataset`).

    ``knobs`` are those the simulator version runs with (:func:`simulation_knobs`), ``recalibration``
    its ``e116_calibration`` block (version 3) or ``None``; ``signal_genes``/``latents`` are the dataset's
    genes followed by their real neighbours (:func:`context_genes`), ``signal_drive`` their promoter
    drive per cell type (same order).
    """

    preset: str
    version: int
    seed: int
    cell_types: list[str]
    knobs: Mapping[str, Any]
    recalibration: dict[str, Any] | None
    chrom_sizes: dict[str, int]
    genes: pd.DataFrame
    expression: pd.DataFrame
    structure: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    enhancers: pd.DataFrame
    drive: pd.DataFrame
    decoys: pd.DataFrame | None
    grid: dict[str, np.ndarray]
    signal_genes: pd.DataFrame
    latents: pd.DataFrame
    signal_drive: pd.DataFrame

    def simulate(self, cell_type: str, marks: Sequence[str] = MARKS) -> dict[str, dict[str, tuple]]:
        """Reads of ``marks`` in one of the plan's cell types, exactly as :func:`generate` draws them."""
        if cell_type not in self.cell_types:
            raise ValueError(f"cell type {cell_type!r} is not in the preset's cell types {self.cell_types}.")
        return simulate_cell_type(
            cell_type,
            self.signal_genes,
            self.latents,
            self.signal_drive[cell_type].to_numpy(),
            self.enhancers,
            self.grid,
            self.knobs,
            self.seed,
            marks=marks,
            decoys=self.decoys,
            recalibration=self.recalibration,
        )


def plan_dataset(params: Mapping[str, Any]) -> DatasetPlan:
    """Genes, pcHi-C, enhancers, decoys, grid and latent states of the preset ``params['data']['preset']``.

    Deterministic from ``params['seed']``; :func:`generate` writes the files from this plan, and
    :meth:`DatasetPlan.simulate` draws one cell type's reads without writing anything (the reads
    :func:`generate` would write, bit for bit).
    """
    preset = preset_config(params)
    knobs, recalibration = simulation_knobs(params)
    seed = int(params["seed"])
    version = simulator_version(params)
    cell_types = list(preset["cell_types"])
    table = load_real_genes()
    spread_rank = expression_spread_rank(table)  # over the vendored columns only: a new cell type changes nothing
    vendored = [c for c in table.columns if EID_PATTERN.match(c)]
    table = with_cell_expression(table, cell_types)
    genes = select_genes(table, preset["n_genes"], seed, complete_chromosomes(params))
    eids = list(dict.fromkeys([*vendored, *cell_types]))
    expression = genes[["gene_id", *eids]].copy()
    genes = genes[list(GENE_COLUMNS)].copy()
    sizes_all = pd.read_csv(
        paths.resources_dir() / "hg19.chrom.sizes", sep="\t", header=None, names=["chrom", "size"], dtype={"chrom": str}
    )
    chrom_sizes = dict(zip(sizes_all["chrom"], sizes_all["size"].astype(int)))
    tissues = list(dict.fromkeys(PCHIC_TISSUE[c] for c in cell_types if PCHIC_TISSUE[c] is not None))
    structure, tables = simulate_interactions(genes, chrom_sizes, tissues, knobs, seed)
    enhancers, drive = plant_enhancers(genes, structure, expression, cell_types, knobs, seed)
    # simulator version 2+: decoys from their own streams (everything above is version 1's, unchanged)
    decoys = (
        plant_decoys(genes, structure, enhancers, table, cell_types, knobs, seed)
        if has_feature(version, "decoys")
        else None
    )
    other = ["other_chrom", "other_start", "other_end"]
    # no table when no cell type has a pcHi-C tissue (cell.pchic_tissue: null): reads near the genes only
    frags = (
        pd.concat([t[other] for t in tables.values()], ignore_index=True)
        if tables
        else pd.DataFrame({c: pd.Series(dtype=str if c == "other_chrom" else np.int64) for c in other})
    ).rename(columns={"other_chrom": "chrom", "other_start": "start", "other_end": "end"})
    grid = build_grid(genes, frags.drop_duplicates(), chrom_sizes, knobs)
    # real neighbours whose marks reach the simulated regions (driven by their own real expression)
    context = context_genes(table, genes, grid, knobs)
    signal_genes = pd.concat([genes, context[list(GENE_COLUMNS)]], ignore_index=True)
    latents = gene_latents(signal_genes, spread_rank, knobs, seed, recalibration)
    signal_drive = pd.concat([drive[cell_types], np.log2(context.set_index("gene_id")[cell_types].astype(float) + 1.0)])
    return DatasetPlan(
        preset=preset["name"],
        version=version,
        seed=seed,
        cell_types=cell_types,
        knobs=knobs,
        recalibration=recalibration,
        chrom_sizes=chrom_sizes,
        genes=genes,
        expression=expression,
        structure=structure,
        tables=tables,
        enhancers=enhancers,
        drive=drive,
        decoys=decoys,
        grid=grid,
        signal_genes=signal_genes,
        latents=latents,
        signal_drive=signal_drive,
    )


def generate(params: Mapping[str, Any], out_dir: str | os.PathLike | None = None, force: bool = False) -> Path:
    """Write the semi-synthetic raw dataset of the preset ``params['data']['preset']``.

    Idempotent: when ``out_dir`` already holds a complete dataset with the same manifest
    parameters it is reused. The dataset is written into a temporary sibling folder that is
    renamed into place only once the manifest (written last) is there, so an interrupted run
    never looks complete.

    Parameters
    ----------
    params : mapping
        Merged parameters (``seed``, ``data.preset``, ``simulate`` block).
    out_dir : path, optional
        Destination; default :func:`chromexp.paths.raw_dir` (``data/semisynthetic-<preset>/raw``).
    force : bool
        Regenerate even if a complete dataset exists.

    Returns
    -------
    pathlib.Path
        The raw-data folder.
    """
    if params["data"]["source"] != "semisynthetic":
        raise ValueError(
            f"simulate.generate: data.source is {params['data']['source']!r}; only 'semisynthetic' data is generated."
        )
    out = Path(out_dir) if out_dir is not None else paths.raw_dir(params)
    if not force and is_complete(out, params):
        log.info("reusing the complete dataset in %s", out)
        remove_stale_temporaries(out.parent)  # leftovers of killed runs (see the end of this function)
        remove_stale_temporaries(out, recursive=True)
        return out
    # the folder is replaced at the end: only if it is one this generator wrote (its manifest) or empty
    check_removable(out, "the generated raw-data folder", ("manifest.json",))
    t0 = time.perf_counter()
    plan = plan_dataset(params)
    knobs, seed, cell_types = plan.knobs, plan.seed, plan.cell_types
    genes, enhancers, decoys = plan.genes, plan.enhancers, plan.decoys
    missing = [c for c in params.get("cell_types", []) if c not in cell_types]
    if missing:
        log.warning("preset %s has no reads for cell types %s listed in cell_types", plan.preset, missing)
    log.info(
        "preset %s (simulator version %d), %d genes (+%d real neighbours), %d cell types, %d interactions, "
        "%d enhancers, %d decoys, %.1f Mb simulated",
        plan.preset,
        plan.version,
        len(genes),
        len(plan.signal_genes) - len(genes),
        len(cell_types),
        len(plan.structure),
        len(enhancers),
        0 if decoys is None else len(decoys),
        sum(len(v) for v in plan.grid.values()) * knobs["grid_step"] / 1e6,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        level = int(knobs["gzip_level"])
        chrom_sizes, latents, drive = plan.chrom_sizes, plan.latents, plan.drive
        _write(tmp / "genes.tsv", table_bytes(genes))
        _write(tmp / "57epigenomes.RPKM.pc.gz", gzip_bytes(table_bytes(plan.expression), level))
        used = [c for c in CHROMOSOMES if c in set(genes["chrom"])]
        _write(tmp / "hg19.chrom.sizes", "".join(f"{c}\t{chrom_sizes[c]}\n" for c in used).encode())
        for tissue, t in plan.tables.items():
            _write(tmp / "pchic" / f"{tissue}.tsv.gz", gzip_bytes(table_bytes(t), level))
        lat = latents.iloc[: len(genes)].drop(columns=[c for c in latents.columns if c.startswith(("k9_", "k27_"))])
        truth_genes = lat.join(drive.add_prefix("promoter_drive_").reset_index(drop=True))
        _write(tmp / "truth" / "genes.tsv.gz", gzip_bytes(table_bytes(truth_genes), level))
        _write(tmp / "truth" / "enhancers.tsv.gz", gzip_bytes(table_bytes(enhancers), level))
        _write(tmp / "truth" / "interactions.tsv.gz", gzip_bytes(table_bytes(plan.structure), level))
        readme = _TRUTH_README
        if decoys is not None:
            _write(tmp / "truth" / "decoys.tsv.gz", gzip_bytes(table_bytes(decoys), level))
            readme += _TRUTH_README_DECOYS
        if plan.recalibration is not None:
            readme += _TRUTH_README_E116_CALIBRATION
        _write(tmp / "truth" / "README.md", readme.encode())
        tasks = [
            (
                ct,
                plan.signal_genes,
                latents,
                plan.signal_drive[ct].to_numpy(),
                enhancers,
                plan.grid,
                knobs,
                seed,
                tmp,
                decoys,
                plan.recalibration,
            )
            for ct in cell_types
        ]
        n_jobs = max(1, min(int(knobs["n_jobs"] or os.cpu_count() or 1), len(tasks)))
        if n_jobs == 1:
            for task in tasks:
                _cell_type_task(task)
        else:
            with concurrent.futures.ProcessPoolExecutor(
                n_jobs, initializer=_die_with_parent, initargs=(os.getpid(),)
            ) as pool:
                list(pool.map(_cell_type_task, tasks))
        simulate_eqtl.write_eqtls(tmp, genes, enhancers, cell_types, chrom_sizes, knobs, seed, level)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        manifest = {
            "dataset": "semi-synthetic (simulated reads, real Roadmap expression)",
            "simulator_version": simulator_version(params),  # chromexp.provenance.simulator_version reads it
            "params": _manifest_params(params),
            "cell_types": cell_types,
            "n_genes": len(genes),
            "files": {p.relative_to(tmp).as_posix(): {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in files},
        }
        _write(tmp / "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode())
        # swap into place: a stale or partial folder is moved aside first, then removed
        if out.exists():
            if not force and is_complete(out, params):  # another process finished first
                shutil.rmtree(tmp)
                return out
            check_removable(out, "the generated raw-data folder", ("manifest.json",))
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    # folders and files of runs that were killed (.raw.tmp-<pid>, .raw.old-<pid>, .<file>.tmp-<pid>-*)
    remove_stale_temporaries(out.parent)
    remove_stale_temporaries(out, recursive=True)
    log.info("wrote %s in %.1f s", out, time.perf_counter() - t0)
    return out


def dataset_summary(raw: str | os.PathLike, dataset_params: Mapping[str, Any] | None = None) -> dict[str, pd.DataFrame]:
    """Summaries of a generated dataset, read back with the real readers (chromexp.data.io).

    Parameters
    ----------
    raw : path
        A folder written by :func:`generate`.
    dataset_params : mapping, optional
        The ``dataset`` parameter block (pCRE filter: ``pcre_min_frequency``,
        ``pcre_max_length``, ``max_pcres``); defaults to 1.5, 40 kb and 8 (docs/data-formats.md, "Inputs").

    Returns
    -------
    dict of pandas.DataFrame
        ``files``: file, bytes; ``reads``: cell_type, mark, n_reads;
        ``folds``: fold, chromosomes, n_genes; ``pcres``: tissue, gene_id, n_interactions,
        n_pcres (after the dataset's filter and top-N cap).
    """
    from ..constants import CHROM_FOLD
    from ..data import io

    raw = Path(raw)
    manifest = read_manifest(raw)
    if manifest is None:
        raise ValueError(f"{raw}/manifest.json is missing or unreadable: generate the dataset first.")
    dp = {"pcre_min_frequency": 1.5, "pcre_max_length": 40_000, "max_pcres": 8, **(dataset_params or {})}
    files = pd.DataFrame([{"file": k, "bytes": v["bytes"]} for k, v in sorted(manifest["files"].items())])
    genes = io.read_gene_table(raw / "genes.tsv")
    rows = []
    for name in sorted(manifest["files"]):
        if name.endswith(".tagAlign.gz"):
            ct, mark = name[: -len(".tagAlign.gz")].split("-", 1)
            with gzip.open(raw / name, "rb") as fh:
                n = sum(chunk.count(b"\n") for chunk in iter(lambda fh=fh: fh.read(1 << 22), b""))
            rows.append({"cell_type": ct, "mark": mark, "n_reads": n})
    reads = pd.DataFrame(rows)
    fold = genes["chrom"].map(CHROM_FOLD)
    folds = (
        pd.DataFrame({"fold": fold, "chrom": genes["chrom"]})
        .groupby("fold")
        .agg(
            chromosomes=("chrom", lambda c: ", ".join(sorted(set(c), key=CHROMOSOMES.index))), n_genes=("chrom", "size")
        )
        .reset_index()
    )
    pc_rows = []
    for path in sorted((raw / "pchic").glob("*.tsv.gz")):
        tissue = path.name[: -len(".tsv.gz")]
        t = io.read_pchic(path)
        m = genes.merge(t, left_on="chrom", right_on="bait_chrom")
        m = m[(m["tss"] >= m["bait_start"]) & (m["tss"] < m["bait_end"])]
        ok = (m["frequency"] > dp["pcre_min_frequency"]) & (m["other_end"] - m["other_start"] <= dp["pcre_max_length"])
        n_all = m.groupby("gene_id").size().reindex(genes["gene_id"], fill_value=0)
        n_ok = m[ok].groupby("gene_id").size().reindex(genes["gene_id"], fill_value=0)
        pc_rows.append(
            pd.DataFrame(
                {
                    "tissue": tissue,
                    "gene_id": genes["gene_id"].to_numpy(),
                    "n_interactions": n_all.to_numpy(),
                    "n_pcres": np.minimum(n_ok.to_numpy(), dp["max_pcres"]),
                }
            )
        )
    empty = pd.DataFrame({"tissue": [], "gene_id": [], "n_interactions": [], "n_pcres": []})  # no pcHi-C tissue
    pcres = pd.concat(pc_rows, ignore_index=True) if pc_rows else empty.astype({"n_interactions": int, "n_pcres": int})
    return {"files": files, "reads": reads, "folds": folds, "pcres": pcres}


def simulated_regions(raw: str | os.PathLike) -> pd.DataFrame:
    """Where a generated dataset has reads: the union of the cells of :func:`build_grid`.

    Recomputed from the folder's ``genes.tsv``, ``pchic/*.tsv.gz`` and the ``simulate`` block of
    its manifest, exactly as :func:`generate` built the grid. Read *starts* lie in these regions;
    outside them the simulated signal is unknown (no read was ever drawn there), not zero.

    Returns
    -------
    pandas.DataFrame
        ``chrom, start, end`` (0-based half-open, disjoint, sorted per chromosome).
    """
    raw = Path(raw)
    manifest = read_manifest(raw)
    if manifest is None:
        raise ValueError(f"{raw}/manifest.json is missing or unreadable: not a generated (semi-synthetic) dataset.")
    knobs = manifest["params"]["simulate"]
    genes = pd.read_csv(raw / "genes.tsv", sep="\t", dtype={"chrom": str})
    frags = [
        pd.read_csv(path, sep="\t", usecols=["other_chrom", "other_start", "other_end"], dtype={"other_chrom": str})
        for path in sorted((raw / "pchic").glob("*.tsv.gz"))
    ]
    fragments = (
        pd.concat(frags, ignore_index=True)
        .rename(columns={"other_chrom": "chrom", "other_start": "start", "other_end": "end"})
        .drop_duplicates()
        if frags
        else pd.DataFrame(columns=["chrom", "start", "end"])
    )
    sizes = pd.read_csv(
        paths.resources_dir() / "hg19.chrom.sizes", sep="\t", header=None, names=["chrom", "size"], dtype={"chrom": str}
    )
    grid = build_grid(genes, fragments, dict(zip(sizes["chrom"], sizes["size"].astype(int))), knobs)
    return grid_regions(grid, int(knobs["grid_step"]))


def grid_regions(grid: Mapping[str, np.ndarray], step: int) -> pd.DataFrame:
    """The union of the grid's cells ``[start, start + step)`` as ``chrom, start, end`` runs (:func:`simulated_regions`)."""
    rows = []
    for chrom, cells in grid.items():
        if len(cells) == 0:
            continue
        new = np.r_[True, np.diff(cells) != step]
        starts = cells[new]
        ends = cells[np.r_[np.flatnonzero(new)[1:] - 1, len(cells) - 1]] + step
        rows.append(pd.DataFrame({"chrom": chrom, "start": starts, "end": ends}))
    return pd.concat(rows, ignore_index=True)


#: Written into the raw data, so part of its manifest hashes: the text (with the module names it had
#: when written, ``chromexp.simulate`` and ``chromexp.simulate_eqtl``, now :mod:`chromexp.simulate.roadmap`
#: and :mod:`chromexp.simulate.eqtl`) stays byte-identical until :data:`MODEL_VERSION` changes.
_TRUTH_README = """\
# Ground truth of the semi-synthetic dataset (SIMULATED)

Written by chromexp.simulate.generate; see notebooks/00_demo_data for the generative model.

- genes.tsv.gz: per gene, the hidden cell-type-agnostic states (cpg, polycomb, gene-level
  amplitude noise per mark) and per cell type the promoter drive p_gc (log2 units): the part of
  the real log2(RPKM+1) not explained by planted enhancers.
- enhancers.tsv.gz: every planted enhancer (kind pchic = on a pcHi-C fragment of its gene,
  local = inside the TSS +/- 20 kb window), its centre, width, effect (log2 units), fragment,
  and per cell type whether it is active and its contribution to the gene's log2 expression.
- interactions.tsv.gz: the pcHi-C interaction structure (gene, bait, other fragment, base
  frequency) and per tissue whether it is present and its frequency.

- eqtls.tsv.gz: every planted fine-mapped eQTL (chromexp.simulate_eqtl; ../eqtl/README.md).

Not simulated yet (docs/methods.md, "Semi-synthetic data", later issues): GWAS summary statistics.
"""

#: Appended to the truth README by simulator versions with decoys (version 1's text is unchanged).
_TRUTH_README_DECOYS = """
## Decoys (data.simulator_version >= 2)

- decoys.tsv.gz: acetylated elements that regulate NO simulated gene (chromexp.simulate.roadmap.plant_decoys):
  kind neighbour_enhancer (an enhancer of the nearest other real gene, neighbour_id, active with
  that gene's real expression and marked exactly like an enhancer) or acetylated_site (H3K27ac/H3K9ac
  like an active enhancer, little H3K4me1, acetylated at random); placement local (2-19 kb from the
  TSS of gene_id) or pchic (on a fragment contacted by gene_id that carries no enhancer of it);
  per cell type whether it is acetylated (active_<EID>). They change no expression and carry no
  planted eQTL: a method that ranks them with the enhancers reads acetylation, not regulation.
"""

#: Appended to the truth README by simulator versions with the E116 calibration (version 3).
_TRUTH_README_E116_CALIBRATION = """
## Marks recalibrated against real E116 (data.simulator_version >= 3)

- genes.tsv.gz, column k27me3_domain: the gene is not a Polycomb target but carries a broad
  repressive H3K27me3 domain, present when the promoter is inactive and lost with its activity.
- Every mark's background rises near active TSSs (an activity-linked background, as raw ChIP
  counts of every mark do in open chromatin); H3K4me1 promoter flanks follow activity; lower
  H3K4me1, H3K4me3, H3K27me3 and H3K36me3 backgrounds (params simulate.e116_calibration; notebook 15
  measured the gaps).
"""
