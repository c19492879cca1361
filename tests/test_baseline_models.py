"""Chromoformer's baselines: published parameter counts, shape arithmetic and the reference code as oracle.

* DeepChrome (Lua Torch, cannot run): pinned by its 644,177 parameters, the 100 − 10 + 1 = 91 → 18
  arithmetic, and a NumPy transcription of the Lua modules' semantics (``TemporalConvolution``
  weight layout, time-major ``View``) with our weights permuted into it.
* AttentiveChrome, DeepDiff (7 variants), HM-CRNN's histone branch: the official PyTorch files at
  pinned commits (``make baseline-refs``; tests/baseline_references.py) are built, our state dict
  is loaded into them strictly, and the outputs must agree to 1e-6 (max |Δ| printed).
"""

from __future__ import annotations

import math

import baseline_references as refs
import numpy as np
import pytest
import torch

from chromexp.models import attentivechrome as ac
from chromexp.models import deepchrome as dc
from chromexp.models import deepdiff as dd
from chromexp.models import hmcrnn as hc

TOL = 1e-6

# the reference code builds 1-layer LSTMs with dropout=0.5 and calls nn.Softmax() without dim
pytestmark = [
    pytest.mark.filterwarnings("ignore:dropout option adds dropout:UserWarning"),
    pytest.mark.filterwarnings("ignore:Implicit dimension choice for softmax:UserWarning"),
]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def reference(name):
    if not refs.available(name):
        pytest.skip(f"the pinned reference code of {name} is not fetched (make baseline-refs)")
    return refs.load(name)


class Args(dict):
    """The reference's ``AttrDict`` of argparse values."""

    __getattr__ = dict.__getitem__


def ref_args(n_hms, n_bins=100):
    return Args(
        n_hms=n_hms, n_bins=n_bins, bin_rnn_size=32, num_layers=1, dropout=0.5, bidirectional=True, shared=False
    )


def inputs(batch, n_marks, n_bins, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return 3 * torch.rand(batch, n_marks, n_bins, generator=gen)  # ln(depth + 1) scale


# ----------------------------------------------------------------------------------------------
# DeepChrome
# ----------------------------------------------------------------------------------------------
def test_deepchrome_parameter_count_and_shape_arithmetic():
    model = dc.DeepChrome(n_marks=5, n_bins=100, task="clf")
    assert n_params(model) == dc.PUBLISHED_PARAMETERS == 644_177
    assert 100 - 10 + 1 == 91 and dc.pooled_length(100) == 18
    assert model.fc1.in_features == 18 * 50 == 900
    for bins in (20, 40, 100, 200, 400):  # the window study: the Lua sizing formula agrees there
        assert dc.pooled_length(bins) == math.ceil((bins - 10) / 5)
        out = dc.DeepChrome(7, bins, "clf")(torch.zeros(3, 7, bins))
        assert out.shape == (3, 2)
    assert dc.pooled_length(101) != math.ceil((101 - 10) / 5)  # where the Lua formula would be wrong
    reg = dc.DeepChrome(5, 100, "reg")
    assert n_params(reg) == 644_177 - 126 and reg(torch.zeros(4, 5, 100)).shape == (4,)
    with pytest.raises(ValueError, match="at least 14 bins"):
        dc.DeepChrome(5, 13)


def test_deepchrome_equals_the_lua_modules_semantics():
    """NumPy transcription of nn.TemporalConvolution / TemporalMaxPooling / View / Linear (torch7 docs)."""
    torch.manual_seed(0)
    model = dc.DeepChrome(5, 100, "clf").eval()
    x = inputs(4, 5, 100)
    w = model.conv.weight.detach().numpy()  # (50, 5, 10)
    # TemporalConvolution: weight (outputFrameSize, kW * inputFrameSize) over a (time, features) input,
    # the window flattened time-major: column k * 5 + f multiplies input[t + k, f]
    w_lua = w.transpose(0, 2, 1).reshape(50, 50)
    fc1 = model.fc1.weight.detach().numpy()  # ours reads c * 18 + t; Lua's View reads t * 50 + c
    fc1_lua = fc1.reshape(625, 50, 18).transpose(0, 2, 1).reshape(625, 900)
    for g in range(4):
        seq = x[g].numpy().T  # (time 100, features 5)
        conv = np.stack([w_lua @ seq[t : t + 10].reshape(-1) for t in range(91)]) + model.conv.bias.detach().numpy()
        conv = np.maximum(conv, 0)  # (91, 50)
        pooled = np.stack([conv[5 * t : 5 * t + 5].max(0) for t in range(18)])  # kW = dW = 5
        h = np.maximum(fc1_lua @ pooled.reshape(-1) + model.fc1.bias.detach().numpy(), 0)
        h = np.maximum(model.fc2.weight.detach().numpy() @ h + model.fc2.bias.detach().numpy(), 0)
        logits = model.out.weight.detach().numpy() @ h + model.out.bias.detach().numpy()
        with torch.no_grad():
            ours = model(x[g : g + 1])[0].numpy()
        np.testing.assert_allclose(ours, logits, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# AttentiveChrome
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("n_marks", "count"), [(5, 55_681), (7, 73_729)])
def test_attentivechrome_parameter_counts(n_marks, count):
    assert n_params(ac.AttentiveChrome(n_marks)) == count == ac.PUBLISHED_PARAMETERS[n_marks]


@pytest.mark.parametrize(("n_marks", "n_bins"), [(5, 100), (7, 20), (7, 400)])
def test_attentivechrome_equals_the_reference(n_marks, n_bins):
    ref = reference("attentivechrome")
    torch.manual_seed(1)
    theirs = ref.att_chrome(ref_args(n_marks, n_bins)).eval()
    for p in theirs.parameters():  # the reference training script's initialisation
        p.data.uniform_(-0.1, 0.1)
    ours = ac.AttentiveChrome(n_marks, "clf").eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = inputs(6, n_marks, n_bins)
    with torch.no_grad():
        expected = theirs(x.transpose(1, 2)).squeeze(1)  # the reference reads (batch, bins, marks)
        got = ours(x)
    delta = float((got - expected).abs().max())
    print(f"AttentiveChrome {n_marks} marks x {n_bins} bins: max |Δ| = {delta:.2e}")
    assert got.shape == (6,) and delta <= TOL


def test_attentivechrome_batch_invariance():
    torch.manual_seed(2)
    model = ac.AttentiveChrome(7, "reg").eval()
    x = inputs(9, 7, 40)
    with torch.no_grad():
        whole = model(x)
        parts = torch.cat([model(x[:4]), model(x[4:])])
    torch.testing.assert_close(whole, parts, atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------------------
# DeepDiff
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("variant", "count"), sorted(dd.PUBLISHED_PARAMETERS.items()))
def test_deepdiff_parameter_counts(variant, count):
    assert n_params(dd.DeepDiff(variant, n_marks=5)) == count


@pytest.mark.parametrize("variant", dd.VARIANTS)
def test_deepdiff_equals_the_reference(variant):
    ref = reference("deepdiff")
    torch.manual_seed(3)
    theirs = getattr(ref, variant)(ref_args(5, 50)).eval()
    for p in theirs.parameters():
        p.data.uniform_(-0.1, 0.1)
    ours = dd.DeepDiff(variant, n_marks=5).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    assert n_params(ours) == n_params(theirs)
    x_a, x_b = inputs(5, 5, 50, seed=4), inputs(5, 5, 50, seed=5)
    with torch.no_grad():
        expected = theirs(x_a.transpose(1, 2), x_b.transpose(1, 2))
        got, details = ours(x_a, x_b, return_details=True)
    if variant in dd.AUX_VARIANTS:
        lfc, ya, yb = expected[0], expected[-2], expected[-1]
        want = torch.cat([lfc, ya, yb], dim=1)
    else:
        want = expected[0].squeeze(1)
    deltas = {"outputs": float((got - want).abs().max())}
    deltas["mark attention"] = float((details["mark_alpha"] - expected[1]).abs().max())
    deltas["bin attention"] = float((details["bin_alpha"] - expected[2]).abs().max())
    if variant in dd.SIAMESE_VARIANTS:
        deltas["embedding A"] = float((details["emb_a"] - expected[3]).abs().max())
        deltas["embedding B"] = float((details["emb_b"] - expected[4]).abs().max())
    print(f"DeepDiff {variant}: " + ", ".join(f"{k} max |Δ| = {v:.2e}" for k, v in deltas.items()))
    assert max(deltas.values()) <= TOL


def test_deepdiff_contrastive_loss_equals_the_reference():
    ref = reference("deepdiff_loss")
    gen = torch.Generator().manual_seed(6)
    e1, e2 = torch.randn(32, 320, generator=gen) * 0.1, torch.randn(32, 320, generator=gen) * 0.1
    lfc = torch.randn(32, generator=gen) * 2.5
    assert 0 < int((lfc.abs() >= 2).sum()) < 32  # both labels occur
    label = torch.tensor([1.0 if (v <= -2.0 or v >= 2.0) else 0.0 for v in lfc])  # the reference's train.py rule
    expected = ref.ContrastiveLoss()(e1, e2, label)
    torch.testing.assert_close(dd.contrastive_loss(e1, e2, lfc), expected, atol=1e-6, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# HM-CRNN
# ----------------------------------------------------------------------------------------------
def test_hmcrnn_parameter_count_and_steps():
    model = hc.HMCRNN(7, 40)
    assert n_params(model.branch) == hc.PUBLISHED_PARAMETERS == 22_193
    assert hc.pooled_length(40) == 12  # 40 - 7 + 1 = 34 -> MaxPool1d(3, 3, padding 1) -> 12
    assert [hc.pooled_length(b) for b in (20, 100, 400)] == [5, 32, 132]
    assert model(torch.zeros(2, 7, 40)).shape == (2,)
    with pytest.raises(ValueError, match="exactly 7 marks"):
        hc.HMCRNN(5, 40)


@pytest.mark.parametrize("train_mode", [False, True])
def test_hmcrnn_branch_equals_the_reference(train_mode):
    ref = reference("hmcrnn")
    torch.manual_seed(7)
    theirs = ref.HM_CRNN()
    with torch.no_grad():
        for p in theirs.parameters():
            p.add_(0.05 * torch.randn_like(p))
        theirs.conv[1].running_mean.uniform_(-0.2, 0.2)
        theirs.conv[1].running_var.uniform_(0.5, 1.5)
    ours = hc.HMCRNNBranch()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.train(train_mode)
    ours.train(train_mode)
    x = inputs(8, 7, 40).unsqueeze(1)
    with torch.no_grad():
        ctx_ref, alpha_ref = theirs(x)
        ctx, alpha = ours(x)
    delta = max(float((ctx - ctx_ref).abs().max()), float((alpha - alpha_ref).abs().max()))
    print(f"HM-CRNN branch ({'train' if train_mode else 'eval'} mode): max |Δ| = {delta:.2e}")
    assert ctx.shape == (8, 80) and delta <= TOL


def test_hmcrnn_focal_loss_equals_the_reference():
    ref = reference("hmcrnn")
    gen = torch.Generator().manual_seed(8)
    logit = torch.randn(64, generator=gen) * 3
    target = (torch.rand(64, generator=gen) > 0.5).float()
    expected = ref.focal_loss(torch.sigmoid(logit), target)
    torch.testing.assert_close(hc.focal_loss(logit, target), expected, atol=1e-5, rtol=1e-6)


def test_reference_loader_refuses_another_version(tmp_path, monkeypatch):
    monkeypatch.setenv("CHROMEXP_BASELINE_REFS", str(tmp_path))
    assert not refs.available("hmcrnn")
    with pytest.raises(FileNotFoundError, match="make baseline-refs"):
        refs.load("hmcrnn")
    repo, commit, path, _, _ = refs.PINS["hmcrnn"]
    file = tmp_path / repo.replace("/", "+") / commit[:12] / path
    file.parent.mkdir(parents=True)
    file.write_text("class HM_CRNN: pass\n")
    with pytest.raises(ValueError, match="is not"):
        refs.load("hmcrnn")
