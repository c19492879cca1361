"""Benchmark: re-saving one fold into a full-scale predictions table (chromexp.results).

Builds a predictions table of M models × 4 folds × G genes (default 12 × 4 × 19,000 = 912,000
rows, the size of one cell type's table once notebooks 20-50 have run), saves it, then re-saves
one (model, fold) group with :func:`chromexp.results.save_predictions` -- lock, read, keyed merge,
atomic gzip write -- and prints the time of each step, side by side with the same write at gzip
level 9 (pandas' default, what chromexp used before) to show what the level costs. Also checks
that the re-save kept every other row. Run: ``.venv/bin/python bench/bench_results.py [--genes G]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from chromexp import results


def _table(model: str, fold: int, genes: int, rng) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_type": "E003",
            "model": model,
            "marks": "H3K4me3",
            "fold": fold,
            "gene_id": [f"ENSG{i:011d}" for i in range(genes)],
            "observed": rng.random(genes),
            "predicted": rng.random(genes),
        }
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--genes", type=int, default=19_000)
    ap.add_argument("--models", type=int, default=12)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    big = pd.concat(
        [_table(f"m{k}", f, args.genes, rng) for k in range(args.models) for f in (1, 2, 3, 4)], ignore_index=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        results.save_predictions(big, out, provenance="semi-synthetic")
        t_first = time.perf_counter() - t0
        path = out / results.PREDICTIONS_FILE
        t0 = time.perf_counter()
        old = results.read_table(path)
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        saved = results.save_predictions(_table("m3", 2, args.genes, rng), out, provenance="semi-synthetic")
        t_resave = time.perf_counter() - t0
        assert len(saved) == len(big) and saved.groupby(["model", "fold"]).size().eq(args.genes).all()
        t0 = time.perf_counter()
        old.to_csv(out / "level9.tsv.gz", sep="\t", index=False, compression="gzip")
        t_level9 = time.perf_counter() - t0
        t0 = time.perf_counter()
        results.write_table(old, out / "level1.tsv.gz")
        t_level1 = time.perf_counter() - t0
        size9, size1 = (out / "level9.tsv.gz").stat().st_size, (out / "level1.tsv.gz").stat().st_size
    print(f"table: {len(big):,} rows ({args.models} models x 4 folds x {args.genes:,} genes)")
    print(f"first save {t_first:.1f} s; read back {t_read:.1f} s")
    print(f"re-save one (model, fold) of {args.genes:,} rows: {t_resave:.1f} s (every other row kept)")
    print(
        f"gzip write: level 1 (chromexp) {t_level1:.1f} s, {size1 / 1e6:.1f} MB; level 9 (pandas default) "
        f"{t_level9:.1f} s, {size9 / 1e6:.1f} MB; ratio {t_level9 / t_level1:.2f}x"
    )


if __name__ == "__main__":
    main()
