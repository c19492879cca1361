"""A cell type is defined by its parameter file alone (issue 27): the registry, its errors, its views."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from chromexp import cells, config, constants

REPO = Path(__file__).resolve().parents[1]

#: The study's eleven epigenomes and their facts (docs/methods.md): the oracle the files must match.
STUDY = {
    "E003": ("ESC", "H1"),
    "E004": ("ESC-derived", "ME"),
    "E005": ("ESC-derived", "TB"),
    "E006": ("ESC-derived", "MSC"),
    "E007": ("ESC-derived", "NPC"),
    "E016": ("ESC", "H1"),
    "E066": ("primary", "LI11"),
    "E087": ("primary", "PA"),
    "E114": ("cancer line", "LG"),
    "E116": ("primary", "GM"),
    "E118": ("cancer line", "LI11"),
}

NEW_CELL = """\
cell:
  name: Fetal brain (user's own)
  state: primary
  pchic_tissue: null
  eqtl_tissues: [Brain_Cortex]
  expression:
    source: table
    column: null
    table: {table}
"""


@pytest.fixture
def cells_dir(tmp_path, monkeypatch):
    folder = tmp_path / "my_cells"
    folder.mkdir()
    monkeypatch.setenv(cells.ENV_CELLS_DIR, str(folder))
    return folder


def test_the_eleven_study_cell_types_are_eleven_files_with_the_papers_facts():
    reg = cells.registry()
    assert {k: (c.state, c.pchic_tissue) for k, c in reg.items()} == STUDY
    assert sorted(p.stem for p in (REPO / "params" / "cells").glob("*.yaml")) == sorted(STUDY)
    for cid, cell in reg.items():
        assert cell.expression.source == "roadmap" and cell.expression.column == cid
    assert reg["E007"].eqtl_tissues == ("Brain_Cerebellum", "Brain_Hippocampus")
    assert reg["E003"].eqtl_tissues == ()


def test_no_module_lists_the_cell_types():
    """Nothing in the package's code hard-codes the list of EIDs (the files are the registry)."""
    offenders = []
    for path in (REPO / "lib" / "chromexp").rglob("*.py"):
        text = path.read_text()
        # three or more study EIDs on one line or in one literal = a list of cell types
        for line_no, line in enumerate(text.splitlines(), 1):
            if len(set(re.findall(r"\bE0(?:03|04|05|06|07|16|66|87)\b|\bE11[468]\b", line))) >= 3:
                offenders.append(f"{path.relative_to(REPO)}:{line_no}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_constants_are_views_of_the_registry_and_see_a_new_file(cells_dir):
    assert dict(constants.CELL_TYPES)["E116"] == "GM12878 lymphoblastoid"
    assert constants.CELL_STATES["E114"] == "cancer line" and constants.PCHIC_TISSUE["E118"] == "LI11"
    assert "E017" not in constants.CELL_TYPES
    (cells_dir / "E017.yaml").write_text(NEW_CELL.format(table="/nowhere/expr.tsv"))
    assert constants.CELL_TYPES["E017"] == "Fetal brain (user's own)"
    assert constants.PCHIC_TISSUE["E017"] is None
    assert "E017" in list(constants.CELL_TYPES) and len(constants.CELL_STATES) == 12
    with pytest.raises(KeyError):
        constants.CELL_TYPES["E999"]


def test_a_new_cell_type_is_its_file_alone_and_merges_into_the_parameters(cells_dir, tmp_path):
    (cells_dir / "E017.yaml").write_text(NEW_CELL.format(table=tmp_path / "expr.tsv"))
    params = config.load_params("e017")  # ids are matched case-insensitively
    assert params["cell_type"] == "E017"
    assert params["cell"] == {
        "name": "Fetal brain (user's own)",
        "state": "primary",
        "pchic_tissue": None,
        "eqtl_tissues": ["Brain_Cortex"],
        "expression": {"source": "table", "column": None, "table": str(tmp_path / "expr.tsv")},
    }
    # and a run can list it among its cell types
    params = config.load_params(None, overrides={"cell_types": ["E003", "e017"]})
    assert params["cell_types"] == ["E003", "E017"]


def test_normalise_and_did_you_mean():
    assert config.check_cell_type("e003") == "E003"
    with pytest.raises(ValueError, match=r"Unknown cell type 'E0003'\. Did you mean 'E003'"):
        cells.normalise("E0003")
    with pytest.raises(ValueError, match="params/cells/<ID>.yaml"):
        cells.get("E999")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["cell"].pop("state"), r"incomplete: missing 'cell\.state'"),
        (lambda d: d["cell"].pop("expression"), r"missing 'cell\.expression'"),
        (lambda d: d["cell"].pop("pchic_tissue"), r"missing 'cell\.pchic_tissue'"),
        (lambda d: d["cell"].update(eqtl_tissues="Liver"), r"'cell\.eqtl_tissues' must be a list"),
        (lambda d: d["cell"].update(colour="red"), r"'cell\.colour' is not a cell-type key"),
        (lambda d: d["cell"]["expression"].update(source="geo"), r"'cell\.expression\.source' must be one of"),
        (lambda d: d["cell"]["expression"].update(table=None), r"'cell\.expression\.table' must be the path"),
        (lambda d: d.update(train={"lr": 1}), r"may only hold the 'cell:' block"),
        (lambda d: d["cell"].update(name=""), r"'cell\.name' must be a non-empty string"),
    ],
)
def test_an_incomplete_or_malformed_file_is_an_error_naming_the_file_and_the_key(cells_dir, edit, message):
    data = yaml.safe_load(NEW_CELL.format(table="/x/expr.tsv"))
    edit(data)
    (cells_dir / "E017.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message) as err:
        cells.registry()
    assert "E017.yaml" in str(err.value)


def test_a_roadmap_source_needs_its_column(cells_dir):
    data = yaml.safe_load(NEW_CELL.format(table="/x"))
    data["cell"]["expression"] = {"source": "roadmap", "column": None, "table": None}
    (cells_dir / "E017.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=r"E017\.yaml: 'cell\.expression\.column' must name the RPKM matrix column"):
        config.load_params("E017")


def test_one_id_defined_twice_is_an_error_naming_both_files(cells_dir):
    (cells_dir / "e003.yaml").write_text(NEW_CELL.format(table="/x"))
    with pytest.raises(ValueError, match=r"defined twice: .*E003\.yaml and .*e003\.yaml"):
        cells.ids()
