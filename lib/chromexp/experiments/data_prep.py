"""Notebook 10's helpers: the real reference data of a cell type, and the notebook's answer.

Only E003 has vendored real read depth (100 genes of Chromoformer's demo,
``lib/chromexp/resources/e003_real/``); :func:`real_reference` returns it for E003 and ``None``
for every other cell type, so the notebook does not branch on the cell type itself.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..data import dataset

#: Cell types with vendored real read depth, and the loader of each.
REAL_REFERENCES = {"E003": dataset.load_real_e003}


def real_reference(params: Mapping, cell_type: str):
    """The vendored real dataset of ``cell_type`` (a ``CellDataset``), or ``None`` when there is none."""
    loader = REAL_REFERENCES.get(cell_type)
    return loader(params) if loader is not None else None


def real_label_agreement(real) -> str:
    """How the real E003 genes' labels (our median rule) compare with Chromoformer's demo labels."""
    theirs = pd.read_csv(dataset.real_e003_dir() / "genes.csv").set_index("gene_id")["label"]
    ours = real.genes.set_index("gene_id")["label"].reindex(theirs.index)
    return (
        f"real E003 labels (RPKM >= {real.label_median:.4g}, {real.label_median_source}): "
        f"{int((ours != theirs).sum())} of {len(theirs)} differ from Chromoformer's demo labels"
    )


def answer(ds, splits: pd.DataFrame, n_pcres: np.ndarray) -> str:
    """Notebook 10's **Answer** paragraph, written from the dataset it built."""
    from ..provenance import provenance_phrase

    excluded = int(ds.exclusions["n_items"].sum()) if "n_items" in ds.exclusions else 0
    test = splits[splits["split"] == "test"].set_index("fold")["n_genes"]
    return (
        f"**Answer.** {provenance_phrase(ds.provenance)}, {ds.cell_type} has {len(ds.genes):,} genes in "
        f"{len(test)} chromosome folds (test genes per fold: {', '.join(f'{int(v):,}' for v in test)}), "
        f"{ds.genes['label'].mean():.1%} of them labelled active (RPKM ≥ {ds.label_median:.4g}); "
        f"{excluded:,} genes or pCREs were excluded, each under a reason in the exclusion table. "
        f"A gene has {np.mean(n_pcres):.2f} pCREs on average ({np.mean(np.asarray(n_pcres) == 0):.1%} have none)."
    )


def mark_levels(ds, flanks) -> pd.DataFrame:
    """Tidy promoter mark levels: ln(mean depth + 1) of each mark over TSS ± flank, per gene.

    The "histone level" of the paper's Fig. 3, for every flank of the naive baselines (the widest
    is the promoter CNN's TSS ± 3 kb); notebook 90 reads this table instead of the dataset.

    Parameters
    ----------
    ds : CellDataset
        The cell type's dataset store.
    flanks : sequence of int
        Half-widths (bp) of the windows around the TSS.

    Returns
    -------
    pandas.DataFrame
        ``cell_type, provenance, gene_id, mark, flank, level`` (one row per gene, mark and flank).
    """
    gene_ids = ds.genes["gene_id"].to_numpy()
    levels = pd.concat(
        [
            pd.DataFrame(ds.flank_means(flank=int(flank)), columns=list(ds.marks))
            .assign(gene_id=gene_ids, flank=int(flank))
            .melt(id_vars=["gene_id", "flank"], var_name="mark", value_name="level")
            for flank in flanks
        ],
        ignore_index=True,
    ).assign(cell_type=ds.cell_type, provenance=ds.provenance)
    levels = levels[["cell_type", "provenance", "gene_id", "mark", "flank", "level"]]
    if not (np.isfinite(levels["level"]).all() and (levels["level"] >= 0).all()):
        raise ValueError(f"{ds.path}: mark levels must be finite and >= 0 (a corrupt store?).")
    return levels
