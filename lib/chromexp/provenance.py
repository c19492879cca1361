"""Where a dataset's provenance is decided: from the files on disk, never from a parameter.

The generator of the semi-synthetic data (:func:`chromexp.simulate.roadmap.generate`) writes
``raw/manifest.json`` (last, with the size and SHA-256 of every file it wrote). Real inputs --
downloaded with ``chromexp download`` or copied by a user -- have no such manifest. So:

* manifest present -> :data:`~chromexp.constants.SEMI_SYNTHETIC`, whatever ``data.source`` says;
* no manifest and the input files present -> :data:`~chromexp.constants.REAL`.

:func:`detect` reads the folder; :func:`of_params` also compares with what the parameters declare
(``data.source: semisynthetic`` declares semi-synthetic, any other source real) and refuses a
contradiction with an error that says what is on disk. Every place that needs to know whether
data are semi-synthetic (the dataset builder, which stores it in the dataset; the notebooks'
``Run.provenance``; the plots' captions; the MACS2 genome-size choice) calls this module.

Which *simulator version* made semi-synthetic files (``data.simulator_version``, docs/methods.md,
"Simulator versions") is read from the same manifest (:func:`simulator_version`; a manifest written
before the switch existed has no such key and is version 1). :func:`check_simulator_version` refuses
parameters that ask for another version than the files on disk hold, so data (and a dataset store)
made by one version are never read as another's.

A semi-synthetic folder into which real files were copied (a file the manifest lists with
another size, or an input it does not list) is refused too: it is neither.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from . import paths
from .constants import REAL, SEMI_SYNTHETIC

#: Written by the semi-synthetic generator into the raw folder (last).
MANIFEST = "manifest.json"


class ProvenanceError(ValueError):
    """The files on disk contradict the parameters, or are a mix of generated and real files."""


def declared(params: Mapping[str, Any]) -> str:
    """What the parameters *claim* (``data.source``); only ever compared with :func:`detect`."""
    return SEMI_SYNTHETIC if params["data"]["source"] == "semisynthetic" else REAL


def read_manifest(raw_dir: str | Path) -> dict[str, Any] | None:
    """The generator's manifest of ``raw_dir``; ``None`` if there is none.

    Raises :class:`ProvenanceError` for a manifest that exists but cannot be read: a damaged
    manifest must not turn generated files into "real" ones.
    """
    path = Path(raw_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ProvenanceError(f"{path} exists but cannot be read ({err}); regenerate the dataset.") from err
    if not isinstance(manifest, dict):
        raise ProvenanceError(f"{path} is not a manifest of generated files (a JSON object expected).")
    return manifest


def detect(raw_dir: str | Path, files: Iterable[str | Path] | None = None) -> str:
    """Provenance of the inputs in ``raw_dir``: semi-synthetic if the generator's manifest is there.

    Parameters
    ----------
    raw_dir : path
        The raw-input folder (:func:`chromexp.paths.raw_dir`).
    files : iterable of paths, optional
        The inputs actually used. With a manifest, each must be listed in it with the size it
        was generated with (a cheap check that no real file was copied in); without one they
        must exist.

    Raises
    ------
    ProvenanceError
        No input at all in ``raw_dir``, a damaged manifest, or a mix of generated and other files.
    """
    raw = Path(raw_dir)
    manifest = read_manifest(raw)
    files = [Path(f) for f in (files or [])]
    if manifest is None:
        present = [f for f in files if f.is_file()] if files else ([p for p in raw.iterdir()] if raw.is_dir() else [])
        if not present:
            raise ProvenanceError(
                f"No input files in {raw}: generate the semi-synthetic data (notebook 00) or download the real files."
            )
        return REAL
    listed = manifest.get("files", {})
    foreign = []
    for f in files:
        try:
            rel = f.resolve().relative_to(raw.resolve()).as_posix()
        except ValueError:
            foreign.append(f"{f} (outside {raw})")
            continue
        info = listed.get(rel)
        if info is None:
            foreign.append(f"{rel} (not in the manifest)")
        elif f.is_file() and int(info.get("bytes", -1)) != f.stat().st_size:
            foreign.append(f"{rel} ({f.stat().st_size} bytes, generated with {info.get('bytes')})")
    if foreign:
        raise ProvenanceError(
            f"{raw} holds generated (semi-synthetic) data -- {MANIFEST} is there -- but these inputs are not the "
            f"generated files: {', '.join(foreign)}. Keep real and generated data in separate folders "
            "(data.source / data.name)."
        )
    return SEMI_SYNTHETIC


def of_params(params: Mapping[str, Any], files: Iterable[str | Path] | None = None) -> str:
    """Provenance of the dataset ``params`` select (its raw folder), checked against ``data.source``.

    Raises
    ------
    ProvenanceError
        If the files on disk say otherwise than ``data.source`` (e.g. ``data.source: roadmap``
        pointing at generated files), or see :func:`detect`.
    """
    raw = paths.raw_dir(params)
    found = detect(raw, files)
    claim = declared(params)
    if found != claim:
        source = params["data"]["source"]
        if found == SEMI_SYNTHETIC:
            why = (
                f"{raw} holds files generated by chromexp ({MANIFEST} is there): they are semi-synthetic, "
                f"but data.source is {source!r}, which declares real data. Use data.source: semisynthetic, or "
                "point data.name at a folder of real downloads (chromexp download)."
            )
        else:
            why = (
                f"data.source is 'semisynthetic' but {raw} has no {MANIFEST}: these files were not generated by "
                "chromexp, so they are not semi-synthetic. Regenerate them (notebook 00) or set data.source to "
                "the real source."
            )
        raise ProvenanceError(why)
    return found


def of_dataset_dir(params: Mapping[str, Any]) -> str | None:
    """Like :func:`of_params`, but ``None`` (not an error) while the raw folder holds nothing yet.

    That is the case, e.g., before notebook 00 has generated the data.
    """
    raw = paths.raw_dir(params)
    if not raw.is_dir() or not any(raw.iterdir()):
        return None
    return of_params(params)


def simulator_version(raw_dir: str | Path) -> int | None:
    """The simulator version that generated the files in ``raw_dir``; ``None`` for real data (no manifest).

    A manifest without a ``simulator_version`` key was written before the switch existed: version 1.
    """
    manifest = read_manifest(raw_dir)
    if manifest is None:
        return None
    version = manifest.get("simulator_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ProvenanceError(f"{Path(raw_dir) / MANIFEST}: simulator_version {version!r} is not an integer.")
    return version


def check_simulator_version(params: Mapping[str, Any], raw_dir: str | Path | None = None) -> int | None:
    """The simulator version of the files on disk, which must be the one ``data.simulator_version`` asks for.

    Real data (no manifest) return ``None`` and are not checked (the switch concerns generated data only).

    Raises
    ------
    ProvenanceError
        Semi-synthetic files of another version than the parameters' (regenerate them with notebook 00,
        or set ``data.simulator_version`` to the version on disk).
    """
    raw = Path(raw_dir) if raw_dir is not None else paths.raw_dir(params)
    found = simulator_version(raw)
    wanted = params["data"]["simulator_version"]
    if found is not None and found != wanted:
        raise ProvenanceError(
            f"{raw} holds semi-synthetic data of simulator version {found} but data.simulator_version is {wanted}: "
            f"regenerate the data (notebook 00: chromexp run 00 -p data.simulator_version {wanted} ...) or set "
            f"data.simulator_version: {found} (docs/methods.md, 'Simulator versions')."
        )
    return found


__all__ = [
    "MANIFEST",
    "ProvenanceError",
    "declared",
    "detect",
    "of_params",
    "of_dataset_dir",
    "read_manifest",
    "simulator_version",
    "check_simulator_version",
]


# ----------------------------------------------------------------------------------------------
# how captions and Answer paragraphs name the data
# ----------------------------------------------------------------------------------------------
#: What the semi-synthetic dataset simulates besides the reads: the eQTLs (notebook 70) and the
#: genotypes and GWAS (notebook 80). Captions of Fig. 7 and 8 name them (``data_label(..., genetics=True)``).
SIMULATED_GENETICS = "simulated reads, eQTLs and GWAS; real expression"


def data_label(provenance: str, genetics: bool = False) -> str:
    """Text that a caption must carry: ``"SEMI-SYNTHETIC data (...)"`` or ``"real data"``.

    ``genetics=True`` for panels that also show eQTLs or GWAS results: on the semi-synthetic
    dataset those are simulated too (:data:`SIMULATED_GENETICS`).
    """
    if provenance == SEMI_SYNTHETIC:
        if genetics:
            return f"SEMI-SYNTHETIC data ({SIMULATED_GENETICS})"
        return "SEMI-SYNTHETIC data (simulated reads, real expression)"
    if provenance == REAL:
        return "real data"
    raise ValueError(f"Unknown data provenance {provenance!r}; use {SEMI_SYNTHETIC!r} or {REAL!r}.")


def provenance_phrase(provenance: str) -> str:
    """How an **Answer** paragraph names the data: semi-synthetic results say so in the first words."""
    if provenance == SEMI_SYNTHETIC:
        return "On this **semi-synthetic** data (simulated reads, real expression; it shows what the simulator encodes, not biology)"
    return f"On this {provenance} data"
