"""The package's one-way structure, read from the source with ``ast`` (no imports executed).

``models/`` holds networks only: no module there may import the training engine, the metrics,
the results tables, the dataset or the readers. ``plots`` draws tables and imports no model or
training code. Experiments (``chromexp.experiments``) sit on top of both.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "chromexp"

FORBIDDEN_IN_MODELS = {"train", "train_stacked", "metrics", "results", "dataset", "io", "experiments"}
FORBIDDEN_IN_PLOTS = {"models", "train", "train_stacked", "experiments"}


def chromexp_imports(path: Path, root: Path = LIB.parent) -> set[str]:
    """First component after ``chromexp`` of every module ``path`` imports (relative imports resolved)."""
    package = path.relative_to(root).with_suffix("").parts[:-1]  # e.g. ("chromexp", "models")
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name.split(".") for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                module = base + (node.module.split(".") if node.module else [])
                names = [module + [alias.name] for alias in node.names] if not node.module else [module]
            else:
                module = (node.module or "").split(".")
                names = [module + [alias.name] for alias in node.names] if module == ["chromexp"] else [module]
        else:
            continue
        for parts in names:
            if parts and parts[0] == "chromexp" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_import_parser_resolves_relative_imports(tmp_path):
    """The parser must see ``from .. import train`` and ``from ..metrics import x`` (else the rules cannot fail)."""
    probe = tmp_path / "chromexp" / "models" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(
        "from .. import train\nfrom ..metrics import pearson_r\nimport chromexp.io\nfrom . import chromoformer\n"
    )
    assert chromexp_imports(probe, root=tmp_path) == {"train", "metrics", "io", "models"}
    assert "train" not in chromexp_imports(LIB / "models" / "promoter_cnn.py")


@pytest.mark.parametrize("path", sorted((LIB / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_import_no_training_data_or_results_code(path):
    bad = chromexp_imports(path) & FORBIDDEN_IN_MODELS
    assert not bad, f"{path.name} imports chromexp.{sorted(bad)}; models/ must hold networks only"


def test_plots_import_no_model_or_training_code():
    bad = chromexp_imports(LIB / "plots.py") & FORBIDDEN_IN_PLOTS
    assert not bad, f"plots.py imports chromexp.{sorted(bad)}"


def test_experiments_are_not_imported_by_lower_layers():
    for path in LIB.glob("*.py"):
        if path.name in {"cli.py", "__main__.py"}:
            continue
        assert "experiments" not in chromexp_imports(path), f"{path.name} imports chromexp.experiments"
