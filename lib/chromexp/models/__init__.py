"""Neural network models of chromexp (one module per model family).

* :mod:`chromexp.models.promoter_cnn` — the promoter CNN (chromexpress ``covnet``, DESIGN.md §4.2).

Import the model modules directly (``from chromexp.models.promoter_cnn import PromoterCNN``);
this package deliberately imports nothing so that each model module stays optional.
"""
