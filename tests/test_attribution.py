"""Attributions through captum (chromexp.analyses.attribution) against autograd and exhaustive ablation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_perturb import tiny_models

from chromexp.analyses import attribution, perturb
from chromexp.models import chromoformer_inputs as ci


@pytest.fixture(scope="module")
def setup():
    model = tiny_models(1, seed=7)[0]
    x = ci.random_inputs(4, n_marks=1, n_pcres=[0, 2, 5, 1], seed=11, window=perturb.STUDY_WINDOW)
    return model, x


def _autograd(model, x):
    keys = [k for k in x if k.startswith("promoter_")]
    leaves = {k: x[k].clone().requires_grad_(True) for k in keys}
    out = model(**{**x, **leaves})
    grads = torch.autograd.grad(out.sum(), [leaves[k] for k in keys])
    return {int(k.split("_")[1]): g.double().numpy() for k, g in zip(keys, grads, strict=True)}


def test_captum_gradients_equal_autograd(setup):
    model, x = setup
    ref = _autograd(model, x)
    sal = attribution.attribute(model, x, "saliency")
    ixg = attribution.attribute(model, x, "input_x_gradient")
    assert set(sal) == {2000, 500, 100}
    for res in ref:
        assert sal[res].shape == (4, 1, perturb.STUDY_WINDOW // res)
        np.testing.assert_allclose(sal[res], ref[res], atol=1e-7, rtol=1e-5)
        np.testing.assert_allclose(ixg[res], ref[res] * x[f"promoter_{res}"].double().numpy(), atol=1e-7, rtol=1e-5)
        assert np.abs(ref[res]).max() > 0
    assert model.training is False


def test_integrated_gradients_match_exhaustive_ablation(setup):
    """IG from a reference that differs only in one region sums to minus that region's ablation effect."""
    model, x = setup
    regs = perturb.regions()
    abl = perturb.perturbation_predictions([model], x, regs, (1.0, 0.0)).effects[0, :, :, 1]  # (genes, regions)
    for i in (0, 1, 9):  # the promoter, an upstream and a downstream bin
        ablated = perturb.perturb_inputs(x, regs[i], 0.0)
        refs = [{k: v for k, v in ablated.items() if k.startswith("promoter_")}]
        ig = attribution.attribute(model, x, "integrated_gradients", baselines=refs, n_steps=64, mark_index=0)
        total = sum(a.sum(axis=1) for a in ig.values())
        np.testing.assert_allclose(-total, abl[:, i], atol=2e-3 + 0.02 * np.abs(abl[:, i]).max())
        # attributions outside the region are exactly zero (input equals the reference there)
        outside = np.ones(perturb.STUDY_WINDOW // 100, dtype=bool)
        outside[regs[i].bins[100]] = False
        assert np.abs(ig[100][:, outside]).max() == 0


def test_baseline_sets_and_ablation_check(setup):
    model, x = setup
    for kind, n in (("zeros", 1), ("mean", 1), ("genes", 3)):
        refs = attribution.baseline_set(x, kind, n=3)
        assert len(refs) == n and refs[0]["promoter_100"].shape == (1, 1, 400)
    ig = attribution.attribute(model, x, baselines=attribution.baseline_set(x, "genes", n=2), n_steps=8, mark_index=0)
    assert ig[500].shape == (4, 80) and np.isfinite(ig[500]).all()
    regs = perturb.regions()
    sums = attribution.region_sums(ig, regs, 2000)
    assert sums.shape == (4, 17)
    check = attribution.ablation_check(ig, np.random.default_rng(0).normal(size=(4, 17)), regs)
    assert set(check) == {"mean_spearman", "pearson", "n_genes"}
    with pytest.raises(ValueError, match="method"):
        attribution.attribute(model, x, "deep_magic")
    with pytest.raises(ValueError, match="baseline kind"):
        attribution.baseline_set(x, "median")
