"""Facts of the study that every module shares (docs/methods.md).

These are properties of the Roadmap data and of the reference implementations, not tunable
parameters; parameters (bin sizes, windows, training numbers) live in ``params/defaults.yaml``
only and reach the code through the parameters or the dataset built from them.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from .cells import View

#: The seven histone marks, in the order used everywhere (reference code and Chromoformer demo).
MARKS: tuple[str, ...] = (
    "H3K4me1",
    "H3K4me3",
    "H3K9me3",
    "H3K27me3",
    "H3K36me3",
    "H3K27ac",
    "H3K9ac",
)

#: The study's anchor marks of the mark pairs (notebook 50, paper Fig. 5): each is paired with
#: every other mark (the default of ``model.chromoformer.pair_anchors``).
PAIR_ANCHORS: tuple[str, ...] = ("H3K4me3", "H3K9ac", "H3K27ac")


def anchor_pairs(anchors: Sequence[str], marks: Sequence[str]) -> list[tuple[str, str]]:
    """Every pair of an anchor mark with another mark, each pair once, in ``marks`` order.

    With the study's anchors (:data:`PAIR_ANCHORS`) and 7 marks: 3 × 6 − 3 = 15 pairs
    (docs/methods.md, "Mark pairs"). Notebook 50 trains them; ``chromexp plan`` counts them.
    """
    unknown = [a for a in anchors if a not in marks]
    if unknown:
        raise ValueError(f"Pair anchor(s) {unknown} are not among the marks {list(marks)}.")
    return [(a, b) for a, b in itertools.combinations(marks, 2) if a in anchors or b in anchors]


# Cell types are not listed in code: each is defined by its file params/cells/<ID>.yaml
# (chromexp.cells). These three names stay as read-only views of that registry (id -> name /
# state / 3DIV tissue or None), read when used, so existing callers see every defined cell type.

#: Every defined cell type, id -> readable name (a view of :func:`chromexp.cells.registry`).
CELL_TYPES: Mapping[str, str] = View("name")

#: Cell state of every defined cell type (the study's: ESC, ESC-derived, primary, cancer line).
CELL_STATES: Mapping[str, str] = View("state")

#: 3DIV promoter-capture Hi-C tissue of every defined cell type (None: no pcHi-C).
PCHIC_TISSUE: Mapping[str, str | None] = View("pchic_tissue")

#: Chromosome-grouped cross-validation folds (Chromoformer's assignment), fold number -> chroms.
FOLD_CHROMS: dict[int, tuple[str, ...]] = {
    1: ("chr1", "chr5", "chr6", "chr8", "chr14", "chrY"),
    2: ("chr7", "chr10", "chr11", "chr12", "chr15", "chr21"),
    3: ("chr2", "chr3", "chr4", "chr16", "chr18", "chr20"),
    4: ("chr9", "chr13", "chr17", "chr19", "chr22", "chrX"),
}

#: Chromosome -> fold number.
CHROM_FOLD: dict[str, int] = {c: k for k, cs in FOLD_CHROMS.items() for c in cs}

#: Chromosomes the study uses (autosomes, X, Y); anything else is reported as unknown.
CHROMOSOMES: tuple[str, ...] = tuple(f"chr{i}" for i in range(1, 23)) + ("chrX", "chrY")

#: Data provenance labels: every table and figure says which one it shows.
SEMI_SYNTHETIC = "semi-synthetic"
REAL = "real"

#: ``data.simulator_version`` -> the generative features of the semi-synthetic simulator
#: (:mod:`chromexp.simulate.roadmap`; docs/methods.md, "Semi-synthetic data", "Simulator versions").
#: Version 1 is the simulator as it was before the switch existed: its files stay byte-identical.
#: A new version lists the features of the version it extends plus its own, so an old version's
#: data can always be regenerated bit for bit; the code asks :func:`chromexp.simulate.common.has_feature`.
SIMULATOR_VERSIONS: dict[int, tuple[str, ...]] = {
    1: (),
    2: ("decoys",),
    3: ("decoys", "e116_calibration"),
}

#: What each simulator feature adds (shown by the config error and in docs/methods.md).
SIMULATOR_FEATURES: dict[str, str] = {
    "decoys": "acetylated elements that regulate no simulated gene (active enhancers of a neighbouring gene, "
    "acetylated non-regulatory sites) in the windows and on contacted pcHi-C fragments; no eQTL is planted at them",
    "e116_calibration": "marks recalibrated against the real E116 10-kb counts (notebook 15): an activity-linked "
    "background of every mark near active TSSs, an H3K27me3 domain at repressed genes beyond the Polycomb targets, "
    "H3K4me1 promoter flanks that follow activity, lower H3K4me1/H3K4me3/H3K27me3/H3K36me3 backgrounds (simulate.e116_calibration)",
}

#: How eQTL / s-LDSC loci are ranked into deciles by their perturbation effect (``eqtl.ranking``,
#: ``ldsc.ranking``; :func:`chromexp.analyses.enrichment.ranking_scores`): the signed decrease of the
#: prediction (the paper's), the signed increase (a repressive mark), |effect| (chromexp before issue 30).
EFFECT_RANKINGS: tuple[str, ...] = ("decrease", "increase", "abs")

#: Which 2 kb bins are the promoter in the perturbation (``perturbation.geometry``;
#: :func:`chromexp.analyses.perturb.regions`): chromexp's bins 8-11 or the reference code's 8-10.
PERTURBATION_GEOMETRIES: tuple[str, ...] = ("chromexp", "reference")

#: How peak-max features are computed (``shallowchrome.feature_engine``): numpy (fast) or bedtools (``map -o max``).
FEATURE_ENGINES: tuple[str, ...] = ("numpy", "bedtools")

#: Training protocols of ``train.protocol`` (docs/methods.md, "Training protocol"): the study's
#: (Murphy et al.), the Chromoformer paper's, and the fixed-epochs protocol of the baselines.
PROTOCOLS: tuple[str, ...] = ("murphy", "chromoformer", "fixed")
