"""Cross-gene and cross-celltype metrics (Mittal 2025): brute-force oracles, masking, the nulls and baselines."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chromexp import metrics
from chromexp.results import METRIC_COLUMNS, NO_MARKS, validate


@pytest.fixture
def rng():
    return np.random.default_rng(11)


def _brute(y, p, fn):
    out = []
    for a, b in zip(y, p, strict=True):
        if np.ptp(a) == 0:
            out.append(np.nan)
        elif np.ptp(b) == 0:
            out.append(0.0)
        else:
            out.append(fn(a, b)[0])
    return np.array(out)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_per_gene_correlations_equal_scipy_row_by_row(rng, method):
    y = rng.normal(size=(300, 5))
    p = 0.5 * y + rng.normal(size=(300, 5))
    y[:10] = np.round(y[:10])  # ties within rows: average ranks, as scipy
    y[10] = 2.0  # constant observed: masked
    p[11] = 1.5  # constant prediction: scored 0, counted
    res = metrics.cross_celltype_correlations(y, p, method)
    ref = _brute(y, p, stats.spearmanr if method == "spearman" else stats.pearsonr)
    np.testing.assert_allclose(res["r"], ref, atol=1e-12, equal_nan=True)
    assert res["masked"].sum() == 1 and res["masked"][10]
    assert res["constant_prediction"].sum() == 1 and res["constant_prediction"][11]


def test_correlations_validate_their_input():
    with pytest.raises(ValueError, match="same genes"):
        metrics.cross_celltype_correlations(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="at least 2 cell types"):
        metrics.cross_celltype_correlations(np.ones((3, 1)), np.ones((3, 1)))
    with pytest.raises(ValueError, match="non-finite"):
        metrics.cross_celltype_correlations(np.full((2, 3), np.nan), np.ones((2, 3)))
    with pytest.raises(ValueError, match="genes, cell types"):
        metrics.cross_celltype_correlations(np.ones(3), np.ones(3))


def test_centred_pearson_equals_pooled_pearson_of_centred_values(rng):
    y = rng.normal(size=(50, 4)) + rng.normal(size=(50, 1)) * 5
    p = y + rng.normal(size=(50, 4))
    y[3] = 1.0
    keep = np.ones(50, bool)
    keep[3] = False
    yc = (y - y.mean(1, keepdims=True))[keep].ravel()
    pc = (p - p.mean(1, keepdims=True))[keep].ravel()
    assert metrics.centred_pearson(y, p) == pytest.approx(stats.pearsonr(yc, pc)[0], abs=1e-12)
    # adding any per-gene offset to the prediction changes nothing (the cross-gene axis is removed)
    assert metrics.centred_pearson(y, p + rng.normal(size=(50, 1)) * 100) == pytest.approx(
        metrics.centred_pearson(y, p), abs=1e-9
    )


def test_permutation_null_is_centred_and_separates_a_planted_model(rng):
    y = rng.normal(size=(400, 4))
    good = metrics.cross_celltype_permutation_null(y, y + rng.normal(size=y.shape), n_permutations=200, seed=3)
    assert good["observed"] > good["null_q95"] and good["p"] == pytest.approx(1 / 201)
    # exchangeable under the null: the exact mean over all 24 permutations of each gene is 0
    assert abs(good["null_mean"]) < 4 * good["null"].std() / np.sqrt(200) + 0.01
    noise = metrics.cross_celltype_permutation_null(y, rng.normal(size=y.shape), n_permutations=200, seed=3)
    assert noise["p"] > 0.01


def test_permutation_null_exact_mean_by_enumeration():
    # with every permutation of 3 cell types enumerated, each gene's correlations sum to 0
    y = np.array([[1.0, 2.0, 4.0], [3.0, 1.0, 0.0]])
    p = np.array([[0.5, 0.7, 0.2], [1.0, 2.0, 3.0]])
    for method in ("spearman", "pearson"):
        perms = np.array(list(itertools.permutations(range(3))))
        rs = [metrics.cross_celltype_correlations(y, p[:, perm], method)["r"] for perm in perms]
        np.testing.assert_allclose(np.mean(rs, axis=0), 0.0, atol=1e-12)


def test_permutation_null_is_seeded_and_independent_of_chunking(rng):
    y, p = rng.normal(size=(60, 4)), rng.normal(size=(60, 4))
    a = metrics.cross_celltype_permutation_null(y, p, n_permutations=50, seed=5, chunk=7)
    b = metrics.cross_celltype_permutation_null(y, p, n_permutations=50, seed=5, chunk=50)
    c = metrics.cross_celltype_permutation_null(y, p, n_permutations=50, seed=6)
    np.testing.assert_array_equal(a["null"], b["null"])
    assert not np.array_equal(a["null"], c["null"])


def test_permutation_null_refuses_all_masked():
    with pytest.raises(ValueError, match="constant across"):
        metrics.cross_celltype_permutation_null(np.ones((5, 3)), np.zeros((5, 3)))


def test_mean_of_other_cell_types_brute_force_and_anticorrelated(rng):
    y = rng.normal(size=(20, 4))
    base = metrics.mean_of_other_cell_types(y)
    for g, t in itertools.product(range(20), range(4)):
        assert base[g, t] == pytest.approx(np.delete(y[g], t).mean())
    r = metrics.cross_celltype_correlations(y, base, "pearson")["r"]
    np.testing.assert_allclose(r, -1.0)


def _predictions(rng, cells=("E003", "E066", "E114"), n=40, noise=0.5):
    genes = [f"G{i:03d}" for i in range(n)]
    fold = {g: 1 + i % 4 for i, g in enumerate(genes)}
    rows = []
    level = rng.normal(size=n) * 2
    for c in cells:
        y = level + rng.normal(size=n)
        for model in ("m1", "m2"):
            p = y + rng.normal(size=n) * (noise if model == "m1" else 5 * noise)
            rows.append(
                pd.DataFrame(
                    {
                        "cell_type": c,
                        "model": model,
                        "marks": "H3K4me3",
                        "fold": [fold[g] for g in genes],
                        "gene_id": genes,
                        "observed": y,
                        "predicted": p,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_cross_gene_metrics_per_cell_type_and_fold(rng):
    pred = _predictions(rng)
    table = metrics.cross_gene_metrics(pred)
    validate(table, METRIC_COLUMNS, "metrics")
    assert set(table["metric"]) == set(metrics.CROSS_GENE_METRICS)
    sel = pred[(pred["cell_type"] == "E066") & (pred["model"] == "m2") & (pred["fold"] == 3)]
    got = table.set_index(["cell_type", "model", "fold", "metric"])["value"]
    assert got[("E066", "m2", 3, "cross_gene_spearman")] == pytest.approx(
        stats.spearmanr(sel["observed"], sel["predicted"])[0]
    )
    assert got[("E066", "m2", 3, "cross_gene_pearson")] == pytest.approx(
        stats.pearsonr(sel["observed"], sel["predicted"])[0]
    )
    assert (table["n_genes"] == 10).all()


def test_cross_celltype_metrics_per_gene_masking_and_counts(rng):
    pred = _predictions(rng)
    const = pred["gene_id"] == "G005"
    pred.loc[const, "observed"] = 3.0  # constant across cell types: masked and counted
    pred = pred[~((pred["gene_id"] == "G006") & (pred["cell_type"] == "E114"))]  # one cell type missing
    per_gene, table = metrics.cross_celltype_metrics(pred, n_permutations=100, seed=1)
    validate(table, METRIC_COLUMNS, "metrics")
    assert (table["cell_type"] == metrics.ALL_CELL_TYPES).all()
    t = table.set_index(["model", "fold", "metric"])["value"]
    assert t[("m1", 2, "n_genes_masked")] == 1  # G005 is in fold 2 (index 5)
    assert t[("m1", 3, "n_genes_incomplete")] == 1  # G006 is in fold 3
    assert t[("m1", 1, "n_cell_types")] == 3
    g = per_gene[(per_gene["model"] == "m1") & (per_gene["fold"] == 1)]
    assert t[("m1", 1, "cross_celltype_spearman")] == pytest.approx(g["cross_celltype_spearman"].mean())
    assert per_gene.loc[per_gene["gene_id"] == "G005", "masked"].all()
    assert per_gene.loc[per_gene["gene_id"] == "G005", "cross_celltype_spearman"].isna().all()
    assert "G006" not in set(per_gene["gene_id"])
    # the better model is better on this axis, and beats its null
    m1 = table[(table["model"] == "m1") & (table["metric"] == "cross_celltype_pearson")]["value"].mean()
    m2 = table[(table["model"] == "m2") & (table["metric"] == "cross_celltype_pearson")]["value"].mean()
    assert m1 > m2
    # a gene is scored with the predictions of its own fold: brute force for one gene
    one = pred[(pred["gene_id"] == "G001") & (pred["model"] == "m1")].sort_values("cell_type")
    got = per_gene[(per_gene["gene_id"] == "G001") & (per_gene["model"] == "m1")]["cross_celltype_pearson"]
    assert float(got.iloc[0]) == pytest.approx(stats.pearsonr(one["observed"], one["predicted"])[0])


def test_cross_celltype_refuses_duplicates_and_empty(rng):
    pred = _predictions(rng)
    with pytest.raises(ValueError, match="same"):
        metrics.cross_celltype_metrics(pd.concat([pred, pred.head(1)]), n_permutations=5)
    with pytest.raises(ValueError, match="empty"):
        metrics.cross_celltype_metrics(pred.head(0), n_permutations=5)
    one_cell = pred[pred["cell_type"] == "E003"]
    with pytest.raises(ValueError, match="2 cell types"):
        metrics.cross_celltype_metrics(one_cell, n_permutations=5)


def test_mean_other_predictions_table(rng):
    pred = _predictions(rng)
    obs = pred[pred["model"] == "m1"][["cell_type", "fold", "gene_id", "observed"]]
    base = metrics.mean_other_predictions(obs)
    assert set(base["model"]) == {metrics.MEAN_OTHER_MODEL} and set(base["marks"]) == {NO_MARKS}
    row = base[(base["gene_id"] == "G002") & (base["cell_type"] == "E066")].iloc[0]
    others = obs[(obs["gene_id"] == "G002") & (obs["cell_type"] != "E066")]["observed"].mean()
    assert row["predicted"] == pytest.approx(others)
    assert row["fold"] == 3
    table = metrics.cross_gene_metrics(base)
    assert set(table["marks"]) == {NO_MARKS}


@pytest.mark.parametrize("n_cells", [3, 8])
def test_permutation_null_draws_equal_brute_force(rng, n_cells, monkeypatch):
    """Each null draw is the mean over genes of the correlation under one permutation per gene (both code paths)."""
    y = np.round(rng.normal(size=(40, n_cells)), 1)  # ties: average ranks
    p = y + rng.normal(size=y.shape)
    for method, fn in (("spearman", stats.spearmanr), ("pearson", stats.pearsonr)):
        got = metrics.cross_celltype_permutation_null(y, p, method=method, n_permutations=30, seed=2)
        # the same draws, recomputed by brute force from the same random stream
        gen = np.random.default_rng(2)
        if n_cells <= metrics.MAX_ENUMERATED_CELL_TYPES:
            perms = np.array(list(itertools.permutations(range(n_cells))))
            orders = perms[gen.integers(0, len(perms), size=(30, 40))]
        else:
            orders = np.argsort(gen.random((30, 40, n_cells)), axis=-1)
        brute = [np.mean([fn(y[g], p[g][orders[b, g]])[0] for g in range(40)]) for b in range(30)]
        np.testing.assert_allclose(got["null"], brute, atol=1e-12)


def test_enumerated_and_sorted_nulls_agree_in_distribution(rng, monkeypatch):
    y = rng.normal(size=(300, 4))
    p = y + 2 * rng.normal(size=y.shape)
    a = metrics.cross_celltype_permutation_null(y, p, n_permutations=400, seed=1)
    monkeypatch.setattr(metrics, "MAX_ENUMERATED_CELL_TYPES", 0)
    b = metrics.cross_celltype_permutation_null(y, p, n_permutations=400, seed=1)
    assert not np.array_equal(a["null"], b["null"])
    assert abs(a["null"].mean() - b["null"].mean()) < 0.01 and abs(a["null"].std() / b["null"].std() - 1) < 0.2
