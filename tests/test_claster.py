"""CLASTER's architecture (chromexp.models.claster) against EIR 0.1.43 and the published configuration.

Tiers:

* always on: the layer table of every oracle model equals the fixture EIR itself produced
  (``tests/data/claster_layer_table.tsv``, see tests/data/README.md), the fixture carries the
  published geometry and parameter counts, our configuration constants equal the vendored
  published configuration, and EIR's padding solver equals a sympy transcription of it;
* where the isolated eir-dl 0.1.43 environment can be built (``.venv-eir``): EIR's own modules
  build the published models, their weights are transplanted into ours and the outputs are
  compared in float64 (skipped, with the reason, where the environment cannot be built).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from chromexp.experiments import claster_reference as R
from chromexp.models import claster as C

FIXTURE = "claster_layer_table.tsv"


@pytest.fixture(scope="module")
def fixture_table(repo) -> pd.DataFrame:
    return pd.read_csv(repo / "tests" / "data" / FIXTURE, sep="\t", dtype=str, keep_default_na=False)


def _ours(name: str) -> pd.DataFrame:
    return R.layer_table_frame(C.layer_table(R.ORACLE_MODELS[name](), name))


@pytest.mark.parametrize("name", list(R.ORACLE_MODELS))
def test_layer_table_equals_the_eir_fixture(name, fixture_table):
    want = fixture_table[fixture_table["model"] == name].reset_index(drop=True)
    assert len(want), f"{name} is missing from the fixture"
    pd.testing.assert_frame_equal(_ours(name), want)


def test_fixture_is_the_published_geometry(fixture_table):
    """The fixture (made by EIR) against the numbers of the published configuration (docs/methods.md, "CLASTER")."""
    t = fixture_table.set_index(["model", "branch", "layer"])
    pure = t.loc["pure_conv"]
    land = pure.loc["landscape"]
    # (kernel, stride, padding | conv_2 kernel, padding, dilation | output) of the 9 blocks
    want = [
        ("4x10", "1x2", "0x0", "", "", "", "64x1x4996"),
        ("1x10", "1x2", "0x3", "1x9", "0x12", "1x3", "32x1x2497"),
        ("1x10", "1x2", "0x0", "1x9", "0x16", "1x4", "32x1x1244"),
        ("1x10", "1x2", "0x3", "1x9", "0x36", "1x9", "32x1x621"),
        ("1x10", "1x2", "0x0", "1x9", "0x64", "1x16", "32x1x306"),
        ("1x10", "1x1", "0x0", "1x9", "0x132", "1x33", "64x1x297"),
        ("1x10", "1x2", "0x0", "1x9", "0x128", "1x32", "64x1x144"),
        ("1x10", "1x2", "0x3", "1x9", "0x36", "1x9", "64x1x71"),
        ("1x10", "1x2", "0x0", "1x9", "0x16", "1x4", "64x1x31"),
    ]
    cols = ["kernel", "stride", "padding", "kernel2", "padding2", "dilation2", "out_shape"]
    got = [tuple(land.loc[str(i), cols]) for i in range(9)]
    assert got == want
    assert land.loc["1", "full_preact"] == "True" and land.loc["2", "full_preact"] == "False"
    params = [int(land.loc[k, "params"]) for k in ["pos", *map(str, range(9)), "fc"]]
    assert params == [40_004, 2_624, 50_562, 30_018, 30_018, 30_018, 78_660, 119_684, 119_684, 119_684, 1_020_288]
    assert sum(params) == 1_641_244
    assert int(pure.loc[("", "fusion"), "params"]) == 461_568
    assert int(pure.loc[("", "head"), "params"]) == 103_057
    totals = {m: int(t.loc[(m, "", "total"), "params"]) for m in R.PUBLISHED}
    assert totals == {"pure_conv": 2_205_869, "attention": 2_229_739, "microc_rotated": 3_180_420,
                      "microc_square": 8_201_452}  # fmt: skip
    # aislib's Swish has a learnable slope: 17 in the landscape branch + 2 in the fusion MLP
    assert int(t.loc[("pure_conv", "", "total"), "swish_params"]) == 19
    # the attention variant inserts 2 transformer layers (d_model 31, 1 head) after block 8
    att = t.loc["attention"].loc["landscape"]
    assert att.loc["9", "kind"] == "attention" and int(att.loc["9", "params"]) == 23_870
    # option A of the adaptation: 7 marks x 400 bins, layers [2, 2]
    a = t.loc["adapted_gene"].loc["landscape"]
    assert [a.loc[str(i), "out_shape"] for i in range(5)] == ["64x1x199", "32x1x95", "32x1x43", "64x1x17", "64x1x5"]
    assert sum(int(a.loc[k, "params"]) for k in ["pos", *map(str, range(5)), "fc"]) == 443_068


def test_configuration_constants_equal_the_vendored_published_configuration():
    cfg = R.published_configurations()
    pairs = {
        "landscape": (C.PAPER_LANDSCAPE, C.PAPER_LANDSCAPE_SHAPE),
        "landscape_attention": (C.PAPER_LANDSCAPE_ATTENTION, C.PAPER_LANDSCAPE_SHAPE),
        "microc_square": (C.PAPER_MICROC_SQUARE, C.PAPER_MICROC_SQUARE_SHAPE),
        "microc_rotated": (C.PAPER_MICROC_ROTATED, C.PAPER_MICROC_ROTATED_SHAPE),
    }
    for key, (ours, shape) in pairs.items():
        assert C.CNNConfig.from_dict(cfg["inputs"][key]["model_init_config"]) == ours, key
        assert tuple(cfg["inputs"][key]["shape"]) == shape
    f = cfg["fusion"]["model_config"]
    assert C.FusionConfig(**{**f, "layers": tuple(f["layers"])}) == C.PAPER_FUSION
    cols = R.target_columns(cfg)
    assert len(cols) == C.PAPER_N_OUTPUTS and cols[0] == "-200_ctrl" and cols[200] == "0_ctrl"


def _eir_solver(size: int, kernel: int, stride: int, dilation: int):
    """A literal transcription of EIR 0.1.43's calc_conv_params_needed (sympy over non-negative integers)."""
    from sympy import Symbol
    from sympy.solvers import solve

    t0 = (size - dilation * (kernel - 1) - 1) // stride + 1
    sols = []
    rng = lambda b: [v for v in (b, b + 1, b - 1) if v > 0]  # noqa: E731
    for k, t, s, d in itertools.product(rng(kernel), rng(t0), rng(stride), rng(dilation)):
        p = Symbol("p", integer=True, nonnegative=True)
        found = solve(((size + (2 * p) - d * (k - 1) - 1) / s + 1) - t, p)
        if found:
            pad = int(found[0])
            sols.append(
                ((abs(k - kernel) + abs(s - stride) + abs(d - dilation) + pad, (k, s, d, pad, t)), (k, s, d, pad))
            )
    return min(sols)[1] if sols else None


def test_solver_equals_eirs_sympy_formulation():
    rng = np.random.default_rng(0)
    cases = [(10001, 10, 2, 2), (4996, 10, 2, 2), (306, 10, 2, 16), (400, 10, 2, 2), (626, 5, 2, 2), (1, 1, 1, 1)]
    cases += [(int(rng.integers(5, 3000)), int(rng.integers(1, 12)), int(rng.integers(1, 4)), int(rng.integers(1, 40)))
              for _ in range(25)]  # fmt: skip
    for size, k, s, d in cases:
        if s > k:
            continue
        want = _eir_solver(size, k, s, d)
        if want is None:
            with pytest.raises(ValueError, match="No convolution"):
                C.solve_conv(size, k, s, d)
            continue
        got = C.solve_conv(size, k, s, d)
        assert (got.kernel, got.stride, got.dilation, got.padding) == want, (size, k, s, d)


def test_forward_shapes_batch_invariance_and_input_checks():
    torch.manual_seed(0)
    gene = C.adapted_model().eval()
    x = torch.randn(5, 7, 400)
    out = gene(x)
    assert out.shape == (5,)
    torch.testing.assert_close(gene(x[:2]), out[:2], rtol=1e-5, atol=1e-6)  # eval mode: no cross-sample coupling
    prof = C.adapted_model(n_outputs=40, structure="virtual_4c").eval()
    assert prof(x, torch.randn(5, 1, 400)).shape == (5, 40)
    assert prof(landscape=x, structure=torch.randn(5, 400)).shape == (5, 40)
    with pytest.raises(ValueError, match=r"missing \['structure'\]"):
        prof(x)
    with pytest.raises(ValueError, match="expects inputs of shape"):
        gene(torch.randn(2, 4, 400))
    with pytest.raises(ValueError, match="CNNConfig.layers"):
        C.CNNConfig(layers=())
    with pytest.raises(ValueError, match="Unknown CNN configuration key"):
        C.CNNConfig.from_dict({"layers": [1], "kernal_width": 3})


def test_training_mode_uses_dropout_and_stochastic_depth_eval_mode_does_not():
    torch.manual_seed(1)
    m = C.adapted_model()
    x = torch.randn(4, 7, 400)
    m.train()
    a, b = m(x), m(x)
    assert not torch.equal(a, b)
    m.eval()
    assert torch.equal(m(x), m(x))
    sd = C.StochasticDepth(0.5).train()
    torch.manual_seed(3)
    outs = {float(sd(torch.ones(3)).sum()) for _ in range(30)}
    assert outs == {0.0, 6.0}  # the whole batch dropped, or kept and scaled by 1 / (1 - p)


def test_swish_slope_is_learnable_and_counted_apart():
    m = C.paper_model()
    counts = C.count_parameters(m)
    assert counts == {"weights": 2_205_869, "swish": 19, "total": 2_205_888}
    s = C.Swish()
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(s(x), x * torch.sigmoid(x))
    with torch.no_grad():
        s.weight.fill_(2.0)
    torch.testing.assert_close(s(x), x * torch.sigmoid(2 * x))


def test_transplant_refuses_a_missing_or_extra_tensor():
    m = C.adapted_model()
    names = {"landscape": "gene_expression"}
    state = {}
    for k, v in m.state_dict().items():
        if k.startswith("branches."):
            state["input_modules.gene_expression.feature_extractor." + k.split(".", 2)[2]] = v
        elif k.startswith("fusion."):
            i = int(k.split(".")[2])
            state[
                f"fusion_modules.computed.fusion_modules.fusion.{'0.0' if i == 0 else f'1.{i - 1}'}."
                + k.split(".", 3)[3]
            ] = v
    state["output_modules.o.multi_task_branches.c.weight"] = m.head.weight
    state["output_modules.o.multi_task_branches.c.bias"] = m.head.bias
    ok = C.transplant_eir_state(m, state, names, "o", ["c"])
    m.load_state_dict(ok, strict=True)
    with pytest.raises(ValueError, match="no place"):
        C.transplant_eir_state(m, {**state, "extra.weight": torch.zeros(1)}, names, "o", ["c"])
    del state["output_modules.o.multi_task_branches.c.bias"]
    with pytest.raises(ValueError, match="has no"):
        C.transplant_eir_state(m, state, names, "o", ["c"])


def test_receptive_field_of_the_paper_landscape():
    # 12.4 kb after block 1, 164 kb after block 3, 588 kb after block 4 (100-bp bins; docs/methods.md)
    rf = C.receptive_field(C.paper_model().branches["landscape"])
    assert (rf[1], rf[3], rf[4]) == (124, 1_640, 5_880)


@pytest.fixture(scope="module")
def eir_reference(tmp_path_factory):
    try:
        R.ensure_eir_env()
    except R.EirError as err:
        pytest.skip(f"the isolated eir-dl {R.EIR_VERSION} environment cannot be built here: {err}")
    return R.run_reference(R.oracle_request(), tmp_path_factory.mktemp("eir") / "reference.pt", seed=7, n_samples=3)


@pytest.mark.parametrize("name", list(R.ORACLE_MODELS))
def test_transplanted_eir_weights_give_eirs_outputs_in_float64(name, eir_reference, fixture_table):
    ref = eir_reference["models"][name]
    assert eir_reference["eir_version"] == R.EIR_VERSION
    delta = R.compare(R.ORACLE_MODELS[name](), ref)
    assert delta <= 1e-10, f"{name}: max |Δ| = {delta:.3g}"
    assert float(ref["outputs"].abs().max()) > 1e-2  # a meaningful output, not all zeros
    # the layer table EIR reports now equals the committed fixture (so the fixture is EIR's)
    want = fixture_table[fixture_table["model"] == name].reset_index(drop=True)
    pd.testing.assert_frame_equal(R.layer_table_frame(ref["layer_table"]), want)
