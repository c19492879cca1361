# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Demo data: the embedded semi-synthetic mini-Roadmap
#
# **Question.** The real Roadmap alignments cannot be downloaded on every machine; what dataset do
# all later notebooks run on by default?
#
# **Inputs.** The real Roadmap RPKM of 19,802 genes in the 11 cell types with hg19 TSS and
# strand (vendored in `lib/chromexp/resources/roadmap/`).
#
# **Output.** The raw inputs of one dataset, in the real Roadmap file formats, under
# `data/semisynthetic-<preset>/raw/`.
#
# **What to expect.** A gene table and an expression matrix for the preset's genes.
# Everything downstream of this notebook is **semi-synthetic**: real expression, simulated reads.

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/all/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml (e.g. "params/smoke.yaml")
PARAMS = {}  # nested overrides, e.g. {"data": {"preset": "smoke"}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
run.describe()

# %% [markdown]
# ## Genes and expression
# The real expression table, as vendored.

# %%
import pandas as pd

from chromexp import paths

genes = pd.read_csv(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz", sep="\t")
print(f"{len(genes):,} genes, {genes['chrom'].nunique()} chromosomes")
genes.head()
