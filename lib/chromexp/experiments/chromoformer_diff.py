"""Notebook 46's experiment: Chromoformer-diff trained on pairs of cell types, with its baselines.

**From the paper's description** (Lee et al. 2022, Results and Fig. 2a, e; Suppl. Fig. 5a): there
is no public code of Chromoformer-diff; the loss weights, the pairs and the swap augmentation are
our choices (docs/methods.md, "Chromoformer-diff"; docs/deviations.md).

For every unordered pair (A, B) of the run's cell types, A < B by EID, and every chromosome fold:

* the genes both cell types' datasets hold (an inner join on ``gene_id``; a gene is in the same
  fold in every cell type, which is checked);
* target lfc = log2(RPKM_B + 1) − log2(RPKM_A + 1) = ``target_B − target_A`` (DeepDiff's
  ``getlabel``), and the auxiliary targets ``target_A``, ``target_B``;
* inputs per side: that cell type's own marks and its own pcHi-C pCREs (the two sides can have
  different pCREs);
* :class:`~chromexp.models.chromoformer.ChromoformerDiff`: one shared backbone embeds both sides,
  ``fc_diff`` reads the concatenated embeddings (lfc), the shared ``fc_head`` each side's
  expression; loss ``w_lfc MSE(lfc) + w_A MSE(ŷ_A) + w_B MSE(ŷ_B)`` (:class:`DiffLoss`, weights
  ``chromoformer_diff.loss_weights``, default 1 : 1 : 1 as DeepDiff's ``aux`` variants); with
  ``swap_augmentation`` every training gene is also presented as (B, A) with −lfc;
* trained with ``chromoformer_diff.protocol`` (default the paper's) and evaluated on the fold's
  test genes: Pearson r, Spearman ρ, R² and MSE of lfc, and each auxiliary head's Pearson r.

Baselines in the same tables (models ``chromoformer_reg_difference``, ``chromoformer_clf_log_ratio``,
``deepdiff_<variant>``): ŷ_B − ŷ_A of two independently trained Chromoformer-reg models of the same
fold, log2(p_B / p_A) of two Chromoformer-clf models (the paper's "X-clf" reference), both read
back from notebook 45's checkpoints where they exist (the same recipe,
:func:`chromexp.experiments.chromoformer_study.train_and_evaluate`, trains the missing ones), and
DeepDiff with its published settings on the central ``baselines.deepdiff.window`` (200 bins of
100 bp).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import results
from ..metrics import pearson_r, regression_metrics
from ..models import chromoformer as cf
from ..models import chromoformer_inputs as ci
from ..models import deepdiff
from ..results import marks_key
from ..training import train
from ..utils import get_logger, progress_bar
from . import chromoformer_study as study
from .chromoformer import architecture_from_params, cfg_for_digest
from .evaluation import fold_split

log = get_logger("chromexp.experiments.chromoformer_diff")

DIFF_MODEL = "chromoformer_diff"
REG_DIFFERENCE = "chromoformer_reg_difference"
CLF_RATIO = "chromoformer_clf_log_ratio"
BASELINE_NAMES: tuple[str, ...] = ("two_reg", "clf_ratio", "deepdiff")
#: The pair tables are ``results.METRIC_COLUMNS`` / ``PREDICTION_COLUMNS`` with ``cell_type`` replaced
#: by the pair key, plus the training protocol (and both sides' predictions).
PAIR_KEY: tuple[str, ...] = ("pair", "cell_type_a", "cell_type_b")
METRIC_COLUMNS: tuple[str, ...] = (*PAIR_KEY, *results.METRIC_COLUMNS[1:], "protocol")
PREDICTION_COLUMNS: tuple[str, ...] = (
    *PAIR_KEY,
    *results.PREDICTION_COLUMNS[1:],
    "predicted_a",
    "predicted_b",
    "protocol",
)
METRICS_FILE = "chromoformer_diff_metrics.tsv"
PREDICTIONS_FILE = "chromoformer_diff_predictions.tsv.gz"
HISTORY_FILE = "chromoformer_diff_history.tsv"


# ----------------------------------------------------------------------------------------------
# parameters and pairs
# ----------------------------------------------------------------------------------------------
def diff_settings(params: Mapping) -> dict:
    """``params["chromoformer_diff"]`` validated; ``cell_types``, ``pairs``, ``folds`` and ``protocol`` resolved.

    Raises
    ------
    ValueError
        Naming the key: fewer than two cell types, a pair of unknown or identical cell types, bad
        loss weights, an unknown baseline or DeepDiff variant.
    """
    d = dict(params["chromoformer_diff"])
    cells = list(d["cell_types"] or params["cell_types"])
    if len(cells) < 2 or len(set(cells)) != len(cells):
        raise ValueError(f"chromoformer_diff needs at least two distinct cell types; got {cells}.")
    if d["pairs"]:
        pairs = []
        for p in d["pairs"]:
            if len(p) != 2 or p[0] == p[1] or any(c not in cells for c in p):
                raise ValueError(
                    f"chromoformer_diff.pairs: {p} must be two different cell types of {cells} (chromoformer_diff.cell_types)."
                )
            pairs.append(tuple(sorted(p)))
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"chromoformer_diff.pairs lists a pair twice: {d['pairs']}.")
    else:
        pairs = list(itertools.combinations(sorted(cells), 2))
    w = [float(x) for x in d["loss_weights"]]
    if len(w) != 3 or any(x < 0 for x in w) or w[0] <= 0:
        raise ValueError(f"chromoformer_diff.loss_weights must be 3 weights (lfc > 0, A >= 0, B >= 0); got {w}.")
    bad = [b for b in d["baselines"] if b not in BASELINE_NAMES]
    if bad:
        raise ValueError(f"chromoformer_diff.baselines: unknown {bad}; choose from {list(BASELINE_NAMES)}.")
    if d["deepdiff_variant"] not in deepdiff.VARIANTS:
        raise ValueError(f"chromoformer_diff.deepdiff_variant must be one of {list(deepdiff.VARIANTS)}.")
    protocol = d["protocol"] or params["train"]["protocol"]
    if protocol not in train.PROTOCOLS:
        raise ValueError(f"chromoformer_diff.protocol must be one of {list(train.PROTOCOLS)}; got {protocol!r}.")
    folds = [int(f) for f in (d["folds"] or params["folds"])]
    return {**d, "cell_types": cells, "pairs": sorted(pairs), "loss_weights": w, "protocol": protocol, "folds": folds}


def pair_name(a: str, b: str) -> str:
    """``"E003-E066"`` (A first; A < B by EID)."""
    return f"{a}-{b}"


@dataclass
class PairData:
    """Two cell types' datasets over their common genes, in A's gene order."""

    a: str
    b: str
    ds_a: object
    ds_b: object
    index_a: np.ndarray  # rows of ds_a.genes
    index_b: np.ndarray  # rows of ds_b.genes, the same genes
    gene_ids: np.ndarray
    target_a: np.ndarray
    target_b: np.ndarray

    @property
    def lfc(self) -> np.ndarray:
        """log2(RPKM_B + 1) − log2(RPKM_A + 1) per common gene."""
        return (self.target_b - self.target_a).astype(np.float32)

    def split(self, fold: int) -> dict[str, np.ndarray]:
        """Positions (in the common-gene order) of A's fold split restricted to the common genes."""
        sa = fold_split(self.ds_a, fold)
        pos = np.full(len(self.ds_a.genes), -1, dtype=np.int64)
        pos[self.index_a] = np.arange(len(self.index_a))
        out = {k: np.sort(pos[v][pos[v] >= 0]) for k, v in sa.items()}
        for part, rows in out.items():
            if rows.size == 0:
                raise ValueError(f"Pair {pair_name(self.a, self.b)} fold {fold} has no common {part} genes.")
        return out


def pair_data(ds_a, ds_b) -> PairData:
    """Match two cell types' datasets on ``gene_id``.

    Raises
    ------
    ValueError
        When they share no gene, or a shared gene sits on another chromosome or fold (the stores
        were built from different gene tables).
    """
    ga = ds_a.genes.reset_index(drop=True).assign(_row=np.arange(len(ds_a.genes)))
    gb = ds_b.genes.reset_index(drop=True).assign(_row=np.arange(len(ds_b.genes)))
    m = ga.merge(gb, on="gene_id", suffixes=("_a", "_b"), sort=False)
    if m.empty:
        raise ValueError(f"{ds_a.cell_type} and {ds_b.cell_type} share no gene: no pair to train on.")
    bad = m[(m["fold_a"] != m["fold_b"]) | (m["chrom_a"] != m["chrom_b"])]
    if len(bad):
        raise ValueError(
            f"{len(bad)} genes of {ds_a.cell_type} and {ds_b.cell_type} differ in chromosome or fold "
            f"(e.g. {bad['gene_id'].iloc[0]}): the stores were built from different gene tables."
        )
    m = m.sort_values("_row_a", kind="stable")
    return PairData(
        a=ds_a.cell_type,
        b=ds_b.cell_type,
        ds_a=ds_a,
        ds_b=ds_b,
        index_a=m["_row_a"].to_numpy(np.int64),
        index_b=m["_row_b"].to_numpy(np.int64),
        gene_ids=m["gene_id"].to_numpy(),
        target_a=m["target_a"].to_numpy(np.float32),
        target_b=m["target_b"].to_numpy(np.float32),
    )


def paired_inputs(inputs_a: Mapping[str, torch.Tensor], inputs_b: Mapping[str, torch.Tensor], pair: PairData) -> dict:
    """``ChromoformerDiff`` inputs: every key of each side with suffix ``_a`` / ``_b``, rows = common genes."""
    ia, ib = torch.as_tensor(pair.index_a.copy()), torch.as_tensor(pair.index_b.copy())  # own, writable memory
    out = {f"{k}_a": v[ia] for k, v in inputs_a.items()}
    out.update({f"{k}_b": v[ib] for k, v in inputs_b.items()})
    return out


def swapped(x: Mapping[str, torch.Tensor]) -> dict:
    """The same genes with the sides exchanged (``_a`` <-> ``_b``)."""
    return {(k[:-2] + ("_b" if k.endswith("_a") else "_a")): v for k, v in x.items()}


def augment_swap(x: Mapping[str, torch.Tensor], y: torch.Tensor) -> tuple[dict, torch.Tensor]:
    """The swap augmentation (our option): every gene again as (B, A), with target [−lfc, y_B, y_A].

    Parameters
    ----------
    x : mapping of str to torch.Tensor
        Paired inputs (:func:`paired_inputs`), first dimension the genes.
    y : torch.Tensor, shape (n, 3)
        [lfc, y_A, y_B] per gene.

    Returns
    -------
    (dict, torch.Tensor)
        2n genes: the originals, then the swapped copies.
    """
    sw = swapped(x)
    x2 = {k: torch.cat([v, sw[k]]) for k, v in x.items()}
    return x2, torch.cat([y, y[:, [0, 2, 1]] * torch.tensor([-1.0, 1.0, 1.0], dtype=y.dtype)])


# ----------------------------------------------------------------------------------------------
# the loss
# ----------------------------------------------------------------------------------------------
class DiffLoss:
    """``w_lfc MSE(lfc) + w_A MSE(ŷ_A) + w_B MSE(ŷ_B)`` over outputs and targets of shape (batch, 3).

    With ``reduction="sum"`` the per-gene weighted sums are added (the engine's validation loss:
    sum over batches / genes); ``"mean"`` averages them over the batch, which equals the sum of the
    three batch MSEs weighted. ``emb_weight`` > 0 with an output of more than 3 columns adds
    DeepDiff's contrastive term between the two halves of the extra columns (siamese variants).
    """

    def __init__(self, weights: Sequence[float] = (1.0, 1.0, 1.0), contrastive_weight: float = 0.0):
        self.w = torch.tensor([float(x) for x in weights])
        self.contrastive_weight = float(contrastive_weight)

    def __repr__(self) -> str:
        return f"DiffLoss(weights={self.w.tolist()}, contrastive={self.contrastive_weight})"

    def __call__(self, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The loss of outputs (batch, >= 3) against targets (batch, 3) [lfc, y_A, y_B]."""
        output = output.float()
        if output.ndim != 2 or output.shape[1] < 3 or target.shape != (output.shape[0], 3):
            raise ValueError(f"DiffLoss needs outputs (batch, >= 3) and targets (batch, 3); got {tuple(output.shape)}.")
        per_gene = ((output[:, :3] - target.float()) ** 2 * self.w.to(output.device)).sum(1)
        loss = per_gene.sum() if reduction == "sum" else per_gene.mean()
        if self.contrastive_weight and output.shape[1] > 3:
            emb_a, emb_b = output[:, 3:].chunk(2, dim=1)
            extra = self.contrastive_weight * deepdiff.contrastive_loss(emb_a, emb_b, target[:, 0])
            loss = loss + (extra * output.shape[0] if reduction == "sum" else extra)
        return loss


class _DeepDiffForTraining(nn.Module):
    """DeepDiff whose forward returns [lfc, ŷ_A, ŷ_B, emb_A, emb_B] (the contrastive loss needs the embeddings).

    A raw variant (lfc only) returns its lfc in the first column and zeros for the auxiliary heads,
    which the loss then weighs 0 (``DiffLoss`` weights (1, 0, 0)).
    """

    def __init__(self, model: deepdiff.DeepDiff):
        super().__init__()
        self.model = model

    def forward(self, x_a, x_b):
        out, details = self.model(x_a, x_b, return_details=True)
        if out.ndim == 1:
            out = torch.stack([out, torch.zeros_like(out), torch.zeros_like(out)], dim=1)
        if self.model.siamese and self.training:
            return torch.cat([out, details["emb_a"], details["emb_b"]], dim=1)
        return out


def _lfc_score(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """Validation R² of the lfc column (DeepDiff keeps the epoch with the best validation R²)."""
    y, p = targets[:, 0].double(), outputs[:, 0].double()
    ss = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - p) ** 2).sum() / ss) if ss > 0 else float("nan")


# ----------------------------------------------------------------------------------------------
# training
# ----------------------------------------------------------------------------------------------
@dataclass
class DiffRun:
    """Result of :func:`train_and_evaluate`: rows of the pair tables."""

    metrics: pd.DataFrame  # METRIC_COLUMNS
    predictions: pd.DataFrame  # PREDICTION_COLUMNS
    history: pd.DataFrame
    seconds: pd.DataFrame  # per (pair, model, fold)


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _seed(seed: int, name: str, pair: str, fold: int) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(f"{name}|{pair}|{fold}".encode())) % 2**31


def _metric_rows(values: Mapping[str, float], **key) -> pd.DataFrame:
    return pd.DataFrame([{**key, "metric": k, "value": float(v)} for k, v in values.items()])


def evaluate_pair(observed: np.ndarray, predicted: np.ndarray, pa=None, pb=None, ya=None, yb=None) -> dict[str, float]:
    """Metrics of predicted vs observed lfc over a fold's genes; with the auxiliary heads, their Pearson r."""
    values = regression_metrics(observed, predicted)
    if pa is not None and ya is not None:
        values["pearson_r_a"] = pearson_r(ya, pa)
        values["pearson_r_b"] = pearson_r(yb, pb)
    return values


def train_and_evaluate(
    datasets: Mapping[str, object],
    params: Mapping,
    *,
    cell_params: Mapping[str, Mapping] | None = None,
    checkpoint_dirs: Mapping[str, Path] | None = None,
    pair_checkpoint_dir: str | Path | None = None,
    device=None,
    progress: bool = True,
) -> DiffRun:
    """Train Chromoformer-diff (and DeepDiff) on every pair and fold; evaluate them and the two-model baselines.

    Parameters
    ----------
    datasets : mapping of str to CellDataset
        One per cell type of :func:`diff_settings`.
    params : mapping
        Merged parameters (``chromoformer_diff``, ``chromoformer_study``, ``baselines``, ``train``...).
    cell_params : mapping of str to mapping, optional
        Each cell type's own merged parameters, for the per-cell-type baselines (default ``params``).
    checkpoint_dirs : mapping of str to path, optional
        Each cell type's checkpoint folder (``results/<run>/<EID>/checkpoints``, where notebook 45
        left its Chromoformer-reg and -clf models); None = train them without checkpoints.
    pair_checkpoint_dir : path, optional
        Checkpoints of the pair models (``results/<run>/all/checkpoints``).
    device : str, torch.device or None
    progress : bool

    Returns
    -------
    DiffRun
    """
    d = diff_settings(params)
    cell_params = dict(cell_params or {c: params for c in d["cell_types"]})
    missing = sorted({c for pair in d["pairs"] for c in pair} - set(datasets))
    if missing:
        raise ValueError(f"No dataset given for cell type(s) {missing}.")
    marks = list(params["marks"])
    key = marks_key(marks)
    dev = train.resolve_device(device if device is not None else params.get("device"))
    inputs = {c: ci.dataset_inputs(datasets[c], marks) for c in sorted({c for p in d["pairs"] for c in p})}
    pair_dir = Path(pair_checkpoint_dir) if pair_checkpoint_dir is not None else None
    metrics, predictions, history, timing = [], [], [], []

    # per-cell-type Chromoformer-reg / -clf at the full window: the two-model baselines
    per_cell: dict[str, pd.DataFrame] = {}
    wanted = {"two_reg": "reg", "clf_ratio": "clf"}
    tasks = [wanted[b] for b in d["baselines"] if b in wanted]
    if tasks:
        window = 2 * int(params["signal"]["half_window"])
        for cell in inputs:
            specs = [study.Spec("chromoformer", t, window) for t in tasks]
            run = study.train_and_evaluate(
                datasets[cell],
                cell_params[cell],
                specs,
                folds=d["folds"],
                device=dev,
                checkpoint_dir=(checkpoint_dirs or {}).get(cell),
                inputs=inputs[cell],
                progress=progress,
            )
            per_cell[cell] = run.predictions
            timing.append(run.seconds.assign(pair=cell))

    jobs = [(a, b, fold) for fold in d["folds"] for a, b in d["pairs"]]
    bar = progress_bar(jobs, desc="Chromoformer-diff pairs", unit="pair", enabled=progress)
    for a, b, fold in bar:
        name = pair_name(a, b)
        bar.set_postfix_str(f"{name} fold {fold}")
        pair = pair_data(datasets[a], datasets[b])
        split = pair.split(fold)
        ids = dict(pair=name, cell_type_a=a, cell_type_b=b, marks=key, scheme="chrom_folds", fold=fold)
        x = paired_inputs(inputs[a], inputs[b], pair)
        y = torch.tensor(np.stack([pair.lfc, pair.target_a, pair.target_b], axis=1))
        # Chromoformer-diff
        t0 = time.perf_counter()
        out, hist = _fit_diff(x, y, split, pair, fold, params, d, dev, pair_dir)
        metrics += _evaluate_rows(out, y.numpy(), split, ids, DIFF_MODEL, d["protocol"])
        predictions.append(_prediction_rows(out, y.numpy(), split, pair, ids, DIFF_MODEL, d["protocol"]))
        history.append(hist.assign(pair=name, model=DIFF_MODEL, fold=fold))
        timing.append(
            pd.DataFrame([{"pair": name, "model": DIFF_MODEL, "fold": fold, "seconds": time.perf_counter() - t0}])
        )
        # the two-model baselines, from the per-cell-type predictions of the same fold
        for baseline, task, model in (("two_reg", "reg", REG_DIFFERENCE), ("clf_ratio", "clf", CLF_RATIO)):
            if baseline not in d["baselines"]:
                continue
            out = _two_model_outputs(per_cell[a], per_cell[b], task, fold, pair, split["test"])
            metrics += _evaluate_rows(out, y.numpy(), {"test": split["test"]}, ids, model, d["protocol"])
            predictions.append(
                _prediction_rows(out, y.numpy(), {"test": split["test"]}, pair, ids, model, d["protocol"])
            )
        # DeepDiff
        if "deepdiff" in d["baselines"]:
            t0 = time.perf_counter()
            model_name = f"deepdiff_{d['deepdiff_variant']}"
            out, hist = _fit_deepdiff(inputs[a], inputs[b], y, split, pair, fold, params, d, dev, pair_dir)
            metrics += _evaluate_rows(out, y.numpy(), split, ids, model_name, "fixed")
            predictions.append(_prediction_rows(out, y.numpy(), split, pair, ids, model_name, "fixed"))
            history.append(hist.assign(pair=name, model=model_name, fold=fold))
            timing.append(
                pd.DataFrame([{"pair": name, "model": model_name, "fold": fold, "seconds": time.perf_counter() - t0}])
            )
    bar.close()
    return DiffRun(
        metrics=pd.concat(metrics, ignore_index=True)[list(METRIC_COLUMNS)],
        predictions=pd.concat(predictions, ignore_index=True)[list(PREDICTION_COLUMNS)],
        history=pd.concat(history, ignore_index=True) if history else pd.DataFrame(),
        seconds=pd.concat(timing, ignore_index=True),
    )


def build_diff(params: Mapping, n_marks: int) -> cf.ChromoformerDiff:
    """The untrained Chromoformer-diff of ``model.chromoformer``'s architecture."""
    cfg = params["model"]["chromoformer"]
    return cf.build_model(
        "diff",
        n_marks,
        architecture_from_params(cfg),
        bool(cfg["full_attention"]),
        resolutions=ci.model_order(params["signal"]["resolutions"]),
    )


def _fit_diff(x, y, split, pair, fold, params, d, dev, ckdir):
    """Train one Chromoformer-diff; returns its outputs (n_common, 3) on every common gene and the history."""
    name = pair_name(pair.a, pair.b)
    seed = _seed(params["seed"], DIFF_MODEL, name, fold)
    torch.manual_seed(seed)
    n_marks = next(v for k, v in x.items() if k.startswith("promoter_")).shape[1]
    model = build_diff(params, n_marks)
    tp = {**params["train"], "protocol": d["protocol"]}
    loss = DiffLoss(d["loss_weights"])
    tr = ci.subset(x, split["train"])
    ty = y[split["train"]]
    if d["swap_augmentation"]:  # (B, A) with -lfc and the auxiliary targets exchanged
        tr, ty = augment_swap(tr, ty)
    arch = {k: v for k, v in cfg_for_digest(params["model"]["chromoformer"]).items() if k not in ("kind", "optimizer")}
    tag = _digest(
        [name, fold, study.training_tag(tp), repr(loss), d["swap_augmentation"], arch, seed]
        + [len(pair.gene_ids), split["train"][:50].tolist()]
    )
    result = train.fit(
        model,
        (tr, ty),
        (ci.subset(x, split["validation"]), y[split["validation"]]),
        train_params=tp,
        loss=loss,
        optimizer=params["model"]["chromoformer"]["optimizer"],
        device=dev,
        seed=seed,
        checkpoint_path=ckdir / f"diff_{name}_fold{fold}_{tag}.pt" if ckdir else None,
        progress=False,
        name=f"{DIFF_MODEL} {name} fold {fold}",
    )
    out = train.predict(result.model, x, batch_size=4 * int(tp["batch_size"]), device=dev)
    return out, result.history


def _fit_deepdiff(inputs_a, inputs_b, y, split, pair, fold, params, d, dev, ckdir):
    """Train one DeepDiff with its published settings on the central window; outputs (n_common, 3), history."""
    name = pair_name(pair.a, pair.b)
    b = params["baselines"]["deepdiff"]
    variant = d["deepdiff_variant"]
    window = int(b["window"])
    log_base = _log_base(pair.ds_a)
    xa = ci.crop_promoter({k: v for k, v in inputs_a.items() if k.startswith("promoter_")}, window, log_base)
    xb = ci.crop_promoter({k: v for k, v in inputs_b.items() if k.startswith("promoter_")}, window, log_base)
    ia, ib = torch.as_tensor(np.array(pair.index_a)), torch.as_tensor(np.array(pair.index_b))  # writable copies
    x = {"x_a": xa["promoter_100"][ia], "x_b": xb["promoter_100"][ib]}
    seed = _seed(params["seed"], f"deepdiff_{variant}", name, fold)
    torch.manual_seed(seed)
    net = deepdiff.DeepDiff(variant, n_marks=x["x_a"].shape[1])
    model = _DeepDiffForTraining(net)
    tp = {
        **params["train"],
        "protocol": "fixed",
        "lr": float(b["lr"]),
        "batch_size": int(b["batch_size"]),
        "max_epochs": int(b["max_epochs"]),
        "lr_decay": float(b["lr_decay"]),
        "grad_clip": b["grad_clip"],
    }
    weights = (1.0, 1.0, 1.0) if net.has_aux else (1.0, 0.0, 0.0)
    loss = DiffLoss(weights, deepdiff.CONTRASTIVE_WEIGHT if net.siamese else 0.0)
    tag = _digest(
        [name, fold, variant, window, study.training_tag(tp), b["optimizer"], repr(loss), seed, len(pair.gene_ids)]
        + [split["train"][:50].tolist()]
    )
    result = train.fit(
        model,
        (ci.subset(x, split["train"]), y[split["train"]]),
        (ci.subset(x, split["validation"]), y[split["validation"]]),
        train_params=tp,
        loss=loss,
        optimizer=b["optimizer"],
        device=dev,
        seed=seed,
        checkpoint_path=ckdir / f"deepdiff_{variant}_{name}_fold{fold}_{tag}.pt" if ckdir else None,
        progress=False,
        score=_lfc_score,
        name=f"deepdiff_{variant} {name} fold {fold}",
    )
    out = train.predict(result.model, x, batch_size=256, device=dev)
    if not net.has_aux:  # no auxiliary heads: their columns are not predictions
        out[:, 1:] = np.nan
    return out, result.history


def _log_base(ds) -> float:
    from ..data.signal import log_base_value

    return log_base_value(ds.settings["log_base"])


def _two_model_outputs(pred_a: pd.DataFrame, pred_b: pd.DataFrame, task: str, fold: int, pair: PairData, rows):
    """(n_common, 3) outputs of a two-model baseline on the test ``rows`` (NaN elsewhere)."""
    model = f"chromoformer_{task}"
    out = np.full((len(pair.gene_ids), 3), np.nan)
    sides = []
    for pred in (pred_a, pred_b):
        sel = pred[(pred["model"] == model) & (pred["fold"] == fold)].set_index("gene_id")
        missing = set(pair.gene_ids[rows]) - set(sel.index)
        if missing:
            raise ValueError(
                f"No {model} fold-{fold} prediction for {len(missing)} test genes of pair {pair.a}-{pair.b}."
            )
        col = "predicted" if task == "reg" else "probability"
        sides.append(sel.loc[pair.gene_ids[rows], col].to_numpy(float))
    if task == "reg":
        out[rows, 0] = sides[1] - sides[0]
        out[rows, 1], out[rows, 2] = sides[0], sides[1]
    else:  # log2 of the ratio of the probabilities of "active" (the paper's X-clf reference)
        eps = np.finfo(np.float32).tiny
        out[rows, 0] = np.log2(np.maximum(sides[1], eps)) - np.log2(np.maximum(sides[0], eps))
    return out


def _evaluate_rows(out, y, split, ids, model, protocol) -> list[pd.DataFrame]:
    rows = []
    for part in ("test", "validation"):
        if part not in split:
            continue
        r = split[part]
        aux = not np.isnan(out[r, 1]).any()
        values = evaluate_pair(
            y[r, 0],
            out[r, 0],
            *((out[r, 1], out[r, 2], y[r, 1], y[r, 2]) if aux else ()),
        )
        rows.append(_metric_rows(values, **ids, model=model, split=part, n_genes=len(r), protocol=protocol))
    return rows


def _prediction_rows(out, y, split, pair, ids, model, protocol) -> pd.DataFrame:
    r = split["test"]
    key = {k: v for k, v in ids.items() if k != "scheme"}
    return pd.DataFrame(
        {
            **key,
            "model": model,
            "gene_id": pair.gene_ids[r],
            "observed": y[r, 0],
            "predicted": out[r, 0],
            "predicted_a": out[r, 1],
            "predicted_b": out[r, 2],
            "protocol": protocol,
        }
    )


# ----------------------------------------------------------------------------------------------
# tables
# ----------------------------------------------------------------------------------------------
def save(run: DiffRun, out_dir: str | Path, provenance: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the run's rows into the pair tables under ``out_dir`` (``results/<run>/all``); returns both tables."""
    out_dir = Path(out_dir)
    m = run.metrics.assign(provenance=provenance)
    metrics = results.append_table(
        m, out_dir / METRICS_FILE, replace_on=["pair", "model", "marks", "scheme", "fold", "split", "protocol"]
    )
    p = run.predictions.assign(provenance=provenance)
    predictions = results.append_table(
        p, out_dir / PREDICTIONS_FILE, replace_on=["pair", "model", "marks", "fold", "protocol", "gene_id"]
    )
    if not run.history.empty:
        results.write_table(run.history, out_dir / HISTORY_FILE)
    return metrics, predictions


def check_results(run: DiffRun, settings: Mapping) -> None:
    """Every (pair, model, fold) has test metrics and only finite lfc predictions.

    Raises
    ------
    ValueError
        Naming the first (pair, fold, model) without test metrics, or non-finite predictions.
    """
    models = {DIFF_MODEL} | {
        m for b, m in (("two_reg", REG_DIFFERENCE), ("clf_ratio", CLF_RATIO)) if b in settings["baselines"]
    }
    if "deepdiff" in settings["baselines"]:
        models.add(f"deepdiff_{settings['deepdiff_variant']}")
    test = run.metrics[run.metrics["split"] == "test"]
    for a, b in settings["pairs"]:
        for fold in settings["folds"]:
            for model in models:
                rows = test[(test["pair"] == pair_name(a, b)) & (test["fold"] == fold) & (test["model"] == model)]
                if rows.empty:
                    raise ValueError(f"No test metrics of {model} for pair {pair_name(a, b)} fold {fold}.")
    if not np.isfinite(run.predictions["predicted"].to_numpy(float)).all():
        raise ValueError("Non-finite lfc predictions in the pair tables.")


__all__ = [
    "DIFF_MODEL",
    "REG_DIFFERENCE",
    "CLF_RATIO",
    "DiffLoss",
    "DiffRun",
    "PairData",
    "build_diff",
    "check_results",
    "diff_settings",
    "evaluate_pair",
    "pair_data",
    "pair_name",
    "paired_inputs",
    "save",
    "swapped",
    "augment_swap",
    "train_and_evaluate",
]
