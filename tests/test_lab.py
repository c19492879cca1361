"""`make lab`: JupyterLab starts on the project's notebooks with jupytext's pairing (issue 18), and in a
real browser the ``.py`` source opens as a notebook, unmodified, and saves without churn (issue 28)."""

from __future__ import annotations

import difflib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chromexp import paths
from chromexp.runner import lab, notebooks

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, json.loads(r.read().decode())


def test_jupyterlab_starts_headless_and_lists_the_paired_notebooks_as_notebooks(tmp_path):
    pytest.importorskip("jupyterlab")
    port, token = _free_port(), "chromexp-test"
    env = lab.lab_env()
    env.update(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), JUPYTER_CONFIG_DIR=str(tmp_path / "config"))
    proc = subprocess.Popen(
        lab.lab_argv(port=port, headless=True, token=token),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, info = _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read() if proc.poll() is not None else "(still running)"
                    pytest.fail(f"JupyterLab did not answer on port {port}:\n{out[-3000:]}")
                time.sleep(0.5)
        assert status == 200 and "started" in info
        status, listing = _get(f"{base}/api/contents/notebooks?token={token}")
        entries = {e["name"]: e["type"] for e in listing["content"]}
        # jupytext's contents manager: the .py source is listed as a notebook, next to its pair
        assert entries.get("90_figures.py") == "notebook", entries
        assert entries.get("90_figures.ipynb") == "notebook"
        status, model = _get(f"{base}/api/contents/notebooks/90_figures.py?token={token}")
        assert model["type"] == "notebook" and model["content"]["metadata"]["kernelspec"]["name"] == "python3"
        assert any("parameters" in c["metadata"].get("tags", []) for c in model["content"]["cells"])
        status, kernels = _get(f"{base}/api/kernelspecs?token={token}")
        assert "python3" in kernels["kernelspecs"]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_lab_settings_override_is_merged_into_the_environment_not_replaced(tmp_path):
    settings = lab.settings_dir(tmp_path)
    settings.mkdir(parents=True)
    theirs = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    (settings / "overrides.json").write_text(json.dumps(theirs))
    path = lab.install_settings(tmp_path)
    data = json.loads(path.read_text())
    assert data["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    assert data["@jupyterlab/apputils-extension:themes"] == theirs["@jupyterlab/apputils-extension:themes"]
    mtime = path.stat().st_mtime_ns
    lab.install_settings(tmp_path)  # unchanged: not rewritten
    assert path.stat().st_mtime_ns == mtime
    (settings / "overrides.json").write_text("{not json")
    with pytest.raises(ValueError, match="overrides.json is not valid JSON"):
        lab.install_settings(tmp_path)


def test_lab_serves_the_repository_by_default():
    argv = lab.lab_argv(port=1, headless=True)
    assert f"--ServerApp.root_dir={paths.repo_root()}" in argv and "--LabApp.default_url=/lab/tree/notebooks" in argv


def _start_lab(tmp_path: Path, root: Path, port: int, token: str) -> subprocess.Popen:
    """``python -m chromexp.runner.lab`` (what ``make lab`` runs) serving ``root``, isolated from the user's Jupyter state."""
    env = dict(
        os.environ,
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "user-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "workspaces"),
    )
    args = [
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]
    log = open(tmp_path / "lab.log", "w")
    return subprocess.Popen(
        [sys.executable, "-m", "chromexp.runner.lab", *args], env=env, stdout=log, stderr=subprocess.STDOUT
    )


#: What the test reads off the page: the open document's tab, the widget in the main area, its cells.
PAGE_STATE = """(() => {
  const current = document.querySelector('#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current');
  const panel = document.querySelector('#jp-main-dock-panel .jp-NotebookPanel:not(.lm-mod-hidden)');
  const status = panel && panel.querySelector('.jp-Notebook-ExecutionIndicator');
  return {
    tab: current ? current.querySelector('.lm-TabBar-tabLabel').textContent : null,
    dirty: current ? current.classList.contains('jp-mod-dirty') : null,
    notebook_panels: document.querySelectorAll('#jp-main-dock-panel .jp-NotebookPanel').length,
    file_editors: document.querySelectorAll('#jp-main-dock-panel .jp-FileEditor').length,
    code_cells: panel ? panel.querySelectorAll('.jp-CodeCell').length : 0,
    markdown_cells: panel ? panel.querySelectorAll('.jp-MarkdownCell').length : 0,
    first_heading: panel && panel.querySelector('.jp-MarkdownCell h1') ? panel.querySelector('.jp-MarkdownCell h1').textContent : null,
    kernel: status ? status.getAttribute('data-status') : null,
    kernel_name: document.querySelector('.jp-KernelName, .jp-Toolbar-kernelName') ?
        document.querySelector('.jp-KernelName, .jp-Toolbar-kernelName').textContent : null,
  };
})()"""


@pytest.mark.notebook
def test_py_source_opens_as_a_notebook_in_headless_chromium_unmodified_and_saves_without_churn(tmp_path):
    """A real browser on ``make lab``: notebook 30's ``.py`` is a notebook panel (DOM), not a text editor;
    opening leaves it unmodified once the kernel is idle; Ctrl+S rewrites the ``.py`` byte for byte.

    Served from a copy of the notebook pair, so the save cannot touch the repository. A screenshot of the opened notebook is written to the test's temporary folder.
    """
    pytest.importorskip("jupyterlab")
    import browser

    if browser.chromium_binary() is None:
        pytest.skip("chromium is not installed (apt-get install chromium; make setup installs it as root)")
    root = tmp_path / "root"
    (root / "notebooks").mkdir(parents=True)
    for name in ("30_promoter_model.py", "30_promoter_model.ipynb"):
        shutil.copy2(REPO / "notebooks" / name, root / "notebooks" / name)
    source = (root / "notebooks" / "30_promoter_model.py").read_bytes()
    paired = (root / "notebooks" / "30_promoter_model.ipynb").read_bytes()
    port, token = _free_port(), "chromexp-browser-test"
    proc = _start_lab(tmp_path, root, port, token)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"JupyterLab did not answer on port {port}:\n{(tmp_path / 'lab.log').read_text()[-3000:]}"
                    )
                time.sleep(0.5)
        with browser.Browser(tmp_path) as page:
            page.goto(f"{base}/lab/tree/notebooks/30_promoter_model.py?token={token}")
            state = page.wait_for(
                f"(() => {{ const s = {PAGE_STATE}; return s.code_cells > 0 && s.first_heading ? s : null; }})()", 150
            )
            if state is None:
                page.screenshot(tmp_path / "lab_failed.png")
                pytest.fail(f"no notebook panel with cells after 150 s: {page.evaluate(PAGE_STATE)}")
            assert state["tab"] == "30_promoter_model.py", state
            assert state["notebook_panels"] >= 1 and state["file_editors"] == 0, state
            assert state["first_heading"] and "Promoter model" in state["first_heading"], state
            # opening must not modify it: wait for the kernel, then the tab must not be dirty
            idle = page.wait_for(f"(() => {{ const s = {PAGE_STATE}; return s.kernel === 'idle' ? s : null; }})()", 120)
            assert idle is not None, f"the kernel never became idle: {page.evaluate(PAGE_STATE)}"
            time.sleep(2.0)  # metadata updates arrive right after the kernel's first status
            state = page.evaluate(PAGE_STATE)
            shot = page.screenshot(tmp_path / "lab_30_promoter_model.png")
            assert shot.stat().st_size > 10_000
            assert state["dirty"] is False, f"opening marked the notebook modified: {state}"
            # saving from Lab (Ctrl+S) must leave the reviewed .py byte-identical
            py = root / "notebooks" / "30_promoter_model.py"
            before = py.stat().st_mtime_ns
            page.evaluate("document.querySelector('#jp-main-dock-panel .jp-NotebookPanel .jp-Notebook').focus()")
            page.press("s", "KeyS", 83, modifiers=2)
            deadline = time.monotonic() + 30
            while py.stat().st_mtime_ns == before and time.monotonic() < deadline:
                time.sleep(0.3)
            assert py.stat().st_mtime_ns != before, "Ctrl+S did not save the notebook"
            after = py.read_bytes()
            assert after == source, "saving from JupyterLab changed the .py:\n" + "".join(
                difflib.unified_diff(
                    source.decode().splitlines(True), after.decode().splitlines(True), "committed", "saved"
                )
            )
            assert notebooks.KERNEL_DISPLAY_NAME in after.decode()
            # the paired .ipynb too (no language_info block: chromexp.runner.lab.LabContentsManager)
            assert (root / "notebooks" / "30_promoter_model.ipynb").read_bytes() == paired
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
