"""Benchmark: the perturbation engine vs the reference's naive loop, side by side.

Same run, same models (four fold models of a single-mark Chromoformer-reg, default architecture,
seeded random weights), same genes (random inputs with the structure of real ones; pCREs per gene
drawn from the real E003 demo genes' distribution), same plan (the promoter + 16 distal regions ×
11 levels = 187 variants per gene and fold).

* ``naive-ref``: the reference code's loop — one prediction pass per (fold, region, level) over
  the genes in batches of 64, on the reference's computation (``full_attention=True``: every
  query position and pCRE slot, the same function as ``chromoformer==1.1.3``). It is slow, so
  only ``--naive-calls`` of its (fold, region, level) calls are timed and the total is
  extrapolated linearly (every call does the same work).
* ``naive-tss``: the same loop on our exact TSS-only path (what batching alone adds).
* ``engine``: ``chromexp.analyses.perturb.perturbation_predictions`` (variants batched on the device,
  level 1.0 predicted once).
* ``demo``: the whole perturbation of one cell type with the study's plan (3 experiments ×
  ``--demo-genes`` genes, 4 folds, 11 levels, plus pCRE ablation); ``params/demo.yaml`` runs
  100 genes per set on 2 folds and 6 levels, about a quarter of that per gene.

Each mode runs in a fresh subprocess (peak resident memory = its ``ru_maxrss``; CPU time is
printed beside wall time because the machine may be shared). The engine's predictions are
checked against both naive loops.

Usage::

    .venv/bin/python bench/bench_perturbation.py                 # 2 threads, 16 genes
    .venv/bin/python bench/bench_perturbation.py --genes 64 --device cuda
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import time

import numpy as np


def _setup(args):
    import pandas as pd
    import torch

    from chromexp import paths
    from chromexp.analyses import perturb
    from chromexp.models import chromoformer as cf
    from chromexp.models import chromoformer_inputs as ci

    torch.set_num_threads(args["threads"])
    meta = pd.read_csv(paths.resources_dir() / "e003_real" / "genes.csv")
    counts = meta["neighbors"].fillna("").map(lambda s: len([x for x in s.split(";") if x])).to_numpy()
    n_pcres = np.random.default_rng(0).choice(counts, size=args["genes"], replace=True)
    x = ci.random_inputs(args["genes"], n_marks=1, n_pcres=n_pcres, seed=1, window=perturb.STUDY_WINDOW)
    models = []
    for fold in range(4):
        torch.manual_seed(fold)
        models.append(cf.ChromoformerRegressor(n_marks=1).eval())
    return models, x, perturb.regions(), perturb.LEVELS


def _worker(mode, args, queue):
    try:
        queue.put(_measure(mode, args))
    except BaseException as err:  # report instead of leaving the parent waiting forever
        queue.put({"error": f"{type(err).__name__}: {err}"})
        raise


def _measure(mode, args):
    import torch

    from chromexp.analyses import perturb

    models, x, regs, levels = _setup(args)
    out = {}
    cpu0, t0 = time.process_time(), time.perf_counter()
    if mode == "engine":
        res = perturb.perturbation_predictions(models, x, regs, levels, batch_size=args["batch"], device=args["device"])
        out["pred"] = res.predictions
    elif mode == "naive-tss":
        out["pred"] = perturb.naive_perturbation(models, x, regs, levels, batch_size=64)
    elif mode == "naive-ref":
        # the first `naive_calls` (fold, region, level) calls of the reference loop
        calls = [(f, i, j) for f in range(len(models)) for i in range(len(regs)) for j in range(len(levels))]
        sub = calls[: args["naive_calls"]]
        pred = np.full((len(models), args["genes"], len(regs), len(levels)), np.nan)
        with torch.no_grad():
            for f, i, j in sub:
                xp = perturb.perturb_inputs(x, regs[i], levels[j])
                for a in range(0, args["genes"], 64):
                    xb = {k: v[a : a + 64] for k, v in xp.items()}
                    pred[f, a : a + 64, i, j] = models[f](full_attention=True, **xb).double().numpy()
        out["pred"] = pred
        out["fraction"] = len(sub) / len(calls)
    elif mode == "demo":
        import pandas as pd  # noqa: F401  (same imports as the notebook)

        for _ in range(3):  # 3 experiments (marks), each its own 4 fold models in the notebook
            perturb.perturbation_predictions(models, x, regs, levels, batch_size=args["batch"], device=args["device"])
            perturb.ablate_pcres(models, x, batch_size=args["batch"], device=args["device"])
    out["wall"] = time.perf_counter() - t0
    out["cpu"] = time.process_time() - cpu0
    out["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB
    return out


def _run(mode, args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_worker, args=(mode, args, q))
    p.start()
    out = q.get()
    p.join()
    if "error" in out:
        raise RuntimeError(f"bench mode {mode} failed: {out['error']}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genes", type=int, default=16, help="genes perturbed in the comparison")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=1024, help="engine rows per forward pass")
    ap.add_argument("--naive-calls", type=int, default=8, help="reference-loop calls timed (then extrapolated)")
    ap.add_argument("--demo-genes", type=int, default=100, help="genes per experiment in the demo timing (0 = skip)")
    ap.add_argument("--skip-naive-tss", action="store_true")
    a = ap.parse_args(argv)
    args = vars(a)
    print(
        f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
        f"{a.threads} torch threads, load average {os.getloadavg()[0]:.1f} (machine shared: wall times suffer first)"
    )
    print(f"plan: 4 fold models x 17 regions x 11 levels, {a.genes} genes\n")
    eng = _run("engine", args)
    rows = [("engine", eng["wall"], eng["cpu"], eng["peak_rss"], "")]
    ref = _run("naive-ref", args)
    total = ref["wall"] / ref["fraction"]
    cpu_total = ref["cpu"] / ref["fraction"]
    ok = ~np.isnan(ref["pred"])
    d_ref = float(np.abs(ref["pred"][ok] - eng["pred"][ok]).max())
    rows.append(
        (
            "naive loop, reference computation (full attention)",
            total,
            cpu_total,
            ref["peak_rss"],
            f"extrapolated from {a.naive_calls} calls; max |diff| {d_ref:.1e}",
        )
    )
    if not a.skip_naive_tss:
        tss = _run("naive-tss", args)
        d_tss = float(np.abs(tss["pred"] - eng["pred"]).max())
        rows.append(
            ("naive loop, our TSS-only path", tss["wall"], tss["cpu"], tss["peak_rss"], f"max |diff| {d_tss:.1e}")
        )
    print(f"{'mode':52s} {'wall s':>9s} {'cpu s':>9s} {'peak RSS GiB':>13s}  note")
    for name, w, c, m, note in rows:
        print(f"{name:52s} {w:9.2f} {c:9.2f} {m:13.2f}  {note}")
    print(
        f"\nspeed-up of the engine over the reference-style loop: {total / eng['wall']:.1f}x wall, {cpu_total / eng['cpu']:.1f}x CPU"
    )
    if not a.skip_naive_tss:
        print(
            f"speed-up over the same loop on the TSS-only path (batching alone): {tss['wall'] / eng['wall']:.1f}x wall"
        )
    if a.demo_genes:
        demo = _run("demo", {**args, "genes": a.demo_genes})
        scale = 100 / a.demo_genes
        print(
            f"\ndemo cell type (3 experiments x {a.demo_genes} genes x 4 folds x 187 variants + pCRE ablation): "
            f"{demo['wall']:.1f} s wall, {demo['cpu']:.1f} s CPU, peak RSS {demo['peak_rss']:.2f} GiB"
        )
        if a.demo_genes != 100:
            print(
                f"  -> 100 genes per experiment, linear in genes: ~{demo['wall'] * scale:.0f} s wall, "
                f"~{demo['cpu'] * scale:.0f} s CPU (extrapolated)"
            )


if __name__ == "__main__":
    main()
