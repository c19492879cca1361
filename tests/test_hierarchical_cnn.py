"""The reconstructed hierarchical CNNs (Mittal 2025): parameter counts, shapes, variants, invariances."""

import pytest
import torch

from chromexp.models import hierarchical_cnn as hc


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def closed_form(f, length, n_out, c=128, k=5, pool=2, blocks=7):
    l_out = length
    for _ in range(blocks):
        l_out //= pool
    return f * c * k + c + blocks * (2 * c + c * c * k + c) + c * l_out * n_out + n_out


def test_parameter_counts_match_the_specification():
    # the numbers measured when the reconstruction was specified (docs/deviations.md)
    assert n_params(hc.HierarchicalCNN("matched_shared", 4, 7, 200)) == hc.N_PARAMETERS_MATCHED == 580_865
    assert n_params(hc.HierarchicalCNN("multi_tissue", 11, 7, 200)) == hc.N_PARAMETERS_MULTI_11 == 626_955
    assert n_params(hc.ConvTower(7, 200, 1)) == 580_865


@pytest.mark.parametrize(
    ("f", "length", "n_out", "c", "k", "pool", "blocks"),
    [(7, 400, 1, 128, 5, 2, 7), (28, 200, 4, 32, 3, 2, 7), (7, 200, 1, 16, 9, 4, 3), (14, 100, 2, 8, 4, 3, 2)],
)
def test_widths_kernels_pooling_are_parameters(f, length, n_out, c, k, pool, blocks):
    net = hc.ConvTower(f, length, n_out, channels=c, kernel_size=k, pool_size=pool, n_blocks=blocks)
    assert n_params(net) == closed_form(f, length, n_out, c, k, pool, blocks)
    out = net.eval()(torch.randn(3, f, length))
    assert out.shape == (3, n_out)


def test_pooled_length_floors_like_maxpool():
    assert hc.pooled_length(200) == 1
    assert hc.pooled_length(400) == 3
    with pytest.raises(ValueError, match="too short"):
        hc.ConvTower(7, 100, 1)  # 7 pools of 2 need 128 bins


def test_variant_shapes():
    x = torch.randn(5, 3, 7, 200)
    single = hc.HierarchicalCNN("single_tissue", 3, 7, 200, channels=16).eval()
    multi = hc.HierarchicalCNN("multi_tissue", 3, 7, 200, channels=16).eval()
    shared = hc.HierarchicalCNN("matched_shared", 3, 7, 200, channels=16).eval()
    assert single(hc.stack_cell_types(x)).shape == (5,)
    assert multi(hc.stack_cell_types(x)).shape == (5, 3)
    assert shared(x).shape == (5, 3)
    assert shared(x[:, 0]).shape == (5,)
    assert shared(x[:, :1]).shape == (5, 1)  # any number of cell types (an unseen one included)
    with pytest.raises(ValueError, match="expected input"):
        multi(x)
    with pytest.raises(ValueError, match="Unknown variant"):
        hc.HierarchicalCNN("enformer", 3)


def test_matched_shared_applies_one_network_to_every_pair():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 7, 200)
    shared = hc.HierarchicalCNN("matched_shared", 3, 7, 200, channels=16).eval()
    out = shared(x)
    for t in range(3):
        torch.testing.assert_close(out[:, t], shared(x[:, t]), rtol=1e-5, atol=1e-6)
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(shared(x[:, perm]), out[:, perm], rtol=1e-5, atol=1e-6)


def test_stack_cell_types_is_cell_major():
    x = torch.arange(2 * 3 * 7 * 4, dtype=torch.float32).reshape(2, 3, 7, 4)
    s = hc.stack_cell_types(x)
    assert s.shape == (2, 21, 4)
    torch.testing.assert_close(s[:, 7 * 2 + 5], x[:, 2, 5])


def test_residual_block_is_identity_plus_branch():
    torch.manual_seed(1)
    block = hc.ResidualConvBlock(8, 5).eval()
    x = torch.randn(2, 8, 30)
    torch.testing.assert_close(block(x), x + block.conv(torch.nn.functional.gelu(block.norm(x))))
    torch.nn.init.zeros_(block.conv.weight)
    torch.nn.init.zeros_(block.conv.bias)
    torch.testing.assert_close(block(x), x)


def test_build_reads_the_parameters():
    params = {
        "model": {
            "hierarchical_cnn": {"channels": 16, "kernel_size": 3, "pool_size": 2, "n_blocks": 7, "dropout": [0.2]}
        }
    }
    net = hc.build(params, "multi_tissue", n_cell_types=4, n_marks=7, n_bins=200)
    assert n_params(net) == closed_form(28, 200, 4, 16, 3, 2, 7)
