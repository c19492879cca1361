"""The Snakemake workflow (workflow/Snakefile) plans the same jobs as ``chromexp batch`` and, run for
real on the smoke preset, produces the same tables.

Snakemake is the ``workflow`` extra (in ``all``): required in CI (``CI=true``), skipped elsewhere
when absent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from chromexp.runner import cli, notebooks

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _require_snakemake() -> None:
    if SNAKEMAKE.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"snakemake is not installed next to {sys.executable} (pip install -e '.[workflow]').")
    pytest.skip("snakemake not installed (pip install -e '.[workflow]')")


#: notebook 30 on two folds (2 marks × 2 folds × 2 epochs on the smoke genes): two fold jobs
PROMOTER_FOLDS = ("model.promoter_cnn.folds", "[1, 2]")


def _snakemake(tmp_path: Path, notebooks_: list[str] | None, cells: list[str], *extra: str, per_fold=False):
    overrides = [f"paths.{k}_dir: {tmp_path / k}" for k in ("data", "results", "figures")]
    overrides.append(f"{PROMOTER_FOLDS[0]}: '{PROMOTER_FOLDS[1]}'")  # values as YAML strings (config.yaml)
    config = [
        "params_file=params/smoke.yaml",
        f"cells=[{','.join(cells)}]",
        "run_name=smoke",
        "threads=1",
        "overrides={" + ", ".join(overrides) + "}",
        f"per_fold={str(per_fold).lower()}",
    ]
    if notebooks_:
        config.append(f"notebooks=[{','.join(notebooks_)}]")
    # Snakemake's metadata (.snakemake/) goes to the working directory: keep it out of the repository
    workdir = tmp_path / "snakemake-workdir"
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "workflow" / "Snakefile"), "-d", str(workdir), "--config", *config, *extra]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)


def test_dry_run_lists_one_job_per_notebook_and_cell_type(tmp_path):
    _require_snakemake()
    proc = _snakemake(tmp_path, None, ["E003", "E116"], "-n")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout + proc.stderr
    planned = set(re.findall(r"output: (\S+\.ipynb)", out))
    expected = {
        str(tmp_path / "results" / "smoke" / (cell or "all") / f"{nb.stem}.ipynb")
        for nb in notebooks.discover()
        for cell in (["E003", "E116"] if nb.per_cell_type else [None])
    }
    assert planned == expected
    counts = dict(re.findall(r"^(notebook|all)\s+(\d+)$", out, flags=re.M))
    assert int(counts["notebook"]) == len(expected)


def test_dry_run_dependencies_follow_batch_order(tmp_path):
    """Each job's inputs are exactly the outputs of the jobs `chromexp batch` makes it wait for."""
    _require_snakemake()
    proc = _snakemake(tmp_path, ["00", "10", "30"], ["E003", "E116"], "-n")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    blocks = re.findall(r"rule notebook:\n\s+input: ([^\n]*)\n\s+output: (\S+)", proc.stdout + proc.stderr)
    seen = {
        Path(out).parent.name + "/" + Path(out).name: sorted(
            Path(p).parent.name + "/" + Path(p).name for p in inp.split(", ")
        )
        for inp, out in blocks
    }
    assert seen["E003/30_promoter_model.ipynb"] == ["E003/10_data_prep.ipynb", "all/00_demo_data.ipynb"]
    assert seen["E116/10_data_prep.ipynb"] == ["all/00_demo_data.ipynb"]
    # the global notebook 00 has no inputs and so no "input:" line: it is not among the blocks
    assert "all/00_demo_data.ipynb" not in seen


def test_invalid_parameters_fail_before_anything_runs(tmp_path):
    _require_snakemake()
    proc = _snakemake(tmp_path, ["10"], ["E999"], "-n")
    assert proc.returncode != 0
    assert "E999" in proc.stdout + proc.stderr


def test_per_fold_dry_run_adds_one_job_per_fold_before_the_notebook(tmp_path):
    _require_snakemake()
    proc = _snakemake(tmp_path, ["10", "30"], ["E003"], "-n", "-p", per_fold=True)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    blocks = re.findall(r"rule notebook:\n\s+input: ([^\n]*)\n\s+output: (\S+)", proc.stdout + proc.stderr)
    seen = {Path(out).name: sorted(Path(p).name for p in inp.split(", ")) for inp, out in blocks}
    assert seen["30_promoter_model.fold1.ipynb"] == ["10_data_prep.ipynb"]
    assert seen["30_promoter_model.fold2.ipynb"] == ["10_data_prep.ipynb"]
    assert seen["30_promoter_model.ipynb"] == [
        "10_data_prep.ipynb",
        "30_promoter_model.fold1.ipynb",
        "30_promoter_model.fold2.ipynb",
    ]
    commands = re.findall(r"-m chromexp run 30_promoter_model [^\n]*", proc.stdout + proc.stderr)
    assert sum("--fold 1 " in c for c in commands) == 1 and sum("--fold 2 " in c for c in commands) == 1
    assert sum("--fold" not in c for c in commands) == 1


def _rows(path: Path) -> pd.DataFrame:
    """A table without its wall-time column (the one thing two runs of the same models differ in)."""
    if path.stat().st_size == 0:  # an empty table (e.g. nothing excluded)
        return pd.DataFrame()
    table = pd.read_csv(path, sep="\t")
    return table.drop(columns=[c for c in ("seconds",) if c in table.columns])


@pytest.mark.notebook
def test_snakemake_per_fold_run_gives_the_same_tables_as_chromexp_batch(tmp_path):
    # Snakemake with one job per fold of notebook 30 (run two at a time, merging into the same
    # tables) against one plain `chromexp batch`: every table equal, the same model files
    _require_snakemake()
    a, b = tmp_path / "snakemake", tmp_path / "batch"
    proc = _snakemake(a, ["00", "10", "30"], ["E003"], "--cores", "2", per_fold=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = ["batch", "--notebooks", "00", "10", "30", "--cells", "E003", "-f", "params/smoke.yaml"]
    args += ["--run-name", "smoke", "-p", *PROMOTER_FOLDS]
    for key in ("data", "results", "figures"):
        args += ["-p", f"paths.{key}_dir", str(b / key)]
    assert cli.main(args) == 0

    run_a, run_b = a / "results" / "smoke", b / "results" / "smoke"
    for rel in ("all/00_demo_data.ipynb", "E003/10_data_prep.ipynb", "E003/30_promoter_model.ipynb"):
        assert (run_a / rel).is_file()
        assert (run_a / Path(rel).parent / "logs" / f"{Path(rel).stem}.snakemake.log").is_file()
    for fold in (1, 2):
        assert (run_a / "E003" / f"30_promoter_model.fold{fold}.ipynb").is_file()
        assert not (run_b / "E003" / f"30_promoter_model.fold{fold}.ipynb").exists()
    # the all-folds job read the fold jobs' models back: the same four model files, no other
    models = sorted(p.name for p in (run_a / "E003" / "checkpoints").iterdir())
    assert len(models) == 4 and models == sorted(p.name for p in (run_b / "E003" / "checkpoints").iterdir())
    executed = (run_a / "E003" / "30_promoter_model.ipynb").read_text()
    assert "0 models trained one after another" in executed and "4 read back from finished checkpoints" in executed
    tables = sorted(p.relative_to(run_b) for p in run_b.rglob("*.tsv*"))
    assert {"E003/metrics.tsv", "E003/predictions.tsv.gz"} <= {str(t) for t in tables}, tables
    for rel in tables:
        pd.testing.assert_frame_equal(_rows(run_a / rel), _rows(run_b / rel), obj=str(rel))
