"""Notebook 55's panels: structure (artists, labels, the data they state), not pixels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from chromexp.plots import cross_celltype as pc


@pytest.fixture
def curve():
    return pd.DataFrame(
        {
            "alpha": [0.0, 1.0, 10.0, 100.0, 1000.0, 1.0],
            "beta": [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            "cross_gene_spearman": [0.8, 0.79, 0.75, 0.7, 0.5, 0.3],
            "baseline_cross_gene_spearman": [0.74] * 6,
            "cross_celltype_spearman": [0.3, 0.35, 0.42, 0.46, 0.4, 0.41],
            "cross_celltype_spearman_sem": [0.02] * 6,
            "null_spearman_q95": [0.04] * 6,
            "folds": ["1"] * 6,
        }
    )


@pytest.fixture
def summary():
    return pd.DataFrame(
        {
            "family": ["promoter CNN (30)", "ExPecto ridge (55)", "hierarchical CNN (55)"],
            "model": ["promoter_cnn", "expecto_matched", "hcnn_multi_tissue"],
            "marks": ["H3K4me3", "H3K27ac+H3K4me3", "H3K27ac+H3K4me3"],
            "cross_gene_spearman": [0.7, 0.83, 0.77],
            "baseline_cross_gene_spearman": [0.74, 0.74, 0.73],
            "cross_celltype_spearman": [0.2, 0.55, 0.31],
            "null_spearman_q95": [0.04, 0.03, 0.05],
        }
    )


def _texts(fig):
    out = [t.get_text() for t in fig.findobj(matplotlib.text.Text)]
    out += [fig._suptitle.get_text()] if fig._suptitle is not None else []
    return " ".join(out)


def test_tradeoff_draws_every_grid_point_and_says_semi_synthetic(curve):
    fig = pc.plot_hybrid_tradeoff(curve, "semi-synthetic", 4, "multi_tissue")
    left, right = fig.axes
    assert len(left.get_xticklabels()) == 6 and left.get_xticklabels()[-1].get_text() == "β = 0"
    labels = [t.get_text() for t in right.texts]
    assert labels == ["(0, 1)", "(1, 1)", "(10, 1)", "(100, 1)", "(1000, 1)", "(1, 0)"]
    text = _texts(fig)
    assert "SEMI-SYNTHETIC" in text and "4 cell types" in text
    plt.close(fig)


def test_both_axes_one_dot_per_model(summary):
    fig = pc.plot_both_axes(summary, "real", 11)
    ax = fig.axes[0]
    offsets = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(offsets) == 3
    assert "real data" in _texts(fig) and "SEMI-SYNTHETIC" not in _texts(fig)
    plt.close(fig)


def test_distribution_one_box_per_model_and_coarse_caption(summary):
    per_gene = pd.DataFrame(
        {
            "model": np.repeat(summary["model"], 50),
            "marks": np.repeat(summary["marks"], 50),
            "cross_celltype_spearman": np.random.default_rng(0).uniform(-1, 1, 150),
        }
    )
    fig = pc.plot_cross_celltype_distribution(per_gene, summary, "semi-synthetic", 4)
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 3
    assert "coarse" in _texts(fig)
    plt.close(fig)
    fig = pc.plot_cross_celltype_distribution(per_gene, summary, "semi-synthetic", 11)
    assert "coarse" not in _texts(fig)
    plt.close(fig)
