"""The official PyTorch code of Chromoformer's baselines, fetched at a pinned commit for the oracle tests.

The files under a permissive licence are vendored verbatim, with their licence, in
``tests/data/baseline_refs/<owner>+<name>/<commit>/`` (AttentiveChrome, MIT; DeepDiffChrome,
Apache-2.0), so their oracle tests run everywhere, CI included. ``make baseline-refs`` (this file as a
script) copies every pinned file, HM-CRNN's too, into ``<repo>/.venv-refs/baselines/`` (gitignored; or
``$CHROMEXP_BASELINE_REFS``), from GitHub with ``git`` or from a local clone or mirror
(``--mirror-root DIR`` holding ``<owner>+<name>/repo`` git directories, or ``<owner>+<name>`` clones).
:func:`load` checks each file's git blob SHA-1 against the pin, then executes its imports, class
and function definitions and constant assignments only (the module-level training loops and
argument parsing of the scripts are skipped; ``torchvision``, imported and unused by DeepDiff's
``models.py``, is stubbed). The oracle tests in tests/test_baseline_models.py skip, naming
``make baseline-refs``, when the files are absent.

Licences: AttentiveChrome MIT; DeepDiffChrome Apache-2.0; deeply-learning-regulatory-latent-space
states none (all rights reserved), so it is read at test time only, never copied into the
repository: its oracle tests skip without ``make baseline-refs`` (which needs GitHub).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: name -> (GitHub repository, full commit, path in the repository, git blob SHA-1 of that file, licence)
PINS: dict[str, tuple[str, str, str, str, str]] = {
    "attentivechrome": (
        "QData/AttentiveChrome",
        "ba0dda4bf67aa54b975de9bf8cfe1f49ba19981e",
        "v2PyTorch/models.py",
        "1a3358c05e444f743b20f9150511877c85c8ad51",
        "MIT",
    ),
    "deepdiff": (
        "QData/DeepDiffChrome",
        "2aef9c5520595b14da265578c2c04c3d65a4ad01",
        "models.py",
        "dfb88b89c69315186a93fc0582088fe3187d9155",
        "Apache-2.0",
    ),
    "deepdiff_loss": (
        "QData/DeepDiffChrome",
        "2aef9c5520595b14da265578c2c04c3d65a4ad01",
        "SiameseLoss.py",
        "de14b56880b153be8f627dd6bea269efaee59a94",
        "Apache-2.0",
    ),
    "hmcrnn": (
        "pptnz/deeply-learning-regulatory-latent-space",
        "17f4d4ebe043200d3a9bc51cca9362222c0b172e",
        "model.py",
        "91ec10c9fe60fbd0544d832d9fb9be5cf56f7b21",
        "none stated",
    ),
}


def refs_dir() -> Path:
    """Where the fetched files live: ``$CHROMEXP_BASELINE_REFS`` or ``<repo>/.venv-refs/baselines``."""
    return Path(os.environ.get("CHROMEXP_BASELINE_REFS") or REPO / ".venv-refs" / "baselines")


def blob_sha1(data: bytes) -> str:
    """Git's blob id of ``data`` (``git hash-object``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


#: Verbatim copies of the permissively licensed pinned files, each beside its repository's LICENSE.
VENDORED = REPO / "tests" / "data" / "baseline_refs"


def _file(name: str) -> Path:
    """The fetched copy in :func:`refs_dir` if there is one, else the vendored copy (which may not exist)."""
    repo, commit, path, _, _ = PINS[name]
    rel = Path(repo.replace("/", "+")) / commit[:12] / path
    fetched = refs_dir() / rel
    return fetched if fetched.is_file() else VENDORED / rel


def available(name: str) -> bool:
    """Whether the pinned file of ``name`` was fetched."""
    return _file(name).is_file()


def _git_show(git_dir: Path, commit: str, path: str) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True, capture_output=True
    ).stdout


def fetch(mirror_root: str | Path | None = None) -> list[Path]:
    """Copy every pinned file into :func:`refs_dir`, verified against its blob SHA-1.

    Parameters
    ----------
    mirror_root : path, optional
        A folder of local git directories (``<owner>+<name>/repo`` or ``<owner>+<name>/.git``); without
        it each repository is cloned from GitHub (``git clone --filter=blob:none``) into a temporary folder.
    """
    written, clones = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for repo, commit, path, blob, _ in PINS.values():
            if repo not in clones:
                if mirror_root is not None:
                    base = Path(mirror_root) / repo.replace("/", "+")
                    candidates = [base / "repo", base / ".git", base]
                    git_dir = next((c for c in candidates if (c / "HEAD").is_file()), None)
                    if git_dir is None:
                        raise SystemExit(f"No git directory for {repo} under {base}.")
                else:
                    git_dir = Path(tmp) / repo.replace("/", "+")
                    subprocess.run(
                        [
                            "git",
                            "clone",
                            "--quiet",
                            "--bare",
                            "--filter=blob:none",
                            f"https://github.com/{repo}",
                            git_dir,
                        ],
                        check=True,
                    )
                clones[repo] = git_dir
            data = _git_show(clones[repo], commit, path)
            if blob_sha1(data) != blob:
                raise SystemExit(f"{repo}@{commit[:7]}:{path} has blob {blob_sha1(data)}, expected {blob}.")
            out = refs_dir() / repo.replace("/", "+") / commit[:12] / path
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(data)
            written.append(out)
    return written


def _definitions_only(tree: ast.Module) -> ast.Module:
    """Keep imports, class and function definitions and assignments of literals (no code that runs)."""
    keep = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef)):
            keep.append(node)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
            keep.append(node)
    tree.body = keep
    return tree


def load(name: str) -> types.ModuleType:
    """The pinned reference file of ``name`` as a module (definitions only; see the module docstring).

    Raises
    ------
    FileNotFoundError
        When it was not fetched (``make baseline-refs``).
    ValueError
        When the file on disk is not the pinned one.
    """
    repo, commit, path, blob, _ = PINS[name]
    file = _file(name)
    if not file.is_file():
        raise FileNotFoundError(f"{repo}@{commit[:7]}:{path} is not in {refs_dir()}; run `make baseline-refs`.")
    data = file.read_bytes()
    if blob_sha1(data) != blob:
        raise ValueError(f"{file} is not {repo}@{commit[:7]}:{path} (blob {blob_sha1(data)}, expected {blob}).")
    tree = _definitions_only(ast.parse(data.decode(), filename=str(file)))
    module = types.ModuleType(f"chromexp_reference_{name}")
    module.__file__ = str(file)
    # HM-CRNN's forward moves its zero LSTM states to a module-level ``device`` (a CUDA probe we skip)
    module.__dict__["device"] = __import__("torch").device("cpu")
    stubs = [m for m in _imported(tree) if m not in sys.modules and importlib.util.find_spec(m) is None]
    for missing in stubs:  # unused imports: torchvision (DeepDiff), the repositories' own data loaders
        stub = types.ModuleType(missing)
        stub.datasets = stub.transforms = types.ModuleType(f"{missing}.sub")
        sys.modules[missing] = stub
    try:
        exec(compile(tree, str(file), "exec"), module.__dict__)
    finally:
        for missing in stubs:
            sys.modules.pop(missing, None)
    return module


def _imported(tree: ast.Module) -> list[str]:
    """Top-level names of the modules ``tree`` imports."""
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror-root", help="folder of local git directories instead of GitHub")
    args = parser.parse_args(argv)
    for path in fetch(args.mirror_root):
        print(path)


if __name__ == "__main__":
    main()
