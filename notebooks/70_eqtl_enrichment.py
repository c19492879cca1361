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
# # 70 · eQTL enrichment: do the loci the model prioritises carry fine-mapped eQTLs of their gene?
#
# **Question.** When removing a mark (H3K27ac by default) from a distal 2 kb locus changes a
# gene's predicted expression most, is that locus more often the site of a fine-mapped eQTL *of the
# same gene* in a matched tissue than a random locus of the same cell type (paper Fig. 7A)? And is
# that more than proximity to the TSS, raw histone signal or pcHi-C contacts would give?
#
# **Inputs.** For every cell type of the run with matched eQTL tissues (`cell.eqtl_tissues`:
# E007 brain, E066/E118 liver, E087 pancreas, E114 lung, E116 EBV lymphocytes; E003 has none),
# notebook 60's fold-averaged distal effects (`results/<run>/<EID>/perturbation_effects.tsv.gz`)
# and the dataset store of notebook 10; the fine-mapped eQTLs of Wang et al. 2021 (Suppl. Data 7,
# `put_causal_eqtls_tissue_unique`, GRCh38) with a GRCh38 → hg19 chain file. On the semi-synthetic
# dataset both are SIMULATED by notebook 00: eQTLs planted preferentially inside the *active*
# planted enhancers of their gene, and a simulated chain (the same liftover code runs).
#
# **Method** (the recipe is `chromexp.analyses.enrichment`; notebook 60's table is read and its
# loci selected by `chromexp.analyses.effects`, shared with notebook 80). Per cell type: the distal 2 kb loci (positions 0–7 and
# 12–19 of the 40 kb window; with `perturbation.geometry: reference` also 11) of the chosen gene
# set with their effect at level 0, split into deciles as the paper does: upstream and downstream
# loci separately, ranked by the signed *decrease* of the prediction (tied effects, including
# those within 1e-6 of 0, share a decile); per decile, the fraction of loci holding a fine-mapped
# eQTL of the locus's gene (PIP > 0.9 in a matched tissue, < 0.1 in every other tissue; lifted to
# hg19) against 10,000 random equal-size samples of that cell type's loci, p = (1 + #{random ≥
# observed}) / (1 + 10,000) (and the exact hypergeometric tail beside it), Benjamini–Hochberg
# across cell types within a decile. Beyond the paper: Mantel–Haenszel odds ratios of each decile
# against the other loci *at the same distance from the TSS* and *of the same gene* (95 % CI); the
# **signal-only baseline** (the same deciles with the loci ranked by their own signal); and the
# same random-sample test for benchmark sets (the 2 kb bin of maximum signal of the mark per
# gene, the gene's pcHi-C fragments counted once each, the candidate distal 2 kb bins within 6 kb
# of the TSS). Controls: effects shuffled within a cell type (must be null) and, on semi-synthetic
# data, the planted truth itself as the score (must be significant in the top decile).
#
# **Where we differ from the reference code** (chromexpress `qtl_ovrlp`), on purpose: the GRCh38
# variants are lifted to hg19 before the overlap (the reference compared GRCh38 positions with hg19
# loci); a locus counts once however many eQTLs it holds, with 0-based half-open intervals (the
# reference counted eQTL–locus matches, inclusive at both ends); p has the +1 correction; the
# effect is notebook 60's log2 fold change (ranked by its signed decrease, as the reference ranks
# its relative decrease); the downstream loci lie where they are (the reference places every
# downstream locus 2 kb too far from the TSS, `dist_tss = (pos − 9)·2000`); each cell type is its own test (the reference pooled E066
# and E118, both liver); pcHi-C fragments are counted whole, once each (the reference cut them into
# 2 kb pieces 6–20 kb upstream).
#
# **Outputs** (`results/<run>/eqtl/`): `eqtl_deciles.tsv`, `eqtl_benchmarks.tsv`,
# `eqtl_distance_matched.tsv`, `eqtl_controls.tsv`, `eqtl_shuffle_null.tsv`, `eqtl_liftover.tsv`,
# and two figures: the deciles (paper Fig. 7A, drawn by the manuscript's painter
# `chromexp.plots.manuscript.fig7a_eqtl_deciles`, as notebook 90 draws it) and the benchmark sets.
#
# **Checks.** A test of nothing is refused: if a filter (tissue, PIP, liftover, tested genes,
# tested loci) leaves a cell type without an eQTL to test, the notebook stops with the filter's
# name and the counts after every step, never "no enrichment (p = 1)".
#
# **What to expect.** On the semi-synthetic data the planted rule makes loci overlapping active
# enhancers carry most same-gene eQTLs, so a model whose effects follow those enhancers has an
# enriched top decile and an unenriched bottom decile; the shuffled control must be null. On real
# data this is the paper's Fig. 7A question, and the distance-matched odds ratios and benchmarks
# say how much of an enrichment a model adds over proximity, raw signal and pcHi-C contacts.

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/eqtl/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml (e.g. "params/smoke.yaml")
PARAMS = {}  # nested overrides, e.g. {"eqtl": {"mark": "H3K27me3", "gene_set": "inactive"}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
CFG = run.params["eqtl"]
SEED = int(run.params["seed"])
run.describe()

# %% [markdown]
# ## Cell types and their eQTL tissues
# Cell types of the run (`cell_types`) whose parameter file lists eQTL tissues take part; the
# others are shown and left out.

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from chromexp import config, paths
from chromexp.analyses import effects, enrichment
from chromexp.constants import REAL, SEMI_SYNTHETIC
from chromexp.data import dataset, eqtl
from chromexp.plots import eqtl as plots_eqtl
from chromexp.plots import manuscript, style
from chromexp.results import write_table
from chromexp.simulate import eqtl as simulate_eqtl

RUN_DIR = paths.results_dir(run.params) / run.run_name
OUT = RUN_DIR / "eqtl"
OUT.mkdir(parents=True, exist_ok=True)
cell_params = {ct: config.load_params(ct, files=[PARAMS_FILE], overrides=PARAMS) for ct in run.params["cell_types"]}
TISSUES = {ct: list(p["cell"]["eqtl_tissues"]) for ct, p in cell_params.items() if p["cell"]["eqtl_tissues"]}
CELLS = list(TISSUES)
display(
    pd.DataFrame(
        {
            "eqtl_tissues": {
                ct: ", ".join(p["cell"]["eqtl_tissues"]) or "(none: left out)" for ct, p in cell_params.items()
            }
        }
    )
)
if not CELLS:
    raise ValueError(f"None of the run's cell types {list(cell_params)} has eQTL tissues (cell.eqtl_tissues).")

# %% [markdown]
# ## Notebook 60's effects
# The loci of the test (`enrichment.select_loci`, i.e. `effects.distal_loci`): `region_kind ==
# "distal"`, the mark, gene set, level and model of the `eqtl` parameters; the rows left after
# each filter are shown. Their coordinates are checked against the dataset's 2 kb bins.

# %%
loci = enrichment.select_loci(
    effects.read_run_effects(RUN_DIR, CELLS), CFG["mark"], CFG["gene_set"], CFG["level"], CFG["model"]
)
display(effects.filter_counts(loci))
stores = {ct: dataset.load_dataset(cell_params[ct], ct) for ct in CELLS}
for ct in CELLS:
    enrichment.check_locus_geometry(loci[loci["cell_type"] == ct], stores[ct].genes, stores[ct].half_window)
PROVENANCE = sorted(set(loci["provenance"]))
if len(PROVENANCE) != 1:
    raise ValueError(f"The effects tables mix provenances {PROVENANCE}; run the cell types on one dataset.")
PROVENANCE = PROVENANCE[0]
loci.groupby("cell_type").agg(
    genes=("gene_id", "nunique"), loci=("gene_id", "size"), provenance=("provenance", "first")
)

# %% [markdown]
# ## Fine-mapped eQTLs: read, select tissue-unique ones, lift to hg19
# Every malformed line would stop here with its file and line; variants on other chromosomes and
# variants that fail to lift are counted, not dropped silently.

# %%
inputs = eqtl.eqtl_inputs(run.params)
eqtls = eqtl.read_fine_mapped_eqtls(inputs["table"])
eqtl_provenance = SEMI_SYNTHETIC if inputs["simulated_chain"] else REAL
if eqtl_provenance != PROVENANCE:
    raise ValueError(f"The effects are {PROVENANCE} but the eQTLs are {eqtl_provenance}: use one dataset.")
lifted, lift_report = eqtl.liftover(eqtls, inputs["chain"])
print(f"{len(eqtls):,} eQTL rows in {inputs['table'].name}; excluded while reading: {eqtls.attrs['excluded']}")
print(
    f"chain: {inputs['chain'].name}"
    + (" (SIMULATED chain of the semi-synthetic dataset)" if inputs["simulated_chain"] else "")
)
display(lift_report)
per_cell, eqtl_counts = enrichment.eqtls_by_cell_type(eqtls, lifted, TISSUES, CFG["pip_in"], CFG["pip_out"])

# %% [markdown]
# ## Which loci hold an eQTL of their own gene
# A locus counts once however many eQTLs it holds (`chromexp.analyses.enrichment.count_eqtls`: 0-based
# half-open loci, lifted 0-based positions; tested against `bedtools intersect -c`). The table
# gives the eQTLs left after each filter; a cell type with none left stops here
# (`enrichment.check_tested`), naming the filter.

# %%
has, eqtl_counts = enrichment.loci_with_eqtls(loci, per_cell, eqtl_counts)
loci["has_eqtl"] = has
display(eqtl_counts)
enrichment.check_tested(eqtl_counts)
loci.groupby("cell_type")["has_eqtl"].agg(["size", "sum", "mean"]).rename(
    columns={"size": "loci", "sum": "with_eqtl", "mean": "fraction"}
)

# %% [markdown]
# ## The paper's test: deciles against 10,000 random samples
# The paper's deciles (`eqtl.ranking: decrease`, `eqtl.deciles_per_side: true`): upstream and
# downstream loci ranked separately by the signed *decrease* of the prediction when the mark is
# removed (decile 10 = the largest drops), then joined; `abs` / `false` give chromexp's earlier
# pooled |effect| (docs/deviations.md). `p` is the reference's Monte-Carlo p from 10,000 random
# equal-size samples; `p_exact` the hypergeometric tail it estimates. `frac_raising` /
# `frac_downstream`: the share of a decile's loci whose removal *raises* the prediction, and the
# share downstream of the TSS. Timed: the 10,000 samples of every decile and cell type are drawn
# in one vectorised call per cell type (exactly the hypergeometric distribution of the explicit
# subsets; see the module docstring).

# %%
RANKING = dict(ranking=CFG["ranking"], per_side=bool(CFG["deciles_per_side"]))
t0 = time.perf_counter()
deciles = enrichment.decile_tests(loci, has, TISSUES, n_random=CFG["n_random"], seed=SEED, **RANKING)
TEST_SECONDS = time.perf_counter() - t0
print(f"{CFG['n_random']:,} random samples x {deciles.shape[0]} (cell type, decile) tests in {TEST_SECONDS:.3f} s")
assert deciles["p"].dropna().between(1 / (1 + CFG["n_random"]), 1).all()
# the other definition beside it (pooled |effect| when the paper's is the setting, and vice versa)
other = dict(ranking="abs", per_side=False) if RANKING != dict(ranking="abs", per_side=False) else {}
if other:
    alt = enrichment.decile_tests(loci, has, TISSUES, n_random=CFG["n_random"], seed=SEED, **other)
    makeup = pd.concat(
        {
            f"{RANKING['ranking']}, per side={RANKING['per_side']}": deciles.set_index(["cell_type", "decile"]),
            "abs, pooled (before issue 30)": alt.set_index(["cell_type", "decile"]),
        },
        axis=1,
    ).loc[(slice(None), [1, 10]), (slice(None), ["fraction", "p", "frac_raising", "frac_downstream"])]
    display(makeup.round(3))
deciles.round(4)

# %% [markdown]
# ## The signal-only baseline: the same test with loci ranked by their own signal
# Each locus's own input (the mark's ln signal of the 2 kb bin in the dataset store, what the model
# reads there) replaces the model's effect as the ranking score (per side when the deciles are):
# what a reader of the track gets without any model. A model earns its keep only where its deciles
# beat these (`enrichment.locus_signal`; written to `eqtl_deciles_signal.tsv`).

# %%
loci["signal"] = np.nan
for ct in CELLS:
    m = (loci["cell_type"] == ct).to_numpy()
    loci.loc[m, "signal"] = enrichment.locus_signal(stores[ct], loci[m], CFG["mark"])
signal_deciles = enrichment.decile_tests(
    loci,
    has,
    TISSUES,
    n_random=CFG["n_random"],
    seed=SEED,
    score="signal",
    ranking="value",
    per_side=RANKING["per_side"],
)
pd.concat(
    {
        "model (effect)": deciles.set_index(["cell_type", "decile"]),
        "signal only": signal_deciles.set_index(["cell_type", "decile"]),
    },
    axis=1,
).loc[:, (slice(None), ["fraction", "p", "q"])].round(4)

# %% [markdown]
# ## Beyond the paper: distance-matched odds ratios
# Each decile against the other loci *at the same position* (same distance and side of the TSS),
# Mantel–Haenszel over the positions: proximity to the TSS cannot explain these (`strata =
# position`); and against the other loci *of the same gene* (`strata = gene`): a gene rich in
# eQTLs cannot explain them. `signal_decile_10` is the signal-only top decile. The benchmark
# sets are drawn among the candidate distal positions of the tested loci.

# %%
bench_sets = {
    ct: enrichment.benchmark_sets(
        stores[ct],
        loci.loc[loci["cell_type"] == ct, "gene_id"].unique(),
        CFG["mark"],
        CFG["proximal_max"],
        CFG["max_activity_distal_only"],
        enrichment.distal_positions_of(loci[loci["cell_type"] == ct]),
    )
    for ct in CELLS
}
matched = enrichment.distance_matched_table(loci, bench_sets, CFG["max_activity_distal_only"], PROVENANCE, **RANKING)
matched.round(4)

# %% [markdown]
# ## Benchmarks on the same test
# The model's top decile beside three sets that need no model: the 2 kb bin of maximum signal of
# the mark per gene (among the distal bins), the gene's pcHi-C fragments (each counted once; they
# are longer than 2 kb, which favours them), and the candidate distal 2 kb bins within 6 kb of
# the TSS (positions 7 and 12: a subset of the pool, so its p has a null meaning). Each is
# compared with random equal-size samples of the same cell type's distal loci; BH across cell
# types within a set.

# %%
benchmarks = enrichment.benchmark_table(loci, bench_sets, per_cell, TISSUES, CFG["n_random"], SEED, PROVENANCE)
benchmarks.round(4)

# %% [markdown]
# ## Controls
# *Shuffled effects*: the same test after permuting the effects within each cell type (a null:
# the top decile must not be enriched), repeated over `eqtl.n_shuffles` independent permutations;
# we report how often the top decile reaches p < 0.05 (about 5 % under a correct test).
# *Planted truth* (semi-synthetic only): the score of a locus is the summed contribution of its
# gene's active planted enhancers overlapping it — the oracle a perfect model would reach; its
# top decile must be significant.

# %%
first_shuffle, shuffle_null = enrichment.shuffle_controls(
    loci, has, TISSUES, CFG["n_random"], int(CFG["n_shuffles"]), SEED, PROVENANCE, **RANKING
)
controls = [first_shuffle]
display(shuffle_null)
if PROVENANCE == SEMI_SYNTHETIC:
    enhancers = pd.read_csv(paths.raw_dir(run.params) / "truth" / "enhancers.tsv.gz", sep="\t")
    controls.append(enrichment.planted_control(loci, has, TISSUES, enhancers, CFG["n_random"], SEED + 2, **RANKING))
    truth = simulate_eqtl.read_truth(paths.raw_dir(run.params))
    display(truth[truth["passes_filter"]].groupby(["tissue", "kind"]).size().rename("planted eQTLs passing the filter"))
controls = pd.concat(controls, ignore_index=True)
controls[controls["decile"].isin([1, 10])].round(4)

# %% [markdown]
# ## Check and save
# Every locus is in exactly one decile; every decile has a p-value.

# %%
assert deciles["n_loci"].sum() == len(loci)
assert not deciles[["fraction", "p"]].dropna().empty
write_table(deciles, OUT / "eqtl_deciles.tsv")
write_table(signal_deciles, OUT / "eqtl_deciles_signal.tsv")
write_table(benchmarks, OUT / "eqtl_benchmarks.tsv")
write_table(matched[list(enrichment.MATCHED_OUTPUT_COLUMNS)], OUT / "eqtl_distance_matched.tsv")
write_table(controls, OUT / "eqtl_controls.tsv")
write_table(shuffle_null, OUT / "eqtl_shuffle_null.tsv")
write_table(lift_report.assign(provenance=PROVENANCE, chain=inputs["chain"].name), OUT / "eqtl_liftover.tsv")
print("saved to", OUT)

# %% [markdown]
# ## Figures
# The deciles with the benchmark sets (paper Fig. 7A; the manuscript's painter, as in notebook 90).

# %%
fig = manuscript.fig7a_eqtl_deciles(deciles, benchmarks)
style.save_figure(fig, "fig7a_eqtl_deciles", OUT / "figures")

# %% [markdown]
# *Figure: fraction of distal 2 kb loci holding a fine-mapped eQTL of their own gene, by decile of
# |predicted effect| of removing the mark, per tissue-matched cell type, against 10,000 random
# equal-size samples of the same cell type's loci; the benchmark sets' fractions beside it.
# The title states whether the data are semi-synthetic.*

# %%
fig = plots_eqtl.plot_eqtl_benchmarks(deciles, benchmarks)
style.save_figure(fig, "eqtl_benchmarks", OUT / "figures")

# %% [markdown]
# *Figure: the model's top decile beside the benchmark locus sets on the same test (bars =
# fraction with an eQTL of the gene; black = random samples' mean and 95 % range; empirical p).*
#
# ## Answer

# %%
ANSWER = enrichment.answer(
    deciles,
    matched,
    shuffle_null,
    controls,
    PROVENANCE,
    CFG["mark"],
    CFG["gene_set"],
    TEST_SECONDS,
    signal_deciles=signal_deciles,
    **RANKING,
)
display(Markdown(ANSWER))
