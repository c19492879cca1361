"""Shared figure helpers: captions carry the data's provenance; figures are saved atomically."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from chromexp import provenance  # noqa: E402
from chromexp.constants import MARKS, REAL, SEMI_SYNTHETIC  # noqa: E402
from chromexp.plots import style  # noqa: E402


def test_data_label_names_the_provenance():
    assert "SEMI-SYNTHETIC" in provenance.data_label(SEMI_SYNTHETIC)
    assert "real" in provenance.data_label(REAL) and "SYNTHETIC" not in provenance.data_label(REAL)
    with pytest.raises(ValueError, match="provenance"):
        provenance.data_label("simulated-ish")


def test_every_mark_has_a_colour():
    assert set(style.MARK_COLORS) == set(MARKS)
    assert len(set(style.MARK_COLORS.values())) == len(MARKS)


def test_save_figure_writes_svg_and_png_and_no_temporary_files(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    written = style.save_figure(fig, "panel", tmp_path / "figs")
    plt.close(fig)
    assert [p.name for p in written] == ["panel.svg", "panel.png"]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["panel.png", "panel.svg"]
    assert written[1].read_bytes()[:4] == b"\x89PNG"
    assert "<svg" in written[0].read_text()
