"""Statistics of Chromoformer's own study (notebooks 45 and 46; docs/methods.md, "Chromoformer's own study").

From the study's tidy tables only (:mod:`chromexp.experiments.chromoformer_study` and
:mod:`chromexp.experiments.chromoformer_diff` write them):

* :func:`fold_summary` — mean ± SE over folds per (model, window, split, metric): the window study
  (paper Fig. 3a: "mean validation AUC ± SE over 4 folds") and the baselines' comparison (Fig. 2b, 2d);
* :func:`paired_fold_test` — intact vs Embedding-only Chromoformer (Fig. 3b): the per-fold
  differences and a two-sided paired t-test over folds;
* :func:`subset_metrics` + :func:`paired_fold_test` on the subsets — the same comparison on the
  genes with ≥ 1 pCRE and on those with none (Fig. 3c);
* :func:`per_gene_test` — beyond the paper, a per-gene paired test on the pooled test genes
  (as for Fig. 4: per-gene loss differences, two-sided Wilcoxon signed-rank, and a paired bootstrap
  95 % CI of the metric difference);
* planted truth (semi-synthetic data only): :func:`planted_pcre_enhancers` (genes with an active
  planted enhancer on one of their pCREs), :func:`gain_by_group` (is the intact model's gain
  concentrated on them?), :func:`enhancer_changes` and :func:`diff_by_group` (does
  Chromoformer-diff beat the two-reg-models difference on the genes whose planted enhancer
  activity differs between the two cell types?).

Every function refuses an empty selection with a sentence naming the filter that removed
everything (never "p = 1" for zero tests).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ..metrics import classification_metrics, regression_metrics


def _finite_quantile(values, q: float) -> float:
    """The ``q`` quantile of the finite values; NaN (without a warning) when there is none.

    A bootstrap replicate is undefined (NaN) when it draws a constant subset; a subset of very few
    genes (the smoke data's genes without a pCRE) can have no defined replicate at all.
    """
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    return float(np.quantile(v, q)) if v.size else float("nan")


#: The headline metric of a task: AUROC for classifiers (Fig. 2b, 3), Pearson r for regressors (Fig. 2d).
TASK_METRIC = {"clf": "auroc", "reg": "pearson_r"}


def task_of(model: str) -> str:
    """``"clf"`` or ``"reg"`` from a model name (``chromoformer_clf``)."""
    for task in TASK_METRIC:
        if model.endswith(f"_{task}"):
            return task
    raise ValueError(f"Model {model!r} is neither a classifier (_clf) nor a regressor (_reg).")


def _nonempty(table: pd.DataFrame, what: str) -> pd.DataFrame:
    if table.empty:
        raise ValueError(f"No rows left: {what}.")
    return table


# ----------------------------------------------------------------------------------------------
# means over folds
# ----------------------------------------------------------------------------------------------
def fold_summary(metrics: pd.DataFrame, by: Sequence[str] = ("model", "window", "split", "metric")) -> pd.DataFrame:
    """Mean, SD, SE (SD / √n) and n of ``value`` over folds per ``by`` (plus ``cell_type``/``provenance`` when present).

    Returns
    -------
    pandas.DataFrame
        ``[cell_type,] *by, mean, sd, se, n_folds[, provenance]``; SE and SD are NaN for one fold.
    """
    _nonempty(metrics, "the metrics table is empty")
    keys = [c for c in ("cell_type",) if c in metrics.columns] + list(by)
    g = metrics.groupby(keys, sort=True)["value"]
    out = g.agg(mean="mean", sd="std", n_folds="count").reset_index()
    out["se"] = out["sd"] / np.sqrt(out["n_folds"])
    cols = [*keys, "mean", "sd", "se", "n_folds"]
    if "provenance" in metrics.columns:
        prov = metrics.groupby(keys, sort=True)["provenance"].agg(lambda s: ", ".join(sorted(set(s)))).reset_index()
        out = out.merge(prov, on=keys)
        cols.append("provenance")
    return out[cols]


def published_setting(summary: pd.DataFrame, windows: Mapping[str, int]) -> pd.DataFrame:
    """The rows of :func:`fold_summary` at each family's published window (Fig. 2b/2d analogue).

    ``windows`` maps a family (``deepchrome``) to its window; a model ``<family>_<task>`` keeps
    only that window's rows.
    """
    fam = summary["model"].str.rsplit("_", n=1).str[0]
    keep = fam.map(windows)
    out = summary[keep.notna() & (summary["window"] == keep)]
    return _nonempty(out.reset_index(drop=True), f"no model at its published window {dict(windows)}")


# ----------------------------------------------------------------------------------------------
# paired comparisons
# ----------------------------------------------------------------------------------------------
def paired_fold_test(
    metrics: pd.DataFrame,
    model_a: str,
    model_b: str,
    metric: str,
    by: Sequence[str] = ("split",),
    window: int | None = None,
) -> pd.DataFrame:
    """``model_a − model_b`` per fold and a two-sided paired t-test over folds, per ``by`` group.

    Parameters
    ----------
    metrics : pandas.DataFrame
        Tidy metrics with ``model, fold, metric, value`` and the ``by`` columns (and ``window``).
    model_a, model_b : str
        E.g. ``chromoformer_clf`` (intact) and ``chromoformer_embedding_only_clf``.
    metric : str
    by : sequence of str
        Groups tested separately (e.g. ``split``, or ``split, subset``).
    window : int, optional
        Keep only this window's rows.

    Returns
    -------
    pandas.DataFrame
        Per group: ``mean_a, mean_b, mean_diff, n_folds, folds, t, p`` (t and p NaN with fewer than
        two folds, or when every difference is equal: the test is undefined there, not "p = 1"),
        ``test``.
    """
    t = metrics[(metrics["metric"] == metric) & metrics["model"].isin([model_a, model_b])]
    if window is not None:
        t = t[t["window"] == window]
    _nonempty(t, f"no {metric} rows of {model_a} or {model_b}" + (f" at window {window}" if window else ""))
    keys = [*by, "fold"]
    wide = t.pivot_table(index=keys, columns="model", values="value", aggfunc="first")
    missing = [m for m in (model_a, model_b) if m not in wide.columns]
    if missing:
        raise ValueError(f"No {metric} rows of {missing} to pair with the other model.")
    wide = wide.dropna(subset=[model_a, model_b]).reset_index()
    _nonempty(wide, f"{model_a} and {model_b} share no fold")
    rows = []
    groups = wide.groupby(list(by), sort=True) if by else [((), wide)]
    for key, g in groups:
        a, b = g[model_a].to_numpy(float), g[model_b].to_numpy(float)
        diff = a - b
        if len(diff) >= 2 and np.ptp(diff) > 0:
            res = stats.ttest_rel(a, b)
            tval, p = float(res.statistic), float(res.pvalue)
        else:
            tval = p = float("nan")
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row.update(
            mean_a=a.mean(),
            mean_b=b.mean(),
            mean_diff=diff.mean(),
            n_folds=len(diff),
            folds=",".join(map(str, sorted(g["fold"]))),
            t=tval,
            p=p,
        )
        rows.append(row)
    return pd.DataFrame(rows).assign(
        model_a=model_a, model_b=model_b, metric=metric, test="two-sided paired t-test over folds"
    )


def subset_metrics(
    predictions: pd.DataFrame, groups: pd.Series, models: Sequence[str], window: int | None = None
) -> pd.DataFrame:
    """Test metrics of ``models`` per (fold, gene group) from the per-gene predictions.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The study's predictions (``model, fold, gene_id, observed, predicted`` and, for
        classifiers, ``label, probability``; ``window``).
    groups : pandas.Series
        Group label per ``gene_id`` (index), e.g. "≥ 1 pCRE" / "no pCRE".
    models : sequence of str
    window : int, optional

    Returns
    -------
    pandas.DataFrame
        Tidy: ``model, fold, subset, n_genes, metric, value`` (classification or regression metrics).
    """
    p = predictions[predictions["model"].isin(models)]
    if window is not None:
        p = p[p["window"] == window]
    _nonempty(p, f"no predictions of {list(models)}" + (f" at window {window}" if window else ""))
    p = p.assign(subset=p["gene_id"].map(groups))
    if p["subset"].isna().all():
        raise ValueError("No predicted gene has a group label: the groups and the predictions share no gene_id.")
    rows = []
    for (model, fold, subset), g in p.dropna(subset=["subset"]).groupby(["model", "fold", "subset"], sort=True):
        if task_of(model) == "clf":
            values = classification_metrics(g["label"], g["probability"])
        else:
            values = regression_metrics(g["observed"], g["predicted"])
        rows += [
            {"model": model, "fold": fold, "subset": subset, "n_genes": len(g), "metric": k, "value": v}
            for k, v in values.items()
        ]
    return pd.DataFrame(rows)


def gene_losses(predictions: pd.DataFrame, model: str) -> pd.Series:
    """Per-gene test loss of ``model`` indexed by (fold, gene_id): cross-entropy (clf) or squared error (reg)."""
    p = predictions[predictions["model"] == model]
    _nonempty(p, f"no predictions of {model}")
    if task_of(model) == "clf":
        prob = np.clip(p["probability"].to_numpy(float), 1e-7, 1 - 1e-7)
        y = p["label"].to_numpy(float)
        loss = -(y * np.log(prob) + (1 - y) * np.log(1 - prob))
    else:
        loss = (p["predicted"].to_numpy(float) - p["observed"].to_numpy(float)) ** 2
    return pd.Series(loss, index=pd.MultiIndex.from_frame(p[["fold", "gene_id"]]), name=model)


def auroc(labels: np.ndarray, score: np.ndarray) -> float:
    """AUROC from ranks (Mann-Whitney; ties averaged): the same value as scikit-learn's, fast enough to bootstrap."""
    y = np.asarray(labels) > 0.5
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _metric(task: str, y: np.ndarray, score: np.ndarray) -> float:
    if task == "clf":
        return auroc(y, score)
    if np.ptp(y) == 0 or np.ptp(score) == 0:
        return float("nan")
    return float(np.corrcoef(y, score)[0, 1])


def per_gene_test(
    predictions: pd.DataFrame,
    model_a: str,
    model_b: str,
    groups: pd.Series | None = None,
    window: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    return_boot: bool = False,
):
    """Per-gene paired test of ``model_a`` against ``model_b`` on the pooled test genes of all folds.

    For each group of genes (all genes when ``groups`` is None): ``loss_gain`` = mean over genes of
    (loss of ``model_b`` − loss of ``model_a``) (cross-entropy for classifiers, squared error for
    regressors; > 0 when ``model_a`` is better), a two-sided Wilcoxon signed-rank test of those
    per-gene differences, and ``delta`` = metric(a) − metric(b) (AUROC or Pearson r over the
    pooled genes) with a paired bootstrap 95 % CI over genes.

    Returns
    -------
    pandas.DataFrame
        ``subset, n_genes, metric, metric_a, metric_b, delta, delta_lo, delta_hi, loss_gain, W, p, test``;
        with ``return_boot``, also a dict subset -> the bootstrap replicates of ``delta`` (n_boot,).
    """
    task = task_of(model_a)
    if task_of(model_b) != task:
        raise ValueError(f"{model_a} and {model_b} are not the same task.")
    p = predictions if window is None else predictions[predictions["window"] == window]
    cols = ["fold", "gene_id", "observed", "predicted"] + (["label", "probability"] if task == "clf" else [])
    a = _nonempty(p[p["model"] == model_a], f"no predictions of {model_a}")[cols]
    b = _nonempty(p[p["model"] == model_b], f"no predictions of {model_b}")[["fold", "gene_id", "predicted"]]
    if task == "clf":
        b = p[p["model"] == model_b][["fold", "gene_id", "probability"]].rename(columns={"probability": "score_b"})
        m = a.rename(columns={"probability": "score_a"}).merge(b, on=["fold", "gene_id"])
        y = m["label"].to_numpy(float)
    else:
        m = a.rename(columns={"predicted": "score_a"}).merge(
            b.rename(columns={"predicted": "score_b"}), on=["fold", "gene_id"]
        )
        y = m["observed"].to_numpy(float)
    _nonempty(m, f"{model_a} and {model_b} share no (fold, gene)")
    la = gene_losses(p, model_a).reindex(pd.MultiIndex.from_frame(m[["fold", "gene_id"]])).to_numpy()
    lb = gene_losses(p, model_b).reindex(pd.MultiIndex.from_frame(m[["fold", "gene_id"]])).to_numpy()
    labels = m["gene_id"].map(groups).to_numpy() if groups is not None else np.full(len(m), "all genes", dtype=object)
    rng = np.random.default_rng(seed)
    rows, replicates = [], {}
    for subset in sorted({x for x in labels if isinstance(x, str)}):
        idx = np.flatnonzero(labels == subset)
        sa, sb, yy = m["score_a"].to_numpy(float)[idx], m["score_b"].to_numpy(float)[idx], y[idx]
        gain = lb[idx] - la[idx]
        if len(idx) >= 2 and np.any(gain != 0):
            w = stats.wilcoxon(gain, alternative="two-sided")
            stat, pval = float(w.statistic), float(w.pvalue)
        else:
            stat = pval = float("nan")
        ma, mb = _metric(task, yy, sa), _metric(task, yy, sb)
        boots = []
        for _ in range(n_boot):
            j = rng.integers(0, len(idx), len(idx))
            boots.append(_metric(task, yy[j], sa[j]) - _metric(task, yy[j], sb[j]))
        replicates[subset] = np.asarray(boots)
        rows.append(
            {
                "subset": subset,
                "n_genes": len(idx),
                "metric": TASK_METRIC[task],
                "metric_a": ma,
                "metric_b": mb,
                "delta": ma - mb,
                "delta_lo": _finite_quantile(boots, 0.025),
                "delta_hi": _finite_quantile(boots, 0.975),
                "loss_gain": float(gain.mean()),
                "W": stat,
                "p": pval,
            }
        )
    _nonempty(pd.DataFrame(rows), "no gene has a group label")
    out = pd.DataFrame(rows).assign(
        model_a=model_a,
        model_b=model_b,
        test="two-sided Wilcoxon signed-rank of per-gene loss differences; paired bootstrap 95 % CI of the metric",
    )
    return (out, replicates) if return_boot else out


def pcre_groups(dataset) -> pd.Series:
    """``"≥ 1 pCRE"`` / ``"no pCRE"`` per gene_id of a dataset (after the pCRE rule: frequency > 1.5, ≤ 40 kb)."""
    n = dataset.n_pcres()
    return pd.Series(np.where(n > 0, "≥ 1 pCRE", "no pCRE"), index=dataset.genes["gene_id"].to_numpy(), name="subset")


# ----------------------------------------------------------------------------------------------
# planted truth (semi-synthetic data)
# ----------------------------------------------------------------------------------------------
def planted_pcre_enhancers(enhancers: pd.DataFrame, dataset) -> pd.DataFrame:
    """Per gene of ``dataset``: planted enhancers on its pCREs that are active in its cell type.

    ``enhancers`` is the simulator's planted truth (:func:`chromexp.analyses.perturb.read_planted_enhancers`).
    A pcHi-C enhancer counts when its fragment is one of the gene's pCRE slots in this dataset (the
    pCREs the models see) and it is active in the dataset's cell type.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene_id: ``n_pcres``, ``n_active_pcre_enhancers``, ``pcre_contribution`` (their
        summed contribution to the gene's log2 expression), ``group`` ("active pCRE enhancer" /
        "none").
    """
    from .perturb import label_pcres

    table = dataset.pcre_table()
    genes = dataset.genes["gene_id"].to_numpy()
    out = pd.DataFrame({"n_pcres": dataset.n_pcres()}, index=pd.Index(genes, name="gene_id"))
    out["n_active_pcre_enhancers"] = 0
    out["pcre_contribution"] = 0.0
    if len(table):
        hit = label_pcres(table, enhancers, dataset.cell_type).to_numpy()
        counts = table.loc[hit].groupby("gene_id").size()
        out.loc[counts.index, "n_active_pcre_enhancers"] = counts.to_numpy()
        col = f"contribution_{dataset.cell_type}"
        enh = enhancers[(enhancers["kind"] == "pchic") & (enhancers[col] > 0)]
        key = enh.set_index(["gene_id", "chrom", "fragment_start", "fragment_end"])[col]
        key = key.groupby(level=[0, 1, 2, 3]).sum()
        slots = table.loc[hit, ["gene_id", "chrom", "start", "end"]]
        contrib = key.reindex(pd.MultiIndex.from_frame(slots.astype({"start": int, "end": int}))).to_numpy()
        summed = pd.Series(np.nan_to_num(contrib), index=slots["gene_id"].to_numpy()).groupby(level=0).sum()
        out.loc[summed.index, "pcre_contribution"] = summed.to_numpy()
    out["group"] = np.where(out["n_active_pcre_enhancers"] > 0, "active pCRE enhancer", "none")
    return out


def gain_by_group(per_gene: pd.DataFrame, groups: pd.Series) -> pd.DataFrame:
    """Is a per-gene gain concentrated in one group? Means per group and a two-sided Mann-Whitney U between them.

    Parameters
    ----------
    per_gene : pandas.DataFrame
        ``gene_id`` and ``gain`` (e.g. Embedding-only loss − intact loss per test gene).
    groups : pandas.Series
        Group per gene_id (two groups).
    """
    g = per_gene.assign(group=per_gene["gene_id"].map(groups)).dropna(subset=["group"])
    _nonempty(g, "no gene of the per-gene gains has a group")
    names = sorted(g["group"].unique())
    rows = [
        {"group": n, "n_genes": int((g["group"] == n).sum()), "mean_gain": float(g.loc[g["group"] == n, "gain"].mean())}
        for n in names
    ]
    out = pd.DataFrame(rows)
    if len(names) == 2 and min(out["n_genes"]) > 0:
        u = stats.mannwhitneyu(
            g.loc[g["group"] == names[0], "gain"], g.loc[g["group"] == names[1], "gain"], alternative="two-sided"
        )
        out["U"], out["p"] = float(u.statistic), float(u.pvalue)
    else:
        out["U"] = out["p"] = float("nan")
    return out.assign(test="two-sided Mann-Whitney U of the per-gene gains between the groups")


def ablation_truth(
    predictions: pd.DataFrame,
    intact: str,
    ablated: str,
    groups: pd.Series,
    window: int | None = None,
    n_boot: int = 1000,
) -> pd.DataFrame:
    """Per planted-truth group, the intact model's per-gene gain over the ablation, and a test between the groups.

    One row per group: :func:`per_gene_test` within the group (the metric difference ``delta``
    with its bootstrap CI, the mean per-gene loss gain and its Wilcoxon p), and between the groups:
    ``U``, ``p_between``, a two-sided Mann-Whitney U test of the per-gene loss gains (sensitive to
    calibration: an under-trained model loses everywhere), and ``delta_vs_other`` (this group's
    ``delta`` minus the other's) with its bootstrap 95 % CI (``delta_vs_other_lo/hi``; genes
    resampled within each group) and two-sided bootstrap ``p_delta_vs_other`` — the scale-free
    test of whether the metric gain is concentrated in one group. The between-group columns are
    NaN unless there are exactly two groups.
    """
    p = predictions if window is None else predictions[predictions["window"] == window]
    within, boots = per_gene_test(p, intact, ablated, groups=groups, n_boot=n_boot, return_boot=True)
    within = within.rename(columns={"subset": "group"})
    gain = (gene_losses(p, ablated) - gene_losses(p, intact)).rename("gain").reset_index()
    between = gain_by_group(gain, groups)[["group", "U", "p"]].rename(columns={"p": "p_between"})
    out = within.merge(between, on="group", how="left")
    cols = ["delta_vs_other", "delta_vs_other_lo", "delta_vs_other_hi", "p_delta_vs_other"]
    out[cols] = np.nan
    if len(out) == 2:
        for i, g in enumerate(out["group"]):
            other = out["group"].iloc[1 - i]
            d = boots[g] - boots[other]
            d = d[np.isfinite(d)]
            if d.size:
                p_boot = 2 * min((d <= 0).mean(), (d >= 0).mean())
                out.loc[i, cols] = [
                    out["delta"].iloc[i] - out["delta"].iloc[1 - i],
                    np.quantile(d, 0.025),
                    np.quantile(d, 0.975),
                    max(min(p_boot, 1.0), 1.0 / d.size),
                ]
    return out


def enhancer_changes(enhancers: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per gene with planted enhancers, whether any of them switches activity between cell types ``a`` and ``b``.

    Returns
    -------
    pandas.DataFrame
        Indexed by gene_id: ``n_switched`` (enhancers active in exactly one of the two),
        ``delta_contribution`` (Σ contribution in b − in a, log2 units), ``group``
        ("enhancer activity differs" / "same").
    """
    for c in (a, b):
        if f"active_{c}" not in enhancers.columns:
            raise ValueError(f"The planted truth has no column active_{c}: {c} was not simulated.")
    act_a = enhancers[f"active_{a}"].astype(str).str.lower().eq("true")
    act_b = enhancers[f"active_{b}"].astype(str).str.lower().eq("true")
    t = pd.DataFrame(
        {
            "gene_id": enhancers["gene_id"],
            "switched": (act_a != act_b).astype(int),
            "delta": enhancers[f"contribution_{b}"].astype(float) - enhancers[f"contribution_{a}"].astype(float),
        }
    )
    out = t.groupby("gene_id").agg(n_switched=("switched", "sum"), delta_contribution=("delta", "sum"))
    out["group"] = np.where(out["n_switched"] > 0, "enhancer activity differs", "same")
    return out


def _rowwise_r(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Pearson r of each row pair of two (n_boot, n) arrays (NaN for a constant row)."""
    yc, xc = y - y.mean(1, keepdims=True), x - x.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (yc * xc).sum(1) / np.sqrt((yc**2).sum(1) * (xc**2).sum(1))


def diff_by_group(
    predictions: pd.DataFrame,
    model_a: str,
    model_b: str,
    groups: Mapping[str, pd.Series],
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Pearson r of two lfc predictors per (pair, fold, gene group), and their difference.

    Parameters
    ----------
    predictions : pandas.DataFrame
        The pair predictions (``pair, model, fold, gene_id, observed, predicted``).
    model_a, model_b : str
        E.g. ``chromoformer_diff`` and ``chromoformer_reg_difference``.
    groups : mapping of str to pandas.Series
        Per pair, the group of each gene_id (genes absent from it are labelled "same").

    n_boot, seed : int
        Paired bootstrap over the unit's genes for the CI of ``delta_r``.

    Returns
    -------
    pandas.DataFrame
        ``pair, fold, subset, n_genes, r_a, r_b, delta_r, delta_r_lo, delta_r_hi`` (paired bootstrap 95 % CI);
        ``attrs["boot"]`` holds each row's bootstrap replicates of ``delta_r`` (for :func:`diff_summary`).
    """
    p = predictions[predictions["model"].isin([model_a, model_b])]
    _nonempty(p, f"no pair predictions of {model_a} or {model_b}")
    wide = p.pivot_table(
        index=["pair", "fold", "gene_id", "observed"], columns="model", values="predicted"
    ).reset_index()
    missing = [m for m in (model_a, model_b) if m not in wide.columns]
    if missing:
        raise ValueError(f"No pair predictions of {missing}.")
    wide = wide.dropna(subset=[model_a, model_b])
    rows, boots = [], []
    rng = np.random.default_rng(seed)
    for (pair, fold), g in wide.groupby(["pair", "fold"], sort=True):
        lab = g["gene_id"].map(groups[pair]).fillna("same") if pair in groups else pd.Series("same", index=g.index)
        for subset in sorted(lab.unique()):
            s = g[lab == subset]
            if len(s) < 3:
                continue
            ra = regression_metrics(s["observed"], s[model_a])["pearson_r"]
            rb = regression_metrics(s["observed"], s[model_b])["pearson_r"]
            j = rng.integers(0, len(s), (n_boot, len(s)))
            y, xa, xb = (s[c].to_numpy(float)[j] for c in ("observed", model_a, model_b))
            boot = _rowwise_r(y, xa) - _rowwise_r(y, xb)
            boots.append(boot)
            rows.append(
                {
                    "pair": pair,
                    "fold": fold,
                    "subset": subset,
                    "n_genes": len(s),
                    "r_a": ra,
                    "r_b": rb,
                    "delta_r": ra - rb,
                    "delta_r_lo": _finite_quantile(boot, 0.025),
                    "delta_r_hi": _finite_quantile(boot, 0.975),
                }
            )
    out = _nonempty(pd.DataFrame(rows), "no (pair, fold, subset) with at least 3 genes").assign(
        model_a=model_a, model_b=model_b
    )
    out.attrs["boot"] = boots
    return out


def diff_summary(by_group: pd.DataFrame) -> pd.DataFrame:
    """Per subset: mean r of both predictors over (pair, fold) units and tests of their differences.

    ``a_better`` counts the units where predictor a has the higher r; the two-sided Wilcoxon
    signed-rank test over the units is NaN with fewer than 2 units (undefined, not "p = 1").
    When ``by_group`` comes from :func:`diff_by_group` (its bootstrap replicates in ``attrs``),
    ``mean_delta_r_lo/hi`` is the bootstrap 95 % CI of the mean Δr over the units (genes resampled
    within each unit) and ``p_boot`` its two-sided bootstrap p.
    """
    _nonempty(by_group, "the per-(pair, fold) table is empty")
    rows = []
    boots = by_group.attrs.get("boot")
    for subset, g in by_group.groupby("subset", sort=True):
        d = g["delta_r"].to_numpy(float)
        d = d[np.isfinite(d)]
        lo = hi = p_boot = float("nan")
        if boots is not None and len(boots) == len(by_group):
            stacked = np.stack([boots[i] for i in np.flatnonzero((by_group["subset"] == subset).to_numpy())])
            with warnings.catch_warnings():  # a replicate undefined in every unit stays NaN (dropped below)
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_boot = np.nanmean(stacked, axis=0)
            mean_boot = mean_boot[np.isfinite(mean_boot)]
            if mean_boot.size:
                lo, hi = np.quantile(mean_boot, [0.025, 0.975])
                p_boot = max(min(2 * min((mean_boot <= 0).mean(), (mean_boot >= 0).mean()), 1.0), 1 / mean_boot.size)
        if len(d) >= 2 and np.any(d != 0):
            w = stats.wilcoxon(d, alternative="two-sided")
            stat, p = float(w.statistic), float(w.pvalue)
        else:
            stat = p = float("nan")
        rows.append(
            {
                "subset": subset,
                "units": len(d),
                "n_genes": int(g["n_genes"].sum()),
                "mean_r_a": float(g["r_a"].mean()),
                "mean_r_b": float(g["r_b"].mean()),
                "mean_delta_r": float(d.mean()) if len(d) else float("nan"),
                "mean_delta_r_lo": float(lo),
                "mean_delta_r_hi": float(hi),
                "p_boot": float(p_boot),
                "a_better": int((d > 0).sum()),
                "W": stat,
                "p": p,
            }
        )
    return pd.DataFrame(rows).assign(
        test="two-sided Wilcoxon signed-rank over (pair, fold) units; bootstrap of the mean Δr over units"
    )


def _phrase(provenance: str) -> str:
    from ..provenance import provenance_phrase

    return provenance_phrase(provenance)


def study_answer(
    summary: pd.DataFrame, ablation: pd.DataFrame | None, truth: pd.DataFrame | None, provenance: str, n_folds: int
) -> str:
    """Notebook 45's **Answer** paragraph, written from its summary, ablation tests and planted-truth table."""
    test = summary[summary["split"] == "test"]
    parts = []
    for task, metric in TASK_METRIC.items():
        t = test[(test["metric"] == metric) & test["model"].str.endswith(f"_{task}")]
        t = t[~t["model"].str.startswith("chromoformer_embedding_only")]
        if t.empty:
            continue
        # the largest window at which every model was trained (else each model's largest)
        per_model = t.groupby("model")["window"].apply(set)
        shared = set.intersection(*per_model) if len(per_model) else set()
        top_w = int(max(shared)) if shared else int(t["window"].max())
        at_top = t[t["window"] == top_w].sort_values("mean", ascending=False)
        best = at_top.iloc[0]
        trend = ""
        cf = t[t["model"] == f"chromoformer_{task}"].sort_values("window")
        if len(cf) > 1:
            trend = (
                f"; Chromoformer's test {metric} goes from {cf['mean'].iloc[0]:.3f} at {cf['window'].iloc[0] / 1000:g} kb "
                f"to {cf['mean'].iloc[-1]:.3f} at {cf['window'].iloc[-1] / 1000:g} kb"
            )
        others = ", ".join(f"{r['model']} {r['mean']:.3f}" for _, r in at_top.iloc[1:].iterrows())
        parts.append(
            f"at {top_w / 1000:g} kb the best {task} model is {best['model']} (mean test {metric} {best['mean']:.3f} "
            f"over {int(best['n_folds'])} fold(s){'; ' + others if others else ''}){trend}"
        )
    text = f"**Answer.** {_phrase(provenance)}, " + "; ".join(parts) + "."
    if ablation is not None and len(ablation):
        a = ablation[(ablation["split"] == "test") & (ablation["subset"] == "all test genes")]
        for _, row in a.iterrows():
            p = "undefined with one fold" if not np.isfinite(row["p"]) else f"paired t-test p = {row['p']:.3g}"
            text += (
                f" Intact {row['model_a']} minus its Embedding-only ablation: {row['mean_diff']:+.3f} test {row['metric']} "
                f"on average over folds ({p})."
            )
        s = ablation[(ablation["split"] == "test") & (ablation["subset"] != "all test genes")]
        if len(s):
            text += (
                " By pCREs: "
                + "; ".join(f"{r['subset']} {r['mean_diff']:+.3f} ({r['model_a']})" for _, r in s.iterrows())
                + "."
            )
    if truth is not None and len(truth):
        text += " Planted truth, per-gene loss gain of the intact model over the ablation: " + "; ".join(
            f"{r['model_a']} on genes with '{r['group']}' {r['loss_gain']:+.4f} (n = {int(r['n_genes'])}, "
            f"Δ{r['metric']} {r['delta']:+.3f})"
            for _, r in truth.iterrows()
        )
        first = truth.groupby("model_a").first()
        text += (
            "; "
            + "; ".join(
                f"{m}: Δ{r['metric']} on '{r['group']}' minus the other group {r['delta_vs_other']:+.3f} "
                f"(bootstrap 95 % CI {r['delta_vs_other_lo']:+.3f} to {r['delta_vs_other_hi']:+.3f}, p = {r['p_delta_vs_other']:.3g}; "
                f"Mann-Whitney of per-gene losses p = {r['p_between']:.3g})"
                for m, r in first.iterrows()
            )
            + "."
        )
    if n_folds < 4:
        text += f" Only {n_folds} of the 4 folds were trained: a demonstration, not the study's numbers."
    return text


def diff_answer(summary: pd.DataFrame, truth: pd.DataFrame | None, provenance: str, n_folds: int) -> str:
    """Notebook 46's **Answer** paragraph from the mean test r per model and the planted-truth summary."""
    t = summary[(summary["split"] == "test") & (summary["metric"] == "pearson_r")]
    means = t.groupby("model")["mean"].mean().sort_values(ascending=False)
    text = (
        f"**Answer.** {_phrase(provenance)}, averaged over {t['pair'].nunique()} pair(s) the test Pearson r of the log2 "
        "fold change is " + ", ".join(f"{m} {v:.3f}" for m, v in means.items()) + "."
    )
    if truth is not None and len(truth):
        for _, r in truth.iterrows():
            p = f"p = {r['p']:.3g}" if np.isfinite(r["p"]) else "test undefined"
            ci = (
                f", mean Δr {r['mean_delta_r']:+.3f}, bootstrap 95 % CI {r['mean_delta_r_lo']:+.3f} to "
                f"{r['mean_delta_r_hi']:+.3f}"
                if np.isfinite(r.get("mean_delta_r_lo", np.nan))
                else ""
            )
            text += (
                f" On genes with '{r['subset']}' ({r['n_genes']} gene-folds), Chromoformer-diff's r is "
                f"{r['mean_r_a']:.3f} vs {r['mean_r_b']:.3f} for the two-reg-models difference ({r['a_better']} of "
                f"{r['units']} pair-folds better{ci}; Wilcoxon over pair-folds {p})."
            )
    if n_folds < 4:
        text += f" Only {n_folds} of the 4 folds were trained: a demonstration, not the study's numbers."
    return text


__all__ = [
    "TASK_METRIC",
    "ablation_truth",
    "auroc",
    "diff_answer",
    "diff_by_group",
    "diff_summary",
    "enhancer_changes",
    "fold_summary",
    "gain_by_group",
    "gene_losses",
    "paired_fold_test",
    "pcre_groups",
    "per_gene_test",
    "planted_pcre_enhancers",
    "published_setting",
    "study_answer",
    "subset_metrics",
    "task_of",
]
