"""DeepDiff (Sekhon et al. 2018): differential expression between two cell types from their marks.

The seven published variants (``QData/DeepDiffChrome`` ``models.py`` @2aef9c5; docs/methods.md,
"Chromoformer's baselines"), all built from AttentiveChrome's encoders
(:mod:`chromexp.models.attentivechrome`: a bin-level BiLSTM + attention per input track, a
mark-level BiLSTM + attention over the tracks). With ``A`` and ``B`` the two cell types' marks,
each (batch, n_marks, n_bins):

============== ============================================================== ===============
variant        network                                                        outputs
============== ============================================================== ===============
raw_d          AttentiveChrome on ``A − B``                                    lfc
raw_c          AttentiveChrome on the 2n tracks ``[A, B]``                     lfc
raw            AttentiveChrome on the 3n tracks ``[A, B, A − B]``              lfc
aux            separate encoders for A and B, each with its own head; the two  lfc, ŷ_A, ŷ_B
               mark-level representations concatenated -> MLP(64 -> 32 -> 1)
raw_aux        bin encoders on ``[A, B, A − B]`` (3n), on A (n), on B (n); a   lfc, ŷ_A, ŷ_B
               mark-level encoder over all 5n -> lfc; A's and B's own heads
aux_siamese    ``aux`` with one (shared) set of bin encoders for A and B       lfc, ŷ_A, ŷ_B
raw_aux_siamese ``raw_aux`` with the bin encoders of A and B shared            lfc, ŷ_A, ŷ_B
============== ============================================================== ===============

Parameter counts for 5 marks: raw_d 55,681 (= AttentiveChrome), aux 113,475, aux_siamese 68,355,
raw_aux_siamese 212,163 (asserted in tests/test_baseline_models.py, which also transplants the
reference's state dicts — same module and parameter names — and compares the outputs).

Target and losses (the reference ``train.py`` and ``data.py``): lfc = log2(RPKM_B + 1) −
log2(RPKM_A + 1); MSE on lfc, plus MSE on each auxiliary head (``aux`` variants), plus 4 ×
a contrastive loss (margin 2) between the two cell types' flattened bin-level representations for
the siamese variants (:func:`contrastive_loss`; "similar" pairs are |lfc| < 2). Note that the
``raw*`` variants feed ``A − B`` while the target is ``B − A``; a learned model absorbs the sign,
and we keep the reference's definition.

Differences (behaviour, not function): inputs are (batch, n_marks, n_bins) as everywhere in
chromexp (the reference takes bins x marks); the outputs are one tensor (lfc of shape (batch,) for
the ``raw`` variants, (batch, 3) = [lfc, ŷ_A, ŷ_B] for the others) instead of tuples with attention
maps, which ``return_details=True`` returns; the training script's U(−0.1, 0.1) initialisation of
every parameter happens in the constructor (``init_range``). The reference's
``nn.Softmax()`` without ``dim`` picks dim 1 for these 2-D scores, which is what we use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attentivechrome import BIN_RNN_SIZE, bin_encoders, encode_bins, mark_encoder, uniform_init_

VARIANTS: tuple[str, ...] = ("raw_d", "raw_c", "raw", "aux", "raw_aux", "aux_siamese", "raw_aux_siamese")
#: Variants with the two auxiliary per-cell-type heads (output (batch, 3)).
AUX_VARIANTS: tuple[str, ...] = ("aux", "raw_aux", "aux_siamese", "raw_aux_siamese")
#: Variants whose loss adds the contrastive term (weight :data:`CONTRASTIVE_WEIGHT`).
SIAMESE_VARIANTS: tuple[str, ...] = ("aux_siamese", "raw_aux_siamese")
#: The reference's ``args.gamma`` for the siamese variants, and ``ContrastiveLoss(margin=2.0)``.
CONTRASTIVE_WEIGHT = 4.0
CONTRASTIVE_MARGIN = 2.0
#: |lfc| >= this makes a pair "dissimilar" (label 1) in the contrastive loss (reference: ±2.0).
CONTRASTIVE_LFC = 2.0
#: Published parameter counts for 5 marks.
PUBLISHED_PARAMETERS = {"raw_d": 55_681, "aux": 113_475, "aux_siamese": 68_355, "raw_aux_siamese": 212_163}


def contrastive_loss(emb_a: torch.Tensor, emb_b: torch.Tensor, lfc: torch.Tensor) -> torch.Tensor:
    """DeepDiff's contrastive term (reference ``SiameseLoss.ContrastiveLoss``, margin 2).

    ``label = 1`` where |lfc| >= 2 (a differentially expressed gene: the embeddings are pushed at
    least ``margin`` apart), else 0 (pulled together); mean over genes of
    ``(1 − label) d² + label · max(margin − d, 0)²`` with ``d`` the Euclidean distance
    (``F.pairwise_distance``, eps 1e-6, as the reference).
    """
    label = (lfc.reshape(-1).abs() >= CONTRASTIVE_LFC).to(emb_a.dtype)
    d = F.pairwise_distance(emb_a, emb_b)
    return torch.mean((1 - label) * d.pow(2) + label * torch.clamp(CONTRASTIVE_MARGIN - d, min=0.0).pow(2))


class DeepDiff(nn.Module):
    """One DeepDiff variant (see the module docstring); parameter names as the reference's classes.

    Parameters
    ----------
    variant : str
        One of :data:`VARIANTS`.
    n_marks : int
        Marks per cell type (5 in the paper).
    bin_rnn_size : int
        Bin-level LSTM units per direction (reference 32).
    init_range : float or None
        U(−init_range, init_range) initialisation of every parameter (reference training script: 0.1).
    """

    def __init__(self, variant: str = "aux", n_marks: int = 5, bin_rnn_size: int = BIN_RNN_SIZE, init_range=0.1):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"Unknown DeepDiff variant {variant!r}; choose one of {list(VARIANTS)}.")
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be >= 1, got {n_marks}.")
        n = self.n_marks = int(n_marks)
        self.variant = variant
        d = 2 * bin_rnn_size  # a bin-level representation
        if variant in ("raw_d", "raw_c", "raw"):
            self.rnn_hms = bin_encoders({"raw_d": 1, "raw_c": 2, "raw": 3}[variant] * n, bin_rnn_size)
            self.hm_level_rnn_1 = mark_encoder(bin_rnn_size)
            self.fdiff1_1 = nn.Linear(self.hm_level_rnn_1.output_size, 1)
        else:
            self.rnn_hms = bin_encoders(n, bin_rnn_size)
            if variant == "raw_aux":
                self.rnn_hms3 = bin_encoders(3 * n, bin_rnn_size)
            if variant == "raw_aux_siamese":
                self.rnn_hmsx = bin_encoders(3 * n, bin_rnn_size)
            if variant in ("aux", "raw_aux"):
                self.rnn_hms2 = bin_encoders(n, bin_rnn_size)
            self.hm_level_rnn_1 = mark_encoder(bin_rnn_size)
            if variant == "raw_aux":
                self.hm_level_rnn_3 = mark_encoder(bin_rnn_size)
            if variant == "raw_aux_siamese":
                self.hm_level_rnn_1x = mark_encoder(bin_rnn_size)
            self.hm_level_rnn_2 = mark_encoder(bin_rnn_size)
            size = self.hm_level_rnn_1.output_size
            self.f1_1 = nn.Linear(size, 1)
            self.f2_1 = nn.Linear(size, 1)
            if variant in ("aux", "aux_siamese"):
                self.predictor_1 = nn.Linear(2 * size, size)
                self.predictor_ = nn.Linear(size, 1)
            else:
                self.predictor_ = nn.Linear(size, 1)
        self.d_embedding = n * d
        uniform_init_(self, init_range)

    @property
    def has_aux(self) -> bool:
        """Whether the variant predicts each cell type's expression too (output (batch, 3))."""
        return self.variant in AUX_VARIANTS

    @property
    def siamese(self) -> bool:
        """Whether the variant's loss has the contrastive term."""
        return self.variant in SIAMESE_VARIANTS

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor, return_details: bool = False):
        """The log2 fold change (batch,) for the ``raw*`` variants, else [lfc, ŷ_A, ŷ_B] (batch, 3).

        Parameters
        ----------
        x_a, x_b : torch.Tensor, shape (batch, n_marks, n_bins)
            Cell type A's and B's marks over the same genes.
        return_details : bool
            Also return a dict with the siamese embeddings (``emb_a``, ``emb_b``: the flattened
            bin-level representations, (batch, n_marks · 64)) and the attention weights.
        """
        for name, x in (("x_a", x_a), ("x_b", x_b)):
            if x.ndim != 3 or x.shape[1] != self.n_marks:
                raise ValueError(
                    f"DeepDiff expects {name} of shape (batch, {self.n_marks}, bins), got {tuple(x.shape)}."
                )
        if x_a.shape != x_b.shape:
            raise ValueError(f"x_a {tuple(x_a.shape)} and x_b {tuple(x_b.shape)} must have the same shape.")
        v = self.variant
        details: dict = {}
        if v in ("raw_d", "raw_c", "raw"):
            if v == "raw_d":
                x = x_a - x_b
            elif v == "raw_c":
                x = torch.cat([x_a, x_b], 1)
            else:
                x = torch.cat([x_a, x_b, x_a - x_b], 1)
            level1, details["bin_alpha"] = encode_bins(self.rnn_hms, x)
            rep, details["mark_alpha"] = self.hm_level_rnn_1(level1)
            out = self.fdiff1_1(rep.squeeze(1)).squeeze(-1)
            return (out, details) if return_details else out
        rep_a, alpha_a = encode_bins(self.rnn_hms, x_a)
        rep_b, alpha_b = encode_bins(self.rnn_hms if self.siamese else self.rnn_hms2, x_b)
        final_a, att_a = self.hm_level_rnn_1(rep_a)
        final_b, att_b = self.hm_level_rnn_2(rep_b)
        final_a, final_b = final_a.squeeze(1), final_b.squeeze(1)
        if v in ("aux", "aux_siamese"):
            lfc = self.predictor_(torch.relu(self.predictor_1(torch.cat([final_a, final_b], 1))))
            details.update(mark_alpha=torch.cat([att_a, att_b], 1), bin_alpha=torch.cat([alpha_a, alpha_b], 1))
        else:
            joint_encoders = self.rnn_hms3 if v == "raw_aux" else self.rnn_hmsx
            rep_x, details["bin_alpha"] = encode_bins(joint_encoders, torch.cat([x_a, x_b, x_a - x_b], 1))
            joint = self.hm_level_rnn_3 if v == "raw_aux" else self.hm_level_rnn_1x
            final_x, details["mark_alpha"] = joint(torch.cat([rep_x, rep_a, rep_b], 0))
            lfc = self.predictor_(final_x.squeeze(1))
        out = torch.cat([lfc, self.f1_1(final_a), self.f2_1(final_b)], dim=1)
        if not return_details:
            return out
        # the reference's alpha_rep: (marks, batch, 64) -> (batch, marks * 64), gene-major
        details["emb_a"] = rep_a.permute(1, 0, 2).reshape(rep_a.shape[1], -1)
        details["emb_b"] = rep_b.permute(1, 0, 2).reshape(rep_b.shape[1], -1)
        return out, details


__all__ = [
    "DeepDiff",
    "VARIANTS",
    "AUX_VARIANTS",
    "SIAMESE_VARIANTS",
    "CONTRASTIVE_WEIGHT",
    "contrastive_loss",
    "PUBLISHED_PARAMETERS",
]
