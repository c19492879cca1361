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
# # 45 · Chromoformer's own study: its baselines, the promoter window, and what the pCREs add
#
# **Question.** Does Chromoformer beat the promoter models it was compared with (DeepChrome,
# AttentiveChrome, HM-CRNN; paper Fig. 2b/2d), how does every model depend on the promoter window
# (2–40 kb; Fig. 3a), and is its gain over an Embedding-only Chromoformer (no pairwise-interaction,
# no regulation transformer; Fig. 3b) carried by the genes that have pcHi-C-linked pCREs (Fig. 3c)?
#
# **Inputs.** The cell type's dataset store (notebook 10): all marks at 100 / 500 / 2,000 bp over
# TSS ± 20 kb, the pCREs with their frequencies, log2(RPKM + 1), the active/inactive label (RPKM ≥
# the cell type's median) and the chromosome folds. On semi-synthetic data, the simulator's planted
# enhancers (`raw/truth/enhancers.tsv.gz`).
#
# **Method** (docs/methods.md, "Chromoformer's own study"). One model per (family, head, promoter
# window, fold), tested on the held-out fold:
# * Chromoformer-clf/-reg trained with the Chromoformer paper's protocol (`chromoformer_study.protocol`:
#   AdamW, lr 3e-5 × 0.87 per epoch, batch 64, 10 epochs, the last epoch's model);
# * the baselines with their published architectures (parameter counts checked below; AttentiveChrome,
#   HM-CRNN and DeepDiff equal their official PyTorch code, tests/test_baseline_models.py) and
#   published training settings (`baselines`), on 100-bp bins (w / 100 bins), all 7 marks, ln(depth + 1)
#   instead of read counts;
# * windows: central crops of the stored ± 20 kb window (Chromoformer: w/100, w/500, w/2000 bins; the
#   pCRE window stays 40 kb);
# * the Embedding-only ablation at the stored 40-kb window; per fold the intact − ablated difference and a
#   two-sided paired t-test over folds, on all test genes and on those with ≥ 1 pCRE vs none; beyond
#   the paper, a per-gene paired test (Wilcoxon signed-rank of per-gene losses, bootstrap CI).
#
# **Outputs** (in `results/<run>/<EID>/`). `chromoformer_study_metrics.tsv` and
# `chromoformer_study_predictions.tsv.gz` (tidy, keyed by model, window, protocol and fold),
# `chromoformer_study_summary.tsv` (mean ± SE over folds), `chromoformer_ablation_tests.tsv`,
# `chromoformer_ablation_truth.tsv` (semi-synthetic), and the Fig. 3a / 3b–c panels.
#
# **What to expect.** In the paper Chromoformer beats every baseline, rises with the window up to
# 40 kb while the baselines do not gain beyond ~10 kb, and its gain over the Embedding-only model is
# significant on genes with pCREs and absent on genes without. On the **semi-synthetic** default
# dataset the pCREs carry planted enhancers, so the gain should sit on the genes with an active planted
# pCRE enhancer; it reflects the simulator, not biology. Demo and smoke settings (one fold, few epochs,
# fewer windows; `params/demo.yaml`) only show that the pipeline runs: the numbers are not the study's.
#
# **Cost.** The full setting (4 folds, 5 windows, 2 heads, 3 baselines with their published epochs,
# 10 Chromoformer epochs) is measured per model below and extrapolated in the README ("Chromoformer's
# own study"); a GPU is needed for it in reasonable time (estimate in the README, not measured).

# %% tags=["parameters"]
CELL_TYPE = None  # Roadmap EID, e.g. "E003" (required)
RUN_NAME = None  # results/<RUN_NAME>/<CELL_TYPE>/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml and params/cells/<CELL_TYPE>.yaml
PARAMS = {}  # nested overrides, e.g. {"chromoformer_study": {"windows": [2000, 40000]}}

# %%
from chromexp import runs

run = runs.start(cell_type=CELL_TYPE, run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS)
run.describe()

# %%
import pandas as pd
import torch
from IPython.display import Markdown, display

from chromexp import paths, results
from chromexp.analyses import chromoformer_study as stats
from chromexp.constants import SEMI_SYNTHETIC
from chromexp.data import dataset
from chromexp.experiments import chromoformer_study as study
from chromexp.models import attentivechrome, deepchrome, deepdiff, hmcrnn
from chromexp.models import chromoformer_inputs as ci
from chromexp.plots import chromoformer_study as panels
from chromexp.plots.style import save_figure
from chromexp.training import train

S = study.study_settings(run.params)
SPECS = study.plan(run.params)
FOLDS = S["folds"]
DEVICE = train.resolve_device(run.params["device"])
print(f"models: {len(SPECS)} per fold x {len(FOLDS)} fold(s) {FOLDS}; protocol of Chromoformer: {S['protocol']}")
print(f"windows (bp): {S['windows']}; tasks: {S['tasks']}; ablation: {S['ablation']}")
print(f"device: {DEVICE} (torch threads: {torch.get_num_threads()})")

# %% [markdown]
# ## Load the dataset
# All of the study's marks at every resolution are read once; each model takes its window from them.

# %%
ds = dataset.load_dataset(run.params, CELL_TYPE)
MARKS = [m for m in ds.marks if m in run.params["marks"]]
inputs = ci.dataset_inputs(ds, MARKS)
n_pcres = ds.n_pcres()
print(f"{ds.cell_type}: {len(ds.genes):,} genes, {ds.provenance} data, marks {MARKS}")
print(f"genes with >= 1 pCRE: {(n_pcres > 0).mean():.1%}")

# %% [markdown]
# ## The models
# Parameter counts of the published configurations (DeepChrome and AttentiveChrome with 5 marks,
# HM-CRNN's histone branch with 7 marks x 40 bins, DeepDiff's variants with 5 marks) are checked against
# the numbers of the papers' code; the study's own models use all marks.

# %%
published = {
    "DeepChrome (5 marks, 100 bins)": (train.n_parameters(deepchrome.DeepChrome(5, 100)), 644_177),
    "AttentiveChrome (5 marks)": (train.n_parameters(attentivechrome.AttentiveChrome(5)), 55_681),
    "AttentiveChrome (7 marks)": (train.n_parameters(attentivechrome.AttentiveChrome(7)), 73_729),
    "HM-CRNN histone branch (7 x 40)": (train.n_parameters(hmcrnn.HMCRNN(7, 40).branch), 22_193),
    **{
        f"DeepDiff {v} (5 marks)": (train.n_parameters(deepdiff.DeepDiff(v, 5)), n)
        for v, n in deepdiff.PUBLISHED_PARAMETERS.items()
    },
}
for name, (ours, expected) in published.items():
    assert ours == expected, (name, ours, expected)
pd.DataFrame(published, index=["ours", "published"]).T

# %% [markdown]
# ## Train one model per (family, head, window, fold)
# Checkpointed under the run folder: a rerun reads finished models back (notebook 46 reads the
# 40-kb Chromoformer models from here too).

# %%
checkpoint_dir = run.out_dir / "checkpoints" if S["checkpoints"] else None
fitted = study.train_and_evaluate(
    ds, run.params, SPECS, folds=FOLDS, device=DEVICE, checkpoint_dir=checkpoint_dir, inputs=inputs, progress=False
)
cost = study.cpu_cost(fitted)
print(f"{int((~fitted.seconds['reused']).sum())} models trained, {int(fitted.seconds['reused'].sum())} read back")
cost

# %% [markdown]
# ## Check and save
# Every test gene of a fold has exactly one prediction per (model, window); no metric but R² is missing.

# %%
study.check_results(fitted, ds, SPECS, FOLDS)
study.save(fitted, run.out_dir, ds.provenance)  # merged into the cell type's study tables
metrics = fitted.metrics.assign(provenance=ds.provenance)  # this run's rows
predictions = fitted.predictions.assign(provenance=ds.provenance)
summary = stats.fold_summary(metrics)
results.write_table(summary, run.out_dir / "chromoformer_study_summary.tsv")
study.parameter_table(fitted)

# %% [markdown]
# ## The window study (paper Fig. 3a)
# Mean ± SE over folds of the validation and test metric per model and window.

# %%
for task in S["tasks"]:
    metric = stats.TASK_METRIC[task]
    t = summary[(summary["metric"] == metric) & summary["model"].str.endswith(f"_{task}")]
    display(t.pivot_table(index=["model", "split"], columns="window", values="mean").round(3))
    fig = panels.plot_window_study(t, ds.provenance, metric=metric)
    _ = save_figure(fig, f"fig3a_window_study_{task}_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ## Chromoformer and the baselines at their published windows (Fig. 2b, 2d)
# Chromoformer at 40 kb, DeepChrome and AttentiveChrome at 10 kb, HM-CRNN at 4 kb (where those windows
# were trained in this run).

# %%
windows = {f: study.published_window(f, run.params) for f in study.FAMILIES if f != "chromoformer_embedding_only"}
main = summary[summary["split"] == "test"]
try:
    main = stats.published_setting(main, windows)
    display(main.pivot_table(index="model", columns="metric", values="mean").round(3))
except ValueError as err:
    print(f"No model was trained at its published window in this run ({err}).")

# %% [markdown]
# ## The Embedding-only ablation (Fig. 3b) and the genes with / without pCREs (Fig. 3c)
# Intact minus Embedding-only per fold with a two-sided paired t-test over folds (undefined with
# one fold: shown as NaN, not as a p-value), then the per-gene paired test on the pooled test genes.

# %%
top = study.ablation_window(run.params)
groups = stats.pcre_groups(ds)
tests, per_gene, subsets = [], [], []
for task in S["tasks"] if S["ablation"] else []:
    intact, ablated = f"chromoformer_{task}", f"chromoformer_embedding_only_{task}"
    metric = stats.TASK_METRIC[task]
    tests.append(stats.paired_fold_test(metrics, intact, ablated, metric, window=top).assign(subset="all test genes"))
    sub = stats.subset_metrics(predictions, groups, [intact, ablated], window=top)
    subsets.append(sub)
    tests.append(stats.paired_fold_test(sub.assign(split="test"), intact, ablated, metric, by=("split", "subset")))
    p = predictions
    per_gene.append(stats.per_gene_test(p, intact, ablated, window=top))
    per_gene.append(stats.per_gene_test(p, intact, ablated, groups=groups, window=top))
    fig = panels.plot_ablation(
        metrics[metrics["window"] == top].query("model in [@intact, @ablated]"), sub, ds.provenance, metric
    )
    _ = save_figure(fig, f"fig3bc_embedding_only_{task}_{CELL_TYPE}", run.figures_dir)
if tests:
    ablation = pd.concat(tests, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=ds.provenance)
    gene_tests = pd.concat(per_gene, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=ds.provenance)
    results.write_table(ablation, run.out_dir / "chromoformer_ablation_tests.tsv")
    results.write_table(gene_tests, run.out_dir / "chromoformer_ablation_gene_tests.tsv")
    display(
        ablation[["model_a", "metric", "split", "subset", "mean_a", "mean_b", "mean_diff", "n_folds", "t", "p"]].round(
            4
        )
    )
    display(
        gene_tests[
            ["model_a", "subset", "n_genes", "metric_a", "metric_b", "delta", "delta_lo", "delta_hi", "loss_gain", "p"]
        ].round(4)
    )

# %% [markdown]
# ## Planted truth: is the gain on the genes with active planted pCRE enhancers? (semi-synthetic only)
# The simulator plants enhancers on pcHi-C fragments; a gene's pCREs carry an *active* one in this
# cell type or not. Within each group: the intact model's metric minus the ablated one's (AUROC or
# r, with a bootstrap CI); between the groups: the difference of those gains (bootstrap) and a
# Mann-Whitney test of the per-gene loss gains (loss of the ablated minus loss of the intact, which
# also counts calibration: an under-trained model loses everywhere).

# %%
truth = None
if ds.provenance == SEMI_SYNTHETIC and S["ablation"]:
    from chromexp.analyses.perturb import read_planted_enhancers

    planted = stats.planted_pcre_enhancers(read_planted_enhancers(paths.raw_dir(run.params)), ds)
    print(planted["group"].value_counts().to_string())
    rows = [
        stats.ablation_truth(
            predictions, f"chromoformer_{task}", f"chromoformer_embedding_only_{task}", planted["group"], top
        )
        for task in S["tasks"]
    ]
    truth = pd.concat(rows, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=ds.provenance)
    results.write_table(truth, run.out_dir / "chromoformer_ablation_truth.tsv")
    cols = ["model_a", "group", "n_genes", "metric", "metric_a", "metric_b", "delta", "delta_vs_other"]
    display(truth[[*cols, "p_delta_vs_other", "loss_gain", "p_between"]].round(4))
else:
    print(f"{ds.provenance} data: no planted truth to score the ablation against.")

# %% [markdown]
# ## Answer
# Written from this run's numbers.

# %%
display(Markdown(stats.study_answer(summary, ablation if tests else None, truth, ds.provenance, len(FOLDS))))
