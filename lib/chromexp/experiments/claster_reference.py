"""The CLASTER architecture oracle: EIR 0.1.43 builds the published models in an isolated environment.

CLASTER was trained with eir-dl 0.1.43 (PyPI), which needs Python 3.11, numpy < 2 and a torch of its
own; it is never installed into chromexp's environment. :func:`ensure_eir_env` makes
``.venv-eir/`` (gitignored; ``$CHROMEXP_EIR_ENV`` elsewhere) with the project's isolated-environment
builder (:func:`chromexp.utils.ensure_venv`, the same one as ldsc's); :func:`run_reference` runs
``resources/claster/eir_reference.py`` there, which builds EIR's own modules from the published
configuration (``resources/claster/published_configurations.yaml``, the values of
RasmussenLab/CLASTER ``configurations/*`` at 1ff92a2) and writes their layer tables, float64
weights, seeded inputs and outputs; :func:`compare` transplants those weights into
:class:`chromexp.models.claster.ClasterNet` and returns the largest absolute output difference.

What is installed (:func:`install_steps`). eir-dl 0.1.43 declares ``torch>=2.2.2,<3`` itself;
its exact torch 2.2.x pin comes in only through ``torchtext 0.17`` and ``torchvision 0.17``. The
model modules import neither torchtext nor any compiled torchvision operator (only the pure-Python
``torchvision.ops.StochasticDepth``), and torchvision 0.17 does not import beside a newer torch.
So the environment installs torch and torchvision as a matching pair inside eir-dl's own torch
range — by default torch 2.14.1 with torchvision 0.29.1, the releases pip finds in this
machine's local wheelhouse (no download there; ≈ 5.6 GB installed, as PyPI's Linux torch is a CUDA
build; everything runs on the CPU) — then eir-dl and aislib without their declared dependencies,
and the few packages the model modules import, each within eir-dl 0.1.43's declared range.
``CHROMEXP_EIR_TORCH=2.2.2`` installs eir-dl's exact pins instead (torch 2.2.2 + torchvision
0.17.2 from PyPI, ≈ 2.6 GB of downloads). The CPU build of torch 2.13.0 that chromexp itself
uses cannot serve: PyPI's torchvision for it is built against the CUDA torch and does not import
beside the CPU build (``operator torchvision::nms does not exist``).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import yaml

from .. import paths, utils
from ..models import claster as C
from ..utils import get_logger

log = get_logger("chromexp.experiments.claster_reference")

EIR_VERSION = "0.1.43"
ENV_VAR = "CHROMEXP_EIR_ENV"
TORCH_VAR = "CHROMEXP_EIR_TORCH"
DEFAULT_TORCH = "2.14.1"
#: torch → the torchvision release built for it.
TORCHVISION_FOR = {"2.14.1": "0.29.1", "2.2.2": "0.17.2"}
#: eir-dl 0.1.43's declared ranges for the packages its model modules import.
EIR_RANGES = (
    "numpy>=1.26.4,<2.0.0",
    "sympy>=1.12,<2.0",
    "termcolor>=2.4.0,<3.0.0",
    "tqdm>=4.66.2,<5.0.0",
    "transformers>=4.39.3,<5.0.0",
    "tokenizers>=0.15.0,<0.16.0",
    "pyyaml",
)


class EirError(RuntimeError):
    """The EIR environment could not be made or the reference script failed; the message says why."""


def install_steps(torch_version: str | None = None) -> list[list[str]]:
    """The ``pip install`` steps of the oracle environment (see the module docstring).

    ``torch_version``: one of :data:`TORCHVISION_FOR` (default ``$CHROMEXP_EIR_TORCH``, else
    :data:`DEFAULT_TORCH`).
    """
    tv = torch_version or os.environ.get(TORCH_VAR) or DEFAULT_TORCH
    if tv not in TORCHVISION_FOR:
        raise ValueError(f"torch {tv!r} for the EIR environment: choose one of {sorted(TORCHVISION_FOR)}.")
    return [
        [f"torch=={tv}", f"torchvision=={TORCHVISION_FOR[tv]}", *EIR_RANGES],
        ["--no-deps", f"eir-dl=={EIR_VERSION}", "aislib==0.1.14a0"],
    ]


def default_env_dir() -> Path:
    """``$CHROMEXP_EIR_ENV`` or ``<repo>/.venv-eir`` (gitignored by ``.venv-*/``)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else paths.repo_root() / ".venv-eir"


def script_path() -> Path:
    """The reference script run inside the environment."""
    return paths.resources_dir() / "claster" / "eir_reference.py"


def configurations_path() -> Path:
    """The vendored published configuration (values of CLASTER's ``configurations/*`` at 1ff92a2)."""
    return paths.resources_dir() / "claster" / "published_configurations.yaml"


def published_configurations() -> dict:
    """The vendored published configuration as a dict (``inputs``, ``fusion``, ``output``, ``models``)."""
    return yaml.safe_load(configurations_path().read_text())


def _stamp(steps: Sequence[Sequence[str]]) -> dict:
    return {"eir": EIR_VERSION, "steps": [list(s) for s in steps]}


def _verify(env_dir: Path) -> str:
    code = (
        "import torch, torchvision, eir, importlib.metadata as m; "
        "from eir.models.input.array.models_cnn import CNNModel; "
        "from eir.models.fusion.fusion_default import MLPResidualFusionModule; "
        "from eir.models.output.tabular.linear import LinearOutputModule; "
        "print(m.version('eir-dl'), torch.__version__)"
    )
    proc = subprocess.run(
        [str(utils.venv_python(env_dir)), "-c", code], capture_output=True, text=True, env=utils.clean_env()
    )
    if proc.returncode != 0 or not proc.stdout.startswith(EIR_VERSION):
        raise EirError(f"EIR's model modules do not import in {env_dir}:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return "eir-dl {} on torch {}".format(*proc.stdout.split())


def ensure_eir_env(env_dir: str | os.PathLike | None = None, torch_version: str | None = None) -> Path:
    """Return the isolated eir-dl 0.1.43 environment, creating and verifying it on first use.

    Parameters
    ----------
    env_dir : path, optional
        Default :func:`default_env_dir`.
    torch_version : str, optional
        A key of :data:`TORCHVISION_FOR`: ``2.14.1`` (default; ``$CHROMEXP_EIR_TORCH`` overrides) or
        ``2.2.2`` (eir-dl's exact pins).

    Raises
    ------
    EirError
        With what failed and how to fix it.
    """
    steps = install_steps(torch_version)
    env_dir = Path(env_dir).expanduser().resolve() if env_dir else default_env_dir().resolve()
    return utils.ensure_venv(
        env_dir,
        label="eir",
        install_steps=steps,
        stamp=_stamp(steps),
        verify=_verify,
        error=EirError,
        how_to_fix=(
            "it needs Python 3.11 (eir-dl 0.1.43 requires >=3.11,<3.12) with venv and access to PyPI (or a "
            "wheelhouse via PIP_FIND_LINKS) and ≈ 6 GB of disk; torch comes from pip's local wheel files where present. "
            f"Point ${ENV_VAR} at a writable folder, or ${TORCH_VAR}=2.2.2 for eir-dl's exact torch pin."
        ),
    )


def target_columns(cfg: Mapping | None = None) -> list[str]:
    """CLASTER's target column names ``-200_ctrl … 200_ctrl`` (``outputs_2_cond.yaml``)."""
    spec = (cfg or published_configurations())["output"]["target_con_columns"]
    return [f"{i}{spec['suffix']}" for i in range(int(spec["from"]), int(spec["to"]) + 1)]


#: Our branch name → EIR input name (CLASTER's ``input_name``).
EIR_INPUT_NAMES = {"landscape": "gene_expression", "structure": "contact_maps"}


def published_request(models: Sequence[str] | None = None) -> dict[str, dict]:
    """Request entries for the published models, from the vendored configuration only.

    ``models``: a subset of ``pure_conv, attention, microc_square, microc_rotated`` (default all).
    """
    cfg = published_configurations()
    names = list(models or cfg["models"])
    unknown = [m for m in names if m not in cfg["models"]]
    if unknown:
        raise ValueError(f"Unknown published CLASTER model(s) {unknown}; known: {list(cfg['models'])}.")
    out = {}
    for name in names:
        branches = []
        for i, key in enumerate(cfg["models"][name]):
            ours = "landscape" if i == 0 else "structure"
            inp = cfg["inputs"][key]
            branches.append({"name": ours, "eir_name": EIR_INPUT_NAMES[ours], "shape": list(inp["shape"]),
                             "model_init_config": dict(inp["model_init_config"])})  # fmt: skip
        out[name] = {"branches": branches, "fusion": dict(cfg["fusion"]["model_config"]),
                     "output_name": cfg["output"]["output_name"], "target_columns": target_columns(cfg)}  # fmt: skip
    return out


def model_request(model: C.ClasterNet) -> dict:
    """A request entry for one of our models (e.g. an adapted geometry): EIR builds the same configuration."""
    branches = []
    for name, branch in model.branches.items():
        branches.append({"name": name, "eir_name": EIR_INPUT_NAMES.get(name, name), "shape": list(branch.input_shape),
                         "model_init_config": branch.cfg.to_dict()})  # fmt: skip
    fusion = model.fusion.cfg
    return {
        "branches": branches,
        "fusion": {
            "layers": list(fusion.layers),
            "fc_task_dim": fusion.fc_task_dim,
            "rb_do": fusion.rb_do,
            "fc_do": fusion.fc_do,
            "stochastic_depth_p": fusion.stochastic_depth_p,
        },  # fmt: skip
        "output_name": "expression_output",
        "target_columns": [f"out_{i}" for i in range(model.n_outputs)],
    }


def run_reference(
    requests: Mapping[str, dict], out_path: str | os.PathLike, *, env_dir: str | os.PathLike | None = None,
    seed: int = 0, n_samples: int = 3,
) -> dict:  # fmt: skip
    """Run the reference script in the EIR environment for ``requests``; return what it saved.

    The result (``torch.load(weights_only=True)``) holds ``eir_version``, ``torch_version`` and per
    model ``layer_table`` (rows), ``state_dict`` (float64), ``inputs`` (by our branch name) and
    ``outputs`` (float64, ``(n_samples, n_targets)``, eval mode).
    """
    env = ensure_eir_env(env_dir)
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="eir-request-") as tmp:
        req = Path(tmp) / "request.json"
        req.write_text(json.dumps({"models": dict(requests), "seed": int(seed), "n_samples": int(n_samples)}))
        proc = subprocess.run(
            [str(utils.venv_python(env)), str(script_path()), str(req), str(out_path)],
            capture_output=True, text=True, env=utils.clean_env(OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2")),
        )  # fmt: skip
    if proc.returncode != 0:
        raise EirError(
            f"The EIR reference script failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    log.info("EIR reference: %s", proc.stdout.strip().replace("\n", "; "))
    return torch.load(out_path, map_location="cpu", weights_only=True)


def compare(model: C.ClasterNet, reference: Mapping, target_cols: Sequence[str] | None = None) -> float:
    """Transplant one reference model's weights into ``model`` (float64, eval) and return max |Δ output|.

    ``target_cols`` defaults to the published ``-200_ctrl … 200_ctrl`` when the model has 401
    outputs, else ``out_0 … out_{n−1}`` (:func:`model_request`).
    """
    cols = list(target_cols) if target_cols is not None else (
        target_columns() if model.n_outputs == C.PAPER_N_OUTPUTS else [f"out_{i}" for i in range(model.n_outputs)]
    )  # fmt: skip
    names = {n: EIR_INPUT_NAMES.get(n, n) for n in model.branch_names}
    output_name = next(k.split(".")[1] for k in reference["state_dict"] if k.startswith("output_modules."))
    state = C.transplant_eir_state(model, reference["state_dict"], names, output_name, cols)
    model = model.double().eval()
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        out = model(**{k: v.double() for k, v in reference["inputs"].items()})
    want = reference["outputs"]
    out = out.reshape(want.shape)
    return float((out - want).abs().max())


#: The models the oracle builds with EIR and the layer-table fixture lists: name → our builder.
ORACLE_MODELS = {
    "pure_conv": lambda: C.paper_model(),
    "attention": lambda: C.paper_model(attention=True),
    "microc_square": lambda: C.paper_model(structure="square"),
    "microc_rotated": lambda: C.paper_model(structure="rotated"),
    "adapted_gene": lambda: C.adapted_model(),
    "adapted_profile_virtual_4c": lambda: C.adapted_model(n_outputs=40, structure="virtual_4c"),
    "adapted_gene_square": lambda: C.adapted_model(structure="square"),
}
PUBLISHED = ("pure_conv", "attention", "microc_square", "microc_rotated")


def oracle_request(models: Sequence[str] | None = None) -> dict[str, dict]:
    """Requests for :data:`ORACLE_MODELS` (default all).

    The published models come from the vendored configuration only, the adapted ones from our
    configuration (:func:`model_request`).
    """
    names = list(models or ORACLE_MODELS)
    unknown = [m for m in names if m not in ORACLE_MODELS]
    if unknown:
        raise ValueError(f"Unknown oracle model(s) {unknown}; known: {list(ORACLE_MODELS)}.")
    out = published_request([m for m in names if m in PUBLISHED])
    out.update({m: model_request(ORACLE_MODELS[m]()) for m in names if m not in PUBLISHED})
    return {m: out[m] for m in names}


def layer_table_frame(rows: Sequence[Mapping]):
    """Layer-table rows as a DataFrame of strings in :data:`chromexp.models.claster.LAYER_TABLE_COLUMNS` order."""
    import pandas as pd

    frame = pd.DataFrame([{k: str(r[k]) for k in C.LAYER_TABLE_COLUMNS} for r in rows])
    return frame.reindex(columns=list(C.LAYER_TABLE_COLUMNS))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chromexp.experiments.claster_reference [--fixture PATH]``: run the oracle, print max |Δ|.

    With ``--fixture``, also write EIR's layer tables (all :data:`ORACLE_MODELS`) as the TSV the
    always-on test compares against (``tests/data/claster_layer_table.tsv``).
    """
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--fixture", help="write EIR's layer tables to this TSV")
    parser.add_argument("--models", nargs="*", default=None, help=f"subset of {list(ORACLE_MODELS)}")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="eir-oracle-") as tmp:
        ref = run_reference(oracle_request(args.models), Path(tmp) / "reference.pt")
    print(f"eir-dl {ref['eir_version']}, torch {ref['torch_version']} (reference); float64, eval mode")
    rows = []
    for name, r in ref["models"].items():
        delta = compare(ORACLE_MODELS[name](), r)
        counts = C.count_parameters(ORACLE_MODELS[name]())
        print(f"{name:28s} max |Δ| = {delta:.3g}   {counts['weights']:,} weights + {counts['swish']} Swish slopes")
        rows.extend(r["layer_table"])
    if args.fixture:
        from ..utils import atomic_path

        with atomic_path(args.fixture) as tmp_path:
            layer_table_frame(rows).to_csv(tmp_path, sep="\t", index=False)
        print(f"wrote {args.fixture} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
