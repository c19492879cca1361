"""Stacked training: many small independent models of one architecture trained at once.

:func:`fit_many` trains the mark × fold models of a cell type concurrently on one device: their
parameters are stacked and one ``torch.func.vmap``-ed forward and backward pass serves all of
them, while each model keeps its own optimizer, learning-rate schedule, early stopping and
shuffling — the protocol of :func:`chromexp.training.train.fit`, implemented once in ``chromexp.training.train``
and driven here with a stacked epoch step instead of a single-model one.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..utils import DETAIL, get_logger
from .train import (
    LOSSES,
    OPTIMIZERS,
    EpochFn,
    FitResult,
    Inputs,
    _autocast,
    _call,
    _check_split,
    _check_train_params,
    _Data,
    _fingerprint,
    _Protocol,
    _run_protocol,
    compute_loss,
    protocol_optimizer,
    resolve_device,
    save_finished_model,
)

log = get_logger("chromexp.training.stacked")


def vmap_autocasts(device: torch.device) -> bool:
    """Whether bf16 autocast reaches a vmapped ``nn.Linear`` with bias on ``device`` (a probe).

    With torch 2.13 on CPU it does not: inside ``torch.func.vmap`` the batched convolutions and
    biased linear layers run in float32 under autocast (measured), so :func:`fit_many` with
    ``mixed_precision`` would train mostly in float32 there while :func:`fit` trains in bf16.
    """
    from torch.func import vmap

    w, b, x = (torch.zeros(2, *shape, device=device) for shape in ((3, 4), (3,), (5, 4)))
    with torch.no_grad(), torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        out = vmap(torch.nn.functional.linear, in_dims=(0, 0, 0))(x, w, b)
    return out.dtype == torch.bfloat16


def _stack_inputs(batches: Sequence[Inputs]) -> Inputs:
    """Stack per-model input batches (same structure) along a new leading model dimension."""
    first = batches[0]
    if isinstance(first, dict):
        return {k: torch.stack([b[k] for b in batches]) for k in first}
    if isinstance(first, tuple):
        return tuple(torch.stack([b[i] for b in batches]) for i in range(len(first)))
    return torch.stack(list(batches))


def _check_same_architecture(models: Sequence[nn.Module]) -> None:
    ref = [(k, tuple(p.shape)) for k, p in models[0].named_parameters()]
    for i, m in enumerate(models[1:], start=1):
        if type(m) is not type(models[0]) or [(k, tuple(p.shape)) for k, p in m.named_parameters()] != ref:
            raise ValueError(f"fit_many needs models of one architecture; model {i} differs from model 0.")
    for i, m in enumerate(models):
        if any(True for _ in m.buffers()):
            raise ValueError(
                f"fit_many cannot stack model {i}: it has buffers (e.g. BatchNorm running statistics), "
                "which vmap cannot update per model; train it with fit()."
            )
        if len(
            {id(p) for p in m.parameters()} & {id(p) for j, o in enumerate(models) if j != i for p in o.parameters()}
        ):
            raise ValueError(f"Model {i} shares parameter tensors with another model; pass independent copies.")


def _check_same_structure(splits: Sequence[tuple[Inputs, torch.Tensor]], what: str) -> None:
    def sig(inputs: Inputs):
        if isinstance(inputs, dict):
            return ("dict", tuple((k, tuple(v.shape[1:]), v.dtype) for k, v in inputs.items()))
        if isinstance(inputs, tuple):
            return ("tuple", tuple((tuple(v.shape[1:]), v.dtype) for v in inputs))
        return ("tensor", tuple(inputs.shape[1:]), inputs.dtype)

    ref = sig(splits[0][0])
    for i, (x, y) in enumerate(splits):
        if sig(x) != ref or tuple(y.shape[1:]) != tuple(splits[0][1].shape[1:]):
            raise ValueError(
                f"{what} {i}: inputs differ in structure or per-gene shape from {what} 0 ({sig(x)} vs {ref})."
            )


class StackedModels:
    """Run ``M`` independent models of one architecture as one vmapped computation.

    The models' own parameters are stacked (``torch.stack``, differentiable) at every call, so
    gradients flow back into each model's parameters and each model can keep its own optimizer.
    ``torch.func.vmap`` over ``functional_call`` turns the ``M`` convolutions into one grouped
    convolution and the ``M`` dense layers into one batched matmul; dropout draws independent masks
    per model (``randomness="different"``).

    Parameters
    ----------
    models : sequence of nn.Module
        Same parameter names and shapes, no buffers, no shared parameters.

    Call
    ----
    ``stack(x, subset=None)``: ``x`` stacked inputs, each tensor of shape ``(M', batch, ...)``
    where ``M'`` = ``len(subset)`` (default all models) → outputs ``(M', batch, ...)``; row ``j``
    equals ``models[subset[j]](x[j])``.
    """

    def __init__(self, models: Sequence[nn.Module]):
        from torch.func import functional_call, vmap

        if len(models) == 0:
            raise ValueError("StackedModels got no models.")
        _check_same_architecture(models)
        self.models = list(models)
        self.keys = [k for k, _ in models[0].named_parameters()]
        # a parameter-less skeleton: functional_call swaps in each model's parameters
        skeleton = copy.deepcopy(models[0]).to("meta")

        def run(params: dict, x: Inputs) -> torch.Tensor:
            return _call(lambda *a, **k: functional_call(skeleton, params, a, k), x)

        self._batched = vmap(run, in_dims=(0, 0), randomness="different")

    def __call__(self, x: Inputs, subset: Sequence[int] | None = None) -> torch.Tensor:
        """Outputs ``(M', batch, ...)`` of the models ``subset`` (default all) on stacked inputs ``x``."""
        chosen = self.models if subset is None else [self.models[i] for i in subset]
        named = [dict(m.named_parameters()) for m in chosen]
        params = {k: torch.stack([nm[k] for nm in named]) for k in self.keys}
        return self._batched(params, x)


def fit_many(
    models: Sequence[nn.Module],
    trains: Sequence[tuple[Any, Any]],
    validations: Sequence[tuple[Any, Any]],
    *,
    train_params: Mapping[str, Any],
    loss: str = "mse",
    optimizer: str = "adam",
    device: str | torch.device | None = None,
    seeds: int | Sequence[int] = 0,
    checkpoint_path: str | Path | None = None,
    progress: bool = True,
    names: Sequence[str] | None = None,
    callback: Callable[[int, list[dict | None]], None] | None = None,
    model_checkpoints: Sequence[str | Path | None] | None = None,
) -> list[FitResult]:
    """Train many independent models of one architecture concurrently on one device.

    Each model ``m`` is trained on its own data ``trains[m]`` / ``validations[m]`` (different marks
    or folds; sizes may differ) exactly as :func:`fit` would: its own Adam/AdamW optimizer,
    ``ReduceLROnPlateau`` schedule, early stopping with best weights restored, and batches drawn
    from its own ``torch.Generator`` seeded with ``seeds[m]``. What is shared is the arithmetic:
    at each step the models' parameters are stacked and one ``torch.func.vmap``-ed
    ``functional_call`` runs all forward and backward passes at once (convolutions become grouped
    convolutions, dense layers batched matmuls) — for small models, one big kernel instead of
    ``M`` small ones. A model whose epoch has fewer batches (smaller fold), or that stopped
    early, contributes padding with zero weight and takes no optimizer step; a short last batch is
    padded the same way, with the loss averaged over its real genes only, so every update equals
    the sequential one. With dropout, the random masks differ from :func:`fit`'s (vmap draws them
    per model) — same distribution, not the same numbers; without dropout the results equal
    :func:`fit`'s up to float rounding (tested).

    Parameters
    ----------
    models : sequence of nn.Module
        ``M`` independent models with identical parameter shapes and no buffers (no BatchNorm);
        trained in place.
    trains, validations : sequences of (inputs, targets)
        One pair per model; all inputs share a structure and per-gene shape.
    train_params, loss, optimizer, device, progress :
        As in :func:`fit`; ``train_params["mixed_precision"]`` runs the stacked forward passes
        under bf16 autocast on CUDA and CPU. Autocast does not reach every vmapped operation
        (on CPU with torch 2.13, convolutions and biased linear layers stay float32): a warning
        says so when :func:`vmap_autocasts` finds it on the device.
    seeds : int or sequence of int
        Shuffling seed per model (an int is used for all). Dropout is seeded by ``seeds[0]``.
    checkpoint_path : path or None
        One file for the whole group, written atomically after every epoch; an interrupted
        group resumes from it to the same final models.
    names : sequence of str or None
        Model names for the log.
    callback : callable or None
        ``callback(epoch, rows)`` after each epoch (``rows[m]`` is ``None`` for finished models).
    model_checkpoints : sequence of path or None, optional
        One path per model (or ``None``). When the group has finished, each model is also
        written there as a finished :func:`fit` checkpoint, so that a later run which groups
        the models differently (one fold per job, one model at a time) reads it back with
        :func:`fit` instead of training it again (see ``chromexp.experiments.promoter_cnn``).

    Returns
    -------
    list of FitResult
        One per model, in order.
    """
    n_models = len(models)
    if n_models == 0:
        raise ValueError("fit_many got no models.")
    if len(trains) != n_models or len(validations) != n_models:
        raise ValueError(
            f"fit_many got {n_models} models but {len(trains)} training and {len(validations)} validation sets."
        )
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; known: {LOSSES}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; known: {OPTIMIZERS}.")
    seeds = [int(seeds)] * n_models if isinstance(seeds, (int, np.integer)) else [int(s) for s in seeds]
    if len(seeds) != n_models:
        raise ValueError(f"fit_many got {len(seeds)} seeds for {n_models} models.")
    names = list(names) if names is not None else [f"model{m}" for m in range(n_models)]
    if model_checkpoints is not None and len(model_checkpoints) != n_models:
        raise ValueError(f"fit_many got {len(model_checkpoints)} model checkpoints for {n_models} models.")
    _check_same_architecture(models)
    tp = _check_train_params(train_params)
    if tp.get("grad_clip") is not None:
        raise ValueError("fit_many does not clip gradients (grad_clip); train such models one at a time with fit().")
    optimizer = protocol_optimizer(optimizer, tp)
    tr_sets = [_check_split(s, f"train set {m}", loss) for m, s in enumerate(trains)]
    va_sets = [_check_split(s, f"validation set {m}", loss) for m, s in enumerate(validations)]
    _check_same_structure(tr_sets + va_sets, "data set")
    dev = resolve_device(device)
    amp = bool(tp.get("mixed_precision", False))
    if amp and not vmap_autocasts(dev):
        log.warning(
            "fit_many: bf16 autocast does not reach vmapped convolutions and linear layers on %s with "
            "torch %s: these models train mostly in float32; for bf16 use fit() (one model at a time; "
            "notebook 30: model.promoter_cnn.concurrent false)",
            dev,
            torch.__version__,
        )
    batch_size, eval_bs = int(tp["batch_size"]), 4 * int(tp["batch_size"])
    fingerprint = {
        "models": [
            _fingerprint(m, tp, loss, optimizer, s, t, v) for m, s, t, v in zip(models, seeds, tr_sets, va_sets)
        ],
    }
    homes = [next(m.parameters()).device for m in models]
    for m in models:
        m.to(dev).train()
    stack = StackedModels(models)
    protocols = [_Protocol(m, optimizer, tp, s, n) for m, s, n in zip(models, seeds, names, strict=True)]

    def padded(data: _Data, idx: torch.Tensor, size: int) -> tuple[Inputs, torch.Tensor, torch.Tensor]:
        """The genes ``idx`` padded to ``size`` rows (copies of gene 0) with a 0/1 weight."""
        real = len(idx)
        full = torch.cat([idx, torch.zeros(size - real, dtype=idx.dtype)]) if real < size else idx
        x, y = data.batch(full)
        w = torch.zeros(size, device=dev)
        w[:real] = 1.0
        return x, y, w

    def stacked_step(datas: list[_Data], idxs: dict[int, torch.Tensor], chosen: list[int]):
        """One vmapped forward pass of the models ``chosen``: per-model weighted loss sums and counts."""
        size = max(len(idxs[m]) for m in chosen)
        parts = [padded(datas[m], idxs[m], size) for m in chosen]
        x = _stack_inputs([p[0] for p in parts])
        y, w = torch.stack([p[1] for p in parts]), torch.stack([p[2] for p in parts])
        with _autocast(dev, amp):
            out = stack(x, chosen)
        per = torch.stack(
            [compute_loss(out[j], y[j], loss, reduction="none").reshape(w.shape[1]) for j in range(out.shape[0])]
        )
        return (per * w).sum(1), w.sum(1)

    def make_epoch() -> EpochFn:
        trs = [_Data(x, y, dev, None) for x, y in tr_sets]
        vas = [_Data(x, y, dev, None) for x, y in va_sets]

        @torch.no_grad()
        def evaluate(active: list[int]) -> dict[int, float]:
            for m in models:
                m.eval()
            totals = dict.fromkeys(active, 0.0)
            n_steps = max(math.ceil(vas[m].n / eval_bs) for m in active)
            for s in range(n_steps):
                # only models with genes left at this step run; batches padded to the longest one
                # (a model whose validation genes are used up gets an empty range, not arange(a > b))
                idxs = {m: torch.arange(min(s * eval_bs, vas[m].n), min((s + 1) * eval_bs, vas[m].n)) for m in active}
                chosen = [m for m in active if len(idxs[m])]
                sums, _ = stacked_step(vas, idxs, chosen)
                for j, m in enumerate(chosen):
                    totals[m] += float(sums[j])
            for m in models:
                m.train()
            return {m: totals[m] / vas[m].n for m in active}

        def run_epoch(active: list[int]) -> tuple[dict[int, float], dict[int, float]]:
            perms = {m: torch.randperm(trs[m].n, generator=protocols[m].shuffle) for m in active}
            totals = dict.fromkeys(active, 0.0)
            n_steps = max(math.ceil(trs[m].n / batch_size) for m in active)
            for s in range(n_steps):
                # models whose epoch has no batch left (smaller folds) sit this step out; short
                # last batches are padded to the longest batch of the step with zero weight
                idxs = {m: perms[m][s * batch_size : (s + 1) * batch_size] for m in active}
                stepping = [m for m in active if len(idxs[m])]
                for p in protocols:
                    p.opt.zero_grad(set_to_none=True)
                sums, counts = stacked_step(trs, idxs, stepping)
                # each model's loss is the mean over its real genes; summing the models' losses
                # leaves every model's gradient equal to its own loss's gradient
                per_model = sums / counts.clamp(min=1.0)
                per_model.sum().backward()
                for j, m in enumerate(stepping):
                    protocols[m].opt.step()
                    protocols[m].after_step()
                    totals[m] += float(sums[j].detach())
            return {m: totals[m] / trs[m].n for m in active}, evaluate(active)

        return run_epoch

    def report(epoch: int, rows: list[dict | None], active: list[int], bar) -> None:
        mean_val = float(np.mean([rows[m]["val_loss"] for m in active]))
        log.log(
            DETAIL,
            "fit_many epoch %3d: %d models trained, mean val %.4f, %d stopped, %.1fs",
            epoch,
            len(active),
            mean_val,
            sum(p.stopped for p in protocols),
            rows[active[0]]["seconds"] * len(active),
        )
        bar.set_postfix(active=len(active), val=f"{mean_val:.3f}")

    results = _run_protocol(
        protocols,
        make_epoch,
        homes=homes,
        device=dev,
        seed=seeds[0],
        max_epochs=int(tp["max_epochs"]),
        checkpoint=Path(checkpoint_path) if checkpoint_path is not None else None,
        fingerprint=fingerprint,
        flat_checkpoint=False,
        progress=progress,
        desc=f"{n_models} models",
        report=report,
        callback=callback,
    )
    for m, path in enumerate(model_checkpoints or []):
        if path is not None:
            save_finished_model(path, protocols[m], fingerprint["models"][m])
    return results
