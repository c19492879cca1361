"""The promoter CNN matches docs/methods.md, "Promoter CNN": layer shapes, parameter count, 'same' padding, bins."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from chromexp import results
from chromexp.experiments import promoter_cnn as promoter_experiment
from chromexp.models import promoter_cnn
from chromexp.models.promoter_cnn import PromoterCNN


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # small batches run fastest on one thread (and the test machine is shared); restored afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _conv_params(c_in, c_out, k):
    return c_in * k * c_out + c_out


def _dense_params(n_in, n_out):
    return n_in * n_out + n_out


def _expected_parameters(n_marks):
    # layer by layer, from the architecture in docs/methods.md, "Promoter CNN" (60 bins → 15 → 7 → 3 after pooling)
    return [
        _conv_params(n_marks, 175, 8),
        _conv_params(175, 350, 4),
        _conv_params(350, 700, 4),
        _dense_params(700 * 3, 625),
        _dense_params(625, 125),
        _dense_params(125, 1),
    ]


def _layer_counts(model):
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    return [sum(p.numel() for p in m.parameters()) for m in layers]


@pytest.mark.parametrize("n_marks", [1, 2, 7])
def test_parameter_count_layer_by_layer(n_marks):
    model = PromoterCNN(n_marks=n_marks)
    assert _layer_counts(model) == _expected_parameters(n_marks)
    assert sum(p.numel() for p in model.parameters()) == sum(_expected_parameters(n_marks))


def test_one_mark_parameter_count_is_the_published_one():
    # 1,575 + 245,350 + 980,700 + 1,313,125 + 78,250 + 126
    assert sum(_expected_parameters(1)) == 2_619_126
    assert (
        sum(p.numel() for p in PromoterCNN(n_marks=1).parameters()) == promoter_cnn.N_PARAMETERS_ONE_MARK == 2_619_126
    )


@pytest.mark.parametrize("n_marks", [1, 7])
def test_layer_shapes_and_output(n_marks):
    model = PromoterCNN(n_marks=n_marks).eval()
    shapes = []
    hooks = [blk.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for blk in model.conv]
    hooks += [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
        for m in model.head
        if isinstance(m, (nn.Flatten, nn.Linear))
    ]
    out = model(torch.randn(5, n_marks, 60))
    for h in hooks:
        h.remove()
    assert shapes == [(5, 175, 15), (5, 350, 7), (5, 700, 3), (5, 2100), (5, 625), (5, 125), (5, 1)]
    assert out.shape == (5,)
    assert torch.isfinite(out).all()


def test_same_padding_is_keras_rule_and_equals_torch_same():
    assert promoter_cnn.same_padding(8) == (3, 4)
    assert promoter_cnn.same_padding(4) == (1, 2)
    torch.manual_seed(0)
    for k in (8, 4):
        ours = nn.Sequential(nn.ConstantPad1d(promoter_cnn.same_padding(k), 0.0), nn.Conv1d(1, 1, k, bias=False))
        ref = nn.Conv1d(1, 1, k, padding="same", bias=False)
        ref.weight.data.copy_(ours[1].weight.data)
        x = torch.randn(3, 1, 60)
        with warnings.catch_warnings():  # torch warns that even kernels copy the input
            warnings.simplefilter("ignore", UserWarning)
            expected = ref(x)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-6)
        # TF/Keras: output i sees inputs i - left … i + right; an impulse at p lands on w[p - i + left]
        left = promoter_cnn.same_padding(k)[0]
        impulse = torch.zeros(1, 1, 60)
        impulse[0, 0, 30] = 1.0
        with torch.no_grad():
            y = ours(impulse)[0, 0]
            w = ours[1].weight.detach()[0, 0]
        for i in range(60):
            j = 30 - i + left
            assert float(y[i]) == pytest.approx(float(w[j]) if 0 <= j < k else 0.0)


def test_bins_and_tss_convention(smoke_params):
    model = promoter_cnn.build(smoke_params, n_marks=1)
    cfg = smoke_params["model"]["promoter_cnn"]
    # TSS ± 3 kb at 100 bp: 60 bins, TSS between bins 29 and 30 (docs/methods.md, "Signal, windows and bins" / "Genes, folds and pCREs")
    assert (cfg["half_window"], cfg["resolution"]) == (3000, 100)
    assert model.n_bins == 60
    assert cfg["half_window"] // cfg["resolution"] - 1 == 29


def test_orientation_matters():
    # the CNN is not reversal-invariant, so the upstream-first (strand-oriented) bin order of the
    # dataset is part of its input contract
    torch.manual_seed(0)
    model = PromoterCNN().eval()
    x = torch.rand(8, 1, 60)
    assert not torch.allclose(model(x), model(x.flip(-1)))


def test_batch_norm_option():
    plain, bn = PromoterCNN(), PromoterCNN(batch_norm=True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [175, 350, 700]
    n_extra = sum(p.numel() for p in bn.parameters()) - sum(p.numel() for p in plain.parameters())
    assert n_extra == 2 * (175 + 350 + 700)
    assert bn.eval()(torch.randn(4, 1, 60)).shape == (4,)


def test_bad_inputs():
    model = PromoterCNN(n_marks=2)
    with pytest.raises(ValueError, match="2 marks, 60 bins"):
        model(torch.randn(4, 1, 60))
    with pytest.raises(ValueError, match="60 bins"):
        model(torch.randn(4, 2, 50))
    with pytest.raises(ValueError, match="n_marks"):
        PromoterCNN(n_marks=0)
    with pytest.raises(ValueError, match="too short"):
        PromoterCNN(n_bins=10)


def test_strand_oriented_bins_of_the_dataset(smoke_dataset):
    # the CNN's 60 bins are the central 60 of the stored 20 kb window, oriented 5'→3' on the gene's
    # strand: on both strands the simulated H3K36me3 (gene bodies) is higher downstream of the TSS
    # (bins 30-59) than upstream, and H3K4me3 peaks next to the TSS (between bins 29 and 30)
    ds = smoke_dataset
    x = ds.promoter(marks=["H3K36me3", "H3K4me3"], resolution=100, half_window=3000)
    assert x.shape == (len(ds.genes), 2, 60)
    wide = ds.promoter(marks=["H3K36me3", "H3K4me3"], resolution=100, half_window=20000)
    np.testing.assert_array_equal(x, wide[:, :, 170:230])
    active = ds.genes["label"].to_numpy() == 1
    for strand in "+-":
        sel = active & (ds.genes["strand"].to_numpy() == strand)
        assert sel.sum() >= 10
        k36 = x[sel, 0]
        assert k36[:, 30:].mean() > 1.2 * k36[:, :30].mean(), strand
        assert 25 <= int(np.argmax(x[sel, 1].mean(0))) <= 35, strand


class _FakeDataset:
    """The CellDataset interface train_and_evaluate uses, on random data (no store needed)."""

    def __init__(self, n=90, seed=0):
        rng = np.random.default_rng(seed)
        self.cell_type, self.marks = "E003", ("H3K4me3", "H3K27me3")
        self._x = rng.gamma(1.0, 1.0, size=(n, 2, 60)).astype(np.float32)
        target = 2.0 * self._x[:, 0, 25:35].mean(1) + rng.normal(0, 0.1, n)
        self.genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(n)], "target": target})
        self._fold = np.arange(n) % 4 + 1

    def promoter(self, marks=None, resolution=100, half_window=3000):
        return self._x[:, [self.marks.index(m) for m in marks]]

    def split(self, fold):
        test = np.flatnonzero(self._fold == fold)
        rest = np.flatnonzero(self._fold != fold)
        return {"train": rest[8:], "validation": rest[:8], "test": test}


@pytest.mark.parametrize("concurrent", [False, True])
def test_train_and_evaluate_tables(smoke_params, tmp_path, concurrent):
    params = {**smoke_params, "train": {**smoke_params["train"], "max_epochs": 1}}
    ds = _FakeDataset()
    run = promoter_experiment.train_and_evaluate(
        ds,
        params,
        marks=["H3K4me3", "H3K27me3"],
        folds=[1],
        concurrent=concurrent,
        device="cpu",
        checkpoint_dir=tmp_path,
        progress=False,
    )
    results.validate(run.metrics, results.METRIC_COLUMNS, "metrics")
    results.validate(run.predictions, results.PREDICTION_COLUMNS, "predictions")
    assert run.concurrent is concurrent and len(run.models) == 2
    # one prediction per (mark, fold, test gene); metrics over all of a fold's test genes
    assert len(run.predictions) == 2 * ds.split(1)["test"].size
    assert not run.predictions.duplicated(["marks", "fold", "gene_id"]).any()
    test = run.metrics[(run.metrics["split"] == "test") & (run.metrics["metric"] == "pearson_r")]
    assert len(test) == 2 and set(test["n_genes"]) == {ds.split(1)["test"].size}
    for _, row in test.iterrows():
        p = run.predictions[(run.predictions["marks"] == row["marks"]) & (run.predictions["fold"] == row["fold"])]
        assert row["value"] == pytest.approx(np.corrcoef(p["observed"], p["predicted"])[0, 1], abs=1e-6)
    # re-running with the same checkpoints reads the finished models back (no training) ...
    again = promoter_experiment.train_and_evaluate(
        ds,
        params,
        marks=["H3K4me3", "H3K27me3"],
        folds=[1],
        concurrent=concurrent,
        device="cpu",
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert again.gene_epochs == 0
    pd.testing.assert_frame_equal(again.predictions, run.predictions)
    # ... and a mark the dataset lacks is a clear error
    with pytest.raises(ValueError, match="not in the dataset"):
        promoter_experiment.train_and_evaluate(ds, params, marks=["H3K9ac"], folds=[1], progress=False)


@pytest.mark.parametrize("concurrent", [False, True])
def test_one_fold_jobs_leave_the_models_the_all_folds_run_reads_back(smoke_params, tmp_path, concurrent):
    # `chromexp batch --per-fold`: one job per fold (model.promoter_cnn.folds: [k]), then the
    # all-folds run, which must train nothing and merge the jobs' models without loss. Fails if
    # the checkpoint names depend on the folds or marks of the call, or if fit_many does not
    # leave one finished checkpoint per model.
    base = {**smoke_params, "train": {**smoke_params["train"], "max_epochs": 2}}
    ds, marks, folds = _FakeDataset(), ["H3K4me3", "H3K27me3"], [1, 2]
    kw = dict(marks=marks, concurrent=concurrent, device="cpu", progress=False)

    def with_folds(selected):
        cfg = {**base["model"]["promoter_cnn"], "folds": selected}
        return {**base, "model": {**base["model"], "promoter_cnn": cfg}}

    jobs = [
        promoter_experiment.train_and_evaluate(ds, with_folds([f]), folds=[f], checkpoint_dir=tmp_path / "jobs", **kw)
        for f in folds
    ]
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").iterdir()}
    assert len(written) == len(marks) * len(folds)  # one file per model; no group checkpoint left
    merged = promoter_experiment.train_and_evaluate(ds, base, folds=folds, checkpoint_dir=tmp_path / "jobs", **kw)
    assert merged.gene_epochs == 0
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "jobs").iterdir()} == written
    pd.testing.assert_frame_equal(
        merged.predictions, pd.concat([j.predictions for j in jobs], ignore_index=True), check_exact=True
    )
    if not concurrent:  # one model at a time: the same models as a single all-folds run
        fresh = promoter_experiment.train_and_evaluate(ds, base, folds=folds, checkpoint_dir=tmp_path / "fresh", **kw)
        assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == sorted(written)
        pd.testing.assert_frame_equal(merged.metrics, fresh.metrics, check_exact=True)


def test_performance_and_training_plots():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from chromexp.metrics import tidy_metrics
    from chromexp.plots import panels

    rows = []
    for mark, r in (("H3K27me3", 0.2), ("H3K4me3", 0.7)):
        for fold in (1, 2):
            common = dict(cell_type="E003", marks=mark, scheme="chrom_folds", fold=fold, split="test", n_genes=50)
            rows.append(tidy_metrics({"pearson_r": r + 0.01 * fold, "mse": 1.0}, model="promoter_cnn", **common))
            for flank in (750, 3000):
                rows.append(tidy_metrics({"abs_pearson_r": r - 0.1}, model=f"naive_tss{flank}", **common))
    table = pd.concat(rows, ignore_index=True)
    fig = panels.plot_promoter_performance(table, "semi-synthetic")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["H3K4me3", "H3K27me3"]  # MARKS order
    bars = [p.get_height() for p in ax.patches]
    assert bars == pytest.approx([0.715, 0.215])  # means over folds
    assert "SEMI-SYNTHETIC" in ax.get_title()
    labels = ax.get_legend_handles_labels()[1]
    assert "naive |r|, TSS ± 750 bp" in labels and "naive |r|, TSS ± 3000 bp" in labels
    plt.close(fig)
    with pytest.raises(ValueError, match="No test rows"):
        panels.plot_promoter_performance(table, "real", model="other")

    history = pd.DataFrame(
        {
            "epoch": [1, 2, 1, 2],
            "train_loss": 1.0,
            "val_loss": [2.0, 1.5, 2.5, 2.6],
            "marks": "H3K4me3",
            "fold": [1, 1, 2, 2],
            "best_epoch": [2, 2, 1, 1],
        }
    )
    fig = panels.plot_training_curves(history, "real")
    assert len(fig.axes) == 2 and "real data" in fig._suptitle.get_text()
    plt.close(fig)
