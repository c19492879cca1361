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
# # 90 · The manuscript figures 1–8 and the cross-cell-type summaries
#
# **Question.** Across every cell type of a run: which marks predict expression from the promoter
# (Fig. 1), how do the mark models relate and does cell state change what active and repressive
# marks explain (Fig. 2), does a mark's level explain its model's performance (Fig. 3), do distal
# inputs help (Fig. 4), which mark pairs add (Fig. 5), what do in silico perturbations predict
# (Fig. 6), are the prioritised loci enriched for eQTLs and heritability (Fig. 7), and what does
# one locus look like (Fig. 8)?
#
# **Inputs.** The tidy result tables of notebooks 10–80 in `results/<run>/` only — never a model
# or a dataset: `<EID>/metrics.tsv`, `<EID>/predictions.tsv.gz`, `<EID>/dataset_genes.tsv` and
# `<EID>/dataset_mark_levels.tsv.gz` (notebook 10), `<EID>/perturbation_effects.tsv.gz` and
# `<EID>/attribution_*.npz` (notebook 60), `eqtl/eqtl_deciles.tsv` (notebook 70),
# `ldsc/ldsc_results.tsv` (notebook 80).
#
# **Method** (statistics in `chromexp.analyses.summary`, panels in `chromexp.plots.manuscript`). Every summary of
# folds shows the folds (dots) or mean ± SD; every summary of genes a seeded bootstrap 95 % CI
# over genes. Tests: Fig. 2B two-sided Wilcoxon rank-sum (Mann–Whitney U) of (cell type, fold)
# values, ESC + ESC-derived vs the rest and every pair of the four states, Benjamini–Hochberg
# within each family; Fig. 3A Spearman ρ of level vs performance; Fig. 3B rank-sum of high vs low
# expressed genes per (state, mark), BH; Fig. 4 (beyond the paper) a one-sided Wilcoxon
# signed-rank test of per-gene squared-error differences between the promoter and the distal
# model on the same genes, BH over (cell type, mark), beside Δr with a paired bootstrap CI.
#
# **Outputs.** `figN_<panel>.{svg,png}` and an index `README.md` in the figures folder (`figures/`
# for the demo run and for `make figures`), the tables behind them in `results/<run>/summary/`.
#
# **What to expect.** H3K4me3 and the acetylation marks best at the promoter, the naive baselines
# below the CNN; active-mark models correlated with each other and apart from the repressive
# ones. A panel whose inputs this run lacks (e.g. notebooks 60–80 not run yet) is **skipped with
# a note**, never drawn from anything else. Every title says whether the data are
# **SEMI-SYNTHETIC** (the default embedded dataset: simulated reads, real expression) or real —
# read from the tables' provenance, not from a parameter.

# %% tags=["parameters"]
RUN_NAME = None  # results/<RUN_NAME>/ whose tables are drawn; None: run_name from the parameters
PARAMS_FILE = None  # YAML merged over params/defaults.yaml (e.g. "params/demo.yaml")
PARAMS = {}  # nested overrides, e.g. {"figures": {"out_dir": "figures"}}

# %%
from chromexp import runs

run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)
run.describe()

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from chromexp import paths
from chromexp.analyses import summary
from chromexp.plots import manuscript, style
from chromexp.utils import atomic_path

style.set_theme()
OPTS = {k: run.params["figures"][k] for k in ("promoter_model", "distal_model", "distance_bins", "locus")}
RUN_DIR = paths.results_dir(run.params) / run.run_name
SUMMARY_DIR = RUN_DIR / "summary"
out = run.params["figures"]["out_dir"]
FIG_DIR = (paths.repo_root() / out).resolve() if out else run.figures_dir
print(f"tables from {RUN_DIR}\nsummaries to {SUMMARY_DIR}\nfigures to {FIG_DIR}\noptions: {OPTS}")

# %% [markdown]
# ## The run's tables
# What exists in this run, per table: rows, cell types and provenance (from each table's
# `provenance` column, else from notebook 10's dataset tables of the same cell type), and whether
# every file holds the columns of its documented schema (`summary.SCHEMAS`, docs/data-formats.md).
# A table with a file that breaks its schema is not drawn from at all (not even from the other
# cell types' files): its panels are skipped with the reason, and the checks at the end fail.

# %%
tables = summary.load_run_tables(RUN_DIR)
if not tables.cell_types:
    raise ValueError(f"No cell-type folders (results/{run.run_name}/E###/) in {RUN_DIR}: run notebooks 10-50 first.")
print("provenance by cell type:", tables.provenance)
tables.inventory()

# %% [markdown]
# ## Cross-cell-type metric tables
# Every metric of every model, mark set, fold and cell type in one long table, and its mean ± SD
# over folds (`metrics_long.tsv`, `metrics_summary.tsv`).

# %%
metrics_long = summary.long_metrics(tables["metrics"])
metrics_summary = summary.fold_summary(tables["metrics"])
test_r = metrics_summary[(metrics_summary["split"] == "test") & (metrics_summary["metric"] == "pearson_r")]
test_r.pivot_table(index=["model", "marks"], columns="cell_type", values="mean").round(3)

# %% [markdown]
# ## Drawing the panels
# `manuscript.draw` builds one panel from the tables, saves it, or returns a note naming the missing
# (or malformed) input and the notebook that writes it.

# %%
drawn = []


def show(name):
    """Draw one registered panel; show it, or show why it was skipped."""
    d = manuscript.draw(name, tables, FIG_DIR, **OPTS)
    drawn.append(d)
    if d.figure is None:
        display(Markdown(f"**Note — panel not drawn.** {d.note}"))
    else:
        display(d.figure)
        plt.close(d.figure)


# %% [markdown]
# ## Fig. 1 · Promoter model by mark (with the naive baselines) and by cell type

# %%
show("fig1a_promoter_by_mark")

# %%
show("fig1b_promoter_by_cell_type")

# %% [markdown]
# ## Fig. 2 · Correlation of the mark models' predictions; active vs repressive marks by cell state
# The clustered matrix (seaborn `clustermap`) correlates the test predictions of the single-mark
# models over genes, per cell type, averaged on Fisher's z scale. The tests below name their
# statistic and correction.

# %%
show("fig2a_prediction_correlation")

# %%
show("fig2b_cell_state")
tables.derived.get("fig2_state_contrasts", pd.DataFrame()).round(4)

# %% [markdown]
# ## Fig. 3 · Histone level vs performance; levels by state for high and low expressed genes

# %%
show("fig3a_level_vs_performance")
tables.derived.get("fig3_level_vs_performance_tests", pd.DataFrame())

# %%
show("fig3b_levels_by_state")
tables.derived.get("fig3_levels_by_state_tests", pd.DataFrame()).round(4)

# %% [markdown]
# The paper's own Fig. 3B contrast is a different one: ESC vs primary cells, within the high and
# within the low expressed genes, with one point per (cell type, fold) (the panel above compares
# high vs low genes within a state with every gene a point). Both are kept (docs/deviations.md).

# %%
show("fig3b_paper_contrast")
tables.derived.get("fig3_paper_contrast_tests", pd.DataFrame()).round(4)

# %% [markdown]
# ## Fig. 4 · Distal model by cell type, and its improvement over the promoter model
# Beyond the paper, a paired per-gene test on the same genes and folds: does the distal model
# make smaller errors than the promoter CNN?

# %%
show("fig4a_distal_by_cell_type")

# %%
show("fig4c_distal_gain")
tables.derived.get("fig4_paired_gene_test", pd.DataFrame()).round(4)

# %% [markdown]
# ## Fig. 5 · Mark pairs

# %%
show("fig5_mark_pairs")

# %% [markdown]
# ## Fig. 6 · In silico perturbation: level curves and effect by distance (notebook 60)

# %%
show("fig6a_perturbation_levels")

# %%
show("fig6b_effect_by_distance")

# %% [markdown]
# Fig. 6E/F: the paper's "20 quantile bins" are bins of the *effect distribution* at each
# distance; drawn here as its quantile bands (5-95 %, 25-75 %) and median per distance.

# %%
show("fig6ef_effect_quantiles")

# %% [markdown]
# ## Fig. 7 · eQTL enrichment by decile (notebook 70) and the s-LDSC bubble plot (notebook 80)

# %%
show("fig7a_eqtl_deciles")

# %%
show("fig7b_ldsc_bubble")

# %% [markdown]
# Beyond the paper: the eQTL enrichment against distance-matched loci, so that proximity to the
# TSS alone cannot explain it (odds ratio with its 95 % CI).

# %%
show("fig7c_eqtl_distance_matched")

# %% [markdown]
# ## Fig. 8 · Locus view: signal and gradients before/after ablating a region, with eQTLs

# %%
show("fig8_locus_view")

# %% [markdown]
# ## Save the summaries and the figure index
# The statistics behind every panel go to `results/<run>/summary/`; the index (figure → notebook
# → tables → data kind) to the figures folder.

# %%
status = pd.DataFrame(
    [{"panel": d.panel.name, "paper": d.panel.paper, "status": d.status, "note": d.note} for d in drawn]
)
written = summary.write_summaries(
    {
        "metrics_long": metrics_long,
        "metrics_summary": metrics_summary,
        **manuscript.derived_tables(tables, **OPTS),
        "figure_status": status,
    },
    SUMMARY_DIR,
)
with atomic_path(FIG_DIR / "README.md") as tmp:
    tmp.write_text(manuscript.index_markdown(drawn, tables, run.run_name))
print("written:", ", ".join(p.name for p in written), f"to {SUMMARY_DIR}; index {FIG_DIR / 'README.md'}")
status

# %% [markdown]
# ## Checks
# Every registered panel was either drawn (both files exist, the title carries the data's
# provenance) or skipped with a note; nothing else. A table that breaks its schema fails the run
# here (after every other panel was drawn), naming the file and the missing columns.

# %%
assert [d.panel.name for d in drawn] == [p.name for p in manuscript.PANELS]
for d in drawn:
    if d.figure is not None:
        assert all(p.is_file() for p in d.files) and len(d.files) == 2, d.panel.name
        title = d.figure._suptitle.get_text()
        assert "SEMI-SYNTHETIC" in title or "real" in title or "UNKNOWN" in title, (d.panel.name, title)
    else:
        assert d.note and not (FIG_DIR / f"{d.panel.name}.svg").exists(), d.panel.name
print(
    f"{sum(d.figure is not None for d in drawn)} panels drawn, {sum(d.figure is None for d in drawn)} skipped with a note"
)
if tables.invalid:
    raise ValueError(
        "Tables that break their documented schema were not drawn from: "
        + "; ".join(why for reasons in tables.invalid.values() for why in reasons)
    )
