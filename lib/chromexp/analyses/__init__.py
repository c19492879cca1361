"""Analyses of trained models and result tables: perturbation, attribution, enrichment, LDSC, summaries.

* :mod:`chromexp.analyses.perturb` — in silico perturbation of Chromoformer models (Fig. 6).
* :mod:`chromexp.analyses.attribution` — input attributions at three resolutions (Fig. 8).
* :mod:`chromexp.analyses.enrichment` — eQTL enrichment of model-prioritised loci (Fig. 7A).
* :mod:`chromexp.analyses.ldsc` — stratified LD score regression with the real ldsc (Fig. 7B).
* :mod:`chromexp.analyses.gains` — gains between models from the tidy test metrics (Figs. 4, 5).
* :mod:`chromexp.analyses.summary` — cross-cell-type summaries behind the manuscript figures.

May import the base modules, :mod:`chromexp.data` and :mod:`chromexp.models`; never the plots
(statistics are computed here and drawn in :mod:`chromexp.plots`), the training engine or the
recipes (``tests/test_architecture.py``). This package imports nothing itself: import the module
you need.
"""
