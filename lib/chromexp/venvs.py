"""Isolated virtual environments for reference tools that need pins of their own (ldsc, eir-dl).

A reference tool whose dependencies clash with chromexp's (old numpy, another torch) lives in its
own venv under the repository (``.venv-<tool>/``, gitignored) and is run as a subprocess; it is
never imported into chromexp's environment. :func:`ensure_venv` is the one way such an environment
is made: ``python -m venv``, one ``pip install`` per step of pins, an optional post-install step
(e.g. a checked patch), a verification run, then a stamp file recording what was installed. A
finished environment (stamp equal to the requested content) is returned at once; concurrent
callers wait on a lock; a half-made environment is deleted and rebuilt.

Users: :func:`chromexp.ldsc.ensure_ldsc_env` (``.venv-ldsc``) and
:func:`chromexp.experiments.claster_reference.ensure_eir_env` (``.venv-eir``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from .utils import get_logger

log = get_logger("chromexp.venvs")


class VenvError(RuntimeError):
    """An isolated environment could not be created or verified; the message says what to do."""


def venv_python(env_dir: str | os.PathLike) -> Path:
    """The interpreter of the virtual environment ``env_dir``."""
    return Path(env_dir) / "bin" / "python"


def clean_env(**extra: str) -> dict[str, str]:
    """``os.environ`` without ``PYTHONPATH``/``PYTHONHOME`` (they would leak chromexp's packages), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the duration of the block (released if the holder dies)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _lock_path(env_dir: Path, label: str) -> Path:
    # in the temp folder, not next to the environment: that would dirty the git tree
    digest = hashlib.sha256(str(env_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"chromexp-{label}-{digest}.lock"


def stamp_matches(env_dir: str | os.PathLike, label: str, content: Mapping) -> bool:
    """Whether ``env_dir`` is a finished environment made for ``content`` (its stamp file says so)."""
    env_dir = Path(env_dir)
    try:
        stamp = json.loads((env_dir / f".chromexp-{label}.json").read_text())
    except (OSError, ValueError):
        return False
    return stamp == json.loads(json.dumps(dict(content))) and venv_python(env_dir).exists()


def ensure_venv(
    env_dir: str | os.PathLike,
    *,
    label: str,
    install_steps: Sequence[Sequence[str]],
    stamp: Mapping,
    post_install: Callable[[Path], None] | None = None,
    verify: Callable[[Path], str] | None = None,
    python: str | None = None,
    error: type[Exception] = VenvError,
    how_to_fix: str = "",
    stamp_name: str | None = None,
) -> Path:
    """Return the finished isolated environment ``env_dir``, creating and verifying it on first use.

    Parameters
    ----------
    env_dir : path
        The environment's folder (e.g. ``<repo>/.venv-ldsc``).
    label : str
        Short name used in log lines, the lock file and the stamp file ``.chromexp-<label>.json``.
    install_steps : sequence of argument lists
        Each is passed to one ``pip install --quiet --disable-pip-version-check …`` (e.g. a
        ``--no-deps`` step for a package whose declared pins cannot be met, then its real imports).
    stamp : mapping
        JSON-serialisable description of what is installed (versions, pins, patch checksum): an
        environment whose stamp differs is rebuilt.
    post_install : callable, optional
        ``post_install(env_dir)`` after the pip steps (e.g. apply and check a patch).
    verify : callable, optional
        ``verify(env_dir)`` → a one-line summary logged on success; raise to fail.
    python : str, optional
        Interpreter that creates the venv; default the running one.
    error : exception class
        Raised (with ``how_to_fix`` appended) when any step fails.
    how_to_fix : str
        Instructions for the user, appended to the error message after "How to fix:".
    stamp_name : str, optional
        File name of the stamp (default ``.chromexp-<label>.json``).

    Returns
    -------
    pathlib.Path
        ``env_dir`` (resolved).
    """
    env_dir = Path(env_dir).expanduser().resolve()
    stamp_file = env_dir / (stamp_name or f".chromexp-{label}.json")
    content = json.loads(json.dumps(dict(stamp)))
    with file_lock(_lock_path(env_dir, label)):
        try:
            if json.loads(stamp_file.read_text()) == content and venv_python(env_dir).exists():
                return env_dir
        except (OSError, ValueError):
            pass
        if env_dir.exists():
            log.info("removing the unfinished %s environment %s", label, env_dir)
            shutil.rmtree(env_dir)
        t0 = time.perf_counter()
        log.info("creating the isolated %s environment in %s", label, env_dir)
        try:
            subprocess.run([python or sys.executable, "-m", "venv", str(env_dir)], check=True, capture_output=True)
            for step in install_steps:
                cmd = [str(venv_python(env_dir)), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
                proc = subprocess.run([*cmd, *step], capture_output=True, text=True, env=clean_env())
                if proc.returncode != 0:
                    raise error(f"pip install {' '.join(step)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
            if post_install is not None:
                post_install(env_dir)
            summary = verify(env_dir) if verify is not None else ""
        except (error, VenvError, subprocess.CalledProcessError, OSError) as err:
            raise error(
                f"Could not create the {label} environment in {env_dir}: {err}\nHow to fix: {how_to_fix}".rstrip()
            ) from err
        stamp_file.write_text(json.dumps(content, indent=1) + "\n")
        log.info(
            "%s environment ready in %.0f s%s", label, time.perf_counter() - t0, f" ({summary})" if summary else ""
        )
    return env_dir
