"""GWAS summary statistics simulated from a real LD reference (real genotypes, simulated traits).

Notebook 80's default genetics (``ldsc.simulate.panel: kg_eur_chr21_22``): the **real** 1000
Genomes EUR genotypes of chr21/chr22 (:mod:`chromexp.data.genotypes`) at their **real** hg19
positions, with **simulated** traits whose per-SNP heritability is planted in the semi-synthetic
dataset's enhancers at their hg19 coordinates. docs/methods.md, "Stratified LD score regression",
states the model; this module implements it.

Summary statistics from the LD (:func:`simulate_z`)
--------------------------------------------------
For standardised genotypes with LD (correlation) matrix R and a phenotype of variance 1 with
per-SNP effects beta, the marginal GWAS z-scores of N individuals are, to first order in the
per-SNP effects (Zhu & Stephens 2017's RSS likelihood),

    z = sqrt(N) R beta + e,   e ~ N(0, R).

R is the sample LD of the 503 people, block-diagonal over :func:`ld_blocks` (about 2 Mb blocks
cut where the LD crossing the cut is smallest, so that the sample's spurious long-range
correlations of size 1/sqrt(503) do not add up over a whole chromosome). Within a block b with
standardised genotypes X_b (503 x m_b), R_b = X_b' X_b / 503, so both terms are exact products:
sqrt(N) X_b'(X_b beta_b) / 503 and X_b' u_b / sqrt(503) with u_b ~ N(0, I_503) (whose covariance
is R_b). N is a parameter (no individuals are simulated), which is what makes a large GWAS cheap.
Then E[z_j^2 | R] = 1 + N sum_k R_jk^2 sigma_k^2 -- the LD score regression equation with the
simulation's own LD scores (:func:`block_ld_scores`).

Heritability model
------------------
sigma_j^2 = h2 * s_j with s_j from :func:`chromexp.simulate.gwas.per_snp_variance`
(1 + (r_p - 1) promoter_j + t planted_j, summing to 1): the planted set of each enriched trait
gets Prop_h2 / Prop_SNPs = ``enrichment`` exactly over all SNPs; null traits have t = 0.
:func:`expected_enrichment` is the truth of any (trait, annotation) pair in ldsc's own
definition (over the SNPs with 0.05 < MAF < 0.95 in the ``.frq``, those ldsc counts).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import genotypes, plink
from ..utils import get_logger, progress_bar
from .gwas import _GZIP, DATASET_INPUTS, enhancer_bed, hash_dataset_inputs, per_snp_variance, promoter_bed, trait_names

log = get_logger("chromexp.simulate.sumstats")

#: Bumped when the simulation changes (part of the cache key).
SUMSTATS_MODEL_VERSION = 1
#: ldsc counts a SNP in Prop._SNPs / Prop._h2 when 0.05 < FRQ < 0.95 in the --frqfile (its annot_parser).
COMMON_MAF = 0.05


# ----------------------------------------------------------------------------------------------
# LD of the reference sample
# ----------------------------------------------------------------------------------------------
def _band_r2(x: np.ndarray, bp: np.ndarray, window_bp: int, chunk: int = 512) -> np.ndarray:
    """Unbiased r² (r² − (1 − r²)/(n − 2), ldsc's) of every SNP with the next SNPs within ``window_bp``.

    Returns an array (m, W): entry [i, d − 1] is the r² of SNPs i and i + d (0 beyond the window).
    """
    n, m = x.shape
    hi = np.searchsorted(bp, bp + window_bp, side="right")
    width = max(1, int((hi - np.arange(m)).max()) - 1)
    band = np.zeros((m, width), np.float32)
    for i in range(0, m, chunk):
        e = min(i + chunk, m)
        r = x[:, i:e].T @ x[:, i : min(hi[e - 1], m)] / n
        r2 = r**2
        r2 -= (1 - r2) / (n - 2)
        for k in range(e - i):
            j = i + k
            seg = r2[k, k + 1 : hi[j] - i]
            band[j, : len(seg)] = seg
    return band


def ld_blocks(x: np.ndarray, bp: np.ndarray, target_bp: float = 2e6, window_bp: int = 1_000_000) -> np.ndarray:
    """Cut one chromosome into LD blocks of about ``target_bp`` where the LD across the cut is weakest.

    The LD crossing a cut between SNPs c − 1 and c is the sum of ldsc's unbiased r² over the pairs
    (i < c ≤ j) within ``window_bp`` of each other. Starting at the first SNP, each next cut is the
    weakest one between 0.6 and 1.4 × ``target_bp`` further on (a gap wider than that range is cut
    at the gap); the last block takes what is left when less than 1.5 × ``target_bp`` remains.

    Parameters
    ----------
    x : numpy.ndarray, shape (n_individuals, n_snps)
        Standardised genotypes (:func:`chromexp.data.genotypes.standardise`), SNPs in position order.
    bp : numpy.ndarray, shape (n_snps,)
        Positions, increasing.

    Returns
    -------
    numpy.ndarray of int
        Block boundaries as SNP indices: 0, c_1, …, n_snps (block k = SNPs [b_k, b_{k+1})).
    """
    bp = np.asarray(bp, np.int64)
    m = len(bp)
    if x.shape[1] != m:
        raise ValueError(f"ld_blocks: {x.shape[1]} genotype columns but {m} positions.")
    if m and np.any(np.diff(bp) <= 0):
        raise ValueError("ld_blocks: positions must be strictly increasing.")
    if m == 0:
        return np.array([0])
    band = _band_r2(x, bp, window_bp)
    tail = np.cumsum(band[:, ::-1], axis=1)[:, ::-1]  # tail[i, k] = sum of band[i, k:]
    cross = np.zeros(m + 1)
    for d in range(1, band.shape[1] + 1):
        c = np.arange(d, m + 1)
        cross[c] += tail[c - d, d - 1]
    cuts = [0]
    while bp[-1] - bp[cuts[-1]] >= 1.5 * target_bp:
        s = cuts[-1]
        lo = int(np.searchsorted(bp, bp[s] + 0.6 * target_bp))
        hi = max(int(np.searchsorted(bp, bp[s] + 1.4 * target_bp)), lo + 1)
        c = max(lo + int(np.argmin(cross[lo:hi])), s + 1)
        cuts.append(c)
    cuts.append(m)
    return np.array(cuts)


def block_ld_scores(x: np.ndarray, blocks: np.ndarray, annot: np.ndarray | None = None) -> np.ndarray:
    """The simulation's own LD scores: sum over SNP j's block of R_jk² a_k (R the sample LD, raw r²).

    Parameters
    ----------
    x : numpy.ndarray, shape (n_individuals, n_snps)
    blocks : block boundaries (:func:`ld_blocks`)
    annot : numpy.ndarray, shape (n_snps,) or (n_snps, k), optional (default all ones)

    Returns
    -------
    numpy.ndarray, shape (n_snps,) or (n_snps, k)
    """
    n, m = x.shape
    a = np.ones(m) if annot is None else np.asarray(annot, float)
    out = np.zeros(a.shape)
    for s, e in zip(blocks[:-1], blocks[1:]):
        r = x[:, s:e].T @ x[:, s:e] / n
        out[s:e] = (r**2) @ a[s:e]
    return out


def simulate_z(
    x: np.ndarray, blocks: np.ndarray, beta: np.ndarray, n_gwas: float, rng: np.random.Generator
) -> np.ndarray:
    """GWAS z-scores of ``n_gwas`` individuals: z = sqrt(N) R beta + e, e ~ N(0, R), R block-diagonal.

    Parameters
    ----------
    x : numpy.ndarray, shape (n, n_snps)
        Standardised reference genotypes; R_b = x_b' x_b / n within each block.
    blocks : numpy.ndarray
        Block boundaries (:func:`ld_blocks`); R is 0 between blocks.
    beta : numpy.ndarray, shape (n_snps,)
        Joint effects on the standardised genotypes (phenotype variance 1).
    n_gwas : float
        GWAS sample size N.
    rng : numpy.random.Generator
        Source of the noise (n draws per block).

    Returns
    -------
    numpy.ndarray, shape (n_snps,)
        z-scores; given beta, mean sqrt(N) R beta and covariance R exactly (module docstring).
    """
    n, m = x.shape
    beta = np.asarray(beta, float)
    if beta.shape != (m,):
        raise ValueError(f"simulate_z: beta has shape {beta.shape}, expected ({m},).")
    if n_gwas <= 0:
        raise ValueError(f"simulate_z: the GWAS sample size must be positive, got {n_gwas}.")
    z = np.empty(m)
    for s, e in zip(blocks[:-1], blocks[1:]):
        xb = x[:, s:e]
        z[s:e] = np.sqrt(n_gwas) * (xb.T @ (xb @ beta[s:e])) / n + xb.T @ rng.standard_normal(n) / np.sqrt(n)
    return z


def common_snps(maf: np.ndarray) -> np.ndarray:
    """The SNPs ldsc counts in Prop._SNPs and Prop._h2 with ``--frqfile``: 0.05 < MAF (< 0.95)."""
    f = np.asarray(maf, float)
    return (f > COMMON_MAF) & (f < 1 - COMMON_MAF)


def expected_enrichment(variance: np.ndarray, annot: np.ndarray, common: np.ndarray | None = None) -> float:
    """The true enrichment of an annotation: (share of h² in it) / (share of SNPs in it), over ``common`` SNPs.

    E = (Σ_{j∈A∩C} σ_j² / Σ_{j∈C} σ_j²) / (|A∩C| / |C|), with σ_j² the simulated per-SNP variance
    (expected heritability) and C the SNPs ldsc counts (:func:`common_snps`; all when None): what
    ldsc's ``Enrichment`` = Prop._h2 / Prop._SNPs estimates. NaN when A has no SNP in C.
    """
    v = np.asarray(variance, float)
    a = np.asarray(annot).astype(bool)
    c = np.ones(len(v), bool) if common is None else np.asarray(common, bool)
    if not (v.shape == a.shape == c.shape):
        raise ValueError(f"expected_enrichment: shapes differ ({v.shape}, {a.shape}, {c.shape}).")
    if np.any(v < 0):
        raise ValueError("expected_enrichment: per-SNP variances must be >= 0.")
    n_in, n_all = int((a & c).sum()), int(c.sum())
    if n_in == 0 or n_all == 0 or v[c].sum() == 0:
        return float("nan")
    return float((v[a & c].sum() / v[c].sum()) / (n_in / n_all))


# ----------------------------------------------------------------------------------------------
# the semi-synthetic traits on the real panel (cached, deterministic)
# ----------------------------------------------------------------------------------------------
#: ``ldsc.simulate`` keys that shape this simulation (the others are the msprime panel's).
KNOBS = ("n_gwas", "h2", "promoter_h2_ratio", "enrichment", "enriched", "null_traits", "block_bp")


def write_sumstats(path: str | os.PathLike, bim: pd.DataFrame, z: np.ndarray, n_gwas: float) -> None:
    """Summary statistics in ldsc's munged format (``SNP A1 A2 Z N``; what ``munge_sumstats.py`` writes).

    The z-scores are simulated exactly, so ``munge_sumstats.py`` (which would recompute Z from a
    rounded P and drop P = 0 beyond |z| ≈ 37) is not needed; the alleles are the panel's own.
    """
    pd.DataFrame({"SNP": bim["SNP"], "A1": bim["A1"], "A2": bim["A2"], "Z": np.round(z, 5), "N": n_gwas}).to_csv(
        path, sep="\t", index=False, compression=_GZIP
    )


def _cache_key(knobs: Mapping[str, Any], seed: int, replicates: int, raw_dir: Path) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {
                "v": SUMSTATS_MODEL_VERSION,
                "knobs": {k: knobs[k] for k in KNOBS},
                "seed": seed,
                "replicates": replicates,
                "panel": genotypes.KG_EUR_SHA256,
            },
            sort_keys=True,
        ).encode()
    )
    return hash_dataset_inputs(h, raw_dir).hexdigest()


def generate_gwas_kg(
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    knobs: Mapping[str, Any],
    seed: int,
    replicates: int = 1,
    force: bool = False,
    progress: bool = True,
    chroms: Sequence[int] = genotypes.KG_EUR_CHROMS,
) -> Path:
    """Simulated traits on the real 1000 Genomes EUR panel (chr21/chr22), cached in ``out_dir``.

    Real genotypes and hg19 positions (:mod:`chromexp.data.genotypes`), traits planted in the
    semi-synthetic dataset's enhancers at their hg19 coordinates (module docstring). ``replicates``
    GWAS per trait: replicate 0 is the notebook's GWAS, replicates 1, 2, … draw new effects and
    noise with the same per-SNP variances (the calibration of notebook 80). Deterministic from the seed, the ``KNOBS``
    of ``knobs`` and the dataset's genes and planted enhancers (all in the cache key).

    Writes ``ref/`` (:func:`chromexp.data.genotypes.write_panel`), ``baseline/baseline.<c>.annot.gz``
    (thin: base, promoter), ``blocks.tsv``, ``variances.tsv.gz`` (per SNP: MAF, the annotations and
    each trait's σ²), ``planted_<trait>.bed`` (hg19), ``gwas/<trait>.sumstats.gz`` (replicate 0),
    ``gwas/rep<k>/<trait>.sumstats.gz``, ``truth.json`` and ``manifest.json`` (last). Built in a
    temporary sibling folder renamed into place when complete.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    for name in DATASET_INPUTS:
        if not (raw_dir / name).is_file():
            raise FileNotFoundError(
                f"{raw_dir / name} is missing: generate the semi-synthetic dataset first (notebook 00_demo_data)."
            )
    missing = [k for k in KNOBS if k not in knobs]
    if missing:
        raise ValueError(f"ldsc.simulate lacks {missing}.")
    replicates = int(replicates)
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1 (the GWAS itself), got {replicates}.")
    n_gwas, h2 = float(knobs["n_gwas"]), float(knobs["h2"])
    if n_gwas <= 0 or not 0 < h2 < 1:
        raise ValueError(f"ldsc.simulate: n_gwas must be > 0 and h2 in (0, 1); got {n_gwas}, {h2}.")
    chroms = tuple(int(c) for c in chroms)
    bad = [c for c in chroms if c not in genotypes.KG_EUR_CHROMS]
    if not chroms or bad:
        raise ValueError(f"chroms must be among {genotypes.KG_EUR_CHROMS}, got {chroms}.")
    key = _cache_key(knobs, seed, replicates, raw_dir) + f" chroms={chroms}"
    try:
        if not force and json.loads((out_dir / "manifest.json").read_text())["key"] == key:
            log.info("reusing the simulated GWAS on the real panel in %s", out_dir)
            return out_dir
    except (OSError, ValueError, KeyError):
        pass
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "baseline").mkdir(parents=True)
    try:
        genotypes.write_panel(tmp / "ref", chroms)
        genes = pd.read_csv(raw_dir / "genes.tsv", sep="\t", dtype={"chrom": str})
        enhancers = pd.read_csv(raw_dir / "truth" / "enhancers.tsv.gz", sep="\t")
        hg19 = [f"chr{c}" for c in chroms]
        promoters = promoter_bed(genes[genes["chrom"].isin(hg19)])
        names = trait_names(knobs)
        planted, counts = {}, {}
        for which in knobs["enriched"]:
            bed = enhancer_bed(enhancers, which)
            planted[f"T_enh_{which}"] = bed[bed["chrom"].isin(hg19)].reset_index(drop=True)
            counts[which] = {"planted_enhancers": len(bed), "on_panel_chromosomes": len(planted[f"T_enh_{which}"])}
        # genotypes, LD blocks, annotations per chromosome
        t1 = time.perf_counter()
        per_chrom = []
        for c in progress_bar(chroms, desc="LD blocks", enabled=progress):
            bim, _, dosage = genotypes.read_kg_eur(c)
            x = genotypes.standardise(dosage)
            blocks = ld_blocks(x, bim["BP"].to_numpy(), float(knobs["block_bp"]))
            frq = pd.read_csv(tmp / "ref" / f"panel.{c}.frq", sep="\t")
            promoter = plink.annotate(bim, promoters)
            pd.DataFrame({"base": np.ones(len(bim), np.int8), "promoter": promoter}).to_csv(
                tmp / "baseline" / f"baseline.{c}.annot.gz", sep="\t", index=False, compression=_GZIP
            )
            per_chrom.append(
                {"chrom": c, "bim": bim, "x": x, "blocks": blocks, "maf": frq["MAF"].to_numpy(), "promoter": promoter}
            )
        timings["ld_blocks_s"] = time.perf_counter() - t1
        bim = pd.concat([ch["bim"] for ch in per_chrom], ignore_index=True)
        table = bim[["SNP", "CHR", "BP", "A1", "A2"]].copy()
        table["MAF"] = np.concatenate([ch["maf"] for ch in per_chrom])
        table["promoter"] = np.concatenate([ch["promoter"] for ch in per_chrom])
        common = common_snps(table["MAF"].to_numpy())
        for t, bed in planted.items():
            table[f"planted_{t}"] = plink.annotate(bim, bed)
            bed.to_csv(tmp / f"planted_{t}.bed", sep="\t", header=False, index=False)
        for t in names:
            a = table[f"planted_{t}"].to_numpy() if t in planted else np.zeros(len(table), np.int8)
            enrich = float(knobs["enrichment"]) if t in planted else 1.0
            table[f"var_{t}"] = h2 * per_snp_variance(
                a, table["promoter"].to_numpy(), enrich, float(knobs["promoter_h2_ratio"])
            )
        table.to_csv(tmp / "variances.tsv.gz", sep="\t", index=False, float_format="%.6e", compression=_GZIP)
        pd.DataFrame(
            [
                {"chrom": ch["chrom"], "block": k, "first_snp": int(s), "end_snp": int(e), "n_snps": int(e - s),
                 "start_bp": int(ch["bim"]["BP"].iloc[s]), "end_bp": int(ch["bim"]["BP"].iloc[e - 1])}
                for ch in per_chrom
                for k, (s, e) in enumerate(zip(ch["blocks"][:-1], ch["blocks"][1:]))
            ]
        ).to_csv(tmp / "blocks.tsv", sep="\t", index=False)  # fmt: skip
        # GWAS: replicate 0 and the calibration replicates
        t1 = time.perf_counter()
        reps = []
        for rep in progress_bar(range(replicates), desc="GWAS replicates", enabled=progress):
            folder = tmp / "gwas" if rep == 0 else tmp / "gwas" / f"rep{rep}"
            folder.mkdir(parents=True, exist_ok=True)
            for k, t in enumerate(names):
                rng = np.random.default_rng([seed, 17, k, rep])
                var = table[f"var_{t}"].to_numpy()
                beta = rng.standard_normal(len(var)) * np.sqrt(var)
                z, off = [], 0
                for ch in per_chrom:
                    m = len(ch["bim"])
                    z.append(simulate_z(ch["x"], ch["blocks"], beta[off : off + m], n_gwas, rng))
                    off += m
                z = np.concatenate(z)
                write_sumstats(folder / f"{t}.sumstats.gz", bim, z, n_gwas)
                row = {"replicate": rep, "trait": t, "mean_chisq": float(np.mean(z**2))}
                if t in planted:
                    a = table[f"planted_{t}"].to_numpy().astype(bool)
                    row["realized_enrichment"] = expected_enrichment(beta**2, a, common)
                reps.append(row)
        timings["gwas_s"] = time.perf_counter() - t1
        truth = {
            "simulated": True,
            "panel": genotypes.KG_EUR,
            "genotypes_are": "real",
            "panel_description": (
                f"1000 Genomes Phase 3 EUR, {int(per_chrom[0]['x'].shape[0])} people, {len(table):,} HapMap3 SNPs "
                f"on {'/'.join(f'chr{c}' for c in chroms)}, hg19"
            ),
            "traits_are": "simulated",
            "n_snps": len(table),
            "n_common_snps": int(common.sum()),
            "n_ref": int(per_chrom[0]["x"].shape[0]),
            "n_gwas": n_gwas,
            "h2": h2,
            "replicates": replicates,
            "blocks": {str(ch["chrom"]): len(ch["blocks"]) - 1 for ch in per_chrom},
            "prop_snps_promoter": float(table["promoter"].mean()),
            "enhancers": counts,
            "traits": {},
            "replicate_stats": reps,
        }
        for t in names:
            a = table[f"planted_{t}"].to_numpy().astype(bool) if t in planted else None
            var = table[f"var_{t}"].to_numpy()
            truth["traits"][t] = {
                "enriched": t in planted,
                "planted_snps": int(a.sum()) if a is not None else 0,
                "planted_prop_snps": float(a.mean()) if a is not None else 0.0,
                "planted_enrichment_all_snps": expected_enrichment(var, a) if a is not None else None,
                "planted_enrichment_expected": expected_enrichment(var, a, common) if a is not None else None,
                # ldsc's h² is that of the SNPs it counts (0.05 < MAF < 0.95)
                "h2_common_snps": float(var[common].sum()),
                "mean_chisq": next(r["mean_chisq"] for r in reps if r["trait"] == t and r["replicate"] == 0),
            }
        truth["timings"] = timings
        (tmp / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        (tmp / "manifest.json").write_text(
            json.dumps({"key": key, "simulated_traits": True, "seconds": time.perf_counter() - t0}, indent=1) + "\n"
        )
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("simulated GWAS on the real panel in %s in %.1f s", out_dir, time.perf_counter() - t0)
    return out_dir


def trait_list(out_dir: str | os.PathLike) -> list[str]:
    """Traits with summary statistics in a folder written by :func:`generate_gwas_kg` (replicate 0)."""
    return sorted(p.name[: -len(".sumstats.gz")] for p in (Path(out_dir) / "gwas").glob("*.sumstats.gz"))
