"""Reliability of the runner and the stores (issue 17): each test reproduces one failure a hostile
but realistic user found, and fails on the code before the fix.

1. run names cannot write outside results/      6. SIGTERM/SIGINT stop a batch cleanly
2. a changed raw input makes results stale      7. atomic writes get the umask's mode, not 0600
3. a truncated or corrupt store is refused      8. a full disk gives a clear error, intact FAILED files
5. parameter values are checked up front        9. one run per (run, cell type, notebook) at a time

The readers (item 4) are tested in tests/test_io.py.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import nbformat
import pytest
from test_cli import GLOBAL_PARAMS, HEADER, PER_CELL_PARAMS, START, fake_repo  # noqa: F401 — fixture
from test_dataset import _make_raw

from chromexp import config, paths, utils
from chromexp.config import load_params
from chromexp.data import dataset
from chromexp.runner import cli, notebooks
from chromexp.simulate import roadmap

#: The toy raw files are hand-made (no generator manifest): declared as real-format data.
TOY = {"data": {"name": "toy", "source": "roadmap"}}


def _toy_store(tmp_path):
    """A tiny real dataset store (the raw files of tests/test_dataset.py) and its parameters."""
    _make_raw(tmp_path)
    params = load_params("E003", overrides={"paths": {"data_dir": str(tmp_path / "data")}, **TOY})
    return params, dataset.build_dataset(params, "E003")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- 1. nothing is written outside the results/data roots -------------------------------------------
@pytest.mark.parametrize("name", ["../escaped", "ABSOLUTE", "a/b", "..", ".hidden", "-x"])
def test_run_names_must_be_plain_folder_names(fake_repo, capsys, tmp_path, name):  # noqa: F811
    name = str(tmp_path / "abs") if name == "ABSOLUTE" else name
    code = cli.main(["batch", "--notebooks", "30", "--cells", "E003", "-f", "params/smoke.yaml", f"--run-name={name}"])
    assert code == 2
    assert "Invalid run name" in capsys.readouterr().err
    assert not (fake_repo / "results").exists() and not (fake_repo / "escaped").exists()
    assert not (tmp_path / "abs").exists()


def test_run_and_dataset_names_in_parameters_must_be_plain(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run_name: ../../x\n")
    with pytest.raises(ValueError, match="run_name"):
        load_params(None, files=[bad])
    with pytest.raises(ValueError, match="data.name"):
        load_params(None, overrides={"data": {"name": "../../elsewhere"}})
    with pytest.raises(ValueError, match="Invalid cell type"):
        paths.run_dir(None, "ok", "../E003")
    with pytest.raises(ValueError, match="Invalid run name"):
        notebooks.make_job("30", "E003", None, {}, "/tmp/x")


# -- 2. resume notices changed inputs ----------------------------------------------------------------
def _finished_job(tmp_path, monkeypatch):
    """Notebook 30's job for the toy data, with a finished notebook recording its fingerprint."""
    monkeypatch.setenv("CHROMEXP_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CHROMEXP_RESULTS_DIR", str(tmp_path / "results"))
    job = notebooks.make_job("30", "E003", None, TOY, "t")
    job.out_dir.mkdir(parents=True)
    nb = nbformat.v4.new_notebook()
    nb.metadata["chromexp"] = {"fingerprint": job.fingerprint}
    nbformat.write(nb, job.output)
    assert notebooks.status(job) == "done"
    return lambda: notebooks.status(notebooks.make_job("30", "E003", None, TOY, "t"))


def test_changed_raw_input_makes_jobs_stale_and_the_store_refused(tmp_path, monkeypatch):
    params, store = _toy_store(tmp_path)
    assert dataset.load_dataset(params, "E003").genes.shape[0] > 0
    # the job of a per-cell-type notebook is "done" with its recorded fingerprint ...
    status = _finished_job(tmp_path, monkeypatch)

    # ... until half the reads of one tagAlign are removed
    tag = tmp_path / "data" / "toy" / "raw" / "E003-H3K27ac.tagAlign.gz"
    import gzip

    lines = gzip.decompress(tag.read_bytes()).splitlines(keepends=True)
    tag.write_bytes(gzip.compress(b"".join(lines[: len(lines) // 2])))
    assert status() == "stale"

    # the old store is refused, naming the changed input and how to rebuild
    with pytest.raises(ValueError, match=r"E003-H3K27ac\.tagAlign\.gz.*chromexp run 10 --cell E003 --force"):
        dataset.load_dataset(params, "E003")
    # notebook 10 (build_dataset without force) rebuilds it, and it loads again
    mtime = store.stat().st_mtime_ns
    dataset.build_dataset(params, "E003")
    assert store.stat().st_mtime_ns != mtime
    dataset.load_dataset(params, "E003")


# -- 3. corrupt stores are detected ------------------------------------------------------------------
def _data_offset(path: Path, key: str) -> int:
    with h5py.File(path, "r") as f:
        ds = f[key]
        return ds.id.get_chunk_info(0).byte_offset if ds.chunks else ds.id.get_offset()


@pytest.mark.parametrize("damage", ["truncate", "zero_signal", "zero_tss", "zero_gene_ids"])
def test_truncated_or_zeroed_store_is_refused(tmp_path, monkeypatch, damage):
    params, store = _toy_store(tmp_path)
    status = _finished_job(tmp_path, monkeypatch)
    raw = bytearray(store.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "zero_gene_ids":  # variable-length strings live in a heap, outside any chunk
        offset = raw.find(b"G_chr1_0")
        assert offset > 0
        raw[offset : offset + 8] = bytes(8)
    else:
        offset = _data_offset(store, "promoter/100" if damage == "zero_signal" else "genes/tss")
        raw[offset : offset + 64] = bytes(64)
    store.write_bytes(bytes(raw))
    if damage == "truncate":  # batch does not skip the jobs that read it as up to date
        assert status() == "stale"
    with pytest.raises(ValueError, match=r"dataset\.h5.*chromexp run 10 --cell E003 --force") as err:
        dataset.load_dataset(params, "E003")
    assert str(store) in str(err.value)
    # notebook 10 does not reuse a damaged store: it rebuilds it
    dataset.build_dataset(params, "E003")
    dataset.load_dataset(params, "E003")


# -- 5. parameter values are checked before anything runs ------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"folds": [5]}, "'folds'"),
        ({"folds": []}, "'folds'"),
        ({"model": {"chromoformer": {"folds": [0, 1]}}}, "model.chromoformer.folds"),
        ({"marks": ["H3K4me2"]}, "'marks'"),
        ({"model": {"promoter_cnn": {"marks": ["H3K27me3", "H3K27me3"]}}}, "model.promoter_cnn.marks"),
        ({"model": {"chromoformer": {"mark_sets": [["H3K4me3", "nope"]]}}}, "mark_sets"),
        ({"train": {"max_epochs": 0}}, "train.max_epochs"),
        ({"train": {"batch_size": -8}}, "train.batch_size"),
        ({"train": {"early_stopping_patience": 0}}, "train.early_stopping_patience"),
        ({"device": "gpu"}, "'device'"),
        ({"device": 0}, "'device'"),  # null default: type-checked (str)
        ({"paths": {"data_dir": 5}}, "paths.data_dir"),
        ({"paths": {"results_dir": ["a"]}}, "paths.results_dir"),
        ({"simulate": {"n_jobs": 0}}, "simulate.n_jobs"),
        ({"peaks": {"qvalue": "0.05"}}, "peaks.qvalue"),
        ({"model": {"promoter_cnn": {"concurrent": "yes"}}}, "model.promoter_cnn.concurrent"),
    ],
)
def test_parameter_values_are_checked(overrides, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        load_params("E003", overrides=overrides)


def test_duplicate_yaml_keys_and_jobs_are_rejected(tmp_path, capsys):
    dup = tmp_path / "dup.yaml"
    dup.write_text("train:\n  max_epochs: 5\n  lr: 1.0e-3\n  max_epochs: 50\n")
    with pytest.raises(ValueError, match=r"dup\.yaml: duplicate key 'max_epochs' on line 4 \(first given on line 2\)"):
        load_params(None, files=[dup])
    with pytest.raises(ValueError, match="duplicate key"):
        config.parse_overrides([("train", "{max_epochs: 1, max_epochs: 2}")])
    for jobs in ("0", "-1", "two"):
        with pytest.raises(SystemExit) as exit_:
            cli.main(["batch", "--notebooks", "77", "--jobs", jobs])
        assert exit_.value.code == 2
        assert "--jobs" in capsys.readouterr().err
    # the shipped presets pass
    for name in ("smoke", "demo"):
        load_params("E003", files=[paths.params_dir() / f"{name}.yaml"])


# -- 6. clean stops ----------------------------------------------------------------------------------
SLOW = (
    HEADER
    + PER_CELL_PARAMS
    + START
    + textwrap.dedent(
        """
        import os, subprocess
        child = subprocess.Popen(["sleep", "300"])  # a worker of the notebook
        (run.out_dir / "pids.json").write_text(json.dumps([os.getpid(), child.pid]))
        time.sleep(300)
        """
    )
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie waiting for its (dead) parent's reaper is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_batch_jobs_writes_failed_files_and_summary(fake_repo, signum):  # noqa: F811
    (fake_repo / "notebooks" / "10_sleep.py").write_text(SLOW)
    env = {**os.environ, "CHROMEXP_ROOT": str(fake_repo), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CHROMEXP_RESULTS_DIR", None)
    cmd = [sys.executable, "-m", "chromexp", "batch", "--notebooks", "10", "30", "--cells", "E003", "E116"]
    proc = subprocess.Popen(
        [*cmd, "--jobs", "2", "-f", "params/smoke.yaml", "--run-name", "t"],
        cwd=fake_repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid_files = [fake_repo / "results" / "t" / c / "pids.json" for c in ("E003", "E116")]
    deadline = time.time() + 180
    while not all(p.is_file() for p in pid_files):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"the jobs did not start: {proc.communicate()[0]}")
        time.sleep(0.3)
    pids = [pid for p in pid_files for pid in json.loads(p.read_text())]
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signum, out
    assert "2 failed" in out and "2 stopped" in out and "(4 jobs)" in out, out
    for cell in ("E003", "E116"):
        folder = fake_repo / "results" / "t" / cell
        text = (folder / "10_sleep.FAILED.txt").read_text()
        assert "10_sleep" in text and "stopped by signal" in text and text.endswith("\n")
        assert not (folder / "10_sleep.ipynb").exists() and not (folder / "30_after.ipynb").exists()
        if (folder / "10_sleep.FAILED.ipynb").exists():
            nbformat.read(folder / "10_sleep.FAILED.ipynb", as_version=4)  # valid JSON
    deadline = time.time() + 10
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in pids if _alive(p)], "kernel or notebook worker still running after the batch stopped"


def test_simulation_workers_die_with_their_parent(tmp_path):
    script = textwrap.dedent(
        """
        import concurrent.futures, os, sys, time
        from chromexp.simulate import roadmap

        def work(i):
            time.sleep(120)

        pool = concurrent.futures.ProcessPoolExecutor(2, initializer=roadmap._die_with_parent, initargs=(os.getpid(),))
        for i in range(2):
            pool.submit(work, i)
        while len(pool._processes) < 2:
            time.sleep(0.05)
        time.sleep(0.5)
        print(" ".join(str(p) for p in pool._processes), flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2, "the script did not start its workers"
    parent.kill()  # SIGKILL: no cleanup code of the parent runs
    parent.wait()
    deadline = time.time() + 10
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "orphaned simulation workers"


def test_leftovers_of_a_killed_generation_are_removed_by_the_next_run(tmp_path):
    params = load_params(
        None,
        files=[paths.params_dir() / "smoke.yaml"],
        overrides={
            "paths": {"data_dir": str(tmp_path)},
            "simulate": {"presets": {"smoke": {"n_genes": 20, "cell_types": ["E003"]}}},
        },
    )
    raw = paths.raw_dir(params)
    dead = _dead_pid()
    leftovers = [raw.parent / f".raw.tmp-{dead}", raw.parent / f".raw.old-{dead}"]
    for d in leftovers:
        (d / "pchic").mkdir(parents=True)
        (d / "E003-H3K4me3.tagAlign.gz").write_bytes(b"partial")
    roadmap.generate(params)
    live = raw.parent / f".raw.tmp-{os.getpid()}-other"  # a live writer's folder is left alone
    live.mkdir()
    stray = raw / f".genes.tsv.tmp-{dead}-abc"
    stray.write_text("half")
    roadmap.generate(params)  # reuses the dataset, and cleans up
    assert not any(d.exists() for d in leftovers) and not stray.exists()
    assert live.exists()
    assert not list(raw.parent.glob(".raw.tmp-*"))[1:]  # only the live one


# -- 7. shared-cluster friendly modes ---------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_atomic_writes_get_the_mode_of_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        with utils.atomic_path(tmp_path / "table.tsv") as tmp:
            tmp.write_text("a\tb\n")
        params, store = _toy_store(tmp_path / "toy")
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert (tmp_path / "table.tsv").stat().st_mode & 0o777 == expected
    assert store.stat().st_mode & 0o777 == expected


# -- 8. disk full ------------------------------------------------------------------------------------
def test_disk_full_in_a_block_names_the_file_and_keeps_the_old_content(tmp_path):
    target = tmp_path / "results" / "table.tsv"
    target.parent.mkdir()
    target.write_text("old\n")
    with pytest.raises(OSError, match=r"No space left on device.*table\.tsv") as err:
        with utils.atomic_path(target) as tmp:
            tmp.write_text("new, partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
    assert target.read_text() == "old\n"
    assert [p.name for p in target.parent.iterdir()] == ["table.tsv"]


class _FullDisk:
    """``open`` whose writes under ``root`` fail with ENOSPC once a file holds ``budget`` bytes."""

    def __init__(self, root: Path, budget: int):
        self.root, self.budget, self.real = str(root), budget, builtins.open

    def __call__(self, file, mode="r", *args, **kwargs):
        handle = self.real(file, mode, *args, **kwargs)
        if any(m in mode for m in "wax+") and str(os.fspath(file)).startswith(self.root):
            return _Limited(handle, self.budget)
        return handle


class _Limited:
    def __init__(self, handle, budget):
        self._h, self._left = handle, budget

    def write(self, data):
        if len(data) > self._left:
            self._h.write(data[: self._left])
            self._h.flush()
            self._left = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._left -= len(data)
        return self._h.write(data)

    def __getattr__(self, name):
        return getattr(self._h, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._h.close()


def test_disk_full_leaves_complete_failed_files_and_names_the_file(fake_repo, monkeypatch, capsys):  # noqa: F811
    import papermill

    job = notebooks.make_job("30", "E003", "params/smoke.yaml", {}, "t")

    def full_disk_papermill(nb, output, **kwargs):
        Path(output).write_text('{"cells": [{"cell_type": "code", "sour')  # what a full disk leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(papermill, "execute_notebook", full_disk_papermill)
    fake_open = _FullDisk(fake_repo / "results", budget=400)
    with monkeypatch.context() as m:
        m.setattr(builtins, "open", fake_open)
        m.setattr(io, "open", fake_open)
        code = cli.main(["run", "30", "--cell", "E003", "-f", "params/smoke.yaml", "--run-name", "t", "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "No space left on device" in err and str(job.running) in err  # names the file being written
    text = job.failed_message.read_text()
    assert text.startswith("30_after [E003] failed") and "No space left on device" in text and text.endswith("\n")
    assert not job.failed.exists()  # the truncated partial notebook is not kept as FAILED.ipynb
    assert "partial notebook:" not in err  # ... nor announced
    assert not list(job.out_dir.glob(".*.tmp*"))


# -- 9. one run at a time per (run, cell type, notebook) --------------------------------------------
def test_second_run_of_the_same_job_is_refused_naming_the_pid(fake_repo, monkeypatch, capsys):  # noqa: F811
    import papermill

    job = notebooks.make_job("30", "E003", "params/smoke.yaml", {}, "t")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom chromexp.runner import notebooks\n"
            "job = notebooks.make_job('30', 'E003', 'params/smoke.yaml', {}, 't')\n"
            "with notebooks.job_lock(job):\n    print('locked', flush=True)\n    time.sleep(60)\n",
        ],
        cwd=fake_repo,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        job.out_dir.mkdir(parents=True, exist_ok=True)
        job.running.write_text("the other run's notebook")
        ran = []
        monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: ran.append(1))
        code = cli.main(["run", "30", "--cell", "E003", "-f", "params/smoke.yaml", "--run-name", "t", "-q"])
        err = capsys.readouterr().err
        assert code == 75 and not ran
        assert f"pid {holder.pid}" in err and "already running" in err
        assert job.running.read_text() == "the other run's notebook"  # its files are untouched
        assert not job.failed_message.exists()
    finally:
        holder.kill()
        holder.wait()
    # the lock dies with its holder: no stale lock to clean up
    monkeypatch.setattr(papermill, "execute_notebook", lambda nb, out, **k: nbformat.write(nb, out))
    assert cli.main(["run", "30", "--cell", "E003", "-f", "params/smoke.yaml", "--run-name", "t", "-q"]) == 0
    assert job.output.is_file()
