"""The size of the study's model grid and how long it takes, from measured throughput.

The paper trained one model per (cell type, mark set, fold): the promoter CNN on each of the 7
marks (notebook 30), Chromoformer on each single mark and on all seven marks (notebook 40) and on
15 pairs of marks (notebook 50), in 11 cell types × 4 folds — 1,276 models plus the 7-mark
models. :func:`paper_grid` lists that grid; :func:`estimate` turns a throughput measurement of
``bench/gpu_grid.py`` (models trained per hour on a device, one at a time or many at once) into
device-hours; ``chromexp plan`` prints both.

Throughput depends on the number of epochs a model trains for, which early stopping decides
(at most ``train.max_epochs`` = 100, patience 12). The estimate therefore takes the mean epochs per
model as an explicit assumption (default 40), never a hidden constant.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..constants import MARKS, PAIR_ANCHORS, anchor_pairs

#: Genes in the paper's gene set and in its four chromosome test folds.
PAPER_GENES = 18955


def paper_grid(
    cell_types: Sequence[str],
    folds: Sequence[int] = (1, 2, 3, 4),
    marks: Sequence[str] = MARKS,
    anchors: Sequence[str] = PAIR_ANCHORS,
    all_marks: bool = True,
) -> pd.DataFrame:
    """One row per (notebook, model family, what varies): the number of models to train.

    Returns
    -------
    pandas.DataFrame
        ``notebook, family, models_of, n_marks, n_mark_sets, n_cell_types, n_folds, n_models``.
    """
    n_cells, n_folds = len(cell_types), len(folds)
    rows = [
        ("30", "promoter_cnn", "single marks", 1, len(marks)),
        ("40", "chromoformer", "single marks", 1, len(marks)),
    ]
    if all_marks:
        rows.append(("40", "chromoformer", "all marks", len(marks), 1))
    rows.append(("50", "chromoformer", "mark pairs", 2, len(anchor_pairs(anchors, marks))))
    table = pd.DataFrame(rows, columns=["notebook", "family", "models_of", "n_marks", "n_mark_sets"])
    table["n_cell_types"] = n_cells
    table["n_folds"] = n_folds
    table["n_models"] = table["n_mark_sets"] * n_cells * n_folds
    return table


def read_throughput(path: str | Path) -> dict[str, Any]:
    """Read a ``bench/gpu_grid.py`` JSON result; a clear error when it is missing or malformed."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"{path} does not exist: measure throughput first with `python bench/gpu_grid.py --out {path}` "
            "(on the GPU you will train on)."
        )
    try:
        result = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a JSON file of bench/gpu_grid.py ({err}).") from err
    if "families" not in result:
        raise ValueError(f"{path}: has no 'families' entry; is it a bench/gpu_grid.py result?")
    return result


def best_mode(family: Mapping[str, Any]) -> tuple[str, float]:
    """The fastest measured mode of a family (``one_fp32``, ``many_bf16`` ...) and its gene-epochs/s."""
    modes = {k: v["gene_epochs_per_s"] for k, v in family.get("modes", {}).items() if v.get("gene_epochs_per_s")}
    if not modes:
        raise ValueError("The throughput result has no measured mode for this model family.")
    name = max(modes, key=modes.get)
    return name, float(modes[name])


def estimate(
    grid: pd.DataFrame,
    throughput: Mapping[str, Any],
    epochs_per_model: float = 40.0,
    train_genes: float | None = None,
) -> pd.DataFrame:
    """Device-hours of each grid row at the fastest measured mode of its model family.

    Parameters
    ----------
    grid : pandas.DataFrame
        :func:`paper_grid`'s table.
    throughput : mapping
        A ``bench/gpu_grid.py`` result: ``families[<family>]["modes"][<mode>]["gene_epochs_per_s"]``.
    epochs_per_model : float
        Assumed mean epochs a model trains for before early stopping (the protocol's maximum is 100).
    train_genes : float or None
        Training genes per model; default the paper's: 3/4 of 18,955 genes less ≈ 12 % validation.

    Returns
    -------
    pandas.DataFrame
        ``grid`` plus ``mode, gene_epochs_per_s, hours``; hours use each family's best mode.
    """
    if epochs_per_model <= 0:
        raise ValueError(f"epochs_per_model must be positive, got {epochs_per_model}.")
    genes = float(train_genes) if train_genes else PAPER_GENES * 0.75 * 0.88
    table = grid.copy()
    modes, speeds = [], []
    for family in table["family"]:
        entry = throughput["families"].get(family)
        if entry is None:
            modes.append(None)
            speeds.append(float("nan"))
            continue
        name, speed = best_mode(entry)
        # throughput of a 1-mark model; the input width barely matters for these models (measured
        # per family at the benchmark's mark count, see bench/gpu_grid.py)
        modes.append(name)
        speeds.append(speed)
    table["mode"] = modes
    table["gene_epochs_per_s"] = speeds
    table["hours"] = table["n_models"] * genes * epochs_per_model / table["gene_epochs_per_s"] / 3600.0
    return table


def format_plan(table: pd.DataFrame, device: str, epochs_per_model: float) -> str:
    """A plain-text plan: the grid, hours per row and in total, and the assumptions."""
    lines = [table.to_string(index=False, float_format=lambda v: f"{v:,.2f}")]
    total_models = int(table["n_models"].sum())
    lines.append(f"\n{total_models:,} models in all.")
    if "hours" in table and table["hours"].notna().any():
        lines.append(
            f"Estimated {table['hours'].sum():,.2f} hours on {device} at {epochs_per_model:g} epochs per model "
            "(each family at its fastest measured mode; early stopping decides the real epochs)."
        )
    return "\n".join(lines)
