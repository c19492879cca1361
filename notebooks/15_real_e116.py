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
# # 15 · Real E116 at 10 kb: which single mark predicts expression best on real data, and how far is the simulator from it?
#
# **Question.** On **real** genome-wide histone data — Roadmap E116 (GM12878) read counts of 5 marks
# in 10-kb bins, every gene of chr1–22 with its real E116 expression — which single mark predicts
# expression best (the paper's Fig. 1A question, at a 100× coarser resolution than its 100-bp bins),
# how stable is that ranking across the 4 chromosome folds, and how far is the semi-synthetic
# simulator from these real counts, mark by mark?
#
# **Inputs.** The vendored real E116 count table (`lib/chromexp/resources/e116_10kb/`, from
# GC-MERGE; SHA-256 checked on every read; `real_e116.counts` points at your own pre-binned table,
# docs/data-formats.md, "Pre-binned count tables"), the vendored real Roadmap RPKM and gene table
# (`resources/roadmap/genes_rpkm_11.tsv.gz`), and for the simulator check the run dataset's reads of
# the same cell type (the SEMI-SYNTHETIC E116 reads notebook 00 writes).
#
# **Method** (`chromexp.experiments.real_e116`; docs/methods.md, "Real E116 benchmark at 10 kb").
# Per gene the TSS bin ± k bins (k = 5: 11 bins, 110 kb), strand-oriented (bin 0 most upstream),
# ln(count + 1); targets log2(RPKM + 1) and the label RPKM ≥ the median of these genes; the project's
# 4 chromosome folds with validation chromosomes from the training folds. Per mark and for all
# marks: ridge / logistic regression on the TSS bin ± 1 (the bar), the ExPecto-style linear model
# over the bins, and a small CNN over the ± k bins trained with the project's engine. Pearson r,
# Spearman ρ and AUROC on each held-out fold. The simulator check counts the dataset's E116 reads
# into the same 10-kb bins — **only the TSS bin ± 1 is covered by simulated reads** (reads are
# simulated over TSS ± 21 kb and pcHi-C fragments only), so only those bins are compared — and fits
# the same baseline on the same genes and folds from real and from simulated counts.
#
# **Outputs** (`results/<run>/real_e116/`). `metrics.tsv` and `predictions.tsv.gz` (real, cell type
# E116, models `binned_ridge`, `binned_logistic`, `binned_expecto`, `binned_cnn`), `fold_ranking.tsv`,
# `ranking_stability.tsv`, `gene_exclusions.tsv`, `model_details.tsv`, `cnn_history.tsv`; the
# simulator check in `simulator_check/counts_table/` (real) and `simulator_check/dataset_reads/`
# (semi-synthetic), `simulator_vs_real.tsv` and `signal_deciles.tsv`; figures in `figures/`.
#
# **What to expect.** In lymphoblastoid cells the active promoter mark H3K4me3 and the gene-body
# mark H3K36me3 carry most information, at 10 kb the body mark may well win (a 10-kb bin holds much
# of a gene body); H3K9me3 predicts least. All marks together beat every single mark. The simulator
# was calibrated on 100 real E003 genes at 100-bp resolution: at 10 kb and on ~2,000 E116 genes some
# marks may be off, and this notebook says which and by how much.
#
# **Cost** (measured 2026-12-05, 1 CPU thread, machine shared by other jobs): demo setting (12 epochs)
# 61 CPU s; full setting (100 epochs, patience 12) 121 CPU s; smoke (2,000 genes, 2 epochs) 20 CPU s.
# On a GPU the 24 small CNNs would take seconds (estimate, not measured).

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/real_e116/; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml (e.g. "params/smoke.yaml")
PARAMS = {}  # nested overrides, e.g. {"real_e116": {"k": 3, "n_genes": 3000}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
CFG = run.params["real_e116"]
SEED = int(run.params["seed"])
run.describe()

# %%
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display

from chromexp import paths, provenance, results
from chromexp.data import binned, io
from chromexp.experiments import real_e116 as experiment
from chromexp.plots import panels, style
from chromexp.simulate import roadmap
from chromexp.training import train

OUT = paths.results_dir(run.params) / run.run_name / "real_e116"
OUT.mkdir(parents=True, exist_ok=True)
CELL = CFG["cell_type"]
FOLDS = [int(f) for f in (CFG["folds"] or run.params["folds"])]
DEVICE = train.resolve_device(run.params["device"])
print(f"cell type {CELL}; folds {FOLDS}; TSS bin ± {CFG['k']} bins (bar: ± {CFG['baseline_k']}); device {DEVICE}")
print(f"outputs in {OUT}")

# %% [markdown]
# ## Load the count table and the genes
# The vendored table is checked against its SHA-256 and read like every input of chromexp
# (`chromexp.data.io.read_binned_counts`: one bin size, sorted, no overlap, one grid per chromosome; a
# missing bin is unknown, not zero). Its provenance is decided from the files on disk.

# %%
counts_path = Path(CFG["counts"]).expanduser() if CFG["counts"] else None
bins = binned.read_e116_10kb(counts_path)
COUNTS_SOURCE = bins.attrs["source"]
COUNTS_PROVENANCE = provenance.detect(Path(COUNTS_SOURCE).parent, [COUNTS_SOURCE])
report = bins.attrs["bin_report"]
BIN_SIZE = int(report["bin_size"])
print(f"{COUNTS_SOURCE}: {report['n_bins']:,} bins of {BIN_SIZE:,} bp, tracks {report['tracks']}")
print(f"provenance: {COUNTS_PROVENANCE.upper()} data; gaps per chromosome: {sum(report['gaps'].values())}")
gene_table = paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz"
genes = io.read_gene_table(gene_table)
rpkm = io.read_expression(gene_table, [CELL])[CELL]
MARKS = list(CFG["marks"] or report["tracks"])
missing = [m for m in MARKS if m not in report["tracks"]]
assert not missing, f"real_e116.marks {missing} are not tracks of {COUNTS_SOURCE}"
pd.DataFrame({"bins": report["chromosomes"], "gaps": report["gaps"]}).T

# %% [markdown]
# ## Genes, targets and folds
# Every gene whose TSS bin ± k bins the table covers; the genes left out are counted by reason
# (never silently dropped): chromosomes the table lacks (chrX/chrY), unknown strand (a window cannot
# be oriented), windows reaching an unknown bin.

# %%
covered = experiment.build_benchmark(
    bins,
    genes,
    rpkm,
    cell_type=CELL,
    k=int(CFG["k"]),
    provenance=COUNTS_PROVENANCE,
    validation_fraction=float(run.params["dataset"]["validation_fraction"]),
    source=COUNTS_SOURCE,
)
bench = covered.subsample(CFG["n_genes"], SEED)  # all covered genes unless real_e116.n_genes is set
print(f"{len(bench):,} genes, label median {bench.label_median:.3f} RPKM, {bench.genes['label'].mean():.1%} active")
results.write_table(bench.exclusions.assign(provenance=COUNTS_PROVENANCE), OUT / "gene_exclusions.tsv")
splits = pd.DataFrame({f: {k: len(v) for k, v in bench.split(f).items()} for f in FOLDS}).T.rename_axis("fold")
display(bench.exclusions[["reason", "n_genes", "description"]])
splits

# %% [markdown]
# ## The bar: ridge and logistic regression on the TSS bin ± 1
# ln(count + 1) of the TSS bin and its two neighbours, per mark (3 features) and for all marks
# (15), standardised on the training genes; the penalty chosen on the fold's validation genes.

# %%
sets = experiment.mark_sets(MARKS, CFG["all_marks"])
linear = experiment.linear_baselines(bench, sets, FOLDS, k=int(CFG["baseline_k"]), alphas=CFG["alphas"], cs=CFG["cs"])
print(f"{len(linear.details)} linear fits in {linear.seconds:.1f} s")
experiment.fold_table(linear.metrics).round(3)

# %% [markdown]
# ## The ExPecto-style linear model over the TSS bin ± k bins
# ExPecto's 10 exponential-decay spatial bases (`chromexp.baselines.expecto`; e-folding lengths 1–20
# kb, upstream and downstream) evaluated at each bin centre's distance from the gene's own TSS,
# summed per mark (10 features per mark), then a standardised ridge with α chosen by the
# validation Spearman ρ.

# %%
expecto_run = experiment.expecto_models(bench, sets, FOLDS, k=int(CFG["k"]))
print(f"{len(expecto_run.details)} ExPecto-style fits in {expecto_run.seconds:.1f} s")
experiment.fold_table(expecto_run.metrics).round(3)

# %% [markdown]
# ## A small CNN over the TSS bin ± k bins
# `chromexp.models.binned_cnn` (a few thousand parameters), one model per (mark set, fold), trained
# with the study's protocol (`chromexp.training.train`: Adam, ReduceLROnPlateau, early stopping on the
# validation genes with the best epoch restored), batch size and learning rate from `real_e116.cnn.train`.

# %%
cnn_params = experiment.cnn_train_params(run.params)
checkpoints = OUT / "checkpoints" if CFG["cnn"]["checkpoints"] else None
cnn = experiment.train_cnns(
    bench,
    sets,
    FOLDS,
    k=int(CFG["k"]),
    cnn=CFG["cnn"],
    train_params=cnn_params,
    seed=SEED,
    device=DEVICE,
    checkpoint_dir=checkpoints,
    progress=True,
)
n_read = int(cnn.details["read_back"].sum())
print(
    f"{len(cnn.details) - n_read} CNNs trained, {n_read} read back from finished checkpoints, in {cnn.seconds:.1f} s "
    f"on {DEVICE} (torch threads {torch.get_num_threads()})"
)
cnn.details.groupby("marks")[["best_epoch", "epochs", "n_parameters"]].mean()

# %% [markdown]
# ## Check and save the real benchmark
# Every test gene of every fold has one prediction per (model, mark set); no metric is missing.

# %%
runs_done = [linear, expecto_run, cnn]
metrics = pd.concat([r.metrics for r in runs_done], ignore_index=True)
predictions = pd.concat([r.predictions for r in runs_done], ignore_index=True)
details = pd.concat([r.details for r in runs_done], ignore_index=True)
for model in metrics["model"].unique():
    pred = predictions[predictions["model"] == model]
    for fold in FOLDS:
        test_ids = set(bench.genes["gene_id"].to_numpy()[bench.split(fold)["test"]])
        for key in {results.marks_key(s) for s in sets}:
            got = pred[(pred["fold"] == fold) & (pred["marks"] == key)]["gene_id"]
            assert got.is_unique and set(got) == test_ids, (model, key, fold)
assert np.isfinite(predictions["predicted"].to_numpy(float)).all()
assert not metrics.loc[metrics["metric"] != "r2", "value"].isna().any()
results.save_metrics(metrics, OUT, provenance=bench.provenance)
results.save_predictions(predictions, OUT, provenance=bench.provenance)
results.write_table(details.assign(provenance=bench.provenance), OUT / "model_details.tsv")
results.write_table(cnn.history.assign(provenance=bench.provenance), OUT / "cnn_history.tsv")
table = experiment.fold_table(metrics)
print(f"the real {CELL} table ({COUNTS_PROVENANCE.upper()} data): test metric per fold")
table.round(3)

# %%
fig = panels.plot_binned_benchmark(
    metrics, bench.provenance, BIN_SIZE, len(bench), k=int(CFG["k"]), baseline_k=int(CFG["baseline_k"])
)
style.save_figure(fig, f"real_e116_benchmark{'_real' if bench.provenance == 'real' else ''}", OUT / "figures")

# %% [markdown]
# ## Which single mark predicts best? (paper Fig. 1A on real data)
# Per model and fold the single marks ranked by test Pearson r; stability across folds as the
# number of folds where the overall best mark ranks first and Kendall's W (1 = the same ranking in
# every fold).

# %%
ranking = experiment.fold_ranking(metrics, MARKS, metric="pearson_r")
stability = experiment.ranking_stability(ranking)
results.write_table(ranking.assign(provenance=bench.provenance), OUT / "fold_ranking.tsv")
results.write_table(stability.assign(provenance=bench.provenance), OUT / "ranking_stability.tsv")
fig = panels.plot_fold_ranking(ranking, stability, bench.provenance, BIN_SIZE)
style.save_figure(fig, f"real_e116_fold_ranking{'_real' if bench.provenance == 'real' else ''}", OUT / "figures")
stability

# %% [markdown]
# ## The simulator against the real counts
# The run dataset's reads of the same cell type are counted into the same bins (a read counts in
# every bin it overlaps). Simulated reads exist only over TSS ± 21 kb of the simulated genes and
# over pcHi-C fragments: only bins wholly inside those regions are kept — about the TSS bin ± 1 —
# and every other bin is unknown, so the comparison uses the TSS bin ± 1 of the simulated genes.
# Same genes, targets, labels and folds for both sources.

# %%
raw = paths.raw_dir(run.params)
read_files = {m: raw / f"{CELL}-{m}.tagAlign.gz" for m in MARKS}
have_reads = all(p.is_file() for p in read_files.values()) and (raw / "genes.tsv").is_file()
CHECK = bool(CFG["simulator_check"]) and have_reads
comparison = None
if not CHECK:
    print(
        "Simulator check skipped: "
        + ("real_e116.simulator_check is false." if not CFG["simulator_check"] else f"no {CELL} reads in {raw}.")
    )
else:
    SIM_PROVENANCE = provenance.of_params(run.params, files=list(read_files.values()))
    reads = {m: io.read_tagalign(p) for m, p in read_files.items()}
    regions = roadmap.simulated_regions(raw) if SIM_PROVENANCE == "semi-synthetic" else None
    inside = binned.bins_inside(bins, regions) if regions is not None else None
    sim_bins = experiment.aggregate_reads(reads, bins, inside)
    sim_genes = pd.read_csv(raw / "genes.tsv", sep="\t", dtype=str)["gene_id"]
    real_sub, sim_sub, sim_excluded = experiment.paired_benchmarks(
        covered, sim_bins, sim_genes, k=int(CFG["baseline_k"]), provenance=SIM_PROVENANCE, source=str(raw)
    )
    print(
        f"{SIM_PROVENANCE.upper()} reads of {CELL}: {len(sim_bins):,} of {len(bins):,} bins covered; "
        f"{len(sim_sub):,} of {sim_genes.nunique():,} simulated genes compared"
    )
    display(sim_excluded[sim_excluded["n_genes"] > 0][["reason", "n_genes", "description"]])

# %%
if CHECK:
    k_bar = int(CFG["baseline_k"])
    runs_check = {
        "real counts": (
            experiment.linear_baselines(real_sub, sets, FOLDS, k=k_bar, alphas=CFG["alphas"], cs=CFG["cs"]),
            real_sub,
        ),
        "simulated reads": (
            experiment.linear_baselines(sim_sub, sets, FOLDS, k=k_bar, alphas=CFG["alphas"], cs=CFG["cs"]),
            sim_sub,
        ),
    }
    relations = {name: experiment.signal_relations(b, MARKS) for name, (_, b) in runs_check.items()}
    deciles = pd.concat(
        [experiment.expression_deciles(b, MARKS).assign(source=name) for name, (_, b) in runs_check.items()],
        ignore_index=True,
    )
    comparison = experiment.compare_sources(
        runs_check["real counts"][0].metrics,
        runs_check["simulated reads"][0].metrics,
        relations["real counts"],
        relations["simulated reads"],
        MARKS,
        float(CFG["tolerance"]),
    )
    for name, folder in (("real counts", "counts_table"), ("simulated reads", "dataset_reads")):
        fit, b = runs_check[name]
        results.save_metrics(fit.metrics, OUT / "simulator_check" / folder, provenance=b.provenance)
    results.write_table(comparison.assign(cell_type=CELL), OUT / "simulator_vs_real.tsv")
    results.write_table(deciles, OUT / "signal_deciles.tsv")
    performance = experiment.performance_table(
        {name: (fit.metrics, b.provenance) for name, (fit, b) in runs_check.items()}
    )
    fig = panels.plot_real_vs_simulated(
        performance, deciles, real_sub.provenance, sim_sub.provenance, len(sim_sub), BIN_SIZE, CELL
    )
    both_real = real_sub.provenance == sim_sub.provenance == "real"
    style.save_figure(fig, f"real_e116_simulator_check{'_real' if both_real else ''}", OUT / "figures")
    print(f"real ({real_sub.provenance}) vs simulated ({sim_sub.provenance}), {len(sim_sub):,} genes:")
    display(comparison.pivot_table(index="marks", columns="quantity", values="difference").round(3))

# %% [markdown]
# ### Per mark: which is off, and by how much
# `difference` = simulated − real; a mark is *off* when a correlation (Pearson r, Spearman ρ, AUROC,
# the TSS-bin Spearman ρ with expression) differs by more than `real_e116.tolerance`.

# %%
if CHECK:
    wide = comparison.set_index(["marks", "quantity"])[["real", "simulated", "difference", "off"]]
    display(wide.round(3))
    assert len(comparison) and comparison["real"].notna().all()

# %% [markdown]
# ## Answer
# Written from this run's tables (ranking, stability, simulator comparison).

# %%
display(
    Markdown(
        experiment.answer(
            stability,
            metrics,
            comparison,
            bench.provenance,
            BIN_SIZE,
            len(bench),
            sim_provenance=sim_sub.provenance if CHECK else None,
            tolerance=float(CFG["tolerance"]),
        )
    )
)
