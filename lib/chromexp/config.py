"""Parameter sets: ``params/defaults.yaml`` merged with a cell-type file, a run file and overrides.

Merge order (later wins)::

    params/defaults.yaml  <  params/cells/<EID>.yaml  <  run file(s) (-f)  <  overrides (-p)

Every key must exist in ``defaults.yaml``: an unknown key, or a value whose type differs from the
default's, is a ``ValueError`` naming the file and the dotted key, raised before anything runs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .constants import CELL_TYPES

#: Keys whose values are free-form mappings (their sub-keys are not checked against defaults).
FREE_FORM_KEYS: frozenset[str] = frozenset()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing file, bad YAML or a non-mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Parameter file {path} does not exist.")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"Parameter file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"Parameter file {path} must hold a mapping of keys to values, not {type(data).__name__}.")
    return data


def _type_ok(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def merge(base: Mapping[str, Any], update: Mapping[str, Any], source: str, prefix: str = "") -> dict[str, Any]:
    """Return ``base`` updated by ``update`` recursively, rejecting keys ``base`` does not have.

    Parameters
    ----------
    base : mapping
        The current parameters (starting from the defaults); never modified.
    update : mapping
        New values; nested mappings update nested blocks key by key.
    source : str
        Where ``update`` came from (a file name or ``"-p overrides"``), used in error messages.
    """
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        if key not in out:
            known = ", ".join(sorted(map(str, out))) or "(none)"
            raise ValueError(
                f"Unknown parameter '{dotted}' in {source}. Known keys at this level: {known}. "
                "Every parameter must first be declared in params/defaults.yaml."
            )
        current = out[key]
        if isinstance(current, dict) and dotted not in FREE_FORM_KEYS:
            if not isinstance(value, Mapping):
                raise ValueError(
                    f"Parameter '{dotted}' in {source} must be a mapping (a block of keys), got {value!r}."
                )
            out[key] = merge(current, value, source, prefix=f"{dotted}.")
        else:
            if not _type_ok(current, value):
                raise ValueError(
                    f"Parameter '{dotted}' in {source} should be of type {type(current).__name__} "
                    f"(default {current!r}), got {value!r} ({type(value).__name__})."
                )
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(pairs: Iterable[Sequence[str]]) -> dict[str, Any]:
    """Turn ``[("train.max_epochs", "5"), ...]`` into a nested mapping; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for key, raw in pairs:
        try:
            value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        except yaml.YAMLError as err:
            raise ValueError(f"Could not parse the value of -p {key} {raw!r} as YAML: {err}") from err
        node = nested
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"-p {key}: '{part}' is given both a value and sub-keys.")
        node[parts[-1]] = value
    return nested


def check_cell_type(cell_type: str) -> str:
    """Return ``cell_type`` if it is one of the 11 Roadmap EIDs of the study, else raise."""
    if cell_type not in CELL_TYPES:
        raise ValueError(f"Unknown cell type {cell_type!r}. Known: {', '.join(CELL_TYPES)}.")
    return cell_type


def load_params(
    cell_type: str | None = None,
    files: Iterable[str | Path | None] = (),
    overrides: Mapping[str, Any] | None = None,
    defaults: str | Path | None = None,
) -> dict[str, Any]:
    """Merge the defaults, the cell type's file, run files and overrides into one mapping.

    Parameters
    ----------
    cell_type : str, optional
        A Roadmap EID (``"E003"``); its ``params/cells/<EID>.yaml`` is merged after the defaults.
    files : iterable of path
        Run files such as ``params/demo.yaml``, merged in order; ``None`` entries are ignored.
    overrides : mapping, optional
        Nested values merged last (see :func:`parse_overrides` for ``-p key value`` pairs).
    defaults : path, optional
        Defaults file (``params/defaults.yaml`` of the repository by default).

    Returns
    -------
    dict
        The merged parameters; ``params["cell_type"]`` holds ``cell_type``.
    """
    defaults_path = Path(defaults) if defaults is not None else paths.params_dir() / "defaults.yaml"
    params = read_yaml(defaults_path)
    if cell_type is not None:
        check_cell_type(cell_type)
        cell_file = defaults_path.parent / "cells" / f"{cell_type}.yaml"
        if cell_file.is_file():
            params = merge(params, read_yaml(cell_file), str(cell_file))
    for file in files:
        if file is None or str(file) == "":
            continue
        file = Path(file)
        if not file.is_absolute() and not file.exists():
            file = paths.repo_root() / file
        params = merge(params, read_yaml(file), str(file))
    if overrides:
        params = merge(params, overrides, "the overrides (-p / PARAMS)")
    if cell_type is not None:
        params["cell_type"] = cell_type
    unknown = [c for c in params.get("cell_types", []) if c not in CELL_TYPES]
    if unknown:
        raise ValueError(f"Unknown cell type(s) {unknown} in 'cell_types'. Known: {', '.join(CELL_TYPES)}.")
    return params


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested parameters to ``{"train.lr": 0.001, ...}`` (for display and hashing)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def show(params: Mapping[str, Any]):
    """Return the parameters as a two-column ``pandas.DataFrame`` (for display in notebooks)."""
    import pandas as pd

    flat = flatten(params)
    return pd.DataFrame({"parameter": list(flat), "value": [repr(v) for v in flat.values()]}).set_index("parameter")
