"""Shared figure helpers: captions carry the data's provenance; figures are saved atomically."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from chromexp import plots  # noqa: E402
from chromexp.constants import MARKS, REAL, SEMI_SYNTHETIC  # noqa: E402


def test_data_label_names_the_provenance():
    assert "SEMI-SYNTHETIC" in plots.data_label(SEMI_SYNTHETIC)
    assert "real" in plots.data_label(REAL) and "SYNTHETIC" not in plots.data_label(REAL)
    with pytest.raises(ValueError, match="provenance"):
        plots.data_label("simulated-ish")


def test_every_mark_has_a_colour():
    assert set(plots.MARK_COLORS) == set(MARKS)
    assert len(set(plots.MARK_COLORS.values())) == len(MARKS)


def test_save_figure_writes_svg_and_png_and_no_temporary_files(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    written = plots.save_figure(fig, "panel", tmp_path / "figs")
    plt.close(fig)
    assert [p.name for p in written] == ["panel.svg", "panel.png"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["panel.png", "panel.svg"]
    assert written[1].read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in written[0].read_text()
