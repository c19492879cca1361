"""Benchmark: our Chromoformer vs the reference package ``chromoformer==1.1.3``, side by side.

Same machine, same run, same weights (ours loads the reference's ``state_dict``), same inputs.
For each of {reference, ours} x {training step, inference} a fresh subprocess builds the model
and a batch, checks the output, times ``--repeats`` steps after one warm-up step and reports the
median time and the peak resident memory (CPU: ``ru_maxrss`` of that process, and its increase
over the state just before the first step; CUDA: ``torch.cuda.max_memory_allocated``). Wall time
(median and fastest step) and the process's CPU time per step are printed: on a shared, busy
machine the wall time of many small operations suffers most from contention, so compare the
ratios with the load average printed alongside.

A training step = forward + MSE loss + backward + AdamW step (the study's optimiser), batch 64.
Inputs are random binned signals with the structure of real ones (chromexp.models.
chromoformer_inputs.random_inputs); the number of pCREs per gene is drawn from the real E003
demo genes' distribution (mean 5.8 of 8; 58 % have 8) unless ``--all-slots`` fills all 8.

Usage::

    .venv/bin/python bench/bench_chromoformer.py                    # 2 CPU threads, batch 64, 7 marks
    .venv/bin/python bench/bench_chromoformer.py --device cuda --repeats 10
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import time

import numpy as np


def _n_pcres(batch: int, all_slots: bool, seed: int) -> np.ndarray:
    if all_slots:
        return np.full(batch, 8)
    import pandas as pd

    from chromexp import paths

    meta = pd.read_csv(paths.resources_dir() / "e003_real" / "genes.csv")
    counts = meta["neighbors"].fillna("").map(lambda s: len([x for x in s.split(";") if x])).to_numpy()
    return np.random.default_rng(seed).choice(counts, size=batch, replace=True)


def _worker(which: str, mode: str, args: dict, queue) -> None:
    import torch

    torch.set_num_threads(args["threads"])
    device = torch.device(args["device"])
    import chromoformer.net as ref

    from chromexp import config
    from chromexp.models import chromoformer as cf
    from chromexp.models import chromoformer_inputs as ci

    torch.manual_seed(0)
    reference = ref.ChromoformerRegressor(n_feats=args["marks"])
    window = 2 * config.load_params()["signal"]["half_window"]
    inputs = ci.random_inputs(args["batch"], n_marks=args["marks"], n_pcres=args["n_pcres"], window=window, seed=1)
    target = torch.randn(args["batch"], generator=torch.Generator().manual_seed(2)).to(device)
    if which == "reference":
        model = reference
        batch = ci.to_reference_batch(inputs)
        batch = {
            k: ({r: t.to(device) for r, t in v.items()} if isinstance(v, dict) else v.to(device))
            for k, v in batch.items()
        }
        # The reference hard-codes .cuda() on its positional encoding: make it a no-op on CPU.
        if device.type == "cpu":
            torch.Tensor.cuda = lambda self, *a, **k: self

        def forward():
            return model(**batch).squeeze(-1)
    else:
        model = cf.ChromoformerRegressor(n_marks=args["marks"])
        model.load_state_dict(reference.state_dict(), strict=True)
        batch = {k: v.to(device) for k, v in inputs.items()}

        def forward():
            return model(**batch)

    del reference
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        if mode == "train":
            model.train()
            optimizer.zero_grad(set_to_none=True)
            out = forward()
            torch.nn.functional.mse_loss(out, target).backward()
            optimizer.step()
        else:
            model.eval()
            with torch.no_grad():
                out = forward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out.detach().cpu()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (Linux: KiB)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = step()  # warm-up; its output is compared across implementations
    times, cpu = [], []
    for _ in range(args["repeats"]):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    gpu_peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    queue.put(
        {
            "time": statistics.median(times),
            "times": times,
            "cpu": statistics.median(cpu),
            "peak_rss": peak,
            "step_rss": peak - rss_before,
            "gpu_peak": gpu_peak,
            "output": first.numpy(),
        }
    )


def _run(which, mode, args):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_worker, args=(which, mode, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--marks", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="timed steps after one warm-up")
    parser.add_argument("--ours-repeats", type=int, default=10, help="timed steps of ours (it is fast)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--all-slots", action="store_true", help="every gene has 8 pCREs (worst case for ours)")
    parser.add_argument("--modes", default="train,infer")
    args = parser.parse_args(argv)
    settings = {
        "batch": args.batch,
        "marks": args.marks,
        "threads": args.threads,
        "device": args.device,
        "n_pcres": _n_pcres(args.batch, args.all_slots, seed=0).tolist(),
    }
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads {args.threads}, "
        f"device {args.device}, load average {os.getloadavg()[0]:.1f} at start"
    )
    print(f"batch {args.batch}, {args.marks} marks, pCREs per gene: mean {np.mean(settings['n_pcres']):.2f} of 8")
    for mode in args.modes.split(","):
        res = {}
        for which, repeats in (("reference", args.repeats), ("ours", args.ours_repeats)):
            res[which] = _run(which, mode, {**settings, "repeats": repeats})
        diff = float(np.abs(res["ours"]["output"] - res["reference"]["output"]).max())
        ratio = res["reference"]["time"] / res["ours"]["time"]
        ratio_min = min(res["reference"]["times"]) / min(res["ours"]["times"])
        ratio_cpu = res["reference"]["cpu"] / res["ours"]["cpu"]
        label = "training step" if mode == "train" else "inference"
        print(f"\n{label} (median of timed steps)")
        for which in ("reference", "ours"):
            r = res[which]
            mem = (
                f"GPU peak {r['gpu_peak']:.2f} GiB"
                if args.device != "cpu"
                else f"peak RSS {r['peak_rss']:.2f} GiB (+{r['step_rss']:.2f} GiB during the steps)"
            )
            print(
                f"  {which:9s} median {r['time']:8.3f} s  min {min(r['times']):8.3f} s  CPU {r['cpu']:8.3f} s   {mem}"
                f"\n            steps (wall s): {', '.join(f'{t:.3f}' for t in r['times'])}"
            )
        print(
            f"  speed ratio reference/ours: {ratio:.1f}x (median wall), {ratio_min:.1f}x (fastest step), "
            f"{ratio_cpu:.1f}x (CPU time)   max |output difference|: {diff:.2e}"
        )
    print(f"\nload average {os.getloadavg()[0]:.1f} at end (timings on a shared machine are noisy)")


if __name__ == "__main__":
    main()
