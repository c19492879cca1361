"""The runner: `chromexp run` / `chromexp batch` on a throw-away repository with tiny notebooks.

The notebooks here only sleep, record when they ran, or fail on purpose, so the tests check the
machinery (parallelism, resume, --force, failures, validation) in seconds.
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

from chromexp.runner import cli, notebooks

HEADER = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
"""

PER_CELL_PARAMS = """
# %% tags=["parameters"]
CELL_TYPE = None  # Roadmap EID
RUN_NAME = None  # run folder
PARAMS_FILE = None  # run file
PARAMS = {}  # overrides
"""

GLOBAL_PARAMS = """
# %% tags=["parameters"]
RUN_NAME = None  # run folder
PARAMS_FILE = None  # run file
PARAMS = {}  # overrides
"""

START = """
# %%
import json, time
from chromexp import runs
run = runs.start(cell_type=CELL_TYPE, run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS)
"""

NOTEBOOKS = {
    "00_global.py": HEADER
    + GLOBAL_PARAMS
    + "\n# %%\nfrom chromexp import runs\nrun = runs.start(run_name=RUN_NAME, params_file=PARAMS_FILE, overrides=PARAMS, require_cell_type=False)\n",
    "10_sleep.py": HEADER
    + PER_CELL_PARAMS
    + START
    + "t0 = time.time()\ntime.sleep(1.5)\n(run.out_dir / 'timing.json').write_text(json.dumps([t0, time.time()]))\n",
    "20_maybe_fail.py": HEADER
    + PER_CELL_PARAMS
    + START
    + "if CELL_TYPE == 'E066':\n    raise RuntimeError('deliberate failure for E066')\n",
    "30_after.py": HEADER + PER_CELL_PARAMS + START + "print('after', CELL_TYPE)\n",
}


@pytest.fixture
def fake_repo(tmp_path, monkeypatch, repo):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    shutil.copy(repo / "pyproject.toml", root / "pyproject.toml")
    shutil.copytree(repo / "params", root / "params")
    for name, text in NOTEBOOKS.items():
        (root / "notebooks" / name).write_text(text)
    monkeypatch.setenv("CHROMEXP_ROOT", str(root))
    monkeypatch.chdir(root)  # relative -f paths resolve against the working directory first
    monkeypatch.delenv("CHROMEXP_RESULTS_DIR", raising=False)
    return root


def batch(capsys, *args):
    code = cli.main(["batch", "-f", "params/smoke.yaml", "--run-name", "t", *args])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_batch_parallel_resume_force(fake_repo, capsys):
    code, out = batch(capsys, "--notebooks", "10", "--cells", "E003", "E116", "--jobs", "2")
    assert code == 0, out
    assert "2 ok" in out
    spans = [json.loads((fake_repo / "results" / "t" / c / "timing.json").read_text()) for c in ("E003", "E116")]
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], f"jobs did not overlap: {spans}"
    executed = fake_repo / "results" / "t" / "E003" / "10_sleep.ipynb"
    assert executed.is_file()
    assert not list((fake_repo / "results").rglob("*.running.ipynb"))
    assert not list((fake_repo / "results").rglob("*.lock"))  # job locks exist only while a job runs

    start = time.perf_counter()
    code, out = batch(capsys, "--notebooks", "10", "--cells", "E003", "E116", "--jobs", "2")
    assert code == 0 and "2 skipped" in out and "0 ok" in out
    assert time.perf_counter() - start < 10

    code, out = batch(capsys, "--notebooks", "10", "--cells", "E003", "--force")
    assert code == 0 and "1 ok" in out
    assert json.loads((fake_repo / "results" / "t" / "E003" / "timing.json").read_text())[0] > spans[0][0]


def test_failure_is_named_blocks_dependents_and_leaves_no_finished_file(fake_repo, capsys):
    code, out = batch(capsys, "--cells", "E003", "E066", "--jobs", "2")
    assert code == 1
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines() if "[" in line}
    assert "failed" in lines["20_maybe_fail [E066]"]
    assert "blocked" in lines["30_after [E066]"]
    assert " ok " in lines["30_after [E003]"] and " ok " in lines["00_global [all]"]
    e066 = fake_repo / "results" / "t" / "E066"
    assert not (e066 / "20_maybe_fail.ipynb").exists()
    assert (e066 / "20_maybe_fail.FAILED.ipynb").is_file()
    assert "deliberate failure for E066" in (e066 / "20_maybe_fail.FAILED.txt").read_text()
    assert not (e066 / "30_after.ipynb").exists()

    # resume: only the failed job and the one it blocked are attempted again
    code, out = batch(capsys, "--cells", "E003", "E066", "--jobs", "2")
    assert code == 1 and "5 skipped" in out and "1 failed" in out and "1 blocked" in out


def test_a_rerun_upstream_job_reruns_its_dependants(fake_repo, capsys):
    """Notebook 30 reads what 10 wrote: when 10 runs again (forced or stale), 30 is not skipped."""
    assert batch(capsys, "--notebooks", "10", "30", "--cells", "E003")[0] == 0
    code, out = batch(capsys, "--notebooks", "10", "30", "--cells", "E003")
    assert code == 0 and "2 skipped" in out
    code, out = batch(capsys, "--notebooks", "10", "--cells", "E003", "--force")
    assert code == 0 and "1 ok" in out
    code, out = batch(capsys, "--notebooks", "30", "--cells", "E003")  # 10 did not run in this batch
    assert code == 0 and "1 skipped" in out
    (fake_repo / "notebooks" / "10_sleep.py").write_text(NOTEBOOKS["10_sleep.py"] + "# edited\n")
    code, out = batch(capsys, "--notebooks", "10", "30", "--cells", "E003")  # 10 stale; 30's own inputs unchanged
    lines = {line.split("  ")[0].strip(): line for line in out.splitlines() if "[" in line}
    assert code == 0 and " ok " in lines["10_sleep [E003]"] and " ok " in lines["30_after [E003]"], out


def test_changed_parameters_make_a_result_stale(fake_repo, capsys):
    assert batch(capsys, "--notebooks", "30", "--cells", "E003")[0] == 0
    job = notebooks.make_job("30", "E003", "params/smoke.yaml", {}, "t")
    assert notebooks.status(job) == "done"
    changed = notebooks.make_job("30", "E003", "params/smoke.yaml", {"seed": 1}, "t")
    assert notebooks.status(changed) == "stale"
    code, out = batch(capsys, "--notebooks", "30", "--cells", "E003", "-p", "seed", "1")
    assert code == 0 and "1 ok" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["batch", "--notebooks", "77"], "Unknown notebook '77'"),
        (["batch", "--cells", "E999"], "Unknown cell type 'E999'"),
        (["batch", "-f", "params/none.yaml"], "does not exist"),
        (["batch", "-p", "train.nope", "1"], "Unknown parameter 'train.nope'"),
        (["run", "10"], "runs per cell type"),
        (["run", "10", "--cell", "E003", "-p", "seed", "x"], "should be of type int"),
    ],
)
def test_invalid_requests_fail_before_anything_runs(fake_repo, capsys, args, message):
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err
    assert not (fake_repo / "results").exists()


def test_run_one_notebook_and_list(fake_repo, capsys):
    assert cli.main(["run", "30_after", "--cell", "E116", "-f", "params/smoke.yaml", "-q"]) == 0
    out = fake_repo / "results" / "smoke" / "E116" / "30_after.ipynb"
    assert out.is_file()
    import nbformat

    nb = nbformat.read(out, as_version=4)
    assert nb.metadata["chromexp"]["cell_type"] == "E116"
    assert any("after E116" in "".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    capsys.readouterr()
    assert cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert "00_global" in listing and "all cell types" in listing and "per cell type" in listing


def test_download_dry_run_lists_real_inputs_without_fetching(capsys, tmp_path):
    code = cli.main(
        ["download", "--cells", "E066", "--marks", "H3K27ac", "--dry-run", "-p", "paths.data_dir", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "E066-H3K27ac.tagAlign.gz" in out and "57epigenomes.RPKM.pc.gz" in out and "LI11" in out
    assert not any(tmp_path.iterdir())
    assert cli.main(["download", "--cells", "E999", "--dry-run"]) == 2


def test_per_fold_plan_one_job_per_fold_then_the_notebook():
    # the real notebooks: 30 trains folds 1-4 (top-level folds), 40 the folds given here, 20 none
    overrides = {"model": {"chromoformer": {"folds": [1, 3]}}}
    planned = cli.plan_jobs(["20", "30", "40"], ["E003"], "params/smoke.yaml", overrides, "t", per_fold=True)
    names = [r.job.name for r in planned]
    assert names == [
        "20_shallowchrome_baseline [E003]",
        *[f"30_promoter_model [E003] fold {f}" for f in (1, 2, 3, 4)],
        "30_promoter_model [E003]",
        "40_distal_model [E003] fold 1",
        "40_distal_model [E003] fold 3",
        "40_distal_model [E003]",
    ]
    by_name = {r.job.name: i for i, r in enumerate(planned)}
    fold2 = planned[by_name["30_promoter_model [E003] fold 2"]]
    assert fold2.deps == [by_name["20_shallowchrome_baseline [E003]"]]  # the notebook's own dependencies
    # the whole notebook's parameters (its derived tables know every fold), FOLD_JOB = 2 selects the fold
    assert fold2.job.params["model"]["promoter_cnn"]["folds"] is None and fold2.job.fold == 2
    assert fold2.job.papermill_parameters["FOLD_JOB"] == 2 and "FOLD_JOB" not in planned[0].job.papermill_parameters
    assert fold2.job.output.name == "30_promoter_model.fold2.ipynb"
    assert fold2.job.lock_file.name == ".30_promoter_model.fold2.lock"
    whole = planned[by_name["30_promoter_model [E003]"]]
    assert whole.job.output.name == "30_promoter_model.ipynb" and whole.job.fold is None
    assert whole.deps == [0, 1, 2, 3, 4]  # its dependencies and its four fold jobs
    assert planned[by_name["40_distal_model [E003] fold 3"]].deps == list(range(6))
    assert planned[by_name["40_distal_model [E003] fold 3"]].job.papermill_parameters["FOLD_JOB"] == 3
    # a fold job has its own fingerprint: never "up to date" for the notebook's own job, nor the reverse
    assert fold2.job.fingerprint_of(None) != whole.job.fingerprint_of(None)
    # one fold selected: no fold jobs; without per_fold: the plain plan
    one = cli.plan_jobs(["40"], ["E003"], "params/smoke.yaml", {}, "t", per_fold=True)
    assert [r.job.name for r in one] == ["40_distal_model [E003]"]
    plain = cli.plan_jobs(["20", "30", "40"], ["E003"], "params/smoke.yaml", overrides, "t")
    assert [r.job.fold for r in plain] == [None, None, None]


def test_list_says_which_notebooks_run_per_fold(capsys):
    assert cli.main(["list"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines()}
    assert "--fold: model.promoter_cnn.folds" in lines["30_promoter_model"]
    assert "--fold: model.chromoformer.folds" in lines["50_mark_pairs"]
    assert "--fold: chromoformer_study.folds" in lines["45_chromoformer_study"]
    assert "--fold" not in lines["46_chromoformer_diff"]  # all cell types at once
    assert "--fold" not in lines["20_shallowchrome_baseline"] and "--fold" not in lines["60_perturbation"]


@pytest.mark.parametrize(
    "notebook, fold, message",
    [
        ("20", 1, "does not run one fold per job"),
        ("40", 2, r"trains folds \[1\]"),  # params/smoke.yaml: model.chromoformer.folds [1]
    ],
)
def test_a_fold_job_the_notebook_cannot_run_is_refused(notebook, fold, message, capsys):
    with pytest.raises(ValueError, match=message):
        notebooks.make_job(notebook, "E003", "params/smoke.yaml", {}, "t", fold=fold)
    assert cli.main(["run", notebook, "--cell", "E003", "-f", "params/smoke.yaml", "--fold", str(fold)]) == 2
    assert "fold" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# issue 27: pre-flight input check, --version, examples, did-you-mean, plan's default, --cell warning
# ---------------------------------------------------------------------------------------------
def test_preflight_lists_missing_inputs_and_the_download_command_and_starts_no_kernel(tmp_path, capsys, monkeypatch):
    from chromexp.runner import notebooks

    def no_kernel(*a, **k):
        raise AssertionError("a notebook was executed despite missing inputs")

    monkeypatch.setattr(notebooks, "execute", no_kernel)
    over = ["-p", "data.source", "roadmap", "-p", "paths.data_dir", str(tmp_path / "data")]
    over += ["-p", "paths.results_dir", str(tmp_path / "results")]
    code = cli.main(["run", "10", "--cell", "e003", *over])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "missing inputs (no notebook was started)" in err and "10_data_prep [E003]" in err
    assert "E003-H3K4me3.tagAlign.gz" in err and "pchic/H1.tsv.gz" in err
    assert err.strip().splitlines()[-1].strip() == "chromexp download --cells E003 --kinds expression tagAlign pchic"
    assert not (tmp_path / "results").exists()  # nothing written: no kernel, no lock, no log

    code = cli.main(["batch", "--notebooks", "10", "70", "--cells", "E003", "E066", *over])
    err = capsys.readouterr().err
    assert code == 2 and "10_data_prep [E066]" in err and "70_eqtl_enrichment [all]" in err
    assert "--cells E003 E066 --kinds expression tagAlign pchic eqtl" in err
    assert not (tmp_path / "results").exists()


def test_preflight_passes_when_the_inputs_are_there(tmp_path):
    from chromexp.runner import notebooks

    raw = tmp_path / "data" / "roadmap" / "raw"
    job = notebooks.make_job(
        "10", "E003", overrides={"data": {"source": "roadmap"}, "paths": {"data_dir": str(tmp_path / "data")}}
    )
    names = {p.name for _, p in notebooks.missing_inputs(job)}
    assert "genes.tsv" in names and len(names) == 3 + 7 + 1
    for _, path in notebooks.missing_inputs(job):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    assert notebooks.missing_inputs(job) == [] and notebooks.preflight_message([job]) is None
    assert raw.is_dir()


def test_version_and_examples_in_help(capsys):
    from chromexp import __version__

    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"chromexp {__version__}"
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "chromexp run 30 --cell E003" in out and "docs/real-data.md" in out
    with pytest.raises(SystemExit):
        cli.main(["download", "--help"])
    out = capsys.readouterr().out
    for kind in (
        "tagAlign",
        "expression",
        "narrowPeak",
        "broadPeak",
        "gappedPeak",
        "pchic",
        "annotations",
        "eqtl",
        "ldsc",
    ):
        assert f"\n  {kind} " in out, kind


def test_notebook_names_without_number_and_did_you_mean():
    from chromexp.runner import notebooks

    assert notebooks.resolve("promoter_model").stem == "30_promoter_model"
    assert notebooks.resolve("LDSC").stem == "80_ldsc"
    with pytest.raises(ValueError, match=r"Did you mean '30_promoter_model'\?"):
        notebooks.resolve("promoter_modle")


def test_plan_defaults_to_the_newest_committed_grid_measurement_and_says_so(capsys):
    assert cli.main(["plan", "--cells", "E003"]) == 0
    out = capsys.readouterr().out
    newest = cli.newest_grid_measurement()
    assert newest.startswith("bench/results/gpu_grid_") and out.startswith(f"using {newest} (the newest")


def test_cell_given_to_an_all_cell_type_notebook_is_a_warning(tmp_path, capsys, monkeypatch):
    from chromexp.runner import notebooks

    ran = []
    monkeypatch.setattr(notebooks, "execute", lambda job, **k: ran.append(job) or job.output)
    monkeypatch.setattr(notebooks, "status", lambda job: "missing")
    code = cli.main(["run", "90", "--cell", "E003", "-p", "paths.results_dir", str(tmp_path)])
    assert code == 0 and ran and ran[0].cell_type is None
    assert "warning: 90_figures runs on all cell types at once; --cell E003 is ignored" in capsys.readouterr().err


def test_side_notebooks_hold_up_no_cell_type_but_later_global_notebooks_wait_for_them():
    """Notebooks 15, 46 and 55 read only what earlier notebooks wrote and nothing per-cell reads them."""
    nbs = ["10", "15", "20", "45", "46", "47", "55", "60", "70"]
    planned = cli.plan_jobs(nbs, ["E003", "E116"], "params/smoke.yaml", {}, "t")
    names = [f"{r.job.notebook.number}:{r.job.cell_type}" for r in planned]
    deps = {name: {names[i] for i in r.deps} for name, r in zip(names, planned)}
    assert "15:None" not in deps["20:E003"] and "10:E003" in deps["20:E003"]
    assert "46:None" not in deps["47:E116"] and "45:E116" in deps["47:E116"]
    assert {"45:E003", "45:E116"} <= deps["46:None"] and "46:None" in deps["70:None"]
    assert "55:None" not in deps["60:E116"] and "20:E116" in deps["60:E116"]
    assert {"10:E003", "10:E116"} <= deps["15:None"]
    assert {"15:None", "55:None", "60:E003", "60:E116"} <= deps["70:None"]
    assert {"20:E003", "20:E116"} <= deps["55:None"]
