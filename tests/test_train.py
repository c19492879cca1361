"""The shared training engine: protocol, early stopping, resume, determinism, concurrency, errors."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from train_settings import train_params

from chromexp.models.promoter_cnn import PromoterCNN
from chromexp.training import stacked as train_stacked
from chromexp.training import train


def _params(**kw):
    return train_params(**kw)


class Tiny(nn.Module):
    """A small conv net with dropout: the engine's behaviour does not depend on model size."""

    def __init__(self, n_marks=2, dropout=0.2, n_outputs=1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(n_marks, 4, 3, padding=1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Flatten(),
            nn.Linear(4 * 12, n_outputs),
        )
        self.n_outputs = n_outputs

    def forward(self, x):
        out = self.net(x)
        return out.squeeze(-1) if self.n_outputs == 1 else out


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 1), nn.Linear(2, 1)

    def forward(self, x, z):
        return (self.a(x) + self.b(z)).squeeze(-1)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny models run fastest on one thread (and the test machine is shared); restored afterwards
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _toy(n, seed, n_marks=2):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_marks, 12, generator=g)
    y = 2.0 * x[:, 0, 4:8].mean(1) - x[:, -1, :3].mean(1) + 0.1 * torch.randn(n, generator=g)
    return x, y


def _model(seed=0, **kw):
    torch.manual_seed(seed)
    return Tiny(**kw)


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_learns_and_reports_history():
    tr, va = _toy(200, 1), _toy(60, 2)
    res = train.fit(_model(), tr, va, train_params=_params(max_epochs=8), progress=False)
    h = res.history
    assert list(h.columns) == list(train.HISTORY_COLUMNS)
    assert list(h.epoch) == list(range(1, 9))
    assert h.val_loss.min() < 0.5 * h.val_loss.iloc[0]
    assert res.best_epoch == int(h.val_loss.idxmin()) + 1
    assert not res.model.training
    # the reported validation loss is the MSE over all validation genes of the restored model
    pred = train.predict(res.model, va[0])
    assert np.mean((pred - va[1].numpy()) ** 2) == pytest.approx(res.best_val_loss, rel=1e-5)


def test_fit_is_deterministic_and_seeded():
    tr, va = _toy(100, 1), _toy(30, 2)
    a = train.fit(_model(), tr, va, train_params=_params(max_epochs=3), seed=5, progress=False)
    b = train.fit(_model(), tr, va, train_params=_params(max_epochs=3), seed=5, progress=False)
    c = train.fit(_model(), tr, va, train_params=_params(max_epochs=3), seed=6, progress=False)
    assert _same_weights(a.model, b.model)
    assert not _same_weights(a.model, c.model)
    # the caller's global random state is left untouched
    model = _model()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train.fit(model, tr, va, train_params=_params(max_epochs=1), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_early_stopping_restores_best_epoch_and_reduces_lr():
    # y = w·x with w starting at 0: training pulls w towards 2, the validation optimum is 0.5, so
    # the validation loss falls, then rises once w passes 0.5
    g = torch.Generator().manual_seed(0)
    x_tr, x_va = torch.randn(64, 1, generator=g), torch.randn(64, 1, generator=g)
    model = nn.Sequential(nn.Linear(1, 1, bias=False), nn.Flatten(0))
    nn.init.zeros_(model[0].weight)
    weights = []
    tp = _params(lr=0.02, batch_size=16, max_epochs=60, lr_patience=2, early_stopping_patience=5)
    res = train.fit(
        model,
        (x_tr, 2.0 * x_tr[:, 0]),
        (x_va, 0.5 * x_va[:, 0]),
        train_params=tp,
        progress=False,
        callback=lambda epoch, row: weights.append(float(model[0].weight.detach())),
    )
    h = res.history
    best = int(h.val_loss.idxmin()) + 1
    assert 1 < best < len(h)
    assert h.val_loss.iloc[-1] > h.val_loss.min()  # the toy does overfit the validation set
    assert res.best_epoch == best and res.stopped_early
    assert len(h) == best + tp["early_stopping_patience"]
    assert float(res.model[0].weight.detach()) == weights[best - 1] != weights[-1]
    # ReduceLROnPlateau: lr 0.02 until lr_patience + 1 bad epochs after the best, then × 0.2
    drop = best + tp["lr_patience"] + 2
    assert (h.lr[h.epoch < drop] == tp["lr"]).all()
    assert h.lr[h.epoch == drop].item() == pytest.approx(tp["lr"] * tp["lr_factor"])


def test_resume_gives_the_same_model(tmp_path):
    tr, va = _toy(90, 1), _toy(30, 2)
    tp = _params(max_epochs=6, lr_patience=1)
    full = train.fit(_model(), tr, va, train_params=tp, seed=3, checkpoint_path=tmp_path / "a.pt", progress=False)

    def interrupt(epoch, row):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train.fit(
            _model(),
            tr,
            va,
            train_params=tp,
            seed=3,
            checkpoint_path=tmp_path / "b.pt",
            progress=False,
            callback=interrupt,
        )
    # a different initialisation proves the weights come from the checkpoint
    resumed = train.fit(
        _model(seed=99), tr, va, train_params=tp, seed=3, checkpoint_path=tmp_path / "b.pt", progress=False
    )
    assert resumed.resumed_from == 3
    assert _same_weights(full.model, resumed.model)
    cols = ["epoch", "train_loss", "val_loss", "lr", "improved"]
    assert full.history[cols].equals(resumed.history[cols])
    # a finished checkpoint returns the result without training
    again = train.fit(
        _model(seed=7), tr, va, train_params=tp, seed=3, checkpoint_path=tmp_path / "b.pt", progress=False
    )
    assert _same_weights(full.model, again.model) and again.best_epoch == full.best_epoch
    # ... but refuses another run's data (other size, or same size and other values) or settings
    for other in (_toy(80, 1), _toy(90, 5)):
        with pytest.raises(ValueError, match="different run"):
            train.fit(_model(), other, va, train_params=tp, seed=3, checkpoint_path=tmp_path / "b.pt", progress=False)
    with pytest.raises(ValueError, match="different run"):
        train.fit(_model(), tr, va, train_params=tp, seed=4, checkpoint_path=tmp_path / "b.pt", progress=False)


def test_tuple_and_dict_inputs():
    g = torch.Generator().manual_seed(0)
    x, z = torch.randn(50, 3, generator=g), torch.randn(50, 2, generator=g)
    y = x.sum(1) - z[:, 0]
    torch.manual_seed(0)
    m1 = TwoInputs()
    torch.manual_seed(0)
    m2 = TwoInputs()
    a = train.fit(m1, ((x, z), y), ((x[:10], z[:10]), y[:10]), train_params=_params(max_epochs=2), progress=False)
    b = train.fit(
        m2,
        ({"x": x, "z": z}, y),
        ({"x": x[:10], "z": z[:10]}, y[:10]),
        train_params=_params(max_epochs=2),
        progress=False,
    )
    assert _same_weights(a.model, b.model)
    np.testing.assert_array_equal(train.predict(a.model, (x, z)), train.predict(b.model, {"x": x, "z": z}))


def test_predict_is_batch_size_invariant_and_restores_mode():
    model = _model().train()
    x = _toy(37, 4)[0]
    p1 = train.predict(model, x, batch_size=5)
    p2 = train.predict(model, x.numpy(), batch_size=100)
    assert p1.shape == (37,) and p1.dtype == np.float32
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-6)
    assert model.training


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_cross_entropy(n_outputs):
    x, y = _toy(200, 1)
    labels = (y > y.median()).long()
    res = train.fit(
        _model(n_outputs=n_outputs),
        (x[:150], labels[:150]),
        (x[150:], labels[150:]),
        train_params=_params(max_epochs=6),
        loss="cross_entropy",
        progress=False,
    )
    assert res.history.val_loss.min() < math.log(2) * 0.8  # better than chance
    out = train.predict(res.model, x[150:])
    assert out.shape == ((50,) if n_outputs == 1 else (50, 2))


@pytest.mark.parametrize(
    ("train_set", "val_set", "kwargs", "match"),
    [
        ((torch.zeros(0, 2, 12), torch.zeros(0)), None, {}, "no genes"),
        ((torch.zeros(5, 2, 12), torch.zeros(4)), None, {}, "5 genes in its inputs but 4 targets"),
        (((torch.zeros(5, 3), torch.zeros(4, 2)), torch.zeros(5)), None, {}, "disagree on the number of genes"),
        ((torch.zeros(5, 2, 12), torch.tensor([0.0, 1, float("nan"), 2, 3])), None, {}, "non-finite"),
        (None, (torch.zeros(0, 2, 12), torch.zeros(0)), {}, "validation has no genes"),
        (None, None, {"loss": "hinge"}, "Unknown loss"),
        (None, None, {"optimizer": "rmsprop"}, "Unknown optimizer"),
        (None, None, {"train_params": {"lr": 1.0e-3}}, "lacks"),
        ([1, 2, 3], None, {}, "pair"),
    ],
)
def test_bad_inputs_raise(train_set, val_set, kwargs, match):
    good = _toy(20, 1)
    kw = {"train_params": _params(max_epochs=1), "progress": False, **kwargs}
    with pytest.raises(ValueError, match=match):
        train.fit(
            _model(), train_set if train_set is not None else good, val_set if val_set is not None else good, **kw
        )


def test_device_resolution():
    assert train.resolve_device(None).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert train.resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            train.resolve_device("cuda")


# ----- many models at once ------------------------------------------------------------------
def _group(sizes, n_marks=2):
    return [(_toy(n, 10 + i, n_marks), _toy(max(n // 3, 5), 20 + i, n_marks)) for i, n in enumerate(sizes)]


def test_fit_many_equals_sequential_fits():
    # different data sizes (unequal batch counts and short last batches), seeds and stopping epochs
    sets = _group([70, 100, 37])
    tp = _params(max_epochs=14, early_stopping_patience=3, lr_patience=1, lr=5.0e-2)
    seq = [
        train.fit(_model(i, dropout=0.0), tr, va, train_params=tp, seed=i, progress=False)
        for i, (tr, va) in enumerate(sets)
    ]
    con = train_stacked.fit_many(
        [_model(i, dropout=0.0) for i in range(len(sets))],
        [s[0] for s in sets],
        [s[1] for s in sets],
        train_params=tp,
        seeds=list(range(len(sets))),
        progress=False,
    )
    assert len({len(r.history) for r in seq}) > 1  # the models stop at different epochs ...
    assert all(r.stopped_early and r.history.lr.nunique() > 1 for r in seq)  # ... after lr reductions
    for a, b in zip(seq, con):
        assert a.best_epoch == b.best_epoch and len(a.history) == len(b.history)
        np.testing.assert_allclose(a.history.val_loss, b.history.val_loss, rtol=1e-4)
        np.testing.assert_allclose(a.history.train_loss, b.history.train_loss, rtol=1e-4)
        assert list(a.history.lr) == list(b.history.lr)
        for k, v in a.model.state_dict().items():
            torch.testing.assert_close(b.model.state_dict()[k], v, rtol=1e-4, atol=1e-5)


def test_fit_many_validation_sets_of_very_different_sizes():
    # one model's validation genes run out several evaluation batches before another's (the real
    # E116 folds: ~2,000 vs ~600 validation genes); each validation loss still equals fit's
    sets = [(_toy(60, 1), _toy(300, 2)), (_toy(60, 3), _toy(9, 4))]
    tp = _params(max_epochs=2, batch_size=8)  # evaluation batches of 32 genes: 10 vs 1
    seq = [
        train.fit(_model(i, dropout=0.0), tr, va, train_params=tp, seed=i, progress=False)
        for i, (tr, va) in enumerate(sets)
    ]
    con = train_stacked.fit_many(
        [_model(i, dropout=0.0) for i in range(2)],
        [s[0] for s in sets],
        [s[1] for s in sets],
        train_params=tp,
        seeds=[0, 1],
        progress=False,
    )
    for a, b in zip(seq, con):
        np.testing.assert_allclose(a.history.val_loss, b.history.val_loss, rtol=1e-4)


def test_stacked_promoter_cnns_equal_separate_ones():
    # per-step equality on the real architecture: outputs and gradients of two promoter CNNs run
    # as one vmapped computation equal those of the models run one by one (with dropout active,
    # only the masks differ, so it is switched off here)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, 1, 60, generator=g)
    y = torch.randn(2, 16, generator=g)

    def make(i):
        torch.manual_seed(i)
        return PromoterCNN(conv_dropout=0.0, dense_dropout=0.0)

    sep, stacked = [make(0), make(1)], [make(0), make(1)]
    for m in range(2):
        nn.functional.mse_loss(sep[m](x[m]), y[m]).backward()
    out = train_stacked.StackedModels(stacked)(x)
    assert out.shape == (2, 16)
    ((out - y) ** 2).mean(1).sum().backward()
    for m in range(2):
        torch.testing.assert_close(out[m].detach(), sep[m](x[m]).detach(), rtol=1e-5, atol=1e-6)
        for (k, p), q in zip(sep[m].named_parameters(), stacked[m].parameters()):
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-4, atol=1e-7, msg=k)
    # a subset runs only the chosen models
    torch.testing.assert_close(train_stacked.StackedModels(stacked)(x[1:], subset=[1]).detach(), out[1:].detach())


def test_fit_many_resume(tmp_path):
    sets = _group([50, 30])
    tp = _params(max_epochs=4, lr_patience=1)
    args = ([s[0] for s in sets], [s[1] for s in sets])
    full = train_stacked.fit_many(
        [_model(i) for i in range(2)],
        *args,
        train_params=tp,
        seeds=[1, 2],
        checkpoint_path=tmp_path / "a.pt",
        progress=False,
    )

    def interrupt(epoch, rows):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_stacked.fit_many(
            [_model(i) for i in range(2)],
            *args,
            train_params=tp,
            seeds=[1, 2],
            checkpoint_path=tmp_path / "b.pt",
            progress=False,
            callback=interrupt,
        )
    resumed = train_stacked.fit_many(
        [_model(50 + i) for i in range(2)],
        *args,
        train_params=tp,
        seeds=[1, 2],
        checkpoint_path=tmp_path / "b.pt",
        progress=False,
    )
    for a, b in zip(full, resumed):
        assert b.resumed_from == 2
        assert _same_weights(a.model, b.model)


def test_fit_many_rejects_what_it_cannot_stack():
    sets = _group([20, 20])
    args = ([s[0] for s in sets], [s[1] for s in sets])
    with pytest.raises(ValueError, match="one architecture"):
        train_stacked.fit_many([_model(0), _model(1, n_outputs=2)], *args, train_params=_params(), progress=False)
    with pytest.raises(ValueError, match="buffers"):
        train_stacked.fit_many(
            [PromoterCNN(batch_norm=True), PromoterCNN(batch_norm=True)], *args, train_params=_params(), progress=False
        )
    m = _model(0)
    with pytest.raises(ValueError, match="shares parameter"):
        train_stacked.fit_many([m, m], *args, train_params=_params(), progress=False)
    with pytest.raises(ValueError, match="2 models but 1"):
        train_stacked.fit_many([_model(0), _model(1)], args[0][:1], args[1], train_params=_params(), progress=False)
    with pytest.raises(ValueError, match="structure"):
        train_stacked.fit_many(
            [_model(0), _model(1)],
            [sets[0][0], _toy(20, 1, n_marks=3)],
            args[1],
            train_params=_params(),
            progress=False,
        )


def _linear_output_dtypes(model):
    """Record the dtype of every output of the model's last nn.Linear (a forward hook)."""
    seen = []
    linear = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    linear.register_forward_hook(lambda mod, args, out: seen.append(out.dtype))
    return seen


@pytest.mark.parametrize("amp, dtype", [(True, torch.bfloat16), (False, torch.float32)])
def test_mixed_precision_autocasts_to_bf16_on_cpu(amp, dtype):
    """train.mixed_precision runs fit's and predict's forward passes in bf16 on CPU, and only then."""
    tr, va = _toy(40, 1), _toy(20, 2)
    model = _model()
    seen = _linear_output_dtypes(model)
    res = train.fit(
        model, tr, va, train_params=_params(max_epochs=1, mixed_precision=amp), device="cpu", progress=False
    )
    assert seen and set(seen) == {dtype}  # training and validation batches
    assert all(p.dtype == torch.float32 for p in res.model.parameters())  # float32 master weights
    seen.clear()
    out = train.predict(res.model, va[0], device="cpu", mixed_precision=amp)
    assert set(seen) == {dtype} and out.dtype == np.float32


@pytest.mark.parametrize("amp", [True, False])
def test_fit_many_says_when_bf16_autocast_misses_vmapped_layers(amp, caplog):
    """fit_many warns iff mixed_precision is asked and the probe finds vmapped layers left in float32."""
    sets = _group([30, 20])
    models = [_model(i) for i in range(2)]
    seen = _linear_output_dtypes(models[0])  # copied into fit_many's skeleton: sees the vmapped calls
    with caplog.at_level("WARNING", logger="chromexp.training.stacked"):
        train_stacked.fit_many(
            models,
            [s[0] for s in sets],
            [s[1] for s in sets],
            train_params=_params(max_epochs=1, mixed_precision=amp),
            device="cpu",
            progress=False,
        )
    reaches = train_stacked.vmap_autocasts(torch.device("cpu"))
    warned = "does not reach vmapped" in caplog.text
    assert warned == (amp and not reaches)
    assert seen and set(seen) == {torch.bfloat16 if amp and reaches else torch.float32}  # the probe is right


def test_bf16_on_cpu_trains_close_to_but_not_as_float32():
    """Two epochs under CPU bf16 autocast: finite losses near float32's, not bit-identical (bf16 was used)."""
    tr, va = _toy(200, 1), _toy(60, 2)
    runs = {
        amp: train.fit(
            _model(dropout=0.0),
            tr,
            va,
            train_params=_params(max_epochs=2, mixed_precision=amp),
            device="cpu",
            progress=False,
        ).history
        for amp in (False, True)
    }
    fp32, bf16 = (runs[a][["train_loss", "val_loss"]].to_numpy() for a in (False, True))
    assert np.isfinite(bf16).all()
    assert not np.array_equal(fp32, bf16)
    np.testing.assert_allclose(bf16, fp32, rtol=0.05)  # bf16 keeps ~3 significant digits


def test_checkpoint_fingerprint_separates_bf16_from_float32(tmp_path):
    """A float32 checkpoint is not resumed under bf16 (nor the reverse); float32 fingerprints are unchanged."""
    tr, va = _toy(40, 1), _toy(20, 2)
    fp32 = train._fingerprint(_model(), _params(), "mse", "adam", 0, tr, va)
    assert "mixed_precision" not in fp32  # as before mixed precision entered it: old checkpoints still resume
    absent = {k: v for k, v in _params().items() if k != "mixed_precision"}
    assert train._fingerprint(_model(), absent, "mse", "adam", 0, tr, va) == fp32
    ck = tmp_path / "m.pt"
    train.fit(_model(), tr, va, train_params=_params(max_epochs=2), checkpoint_path=ck, device="cpu", progress=False)
    with pytest.raises(ValueError, match="belongs to a different run"):
        train.fit(
            _model(),
            tr,
            va,
            train_params=_params(max_epochs=2, mixed_precision=True),
            checkpoint_path=ck,
            device="cpu",
            progress=False,
        )


@pytest.mark.gpu
def test_fit_on_cuda_with_bf16_autocast():
    tr, va = _toy(200, 1), _toy(60, 2)
    res = train.fit(
        _model(), tr, va, train_params=_params(max_epochs=4, mixed_precision=True), device="cuda", progress=False
    )
    assert res.history.val_loss.min() < 0.7 * res.history.val_loss.iloc[0]
    assert next(res.model.parameters()).device.type == "cpu"  # returned on the device it came on
    sets = _group([70, 40])
    con = train_stacked.fit_many(
        [_model(i) for i in range(2)],
        [s[0] for s in sets],
        [s[1] for s in sets],
        train_params=_params(max_epochs=2),
        device="cuda",
        progress=False,
    )
    assert len(con) == 2
