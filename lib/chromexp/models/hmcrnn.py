"""HM-CRNN (Kang et al.): the histone-mark branch of "Deeply learning the regulatory latent space".

The published branch (``pptnz/deeply-learning-regulatory-latent-space`` ``model.py`` @17f4d4e,
class ``HM_CRNN``; docs/methods.md, "Chromoformer's baselines"), for 7 marks x 40 bins:

    Conv2d(1 -> 20, kernel 7 x 7, no padding) over the (marks x bins) image -> BatchNorm2d -> ReLU
    -> (the 7 marks collapse to 1 row) -> MaxPool1d(3, stride 3, padding 1) over the 34 positions
    -> 12 steps -> BiLSTM(20 -> 40 per direction) -> attention ``w2(tanh(W1 h))`` (80 -> 16 -> 1)
    -> 80-dimensional context vector.

22,193 parameters. The full model of the paper adds DNA-methylation and transcription-factor
branches, a multi-attention block and an FC 32 -> 1 -> sigmoid head; Chromoformer compared with
the histone branch only. Our heads on the context vector, ``Linear(80 -> 32) -> ReLU -> Linear(32 -> 1)``,
follow the full model's ``fc1``/``fc2`` (**reconstruction**: the full model's head reads the
multi-attention output, not the branch's context vector); ``task="clf"`` returns the logit (the
reference applies the sigmoid and trains with a focal loss, gamma 2: :func:`focal_loss`),
``task="reg"`` the prediction of log2(RPKM + 1).

Module and parameter names of the branch are the reference's (``conv.0``, ``conv.1``, ``rnn``,
``attention.W1``, ``attention.w2``), so its ``state_dict`` loads strictly into :attr:`HMCRNN.branch`;
tests/test_baseline_models.py transplants it and compares the context vectors and attention.

The convolution's kernel covers the marks: the number of marks must be 7 (the kernel height) for
the marks to collapse to one row, as in the reference; bins can be any number >= 7 (the window
study uses w / 100). The reference starts the LSTM from explicit zero states, which is torch's
default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NUM_KERNEL = 20
KERNEL = 7
HM_VECTOR_SIZE = 40
ATTENTION_SIZE = 16
HEAD_HIDDEN = 32
#: Published parameter count of the histone branch (7 marks x 40 bins).
PUBLISHED_PARAMETERS = 22_193


def pooled_length(n_bins: int) -> int:
    """Steps of the LSTM: ``floor((n_bins − 7 + 1 + 2 − 3) / 3) + 1`` (40 bins -> 34 -> 12)."""
    conv = int(n_bins) - KERNEL + 1
    if conv < 1:
        raise ValueError(f"HM-CRNN needs at least {KERNEL} bins; got {n_bins}.")
    return (conv + 2 - 3) // 3 + 1


def focal_loss(logit: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, reduction: str = "sum") -> torch.Tensor:
    """The reference's focal loss, from logits (numerically stable form of the same function).

    ``−[y log(p) (1 − p)^γ + (1 − y) log(1 − p) p^γ]`` with ``p = sigmoid(logit)``, summed over the
    batch as the reference (``reduction="sum"``; ``"mean"`` divides by the batch size).
    """
    logit, y = logit.float().reshape(-1), target.float().reshape(-1)
    p = torch.sigmoid(logit)
    loss = -(y * F.logsigmoid(logit) * (1 - p).pow(gamma) + (1 - y) * F.logsigmoid(-logit) * p.pow(gamma))
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    if reduction == "none":
        return loss
    raise ValueError(f"Unknown reduction {reduction!r}.")


class Attention(nn.Module):
    """``alpha = softmax_t(w2(tanh(W1 h_t)))``, context ``sum_t alpha_t h_t`` (reference ``Attention``)."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.W1 = nn.Linear(hidden_size, ATTENTION_SIZE)
        self.w2 = nn.Linear(ATTENTION_SIZE, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (batch, T, hidden) -> context (batch, hidden) and weights (batch, T)."""
        alpha = torch.softmax(self.w2(torch.tanh(self.W1(x))).squeeze(2), dim=1)
        return torch.bmm(alpha.unsqueeze(1), x).squeeze(1), alpha


class HMCRNNBranch(nn.Module):
    """The histone branch (reference ``HM_CRNN``): (batch, 1, 7, bins) -> (batch, 80) and attention."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, NUM_KERNEL, kernel_size=(KERNEL, KERNEL), stride=1, padding=0),
            nn.BatchNorm2d(NUM_KERNEL),
            nn.ReLU(),
        )
        self.pool = nn.MaxPool1d(kernel_size=3, stride=3, padding=1)
        self.rnn = nn.LSTM(input_size=NUM_KERNEL, hidden_size=HM_VECTOR_SIZE, num_layers=1, bidirectional=True)
        self.attention = Attention(2 * HM_VECTOR_SIZE)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (batch, 1, 7, bins) -> context (batch, 80), attention (batch, steps)."""
        out = self.pool(self.conv(x).squeeze(2))  # (batch, 20, steps)
        out, _ = self.rnn(out.permute(2, 0, 1))  # (steps, batch, 80)
        return self.attention(out.permute(1, 0, 2))


class HMCRNN(nn.Module):
    """HM-CRNN's histone branch with a classification (logit) or regression head.

    Parameters
    ----------
    n_marks : int
        Must be 7 (the convolution's kernel height collapses the marks into one row).
    n_bins : int
        Bins of the window (40 in the paper; any number >= 7).
    task : {"clf", "reg"}

    Inputs ``x`` of shape (batch, 7, n_bins); output (batch,).
    """

    def __init__(self, n_marks: int = 7, n_bins: int = 40, task: str = "clf"):
        super().__init__()
        if task not in ("clf", "reg"):
            raise ValueError(f"task must be 'clf' or 'reg', got {task!r}.")
        if int(n_marks) != KERNEL:
            raise ValueError(
                f"HM-CRNN's 7 x 7 convolution collapses exactly 7 marks into one row; got n_marks={n_marks}."
            )
        self.n_marks, self.n_bins, self.task = int(n_marks), int(n_bins), task
        self.n_steps = pooled_length(self.n_bins)
        self.branch = HMCRNNBranch()
        self.fc1 = nn.Linear(2 * HM_VECTOR_SIZE, HEAD_HIDDEN)
        self.fc2 = nn.Linear(HEAD_HIDDEN, 1)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Logit (clf) or prediction (reg), shape (batch,) (and the step attention (batch, steps))."""
        if x.ndim != 3 or x.shape[1:] != (self.n_marks, self.n_bins):
            raise ValueError(f"HM-CRNN expects (batch, {self.n_marks}, {self.n_bins}) inputs, got {tuple(x.shape)}.")
        context, alpha = self.branch(x.unsqueeze(1))
        out = self.fc2(torch.relu(self.fc1(context))).squeeze(-1)
        return (out, alpha) if return_attention else out


__all__ = ["HMCRNN", "HMCRNNBranch", "focal_loss", "pooled_length", "PUBLISHED_PARAMETERS"]
