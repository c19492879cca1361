"""Training engines: fit any ``torch.nn.Module`` with the study's protocol, resume from checkpoints.

* :mod:`chromexp.training.train` — one model at a time (early stopping, checkpoints, bf16 option).
* :mod:`chromexp.training.stacked` — many small models of one architecture trained at once.
* :mod:`chromexp.training.losses` — losses beyond MSE and cross-entropy: Mittal's hybrid
  cross-celltype loss (a loss object :func:`chromexp.training.train.fit` accepts).

May import the base modules only: no network, dataset or recipe (the recipes in
:mod:`chromexp.experiments` bring them together; ``tests/test_architecture.py`` holds the rule).
Checkpoint fingerprints name the model by its class name only, never a module path. This package
imports nothing itself: import the module you need.
"""
