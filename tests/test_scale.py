"""The paper's model grid, device-hour estimates from measured throughput, and the GPU benchmark's
CPU fallback (bench/gpu_grid.py --tiny), which must produce a well-formed result in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chromexp.constants import CELL_TYPES
from chromexp.runner import cli, scale

REPO = Path(__file__).resolve().parents[1]


def test_paper_grid_has_the_papers_1276_models_plus_the_seven_mark_models():
    grid = scale.paper_grid(list(CELL_TYPES))
    assert len(CELL_TYPES) == 11
    by = grid.set_index(["notebook", "models_of"])["n_models"]
    assert by[("30", "single marks")] == 308  # CNN: 7 marks × 11 cell types × 4 folds
    assert by[("40", "single marks")] == 308
    assert by[("50", "mark pairs")] == 660  # 15 pairs × 11 × 4
    assert by[("30", "single marks")] + by[("40", "single marks")] + by[("50", "mark pairs")] == 1276
    assert by[("40", "all marks")] == 44


def test_the_grid_counts_the_pairs_notebook_50_trains():
    from chromexp.config import load_params
    from chromexp.experiments import chromoformer as ct

    params = load_params("E003")
    assert tuple(params["model"]["chromoformer"]["pair_anchors"]) == scale.PAIR_ANCHORS
    pairs = ct.mark_sets_from_params(params)  # one definition of the pairs (chromexp.constants.anchor_pairs)
    assert len(pairs) == len({frozenset(p) for p in pairs}) == 15
    grid = scale.paper_grid(["E003"], folds=[1]).set_index("models_of")
    assert grid.loc["mark pairs", "n_mark_sets"] == len(pairs)
    fewer = scale.paper_grid(["E003"], anchors=["H3K4me3"]).set_index("models_of")
    assert fewer.loc["mark pairs", "n_mark_sets"] == 6


def _throughput(cnn: float, cf: float) -> dict:
    return {
        "device": "cuda",
        "families": {
            "promoter_cnn": {
                "modes": {"one_fp32": {"gene_epochs_per_s": cnn / 2}, "many_fp32": {"gene_epochs_per_s": cnn}}
            },
            "chromoformer": {"modes": {"one_fp32": {"gene_epochs_per_s": cf}, "one_bf16": {"skipped": "cpu"}}},
        },
    }


def test_estimate_uses_each_familys_fastest_mode_and_scales_linearly():
    grid = scale.paper_grid(["E003"], folds=[1])
    table = scale.estimate(grid, _throughput(1000.0, 100.0), epochs_per_model=10, train_genes=3600)
    cnn = table[table.family == "promoter_cnn"].iloc[0]
    assert cnn["mode"] == "many_fp32"
    assert cnn["hours"] == pytest.approx(7 * 3600 * 10 / 1000.0 / 3600)
    double = scale.estimate(grid, _throughput(1000.0, 100.0), epochs_per_model=20, train_genes=3600)
    assert double["hours"].sum() == pytest.approx(2 * table["hours"].sum())


def test_read_throughput_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="gpu_grid.py"):
        scale.read_throughput(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match="bad.json"):
        scale.read_throughput(bad)


def test_gpu_benchmark_cpu_fallback_and_plan(tmp_path, capsys):
    out = tmp_path / "grid.json"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "gpu_grid.py"), "--tiny", "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["tiny"] is True
    for family in ("promoter_cnn", "chromoformer"):
        modes = result["families"][family]["modes"]
        for mode in ("one_fp32", "many_fp32"):
            assert modes[mode]["gene_epochs_per_s"] > 0
            assert modes[mode]["models_per_hour"] > 0
    for family in ("claster_a", "claster_paper"):  # CLASTER option A and the published geometry
        assert result["families"][family]["modes"]["one_fp32"]["gene_epochs_per_s"] > 0
        assert modes["many_fp32"]["models"] > 1
        assert "skipped" in modes["one_bf16"]  # bf16 on CPU only with --cpu-bf16
    for family in ("hcnn_multi_tissue", "hcnn_matched_shared"):  # Mittal's CNNs (notebook 55), one model at a time
        modes = result["families"][family]["modes"]
        assert modes["one_fp32"]["gene_epochs_per_s"] > 0 and modes["one_fp32"]["models_per_hour"] > 0
        assert "skipped" in modes["many_fp32"]
    assert result["paper_grid"]["models"] == 1320
    # Chromoformer's own study: the diff model and every baseline, one model at a time
    for family in ("chromoformer_diff", "deepchrome", "attentivechrome_40kb", "hmcrnn", "deepdiff"):
        assert result["families"][family]["modes"]["one_fp32"]["gene_epochs_per_s"] > 0, family

    assert cli.main(["plan", "--throughput", str(out), "--cells", "E003", "E066"]) == 0
    text = capsys.readouterr().out
    assert "tiny CI size" in text and "Estimated" in text
    assert cli.main(["plan", "--throughput", str(tmp_path / "none.json")]) == 2
