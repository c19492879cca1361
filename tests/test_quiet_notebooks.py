"""What an executed notebook shows: summary lines as plain text, details in the job's log, a short run header.

The quietness lives in the shared machinery, not in each notebook: ``runs.start`` routes the log
(``chromexp.utils.configure_logging``), the training engine logs one summary line per model and its
per-epoch lines at ``DETAIL``, and ``chromexp.utils.progress_bar`` draws no bar in a notebook kernel.
The last test executes notebook 30 on the smoke preset and reads the saved ``.ipynb``.
"""

from __future__ import annotations

import logging
import re
import shutil

import nbformat
import pytest
from notebook_noise import LOG_LINE, noise

from chromexp import runs, utils
from chromexp.runner import cli


@pytest.fixture
def restore_logging():
    """Put chromexp's log handlers back as they were (configure_logging changes process-wide state)."""
    yield
    utils.configure_logging()


def test_in_a_notebook_summaries_go_to_the_cell_as_text_and_details_to_the_job_log(
    tmp_path, monkeypatch, capsys, restore_logging
):
    monkeypatch.setattr(utils, "in_notebook", lambda: True)
    job_log = tmp_path / "logs" / "30_promoter_model.log"
    assert utils.configure_logging(job_log) == job_log
    log = utils.get_logger("chromexp.test")
    log.info("H3K4me3 fold 1: best epoch 2 of 2")
    log.log(utils.DETAIL, "H3K4me3 fold 1 epoch   1: train 7.9  val 20.3")
    log.warning("something to look at")
    out, err = capsys.readouterr()
    assert err == ""  # stderr is what Jupyter renders as a red box
    assert "H3K4me3 fold 1: best epoch 2 of 2" in out and "WARNING: something to look at" in out
    assert "epoch   1" not in out
    text = job_log.read_text()
    assert "DETAIL chromexp.test: H3K4me3 fold 1 epoch   1" in text and "best epoch 2 of 2" in text


def test_on_a_terminal_details_are_shown_and_no_job_log_is_written(monkeypatch, restore_logging):
    monkeypatch.delenv(utils.JOB_LOG_ENV, raising=False)
    monkeypatch.setattr(utils, "in_notebook", lambda: False)
    assert utils.configure_logging() is None
    console = [h for h in logging.getLogger("chromexp").handlers if getattr(h, "_chromexp", False)]
    assert len(console) == 1 and console[0].level == utils.DETAIL  # configure twice: still one handler


def test_no_progress_bar_in_a_notebook(monkeypatch):
    monkeypatch.setattr(utils, "in_notebook", lambda: True)
    assert utils.progress_bar(range(3), desc="x").disable
    monkeypatch.setattr(utils, "in_notebook", lambda: False)
    assert not utils.progress_bar(range(3), desc="x").disable
    assert utils.progress_bar(range(3), desc="x", enabled=False).disable


def test_missing_cell_type_says_where_to_set_it(monkeypatch):
    monkeypatch.setattr(utils, "in_notebook", lambda: True)
    monkeypatch.setattr(runs, "in_notebook", lambda: True)
    with pytest.raises(ValueError) as err:
        runs.start(cell_type=None)
    msg = str(err.value)
    assert msg.startswith("CELL_TYPE is required")
    assert "parameters cell" in msg and 'CELL_TYPE = "E003"' in msg  # JupyterLab: what to set, and where
    assert msg.index("JupyterLab") < msg.index("command line")  # in a kernel the Lab advice comes first
    assert "E003" in msg and "E116" in msg  # the known cell types


def test_describe_shows_the_effective_run_and_only_what_differs_from_the_defaults(tmp_path, repo):
    overrides = {"paths": {"results_dir": str(tmp_path / "results"), "data_dir": str(tmp_path / "data")}}
    overrides["train"] = {"lr": 0.01}
    run = runs.start("E003", params_file=repo / "params" / "smoke.yaml", overrides=overrides)
    d = run.describe()
    text = repr(d)
    assert text.startswith(f"Run 'smoke' (from run_name of {(repo / 'params' / 'smoke.yaml').as_posix()})")
    assert "cell type: E003 (H1 ESC, ESC)" in text and "data: none on disk yet" in text
    table = d.table
    assert table.loc["train.max_epochs", "value"] == "2" and table.loc["train.max_epochs", "default"] == "100"
    assert table.loc["train.max_epochs", "set_in"].endswith("params/smoke.yaml")
    assert table.loc["train.lr", "value"] == "0.01" and table.loc["train.lr", "set_in"] == "the overrides (-p / PARAMS)"
    assert "train.batch_size" not in table.index  # unchanged: not listed
    assert not any(p.startswith("cell.") for p in table.index) and "run_name" not in table.index
    import yaml

    def leaves(d, prefix=""):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]

    smoke_keys = set(leaves(yaml.safe_load((repo / "params" / "smoke.yaml").read_text())))
    # only what the smoke file or the overrides set (and differs from the defaults) is listed
    assert set(table.index) <= smoke_keys | {"train.lr", "paths.results_dir", "paths.data_dir"}
    assert "..." not in text  # every row shown, none elided
    assert len(run.describe(all_parameters=True).table) > 200  # everything, on request
    named = runs.start("E003", run_name="mine", params_file=repo / "params" / "smoke.yaml", overrides=overrides)
    assert repr(named.describe()).startswith("Run 'mine' (from RUN_NAME = 'mine')")
    assert "<table" in named.describe()._repr_html_()


def test_training_logs_one_summary_line_per_model_and_epochs_as_detail(caplog):
    import torch

    from chromexp.training import train

    torch.manual_seed(0)
    x, y = torch.randn(40, 3), torch.randn(40)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0))
    tp = dict(lr=1e-2, batch_size=8, max_epochs=3, lr_factor=0.5, lr_patience=5, min_lr=1e-6)
    with caplog.at_level(utils.DETAIL, logger="chromexp"):
        train.fit(model, (x[:30], y[:30]), (x[30:], y[30:]), train_params={**tp, "early_stopping_patience": 9},
                  device="cpu", name="toy", progress=True)  # fmt: skip
    info = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO and r.name.startswith("chromexp")]
    detail = [r.getMessage() for r in caplog.records if r.levelno == utils.DETAIL]
    assert info == [m for m in info if m.startswith("toy: best epoch")] and len(info) == 1
    assert sum("epoch" in m and "train" in m for m in detail) == 3


NOISY = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
CELL_TYPE = None  # Roadmap EID
RUN_NAME = None  # run folder
PARAMS_FILE = None  # run file
PARAMS = {}  # overrides

# %%
from chromexp import runs
from chromexp.utils import DETAIL, get_logger, progress_bar

run = runs.start(cell_type=CELL_TYPE, run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS)
log = get_logger("chromexp.noisy")
for step in progress_bar(range(3), desc="steps"):
    log.log(DETAIL, "detail line %d", step)
log.info("summary line")
"""


def test_batch_job_log_holds_the_notebooks_details_and_the_runners_lines(tmp_path, monkeypatch, repo):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(repo / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(repo / "params", root / "params")
    (root / "notebooks" / "10_noisy.py").write_text(NOISY)
    monkeypatch.setenv("CHROMEXP_ROOT", str(root))
    monkeypatch.chdir(root)
    monkeypatch.delenv("CHROMEXP_RESULTS_DIR", raising=False)
    assert (
        cli.main(["batch", "-f", "params/smoke.yaml", "--run-name", "t", "--cells", "E003", "E116", "--jobs", "2"]) == 0
    )
    for cell in ("E003", "E116"):
        out_dir = root / "results" / "t" / cell
        nb = nbformat.read(out_dir / "10_noisy.ipynb", as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"]
        assert [o.name for o in outputs] == ["stdout"]  # nothing in stderr: no bar, no log box
        assert "summary line" in outputs[0].text and "detail line" not in outputs[0].text
        job_log = (out_dir / "logs" / "10_noisy.log").read_text()
        assert all(f"detail line {i}" in job_log for i in range(3)) and "summary line" in job_log  # the kernel's
        assert job_log.count(f"10_noisy [{cell}] finished in") == 1  # the runner's (same file, both appending),
        assert job_log.count("summary line") == 1  # each line once


@pytest.mark.notebook
def test_notebook_30_executed_is_quiet(smoke_params, smoke_dataset, session_dirs, tmp_path):
    """Notebook 30 on the smoke preset: no tqdm frames, no log lines in stderr boxes, one line per model."""
    results = tmp_path / "results"
    code = cli.main(
        ["run", "30", "--cell", "E003", "-f", "params/smoke.yaml", "--run-name", "quiet", "-q",
         "-p", "paths.data_dir", str(session_dirs["data_dir"]), "-p", "paths.results_dir", str(results),
         "-p", "paths.figures_dir", str(tmp_path / "figures")]
    )  # fmt: skip
    assert code == 0
    out_dir = results / "quiet" / "E003"
    nb = nbformat.read(out_dir / "30_promoter_model.ipynb", as_version=4)
    streams = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"]
    text = "".join(o.text for o in streams)
    assert "\r" not in text  # no progress-bar frames saved in the notebook
    assert not noise(nb), noise(nb)  # (the check every notebook of the smoke test passes)
    stderr = "".join(o.text for o in streams if o.name == "stderr")
    assert not LOG_LINE.search(stderr) and "%|" not in stderr, stderr[:500]
    n_models = len(smoke_params["model"]["promoter_cnn"]["marks"]) * len(smoke_params["folds"])
    assert len(re.findall(r"fold \d: best epoch \d+ of \d+", text)) == n_models  # one summary line per model
    assert not re.search(r"epoch +\d+: train", text)  # the per-epoch lines are not in the notebook ...
    job_log = (out_dir / "logs" / "30_promoter_model.log").read_text()
    assert len(re.findall(r"DETAIL chromexp\.training\.train: .* epoch +\d+: train", job_log)) >= n_models  # ... here
    described = next(
        o.data["text/plain"]
        for c in nb.cells
        if "run.describe()" in c.source
        for o in c.outputs
        if o.output_type == "execute_result"
    )
    assert described.startswith("Run 'quiet' (from RUN_NAME = 'quiet')")
    assert "cell type: E003 (H1 ESC, ESC)" in described and "SEMI-SYNTHETIC" in described
    assert re.search(r"train\.max_epochs +2 +100 +\S*params/smoke\.yaml", described), described
    assert "train.lr " not in described and "..." not in described
    shutil.rmtree(results, ignore_errors=True)


def test_the_noise_check_finds_each_kind_of_noise_and_passes_a_quiet_notebook():
    """tests/notebook_noise.py (the smoke test's check of every notebook) is not vacuous."""

    def notebook(*streams):
        nb = nbformat.v4.new_notebook()
        cell = nbformat.v4.new_code_cell("train()")
        cell.outputs = [nbformat.v4.new_output("stream", name=name, text=text) for name, text in streams]
        nb.cells = [cell]
        return nb

    quiet = ("stdout", "H3K4me3 fold 1: best epoch 2 of 2 (val loss 5.3249)\nH3K4me3 fold 2: best epoch 2 of 2\n")
    assert noise(notebook(quiet)) == []
    assert "a progress-bar frame" in noise(notebook(("stderr", "steps:  33%|███▎      | 1/3 [00:00<00:00]\r")))[0]
    assert "stderr" in noise(notebook(("stderr", "20:42:44 INFO chromexp.training.train: toy: best epoch 2")))[0]
    assert "per-epoch" in noise(notebook(("stdout", "toy epoch   1: train 7.9243  val 6.1800  lr 3.0e-03")))[0]
    warning = "/x/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets."
    assert "a stderr box" in noise(notebook(("stderr", warning)))[0]
    doubled = "H3K4me3 fold 1: best epoch 2 of 2 (val loss 5.3249)\n"
    assert "twice in a row" in noise(notebook(("stdout", doubled * 2)))[0]
