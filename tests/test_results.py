"""Results tables: a save replaces only rows of the same identity, concurrent writers lose nothing."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from chromexp import results
from chromexp.constants import REAL, SEMI_SYNTHETIC

LIB = str(Path(results.__file__).resolve().parents[1])


def _metrics(fold, value=0.5, model="chromoformer_reg", marks="H3K4me3", cell="E003"):
    return pd.DataFrame(
        [
            dict(
                cell_type=cell,
                model=model,
                marks=marks,
                scheme="chrom_folds",
                fold=fold,
                split=split,
                n_genes=100,
                metric=metric,
                value=value,
            )
            for split in ("test", "validation")
            for metric in ("pearson_r", "mse")
        ]
    )


def _predictions(fold, n=5, predicted=0.0, model="chromoformer_reg"):
    return pd.DataFrame(
        dict(
            cell_type="E003",
            model=model,
            marks="H3K4me3",
            fold=fold,
            gene_id=[f"ENSG{fold:02d}{i:05d}" for i in range(n)],
            observed=np.arange(n, dtype=float),
            predicted=predicted,
        )
    )


def test_resaving_one_fold_keeps_the_others(tmp_path):
    for fold in (1, 2, 3, 4):
        results.save_metrics(_metrics(fold), tmp_path, provenance=SEMI_SYNTHETIC)
        results.save_predictions(_predictions(fold), tmp_path, provenance=SEMI_SYNTHETIC)
    results.save_metrics(_metrics(2, value=0.9), tmp_path, provenance=SEMI_SYNTHETIC)
    results.save_predictions(_predictions(2, predicted=7.0), tmp_path, provenance=SEMI_SYNTHETIC)

    m = results.load_metrics(tmp_path)
    assert sorted(m["fold"].unique()) == [1, 2, 3, 4]
    assert len(m) == 4 * 4  # 4 folds x 2 splits x 2 metrics, no duplicate
    assert (m.loc[m["fold"] == 2, "value"] == 0.9).all()
    assert (m.loc[m["fold"] != 2, "value"] == 0.5).all()
    assert set(m["provenance"]) == {SEMI_SYNTHETIC}
    p = results.load_predictions(tmp_path)
    assert sorted(p["fold"].unique()) == [1, 2, 3, 4] and len(p) == 4 * 5
    assert (p.loc[p["fold"] == 2, "predicted"] == 7.0).all()
    assert (p.loc[p["fold"] != 2, "predicted"] == 0.0).all()


def test_other_models_and_marks_and_splits_are_kept(tmp_path):
    results.save_metrics(_metrics(1), tmp_path, provenance=REAL)
    results.save_metrics(_metrics(1, model="promoter_cnn"), tmp_path, provenance=REAL)
    results.save_metrics(_metrics(1, marks="H3K27ac"), tmp_path, provenance=REAL)
    only_test = _metrics(1, value=0.1)
    results.save_metrics(only_test[only_test["split"] == "test"], tmp_path, provenance=REAL)
    m = results.load_metrics(tmp_path)
    assert len(m) == 3 * 4
    mine = m[(m["model"] == "chromoformer_reg") & (m["marks"] == "H3K4me3")]
    assert dict(zip(mine["split"], mine["value"])) == {"test": 0.1, "validation": 0.5}


def test_predictions_keyed_by_scheme_when_present(tmp_path):
    a = _predictions(1).assign(scheme="chrom_folds")
    b = _predictions(1, predicted=3.0).assign(scheme="random_thirds")
    results.save_predictions(a, tmp_path, provenance=REAL)
    saved = results.save_predictions(b, tmp_path, provenance=REAL)
    assert len(saved) == 10 and set(saved["scheme"]) == {"chrom_folds", "random_thirds"}


def test_provenance_is_required_validated_and_never_mixed(tmp_path):
    with pytest.raises(ValueError, match="no provenance"):
        results.save_metrics(_metrics(1), tmp_path)
    with pytest.raises(ValueError, match="provenance"):
        results.save_metrics(_metrics(1), tmp_path, provenance="roadmap")
    with pytest.raises(ValueError, match="unknown provenance"):
        results.save_metrics(_metrics(1).assign(provenance="simulated"), tmp_path)
    with pytest.raises(ValueError, match="contradicts"):
        results.save_metrics(_metrics(1).assign(provenance=REAL), tmp_path, provenance=SEMI_SYNTHETIC)
    results.save_metrics(_metrics(1).assign(provenance=REAL), tmp_path)
    with pytest.raises(ValueError, match="never mixes"):
        results.save_metrics(_metrics(2), tmp_path, provenance=SEMI_SYNTHETIC)
    assert set(results.load_metrics(tmp_path)["fold"]) == {1}  # the refused rows did not touch the table


def test_duplicate_identity_in_new_rows_is_an_error(tmp_path):
    twice = pd.concat([_metrics(1), _metrics(1)], ignore_index=True)
    with pytest.raises(ValueError, match="same identity"):
        results.save_metrics(twice, tmp_path, provenance=REAL)
    with pytest.raises(ValueError, match="same identity"):
        results.save_predictions(pd.concat([_predictions(1)] * 2), tmp_path, provenance=REAL)


def test_old_table_without_provenance_is_reported(tmp_path):
    results.write_table(_metrics(1), tmp_path / results.METRICS_FILE)
    with pytest.raises(ValueError, match="without a provenance column"):
        results.save_metrics(_metrics(2), tmp_path, provenance=REAL)


WRITER = """
import sys
import pandas as pd
from chromexp import results
out, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    rows = pd.DataFrame(dict(cell_type="E003", model=f"m{worker}", marks="H3K4me3", fold=i,
                             gene_id=[f"g{j}" for j in range(200)], observed=1.0, predicted=float(i)))
    results.save_predictions(rows, out, provenance="semi-synthetic")
"""


def test_two_concurrent_writers_lose_nothing(tmp_path):
    n = 25
    env = {**os.environ, "PYTHONPATH": LIB + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w), str(n)], env=env) for w in (1, 2)]
    assert [p.wait(timeout=240) for p in procs] == [0, 0]
    p = results.load_predictions(tmp_path)
    got = p.groupby("model")["fold"].nunique().to_dict()
    assert got == {"m1": n, "m2": n}, got
    assert len(p) == 2 * n * 200
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_no_marks_key_for_models_that_read_no_mark():
    from chromexp.results import NO_MARKS, marks_key

    assert marks_key(NO_MARKS) == "none"
    with pytest.raises(ValueError, match="Unknown histone mark"):
        marks_key(["none", "H3K4me3"])
