"""Checkpoints: the one way chromexp writes and reads a model's saved state (every model family).

:func:`save_checkpoint` and :func:`load_checkpoint` are the function pair; the training engine
(:func:`chromexp.training.train.fit`, ``fit_many``) writes and reads every checkpoint through them,
and a recipe that saves a model of its own calls them too (never ``torch.save`` / ``torch.load``).

Safety. A checkpoint holds only tensors and plain values, so it is read with
``torch.load(weights_only=True)``: a file planted in a checkpoint folder cannot run code when it is
read. The state's plain values (training fingerprint, history, epoch, scheduler numbers, …) are
stored as JSON text inside the file, with each tensor replaced by a reference into a flat table of
tensors; the file holds::

    {"chromexp_checkpoint": 2,      # the file format (1 = the pickled dicts of chromexp < 2025-12)
     "meta": "<JSON text>",          # the state, tensors replaced by {"__tensor__": "<key>"}
     "tensors": {"<key>": tensor},
     "sha256": "<hex>"}              # content hash of the JSON text and of every tensor

Integrity. The SHA-256 of the JSON text and of every tensor (name, dtype, shape, bytes) is stored
with them and verified on every load: an edited or damaged checkpoint is an error naming the file
and the command that retrains it, never a silently different model. (The hash detects changes made
without recomputing it — a damaged disk, a hand edit, an interrupted copy; it is not a signature.)

Errors name the file: a truncated or foreign file, a format-1 checkpoint (read with
``weights_only=True`` it can be converted by :func:`migrate_checkpoint`, never unpickled), a hash
mismatch, a fingerprint of another run, and a full disk while writing (``OSError`` "disk full").

The command that retrains is the running job's (``$CHROMEXP_JOB_COMMAND``, set by the runner for
each notebook it executes), else a description of it.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..utils import DISK_FULL_ERRNOS, atomic_path, get_logger

log = get_logger("chromexp.training.checkpoint")

#: Version of the checkpoint file format (the key ``chromexp_checkpoint`` of the file).
FORMAT_VERSION = 2
#: Environment variable holding the command of the running job (set by ``chromexp run``).
JOB_COMMAND_VAR = "CHROMEXP_JOB_COMMAND"

_TENSOR, _TUPLE, _DICT, _ARRAY = "__tensor__", "__tuple__", "__dict__", "__ndarray__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, of an old format, altered, or of another run."""


def retrain_hint() -> str:
    """The command that retrains a deleted checkpoint: the running job's, else a description."""
    command = os.environ.get(JOB_COMMAND_VAR, "").strip()
    if command:
        return f"delete it and retrain with `{command}`"
    return (
        "delete it and retrain by rerunning the notebook that wrote it with the same parameters "
        "(`chromexp run NN --cell EID -f <params file> --force`)"
    )


# ----------------------------------------------------------------------------------------------
# encoding: a nested state <-> JSON text + a flat table of tensors
# ----------------------------------------------------------------------------------------------
def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided:
            raise TypeError(f"{where} is a {value.layout} tensor; checkpoints hold dense tensors only.")
        key = str(len(tensors))
        tensors[key] = value.detach().cpu()
        return {_TENSOR: key}
    if isinstance(value, np.ndarray):
        key = str(len(tensors))
        tensors[key] = torch.from_numpy(np.ascontiguousarray(value))
        return {_ARRAY: key}
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
        return {_TUPLE: items} if isinstance(value, tuple) else items
    if isinstance(value, Mapping):
        plain = all(isinstance(k, str) and not k.startswith("__") for k in value)
        for k in value:
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}; keys must be str or int.")
        if plain:
            return {k: _encode(v, tensors, f"{where}[{k!r}]") for k, v in value.items()}
        return {_DICT: [[k, _encode(v, tensors, f"{where}[{k!r}]")] for k, v in value.items()]}
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds only tensors, "
        "NumPy arrays and plain values (None, bool, int, float, str, lists, tuples and dicts of them)."
    )


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == _TENSOR:
                return tensors[inner]
            if key == _ARRAY:
                return tensors[inner].numpy()
            if key == _TUPLE:
                return tuple(_decode(v, tensors) for v in inner)
            if key == _DICT:
                return {k: _decode(v, tensors) for k, v in inner}
            if key == "__float__":
                return float(inner)
        return {k: _decode(v, tensors) for k, v in value.items()}
    return value


def _tensor_bytes(t: torch.Tensor) -> bytes:
    flat = t.detach().cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def content_hash(meta: str, tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a checkpoint's JSON text and of every tensor (key, dtype, shape, bytes), in key order."""
    h = hashlib.sha256()
    h.update(meta.encode())
    for key in sorted(tensors, key=lambda k: (len(k), k)):
        t = tensors[key]
        h.update(f"\0{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def _pack(state: Mapping[str, Any], path: Path) -> dict:
    if not isinstance(state, Mapping):
        raise TypeError(f"The state saved to {path} must be a dict; got {type(state).__name__}.")
    tensors: dict[str, torch.Tensor] = {}
    try:
        meta = json.dumps(_encode(state, tensors, "state"), sort_keys=False, allow_nan=False)
    except TypeError as err:
        raise TypeError(f"Cannot save the checkpoint {path}: {err}") from err
    return {
        "chromexp_checkpoint": FORMAT_VERSION,
        "meta": meta,
        "tensors": tensors,
        "sha256": content_hash(meta, tensors),
    }


# ----------------------------------------------------------------------------------------------
# the function pair
# ----------------------------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, state: Mapping[str, Any]) -> Path:
    """Write ``state`` to ``path`` atomically as a checkpoint that ``weights_only=True`` can read.

    Parameters
    ----------
    path : path
        Destination (its folder is created). A reader never sees a half-written file: the bytes go
        to a temporary file renamed into place (:func:`chromexp.utils.atomic_path`).
    state : dict
        Nested dicts / lists / tuples of tensors (any dtype, dense), NumPy arrays and plain values
        (None, bool, int, float including inf and nan, str); dict keys str or int. Anything else
        (a model object, a function, a dataclass) is refused with a ``TypeError`` naming where it is.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    OSError
        On a full disk or quota: ``[Errno 28] No space left on device (disk full) while writing the
        checkpoint: '<path>'``.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(_pack(state, path), buffer)  # serialised in memory: the disk sees plain file writes
    data = buffer.getbuffer()
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise OSError(
                err.errno, f"{os.strerror(err.errno)} (disk full) while writing the checkpoint", str(path)
            ) from err
        raise
    return path


def load_checkpoint(path: str | os.PathLike, fingerprint: Mapping[str, Any] | None = None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, verifying its content hash (and fingerprint).

    Parameters
    ----------
    path : path
        The checkpoint. Read with ``torch.load(weights_only=True)`` only.
    fingerprint : mapping, optional
        When given, the state's ``"fingerprint"`` must equal it (the model, data, seed and training
        parameters the caller is about to use); a checkpoint of another run is refused.

    Returns
    -------
    dict
        The state as saved (tensors on the CPU).

    Raises
    ------
    CheckpointError
        (a ``ValueError``) naming the file and what to do, when the file is missing, truncated, not a
        chromexp checkpoint, of the old pickled format, altered (hash mismatch) or of another run.
    """
    path = Path(path)
    raw = _read(path)
    version = raw.get("chromexp_checkpoint") if isinstance(raw, dict) else None
    if version is None:
        if isinstance(raw, dict) and "fingerprint" in raw and raw.get("version") == 1:
            raise CheckpointError(
                f"Checkpoint {path} has chromexp's old format (1: a pickled state without a content hash). "
                f"Convert it with `python -m chromexp.training.checkpoint migrate {path}` (read with "
                f"weights_only=True, so no code runs; the hash then records the file as it is now), or "
                f"{retrain_hint()}."
            )
        raise CheckpointError(f"{path} is not a chromexp checkpoint (no 'chromexp_checkpoint' key); {retrain_hint()}.")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} has format {version!r}; this chromexp reads format {FORMAT_VERSION}: update "
            f"chromexp, or {retrain_hint()}."
        )
    meta, tensors, stored = raw.get("meta"), raw.get("tensors"), raw.get("sha256")
    if not isinstance(meta, str) or not isinstance(tensors, dict) or not isinstance(stored, str):
        raise CheckpointError(f"Checkpoint {path} lacks its meta, tensors or hash; {retrain_hint()}.")
    if not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise CheckpointError(f"Checkpoint {path} holds non-tensor values in its tensor table; {retrain_hint()}.")
    if content_hash(meta, tensors) != stored:
        raise CheckpointError(
            f"Checkpoint {path} does not match the content hash stored with it: its weights or metadata were "
            f"changed after it was written (edited or damaged). It is not used; {retrain_hint()}."
        )
    try:
        state = _decode(json.loads(meta), tensors)
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"Checkpoint {path} has an unreadable meta section ({err}); {retrain_hint()}.") from err
    if fingerprint is not None and state.get("fingerprint") != _encode_plain(fingerprint):
        raise CheckpointError(
            f"Checkpoint {path} belongs to a different run (model, data, seed or training parameters differ: "
            f"{state.get('fingerprint')} vs {dict(fingerprint)}); delete it or use another path."
        )
    return state


def _encode_plain(value: Any) -> Any:
    """``value`` as it reads back from a checkpoint (tuples stay tuples, NumPy scalars become Python)."""
    return _decode(json.loads(json.dumps(_encode(value, {}, "fingerprint"))), {})


def _read(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``, every failure as a :class:`CheckpointError` naming ``path``."""
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    hint = retrain_hint()
    if not zipfile.is_zipfile(path):  # every torch.save since torch 1.6 writes a zip archive
        size = path.stat().st_size
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({size} bytes, not a complete checkpoint archive: truncated, "
            f"empty or another kind of file); {hint}."
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"Checkpoint {path} holds Python objects other than tensors and plain values (a foreign or planted "
            f"file); it was not unpickled, since that could run code. {hint[0].upper()}{hint[1:]}. "
            f"(torch: {_first_line(err)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as err:
        raise CheckpointError(
            f"Checkpoint {path} cannot be read ({path.stat().st_size} bytes; truncated or damaged: "
            f"{type(err).__name__}: {_first_line(err)}); {hint}."
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        if "unsupported global" in line.lower():  # the informative line of a weights-only refusal
            return line.strip().split(" was not an allowed global")[0][:200]
    return text.splitlines()[0][:200] if text else ""


def is_finished(path: str | os.PathLike | None) -> bool:
    """Whether ``path`` is a verified checkpoint whose state says ``finished`` (``False`` if absent)."""
    if path is None or not Path(path).is_file():
        return False
    return bool(load_checkpoint(path).get("finished"))


def migrate_checkpoint(path: str | os.PathLike) -> Path:
    """Rewrite a format-1 checkpoint (chromexp's old pickled dict) in the current format, in place.

    The old file is read with ``torch.load(weights_only=True)``: one holding anything but tensors and
    plain values is refused, never unpickled. Its state (fingerprint included) is kept unchanged, so
    the run that wrote it still finds it; the content hash added records the file as it is now (it
    cannot vouch for edits made before the migration). A current-format file is left as it is.
    """
    path = Path(path)
    raw = _read(path)
    if isinstance(raw, dict) and raw.get("chromexp_checkpoint") is not None:
        load_checkpoint(path)  # verified: nothing to migrate
        return path
    if not (isinstance(raw, dict) and raw.get("version") == 1 and "fingerprint" in raw):
        raise CheckpointError(f"{path} is not a chromexp checkpoint of format 1; nothing migrated.")
    save_checkpoint(path, raw)
    log.info("migrated %s to checkpoint format %d", path, FORMAT_VERSION)
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m chromexp.training.checkpoint migrate PATH…`` (folders: every ``*.pt`` inside)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m chromexp.training.checkpoint", description=main.__doc__)
    parser.add_argument("action", choices=["migrate", "check"])
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    files = [f for p in map(Path, args.paths) for f in (sorted(p.rglob("*.pt")) if p.is_dir() else [p])]
    failed = 0
    for f in files:
        try:
            (migrate_checkpoint if args.action == "migrate" else load_checkpoint)(f)
            print(f"{args.action} ok: {f}")
        except CheckpointError as err:
            failed += 1
            print(f"{args.action} failed: {err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
