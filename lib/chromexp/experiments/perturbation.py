"""The Chromoformer models notebook 60 perturbs: notebook 40's checkpoints or the same recipe.

The paper perturbs single-mark models; a multi-mark model (notebook 40's all-marks model, a pair of
notebook 50) can be perturbed too (one of its marks scaled), e.g. to ask whether a model that also sees
H3K4me1 tells an enhancer from an acetylated site that a single-mark model cannot.

A recipe (it trains models and reads checkpoints), so it lives in the experiments layer; the
perturbation engine itself (:mod:`chromexp.analyses.perturb`) only takes trained models.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..models import chromoformer_inputs as ci
from ..utils import get_logger

log = get_logger(__name__)


def _expected_fingerprint(dataset, params, inputs, marks, fold):
    """The training fingerprint ``experiments.chromoformer.train_and_evaluate`` gives (marks, fold)."""
    from ..training import train
    from . import chromoformer as ct

    cfg = params["model"]["chromoformer"]
    idx = [list(dataset.marks).index(m) for m in marks]
    x = ci.select_marks(inputs, idx)
    y = torch.as_tensor(dataset.genes["target"].to_numpy(np.float32))
    split = {k: np.asarray(v, dtype=np.int64) for k, v in dataset.split(fold).items()}
    model = ct.build(params, len(marks), kind="reg")
    seed = ct.model_seed(params["seed"], tuple(marks), fold)
    fp = train._fingerprint(
        model,
        params["train"],
        "mse",
        cfg["optimizer"],
        seed,
        (ci.subset(x, split["train"]), y[split["train"]]),
        (ci.subset(x, split["validation"]), y[split["validation"]]),
    )
    return fp, model


def _find_checkpoint(directory: Path, marks: Sequence[str], fold: int, fingerprint: dict) -> Path | None:
    from ..results import marks_key
    from . import chromoformer as ct

    pattern = str(directory / f"{ct.MODEL_NAMES['reg']}_{glob.escape(marks_key(marks))}_fold{fold}_*.pt")
    for path in sorted(glob.glob(pattern)):
        state = torch.load(path, map_location="cpu", weights_only=False)
        if state.get("finished") and state.get("fingerprint") == fingerprint:
            return Path(path)
    return None


def fold_models(
    dataset,
    params: Mapping,
    mark: str | Sequence[str],
    folds: Sequence[int],
    checkpoint_dir: str | Path,
    *,
    inputs: Mapping[str, torch.Tensor] | None = None,
    train_missing: bool = True,
    device=None,
) -> tuple[list[torch.nn.Module], pd.DataFrame]:
    """The Chromoformer-reg of each fold on ``mark`` (one mark, or a mark set): notebook 40's checkpoint, else trained.

    A checkpoint is reused only when its training fingerprint (model, data, seed, training
    parameters) equals what notebook 40's recipe (``experiments.chromoformer.train_and_evaluate``)
    would produce for these parameters; otherwise the missing model is trained with that
    recipe, checkpointed under ``checkpoint_dir`` (resumable) and then loaded. A mark set keeps its
    order (the model's input channels; ``chromexp.analyses.perturb.model_marks``).

    Returns
    -------
    models : list of ChromoformerRegressor (eval mode, CPU), one per fold
    sources : DataFrame with columns mark (the ``+``-joined marks of the model), fold, source
        (``checkpoint`` | ``trained``), path
    """
    from ..results import marks_key
    from . import chromoformer as ct

    marks = (mark,) if isinstance(mark, str) else tuple(mark)
    absent = [m for m in marks if m not in dataset.marks]
    if absent:
        raise ValueError(
            f"Mark(s) {absent} are not in the dataset of {dataset.cell_type} (it has {list(dataset.marks)})."
        )
    mark = marks_key(marks)
    params = {
        **params,
        "model": {**params["model"], "chromoformer": {**params["model"]["chromoformer"], "kind": "reg"}},
    }
    ckdir = Path(checkpoint_dir)
    if inputs is None:
        inputs = ci.dataset_inputs(dataset, list(dataset.marks))
    models, rows = [], []
    for fold in folds:
        fp, model = _expected_fingerprint(dataset, params, inputs, marks, int(fold))
        path = _find_checkpoint(ckdir, marks, int(fold), fp)
        source = "checkpoint"
        if path is None:
            if not train_missing:
                raise ValueError(
                    f"No finished checkpoint of a {mark} Chromoformer for fold {fold} with these parameters in "
                    f"{ckdir}; run notebook 40 with the same parameters (model.chromoformer.marks/folds) first."
                )
            log.info(
                "%s fold %s: no matching notebook-40 checkpoint in %s; training it now (same recipe)", mark, fold, ckdir
            )
            run = ct.train_and_evaluate(
                dataset,
                params,
                [marks],
                folds=[int(fold)],
                device=device,
                checkpoint_dir=ckdir,
                progress=False,
                inputs=inputs,
            )
            r = run.metrics[(run.metrics["split"] == "test") & (run.metrics["metric"] == "pearson_r")]["value"]
            log.info("%s fold %s trained: test Pearson r %.3f", mark, fold, float(r.iloc[0]) if len(r) else np.nan)
            path = _find_checkpoint(ckdir, marks, int(fold), fp)
            source = "trained"
            if path is None:
                raise RuntimeError(
                    f"Training {mark} fold {fold} wrote no checkpoint matching its fingerprint in {ckdir}."
                )
        else:
            log.info("%s fold %s: loaded %s", mark, fold, path.name)
        state = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["best_model"])
        models.append(model.eval())
        rows.append({"mark": mark, "fold": int(fold), "source": source, "path": str(path)})
    return models, pd.DataFrame(rows)
