"""Small helpers shared by every module: logging, seeding, atomic writes, isolated reference environments.

Isolated virtual environments: a reference tool whose dependencies clash with chromexp's (old numpy,
another torch) lives in its own venv under the repository (``.venv-<tool>/``, gitignored) and is run
as a subprocess, never imported into chromexp's environment. :func:`ensure_venv` is the one way such
an environment is made (``python -m venv``, one ``pip install`` per step of pins, an optional
post-install step such as a checked patch, a verification run, then a stamp file recording what was
installed; a finished environment is returned at once, concurrent callers wait on a lock, a half-made
one is deleted and rebuilt). Users: :func:`chromexp.analyses.ldsc.ensure_ldsc_env` (``.venv-ldsc``)
and :func:`chromexp.experiments.claster_reference.ensure_eir_env` (``.venv-eir``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml


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


#: errno values that mean "the disk (or the user's quota) is full".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def default_file_mode() -> int:
    """Mode a plain ``open(path, "w")`` would give a new file: ``0o666`` minus the umask.

    ``tempfile.mkstemp`` creates files with mode 0600; a file renamed into place from it would stay
    private to its owner, unlike every other file the user writes (a shared project folder on a
    cluster needs the group bits the user's umask grants).
    """
    umask = None
    try:  # Linux >= 4.7: read it without changing it (os.umask is process-wide, not thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
                break
    except OSError:
        pass
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def disk_full_error(err: OSError, path: str | os.PathLike) -> OSError:
    """A clear ``OSError`` (same errno) naming ``path`` for a full disk or quota, else ``err``.

    ``str()`` of the result reads ``[Errno 28] No space left on device (disk or quota full) while
    writing: '<path>'``.
    """
    if err.errno not in DISK_FULL_ERRNOS:
        return err
    return OSError(err.errno, f"{os.strerror(err.errno)} (disk or quota full) while writing", str(path))


#: Temporary names written by :func:`atomic_path` (``.<name>.tmp-<pid>-<random>``) and by
#: ``simulate.generate`` (``.<folder>.tmp-<pid>`` / ``.<folder>.old-<pid>``).
_TEMP_NAME = re.compile(r"^\..+\.(?:tmp|old)-(\d+)(?:-[^/]*)?$")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(directory: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Remove temporary files/folders left in ``directory`` by writers that were killed.

    A temporary name carries its writer's pid; it is removed only when that process is gone, so a
    concurrent writer's file is never touched. Returns the removed paths.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return []
    removed = []
    candidates = directory.rglob(".*") if recursive else directory.glob(".*")
    for p in sorted(candidates):
        m = _TEMP_NAME.match(p.name)
        if not m or _pid_alive(int(m.group(1))):
            continue
        try:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        except FileNotFoundError:
            continue
        removed.append(p)
    if removed:
        get_logger().info("removed %d stale temporary file(s) of killed runs in %s", len(removed), directory)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    r"""Yield a temporary path next to ``path``; rename it to ``path`` only if the block succeeds.

    A reader never sees a half-written file: on error the temporary file is removed and the
    previous content of ``path`` (if any) is untouched. The file gets the mode of a normally
    created file (``0o666`` minus the umask), not ``mkstemp``'s 0600. A full disk is reported as an
    ``OSError`` naming ``path``.

    Examples
    --------
    >>> with atomic_path("results/x.tsv") as tmp:  # doctest: +SKIP
    ...     table.to_csv(tmp, sep="\t")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    except OSError as err:
        if err.errno in DISK_FULL_ERRNOS:
            raise disk_full_error(err, path) from err
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        try:
            yield tmp_path
            os.chmod(tmp_path, default_file_mode())
            os.replace(tmp_path, path)
        except OSError as err:
            if err.errno in DISK_FULL_ERRNOS:
                raise disk_full_error(err, path) from err
            raise
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when the process that started it dies (even by SIGKILL).

    On Linux the kernel sends SIGTERM at the parent's death (``PR_SET_PDEATHSIG``); elsewhere, and
    as a fallback, a daemon thread polls the parent pid. Without it a killed notebook (00's
    simulation, 40/50's concurrent training) leaves its workers running.
    """
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the prctl call
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="chromexp-parent-watch").start()


# ----------------------------------------------------------------------------------------------
# isolated virtual environments for reference tools (ldsc, eir-dl)
# ----------------------------------------------------------------------------------------------
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
            get_logger("chromexp.utils").info("removing the unfinished %s environment %s", label, env_dir)
            shutil.rmtree(env_dir)
        t0 = time.perf_counter()
        log = get_logger("chromexp.utils")
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


# YAML parameter files (chromexp.config, chromexp.cells)
# ----------------------------------------------------------------------------------------------
class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A key given twice in one YAML mapping."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects a key given twice in one mapping (YAML silently keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
                seen.setdefault(key, key_node.start_mark.line)
            except TypeError:  # an unhashable key: let the base class report it
                continue
            if first is not None:
                raise DuplicateKeyError(
                    "while reading a mapping",
                    node.start_mark,
                    f"duplicate key {key!r} on line {key_node.start_mark.line + 1} (first given on line {first + 1})",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_yaml_text(text: str | Any) -> Any:
    """Parse YAML (a string or an open file) like ``yaml.safe_load``, rejecting duplicate keys."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 — a SafeLoader subclass


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping, with a clear error for a missing file, bad YAML, a duplicate key or a non-mapping."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"Parameter file {path} does not exist.")
    try:
        with open(path) as handle:
            data = load_yaml_text(handle)
    except DuplicateKeyError as err:
        raise ValueError(f"Parameter file {path}: {err.problem}; YAML would silently keep the last one.") from err
    except yaml.YAMLError as err:
        raise ValueError(f"Parameter file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"Parameter file {path} must hold a mapping of keys to values, not {type(data).__name__}.")
    return data
