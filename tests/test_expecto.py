"""ExPecto's linear model: the bases equal ExPecto's formula, the 200-bp merge equals re-binned depth
(bedtools oracle), the ridge equals its closed form, α is chosen on validation Spearman."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from scipy import stats

from chromexp.baselines import expecto
from chromexp.data import signal


def expecto_formula(d):
    """A literal transcription of ExPecto's compute_effects bases (predict.py@05f482c), strand already applied."""
    return np.vstack(
        [
            np.exp(-0.01 * np.floor(np.abs((d) / 200.0))) * ((d) <= 0),
            np.exp(-0.02 * np.floor(np.abs((d) / 200.0))) * ((d) <= 0),
            np.exp(-0.05 * np.floor(np.abs((d) / 200.0))) * ((d) <= 0),
            np.exp(-0.1 * np.floor(np.abs((d) / 200.0))) * ((d) <= 0),
            np.exp(-0.2 * np.floor(np.abs((d) / 200.0))) * ((d) <= 0),
            np.exp(-0.01 * np.floor(np.abs((d) / 200.0))) * ((d) >= 0),
            np.exp(-0.02 * np.floor(np.abs((d) / 200.0))) * ((d) >= 0),
            np.exp(-0.05 * np.floor(np.abs((d) / 200.0))) * ((d) >= 0),
            np.exp(-0.1 * np.floor(np.abs((d) / 200.0))) * ((d) >= 0),
            np.exp(-0.2 * np.floor(np.abs((d) / 200.0))) * ((d) >= 0),
        ]
    )


@pytest.mark.parametrize(
    "distance",
    [
        np.arange(-19_900, 19_901, 200),  # the 200 bins of 200 bp
        np.arange(-19_950, 19_951, 100),  # the 400 bins of 100 bp (k still in 200-bp units)
        np.arange(-20_000, 20_001),  # every integer distance, 0 included
        np.array([-995_000.0, -5_000, 0, 5_000, 15_000]),  # 10-kb bin centres (issue 26)
    ],
)
def test_bases_equal_expecto_formula_at_every_distance(distance):
    np.testing.assert_array_equal(expecto.spatial_bases(distance), expecto_formula(distance.astype(float)))


def test_bin_centres_and_steps():
    d = expecto.bin_centres(200, 200)
    assert d[0] == -19_900 and d[-1] == 19_900 and not (d == 0).any()
    k = np.floor(np.abs(d) / 200)
    j = np.arange(200)
    np.testing.assert_array_equal(k, np.where(j <= 99, 99 - j, j - 100))
    np.testing.assert_array_equal(expecto.bin_centres(400, 100), np.arange(-19_950, 19_951, 100))
    b = expecto.spatial_bases(d)
    assert ((b[:5] > 0) != (b[5:] > 0)).all()  # no bin counted both upstream and downstream
    with pytest.raises(ValueError, match="even"):
        expecto.bin_centres(199, 200)


def test_feature_order_is_expecto_tile_repeat():
    rng = np.random.default_rng(0)
    n_tracks, n_bins = 7, 200
    x = rng.random((5, n_tracks, n_bins))
    d = expecto.bin_centres(n_bins, 200)
    basis = expecto_formula(d).T  # (bins, 10)
    # ExPecto: np.tile(effects, 10) * np.repeat(basis, nfeatures, axis=1), summed over positions
    ref = sum(np.tile(x[:, :, j], 10) * np.repeat(basis[j : j + 1], n_tracks, axis=1) for j in range(n_bins))
    np.testing.assert_allclose(expecto.features(x, d), ref, rtol=1e-12)
    z = expecto.features(x, d)
    m, f = 6, 3  # column m·F + f is basis m (downstream, λ = 0.02) of track f
    assert z[0, m * n_tracks + f] == pytest.approx((x[0, f] * basis[:, m]).sum())


def test_features_validate_shapes():
    with pytest.raises(ValueError, match="bins but distance_bp"):
        expecto.features(np.zeros((2, 7, 200)), expecto.bin_centres(400, 100))
    with pytest.raises(ValueError, match="genes, tracks, bins"):
        expecto.features(np.zeros((7, 200)), expecto.bin_centres(200, 200))


@pytest.fixture(scope="module")
def bedtools_depth(tmp_path_factory):
    """Per-base depth of bedtools genomecov -bga on the signal tests' tagAlign fixture."""
    if shutil.which("bedtools") is None:
        pytest.skip("bedtools is not installed")
    from test_signal import SIZES, _bedtools, _per_base, _reads

    root = tmp_path_factory.mktemp("expecto")
    reads = _reads(seed=5)
    bed = root / "sorted.bed"
    reads.sort_values(["chrom", "start"]).assign(name="N", score=1000)[
        ["chrom", "start", "end", "name", "score", "strand"]
    ].to_csv(bed, sep="\t", header=False, index=False)
    genome = root / "genome.txt"
    genome.write_text("".join(f"{c}\t{n}\n" for c, n in SIZES.items()))
    return reads, _per_base(_bedtools(["-bga"], bed, genome))


@pytest.mark.parametrize("strand", ["+", "-"])
def test_200bp_merge_equals_rebinning_raw_depth(bedtools_depth, strand):
    reads, depth = bedtools_depth
    cov = signal.ReadCoverage.from_reads(reads)
    starts = np.array([0, 333, 5_000, 17_999])  # 12-kb windows of chr1 (the fixture's chr1 is 30 kb)
    length = 12_000
    stored = signal.orient(
        signal.log_transform(signal.binned_means(cov, ["chr1"] * 4, starts, length, 100)), [strand] * 4
    )
    merged = expecto.merge_bins(stored, 2)
    brute = np.stack([[depth["chr1"][s + o : s + o + 200].mean() for o in range(0, length, 200)] for s in starts])
    want = signal.orient(signal.log_transform(brute), [strand] * 4)
    assert merged.shape == (4, 60) and merged.dtype == np.float32
    np.testing.assert_allclose(merged, want, rtol=2e-6, atol=2e-7)  # equal to float32 rounding
    # the naive mean of the two ln values is *not* the 200-bp value (the test can fail)
    naive = stored.reshape(4, 60, 2).mean(-1)
    assert np.abs(naive - want).max() > 1e-2


def test_merge_bins_other_bases_and_errors():
    depth = np.array([[0.0, 3.0, 1.5, 1.5]])
    for base, fn in (("e", np.log1p), (2, lambda m: np.log2(m + 1)), (10, lambda m: np.log10(m + 1))):
        np.testing.assert_allclose(
            expecto.merge_bins(fn(depth), 2, base), fn(np.array([[1.5, 1.5]])).astype(np.float32), rtol=1e-6
        )
    with pytest.raises(ValueError, match="multiple of factor"):
        expecto.merge_bins(np.zeros((1, 5)), 2)
    with pytest.raises(ValueError, match="log_base"):
        expecto.merge_bins(np.zeros((1, 4)), 2, 3)


def test_ridge_equals_closed_form_float64():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(300, 70)) * rng.uniform(0.1, 10, 70) + rng.normal(size=70)
    z[:, 5] = 2.0  # a constant feature: left unscaled, weight 0
    y = z[:, :10] @ rng.normal(size=10) + rng.normal(size=300)
    fit = expecto.fit_ridge(z[:200], y[:200], z[200:], y[200:], alphas=[0.37])
    x = (z[:200] - z[:200].mean(0)) / np.where(z[:200].std(0) == 0, 1, z[:200].std(0))
    xc, yc = x - x.mean(0), y[:200] - y[:200].mean()
    w = np.linalg.solve(xc.T @ xc + 0.37 * np.eye(70), xc.T @ yc)
    b = y[:200].mean() - x.mean(0) @ w
    np.testing.assert_allclose(fit.coef, w, atol=1e-8, rtol=0)
    assert fit.intercept == pytest.approx(b, abs=1e-8)
    assert fit.n_constant == 1 and fit.coef[5] == 0
    xs = (z[200:] - fit.mean) / fit.scale
    np.testing.assert_allclose(fit.predict(z[200:]), xs @ w + b, atol=1e-8, rtol=0)
    # ... and to sklearn's Ridge on the same standardised features
    from sklearn.linear_model import Ridge

    ref = Ridge(alpha=0.37, solver="cholesky").fit(x, y[:200])
    np.testing.assert_allclose(fit.coef, ref.coef_, atol=1e-8, rtol=0)
    assert fit.intercept == pytest.approx(ref.intercept_, abs=1e-8)


def test_alpha_chosen_by_validation_spearman():
    rng = np.random.default_rng(8)
    z = rng.normal(size=(240, 40))
    y = z[:, 0] + 0.3 * rng.normal(size=240)
    fit = expecto.fit_ridge(z[:120], y[:120], z[120:180], y[120:180])
    assert len(fit.selection) == 15 and fit.selection["alpha"].iloc[0] == pytest.approx(1e-3)
    sel = fit.selection.set_index("alpha")["validation_spearman"]
    assert sel[fit.alpha] == sel.max()
    # brute force of one α
    from sklearn.linear_model import Ridge

    x = (z[:120] - fit.mean) / fit.scale
    pred = Ridge(alpha=fit.alpha).fit(x, y[:120]).predict((z[120:180] - fit.mean) / fit.scale)
    assert sel[fit.alpha] == pytest.approx(stats.spearmanr(y[120:180], pred)[0])


def test_expression_targets():
    rpkm = np.array([0.0, 1.0, 10.0])
    np.testing.assert_allclose(expecto.expression_target(rpkm), np.log2(rpkm + 1))
    np.testing.assert_allclose(expecto.expression_target(rpkm, "ln_pc"), np.log(rpkm + 1e-4))
    with pytest.raises(ValueError, match="Unknown target"):
        expecto.expression_target(rpkm, "log10")
    with pytest.raises(ValueError, match="≥ 0"):
        expecto.expression_target([-1.0])


def test_ridge_refuses_bad_input():
    z = np.zeros((10, 3))
    with pytest.raises(ValueError, match="features"):
        expecto.fit_ridge(z, np.zeros(9), z, np.zeros(10))
    with pytest.raises(ValueError, match="positive"):
        expecto.fit_ridge(z, np.zeros(10), z, np.zeros(10), alphas=[0.0])
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        expecto.fit_ridge(bad, np.zeros(10), z, np.zeros(10))


def test_200bp_merge_equals_rebinning_real_e003_depth(smoke_params):
    """On the vendored real E003 depth: the store's 100-bp bins merged = the depth re-binned at 200 bp, strand-oriented."""
    from chromexp.data import dataset

    ds = dataset.load_real_e003(smoke_params)
    _, _, _, tracks = dataset.real_e003_inputs()
    g = ds.genes
    merged = expecto.merge_bins(ds.promoter(resolution=100, half_window=20_000), 2)
    for m, mark in enumerate(ds.marks):
        raw = signal.binned_means(tracks[mark], g["chrom"].to_numpy(), g["tss"].to_numpy() - 20_000, 40_000, 200)
        want = signal.orient(signal.log_transform(raw), g["strand"].to_numpy())
        np.testing.assert_allclose(merged[:, m], want, rtol=2e-6, atol=2e-7)
    assert merged.shape == (len(g), len(ds.marks), 200) and (merged > 0).mean() > 0.5
