"""Input attributions of Chromoformer predictions at all three resolutions (paper Fig. 8).

Thin wrappers around captum (a maintained attribution library) rather than hand-written
methods: ``saliency`` (input gradient), ``input_x_gradient`` and ``integrated_gradients`` with a
*set* of baselines (averaged over them, as expected gradients / DeepLiftShap do, since a single
all-zero baseline is an arbitrary reference for log-depth signal). Attributions are computed for
the promoter-window inputs ``promoter_<res>`` of one mark at once (the three resolutions are
three captum inputs); pCRE inputs are held fixed.

:func:`ablation_check` compares per-region attribution sums with exhaustive ablation of the
same regions (the perturbation engine at level 0).

The locus file (paper Fig. 8): notebook 60 writes one ``attribution_<gene_id>.npz`` per cell type
with :func:`write_locus` and notebook 90 reads it with :func:`read_locus`; the keys are
:data:`LOCUS_KEYS` (required) and :data:`LOCUS_OPTIONAL_KEYS`, checked on both sides
(docs/data-formats.md, "Perturbation outputs"). :func:`locus_attributions` computes its maps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

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


# --------------------------------------------------------------------------------------------
# the locus file of Fig. 8 (written by notebook 60, drawn by notebook 90)
# --------------------------------------------------------------------------------------------
#: Required keys of ``attribution_<gene_id>.npz``; ``<r>`` stands for each entry of ``resolutions``.
#: ``resolution_<r>_grad_before/after``: the fold-averaged input attributions (``attribution`` names
#: the method) before and after ablating ``ablated_region`` (hg19, 0-based half-open [start, end));
#: ``resolution_<r>_signal``: the mark's input, strand-oriented bins of TSS ± ``half_window``.
LOCUS_KEYS: tuple[str, ...] = (
    "cell_type",
    "provenance",
    "gene_id",
    "chrom",
    "tss",
    "strand",
    "half_window",
    "resolutions",
    "resolution_<r>_signal",
    "resolution_<r>_grad_before",
    "resolution_<r>_grad_after",
    "ablated_region",
)
#: Optional keys. ``eqtl_positions`` (hg19, 0-based) and ``eqtl_pip``: the fine-mapped eQTLs of the
#: gene inside the window in the cell type's matched tissues (``eqtl_tissues``; empty when none is
#: matched, see ``eqtl_note``); ``<method>_<state>_<r>``: every computed attribution map.
LOCUS_OPTIONAL_KEYS: tuple[str, ...] = (
    "gene_name",
    "mark",
    "model",
    "attribution",
    "folds",
    "ablated_region_name",
    "ablated_offset_bp",
    "prediction_before",
    "prediction_after",
    "eqtl_positions",
    "eqtl_pip",
    "eqtl_tissues",
    "eqtl_note",
)


def locus_path(out_dir: str | Path, gene_id: str) -> Path:
    """``<out_dir>/attribution_<gene_id>.npz``: where notebook 60 writes a cell type's locus file."""
    return Path(out_dir) / f"attribution_{gene_id}.npz"


def missing_locus_keys(data: Mapping) -> list[str]:
    """The required keys (:data:`LOCUS_KEYS`, ``<r>`` expanded) that ``data`` lacks."""
    missing = [k for k in LOCUS_KEYS if "<r>" not in k and k not in data]
    if "resolutions" in data:
        for r in np.atleast_1d(np.asarray(data["resolutions"])).astype(int):
            missing += [
                k.replace("<r>", str(r)) for k in LOCUS_KEYS if "<r>" in k and k.replace("<r>", str(r)) not in data
            ]
    return missing


def write_locus(path: str | Path, data: Mapping) -> Path:
    """Write a locus file atomically (``numpy.savez_compressed``, keys in the order of ``data``).

    Raises
    ------
    ValueError
        ``data`` lacks a required key (nothing is written).
    """
    from ..utils import atomic_path

    path = Path(path)
    missing = missing_locus_keys(data)
    if missing:
        raise ValueError(f"{path}: the locus lacks key(s) {missing} (chromexp.analyses.attribution.LOCUS_KEYS).")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **data)
    return path


def read_locus(path: str | Path) -> dict:
    """Read one ``attribution_*.npz`` into a dict of Python scalars/arrays, checking the keys.

    ``resolutions`` becomes a list of int and ``path`` the file read. Raises ``ValueError``
    naming the file and the missing keys.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    missing = missing_locus_keys(data)
    if missing:
        raise ValueError(
            f"{path}: attribution file lacks key(s) {missing}; see chromexp.analyses.attribution.LOCUS_KEYS."
        )
    out = {k: (v.item() if v.ndim == 0 else v) for k, v in data.items()}
    out["resolutions"] = [int(r) for r in np.atleast_1d(data["resolutions"])]
    out["path"] = str(path)
    return out


def locus_attributions(
    models: Sequence[torch.nn.Module],
    before: Mapping[str, torch.Tensor],
    after: Mapping[str, torch.Tensor],
    methods: Sequence[str],
    baselines: Sequence[Mapping[str, torch.Tensor]] | None = None,
    n_steps: int = 32,
    mark_index: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Fold-averaged attribution maps of one gene before and after an ablation, and its predictions.

    Parameters
    ----------
    models : sequence of ChromoformerRegressor
        The fold models of one model (single-mark, or multi-mark with ``mark_index`` the mark mapped).
    before, after : dict of torch.Tensor
        One gene's inputs (first dimension 1), unperturbed and with the region ablated.
    mark_index : int
        The input mark whose attributions are returned (0 for a single-mark model).

    Returns
    -------
    maps : dict ``"<method>_<state>_<res>"`` -> numpy.ndarray, shape (L_res,)
        Mean over the fold models (``state`` = before | after).
    predictions : dict ``before`` / ``after`` -> float
        The fold models' mean predicted log2(RPKM + 1).
    """
    maps = {}
    for method in methods:
        for state, xin in (("before", before), ("after", after)):
            per_fold = [
                attribute(m, xin, method, baselines=baselines, n_steps=int(n_steps), mark_index=mark_index)
                for m in models
            ]
            for res in per_fold[0]:
                maps[f"{method}_{state}_{res}"] = np.mean([a[res][0] for a in per_fold], axis=0)
    with torch.no_grad():
        pred = {s: float(np.mean([m(**xx) for m in models])) for s, xx in (("before", before), ("after", after))}
    return maps, pred


def ablation_agreement(
    models: Sequence[torch.nn.Module],
    inputs: Mapping[str, torch.Tensor],
    region_list,
    methods: Sequence[str],
    n_steps: int = 32,
    device=None,
    mark_index: int = 0,
):
    """Do attributions agree with exhaustive ablation? One row per method (saliency has no sum rule).

    ``mark_index``: the input mark ablated and attributed (0 for a single-mark model).

    For the genes of ``inputs`` (one mark): the engine's level-0 effect of each region, averaged
    over the fold models, against the first-order prediction of the ablation from each method's
    fold-averaged attributions with the all-zero reference (ablation sets a region to 0)
    (:func:`ablation_check`: mean per-gene Spearman over regions, Pearson r over all pairs).

    Returns
    -------
    pandas.DataFrame
        ``method, mean_spearman, pearson, n_genes``.
    """
    import pandas as pd

    from .perturb import perturbation_predictions

    exhaustive = perturbation_predictions(models, inputs, region_list, (1.0, 0.0), mark_index=mark_index, device=device)
    exhaustive = exhaustive.effects[..., 1].mean(axis=0)  # (genes, regions), fold mean
    zero_ref = baseline_set(inputs, "zeros")
    rows = []
    for method in [m for m in methods if m != "saliency"]:
        per_fold = [
            attribute(m, inputs, method, baselines=zero_ref, n_steps=int(n_steps), mark_index=mark_index)
            for m in models
        ]
        avg = {res: np.mean([a[res] for a in per_fold], axis=0) for res in per_fold[0]}
        rows.append({"method": method, **ablation_check(avg, exhaustive, region_list)})
    return pd.DataFrame(rows, columns=["method", "mean_spearman", "pearson", "n_genes"])


__all__ = [
    "METHODS",
    "BASELINES",
    "baseline_set",
    "attribute",
    "region_sums",
    "ablation_check",
    "LOCUS_KEYS",
    "LOCUS_OPTIONAL_KEYS",
    "locus_path",
    "missing_locus_keys",
    "write_locus",
    "read_locus",
    "locus_attributions",
    "ablation_agreement",
]
