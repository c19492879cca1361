"""Input attributions of Chromoformer predictions at all three resolutions (paper Fig. 8).

Thin wrappers around captum (a maintained attribution library) rather than hand-written
methods: ``saliency`` (input gradient), ``input_x_gradient`` and ``integrated_gradients`` with a
*set* of baselines (averaged over them, as expected gradients / DeepLiftShap do, since a single
all-zero baseline is an arbitrary reference for log-depth signal). Attributions are computed for
the promoter-window inputs ``promoter_<res>`` of one mark at once (the three resolutions are
three captum inputs); pCRE inputs are held fixed.

:func:`ablation_check` compares per-region attribution sums with exhaustive ablation of the
same regions (the perturbation engine at level 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..models import chromoformer as cf

METHODS: tuple[str, ...] = ("saliency", "input_x_gradient", "integrated_gradients")
BASELINES: tuple[str, ...] = ("zeros", "mean", "genes")


def _keys(inputs: Mapping[str, torch.Tensor]) -> list[str]:
    keys = [f"promoter_{r}" for r in cf.RESOLUTIONS if f"promoter_{r}" in inputs]
    if not keys:
        raise ValueError("Attribution needs promoter_<res> inputs (chromoformer_inputs layout).")
    return keys


class _Forward(torch.nn.Module):
    """``f(promoter_2000, promoter_500, promoter_100, *others)`` for captum: the model's prediction."""

    def __init__(self, model, keys, other_keys):
        super().__init__()
        self.model, self.keys, self.other_keys = model, keys, other_keys

    def forward(self, *args):
        n = len(self.keys)
        x = dict(zip(self.keys, args[:n], strict=True))
        x.update(dict(zip(self.other_keys, args[n:], strict=True)))
        return self.model(**x)


def baseline_set(
    inputs: Mapping[str, torch.Tensor], kind: str = "mean", n: int = 8, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """Reference inputs for integrated gradients, each a dict ``promoter_<res>`` -> (1, marks, L).

    ``zeros``: all-zero signal; ``mean``: the per-bin mean over ``inputs``' genes; ``genes``:
    ``n`` other genes' promoter profiles drawn with ``seed`` (a distribution of references).
    """
    keys = _keys(inputs)
    if kind == "zeros":
        return [{k: torch.zeros_like(inputs[k][:1]) for k in keys}]
    if kind == "mean":
        return [{k: inputs[k].mean(dim=0, keepdim=True) for k in keys}]
    if kind == "genes":
        g = torch.Generator().manual_seed(int(seed))
        n_genes = inputs[keys[0]].shape[0]
        idx = torch.randperm(n_genes, generator=g)[: int(n)]
        return [{k: inputs[k][i : i + 1] for k in keys} for i in idx.tolist()]
    raise ValueError(f"Unknown baseline kind {kind!r}; choose one of {BASELINES}.")


def attribute(
    model: torch.nn.Module,
    inputs: Mapping[str, torch.Tensor],
    method: str = "integrated_gradients",
    baselines: Sequence[Mapping[str, torch.Tensor]] | None = None,
    n_steps: int = 32,
    mark_index: int | None = None,
) -> dict[int, np.ndarray]:
    """Attributions of the prediction to each promoter-window bin, per resolution.

    Parameters
    ----------
    model : ChromoformerRegressor
    inputs : dict of torch.Tensor
        Inputs of the genes to explain (first dimension = genes); CPU tensors.
    method : {"saliency", "input_x_gradient", "integrated_gradients"}
        ``saliency`` is the signed gradient (captum ``Saliency(abs=False)``).
    baselines : list of dicts, optional
        Integrated-gradients references (:func:`baseline_set`); attributions are averaged over
        them. Default: the per-bin mean of ``inputs``.
    n_steps : int
        Integration steps (Gauss–Legendre, captum's default rule).
    mark_index : int, optional
        Keep only this mark's attributions (default: all marks).

    Returns
    -------
    dict res -> numpy.ndarray, shape (n_genes, n_marks, L_res) (or (n_genes, L_res) with
    ``mark_index``), float64
    """
    from captum.attr import InputXGradient, IntegratedGradients, Saliency

    if method not in METHODS:
        raise ValueError(f"Unknown attribution method {method!r}; choose one of {METHODS}.")
    keys = _keys(inputs)
    others = [k for k in inputs if k not in keys]
    was = model.training
    model.eval()
    fwd = _Forward(model, keys, others)
    x = tuple(inputs[k].detach().clone().requires_grad_(True) for k in keys)
    extra = tuple(inputs[k] for k in others)
    try:
        if method == "saliency":
            attr = Saliency(fwd).attribute(x, additional_forward_args=extra, abs=False)
        elif method == "input_x_gradient":
            attr = InputXGradient(fwd).attribute(x, additional_forward_args=extra)
        else:
            refs = baselines if baselines is not None else baseline_set(inputs, "mean")
            if not refs:
                raise ValueError("Integrated gradients needs at least one baseline.")
            ig = IntegratedGradients(fwd)
            total = None
            for ref in refs:
                b = tuple(ref[k].expand_as(inputs[k]) for k in keys)
                a = ig.attribute(x, baselines=b, additional_forward_args=extra, n_steps=int(n_steps))
                total = a if total is None else tuple(t + u for t, u in zip(total, a, strict=True))
            attr = tuple(t / len(refs) for t in total)
    finally:
        model.train(was)
    out = {}
    for k, a in zip(keys, attr, strict=True):
        arr = a.detach().double().numpy()
        out[int(k.split("_")[1])] = arr[:, mark_index] if mark_index is not None else arr
    return out


def region_sums(attr: Mapping[int, np.ndarray], region_list, resolution: int) -> np.ndarray:
    """Sum of a resolution's attributions (n_genes, L) over each region: (n_genes, n_regions)."""
    a = np.asarray(attr[resolution])
    if a.ndim != 2:
        raise ValueError("region_sums needs single-mark attributions of shape (n_genes, L).")
    return np.stack([a[:, r.bins[resolution]].sum(axis=1) for r in region_list], axis=1)


def ablation_check(attr: Mapping[int, np.ndarray], ablation_effects: np.ndarray, region_list) -> dict[str, float]:
    """Agreement of attributions with exhaustive ablation, per gene then averaged.

    ``ablation_effects`` (n_genes, n_regions): prediction with the region's signal set to 0
    minus the unperturbed prediction. A first-order (gradient × input) explanation predicts
    ``-sum(attr over region, all resolutions)`` for it. Returns the mean over genes of the
    Spearman correlation between the two across regions, and the overall Pearson r.
    """
    from scipy.stats import pearsonr, spearmanr

    pred = -sum(region_sums(attr, region_list, res) for res in attr)
    rhos = [spearmanr(p, e)[0] for p, e in zip(pred, ablation_effects, strict=True) if np.ptp(e) > 0 and np.ptp(p) > 0]
    r = pearsonr(pred.ravel(), ablation_effects.ravel())[0] if np.ptp(pred) > 0 else np.nan
    return {"mean_spearman": float(np.mean(rhos)) if rhos else np.nan, "pearson": float(r), "n_genes": len(rhos)}


__all__ = ["METHODS", "BASELINES", "baseline_set", "attribute", "region_sums", "ablation_check"]
