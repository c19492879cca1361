"""The hybrid cross-celltype loss: numpy oracle, gradcheck, invariances, MSE limit, masking."""

import numpy as np
import pytest
import torch

from chromexp.training.losses import HYBRID_GRID, HybridLoss, cross_celltype_pearson


def numpy_hybrid(pred, obs, alpha, beta, eps=1e-8):
    """A literal numpy transcription of Mittal's loss as specified (docs/methods.md)."""
    terms = []
    for p, y in zip(pred, obs, strict=True):
        if y.max() == y.min():
            continue  # masked
        pc, yc = p - p.mean(), y - y.mean()
        r = (pc * yc).sum() / (np.sqrt((pc**2).sum()) * np.sqrt((yc**2).sum()) + eps)
        terms.append(1 - r)
    l_p = np.mean(terms) if terms else 0.0
    return alpha * l_p + beta * np.mean((pred - obs) ** 2)


@pytest.fixture
def batch():
    rng = np.random.default_rng(4)
    obs = rng.normal(size=(32, 5))
    pred = 0.3 * obs + rng.normal(size=(32, 5))
    obs[3] = 1.7  # constant across cell types: masked
    return pred, obs


@pytest.mark.parametrize(("alpha", "beta"), HYBRID_GRID)
def test_equals_numpy_version(batch, alpha, beta):
    pred, obs = batch
    got = HybridLoss(alpha, beta)(torch.tensor(pred, dtype=torch.float32), torch.tensor(obs, dtype=torch.float32))
    assert float(got) == pytest.approx(numpy_hybrid(pred, obs, alpha, beta), rel=1e-6, abs=1e-6)
    got64 = HybridLoss(alpha, beta)(torch.tensor(pred), torch.tensor(obs))
    assert got64.dtype == torch.float64
    assert float(got64) == pytest.approx(numpy_hybrid(pred, obs, alpha, beta), rel=1e-12, abs=1e-12)


def test_gradcheck_float64(batch):
    pred, obs = batch
    p = torch.tensor(pred[:8], requires_grad=True)
    y = torch.tensor(obs[:8])
    assert torch.autograd.gradcheck(lambda q: HybridLoss(10.0, 1.0)(q, y), (p,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda q: HybridLoss(1.0, 0.0)(q, y), (p,), eps=1e-6, atol=1e-5)


def test_invariant_to_per_gene_affine_maps_when_beta_is_zero(batch):
    pred, obs = batch
    rng = np.random.default_rng(9)
    a = rng.uniform(0.1, 10, size=(32, 1))
    b = rng.normal(size=(32, 1)) * 50
    loss = HybridLoss(1.0, 0.0)
    y = torch.tensor(obs)
    assert float(loss(torch.tensor(a * pred + b), y)) == pytest.approx(float(loss(torch.tensor(pred), y)), abs=1e-6)
    # ... and not with the MSE term (the test can fail)
    mixed = HybridLoss(1.0, 1.0)
    assert abs(float(mixed(torch.tensor(a * pred + b), y)) - float(mixed(torch.tensor(pred), y))) > 1.0


def test_equals_mse_when_alpha_is_zero(batch):
    pred, obs = batch
    p, y = torch.tensor(pred), torch.tensor(obs)
    assert float(HybridLoss(0.0, 1.0)(p, y)) == pytest.approx(float(torch.nn.functional.mse_loss(p, y)), rel=1e-12)
    assert float(HybridLoss(0.0, 2.5)(p, y)) == pytest.approx(2.5 * float(torch.nn.functional.mse_loss(p, y)))
    # ... also with one cell type (a leave-one-out run on two cell types trains on one)
    assert float(HybridLoss(0.0, 1.0)(p[:, :1], y[:, :1])) == pytest.approx(
        float(torch.nn.functional.mse_loss(p[:, :1], y[:, :1]))
    )


def test_masked_genes_change_nothing(batch):
    pred, obs = batch
    keep = np.ones(32, bool)
    keep[3] = False
    loss = HybridLoss(1.0, 0.0)
    full = loss(torch.tensor(pred), torch.tensor(obs))
    without = loss(torch.tensor(pred[keep]), torch.tensor(obs[keep]))
    assert float(full) == pytest.approx(float(without), abs=1e-12)
    # any prediction for the masked gene: same loss, zero gradient on it
    p = torch.tensor(pred, requires_grad=True)
    loss(p, torch.tensor(obs)).backward()
    assert torch.all(p.grad[3] == 0)
    assert torch.any(p.grad[0] != 0)
    # the Pearson term of the mixed loss ignores it too; the MSE (over all B × T entries) does not
    l_p, _ = HybridLoss(1.0, 1.0).terms(torch.tensor(pred), torch.tensor(obs))
    l_p2, _ = HybridLoss(1.0, 1.0).terms(torch.tensor(pred[keep]), torch.tensor(obs[keep]))
    assert float(l_p) == pytest.approx(float(l_p2), abs=1e-12)


def test_all_masked_batch_has_zero_pearson_term():
    y = torch.ones(4, 3)
    p = torch.randn(4, 3, requires_grad=True)
    out = HybridLoss(5.0, 0.0)(p, y)
    assert float(out.detach()) == 0.0
    out.backward()
    assert torch.all(p.grad == 0)


def test_per_gene_r_equals_numpy_corrcoef():
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    r, varies = cross_celltype_pearson(torch.tensor(p), torch.tensor(y))
    ref = [np.corrcoef(a, b)[0, 1] for a, b in zip(p, y, strict=True)]
    np.testing.assert_allclose(r.numpy(), ref, atol=1e-7)
    assert varies.all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="not both 0"):
        HybridLoss(0, 0)
    with pytest.raises(ValueError, match="≥ 0"):
        HybridLoss(-1, 1)
    with pytest.raises(ValueError, match="at least 2 cell types"):
        HybridLoss(1, 1)(torch.zeros(3, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="one shape"):
        HybridLoss(1, 1)(torch.zeros(3, 2), torch.zeros(3, 3))
    assert repr(HybridLoss(100, 1)) == "HybridLoss(alpha=100, beta=1, eps=1e-08)"
