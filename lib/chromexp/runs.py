"""What the first cell after a notebook's ``parameters`` cell calls: validate, merge, seed, show.

Every notebook declares the same four papermill parameters::

    CELL_TYPE = None    # Roadmap EID, e.g. "E003" (required for per-cell-type notebooks)
    RUN_NAME = None     # results/<RUN_NAME>/<CELL_TYPE>/; None: run_name from the parameters
    PARAMS_FILE = None  # YAML merged over params/defaults.yaml and params/cells/<EID>.yaml
    PARAMS = {}         # nested overrides, e.g. {"train": {"max_epochs": 5}}

and then calls :func:`start`, which returns a :class:`Run` holding the merged parameters, the
output folder and a seeded random generator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import config, paths
from . import provenance as _provenance
from .utils import get_logger, seed_everything

log = get_logger("chromexp.runs")


@dataclass
class Run:
    """One notebook execution: parameters, where outputs go, and the data's provenance."""

    params: dict[str, Any]
    cell_type: str | None
    run_name: str
    out_dir: Path
    rng: np.random.Generator = field(repr=False)

    @property
    def provenance(self) -> str:
        """``"semi-synthetic"`` or ``"real"``, read from the dataset's files on disk
        (:func:`chromexp.provenance.of_params`; an error if they contradict ``data.source``).
        Notebooks that load a dataset should prefer ``ds.provenance``."""
        return _provenance.of_params(self.params)

    @property
    def figures_dir(self) -> Path:
        """Where this run's figures go (``figures/`` for the demo run, else under the run folder)."""
        return paths.figures_dir(self.params) if self.run_name == "demo" else self.out_dir / "figures"

    def describe(self):
        """The resolved parameters as a table (for display)."""
        return config.show(self.params)


def start(
    cell_type: str | None = None,
    run_name: str | None = None,
    params_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    require_cell_type: bool = True,
) -> Run:
    """Validate notebook parameters, merge parameter files, seed everything, create the output folder.

    Parameters
    ----------
    cell_type : str or None
        Roadmap EID; required unless ``require_cell_type`` is false (notebooks 00 and 90).
    run_name : str or None
        Name of the run folder; ``None`` takes ``run_name`` from the merged parameters.
    params_file : path or None
        Run file merged after the defaults and the cell type's file.
    overrides : mapping or None
        Nested overrides merged last.

    Returns
    -------
    Run
    """
    if require_cell_type and not cell_type:
        raise ValueError(
            "CELL_TYPE is required: pass it with papermill -p CELL_TYPE E003 or chromexp run ... --cell E003."
        )
    if overrides is not None and not isinstance(overrides, Mapping):
        raise ValueError(f"PARAMS must be a mapping of overrides, got {overrides!r}.")
    params = config.load_params(cell_type, files=[params_file], overrides=overrides or {})
    run_name = run_name or params["run_name"]
    out_dir = paths.run_dir(params, run_name, cell_type)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = seed_everything(int(params["seed"]))
    run = Run(params=params, cell_type=cell_type, run_name=run_name, out_dir=out_dir, rng=rng)
    found = _provenance.of_dataset_dir(params)  # refuses a contradiction early; None before notebook 00
    log.info("run %s, cell type %s, %s data, outputs in %s", run_name, cell_type or "(all)", found or "no", out_dir)
    return run
