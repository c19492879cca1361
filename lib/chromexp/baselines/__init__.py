"""Non-neural baselines: peak calling and ShallowChrome, the naive correlation baselines, ExPecto's linear model.

* :mod:`chromexp.baselines.peaks` — MACS2 peak calling and peak-max features.
* :mod:`chromexp.baselines.shallowchrome` — ShallowChrome (peak-max features + logistic regression).
* :mod:`chromexp.baselines.naive` — naive correlations of raw promoter signal with expression (Fig. 1A).
* :mod:`chromexp.baselines.expecto` — ExPecto's exponential-decay spatial bases and a ridge (Mittal 2025's
  linear model), for any bin geometry.

May import the base modules and :mod:`chromexp.data`; no network, training engine or recipe
(``tests/test_architecture.py``). This package imports nothing itself: import the module you need.
"""
