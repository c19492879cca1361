"""Neural network models of chromexp (one module per model family).

* :mod:`chromexp.models.promoter_cnn` — the promoter CNN (chromexpress ``covnet``, DESIGN.md §4.2).
* :mod:`chromexp.models.chromoformer` — Chromoformer. The regressor and the classifier compute the
  same function as the reference ``chromoformer==1.1.3`` (tested against it, with a TSS-only fast
  path). Chromoformer-diff has no public reference implementation and no training path yet: it is
  an untrained architecture following the paper's description, not a reproduction.
* :mod:`chromexp.models.chromoformer_inputs` — CellDataset → Chromoformer inputs, and the
  reference's batch layout.
* :mod:`chromexp.models.chromoformer_training` — training and tidy tables for notebooks 40 and 50.

Import the model modules directly (``from chromexp.models.promoter_cnn import PromoterCNN``);
this package deliberately imports nothing so that each model module stays optional.
"""
