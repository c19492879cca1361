"""Every notebook runs end to end under papermill with params/smoke.yaml (STYLE.md: notebooks are tested).

One batch, exactly as a user runs it (`chromexp batch -f params/smoke.yaml --jobs 2`), with data,
results and figures redirected to a temporary folder.
"""

from __future__ import annotations

import nbformat
import pytest

from chromexp import cli, notebooks


@pytest.mark.notebook
def test_all_notebooks_run_on_the_smoke_preset(tmp_path, capsys):
    dirs = {k: tmp_path / k for k in ("data", "results", "figures")}
    args = ["batch", "-f", "params/smoke.yaml", "--jobs", "2", "--run-name", "smoke"]
    for key, path in dirs.items():
        args += ["-p", f"paths.{key}_dir", str(path)]
    code = cli.main(args)
    out = capsys.readouterr().out
    assert code == 0, out

    executed = sorted(dirs["results"].rglob("*.ipynb"))
    expected = sum(2 if nb.per_cell_type else 1 for nb in notebooks.discover())
    assert len(executed) == expected, (executed, out)
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors, f"{path.name} has error outputs"
        text = " ".join(c.source for c in nb.cells) + " ".join(
            str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
            for c in nb.cells
            for o in c.get("outputs", [])
        )
        assert "semi-synthetic" in text.lower(), f"{path.name} never says its results are semi-synthetic"
