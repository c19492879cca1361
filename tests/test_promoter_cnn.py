"""The promoter CNN matches DESIGN.md §4.2: layer shapes, parameter count, 'same' padding, bins."""

import warnings

import pytest
import torch
from torch import nn

from chromexp.models import promoter_cnn
from chromexp.models.promoter_cnn import PromoterCNN


def _conv_params(c_in, c_out, k):
    return c_in * k * c_out + c_out


def _dense_params(n_in, n_out):
    return n_in * n_out + n_out


def _expected_parameters(n_marks):
    # layer by layer, from the architecture in DESIGN.md §4.2 (60 bins → 15 → 7 → 3 after pooling)
    return [
        _conv_params(n_marks, 175, 8),
        _conv_params(175, 350, 4),
        _conv_params(350, 700, 4),
        _dense_params(700 * 3, 625),
        _dense_params(625, 125),
        _dense_params(125, 1),
    ]


def _layer_counts(model):
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    return [sum(p.numel() for p in m.parameters()) for m in layers]


@pytest.mark.parametrize("n_marks", [1, 2, 7])
def test_parameter_count_layer_by_layer(n_marks):
    model = PromoterCNN(n_marks=n_marks)
    assert _layer_counts(model) == _expected_parameters(n_marks)
    assert sum(p.numel() for p in model.parameters()) == sum(_expected_parameters(n_marks))


def test_one_mark_parameter_count_is_the_published_one():
    # 1,575 + 245,350 + 980,700 + 1,313,125 + 78,250 + 126
    assert sum(_expected_parameters(1)) == 2_619_126
    assert (
        sum(p.numel() for p in PromoterCNN(n_marks=1).parameters()) == promoter_cnn.N_PARAMETERS_ONE_MARK == 2_619_126
    )


@pytest.mark.parametrize("n_marks", [1, 7])
def test_layer_shapes_and_output(n_marks):
    model = PromoterCNN(n_marks=n_marks).eval()
    shapes = []
    hooks = [blk.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for blk in model.conv]
    hooks += [
        m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
        for m in model.head
        if isinstance(m, (nn.Flatten, nn.Linear))
    ]
    out = model(torch.randn(5, n_marks, 60))
    for h in hooks:
        h.remove()
    assert shapes == [(5, 175, 15), (5, 350, 7), (5, 700, 3), (5, 2100), (5, 625), (5, 125), (5, 1)]
    assert out.shape == (5,)
    assert torch.isfinite(out).all()


def test_same_padding_is_keras_rule_and_equals_torch_same():
    assert promoter_cnn.same_padding(8) == (3, 4)
    assert promoter_cnn.same_padding(4) == (1, 2)
    torch.manual_seed(0)
    for k in (8, 4):
        ours = nn.Sequential(nn.ConstantPad1d(promoter_cnn.same_padding(k), 0.0), nn.Conv1d(1, 1, k, bias=False))
        ref = nn.Conv1d(1, 1, k, padding="same", bias=False)
        ref.weight.data.copy_(ours[1].weight.data)
        x = torch.randn(3, 1, 60)
        with warnings.catch_warnings():  # torch warns that even kernels copy the input
            warnings.simplefilter("ignore", UserWarning)
            expected = ref(x)
        torch.testing.assert_close(ours(x), expected, rtol=0, atol=1e-6)
        # TF/Keras: output i sees inputs i - left … i + right; an impulse at p lands on w[p - i + left]
        left = promoter_cnn.same_padding(k)[0]
        impulse = torch.zeros(1, 1, 60)
        impulse[0, 0, 30] = 1.0
        with torch.no_grad():
            y = ours(impulse)[0, 0]
            w = ours[1].weight.detach()[0, 0]
        for i in range(60):
            j = 30 - i + left
            assert float(y[i]) == pytest.approx(float(w[j]) if 0 <= j < k else 0.0)


def test_bins_and_tss_convention(smoke_params):
    model = promoter_cnn.build(smoke_params, n_marks=1)
    cfg = smoke_params["model"]["promoter_cnn"]
    # TSS ± 3 kb at 100 bp: 60 bins, TSS between bins 29 and 30 (DESIGN.md §3.2)
    assert (cfg["half_window"], cfg["resolution"]) == (3000, 100)
    assert model.n_bins == 60
    assert cfg["half_window"] // cfg["resolution"] - 1 == 29


def test_orientation_matters():
    # the CNN is not reversal-invariant, so the upstream-first (strand-oriented) bin order of the
    # dataset is part of its input contract
    torch.manual_seed(0)
    model = PromoterCNN().eval()
    x = torch.rand(8, 1, 60)
    assert not torch.allclose(model(x), model(x.flip(-1)))


def test_batch_norm_option():
    plain, bn = PromoterCNN(), PromoterCNN(batch_norm=True)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    norms = [m for m in bn.modules() if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in norms] == [175, 350, 700]
    n_extra = sum(p.numel() for p in bn.parameters()) - sum(p.numel() for p in plain.parameters())
    assert n_extra == 2 * (175 + 350 + 700)
    assert bn.eval()(torch.randn(4, 1, 60)).shape == (4,)


def test_bad_inputs():
    model = PromoterCNN(n_marks=2)
    with pytest.raises(ValueError, match="2 marks, 60 bins"):
        model(torch.randn(4, 1, 60))
    with pytest.raises(ValueError, match="60 bins"):
        model(torch.randn(4, 2, 50))
    with pytest.raises(ValueError, match="n_marks"):
        PromoterCNN(n_marks=0)
    with pytest.raises(ValueError, match="too short"):
        PromoterCNN(n_bins=10)
