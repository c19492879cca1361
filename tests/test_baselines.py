"""Naive correlation baselines: per-fold |Pearson r| against a brute-force computation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from chromexp.baselines.naive import naive_correlations
from chromexp.constants import CHROM_FOLD, MARKS
from chromexp.results import METRIC_COLUMNS


class FakeDataset:
    """The part of the CellDataset API the baselines use, on random data with known structure."""

    def __init__(self, n_genes: int = 400, seed: int = 0):
        rng = np.random.default_rng(seed)
        chroms = rng.choice(list(CHROM_FOLD), size=n_genes)
        self.cell_type = "E003"
        self.marks = MARKS
        self.target = rng.gamma(2.0, 2.0, size=n_genes)
        self.genes = pd.DataFrame(
            {"gene_id": [f"G{i}" for i in range(n_genes)], "chrom": chroms, "target": self.target}
        )
        self.genes["fold"] = self.genes["chrom"].map(CHROM_FOLD)
        noise = rng.normal(size=(n_genes, len(MARKS), 3))
        sign = np.array([1, 1, -1, -1, 0.5, 1, 1])
        # the signal depends on the flank so that flanks give different answers
        self._x = {
            f: sign * self.target[:, None] * (k + 1) + noise[:, :, k] * 3 for k, f in enumerate((750, 1500, 3000))
        }
        self.calls = []

    def flank_means(self, marks=None, flank=750):
        marks = list(self.marks if marks is None else marks)
        self.calls.append((tuple(marks), flank))
        return self._x[flank][:, [self.marks.index(m) for m in marks]].astype(np.float32)

    def split(self, fold):
        return {"test": np.flatnonzero(self.genes["fold"].to_numpy() == fold)}


def test_naive_correlations_match_brute_force():
    ds = FakeDataset()
    table = naive_correlations(ds)
    assert list(table.columns) == list(METRIC_COLUMNS)
    abs_r = table[table["metric"] == "abs_pearson_r"]
    assert len(abs_r) == 3 * 7 * 4
    assert set(abs_r["model"]) == {"naive_tss750", "naive_tss1500", "naive_tss3000"}
    assert set(abs_r["scheme"]) == {"chrom_folds"} and set(abs_r["split"]) == {"test"}
    for row in abs_r.itertuples():
        flank = int(row.model.removeprefix("naive_tss"))
        genes = ds.genes["fold"].to_numpy() == row.fold
        x = ds._x[flank][genes, MARKS.index(row.marks)].astype(np.float32)
        expected = abs(stats.pearsonr(x.astype(np.float64), ds.target[genes])[0])
        assert row.value == pytest.approx(expected, abs=1e-9)
        assert row.n_genes == genes.sum()
    signed = table[table["metric"] == "pearson_r_signed"].set_index(["model", "marks", "fold"])["value"]
    # repressive marks were built with a negative sign: the signed r is negative, the abs r positive
    assert (signed.xs("H3K27me3", level="marks") < 0).all()
    assert (signed.xs("H3K4me3", level="marks") > 0).all()


def test_naive_correlations_subsets_and_validation():
    ds = FakeDataset(n_genes=200)
    table = naive_correlations(ds, marks=["H3K4me3"], flanks=(1500,), folds=(2,))
    assert set(table["marks"]) == {"H3K4me3"} and set(table["fold"]) == {2}
    assert ds.calls == [(("H3K4me3",), 1500)]
    with pytest.raises(ValueError, match="not in the dataset"):
        naive_correlations(ds, marks=["H3K4me2"])
    with pytest.raises(ValueError, match="folds"):
        naive_correlations(ds, folds=(5,))
    with pytest.raises(ValueError, match="flanks"):
        naive_correlations(ds, flanks=(0,))


def test_constant_signal_gives_nan_not_error():
    ds = FakeDataset(n_genes=120)
    ds._x[750][:, 0] = 0.0
    table = naive_correlations(ds, marks=["H3K4me1"], flanks=(750,))
    assert table.loc[table["metric"] == "abs_pearson_r", "value"].isna().all()
