"""The promoter CNN of the study (chromexpress ``covnet``; DeepChrome-like), DESIGN.md §4.2.

Input: binned histone-mark signal around the TSS, shape ``(batch, marks, 60)`` — TSS ± 3 kb at
100 bp, strand-oriented so that bin 0 is the most upstream bin and the TSS lies between bins 29
and 30 (``CellDataset.promoter(half_window=3000, resolution=100)``). Output: predicted
log2(RPKM + 1), shape ``(batch,)``.

Architecture (exactly the reference Keras model)::

    Conv1d(175, k=8, 'same') → ReLU → MaxPool(4) → Dropout(0.1)     60 → 15 bins
    Conv1d(350, k=4, 'same') → ReLU → MaxPool(2) → Dropout(0.1)     15 →  7 bins
    Conv1d(700, k=4, 'same') → ReLU → MaxPool(2) → Dropout(0.1)      7 →  3 bins
    Flatten (700 × 3 = 2100) → Dropout(0.4) → Linear(625) → ReLU → Linear(125) → ReLU → Linear(1)

2,619,126 parameters for one mark (each extra mark adds 8 × 175 = 1,400 first-layer weights).
Keras ``padding='same'`` with an even kernel pads ``(k - 1) // 2`` zeros on the left and the rest
on the right (3 / 4 for k = 8; 1 / 2 for k = 4); torch's ``padding='same'`` does the same (tested).
Max pooling floors like Keras' default ``padding='valid'`` (15 → 7 → 3).

The paper text mentions batch normalisation in each block, but the code that produced the
published numbers has none; ``batch_norm=False`` is therefore the default and ``True`` inserts
``BatchNorm1d`` between each convolution and its ReLU.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..constants import MARKS
from ..utils import get_logger

log = get_logger("chromexp.models.promoter_cnn")

#: The reference architecture's numbers (DESIGN.md §4.2).
N_BINS = 60
CONV_CHANNELS: tuple[int, int, int] = (175, 350, 700)
CONV_KERNELS: tuple[int, int, int] = (8, 4, 4)
POOL_SIZES: tuple[int, int, int] = (4, 2, 2)
DENSE_UNITS: tuple[int, int] = (625, 125)
CONV_DROPOUT = 0.1
DENSE_DROPOUT = 0.4
#: Parameter count of the one-mark model as published (chromexpress ``covnet``).
N_PARAMETERS_ONE_MARK = 2_619_126


def same_padding(kernel_size: int) -> tuple[int, int]:
    """(left, right) zero padding of TF/Keras ``padding='same'`` for stride 1: ``(k - 1) // 2`` left, rest right."""
    total = int(kernel_size) - 1
    return total // 2, total - total // 2


def flattened_bins(n_bins: int = N_BINS, pools: Sequence[int] = POOL_SIZES) -> int:
    """Number of bins left after the three max-pool layers (floor division, as Keras does)."""
    for p in pools:
        n_bins //= p
    return n_bins


class PromoterCNN(nn.Module):
    """Promoter CNN: binned marks at TSS ± 3 kb → predicted log2 expression.

    Parameters
    ----------
    n_marks : int
        Number of histone marks (input channels); 1 for the paper's single-mark models.
    n_bins : int
        Bins per mark (60 = TSS ± 3 kb at 100 bp). Must survive the pooling (≥ 16).
    batch_norm : bool
        Insert ``BatchNorm1d`` after each convolution (the paper text; not the published code).
    conv_dropout, dense_dropout : float
        Dropout rates after each conv block and before the first dense layer (0.1 and 0.4).
    n_outputs : int
        Output units: 1 (regression, or one logit for a binary classifier) or the number of classes.

    Shapes
    ------
    ``forward(x)``: ``x`` float tensor ``(batch, n_marks, n_bins)`` → ``(batch,)`` when
    ``n_outputs == 1``, else ``(batch, n_outputs)``.
    """

    def __init__(
        self,
        n_marks: int = 1,
        n_bins: int = N_BINS,
        batch_norm: bool = False,
        conv_dropout: float = CONV_DROPOUT,
        dense_dropout: float = DENSE_DROPOUT,
        n_outputs: int = 1,
    ):
        super().__init__()
        if int(n_marks) < 1:
            raise ValueError(f"n_marks must be at least 1; got {n_marks}.")
        if flattened_bins(int(n_bins)) < 1:
            raise ValueError(f"n_bins={n_bins} is too short for pooling by {POOL_SIZES} (need at least 16 bins).")
        if int(n_outputs) < 1:
            raise ValueError(f"n_outputs must be at least 1; got {n_outputs}.")
        self.n_marks, self.n_bins, self.n_outputs = int(n_marks), int(n_bins), int(n_outputs)
        self.batch_norm = bool(batch_norm)
        blocks = []
        in_ch = self.n_marks
        for out_ch, k, pool in zip(CONV_CHANNELS, CONV_KERNELS, POOL_SIZES, strict=True):
            # explicit Keras-style 'same' padding; torch's padding="same" gives the same result
            # but copies the input on every call with an even kernel (and warns about it)
            layers: list[nn.Module] = [nn.ConstantPad1d(same_padding(k), 0.0), nn.Conv1d(in_ch, out_ch, kernel_size=k)]
            if self.batch_norm:
                layers.append(nn.BatchNorm1d(out_ch))
            layers += [nn.ReLU(), nn.MaxPool1d(pool), nn.Dropout(conv_dropout)]
            blocks.append(nn.Sequential(*layers))
            in_ch = out_ch
        self.conv = nn.Sequential(*blocks)
        n_flat = CONV_CHANNELS[-1] * flattened_bins(self.n_bins)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dense_dropout),
            nn.Linear(n_flat, DENSE_UNITS[0]),
            nn.ReLU(),
            nn.Linear(DENSE_UNITS[0], DENSE_UNITS[1]),
            nn.ReLU(),
            nn.Linear(DENSE_UNITS[1], self.n_outputs),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.n_marks or x.shape[2] != self.n_bins:
            raise ValueError(
                f"PromoterCNN expects input of shape (batch, {self.n_marks} marks, {self.n_bins} bins); got {tuple(x.shape)}."
            )
        # torch flattens (700 channels, 3 bins) channel-major; Keras flattens (3 bins, 700 channels)
        # bin-major. That only permutes the first dense layer's inputs: the same model family.
        out = self.head(self.conv(x))
        return out.squeeze(-1) if self.n_outputs == 1 else out


def build(params: dict, n_marks: int, n_outputs: int = 1) -> PromoterCNN:
    """Build a :class:`PromoterCNN` from the merged parameters (``params["model"]["promoter_cnn"]``)."""
    cfg = params["model"]["promoter_cnn"]
    half = int(cfg.get("half_window", 3000))
    res = int(cfg.get("resolution", 100))
    if (2 * half) % res:
        raise ValueError(f"model.promoter_cnn: 2 × half_window ({2 * half}) must be a multiple of resolution ({res}).")
    return PromoterCNN(n_marks=n_marks, n_bins=2 * half // res, batch_norm=bool(cfg["batch_norm"]), n_outputs=n_outputs)


# ----------------------------------------------------------------------------------------------
# one model per (mark, fold): what notebook 30 runs
# ----------------------------------------------------------------------------------------------
#: Model name in the results tables (DESIGN.md §4.9).
MODEL_NAME = "promoter_cnn"


@dataclass
class PromoterRun:
    """Results of :func:`train_and_evaluate`.

    Attributes
    ----------
    metrics : pandas.DataFrame
        Tidy metrics (``results.METRIC_COLUMNS``): Pearson r, Spearman ρ, R², MSE over all test
        genes (``split="test"``) and all validation genes (``split="validation"``) of each
        (mark, fold) model.
    predictions : pandas.DataFrame
        ``results.PREDICTION_COLUMNS``: one row per (mark, fold, test gene).
    history : pandas.DataFrame
        The per-epoch training history of every model, with ``marks`` and ``fold`` columns.
    seconds : float
        Wall time of training (all models).
    gene_epochs : int
        Training genes × epochs run, summed over the models (``gene_epochs / seconds`` = genes/s).
    concurrent : bool
        Whether the models were trained at once (:func:`chromexp.train_stacked.fit_many`).
    models : dict
        ``{(mark, fold): PromoterCNN}`` with the best weights.
    """

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    history: pd.DataFrame
    seconds: float
    gene_epochs: int
    concurrent: bool
    models: dict = field(repr=False, default_factory=dict)


def model_seed(seed: int, mark: str, fold: int) -> int:
    """Seed of the (mark, fold) model: distinct per model, the same in every run with ``seed``."""
    return int(seed) * 1000 + 10 * int(fold) + MARKS.index(mark)


def _digest(*arrays: np.ndarray, extra: object = None) -> str:
    h = hashlib.sha1(repr(extra).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def train_and_evaluate(
    dataset,
    params: dict,
    *,
    marks: Sequence[str] | None = None,
    folds: Sequence[int] | None = None,
    concurrent: bool | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
) -> PromoterRun:
    """Train one promoter CNN per (mark, fold) and evaluate it on the fold's test genes.

    Each model sees one mark's TSS ± 3 kb signal (``dataset.promoter``), is trained with
    ``params["train"]`` (:func:`chromexp.train.fit`: Adam, MSE, early stopping on the fold's
    validation genes from ``dataset.split(fold)``) and predicts log2(RPKM + 1) of the fold's test
    genes; metrics are computed over all test genes of the fold at once.

    Parameters
    ----------
    dataset : chromexp.dataset.CellDataset
        Needs ``cell_type``, ``marks``, ``genes`` (``gene_id``, ``target``), ``promoter()`` and
        ``split()``.
    params : dict
        Merged parameters (``model.promoter_cnn``, ``train``, ``seed``, ``device``).
    marks, folds : sequences, optional
        Default: ``model.promoter_cnn.marks`` / ``.folds``, else the top-level ``marks`` / ``folds``.
    concurrent : bool or None
        Train all models at once with :func:`chromexp.train_stacked.fit_many`; ``None`` =
        ``model.promoter_cnn.concurrent``, whose ``null`` means "on CUDA only".
    device : str, torch.device or None
        ``None`` = ``params["device"]`` (itself ``null`` = CUDA if available, else CPU).
    checkpoint_dir : path or None
        Where to checkpoint (and resume) training. File names carry a digest of the data,
        the marks, folds and training parameters, so a changed setting never resumes a stale run.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    PromoterRun
    """
    from .. import train, train_stacked
    from ..metrics import regression_metrics, tidy_metrics

    cfg = params["model"]["promoter_cnn"]
    marks = list(marks or cfg.get("marks") or params["marks"])
    folds = [int(f) for f in (folds or cfg.get("folds") or params["folds"])]
    missing = [m for m in marks if m not in dataset.marks]
    if missing:
        raise ValueError(
            f"Mark(s) {missing} are not in the dataset of {dataset.cell_type} (it has {list(dataset.marks)})."
        )
    if not marks or not folds:
        raise ValueError(f"Nothing to train: marks={marks}, folds={folds}.")
    half, res = int(cfg["half_window"]), int(cfg["resolution"])
    x = np.asarray(dataset.promoter(marks=marks, resolution=res, half_window=half), dtype=np.float32)
    n_genes = len(dataset.genes)
    if x.shape != (n_genes, len(marks), 2 * half // res):
        raise ValueError(
            f"dataset.promoter returned shape {x.shape}; expected {(n_genes, len(marks), 2 * half // res)}."
        )
    if not np.isfinite(x).all():
        raise ValueError(
            f"dataset.promoter has {int((~np.isfinite(x)).sum())} non-finite values for {dataset.cell_type}."
        )
    y = dataset.genes["target"].to_numpy(dtype=np.float32)
    gene_ids = dataset.genes["gene_id"].to_numpy()
    splits = {}
    for fold in folds:
        split = {k: np.asarray(v, dtype=np.int64) for k, v in dataset.split(fold).items()}
        for part in ("train", "validation", "test"):
            if split[part].size == 0:
                raise ValueError(
                    f"Fold {fold} of {dataset.cell_type} has no {part} genes; cannot train or evaluate it."
                )
        splits[fold] = split

    tp = params["train"]
    dev = train.resolve_device(device if device is not None else params.get("device"))
    if concurrent is None:
        concurrent = cfg.get("concurrent")
    if concurrent is None:
        concurrent = dev.type == "cuda"
    if concurrent and cfg["batch_norm"]:
        log.info("batch norm keeps running statistics, which fit_many cannot stack: training the models one by one")
        concurrent = False

    jobs = [(mark, fold) for fold in folds for mark in marks]
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    models, trains, vals, seeds = [], [], [], []
    for mark, fold in jobs:
        j, s = marks.index(mark), splits[fold]
        seed = model_seed(params["seed"], mark, fold)
        torch.manual_seed(seed)
        models.append(build(params, n_marks=1))
        trains.append((xt[s["train"], j : j + 1], yt[s["train"]]))
        vals.append((xt[s["validation"], j : j + 1], yt[s["validation"]]))
        seeds.append(seed)
    tag = _digest(x, y, *(splits[f]["train"] for f in folds), extra=(marks, folds, dict(tp), dict(cfg), params["seed"]))
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    names = [f"{mark} fold {fold}" for mark, fold in jobs]

    t0 = time.perf_counter()
    if concurrent:
        results = train_stacked.fit_many(
            models,
            trains,
            vals,
            train_params=tp,
            device=dev,
            seeds=seeds,
            checkpoint_path=ckdir / f"{MODEL_NAME}_all_{tag}.pt" if ckdir else None,
            progress=progress,
            names=names,
        )
    else:
        results = [
            train.fit(
                model,
                tr,
                va,
                train_params=tp,
                device=dev,
                seed=seed,
                checkpoint_path=ckdir / f"{MODEL_NAME}_{mark}_fold{fold}_{tag}.pt" if ckdir else None,
                progress=progress,
                name=name,
            )
            for model, tr, va, seed, (mark, fold), name in zip(models, trains, vals, seeds, jobs, names, strict=True)
        ]
    seconds = time.perf_counter() - t0

    metric_tables, pred_tables, histories, trained = [], [], [], {}
    for (mark, fold), r in zip(jobs, results, strict=True):
        j, s = marks.index(mark), splits[fold]
        trained[(mark, fold)] = r.model
        for part in ("test", "validation"):
            idx = s[part]
            pred = train.predict(r.model, xt[idx, j : j + 1], device=dev)
            metric_tables.append(
                tidy_metrics(
                    regression_metrics(y[idx], pred),
                    cell_type=dataset.cell_type,
                    model=MODEL_NAME,
                    marks=mark,
                    scheme="chrom_folds",
                    fold=fold,
                    split=part,
                    n_genes=idx.size,
                )
            )
            if part == "test":
                pred_tables.append(
                    pd.DataFrame(
                        {
                            "cell_type": dataset.cell_type,
                            "model": MODEL_NAME,
                            "marks": mark,
                            "fold": fold,
                            "gene_id": gene_ids[idx],
                            "observed": y[idx],
                            "predicted": pred,
                        }
                    )
                )
        histories.append(r.history.assign(marks=mark, fold=fold, best_epoch=r.best_epoch))
    gene_epochs = sum(len(tr[1]) * (len(r.history) - r.resumed_from) for tr, r in zip(trains, results, strict=True))
    return PromoterRun(
        metrics=pd.concat(metric_tables, ignore_index=True),
        predictions=pd.concat(pred_tables, ignore_index=True),
        history=pd.concat(histories, ignore_index=True),
        seconds=seconds,
        gene_epochs=int(gene_epochs),
        concurrent=bool(concurrent),
        models=trained,
    )
