"""CLASTER's own experiments, scored against the simulator's planted truth (notebook 47).

docs/methods.md, "CLASTER adapted". The models are notebook 47's fitted predictors (raw inputs in,
target units out; :class:`chromexp.experiments.claster.Predictor`, used here only through its call):

* :func:`silencing_effects` — in-silico silencing of the landscape (CLASTER's P2, heterochromatin
  substitution: the active marks of a 2-kb region scaled by ``level``, 0 = removed; the
  repressive marks kept), on the study's 2-kb distal regions of TSS ± 20 kb
  (:func:`chromexp.analyses.perturb.regions`). Effect = change of the predicted log2 expression
  (gene head) or of the gene's length-normalised nascent signal (profile head).
* :func:`contact_removal_effects` — removal of one pcHi-C contact at a time from the virtual-4C
  track (the analogue of notebook 60's pCRE ablation).
* :func:`structure_gain` — accuracy with vs without the structure branch, overall and on genes with
  vs without an active planted pcHi-C enhancer (the mirror of Chromoformer's Fig. 3c).
* :func:`pause_peaks` — the profile head's peak position against the planted pause peak.

Recovery of the planted enhancers uses :func:`chromexp.analyses.perturb.recovery` (AUROC/AUPRC,
all rows and distance-matched, with the distance-only baseline) exactly as notebook 60 does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..constants import MARKS
from ..data import nascent as dn
from ..metrics import pearson_r
from . import perturb

#: The marks CLASTER's P2 silencing removes (its ATAC, H3K4me3, H3K27ac): every active mark; H3K27me3 and H3K9me3 stay.
SILENCED_MARKS = ("H3K4me1", "H3K4me3", "H3K36me3", "H3K27ac", "H3K9ac")
#: Columns of ``claster_silencing.tsv.gz`` / ``claster_contacts.tsv.gz`` (docs/data-formats.md).
SILENCING_COLUMNS = ("cell_type", "provenance", "model", "fold", "gene_id", "region", "region_kind", "position",
                     "distance", "chrom", "start", "end", "level", "effect", "baseline")  # fmt: skip
CONTACT_COLUMNS = ("cell_type", "provenance", "model", "fold", "gene_id", "chrom", "start", "end", "frequency",
                   "distance", "effect", "baseline")  # fmt: skip


def _call(predictor: Callable, landscape: np.ndarray, structure: np.ndarray | None, batch: int) -> np.ndarray:
    outs = []
    with torch.no_grad():
        for a in range(0, len(landscape), batch):
            args = [torch.from_numpy(np.ascontiguousarray(landscape[a : a + batch]))]
            if structure is not None:
                args.append(torch.from_numpy(np.ascontiguousarray(structure[a : a + batch])))
            outs.append(predictor(*args).detach().cpu().numpy())
    return np.concatenate(outs)


def _score(out: np.ndarray, lengths: np.ndarray | None) -> np.ndarray:
    """Gene head: the prediction; profile head: the body's length-normalised nascent signal."""
    return out if out.ndim == 1 else dn.body_area(out, lengths)


def silencing_effects(
    predictor: Callable,
    landscape: np.ndarray,
    genes: pd.DataFrame,
    rows: np.ndarray,
    *,
    marks: Sequence[str],
    silenced: Sequence[str] = SILENCED_MARKS,
    level: float = 0.0,
    structure: np.ndarray | None = None,
    gene_lengths: np.ndarray | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Effect of silencing each 2-kb region of TSS ± 20 kb, gene by gene.

    Parameters
    ----------
    predictor : callable
        ``predictor(landscape, [structure])`` on raw inputs → ``(n,)`` or ``(n, bins)`` (torch).
    landscape : numpy.ndarray, shape (n_genes, n_marks, 400)
        Raw ln(depth + 1) at 100 bp (strand-oriented), all genes of the dataset.
    genes : pandas.DataFrame
        The dataset's genes (``gene_id, chrom, tss, strand``), aligned with ``landscape``.
    rows : numpy.ndarray of int
        Genes to perturb (e.g. a fold's test genes).
    marks : sequence of str
        The landscape's marks, in its order.
    silenced : sequence of str
        Marks scaled by ``level`` in the region (default CLASTER's P2 analogue).
    structure : numpy.ndarray, optional
        The structure input of the same genes (kept unperturbed).
    gene_lengths : numpy.ndarray, optional
        For a profile head's gene-level score.

    Returns
    -------
    pandas.DataFrame
        One row per (gene, region): ``gene_id, region, region_kind, position, distance, chrom,
        start, end, level, effect, baseline`` (effect = score(perturbed) − score(baseline)).
    """
    if landscape.shape[2] != 400:
        raise ValueError(f"silencing_effects expects the option-A landscape (400 bins); got {landscape.shape}.")
    idx = [list(marks).index(m) for m in silenced if m in marks]
    if not idx:
        raise ValueError(f"None of the silenced marks {list(silenced)} is in the landscape's marks {list(marks)}.")
    region_list = perturb.regions(promoter_flank=3000, resolutions=(100,), window=40_000)
    rows = np.asarray(rows, dtype=np.int64)
    x0 = landscape[rows]
    s0 = structure[rows] if structure is not None else None
    lengths = gene_lengths[rows] if gene_lengths is not None else None
    base = _score(_call(predictor, x0, s0, batch_size), lengths)
    effects = []
    for r in region_list:
        x = x0.copy()
        sl = r.bins[100]
        x[:, idx, sl] *= float(level)
        effects.append(_score(_call(predictor, x, s0, batch_size), lengths) - base)
    table = perturb.region_table(genes.iloc[rows].reset_index(drop=True), region_list)
    n = len(rows)
    table["level"] = float(level)
    table["effect"] = np.concatenate(effects)
    table["baseline"] = np.tile(base, len(region_list))
    assert len(table) == n * len(region_list)
    return table


def contact_removal_effects(
    predictor: Callable,
    landscape: np.ndarray,
    track: np.ndarray,
    contacts: pd.DataFrame,
    rows: np.ndarray,
    *,
    gene_lengths: np.ndarray | None = None,
    batch_size: int = 512,
) -> pd.DataFrame:
    """Effect of removing each pcHi-C contact of a gene from its virtual-4C track (one at a time).

    The track is rebuilt without the contact (bins it shared with another contact keep that
    contact's frequency), so the edit is exactly "this interaction absent".

    Returns
    -------
    pandas.DataFrame
        ``contacts`` rows of the genes in ``rows`` with ``effect`` and ``baseline`` added.
    """
    rows = np.asarray(rows, dtype=np.int64)
    sel = contacts[contacts["gene_index"].isin(rows)].reset_index(drop=True)
    if sel.empty:
        return sel.assign(effect=np.zeros(0), baseline=np.zeros(0))
    lengths = gene_lengths if gene_lengths is not None else None
    gi = sel["gene_index"].to_numpy()
    base_all = _score(
        _call(predictor, landscape[rows], track[rows], batch_size), None if lengths is None else lengths[rows]
    )
    base = pd.Series(base_all, index=rows).loc[gi].to_numpy()
    edited = track[gi].copy()
    by_gene = {g: grp for g, grp in sel.groupby("gene_index")}
    for j, (g, f0, f1) in enumerate(zip(gi, sel["first_bin"], sel["last_bin"], strict=True)):
        others = by_gene[g].drop(index=j)
        span = np.zeros(f1 - f0 + 1, dtype=np.float32)
        for o0, o1, f in zip(others["first_bin"], others["last_bin"], others["frequency"], strict=True):
            a, b = max(o0, f0), min(o1, f1)
            if a <= b:
                span[a - f0 : b - f0 + 1] = np.maximum(span[a - f0 : b - f0 + 1], f)
        edited[j, f0 : f1 + 1] = span
    out = _score(_call(predictor, landscape[gi], edited, batch_size), None if lengths is None else lengths[gi])
    return sel.assign(effect=out - base, baseline=base)


def active_pchic_genes(enhancers: pd.DataFrame, cell_type: str) -> set[str]:
    """Genes with at least one planted pcHi-C enhancer active in ``cell_type`` (contribution > 0)."""
    col = f"contribution_{cell_type}"
    if col not in enhancers.columns:
        raise ValueError(f"The planted truth has no column {col}: {cell_type} was not simulated.")
    sel = enhancers[(enhancers["kind"] == "pchic") & (enhancers[col] > 0)]
    return set(sel["gene_id"])


def structure_gain(
    predictions: pd.DataFrame,
    with_enhancer: set[str],
    base_model: str,
    structure_model: str,
    labels: tuple[str, str] = ("with_active_pchic_enhancer", "without"),
) -> pd.DataFrame:
    """Test accuracy with and without the structure branch, by gene group and fold.

    Groups: ``labels[0]`` for the genes in ``with_enhancer`` (on semi-synthetic data: ≥ 1 planted
    pcHi-C enhancer active in the cell type), ``labels[1]`` for the others (on real data the caller
    names the groups by what is observable, e.g. genes with / without a pcHi-C contact in the
    window) and ``all``. Per (group, fold) and pooled over folds
    (``fold`` = 0): ``n_genes``, Pearson r of each model, ``delta_r`` (structure − landscape),
    their MSEs, ``delta_mse``, and the one-sided Wilcoxon signed-rank p that the structure model's
    squared errors are smaller (paired by gene).

    Raises
    ------
    ValueError
        When either model is absent, or the two models' test genes differ.
    """
    need = {base_model, structure_model}
    missing = need - set(predictions["model"])
    if missing:
        raise ValueError(f"structure_gain: no predictions of {sorted(missing)} (train them in notebook 47).")
    p = predictions[predictions["model"].isin(need)]
    wide = p.pivot_table(index=["fold", "gene_id"], columns="model", values="predicted").dropna()
    obs = p.drop_duplicates(["fold", "gene_id"]).set_index(["fold", "gene_id"])["observed"]
    wide["observed"] = obs.loc[wide.index]
    if len(wide) != p.groupby("model").size().min():
        raise ValueError("structure_gain: the two models were not tested on the same genes.")
    wide = wide.reset_index()
    wide["group"] = np.where(wide["gene_id"].isin(with_enhancer), labels[0], labels[1])
    rows = []
    for fold in [*sorted(wide["fold"].unique()), 0]:
        f = wide if fold == 0 else wide[wide["fold"] == fold]
        for group in (*labels, "all"):
            g = f if group == "all" else f[f["group"] == group]
            if len(g) < 3:
                continue
            e0 = (g[base_model] - g["observed"]) ** 2
            e1 = (g[structure_model] - g["observed"]) ** 2
            diff = (e0 - e1).to_numpy()
            p_w = float(stats.wilcoxon(e1, e0, alternative="less").pvalue) if np.any(diff != 0) else np.nan
            r0 = pearson_r(g["observed"], g[base_model])
            r1 = pearson_r(g["observed"], g[structure_model])
            rows.append(
                {
                    "fold": int(fold),
                    "group": group,
                    "n_genes": len(g),
                    "r_landscape": r0,
                    "r_structure": r1,
                    "delta_r": r1 - r0,
                    "mse_landscape": float(e0.mean()),
                    "mse_structure": float(e1.mean()),
                    "delta_mse": float(e1.mean() - e0.mean()),
                    "wilcoxon_p": p_w,
                }
            )
    return pd.DataFrame(rows)


def pause_peaks(profile_predictions: pd.DataFrame, truth: pd.DataFrame, model: str) -> pd.DataFrame:
    """Per test gene: the predicted, observed and planted (noise-free) peak bins and the pause-peak bin.

    The pause peak is planted ``pause_offset`` bp downstream of the TSS, in the 1-kb bin starting at
    the TSS (``offset_kb`` 0). ``truth_peak`` is the argmax of the planted expected profile processed
    as the targets (``expected_smoothed``): it is the pause bin unless a neighbouring gene, an eRNA or
    the gene's own body outweighs it.
    """
    p = profile_predictions[profile_predictions["model"] == model]
    if p.empty:
        raise ValueError(f"pause_peaks: no profile predictions of {model}.")
    t = truth.set_index(["gene_id", "bin"])["expected_smoothed"]
    rows = []
    for (fold, gid), g in p.groupby(["fold", "gene_id"], sort=False):
        g = g.sort_values("bin")
        bins = g["bin"].to_numpy()
        pause_bin = int(bins[g["offset_kb"].to_numpy() == 0][0])
        exp = t.loc[gid].reindex(bins).to_numpy()
        rows.append(
            {
                "fold": int(fold),
                "gene_id": gid,
                "pause_bin": pause_bin,
                "predicted_peak": int(bins[np.argmax(g["predicted"].to_numpy())]),
                "observed_peak": int(bins[np.argmax(g["observed"].to_numpy())]),
                "truth_peak": int(bins[np.nanargmax(exp)]),
                "truth_pause_share": float(exp[bins == pause_bin][0] / np.nansum(exp)),
            }
        )
    return pd.DataFrame(rows)


def pause_summary(peaks: pd.DataFrame, tolerance: int = 1) -> pd.DataFrame:
    """Fractions of genes whose peak is within ``tolerance`` bins of the pause peak / of the planted peak.

    Rows: the genes whose planted peak is the pause bin (``pause_dominated``) and the others
    (``peak_elsewhere``); columns for the predicted and the observed (noisy target) peaks, and the
    fraction a constant "always the TSS bin" guess would score against the planted peak.
    """
    out = []
    dominated = peaks["truth_peak"] == peaks["pause_bin"]
    for name, sel in (("pause_dominated", dominated), ("peak_elsewhere", ~dominated), ("all", dominated | ~dominated)):
        g = peaks[sel]
        if g.empty:
            continue

        def near(a, b, g=g):
            return float((np.abs(g[a] - g[b]) <= tolerance).mean())

        out.append(
            {
                "genes": name,
                "n_genes": len(g),
                "predicted_near_pause": near("predicted_peak", "pause_bin"),
                "observed_near_pause": near("observed_peak", "pause_bin"),
                "predicted_near_truth": near("predicted_peak", "truth_peak"),
                "observed_near_truth": near("observed_peak", "truth_peak"),
                "tss_guess_near_truth": near("pause_bin", "truth_peak"),
            }
        )
    return pd.DataFrame(out)


def recovery_tables(
    silencing: pd.DataFrame, contacts: pd.DataFrame | None, enhancers: pd.DataFrame, cell_type: str
) -> pd.DataFrame:
    """Planted-enhancer recovery of the silencing and contact-removal effects (notebook 60's statistics).

    Distal 2-kb regions are positives when they overlap a local planted enhancer of the gene active
    in ``cell_type``; contacts when their fragment carries an active planted pcHi-C enhancer of the
    gene. Scores: ``effect`` (a drop), ``abs_effect``, the distance-only baseline ``−|distance|``
    (and ``frequency_only`` for contacts); ``matched`` re-weights negatives by 2-kb position /
    distance quintile.
    """
    out = []
    for model, s in silencing.groupby("model", sort=False):
        distal = s[s["region_kind"] == "distal"].reset_index(drop=True)
        lab = perturb.label_distal(distal, enhancers, cell_type)
        rec = perturb.recovery(
            distal.assign(mark="P2", gene_set="all"),
            lab,
            what="silencing",
            strata=distal["position"].to_numpy(),
            baselines={"distance_only": -distal["distance"].abs().to_numpy(float)},
        )
        out.append(rec.assign(model=model))
    if contacts is not None and len(contacts):
        for model, c in contacts.groupby("model", sort=False):
            c = c.reset_index(drop=True)
            lab = perturb.label_pcres(c, enhancers, cell_type)
            quint = pd.qcut(c["distance"].abs(), 5, labels=False, duplicates="drop").to_numpy()
            rec = perturb.recovery(
                c.assign(mark="contact", gene_set="all"),
                lab,
                what="contact_removal",
                strata=quint,
                baselines={
                    "distance_only": -c["distance"].abs().to_numpy(float),
                    "frequency_only": c["frequency"].to_numpy(float),
                },
            )
            out.append(rec.assign(model=model))
    if not out:
        raise ValueError("recovery_tables: no silencing or contact effects to score.")
    return pd.concat(out, ignore_index=True)


def area_vs_rho(profile_predictions: pd.DataFrame, truth: pd.DataFrame, gene_lengths: Mapping[str, float], model: str):
    """Spearman ρ between each test gene's predicted body signal and its planted elongation density ρ."""
    p = profile_predictions[profile_predictions["model"] == model]
    wide = p.pivot_table(index=["fold", "gene_id"], columns="bin", values="predicted")
    lengths = np.array([gene_lengths[g] for _, g in wide.index])
    area = dn.body_area(wide.to_numpy(), lengths)
    rho = truth.drop_duplicates("gene_id").set_index("gene_id")["rho"].loc[[g for _, g in wide.index]].to_numpy()
    return float(stats.spearmanr(area, rho)[0]), len(area)


def answer(
    metrics: pd.DataFrame,
    gain: pd.DataFrame | None,
    recovery: pd.DataFrame | None,
    pause: pd.DataFrame | None,
    provenance: str,
    n_folds: int,
) -> str:
    """Notebook 47's **Answer** paragraph, written from its tables (nothing hard-coded)."""
    from ..provenance import provenance_phrase

    test = metrics[metrics["split"] == "test"]
    parts = [f"**Answer.** {provenance_phrase(provenance)}, "]
    gene = test[(test["model"] == "claster") & (test["metric"] == "pearson_r")]["value"]
    if len(gene):
        parts.append(
            f"CLASTER's architecture adapted to 7 marks × 400 bins predicts log2 expression with a mean test "
            f"Pearson r of {gene.mean():.3f} over {n_folds} fold(s)"
        )
    prof = test[(test["model"] == "claster_profile")].set_index("metric")["value"].groupby(level=0).mean()
    if len(prof):
        parts.append(
            f"; its 1-kb profile head reaches a binwise Pearson r of {prof['binwise_pearson_r']:.3f} on log2(reads + 1) "
            f"(gene-level signal r {prof['gene_area_pearson_r']:.3f})"
        )
    parts.append(". ")
    if gain is not None and len(gain):
        pooled = gain[gain["fold"] == 0].set_index("group")
        groups = [g for g in pooled.index if g != "all"]
        text = "; ".join(f"{g.replace('_', ' ')}: Δr = {pooled.loc[g, 'delta_r']:+.3f} (n = {int(pooled.loc[g, 'n_genes'])})"
                         for g in groups)  # fmt: skip
        parts.append(
            f"Adding the virtual-4C structure branch changes the pooled test r by {pooled.loc['all', 'delta_r']:+.3f} "
            f"({text}). "
        )
    if recovery is not None and len(recovery):
        r = recovery[
            (recovery["comparison"] == "all") & (recovery["what"] == "silencing") & (recovery["model"] == "claster")
        ]
        if len(r):
            eff = float(r.loc[r["score"] == "effect", "auroc"].iloc[0])
            dist = float(r.loc[r["score"] == "distance_only", "auroc"].iloc[0])
            parts.append(
                f"Silencing 2-kb regions finds the planted active enhancers with AUROC {eff:.3f} against "
                f"{dist:.3f} for distance alone"
            )
        c = recovery[(recovery["comparison"] == "all") & (recovery["what"] == "contact_removal")]
        if len(c):
            eff = float(c.loc[c["score"] == "effect", "auroc"].iloc[0])
            dist = float(c.loc[c["score"] == "distance_only", "auroc"].iloc[0])
            parts.append(
                f"; removing pcHi-C contacts finds the active planted pcHi-C enhancers with AUROC {eff:.3f} "
                f"(distance alone {dist:.3f})"
            )
        parts.append(". ")
    if pause is not None and len(pause):
        dom = pause.set_index("genes")
        if "pause_dominated" in dom.index:
            parts.append(
                f"The profile head puts its peak within 1 kb of the planted pause peak for "
                f"{dom.loc['pause_dominated', 'predicted_near_pause']:.0%} of the "
                f"{int(dom.loc['pause_dominated', 'n_genes'])} test genes whose planted profile peaks there"
            )
        if "peak_elsewhere" in dom.index:
            parts.append(
                f", and follows the planted peak for {dom.loc['peak_elsewhere', 'predicted_near_truth']:.0%} of the "
                f"{int(dom.loc['peak_elsewhere', 'n_genes'])} genes whose planted profile peaks elsewhere "
                f"(the TSS bin would score {dom.loc['peak_elsewhere', 'tss_guess_near_truth']:.0%})"
            )
        parts.append(".")
    return "".join(parts).replace(" . ", ". ").strip()


__all__ = [
    "MARKS",
    "answer",
    "SILENCED_MARKS",
    "active_pchic_genes",
    "area_vs_rho",
    "contact_removal_effects",
    "pause_peaks",
    "pause_summary",
    "recovery_tables",
    "silencing_effects",
    "structure_gain",
]
