"""Shared fixtures.

* ``smoke_params``: merged parameters of ``params/smoke.yaml`` for E003, with data and results
  under a per-session temporary folder (tests never touch the repository's data/ or results/).
* ``smoke_raw``: the semi-synthetic smoke dataset generated once per session (``chromexp.simulate.roadmap``).
* ``smoke_dataset``: its E003 dataset store built and loaded (``chromexp.data.dataset``).
* ``device``: runs a test on CPU and, when available, CUDA.
* ``--runslow`` enables tests marked ``slow``; tests marked ``gpu`` skip without CUDA.
* In CI (``CI=true``, exported by ``.ci/run``) a test skipped because bedtools, MACS2, the
  reference ``chromoformer`` package or Chromium (the ``make lab`` browser test) is missing *fails*
  instead: CI must run the oracle and browser tests.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run tests marked slow")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_slow = pytest.mark.skip(reason="slow: run with --runslow")
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def session_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("chromexp")
    return {"data_dir": root / "data", "results_dir": root / "results", "figures_dir": root / "figures"}


@pytest.fixture(scope="session")
def smoke_params(session_dirs) -> dict:
    from chromexp.config import load_params

    return load_params(
        "E003",
        files=[REPO / "params" / "smoke.yaml"],
        overrides={"paths": {k: str(v) for k, v in session_dirs.items()}},
    )


@pytest.fixture(scope="session")
def smoke_raw(smoke_params) -> Path:
    """Generate the smoke preset once per session; returns the raw-data folder."""
    from chromexp.simulate import roadmap

    return roadmap.generate(smoke_params)


@pytest.fixture(scope="session")
def smoke_dataset(smoke_params, smoke_raw):
    """Build and load the E003 dataset store of the smoke preset."""
    from chromexp.data import dataset

    dataset.build_dataset(smoke_params, "E003")
    return dataset.load_dataset(smoke_params, "E003")


#: Skip reasons that are failures in CI: the oracles CI must have (bedtools, MACS2, chromoformer) and
#: the headless browser of the JupyterLab test (Chromium, installed by ``make setup``'s tools step).
REQUIRED_IN_CI = re.compile(r"bedtools|macs2|macs|chromoformer|chromium", re.IGNORECASE)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _fail_required_skip(report) -> None:
    """Turn a skip caused by a missing oracle tool into a failure (in CI only)."""
    if not (in_ci() and report.skipped) or getattr(report, "wasxfail", None) is not None:
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    if REQUIRED_IN_CI.search(reason) and "slow" not in reason and "CUDA" not in reason:
        report.outcome = "failed"
        report.longrepr = f"CI=true: a required tool is missing, so this is a failure, not a skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_required_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    _fail_required_skip(outcome.get_result())


def _devices():
    import torch

    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    return devs


@pytest.fixture(params=_devices())
def device(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one CPU thread for a test module (small models run fastest so; results depend on the
    thread count), restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
