"""Inputs of the Chromoformer models: from a dataset, to/from the reference package's batches.

Our models take a flat dict of tensors (``model(**inputs)``, as ``chromexp.training.train.fit`` passes
them), for each resolution ``res`` of the dataset (``signal.resolutions`` in the parameters; the
keys in :func:`model_order`, coarse to fine, as the reference concatenates them):

* ``promoter_<res>``: float32 (batch, n_marks, L) strand-oriented promoter bins over the
  dataset's window (TSS ± ``signal.half_window``);
* ``pcre_<res>``: float32 (batch, slots, n_marks, L) pCRE bins, centred, zero-padded;
* ``pcre_mask_<res>``: bool (batch, slots, L), True = padding (an all-True row = empty slot);

and ``freq``: float32 (batch, slots), the normalised interaction frequencies.

The reference package (``chromoformer==1.1.3``) takes per-resolution dicts of channel-last
tensors with square masks; :func:`to_reference_batch` / :func:`from_reference_batch` convert
between the two layouts exactly (used by the equality tests and the benchmark).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from .chromoformer import RESOLUTIONS


def n_bins(resolution: int, window: int) -> int:
    """Bins of ``resolution`` bp in a window of ``window`` bp (2 × the dataset's half window)."""
    return int(window) // int(resolution)


def model_order(resolutions: Sequence[int]) -> tuple[int, ...]:
    """Resolutions in the order the model concatenates their embeddings: coarse to fine (as the reference)."""
    return tuple(sorted((int(r) for r in resolutions), reverse=True))


def resolutions_of(inputs: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
    """The resolutions of an input dict, in its key order (``promoter_<res>`` keys)."""
    return tuple(int(k.split("_", 1)[1]) for k in inputs if k.startswith("promoter_"))


def input_names(resolutions: Sequence[int]) -> list[str]:
    """The keys of an input dict, in a fixed order."""
    return [f"{n}_{r}" for r in resolutions for n in ("promoter", "pcre", "pcre_mask")] + ["freq"]


def dataset_inputs(dataset, marks: Sequence[str] | None = None, index=None, resolutions=None) -> dict:
    """Model inputs for (a subset of) the genes of a ``chromexp.data.dataset.CellDataset``.

    Parameters
    ----------
    dataset : CellDataset
        Provides ``promoter(marks, resolution, half_window)``, ``pcres(marks, resolution)``,
        ``resolutions`` and ``half_window`` (from the parameters it was built with).
    marks : sequence of str, optional
        Input marks (default: all of the dataset's marks), in the dataset's mark order.
    index : array of int, optional
        Genes to keep (rows of ``dataset.genes``); default all.
    resolutions : sequence of int, optional
        Default: the dataset's resolutions in :func:`model_order`.

    Returns
    -------
    dict of torch.Tensor
        See the module docstring; the first dimension is the number of selected genes.
    """
    out = {}
    freq = None
    half_window = int(dataset.half_window)
    for res in model_order(dataset.resolutions) if resolutions is None else resolutions:
        prom = np.asarray(dataset.promoter(marks, resolution=res, half_window=half_window, genes=index))
        x, pad, f, _ = dataset.pcres(marks, resolution=res, genes=index)
        if prom.shape[-1] != n_bins(res, 2 * half_window) or x.shape[-1] != n_bins(res, 2 * half_window):
            raise ValueError(
                f"The dataset's {res}-bp inputs have {prom.shape[-1]} promoter / {x.shape[-1]} pCRE bins; "
                f"Chromoformer needs {n_bins(res, 2 * half_window)} (TSS ± {half_window} bp)."
            )
        if not (np.isfinite(prom).all() and np.isfinite(x).all()):
            raise ValueError(f"The dataset's {res}-bp Chromoformer inputs contain non-finite values.")
        out[f"promoter_{res}"] = torch.as_tensor(prom, dtype=torch.float32)
        out[f"pcre_{res}"] = torch.as_tensor(x, dtype=torch.float32)
        out[f"pcre_mask_{res}"] = torch.as_tensor(pad, dtype=torch.bool)
        freq = f
    out["freq"] = torch.as_tensor(freq, dtype=torch.float32)
    return out


def crop_promoter(inputs: Mapping[str, torch.Tensor], window: int, log_base: float = math.e) -> dict:
    """The inputs with every ``promoter_<res>`` cut to a central window of ``window`` bp (the window study).

    Where ``window / 2`` is a multiple of ``res`` the stored bins are cropped as they are (bins
    ``L/2 − k … L/2 + k − 1``, ``k = window / (2 res)``). Otherwise (e.g. 2 and 10 kb at 2,000 bp: a
    single bin [−1, +1) kb, or five bins from −5 kb) the window's bins are rebuilt from the finest
    resolution of ``inputs`` whose bins tile them: each stored value ``log_b(mean + 1)`` is turned
    back into a mean depth, the means of the ``res / finest`` bins are averaged (equal lengths, so
    this is the mean over the new bin) and logged again, in float64, rounded once to float32. Both
    equal binning the window afresh (tests/test_window_crops.py: bedtools oracle). pCRE inputs and
    frequencies are kept as they are: the pCRE window stays at the stored one (the reference's
    ``w_max``; the paper does not say whether its window study changed it).

    Parameters
    ----------
    inputs : mapping of str to torch.Tensor
        As :func:`dataset_inputs` (``promoter_<res>`` (batch, marks, L_res), strand-oriented, TSS
        between bins ``L/2 − 1`` and ``L/2``).
    window : int
        The new promoter window (bp), ``2 · half window``; a multiple of every resolution and at
        most the stored window.
    log_base : float
        The base of the stored values (``chromexp.signal.log_base_value(params["signal"]["log_base"])``).

    Returns
    -------
    dict of torch.Tensor
        ``promoter_<res>`` of shape (batch, marks, window // res); the other keys unchanged (same tensors).
    """
    window = int(window)
    res_all = resolutions_of(inputs)
    if not res_all:
        raise ValueError("crop_promoter: the inputs have no promoter_<res> tensors.")
    out = dict(inputs)
    half = window // 2
    for res in res_all:
        xp = inputs[f"promoter_{res}"]
        stored = xp.shape[-1] * res
        if window <= 0 or window % 2 or window % res or window > stored:
            raise ValueError(
                f"window {window} bp must be even, a multiple of every resolution ({res} bp) and <= the stored "
                f"window ({stored} bp)."
            )
        centre = xp.shape[-1] // 2
        if half % res == 0:
            k = half // res
            out[f"promoter_{res}"] = xp[..., centre - k : centre + k]
            continue
        fine = [r for r in res_all if res % r == 0 and half % r == 0]
        if not fine:
            raise ValueError(
                f"A {window} bp window at {res} bp is not aligned with the stored bins and no finer resolution "
                f"of {sorted(res_all)} tiles it; cannot build it from these inputs."
            )
        f = min(fine)
        xf = inputs[f"promoter_{f}"]
        k, cf = half // f, xf.shape[-1] // 2
        ln_b = math.log(float(log_base))
        depth = torch.expm1(xf[..., cf - k : cf + k].double() * ln_b)
        depth = depth.reshape(*depth.shape[:-1], window // res, res // f).mean(-1)
        out[f"promoter_{res}"] = (torch.log1p(depth) / ln_b).to(xp.dtype)
    return out


def select_marks(inputs: Mapping[str, torch.Tensor], index: Sequence[int]) -> dict:
    """Keep the marks ``index`` (positions along the mark axis) of an input dict."""
    idx = torch.as_tensor(list(index), dtype=torch.long)
    out = {}
    for key, value in inputs.items():
        if key.startswith("promoter_"):
            out[key] = value[:, idx]
        elif key.startswith("pcre_") and not key.startswith("pcre_mask_"):
            out[key] = value[:, :, idx]
        else:
            out[key] = value
    return out


def subset(inputs: Mapping[str, torch.Tensor], index) -> dict:
    """Rows ``index`` of every tensor of an input dict."""
    return {k: v[index] for k, v in inputs.items()}


def random_inputs(
    batch: int,
    n_marks: int = 7,
    n_pcres: Sequence[int] | None = None,
    max_pcres: int = 8,
    resolutions: Sequence[int] = RESOLUTIONS,
    seed: int = 0,
    window: int | None = None,
) -> dict:
    """Random inputs with the structure of real ones (for tests and benchmarks).

    Each gene has ``n_pcres[i]`` pCREs (default uniform 0..max_pcres) of random length
    (2.5–100 % of ``window``; a smaller ``window`` gives fewer bins, for fast tests); each pCRE's bins are centred with left pad = ceil, right pad = floor, the padding
    is zero and masked, empty slots are all zero and fully masked (docs/methods.md, "pCREs"). Values are
    ln(1 + Gamma) like binned depths.
    """
    rng = np.random.default_rng(seed)
    if n_pcres is None:
        n_pcres = rng.integers(0, max_pcres + 1, size=batch)
    n_pcres = np.asarray(n_pcres, dtype=int)
    if n_pcres.shape != (batch,) or n_pcres.min(initial=0) < 0 or n_pcres.max(initial=0) > max_pcres:
        raise ValueError(f"n_pcres must be {batch} integers in [0, {max_pcres}].")
    if window is None:
        raise ValueError("random_inputs needs window= (bp; a dataset's is 2 × signal.half_window).")
    lengths = rng.integers(window // 40, window + 1, size=(batch, max_pcres))
    out = {}
    for res in resolutions:
        length = n_bins(res, window)
        out[f"promoter_{res}"] = torch.as_tensor(
            np.log1p(rng.gamma(0.5, 2.0, (batch, n_marks, length))), dtype=torch.float32
        )
        x = np.zeros((batch, max_pcres, n_marks, length), dtype=np.float32)
        pad = np.ones((batch, max_pcres, length), dtype=bool)
        for i in range(batch):
            for j in range(n_pcres[i]):
                nb = min(math.ceil(lengths[i, j] / res), length)
                left = math.ceil((length - nb) / 2)
                x[i, j, :, left : left + nb] = np.log1p(rng.gamma(0.5, 2.0, (n_marks, nb)))
                pad[i, j, left : left + nb] = False
        out[f"pcre_{res}"] = torch.as_tensor(x)
        out[f"pcre_mask_{res}"] = torch.as_tensor(pad)
    freq = np.where(np.arange(max_pcres)[None] < n_pcres[:, None], rng.uniform(1.5, 5.0, (batch, max_pcres)), 0.0)
    out["freq"] = torch.as_tensor(freq, dtype=torch.float32)
    return out


def to_reference_batch(inputs: Mapping[str, torch.Tensor], resolutions: Sequence[int] | None = None) -> dict:
    """Our inputs -> the keyword arguments of ``chromoformer.net.ChromoformerBase.forward``.

    The reference masks are square: promoter (B, 1, 1, L, L) all False (a promoter window is
    never padded); pCRE (B, S, 1, L, L) with rows = promoter bins and columns = the pCRE's
    padding; interaction (B, 1, 1+S, 1+S) = ~(valid_i & valid_j); frequencies (B, 1+S, 1+S) in
    row 0. Requires the non-empty slots to come first (as the reference dataset fills them).
    """
    resolutions = resolutions_of(inputs) if resolutions is None else resolutions
    freq = inputs["freq"]
    b, s = freq.shape
    batch = {
        k: {} for k in ("promoter_feats", "promoter_pad_masks", "pcre_feats", "pcre_pad_masks", "interaction_masks")
    }
    for res in resolutions:
        xp, xc, pad = inputs[f"promoter_{res}"], inputs[f"pcre_{res}"], inputs[f"pcre_mask_{res}"]
        length = xp.shape[-1]
        valid = ~pad.all(-1)
        n = valid.sum(1)
        if not torch.equal(valid, torch.arange(s, device=valid.device)[None] < n[:, None]):
            raise ValueError("The reference needs the non-empty pCRE slots first.")
        batch["promoter_feats"][res] = xp.transpose(1, 2).unsqueeze(1).contiguous()
        batch["promoter_pad_masks"][res] = torch.zeros(b, 1, 1, length, length, dtype=torch.bool)
        batch["pcre_feats"][res] = xc.transpose(2, 3).contiguous()
        batch["pcre_pad_masks"][res] = pad[:, :, None, None, :].expand(b, s, 1, length, length).contiguous()
        tok = torch.cat([torch.ones(b, 1, dtype=torch.bool), valid], dim=1)
        batch["interaction_masks"][res] = (~(tok[:, :, None] & tok[:, None, :])).unsqueeze(1)
    f = torch.zeros(b, s + 1, s + 1, dtype=freq.dtype)
    f[:, 0, 1:] = freq
    batch["interaction_freq"] = f
    return batch


def from_reference_batch(batch: Mapping, resolutions: Sequence[int] | None = None) -> dict:
    """A batch of ``chromoformer.data.ChromoformerDataset`` items -> our inputs.

    The pCRE padding is read from the TSS row of the reference's square pCRE mask; the
    frequencies from row 0 of ``interaction_freq``.
    """
    out = {}
    for res in model_order(batch["promoter_feats"]) if resolutions is None else resolutions:
        xp = batch["promoter_feats"][res]  # (B, 1, L, m)
        if batch["promoter_pad_masks"][res].any():
            raise ValueError("Padded promoter windows are not supported (a promoter window is never padded).")
        length = xp.shape[2]
        out[f"promoter_{res}"] = xp[:, 0].transpose(1, 2).contiguous()
        out[f"pcre_{res}"] = batch["pcre_feats"][res].transpose(2, 3).contiguous()
        out[f"pcre_mask_{res}"] = batch["pcre_pad_masks"][res][:, :, 0, length // 2, :].contiguous()
    out["freq"] = batch["interaction_freq"][:, 0, 1:].float().contiguous()
    return out
