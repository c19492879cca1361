"""Neural network models of chromexp (one module per model family).

* :mod:`chromexp.models.promoter_cnn` — the promoter CNN (chromexpress ``covnet``, docs/methods.md, "Promoter CNN").
* :mod:`chromexp.models.chromoformer` — Chromoformer reg / clf / diff (docs/methods.md, "Chromoformer"), exact to the
  reference ``chromoformer==1.1.3`` with a TSS-only fast path.
* :mod:`chromexp.models.chromoformer_inputs` — CellDataset → Chromoformer inputs, and the
  reference's batch layout.

Networks only: training and evaluation recipes live in :mod:`chromexp.experiments` (an import
test keeps this package free of training, metrics, results, dataset and reader code).

Import the model modules directly (``from chromexp.models.promoter_cnn import PromoterCNN``);
this package deliberately imports nothing so that each model module stays optional.
"""
