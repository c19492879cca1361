"""Per-cell-type dataset store: genes, folds, binned promoter windows and pCREs (docs/methods.md, "Signal, windows and bins" / "Genes, folds and pCREs").

``build_dataset(params, cell_type)`` turns the raw inputs of one cell type (tagAlign reads per mark,
the gene table, the RPKM matrix, promoter-capture Hi-C pairs) into one HDF5 store under
``paths.processed_dir(params, cell_type)/dataset.h5``; ``load_dataset`` opens it as a
:class:`CellDataset`, the object every model notebook reads.

What the store holds (all signal values are ``log_base(mean depth + 1)`` in float32, computed
exactly from the reads by :mod:`chromexp.data.signal`):

* ``genes``: one row per kept gene, sorted by (chromosome, TSS, gene id): ``gene_id, gene_name,
  chrom, tss, strand, fold, rpkm, target = log2(rpkm + 1), label = rpkm >= median``, where the
  median is taken over the *kept* genes of this cell type (the vendored real E003 check uses
  the genome-wide E003 median instead, see :func:`build_real_e003`);
* ``promoter/<res>``: (n_genes, n_marks, 2 * half_window / res) bins of TSS ± half_window,
  strand-oriented like the reference (window ``[TSS - hw, TSS + hw)`` for both strands, bins
  reversed for minus-strand genes: bin 0 is the most upstream, the TSS between bins n/2 - 1
  and n/2);
* ``fragments``: every distinct pCRE fragment, binned from its own start at each resolution
  (ragged: values + offsets, the last bin partial), never strand-flipped; and per gene up to
  ``max_pcres`` fragment indices with their normalised interaction frequencies;
* ``flanks``: mean over ``[TSS - f, TSS + f)`` for each ``f`` in ``dataset.naive_flanks``;
* ``exclusions``: every gene or pCRE left out, counted by reason (never dropped silently).

Storing float32 keeps the exact means to float32 precision (float16 would not: it has 11
significant bits). Size at full scale, measured with ``bench/bench_binning.py --store`` (18,460
genes with the real hg19 TSSs, 7 marks, 135,722 distinct pCRE fragments of median ~5 kb): a
565 MB store (promoter bins 18,460 × 7 × (400 + 80 + 20) × 4 B = 258 MB; fragments stored
once each, unpadded); opening it and reading every promoter tensor takes ~2.5 s, one mark's
padded 100 bp pCRE tensor ~3.5 s (2 CPU cores).

Where we differ from the references (on purpose)
-------------------------------------------------
* Validation genes: whole training chromosomes chosen by the fixed rule of
  :func:`validation_chromosomes`; the reference split the held-out fold by an unordered ``set``
  of chromosomes, which is not reproducible (docs/methods.md, "Genes, folds and pCREs").
* Label: ``RPKM >= median``, as Chromoformer's preprocessing labels genes (not ``>``; the two
  differ only for genes exactly at the median).
* Validation share: whole chromosomes of the *training* folds (:func:`validation_chromosomes`,
  ``dataset.validation_fraction`` = 0.12 of the training genes), so fold k is tested on all of
  fold k's genes; on the vendored 19,802-gene table that is ≈ 64–67 % train / 9–10 % validation /
  24–27 % test per fold. The reference instead split the held-out fold's chromosomes into
  validation and test through an unordered ``set`` (not reproducible from run to run).
* pCRE selection follows Chromoformer's ``get_neighbors`` / ``get_partners``: partners pooled
  over *all* TSS fragments of a gene (alternative TSSs, when the gene's TSS fragments are given:
  ``data.genes: reference``), a partner reached twice keeping its *first-seen* score, then
  frequency ``> 1.5``, fragments longer than 40 kb skipped *before* the top-8 cut, ranking by
  ``(-frequency, "chrom:start-end")`` as its priority queue does (ties in string order). Trans
  pairs and fragments with unknown signal are also skipped before the cut, each counted in
  ``exclusions``. With one TSS per gene (the vendored gene table, the semi-synthetic data) the
  bait is the fragment containing that TSS.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from .. import provenance as _provenance
from ..constants import CHROM_FOLD, CHROMOSOMES, FOLD_CHROMS, MARKS, SEMI_SYNTHETIC
from ..utils import atomic_path, get_logger, remove_stale_temporaries
from . import io, reference_genes, signal

log = get_logger(__name__)

STORE_NAME = "dataset.h5"
FORMAT_VERSION = 1

#: Why a gene or pCRE can be left out. Gene reasons are checked in this order; a gene is counted
#: under the first reason that applies.
GENE_REASONS: dict[str, str] = {
    "duplicate_gene_id": "gene id listed more than once in the gene table (first row kept)",
    "no_tss": "no TSS in the gene table",
    "unknown_chromosome": "chromosome not among chr1-22, X, Y or not in the chromosome sizes",
    "unknown_strand": "strand unknown ('.'): windows cannot be oriented",
    "no_expression": "no RPKM for this cell type in the expression matrix",
    "window_outside_chromosome": "TSS ± half_window extends past a chromosome end",
    "empty_track": "no read at all on the gene's chromosome in at least one mark (e.g. chrY in a female sample)",
    "signal_unknown": "depth unknown over part of TSS ± half_window (input track covers only some regions)",
}
PCRE_REASONS: dict[str, str] = {
    "pcre_trans": "interacting fragment on another chromosome than the bait",
    "pcre_low_frequency": "normalised interaction frequency <= dataset.pcre_min_frequency (the pCRE rule)",
    "pcre_too_long": "fragment longer than dataset.pcre_max_length",
    "pcre_duplicate": "same fragment reached twice for one gene (e.g. from two TSS fragments): first-seen score kept, as Chromoformer",
    "pcre_signal_unknown": "depth unknown over part of the fragment",
    "pcre_trimmed": "more than dataset.max_pcres pCREs: the lowest-ranked were dropped",
}
#: Reads left out or changed while reading the tagAlign files (``io.read_tagalign``), level "read";
#: the description lists the counts per mark and chromosome.
READ_REASONS: dict[str, str] = {
    "reads_unknown_chromosome": "reads on chromosomes absent from the chromosome sizes (chrM, unplaced contigs), skipped",
    "reads_clipped": "reads running past their chromosome end, clipped to it (as bedtools genomecov does)",
    "reads_past_end": "reads starting at or past their chromosome end (they cover nothing), skipped as bedtools does",
}
EXCLUSION_COLUMNS = ("reason", "level", "n_genes", "n_items", "example_gene_ids", "description")


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------
def _settings(params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that decide a store's content (part of its build key)."""
    sig, ds = params["signal"], params["dataset"]
    resolutions = [int(r) for r in sig["resolutions"]]
    hw = int(sig["half_window"])
    for r in resolutions:
        if r <= 0 or (2 * hw) % r:
            raise ValueError(
                f"signal.resolutions: {r} bp does not divide the window 2 × signal.half_window = {2 * hw}."
            )
    flanks = [int(f) for f in ds["naive_flanks"]]
    if any(f <= 0 or f > hw for f in flanks):
        raise ValueError(f"dataset.naive_flanks {flanks} must be positive and <= signal.half_window ({hw}).")
    signal.log_base_value(sig["log_base"])
    marks = [m for m in MARKS if m in params["marks"]]
    unknown = [m for m in params["marks"] if m not in MARKS]
    if unknown or not marks:
        raise ValueError(f"marks: unknown or empty {params['marks']}; known marks are {', '.join(MARKS)}.")
    return {
        "format_version": FORMAT_VERSION,
        "marks": marks,
        "resolutions": resolutions,
        "half_window": hw,
        "log_base": str(sig["log_base"]),
        "naive_flanks": flanks,
        "pcre_min_frequency": float(ds["pcre_min_frequency"]),
        "pcre_max_length": int(ds["pcre_max_length"]),
        "max_pcres": int(ds["max_pcres"]),
        # stores chosen by the older rule (one bait, highest score for a duplicate) are rebuilt
        "pcre_rule": "chromoformer: all TSS fragments, first-seen score",
    }


# ---------------------------------------------------------------------------------------------
# exclusions
# ---------------------------------------------------------------------------------------------
class _Exclusions:
    def __init__(self):
        self.rows: dict[str, dict[str, Any]] = {}
        for reason, text in GENE_REASONS.items():
            self.rows[reason] = {"reason": reason, "level": "gene", "genes": [], "n_items": 0, "description": text}
        for reason, text in PCRE_REASONS.items():
            self.rows[reason] = {"reason": reason, "level": "pcre", "genes": [], "n_items": 0, "description": text}
        for reason, text in READ_REASONS.items():
            self.rows[reason] = {"reason": reason, "level": "read", "genes": [], "n_items": 0, "description": text}
        self.read_details: dict[str, list[str]] = {reason: [] for reason in READ_REASONS}

    def add_reads(self, mark: str, report: Mapping[str, Any]) -> None:
        """Count what ``io.read_tagalign`` skipped or clipped in ``mark``'s reads (its ``read_report``)."""
        unknown = dict(report.get("unknown_chromosomes", {}))
        for reason, n, detail in (
            ("reads_unknown_chromosome", sum(unknown.values()), ", ".join(f"{c} {k}" for c, k in unknown.items())),
            ("reads_clipped", int(report.get("clipped", 0)), ""),
            ("reads_past_end", int(report.get("past_end", 0)), ""),
        ):
            if n:
                self.rows[reason]["n_items"] += n
                self.read_details[reason].append(f"{mark}: {detail or n}")

    def add(self, reason: str, gene_ids: Sequence[str], n_items: int | None = None) -> None:
        row = self.rows[reason]
        ids = list(map(str, gene_ids))
        row["genes"].extend(ids)
        row["n_items"] += len(ids) if n_items is None else int(n_items)

    def table(self) -> pd.DataFrame:
        out = []
        for row in self.rows.values():
            genes = list(dict.fromkeys(row["genes"]))
            details = self.read_details.get(row["reason"])
            out.append(
                {
                    "reason": row["reason"],
                    "level": row["level"],
                    "n_genes": len(genes),
                    "n_items": row["n_items"],
                    "example_gene_ids": ",".join(genes[:5]),
                    "description": row["description"] + (f" ({'; '.join(details)})" if details else ""),
                }
            )
        return pd.DataFrame(out, columns=list(EXCLUSION_COLUMNS))


# ---------------------------------------------------------------------------------------------
# validation split
# ---------------------------------------------------------------------------------------------
def _chrom_rank(chrom: str) -> int:
    return CHROMOSOMES.index(chrom) if chrom in CHROMOSOMES else len(CHROMOSOMES)


def validation_chromosomes(gene_counts: Mapping[str, int], fold: int, fraction: float) -> list[str]:
    """Whole training chromosomes held out for early stopping when ``fold`` is the test fold.

    Deterministic rule (replaces the reference's unordered ``set``): walk the training
    chromosomes from the last to the first in karyotype order (chrY, chrX, chr22, ..., chr1) and
    add a chromosome whenever that brings the held-out gene count closer to
    ``fraction × (training genes)``; if that selects nothing, take the chromosome whose gene
    count is closest to the target. Walking small chromosomes first spreads the validation set
    over several chromosomes.

    Parameters
    ----------
    gene_counts : mapping chrom -> number of genes
    fold : int
        Test fold (1-4); its chromosomes are never chosen.
    fraction : float
        Target fraction of the training folds' genes, in (0, 1).
    """
    if not 0 < fraction < 1:
        raise ValueError(f"dataset.validation_fraction must be in (0, 1), got {fraction}.")
    if fold not in FOLD_CHROMS:
        raise ValueError(f"fold must be one of {list(FOLD_CHROMS)}, got {fold!r}.")
    train = [c for c, n in gene_counts.items() if n > 0 and CHROM_FOLD.get(c) not in (None, fold)]
    train.sort(key=_chrom_rank, reverse=True)
    target = fraction * sum(gene_counts[c] for c in train)
    chosen, total = [], 0
    for c in train:
        if abs(total + gene_counts[c] - target) < abs(total - target):
            chosen.append(c)
            total += gene_counts[c]
    if not chosen and train:
        chosen = [min(train, key=lambda c: (abs(gene_counts[c] - target), _chrom_rank(c)))]
    return sorted(chosen, key=_chrom_rank)


# ---------------------------------------------------------------------------------------------
# the dataset object
# ---------------------------------------------------------------------------------------------
def _select_marks(available: Sequence[str], marks) -> list[int]:
    if marks is None:
        return list(range(len(available)))
    if isinstance(marks, str):
        marks = [marks]
    idx = []
    for m in marks:
        if m not in available:
            raise ValueError(f"Mark {m!r} is not in this dataset (it has {', '.join(available)}).")
        idx.append(list(available).index(m))
    if not idx:
        raise ValueError("marks must name at least one mark.")
    return idx


class CellDataset:
    """One cell type's dataset (see the module docstring); arrays are read lazily from the store.

    Attributes
    ----------
    cell_type : str
    provenance : str
        ``"semi-synthetic"`` or ``"real"``.
    marks : tuple of str
        In ``constants.MARKS`` order.
    resolutions : tuple of int
    genes : pandas.DataFrame, one row per gene in store order
        ``gene_id, gene_name, chrom, tss, strand, fold, rpkm, target, label``.
    exclusions : pandas.DataFrame
        ``reason, level ("gene"/"pcre"), n_genes, n_items, example_gene_ids, description``.
    """

    def __init__(self, path: str | Path):
        import h5py

        self.path = Path(path)
        if not self.path.is_file():
            raise ValueError(f"No dataset store at {self.path}; build it first (chromexp.data.dataset.build_dataset).")
        with h5py.File(self.path, "r") as f:
            attrs = dict(f.attrs)
            if not attrs.get("complete", False):
                raise ValueError(f"{self.path} is an incomplete dataset store; rebuild it with force=True.")
            self.settings: dict[str, Any] = json.loads(attrs["settings"])
            self.build_key: str = str(attrs["build_key"])
            self.cell_type: str = str(attrs["cell_type"])
            self.provenance: str = str(attrs["provenance"])
            self.label_median: float = float(attrs["label_median"])
            self.label_median_source: str = str(attrs["label_median_source"])
            g = f["genes"]
            self.genes = pd.DataFrame(
                {
                    "gene_id": g["gene_id"].asstr()[:],
                    "gene_name": g["gene_name"].asstr()[:],
                    "chrom": g["chrom"].asstr()[:],
                    "tss": g["tss"][:].astype(np.int64),
                    "strand": g["strand"].asstr()[:],
                    "fold": g["fold"][:].astype(np.int64),
                    "rpkm": g["rpkm"][:].astype(np.float64),
                    "target": g["target"][:].astype(np.float64),
                    "label": g["label"][:].astype(np.int64),
                }
            )
            e = f["exclusions"]
            self.exclusions = pd.DataFrame(
                {
                    "reason": e["reason"].asstr()[:],
                    "level": e["level"].asstr()[:],
                    "n_genes": e["n_genes"][:].astype(np.int64),
                    "n_items": e["n_items"][:].astype(np.int64),
                    "example_gene_ids": e["example_gene_ids"].asstr()[:],
                    "description": e["description"].asstr()[:],
                }
            )
        self.marks: tuple[str, ...] = tuple(self.settings["marks"])
        self.resolutions: tuple[int, ...] = tuple(self.settings["resolutions"])
        self.half_window: int = int(self.settings["half_window"])
        self.max_pcres: int = int(self.settings["max_pcres"])
        #: Fraction of the training folds' genes held out for validation by :meth:`split`; not part
        #: of the stored content (:func:`load_dataset` sets it from ``dataset.validation_fraction``).
        self.validation_fraction: float = 0.12
        self._cache: dict[str, np.ndarray] = {}

    # -- raw arrays --------------------------------------------------------------------------
    def _array(self, key: str) -> np.ndarray:
        if key not in self._cache:
            import h5py

            with h5py.File(self.path, "r") as f:
                self._cache[key] = f[key][()]
        return self._cache[key]

    def __len__(self) -> int:
        return len(self.genes)

    def __repr__(self) -> str:
        return (
            f"CellDataset({self.cell_type}, {self.provenance}, {len(self)} genes, marks={list(self.marks)}, "
            f"resolutions={list(self.resolutions)})"
        )

    def _genes_index(self, genes) -> np.ndarray:
        if genes is None:
            return np.arange(len(self))
        idx = np.asarray(genes)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"A boolean gene mask must have shape ({len(self)},), got {idx.shape}.")
            return np.flatnonzero(idx)
        if not np.issubdtype(idx.dtype, np.integer):
            raise ValueError("genes must be integer indices or a boolean mask over dataset.genes rows.")
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(f"gene indices out of range for {len(self)} genes.")
        return idx

    def _check_resolution(self, resolution: int) -> int:
        if int(resolution) not in self.resolutions:
            raise ValueError(f"resolution {resolution} is not in this dataset (it has {list(self.resolutions)}).")
        return int(resolution)

    # -- public tensors -----------------------------------------------------------------------
    def promoter(self, marks=None, resolution: int = 100, half_window: int = 20000, genes=None) -> np.ndarray:
        """Strand-oriented bins of ``ln(mean depth + 1)`` centred on the TSS.

        Parameters
        ----------
        marks : str or sequence of str, optional
            Marks in the order wanted; default all marks of the dataset (``MARKS`` order).
        resolution : int
            Bin size (bp), one of :attr:`resolutions`.
        half_window : int
            TSS ± this many bp; must be a multiple of ``resolution`` and <= the stored window
            (20 kb). ``half_window=3000, resolution=100`` is the promoter CNN's 60 bins.
        genes : index array or boolean mask, optional
            Rows of :attr:`genes`; default all.

        Returns
        -------
        numpy.ndarray, shape (n_genes, n_marks, 2 * half_window // resolution), float32
            Bin 0 is the most upstream; the TSS lies between bins n/2 - 1 and n/2.
        """
        res = self._check_resolution(resolution)
        if half_window <= 0 or half_window > self.half_window or half_window % res:
            raise ValueError(
                f"half_window {half_window} must be a positive multiple of the resolution {res} "
                f"and <= the stored half window {self.half_window}."
            )
        full = self._array(f"promoter/{res}")
        centre = self.half_window // res
        k = half_window // res
        m = _select_marks(self.marks, marks)
        rows = full if genes is None else full[self._genes_index(genes)]
        return np.ascontiguousarray(rows[:, m, centre - k : centre + k], dtype=np.float32)

    def flank_means(self, marks=None, flank: int = 750, genes=None) -> np.ndarray:
        """``ln(mean depth over [TSS - flank, TSS + flank) + 1)``, the naive baselines' input.

        Returns
        -------
        numpy.ndarray, shape (n_genes, n_marks), float32
        """
        flanks = list(self.settings["naive_flanks"])
        if int(flank) not in flanks:
            raise ValueError(f"flank {flank} was not stored; dataset.naive_flanks is {flanks}.")
        full = self._array("flanks")
        m = _select_marks(self.marks, marks)
        g = self._genes_index(genes)
        return np.ascontiguousarray(full[g][:, m, flanks.index(int(flank))], dtype=np.float32)

    def pcre_table(self) -> pd.DataFrame:
        """One row per (gene, pCRE slot) in use: ``gene_index, slot, chrom, start, end, frequency``."""
        idx = self._array("pcre/fragment")
        freq = self._array("pcre/frequency")
        g, s = np.nonzero(idx >= 0)
        fr = idx[g, s]
        return pd.DataFrame(
            {
                "gene_index": g,
                "gene_id": self.genes["gene_id"].to_numpy()[g],
                "slot": s,
                "chrom": self._array("fragments/chrom").astype(str)[fr],
                "start": self._array("fragments/start")[fr],
                "end": self._array("fragments/end")[fr],
                "frequency": freq[g, s],
            }
        )

    def n_pcres(self, genes=None) -> np.ndarray:
        """Number of pCREs per gene (0 to max_pcres), shape (n_genes,), int64."""
        g = self._genes_index(genes)
        return (self._array("pcre/fragment")[g] >= 0).sum(axis=1).astype(np.int64)

    def pcres(self, marks=None, resolution: int = 100, genes=None):
        """Inputs of the pCREs, built as the reference builds them.

        See docs/methods.md, "Signal, windows and bins" and "Genes, folds and pCREs".

        Each pCRE is binned from its own start (last bin partial), centred in a zero-padded
        array of the promoter window's length ``L = 2 * half_window // resolution`` (left pad =
        ceil, right pad = floor), and never strand-flipped. Slots are ordered by decreasing
        frequency (ties: ``chrom:start-end`` string order, as the reference's priority queue);
        empty slots are all zero and fully masked.

        Returns
        -------
        x : numpy.ndarray, shape (n_genes, max_pcres, n_marks, L), float32
        pad_mask : numpy.ndarray, shape (n_genes, max_pcres, L), bool
            True where a bin is padding or the slot is empty.
        freq : numpy.ndarray, shape (n_genes, max_pcres), float32
            Normalised interaction frequency (0 for empty slots).
        n_pcres : numpy.ndarray, shape (n_genes,), int64
        """
        res = self._check_resolution(resolution)
        m = _select_marks(self.marks, marks)
        g = self._genes_index(genes)
        length = 2 * self.half_window // res
        frag = self._array("pcre/fragment")[g]
        freq = self._array("pcre/frequency")[g].astype(np.float32)
        values = self._array(f"fragments/values/{res}")  # (n_marks, total_bins)
        offsets = self._array(f"fragments/offsets/{res}")
        n_genes, n_slots = frag.shape
        x = np.zeros((n_genes, n_slots, len(m), length), dtype=np.float32)
        mask = np.ones((n_genes, n_slots, length), dtype=bool)
        gi, si = np.nonzero(frag >= 0)
        f = frag[gi, si]
        nb = offsets[f + 1] - offsets[f]
        left = -(-(length - nb) // 2)  # ceil
        owner = np.repeat(np.arange(len(f)), nb)
        j = np.arange(int(nb.sum())) - np.repeat(np.cumsum(nb) - nb, nb)
        src = offsets[f][owner] + j
        dst = left[owner] + j
        sub = values[m][:, src]  # (n_marks, n_placed)
        x[gi[owner], si[owner], :, dst] = sub.T
        mask[gi[owner], si[owner], dst] = False
        return x, mask, freq, (frag >= 0).sum(axis=1).astype(np.int64)

    def split(self, fold: int) -> dict[str, np.ndarray]:
        """Gene indices of the test fold, a chromosome-grouped validation set and the training set.

        ``test`` = genes on ``fold``'s chromosomes; ``validation`` = genes on the chromosomes of
        :func:`validation_chromosomes` (≈ ``dataset.validation_fraction`` of the other folds'
        genes); ``train`` = the rest. Sorted int64 arrays, pairwise disjoint, covering all genes.
        """
        fold = int(fold)
        chroms = self.genes["chrom"].to_numpy()
        counts = self.genes["chrom"].value_counts().to_dict()
        val = validation_chromosomes(counts, fold, self.validation_fraction)
        test = np.flatnonzero(self.genes["fold"].to_numpy() == fold)
        validation = np.flatnonzero(np.isin(chroms, val))
        train = np.setdiff1d(np.arange(len(self)), np.concatenate([test, validation]))
        return {
            "train": train.astype(np.int64),
            "validation": validation.astype(np.int64),
            "test": test.astype(np.int64),
        }


def promoter_profiles(ds: CellDataset, resolution: int = 100, source: str | None = None) -> pd.DataFrame:
    """Mean strand-oriented promoter profile per mark for active (label 1) and inactive genes.

    Returns
    -------
    pandas.DataFrame
        Tidy: ``source, cell_type, mark, group ("active"/"inactive"), position`` (bp of the bin
        centre relative to the TSS, upstream negative), ``mean`` (mean of ln(depth + 1)), ``n_genes``.
    """
    x = ds.promoter(resolution=resolution)
    n_bins = x.shape[-1]
    position = (np.arange(n_bins) - n_bins // 2) * resolution + resolution / 2
    label = ds.genes["label"].to_numpy()
    rows = []
    for group, value in (("active", 1), ("inactive", 0)):
        sel = label == value
        if not sel.any():
            continue
        mean = x[sel].mean(axis=0)
        for k, mark in enumerate(ds.marks):
            rows.append(
                pd.DataFrame(
                    {
                        "source": source or ds.provenance,
                        "cell_type": ds.cell_type,
                        "mark": mark,
                        "group": group,
                        "position": position,
                        "mean": mean[k],
                        "n_genes": int(sel.sum()),
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def split_table(ds: CellDataset) -> pd.DataFrame:
    """Genes per fold and split role: ``fold, split (train/validation/test), n_genes, chromosomes``."""
    rows = []
    chroms = ds.genes["chrom"].to_numpy()
    for fold in FOLD_CHROMS:
        for role, idx in ds.split(fold).items():
            used = sorted(set(chroms[idx]), key=_chrom_rank)
            rows.append({"fold": fold, "split": role, "n_genes": len(idx), "chromosomes": ",".join(used)})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# assembling a store from tables and tracks (shared by the semi-synthetic/Roadmap and real paths)
# ---------------------------------------------------------------------------------------------
def _filter_genes(genes, rpkm, tracks, settings, chrom_sizes, excl):
    hw = settings["half_window"]
    genes = genes.copy()
    genes["rpkm"] = np.nan
    keep = np.ones(len(genes), dtype=bool)

    def drop(reason, mask):
        mask = mask & keep
        if mask.any():
            excl.add(reason, genes.loc[mask, "gene_id"])
        keep[mask] = False

    drop("duplicate_gene_id", genes["gene_id"].duplicated(keep="first").to_numpy())
    drop("no_tss", genes["tss"].isna().to_numpy())
    known_chrom = genes["chrom"].isin(CHROMOSOMES).to_numpy()
    if chrom_sizes is not None:
        known_chrom = known_chrom & genes["chrom"].isin(list(chrom_sizes)).to_numpy()
    drop("unknown_chromosome", ~known_chrom)
    drop("unknown_strand", ~genes["strand"].isin(["+", "-"]).to_numpy())
    values = rpkm.reindex(genes["gene_id"]).to_numpy(np.float64)
    drop("no_expression", ~np.isfinite(values))
    genes["rpkm"] = values
    tss = genes["tss"].fillna(-1).to_numpy(np.int64)
    if chrom_sizes is not None:
        size = genes["chrom"].map(lambda c: chrom_sizes.get(c, 0)).to_numpy(np.int64)
        drop("window_outside_chromosome", (tss - hw < 0) | (tss + hw > size))
    else:
        drop("window_outside_chromosome", tss - hw < 0)
    chrom = genes["chrom"].to_numpy().astype(str)
    empty = np.zeros(len(genes), dtype=bool)
    for track in tracks.values():
        empty |= ~np.isin(chrom, list(track.chroms))
    drop("empty_track", empty)
    unknown = np.zeros(len(genes), dtype=bool)
    idx = np.flatnonzero(keep)
    for track in tracks.values():
        ok = signal.windows_known(track, chrom[idx], tss[idx] - hw, tss[idx] + hw)
        unknown[idx[~ok]] = True
    drop("signal_unknown", unknown)
    kept = genes.loc[keep].copy()
    kept["tss"] = kept["tss"].astype(np.int64)
    return kept


def _tss_fragment_links(genes: pd.DataFrame, pairs: pd.DataFrame, tss_fragments: pd.DataFrame | None) -> pd.DataFrame:
    """``gene_row, bait_chrom, bait_start, bait_end, bait_rank``: the bait fragments of each gene.

    With ``tss_fragments`` (``gene_id, chrom, start, end``: the fragment of each of a gene's TSSs,
    alternative TSSs included, in the order Chromoformer visits them) those fragments, in that
    order (``bait_rank``); a fragment holding two TSSs of one gene is visited once. Without it,
    every bait containing the gene's (single) TSS.
    """
    cols = ["gene_row", "bait_chrom", "bait_start", "bait_end", "bait_rank"]
    if tss_fragments is not None:
        rows = pd.DataFrame({"gene_id": genes["gene_id"].to_numpy(), "gene_row": np.arange(len(genes))})
        tf = tss_fragments.rename(columns={"chrom": "bait_chrom", "start": "bait_start", "end": "bait_end"})
        tf = tf.assign(bait_rank=np.arange(len(tf))).merge(rows, on="gene_id", how="inner")
        tf = tf.sort_values(["gene_row", "bait_rank"], kind="stable")
        tf = tf.drop_duplicates(["gene_row", "bait_chrom", "bait_start", "bait_end"], keep="first")
        # a gene without any annotated TSS fragment falls back to the bait holding its chosen TSS
        rest = np.setdiff1d(np.arange(len(genes)), tf["gene_row"].to_numpy())
        if len(rest):
            log.info(
                "%d of %d genes have no annotated TSS fragment; using the bait holding their TSS", len(rest), len(genes)
            )
            fallback = _tss_fragment_links(genes.iloc[rest], pairs, None)
            fallback["gene_row"] = rest[fallback["gene_row"].to_numpy()]
            fallback["bait_rank"] += len(tss_fragments)
            tf = pd.concat([tf[cols], fallback[cols]], ignore_index=True)
        return tf[cols].reset_index(drop=True)
    links = []
    baits = pairs[["bait_chrom", "bait_start", "bait_end"]].drop_duplicates().sort_values(["bait_chrom", "bait_start"])
    g_chrom = genes["chrom"].to_numpy().astype(str)
    g_tss = genes["tss"].to_numpy(np.int64)
    for chrom, b in baits.groupby("bait_chrom", sort=False):
        gi = np.flatnonzero(g_chrom == chrom)
        if not len(gi):
            continue
        bs, be = b["bait_start"].to_numpy(np.int64), b["bait_end"].to_numpy(np.int64)
        # every bait containing the TSS (baits are restriction fragments and do not overlap, but
        # if a table lists overlapping baits every one containing the TSS is used)
        order = np.argsort(bs, kind="stable")
        bs, be = bs[order], be[order]
        hi = np.searchsorted(bs, g_tss[gi], side="right")
        max_len = int((be - bs).max())
        lo = np.searchsorted(bs, g_tss[gi] - max_len, side="left")
        for k, row in enumerate(gi):
            for j in range(lo[k], hi[k]):
                if bs[j] <= g_tss[row] < be[j]:
                    links.append((row, chrom, bs[j], be[j], j))
    return pd.DataFrame(links, columns=cols)


def _select_pcres(genes, pairs, tracks, settings, excl, tss_fragments=None):
    """Per gene, the top ``max_pcres`` pCRE fragments, by Chromoformer's rule.

    Chromoformer (``preprocessing``: ``get_neighbors`` / ``get_partners``) pools the partner
    fragments of *all* TSS fragments of a gene (alternative TSSs), visiting the TSS fragments in
    order and each fragment's partners in turn; a partner already seen keeps its *first-seen*
    score (a later, higher score does not replace it). Only then are partners with score
    ``<= pcre_min_frequency`` or longer than ``pcre_max_length`` dropped, and the rest ranked by its
    priority queue of ``(-score, "chrom:start-end")`` and cut to ``max_pcres``. We do the same;
    trans pairs and fragments with unknown signal are also dropped before the cut. Each dropped
    pCRE is counted in ``exclusions``. ``tss_fragments``: see :func:`_tss_fragment_links`.
    """
    n_slots = settings["max_pcres"]
    cols = ["gene_row", "chrom", "start", "end", "frequency"]
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(cols, [np.int64, str, np.int64, np.int64, float])})
    if pairs is None or len(pairs) == 0:
        return empty
    link = _tss_fragment_links(genes, pairs, tss_fragments)
    if link.empty:
        return empty
    pairs = pairs.assign(pair_rank=np.arange(len(pairs)))
    cand = link.merge(pairs, on=["bait_chrom", "bait_start", "bait_end"], how="inner")
    # visiting order: the gene's TSS fragments in turn, each fragment's partners in file order
    cand = cand.sort_values(["gene_row", "bait_rank", "pair_rank"], kind="stable").reset_index(drop=True)
    gid = genes["gene_id"].to_numpy()

    def drop(reason, mask):
        nonlocal cand
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            excl.add(reason, gid[cand.loc[mask, "gene_row"].to_numpy()], n_items=int(mask.sum()))
        cand = cand.loc[~mask].reset_index(drop=True)

    # first-seen score wins (Chromoformer), *before* the frequency threshold
    drop(
        "pcre_duplicate",
        cand.duplicated(["gene_row", "other_chrom", "other_start", "other_end"], keep="first").to_numpy(),
    )
    drop("pcre_trans", (cand["other_chrom"] != cand["bait_chrom"]).to_numpy())
    drop("pcre_low_frequency", (cand["frequency"] <= settings["pcre_min_frequency"]).to_numpy())
    drop("pcre_too_long", (cand["other_end"] - cand["other_start"] > settings["pcre_max_length"]).to_numpy())
    cand = cand.rename(columns={"other_chrom": "chrom", "other_start": "start", "other_end": "end"})
    unknown = np.zeros(len(cand), dtype=bool)
    for track in tracks.values():
        unknown |= ~signal.windows_known(track, cand["chrom"].to_numpy(), cand["start"], cand["end"])
    drop("pcre_signal_unknown", unknown)
    # Rank as Chromoformer's PriorityQueue of (-frequency, "chrom:start-end"): by decreasing
    # frequency, ties by the fragment's interval string in lexicographic order.
    cand["key"] = cand["chrom"] + ":" + cand["start"].astype(str) + "-" + cand["end"].astype(str)
    cand["neg"] = -cand["frequency"]
    cand = cand.sort_values(["gene_row", "neg", "key"], kind="stable").reset_index(drop=True)
    rank = cand.groupby("gene_row").cumcount().to_numpy()
    drop("pcre_trimmed", rank >= n_slots)
    return cand[cols]


def _assemble(
    genes: pd.DataFrame,
    rpkm: pd.Series,
    tracks: Mapping[str, signal.Coverage],
    pairs: pd.DataFrame | None,
    settings: Mapping[str, Any],
    chrom_sizes: Mapping[str, int] | None,
    median: float | None = None,
    extra_exclusions: _Exclusions | None = None,
    tss_fragments: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Filter genes, select pCREs and bin every window; returns the arrays of a store."""
    excl = extra_exclusions or _Exclusions()
    marks = list(settings["marks"])
    missing = [m for m in marks if m not in tracks]
    if missing:
        raise ValueError(f"No signal track for marks {missing}.")
    kept = _filter_genes(genes, rpkm, tracks, settings, chrom_sizes, excl)
    if kept.empty:
        raise ValueError("No gene is left after the exclusions: " + _summary(excl.table()))
    kept["_rank"] = kept["chrom"].map(_chrom_rank)
    kept = kept.sort_values(["_rank", "tss", "gene_id"], kind="stable").drop(columns="_rank").reset_index(drop=True)
    label_source = "median RPKM of the kept genes"
    if median is None:
        median = float(np.median(kept["rpkm"]))
    else:
        label_source = "given median RPKM"
    kept["fold"] = kept["chrom"].map(CHROM_FOLD).astype(np.int64)
    kept["target"] = np.log2(kept["rpkm"] + 1.0)
    kept["label"] = (kept["rpkm"] >= median).astype(np.int64)

    hw, base = settings["half_window"], settings["log_base"]
    chrom = kept["chrom"].to_numpy().astype(str)
    tss = kept["tss"].to_numpy(np.int64)
    strand = kept["strand"].to_numpy().astype(str)
    promoter = {
        res: np.empty((len(kept), len(marks), 2 * hw // res), dtype=np.float32) for res in settings["resolutions"]
    }
    for k, mark in enumerate(marks):
        means = signal.binned_means_multi(tracks[mark], chrom, tss - hw, 2 * hw, settings["resolutions"])
        for res, m in means.items():
            promoter[res][:, k, :] = signal.log_transform(signal.orient(m, strand), base)
    flanks = np.empty((len(kept), len(marks), len(settings["naive_flanks"])), dtype=np.float32)
    for j, fl in enumerate(settings["naive_flanks"]):
        for k, mark in enumerate(marks):
            flanks[:, k, j] = signal.log_transform(signal.window_means(tracks[mark], chrom, tss - fl, tss + fl), base)

    cand = _select_pcres(kept, pairs, tracks, settings, excl, tss_fragments)
    frag_keys = cand[["chrom", "start", "end"]].drop_duplicates().sort_values(["chrom", "start", "end"])
    frag_keys = frag_keys.reset_index(drop=True)
    n_slots = settings["max_pcres"]
    slot_frag = np.full((len(kept), n_slots), -1, dtype=np.int32)
    slot_freq = np.zeros((len(kept), n_slots), dtype=np.float32)
    if len(cand):
        slot = cand.groupby("gene_row").cumcount().to_numpy()
        keyed = frag_keys.assign(fragment=np.arange(len(frag_keys)))
        fi = cand.merge(keyed, on=["chrom", "start", "end"], how="left", validate="many_to_one")["fragment"].to_numpy()
        slot_frag[cand["gene_row"].to_numpy(), slot] = fi
        slot_freq[cand["gene_row"].to_numpy(), slot] = cand["frequency"].to_numpy(np.float32)
    frag_values, frag_offsets = {}, {}
    fc = frag_keys["chrom"].to_numpy().astype(str)
    fs, fe = frag_keys["start"].to_numpy(np.int64), frag_keys["end"].to_numpy(np.int64)
    for res in settings["resolutions"]:
        rows = []
        offsets = np.zeros(1, dtype=np.int64)
        for mark in marks:
            values, offsets = signal.binned_intervals(tracks[mark], fc, fs, fe, res)
            rows.append(signal.log_transform(values, base))
        frag_values[res] = np.stack(rows) if rows else np.zeros((len(marks), 0), np.float32)
        frag_offsets[res] = offsets
    return {
        "genes": kept,
        "label_median": float(median),
        "label_median_source": label_source,
        "exclusions": excl.table(),
        "promoter": promoter,
        "flanks": flanks,
        "fragments": frag_keys,
        "fragment_values": frag_values,
        "fragment_offsets": frag_offsets,
        "slot_fragment": slot_frag,
        "slot_frequency": slot_freq,
    }


def _summary(exclusions: pd.DataFrame) -> str:
    rows = exclusions[exclusions["n_items"] > 0]
    return "; ".join(f"{r.reason}: {r.n_genes} genes ({r.n_items} items)" for r in rows.itertuples()) or "none"


def _put(group, name: str, data, dtype=None):
    """Write one array of a store with an HDF5 fletcher32 checksum (verified by HDF5 on each read).

    HDF5 filters need a non-empty, fixed-size type: empty arrays and variable-length strings are
    written without it and protected by the store's content digest (:func:`verify_store`).
    """
    data = np.asarray(data)
    return group.create_dataset(name, data=data, dtype=dtype, fletcher32=data.size > 0 and data.dtype.kind != "O")


#: Attributes not covered by the content digest (written after it).
_UNDIGESTED = ("complete", "content_sha256")


def _content_digest(f) -> str:
    """SHA-256 of every dataset (name, dtype, shape, values) and attribute of an open store."""
    import h5py

    h = hashlib.sha256()
    names: list[str] = []
    f.visit(lambda name: names.append(name) if isinstance(f[name], h5py.Dataset) else None)
    for name in sorted(names):
        ds = f[name]
        h.update(f"{name}\0{ds.dtype.str if ds.dtype.kind != 'O' else 'str'}\0{ds.shape}\0".encode())
        if h5py.check_string_dtype(ds.dtype) is not None:
            h.update("\0".join(ds.asstr()[()].tolist() if ds.shape else [ds.asstr()[()]]).encode())
        else:
            h.update(np.ascontiguousarray(ds[()]).tobytes())
    for key in sorted(k for k in f.attrs if k not in _UNDIGESTED):
        value = f.attrs[key]
        h.update(f"{key}\0{value.decode() if isinstance(value, bytes) else value!s}\0".encode())
    return h.hexdigest()


def _rebuild_hint(cell_type: str | None) -> str:
    cell = f" --cell {cell_type}" if cell_type else ""
    return f"Rebuild it: chromexp run 10{cell} --force (or chromexp.data.dataset.build_dataset(params, cell_type, force=True))."


def verify_store(path: str | Path, cell_type: str | None = None) -> None:
    """Raise a ``ValueError`` naming ``path`` unless it is a complete, uncorrupted dataset store.

    Checks that HDF5 can open it (a truncated file cannot), that it is marked complete, and that
    its content digest (every array, string and attribute; written by :func:`_write_store`)
    matches; arrays also carry HDF5 fletcher32 checksums.
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"No dataset store at {path}. Build it: chromexp run 10{f' --cell {cell_type}' if cell_type else ''}."
        )
    try:
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get("complete", False)):
                problem = "it is incomplete (its build was interrupted)"
            elif "content_sha256" not in f.attrs:
                problem = "it has no content checksum (written by an older chromexp)"
            elif str(f.attrs["content_sha256"]) != _content_digest(f):
                problem = "its content does not match its checksum (the file is corrupt)"
            else:
                return
    except Exception as err:  # noqa: BLE001 — any HDF5 failure here means a damaged file
        problem = f"HDF5 cannot read it ({type(err).__name__}: {err}); the file is truncated or corrupt"
    raise ValueError(f"The dataset store {path} is not usable: {problem}. {_rebuild_hint(cell_type)}")


def _write_store(path: Path, content: Mapping[str, Any], attrs: Mapping[str, Any]) -> Path:
    import h5py

    str_dt = h5py.string_dtype()
    remove_stale_temporaries(path.parent)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("genes")
            genes = content["genes"]
            for col in ("gene_id", "gene_name", "chrom", "strand"):
                _put(g, col, genes[col].astype(str).to_numpy().astype(object), dtype=str_dt)
            _put(g, "tss", genes["tss"].to_numpy(np.int64))
            _put(g, "fold", genes["fold"].to_numpy(np.int8))
            _put(g, "rpkm", genes["rpkm"].to_numpy(np.float64))
            _put(g, "target", genes["target"].to_numpy(np.float64))
            _put(g, "label", genes["label"].to_numpy(np.int8))
            e = f.create_group("exclusions")
            ex = content["exclusions"]
            for col in ("reason", "level", "example_gene_ids", "description"):
                _put(e, col, ex[col].astype(str).to_numpy().astype(object), dtype=str_dt)
            for col in ("n_genes", "n_items"):
                _put(e, col, ex[col].to_numpy(np.int64))
            for res, arr in content["promoter"].items():
                _put(f, f"promoter/{res}", arr)
            _put(f, "flanks", content["flanks"])
            fr = content["fragments"]
            _put(f, "fragments/chrom", fr["chrom"].astype(str).to_numpy().astype(object), dtype=str_dt)
            _put(f, "fragments/start", fr["start"].to_numpy(np.int64))
            _put(f, "fragments/end", fr["end"].to_numpy(np.int64))
            for res in content["fragment_values"]:
                _put(f, f"fragments/values/{res}", content["fragment_values"][res])
                _put(f, f"fragments/offsets/{res}", content["fragment_offsets"][res])
            _put(f, "pcre/fragment", content["slot_fragment"])
            _put(f, "pcre/frequency", content["slot_frequency"])
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["label_median"] = content["label_median"]
            f.attrs["label_median_source"] = content["label_median_source"]
            f.attrs["content_sha256"] = _content_digest(f)
            f.attrs["complete"] = True  # written last: a store without it is never reused
    return path


def _build_key(cell_type: str, provenance: str, settings: Mapping[str, Any], inputs: list) -> str:
    """What decides a store's content, except the marks (a store with more marks is reusable)."""
    rest = {k: v for k, v in settings.items() if k != "marks"}
    return json.dumps({"cell_type": cell_type, "provenance": provenance, "settings": rest, "inputs": inputs})


def _store_complete(path: Path, build_key: str, read_inputs: Mapping[str, Any]) -> bool:
    """A complete store with the same build key holding at least the marks of ``read_inputs``.

    ``read_inputs`` maps each requested mark to its input's fingerprint (file name, size, mtime);
    a store with more marks is reused if the requested marks' inputs are unchanged.
    """
    import h5py

    if not path.is_file():
        return False
    try:
        verify_store(path)
    except ValueError as err:
        log.warning("%s", err)
        return False
    try:
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get("complete", False)) or str(f.attrs.get("build_key", "")) != build_key:
                return False
            stored = json.loads(f.attrs["read_inputs"])
            return all(stored.get(m) == list(fp) for m, fp in read_inputs.items())
    except (OSError, KeyError, ValueError):
        return False


def _file_fingerprint(p: Path) -> list:
    st = p.stat()
    return [p.name, st.st_size, int(st.st_mtime)]


def store_path(params: Mapping[str, Any], cell_type: str) -> Path:
    """``paths.processed_dir(params, cell_type) / dataset.h5``."""
    return paths.processed_dir(params, cell_type) / STORE_NAME


def expression_file(params: Mapping[str, Any]) -> Path:
    """The file holding the cell type's expression (``cell.expression`` of its file, :mod:`chromexp.cells`).

    Semi-synthetic data: the generated ``57epigenomes.RPKM.pc.gz`` (the generator copied the cell
    type's real expression into column ``<ID>``). Real data: the Roadmap matrix in the raw folder
    (``source: roadmap``) or the user's own table (``source: table``).
    """
    expr = params["cell"]["expression"]
    if params["data"]["source"] == "semisynthetic" or expr["source"] == "roadmap":
        return paths.raw_dir(params) / "57epigenomes.RPKM.pc.gz"
    return Path(expr["table"])


def read_cell_expression(params: Mapping[str, Any], cell_type: str) -> pd.Series:
    """Expression (RPKM) of ``cell_type`` by gene id, from :func:`expression_file` (float64 Series)."""
    expr, path = params["cell"]["expression"], expression_file(params)
    if params["data"]["source"] == "semisynthetic":
        return io.read_expression(path, [cell_type], any_columns=True)[cell_type]
    if expr["source"] == "table":
        return io.read_expression_table(path, expr["column"])
    column = expr["column"] or cell_type
    return io.read_expression(path, [column])[column].rename(cell_type)


def input_files(params: Mapping[str, Any], cell_type: str) -> dict[str, Any]:
    """Paths of a cell type's raw inputs under ``paths.raw_dir(params)`` (not checked to exist)."""
    raw = paths.raw_dir(params)
    tissue = params["cell"]["pchic_tissue"]  # from the cell type's file (chromexp.cells); None = no pcHi-C
    files = {
        "genes": raw / "genes.tsv",
        "expression": expression_file(params),
        "chrom_sizes": raw / "hg19.chrom.sizes",
        "reads": {m: raw / f"{cell_type}-{m}.tagAlign.gz" for m in _settings(params)["marks"]},
    }
    if tissue is not None:
        files["pchic"] = raw / "pchic" / f"{tissue}.tsv.gz"
    if reference_genes.gene_set(params) == "reference":
        # the paper's genes and TSS choice (Chromoformer's train.csv); alternative TSSs from its
        # ensg2tss.pickle (as its get_neighbors), mapped to bait fragments by tss2fragment.pickle (both optional)
        ann = reference_genes.annotation_paths(raw)
        files["genes"] = ann["train"]
        files["ensg2tss"] = ann["ensg2tss"]
        files["tss2fragment"] = raw / "pchic" / "tss2fragment.pickle"
    return files


def input_fingerprints(params: Mapping[str, Any], cell_type: str) -> dict[str, list | None]:
    """``{file name: [name, size, mtime]}`` of every raw input of ``cell_type`` (``None`` if absent).

    The same fingerprints the store records (:func:`build_dataset`); part of the fingerprint of
    every per-cell-type notebook job, so a changed input makes its results stale.
    """
    files = input_files(params, cell_type)
    keys = [k for k in ("genes", "expression", "chrom_sizes", "pchic", "ensg2tss", "tss2fragment") if k in files]
    flat = [files[k] for k in keys] + list(files["reads"].values())
    return {p.name: (_file_fingerprint(p) if p.is_file() else None) for p in flat}


def store_fingerprint(params: Mapping[str, Any], cell_type: str) -> list | str | None:
    """``[size, content checksum]`` of the cell type's store, ``None`` if absent, ``"unreadable"``.

    Cheap (reads one attribute, not the arrays): part of every per-cell-type job's fingerprint,
    so a truncated or rebuilt store makes the jobs that read it stale. Full verification happens
    when the store is opened (:func:`verify_store`).
    """
    import h5py

    path = store_path(params, cell_type)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            return [path.stat().st_size, str(f.attrs.get("content_sha256", ""))]
    except Exception:  # noqa: BLE001 — any failure to open means a damaged file
        return "unreadable"


def raw_inputs(params: Mapping[str, Any], cell_type: str) -> dict[str, Any]:
    """Paths of a cell type's raw inputs under ``paths.raw_dir(params)`` (checked to exist)."""
    raw = paths.raw_dir(params)
    files = input_files(params, cell_type)
    optional = ("reads", "pchic", "ensg2tss", "tss2fragment")
    missing = [str(p) for k, p in files.items() if k not in optional and not p.is_file()]
    missing += [str(p) for p in files["reads"].values() if not p.is_file()]
    if missing:
        raise ValueError(
            f"Raw inputs of {cell_type} are missing under {raw}: {', '.join(missing)}. "
            "Generate the semi-synthetic data (notebook 00) or download the real files first."
        )
    return files


def build_dataset(params: Mapping[str, Any], cell_type: str, force: bool = False) -> Path:
    """Build (or reuse) the dataset store of ``cell_type`` from ``paths.raw_dir(params)``.

    Reads ``genes.tsv``, ``57epigenomes.RPKM.pc.gz``, ``hg19.chrom.sizes``,
    ``{EID}-{MARK}.tagAlign.gz`` per mark and ``pchic/{TISSUE}.tsv.gz`` (optional: without it
    every gene has 0 pCREs, logged). Idempotent: a complete store built from the same inputs
    (names, sizes, mtimes) and the same ``signal``/``dataset`` parameters is reused unless
    ``force``. Written atomically.

    Returns
    -------
    pathlib.Path
        The store (``paths.processed_dir(params, cell_type)/dataset.h5``).
    """
    settings = _settings(params)
    files = raw_inputs(params, cell_type)
    # semi-synthetic vs real is read from the files on disk (the generator's manifest), never taken
    # from data.source; a contradiction between the two is an error (chromexp.provenance)
    extra = [files[k] for k in ("pchic", "ensg2tss", "tss2fragment") if k in files and files[k].is_file()]
    used = [files[k] for k in ("genes", "expression", "chrom_sizes")] + list(files["reads"].values())
    provenance = _provenance.of_params(params, used + extra)
    version = _provenance.check_simulator_version(params)  # None for real data
    inputs = [_file_fingerprint(p) for p in [files[k] for k in ("genes", "expression", "chrom_sizes")] + extra]
    read_inputs = {m: _file_fingerprint(p) for m, p in files["reads"].items()}
    key = _build_key(cell_type, provenance, settings, inputs)
    out = store_path(params, cell_type)
    if not force and _store_complete(out, key, read_inputs):
        log.info("dataset %s: reusing the complete store %s", cell_type, out)
        return out
    t0 = time.perf_counter()
    sizes = io.read_chrom_sizes(files["chrom_sizes"])
    tss_fragments = None
    if reference_genes.gene_set(params) == "reference":
        genes = reference_genes.read_train_csv(files["genes"])[list(io.GENE_COLUMNS)]
        if files["ensg2tss"].is_file() and files["tss2fragment"].is_file():
            tss_fragments = reference_genes.tss_fragments(
                io.read_ensg2tss(files["ensg2tss"]), io.read_tss2fragment(files["tss2fragment"])
            )
        else:
            log.warning(
                "dataset %s: no %s or %s; pCREs come from the fragment of each gene's chosen TSS only "
                "(Chromoformer pools all its TSS fragments)",
                cell_type,
                files["ensg2tss"],
                files["tss2fragment"],
            )
    else:
        genes = io.read_gene_table(files["genes"])
    rpkm = read_cell_expression(params, cell_type)
    tracks = {}
    excl = _Exclusions()
    for mark, path in files["reads"].items():
        # real Roadmap files hold chrM/contig reads and reads past chromosome ends: skip/clip them
        # like bedtools genomecov, counted in the exclusion report (never an error, never silent)
        reads = io.read_tagalign(path, sizes, on_unknown_chrom="drop", past_end="clip")
        excl.add_reads(mark, reads.attrs["read_report"])
        tracks[mark] = signal.ReadCoverage.from_reads(reads)
        log.info("dataset %s: %s: %d reads on %d chromosomes", cell_type, mark, len(reads), len(tracks[mark].chroms))
        del reads
    if "pchic" in files and files["pchic"].is_file():
        pairs = io.read_pchic(files["pchic"], sizes)
    elif "pchic" not in files:
        log.info("dataset %s: no pcHi-C tissue (cell.pchic_tissue: null): every gene gets 0 pCREs", cell_type)
        pairs = None
    else:
        log.warning("dataset %s: no pcHi-C file %s; every gene gets 0 pCREs", cell_type, files["pchic"])
        pairs = None
    content = _assemble(genes, rpkm, tracks, pairs, settings, sizes, extra_exclusions=excl, tss_fragments=tss_fragments)
    if reference_genes.gene_set(params) == "reference":
        sizes_now = reference_genes.fold_sizes(content["genes"])
        log.info(
            "dataset %s: test-fold genes %s (the paper's: %s)", cell_type, sizes_now, reference_genes.PAPER_FOLD_SIZES
        )
    attrs = {
        "cell_type": cell_type,
        "provenance": provenance,
        "settings": json.dumps(settings),
        "build_key": key,
        "read_inputs": json.dumps(read_inputs),
        "source": str(paths.raw_dir(params)),
    }
    if version is not None:  # the simulator version of the raw data (docs/methods.md, "Simulator versions")
        attrs["simulator_version"] = int(version)
    _write_store(out, content, attrs)
    _log_build(cell_type, content, out, time.perf_counter() - t0)
    return out


def _log_build(cell_type, content, out, seconds):
    ex = content["exclusions"]
    log.info(
        "dataset %s: %d genes kept, %d pCRE fragments; exclusions: %s; %.1f MB written to %s in %.1f s",
        cell_type,
        len(content["genes"]),
        len(content["fragments"]),
        _summary(ex),
        out.stat().st_size / 1e6,
        out,
        seconds,
    )


def load_dataset(params: Mapping[str, Any], cell_type: str) -> CellDataset:
    """Open the store of ``cell_type`` built by :func:`build_dataset`.

    The store may hold more marks than ``params["marks"]`` (e.g. all 7 when a run restricts
    ``marks``); every other content setting must match. ``dataset.validation_fraction`` is taken
    from ``params`` (it only affects :meth:`CellDataset.split`).

    Raises
    ------
    ValueError
        If there is no complete store, it is truncated or corrupt (content checksum), one of the
        raw inputs it was built from changed since (size or modification time), or it was built
        with other ``signal``/``dataset`` parameters than ``params`` (rebuild with
        ``chromexp run 10 --cell <EID> --force``).
    """
    path = store_path(params, cell_type)
    verify_store(path, cell_type)
    ds = CellDataset(path)
    _check_inputs(path, params, cell_type)
    _check_settings(ds, params)
    raw = paths.raw_dir(params)
    if raw.is_dir() and ds.provenance != _provenance.detect(raw):
        raise _provenance.ProvenanceError(
            f"The store {path} says {ds.provenance!r} but the files in {raw} are "
            f"{_provenance.detect(raw)!r} (a store built before provenance was read from disk?). Rebuild it with "
            "chromexp.data.dataset.build_dataset(params, cell_type, force=True)."
        )
    _check_simulator_version(ds, params, raw)
    return ds


def _check_simulator_version(ds: CellDataset, params: Mapping[str, Any], raw: Path) -> None:
    """Raise unless a semi-synthetic store, its raw files and ``data.simulator_version`` name one version.

    A store built before the switch existed has no ``simulator_version`` attribute: it was built from
    version 1 data.
    """
    if ds.provenance != SEMI_SYNTHETIC:
        return
    import h5py

    with h5py.File(ds.path, "r") as f:
        stored = int(f.attrs.get("simulator_version", 1))
    wanted = params["data"]["simulator_version"]
    if stored != wanted:
        raise _provenance.ProvenanceError(
            f"The store {ds.path} was built from semi-synthetic data of simulator version {stored} but "
            f"data.simulator_version is {wanted}: regenerate the data (notebook 00) and rebuild the store "
            "(notebook 10), or set data.simulator_version to the store's version (docs/methods.md, 'Simulator versions')."
        )
    if raw.is_dir():
        _provenance.check_simulator_version(params, raw)


def _check_inputs(path: Path, params: Mapping[str, Any], cell_type: str) -> None:
    """Raise if a raw input recorded in the store ``path`` changed on disk since the store was built."""
    import h5py

    with h5py.File(path, "r") as f:
        recorded = list(json.loads(str(f.attrs["build_key"])).get("inputs", []))
        recorded += list(json.loads(str(f.attrs["read_inputs"])).values())
    current = input_fingerprints(params, cell_type)
    changed, missing = [], []
    for old in recorded:
        name = old[0]
        if name not in current:
            continue  # not an input of this parameter set (e.g. a mark the run does not use)
        new = current[name]
        if new is None:
            missing.append(name)
        elif list(new) != list(old):
            changed.append(f"{name} (size {old[1]} -> {new[1]} bytes, modified {old[2]} -> {new[2]})")
    if missing:
        log.warning("dataset %s: raw input(s) %s of %s are gone; cannot check them", cell_type, missing, path)
    if changed:
        raise ValueError(
            f"The dataset store {path} is stale: raw input(s) changed since it was built: {'; '.join(changed)}. "
            + _rebuild_hint(cell_type)
        )


def _check_settings(ds: CellDataset, params: Mapping[str, Any]) -> None:
    """Raise unless ``ds`` was built with ``params``' signal/dataset settings and holds its marks."""
    wanted = _settings(params)
    absent = [m for m in wanted["marks"] if m not in ds.marks]
    diff = {k: (ds.settings.get(k), v) for k, v in wanted.items() if k != "marks" and ds.settings.get(k) != v}
    if absent or diff:
        raise ValueError(
            f"The store {ds.path} was built with other parameters (stored, requested): {diff}"
            + (f"; it lacks marks {absent}" if absent else "")
            + ". Rebuild it with chromexp.data.dataset.build_dataset(params, cell_type, force=True)."
        )
    ds.validation_fraction = float(params["dataset"]["validation_fraction"])


# ---------------------------------------------------------------------------------------------
# the vendored real E003 data (Chromoformer's demo regions)
# ---------------------------------------------------------------------------------------------
def real_e003_dir() -> Path:
    """``resources/e003_real``: real E003 bedGraphs, covered regions and Chromoformer's gene metadata."""
    return paths.resources_dir() / "e003_real"


def real_e003_inputs(resource_dir: str | Path | None = None):
    """Genes, RPKM, candidate pCRE pairs and depth tracks of the vendored real E003 data.

    The bedGraphs cover only ``covered_regions.bed``; each track gets those regions as its
    *known* regions, so a window reaching outside them is excluded (``signal_unknown``), never
    read as zeros. pCREs come from the ``neighbors``/``scores`` columns of ``genes.csv``
    (Chromoformer's own selection) and go through the same rule as pcHi-C pairs.

    Returns
    -------
    genes : DataFrame (gene_id, gene_name, chrom, tss, strand)
    rpkm : Series indexed by gene_id
    pairs : DataFrame in the ``io.read_pchic`` layout (bait = the TSS base)
    tracks : dict mark -> signal.IntervalCoverage
    """
    root = Path(resource_dir) if resource_dir is not None else real_e003_dir()
    meta = pd.read_csv(root / "genes.csv")
    genes = pd.DataFrame(
        {
            "gene_id": meta["gene_id"].astype(str),
            "gene_name": meta["gene_id"].astype(str),
            "chrom": meta["chrom"].astype(str),
            "tss": meta["start"].astype(np.int64),
            "strand": meta["strand"].astype(str),
        }
    )
    rpkm = pd.Series(meta["expression"].to_numpy(np.float64), index=genes["gene_id"])
    rows = []
    for r in meta.itertuples():
        if pd.isna(r.neighbors):
            continue
        regions, scores = str(r.neighbors).split(";"), str(r.scores).split(";")
        if len(regions) != len(scores):
            raise ValueError(
                f"{root / 'genes.csv'}: gene {r.gene_id} has {len(regions)} neighbors but {len(scores)} scores."
            )
        for region, score in zip(regions, scores):
            chrom, span = region.split(":")
            start, end = (int(v) for v in span.split("-"))
            rows.append((r.chrom, int(r.start), int(r.start) + 1, chrom, start, end, float(score)))
    pairs = pd.DataFrame(rows, columns=list(io.PCHIC_COLUMNS))
    known = signal.read_regions(root / "covered_regions.bed")
    tracks = {}
    for mark in MARKS:
        bg = io.read_bedgraph(root / f"E003-{mark}.demo.bedGraph.gz")
        tracks[mark] = signal.IntervalCoverage(bg, known, source=f"E003-{mark}.demo.bedGraph.gz")
    return genes, rpkm, pairs, tracks


def real_e003_median() -> float:
    """Genome-wide median E003 RPKM (vendored ``roadmap/genes_rpkm_11.tsv.gz``, unique gene ids)."""
    expr = io.read_expression(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz", ["E003"])
    return float(expr["E003"].median())


def build_real_e003(params: Mapping[str, Any], force: bool = False, out: str | Path | None = None) -> Path:
    """Build the store of the vendored real E003 genes through the same code path as the others.

    Labels use the genome-wide E003 median RPKM (the 100 genes alone are not a cell type).
    Stored at ``<data_dir>/e003-real/processed/E003/dataset.h5`` unless ``out`` is given.
    """
    settings = _settings(params)
    root = real_e003_dir()
    inputs = [_file_fingerprint(p) for p in sorted(root.iterdir()) if p.is_file()]
    provenance = _provenance.detect(root)  # vendored real files: no generator manifest
    key = _build_key("E003", provenance, settings, inputs)
    out = Path(out) if out is not None else paths.data_dir(params) / "e003-real" / "processed" / "E003" / STORE_NAME
    read_inputs = {m: [f"E003-{m}.demo.bedGraph.gz"] for m in settings["marks"]}  # part of `inputs` already
    if not force and _store_complete(out, key, read_inputs):
        log.info("real E003: reusing the complete store %s", out)
        return out
    t0 = time.perf_counter()
    genes, rpkm, pairs, tracks = real_e003_inputs(root)
    sizes = io.read_chrom_sizes(paths.resources_dir() / "hg19.chrom.sizes")
    tracks = {m: tracks[m] for m in settings["marks"]}
    content = _assemble(genes, rpkm, tracks, pairs, settings, sizes, median=real_e003_median())
    content["label_median_source"] = "genome-wide E003 median RPKM (vendored Roadmap table)"
    attrs = {
        "cell_type": "E003",
        "provenance": provenance,
        "settings": json.dumps(settings),
        "build_key": key,
        "read_inputs": json.dumps(read_inputs),
        "source": str(root),
    }
    _write_store(out, content, attrs)
    _log_build("E003 (real)", content, out, time.perf_counter() - t0)
    return out


def load_real_e003(params: Mapping[str, Any], force: bool = False) -> CellDataset:
    """Build if needed and open the real E003 store (:func:`build_real_e003`)."""
    ds = CellDataset(build_real_e003(params, force=force))
    _check_settings(ds, params)
    return ds


__all__ = [
    "CellDataset",
    "build_dataset",
    "load_dataset",
    "build_real_e003",
    "load_real_e003",
    "validation_chromosomes",
    "promoter_profiles",
    "split_table",
    "store_path",
    "GENE_REASONS",
    "PCRE_REASONS",
]
