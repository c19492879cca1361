"""The engine with a loss object (the hybrid cross-celltype loss): batches of genes × cell types."""

import numpy as np
import pytest
import torch
from torch import nn
from train_settings import train_params

from chromexp.training import stacked, train
from chromexp.training.losses import HybridLoss


def _params(**kw):
    return train_params(**{"max_epochs": 4, **kw})


class PerCell(nn.Module):
    """(genes, cells, marks, bins) -> (genes, cells): one small network over every (gene, cell type) pair."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 6, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        n, t = x.shape[:2]
        return self.net(x.reshape(n * t, *x.shape[2:])).reshape(n, t)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 3, 2, 6, generator=g)
    y = x[:, :, 0, 2:4].mean(-1) * 2 + 0.3 * torch.randn(96, 3, generator=g) + torch.randn(96, 1, generator=g)
    return (x[:64], y[:64]), (x[64:], y[64:])


def _fit(data, loss, seed=1, **kw):
    torch.manual_seed(seed)
    model = PerCell()
    return train.fit(model, data[0], data[1], train_params=_params(), loss=loss, seed=seed, progress=False, **kw)


def test_alpha_zero_trains_exactly_like_mse(data):
    a = _fit(data, "mse")
    b = _fit(data, HybridLoss(0.0, 1.0))
    for p, q in zip(a.model.parameters(), b.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    # the engine's "mse" validation loss sums the 3 cell types per gene; the loss object averages them
    np.testing.assert_allclose(a.history["val_loss"], 3 * b.history["val_loss"], rtol=1e-5)


def test_validation_loss_is_over_all_validation_genes_at_once(data):
    loss = HybridLoss(10.0, 1.0)
    small = _fit(data, loss, eval_batch_size=5)
    large = _fit(data, loss, eval_batch_size=1000)
    np.testing.assert_allclose(small.history["val_loss"], large.history["val_loss"], rtol=1e-5)
    pred = torch.from_numpy(train.predict(small.model, data[1][0]))
    assert small.best_val_loss == pytest.approx(float(loss(pred, data[1][1])), rel=1e-5)
    # a mean of per-batch losses would differ (the Pearson term is not additive over genes)
    batches = [float(loss(pred[i : i + 5], data[1][1][i : i + 5])) for i in range(0, 32, 5)]
    assert abs(np.mean(batches) - small.best_val_loss) > 1e-3


def test_checkpoint_fingerprint_names_the_loss(data, tmp_path):
    path = tmp_path / "m.pt"
    _fit(data, HybridLoss(100.0, 1.0), checkpoint_path=path)
    again = _fit(data, HybridLoss(100.0, 1.0), checkpoint_path=path)  # read back, not retrained
    assert again.resumed_from == 4
    with pytest.raises(ValueError, match="different run"):
        _fit(data, HybridLoss(10.0, 1.0), checkpoint_path=path)


def test_loss_objects_refused_where_they_cannot_work(data):
    with pytest.raises(ValueError, match="whole batch"):
        train.compute_loss(torch.zeros(4, 3), torch.zeros(4, 3), HybridLoss(1.0, 1.0), reduction="sum")
    with pytest.raises(ValueError, match="Unknown loss"):
        stacked.fit_many(
            [PerCell()], [data[0]], [data[1]], train_params=_params(), loss=HybridLoss(1.0, 1.0), progress=False
        )
    with pytest.raises(ValueError, match="Unknown loss"):
        train.fit(PerCell(), data[0], data[1], train_params=_params(), loss="pearson", progress=False)
