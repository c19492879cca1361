"""Experiments: the recipes that train and evaluate models per (mark set, fold) and write tidy tables.

``chromexp.models`` holds the networks only; this layer loads a dataset's inputs, trains one
model per (mark set, fold) with :mod:`chromexp.training.train`, and turns each fold's test predictions into
the tidy metrics and predictions tables of ``docs/data-formats.md``.

* :mod:`chromexp.experiments.evaluation` — the one "predict each fold's test genes → metrics +
  predictions tables" helper (:func:`~chromexp.experiments.evaluation.evaluate_fold`), the table
  builders, and the results check notebooks 30/40/50 run before saving
  (:func:`~chromexp.experiments.evaluation.check_fold_results`).
* :mod:`chromexp.experiments.promoter_cnn` — notebook 30: one promoter CNN per (mark, fold).
* :mod:`chromexp.experiments.chromoformer` — notebooks 40 and 50: one Chromoformer per
  (mark set, fold), gains over the promoter CNN and of mark pairs.
* :mod:`chromexp.experiments.shallowchrome` — notebook 20: peaks → features → both protocols.
* :mod:`chromexp.experiments.data_prep` — notebook 10: the real reference data of a cell type, the Answer.
* :mod:`chromexp.experiments.real_e116` — notebook 15: the real E116 benchmark at 10 kb (ridge /
  logistic bar, ExPecto-style model, small CNN), the per-fold mark ranking, the simulator check.
* :mod:`chromexp.experiments.perturbation` — notebook 60: the fold models the perturbation loads.
* :mod:`chromexp.experiments.hierarchical` — notebook 55: every cell type on shared genes, ExPecto
  ridges and Mittal's hierarchical CNNs (hybrid loss, leave one cell type out).
* :mod:`chromexp.experiments.cross_celltype` — notebook 55: every model family of a run on the
  cross-gene and cross-celltype axes beside their baselines, the trade-off, the Answer.

The top layer of the recipes: may import the base modules, :mod:`chromexp.data`,
:mod:`chromexp.baselines`, :mod:`chromexp.models` and :mod:`chromexp.training`; nothing imports
it but the notebooks (``tests/test_architecture.py``). This package imports nothing itself.
"""
