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

from chromexp import cli, notebooks

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _require_snakemake() -> None:
    if SNAKEMAKE.exists():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"snakemake is not installed next to {sys.executable} (pip install -e '.[workflow]').")
    pytest.skip("snakemake not installed (pip install -e '.[workflow]')")


def _snakemake(tmp_path: Path, notebooks_: list[str] | None, cells: list[str], *extra: str):
    config = [
        "params_file=params/smoke.yaml",
        f"cells=[{','.join(cells)}]",
        "run_name=smoke",
        "threads=1",
        "overrides={" + ", ".join(f"paths.{k}_dir: {tmp_path / k}" for k in ("data", "results", "figures")) + "}",
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


@pytest.mark.notebook
def test_snakemake_run_gives_the_same_tables_as_chromexp_batch(tmp_path):
    _require_snakemake()
    a, b = tmp_path / "snakemake", tmp_path / "batch"
    proc = _snakemake(a, ["00", "10"], ["E003"], "--cores", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = ["batch", "--notebooks", "00", "10", "--cells", "E003", "-f", "params/smoke.yaml", "--run-name", "smoke"]
    for key in ("data", "results", "figures"):
        args += ["-p", f"paths.{key}_dir", str(b / key)]
    assert cli.main(args) == 0

    for rel in ("all/00_demo_data.ipynb", "E003/10_data_prep.ipynb"):
        assert (a / "results" / "smoke" / rel).is_file()
        assert (a / "results" / "smoke" / Path(rel).parent / "logs" / f"{Path(rel).stem}.snakemake.log").is_file()
    tables = sorted(p.relative_to(b / "results") for p in (b / "results").rglob("*.tsv*"))
    assert tables, "notebook 10 wrote no tables"
    for rel in tables:
        left = pd.read_csv(a / "results" / rel, sep="\t")
        right = pd.read_csv(b / "results" / rel, sep="\t")
        pd.testing.assert_frame_equal(left, right, obj=str(rel))
