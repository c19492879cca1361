"""The training engine every neural model of chromexp uses (DESIGN.md §4.4, §5).

:func:`fit` trains one model with the study's protocol — Adam (or AdamW), lr 1e-3, batch 64,
MSE (or cross-entropy), at most 100 epochs, ``ReduceLROnPlateau(factor 0.2, patience 3,
min_lr 1e-6)`` and early stopping (patience 12) on the validation loss, best weights restored —
with the numbers taken from ``params["train"]``. It keeps the whole dataset on the device when it
fits (no per-batch disk reads or host copies), shuffles with its own seeded ``torch.Generator``,
runs deterministically on CPU, optionally under bf16 autocast on CUDA, and writes an atomic
checkpoint after every epoch so that an interrupted run resumes to exactly the same final model.

:func:`fit_many` trains many small independent models (the mark × fold models of a cell type)
concurrently on one device: their parameters are stacked and one ``torch.func.vmap``-ed forward
and backward pass serves all of them, while each model keeps its own optimizer, learning-rate
schedule, early stopping and shuffling — mathematically the same as training them one by one.

:func:`predict` runs a model over inputs in batches and returns a NumPy array.

Inputs everywhere are ``(inputs, targets)`` pairs: ``inputs`` is a tensor (``model(x)``), a tuple
of tensors (``model(*x)``) or a dict of tensors (``model(**x)``); every tensor's first dimension
is the gene. NumPy arrays are accepted and converted.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .utils import atomic_path, get_logger

log = get_logger("chromexp.train")

#: Keys of ``params["train"]`` that :func:`fit` requires.
TRAIN_KEYS: tuple[str, ...] = (
    "lr",
    "batch_size",
    "max_epochs",
    "lr_factor",
    "lr_patience",
    "min_lr",
    "early_stopping_patience",
)
LOSSES: tuple[str, ...] = ("mse", "cross_entropy")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw")
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "lr", "seconds", "improved")
CHECKPOINT_VERSION = 1

Inputs = torch.Tensor | tuple[torch.Tensor, ...] | dict[str, torch.Tensor]


# ----------------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------------
def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` → CUDA if available, else CPU; otherwise ``torch.device(device)``."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r} was requested but CUDA is not available on this machine.")
    return device


def _to_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x))
    raise ValueError(f"{name} must be a torch.Tensor or numpy array; got {type(x).__name__}.")


def _normalise_inputs(inputs: Any, name: str) -> Inputs:
    """Tensor / tuple / dict of tensors (numpy accepted), validated to share a non-zero first dim."""
    if isinstance(inputs, Mapping):
        if not inputs:
            raise ValueError(f"{name} inputs are an empty dict.")
        out: Inputs = {str(k): _to_tensor(v, f"{name} inputs[{k!r}]") for k, v in inputs.items()}
        tensors = list(out.values())
    elif isinstance(inputs, (tuple, list)):
        if not inputs:
            raise ValueError(f"{name} inputs are an empty tuple.")
        out = tuple(_to_tensor(v, f"{name} inputs[{i}]") for i, v in enumerate(inputs))
        tensors = list(out)
    else:
        out = _to_tensor(inputs, f"{name} inputs")
        tensors = [out]
    sizes = {t.shape[0] if t.ndim else -1 for t in tensors}
    if len(sizes) != 1:
        raise ValueError(f"{name} input tensors disagree on the number of genes (first dimension): {sorted(sizes)}.")
    if sizes == {-1}:
        raise ValueError(f"{name} inputs must have a gene dimension; got a scalar.")
    return out


def _n_rows(inputs: Inputs) -> int:
    first = (
        next(iter(inputs.values())) if isinstance(inputs, dict) else inputs[0] if isinstance(inputs, tuple) else inputs
    )
    return int(first.shape[0])


def _map(inputs: Inputs, fn: Callable[[torch.Tensor], torch.Tensor]) -> Inputs:
    if isinstance(inputs, dict):
        return {k: fn(v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(fn(v) for v in inputs)
    return fn(inputs)


def _call(model: Callable, inputs: Inputs) -> torch.Tensor:
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _nbytes(inputs: Inputs) -> int:
    tensors = inputs.values() if isinstance(inputs, dict) else inputs if isinstance(inputs, tuple) else [inputs]
    return sum(t.numel() * t.element_size() for t in tensors)


def _check_split(split: Any, name: str, loss: str) -> tuple[Inputs, torch.Tensor]:
    """Validate one ``(inputs, targets)`` pair and return it as tensors."""
    if not isinstance(split, (tuple, list)) or len(split) != 2:
        raise ValueError(f"{name} must be an (inputs, targets) pair; got {type(split).__name__}.")
    inputs = _normalise_inputs(split[0], name)
    targets = _to_tensor(split[1], f"{name} targets")
    n = _n_rows(inputs)
    if n == 0:
        raise ValueError(f"{name} has no genes (empty inputs).")
    if targets.ndim == 0 or targets.shape[0] != n:
        raise ValueError(f"{name} has {n} genes in its inputs but {targets.shape[0] if targets.ndim else 0} targets.")
    if targets.is_floating_point():
        bad = ~torch.isfinite(targets)
        if bad.any():
            raise ValueError(
                f"{name} targets have {int(bad.sum())} non-finite value(s) (first at gene index {int(bad.nonzero()[0, 0])})."
            )
    if loss == "mse" and not targets.is_floating_point():
        targets = targets.float()
    return inputs, targets


def _check_train_params(train_params: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in TRAIN_KEYS if k not in train_params]
    if missing:
        raise ValueError(f"train_params lacks {missing}; pass params['train'] (keys {list(TRAIN_KEYS)}).")
    tp = dict(train_params)
    if int(tp["batch_size"]) < 1 or int(tp["max_epochs"]) < 1:
        raise ValueError(
            f"train_params batch_size and max_epochs must be ≥ 1; got {tp['batch_size']}, {tp['max_epochs']}."
        )
    if not float(tp["lr"]) > 0:
        raise ValueError(f"train_params lr must be > 0; got {tp['lr']}.")
    return tp


def compute_loss(output: torch.Tensor, target: torch.Tensor, loss: str, reduction: str = "mean") -> torch.Tensor:
    """MSE, or cross-entropy: softmax over classes for ``(batch, C ≥ 2)`` logits with integer
    targets, or a sigmoid for one logit per gene (``(batch,)`` / ``(batch, 1)``) with 0/1 targets."""
    output = output.float()
    if loss == "mse":
        if output.numel() != target.numel():
            raise ValueError(
                f"Model output {tuple(output.shape)} does not match targets {tuple(target.shape)} for MSE."
            )
        return F.mse_loss(output.reshape(target.shape), target.float(), reduction=reduction)
    if loss == "cross_entropy":
        if output.ndim == 2 and output.shape[1] >= 2:
            return F.cross_entropy(output, target.long().reshape(-1), reduction=reduction)
        return F.binary_cross_entropy_with_logits(output.reshape(target.shape), target.float(), reduction=reduction)
    raise ValueError(f"Unknown loss {loss!r}; known: {LOSSES}.")


def make_optimizer(model: nn.Module, name: str, train_params: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam (promoter CNN, as chromexpress) or AdamW (Chromoformer, as its reference), lr from params.

    ``train_params["weight_decay"]`` is used when present; else each optimizer's torch default
    (0 for Adam, 0.01 for AdamW — the reference Chromoformer code uses ``AdamW(lr=...)``).
    """
    kwargs: dict[str, Any] = {"lr": float(train_params["lr"])}
    if train_params.get("weight_decay") is not None:
        kwargs["weight_decay"] = float(train_params["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(model.parameters(), **kwargs)
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), **kwargs)
    raise ValueError(f"Unknown optimizer {name!r}; known: {OPTIMIZERS}.")


def make_scheduler(optimizer: torch.optim.Optimizer, train_params: Mapping[str, Any]):
    """``ReduceLROnPlateau(factor, patience, min_lr)`` on the validation loss (Keras-like)."""
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer,
        mode="min",
        factor=float(train_params["lr_factor"]),
        patience=int(train_params["lr_patience"]),
        min_lr=float(train_params["min_lr"]),
    )


class _Data:
    """A dataset held as tensors; on the device when it fits, else on the host (pinned on CUDA)."""

    def __init__(self, inputs: Inputs, targets: torch.Tensor, device: torch.device, on_device: bool | None):
        if on_device is None:
            on_device = device.type == "cpu" or _fits_on_device(_nbytes(inputs) + targets.numel() * 8, device)
        self.device = device
        self.on_device = bool(on_device)
        if self.on_device:
            self.inputs, self.targets = _map(inputs, lambda t: t.to(device)), targets.to(device)
        else:
            pin = device.type == "cuda"
            self.inputs = _map(inputs, lambda t: t.pin_memory() if pin else t)
            self.targets = targets.pin_memory() if pin else targets
        self.n = _n_rows(inputs)

    def batch(self, idx: torch.Tensor) -> tuple[Inputs, torch.Tensor]:
        if self.on_device:
            idx = idx.to(self.device)
            return _map(self.inputs, lambda t: t[idx]), self.targets[idx]
        idx = idx.cpu()
        return (
            _map(self.inputs, lambda t: t[idx].to(self.device, non_blocking=True)),
            self.targets[idx].to(self.device, non_blocking=True),
        )


def _fits_on_device(nbytes: int, device: torch.device, fraction: float = 0.5) -> bool:
    """Whether ``nbytes`` fit in ``fraction`` of the device's free memory (always true on CPU)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


@contextlib.contextmanager
def _deterministic(enabled: bool):
    """Use deterministic algorithms inside the block; restore the previous setting afterwards."""
    before, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)


def _autocast(device: torch.device, enabled: bool):
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _progress(total: int, enabled: bool, desc: str):
    from tqdm import tqdm  # the text bar: tqdm.auto needs ipywidgets in notebooks, which we do not require

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, unit="epoch")


# ----------------------------------------------------------------------------------------------
# fit / predict
# ----------------------------------------------------------------------------------------------
@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    model : nn.Module
        The trained model with the best epoch's weights restored, in eval mode, on the device it
        was passed on.
    history : pandas.DataFrame
        One row per epoch: ``epoch`` (1-based), ``train_loss`` (mean over the epoch's training
        genes), ``val_loss`` (over all validation genes), ``lr`` (the learning rate used in the
        epoch), ``seconds``, ``improved`` (new best validation loss).
    best_epoch : int
        1-based epoch whose weights were restored.
    best_val_loss : float
    stopped_early : bool
        Whether early stopping ended training before ``max_epochs``.
    resumed_from : int
        Number of epochs read back from a checkpoint (0 for a fresh run).
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def _evaluate(model: nn.Module, data: _Data, loss: str, batch_size: int, device: torch.device, amp: bool) -> float:
    """Loss over all genes of ``data`` (sum over batches / n, so independent of batch size)."""
    model.eval()
    total = 0.0
    for start in range(0, data.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, data.n))
        x, y = data.batch(idx)
        with _autocast(device, amp):
            out = _call(model, x)
        total += float(compute_loss(out, y, loss, reduction="sum"))
    return total / data.n


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def _data_digest(*splits: tuple[Inputs, torch.Tensor]) -> str:
    """SHA-1 of the targets and of (up to 2**22 evenly strided values of) every input tensor."""
    h = hashlib.sha1()
    for inputs, targets in splits:
        if isinstance(inputs, dict):
            tensors = list(inputs.values())
        else:
            tensors = list(inputs) if isinstance(inputs, tuple) else [inputs]
        for t in [targets, *tensors]:
            flat = t.detach().reshape(-1)
            step = max(1, flat.numel() // 2**22)
            h.update(f"{tuple(t.shape)}{t.dtype}".encode())
            h.update(flat[::step].cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _fingerprint(
    model: nn.Module, tp: Mapping[str, Any], loss: str, optimizer: str, seed: int, train, validation
) -> dict:
    """What must match for a checkpoint to be resumed (else the run is refused, not silently mixed)."""
    return {
        "model": type(model).__name__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train": {k: tp[k] for k in TRAIN_KEYS},
        "loss": loss,
        "optimizer": optimizer,
        "seed": int(seed),
        "n_train": _n_rows(train[0]),
        "n_validation": _n_rows(validation[0]),
        "data": _data_digest(train, validation),
    }


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, fingerprint: dict) -> dict | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a truncated file cannot exist (atomic writes), but a foreign one can
        raise ValueError(f"Checkpoint {path} cannot be read ({err}); delete it to start afresh.") from err
    if state.get("version") != CHECKPOINT_VERSION or state.get("fingerprint") != fingerprint:
        raise ValueError(
            f"Checkpoint {path} belongs to a different run (model, data, seed or training "
            f"parameters differ: {state.get('fingerprint')} vs {fingerprint}); delete it or use another path."
        )
    return state


def fit(
    model: nn.Module,
    train: tuple[Any, Any],
    validation: tuple[Any, Any],
    *,
    train_params: Mapping[str, Any],
    loss: str = "mse",
    optimizer: str = "adam",
    device: str | torch.device | None = None,
    seed: int = 0,
    checkpoint_path: str | Path | None = None,
    progress: bool = True,
    data_on_device: bool | None = None,
    eval_batch_size: int | None = None,
    callback: Callable[[int, dict], None] | None = None,
    name: str = "model",
) -> FitResult:
    """Train ``model`` with the study's protocol; return it with its best weights restored.

    Parameters
    ----------
    model : nn.Module
        Initialised model; trained in place.
    train, validation : (inputs, targets)
        ``inputs``: tensor / tuple / dict of tensors with first dimension ``n_genes``;
        ``targets``: shape ``(n_genes,)`` (float for MSE; 0/1 or class indices for cross-entropy).
    train_params : mapping
        ``params["train"]``: ``lr, batch_size, max_epochs, lr_factor, lr_patience, min_lr,
        early_stopping_patience`` and optionally ``mixed_precision`` (bf16 autocast, CUDA only)
        and ``weight_decay``.
    loss : {"mse", "cross_entropy"}
    optimizer : {"adam", "adamw"}
    device : str, torch.device or None
        ``None`` = CUDA if available, else CPU.
    seed : int
        Seeds shuffling (own ``torch.Generator``) and dropout (torch's global generator, forked
        so the caller's random state is left untouched).
    checkpoint_path : path or None
        Written atomically after every epoch (model, optimizer, scheduler, best weights, random
        states, history). If it exists when ``fit`` starts, training resumes from it — the final
        model is then identical to an uninterrupted run. A finished run's checkpoint makes ``fit``
        return its result without training.
    progress : bool
        Show a tqdm progress bar (the per-epoch log line is always written).
    data_on_device : bool or None
        Keep the whole dataset on the device (``None``: when it takes < 50 % of free memory).
    eval_batch_size : int or None
        Batch size for the validation pass (default 4 × batch size; it does not change results).
    callback : callable or None
        ``callback(epoch, row)`` after each epoch's checkpoint (e.g. to interrupt in tests).
    name : str
        Shown in the progress bar and log.

    Returns
    -------
    FitResult
    """
    if loss not in LOSSES:
        raise ValueError(f"Unknown loss {loss!r}; known: {LOSSES}.")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; known: {OPTIMIZERS}.")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    tp = _check_train_params(train_params)
    tr_x, tr_y = _check_split(train, "train", loss)
    va_x, va_y = _check_split(validation, "validation", loss)
    dev = resolve_device(device)
    amp = bool(tp.get("mixed_precision", False))
    if amp and dev.type != "cuda":
        log.info("%s: mixed_precision is only used on CUDA; training in float32 on %s", name, dev)
    batch_size = int(tp["batch_size"])
    eval_bs = int(eval_batch_size or 4 * batch_size)
    max_epochs, patience = int(tp["max_epochs"]), int(tp["early_stopping_patience"])
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    fingerprint = _fingerprint(model, tp, loss, optimizer, seed, (tr_x, tr_y), (va_x, va_y))
    state = _load_checkpoint(ckpt, fingerprint) if ckpt else None

    home = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    model.to(dev)
    opt = make_optimizer(model, optimizer, tp)
    sched = make_scheduler(opt, tp)
    shuffle = torch.Generator().manual_seed(int(seed))
    history: list[dict] = []
    best_val, best_epoch, since_best, best_state = math.inf, 0, 0, None
    start_epoch, stopped = 0, False

    cuda_ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids), _deterministic(dev.type == "cpu"):
        torch.manual_seed(int(seed))
        if state is not None:
            model.load_state_dict(state["model"])
            history = list(state["history"])
            best_val, best_epoch, since_best = state["best_val"], state["best_epoch"], state["since_best"]
            best_state = state["best_model"]
            start_epoch, stopped = state["epoch"], state["stopped"]
            if not state["finished"]:
                opt.load_state_dict(state["optimizer"])
                sched.load_state_dict(state["scheduler"])
                shuffle.set_state(state["shuffle_rng"])
                _set_rng_state(state["rng"], dev)
            log.info("%s: resumed from %s after epoch %d", name, ckpt, start_epoch)
        finished = state is not None and state["finished"]
        tr, va = (
            (None, None)
            if finished
            else (_Data(tr_x, tr_y, dev, data_on_device), _Data(va_x, va_y, dev, data_on_device))
        )
        bar = _progress(max_epochs, progress and not finished, desc=name)
        bar.update(start_epoch)
        try:
            epoch = start_epoch
            while not finished and epoch < max_epochs and not stopped:
                epoch += 1
                t0 = time.perf_counter()
                lr = opt.param_groups[0]["lr"]
                model.train()
                perm = torch.randperm(tr.n, generator=shuffle)
                total = 0.0
                for start in range(0, tr.n, batch_size):
                    idx = perm[start : start + batch_size]
                    x, y = tr.batch(idx)
                    opt.zero_grad(set_to_none=True)
                    with _autocast(dev, amp):
                        out = _call(model, x)
                    batch_loss = compute_loss(out, y, loss)
                    batch_loss.backward()
                    opt.step()
                    total += float(batch_loss.detach()) * len(idx)
                val_loss = _evaluate(model, va, loss, eval_bs, dev, amp)
                if not math.isfinite(val_loss):
                    raise FloatingPointError(
                        f"{name}: validation loss is {val_loss} at epoch {epoch}; training diverged."
                    )
                sched.step(val_loss)
                improved = val_loss < best_val
                if improved:
                    best_val, best_epoch, since_best = val_loss, epoch, 0
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                else:
                    since_best += 1
                stopped = since_best >= patience
                row = {
                    "epoch": epoch,
                    "train_loss": total / tr.n,
                    "val_loss": val_loss,
                    "lr": lr,
                    "seconds": time.perf_counter() - t0,
                    "improved": improved,
                }
                history.append(row)
                log.info(
                    "%s epoch %3d: train %.4f  val %.4f  lr %.1e  %.1fs%s",
                    name,
                    epoch,
                    row["train_loss"],
                    val_loss,
                    lr,
                    row["seconds"],
                    "  *best" if improved else "",
                )
                bar.update(1)
                bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{val_loss:.3f}", best=best_epoch)
                if ckpt is not None:
                    _save_checkpoint(
                        ckpt,
                        {
                            "version": CHECKPOINT_VERSION,
                            "fingerprint": fingerprint,
                            "finished": False,
                            "epoch": epoch,
                            "stopped": stopped,
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "scheduler": sched.state_dict(),
                            "shuffle_rng": shuffle.get_state(),
                            "rng": _rng_state(dev),
                            "best_model": best_state,
                            "best_val": best_val,
                            "best_epoch": best_epoch,
                            "since_best": since_best,
                            "history": history,
                        },
                    )
                if callback is not None:
                    callback(epoch, row)
        finally:
            bar.close()

    if best_state is None:  # cannot happen with max_epochs ≥ 1 and finite losses; keep the invariant explicit
        raise RuntimeError(f"{name}: no epoch finished; nothing to restore.")
    model.load_state_dict(best_state)
    model.to(home).eval()
    if ckpt is not None and not finished:
        # the finished checkpoint keeps what the result needs (best weights, history), not the optimizer
        _save_checkpoint(
            ckpt,
            {
                "version": CHECKPOINT_VERSION,
                "fingerprint": fingerprint,
                "finished": True,
                "epoch": len(history),
                "stopped": stopped,
                "model": best_state,
                "best_model": best_state,
                "best_val": best_val,
                "best_epoch": best_epoch,
                "since_best": since_best,
                "history": history,
            },
        )
    hist = pd.DataFrame(history, columns=list(HISTORY_COLUMNS))
    log.info(
        "%s: best epoch %d of %d (val loss %.4f)%s",
        name,
        best_epoch,
        len(hist),
        best_val,
        ", stopped early" if stopped else "",
    )
    return FitResult(
        model=model,
        history=hist,
        best_epoch=int(best_epoch),
        best_val_loss=float(best_val),
        stopped_early=bool(stopped and len(hist) < max_epochs),
        resumed_from=int(start_epoch),
    )


@torch.no_grad()
def predict(
    model: nn.Module,
    inputs: Any,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    mixed_precision: bool = False,
) -> np.ndarray:
    """Model outputs for ``inputs`` (tensor / tuple / dict of tensors, first dim = genes).

    Runs in eval mode and restores the model's mode and device afterwards.

    Returns
    -------
    numpy.ndarray, float32
        ``(n_genes,)`` for one output per gene (a trailing dimension of 1 is dropped), else
        ``(n_genes, n_outputs)`` — raw outputs (logits for classifiers).
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be ≥ 1; got {batch_size}.")
    x = _normalise_inputs(inputs, "predict")
    n = _n_rows(x)
    if n == 0:
        raise ValueError("predict got inputs with no genes.")
    dev = resolve_device(device)
    params = list(model.parameters())
    home = params[0].device if params else torch.device("cpu")
    was_training = model.training
    model.to(dev).eval()
    outs = []
    try:
        for start in range(0, n, int(batch_size)):
            xb = _map(x, lambda t, a=start: t[a : a + int(batch_size)].to(dev))
            with _autocast(dev, mixed_precision):
                out = _call(model, xb)
            outs.append(out.float().cpu())
    finally:
        model.to(home).train(was_training)
    out = torch.cat(outs).numpy()
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    return out


# ----------------------------------------------------------------------------------------------
# many small models at once
# ----------------------------------------------------------------------------------------------
def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
        As in :func:`fit`.
    seeds : int or sequence of int
        Shuffling seed per model (an int is used for all). Dropout is seeded by ``seeds[0]``.
    checkpoint_path : path or None
        One file for the whole group, written atomically after every epoch; an interrupted
        group resumes from it to the same final models.
    names : sequence of str or None
        Model names for the log.
    callback : callable or None
        ``callback(epoch, rows)`` after each epoch (``rows[m]`` is ``None`` for finished models).

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
    _check_same_architecture(models)
    tp = _check_train_params(train_params)
    tr_sets = [_check_split(s, f"train set {m}", loss) for m, s in enumerate(trains)]
    va_sets = [_check_split(s, f"validation set {m}", loss) for m, s in enumerate(validations)]
    _check_same_structure(tr_sets + va_sets, "data set")
    dev = resolve_device(device)
    amp = bool(tp.get("mixed_precision", False))
    batch_size, eval_bs = int(tp["batch_size"]), 4 * int(tp["batch_size"])
    max_epochs, patience = int(tp["max_epochs"]), int(tp["early_stopping_patience"])
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    fingerprint = {
        "models": [
            _fingerprint(m, tp, loss, optimizer, s, t, v) for m, s, t, v in zip(models, seeds, tr_sets, va_sets)
        ],
    }
    state = _load_checkpoint(ckpt, fingerprint) if ckpt else None

    homes = [next(m.parameters()).device for m in models]
    for m in models:
        m.to(dev).train()
    stack = StackedModels(models)
    opts = [make_optimizer(m, optimizer, tp) for m in models]
    scheds = [make_scheduler(o, tp) for o in opts]
    shuffles = [torch.Generator().manual_seed(s) for s in seeds]
    histories: list[list[dict]] = [[] for _ in models]
    best_val = [math.inf] * n_models
    best_epoch = [0] * n_models
    since_best = [0] * n_models
    best_states: list[dict | None] = [None] * n_models
    stopped = [False] * n_models
    epoch = 0

    def padded(data: _Data, idx: torch.Tensor, size: int) -> tuple[Inputs, torch.Tensor, torch.Tensor]:
        """The genes ``idx`` padded to ``size`` rows (copies of gene 0) with a 0/1 weight."""
        real = len(idx)
        full = torch.cat([idx, torch.zeros(size - real, dtype=idx.dtype)]) if real < size else idx
        x, y = data.batch(full)
        w = torch.zeros(size, device=dev)
        w[:real] = 1.0
        return x, y, w

    def weighted_loss(out: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        per = torch.stack(
            [compute_loss(out[m], y[m], loss, reduction="none").reshape(w.shape[1]) for m in range(out.shape[0])]
        )
        return (per * w).sum(1), w.sum(1)

    @torch.no_grad()
    def evaluate(datas: list[_Data], active: list[int]) -> dict[int, float]:
        for m in models:
            m.eval()
        totals = dict.fromkeys(active, 0.0)
        n_steps = max(math.ceil(datas[m].n / eval_bs) for m in active)
        for s in range(n_steps):
            # only models with genes left at this step run; batches padded to the longest one
            idxs = {m: torch.arange(s * eval_bs, min((s + 1) * eval_bs, datas[m].n)) for m in active}
            chosen = [m for m in active if len(idxs[m])]
            size = max(len(idxs[m]) for m in chosen)
            parts = [padded(datas[m], idxs[m], size) for m in chosen]
            x = _stack_inputs([p[0] for p in parts])
            y, w = torch.stack([p[1] for p in parts]), torch.stack([p[2] for p in parts])
            with _autocast(dev, amp):
                out = stack(x, chosen)
            sums, _ = weighted_loss(out, y, w)
            for j, m in enumerate(chosen):
                totals[m] += float(sums[j])
        for m in models:
            m.train()
        return {m: totals[m] / datas[m].n for m in active}

    cuda_ids = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_ids), _deterministic(dev.type == "cpu"):
        torch.manual_seed(seeds[0])
        finished = False
        if state is not None:
            finished = state["finished"]
            epoch = state["epoch"]
            for m, st in enumerate(state["per_model"]):
                models[m].load_state_dict(st["model"])
                histories[m] = list(st["history"])
                best_val[m], best_epoch[m], since_best[m] = st["best_val"], st["best_epoch"], st["since_best"]
                best_states[m], stopped[m] = st["best_model"], st["stopped"]
                if not finished:
                    opts[m].load_state_dict(st["optimizer"])
                    scheds[m].load_state_dict(st["scheduler"])
                    shuffles[m].set_state(st["shuffle_rng"])
            if not finished:
                _set_rng_state(state["rng"], dev)
            log.info("fit_many: resumed %d models from %s after epoch %d", n_models, ckpt, epoch)
        trs = [] if finished else [_Data(x, y, dev, None) for x, y in tr_sets]
        vas = [] if finished else [_Data(x, y, dev, None) for x, y in va_sets]
        bar = _progress(max_epochs, progress and not finished, desc=f"{n_models} models")
        bar.update(epoch)
        try:
            while not finished and epoch < max_epochs and not all(stopped):
                epoch += 1
                t0 = time.perf_counter()
                active = [m for m in range(n_models) if not stopped[m]]
                lrs = {m: opts[m].param_groups[0]["lr"] for m in active}
                perms = {m: torch.randperm(trs[m].n, generator=shuffles[m]) for m in active}
                totals = dict.fromkeys(active, 0.0)
                n_steps = max(math.ceil(trs[m].n / batch_size) for m in active)
                for s in range(n_steps):
                    # models whose epoch has no batch left (smaller folds) sit this step out; short
                    # last batches are padded to the longest batch of the step with zero weight
                    idxs = {m: perms[m][s * batch_size : (s + 1) * batch_size] for m in active}
                    stepping = [m for m in active if len(idxs[m])]
                    size = max(len(idxs[m]) for m in stepping)
                    parts = [padded(trs[m], idxs[m], size) for m in stepping]
                    x = _stack_inputs([p[0] for p in parts])
                    y, w = torch.stack([p[1] for p in parts]), torch.stack([p[2] for p in parts])
                    for o in opts:
                        o.zero_grad(set_to_none=True)
                    with _autocast(dev, amp):
                        out = stack(x, stepping)
                    sums, counts = weighted_loss(out, y, w)
                    # each model's loss is the mean over its real genes; summing the models' losses
                    # leaves every model's gradient equal to its own loss's gradient
                    per_model = sums / counts.clamp(min=1.0)
                    per_model.sum().backward()
                    for j, m in enumerate(stepping):
                        opts[m].step()
                        totals[m] += float(sums[j].detach())
                vals = evaluate(vas, active)
                rows: list[dict | None] = [None] * n_models
                for m in active:
                    val_loss = vals[m]
                    if not math.isfinite(val_loss):
                        raise FloatingPointError(
                            f"{names[m]}: validation loss is {val_loss} at epoch {epoch}; training diverged."
                        )
                    scheds[m].step(val_loss)
                    improved = val_loss < best_val[m]
                    if improved:
                        best_val[m], best_epoch[m], since_best[m] = val_loss, epoch, 0
                        best_states[m] = {k: v.detach().to("cpu", copy=True) for k, v in models[m].state_dict().items()}
                    else:
                        since_best[m] += 1
                    stopped[m] = since_best[m] >= patience
                    rows[m] = {
                        "epoch": epoch,
                        "train_loss": totals[m] / trs[m].n,
                        "val_loss": val_loss,
                        "lr": lrs[m],
                        "seconds": float("nan"),
                        "improved": improved,
                    }
                seconds = time.perf_counter() - t0
                for m in active:
                    rows[m]["seconds"] = seconds / len(active)  # the group's time, shared equally
                    histories[m].append(rows[m])
                log.info(
                    "fit_many epoch %3d: %d models trained, mean val %.4f, %d stopped, %.1fs",
                    epoch,
                    len(active),
                    float(np.mean([vals[m] for m in active])),
                    sum(stopped),
                    seconds,
                )
                bar.update(1)
                bar.set_postfix(active=len(active), val=f"{np.mean([vals[m] for m in active]):.3f}")
                if ckpt is not None:
                    _save_checkpoint(
                        ckpt,
                        {
                            "version": CHECKPOINT_VERSION,
                            "fingerprint": fingerprint,
                            "finished": False,
                            "epoch": epoch,
                            "rng": _rng_state(dev),
                            "per_model": [
                                {
                                    "model": models[m].state_dict(),
                                    "optimizer": opts[m].state_dict(),
                                    "scheduler": scheds[m].state_dict(),
                                    "shuffle_rng": shuffles[m].get_state(),
                                    "best_model": best_states[m],
                                    "best_val": best_val[m],
                                    "best_epoch": best_epoch[m],
                                    "since_best": since_best[m],
                                    "stopped": stopped[m],
                                    "history": histories[m],
                                }
                                for m in range(n_models)
                            ],
                        },
                    )
                if callback is not None:
                    callback(epoch, rows)
        finally:
            bar.close()

    results = []
    for m, model in enumerate(models):
        if best_states[m] is None:
            raise RuntimeError(f"{names[m]}: no epoch finished; nothing to restore.")
        model.load_state_dict(best_states[m])
        model.to(homes[m]).eval()
        hist = pd.DataFrame(histories[m], columns=list(HISTORY_COLUMNS))
        results.append(
            FitResult(
                model=model,
                history=hist,
                best_epoch=int(best_epoch[m]),
                best_val_loss=float(best_val[m]),
                stopped_early=bool(stopped[m] and len(hist) < max_epochs),
                resumed_from=int(state["epoch"]) if state is not None else 0,
            )
        )
    if ckpt is not None and not finished:
        _save_checkpoint(
            ckpt,
            {
                "version": CHECKPOINT_VERSION,
                "fingerprint": fingerprint,
                "finished": True,
                "epoch": epoch,
                "per_model": [
                    {
                        "model": best_states[m],
                        "best_model": best_states[m],
                        "best_val": best_val[m],
                        "best_epoch": best_epoch[m],
                        "since_best": since_best[m],
                        "stopped": stopped[m],
                        "history": histories[m],
                    }
                    for m in range(n_models)
                ],
            },
        )
    for m, r in enumerate(results):
        log.info("%s: best epoch %d of %d (val loss %.4f)", names[m], r.best_epoch, len(r.history), r.best_val_loss)
    return results
