"""CLASTER adapted (notebook 47): nascent targets, the nascent simulator, the structure inputs, the experiments.

Oracles: CLASTER's own target code (literal transcription) and pyBigWig's ``stats`` for the
window means; brute-force builders of the virtual-4C track and of a silenced / contact-removed
prediction; the planted decomposition, which must add up and match the simulated reads.
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest
import torch

from chromexp.analyses import claster as A
from chromexp.constants import MARKS
from chromexp.data import nascent as dn
from chromexp.experiments import claster as E
from chromexp.models import claster as C
from chromexp.training import train


# ----------------------------------------------------------------------------------------------
# CLASTER's target processing
# ----------------------------------------------------------------------------------------------
def test_targets_equal_clasters_code_except_its_wrapped_last_bin():
    rng = np.random.default_rng(0)
    stats = rng.gamma(0.5, 4.0, 2001)  # CLASTER's shape: 50 * 40 + 1 cells
    stats[[3, 700]] = np.nan  # None/NaN → 0 in both
    ref = dn.claster_targets_reference(stats)
    assert ref.shape == (41,)
    # ours on the same smoothed cells: whole 1-kb bins only
    from scipy.ndimage import gaussian_filter1d

    smoothed = gaussian_filter1d(np.clip(np.nan_to_num(stats), 0, None), 50)
    ours_same = smoothed[:2000].reshape(40, 50).mean(axis=1)
    np.testing.assert_allclose(ref[:40], ours_same, rtol=1e-12)
    # the last bin of CLASTER's code wraps around the array (bin 2000 + bins 0–48): not a block mean
    assert not np.isclose(ref[40], smoothed[2000:].mean())
    np.testing.assert_allclose(ref[40], (smoothed[2000] + smoothed[:49].sum()) / 50, rtol=1e-12)
    # claster_targets on exactly 40 bins = the reference code on the same 2,000 cells, without a wrapped bin
    ours = dn.claster_targets(stats[None, :2000])[0]
    np.testing.assert_allclose(ours, dn.claster_targets_reference(stats[:2000]), rtol=1e-12)
    with pytest.raises(ValueError, match="n_bins"):
        dn.claster_targets(stats[None, :2001])


def test_window_means_equal_pybigwig_stats_and_flip_with_the_strand(tmp_path):
    pyBigWig = pytest.importorskip("pyBigWig")
    rng = np.random.default_rng(1)
    starts = np.sort(rng.choice(np.arange(0, 90_000, 20), 1500, replace=False))
    ends = starts + rng.choice([20, 40, 60], len(starts))
    ends = np.minimum(ends, np.append(starts[1:], 100_000))
    track = pd.DataFrame(
        {"chrom": "chr1", "start": starts, "end": ends, "value": rng.integers(1, 9, len(starts)) * 1.0}
    )
    track = track[track["end"] > track["start"]].reset_index(drop=True)
    path = tmp_path / "t.bw"
    bw = pyBigWig.open(str(path), "w")
    bw.addHeader([("chr1", 100_000)])
    bw.addEntries(
        ["chr1"] * len(track), track["start"].tolist(), ends=track["end"].tolist(), values=track["value"].tolist()
    )
    bw.close()
    genes = pd.DataFrame({"chrom": ["chr1", "chr1"], "tss": [40_013, 55_007], "strand": ["+", "-"]})
    got = dn.window_cells(track, genes, half_window=20_000)
    bw = pyBigWig.open(str(path))
    for i, g in genes.iterrows():
        # CLASTER: bw.stats(chrom, TSS - shift, TSS + shift, type="mean", nBins=...), None -> 0; pyBigWig's
        # mean is over covered bases, so uncovered bases are added back as zeros with "coverage"
        mean = np.array([v or 0.0 for v in bw.stats("chr1", g.tss - 20_000, g.tss + 20_000, type="mean", nBins=2000)])
        cov = np.array(
            [v or 0.0 for v in bw.stats("chr1", g.tss - 20_000, g.tss + 20_000, type="coverage", nBins=2000)]
        )
        want = mean * cov
        np.testing.assert_allclose(got[i], want[::-1] if g.strand == "-" else want, rtol=1e-9, atol=1e-12)
    bw.close()


def test_body_area_is_the_simpson_mean_over_the_body_inside_the_window():
    p = np.tile(np.arange(40, dtype=float), (3, 1))
    area = dn.body_area(p, np.array([500.0, 3_000.0, 1e9]))
    assert area[0] == 20.0  # one bin: its value
    assert area[1] == pytest.approx(21.0)  # bins 20..22, linear: Simpson's mean is the midpoint
    assert area[2] == pytest.approx(29.5)  # clipped to the window: bins 20..39


# ----------------------------------------------------------------------------------------------
# the nascent simulator (smoke dataset)
# ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nascent_smoke(smoke_params, smoke_raw):
    from chromexp.simulate import nascent as sn

    manifest_before = (smoke_raw / "manifest.json").read_bytes()
    listed = json.loads(manifest_before)["files"]
    out = sn.ensure_nascent(smoke_params, "E003")
    return {"out": out, "manifest_before": manifest_before, "listed": listed, "raw": smoke_raw}


def test_nascent_stream_adds_files_only_and_is_deterministic(smoke_params, nascent_smoke):
    from chromexp.simulate import nascent as sn
    from chromexp.simulate.roadmap import _sha256

    raw = nascent_smoke["raw"]
    assert (raw / "manifest.json").read_bytes() == nascent_smoke["manifest_before"]
    for name, info in nascent_smoke["listed"].items():  # every file of the dataset keeps its bytes
        assert _sha256(raw / name) == info["sha256"], name
    track_bytes = nascent_smoke["out"]["track"].read_bytes()
    assert sn.is_current(smoke_params, "E003")
    again, truth = sn.simulate_cell_type(smoke_params, "E003", raw)
    assert gzip.decompress(track_bytes) == again  # same seed → the same reads
    other = {**smoke_params, "seed": smoke_params["seed"] + 1}
    assert sn.simulate_cell_type(other, "E003", raw)[0] != again


def test_planted_truth_adds_up_and_matches_the_simulated_reads(smoke_dataset, nascent_smoke):
    raw = nascent_smoke["raw"]
    truth = dn.read_truth(raw, "E003")
    parts = truth[list(dn.TRUTH_COMPONENTS)].sum(axis=1)
    np.testing.assert_allclose(parts, truth["expected"], rtol=1e-4)
    assert (truth[list(dn.TRUTH_COMPONENTS)] >= 0).all().all()
    genes = pd.read_csv(raw / "genes.tsv", sep="\t", dtype={"chrom": str})
    track = dn.read_track(nascent_smoke["out"]["track"])
    obs = dn.profile_targets(track, genes)
    exp = truth.pivot(index="gene_id", columns="bin", values="expected_smoothed").loc[genes["gene_id"]].to_numpy()
    # the reads are Poisson-gamma draws around the planted expectation, processed the same way
    assert np.corrcoef(np.log1p(obs.ravel()), np.log1p(exp.ravel()))[0, 1] > 0.95
    ratio = obs.sum() / exp.sum()
    assert 0.9 < ratio < 1.1
    # the gene's own pause peak lives in the bin starting at the TSS; its body only downstream, its antisense upstream
    t = truth.set_index(["gene_id", "bin"])
    pause = truth[truth["rho"] > 0].groupby("gene_id")["pause"].idxmax()  # expressed genes
    assert (truth.loc[pause, "offset_kb"] == 0).all()
    # (a 20-bp grid cell straddling the TSS may spill into the bin just across it, nothing further)
    assert (truth.loc[truth["offset_kb"] < -1, "body"] == 0).all()
    assert (truth.loc[truth["offset_kb"] >= 1, "antisense"] == 0).all()
    # eRNAs sit at active planted enhancers of this cell type
    enh = pd.read_csv(raw / "truth" / "enhancers.tsv.gz", sep="\t")
    assert truth["erna"].max() > 0
    assert set(smoke_dataset.genes["gene_id"]) <= set(t.index.get_level_values(0))
    assert (enh["contribution_E003"] > 0).any()


def test_nascent_is_refused_on_real_data(smoke_params):
    from chromexp.simulate import nascent as sn

    with pytest.raises(ValueError, match="semi-synthetic data only"):
        sn.ensure_nascent({**smoke_params, "data": {**smoke_params["data"], "source": "roadmap"}}, "E003")


# ----------------------------------------------------------------------------------------------
# structure inputs
# ----------------------------------------------------------------------------------------------
def _toy_pchic():
    genes = pd.DataFrame(
        {"gene_id": ["g+", "g-"], "chrom": ["chr1", "chr1"], "tss": [500_000, 800_000], "strand": ["+", "-"]}
    )
    pchic = pd.DataFrame(
        {
            "bait_chrom": "chr1",
            "bait_start": [498_000, 498_000, 798_500, 798_500, 900_000],
            "bait_end": [503_000, 503_000, 801_000, 801_000, 905_000],
            "other_chrom": "chr1",
            "other_start": [350_000, 600_500, 830_200, 1_500_000, 500_000],
            "other_end": [356_000, 601_700, 833_000, 1_505_000, 501_000],
            "frequency": [2.0, 3.5, 1.7, 4.0, 9.0],
        }
    )
    return genes, pchic


def test_virtual_4c_equals_a_brute_force_track_strand_oriented():
    genes, pchic = _toy_pchic()
    track, contacts = E.virtual_4c(genes, pchic, half=200_000, bin_bp=1_000)
    want = np.zeros((2, 400), np.float32)
    for i, g in genes.iterrows():
        for _, r in pchic.iterrows():
            if not (r.bait_start <= g.tss < r.bait_end):
                continue
            for b in range(400):
                lo = g.tss - 200_000 + 1000 * b
                if r.other_start < lo + 1000 and r.other_end > lo:
                    want[i, b] = max(want[i, b], r.frequency)
        if g.strand == "-":
            want[i] = want[i, ::-1]
    np.testing.assert_array_equal(track, want)
    assert set(contacts["gene_id"]) == {"g+", "g-"} and len(contacts) == 3  # 1.5 Mb is outside the window
    minus = contacts[contacts["gene_id"] == "g-"].iloc[0]
    assert minus["distance"] < 0  # upstream of a minus-strand gene lies at higher coordinates
    sq = E.square_map(genes, pchic, half=502_500, bin_bp=5_000)
    assert sq.shape == (2, 201, 201)
    np.testing.assert_array_equal(sq, np.transpose(sq, (0, 2, 1)))
    assert (sq[0] > E.SQUARE_EMPTY).sum() > 0 and sq[0, 100].max() == pytest.approx(np.log10(3.5))


def test_a_window_wider_than_the_simulated_reads_is_refused(smoke_params):
    p = {
        **smoke_params,
        "model": {**smoke_params["model"], "claster": {**smoke_params["model"]["claster"], "option": "B"}},
    }
    with pytest.raises(ValueError, match="would reveal the simulated 3-D structure"):
        E.check_window(p, "semi-synthetic", E.half_window(E.settings(p)))
    E.check_window(p, "real", 100_000)  # real data: allowed
    with pytest.raises(ValueError, match="option must be one of"):
        E.settings({**p, "model": {**p["model"], "claster": {**p["model"]["claster"], "option": "D"}}})


# ----------------------------------------------------------------------------------------------
# the experiments
# ----------------------------------------------------------------------------------------------
def _toy_predictor(structure: bool, n_outputs: int = 1):
    torch.manual_seed(0)
    net = C.adapted_model(structure="virtual_4c" if structure else None, n_outputs=n_outputs).eval()
    stats = {"landscape": (0.5, 0.7), "structure": (0.3, 1.1)}
    return E.Predictor(net, stats, 3.0, 2.0, clip=n_outputs > 1).eval()


def test_silencing_equals_brute_force_edit_and_predict_and_is_zero_at_level_one():
    rng = np.random.default_rng(3)
    marks = list(MARKS)
    x = rng.gamma(1.0, 0.5, (6, 7, 400)).astype(np.float32)
    genes = pd.DataFrame({"gene_id": [f"g{i}" for i in range(6)], "chrom": "chr1", "tss": 100_000 * np.arange(1, 7),
                          "strand": ["+", "-"] * 3})  # fmt: skip
    pred = _toy_predictor(False)
    rows = np.array([1, 4])
    t = A.silencing_effects(pred, x, genes, rows, marks=marks, level=0.0)
    reg = t[(t["region"] == "distal_03") & (t["gene_id"] == "g4")].iloc[0]
    edited = x[[4]].copy()
    idx = [marks.index(m) for m in A.SILENCED_MARKS]
    edited[:, idx, 60:80] = 0.0  # distal_03 = [6 kb, 8 kb) of the window = 100-bp bins 60..79
    with torch.no_grad():
        want = float(pred(torch.from_numpy(edited))[0] - pred(torch.from_numpy(x[[4]]))[0])
    assert reg["effect"] == pytest.approx(want, abs=1e-5)
    assert len(t) == 2 * 17 and set(t["region_kind"]) == {"promoter", "distal"}
    ones = A.silencing_effects(pred, x, genes, rows, marks=marks, level=1.0)
    assert np.abs(ones["effect"]).max() < 1e-5


def test_contact_removal_equals_rebuilding_the_track_without_the_contact():
    genes, pchic = _toy_pchic()
    track, contacts = E.virtual_4c(genes, pchic)
    x = np.random.default_rng(4).gamma(1.0, 0.5, (2, 7, 400)).astype(np.float32)
    pred = _toy_predictor(True)
    got = A.contact_removal_effects(pred, x, track, contacts, np.array([0, 1]))
    for _, c in got.iterrows():
        keep = pchic.drop(index=pchic.index[(pchic["other_start"] == c["start"])])
        rebuilt, _ = E.virtual_4c(genes, keep)
        with torch.no_grad():
            a = pred(torch.from_numpy(x[[c.gene_index]]), torch.from_numpy(rebuilt[[c.gene_index]]))
            b = pred(torch.from_numpy(x[[c.gene_index]]), torch.from_numpy(track[[c.gene_index]]))
        assert c["effect"] == pytest.approx(float(a[0] - b[0]), abs=1e-5)


def test_structure_gain_on_a_planted_table():
    rng = np.random.default_rng(5)
    rows = []
    for fold in (1, 2):
        for i in range(200):
            gid, obs = f"g{fold}_{i}", rng.normal(3, 1)
            with_enh = i < 100
            base = obs + rng.normal(0, 1.0 if with_enh else 0.5)
            better = obs + rng.normal(0, 0.3 if with_enh else 0.5)
            rows += [(fold, gid, "claster", obs, base), (fold, gid, "claster_v4c", obs, better if with_enh else base)]
    pred = pd.DataFrame(rows, columns=["fold", "gene_id", "model", "observed", "predicted"])
    group = {f"g{f}_{i}" for f in (1, 2) for i in range(100)}
    gain = A.structure_gain(pred, group, "claster", "claster_v4c").set_index(["fold", "group"])
    assert gain.loc[(0, "with_active_pchic_enhancer"), "delta_r"] > 0.2
    assert gain.loc[(0, "without"), "delta_r"] == pytest.approx(0.0)
    assert gain.loc[(0, "with_active_pchic_enhancer"), "wilcoxon_p"] < 1e-6
    assert gain.loc[(0, "all"), "n_genes"] == 400
    with pytest.raises(ValueError, match="no predictions"):
        A.structure_gain(pred[pred["model"] == "claster"], group, "claster", "claster_v4c")


def test_pause_peaks_and_summary():
    bins = np.arange(40)
    prof = []
    truth = []
    for gid, peak, pred_peak in (("a", 20, 20), ("b", 20, 21), ("c", 5, 20), ("d", 5, 5)):
        o = np.exp(-0.5 * (bins - peak) ** 2)
        prof.append(pd.DataFrame({"model": "m", "fold": 1, "gene_id": gid, "bin": bins, "offset_kb": bins - 20,
                                  "observed": o, "predicted": np.exp(-0.5 * (bins - pred_peak) ** 2)}))  # fmt: skip
        truth.append(pd.DataFrame({"gene_id": gid, "bin": bins, "expected_smoothed": o}))
    peaks = A.pause_peaks(pd.concat(prof), pd.concat(truth), "m")
    s = A.pause_summary(peaks).set_index("genes")
    assert s.loc["pause_dominated", "predicted_near_pause"] == 1.0
    assert s.loc["peak_elsewhere", "predicted_near_truth"] == 0.5
    assert s.loc["peak_elsewhere", "tss_guess_near_truth"] == 0.0


def test_smooth_l1_loss_in_the_engine():
    out, y = torch.tensor([[0.0, 3.0], [1.0, -0.2]]), torch.tensor([[0.5, 0.0], [1.0, 0.0]])
    want = torch.nn.functional.smooth_l1_loss(out, y)
    assert float(train.compute_loss(out, y, "smooth_l1")) == pytest.approx(float(want))
    assert "smooth_l1" in train.LOSSES


def test_profile_model_trains_and_predicts_in_target_units():
    rng = np.random.default_rng(6)
    n = 48
    x = rng.gamma(1.0, 0.5, (n, 7, 400)).astype(np.float32)
    y = (x[:, 1, 180:220].mean(axis=1, keepdims=True) * np.linspace(1, 2, 40)[None, :] * 10).astype(np.float32)
    torch.manual_seed(0)
    net = C.adapted_model(n_outputs=40)
    mean, sd = y.mean(axis=0), y.std(axis=0)
    z = torch.from_numpy((y - mean) / sd)
    tp = {"lr": 1e-3, "batch_size": 16, "max_epochs": 2, "lr_factor": 0.2, "lr_patience": 3, "min_lr": 1e-6,
          "early_stopping_patience": 2}  # fmt: skip
    fit = train.fit(net, (torch.from_numpy(x), z), (torch.from_numpy(x[:8]), z[:8]), train_params=tp,
                    loss="smooth_l1", optimizer="adamw", progress=False)  # fmt: skip
    pred = E.Predictor(fit.model, {"landscape": (0.0, 1.0)}, mean, sd, clip=True).eval()
    with torch.no_grad():
        out = pred(torch.from_numpy(x)).numpy()
    assert out.shape == (n, 40) and (out >= 0).all()
    m = E.profile_metrics(y, out, np.full(n, 5_000.0))
    assert set(m) == {"binwise_pearson_r", "binwise_spearman_rho", "gene_area_pearson_r", "gene_area_spearman_rho"}
