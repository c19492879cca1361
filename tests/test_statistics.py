"""The one Benjamini–Hochberg and the seeded bootstrap (chromexp.analyses.statistics), against oracles."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from chromexp.analyses import statistics

LIB = Path(__file__).resolve().parents[1] / "lib" / "chromexp"


@pytest.mark.parametrize("n", [1, 2, 3, 11, 50, 400])
def test_bh_equals_statsmodels_to_the_last_bit(n):
    rng = np.random.default_rng(n)
    p = rng.random(n) ** 3
    p[: n // 3] = p[0]  # ties
    rng.shuffle(p)
    assert np.array_equal(statistics.benjamini_hochberg(p), multipletests(p, method="fdr_bh")[1])


def test_bh_leaves_nan_out_of_the_count_and_keeps_the_order():
    p = np.array([0.01, np.nan, 0.04, 0.03, 0.5, np.nan, 0.002])
    q = statistics.benjamini_hochberg(p)
    ok = ~np.isnan(p)
    assert np.isnan(q[~ok]).all()
    assert np.array_equal(q[ok], multipletests(p[ok], method="fdr_bh")[1])
    assert np.isnan(statistics.benjamini_hochberg([np.nan, np.nan])).all()
    assert statistics.benjamini_hochberg([]).shape == (0,)
    assert np.array_equal(statistics.benjamini_hochberg([0.2]), [0.2])  # one test: q = p


def test_bh_refuses_values_that_are_not_p_values():
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        statistics.benjamini_hochberg([0.1, 1.5])
    with pytest.raises(ValueError, match="one-dimensional"):
        statistics.benjamini_hochberg(np.full((2, 2), 0.1))


def test_bh_is_written_once_in_the_library():
    """ldsc, enrichment and summary each ask chromexp.analyses.statistics; no second definition or call."""
    pattern = re.compile(r"def \w*(hochberg|_bh)\b|fdr_bh|multipletests|p\[order\] \* m")
    hits = [
        f"{p.relative_to(LIB)}:{i}"
        for p in sorted(LIB.rglob("*.py"))
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line) and p.name != "statistics.py"
    ]
    assert hits == []
    for module in ("ldsc", "enrichment", "summary"):
        text = (LIB / "analyses" / f"{module}.py").read_text()
        assert re.search(r"from \.statistics import .*benjamini_hochberg", text), module


def test_gene_summary_averages_a_genes_rows_first():
    """Gene a has three rows (mean 3), gene b one (mean 0): the mean over genes is 1.5, not the row mean 2.25."""
    import pandas as pd

    t = pd.DataFrame({"k": "x", "gene_id": ["a", "a", "a", "b"], "effect": [2.0, 3.0, 4.0, 0.0], "n_folds": 4})
    out = statistics.gene_summary(t, ["k"])
    row = out.iloc[0]
    assert row["n_genes"] == 2 and row["mean"] == 1.5 and row["n_folds"] == 4
    assert row["ci_low"] <= 1.5 <= row["ci_high"] and row["provenance"] == "unknown"
