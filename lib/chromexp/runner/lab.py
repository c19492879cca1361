"""JupyterLab on the project's notebooks and kernel (``make lab``, ``python -m chromexp.runner.lab``).

The notebooks' source of truth is ``notebooks/NN_name.py`` (jupytext percent), paired with
``NN_name.ipynb``. JupyterLab runs with jupytext's server extension (installed with ``jupytext``;
``jupyterlab_jupytext`` in ``jupyter server extension list``), so a ``.py`` opens as a notebook
and saving writes both files of the pair. The ``python3`` kernel the notebooks declare is this
interpreter (the one with ``chromexp`` installed), the same kernel ``chromexp run``/``batch`` use.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import paths
from . import notebooks


def lab_env(base: dict | None = None) -> dict[str, str]:
    """Environment for JupyterLab: the project's ``python3`` kernelspec first on ``JUPYTER_PATH``."""
    env = dict(os.environ if base is None else base)
    env["JUPYTER_PATH"] = os.pathsep.join([notebooks._kernel_path(), *filter(None, [env.get("JUPYTER_PATH")])])
    return env


def lab_argv(
    port: int | None = None, headless: bool = False, token: str | None = None, extra: Sequence[str] = ()
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
    """
    argv = [
        sys.executable,
        "-m",
        "jupyterlab",
        f"--ServerApp.root_dir={paths.repo_root()}",
        "--LabApp.default_url=/lab/tree/notebooks",
    ]
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
    print("starting:", " ".join(cmd), flush=True)
    os.execve(sys.executable, cmd, lab_env())
    return 0  # not reached


if __name__ == "__main__":
    raise SystemExit(main())
