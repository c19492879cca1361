"""Benchmark: the eQTL decile test (10,000 random samples per decile) at the paper's scale.

Loci are SYNTHETIC (random effects; 2 % of loci carry an eQTL), sized like the real test: every
tissue-matched cell type (E007, E066, E087, E114, E116, E118 = 6), ~9,500 active genes each x 16
distal 2 kb loci = 152,000 loci per cell type, 10 deciles. Only timings are meaningful.

Three ways to draw the random samples are timed side by side:

* ours (``chromexp.analyses.enrichment.decile_tests``): one ``Generator.hypergeometric`` call per cell
  type, the exact distribution of the count in a random subset;
* explicit subsets (``method="subsets"``): ``Generator.choice(N, n, replace=False)`` per sample;
* the reference procedure (chromexpress ``bootstrap_neg``): ``DataFrame.sample(n)`` then a merge
  with the eQTL table per sample.

The two slow ones are timed on a few samples and extrapolated to 10,000 x 10 deciles x 6 cell
types (printed as such).

Run: ``.venv/bin/python bench/bench_eqtl_enrichment.py [--samples 20]``
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=6)
    parser.add_argument("--loci", type=int, default=152_000, help="distal loci per cell type")
    parser.add_argument("--samples", type=int, default=20, help="samples timed for the slow methods")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import numpy as np
    import pandas as pd

    from chromexp.analyses import enrichment

    rng = np.random.default_rng(0)
    n_random, n_deciles = 10_000, 10
    cells = [f"C{i}" for i in range(args.cells)]
    loci = pd.concat(
        [
            pd.DataFrame({"cell_type": c, "provenance": "synthetic", "effect": rng.normal(size=args.loci)})
            for c in cells
        ],
        ignore_index=True,
    )
    has = rng.random(len(loci)) < 0.02
    enrichment.decile_tests(loci.iloc[:1000], has[:1000], {}, n_random=10)  # warm-up (imports)
    t0 = time.perf_counter()
    enrichment.decile_tests(loci, has, {}, n_random=n_random, seed=0)
    ours = time.perf_counter() - t0
    total = n_random * n_deciles * args.cells
    print(f"{args.cells} cell types x {args.loci:,} loci, {n_deciles} deciles x {n_random:,} samples")
    print(f"ours (hypergeometric, vectorised): {ours:.2f} s")

    pool = has[: args.loci]
    n = args.loci // n_deciles
    t0 = time.perf_counter()
    enrichment.random_counts(pool, [n], args.samples, rng, method="subsets")
    per = (time.perf_counter() - t0) / args.samples
    print(
        f"explicit subsets: {per * 1e3:.1f} ms per sample -> {per * total:.0f} s extrapolated ({per * total / ours:.0f}x)"
    )

    # the reference: sample rows of the loci table, merge with the eQTLs on gene, filter by position
    genes = np.array([f"G{i}" for i in range(args.loci // 16)])
    df = pd.DataFrame(
        {
            "gene": np.repeat(genes, 16)[: args.loci],
            "mut_reg_start": rng.integers(0, 1e8, args.loci),
        }
    )
    df["mut_reg_end"] = df["mut_reg_start"] + 2000
    eqtl = pd.DataFrame({"gene_id": rng.choice(genes, 3000), "variant_pos": rng.integers(0, 1e8, 3000)})
    t0 = time.perf_counter()
    for i in range(args.samples):
        s = df.sample(n=n, random_state=i).merge(eqtl, left_on="gene", right_on="gene_id")
        int(((s["variant_pos"] >= s["mut_reg_start"]) & (s["variant_pos"] <= s["mut_reg_end"])).sum())
    per_ref = (time.perf_counter() - t0) / args.samples
    print(
        f"reference (DataFrame.sample + merge): {per_ref * 1e3:.1f} ms per sample -> {per_ref * total:.0f} s "
        f"extrapolated ({per_ref * total / ours:.0f}x)"
    )


if __name__ == "__main__":
    main()
