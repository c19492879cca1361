"""In silico perturbation of trained Chromoformer models (notebook 60; paper Fig. 6).

The experiment of Murphy et al. (2024): scale one histone mark's log-transformed input by a
level p in {1.0, 0.9, ..., 0.0} over one region of the TSS ± 20 kb window, predict expression
with all four fold models of a single-mark Chromoformer, and report the fold-averaged change

    effect(gene, region, p) = mean_folds[ f(x with region scaled by p) - f(x) ],

a log2 fold change of predicted RPKM + 1 (the models predict log2(RPKM + 1)). We never divide
by a perturbed prediction (a ratio of predictions is unstable near 0 and not a fold change of
expression).

Regions (:func:`regions`):

* ``promoter``: at 2000 bp the bins 8–11 (TSS ± 4 kb); at 500 / 100 bp the bins covering
  TSS ± ``promoter_flank`` (paper: 3 kb, the promoter CNN's window). With the paper's 3 kb the
  100/500-bp bins between 3 and 4 kb from the TSS belong to no region (they are scaled by
  neither the promoter nor a distal perturbation); ``promoter_flank=4000`` makes the regions a
  partition of every resolution.
* ``distal_<k>``: each other 2 kb bin k (0–7 upstream, 12–19 downstream, bin 0 most upstream in
  transcription orientation), scaled consistently at all three resolutions (the 4 bins at
  500 bp and 20 bins at 100 bp inside it).

The engine (:func:`perturbation_predictions`) evaluates many (region, level) variants of each
gene in one forward pass, with the inputs on the device and the model's exact TSS-only path; the
unperturbed prediction (level 1.0) is computed once per gene and fold. :func:`ablate_pcres`
removes each pcHi-C pCRE in turn (its slot becomes an empty, fully masked slot).
:func:`effects_table` / :func:`pcre_table` turn the raw results into the tidy tables of
notebook 60; their summaries (Fig. 6 level curves, effect by distance, decay length) are
:mod:`chromexp.analyses.effects`, shared with notebook 90. :func:`recovery` scores effects against
the simulator's planted enhancers (semi-synthetic data only). The fold models come from
:func:`chromexp.experiments.perturbation.fold_models` (notebook 40's checkpoints, or the missing
(mark, fold) models trained with the same recipe).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..constants import PERTURBATION_GEOMETRIES
from ..models import chromoformer as cf
from ..results import EFFECT_COLUMNS, PCRE_COLUMNS
from ..utils import get_logger

log = get_logger("chromexp.analyses.perturb")

#: Levels of the study: 1.0, 0.9, ..., 0.0 (the fraction of the log-transformed signal kept).
LEVELS: tuple[float, ...] = tuple(round(1.0 - i / 10, 1) for i in range(11))
#: Size of a perturbed distal region (bp): one bin of the 2000-bp resolution.
REGION_BP = 2000
#: The study's input window, TSS ± 20 kb (``signal.half_window`` = 20,000): the default of the region
#: helpers for tests and benchmarks; notebook 60 passes its dataset's window (``2 * ds.half_window``).
STUDY_WINDOW = 40_000


# --------------------------------------------------------------------------------------------
# regions
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Region:
    """One perturbed region: its name, kind, 2 kb position and bins at each resolution.

    ``bins[res]`` is a ``slice`` of the strand-oriented bins of the ``res``-bp input;
    ``offset`` = (start, end) in bp relative to the window start (TSS - 20 kb), oriented.
    """

    name: str
    kind: str
    position: int
    offset: tuple[int, int]
    bins: Mapping[int, slice] = field(hash=False)
    window: int = STUDY_WINDOW

    @property
    def distance(self) -> int:
        """Signed distance (bp) from the TSS to the region's centre, transcription orientation."""
        return (self.offset[0] + self.offset[1]) // 2 - self.window // 2


#: ``perturbation.geometry``: which 2 kb bins are the promoter (docs/deviations.md, "In silico perturbation").
GEOMETRIES: tuple[str, ...] = PERTURBATION_GEOMETRIES


def regions(
    promoter_flank: int = 3000,
    resolutions: Sequence[int] = cf.RESOLUTIONS,
    window: int = STUDY_WINDOW,
    region_bp: int = REGION_BP,
    geometry: str = "chromexp",
) -> list[Region]:
    """The promoter and the distal 2 kb regions of the study (module docstring).

    Parameters
    ----------
    promoter_flank : int
        TSS ± this many bp is the promoter at the resolutions finer than ``region_bp`` (paper:
        3000).
    resolutions : sequence of int
        Bin sizes of the model inputs.
    window : int
        Input window in bp (2 × the dataset's ``half_window``; notebook 60 passes the dataset's).
    geometry : str
        Which ``region_bp`` bins are the promoter. ``chromexp`` (default): bins 8-11 of 20 (TSS ±
        4 kb, symmetric), 16 distal positions. ``reference``: the chromexpress code's bins 8-10
        (−4 to +2 kb: the centre 3 bins it takes for "the 6 kb receptive field"), so position 11
        (+2 to +4 kb) is a 17th distal position; at the finer resolutions its 100/500 bp bins
        between +2 and +3 kb then belong to both the promoter and distal_11, as in the reference.

    Returns
    -------
    list of Region
        ``promoter`` first, then ``distal_00`` … ``distal_19`` without the promoter positions.
    """
    half = window // 2
    n_pos = window // region_bp
    if geometry == "chromexp":
        promoter_pos = range(n_pos // 2 - 2, n_pos // 2 + 2)  # bins 8-11 of 20
    elif geometry == "reference":
        promoter_pos = range(n_pos // 2 - 2, n_pos // 2 + 1)  # bins 8-10 of 20 (chromexpress)
    else:
        raise ValueError(f"perturbation.geometry must be one of {list(GEOMETRIES)}, got {geometry!r}.")
    for res in resolutions:
        if region_bp % res or window % res or (res < region_bp and promoter_flank % res):
            raise ValueError(f"Resolution {res} bp must divide {region_bp}, the window and the promoter flank.")
    if not 0 < promoter_flank <= 2 * region_bp:
        raise ValueError(f"promoter_flank must be in (0, {2 * region_bp}] bp, got {promoter_flank}.")
    out = []
    p_bins = {}
    for res in resolutions:
        if res == region_bp:
            p_bins[res] = slice(promoter_pos[0], promoter_pos[-1] + 1)
        else:
            p_bins[res] = slice((half - promoter_flank) // res, (half + promoter_flank) // res)
    p_span = (promoter_pos[0] * region_bp, (promoter_pos[-1] + 1) * region_bp)
    out.append(Region("promoter", "promoter", -1, p_span, p_bins, window))
    for k in range(n_pos):
        if k in promoter_pos:
            continue
        a, b = k * region_bp, (k + 1) * region_bp
        out.append(
            Region(
                f"distal_{k:02d}", "distal", k, (a, b), {res: slice(a // res, b // res) for res in resolutions}, window
            )
        )
    return out


def region_scales(
    region_list: Sequence[Region], levels: Sequence[float], resolutions: Sequence[int] = cf.RESOLUTIONS
) -> dict[int, torch.Tensor]:
    """Multiplicative masks of every (region, level) variant, region-major.

    Returns
    -------
    dict res -> torch.Tensor, shape (n_regions * n_levels, L_res)
        1 outside the region, ``level`` inside it.
    """
    out = {}
    windows = {r.window for r in region_list}
    if len(windows) != 1:
        raise ValueError(f"The regions come from different windows {sorted(windows)}.")
    window = windows.pop()
    for res in resolutions:
        length = window // res
        s = torch.ones(len(region_list), len(levels), length)
        for i, r in enumerate(region_list):
            s[i, :, r.bins[res]] = torch.as_tensor(list(levels), dtype=torch.float32)[:, None]
        out[res] = s.reshape(-1, length)
    return out


def perturb_inputs(inputs: Mapping[str, torch.Tensor], region: Region, level: float, mark_index: int = 0) -> dict:
    """A copy of ``inputs`` with ``mark_index``'s promoter bins of ``region`` multiplied by ``level``.

    The brute-force edit the engine must reproduce (pCRE inputs are never perturbed).
    """
    out = dict(inputs)
    for key, value in inputs.items():
        if key.startswith("promoter_"):
            res = int(key.split("_")[1])
            x = value.clone()
            x[:, mark_index, region.bins[res]] *= level
            out[key] = x
    return out


def region_table(genes: pd.DataFrame, region_list: Sequence[Region]) -> pd.DataFrame:
    """hg19 interval (0-based, half-open) and signed distance of every (gene, region).

    ``genes`` needs ``gene_id, chrom, tss, strand``; the window is [TSS - 20 kb, TSS + 20 kb)
    in genomic coordinates, oriented (reversed) for minus-strand genes as the dataset's bins.
    """
    tss = genes["tss"].to_numpy(np.int64)
    minus = genes["strand"].to_numpy() == "-"
    rows = []
    for r in region_list:
        half = r.window // 2
        a, b = r.offset
        start = np.where(minus, tss + half - b, tss - half + a)
        rows.append(
            pd.DataFrame(
                {
                    "gene_id": genes["gene_id"].to_numpy(),
                    "region": r.name,
                    "region_kind": r.kind,
                    "position": r.position,
                    "distance": r.distance,
                    "chrom": genes["chrom"].to_numpy(),
                    "start": start,
                    "end": start + (b - a),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------
def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _check_models(models: Sequence[torch.nn.Module]) -> None:
    if not models:
        raise ValueError("No models given: pass the fold models of one mark set.")
    for m in models:
        if not isinstance(m, cf.ChromoformerRegressor) or isinstance(m, cf.ChromoformerClassifier):
            raise ValueError(f"Perturbation needs Chromoformer regressors (log2 expression); got {type(m).__name__}.")


@torch.no_grad()
def _predict(models, inputs, batch_size, device) -> np.ndarray:
    """(n_models, n_rows) predictions of inputs already on ``device``."""
    n = inputs["freq"].shape[0]
    out = np.empty((len(models), n), dtype=np.float64)
    for f, model in enumerate(models):
        for a in range(0, n, batch_size):
            xb = {k: v[a : a + batch_size] for k, v in inputs.items()}
            out[f, a : a + batch_size] = model(**xb).double().cpu().numpy()
    return out


class _Models:
    """Put models on a device in eval mode; restore their device and mode afterwards."""

    def __init__(self, models, device):
        self.models, self.device = list(models), device
        self.state = [(next(m.parameters()).device, m.training) for m in self.models]

    def __enter__(self):
        for m in self.models:
            m.to(self.device).eval()
        return self.models

    def __exit__(self, *exc):
        for m, (dev, training) in zip(self.models, self.state, strict=True):
            m.to(dev).train(training)


@dataclass
class PerturbationResult:
    """Raw engine output: per fold, gene, region and level."""

    predictions: np.ndarray  # (n_folds, n_genes, n_regions, n_levels), float64
    baseline: np.ndarray  # (n_folds, n_genes): the unperturbed predictions
    regions: list[Region]
    levels: tuple[float, ...]

    @property
    def effects(self) -> np.ndarray:
        """Prediction at each level minus the unperturbed one (log2 fold change), same shape."""
        return self.predictions - self.baseline[:, :, None, None]


def perturbation_predictions(
    models: Sequence[torch.nn.Module],
    inputs: Mapping[str, torch.Tensor],
    region_list: Sequence[Region] | None = None,
    levels: Sequence[float] = LEVELS,
    *,
    mark_index: int = 0,
    batch_size: int = 1024,
    device=None,
    progress: bool = False,
) -> PerturbationResult:
    """Predict every gene under every (region, level) variant with every fold model.

    The variants of a chunk of genes are built on the device by one broadcast multiply (input ×
    region-level mask) and predicted in batches of ``batch_size`` rows through the model's exact
    TSS-only path; level 1.0 is not re-predicted (scaling by 1.0 leaves the input bitwise
    unchanged, so its prediction *is* the unperturbed one).

    Parameters
    ----------
    models : sequence of ChromoformerRegressor
        Typically the four fold models of one single-mark Chromoformer.
    inputs : dict of torch.Tensor
        ``chromoformer_inputs`` layout for the genes to perturb (first dimension = genes).
    region_list : sequence of Region, optional
        Default :func:`regions` ().
    levels : sequence of float
        Fractions of the log-transformed signal kept (default 1.0, 0.9, …, 0.0).
    mark_index : int
        Which input mark to scale (0 for a single-mark model).
    batch_size : int
        Rows (gene variants) per forward pass.
    device : str, torch.device or None
        ``None`` = CUDA if available. Models are restored to their device and mode afterwards.

    Returns
    -------
    PerturbationResult
    """
    _check_models(models)
    region_list = list(region_list) if region_list is not None else regions()
    levels = tuple(float(p) for p in levels)
    if not levels or any(not 0.0 <= p <= 1.0 for p in levels):
        raise ValueError(f"levels must be fractions in [0, 1]; got {levels}.")
    n_marks = inputs["promoter_100"].shape[1] if "promoter_100" in inputs else None
    if n_marks is not None and not 0 <= mark_index < n_marks:
        raise ValueError(f"mark_index {mark_index} is out of range for {n_marks} input mark(s).")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    dev = _device(device)
    resolutions = [int(k.split("_")[1]) for k in inputs if k.startswith("promoter_")]
    x = {k: v.to(dev) for k, v in inputs.items()}
    n_genes = x["freq"].shape[0]
    todo = [j for j, p in enumerate(levels) if p != 1.0]
    scales = {res: s.to(dev) for res, s in region_scales(region_list, [levels[j] for j in todo], resolutions).items()}
    n_var = len(region_list) * len(todo)
    preds = np.empty((len(models), n_genes, len(region_list), len(levels)), dtype=np.float64)
    with _Models(models, dev) as ms:
        base = _predict(ms, x, batch_size, dev)
        genes_per_chunk = max(1, int(batch_size) // max(n_var, 1))
        chunks = range(0, n_genes, genes_per_chunk)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="perturbation", unit="chunk")
        for a in chunks:
            g = torch.arange(a, min(a + genes_per_chunk, n_genes), device=dev)
            rows = g.repeat_interleave(n_var)
            xb = {}
            for k, v in x.items():
                if k.startswith("promoter_"):
                    res = int(k.split("_")[1])
                    xv = v[g].unsqueeze(1).repeat(1, n_var, 1, 1)  # (G, V, m, L)
                    xv[:, :, mark_index] *= scales[res]
                    xb[k] = xv.reshape(-1, *v.shape[1:])
                else:
                    xb[k] = v[rows]
            if n_var:
                out = _predict(ms, xb, int(batch_size), dev).reshape(len(ms), len(g), len(region_list), len(todo))
                preds[:, a : a + len(g)][..., todo] = out
    for j, p in enumerate(levels):
        if p == 1.0:
            preds[..., j] = base[:, :, None]
    return PerturbationResult(predictions=preds, baseline=base, regions=region_list, levels=levels)


def naive_perturbation(
    models: Sequence[torch.nn.Module],
    inputs: Mapping[str, torch.Tensor],
    region_list: Sequence[Region],
    levels: Sequence[float] = LEVELS,
    *,
    mark_index: int = 0,
    batch_size: int = 64,
    full_attention: bool | None = None,
) -> np.ndarray:
    """The reference's loop: one prediction pass per (fold, region, level), batches of 64.

    Edits the inputs on the CPU with :func:`perturb_inputs` and predicts every level (1.0
    included) separately. The oracle of the tests and the baseline of the benchmark.

    Returns
    -------
    numpy.ndarray, shape (n_folds, n_genes, n_regions, n_levels)
    """
    n = inputs["freq"].shape[0]
    out = np.empty((len(models), n, len(region_list), len(levels)))
    with torch.no_grad():
        for f, model in enumerate(models):
            was = model.training
            model.eval()
            for i, r in enumerate(region_list):
                for j, p in enumerate(levels):
                    xp = perturb_inputs(inputs, r, p, mark_index)
                    for a in range(0, n, batch_size):
                        xb = {k: v[a : a + batch_size] for k, v in xp.items()}
                        out[f, a : a + batch_size, i, j] = model(full_attention=full_attention, **xb).double().numpy()
            model.train(was)
    return out


def remove_pcre(inputs: Mapping[str, torch.Tensor], slot: int) -> dict:
    """A copy of ``inputs`` with pCRE ``slot`` turned into an empty slot (zero, fully masked, freq 0)."""
    out = dict(inputs)
    for key, value in inputs.items():
        if key.startswith("pcre_mask_"):
            v = value.clone()
            v[:, slot] = True
        elif key.startswith("pcre_") or key == "freq":
            v = value.clone()
            v[:, slot] = 0
        else:
            continue
        out[key] = v
    return out


@dataclass
class AblationResult:
    """Predictions with each pCRE slot removed in turn (NaN where a slot is empty)."""

    predictions: np.ndarray  # (n_folds, n_genes, n_slots)
    baseline: np.ndarray  # (n_folds, n_genes)
    valid: np.ndarray  # (n_genes, n_slots) bool: slot holds a pCRE

    @property
    def effects(self) -> np.ndarray:
        return self.predictions - self.baseline[:, :, None]


def ablate_pcres(
    models: Sequence[torch.nn.Module],
    inputs: Mapping[str, torch.Tensor],
    *,
    include_empty: bool = False,
    batch_size: int = 1024,
    device=None,
) -> AblationResult:
    """Remove each pCRE of each gene in turn and predict with every fold model.

    One variant per (gene, non-empty slot), batched; ``include_empty=True`` also "removes" the
    empty slots (which must change nothing: an oracle check). Frequencies of removed slots are
    set to 0 and their bins masked, exactly as a gene with one pCRE fewer would be encoded
    except that the remaining slots keep their positions (slot order does not matter to the
    model: the regulation transformer has no positional encoding).

    Returns
    -------
    AblationResult
    """
    _check_models(models)
    dev = _device(device)
    x = {k: v.to(dev) for k, v in inputs.items()}
    masks = [v for k, v in x.items() if k.startswith("pcre_mask_")]
    if not masks:
        raise ValueError("pCRE ablation needs pcre_mask_<res> inputs (chromoformer_inputs layout).")
    valid = ~masks[0].all(-1)  # (genes, slots): every resolution has the same empty slots
    sel = torch.ones_like(valid) if include_empty else valid
    gi, si = sel.nonzero(as_tuple=True)
    n_genes, n_slots = valid.shape
    preds = np.full((len(models), n_genes, n_slots), np.nan)
    with _Models(models, dev) as ms:
        base = _predict(ms, x, batch_size, dev)
        for a in range(0, len(gi), int(batch_size)):
            g, s = gi[a : a + batch_size], si[a : a + batch_size]
            xb = {}
            for k, v in x.items():
                v = v[g]
                r = torch.arange(len(g), device=dev)
                if k.startswith("pcre_mask_"):
                    v[r, s] = True
                elif k.startswith("pcre_") or k == "freq":
                    v[r, s] = 0
                xb[k] = v
            out = _predict(ms, xb, int(batch_size), dev)
            preds[:, g.cpu().numpy(), s.cpu().numpy()] = out
    return AblationResult(predictions=preds, baseline=base, valid=valid.cpu().numpy())


# --------------------------------------------------------------------------------------------
# fold summaries and tidy tables
# --------------------------------------------------------------------------------------------
def fold_summary(effects: np.ndarray) -> dict[str, np.ndarray]:
    """Fold mean, SD (ddof 1; NaN for one fold) and sign concordance along axis 0.

    ``concordance`` = fraction of folds whose effect has the sign of the fold average (an
    average of exactly 0, e.g. at level 1.0, matches folds whose effect is exactly 0).
    """
    effects = np.asarray(effects, dtype=np.float64)
    n = effects.shape[0]
    mean = effects.mean(axis=0)
    sd = effects.std(axis=0, ddof=1) if n > 1 else np.full(mean.shape, np.nan)
    conc = (np.sign(effects) == np.sign(mean)[None]).mean(axis=0)
    return {"effect": mean, "effect_sd": sd, "concordance": conc, "n_folds": np.full(mean.shape, n)}


#: The out-of-fold column both perturbation tables carry after :data:`EFFECT_COLUMNS` / :data:`PCRE_COLUMNS`
#: (optional for readers: tables written before issue 30 lack it).
OOF_COLUMN = "effect_oof"


def out_of_fold(effects: np.ndarray, genes: pd.DataFrame, folds: Sequence[int] | None) -> np.ndarray:
    """Each gene's effect by the model of its own test fold (NaN when that fold's model is not among ``folds``).

    Parameters
    ----------
    effects : numpy.ndarray, shape (n_folds, n_genes, ...)
        Per-fold effects, axis 0 in the order of ``folds``.
    genes : pandas.DataFrame
        ``chrom`` of each gene: its test fold is the fold holding its chromosome
        (:data:`chromexp.constants.CHROM_FOLD`).
    folds : sequence of int or None
        The fold of each model; ``None`` = unknown (all NaN).

    Returns
    -------
    numpy.ndarray, shape effects.shape[1:]
        The paper averages every fold model over every gene (a gene is a training gene of three of
        them); this is the held-out counterpart, which is never optimistic.
    """
    from ..constants import CHROM_FOLD

    effects = np.asarray(effects, dtype=np.float64)
    out = np.full(effects.shape[1:], np.nan)
    if folds is None:
        return out
    folds = [int(f) for f in folds]
    if len(folds) != effects.shape[0]:
        raise ValueError(f"{effects.shape[0]} fold models but {len(folds)} folds named.")
    gene_fold = genes["chrom"].map(CHROM_FOLD).to_numpy()
    for k, fold in enumerate(folds):
        sel = np.flatnonzero(gene_fold == fold)
        out[sel] = effects[k, sel]
    return out


def effects_table(
    result: PerturbationResult,
    genes: pd.DataFrame,
    *,
    cell_type: str,
    provenance: str,
    model: str,
    mark: str,
    gene_set: str,
    folds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Tidy ``perturbation_effects`` rows (:data:`EFFECT_COLUMNS` + ``effect_oof``), one per (gene, region, level).

    ``folds`` names the fold of each model (axis 0 of ``result``): ``effect_oof`` is then the gene's
    effect by the model of its test fold (:func:`out_of_fold`), NaN where that model is absent.
    """
    n_genes = len(genes)
    if result.predictions.shape[1] != n_genes:
        raise ValueError(f"{result.predictions.shape[1]} genes were perturbed but {n_genes} are described.")
    s = fold_summary(result.effects)  # (genes, regions, levels)
    s[OOF_COLUMN] = out_of_fold(result.effects, genes, folds)
    where = region_table(genes, result.regions)  # region-major, genes inner
    n_r, n_l = len(result.regions), len(result.levels)

    # layout rows as (region, gene, level)
    def flat(a):
        return np.transpose(a, (1, 0, 2)).reshape(-1)

    out = where.loc[where.index.repeat(n_l)].reset_index(drop=True)
    out["level"] = np.tile(np.asarray(result.levels), n_r * n_genes)
    for key, value in s.items():
        out[key] = flat(value)
    out["baseline"] = np.repeat(np.tile(result.baseline.mean(axis=0), n_r), n_l)
    out["n_folds"] = out["n_folds"].astype(int)
    out = out.assign(cell_type=cell_type, provenance=provenance, model=model, mark=mark, gene_set=gene_set)
    return out[[*EFFECT_COLUMNS, OOF_COLUMN]]


def pcre_table(
    result: AblationResult,
    genes: pd.DataFrame,
    pcres: pd.DataFrame,
    *,
    cell_type: str,
    provenance: str,
    model: str,
    mark: str,
    gene_set: str,
    folds: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Tidy ``pcre_ablation`` rows (:data:`PCRE_COLUMNS` + ``effect_oof``), one per (gene, non-empty slot).

    ``pcres`` is ``CellDataset.pcre_table()`` restricted to these genes (``gene_id, slot, chrom,
    start, end, frequency``); ``distance`` is signed bp from the TSS to the fragment centre in
    transcription orientation (negative = upstream); ``effect_oof`` as in :func:`effects_table`.
    """
    s = fold_summary(result.effects)
    s[OOF_COLUMN] = out_of_fold(result.effects, genes, folds)
    gi, si = np.nonzero(result.valid)
    t = pd.DataFrame({"gene_id": genes["gene_id"].to_numpy()[gi], "slot": si})
    for k, v in s.items():
        t[k] = v[gi, si]
    t = t.merge(pcres[["gene_id", "slot", "chrom", "start", "end", "frequency"]], on=["gene_id", "slot"], how="left")
    if t["chrom"].isna().any():
        raise ValueError("Some ablated pCRE slots have no fragment in the pCRE table (inputs and table disagree).")
    g = genes.set_index("gene_id").loc[t["gene_id"]]
    centre = (t["start"].to_numpy() + t["end"].to_numpy()) / 2
    sign = np.where(g["strand"].to_numpy() == "-", -1, 1)
    t["distance"] = np.round((centre - g["tss"].to_numpy()) * sign).astype(np.int64)
    t["n_folds"] = t["n_folds"].astype(int)
    t = t.assign(cell_type=cell_type, provenance=provenance, model=model, mark=mark, gene_set=gene_set)
    return t[[*PCRE_COLUMNS, OOF_COLUMN]]


# --------------------------------------------------------------------------------------------
# planted truth (semi-synthetic data only)
# --------------------------------------------------------------------------------------------
def read_planted_enhancers(raw_dir: str | Path) -> pd.DataFrame:
    """The simulator's planted enhancers (``<raw>/truth/enhancers.tsv.gz``).

    Raises ``ValueError`` when the file is absent (real data have no planted truth).
    """
    path = Path(raw_dir) / "truth" / "enhancers.tsv.gz"
    if not path.is_file():
        raise ValueError(f"No planted truth at {path}: ground-truth recovery needs the semi-synthetic dataset.")
    t = pd.read_csv(path, sep="\t")
    need = {"gene_id", "kind", "chrom", "center", "width", "fragment_start", "fragment_end"}
    missing = need - set(t.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {sorted(missing)}.")
    return t


def _active(enh: pd.DataFrame, cell_type: str) -> np.ndarray:
    col = f"contribution_{cell_type}"
    if col not in enh.columns:
        raise ValueError(f"The planted truth has no column {col}: {cell_type} was not simulated.")
    return enh[col].to_numpy(float) > 0


def label_distal(effects: pd.DataFrame, enhancers: pd.DataFrame, cell_type: str) -> pd.Series:
    """True for (gene, distal 2 kb bin) rows overlapping an enhancer of that gene active in ``cell_type``.

    Enhancer interval = centre ± width / 2 (local enhancers inside the TSS ± 20 kb window).
    """
    enh = enhancers[(enhancers["kind"] == "local") & _active(enhancers, cell_type)]
    e_start = (enh["center"] - enh["width"] / 2).to_numpy()
    e_end = (enh["center"] + enh["width"] / 2).to_numpy()
    by_gene: dict[str, list[tuple[float, float]]] = {}
    for gid, a, b in zip(enh["gene_id"], e_start, e_end, strict=True):
        by_gene.setdefault(gid, []).append((a, b))
    starts, ends = effects["start"].to_numpy(), effects["end"].to_numpy()
    out = np.zeros(len(effects), dtype=bool)
    for i, gid in enumerate(effects["gene_id"].to_numpy()):
        for a, b in by_gene.get(gid, ()):
            if a < ends[i] and b > starts[i]:
                out[i] = True
                break
    return pd.Series(out, index=effects.index, name="enhancer")


def label_pcres(pcres: pd.DataFrame, enhancers: pd.DataFrame, cell_type: str) -> pd.Series:
    """True for (gene, pCRE) rows whose fragment carries an enhancer of that gene active in ``cell_type``."""
    enh = enhancers[(enhancers["kind"] == "pchic") & _active(enhancers, cell_type)]
    keys = set(
        zip(
            enh["gene_id"],
            enh["chrom"],
            enh["fragment_start"].astype(int),
            enh["fragment_end"].astype(int),
            strict=True,
        )
    )
    lab = [
        (g, c, int(s), int(e)) in keys
        for g, c, s, e in zip(pcres["gene_id"], pcres["chrom"], pcres["start"], pcres["end"], strict=True)
    ]
    return pd.Series(lab, index=pcres.index, name="enhancer")


def read_planted_decoys(raw_dir: str | Path) -> pd.DataFrame | None:
    """The simulator's decoys (``<raw>/truth/decoys.tsv.gz``, simulator version 2+); ``None`` when absent.

    Decoys are acetylated elements that regulate no simulated gene (:func:`chromexp.simulate.roadmap.plant_decoys`).
    """
    path = Path(raw_dir) / "truth" / "decoys.tsv.gz"
    if not path.is_file():
        return None
    t = pd.read_csv(path, sep="\t", keep_default_na=False, dtype={"neighbour_id": str})
    need = {"gene_id", "kind", "chrom", "center", "width"}
    missing = need - set(t.columns)
    if missing:
        raise ValueError(f"{path} lacks column(s) {sorted(missing)}.")
    return t


#: Kinds of acetylated elements that do not regulate a row's gene (:func:`label_decoys`).
DECOY_LABELS = ("neighbour_enhancer", "acetylated_site")


def label_decoys(
    table: pd.DataFrame, enhancers: pd.DataFrame, decoys: pd.DataFrame | None, cell_type: str
) -> pd.Series:
    """Which rows overlap an element acetylated in ``cell_type`` that does **not** regulate the row's gene.

    Such an element is a decoy active in ``cell_type`` (:func:`read_planted_decoys`; any gene's) or an
    active planted enhancer of *another* gene (in version 1 data the only kind there is). Rows need
    ``gene_id, chrom, start, end`` (2 kb bins or pCRE fragments); an element is centre ± width / 2.

    Returns
    -------
    pandas.Series of str
        ``neighbour_enhancer`` (a decoy of that kind or another gene's enhancer), ``acetylated_site``
        (an acetylated non-regulatory site; wins when both overlap) or ``""``; aligned with ``table``.
    """
    enh = enhancers[_active(enhancers, cell_type)]
    parts = [
        pd.DataFrame(
            {
                "owner": enh["gene_id"].to_numpy(),
                "chrom": enh["chrom"].to_numpy(),
                "a": (enh["center"] - enh["width"] / 2).to_numpy(float),
                "b": (enh["center"] + enh["width"] / 2).to_numpy(float),
                "kind": DECOY_LABELS[0],
            }
        )
    ]
    if decoys is not None and len(decoys):
        col = f"active_{cell_type}"
        if col not in decoys.columns:
            raise ValueError(f"The planted decoys have no column {col}: {cell_type} was not simulated.")
        d = decoys[decoys[col].astype(bool)]
        parts.append(
            pd.DataFrame(
                {
                    "owner": "",  # a decoy regulates no gene
                    "chrom": d["chrom"].to_numpy(),
                    "a": (d["center"] - d["width"] / 2).to_numpy(float),
                    "b": (d["center"] + d["width"] / 2).to_numpy(float),
                    "kind": d["kind"].to_numpy(),
                }
            )
        )
    el = pd.concat(parts, ignore_index=True)
    unknown = set(el["kind"]) - set(DECOY_LABELS)
    if unknown:
        raise ValueError(f"Unknown decoy kind(s) {sorted(unknown)}; known: {list(DECOY_LABELS)}.")
    out = np.full(len(table), "", dtype=object)
    rows_chrom = table["chrom"].astype(str).to_numpy()
    r_start, r_end = table["start"].to_numpy(float), table["end"].to_numpy(float)
    r_gene = table["gene_id"].to_numpy()
    for chrom, eidx in el.groupby("chrom").indices.items():
        e = el.iloc[eidx].sort_values("a", kind="mergesort")
        a, b = e["a"].to_numpy(), e["b"].to_numpy()
        owner, kind = e["owner"].to_numpy(), e["kind"].to_numpy()
        longest = float((b - a).max())
        for i in np.flatnonzero(rows_chrom == chrom):
            lo, hi = np.searchsorted(a, [r_start[i] - longest, r_end[i]])
            hit = [k for k in range(lo, hi) if b[k] > r_start[i] and a[k] < r_end[i] and owner[k] != r_gene[i]]
            if hit:
                kinds = {kind[k] for k in hit}
                out[i] = DECOY_LABELS[1] if DECOY_LABELS[1] in kinds else DECOY_LABELS[0]
    return pd.Series(out, index=table.index, name="decoy")


def bin_signal(ds, table: pd.DataFrame, resolution: int = REGION_BP) -> np.ndarray:
    """The signal-only score of distal rows: each bin's own input, ln(mean depth + 1) of the row's mark.

    Parameters
    ----------
    ds : chromexp.data.dataset.CellDataset
        The store the models read (strand-oriented bins).
    table : pandas.DataFrame
        Rows with ``gene_id``, ``mark`` and ``position`` (the 2 kb position of a distal region).
    resolution : int
        Bin size of the score; the position's 2 kb bin is averaged from finer bins when smaller.

    Returns
    -------
    numpy.ndarray of float64, shape (n_rows,)
    """
    gene_pos = pd.Series(np.arange(len(ds.genes)), index=ds.genes["gene_id"].to_numpy())
    missing = ~table["gene_id"].isin(gene_pos.index)
    if missing.any():
        raise ValueError(f"{int(missing.sum())} rows name genes absent from the store {ds.path}.")
    gi = gene_pos.loc[table["gene_id"]].to_numpy()
    per = REGION_BP // int(resolution)
    out = np.empty(len(table))
    for mark, idx in table.groupby("mark").indices.items():
        x = ds.promoter(marks=[mark], resolution=int(resolution))[:, 0, :].astype(np.float64)
        x = x.reshape(x.shape[0], -1, per).mean(axis=2)  # 2 kb positions
        out[idx] = x[gi[idx], table["position"].to_numpy()[idx]]
    return out


def pcre_signal(ds, pcres: pd.DataFrame, resolution: int = 100) -> np.ndarray:
    """The signal-only score of pCRE rows: the maximum of the row's mark over its fragment's bins.

    ``pcres`` needs ``gene_id``, ``slot`` and ``mark`` (:data:`PCRE_COLUMNS`); the fragment's bins
    are its ``resolution``-bp inputs (:meth:`CellDataset.pcres`, padding excluded).
    """
    gene_pos = pd.Series(np.arange(len(ds.genes)), index=ds.genes["gene_id"].to_numpy())
    gi = gene_pos.loc[pcres["gene_id"]].to_numpy()
    si = pcres["slot"].to_numpy()
    out = np.empty(len(pcres))
    for mark, idx in pcres.groupby("mark").indices.items():
        x, mask, _, _ = ds.pcres(marks=[mark], resolution=int(resolution))
        v = np.where(mask[:, :, :], -np.inf, x[:, :, 0, :]).max(axis=2)
        if not np.isfinite(v[gi[idx], si[idx]]).all():
            raise ValueError("Some pCRE rows point at empty slots of the store (inputs and table disagree).")
        out[idx] = v[gi[idx], si[idx]]
    return out


def _matched_weights(labels: np.ndarray, strata: np.ndarray) -> np.ndarray:
    """Weights that give the negatives of each stratum the positives' stratum distribution.

    Positives weigh 1; the negatives of stratum s share weight n_pos(s); strata without a
    positive (or without a negative) get weight 0.
    """
    w = np.zeros(len(labels))
    for s in np.unique(strata):
        m = strata == s
        pos, neg = (m & labels).sum(), (m & ~labels).sum()
        if pos and neg:
            w[m & labels] = 1.0
            w[m & ~labels] = pos / neg
    return w


def _scores(labels, score, weights) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    keep = weights > 0
    y, s, w = labels[keep], score[keep], weights[keep]
    if y.all() or not y.any():
        return np.nan, np.nan
    return float(roc_auc_score(y, s, sample_weight=w)), float(average_precision_score(y, s, sample_weight=w))


def recovery(
    table: pd.DataFrame,
    labels: pd.Series,
    *,
    what: str,
    strata: np.ndarray,
    baselines: Mapping[str, np.ndarray] | None = None,
    decoys: pd.Series | None = None,
) -> pd.DataFrame:
    """AUROC / AUPRC of ``-effect`` (a drop in predicted expression) for the planted enhancers.

    Comparisons per (mark, gene set): ``all`` (every row) and ``matched`` (negatives re-weighted to
    the positives' distribution over ``strata``, e.g. the 2 kb position or a distance bin, so that
    distance alone cannot score); with ``decoys`` (:func:`label_decoys`), also ``vs_decoys`` (the
    negatives are only the rows holding an acetylated element that does not regulate the gene:
    can the score tell an enhancer from a decoy?) and ``vs_<kind>`` for each decoy kind present.
    Scores: ``effect`` (= -effect), ``abs_effect`` and each of ``baselines`` (name -> score array
    aligned with ``table``, e.g. the distance-only baseline ``-|distance|`` and the signal-only
    baseline, the row's own input signal).

    Returns
    -------
    DataFrame with columns what, (model, when ``table`` has one,) mark, gene_set, comparison, score,
    n_pos, n_neg, auroc, auprc, positive_rate
    """
    lab = labels.to_numpy(bool)
    rows = []
    extra = dict(baselines or {})
    kinds = np.asarray(decoys.to_numpy(), dtype=object) if decoys is not None else None
    keys = ["model", "mark", "gene_set"] if "model" in table.columns else ["mark", "gene_set"]
    for key, idx in table.groupby(keys).indices.items():
        *model, mark, gs = key
        y = lab[idx]
        scores = {"effect": -table["effect"].to_numpy()[idx], "abs_effect": table["effect"].abs().to_numpy()[idx]}
        scores.update({k: np.asarray(v)[idx] for k, v in extra.items()})
        comparisons = {"all": np.ones(len(idx)), "matched": _matched_weights(y, np.asarray(strata)[idx])}
        if kinds is not None:
            k = kinds[idx]
            comparisons["vs_decoys"] = (y | (k != "")).astype(float)
            for kind in DECOY_LABELS:
                if (~y & (k == kind)).any():
                    comparisons[f"vs_{kind}"] = (y | (k == kind)).astype(float)
        for comparison, w in comparisons.items():
            for name, s in scores.items():
                auroc, auprc = _scores(y, s, w)
                keep = w > 0
                rows.append(
                    {
                        "what": what,
                        **({"model": model[0]} if model else {}),
                        "mark": mark,
                        "gene_set": gs,
                        "comparison": comparison,
                        "score": name,
                        "n_pos": int(y[keep].sum()),
                        "n_neg": int((~y[keep]).sum()),
                        "auroc": auroc,
                        "auprc": auprc,
                        "positive_rate": float(np.average(y[keep], weights=w[keep])) if keep.any() else np.nan,
                    }
                )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# notebook 60's recipe: the experiments, the gene sets, one call that perturbs them all
# --------------------------------------------------------------------------------------------
#: Gene sets of the study: active = RPKM >= the cell type's median (the dataset's ``label``), inactive = the rest.
GENE_SETS: dict[str, int] = {"active": 1, "inactive": 0}


#: The name of the single-mark models in the tables (the paper's); a multi-mark model is :func:`model_name`.
SINGLE_MARK_MODEL = "chromoformer-reg"


def model_marks(spec: str | None, mark: str, params: Mapping) -> tuple[str, ...]:
    """The input marks of the model a perturbation experiment uses, in notebook 40/50's order.

    ``spec`` is the third field of a ``perturbation.experiments`` entry (``MARK:GENE_SET[:MODEL]``):
    ``None`` or ``""`` = the single-mark model of ``mark`` (the paper's), ``all`` = notebook 40's
    all-marks model (the top-level ``marks``), or a ``+``-joined set of marks holding ``mark`` (e.g.
    ``H3K27ac+H3K4me1``: notebook 50's pair, in the order ``model.chromoformer.mark_sets`` lists it,
    else ``marks`` order).
    """
    if not spec:
        return (mark,)
    if spec == "all":
        marks = tuple(params["marks"])
    else:
        wanted = set(spec.split("+"))
        listed = [tuple(s) for s in (params["model"]["chromoformer"]["mark_sets"] or []) if set(s) == wanted]
        marks = listed[0] if listed else tuple(m for m in params["marks"] if m in wanted)
        if set(marks) != wanted:
            raise ValueError(f"perturbation model {spec!r}: marks {sorted(wanted - set(marks))} are not in `marks`.")
    if mark not in marks:
        raise ValueError(f"perturbation model {spec!r} does not see the perturbed mark {mark}.")
    return marks


def model_name(marks: Sequence[str], all_marks: Sequence[str]) -> str:
    """``chromoformer-reg`` for a single-mark model, ``chromoformer-reg-all`` / ``chromoformer-reg-<marks>`` else."""
    if len(marks) == 1:
        return SINGLE_MARK_MODEL
    return f"{SINGLE_MARK_MODEL}-{'all' if list(marks) == list(all_marks) else '+'.join(marks)}"


@dataclass(frozen=True)
class Settings:
    """Notebook 60's ``perturbation`` parameters, parsed and checked once (:func:`settings`)."""

    #: (perturbed mark, gene set, the model's input marks), in the order of the parameter
    experiments: tuple[tuple[str, str, tuple[str, ...]], ...]
    folds: tuple[int, ...]
    levels: tuple[float, ...]
    all_marks: tuple[str, ...] = ()

    @property
    def marks(self) -> list[str]:
        """The perturbed marks of the experiments, first occurrence order."""
        return list(dict.fromkeys(m for m, _, _ in self.experiments))

    @property
    def model_sets(self) -> list[tuple[str, ...]]:
        """The input marks of every model the experiments need (one set of fold models each)."""
        return list(dict.fromkeys(m for _, _, m in self.experiments))

    def model_name(self, marks: Sequence[str]) -> str:
        """The ``model`` column of an experiment on the model of ``marks`` (:func:`model_name`)."""
        return model_name(marks, self.all_marks)


def settings(params: Mapping) -> Settings:
    """Parse ``perturbation.experiments`` (``"MARK:active"`` / ``"MARK:inactive"``), folds and levels.

    An entry may name a multi-mark model as a third field (``"H3K27ac:active:all"``,
    ``"H3K27ac:active:H3K27ac+H3K4me1"``; :func:`model_marks`). ``perturbation.folds`` null means
    the run's ``folds``; the levels must include 1.0 (the unperturbed reference every effect is
    measured against).

    Raises
    ------
    ValueError
        An entry that is not ``MARK:GENE_SET[:MODEL]`` with a mark of the run, or levels without 1.0.
    """
    p = params["perturbation"]
    marks = list(params["marks"])
    experiments = []
    for item in p["experiments"]:
        mark, _, rest = str(item).partition(":")
        gene_set, _, spec = rest.partition(":")
        if mark not in marks or gene_set not in GENE_SETS or ":" in spec:
            raise ValueError(
                f"perturbation.experiments entry {item!r} must be 'MARK:active' or 'MARK:inactive' with MARK in "
                f"{marks}, optionally ':all' or ':MARK+MARK' (a multi-mark model that sees MARK)."
            )
        experiments.append((mark, gene_set, model_marks(spec or None, mark, params)))
    if len(set(experiments)) != len(experiments):
        raise ValueError(f"perturbation.experiments repeats an experiment: {p['experiments']}.")
    if not experiments:
        raise ValueError("perturbation.experiments is empty: name at least one 'MARK:active' or 'MARK:inactive'.")
    folds = tuple(int(f) for f in (p["folds"] or params["folds"]))
    levels = tuple(float(x) for x in p["levels"])
    if 1.0 not in levels:
        raise ValueError(f"perturbation.levels must include 1.0 (the unperturbed reference); got {levels}.")
    return Settings(tuple(experiments), folds, levels, tuple(marks))


def gene_sets(
    genes: pd.DataFrame, n_genes: int | None, rng: np.random.Generator, cell_type: str = ""
) -> dict[str, np.ndarray]:
    """Row indices of the active and inactive genes to perturb, a seeded sample of ``n_genes`` per set.

    Every gene is predicted by every fold model (as in the paper, a gene is a test gene of one
    fold and a training gene of the others). Samples are drawn in the order active, inactive with
    ``rng.choice`` (without replacement) and sorted.

    Raises
    ------
    ValueError
        A set without genes (the message names the cell type and the set).
    """
    out = {}
    label = genes["label"].to_numpy()
    for name, value in GENE_SETS.items():
        idx = np.flatnonzero(label == value)
        if n_genes is not None and idx.size > int(n_genes):
            idx = np.sort(rng.choice(idx, size=int(n_genes), replace=False))
        if idx.size == 0:
            raise ValueError(f"{cell_type or 'The dataset'} has no {name} genes to perturb.")
        out[name] = idx
    return out


@dataclass
class Experiments:
    """What :func:`run_experiments` returns: the two tidy tables and the time each experiment took."""

    effects: pd.DataFrame  # EFFECT_COLUMNS
    pcres: pd.DataFrame  # PCRE_COLUMNS
    timings: pd.DataFrame  # model, mark, gene_set, genes, perturbation_s, pcre_s


def run_experiments(
    models: Mapping[tuple[str, ...], Sequence[torch.nn.Module]],
    inputs: Mapping[str, torch.Tensor],
    dataset_marks: Sequence[str],
    genes: pd.DataFrame,
    pcre_info: pd.DataFrame,
    plan: Settings,
    sets: Mapping[str, np.ndarray],
    region_list: Sequence[Region],
    *,
    cell_type: str,
    provenance: str,
    batch_size: int = 1024,
    pcre_ablation: bool = True,
    device=None,
) -> Experiments:
    """Every experiment of ``plan``: each (region, level) variant of each gene, and each pCRE removed.

    Parameters
    ----------
    models : dict (input marks) -> fold models
        Chromoformer regressors (``experiments.perturbation.fold_models``) of every
        :attr:`Settings.model_sets`; the experiment's mark is scaled inside its model's inputs and the
        ``model`` column is :meth:`Settings.model_name`.
    inputs : dict of torch.Tensor
        ``chromoformer_inputs.dataset_inputs`` of every gene and every mark of the dataset.
    dataset_marks : sequence of str
        The marks of ``inputs``, in their order.
    genes : pandas.DataFrame
        The dataset's genes (``gene_id, chrom, tss, strand``), rows aligned with ``inputs``.
    pcre_info : pandas.DataFrame
        ``CellDataset.pcre_table()`` (``gene_index, gene_id, slot, chrom, start, end, frequency``).
    sets : dict gene set -> row indices
        :func:`gene_sets`.

    Returns
    -------
    Experiments
    """
    import time

    from ..models import chromoformer_inputs as ci

    effect_tables, pcre_tables, timings = [], [], []
    for mark, gene_set, marks in plan.experiments:
        idx = sets[gene_set]
        x = ci.select_marks(ci.subset(inputs, idx), [list(dataset_marks).index(m) for m in marks])
        sub = genes.iloc[idx].reset_index(drop=True)
        meta = dict(
            cell_type=cell_type, provenance=provenance, model=plan.model_name(marks), mark=mark, gene_set=gene_set
        )
        t0 = time.perf_counter()
        res = perturbation_predictions(
            models[marks],
            x,
            region_list,
            plan.levels,
            mark_index=marks.index(mark),
            batch_size=int(batch_size),
            device=device,
        )
        effect_tables.append(effects_table(res, sub, **meta, folds=plan.folds))
        t1 = time.perf_counter()
        if pcre_ablation:
            abl = ablate_pcres(models[marks], x, batch_size=int(batch_size), device=device)
            pcre_tables.append(
                pcre_table(abl, sub, pcre_info[pcre_info["gene_index"].isin(idx)], **meta, folds=plan.folds)
            )
        timings.append(
            {
                "model": meta["model"],
                "mark": mark,
                "gene_set": gene_set,
                "genes": len(idx),
                "perturbation_s": t1 - t0,
                "pcre_s": time.perf_counter() - t1,
            }
        )
    effects = pd.concat(effect_tables, ignore_index=True)
    pcres = (
        pd.concat(pcre_tables, ignore_index=True) if pcre_tables else pd.DataFrame(columns=[*PCRE_COLUMNS, OOF_COLUMN])
    )
    return Experiments(effects, pcres, pd.DataFrame(timings))


def check_experiments(
    result: Experiments,
    plan: Settings,
    sets: Mapping[str, np.ndarray],
    region_list: Sequence[Region],
    provenance: str,
) -> None:
    """The checks notebook 60 runs before saving; each failure is a ``ValueError`` that says what broke.

    The effects table has :data:`EFFECT_COLUMNS`; every (mark, gene set, gene, region, level)
    appears exactly once and all of them do; level 1.0 is the unperturbed prediction (effect 0);
    every effect is finite; every row carries the dataset's provenance.
    """
    e, p = result.effects, result.pcres
    if list(e.columns) != [*EFFECT_COLUMNS, OOF_COLUMN]:
        raise ValueError(f"The effects table has columns {list(e.columns)}, not {[*EFFECT_COLUMNS, OOF_COLUMN]}.")
    if e.duplicated(["model", "mark", "gene_set", "gene_id", "region", "level"]).any():
        raise ValueError("A (model, mark, gene set, gene, region, level) appears twice in the effects table.")
    expected = sum(sets[g].size for _, g, _ in plan.experiments) * len(region_list) * len(plan.levels)
    if len(e) != expected:
        raise ValueError(f"The effects table has {len(e)} rows; genes x regions x levels gives {expected}.")
    if not (e.loc[e["level"] == 1.0, "effect"] == 0).all():
        raise ValueError("At level 1.0 an effect is not 0: the unperturbed prediction changed.")
    if not (np.isfinite(e["effect"]).all() and np.isfinite(p["effect"].astype(float)).all()):
        raise ValueError("Some perturbation or pCRE-ablation effects are not finite.")
    if not e["provenance"].eq(provenance).all():
        raise ValueError(f"Some effect rows do not carry the dataset's provenance {provenance!r}.")


def choose_locus(
    effects: pd.DataFrame,
    genes: pd.DataFrame,
    region_list: Sequence[Region],
    mark: str,
    gene_set: str,
    gene: str | None = None,
    ablate: str | None = None,
) -> tuple[int, Region]:
    """The Fig. 8 locus: a gene (row index of ``genes``) and the region ablated for the "after" maps.

    ``gene`` (a gene id or name) or, when ``None``, the gene with the largest |level-0 effect| of a
    distal region in the (``mark``, ``gene_set``) experiment; ``ablate`` (a region name) or, when
    ``None``, that gene's largest-|effect| distal region (``distal_05`` when it has none).

    Raises
    ------
    ValueError
        ``gene`` is not a gene of the dataset, or ``ablate`` is not a region.
    """
    level0 = effects[(effects["level"] == 0.0) & (effects["mark"] == mark) & (effects["gene_set"] == gene_set)]
    distal0 = level0[level0["region_kind"] == "distal"]
    if gene is not None:
        hit = genes.index[(genes["gene_id"] == gene) | (genes["gene_name"] == gene)]
        if len(hit) == 0:
            raise ValueError(f"perturbation.attribution.gene {gene!r} is not a gene of the dataset.")
        gene_index = int(hit[0])
    else:
        if distal0.empty:
            raise ValueError(
                f"No level-0 distal effects of {mark} on {gene_set} genes to choose the Fig. 8 locus from."
            )
        top = distal0.loc[distal0["effect"].abs().idxmax(), "gene_id"]
        gene_index = int(genes.index[genes["gene_id"] == top][0])
    rows = distal0[distal0["gene_id"] == genes.iloc[gene_index]["gene_id"]]
    name = ablate or (rows.loc[rows["effect"].abs().idxmax(), "region"] if len(rows) else "distal_05")
    region = next((r for r in region_list if r.name == name), None)
    if region is None:
        raise ValueError(f"perturbation.attribution.ablate {name!r} is not a region ({[r.name for r in region_list]}).")
    return gene_index, region


def planted_recovery(
    effects: pd.DataFrame,
    pcres: pd.DataFrame,
    truth: pd.DataFrame,
    cell_type: str,
    decoys: pd.DataFrame | None = None,
    dataset=None,
) -> pd.DataFrame:
    """AUROC/AUPRC of the level-0 distal effects and pCRE ablations for the planted enhancers (semi-synthetic).

    Distal (gene, 2 kb bin) rows are positives when they overlap an active planted enhancer of
    their gene (:func:`label_distal`), matched on the 2 kb position, with a distance-only
    baseline; pCREs (:func:`label_pcres`) are matched on 5 distance quintiles, with distance-only
    and frequency-only baselines (:func:`recovery`). With ``dataset`` (the store the models read),
    also the **signal-only** baseline: the row's own input (:func:`bin_signal`; for a pCRE the
    fragment's maximum, :func:`pcre_signal`). Every row is labelled with the acetylated elements
    that do not regulate its gene (:func:`label_decoys`: another gene's enhancer, and with
    simulator version 2 the planted ``decoys``), giving the ``vs_decoys`` comparisons.

    Each comparison is made on the fold-averaged effects (``effects = fold_mean``, the paper's: every
    gene predicted by every fold model, three of which trained on it) and, where the tables carry
    ``effect_oof``, on the out-of-fold effects (``out_of_fold``: each gene by the model of its test
    fold only, on the genes that have one); when those are fewer genes, also the fold-averaged
    effects of the same genes (``fold_mean_oof_genes``), so the two are compared on one set.

    Returns
    -------
    pandas.DataFrame
        :func:`recovery` rows of both kinds with an ``effects`` column, ``attrs["positive_rate"]``
        the distal positives' share.
    """
    distal = effects[(effects["level"] == 0.0) & (effects["region_kind"] == "distal")].reset_index(drop=True)
    lab = label_distal(distal, truth, cell_type)
    base = {"distance_only": -distal["distance"].abs().to_numpy(float)}
    if dataset is not None:
        base["signal_only"] = bin_signal(dataset, distal)
    dec = label_decoys(distal, truth, decoys, cell_type)
    rec = _recovery_variants(distal, lab, "distal_bin", distal["position"].to_numpy(), base, dec)
    if len(pcres):
        pcres = pcres.reset_index(drop=True)
        plab = label_pcres(pcres, truth, cell_type)
        quint = pd.qcut(pcres["distance"].abs(), 5, labels=False, duplicates="drop").to_numpy()
        base = {
            "distance_only": -pcres["distance"].abs().to_numpy(float),
            "frequency_only": pcres["frequency"].to_numpy(float),
        }
        if dataset is not None:
            base["signal_only"] = pcre_signal(dataset, pcres)
        rec += _recovery_variants(pcres, plab, "pcre", quint, base, label_decoys(pcres, truth, decoys, cell_type))
    out = pd.concat(rec, ignore_index=True)
    out.attrs["positive_rate"] = float(lab.mean())
    return out


def _recovery_variants(table, labels, what, strata, baselines, decoys) -> list[pd.DataFrame]:
    """:func:`recovery` on the fold-mean effects and, when present, on the out-of-fold ones."""
    out = [
        recovery(table, labels, what=what, strata=strata, baselines=baselines, decoys=decoys).assign(
            effects="fold_mean"
        )
    ]
    if OOF_COLUMN not in table.columns:
        return out
    has = table[OOF_COLUMN].notna().to_numpy()
    if not has.any():
        return out
    sub = table[has].reset_index(drop=True)
    keep = {k: np.asarray(v)[has] for k, v in baselines.items()}
    args = dict(what=what, strata=np.asarray(strata)[has], baselines=keep, decoys=decoys[has].reset_index(drop=True))
    lab = labels[has].reset_index(drop=True)
    out.append(recovery(sub.assign(effect=sub[OOF_COLUMN]), lab, **args).assign(effects="out_of_fold"))
    if not has.all():
        out.append(recovery(sub, lab, **args).assign(effects="fold_mean_oof_genes"))
    return out


def level0_summary(effects: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """Level-0 mean effect, mean |effect|, fold concordance and genes per experiment and region kind."""
    return (
        effects[effects["level"] == 0.0]
        .groupby(["model", "mark", "gene_set", "region_kind"])
        .agg(
            mean_effect=("effect", "mean"),
            mean_abs_effect=("effect", lambda e: e.abs().mean()),
            concordance=("concordance", "mean"),
            n_genes=("gene_id", "nunique"),
        )
        .assign(provenance=provenance)
    )


def answer(
    level0: pd.DataFrame,
    decay: pd.DataFrame,
    recovery_table: pd.DataFrame | None,
    provenance: str,
    n_folds: int,
    cell_type: str,
) -> str:
    """Notebook 60's Answer, written from its numbers (markdown).

    ``level0``: :func:`level0_summary`; ``decay``: ``effects.decay_length``; ``recovery_table``:
    :func:`planted_recovery` (``None`` on real data).
    """
    from ..provenance import provenance_phrase

    models = f"{n_folds} fold models averaged" if n_folds > 1 else "one fold model (not an average over folds)"
    lines = [f"{provenance_phrase(provenance)}, {cell_type}, {models}:"]
    t = level0.reset_index()
    for (model, mark, gs), g in t.groupby(["model", "mark", "gene_set"], sort=False):
        parts = []
        for r in g.itertuples():
            parts.append(
                f"{r.region_kind} {r.mean_effect:+.3f} log2 (mean |effect| {r.mean_abs_effect:.3f}, "
                f"fold concordance {r.concordance:.2f})"
            )
        d = decay[(decay["mark"] == mark) & (decay["gene_set"] == gs)]
        lam = float(d["decay_length_bp"].iloc[0]) if len(d) else np.nan
        tail = f"; |effect| decays e-fold every {lam / 1000:.1f} kb" if np.isfinite(lam) else "; no decay length fitted"
        who = "" if model == SINGLE_MARK_MODEL else f" in the {model} model"
        if model != SINGLE_MARK_MODEL:
            tail = ""  # the decay is fitted for the single-mark models (Fig. 6)
        lines.append(
            f"- removing {mark}{who} from {gs} genes ({g['n_genes'].iloc[0]} genes): " + "; ".join(parts) + tail
        )
    if recovery_table is not None and len(recovery_table):
        lines += recovery_lines(recovery_table)
    return "\n".join(lines)


def recovery_lines(recovery_table: pd.DataFrame) -> list[str]:
    """Answer lines of :func:`planted_recovery`: the model against the signal alone, and against decoys only."""
    lines = []
    t = recovery_table if "model" in recovery_table.columns else recovery_table.assign(model=SINGLE_MARK_MODEL)
    if "effects" not in t.columns:
        t = t.assign(effects="fold_mean")
    for (what, model, mark, gs), g in t.groupby(["what", "model", "mark", "gene_set"], sort=False):
        a = g.set_index(["effects", "comparison", "score"])["auroc"]

        def get(comparison, score, effects="fold_mean", a=a):
            return float(a.get((effects, comparison, score), np.nan))

        unit = "distal 2 kb bins" if what == "distal_bin" else "pCREs"
        text = (
            f"- planted enhancers among {unit} ({mark}, {gs} genes, {model}): distance-matched AUROC of the effect "
            f"{get('matched', 'effect'):.2f}, signal only {get('matched', 'signal_only'):.2f}, distance only "
            f"{get('matched', 'distance_only'):.2f}"
        )
        if ("fold_mean", "vs_decoys", "effect") in a.index:
            e, sig = get("vs_decoys", "effect"), get("vs_decoys", "signal_only")
            # the SD of an AUROC under the null, (n_pos + n_neg + 1) / (12 n_pos n_neg) (Mann-Whitney), as the
            # yardstick: a difference under two of them is not called a difference
            row = g[(g["effects"] == "fold_mean") & (g["comparison"] == "vs_decoys") & (g["score"] == "effect")]
            n_pos, n_neg = (float(row[c].iloc[0]) if c in row.columns else np.nan for c in ("n_pos", "n_neg"))
            se = np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg)) if n_pos > 0 and n_neg > 0 else np.nan
            margin = 2 * se if np.isfinite(se) else 0.02
            verdict = (
                "the model tells enhancers from decoys better than their signal does"
                if e > sig + margin
                else "the model does not tell enhancers from decoys clearly better than their signal does"
            )
            where = f"; null SD of an AUROC {se:.2f}" if np.isfinite(se) else ""
            text += f"; against acetylated decoys only: effect {e:.2f}, signal only {sig:.2f} ({verdict}{where})"
            kinds = [
                f"{k.replace('_', ' ')}s {get(f'vs_{k}', 'effect'):.2f}"
                for k in DECOY_LABELS
                if ("fold_mean", f"vs_{k}", "effect") in a.index
            ]
            if kinds:
                text += f" (effect against {', '.join(kinds)})"
        if ("out_of_fold", "matched", "effect") in a.index:
            same = get("matched", "effect", "fold_mean_oof_genes")
            same = get("matched", "effect") if np.isnan(same) else same
            text += (
                f"; out-of-fold effects (each gene by its test fold's model): {get('matched', 'effect', 'out_of_fold'):.2f}"
                f" vs {same:.2f} fold-averaged on the same genes"
            )
        lines.append(text)
    return lines


__all__ = [
    "LEVELS",
    "EFFECT_COLUMNS",
    "PCRE_COLUMNS",
    "Region",
    "regions",
    "region_scales",
    "region_table",
    "perturb_inputs",
    "perturbation_predictions",
    "naive_perturbation",
    "remove_pcre",
    "ablate_pcres",
    "fold_summary",
    "effects_table",
    "pcre_table",
    "read_planted_enhancers",
    "read_planted_decoys",
    "label_decoys",
    "bin_signal",
    "pcre_signal",
    "label_distal",
    "label_pcres",
    "recovery",
    "GENE_SETS",
    "SINGLE_MARK_MODEL",
    "model_marks",
    "model_name",
    "recovery_lines",
    "Settings",
    "settings",
    "gene_sets",
    "Experiments",
    "run_experiments",
    "check_experiments",
    "choose_locus",
    "planted_recovery",
    "level0_summary",
    "answer",
]
