"""Notebook 55's recipes: multi-cell data, ExPecto and hierarchical-CNN runs, both-axes scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from chromexp import metrics, results
from chromexp.experiments import cross_celltype as xc
from chromexp.experiments import hierarchical as hier

CELLS = ["E003", "E066", "E114"]
CHROMS = [f"chr{i}" for i in range(1, 23)]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def planted(n_genes=240, seed=0) -> hier.CellsData:
    """Synthetic cells: expression = gene level + a cell-specific term read off H3K4me3 at the TSS."""
    from chromexp.constants import CHROM_FOLD, MARKS

    rng = np.random.default_rng(seed)
    chrom = rng.choice(CHROMS, n_genes)
    genes = pd.DataFrame(
        {"gene_id": [f"G{i:04d}" for i in range(n_genes)], "chrom": chrom, "fold": [CHROM_FOLD[c] for c in chrom]}
    )
    x = rng.gamma(0.5, 0.5, size=(n_genes, len(CELLS), 7, 200)).astype(np.float32)
    level = rng.normal(3, 1.5, size=(n_genes, 1))
    cell = rng.normal(0, 1, size=(n_genes, len(CELLS)))
    k4 = MARKS.index("H3K4me3")
    x[:, :, k4, 95:105] += np.clip(cell + 1.5, 0, None)[..., None].astype(np.float32)
    x[:, :, MARKS.index("H3K36me3"), 100:160] += np.clip(level / 3, 0, None)[..., None].astype(np.float32)
    y = level + cell + 0.2 * rng.normal(size=(n_genes, len(CELLS)))
    y[0] = 1.0  # one gene constant across the cell types (masked)
    return hier.CellsData(
        cell_types=list(CELLS),
        marks=list(MARKS),
        genes=genes,
        x=x,
        y=y,
        bin_size=200,
        target="log2p1",
        provenance="semi-synthetic",
        excluded=pd.DataFrame({"cell_type": CELLS, "n_genes_not_in_all": 0}),
    )


def _params(**cnn):
    cfg = dict(
        channels=4,
        kernel_size=3,
        pool_size=2,
        n_blocks=7,
        lr=[1.0e-2],
        dropout=[0.0],
        max_epochs=2,
        variants=["multi_tissue"],
        hybrid_variant="multi_tissue",
        hybrid_grid=[[0.0, 1.0]],
        folds=None,
        checkpoints=False,
    )
    cfg.update(cnn)
    train = dict(
        lr=1.0e-3,
        batch_size=32,
        max_epochs=100,
        lr_factor=0.2,
        lr_patience=3,
        min_lr=1.0e-6,
        early_stopping_patience=12,
        mixed_precision=False,
    )
    return {"seed": 0, "device": "cpu", "train": train, "model": {"hierarchical_cnn": cfg}}


def test_split_is_the_dataset_rule_on_the_shared_genes():
    data = planted()
    for fold in (1, 2, 3, 4):
        s = data.split(fold)
        allg = np.concatenate([s["train"], s["validation"], s["test"]])
        assert np.array_equal(np.sort(allg), np.arange(len(data.genes)))  # disjoint and covering
        assert (data.genes["fold"].to_numpy()[s["test"]] == fold).all()
        assert not set(data.genes["chrom"].to_numpy()[s["validation"]]) & set(data.genes["chrom"].to_numpy()[s["test"]])


def test_expecto_matched_recovers_the_planted_cell_signal():
    data = planted()
    pred, sel = hier.run_expecto(data, "matched", [1, 2, 3, 4])
    assert set(pred["model"]) == {"expecto_matched"} and set(pred["scheme"]) == {"chrom_folds"}
    assert len(pred) == len(data.genes) * len(CELLS)  # each gene once per cell type, in its test fold
    hier.check_predictions(pred, data, [1, 2, 3, 4], [1])
    per_gene, table = metrics.cross_celltype_metrics(pred, CELLS, n_permutations=50)
    t = table[table["metric"] == "cross_celltype_pearson"]
    q = table[table["metric"] == "cross_celltype_pearson_null_q95"]
    assert (t["value"].to_numpy() > q["value"].to_numpy()).all()
    assert per_gene.loc[per_gene["gene_id"] == "G0000", "masked"].all()
    # one α chosen per (cell type, fold), 15 tried
    assert sel.groupby(["cell_type", "fold"])["chosen"].sum().eq(1).all() and len(sel) == 15 * 12


def test_expecto_all_cells_and_leave_one_out():
    data = planted()
    pred, _ = hier.run_expecto(data, "all_cells", [1], alphas=[1.0, 10.0])
    assert set(pred["cell_type"]) == set(CELLS)
    loco, sel = hier.run_expecto(data, "matched", [1, 2], alphas=[1.0], held_out="E066")
    assert set(loco["cell_type"]) == {"E066"} and set(loco["scheme"]) == {"leave_one_cell_type_out"}
    assert set(sel["held_out"]) == {"E066"}
    with pytest.raises(ValueError, match="Only the matched"):
        hier.run_expecto(data, "all_cells", [1], held_out="E066")


def test_expecto_leave_one_out_never_reads_the_held_out_cell_type():
    data = planted()
    a, _ = hier.run_expecto(data, "matched", [1], alphas=[1.0], held_out="E066")
    changed = planted()
    changed.y[:, 1] = np.random.default_rng(9).normal(size=len(changed.genes))  # E066's targets scrambled
    b, _ = hier.run_expecto(changed, "matched", [1], alphas=[1.0], held_out="E066")
    np.testing.assert_allclose(a["predicted"], b["predicted"])


@pytest.mark.parametrize("variant", ["single_tissue", "multi_tissue", "matched_shared"])
def test_cnn_variants_predict_every_test_gene_of_every_cell_type(variant):
    data = planted(n_genes=160)
    r = hier.run_cnn(data, _params(), variant, [1], device="cpu")
    hier.check_predictions(r.predictions, data, [1, 2, 3, 4], [1])
    assert set(r.predictions["cell_type"]) == set(CELLS)
    n_nets = len(CELLS) if variant == "single_tissue" else 1
    assert len(r.selection) == n_nets and r.selection["chosen"].all()


def test_cnn_is_seeded_and_resumes_from_checkpoints(tmp_path):
    data = planted(n_genes=160)
    a = hier.run_cnn(data, _params(), "multi_tissue", [1], alpha=10.0, beta=1.0, device="cpu", checkpoint_dir=tmp_path)
    b = hier.run_cnn(data, _params(), "multi_tissue", [1], alpha=10.0, beta=1.0, device="cpu", checkpoint_dir=tmp_path)
    assert a.reused == 0 and b.reused == 1 and b.gene_epochs == 0
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    c = hier.run_cnn(data, _params(), "multi_tissue", [1], alpha=10.0, beta=1.0, device="cpu")
    np.testing.assert_allclose(a.predictions["predicted"], c.predictions["predicted"], rtol=1e-5, atol=1e-6)
    assert set(a.predictions["model"]) == {"hcnn_multi_tissue_a10_b1"}


def test_cnn_grid_search_keeps_the_lowest_validation_loss():
    data = planted(n_genes=160)
    r = hier.run_cnn(data, _params(lr=[1.0e-4, 1.0e-2]), "matched_shared", [2], device="cpu")
    sel = r.selection
    assert len(sel) == 2 and sel["chosen"].sum() == 1
    assert sel.loc[sel["chosen"], "best_val_loss"].iloc[0] == sel["best_val_loss"].min()


def test_cnn_leave_one_out_and_refusals():
    data = planted(n_genes=160)
    r = hier.run_cnn(data, _params(), "matched_shared", [1], held_out="E114", device="cpu")
    assert set(r.predictions["cell_type"]) == {"E114"}
    assert set(r.predictions["scheme"]) == {"leave_one_cell_type_out"}
    with pytest.raises(ValueError, match="Only matched_shared"):
        hier.run_cnn(data, _params(), "multi_tissue", [1], held_out="E114")
    with pytest.raises(ValueError, match="single_tissue has one output"):
        hier.run_cnn(data, _params(), "single_tissue", [1], alpha=100.0)


def test_axes_summary_puts_the_baseline_on_the_same_genes():
    data = planted()
    pred, _ = hier.run_expecto(data, "matched", [1, 2, 3, 4], alphas=[1.0])
    pred = pd.concat([pred, pred[pred["fold"] == 1].assign(model="other_model")], ignore_index=True)
    base = metrics.mean_other_predictions(data.observed_table())
    summary, tidy, per_gene = xc.axes_summary(pred, base, CELLS, n_permutations=50)
    results.validate(tidy, results.METRIC_COLUMNS, "metrics")
    s = summary.set_index("model")
    # the fold-1-only model's baseline is computed on fold 1's genes only
    fold1 = base[base["fold"] == 1]
    want = np.mean([metrics.spearman_rho(g["observed"], g["predicted"]) for _, g in fold1.groupby("cell_type")])
    assert s.loc["other_model", "baseline_cross_gene_spearman"] == pytest.approx(want)
    assert s.loc["expecto_matched", "cross_celltype_spearman"] > s.loc["expecto_matched", "null_spearman_q95"]
    assert s.loc["expecto_matched", "n_genes_masked"] == 1
    assert s.loc["expecto_matched", "n_genes"] == len(data.genes) - 1


def test_read_run_predictions_leaves_out_classifiers_and_unshared_genes(tmp_path):
    for c in CELLS[:2]:
        rows = pd.DataFrame(
            {
                "cell_type": c,
                "model": "promoter_cnn",
                "marks": "H3K4me3",
                "fold": 1,
                "gene_id": ["G1", "G2", "G3"],
                "observed": [1.0, 2.0, 3.0],
                "predicted": [1.0, 2.5, 2.0],
            }
        )
        clf = rows.assign(model="chromoformer_clf", label=[0, 1, 1], probability=[0.1, 0.8, 0.7])
        results.save_predictions(pd.concat([rows, clf], ignore_index=True), tmp_path / c, provenance="semi-synthetic")
    pred, report = xc.read_run_predictions(tmp_path, CELLS, ["G1", "G2"])
    assert set(pred["model"]) == {"promoter_cnn"} and set(pred["gene_id"]) == {"G1", "G2"}
    assert "(none)" in set(report["model"])  # E114 has no table: reported, not silently skipped
    assert report.loc[report["model"] == "chromoformer_clf", "kept"].sum() == 0


def test_answer_is_written_from_the_numbers():
    data = planted()
    pred, _ = hier.run_expecto(data, "matched", [1, 2, 3, 4], alphas=[1.0])
    base = metrics.mean_other_predictions(data.observed_table())
    summary, _, _ = xc.axes_summary(pred, base, CELLS, n_permutations=20)
    text = xc.answer(summary, None, None, len(CELLS), "semi-synthetic")
    assert "semi-synthetic" in text and "coarse" in text
    assert f"{summary['cross_celltype_spearman'].iloc[0]:.3f}" in text


def test_common_folds_are_the_folds_every_model_has():
    rows = pd.DataFrame(
        {"scheme": "chrom_folds", "model": ["a", "a", "b", "b", "c"], "marks": "H3K4me3", "fold": [1, 2, 1, 3, 1]}
    )
    assert xc.common_folds(rows) == [1]
    assert xc.common_folds(rows[rows["model"] != "c"]) == [1]
    assert xc.common_folds(rows[rows["model"] == "a"]) == [1, 2]


def test_load_cells_on_the_smoke_stores(smoke_params, smoke_dataset, session_dirs):
    """Two real-format stores → shared genes, exactly merged 200-bp bins, targets and folds of each store."""
    from chromexp import config
    from chromexp.baselines import expecto
    from chromexp.data import dataset

    over = {"paths": {k: str(v) for k, v in session_dirs.items()}}
    p116 = config.load_params("E116", files=["params/smoke.yaml"], overrides=over)
    dataset.build_dataset(p116, "E116")
    data = hier.load_cells({"E003": smoke_params, "E116": p116})
    e116 = dataset.load_dataset(p116, "E116")
    assert data.x.shape == (len(data.genes), 2, 7, 200) and data.provenance == "semi-synthetic"
    assert set(data.genes["gene_id"]) == set(smoke_dataset.genes["gene_id"]) & set(e116.genes["gene_id"])
    pos = pd.Index(e116.genes["gene_id"]).get_indexer(data.genes["gene_id"])
    want = expecto.merge_bins(e116.promoter(resolution=100, half_window=20_000)[pos], 2)
    np.testing.assert_array_equal(data.x[:, 1], want)
    np.testing.assert_allclose(data.y[:, 1], e116.genes["target"].to_numpy()[pos])
    assert (data.excluded["n_genes_not_in_all"] >= 0).all()
    ln = hier.load_cells({"E003": smoke_params, "E116": p116}, target="ln_pc", bin_size=100)
    assert ln.x.shape[-1] == 400
    np.testing.assert_allclose(ln.y[:, 1], np.log(e116.genes["rpkm"].to_numpy()[pos] + 1e-4))
    with pytest.raises(ValueError, match="at least 2 cell types"):
        hier.load_cells({"E003": smoke_params})
