"""AttentiveChrome (Singh et al. 2017): two levels of bidirectional LSTMs with attention.

The published network (``QData/AttentiveChrome`` ``v2PyTorch/models.py`` @ba0dda4, class
``att_chrome``; docs/methods.md, "Chromoformer's baselines"):

* **bin level**, one encoder per mark: a bidirectional LSTM (1 -> 32 per direction) over the
  mark's bins, then attention with a learned context vector (``bin_context_vector``, 64 x 1):
  ``alpha = softmax_t(h_t · c)``, representation ``sum_t alpha_t h_t`` (64);
* **mark level**: a bidirectional LSTM (64 -> 16 per direction) over the marks' representations
  (the marks are the sequence, in input order), attention with a context vector (32 x 1);
* ``fdiff1_1``: Linear(32 -> 1), one logit (the reference trains it with
  ``binary_cross_entropy_with_logits``).

55,681 parameters for 5 marks, 73,729 for 7. Module and parameter names are the reference's, so
its ``state_dict`` loads with ``strict=True`` (tests/test_baseline_models.py transplants the
weights and compares the outputs). The encoders are reused by DeepDiff
(:mod:`chromexp.models.deepdiff`), which shares this code in the reference too.

Differences (behaviour, not function):

* The reference builds the LSTMs with ``dropout=0.5``, which torch ignores for one layer (it warns);
  we omit the argument. The reference's ``batch_product`` loop over genes is one matrix product here.
* The training script initialises every parameter from U(−0.1, 0.1) after construction; the
  constructor here does the same (``init_range``; ``None`` keeps torch's defaults).
* ``task="reg"`` reads the same scalar as a prediction of log2(RPKM + 1) (Chromoformer's Fig. 2d
  adaptation); ``task="clf"`` returns it as the logit of "active".
"""

from __future__ import annotations

import torch
from torch import nn

#: The reference's defaults (``train.py`` @ba0dda4: ``bin_rnn_size`` 32, bidirectional, one layer).
BIN_RNN_SIZE = 32
#: Published parameter counts (5 marks; 7 marks).
PUBLISHED_PARAMETERS = {5: 55_681, 7: 73_729}


class RecAttention(nn.Module):
    """Attention over a sequence with one learned context vector (reference ``rec_attention``)."""

    def __init__(self, size: int):
        super().__init__()
        self.bin_context_vector = nn.Parameter(torch.empty(size, 1).uniform_(-0.1, 0.1))

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``h`` (batch, T, size) -> representation (batch, 1, size) and weights (batch, T)."""
        alpha = torch.softmax((h @ self.bin_context_vector).squeeze(2), dim=1)
        return torch.bmm(alpha.unsqueeze(1), h), alpha


class RecurrentEncoder(nn.Module):
    """Bidirectional LSTM over a sequence + :class:`RecAttention` (reference ``recurrent_encoder``).

    Parameters
    ----------
    input_size : int
        Features per step (1 for a mark's bins; 64 at the mark level).
    hidden_size : int
        LSTM units per direction (32 at the bin level, 16 at the mark level).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.rnn = nn.LSTM(input_size, hidden_size, num_layers=1, bidirectional=True)
        self.bin_attention = RecAttention(2 * hidden_size)
        self.output_size = 2 * hidden_size

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (T, batch, input_size), sequence first -> (batch, 1, 2·hidden) and weights (batch, T)."""
        out, _ = self.rnn(x)
        return self.bin_attention(out.permute(1, 0, 2))


def encode_bins(encoders: nn.ModuleList, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run mark ``i`` of ``x`` through ``encoders[i]``; the bin level of AttentiveChrome and DeepDiff.

    Parameters
    ----------
    encoders : nn.ModuleList of RecurrentEncoder
        One per input track (``len(encoders) == x.shape[1]``).
    x : torch.Tensor, shape (batch, n_tracks, n_bins)

    Returns
    -------
    level1 : torch.Tensor, shape (n_tracks, batch, 64)
        The tracks' representations, track-first (the mark-level LSTM's sequence axis).
    alpha : torch.Tensor, shape (batch, n_tracks * n_bins)
        Bin attention weights, track-major (as the reference concatenates them).
    """
    reps, alphas = [], []
    for i, encoder in enumerate(encoders):
        rep, alpha = encoder(x[:, i].t().unsqueeze(2))
        reps.append(rep)
        alphas.append(alpha)
    return torch.cat(reps, dim=1).permute(1, 0, 2), torch.cat(alphas, dim=1)


def bin_encoders(n_tracks: int, bin_rnn_size: int = BIN_RNN_SIZE) -> nn.ModuleList:
    """``n_tracks`` bin-level encoders (BiLSTM(1 -> bin_rnn_size) + attention)."""
    return nn.ModuleList([RecurrentEncoder(1, bin_rnn_size) for _ in range(n_tracks)])


def mark_encoder(bin_rnn_size: int = BIN_RNN_SIZE) -> RecurrentEncoder:
    """The mark-level encoder: BiLSTM(2·bin_rnn_size -> bin_rnn_size // 2) + attention."""
    return RecurrentEncoder(2 * bin_rnn_size, bin_rnn_size // 2)


def uniform_init_(module: nn.Module, init_range: float | None) -> None:
    """Every parameter from U(−init_range, init_range), as the reference training scripts do."""
    if init_range is None:
        return
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-float(init_range), float(init_range))


class AttentiveChrome(nn.Module):
    """AttentiveChrome (reference ``att_chrome``) with a classification or regression reading.

    Parameters
    ----------
    n_marks : int
        Input marks (5 in the paper, 7 in Chromoformer's comparison).
    task : {"clf", "reg"}
        ``clf``: the output is the logit of "active"; ``reg``: log2(RPKM + 1).
    bin_rnn_size : int
        LSTM units per direction at the bin level (reference default 32).
    init_range : float or None
        Initialise every parameter from U(−init_range, init_range) (reference training script: 0.1).

    Inputs ``x`` of shape (batch, n_marks, n_bins) (any number of bins); output shape (batch,).
    """

    def __init__(self, n_marks: int = 5, task: str = "clf", bin_rnn_size: int = BIN_RNN_SIZE, init_range=0.1):
        super().__init__()
        if task not in ("clf", "reg"):
            raise ValueError(f"task must be 'clf' or 'reg', got {task!r}.")
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be >= 1, got {n_marks}.")
        self.n_marks, self.task = int(n_marks), task
        self.rnn_hms = bin_encoders(self.n_marks, bin_rnn_size)
        self.hm_level_rnn_1 = mark_encoder(bin_rnn_size)
        self.fdiff1_1 = nn.Linear(self.hm_level_rnn_1.output_size, 1)
        uniform_init_(self, init_range)

    def forward(self, x: torch.Tensor, return_attention: bool = False):
        """Logit (clf) or prediction (reg), shape (batch,); with ``return_attention`` also (mark, bin) weights.

        Returns
        -------
        torch.Tensor, shape (batch,)
            Or a tuple (output, mark_alpha (batch, n_marks), bin_alpha (batch, n_marks * n_bins)).
        """
        if x.ndim != 3 or x.shape[1] != self.n_marks:
            raise ValueError(f"AttentiveChrome expects (batch, {self.n_marks}, bins) inputs, got {tuple(x.shape)}.")
        level1, bin_alpha = encode_bins(self.rnn_hms, x)
        rep, mark_alpha = self.hm_level_rnn_1(level1)
        out = self.fdiff1_1(rep.squeeze(1)).squeeze(-1)
        return (out, mark_alpha, bin_alpha) if return_attention else out


__all__ = [
    "AttentiveChrome",
    "RecAttention",
    "RecurrentEncoder",
    "encode_bins",
    "bin_encoders",
    "mark_encoder",
    "uniform_init_",
    "PUBLISHED_PARAMETERS",
]
