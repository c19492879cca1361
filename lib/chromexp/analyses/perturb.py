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
:func:`fold_models` loads notebook 40's checkpoints or trains the missing (mark, fold) models
with the same recipe. :func:`recovery` scores effects against the simulator's planted enhancers
(semi-synthetic data only).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

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


def regions(
    promoter_flank: int = 3000,
    resolutions: Sequence[int] = cf.RESOLUTIONS,
    window: int = STUDY_WINDOW,
    region_bp: int = REGION_BP,
) -> list[Region]:
    """The promoter and the distal 2 kb regions of the study (module docstring).

    Parameters
    ----------
    promoter_flank : int
        TSS ± this many bp is the promoter at the resolutions finer than ``region_bp`` (paper:
        3000); at ``region_bp`` the promoter is the bins within TSS ± 2 × ``region_bp``.
    resolutions : sequence of int
        Bin sizes of the model inputs.
    window : int
        Input window in bp (2 × the dataset's ``half_window``; notebook 60 passes the dataset's).

    Returns
    -------
    list of Region
        ``promoter`` first, then ``distal_00`` … ``distal_19`` without the promoter positions.
    """
    half = window // 2
    n_pos = window // region_bp
    promoter_pos = range(n_pos // 2 - 2, n_pos // 2 + 2)  # bins 8-11 of 20
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
    out.append(Region("promoter", "promoter", -1, (half - 2 * region_bp, half + 2 * region_bp), p_bins, window))
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


def effects_table(
    result: PerturbationResult,
    genes: pd.DataFrame,
    *,
    cell_type: str,
    provenance: str,
    model: str,
    mark: str,
    gene_set: str,
) -> pd.DataFrame:
    """Tidy ``perturbation_effects`` rows (:data:`EFFECT_COLUMNS`), one per (gene, region, level)."""
    n_genes = len(genes)
    if result.predictions.shape[1] != n_genes:
        raise ValueError(f"{result.predictions.shape[1]} genes were perturbed but {n_genes} are described.")
    s = fold_summary(result.effects)  # (genes, regions, levels)
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
    return out[list(EFFECT_COLUMNS)]


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
) -> pd.DataFrame:
    """Tidy ``pcre_ablation`` rows (:data:`PCRE_COLUMNS`), one per (gene, non-empty slot).

    ``pcres`` is ``CellDataset.pcre_table()`` restricted to these genes (``gene_id, slot, chrom,
    start, end, frequency``); ``distance`` is signed bp from the TSS to the fragment centre in
    transcription orientation (negative = upstream).
    """
    s = fold_summary(result.effects)
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
    return t[list(PCRE_COLUMNS)]


def level_curves(effects: pd.DataFrame) -> pd.DataFrame:
    """Mean effect (and 95 % CI over genes) per mark, gene set, region kind and level (Fig. 6A)."""
    g = effects.groupby(["mark", "gene_set", "region_kind", "level"])["effect"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["ci"] = 1.96 * out["std"] / np.sqrt(out["count"].clip(lower=1))
    return out.rename(columns={"mean": "effect", "count": "n"})


def effect_by_distance(table: pd.DataFrame, n_bins: int = 20, level: float = 0.0) -> pd.DataFrame:
    """Mean effect in ``n_bins`` quantile bins of signed distance (Fig. 6B), per mark and gene set.

    Takes the distal rows of a perturbation table (at ``level``) or a pCRE ablation table (no
    ``level`` column). With at most ``n_bins`` distinct distances (the 16 distal positions of the
    40 kb window) each distance is its own bin; ties may otherwise merge quantile bins.
    """
    t = table
    if "level" in t.columns:
        t = t[(t["level"] == level) & (t["region_kind"] == "distal")]
    rows = []
    for (mark, gs), sub in t.groupby(["mark", "gene_set"]):
        # fewer distinct distances than bins (the 16 distal positions): one bin per distance
        if sub["distance"].nunique() <= n_bins:
            q = sub["distance"]
        else:
            q = pd.qcut(sub["distance"], n_bins, duplicates="drop")
        agg = sub.groupby(q, observed=True).agg(
            distance=("distance", "median"),
            effect=("effect", "mean"),
            abs_effect=("effect", lambda e: e.abs().mean()),
            n=("effect", "size"),
        )
        rows.append(agg.reset_index(drop=True).assign(mark=mark, gene_set=gs))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def decay_length(by_distance: pd.DataFrame) -> pd.DataFrame:
    """Per mark and gene set, the e-fold decay length (bp) of mean |effect| with |distance|.

    Least-squares fit of ``log(mean |effect|) = a - |distance| / lambda`` over the bins
    (sequence-model papers show effect decaying with distance from the TSS). NaN when the fit
    has fewer than 3 bins or a non-negative slope.
    """
    rows = []
    for (mark, gs), sub in by_distance.groupby(["mark", "gene_set"]):
        d, e = sub["distance"].abs().to_numpy(float), sub["abs_effect"].to_numpy(float)
        ok = e > 0
        lam = np.nan
        if ok.sum() >= 3:
            slope = np.polyfit(d[ok], np.log(e[ok]), 1)[0]
            lam = -1.0 / slope if slope < 0 else np.nan
        rows.append({"mark": mark, "gene_set": gs, "decay_length_bp": lam, "n_bins": int(ok.sum())})
    return pd.DataFrame(rows)


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
) -> pd.DataFrame:
    """AUROC / AUPRC of ``-effect`` (a drop in predicted expression) for the planted enhancers.

    Two comparisons per (mark, gene set): ``all`` (every row) and ``matched`` (negatives
    re-weighted to the positives' distribution over ``strata``, e.g. the 2 kb position or a
    distance bin, so that distance alone cannot score). Scores: ``effect`` (= -effect),
    ``abs_effect`` and each of ``baselines`` (name -> score array aligned with ``table``, e.g.
    the distance-only baseline ``-|distance|``).

    Returns
    -------
    DataFrame with columns what, mark, gene_set, comparison, score, n_pos, n_neg, auroc, auprc,
    positive_rate
    """
    lab = labels.to_numpy(bool)
    rows = []
    extra = dict(baselines or {})
    for (mark, gs), idx in table.groupby(["mark", "gene_set"]).indices.items():
        y = lab[idx]
        scores = {"effect": -table["effect"].to_numpy()[idx], "abs_effect": table["effect"].abs().to_numpy()[idx]}
        scores.update({k: np.asarray(v)[idx] for k, v in extra.items()})
        for comparison in ("all", "matched"):
            w = np.ones(len(idx)) if comparison == "all" else _matched_weights(y, np.asarray(strata)[idx])
            for name, s in scores.items():
                auroc, auprc = _scores(y, s, w)
                keep = w > 0
                rows.append(
                    {
                        "what": what,
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
    "level_curves",
    "effect_by_distance",
    "decay_length",
    "read_planted_enhancers",
    "label_distal",
    "label_pcres",
    "recovery",
]
