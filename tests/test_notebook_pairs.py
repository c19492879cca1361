"""Every notebooks/NN_name.py has an up-to-date, output-free .ipynb pair (rebuilt by `make sync`)."""

from __future__ import annotations

import shutil

import pytest

from chromexp import paths
from chromexp.runner import notebooks

SOURCES = sorted(paths.notebooks_dir().glob("[0-9][0-9]_*.py"))


def test_there_are_notebooks():
    assert SOURCES, "notebooks/ has no NN_name.py notebooks"


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_pair_is_in_order(py):
    assert notebooks.check_pair(py) == []


@pytest.mark.parametrize("py", SOURCES, ids=[p.stem for p in SOURCES])
def test_standard_parameters(py):
    nb = notebooks.Notebook(py)
    notebooks.check_parameter_names(nb)
    assert nb.parameters[0] in ("CELL_TYPE", "RUN_NAME")


def test_checker_fails_when_py_is_edited_and_not_synced(tmp_path):
    src = SOURCES[0]
    py = tmp_path / src.name
    shutil.copy(src, py)
    shutil.copy(src.with_suffix(".ipynb"), py.with_suffix(".ipynb"))
    assert notebooks.check_pair(py) == []
    py.write_text(py.read_text() + "\n# %%\nprint('a new cell')\n")
    problems = notebooks.check_pair(py)
    assert problems and "out of date" in problems[0]


def test_checker_fails_on_outputs_missing_pair_and_bad_parameter_comment(tmp_path):
    import nbformat

    src = SOURCES[0]
    py = tmp_path / src.name
    shutil.copy(src, py)
    assert "missing" in notebooks.check_pair(py)[0]
    shutil.copy(src.with_suffix(".ipynb"), py.with_suffix(".ipynb"))
    nb = nbformat.read(py.with_suffix(".ipynb"), as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="hello")]
    code.execution_count = 1
    nbformat.write(nb, py.with_suffix(".ipynb"))
    assert any("carries outputs" in p for p in notebooks.check_pair(py))

    text = src.read_text().replace("PARAMS = {}  #", "PARAMS = {}  # x = y,", 1)
    py.write_text(text)
    assert any("cannot parse" in p for p in notebooks.check_pair(py))
