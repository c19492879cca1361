"""The single-mark Chromoformer models notebook 60 perturbs: notebook 40's checkpoints or the same recipe.

A recipe (it trains models and reads checkpoints), so it lives in the experiments layer; the
perturbation engine itself (:mod:`chromexp.analyses.perturb`) only takes trained models.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
import torch

from ..models import chromoformer_inputs as ci
from ..utils import get_logger

log = get_logger(__name__)


def fold_models(
    dataset,
    params: Mapping,
    mark: str,
    folds: Sequence[int],
    checkpoint_dir: str | Path,
    *,
    inputs: Mapping[str, torch.Tensor] | None = None,
    train_missing: bool = True,
    device=None,
) -> tuple[list[torch.nn.Module], pd.DataFrame]:
    """The single-mark Chromoformer-reg of each fold: notebook 40's checkpoint, else trained now.

    The Chromoformer recipe owns each model's identity — checkpoint name, seed and training
    fingerprint (:func:`chromexp.experiments.chromoformer.fold_model`) — so the checkpoint notebook
    40 wrote with these parameters is found by name and read back (its content hash and fingerprint
    verified); a missing model is trained with that recipe, checkpointed under ``checkpoint_dir``
    (resumable) and read back.

    Returns
    -------
    models : list of ChromoformerRegressor (eval mode, CPU), one per fold
    sources : DataFrame with columns mark, fold, source (``checkpoint`` | ``trained``), path
    """
    from . import chromoformer as ct

    if mark not in dataset.marks:
        raise ValueError(f"Mark {mark} is not in the dataset of {dataset.cell_type} (it has {list(dataset.marks)}).")
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
                (mark,),
                int(fold),
                checkpoint_dir,
                inputs=inputs,
                train_missing=train_missing,
                device=device,
            )
        log.info("%s fold %s: %s %s", mark, fold, "loaded" if source == "checkpoint" else "trained", path.name)
        models.append(model)
        rows.append({"mark": mark, "fold": int(fold), "source": source, "path": str(path)})
    return models, pd.DataFrame(rows)
