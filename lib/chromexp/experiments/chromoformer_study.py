"""Notebook 45's experiment: Chromoformer's own study in one cell type (docs/methods.md, "Chromoformer's own study").

One model per (family, task, promoter window, fold), trained on the dataset's chromosome folds and
evaluated on the held-out fold like every model of chromexp (:func:`evaluation.evaluate_fold`):

* **window study** (paper Fig. 3a): Chromoformer and the promoter baselines DeepChrome,
  AttentiveChrome and HM-CRNN (:mod:`chromexp.models`) at promoter windows of 2-40 kb, cut
  centrally from the stored ± 20 kb window (:func:`chromoformer_inputs.crop_promoter`; Chromoformer
  at 100 / 500 / 2,000 bp, the baselines at 100 bp, i.e. w / 100 bins; the pCRE window stays 40 kb);
* **Embedding-only ablation** (Fig. 3b, 3c): :class:`~chromexp.models.chromoformer.ChromoformerEmbeddingOnly`
  at the stored 40-kb window, beside the intact model of the same window;
* **baselines** (Fig. 2b, 2d): every family has a classification (``_clf``) and a regression
  (``_reg``) head; their numbers go to the same tables, keyed like Chromoformer's.

Training settings: the Chromoformer models use ``chromoformer_study.protocol`` (default
``chromoformer``, the paper's: AdamW, lr 3e-5 × 0.87 per epoch, batch 64, 10 epochs, the last
epoch's model; ``chromexp.training.train``); each baseline uses its published settings
(``baselines.<name>`` in the parameters: optimizer, learning rate, batch size, epochs, gradient
clipping) under the engine's ``fixed`` protocol, whose final model is the epoch with the best
validation AUROC (classification; the three reference codes keep the best validation AUROC) or the
lowest validation MSE (regression).

The results are two tidy tables per cell type, in the format of ``metrics.tsv`` /
``predictions.tsv.gz`` with two more key columns, ``window`` (bp) and ``protocol``
(docs/data-formats.md, "Chromoformer study tables"). The statistics of the notebook (mean ± SE over
folds, paired tests, pCRE subsets, planted truth) are in :mod:`chromexp.analyses.chromoformer_study`.
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

from .. import results
from ..models import attentivechrome, deepchrome, hmcrnn
from ..models import chromoformer as cf
from ..models import chromoformer_inputs as ci
from ..results import marks_key
from ..training import train
from ..utils import get_logger, progress_bar
from .chromoformer import architecture_from_params, cfg_for_digest
from .evaluation import evaluate_fold, fold_split

log = get_logger("chromexp.experiments.chromoformer_study")

#: Model families of the study; ``chromoformer_embedding_only`` is the ablation (never in the window list).
FAMILIES: tuple[str, ...] = ("chromoformer", "chromoformer_embedding_only", "deepchrome", "attentivechrome", "hmcrnn")
BASELINES: tuple[str, ...] = ("deepchrome", "attentivechrome", "hmcrnn")
TASKS: tuple[str, ...] = ("clf", "reg")
#: The baselines' bin size (bp): DeepChrome, AttentiveChrome and HM-CRNN read 100-bp bins.
BASELINE_RESOLUTION = 100
#: Key columns the study tables add to ``results.METRIC_KEY`` / ``results.PREDICTION_KEY``.
EXTRA_KEY: tuple[str, ...] = ("window", "protocol")
METRICS_FILE = "chromoformer_study_metrics.tsv"
PREDICTIONS_FILE = "chromoformer_study_predictions.tsv.gz"
HISTORY_FILE = "chromoformer_study_history.tsv"


@dataclass(frozen=True)
class Spec:
    """One model of the study: family, task and promoter window (bp)."""

    family: str
    task: str
    window: int

    @property
    def model(self) -> str:
        """The ``model`` value of its table rows (``deepchrome_clf``)."""
        return f"{self.family}_{self.task}"

    @property
    def name(self) -> str:
        """For messages and progress bars."""
        return f"{self.model} {self.window / 1000:g} kb"


# ----------------------------------------------------------------------------------------------
# parameters
# ----------------------------------------------------------------------------------------------
def study_settings(params: Mapping) -> dict:
    """``params["chromoformer_study"]`` checked against the dataset geometry; ``protocol`` resolved.

    Raises
    ------
    ValueError
        Naming the key: unknown model or task, a window that is not a positive multiple of every
        resolution and of 2 x the baselines' 100-bp bins, or larger than the stored window.
    """
    s = dict(params["chromoformer_study"])
    models = list(s["models"])
    unknown = [m for m in models if m not in ("chromoformer", *BASELINES)]
    if not models or unknown or len(set(models)) != len(models):
        raise ValueError(
            f"chromoformer_study.models must be distinct names from {['chromoformer', *BASELINES]}; got {models}."
        )
    tasks = list(s["tasks"])
    if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
        raise ValueError(f"chromoformer_study.tasks must be distinct values from {list(TASKS)}; got {tasks}.")
    stored = 2 * int(params["signal"]["half_window"])
    resolutions = [int(r) for r in params["signal"]["resolutions"]]
    windows = [int(w) for w in s["windows"]]
    for w in windows:
        if w <= 0 or w > stored or w % 2 or any(w % r for r in resolutions):
            raise ValueError(
                f"chromoformer_study.windows: {w} bp must be positive, at most the stored window ({stored} bp) and a "
                f"multiple of every resolution {resolutions}."
            )
    if not windows or len(set(windows)) != len(windows):
        raise ValueError(f"chromoformer_study.windows must be a non-empty list of distinct windows; got {windows}.")
    if BASELINE_RESOLUTION not in resolutions and set(models) & set(BASELINES):
        raise ValueError(f"The baselines read {BASELINE_RESOLUTION}-bp bins; signal.resolutions has {resolutions}.")
    if "hmcrnn" in models and len(params["marks"]) != hmcrnn.KERNEL:
        raise ValueError(f"HM-CRNN's 7 x 7 convolution needs the 7 marks; marks is {list(params['marks'])}.")
    protocol = s["protocol"] or params["train"]["protocol"]
    if protocol not in train.PROTOCOLS:
        raise ValueError(f"chromoformer_study.protocol must be one of {list(train.PROTOCOLS)}; got {protocol!r}.")
    folds = [int(f) for f in (s["folds"] or params["folds"])]
    return {**s, "models": models, "tasks": tasks, "windows": sorted(windows), "protocol": protocol, "folds": folds}


def plan(params: Mapping) -> list[Spec]:
    """The models notebook 45 trains: every (model, task, window), then the Embedding-only ablation.

    The ablation compares the Embedding-only and the intact Chromoformer at the stored window (40 kb,
    the paper's), so the intact model of that window is included even when the window list or
    ``models`` does not have it.
    """
    s = study_settings(params)
    specs = [Spec(m, t, w) for m in s["models"] for t in s["tasks"] for w in s["windows"]]
    if s["ablation"]:
        top = ablation_window(params)
        for t in s["tasks"]:
            if Spec("chromoformer", t, top) not in specs:
                specs.append(Spec("chromoformer", t, top))
            specs.append(Spec("chromoformer_embedding_only", t, top))
    return specs


def ablation_window(params: Mapping) -> int:
    """The window (bp) of the Embedding-only ablation: the stored one (2 x ``signal.half_window``, 40 kb)."""
    return 2 * int(params["signal"]["half_window"])


def published_window(family: str, params: Mapping) -> int:
    """The window (bp) a family was published with: Chromoformer 40 kb, each baseline's ``baselines.<name>.window``."""
    if family.startswith("chromoformer"):
        return 2 * int(params["signal"]["half_window"])
    return int(params["baselines"][family]["window"])


# ----------------------------------------------------------------------------------------------
# models, inputs and training settings
# ----------------------------------------------------------------------------------------------
def build(spec: Spec, params: Mapping, n_marks: int):
    """The untrained network of ``spec`` for ``n_marks`` input marks."""
    if spec.family in ("chromoformer", "chromoformer_embedding_only"):
        cfg = params["model"]["chromoformer"]
        return cf.build_model(
            spec.task,
            n_marks,
            architecture_from_params(cfg),
            bool(cfg["full_attention"]),
            resolutions=ci.model_order(params["signal"]["resolutions"]),
            variant="embedding_only" if spec.family == "chromoformer_embedding_only" else "full",
        )
    n_bins = spec.window // BASELINE_RESOLUTION
    if spec.family == "deepchrome":
        return deepchrome.DeepChrome(n_marks, n_bins, spec.task)
    if spec.family == "attentivechrome":
        return attentivechrome.AttentiveChrome(n_marks, spec.task)
    if spec.family == "hmcrnn":
        return hmcrnn.HMCRNN(n_marks, n_bins, spec.task)
    raise ValueError(f"Unknown model family {spec.family!r}; known: {list(FAMILIES)}.")


def model_inputs(spec: Spec, inputs: Mapping[str, torch.Tensor], log_base: float):
    """The inputs of ``spec`` from the dataset's Chromoformer inputs (all resolutions, the study's marks).

    Chromoformer: the dict with the promoter cropped to the spec's window; a baseline: the cropped
    100-bp promoter tensor (batch, marks, window / 100).
    """
    cropped = ci.crop_promoter(inputs, spec.window, log_base)
    if spec.family.startswith("chromoformer"):
        return cropped
    return cropped[f"promoter_{BASELINE_RESOLUTION}"]


@dataclass(frozen=True)
class Setup:
    """How one model is trained: ``train.fit`` arguments."""

    train_params: dict
    loss: object  # "mse", "cross_entropy" or a callable(output, target, reduction)
    optimizer: str
    score: object  # None or callable(outputs, targets) -> float, higher is better


def _focal(output, target, reduction="mean"):
    """HM-CRNN's focal loss (gamma 2) in the engine's loss signature (mean over the batch)."""
    return hmcrnn.focal_loss(output, target, reduction=reduction)


def validation_auroc(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """AUROC of validation outputs (two logits or one logit per gene) against 0/1 labels; NaN with one class."""
    from sklearn.metrics import roc_auc_score

    out = outputs.float()
    score = (out[:, 1] - out[:, 0]) if out.ndim == 2 and out.shape[1] == 2 else out.reshape(-1)
    y = targets.reshape(-1).cpu().numpy()
    if y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score.cpu().numpy()))


def setup(spec: Spec, params: Mapping, protocol: str) -> Setup:
    """Training settings of ``spec``: the study's protocol for Chromoformer, the published ones for a baseline."""
    tp = dict(params["train"])
    if spec.family.startswith("chromoformer"):
        tp["protocol"] = protocol
        return Setup(
            tp,
            "mse" if spec.task == "reg" else "cross_entropy",
            params["model"]["chromoformer"]["optimizer"],
            None,
        )
    b = params["baselines"][spec.family]
    tp.update(
        protocol="fixed",
        lr=float(b["lr"]),
        batch_size=int(b["batch_size"]),
        max_epochs=int(b["max_epochs"]),
        lr_decay=float(b["lr_decay"]),
        grad_clip=b["grad_clip"],
    )
    if spec.task == "reg":
        return Setup(tp, "mse", b["optimizer"], None)
    loss = _focal if spec.family == "hmcrnn" else "cross_entropy"
    return Setup(tp, loss, b["optimizer"], validation_auroc)


def _as_two_logits(out: np.ndarray) -> np.ndarray:
    """One logit z per gene -> (z0, z1) = (0, z), whose softmax is (1 − sigmoid(z), sigmoid(z))."""
    return out if out.ndim == 2 else np.stack([np.zeros_like(out), out], axis=1)


def model_seed(seed: int, spec: Spec, fold: int) -> int:
    """A seed per (model, window, fold), stable across runs and processes."""
    return (int(seed) * 1_000_003 + zlib.crc32(f"{spec.model}|{spec.window}|{fold}".encode())) % 2**31


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


#: The training settings that change a model, per protocol (what a checkpoint name hashes).
_TAG_KEYS = {
    "murphy": ("lr", "batch_size", "max_epochs", "lr_factor", "lr_patience", "min_lr", "early_stopping_patience"),
    "chromoformer": ("lr", "lr_gamma", "batch_size", "max_epochs"),
    "fixed": ("lr", "lr_decay", "batch_size", "max_epochs"),
}


def training_tag(train_params: Mapping) -> dict:
    """The resolved settings of ``train_params`` that change a trained model (for checkpoint names).

    Keys that the protocol ignores (e.g. the plateau schedule under ``chromoformer``) are left out,
    so adding or changing them does not orphan finished checkpoints; the engine's own fingerprint
    still refuses a checkpoint whose training differs.
    """
    tp = train._check_train_params(train_params)
    out = {k: tp.get(k) for k in _TAG_KEYS[tp["protocol"]]}
    out.update(
        protocol=tp["protocol"],
        grad_clip=tp.get("grad_clip"),
        weight_decay=tp.get("weight_decay"),
        mixed_precision=bool(tp.get("mixed_precision")),
    )
    return out


def model_tag(spec: Spec, params: Mapping) -> dict:
    """The architecture settings of ``spec``'s family (for checkpoint names)."""
    if spec.family.startswith("chromoformer"):
        cfg = cfg_for_digest(params["model"]["chromoformer"])
        return {k: v for k, v in cfg.items() if k not in ("kind", "optimizer")}
    return {k: v for k, v in params["baselines"][spec.family].items() if k != "window"}


# ----------------------------------------------------------------------------------------------
# training and evaluation
# ----------------------------------------------------------------------------------------------
@dataclass
class StudyRun:
    """Result of :func:`train_and_evaluate`."""

    metrics: pd.DataFrame  # results.METRIC_COLUMNS + window, protocol
    predictions: pd.DataFrame  # results.PREDICTION_COLUMNS (+ label, probability) + window, protocol
    history: pd.DataFrame  # per epoch, with model, window, fold
    seconds: pd.DataFrame  # per model: model, window, fold, seconds, epochs, reused
    n_parameters: dict  # (model, window) -> parameter count


def train_and_evaluate(
    dataset,
    params: Mapping,
    specs: Sequence[Spec],
    *,
    folds: Sequence[int] | None = None,
    device=None,
    checkpoint_dir: str | Path | None = None,
    inputs: Mapping[str, torch.Tensor] | None = None,
    progress: bool = True,
) -> StudyRun:
    """Train every ``spec`` on every fold and evaluate it on the fold's test (and validation) genes.

    Parameters
    ----------
    dataset : chromexp.data.dataset.CellDataset
    params : mapping
        Merged parameters (``chromoformer_study``, ``baselines``, ``model.chromoformer``, ``train``).
    specs : sequence of Spec
        E.g. :func:`plan`.
    folds : sequence of int, optional
        Default ``chromoformer_study.folds`` or the top-level ``folds``.
    device : str, torch.device or None
        ``None`` = ``params["device"]`` (itself null = CUDA if available).
    checkpoint_dir : path or None
        Checkpoint (and resume) each model here; a finished checkpoint is read back, not retrained
        (notebook 46 reads notebook 45's Chromoformer models this way).
    inputs : dict of tensors, optional
        ``chromoformer_inputs.dataset_inputs(dataset, params["marks"])``, if already read.
    progress : bool
        A bar over the models.

    Returns
    -------
    StudyRun
    """
    from ..data.signal import log_base_value

    s = study_settings(params)
    folds = [int(f) for f in (folds or s["folds"])]
    marks = [m for m in dataset.marks if m in params["marks"]]
    missing = [m for m in params["marks"] if m not in dataset.marks]
    if missing:
        raise ValueError(f"Mark(s) {missing} are not in the dataset of {dataset.cell_type}.")
    if not specs or not folds:
        raise ValueError(f"Nothing to train: {len(specs)} models, folds {folds}.")
    if inputs is None:
        inputs = ci.dataset_inputs(dataset, marks)
    log_base = log_base_value(dataset.settings["log_base"])
    genes = dataset.genes
    y_reg = genes["target"].to_numpy(np.float32)
    labels = genes["label"].to_numpy(np.int64)
    gene_ids = genes["gene_id"].to_numpy()
    key = marks_key(marks)
    dev = train.resolve_device(device if device is not None else params.get("device"))
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    splits = {f: fold_split(dataset, f) for f in folds}
    metrics, predictions, history, timing, n_params = [], [], [], [], {}
    jobs = [(spec, fold) for fold in folds for spec in specs]
    bar = progress_bar(jobs, desc=f"{dataset.cell_type} Chromoformer study", unit="model", enabled=progress)
    for spec, fold in bar:
        bar.set_postfix_str(f"{spec.name} fold {fold}")
        t0 = time.perf_counter()
        st = setup(spec, params, s["protocol"])
        x = model_inputs(spec, inputs, log_base)
        y = torch.tensor(y_reg) if spec.task == "reg" else torch.tensor(labels)
        split = splits[fold]
        seed = model_seed(params["seed"], spec, fold)
        torch.manual_seed(seed)
        model = build(spec, params, len(marks))
        n_params[(spec.model, spec.window)] = sum(p.numel() for p in model.parameters())
        protocol = st.train_params["protocol"]
        tag = _digest(
            [spec.model, spec.window, fold, key, training_tag(st.train_params), _name(st.loss), st.optimizer]
            + [model_tag(spec, params), params["seed"], len(gene_ids), split["train"][:50].tolist()]
        )
        checkpoint = ckdir / f"study_{spec.model}_w{spec.window}_fold{fold}_{tag}.pt" if ckdir else None
        result = train.fit(
            model,
            (_rows(x, split["train"]), y[split["train"]]),
            (_rows(x, split["validation"]), y[split["validation"]]),
            train_params=st.train_params,
            loss=st.loss,
            optimizer=st.optimizer,
            device=dev,
            seed=seed,
            checkpoint_path=checkpoint,
            progress=False,
            score=st.score,
            name=f"{dataset.cell_type} {spec.name} fold {fold}",
        )
        reused = result.resumed_from == len(result.history)
        batch = max(64, 4 * int(st.train_params["batch_size"]))

        def predict(rows, model=result.model, x=x, batch=batch, task=spec.task):
            out = train.predict(model, _rows(x, rows), batch_size=batch, device=dev)
            return _as_two_logits(out) if task == "clf" else out

        m, p = evaluate_fold(
            predict,
            split,
            cell_type=dataset.cell_type,
            model=spec.model,
            marks=key,
            fold=fold,
            gene_ids=gene_ids,
            observed=y_reg,
            labels=labels if spec.task == "clf" else None,
        )
        extra = {"window": spec.window, "protocol": protocol}
        metrics += [t.assign(**extra) for t in m]
        predictions.append(p.assign(**extra))
        history.append(result.history.assign(model=spec.model, window=spec.window, fold=fold))
        timing.append(
            {
                "model": spec.model,
                "window": spec.window,
                "fold": fold,
                "seconds": time.perf_counter() - t0,
                "epochs": len(result.history),
                "final_epoch": result.best_epoch,
                "reused": reused,
            }
        )
    bar.close()
    return StudyRun(
        metrics=pd.concat(metrics, ignore_index=True),
        predictions=pd.concat(predictions, ignore_index=True),
        history=pd.concat(history, ignore_index=True),
        seconds=pd.DataFrame(timing),
        n_parameters=n_params,
    )


def _name(obj) -> str:
    return obj if isinstance(obj, str) else getattr(obj, "__name__", repr(obj))


def _rows(x, rows):
    return ci.subset(x, rows) if isinstance(x, Mapping) else x[rows]


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def save(run: StudyRun, out_dir: str | Path, provenance: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the run's rows into the cell type's study tables (rows of the same key are replaced).

    Returns the whole metrics and predictions tables after the merge.
    """
    out_dir = Path(out_dir)
    m = run.metrics.assign(provenance=provenance)
    results.validate(m, [*results.METRIC_COLUMNS, *EXTRA_KEY], "metrics")
    metrics = results.append_table(m, out_dir / METRICS_FILE, replace_on=[*results.METRIC_KEY, *EXTRA_KEY])
    p = run.predictions.assign(provenance=provenance)
    results.validate(p, [*results.PREDICTION_COLUMNS, *EXTRA_KEY], "predictions")
    key = [*results.PREDICTION_KEY[:4], *EXTRA_KEY, "gene_id"]
    predictions = results.append_table(p, out_dir / PREDICTIONS_FILE, replace_on=key)
    results.write_table(run.history, out_dir / HISTORY_FILE)
    return metrics, predictions


def check_results(run: StudyRun, dataset, specs: Sequence[Spec], folds: Sequence[int]) -> None:
    """Every (model, window, fold) has exactly one finite prediction per test gene and no missing metric but R².

    Raises
    ------
    ValueError
        Naming the first (model, window, fold) that does not.
    """
    gene_ids = dataset.genes["gene_id"].to_numpy()
    pred = run.predictions
    for fold in folds:
        test_ids = set(gene_ids[dataset.split(fold)["test"]])
        for spec in specs:
            got = pred[(pred["fold"] == fold) & (pred["model"] == spec.model) & (pred["window"] == spec.window)]
            if not got["gene_id"].is_unique or set(got["gene_id"]) != test_ids:
                raise ValueError(
                    f"{dataset.cell_type} {spec.name} fold {fold}: {len(got)} predictions for {len(test_ids)} test genes."
                )
    if not np.isfinite(pred["predicted"].to_numpy(dtype=float)).all():
        raise ValueError(f"{dataset.cell_type}: non-finite predictions in the study.")
    bad = run.metrics[(run.metrics["metric"] != "r2") & run.metrics["value"].isna()]
    if len(bad):
        raise ValueError(f"{dataset.cell_type}: missing metric values:\n{bad.head()}")


def parameter_table(run: StudyRun) -> pd.DataFrame:
    """Parameter counts per (model, window), for the notebook's display."""
    rows = [{"model": m, "window": w, "parameters": n} for (m, w), n in sorted(run.n_parameters.items())]
    return pd.DataFrame(rows)


def cpu_cost(run: StudyRun) -> pd.DataFrame:
    """Seconds per model (trained, not read back), by model and window: the measured cost of this run."""
    t = run.seconds[~run.seconds["reused"]]
    if t.empty:
        return pd.DataFrame(columns=["model", "window", "models", "seconds_per_model", "seconds_per_epoch"])
    g = t.groupby(["model", "window"])
    return pd.DataFrame(
        {
            "models": g.size(),
            "seconds_per_model": g["seconds"].mean(),
            "seconds_per_epoch": g["seconds"].sum() / g["epochs"].sum(),
        }
    ).reset_index()


__all__ = [
    "FAMILIES",
    "BASELINES",
    "TASKS",
    "Spec",
    "StudyRun",
    "study_settings",
    "plan",
    "published_window",
    "ablation_window",
    "build",
    "model_inputs",
    "setup",
    "train_and_evaluate",
    "save",
    "check_results",
    "parameter_table",
    "cpu_cost",
    "validation_auroc",
]
