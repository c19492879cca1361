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
# # 10 · Data preparation: reads → binned signals, genes, folds and pCREs
#
# **Question.** What does one cell type's modelling dataset look like: which genes enter, which
# are left out and why, how are they split into the four chromosome folds, and does the binned
# histone signal behave as expected around active and inactive promoters?
#
# **Inputs** (from `data/<dataset>/raw/`, notebook 00 or a real Roadmap download):
# `{EID}-{MARK}.tagAlign.gz` (36 bp reads of 7 marks), `genes.tsv` (TSS, strand),
# `57epigenomes.RPKM.pc.gz` (expression), `hg19.chrom.sizes`, `pchic/{TISSUE}.tsv.gz`
# (promoter-capture Hi-C). For E003 also the vendored **real** E003 read depth of 100 genes
# (Chromoformer's demo regions, `lib/chromexp/resources/e003_real/`).
#
# **Method** (docs/methods.md, "Signal" and "Genes, folds, pCREs"). Per-base read depth as `bedtools genomecov` (each read over its
# own 36 bp), averaged exactly per bin (a partial last bin averages only its own bases) and
# transformed as ln(mean + 1) in float32, over TSS ± 20 kb at 100 / 500 / 2,000 bp, bins
# reversed for minus-strand genes. pCREs: pcHi-C fragments interacting with the bait that holds
# the TSS, normalised frequency > 1.5, length ≤ 40 kb, top 8 by frequency (ties in the
# reference's order). Targets log2(RPKM + 1); label = RPKM ≥ the median RPKM of the kept genes.
# Folds are Chromoformer's chromosome groups; the validation genes for early stopping are whole
# training chromosomes chosen by a fixed rule (the reference used an unordered `set`, which is
# not reproducible).
#
# **Outputs.** The dataset store `data/<dataset>/processed/<EID>/dataset.h5` (read by notebooks
# 20–60) and, in `results/<run>/<EID>/`, the tables `dataset_genes.tsv`, `dataset_exclusions.tsv`,
# `dataset_splits.tsv` and QC figures.
#
# **What to expect.** Every excluded gene or pCRE counted under a reason; roughly half of the
# genes labelled active; H3K4me3, H3K9ac and H3K27ac peaking at active TSSs, H3K27me3 higher
# around inactive ones, H3K36me3 rising downstream of active TSSs. On the **semi-synthetic**
# default data these shapes come from the simulator's stated model (calibrated on real E003);
# for E003 the real profiles of the 100 vendored genes are drawn alongside, labelled real.

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

from chromexp import paths, results
from chromexp.constants import REAL
from chromexp.data import dataset
from chromexp.experiments import data_prep
from chromexp.plots import panels, style
from chromexp.utils import atomic_path

print(f"raw inputs: {paths.raw_dir(run.params)}")
print(f"signal: {run.params['signal']}\ndataset: {run.params['dataset']}")

# %% [markdown]
# ## Build the dataset store
# Reading the reads and binning every window is the only expensive step of the pipeline, so it
# is done once per cell type and stored; an existing complete store built from the same inputs
# and parameters is reused.

# %%
t0 = time.perf_counter()
store = dataset.build_dataset(run.params, CELL_TYPE)
t1 = time.perf_counter()
ds = dataset.load_dataset(run.params, CELL_TYPE)
x100 = ds.promoter(resolution=100)
t2 = time.perf_counter()
print(ds)
print(
    f"store {store} ({store.stat().st_size / 1e6:.1f} MB); build/reuse {t1 - t0:.1f} s; load + 100 bp bins {t2 - t1:.2f} s"
)
print(f"labels: RPKM >= {ds.label_median:.4g} ({ds.label_median_source})")

# %% [markdown]
# ## Checks
# Shapes and ranges of what later notebooks read: no NaN, no negative signal, exact window sizes,
# pCRE padding consistent with the masks, and folds / splits disjoint.

# %%
hw = ds.half_window
for res in ds.resolutions:
    x = ds.promoter(resolution=res)
    assert x.shape == (len(ds), len(ds.marks), 2 * hw // res) and x.dtype == np.float32
    assert np.isfinite(x).all() and (x >= 0).all()
    xp, mask, freq, n_pcres = ds.pcres(resolution=res)
    assert xp.shape == (len(ds), ds.max_pcres, len(ds.marks), 2 * hw // res)
    assert np.all(xp[np.broadcast_to(mask[:, :, None, :], xp.shape)] == 0), "padding must be zero"
    assert np.all(freq[n_pcres[:, None] <= np.arange(ds.max_pcres)] == 0), "empty slots have frequency 0"
    assert (freq[n_pcres[:, None] > np.arange(ds.max_pcres)] > run.params["dataset"]["pcre_min_frequency"]).all()
for flank in run.params["dataset"]["naive_flanks"]:
    assert np.isfinite(ds.flank_means(flank=flank)).all()
genes = ds.genes
assert genes["gene_id"].is_unique and genes["fold"].isin([1, 2, 3, 4]).all()
assert np.allclose(genes["target"], np.log2(genes["rpkm"] + 1))
splits = dataset.split_table(ds)
for fold in (1, 2, 3, 4):
    s = ds.split(fold)
    assert sum(map(len, s.values())) == len(ds) and len(np.unique(np.concatenate(list(s.values())))) == len(ds)
print("all checks passed")

# %% [markdown]
# ## Genes, folds and exclusions
# The four folds are fixed chromosome groups; for each test fold the validation chromosomes
# are listed so the choice can be audited. Exclusions list every reason, including those with a
# count of zero.

# %%
fold_table = splits.pivot(index="fold", columns="split", values="n_genes")[["train", "validation", "test"]]
fold_table["validation chromosomes"] = splits[splits["split"] == "validation"].set_index("fold")["chromosomes"]
fold_table["validation fraction of training folds"] = (
    fold_table["validation"] / (fold_table["train"] + fold_table["validation"])
).round(3)
fold_table

# %%
ds.exclusions

# %%
fig = panels.plot_dataset_overview(splits, ds.exclusions, genes, ds.label_median, ds.provenance, CELL_TYPE)
style.save_figure(fig, f"10_dataset_overview_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ## Promoter profiles of active and inactive genes
# Mean oriented signal over TSS ± 20 kb at 100 bp: a sanity check of the binning and the strand
# orientation (asymmetric marks such as H3K36me3 must rise *downstream*). For E003 the real
# read depth of the 100 vendored genes (Chromoformer's demo; labels from the genome-wide E003
# median) goes through the same code and is drawn alongside with dashed lines.

# %%
profiles = [dataset.promoter_profiles(ds, resolution=100)]
real = data_prep.real_reference(run.params, CELL_TYPE)  # vendored real depth (E003 only), else None
if real is not None:
    profiles.append(dataset.promoter_profiles(real, resolution=100, source=REAL))
    print(real, "\nexclusions:", int(real.exclusions["n_items"].sum()))
    # Chromoformer's own labels for these genes came from its median over its gene set
    print(data_prep.real_label_agreement(real))
profiles = pd.concat(profiles, ignore_index=True)
fig = panels.plot_promoter_profiles(profiles)
style.save_figure(fig, f"10_promoter_profiles_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ## pCREs per gene
# How many pcHi-C-linked regions each gene brings into the distal model (at most 8).

# %%
n_pcres = ds.n_pcres()
print(pd.Series(n_pcres).describe().round(2).to_dict())
fig = panels.plot_pcres_per_gene(n_pcres, ds.provenance, ds.max_pcres)
style.save_figure(fig, f"10_pcres_per_gene_{CELL_TYPE}", run.figures_dir)
if real is not None:
    fig = panels.plot_pcres_per_gene(real.n_pcres(), REAL, real.max_pcres)
    style.save_figure(fig, f"10_pcres_per_gene_{CELL_TYPE}_real", run.figures_dir)

# %% [markdown]
# ## Save the tables
# Gene table (with fold and label), exclusions and split sizes, tagged with their provenance.

# %%
out = run.out_dir
tables = {
    "dataset_genes.tsv": genes.assign(n_pcres=n_pcres, provenance=ds.provenance),
    "dataset_exclusions.tsv": ds.exclusions.assign(cell_type=CELL_TYPE, provenance=ds.provenance),
    "dataset_splits.tsv": splits.assign(cell_type=CELL_TYPE, provenance=ds.provenance),
}
for name, table in tables.items():
    assert not table.drop(columns=["example_gene_ids"], errors="ignore").isna().any().any(), name
    with atomic_path(out / name) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
print("written:", ", ".join(tables), "to", out)

# %% [markdown]
# ## Promoter mark levels (for the cross-cell-type figures)
# The "histone level" of the paper's Fig. 3: the mean signal, ln(mean depth + 1), of each mark
# over TSS ± flank for every gene (the flanks of the naive baselines; the widest is the promoter
# CNN's TSS ± 3 kb). Written as a tidy table, `dataset_mark_levels.tsv.gz`, so that notebook 90
# reads result tables only, never the dataset.

# %%
levels = data_prep.mark_levels(ds, run.params["dataset"]["naive_flanks"])
results.write_table(levels, out / "dataset_mark_levels.tsv.gz")
levels.groupby(["flank", "mark"])["level"].describe().round(3)

# %% [markdown]
# ## Answer
# Written from the dataset built above.

# %%
display(Markdown(data_prep.answer(ds, splits, n_pcres)))
