"""Non-neural baselines: peak calling and ShallowChrome, and the naive correlation baselines.

* :mod:`chromexp.baselines.peaks` — MACS2 peak calling and peak-max features.
* :mod:`chromexp.baselines.shallowchrome` — ShallowChrome (peak-max features + logistic regression).
* :mod:`chromexp.baselines.naive` — naive correlations of raw promoter signal with expression (Fig. 1A).

May import the base modules and :mod:`chromexp.data`; no network, training engine or recipe
(``tests/test_architecture.py``). This package imports nothing itself: import the module you need.
"""
