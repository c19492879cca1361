"""Parameter merging: defaults < cell type < run file < overrides; unknown keys are errors."""

from __future__ import annotations

import pytest
import yaml

from chromexp import config, constants, paths


def test_defaults_declare_every_top_level_block():
    params = config.load_params()
    for block in ("paths", "cell", "data", "signal", "dataset", "model", "train"):
        assert isinstance(params[block], dict)
    assert tuple(params["marks"]) == constants.MARKS
    # the parameters' bin sizes are the reference Chromoformer's (the model constructors' default)
    from chromexp.models import chromoformer as cf

    assert sorted(params["signal"]["resolutions"]) == sorted(cf.RESOLUTIONS)
    assert 2 * params["signal"]["half_window"] == 40_000


@pytest.mark.parametrize("eid", list(constants.CELL_TYPES))
def test_cell_files_match_the_study_facts(eid):
    params = config.load_params(eid)
    assert params["cell_type"] == eid
    assert params["cell"]["name"] == constants.CELL_TYPES[eid]
    assert params["cell"]["state"] == constants.CELL_STATES[eid]
    assert params["cell"]["pchic_tissue"] == constants.PCHIC_TISSUE[eid]
    # a cell file overrides only what differs: nothing outside the `cell:` block
    assert set(config.read_yaml(paths.params_dir() / "cells" / f"{eid}.yaml")) == {"cell"}


@pytest.mark.parametrize("name", ["smoke", "demo"])
def test_run_files_load(name):
    params = config.load_params("E003", files=[f"params/{name}.yaml"])
    assert params["data"]["preset"] == name
    assert params["run_name"] == name
    assert params["cell"]["name"] == "H1 ESC"


def test_merge_order_and_overrides(tmp_path):
    run_file = tmp_path / "run.yaml"
    run_file.write_text(yaml.safe_dump({"train": {"max_epochs": 7}, "seed": 3}))
    params = config.load_params("E066", files=[run_file], overrides={"train": {"lr": 0.01}})
    assert params["train"]["max_epochs"] == 7
    assert params["train"]["lr"] == 0.01
    assert params["train"]["batch_size"] == 64  # untouched default
    assert params["seed"] == 3
    assert params["cell"]["eqtl_tissues"] == ["Liver"]


def test_unknown_key_names_the_file_and_the_key(tmp_path):
    run_file = tmp_path / "bad.yaml"
    run_file.write_text("train:\n  max_epoch: 5\n")
    with pytest.raises(ValueError, match=r"Unknown parameter 'train\.max_epoch' in .*bad\.yaml"):
        config.load_params(files=[run_file])


def test_wrong_type_is_an_error():
    with pytest.raises(ValueError, match="train.lr"):
        config.load_params(overrides={"train": {"lr": "1e-3"}})  # YAML 1.1 reads 1e-3 as a string
    with pytest.raises(ValueError, match="must be a mapping"):
        config.load_params(overrides={"train": 5})


def test_missing_file_and_unknown_cell_type():
    with pytest.raises(ValueError, match="does not exist"):
        config.load_params(files=["params/nope.yaml"])
    with pytest.raises(ValueError, match="Unknown cell type 'E999'"):
        config.load_params("E999")
    with pytest.raises(ValueError, match="Unknown cell type"):
        config.load_params(overrides={"cell_types": ["E003", "E999"]})


def test_parse_overrides_reads_yaml_values():
    nested = config.parse_overrides([("train.max_epochs", "5"), ("marks", "[H3K4me3]"), ("device", "cpu")])
    assert nested == {"train": {"max_epochs": 5}, "marks": ["H3K4me3"], "device": "cpu"}
    params = config.load_params(overrides=nested)
    assert params["marks"] == ["H3K4me3"]


def test_paths_precedence(monkeypatch, tmp_path):
    params = config.load_params(overrides={"paths": {"results_dir": str(tmp_path / "from_param")}})
    assert paths.results_dir(params) == (tmp_path / "from_param").resolve()
    monkeypatch.setenv(paths.ENV_RESULTS, str(tmp_path / "from_env"))
    assert paths.results_dir(params) == (tmp_path / "from_env").resolve()
    monkeypatch.delenv(paths.ENV_RESULTS)
    assert paths.results_dir(config.load_params()) == paths.repo_root() / "results"
    assert paths.dataset_name(params) == "semisynthetic-demo"
    assert paths.run_dir(params, "demo", "E003") == (tmp_path / "from_param" / "demo" / "E003").resolve()
