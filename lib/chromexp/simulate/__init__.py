"""Simulators of the semi-synthetic data: real genes and expression, simulated reads and genetics.

* :mod:`chromexp.simulate.roadmap` — the embedded mini-Roadmap (reads, pcHi-C, planted enhancers).
* :mod:`chromexp.simulate.eqtl` — fine-mapped eQTLs planted on the simulated enhancers.
* :mod:`chromexp.simulate.gwas` — reference panel and GWAS with planted heritability (notebook 80).
* :mod:`chromexp.simulate.calibration` — the simulator against real E003 read depth.
* :mod:`chromexp.simulate.common` — seeded generators and byte-stable writers they share.

May import the base modules and :mod:`chromexp.data`; nothing of the models, training,
experiments, analyses, plots or runner (``tests/test_architecture.py``). This package imports
nothing itself: import the module you need.
"""
