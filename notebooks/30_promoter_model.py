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
# # 30 · Promoter model: which single mark predicts expression best from the promoter?
#
# **Question.** With only one histone mark's signal at TSS ± 3 kb, how well does a CNN predict a
# gene's expression, and which marks carry the most information (paper Fig. 1A, one cell type)?
#
# **Inputs.** The cell type's dataset store built by notebook 10 (`data/<dataset>/processed/<EID>/`):
# strand-oriented 100 bp bins of ln(mean depth + 1) at TSS ± 3 kb (60 bins per mark), the target
# log2(RPKM + 1), and the four chromosome folds with their validation genes.
#
# **Method.** The chromexpress promoter CNN (docs/methods.md, "Promoter CNN"; 2,619,126 parameters for one mark),
# one model per (mark, fold), trained with the study's protocol (docs/methods.md, "Training protocol": Adam, lr 1e-3,
# batch 64, MSE, ReduceLROnPlateau, early stopping with the best epoch restored on the fold's
# validation genes, at most `train.max_epochs` epochs). Each model is tested on its held-out
# fold's genes; metrics are computed over all test genes of a fold at once (never per batch).
#
# **Outputs** (in `results/<run>/<EID>/`). `metrics.tsv` (model `promoter_cnn`, scheme
# `chrom_folds`: Pearson r, Spearman ρ, R², MSE per mark, fold and split), `predictions.tsv.gz`
# (per test gene), `promoter_cnn_history.tsv` (training curves) and the Fig. 1A panel for this cell type.
#
# **What to expect.** The active promoter marks (H3K4me3, H3K9ac, H3K27ac) predict expression
# best and beat the naive baselines (|Pearson r| of the mean signal over TSS ± 750/1,500/3,000 bp);
# H3K9me3 predicts least. On the **semi-synthetic** default dataset this reflects the simulator's
# stated generative model, not biology; on the smoke preset (few genes, two epochs) the numbers
# only show that the pipeline runs.

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
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from chromexp import results
from chromexp.baselines import naive as naive_baselines
from chromexp.data import dataset
from chromexp.experiments import evaluation
from chromexp.experiments import promoter_cnn as experiment
from chromexp.models import promoter_cnn
from chromexp.plots import panels, style
from chromexp.training import train
from chromexp.utils import atomic_path

cfg = run.params["model"]["promoter_cnn"]
MARKS = list(cfg["marks"] or run.params["marks"])
FOLDS = [int(f) for f in (cfg["folds"] or run.params["folds"])]
DEVICE = train.resolve_device(run.params["device"])
print(f"marks: {MARKS}\nfolds: {FOLDS}\ndevice: {DEVICE} (torch threads: {torch.get_num_threads()})")
print(f"training: {run.params['train']}")

# %% [markdown]
# ## Load the dataset
# The store is built by notebook 10; the promoter window is the central 60 bins of the stored
# signal, oriented 5'→3' on the gene's strand (bin 0 most upstream, TSS between bins 29 and 30).

# %%
ds = dataset.load_dataset(run.params, CELL_TYPE)
print(f"{ds.cell_type}: {len(ds.genes):,} genes, {ds.provenance} data")
x_promoter = ds.promoter(marks=MARKS, resolution=cfg["resolution"], half_window=cfg["half_window"])
assert x_promoter.shape == (len(ds.genes), len(MARKS), 2 * cfg["half_window"] // cfg["resolution"])
assert np.isfinite(x_promoter).all()
split_sizes = pd.DataFrame({f: {k: len(v) for k, v in ds.split(f).items()} for f in FOLDS}).T.rename_axis("fold")
split_sizes

# %% [markdown]
# ## The model
# One input channel per mark; the parameter count is checked against the published model.

# %%
model = promoter_cnn.build(run.params, n_marks=1)
n_params = train.n_parameters(model)
print(model)
print(f"{n_params:,} parameters for one mark")
if not cfg["batch_norm"] and cfg["half_window"] == 3000 and cfg["resolution"] == 100:
    assert n_params == promoter_cnn.N_PARAMETERS_ONE_MARK

# %% [markdown]
# ## Train one model per (mark, fold)
# The models are independent; on a GPU they are trained at once (stacked with `torch.func.vmap`),
# on a CPU one after another (see `bench/bench_promoter_training.py`). Training is checkpointed
# under the run folder, one file per (mark, fold), so re-running the notebook after an interruption
# resumes it, and models that one-fold jobs (`chromexp batch --per-fold`) finished are read back.

# %%
checkpoint_dir = run.out_dir / "checkpoints" if cfg["checkpoints"] else None
fitted = experiment.train_and_evaluate(
    ds, run.params, marks=MARKS, folds=FOLDS, device=DEVICE, checkpoint_dir=checkpoint_dir, progress=True
)
print(
    f"{len(fitted.models) - fitted.reused} models trained {'concurrently' if fitted.concurrent else 'one after another'} "
    f"on {DEVICE} in {fitted.seconds:.1f} s ({fitted.gene_epochs / max(fitted.seconds, 1e-9):,.0f} training genes/s); "
    f"{fitted.reused} read back from finished checkpoints"
)
fitted.history.groupby(["marks", "fold"]).agg(epochs=("epoch", "max"), best_epoch=("best_epoch", "first"))

# %% [markdown]
# ## Training curves
# Validation loss per epoch; the dot is the epoch whose weights were restored.

# %%
fig = panels.plot_training_curves(fitted.history, run.provenance)
style.save_figure(fig, f"promoter_cnn_training_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ## Check and save
# Every test gene of a fold gets exactly one prediction per mark, and no metric is missing.

# %%
pred = fitted.predictions
evaluation.check_fold_results(fitted.metrics, pred, ds, MARKS, FOLDS)
results.save_metrics(fitted.metrics, run.out_dir, provenance=ds.provenance)
results.save_predictions(pred, run.out_dir, provenance=ds.provenance)
with atomic_path(run.out_dir / "promoter_cnn_history.tsv") as tmp:
    fitted.history.to_csv(tmp, sep="\t", index=False)
test = fitted.metrics[fitted.metrics["split"] == "test"]
test.pivot_table(index="marks", columns="metric", values="value", aggfunc="mean").reindex(MARKS).round(3)

# %% [markdown]
# ## Compare with the naive correlation baselines
# The naive baseline of a mark is |Pearson r| between its mean signal over TSS ± 750 / 1,500 /
# 3,000 bp and log2 expression, over the same test genes of each fold
# (`chromexp.baselines.naive.naive_correlations`; notebook 20 saves these rows). The CNN's Pearson r
# is signed; a mark whose CNN r is below its naive |r| has learnt less than its mean level says.

# %%
naive = naive_baselines.naive_correlations(ds, marks=MARKS, folds=FOLDS)
naive_abs = naive[naive["metric"] == "abs_pearson_r"]
comparison = experiment.compare_with_naive(test, naive_abs, MARKS, run.provenance)
with atomic_path(run.out_dir / "promoter_cnn_vs_naive.tsv") as tmp:
    comparison.to_csv(tmp, sep="\t")
comparison.round(3)

# %% [markdown]
# ## Performance by mark (paper Fig. 1A, this cell type)
# Bars: mean test Pearson r over folds; dots: folds; markers: naive |r| per flank.

# %%
fig = panels.plot_promoter_performance(pd.concat([test, naive_abs], ignore_index=True), run.provenance)
style.save_figure(fig, f"fig1a_promoter_by_mark_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ## Answer
# Written from this run's numbers (the CNN-vs-naive table above).

# %%
display(Markdown(experiment.answer(comparison, len(FOLDS), run.provenance)))
