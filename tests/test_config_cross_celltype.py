"""Notebook 55's parameters: every bad value is refused before anything runs, with its dotted key."""

import pytest

from chromexp import config


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"model": {"hierarchical_cnn": {"hybrid_grid": [[0.0, 0.0]]}}}, "hybrid_grid"),
        ({"model": {"hierarchical_cnn": {"hybrid_grid": [[1.0]]}}}, "hybrid_grid"),
        ({"model": {"hierarchical_cnn": {"variants": ["enformer"]}}}, "variants"),
        ({"model": {"hierarchical_cnn": {"hybrid_variant": "single_tissue"}}}, "hybrid_variant"),
        ({"model": {"hierarchical_cnn": {"lr": []}}}, "hierarchical_cnn.lr"),
        ({"model": {"hierarchical_cnn": {"dropout": [1.0]}}}, "dropout"),
        ({"model": {"hierarchical_cnn": {"channels": 0}}}, "channels"),
        ({"model": {"hierarchical_cnn": {"folds": [5]}}}, "hierarchical_cnn.folds"),
        ({"model": {"expecto": {"modes": ["matched", "matched"]}}}, "expecto.modes"),
        ({"model": {"expecto": {"alphas": [0.0]}}}, "expecto.alphas"),
        ({"cross_celltype": {"bin_size": 150}}, "bin_size"),
        ({"cross_celltype": {"target": "log10"}}, "target"),
        ({"cross_celltype": {"leave_one_out": ["E118"]}}, "leave_one_out"),
        ({"cross_celltype": {"n_permutations": 0}}, "n_permutations"),
    ],
)
def test_bad_values_are_refused(overrides, key):
    with pytest.raises(ValueError, match=key):
        config.load_params(None, files=["params/demo.yaml"], overrides=overrides)


def test_defaults_and_presets_load():
    for f in ("params/smoke.yaml", "params/demo.yaml", None):
        p = config.load_params(None, files=[f])
        assert p["model"]["hierarchical_cnn"]["hybrid_grid"][3] == [100.0, 1.0]
        assert set(p["cross_celltype"]["leave_one_out"] or p["cell_types"]) <= set(p["cell_types"])
    p = config.load_params(None, files=["params/demo.yaml"], overrides={"cross_celltype": {"leave_one_out": []}})
    assert p["cross_celltype"]["leave_one_out"] == []
