"""Figures: painters that take tidy tables and return ``matplotlib`` figures that state their data.

* :mod:`chromexp.plots.style` — mark colours, the project theme, :func:`~chromexp.plots.style.save_figure`.
* :mod:`chromexp.plots.panels` — the per-run panels of notebooks 00–80.
* :mod:`chromexp.plots.eqtl` — the eQTL enrichment panels of notebook 70.
* :mod:`chromexp.plots.cross_celltype` — both axes, the hybrid-loss trade-off and per-gene
  cross-celltype correlations (notebook 55).
* :mod:`chromexp.plots.manuscript` — the manuscript figures 1–8 (notebook 90).

May import the base modules and :mod:`chromexp.analyses` (statistics they draw); no model,
training, dataset or recipe code (``tests/test_architecture.py``). Caption wording for the data
shown is :func:`chromexp.provenance.data_label`. This package imports nothing itself: import the
module you need.
"""
