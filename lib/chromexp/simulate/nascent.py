"""Simulated nascent transcription (EU-seq-like) for CLASTER's 1-kb profile head: a new, separately seeded stream.

docs/methods.md, "CLASTER adapted" (the model is stated in full there and in notebook 47).
:func:`ensure_nascent` writes, for one cell type of a semi-synthetic dataset, into
``<raw>/nascent/`` (nothing else of the dataset is read-modified; every existing file keeps its bytes):

* ``<EID>.bedGraph.gz`` — nascent reads per 20-bp cell (``chrom start end count``; zero cells
  omitted, equal neighbouring cells merged), over the same regions as the marks' reads around the
  dataset's TSSs (TSS ± (``simulate.half_window`` + ``simulate.window_pad``));
* ``<EID>.truth.tsv.gz`` — per dataset gene and 1-kb bin of TSS ± 20 kb (strand-oriented) the
  planted decomposition of the expected signal: the gene's own pause peak, body, read-through and
  divergent antisense, the neighbouring genes' transcription, eRNAs of active planted enhancers,
  the floor, their sum, and that sum processed as CLASTER processes its targets;
* ``<EID>.json`` — format version, seed, knobs, the sha256 of the raw dataset's manifest and of
  the two files: a finished stream for these inputs is reused, anything else regenerated.

Model (units: reads per bp of expected density). For cell type c, every gene g of the *real* gene
table (not only the simulated subset) with TSS t, strand s, real length ℓ and real RPKM R_gc, and
u = s · (x − t) the downstream coordinate:

* elongation density ρ = κ · R_gc;
* pause peak π · ρ · N(u; μ_p, σ_p²) (a normal density, so its mass is π · ρ reads);
* gene body ρ · exp(−u / λ_e) for 0 ≤ u ≤ ℓ (the 5'→3' decline CLASTER describes);
* read-through ρ · exp(−ℓ / λ_e) · exp(−(u − ℓ) / λ_rt) for u > ℓ;
* divergent antisense a · ρ · exp(u / λ_as) for u < 0;
* eRNA η · (2^{contribution_c} − 1) · exp(−(x − centre)² / (2 (width / 4)²)) at every planted
  enhancer active in c (``contribution_<EID>`` > 0 in ``truth/enhancers.tsv.gz``);
* a floor f everywhere.

Counts per 20-bp cell: Poisson(20 · density · G), G ~ Gamma(k, 1/k) (``overdispersion_shape``, as
the marks' reads). Random numbers come from a generator keyed on (seed, "nascent", EID) only, so
the stream is independent of every other draw of the simulator: adding it changes no existing file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import paths
from ..constants import CHROMOSOMES
from ..data import nascent as dn
from ..utils import atomic_path, file_sha256, get_logger
from .common import gzip_bytes, seeded_rng
from .roadmap import load_real_genes, read_manifest

log = get_logger("chromexp.simulate.nascent")

#: Bumped whenever the nascent model changes, so a stream made by an older version is regenerated.
FORMAT_VERSION = 1
#: The ``nascent:`` knobs (params/defaults.yaml).
KNOBS = (
    "kappa",
    "pause_weight",
    "pause_offset",
    "pause_sd",
    "elongation_decay",
    "readthrough_decay",
    "antisense_share",
    "antisense_decay",
    "erna_amplitude",
    "floor",
    "overdispersion_shape",
    "gzip_level",
)
TRUTH_COLUMNS = ("gene_id", "bin", "offset_kb", "rho", *dn.TRUTH_COMPONENTS, "expected", "expected_smoothed")


def _check_knobs(knobs: Mapping[str, Any]) -> dict[str, float]:
    missing = [k for k in KNOBS if k not in knobs]
    if missing:
        raise ValueError(f"The nascent parameter block lacks {missing} (params/defaults.yaml, nascent:).")
    out = {k: float(knobs[k]) for k in KNOBS}
    for k in KNOBS:
        if k != "pause_offset" and out[k] < 0:
            raise ValueError(f"nascent.{k} must be >= 0; got {knobs[k]!r}.")
    for k in ("pause_sd", "elongation_decay", "readthrough_decay", "antisense_decay", "overdispersion_shape"):
        if out[k] <= 0:
            raise ValueError(f"nascent.{k} must be > 0; got {knobs[k]!r}.")
    return out


def gene_components(u: np.ndarray, rho: float, length: float, k: Mapping[str, float]) -> dict[str, np.ndarray]:
    """A gene's four parts at downstream coordinates ``u`` (bp; u = 0 at the TSS), reads per bp.

    Parameters
    ----------
    u : numpy.ndarray, shape (n,)
    rho : float
        Elongation density κ · RPKM.
    length : float
        Gene length ℓ (bp).
    k : mapping
        The checked knobs.

    Returns
    -------
    dict of numpy.ndarray, shape (n,)
        ``pause, body, readthrough, antisense``.
    """
    sd = k["pause_sd"]
    pause = k["pause_weight"] * rho * np.exp(-0.5 * ((u - k["pause_offset"]) / sd) ** 2) / (sd * np.sqrt(2 * np.pi))
    inside = (u >= 0) & (u <= length)
    body = np.where(inside, rho * np.exp(-np.clip(u, 0, None) / k["elongation_decay"]), 0.0)
    after = u > length
    rt = np.where(
        after,
        rho * np.exp(-length / k["elongation_decay"]) * np.exp(-np.clip(u - length, 0, None) / k["readthrough_decay"]),
        0.0,
    )
    anti = np.where(u < 0, k["antisense_share"] * rho * np.exp(np.clip(u, None, 0) / k["antisense_decay"]), 0.0)
    return {"pause": pause, "body": body, "readthrough": rt, "antisense": anti}


def _reach(k: Mapping[str, float]) -> tuple[float, float]:
    """How far upstream / past the gene end a gene's parts are above exp(−20) of their scale."""
    up = max(20 * k["antisense_decay"], abs(k["pause_offset"]) + 10 * k["pause_sd"])
    down = 20 * k["readthrough_decay"]
    return up, down


def _grid(genes: pd.DataFrame, reach: int) -> dict[str, np.ndarray]:
    """20-bp cell starts over each gene's TSS ± ``reach`` (merged), per chromosome."""
    step = dn.CELL_BP
    out = {}
    present = set(genes["chrom"])
    for chrom in [c for c in CHROMOSOMES if c in present] + sorted(present - set(CHROMOSOMES)):
        t = genes.loc[genes["chrom"] == chrom, "tss"].to_numpy(np.int64)
        s = np.clip((t - reach) // step * step, 0, None)
        e = t + reach
        order = np.argsort(s, kind="stable")
        s, e = s[order], e[order]
        cells, run_s, run_e = [], None, None
        for a, b in zip(s, e, strict=True):
            if run_e is not None and a <= run_e:
                run_e = max(run_e, b)
                continue
            if run_e is not None:
                cells.append(np.arange(run_s, run_e, step, dtype=np.int64))
            run_s, run_e = a, b
        if run_e is not None:
            cells.append(np.arange(run_s, run_e, step, dtype=np.int64))
        out[chrom] = np.concatenate(cells) if cells else np.zeros(0, np.int64)
    return out


def expected_density(
    cells: np.ndarray,
    chrom: str,
    table: pd.DataFrame,
    rpkm: np.ndarray,
    enhancers: pd.DataFrame,
    knobs: Mapping[str, float],
) -> dict[str, np.ndarray]:
    """Expected nascent density (reads per bp) at the centres of 20-bp ``cells`` of one chromosome, by part.

    Parameters
    ----------
    cells : numpy.ndarray of int, shape (n_cells,)
        Sorted cell starts.
    table : pandas.DataFrame
        The real gene table (``gene_id, chrom, tss, strand, gene_length``), every gene.
    rpkm : numpy.ndarray, shape (len(table),)
        Real RPKM of the cell type, aligned with ``table``.
    enhancers : pandas.DataFrame
        Planted enhancers active in the cell type: ``chrom, center, width, contribution``.

    Returns
    -------
    dict of numpy.ndarray, shape (n_cells,)
        ``pause, body, readthrough, antisense`` (summed over all genes), ``erna``, ``floor``.
    """
    k = knobs
    x = cells.astype(np.float64) + dn.CELL_BP / 2
    out = {name: np.zeros(len(cells)) for name in ("pause", "body", "readthrough", "antisense", "erna")}
    out["floor"] = np.full(len(cells), k["floor"])
    if len(cells) == 0:
        return out
    up, down = _reach(k)
    sel = np.flatnonzero((table["chrom"].to_numpy() == chrom) & (rpkm > 0))
    tss = table["tss"].to_numpy(np.float64)[sel]
    plus = table["strand"].to_numpy()[sel] == "+"
    length = table["gene_length"].to_numpy(np.float64)[sel]
    lo = np.where(plus, tss - up, tss - length - down)
    hi = np.where(plus, tss + length + down, tss + up)
    a = np.searchsorted(x, lo)
    b = np.searchsorted(x, hi, side="right")
    for j in np.flatnonzero(b > a):
        i0, i1 = a[j], b[j]
        u = (x[i0:i1] - tss[j]) if plus[j] else (tss[j] - x[i0:i1])
        parts = gene_components(u, k["kappa"] * rpkm[sel[j]], length[j], k)
        for name, v in parts.items():
            out[name][i0:i1] += v
    e = enhancers[enhancers["chrom"] == chrom]
    for c, w, contrib in zip(
        e["center"].to_numpy(float), e["width"].to_numpy(float), e["contribution"].to_numpy(float)
    ):
        sd = w / 4.0
        i0, i1 = np.searchsorted(x, c - 5 * sd), np.searchsorted(x, c + 5 * sd, side="right")
        out["erna"][i0:i1] += k["erna_amplitude"] * (2.0**contrib - 1.0) * np.exp(-0.5 * ((x[i0:i1] - c) / sd) ** 2)
    return out


def format_bedgraph(chrom: str, starts: np.ndarray, counts: np.ndarray, step: int = dn.CELL_BP) -> bytes:
    """BedGraph lines for the nonzero cells, adjacent cells with equal counts merged (vectorised)."""
    nz = counts > 0
    s, c = starts[nz], counts[nz]
    if len(s) == 0:
        return b""
    new = np.ones(len(s), bool)
    new[1:] = (s[1:] != s[:-1] + step) | (c[1:] != c[:-1])
    first = np.flatnonzero(new)
    last = np.append(first[1:], len(s)) - 1
    lines = pd.DataFrame({"c": chrom, "s": s[first], "e": s[last] + step, "v": c[first]})
    return lines.to_csv(sep="\t", header=False, index=False, lineterminator="\n").encode()


_sha256 = file_sha256


def _stamp(params: Mapping[str, Any], raw: Path) -> dict:
    manifest = raw / "manifest.json"
    return {
        "format_version": FORMAT_VERSION,
        "seed": int(params["seed"]),
        "knobs": {k: params["nascent"][k] for k in KNOBS},
        "target_half_window": int(params["signal"]["half_window"]),
        "raw_manifest_sha256": _sha256(manifest) if manifest.is_file() else None,
    }


def is_current(params: Mapping[str, Any], cell_type: str, raw: str | os.PathLike | None = None) -> bool:
    """Whether ``<raw>/nascent/<EID>.*`` exist, were made from these inputs and knobs, and are intact."""
    raw = Path(raw) if raw is not None else paths.raw_dir(params)
    meta_path = dn.nascent_dir(raw) / f"{cell_type}.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    if meta.get("stamp") != json.loads(json.dumps(_stamp(params, raw))):
        return False
    for name, digest in meta.get("files", {}).items():
        p = dn.nascent_dir(raw) / name
        if not p.is_file() or _sha256(p) != digest:
            return False
    return bool(meta.get("files"))


def simulate_cell_type(params: Mapping[str, Any], cell_type: str, raw: Path) -> tuple[bytes, pd.DataFrame]:
    """The nascent bedGraph bytes and the planted truth table of one cell type (nothing written)."""
    k = _check_knobs(params["nascent"])
    sim = params["simulate"]
    genes = pd.read_csv(raw / "genes.tsv", sep="\t", dtype={"chrom": str, "gene_id": str, "strand": str})
    enh = pd.read_csv(raw / "truth" / "enhancers.tsv.gz", sep="\t", dtype={"chrom": str, "gene_id": str})
    col = f"contribution_{cell_type}"
    if col not in enh.columns:
        raise ValueError(f"{raw}/truth/enhancers.tsv.gz has no {col}: {cell_type} was not simulated in this dataset.")
    active = enh[enh[col] > 0].rename(columns={col: "contribution"})[["chrom", "center", "width", "contribution"]]
    table = load_real_genes()
    if cell_type not in table.columns:
        raise ValueError(f"The real gene table has no RPKM column for {cell_type}.")
    rpkm = table[cell_type].to_numpy(np.float64)
    half = int(sim["half_window"]) + int(sim["window_pad"])
    target_half = int(params["signal"]["half_window"])
    if target_half > int(sim["half_window"]):
        raise ValueError(
            f"signal.half_window ({target_half}) is wider than the simulated reads (simulate.half_window "
            f"{sim['half_window']}): nascent targets there would be empty."
        )
    grid = _grid(genes, half)
    rng = seeded_rng(int(params["seed"]), "nascent", cell_type)
    chunks, grids = [], {}
    for chrom, cells in grid.items():
        parts = expected_density(cells, chrom, table, rpkm, active, k)
        total = sum(parts.values())
        lam = total * dn.CELL_BP * rng.gamma(k["overdispersion_shape"], 1.0 / k["overdispersion_shape"], len(cells))
        counts = rng.poisson(lam)
        chunks.append(format_bedgraph(chrom, cells, counts))
        grids[chrom] = (cells, parts)
    truth = planted_truth(genes, table, rpkm, grids, target_half, k)
    return b"".join(chunks), truth


def _to_target_cells(values: np.ndarray, phase: int) -> np.ndarray:
    """Grid-cell values → the gene's TSS-aligned 20-bp cells (base-weighted means, as :func:`dn.window_cells`).

    ``values`` holds the ``n + 1`` grid cells from the one containing the first target cell's start;
    ``phase`` is that start's offset (bp) inside its grid cell.
    """
    w = phase / dn.CELL_BP
    return (1.0 - w) * values[:-1] + w * values[1:]


def planted_truth(
    genes: pd.DataFrame,
    table: pd.DataFrame,
    rpkm: np.ndarray,
    grids: Mapping[str, tuple[np.ndarray, Mapping[str, np.ndarray]]],
    target_half: int,
    knobs: Mapping[str, float],
) -> pd.DataFrame:
    """Per (dataset gene, 1-kb bin of TSS ± ``target_half``) the expected reads per 20-bp cell, by part.

    The expected density is taken on the simulation grid (the cells the reads were drawn from) and
    averaged onto the gene's own TSS-aligned 20-bp target cells exactly as the observed track is
    (:func:`chromexp.data.nascent.window_cells`), strand-oriented. Parts: the gene's own pause,
    body, read-through and antisense, the other genes' transcription (``neighbours``), eRNAs and the
    floor; ``expected`` is their sum and ``expected_smoothed`` that sum processed as CLASTER
    processes its targets (the noise-free target).

    Parameters
    ----------
    grids : mapping
        chrom → (sorted grid cell starts, :func:`expected_density` parts on them).
    """
    k = knobs
    step = dn.CELL_BP
    n_cells = 2 * target_half // step
    n_bins = n_cells // dn.BIN_CELLS
    rid = pd.Series(np.arange(len(table)), index=table["gene_id"].to_numpy())
    rows = []
    for g in genes.itertuples(index=False):
        cells, parts = grids[g.chrom]
        start = int(g.tss) - target_half
        k0 = int(np.searchsorted(cells, start, side="right")) - 1
        sl = slice(k0, k0 + n_cells + 1)
        if k0 < 0 or k0 + n_cells >= len(cells) or cells[k0 + n_cells] != cells[k0] + step * n_cells:
            raise ValueError(f"The nascent grid does not cover {g.gene_id}'s TSS ± {target_half} bp contiguously.")
        phase = start - int(cells[k0])
        x = cells[sl].astype(np.float64) + step / 2
        u = (x - g.tss) if g.strand == "+" else (g.tss - x)
        r = float(rpkm[rid[g.gene_id]]) if g.gene_id in rid.index else 0.0
        own = gene_components(u, k["kappa"] * r, float(g.gene_length), k)
        comp = {n: _to_target_cells(v, phase) for n, v in own.items()}
        all_genes = _to_target_cells(sum(parts[n][sl] for n in ("pause", "body", "readthrough", "antisense")), phase)
        comp["neighbours"] = np.clip(all_genes - sum(comp.values()), 0, None)
        comp["erna"] = _to_target_cells(parts["erna"][sl], phase)
        comp["floor"] = _to_target_cells(parts["floor"][sl], phase)
        per_cell = {n: comp[n] * step for n in dn.TRUTH_COMPONENTS}  # reads per 20-bp cell
        if g.strand == "-":
            per_cell = {n: v[::-1] for n, v in per_cell.items()}
        expected = sum(per_cell.values())
        rows.append(
            pd.DataFrame(
                {
                    "gene_id": g.gene_id,
                    "bin": np.arange(n_bins),
                    "offset_kb": np.arange(n_bins) - n_bins // 2,
                    "rho": k["kappa"] * r,
                    **{n: v.reshape(n_bins, dn.BIN_CELLS).mean(axis=1) for n, v in per_cell.items()},
                    "expected": expected.reshape(n_bins, dn.BIN_CELLS).mean(axis=1),
                    "expected_smoothed": dn.claster_targets(expected[None, :])[0],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)[list(TRUTH_COLUMNS)]


def ensure_nascent(params: Mapping[str, Any], cell_type: str, force: bool = False) -> dict[str, Path]:
    """Simulate (or reuse) the nascent track and planted truth of ``cell_type`` (semi-synthetic data only).

    Returns
    -------
    dict
        ``{"track": <EID>.bedGraph.gz, "truth": <EID>.truth.tsv.gz}``.

    Raises
    ------
    ValueError
        On real data, or when the raw dataset is missing (generate it first: notebook 00).
    """
    if params["data"]["source"] != "semisynthetic":
        raise ValueError(
            f"Nascent transcription is simulated for semi-synthetic data only (data.source is "
            f"{params['data']['source']!r}); real data have no nascent track: use CLASTER's gene head."
        )
    raw = paths.raw_dir(params)
    if read_manifest(raw) is None:
        raise ValueError(f"No semi-synthetic dataset at {raw}: generate it first (notebook 00).")
    out = {"track": dn.track_path(raw, cell_type), "truth": dn.truth_path(raw, cell_type)}
    if not force and is_current(params, cell_type, raw):
        return out
    track, truth = simulate_cell_type(params, cell_type, raw)
    level = int(params["nascent"]["gzip_level"])
    out["track"].parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out["track"]) as tmp:
        tmp.write_bytes(gzip_bytes(track, level))
    with atomic_path(out["truth"]) as tmp:
        body = truth.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n").encode()
        tmp.write_bytes(gzip_bytes(body, level))
    meta = {"stamp": _stamp(params, raw), "files": {p.name: _sha256(p) for p in out.values()}}
    with atomic_path(dn.nascent_dir(raw) / f"{cell_type}.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    log.info("simulated nascent transcription of %s: %s", cell_type, out["track"])
    return out
