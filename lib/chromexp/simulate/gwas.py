"""Semi-synthetic genetics for stratified LDSC: an msprime reference panel and GWAS with planted heritability.

SIMULATED data (docs/methods.md, "Semi-synthetic data"): a reference panel and an independent GWAS sample of the
same msprime population, over a genome built from the demo genes' regions, with per-SNP heritability
enriched in the simulator's planted enhancers (``truth/enhancers.tsv.gz`` of the raw dataset).

The simulated genome and its mapping to hg19 (:func:`gene_windows`, :func:`layout`)
-----------------------------------------------------------------------------------
The models only see each gene's TSS ± ``half_window`` (+ pcHi-C fragments), and a genome-wide
panel of all chromosomes would cost hours of msprime on 2 cores. So the panel is a *stand-in
genome made of the gene windows*: the hg19 windows of the preset's autosomal genes are merged,
laid end to end in hg19 order with a ``gap`` between consecutive windows, and cut into
``n_chromosomes`` simulated chromosomes numbered from 1 (ldsc's ``--frqfile-chr`` opens chromosome 1
first). ``segments.tsv`` records every window's hg19 interval and its simulated interval; any hg19
BED (model loci, planted enhancers, promoters) is carried onto the panel by :func:`to_panel`, and
parts outside the windows are counted, never silently dropped. LD, allele frequencies and
recombination are msprime's (a constant-size population), not those of the real loci; only the
*positions of the annotations relative to each other* come from the dataset. chrX/chrY genes are
left out (LDSC is autosomal) and counted; ``chromosomes`` can restrict the genome to the windows of
some hg19 chromosomes (msprime's cost grows with length × recombination rate).

Power (measured, 2 × 5 Mb, 500 + 5,000 individuals, 1 kb elements on 3 % of SNPs, 5x): at
recombination 1e-8 per bp ldsc cannot separate 1 kb elements from their neighbourhood (LD in a
constant-size msprime population spans far more than an element; Ê = -3.3 ± 2.9), at 1e-7 it
recovers them (Ê = 5.7 ± 1.3, coefficient z = 2.7; 1.7 with the ±500 bp flank).

Heritability model (:func:`per_snp_variance`)
---------------------------------------------
Per trait, SNP j's effect is beta_j ~ N(0, sigma_j^2) on the standardised genotype with
sigma_j^2 ∝ 1 + (r_p - 1) * promoter_j + t * planted_j, where promoter_j marks SNPs within the
preset genes' promoters (TSS ± 4 kb, the toy baseline's one functional category, relative per-SNP
heritability ``promoter_h2_ratio``) and planted_j marks SNPs in the trait's planted enhancers;
t solves Prop_h2 / Prop_SNPs of the planted set = ``enrichment`` exactly (the quantity ldsc's
Enrichment estimates). Null traits have t = 0. Phenotype = genetic value scaled to h² + noise;
summary statistics are the per-SNP marginal regressions in the GWAS sample.
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

from ..data import plink
from ..utils import check_removable, get_logger, progress_bar, remove_owned_folder

log = get_logger("chromexp.simulate.gwas")

#: Bumped when the simulation changes (part of the cache key).
GWAS_MODEL_VERSION = 3  # 3: variances.tsv.gz (per-SNP truth) written beside the GWAS
#: gzip without a time stamp in the header: the same seed writes byte-identical files (the
#: default stamps the current second, so two runs straddling a second differed)
_GZIP = {"method": "gzip", "mtime": 0}

#: Allele pairs without strand ambiguity (munge_sumstats drops A/T and C/G SNPs).
ALLELE_PAIRS = (("A", "C"), ("A", "G"), ("C", "A"), ("C", "T"), ("G", "A"), ("G", "T"), ("T", "C"), ("T", "G"))
PROMOTER_FLANK = 4000  # TSS ± 4 kb = the 2 kb bins 8-11 of the distal model's window
AUTOSOMES = tuple(f"chr{i}" for i in range(1, 23))


# ----------------------------------------------------------------------------------------------
# the simulated genome and its mapping to hg19
# ----------------------------------------------------------------------------------------------
def gene_windows(genes: pd.DataFrame, half_window: int) -> tuple[pd.DataFrame, int]:
    """Merged hg19 TSS ± half_window windows of the autosomal genes; also how many genes were left out."""
    auto = genes[genes["chrom"].isin(AUTOSOMES)]
    n_out = len(genes) - len(auto)
    rows = []
    for chrom, g in auto.groupby("chrom", sort=False):
        s = np.sort(np.maximum(0, g["tss"].to_numpy(np.int64) - half_window))
        e = np.sort(g["tss"].to_numpy(np.int64) + half_window)
        cur_s, cur_e = s[0], e[0]
        for a, b in zip(s[1:], e[1:], strict=True):
            if a <= cur_e:
                cur_e = max(cur_e, b)
            else:
                rows.append((chrom, cur_s, cur_e))
                cur_s, cur_e = a, b
        rows.append((chrom, cur_s, cur_e))
    out = pd.DataFrame(rows, columns=["chrom", "start", "end"])
    out["_order"] = out["chrom"].map({c: i for i, c in enumerate(AUTOSOMES)})
    return out.sort_values(["_order", "start"]).drop(columns="_order").reset_index(drop=True), n_out


def layout(windows: pd.DataFrame, n_chromosomes: int, gap: int = 0) -> pd.DataFrame:
    """Lay hg19 windows end to end on ``n_chromosomes`` simulated chromosomes of similar length.

    Returns
    -------
    pandas.DataFrame
        chrom, start, end (hg19, 0-based half-open), sim_chr (1..n), sim_start, sim_end.
    """
    if len(windows) == 0:
        raise ValueError("layout: no gene windows (no autosomal genes in the dataset).")
    n_chromosomes = max(1, min(int(n_chromosomes), len(windows)))
    length = (windows["end"] - windows["start"]).to_numpy(np.int64)
    cum = np.cumsum(length + gap) - gap
    # window i goes to chromosome floor(k * start_i / total): contiguous, near-equal lengths
    start_cum = cum - length
    sim_chr = np.minimum(n_chromosomes - 1, (start_cum * n_chromosomes) // max(1, cum[-1])).astype(int) + 1
    out = windows.copy().reset_index(drop=True)
    out["sim_chr"] = sim_chr
    sim_start = np.zeros(len(out), np.int64)
    for c in np.unique(sim_chr):
        idx = np.flatnonzero(sim_chr == c)
        lens = length[idx]
        sim_start[idx] = np.r_[0, np.cumsum(lens + gap)[:-1]]
    out["sim_start"] = sim_start
    out["sim_end"] = sim_start + length
    return out


def to_panel(regions: pd.DataFrame, segments: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Carry hg19 BED regions onto the simulated genome (clipped to the windows).

    Returns the mapped regions (chrom ``chr<sim_chr>``, start, end, plus any extra columns of
    ``regions``) and the number of regions with no base inside any window.
    """
    parts, hit = [], np.zeros(len(regions), bool)
    reg = regions.reset_index(drop=True)
    for chrom, seg in segments.groupby("chrom", sort=False):
        sel = np.flatnonzero(reg["chrom"].to_numpy() == chrom)
        if not len(sel):
            continue
        rs, re_ = reg["start"].to_numpy(np.int64)[sel], reg["end"].to_numpy(np.int64)[sel]
        for s in seg.itertuples():
            ov = (rs < s.end) & (re_ > s.start)
            if not ov.any():
                continue
            sub = reg.iloc[sel[ov]].copy()
            lo = np.maximum(rs[ov], s.start) - s.start + s.sim_start
            hi = np.minimum(re_[ov], s.end) - s.start + s.sim_start
            sub["chrom"], sub["start"], sub["end"] = f"chr{s.sim_chr}", lo, hi
            parts.append(sub)
            hit[sel[ov]] = True
    cols = list(regions.columns)
    out = pd.concat(parts, ignore_index=True)[cols] if parts else pd.DataFrame(columns=cols)
    return out, int((~hit).sum())


def random_regions(
    rng: np.random.Generator, chrom: str, length: int, fraction: float, mean_length: float
) -> pd.DataFrame:
    """Non-overlapping random BED regions covering about ``fraction`` of [0, length)."""
    n = max(1, round(fraction * length / mean_length))
    lens = rng.exponential(mean_length, n) + 200
    lens = np.maximum(1, (lens * fraction * length / lens.sum()).astype(np.int64))
    gaps = rng.dirichlet(np.ones(n + 1)) * (length - lens.sum())
    starts = (np.cumsum(gaps[:-1]) + np.r_[0, np.cumsum(lens)[:-1]]).astype(np.int64)
    return pd.DataFrame({"chrom": chrom, "start": starts, "end": starts + lens})


# ----------------------------------------------------------------------------------------------
# the panel, the heritability model and the GWAS
# ----------------------------------------------------------------------------------------------
def simulate_chromosome(
    length: int, n_ref: int, n_gwas: int, knobs: Mapping[str, Any], seed: int, chrom: int
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One msprime chromosome: SNPs with reference-panel MAF > ``maf``, for both samples.

    Returns
    -------
    bim : pandas.DataFrame
        CHR, SNP, CM, BP (1-based), A1 (counted allele), A2.
    ref, gwas : numpy.ndarray of int8, shapes (n_snps, n_ref) and (n_snps, n_gwas)
        A1 allele counts.
    """
    import msprime

    rng = np.random.default_rng([seed, chrom, 1])
    # piecewise-constant recombination (100 kb pieces, gamma rates around the mean): cM are uneven
    edges = np.unique(np.r_[np.arange(0, length, 100_000), length]).astype(float)
    rates = rng.gamma(2.0, float(knobs["rec_rate"]) / 2.0, len(edges) - 1)
    rmap = msprime.RateMap(position=edges, rate=rates)
    ts = msprime.sim_ancestry(
        samples=n_ref + n_gwas,
        population_size=float(knobs["ne"]),
        recombination_rate=rmap,
        random_seed=seed * 1000 + chrom,
    )
    ts = msprime.sim_mutations(
        ts, rate=float(knobs["mu"]), random_seed=seed * 1000 + 500 + chrom, model=msprime.BinaryMutationModel()
    )
    maf_min = float(knobs["maf"])
    pos, ref, gw = [], [], []
    last = -1
    for v in ts.variants():
        g = v.genotypes
        d = (g[0::2] + g[1::2]).astype(np.int8)
        f = d[:n_ref].mean() / 2
        fg = d[n_ref:].mean() / 2
        p = int(v.site.position) + 1
        if min(f, 1 - f) <= maf_min or min(fg, 1 - fg) < 0.01 or p == last:
            continue
        last = p
        pos.append(p)
        ref.append(d[:n_ref])
        gw.append(d[n_ref:])
    pos = np.array(pos, np.int64)
    pairs = rng.integers(0, len(ALLELE_PAIRS), len(pos))
    bim = pd.DataFrame(
        {
            "CHR": chrom,
            "SNP": [f"sim{chrom}_{p}" for p in pos],
            "CM": rmap.get_cumulative_mass(pos - 1) * 100.0,
            "BP": pos,
            "A1": [ALLELE_PAIRS[i][1] for i in pairs],
            "A2": [ALLELE_PAIRS[i][0] for i in pairs],
        }
    )
    return bim, np.array(ref, np.int8).reshape(-1, n_ref), np.array(gw, np.int8).reshape(-1, n_gwas)


def per_snp_variance(planted: np.ndarray, promoter: np.ndarray, enrichment: float, promoter_ratio: float) -> np.ndarray:
    """Relative per-SNP heritability s_j = 1 + (r_p - 1) promoter_j + t planted_j (sums to 1).

    t is solved so that (Σ_planted s / Σ s) / mean(planted) = ``enrichment`` exactly; enrichment 1
    (or an empty planted set) gives t = 0.
    """
    a = np.asarray(planted, float)
    c = np.asarray(promoter, float)
    base = 1 + (promoter_ratio - 1) * c
    m, ma = len(a), a.sum()
    if ma == 0 or enrichment == 1:
        return base / base.sum()
    e = enrichment * ma / m  # target share of h2 in the planted set
    if e >= 1:
        raise ValueError(f"enrichment {enrichment} on {ma / m:.1%} of SNPs would put more than all h2 there.")
    # (Σ base·a + t·ma) / (Σ base + t·ma) = e
    t = (e * base.sum() - (base * a).sum()) / (ma * (1 - e))
    if t < -1:
        raise ValueError("per_snp_variance: the requested enrichment needs negative per-SNP heritability.")
    s = base + t * a
    return s / s.sum()


def gwas(
    genotypes: np.ndarray, variances: Mapping[str, np.ndarray], h2: float, seed: int, chunk: int = 4000
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Phenotypes and marginal association statistics in the GWAS sample.

    Parameters
    ----------
    genotypes : numpy.ndarray of int8, shape (n_snps, n_individuals)
    variances : mapping trait -> numpy.ndarray, shape (n_snps,)
        Relative per-SNP heritability (summing to 1) of each trait.

    Returns
    -------
    dict trait -> (beta, se, p, realized beta²) per SNP (beta per A1 allele, phenotype in SD units)
    """
    from scipy import stats

    rng = np.random.default_rng([seed, 7])
    m, n = genotypes.shape
    traits = list(variances)
    b = np.column_stack([rng.standard_normal(m) * np.sqrt(h2 * variances[t]) for t in traits])
    p = genotypes.mean(axis=1, dtype=np.float64) / 2
    sd = np.sqrt(2 * p * (1 - p))

    def standardised(i):
        x = genotypes[i : i + chunk].astype(np.float64)
        return (x - 2 * p[i : i + chunk, None]) / sd[i : i + chunk, None]

    g = np.zeros((n, len(traits)))
    for i in range(0, m, chunk):
        g += standardised(i).T @ b[i : i + chunk]
    y = g + rng.standard_normal((n, len(traits))) * np.sqrt(1 - h2)
    y = (y - y.mean(0)) / y.std(0)
    r = np.zeros((m, len(traits)))
    for i in range(0, m, chunk):
        r[i : i + chunk] = standardised(i) @ y / n
    t = r * np.sqrt((n - 2) / (1 - r**2))
    beta = r / sd[:, None]
    se = beta / np.where(t == 0, np.nan, t)
    pval = 2 * stats.norm.sf(np.abs(t))
    return {tr: (beta[:, k], se[:, k], pval[:, k], b[:, k] ** 2) for k, tr in enumerate(traits)}


def write_frq(path: str | os.PathLike, bim: pd.DataFrame, ref: np.ndarray) -> None:
    """PLINK ``.frq`` of the reference panel (what ``--frqfile-chr`` reads)."""
    f = ref.mean(axis=1) / 2
    pd.DataFrame(
        {
            "CHR": bim["CHR"],
            "SNP": bim["SNP"],
            "A1": bim["A1"],
            "A2": bim["A2"],
            "MAF": np.round(np.minimum(f, 1 - f), 6),
            "NCHROBS": 2 * ref.shape[1],
        }
    ).to_csv(path, sep="\t", index=False)


def trait_names(knobs: Mapping[str, Any]) -> list[str]:
    """Names of the simulated traits: one per enhancer set of ``enriched`` and the null traits."""
    return [f"T_enh_{s}" for s in knobs["enriched"]] + [f"T_null{i + 1}" for i in range(int(knobs["null_traits"]))]


def simulate_panel_and_gwas(
    out: str | os.PathLike,
    lengths: Mapping[int, int],
    planted: Mapping[str, pd.DataFrame],
    promoters: pd.DataFrame,
    knobs: Mapping[str, Any],
    seed: int,
    progress: bool = True,
) -> dict[str, Any]:
    """Simulate the panel and GWAS on chromosomes ``lengths`` and write what ldsc reads into ``out``.

    Parameters
    ----------
    lengths : mapping sim_chr -> length (bp)
    planted : mapping trait -> BED on the simulated genome (chrom ``chr<k>``, start, end)
        The regions whose per-SNP heritability is enriched (``knobs['enrichment']``) in that trait;
        a trait mapped to an empty table (or absent from :func:`trait_names`) is a null trait.
    promoters : BED on the simulated genome: the toy baseline's functional category.
    knobs : the ``ldsc.simulate`` parameter block.

    Writes ``ref/panel.<k>.{bed,bim,fam,frq}``, ``ref/regression.<k>.snp`` (a random
    ``regression_fraction`` of SNPs: the "HapMap3" regression SNPs), ``ref/merge_alleles.snplist``,
    ``baseline/baseline.<k>.annot.gz`` (thin: base, promoter), ``gwas/<trait>.sumstats.txt.gz``,
    ``variances.tsv.gz`` (per SNP: reference MAF, promoter, each trait's planted flag and σ²) and
    returns the truth (also in ``truth.json``).
    """
    out = Path(out)
    for d in ("ref", "baseline", "gwas"):
        (out / d).mkdir(parents=True, exist_ok=True)
    n_ref, n_gwas = int(knobs["n_ref"]), int(knobs["n_gwas"])
    rng = np.random.default_rng([seed, 3])
    bims, gwas_geno, timings = [], [], {}
    t0 = time.perf_counter()
    for k in progress_bar(sorted(lengths), desc="msprime chromosomes", enabled=progress, leave=True):
        bim, ref, gw = simulate_chromosome(int(lengths[k]), n_ref, n_gwas, knobs, seed, int(k))
        if len(bim) == 0:
            raise ValueError(f"simulated chromosome {k} ({lengths[k]} bp) has no SNP with MAF > {knobs['maf']}.")
        prefix = out / "ref" / f"panel.{k}"
        plink.write_plink(prefix, ref, bim, [f"ref{i}" for i in range(n_ref)])
        write_frq(f"{prefix}.frq", bim, ref)
        f = ref.mean(axis=1) / 2
        bim["MAF"] = np.round(np.minimum(f, 1 - f), 6)  # as in the .frq ldsc reads
        reg = rng.random(len(bim)) < float(knobs["regression_fraction"])
        bim["regression"] = reg
        bim.loc[reg, "SNP"].to_csv(out / "ref" / f"regression.{k}.snp", header=False, index=False)
        bim["promoter"] = plink.annotate(bim.assign(CHR=f"chr{k}"), promoters)
        pd.DataFrame({"base": np.ones(len(bim), np.int8), "promoter": bim["promoter"]}).to_csv(
            out / "baseline" / f"baseline.{k}.annot.gz", sep="\t", index=False, compression=_GZIP
        )
        bims.append(bim)
        gwas_geno.append(gw)
    timings["msprime_panel_s"] = time.perf_counter() - t0
    bim = pd.concat(bims, ignore_index=True)
    bim.loc[bim["regression"], ["SNP", "A1", "A2"]].to_csv(out / "ref" / "merge_alleles.snplist", sep="\t", index=False)
    x = np.concatenate(gwas_geno)
    del gwas_geno

    t0 = time.perf_counter()
    names = trait_names(knobs)
    chr_bim = bim.assign(CHR="chr" + bim["CHR"].astype(str))
    variances, annots = {}, {}
    for t in names:
        regions = planted.get(t)
        annots[t] = plink.annotate(chr_bim, regions) if regions is not None else np.zeros(len(bim), np.int8)
        enrich = float(knobs["enrichment"]) if t.startswith("T_enh_") else 1.0
        variances[t] = per_snp_variance(
            annots[t], bim["promoter"].to_numpy(), enrich, float(knobs["promoter_h2_ratio"])
        )
    h2 = float(knobs["h2"])
    results = gwas(x, variances, h2, seed)
    # the per-SNP truth (expected heritability h2 * s_j per trait): the expected enrichment of any
    # annotation (chromexp.simulate.sumstats.expected_enrichment, notebook 80)
    truth_table = bim[["SNP", "CHR", "BP", "MAF", "promoter"]].copy()
    for t in names:
        truth_table[f"planted_{t}"] = annots[t]
        truth_table[f"var_{t}"] = h2 * variances[t]
    truth_table.to_csv(out / "variances.tsv.gz", sep="\t", index=False, float_format="%.6e", compression=_GZIP)
    truth = {
        "simulated": True,
        "n_snps": len(bim),
        "n_ref": n_ref,
        "n_gwas": n_gwas,
        "h2": h2,
        "chromosomes": {str(k): int(v) for k, v in lengths.items()},
        "prop_snps_promoter": float(bim["promoter"].mean()),
        "traits": {},
    }
    # truth per trait, against the trait's planted set (null traits: the first enriched trait's set)
    reference = next((annots[t] for t in names if t.startswith("T_enh_")), np.zeros(len(bim), np.int8))
    for t in names:
        beta, se, p, b2 = results[t]
        a = (annots[t] if t.startswith("T_enh_") else reference).astype(bool)
        v = variances[t]
        truth["traits"][t] = {
            "planted_prop_snps": float(a.mean()),
            "planted_enrichment": float(v[a].sum() / a.mean()) if a.any() else None,
            "realized_enrichment": float(b2[a].sum() / b2.sum() / a.mean()) if a.any() else None,
            "per_snp_h2_ratio_in_vs_out": float(v[a].mean() / v[~a].mean()) if a.any() else None,
            "mean_chisq": float(np.nanmean((beta / se) ** 2)),
        }
        freq = x.mean(axis=1) / 2
        pd.DataFrame(
            {
                "SNP": bim["SNP"],
                "CHR": bim["CHR"],
                "BP": bim["BP"],
                "A1": bim["A1"],
                "A2": bim["A2"],
                "FRQ": np.round(freq, 5),
                "BETA": beta,
                "SE": se,
                "P": p,
                "N": n_gwas,
            }
        ).to_csv(out / "gwas" / f"{t}.sumstats.txt.gz", sep="\t", index=False, float_format="%.6g", compression=_GZIP)
    timings["gwas_s"] = time.perf_counter() - t0
    truth["timings"] = timings
    (out / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
    return truth


# ----------------------------------------------------------------------------------------------
# from the semi-synthetic dataset: planted enhancers -> traits (cached, deterministic)
# ----------------------------------------------------------------------------------------------
def enhancer_bed(enhancers: pd.DataFrame, which: str) -> pd.DataFrame:
    """BED of planted enhancers: ``all`` of them, or those active in cell type ``which``."""
    e = enhancers
    if which != "all":
        col = f"active_{which}"
        if col not in e.columns:
            known = [c[len("active_") :] for c in e.columns if c.startswith("active_")]
            raise ValueError(f"ldsc.simulate.enriched: no planted enhancers for {which!r}; the dataset has {known}.")
        e = e[e[col].astype(bool)]
    half = e["width"].to_numpy(np.int64) // 2
    c = e["center"].to_numpy(np.int64)
    return pd.DataFrame(
        {"chrom": e["chrom"].to_numpy(), "start": c - half, "end": c - half + e["width"].to_numpy(np.int64)}
    )


def promoter_bed(genes: pd.DataFrame) -> pd.DataFrame:
    """TSS ± 4 kb of each gene (the distal model's promoter bins 8-11)."""
    t = genes["tss"].to_numpy(np.int64)
    return pd.DataFrame(
        {"chrom": genes["chrom"].to_numpy(), "start": np.maximum(0, t - PROMOTER_FLANK), "end": t + PROMOTER_FLANK}
    )


#: The dataset files a simulated GWAS is drawn from (its caches are keyed on their bytes).
DATASET_INPUTS = ("genes.tsv", "truth/enhancers.tsv.gz")


def hash_dataset_inputs(h: Any, raw_dir: Path) -> Any:
    """Feed the bytes of :data:`DATASET_INPUTS` under ``raw_dir`` into the hash ``h``; return ``h``."""
    for name in DATASET_INPUTS:
        h.update((Path(raw_dir) / name).read_bytes())
    return h


def _cache_key(knobs: Mapping[str, Any], seed: int, raw_dir: Path, half_window: int) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps({"v": GWAS_MODEL_VERSION, "knobs": knobs, "seed": seed, "hw": half_window}, sort_keys=True).encode()
    )
    return hash_dataset_inputs(h, raw_dir).hexdigest()


def generate_gwas(
    raw_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    knobs: Mapping[str, Any],
    seed: int,
    half_window: int = 20_000,
    force: bool = False,
) -> Path:
    """Semi-synthetic panel + GWAS for a generated dataset (``raw_dir``), cached in ``out_dir``.

    Deterministic from the seed, the ``ldsc.simulate`` knobs and the dataset's genes and planted
    enhancers (their bytes are part of the cache key, in ``manifest.json``). Written to a
    temporary sibling folder renamed into place when complete.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    for name in DATASET_INPUTS:
        if not (raw_dir / name).is_file():
            raise FileNotFoundError(
                f"{raw_dir / name} is missing: generate the semi-synthetic dataset first (notebook 00_demo_data)."
            )
    knobs = json.loads(json.dumps(dict(knobs)))
    key = _cache_key(knobs, seed, raw_dir, half_window)
    try:
        if not force and json.loads((out_dir / "manifest.json").read_text())["key"] == key:
            log.info("reusing the simulated panel and GWAS in %s", out_dir)
            return out_dir
    except (OSError, ValueError, KeyError):
        pass
    # replaced at the end: only a folder this function wrote (its manifest) or an empty one
    check_removable(out_dir, "the simulated panel and GWAS folder", ("manifest.json",))
    t0 = time.perf_counter()
    genes = pd.read_csv(raw_dir / "genes.tsv", sep="\t", dtype={"chrom": str})
    enhancers = pd.read_csv(raw_dir / "truth" / "enhancers.tsv.gz", sep="\t")
    keep = list(knobs.get("chromosomes") or AUTOSOMES)
    unknown = [c for c in keep if c not in AUTOSOMES]
    if unknown:
        raise ValueError(f"ldsc.simulate.chromosomes: {unknown} are not autosomes (chr1..chr22).")
    n_other = int((genes["chrom"].isin(AUTOSOMES) & ~genes["chrom"].isin(keep)).sum())
    windows, n_sex = gene_windows(genes[genes["chrom"].isin(keep) | ~genes["chrom"].isin(AUTOSOMES)], half_window)
    if n_other:
        log.info("%d genes on autosomes outside ldsc.simulate.chromosomes are not on the simulated genome", n_other)
    if "chr1" not in set(windows["chrom"]):
        log.warning("no chr1 genes: simulated chromosome 1 holds the first autosome's windows")
    segments = layout(windows, int(knobs["n_chromosomes"]), int(knobs["gap"]))
    lengths = {int(c): int(g["sim_end"].max()) for c, g in segments.groupby("sim_chr")}
    promoters, n_prom_out = to_panel(promoter_bed(genes[genes["chrom"].isin(AUTOSOMES)]), segments)
    planted, counts = {}, {}
    for which in knobs["enriched"]:
        bed = enhancer_bed(enhancers, which)
        mapped, n_out = to_panel(bed, segments)
        planted[f"T_enh_{which}"] = mapped
        counts[which] = {"planted_enhancers": len(bed), "outside_windows": n_out}
        log.info(
            "trait T_enh_%s: %d planted enhancers, %d outside the simulated windows (pcHi-C fragments far from TSSs)",
            which,
            len(bed),
            n_out,
        )
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        segments.to_csv(tmp / "segments.tsv", sep="\t", index=False)
        for t, bed in planted.items():
            bed.to_csv(tmp / f"planted_{t}.bed", sep="\t", header=False, index=False)
        truth = simulate_panel_and_gwas(tmp, lengths, planted, promoters, knobs, seed)
        truth["mapping"] = {
            "windows": len(segments),
            "genes_on_sex_chromosomes_left_out": n_sex,
            "genes_on_other_autosomes_left_out": n_other,
            "promoters_outside_windows": n_prom_out,
            "enhancers": counts,
            "simulated_bp": int(sum(lengths.values())),
        }
        (tmp / "truth.json").write_text(json.dumps(truth, indent=1) + "\n")
        (tmp / "manifest.json").write_text(
            json.dumps({"key": key, "simulated": True, "seconds": time.perf_counter() - t0}, indent=1) + "\n"
        )
        remove_owned_folder(out_dir, "the simulated panel and GWAS folder", ("manifest.json",))
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("simulated panel + GWAS in %s in %.1f s", out_dir, time.perf_counter() - t0)
    return out_dir


def read_segments(path: str | os.PathLike) -> pd.DataFrame:
    """The hg19 -> simulated-genome mapping written by :func:`generate_gwas`."""
    return pd.read_csv(path, sep="\t", dtype={"chrom": str})


def trait_list(out_dir: str | os.PathLike) -> Sequence[str]:
    """Traits with summary statistics in a simulated GWAS folder."""
    return sorted(p.name[: -len(".sumstats.txt.gz")] for p in (Path(out_dir) / "gwas").glob("*.sumstats.txt.gz"))
