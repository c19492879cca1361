"""The promoter CNN of the study (chromexpress ``covnet``; DeepChrome-like), docs/methods.md, "Promoter CNN".

Input: binned histone-mark signal around the TSS, shape ``(batch, marks, 60)`` — TSS ± 3 kb at
100 bp, strand-oriented so that bin 0 is the most upstream bin and the TSS lies between bins 29
and 30 (``CellDataset.promoter(half_window=3000, resolution=100)``). Output: predicted
log2(RPKM + 1), shape ``(batch,)``.

Architecture (exactly the reference Keras model)::

    Conv1d(175, k=8, 'same') → ReLU → MaxPool(4) → Dropout(0.1)     60 → 15 bins
    Conv1d(350, k=4, 'same') → ReLU → MaxPool(2) → Dropout(0.1)     15 →  7 bins
    Conv1d(700, k=4, 'same') → ReLU → MaxPool(2) → Dropout(0.1)      7 →  3 bins
    Flatten (700 × 3 = 2100) → Dropout(0.4) → Linear(625) → ReLU → Linear(125) → ReLU → Linear(1)

2,619,126 parameters for one mark (each extra mark adds 8 × 175 = 1,400 first-layer weights).
Keras ``padding='same'`` with an even kernel pads ``(k - 1) // 2`` zeros on the left and the rest
on the right (3 / 4 for k = 8; 1 / 2 for k = 4); torch's ``padding='same'`` does the same (tested).
Max pooling floors like Keras' default ``padding='valid'`` (15 → 7 → 3).

The paper text mentions batch normalisation in each block, but the code that produced the
published numbers has none; ``batch_norm=False`` is therefore the default and ``True`` inserts
``BatchNorm1d`` between each convolution and its ReLU.

Intended difference: weights start from torch's default initialisation (Kaiming-uniform with
a = sqrt(5) for convolutions and linear layers, uniform biases), not Keras' Glorot-uniform
weights with zero biases. Same architecture and function class; the starting point, and so the
exact trained weights, differ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: The reference architecture's numbers (docs/methods.md, "Promoter CNN").
N_BINS = 60
CONV_CHANNELS: tuple[int, int, int] = (175, 350, 700)
CONV_KERNELS: tuple[int, int, int] = (8, 4, 4)
POOL_SIZES: tuple[int, int, int] = (4, 2, 2)
DENSE_UNITS: tuple[int, int] = (625, 125)
CONV_DROPOUT = 0.1
DENSE_DROPOUT = 0.4
#: Parameter count of the one-mark model as published (chromexpress ``covnet``).
N_PARAMETERS_ONE_MARK = 2_619_126


def same_padding(kernel_size: int) -> tuple[int, int]:
    """(left, right) zero padding of TF/Keras ``padding='same'`` for stride 1: ``(k - 1) // 2`` left, rest right."""
    total = int(kernel_size) - 1
    return total // 2, total - total // 2


def flattened_bins(n_bins: int = N_BINS, pools: Sequence[int] = POOL_SIZES) -> int:
    """Number of bins left after the three max-pool layers (floor division, as Keras does)."""
    for p in pools:
        n_bins //= p
    return n_bins


class PromoterCNN(nn.Module):
    """Promoter CNN: binned marks at TSS ± 3 kb → predicted log2 expression.

    Parameters
    ----------
    n_marks : int
        Number of histone marks (input channels); 1 for the paper's single-mark models.
    n_bins : int
        Bins per mark (60 = TSS ± 3 kb at 100 bp). Must survive the pooling (≥ 16).
    batch_norm : bool
        Insert ``BatchNorm1d`` after each convolution (the paper text; not the published code).
    conv_dropout, dense_dropout : float
        Dropout rates after each conv block and before the first dense layer (0.1 and 0.4).
    n_outputs : int
        Output units: 1 (regression, or one logit for a binary classifier) or the number of classes.

    Shapes
    ------
    ``forward(x)``: ``x`` float tensor ``(batch, n_marks, n_bins)`` → ``(batch,)`` when
    ``n_outputs == 1``, else ``(batch, n_outputs)``.
    """

    def __init__(
        self,
        n_marks: int = 1,
        n_bins: int = N_BINS,
        batch_norm: bool = False,
        conv_dropout: float = CONV_DROPOUT,
        dense_dropout: float = DENSE_DROPOUT,
        n_outputs: int = 1,
    ):
        super().__init__()
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be at least 1; got {n_marks}.")
        if flattened_bins(int(n_bins)) < 1:
            raise ValueError(f"n_bins={n_bins} is too short for pooling by {POOL_SIZES} (need at least 16 bins).")
        if int(n_outputs) < 1:
            raise ValueError(f"n_outputs must be at least 1; got {n_outputs}.")
        self.n_marks, self.n_bins, self.n_outputs = int(n_marks), int(n_bins), int(n_outputs)
        self.batch_norm = bool(batch_norm)
        blocks = []
        in_ch = self.n_marks
        for out_ch, k, pool in zip(CONV_CHANNELS, CONV_KERNELS, POOL_SIZES, strict=True):
            # explicit Keras-style 'same' padding; torch's padding="same" gives the same result
            # but copies the input on every call with an even kernel (and warns about it)
            layers: list[nn.Module] = [nn.ConstantPad1d(same_padding(k), 0.0), nn.Conv1d(in_ch, out_ch, kernel_size=k)]
            if self.batch_norm:
                layers.append(nn.BatchNorm1d(out_ch))
            layers += [nn.ReLU(), nn.MaxPool1d(pool), nn.Dropout(conv_dropout)]
            blocks.append(nn.Sequential(*layers))
            in_ch = out_ch
        self.conv = nn.Sequential(*blocks)
        n_flat = CONV_CHANNELS[-1] * flattened_bins(self.n_bins)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dense_dropout),
            nn.Linear(n_flat, DENSE_UNITS[0]),
            nn.ReLU(),
            nn.Linear(DENSE_UNITS[0], DENSE_UNITS[1]),
            nn.ReLU(),
            nn.Linear(DENSE_UNITS[1], self.n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted log2(RPKM + 1) (or logits) of ``x`` shaped (batch, marks, bins)."""
        if x.ndim != 3 or x.shape[1] != self.n_marks or x.shape[2] != self.n_bins:
            raise ValueError(
                f"PromoterCNN expects input of shape (batch, {self.n_marks} marks, {self.n_bins} bins); got {tuple(x.shape)}."
            )
        # torch flattens (700 channels, 3 bins) channel-major; Keras flattens (3 bins, 700 channels)
        # bin-major. That only permutes the first dense layer's inputs: the same model family.
        out = self.head(self.conv(x))
        return out.squeeze(-1) if self.n_outputs == 1 else out


def build(params: dict, n_marks: int, n_outputs: int = 1) -> PromoterCNN:
    """Build a :class:`PromoterCNN` from the merged parameters (``params["model"]["promoter_cnn"]``)."""
    cfg = params["model"]["promoter_cnn"]
    half = int(cfg.get("half_window", 3000))
    res = int(cfg.get("resolution", 100))
    if (2 * half) % res:
        raise ValueError(f"model.promoter_cnn: 2 × half_window ({2 * half}) must be a multiple of resolution ({res}).")
    return PromoterCNN(n_marks=n_marks, n_bins=2 * half // res, batch_norm=bool(cfg["batch_norm"]), n_outputs=n_outputs)
