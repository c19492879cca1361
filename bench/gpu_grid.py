"""Models per hour for the study's grid: promoter CNN and Chromoformer, one model at a time vs many
at once, fp32 vs bf16 — one script, a few minutes on a GPU, a JSON result.

    python bench/gpu_grid.py --out bench/results/gpu_grid_h100.json          # on the GPU machine
    python bench/gpu_grid.py --tiny --out /tmp/gpu_grid_cpu.json              # CPU fallback (CI size)
    chromexp plan --throughput bench/results/gpu_grid_h100.json               # → GPU-hours of the paper grid

Modes, per model family (inputs are random tensors of the real shapes; throughput does not depend
on the values; early stopping is disabled so every model trains the same number of epochs):

* ``one_fp32`` / ``one_bf16`` — one model trained with ``chromexp.training.train.fit`` (bf16 = autocast;
  on CPU only with ``--cpu-bf16``: slower than fp32 without native bf16 instructions, see
  ``bench/bench_bf16_cpu.py``);
* ``many_fp32`` / ``many_bf16`` — several models at once on the same device:
  - promoter CNN: ``chromexp.training.stacked.fit_many`` (the models' parameters stacked and vmapped: one
    grouped kernel instead of M small ones);
  - Chromoformer: ``--processes`` worker processes sharing the device, each training its own model
    with ``fit`` (its fast path skips empty pCRE slots with data-dependent indexing, which
    ``torch.func.vmap`` cannot batch: measured, it raises "Batching rule not implemented for
    aten::nonzero"). On a GPU the processes' kernels overlap; on CPU they share the cores.

* CLASTER (notebook 47): ``claster_a`` (option A, 7 marks × 400 bins → log2 expression, the
  virtual-4C structure branch, SmoothL1) and ``claster_paper`` (the published geometry, 4 × 10,001
  bins → 401 × 1 kb, 2,205,869 parameters): ``one_fp32`` / ``one_bf16`` only (one ``fit`` per
  model; EIR trained one model at a time too).
* Mittal's hierarchical CNNs (notebook 55; ``chromexp.models.hierarchical_cnn``, the reconstructed
  tower, C = 128), trained with the hybrid loss (α, β) = (100, 1) on batches of genes × cell types:
  ``hcnn_multi_tissue`` (all cell types' marks stacked, one output per cell type) and
  ``hcnn_matched_shared`` (one network over every (gene, cell type) pair). Only ``one_*`` modes:
  their BatchNorm keeps running statistics, which ``fit_many`` cannot stack. A "gene" there is a gene
  with all its cell types (``--hcnn-cells``, 11 as the full preset); models/hour assume
  ``--hcnn-epochs`` (5, the thesis's maximum).
* Chromoformer's own study (notebooks 45, 46; one model at a time, ``one_fp32`` / ``one_bf16``, with 7
  marks): ``chromoformer_diff`` (pairs: two backbone passes per gene, the diff loss), the promoter
  baselines ``deepchrome`` / ``attentivechrome`` / ``hmcrnn`` at their published windows (100 / 100 /
  40 bins) and at 40 kb (``*_40kb``: 400 bins, the window study's largest), and ``deepdiff`` (its
  ``aux`` variant, 200 bins per side). ``--study-genes`` sets their genes per model.

Throughput is gene-epochs per second of wall time (training genes × epochs, validation pass
included, as in real training); models/hour follows for an assumed number of epochs per model.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import time
from pathlib import Path

import numpy as np
import torch

TP = dict(lr=1.0e-3, batch_size=64, lr_factor=0.2, lr_patience=3, min_lr=1.0e-6)


def _train_params(epochs: int, bf16: bool) -> dict:
    return dict(TP, max_epochs=epochs, early_stopping_patience=epochs + 1, mixed_precision=bf16)


def cnn_data(n_genes: int, seed: int):
    """Random promoter inputs (genes, 1 mark, 60 bins) and targets."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.log1p(rng.gamma(0.5, 2.0, size=(n_genes, 1, 60))).astype(np.float32))
    y = torch.from_numpy((2.0 * x[:, 0, 25:35].mean(1).numpy() + rng.normal(0, 0.5, n_genes)).astype(np.float32))
    return x, y


def chromoformer_data(n_genes: int, seed: int):
    """Random Chromoformer inputs of the real shapes (1 mark, 0–8 pCREs per gene) and targets."""
    from chromexp.models import chromoformer_inputs as ci

    n_pcres = np.random.default_rng(seed).integers(0, 9, n_genes).tolist()
    # the study's window: TSS ± 20 kb (params signal.half_window), 40 kb of input per resolution
    x = ci.random_inputs(n_genes, n_marks=1, n_pcres=n_pcres, seed=seed, window=40_000)
    y = torch.randn(n_genes, generator=torch.Generator().manual_seed(seed))
    return x, y


#: The study's model families measured one at a time: family -> (input bins, marks).
STUDY_FAMILIES: dict[str, tuple[int, int]] = {
    "chromoformer_diff": (400, 7),
    "deepchrome": (100, 7),
    "deepchrome_40kb": (400, 7),
    "attentivechrome": (100, 7),
    "attentivechrome_40kb": (400, 7),
    "hmcrnn": (40, 7),
    "hmcrnn_40kb": (400, 7),
    "deepdiff": (200, 7),
}


def study_data(family: str, n_genes: int, seed: int):
    """Random inputs and targets of a study family (notebooks 45, 46) at its real shapes."""
    from chromexp.models import chromoformer_inputs as ci

    bins, marks = STUDY_FAMILIES[family]
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    if family == "chromoformer_diff":
        sides = []
        for side in (0, 1):
            n_pcres = rng.integers(0, 9, n_genes).tolist()
            sides.append(ci.random_inputs(n_genes, n_marks=marks, n_pcres=n_pcres, seed=seed + side, window=40_000))
        x = {**{f"{k}_a": v for k, v in sides[0].items()}, **{f"{k}_b": v for k, v in sides[1].items()}}
        return x, torch.randn(n_genes, 3, generator=gen)
    profile = lambda: torch.from_numpy(np.log1p(rng.gamma(0.5, 2.0, (n_genes, marks, bins))).astype(np.float32))  # noqa: E731
    if family == "deepdiff":
        return {"x_a": profile(), "x_b": profile()}, torch.randn(n_genes, 3, generator=gen)
    return profile(), torch.randn(n_genes, generator=gen)


def study_model(family: str, seed: int):
    """The untrained study model of ``family`` (regression heads; DeepDiff ``aux``)."""
    from chromexp.models import attentivechrome, deepchrome, deepdiff, hmcrnn
    from chromexp.models import chromoformer as cf

    torch.manual_seed(seed)
    bins, marks = STUDY_FAMILIES[family]
    name = family.removesuffix("_40kb")
    if name == "chromoformer_diff":
        return cf.build_model("diff", marks)
    if name == "deepchrome":
        return deepchrome.DeepChrome(marks, bins, "reg")
    if name == "attentivechrome":
        return attentivechrome.AttentiveChrome(marks, "reg")
    if name == "hmcrnn":
        return hmcrnn.HMCRNN(marks, bins, "reg")
    return deepdiff.DeepDiff("aux", marks)


def one_study(family: str, n_genes: int, epochs: int, device: torch.device, bf16: bool) -> dict:
    """Train one study model (batch 64; the diff loss for the pair models); gene-epochs per second."""
    from chromexp.experiments.chromoformer_diff import DiffLoss
    from chromexp.training import train

    tr, va = _split(*study_data(family, n_genes, 1))
    model = study_model(family, 1)
    loss = DiffLoss() if family in ("chromoformer_diff", "deepdiff") else "mse"
    _sync(device)
    t0 = time.perf_counter()
    train.fit(
        model,
        tr,
        va,
        train_params=_train_params(epochs, bf16),
        loss=loss,
        optimizer="adamw",
        device=device,
        progress=False,
    )
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"models": 1, "seconds": seconds, "gene_epochs_per_s": len(tr[1]) * epochs / seconds}


def claster_data(family: str, n_genes: int, seed: int):
    """Random CLASTER inputs of the real shapes and standardised targets (option A + virtual 4C, or the paper's)."""
    rng = np.random.default_rng(seed)
    if family == "claster_a":
        x = {
            "landscape": torch.from_numpy(rng.standard_normal((n_genes, 1, 7, 400)).astype(np.float32)),
            "structure": torch.from_numpy(rng.standard_normal((n_genes, 1, 1, 400)).astype(np.float32)),
        }
        y = torch.from_numpy(rng.standard_normal(n_genes).astype(np.float32))
    else:
        x = {"landscape": torch.from_numpy(rng.standard_normal((n_genes, 1, 4, 10_001)).astype(np.float32))}
        y = torch.from_numpy(rng.standard_normal((n_genes, 401)).astype(np.float32))
    return x, y


def hcnn_data(n_genes: int, n_cells: int, seed: int):
    """Random inputs (genes, cell types, 7 marks, 200 bins of 200 bp) and (genes, cell types) targets."""
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.log1p(rng.gamma(0.5, 2.0, size=(n_genes, n_cells, 7, 200))).astype(np.float32))
    y = torch.from_numpy(
        (x[:, :, 1, 95:105].mean(-1).numpy() + rng.normal(0, 0.5, (n_genes, n_cells))).astype(np.float32)
    )
    return x, y


HCNN = ("hcnn_multi_tissue", "hcnn_matched_shared")


def _split(x, y, frac: float = 0.12):
    n = len(y)
    n_val = max(1, int(round(frac * n)))
    take = (lambda v, s: {k: t[s] for k, t in v.items()}) if isinstance(x, dict) else (lambda v, s: v[s])
    return (take(x, slice(n_val, n)), y[n_val:]), (take(x, slice(0, n_val)), y[:n_val])


def _model(family: str, seed: int, n_cells: int = 11):
    torch.manual_seed(seed)
    if family in HCNN:
        from chromexp.models.hierarchical_cnn import HierarchicalCNN

        return HierarchicalCNN(family.removeprefix("hcnn_"), n_cells, 7, 200)
    if family == "claster_a":
        from chromexp.models import claster

        return claster.adapted_model(structure="virtual_4c")
    if family == "claster_paper":
        from chromexp.models import claster

        return claster.paper_model()
    if family == "promoter_cnn":
        from chromexp.models.promoter_cnn import PromoterCNN

        return PromoterCNN(n_marks=1)
    from chromexp.models.chromoformer import ChromoformerRegressor

    return ChromoformerRegressor(n_marks=1)


def _data(family: str, n_genes: int, seed: int, n_cells: int = 11):
    if family in HCNN:
        from chromexp.models.hierarchical_cnn import stack_cell_types

        x, y = hcnn_data(n_genes, n_cells, seed)
        return (stack_cell_types(x) if family == "hcnn_multi_tissue" else x), y
    if family.startswith("claster"):
        return claster_data(family, n_genes, seed)
    return (cnn_data if family == "promoter_cnn" else chromoformer_data)(n_genes, seed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def one(family: str, n_genes: int, epochs: int, device: torch.device, bf16: bool, n_cells: int = 11) -> dict:
    """Train one model; gene-epochs per second (for the hierarchical CNNs a gene carries all its cell types)."""
    from chromexp.training import train
    from chromexp.training.losses import HybridLoss

    tr, va = _split(*_data(family, n_genes, 1, n_cells))
    model = _model(family, 1, n_cells)
    optimizer = "adam" if family in ("promoter_cnn", *HCNN) else "adamw"
    loss = HybridLoss(100.0, 1.0) if family in HCNN else "smooth_l1" if family.startswith("claster") else "mse"
    _sync(device)
    t0 = time.perf_counter()
    train.fit(
        model,
        tr,
        va,
        train_params=_train_params(epochs, bf16),
        loss=loss,
        optimizer=optimizer,
        device=device,
        progress=False,
    )
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"models": 1, "seconds": seconds, "gene_epochs_per_s": len(tr[1]) * epochs / seconds}


def many_stacked(family: str, n_models: int, n_genes: int, epochs: int, device: torch.device, bf16: bool) -> dict:
    """Train ``n_models`` at once with ``stacked.fit_many`` (stacked, vmapped parameters)."""
    from chromexp.training import stacked

    splits = [_split(*_data(family, n_genes, s)) for s in range(n_models)]
    models = [_model(family, s) for s in range(n_models)]
    _sync(device)
    t0 = time.perf_counter()
    stacked.fit_many(
        models,
        [s[0] for s in splits],
        [s[1] for s in splits],
        train_params=_train_params(epochs, bf16),
        device=device,
        progress=False,
    )
    _sync(device)
    seconds = time.perf_counter() - t0
    gene_epochs = sum(len(s[0][1]) for s in splits) * epochs
    return {"models": n_models, "how": "fit_many", "seconds": seconds, "gene_epochs_per_s": gene_epochs / seconds}


def _worker(family, seed, n_genes, epochs, device, bf16, threads, start, queue):
    import logging

    torch.set_num_threads(threads)
    from chromexp.training import train

    logging.getLogger("chromexp").setLevel(logging.WARNING)

    tr, va = _split(*_data(family, n_genes, seed))
    model = _model(family, seed)
    dev = torch.device(device)
    start.wait()  # every worker has built its data and model: time only the training
    t0 = time.time()
    train.fit(model, tr, va, train_params=_train_params(epochs, bf16), optimizer="adamw", device=dev, progress=False)
    _sync(dev)
    queue.put((t0, time.time(), len(tr[1]) * epochs))


def many_processes(family: str, n_models: int, n_genes: int, epochs: int, device: torch.device, bf16: bool) -> dict:
    """Train ``n_models`` in as many processes sharing the device; aggregate gene-epochs per second."""
    ctx = mp.get_context("spawn")
    start, queue = ctx.Event(), ctx.Queue()
    threads = max(1, torch.get_num_threads() // n_models) if device.type == "cpu" else 1
    procs = [
        ctx.Process(target=_worker, args=(family, s, n_genes, epochs, str(device), bf16, threads, start, queue))
        for s in range(n_models)
    ]
    for p in procs:
        p.start()
    time.sleep(0.1)
    start.set()
    results = [queue.get(timeout=3600) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a training process exited with status {p.exitcode}")
    t0, t1 = min(r[0] for r in results), max(r[1] for r in results)
    return {
        "models": n_models,
        "how": "processes",
        "seconds": t1 - t0,
        "gene_epochs_per_s": sum(r[2] for r in results) / (t1 - t0),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None, help="cpu | cuda | cuda:1 (default: CUDA when available)")
    ap.add_argument("--tiny", action="store_true", help="CPU-sized run for CI (seconds)")
    ap.add_argument("--cnn-genes", type=int, default=12000, help="genes per promoter-CNN model (paper: ≈ 12,500)")
    ap.add_argument("--cnn-models", type=int, default=28, help="promoter-CNN models at once (7 marks × 4 folds)")
    ap.add_argument("--cf-genes", type=int, default=2048, help="genes per Chromoformer model in the benchmark")
    ap.add_argument("--processes", type=int, default=8, help="Chromoformer models (processes) at once")
    ap.add_argument("--claster-genes", type=int, default=4096, help="genes per CLASTER option-A model")
    ap.add_argument("--claster-paper-genes", type=int, default=512, help="samples per CLASTER paper-geometry model")
    ap.add_argument("--epochs", type=int, default=2, help="epochs per measured model")
    ap.add_argument("--epochs-per-model", type=float, default=40.0, help="assumed epochs of a real model (plan)")
    ap.add_argument("--hcnn-genes", type=int, default=4096, help="genes per hierarchical-CNN model in the benchmark")
    ap.add_argument("--hcnn-cells", type=int, default=11, help="cell types per gene (11 = the full preset)")
    ap.add_argument("--hcnn-epochs", type=float, default=5.0, help="epochs of a real hierarchical CNN (thesis: ≤ 5)")
    ap.add_argument("--out", default=None, help="write the JSON result here")
    ap.add_argument("--cpu-bf16", action="store_true", help="also measure bf16 autocast on CPU")
    ap.add_argument("--study-genes", type=int, default=1024, help="genes per model of Chromoformer's study families")
    ap.add_argument(
        "--study",
        nargs="*",
        default=list(STUDY_FAMILIES),
        help=f"study families to measure (default all: {list(STUDY_FAMILIES)})",
    )
    args = ap.parse_args(argv)
    if args.tiny:
        args.cnn_genes, args.cnn_models, args.cf_genes, args.processes, args.epochs = 256, 4, 48, 2, 1
        args.claster_genes, args.claster_paper_genes = 64, 8
        args.hcnn_genes, args.hcnn_cells = 64, 4
        args.study_genes = 32
    unknown = [f for f in args.study if f not in STUDY_FAMILIES]
    if unknown:
        ap.error(f"unknown study families {unknown}; choose from {list(STUDY_FAMILIES)}")

    from chromexp.runner import scale
    from chromexp.training import stacked, train

    device = train.resolve_device(args.device)
    result = {
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "tiny": bool(args.tiny),
        "epochs_measured": args.epochs,
        "date": time.strftime("%Y-%m-%d"),
        "families": {},
    }
    precisions = [False, True] if device.type == "cuda" or args.cpu_bf16 else [False]
    if True in precisions:
        # many_bf16 of the promoter CNN is fit_many: autocast may not reach its vmapped layers
        result["vmap_autocasts"] = stacked.vmap_autocasts(device)
    # warm-up: first-call costs (kernel selection, optimizer imports) are not throughput
    one("promoter_cnn", 128, 1, device, False)
    one("chromoformer", 16, 1, device, False)

    for family, n_genes in (("promoter_cnn", args.cnn_genes), ("chromoformer", args.cf_genes)):
        modes = {}
        for bf16 in precisions:
            tag = "bf16" if bf16 else "fp32"
            modes[f"one_{tag}"] = one(family, n_genes, args.epochs, device, bf16)
            if family == "promoter_cnn":
                modes[f"many_{tag}"] = many_stacked(family, args.cnn_models, n_genes, args.epochs, device, bf16)
            else:
                modes[f"many_{tag}"] = many_processes(family, args.processes, n_genes, args.epochs, device, bf16)
            for mode in (f"one_{tag}", f"many_{tag}"):
                m = modes[mode]
                m["models_per_hour"] = 3600.0 * m["gene_epochs_per_s"] / (n_genes * 0.88 * args.epochs_per_model)
                print(f"{family:13s} {mode:10s} {m['gene_epochs_per_s']:10.0f} gene-epochs/s  ({m['models']} model(s))")
        if True not in precisions:
            modes["one_bf16"] = modes["many_bf16"] = {"skipped": "bf16 on CPU is measured with --cpu-bf16"}
        one_speed = modes["one_fp32"]["gene_epochs_per_s"]
        modes["many_fp32"]["speedup_vs_one"] = modes["many_fp32"]["gene_epochs_per_s"] / one_speed
        result["families"][family] = {"genes_per_model": n_genes, "modes": modes}

    for family in args.study:  # Chromoformer's own study: one model at a time
        modes = {}
        for bf16 in precisions:
            tag = "bf16" if bf16 else "fp32"
            m = modes[f"one_{tag}"] = one_study(family, args.study_genes, args.epochs, device, bf16)
            print(f"{family:20s} one_{tag:5s} {m['gene_epochs_per_s']:10.0f} gene-epochs/s")
        if True not in precisions:
            modes["one_bf16"] = {"skipped": "bf16 on CPU is measured with --cpu-bf16"}
        result["families"][family] = {"genes_per_model": args.study_genes, "modes": modes, "study": True}
    # CLASTER: one model at a time (fp32 and, where measured, bf16)
    for family, n_genes in (("claster_a", args.claster_genes), ("claster_paper", args.claster_paper_genes)):
        modes = {}
        for bf16 in precisions:
            tag = "bf16" if bf16 else "fp32"
            m = modes[f"one_{tag}"] = one(family, n_genes, args.epochs, device, bf16)
            m["models_per_hour"] = 3600.0 * m["gene_epochs_per_s"] / (n_genes * 0.88 * args.epochs_per_model)
            print(f"{family:13s} one_{tag:6s} {m['gene_epochs_per_s']:10.1f} gene-epochs/s  (1 model)")
        result["families"][family] = {"genes_per_model": n_genes, "modes": modes}
    one("hcnn_multi_tissue", 32, 1, device, False, n_cells=2)  # warm-up
    for family in HCNN:
        modes = {}
        for bf16 in precisions:
            tag = "bf16" if bf16 else "fp32"
            m = one(family, args.hcnn_genes, args.epochs, device, bf16, n_cells=args.hcnn_cells)
            m["models_per_hour"] = 3600.0 * m["gene_epochs_per_s"] / (args.hcnn_genes * 0.88 * args.hcnn_epochs)
            modes[f"one_{tag}"] = m
            print(
                f"{family:20s} one_{tag:5s} {m['gene_epochs_per_s']:10.0f} gene-epochs/s  ({args.hcnn_cells} cell types)"
            )
        if True not in precisions:
            modes["one_bf16"] = {"skipped": "bf16 on CPU is measured with --cpu-bf16"}
        modes["many_fp32"] = {"skipped": "BatchNorm running statistics: fit_many cannot stack these models"}
        result["families"][family] = {"genes_per_model": args.hcnn_genes, "cell_types": args.hcnn_cells, "modes": modes}

    grid = scale.paper_grid(scale_cells())
    plan = scale.estimate(grid, result, epochs_per_model=args.epochs_per_model)
    result["paper_grid"] = {
        "epochs_per_model": args.epochs_per_model,
        "models": int(plan["n_models"].sum()),
        "hours": float(plan["hours"].sum()),
    }
    print(scale.format_plan(plan, result["gpu"] or result["device"], args.epochs_per_model))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return result


def scale_cells() -> list[str]:
    from chromexp.constants import CELL_TYPES

    return list(CELL_TYPES)


if __name__ == "__main__":
    import logging

    from chromexp.utils import get_logger

    get_logger()
    logging.getLogger("chromexp").setLevel(logging.WARNING)
    main()
