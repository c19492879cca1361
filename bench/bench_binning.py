"""Benchmark: reads -> binned promoter windows, chromexp.data.signal vs ``bedtools genomecov -bg`` + averaging.

Simulates N reads (default 10 M, 36 bp, both strands; 40 % piled up around the TSSs like
histone peaks, the rest uniform) on a 10-chromosome, 500 Mb genome, writes them as a tagAlign
file in a temporary folder, and computes the mean depth in the 100 / 500 / 2,000 bp bins of
TSS ± 20 kb for G genes (default 20,000) in two ways:

* **bedtools**: ``bedtools genomecov -bg`` (per-base depth as a bedGraph; reads counted over their
  own [start, end), the reference codes' signal), then averaging the bedGraph over the bins in
  Python (per chromosome: paint the intervals into a per-base array, cumulative sums at the
  bin edges);
* **chromexp**: ``io.read_tagalign`` (pyarrow's multi-threaded CSV reader, then validation) then ``signal.ReadCoverage`` (sorted read starts/ends and
  their prefix sums per chromosome) and ``signal.binned_means_multi`` (binary search per bin edge; no
  per-base array).

It asserts that every bin mean is identical (exact float64 equality) and prints wall times,
speed ratios, peak memory, CPU seconds (less sensitive to other load on a shared machine) and
the load average. ``OMP_NUM_THREADS`` sets the threads of the parse (pyarrow) and of the
per-chromosome indexing (all cores when unset). Run: ``.venv/bin/python bench/bench_binning.py [--reads N]``.

``--store`` instead measures the dataset store at full scale: 18,955 genes (the real hg19 TSSs
and strands of the vendored gene table), 7 marks of simulated reads, 8 pCREs per gene (HindIII-
like lengths, median ~5 kb), written by ``chromexp.data.dataset`` and reopened: file size, build time,
load time. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from chromexp.data import io, signal

READ = 36
HALF_WINDOW = 20_000
RESOLUTIONS = (100, 500, 2000)


def simulate(n_reads: int, n_genes: int, seed: int = 0):
    """Chromosome sizes, gene TSSs and reads (chrom sorted, positions unsorted within a chromosome)."""
    rng = np.random.default_rng(seed)
    sizes = {f"chr{i}": 50_000_000 for i in range(1, 11)}
    names = list(sizes)
    g_chrom = rng.choice(names, n_genes)
    g_tss = rng.integers(HALF_WINDOW, 50_000_000 - HALF_WINDOW, n_genes)
    peaked = rng.random(n_reads) < 0.4
    r_chrom = rng.choice(names, n_reads)
    start = rng.integers(0, 50_000_000 - READ, n_reads)
    which = rng.integers(0, n_genes, int(peaked.sum()))
    r_chrom[peaked] = g_chrom[which]
    start[peaked] = np.clip(g_tss[which] + rng.normal(0, 1500, len(which)).astype(np.int64), 0, 50_000_000 - READ)
    order = np.argsort(r_chrom, kind="stable")  # bedtools genomecov wants reads grouped by chromosome
    reads = pd.DataFrame(
        {
            "chrom": r_chrom[order],
            "start": start[order],
            "end": start[order] + READ,
            "name": "N",
            "score": 1000,
            "strand": np.where(rng.random(n_reads) < 0.5, "+", "-"),
        }
    )
    genes = pd.DataFrame({"chrom": g_chrom, "tss": g_tss})
    return sizes, genes, reads


def bedtools_bins(bed: Path, genome: Path, sizes, genes, workdir: Path):
    """bedtools genomecov -bg, then Python averaging over the bins. Returns (bins, t_genomecov, t_avg)."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = workdir / "coverage.bedGraph"
    rss = workdir / "bedtools_rss_kb.txt"
    # GNU time reports bedtools' own peak RSS (getrusage of children would inherit this process's
    # high-water mark across fork + exec)
    with open(out, "w") as handle:
        subprocess.run(
            [
                "/usr/bin/time",
                "-f",
                "%M",
                "-o",
                str(rss),
                "bedtools",
                "genomecov",
                "-bg",
                "-i",
                str(bed),
                "-g",
                str(genome),
            ],
            stdout=handle,
            check=True,
        )
    t1 = time.perf_counter()
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    bedtools_bins.cpu_genomecov = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    c1 = time.process_time()
    bedtools_bins.peak_rss_mb = int(rss.read_text().split()[-1]) / 1024
    bg = pd.read_csv(out, sep="\t", header=None, names=["chrom", "start", "end", "value"], dtype={"chrom": "category"})
    result = {res: np.empty((len(genes), 2 * HALF_WINDOW // res)) for res in RESOLUTIONS}
    for chrom, size in sizes.items():
        sel = bg[bg["chrom"] == chrom]
        depth = np.zeros(size, dtype=np.int32)
        lengths = (sel["end"] - sel["start"]).to_numpy()
        idx = np.repeat(sel["start"].to_numpy(), lengths) + (
            np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        depth[idx] = np.repeat(sel["value"].to_numpy(), lengths)
        cum = np.concatenate([[0], np.cumsum(depth, dtype=np.int64)])
        gi = np.flatnonzero(genes["chrom"].to_numpy() == chrom)
        for res in RESOLUTIONS:
            edges = genes["tss"].to_numpy()[gi, None] - HALF_WINDOW + np.arange(0, 2 * HALF_WINDOW + 1, res)
            result[res][gi] = np.diff(cum[edges], axis=1) / res
    t2 = time.perf_counter()
    bedtools_bins.cpu_avg = time.process_time() - c1 + (c1 - c0)  # (c1 - c0): this process while waiting
    return result, t1 - t0, t2 - t1


def chromexp_bins(bed: Path, sizes, genes):
    """io.read_tagalign + signal.ReadCoverage + signal.binned_means. Returns (bins, t_parse, t_bin, peak_bytes).

    ``peak_bytes`` is the tracemalloc peak (Python and NumPy allocations) of parsing and binning.
    """
    tracemalloc.start()
    t0 = time.perf_counter()
    c0 = time.process_time()
    reads = io.read_tagalign(bed, sizes)
    t1 = time.perf_counter()
    c1 = time.process_time()
    cov = signal.ReadCoverage.from_reads(reads)
    chroms = genes["chrom"].to_numpy()
    starts = genes["tss"].to_numpy() - HALF_WINDOW
    result = signal.binned_means_multi(cov, chroms, starts, 2 * HALF_WINDOW, RESOLUTIONS)
    t2 = time.perf_counter()
    chromexp_bins.cpu = (c1 - c0, time.process_time() - c1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return result, t1 - t0, t2 - t1, peak


def store_benchmark(n_genes: int = 18_955, reads_per_mark: int = 3_000_000, seed: int = 0) -> None:
    """Full-scale store: size on disk, write and load times (see the module docstring)."""
    from chromexp import config, paths
    from chromexp.data import dataset

    rng = np.random.default_rng(seed)
    params = config.load_params("E003")
    settings = dataset._settings(params)
    table = io.read_gene_table(paths.resources_dir() / "roadmap" / "genes_rpkm_11.tsv.gz")
    table = table[table["strand"].isin(["+", "-"]) & (table["tss"] > 60_000)].drop_duplicates("gene_id")
    genes = table.sample(n=min(n_genes, len(table)), random_state=seed).reset_index(drop=True)
    sizes = io.read_chrom_sizes(paths.resources_dir() / "hg19.chrom.sizes")
    rpkm = pd.Series(rng.exponential(5.0, len(genes)), index=genes["gene_id"])
    tracks = {}
    for mark in settings["marks"]:
        which = rng.integers(0, len(genes), reads_per_mark)
        start = genes["tss"].to_numpy()[which] + rng.integers(-60_000, 60_000, reads_per_mark)
        tracks[mark] = signal.ReadCoverage.from_arrays(genes["chrom"].to_numpy()[which], start, start + READ)
    k = 8
    lengths = np.clip(np.exp(rng.normal(np.log(5000), 0.6, len(genes) * k)), 500, 39_000).astype(np.int64)
    other = np.repeat(genes["tss"].to_numpy(), k) + rng.integers(-150_000, 150_000, len(genes) * k)
    pairs = pd.DataFrame(
        {
            "bait_chrom": np.repeat(genes["chrom"].to_numpy(), k),
            "bait_start": np.repeat(genes["tss"].to_numpy(), k) - 2000,
            "bait_end": np.repeat(genes["tss"].to_numpy(), k) + 2000,
            "other_chrom": np.repeat(genes["chrom"].to_numpy(), k),
            "other_start": np.maximum(other, 0),
            "other_end": np.maximum(other, 0) + lengths,
            "frequency": 1.6 + rng.exponential(1.0, len(genes) * k),
        }
    )
    with tempfile.TemporaryDirectory(prefix="bench_store_") as tmp:
        path = Path(tmp) / "dataset.h5"
        t0 = time.perf_counter()
        content = dataset._assemble(genes, rpkm, tracks, pairs, settings, sizes)
        t1 = time.perf_counter()
        attrs = {"cell_type": "E003", "provenance": "semi-synthetic", "settings": json.dumps(settings)}
        dataset._write_store(path, content, {**attrs, "build_key": "bench", "read_inputs": "{}"})
        t2 = time.perf_counter()
        ds = dataset.CellDataset(path)
        arrays = [ds.promoter(resolution=r) for r in ds.resolutions]
        t3 = time.perf_counter()
        x, mask, freq, n = ds.pcres(marks=["H3K27ac"], resolution=100)
        t4 = time.perf_counter()
        print(
            f"genes {len(ds):,}, marks {len(ds.marks)}, pCRE fragments {len(content['fragments']):,}, pCREs {n.sum():,}"
        )
        print(f"binning {t1 - t0:.1f} s, writing {t2 - t1:.1f} s; store {path.stat().st_size / 1e6:,.0f} MB")
        print(
            f"open + all promoter tensors (3 resolutions, 7 marks): {t3 - t2:.2f} s ({sum(a.nbytes for a in arrays) / 1e6:,.0f} MB)"
        )
        print(f"pcres(1 mark, 100 bp): {t4 - t3:.2f} s, {x.nbytes / 1e6:,.0f} MB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=10_000_000, help="number of simulated reads")
    parser.add_argument("--genes", type=int, default=20_000, help="number of TSS ± 20 kb windows")
    parser.add_argument("--store", action="store_true", help="measure the full-scale dataset store instead")
    args = parser.parse_args(argv)
    if args.store:
        store_benchmark()
        return
    with tempfile.TemporaryDirectory(prefix="bench_binning_") as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        sizes, genes, reads = simulate(args.reads, args.genes)
        bed = tmp / "E000-H3K4me3.tagAlign"
        reads.to_csv(bed, sep="\t", header=False, index=False)
        del reads
        genome = tmp / "genome.txt"
        genome.write_text("".join(f"{c}\t{n}\n" for c, n in sizes.items()))
        print(f"simulated {args.reads:,} reads, {args.genes:,} windows in {time.perf_counter() - t:.1f} s")

        ours, t_parse, t_bin, peak_ours = chromexp_bins(bed, sizes, genes)
        theirs, t_cov, t_avg = bedtools_bins(bed, genome, sizes, genes, tmp)
        rss_bedtools = bedtools_bins.peak_rss_mb
        for res in RESOLUTIONS:
            assert np.array_equal(ours[res], theirs[res]), f"bin means differ at {res} bp"
        n_bins = sum(v.size for v in ours.values())
        print(f"identical: all {n_bins:,} bin means (100/500/2000 bp) equal exactly")
        print(f"bedtools genomecov -bg           {t_cov:8.2f} s   (peak RSS {rss_bedtools:,.0f} MB)")
        print(f"  + Python averaging of bedGraph  {t_avg:8.2f} s")
        print(f"  = bedtools path                 {t_cov + t_avg:8.2f} s")
        print(f"chromexp read_tagalign (parse)    {t_parse:8.2f} s")
        print(f"chromexp index + bin (signal)     {t_bin:8.2f} s")
        print(f"  = chromexp path                 {t_parse + t_bin:8.2f} s   (peak traced {peak_ours / 2**20:,.0f} MB)")
        print(f"speed ratio, binning from reads in memory vs bedtools path: {(t_cov + t_avg) / t_bin:6.1f}x")
        print(f"speed ratio, end to end from the tagAlign file:            {(t_cov + t_avg) / (t_parse + t_bin):6.1f}x")
        print(f"speed ratio, bedtools genomecov alone vs chromexp binning: {t_cov / t_bin:6.1f}x")
        # CPU seconds (all threads) are less sensitive to other load on a shared machine than wall time
        cpu_parse, cpu_bin = chromexp_bins.cpu
        cpu_theirs = bedtools_bins.cpu_genomecov + bedtools_bins.cpu_avg
        print(
            f"CPU seconds: bedtools path {cpu_theirs:.2f} (genomecov {bedtools_bins.cpu_genomecov:.2f}), "
            f"chromexp {cpu_parse + cpu_bin:.2f} (parse {cpu_parse:.2f}, all threads) -> "
            f"{cpu_theirs / (cpu_parse + cpu_bin):.1f}x end to end in CPU time"
        )
        print(
            f"load average (1/5/15 min) at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores"
        )


if __name__ == "__main__":
    main()
