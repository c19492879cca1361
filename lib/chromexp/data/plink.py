"""PLINK 1 binary files and SNP annotations: what LD score regression and the GWAS simulator share.

:func:`write_plink` writes a reference panel (``.bed``/``.bim``/``.fam``), :func:`read_bim` reads
its SNP table, :func:`annotate` turns BED regions into the 0/1 per-SNP column that ldsc's
``make_annot.py`` writes (without bedtools), :func:`flank` makes the ±500 bp control regions and
:func:`exclude_mhc` drops the hg19 MHC. Used by :mod:`chromexp.analyses.ldsc` (real and simulated
panels) and :mod:`chromexp.simulate.gwas` (the simulated panel); it runs nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

#: hg19 MHC region excluded from the regression SNPs on real data (chr6:25-34 Mb, as the LDSC resources)
MHC = ("6", 25_000_000, 34_000_000)
BIM_COLUMNS = ("CHR", "SNP", "CM", "BP", "A1", "A2")


def write_plink(prefix: str | os.PathLike, dosage: np.ndarray, bim: pd.DataFrame, ids: Sequence[str]) -> None:
    """Write PLINK 1 binary files (SNP-major ``.bed``, ``.bim``, ``.fam``).

    Parameters
    ----------
    prefix : path
        Output prefix (``prefix.bed`` etc.).
    dosage : numpy.ndarray, shape (n_snps, n_individuals)
        Count (0, 1, 2) of the A1 allele (the first allele in the ``.bim``).
    bim : pandas.DataFrame
        Columns CHR, SNP, CM, BP, A1, A2 (one row per SNP, in ``dosage`` order).
    ids : sequence of str
        Individual IDs (written as FID and IID).
    """
    dosage = np.asarray(dosage)
    m, n = dosage.shape
    if len(bim) != m or len(ids) != n:
        raise ValueError(f"write_plink: dosage is {m} x {n} but bim has {len(bim)} rows and {len(ids)} ids.")
    if dosage.min(initial=0) < 0 or dosage.max(initial=0) > 2:
        raise ValueError("write_plink: dosages must be 0, 1 or 2.")
    # PLINK 2-bit codes: 00 hom A1, 10 het, 11 hom A2 (01 = missing, never written)
    code = np.choose(dosage.astype(np.int64), [0b11, 0b10, 0b00]).astype(np.uint8)
    pad = (-n) % 4
    if pad:
        code = np.hstack([code, np.zeros((m, pad), np.uint8)])
    code = code.reshape(m, -1, 4)
    packed = code[:, :, 0] | (code[:, :, 1] << 2) | (code[:, :, 2] << 4) | (code[:, :, 3] << 6)
    prefix = str(prefix)
    with open(prefix + ".bed", "wb") as fh:
        fh.write(bytes([0x6C, 0x1B, 0x01]))
        fh.write(packed.astype(np.uint8).tobytes())
    bim[list(BIM_COLUMNS)].to_csv(prefix + ".bim", sep="\t", header=False, index=False, float_format="%.8f")
    pd.DataFrame({"FID": ids, "IID": ids, "P": 0, "M": 0, "S": 0, "PHE": -9}).to_csv(
        prefix + ".fam", sep=" ", header=False, index=False
    )


def read_bim(path: str | os.PathLike) -> pd.DataFrame:
    """A PLINK ``.bim`` as a DataFrame (CHR as str, BP int)."""
    bim = pd.read_csv(path, sep=r"\s+", header=None, names=list(BIM_COLUMNS), dtype={"CHR": str, "SNP": str})
    if bim["BP"].isna().any():
        raise ValueError(f"{path}: malformed .bim (missing positions).")
    return bim


def _norm_chrom(c) -> str:
    c = str(c)
    return c[3:] if c.startswith("chr") else c


def annotate(bim: pd.DataFrame, regions: pd.DataFrame) -> np.ndarray:
    """0/1 per SNP: whether the SNP lies in a region (what ``make_annot.py`` writes, without bedtools).

    Parameters
    ----------
    bim : pandas.DataFrame
        CHR and BP (1-based positions, as PLINK).
    regions : pandas.DataFrame
        chrom (``chr1`` or ``1``), start, end: 0-based half-open (BED). Overlaps are allowed.

    Returns
    -------
    numpy.ndarray of int8, shape (n_snps,)
    """
    out = np.zeros(len(bim), np.int8)
    if len(regions) == 0:
        return out
    chroms = regions["chrom"].map(_norm_chrom)
    snp_chr = bim["CHR"].map(_norm_chrom).to_numpy()
    x = bim["BP"].to_numpy(np.int64) - 1  # 1-based position -> 0-based base
    for c, reg in regions.groupby(chroms):
        sel = np.flatnonzero(snp_chr == c)
        if not len(sel):
            continue
        # merge overlapping intervals, then one binary search per SNP
        r = reg.sort_values("start")[["start", "end"]].to_numpy(np.int64)
        merged = [list(r[0])]
        for s, e in r[1:]:
            if s <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], e)
            else:
                merged.append([s, e])
        merged = np.array(merged)
        i = np.searchsorted(merged[:, 0], x[sel], side="right") - 1
        ok = i >= 0
        hit = np.zeros(len(sel), bool)
        hit[ok] = x[sel][ok] < merged[i[ok], 1]
        out[sel] = hit
    return out


def flank(regions: pd.DataFrame, bp: int) -> pd.DataFrame:
    """The regions extended by ``bp`` on each side (the standard ±500 bp flanking control)."""
    out = regions.copy()
    out["start"] = np.maximum(0, out["start"].to_numpy(np.int64) - bp)
    out["end"] = out["end"].to_numpy(np.int64) + bp
    return out


def exclude_mhc(snps: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Drop SNPs in the hg19 MHC (chr6:25-34 Mb); return the rest and how many were dropped."""
    c, lo, hi = MHC
    bad = (snps["CHR"].map(_norm_chrom) == c) & (snps["BP"] >= lo) & (snps["BP"] < hi)
    return snps[~bad], int(bad.sum())
