"""The perturbation engine (chromexp.analyses.perturb) against brute force and its invariants."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from chromexp.analyses import perturb
from chromexp.experiments import perturbation
from chromexp.models import chromoformer as cf
from chromexp.models import chromoformer_inputs as ci

TINY = {
    "d_emb": 16,
    "d_head": 8,
    "embed": {"n_layers": 1, "n_heads": 2, "d_model": 16, "d_ff": 16},
    "pairwise_interaction": {"n_layers": 2, "n_heads": 2, "d_model": 16, "d_ff": 16},
    "regulation": {"n_layers": 2, "n_heads": 2, "d_model": 16, "d_ff": 16},
}


def tiny_models(n=2, n_marks=1, seed=0):
    out = []
    for i in range(n):
        torch.manual_seed(seed + i)
        m = cf.ChromoformerRegressor(n_marks=n_marks, architecture=TINY)
        # random weights everywhere (LayerNorm gains too), so that no region is inert by accident
        with torch.no_grad():
            for p in m.parameters():
                p.add_(0.3 * torch.randn_like(p))
        out.append(m.eval())
    return out


@pytest.fixture(scope="module")
def setup():
    models = tiny_models(2)
    x = ci.random_inputs(5, n_marks=1, n_pcres=[0, 1, 3, 8, 2], seed=3, window=perturb.STUDY_WINDOW)
    return models, x


def test_regions_cover_each_bin_once_at_every_resolution():
    # promoter flank 4 kb: the promoter (bins 8-11) and the 16 distal bins partition the window
    for flank, gap in ((4000, 0), (3000, 1000)):
        regs = perturb.regions(promoter_flank=flank)
        assert [r.name for r in regs][:2] == ["promoter", "distal_00"] and len(regs) == 17
        assert [r.position for r in regs if r.kind == "distal"] == [*range(8), *range(12, 20)]
        for res in cf.RESOLUTIONS:
            count = np.zeros(perturb.STUDY_WINDOW // res, dtype=int)
            for r in regs:
                count[r.bins[res]] += 1
            assert count.max() == 1
            uncovered = np.flatnonzero(count == 0)
            if res == 2000 or gap == 0:
                assert uncovered.size == 0
            else:  # the paper's TSS ± 3 kb promoter leaves the 3-4 kb flanks of bins 8-11 to no region
                expected = [*range(16000 // res, 17000 // res), *range(23000 // res, 24000 // res)]
                assert uncovered.tolist() == expected
    prom = perturb.regions()[0]
    assert (prom.bins[100].start, prom.bins[100].stop) == (170, 230)  # TSS ± 3 kb = 60 bins
    assert (prom.bins[2000].start, prom.bins[2000].stop) == (8, 12)
    assert [r.distance for r in perturb.regions()][:3] == [0, -19000, -17000]


def test_reference_geometry_is_bins_8_to_10_and_17_distal_positions():
    """perturbation.geometry: reference = chromexpress's promoter (2 kb bins 8-10) and its 17 distal positions."""
    regs = perturb.regions(geometry="reference")
    distal = [r.position for r in regs if r.kind == "distal"]
    assert distal == [*range(8), *range(11, 20)] and len(distal) == 17  # position 11 (+2 to +4 kb) is perturbed
    prom = regs[0]
    assert (prom.bins[2000].start, prom.bins[2000].stop) == (8, 11)  # -4 to +2 kb
    assert (prom.bins[100].start, prom.bins[100].stop) == (170, 230)  # still TSS ± 3 kb at 100 bp
    assert prom.offset == (16_000, 22_000) and prom.distance == -1000
    d11 = next(r for r in regs if r.name == "distal_11")
    assert d11.distance == 3000 and (d11.bins[100].start, d11.bins[100].stop) == (220, 240)
    # at 100 bp the promoter and distal_11 share +2 to +3 kb (bins 220-229), as the reference scales them
    assert set(range(220, 230)) == set(range(170, 230)) & set(range(220, 240))
    assert [r.position for r in perturb.regions() if r.kind == "distal"] == [*range(8), *range(12, 20)]
    with pytest.raises(ValueError, match="geometry"):
        perturb.regions(geometry="paper")


def test_out_of_fold_effect_is_the_test_fold_models(setup):
    """effect_oof = the effect by the model of the gene's test fold (its chromosome's fold), NaN without it."""
    models, x = setup  # two models: call them folds 1 and 3
    genes = pd.DataFrame(
        {
            "gene_id": [f"G{i}" for i in range(5)],
            "chrom": ["chr1", "chr2", "chr7", "chr5", "chr9"],  # folds 1, 3, 2, 1, 4
            "tss": [100_000, 200_000, 300_000, 400_000, 500_000],
            "strand": ["+", "-", "+", "-", "+"],
        }
    )
    res = perturb.perturbation_predictions(models, x, perturb.regions(), (1.0, 0.0))
    meta = dict(cell_type="E003", provenance="semi-synthetic", model="chromoformer-reg", mark="H3K27ac")
    t = perturb.effects_table(res, genes, **meta, gene_set="active", folds=[1, 3])
    level0 = t[(t["level"] == 0.0) & (t["region"] == "distal_05")].set_index("gene_id")  # region index 6
    np.testing.assert_allclose(level0.loc["G0", "effect_oof"], res.effects[0, 0, 6, 1])  # fold 1's model
    np.testing.assert_allclose(level0.loc["G1", "effect_oof"], res.effects[1, 1, 6, 1])  # fold 3's model
    np.testing.assert_allclose(level0.loc["G3", "effect_oof"], res.effects[0, 3, 6, 1])
    assert np.isnan(level0.loc["G2", "effect_oof"]) and np.isnan(level0.loc["G4", "effect_oof"])
    # the fold average is the same as without folds; level 1.0 is 0 out of fold too
    assert (t.loc[t["level"] == 1.0, "effect_oof"].dropna() == 0).all()
    with pytest.raises(ValueError, match="fold models"):
        perturb.out_of_fold(res.effects, genes, [1])


def test_engine_equals_brute_force_edit_and_predict(setup):
    models, x = setup
    regs = perturb.regions()
    levels = (1.0, 0.7, 0.0)
    res = perturb.perturbation_predictions(models, x, regs, levels, batch_size=37)
    ref = perturb.naive_perturbation(models, x, regs, levels, batch_size=4)
    assert res.predictions.shape == (2, 5, 17, 3)
    np.testing.assert_allclose(res.predictions, ref, atol=1e-5, rtol=0)
    # the brute force with the reference's full attention path is the same function
    ref_full = perturb.naive_perturbation(models, x, regs[:3], levels, full_attention=True)
    np.testing.assert_allclose(res.predictions[:, :, :3], ref_full, atol=1e-5, rtol=0)
    # perturbations do something (so the comparison above is not between constants)
    assert np.abs(res.effects).max() > 1e-3


def test_level_one_is_exactly_the_unperturbed_prediction(setup):
    models, x = setup
    res = perturb.perturbation_predictions(models, x, perturb.regions(), perturb.LEVELS, batch_size=64)
    with torch.no_grad():
        plain = np.stack([m(**x).double().numpy() for m in models])
    np.testing.assert_allclose(res.baseline, plain, atol=1e-6, rtol=0)
    assert (res.effects[..., perturb.LEVELS.index(1.0)] == 0).all()
    # and scaling by 1.0 is a bitwise no-op on the inputs, so the model sees the same tensor
    edited = perturb.perturb_inputs(x, perturb.regions()[0], 1.0)
    assert all(torch.equal(edited[k], x[k]) for k in x)


def test_engine_scales_only_the_chosen_mark():
    models = tiny_models(1, n_marks=2)
    x = ci.random_inputs(3, n_marks=2, seed=1, window=perturb.STUDY_WINDOW)
    regs = perturb.regions()[:4]
    got = perturb.perturbation_predictions(models, x, regs, (0.5, 0.0), mark_index=1, batch_size=16)
    ref = perturb.naive_perturbation(models, x, regs, (0.5, 0.0), mark_index=1)
    np.testing.assert_allclose(got.predictions, ref, atol=1e-5, rtol=0)


def test_removing_an_empty_pcre_slot_changes_nothing(setup):
    models, x = setup
    abl = perturb.ablate_pcres(models, x, include_empty=True, batch_size=7)
    valid = abl.valid
    assert valid.sum(1).tolist() == [0, 1, 3, 8, 2]
    np.testing.assert_allclose(abl.effects[:, ~valid], 0.0, atol=1e-6)
    # a removed non-empty slot equals brute-force removal
    for g, s in zip(*np.nonzero(valid), strict=True):
        xi = perturb.remove_pcre(ci.subset(x, [g]), s)
        with torch.no_grad():
            ref = [float(m(**xi)) for m in models]
        np.testing.assert_allclose(abl.predictions[:, g, s], ref, atol=1e-5)
    assert np.abs(abl.effects[:, valid]).max() > 1e-4
    default = perturb.ablate_pcres(models, x)
    assert np.isnan(default.predictions[:, ~valid]).all()


def test_fold_summary_and_tables(setup):
    e = np.array([[1.0, -1.0, 0.0], [3.0, -2.0, 0.0], [-1.0, -3.0, 0.0]])
    s = perturb.fold_summary(e)
    np.testing.assert_allclose(s["effect"], [1.0, -2.0, 0.0])
    np.testing.assert_allclose(s["effect_sd"], [2.0, 1.0, 0.0])
    np.testing.assert_allclose(s["concordance"], [2 / 3, 1.0, 1.0])
    assert np.isnan(perturb.fold_summary(e[:1])["effect_sd"]).all()

    models, x = setup
    genes = pd.DataFrame(
        {
            "gene_id": [f"G{i}" for i in range(5)],
            "chrom": "chr1",
            "tss": [100_000, 200_000, 300_000, 400_000, 500_000],
            "strand": ["+", "-", "+", "-", "+"],
        }
    )
    res = perturb.perturbation_predictions(models, x, perturb.regions(), (1.0, 0.0))
    t = perturb.effects_table(
        res,
        genes,
        cell_type="E003",
        provenance="semi-synthetic",
        model="chromoformer-reg",
        mark="H3K27ac",
        gene_set="active",
    )
    assert list(t.columns) == [*perturb.EFFECT_COLUMNS, perturb.OOF_COLUMN]
    assert t[perturb.OOF_COLUMN].isna().all()  # the models' folds were not named
    assert len(t) == 5 * 17 * 2 and not t.duplicated(["gene_id", "region", "level"]).any()
    row = t[(t["gene_id"] == "G1") & (t["region"] == "distal_00") & (t["level"] == 0.0)].iloc[0]
    # gene G1 is on the minus strand: its most upstream 2 kb bin is the genomic [TSS+18 kb, TSS+20 kb)
    assert (row["start"], row["end"], row["distance"], row["position"]) == (218_000, 220_000, -19_000, 0)
    np.testing.assert_allclose(row["effect"], res.effects[:, 1, 1, 1].mean())
    np.testing.assert_allclose(row["baseline"], res.baseline[:, 1].mean())
    prom = t[(t["gene_id"] == "G0") & (t["region"] == "promoter")].iloc[0]
    assert (prom["start"], prom["end"], prom["position"], prom["distance"]) == (96_000, 104_000, -1, 0)


def test_planted_truth_labels_and_matched_recovery():
    effects = pd.DataFrame(
        {
            "gene_id": ["A", "A", "B", "B"],
            "start": [0, 2000, 10_000, 12_000],
            "end": [2000, 4000, 12_000, 14_000],
            "mark": "H3K27ac",
            "gene_set": "active",
            "effect": [-1.0, -0.1, -0.2, 0.0],
        }
    )
    enh = pd.DataFrame(
        {
            "gene_id": ["A", "B", "B"],
            "kind": ["local", "local", "pchic"],
            "chrom": "chr1",
            "center": [500, 13_000, 50_000],
            "width": [400, 400, 400],
            "fragment_start": [0, 0, 49_000],
            "fragment_end": [0, 0, 52_000],
            "contribution_E003": [0.5, 0.0, 0.3],
        }
    )
    lab = perturb.label_distal(effects, enh, "E003")
    assert lab.tolist() == [True, False, False, False]  # B's enhancer is inactive in E003
    rec = perturb.recovery(effects, lab, what="distal", strata=np.array([0, 1, 0, 1]))
    allrow = rec[(rec["comparison"] == "all") & (rec["score"] == "effect")].iloc[0]
    assert allrow["auroc"] == 1.0 and allrow["n_pos"] == 1 and allrow["n_neg"] == 3
    matched = rec[(rec["comparison"] == "matched") & (rec["score"] == "effect")].iloc[0]
    assert matched["n_neg"] == 1  # only the negative in the positive's stratum counts
    pc = pd.DataFrame({"gene_id": ["B", "B"], "chrom": "chr1", "start": [49_000, 60_000], "end": [52_000, 61_000]})
    assert perturb.label_pcres(pc, enh, "E003").tolist() == [True, False]
    w = perturb._matched_weights(np.array([True, False, False, True, False]), np.array([0, 0, 0, 1, 2]))
    np.testing.assert_allclose(w, [1, 0.5, 0.5, 0, 0])


def test_decoy_labels_and_the_vs_decoys_comparison():
    """Rows holding an acetylated element that does not regulate their gene, and the AUROC against them only."""
    rows = pd.DataFrame(
        {
            "gene_id": ["A", "A", "A", "C", "B"],
            "chrom": ["chr1", "chr1", "chr1", "chr2", "chr1"],
            "start": [0, 2000, 4000, 0, 0],
            "end": [2000, 4000, 6000, 2000, 2000],
            "mark": "H3K27ac",
            "gene_set": "active",
            # the model ranks the decoy at 2-4 kb of gene A above the enhancer; the signal ties them
            "effect": [-0.5, -0.9, -0.1, 0.0, -0.2],
        }
    )
    enh = pd.DataFrame(
        {
            "gene_id": ["A", "A"],
            "kind": "local",
            "chrom": "chr1",
            "center": [1000, 3000],
            "width": [400, 400],
            "contribution_E003": [0.4, 0.0],  # A's second enhancer is inactive: not acetylated
        }
    )
    dec = pd.DataFrame(
        {
            "gene_id": ["A", "A", "A"],
            "kind": ["neighbour_enhancer", "acetylated_site", "acetylated_site"],
            "chrom": ["chr1", "chr1", "chr2"],
            "center": [3100, 5000, 1000],
            "width": [400, 400, 400],
            "active_E003": [True, False, True],
        }
    )
    kinds = perturb.label_decoys(rows, enh, dec, "E003")
    # A's active enhancer is a decoy for gene B (another gene's enhancer); the inactive site labels nothing
    assert kinds.tolist() == ["", "neighbour_enhancer", "", "acetylated_site", "neighbour_enhancer"]
    lab = perturb.label_distal(rows, enh, "E003")
    assert lab.tolist() == [True, False, False, False, False]
    signal = np.array([2.0, 2.0, 0.1, 2.0, 2.0])
    rec = perturb.recovery(
        rows, lab, what="distal_bin", strata=np.zeros(5), baselines={"signal_only": signal}, decoys=kinds
    )
    got = rec.set_index(["comparison", "score"])
    assert set(got.index.get_level_values(0)) == {
        "all",
        "matched",
        "vs_decoys",
        "vs_neighbour_enhancer",
        "vs_acetylated_site",
    }
    # vs decoys: 1 positive against the 3 decoy-bearing rows; the model puts one decoy above the enhancer
    assert got.loc[("vs_decoys", "effect"), "n_neg"] == 3
    assert got.loc[("vs_decoys", "effect"), "auroc"] == pytest.approx(2 / 3)
    assert got.loc[("vs_decoys", "signal_only"), "auroc"] == pytest.approx(0.5)  # all tied
    assert got.loc[("all", "signal_only"), "auroc"] == pytest.approx(0.625)  # beats only the unsignalled row
    assert got.loc[("vs_acetylated_site", "effect"), "n_neg"] == 1
    # no decoys given (version 1 tables): the two historical comparisons only
    plain = perturb.recovery(rows, lab, what="distal_bin", strata=np.zeros(5))
    assert set(plain["comparison"]) == {"all", "matched"}


def test_signal_only_scores_are_each_bins_own_input(smoke_dataset, smoke_raw):
    """bin_signal = ln(mean per-base depth over the row's hg19 2 kb bin + 1), computed here from the reads."""
    from chromexp.data import io

    ds = smoke_dataset
    genes = ds.genes.groupby("strand").head(3)  # both strands: the bins of minus-strand genes are reversed
    regions = [r for r in perturb.regions() if r.kind == "distal"][::5]
    table = perturb.region_table(genes, regions).assign(mark="H3K27ac")
    got = perturb.bin_signal(ds, table)
    reads = io.read_tagalign(smoke_raw / "E003-H3K27ac.tagAlign.gz")
    want = []
    for row in table.itertuples():
        r = reads[reads["chrom"] == row.chrom]
        covered = (np.minimum(r["end"], row.end) - np.maximum(r["start"], row.start)).clip(lower=0).sum()
        want.append(np.log(covered / (row.end - row.start) + 1.0))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.ptp(got) > 0.1  # not a constant: the test can tell bins apart
    # pCREs: the maximum of the fragment's 100 bp bins of the mark (padding excluded)
    pc = ds.pcre_table().head(12).assign(mark="H3K27ac")
    x, mask, _, _ = ds.pcres(marks=["H3K27ac"], resolution=100)
    for (g, slot), value in zip(pc[["gene_index", "slot"]].to_numpy(), perturb.pcre_signal(ds, pc)):
        assert value == pytest.approx(float(x[g, slot, 0][~mask[g, slot]].max()))


def test_bad_input_is_reported(setup):
    models, x = setup
    with pytest.raises(ValueError, match="levels"):
        perturb.perturbation_predictions(models, x, levels=(1.5,))
    with pytest.raises(ValueError, match="mark_index"):
        perturb.perturbation_predictions(models, x, mark_index=2)
    with pytest.raises(ValueError, match="regressors"):
        perturb.perturbation_predictions([cf.ChromoformerClassifier(1, TINY)], x)
    with pytest.raises(ValueError, match="planted truth"):
        perturb.read_planted_enhancers("/nonexistent")


def _tiny_params(params, **train):
    cfg = dict(params["model"]["chromoformer"])
    cfg.update(
        d_model=16, d_model_reg=16, embed_ff=16, pairwise_ff=16, reg_layers=1, reg_heads=2, reg_ff=16, head_hidden=8
    )
    return {
        **params,
        "model": {**params["model"], "chromoformer": cfg},
        "train": {**params["train"], "max_epochs": 1, **train},
    }


def test_fold_models_reuse_notebook_40_checkpoints_or_train(smoke_dataset, smoke_params, tmp_path):
    from chromexp.experiments import chromoformer as ct

    params = _tiny_params(smoke_params)
    ds = smoke_dataset
    x = ci.dataset_inputs(ds, list(ds.marks))
    # notebook 40's recipe writes the fold-1 checkpoint
    ct.train_and_evaluate(ds, params, [("H3K27ac",)], folds=[1], checkpoint_dir=tmp_path, inputs=x, progress=False)
    with pytest.raises(ValueError, match="notebook 40"):
        perturbation.fold_models(ds, params, "H3K27ac", [1, 2], tmp_path, inputs=x, train_missing=False)
    models, src = perturbation.fold_models(ds, params, "H3K27ac", [1, 2], tmp_path, inputs=x)
    assert src["source"].tolist() == ["checkpoint", "trained"]
    again, src2 = perturbation.fold_models(ds, params, "H3K27ac", [1, 2], tmp_path, inputs=x)
    assert src2["source"].tolist() == ["checkpoint", "checkpoint"]
    xi = ci.select_marks(ci.subset(x, [0, 1, 2]), [list(ds.marks).index("H3K27ac")])
    with torch.no_grad():
        for a, b in zip(models, again, strict=True):
            assert torch.equal(a(**xi), b(**xi))
    # a checkpoint trained with other parameters is never reused
    other = _tiny_params(smoke_params, lr=5.0e-4)
    _, src3 = perturbation.fold_models(ds, other, "H3K27ac", [1], tmp_path, inputs=x)
    assert src3["source"].tolist() == ["trained"]


def test_multi_mark_fold_models_are_notebook_40s_and_50s(smoke_dataset, smoke_params, tmp_path):
    """A perturbation on a multi-mark model reuses the all-marks / pair checkpoint of notebook 40 / 50."""
    from chromexp.experiments import chromoformer as ct

    params = _tiny_params(smoke_params)
    params = {**params, "marks": ["H3K4me1", "H3K4me3", "H3K27ac"]}
    params["model"]["chromoformer"]["mark_sets"] = [["H3K27ac", "H3K4me1"]]
    ds = smoke_dataset
    x = ci.dataset_inputs(ds, list(ds.marks))
    all_marks = perturb.model_marks("all", "H3K27ac", params)
    pair = perturb.model_marks("H3K4me1+H3K27ac", "H3K27ac", params)
    assert all_marks == ("H3K4me1", "H3K4me3", "H3K27ac") and pair == ("H3K27ac", "H3K4me1")  # notebook 50's order
    assert perturb.model_marks(None, "H3K27ac", params) == ("H3K27ac",)
    with pytest.raises(ValueError, match="does not see"):
        perturb.model_marks("H3K4me1+H3K4me3", "H3K27ac", params)
    ct.train_and_evaluate(ds, params, [all_marks, pair], folds=[1], checkpoint_dir=tmp_path, inputs=x, progress=False)
    for marks in (all_marks, pair):
        models, src = perturbation.fold_models(ds, params, marks, [1], tmp_path, inputs=x, train_missing=False)
        assert src["source"].tolist() == ["checkpoint"] and models[0].n_marks == len(marks)


def test_tables_and_truth_on_the_smoke_dataset(smoke_dataset, smoke_raw):
    ds = smoke_dataset
    idx = np.flatnonzero(ds.n_pcres() > 0)[:6]
    x = ci.select_marks(ci.subset(ci.dataset_inputs(ds, list(ds.marks)), idx), [list(ds.marks).index("H3K27ac")])
    genes = ds.genes.iloc[idx].reset_index(drop=True)
    models = tiny_models(2)
    abl = perturb.ablate_pcres(models, x)
    info = ds.pcre_table()
    t = perturb.pcre_table(
        abl,
        genes,
        info[info["gene_index"].isin(idx)],
        cell_type="E003",
        provenance=ds.provenance,
        model="chromoformer-reg",
        mark="H3K27ac",
        gene_set="active",
    )
    assert list(t.columns) == [*perturb.PCRE_COLUMNS, perturb.OOF_COLUMN] and len(t) == int(ds.n_pcres()[idx].sum())
    assert (t["frequency"] > 1.5).all() and t["effect"].notna().all()
    truth = perturb.read_planted_enhancers(smoke_raw)
    # every planted pcHi-C enhancer of a kept pCRE is found by coordinates (truth and dataset agree)
    all_pcres = info.assign(gene_id=ds.genes["gene_id"].to_numpy()[info["gene_index"]])
    lab = perturb.label_pcres(all_pcres, truth, "E003")
    assert 0 < lab.mean() < 1
    res = perturb.perturbation_predictions(models, x, perturb.regions(), (1.0, 0.0))
    eff = perturb.effects_table(
        res,
        genes,
        cell_type="E003",
        provenance=ds.provenance,
        model="chromoformer-reg",
        mark="H3K27ac",
        gene_set="active",
    )
    distal = eff[(eff["level"] == 0.0) & (eff["region_kind"] == "distal")]
    assert set(distal["end"] - distal["start"]) == {2000}
    assert perturb.label_distal(distal, truth, "E003").dtype == bool


def test_fig6_statistics_of_an_engine_table_and_their_panels(setup):
    import matplotlib

    matplotlib.use("Agg")
    from chromexp.analyses import effects
    from chromexp.plots import manuscript

    models, x = setup
    genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(5)], "chrom": "chr2", "tss": 50_000, "strand": "+"})
    res = perturb.perturbation_predictions(models, x, perturb.regions(), (1.0, 0.5, 0.0))
    t = perturb.effects_table(
        res,
        genes,
        cell_type="E116",
        provenance="semi-synthetic",
        model="chromoformer-reg",
        mark="H3K27ac",
        gene_set="active",
    )
    curves, by_d = effects.level_curves(t), effects.effect_by_distance(t)
    assert set(curves["region_kind"]) == {"promoter", "distal"} and len(by_d) == 16
    assert (curves["n_genes"] == 5).all() and (curves["n_folds"] == len(models)).all()
    decay = effects.decay_length(effects.effect_by_distance(t, absolute=True))
    assert decay.shape == (1, 6)
    fig = manuscript.fig6a_perturbation_levels(curves)
    assert "SEMI-SYNTHETIC" in fig._suptitle.get_text()
    fig = manuscript.fig6b_effect_by_distance(by_d)
    assert "SEMI-SYNTHETIC" in fig._suptitle.get_text()


def test_answer_lines_report_the_signal_baseline_the_decoys_and_out_of_fold_effects():
    """Notebook 60's Answer reads every comparison planted_recovery writes (issue 30 items 3 and 4)."""
    rows = []
    for effects, comparison, score, auroc in [
        ("fold_mean", "matched", "effect", 0.80),
        ("fold_mean", "matched", "signal_only", 0.95),
        ("fold_mean", "matched", "distance_only", 0.50),
        ("fold_mean", "vs_decoys", "effect", 0.66),
        ("fold_mean", "vs_decoys", "signal_only", 0.51),
        ("fold_mean", "vs_neighbour_enhancer", "effect", 0.48),
        ("fold_mean", "vs_acetylated_site", "effect", 0.83),
        ("out_of_fold", "matched", "effect", 0.71),
        ("fold_mean_oof_genes", "matched", "effect", 0.82),
    ]:
        rows.append(
            {"what": "pcre", "model": "chromoformer-reg-all", "mark": "H3K27ac", "gene_set": "active"}
            | {"effects": effects, "comparison": comparison, "score": score, "auroc": auroc}
        )
    (line,) = perturb.recovery_lines(pd.DataFrame(rows))
    assert "AUROC of the effect 0.80, signal only 0.95, distance only 0.50" in line
    assert "against acetylated decoys only: effect 0.66, signal only 0.51 (the model tells" in line
    # a difference under two null SDs of an AUROC is not called one: 10 + 10 rows, SD sqrt(21 / 1200) = 0.13
    few = pd.DataFrame(rows).assign(n_pos=10, n_neg=10)
    (small,) = perturb.recovery_lines(few)
    assert "does not tell enhancers from decoys clearly better" in small and "null SD of an AUROC 0.13" in small
    (large,) = perturb.recovery_lines(few.assign(n_pos=300, n_neg=130))
    assert "(the model tells enhancers from decoys better than their signal does; null SD of an AUROC 0.03)" in large
    assert "neighbour enhancers 0.48, acetylated sites 0.83" in line
    assert "out-of-fold effects (each gene by its test fold's model): 0.71 vs 0.82" in line
    # without decoys (simulator version 1) the decoy clause is absent
    (plain,) = perturb.recovery_lines(pd.DataFrame(rows[:3]))
    assert "decoys" not in plain and "out-of-fold" not in plain
