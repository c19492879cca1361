"""The package's one-way structure, read from the source with ``ast`` (no imports executed).

One table, :data:`MAY_IMPORT`, says which wing of ``lib/chromexp`` may import which (README.md,
"Layout"); a module always may import its own wing. Every import counts, at module level or inside
a function, absolute or relative. A second test finds any import cycle between modules. The last
tests run both checks on a probe package in ``tmp_path`` to show that they can fail.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib" / "chromexp"

#: The shared base: the modules at the top of the package.
BASE = frozenset({"constants", "paths", "config", "cells", "utils", "provenance", "results", "metrics", "runs"})

#: wing -> the wings it may import (besides itself). ``entry`` is ``chromexp/__init__.py`` and
#: ``chromexp/__main__.py`` (``python -m chromexp`` runs the command line).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "models": frozenset(),
    "training": frozenset({"base"}),
    "data": frozenset({"base"}),
    "simulate": frozenset({"base", "data"}),
    "baselines": frozenset({"base", "data"}),
    "experiments": frozenset({"base", "data", "baselines", "models", "training"}),
    "analyses": frozenset({"base", "data", "models"}),
    "plots": frozenset({"base", "analyses"}),
    "runner": frozenset({"base", "data"}),
    "entry": frozenset({"runner"}),
}


def module_name(path: Path, root: Path) -> str:
    """Dotted name of the module at ``path`` below ``root`` (``pkg/__init__.py`` -> ``pkg``)."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(dotted: str, root: Path) -> bool:
    p = root.joinpath(*dotted.split("."))
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def imports_of(path: Path, root: Path = LIB.parent) -> frozenset[str]:
    """Dotted names of the ``chromexp`` modules that ``path`` imports, relative imports resolved.

    ``from pkg import name`` counts as an import of ``pkg.name`` when that is a module (a file or a
    package below ``root``), else of ``pkg``. Imports inside functions count too.
    """
    return _imports(path, root, path.read_text())


@functools.cache
def _imports(path: Path, root: Path, text: str) -> frozenset[str]:
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = set()
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                found.add(sub if _is_module(sub, root) else module)
    return frozenset(m for m in found if m == "chromexp" or m.startswith("chromexp."))


def wing_of(module: str) -> str:
    """The wing of a ``chromexp`` module: ``base``, ``entry`` or its subpackage; ``?`` for none."""
    parts = module.split(".")
    if parts[0] != "chromexp":
        raise ValueError(f"{module} is not a chromexp module")
    if len(parts) == 1 or parts[1] in {"__init__", "__main__"}:
        return "entry"
    if parts[1] in BASE:
        return "base"
    return parts[1] if parts[1] in MAY_IMPORT else "?"


def modules(root: Path = LIB.parent) -> dict[str, Path]:
    """Every module of the ``chromexp`` package below ``root``, by dotted name.

    ``resources/`` is left out: it holds vendored data and scripts that run in other interpreters
    (the EIR oracle's ``resources/claster/eir_reference.py`` runs in the isolated ``.venv-eir``),
    never imported by the package.
    """
    found = sorted((root / "chromexp").rglob("*.py"))
    return {module_name(p, root): p for p in found if "resources" not in p.relative_to(root / "chromexp").parts[:1]}


def rule_violations(root: Path = LIB.parent) -> list[str]:
    """One line per module outside the wings and per import that :data:`MAY_IMPORT` forbids."""
    bad = []
    for name, path in modules(root).items():
        wing = wing_of(name)
        if wing == "?":
            bad.append(f"{name} is in no wing of MAY_IMPORT (move it into one, or add the wing to the table)")
            continue
        for target in sorted(imports_of(path, root)):
            other = wing_of(target)
            if other != wing and other not in MAY_IMPORT[wing]:
                bad.append(f"{name} ({wing}) imports {target} ({other})")
    return bad


def import_cycles(root: Path = LIB.parent) -> list[list[str]]:
    """The import cycles between modules: strongly connected components with more than one module
    (or a module importing itself), each as a sorted list of dotted names."""
    mods = modules(root)
    graph = {n: sorted(t for t in imports_of(p, root) if t in mods and t != n) for n, p in mods.items()}
    selfloops = [[n] for n, p in mods.items() if n in imports_of(p, root) and not p.name == "__init__.py"]
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return sorted(cycles + selfloops)


# ----------------------------------------------------------------------------------------------
# the package itself
# ----------------------------------------------------------------------------------------------
def test_every_module_sits_in_a_wing_and_imports_only_what_the_table_allows():
    assert rule_violations() == []


def test_no_import_cycle_between_modules():
    assert import_cycles() == []


def test_the_table_covers_every_wing_folder():
    folders = {p.name for p in LIB.iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(MAY_IMPORT) - {"base", "entry"}
    assert {p.stem for p in LIB.glob("*.py")} == BASE | {"__init__", "__main__"}


@pytest.mark.parametrize("wing", sorted(set(MAY_IMPORT) - {"base", "entry"}))
def test_each_wing_states_its_contract(wing):
    """Each wing's ``__init__`` has a docstring that says what it may import, and imports nothing."""
    init = LIB / wing / "__init__.py"
    tree = ast.parse(init.read_text())
    doc = ast.get_docstring(tree) or ""
    assert "import" in doc, f"{wing}/__init__.py must state what the wing may import"
    assert not [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))], f"{wing}/__init__.py imports"


# ----------------------------------------------------------------------------------------------
# the checks can fail
# ----------------------------------------------------------------------------------------------
def _probe(tmp_path: Path, files: dict[str, str]) -> Path:
    """A ``chromexp`` package below ``tmp_path`` with empty wing packages and the given modules."""
    pkg = tmp_path / "chromexp"
    for wing in set(MAY_IMPORT) - {"base", "entry"}:
        (pkg / wing).mkdir(parents=True, exist_ok=True)
        (pkg / wing / "__init__.py").write_text('"""probe"""\n')
    (pkg / "__init__.py").write_text('"""probe"""\n')
    for name in BASE:
        (pkg / f"{name}.py").write_text("")
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    return tmp_path


def test_import_parser_resolves_relative_and_absolute_imports(tmp_path):
    root = _probe(
        tmp_path,
        {
            "models/probe.py": (
                "from .. import config\nfrom ..metrics import pearson_r\nimport chromexp.data.io\n"
                "from . import net\nfrom ..training import train\nfrom chromexp.data import plink\n"
                "def f():\n    from ..plots.style import theme\n"
            ),
            "models/net.py": "",
            "data/io.py": "",
            "data/plink.py": "",
            "training/train.py": "",
            "plots/style.py": "",
        },
    )
    assert imports_of(root / "chromexp" / "models" / "probe.py", root) == {
        "chromexp.config",
        "chromexp.metrics",
        "chromexp.data.io",
        "chromexp.models.net",
        "chromexp.training.train",
        "chromexp.data.plink",
        "chromexp.plots.style",
    }
    # the package's own modules are read too: a relative import the parser missed would hide a rule
    assert "chromexp.data.plink" in imports_of(LIB / "analyses" / "ldsc.py")
    assert "chromexp.training.train" in imports_of(LIB / "experiments" / "perturbation.py")


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        # the four knots issue 22 untied, each re-tied in a probe
        (
            "config.py",
            "def check():\n    from .baselines.peaks import FEATURE_ENGINES\n",
            "chromexp.config (base) imports",
        ),
        ("analyses/summary.py", "from ..plots.panels import data_label\n", "chromexp.analyses.summary (analyses)"),
        ("simulate/gwas.py", "from ..analyses import ldsc as L\n", "chromexp.simulate.gwas (simulate)"),
        # the old single rules, now rows of the table
        ("models/net.py", "from ..training import train\n", "chromexp.models.net (models)"),
        ("plots/panels.py", "from ..models import net\n", "chromexp.plots.panels (plots)"),
        ("runner/cli.py", "from ..experiments import recipe\n", "chromexp.runner.cli (runner)"),
        # a flat module outside the wings
        ("newthing.py", "", "chromexp.newthing is in no wing"),
    ],
)
def test_rules_fail_on_a_forbidden_import(tmp_path, rel, text, expected):
    others = {
        "baselines/peaks.py": "",
        "plots/panels.py": "",
        "analyses/ldsc.py": "",
        "training/train.py": "",
        "models/net.py": "",
        "experiments/recipe.py": "",
    }
    root = _probe(tmp_path, {**others, rel: text})
    bad = rule_violations(root)
    assert len(bad) == 1 and bad[0].startswith(expected), bad


def test_cycle_finder_fails_on_a_cycle(tmp_path):
    # the old simulate <-> simulate_eqtl circle, through a function-level import
    root = _probe(
        tmp_path,
        {
            "simulate/roadmap.py": "from . import eqtl\n",
            "simulate/eqtl.py": "def _rng():\n    from .roadmap import _rng\n",
            "simulate/common.py": "",
            "data/a.py": "from . import b\n",
            "data/b.py": "from .c import x\n",
            "data/c.py": "from chromexp.data import a\n",
        },
    )
    assert import_cycles(root) == [
        ["chromexp.data.a", "chromexp.data.b", "chromexp.data.c"],
        ["chromexp.simulate.eqtl", "chromexp.simulate.roadmap"],
    ]
    (root / "chromexp" / "simulate" / "eqtl.py").write_text("from .common import rng\n")
    assert import_cycles(root) == [["chromexp.data.a", "chromexp.data.b", "chromexp.data.c"]]
