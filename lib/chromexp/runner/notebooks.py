"""Find, execute and track the analysis notebooks (``notebooks/NN_name.py``).

The jupytext percent ``.py`` file is the source of truth. :func:`execute` converts it in memory
(papermill cannot read a ``.py``) and runs it with papermill into
``results/<run>/<cell_type>/<NN_name>.ipynb``:

* the notebook is written to ``<NN_name>.running.ipynb`` while it runs and renamed to
  ``<NN_name>.ipynb`` only when every cell succeeded, so a finished-looking file is a finished run;
* a failure leaves ``<NN_name>.FAILED.ipynb`` (the partial notebook, with the traceback in the
  failing cell) and ``<NN_name>.FAILED.txt`` (the error in one place);
* a successful run records, in the notebook's metadata, a fingerprint of its inputs (notebook
  source, merged parameters, cell type, and for per-cell-type notebooks the name, size and
  modification time of every raw input file of that cell type): :func:`status` says ``done`` only
  when a finished notebook has the fingerprint the same call would have now, which is how
  ``chromexp batch`` resumes (a changed tagAlign makes notebooks 10-50 of its cell type stale);
* one (run, cell type, notebook) runs at a time: a second run of it fails at once, naming the pid
  of the one holding ``.<NN_name>.lock`` (an OS lock, released even if that run is killed; the
  file exists only while the job runs);
* FAILED files are written atomically (the short error first), so a full disk leaves either no
  file or a complete one, never an empty text or truncated JSON.

A notebook is *per cell type* when its ``parameters`` cell declares ``CELL_TYPE``; otherwise it
covers every cell type at once (00 demo data, 90 figures) and its results go to ``results/<run>/all/``.

The notebooks that train one model per chromosome fold (:data:`FOLD_PARAMETERS`) can also run one
fold per job (``chromexp run 30 --cell E003 --fold 2``, ``chromexp batch --per-fold``, Snakemake's
``per_fold``): that job runs the notebook with ``FOLD_JOB = 2`` (its parameters are the whole
notebook's) and writes ``<NN_name>.fold2.ipynb``; it trains and checkpoints the fold's models and
merges their rows into the run's keyed tables (metrics, predictions, training history). Every job
rebuilds the derived tables (summaries, gains) and figures from the keyed tables, over the folds of
the whole notebook: complete when every fold is there, otherwise marked ``PARTIAL`` in the table's
``data`` column and on the figure. The notebook's own job, which waits for its fold jobs, then reads
every model back from its checkpoint (it trains nothing) and writes the complete tables, so
downstream notebooks see the same results as from one unsplit run; it is stale whenever a fold job
finished after it.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from .. import config, paths
from ..utils import (
    DISK_FULL_ERRNOS,
    JOB_LOG_ENV,
    LockHeld,
    atomic_path,
    atomic_write_text,
    disk_full_error,
    exclusive_lock,
    get_logger,
    remove_stale_temporaries,
)

log = get_logger("chromexp.runner.notebooks")

NOTEBOOK_PATTERN = re.compile(r"^(\d{2})_([A-Za-z0-9_]+)\.py$")
PARAMETER_NAMES = ("CELL_TYPE", "RUN_NAME", "PARAMS_FILE", "PARAMS")
#: The papermill parameter of a fold job (``chromexp run NN --fold K`` injects ``FOLD_JOB = K``).
FOLD_JOB_PARAMETER = "FOLD_JOB"

#: Notebooks that can run one chromosome fold per job, and the dotted parameter selecting their
#: folds (``null`` there = the top-level ``folds``). Their models are checkpointed one file per
#: (marks, fold), named independently of the folds selected, which is what lets the notebook's
#: all-folds job read the fold jobs' models back instead of training them again.
FOLD_PARAMETERS: dict[str, str] = {
    "30_promoter_model": "model.promoter_cnn.folds",
    "40_distal_model": "model.chromoformer.folds",
    "45_chromoformer_study": "chromoformer_study.folds",
    "50_mark_pairs": "model.chromoformer.folds",
}

#: Global notebooks that no per-cell-type notebook reads: a cell type's later notebooks do not wait
#: for them (so ``batch`` runs them beside the per-cell-type work instead of idling one core). Later
#: global notebooks, which may read their tables (70, 80, 90), still wait for everything before them.
SIDE_NOTEBOOKS: frozenset[str] = frozenset({"15_real_e116", "46_chromoformer_diff", "55_cross_celltype"})


#: What a notebook that covers every cell type reads from earlier notebooks and from the data, as
#: ``"<root>:<glob>"`` patterns: root ``run`` (``results/<run>/``), ``raw`` (the raw-data folder),
#: ``processed`` (the processed-data folder) or ``ldsc`` (LDSC's reference files); ``{cell}``
#: stands for each cell type of the run and ``{p:<dotted key>}`` for a parameter's value;
#: ``"param:<dotted key>"`` is the file a parameter names (none when it is null). The size and modification time of every matching file
#: enter the job's fingerprint (:attr:`Job.data_fingerprints`), so a changed upstream table makes
#: the job stale, and the Snakemake workflow declares the files as inputs. A notebook covering every
#: cell type that is not listed reads :data:`DEFAULT_GLOBAL_INPUTS`. (Per-cell-type notebooks are
#: covered by their cell type's raw inputs and dataset store.) A notebook must not list a folder it
#: writes itself.
NOTEBOOK_INPUTS: dict[str, tuple[str, ...]] = {
    "00_demo_data": (),  # writes the raw data; reads only its parameters
    # the vendored real E116 counts are part of the package; `real_e116.counts` points at the user's own
    "15_real_e116": ("param:real_e116.counts", "raw:{p:real_e116.cell_type}-*.tagAlign.gz", "raw:genes.tsv"),
    "55_cross_celltype": ("run:{cell}/metrics.tsv", "run:{cell}/predictions.tsv.gz", "processed:{cell}/*.h5"),
    "70_eqtl_enrichment": (
        "run:{cell}/perturbation_effects.tsv.gz",
        "processed:{cell}/*.h5",
        "raw:eqtl/*",
        "raw:truth/enhancers.tsv.gz",
    ),
    "80_ldsc": ("run:{cell}/perturbation_effects.tsv.gz", "raw:genes.tsv", "raw:truth/*", "ldsc:*", "ldsc:gwas/*"),
    "90_figures": (
        "run:{cell}/*.tsv",
        "run:{cell}/*.tsv.gz",
        "run:{cell}/*.npz",
        "run:eqtl/*.tsv",
        "run:ldsc/*.tsv",
        "run:ldsc/*.tsv.gz",
    ),
}


def _param(params: Mapping[str, Any], dotted: str) -> Any:
    """The value of parameter ``dotted`` (``"real_e116.counts"``), ``None`` where a level is absent."""
    value: Any = params
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


#: The inputs of a notebook covering every cell type that :data:`NOTEBOOK_INPUTS` does not list.
DEFAULT_GLOBAL_INPUTS: tuple[str, ...] = ("run:{cell}/*.tsv", "run:{cell}/*.tsv.gz")


@dataclass(frozen=True)
class Notebook:
    """One analysis notebook: ``notebooks/NN_name.py`` (source) and its paired ``.ipynb``."""

    path: Path

    @property
    def number(self) -> str:
        """The two-digit number of the notebook (``"30"``)."""
        return self.path.name[:2]

    @property
    def stem(self) -> str:
        """The file name without ``.py`` (``"30_promoter_model"``)."""
        return self.path.stem

    @cached_property
    def source_text(self) -> str:
        """The text of the ``.py`` source (read once)."""
        return self.path.read_text()

    @cached_property
    def parameters(self) -> tuple[str, ...]:
        """Names assigned in the cell tagged ``parameters`` (in order)."""
        import jupytext

        nb = jupytext.reads(self.source_text, fmt="py:percent")
        for cell in nb.cells:
            if "parameters" in cell.get("metadata", {}).get("tags", []):
                return tuple(re.findall(r"^([A-Za-z_]\w*)\s*=", cell.source, flags=re.MULTILINE))
        return ()

    @property
    def per_cell_type(self) -> bool:
        """True when the notebook runs once per cell type (declares ``CELL_TYPE``)."""
        return "CELL_TYPE" in self.parameters

    def to_notebook(self):
        """The notebook as an ``nbformat.NotebookNode`` (converted in memory from the ``.py``)."""
        import jupytext

        return jupytext.reads(self.source_text, fmt="py:percent")


def discover(directory: str | Path | None = None) -> list[Notebook]:
    """All ``NN_name.py`` notebooks of ``directory`` (default ``notebooks/``), sorted by number."""
    directory = Path(directory) if directory is not None else paths.notebooks_dir()
    found = [Notebook(p) for p in sorted(directory.glob("*.py")) if NOTEBOOK_PATTERN.match(p.name)]
    numbers = [nb.number for nb in found]
    dupes = sorted({n for n in numbers if numbers.count(n) > 1})
    if dupes:
        raise ValueError(f"Two notebooks share the number(s) {dupes} in {directory}; numbers must be unique.")
    return found


def resolve(spec: str, directory: str | Path | None = None) -> Notebook:
    """Find a notebook by number (``"30"``), name (``"30_promoter_model"``, or ``"promoter_model"``) or path.

    An unknown one is a ``ValueError`` that suggests the closest names ("did you mean").
    """
    notebooks = discover(directory)
    spec = str(spec)
    as_path = Path(spec)
    if as_path.suffix in (".py", ".ipynb") and as_path.with_suffix(".py").is_file():
        return Notebook(as_path.with_suffix(".py").resolve())
    key = as_path.stem if as_path.suffix in (".py", ".ipynb") else spec
    for nb in notebooks:
        if key in (nb.number, nb.stem) or (key.isdigit() and len(key) == 1 and nb.number == f"0{key}"):
            return nb
    # the name without its number ("promoter_model"), in any case
    by_name = [nb for nb in notebooks if key.lower() in (nb.stem.lower(), nb.stem.split("_", 1)[1].lower())]
    if len(by_name) == 1:
        return by_name[0]
    import difflib

    names = {nb.stem.split("_", 1)[1]: nb.stem for nb in notebooks} | {nb.stem: nb.stem for nb in notebooks}
    close = difflib.get_close_matches(key.lower(), list(names), n=2, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(n) for n in dict.fromkeys(names[c] for c in close))}?" if close else ""
    known = ", ".join(nb.stem for nb in notebooks) or "(none)"
    raise ValueError(f"Unknown notebook {spec!r}.{hint} Known notebooks: {known} (chromexp list).")


def check_parameter_names(nb: Notebook) -> None:
    """Raise if a notebook's parameters cell lacks the standard ``RUN_NAME/PARAMS_FILE/PARAMS``."""
    missing = [p for p in PARAMETER_NAMES[1:] if p not in nb.parameters]
    if missing:
        raise ValueError(
            f"{nb.path.name}: the parameters cell must declare {', '.join(PARAMETER_NAMES[1:])} "
            f"(missing {', '.join(missing)}); see notebooks/00_demo_data.py."
        )


@dataclass(frozen=True)
class Job:
    """One execution: a notebook, a cell type (``None`` for global notebooks) and its parameters."""

    notebook: Notebook
    cell_type: str | None
    params_file: Path | None
    overrides: Mapping[str, Any]
    run_name: str
    params: Mapping[str, Any]
    fold: int | None = None  # one fold of a notebook in FOLD_PARAMETERS (None = the whole notebook)

    @property
    def name(self) -> str:
        """``"<notebook stem> [<EID or global scope>]"`` (``" fold K"`` for a fold job), for messages."""
        fold = f" fold {self.fold}" if self.fold is not None else ""
        return f"{self.notebook.stem} [{self.cell_type or paths.GLOBAL_SCOPE}]{fold}"

    @property
    def stem(self) -> str:
        """Base name of the job's files: ``NN_name``, or ``NN_name.foldK`` for a fold job."""
        return self.notebook.stem if self.fold is None else f"{self.notebook.stem}.fold{self.fold}"

    @property
    def out_dir(self) -> Path:
        """The run folder of the job (:func:`chromexp.paths.run_dir`)."""
        return paths.run_dir(self.params, self.run_name, self.cell_type)

    @property
    def output(self) -> Path:
        """The executed notebook, ``<out_dir>/<stem>.ipynb``."""
        return self.out_dir / f"{self.stem}.ipynb"

    @property
    def running(self) -> Path:
        """The notebook being executed, ``<stem>.running.ipynb`` (renamed on success)."""
        return self.out_dir / f"{self.stem}.running.ipynb"

    @property
    def failed(self) -> Path:
        """The partial notebook of a failed run, ``<stem>.FAILED.ipynb``."""
        return self.out_dir / f"{self.stem}.FAILED.ipynb"

    @property
    def failed_message(self) -> Path:
        """The error message of a failed run, ``<stem>.FAILED.txt``."""
        return self.out_dir / f"{self.stem}.FAILED.txt"

    @property
    def lock_file(self) -> Path:
        """The lock held while the job runs, ``.<stem>.lock``."""
        return self.out_dir / f".{self.stem}.lock"

    @property
    def log_file(self) -> Path:
        """The job's log, ``<out_dir>/logs/<stem>.log``: the runner's lines and the notebook's detail lines.

        The notebook itself shows one summary line per model; the per-epoch lines, external
        commands and the like are appended here (:func:`chromexp.utils.configure_logging`).
        """
        return self.out_dir / "logs" / f"{self.stem}.log"

    @property
    def command(self) -> str:
        """The ``chromexp run … --force`` command line that reruns this job (for messages such as "retrain with")."""
        import shlex

        words = ["chromexp", "run", self.notebook.number]
        if self.cell_type:
            words += ["--cell", self.cell_type]
        if self.fold is not None:
            words += ["--fold", str(self.fold)]
        if self.params_file:
            words += ["-f", _relative(self.params_file)]
        for key, value in _dotted_items(self.overrides):
            words += ["-p", key, json.dumps(value, default=str)]
        words += ["--run-name", self.run_name, "--force"]
        return " ".join(shlex.quote(w) for w in words)

    @property
    def papermill_parameters(self) -> dict[str, Any]:
        """Values injected into the notebook's parameters cell (``CELL_TYPE`` only if it declares one)."""
        values: dict[str, Any] = {
            "RUN_NAME": self.run_name,
            "PARAMS_FILE": str(self.params_file) if self.params_file else None,
            "PARAMS": dict(self.overrides),
        }
        if self.notebook.per_cell_type:
            values["CELL_TYPE"] = self.cell_type
        if self.fold is not None:
            values[FOLD_JOB_PARAMETER] = self.fold
        return values

    def input_files(self) -> list[Path]:
        """The files on disk this job reads besides its parameters (those that exist now).

        Per-cell-type notebooks (10 and later): the cell type's raw inputs
        (:func:`chromexp.data.dataset.input_files`); notebooks covering every cell type: the files
        matching their :data:`NOTEBOOK_INPUTS` patterns. Used by the Snakemake workflow as the
        rule's inputs, so it sees a changed raw file.
        """
        if self.cell_type is not None:
            if int(self.notebook.number) < 10:
                return []
            from ..data import dataset

            files = dataset.input_files(self.params, self.cell_type)
            flat = [v for k, v in files.items() if k != "reads"] + list(files["reads"].values())
            return sorted({Path(p) for p in flat if Path(p).is_file()})
        return sorted({path for _, path in self._declared_files()})

    def _declared_files(self) -> list[tuple[str, Path]]:
        """``(label, path)`` of every existing file matching this global job's declared input patterns."""
        patterns = NOTEBOOK_INPUTS.get(self.notebook.stem, DEFAULT_GLOBAL_INPUTS)
        if not patterns:
            return []
        from ..data import download

        roots = {
            "run": paths.results_dir(self.params) / self.run_name,
            "raw": paths.raw_dir(self.params),
            "processed": paths.dataset_dir(self.params) / "processed",
            "ldsc": download.ldsc_dir(self.params),
        }
        found: dict[str, Path] = {}
        for spec in patterns:
            root_name, _, pattern = spec.partition(":")
            if root_name == "param":  # a file named by a parameter (null: none)
                value = _param(self.params, pattern) if pattern else None
                if value is not None and Path(str(value)).expanduser().is_file():
                    found[f"param:{pattern}"] = Path(str(value)).expanduser()
                continue
            if root_name not in roots or not pattern:
                raise ValueError(
                    f"NOTEBOOK_INPUTS of {self.notebook.stem}: {spec!r} is not '<root>:<glob>' "
                    f"({list(roots)} or 'param:<dotted key>')."
                )
            root = roots[root_name]
            for key in re.findall(r"\{p:([\w.]+)\}", pattern):  # {p:dotted.key}: that parameter's value
                pattern = pattern.replace(f"{{p:{key}}}", glob.escape(str(_param(self.params, key))))
            cells = list(self.params.get("cell_types") or []) if "{cell}" in pattern else [None]
            for cell in cells:
                expanded = pattern.replace("{cell}", cell) if cell else pattern
                for path in sorted(root.glob(expanded)) if root.is_dir() else []:
                    if path.is_file() and not path.name.startswith("."):
                        found[f"{root_name}:{path.relative_to(root).as_posix()}"] = path
        return sorted(found.items())

    @property
    def data_fingerprints(self) -> dict[str, Any] | None:
        """What this job's results derive from on disk, beyond its parameters.

        ``inputs``: ``[name, size, mtime]`` of every raw input file of the cell type (notebooks read
        them directly or through the dataset store, which records the same fingerprints), so a
        changed tagAlign makes every per-cell-type job stale. ``store``: size and content checksum
        of the cell type's dataset store (``"unreadable"`` when HDF5 cannot open it, e.g.
        truncated), so a damaged or rebuilt store is not skipped as up to date. Notebooks covering
        every cell type: ``tables``, ``[size, mtime]`` of every file their :data:`NOTEBOOK_INPUTS`
        match (the tables of earlier notebooks, stores, raw files), so a changed upstream table
        makes 70, 80 and 90 stale; ``None`` when they declare no inputs (00).
        """
        if self.cell_type is None:
            declared = self._declared_files()
            if not declared and not NOTEBOOK_INPUTS.get(self.notebook.stem, DEFAULT_GLOBAL_INPUTS):
                return None
            tables = {}
            for label, path in declared:
                st = path.stat()
                tables[label] = [st.st_size, st.st_mtime_ns]
            return {"tables": tables}
        from ..data import dataset

        return {
            "inputs": dataset.input_fingerprints(self.params, self.cell_type),
            "store": dataset.store_fingerprint(self.params, self.cell_type),
        }

    def fingerprint_of(self, data: Mapping[str, Any] | None) -> str:
        """Hash of source, merged parameters, cell type, run name and ``data`` (see :attr:`fingerprint`)."""
        payload = json.dumps(
            {
                "source": self.notebook.source_text,
                "params": self.params,
                "cell_type": self.cell_type,
                "run": self.run_name,
                "data": data,
                **({"fold": self.fold} if self.fold is not None else {}),
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def fingerprint(self) -> str:
        """Hash of everything that decides this job's output: source, parameters, cell type, input data."""
        return self.fingerprint_of(self.data_fingerprints)


def make_job(
    notebook: Notebook | str,
    cell_type: str | None = None,
    params_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    fold: int | None = None,
) -> Job:
    """Validate everything about one execution before anything runs, and describe it as a :class:`Job`.

    ``fold`` makes it the job of one chromosome fold of a notebook in :data:`FOLD_PARAMETERS`: its
    fold parameter is overridden with ``[fold]``.

    Raises ``ValueError`` for an unknown notebook, a missing cell type for a per-cell-type notebook,
    an unknown cell type, a missing parameter file, an unknown parameter key, or a fold the
    notebook cannot run alone or does not train with these parameters.
    """
    nb = notebook if isinstance(notebook, Notebook) else resolve(notebook)
    check_parameter_names(nb)
    if run_name is not None:
        paths.check_name(run_name)
    if params_file is not None:
        params_file = Path(params_file)
        if not params_file.is_file() and (paths.repo_root() / params_file).is_file():
            params_file = paths.repo_root() / params_file
        if not params_file.is_file():
            raise ValueError(f"Parameter file {params_file} does not exist.")
        params_file = params_file.resolve()
    if nb.per_cell_type:
        if not cell_type:
            raise ValueError(f"{nb.stem} runs per cell type: give one with --cell (e.g. --cell E003).")
        cell_type = config.check_cell_type(cell_type)  # e003 -> E003
    else:
        cell_type = None
    overrides = dict(overrides or {})
    params = config.load_params(cell_type, files=[params_file], overrides=overrides)
    if fold is not None:
        fold = int(fold)
        selected = notebook_folds(nb, params)
        if fold not in selected:
            raise ValueError(
                f"{nb.stem} trains folds {selected} with these parameters ({FOLD_PARAMETERS[nb.stem]}, else "
                f"the top-level folds); fold {fold} is not one of them."
            )
        if FOLD_JOB_PARAMETER not in nb.parameters:
            raise ValueError(f"{nb.stem} declares no {FOLD_JOB_PARAMETER} parameter: it cannot run one fold per job.")
        # the parameters stay those of the whole notebook (it knows every fold of the run, so its
        # derived tables can say which are missing); FOLD_JOB selects the fold it trains
    return Job(nb, cell_type, params_file, overrides, run_name or params["run_name"], params, fold)


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.repo_root().resolve()))
    except ValueError:
        return str(path)


def _dotted_items(nested: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``{"a": {"b": 1}}`` → ``[("a.b", 1)]`` (leaves: anything but a non-empty mapping)."""
    items: list[tuple[str, Any]] = []
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items += _dotted_items(value, f"{dotted}.")
        else:
            items.append((dotted, value))
    return items


def missing_inputs(job: Job) -> list[tuple[str, Path]]:
    """The input files ``job`` needs that are not on disk: ``(download kind, path)`` pairs.

    Checked before any kernel starts (``chromexp run`` / ``batch``). Real data only
    (``data.source: roadmap``): semi-synthetic inputs are generated by notebook 00. Per-cell-type
    notebooks need the cell type's raw inputs (the dataset store is built from them and its
    fingerprint covers them): gene table, chromosome sizes and expression (kind ``setup``: written
    by any ``chromexp download``; a user's own expression table has kind ``own``), the tagAlign
    files, the pcHi-C table of its tissue and, with ``data.genes: reference``, Chromoformer's
    annotations; notebook 70 the eQTL table and chain; notebook 80 LDSC's resources and GWAS files.
    """
    params = job.params
    if params["data"]["source"] == "semisynthetic":
        return []
    from ..data import dataset, download, eqtl

    need: list[tuple[str, Path]] = []
    if job.cell_type is not None and int(job.notebook.number) >= 10:
        files = dataset.input_files(params, job.cell_type)
        own = params["cell"]["expression"]["source"] == "table"
        need += [("setup", files["genes"]), ("setup", files["chrom_sizes"])]
        need.append(("own" if own else "expression", files["expression"]))
        need += [("tagAlign", path) for path in files["reads"].values()]
        need += [("pchic", files["pchic"])] if "pchic" in files else []
        need += [("annotations", files[k]) for k in ("ensg2tss", "tss2fragment") if k in files]
    if job.notebook.stem.startswith("70_"):
        raw = paths.raw_dir(params) / "eqtl"
        need += [("eqtl", raw / eqtl.EQTL_FILE), ("eqtl", raw / eqtl.CHAIN_FILE)]
    if job.notebook.stem.startswith("80_"):
        root = download.ldsc_dir(params)
        need += [("ldsc", root / name) for name in ("hm3_no_MHC.list.txt",)]
        need += [("ldsc", root / "1000G_EUR_Phase3_plink" / "1000G.EUR.QC.1.bim")]
        gwas = sorted((root / "gwas").glob("*.sumstats.gz")) if (root / "gwas").is_dir() else []
        if not gwas:
            need.append(("ldsc", root / "gwas" / "<trait>.sumstats.gz"))
    return [(kind, Path(path)) for kind, path in need if not Path(path).is_file()]


def download_command(jobs_missing: list[tuple[Job, list[tuple[str, Path]]]]) -> str:
    """The ``chromexp download`` command fetching what :func:`missing_inputs` found missing."""
    kinds = list(dict.fromkeys(k for _, m in jobs_missing for k, _ in m if k not in ("setup", "own")))
    cells = list(dict.fromkeys(j.cell_type for j, m in jobs_missing if j.cell_type and m))
    params_file = next((j.params_file for j, _ in jobs_missing if j.params_file), None)
    cmd = "chromexp download"
    if cells and any(k not in ("ldsc", "eqtl") for k in kinds):
        cmd += " --cells " + " ".join(cells)
    cmd += " --kinds " + " ".join(kinds or ["tagAlign", "expression"])
    if params_file is not None:
        try:
            shown = params_file.relative_to(paths.repo_root())
        except ValueError:
            shown = params_file
        cmd += f" -f {shown}"
    return cmd


def preflight_message(jobs: list[Job]) -> str | None:
    """None when every job's inputs are on disk; else what is missing per job and the download command."""
    missing = [(job, m) for job in jobs if (m := missing_inputs(job))]
    if not missing:
        return None
    lines = ["missing inputs (no notebook was started):"]
    for job, items in missing:
        by_kind: dict[str, list[Path]] = {}
        for kind, path in items:
            by_kind.setdefault(kind, []).append(path)
        parts = []
        for kind, found in by_kind.items():
            shown = ", ".join(str(p) for p in found[:2]) + (f" and {len(found) - 2} more" if len(found) > 2 else "")
            parts.append(f"{kind}: {shown}")
        lines.append(f"  {job.name}: " + "; ".join(parts))
    own = [p for _, m in missing for k, p in m if k == "own"]
    if own:
        lines.append(f"your own expression table is missing ({own[0]}): fix cell.expression.table of the cell type.")
    lines.append("fetch them with:")
    lines.append(f"  {download_command(missing)}")
    return "\n".join(lines)


def notebook_folds(nb: Notebook, params: Mapping[str, Any]) -> list[int]:
    """The folds ``nb`` trains with ``params``; ``ValueError`` if it cannot run one fold per job."""
    if nb.stem not in FOLD_PARAMETERS:
        per_fold = ", ".join(f"{n} ({k})" for n, k in FOLD_PARAMETERS.items())
        raise ValueError(f"{nb.stem} does not run one fold per job; the notebooks that do: {per_fold}.")
    node: Any = params
    for part in FOLD_PARAMETERS[nb.stem].split("."):
        node = node[part]
    return [int(f) for f in (node or params["folds"])]


def status(job: Job) -> str:
    """``"done"`` (finished with the same fingerprint), ``"stale"`` (finished, inputs changed) or ``"todo"``.

    The whole-notebook job of a per-fold notebook is also ``"stale"`` when one of its fold jobs
    finished after it: that fold's rows in the keyed tables are newer than the notebook's summaries
    and figures (:func:`fold_jobs_after`).
    """
    if not job.output.is_file():
        return "todo"
    import nbformat

    try:
        meta = nbformat.read(job.output, as_version=4).metadata.get("chromexp", {})
    except Exception:  # an unreadable notebook is as good as absent
        return "todo"
    if meta.get("fingerprint") != job.fingerprint or fold_jobs_after(job):
        return "stale"
    return "done"


def fold_jobs_after(job: Job) -> list[Path]:
    """The executed fold notebooks (``<NN_name>.foldK.ipynb``) written after ``job``'s own notebook."""
    if job.fold is not None or job.notebook.stem not in FOLD_PARAMETERS or not job.output.is_file():
        return []
    own = job.output.stat().st_mtime_ns
    pattern = re.compile(rf"^{re.escape(job.notebook.stem)}\.fold\d+\.ipynb$")
    return sorted(
        p
        for p in job.out_dir.glob(f"{job.notebook.stem}.fold*.ipynb")
        if pattern.match(p.name) and p.stat().st_mtime_ns > own
    )


#: Display name of the project's ``python3`` kernel, also the one every notebook header declares:
#: JupyterLab rewrites a notebook's kernelspec when the two differ, which marks a freshly opened
#: notebook modified and churns the reviewed ``.py`` header on save (checked by :func:`check_pair`).
KERNEL_DISPLAY_NAME = "Python 3 (ipykernel)"

#: The notebook metadata filter every header declares: without it jupytext writes its own version and
#: the format version into the header on every save from JupyterLab (header churn in review).
HEADER_METADATA_FILTER = "-jupytext.text_representation.jupytext_version,-jupytext.text_representation.format_version"


def _kernel_path() -> str:
    """A kernelspec folder whose ``python3`` kernel is *this* interpreter.

    Jupyter resolves ``python3`` through the user's kernelspecs first, which may point at another
    Python; putting ours first on ``JUPYTER_PATH`` makes notebooks run with the package installed here.
    """
    root = Path(tempfile.gettempdir()) / f"chromexp-kernels-{hashlib.sha1(sys.executable.encode()).hexdigest()[:10]}"
    spec_dir = root / "kernels" / "python3"
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": KERNEL_DISPLAY_NAME,
        "language": "python",
        "metadata": {"debugger": False},
    }
    spec_dir.mkdir(parents=True, exist_ok=True)
    target = spec_dir / "kernel.json"
    text = json.dumps(spec, indent=1)
    if not target.is_file() or target.read_text() != text:
        tmp = spec_dir / f".kernel.{os.getpid()}.json"
        tmp.write_text(text)
        os.replace(tmp, target)
    return str(root)


class JobLocked(RuntimeError):
    """Another process is running the same (run, cell type, notebook)."""


@contextlib.contextmanager
def job_lock(job: Job) -> Iterator[Path]:
    """Hold the lock of ``job`` (run, cell type, notebook) or raise :class:`JobLocked` at once.

    An ``flock`` on the hidden ``<out_dir>/.<NN_name>.lock`` (:func:`chromexp.utils.exclusive_lock`):
    the operating system releases it when the holder exits, even when it is killed, and the file is
    removed after use, so a results folder keeps no lock files. While held, the file records the
    holder's pid, host and start time for the message a second run gets.
    """
    job.out_dir.mkdir(parents=True, exist_ok=True)
    note = f"pid {os.getpid()} on {socket.gethostname()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n"
    try:
        with exclusive_lock(job.lock_file, blocking=False, note=note) as path:
            yield path
    except LockHeld as held:
        if held.path != job.lock_file:
            raise
        raise JobLocked(
            f"{job.name} of run '{job.run_name}' is already running ({held.holder or 'unknown process'}); two runs "
            f"writing {job.out_dir} at once would mix their outputs. Wait for it to finish or stop it "
            f"(kill <pid>), then rerun."
        ) from None


def _valid_notebook(path: Path) -> str | None:
    """``None`` if ``path`` is a readable notebook, else why not (e.g. truncated JSON)."""
    import nbformat

    try:
        nbformat.read(path, as_version=4)
    except Exception as err:  # noqa: BLE001 — any failure means unusable
        return f"{type(err).__name__}: {str(err)[:200]}"
    return None


def record_failure(job: Job, err: BaseException, seconds: float) -> None:
    """Leave ``FAILED.txt`` (and ``FAILED.ipynb`` when the partial notebook is intact) for ``job``.

    The one-line error is written first and atomically, so even on a nearly full disk the file is
    either absent or complete; then the partial notebook is kept only if it is valid JSON; then the
    full message replaces the short one if there is room. Never raises for a write failure.
    """
    # papermill's own message starts with a banner; its ename/evalue are the notebook's error
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    what = f"{ename}: {evalue}" if ename else f"{type(err).__name__}: {err}"
    what = " ".join(what.split())[:500]
    headline = f"{job.name} failed after {seconds:.1f} s: {what}\n"
    try:
        atomic_write_text(job.failed_message, headline)
    except OSError as werr:
        log.error("could not write %s: %s", job.failed_message, werr)
        return
    partial = "none (the notebook did not start)"
    if job.running.exists():
        problem = _valid_notebook(job.running)
        if problem is None:
            os.replace(job.running, job.failed)
            partial = str(job.failed)
        else:
            job.running.unlink(missing_ok=True)
            partial = f"none (the partial notebook was unreadable and removed: {problem})"
    text = (
        headline
        + f"\nPartial notebook: {partial}\nParameters: {json.dumps(job.papermill_parameters, default=str)}\n\n"
        + f"{type(err).__name__}: {err}\n"
    )
    try:
        atomic_write_text(job.failed_message, text)
    except OSError as werr:
        log.error("could not write the full error to %s (kept the one-line error): %s", job.failed_message, werr)


def execute(job: Job, log_output: bool = True, progress_bar: bool = True) -> Path:
    """Run ``job`` with papermill; return the path of the executed notebook.

    Holds the job's lock (:func:`job_lock`; raises :class:`JobLocked` if another run holds it).
    On failure, leaves ``<NN_name>.FAILED.txt`` and, when intact, ``.FAILED.ipynb``, and re-raises
    the error (a full disk as an ``OSError`` naming the file). On success, removes temporary files
    that killed runs left in the output folder.
    """
    import nbformat
    import papermill

    with job_lock(job):
        for stale in (job.running, job.failed, job.failed_message):
            stale.unlink(missing_ok=True)
        data_before = job.data_fingerprints  # raw inputs as they are when the run starts
        os.environ["JUPYTER_PATH"] = os.pathsep.join([_kernel_path(), *filter(None, [os.environ.get("JUPYTER_PATH")])])
        # the kernel appends its detail lines to the job's log; `chromexp batch` made the file and
        # writes this process's output to it, a direct run starts a fresh one
        job_log_before = os.environ.get(JOB_LOG_ENV)
        if job_log_before != str(job.log_file):
            job.log_file.parent.mkdir(parents=True, exist_ok=True)
            job.log_file.write_text(f"{time.strftime('%H:%M:%S')} chromexp run {job.name} -> {job.output}\n")
            os.environ[JOB_LOG_ENV] = str(job.log_file)
        # the kernel inherits it: errors such as an altered checkpoint name the command that retrains
        os.environ["CHROMEXP_JOB_COMMAND"] = job.command
        log.info("running %s -> %s", job.name, job.output)
        start = time.perf_counter()
        try:
            try:
                papermill.execute_notebook(
                    job.notebook.to_notebook(),
                    str(job.running),
                    parameters=job.papermill_parameters,
                    kernel_name="python3",
                    language="python",
                    log_output=log_output,
                    progress_bar=progress_bar,
                    cwd=str(paths.repo_root()),
                )
            except OSError as err:  # papermill writing the running notebook
                if err.errno in DISK_FULL_ERRNOS and not err.filename:
                    raise disk_full_error(err, job.running) from err
                raise
            executed = nbformat.read(job.running, as_version=4)
            data = job.data_fingerprints
            if data is not None:
                # raw inputs and upstream tables as read (a file changed meanwhile makes the result
                # stale); the store as left by the run (notebook 10 builds it: not stale for that)
                for key in ("inputs", "tables"):
                    if key in data:
                        data[key] = data_before[key]
            executed.metadata["chromexp"] = {
                "fingerprint": job.fingerprint_of(data),
                "cell_type": job.cell_type,
                "run_name": job.run_name,
                "params_file": str(job.params_file) if job.params_file else None,
                "seconds": round(time.perf_counter() - start, 2),
            }
            with atomic_path(job.output) as tmp:
                nbformat.write(executed, tmp)
            job.running.unlink(missing_ok=True)
        except BaseException as err:
            record_failure(job, err, time.perf_counter() - start)
            log.error("%s failed; see %s", job.name, job.failed_message)
            raise
        finally:
            if job_log_before is None:
                os.environ.pop(JOB_LOG_ENV, None)
            else:
                os.environ[JOB_LOG_ENV] = job_log_before
    remove_stale_temporaries(job.out_dir, recursive=True)
    log.info("%s finished in %.1f s", job.name, time.perf_counter() - start)
    return job.output


def check_pair(py_path: str | Path) -> list[str]:
    """Problems with a notebook's ``.py``/``.ipynb`` pair; an empty list means the pair is in order.

    Checks that the ``.ipynb`` exists, has the same cells (type, source, tags) as the ``.py``
    converted by jupytext (i.e. ``make sync`` was run after the last edit), carries no outputs or
    execution counts, keeps the kernelspec, and that papermill can parse every line of the
    ``parameters`` cell.
    """
    import jupytext
    import nbformat
    from papermill.translators import PythonTranslator

    py_path = Path(py_path)
    nb_path = py_path.with_suffix(".ipynb")
    problems: list[str] = []
    if not nb_path.is_file():
        return [f"{nb_path.name} is missing: run `make sync` (jupytext --to ipynb --update {py_path.name})"]
    expected = jupytext.reads(py_path.read_text(), fmt="py:percent")
    actual = nbformat.read(nb_path, as_version=4)

    def cells(nb):
        return [(c.cell_type, c.source.strip(), tuple(c.get("metadata", {}).get("tags", []))) for c in nb.cells]

    if cells(expected) != cells(actual):
        differ = next(
            (i for i, (a, b) in enumerate(zip(cells(expected), cells(actual), strict=False)) if a != b),
            min(len(expected.cells), len(actual.cells)),
        )
        problems.append(
            f"{nb_path.name} is out of date with {py_path.name} (first difference at cell {differ}): run `make sync`"
        )
    for i, cell in enumerate(actual.cells):
        if cell.cell_type == "code" and (cell.get("outputs") or cell.get("execution_count") is not None):
            problems.append(f"{nb_path.name} cell {i} carries outputs: commit notebooks without outputs")
            break
    if actual.metadata.get("kernelspec", {}).get("name") != "python3":
        problems.append(f"{nb_path.name} lacks the python3 kernelspec")
    header = py_path.read_text().split("# ---", 2)[1]
    if "kernelspec" not in header:
        problems.append(f"{py_path.name}: the jupytext header must keep the kernelspec")
    elif expected.metadata.get("kernelspec", {}).get("display_name") != KERNEL_DISPLAY_NAME:
        problems.append(
            f"{py_path.name}: kernelspec display_name must be {KERNEL_DISPLAY_NAME!r} (the project kernel's; "
            "JupyterLab otherwise rewrites the header on save)"
        )
    if "jupytext_version:" in header or f"notebook_metadata_filter: {HEADER_METADATA_FILTER}" not in header:
        problems.append(
            f"{py_path.name}: the jupytext header must declare 'notebook_metadata_filter: {HEADER_METADATA_FILTER}' "
            "under 'jupytext:' (no jupytext_version / format_version lines: JupyterLab's saves then keep it unchanged)"
        )
    param_cells = [c for c in expected.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(param_cells) != 1:
        problems.append(f"{py_path.name} must have exactly one cell tagged 'parameters' (has {len(param_cells)})")
    else:
        declared = re.findall(r"^([A-Za-z_]\w*)\s*=", param_cells[0].source, flags=re.MULTILINE)
        parsed = [p.name for p in PythonTranslator.inspect(param_cells[0])]
        if parsed != declared:
            problems.append(
                f"{py_path.name}: papermill cannot parse every line of the parameters cell "
                f"(declared {declared}, parsed {parsed}); avoid '=' in comments"
            )
    return problems
