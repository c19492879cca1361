"""Test metrics of a bf16 run against a float32 run of the same notebooks (``train.mixed_precision``).

    python bench/bf16_vs_fp32.py results/demo_fp32 results/demo_bf16
    python bench/bf16_vs_fp32.py results/fp32 results/bf16 --cells E003 --out bf16_vs_fp32.tsv
    python bench/bf16_vs_fp32.py results/demo_fp32 results/demo_bf16 --control results/demo_fp32_seed1

Both arguments are run folders (``results/<run_name>``) produced with the same parameters except
``train.mixed_precision`` (e.g. ``chromexp run 30 --cell E003 -f params/demo.yaml --run-name
demo_bf16 -p train.mixed_precision true``). The metrics tables are read with
:func:`chromexp.results.load_metrics` and joined on (cell_type, model, marks, scheme, fold,
split); for every model, mark set and fold the test Pearson r, Spearman ρ and R² of both runs
and their difference (bf16 − fp32) are printed, then per model and mark set, and per model, the
mean and max |Δr| next to the fold-to-fold standard deviation of the float32 r (a difference
well inside that spread does not change a conclusion), and the wall time of both runs (the
history tables' summed epoch seconds, and each executed notebook's papermill duration).
Tables whose rows are semi-synthetic are labelled so, from the tables' own ``provenance``
column.

``--control`` names a third run, float32 with another ``seed`` (``-p seed 1``): its |Δr| against
the float32 run (``seed_mean_abs_dr``, ``seed_max_abs_dr``) is what any perturbation of the
training numerics does — with early stopping on a short schedule, a different rounding can stop
a model at another epoch, as a different seed does. bf16 matters only where its |Δr| clearly
exceeds that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from chromexp import results

METRICS = ("pearson_r", "spearman_rho", "r2")
KEY = ["cell_type", "model", "marks", "scheme", "fold", "split"]
HISTORIES = {"promoter_cnn": "promoter_cnn_history.tsv", "chromoformer_reg": "chromoformer_history.tsv"}


def _cells(run: Path, cells: list[str] | None) -> list[str]:
    found = sorted(p.parent.name for p in run.glob(f"*/{results.METRICS_FILE}"))
    return [c for c in found if cells is None or c in cells]


def wide_metrics(run: Path, cells: list[str]) -> pd.DataFrame:
    """The run's test metrics, one row per (cell, model, marks, scheme, fold, split)."""
    table = results.load_metrics([run / c for c in cells])
    table = table[(table["split"] == "test") & table["metric"].isin(METRICS)]
    wide = table.pivot_table(index=KEY, columns="metric", values="value", aggfunc="first").reset_index()
    prov = table.groupby(KEY)["provenance"].first().reset_index()
    return wide.merge(prov, on=KEY)


def compare(fp32: pd.DataFrame, bf16: pd.DataFrame) -> pd.DataFrame:
    """Inner join on the key; ``<metric>_fp32``, ``<metric>_bf16`` and ``d_<metric>`` (bf16 − fp32)."""
    joined = fp32.merge(bf16, on=KEY, suffixes=("_fp32", "_bf16"), validate="one_to_one")
    for m in METRICS:
        joined[f"d_{m}"] = joined[f"{m}_bf16"] - joined[f"{m}_fp32"]
    return joined.sort_values(KEY).reset_index(drop=True)


def summary(joined: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Per group ``by``: mean Δr, mean and max |Δr|, and the fold-to-fold SD of float32 r.

    The SD is that of the float32 r over the folds of each mark set, averaged over the group's mark
    sets (NaN where a mark set has one fold).
    """
    rows = []
    for keys, g in joined.groupby(by):
        spread = g.groupby("marks")["pearson_r_fp32"].std().dropna()
        rows.append(
            {
                **dict(zip(by, keys if isinstance(keys, tuple) else (keys,), strict=True)),
                "n": len(g),
                "r_fp32": g["pearson_r_fp32"].mean(),
                "r_bf16": g["pearson_r_bf16"].mean(),
                "mean_dr": g["d_pearson_r"].mean(),
                "mean_abs_dr": g["d_pearson_r"].abs().mean(),
                "max_abs_dr": g["d_pearson_r"].abs().max(),
                "fold_sd_r_fp32": spread.mean() if len(spread) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def wall_times(run: Path, cells: list[str]) -> dict[str, float]:
    """Epoch seconds per model family (sum and mean), and each executed notebook's papermill duration."""
    out: dict[str, float] = {}
    for cell in cells:
        for model, name in HISTORIES.items():
            path = run / cell / name
            if path.exists():  # early stopping differs between runs: per epoch is the speed
                seconds = pd.read_csv(path, sep="\t")["seconds"]
                out[f"{cell} {model} all epochs"] = float(seconds.sum())
                out[f"{cell} {model} per epoch"] = float(seconds.mean())
        for nb in sorted((run / cell).glob("[0-9][0-9]_*.ipynb")):
            if nb.name.endswith(".running.ipynb"):
                continue
            duration = json.loads(nb.read_text()).get("metadata", {}).get("papermill", {}).get("duration")
            if duration is not None:
                out[f"{cell} notebook {nb.stem}"] = float(duration)
    return out


def _fmt(v: float) -> str:
    return f"{v:.4f}"


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fp32", type=Path, help="float32 run folder, results/<run_name>")
    ap.add_argument("bf16", type=Path, help="bf16 run folder, results/<run_name>")
    ap.add_argument("--cells", nargs="+", default=None, help="cell types (default: those both runs have)")
    ap.add_argument("--out", type=Path, default=None, help="write the joined table (TSV) here")
    ap.add_argument("--control", type=Path, default=None, help="float32 run with another seed (results/<run>)")
    args = ap.parse_args(argv)
    cells = sorted(set(_cells(args.fp32, args.cells)) & set(_cells(args.bf16, args.cells)))
    if not cells:
        sys.exit(f"no cell type has {results.METRICS_FILE} in both {args.fp32} and {args.bf16}")
    joined = compare(wide_metrics(args.fp32, cells), wide_metrics(args.bf16, cells))
    if joined.empty:
        sys.exit("the two runs have no (cell, model, marks, fold) test rows in common")
    provenance = sorted(set(joined["provenance_fp32"]) | set(joined["provenance_bf16"]))
    label = "SEMI-SYNTHETIC data" if provenance == [results.SEMI_SYNTHETIC] else f"provenance {provenance}"
    print(f"bf16 autocast vs float32, test split — {label}; {args.fp32} vs {args.bf16}, cells {', '.join(cells)}")
    pd.set_option("display.width", 200)
    pd.set_option("display.max_rows", 500)
    cols = ["cell_type", "model", "marks", "fold"]
    for m in METRICS:
        cols += [f"{m}_fp32", f"{m}_bf16", f"d_{m}"]
    print(joined[cols].to_string(index=False, float_format=_fmt))
    control = None
    if args.control is not None:
        fp32 = joined[[*KEY, *(f"{m}_fp32" for m in METRICS), "provenance_fp32"]]
        fp32 = fp32.rename(columns=lambda c: c.removesuffix("_fp32"))
        control = compare(fp32, wide_metrics(args.control, cells))
    for by in (["cell_type", "model", "marks"], ["cell_type", "model"]):
        table = summary(joined, by)
        if control is not None:
            seed = control.assign(a=control["d_pearson_r"].abs()).groupby(by)["a"].agg(["mean", "max"])
            seed.columns = ["seed_mean_abs_dr", "seed_max_abs_dr"]
            table = table.merge(seed.reset_index(), on=by, how="left")
        print()
        print(table.to_string(index=False, float_format=_fmt))
    print(
        f"\nall models: mean |Δr| {joined['d_pearson_r'].abs().mean():.4f}, max |Δr| {joined['d_pearson_r'].abs().max():.4f}"
    )
    if control is not None:
        d = control["d_pearson_r"].abs()
        print(f"float32 seed control ({args.control}): mean |Δr| {d.mean():.4f}, max |Δr| {d.max():.4f}, n {len(d)}")
    t32, t16 = wall_times(args.fp32, cells), wall_times(args.bf16, cells)
    if t32 or t16:
        print(f"\n{'wall time (s)':40s} {'fp32':>8s}  {'bf16':>8s}  bf16/fp32")
        for k in sorted(set(t32) & set(t16)):
            print(f"  {k:38s} {t32[k]:8.1f}  {t16[k]:8.1f}  {t16[k] / t32[k]:8.2f}x")
    if args.out:
        joined.to_csv(args.out, sep="\t", index=False)
        print(f"wrote {args.out}")
    return joined


if __name__ == "__main__":
    main()
