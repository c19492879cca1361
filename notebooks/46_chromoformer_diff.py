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
# # 46 · Chromoformer-diff: the expression change between two cell types, trained on every pair
#
# **Question.** Predicting the log2 fold change of a gene's expression between two cell types from
# both cell types' histone marks and pcHi-C pCREs, does the Siamese Chromoformer-diff do better than
# the difference of two independently trained Chromoformer-reg models, than the classifier's log
# ratio (the paper's "X-clf" reference, Fig. 2e) and than DeepDiff?
#
# **Scope.** All cell types of the run at once (every unordered pair, A < B by EID), so this
# notebook runs after every cell type's notebook 45, whose 40-kb Chromoformer-reg/-clf checkpoints it
# reads back for the two-model baselines (it trains the missing ones with the same recipe).
#
# **Inputs.** Each cell type's dataset store (notebook 10): its own marks at three resolutions and its
# own pcHi-C tissue's pCREs; on semi-synthetic data the planted enhancers (`raw/truth/enhancers.tsv.gz`).
#
# **Method** (docs/methods.md, "Chromoformer-diff"; **from the paper's description — there is no
# reference code**). One shared Chromoformer backbone embeds both sides; `fc_diff` (768 → 128 → 1)
# predicts lfc = log2(RPKM_B + 1) − log2(RPKM_A + 1) from the concatenated embeddings and the shared
# `fc_head` each side's expression; loss `w_lfc·MSE(lfc) + w_A·MSE(ŷ_A) + w_B·MSE(ŷ_B)`
# (`chromoformer_diff.loss_weights`, default 1 : 1 : 1 — not given in the paper); the paper's training
# protocol; the chromosome folds of the study (a gene is in the same fold for every cell type). Baselines
# on the same test genes: ŷ_B − ŷ_A of the two cell types' Chromoformer-reg models of the same fold,
# log2(p_B / p_A) of their Chromoformer-clf models, DeepDiff (`chromoformer_diff.deepdiff_variant`,
# published settings, 200 bins of 100 bp).
#
# **Outputs** (in `results/<run>/all/`). `chromoformer_diff_metrics.tsv`, `chromoformer_diff_predictions.tsv.gz`
# (tidy, keyed by pair, model, fold), `chromoformer_diff_summary.tsv`, `chromoformer_diff_truth.tsv`
# (semi-synthetic) and the Fig. 2e panel.
#
# **What to expect.** The paper shows Chromoformer-diff above the X-clf reference and DeepDiff (Fig. 2e/f,
# no numbers in its text). On the **semi-synthetic** data the expression changes partly come from planted
# enhancers that switch on or off between cell types; the diff model should do best on the genes whose
# planted enhancer activity differs. Demo and smoke settings (few pairs, one fold, few epochs) only show
# that the pipeline runs.
#
# **Cost.** A pair model costs about two Chromoformer-reg models (two backbone passes per gene). The
# demo (3 pairs, fold 1, one epoch, the two-reg and clf-ratio baselines) took 102 s on a quiet core
# (2026-12-06; README, "Chromoformer's own study"); the full setting (all 55 pairs of 11 cell types, 4
# folds, 10 epochs) ≈ 117 CPU-hours extrapolated from it: GPU work (`bench/gpu_grid.py` measures
# `chromoformer_diff`; no GPU was lent to measure it).

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/all/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml
PARAMS = {}  # nested overrides, e.g. {"chromoformer_diff": {"pairs": [["E003", "E116"]]}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
run.describe()

# %%
import pandas as pd
from IPython.display import Markdown, display

from chromexp import config, paths, results
from chromexp.analyses import chromoformer_study as stats
from chromexp.constants import SEMI_SYNTHETIC
from chromexp.data import dataset
from chromexp.experiments import chromoformer_diff as diff
from chromexp.models import chromoformer as cf
from chromexp.plots import chromoformer_study as panels
from chromexp.plots.style import save_figure
from chromexp.training import train

D = diff.diff_settings(run.params)
CELLS = sorted({c for p in D["pairs"] for c in p})
DEVICE = train.resolve_device(run.params["device"])
print(f"pairs: {[diff.pair_name(*p) for p in D['pairs']]}\nfolds: {D['folds']}; protocol: {D['protocol']}")
print(f"loss weights (lfc, A, B): {D['loss_weights']}; swap augmentation: {D['swap_augmentation']}")
print(f"baselines: {D['baselines']} (DeepDiff variant {D['deepdiff_variant']}); device: {DEVICE}")

# %% [markdown]
# ## Load each cell type's dataset and match the genes
# A pair uses the genes both stores hold; the folds must agree gene by gene (checked).

# %%
cell_params = {c: config.load_params(c, files=[PARAMS_FILE], overrides=PARAMS) for c in CELLS}
stores = {c: dataset.load_dataset(cell_params[c], c) for c in CELLS}
provenance = {s.provenance for s in stores.values()}
assert len(provenance) == 1, f"the cell types mix provenances {provenance}"
PROVENANCE = provenance.pop()
print(f"{len(CELLS)} cell types, {PROVENANCE} data")
pairs = {diff.pair_name(a, b): diff.pair_data(stores[a], stores[b]) for a, b in D["pairs"]}
pd.DataFrame(
    {
        name: {"genes": len(p.gene_ids), "lfc sd": float(p.lfc.std()), "|lfc| >= 1": float((abs(p.lfc) >= 1).mean())}
        for name, p in pairs.items()
    }
).T.round(3)

# %% [markdown]
# ## The model
# One backbone for both sides: its parameters are those of Chromoformer-reg (5,342,543 for 7 marks,
# backbone + `fc_head`) plus `fc_diff` (2 x 384 → 128 → 1).

# %%
n_marks = len(run.params["marks"])
model = diff.build_diff(run.params, n_marks)
reg = cf.build_model("reg", n_marks)
print(f"Chromoformer-diff: {cf.count_parameters(model):,} parameters; Chromoformer-reg: {cf.count_parameters(reg):,}")
assert cf.count_parameters(model) == cf.count_parameters(reg) + sum(p.numel() for p in model.fc_diff.parameters())

# %% [markdown]
# ## Train and evaluate every (pair, fold)
# Pair models are checkpointed under `results/<run>/all/checkpoints/`; the per-cell-type baselines
# are read from (or written to) each cell type's checkpoint folder.

# %%
checkpoint_dirs = {c: paths.run_dir(cell_params[c], run.run_name, c) / "checkpoints" for c in CELLS}
fitted = diff.train_and_evaluate(
    stores,
    run.params,
    cell_params=cell_params,
    checkpoint_dirs=checkpoint_dirs if D["checkpoints"] else None,
    pair_checkpoint_dir=run.out_dir / "checkpoints" if D["checkpoints"] else None,
    device=DEVICE,
    progress=False,
)
seconds = fitted.seconds.groupby("model")["seconds"].agg(["count", "mean", "sum"]).round(1)
seconds

# %% [markdown]
# ## Check and save

# %%
diff.check_results(fitted, D)
diff.save(fitted, run.out_dir, PROVENANCE)
metrics = fitted.metrics.assign(provenance=PROVENANCE)
summary = stats.fold_summary(metrics, by=("pair", "model", "split", "metric"))
results.write_table(summary, run.out_dir / "chromoformer_diff_summary.tsv")
summary[summary["metric"].isin(["pearson_r", "spearman_rho"]) & (summary["split"] == "test")].pivot_table(
    index="pair", columns=["metric", "model"], values="mean"
).round(3)

# %% [markdown]
# ## Planted truth: genes whose enhancer activity differs between the two cell types (semi-synthetic only)
# A gene is in the group "enhancer activity differs" when at least one of its planted enhancers is
# active in exactly one of the two cell types. Per (pair, fold), Pearson r of Chromoformer-diff and of
# the two-reg-models difference on each group; over the (pair, fold) units a two-sided Wilcoxon test.

# %%
by_group = truth = None
if PROVENANCE == SEMI_SYNTHETIC and "two_reg" in D["baselines"]:
    from chromexp.analyses.perturb import read_planted_enhancers

    planted = read_planted_enhancers(paths.raw_dir(run.params))
    groups = {diff.pair_name(a, b): stats.enhancer_changes(planted, a, b)["group"] for a, b in D["pairs"]}
    by_group = stats.diff_by_group(fitted.predictions, diff.DIFF_MODEL, diff.REG_DIFFERENCE, groups)
    truth = stats.diff_summary(by_group).assign(provenance=PROVENANCE)
    results.write_table(by_group.assign(provenance=PROVENANCE), run.out_dir / "chromoformer_diff_truth_units.tsv")
    results.write_table(truth, run.out_dir / "chromoformer_diff_truth.tsv")
    display(truth.round(4))
else:
    print(f"{PROVENANCE} data: no planted truth to score the pairs against.")
fig = panels.plot_diff(metrics, by_group, PROVENANCE)
_ = save_figure(fig, "fig2e_chromoformer_diff", run.figures_dir)

# %% [markdown]
# ## Answer
# Written from this run's numbers.

# %%
display(Markdown(stats.diff_answer(summary, truth, PROVENANCE, len(D["folds"]))))
