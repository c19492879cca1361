"""The simulator against real E116 at 10 kb, per simulator version side by side (notebook 15's comparison).

    python bench/simulator_vs_real_e116.py                      # versions 1, 2, 3 on the demo's genes
    python bench/simulator_vs_real_e116.py --versions 2 3 --e003 --out bench/results/x.tsv
    python bench/simulator_vs_real_e116.py --versions 3 --set '{"e116_calibration": {"activity_background": 0.4}}'

For each ``data.simulator_version`` the E116 reads of the preset (``--params``, default the demo:
2,000 genes) are drawn in memory exactly as notebook 00 would write them
(:meth:`chromexp.simulate.roadmap.DatasetPlan.simulate`, only the 5 marks of the real table, no file
written), counted into the real table's 10-kb bins wholly inside the simulated regions, and compared
with the **real** vendored E116 counts on the same genes, targets, labels and folds by notebook 15's
own functions (:mod:`chromexp.experiments.real_e116`: TSS bin ± 1 ridge / logistic baselines, TSS-bin
Spearman ρ with expression, median counts of active / inactive genes). ``--e003`` also runs the real
E003 calibration of notebook 00 (:mod:`chromexp.simulate.calibration`) for each version and prints
the statistics outside their tolerances. ``--set`` replaces ``simulate`` knobs (JSON, merged like
``-p``) for a what-if; the default knobs are those of ``params/defaults.yaml``.

One version at the demo size takes about 1-2 min of CPU and ≈ 2 GB of memory (one at a time).
The simulated numbers are SEMI-SYNTHETIC; the "real" column is real E116 data.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from chromexp import config, paths
from chromexp.data import binned, io
from chromexp.experiments import real_e116 as experiment
from chromexp.simulate import calibration, roadmap

REPO = Path(__file__).resolve().parents[1]
#: The rows shown per mark (notebook 15's comparison table, the README's quantities).
SHOWN = (
    "binned_ridge:pearson_r",
    "binned_logistic:auroc",
    "relation:spearman_tss_bin",
    "relation:median_count_active",
    "relation:median_count_inactive",
)


def real_benchmark(cell_type: str = "E116"):
    """The real 10-kb count table and notebook 15's benchmark of every covered gene (k = 5)."""
    bins = binned.read_e116_10kb()
    gene_table = paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz"
    genes = io.read_gene_table(gene_table)
    rpkm = io.read_expression(gene_table, [cell_type])[cell_type]
    bench = experiment.build_benchmark(
        bins, genes, rpkm, cell_type=cell_type, k=5, provenance="real", source=str(binned.e116_10kb_dir())
    )
    return bins, bench


def simulated_counts(params, bins: pd.DataFrame, marks, cell_type: str = "E116"):
    """The preset's simulated reads of ``cell_type`` counted into ``bins`` (covered bins only) and its gene ids."""
    plan = roadmap.plan_dataset(params)
    reads = plan.simulate(cell_type, marks=marks)
    length = int(plan.knobs["read_length"])
    frames = {}
    for mark, per_chrom in reads.items():
        chroms = np.concatenate([np.full(len(st), c, dtype=object) for c, (st, _) in per_chrom.items()])
        starts = np.concatenate([st for st, _ in per_chrom.values()])
        frames[mark] = pd.DataFrame({"chrom": chroms, "start": starts, "end": starts + length})
    inside = binned.bins_inside(bins, roadmap.grid_regions(plan.grid, int(plan.knobs["grid_step"])))
    return experiment.aggregate_reads(frames, bins, inside), plan.genes["gene_id"].astype(str)


def compare_version(params, bins, bench, marks, folds, cell_type: str = "E116") -> pd.DataFrame:
    """Notebook 15's ``simulator_vs_real`` table for the parameters' simulator version."""
    sim_bins, ids = simulated_counts(params, bins, marks, cell_type)
    own, sim, _ = experiment.paired_benchmarks(bench, sim_bins, ids, k=1, provenance="semi-synthetic", source="memory")
    sets = experiment.mark_sets(marks)
    real_fit = experiment.linear_baselines(own, sets, folds, k=1)
    sim_fit = experiment.linear_baselines(sim, sets, folds, k=1)
    return experiment.compare_sources(
        real_fit.metrics,
        sim_fit.metrics,
        experiment.signal_relations(own, marks),
        experiment.signal_relations(sim, marks),
        marks,
        tolerance=0.1,
    )


def e003_table(params) -> pd.DataFrame:
    """Notebook 00's real E003 calibration table for the parameters' simulator version."""
    genes = calibration.real_genes()
    return calibration.compare(calibration.real_e003_bins(genes), calibration.simulate_e003(params, genes), genes)


def main(argv=None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--versions", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--params", default=str(REPO / "params" / "demo.yaml"), help="preset file (default: the demo)")
    ap.add_argument("--set", default="{}", help="JSON replacing simulate knobs, e.g. '{\"background\": {...}}'")
    ap.add_argument("--e003", action="store_true", help="also the real E003 calibration of notebook 00 per version")
    ap.add_argument("--out", default=None, help="write the tidy table (version, marks, quantity, real, simulated)")
    args = ap.parse_args(argv)
    bins, bench = real_benchmark()
    marks = list(bins.attrs["bin_report"]["tracks"])
    rows, e003 = [], []
    for version in args.versions:
        t0 = time.perf_counter()
        over = {"data": {"simulator_version": version}, "simulate": json.loads(args.set)}
        params = config.load_params(None, files=[args.params], overrides=over)
        folds = [int(f) for f in params["folds"]]
        table = compare_version(params, bins, bench, marks, folds)
        rows.append(table.assign(version=version))
        print(f"version {version}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        if args.e003:
            cal = e003_table(params)
            e003.append(cal.assign(version=version))
            bad = cal[~cal["within"]]
            print(f"version {version}: real E003 calibration {int(cal['within'].sum())}/{len(cal)} within tolerance")
            if len(bad):
                print(bad[["mark", "statistic", "group", "real", "simulated", "difference", "tolerance"]].round(3))
    tidy = pd.concat(rows, ignore_index=True)
    wide = tidy[tidy["quantity"].isin(SHOWN)].pivot_table(
        index=["marks", "quantity"], columns="version", values="simulated", sort=False
    )
    wide.columns = [f"v{c}" for c in wide.columns]
    real = tidy.drop_duplicates(["marks", "quantity"]).set_index(["marks", "quantity"])["real"]
    wide.insert(0, "real", real.reindex(wide.index))
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(wide.round(3).to_string())
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tidy.to_csv(out, sep="\t", index=False, float_format="%.4f")
        if e003:
            pd.concat(e003, ignore_index=True).to_csv(
                out.with_name(out.stem + "_e003.tsv"), sep="\t", index=False, float_format="%.4f"
            )
    return tidy


if __name__ == "__main__":
    main()
