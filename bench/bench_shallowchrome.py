"""Benchmark: ShallowChrome's full grid (6 configurations x (10 random thirds + 4 chromosome folds))
for 11 cell types, on features of realistic size, against the reference's fitting routine.

Features are SYNTHETIC (peak-max-like: zero-inflated gamma signal values whose level depends on the
real label), for the real 19,802 genes with their real chromosomes (so the chromosome folds have
their real sizes) and real RPKM of the 11 cell types. Only timings are meaningful; the AUROCs
printed are those of the synthetic features.

The reference (DEIB-GECO/ShallowChrome ``fit_and_score``) fits sklearn's ``LogisticRegression``
(lbfgs, C = inf, max_iter 6000) per configuration and split; we time that on the same grid for
one cell type and print the ratio.

Run: ``.venv/bin/python bench/bench_shallowchrome.py [--cells 11] [--threads 2]``
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=11, help="number of cell types (max 11)")
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads (the target machine has 2 cores)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from chromexp import paths
    from chromexp.baselines import shallowchrome as sc
    from chromexp.constants import CELL_TYPES, CHROM_FOLD, MARKS

    table = pd.read_csv(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz", sep="\t")
    table = table[table["chrom"].isin(CHROM_FOLD)].reset_index(drop=True)
    n = len(table)
    fold = table["chrom"].map(CHROM_FOLD).to_numpy()
    chroms = sorted(table["chrom"].unique())

    def chrom_splits():
        out = []
        for k in (1, 2, 3, 4):
            test = np.flatnonzero(fold == k)
            others = [c for c in chroms if CHROM_FOLD[c] != k]
            # deterministic chromosome-grouped validation set of about 12 % of the training genes
            val_chroms, size, target = [], 0, 0.12 * (n - test.size)
            for c in others[::3]:
                if size >= target:
                    break
                val_chroms.append(c)
                size += int((table["chrom"] == c).sum())
            val = np.flatnonzero(table["chrom"].isin(val_chroms).to_numpy())
            train = np.setdiff1d(np.flatnonzero(fold != k), val)
            out.append((k, {"train": train, "validation": val, "test": test}))
        return out

    rng = np.random.default_rng(0)
    cells = list(CELL_TYPES)[: args.cells]
    data = {}
    for cell in cells:
        rpkm = table[cell].to_numpy(dtype=np.float64)
        active = rpkm >= np.median(rpkm)
        feats = {}
        for fmt in ("narrowPeak", "broadPeak", "gappedPeak"):
            level = np.where(active[:, None], 1.0, 0.5) * rng.uniform(0.5, 1.5, len(MARKS))
            present = rng.random((n, len(MARKS))) < np.where(active[:, None], 0.7, 0.3)
            feats[fmt] = rng.gamma(2.0, 5.0 * level) * present
        genes = pd.DataFrame({"gene_id": table["gene_id"], "rpkm": rpkm})
        data[cell] = (feats, genes)
    splits = {"random_thirds": sc.random_third_splits(n, args.repeats, seed=0), "chrom_folds": chrom_splits()}
    n_fits = len(cells) * len(sc.CONFIGURATIONS) * (args.repeats + 4)
    print(
        f"{len(cells)} cell types x {len(sc.CONFIGURATIONS)} configurations x ({args.repeats} random thirds + 4 folds) = {n_fits} fits on {n} genes x {len(MARKS)} marks; {args.threads} BLAS threads"
    )

    t0 = time.perf_counter()
    aucs = []
    for cell in cells:
        feats, genes = data[cell]
        res = sc.evaluate(feats, genes, MARKS, cell_type=cell, splits=splits, rules=("median",))
        aucs.append(res.metrics.query("metric == 'auroc' and split == 'test'")["value"].mean())
    ours = time.perf_counter() - t0
    print(
        f"chromexp (Newton fits + selection + Wald tables + metrics): {ours:.1f} s for all ({ours / n_fits * 1e3:.1f} ms per fit); mean test AUROC {np.mean(aucs):.3f}"
    )

    # the reference's routine on one cell type's grid (fits and two AUROCs per fit, nothing else)
    feats, genes = data[cells[0]]
    y = (genes["rpkm"].to_numpy() >= np.median(genes["rpkm"])).astype(int)
    t0 = time.perf_counter()
    n_ref = 0
    for config in sc.CONFIGURATIONS:
        x = sc.design_matrix(feats, MARKS, config)
        for split_list in splits.values():
            for _, s in split_list:
                model = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=6000, random_state=666)
                model.fit(x[s["train"]], y[s["train"]])
                roc_auc_score(y[s["validation"]], model.decision_function(x[s["validation"]]))
                roc_auc_score(y[s["test"]], model.decision_function(x[s["test"]]))
                n_ref += 1
    ref = time.perf_counter() - t0
    ours_one = ours / len(cells)
    print(
        f"reference routine (sklearn lbfgs, fits + AUROCs only), one cell type: {ref:.1f} s ({ref / n_ref * 1e3:.1f} ms per fit)"
    )
    print(
        f"per cell type: chromexp {ours_one:.2f} s vs reference {ref:.2f} s -> ratio reference/chromexp = {ref / ours_one:.1f}x"
    )


if __name__ == "__main__":
    main()
