"""chromexp: predicting gene expression from histone marks (Murphy et al. 2024, reproduced and extended).

The library behind the notebooks in ``notebooks/``, in layers (``ls lib/chromexp`` shows them):

* the base at the top — ``constants``, ``paths``, ``config``, ``utils``, ``provenance``,
  ``results``, ``metrics``, ``runs``: imported by every layer, importing no layer;
* :mod:`chromexp.data` (readers, dataset store), :mod:`chromexp.simulate` (semi-synthetic data),
  :mod:`chromexp.models` (networks only), :mod:`chromexp.training` (training engines),
  :mod:`chromexp.baselines` (peaks, ShallowChrome, naive), :mod:`chromexp.experiments` (the
  recipes of notebooks 10–50), :mod:`chromexp.analyses` (perturbation, attribution, enrichment,
  LDSC, summaries), :mod:`chromexp.plots` (figures) and :mod:`chromexp.runner` (the ``chromexp``
  command, notebook execution).

Which layer may import which is one table in ``tests/test_architecture.py`` (README.md, "Layout").
Importing the package has no side effects; import the module you need.
"""

__version__ = "0.1.0"
