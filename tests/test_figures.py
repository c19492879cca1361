"""Manuscript figures (chromexp.plots.manuscript) and the statistics behind them (chromexp.analyses.summary).

Every panel gets a structural test (axes, artists, labels, caption provenance) on small tidy
fixtures written in the layout of a real run (``results/<run>/<EID>/...``, ``eqtl/``, ``ldsc/``),
so loading, provenance and drawing are tested together. Statistics are checked against scipy /
statsmodels / brute force.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from chromexp import provenance  # noqa: E402
from chromexp.analyses import attribution, effects, statistics, summary  # noqa: E402
from chromexp.constants import REAL, SEMI_SYNTHETIC  # noqa: E402
from chromexp.plots import manuscript, style  # noqa: E402
from chromexp.results import write_table  # noqa: E402

# seaborn 0.13's boxplot passes matplotlib 3.11 a deprecated argument; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:vert. bool was deprecated:matplotlib.MatplotlibDeprecationWarning")

CELLS = {"E003": "ESC", "E004": "ESC-derived", "E066": "primary", "E114": "cancer line"}
SINGLE = ["H3K4me3", "H3K27me3", "H3K27ac"]
ALL7 = "H3K27ac+H3K27me3+H3K36me3+H3K4me1+H3K4me3+H3K9ac+H3K9me3"
N_GENES = 40


def _metric_rows(cell, model, marks, fold, value, metric="pearson_r"):
    return {
        "cell_type": cell,
        "model": model,
        "marks": marks,
        "scheme": "chrom_folds",
        "fold": fold,
        "split": "test",
        "n_genes": 10,
        "metric": metric,
        "value": value,
    }


def make_run(root, provenance=SEMI_SYNTHETIC, provenance_column=False, with_downstream=True, seed=0):
    """A small run in the real layout; metrics/predictions carry ``provenance`` only if asked."""
    rng = np.random.default_rng(seed)
    run = root / "run"
    genes_all = [f"ENSG{i:011d}" for i in range(N_GENES)]
    for c_i, cell in enumerate(CELLS):
        d = run / cell
        d.mkdir(parents=True)
        observed = rng.normal(3, 2, N_GENES)
        label = (observed >= np.median(observed)).astype(int)
        fold = np.arange(N_GENES) % 4 + 1
        genes = pd.DataFrame(
            {"gene_id": genes_all, "fold": fold, "rpkm": 2**observed, "target": observed, "label": label}
        ).assign(provenance=provenance)
        write_table(genes, d / "dataset_genes.tsv")
        levels = []
        for mark, shift in (("H3K4me3", 1.0), ("H3K27me3", -0.5), ("H3K27ac", 0.8)):
            lv = np.clip(1 + shift * (label - 0.5) + rng.normal(0, 0.2, N_GENES), 0, None)
            levels.append(pd.DataFrame({"gene_id": genes_all, "mark": mark, "flank": 3000, "level": lv}))
        levels = pd.concat(levels).assign(cell_type=cell, provenance=provenance)
        write_table(levels, d / "dataset_mark_levels.tsv.gz")
        rows, preds = [], []
        for k in (1, 2, 3, 4):
            test = fold == k
            for j, mark in enumerate(SINGLE):
                base = 0.8 if mark != "H3K27me3" else (0.5 if CELLS[cell] in ("ESC", "ESC-derived") else 0.2)
                rows.append(_metric_rows(cell, "promoter_cnn", mark, k, base + 0.02 * j + rng.normal(0, 0.01)))
                for flank in (750, 3000):
                    rows.append(_metric_rows(cell, f"naive_tss{flank}", mark, k, base - 0.1, "abs_pearson_r"))
                noise_p = 1.0 + 0.3 * j
                preds.append(
                    pd.DataFrame(
                        {
                            "cell_type": cell,
                            "model": "promoter_cnn",
                            "marks": mark,
                            "fold": k,
                            "gene_id": np.array(genes_all)[test],
                            "observed": observed[test],
                            "predicted": observed[test] + rng.normal(0, noise_p, test.sum()),
                        }
                    )
                )
            if k == 1:  # the distal model on fold 1 only, as in the demo
                for j, marks in enumerate([*SINGLE, "H3K27ac+H3K4me3", ALL7]):
                    rows.append(_metric_rows(cell, "chromoformer_reg", marks, k, 0.85 + 0.01 * j))
                for mark in SINGLE:
                    preds.append(
                        pd.DataFrame(
                            {
                                "cell_type": cell,
                                "model": "chromoformer_reg",
                                "marks": mark,
                                "fold": k,
                                "gene_id": np.array(genes_all)[test],
                                "observed": observed[test],
                                "predicted": observed[test] + rng.normal(0, 0.2, test.sum()),
                            }
                        )
                    )
        metrics, preds = pd.DataFrame(rows), pd.concat(preds, ignore_index=True)
        if provenance_column:
            metrics, preds = metrics.assign(provenance=provenance), preds.assign(provenance=provenance)
        write_table(metrics, d / "metrics.tsv")
        write_table(preds, d / "predictions.tsv.gz")
        if with_downstream:
            write_table(perturbation_table(cell, provenance, rng), d / "perturbation_effects.tsv.gz")
            if c_i == 0:
                write_attribution(d / "attribution_ENSG00000000001.npz", cell, provenance)
    if with_downstream:
        write_table(eqtl_table(provenance), run / "eqtl" / "eqtl_deciles.tsv")
        bench = eqtl_table(provenance).query("decile <= 3").assign(set=["max_activity", "pchic", "proximal"] * 2)
        write_table(bench.drop(columns="decile"), run / "eqtl" / "eqtl_benchmarks.tsv")
        matched = pd.DataFrame(
            {
                "cell_type": ["E066", "E066", "E114"],
                "provenance": provenance,
                "set": ["decile_10", "proximal", "decile_10"],
                "odds_ratio": [2.0, 1.1, 1.5],
                "ci_low": [1.4, 0.8, 0.9],
                "ci_high": [2.9, 1.5, 2.4],
                "p": [0.001, 0.5, 0.1],
            }
        )
        write_table(matched, run / "eqtl" / "eqtl_distance_matched.tsv")
        write_table(ldsc_table(provenance), run / "ldsc" / "ldsc_results.tsv")
    return run


def perturbation_table(cell, provenance, rng, n_genes=12):
    """perturbation_effects.tsv.gz rows in the CONTRACTS schema."""
    rows = []
    levels = np.round(np.arange(1.0, -0.01, -0.1), 1)
    for mark, gene_set in (("H3K27ac", "active"), ("H3K27me3", "inactive")):
        for g in range(n_genes):
            regions = [("promoter", "promoter", -1, 0)] + [
                (f"distal_{k:02d}", "distal", k, (k * 2000 + 1000) - 20000) for k in [*range(8), *range(12, 20)]
            ]
            for region, kind, pos, dist in regions:
                scale = 1.0 if kind == "promoter" else np.exp(-abs(dist) / 8000)
                for level in levels:
                    effect = -(1 - level) * scale * (1 + 0.1 * rng.normal())
                    rows.append(
                        {
                            "cell_type": cell,
                            "provenance": provenance,
                            "model": "chromoformer-reg",
                            "mark": mark,
                            "gene_set": gene_set,
                            "gene_id": f"G{g}",
                            "region": region,
                            "region_kind": kind,
                            "position": pos,
                            "distance": dist,
                            "chrom": "chr1",
                            "start": 100000 + dist - 1000,
                            "end": 100000 + dist + 1000,
                            "level": level,
                            "effect": effect,
                            "effect_sd": 0.01,
                            "concordance": 1.0,
                            "n_folds": 4,
                            "baseline": 3.0,
                        }
                    )
    return pd.DataFrame(rows)


def eqtl_table(provenance):
    rows = []
    for cell, tissue in (("E066", "liver"), ("E114", "lung")):
        for decile in range(1, 11):
            frac = 0.02 + 0.01 * decile
            rows.append(
                {
                    "cell_type": cell,
                    "provenance": provenance,
                    "tissues": tissue,
                    "decile": decile,
                    "n_loci": 500,
                    "n_with_eqtl": int(500 * frac),
                    "fraction": frac,
                    "random_mean": 0.05,
                    "random_lo": 0.03,
                    "random_hi": 0.07,
                    "p": 0.001 if decile == 10 else 0.5,
                    "q": 0.002 if decile == 10 else 0.6,
                }
            )
    return pd.DataFrame(rows)


def ldsc_table(provenance):
    rows = []
    for t_i, trait in enumerate(["height", "LDL", "IBD"]):
        for a_i, annot in enumerate(["top_decile_liver", "top_decile_NPC", "top_decile_all"]):
            rows.append(
                {
                    "provenance": provenance,
                    "trait": trait,
                    "annotation": annot,
                    "prop_snps": 0.01,
                    "prop_h2": 0.03 + 0.01 * a_i,
                    "enrichment": 3.0 + a_i + t_i,
                    "enrichment_se": 0.8,
                    "enrichment_p": 0.01,
                    "coefficient": 1e-7,
                    "coefficient_se": 5e-8,
                    "coefficient_z": 2.0 + a_i - t_i,
                    "coefficient_p": 0.02,
                    "tau_star": 0.3,
                    "tau_star_se": 0.1,
                    "q": 0.01 if (t_i, a_i) == (0, 0) else 0.3,
                }
            )
    return pd.DataFrame(rows)


def write_attribution(path, cell, provenance, resolutions=(100, 500, 2000), hw=20000):
    rng = np.random.default_rng(1)
    data = {
        "cell_type": cell,
        "provenance": provenance,
        "gene_id": "ENSG00000000001",
        "gene_name": "GENE1",
        "mark": "H3K27ac",
        "model": "chromoformer-reg",
        "chrom": "chr1",
        "tss": 1_000_000,
        "strand": "-",
        "half_window": hw,
        "resolutions": np.array(resolutions),
        "ablated_region": np.array([1_010_000, 1_012_000]),
        "eqtl_positions": np.array([1_011_000, 995_000]),
        "attribution": "gradient_x_input",
    }
    for r in resolutions:
        n = 2 * hw // r
        data[f"resolution_{r}_signal"] = rng.random(n)
        data[f"resolution_{r}_grad_before"] = rng.normal(size=n)
        data[f"resolution_{r}_grad_after"] = rng.normal(size=n)
    np.savez(path, **data)


@pytest.fixture(scope="module")
def semi(tmp_path_factory):
    return summary.load_run_tables(make_run(tmp_path_factory.mktemp("semi")))


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    return summary.load_run_tables(make_run(tmp_path_factory.mktemp("real"), provenance=REAL, provenance_column=True))


def _title(fig):
    return fig._suptitle.get_text()


def _drawn(run, name):
    d = manuscript.draw(name, run, None)
    assert d.figure is not None, d.note
    return d.figure


# ---------------------------------------------------------------------------------------------
# loading and provenance
# ---------------------------------------------------------------------------------------------
def test_load_run_tables_reads_every_table_and_provenance_from_the_dataset_tables(semi):
    assert semi.cell_types == list(CELLS)
    assert semi.provenance == dict.fromkeys(CELLS, SEMI_SYNTHETIC)
    for name in ("metrics", "predictions", "genes", "levels", "perturbation", "eqtl_deciles", "ldsc"):
        assert semi.has(name), name
        assert set(semi[name]["provenance"]) == {SEMI_SYNTHETIC}, name
    assert len(semi.attributions) == 1
    inv = semi.inventory().set_index("table")
    assert inv.loc["metrics", "files"] == 4 and inv.loc["pcre_ablation", "rows"] == 0


def test_a_provenance_column_wins_over_the_dataset_tables(tmp_path):
    run = make_run(tmp_path, provenance=SEMI_SYNTHETIC, with_downstream=False)
    m = pd.read_csv(run / "E003" / "metrics.tsv", sep="\t").assign(provenance=REAL)
    write_table(m, run / "E003" / "metrics.tsv")
    t = summary.load_run_tables(run)
    by_cell = t["metrics"].groupby("cell_type")["provenance"].first()
    assert by_cell["E003"] == REAL and by_cell["E066"] == SEMI_SYNTHETIC


def test_a_cell_type_without_dataset_tables_is_unknown_and_never_real(tmp_path):
    run = make_run(tmp_path, provenance=REAL, with_downstream=False)
    for cell in CELLS:
        (run / cell / "dataset_genes.tsv").unlink()
    t = summary.load_run_tables(run)
    assert set(t["metrics"]["provenance"]) == {summary.UNKNOWN}
    label = summary.provenance_label(t["metrics"])
    assert "UNKNOWN" in label and label != provenance.data_label(REAL)


def test_mixed_provenance_names_the_cell_types_and_does_not_read_as_real():
    t = pd.DataFrame({"cell_type": ["E003", "E066"], "provenance": [REAL, SEMI_SYNTHETIC]})
    label = summary.provenance_label(t)
    assert label.startswith("MIXED") and "SEMI-SYNTHETIC: E066" in label and "real: E003" in label


@pytest.mark.parametrize("name", [p.name for p in manuscript.PANELS])
def test_real_tables_give_real_in_the_caption_and_semi_synthetic_ones_do_not(name, semi, real):
    fig_real, fig_semi = _drawn(real, name), _drawn(semi, name)
    t_real, t_semi = _title(fig_real), _title(fig_semi)
    plt.close("all")
    assert provenance.data_label(REAL) in t_real and "SYNTHETIC" not in t_real
    assert "SEMI-SYNTHETIC" in t_semi and "real data" not in t_semi
    panel = next(p for p in manuscript.PANELS if p.name == name)
    assert f"paper {panel.paper}" in t_semi  # which published panel it corresponds to


# ---------------------------------------------------------------------------------------------
# structural tests, one per panel
# ---------------------------------------------------------------------------------------------
def test_fig1a_bars_per_mark_fold_dots_and_naive_markers(semi):
    fig = _drawn(semi, "fig1a_promoter_by_mark")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["H3K4me3", "H3K27me3", "H3K27ac"]
    assert len(ax.patches) == 3  # one bar per mark
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"naive |r|, TSS ± 750 bp", "naive |r|, TSS ± 3000 bp"} <= set(legend) and set(CELLS) <= set(legend)
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == 3 * 4 * 4 + 2 * 3  # (mark, cell, fold) dots + (flank, mark) naive markers
    assert "Pearson r" in ax.get_ylabel()
    assert "Fig. 1A" in _title(fig) and "test" in _title(fig)
    plt.close(fig)


def test_fig1b_heatmap_cells_by_marks_with_mean_and_sd(semi):
    fig = _drawn(semi, "fig1b_promoter_by_cell_type")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"{c} ({s})" for c, s in CELLS.items()]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["H3K4me3", "H3K27me3", "H3K27ac"]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 12 and all("±" in t and "(n=4)" in t for t in texts)
    assert len(fig.axes) == 2  # heatmap + colour bar
    plt.close(fig)


def test_fig2a_is_a_seaborn_clustermap_with_dendrograms_and_mark_labels(semi):
    fig = _drawn(semi, "fig2a_prediction_correlation")
    g = fig.chromexp_clustergrid
    assert type(g).__name__ == "ClusterGrid"
    assert g.dendrogram_row is not None and g.dendrogram_col is not None
    assert len(g.ax_row_dendrogram.collections) > 0 and len(g.ax_col_dendrogram.collections) > 0
    rows = [t.get_text() for t in g.ax_heatmap.get_yticklabels()]
    cols = [t.get_text() for t in g.ax_heatmap.get_xticklabels()]
    assert sorted(rows) == sorted(SINGLE) and rows == cols  # same clustering on both axes
    # the matrix is symmetric with a unit diagonal
    m = g.data2d.to_numpy()
    assert np.allclose(m, m.T) and np.allclose(np.diag(m), 1)
    plt.close(fig)


def test_fig2b_two_group_and_four_state_panels_with_q_values(semi):
    fig = _drawn(semi, "fig2b_cell_state")
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_xticklabels()] == ["active", "repressive"]
    assert [t.get_text() for t in right.get_xticklabels()] == list(summary.STATES)
    assert sum(t.get_text().startswith("q = ") for t in left.texts) == 2
    assert sum(len(c.get_offsets()) for c in left.collections) == 4 * 4 * 3  # every (cell, fold, mark) dot
    assert "Wilcoxon rank-sum" in _title(fig) and "BH" in _title(fig)
    plt.close(fig)


def test_fig3a_one_errorbar_point_per_cell_type_and_mark(semi):
    fig = _drawn(semi, "fig3a_level_vs_performance")
    ax = fig.axes[0]
    assert len(ax.containers) == 3  # one ErrorbarContainer per mark
    assert all(len(c.lines[0].get_xdata()) == 4 for c in ax.containers)  # one point per cell type
    assert "level" in ax.get_xlabel() and "SD over folds" in ax.get_ylabel()
    assert ax.get_title().startswith("Spearman ρ")
    plt.close(fig)


def test_fig3b_one_panel_per_mark_high_and_low_genes_by_state(semi):
    fig = _drawn(semi, "fig3b_levels_by_state")
    axes = [a for a in fig.axes if a.get_visible() and a.axison]
    assert [a.get_title() for a in axes] == ["H3K4me3", "H3K27me3", "H3K27ac"]
    for a in axes:
        assert len(a.containers) == 2 and [t.get_text() for t in a.get_xticklabels()] == list(summary.STATES)
    # H3K4me3 levels were simulated to differ between high and low genes: stars appear
    assert any(t.get_text() == "*" for t in axes[0].texts)
    plt.close(fig)


def test_fig4a_bars_per_mark_set_and_cell_type(semi):
    fig = _drawn(semi, "fig4a_distal_by_cell_type")
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["H3K4me3", "H3K27me3", "H3K27ac", "H3K27ac+H3K4me3", "all marks"]
    assert len([p for p in ax.patches if p.get_height() != 0]) == 5 * 4
    plt.close(fig)


def test_fig4c_fold_gains_and_paired_test_rows(semi):
    fig = _drawn(semi, "fig4c_distal_gain")
    left, right = fig.axes[:2]
    labels = [t.get_text() for t in right.get_yticklabels()]
    assert len(labels) == 4 * 3 and all("q=" in t and "n=10" in t for t in labels)
    assert len(right.containers) == 1 and "paired bootstrap" in right.get_xlabel()
    assert "signed-rank" in right.get_title()
    plt.close(fig)


def test_fig5_one_row_per_pair_in_both_panels(semi):
    fig = _drawn(semi, "fig5_mark_pairs")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["H3K27ac+H3K4me3"]
    assert fig.axes[1].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    assert all(len(a.collections[0].get_offsets()) == 4 for a in fig.axes[:2])  # one dot per (cell, fold)
    assert [a.get_title() for a in fig.axes[:2]] == ["pair − better single mark", "pair − all marks"]
    plt.close(fig)


def test_fig6a_lines_per_region_kind_and_cell_with_ci_bands(semi):
    fig = _drawn(semi, "fig6a_perturbation_levels")
    axes = fig.axes
    assert [a.get_title() for a in axes] == [
        "promoter: H3K27me3, inactive genes",
        "promoter: H3K27ac, active genes",
        "distal 2 kb regions: H3K27me3, inactive genes",
        "distal 2 kb regions: H3K27ac, active genes",
    ]
    for a in axes:
        assert [ln.get_label() for ln in a.lines if ln.get_label() in CELLS] == list(CELLS)  # one line per cell type
        assert len(a.collections) == 4  # fill_between bands
    assert a.xaxis_inverted()
    plt.close(fig)


def test_fig6b_quantile_bins_of_distance_with_ci(semi):
    fig = _drawn(semi, "fig6b_effect_by_distance")
    ax = fig.axes[0]
    assert len(ax.containers) == 4  # one errorbar series per cell type
    n = len(ax.containers[0].lines[0].get_xdata())
    assert 2 <= n <= 20
    assert "distance to TSS" in ax.get_xlabel() and "quantile bins" in _title(fig)
    plt.close(fig)


def test_fig7a_one_panel_per_cell_type_with_random_band_and_stars(semi):
    fig = _drawn(semi, "fig7a_eqtl_deciles")
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["E066 (liver)", "E114 (lung)"]
    for a in axes:
        assert len(a.collections) >= 1 and sum(t.get_text() == "*" for t in a.texts) == 1
        assert [int(t) for t in a.get_xticks()] == list(range(1, 11))
        benchmarks = [ln.get_label() for ln in a.lines if ln.get_label().startswith("benchmark")]
        assert benchmarks == [
            "benchmark: max-activity bin",
            "benchmark: pcHi-C fragments",
            "benchmark: proximal 2 kb bins",
        ]
    plt.close(fig)


def test_fig7c_one_odds_ratio_with_ci_per_cell_and_set_on_a_log_axis(semi):
    fig = _drawn(semi, "fig7c_eqtl_distance_matched")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.containers) == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "E066 · decile 10 (p = 0.001)",
        "E114 · decile 10 (p = 0.1)",
        "E066 · proximal 2 kb bins (p = 0.5)",
    ]
    plt.close(fig)


def test_fig7b_bubbles_per_trait_and_annotation_and_a_ci_forest(semi):
    fig = _drawn(semi, "fig7b_ldsc_bubble")
    bubbles, forest = fig.axes[0], fig.axes[1]
    assert len(bubbles.collections[0].get_offsets()) == 9
    assert [t.get_text() for t in bubbles.get_yticklabels()] == ["IBD", "LDL", "height"]
    assert len(forest.containers) == 9 and "1.96 SE" in forest.get_xlabel()
    plt.close(fig)


def test_fig8_three_tracks_per_resolution_ablated_region_and_eqtls(semi):
    fig = _drawn(semi, "fig8_locus_view")
    assert len(fig.axes) == 9
    ax = fig.axes[0]
    assert len(ax.patches) == 400 + 1  # one bar per 100 bp bin + the shaded ablated region
    assert len(fig.axes[6].patches) == 20 + 1
    # minus strand: the region 10-12 kb 3' in genome coordinates is 10-12 kb UPSTREAM
    span = [p for p in ax.patches if p.get_alpha() == 0.25][0]
    x0, x1 = sorted((span.get_x(), span.get_x() + span.get_width()))
    assert np.isclose(x0, -12) and np.isclose(x1, -10)
    red = [ln for ln in ax.lines if ln.get_color() == "red"]
    assert sorted(np.round([ln.get_xdata()[0] for ln in red], 3)) == [-11.0, 5.0]
    assert "GENE1" in _title(fig)
    plt.close(fig)


def test_attribution_file_without_a_required_key_names_the_file(tmp_path):
    write_attribution(tmp_path / "attribution_x.npz", "E003", SEMI_SYNTHETIC, resolutions=(2000,))
    data = dict(np.load(tmp_path / "attribution_x.npz"))
    del data["resolution_2000_grad_after"]
    np.savez(tmp_path / "attribution_bad.npz", **data)
    with pytest.raises(ValueError, match=r"attribution_bad.npz.*resolution_2000_grad_after"):
        attribution.read_locus(tmp_path / "attribution_bad.npz")


# ---------------------------------------------------------------------------------------------
# skipping, saving
# ---------------------------------------------------------------------------------------------
def test_missing_inputs_skip_a_panel_with_a_note_and_remove_a_stale_file(tmp_path):
    run = summary.load_run_tables(make_run(tmp_path, with_downstream=False))
    out = tmp_path / "figs"
    out.mkdir()
    (out / "fig6a_perturbation_levels.svg").write_text("stale")
    drawn = [manuscript.draw(p, run, out) for p in manuscript.PANELS]
    status = {d.panel.name: d for d in drawn}
    for name in (
        "fig6a_perturbation_levels",
        "fig6b_effect_by_distance",
        "fig7a_eqtl_deciles",
        "fig7b_ldsc_bubble",
        "fig7c_eqtl_distance_matched",
    ):
        assert status[name].figure is None and "skipped: missing" in status[name].note
    assert "notebook(s) 60" in status["fig6a_perturbation_levels"].note
    assert "attribution_*.npz" in status["fig8_locus_view"].note
    assert not (out / "fig6a_perturbation_levels.svg").exists()
    assert (out / "fig1a_promoter_by_mark.svg").is_file() and (out / "fig1a_promoter_by_mark.png").is_file()
    index = manuscript.index_markdown(drawn, run, "run")
    assert "| [fig1a_promoter_by_mark](fig1a_promoter_by_mark.svg) | Fig. 1A |" in index
    assert "fig6a_perturbation_levels | Fig. 6A |" in index and "semi-synthetic" in index
    plt.close("all")


def test_tables_without_usable_rows_skip_with_a_note_not_an_error(tmp_path):
    run = make_run(tmp_path, with_downstream=False)
    for cell in CELLS:  # no promoter CNN in this run (notebook 30 not run)
        m = pd.read_csv(run / cell / "metrics.tsv", sep="\t")
        write_table(m[m["model"] != "promoter_cnn"], run / cell / "metrics.tsv")
    t = summary.load_run_tables(run)
    d = manuscript.draw("fig1b_promoter_by_cell_type", t, None)
    assert d.figure is None and "promoter_cnn pearson_r test" in d.note


def test_saved_panels_are_byte_identical_on_regeneration(semi, tmp_path):
    for out in ("a", "b"):
        for name in ("fig2a_prediction_correlation", "fig4c_distal_gain"):
            manuscript.draw(name, semi, tmp_path / out)
    plt.close("all")
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes(), path.name


def test_theme_is_seaborn_based_and_restored_after_a_panel():
    before = dict(matplotlib.rcParams)
    with style.theme():
        assert matplotlib.rcParams["axes.spines.top"] is False
        assert matplotlib.rcParams["svg.hashsalt"] == "chromexp"
    assert dict(matplotlib.rcParams) == before


# ---------------------------------------------------------------------------------------------
# statistics against oracles
# ---------------------------------------------------------------------------------------------
def test_state_contrasts_match_scipy_and_statsmodels(semi):
    from statsmodels.stats.multitest import multipletests

    c = summary.state_contrasts(semi["metrics"])
    t = summary.single_mark_tests(semi["metrics"], "promoter_cnn")
    rep = t[t["mark_class"] == "repressive"]
    esc = rep["cell_state"].isin(["ESC", "ESC-derived"])
    expected = stats.mannwhitneyu(rep[esc]["value"], rep[~esc]["value"], alternative="two-sided")
    row = c[(c["contrast_kind"] == "two-group") & (c["unit"] == "repressive")].iloc[0]
    assert (row["n_a"], row["n_b"]) == (8, 8) and np.isclose(row["p"], expected.pvalue)
    two = c[c["contrast_kind"] == "two-group"]
    assert np.allclose(two["q"], multipletests(two["p"], method="fdr_bh")[1])
    assert row["q"] < 0.05  # repressive marks were simulated better in ESC states
    assert len(c[(c["contrast_kind"] == "four-state") & (c["unit"] == "active")]) == 6
    assert set(c["test"].str.contains("Wilcoxon rank-sum")) == {True}


def test_prediction_correlations_equal_numpy_on_the_pivoted_predictions(semi):
    c = summary.prediction_correlations(semi["predictions"])
    p = semi["predictions"]
    e = p[(p["cell_type"] == "E066") & (p["model"] == "promoter_cnn")]
    wide = e.pivot_table(index=["fold", "gene_id"], columns="marks", values="predicted")
    r = np.corrcoef(wide["H3K4me3"], wide["H3K27ac"])[0, 1]
    got = c[(c["cell_type"] == "E066") & (c["mark_a"] == "H3K4me3") & (c["mark_b"] == "H3K27ac")]["r"].item()
    assert np.isclose(got, r) and (c["n_genes"] == N_GENES).all()


def test_distal_gain_paired_test_detects_a_better_model_and_not_a_worse_one(semi):
    g = summary.distal_gain(semi["predictions"])
    assert len(g) == 4 * 3 and (g["n_genes"] == 10).all()
    # the distal predictions were simulated with less noise than every promoter model
    assert (g["mean_se_gain"] > 0).all() and (g["delta_r"] > 0).mean() > 0.8
    assert (g["delta_r_lo"] <= g["delta_r"]).all() and (g["delta_r"] <= g["delta_r_hi"]).all()
    # oracle: scipy's signed-rank test on the brute-force per-gene differences
    p = semi["predictions"]
    key = ["fold", "gene_id"]
    a = p[(p["model"] == "chromoformer_reg") & (p["cell_type"] == "E003") & (p["marks"] == "H3K27me3")]
    b = p[(p["model"] == "promoter_cnn") & (p["cell_type"] == "E003") & (p["marks"] == "H3K27me3")]
    m = a.merge(b, on=key, suffixes=("_d", "_p"))
    diff = (m["predicted_p"] - m["observed_d"]) ** 2 - (m["predicted_d"] - m["observed_d"]) ** 2
    row = g[(g["cell_type"] == "E003") & (g["marks"] == "H3K27me3")].iloc[0]
    assert np.isclose(row["p"], stats.wilcoxon(diff, alternative="greater").pvalue)
    # swapping the models turns the one-sided test around
    swapped = summary.distal_gain(semi["predictions"], distal_model="promoter_cnn", promoter_model="chromoformer_reg")
    assert (swapped["p"] > 0.5).all()


def test_pair_gains_by_brute_force(semi):
    from chromexp.analyses import gains

    g = gains.pair_gains(semi["metrics"])
    m = semi["metrics"]
    cf = m[(m["cell_type"] == "E114") & (m["model"] == "chromoformer_reg") & (m["split"] == "test")]
    cf = cf[cf["metric"] == "pearson_r"]
    # the better single mark: the member with the higher mean over the folds (as notebook 50 says)
    means = cf.groupby("marks")["value"].mean()
    best = "H3K27ac" if means["H3K27ac"] >= means["H3K4me3"] else "H3K4me3"
    sel = cf[cf["fold"] == 1].set_index("marks")["value"]
    row = g[(g["cell_type"] == "E114") & (g["marks"] == "H3K27ac+H3K4me3") & (g["fold"] == 1)].iloc[0]
    assert row["best_single"] == best
    assert np.isclose(row["gain_over_best_single"], sel["H3K27ac+H3K4me3"] - sel[best])
    assert np.isclose(row["gain_over_all_marks"], sel["H3K27ac+H3K4me3"] - sel[ALL7])


def test_fold_summary_mean_and_sd_over_folds(semi):
    s = summary.fold_summary(semi["metrics"])
    m = semi["metrics"]
    v = m[(m["cell_type"] == "E004") & (m["model"] == "promoter_cnn") & (m["marks"] == "H3K4me3")]["value"]
    row = s[(s["cell_type"] == "E004") & (s["model"] == "promoter_cnn") & (s["marks"] == "H3K4me3")].iloc[0]
    assert row["n_folds"] == 4 and np.isclose(row["mean"], v.mean()) and np.isclose(row["sd"], v.std(ddof=1))
    assert row["cell_state"] == "ESC-derived"
    long = summary.long_metrics(semi["metrics"])
    assert len(long) == len(m) and {"fold_mean", "fold_sd", "n_folds"} <= set(long.columns)


def test_bootstrap_ci_is_seeded_brackets_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(3)
    small, large = rng.normal(size=20), rng.normal(size=2000)
    assert statistics.bootstrap_ci(small) == statistics.bootstrap_ci(small)
    lo, hi = statistics.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = statistics.bootstrap_ci(large)
    assert hi2 - lo2 < (hi - lo) / 4
    assert np.isnan(statistics.bootstrap_ci([1.0])[0])


def test_perturbation_summaries_zero_at_level_one_and_twenty_distance_bins(semi):
    curves = effects.level_curves(semi["perturbation"])
    one = curves[np.isclose(curves["level"], 1.0)]
    assert np.allclose(one["mean"], 0)
    zero = curves[np.isclose(curves["level"], 0.0)]
    prom = zero[zero["region_kind"] == "promoter"]["mean"].mean()
    dist = zero[zero["region_kind"] == "distal"]["mean"].mean()
    assert prom < dist < 0  # promoter removal was simulated stronger
    by_d = effects.effect_by_distance(semi["perturbation"], n_bins=8)
    assert by_d.groupby(["cell_type", "mark", "gene_set"]).size().max() <= 8
    assert (by_d["ci_low"] <= by_d["mean"]).all() and (by_d["mean"] <= by_d["ci_high"]).all()


def test_levels_by_state_tests_high_vs_low_with_bh(semi):
    points, tests = summary.levels_by_state(semi["levels"], semi["genes"])
    assert set(points["group"]) == {"high (RPKM ≥ median)", "low (RPKM < median)"}
    assert (points["n_genes"] == N_GENES / 2).all()
    k4 = tests[(tests["mark"] == "H3K4me3")]
    assert (k4["q"] < 0.05).all() and (k4["median_high"] > k4["median_low"]).all()
    assert tests["correction"].str.contains("Benjamini-Hochberg").all()


def test_bootstrap_resamples_in_bounded_chunks_are_the_same_resamples():
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    whole = np.concatenate(list(statistics.bootstrap_indices(rng_a, 50, 1000)))
    chunks = list(statistics.bootstrap_indices(rng_b, 50, 1000, max_cells=170))
    assert len(chunks) == 334 and max(c.size for c in chunks) <= 170
    assert np.array_equal(whole, np.concatenate(chunks))


def test_a_malformed_attribution_file_is_an_error_not_a_silent_skip(tmp_path):
    run = make_run(tmp_path, with_downstream=False)
    np.savez(run / "E003" / "attribution_broken.npz", gene_id="G1")
    t = summary.load_run_tables(run)
    with pytest.raises(ValueError, match="attribution_broken.npz"):
        manuscript.draw("fig8_locus_view", t, None)


def test_effect_by_distance_keeps_one_bin_per_distal_position():
    """16 distal positions and 20 requested bins: one bin per position, never two merged."""
    distances = [d for d in range(-19000, 20000, 2000) if abs(d) > 4000]
    assert len(distances) == 16
    rows = [
        {
            "cell_type": "E003",
            "mark": "H3K27ac",
            "gene_set": "active",
            "gene_id": f"g{g}",
            "region_kind": "distal",
            "level": 0.0,
            "distance": d,
            "effect": -1.0 / abs(d),
            "n_folds": 4,
            "provenance": "semi-synthetic",
        }
        for g in range(5)
        for d in distances
    ]
    out = effects.effect_by_distance(pd.DataFrame(rows), n_bins=20)
    assert sorted(out["distance_mid"]) == distances
    assert (out["n_genes"] == 5).all() and (out["n_folds"] == 4).all()
    many = effects.effect_by_distance(pd.DataFrame(rows), n_bins=4)  # fewer bins than positions: quantiles
    assert len(many) == 4


def test_fig3b_paper_contrast_is_esc_vs_primary_within_each_group_at_the_cell_type_fold_level():
    """ESC vs primary within high and within low expressed genes, one point per (cell type, fold) (issue 30)."""
    rng = np.random.default_rng(2)
    levels, genes = [], []
    for cell, esc_shift in (("E003", 1.0), ("E016", 1.0), ("E066", 0.0), ("E116", 0.0)):
        for g in range(80):
            fold, label = 1 + g % 4, int(g < 40)
            # high genes: ESC promoters carry more of the mark; low genes: no difference
            level = 2.0 + (esc_shift if label else 0.0) + rng.normal(0, 0.1)
            levels.append({"cell_type": cell, "gene_id": f"G{g}", "mark": "H3K4me3", "flank": 3000, "level": level,
                           "provenance": "semi-synthetic"})  # fmt: skip
            genes.append({"cell_type": cell, "gene_id": f"G{g}", "label": label, "fold": fold})
    points, tests = summary.levels_by_state_paper(pd.DataFrame(levels), pd.DataFrame(genes))
    assert len(points) == 4 * 4 * 2 and (points["n_genes"] == 10).all()  # (cell type, fold, group) means
    high = tests[tests["group"].str.startswith("high")].iloc[0]
    low = tests[tests["group"].str.startswith("low")].iloc[0]
    assert high["n_ESC"] == 8 and high["n_primary"] == 8
    assert high["p"] < 0.001 and low["p"] > 0.05  # 8 vs 8 points, separated completely in the high group
    fig = manuscript.fig3b_paper_contrast(points, tests)
    assert "Fig. 3B (paper contrast)" in _title(fig) and "(cell type, fold)" in _title(fig)
    plt.close(fig)
