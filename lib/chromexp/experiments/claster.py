"""Notebook 47's recipe: CLASTER adapted to this study, one model per (head, structure form, fold).

docs/methods.md, "CLASTER adapted". The network is :func:`chromexp.models.claster.adapted_model`
(EIR 0.1.43's geometry, tested against EIR itself); this module builds its inputs from the
dataset store and the pcHi-C file, trains it with the project's engine
(:func:`chromexp.training.train.fit`) on the same chromosome folds as every other model, and turns
each fold's test genes into the tidy metrics and predictions tables (``docs/data-formats.md``).

Inputs (option A, the default):

* **landscape**: the 7 marks × 400 bins of 100 bp over TSS ± 20 kb of the store
  (``CellDataset.promoter``; ln(mean depth + 1), strand-oriented), standardised with one global
  mean and SD of the training genes (EIR's ``normalization: channel`` with one channel);
* **structure** (optional): a *virtual 4C* track — 1-kb bins over TSS ± 200 kb holding, per bin,
  the largest normalised frequency of the pcHi-C interactions between the gene's bait fragment(s)
  and fragments overlapping the bin, 0 elsewhere — or CLASTER's *square map* — 5-kb bins over
  TSS ± 502.5 kb (201 × 201), log10(frequency) at every (bait bin, other bin) pair and its mirror,
  log10(1e-14) = −14 elsewhere, as CLASTER imputes its Micro-C maps. Both strand-oriented and
  globally standardised like the landscape.

Heads: ``gene`` = log2(RPKM + 1) (real and semi-synthetic data); ``profile`` = the 1-kb nascent
profile over TSS ± 20 kb (40 bins), simulated on semi-synthetic data only
(:mod:`chromexp.simulate.nascent`, processed as CLASTER processes its EU-seq targets:
:mod:`chromexp.data.nascent`). Targets are standardised on the training genes (per column for
the profile, as EIR's per-column StandardScaler) and trained with CLASTER's SmoothL1 (β = 1);
predictions are returned in target units, the profile clipped at 0 afterwards (CLASTER's
analysis-time ReLU).

Options B (± 100 kb) and C (± 500 kb, the paper's landscape) are configurations for real data:
on semi-synthetic data a landscape wider than the simulated reads is refused, because the
simulated reads exist only within TSS ± 21 kb and at pcHi-C fragments, so a wider window would
show the simulated 3-D structure through the 1-D track.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import paths
from ..constants import SEMI_SYNTHETIC
from ..data import dataset as dataset_mod
from ..data import io
from ..data import nascent as dn
from ..metrics import pearson_r, spearman_rho
from ..models import claster as C
from ..results import marks_key
from ..training import train
from ..utils import get_logger
from .evaluation import evaluate_fold, fold_split, metrics_table

log = get_logger("chromexp.experiments.claster")

#: Landscape half-window (bp) and residual layers of each option (docs/methods.md, "CLASTER adapted").
OPTIONS: dict[str, tuple[int, tuple[int, ...]]] = {
    "A": (20_000, (2, 2)),
    "B": (100_000, (3, 3)),
    "C": (500_000, (4, 4)),
}
HEADS = ("gene", "profile")
STRUCTURES = ("none", "virtual_4c", "square")
RESOLUTION = 100
#: Results-table model names (docs/data-formats.md).
MODEL_NAMES: dict[tuple[str, str], str] = {
    ("gene", "none"): "claster",
    ("gene", "virtual_4c"): "claster_v4c",
    ("gene", "square"): "claster_square",
    ("profile", "none"): "claster_profile",
    ("profile", "virtual_4c"): "claster_profile_v4c",
    ("profile", "square"): "claster_profile_square",
}
#: Columns of ``claster_profile_predictions.tsv.gz``.
PROFILE_PREDICTION_COLUMNS = (
    "cell_type",
    "model",
    "marks",
    "fold",
    "gene_id",
    "bin",
    "offset_kb",
    "observed",
    "predicted",
)
#: Imputed log10 frequency of the square map's empty cells (CLASTER's 1e-14).
SQUARE_EMPTY = -14.0


# ----------------------------------------------------------------------------------------------
# configuration
# ----------------------------------------------------------------------------------------------
def settings(params: Mapping) -> dict:
    """``model.claster`` with the marks and folds resolved and every value checked (a sentence per problem)."""
    cfg = dict(params["model"]["claster"])
    cfg["marks"] = list(cfg.get("marks") or params["marks"])
    cfg["folds"] = [int(f) for f in (cfg.get("folds") or params["folds"])]
    if cfg["option"] not in OPTIONS:
        raise ValueError(f"model.claster.option must be one of {list(OPTIONS)}; got {cfg['option']!r}.")
    bad = [h for h in cfg["heads"] if h not in HEADS]
    if bad or not cfg["heads"]:
        raise ValueError(f"model.claster.heads must be a non-empty subset of {list(HEADS)}; got {cfg['heads']!r}.")
    bad = [s for s in cfg["structures"] if s not in STRUCTURES]
    if bad or not cfg["structures"]:
        raise ValueError(
            f"model.claster.structures must be a non-empty subset of {list(STRUCTURES)}; got {cfg['structures']!r}."
        )
    if cfg["loss"] not in ("smooth_l1", "mse"):
        raise ValueError(f"model.claster.loss must be smooth_l1 or mse; got {cfg['loss']!r}.")
    return cfg


def half_window(cfg: Mapping) -> int:
    """The landscape's half-window (bp) of ``cfg["option"]``."""
    return OPTIONS[cfg["option"]][0]


def check_window(params: Mapping, provenance: str, half: int) -> None:
    """Refuse a landscape wider than the simulated reads on semi-synthetic data (it would leak the 3-D structure).

    Raises
    ------
    ValueError
        Naming the option, the window and ``simulate.half_window``.
    """
    simulated = int(params["simulate"]["half_window"])
    if provenance == SEMI_SYNTHETIC and half > simulated:
        raise ValueError(
            f"model.claster.option {params['model']['claster']['option']!r} asks for a landscape of TSS ± {half:,} bp, "
            f"but the semi-synthetic reads exist only within TSS ± {simulated:,} bp (simulate.half_window) and at "
            "pcHi-C fragments: a wider landscape would reveal the simulated 3-D structure through the 1-D track. "
            "Use option A on semi-synthetic data (options B and C are for real data)."
        )


def landscape_config(cfg: Mapping, n_marks: int) -> tuple[C.CNNConfig, tuple[int, int, int]]:
    """The landscape branch's EIR configuration and input shape for ``cfg["option"]`` and ``n_marks`` marks."""
    half, layers = OPTIONS[cfg["option"]]
    branch = replace(C.ADAPTED_LANDSCAPE, layers=layers, first_kernel_expansion_height=int(n_marks))
    return branch, (1, int(n_marks), 2 * half // RESOLUTION)


def build(cfg: Mapping, n_marks: int, head: str, structure: str, n_profile_bins: int = 40) -> C.ClasterNet:
    """The network of one (head, structure) model (seed torch before calling it)."""
    land, shape = landscape_config(cfg, n_marks)
    structure_arg = None if structure == "none" else structure
    bins = None
    if structure == "virtual_4c":
        bins = 2 * int(cfg["v4c_half_window"]) // int(cfg["v4c_bin"])
    elif structure == "square":
        bins = square_bins(cfg)
    return C.adapted_model(
        n_marks=shape[1],
        n_bins=shape[2],
        n_outputs=1 if head == "gene" else int(n_profile_bins),
        structure=structure_arg,
        structure_bins=bins,
        landscape=land,
    )


def square_bins(cfg: Mapping) -> int:
    """Bins per side of the square map: an odd number of ``square_bin``-bp bins centred on the TSS's bin."""
    return 2 * (int(cfg["square_half_window"]) // int(cfg["square_bin"])) + 1


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------
def _bait_pairs(genes: pd.DataFrame, pchic: pd.DataFrame) -> pd.DataFrame:
    """Every (gene, interaction) whose bait fragment contains the gene's TSS: gene_index, other_*, frequency."""
    g = genes.reset_index(drop=True).assign(gene_index=np.arange(len(genes)))
    m = g[["gene_index", "gene_id", "chrom", "tss", "strand"]].merge(pchic, left_on="chrom", right_on="bait_chrom")
    m = m[(m["tss"] >= m["bait_start"]) & (m["tss"] < m["bait_end"]) & (m["other_chrom"] == m["chrom"])]
    return m.reset_index(drop=True)


def virtual_4c(
    genes: pd.DataFrame, pchic: pd.DataFrame, half: int = 200_000, bin_bp: int = 1_000
) -> tuple[np.ndarray, pd.DataFrame]:
    """The virtual-4C track of each gene and the contacts it is made of.

    Parameters
    ----------
    genes : pandas.DataFrame
        ``gene_id, chrom, tss, strand`` (the dataset's genes, in store order).
    pchic : pandas.DataFrame
        :func:`chromexp.data.io.read_pchic` of the cell type's tissue.
    half, bin_bp : int
        TSS ± ``half`` in ``bin_bp`` bins.

    Returns
    -------
    track : numpy.ndarray, shape (n_genes, 2 * half // bin_bp), float32
        Per bin the largest normalised frequency of the contacts of the gene's bait fragment(s)
        with a fragment overlapping the bin (0 without one); bin 0 most upstream (strand-oriented).
    contacts : pandas.DataFrame
        One row per (gene, contacted fragment) overlapping the window: ``gene_index, gene_id,
        chrom, start, end, frequency, first_bin, last_bin`` (oriented bins, inclusive) and
        ``distance`` (bp from the TSS to the fragment's centre, transcription orientation).
    """
    if (2 * half) % bin_bp:
        raise ValueError(f"The virtual-4C window 2 x {half} bp must be a multiple of its bin ({bin_bp} bp).")
    n_bins = 2 * half // bin_bp
    track = np.zeros((len(genes), n_bins), dtype=np.float32)
    m = _bait_pairs(genes, pchic)
    lo = m["tss"].to_numpy() - half
    a = np.floor((m["other_start"].to_numpy() - lo) / bin_bp).astype(np.int64)
    b = np.ceil((m["other_end"].to_numpy() - lo) / bin_bp).astype(np.int64) - 1
    keep = (b >= 0) & (a < n_bins)
    m, a, b = m[keep].reset_index(drop=True), np.clip(a[keep], 0, n_bins - 1), np.clip(b[keep], 0, n_bins - 1)
    minus = (m["strand"] == "-").to_numpy()
    first = np.where(minus, n_bins - 1 - b, a)
    last = np.where(minus, n_bins - 1 - a, b)
    freq = m["frequency"].to_numpy(np.float32)
    gi = m["gene_index"].to_numpy()
    for i, f0, f1, f in zip(gi, first, last, freq, strict=True):
        track[i, f0 : f1 + 1] = np.maximum(track[i, f0 : f1 + 1], f)
    centre = (m["other_start"].to_numpy() + m["other_end"].to_numpy()) / 2
    distance = np.where(minus, m["tss"].to_numpy() - centre, centre - m["tss"].to_numpy())
    contacts = pd.DataFrame(
        {
            "gene_index": gi,
            "gene_id": m["gene_id"].to_numpy(),
            "chrom": m["chrom"].to_numpy(),
            "start": m["other_start"].to_numpy(np.int64),
            "end": m["other_end"].to_numpy(np.int64),
            "frequency": m["frequency"].to_numpy(float),
            "first_bin": first.astype(np.int64),
            "last_bin": last.astype(np.int64),
            "distance": distance.astype(np.int64),
        }
    )
    # one row per (gene, fragment): a fragment contacted by two bait fragments of a gene keeps its top frequency
    contacts = contacts.sort_values(
        ["gene_index", "start", "frequency"], ascending=[True, True, False], kind="mergesort"
    )
    return track, contacts.drop_duplicates(["gene_index", "chrom", "start", "end"]).reset_index(drop=True)


def square_map(genes: pd.DataFrame, pchic: pd.DataFrame, half: int = 502_500, bin_bp: int = 5_000) -> np.ndarray:
    """CLASTER's square contact map of each gene from its pcHi-C interactions (strand-oriented).

    ``2 · half / bin_bp`` bins per side (201 for ± 502.5 kb at 5 kb; the TSS in the central bin);
    every (bait bin, other bin) pair of the gene's interactions and its mirror hold log10 of the
    largest frequency, all other cells log10(1e-14) = −14 (CLASTER's imputation value).

    Returns
    -------
    numpy.ndarray, shape (n_genes, n, n), float32
    """
    n = 2 * half // bin_bp
    if (2 * half) % bin_bp or n % 2 == 0:
        raise ValueError(f"The square map needs an odd number of {bin_bp}-bp bins over 2 x {half} bp.")
    out = np.full((len(genes), n, n), SQUARE_EMPTY, dtype=np.float32)
    m = _bait_pairs(genes, pchic)
    lo = m["tss"].to_numpy() - half

    def bins(start, end):
        a = np.floor((start - lo) / bin_bp).astype(np.int64)
        b = np.ceil((end - lo) / bin_bp).astype(np.int64) - 1
        return a, b

    ba, bb = bins(m["bait_start"].to_numpy(), m["bait_end"].to_numpy())
    oa, ob = bins(m["other_start"].to_numpy(), m["other_end"].to_numpy())
    value = np.log10(m["frequency"].to_numpy(np.float64)).astype(np.float32)
    minus = (m["strand"] == "-").to_numpy()
    for i, a0, a1, b0, b1, v, flip in zip(m["gene_index"], ba, bb, oa, ob, value, minus, strict=True):
        a0, a1, b0, b1 = max(a0, 0), min(a1, n - 1), max(b0, 0), min(b1, n - 1)
        if a0 > a1 or b0 > b1:
            continue
        if flip:
            a0, a1, b0, b1 = n - 1 - a1, n - 1 - a0, n - 1 - b1, n - 1 - b0
        block = out[i, a0 : a1 + 1, b0 : b1 + 1]
        np.maximum(block, v, out=block)
        mirror = out[i, b0 : b1 + 1, a0 : a1 + 1]
        np.maximum(mirror, v, out=mirror)
    return out


@dataclass
class ClasterData:
    """Everything the models of one cell type see (numpy arrays in store gene order).

    Attributes
    ----------
    landscape : numpy.ndarray, shape (n_genes, n_marks, n_bins), float32
    structure : dict
        ``"virtual_4c"`` → (n_genes, bins) and/or ``"square"`` → (n_genes, n, n), float32.
    contacts : pandas.DataFrame
        The virtual-4C contacts (:func:`virtual_4c`); empty without that structure.
    gene_target : numpy.ndarray, shape (n_genes,)
        log2(RPKM + 1).
    profile_target : numpy.ndarray or None, shape (n_genes, n_profile_bins)
        The nascent 1-kb profile (semi-synthetic data only).
    marks : list of str
    provenance : str
    """

    landscape: np.ndarray
    structure: dict[str, np.ndarray]
    contacts: pd.DataFrame
    gene_target: np.ndarray
    profile_target: np.ndarray | None
    marks: list[str]
    provenance: str


def load_inputs(ds, params: Mapping, cfg: Mapping | None = None) -> ClasterData:
    """Build the landscape, the structure inputs and the targets of ``ds`` for ``model.claster``.

    Raises
    ------
    ValueError
        A window wider than the simulated reads on semi-synthetic data; a profile head on real
        data; a missing pcHi-C file or nascent track (naming the file).
    """
    cfg = cfg or settings(params)
    half = half_window(cfg)
    check_window(params, ds.provenance, half)
    missing = [m for m in cfg["marks"] if m not in ds.marks]
    if missing:
        raise ValueError(f"model.claster.marks {missing} are not in the dataset of {ds.cell_type} ({list(ds.marks)}).")
    landscape = ds.promoter(marks=cfg["marks"], resolution=RESOLUTION, half_window=half)
    structure, contacts = {}, pd.DataFrame()
    forms = [s for s in cfg["structures"] if s != "none"]
    if forms:
        path = dataset_mod.input_files(params, ds.cell_type)["pchic"]
        if not Path(path).is_file():
            raise ValueError(f"model.claster.structures {forms} need the pcHi-C file {path}, which is missing.")
        pchic = io.read_pchic(path)
        if "virtual_4c" in forms:
            structure["virtual_4c"], contacts = virtual_4c(
                ds.genes, pchic, int(cfg["v4c_half_window"]), int(cfg["v4c_bin"])
            )
        if "square" in forms:
            structure["square"] = square_map(ds.genes, pchic, int(cfg["square_half_window"]), int(cfg["square_bin"]))
    profile = None
    if "profile" in cfg["heads"]:
        if ds.provenance != SEMI_SYNTHETIC:
            raise ValueError(
                "model.claster.heads includes 'profile', but this dataset is real and has no nascent-transcription "
                "track: use heads [gene] on real data."
            )
        raw = paths.raw_dir(params)
        track = dn.read_track(dn.track_path(raw, ds.cell_type))
        profile = dn.profile_targets(track, ds.genes, half_window=min(half, int(params["signal"]["half_window"])))
    return ClasterData(
        landscape=np.ascontiguousarray(landscape, dtype=np.float32),
        structure=structure,
        contacts=contacts,
        gene_target=ds.genes["target"].to_numpy(np.float32),
        profile_target=profile,
        marks=list(cfg["marks"]),
        provenance=ds.provenance,
    )


# ----------------------------------------------------------------------------------------------
# the fitted model: standardisation in, target units out
# ----------------------------------------------------------------------------------------------
class Predictor(nn.Module):
    """A trained network with its input standardisation and target scaling (raw inputs → target units).

    ``forward(landscape, structure=None)`` takes the raw inputs (ln depth; virtual-4C frequencies
    or square log10 maps), standardises each branch with its training mean/SD, runs the network and
    returns predictions in target units (log2(RPKM + 1), or reads for the profile, clipped at 0).
    Perturbations (notebook 47) therefore act on raw inputs, as the study's perturbations do.
    """

    def __init__(self, net: C.ClasterNet, input_stats: Mapping[str, tuple[float, float]], y_mean, y_sd, clip: bool):
        super().__init__()
        self.net = net
        self.branches = tuple(net.branch_names)
        for name in self.branches:
            mean, sd = input_stats[name]
            self.register_buffer(f"mean_{name}", torch.tensor(float(mean)))
            self.register_buffer(f"sd_{name}", torch.tensor(float(sd)))
        self.register_buffer("y_mean", torch.as_tensor(np.asarray(y_mean, dtype=np.float32)))
        self.register_buffer("y_sd", torch.as_tensor(np.asarray(y_sd, dtype=np.float32)))
        self.clip = bool(clip)

    def standardise(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """Branch ``name``'s raw input → the network's scale."""
        return (x - getattr(self, f"mean_{name}")) / getattr(self, f"sd_{name}")

    def forward(self, landscape: torch.Tensor, structure: torch.Tensor | None = None) -> torch.Tensor:
        """Raw ``landscape`` (and ``structure``) → predictions in target units."""
        inputs = {"landscape": self.standardise("landscape", landscape)}
        if "structure" in self.branches:
            if structure is None:
                raise ValueError("This CLASTER model has a structure branch: pass its input.")
            inputs["structure"] = self.standardise("structure", structure)
        out = self.net(**inputs) * self.y_sd + self.y_mean
        return out.clamp_min(0.0) if self.clip else out


def _stats(x: np.ndarray) -> tuple[float, float]:
    """One global mean and SD (EIR's ``channel`` normalisation with one channel); SD 1 for a constant input."""
    mean, sd = float(x.mean(dtype=np.float64)), float(x.std(dtype=np.float64))
    return mean, sd if sd > 0 else 1.0


# ----------------------------------------------------------------------------------------------
# training and evaluation
# ----------------------------------------------------------------------------------------------
@dataclass
class ClasterRun:
    """Results of :func:`train_and_evaluate`.

    Attributes
    ----------
    metrics : pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``) of every model: the gene head's Pearson r,
        Spearman ρ, R², MSE; the profile head's binwise and gene-area correlations (test and
        validation splits).
    predictions : pandas.DataFrame
        Gene-head test predictions (``results.PREDICTION_COLUMNS``).
    profile_predictions : pandas.DataFrame
        Profile-head test predictions (:data:`PROFILE_PREDICTION_COLUMNS`), empty without that head.
    history : pandas.DataFrame
        Per-epoch training history with ``model`` and ``fold``.
    models : dict
        ``{(model name, fold): Predictor}``.
    seconds : float
    gene_epochs : int
    reused : int
        Models read back from finished checkpoints.
    """

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    profile_predictions: pd.DataFrame
    history: pd.DataFrame
    models: dict = field(repr=False, default_factory=dict)
    seconds: float = 0.0
    gene_epochs: int = 0
    reused: int = 0


def jobs(cfg: Mapping) -> list[tuple[str, str]]:
    """The (head, structure) models of ``cfg``: gene heads for every structure form, profile heads landscape-only.

    The profile head is the reproduction of CLASTER's task; the structure comparison is made with
    the gene head (on real data too) unless ``profile_structures`` is true.
    """
    out = [("gene", s) for s in cfg["structures"]] if "gene" in cfg["heads"] else []
    if "profile" in cfg["heads"]:
        out += [("profile", s) for s in (cfg["structures"] if cfg.get("profile_structures") else ["none"])]
    return out


def model_seed(seed: int, head: str, structure: str, fold: int) -> int:
    """Seed of one model: distinct per (head, structure, fold), the same in every run with ``seed``."""
    return int(seed) * 1000 + 500 + 10 * int(fold) + HEADS.index(head) * 5 + STRUCTURES.index(structure)


def _digest(*arrays, extra) -> str:
    h = hashlib.sha1(repr(extra).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def _cfg_for_digest(cfg: Mapping) -> dict:
    return {k: v for k, v in cfg.items() if k not in ("folds", "heads", "structures", "checkpoints", "perturbation")}


def profile_metrics(observed: np.ndarray, predicted: np.ndarray, gene_lengths: np.ndarray) -> dict[str, float]:
    """CLASTER's evaluation of a 1-kb profile head over a set of genes.

    * binwise Pearson r and Spearman ρ over all (gene, bin) pairs of log2(reads + 1);
    * gene level: each gene's mean signal over its body inside the window (Simpson's rule over the
      bins from the TSS bin to the gene end, clipped to the window, divided by the width in bins),
      correlated between observation and prediction over genes.
    """
    obs, pred = np.asarray(observed, float), np.asarray(predicted, float)
    lo, hi = np.log2(obs.ravel() + 1.0), np.log2(np.clip(pred, 0, None).ravel() + 1.0)
    area_o, area_p = dn.body_area(obs, gene_lengths), dn.body_area(pred, gene_lengths)
    return {
        "binwise_pearson_r": pearson_r(lo, hi),
        "binwise_spearman_rho": spearman_rho(lo, hi),
        "gene_area_pearson_r": pearson_r(area_o, area_p),
        "gene_area_spearman_rho": spearman_rho(area_o, area_p),
    }


def train_and_evaluate(
    ds,
    data: ClasterData,
    params: Mapping,
    *,
    cfg: Mapping | None = None,
    gene_lengths: np.ndarray | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> ClasterRun:
    """Train one CLASTER per (head, structure, fold) and evaluate it on the fold's test genes.

    Parameters
    ----------
    ds : chromexp.data.dataset.CellDataset
    data : ClasterData
        From :func:`load_inputs`.
    params : mapping
        Merged parameters (``model.claster``, ``train``, ``seed``, ``device``).
    gene_lengths : numpy.ndarray, optional
        Per gene, for the profile head's gene-level metric (default: the raw ``genes.tsv`` lengths).
    checkpoint_dir : path, optional
        One checkpoint per model, named by a digest of its data, fold and settings (resume and
        read back, as notebook 30).

    Returns
    -------
    ClasterRun
    """
    cfg = cfg or settings(params)
    tp = dict(params["train"])
    if cfg.get("lr") is not None:
        tp["lr"] = float(cfg["lr"])
    if cfg.get("max_epochs") is not None:
        tp["max_epochs"] = int(cfg["max_epochs"])
    tp["weight_decay"] = float(cfg["weight_decay"])
    dev = train.resolve_device(device if device is not None else params.get("device"))
    gene_ids = ds.genes["gene_id"].to_numpy()
    marks = marks_key(data.marks)
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    metric_tables, preds, prof_preds, histories, models = [], [], [], [], {}
    reused, gene_epochs, t0 = 0, 0, time.perf_counter()
    for fold in cfg["folds"]:
        split = fold_split(ds, fold)
        for head, structure in jobs(cfg):
            name = MODEL_NAMES[(head, structure)]
            y = data.gene_target if head == "gene" else data.profile_target
            if y is None:
                raise ValueError(f"{name}: no {head} target in the inputs (load them with heads including {head!r}).")
            xs = {"landscape": data.landscape}
            if structure != "none":
                xs["structure"] = data.structure[structure]
            tr, va = split["train"], split["validation"]
            stats = {k: _stats(v[tr]) for k, v in xs.items()}
            y2 = y.reshape(len(y), -1).astype(np.float64)
            y_mean, y_sd = y2[tr].mean(axis=0), y2[tr].std(axis=0)
            y_sd = np.where(y_sd > 0, y_sd, 1.0)
            z = ((y2 - y_mean) / y_sd).astype(np.float32)
            if head == "gene":
                z, y_mean, y_sd = z[:, 0], y_mean[0], y_sd[0]
            std = {k: torch.from_numpy(((v - stats[k][0]) / stats[k][1]).astype(np.float32)) for k, v in xs.items()}
            seed = model_seed(params["seed"], head, structure, fold)
            torch.manual_seed(seed)
            net = build(cfg, data.landscape.shape[1], head, structure, n_profile_bins=y2.shape[1])
            path = None
            if ckdir is not None:
                tag = _digest(*xs.values(), y, tr, va, extra=(name, fold, tp, _cfg_for_digest(cfg), params["seed"]))
                path = ckdir / f"{name}_fold{fold}_{tag}.pt"
            reused += int(train.is_finished_checkpoint(path))
            zt = torch.from_numpy(z)
            fit = train.fit(
                net,
                ({k: v[tr] for k, v in std.items()}, zt[tr]),
                ({k: v[va] for k, v in std.items()}, zt[va]),
                train_params=tp,
                loss=cfg["loss"],
                optimizer=cfg["optimizer"],
                device=dev,
                seed=seed,
                checkpoint_path=path,
                progress=progress,
                name=f"{name} fold {fold}",
            )
            gene_epochs += len(tr) * (len(fit.history) - fit.resumed_from)
            predictor = Predictor(fit.model, stats, y_mean, y_sd, clip=head == "profile").eval()
            models[(name, fold)] = predictor
            histories.append(fit.history.assign(model=name, fold=fold, best_epoch=fit.best_epoch))
            raw = {k: torch.from_numpy(v) for k, v in xs.items()}

            def predict(rows, predictor=predictor, raw=raw):
                return train.predict(predictor, {k: v[rows] for k, v in raw.items()}, device=dev)

            ids = dict(cell_type=ds.cell_type, model=name, marks=marks, fold=fold)
            if head == "gene":
                m, p = evaluate_fold(predict, split, gene_ids=gene_ids, observed=y, **ids)
                metric_tables.extend(m)
                preds.append(p)
                continue
            lengths = gene_lengths if gene_lengths is not None else np.full(len(y), 1e9)
            for part in ("test", "validation"):
                rows = split[part]
                out = predict(rows)
                values = profile_metrics(y[rows], out, lengths[rows])
                metric_tables.append(metrics_table(values, **ids, split=part, n_genes=rows.size))
                if part == "test":
                    n_bins = y.shape[1]
                    prof_preds.append(
                        pd.DataFrame(
                            {
                                **ids,
                                "gene_id": np.repeat(gene_ids[rows], n_bins),
                                "bin": np.tile(np.arange(n_bins), rows.size),
                                "offset_kb": np.tile(np.arange(n_bins) - n_bins // 2, rows.size),
                                "observed": y[rows].ravel(),
                                "predicted": out.ravel(),
                            }
                        )
                    )
    empty_prof = pd.DataFrame(columns=list(PROFILE_PREDICTION_COLUMNS))
    return ClasterRun(
        metrics=pd.concat(metric_tables, ignore_index=True),
        predictions=pd.concat(preds, ignore_index=True) if preds else pd.DataFrame(),
        profile_predictions=pd.concat(prof_preds, ignore_index=True) if prof_preds else empty_prof,
        history=pd.concat(histories, ignore_index=True),
        models=models,
        seconds=time.perf_counter() - t0,
        gene_epochs=int(gene_epochs),
        reused=reused,
    )


def gene_lengths(params: Mapping, ds) -> np.ndarray:
    """Gene lengths (bp) of the dataset's genes from the raw ``genes.tsv`` (for the profile head's gene-level value).

    Raises
    ------
    ValueError
        When ``genes.tsv`` has no ``gene_length`` column or lacks a gene (naming how many).
    """
    path = dataset_mod.input_files(params, ds.cell_type)["genes"]
    table = pd.read_csv(path, sep="\t", dtype={"gene_id": str})
    if "gene_length" not in table.columns:
        raise ValueError(f"{path} has no gene_length column: the profile head's gene-level metric needs it.")
    lengths = table.drop_duplicates("gene_id").set_index("gene_id")["gene_length"].reindex(ds.genes["gene_id"])
    if lengths.isna().any():
        raise ValueError(f"{int(lengths.isna().sum())} dataset genes have no gene_length in {path}.")
    return lengths.to_numpy(np.float64)


def check_results(fitted: ClasterRun, ds) -> None:
    """Every model has exactly one finite prediction per test gene of each fold (profiles: one per gene and bin).

    Raises
    ------
    ValueError
        Naming the first (model, fold) that is incomplete, duplicated or non-finite.
    """
    gene_ids = ds.genes["gene_id"].to_numpy()
    tables = [(fitted.predictions, 1), (fitted.profile_predictions, None)]
    for table, per_gene in tables:
        if table is None or table.empty:
            continue
        if not np.isfinite(table["predicted"].to_numpy(float)).all():
            raise ValueError(f"{ds.cell_type}: non-finite CLASTER predictions.")
        for (model, fold), g in table.groupby(["model", "fold"]):
            want = set(gene_ids[ds.split(int(fold))["test"]])
            counts = g.groupby("gene_id").size()
            n = per_gene or int(counts.iloc[0])
            if set(counts.index) != want or (counts != n).any():
                raise ValueError(
                    f"{ds.cell_type} {model} fold {fold}: predictions for {len(counts)} genes "
                    f"({int(counts.sum())} rows) but {len(want)} test genes; each needs exactly {n}."
                )
    missing = fitted.metrics.loc[(fitted.metrics["metric"] != "r2") & fitted.metrics["value"].isna()]
    if len(missing):
        raise ValueError(f"{ds.cell_type}: missing CLASTER metric values:\n{missing.head()}")
