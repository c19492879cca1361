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
import contextlib
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
        # issue 29 item 6: refused up front, not deep inside a notebook
        ({"seed": 2**64}, "'seed'"),
        ({"perturbation": {"n_genes": 0}}, "perturbation.n_genes"),
        ({"perturbation": {"folds": [0]}}, "perturbation.folds"),
        ({"perturbation": {"attribution": {"n_steps": 0}}}, "perturbation.attribution.n_steps"),
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


# ====================================================================================================
# Issue 29 (reliability, round two). Each test fails on the code before the fix (checked there).
# ====================================================================================================


# -- 29.3: a fold job never leaves whole-run tables describing one fold ------------------------------
def _run_30(session_dirs, results, *extra):
    args = ["run", "30", "--cell", "E003", "-f", "params/smoke.yaml", "--run-name", "folds", "-q"]
    args += ["-p", "paths.data_dir", str(session_dirs["data_dir"]), "-p", "paths.results_dir", str(results)]
    args += ["-p", "paths.figures_dir", str(results / "figures"), "-p", "model.promoter_cnn.marks", "[H3K4me3]"]
    args += ["-p", "model.promoter_cnn.folds", "[1, 2]", "-p", "train.max_epochs", "1"]
    assert cli.main([*args, *extra]) == 0


@pytest.mark.notebook
def test_fold_jobs_merge_keyed_rows_and_derived_tables_say_partial_until_every_fold_ran(
    smoke_dataset, session_dirs, tmp_path
):
    import pandas as pd

    results_dir = tmp_path / "results"
    out = results_dir / "folds" / "E003"
    _run_30(session_dirs, results_dir, "--fold", "1")
    vs_naive = pd.read_csv(out / "promoter_cnn_vs_naive.tsv", sep="\t")
    assert vs_naive["completeness"].tolist() == ["PARTIAL: folds 1 of 1, 2 (fold(s) 2 not run yet)"]
    assert vs_naive["provenance"].tolist() == ["semi-synthetic"]
    _run_30(session_dirs, results_dir, "--fold", "2")
    vs_naive = pd.read_csv(out / "promoter_cnn_vs_naive.tsv", sep="\t")
    assert vs_naive["completeness"].tolist() == ["complete"] and vs_naive["cnn_pearson_r_sd"].notna().all()
    _run_30(session_dirs, results_dir)  # the notebook's own job: reads both models back, complete tables
    whole = notebooks.make_job(
        "30",
        "E003",
        "params/smoke.yaml",
        config.parse_overrides(
            [
                ("paths.data_dir", str(session_dirs["data_dir"])),
                ("paths.results_dir", str(results_dir)),
                ("paths.figures_dir", str(results_dir / "figures")),
                ("model.promoter_cnn.marks", "[H3K4me3]"),
                ("model.promoter_cnn.folds", "[1, 2]"),
                ("train.max_epochs", "1"),
            ]
        ),
        "folds",
    )
    assert notebooks.status(whole) == "done"
    complete = (out / "promoter_cnn_vs_naive.tsv").read_bytes()
    time.sleep(0.05)
    # rerunning one fold job after the complete run: the derived tables keep both folds ...
    _run_30(session_dirs, results_dir, "--fold", "1", "--force")
    assert (out / "promoter_cnn_vs_naive.tsv").read_bytes() == complete
    history = pd.read_csv(out / "promoter_cnn_history.tsv", sep="\t")
    assert sorted(set(history["fold"])) == [1, 2]
    # ... and the notebook's own job is stale: a fold's rows are newer than its summaries
    assert notebooks.status(whole) == "stale"


# -- 29.3 / 29.6: downloads: a truncated file is never "skipped"; offline is one line -----------------
def test_a_truncated_file_at_the_destination_is_never_skipped_as_present(tmp_path):
    import gzip

    from chromexp.data import download

    body = gzip.compress(b"chr1\t10\t46\tN\t1000\t+\n" * 500)
    dest = tmp_path / "raw" / "E003-H3K4me3.tagAlign.gz"
    dest.parent.mkdir()
    dest.write_bytes(body[: len(body) // 2])  # a cut-short copy (no published size or checksum)
    remote = download.RemoteFile("tagAlign", "https://example.org/E003-H3K4me3.tagAlign.gz", dest)
    fetched = []

    def fetcher(url, path):
        fetched.append(url)
        Path(path).write_bytes(body)

    for _ in range(2):  # ... not once, not on any later run
        with pytest.raises(download.DownloadError, match=r"E003-H3K4me3.tagAlign.gz exists but is damaged.*truncated"):
            download.fetch_file(remote, fetcher)
    assert dest.read_bytes() == body[: len(body) // 2] and not fetched  # reported, not silently replaced
    assert download.fetch_file(remote, fetcher, force=True) == "downloaded"
    assert download.fetch_file(remote, fetcher) == "skipped" and len(fetched) == 1  # recorded as verified
    dest.write_bytes(body[:-10])  # damaged after it was recorded: checked again, refused
    with pytest.raises(download.DownloadError, match="damaged"):
        download.fetch_file(remote, fetcher)


def test_an_offline_download_is_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    import socket
    import urllib.error

    from chromexp.data import download

    def offline(url, dest, **kwargs):
        raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(download, "urllib_fetcher", offline)
    monkeypatch.setattr(download.time, "sleep", lambda s: None)
    args = ["download", "--cells", "E003", "--marks", "H3K4me3", "--kinds", "tagAlign"]
    code = cli.main([*args, "-p", "paths.data_dir", str(tmp_path / "data")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "offline?" in err and "egg2.wustl.edu" in err and "E003-H3K4me3.tagAlign.gz" in err


# -- 29.1: chromexp never deletes a folder it did not create ------------------------------------------
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_ldsc_env_dir_pointing_at_a_users_folder_is_never_deleted(tmp_path, monkeypatch, how):
    from chromexp.analyses import ldsc

    mine = tmp_path / "my_analysis"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work\n")
    calls = []

    def no_network(*args, **kwargs):  # the old code deleted the folder, then tried to build the env here
        calls.append(args)
        raise OSError("no venv/pip in this test")

    monkeypatch.setattr(utils.subprocess, "run", no_network)
    monkeypatch.setattr(ldsc.subprocess, "run", no_network)
    if how == "environment":
        monkeypatch.setenv(ldsc.ENV_VAR, str(mine))
    with pytest.raises(ValueError, match=r"my_analysis .*holds files chromexp did not create.*never deletes") as err:
        ldsc.ensure_ldsc_env(mine if how == "argument" else None)
    assert (mine / "thesis.tex").read_text() == "years of work\n" and not calls
    assert "ldsc.env_dir" in str(err.value)
    # the shared builder refuses for every isolated environment (eir-dl's too)
    with pytest.raises(ValueError, match="never deletes"):
        utils.ensure_venv(mine, label="eir", install_steps=[["eir-dl"]], stamp={"eir": 1})
    assert (mine / "thesis.tex").read_text() == "years of work\n" and not calls


def test_folders_chromexp_made_are_rebuilt_and_empty_ones_used(tmp_path, monkeypatch):
    from chromexp.analyses import ldsc

    monkeypatch.setattr(utils.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(OSError("no venv here")))
    made = tmp_path / "env"
    utils.claim_folder(made, "a test environment")
    (made / "half-installed").write_text("x")
    with pytest.raises(ldsc.LdscError, match="no venv here"):  # removed (ours), then the build fails
        ldsc.ensure_ldsc_env(made)
    assert (made / utils.OWNER_MARKER).is_file() and not (made / "half-installed").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ldsc.LdscError, match="no venv here"):
        ldsc.ensure_ldsc_env(empty)
    assert (empty / utils.OWNER_MARKER).is_file()
    # the generated raw data: a non-empty folder without the generator's manifest is refused before any work
    mine = tmp_path / "raw"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine\n")
    params = load_params(None, files=[paths.repo_root() / "params" / "smoke.yaml"])
    with pytest.raises(ValueError, match=r"raw .*never deletes"):
        roadmap.generate(params, out_dir=mine, force=True)
    assert (mine / "notes.txt").read_text() == "mine\n"


# -- 29.5: a YAML alias bomb in a parameter file is refused ------------------------------------------
def test_a_yaml_alias_bomb_is_refused_with_a_clear_error(tmp_path):
    import resource

    # under a real key whose type check passes (a list), so the code before expanded it when it
    # fingerprinted the job's parameters (JSON): 9**10 strings
    levels = ['&a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("perturbation:\n  experiments: [" + ", ".join(levels) + "]\n")

    def limits():  # the code before tried to expand it: bounded here so the test ends either way
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))

    proc = subprocess.run(
        [sys.executable, "-m", "chromexp", "run", "60", "--cell", "E003", "-f", str(bomb), "--run-name", "bomb"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limits,
        env={**os.environ, "PYTHONPATH": str(paths.repo_root() / "lib")},
    )
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "bomb.yaml" in proc.stderr and "aliases (*a0) are not allowed" in proc.stderr and "line 2" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(ValueError, match="aliases"):
        config.parse_overrides([("marks", "[&m H3K4me3, *m]")])


# -- 29.4: notebooks covering every cell type are stale when an upstream table changes ----------------
def test_a_changed_upstream_table_makes_the_global_notebooks_stale(fake_repo, capsys):  # noqa: F811
    writer = (
        HEADER
        + PER_CELL_PARAMS
        + START
        + (
            "import pandas as pd\n"
            "pd.DataFrame({'effect': [1.0]}).to_csv(run.out_dir / 'perturbation_effects.tsv.gz', sep='\\t', index=False)\n"
        )
    )
    reader = (
        HEADER
        + GLOBAL_PARAMS
        + (
            "\n# %%\nfrom chromexp import runs\n"
            "run = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)\n"
            "print('read the effects')\n"
        )
    )
    (fake_repo / "notebooks" / "60_perturbation.py").write_text(writer)
    (fake_repo / "notebooks" / "70_eqtl_enrichment.py").write_text(reader)
    base = ["batch", "-f", "params/smoke.yaml", "--run-name", "t", "--cells", "E003"]
    assert cli.main([*base, "--notebooks", "60", "70"]) == 0
    assert cli.main([*base, "--notebooks", "70"]) == 0 and "1 skipped" in capsys.readouterr().out
    effects = fake_repo / "results" / "t" / "E003" / "perturbation_effects.tsv.gz"
    effects.write_text("effect\n2.0\n")  # notebook 60 rerun by hand, or a table edited
    job = notebooks.make_job("70", None, "params/smoke.yaml", {}, "t")
    assert notebooks.status(job) == "stale"
    assert cli.main([*base, "--notebooks", "70"]) == 0 and "1 ok" in capsys.readouterr().out


def test_notebook_15_is_stale_when_the_users_count_table_or_its_reads_change(tmp_path):
    """Notebook 15 reads ``real_e116.counts`` (a file named by a parameter) and the run's reads of
    ``real_e116.cell_type``: both enter its fingerprint (it declared no input before)."""
    counts = tmp_path / "my_counts.tsv"
    counts.write_text("chrom\tstart\tend\tH3K4me3\nchr1\t0\t10000\t3\n")
    overrides = {"real_e116": {"counts": str(counts)}, "paths": {"data_dir": str(tmp_path / "data")}}
    job = notebooks.make_job("15", None, "params/smoke.yaml", overrides, "t")
    raw = paths.raw_dir(job.params)
    raw.mkdir(parents=True)
    reads = raw / "E116-H3K4me3.tagAlign.gz"
    reads.write_bytes(b"reads")
    (raw / "E003-H3K4me3.tagAlign.gz").write_bytes(b"another cell type")
    assert set(job.input_files()) == {counts, reads}
    before = job.fingerprint
    counts.write_text("chrom\tstart\tend\tH3K4me3\nchr1\t0\t10000\t30\n")  # the user's table changed
    assert job.fingerprint != before
    before = job.fingerprint
    reads.write_bytes(b"other reads")
    assert job.fingerprint != before


# -- 29.6: errors that name the file -------------------------------------------------------------------
def _truncated_effects(run_dir: Path, cell: str = "E003") -> Path:
    import gzip

    from chromexp.results import EFFECT_COLUMNS

    rows = "".join("\t".join(["1"] * len(EFFECT_COLUMNS)) + "\n" for _ in range(4000))
    body = gzip.compress(("\t".join(EFFECT_COLUMNS) + "\n" + rows).encode())
    path = run_dir / cell / "perturbation_effects.tsv.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body[: len(body) // 2])
    return path


def test_truncated_results_tables_in_notebooks_70_80_90_name_the_file(tmp_path):
    from chromexp.analyses import effects, summary

    path = _truncated_effects(tmp_path)
    readers = {  # notebooks 70 and 80 read through effects.read_run_effects, 90 through summary
        "70/80 (effects.read_run_effects)": lambda: effects.read_run_effects(tmp_path, ["E003"]),
        "one table (effects.read_effects)": lambda: effects.read_effects(path),
    }
    for name, read in readers.items():
        with pytest.raises(ValueError, match=r"perturbation_effects\.tsv\.gz cannot be read: it is truncated") as err:
            read()
        assert str(path) in str(err.value), name
    # notebook 90 keeps drawing the other panels: the table is left out, the reason (naming the file) recorded
    (why,) = summary.load_run_tables(tmp_path).invalid["perturbation"]
    assert str(path) in why and "cannot be read: it is truncated" in why


@pytest.mark.parametrize("damage", ["xlsx_as_tsv_gz", "truncated", "binary"])
def test_the_eqtl_reader_names_the_file_of_a_wrong_or_truncated_table(tmp_path, damage):
    import gzip
    import zipfile

    from chromexp.data import eqtl

    path = tmp_path / "eqtls.tsv.gz"
    if damage == "xlsx_as_tsv_gz":
        with zipfile.ZipFile(path, "w") as z:  # what an .xlsx is
            z.writestr("xl/workbook.xml", "<workbook/>")
        message = "zip archive"
    elif damage == "truncated":
        lines = "".join(f"Lung\tENSG{i:011d}.1\tchr1_{1000 + i}_A_G_b38\t0.5\n" for i in range(3000))
        body = gzip.compress(("tissue\tgene\tvariant\tpip\n" + lines).encode())
        path.write_bytes(body[: len(body) // 2])
        message = "truncated"
    else:
        path = tmp_path / "eqtls.tsv"
        path.write_bytes(b"tissue\tgene\tvariant\tpip\n\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")  # an old .xls header
        message = "not UTF-8 text"
    with pytest.raises(ValueError, match=message) as err:
        eqtl.read_fine_mapped_eqtls(path)
    assert str(path) in str(err.value)


# -- 29.7: kill -9 on chromexp batch takes its jobs and kernels with it --------------------------------
def test_kill_9_on_batch_takes_its_jobs_kernels_and_workers_with_it(fake_repo):  # noqa: F811
    import psutil

    (fake_repo / "notebooks" / "10_sleep.py").write_text(SLOW)
    env = {**os.environ, "CHROMEXP_ROOT": str(fake_repo), "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("CHROMEXP_RESULTS_DIR", None)
    cmd = [sys.executable, "-m", "chromexp", "batch", "--notebooks", "10", "--cells", "E003"]
    proc = subprocess.Popen(
        [*cmd, "-f", "params/smoke.yaml", "--run-name", "t"],
        cwd=fake_repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = fake_repo / "results" / "t" / "E003" / "pids.json"
    deadline = time.time() + 180
    while not pid_file.is_file():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail("the job did not start")
        time.sleep(0.3)
    jobs = [p.pid for p in psutil.Process(proc.pid).children()]  # the `chromexp run` job (its own session)
    pids = jobs + json.loads(pid_file.read_text())  # + its kernel and the kernel's worker
    proc.kill()  # SIGKILL: the batch runs no handler
    proc.wait(timeout=30)
    deadline = time.time() + 30
    while any(_alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.2)
    survivors = [p for p in pids if _alive(p)]
    for p in survivors:  # never leave them running, whatever the outcome
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    assert jobs and not survivors, "job, kernel or worker still running after kill -9 on the batch"
    text = (fake_repo / "results" / "t" / "E003" / "10_sleep.FAILED.txt").read_text()
    assert "stopped by signal SIGTERM" in text  # the job stopped cleanly, with its FAILED files
