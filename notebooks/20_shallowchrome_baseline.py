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
# # 20 · ShallowChrome baseline and naive correlation baselines
#
# **Question.** How far do simple, interpretable models go? (1) ShallowChrome (Frasca et al.
# 2022): call peaks per histone mark with MACS2, take for each gene and mark the maximum peak
# `signalValue` within TSS ± 5 kb, and classify genes as active/inactive with an unpenalised
# logistic regression. (2) The naive baselines of the paper's Fig. 1A: the |Pearson r| between a
# mark's mean signal over TSS ± 750 / 1,500 / 3,000 bp and log2 expression.
#
# **Inputs.** The tagAlign reads of this cell type (`data/<dataset>/raw/`), or user-supplied
# Roadmap peak files (`peaks.source: files`); the dataset store of notebook 10 (genes, expression,
# labels, chromosome folds, TSS-flank signal means).
#
# **What to expect.** Peak counts per mark and format; the validation AUROC of the six
# peak-format configurations and the one selected per split; test AUROC / AUPR / F1 under the
# paper's 10 random thirds and under our 4 chromosome folds; Wald z-tests of each mark's weight
# (H3K4me3/H3K27ac/H3K9ac/H3K36me3 activators, H3K27me3 a repressor in the paper); gene-wise
# regulative patterns across cell types; the 'valley' label threshold next to the median one;
# and the naive per-mark correlations (H3K4me3 and the acetylation marks highest in the paper).
# On the default dataset every number here is **semi-synthetic** (simulated reads, real
# expression): it says whether the pipeline recovers the simulated biology, not how real
# chromatin behaves. The cross-cell-type summary shows DeepChrome's *published real-data*
# AUROCs beside ours only as an external anchor — different data.

# %% tags=["parameters"]
CELL_TYPE = None  # Roadmap EID, e.g. "E003" (required)
RUN_NAME = None  # results/<RUN_NAME>/<CELL_TYPE>/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml and params/cells/<CELL_TYPE>.yaml
PARAMS = {}  # nested overrides, e.g. {"train": {"max_epochs": 5}}

# %%
from chromexp import runs

run = runs.start(cell_type=CELL_TYPE, run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS)
run.describe()

# %%
import time

import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from chromexp import paths, provenance, results
from chromexp.baselines import naive as naive_baselines
from chromexp.baselines import shallowchrome as sc
from chromexp.data import dataset
from chromexp.experiments import shallowchrome as experiment
from chromexp.plots import panels, style
from chromexp.utils import atomic_path

P = run.params["shallowchrome"]
LABEL = provenance.data_label(run.provenance)
print(f"{CELL_TYPE}: {LABEL}")

# %% [markdown]
# ## Load the dataset
# Genes, their real expression, the median label and the chromosome folds come from notebook 10's
# store, so that ShallowChrome is evaluated on exactly the genes and folds of the neural models.

# %%
ds = dataset.load_dataset(run.params, CELL_TYPE)
genes = ds.genes
marks = tuple(P["marks"] or run.params["marks"])
print(f"{len(genes):,} genes, {genes['label'].mean():.1%} active (median rule); marks: {', '.join(marks)}")
genes.groupby("fold").size().rename("genes").to_frame().T

# %% [markdown]
# ## Peaks (MACS2) and peak-max features
# MACS2 runs once per mark and mode (narrow → narrowPeak; broad → broadPeak + gappedPeak, as
# Roadmap), with a fixed fragment size instead of MACS2's shifting model (which fails on little
# data). Existing outputs made by the same command are reused. On semi-synthetic data the genome
# size is the simulated region (`peaks.gsize: auto`), since reads exist only near the genes.
# Every empty peak file is listed below: its mark's feature would be 0 for every gene.

# %%
cell_run = experiment.run_cell_type(run.params, CELL_TYPE, dataset=ds)
peak_table = cell_run.peak_table
print(
    f"peaks: {cell_run.seconds['peaks']:.1f} s ({(peak_table['status'] == 'called').sum()} files called now); "
    f"features: {cell_run.seconds['features']:.1f} s; fits: {cell_run.seconds['fits']:.1f} s"
)
empty = peak_table[peak_table["n_peaks"] == 0]
print("empty peak files:", ", ".join(empty["mark"] + " " + empty["format"]) if len(empty) else "none")
peak_table.pivot(index="mark", columns="format", values="n_peaks").reindex(marks)

# %%
features = cell_run.features
coverage = pd.DataFrame({fmt: (x > 0).mean(axis=0) for fmt, x in features.items()}, index=list(marks))
print(f"fraction of genes with a peak within TSS ± {P['tss_flank']} bp")
coverage.round(3)

# %% [markdown]
# ## AUROC per peak configuration and split
# The peak format is a hyper-parameter: repressive marks (H3K9me3, H3K27me3, H3K36me3) share one
# format, the active marks (H3K4me1, H3K4me3 and — our addition, the reference had no acetylation
# marks — H3K27ac, H3K9ac) another. Every configuration is fitted on each split's training genes;
# the one with the best validation AUROC is selected per split (as the reference did).

# %% [markdown]
# Note: MACS2 (2.2.7) writes the same broad regions with the same `signalValue` to its broadPeak
# and gappedPeak files (the gappedPeak only adds the narrow sub-blocks), so with MACS2-called peaks
# `broad` ≡ `gapped`, `broad_narrow` ≡ `gapped_narrow` and `gapped_broad` ≡ `broad`; ties are
# resolved in the configuration order (broad first). They differ only with user-supplied peak files.

# %%
res = cell_run.result
grid = res.grid
fig = panels.plot_shallowchrome_configurations(grid, run.provenance)
style.save_figure(fig, f"shallowchrome_configurations_{CELL_TYPE}", run.figures_dir)
grid[grid["model"] == "shallowchrome"].pivot_table(
    index="config", columns=["scheme", "split"], values="auroc", aggfunc="mean"
).round(3)

# %% [markdown]
# ### Selected configuration per split

# %%
sel = res.selection
display(sel.pivot_table(index=["model", "scheme"], columns="fold", values="config", aggfunc="first"))
sel.groupby(["model", "scheme"])["config"].value_counts().rename("n_splits").to_frame()

# %% [markdown]
# ## Test performance of the selected models
# AUROC, AUPR and F1 (at probability 0.5) on the test genes of each split: 10 random thirds
# (the paper's protocol) and the 4 chromosome folds (ours, the same folds as the neural models).

# %%
metrics = res.metrics
summary = (
    metrics[metrics["split"] == "test"]
    .groupby(["model", "scheme", "metric"])["value"]
    .agg(["mean", "std", "count"])
    .round(3)
    .unstack("metric")
)
summary

# %% [markdown]
# ## Coefficients and Wald tests
# statsmodels' Wald z-tests of the training fit of each selected model (p < 1e-4 marks a
# significant activator or repressor). **Not the reference's numbers:** its `z_test` divided the
# coefficients of a two-class *multinomial* sklearn model — which are half the logistic
# coefficients — by the standard errors of the full coefficients, so every published z was
# halved. The column `z_reference_bug` shows what that code would have printed for our fits.

# %%
coef = res.coefficients.copy()
coef["z_reference_bug"] = sc.wald_z_reference_halved(coef["z"])
cf = coef[(coef["model"] == "shallowchrome") & (coef["scheme"] == "chrom_folds")]
display(cf.pivot_table(index="term", columns="fold", values="z").round(1))
cf.groupby("term")["role"].value_counts().unstack(fill_value=0)

# %%
cf[cf["fold"] == cf["fold"].min()][["term", "format", "coef", "se", "z", "z_reference_bug", "p_value", "role"]]

# %% [markdown]
# ## Valley vs median thresholds
# The study labels a gene active when its RPKM is at least the cell type's median. ShallowChrome's
# supplementary 'valley' rule puts the threshold at the first emptiest histogram bin of
# ln(1 + RPKM) left of the median, separating the silent mode from the expressed one.

# %%
fig = panels.plot_valley_threshold(
    genes["rpkm"],
    res.thresholds["median"],
    res.thresholds.get("valley", np.nan),
    run.provenance,
    CELL_TYPE,
    bins=P["valley_bins"],
)
style.save_figure(fig, f"shallowchrome_valley_threshold_{CELL_TYPE}", run.figures_dir)
thr = pd.DataFrame({"rpkm_threshold": res.thresholds})
thr["fraction_active"] = [float((genes["rpkm"] >= t).mean()) for t in thr["rpkm_threshold"]]
display(thr.round(4))
metrics.query("metric == 'auroc' and split == 'test'").groupby(["scheme", "model"])["value"].agg(
    ["mean", "std"]
).unstack("model").round(3)

# %% [markdown]
# ## Regulative patterns across cell types
# For a gene, ShallowChrome's pattern is the bias plus each mark's contribution `w_m · x_m` to
# the log-odds of being active; its bars are coloured by the mark's Wald-test role. Each gene's
# pattern comes from the chromosome-fold model that never saw the gene (its own fold's model).
# The run's other cell types are included when their dataset exists (`shallowchrome.across_cell_types`).

# %%
others, missing = {}, []
if P["across_cell_types"]:
    t0 = time.perf_counter()
    others, missing = experiment.other_cell_type_runs(run.params, CELL_TYPE)
    print(f"other cell types fitted: {', '.join(others) or 'none'} in {time.perf_counter() - t0:.1f} s")
    print(f"without a dataset store yet (run notebook 10 for them): {', '.join(missing) or 'none'}")
all_runs = {CELL_TYPE: cell_run, **others}
# the listed genes present in every cell type, else the genes whose activity differs most across them
wanted = experiment.pick_pattern_genes(P["pattern_genes"], all_runs)
print("pattern genes:", ", ".join(wanted))
patterns = pd.concat(
    [
        sc.gene_patterns(r.result, r.features, r.dataset.genes, r.marks, wanted, cell_type=c)
        for c, r in all_runs.items()
    ],
    ignore_index=True,
)
fig = panels.plot_regulative_patterns(patterns, run.provenance)
style.save_figure(fig, f"shallowchrome_patterns_{CELL_TYPE}", run.figures_dir)
patterns.pivot_table(index=["gene_name", "term"], columns="cell_type", values="value").round(2)

# %% [markdown]
# ## Naive baselines (paper Fig. 1A)
# |Pearson r| between each mark's mean signal ln(depth + 1) over TSS ± 750 / 1,500 / 3,000 bp and
# log2(RPKM + 1), over each fold's test genes — no model at all.

# %%
naive = naive_baselines.naive_correlations(
    ds, marks=ds.marks, flanks=run.params["dataset"]["naive_flanks"], folds=run.params["folds"]
)
naive_table = (
    naive[naive["metric"] == "abs_pearson_r"]
    .pivot_table(index="marks", columns="model", values="value", aggfunc="mean")
    .reindex(
        index=list(ds.marks),
        columns=[naive_baselines.naive_model_name(f) for f in run.params["dataset"]["naive_flanks"]],
    )
)
print(f"mean |Pearson r| over folds — {LABEL}")
naive_table.round(3)

# %% [markdown]
# ## Across cell types: our AUROC beside DeepChrome's published AUROC
# **Different data.** DeepChrome's AUROCs are published results on *real* Roadmap data (single
# sequential split, 2 decimals); ours are on this run's data (**semi-synthetic** unless real data
# was supplied). Read the grey bars as an external anchor of what real data give, not as a
# head-to-head comparison.

# %%
ours = pd.concat([sc.summarise(r.result.metrics) for r in all_runs.values()], ignore_index=True)
ours = ours[ours["model"] == "shallowchrome"]
published = pd.read_csv(paths.resources_dir() / "roadmap" / "published_auroc_deepchrome.tsv", sep="\t")
fig = panels.plot_auroc_vs_published(ours, published, run.provenance)
style.save_figure(fig, f"shallowchrome_vs_deepchrome_published_{CELL_TYPE}", run.figures_dir)
side = ours.pivot(index="cell_type", columns="scheme", values="auroc_mean").add_prefix(f"ours ({run.provenance}) ")
side["DeepChrome published (real data)"] = published.set_index("epigenome")["auroc"].reindex(side.index)
side.round(3)

# %% [markdown]
# ## Checks and save
# Tidy tables under `results/<run>/<cell_type>/` (docs/data-formats.md): the selected models' metrics and
# the naive baselines go into `metrics.tsv`, the chromosome-fold test predictions into
# `predictions.tsv.gz`; the configuration grid, the selection, the coefficient table, the gene
# patterns and the peak counts are written beside them for the figures notebook.

# %%
assert metrics["value"].notna().all(), "a selected model has a NaN metric"
assert set(metrics["scheme"]) == {"chrom_folds", "random_thirds"}
n_rand = metrics.query(
    "scheme == 'random_thirds' and metric == 'auroc' and split == 'test' and model == 'shallowchrome'"
)
assert len(n_rand) == P["repeats"], n_rand
pred = res.predictions
assert pred.groupby("model")["gene_id"].nunique().eq(len(genes)).all(), "every gene is predicted once per model"
assert pred["probability"].between(0, 1).all()
assert naive_table.shape == (len(ds.marks), len(run.params["dataset"]["naive_flanks"]))
assert grid["auroc"].notna().all()

out = run.out_dir
results.save_metrics(
    pd.concat([metrics.drop(columns="config"), naive], ignore_index=True), out, provenance=ds.provenance
)
results.save_predictions(pred, out, provenance=ds.provenance)
tables = {
    "shallowchrome_configurations.tsv": grid,
    "shallowchrome_selection.tsv": sel,
    "shallowchrome_coefficients.tsv": coef.assign(provenance=run.provenance),
    "shallowchrome_patterns.tsv": patterns[patterns["cell_type"] == CELL_TYPE],
    "shallowchrome_peaks.tsv": peak_table,
}
for name, table in tables.items():
    results.write_table(table, out / name)
with atomic_path(out / "shallowchrome_thresholds.tsv") as tmp:
    thr.rename_axis("rule").reset_index().to_csv(tmp, sep="\t", index=False)
print(f"wrote {', '.join(['metrics.tsv', 'predictions.tsv.gz', *tables, 'shallowchrome_thresholds.tsv'])} to {out}")

# %% [markdown]
# ## Answer
# Written from this run's numbers (the test metrics and naive baselines above).

# %%
display(Markdown(experiment.answer(metrics, naive_table, run.provenance)))
