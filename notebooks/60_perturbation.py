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
# # 60 · In silico perturbation: which positions of which mark drive the predictions?
#
# **Question.** If a trained Chromoformer sees less of a histone mark at the promoter, or at one
# 2 kb bin away from the TSS, how much does its predicted expression change — and does the
# change decay with distance? Which pcHi-C-linked regions (pCREs) matter? Do the positions the
# models rely on coincide with real enhancers (paper Fig. 6 and Fig. 8, one cell type)?
#
# **Inputs.** The cell type's dataset store (notebook 10) and single-mark Chromoformer-reg
# models for every fold: notebook 40's checkpoints when they exist for these parameters,
# otherwise this notebook trains the missing (mark, fold) models with notebook 40's recipe
# (checkpointed, so an interrupted run resumes). On the semi-synthetic dataset, the simulator's
# planted enhancers (`raw/truth/enhancers.tsv.gz`).
#
# **Method** (docs/methods.md and the repository README, *In silico perturbation*; the recipe is
# `chromexp.analyses.perturb`, its Fig. 6 summaries `chromexp.analyses.effects`, shared with notebook 90).
# For each experiment (H3K27ac on active genes, H3K27me3 on inactive genes, H3K4me3 as a TSS-mark
# control), scale the mark's log-transformed input by a level p = 1.0, 0.9, …, 0.0 over one
# region — the promoter (TSS ± 3 kb at 100/500 bp, the 2 kb bins 8–11 at 2 kb) or one distal 2 kb
# bin (positions 0–7 upstream, 12–19 downstream, scaled at all three resolutions) — and predict
# with all fold models. Effect = predicted log2(RPKM + 1) at p minus at 1.0, averaged over the
# folds (a log2 fold change; the reference divided by a perturbed prediction, which is not a fold
# change and is unstable near zero — we do not). Concordance = fraction of fold models agreeing
# with the average's sign. The engine predicts many (region, level) variants of a gene in one
# forward pass on the model's exact TSS-only path (`bench/bench_perturbation.py`). Beyond the
# paper: each pCRE removed in turn, and attribution maps (captum) checked against exhaustive
# ablation.
#
# **Outputs** (in `results/<run>/<EID>/`). `perturbation_effects.tsv.gz` (one row per gene,
# region, level), `pcre_ablation.tsv.gz` (one row per gene and pCRE), `perturbation_levels.tsv`,
# `perturbation_by_distance.tsv`, `perturbation_decay.tsv`, `perturbation_models.tsv`,
# `attribution_<gene>.npz` (the Fig. 8 locus, with the gene's fine-mapped eQTLs in the window),
# `attribution_check.tsv`, `perturbation_recovery.tsv` (semi-synthetic only) and this cell type's
# Fig. 6A, 6B and 8 panels, drawn by the same painters as the manuscript figures (notebook 90).
#
# **What to expect.** Removing an activating mark (H3K27ac, H3K4me3) lowers predicted expression
# (effects ≤ 0), most at the promoter and less with distance; removing H3K27me3 from inactive
# genes raises it slightly. On the **semi-synthetic** dataset, distal H3K27ac effects should rank
# the bins carrying planted active enhancers above distance-matched bins without one (AUROC >
# 0.5, above the distance-only baseline). On the smoke preset (8 genes, 2 folds, 2-epoch models)
# the numbers only show that the pipeline runs.

# %% tags=["parameters"]
CELL_TYPE = None  # Roadmap EID, e.g. "E003" (required)
RUN_NAME = None  # results/<RUN_NAME>/<CELL_TYPE>/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml and params/cells/<CELL_TYPE>.yaml
PARAMS = {}  # nested overrides, e.g. {"perturbation": {"n_genes": 50}}

# %%
from chromexp import runs

run = runs.start(cell_type=CELL_TYPE, run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS)
run.describe()

# %%
import time

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from chromexp import paths, provenance, results
from chromexp.analyses import attribution, effects, perturb
from chromexp.constants import SEMI_SYNTHETIC
from chromexp.data import dataset, eqtl
from chromexp.experiments import perturbation
from chromexp.models import chromoformer_inputs as ci
from chromexp.plots import manuscript, style
from chromexp.training import train

P = run.params["perturbation"]
PLAN = perturb.settings(run.params)  # perturbation.experiments, folds, levels, checked
MODEL = perturb.SINGLE_MARK_MODEL  # "chromoformer-reg"; an experiment on a multi-mark model is named by its marks
DEVICE = train.resolve_device(run.params["device"])
print(
    f"experiments (mark, gene set, model marks): {list(PLAN.experiments)}\nfolds: {list(PLAN.folds)}\nlevels: {list(PLAN.levels)}"
)
print(f"device: {DEVICE} (torch threads: {torch.get_num_threads()})")

# %% [markdown]
# ## Load the dataset
# Provenance (semi-synthetic or real) comes from the dataset store, and goes into every table.

# %%
ds = dataset.load_dataset(run.params, CELL_TYPE)
PROVENANCE = ds.provenance
inputs = ci.dataset_inputs(ds, list(ds.marks))
# the regions follow the dataset's window and bin sizes (signal.half_window, signal.resolutions)
REGIONS = perturb.regions(
    promoter_flank=int(P["promoter_flank"]),
    resolutions=ds.resolutions,
    window=2 * ds.half_window,
    geometry=P["geometry"],  # chromexp: promoter = 2 kb bins 8-11; reference: 8-10 (docs/deviations.md)
)
print(f"{ds.cell_type}: {len(ds.genes):,} genes, {PROVENANCE} data; marks {list(ds.marks)}")
print(f"regions: {len(REGIONS)} (promoter + {len(REGIONS) - 1} distal 2 kb positions)")

# %% [markdown]
# ## The fold models
# One single-mark Chromoformer-reg per (mark, fold) (and one per (mark set, fold) for an experiment
# on a multi-mark model, e.g. `H3K27ac:active:all`). A checkpoint of notebook 40 is reused only
# if its training fingerprint (data, seed, model and training parameters) is exactly what
# notebook 40's recipe gives for these parameters; missing models are trained now with the same
# recipe and checkpointed in the same folder.

# %%
checkpoint_dir = run.out_dir / "checkpoints"
MODELS, sources = {}, []
t0 = time.perf_counter()
for marks in PLAN.model_sets:
    MODELS[marks], src = perturbation.fold_models(
        ds,
        run.params,
        marks,
        PLAN.folds,
        checkpoint_dir,
        inputs=inputs,
        train_missing=P["train_missing"],
        device=DEVICE,
    )
    sources.append(src)
sources = pd.concat(sources, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=PROVENANCE)
results.write_table(sources.drop(columns="path"), run.out_dir / "perturbation_models.tsv")
print(f"models ready in {time.perf_counter() - t0:.1f} s")
sources.pivot_table(index="mark", columns="fold", values="source", aggfunc="first")

# %% [markdown]
# ## Gene sets
# Active = RPKM ≥ the cell type's median (the study's label), inactive = the rest; every gene is
# predicted by every fold model (as in the paper, so a gene is a test gene for one fold and a
# training gene for the others). `perturbation.n_genes` draws a seeded sample per set.

# %%
GENE_SETS = perturb.gene_sets(ds.genes, P["n_genes"], run.rng, CELL_TYPE)
pd.DataFrame({"genes": {k: v.size for k, v in GENE_SETS.items()}})

# %% [markdown]
# ## Perturb every (region, level) and remove every pCRE
# `perturb.run_experiments` runs every experiment; the checks (`perturb.check_experiments`) then
# assert that level 1.0 is the unperturbed prediction itself, that effects are finite, and that
# each (gene, region, level) appears exactly once.

# %%
done = perturb.run_experiments(
    MODELS,
    inputs,
    ds.marks,
    ds.genes,
    ds.pcre_table(),
    PLAN,
    GENE_SETS,
    REGIONS,
    cell_type=CELL_TYPE,
    provenance=PROVENANCE,
    batch_size=int(P["batch_size"]),
    pcre_ablation=bool(P["pcre_ablation"]),
    device=DEVICE,
)
perturb.check_experiments(done, PLAN, GENE_SETS, REGIONS, PROVENANCE)
results.write_table(done.effects, run.out_dir / effects.EFFECTS_FILE)
results.write_table(done.pcres, run.out_dir / effects.PCRE_FILE)
print(f"{len(done.effects):,} perturbation rows, {len(done.pcres):,} pCRE ablation rows ({PROVENANCE} data)")
done.timings.round(2)

# %% [markdown]
# ## Level curves and effect by distance (paper Fig. 6, this cell type)
# The statistics of the manuscript figure (`chromexp.analyses.effects`, notebook 90 calls the same
# functions): mean effect over genes per level for the promoter and for the distal bins (a gene's
# distal bins averaged first), with a seeded bootstrap 95 % CI over genes; the level-0 effect of
# the distal bins by distance (the 40 kb window has 16 distal distances: one bin each); and the
# e-fold decay length of mean |effect| with distance. Single-mark models only (the paper's Fig. 6);
# experiments on a multi-mark model enter the ground-truth recovery below.

# %%
single = done.effects[done.effects["model"] == MODEL]
curves = effects.level_curves(single)
by_distance = effects.effect_by_distance(single, n_bins=int(P["distance_bins"]))
decay = effects.decay_length(effects.effect_by_distance(single, n_bins=int(P["distance_bins"]), absolute=True))
results.write_table(curves, run.out_dir / "perturbation_levels.tsv")
results.write_table(by_distance, run.out_dir / "perturbation_by_distance.tsv")
results.write_table(decay, run.out_dir / "perturbation_decay.tsv")
concord = done.effects[done.effects["level"] == 0.0].groupby(["model", "mark", "gene_set", "region_kind"])[
    "concordance"
]
concord = concord.mean()
print(f"mean fold concordance at level 0 ({len(PLAN.folds)} fold(s)):\n{concord.round(3).to_string()}")
print(decay.round(1).to_string(index=False))
curves[curves["level"] == 0.0].pivot_table(index=["mark", "gene_set"], columns="region_kind", values="mean").round(4)

# %%
fig = manuscript.fig6a_perturbation_levels(curves)
style.save_figure(fig, f"fig6a_perturbation_levels_{CELL_TYPE}", run.figures_dir)

# %%
fig = manuscript.fig6b_effect_by_distance(by_distance)
style.save_figure(fig, f"fig6b_effect_by_distance_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# Fig. 6E/F: the paper shows the effect at each distance "in 20 quantile bins" — bins of the
# *effect distribution* at that distance (`effects.effect_quantiles_by_distance`: its 21 quantile
# edges per distance; `perturbation_quantiles_by_distance.tsv`).

# %%
quantiles = effects.effect_quantiles_by_distance(single, n_bins=int(P["distance_bins"]))
results.write_table(quantiles, run.out_dir / "perturbation_quantiles_by_distance.tsv")
fig = manuscript.fig6ef_effect_quantiles(quantiles)
style.save_figure(fig, f"fig6ef_effect_quantiles_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ### pCRE ablation by distance (beyond the paper)
# Removing a pcHi-C-linked region: the effect against its distance from the TSS, in quantile bins.

# %%
if len(done.pcres):
    single_pcres = done.pcres[done.pcres["model"] == MODEL]
    display_table = effects.effect_by_distance(single_pcres, n_bins=int(P["distance_bins"])).round(4)
else:
    display_table = pd.DataFrame()
    print("No pCREs among the perturbed genes (or pCRE ablation is off).")
display_table

# %% [markdown]
# ## Attribution maps of one locus, before and after ablating a region (paper Fig. 8)
# Input gradients, gradient × input and integrated gradients (captum; references = per-bin mean
# profile and other genes' profiles, averaged), at all three resolutions, averaged over the fold
# models. The locus: `perturbation.attribution.gene`, or the gene of the first experiment with the
# largest level-0 distal effect; the ablated region: the gene's largest-effect distal bin. The
# locus file (`chromexp.analyses.attribution.write_locus`, keys `LOCUS_KEYS`) also holds the gene's
# fine-mapped eQTLs inside the window in this cell type's matched tissues (`cell.eqtl_tissues`,
# the selection of notebook 70), which Fig. 8 draws.

# %%
A = P["attribution"]
# the first experiment on a single-mark model (the paper's Fig. 8), else the first experiment
att_mark, att_set, att_marks = next((e for e in PLAN.experiments if len(e[2]) == 1), PLAN.experiments[0])
mark_index = [list(ds.marks).index(m) for m in att_marks]
att_index = att_marks.index(att_mark)
gene_index, ablate = perturb.choose_locus(
    done.effects[done.effects["model"] == PLAN.model_name(att_marks)],
    ds.genes,
    REGIONS,
    att_mark,
    att_set,
    gene=A["gene"],
    ablate=A["ablate"],
)
gene = ds.genes.iloc[gene_index]
x_gene = ci.select_marks(ci.subset(inputs, [gene_index]), mark_index)
x_abl = perturb.perturb_inputs(x_gene, ablate, 0.0, att_index)
pool = ci.select_marks(ci.subset(inputs, GENE_SETS[att_set]), mark_index)
refs = []
for kind in A["baselines"]:
    refs += attribution.baseline_set(pool, kind, n=int(A["n_baseline_genes"]), seed=int(run.params["seed"]))
maps, pred = attribution.locus_attributions(
    MODELS[att_marks], x_gene, x_abl, A["methods"], baselines=refs, n_steps=int(A["n_steps"]), mark_index=att_index
)
signal = {res: x_gene[f"promoter_{res}"][0, att_index].numpy() for res in ds.resolutions}
tss, hw = int(gene["tss"]), int(ds.half_window)
locus_eqtls, eqtl_note = eqtl.locus_eqtls(
    run.params, run.params["cell"]["eqtl_tissues"], gene["gene_id"], gene["chrom"], tss - hw, tss + hw
)
fig8_method = "saliency" if "saliency" in A["methods"] else A["methods"][0]
ablated_hg19 = perturb.region_table(ds.genes.iloc[[gene_index]], [ablate]).iloc[0]
npz = attribution.write_locus(
    attribution.locus_path(run.out_dir, gene["gene_id"]),
    {
        **maps,
        **{f"signal_{r}": v for r, v in signal.items()},
        **{f"resolution_{r}_signal": v for r, v in signal.items()},
        **{
            f"resolution_{r}_grad_{state}": maps[f"{fig8_method}_{state}_{r}"]
            for r in signal
            for state in ("before", "after")
        },
        "chrom": gene["chrom"],
        "tss": int(gene["tss"]),
        "strand": gene["strand"],
        "half_window": int(ds.half_window),
        "resolutions": np.array(sorted(signal)),
        "attribution": fig8_method,
        "model": PLAN.model_name(att_marks),
        "ablated_region": np.array([int(ablated_hg19["start"]), int(ablated_hg19["end"])]),
        "ablated_region_name": ablate.name,
        "gene_id": gene["gene_id"],
        "gene_name": gene["gene_name"],
        "cell_type": CELL_TYPE,
        "provenance": PROVENANCE,
        "mark": att_mark,
        "ablated_offset_bp": np.array(ablate.offset) - ablate.window // 2,
        "prediction_before": pred["before"],
        "prediction_after": pred["after"],
        "folds": np.array(PLAN.folds),
        "eqtl_positions": locus_eqtls["pos_hg19"].to_numpy(np.int64),
        "eqtl_pip": locus_eqtls["pip"].to_numpy(float),
        "eqtl_tissues": ";".join(run.params["cell"]["eqtl_tissues"]),
        "eqtl_note": eqtl_note,
    },
)
print(
    f"{gene['gene_name']} ({gene['gene_id']}, {gene['strand']} strand), {att_mark}: ablating {ablate.name} changes the "
    f"predicted log2(RPKM+1) {pred['before']:.3f} -> {pred['after']:.3f} ({len(PLAN.folds)} fold model(s)); "
    f"eQTLs: {eqtl_note}; wrote {npz.name}"
)

# %%
fig = manuscript.fig8_locus_view(attribution.read_locus(npz))
style.save_figure(fig, f"fig8_locus_view_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ### Do attributions agree with exhaustive ablation?
# For a few genes of the first experiment, the first-order prediction of ablating each region
# (minus the sum of gradient × input, or of integrated gradients from the all-zero reference, over
# its bins at all three resolutions) against the engine's level-0 effect of that region, averaged over folds:
# Spearman correlation across regions per gene, and Pearson r over all (gene, region) pairs
# (`chromexp.analyses.attribution.ablation_agreement`).

# %%
check_idx = GENE_SETS[att_set][: int(A["n_check_genes"])]
x_check = ci.select_marks(ci.subset(inputs, check_idx), mark_index)
check = attribution.ablation_agreement(
    MODELS[att_marks], x_check, REGIONS, A["methods"], n_steps=int(A["n_steps"]), device=DEVICE, mark_index=att_index
).assign(cell_type=CELL_TYPE, provenance=PROVENANCE, mark=att_mark, gene_set=att_set)
results.write_table(check, run.out_dir / "attribution_check.tsv")
check.round(3)

# %% [markdown]
# ## Ground truth: do the effects find the planted enhancers? (semi-synthetic data only)
# The simulator planted enhancers (H3K27ac/H3K4me1 bumps that raise their gene's expression) in
# the TSS ± 20 kb windows and on pcHi-C fragments. A distal (gene, 2 kb bin) is a positive when it
# overlaps an enhancer of that gene that is active in this cell type; a pCRE when its fragment
# carries one. Scores: the drop in predicted expression (`effect` = −effect), |effect|, a
# distance-only baseline (−|distance|; for pCREs also the interaction frequency) and the
# **signal-only baseline**: the row's own input, i.e. the mark's ln signal of the 2 kb bin (for a
# pCRE the maximum of the mark over the fragment's 100 bp bins) — what a reader of the track would
# rank without any model. `all` compares every row; `matched` re-weights negatives to the
# positives' distribution over the 2 kb position (distal) or over 5 distance quintiles (pCREs), so
# distance alone scores 0.5 there. With simulator version 2 (the default) the windows and contacted
# fragments also hold **decoys**, acetylated elements that regulate no gene (`truth/decoys.tsv.gz`):
# `vs_decoys` keeps as negatives only the rows overlapping an acetylated element that does not
# regulate the gene (a decoy, or another gene's enhancer), `vs_neighbour_enhancer` /
# `vs_acetylated_site` each kind alone. There the signal alone is near chance unless the marks
# differ (an acetylated site carries little H3K4me1): a score above the signal is what a model adds
# (`chromexp.analyses.perturb.planted_recovery`).

# %%
if PROVENANCE == SEMI_SYNTHETIC:
    raw = paths.raw_dir(run.params)
    SIM_VERSION = provenance.simulator_version(raw)
    truth = perturb.read_planted_enhancers(raw)
    decoy_truth = perturb.read_planted_decoys(raw)  # None for simulator version 1
    recovery = perturb.planted_recovery(
        done.effects, done.pcres, truth, CELL_TYPE, decoys=decoy_truth, dataset=ds
    ).assign(cell_type=CELL_TYPE, provenance=PROVENANCE, simulator_version=SIM_VERSION)
    results.write_table(recovery, run.out_dir / "perturbation_recovery.tsv")
    print(
        f"Planted-enhancer recovery on SEMI-SYNTHETIC data (simulator version {SIM_VERSION}, {CELL_TYPE}); "
        f"positives among distal bins: {recovery.attrs['positive_rate']:.1%}"
    )
    shown = recovery.pivot_table(
        index=["what", "model", "mark", "gene_set", "comparison"], columns="score", values="auroc"
    )
else:
    recovery = None
    shown = pd.DataFrame()
    print(f"{PROVENANCE} data: no planted truth to score against; ground-truth recovery is skipped.")
shown.round(3)

# %% [markdown]
# ## Summary
# Level-0 mean effect per experiment and region kind, fold concordance, and (semi-synthetic data)
# the planted-enhancer AUROCs above. All numbers here come from the models of this run on
# this cell type's data; on the semi-synthetic dataset they describe the simulator's generative
# model, not biology.

# %%
level0 = perturb.level0_summary(done.effects, PROVENANCE)
level0.round(4)

# %% [markdown]
# ## Answer
# Written from this run's numbers (the tables above).

# %%
display(Markdown(perturb.answer(level0, decay, recovery, PROVENANCE, len(PLAN.folds), CELL_TYPE)))
