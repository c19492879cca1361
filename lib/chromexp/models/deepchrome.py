"""DeepChrome (Singh et al. 2016): a one-layer CNN over binned histone marks around the TSS.

The published network (``QData/DeepChrome`` ``deepChrome-TorchCode/2_model.lua`` and
``3_loss.lua`` @4f2367f, Lua Torch; docs/methods.md, "Chromoformer's baselines"):

    TemporalConvolution(n_marks -> 50, kernel 10, no padding) -> ReLU -> TemporalMaxPooling(5)
    -> flatten (pooled bins x 50) -> Dropout(0.5) -> Linear(625) -> ReLU -> Linear(125) -> ReLU
    -> Linear(2) -> LogSoftMax

with 5 marks x 100 bins of 100 bp (TSS ± 5 kb): the convolution leaves 100 − 10 + 1 = 91
positions, pooling by 5 (stride 5) leaves floor((91 − 5) / 5) + 1 = 18, so the first linear layer
reads 18 · 50 = 900 features and the network has 644,177 parameters. The reference is Lua Torch,
which cannot run here: the architecture is pinned by that count and this shape arithmetic
(tests/test_baseline_models.py).

Differences (behaviour, not function class):

* The classifier returns the two logits; the reference appends ``LogSoftMax`` and trains with
  ``ClassNLLCriterion``, which is the same loss as cross-entropy on the logits.
* A regression head (Chromoformer's Fig. 2d adaptation: "heads changed to one scalar") replaces the
  last layer by ``Linear(125 -> 1)``.
* The flattening is channel-major (PyTorch ``Conv1d`` layout, feature ``c · n_pooled + t``); the
  Lua ``View`` after ``TemporalConvolution`` is time-major (``t · 50 + c``). The two differ by a fixed
  permutation of the first linear layer's inputs: the same function class, weights permuted.
* The Lua code sizes the first linear layer as ``ceil((bins − 10) / 5) · 50``, which differs from
  the real pooled length for some widths (e.g. 101 bins); we size it from the real arithmetic
  (:func:`pooled_length`), which agrees with the Lua formula for every window of the window study
  (20, 40, 100, 200, 400 bins).
"""

from __future__ import annotations

import torch
from torch import nn

#: The published hyper-parameters (``nstates = {50, 625, 125}``, ``filtsize = 10``, ``poolsize = 5``).
N_FILTERS = 50
KERNEL = 10
POOL = 5
HIDDEN = (625, 125)
DROPOUT = 0.5

#: Published parameter count: 5 marks x 100 bins, 2 outputs.
PUBLISHED_PARAMETERS = 644_177


def pooled_length(n_bins: int, kernel: int = KERNEL, pool: int = POOL) -> int:
    """Positions left after the valid convolution and the non-overlapping max pooling.

    ``floor((n_bins − kernel + 1 − pool) / pool) + 1``; 100 bins -> 91 -> 18.
    """
    conv = int(n_bins) - int(kernel) + 1
    if conv < pool:
        raise ValueError(
            f"DeepChrome needs at least {kernel + pool - 1} bins (kernel {kernel}, pooling {pool}); got {n_bins}."
        )
    return (conv - pool) // pool + 1


class DeepChrome(nn.Module):
    """DeepChrome's CNN with a classification (2 logits) or regression (1 output) head.

    Parameters
    ----------
    n_marks : int
        Input histone marks (5 in the paper).
    n_bins : int
        Bins of the input window (100 in the paper: TSS ± 5 kb at 100 bp).
    task : {"clf", "reg"}
        ``clf``: 2 logits (inactive, active); ``reg``: one scalar, log2(RPKM + 1).

    Inputs ``x`` of shape (batch, n_marks, n_bins); output (batch, 2) or (batch,).
    """

    def __init__(self, n_marks: int = 5, n_bins: int = 100, task: str = "clf"):
        super().__init__()
        if task not in ("clf", "reg"):
            raise ValueError(f"task must be 'clf' or 'reg', got {task!r}.")
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be >= 1, got {n_marks}.")
        self.n_marks, self.n_bins, self.task = int(n_marks), int(n_bins), task
        self.n_pooled = pooled_length(self.n_bins)
        self.conv = nn.Conv1d(self.n_marks, N_FILTERS, KERNEL)
        self.pool = nn.MaxPool1d(POOL)
        self.dropout = nn.Dropout(DROPOUT)
        self.fc1 = nn.Linear(self.n_pooled * N_FILTERS, HIDDEN[0])
        self.fc2 = nn.Linear(HIDDEN[0], HIDDEN[1])
        self.out = nn.Linear(HIDDEN[1], 2 if task == "clf" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (batch, 2) for ``clf``, predictions (batch,) for ``reg``."""
        if x.ndim != 3 or x.shape[1:] != (self.n_marks, self.n_bins):
            raise ValueError(f"DeepChrome expects (batch, {self.n_marks}, {self.n_bins}) inputs, got {tuple(x.shape)}.")
        h = self.pool(torch.relu(self.conv(x))).flatten(1)
        h = torch.relu(self.fc2(torch.relu(self.fc1(self.dropout(h)))))
        out = self.out(h)
        return out if self.task == "clf" else out.squeeze(-1)


__all__ = ["DeepChrome", "pooled_length", "PUBLISHED_PARAMETERS"]
