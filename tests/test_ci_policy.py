"""In CI (CI=true) a test skipped for a missing bedtools / MACS2 / chromoformer / chromium fails instead."""

from pathlib import Path

pytest_plugins = ["pytester"]

PROBE = """
import pytest

def test_needs_bedtools():
    pytest.skip("bedtools not installed")

@pytest.mark.skipif(True, reason="macs2 not installed")
def test_needs_macs2():
    pass

def test_needs_chromium():
    pytest.skip("chromium is not installed (apt-get install chromium)")

def test_needs_cuda():
    pytest.skip("needs CUDA")
"""


def _run(pytester, monkeypatch, ci):
    monkeypatch.setenv("CI", ci)
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_probe=PROBE)
    return pytester.runpytest("-p", "no:cacheprovider")


def test_missing_oracles_fail_in_ci(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "true")
    outcomes = result.parseoutcomes()
    assert outcomes.get("skipped") == 1  # CUDA: a skip everywhere
    assert outcomes.get("failed", 0) + outcomes.get("errors", outcomes.get("error", 0)) == 3, outcomes


def test_missing_oracles_skip_locally(pytester, monkeypatch):
    result = _run(pytester, monkeypatch, "")
    result.assert_outcomes(skipped=4)
