"""Chromoformer (Lee, Yang & Kim 2022): the distal model of the study (docs/methods.md, "Chromoformer").

Three independent modules, one per resolution (the dataset's ``signal.resolutions`` over its
TSS ± ``signal.half_window``; the study's bin sizes and window are in docs/methods.md), each made of

* an **embedding transformer** over the promoter bins (1 layer, 2 heads, d_model 128, ff 128);
* a **pairwise-interaction transformer**: 2 layers of encoder-decoder attention whose queries come
  from the promoter embedding and whose keys/values come from one pCRE's bins (2 heads, d_model
  128, ff 256), run once per pCRE slot;
* a **regulation transformer**: 6 layers of gated self-attention (8 heads, d_model 256, ff 256)
  over [promoter embedding, up to ``i_max`` = 8 pairwise embeddings], with the normalised pcHi-C
  interaction frequencies added (times a learned per-head ``gamma_f``) to the first row of the
  attention scores.

The three modules' regulatory embeddings ``reg_out[:, 0] + reg_in[:, 0]`` are concatenated
coarse to fine and fed to an FC head (one 128-unit hidden layer) giving 1 output
(:class:`ChromoformerRegressor`, the distal model of the study) or 2 logits
(:class:`ChromoformerClassifier`). :class:`ChromoformerDiff` runs the same backbone on two cell
types' inputs and predicts their log2 fold change; it is an untrained architecture written from the
paper's description (no public reference code, no training path in chromexp yet), not a
reproduction. The exactness below concerns the regressor and the classifier only.

Exactness. Module and parameter names mirror the reference package ``chromoformer==1.1.3``
(``chromoformer.net.ChromoformerRegressor`` / ``ChromoformerClassifier``), so that its
``state_dict`` loads with ``strict=True`` and the parameter counts are the published ones
(5,337,935 for one mark, 5,342,543 for seven; classifier 5,342,672). The reference carries
tensors that never reach the output (``w_bias`` everywhere, ``gamma_f`` of the embedding and
pairwise attentions, ``pairwise_interaction.<res>.ln``); we keep them, unused, only for that
reason: they receive no gradient, so the optimiser never changes them.

Speed (the *exact* shortcut, default). Downstream of the embedding and pairwise stages only the
TSS token (bin ``L // 2``) is used, the pairwise stage is cross-attention only, and feed-forward
and LayerNorm act per position. Hence the embedding stage needs one query (the TSS) over all
promoter bins, the pairwise stage one query per pCRE slot, and empty pCRE slots (fully masked in
the regulation transformer) can be skipped. On top of that, with a single query the first
attention layer over raw inputs can fold the input projection and positional encoding through
the key/value projections (scores and context are computed from the ``n_marks``-dimensional
input instead of 128-dimensional keys). The regulation transformer runs each gene over its
non-empty tokens only (genes grouped by token count; a masked key contributes exactly 0 in the
reference too) and computes only the promoter row in its last layer. This is the same function
as the reference with O(L · n_marks) instead of O(L² · d) work in the first two stages; it
agrees with the reference to float32 rounding (tested to 1e-5; about 80× fewer FLOPs for a
training step at batch 64 with 7 marks, see ``bench/bench_chromoformer.py``).
``full_attention=True`` runs the reference's computation order over every position and slot
and can return the attention maps.

Deliberate differences from the reference (behaviour, not function): no ``torch.manual_seed``
inside the constructor (the reference reseeds the global generator), no hard-coded ``.cuda()``,
no mutable default arguments (the reference's constructors mutate their default dicts), the
regressor returns shape (batch,) instead of (batch, 1), and inputs are validated with clear
``ValueError`` messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: The constructors' default resolutions: the reference's module order (coarse to fine). Callers
#: pass the dataset's (``experiments.chromoformer.build``: ``signal.resolutions`` of the parameters).
RESOLUTIONS: tuple[int, ...] = (2000, 500, 100)

#: Architecture of the study (docs/methods.md, "Chromoformer"; chromoformer's configs/default.yaml).
DEFAULT_ARCHITECTURE: dict = {
    "d_emb": 128,
    "d_head": 128,
    "embed": {"n_layers": 1, "n_heads": 2, "d_model": 128, "d_ff": 128},
    "pairwise_interaction": {"n_layers": 2, "n_heads": 2, "d_model": 128, "d_ff": 256},
    "regulation": {"n_layers": 6, "n_heads": 8, "d_model": 256, "d_ff": 256},
}

# The reference fills masked scores with -1e9 (-65504 in float16) *after* adding the frequency
# bias; exp(-1e9 - max) underflows to exactly 0, so masked keys contribute exactly nothing.
_MASK_FILL = -1e9
_MASK_FILL_HALF = -65504.0


def _mask_fill_value(dtype: torch.dtype) -> float:
    return _MASK_FILL_HALF if dtype == torch.float16 else _MASK_FILL


def sinusoidal_encoding(n_positions: int, dim: int) -> torch.Tensor:
    """Sinusoidal positional encoding exactly as the reference computes it (float32).

    ``pe[p, 2i] = sin(p * k_i)``, ``pe[p, 2i+1] = cos(p * k_i)`` with
    ``k_i = exp(-ln(10000) * 2i / dim)`` (the same expression and dtype as
    ``chromoformer.net.EmbeddingTransformer._pos_enc``, so the values are bitwise equal).

    Returns
    -------
    torch.Tensor, shape (n_positions, dim)
    """
    pe = torch.zeros(n_positions, dim)
    pos = torch.arange(0, n_positions, 1).unsqueeze(1)
    k = torch.exp(-np.log(10000) * torch.arange(0, dim, 2) / dim)
    pe[:, 0::2] = torch.sin(pos * k)
    pe[:, 1::2] = torch.cos(pos * k)
    return pe


# --------------------------------------------------------------------------------------------
# Building blocks (names mirror chromoformer.modules so that state dicts load strictly)
# --------------------------------------------------------------------------------------------


class FeedForward(nn.Module):
    """Position-wise feed-forward block with a post-LayerNorm residual: ``ln(x + l2(relu(l1(x))))``."""

    def __init__(self, d_emb: int, d_ff: int):
        super().__init__()
        self.l1 = nn.Linear(d_emb, d_ff)
        self.l2 = nn.Linear(d_ff, d_emb)
        self.ln = nn.LayerNorm(d_emb)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x + self.l2(F.relu(self.l1(x))))


def _heads(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(N, T, h*dh) -> (N, h, T, dh)."""
    n, length, _ = t.shape
    return t.view(n, length, n_heads, -1).transpose(1, 2)


def _merge_heads(t: torch.Tensor) -> torch.Tensor:
    """(N, h, T, dh) -> (N, T, h*dh)."""
    n, h, length, dh = t.shape
    return t.transpose(1, 2).reshape(n, length, h * dh)


def _attend(q, k, v, d_head, mask=None, bias=None, gamma_f=None):
    """Scaled dot-product attention in the reference's order of operations.

    ``q`` (N, h, Tq, dh), ``k``/``v`` (N, h, Tk, dh); ``bias`` (N, Tq, Tk) is multiplied by the
    per-head ``gamma_f`` and added before ``mask`` (broadcastable to (N, h, Tq, Tk), True =
    masked) is filled. Returns the context (N, h, Tq, dh) and the probabilities.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) / d_head**0.5
    if bias is not None:
        scores = scores + gamma_f.view(1, -1, 1, 1) * bias.unsqueeze(1)
    if mask is not None:
        scores = scores.masked_fill(mask, _mask_fill_value(scores.dtype))
    prob = F.softmax(scores, dim=-1)
    return torch.matmul(prob, v), prob


class MultiHeadAttention(nn.Module):
    """Self-attention with a fused [q|k|v(|gate)] projection and a post-LayerNorm residual.

    With ``gate=True`` (regulation transformer) the per-head context is multiplied by
    ``sigmoid(gate)`` before the output projection ``ff``. ``w_bias`` and, when no bias is
    passed, ``gamma_f`` are unused tensors kept for state-dict compatibility (module docstring).
    """

    def __init__(self, d_emb: int, n_heads: int, d_model: int, gate: bool = False):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        self.n_heads, self.d_head, self.gate = n_heads, d_model // n_heads, gate
        self.gamma_f = nn.Parameter(torch.ones([n_heads]))
        self.w_bias = nn.Linear(2, n_heads, bias=False)  # unused (reference compatibility)
        self.att = nn.Linear(d_emb, (4 if gate else 3) * d_model, bias=False)
        self.ff = nn.Linear(d_model, d_emb)
        self.ln = nn.LayerNorm(d_emb)

    def forward(self, x, mask=None, bias=None, rows=None, return_attention=False):
        """Attend over all tokens of ``x`` (N, T, d_emb).

        ``rows`` (a slice) computes only those query rows (output (N, len(rows), d_emb)): the
        regulation transformer's last layer needs only row 0, a multi-layer embedding
        transformer's last layer only the TSS row. ``mask`` broadcastable to (N, 1, T, T),
        True = masked; ``bias`` (N, T, T).
        """
        parts = self.att(x).chunk(4 if self.gate else 3, dim=-1)
        q, k, v = (_heads(p, self.n_heads) for p in parts[:3])
        if rows is not None:
            q, x = q[:, :, rows], x[:, rows]
            mask = None if mask is None or mask.shape[-2] == 1 else mask[..., rows, :]
            bias = None if bias is None else bias[:, rows]
        ctx, prob = _attend(q, k, v, self.d_head, mask, bias, self.gamma_f)
        if self.gate:
            g = _heads(parts[3], self.n_heads)
            ctx = ctx * torch.sigmoid(g if rows is None else g[:, :, rows])
        out = self.ln(x + self.ff(_merge_heads(ctx)))
        return (out, prob) if return_attention else out


class AttentionBlock(nn.Module):
    """``self_att`` followed by the feed-forward block (reference ``AttentionBlock``)."""

    def __init__(self, d_emb, n_heads, d_model, d_ff, gate=False):
        super().__init__()
        self.self_att = MultiHeadAttention(d_emb, n_heads, d_model, gate=gate)
        self.ff = FeedForward(d_emb, d_ff)

    def forward(self, x, mask=None, bias=None, rows=None, return_attention=False):
        out = self.self_att(x, mask, bias, rows, return_attention)
        if return_attention:
            return self.ff(out[0]), out[1]
        return self.ff(out)


class Transformer(nn.Module):
    """A stack of :class:`AttentionBlock` (reference ``modules.Transformer``)."""

    def __init__(self, n_layers, n_heads, d_emb, d_model, d_ff, gate=False):
        super().__init__()
        self.layers = nn.ModuleList([AttentionBlock(d_emb, n_heads, d_model, d_ff, gate=gate) for _ in range(n_layers)])


class PairwiseMultiHeadAttention(nn.Module):
    """Cross-attention of the promoter stream (queries) on a pCRE stream (keys and values).

    Queries ``p_att`` come from the promoter stream, keys/values ``c_att`` [k|v] from the pCRE
    stream; post-LayerNorm residual on the promoter stream.

    ``gamma_f`` is unused (no bias in this stage); kept for state-dict compatibility. The
    reference's dropouts have p = 0 and no parameters, so they are omitted.
    """

    def __init__(self, d_emb: int, n_heads: int, d_model: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads}).")
        self.n_heads, self.d_head = n_heads, d_model // n_heads
        self.gamma_f = nn.Parameter(torch.ones([n_heads]))  # unused (reference compatibility)
        self.p_att = nn.Linear(d_emb, d_model, bias=False)
        self.c_att = nn.Linear(d_emb, 2 * d_model, bias=False)
        self.ff = nn.Linear(d_model, d_emb)
        self.ln = nn.LayerNorm(d_emb)

    def forward(self, x_p, x_pcre, mask=None, return_attention=False):
        """Full path: ``x_p`` (N, Lq, d), ``x_pcre`` (N, Lk, d), ``mask`` (N, 1, Lq, Lk)."""
        q = _heads(self.p_att(x_p), self.n_heads)
        k, v = (_heads(t, self.n_heads) for t in self.c_att(x_pcre).chunk(2, dim=-1))
        ctx, prob = _attend(q, k, v, self.d_head, mask)
        out = self.ln(x_p + self.ff(_merge_heads(ctx)))
        return (out, prob) if return_attention else out


class PairwiseAttentionBlock(nn.Module):
    def __init__(self, d_emb, n_heads, d_model, d_ff):
        super().__init__()
        self.self_att = PairwiseMultiHeadAttention(d_emb, n_heads, d_model)
        self.ff = FeedForward(d_emb, d_ff)


class PairwiseTransformer(nn.Module):
    def __init__(self, n_layers, n_heads, d_emb, d_model, d_ff):
        super().__init__()
        self.layers = nn.ModuleList([PairwiseAttentionBlock(d_emb, n_heads, d_model, d_ff) for _ in range(n_layers)])


def _folded_query_attention(q, c, pad, proj_w, pe, w_k, w_v, n_heads):
    """One query per sequence over keys/values ``W (P c_j + pe_j)``, never forming the keys.

    Equal (up to float rounding) to projecting the raw input ``c`` with ``proj_w`` (the bias-free
    input projection), adding the positional encoding ``pe``, projecting keys and values with
    ``w_k``/``w_v`` and attending with ``q``. Folding the query through the projections turns the
    per-bin work from O(d²) into O(n_marks · heads + d).

    Parameters
    ----------
    q : torch.Tensor, shape (N, d_model)
        Queries (already projected with W_q), one per sequence.
    c : torch.Tensor, shape (N, L, n_marks)
        Raw binned input of each sequence.
    pad : torch.Tensor or None, shape (N, L)
        True = masked key (padding).
    proj_w : (d_in, n_marks); pe : (L, d_in); w_k, w_v : (d_model, d_in)

    Returns
    -------
    torch.Tensor, shape (N, d_model)
        Per-head context vectors, heads concatenated (before the output projection).
    """
    n = q.shape[0]
    d_model = w_k.shape[0]
    dh = d_model // n_heads
    qh = q.view(n, n_heads, dh)
    a_k = (w_k @ proj_w).view(n_heads, dh, -1)  # (h, dh, m)
    a_v = (w_v @ proj_w).view(n_heads, dh, -1)
    k_pe = (pe @ w_k.T).view(-1, n_heads, dh)  # (L, h, dh)
    v_pe = (pe @ w_v.T).view(-1, n_heads, dh)
    u = torch.einsum("nhe,hem->nhm", qh, a_k)  # query folded through W_k P
    scores = torch.einsum("nlm,nhm->nhl", c, u) + torch.einsum("nhe,lhe->nhl", qh, k_pe)
    scores = scores / dh**0.5
    if pad is not None:
        scores = scores.masked_fill(pad.unsqueeze(1), _mask_fill_value(scores.dtype))
    prob = F.softmax(scores, dim=-1)  # (N, h, L)
    pooled = torch.einsum("nhl,nlm->nhm", prob, c)
    ctx = torch.einsum("nhm,hem->nhe", pooled, a_v) + torch.einsum("nhl,lhe->nhe", prob, v_pe)
    return ctx.reshape(n, d_model)


# --------------------------------------------------------------------------------------------
# The three stages
# --------------------------------------------------------------------------------------------


class EmbeddingTransformer(nn.Module):
    """Promoter embedding: ``lin_proj`` (no bias) + positional encoding + transformer."""

    def __init__(self, n_feats, n_layers, n_heads, d_model, d_ff):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.lin_proj = nn.Linear(n_feats, d_model, bias=False)
        self.transformer = Transformer(n_layers, n_heads, d_model, d_model, d_ff, gate=False)

    def _input(self, x):
        pe = sinusoidal_encoding(x.shape[1], self.d_model).to(device=x.device, dtype=x.dtype)
        return self.lin_proj(x) + pe

    def forward_full(self, x, return_attention=False):
        """``x`` (N, L, n_feats) -> all positions (N, L, d_model) (+ per-layer attention maps).

        The promoter window is never padded (as in the reference dataset, whose promoter mask
        is all False for a 40 kb window), so no mask is applied.
        """
        h, maps = self._input(x), []
        for layer in self.transformer.layers:
            h, prob = layer(h, return_attention=True)
            maps.append(prob)
        return (h, maps) if return_attention else h

    def forward_tss(self, x):
        """``x`` (N, L, n_feats) -> the TSS token (bin L // 2) only, (N, d_model)."""
        layers = self.transformer.layers
        tss = x.shape[1] // 2
        if len(layers) > 1:
            # Earlier layers need every position (they feed the last layer's keys).
            h = self._input(x)
            for layer in layers[:-1]:
                h = layer(h)
            return layers[-1](h, rows=slice(tss, tss + 1))[:, 0]
        att = layers[0].self_att
        pe = sinusoidal_encoding(x.shape[1], self.d_model).to(device=x.device, dtype=x.dtype)
        h_tss = self.lin_proj(x[:, tss]) + pe[tss]
        w_q, w_k, w_v = att.att.weight.chunk(3, dim=0)
        ctx = _folded_query_attention(h_tss @ w_q.T, x, None, self.lin_proj.weight, pe, w_k, w_v, self.n_heads)
        h_tss = att.ln(h_tss + att.ff(ctx))
        return layers[0].ff(h_tss)


class PairwiseInteractionTransformer(nn.Module):
    """Promoter-pCRE interaction: promoter embedding queries over one pCRE's bins per slot.

    ``ln`` is an unused LayerNorm of the reference (kept for state-dict compatibility).
    """

    def __init__(self, n_feats_p, n_feats_pcre, n_layers, n_heads, d_model, d_ff):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.ln = nn.LayerNorm(d_model)  # unused (reference compatibility)
        self.lin_proj_p = nn.Linear(n_feats_p, d_model, bias=False)
        self.lin_proj_pcre = nn.Linear(n_feats_pcre, d_model, bias=False)
        self.transformer = PairwiseTransformer(n_layers, n_heads, d_model, d_model, d_ff)

    def forward_full(self, p_emb, x_pcre, pad, return_attention=False):
        """Reference computation over every promoter position and every slot.

        ``p_emb`` (B, Lp, d) promoter embedding (all positions), ``x_pcre`` (B, S, Lc, n_feats),
        ``pad`` (B, S, Lc) True = padding. Returns the TSS token (bin Lp // 2) per slot (B, S, d)
        (+ maps). The pCRE window ``Lc`` may differ from the promoter window ``Lp`` (the
        reference's separate ``w_prom`` and ``w_max``; the window study crops only the promoter).
        """
        b, s, length, _ = x_pcre.shape
        lp = p_emb.shape[1]
        xp = self.lin_proj_p(p_emb).unsqueeze(1).expand(-1, s, -1, -1).reshape(b * s, lp, -1)
        pe = sinusoidal_encoding(length, self.d_model).to(device=x_pcre.device, dtype=x_pcre.dtype)
        xc = self.lin_proj_pcre(x_pcre.reshape(b * s, length, -1)) + pe
        # Reference mask: rows = valid promoter bins (all), columns = valid pCRE bins.
        mask = pad.reshape(b * s, 1, 1, length).expand(-1, -1, lp, -1)
        maps = []
        for layer in self.transformer.layers:
            xp, prob = layer.self_att(xp, xc, mask, return_attention=True)
            xp = layer.ff(xp)
            maps.append(prob.view(b, s, *prob.shape[1:]))
        out = xp[:, lp // 2].view(b, s, -1)
        return (out, maps) if return_attention else out

    def forward_tss(self, p_tss, x_pcre, pad):
        """TSS query only, one per pCRE.

        ``p_tss`` (N, d) (the slot's promoter TSS embedding), ``x_pcre`` (N, L, n_feats),
        ``pad`` (N, L). Returns (N, d).
        """
        pe = sinusoidal_encoding(x_pcre.shape[1], self.d_model).to(device=x_pcre.device, dtype=x_pcre.dtype)
        xq = self.lin_proj_p(p_tss)
        for layer in self.transformer.layers:
            att = layer.self_att
            w_k, w_v = att.c_att.weight.chunk(2, dim=0)
            ctx = _folded_query_attention(
                att.p_att(xq), x_pcre, pad, self.lin_proj_pcre.weight, pe, w_k, w_v, self.n_heads
            )
            xq = layer.ff(att.ln(xq + att.ff(ctx)))
        return xq


class RegulationTransformer(nn.Module):
    """Gated self-attention over [promoter, pairwise embeddings] with the frequency bias."""

    def __init__(self, n_layers, n_heads, d_emb, d_model, d_ff):
        super().__init__()
        self.transformer = Transformer(n_layers, n_heads, d_emb, d_model, d_ff, gate=True)

    def forward(self, x, mask, bias, first_row_only=False, return_attention=False):
        """``x`` (B, 1+S, d_emb), ``mask`` (B, 1, 1+S, 1+S) True = masked, ``bias`` (B, 1+S, 1+S).

        ``first_row_only`` computes only the promoter row in the last layer (the only row used).
        Returns (B, 1+S, d_emb) or, with ``first_row_only``, (B, 1, d_emb).
        """
        layers, maps = self.transformer.layers, []
        for i, layer in enumerate(layers):
            rows = slice(0, 1) if first_row_only and i == len(layers) - 1 else None
            x, prob = layer(x, mask, bias, rows=rows, return_attention=True)
            maps.append(prob)
        return (x, maps) if return_attention else x

    def forward_packed(self, x, valid, freq):
        """Promoter token of the last layer, with the linear layers run on non-empty tokens only.

        The token-wise layers (fused projection, output projection, feed-forward, LayerNorm)
        see only the non-empty tokens (packed rows); attention runs on the padded (1+S)×(1+S)
        layout with the reference's mask, where an empty token's key is masked (-1e9, whose
        exponential is exactly 0) and its query row is never used. The last layer computes only
        the promoter row. Same function as :meth:`forward`, far fewer operations.

        Parameters
        ----------
        x : torch.Tensor, shape (B, 1+S, d_emb)
        valid : torch.Tensor of bool, shape (B, S)
        freq : torch.Tensor, shape (B, S)

        Returns
        -------
        torch.Tensor, shape (B, d_emb)
        """
        b, t, _ = x.shape
        tok = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        rows = tok.nonzero(as_tuple=True)
        mask, bias = ChromoformerBackbone._interaction(valid, freq)
        layers = self.transformer.layers
        h = x[rows]  # (N, d_emb): the non-empty tokens, packed (row-major: gene, token)
        is_promoter = rows[1] == 0  # one per gene, in gene order
        for i, layer in enumerate(layers):
            att = layer.self_att
            proj = att.att(h)
            padded = proj.new_zeros(b, t, proj.shape[-1]).index_put(rows, proj)
            parts = padded.chunk(4, dim=-1)
            q, k, v, g = (_heads(p, att.n_heads) for p in parts)
            if i == len(layers) - 1:
                q, g = q[:, :, :1], g[:, :, :1]
                ctx, _ = _attend(q, k, v, att.d_head, mask[..., :1, :], bias[:, :1], att.gamma_f)
                ctx = _merge_heads(ctx * torch.sigmoid(g))[:, 0]
                return layer.ff(att.ln(h[is_promoter] + att.ff(ctx)))
            ctx, _ = _attend(q, k, v, att.d_head, mask, bias, att.gamma_f)
            ctx = _merge_heads(ctx * torch.sigmoid(g))[rows]
            h = layer.ff(att.ln(h + att.ff(ctx)))
        raise ValueError("The regulation transformer has no layers.")


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


def _architecture(architecture: Mapping | None) -> dict:
    arch = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in DEFAULT_ARCHITECTURE.items()}
    for key, value in (architecture or {}).items():
        if key not in arch:
            raise ValueError(f"Unknown Chromoformer architecture key {key!r}; known: {sorted(arch)}.")
        if isinstance(arch[key], dict):
            unknown = set(value) - set(arch[key])
            if unknown:
                raise ValueError(f"Unknown key(s) {sorted(unknown)} in architecture[{key!r}].")
            arch[key].update(value)
        else:
            arch[key] = int(value)
    return arch


class ChromoformerBackbone(nn.Module):
    """The three-resolution Chromoformer up to the 384-dimensional regulatory embedding.

    Parameters
    ----------
    n_marks : int
        Number of input histone marks (input features per bin).
    architecture : mapping, optional
        Overrides of :data:`DEFAULT_ARCHITECTURE` (``d_emb``, ``d_head``, ``embed``,
        ``pairwise_interaction``, ``regulation``).
    resolutions : sequence of int
        Bin sizes, in the order their embeddings are concatenated (reference: 2000, 500, 100).
    full_attention : bool
        Default computation path: False = exact TSS-only shortcut; True = every query position
        and every pCRE slot, as the reference (needed for attention maps).
    """

    def __init__(
        self,
        n_marks: int = 7,
        architecture: Mapping | None = None,
        resolutions: Sequence[int] = RESOLUTIONS,
        full_attention: bool = False,
    ):
        super().__init__()
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be >= 1, got {n_marks}.")
        arch = _architecture(architecture)
        self.n_marks, self.resolutions = int(n_marks), tuple(int(r) for r in resolutions)
        self.architecture, self.full_attention = arch, bool(full_attention)
        d_emb, e, p, r = arch["d_emb"], arch["embed"], arch["pairwise_interaction"], arch["regulation"]
        if e["d_model"] != d_emb:
            raise ValueError("The embedding transformer's d_model must equal d_emb (the reference ties them).")
        keys = [str(res) for res in self.resolutions]
        self.embed = nn.ModuleDict(
            {k: EmbeddingTransformer(n_marks, e["n_layers"], e["n_heads"], d_emb, e["d_ff"]) for k in keys}
        )
        self.pairwise_interaction = nn.ModuleDict(
            {
                k: PairwiseInteractionTransformer(d_emb, n_marks, p["n_layers"], p["n_heads"], p["d_model"], p["d_ff"])
                for k in keys
            }
        )
        if p["d_model"] != d_emb:
            raise ValueError(
                "The pairwise transformer's d_model must equal d_emb (its output feeds the regulation stage)."
            )
        self.regulation = nn.ModuleDict(
            {k: RegulationTransformer(r["n_layers"], r["n_heads"], d_emb, r["d_model"], r["d_ff"]) for k in keys}
        )
        self.d_embedding = d_emb * len(keys)

    # ---- inputs -------------------------------------------------------------------------
    def _check(self, inputs: Mapping[str, torch.Tensor]):
        missing = [
            f"{name}_{res}"
            for res in self.resolutions
            for name in ("promoter", "pcre", "pcre_mask")
            if f"{name}_{res}" not in inputs
        ] + ([] if "freq" in inputs else ["freq"])
        if missing:
            raise ValueError(
                f"Chromoformer inputs lack {missing}; build them with chromexp.models.chromoformer_inputs."
            )
        b = inputs["freq"].shape[0]
        for res in self.resolutions:
            xp, xc, m = inputs[f"promoter_{res}"], inputs[f"pcre_{res}"], inputs[f"pcre_mask_{res}"]
            if xp.ndim != 3 or xp.shape[:2] != (b, self.n_marks):
                raise ValueError(
                    f"promoter_{res} must have shape (batch, {self.n_marks}, bins), got {tuple(xp.shape)}."
                )
            s = inputs["freq"].shape[1]
            # the pCRE window may differ from the promoter window (window study: promoter cropped)
            if xc.ndim != 4 or xc.shape[:3] != (b, s, self.n_marks) or xc.shape[3] < 1:
                raise ValueError(
                    f"pcre_{res} must have shape (batch, slots, marks, bins) = {(b, s, self.n_marks)} + (bins,), got {tuple(xc.shape)}."
                )
            if m.shape != (b, s, xc.shape[3]) or m.dtype != torch.bool:
                raise ValueError(
                    f"pcre_mask_{res} must be a bool tensor of shape {(b, s, xc.shape[3])}, got {m.dtype} {tuple(m.shape)}."
                )

    @staticmethod
    def _interaction(valid: torch.Tensor, freq: torch.Tensor):
        """Regulation-stage mask and bias from slot validity (B, S) and frequencies (B, S).

        The reference's ``interaction_mask`` is ~(valid_i & valid_j) over [promoter, slots] and
        its ``interaction_freq`` holds the frequencies in row 0 only (columns 1..S).
        """
        b = valid.shape[0]
        tok = torch.cat([torch.ones_like(valid[:, :1]), valid], dim=1)
        mask = ~(tok.unsqueeze(2) & tok.unsqueeze(1))
        bias = torch.zeros(b, tok.shape[1], tok.shape[1], dtype=freq.dtype, device=freq.device)
        bias[:, 0, 1:] = freq
        return mask.unsqueeze(1), bias

    # ---- forward ------------------------------------------------------------------------
    def forward(self, full_attention: bool | None = None, return_attention: bool = False, **inputs):
        """Regulatory embedding.

        Parameters
        ----------
        promoter_<res> : torch.Tensor, shape (batch, n_marks, L_res)
            Strand-oriented promoter bins (TSS ± 20 kb; TSS token = bin L // 2).
        pcre_<res> : torch.Tensor, shape (batch, slots, n_marks, Lc_res)
            pCRE bins, centred and zero-padded; empty slots all zero. ``Lc_res`` is the pCRE window
            (the reference's ``w_max``), normally ``L_res``; the window study crops the promoter
            only, so it may differ.
        pcre_mask_<res> : torch.Tensor of bool, shape (batch, slots, Lc_res)
            True = padding; an all-True row is an empty slot.
        freq : torch.Tensor, shape (batch, slots)
            Normalised interaction frequency of each slot (ignored for empty slots).
        full_attention : bool, optional
            Overrides ``self.full_attention`` for this call.
        return_attention : bool
            Also return the attention maps (requires the full path).

        Returns
        -------
        torch.Tensor, shape (batch, 3 * d_emb)
            ``cat_res(reg_out[:, 0] + reg_in[:, 0])``; with ``return_attention`` a tuple
            (embedding, maps) where maps[res] = {"embed", "pairwise", "regulation"} lists of
            per-layer attention probabilities.
        """
        self._check(inputs)
        full = self.full_attention if full_attention is None else bool(full_attention)
        if return_attention and not full:
            raise ValueError("Attention maps need the full path: pass full_attention=True.")
        freq = inputs["freq"]
        out, maps = [], {}
        for res in self.resolutions:
            key = str(res)
            xp = inputs[f"promoter_{res}"].transpose(1, 2)  # (B, L, m)
            xc = inputs[f"pcre_{res}"].transpose(2, 3)  # (B, S, L, m)
            pad = inputs[f"pcre_mask_{res}"]
            valid = ~pad.all(dim=-1)  # (B, S)
            b, s, _, _ = xc.shape
            if full:
                p_all, m_emb = self.embed[key].forward_full(xp, return_attention=True)
                p_tss = p_all[:, xp.shape[1] // 2]
                pw, m_pw = self.pairwise_interaction[key].forward_full(p_all, xc, pad, return_attention=True)
            else:
                p_tss = self.embed[key].forward_tss(xp)
                # Only non-empty slots are computed; empty ones are masked out of the
                # regulation stage entirely, so their (zero) embedding never matters.
                idx = valid.nonzero(as_tuple=True)
                pw = p_tss.new_zeros(b, s, p_tss.shape[-1])
                if idx[0].numel():
                    pw_valid = self.pairwise_interaction[key].forward_tss(p_tss[idx[0]], xc[idx], pad[idx])
                    # under bf16 autocast pw_valid is bfloat16 (its last op is a linear layer) and
                    # p_tss float32 (layer norm): index_put needs one dtype (a no-op in float32)
                    pw = pw.index_put(idx, pw_valid.to(pw.dtype))
            x_in = torch.cat([p_tss.unsqueeze(1), pw], dim=1)
            if full:
                mask, bias = self._interaction(valid, freq)
                x_out, m_reg = self.regulation[key](x_in, mask, bias, return_attention=True)
                out.append(x_out[:, 0] + x_in[:, 0])
            else:
                out.append(self.regulation[key].forward_packed(x_in, valid, freq) + p_tss)
            if return_attention:
                maps[res] = {"embed": m_emb, "pairwise": m_pw, "regulation": m_reg}
        emb = torch.cat(out, dim=1)
        return (emb, maps) if return_attention else emb


def _head(d_in: int, d_hidden: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.ReLU(), nn.Linear(d_hidden, n_out))


class ChromoformerRegressor(ChromoformerBackbone):
    """Chromoformer-reg: log2(RPKM + 1) from the regulatory embedding (the study's distal model).

    ``forward(**inputs)`` returns shape (batch,) (the reference returns (batch, 1)). See
    :class:`ChromoformerBackbone` for the inputs and options; parameters load strictly from
    ``chromoformer.net.ChromoformerRegressor.state_dict()``.
    """

    n_outputs = 1

    def __init__(self, n_marks=7, architecture=None, resolutions=RESOLUTIONS, full_attention=False):
        super().__init__(n_marks, architecture, resolutions, full_attention)
        self.fc_head = _head(self.d_embedding, self.architecture["d_head"], self.n_outputs)

    def forward(self, full_attention=None, **inputs):
        """Predicted log2(RPKM + 1), shape (batch,)."""
        return self.fc_head(super().forward(full_attention=full_attention, **inputs)).squeeze(-1)

    def attention_maps(self, **inputs):
        """Prediction and per-resolution attention maps from the full path (no gradient kept)."""
        with torch.no_grad():
            emb, maps = super().forward(full_attention=True, return_attention=True, **inputs)
            return self.fc_head(emb).squeeze(-1), maps


class ChromoformerClassifier(ChromoformerRegressor):
    """Chromoformer-clf: 2 logits (inactive, active) per gene, shape (batch, 2)."""

    n_outputs = 2

    def forward(self, full_attention=None, **inputs):
        """Logits (inactive, active), shape (batch, 2)."""
        return self.fc_head(ChromoformerBackbone.forward(self, full_attention=full_attention, **inputs))

    def attention_maps(self, **inputs):
        """Logits and per-resolution attention maps from the full path (no gradient kept)."""
        with torch.no_grad():
            emb, maps = ChromoformerBackbone.forward(self, full_attention=True, return_attention=True, **inputs)
            return self.fc_head(emb), maps


class ChromoformerDiff(ChromoformerBackbone):
    """Chromoformer-diff: log2 fold change of expression between two cell types.

    Not a reproduction: the authors published no code for this variant and chromexp has no
    training path for it yet. This is an untrained architecture written from the paper's
    description only; nothing here is tested against a reference.

    One backbone (shared weights) embeds the inputs of cell type A and of cell type B; the two
    384-dimensional embeddings are concatenated and an FC head (one 128-unit hidden layer)
    predicts log2((RPKM_B + 1) / (RPKM_A + 1)). Auxiliary outputs: a shared ``fc_head``
    predicts each cell type's absolute log2(RPKM + 1) from its own embedding (as the
    regressor), which regularises the backbone.

    ``forward(**inputs)`` takes every backbone input twice, with suffixes ``_a`` and ``_b``
    (e.g. ``promoter_100_a``, ``freq_b``) and returns shape (batch, 3):
    [log2 fold change (B vs A), expression A, expression B].
    """

    def __init__(self, n_marks=7, architecture=None, resolutions=RESOLUTIONS, full_attention=False):
        super().__init__(n_marks, architecture, resolutions, full_attention)
        d_head = self.architecture["d_head"]
        self.fc_head = _head(self.d_embedding, d_head, 1)
        self.fc_diff = _head(2 * self.d_embedding, d_head, 1)

    def forward(self, full_attention=None, **inputs):
        """[log2 fold change (B vs A), expression A, expression B], shape (batch, 3)."""
        split = {}
        for side in ("a", "b"):
            suffix = f"_{side}"
            split[side] = {k[: -len(suffix)]: v for k, v in inputs.items() if k.endswith(suffix)}
        if len(split["a"]) + len(split["b"]) != len(inputs):
            extra = [k for k in inputs if not k.endswith(("_a", "_b"))]
            raise ValueError(f"ChromoformerDiff inputs must end with _a or _b; got {extra}.")
        emb_a = ChromoformerBackbone.forward(self, full_attention=full_attention, **split["a"])
        emb_b = ChromoformerBackbone.forward(self, full_attention=full_attention, **split["b"])
        lfc = self.fc_diff(torch.cat([emb_a, emb_b], dim=1))
        return torch.cat([lfc, self.fc_head(emb_a), self.fc_head(emb_b)], dim=1)


class ChromoformerEmbeddingOnly(nn.Module):
    """The Embedding-only ablation of the paper's Fig. 3b: no pairwise-interaction, no regulation transformer.

    The three embedding transformers' TSS tokens (one per resolution, the same modules and names
    as in :class:`ChromoformerBackbone`'s ``embed``) are concatenated coarse to fine and fed to
    the same FC head (one 128-unit hidden layer): ``fc_head(cat_res(p_tss))``, where the intact
    model reads ``fc_head(cat_res(reg_out[:, 0] + p_tss))``. pCREs and frequencies are accepted
    (so that the same input dicts feed both models) and ignored.

    Parameters
    ----------
    n_marks, architecture, resolutions, full_attention
        As :class:`ChromoformerBackbone` (only ``d_emb``, ``d_head`` and ``embed`` are used).
    task : {"reg", "clf"}
        ``reg``: output (batch,), log2(RPKM + 1); ``clf``: (batch, 2) logits.
    """

    def __init__(self, n_marks=7, architecture=None, resolutions=RESOLUTIONS, full_attention=False, task="reg"):
        super().__init__()
        if task not in ("reg", "clf"):
            raise ValueError(f"task must be 'reg' or 'clf', got {task!r}.")
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be >= 1, got {n_marks}.")
        arch = _architecture(architecture)
        self.n_marks, self.resolutions, self.task = int(n_marks), tuple(int(r) for r in resolutions), task
        self.architecture, self.full_attention = arch, bool(full_attention)
        e = arch["embed"]
        if e["d_model"] != arch["d_emb"]:
            raise ValueError("The embedding transformer's d_model must equal d_emb (the reference ties them).")
        self.embed = nn.ModuleDict(
            {
                str(r): EmbeddingTransformer(n_marks, e["n_layers"], e["n_heads"], arch["d_emb"], e["d_ff"])
                for r in self.resolutions
            }
        )
        self.d_embedding = arch["d_emb"] * len(self.resolutions)
        self.fc_head = _head(self.d_embedding, arch["d_head"], 1 if task == "reg" else 2)

    def embedding(self, full_attention=None, **inputs) -> torch.Tensor:
        """``cat_res(p_tss)``, shape (batch, 3 * d_emb)."""
        full = self.full_attention if full_attention is None else bool(full_attention)
        out = []
        for res in self.resolutions:
            if f"promoter_{res}" not in inputs:
                raise ValueError(
                    f"Chromoformer inputs lack promoter_{res}; build them with chromexp.models.chromoformer_inputs."
                )
            xp = inputs[f"promoter_{res}"]
            if xp.ndim != 3 or xp.shape[1] != self.n_marks:
                raise ValueError(
                    f"promoter_{res} must have shape (batch, {self.n_marks}, bins), got {tuple(xp.shape)}."
                )
            xp = xp.transpose(1, 2)
            emb = self.embed[str(res)]
            out.append(emb.forward_full(xp)[:, xp.shape[1] // 2] if full else emb.forward_tss(xp))
        return torch.cat(out, dim=1)

    def forward(self, full_attention=None, **inputs):
        """Prediction (batch,) for ``reg``, logits (batch, 2) for ``clf``."""
        out = self.fc_head(self.embedding(full_attention=full_attention, **inputs))
        return out.squeeze(-1) if self.task == "reg" else out


#: ``build_model``'s variants: the intact model and the Embedding-only ablation (Fig. 3b).
VARIANTS: tuple[str, ...] = ("full", "embedding_only")


def build_model(
    kind: str,
    n_marks: int,
    architecture: Mapping | None = None,
    full_attention: bool = False,
    resolutions: Sequence[int] = RESOLUTIONS,
    variant: str = "full",
):
    """``kind`` = "reg" | "clf" | "diff" -> the corresponding Chromoformer.

    ``resolutions`` are the bin sizes in concatenation order; experiments pass the dataset's
    (``signal.resolutions`` of the parameters, coarse to fine), the default is the reference's.
    ``variant="embedding_only"`` builds :class:`ChromoformerEmbeddingOnly` (``reg`` or ``clf``).
    """
    classes = {"reg": ChromoformerRegressor, "clf": ChromoformerClassifier, "diff": ChromoformerDiff}
    if kind not in classes:
        raise ValueError(f"Unknown Chromoformer kind {kind!r}; choose one of {sorted(classes)}.")
    if variant not in VARIANTS:
        raise ValueError(f"Unknown Chromoformer variant {variant!r}; choose one of {list(VARIANTS)}.")
    if variant == "embedding_only":
        if kind == "diff":
            raise ValueError("The Embedding-only ablation exists for reg and clf only.")
        return ChromoformerEmbeddingOnly(n_marks, architecture, resolutions, full_attention, task=kind)
    return classes[kind](
        n_marks=n_marks, architecture=architecture, resolutions=resolutions, full_attention=full_attention
    )


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (the published counts include the reference's unused tensors)."""
    return sum(p.numel() for p in model.parameters())


def load_reference_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Load a ``chromoformer==1.1.3`` state dict (``ckpt["net"]``) strictly; returns the model."""
    model.load_state_dict(state_dict, strict=True)
    return model


__all__ = [
    "RESOLUTIONS",
    "DEFAULT_ARCHITECTURE",
    "ChromoformerBackbone",
    "ChromoformerRegressor",
    "ChromoformerClassifier",
    "ChromoformerDiff",
    "ChromoformerEmbeddingOnly",
    "VARIANTS",
    "build_model",
    "count_parameters",
    "load_reference_state_dict",
    "sinusoidal_encoding",
]
