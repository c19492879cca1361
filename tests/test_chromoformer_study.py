"""Chromoformer's own study: the diff model's properties, the recipes' settings, the statistics.

Chromoformer-diff has no reference code; what it must show (docs/methods.md, "Chromoformer-diff"):
one backbone parameter set that receives gradients from both sides, ŷ_A = ŷ_B for identical inputs,
and with a Chromoformer-reg's weights transplanted, each side's embedding and expression head equal
that regressor's. The statistics are checked against scipy / scikit-learn / NumPy on small tables.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as sps
from sklearn.metrics import roc_auc_score

from chromexp.analyses import chromoformer_study as stats
from chromexp.config import load_params
from chromexp.experiments import chromoformer_diff as diff
from chromexp.experiments import chromoformer_study as study
from chromexp.models import chromoformer as cf
from chromexp.models import chromoformer_inputs as ci

WINDOW = 4000
SMALL = {  # a small Chromoformer: the same code paths, a fraction of the time
    "d_emb": 32,
    "d_head": 16,
    "embed": {"d_model": 32, "d_ff": 32},
    "pairwise_interaction": {"n_layers": 1, "d_model": 32, "d_ff": 32},
    "regulation": {"n_layers": 2, "n_heads": 4, "d_model": 32, "d_ff": 32},
}


def _inputs(batch, seed, n_marks=3):
    return ci.random_inputs(batch, n_marks=n_marks, n_pcres=[i % 9 for i in range(batch)], window=WINDOW, seed=seed)


def _paired(a, b):
    return {**{f"{k}_a": v for k, v in a.items()}, **{f"{k}_b": v for k, v in b.items()}}


def _perturbed(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Chromoformer-diff: what it must show
# ----------------------------------------------------------------------------------------------
def test_diff_backbone_is_one_parameter_set_trained_by_both_sides():
    torch.manual_seed(0)
    model = cf.build_model("diff", 3, architecture=SMALL)
    reg = cf.build_model("reg", 3, architecture=SMALL)
    # one backbone: Chromoformer-reg's parameters plus fc_diff, nothing duplicated per side
    assert cf.count_parameters(model) == cf.count_parameters(reg) + sum(p.numel() for p in model.fc_diff.parameters())
    a, b = _inputs(4, 1), _inputs(4, 2)
    backbone = [n for n, _ in model.named_parameters() if not n.startswith(("fc_diff", "fc_head"))]
    grads = {}
    for side, col in (("A", 1), ("B", 2)):
        model.zero_grad()
        model(**_paired(a, b))[:, col].sum().backward()
        grads[side] = {n: p.grad.clone() for n, p in model.named_parameters() if n in backbone and p.grad is not None}
    for side in ("A", "B"):  # each side's head alone sends gradient into the (same) backbone tensors
        assert any(g.abs().sum() > 0 for g in grads[side].values())
    shared = [n for n in grads["A"] if grads["A"][n].abs().sum() > 0 and grads["B"][n].abs().sum() > 0]
    assert (
        "embed.100.lin_proj.weight" in shared and "regulation.2000.transformer.layers.0.self_att.att.weight" in shared
    )
    # ... and side B's gradient does not depend on side A's inputs
    model.zero_grad()
    model(**_paired(_inputs(4, 7), b))[:, 2].sum().backward()
    g = dict(model.named_parameters())["embed.100.lin_proj.weight"].grad
    torch.testing.assert_close(g, grads["B"]["embed.100.lin_proj.weight"], atol=1e-6, rtol=1e-5)


def test_diff_identical_inputs_give_identical_expression_heads():
    model = _perturbed(cf.build_model("diff", 3, architecture=SMALL), 3)
    a = _inputs(6, 4)
    with torch.no_grad():
        out = model(**_paired(a, a))
    assert torch.equal(out[:, 1], out[:, 2])


def test_diff_with_transplanted_reg_weights_embeds_like_chromoformer_reg():
    reg = _perturbed(cf.build_model("reg", 3, architecture=SMALL), 5)
    model = cf.build_model("diff", 3, architecture=SMALL).eval()
    missing, unexpected = model.load_state_dict(reg.state_dict(), strict=False)
    assert not unexpected and sorted(missing) == sorted(f"fc_diff.{k}" for k in model.fc_diff.state_dict())
    a, b = _inputs(5, 6), _inputs(5, 8)
    with torch.no_grad():
        emb = cf.ChromoformerBackbone.forward(model, **a)
        torch.testing.assert_close(emb, cf.ChromoformerBackbone.forward(reg, **a), atol=0, rtol=0)
        out = model(**_paired(a, b))
        torch.testing.assert_close(out[:, 1], reg(**a), atol=1e-6, rtol=0)
        torch.testing.assert_close(out[:, 2], reg(**b), atol=1e-6, rtol=0)


def test_diff_loss_and_swap_augmentation():
    gen = torch.Generator().manual_seed(0)
    out, y = torch.randn(7, 3, generator=gen), torch.randn(7, 3, generator=gen)
    loss = diff.DiffLoss((2.0, 1.0, 0.5))
    mse = ((out - y) ** 2).mean(0)
    torch.testing.assert_close(loss(out, y), 2 * mse[0] + mse[1] + 0.5 * mse[2])
    torch.testing.assert_close(loss(out, y, reduction="sum"), 7 * loss(out, y))
    with pytest.raises(ValueError, match="DiffLoss"):
        loss(out[:, :2], y)
    x = _paired(_inputs(3, 1), _inputs(3, 2))
    x2, y2 = diff.augment_swap(x, y[:3])
    assert y2.shape == (6, 3)
    torch.testing.assert_close(y2[3:], torch.stack([-y[:3, 0], y[:3, 2], y[:3, 1]], 1))
    assert torch.equal(x2["promoter_100_a"][3:], x["promoter_100_b"]) and torch.equal(x2["freq_b"][3:], x["freq_a"])
    assert torch.equal(x2["pcre_mask_500_a"][:3], x["pcre_mask_500_a"])


def test_pair_data_matches_genes_and_refuses_mismatched_stores():
    class DS:
        def __init__(self, cell, genes):
            self.cell_type, self.genes = cell, genes

    ga = pd.DataFrame({"gene_id": ["g1", "g2", "g3"], "chrom": "chr1", "fold": 1, "target": [1.0, 2.0, 3.0]})
    gb = pd.DataFrame({"gene_id": ["g3", "g1", "g9"], "chrom": "chr1", "fold": 1, "target": [5.0, 0.0, 1.0]})
    pair = diff.pair_data(DS("E003", ga), DS("E116", gb))
    assert list(pair.gene_ids) == ["g1", "g3"] and list(pair.index_b) == [1, 0]
    np.testing.assert_allclose(pair.lfc, [-1.0, 2.0])  # target_B - target_A
    with pytest.raises(ValueError, match="share no gene"):
        diff.pair_data(DS("E003", ga), DS("E116", gb.assign(gene_id=["x", "y", "z"])))
    with pytest.raises(ValueError, match="different gene tables"):
        diff.pair_data(DS("E003", ga), DS("E116", gb.assign(fold=2)))


def test_two_model_baselines():
    class P:
        gene_ids = np.array(["g1", "g2", "g3"])
        a, b = "E003", "E116"

    pa = pd.DataFrame(
        {"model": "chromoformer_reg", "fold": 1, "gene_id": ["g1", "g2", "g3"], "predicted": [1.0, 2.0, 3.0]}
    )
    pb = pa.assign(predicted=[2.0, 2.0, 1.0])
    out = diff._two_model_outputs(pa, pb, "reg", 1, P(), np.array([0, 2]))
    np.testing.assert_allclose(out[[0, 2], 0], [1.0, -2.0])
    assert np.isnan(out[1]).all()
    ca = pa.assign(model="chromoformer_clf", probability=[0.5, 0.1, 0.8])
    cb = pa.assign(model="chromoformer_clf", probability=[0.25, 0.1, 0.8])
    out = diff._two_model_outputs(ca, cb, "clf", 1, P(), np.array([0, 1]))
    np.testing.assert_allclose(out[[0, 1], 0], [-1.0, 0.0])  # log2(p_B / p_A)
    with pytest.raises(ValueError, match="No chromoformer_reg fold-2"):
        diff._two_model_outputs(pa, pb, "reg", 2, P(), np.array([0]))


def test_diff_settings():
    params = load_params(None, overrides={"cell_types": ["E116", "E003", "E066"]})
    d = diff.diff_settings(params)
    assert d["pairs"] == [("E003", "E066"), ("E003", "E116"), ("E066", "E116")] and d["protocol"] == "chromoformer"
    d = diff.diff_settings(load_params(None, overrides={"chromoformer_diff": {"pairs": [["E116", "E003"]]}}))
    assert d["pairs"] == [("E003", "E116")]
    with pytest.raises(ValueError, match="two different cell types"):
        diff.diff_settings(
            load_params(
                None, overrides={"cell_types": ["E003", "E116"], "chromoformer_diff": {"pairs": [["E003", "E066"]]}}
            )
        )


# ----------------------------------------------------------------------------------------------
# the per-cell-type recipe
# ----------------------------------------------------------------------------------------------
def test_study_plan_and_settings():
    params = load_params(
        "E003", overrides={"chromoformer_study": {"windows": [2000, 10000], "models": ["deepchrome"], "tasks": ["clf"]}}
    )
    specs = study.plan(params)
    names = [s.name for s in specs]
    # the ablation is at the stored 40-kb window, whatever the window list
    assert names == [
        "deepchrome_clf 2 kb",
        "deepchrome_clf 10 kb",
        "chromoformer_clf 40 kb",
        "chromoformer_embedding_only_clf 40 kb",
    ]
    for bad in ([3000], [80000], [1000]):  # not a multiple of 2 kb, beyond the stored window, below the 2-kb bin
        with pytest.raises(ValueError, match="windows"):
            study.study_settings(load_params("E003", overrides={"chromoformer_study": {"windows": bad}}))


def test_study_training_settings_are_the_published_ones():
    params = load_params("E003")
    cf_setup = study.setup(study.Spec("chromoformer", "clf", 40000), params, "chromoformer")
    assert (
        cf_setup.train_params["protocol"] == "chromoformer"
        and cf_setup.loss == "cross_entropy"
        and cf_setup.score is None
    )
    dc = study.setup(study.Spec("deepchrome", "clf", 10000), params, "chromoformer")
    tp = dc.train_params
    assert (tp["protocol"], dc.optimizer, tp["lr"], tp["batch_size"], tp["max_epochs"], tp["lr_decay"]) == (
        "fixed",
        "sgd",
        1e-3,
        1,
        100,
        1e-7,
    )
    assert dc.score is study.validation_auroc
    ac = study.setup(study.Spec("attentivechrome", "clf", 10000), params, "chromoformer").train_params
    assert (ac["lr"], ac["batch_size"], ac["max_epochs"], ac["grad_clip"]) == (2e-4, 16, 30, 1.0)
    hm = study.setup(study.Spec("hmcrnn", "clf", 4000), params, "chromoformer")
    assert hm.loss is study._focal and hm.train_params["max_epochs"] == 20
    assert study.setup(study.Spec("hmcrnn", "reg", 4000), params, "chromoformer").loss == "mse"


def test_study_inputs_are_the_windows_crops():
    inputs = ci.random_inputs(4, n_marks=7, n_pcres=[0, 1, 2, 8], window=40000, seed=0)
    x = study.model_inputs(study.Spec("deepchrome", "clf", 10000), inputs, np.e)
    torch.testing.assert_close(x, inputs["promoter_100"][..., 150:250])
    x = study.model_inputs(study.Spec("chromoformer", "clf", 4000), inputs, np.e)
    assert x["promoter_2000"].shape[-1] == 2 and x["pcre_100"].shape[-1] == 400
    params = load_params("E003")
    for spec, n_out in ((study.Spec("hmcrnn", "clf", 2000), ()), (study.Spec("deepchrome", "reg", 2000), ())):
        model = study.build(spec, params, 7).eval()
        with torch.no_grad():
            assert model(study.model_inputs(spec, inputs, np.e)).shape == (4, *n_out)


def test_one_logit_classifiers_are_read_as_two_logits():
    z = np.array([-2.0, 0.0, 3.0])
    two = study._as_two_logits(z)
    np.testing.assert_allclose(torch.softmax(torch.tensor(two), 1)[:, 1].numpy(), 1 / (1 + np.exp(-z)))
    y = torch.tensor([0, 1, 1])
    assert study.validation_auroc(torch.tensor(z), y) == study.validation_auroc(torch.tensor(two), y) == 1.0


# ----------------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------------
def _fold_metrics():
    rows = []
    rng = np.random.default_rng(0)
    for fold in (1, 2, 3, 4):
        for model, shift in (("chromoformer_clf", 0.05), ("chromoformer_embedding_only_clf", 0.0)):
            rows.append({"cell_type": "E003", "model": model, "window": 40000, "split": "test", "fold": fold,
                         "metric": "auroc", "value": 0.8 + shift + rng.normal(0, 0.01)})  # fmt: skip
    return pd.DataFrame(rows)


def test_fold_summary_and_paired_fold_test():
    m = _fold_metrics()
    s = stats.fold_summary(m)
    v = m[m["model"] == "chromoformer_clf"]["value"].to_numpy()
    row = s[s["model"] == "chromoformer_clf"].iloc[0]
    assert (
        row["mean"] == pytest.approx(v.mean()) and row["se"] == pytest.approx(v.std(ddof=1) / 2) and row["n_folds"] == 4
    )
    t = stats.paired_fold_test(m, "chromoformer_clf", "chromoformer_embedding_only_clf", "auroc")
    a, b = (
        m[m["model"] == x].sort_values("fold")["value"].to_numpy()
        for x in ("chromoformer_clf", "chromoformer_embedding_only_clf")
    )
    ref = sps.ttest_rel(a, b)
    assert t["p"].iloc[0] == pytest.approx(ref.pvalue) and t["t"].iloc[0] == pytest.approx(ref.statistic)
    one = stats.paired_fold_test(m[m["fold"] == 1], "chromoformer_clf", "chromoformer_embedding_only_clf", "auroc")
    assert one["n_folds"].iloc[0] == 1 and np.isnan(one["p"].iloc[0])  # undefined, never "p = 1"
    with pytest.raises(ValueError, match="no auroc rows"):
        stats.paired_fold_test(m, "a_clf", "b_clf", "auroc")
    with pytest.raises(ValueError, match="at window 2000"):
        stats.paired_fold_test(m, "chromoformer_clf", "chromoformer_embedding_only_clf", "auroc", window=2000)


def _predictions(n=300, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    good = np.clip(0.5 + 0.3 * (2 * label - 1) + rng.normal(0, 0.25, n), 0.01, 0.99)
    bad = np.clip(0.5 + 0.1 * (2 * label - 1) + rng.normal(0, 0.25, n), 0.01, 0.99)
    genes = [f"g{i}" for i in range(n)]
    base = {
        "fold": np.repeat([1, 2], n // 2),
        "gene_id": genes,
        "observed": label * 3.0,
        "label": label,
        "window": 40000,
    }
    return pd.concat(
        [
            pd.DataFrame({**base, "model": "chromoformer_clf", "predicted": good, "probability": good}),
            pd.DataFrame({**base, "model": "chromoformer_embedding_only_clf", "predicted": bad, "probability": bad}),
        ],
        ignore_index=True,
    )


def test_subset_metrics_and_per_gene_test():
    p = _predictions()
    groups = pd.Series(np.where(np.arange(300) % 3 == 0, "≥ 1 pCRE", "no pCRE"), index=[f"g{i}" for i in range(300)])
    sub = stats.subset_metrics(p, groups, ["chromoformer_clf"])
    g = p[(p["model"] == "chromoformer_clf") & (p["fold"] == 1)]
    g = g[g["gene_id"].map(groups) == "no pCRE"]
    want = roc_auc_score(g["label"], g["probability"])
    got = sub[(sub["fold"] == 1) & (sub["subset"] == "no pCRE") & (sub["metric"] == "auroc")]["value"].iloc[0]
    assert got == pytest.approx(want)
    t = stats.per_gene_test(p, "chromoformer_clf", "chromoformer_embedding_only_clf", n_boot=200)
    a = p[p["model"] == "chromoformer_clf"]
    b = p[p["model"] == "chromoformer_embedding_only_clf"]
    ce = lambda q, y: -(y * np.log(q) + (1 - y) * np.log(1 - q))  # noqa: E731
    gain = ce(b["probability"].to_numpy(), b["label"].to_numpy()) - ce(
        a["probability"].to_numpy(), a["label"].to_numpy()
    )
    row = t.iloc[0]
    assert row["loss_gain"] == pytest.approx(gain.mean()) and row["p"] == pytest.approx(sps.wilcoxon(gain).pvalue)
    assert row["delta"] == pytest.approx(
        roc_auc_score(a["label"], a["probability"]) - roc_auc_score(b["label"], b["probability"])
    )
    assert row["delta_lo"] <= row["delta"] <= row["delta_hi"] and row["delta"] > 0
    by = stats.per_gene_test(p, "chromoformer_clf", "chromoformer_embedding_only_clf", groups=groups, n_boot=50)
    assert list(by["subset"]) == ["no pCRE", "≥ 1 pCRE"] and by["n_genes"].sum() == 300
    with pytest.raises(ValueError, match="share no gene_id"):
        stats.subset_metrics(p, pd.Series({"x": "a"}), ["chromoformer_clf"])


def test_planted_truth_groups():
    enh = pd.DataFrame(
        {
            "gene_id": ["g1", "g1", "g2", "g3"],
            "kind": ["pchic", "pchic", "local", "pchic"],
            "chrom": "chr1",
            "fragment_start": [100, 500, np.nan, 900],
            "fragment_end": [200, 600, np.nan, 1000],
            "active_E003": [True, False, True, True],
            "contribution_E003": [0.4, 0.0, 0.3, 0.2],
            "active_E116": [True, True, False, True],
            "contribution_E116": [0.4, 0.5, 0.0, 0.2],
        }
    )
    ch = stats.enhancer_changes(enh, "E003", "E116")
    assert ch.loc["g1", "n_switched"] == 1 and ch.loc["g2", "group"] == "enhancer activity differs"
    assert ch.loc["g3", "group"] == "same" and ch.loc["g1", "delta_contribution"] == pytest.approx(0.5)

    class DS:
        cell_type = "E003"
        genes = pd.DataFrame({"gene_id": ["g1", "g2", "g3", "g4"]})

        def pcre_table(self):
            return pd.DataFrame(
                {"gene_id": ["g1", "g1", "g3"], "chrom": "chr1", "start": [100, 500, 950], "end": [200, 600, 1000]}
            )

        def n_pcres(self):
            return np.array([2, 0, 1, 0])

    t = stats.planted_pcre_enhancers(enh, DS())
    # g1: its active enhancer sits on a pCRE; g3's enhancer fragment is not its pCRE (other coordinates)
    assert list(t["n_active_pcre_enhancers"]) == [1, 0, 0, 0] and t.loc["g1", "pcre_contribution"] == pytest.approx(0.4)
    assert list(t["group"]) == ["active pCRE enhancer", "none", "none", "none"]
    gains = pd.DataFrame({"gene_id": ["g1", "g2", "g3", "g4"], "gain": [1.0, 0.0, 0.1, -0.1]})
    by = stats.gain_by_group(gains, t["group"])
    assert by.set_index("group").loc["none", "mean_gain"] == pytest.approx(0.0)


def test_diff_by_group_is_pearson_r_per_group():
    rng = np.random.default_rng(1)
    n = 40
    obs = rng.normal(size=n)
    rows = []
    for model, noise in (("chromoformer_diff", 0.3), ("chromoformer_reg_difference", 1.0)):
        rows.append(pd.DataFrame({"pair": "E003-E116", "model": model, "fold": 1, "gene_id": [f"g{i}" for i in range(n)],
                                  "observed": obs, "predicted": obs + rng.normal(0, noise, n)}))  # fmt: skip
    p = pd.concat(rows)
    groups = {"E003-E116": pd.Series("enhancer activity differs", index=[f"g{i}" for i in range(10)])}
    by = stats.diff_by_group(p, "chromoformer_diff", "chromoformer_reg_difference", groups)
    d = by.set_index("subset")
    sel = p[p["gene_id"].isin([f"g{i}" for i in range(10)]) & (p["model"] == "chromoformer_diff")]
    assert d.loc["enhancer activity differs", "r_a"] == pytest.approx(
        np.corrcoef(sel["observed"], sel["predicted"])[0, 1]
    )
    assert d.loc["same", "n_genes"] == 30
    s = stats.diff_summary(by)
    assert set(s["subset"]) == {"enhancer activity differs", "same"} and s["p"].isna().all()  # one unit: undefined


def test_rank_auroc_equals_scikit_learn_with_ties():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # many ties
    assert stats.auroc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert np.isnan(stats.auroc(np.ones(5), np.arange(5.0)))


def test_checkpoint_tags_ignore_settings_the_protocol_does_not_use():
    params = load_params("E003")
    spec = study.Spec("chromoformer", "clf", 40000)
    tp = study.setup(spec, params, "chromoformer").train_params
    tag = study.training_tag(tp)
    assert tag == study.training_tag({**tp, "lr_patience": 7, "early_stopping_patience": 3})  # plateau keys unused
    assert tag != study.training_tag({**tp, "chromoformer_protocol": {**tp["chromoformer_protocol"], "max_epochs": 3}})
    assert "kind" not in study.model_tag(spec, params)


def test_diff_refuses_pairs_without_their_datasets():
    params = load_params(None, overrides={"chromoformer_diff": {"pairs": [["E003", "E116"]]}})
    with pytest.raises(ValueError, match=r"No dataset given for cell type\(s\) \['E116'\]"):
        diff.train_and_evaluate({"E003": object()}, params)


def test_study_panels_say_what_they_show():
    import matplotlib.pyplot as plt

    from chromexp.plots import chromoformer_study as panels

    m = _fold_metrics()
    m = pd.concat([m, m[m["model"] == "chromoformer_clf"].assign(window=2000, value=0.7)], ignore_index=True)
    fig = panels.plot_window_study(stats.fold_summary(m).assign(cell_type="E003"), "semi-synthetic")
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert (
        labels == ["Chromoformer"] and "SEMI-SYNTHETIC" in fig._suptitle.get_text()
    )  # the ablation is not a window model
    assert [ax.get_title() for ax in fig.axes] == ["test"]
    assert fig.axes[0].get_ylabel() == "test AUROC (mean ± SE over folds)" and "AUROC" in fig._suptitle.get_text()
    sub = pd.DataFrame({"model": ["chromoformer_clf", "chromoformer_embedding_only_clf"] * 2, "fold": 1,
                        "subset": ["≥ 1 pCRE"] * 2 + ["no pCRE"] * 2, "n_genes": 10, "metric": "auroc", "value": 0.7})  # fmt: skip
    fig = panels.plot_ablation(m, sub, "real", "auroc")
    assert len(fig.axes) == 2 and "real data" in fig._suptitle.get_text()
    pairs = pd.DataFrame({"pair": "E003-E116", "model": ["chromoformer_diff", "deepdiff_aux"], "fold": 1, "split": "test",
                          "metric": "pearson_r", "value": [0.5, 0.3]})  # fmt: skip
    fig = panels.plot_diff(pairs, None, "semi-synthetic")
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["Chromoformer-diff", "DeepDiff (aux)"]
    assert fig.axes[1].texts[0].get_text() == "no planted truth (real data)"
    groups = pd.DataFrame({"subset": ["differs", "same"], "model_a": "chromoformer_diff",
                           "model_b": "chromoformer_reg_difference", "r_a": [0.6, 0.4], "r_b": [0.3, 0.4], "n_genes": 9})  # fmt: skip
    fig = panels.plot_diff(pairs, groups, "semi-synthetic")
    # the right panel's two dot colours are named in its own legend
    assert [t.get_text() for t in fig.axes[1].get_legend().get_texts()] == [
        "Chromoformer-diff", "two reg models (ŷ_B − ŷ_A)"
    ]  # fmt: skip
    plt.close("all")


def test_ablation_truth_finds_a_gain_concentrated_in_one_group():
    rng = np.random.default_rng(5)
    n = 400
    label = rng.integers(0, 2, n)
    group = np.where(np.arange(n) < 200, "active pCRE enhancer", "none")
    base = 0.5 + 0.15 * (2 * label - 1) + rng.normal(0, 0.2, n)
    # the intact model is better only on the first group
    intact = np.where(group == "none", base, 0.5 + 0.35 * (2 * label - 1) + rng.normal(0, 0.2, n))
    genes = [f"g{i}" for i in range(n)]
    common = {"fold": 1, "gene_id": genes, "observed": label * 2.0, "label": label, "window": 40000}
    p = pd.concat(
        [
            pd.DataFrame(
                {**common, "model": "chromoformer_clf", "predicted": 0.0, "probability": np.clip(intact, 0.01, 0.99)}
            ),
            pd.DataFrame(
                {
                    **common,
                    "model": "chromoformer_embedding_only_clf",
                    "predicted": 0.0,
                    "probability": np.clip(base, 0.01, 0.99),
                }
            ),
        ]
    )
    t = stats.ablation_truth(
        p, "chromoformer_clf", "chromoformer_embedding_only_clf", pd.Series(group, index=genes), n_boot=300
    )
    t = t.set_index("group")
    assert t.loc["active pCRE enhancer", "delta"] > 0.05 and abs(t.loc["none", "delta"]) < 1e-12
    assert t.loc["active pCRE enhancer", "delta_vs_other"] == pytest.approx(t.loc["active pCRE enhancer", "delta"])
    assert t.loc["active pCRE enhancer", "p_delta_vs_other"] < 0.01
    assert t.loc["active pCRE enhancer", "delta_vs_other_lo"] > 0 > t.loc["none", "delta_vs_other_hi"]


def test_diff_summary_bootstrap_over_units():
    rng = np.random.default_rng(2)
    rows = []
    for pair in ("E003-E066", "E003-E116"):
        obs = rng.normal(size=300)
        for model, noise in (("chromoformer_diff", 0.5), ("chromoformer_reg_difference", 0.8)):
            rows.append(pd.DataFrame({"pair": pair, "model": model, "fold": 1, "gene_id": [f"g{i}" for i in range(300)],
                                      "observed": obs, "predicted": obs + rng.normal(0, noise, 300)}))  # fmt: skip
    by = stats.diff_by_group(pd.concat(rows), "chromoformer_diff", "chromoformer_reg_difference", {}, n_boot=300)
    assert (by["delta_r_lo"] < by["delta_r"]).all() and (by["delta_r"] < by["delta_r_hi"]).all()
    s = stats.diff_summary(by).iloc[0]
    assert s["units"] == 2 and s["a_better"] == 2 and s["mean_delta_r_lo"] > 0 and s["p_boot"] < 0.01
