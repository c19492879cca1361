"""Parameter sets: ``params/defaults.yaml`` merged with a cell-type file, a run file and overrides.

Merge order (later wins)::

    params/defaults.yaml  <  params/cells/<EID>.yaml  <  run file(s) (-f)  <  overrides (-p)

Every key must exist in ``defaults.yaml``: an unknown key, a value whose type differs from the
default's (for keys whose default is ``null``, the type declared in :data:`NULLABLE_TYPES`), or a key
given twice in one file, is a ``ValueError`` naming the file and the dotted key, raised before
anything runs. The merged values are then checked by :func:`validate` (folds, marks, positive
sizes, the device, plain run names, ...).
"""

from __future__ import annotations

import copy
import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from . import cells, paths
from .constants import (
    EFFECT_RANKINGS,
    FEATURE_ENGINES,
    MARKS,
    PERTURBATION_GEOMETRIES,
    PROTOCOLS,
    SIMULATOR_VERSIONS,
)
from .utils import DuplicateKeyError, load_yaml_text, read_yaml  # noqa: F401 — public names of this module

#: Keys whose values are free-form mappings (their sub-keys are not checked against defaults).
FREE_FORM_KEYS: frozenset[str] = frozenset()

#: Chromosome folds of the study (docs/methods.md: 4-fold cross-validation by chromosome).
FOLDS: tuple[int, ...] = (1, 2, 3, 4)


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple))


def _is_list_of_lists(v: Any) -> bool:
    return _is_list(v) and all(_is_list(x) for x in v)


#: Types of the keys whose default is ``null`` (their type cannot be taken from the default);
#: ``*`` matches one key level. A ``null`` key not listed here accepts any value.
NULLABLE_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "device": ("str", _is_str),
    "paths.data_dir": ("str", _is_str),
    "paths.results_dir": ("str", _is_str),
    "paths.figures_dir": ("str", _is_str),
    "cell.name": ("str", _is_str),
    "cell.state": ("str", _is_str),
    "cell.pchic_tissue": ("str", _is_str),
    "cell.expression.column": ("str", _is_str),
    "cell.expression.table": ("str", _is_str),
    "data.name": ("str", _is_str),
    "model.promoter_cnn.marks": ("list", _is_list),
    "model.promoter_cnn.folds": ("list", _is_list),
    "model.promoter_cnn.concurrent": ("bool", lambda v: isinstance(v, bool)),
    "model.chromoformer.marks": ("list", _is_list),
    "model.chromoformer.folds": ("list", _is_list),
    "model.chromoformer.mark_sets": ("list of lists", _is_list_of_lists),
    "model.chromoformer.concurrent": ("int", _is_int),
    "model.claster.marks": ("list", _is_list),
    "model.claster.folds": ("list", _is_list),
    "model.claster.lr": ("float", _is_number),
    "model.claster.max_epochs": ("int", _is_int),
    "model.claster.perturbation.n_genes": ("int", _is_int),
    "model.hierarchical_cnn.folds": ("list", _is_list),
    "model.expecto.alphas": ("list", _is_list),
    "cross_celltype.leave_one_out": ("list", _is_list),
    "peaks.macs2": ("str", _is_str),
    "peaks.qvalue": ("float", _is_number),
    "peaks.llocal": ("int", _is_int),
    "shallowchrome.marks": ("list", _is_list),
    "simulate.n_jobs": ("int", _is_int),
    "chromoformer_study.protocol": ("str", _is_str),
    "chromoformer_study.folds": ("list", _is_list),
    "chromoformer_diff.cell_types": ("list", _is_list),
    "chromoformer_diff.pairs": ("list of lists", _is_list_of_lists),
    "chromoformer_diff.folds": ("list", _is_list),
    "chromoformer_diff.protocol": ("str", _is_str),
    "baselines.*.grad_clip": ("float", _is_number),
    "simulate.presets.*.n_genes": ("int", _is_int),
    "real_e116.counts": ("str", _is_str),
    "real_e116.marks": ("list", _is_list),
    "real_e116.folds": ("list", _is_list),
    "real_e116.n_genes": ("int", _is_int),
    "real_e116.cnn.stacked": ("bool", lambda v: isinstance(v, bool)),
}


def _nullable_type(dotted: str) -> tuple[str, Callable[[Any], bool]] | None:
    for pattern, spec in NULLABLE_TYPES.items():
        if fnmatch.fnmatchcase(dotted, pattern) and dotted.count(".") == pattern.count("."):
            return spec
    return None


# YAML reading (duplicate keys refused) lives in chromexp.utils, shared with chromexp.cells; re-exported here.


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
            nullable = _nullable_type(dotted) if current is None else None
            if nullable is not None and value is not None and not nullable[1](value):
                raise ValueError(
                    f"Parameter '{dotted}' in {source} should be null or of type {nullable[0]}, "
                    f"got {value!r} ({type(value).__name__})."
                )
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
            value = load_yaml_text(raw) if isinstance(raw, str) else raw
        except DuplicateKeyError as err:
            raise ValueError(f"-p {key} {raw!r}: {err.problem}.") from err
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
    """Return the registered id of ``cell_type`` (``e003`` → ``E003``), else raise naming the known ones.

    Cell types are defined by their files ``params/cells/<ID>.yaml`` (:mod:`chromexp.cells`).
    """
    return cells.normalise(cell_type)


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
        A cell-type id (``"E003"``, matched case-insensitively); the ``cell:`` block of its file
        ``params/cells/<ID>.yaml`` (:mod:`chromexp.cells`, checked complete) is merged after the defaults.
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
    params, layers = _layers(cell_type, files, overrides, defaults)
    for source, update in layers:
        params = merge(params, update, source)
    if cell_type is not None:
        params["cell_type"] = cells.get(cell_type).id
    known = cells.ids()
    unknown = [c for c in params.get("cell_types", []) if c not in known]
    if unknown:
        try:
            fixed = [check_cell_type(c) for c in params["cell_types"]]
        except ValueError as err:
            raise ValueError(f"'cell_types': {err}") from None
        params["cell_types"] = fixed  # only the case differed (e003 -> E003)
    validate(params)
    return params


#: Source label of the ``-p`` / ``PARAMS`` overrides in messages and in :func:`changes`.
OVERRIDES_SOURCE = "the overrides (-p / PARAMS)"


def _layers(
    cell_type: str | None,
    files: Iterable[str | Path | None],
    overrides: Mapping[str, Any] | None,
    defaults: str | Path | None,
) -> tuple[dict[str, Any], list[tuple[str, Mapping[str, Any]]]]:
    """The defaults and the ``(source, update)`` layers :func:`load_params` merges over them, in order."""
    defaults_path = Path(defaults) if defaults is not None else paths.params_dir() / "defaults.yaml"
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if cell_type is not None:
        cell = cells.get(cell_type)
        layers.append((str(cell.file), {"cell": cell.as_params()}))
    for file in files:
        if file is None or str(file) == "":
            continue
        file = Path(file)
        if not file.is_absolute() and not file.exists():
            file = paths.repo_root() / file
        layers.append((str(file), read_yaml(file)))
    if overrides:
        layers.append((OVERRIDES_SOURCE, overrides))
    return read_yaml(defaults_path), layers


def changes(
    cell_type: str | None = None,
    files: Iterable[str | Path | None] = (),
    overrides: Mapping[str, Any] | None = None,
    defaults: str | Path | None = None,
):
    """The parameters whose merged value differs from ``params/defaults.yaml``, and where each was set.

    Same arguments as :func:`load_params`. Returns a ``pandas.DataFrame`` indexed by the dotted
    ``parameter`` with columns ``value``, ``default`` (``repr`` strings) and ``set_in`` (the file
    or the overrides that set the value last), in the defaults' order (new free-form keys last).
    """
    import pandas as pd

    base, layers = _layers(cell_type, files, overrides, defaults)
    default = flatten(base)
    current, set_in = dict(default), {}
    params = base
    for source, update in layers:
        params = merge(params, update, source)
        flat = flatten(params)
        for key, value in flat.items():
            if key not in current or current[key] != value:
                set_in[key] = source
        current = flat
    rows = [
        (key, repr(value), repr(default[key]) if key in default else "(not in the defaults)", set_in.get(key, ""))
        for key, value in current.items()
        if key not in default or default[key] != value
    ]
    table = pd.DataFrame(rows, columns=["parameter", "value", "default", "set_in"])
    return table.set_index("parameter")


def _get(params: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


DEVICE_PATTERN = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def validate(params: Mapping[str, Any]) -> None:
    """Check the merged parameter *values* (names and types are checked by :func:`merge`).

    Raises one ``ValueError`` listing every problem, each with its dotted key: folds must be a
    non-empty subset of 1-4, marks of the seven histone marks, sizes and counts positive, the device
    ``cpu``/``cuda``/``cuda:N``/``mps`` (or null), the run name a plain folder name, paths strings.
    Keys absent from ``params`` are skipped (a block another version does not have).
    """
    problems: list[str] = []

    def check(dotted: str, ok: Callable[[Any], bool], why: str, nullable: bool = False) -> None:
        present, value = _get(params, dotted)
        if not present or (nullable and value is None):
            return
        try:
            good = ok(value)
        except (TypeError, ValueError):
            good = False
        if not good:
            problems.append(f"'{dotted}' = {value!r}: {why}")

    def subset(allowed: Sequence[Any], what: str):
        def ok(v):
            return _is_list(v) and len(v) > 0 and all(x in allowed for x in v) and len(set(v)) == len(v)

        return ok, f"must be a non-empty list of distinct {what} from {list(allowed)}"

    def folds_ok(v):
        return _is_list(v) and len(v) > 0 and all(_is_int(x) and x in FOLDS for x in v) and len(set(v)) == len(v)

    folds_why = f"must be a non-empty list of distinct folds from {list(FOLDS)}"
    marks_ok, marks_why = subset(MARKS, "histone marks")
    positive_int = (lambda v: _is_int(v) and v >= 1, "must be a positive integer")
    positive_num = (lambda v: _is_number(v) and v > 0, "must be a positive number")

    from .paths import check_name

    def plain(v):
        check_name(v)
        return True

    # NumPy's legacy seeding and torch take seeds below 2**32 / 2**64; derived seeds stay exact below 2**32
    check("seed", lambda v: _is_int(v) and 0 <= v < 2**32, "must be an integer from 0 to 4294967295 (2**32 - 1)")
    check(
        "device", lambda v: _is_str(v) and bool(DEVICE_PATTERN.match(v)), "must be null, cpu, cuda, cuda:N or mps", True
    )
    check("run_name", plain, "must be a plain folder name (no '/', '..' or leading '.')")
    check("data.name", plain, "must be a plain folder name (no '/', '..' or leading '.')", True)
    check(
        "data.simulator_version",
        lambda v: _is_int(v) and v in SIMULATOR_VERSIONS,
        "must be one of the simulator versions "
        + ", ".join(f"{k} ({' + '.join(f) or 'the original simulator'})" for k, f in SIMULATOR_VERSIONS.items())
        + " (docs/methods.md, 'Simulator versions')",
    )
    check(
        "perturbation.geometry",
        lambda v: v in PERTURBATION_GEOMETRIES,
        f"must be one of {list(PERTURBATION_GEOMETRIES)}",
    )
    for key in ("eqtl.ranking", "ldsc.ranking"):
        check(key, lambda v: v in EFFECT_RANKINGS, f"must be one of {list(EFFECT_RANKINGS)}")
    check("cell_types", lambda v: _is_list(v) and len(set(v)) == len(v), "must not repeat a cell type")
    check("marks", marks_ok, marks_why)
    check("folds", folds_ok, folds_why)
    for block in ("model.promoter_cnn", "model.chromoformer", "model.claster"):
        check(f"{block}.marks", marks_ok, marks_why, True)
        check(f"{block}.folds", folds_ok, folds_why, True)
    check("model.chromoformer.pair_anchors", lambda v: _is_list(v) and all(x in MARKS for x in v), marks_why)
    check(
        "model.chromoformer.mark_sets",
        lambda v: _is_list_of_lists(v) and len(v) > 0 and all(marks_ok(s) for s in v),
        "must be a non-empty list of non-empty lists of distinct histone marks",
        True,
    )
    check("model.chromoformer.concurrent", *positive_int, nullable=True)
    check("model.claster.option", lambda v: v in ("A", "B", "C"), "must be A, B or C")
    check("model.claster.heads", *subset(("gene", "profile"), "heads"))
    check("model.claster.structures", *subset(("none", "virtual_4c", "square"), "structure forms"))
    check("model.claster.loss", lambda v: v in ("smooth_l1", "mse"), "must be smooth_l1 or mse")
    check("model.claster.optimizer", lambda v: v in ("adam", "adamw"), "must be adam or adamw")
    check("model.claster.lr", *positive_num, nullable=True)
    check("model.claster.max_epochs", *positive_int, nullable=True)
    check("model.claster.weight_decay", lambda v: _is_number(v) and v >= 0, "must be a non-negative number")
    for key in ("v4c_half_window", "v4c_bin", "square_half_window", "square_bin"):
        check(f"model.claster.{key}", *positive_int)
    check("model.claster.perturbation.level", lambda v: _is_number(v) and 0 <= v <= 1, "must be a number in [0, 1]")
    check("model.claster.perturbation.n_genes", *positive_int, nullable=True)
    for key in ("kappa", "pause_weight", "antisense_share", "erna_amplitude", "floor"):
        check(f"nascent.{key}", lambda v: _is_number(v) and v >= 0, "must be a non-negative number")
    for key in ("pause_sd", "elongation_decay", "readthrough_decay", "antisense_decay", "overdispersion_shape"):
        check(f"nascent.{key}", *positive_num)
    # notebook 55 (Mittal 2025): hierarchical CNNs, ExPecto, the cross-celltype comparison
    check("model.hierarchical_cnn.folds", folds_ok, folds_why, True)
    for key in ("channels", "kernel_size", "pool_size", "max_epochs"):
        check(f"model.hierarchical_cnn.{key}", *positive_int)
    check("model.hierarchical_cnn.n_blocks", lambda v: _is_int(v) and v >= 0, "must be a non-negative integer")
    check(
        "model.hierarchical_cnn.lr",
        lambda v: _is_list(v) and len(v) > 0 and all(_is_number(x) and x > 0 for x in v),
        "must be a non-empty list of positive learning rates",
    )
    check(
        "model.hierarchical_cnn.dropout",
        lambda v: _is_list(v) and len(v) > 0 and all(_is_number(x) and 0 <= x < 1 for x in v),
        "must be a non-empty list of dropout rates in [0, 1)",
    )
    variants = ("single_tissue", "multi_tissue", "matched_shared")
    check("model.hierarchical_cnn.variants", *subset(variants, "variants"))
    check("model.hierarchical_cnn.hybrid_variant", lambda v: v in variants[1:], f"must be one of {list(variants[1:])}")
    check(
        "model.hierarchical_cnn.hybrid_grid",
        lambda v: (
            _is_list_of_lists(v)
            and len(v) > 0
            and all(len(p) == 2 and all(_is_number(x) and x >= 0 for x in p) and sum(p) > 0 for p in v)
        ),
        "must be a non-empty list of [alpha, beta] pairs, both >= 0 and not both 0",
    )
    check("model.expecto.modes", *subset(("matched", "all_cells"), "ExPecto modes"))
    check(
        "model.expecto.alphas",
        lambda v: _is_list(v) and len(v) > 0 and all(_is_number(x) and x > 0 for x in v),
        "must be a non-empty list of positive ridge penalties",
        True,
    )
    check("cross_celltype.bin_size", lambda v: v in (100, 200), "must be 100 or 200 (bp)")
    check("cross_celltype.target", lambda v: v in ("log2p1", "ln_pc"), "must be log2p1 or ln_pc")
    check(
        "cross_celltype.leave_one_out",
        lambda v: _is_list(v) and all(c in params.get("cell_types", []) for c in v) and len(set(v)) == len(v),
        "must list distinct cell types of the run's cell_types",
        True,
    )
    check("cross_celltype.n_permutations", *positive_int)
    check("shallowchrome.marks", marks_ok, marks_why, True)
    check("shallowchrome.feature_engine", lambda v: v in FEATURE_ENGINES, f"must be one of {list(FEATURE_ENGINES)}")
    for key in ("paths.data_dir", "paths.results_dir", "paths.figures_dir"):
        check(key, lambda v: _is_str(v) and v.strip() != "", "must be a non-empty path string (or null)", True)
    for key in ("train.batch_size", "train.max_epochs", "train.early_stopping_patience"):
        check(key, *positive_int)
    check("train.lr_patience", lambda v: _is_int(v) and v >= 0, "must be a non-negative integer")
    check("train.lr", *positive_num)
    check("train.min_lr", lambda v: _is_number(v) and v >= 0, "must be a non-negative number")
    check("train.lr_factor", lambda v: _is_number(v) and 0 < v < 1, "must be a number in (0, 1)")
    check("train.protocol", lambda v: v in PROTOCOLS, f"must be one of {list(PROTOCOLS)}")
    check("train.chromoformer_protocol.lr", *positive_num)
    check("train.chromoformer_protocol.lr_gamma", lambda v: _is_number(v) and 0 < v <= 1, "must be a number in (0, 1]")
    for key in ("train.chromoformer_protocol.batch_size", "train.chromoformer_protocol.max_epochs"):
        check(key, *positive_int)
    study_protocol = (lambda v: v in PROTOCOLS, f"must be null or one of {list(PROTOCOLS)}")
    check("chromoformer_study.protocol", *study_protocol, nullable=True)
    check("chromoformer_study.folds", folds_ok, folds_why, True)
    models = ("chromoformer", "deepchrome", "attentivechrome", "hmcrnn")
    check("chromoformer_study.models", *subset(models, "model families"))
    check("chromoformer_study.tasks", *subset(("clf", "reg"), "tasks"))
    check(
        "chromoformer_study.windows",
        lambda v: (
            _is_list(v) and len(v) > 0 and all(_is_int(x) and x > 0 and x % 2 == 0 for x in v) and len(set(v)) == len(v)
        ),
        "must be a non-empty list of distinct positive even windows (bp)",
    )
    check("chromoformer_diff.protocol", *study_protocol, nullable=True)
    check("chromoformer_diff.folds", folds_ok, folds_why, True)
    check(
        "chromoformer_diff.cell_types",
        lambda v: _is_list(v) and len(v) >= 2 and len(set(v)) == len(v) and all(c in cells.ids() for c in v),
        "must be null or at least two distinct Roadmap EIDs of the study",
        True,
    )
    check(
        "chromoformer_diff.pairs",
        lambda v: len(v) > 0 and all(len(p) == 2 and p[0] != p[1] and all(c in cells.ids() for c in p) for p in v),
        "must be null or a non-empty list of [EID, EID] pairs of two different cell types",
        True,
    )
    check(
        "chromoformer_diff.loss_weights",
        lambda v: _is_list(v) and len(v) == 3 and all(_is_number(x) and x >= 0 for x in v) and v[0] > 0,
        "must be three non-negative weights [lfc, A, B] with lfc > 0",
    )
    check(
        "chromoformer_diff.baselines",
        lambda v: _is_list(v) and all(x in ("two_reg", "clf_ratio", "deepdiff") for x in v) and len(set(v)) == len(v),
        "must be a list of distinct names from ['two_reg', 'clf_ratio', 'deepdiff']",
    )
    variants = ("raw_d", "raw_c", "raw", "aux", "raw_aux", "aux_siamese", "raw_aux_siamese")
    check("chromoformer_diff.deepdiff_variant", lambda v: v in variants, f"must be one of {list(variants)}")
    for name in ("deepchrome", "attentivechrome", "hmcrnn", "deepdiff"):
        block = f"baselines.{name}"
        check(f"{block}.optimizer", lambda v: v in ("adam", "adamw", "sgd"), "must be adam, adamw or sgd")
        check(f"{block}.lr", *positive_num)
        check(f"{block}.lr_decay", lambda v: _is_number(v) and v >= 0, "must be a non-negative number")
        for key in ("window", "batch_size", "max_epochs"):
            check(f"{block}.{key}", *positive_int)
        check(f"{block}.grad_clip", *positive_num, nullable=True)
    check("dataset.validation_fraction", lambda v: _is_number(v) and 0 <= v < 1, "must be a number in [0, 1)")
    check("dataset.max_pcres", lambda v: _is_int(v) and v >= 0, "must be a non-negative integer")
    check(
        "signal.resolutions",
        lambda v: _is_list(v) and len(v) > 0 and all(_is_int(x) and x > 0 for x in v),
        "must be a non-empty list of positive integers (bp)",
    )
    check("signal.half_window", *positive_int)
    check("peaks.n_jobs", *positive_int)
    check("simulate.n_jobs", *positive_int, nullable=True)
    check("perturbation.n_genes", *positive_int, nullable=True)
    check("perturbation.folds", folds_ok, folds_why, True)
    for key in ("batch_size", "distance_bins", "promoter_flank"):
        check(f"perturbation.{key}", *positive_int)
    for key in ("n_baseline_genes", "n_steps", "n_check_genes"):
        check(f"perturbation.attribution.{key}", *positive_int)
    # notebook 15 (chromexp.experiments.real_e116)
    check(
        "real_e116.counts", lambda v: _is_str(v) and v.strip() != "", "must be a non-empty path string (or null)", True
    )
    check("real_e116.cell_type", lambda v: v in cells.ids(), f"must be a known cell type ({', '.join(cells.ids())})")
    check("real_e116.k", lambda v: _is_int(v) and 0 <= v <= 5, "must be an integer from 0 to 5 (TSS bin ± k bins)")
    present_k, k = _get(params, "real_e116.k")
    check(
        "real_e116.baseline_k",
        lambda v: _is_int(v) and 0 <= v and (not present_k or not _is_int(k) or v <= k),
        "must be an integer from 0 to real_e116.k",
    )
    check("real_e116.marks", marks_ok, marks_why, True)
    check("real_e116.folds", folds_ok, folds_why, True)
    check("real_e116.n_genes", lambda v: _is_int(v) and v >= 10, "must be an integer >= 10 (or null)", True)
    for key in ("real_e116.alphas", "real_e116.cs"):
        check(
            key,
            lambda v: _is_list(v) and len(v) > 0 and all(_is_number(x) and x > 0 for x in v),
            "must be a non-empty list of positive numbers",
        )
    for key in ("real_e116.cnn.channels", "real_e116.cnn.hidden", "real_e116.cnn.train.batch_size"):
        check(key, *positive_int)
    check("real_e116.cnn.kernel_size", lambda v: _is_int(v) and v >= 1 and v % 2 == 1, "must be a positive odd integer")
    check("real_e116.cnn.dropout", lambda v: _is_number(v) and 0 <= v < 1, "must be a number in [0, 1)")
    check("real_e116.cnn.train.lr", *positive_num)
    check("real_e116.tolerance", *positive_num)
    if problems:
        raise ValueError("Invalid parameter value(s): " + "; ".join(problems) + ".")


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
