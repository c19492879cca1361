"""The cell types: each one is defined by its parameter file alone, ``params/cells/<ID>.yaml``.

One module decides which cell types exist and what they are; every other module asks it. A
cell-type file declares five facts (all required; ``null`` / ``[]`` where there is none)::

    cell:
      name: H1 ESC                  # readable name
      state: ESC                    # cell state (the study's: ESC | ESC-derived | primary | cancer line)
      pchic_tissue: H1              # 3DIV promoter-capture Hi-C sample, or null (no pCREs)
      eqtl_tissues: []              # GTEx tissues of the fine-mapped eQTLs matched to it (notebook 70)
      expression:                   # where its expression (RPKM) comes from:
        source: roadmap             #   roadmap = a column of the Roadmap RPKM matrix (57epigenomes.RPKM.pc.gz)
        column: E003                #   ... this column (an EID)
        table: null                 #   table = the user's own table (gene_id, value): this path

The study's eleven Roadmap epigenomes are eleven such files; adding a file adds a cell type
(``params/cells/E017.yaml``), with nothing else to edit. Files in the folders of
``$CHROMEXP_CELLS_DIR`` (``os.pathsep``-separated) are read too, after ``params/cells/``, so a
user can keep their own cell types outside the repository. A cell-type id is the file's stem; ids
are matched case-insensitively (``e003`` → ``E003``, :func:`normalise`).

The API other modules use: :func:`ids`, :func:`get` (a :class:`CellType`), :func:`normalise`,
:func:`registry`; :data:`chromexp.constants.CELL_TYPES`, ``CELL_STATES`` and ``PCHIC_TISSUE``
remain as read-only views of the registry (id → name / state / tissue).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import paths

#: Environment variable naming further folders of cell-type files (``os.pathsep``-separated).
ENV_CELLS_DIR = "CHROMEXP_CELLS_DIR"

#: The cell states of the study (chromexpress's grouping); other states are allowed and shown as given.
STUDY_STATES: tuple[str, ...] = ("ESC", "ESC-derived", "primary", "cancer line")

#: Keys every cell-type file must declare under ``cell:`` (``null`` / ``[]`` allowed where noted above).
REQUIRED_KEYS: tuple[str, ...] = ("name", "state", "pchic_tissue", "eqtl_tissues", "expression")

#: Where a cell type's expression can come from.
EXPRESSION_SOURCES: tuple[str, ...] = ("roadmap", "table")

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Expression:
    """Where a cell type's expression (RPKM) comes from.

    Attributes
    ----------
    source : str
        ``roadmap``: column :attr:`column` of the Roadmap RPKM matrix (``57epigenomes.RPKM.pc.gz``; on
        semi-synthetic data the vendored real RPKM table); ``table``: the user's own table at :attr:`table`.
    column : str or None
        The matrix column (an EID) for ``roadmap``.
    table : pathlib.Path or None
        The user's expression table for ``table``: tab-separated, a ``gene_id`` column (Ensembl ids of
        the gene table) and one value column (RPKM, or any non-negative expression on that scale).
    """

    source: str
    column: str | None = None
    table: Path | None = None


@dataclass(frozen=True)
class CellType:
    """One cell type, as declared by its file (see the module docstring).

    Attributes
    ----------
    id : str
        The file's stem (``E003``).
    name, state : str
        Readable name and cell state.
    pchic_tissue : str or None
        3DIV pcHi-C sample; None = no pcHi-C (genes get no pCREs).
    eqtl_tissues : tuple of str
        Fine-mapped eQTL tissues (empty: left out of notebook 70).
    expression : Expression
        Where its expression comes from.
    file : pathlib.Path
        The file that defines it.
    """

    id: str
    name: str
    state: str
    pchic_tissue: str | None
    eqtl_tissues: tuple[str, ...]
    expression: Expression
    file: Path

    def as_params(self) -> dict[str, Any]:
        """The ``cell:`` block of the parameters (what ``config.load_params`` merges)."""
        return {
            "name": self.name,
            "state": self.state,
            "pchic_tissue": self.pchic_tissue,
            "eqtl_tissues": list(self.eqtl_tissues),
            "expression": {
                "source": self.expression.source,
                "column": self.expression.column,
                "table": None if self.expression.table is None else str(self.expression.table),
            },
        }


def cell_dirs() -> list[Path]:
    """Folders searched for ``<ID>.yaml``: ``params/cells/`` then those of ``$CHROMEXP_CELLS_DIR``."""
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_CELLS_DIR, "").split(os.pathsep) if p.strip()]
    return [paths.params_dir() / "cells", *extra]


def _fail(file: Path, key: str, why: str) -> ValueError:
    return ValueError(f"Cell-type file {file}: 'cell.{key}' {why}")


def _parse(file: Path) -> CellType:
    """Read and check one cell-type file; every problem names the file and the key."""
    from .utils import read_yaml

    cell_id = file.stem
    if not _ID.match(cell_id):
        raise ValueError(f"Cell-type file {file}: its name must be a plain id (letters, digits, '_' or '-').")
    data = read_yaml(file)
    other = sorted(set(data) - {"cell"})
    if other:
        raise ValueError(
            f"Cell-type file {file} may only hold the 'cell:' block (facts of the cell type), not {other}; "
            "run settings belong in a run file (-f)."
        )
    block = data.get("cell")
    if not isinstance(block, Mapping):
        raise ValueError(f"Cell-type file {file} has no 'cell:' block (keys: {', '.join(REQUIRED_KEYS)}).")
    missing = [k for k in REQUIRED_KEYS if k not in block]
    if missing:
        raise ValueError(
            f"Cell-type file {file} is incomplete: missing 'cell.{missing[0]}'"
            + (f" (and {', '.join('cell.' + k for k in missing[1:])})" if len(missing) > 1 else "")
            + f". Every cell-type file declares {', '.join(REQUIRED_KEYS)} (null or [] where there is none); "
            "see docs/real-data.md."
        )
    unknown = sorted(set(block) - set(REQUIRED_KEYS))
    if unknown:
        raise _fail(file, unknown[0], f"is not a cell-type key; known: {', '.join(REQUIRED_KEYS)}.")
    for key in ("name", "state"):
        if not isinstance(block[key], str) or not block[key].strip():
            raise _fail(file, key, f"must be a non-empty string, got {block[key]!r}.")
    tissue = block["pchic_tissue"]
    if tissue is not None and (not isinstance(tissue, str) or not _ID.match(tissue)):
        raise _fail(file, "pchic_tissue", f"must be a 3DIV sample name (e.g. H1) or null, got {tissue!r}.")
    eqtl = block["eqtl_tissues"]
    if not isinstance(eqtl, list) or not all(isinstance(t, str) and t.strip() for t in eqtl):
        raise _fail(file, "eqtl_tissues", f"must be a list of tissue names ([] for none), got {eqtl!r}.")
    expr = block["expression"]
    if not isinstance(expr, Mapping):
        raise _fail(file, "expression", f"must be a block with 'source' (roadmap | table), got {expr!r}.")
    bad = sorted(set(expr) - {"source", "column", "table"})
    if bad:
        raise _fail(file, f"expression.{bad[0]}", "is not a key of 'expression' (source, column, table).")
    source = expr.get("source")
    if source not in EXPRESSION_SOURCES:
        raise _fail(file, "expression.source", f"must be one of {', '.join(EXPRESSION_SOURCES)}, got {source!r}.")
    column, table = expr.get("column"), expr.get("table")
    if source == "roadmap":
        if not isinstance(column, str) or not column.strip():
            raise _fail(file, "expression.column", "must name the RPKM matrix column (an EID, e.g. E003).")
        if table is not None:
            raise _fail(file, "expression.table", "is only for 'source: table' (set it to null).")
        expression = Expression("roadmap", column=column)
    else:
        if not isinstance(table, str) or not table.strip():
            raise _fail(file, "expression.table", "must be the path of your expression table (gene_id, value).")
        path = Path(table).expanduser()
        if not path.is_absolute():
            path = paths.repo_root() / path
        expression = Expression("table", column=column if isinstance(column, str) else None, table=path)
    return CellType(
        id=cell_id,
        name=block["name"].strip(),
        state=block["state"].strip(),
        pchic_tissue=tissue,
        eqtl_tissues=tuple(eqtl),
        expression=expression,
        file=file,
    )


_CACHE: dict[tuple, dict[str, CellType]] = {}


def registry() -> dict[str, CellType]:
    """Every defined cell type, id → :class:`CellType`, in id order (files re-read when they change).

    Raises
    ------
    ValueError
        A malformed or incomplete file (naming the file and the key), or one id defined in two folders.
    """
    files: dict[str, Path] = {}
    for folder in cell_dirs():
        if not folder.is_dir():
            continue
        for file in sorted(folder.glob("*.yaml")):
            clash = next((f for i, f in files.items() if i.lower() == file.stem.lower()), None)
            if clash is not None:
                raise ValueError(f"Cell type {file.stem!r} is defined twice: {clash} and {file}. Keep one.")
            files[file.stem] = file
    key = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files.values())
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = {cid: _parse(f) for cid, f in sorted(files.items())}
    return dict(_CACHE[key])


def ids() -> tuple[str, ...]:
    """Ids of every defined cell type, sorted (``("E003", "E004", ...)``)."""
    return tuple(registry())


def _unknown(text: str, known: tuple[str, ...]) -> ValueError:
    close = difflib.get_close_matches(text.upper(), [k.upper() for k in known], n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(k) for k in known if k.upper() in close)}?" if close else ""
    return ValueError(
        f"Unknown cell type {text!r}.{hint} Known: {', '.join(known)}. A cell type is defined by its file "
        f"params/cells/<ID>.yaml (or a folder in ${ENV_CELLS_DIR}); see docs/real-data.md."
    )


def normalise(text: str) -> str:
    """The registered id matching ``text`` case-insensitively (``"e003"`` → ``"E003"``); unknown → ValueError."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"A cell type must be an id such as 'E003', got {text!r}.")
    known = ids()
    match = [k for k in known if k.lower() == text.strip().lower()]
    if not match:
        raise _unknown(text, known)
    return match[0]


def get(cell_id: str) -> CellType:
    """The :class:`CellType` of ``cell_id`` (matched case-insensitively); unknown → ValueError with suggestions."""
    return registry()[normalise(cell_id)]


class View(Mapping):
    """A read-only mapping id → one attribute of every registered cell type (today's constants' names).

    ``chromexp.constants.CELL_TYPES`` is ``View("name")``: it reads the registry when used, never at
    import, so a new ``params/cells/<ID>.yaml`` appears in it without any code change.
    """

    def __init__(self, attribute: str):
        self.attribute = attribute

    def __getitem__(self, cell_id: str):
        reg = registry()
        if cell_id not in reg:
            raise KeyError(cell_id)
        return getattr(reg[cell_id], self.attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(registry())

    def __len__(self) -> int:
        return len(registry())

    def __repr__(self) -> str:
        return f"cells.View({self.attribute!r}: {dict(self)!r})"
