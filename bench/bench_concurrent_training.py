"""Chromoformer (mark set, fold) models of a cell type: sequential vs concurrent worker processes,
through the real code path of notebooks 40/50 (``chromexp.experiments.chromoformer.train_and_evaluate``
with ``concurrent`` = 1 and = N).

The data are random inputs with the real structure (promoter and 0–8 pCRE slots at the three
resolutions, ``chromoformer_inputs.random_inputs``; a 4 kb window keeps the tiny CPU size small);
every (mark set, fold) model is trained with the study's protocol and evaluated on its fold's test
genes, exactly as in the notebooks, and the two runs' metrics and predictions tables are checked to
be identical. The wall time of the concurrent run includes starting the worker processes (spawn,
importing torch): that is what a user pays.

On CPU the workers share the cores (each gets ``threads // workers`` of them): the ratio shows
what process-level concurrency costs or gains where compute is the limit. On a GPU the point is
to overlap many small models' kernels on one device (``bench/gpu_grid.py`` measures that mode on
a GPU). Load from other processes on the machine changes wall times: the script prints the load
average before and after, and the CPU seconds of the parent process.

Usage::

    .venv/bin/python bench/bench_concurrent_training.py                       # CPU tiny size, 2 workers
    .venv/bin/python bench/bench_concurrent_training.py --architecture paper --genes 512 --epochs 2
    .venv/bin/python bench/bench_concurrent_training.py --device cuda --architecture paper --genes 4096 --workers 8
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import pandas as pd
import torch

TINY = {
    "d_model": 16,
    "d_model_reg": 16,
    "embed_layers": 1,
    "embed_heads": 2,
    "embed_ff": 16,
    "pairwise_layers": 1,
    "pairwise_heads": 2,
    "pairwise_ff": 16,
    "reg_layers": 1,
    "reg_heads": 2,
    "reg_ff": 16,
    "head_hidden": 16,
}
MARKS = ("H3K4me3", "H3K27me3")


class RandomDataset:
    """The CellDataset interface ``train_and_evaluate`` uses, on random inputs of the real structure."""

    cell_type = "E003"
    marks = MARKS

    def __init__(self, n_genes: int, window: int, seed: int = 0):
        from chromexp.models import chromoformer_inputs as ci

        rng = np.random.default_rng(seed)
        n_pcres = rng.integers(0, 9, n_genes).tolist()
        self.inputs = ci.random_inputs(n_genes, n_marks=len(MARKS), n_pcres=n_pcres, window=window, seed=seed)
        signal = self.inputs["promoter_100"][:, 0].mean(1).numpy()
        target = (2.0 * signal + rng.normal(0, 0.3, n_genes)).astype(np.float32)
        label = (target >= np.median(target)).astype(int)
        self.genes = pd.DataFrame({"gene_id": [f"G{i}" for i in range(n_genes)], "target": target, "label": label})
        self._fold = rng.integers(1, 5, n_genes)

    def split(self, fold: int) -> dict:
        test = np.flatnonzero(self._fold == fold)
        rest = np.flatnonzero(self._fold != fold)
        n_val = max(1, int(round(0.12 * rest.size)))
        return {"train": rest[n_val:], "validation": rest[:n_val], "test": test}


def run(ds, params, mark_sets, folds, device, workers: int):
    from chromexp.experiments import chromoformer as ct

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    out = ct.train_and_evaluate(
        ds, params, mark_sets, folds=folds, device=device, progress=False, inputs=ds.inputs, concurrent=workers
    )
    return out, time.perf_counter() - t0, time.process_time() - cpu0


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--architecture", choices=["tiny", "paper"], default="tiny")
    ap.add_argument("--genes", type=int, default=400)
    ap.add_argument("--window", type=int, default=4000, help="bp of the promoter / pCRE windows (real: 40,000)")
    ap.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads of the job (default: torch's)")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from chromexp.config import load_params

    overrides = {
        "device": args.device,
        "train": {"max_epochs": args.epochs, "early_stopping_patience": args.epochs + 1},
    }
    if args.architecture == "tiny":
        overrides["model"] = {"chromoformer": TINY}
    params = load_params("E003", overrides=overrides)
    ds = RandomDataset(args.genes, args.window)
    mark_sets = [(m,) for m in MARKS]
    n_models = len(mark_sets) * len(args.folds)
    load_before = os.getloadavg()
    seq, seq_s, seq_cpu = run(ds, params, mark_sets, args.folds, args.device, 1)
    conc, conc_s, conc_cpu = run(ds, params, mark_sets, args.folds, args.device, args.workers)
    load_after = os.getloadavg()
    identical = seq.metrics.equals(conc.metrics) and seq.predictions.equals(conc.predictions)
    max_diff = float(np.abs(seq.predictions["predicted"].to_numpy() - conc.predictions["predicted"].to_numpy()).max())
    threads = torch.get_num_threads()
    worker_threads = max(1, threads // args.workers)
    result = {
        "device": args.device,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": threads,
        "threads_per_worker": worker_threads,
        "architecture": args.architecture,
        "genes": args.genes,
        "models": n_models,
        "epochs": args.epochs,
        "workers": args.workers,
        "sequential_s": round(seq_s, 3),
        "concurrent_s": round(conc_s, 3),
        "speedup": round(seq_s / conc_s, 3),
        "parent_cpu_s": {"sequential": round(seq_cpu, 3), "concurrent": round(conc_cpu, 3)},
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "identical_tables": bool(identical),
        "max_abs_prediction_difference": max_diff,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(
        f"{n_models} Chromoformer models ({args.architecture}, {args.genes} genes, {args.epochs} epochs) on "
        f"{args.device}: sequential ({threads} thread(s)) {seq_s:.1f} s, {args.workers} workers ({worker_threads} "
        f"thread(s) each) {conc_s:.1f} s -> concurrent/sequential speed ratio {seq_s / conc_s:.2f}x"
    )
    print(f"tables identical: {identical} (largest prediction difference {max_diff:.3g})")
    print(f"load average (1 min) before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {os.cpu_count()} cores")
    if not identical and worker_threads == threads:
        raise SystemExit("the concurrent run's tables differ from the sequential run's at equal thread counts")
    if not identical:
        print(
            "  (float sums depend on the CPU thread count: the workers run with fewer threads than the sequential "
            "run; at equal thread counts the tables are identical, tests/test_concurrent_training.py)"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result


if __name__ == "__main__":
    import logging

    from chromexp.utils import get_logger

    get_logger()
    logging.getLogger("chromexp").setLevel(logging.WARNING)
    main()
