"""The paper's gene set on real data: Chromoformer's genes, TSS choice, folds and alternative TSSs.

The paper's 18,955 genes are RefSeq genes ∩ the Roadmap RPKM matrix, with the TSS Chromoformer
chose for each, as listed in the reference repository's ``train.csv`` (one row per gene and
epigenome: ``gene_id, eid, label, expression, chrom, start, end, strand, split, neighbors,
scores``; ``start`` the 0-based TSS, ``split`` the fold 1-4 -- the layout
``chromoformer.data.ChromoformerDataset`` reads). Its test folds hold 5045 / 4751 / 4605 / 4554
genes (:data:`PAPER_FOLD_SIZES`). ``preprocessing/annotations/ensg2tss.pickle`` lists every
TSS of a gene, the chosen one first (:func:`chromexp.data.io.read_ensg2tss`); Chromoformer's
``get_neighbors`` pools the bait fragments of all of them when it chooses pCREs
(:func:`chromexp.data.dataset._select_pcres`), so that is where our alternative TSSs come from.
``refGene.tsv`` is used by the reference only for its gene ids (RefSeq ∩ the RPKM matrix); an
earlier version of this module took the alternative TSSs from it (:func:`read_refgene` stays
for comparisons).

``chromexp download`` fetches both files into ``raw/annotations/`` (kind ``annotations``); with
``data.genes: reference`` the dataset builder takes its genes from ``train.csv`` instead of
``genes.tsv`` (``data.genes: vendored``, the offline default: the vendored 19,802-gene table).

The exact column layout of ``refGene.tsv`` could not be checked offline; :func:`read_refgene`
accepts a headed table with a gene id column (``gene_id``/``ensg``/``name2``/``gene``), ``chrom``
and either a ``tss`` column or ``start``/``end`` (or ``txStart``/``txEnd``) with ``strand`` (TSS =
``start`` on +, ``end - 1`` on -), and says what it found otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..constants import CHROM_FOLD
from ..utils import get_logger

log = get_logger(__name__)

ANNOTATIONS_DIR = "annotations"
TRAIN_CSV = "train.csv"
REFGENE_TSV = "refGene.tsv"
#: Genes per test fold in the paper (Chromoformer's ``train.csv``), 18,955 in all.
PAPER_FOLD_SIZES: dict[int, int] = {1: 5045, 2: 4751, 3: 4605, 4: 4554}
GENE_SETS = ("vendored", "reference")
TRAIN_COLUMNS = ("gene_id", "chrom", "start", "strand", "split")


ENSG2TSS_PICKLE = "ensg2tss.pickle"


def annotation_paths(raw_dir: str | Path) -> dict[str, Path]:
    """``raw/annotations/train.csv`` and ``raw/annotations/refGene.tsv``."""
    root = Path(raw_dir) / ANNOTATIONS_DIR
    return {"train": root / TRAIN_CSV, "refgene": root / REFGENE_TSV, "ensg2tss": root / ENSG2TSS_PICKLE}


def gene_set(params: Mapping[str, Any]) -> str:
    """``data.genes`` checked: ``vendored`` or ``reference``."""
    value = str(params["data"].get("genes", "vendored"))
    if value not in GENE_SETS:
        raise ValueError(f"data.genes must be one of {list(GENE_SETS)}, got {value!r}.")
    return value


def read_train_csv(path: str | Path) -> pd.DataFrame:
    """One row per gene of Chromoformer's ``train.csv``: ``gene_id, gene_name, chrom, tss, strand, fold``.

    Raises ``ValueError`` (naming the file and the 1-based line) for a missing column, a gene whose
    rows disagree on its TSS/strand/fold across epigenomes, a fold outside 1-4, a strand other
    than ``+``/``-``, or a chromosome whose fold contradicts the study's fold assignment.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run `chromexp download --kinds annotations` (data.genes: reference).")
    try:
        meta = pd.read_csv(path, dtype={"gene_id": str, "chrom": str, "strand": str})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: not a CSV table ({err}).") from err
    missing = [c for c in TRAIN_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {list(meta.columns)} (expected Chromoformer's train.csv)."
        )

    def fail(mask, why):
        i = int(np.flatnonzero(np.asarray(mask))[0])
        raise ValueError(f"{path}:{i + 2}: {why} (gene {meta['gene_id'].iloc[i]}).")

    start = pd.to_numeric(meta["start"], errors="coerce")
    if start.isna().any() or (start < 0).any():
        fail(
            start.isna() | (start < 0),
            f"start {meta['start'][start.isna() | (start < 0)].iloc[0]!r} is not a 0-based position",
        )
    split = pd.to_numeric(meta["split"], errors="coerce")
    if not split.isin([1, 2, 3, 4]).all():
        fail(~split.isin([1, 2, 3, 4]), "split must be a fold 1-4")
    if not meta["strand"].isin(["+", "-"]).all():
        fail(~meta["strand"].isin(["+", "-"]), "strand must be + or -")
    meta = meta.assign(tss=start.astype(np.int64), fold=split.astype(np.int64))
    first = meta.drop_duplicates("gene_id", keep="first")
    # every epigenome's row of a gene must agree on where and in which fold the gene is
    check = meta.merge(first[["gene_id", "chrom", "tss", "strand", "fold"]], on="gene_id", suffixes=("", "_first"))
    bad = np.zeros(len(check), dtype=bool)
    for c in ("chrom", "tss", "strand", "fold"):
        bad |= (check[c] != check[f"{c}_first"]).to_numpy()
    if bad.any():
        fail(bad, "the gene's rows disagree on chrom/start/strand/split across epigenomes")
    expected = first["chrom"].map(CHROM_FOLD)
    wrong = expected.notna() & (expected != first["fold"])
    if wrong.any():
        r = first[wrong].iloc[0]
        raise ValueError(
            f"{path}: gene {r.gene_id} on {r.chrom} is in split {r.fold}, but {r.chrom} belongs to fold "
            f"{CHROM_FOLD[r.chrom]} of the study's chromosome folds."
        )
    out = first[["gene_id", "chrom", "tss", "strand", "fold"]].reset_index(drop=True)
    out.insert(1, "gene_name", out["gene_id"])
    out["gene_length"] = np.nan
    return out


def fold_sizes(genes: pd.DataFrame) -> dict[int, int]:
    """Genes per test fold (``fold`` column, or the chromosome's fold)."""
    folds = genes["fold"] if "fold" in genes.columns else genes["chrom"].map(CHROM_FOLD)
    counts = folds.value_counts()
    return {k: int(counts.get(k, 0)) for k in (1, 2, 3, 4)}


def read_reference_pcres(path: str | Path, eid: str) -> pd.DataFrame:
    """Chromoformer's own pCRE choice for epigenome ``eid`` (``neighbors``/``scores`` of ``train.csv``).

    Returns ``gene_id, slot, chrom, start, end, frequency`` (slot = position in ``neighbors``, i.e.
    its rank), for comparing our selection with the reference's on real data
    (:func:`compare_pcres`).
    """
    path = Path(path)
    meta = pd.read_csv(path, dtype={"gene_id": str, "eid": str, "neighbors": str, "scores": str})
    missing = [c for c in ("gene_id", "eid", "neighbors", "scores") if c not in meta.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} (Chromoformer's train.csv has neighbors and scores).")
    rows = []
    for r in meta[meta["eid"] == eid].itertuples():
        if pd.isna(r.neighbors) or not str(r.neighbors):
            continue
        regions, scores = str(r.neighbors).split(";"), str(r.scores).split(";")
        if len(regions) != len(scores):
            raise ValueError(f"{path}: gene {r.gene_id} ({eid}) has {len(regions)} neighbors but {len(scores)} scores.")
        for slot, (region, score) in enumerate(zip(regions, scores)):
            chrom, span = region.split(":")
            start, end = (int(v) for v in span.split("-"))
            rows.append((r.gene_id, slot, chrom, start, end, float(score)))
    return pd.DataFrame(rows, columns=["gene_id", "slot", "chrom", "start", "end", "frequency"])


def compare_pcres(ours: pd.DataFrame, reference: pd.DataFrame, genes: Sequence[str]) -> dict[str, Any]:
    """Agreement of our pCREs (``CellDataset.pcre_table()``) with the reference's, gene by gene.

    A gene agrees when both list the same fragments in the same order (scores equal to 1e-3, the
    precision of ``train.csv``). Returns ``n_genes``, ``n_agree``, ``fraction`` and up to 10
    ``examples`` of disagreeing genes with both lists.
    """
    key = ["chrom", "start", "end"]

    def lists(table):
        t = table.sort_values(["gene_id", "slot"], kind="stable")
        return {
            g: [(*k, round(float(f), 3)) for *k, f in zip(*(d[c] for c in key), d["frequency"])]
            for g, d in t.groupby("gene_id", sort=False)
        }

    a, b = lists(ours), lists(reference)
    bad = [g for g in genes if a.get(g, []) != b.get(g, [])]
    n = len(list(genes))
    return {
        "n_genes": n,
        "n_agree": n - len(bad),
        "fraction": (n - len(bad)) / n if n else float("nan"),
        "examples": [{"gene_id": g, "ours": a.get(g, []), "reference": b.get(g, [])} for g in bad[:10]],
    }


_ID_COLUMNS = ("gene_id", "ensg", "name2", "gene")
_START_COLUMNS = ("start", "txStart", "tx_start")
_END_COLUMNS = ("end", "txEnd", "tx_end")


def read_refgene(path: str | Path) -> pd.DataFrame:
    """Every annotated TSS of each gene, in file order: ``gene_id, chrom, tss, strand``.

    See the module docstring for the accepted layouts. Duplicate (gene, TSS) rows keep their first
    position (the order is the order in which Chromoformer visits a gene's TSS fragments).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist: run `chromexp download --kinds annotations` (data.genes: reference).")
    table = pd.read_csv(path, sep="\t", dtype=str)
    cols = {c.lower(): c for c in table.columns}

    def pick(options):
        return next((cols[o.lower()] for o in options if o.lower() in cols), None)

    gid, chrom, strand = pick(_ID_COLUMNS), pick(("chrom",)), pick(("strand",))
    tss_col, start, end = pick(("tss",)), pick(_START_COLUMNS), pick(_END_COLUMNS)
    if gid is None or chrom is None or (tss_col is None and (start is None or end is None or strand is None)):
        raise ValueError(
            f"{path}: cannot find the gene id / chrom / TSS columns in {list(table.columns)}; expected a gene id "
            f"({'/'.join(_ID_COLUMNS)}), chrom, and tss or start+end+strand."
        )
    if tss_col is not None:
        tss = pd.to_numeric(table[tss_col], errors="coerce")
    else:
        s, e = pd.to_numeric(table[start], errors="coerce"), pd.to_numeric(table[end], errors="coerce")
        tss = pd.Series(np.where(table[strand] == "-", e - 1, s), index=table.index)
    if tss.isna().any():
        i = int(np.flatnonzero(tss.isna())[0])
        raise ValueError(f"{path}:{i + 2}: no numeric TSS position.")
    out = pd.DataFrame(
        {
            "gene_id": table[gid].astype(str),
            "chrom": table[chrom].astype(str),
            "tss": tss.astype(np.int64),
            "strand": table[strand].astype(str) if strand is not None else ".",
        }
    )
    return out.drop_duplicates(["gene_id", "chrom", "tss"], keep="first").reset_index(drop=True)


def tss_fragments(tss_table: pd.DataFrame, tss2fragment: pd.DataFrame) -> pd.DataFrame:
    """The bait fragment of each TSS of each gene, in TSS order: ``gene_id, chrom, start, end``.

    ``tss_table``: ``gene_id, chrom, tss`` rows (:func:`chromexp.data.io.read_ensg2tss`, the reference's
    source, or :func:`read_refgene`); ``tss2fragment``: :func:`chromexp.data.io.read_tss2fragment`
    output (a TSS interval ``[tss, tss + 1)`` -> its fragment). TSSs without a fragment are left
    out (counted in the log), as Chromoformer skips them.
    """
    key = tss2fragment.rename(columns={"tss_chrom": "chrom", "tss_start": "tss"})[
        ["chrom", "tss", "frag_chrom", "frag_start", "frag_end"]
    ].drop_duplicates(["chrom", "tss"])
    merged = tss_table.assign(_order=np.arange(len(tss_table))).merge(key, on=["chrom", "tss"], how="left")
    merged = merged.sort_values("_order", kind="stable")
    missing = merged["frag_start"].isna()
    if missing.any():
        log.info("%d of %d TSSs have no pcHi-C bait fragment (no pCREs through them)", int(missing.sum()), len(merged))
    merged = merged[~missing]
    return pd.DataFrame(
        {
            "gene_id": merged["gene_id"].to_numpy(),
            "chrom": merged["frag_chrom"].astype(str).to_numpy(),
            "start": merged["frag_start"].astype(np.int64).to_numpy(),
            "end": merged["frag_end"].astype(np.int64).to_numpy(),
        }
    )


__all__ = [
    "PAPER_FOLD_SIZES",
    "GENE_SETS",
    "annotation_paths",
    "gene_set",
    "read_train_csv",
    "read_refgene",
    "tss_fragments",
    "fold_sizes",
    "read_reference_pcres",
    "compare_pcres",
]
