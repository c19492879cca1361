"""CLASTER (Pielies Avellí et al.): a dilated residual CNN from a chromatin landscape (+ 3-D structure) to transcription.

docs/methods.md, "CLASTER". The network is EIR's (eir-dl 0.1.43) array CNN, MLP-residual fusion and
linear output module, instantiated from the authors' published configuration
(RasmussenLab/CLASTER ``configurations/*`` at 1ff92a2). This module rebuilds the same function
without EIR: the same layer arithmetic (EIR derives kernels, strides, paddings and dilations with a
small solver, :func:`solve_conv`), the same blocks and the same parameter names inside a branch, so
that an EIR state dict transplants with a prefix rename (:func:`transplant_eir_state`; the oracle
test builds EIR's model in an isolated environment and compares outputs in float64).

One branch (:class:`CNNBranch`) sees a 2-D array ``(channels, height, width)`` — the paper's
landscape is ``(1, 4, 10,001)``: 4 marks × 10,001 bins of 100 bp over TSS ± 500 kb —

* a learned positional embedding ``(1, height, width)`` added to the input;
* a first block: one convolution (kernel ``kernel_height · first_kernel_expansion_height`` ×
  ``kernel_width``, stride ``down_stride · first_stride_expansion``), no activation;
* residual blocks ``layers = [n_0, n_1, …]``: ``n_i`` blocks of ``2**(channel_exp_base + i)``
  channels; each is GroupNorm(1) → conv_1 → Swish → Dropout2d → conv_2 (dilated, size-preserving)
  → squeeze-excitation (reduction 16) → stochastic depth, plus a strided identity convolution (the
  first residual block takes its identity after the GroupNorm: "full pre-activation");
* optional self-attention over channels once ``height · width ≤ attention_inclusion_cutoff``;
* flatten → LayerNorm → Swish → Linear(``num_output_features``).

Branch outputs are concatenated (:class:`ClasterNet`), passed through the fusion MLP
(:class:`ResidualMLP`: residual blocks LayerNorm → Linear → Swish → Dropout → Linear →
stochastic depth, + identity; the first block maps the concatenation to ``fc_task_dim``) and a
linear head with one output per target column (401 for the paper's 1-kb profile over TSS ± 200 kb;
1 for a gene-level head).

Swish is aislib's (EIR's dependency): ``x · sigmoid(β x)`` with a *learnable* slope β (init 1), one
per activation module. The published parameter counts (2,205,869 for the landscape-only model)
count the weights without these slopes; the module has 19 more (17 in the landscape branch, 2 in
the fusion): :func:`count_parameters` returns both.

EIR quirks kept on purpose (they define the published model): conv_1 of every block is built
*without* the dilation the solver assumed when it chose the padding; the first block uses the
requested stride, not the solver's; conv_2's kernel is ``k − 1`` for an even ``k``.

Networks only: nothing here imports the rest of chromexp (training recipes are in
``chromexp.experiments.claster``).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

# ----------------------------------------------------------------------------------------------
# the published configuration (RasmussenLab/CLASTER configurations/*@1ff92a2; EIR 0.1.43 defaults)
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CNNConfig:
    """EIR's ``CNNModelConfig`` (eir-dl 0.1.43), the fields CLASTER uses; defaults are EIR's.

    ``layers`` is required here (EIR's automatic block count is not used by any CLASTER
    configuration). See :data:`PAPER_LANDSCAPE` for the published values.
    """

    layers: tuple[int, ...]
    num_output_features: int = 256
    channel_exp_base: int = 2
    first_channel_expansion: int = 1
    kernel_width: int = 12
    first_kernel_expansion_width: int = 1
    down_stride_width: int = 4
    first_stride_expansion_width: int = 1
    dilation_factor_width: int = 1
    kernel_height: int = 4
    first_kernel_expansion_height: int = 1
    down_stride_height: int = 1
    first_stride_expansion_height: int = 1
    dilation_factor_height: int = 1
    rb_do: float = 0.0
    stochastic_depth_p: float = 0.0
    attention_inclusion_cutoff: int = 0

    def __post_init__(self):
        layers = tuple(int(n) for n in self.layers)
        if not layers or any(n < 1 for n in layers):
            raise ValueError(f"CNNConfig.layers must be a non-empty list of positive integers; got {self.layers!r}.")
        object.__setattr__(self, "layers", layers)
        for name in (
            "num_output_features",
            "first_channel_expansion",
            "kernel_width",
            "first_kernel_expansion_width",
            "down_stride_width",
            "first_stride_expansion_width",
            "dilation_factor_width",
            "kernel_height",
            "first_kernel_expansion_height",
            "down_stride_height",
            "first_stride_expansion_height",
            "dilation_factor_height",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CNNConfig.{name} must be a positive integer; got {getattr(self, name)!r}.")
        for name in ("rb_do", "stochastic_depth_p"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"CNNConfig.{name} must be in [0, 1]; got {getattr(self, name)!r}.")
        # EIR's own checks (_validate_cnn_config): a stride may not exceed its kernel
        if self.down_stride_width > self.kernel_width or self.down_stride_height > self.kernel_height:
            raise ValueError(
                f"CNNConfig: the down stride ({self.down_stride_height} x {self.down_stride_width}) may not exceed "
                f"the kernel ({self.kernel_height} x {self.kernel_width}), as in EIR."
            )

    @classmethod
    def from_dict(cls, values: Mapping) -> CNNConfig:
        """From a YAML ``model_init_config`` mapping; unknown keys are an error naming them."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"Unknown CNN configuration key(s) {unknown}; known: {sorted(known)}.")
        return cls(**dict(values))

    def to_dict(self) -> dict:
        """Plain dict (``layers`` as a list), e.g. to write back as YAML."""
        d = asdict(self)
        d["layers"] = list(d["layers"])
        return d


@dataclass(frozen=True)
class FusionConfig:
    """EIR's ``ResidualMLPConfig`` for ``model_type: mlp-residual`` (defaults are EIR's).

    ``fc_do`` is part of the published configuration but unused with a linear output module.
    """

    layers: tuple[int, ...] = (2,)
    fc_task_dim: int = 256
    rb_do: float = 0.1
    fc_do: float = 0.1
    stochastic_depth_p: float = 0.1

    def __post_init__(self):
        layers = tuple(int(n) for n in self.layers)
        if not layers or layers[0] < 1:
            raise ValueError(f"FusionConfig.layers must start with a positive block count; got {self.layers!r}.")
        object.__setattr__(self, "layers", layers)
        if int(self.fc_task_dim) < 1:
            raise ValueError(f"FusionConfig.fc_task_dim must be positive; got {self.fc_task_dim!r}.")


#: ``configurations/conf_pure_conv*/input_cnn.yaml`` (landscape branch, 4 marks × 10,001 bins).
PAPER_LANDSCAPE = CNNConfig(
    layers=(4, 4),
    num_output_features=512,
    kernel_height=1,
    down_stride_width=2,
    first_stride_expansion_width=1,
    first_kernel_expansion_height=4,
    kernel_width=10,
    dilation_factor_width=2,
    dilation_factor_height=1,
    channel_exp_base=5,
    first_channel_expansion=2,
    rb_do=0.3,
    stochastic_depth_p=0.1,
    attention_inclusion_cutoff=1,
)
#: ``configurations/conf_only_chrom_attention/input_cnn.yaml``: attention once height × width ≤ 50.
PAPER_LANDSCAPE_ATTENTION = replace(PAPER_LANDSCAPE, attention_inclusion_cutoff=50)
#: ``configurations/conf_microc_pure_conv/input_cnn_microc.yaml`` (square Micro-C map, 626 × 626).
PAPER_MICROC_SQUARE = CNNConfig(
    layers=(1, 2),
    num_output_features=512,
    kernel_height=5,
    down_stride_width=2,
    down_stride_height=2,
    kernel_width=5,
    dilation_factor_width=2,
    dilation_factor_height=2,
    channel_exp_base=2,
    first_channel_expansion=2,
    rb_do=0.3,
    stochastic_depth_p=0.1,
    attention_inclusion_cutoff=1,
)
#: ``configurations/conf_microc_rotated_pure_conv/input_cnn_microc_rotated.yaml`` (rotated band, 129 × 626).
PAPER_MICROC_ROTATED = CNNConfig(
    layers=(1, 2),
    num_output_features=512,
    kernel_height=1,
    down_stride_width=2,
    first_stride_expansion_width=1,
    first_kernel_expansion_height=129,
    kernel_width=10,
    dilation_factor_width=2,
    channel_exp_base=4,
    first_channel_expansion=2,
    rb_do=0.3,
    stochastic_depth_p=0.1,
    attention_inclusion_cutoff=1,
)
#: ``fusion.yaml``.
PAPER_FUSION = FusionConfig(layers=(2,), fc_task_dim=256, rb_do=0.4, fc_do=0.4, stochastic_depth_p=0.5)
#: Input shapes (channels, height, width) of the paper's branches.
PAPER_LANDSCAPE_SHAPE = (1, 4, 10_001)
PAPER_MICROC_SQUARE_SHAPE = (1, 626, 626)
PAPER_MICROC_ROTATED_SHAPE = (1, 129, 626)
#: 401 target columns ``-200_ctrl … 200_ctrl`` (``outputs_2_cond.yaml``): 1-kb bins over TSS ± 200 kb.
PAPER_N_OUTPUTS = 401
#: Published parameter counts (weights without aislib Swish slopes; docs/methods.md, "CLASTER").
PAPER_N_PARAMETERS = {
    "landscape_branch": 1_641_244,
    "fusion_one_branch": 461_568,
    "fusion_two_branches": 724_736,
    "head": 103_057,
    "landscape_only": 2_205_869,
    "landscape_attention": 2_229_739,
    "with_microc_rotated": 3_180_420,
    "with_microc_square": 8_201_452,
}

#: Option A of the adaptation (docs/methods.md, "CLASTER adapted"): 7 marks × 400 bins at 100 bp.
#: ``[4, 4]`` has no valid padding at width 400, so two groups of two blocks ``[our choice]``.
ADAPTED_LANDSCAPE = replace(PAPER_LANDSCAPE, layers=(2, 2), first_kernel_expansion_height=7)
#: The virtual-4C structure branch (1 × 400 bins of 1 kb over TSS ± 200 kb) ``[our choice]``: the
#: landscape's geometry with height 1 and half the channels.
ADAPTED_VIRTUAL_4C = replace(
    PAPER_LANDSCAPE, layers=(2, 2), first_kernel_expansion_height=1, channel_exp_base=4, num_output_features=128
)
#: The CLASTER-faithful square structure map of the adaptation (5-kb bins over TSS ± 500 kb, 201 × 201)
#: uses the paper's Micro-C square configuration unchanged.
ADAPTED_SQUARE = PAPER_MICROC_SQUARE


# ----------------------------------------------------------------------------------------------
# EIR's layer arithmetic
# ----------------------------------------------------------------------------------------------
def conv_output_size(size: int, kernel: int, stride: int, dilation: int = 1, padding: int = 0) -> int:
    """Output length of a convolution (torch's formula, floor division)."""
    return (int(size) + 2 * int(padding) - int(dilation) * (int(kernel) - 1) - 1) // int(stride) + 1


@dataclass(frozen=True)
class ConvChoice:
    """What EIR's solver returns for one axis: kernel, stride, dilation, padding and the target size."""

    kernel: int
    stride: int
    dilation: int
    padding: int
    target: int


def solve_conv(size: int, kernel: int, stride: int, dilation: int) -> ConvChoice:
    """EIR's ``calc_conv_params_needed``: the (kernel, stride, dilation, padding) nearest the request.

    The target size is the unpadded output ``t0``; candidates are every positive combination of
    ``kernel ± {0, 1}``, ``t0 ± {0, 1}``, ``stride ± {0, 1}``, ``dilation ± {0, 1}`` whose padding
    ``p = ((t − 1)·s − size + d·(k − 1) + 1) / 2`` is a non-negative integer (EIR solves the same
    linear equation with sympy over non-negative integers). The chosen one minimises
    ``|Δk| + |Δs| + |Δd| + p``, ties broken by the smallest ``(k, s, d, p, t)``.

    Raises
    ------
    ValueError
        When no candidate has a valid padding (EIR raises an AssertionError there).
    """
    if size < 0:
        raise ValueError(f"solve_conv: negative input size {size}.")
    t0 = conv_output_size(size, kernel, stride, dilation, 0)

    def around(base: int) -> list[int]:
        return [v for v in (base, base + 1, base - 1) if v > 0]

    best, best_key = None, None
    for k in around(kernel):
        for t in around(t0):
            for s in around(stride):
                for d in around(dilation):
                    twice = (t - 1) * s - size + d * (k - 1) + 1
                    if twice < 0 or twice % 2:
                        continue
                    p = twice // 2
                    key = (abs(k - kernel) + abs(s - stride) + abs(d - dilation) + p, (k, s, d, p, t))
                    if best_key is None or key < best_key:
                        best, best_key = ConvChoice(k, s, d, p, t), key
    if best is None:
        raise ValueError(
            f"No convolution with an integer padding fits input size {size}, kernel {kernel}, stride {stride}, "
            f"dilation {dilation} (EIR's solver fails here too): change the window or the CNN layers."
        )
    return best


def block_dilation(factor: int, size: int, block_number: int, kernel: int) -> int:
    """EIR's ``_get_cur_dilation``: ``factor ** block_number``, divided by ``factor`` until ≤ (size − 1) / (kernel − 1)."""
    if size == 1 or kernel == 1:
        return 1
    dilation = factor**block_number
    cap = max(1, (size - 1) // (kernel - 1))
    while dilation > cap:
        dilation //= factor
    return dilation


def conv2_geometry(kernel: int, dilation: int) -> tuple[int, int]:
    """conv_2's (kernel, padding) on one axis: ``k − 1`` for an even ``k``, padding ``(k2 // 2) · dilation``."""
    k2 = kernel - 1 if kernel % 2 == 0 else kernel
    return k2, (k2 // 2) * dilation


@dataclass(frozen=True)
class BlockSpec:
    """One block of a branch, as EIR instantiates it (all numbers per axis as (height, width))."""

    kind: str  # "first", "residual" or "attention"
    in_channels: int
    out_channels: int
    kernel: tuple[int, int] = (0, 0)
    stride: tuple[int, int] = (0, 0)
    padding: tuple[int, int] = (0, 0)
    kernel2: tuple[int, int] = (0, 0)
    padding2: tuple[int, int] = (0, 0)
    dilation2: tuple[int, int] = (1, 1)
    full_preact: bool = False
    out_shape: tuple[int, int, int] = (0, 0, 0)


def _size_after(spec: BlockSpec, h: int, w: int) -> tuple[int, int]:
    """Size after a block, through conv_1 then conv_2 (EIR's ``calc_size_after_conv_sequence``)."""
    convs = []
    if spec.kind in ("first", "residual"):
        convs.append((spec.kernel, spec.stride, spec.padding, (1, 1)))
    if spec.kind == "residual":
        convs.append((spec.kernel2, (1, 1), spec.padding2, spec.dilation2))
    for k, s, p, d in convs:
        if k[0] > h + 2 * p[0] or k[1] > w + 2 * p[1]:
            raise ValueError(
                f"A kernel of {k[0]} x {k[1]} exceeds the padded input {h + 2 * p[0]} x {w + 2 * p[1]}: "
                "the input is too small for these CNN layers."
            )
        h, w = conv_output_size(h, k[0], s[0], d[0], p[0]), conv_output_size(w, k[1], s[1], d[1], p[1])
        if h < 1 or w < 1:
            raise ValueError(f"A convolution leaves an empty output ({h} x {w}): the input is too small.")
    return h, w


def plan_branch(cfg: CNNConfig, input_shape: Sequence[int]) -> list[BlockSpec]:
    """The blocks EIR 0.1.43 builds for ``cfg`` on an input of shape ``(channels, height, width)``.

    Pure arithmetic (no tensors): used to build :class:`CNNBranch` and to print its layer table.
    """
    if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width) with positive sizes; got {input_shape!r}.")
    c_in, height, width = (int(v) for v in input_shape)
    first_channels = 2**cfg.channel_exp_base * cfg.first_channel_expansion
    kw = cfg.kernel_width * cfg.first_kernel_expansion_width
    sw = cfg.down_stride_width * cfg.first_stride_expansion_width
    kh = cfg.kernel_height * cfg.first_kernel_expansion_height
    sh = cfg.down_stride_height * cfg.first_stride_expansion_height
    solved_w = solve_conv(width, kw, sw, cfg.dilation_factor_width)
    solved_h = solve_conv(height, kh, sh, cfg.dilation_factor_height)
    # EIR passes the *requested* stride to the first block, and builds conv_1 without dilation
    first = BlockSpec(
        kind="first",
        in_channels=c_in,
        out_channels=first_channels,
        kernel=(solved_h.kernel, solved_w.kernel),
        stride=(sh, sw),
        padding=(solved_h.padding, solved_w.padding),
    )
    h, w = _size_after(first, height, width)
    blocks = [replace(first, out_shape=(first_channels, h, w))]
    if h * w <= cfg.attention_inclusion_cutoff:
        blocks.append(BlockSpec("attention", first_channels, first_channels, out_shape=(first_channels, h, w)))
    n_residual = 0
    for group, n_blocks in enumerate(cfg.layers):
        for _ in range(n_blocks):
            n_residual += 1
            dil_w = block_dilation(cfg.dilation_factor_width, w, n_residual, cfg.kernel_width)
            dil_h = block_dilation(cfg.dilation_factor_height, h, n_residual, cfg.kernel_height)
            cw = solve_conv(w, cfg.kernel_width, cfg.down_stride_width, dil_w)
            ch = solve_conv(h, cfg.kernel_height, cfg.down_stride_height, dil_h)
            k2h, p2h = conv2_geometry(ch.kernel, ch.dilation)
            k2w, p2w = conv2_geometry(cw.kernel, cw.dilation)
            out_channels = 2 ** (cfg.channel_exp_base + group)
            spec = BlockSpec(
                kind="residual",
                in_channels=blocks[-1].out_channels,
                out_channels=out_channels,
                kernel=(ch.kernel, cw.kernel),
                stride=(ch.stride, cw.stride),
                padding=(ch.padding, cw.padding),
                kernel2=(k2h, k2w),
                padding2=(p2h, p2w),
                dilation2=(ch.dilation, cw.dilation),
                full_preact=len(blocks) == 1,
            )
            h, w = _size_after(spec, h, w)
            blocks.append(replace(spec, out_shape=(out_channels, h, w)))
            if h * w <= cfg.attention_inclusion_cutoff:
                blocks.append(BlockSpec("attention", out_channels, out_channels, out_shape=(out_channels, h, w)))
    return blocks


# ----------------------------------------------------------------------------------------------
# modules
# ----------------------------------------------------------------------------------------------
class Swish(nn.Module):
    """aislib's Swish: ``x · sigmoid(β x)`` with a learnable slope β (``weight``, init 1)."""

    def __init__(self, num_parameters: int = 1, init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((num_parameters,), float(init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.weight * x)


class StochasticDepth(nn.Module):
    """torchvision's ``StochasticDepth(p, mode="batch")``: drops a batch's residual branch with probability ``p``.

    In training the whole branch of a batch is dropped with probability ``p`` (and scaled by
    ``1 / (1 − p)`` when kept); identity in eval mode.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        noise = torch.empty([1] * x.ndim, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise = noise / survival
        return x * noise


class SEBlock(nn.Module):
    """Squeeze-excitation (EIR ``SEBlock``): global mean → 1×1 conv down (÷ reduction) → Swish → 1×1 conv up → sigmoid."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        reduced = max(1, channels // reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_down = nn.Conv2d(channels, reduced, kernel_size=1)
        self.act_1 = Swish()
        self.conv_up = nn.Conv2d(reduced, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv_up(self.act_1(self.conv_down(self.avg_pool(x)))))


class FirstBlock(nn.Module):
    """The first block of a branch: one convolution (EIR ``FirstCNNBlock``)."""

    def __init__(self, spec: BlockSpec):
        super().__init__()
        self.spec = spec
        self.out_channels = spec.out_channels
        self.conv_1 = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_1(x)


class ResidualBlock(nn.Module):
    """EIR ``CNNResidualBlock``: pre-activation residual block with a dilated conv_2, SE and stochastic depth."""

    def __init__(self, spec: BlockSpec, rb_do: float, stochastic_depth_p: float):
        super().__init__()
        self.spec = spec
        self.out_channels = spec.out_channels
        self.full_preact = spec.full_preact
        self.norm_1 = nn.GroupNorm(num_groups=1, num_channels=spec.in_channels)
        self.conv_1 = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding)
        self.act_1 = Swish()
        self.rb_do = nn.Dropout2d(rb_do)
        self.conv_2 = nn.Conv2d(
            spec.out_channels, spec.out_channels, spec.kernel2, 1, spec.padding2, dilation=spec.dilation2
        )
        self.se_block = SEBlock(spec.out_channels, reduction=16)
        self.stochastic_depth = StochasticDepth(stochastic_depth_p)
        self.downsample_identity = nn.Sequential(
            nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel, spec.stride, spec.padding)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm_1(x)
        identity = self.downsample_identity(out if self.full_preact else x)
        out = self.conv_2(self.rb_do(self.act_1(self.conv_1(out))))
        out = out * self.se_block(out)
        return self.stochastic_depth(out) + identity


class AttentionBlock(nn.Module):
    """EIR ``ConvAttentionBlock``: 2 pre-norm transformer layers over the channels (tokens of height × width)."""

    def __init__(self, spec: BlockSpec, num_heads: int = 4, dropout_p: float = 0.1, num_layers: int = 2):
        super().__init__()
        self.spec = spec
        self.out_channels = spec.out_channels
        _, self.height, self.width = spec.out_shape
        d_model = self.height * self.width
        while d_model % num_heads:  # EIR's _adjust_num_heads
            num_heads -= 1
        layer = nn.TransformerEncoderLayer(
            d_model=d_model,
            nhead=num_heads,
            dim_feedforward=4 * d_model,
            activation="gelu",
            norm_first=True,
            batch_first=True,
            dropout=dropout_p,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.encoder(x.reshape(-1, self.out_channels, self.height * self.width))
        return out.reshape(-1, self.out_channels, self.height, self.width)


class PositionalEmbedding(nn.Module):
    """EIR ``GeneralPositionalEmbedding`` (dropout 0): a learned ``(1, height, width)`` tensor added to the input."""

    def __init__(self, height: int, width: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, height, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding


class CNNBranch(nn.Module):
    """One input branch: EIR's ``CNNModel`` for ``cfg`` on inputs of shape ``(batch, channels, height, width)``.

    Parameters
    ----------
    cfg : CNNConfig
    input_shape : (channels, height, width)
        E.g. ``(1, 4, 10001)`` for the paper's landscape (marks are the *height*), ``(1, 7, 400)``
        for option A, ``(1, 1, 400)`` for a virtual-4C track.

    The forward pass also accepts ``(batch, height, width)`` when ``channels == 1``, and
    ``(batch, width)`` when both are 1 (a 1-D track). Output:
    ``(batch, cfg.num_output_features)``.
    """

    def __init__(self, cfg: CNNConfig, input_shape: Sequence[int]):
        super().__init__()
        self.cfg = cfg
        self.input_shape = tuple(int(v) for v in input_shape)
        self.specs = plan_branch(cfg, self.input_shape)
        _, height, width = self.input_shape
        self.pos_representation = PositionalEmbedding(height, width)
        blocks: list[nn.Module] = []
        for spec in self.specs:
            if spec.kind == "first":
                blocks.append(FirstBlock(spec))
            elif spec.kind == "residual":
                blocks.append(ResidualBlock(spec, cfg.rb_do, cfg.stochastic_depth_p))
            else:
                blocks.append(AttentionBlock(spec))
        self.conv = nn.Sequential(*blocks)
        c, h, w = self.specs[-1].out_shape
        self.flat_features = c * h * w
        self.fc = nn.Sequential(
            OrderedDict(
                fc_1_norm_1=nn.LayerNorm(self.flat_features),
                fc_1_act_1=Swish(),
                fc_1_linear_1=nn.Linear(self.flat_features, cfg.num_output_features),
            )
        )
        for m in self.modules():  # EIR CNNModel._init_weights (Swish slope ≈ 0.5 around 0)
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.5, mode="fan_out")

    @property
    def num_out_features(self) -> int:
        """Width of the branch's output vector."""
        return self.cfg.num_output_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(batch, channels, height, width)`` (or without the unit dimensions) → ``(batch, features)``."""
        if x.ndim == 2 and self.input_shape[:2] == (1, 1):  # a 1-D track, e.g. virtual 4C
            x = x[:, None, None, :]
        elif x.ndim == 3 and self.input_shape[0] == 1:
            x = x.unsqueeze(1)
        if tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"CNNBranch expects inputs of shape (batch, *{self.input_shape}); got {tuple(x.shape)}.")
        out = self.conv(self.pos_representation(x))
        return self.fc(out.reshape(out.shape[0], -1))


class MLPResidualBlock(nn.Module):
    """EIR ``MLPResidualBlock``: LayerNorm → Linear → Swish → Dropout → Linear → stochastic depth, + identity."""

    def __init__(self, in_features: int, out_features: int, dropout_p: float, stochastic_depth_p: float):
        super().__init__()
        self.norm_1 = nn.LayerNorm(in_features)
        self.fc_1 = nn.Linear(in_features, out_features)
        self.act_1 = Swish()
        self.do = nn.Dropout(dropout_p)
        self.fc_2 = nn.Linear(out_features, out_features)
        self.downsample_identity = nn.Linear(in_features, out_features) if in_features != out_features else None
        self.stochastic_depth = StochasticDepth(stochastic_depth_p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm_1(x)
        identity = x if self.downsample_identity is None else self.downsample_identity(x)
        out = self.fc_2(self.do(self.act_1(self.fc_1(out))))
        return self.stochastic_depth(out) + identity


class ResidualMLP(nn.Module):
    """EIR ``MLPResidualFusionModule``: ``layers[0]`` residual blocks, the first from ``in_features`` to ``fc_task_dim``."""

    def __init__(self, cfg: FusionConfig, in_features: int):
        super().__init__()
        self.cfg = cfg
        dims = [int(in_features)] + [cfg.fc_task_dim] * cfg.layers[0]
        self.blocks = nn.Sequential(
            *[MLPResidualBlock(a, b, cfg.rb_do, cfg.stochastic_depth_p) for a, b in zip(dims[:-1], dims[1:])]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class ClasterNet(nn.Module):
    """CLASTER: branches → concatenation → fusion MLP → linear head.

    Parameters
    ----------
    branches : mapping name → (CNNConfig, input_shape)
        In concatenation order; the first is the landscape (e.g. ``{"landscape": (PAPER_LANDSCAPE,
        PAPER_LANDSCAPE_SHAPE)}``), a second the structure branch.
    fusion : FusionConfig
    n_outputs : int
        Target columns: 401 (paper profile), 40 (option A 1-kb profile) or 1 (gene head).

    ``forward(landscape, structure=None)`` takes the branches' inputs positionally or by name and
    returns ``(batch, n_outputs)`` (``(batch,)`` when ``n_outputs == 1``), the raw linear outputs
    (CLASTER clips predictions at 0 only afterwards, in its analysis).
    """

    def __init__(self, branches: Mapping[str, tuple[CNNConfig, Sequence[int]]], fusion: FusionConfig, n_outputs: int):
        super().__init__()
        if not branches:
            raise ValueError("ClasterNet needs at least one branch.")
        if int(n_outputs) < 1:
            raise ValueError(f"n_outputs must be ≥ 1; got {n_outputs}.")
        self.branch_names = tuple(branches)
        self.branches = nn.ModuleDict({name: CNNBranch(cfg, shape) for name, (cfg, shape) in branches.items()})
        fused = sum(b.num_out_features for b in self.branches.values())
        self.fusion = ResidualMLP(fusion, fused)
        self.head = nn.Linear(fusion.fc_task_dim, int(n_outputs))
        self.n_outputs = int(n_outputs)

    def forward(self, *inputs: torch.Tensor, **named: torch.Tensor) -> torch.Tensor:
        """Branch inputs in :attr:`branch_names` order (positional) or by name → ``(batch, n_outputs)``."""
        values = dict(zip(self.branch_names, inputs))
        for k, v in named.items():
            if k not in self.branches:
                raise ValueError(f"Unknown ClasterNet input {k!r}; branches: {list(self.branch_names)}.")
            values[k] = v
        missing = [n for n in self.branch_names if n not in values]
        if missing or len(inputs) > len(self.branch_names):
            raise ValueError(f"ClasterNet needs inputs for {list(self.branch_names)}; missing {missing}.")
        features = torch.cat([self.branches[n](values[n]) for n in self.branch_names], dim=1)
        out = self.head(self.fusion(features))
        return out[:, 0] if self.n_outputs == 1 else out


def paper_model(structure: str | None = None, attention: bool = False) -> ClasterNet:
    """The published CLASTER: landscape (4 × 10,001) [+ Micro-C] → 401 × 1-kb profile.

    Parameters
    ----------
    structure : {None, "square", "rotated"}
        None: landscape only (``conf_pure_conv``, 2,205,869 published parameters); ``"square"``:
        + the 626 × 626 Micro-C map; ``"rotated"``: + the rotated 129 × 626 band.
    attention : bool
        The landscape branch of ``conf_only_chrom_attention`` (attention once width ≤ 50).
    """
    land = PAPER_LANDSCAPE_ATTENTION if attention else PAPER_LANDSCAPE
    branches: dict = {"landscape": (land, PAPER_LANDSCAPE_SHAPE)}
    if structure == "square":
        branches["structure"] = (PAPER_MICROC_SQUARE, PAPER_MICROC_SQUARE_SHAPE)
    elif structure == "rotated":
        branches["structure"] = (PAPER_MICROC_ROTATED, PAPER_MICROC_ROTATED_SHAPE)
    elif structure is not None:
        raise ValueError(f"structure must be None, 'square' or 'rotated'; got {structure!r}.")
    return ClasterNet(branches, PAPER_FUSION, PAPER_N_OUTPUTS)


#: Structure-branch forms of the adaptation: a virtual-4C track (1 × bins) or the square map (bins × bins).
STRUCTURE_FORMS = ("virtual_4c", "square")


def adapted_model(
    n_marks: int = 7,
    n_bins: int = 400,
    n_outputs: int = 1,
    structure: str | None = None,
    structure_bins: int | None = None,
    landscape: CNNConfig | None = None,
    structure_cfg: CNNConfig | None = None,
    fusion: FusionConfig = PAPER_FUSION,
) -> ClasterNet:
    """CLASTER adapted to this study (docs/methods.md, "CLASTER adapted"; option A by default).

    Parameters
    ----------
    n_marks, n_bins : int
        Landscape height (marks) and width (100-bp bins): 7 × 400 for option A (TSS ± 20 kb),
        7 × 2,000 for option B (± 100 kb, ``layers [3, 3]``), 7 × 10,000 for option C.
    n_outputs : int
        1 for the gene head (log2 RPKM), the number of 1-kb bins for a profile head (40 for option A).
    structure : {None, "virtual_4c", "square"}
        The structure branch: a virtual-4C track of shape ``(1, 1, structure_bins)`` (default 400
        bins of 1 kb) or a square contact map ``(1, structure_bins, structure_bins)`` (default 201
        bins of 5 kb, the paper's Micro-C configuration).
    landscape, structure_cfg : CNNConfig, optional
        Override the branch configurations (default :data:`ADAPTED_LANDSCAPE` and
        :data:`ADAPTED_VIRTUAL_4C` / :data:`ADAPTED_SQUARE`).
    fusion : FusionConfig
        Default the paper's.
    """
    branches: dict = {"landscape": (landscape or ADAPTED_LANDSCAPE, (1, int(n_marks), int(n_bins)))}
    if structure == "virtual_4c":
        bins = int(structure_bins or 400)
        branches["structure"] = (structure_cfg or ADAPTED_VIRTUAL_4C, (1, 1, bins))
    elif structure == "square":
        bins = int(structure_bins or 201)
        branches["structure"] = (structure_cfg or ADAPTED_SQUARE, (1, bins, bins))
    elif structure is not None:
        raise ValueError(f"structure must be None or one of {STRUCTURE_FORMS}; got {structure!r}.")
    return ClasterNet(branches, fusion, n_outputs)


# ----------------------------------------------------------------------------------------------
# parameter counts, the layer table and the transplant of EIR weights
# ----------------------------------------------------------------------------------------------
def _is_swish_slope(name: str, module_of: Mapping[str, nn.Module]) -> bool:
    owner = name.rsplit(".", 1)[0]
    return isinstance(module_of.get(owner), Swish)


def count_parameters(module: nn.Module) -> dict[str, int]:
    """``{"weights": …, "swish": …, "total": …}``: parameters without / of the learnable Swish slopes."""
    modules = dict(module.named_modules())
    swish = sum(p.numel() for n, p in module.named_parameters() if _is_swish_slope(n, modules))
    total = sum(p.numel() for p in module.parameters())
    return {"weights": total - swish, "swish": swish, "total": total}


#: Columns of :func:`layer_table` (and of the committed fixture ``tests/data/claster_layer_table.tsv``).
LAYER_TABLE_COLUMNS = (
    "model",
    "branch",
    "layer",
    "kind",
    "in_channels",
    "out_channels",
    "kernel",
    "stride",
    "padding",
    "kernel2",
    "padding2",
    "dilation2",
    "full_preact",
    "out_shape",
    "params",
    "swish_params",
)


def _hw(pair) -> str:
    return "x".join(str(int(v)) for v in pair)


def layer_table(model: ClasterNet, name: str) -> list[dict]:
    """One row per layer of ``model``: every convolution's kernel, stride, padding, dilation, output shape, parameters.

    Read from the instantiated ``nn.Conv2d`` modules (not from the plan), so it checks what was
    built. Rows: per branch ``pos``, the blocks ``0 … n`` (kind ``first``/``residual``/``attention``)
    and ``fc``; then ``fusion``, ``head`` and ``total``. Pairs are written ``HxW``; ``params`` counts
    weights without Swish slopes, ``swish_params`` the slopes.
    """
    rows = []

    def counts(m: nn.Module) -> tuple[int, int]:
        c = count_parameters(m)
        return c["weights"], c["swish"]

    empty = dict.fromkeys(LAYER_TABLE_COLUMNS[4:13], "")
    for bname, branch in model.branches.items():
        w, s = counts(branch.pos_representation)
        c, h, wd = branch.input_shape
        rows.append({"model": name, "branch": bname, "layer": "pos", "kind": "embedding", **empty,
                     "out_shape": f"{c}x{h}x{wd}", "params": w, "swish_params": s})  # fmt: skip
        for i, block in enumerate(branch.conv):
            w, s = counts(block)
            row = {"model": name, "branch": bname, "layer": str(i), **empty}
            row["out_shape"] = "x".join(str(v) for v in block.spec.out_shape)
            row["in_channels"], row["out_channels"] = block.spec.in_channels, block.spec.out_channels
            if isinstance(block, (FirstBlock, ResidualBlock)):
                c1 = block.conv_1
                row.update(kernel=_hw(c1.kernel_size), stride=_hw(c1.stride), padding=_hw(c1.padding))
                row["kind"] = "first" if isinstance(block, FirstBlock) else "residual"
            if isinstance(block, ResidualBlock):
                c2 = block.conv_2
                row.update(kernel2=_hw(c2.kernel_size), padding2=_hw(c2.padding), dilation2=_hw(c2.dilation))
                row["full_preact"] = str(bool(block.full_preact))
            if isinstance(block, AttentionBlock):
                row["kind"] = "attention"
            rows.append({**row, "params": w, "swish_params": s})
        w, s = counts(branch.fc)
        rows.append({"model": name, "branch": bname, "layer": "fc", "kind": "dense", **empty,
                     "in_channels": branch.flat_features, "out_shape": str(branch.num_out_features),
                     "params": w, "swish_params": s})  # fmt: skip
    for lname, module, width in (
        ("fusion", model.fusion, model.fusion.cfg.fc_task_dim),
        ("head", model.head, model.n_outputs),
    ):
        w, s = counts(module)
        rows.append({"model": name, "branch": "", "layer": lname, "kind": "dense", **empty,
                     "out_shape": str(width), "params": w, "swish_params": s})  # fmt: skip
    w, s = counts(model)
    rows.append({"model": name, "branch": "", "layer": "total", "kind": "", **empty, "out_shape": "",
                 "params": w, "swish_params": s})  # fmt: skip
    return [{k: r[k] for k in LAYER_TABLE_COLUMNS} for r in rows]


def transplant_eir_state(
    model: ClasterNet,
    eir_state: Mapping[str, torch.Tensor],
    input_names: Mapping[str, str],
    output_name: str,
    target_columns: Sequence[str],
) -> dict[str, torch.Tensor]:
    """Map an EIR ``MetaModel`` state dict onto ``model``'s parameter names (strict: every tensor used once).

    Parameters
    ----------
    model : ClasterNet
    eir_state : mapping
        EIR's ``state_dict()``: ``input_modules.<input>.feature_extractor.*``,
        ``fusion_modules.computed.fusion_modules.fusion.{0.0, 1.0, 1.1, …}.*`` and
        ``output_modules.<output>.multi_task_branches.<column>.{weight,bias}``.
    input_names : mapping
        Our branch name → EIR input name (e.g. ``{"landscape": "gene_expression"}``).
    output_name : str
        EIR output name (``expression_output`` in CLASTER's configuration).
    target_columns : sequence of str
        EIR's target columns in our head's output order (``-200_ctrl … 200_ctrl``).

    Returns
    -------
    dict
        A state dict for ``model.load_state_dict(..., strict=True)``.

    Raises
    ------
    ValueError
        When a tensor of either side is left unmatched, or a shape differs.
    """
    used: set[str] = set()
    out: dict[str, torch.Tensor] = {}

    def take(key: str) -> torch.Tensor:
        if key not in eir_state:
            raise ValueError(f"The EIR state dict has no {key!r}.")
        used.add(key)
        return eir_state[key]

    for name in model.state_dict():
        parts = name.split(".")
        if parts[0] == "branches":
            prefix = f"input_modules.{input_names[parts[1]]}.feature_extractor."
            out[name] = take(prefix + ".".join(parts[2:]))
        elif parts[0] == "fusion":  # fusion.blocks.<i>.<rest>
            # EIR merges an adaptor Sequential (block 0) and a Sequential of the other blocks: 0.0, 1.0, 1.1, …
            i = int(parts[2])
            where = "0.0" if i == 0 else f"1.{i - 1}"
            out[name] = take(f"fusion_modules.computed.fusion_modules.fusion.{where}." + ".".join(parts[3:]))
        elif parts[0] == "head":
            pieces = [
                take(f"output_modules.{output_name}.multi_task_branches.{col}.{parts[1]}") for col in target_columns
            ]
            out[name] = torch.cat([p.reshape(1, -1) if parts[1] == "weight" else p.reshape(1) for p in pieces])
        else:
            raise ValueError(f"transplant_eir_state: no EIR counterpart for {name!r}.")
    left = sorted(set(eir_state) - used)
    if left:
        raise ValueError(f"{len(left)} EIR tensors have no place in the model, e.g. {left[:5]}.")
    want = model.state_dict()
    for k, v in out.items():
        if tuple(v.shape) != tuple(want[k].shape):
            raise ValueError(f"Shape of {k}: EIR {tuple(v.shape)} vs ours {tuple(want[k].shape)}.")
    return out


def receptive_field(model_or_branch: CNNBranch) -> list[int]:
    """Receptive field (in input bins along the width) after each block of a branch's conv stack.

    Convolutions only (identity paths are narrower); conv_1 then conv_2 per block.
    """
    rf, jump, fields = 1, 1, []
    for block in model_or_branch.conv:
        for conv in [getattr(block, "conv_1", None), getattr(block, "conv_2", None)]:
            if conv is None:
                continue
            k, s, d = conv.kernel_size[1], conv.stride[1], conv.dilation[1]
            rf += (k - 1) * d * jump
            jump *= s
        fields.append(rf)
    return fields


def flops_per_sample(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates × 2 of the convolutions and linear layers for one sample's forward pass (hooks)."""
    total = [0]

    def conv_hook(m: nn.Conv2d, _inp, out):
        k = math.prod(m.kernel_size) * (m.in_channels // m.groups)
        total[0] += 2 * k * out[0].numel()

    def linear_hook(m: nn.Linear, _inp, out):
        total[0] += 2 * m.in_features * out[0].numel()

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(*[x[:1] for x in inputs])
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    return int(total[0])


__all__ = [
    "ADAPTED_LANDSCAPE",
    "ADAPTED_SQUARE",
    "ADAPTED_VIRTUAL_4C",
    "adapted_model",
    "CNNBranch",
    "CNNConfig",
    "ClasterNet",
    "FusionConfig",
    "LAYER_TABLE_COLUMNS",
    "PAPER_FUSION",
    "PAPER_LANDSCAPE",
    "PAPER_N_PARAMETERS",
    "block_dilation",
    "count_parameters",
    "layer_table",
    "paper_model",
    "plan_branch",
    "solve_conv",
    "transplant_eir_state",
]
