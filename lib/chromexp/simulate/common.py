"""Helpers the simulators share: seeded generators keyed by names, byte-stable tables and gzip, the version switch.

:mod:`chromexp.simulate.roadmap` (the mini-Roadmap) and :mod:`chromexp.simulate.eqtl` (the planted
eQTLs) draw every random number from :func:`seeded_rng` (a generator that depends only on the seed
and the names of what is drawn) and write every table with :func:`table_bytes` and
:func:`gzip_bytes`, so the generated files are byte-identical on every run and platform.
:func:`simulator_version` and :func:`has_feature` read the ``data.simulator_version`` switch: which
generative features (:data:`chromexp.constants.SIMULATOR_VERSIONS`) a dataset has.
"""

from __future__ import annotations

import gzip
import io
import zlib
from typing import Any

import numpy as np
import pandas as pd


def stable_key(*parts: Any) -> int:
    """A stable 32-bit integer for a tuple of names (Python's ``hash`` is salted per process)."""
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def seeded_rng(seed: int, *parts: Any) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the names in ``parts`` (order matters)."""
    return np.random.default_rng([int(seed), *(stable_key(p) for p in parts)])


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Gzip ``data`` reproducibly: no file name and ``mtime=0`` in the header (byte-identical output)."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=level, mtime=0) as fh:
        fh.write(data)
    return buf.getvalue()


def table_bytes(df: pd.DataFrame) -> bytes:
    r"""A TSV with header, fixed float format, '\n' line ends: the same bytes on every platform."""
    # 10 significant digits: the real RPKM (3 decimals, < 1e6) round-trips exactly
    return df.to_csv(sep="\t", index=False, float_format="%.10g", lineterminator="\n").encode()


def simulator_version(params: Any) -> int:
    """``data.simulator_version`` of merged parameters (or an int), checked against the known versions.

    Parameters
    ----------
    params : mapping or int
        Merged parameters (``params["data"]["simulator_version"]``) or a version number.

    Raises
    ------
    ValueError
        A version that :data:`chromexp.constants.SIMULATOR_VERSIONS` does not define.
    """
    from ..constants import SIMULATOR_VERSIONS

    version = params if isinstance(params, int) else params["data"]["simulator_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version not in SIMULATOR_VERSIONS:
        raise ValueError(
            f"data.simulator_version = {version!r} is not a simulator version; known: {sorted(SIMULATOR_VERSIONS)}."
        )
    return version


def has_feature(params: Any, feature: str) -> bool:
    """Whether the simulator version of ``params`` (mapping or int) generates ``feature`` (e.g. ``"decoys"``)."""
    from ..constants import SIMULATOR_FEATURES, SIMULATOR_VERSIONS

    if feature not in SIMULATOR_FEATURES:
        raise ValueError(f"Unknown simulator feature {feature!r}; known: {sorted(SIMULATOR_FEATURES)}.")
    return feature in SIMULATOR_VERSIONS[simulator_version(params)]
