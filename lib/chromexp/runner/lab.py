"""JupyterLab on the project's notebooks and kernel (``make lab``, ``python -m chromexp.runner.lab``).

The notebooks' source of truth is ``notebooks/NN_name.py`` (jupytext percent), paired with
``NN_name.ipynb``. JupyterLab runs with jupytext's server extension (installed with ``jupytext``;
``jupyterlab_jupytext`` in ``jupyter server extension list``) and its Lab extension, so saving
writes both files of the pair. What makes a reader's first click work:

* **``NN_name.py`` opens as a notebook.** JupyterLab's default viewer of a ``.py`` file is the
  text editor; :func:`install_settings` writes the ``defaultViewers`` override
  (``"python": "Jupytext Notebook"``, jupytext's documented setting) into *this environment's*
  ``share/jupyter/lab/settings/overrides.json`` (never into the user's own settings). Any ``.py``
  then opens as a notebook on a double click; right-click → *Open With* → *Editor* for plain code.
* **Opening does not modify it, saving does not churn its header.** The ``python3`` kernel the
  notebooks declare is this interpreter (the one with ``chromexp`` installed, the same kernel
  ``chromexp run``/``batch`` use), and its display name is the one in every notebook header
  (:data:`chromexp.notebooks.KERNEL_DISPLAY_NAME`), so starting it changes no kernelspec. JupyterLab
  also writes the kernel's ``language_info`` (with the Python patch version) into the notebook when
  the kernel starts, which marks it modified; the committed notebooks carry none (it differs per
  machine), so :data:`LabContentsManager` — jupytext's contents manager plus one rule — serves a
  ``python3`` notebook with this interpreter's ``language_info`` and drops exactly that block again
  on save. Each header's ``notebook_metadata_filter`` (:data:`chromexp.notebooks.HEADER_METADATA_FILTER`)
  keeps jupytext from adding its version lines. (A ``jupytext.toml`` with that filter would not do:
  jupytext copies a configured filter into the header on save.)
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import paths
from . import notebooks

#: JupyterLab settings this environment overrides (``overrides.json``): ``.py`` opens with jupytext's
#: notebook factory ("Jupytext Notebook", registered by jupytext's Lab extension).
#: The news/update check is off: it asks the internet on every start and its pop-up covers the notebook.
LAB_SETTINGS: dict[str, dict] = {
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


#: This module's importable name (``__name__`` is ``__main__`` under ``python -m chromexp.runner.lab``).
_MODULE = __spec__.name if __spec__ is not None else __name__


def kernel_language_info() -> dict:
    """The ``language_info`` the project kernel (ipykernel on this interpreter) reports when it starts."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def _contents_manager_class():
    """Jupytext's async contents manager with the ``language_info`` rule (see the module docstring)."""
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    base = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)
    info = kernel_language_info()

    class LabContentsManager(base):
        """Serve ``python3`` notebooks with the kernel's ``language_info``; drop that same block on save."""

        async def get(self, path, content=True, type=None, format=None, **kwargs):
            model = await super().get(path, content=content, type=type, format=format, **kwargs)
            if content and model.get("type") == "notebook" and model.get("content") is not None:
                meta = model["content"]["metadata"]
                if meta.get("kernelspec", {}).get("name") == "python3" and "language_info" not in meta:
                    meta["language_info"] = dict(info)
            return model

        async def save(self, model, path=""):
            if model.get("type") == "notebook" and isinstance(model.get("content"), dict):
                meta = model["content"].get("metadata", {})
                if meta.get("language_info") == info:
                    meta.pop("language_info")
            return await super().save(model, path)

    LabContentsManager.__module__ = _MODULE
    return LabContentsManager


def __getattr__(name: str):
    # built on first use (JupyterLab's ``--ServerApp.contents_manager_class=chromexp.runner.lab.LabContentsManager``):
    # importing jupyter_server at import time would slow every ``import chromexp``
    if name == "LabContentsManager":
        cls = _contents_manager_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def settings_dir(prefix: str | os.PathLike | None = None) -> Path:
    """JupyterLab's application settings folder of an environment (``<prefix>/share/jupyter/lab/settings``)."""
    return Path(sys.prefix if prefix is None else prefix) / "share" / "jupyter" / "lab" / "settings"


def _merge(base: Mapping, update: Mapping) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
        )
    return out


def install_settings(prefix: str | os.PathLike | None = None) -> Path:
    """Merge :data:`LAB_SETTINGS` into the environment's ``overrides.json``; return its path.

    Keys already there are kept (only ours are set), the file is rewritten atomically and only when
    it changes. A malformed existing file is an error naming it, never silently replaced.
    """
    from ..utils import atomic_path

    path = settings_dir(prefix) / "overrides.json"
    current: dict = {}
    if path.is_file():
        try:
            current = json.loads(path.read_text() or "{}")
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); fix or delete it, then rerun make lab.") from err
    merged = _merge(current, LAB_SETTINGS)
    if merged != current or not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps(merged, indent=2) + "\n")
    return path


def lab_env(base: dict | None = None) -> dict[str, str]:
    """Environment for JupyterLab: the project's ``python3`` kernelspec first on ``JUPYTER_PATH``."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PATH"] = os.pathsep.join([notebooks._kernel_path(), *filter(None, [env.get("JUPYTER_PATH")])])
    return env


def lab_argv(
    port: int | None = None,
    headless: bool = False,
    token: str | None = None,
    extra: Sequence[str] = (),
    root: str | os.PathLike | None = None,
) -> list[str]:
    """Command line starting JupyterLab at the repository root, opening ``notebooks/``.

    Parameters
    ----------
    port : int, optional
        Fixed port (no retries on another one); default: JupyterLab's choice (8888 or the next free).
    headless : bool
        Do not open a browser (tests, remote machines).
    token : str, optional
        Authentication token; default: JupyterLab generates one and prints the URL.
    extra : sequence of str
        Further JupyterLab arguments, passed verbatim.
    root : path, optional
        Folder JupyterLab serves (default: the repository root; tests use a copy).
    """
    argv = [sys.executable, "-m", "jupyterlab"]
    if not any(str(a).startswith("--ServerApp.root_dir=") for a in extra):  # one given in ``extra`` wins
        argv.append(f"--ServerApp.root_dir={paths.repo_root() if root is None else Path(root)}")
    argv.append("--LabApp.default_url=/lab/tree/notebooks")
    argv.append(f"--ServerApp.contents_manager_class={_MODULE}.LabContentsManager")
    if port is not None:
        argv += ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={int(port)}", "--ServerApp.port_retries=0"]
    if headless:
        argv += ["--no-browser"]
    if token is not None:
        argv += [f"--IdentityProvider.token={token}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv += ["--allow-root"]  # containers and CI often run as root; JupyterLab refuses without it
    return argv + list(extra)


def main(argv: Sequence[str] | None = None) -> int:
    """Start JupyterLab in the foreground (Ctrl-C stops it); extra arguments go to JupyterLab."""
    cmd = lab_argv(extra=list(sys.argv[1:] if argv is None else argv))
    overrides = install_settings()
    print(f"JupyterLab settings: .py files open as notebooks (defaultViewers in {overrides})", flush=True)
    print("starting:", " ".join(cmd), flush=True)
    os.execve(sys.executable, cmd, lab_env())
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
