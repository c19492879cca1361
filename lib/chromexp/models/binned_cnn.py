"""A small CNN over coarse binned counts around the TSS (docs/methods.md, "Real E116 benchmark at 10 kb").

Input: ``ln(count + 1)`` of each mark in the TSS bin ± ``k`` bins of a pre-binned table (10-kb bins
for the real E116 counts), strand-oriented so that bin 0 is the most upstream and bin ``k`` holds
the TSS (``chromexp.data.binned.TSSWindows.log1p``), standardised per mark on the training genes.
Shape ``(batch, marks, 2 k + 1)``. Output: predicted log2(RPKM + 1), shape ``(batch,)``.

Architecture *[our choice]* — the study's promoter CNN needs 60 bins of 100 bp and has 2.6 M
parameters; with at most 11 coarse bins a model of a few thousand parameters is enough::

    Conv1d(marks → C, kernel 3, 'same') → ReLU → Conv1d(C → C, kernel 3, 'same') → ReLU
    Flatten (C × n_bins) → Dropout(p) → Linear(hidden) → ReLU → Linear(1)

No batch normalisation (no buffers: the models of one run can be trained stacked with
``chromexp.training.stacked.fit_many``).
"""

from __future__ import annotations

import torch
from torch import nn

#: Defaults (``model.binned_cnn`` in params/defaults.yaml repeats them).
CHANNELS = 16
HIDDEN = 32
KERNEL = 3
DROPOUT = 0.1


class BinnedCNN(nn.Module):
    """Two 'same' convolutions and a two-layer head over ``2 k + 1`` coarse bins.

    Parameters
    ----------
    n_marks : int
        Input channels (one per mark).
    n_bins : int
        Bins per gene (``2 k + 1``).
    channels, hidden, kernel_size, dropout :
        Convolution width, hidden units of the head, odd kernel size, dropout before the head.
    """

    def __init__(
        self,
        n_marks: int,
        n_bins: int,
        channels: int = CHANNELS,
        hidden: int = HIDDEN,
        kernel_size: int = KERNEL,
        dropout: float = DROPOUT,
    ):
        super().__init__()
        for name, value in (("n_marks", n_marks), ("n_bins", n_bins), ("channels", channels), ("hidden", hidden)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1; got {value}.")
        if int(kernel_size) < 1 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number; got {kernel_size}.")
        if not 0 <= float(dropout) < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        self.n_marks, self.n_bins = int(n_marks), int(n_bins)
        pad = int(kernel_size) // 2
        self.conv = nn.Sequential(
            nn.Conv1d(self.n_marks, int(channels), int(kernel_size), padding=pad),
            nn.ReLU(),
            nn.Conv1d(int(channels), int(channels), int(kernel_size), padding=pad),
            nn.ReLU(),
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(float(dropout)),
            nn.Linear(int(channels) * self.n_bins, int(hidden)),
            nn.ReLU(),
            nn.Linear(int(hidden), 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict expression.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, n_marks, n_bins)

        Returns
        -------
        torch.Tensor, shape (batch,)
        """
        if x.ndim != 3 or x.shape[1] != self.n_marks or x.shape[2] != self.n_bins:
            raise ValueError(
                f"BinnedCNN expects input of shape (batch, {self.n_marks}, {self.n_bins}); got {tuple(x.shape)}."
            )
        return self.head(self.conv(x)).squeeze(-1)


def n_parameters(
    n_marks: int, n_bins: int, channels: int = CHANNELS, hidden: int = HIDDEN, kernel_size: int = KERNEL
) -> int:
    """Closed-form parameter count of :class:`BinnedCNN` (checked against the module in the tests)."""
    conv1 = n_marks * channels * kernel_size + channels
    conv2 = channels * channels * kernel_size + channels
    dense = channels * n_bins * hidden + hidden
    return conv1 + conv2 + dense + hidden + 1
