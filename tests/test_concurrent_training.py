"""Many Chromoformer models at once (``model.chromoformer.concurrent``): worker processes sharing the
device give exactly the sequential path's tables and checkpoints, a failing (marks, fold) is named and
leaves nothing half-written, and a failed concurrent run resumes from its checkpoints.

A tiny architecture on random inputs of the real structure keeps each model to a fraction of a
second; the worker processes' start-up (spawn, importing torch) dominates the time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromexp.config import load_params
from chromexp.experiments import chromoformer as ct
from chromexp.models import chromoformer_inputs as ci

# equal results need equal thread counts: the workers get max(1, threads // workers) = 1
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {
    "d_model": 8,
    "d_model_reg": 8,
    "embed_layers": 1,
    "embed_heads": 1,
    "embed_ff": 8,
    "pairwise_layers": 1,
    "pairwise_heads": 1,
    "pairwise_ff": 8,
    "reg_layers": 1,
    "reg_heads": 1,
    "reg_ff": 8,
    "head_hidden": 8,
}
MARK_SETS = [("H3K4me3",), ("H3K27me3",), ("H3K4me3", "H3K27me3")]
FOLDS = [1, 2]


class _FakeDataset:
    """The CellDataset interface train_and_evaluate uses: genes, marks, folds (no store needed)."""

    cell_type = "E003"
    marks = ("H3K4me3", "H3K27me3")

    def __init__(self, n=64, seed=0):
        rng = np.random.default_rng(seed)
        self.inputs = ci.random_inputs(n, n_marks=2, n_pcres=rng.integers(0, 4, n).tolist(), window=4000, seed=seed)
        signal = self.inputs["promoter_100"][:, 0].mean(1).numpy()
        target = (2.0 * signal + rng.normal(0, 0.1, n)).astype(np.float32)
        self.genes = pd.DataFrame(
            {
                "gene_id": [f"G{i}" for i in range(n)],
                "target": target,
                "label": (target >= np.median(target)).astype(int),
            }
        )
        self._fold = np.arange(n) % 4 + 1

    def split(self, fold):
        test = np.flatnonzero(self._fold == fold)
        rest = np.flatnonzero(self._fold != fold)
        return {"train": rest[6:], "validation": rest[:6], "test": test}


@pytest.fixture(scope="module")
def setup():
    params = load_params(
        "E003",
        overrides={
            "device": "cpu",
            "train": {"max_epochs": 3, "batch_size": 16, "early_stopping_patience": 5},
            "model": {"chromoformer": TINY},
        },
    )
    return params, _FakeDataset()


def _run(setup, checkpoint_dir, concurrent):
    params, ds = setup
    return ct.train_and_evaluate(
        ds,
        params,
        MARK_SETS,
        folds=FOLDS,
        device="cpu",
        checkpoint_dir=checkpoint_dir,
        progress=False,
        inputs=ds.inputs,
        concurrent=concurrent,
    )


@pytest.fixture(scope="module")
def sequential(setup, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sequential")
    return _run(setup, folder, 1), folder


def _checkpoints(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.pt")}


def _no_temporaries(folder):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name] == []


def test_concurrent_equals_sequential_exactly(setup, sequential, tmp_path):
    seq, seq_dir = sequential
    conc = _run(setup, tmp_path, 2)
    assert len(seq.predictions) == len(MARK_SETS) * sum(setup[1].split(f)["test"].size for f in FOLDS)
    pd.testing.assert_frame_equal(conc.metrics, seq.metrics, check_exact=True)
    pd.testing.assert_frame_equal(conc.predictions, seq.predictions, check_exact=True)
    history = ["epoch", "train_loss", "val_loss", "lr", "improved", "marks", "fold", "best_epoch"]
    pd.testing.assert_frame_equal(conc.history[history], seq.history[history], check_exact=True)
    assert conc.n_parameters == seq.n_parameters
    assert (seq.workers, conc.workers) == (1, 2)
    # the same checkpoint files (names hash the parameters, not how many models train at once)
    assert sorted(_checkpoints(tmp_path)) == sorted(_checkpoints(seq_dir))
    assert len(_checkpoints(tmp_path)) == len(MARK_SETS) * len(FOLDS) and _no_temporaries(tmp_path)


def test_worker_failure_names_marks_and_fold_and_the_run_resumes(setup, sequential, tmp_path):
    seq, seq_dir = sequential
    # the last job (the pair, fold 2) meets an unreadable checkpoint: a real failure inside a worker
    bad = next(name for name in _checkpoints(seq_dir) if "H3K27me3+H3K4me3_fold2" in name)
    (tmp_path / bad).write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"H3K27me3\+H3K4me3 fold 2 failed in a worker process.*cannot be read"):
        _run(setup, tmp_path, 2)
    # nothing half-written: every other model finished and was checkpointed atomically
    others = _checkpoints(tmp_path)
    assert sorted(others) == sorted(_checkpoints(seq_dir)) and _no_temporaries(tmp_path)
    assert (tmp_path / bad).read_bytes() == b"not a checkpoint"
    (tmp_path / bad).unlink()
    # resume: the finished models are read back, not retrained (files untouched); same tables
    again = _run(setup, tmp_path, 2)
    after = _checkpoints(tmp_path)
    assert {k: v for k, v in after.items() if k != bad} == {k: v for k, v in others.items() if k != bad}
    assert bad in after
    pd.testing.assert_frame_equal(again.metrics, seq.metrics, check_exact=True)
    pd.testing.assert_frame_equal(again.predictions, seq.predictions, check_exact=True)


def test_concurrent_parameter_is_validated():
    assert load_params("E003")["model"]["chromoformer"]["concurrent"] is None
    assert ct.concurrency_from_params(load_params("E003")) == 1
    params = load_params("E003", overrides={"model": {"chromoformer": {"concurrent": 4}}})
    assert ct.concurrency_from_params(params) == 4
    with pytest.raises(ValueError, match="'model.chromoformer.concurrent' = 0: must be a positive integer"):
        load_params("E003", overrides={"model": {"chromoformer": {"concurrent": 0}}})
    with pytest.raises(ValueError, match="model.chromoformer.concurrent.*type int"):
        load_params("E003", overrides={"model": {"chromoformer": {"concurrent": "two"}}})


def test_a_killed_worker_is_reported_with_the_models_in_flight(setup, tmp_path):
    import multiprocessing
    import os
    import signal
    import threading
    import time

    def kill_first_worker():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            children = multiprocessing.active_children()
            if children:  # a worker still importing torch: no model can have finished yet
                os.kill(children[0].pid, signal.SIGKILL)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    with pytest.raises(RuntimeError, match=r"worker process died .* H3K4me3 fold 1, .*H3K27me3\+H3K4me3 fold 2"):
        _run(setup, tmp_path, 2)
    killer.join()
    assert _no_temporaries(tmp_path)


def test_one_fold_jobs_leave_the_models_the_all_folds_run_reads_back(setup, sequential, tmp_path):
    # `chromexp batch --per-fold`: each job trains one fold (model.chromoformer.folds: [k]) of a
    # subset of the mark sets; the all-folds run afterwards trains nothing and gives the tables of
    # one uninterrupted run. Fails if a selection key (folds, marks, mark_sets) enters the names.
    seq, seq_dir = sequential
    params, ds = setup
    for fold in FOLDS:
        job_params = {**params, "model": {**params["model"], "chromoformer": {**params["model"]["chromoformer"]}}}
        job_params["model"]["chromoformer"].update(folds=[fold], mark_sets=[list(s) for s in MARK_SETS])
        ct.train_and_evaluate(
            ds,
            job_params,
            MARK_SETS,
            folds=[fold],
            device="cpu",
            checkpoint_dir=tmp_path,
            progress=False,
            inputs=ds.inputs,
        )
    written = _checkpoints(tmp_path)
    assert sorted(written) == sorted(_checkpoints(seq_dir))
    merged = _run(setup, tmp_path, 1)
    assert _checkpoints(tmp_path) == written  # nothing trained, nothing rewritten
    assert (merged.reused, seq.reused) == (len(MARK_SETS) * len(FOLDS), 0)
    pd.testing.assert_frame_equal(merged.metrics, seq.metrics, check_exact=True)
    pd.testing.assert_frame_equal(merged.predictions, seq.predictions, check_exact=True)
