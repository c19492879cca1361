"""The training engine's protocols: the Chromoformer paper's switch, the baselines' fixed protocol, clipping.

* ``chromoformer``: AdamW, lr 3e-5 × 0.87 per epoch (checked epoch by epoch), batch 64, every epoch
  runs (no early stopping even when the validation loss rises), the last epoch's weights are returned.
* ``fixed``: every epoch runs, the epoch with the best validation *score* is returned, Torch7's
  per-step learning-rate decay.
* ``murphy`` (the default) is unchanged: the same fingerprint as before the protocols existed.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from chromexp.config import load_params
from chromexp.training import train

BASE = {
    "lr": 1e-2,
    "batch_size": 8,
    "max_epochs": 6,
    "lr_factor": 0.2,
    "lr_patience": 3,
    "min_lr": 1e-6,
    "early_stopping_patience": 1,
}


def _data(seed=0, n=64, flip_validation=False):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    y = x @ torch.arange(1.0, 6.0) + 0.1 * torch.randn(n, generator=gen)
    vx, vy = x[:32] + 0.01, y[:32]
    if flip_validation:  # fitting the training set makes the validation loss rise
        vy = -vy
    return (x, y), (vx, vy)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 1))


def _snapshots():
    """A callback keeping a copy of the model's weights after every epoch (fit trains the model in place)."""
    states = {}

    def callback(model):
        def cb(epoch, row):
            states[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

        return cb

    return states, callback


def test_chromoformer_protocol_schedule_last_epoch_and_no_early_stopping():
    tp = {
        **BASE,
        "protocol": "chromoformer",
        "chromoformer_protocol": {"lr": 3e-5, "lr_gamma": 0.87, "batch_size": 64, "max_epochs": 10},
    }
    tr, va = _data(flip_validation=True)
    model = _model()
    states, cb = _snapshots()
    result = train.fit(model, tr, va, train_params=tp, optimizer="adam", seed=1, progress=False, callback=cb(model))
    h = result.history
    assert len(h) == 10 and not result.stopped_early  # patience 1 and a rising val loss: murphy would stop
    assert h["val_loss"].iloc[-1] > h["val_loss"].min()  # the last epoch is not the best by loss ...
    assert result.best_epoch == 10 and h["improved"].all()  # ... and is the one returned
    for got, want in zip(result.model.state_dict().values(), states[10].values(), strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    for e, lr in enumerate(h["lr"]):  # 3e-5 x 0.87 ** (epoch - 1), epoch by epoch
        assert lr == pytest.approx(3e-5 * 0.87**e, rel=1e-12)
    # AdamW whatever the caller asked for (the reference trains with AdamW)
    proto = train._Protocol(_model(), "adam", train._check_train_params(tp), 0, "m")
    assert isinstance(proto.opt, torch.optim.AdamW)
    murphy = train.fit(_model(), tr, va, train_params=BASE, optimizer="adam", seed=1, progress=False)
    assert murphy.stopped_early and len(murphy.history) < 6


def test_chromoformer_protocol_batch_size_from_its_block():
    tp = {
        **BASE,
        "protocol": "chromoformer",
        "chromoformer_protocol": {"lr": 3e-5, "lr_gamma": 0.87, "batch_size": 64, "max_epochs": 2},
    }
    resolved = train._check_train_params(tp)
    assert (resolved["lr"], resolved["batch_size"], resolved["max_epochs"]) == (3e-5, 64, 2)
    default = train._check_train_params({**BASE, "protocol": "chromoformer"})  # no block: the paper's numbers
    assert (default["lr"], default["lr_gamma"], default["batch_size"], default["max_epochs"]) == (3e-5, 0.87, 64, 10)
    with pytest.raises(ValueError, match="protocol"):
        train._check_train_params({**BASE, "protocol": "keras"})


def test_protocol_switch_from_the_parameter_files():
    params = load_params("E003", overrides={"train": {"protocol": "chromoformer"}})
    tp = train._check_train_params(params["train"])
    assert (tp["lr"], tp["lr_gamma"], tp["batch_size"], tp["max_epochs"]) == (3e-5, 0.87, 64, 10)
    with pytest.raises(ValueError, match="train.protocol"):
        load_params("E003", overrides={"train": {"protocol": "paper"}})


def test_fixed_protocol_keeps_the_best_score_and_runs_every_epoch():
    tr, va = _data(seed=2, flip_validation=True)
    model = _model(3)
    states, cb = _snapshots()
    calls = []

    def score(out, y):  # a score whose best epoch is not the last: prefer predictions near 0.3
        calls.append(len(y))
        return -float((out.mean() - 0.3).abs())

    tp = {**BASE, "protocol": "fixed", "max_epochs": 5}
    result = train.fit(model, tr, va, train_params=tp, seed=0, progress=False, callback=cb(model), score=score)
    h = result.history
    assert len(h) == 5 and calls == [32] * 5  # every epoch, scored over all validation genes at once
    best = int(h["val_score"].idxmax()) + 1
    assert result.best_epoch == best
    for got, want in zip(result.model.state_dict().values(), states[best].values(), strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert (h["lr"] == BASE["lr"]).all()  # constant without lr_decay


def test_fixed_protocol_torch7_learning_rate_decay_and_gradient_clipping():
    tr, va = _data(seed=4)
    tp = {**BASE, "protocol": "fixed", "max_epochs": 3, "batch_size": 1, "lr_decay": 1e-2}
    result = train.fit(_model(), tr, va, train_params=tp, optimizer="sgd", seed=0, progress=False)
    steps = 64  # batch 1: one step per gene
    for e, lr in enumerate(result.history["lr"]):  # lr / (1 + steps x decay) at the start of each epoch
        assert lr == pytest.approx(1e-2 / (1 + e * steps * 1e-2), rel=1e-9)
    # clipping: one SGD step moves the parameters by at most lr x max norm
    model = _model()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    clipped = {**BASE, "protocol": "fixed", "max_epochs": 1, "batch_size": 64, "grad_clip": 1e-3, "lr": 1.0}
    one = (tr[0][:64], tr[1][:64] * 100)  # a huge gradient
    train.fit(model, one, va, train_params=clipped, optimizer="sgd", seed=0, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert float((after - before).norm()) <= 1e-3 * (1 + 1e-5)
    unclipped = _model()
    train.fit(unclipped, one, va, train_params={**clipped, "grad_clip": None}, optimizer="sgd", seed=0, progress=False)
    moved = torch.cat([p.detach().flatten() for p in unclipped.parameters()])
    assert float((moved - before).norm()) > 1.0


def test_chromoformer_protocol_resumes_to_the_same_model(tmp_path):
    tp = {
        **BASE,
        "protocol": "chromoformer",
        "chromoformer_protocol": {"lr": 1e-3, "lr_gamma": 0.87, "batch_size": 16, "max_epochs": 4},
    }
    tr, va = _data(seed=5)
    whole = train.fit(_model(), tr, va, train_params=tp, seed=3, progress=False)

    class Stop(Exception):
        pass

    def interrupt(epoch, row):
        if epoch == 2:
            raise Stop

    ck = tmp_path / "m.pt"
    with pytest.raises(Stop):
        train.fit(_model(), tr, va, train_params=tp, seed=3, progress=False, checkpoint_path=ck, callback=interrupt)
    resumed = train.fit(_model(), tr, va, train_params=tp, seed=3, progress=False, checkpoint_path=ck)
    assert resumed.resumed_from == 2 and resumed.best_epoch == 4
    for got, want in zip(resumed.model.state_dict().values(), whole.model.state_dict().values(), strict=True):
        torch.testing.assert_close(got, want, atol=0, rtol=0)
    # a murphy checkpoint is another run: refused, not mixed
    with pytest.raises(ValueError, match="different run"):
        train.fit(_model(), tr, va, train_params=BASE, seed=3, progress=False, checkpoint_path=ck)


def test_murphy_fingerprint_is_unchanged_and_callable_losses():
    tr, va = _data()
    tp = train._check_train_params(BASE)
    fp = train._fingerprint(_model(), tp, "mse", "adam", 0, tr, va)
    assert set(fp) == {"model", "n_parameters", "train", "loss", "optimizer", "seed", "n_train", "n_validation", "data"}

    def half_mse(out, y, reduction="mean"):
        loss = (out.reshape(y.shape) - y) ** 2 / 2
        return loss.sum() if reduction == "sum" else loss.mean()

    a = train.fit(_model(), tr, va, train_params={**BASE, "max_epochs": 2}, loss=half_mse, seed=0, progress=False)
    b = train.fit(_model(), tr, va, train_params={**BASE, "max_epochs": 2}, loss="mse", seed=0, progress=False)
    assert a.history["val_loss"].iloc[0] == pytest.approx(b.history["val_loss"].iloc[0] / 2, rel=1e-4)
    assert not math.isnan(a.history["train_loss"].iloc[-1])
    # a function's name, not its repr (which holds a memory address), enters the fingerprint, so a
    # checkpoint written with a loss function is recognised by the next process
    assert train.loss_name(half_mse) == "half_mse"
    fp_fn = train._fingerprint(_model(), tp, half_mse, "adam", 0, tr, va)
    assert fp_fn["loss"] == "half_mse" and "0x" not in str(fp_fn)
