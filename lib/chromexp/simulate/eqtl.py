"""Simulated genetics of the semi-synthetic dataset: fine-mapped eQTLs (docs/methods.md, "Semi-synthetic data").

:func:`write_eqtls` is called by :func:`chromexp.simulate.roadmap.generate` and writes, into the raw
folder, deterministically from the seed (its own random streams, so nothing else changes)::

    eqtl/put_causal_eqtls_tissue_unique.tsv.gz   tissue, gene, variant, pip  (the real file's layout)
    eqtl/hg38ToHg19.simulated.over.chain.gz      a SIMULATED "GRCh38" -> hg19 chain file
    eqtl/README.md                               what these files are
    truth/eqtls.tsv.gz                           every planted eQTL with its hg19 position and kind

The real input (Wang et al. 2021, Nat Commun, Suppl. Data 7, sheet
``put_causal_eqtls_tissue_unique``) is in GRCh38 and must be lifted to hg19 before it is
overlapped with the hg19 loci. No real chain file is available offline, so the simulator invents a
build: per chromosome, "GRCh38" = hg19 shifted by an offset, with one insertion of GRCh38-only
sequence (a gap of the chain). The eQTLs are planted in hg19, written in the invented build (the
inverse of the chain), and notebook 70 lifts them back with the same code (``pyliftover``) it
runs on the UCSC ``hg38ToHg19.over.chain.gz`` for real data. A few variants are placed in the
GRCh38-only insertions: they fail to lift, as some real variants do.

Planting rule (per eQTL tissue T; C_T = the preset's cell types whose ``cell.eqtl_tissues``
list T; rates in the ``simulate.eqtl`` parameter block):

* **enhancer eQTLs** (the planted truth): each planted enhancer of gene g carries a fine-mapped
  eQTL of g in T with probability ``p_active_enhancer`` if it is active in some cell type of C_T,
  else ``p_inactive_enhancer``; the variant is uniform inside the enhancer (centre ± width / 2);
* **TSS background**: Poisson(``tss_rate``) eQTLs per gene at a signed distance ~ Normal(0,
  ``tss_sd``) from its TSS (whatever its activity: fine-mapped eQTLs concentrate near TSSs);
* **random background**: Poisson(``random_rate``) eQTLs per gene uniform in its cis window
  (TSS ± ``cis_window``); a fraction ``p_unliftable`` of them is moved into a GRCh38-only
  insertion (fails to lift);
* every variant has PIP ~ U(0.9, 1); a fraction ``p_low_pip`` of rows instead gets PIP ~
  U(0.5, 0.9), and with ``p_shared`` an eQTL is also written for another simulated tissue with
  PIP ~ U(0.1, 0.9): both fail the "PIP > 0.9 in the tissue, < 0.1 elsewhere" filter of the test,
  which is how the simulated file exercises it (the real sheet is already tissue-unique).

Gene ids carry a version suffix (``ENSG….1``) as GTEx's do; alleles are random.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .common import gzip_bytes, seeded_rng, table_bytes

EQTL_DIR = "eqtl"
EQTL_FILE = "put_causal_eqtls_tissue_unique.tsv.gz"
SIMULATED_CHAIN_FILE = "hg38ToHg19.simulated.over.chain.gz"
TRUTH_FILE = "eqtls.tsv.gz"
#: Columns of the written eQTL table (the real sheet's: tissue, gene, variant chr:pos:ref:alt, PIP).
EQTL_COLUMNS = ("tissue", "gene", "variant", "pip")
TRUTH_COLUMNS = (
    "tissue",
    "gene_id",
    "variant",
    "pip",
    "kind",
    "enhancer_id",
    "chrom",
    "pos_hg19",
    "pos_grch38",
    "passes_filter",
)

#: Written into the raw data, so part of its manifest hashes: the text (with the module name it had
#: when written, ``chromexp.simulate_eqtl``, now :mod:`chromexp.simulate.eqtl`) stays byte-identical
#: until :data:`chromexp.simulate.roadmap.MODEL_VERSION` changes.
_README = """\
# Fine-mapped eQTLs of the semi-synthetic dataset (SIMULATED)

Written by chromexp.simulate_eqtl (the planting rule is stated in notebooks/00_demo_data).

- put_causal_eqtls_tissue_unique.tsv.gz: tissue, gene (versioned Ensembl id), variant
  (chr:pos:ref:alt, 1-based, in a SIMULATED "GRCh38" build), pip: the layout of Wang et al.
  2021 Suppl. Data 7. Unlike the real sheet, it also holds rows that fail the tissue-unique filter
  (PIP <= 0.9, or >= 0.1 in another tissue) so that the filter is exercised.
- hg38ToHg19.simulated.over.chain.gz: a SIMULATED chain file from that build to hg19 (per
  chromosome an offset and one GRCh38-only insertion). It is NOT the UCSC chain; real data use
  hg38ToHg19.over.chain.gz from UCSC (chromexp download --kinds eqtl).
- ../truth/eqtls.tsv.gz: every planted eQTL with its kind (enhancer_active, enhancer_inactive,
  tss, random, unliftable), the enhancer it was planted in, its hg19 position (0-based; -1 when
  it cannot be lifted) and whether it passes the tissue-unique filter.
"""


def _rng(seed: int, *parts: Any) -> np.random.Generator:
    return seeded_rng(seed, "eqtl", *parts)


def eqtl_tissue_map(cell_types: Sequence[str] | None = None) -> dict[str, list[str]]:
    """``cell.eqtl_tissues`` of each cell type, from ``params/cells/<ID>.yaml`` (docs/methods.md, "eQTL enrichment").

    Returns
    -------
    dict
        EID -> list of GTEx tissue names (empty when no tissue matches, e.g. E003).
    """
    from .. import cells

    return {ct: list(cells.get(ct).eqtl_tissues) for ct in (cell_types or cells.ids())}


def tissues_of(tissue_map: Mapping[str, Sequence[str]], cell_types: Sequence[str]) -> dict[str, list[str]]:
    """Tissue -> the cell types (among ``cell_types``) matched to it, in first-seen order."""
    out: dict[str, list[str]] = {}
    for ct in cell_types:
        for t in tissue_map.get(ct, []):
            out.setdefault(t, []).append(ct)
    return out


# ----------------------------------------------------------------------------------------------
# the simulated chain
# ----------------------------------------------------------------------------------------------
def simulated_chain(chrom_sizes: Mapping[str, int], chroms: Sequence[str], seed: int) -> pd.DataFrame:
    """Per chromosome, the invented "GRCh38" build: an offset and one GRCh38-only insertion.

    hg19 position x (0-based) maps to ``x + offset`` for ``x < gap_at`` and to
    ``x + offset + gap_length`` otherwise; GRCh38 positions ``[0, offset)`` and
    ``[gap_at + offset, gap_at + offset + gap_length)`` have no hg19 counterpart.

    Returns
    -------
    pandas.DataFrame
        chrom, size_hg19, offset, gap_at, gap_length, size_grch38.
    """
    rows = []
    for chrom in chroms:
        r = _rng(seed, "chain", chrom)
        size = int(chrom_sizes[chrom])
        offset = int(r.integers(10_000, 500_000))
        gap_at = int(r.integers(size // 4, 3 * size // 4))
        gap_len = int(r.integers(5_000, 50_000))
        rows.append((chrom, size, offset, gap_at, gap_len, size + offset + gap_len))
    return pd.DataFrame(rows, columns=["chrom", "size_hg19", "offset", "gap_at", "gap_length", "size_grch38"])


def chain_text(chain: pd.DataFrame) -> str:
    """The UCSC chain-format text of :func:`simulated_chain` (reference = GRCh38, query = hg19)."""
    lines = []
    for i, c in enumerate(chain.itertuples(index=False), start=1):
        t_end = c.offset + c.size_hg19 + c.gap_length
        lines.append(
            f"chain 1000 {c.chrom} {c.size_grch38} + {c.offset} {t_end} {c.chrom} {c.size_hg19} + 0 {c.size_hg19} {i}"
        )
        lines.append(f"{c.gap_at}\t{c.gap_length}\t0")
        lines.append(f"{c.size_hg19 - c.gap_at}")
        lines.append("")
    return "\n".join(lines) + "\n"


def to_grch38(chain: pd.DataFrame, chrom: np.ndarray, pos_hg19: np.ndarray) -> np.ndarray:
    """hg19 0-based positions -> the invented GRCh38 0-based positions (inverse of the chain)."""
    c = chain.set_index("chrom").loc[chrom]
    pos = np.asarray(pos_hg19, np.int64)
    return pos + c["offset"].to_numpy() + np.where(pos >= c["gap_at"].to_numpy(), c["gap_length"].to_numpy(), 0)


# ----------------------------------------------------------------------------------------------
# planting
# ----------------------------------------------------------------------------------------------
def plant_eqtls(
    genes: pd.DataFrame,
    enhancers: pd.DataFrame,
    cell_types: Sequence[str],
    tissue_map: Mapping[str, Sequence[str]],
    chain: pd.DataFrame,
    knobs: Mapping[str, Any],
    seed: int,
) -> pd.DataFrame:
    """Plant fine-mapped eQTLs (see the module docstring for the rule).

    Parameters
    ----------
    genes : pandas.DataFrame
        gene_id, chrom, tss (0-based hg19), strand.
    enhancers : pandas.DataFrame
        :func:`chromexp.simulate.roadmap.plant_enhancers` output (``active_<EID>`` per cell type).
    cell_types : sequence of str
        The preset's cell types.
    tissue_map : mapping
        EID -> eQTL tissues (:func:`eqtl_tissue_map`).
    chain : pandas.DataFrame
        :func:`simulated_chain` of the genes' chromosomes.
    knobs : mapping
        The ``simulate.eqtl`` parameter block.

    Returns
    -------
    pandas.DataFrame
        One row per (tissue, gene, variant) with the :data:`TRUTH_COLUMNS`, sorted.
    """
    tissues = tissues_of(tissue_map, cell_types)
    cis = int(knobs["cis_window"])
    chain_idx = chain.set_index("chrom")
    gene_chrom = genes["chrom"].to_numpy()
    gene_tss = genes["tss"].to_numpy(np.int64)
    gene_ids = genes["gene_id"].to_numpy()
    parts = []
    for tissue, cts in tissues.items():
        r = _rng(seed, "plant", tissue)
        # enhancer eQTLs: active in any matched cell type -> p_active, else p_inactive
        if len(enhancers):
            active = np.zeros(len(enhancers), bool)
            for ct in cts:
                active |= enhancers[f"active_{ct}"].to_numpy(bool)
            p = np.where(active, knobs["p_active_enhancer"], knobs["p_inactive_enhancer"])
            hit = r.random(len(enhancers)) < p
            e = enhancers[hit]
            half = e["width"].to_numpy() / 2.0
            pos = np.floor(e["center"].to_numpy() - half + r.random(len(e)) * 2 * half).astype(np.int64)
            parts.append(
                pd.DataFrame(
                    {
                        "tissue": tissue,
                        "gene_id": e["gene_id"].to_numpy(),
                        "chrom": e["chrom"].to_numpy(),
                        "pos_hg19": pos,
                        "kind": np.where(active[hit], "enhancer_active", "enhancer_inactive"),
                        "enhancer_id": e["enhancer_id"].to_numpy(),
                    }
                )
            )
        # TSS background
        n = r.poisson(knobs["tss_rate"], len(genes))
        gi = np.repeat(np.arange(len(genes)), n)
        d = np.round(r.normal(0.0, knobs["tss_sd"], len(gi))).astype(np.int64)
        parts.append(
            pd.DataFrame(
                {
                    "tissue": tissue,
                    "gene_id": gene_ids[gi],
                    "chrom": gene_chrom[gi],
                    "pos_hg19": gene_tss[gi] + d,
                    "kind": "tss",
                    "enhancer_id": "",
                }
            )
        )
        # random cis background, a few moved into GRCh38-only sequence (unliftable)
        n = r.poisson(knobs["random_rate"], len(genes))
        gi = np.repeat(np.arange(len(genes)), n)
        pos = gene_tss[gi] + r.integers(-cis, cis + 1, len(gi))
        unlift = r.random(len(gi)) < knobs["p_unliftable"]
        parts.append(
            pd.DataFrame(
                {
                    "tissue": tissue,
                    "gene_id": gene_ids[gi],
                    "chrom": gene_chrom[gi],
                    "pos_hg19": pos,
                    "kind": np.where(unlift, "unliftable", "random"),
                    "enhancer_id": "",
                }
            )
        )
    if not parts:
        return pd.DataFrame(columns=list(TRUTH_COLUMNS))
    out = pd.concat(parts, ignore_index=True)
    size = chain_idx.loc[out["chrom"], "size_hg19"].to_numpy()
    out["pos_hg19"] = np.clip(out["pos_hg19"].to_numpy(np.int64), 0, size - 1)
    # GRCh38 (0-based) position; unliftable ones inside the chromosome's GRCh38-only insertion
    pos38 = to_grch38(chain, out["chrom"].to_numpy(), out["pos_hg19"].to_numpy())
    un = (out["kind"] == "unliftable").to_numpy()
    if un.any():
        c = chain_idx.loc[out.loc[un, "chrom"]]
        ru = _rng(seed, "unliftable")
        pos38[un] = (c["gap_at"] + c["offset"]).to_numpy() + ru.integers(0, c["gap_length"].to_numpy())
        out.loc[un, "pos_hg19"] = -1
    out["pos_grch38"] = pos38 + 1  # variant ids are 1-based
    # PIPs: high, a few low (fail PIP > 0.9); alleles
    rp = _rng(seed, "pip")
    low = rp.random(len(out)) < knobs["p_low_pip"]
    out["pip"] = np.where(low, rp.uniform(0.5, 0.9, len(out)), rp.uniform(0.9001, 1.0, len(out))).round(4)
    bases = np.array(list("ACGT"))
    ref = rp.integers(0, 4, len(out))
    alt = (ref + rp.integers(1, 4, len(out))) % 4
    out["variant"] = out["chrom"] + ":" + out["pos_grch38"].astype(str) + ":" + bases[ref] + ":" + bases[alt]
    # shared with another simulated tissue at intermediate PIP (fails "< 0.1 elsewhere")
    names = list(tissues)
    if len(names) > 1:
        rs = _rng(seed, "shared")
        shared = out[rs.random(len(out)) < knobs["p_shared"]].copy()
        if len(shared):
            other = rs.integers(1, len(names), len(shared))
            idx = np.array([names.index(t) for t in shared["tissue"]])
            shared["tissue"] = np.array(names)[(idx + other) % len(names)]
            shared["pip"] = rs.uniform(0.1, 0.9, len(shared)).round(4)
            shared["kind"] = shared["kind"] + "_shared"
            out = pd.concat([out, shared], ignore_index=True)
    # one row per (tissue, gene, variant): the highest PIP
    out = out.sort_values(
        ["tissue", "gene_id", "variant", "pip"], ascending=[True, True, True, False], kind="mergesort"
    )
    out = out.drop_duplicates(["tissue", "gene_id", "variant"]).reset_index(drop=True)
    best_other = _best_other_pip(out)
    out["passes_filter"] = (out["pip"] > 0.9) & (best_other < 0.1)
    return out[list(TRUTH_COLUMNS)]


def _best_other_pip(table: pd.DataFrame) -> np.ndarray:
    """Per row, the largest PIP of the same (gene, variant) in any *other* tissue (0 if none)."""
    key = table["gene_id"] + "|" + table["variant"]
    best, second = _top_two(table["pip"].to_numpy(float), key.to_numpy())
    # the row holding its group's maximum sees the second largest; every other row sees the maximum
    return np.where(table["pip"].to_numpy(float) == best, second, best)


def _top_two(values: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per element, the largest and second-largest value among elements with the same key."""
    codes, inv = np.unique(keys, return_inverse=True)
    order = np.lexsort((-values, inv))
    v, k = values[order], inv[order]
    first = np.full(len(codes), 0.0)
    second = np.full(len(codes), 0.0)
    start = np.r_[True, k[1:] != k[:-1]]
    first[k[start]] = v[start]
    nxt = np.r_[False, start[:-1]] & ~start  # second element of each group
    second[k[nxt]] = v[nxt]
    return first[inv], second[inv]


def write_eqtls(
    out: str | Path,
    genes: pd.DataFrame,
    enhancers: pd.DataFrame,
    cell_types: Sequence[str],
    chrom_sizes: Mapping[str, int],
    knobs: Mapping[str, Any],
    seed: int,
    level: int = 1,
) -> list[str]:
    """Plant the eQTLs and write the eQTL table, the simulated chain, a README and the truth.

    Parameters
    ----------
    out : path
        The raw folder being written (files go to ``eqtl/`` and ``truth/``).
    knobs : mapping
        The ``simulate`` parameter block (its ``eqtl`` sub-block holds the rates).

    Returns
    -------
    list of str
        The written files, relative to ``out``.
    """
    out = Path(out)
    k = knobs["eqtl"]
    chroms = list(dict.fromkeys(genes["chrom"]))
    chain = simulated_chain(chrom_sizes, chroms, seed)
    truth = plant_eqtls(genes, enhancers, cell_types, eqtl_tissue_map(cell_types), chain, k, seed)
    table = truth.assign(gene=truth["gene_id"] + ".1")[list(EQTL_COLUMNS)]
    files = {
        f"{EQTL_DIR}/{EQTL_FILE}": gzip_bytes(table_bytes(table), level),
        f"{EQTL_DIR}/{SIMULATED_CHAIN_FILE}": gzip_bytes(chain_text(chain).encode(), level),
        f"{EQTL_DIR}/README.md": _README.encode(),
        f"truth/{TRUTH_FILE}": gzip_bytes(table_bytes(truth), level),
    }
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(files)


def read_truth(raw: str | Path) -> pd.DataFrame:
    """The planted eQTLs of a semi-synthetic raw folder (``truth/eqtls.tsv.gz``)."""
    path = Path(raw) / "truth" / TRUTH_FILE
    if not path.is_file():
        raise ValueError(f"{path} is missing: the raw folder predates the eQTL simulator; regenerate it (notebook 00).")
    with gzip.open(path, "rb") as fh:
        return pd.read_csv(io.BytesIO(fh.read()), sep="\t", dtype={"enhancer_id": str}, keep_default_na=False)
