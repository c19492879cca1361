"""`make lab`: JupyterLab starts on the project's notebooks with jupytext's pairing (issue 18)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request

import pytest

from chromexp.runner import lab


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
