"""Notebooks 40 and 50's experiment: one Chromoformer per (mark set, fold); compare mark sets.

:func:`train_and_evaluate` trains one Chromoformer per (mark set, fold) with the study's protocol
(``chromexp.training.train.fit``: AdamW as the reference, lr 1e-3, batch 64, MSE or cross-entropy,
ReduceLROnPlateau and early stopping on the fold's validation genes), evaluates it with
:func:`chromexp.experiments.evaluation.evaluate_fold` and returns tidy metrics and predictions
(docs/data-formats.md). The Fig. 4A/C and Fig. 5 comparisons are derived from the tidy metrics
tables by :mod:`chromexp.analyses.gains` (the same functions notebook 90 uses); :func:`gain_summary`,
:func:`pair_summary` and the answers summarise them for one cell type.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..constants import anchor_pairs
from ..models import chromoformer as cf
from ..models import chromoformer_inputs as ci
from ..results import marks_key
from ..training import train
from ..utils import get_logger
from .evaluation import evaluate_fold, fold_split

log = get_logger("chromexp.experiments.chromoformer")

MODEL_NAMES = {"reg": "chromoformer_reg", "clf": "chromoformer_clf"}


def architecture_from_params(cfg: Mapping) -> dict:
    """``params["model"]["chromoformer"]`` -> the ``architecture`` argument of the models."""
    return {
        "d_emb": int(cfg["d_model"]),
        "d_head": int(cfg["head_hidden"]),
        "embed": {
            "n_layers": cfg["embed_layers"],
            "n_heads": cfg["embed_heads"],
            "d_model": cfg["d_model"],
            "d_ff": cfg["embed_ff"],
        },
        "pairwise_interaction": {
            "n_layers": cfg["pairwise_layers"],
            "n_heads": cfg["pairwise_heads"],
            "d_model": cfg["d_model"],
            "d_ff": cfg["pairwise_ff"],
        },
        "regulation": {
            "n_layers": cfg["reg_layers"],
            "n_heads": cfg["reg_heads"],
            "d_model": cfg["d_model_reg"],
            "d_ff": cfg["reg_ff"],
        },
    }


def build(params: Mapping, n_marks: int, kind: str | None = None):
    """The Chromoformer of ``params["model"]["chromoformer"]`` for ``n_marks`` input marks."""
    cfg = params["model"]["chromoformer"]
    return cf.build_model(
        kind or cfg["kind"],
        n_marks,
        architecture_from_params(cfg),
        bool(cfg["full_attention"]),
        resolutions=ci.model_order(params["signal"]["resolutions"]),
    )


def mark_sets_from_params(params: Mapping) -> list[tuple[str, ...]]:
    """Notebook 50's mark sets: ``mark_sets`` if given, else the anchor pairs over ``marks``."""
    cfg = params["model"]["chromoformer"]
    if cfg["mark_sets"]:
        sets = [tuple(s) for s in cfg["mark_sets"]]
        for s in sets:
            marks_key(s)  # validates the marks
        return sets
    return anchor_pairs(cfg["pair_anchors"], params["marks"])


def model_seed(seed: int, marks: Sequence[str], fold: int) -> int:
    """A seed per (mark set, fold), stable across runs and processes."""
    return (int(seed) * 1_000_003 + zlib.crc32(f"{marks_key(marks)}|{fold}".encode())) % 2**31


@dataclass
class ChromoformerRun:
    """Result of :func:`train_and_evaluate`."""

    metrics: pd.DataFrame  # results.METRIC_COLUMNS
    predictions: pd.DataFrame  # results.PREDICTION_COLUMNS (+ label, probability for clf)
    history: pd.DataFrame  # per epoch, with marks and fold
    seconds: float
    n_parameters: dict  # marks_key -> parameter count
    workers: int = 1  # models trained at once (worker processes; 1 = in this process)
    reused: int = 0  # models read back from finished checkpoints (fold jobs, notebook 40 for 50, a rerun)


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def concurrency_from_params(params: Mapping) -> int:
    """``model.chromoformer.concurrent`` as a number of worker processes (null -> 1, sequential)."""
    n = params["model"]["chromoformer"].get("concurrent")
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"model.chromoformer.concurrent must be null or a positive integer, got {n!r}.")
    return n


@dataclass(frozen=True)
class _Context:
    """What training and evaluating one (mark set, fold) needs; sent once to each worker process.

    Tensors travel to workers through shared memory (``torch.multiprocessing``), not as copies.
    """

    inputs: Mapping[str, torch.Tensor]  # all of the dataset's marks
    dataset_marks: tuple[str, ...]
    y: torch.Tensor  # training target (float for reg, int64 labels for clf)
    y_reg: np.ndarray
    labels: np.ndarray
    gene_ids: np.ndarray
    splits: Mapping[int, Mapping[str, np.ndarray]]
    params: Mapping
    cell_type: str
    device: str
    checkpoint_dir: Path | None
    progress: bool


@dataclass
class _Job:
    """One trained and evaluated model: the pieces of :class:`ChromoformerRun`."""

    metrics: list
    predictions: pd.DataFrame
    history: pd.DataFrame
    n_parameters: int
    reused: bool = False  # read back from a finished checkpoint, not trained


def _train_one(ctx: _Context, marks: tuple[str, ...], fold: int) -> _Job:
    """Train one Chromoformer on ``marks`` for ``fold`` and evaluate it: the one recipe of both paths.

    The sequential path calls it in this process, the concurrent path in a worker; the seed, the
    checkpoint name and every number come from ``ctx`` and (marks, fold) only, so both give the
    same model and tables.
    """
    params = ctx.params
    cfg, tp = params["model"]["chromoformer"], params["train"]
    kind = cfg["kind"]
    name = MODEL_NAMES[kind]
    key = marks_key(marks)
    split = ctx.splits[fold]
    dev = torch.device(ctx.device)
    x = ci.select_marks(ctx.inputs, [ctx.dataset_marks.index(m) for m in marks])
    seed = model_seed(params["seed"], marks, fold)
    torch.manual_seed(seed)
    model = build(params, len(marks))
    n_parameters = cf.count_parameters(model)
    tag = _digest(
        [
            key,
            fold,
            dict(tp),
            dict(cfg_for_digest(cfg)),
            params["seed"],
            len(ctx.gene_ids),
            split["train"][:50].tolist(),
        ]
    )
    ckdir = ctx.checkpoint_dir
    checkpoint = ckdir / f"{name}_{key}_fold{fold}_{tag}.pt" if ckdir else None
    result = train.fit(
        model,
        (ci.subset(x, split["train"]), ctx.y[split["train"]]),
        (ci.subset(x, split["validation"]), ctx.y[split["validation"]]),
        train_params=tp,
        loss="mse" if kind == "reg" else "cross_entropy",
        optimizer=cfg["optimizer"],
        device=dev,
        seed=seed,
        checkpoint_path=checkpoint,
        progress=ctx.progress,
        name=f"{name} {key} fold {fold}",
    )
    history = result.history.assign(marks=key, fold=fold, best_epoch=result.best_epoch)
    metrics, predictions = evaluate_fold(
        lambda rows: train.predict(result.model, ci.subset(x, rows), batch_size=int(tp["batch_size"]) * 4, device=dev),
        split,
        cell_type=ctx.cell_type,
        model=name,
        marks=key,
        fold=fold,
        gene_ids=ctx.gene_ids,
        observed=ctx.y_reg,
        labels=None if kind == "reg" else ctx.labels,
    )
    # no epoch run in this call: the model was read back from its finished checkpoint
    reused = result.resumed_from == len(result.history)
    return _Job(metrics, predictions, history, n_parameters, reused)


def cfg_for_digest(cfg: Mapping) -> dict:
    """``model.chromoformer`` without the keys that do not change a model: which models train, how many at once.

    Checkpoint names hash the parameters of one (mark set, fold) model. ``concurrent`` must not
    enter them, so a run started sequentially resumes concurrently and vice versa; nor may the
    selection keys (``marks``, ``all_marks``, ``folds``, ``mark_sets``, ``pair_anchors``,
    ``checkpoints``), so that a model trained by a one-fold job (``chromexp batch --per-fold``)
    or by notebook 40 is found by the all-folds run or by notebook 50.
    """
    return {k: v for k, v in cfg.items() if k not in _SELECTION_KEYS}


#: ``model.chromoformer`` keys that choose which models train (and how), not what a model is.
_SELECTION_KEYS = ("concurrent", "marks", "all_marks", "folds", "mark_sets", "pair_anchors", "checkpoints")


# the worker process's context, set once by _worker_init
_WORKER: _Context | None = None


def _worker_init(ctx: _Context, threads: int, parent_pid: int, log_level: int) -> None:
    """Worker initializer: the shared context, its share of the CPU threads, die with the parent."""
    global _WORKER
    from ..utils import die_with_parent

    die_with_parent(parent_pid)
    torch.set_num_threads(threads)
    get_logger().setLevel(log_level)
    _WORKER = ctx


def _worker_job(marks: tuple[str, ...], fold: int) -> _Job:
    assert _WORKER is not None, "_worker_init did not run"
    return _train_one(_WORKER, marks, fold)


def _run_concurrent(
    ctx: _Context, jobs: list[tuple[tuple[str, ...], int]], n_workers: int, name: str, progress: bool
) -> list[_Job]:
    """Run ``jobs`` in ``n_workers`` spawned processes sharing the device; results in job order.

    A job that raises stops the run: jobs not started are cancelled, running ones finish (their
    checkpoints stay valid for a resume) and a ``RuntimeError`` names the (marks, fold) that failed.
    Nothing is returned, so no table is written from a partial run. ``progress`` shows a bar of the
    finished models (the workers' own per-epoch bars are off; their log lines stay).
    """
    import concurrent.futures as cfut
    import os

    import torch.multiprocessing as tmp
    from tqdm.auto import tqdm

    try:  # once, here: the workers then map the same memory instead of receiving copies
        for tensor in [*ctx.inputs.values(), ctx.y]:
            tensor.share_memory_()
    except RuntimeError as err:
        size = sum(t.numel() * t.element_size() for t in ctx.inputs.values()) / 2**30
        raise RuntimeError(
            f"Could not place the {size:.2f} GiB of model inputs in shared memory for the {n_workers} {name} "
            f"worker processes ({err}). Enlarge /dev/shm (e.g. docker --shm-size) or set "
            "model.chromoformer.concurrent to 1 (sequential)."
        ) from err
    threads = max(1, torch.get_num_threads() // n_workers)
    log.info(
        "training %d %s models in %d worker processes on %s (%d CPU thread(s) each)",
        len(jobs),
        name,
        n_workers,
        ctx.device,
        threads,
    )
    done: dict[int, _Job] = {}
    with cfut.ProcessPoolExecutor(
        max_workers=n_workers,
        mp_context=tmp.get_context("spawn"),
        initializer=_worker_init,
        initargs=(ctx, threads, os.getpid(), get_logger().getEffectiveLevel()),
    ) as pool:
        futures = {pool.submit(_worker_job, marks, fold): i for i, (marks, fold) in enumerate(jobs)}
        bar = tqdm(total=len(jobs), desc=f"{name} ({n_workers} at a time)", unit="model", disable=not progress)
        try:
            for future in cfut.as_completed(futures):
                i = futures[future]
                marks, fold = jobs[i]
                try:
                    done[i] = future.result()
                except cfut.process.BrokenProcessPool as err:
                    running = [f"{marks_key(m)} fold {f}" for j, (m, f) in enumerate(jobs) if j not in done]
                    raise RuntimeError(
                        f"A {name} worker process died (killed, out of memory or crashed) while training one of: "
                        f"{', '.join(running)}. The finished models' checkpoints are kept; re-run to resume. "
                        "(From a Python script, call this under `if __name__ == '__main__':`: the spawned "
                        "workers import the script again.)"
                    ) from err
                except Exception as err:
                    raise RuntimeError(
                        f"Training {name} {marks_key(marks)} fold {fold} failed in a worker process: "
                        f"{type(err).__name__}: {err}"
                    ) from err
                bar.update()
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            bar.close()
    return [done[i] for i in range(len(jobs))]


def train_and_evaluate(
    dataset,
    params: Mapping,
    mark_sets: Sequence[Sequence[str]],
    *,
    folds: Sequence[int] | None = None,
    device=None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = True,
    inputs: Mapping[str, torch.Tensor] | None = None,
    concurrent: int | None = None,
) -> ChromoformerRun:
    """Train one Chromoformer per (mark set, fold) and evaluate it on the fold's test genes.

    Parameters
    ----------
    dataset : chromexp.data.dataset.CellDataset
    params : mapping
        Merged parameters (``model.chromoformer``, ``train``, ``seed``, ``device``, ``folds``).
    mark_sets : sequence of sequences of str
        E.g. ``[["H3K4me3"], ["H3K4me1", ..., "H3K9ac"]]``.
    folds : sequence of int, optional
        Default ``model.chromoformer.folds`` or the top-level ``folds``.
    device : str, torch.device or None
        ``None`` = ``params["device"]`` (itself null = CUDA if available).
    checkpoint_dir : path or None
        Checkpoint (and resume) each model's training here.
    inputs : dict of tensors, optional
        Precomputed ``chromoformer_inputs.dataset_inputs(dataset, dataset.marks)`` (all marks).
    concurrent : int or None
        Worker processes training models at once on ``device`` (default
        ``model.chromoformer.concurrent``; 1 or null = one after the other in this process). Each
        worker trains whole (mark set, fold) models with the same seeds, recipe and checkpoints as
        the sequential path, so the tables are the same; the CPU threads (``torch.get_num_threads()``,
        i.e. ``OMP_NUM_THREADS``) are divided among the workers. Chromoformer cannot be stacked and
        vmapped like the promoter CNN (its fast path indexes data-dependently), hence processes.
        Workers are spawned, so a Python script that calls this must do so under
        ``if __name__ == "__main__":`` (notebooks and ``chromexp run`` need nothing).

    Returns
    -------
    ChromoformerRun
    """
    cfg = params["model"]["chromoformer"]
    kind = cfg["kind"]
    if kind not in MODEL_NAMES:
        raise ValueError(f"model.chromoformer.kind must be one of {sorted(MODEL_NAMES)} for training, got {kind!r}.")
    name = MODEL_NAMES[kind]
    folds = [int(f) for f in (folds or cfg["folds"] or params["folds"])]
    mark_sets = [tuple(s) for s in mark_sets]
    if not mark_sets or not folds:
        raise ValueError(f"Nothing to train: mark_sets={mark_sets}, folds={folds}.")
    for s in mark_sets:
        missing = [m for m in s if m not in dataset.marks]
        if missing:
            raise ValueError(
                f"Mark(s) {missing} are not in the dataset of {dataset.cell_type} (it has {list(dataset.marks)})."
            )
        marks_key(s)
    n_workers = concurrency_from_params(params) if concurrent is None else int(concurrent)
    if n_workers < 1:
        raise ValueError(f"concurrent must be a positive number of worker processes, got {concurrent!r}.")
    if inputs is None:
        inputs = ci.dataset_inputs(dataset, list(dataset.marks))
    genes = dataset.genes
    y_reg = genes["target"].to_numpy(np.float32)
    labels = genes["label"].to_numpy(np.int64)
    dev = train.resolve_device(device if device is not None else params.get("device"))
    jobs = [(marks, fold) for fold in folds for marks in mark_sets]  # fold-major, as the tables
    n_workers = min(n_workers, len(jobs))
    ctx = _Context(
        inputs=dict(inputs),
        dataset_marks=tuple(dataset.marks),
        y=torch.tensor(y_reg) if kind == "reg" else torch.tensor(labels),  # own (writable) memory, shared with workers
        y_reg=y_reg,
        labels=labels,
        gene_ids=genes["gene_id"].to_numpy(),
        splits={fold: fold_split(dataset, fold) for fold in folds},
        params=params,
        cell_type=dataset.cell_type,
        device=str(dev),
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir is not None else None,
        progress=progress and n_workers == 1,
    )
    t0 = time.perf_counter()
    if n_workers == 1:
        done = [_train_one(ctx, marks, fold) for marks, fold in jobs]
    else:
        done = _run_concurrent(ctx, jobs, n_workers, name, progress)
    n_params = {marks_key(marks): job.n_parameters for (marks, _), job in zip(jobs, done, strict=True)}
    return ChromoformerRun(
        metrics=pd.concat([m for job in done for m in job.metrics], ignore_index=True),
        predictions=pd.concat([job.predictions for job in done], ignore_index=True),
        history=pd.concat([job.history for job in done], ignore_index=True),
        seconds=time.perf_counter() - t0,
        n_parameters=n_params,
        workers=n_workers,
        reused=sum(job.reused for job in done),
    )


def distal_mark_sets(params: Mapping) -> list[tuple[str, ...]]:
    """Notebook 40's mark sets: each single mark of ``model.chromoformer.marks`` (default all), then all marks.

    The all-marks set is added when ``model.chromoformer.all_marks`` is true.
    """
    cfg = params["model"]["chromoformer"]
    all_marks = list(params["marks"])
    singles = list(cfg["marks"] or all_marks)
    return [(m,) for m in singles] + ([tuple(all_marks)] if cfg["all_marks"] else [])


def has_test_results(metrics: pd.DataFrame, model: str, marks: Sequence[str] | str, folds: Sequence[int]) -> bool:
    """Whether ``metrics`` holds ``model``'s test rows of ``marks`` for every fold in ``folds``."""
    if metrics.empty:
        return False
    rows = metrics[(metrics["model"] == model) & (metrics["marks"] == marks_key(marks)) & (metrics["split"] == "test")]
    return set(folds) <= set(rows["fold"])


def pair_training_plan(
    previous: pd.DataFrame,
    mark_sets: Sequence[Sequence[str]],
    all_marks: Sequence[str],
    model: str,
    folds: Sequence[int],
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """What notebook 50 must train: the pairs, plus the references notebook 40 has not left behind.

    The references of the pairs are their single marks and the all-marks model; those whose test
    metrics for ``folds`` are already in ``previous`` (this run's metrics) are reused.

    Returns
    -------
    to_train : list of tuple of str
        The mark sets to train, pairs first, without duplicates.
    reused : list of tuple of str
        The references found in ``previous``.
    """
    singles = sorted({(m,) for s in mark_sets for m in s})
    references = [*singles, tuple(all_marks)]
    reused = [s for s in references if has_test_results(previous, model, s, folds)]
    missing = [s for s in references if s not in reused]
    return list(dict.fromkeys([*(tuple(s) for s in mark_sets), *missing])), reused


def gain_summary(gains: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """Mean over folds of :func:`chromexp.analyses.gains.gain_over_promoter`'s columns per mark set, with ``n_folds`` and ``data``."""
    if gains.empty:
        return pd.DataFrame(columns=["distal", "promoter", "gain", "n_folds", "data"])
    summary = gains.groupby("marks")[["distal", "promoter", "gain"]].mean()
    return summary.assign(n_folds=gains.groupby("marks").size(), data=provenance)


def pair_summary(pairs: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """Per mark set, the means over folds of :func:`chromexp.analyses.gains.pair_gains`, best gain over the better single mark first."""
    summary = pairs.groupby("marks").agg(
        pearson_r=("value", "mean"),
        best_single=("best_single", "first"),
        gain_over_best_single=("gain_over_best_single", "mean"),
        gain_over_all_marks=("gain_over_all_marks", "mean"),
    )
    return summary.assign(data=provenance).sort_values("gain_over_best_single", ascending=False)


def distal_answer(metrics: pd.DataFrame, gains: pd.DataFrame, model: str, metric: str, provenance: str) -> str:
    """Notebook 40's **Answer** paragraph, written from its test metrics and gains over the promoter CNN."""
    from ..provenance import provenance_phrase
    from .evaluation import mean_test_metric

    means = mean_test_metric(metrics, model, metric)
    text = (
        f"**Answer.** {provenance_phrase(provenance)}, the best {model} mark set is {means.index[0]} "
        f"(mean test {metric} {means.iloc[0]:.3f}); the weakest is {means.index[-1]} ({means.iloc[-1]:.3f})."
    )
    if len(gains):
        g = gains.groupby("marks")["gain"].mean().sort_values(ascending=False)
        text += (
            f" Over the promoter CNN on the same genes and folds, {int((g > 0).sum())} of {len(g)} marks gain; "
            f"the largest gain is {g.index[0]} ({g.iloc[0]:+.3f})."
        )
    else:
        text += " No promoter CNN results of this run were available to compare with."
    return text


def pair_answer(pairs: pd.DataFrame, provenance: str) -> str:
    """Notebook 50's **Answer** paragraph, written from :func:`chromexp.analyses.gains.pair_gains`."""
    from ..provenance import provenance_phrase

    s = pair_summary(pairs, provenance)
    top = s.index[0]
    return (
        f"**Answer.** {provenance_phrase(provenance)}, the pair that adds most over its better single mark is "
        f"{top} ({s.loc[top, 'gain_over_best_single']:+.3f} Pearson r over {s.loc[top, 'best_single']}); "
        f"{int((s['gain_over_best_single'] > 0).sum())} of {len(s)} pairs beat their better single mark, and "
        f"the best pair is {s['gain_over_all_marks'].max():+.3f} from the all-marks model."
    )
