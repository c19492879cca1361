"""bench/bf16_vs_fp32.py: the join of two runs' metric tables keeps every (model, marks, fold)."""

from __future__ import annotations

import importlib.util
import itertools
from pathlib import Path

import pandas as pd

from chromexp import results

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("bf16_vs_fp32", REPO / "bench" / "bf16_vs_fp32.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(root: Path, name: str, shift: float) -> Path:
    rows = []
    for marks, fold, split, metric in itertools.product(
        ["H3K4me3", "H3K27me3"], [1, 2, 3], ["test", "validation"], ["pearson_r", "spearman_rho", "r2", "mse"]
    ):
        value = 0.1 * fold + (0.5 if marks == "H3K4me3" else 0.0) + (shift if split == "test" else 0.0)
        rows.append(["E003", "promoter_cnn", marks, "chrom_folds", fold, split, 100, metric, value])
    table = pd.DataFrame(rows, columns=list(results.METRIC_COLUMNS))
    results.save_metrics(table, root / name / "E003", provenance=results.SEMI_SYNTHETIC)
    return root / name


def test_join_keeps_every_fold_and_reports_the_difference(tmp_path, capsys):
    fp32, bf16 = _run(tmp_path, "fp32", 0.0), _run(tmp_path, "bf16", 0.01)
    joined = _script().main([str(fp32), str(bf16), "--out", str(tmp_path / "joined.tsv")])
    assert len(joined) == 2 * 3  # marks × folds, test split only
    assert set(joined["fold"]) == {1, 2, 3}
    assert joined["d_pearson_r"].round(12).eq(0.01).all()
    out = capsys.readouterr().out
    assert "SEMI-SYNTHETIC" in out and "max |Δr| 0.0100" in out
    summary = _script().summary(joined, ["cell_type", "model", "marks"])
    assert summary["fold_sd_r_fp32"].round(12).eq(0.1).all()  # SD over folds of 0.1·fold


def test_seed_control_is_compared_with_the_float32_run(tmp_path, capsys):
    fp32, bf16, seed = (_run(tmp_path, n, s) for n, s in (("fp32", 0.0), ("bf16", 0.01), ("seed1", -0.02)))
    _script().main([str(fp32), str(bf16), "--control", str(seed)])
    out = capsys.readouterr().out
    assert "seed_mean_abs_dr" in out
    assert "float32 seed control" in out and "mean |Δr| 0.0200, max |Δr| 0.0200, n 6" in out
