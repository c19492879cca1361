"""Notebook 60's effects tables: one reader, one distal-loci selection, one definition of the Fig. 6 statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from chromexp.analyses import effects, statistics, summary
from chromexp.results import EFFECT_COLUMNS, write_table


def _table(cell="E003", n_genes=6, seed=0, levels=(1.0, 0.5, 0.0), decay_bp=8000.0):
    """An effects table in the contract: |effect| = (1 - level) * exp(-|distance| / decay_bp) * gene factor."""
    rng = np.random.default_rng(seed)
    rows = []
    positions = [*range(8), *range(12, 20)]
    for g in range(n_genes):
        factor = 1 + 0.2 * rng.random()
        regions = [("promoter", "promoter", -1, 0)] + [
            (f"distal_{k:02d}", "distal", k, k * 2000 + 1000 - 20000) for k in positions
        ]
        for name, kind, pos, dist in regions:
            for level in levels:
                scale = 2.0 if kind == "promoter" else np.exp(-abs(dist) / decay_bp)
                rows.append(
                    dict(
                        cell_type=cell, provenance="semi-synthetic", model="chromoformer-reg", mark="H3K27ac",
                        gene_set="active", gene_id=f"G{g}", region=name, region_kind=kind, position=pos,
                        distance=dist, chrom="chr1", start=10**6 * (g + 1) + dist - 1000,
                        end=10**6 * (g + 1) + dist + 1000, level=level, effect=-(1 - level) * scale * factor,
                        effect_sd=0.0, concordance=1.0, n_folds=2, baseline=3.0,
                    )
                )  # fmt: skip
    return pd.DataFrame(rows)[list(EFFECT_COLUMNS)]


def test_read_effects_checks_the_contract_and_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="notebook 60_perturbation"):
        effects.read_effects(tmp_path / "E003" / effects.EFFECTS_FILE)
    path = write_table(_table().drop(columns="effect"), tmp_path / "bad.tsv.gz")
    with pytest.raises(ValueError, match=r"bad.tsv.gz: lacks column\(s\) \['effect'\]"):
        effects.read_effects(path)
    path = write_table(_table().iloc[:0], tmp_path / "empty.tsv.gz")
    with pytest.raises(ValueError, match="empty.tsv.gz: the table has no rows"):
        effects.read_effects(path)
    good = write_table(_table().assign(chrom="1"), tmp_path / "E003" / effects.EFFECTS_FILE)
    assert effects.read_effects(good)["chrom"].map(type).eq(str).all()  # "1" stays a chromosome name


def test_distal_loci_names_the_filter_that_left_nothing_with_the_counts():
    t = pd.concat([_table("E003"), _table("E116")], ignore_index=True)
    loci = effects.distal_loci(t, "H3K27ac", "active", 0.0)
    assert len(loci) == 2 * 6 * 16 and (loci["region_kind"] == "distal").all() and (loci["level"] == 0).all()
    counts = effects.filter_counts(loci)
    assert counts["rows"].tolist() == [len(t), 2 * 6 * 16 * 3, 2 * 6 * 16 * 3, 2 * 6 * 16 * 3, 2 * 6 * 16]
    assert loci[["cell_type", "gene_id", "region"]].equals(
        t[(t["region_kind"] == "distal") & (t["level"] == 0.0)][["cell_type", "gene_id", "region"]].reset_index(
            drop=True
        )
    )  # table order kept
    with pytest.raises(ValueError, match=r"after the filter level == 0.2 .*gene_set == 'active': 576; level == 0.2: 0"):
        effects.distal_loci(t, "H3K27ac", "active", 0.2)
    with pytest.raises(ValueError, match=r"after the filter gene_set == 'inactive'"):
        effects.distal_loci(t, "H3K27ac", "inactive", 0.0)
    with pytest.raises(ValueError, match=r"several models .*\(ldsc.model\)"):
        effects.distal_loci(pd.concat([t, t.assign(model="other")]), param="ldsc.model")
    with pytest.raises(ValueError, match="have no effect value"):
        effects.distal_loci(t.assign(effect=np.where(t.index == 5, np.nan, t["effect"])))


def test_level_curves_mean_over_genes_of_each_genes_regions():
    t = _table()
    curves = effects.level_curves(t)
    assert len(curves) == 2 * 3 and (curves["n_genes"] == 6).all() and (curves["n_folds"] == 2).all()
    d0 = t[(t["region_kind"] == "distal") & (t["level"] == 0.0)]
    expected = d0.groupby("gene_id")["effect"].mean().mean()
    got = curves[(curves["region_kind"] == "distal") & (curves["level"] == 0.0)]
    assert np.isclose(got["mean"].item(), expected)
    assert (got["ci_low"] <= got["mean"]).all() and (got["mean"] <= got["ci_high"]).all()
    # the CI resamples genes (each gene's mean over its regions), not gene x region rows (issue 30 item 6)
    per_gene = d0.groupby("gene_id")["effect"].mean().to_numpy()
    assert (got["ci_low"].item(), got["ci_high"].item()) == statistics.bootstrap_ci(per_gene, seed=0)
    one = curves[curves["level"] == 1.0]
    assert (one["mean"] == 0).all()


def test_decay_length_recovers_a_planted_exponential():
    t = _table(decay_bp=8000.0)
    decay = effects.decay_length(effects.effect_by_distance(t, absolute=True))
    assert decay["decay_length_bp"].item() == pytest.approx(8000.0, rel=1e-6) and decay["n_bins"].item() == 16


def test_notebook_60_and_notebook_90_compute_the_same_fig6_rows(tmp_path):
    """The per-cell table notebook 60 writes equals that cell type's rows of notebook 90's summary."""
    from chromexp.plots import manuscript

    run = tmp_path / "run"
    for i, cell in enumerate(("E003", "E116")):
        write_table(_table(cell, seed=i), run / cell / effects.EFFECTS_FILE)
        write_table(pd.DataFrame({"gene_id": ["G0"], "label": [1], "provenance": ["semi-synthetic"]}),
                    run / cell / "dataset_genes.tsv")  # fmt: skip
    tables = summary.load_run_tables(run)
    derived = manuscript.derived_tables(tables)
    for cell in ("E003", "E116"):
        own = effects.read_effects(run / cell / effects.EFFECTS_FILE)
        for name, mine in (
            ("fig6_perturbation_curves", effects.level_curves(own)),
            ("fig6_effect_by_distance", effects.effect_by_distance(own)),
        ):
            theirs = derived[name]
            theirs = theirs[theirs["cell_type"] == cell].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, theirs, check_exact=True)


def test_effect_quantiles_are_the_effect_distribution_at_each_distance():
    """Fig. 6E/F: the quantile bins are of the effect at each distance, not of distance (issue 30 item 6)."""
    t = _table(n_genes=40, levels=(1.0, 0.0))
    rng = np.random.default_rng(5)
    t.loc[t["level"] == 0.0, "effect"] += rng.normal(0, 0.2, (t["level"] == 0.0).sum())  # a spread per distance
    q = effects.effect_quantiles_by_distance(t, n_bins=20)
    assert set(q["distance"]) == set(t.loc[t["region_kind"] == "distal", "distance"])  # 16 distances
    assert q.groupby("distance").size().eq(21).all() and (q["n_genes"] == 40).all()
    for dist in (-19_000, 5_000):
        want = np.quantile(t[(t["distance"] == dist) & (t["level"] == 0.0)]["effect"], np.linspace(0, 1, 21))
        got = q[q["distance"] == dist].sort_values("quantile")["effect"].to_numpy()
        np.testing.assert_allclose(got, want)
    # multi-mark model rows (chromoformer-reg-all) stay out of the paper's Fig. 6 statistics
    both = pd.concat([t, t.assign(model="chromoformer-reg-all", effect=0.0)])
    assert effects.single_mark(both).equals(t)
