"""Neural network models of chromexp (one module per model family).

* :mod:`chromexp.models.promoter_cnn` — the promoter CNN (chromexpress ``covnet``, DESIGN.md §4.2).
* :mod:`chromexp.models.chromoformer` — Chromoformer reg / clf / diff (DESIGN.md §4.3), exact to the
  reference ``chromoformer==1.1.3`` with a TSS-only fast path.
* :mod:`chromexp.models.chromoformer_inputs` — CellDataset → Chromoformer inputs, and the
  reference's batch layout.
* :mod:`chromexp.models.chromoformer_training` — training and tidy tables for notebooks 40 and 50.

Import the model modules directly (``from chromexp.models.promoter_cnn import PromoterCNN``);
this package deliberately imports nothing so that each model module stays optional.
"""
