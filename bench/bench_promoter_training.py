"""Training throughput of the promoter CNN: one model, and the 28 (mark × fold) models of a cell type
trained one after another vs concurrently (``chromexp.training.stacked.fit_many``).

Data are random tensors of the real shapes (genes × 7 marks × 60 bins; four folds, ≈12 % of the
training folds' genes for validation), so the benchmark needs no dataset; throughput does not
depend on the values. Genes/s counts training genes × epochs per second of ``fit`` wall time
(which includes the validation pass of every epoch, as in real training).

Usage::

    .venv/bin/python bench/bench_promoter_training.py                 # CPU, demo-sized (2,000 genes)
    .venv/bin/python bench/bench_promoter_training.py --device cuda --n-genes 19000 --epochs 3
    .venv/bin/python bench/bench_promoter_training.py --quick         # 2 marks × 2 folds, 400 genes

The reference implementation (chromexpress, Keras/TensorFlow) is not installed here, so no ratio
against it is printed; the ratio printed is concurrent vs sequential on the same device.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch


def make_data(n_genes: int, n_marks: int, seed: int = 0):
    """Random inputs (n_genes, n_marks, 60), targets, and fold splits (train/validation per fold)."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.log1p(rng.gamma(0.5, 2.0, size=(n_genes, n_marks, 60))).astype(np.float32))
    y = torch.from_numpy(
        (2.0 * x[:, :, 25:35].mean(axis=(1, 2)).numpy() + rng.normal(0, 0.5, n_genes)).astype(np.float32)
    )
    fold_of = rng.integers(1, 5, n_genes)
    splits = {}
    for fold in range(1, 5):
        rest = np.flatnonzero(fold_of != fold)
        n_val = int(round(0.12 * rest.size))
        splits[fold] = {"train": rest[n_val:], "validation": rest[:n_val]}
    return x, y, splits


def jobs(x, y, splits, n_marks: int, folds):
    from chromexp.models.promoter_cnn import PromoterCNN

    models, trains, vals = [], [], []
    for fold in folds:
        s = splits[fold]
        for j in range(n_marks):
            torch.manual_seed(10 * fold + j)
            models.append(PromoterCNN(n_marks=1))
            trains.append((x[s["train"], j : j + 1], y[s["train"]]))
            vals.append((x[s["validation"], j : j + 1], y[s["validation"]]))
    return models, trains, vals


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-genes", type=int, default=2000, help="genes in the synthetic cell type (demo preset: 2,000)")
    ap.add_argument("--epochs", type=int, default=1, help="epochs per model (early stopping is disabled)")
    ap.add_argument("--marks", type=int, default=7)
    ap.add_argument("--folds", type=int, default=4)
    ap.add_argument("--device", default=None, help="cpu | cuda (default: auto)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA or CPU)")
    ap.add_argument("--quick", action="store_true", help="2 marks × 2 folds, 400 genes")
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.n_genes, args.marks, args.folds = 400, 2, 2
    if args.threads:
        torch.set_num_threads(args.threads)

    from chromexp.training import stacked, train

    device = train.resolve_device(args.device)
    tp = dict(
        lr=1.0e-3,
        batch_size=64,
        max_epochs=args.epochs,
        lr_factor=0.2,
        lr_patience=3,
        min_lr=1.0e-6,
        early_stopping_patience=args.epochs + 1,
        mixed_precision=bool(args.bf16),
    )
    x, y, splits = make_data(args.n_genes, args.marks)
    folds = list(range(1, args.folds + 1))
    n_models = args.marks * len(folds)
    info = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "n_genes": args.n_genes,
        "epochs": args.epochs,
        "n_models": n_models,
        "bf16": bool(args.bf16),
    }
    print(json.dumps(info))

    # warm-up (first-call costs: optimizer imports, kernel selection)
    models, trains, vals = jobs(x, y, splits, 1, [1])
    warm = dict(tp, max_epochs=1)
    small = (trains[0][0][:128], trains[0][1][:128])
    train.fit(models[0], small, small, train_params=warm, device=device, progress=False)
    stacked.fit_many(
        [models[0], jobs(x, y, splits, 1, [2])[0][0]],
        [small, small],
        [small, small],
        train_params=warm,
        device=device,
        progress=False,
    )

    out = dict(info)
    # one model
    models, trains, vals = jobs(x, y, splits, 1, [1])
    t0 = time.perf_counter()
    train.fit(models[0], trains[0], vals[0], train_params=tp, device=device, progress=False)
    dt = time.perf_counter() - t0
    out["one_model_genes_per_s"] = len(trains[0][1]) * args.epochs / dt
    print(
        f"one model: {len(trains[0][1])} training genes × {args.epochs} epoch(s) in {dt:.1f} s = {out['one_model_genes_per_s']:.0f} genes/s"
    )

    models, trains, vals = jobs(x, y, splits, args.marks, folds)
    gene_epochs = sum(len(t[1]) for t in trains) * args.epochs
    if not args.skip_sequential:
        t0 = time.perf_counter()
        for m, tr, va in zip(models, trains, vals, strict=True):
            train.fit(m, tr, va, train_params=tp, device=device, progress=False)
        out["sequential_s"] = time.perf_counter() - t0
        out["sequential_genes_per_s"] = gene_epochs / out["sequential_s"]
        print(
            f"{n_models} models one after another: {out['sequential_s']:.1f} s = {out['sequential_genes_per_s']:.0f} genes/s"
        )

    models, trains, vals = jobs(x, y, splits, args.marks, folds)
    t0 = time.perf_counter()
    stacked.fit_many(models, trains, vals, train_params=tp, device=device, progress=False)
    out["concurrent_s"] = time.perf_counter() - t0
    out["concurrent_genes_per_s"] = gene_epochs / out["concurrent_s"]
    print(
        f"{n_models} models concurrently (fit_many): {out['concurrent_s']:.1f} s = {out['concurrent_genes_per_s']:.0f} genes/s"
    )
    if "sequential_s" in out:
        out["speedup_concurrent_vs_sequential"] = out["sequential_s"] / out["concurrent_s"]
        print(f"concurrent / sequential speed-up: {out['speedup_concurrent_vs_sequential']:.2f}×")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    import logging

    logging.getLogger("chromexp").setLevel(logging.WARNING)
    from chromexp.utils import get_logger

    get_logger()  # install the handler, then silence per-epoch lines
    logging.getLogger("chromexp").setLevel(logging.WARNING)
    main()
