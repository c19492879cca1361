"""Real genotypes: the vendored 1000 Genomes EUR panel of chr21/chr22 and a PLINK ``.bed`` reader.

``resources/kg_eur_chr21_22/`` holds **real** 1000 Genomes Phase 3 genotypes of the 503 EUR
individuals at the 34,958 HapMap3 SNPs of chr21 and chr22 (hg19; provenance, licence and hashes
in its ``README.md``). It is the real LD reference of notebook 80's s-LDSC simulation (real LD
and positions, simulated traits; docs/methods.md, "Stratified LD score regression").

Every read checks the files' SHA-256 against :data:`KG_EUR_SHA256` (:func:`verify_sha256`): a
modified or truncated file is an error naming the file and both hashes, never silently used.
:func:`read_kg_eur` returns one chromosome's SNP table and A1-allele counts,
:func:`standardise` the genotype matrix as ldsc standardises it, and :func:`write_panel` an
ldsc-ready copy (unzipped ``.bim``, ``.frq``, regression-SNP and merge-allele lists).
"""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paths
from ..utils import file_sha256
from .plink import BIM_COLUMNS

#: Folder of the vendored genotypes under ``lib/chromexp/resources``.
KG_EUR = "kg_eur_chr21_22"
KG_EUR_CHROMS = (21, 22)
#: SHA-256 of every vendored file (as in its README).
KG_EUR_SHA256 = {
    "g1000_eur_hm3_chr21.bed": "7c4b8d97cdb6a28102705c1421e003442569beecd7d4d60039696dd44145ebe9",
    "g1000_eur_hm3_chr21.bim.gz": "4c27f2de3b421b1741afb9b44bd3d683d065f852928f15dd4a026f324d04eebb",
    "g1000_eur_hm3_chr21.fam": "79dee21226fd04b5a889cbbeacd08079e1740e7d63b0a4dea115527e8fea4dae",
    "g1000_eur_hm3_chr22.bed": "d098309ca6a54ef216a152cc96a7edcf4559a4148d4208f0d8578c050d631ad5",
    "g1000_eur_hm3_chr22.bim.gz": "2534c725120420747c8d546ba9f45b84d41df3ac713878c5018877b7e2a7817e",
    "g1000_eur_hm3_chr22.fam": "79dee21226fd04b5a889cbbeacd08079e1740e7d63b0a4dea115527e8fea4dae",
}
_MAGIC = bytes([0x6C, 0x1B, 0x01])


class GenotypeFileError(ValueError):
    """A genotype file is not the expected one (hash) or not valid PLINK; the message names it."""


def kg_eur_dir() -> Path:
    """The vendored panel's folder (``lib/chromexp/resources/kg_eur_chr21_22``)."""
    return paths.resources_dir() / KG_EUR


sha256 = file_sha256  # hex SHA-256 of a file's bytes (chromexp.utils.file_sha256)


def verify_sha256(path: str | os.PathLike, expected: str) -> None:
    """Raise :class:`GenotypeFileError` (naming the file and both hashes) unless ``path`` hashes to ``expected``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (the vendored 1000 Genomes genotypes: reinstall chromexp).")
    got = sha256(path)
    if got != expected:
        raise GenotypeFileError(
            f"{path}: SHA-256 {got} differs from the vendored file's {expected}; the file was modified or "
            "truncated. Restore it from the repository (git checkout -- <file>) instead of using it."
        )


def read_plink_bed(path: str | os.PathLike, n_snps: int, n_individuals: int) -> np.ndarray:
    """A SNP-major PLINK 1 ``.bed`` as A1-allele counts.

    Parameters
    ----------
    path : path
        The ``.bed`` file.
    n_snps, n_individuals : int
        Rows of its ``.bim`` and ``.fam``.

    Returns
    -------
    numpy.ndarray of int8, shape (n_snps, n_individuals)
        0, 1 or 2 copies of A1 (the ``.bim``'s first allele); -1 where the genotype is missing.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw[:3].tobytes() != _MAGIC:
        raise GenotypeFileError(f"{path}: not a SNP-major PLINK 1 .bed (first bytes {raw[:3].tobytes().hex()}).")
    per_snp = (n_individuals + 3) // 4
    if raw.size != 3 + per_snp * n_snps:
        raise GenotypeFileError(
            f"{path}: {raw.size - 3} bytes of genotypes, expected {per_snp * n_snps} "
            f"({n_snps} SNPs x {n_individuals} individuals from the .bim/.fam)."
        )
    body = raw[3:].reshape(n_snps, per_snp)
    codes = np.stack([(body >> s) & 3 for s in (0, 2, 4, 6)], axis=-1).reshape(n_snps, per_snp * 4)
    # PLINK 2-bit codes: 00 hom A1, 01 missing, 10 het, 11 hom A2
    return np.array([2, -1, 1, 0], np.int8)[codes[:, :n_individuals]]


def read_kg_eur(chrom: int, root: str | os.PathLike | None = None) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """One chromosome of the vendored panel, after checking the SHA-256 of its three files.

    Parameters
    ----------
    chrom : int
        21 or 22.
    root : path, optional
        Folder of the files; default :func:`kg_eur_dir`.

    Returns
    -------
    bim : pandas.DataFrame
        CHR (int), SNP, CM (all 0), BP (hg19, 1-based), A1, A2.
    fam : pandas.DataFrame
        FID, IID (503 rows).
    dosage : numpy.ndarray of int8, shape (n_snps, 503)
        A1-allele counts (:func:`read_plink_bed`).
    """
    if int(chrom) not in KG_EUR_CHROMS:
        raise ValueError(f"The vendored panel has chromosomes {KG_EUR_CHROMS}, not {chrom!r}.")
    root = Path(root) if root is not None else kg_eur_dir()
    names = {ext: f"g1000_eur_hm3_chr{int(chrom)}.{ext}" for ext in ("bed", "bim.gz", "fam")}
    for name in names.values():
        verify_sha256(root / name, KG_EUR_SHA256[name])
    bim = pd.read_csv(root / names["bim.gz"], sep=r"\s+", header=None, names=list(BIM_COLUMNS), dtype={"SNP": str})
    fam = pd.read_csv(root / names["fam"], sep=r"\s+", header=None, usecols=[0, 1], names=["FID", "IID"], dtype=str)
    return bim, fam, read_plink_bed(root / names["bed"], len(bim), len(fam))


def allele_frequency(dosage: np.ndarray) -> np.ndarray:
    """Frequency of A1 per SNP over the non-missing genotypes, shape (n_snps,)."""
    d = np.asarray(dosage)
    ok = d >= 0
    return np.where(ok, d, 0).sum(axis=1) / (2.0 * np.maximum(ok.sum(axis=1), 1))


def standardise(dosage: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Genotypes standardised per SNP as ldsc does: missing → mean, then mean 0 and SD 1 (ddof 0).

    Parameters
    ----------
    dosage : numpy.ndarray, shape (n_snps, n_individuals)
        A1 counts with -1 for missing.

    Returns
    -------
    numpy.ndarray, shape (n_individuals, n_snps)
        Columns with zero variance are all 0.
    """
    d = np.asarray(dosage)
    x = d.astype(dtype)
    mean = 2 * allele_frequency(d).astype(dtype)
    x = np.where(d < 0, mean[:, None], x)
    x -= mean[:, None]
    sd = x.std(axis=1)
    x /= np.where(sd > 0, sd, 1)[:, None]
    return np.ascontiguousarray(x.T)


def write_panel(out_dir: str | os.PathLike, chroms=KG_EUR_CHROMS, root: str | os.PathLike | None = None) -> Path:
    """Write an ldsc-ready copy of the vendored panel into ``out_dir`` (hashes checked first).

    Per chromosome ``panel.<c>.{bed,fam}`` (copies), ``panel.<c>.bim`` (unzipped),
    ``panel.<c>.frq`` (MAF among the 503, what ``--frqfile-chr`` reads) and ``regression.<c>.snp``
    (every SNP: they are the HapMap3 SNPs, LDSC's regression SNPs); ``merge_alleles.snplist``
    (SNP, A1, A2 of all of them). ldsc 2.0.1's ``--frqfile-chr`` opens chromosome 1's ``.frq``
    only to learn the compression, so ``panel.1.frq`` is written as a copy of the first
    chromosome's when 1 is not among ``chroms`` (it is never read as chromosome 1: ldsc takes the
    chromosomes from the LD-score files).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = Path(root) if root is not None else kg_eur_dir()
    alleles = []
    for c in chroms:
        bim, fam, dosage = read_kg_eur(c, root)
        for ext in ("bed", "fam"):
            shutil.copyfile(root / f"g1000_eur_hm3_chr{c}.{ext}", out / f"panel.{c}.{ext}")
        with gzip.open(root / f"g1000_eur_hm3_chr{c}.bim.gz", "rb") as src, open(out / f"panel.{c}.bim", "wb") as dst:
            shutil.copyfileobj(src, dst)
        f = allele_frequency(dosage)
        pd.DataFrame(
            {
                "CHR": c,
                "SNP": bim["SNP"],
                "A1": bim["A1"],
                "A2": bim["A2"],
                "MAF": np.round(np.minimum(f, 1 - f), 6),
                "NCHROBS": 2 * (dosage >= 0).sum(axis=1),
            }
        ).to_csv(out / f"panel.{c}.frq", sep="\t", index=False)
        bim["SNP"].to_csv(out / f"regression.{c}.snp", header=False, index=False)
        alleles.append(bim[["SNP", "A1", "A2"]])
    if 1 not in chroms:
        shutil.copyfile(out / f"panel.{chroms[0]}.frq", out / "panel.1.frq")
    pd.concat(alleles).to_csv(out / "merge_alleles.snplist", sep="\t", index=False)
    return out
