"""The ``chromexp`` command (also ``python -m chromexp``).

::

    chromexp list                                       notebooks, their scope and parameters
    chromexp run 30 --cell E003 -f params/demo.yaml     one notebook, one cell type
    chromexp batch --notebooks 10 30 --cells E003 E066 -f params/demo.yaml --jobs 2
    chromexp params --cell E003 -f params/demo.yaml     show the merged parameters
    chromexp download --cells E003 --kinds tagAlign expression --dry-run   real Roadmap inputs
    chromexp plan --throughput bench/results/gpu_grid.json   the paper's model grid in device-hours

Everything is validated (notebooks, cell types, parameter files and keys) before anything runs.
``batch`` runs (notebook × cell type) jobs in parallel processes, respecting the notebook order
(a cell type's notebook 30 starts after its notebook 10; global notebooks such as 00 wait for
everything before them), resumes (finished jobs with unchanged inputs are skipped unless
``--force``), and ends with a summary table and a non-zero exit status if anything failed.
SIGTERM or Ctrl-C stops it cleanly: running jobs (their whole process trees: papermill, kernel,
workers) are stopped, get FAILED files, and the summary is printed before exiting with 128 + signal.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from .. import config
from ..utils import get_logger
from . import notebooks

log = get_logger("chromexp.runner.cli")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


EXAMPLES = """\
examples:
  chromexp list                                            the notebooks, their scope and parameters
  chromexp run 30 --cell E003 -f params/demo.yaml          one notebook (also: promoter_model, 30_promoter_model)
  chromexp batch --cells E003 E066 -f params/demo.yaml --jobs 2      every notebook for two cell types
  chromexp params --cell E003 -f params/roadmap_E003.yaml  the merged parameters of a run
  chromexp download --cells E003 --dry-run                 what real data would be fetched, and how much
  chromexp download --kinds ldsc                           notebook 80's LDSC resources and GWAS files
  chromexp plan                                            the paper's model grid in device-hours

Running on your own data: docs/real-data.md. Each command has its own --help."""


def _parser() -> argparse.ArgumentParser:
    from importlib.metadata import PackageNotFoundError, version

    try:
        __version__ = version("chromexp")
    except PackageNotFoundError:  # a source tree that was not installed
        __version__ = "unknown"

    parser = argparse.ArgumentParser(
        prog="chromexp",
        description=__doc__.split("\n\n")[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chromexp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "-f", "--params-file", help="YAML run file merged over params/defaults.yaml (e.g. params/demo.yaml)"
        )
        p.add_argument(
            "-p",
            "--param",
            nargs=2,
            action="append",
            default=[],
            metavar=("KEY", "VALUE"),
            help="override one parameter, dotted key and YAML value (e.g. -p train.max_epochs 5); repeatable",
        )
        p.add_argument("--run-name", help="results/<RUN_NAME>/... (default: run_name of the parameters)")

    run = sub.add_parser(
        "run",
        help="execute one notebook for one cell type",
        epilog="examples:\n  chromexp run 30 --cell E003 -f params/demo.yaml\n"
        "  chromexp run promoter_model --cell e003 -f params/demo.yaml -p train.max_epochs 5\n"
        "  chromexp run 90 -f params/demo.yaml            (all-cell-type notebooks take no --cell)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("notebook", help="number (30), name (30_promoter_model or promoter_model) or path")
    run.add_argument("--cell", help="cell type id, e.g. E003 (per-cell-type notebooks; params/cells/<ID>.yaml)")
    run.add_argument(
        "--fold",
        type=_positive_int,
        help="run one chromosome fold of a per-fold notebook (30, 40, 50): writes NN_name.foldK.ipynb",
    )
    run.add_argument("--force", action="store_true", help="run even if an up-to-date result exists")
    run.add_argument("-q", "--quiet", action="store_true", help="do not echo cell outputs")
    common(run)

    batch = sub.add_parser(
        "batch",
        help="execute many (notebook × cell type) jobs in parallel, resumably",
        epilog="examples:\n  chromexp batch -f params/demo.yaml --jobs 2                 (= make demo)\n"
        "  chromexp batch --notebooks 10 30 --cells E003 E066 -f params/demo.yaml\n"
        "  chromexp batch --notebooks 30 --cells E003 -f params/demo.yaml --per-fold",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("--notebooks", nargs="+", help="numbers or names (default: every notebook, in order)")
    batch.add_argument("--cells", nargs="+", help="cell type ids (default: cell_types of the parameters)")
    batch.add_argument("--jobs", type=_positive_int, default=1, help="parallel processes (default 1)")
    batch.add_argument("--force", action="store_true", help="rerun jobs whose results are up to date")
    batch.add_argument(
        "--per-fold",
        action="store_true",
        help="one job per chromosome fold for notebooks 30/40/50 (then the notebook reads their models back)",
    )
    common(batch)

    sub.add_parser("list", help="list the notebooks")

    from ..data.download import DEFAULT_KINDS, KIND_HELP

    kinds_help = "\n".join(f"  {k:<12} {v}" for k, v in KIND_HELP.items())
    dl = sub.add_parser(
        "download",
        help="download the real inputs (Roadmap, 3DIV, eQTLs, LDSC) into data/",
        description="Download the real inputs into the layout the notebooks read (docs/real-data.md). "
        "Every file is verified (size/checksum where published, gzip integrity), written atomically "
        "and skipped when present, so a rerun resumes.",
        epilog=f"kinds (--kinds; default: {' '.join(DEFAULT_KINDS)}):\n{kinds_help}\n\n"
        "examples:\n  chromexp download --cells E003 --dry-run\n"
        "  chromexp download --cells E003 E066 --kinds tagAlign expression pchic\n"
        "  chromexp download --kinds ldsc --dry-run",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dl.add_argument("--cells", nargs="+", help="cell type ids (default: every cell type of params/cells/)")
    dl.add_argument("--marks", nargs="+", help="histone marks (default: all 7)")
    dl.add_argument("--kinds", nargs="+", default=None, choices=list(KIND_HELP), metavar="KIND",
                    help="what to fetch (listed below)")  # fmt: skip
    dl.add_argument("--dry-run", action="store_true", help="list what would be fetched (kind, name, size, where)")
    dl.add_argument("--force", action="store_true", help="replace files that are present")
    common(dl)

    pl = sub.add_parser("plan", help="the paper's model grid and its device-hours from measured throughput")
    pl.add_argument(
        "--throughput",
        help="JSON result of bench/gpu_grid.py measured on the device to plan for "
        "(default: the newest committed bench/results/gpu_grid_*.json)",
    )
    pl.add_argument("--epochs-per-model", type=float, default=40.0, help="assumed mean epochs before early stopping")
    pl.add_argument("--cells", nargs="+", help="cell type ids (default: cell_types of params/defaults.yaml)")

    show = sub.add_parser("params", help="print the merged parameters")
    show.add_argument("--cell", help="cell type id (e.g. E003)")
    common(show)
    return parser


def _overrides(pairs: Sequence[Sequence[str]]) -> dict:
    return config.parse_overrides(pairs)


class Stopped(KeyboardInterrupt):
    """Raised in a job process by SIGTERM, so its FAILED files are written on the way out."""


def _stop_on_sigterm(signum, frame):  # pragma: no cover - exercised through a subprocess
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _terminate_children(os.getpid(), grace=3.0)
    raise Stopped(f"stopped by signal {signal.Signals(signum).name}")


def _terminate_children(pid: int, grace: float) -> None:
    """SIGTERM every descendant of ``pid`` (kernel, its workers), SIGKILL those alive after ``grace`` s."""
    import psutil

    try:
        procs = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass


def cmd_run(args: argparse.Namespace) -> int:
    """Execute one notebook for one cell type (``chromexp run``).

    Returns
    -------
    int
        Exit status: 0 when it ran or was already up to date, 75 when another process holds the
        job's lock (try again later), 130 after Ctrl-C or SIGTERM, 1 on any other failure.
    """
    nb = notebooks.resolve(args.notebook)
    if args.cell and not nb.per_cell_type:
        print(
            f"chromexp run: warning: {nb.stem} runs on all cell types at once; --cell {args.cell} is ignored "
            "(it reads the run's cell types from the parameters).",
            file=sys.stderr,
        )
    job = notebooks.make_job(
        nb, args.cell if nb.per_cell_type else None, args.params_file, _overrides(args.param), args.run_name,
        fold=args.fold,
    )  # fmt: skip
    state = notebooks.status(job)
    if state == "done" and not args.force:
        print(f"{job.name}: up to date ({job.output}); use --force to rerun")
        return 0
    problem = notebooks.preflight_message([job])
    if problem is not None:
        print(f"chromexp run: {problem}", file=sys.stderr)
        return 2
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        out = notebooks.execute(job, log_output=not args.quiet, progress_bar=not args.quiet)
    except notebooks.JobLocked as err:
        print(f"chromexp run: error: {err}", file=sys.stderr)
        return 75  # EX_TEMPFAIL: try again later
    except (Exception, KeyboardInterrupt) as err:  # papermill raises PapermillExecutionError with the traceback
        print(f"FAILED {job.name}: {type(err).__name__}: {err}".rstrip(), file=sys.stderr)
        if job.failed.is_file():
            print(f"partial notebook: {job.failed}", file=sys.stderr)
        if job.failed_message.is_file():
            print(f"error message: {job.failed_message}", file=sys.stderr)
        return 130 if isinstance(err, KeyboardInterrupt) else 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    print(f"{job.name}: ok -> {out}")
    return 0


@dataclass
class BatchResult:
    """One job of ``chromexp batch`` and its outcome.

    ``state`` is ``pending``, ``ok``, ``skipped``, ``failed`` or ``blocked`` (a job it depends on
    did not succeed); ``seconds`` its run time; ``deps`` the indices of the earlier jobs it waits for.
    """

    job: notebooks.Job
    state: str = "pending"  # ok | skipped | failed | blocked
    seconds: float = 0.0
    note: str = ""
    deps: list[int] = field(default_factory=list)


def plan_jobs(
    notebook_specs: Sequence[str] | None,
    cells: Sequence[str] | None,
    params_file: str | None,
    overrides: dict,
    run_name: str | None,
    per_fold: bool = False,
) -> list[BatchResult]:
    """Validate and order the jobs of a batch, with their dependencies (indices of earlier jobs).

    A cell type's notebook waits for its own earlier notebooks and for the global ones before it
    (except :data:`~chromexp.runner.notebooks.SIDE_NOTEBOOKS`, which no per-cell-type notebook reads);
    a global notebook waits for everything before it. With ``per_fold``, a notebook of
    :data:`chromexp.runner.notebooks.FOLD_PARAMETERS` that trains two folds or more gets one job per fold
    first (with the notebook's dependencies), and the notebook's own job waits for them too.
    """
    nbs = [notebooks.resolve(s) for s in notebook_specs] if notebook_specs else notebooks.discover()
    if not nbs:
        raise ValueError("No notebooks to run (notebooks/NN_name.py).")
    nbs = sorted({nb.number: nb for nb in nbs}.values(), key=lambda nb: nb.number)
    if cells is None:
        cells = config.load_params(None, files=[params_file], overrides=overrides)["cell_types"]
    cells = [config.check_cell_type(cell) for cell in cells]  # e003 -> E003; unknown: did you mean
    results: list[BatchResult] = []
    for nb in nbs:
        for cell in cells if nb.per_cell_type else [None]:
            job = notebooks.make_job(nb, cell, params_file, overrides, run_name)
            deps = [
                i
                for i, r in enumerate(results)
                if r.job.notebook.number < nb.number
                and (
                    cell is None
                    or r.job.cell_type == cell
                    or (r.job.cell_type is None and r.job.notebook.stem not in notebooks.SIDE_NOTEBOOKS)
                )
            ]
            folds = (
                notebooks.notebook_folds(nb, job.params) if per_fold and nb.stem in notebooks.FOLD_PARAMETERS else []
            )
            fold_jobs = []
            for fold in folds if len(folds) > 1 else []:
                fold_jobs.append(len(results))
                fold_job = notebooks.make_job(nb, cell, params_file, overrides, run_name, fold=fold)
                results.append(BatchResult(fold_job, deps=list(deps)))
            results.append(BatchResult(job, deps=deps + fold_jobs))
    return results


def threads_env(jobs: int) -> dict[str, str]:
    """Environment of one job: its share of the CPU cores as OpenMP/MKL threads.

    Several jobs each using every core oversubscribe the machine; torch's many small operations
    then slow down several-fold (measured: 4–5x for the promoter CNN with 2 jobs on 2 cores). A
    thread count the user set explicitly is kept.
    """
    env = dict(os.environ)
    share = str(max(1, (os.cpu_count() or 1) // max(1, jobs)))
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, share)
    return env


class _Stop:
    """What ``run_batch`` shares with its signal handler: the running job processes and the stop request."""

    def __init__(self):
        self.signal: int | None = None
        self.procs: dict[int, subprocess.Popen] = {}
        self.trees: dict[int, list] = {}  # job process pid -> its descendants when the stop came
        self.lock = threading.Lock()

    def request(self, signum, frame=None) -> None:
        import psutil

        first = self.signal is None
        self.signal = signum
        with self.lock:
            procs = list(self.procs.values())
        for proc in procs:
            if first:  # remember the tree: descendants of a job that dies first are reparented
                try:
                    self.trees[proc.pid] = psutil.Process(proc.pid).children(recursive=True)
                except psutil.Error:
                    self.trees[proc.pid] = []
            # each job is its own session/process group; the job forwards SIGTERM to its kernel
            try:
                os.killpg(proc.pid, signal.SIGTERM if first else signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if first:
            print(
                f"\nchromexp batch: {signal.Signals(signum).name}: stopping {len(procs)} running job(s) "
                "(again to kill them at once)",
                file=sys.stderr,
                flush=True,
            )


def _last_line(path) -> str:
    try:
        lines = [x.strip() for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def _kill_all(procs) -> None:
    import psutil

    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _finish_stopped(result: BatchResult, signum: int) -> None:
    """FAILED files for a job the batch stopped, if the job could not write them itself."""
    job = result.job
    if job.failed_message.is_file() and job.failed_message.stat().st_size > 0:
        return
    err = Stopped(f"stopped by signal {signal.Signals(signum).name} sent to chromexp batch")
    notebooks.record_failure(job, err, result.seconds)


def _run_subprocess(
    result: BatchResult, force: bool, params_file: str | None, pairs, jobs: int, stop: _Stop | None = None
) -> BatchResult:
    job = result.job
    cmd = [sys.executable, "-m", "chromexp", "run", job.notebook.stem, "--run-name", job.run_name, "-q"]
    if job.cell_type:
        cmd += ["--cell", job.cell_type]
    if job.fold is not None:
        cmd += ["--fold", str(job.fold)]
    if params_file:
        cmd += ["-f", str(params_file)]
    for key, value in pairs:
        cmd += ["-p", key, value]
    if force:
        cmd.append("--force")
    job.log_file.parent.mkdir(parents=True, exist_ok=True)
    stop = stop or _Stop()
    start = time.perf_counter()
    with open(job.log_file, "w") as logf:
        with stop.lock:
            if stop.signal is not None:
                result.state, result.note = "stopped", "not started (batch stopped)"
                return result
            # own session: a Ctrl-C in the terminal reaches the batch only, which stops jobs in order
            proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                cwd=str(notebooks.paths.repo_root()),
                env=threads_env(jobs),
                start_new_session=True,
            )
            stop.procs[id(result)] = proc
        try:
            returncode = proc.wait()
        finally:
            if stop.signal is not None:
                # the job's own SIGTERM handler stops its kernel; sweep whatever outlived it
                _kill_all(stop.trees.get(proc.pid, []))
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            with stop.lock:
                stop.procs.pop(id(result), None)
    result.seconds = time.perf_counter() - start
    if returncode == 0:
        result.state, result.note = "ok", str(job.output)
    elif stop.signal is not None:
        result.state = "failed"
        _finish_stopped(result, stop.signal)
        result.note = f"stopped ({signal.Signals(stop.signal).name}); see {job.failed_message}"
    else:
        result.state = "failed"
        if job.failed_message.exists():
            result.note = f"see {job.failed_message}"
        else:
            last = _last_line(job.log_file)
            result.note = f"see {job.log_file}" + (f": {last}" if last else "")
    return result


def run_batch(
    results: list[BatchResult], jobs: int, force: bool, params_file: str | None, pairs, stop: _Stop | None = None
) -> list[BatchResult]:
    """Execute planned jobs with at most ``jobs`` processes at once; fill in states and durations.

    ``stop`` (set by the signal handler of :func:`cmd_batch`) ends the batch early: no new job
    starts, running ones are stopped and marked failed, the rest are marked ``stopped``.
    """
    from tqdm.auto import tqdm

    stop = stop or _Stop()
    todo = [i for i, r in enumerate(results) if r.state == "pending"]
    bar = tqdm(total=len(results), desc="chromexp batch", unit="job", initial=len(results) - len(todo))
    lock = threading.Lock()
    running: dict[Future, int] = {}
    checked: set[int] = set()
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while todo or running:
            if stop.signal is not None:
                for i in todo:
                    results[i].state, results[i].note = "stopped", "not started (batch stopped)"
                    bar.update(1)
                todo = []
            for i in list(todo):
                deps = [results[d].state for d in results[i].deps]
                if any(s in ("failed", "blocked") for s in deps):
                    bad = [results[d].job.name for d in results[i].deps if results[d].state in ("failed", "blocked")]
                    results[i].state, results[i].note = "blocked", f"needs {', '.join(bad)}"
                    todo.remove(i)
                    bar.update(1)
                    continue
                ready = all(s in ("ok", "skipped") for s in deps)
                if ready and i not in checked:
                    # checked once its dependencies finished: notebook 00 or 10 may have changed its inputs
                    checked.add(i)
                    # a job whose dependency ran again in this batch reads new results: rerun it too
                    # (as make/Snakemake do), even if its own fingerprint is unchanged
                    upstream_ran = any(results[d].state == "ok" for d in results[i].deps)
                    if not force and not upstream_ran and notebooks.status(results[i].job) == "done":
                        todo.remove(i)
                        results[i].state, results[i].note = "skipped", "up to date"
                        bar.update(1)
                        continue
                if ready and len(running) < max(1, jobs):
                    todo.remove(i)
                    results[i].state = "running"
                    running[pool.submit(_run_subprocess, results[i], force, params_file, pairs, jobs, stop)] = i
            if not running:
                continue
            done, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for fut in done:
                i = running.pop(fut)
                try:
                    fut.result()
                except Exception as err:  # the runner itself failed (not the notebook)
                    results[i].state, results[i].note = "failed", f"{type(err).__name__}: {err}"
                with lock:
                    bar.set_postfix_str(f"last: {results[i].job.name} {results[i].state}")
                    bar.update(1)
    bar.close()
    return results


def summary_table(results: Sequence[BatchResult]) -> str:
    """A plain-text table of job, state, seconds and note, with totals."""
    rows = [("job", "state", "seconds", "note")]
    rows += [(r.job.name, r.state, f"{r.seconds:.1f}" if r.state in ("ok", "failed") else "-", r.note) for r in results]
    widths = [max(len(row[k]) for row in rows) for k in range(3)]
    lines = ["  ".join(row[k].ljust(widths[k]) for k in range(3)) + "  " + row[3] for row in rows]
    counts = {s: sum(r.state == s for r in results) for s in ("ok", "skipped", "failed", "blocked")}
    if any(r.state == "stopped" for r in results):
        counts["stopped"] = sum(r.state == "stopped" for r in results)
    lines.insert(1, "-" * len(lines[0]))
    lines.append("-" * len(lines[0]))
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) + f" ({len(results)} jobs)")
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace) -> int:
    """Run many (notebook × cell type) jobs in parallel (``chromexp batch``), then print a summary.

    Returns
    -------
    int
        Exit status: 0 when every job ran or was skipped, 1 when any failed or was blocked,
        128 + the signal number when SIGINT or SIGTERM stopped the batch.
    """
    overrides = _overrides(args.param)
    results = plan_jobs(args.notebooks, args.cells, args.params_file, overrides, args.run_name, per_fold=args.per_fold)
    problem = notebooks.preflight_message([r.job for r in results])
    if problem is not None:
        print(f"chromexp batch: {problem}", file=sys.stderr)
        return 2
    print(f"{len(results)} job(s), up to {args.jobs} at a time", flush=True)
    stop = _Stop()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, stop.request)
    try:
        run_batch(results, args.jobs, args.force, args.params_file, args.param, stop)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(summary_table(results), flush=True)
    if stop.signal is not None:
        print(f"chromexp batch: stopped by {signal.Signals(stop.signal).name}", file=sys.stderr)
        return 128 + int(stop.signal)
    return 1 if any(r.state in ("failed", "blocked") for r in results) else 0


def cmd_list(args: argparse.Namespace) -> int:
    """Print every notebook with its scope and parameters (``chromexp list``); return 0."""
    for nb in notebooks.discover():
        scope = "per cell type" if nb.per_cell_type else "all cell types"
        folds = f"  (--fold: {notebooks.FOLD_PARAMETERS[nb.stem]})" if nb.stem in notebooks.FOLD_PARAMETERS else ""
        print(f"{nb.number}  {nb.stem:<32} {scope:<15} parameters: {', '.join(nb.parameters)}{folds}")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    """Print the merged parameters of a cell type as YAML (``chromexp params``); return 0."""
    import yaml

    params = config.load_params(args.cell, files=[args.params_file], overrides=_overrides(args.param))
    print(yaml.safe_dump(params, sort_keys=False), end="")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the paper's model grid and its device-hours from a measured throughput (``chromexp plan``); return 0."""
    from . import scale

    cells = [config.check_cell_type(c) for c in (args.cells or config.load_params(None)["cell_types"])]
    source = args.throughput
    if source is None:
        source = newest_grid_measurement()
        print(f"using {source} (the newest committed bench/gpu_grid.py measurement; --throughput FILE to choose)")
    throughput = scale.read_throughput(source)
    table = scale.estimate(scale.paper_grid(cells), throughput, epochs_per_model=args.epochs_per_model)
    device = throughput.get("gpu") or throughput.get("device", "?")
    if throughput.get("tiny"):
        print("note: this throughput was measured at the tiny CI size; measure at full size for a real plan.")
    print(scale.format_plan(table, device, args.epochs_per_model))
    return 0


def newest_grid_measurement() -> str:
    """The newest ``bench/results/gpu_grid_*.json`` (by the date in its name, then its name)."""
    import re

    found = sorted(
        (notebooks.paths.repo_root() / "bench" / "results").glob("gpu_grid_*.json"),
        key=lambda p: (re.findall(r"\d{4}-\d{2}-\d{2}", p.name)[-1:] or [""], p.name),
    )
    if not found:
        raise ValueError(
            "No bench/results/gpu_grid_*.json: measure one (python bench/gpu_grid.py) or pass --throughput."
        )
    root = notebooks.paths.repo_root()
    return str(found[-1].relative_to(root)) if found[-1].is_relative_to(root) else str(found[-1])


def cmd_download(args: argparse.Namespace) -> int:
    """Download the real Roadmap / 3DIV inputs (``chromexp download``); return 0.

    With ``--dry-run``, print the manifest and fetch nothing; otherwise install the vendored
    annotations, download what is missing (or everything with ``--force``) and print the table.
    """
    from ..data import download

    overrides = _overrides(args.param)
    overrides.setdefault("data", {}).setdefault("source", "roadmap")
    params = config.load_params(None, files=[args.params_file], overrides=overrides)
    kinds = list(args.kinds or download.DEFAULT_KINDS)
    roadmap_kinds = [k for k in kinds if k != "ldsc"]
    files = download.roadmap_manifest(params, args.cells, args.marks, roadmap_kinds) if roadmap_kinds else []
    if "ldsc" in kinds:
        files += download.ldsc_manifest(download.ldsc_dir(params))
    if args.dry_run:
        print(download.format_dry_run(files))
        return 0
    tables = []
    if roadmap_kinds:
        download.install_vendored_annotations(params)
        tables.append(download.download_roadmap(params, args.cells, args.marks, roadmap_kinds, force=args.force))
    if "ldsc" in kinds:
        tables.append(download.download_ldsc(download.ldsc_dir(params), force=args.force))
    import pandas as pd

    print(pd.concat(tables, ignore_index=True).to_string(index=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for invalid arguments or parameters)."""
    args = _parser().parse_args(argv)
    handler = {
        "run": cmd_run,
        "batch": cmd_batch,
        "list": cmd_list,
        "params": cmd_params,
        "download": cmd_download,
        "plan": cmd_plan,
    }[args.command]
    try:
        return handler(args)
    except ValueError as err:
        print(f"chromexp {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
