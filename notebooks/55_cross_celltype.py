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
# # 55 · Cross-gene vs cross-celltype: does a model know *which cell type* expresses a gene?
#
# **Question.** The study's models are scored by the **cross-gene** correlation: within one cell
# type, over genes. Mittal (2025, Berkeley thesis) shows that such models can look excellent while
# they barely rank a gene's **cell types** (the **cross-celltype** correlation: per gene, over cell
# types; 0.43 for a multi-tissue CNN), and that a hybrid loss α·(1 − cross-celltype Pearson) +
# β·MSE lifts it (0.43 → 0.51 at α = 100) at a small cross-gene cost. How do the paper's models
# (promoter CNN, Chromoformer) and Mittal's (ExPecto ridge, hierarchical CNNs) do on both axes,
# what does the hybrid loss trade, and can a model predict a cell type it never saw?
#
# **Inputs.** Every cell type of the run (`cell_types`): its dataset store (notebook 10; the genes
# every store shares, 7 marks, TSS ± 20 kb) and the test predictions of notebooks 30, 40 and 50 (and
# of any later family) in `results/<run>/<EID>/predictions.tsv.gz`.
#
# **Method** (docs/methods.md, "Cross-gene and cross-celltype metrics", "ExPecto linear model",
# "Hierarchical CNNs", "Hybrid cross-celltype loss"; docs/deviations.md for every choice of ours).
# * ExPecto: each track reduced by 10 exponential-decay spatial bases (200-bp bins merged exactly from
#   the stored 100-bp depths), ridge with α chosen on the validation cross-gene Spearman ρ, per
#   (cell type, fold); `matched` (the cell type's 7 marks, 70 features) and `all_cells` (every cell
#   type's marks, as ExPecto and Mittal).
# * Hierarchical CNNs — the conv tower is a **reconstruction** (the thesis gives the block types,
#   not the widths): `single_tissue`, `multi_tissue` (one output per cell type) and
#   `matched_shared` (one network over (gene, cell type) pairs reading that cell type's marks),
#   trained with the project's engine; the (α, β) grid on `model.hierarchical_cnn.hybrid_variant`.
# * Unseen cell types: leave one cell type out — `matched_shared` and the `matched` ridge trained on
#   the other cell types' genes of the training folds, tested on the held-out cell type's
#   test-fold genes.
# * Both axes for every model on the same folds: cross-gene ρ per (cell type, fold) beside the
#   gene's **mean over the other cell types** (on the same genes); cross-celltype ρ per gene (each
#   gene scored with the models of the fold where it is a test gene), genes constant across cell
#   types masked and counted, beside a seeded **per-gene permutation null**.
#
# **Outputs** (`results/<run>/cross_celltype/`): `metrics.tsv` (tidy; cross-gene rows per cell type,
# cross-celltype rows with `cell_type = all`), `predictions.tsv.gz` (this notebook's models),
# `cross_celltype_genes.tsv.gz` (per gene), `axes_summary.tsv`, `hybrid_tradeoff.tsv`,
# `unseen_cell_types.tsv`, `thesis_comparison.tsv`, `expecto_alpha.tsv`, `hcnn_history.tsv` and three
# figures.
#
# **Cost.** Demo preset (C = 16, CNNs on fold 1, 12 CNN runs, 48 ridges): 57 s of CPU on one
# thread (6 min of wall time with the 2 cores shared at load ≈ 15; ≈ 1–1.5 min on a quiet machine);
# it runs alone in `make demo` (a global notebook: every later notebook waits for it). Full preset
# (C = 128, 11 cell types, 4 folds): measured 51 genes/s (multi-tissue) and 3.5 genes/s
# (`matched_shared`, 11 cell types per gene) on one loaded CPU thread — ≈ 23 CPU-hours for the 68
# single-/multi-tissue networks and ≈ 216 for the 48 `matched_shared` ones (README, "Cross-gene vs
# cross-celltype"); on a GPU an estimated ≈ 0.5 h (no GPU was lent to measure it).
#
# **What to expect.** On the **semi-synthetic** data the marks are simulated *from* each cell type's
# real expression, so the cross-celltype signal is planted (and stronger than in real data): every
# model that reads cell-specific marks should beat its permutation null, and raising α should raise
# the cross-celltype ρ while the cross-gene ρ falls (and collapses with β = 0). The mean of the other
# cell types is a strong cross-gene baseline (real Roadmap RPKM of 11 cell types: Spearman ρ 0.862)
# and exactly anti-correlated across cell types. With the demo's 4 cell types a per-gene correlation
# over 4 values takes 11 possible values: the cross-celltype numbers are **coarse** (the full preset
# has 11 cell types); the pooled Pearson r of per-gene-centred values is shown beside them.

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/cross_celltype/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml (e.g. "params/demo.yaml")
PARAMS = {}  # nested overrides, e.g. {"model": {"hierarchical_cnn": {"channels": 32}}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
run.describe()

# %%
import time

import pandas as pd
import torch
from IPython.display import Markdown, display

from chromexp import config, metrics, paths, results
from chromexp.experiments import cross_celltype as xc
from chromexp.experiments import hierarchical as hier
from chromexp.models import hierarchical_cnn
from chromexp.plots import cross_celltype as plots_xc
from chromexp.plots import style
from chromexp.training import train

style.set_theme()
CFG = run.params["cross_celltype"]
CNN = run.params["model"]["hierarchical_cnn"]
EXPECTO = run.params["model"]["expecto"]
CELLS = list(run.params["cell_types"])
FOLDS = [int(f) for f in run.params["folds"]]
CNN_FOLDS = [int(f) for f in (CNN["folds"] or FOLDS)]
HELD_OUT = CELLS if CFG["leave_one_out"] is None else list(CFG["leave_one_out"])
GRID = [tuple(float(v) for v in pair) for pair in CNN["hybrid_grid"]]
DEVICE = train.resolve_device(run.params["device"])
SEED = int(run.params["seed"])
OUT = paths.results_dir(run.params) / run.run_name / "cross_celltype"
FIG_DIR = OUT / "figures"
OUT.mkdir(parents=True, exist_ok=True)
print(f"cell types: {CELLS}\nfolds: ExPecto {FOLDS}, CNNs {CNN_FOLDS}\nheld out in turn: {HELD_OUT}")
print(
    f"hybrid grid (α, β) on {CNN['hybrid_variant']}: {GRID}\ndevice: {DEVICE} (torch threads {torch.get_num_threads()})"
)
print(f"outputs: {OUT}")

# %% [markdown]
# ## Every cell type on the genes they share
# One gene table for all cell types: genes missing from one store cannot be compared across cell
# types and are counted here. The inputs are 200-bp bins of the 7 marks (each the exact depth-scale
# merge of two stored 100-bp bins, ExPecto's geometry); the folds are the study's chromosome folds,
# validation chromosomes chosen on these genes by the dataset's rule.

# %%
cell_params = {c: config.load_params(c, files=[PARAMS_FILE], overrides=PARAMS) for c in CELLS}
data = hier.load_cells(cell_params, bin_size=int(CFG["bin_size"]), target=CFG["target"])
PROVENANCE = data.provenance
print(
    f"{len(data.genes):,} shared genes × {len(CELLS)} cell types × {len(data.marks)} marks × {data.x.shape[-1]} bins "
    f"({data.bin_size} bp); target {data.target}; {PROVENANCE} data"
)
display(data.excluded)
masked = (data.y.max(axis=1) == data.y.min(axis=1)).sum()
print(
    f"genes constant across the {len(CELLS)} cell types (masked on the cross-celltype axis): {masked:,} "
    f"({masked / len(data.genes):.1%})"
)
pd.DataFrame({f: {k: len(v) for k, v in data.split(f).items()} for f in FOLDS}).T.rename_axis("fold")

# %% [markdown]
# ## The baseline every cross-gene number stands beside
# Each (gene, cell type) predicted by the gene's mean observed value over the *other* cell types.
# It needs no chromatin at all; across cell types it is exactly anti-correlated with the truth.

# %%
baseline = metrics.mean_other_predictions(data.observed_table())
metrics.cross_gene_metrics(baseline).pivot_table(index="cell_type", columns="metric", values="value").round(3)

# %% [markdown]
# ## ExPecto: spatial bases + ridge
# One ridge per (cell type, fold) and mode; α from 10⁻³ to 10⁴ chosen on the validation cross-gene ρ.

# %%
t0 = time.perf_counter()
own, selections = [], []
for mode in EXPECTO["modes"]:
    pred, sel = hier.run_expecto(data, mode, FOLDS, alphas=EXPECTO["alphas"])
    own.append(pred)
    selections.append(sel)
for cell in HELD_OUT:
    pred, sel = hier.run_expecto(data, "matched", FOLDS, alphas=EXPECTO["alphas"], held_out=cell)
    own.append(pred)
    selections.append(sel)
selection = pd.concat(selections, ignore_index=True)
print(
    f"ExPecto: {selection.groupby(['model', 'cell_type', 'fold', 'held_out']).ngroups} ridges in {time.perf_counter() - t0:.1f} s"
)
xc.selection_summary(selection)

# %% [markdown]
# ## Hierarchical CNNs
# The reconstructed tower (below) for each variant with the MSE, then the (α, β) grid on the
# hybrid variant, then `matched_shared` without each held-out cell type. Checkpoints under
# `cross_celltype/checkpoints/` make a rerun resume.

# %%
n_cells, n_marks, n_bins = data.x.shape[1:]
probe = hierarchical_cnn.build(run.params, "multi_tissue", n_cells, n_marks, n_bins)
print(probe.net.tower[:3], "...")
print(
    f"{train.n_parameters(probe):,} parameters (multi_tissue, {n_cells} cell types, {n_bins} bins, C = {CNN['channels']})"
)
ckdir = OUT / "checkpoints" if CNN["checkpoints"] else None
jobs = [(v, 0.0, 1.0, None) for v in CNN["variants"]]
jobs += [(CNN["hybrid_variant"], a, b, None) for a, b in GRID if (CNN["hybrid_variant"], a, b, None) not in jobs]
jobs += [("matched_shared", 0.0, 1.0, cell) for cell in HELD_OUT]
runs_cnn = []
for variant, alpha, beta, held in jobs:
    r = hier.run_cnn(
        data,
        run.params,
        variant,
        CNN_FOLDS,
        alpha=alpha,
        beta=beta,
        held_out=held,
        device=DEVICE,
        checkpoint_dir=ckdir,
        progress=False,
    )
    runs_cnn.append(r)
    own.append(r.predictions)
    print(
        f"{hier.cnn_model_name(variant, alpha, beta):32s} {'without ' + held if held else '':14s} "
        f"{r.seconds:6.1f} s, {r.gene_epochs / max(r.seconds, 1e-9):7,.0f} (gene, cell type) pairs/s"
        + (f", {r.reused} read back" if r.reused else "")
    )
history = pd.concat([r.history for r in runs_cnn], ignore_index=True)
cnn_seconds = sum(r.seconds for r in runs_cnn)
print(f"CNNs: {len(runs_cnn)} runs in {cnn_seconds:.0f} s on {DEVICE}")
pd.concat([r.selection for r in runs_cnn], ignore_index=True).groupby("model")[["best_val_loss"]].mean().round(4)

# %% [markdown]
# ## The other notebooks' models
# Test predictions of notebooks 30, 40 and 50 (and any later family), on the shared genes.
# Classifier predictions are left out (their `predicted` is a probability).

# %%
own_pred = pd.concat(own, ignore_index=True).assign(provenance=PROVENANCE)
others, report = xc.read_run_predictions(paths.results_dir(run.params) / run.run_name, CELLS, data.genes["gene_id"])
display(report.groupby("model")[["rows", "kept"]].sum())
if len(others):
    assert set(others["provenance"]) == {PROVENANCE}, f"the other notebooks' tables are {set(others['provenance'])}"
all_pred = pd.concat([own_pred, others], ignore_index=True)

# %% [markdown]
# ## Both axes, every model, on the same folds
# Cross-gene: mean over cell types of the mean over folds (± SEM over cell types), the mean of the
# other cell types on the same genes beside it. Cross-celltype: mean over the unmasked test genes of
# all the model's folds (± SEM over genes), the 95th percentile and p of the per-gene permutation
# null (`cross_celltype.n_permutations` draws, seeded). The table compares every family on the folds
# they all have (notebook 40/50's Chromoformer and this notebook's CNNs may run fewer folds than
# ExPecto and the promoter CNN); `axes_summary.tsv` also keeps each model on all its own folds.

# %%
t0 = time.perf_counter()
summary, tidy, per_gene = xc.axes_summary(
    all_pred, baseline, CELLS, n_permutations=int(CFG["n_permutations"]), seed=SEED
)
COMMON = xc.common_folds(all_pred)
if not COMMON:
    raise ValueError(f"The model families share no fold ({sorted(set(all_pred['fold']))}); run them on a common fold.")
same, _, same_genes = xc.axes_summary(
    all_pred[all_pred["fold"].isin(COMMON)], baseline, CELLS, n_permutations=int(CFG["n_permutations"]), seed=SEED
)
print(f"scored in {time.perf_counter() - t0:.1f} s; folds every family has: {COMMON}")
cols = [
    "family",
    "model",
    "marks",
    "folds",
    "cross_gene_spearman",
    "baseline_cross_gene_spearman",
    "cross_celltype_spearman",
    "cross_celltype_centred_pearson",
    "null_spearman_q95",
    "null_p",
    "n_genes",
    "n_genes_masked",
]
table = same[same["scheme"] == hier.SCHEME][cols]
table.sort_values(["family", "cross_celltype_spearman"], ascending=[True, False]).round(3)

# %% [markdown]
# ## The hybrid-loss trade-off
# Both axes of the hybrid variant for each (α, β); the thesis's α = 100 and β = 0 among them.

# %%
curve = xc.tradeoff(summary, CNN["hybrid_variant"], GRID)
fig = plots_xc.plot_hybrid_tradeoff(curve, PROVENANCE, len(CELLS), CNN["hybrid_variant"])
style.save_figure(fig, "hybrid_tradeoff", FIG_DIR)
curve.round(3)

# %% [markdown]
# ## Every model on both axes; per-gene cross-celltype correlations
# One dot per model on the folds every family has; then one box per model (the best two mark sets
# of each single-mark family, every model of this notebook) of its genes' cross-celltype ρ.

# %%
fig = plots_xc.plot_both_axes(same[same["scheme"] == hier.SCHEME], PROVENANCE, len(CELLS))
style.save_figure(fig, "both_axes", FIG_DIR)
shown = xc.distribution_rows(same)
fig = plots_xc.plot_cross_celltype_distribution(
    same_genes[same_genes["scheme"] == hier.SCHEME], shown, PROVENANCE, len(CELLS)
)
style.save_figure(fig, "cross_celltype_per_gene", FIG_DIR)

# %% [markdown]
# ## Unseen cell types
# Cross-gene ρ on the held-out cell type's test genes: the model that never saw the cell type,
# the same family trained with it, and the mean of the other cell types — the bar any claim of
# generalisation must clear. On the **semi-synthetic** data every cell type's marks follow the same
# simulated rule from expression, so a matched model transfers between cell types by construction:
# read these numbers as an upper bound for real cell types.

# %%
loco = xc.loco_table(all_pred, baseline) if HELD_OUT else None
loco.round(3) if loco is not None else "no cell type held out (cross_celltype.leave_one_out: [])"

# %% [markdown]
# ## Beside the thesis
# The thesis's numbers come from GTEx tissues with Beluga/Enformer tracks; ours from this run's data
# (its provenance in the `data` column) — a comparison of behaviour, not of values. Our numbers are on
# the folds every family has, the mean of the other cell types (on the same genes) beside the
# cross-gene ones.

# %%
linear = hier.expecto_model_name("all_cells" if "all_cells" in EXPECTO["modes"] else "matched")
cnn = hier.cnn_model_name("single_tissue" if "single_tissue" in CNN["variants"] else CNN["hybrid_variant"])
mse_model = hier.cnn_model_name(CNN["hybrid_variant"])
hybrid = hier.cnn_model_name(CNN["hybrid_variant"], 100.0, 1.0)
thesis = xc.thesis_comparison(same, linear, cnn, mse_model, hybrid)
thesis.round(3)

# %% [markdown]
# ## Check and save
# Every test gene of every fold has one prediction per cell type and model; no cross-gene number is
# missing; every cross-celltype row counts its masked genes.

# %%
hier.check_predictions(own_pred, data, FOLDS, CNN_FOLDS)
xc.check_tables(summary, xc.expected_models(EXPECTO["modes"], CNN["variants"], CNN["hybrid_variant"], GRID, HELD_OUT))
assert not per_gene.duplicated(["scheme", "model", "marks", "gene_id"]).any()
assert (summary.loc[summary["n_cell_types"] == len(CELLS), "n_genes_masked"] >= 0).all()
results.save_metrics(tidy, OUT, provenance=PROVENANCE)
results.save_predictions(own_pred.drop(columns="provenance"), OUT, provenance=PROVENANCE)
for name, frame in {
    "cross_celltype_genes.tsv.gz": per_gene.assign(provenance=PROVENANCE),
    "axes_summary.tsv": summary,
    "axes_summary_common_folds.tsv": same,
    "hybrid_tradeoff.tsv": curve.assign(data=PROVENANCE),
    "unseen_cell_types.tsv": loco.assign(data=PROVENANCE) if loco is not None else pd.DataFrame(),
    "thesis_comparison.tsv": thesis,
    "expecto_alpha.tsv": selection.assign(data=PROVENANCE),
    "hcnn_history.tsv": history,
}.items():
    results.write_table(frame, OUT / name)
print(f"saved {len(tidy):,} metric rows, {len(own_pred):,} prediction rows and the summaries in {OUT}")

# %% [markdown]
# ## Answer
# Written from this run's tables above.

# %%
display(Markdown(xc.answer(same, curve, loco, len(CELLS), PROVENANCE, thesis)))
