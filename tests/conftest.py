"""Shared fixtures.

* ``smoke_params``: merged parameters of ``params/smoke.yaml`` for E003, with data and results
  under a per-session temporary folder (tests never touch the repository's data/ or results/).
* ``smoke_raw``: the semi-synthetic smoke dataset generated once per session (``chromexp.simulate``).
* ``smoke_dataset``: its E003 dataset store built and loaded (``chromexp.dataset``).
* ``device``: runs a test on CPU and, when available, CUDA.
* ``--runslow`` enables tests marked ``slow``; tests marked ``gpu`` skip without CUDA.
"""

from __future__ import annotations

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
    from chromexp import simulate

    return simulate.generate(smoke_params)


@pytest.fixture(scope="session")
def smoke_dataset(smoke_params, smoke_raw):
    """Build and load the E003 dataset store of the smoke preset."""
    from chromexp import dataset

    dataset.build_dataset(smoke_params, "E003")
    return dataset.load_dataset(smoke_params, "E003")


def _devices():
    import torch

    devs = ["cpu"]
    if torch.cuda.is_available():
        devs.append("cuda")
    return devs


@pytest.fixture(params=_devices())
def device(request) -> str:
    return request.param
