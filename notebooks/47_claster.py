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
# # 47 · CLASTER: does 3-D structure add to the chromatin landscape?
#
# **Question.** CLASTER (Pielies Avellí et al.) predicts a 1-kb nascent-transcription profile from
# a chromatin landscape and, optionally, a Micro-C / pcHi-C contact map, and concludes that 3-D
# structure adds little once the landscape is known. With its architecture adapted to this study's
# data: how well does it predict expression (gene head) and the nascent profile (profile head), does
# a pcHi-C structure branch add accuracy — and on which genes — do its in-silico perturbations find
# the enhancers that really drive expression, and does its profile peak where transcription pauses?
#
# **Inputs.** The cell type's dataset store (notebook 10): 7 marks × 400 bins of 100 bp over TSS ±
# 20 kb (ln(mean depth + 1), strand-oriented), log2(RPKM + 1) and the four chromosome folds; the
# cell type's pcHi-C file (`raw/pchic/<TISSUE>.tsv.gz`). On the semi-synthetic dataset also the
# simulated nascent-transcription track `raw/nascent/<EID>.bedGraph.gz` (this notebook simulates it
# on first use: a separately seeded stream, no existing file changes) and the planted truth
# (`raw/truth/enhancers.tsv.gz`, `raw/nascent/<EID>.truth.tsv.gz`).
#
# **Method** (docs/methods.md, "CLASTER" and "CLASTER adapted"). The network is EIR 0.1.43's, built
# from the published configuration (landscape branch of dilated residual blocks, fusion MLP, linear
# head; 2,205,869 published parameters, checked layer by layer against EIR itself in the tests),
# with option A's geometry: 7 marks × 400 bins, two groups of two residual blocks. Heads: log2(RPKM +
# 1) (gene head) and the 40 × 1-kb nascent profile over TSS ± 20 kb (profile head, semi-synthetic
# only; targets processed exactly as CLASTER processes its EU-seq: 20-bp means, Gaussian σ = 1 kb,
# 1-kb means). Structure branch: a *virtual 4C* track — per 1-kb bin over TSS ± 200 kb, the largest
# pcHi-C frequency between the gene's bait fragment and a fragment in the bin. One model per (head,
# structure, fold), trained with the project's engine (SmoothL1 on standardised targets, AdamW,
# early stopping on the fold's validation genes) and tested on the fold's genes, as every other
# model. Then CLASTER's experiments: silencing each 2-kb region of the landscape (its P2: the active
# marks removed, H3K27me3 and H3K9me3 kept) and removing each pcHi-C contact of the virtual-4C track,
# scored against the planted enhancers with notebook 60's recovery statistics and the distance-only
# baseline; the profile head's peak against the planted pause peak.
#
# **Outputs** (in `results/<run>/<EID>/`). Rows of `metrics.tsv` and `predictions.tsv.gz` for the
# models `claster` (gene head, landscape only), `claster_v4c` (+ virtual 4C) and `claster_profile`
# (binwise and gene-level correlations); `claster_profile_predictions.tsv.gz`, `claster_history.tsv`,
# `claster_structure_gain.tsv`, `claster_silencing.tsv.gz`, `claster_contacts.tsv.gz`,
# `claster_recovery.tsv` and `claster_pause_peaks.tsv` (semi-synthetic only), and two figures.
#
# **What to expect.** The gene head should be about as good as Chromoformer with all marks (the
# same window, a CNN instead of a transformer). On the **semi-synthetic** data the planted pcHi-C
# enhancers raise expression while their marks lie outside the landscape window, so — unlike
# CLASTER's conclusion on real mESC data — the structure branch should add accuracy, and only on
# genes with active planted pcHi-C enhancers. Silencing should rank the 2-kb regions of active
# planted enhancers above distance alone; the profile head should peak at the planted pause peak.
# On the smoke preset (200 genes, 2 epochs) the numbers only show that the pipeline runs.
#
# **Cost** (README, "CLASTER"; one thread). The demo job (fold 1, ≤ 4 epochs, 3 models) took
# 50–54 s per cell type on a quiet core (2026-12-06); the full setting (all genes, 11 cell types × 4
# folds × 3 models, ≈ 30 epochs each) ≈ 20 CPU-hours (estimate from the measured rate); on an H100
# < 1.5 h (estimate, unmeasured: run `bench/gpu_grid.py`).

# %% tags=["parameters"]
CELL_TYPE = None  # Roadmap EID, e.g. "E003" (required)
RUN_NAME = None  # results/<RUN_NAME>/<CELL_TYPE>/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml and params/cells/<CELL_TYPE>.yaml
PARAMS = {}  # nested overrides, e.g. {"model": {"claster": {"folds": [1]}}}

# %%
from chromexp import runs

run = runs.start(cell_type=CELL_TYPE, run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS)
run.describe()

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from chromexp import paths, results
from chromexp.analyses import claster as analysis
from chromexp.analyses import perturb
from chromexp.constants import SEMI_SYNTHETIC
from chromexp.data import dataset
from chromexp.data import nascent as nascent_data
from chromexp.experiments import claster as experiment
from chromexp.models import claster
from chromexp.plots import claster as claster_plots
from chromexp.plots import style
from chromexp.simulate import nascent as nascent_sim
from chromexp.training import train

cfg = experiment.settings(run.params)
DEVICE = train.resolve_device(run.params["device"])
print(f"option {cfg['option']}: landscape TSS ± {experiment.half_window(cfg):,} bp; marks: {cfg['marks']}")
print(f"folds: {cfg['folds']}; heads: {cfg['heads']}; structure forms: {cfg['structures']}")
print(f"device: {DEVICE} (torch threads: {torch.get_num_threads()}); training: {run.params['train']}")

# %% [markdown]
# ## The architecture: the published geometry and the adapted one
# The published landscape-only model (4 marks × 10,001 bins → 401 × 1 kb) is built from the
# published configuration and its parameter count checked: 2,205,869 weights plus 19 learnable
# Swish slopes (aislib's Swish, which EIR uses, has one per activation). Its layer table equals the
# one EIR 0.1.43 reports (`tests/data/claster_layer_table.tsv`); where the isolated eir-dl
# environment can be built, the tests transplant EIR's weights and compare outputs in float64.

# %%
paper = claster.paper_model()
counts = claster.count_parameters(paper)
assert counts["weights"] == claster.PAPER_N_PARAMETERS["landscape_only"], counts
print(f"published CLASTER (landscape only): {counts['weights']:,} weights + {counts['swish']} Swish slopes")
paper_table = pd.DataFrame(claster.layer_table(paper, "pure_conv")).drop(columns=["model"])
paper_table

# %%
adapted = experiment.build(
    cfg, len(cfg["marks"]), "gene", "virtual_4c" if "virtual_4c" in cfg["structures"] else "none"
)
print(f"adapted model ({len(cfg['marks'])} marks, option {cfg['option']}): {claster.count_parameters(adapted)}")
pd.DataFrame(claster.layer_table(adapted, "adapted")).drop(columns=["model"])
del paper

# %% [markdown]
# ## Load the dataset and build the inputs
# On semi-synthetic data the nascent-transcription track is simulated first (or reused when it
# was made from this dataset with these parameters). A landscape wider than the simulated reads
# (options B and C) is refused there: it would show the simulated 3-D structure through the 1-D track.

# %%
ds = dataset.load_dataset(run.params, CELL_TYPE)
PROVENANCE = ds.provenance
print(f"{ds.cell_type}: {len(ds.genes):,} genes, {PROVENANCE} data")
if PROVENANCE == SEMI_SYNTHETIC and "profile" in cfg["heads"]:
    nascent_files = nascent_sim.ensure_nascent(run.params, CELL_TYPE)
    print(f"nascent track: {nascent_files['track']}")
data = experiment.load_inputs(ds, run.params, cfg)
lengths = experiment.gene_lengths(run.params, ds) if data.profile_target is not None else None
print(f"landscape {data.landscape.shape}; structure { ({k: v.shape for k, v in data.structure.items()}) }")
print(f"{len(data.contacts):,} pcHi-C contacts in the virtual-4C windows")
assert np.isfinite(data.landscape).all() and all(np.isfinite(v).all() for v in data.structure.values())

# %% [markdown]
# ## Train one model per (head, structure, fold)
# Checkpointed under the run folder, one file per model named by a digest of its data and settings,
# so an interrupted run resumes and a finished model is read back.

# %%
checkpoint_dir = run.out_dir / "checkpoints" if cfg["checkpoints"] else None
fitted = experiment.train_and_evaluate(
    ds, data, run.params, cfg=cfg, gene_lengths=lengths, device=DEVICE, checkpoint_dir=checkpoint_dir
)
print(
    f"{len(fitted.models) - fitted.reused} models trained in {fitted.seconds:.1f} s "
    f"({fitted.gene_epochs / max(fitted.seconds, 1e-9):,.0f} training genes/s); {fitted.reused} read back"
)
fitted.history.groupby(["model", "fold"]).agg(epochs=("epoch", "max"), best_epoch=("best_epoch", "first"))

# %% [markdown]
# ## Check and save
# Every test gene of a fold gets exactly one prediction per gene-head model (and one per 1-kb bin
# per profile model); no metric is missing.

# %%
experiment.check_results(fitted, ds)
results.save_metrics(fitted.metrics, run.out_dir, provenance=PROVENANCE)
results.save_predictions(fitted.predictions, run.out_dir, provenance=PROVENANCE)
if not fitted.profile_predictions.empty:
    results.write_table(
        fitted.profile_predictions.assign(provenance=PROVENANCE), run.out_dir / "claster_profile_predictions.tsv.gz"
    )
results.write_table(fitted.history.assign(cell_type=CELL_TYPE), run.out_dir / "claster_history.tsv")
test = fitted.metrics[fitted.metrics["split"] == "test"]
test.pivot_table(index="model", columns="metric", values="value", aggfunc="mean").round(3)

# %% [markdown]
# ## Does the structure branch add accuracy, and on which genes?
# The same genes and folds, with and without the virtual-4C branch. On semi-synthetic data the
# genes are split by the planted truth: at least one planted pcHi-C enhancer active in this cell
# type, or none. On real data by what is observable: at least one pcHi-C contact in the window, or
# none. Δr = Pearson r with − without the branch; the Wilcoxon p tests whether the per-gene squared
# errors shrink.

# %%
gain = None
enhancers = perturb.read_planted_enhancers(paths.raw_dir(run.params)) if PROVENANCE == SEMI_SYNTHETIC else None
if {"claster", "claster_v4c"} <= set(fitted.predictions.get("model", [])):
    if PROVENANCE == SEMI_SYNTHETIC:
        group = analysis.active_pchic_genes(enhancers, CELL_TYPE)
        labels = ("with_active_pchic_enhancer", "without")
    else:
        group = set(data.contacts["gene_id"])
        labels = ("with_pchic_contact", "without")
    gain = analysis.structure_gain(fitted.predictions, group, "claster", "claster_v4c", labels=labels)
    results.write_table(
        gain.assign(cell_type=CELL_TYPE, provenance=PROVENANCE), run.out_dir / "claster_structure_gain.tsv"
    )
    fig = claster_plots.plot_structure_gain(gain, PROVENANCE)
    style.save_figure(fig, f"claster_structure_gain_{CELL_TYPE}", run.figures_dir)
    display(gain.round(4))
else:
    print("The structure comparison needs model.claster.structures [none, virtual_4c] with the gene head.")

# %% [markdown]
# ## In-silico silencing and contact removal
# For each gene-head model and fold, every 2-kb region of TSS ± 20 kb of the fold's test genes
# (or a seeded sample of `model.claster.perturbation.n_genes`) is silenced (the active marks scaled
# by `level`; H3K27me3 and H3K9me3 kept), and — for the structure model — each pcHi-C contact is
# removed from the virtual-4C track. Effect = change of the predicted log2(RPKM + 1).

# %%
pcfg = cfg["perturbation"]
sil_tables, contact_tables = [], []
rng = np.random.default_rng(run.params["seed"])
for (name, fold), predictor in sorted(fitted.models.items()):
    if not name.startswith("claster") or name.startswith("claster_profile"):
        continue
    rows = ds.split(fold)["test"]
    if pcfg["n_genes"] is not None and len(rows) > pcfg["n_genes"]:
        rows = np.sort(rng.choice(rows, pcfg["n_genes"], replace=False))
    structure = data.structure.get("virtual_4c") if name == "claster_v4c" else None
    s = analysis.silencing_effects(
        predictor, data.landscape, ds.genes, rows, marks=data.marks, level=pcfg["level"], structure=structure
    )
    sil_tables.append(s.assign(model=name, fold=fold))
    if name == "claster_v4c" and len(data.contacts):
        c = analysis.contact_removal_effects(predictor, data.landscape, structure, data.contacts, rows)
        contact_tables.append(c.assign(model=name, fold=fold))
silencing = pd.concat(sil_tables, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=PROVENANCE)
results.write_table(silencing[list(analysis.SILENCING_COLUMNS)], run.out_dir / "claster_silencing.tsv.gz")
contacts = None
if contact_tables:
    contacts = pd.concat(contact_tables, ignore_index=True).assign(cell_type=CELL_TYPE, provenance=PROVENANCE)
    results.write_table(contacts[list(analysis.CONTACT_COLUMNS)], run.out_dir / "claster_contacts.tsv.gz")
silencing.groupby(["model", "region_kind"])["effect"].describe().round(4)

# %% [markdown]
# ## Do the effects find the planted enhancers? (semi-synthetic data only)
# A distal 2-kb region is a positive when it overlaps a local planted enhancer of the gene active in
# this cell type; a contact when its fragment carries an active planted pcHi-C enhancer of the gene.
# Scores: the drop in prediction (`effect`), |effect|, and the distance-only baseline (−|distance|;
# for contacts also the interaction frequency). `matched` re-weights the negatives to the positives'
# distribution over the 2-kb position / distance quintile, so distance alone scores 0.5 there.

# %%
recovery = None
if PROVENANCE == SEMI_SYNTHETIC:
    recovery = analysis.recovery_tables(silencing, contacts, enhancers, CELL_TYPE)
    results.write_table(
        recovery.assign(cell_type=CELL_TYPE, provenance=PROVENANCE), run.out_dir / "claster_recovery.tsv"
    )
    display(recovery.pivot_table(index=["model", "what", "comparison"], columns="score", values="auroc").round(3))
else:
    print(f"{PROVENANCE} data: no planted truth to score against; ground-truth recovery is skipped.")

# %% [markdown]
# ## Profile head: the predicted nascent profile and its peak (semi-synthetic data only)
# The planted pause peak sits 50 bp downstream of the TSS, in the 1-kb bin starting at the TSS. The
# planted profile (noise-free, processed like the targets) peaks there unless a neighbouring gene,
# an eRNA or the gene's own body outweighs it; the table compares the predicted and the observed
# (noisy) peaks with the pause bin and with the planted peak, and what a constant "TSS bin" guess
# would score.

# %%
pause = None
if not fitted.profile_predictions.empty:
    truth = nascent_data.read_truth(paths.raw_dir(run.params), CELL_TYPE)
    peaks = analysis.pause_peaks(fitted.profile_predictions, truth, "claster_profile")
    pause = analysis.pause_summary(peaks)
    results.write_table(
        peaks.assign(cell_type=CELL_TYPE, provenance=PROVENANCE), run.out_dir / "claster_pause_peaks.tsv"
    )
    rho, n = analysis.area_vs_rho(
        fitted.profile_predictions, truth, dict(zip(ds.genes["gene_id"], lengths, strict=True)), "claster_profile"
    )
    print(f"predicted gene-body signal vs planted elongation density ρ: Spearman {rho:.3f} over {n} test genes")
    fig = claster_plots.plot_profiles(fitted.profile_predictions, PROVENANCE, "claster_profile")
    style.save_figure(fig, f"claster_profiles_{CELL_TYPE}", run.figures_dir)
    display(pause.round(3))

# %% [markdown]
# ## Checks
# Tables written are complete and finite; the recovery has positives and negatives.

# %%
assert np.isfinite(silencing["effect"]).all()
assert set(silencing["region_kind"]) == {"promoter", "distal"}
if recovery is not None:
    assert (recovery["n_pos"] > 0).any() and (recovery["n_neg"] > 0).any(), "no planted positives among the regions"
if gain is not None:
    assert set(gain["group"]) >= {"all"} and np.isfinite(gain.loc[gain["group"] == "all", "delta_r"]).all()

# %% [markdown]
# ## Answer
# Written from this run's tables.

# %%
display(Markdown(analysis.answer(fitted.metrics, gain, recovery, pause, PROVENANCE, len(cfg["folds"]))))
