"""Notebook 30's experiment: one promoter CNN per (mark, fold), tested on the fold's genes.

The network is :class:`chromexp.models.promoter_cnn.PromoterCNN`; this module trains it with the
study's protocol (:func:`chromexp.training.train.fit`, or :func:`chromexp.training.stacked.fit_many` for all
models at once) and evaluates it with :func:`chromexp.experiments.evaluation.evaluate_fold`.
:func:`compare_with_naive` sets its test Pearson r beside the naive correlation baselines.
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

from ..constants import MARKS
from ..models.promoter_cnn import build
from ..training import stacked, train
from ..utils import get_logger
from .evaluation import evaluate_fold, fold_split

log = get_logger("chromexp.experiments.promoter_cnn")

#: Model name in the results tables (docs/data-formats.md).
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
        Whether the models were trained at once (:func:`chromexp.training.stacked.fit_many`).
    models : dict
        ``{(mark, fold): PromoterCNN}`` with the best weights.
    reused : int
        Models read back from finished checkpoints instead of trained (e.g. by the fold jobs of
        ``chromexp batch --per-fold``, or an earlier run of the notebook).
    """

    metrics: pd.DataFrame
    predictions: pd.DataFrame
    history: pd.DataFrame
    seconds: float
    gene_epochs: int
    concurrent: bool
    models: dict = field(repr=False, default_factory=dict)
    reused: int = 0


def model_seed(seed: int, mark: str, fold: int) -> int:
    """Seed of the (mark, fold) model: distinct per model, the same in every run with ``seed``."""
    return int(seed) * 1000 + 10 * int(fold) + MARKS.index(mark)


def _digest(*arrays: np.ndarray, extra: object = None) -> str:
    h = hashlib.sha1(repr(extra).encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:12]


def cfg_for_digest(cfg: dict) -> dict:
    """``model.promoter_cnn`` without the keys that choose *which* models train, or how many at once.

    Checkpoint names hash the settings of one model; ``marks``, ``folds``, ``concurrent`` and
    ``checkpoints`` must not enter them, so that a model trained by a one-fold job is found by
    the all-folds run (and a sequential run resumes a concurrent one's models).
    """
    return {k: v for k, v in cfg.items() if k not in ("marks", "folds", "concurrent", "checkpoints")}


def _checkpoint_name(x_mark: np.ndarray, y: np.ndarray, split: dict, mark: str, fold: int, params: dict) -> str:
    """File name of the (mark, fold) model's checkpoint: a digest of its own data and settings."""
    tp, cfg = dict(params["train"]), cfg_for_digest(params["model"]["promoter_cnn"])
    tag = _digest(x_mark, y, split["train"], split["validation"], extra=(mark, fold, tp, cfg, params["seed"]))
    return f"{MODEL_NAME}_{mark}_fold{fold}_{tag}.pt"


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
    ``params["train"]`` (:func:`chromexp.training.train.fit`: Adam, MSE, early stopping on the fold's
    validation genes from ``dataset.split(fold)``) and predicts log2(RPKM + 1) of the fold's test
    genes; metrics are computed over all test genes of the fold at once.

    Parameters
    ----------
    dataset : chromexp.data.dataset.CellDataset
        Needs ``cell_type``, ``marks``, ``genes`` (``gene_id``, ``target``), ``promoter()`` and
        ``split()``.
    params : dict
        Merged parameters (``model.promoter_cnn``, ``train``, ``seed``, ``device``).
    marks, folds : sequences, optional
        Default: ``model.promoter_cnn.marks`` / ``.folds``, else the top-level ``marks`` / ``folds``.
    concurrent : bool or None
        Train all models at once with :func:`chromexp.training.stacked.fit_many`; ``None`` =
        ``model.promoter_cnn.concurrent``, whose ``null`` means "on CUDA only".
    device : str, torch.device or None
        ``None`` = ``params["device"]`` (itself ``null`` = CUDA if available, else CPU).
    checkpoint_dir : path or None
        Where to checkpoint (and resume) training: one file per (mark, fold) model, named by a
        digest of that model's data, fold split, seed and settings (:func:`cfg_for_digest`), so a
        changed setting never resumes a stale run, while a model finished by another call (one
        fold per job, another mark selection, sequential or concurrent) is read back, not retrained.
    progress : bool
        tqdm progress bars.

    Returns
    -------
    PromoterRun
    """
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
        splits[fold] = fold_split(dataset, fold)

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
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    # one checkpoint per (mark, fold), named by that model's own data and settings only (not by
    # which other marks or folds this call trains), so a run of one fold, one mark or all of them,
    # sequential or concurrent, finds the models another run finished (per-fold jobs: README, "Scale")
    ckpts = [
        ckdir / _checkpoint_name(x[:, marks.index(mark)], y, splits[fold], mark, fold, params) if ckdir else None
        for mark, fold in jobs
    ]
    names = [f"{mark} fold {fold}" for mark, fold in jobs]
    todo = [i for i, path in enumerate(ckpts) if not train.is_finished_checkpoint(path)]
    if len(todo) < len(jobs):
        log.info(
            "%d of %d models already trained (finished checkpoints in %s)", len(jobs) - len(todo), len(jobs), ckdir
        )

    t0 = time.perf_counter()
    results: list = [None] * len(jobs)
    if concurrent and todo:
        group_checkpoint = None
        if ckdir:  # named after its members, so a rerun of the same group resumes it
            group = hashlib.sha1(" ".join(ckpts[i].name for i in todo).encode()).hexdigest()[:12]
            group_checkpoint = ckdir / f"{MODEL_NAME}_group_{group}.pt"
        grouped = stacked.fit_many(
            [models[i] for i in todo],
            [trains[i] for i in todo],
            [vals[i] for i in todo],
            train_params=tp,
            device=dev,
            seeds=[seeds[i] for i in todo],
            checkpoint_path=group_checkpoint,
            progress=progress,
            names=[names[i] for i in todo],
            model_checkpoints=[ckpts[i] for i in todo],
        )
        for i, r in zip(todo, grouped, strict=True):
            results[i] = r
        if group_checkpoint is not None:
            group_checkpoint.unlink(missing_ok=True)  # every model is now in its own finished checkpoint
    for i, (model, tr, va, seed, path, name) in enumerate(zip(models, trains, vals, seeds, ckpts, names, strict=True)):
        if results[i] is None:  # trained one at a time, or read back from its finished checkpoint
            results[i] = train.fit(
                model,
                tr,
                va,
                train_params=tp,
                device=dev,
                seed=seed,
                checkpoint_path=path,
                progress=progress,
                name=name,
            )
    seconds = time.perf_counter() - t0

    metric_tables, pred_tables, histories, trained = [], [], [], {}
    for (mark, fold), r in zip(jobs, results, strict=True):
        j = marks.index(mark)
        trained[(mark, fold)] = r.model
        metrics, predictions = evaluate_fold(
            lambda rows, model=r.model, j=j: train.predict(model, xt[rows, j : j + 1], device=dev),
            splits[fold],
            cell_type=dataset.cell_type,
            model=MODEL_NAME,
            marks=mark,
            fold=fold,
            gene_ids=gene_ids,
            observed=y,
        )
        metric_tables.extend(metrics)
        pred_tables.append(predictions)
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
        reused=len(jobs) - len(todo),
    )


def compare_with_naive(
    test_metrics: pd.DataFrame, naive_abs: pd.DataFrame, marks: Sequence[str], provenance: str
) -> pd.DataFrame:
    """Per mark: the CNN's mean (± SD over folds) test Pearson r beside the best naive |r|.

    Parameters
    ----------
    test_metrics : pandas.DataFrame
        The CNN's tidy test metrics (``split == "test"``).
    naive_abs : pandas.DataFrame
        ``baselines.naive_correlations`` rows with ``metric == "abs_pearson_r"`` (one model per flank).
    marks : sequence of str
        Row order.
    provenance : str
        The dataset's provenance, written in the ``data`` column.

    Returns
    -------
    pandas.DataFrame
        Indexed by mark: ``cnn_pearson_r_mean, cnn_pearson_r_sd, best_naive_abs_r,
        best_naive_flank, cnn_minus_naive, data``.
    """
    cnn_r = test_metrics[test_metrics["metric"] == "pearson_r"].pivot_table(
        index="marks", columns="fold", values="value"
    )
    best_naive = naive_abs.pivot_table(index="marks", columns="model", values="value", aggfunc="mean")
    comparison = pd.DataFrame(
        {
            "cnn_pearson_r_mean": cnn_r.mean(axis=1),
            "cnn_pearson_r_sd": cnn_r.std(axis=1),
            "best_naive_abs_r": best_naive.max(axis=1),
            "best_naive_flank": best_naive.idxmax(axis=1),
        }
    ).reindex(list(marks))
    comparison["cnn_minus_naive"] = comparison["cnn_pearson_r_mean"] - comparison["best_naive_abs_r"]
    comparison["data"] = provenance
    return comparison


def answer(comparison: pd.DataFrame, n_folds: int, provenance: str) -> str:
    """Notebook 30's **Answer** paragraph, written from its CNN-vs-naive table."""
    from ..provenance import provenance_phrase

    c = comparison.dropna(subset=["cnn_pearson_r_mean"]).sort_values("cnn_pearson_r_mean", ascending=False)
    best, worst = c.index[0], c.index[-1]
    beat = [m for m in c.index if c.loc[m, "cnn_minus_naive"] > 0]
    return (
        f"**Answer.** {provenance_phrase(provenance)}, the best single mark at the promoter is {best} "
        f"(mean test Pearson r {c.loc[best, 'cnn_pearson_r_mean']:.3f} over {n_folds} fold(s)) and the weakest "
        f"is {worst} ({c.loc[worst, 'cnn_pearson_r_mean']:.3f}). The CNN beats the best naive |r| for "
        f"{len(beat)} of {len(c)} marks" + (f" ({', '.join(beat)})." if beat else ".")
    )
