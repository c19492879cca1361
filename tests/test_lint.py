"""Lint gates that ``make lint`` also runs: ruff check (numpy docstrings on lib/) and ruff format."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> list[str]:
    exe = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(exe).exists():
        pytest.skip("ruff is not installed (pip install chromexp[test])")
    return [exe]


def test_ruff_check_is_clean():
    out = subprocess.run(
        [*_ruff(), "check", "lib", "tests", "notebooks", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-4000:]


def test_ruff_format_is_clean():
    out = subprocess.run(
        [*_ruff(), "format", "--check", "lib", "tests", "notebooks", "bench"], cwd=ROOT, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout[-4000:]
