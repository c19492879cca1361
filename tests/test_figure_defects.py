"""One test per manuscript-figure defect of issue 28 item 1, and the two analysis checks of issue 29.

Each test states the defect it guards; each failed on the figure code before the fix (the note in
the docstring says how).
"""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_figures import CELLS, eqtl_table, ldsc_table, make_run, write_attribution  # noqa: E402

from chromexp.analyses import attribution, effects, enrichment, summary  # noqa: E402
from chromexp.constants import SEMI_SYNTHETIC  # noqa: E402
from chromexp.plots import manuscript, panels, style  # noqa: E402
from chromexp.results import write_table  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:vert. bool was deprecated:matplotlib.MatplotlibDeprecationWarning")


@pytest.fixture(scope="module")
def semi(tmp_path_factory):
    return summary.load_run_tables(make_run(tmp_path_factory.mktemp("semi_defects")))


def _texts(fig) -> list[str]:
    """Every caption-like text of a figure: suptitle, axes titles and axis labels."""
    out = [fig._suptitle.get_text() if fig._suptitle else ""]
    for ax in fig.axes:
        out += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
    return out


# ---------------------------------------------------------------------------------------------
# Fig. 7C
# ---------------------------------------------------------------------------------------------
def _matched():
    rows = []
    for cell in ("E066", "E114"):
        for name in [f"decile_{d}" for d in range(1, 11)] + ["max_activity"]:
            rows.append(
                {
                    "cell_type": cell,
                    "provenance": SEMI_SYNTHETIC,
                    "set": name,
                    "odds_ratio": 1.5,
                    "ci_low": 0.8,
                    "ci_high": 2.5,
                    "p": 0.2,
                }  # fmt: skip
            )
    t = pd.DataFrame(rows)
    t.loc[(t["cell_type"] == "E114") & (t["set"] == "decile_3"), ["odds_ratio", "ci_low", "ci_high"]] = [
        0.0,
        np.nan,
        np.nan,
    ]
    t.loc[(t["cell_type"] == "E066") & (t["set"] == "decile_10"), "p"] = 0.0  # below double resolution
    return t


def test_fig7c_rows_in_numeric_decile_order():
    """Before: rows sorted as strings (decile_1, decile_10, decile_2, ...)."""
    fig = manuscript.fig7c_eqtl_distance_matched(_matched())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    deciles = [int(m.group(1)) for lab in labels if (m := re.search(r"decile[ _](\d+)", lab))]
    assert deciles == sorted(deciles) and deciles[:2] == [1, 1] and deciles[-1] == 10
    assert not any("decile_" in lab or "max_activity" in lab for lab in labels)  # human labels
    plt.close(fig)


def test_fig7c_marks_rows_without_an_estimable_odds_ratio():
    """Before: a row with OR 0 (or inf, NaN) showed its p-value and no point, as if it were a result."""
    fig = manuscript.fig7c_eqtl_distance_matched(_matched())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    row = [lab for lab in labels if lab.startswith("E114") and "decile 3" in lab]
    assert len(row) == 1 and "not estimable" in row[0]
    assert sum("not estimable" in lab for lab in labels) == 1
    assert any("not estimable" in t.get_text() for t in fig.axes[0].texts)  # marked in the data area too
    plt.close(fig)


def test_fig7c_p_below_resolution_is_a_bound_not_zero():
    """Before: "p=0"."""
    fig = manuscript.fig7c_eqtl_distance_matched(_matched())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    top = [lab for lab in labels if lab.startswith("E066") and "decile 10" in lab][0]
    assert "p < 1e-16" in top and not any(re.search(r"p ?= ?0\)", lab) for lab in labels)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Fig. 7A
# ---------------------------------------------------------------------------------------------
def test_fig7a_legend_is_outside_the_data_and_labels_are_human(semi):
    """Before: the legend sat inside the last panel, crossed by the benchmark lines; raw ids
    (``max_activity*``, ``pchic*``) and GTEx tissue ids as labels."""
    deciles = eqtl_table(SEMI_SYNTHETIC).assign(
        tissues=lambda t: t["tissues"].map({"liver": "Liver", "lung": "Cells_EBV-transformed_lymphocytes"})
    )
    bench = deciles.query("decile <= 3").assign(set=["max_activity", "pchic", "proximal"] * 2).drop(columns="decile")
    fig = manuscript.fig7a_eqtl_deciles(deciles, bench)
    assert all(ax.get_legend() is None for ax in fig.axes) and len(fig.legends) == 1
    fig.canvas.draw()
    box = fig.legends[0].get_window_extent()
    assert not any(box.overlaps(ax.get_window_extent()) for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any("_" in lab or lab.endswith("*") for lab in labels)
    assert {"benchmark: max-activity bin", "benchmark: pcHi-C fragments"} <= set(labels)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["E066 (liver)", "E114 (EBV-transformed lymphocytes)"]
    plt.close(fig)


def test_fig7a_decile_axis_says_how_the_loci_were_ranked():
    """Before: "decile of |predicted effect|" whatever the ranking (the default is the paper's signed
    decrease, per side of the TSS, since issue 30)."""
    deciles = eqtl_table(SEMI_SYNTHETIC)
    label = lambda t: manuscript.fig7a_eqtl_deciles(t).axes[0].get_xlabel()  # noqa: E731
    assert label(deciles.assign(ranking="decrease", per_side=True)).startswith(
        "decile of the predicted decrease\n(per side"
    )
    assert label(deciles.assign(ranking="abs", per_side=False)) == "decile of |predicted effect|\n(10 = largest)"
    assert "ranking not recorded" in label(deciles)  # a table written before the columns existed
    plt.close("all")


def test_fig7_panels_say_that_eqtls_and_gwas_are_simulated(semi):
    """Before: "SEMI-SYNTHETIC data (simulated reads, real expression)" on Fig. 7, whose eQTLs and GWAS
    are simulated as well."""
    for name in ("fig7a_eqtl_deciles", "fig7b_ldsc_bubble", "fig7c_eqtl_distance_matched"):
        fig = manuscript.draw(name, semi, None).figure
        assert "simulated reads, eQTLs and GWAS; real expression" in fig._suptitle.get_text(), name
        plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Fig. 7B
# ---------------------------------------------------------------------------------------------
def _ldsc_with_negatives():
    t = ldsc_table(SEMI_SYNTHETIC)
    t.loc[t.index[:3], "enrichment"] = [-2.0, -0.5, 0.0]
    t.loc[t.index[:3], "coefficient_z"] = [-1.5, -0.2, 0.0]
    return t


def test_fig7b_draws_negative_enrichments():
    """Before: bubble area was clip(enrichment, 0): negative (and zero) enrichments vanished."""
    t = _ldsc_with_negatives()
    fig = manuscript.fig7b_ldsc_bubble(t)
    bubbles = fig.axes[0]
    sizes = np.concatenate([c.get_sizes() for c in bubbles.collections if len(c.get_offsets())])
    offsets = np.concatenate([c.get_offsets() for c in bubbles.collections if len(c.get_offsets())])
    tests = t[t["role"] == "test"]  # notebook 80's controls are never drawn in Fig. 7B
    assert (tests["enrichment"] <= 0).sum() == 3  # the negatives and the zero are test rows
    assert len(offsets) == len(tests) and (sizes > 0).all()
    plt.close(fig)


def test_fig7b_one_trait_order_in_both_panels_and_readable_labels():
    """Before: the bubble panel listed traits bottom-up, the forest panel top-down; 6-pt labels."""
    fig = manuscript.fig7b_ldsc_bubble(_ldsc_with_negatives())
    fig.canvas.draw()
    bubbles, forest = fig.axes[0], fig.axes[1]

    def top_down(ax):
        ticks = sorted(((t.get_window_extent().y0, t.get_text()) for t in ax.get_yticklabels()), reverse=True)
        return [text for _, text in ticks]

    left = top_down(bubbles)
    right = list(dict.fromkeys(lab.split(" · ")[0] for lab in top_down(forest)))
    assert left == right
    for ax in fig.axes:
        for t in [*ax.get_xticklabels(), *ax.get_yticklabels(), ax.xaxis.label, ax.yaxis.label, ax.title]:
            if t.get_text():
                assert t.get_fontsize() >= 7, (t.get_text(), t.get_fontsize())
    assert re.search(r"colour.*FDR", fig._suptitle.get_text() + bubbles.get_title()) and "size" in bubbles.get_title()
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Fig. 6A
# ---------------------------------------------------------------------------------------------
def test_fig6a_one_row_per_region_kind_each_with_its_own_y_scale(semi):
    """Before: promoter and distal curves shared one y axis (the distal curves were flat lines at 0)."""
    fig = manuscript.draw("fig6a_perturbation_levels", semi, None).figure
    axes = np.array(fig.axes).reshape(2, -1)
    assert [a.get_title().split(":")[0] for a in axes[:, 0]] == ["promoter", "distal 2 kb regions"]
    for col in range(axes.shape[1]):
        p, d = axes[0, col], axes[1, col]
        assert not p.get_shared_y_axes().joined(p, d)
        assert np.ptp(d.get_ylim()) < np.ptp(p.get_ylim()) / 2  # the distal effects fill their own axis
    plt.close(fig)


def test_fig6a_one_fold_is_not_called_fold_averaged(semi):
    """Before: "fold-averaged ... fold models averaged (1 folds)" for a single fold model."""
    curves = effects.level_curves(semi["perturbation"].assign(n_folds=1))
    fig = manuscript.fig6a_perturbation_levels(curves)
    title = fig._suptitle.get_text()
    assert "averaged" not in title and "1 fold model" in title
    four = manuscript.fig6a_perturbation_levels(effects.level_curves(semi["perturbation"]))
    assert "mean over 4 fold models" in four._suptitle.get_text()
    by_d = effects.effect_by_distance(semi["perturbation"].assign(n_folds=1))
    assert "averaged" not in manuscript.fig6b_effect_by_distance(by_d)._suptitle.get_text()
    # Fig. 6E/F said "fold-averaged" whatever the number of fold models behind the effects
    one = effects.effect_quantiles_by_distance(semi["perturbation"].assign(n_folds=1))
    title = manuscript.fig6ef_effect_quantiles(one)._suptitle.get_text()
    assert "averaged" not in title and "1 fold model" in title
    four = effects.effect_quantiles_by_distance(semi["perturbation"])
    assert "mean over 4 fold models" in manuscript.fig6ef_effect_quantiles(four)._suptitle.get_text()
    plt.close("all")


def test_fig7c_odds_ratio_ticks_are_distinct_over_a_wide_range():
    """Before (demo, ORs from 0.05 to 200): 1-2-5 ticks over 4 decades ran into each other, "0.1" twice."""
    t = _matched()
    t.loc[t["set"] == "decile_1", ["odds_ratio", "ci_low", "ci_high"]] = [0.3, 0.04, 2.0]
    t.loc[t["set"] == "decile_10", ["odds_ratio", "ci_low", "ci_high"]] = [40.0, 9.0, 250.0]
    fig = manuscript.fig7c_eqtl_distance_matched(t)
    ax = fig.axes[0]
    fig.canvas.draw()
    lo, hi = ax.get_xlim()
    ticks = [(v, lab.get_text()) for v, lab in zip(ax.get_xticks(), ax.get_xticklabels()) if lo <= v <= hi]
    labels = [lab for _, lab in ticks]
    assert len(labels) == len(set(labels)) and 4 <= len(labels) <= 9, labels
    assert all(float(lab) == pytest.approx(v) for v, lab in ticks)  # each label is its tick's value
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Fig. 8
# ---------------------------------------------------------------------------------------------
def test_fig8_promises_eqtl_marks_only_when_it_draws_them(tmp_path):
    """Before: the x label promised "red: fine-mapped eQTLs" although notebook 60 wrote none."""
    write_attribution(tmp_path / "with.npz", "E066", SEMI_SYNTHETIC)
    locus = attribution.read_locus(tmp_path / "with.npz")
    fig = manuscript.fig8_locus_view(locus)
    red = [ln for ax in fig.axes for ln in ax.lines if ln.get_color() == "red"]
    assert len(red) == 2 * 9 and "eQTL" in fig.axes[-1].get_xlabel()
    plt.close(fig)
    data = dict(np.load(tmp_path / "with.npz"))
    data.update(eqtl_positions=np.array([], np.int64), eqtl_pip=np.array([]), eqtl_note="no eQTL tissue is matched")
    np.savez(tmp_path / "without.npz", **data)
    fig = manuscript.fig8_locus_view(attribution.read_locus(tmp_path / "without.npz"))
    assert not [ln for ax in fig.axes for ln in ax.lines if ln.get_color() == "red"]
    label = fig.axes[-1].get_xlabel()
    assert "red" not in label and "no eQTL tissue is matched" in " ".join(_texts(fig))
    plt.close(fig)


def test_fig8_prefers_a_locus_with_eqtls(tmp_path):
    """Without ``figures.locus``, the first locus file that has eQTLs in its window is drawn."""
    run = make_run(tmp_path, with_downstream=False)
    write_attribution(run / "E003" / "attribution_ENSG00000000001.npz", "E003", SEMI_SYNTHETIC)
    data = dict(np.load(run / "E003" / "attribution_ENSG00000000001.npz"))
    data["eqtl_positions"] = np.array([], np.int64)
    np.savez(run / "E003" / "attribution_ENSG00000000001.npz", **data)
    write_attribution(run / "E066" / "attribution_ENSG00000000002.npz", "E066", SEMI_SYNTHETIC)
    fig = manuscript.draw("fig8_locus_view", summary.load_run_tables(run), None).figure
    assert "E066" in fig._suptitle.get_text()
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Fig. 2B
# ---------------------------------------------------------------------------------------------
def test_fig2b_caption_counts_the_cell_states_present(semi):
    """Before: "four cell states" whatever was present; now the count, and "not testable" below two."""
    m = semi["metrics"]
    three = m[m["cell_type"] != "E004"]  # ESC, primary, cancer line
    fig = manuscript.fig2b_cell_state(three, summary.state_contrasts(three))
    right = fig.axes[1].get_title()
    assert right.startswith("3 cell states") and "four" not in " ".join(_texts(fig))
    plt.close(fig)
    one = m[m["cell_type"] == "E066"]
    fig = manuscript.fig2b_cell_state(one, summary.state_contrasts(one))
    assert "not testable" in fig.axes[1].get_title() and "1 cell state" in fig.axes[1].get_title()
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# every panel: plain-English titles, file names that follow the paper
# ---------------------------------------------------------------------------------------------
def test_titles_and_axis_labels_are_plain_english(semi):
    """Before: column names such as ``pearson_r`` in titles ("pearson_r · test split ...")."""
    snake = re.compile(r"\b[a-z0-9]+_[a-z0-9_]+\b")
    for panel in manuscript.PANELS:
        d = manuscript.draw(panel, semi, None)
        assert d.figure is not None, d.note
        for text in _texts(d.figure):
            assert not snake.search(text), (panel.name, text)
            assert "pearson r" not in text, (panel.name, text)
        plt.close(d.figure)


def test_file_names_follow_the_paper_panels():
    """Before: ``fig4b_distal_gain`` held the paper's Fig. 4C."""
    for p in manuscript.PANELS:
        fig_no, letters = re.match(r"fig(\d+)([a-z]*)_", p.name).groups()
        m = re.match(r"Fig\. (\d+)([A-Z/]*)", p.paper)  # "Fig. 6E/F" -> fig6ef
        assert m and m.group(1) == fig_no, p.name
        if not p.beyond_paper:
            assert letters == m.group(2).replace("/", "").lower(), (p.name, p.paper)
    several = [p for p in manuscript.PANELS if p.note]
    assert {"fig2b_cell_state", "fig4c_distal_gain", "fig7b_ldsc_bubble"} <= {p.name for p in several}


def test_figure_index_notes_files_that_hold_two_panels(semi):
    drawn = [manuscript.draw(p, semi, None) for p in manuscript.PANELS]
    index = manuscript.index_markdown(drawn, semi, "run")
    assert "| note |" in index and "two panels" in index
    plt.close("all")


# ---------------------------------------------------------------------------------------------
# per-run QC plots
# ---------------------------------------------------------------------------------------------
def test_training_curves_have_integer_epoch_ticks():
    """Before: epoch ticks at 1.25, 1.5, 1.75 for a two-epoch run."""
    history = pd.DataFrame(
        {
            "epoch": [1, 2, 1, 2],
            "val_loss": [3.0, 2.0, 4.0, 3.5],
            "train_loss": 1.0,
            "marks": "H3K4me3",
            "fold": [1, 1, 2, 2],
            "best_epoch": 2,
        }  # fmt: skip
    )
    fig = panels.plot_training_curves(history, SEMI_SYNTHETIC)
    fig.canvas.draw()
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
    plt.close(fig)


def _naive_markers_dodged(fig, ax, bar_centres):
    """The naive-baseline markers sit beside the bars, apart from each other (display units)."""
    fig.canvas.draw()
    to_px = ax.transData.transform
    naive = [c for c in ax.collections if c.get_label().startswith("naive")]
    assert len(naive) >= 2
    half_bar = max(p.get_width() for p in ax.patches if p.get_height() != 0) / 2
    for centre in bar_centres:
        xs = []
        for c in naive:
            off = c.get_offsets()
            x = off[(off[:, 0] > centre) & (off[:, 0] < centre + 1), 0]  # this mark's marker of the flank
            assert len(x) == 1
            xs.append(to_px((x[0], 0))[0])
        radius = np.sqrt(naive[0].get_sizes()[0]) * fig.dpi / 72 / 2
        assert np.min(np.diff(sorted(xs))) >= 2 * radius  # markers do not overlap each other
        assert min(xs) - radius >= to_px((centre + half_bar, 0))[0]  # nor the bar


def test_promoter_performance_has_a_neutral_bar_swatch_and_dodged_naive_markers():
    """Before: the legend's bar swatch took the first mark's colour; the naive markers overlapped."""
    from chromexp.constants import MARKS

    rows = []
    for k, mark in enumerate(MARKS):  # all seven: the demo's figure, where the markers overlapped
        for fold in (1, 2, 3, 4):
            rows.append({"cell_type": "E003", "model": "promoter_cnn", "marks": mark, "scheme": "chrom_folds",
                         "fold": fold, "split": "test", "n_genes": 9, "metric": "pearson_r", "value": 0.7 - 0.05 * k})  # fmt: skip
            for flank in (750, 1500, 3000):
                rows.append({"cell_type": "E003", "model": f"naive_tss{flank}", "marks": mark, "scheme": "chrom_folds",
                             "fold": fold, "split": "test", "n_genes": 9, "metric": "abs_pearson_r", "value": 0.3})  # fmt: skip
    fig = panels.plot_promoter_performance(pd.DataFrame(rows), SEMI_SYNTHETIC)
    ax = fig.axes[0]
    legend = ax.get_legend()
    swatch = [h for h, t in zip(legend.legend_handles, legend.get_texts()) if "mean of folds" in t.get_text()][0]
    r, g, b, _ = swatch.get_facecolor()
    assert np.isclose(r, g) and np.isclose(g, b)  # grey, not a mark's colour
    assert "promoter_cnn" not in " ".join(t.get_text() for t in legend.get_texts())
    _naive_markers_dodged(fig, ax, range(len(MARKS)))
    plt.close(fig)


def test_manuscript_fig1a_dodges_the_naive_markers(semi):
    fig = manuscript.draw("fig1a_promoter_by_mark", semi, None).figure
    _naive_markers_dodged(fig, fig.axes[0], [0, 1, 2])
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# issue 29: notebook 90 validates every table against its schema before drawing
# ---------------------------------------------------------------------------------------------
def test_a_table_without_a_required_column_is_not_drawn_from(tmp_path):
    """Before: with one cell type's effects table lacking ``effect``, Fig. 6 was drawn (from the others)."""
    run = make_run(tmp_path)
    t = pd.read_csv(run / "E004" / effects.EFFECTS_FILE, sep="\t")
    write_table(t.drop(columns="effect"), run / "E004" / effects.EFFECTS_FILE)
    tables = summary.load_run_tables(run)
    assert set(tables.invalid) == {"perturbation"} and "E004" in tables.invalid["perturbation"][0]
    for name in ("fig6a_perturbation_levels", "fig6b_effect_by_distance"):
        d = manuscript.draw(name, tables, tmp_path / "figs")
        assert d.figure is None and d.status == "skipped"
        assert "E004/perturbation_effects.tsv.gz" in d.note and "'effect'" in d.note
    assert not (tmp_path / "figs" / "fig6a_perturbation_levels.svg").exists()
    inv = tables.inventory().set_index("table")
    assert inv.loc["perturbation", "schema"] != "ok" and inv.loc["metrics", "schema"] == "ok"


def test_every_run_table_is_checked_against_its_documented_columns(tmp_path):
    run = make_run(tmp_path)
    t = pd.read_csv(run / "eqtl" / "eqtl_deciles.tsv", sep="\t")
    write_table(t.drop(columns="q"), run / "eqtl" / "eqtl_deciles.tsv")
    t = pd.read_csv(run / "E003" / "metrics.tsv", sep="\t")
    write_table(t.drop(columns="fold"), run / "E003" / "metrics.tsv")
    tables = summary.load_run_tables(run)
    assert set(tables.invalid) == {"eqtl_deciles", "metrics"}
    d = manuscript.draw("fig7a_eqtl_deciles", tables, None)
    assert d.figure is None and "eqtl_deciles.tsv" in d.note and "'q'" in d.note
    d = manuscript.draw("fig1a_promoter_by_mark", tables, None)
    assert d.figure is None and "E003/metrics.tsv" in d.note


# ---------------------------------------------------------------------------------------------
# issue 29: notebook 70 refuses a test of zero eQTLs, naming the filter
# ---------------------------------------------------------------------------------------------
def _eqtls(tissue="Liver", pip=0.95, genes=("g0", "g1")):
    n = len(genes)
    return pd.DataFrame(
        {
            "tissue": tissue,
            "gene_id": list(genes),
            "gene": [f"{g}.1" for g in genes],
            "variant": [f"v{i}" for i in range(n)],
            "chrom": "chr1",
            "pos": [1_001_000 + 10 * i for i in range(n)],
            "ref": "A",
            "alt": "G",
            "pip": pip,
            "line": np.arange(n) + 2,
        }  # fmt: skip
    )


def _loci():
    return pd.DataFrame(
        {
            "cell_type": "E066",
            "provenance": SEMI_SYNTHETIC,
            "gene_id": ["g0", "g1"],
            "region": "distal_00",
            "position": 0,
            "distance": -19000,
            "chrom": "chr1",
            "start": [1_000_000, 5_000_000],
            "end": [1_002_000, 5_002_000],
            "effect": [-1.0, -0.1],
        }  # fmt: skip
    )


def _lifted(eqtls):
    return eqtls.assign(chrom_hg19=eqtls["chrom"], pos_hg19=eqtls["pos"] - 1)


@pytest.mark.parametrize(
    ("eqtls", "tissues", "lifted", "step"),
    [
        (_eqtls().iloc[:0], ["Liver"], None, "rows_in_table"),
        (_eqtls(), ["Livre"], None, "rows_in_tissues"),  # a misspelt tissue
        (_eqtls(pip=0.5), ["Liver"], None, "tissue_unique"),
        (_eqtls(), ["Liver"], "nothing", "lifted_to_hg19"),  # a chain that lifts nothing
        (_eqtls(genes=("x0", "x1")), ["Liver"], None, "of_tested_genes"),
    ],
)
def test_zero_tested_eqtls_is_an_error_naming_the_filter(eqtls, tissues, lifted, step):
    """Before: notebook 70 reported p = 1 ("no enrichment") for every decile when it tested no eQTL."""
    lifted = _lifted(eqtls).iloc[:0] if lifted == "nothing" else _lifted(eqtls)
    per_cell, counts = enrichment.eqtls_by_cell_type(eqtls, lifted, {"E066": tissues})
    has, counts = enrichment.loci_with_eqtls(_loci(), per_cell, counts)
    assert not has.any()
    with pytest.raises(ValueError, match=rf"E066 .*no eQTL to test after the filter '{step}'.*rows_in_table"):
        enrichment.check_tested(counts)


def test_tested_eqtls_pass_the_check_and_are_counted():
    eqtls = _eqtls()
    per_cell, counts = enrichment.eqtls_by_cell_type(eqtls, _lifted(eqtls), {"E066": ["Liver"]})
    has, counts = enrichment.loci_with_eqtls(_loci(), per_cell, counts)
    enrichment.check_tested(counts)
    assert has.tolist() == [True, False]
    assert counts.iloc[0][
        ["rows_in_table", "tissue_unique", "of_tested_genes", "in_tested_loci", "loci_with_eqtl"]
    ].tolist() == [2, 2, 2, 1, 1]


def test_a_pip_threshold_outside_zero_one_is_refused():
    eqtls = _eqtls()
    with pytest.raises(ValueError, match=r"eqtl.pip_in must be .* \[0, 1\]; got 1.5"):
        enrichment.eqtls_by_cell_type(eqtls, _lifted(eqtls), {"E066": ["Liver"]}, pip_in=1.5)


def test_style_metric_labels_are_plain_english():
    assert style.metric_label("pearson_r") == "Pearson r" and style.metric_label("abs_pearson_r") == "|Pearson r|"
    assert style.metric_label("something_new") == "something new"
    assert CELLS  # the fixture module is shared with test_figures
