"""Neural network models of chromexp (one module per model family).

* :mod:`chromexp.models.promoter_cnn` — the promoter CNN (chromexpress ``covnet``, docs/methods.md, "Promoter CNN").
* :mod:`chromexp.models.chromoformer` — Chromoformer (docs/methods.md, "Chromoformer"). The regressor and the classifier compute the
  same function as the reference ``chromoformer==1.1.3`` (tested against it, with a TSS-only fast
  path). Chromoformer-diff has no public reference implementation: it follows the paper's
  description (trained on cell-type pairs by :mod:`chromexp.experiments.chromoformer_diff`).
  The Embedding-only ablation (paper Fig. 3b) is :class:`~chromexp.models.chromoformer.ChromoformerEmbeddingOnly`.
* :mod:`chromexp.models.chromoformer_inputs` — CellDataset → Chromoformer inputs, the reference's
  batch layout, and the window study's central crops of the promoter window.
* Chromoformer's baselines (docs/methods.md, "Chromoformer's baselines"), each with the published
  architecture and parameter count, a classification and a regression reading:
  :mod:`~chromexp.models.deepchrome` (DeepChrome, Lua Torch: pinned by count and shape arithmetic),
  :mod:`~chromexp.models.attentivechrome` (AttentiveChrome), :mod:`~chromexp.models.hmcrnn`
  (HM-CRNN's histone branch) and :mod:`~chromexp.models.deepdiff` (DeepDiff's seven variants); the
  last three load the official PyTorch code's state dicts strictly and equal it (tests/test_baseline_models.py).
* :mod:`chromexp.models.binned_cnn` — a small CNN over coarse binned counts around the TSS
  (notebook 15, the real E116 benchmark at 10 kb; our design).
* :mod:`chromexp.models.claster` — CLASTER (docs/methods.md, "CLASTER"): EIR 0.1.43's dilated
  residual CNN branches, fusion MLP and linear head, with the published geometry (tested layer by
  layer against EIR itself, and by transplanting EIR's weights) and the adapted geometry.

Networks only: training and evaluation recipes live in :mod:`chromexp.experiments`. A module here
may import other modules of this package and nothing else of chromexp — no training, metrics,
results, dataset or reader code (``tests/test_architecture.py``).

Import the model modules directly (``from chromexp.models.promoter_cnn import PromoterCNN``);
this package deliberately imports nothing so that each model module stays optional.
"""
