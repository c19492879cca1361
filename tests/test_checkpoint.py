"""Checkpoints (issue 29 items 2, 3 and 6; issue 22 item 5): read with ``weights_only=True`` only,
a content hash verified on load, errors naming the file and the command that retrains, one identity
per recipe.

Each test fails on the code before ``chromexp.training.checkpoint`` (checked by running it there):
a planted pickle ran its code, edited weights were read back, a truncated checkpoint raised torch's
bare ``RuntimeError``, a full disk raised ``RuntimeError: enforce fail …`` without the path.
"""

from __future__ import annotations

import json
import os
import pickletools
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from chromexp.training import train

REPO = Path(__file__).resolve().parents[1]
JOB_COMMAND_VAR = "CHROMEXP_JOB_COMMAND"  # set by the runner for each job
COMMAND = "chromexp run 40 --cell E003 -f params/smoke.yaml --run-name t --force"


def _params(**kw):
    p = dict(lr=1e-2, batch_size=16, max_epochs=2, lr_factor=0.2, lr_patience=3, min_lr=1e-6, early_stopping_patience=5)
    p.update(kw)
    return p


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return (x[:48], x[:48].sum(1)), (x[48:], x[48:].sum(1))


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))


def _fit(path, model=None, **kw):
    tr, va = _data()
    return train.fit(
        model or _model(), tr, va, train_params=_params(**kw), seed=3, checkpoint_path=path, progress=False
    )


class _Evil:
    """Unpickling this creates ``path``: what a planted checkpoint's code could do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _plant(path: Path, marker: Path) -> None:
    torch.save({"version": 1, "finished": True, "fingerprint": {}, "model": _Evil(marker)}, path)


def _edit_one_weight(path: Path) -> None:
    """Change one weight of a checkpoint file in place, leaving everything else (its hash too) as it was."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    table = raw["tensors"] if "tensors" in raw else raw["best_model"]  # this format, or the old pickled dict
    key = next(k for k, t in table.items() if t.is_floating_point() and t.numel() > 1)
    table[key].view(-1)[0] += 1.0
    if "model" in raw and "tensors" not in raw:
        raw["model"] = raw["best_model"]
    torch.save(raw, path)


# -- item 2: no code runs -----------------------------------------------------------------------------
def test_a_planted_pickle_runs_no_code_in_fit_or_the_finished_check(tmp_path, monkeypatch):
    monkeypatch.setenv(JOB_COMMAND_VAR, COMMAND)
    ck, marker = tmp_path / "model.pt", tmp_path / "PWNED"
    _plant(ck, marker)
    with pytest.raises(ValueError, match=r"model\.pt holds Python objects.*not unpickled") as err:
        train.is_finished_checkpoint(ck)
    assert COMMAND in str(err.value)
    with pytest.raises(ValueError, match=r"model\.pt holds Python objects"):
        _fit(ck)
    assert not marker.exists()


def test_a_planted_pickle_in_notebook_60s_folder_runs_no_code(smoke_dataset, smoke_params, tmp_path):
    from test_perturb import _tiny_params

    from chromexp.experiments import chromoformer as ct
    from chromexp.experiments import perturbation
    from chromexp.models import chromoformer_inputs as ci

    params, ds = _tiny_params(smoke_params), smoke_dataset
    x = ci.dataset_inputs(ds, list(ds.marks))
    ct.train_and_evaluate(ds, params, [("H3K27ac",)], folds=[1], checkpoint_dir=tmp_path, inputs=x, progress=False)
    (written,) = tmp_path.glob("chromoformer_reg_H3K27ac_fold1_*.pt")
    good = written.read_bytes()
    # a file planted under the name notebook 60 reads (notebook 40's checkpoint replaced)
    marker = tmp_path / "PWNED"
    _plant(written, marker)
    with pytest.raises(ValueError, match=rf"{written.name} holds Python objects"):
        perturbation.fold_models(ds, params, "H3K27ac", [1], tmp_path, inputs=x, train_missing=False)
    assert not marker.exists()
    # item 6: a truncated checkpoint is an error naming the file (not torch's bare RuntimeError)
    written.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match=rf"{written.name} cannot be read .*truncated"):
        perturbation.fold_models(ds, params, "H3K27ac", [1], tmp_path, inputs=x, train_missing=False)
    # the intact file is read back, with the model notebook 40 trained
    written.write_bytes(good)
    _, src = perturbation.fold_models(ds, params, "H3K27ac", [1], tmp_path, inputs=x, train_missing=False)
    assert src["source"].tolist() == ["checkpoint"] and src["path"].tolist() == [str(written)]


def test_a_checkpoint_holds_only_tensors_and_plain_values(tmp_path):

    ck = tmp_path / "a.pt"
    _fit(ck)
    raw = torch.load(ck, map_location="cpu", weights_only=True)  # nothing but tensors and plain values
    assert set(raw) == {"chromexp_checkpoint", "meta", "tensors", "sha256"}
    assert all(isinstance(t, torch.Tensor) for t in raw["tensors"].values())
    meta = json.loads(raw["meta"])  # fingerprint and history are JSON text
    assert meta["fingerprint"]["seed"] == 3 and len(meta["history"]) == 2 and meta["finished"] is True
    # the pickle inside names no class or function outside torch's tensor rebuilding
    with zipfile.ZipFile(ck) as z:
        pickled = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    names = {str(arg) for op, arg, _ in pickletools.genops(pickled) if op.name == "GLOBAL"}
    assert names and all(n.startswith(("torch ", "torch._utils ", "collections OrderedDict")) for n in names), names


def test_round_trip_keeps_every_kind_of_value(tmp_path):
    from chromexp.training import checkpoint

    state = {
        "version": 1,
        "fingerprint": {"train": {"lr": 1e-3}, "pair": (1, 2.5), "seed": 7},
        "best_val": float("inf"),
        "nan": float("nan"),
        "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.9, 0.999)}]},
        "bf16": torch.randn(3, dtype=torch.bfloat16),
        "mask": torch.tensor([True, False]),
        "empty": torch.zeros(0, 4),
        "__odd_key": None,
    }
    path = checkpoint.save_checkpoint(tmp_path / "s.pt", state)
    back = checkpoint.load_checkpoint(path, fingerprint=state["fingerprint"])
    assert back["fingerprint"] == state["fingerprint"] and isinstance(back["fingerprint"]["pair"], tuple)
    assert back["best_val"] == float("inf") and back["nan"] != back["nan"]
    assert list(back["optimizer"]["state"]) == [0] and back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    for key in ("bf16", "mask", "empty"):
        assert back[key].dtype == state[key].dtype and torch.equal(back[key], state[key])
    assert back["__odd_key"] is None
    with pytest.raises(TypeError, match=r"state\['model'\] is a torch.nn.modules.linear.Linear"):
        checkpoint.save_checkpoint(tmp_path / "x.pt", {"model": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match="belongs to a different run"):
        checkpoint.load_checkpoint(path, fingerprint={"seed": 8})


# -- item 3: a changed checkpoint is never read back silently ------------------------------------------
def test_edited_weights_are_refused_naming_the_file_and_the_command_that_retrains(tmp_path, monkeypatch):
    monkeypatch.setenv(JOB_COMMAND_VAR, COMMAND)
    ck = tmp_path / "model.pt"
    _fit(ck)
    _edit_one_weight(ck)
    with pytest.raises(ValueError, match=r"model\.pt does not match the content hash") as err:
        _fit(ck, model=_model(seed=9))  # the code before returned the edited model as if trained
    assert f"retrain with `{COMMAND}`" in str(err.value)


def test_old_format_checkpoints_are_never_unpickled_and_migrate_safely(tmp_path):
    from chromexp.training import checkpoint

    ck = tmp_path / "old.pt"
    new = _fit(tmp_path / "new.pt")
    old_state = checkpoint.load_checkpoint(tmp_path / "new.pt")
    torch.save(old_state, ck)  # chromexp's format 1: the pickled dict itself
    with pytest.raises(ValueError, match=r"old\.pt has chromexp's old format.*migrate"):
        _fit(ck)
    checkpoint.migrate_checkpoint(ck)
    back = _fit(ck, model=_model(seed=9))  # read back: stored fingerprint unchanged, nothing trained
    assert back.resumed_from == len(back.history) and torch.equal(back.model[0].weight, new.model[0].weight)
    # a format-1 file holding code is refused by the migration too
    evil, marker = tmp_path / "evil.pt", tmp_path / "PWNED"
    _plant(evil, marker)
    with pytest.raises(ValueError, match="not unpickled"):
        checkpoint.migrate_checkpoint(evil)
    assert not marker.exists()


def test_the_migrate_command_converts_a_folder_and_check_reports_an_edited_file(tmp_path, capsys):
    """``python -m chromexp.training.checkpoint migrate <folder>`` (README) converts every format-1
    ``*.pt`` inside; ``check`` exits 1 naming an edited file."""
    from chromexp.training import checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    _fit(folder / "a.pt")
    torch.save(checkpoint.load_checkpoint(folder / "a.pt"), folder / "a.pt")  # as chromexp format 1 wrote it
    assert checkpoint.main(["check", str(folder)]) == 1 and "old format" in capsys.readouterr().err
    assert checkpoint.main(["migrate", str(folder)]) == 0
    assert checkpoint.main(["check", str(folder)]) == 0 and checkpoint.load_checkpoint(folder / "a.pt")["finished"]
    _edit_one_weight(folder / "a.pt")
    assert checkpoint.main(["check", str(folder)]) == 1
    assert "a.pt does not match the content hash" in capsys.readouterr().err


# -- item 6: a full disk while a checkpoint is written ------------------------------------------------
def test_full_disk_while_writing_a_checkpoint_says_disk_full_and_names_the_path(tmp_path):
    # a real write failure: the file-size limit makes write() fail with EFBIG, as a full disk with ENOSPC
    script = textwrap.dedent(
        f"""
        import resource, signal, sys, torch
        from torch import nn
        from chromexp.training import train
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        torch.manual_seed(0)
        model = nn.Linear(64, 256)
        x = torch.randn(32, 64)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))
        tp = dict(lr=1e-2, batch_size=16, max_epochs=1, lr_factor=0.2, lr_patience=3, min_lr=1e-6,
                  early_stopping_patience=5)
        try:
            train.fit(model, (x, x.sum(1, keepdim=True).repeat(1, 256)), (x, x.sum(1, keepdim=True).repeat(1, 256)),
                      train_params=tp, checkpoint_path={str(tmp_path / "ck.pt")!r}, progress=False)
        except BaseException as err:
            print(f"{{type(err).__name__}}: {{err}}")
            sys.exit(3)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 3, proc.stderr[-2000:]
    line = proc.stdout.strip().splitlines()[-1]
    assert line.startswith("OSError:") and "disk full" in line and str(tmp_path / "ck.pt") in line
    assert not (tmp_path / "ck.pt").exists() and not list(tmp_path.glob(".ck.pt.tmp-*"))


# -- issue 22 item 5: one checkpoint identity; no unsafe load anywhere ---------------------------------
def test_no_unsafe_load_and_no_second_definition_of_a_checkpoint_identity():
    import re

    sources = [p for d in ("lib", "bench", "notebooks") for p in (REPO / d).rglob("*.py")]
    unsafe, private, writers = [], [], []
    for path in sources:
        text = path.read_text()
        rel = path.relative_to(REPO).as_posix()
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in m.group(1):
                unsafe.append(f"{rel}: {m.group(0)}")
        # every model family (chromoformer, promoter CNN, claster, mittal's hierarchical models, the
        # E116 binned CNN, ...) saves through save_checkpoint: a torch.save elsewhere writes a file
        # without a content hash that load_checkpoint refuses. resources/ holds scripts run in other
        # environments (EIR's reference dump) that cannot import chromexp.
        if re.search(r"\btorch\.save\(|\bpickle\.(dump|load)s?\(", text) and not (
            rel == "lib/chromexp/training/checkpoint.py" or rel.startswith("lib/chromexp/resources/")
        ):
            writers.append(rel)
        if "training/" not in rel and re.search(r"\btrain\._fingerprint\b|\b_fingerprint\(", text):
            private.append(rel)
    assert not unsafe, f"torch.load without weights_only=True: {unsafe}"
    assert not writers, f"torch.save/pickle outside chromexp.training.checkpoint: {writers}"
    # a recipe's checkpoint identity (name, seed, fingerprint) is computed by the recipe itself,
    # never rebuilt elsewhere from the training engine's private fingerprint
    assert not private, f"the engine's private _fingerprint used outside chromexp.training: {private}"
