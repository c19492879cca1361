"""Every notebook runs end to end under papermill with params/smoke.yaml (every notebook is tested).

One batch, exactly as a user runs it (`chromexp batch -f params/smoke.yaml --jobs 2`), with data,
results and figures redirected to a temporary folder.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import nbformat
import pytest

from chromexp.runner import cli, notebooks


def _output_text(nb) -> str:
    """What the executed notebook *printed* (streams, displayed tables): never its source."""
    return " ".join(
        str(o.get("text", ""))
        + str(o.get("data", {}).get("text/plain", ""))
        + str(o.get("data", {}).get("text/html", ""))
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def _svg_text(path) -> str:
    """The text drawn in an SVG figure (titles, captions, labels); needs svg.fonttype none."""
    root = ET.parse(path).getroot()
    return " ".join(t for el in root.iter() if el.tag.endswith("text") for t in el.itertext())


@pytest.mark.notebook
def test_all_notebooks_run_on_the_smoke_preset(tmp_path, capsys, monkeypatch):
    dirs = {k: tmp_path / k for k in ("data", "results", "figures")}
    # keep figure text as SVG <text> (not glyph paths) so the titles can be read back below;
    # notebook kernels inherit the environment
    rc = tmp_path / "mplrc"
    rc.mkdir()
    (rc / "matplotlibrc").write_text("svg.fonttype: none\n")
    monkeypatch.setenv("MATPLOTLIBRC", str(rc))
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
        # the executed outputs, not the sources (every source contains the word)
        assert "semi-synthetic" in _output_text(nb).lower(), (
            f"{path.name} never prints that its data are semi-synthetic"
        )

    # every figure's drawn text says which data it shows: SEMI-SYNTHETIC, or real for the vendored real E003
    figures = sorted({*dirs["results"].rglob("*.svg"), *dirs["figures"].rglob("*.svg")})
    assert len(figures) >= 10, figures
    for path in figures:
        text = _svg_text(path)
        assert text.strip(), f"{path.name}: no text read back (svg.fonttype not none?)"
        if path.stem.endswith("_real"):
            assert "real data" in text and "SEMI-SYNTHETIC" not in text, f"{path.name}: real data not labelled real"
        else:
            assert "SEMI-SYNTHETIC" in text, f"{path.name}: figure does not say SEMI-SYNTHETIC"
