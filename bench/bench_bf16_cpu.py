"""Speed of bf16 autocast vs float32 training on this CPU (``train.mixed_precision``), one thread.

    python bench/bench_bf16_cpu.py                       # ≈ 2 min on one core
    python bench/bench_bf16_cpu.py --quick               # seconds (smaller models)
    # approximately a CPU without native bf16: this CPU with its AVX-512 / bf16 paths disabled
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python bench/bench_bf16_cpu.py --quick

Trains one promoter CNN and one Chromoformer-reg model with :func:`chromexp.training.train.fit` (the path
the notebooks take on CPU; the inputs are random tensors of the real shapes, as in
``bench/gpu_grid.py``, whose ``one`` mode this reuses), alternately in float32 and under bf16
autocast, ``--repeats`` times each, and prints the median seconds and the ratio bf16 / fp32
(> 1 = bf16 slower). Whether bf16 can be fast depends on the CPU's instructions (AVX512-BF16,
AMX), printed first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def cpu_features() -> dict:
    """The CPU's bf16-relevant instruction sets as torch sees them."""
    return {
        "capability": torch.backends.cpu.get_cpu_capability(),
        "avx512_bf16": bool(torch.cpu._is_avx512_bf16_supported()),
        "amx": bool(torch.cpu._is_amx_tile_supported()),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cnn-genes", type=int, default=2000, help="promoter CNN genes (demo preset: 2,000)")
    ap.add_argument("--cf-genes", type=int, default=256, help="Chromoformer genes")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="400 / 48 genes, 1 epoch, 2 repeats")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    args = ap.parse_args(argv)
    if args.quick:
        args.cnn_genes, args.cf_genes, args.epochs, args.repeats = 400, 48, 1, 2
    torch.set_num_threads(args.threads)
    import gpu_grid

    dev = torch.device("cpu")
    result = {"cpu": cpu_features(), "epochs": args.epochs, "repeats": args.repeats, "families": {}}
    print(json.dumps(result["cpu"]))
    gpu_grid.one("promoter_cnn", 128, 1, dev, True)  # warm-up: first-call costs of both precisions
    gpu_grid.one("chromoformer", 16, 1, dev, True)
    print(f"{'family':13s} {'genes':>6s} {'fp32 s':>8s} {'bf16 s':>8s} {'bf16/fp32':>10s}")
    for family, n_genes in (("promoter_cnn", args.cnn_genes), ("chromoformer", args.cf_genes)):
        times = {False: [], True: []}
        for _ in range(args.repeats):
            for bf16 in (False, True):
                times[bf16].append(gpu_grid.one(family, n_genes, args.epochs, dev, bf16)["seconds"])
        fp32, bf16 = statistics.median(times[False]), statistics.median(times[True])
        result["families"][family] = {"genes": n_genes, "fp32_s": fp32, "bf16_s": bf16, "ratio": bf16 / fp32}
        print(f"{family:13s} {n_genes:6d} {fp32:8.2f} {bf16:8.2f} {bf16 / fp32:9.2f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    import logging

    from chromexp.utils import get_logger

    get_logger()
    logging.getLogger("chromexp").setLevel(logging.WARNING)
    main()
