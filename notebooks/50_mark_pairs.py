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
# # 50 · Mark pairs: which pairs of marks add to the top three?
#
# **Question.** H3K4me3, H3K9ac and H3K27ac are the best single marks. Does pairing one of them
# with another mark improve Chromoformer over the pair's better single mark, and how close does a
# pair come to the model with all 7 marks (paper Fig. 5, one cell type)?
#
# **Inputs.** The dataset store of notebook 10 and, from the same run folder, notebook 40's
# `chromoformer_reg` test metrics for single marks and for all marks. Any single-mark or
# all-marks model that notebook 40 did not train here is trained by this notebook.
#
# **Method.** The 15 pairs of docs/methods.md, "Mark pairs" (each of `model.chromoformer.pair_anchors` with every
# other mark), or any list of mark sets given as `model.chromoformer.mark_sets`. One
# Chromoformer-reg per (mark set, fold), trained and tested as in notebook 40. Per pair and fold:
# gain = pair's test Pearson r − the better single mark's (the member with the higher mean r over
# folds), and the difference to the all-marks model.
#
# **Outputs** (in `results/<run>/<EID>/`). Rows of `metrics.tsv` / `predictions.tsv.gz` (model
# `chromoformer_reg`, marks such as `H3K27ac+H3K4me3`), `chromoformer_pairs.tsv` (the gains) and the
# Fig. 5 panel for this cell type.
#
# **What to expect.** Pairs of an active mark with a complementary mark (a repressive or
# gene-body mark) gain most; pairs of two active marks add little; the best pairs approach the
# all-marks model. On the **semi-synthetic** dataset this reflects the simulator, not biology; on
# the smoke preset (one pair, two epochs, one fold) the numbers only show that the pipeline runs.

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
import torch
from IPython.display import Markdown, display

from chromexp import results
from chromexp.analyses.gains import pair_gains
from chromexp.data import dataset
from chromexp.experiments import chromoformer as ct
from chromexp.experiments import evaluation
from chromexp.models import chromoformer_inputs as ci
from chromexp.plots import panels, style
from chromexp.training import train
from chromexp.utils import atomic_path

cfg = run.params["model"]["chromoformer"]
if cfg["kind"] != "reg":
    raise ValueError("Notebook 50 compares regressors (Pearson r): set model.chromoformer.kind to reg.")
ALL_MARKS = list(run.params["marks"])
MARK_SETS = ct.mark_sets_from_params(run.params)
FOLDS = [int(f) for f in (cfg["folds"] or run.params["folds"])]
MODEL_NAME = ct.MODEL_NAMES["reg"]
DEVICE = train.resolve_device(run.params["device"])
print(f"{len(MARK_SETS)} mark sets: {[results.marks_key(s) for s in MARK_SETS]}\nfolds: {FOLDS}")
print(f"device: {DEVICE} (torch threads: {torch.get_num_threads()}); training: {run.params['train']}")

# %% [markdown]
# ## What must be trained
# The pairs themselves, plus each pair's single marks and the all-marks model when notebook 40
# has not left their test metrics (for these folds) in this run folder.

# %%
previous = results.load_metrics(run.out_dir)
to_train, reused = ct.pair_training_plan(previous, MARK_SETS, ALL_MARKS, MODEL_NAME, FOLDS)
print(f"from notebook 40: {[results.marks_key(s) for s in reused]}")
print(f"to train here: {[results.marks_key(s) for s in to_train]}")

# %% [markdown]
# ## Train one model per (mark set, fold)
# Checkpointed under the run folder, so an interrupted run resumes.
# `model.chromoformer.concurrent: N` trains N models at once in worker processes sharing the
# device (same seeds, checkpoints and tables as one after the other; README, "Scale").

# %%
ds = dataset.load_dataset(run.params, CELL_TYPE)
print(f"{ds.cell_type}: {len(ds.genes):,} genes, {ds.provenance} data")
inputs = ci.dataset_inputs(ds, list(ds.marks))
checkpoint_dir = run.out_dir / "checkpoints" if cfg["checkpoints"] else None
fitted = ct.train_and_evaluate(
    ds, run.params, to_train, folds=FOLDS, device=DEVICE, checkpoint_dir=checkpoint_dir, inputs=inputs, progress=False
)
print(
    f"{len(to_train) * len(FOLDS) - fitted.reused} models trained on {DEVICE} in {fitted.seconds:.1f} s "
    f"({fitted.workers} at a time); {fitted.reused} read back from finished checkpoints"
)

# %% [markdown]
# ## Check and save
# One prediction per test gene and mark set; no missing metric.

# %%
pred = fitted.predictions
evaluation.check_fold_results(fitted.metrics, pred, ds, to_train, FOLDS)
all_metrics = results.save_metrics(fitted.metrics, run.out_dir, provenance=ds.provenance)
saved = results.save_predictions(pred, run.out_dir, provenance=ds.provenance)
print(f"{len(pred):,} test predictions saved; the run's tables now hold {len(all_metrics):,} metric rows")

# %% [markdown]
# ## Gain of each pair over its better single mark and vs all marks (paper Fig. 5)

# %%
sel = all_metrics[all_metrics["fold"].isin(FOLDS)]
pairs = pair_gains(sel, model=MODEL_NAME, mark_sets=MARK_SETS, all_marks=ALL_MARKS)
assert pairs["gain_over_best_single"].notna().all() and pairs["gain_over_all_marks"].notna().all()
with atomic_path(run.out_dir / "chromoformer_pairs.tsv") as tmp:
    pairs.assign(cell_type=CELL_TYPE, data=run.provenance).to_csv(tmp, sep="\t", index=False)
ct.pair_summary(pairs, run.provenance).round(3)

# %%
fig = panels.plot_pair_gains(pairs, run.provenance)
style.save_figure(fig, f"fig5_mark_pairs_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ## Answer
# Written from this run's numbers (the pair gains above).

# %%
display(Markdown(ct.pair_answer(pairs, run.provenance)))
