"""The Chromoformer models notebook 60 perturbs: notebook 40's checkpoints or the same recipe.

The paper perturbs single-mark models; a multi-mark model (notebook 40's all-marks model, a pair of
notebook 50) can be perturbed too (one of its marks scaled), e.g. to ask whether a model that also sees
H3K4me1 tells an enhancer from an acetylated site that a single-mark model cannot.

A recipe (it trains models and reads checkpoints), so it lives in the experiments layer; the
perturbation engine itself (:mod:`chromexp.analyses.perturb`) only takes trained models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..models import chromoformer_inputs as ci
from ..utils import DETAIL, get_logger

log = get_logger(__name__)


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

    The Chromoformer recipe owns each model's identity — checkpoint name, seed and training
    fingerprint (:func:`chromexp.experiments.chromoformer.fold_model`) — so the checkpoint notebook
    40 wrote with these parameters is found by name and read back (its content hash and fingerprint
    verified); a missing model is trained with that recipe, checkpointed under ``checkpoint_dir``
    (resumable) and read back. A mark set keeps its order (the model's input channels;
    ``chromexp.analyses.perturb.model_marks``).

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
    if inputs is None:
        inputs = ci.dataset_inputs(dataset, list(dataset.marks))
    models, rows = [], []
    for fold in folds:
        with torch.random.fork_rng():  # the recipe seeds torch's generator; the caller's is left as it was
            model, source, path = ct.fold_model(
                dataset,
                params,
                marks,
                int(fold),
                checkpoint_dir,
                inputs=inputs,
                train_missing=train_missing,
                device=device,
            )
        log.log(DETAIL, "%s fold %s: %s %s", mark, fold, "loaded" if source == "checkpoint" else "trained", path.name)
        models.append(model)
        rows.append({"mark": mark, "fold": int(fold), "source": source, "path": str(path)})
    return models, pd.DataFrame(rows)
