"""A stand-in for notebook 60's ``perturbation_effects.tsv.gz`` (CONTRACTS schema), for s-LDSC tests.

Built from a generated semi-synthetic dataset: every active gene's 16 distal 2 kb bins at level
0.0 (and 1.0, effect 0), effect = -(sum of the planted enhancer contributions in the bin, active in
the cell type) + Gaussian noise, i.e. a model that found the planted enhancers up to ``noise``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = (
    "cell_type", "provenance", "model", "mark", "gene_set", "gene_id", "region", "region_kind", "position",
    "distance", "chrom", "start", "end", "level", "effect", "effect_sd", "concordance", "n_folds", "baseline",
)  # fmt: skip


def effects_fixture(raw_dir: str | Path, cell_type: str, noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    raw = Path(raw_dir)
    genes = pd.read_csv(raw / "genes.tsv", sep="\t")
    rpkm = pd.read_csv(raw / "57epigenomes.RPKM.pc.gz", sep="\t").set_index("gene_id")[cell_type]
    enh = pd.read_csv(raw / "truth" / "enhancers.tsv.gz", sep="\t")
    enh = enh[enh[f"active_{cell_type}"].astype(bool)]
    active = genes[genes["gene_id"].map(rpkm).to_numpy() >= rpkm.median()]
    rng = np.random.default_rng(seed)
    rows = []
    for g in active.itertuples():
        for k in [*range(0, 8), *range(12, 20)]:
            if g.strand == "+":
                start = g.tss - 20_000 + 2_000 * k
            else:
                start = g.tss + 20_000 - 2_000 * (k + 1)
            rows.append((g.gene_id, g.chrom, k, start, start + 2_000, -20_000 + 2_000 * k + 1_000))
    loci = pd.DataFrame(rows, columns=["gene_id", "chrom", "position", "start", "end", "distance"])
    effect = np.zeros(len(loci))
    for chrom, e in enh.groupby("chrom"):
        sel = np.flatnonzero(loci["chrom"].to_numpy() == chrom)
        for c, w in zip(e["center"].to_numpy(), e[f"contribution_{cell_type}"].to_numpy(), strict=True):
            hit = sel[(loci["start"].to_numpy()[sel] <= c) & (loci["end"].to_numpy()[sel] > c)]
            effect[hit] -= w
    effect += rng.normal(0, noise, len(loci))
    out = []
    for level, eff in ((1.0, np.zeros(len(loci))), (0.0, effect)):
        out.append(
            loci.assign(
                cell_type=cell_type, provenance="semi-synthetic", model="chromoformer-reg", mark="H3K27ac",
                gene_set="active", region=[f"distal_{k:02d}" for k in loci["position"]], region_kind="distal",
                level=level, effect=eff, effect_sd=0.01, concordance=1.0, n_folds=4, baseline=5.0,
            )
        )  # fmt: skip
    return pd.concat(out, ignore_index=True)[list(COLUMNS)]
