"""Build CLASTER's models with EIR itself and dump what the oracle compares (run in the isolated ``.venv-eir``).

Usage (``chromexp.experiments.claster_reference.run_reference`` calls it)::

    <.venv-eir>/bin/python eir_reference.py request.json out.pt

The request names each model's input branches (EIR input name, ``model_init_config``, input shape
(channels, height, width)), the fusion ``model_config``, the output name and target columns, a
seed and a number of samples. For each model this script

1. builds EIR 0.1.43's own modules — ``ArrayWrapperModel(CNNModel)`` per input,
   ``fusion.get_fusion_modules`` (``mlp-residual``), ``LinearOutputModule`` and ``MetaModel`` —
   exactly as ``eir.models.model_setup_modules.meta_setup`` wires them;
2. reads its layer table off the instantiated ``nn.Conv2d`` modules;
3. moves every 1-D parameter (norm weights and biases, all biases, the learnable Swish slopes) and
   the positional embedding off its initial value by seeded N(0, 0.2²) noise — at their initial
   values (1, 0) a wrong use of them would go unnoticed — then draws seeded float64 inputs, runs
   the model in eval mode in float64 and stores its state dict (float64), the inputs and the outputs.

Nothing from chromexp is imported here: the reference sees only EIR, torch and the request.
EIR's ``DataDimensions`` lives in ``eir.setup.input_setup_modules.common``, whose imports need
deeplake (not installed in the oracle environment); the models read only its ``channels``,
``height`` and ``width``, so a dataclass with those fields stands in for it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from importlib import metadata

import torch
from eir.models.fusion import fusion
from eir.models.input.array.array_models import ArrayWrapperModel
from eir.models.input.array.models_cnn import CNNModel, CNNModelConfig
from eir.models.layers.cnn_layers import ConvAttentionBlock, FirstCNNBlock
from eir.models.layers.mlp_layers import ResidualMLPConfig
from eir.models.meta.meta import MetaModel
from eir.models.output.tabular.linear import LinearOutputModule, LinearOutputModuleConfig
from torch import nn


@dataclass
class DataDimensions:
    """The fields of EIR's ``DataDimensions`` that the array models read."""

    channels: int
    height: int
    width: int


def _swish_slopes(module: nn.Module) -> int:
    return sum(p.numel() for n, m in module.named_modules() if type(m).__name__ == "Swish" for p in m.parameters())


def _counts(module: nn.Module) -> tuple[int, int]:
    swish = _swish_slopes(module)
    return sum(p.numel() for p in module.parameters()) - swish, swish


def _hw(pair) -> str:
    return "x".join(str(int(v)) for v in pair)


def layer_table(model: MetaModel, name: str, branches: list[str]) -> list[dict]:
    """Rows of the layer table (the columns of chromexp.models.claster.LAYER_TABLE_COLUMNS)."""
    rows = []
    blank = dict.fromkeys(
        ("in_channels", "out_channels", "kernel", "stride", "padding", "kernel2", "padding2", "dilation2",
         "full_preact"), "")  # fmt: skip
    for ours, eir_name in branches:
        cnn = model.input_modules[eir_name].feature_extractor
        dims = cnn.data_dimensions
        w, s = _counts(cnn.pos_representation)
        rows.append({"model": name, "branch": ours, "layer": "pos", "kind": "embedding", **blank,
                     "out_shape": f"{dims.channels}x{dims.height}x{dims.width}", "params": w, "swish_params": s})  # fmt: skip
        h, wd = dims.height, dims.width
        for i, block in enumerate(cnn.conv):
            w, s = _counts(block)
            row = {"model": name, "branch": ours, "layer": str(i), **blank}
            if isinstance(block, ConvAttentionBlock):
                row.update(kind="attention", in_channels=block.in_channels, out_channels=block.out_channels)
                c = block.out_channels
            else:
                c1 = block.conv_1
                row.update(kind="first" if isinstance(block, FirstCNNBlock) else "residual",
                           in_channels=c1.in_channels, out_channels=c1.out_channels, kernel=_hw(c1.kernel_size),
                           stride=_hw(c1.stride), padding=_hw(c1.padding))  # fmt: skip
                convs = [c1]
                if not isinstance(block, FirstCNNBlock):
                    c2 = block.conv_2
                    row.update(kernel2=_hw(c2.kernel_size), padding2=_hw(c2.padding), dilation2=_hw(c2.dilation),
                               full_preact=str(bool(block.full_preact)))  # fmt: skip
                    convs.append(c2)
                for conv in convs:  # the output size through conv_1 then conv_2, as EIR computes it
                    h = (h + 2 * conv.padding[0] - conv.dilation[0] * (conv.kernel_size[0] - 1) - 1) // conv.stride[
                        0
                    ] + 1
                    wd = (wd + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[
                        1
                    ] + 1
                c = c1.out_channels
            rows.append({**row, "out_shape": f"{c}x{h}x{wd}", "params": w, "swish_params": s})
        w, s = _counts(cnn.fc)
        rows.append({"model": name, "branch": ours, "layer": "fc", "kind": "dense", **blank,
                     "in_channels": cnn.fc_1_in_features, "out_shape": str(cnn.num_out_features),
                     "params": w, "swish_params": s})  # fmt: skip
    fusion_module = model.fusion_modules["computed"]
    w, s = _counts(fusion_module)
    rows.append({"model": name, "branch": "", "layer": "fusion", "kind": "dense", **blank,
                 "out_shape": str(fusion_module.num_out_features), "params": w, "swish_params": s})  # fmt: skip
    (output,) = model.output_modules.values()
    w, s = _counts(output)
    rows.append({"model": name, "branch": "", "layer": "head", "kind": "dense", **blank,
                 "out_shape": str(sum(m.out_features for m in output.multi_task_branches.values())),
                 "params": w, "swish_params": s})  # fmt: skip
    w, s = _counts(model)
    rows.append({"model": name, "branch": "", "layer": "total", "kind": "", **blank, "out_shape": "",
                 "params": w, "swish_params": s})  # fmt: skip
    return rows


def build(spec: dict) -> MetaModel:
    """EIR's MetaModel for one request entry."""
    input_modules = nn.ModuleDict()
    for branch in spec["branches"]:
        channels, height, width = branch["shape"]
        cnn = CNNModel(
            model_config=CNNModelConfig(**branch["model_init_config"]),
            data_dimensions=DataDimensions(channels=channels, height=height, width=width),
        )
        input_modules[branch["eir_name"]] = ArrayWrapperModel(feature_extractor=cnn, normalization=None)
    output_name = spec["output_name"]
    fusion_modules = fusion.get_fusion_modules(
        fusion_model_type="mlp-residual",
        model_config=ResidualMLPConfig(**spec["fusion"]),
        modules_to_fuse=input_modules,
        out_feature_per_feature_extractor={k: m.num_out_features for k, m in input_modules.items()},
        output_types={output_name: "tabular"},
    )
    output = LinearOutputModule(
        model_config=LinearOutputModuleConfig(),
        input_dimension=fusion_modules["computed"].num_out_features,
        num_outputs_per_target=dict.fromkeys(spec["target_columns"], 1),
    )
    return MetaModel(
        input_modules=input_modules,
        fusion_modules=fusion_modules,
        output_modules=nn.ModuleDict({output_name: output}),
        fusion_to_output_mapping={output_name: "computed"},
    )


def main(request_path: str, out_path: str) -> None:
    """Build every requested model, run it in float64 and save the results with ``torch.save``."""
    request = json.loads(open(request_path).read())
    torch.manual_seed(int(request["seed"]))
    results = {"eir_version": metadata.version("eir-dl"), "torch_version": str(torch.__version__), "models": {}}
    for name, spec in request["models"].items():
        model = build(spec).double().eval()
        # move the trivially initialised tensors (norms, biases, Swish slopes at 1, the positional
        # embedding at 0) off their start values, so that a wrong use of any of them shows
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.ndim <= 1 or pname.endswith("pos_representation.embedding"):
                    p.add_(0.2 * torch.randn_like(p))
        branches = [(b["name"], b["eir_name"]) for b in spec["branches"]]
        inputs = {
            b["eir_name"]: torch.randn(int(request["n_samples"]), *b["shape"], dtype=torch.float64)
            for b in spec["branches"]
        }
        with torch.no_grad():
            out = model(inputs)[spec["output_name"]]
        outputs = torch.cat([out[col] for col in spec["target_columns"]], dim=1)
        results["models"][name] = {
            "layer_table": layer_table(model, name, branches),
            "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "inputs": {ours: inputs[eir_name] for ours, eir_name in branches},
            "outputs": outputs,
        }
        print(f"{name}: {sum(p.numel() for p in model.parameters()):,} parameters, outputs {tuple(outputs.shape)}")
    torch.save(results, out_path)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
