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

#: Level of detail lines (one per epoch, per external command, per file): between DEBUG and INFO.
#: On a terminal they are shown like INFO lines; in a notebook they go to the job's log only
#: (:func:`configure_logging`), so an executed notebook keeps one summary line per model.
DETAIL = 15

#: Environment variable naming the job's log file (``results/<run>/<cell>/logs/<NN_name>.log``);
#: the runner sets it for the notebook's kernel, and :func:`configure_logging` appends detail lines to it.
JOB_LOG_ENV = "CHROMEXP_JOB_LOG"

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (papermill, JupyterLab, VS Code): its ``sys.stdout`` is ipykernel's."""
    return type(sys.stdout).__module__.startswith("ipykernel")


class _NotebookFormatter(logging.Formatter):
    """``HH:MM:SS message`` for INFO lines, ``HH:MM:SS WARNING: message`` above: plain text for a reader."""

    def format(self, record: logging.LogRecord) -> str:
        self._style._fmt = (
            "%(asctime)s %(message)s" if record.levelno <= logging.INFO else "%(asctime)s %(levelname)s: %(message)s"
        )
        return super().format(record)


class _CellOutput(logging.Handler):
    """Write records to the *current* ``sys.stdout``: in a kernel, the running cell's output as plain text.

    A ``StreamHandler`` keeps the stream it was made with and writes to stderr, which Jupyter and
    papermill render as a red error box; ipykernel replaces ``sys.stdout`` per cell, hence the lookup.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
        except Exception:  # noqa: BLE001 — logging must never break the notebook
            self.handleError(record)


def configure_logging(job_log: str | os.PathLike | None = None, console_level: int | None = None) -> Path | None:
    """Route chromexp's log lines: summaries where the user looks, details into the job's log.

    * In a notebook kernel (:func:`in_notebook`): INFO and above go to the cell's output as plain
      text (stdout, not an error box); :data:`DETAIL` lines (per epoch, per command) do not.
    * Elsewhere (a terminal, a script, a worker process): everything from :data:`DETAIL` up goes to
      stderr, as ``HH:MM:SS level name: message``.
    * If ``job_log`` is given, or in a notebook kernel the environment variable :data:`JOB_LOG_ENV`
      names a file (the runner sets it for each job's kernel), every line from :data:`DETAIL` up is
      appended to that file. (Outside a kernel the runner's own process already writes its stderr
      to the job's log: a file handler there would write each line twice.)

    Idempotent: calling it again replaces the handlers it added before (other handlers are kept).
    Called on first use by :func:`get_logger` and by :func:`chromexp.runs.start`.

    Parameters
    ----------
    job_log : path, optional
        File to append detail lines to; default: ``$CHROMEXP_JOB_LOG`` in a notebook kernel, else none.
    console_level : int, optional
        Lowest level shown on the console (``logging.WARNING`` for a worker whose console is a
        notebook's); default: INFO in a notebook, :data:`DETAIL` elsewhere.

    Returns
    -------
    Path or None
        The file detail lines are appended to.
    """
    logging.addLevelName(DETAIL, "DETAIL")
    root = logging.getLogger("chromexp")
    for handler in [h for h in root.handlers if getattr(h, "_chromexp", False)]:
        root.removeHandler(handler)
        handler.close()
    notebook = in_notebook()
    console: logging.Handler = _CellOutput() if notebook else logging.StreamHandler()
    console.setFormatter(_NotebookFormatter(datefmt="%H:%M:%S") if notebook else logging.Formatter(_FORMAT, "%H:%M:%S"))
    console.setLevel(console_level if console_level is not None else (logging.INFO if notebook else DETAIL))
    handlers = [console]
    if job_log is None and notebook:
        job_log = os.environ.get(JOB_LOG_ENV) or None
    log_path = None
    if job_log is not None:
        log_path = Path(job_log)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(log_path, mode="a", delay=True)  # O_APPEND: safe beside the runner's lines
        to_file.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        to_file.setLevel(DETAIL)
        handlers.append(to_file)
    for handler in handlers:
        handler._chromexp = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > DETAIL:
        root.setLevel(DETAIL)
    root.propagate = False
    return log_path


def get_logger(name: str = "chromexp") -> logging.Logger:
    """Return the logger ``name`` (under ``chromexp``); the first call sets up :func:`configure_logging`."""
    logger = logging.getLogger(name)
    root = logging.getLogger("chromexp")
    if not any(getattr(h, "_chromexp", False) for h in root.handlers):
        configure_logging()
    return logger


def progress_bar(
    iterable: Any = None,
    *,
    total: int | None = None,
    desc: str | None = None,
    unit: str = "it",
    enabled: bool = True,
    leave: bool = False,
    **tqdm_options: Any,
):
    """A tqdm text bar on a terminal; a disabled one in a notebook kernel or when ``enabled`` is false.

    In a notebook every redraw of a text bar is kept in the saved ``.ipynb`` (carriage-return frames
    in a stderr box); there, progress is the one summary line per model or step that the code logs
    (details in the job's log, :func:`configure_logging`). Use this instead of ``tqdm`` directly.
    """
    from tqdm import tqdm  # the text bar: tqdm.auto needs ipywidgets in notebooks, which we do not require

    disable = not enabled or in_notebook()
    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, disable=disable, **tqdm_options)


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


#: File that marks a folder chromexp created (and may therefore delete and rebuild): an isolated
#: environment, a generated dataset, a simulated GWAS panel. Written when the folder is created.
OWNER_MARKER = ".chromexp-owned"


class FolderNotOwnedError(ValueError):
    """A folder chromexp would replace holds files it did not create (no :data:`OWNER_MARKER`)."""


def claim_folder(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` (or take an empty one) as a folder chromexp owns: write :data:`OWNER_MARKER` in it.

    Raises :class:`FolderNotOwnedError` for an existing folder that holds anything and is not owned
    already (see :func:`owns_folder`): its content is the user's, not ours to fill or replace.
    """
    folder = Path(folder)
    if folder.exists() and not owns_folder(folder):
        _refuse_if_not_empty(folder, what)
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / OWNER_MARKER
    if not marker.exists():
        marker.write_text(f"created by chromexp: {what}\ndeleting this folder is safe; chromexp rebuilds it\n")
    return folder


def owns_folder(folder: str | os.PathLike, legacy_markers: tuple[str, ...] = ()) -> bool:
    """Whether chromexp created ``folder``: it holds :data:`OWNER_MARKER` or one of ``legacy_markers``.

    Legacy markers are files that the project writes only into folders it created (a generator's
    ``manifest.json``, the stamp of an environment made before the marker existed).
    """
    folder = Path(folder)
    return (
        folder.is_dir()
        and not folder.is_symlink()
        and any((folder / name).is_file() for name in (OWNER_MARKER, *legacy_markers))
    )


def _refuse_if_not_empty(folder: Path, what: str) -> None:
    if folder.is_symlink() or not folder.is_dir():
        raise FolderNotOwnedError(
            f"{folder} ({what}) exists and is not a plain folder chromexp created; it is left as it is. "
            "Choose a new or empty folder."
        )
    if any(folder.iterdir()):
        raise FolderNotOwnedError(
            f"{folder} ({what}) already exists and holds files chromexp did not create (it has no {OWNER_MARKER} "
            f"file); chromexp never deletes such a folder. Choose a new or empty folder, or move or delete "
            f"{folder} yourself."
        )


def remove_owned_folder(folder: str | os.PathLike, what: str, legacy_markers: tuple[str, ...] = ()) -> None:
    """Delete ``folder`` only if chromexp created it (:func:`owns_folder`) or it is empty; else raise.

    The one way the project removes a user-visible folder it rebuilds (an isolated environment, a
    generated dataset, a simulated panel): a folder the user pointed chromexp at that holds their
    files is never deleted (:class:`FolderNotOwnedError`, naming the folder).
    """
    folder = Path(folder)
    if not folder.exists() and not folder.is_symlink():
        return
    check_removable(folder, what, legacy_markers)
    shutil.rmtree(folder)


def check_removable(folder: str | os.PathLike, what: str, legacy_markers: tuple[str, ...] = ()) -> None:
    """Raise :class:`FolderNotOwnedError` unless ``folder`` is absent, empty or created by chromexp.

    Call it before long work whose result replaces ``folder``, so the refusal comes first.
    """
    folder = Path(folder)
    if (folder.exists() or folder.is_symlink()) and not owns_folder(folder, legacy_markers):
        _refuse_if_not_empty(folder, what)


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


class LockHeld(BlockingIOError):
    """:func:`exclusive_lock` with ``blocking=False``: another process holds the lock.

    ``holder`` is the note the holder wrote into the lock file (e.g. its pid), or ``""``.
    """

    def __init__(self, path: Path, holder: str):
        super().__init__(errno.EWOULDBLOCK, f"{path} is locked by {holder or 'another process'}")
        self.path, self.holder = path, holder


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, *, blocking: bool = True, note: str | None = None) -> Iterator[Path]:
    """Hold an exclusive ``flock`` on the file ``path`` for the block, and remove the file afterwards.

    The protocol that makes removing a lock file safe: open (creating) ``path``, ``flock`` it, then
    check that the file now at ``path`` is the one locked (same device and inode) — a previous
    holder may have removed it between our open and our lock, in which case we start again. The
    holder removes the file *while still holding the lock*. So at any moment at most one process
    holds a lock on the file linked at ``path``, waiters never end up holding a lock on a removed
    file, and no lock file is left after use. The operating system releases the lock if the holder
    dies; the file a killed holder leaves is taken over, and removed, by the next user.

    Parameters
    ----------
    path : path
        The lock file (e.g. a hidden ``.<table>.lock`` beside the table it protects).
    blocking : bool
        Wait for the lock; if false, raise :class:`LockHeld` at once when another process holds it.
    note : str, optional
        Written into the lock file while held (e.g. ``"pid 123 on host, started …"``), for the
        :class:`LockHeld` message another process gets.

    Yields
    ------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, default_file_mode())
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
                raise LockHeld(path, holder) from None
            try:
                linked = os.stat(path)
            except FileNotFoundError:
                linked = None
            mine = os.fstat(fd)
            if linked is None or (linked.st_dev, linked.st_ino) != (mine.st_dev, mine.st_ino):
                os.close(fd)  # we locked a file its previous holder removed: take the one at `path` now
                continue
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        break
    try:
        if note is not None:
            os.ftruncate(fd, 0)
            os.pwrite(fd, note.encode(), 0)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # still holding the lock: nobody can hold a lock on this file meanwhile
        os.close(fd)  # releases the lock


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
    where: str = "",
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
    where : str, optional
        How the user chose ``env_dir`` (e.g. ``"ldsc.env_dir or $CHROMEXP_LDSC_ENV"``), named in the
        error when ``env_dir`` is an existing folder that holds files chromexp did not create: such a
        folder is never deleted (:func:`remove_owned_folder`); the builder writes
        :data:`OWNER_MARKER` into every environment it creates, and only those are rebuilt.

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
        if env_dir.exists() or env_dir.is_symlink():
            # only a folder this builder made (its marker, or the stamp of a chromexp before the marker)
            # is removed and rebuilt; a folder the user named that holds their files is refused
            if owns_folder(env_dir, (stamp_file.name,)):
                get_logger("chromexp.utils").info("removing the unfinished %s environment %s", label, env_dir)
            remove_owned_folder(env_dir, f"the {label} environment{f' ({where})' if where else ''}", (stamp_file.name,))
        claim_folder(env_dir, f"the isolated {label} environment")
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


class AliasError(yaml.composer.ComposerError):
    """A YAML alias (``*name``) in a parameter file: refused (an alias bomb expands to gigabytes)."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that rejects duplicate keys and every alias.

    A key given twice in one mapping is refused (YAML silently keeps the last), and so is every alias
    (``*name``, also inside ``<<: *name``): a few lines of nested aliases (the "billion laughs")
    expand to more objects than memory holds once the parameters are merged or printed.
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise AliasError(
                None,
                None,
                f"YAML aliases (*{event.anchor}) are not allowed in parameter files; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)

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
    except AliasError as err:
        raise ValueError(f"Parameter file {path}: {err.problem}{err.problem_mark}.") from None
    except yaml.YAMLError as err:
        raise ValueError(f"Parameter file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"Parameter file {path} must hold a mapping of keys to values, not {type(data).__name__}.")
    return data


def file_sha256(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """SHA-256 (hex) of a file's bytes, read in chunks: the one file hash of the project."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()
