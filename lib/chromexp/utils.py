"""Small helpers shared by every module: logging, seeding, atomic writes."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def get_logger(name: str = "chromexp") -> logging.Logger:
    """Return a logger that prints ``HH:MM:SS level name: message`` once per process."""
    logger = logging.getLogger(name)
    root = logging.getLogger("chromexp")
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        root.propagate = False
    return logger


def seed_everything(seed: int) -> np.random.Generator:
    """Seed Python, NumPy and (if installed) torch; return a NumPy ``Generator`` for ``seed``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 — legacy global state some libraries still draw from
    try:
        import torch
    except ImportError:  # torch is a core dependency, but keep this module importable without it
        pass
    else:
        torch.manual_seed(seed)
    return np.random.default_rng(seed)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    A reader never sees a half-written file: on error the temporary file is removed and the
    previous content of ``path`` (if any) is untouched.

    Examples
    --------
    >>> with atomic_path("results/x.tsv") as tmp:  # doctest: +SKIP
    ...     table.to_csv(tmp, sep="\\t")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()
