"""Every path chromexp reads or writes comes from here (notebooks never type a path).

Resolution order for each location: environment variable > parameter (``paths:`` block of the
merged parameters) > default under the repository (``data/``, ``results/``, ``figures/``).

Layout under the data directory::

    data/<dataset>/raw/                 inputs in their real file formats (tagAlign.gz, RPKM, pcHi-C)
    data/<dataset>/processed/<EID>/     per-cell-type dataset store built by notebook 10
    data/<dataset>/peaks/<EID>/         called or user-supplied peak files

where ``<dataset>`` is ``semisynthetic-<preset>`` for the embedded dataset or ``roadmap`` for
real data (see :func:`dataset_name`). Results go to ``results/<run>/<cell_type>/``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_ROOT = "CHROMEXP_ROOT"
ENV_DATA = "CHROMEXP_DATA_DIR"
ENV_RESULTS = "CHROMEXP_RESULTS_DIR"
ENV_FIGURES = "CHROMEXP_FIGURES_DIR"

#: Name of the results sub-directory for notebooks that are not run per cell type (00, 90).
GLOBAL_SCOPE = "all"


#: A plain name: one path component, no separators, not "." / "..", no leading dot or dash.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def check_name(name: Any, what: str = "run name") -> str:
    """Return ``name`` if it is a plain folder name (``smoke``, ``demo-2``, ``E003``), else raise.

    Run names, cell types and dataset names become folders under the results/data roots; a name
    such as ``../x`` or ``/abs/path`` would write outside them, so it is a ``ValueError``.
    """
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or name in (".", ".."):
        raise ValueError(
            f"Invalid {what} {name!r}: it must be a plain folder name (letters, digits, '.', '_', '+', '-'; "
            "no '/' or '..', not starting with '.' or '-'), because it becomes a folder under the "
            "results/data directories."
        )
    return name


def repo_root() -> Path:
    """Return the repository root.

    ``$CHROMEXP_ROOT`` wins; otherwise the first parent of this file (or of the working directory,
    for an installed copy) that holds both ``pyproject.toml`` and ``params/defaults.yaml``.
    """
    env = os.environ.get(ENV_ROOT)
    if env:
        return Path(env).expanduser().resolve()
    for start in (Path(__file__).resolve(), Path.cwd().resolve()):
        for parent in (start, *start.parents):
            if (parent / "pyproject.toml").is_file() and (parent / "params" / "defaults.yaml").is_file():
                return parent
    raise RuntimeError(
        "Could not find the chromexp repository root (a folder with pyproject.toml and "
        f"params/defaults.yaml). Set ${ENV_ROOT} to the clone you want to use."
    )


def _resolve(env: str, params: Mapping[str, Any] | None, key: str, default: str) -> Path:
    value = os.environ.get(env)
    if not value and params is not None:
        value = (params.get("paths") or {}).get(key)
    path = Path(value).expanduser() if value else repo_root() / default
    if not path.is_absolute():
        path = repo_root() / path
    return path.resolve()


def data_dir(params: Mapping[str, Any] | None = None) -> Path:
    """Root of inputs and caches (``$CHROMEXP_DATA_DIR`` > ``paths.data_dir`` > ``<repo>/data``)."""
    return _resolve(ENV_DATA, params, "data_dir", "data")


def results_dir(params: Mapping[str, Any] | None = None) -> Path:
    """Root of outputs (``$CHROMEXP_RESULTS_DIR`` > ``paths.results_dir`` > ``<repo>/results``)."""
    return _resolve(ENV_RESULTS, params, "results_dir", "results")


def figures_dir(params: Mapping[str, Any] | None = None) -> Path:
    """Manuscript figures (``$CHROMEXP_FIGURES_DIR`` > ``paths.figures_dir`` > ``<repo>/figures``)."""
    return _resolve(ENV_FIGURES, params, "figures_dir", "figures")


def params_dir() -> Path:
    """The ``params/`` folder of the repository."""
    return repo_root() / "params"


def notebooks_dir() -> Path:
    """The ``notebooks/`` folder of the repository."""
    return repo_root() / "notebooks"


def resources_dir() -> Path:
    """Vendored real data shipped inside the package (see ``resources/README.md``)."""
    return Path(__file__).resolve().parent / "resources"


def dataset_name(params: Mapping[str, Any]) -> str:
    """Name of the dataset folder: ``data.name`` if set, else derived from source and preset."""
    data = params["data"]
    if data.get("name"):
        return check_name(data["name"], "dataset name (data.name)")
    if data["source"] == "semisynthetic":
        return f"semisynthetic-{data['preset']}"
    return str(data["source"])


def dataset_dir(params: Mapping[str, Any]) -> Path:
    """``<data_dir>/<dataset>``: everything belonging to one dataset."""
    return data_dir(params) / dataset_name(params)


def raw_dir(params: Mapping[str, Any]) -> Path:
    """Inputs in their real formats (tagAlign.gz, expression matrix, gene table, pcHi-C)."""
    return dataset_dir(params) / "raw"


def processed_dir(params: Mapping[str, Any], cell_type: str) -> Path:
    """The per-cell-type dataset store written by notebook 10."""
    return dataset_dir(params) / "processed" / check_name(cell_type, "cell type")


def peaks_dir(params: Mapping[str, Any], cell_type: str) -> Path:
    """Peak files (called with MACS2 or supplied by the user) for one cell type."""
    return dataset_dir(params) / "peaks" / check_name(cell_type, "cell type")


def run_dir(params: Mapping[str, Any] | None, run_name: str, cell_type: str | None) -> Path:
    """``results/<run>/<cell_type>/`` (``all`` for notebooks that cover every cell type).

    Both names must be plain folder names (:func:`check_name`): nothing is written outside the
    results directory.
    """
    return results_dir(params) / check_name(run_name) / check_name(cell_type or GLOBAL_SCOPE, "cell type")
