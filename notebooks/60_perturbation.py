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
# **Method** (docs/methods.md and the repository README, *In silico perturbation*).
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
# `attribution_<gene>.npz`, `attribution_check.tsv`, `perturbation_recovery.tsv` (semi-synthetic
# only) and the Fig. 6 and
# Fig. 8 panels of this cell type.
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

from chromexp import paths, results
from chromexp.analyses import attribution, perturb
from chromexp.constants import SEMI_SYNTHETIC
from chromexp.data import dataset
from chromexp.experiments import perturbation
from chromexp.models import chromoformer_inputs as ci
from chromexp.plots import panels, style
from chromexp.training import train
from chromexp.utils import atomic_path

P = run.params["perturbation"]
EXPERIMENTS = []
for item in P["experiments"]:
    mark, _, gene_set = str(item).partition(":")
    if mark not in run.params["marks"] or gene_set not in ("active", "inactive"):
        raise ValueError(
            f"perturbation.experiments entry {item!r} must be 'MARK:active' or 'MARK:inactive' with MARK in {run.params['marks']}."
        )
    EXPERIMENTS.append((mark, gene_set))
MARKS = list(dict.fromkeys(m for m, _ in EXPERIMENTS))
FOLDS = [int(f) for f in (P["folds"] or run.params["folds"])]
LEVELS = tuple(float(p) for p in P["levels"])
if 1.0 not in LEVELS:
    raise ValueError(f"perturbation.levels must include 1.0 (the unperturbed reference); got {LEVELS}.")
MODEL = "chromoformer-reg"
DEVICE = train.resolve_device(run.params["device"])
print(f"experiments: {EXPERIMENTS}\nfolds: {FOLDS}\nlevels: {LEVELS}")
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
    promoter_flank=int(P["promoter_flank"]), resolutions=ds.resolutions, window=2 * ds.half_window
)
print(f"{ds.cell_type}: {len(ds.genes):,} genes, {PROVENANCE} data; marks {list(ds.marks)}")
print(f"regions: {len(REGIONS)} (promoter + {len(REGIONS) - 1} distal 2 kb positions)")

# %% [markdown]
# ## The fold models
# One single-mark Chromoformer-reg per (mark, fold). A checkpoint of notebook 40 is reused only
# if its training fingerprint (data, seed, model and training parameters) is exactly what
# notebook 40's recipe gives for these parameters; missing models are trained now with the same
# recipe and checkpointed in the same folder.

# %%
checkpoint_dir = run.out_dir / "checkpoints"
MODELS, sources = {}, []
t0 = time.perf_counter()
for mark in MARKS:
    MODELS[mark], src = perturbation.fold_models(
        ds, run.params, mark, FOLDS, checkpoint_dir, inputs=inputs, train_missing=P["train_missing"], device=DEVICE
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
GENE_SETS = {}
for name, label in (("active", 1), ("inactive", 0)):
    idx = np.flatnonzero(ds.genes["label"].to_numpy() == label)
    if P["n_genes"] is not None and idx.size > int(P["n_genes"]):
        idx = np.sort(run.rng.choice(idx, size=int(P["n_genes"]), replace=False))
    if idx.size == 0:
        raise ValueError(f"{CELL_TYPE} has no {name} genes to perturb.")
    GENE_SETS[name] = idx
pd.DataFrame({"genes": {k: v.size for k, v in GENE_SETS.items()}})

# %% [markdown]
# ## Perturb every (region, level) and remove every pCRE
# Level 1.0 is the unperturbed prediction itself; the checks below assert it, that effects are
# finite, and that each (gene, region, level) appears exactly once.

# %%
pcre_info = ds.pcre_table()
effect_tables, pcre_tables, timings = [], [], []
for mark, gene_set in EXPERIMENTS:
    idx = GENE_SETS[gene_set]
    x = ci.select_marks(ci.subset(inputs, idx), [list(ds.marks).index(mark)])
    genes = ds.genes.iloc[idx].reset_index(drop=True)
    meta = dict(cell_type=CELL_TYPE, provenance=PROVENANCE, model=MODEL, mark=mark, gene_set=gene_set)
    t0 = time.perf_counter()
    res = perturb.perturbation_predictions(
        MODELS[mark], x, REGIONS, LEVELS, batch_size=int(P["batch_size"]), device=DEVICE
    )
    effect_tables.append(perturb.effects_table(res, genes, **meta))
    t1 = time.perf_counter()
    if P["pcre_ablation"]:
        abl = perturb.ablate_pcres(MODELS[mark], x, batch_size=int(P["batch_size"]), device=DEVICE)
        pcre_tables.append(perturb.pcre_table(abl, genes, pcre_info[pcre_info["gene_index"].isin(idx)], **meta))
    timings.append(
        {
            "mark": mark,
            "gene_set": gene_set,
            "genes": len(idx),
            "perturbation_s": t1 - t0,
            "pcre_s": time.perf_counter() - t1,
        }
    )
effects = pd.concat(effect_tables, ignore_index=True)
pcres = pd.concat(pcre_tables, ignore_index=True) if pcre_tables else pd.DataFrame(columns=list(perturb.PCRE_COLUMNS))

assert list(effects.columns) == list(perturb.EFFECT_COLUMNS)
assert not effects.duplicated(["mark", "gene_set", "gene_id", "region", "level"]).any()
assert len(effects) == sum(GENE_SETS[g].size for _, g in EXPERIMENTS) * len(REGIONS) * len(LEVELS)
assert (effects.loc[effects["level"] == 1.0, "effect"] == 0).all()
assert np.isfinite(effects["effect"]).all() and np.isfinite(pcres["effect"]).all()
assert effects["provenance"].eq(PROVENANCE).all()
results.write_table(effects, run.out_dir / "perturbation_effects.tsv.gz")
results.write_table(pcres, run.out_dir / "pcre_ablation.tsv.gz")
print(f"{len(effects):,} perturbation rows, {len(pcres):,} pCRE ablation rows ({PROVENANCE} data)")
pd.DataFrame(timings).round(2)

# %% [markdown]
# ## Level curves and effect by distance (paper Fig. 6, this cell type)
# Mean effect over genes (95 % CI) per level for the promoter and for the distal bins; then the
# level-0 effect of the distal bins in quantile bins of distance and the e-fold decay length of
# |effect| with distance (the 40 kb window has only 16 distal distances, so at most 16 bins).

# %%
curves = perturb.level_curves(effects).assign(cell_type=CELL_TYPE, provenance=PROVENANCE)
by_distance = perturb.effect_by_distance(effects, n_bins=int(P["distance_bins"])).assign(
    cell_type=CELL_TYPE, provenance=PROVENANCE
)
decay = perturb.decay_length(by_distance).assign(cell_type=CELL_TYPE, provenance=PROVENANCE)
results.write_table(curves, run.out_dir / "perturbation_levels.tsv")
results.write_table(by_distance, run.out_dir / "perturbation_by_distance.tsv")
results.write_table(decay, run.out_dir / "perturbation_decay.tsv")
concord = effects[effects["level"] == 0.0].groupby(["mark", "gene_set", "region_kind"])["concordance"].mean()
print(f"mean fold concordance at level 0 ({len(FOLDS)} folds):\n{concord.round(3).to_string()}")
print(decay.round(1).to_string(index=False))
curves[curves["level"] == 0.0].pivot_table(index=["mark", "gene_set"], columns="region_kind", values="effect").round(4)

# %%
fig = panels.plot_perturbation(curves, by_distance, PROVENANCE, CELL_TYPE)
style.save_figure(fig, f"fig6_perturbation_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ### pCRE ablation by distance (beyond the paper)
# Removing a pcHi-C-linked region: the effect against its distance from the TSS, in quantile bins.

# %%
if len(pcres):
    pcre_distance = perturb.effect_by_distance(pcres, n_bins=int(P["distance_bins"]))
    display_table = pcre_distance.round(4)
else:
    display_table = pd.DataFrame()
    print("No pCREs among the perturbed genes (or pCRE ablation is off).")
display_table

# %% [markdown]
# ## Attribution maps of one locus, before and after ablating a region (paper Fig. 8)
# Input gradients, gradient × input and integrated gradients (captum; references = per-bin mean
# profile and other genes' profiles, averaged), at all three resolutions, averaged over the fold
# models. The locus: `perturbation.attribution.gene`, or the gene of the first experiment with the
# largest level-0 distal effect; the ablated region: the gene's largest-effect distal bin.

# %%
A = P["attribution"]
att_mark, att_set = EXPERIMENTS[0]
level0 = effects[(effects["level"] == 0.0) & (effects["mark"] == att_mark) & (effects["gene_set"] == att_set)]
distal0 = level0[level0["region_kind"] == "distal"]
if A["gene"] is not None:
    hit = ds.genes.index[(ds.genes["gene_id"] == A["gene"]) | (ds.genes["gene_name"] == A["gene"])]
    if len(hit) == 0:
        raise ValueError(f"perturbation.attribution.gene {A['gene']!r} is not a gene of the {CELL_TYPE} dataset.")
    gene_index = int(hit[0])
else:
    top = distal0.loc[distal0["effect"].abs().idxmax(), "gene_id"]
    gene_index = int(ds.genes.index[ds.genes["gene_id"] == top][0])
gene = ds.genes.iloc[gene_index]
gene_rows = distal0[distal0["gene_id"] == gene["gene_id"]]
ablate_name = A["ablate"] or (
    gene_rows.loc[gene_rows["effect"].abs().idxmax(), "region"] if len(gene_rows) else "distal_05"
)
ablate = next((r for r in REGIONS if r.name == ablate_name), None)
if ablate is None:
    raise ValueError(f"perturbation.attribution.ablate {ablate_name!r} is not a region ({[r.name for r in REGIONS]}).")
x_gene = ci.select_marks(ci.subset(inputs, [gene_index]), [list(ds.marks).index(att_mark)])
x_abl = perturb.perturb_inputs(x_gene, ablate, 0.0)
refs = []
for kind in A["baselines"]:
    pool = ci.select_marks(ci.subset(inputs, GENE_SETS[att_set]), [list(ds.marks).index(att_mark)])
    refs += attribution.baseline_set(pool, kind, n=int(A["n_baseline_genes"]), seed=int(run.params["seed"]))
maps = {}
for method in A["methods"]:
    for state, xin in (("before", x_gene), ("after", x_abl)):
        per_fold = [
            attribution.attribute(m, xin, method, baselines=refs, n_steps=int(A["n_steps"]), mark_index=0)
            for m in MODELS[att_mark]
        ]
        for res in per_fold[0]:
            maps[f"{method}_{state}_{res}"] = np.mean([a[res][0] for a in per_fold], axis=0)
signal = {res: x_gene[f"promoter_{res}"][0, 0].numpy() for res in ds.resolutions}
with torch.no_grad():
    pred = {s: float(np.mean([m(**xx) for m in MODELS[att_mark]])) for s, xx in (("before", x_gene), ("after", x_abl))}
# the locus file notebook 90 draws (Fig. 8; keys in chromexp.plots.manuscript.ATTRIBUTION_KEYS): input gradients
# (saliency when computed) before/after the ablation at every resolution, and the ablated region in hg19
fig8_method = "saliency" if "saliency" in A["methods"] else A["methods"][0]
ablated_hg19 = perturb.region_table(ds.genes.iloc[[gene_index]], [ablate]).iloc[0]
npz = run.out_dir / f"attribution_{gene['gene_id']}.npz"
with atomic_path(npz) as tmp, open(tmp, "wb") as fh:
    np.savez_compressed(
        fh,
        **maps,
        **{f"signal_{r}": v for r, v in signal.items()},
        **{f"resolution_{r}_signal": v for r, v in signal.items()},
        **{
            f"resolution_{r}_grad_{state}": maps[f"{fig8_method}_{state}_{r}"]
            for r in signal
            for state in ("before", "after")
        },
        chrom=gene["chrom"],
        tss=int(gene["tss"]),
        strand=gene["strand"],
        half_window=int(ds.half_window),
        resolutions=np.array(sorted(signal)),
        attribution=fig8_method,
        model=MODEL,
        ablated_region=np.array([int(ablated_hg19["start"]), int(ablated_hg19["end"])]),
        ablated_region_name=ablate.name,
        gene_id=gene["gene_id"],
        gene_name=gene["gene_name"],
        cell_type=CELL_TYPE,
        provenance=PROVENANCE,
        mark=att_mark,
        ablated_offset_bp=np.array(ablate.offset) - ablate.window // 2,
        prediction_before=pred["before"],
        prediction_after=pred["after"],
        folds=np.array(FOLDS),
    )
print(
    f"{gene['gene_name']} ({gene['gene_id']}, {gene['strand']} strand), {att_mark}: ablating {ablate.name} changes the "
    f"fold-averaged prediction {pred['before']:.3f} -> {pred['after']:.3f} log2(RPKM+1); wrote {npz.name}"
)

# %%
method = "input_x_gradient" if "input_x_gradient" in A["methods"] else A["methods"][0]
kb = (np.array(ablate.offset) - ablate.window // 2) / 1000
fig = panels.plot_attribution_locus(
    signal,
    {r: maps[f"{method}_before_{r}"] for r in signal},
    {r: maps[f"{method}_after_{r}"] for r in signal},
    tuple(kb),
    PROVENANCE,
    f"{att_mark} attributions at {gene['gene_name']} ({CELL_TYPE}), ablating {ablate.name}",
    method,
)
style.save_figure(fig, f"fig8_attribution_{CELL_TYPE}", run.figures_dir)

# %% [markdown]
# ### Do attributions agree with exhaustive ablation?
# For a few genes of the first experiment, the first-order prediction of ablating each region
# (minus the sum of gradient × input, or of integrated gradients from the all-zero reference, over
# its bins at all three resolutions) against the engine's level-0 effect of that region, averaged over folds:
# Spearman correlation across regions per gene, and Pearson r over all (gene, region) pairs.

# %%
check_idx = GENE_SETS[att_set][: int(A["n_check_genes"])]
x_check = ci.select_marks(ci.subset(inputs, check_idx), [list(ds.marks).index(att_mark)])
exhaustive = perturb.perturbation_predictions(MODELS[att_mark], x_check, REGIONS, (1.0, 0.0), device=DEVICE)
exhaustive = exhaustive.effects[..., 1].mean(axis=0)  # (genes, regions), fold mean
zero_ref = attribution.baseline_set(x_check, "zeros")  # ablation sets a region to 0: the matching IG reference
rows = []
for method in [m for m in A["methods"] if m != "saliency"]:
    per_fold = [
        attribution.attribute(m, x_check, method, baselines=zero_ref, n_steps=int(A["n_steps"]), mark_index=0)
        for m in MODELS[att_mark]
    ]
    avg = {res: np.mean([a[res] for a in per_fold], axis=0) for res in per_fold[0]}
    rows.append({"method": method, **attribution.ablation_check(avg, exhaustive, REGIONS)})
check = pd.DataFrame(rows).assign(cell_type=CELL_TYPE, provenance=PROVENANCE, mark=att_mark, gene_set=att_set)
results.write_table(check, run.out_dir / "attribution_check.tsv")
check.round(3)

# %% [markdown]
# ## Ground truth: do the effects find the planted enhancers? (semi-synthetic data only)
# The simulator planted enhancers (H3K27ac/H3K4me1 bumps that raise their gene's expression) in
# the TSS ± 20 kb windows and on pcHi-C fragments. A distal (gene, 2 kb bin) is a positive when it
# overlaps an enhancer of that gene that is active in this cell type; a pCRE when its fragment
# carries one. Scores: the drop in predicted expression (`effect` = −effect), |effect|, and a
# distance-only baseline (−|distance|; for pCREs also the interaction frequency). `all` compares
# every row; `matched` re-weights negatives to the positives' distribution over the 2 kb position
# (distal) or over 5 distance quintiles (pCREs), so distance alone scores 0.5 there.

# %%
if PROVENANCE == SEMI_SYNTHETIC:
    truth = perturb.read_planted_enhancers(paths.raw_dir(run.params))
    distal = effects[(effects["level"] == 0.0) & (effects["region_kind"] == "distal")].reset_index(drop=True)
    lab = perturb.label_distal(distal, truth, CELL_TYPE)
    rec = [
        perturb.recovery(
            distal,
            lab,
            what="distal_bin",
            strata=distal["position"].to_numpy(),
            baselines={"distance_only": -distal["distance"].abs().to_numpy(float)},
        )
    ]
    if len(pcres):
        plab = perturb.label_pcres(pcres, truth, CELL_TYPE)
        quint = pd.qcut(pcres["distance"].abs(), 5, labels=False, duplicates="drop").to_numpy()
        rec.append(
            perturb.recovery(
                pcres,
                plab,
                what="pcre",
                strata=quint,
                baselines={
                    "distance_only": -pcres["distance"].abs().to_numpy(float),
                    "frequency_only": pcres["frequency"].to_numpy(float),
                },
            )
        )
    recovery = pd.concat(rec, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=PROVENANCE)
    results.write_table(recovery, run.out_dir / "perturbation_recovery.tsv")
    print(
        f"Planted-enhancer recovery on SEMI-SYNTHETIC data ({CELL_TYPE}); positives among distal bins: {lab.mean():.1%}"
    )
    shown = recovery.pivot_table(index=["what", "mark", "gene_set", "comparison"], columns="score", values="auroc")
else:
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
summary = (
    effects[effects["level"] == 0.0]
    .groupby(["mark", "gene_set", "region_kind"])
    .agg(
        mean_effect=("effect", "mean"),
        mean_abs_effect=("effect", lambda e: e.abs().mean()),
        concordance=("concordance", "mean"),
        n_genes=("gene_id", "nunique"),
    )
    .assign(provenance=PROVENANCE)
)
summary.round(4)
