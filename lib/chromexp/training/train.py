"""The training engine every neural model of chromexp uses (docs/methods.md, "Training protocol").

:func:`fit` trains one model with the study's protocol — Adam (or AdamW), lr 1e-3, batch 64,
MSE (or cross-entropy), at most 100 epochs, ``ReduceLROnPlateau(factor 0.2, patience 3,
min_lr 1e-6)`` and early stopping (patience 12) on the validation loss, best weights restored —
with the numbers taken from ``params["train"]``. It keeps the whole dataset on the device when it
fits (no per-batch disk reads or host copies), shuffles with its own seeded ``torch.Generator``,
runs deterministically on CPU, optionally under bf16 autocast (CUDA or CPU), and writes an atomic
checkpoint after every epoch so that an interrupted run resumes to exactly the same final model.

Three protocols (``train_params["protocol"]``, docs/methods.md, "Training protocol"):

* ``murphy`` (default, the study's): the numbers above; the final model is the epoch with the best
  validation score (default: the lowest validation loss), training stops ``early_stopping_patience``
  epochs after it;
* ``chromoformer`` (the Chromoformer paper's): AdamW, lr ``chromoformer_protocol.lr`` (3e-5) multiplied
  by ``lr_gamma`` (0.87) after every epoch, batch 64, ``max_epochs`` (10) epochs all run, the last
  epoch's model is the final one (no early stopping, no best-epoch selection);
* ``fixed`` (the baselines' published protocols): every one of ``max_epochs`` epochs at a constant
  lr (or Torch7's ``learningRateDecay``: lr / (1 + steps · ``lr_decay``)), the epoch with the best
  validation score (``score``, e.g. AUROC) is the final one.

Any protocol can clip the gradient norm (``grad_clip``), and ``loss`` may be a callable
(``loss(output, target, reduction)``) for multi-output models such as Chromoformer-diff.

The protocol itself (schedule, early stopping, best weights, checkpoint and resume) is implemented
once, by ``_Protocol`` and ``_run_protocol``; :func:`fit` drives it with a single-model epoch and
:func:`chromexp.training.stacked.fit_many` with a stacked (vmapped) epoch of many small models.

:func:`predict` runs a model over inputs in batches and returns a NumPy array.

Inputs everywhere are ``(inputs, targets)`` pairs: ``inputs`` is a tensor (``model(x)``), a tuple
of tensors (``model(*x)``) or a dict of tensors (``model(**x)``); every tensor's first dimension
is the gene. NumPy arrays are accepted and converted.
"""

from __future__ import annotations

import contextlib
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

from ..constants import PROTOCOLS as _PROTOCOLS
from ..utils import DETAIL, get_logger, progress_bar
from .checkpoint import CheckpointError, is_finished, load_checkpoint, save_checkpoint

log = get_logger("chromexp.training.train")

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
LOSSES: tuple[str, ...] = ("mse", "cross_entropy", "smooth_l1")
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
#: ``train_params["protocol"]`` values (:data:`chromexp.constants.PROTOCOLS`).
PROTOCOLS: tuple[str, ...] = _PROTOCOLS
#: The Chromoformer paper's protocol (Methods; dohlee/chromoformer configs/default.yaml), used where
#: ``train_params`` has no ``chromoformer_protocol`` block.
CHROMOFORMER_PROTOCOL: dict[str, Any] = {"lr": 3e-5, "lr_gamma": 0.87, "batch_size": 64, "max_epochs": 10}
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "lr", "seconds", "improved", "val_score")
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
    if (loss in ("mse", "smooth_l1") or is_loss_object(loss)) and not targets.is_floating_point():
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
    protocol = tp.get("protocol") or "murphy"
    if protocol not in PROTOCOLS:
        raise ValueError(f"train_params protocol must be one of {list(PROTOCOLS)}; got {protocol!r}.")
    tp["protocol"] = protocol
    if protocol == "chromoformer":
        cp = {**CHROMOFORMER_PROTOCOL, **dict(tp.get("chromoformer_protocol") or {})}
        if not 0 < float(cp["lr_gamma"]) <= 1:
            raise ValueError(f"train_params chromoformer_protocol.lr_gamma must be in (0, 1]; got {cp['lr_gamma']}.")
        tp.update(lr=cp["lr"], batch_size=cp["batch_size"], max_epochs=cp["max_epochs"], lr_gamma=float(cp["lr_gamma"]))
    if float(tp.get("lr_decay") or 0.0) < 0:
        raise ValueError(f"train_params lr_decay must be >= 0; got {tp['lr_decay']}.")
    if tp.get("grad_clip") is not None and not float(tp["grad_clip"]) > 0:
        raise ValueError(f"train_params grad_clip must be null or > 0; got {tp['grad_clip']}.")
    if int(tp["batch_size"]) < 1 or int(tp["max_epochs"]) < 1:
        raise ValueError(
            f"train_params batch_size and max_epochs must be ≥ 1; got {tp['batch_size']}, {tp['max_epochs']}."
        )
    if not float(tp["lr"]) > 0:
        raise ValueError(f"train_params lr must be > 0; got {tp['lr']}.")
    return tp


def protocol_optimizer(optimizer: str, train_params: Mapping[str, Any]) -> str:
    """The optimizer a protocol trains with: AdamW under ``chromoformer`` (its reference), else ``optimizer``."""
    return "adamw" if train_params.get("protocol") == "chromoformer" else optimizer


def compute_loss(output: torch.Tensor, target: torch.Tensor, loss, reduction: str = "mean") -> torch.Tensor:
    """MSE, SmoothL1 (β = 1), cross-entropy, or a loss object of model outputs against targets.

    Cross-entropy is a softmax over classes for ``(batch, C ≥ 2)`` logits with integer targets,
    or a sigmoid for one logit per gene (``(batch,)`` / ``(batch, 1)``) with 0/1 targets. MSE and
    SmoothL1 (CLASTER's loss) average over every element, so a ``(batch, n_outputs)`` target (a
    profile) weighs each output column equally. A loss object (e.g.
    :class:`chromexp.training.losses.HybridLoss`) is called as ``loss(output, target)`` and returns
    the mean over the genes it is given; it has no per-gene reduction (its terms need the whole
    batch), so only ``reduction="mean"`` is allowed.
    """
    if is_loss_object(loss):
        if reduction != "mean":
            raise ValueError(
                f"{loss!r} is computed over a whole batch of genes; reduction={reduction!r} is not possible."
            )
        return loss(output.float(), target.float())
    output = output.float()
    if loss in ("mse", "smooth_l1"):
        if output.numel() != target.numel():
            raise ValueError(
                f"Model output {tuple(output.shape)} does not match targets {tuple(target.shape)} for {loss}."
            )
        fn = F.mse_loss if loss == "mse" else F.smooth_l1_loss
        return fn(output.reshape(target.shape), target.float(), reduction=reduction)
    if loss == "cross_entropy":
        if output.ndim == 2 and output.shape[1] >= 2:
            return F.cross_entropy(output, target.long().reshape(-1), reduction=reduction)
        return F.binary_cross_entropy_with_logits(output.reshape(target.shape), target.float(), reduction=reduction)
    raise ValueError(f"Unknown loss {loss!r}; known: {LOSSES}.")


def is_loss_object(loss: Any) -> bool:
    """Whether ``loss`` is a callable loss object rather than one of :data:`LOSSES` by name."""
    return callable(loss) and not isinstance(loss, str)


def loss_name(loss: Any) -> str:
    """``loss`` as it is written in checkpoint fingerprints: the name, or the object's ``repr``."""
    if not is_loss_object(loss):
        return str(loss)
    # a function's repr holds its memory address: its name keeps fingerprints equal across runs
    return getattr(loss, "__name__", None) or repr(loss)


def make_optimizer(model: nn.Module, name: str, train_params: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Adam (promoter CNN, as chromexpress), AdamW (Chromoformer, as its reference) or SGD (DeepChrome), lr from params.

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
    if name == "sgd":  # Torch7 optim.sgd as DeepChrome used it: no momentum
        return torch.optim.SGD(model.parameters(), **kwargs)
    raise ValueError(f"Unknown optimizer {name!r}; known: {OPTIMIZERS}.")


def make_scheduler(optimizer: torch.optim.Optimizer, train_params: Mapping[str, Any]):
    """The protocol's learning-rate schedule.

    ``murphy``: ``ReduceLROnPlateau(factor, patience, min_lr)`` on the validation loss (Keras-like),
    stepped after each epoch; ``chromoformer``: ``ExponentialLR(lr_gamma)`` after each epoch;
    ``fixed``: ``lr / (1 + steps · lr_decay)`` after each optimizer step (Torch7's
    ``learningRateDecay``), or ``None`` for a constant lr.
    """
    protocol = train_params.get("protocol") or "murphy"
    if protocol == "chromoformer":
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=float(train_params["lr_gamma"]))
    if protocol == "fixed":
        decay = float(train_params.get("lr_decay") or 0.0)
        if decay == 0:
            return None
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + step * decay))
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
    """bf16 autocast on CUDA and on CPU when ``enabled``; a null context otherwise.

    Parameters and optimizer state stay float32 (autocast only runs eligible operations, such as
    matmuls and convolutions, in bfloat16); losses are computed in float32 (:func:`compute_loss`).
    On a CPU without native bf16 instructions (AMX / AVX512-BF16) this is slower than float32: it
    is there to measure the accuracy effect of bf16 anywhere, and for CPUs that have them
    (README, "Scale").
    """
    if enabled and device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _progress(total: int, enabled: bool, desc: str):
    """The epoch bar: on a terminal only (never in a notebook: :func:`chromexp.utils.progress_bar`)."""
    return progress_bar(total=total, desc=desc, enabled=enabled, unit="epoch")


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
def _evaluate(
    model: nn.Module, data: _Data, loss, batch_size: int, device: torch.device, amp: bool, score=None
) -> tuple[float, float]:
    """Loss over all genes of ``data`` and ``score(outputs, targets)`` over all of them.

    The loss is the sum over batches / n, so independent of batch size; the score is NaN without ``score``.
    """
    model.eval()
    total, outs, ys = 0.0, [], []
    s_outs, s_ys = [], []
    for start in range(0, data.n, batch_size):
        idx = torch.arange(start, min(start + batch_size, data.n))
        x, y = data.batch(idx)
        with _autocast(device, amp):
            out = _call(model, x)
        if is_loss_object(loss):  # its terms are over genes: evaluated once, over all genes
            outs.append(out.float())
            ys.append(y)
        else:
            total += float(compute_loss(out, y, loss, reduction="sum"))
        if score is not None:
            s_outs.append(out.float().cpu())
            s_ys.append(y.cpu())
    value = float(score(torch.cat(s_outs), torch.cat(s_ys))) if score is not None else float("nan")
    if outs:
        return float(compute_loss(torch.cat(outs), torch.cat(ys), loss)), value
    return total / data.n, value


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
    model: nn.Module, tp: Mapping[str, Any], loss, optimizer: str, seed: int, train, validation, score=None
) -> dict:
    """What must match for a checkpoint to be resumed (else the run is refused, not silently mixed)."""
    protocol = tp.get("protocol") or "murphy"
    extra: dict[str, Any] = {}
    # present only when they differ from the study's protocol, so the fingerprints (and
    # checkpoints) of the murphy protocol are those written before the protocols existed
    if protocol != "murphy":
        extra["protocol"] = {"name": protocol, "lr_gamma": tp.get("lr_gamma"), "lr_decay": tp.get("lr_decay")}
    if tp.get("grad_clip") is not None:
        extra["grad_clip"] = float(tp["grad_clip"])
    if score is not None:
        extra["score"] = getattr(score, "__name__", repr(score))
    return {
        "model": type(model).__name__,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train": {k: tp[k] for k in TRAIN_KEYS},
        "loss": loss_name(loss),
        "optimizer": optimizer,
        "seed": int(seed),
        "n_train": _n_rows(train[0]),
        "n_validation": _n_rows(validation[0]),
        "data": _data_digest(train, validation),
        # present only under bf16, so float32 fingerprints (and checkpoints) are those written
        # before mixed precision entered the fingerprint; an fp32 checkpoint is never resumed as bf16
        **({"mixed_precision": "bf16"} if tp.get("mixed_precision") else {}),
        **extra,
    }


def _save_checkpoint(path: Path, state: dict) -> None:
    save_checkpoint(path, state)


def is_finished_checkpoint(path: str | Path | None) -> bool:
    """Whether ``path`` holds the checkpoint of a finished run (:func:`fit` then trains nothing).

    The file is read safely and its content hash verified (:func:`chromexp.training.checkpoint.load_checkpoint`:
    an unreadable, old-format or altered file is an error naming it); whether it belongs to the same
    model, data and parameters is checked (and a mismatch refused) when :func:`fit` loads it.
    """
    return is_finished(path)


def _load_checkpoint(path: Path, fingerprint: dict) -> dict | None:
    if not path.exists():
        return None
    state = load_checkpoint(path, fingerprint=fingerprint)
    if state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"Checkpoint {path} holds a training state of version {state.get('version')!r} (this chromexp "
            f"writes {CHECKPOINT_VERSION}); delete it or use another path."
        )
    return state


# ----------------------------------------------------------------------------------------------
# the protocol: one implementation for fit and fit_many
# ----------------------------------------------------------------------------------------------
class _Protocol:
    """The per-model protocol: optimizer, LR schedule, early stopping, the kept weights, history.

    :func:`fit` drives one of these and :func:`chromexp.training.stacked.fit_many` one per model, so a
    change of the protocol (schedule, stopping rule, what a checkpoint holds) is made here once.
    ``tp["protocol"]`` (resolved by ``_check_train_params``) decides the rules: see the module
    docstring. ``scored``: the kept epoch is the best validation *score* (higher is better) instead
    of the lowest validation loss.
    """

    def __init__(self, model: nn.Module, optimizer: str, tp: Mapping[str, Any], seed: int, name: str, scored=False):
        self.model, self.name = model, name
        self.protocol = tp.get("protocol") or "murphy"
        self.opt = make_optimizer(model, protocol_optimizer(optimizer, tp), tp)
        self.sched = make_scheduler(self.opt, tp)
        self.shuffle = torch.Generator().manual_seed(int(seed))
        self.patience = int(tp["early_stopping_patience"])
        self.scored = bool(scored)
        self.history: list[dict] = []
        self.best_val, self.best_epoch, self.since_best = math.inf, 0, 0
        self.best_key = -math.inf
        self.best_state: dict | None = None
        self.stopped = False

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]

    def after_step(self) -> None:
        """After each optimizer step: the ``fixed`` protocol's per-step learning-rate decay."""
        if self.protocol == "fixed" and self.sched is not None:
            self.sched.step()

    def end_epoch(self, epoch: int, train_loss: float, val_loss: float, lr: float, val_score: float = math.nan) -> dict:
        """Schedule, early stopping and the kept weights after one epoch; returns the history row."""
        if not math.isfinite(val_loss):
            raise FloatingPointError(f"{self.name}: validation loss is {val_loss} at epoch {epoch}; training diverged.")
        if self.protocol == "murphy":
            self.sched.step(val_loss)
        elif self.protocol == "chromoformer":
            self.sched.step()
        key = val_score if self.scored else -val_loss
        # chromoformer: the last epoch's model is the final one, so every epoch replaces the kept one;
        # otherwise the best validation key so far (a NaN score never improves)
        improved = True if self.protocol == "chromoformer" else bool(key > self.best_key)
        if improved:
            self.best_val, self.best_key, self.best_epoch, self.since_best = val_loss, key, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        else:
            self.since_best += 1
        self.stopped = self.protocol == "murphy" and self.since_best >= self.patience
        return {
            "epoch": epoch,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "lr": lr,
            "seconds": float("nan"),
            "improved": improved,
            "val_score": val_score,
        }

    def state(self, finished: bool) -> dict:
        """The model's part of a checkpoint (a finished one keeps only what the result needs)."""
        state = {
            "stopped": self.stopped,
            "model": self.best_state if finished else self.model.state_dict(),
            "best_model": self.best_state,
            "best_val": self.best_val,
            "best_key": self.best_key,
            "best_epoch": self.best_epoch,
            "since_best": self.since_best,
            "history": self.history,
        }
        if not finished:
            state.update(
                optimizer=self.opt.state_dict(),
                scheduler=self.sched.state_dict() if self.sched is not None else None,
                shuffle_rng=self.shuffle.get_state(),
            )
        return state

    def load(self, state: Mapping[str, Any], finished: bool) -> None:
        self.model.load_state_dict(state["model"])
        self.history = list(state["history"])
        self.best_val, self.best_epoch, self.since_best = state["best_val"], state["best_epoch"], state["since_best"]
        self.best_state, self.stopped = state["best_model"], state["stopped"]
        self.best_key = state.get("best_key", -self.best_val)  # checkpoints written before scores existed
        if not finished:
            self.opt.load_state_dict(state["optimizer"])
            if self.sched is not None:
                self.sched.load_state_dict(state["scheduler"])
            self.shuffle.set_state(state["shuffle_rng"])

    def result(self, home: torch.device, max_epochs: int, resumed_from: int, read_back: bool = False) -> FitResult:
        """Restore the best weights (on ``home``, eval mode) and return the :class:`FitResult`.

        Logs the model's one summary line (INFO): best epoch, epochs run, validation loss, early
        stop, and whether it was resumed or read back from a finished checkpoint. The per-epoch
        lines are :data:`chromexp.utils.DETAIL` (the job's log, not the notebook).
        """
        if self.best_state is None and self.history:  # every validation score was NaN (e.g. one class)
            log.warning("%s: no epoch had a finite validation score; keeping the last epoch's weights", self.name)
            self.best_epoch = int(self.history[-1]["epoch"])
            self.best_val = float(self.history[-1]["val_loss"])
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        if self.best_state is None:  # cannot happen with max_epochs ≥ 1 and finite losses
            raise RuntimeError(f"{self.name}: no epoch finished; nothing to restore.")
        self.model.load_state_dict(self.best_state)
        self.model.to(home).eval()
        hist = pd.DataFrame(self.history, columns=list(HISTORY_COLUMNS))
        if read_back:
            how = ", read back from its finished checkpoint"
        else:
            how = f", resumed after epoch {resumed_from}" if resumed_from else ""
        log.info(
            "%s: best epoch %d of %d (val loss %.4f)%s%s",
            self.name,
            self.best_epoch,
            len(hist),
            self.best_val,
            ", stopped early" if self.stopped else "",
            how,
        )
        return FitResult(
            model=self.model,
            history=hist,
            best_epoch=int(self.best_epoch),
            best_val_loss=float(self.best_val),
            stopped_early=bool(self.stopped and len(hist) < max_epochs),
            resumed_from=int(resumed_from),
        )


def _checkpoint_state(
    protocols: Sequence[_Protocol], fingerprint: dict, epoch: int, finished: bool, flat: bool, device: torch.device
) -> dict:
    """A checkpoint: header (version, fingerprint, finished, epoch, random state) and the models' states.

    ``flat``: one model's state at the top level (:func:`fit`); else one state per model under
    ``per_model`` (a group of ``fit_many``).
    """
    header = {"version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "finished": finished, "epoch": epoch}
    if not finished:
        header["rng"] = _rng_state(device)
    states = [p.state(finished) for p in protocols]
    return {**header, **states[0]} if flat else {**header, "per_model": states}


def save_finished_model(path: str | Path, protocol: _Protocol, fingerprint: dict) -> None:
    """Write one finished model as :func:`fit` would have: ``fit`` with this path then trains nothing.

    ``fit_many`` calls it for each model of a finished group, so that a later run grouping the
    models differently (one fold per job, or one model at a time) reuses them.
    """
    state = _checkpoint_state([protocol], fingerprint, len(protocol.history), True, True, torch.device("cpu"))
    _save_checkpoint(Path(path), state)


#: ``run_epoch(active)`` trains the models ``active`` for one epoch and returns their mean
#: training losses and validation losses (dicts keyed by model index), and optionally a third
#: dict of validation scores.
EpochFn = Callable[[list[int]], tuple[dict[int, float], dict[int, float]]]


def _run_protocol(
    protocols: Sequence[_Protocol],
    make_epoch: Callable[[], EpochFn],
    *,
    homes: Sequence[torch.device],
    device: torch.device,
    seed: int,
    max_epochs: int,
    checkpoint: Path | None,
    fingerprint: dict,
    flat_checkpoint: bool,
    progress: bool,
    desc: str,
    report: Callable[[int, list[dict | None], list[int], Any], None],
    callback: Callable[[int, list[dict | None]], None] | None,
) -> list[FitResult]:
    """The epoch loop of :func:`fit` and ``fit_many``: resume, train, checkpoint, restore the best.

    ``make_epoch()`` is called once (unless a finished checkpoint makes training unnecessary) and
    returns the function that runs one epoch; everything around it — the seeded random state, the
    resume from ``checkpoint``, the learning-rate schedule and early stopping of each model
    (:class:`_Protocol`), the atomic checkpoint after every epoch and the final restore — is shared.
    A single model's checkpoint is flat (``flat_checkpoint``: the model's state at the top level);
    a group's holds one state per model under ``per_model``.
    """
    n_models = len(protocols)
    state = _load_checkpoint(checkpoint, fingerprint) if checkpoint else None
    epoch, finished = 0, False

    def save(finished_now: bool) -> None:
        _save_checkpoint(
            checkpoint, _checkpoint_state(protocols, fingerprint, epoch, finished_now, flat_checkpoint, device)
        )

    cuda_ids = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=cuda_ids), _deterministic(device.type == "cpu"):
        torch.manual_seed(int(seed))
        if state is not None:
            finished, epoch = state["finished"], state["epoch"]
            per_model = [state] if flat_checkpoint else state["per_model"]
            for p, st in zip(protocols, per_model, strict=True):
                p.load(st, finished)
            if not finished:
                _set_rng_state(state["rng"], device)
            log.log(DETAIL, "%s: resumed from %s after epoch %d", desc, checkpoint, epoch)
        run_epoch = None if finished else make_epoch()
        bar = _progress(max_epochs, progress and not finished, desc=desc)
        bar.update(epoch)
        try:
            while not finished and epoch < max_epochs and not all(p.stopped for p in protocols):
                epoch += 1
                t0 = time.perf_counter()
                active = [m for m in range(n_models) if not protocols[m].stopped]
                lrs = {m: protocols[m].lr for m in active}
                out = run_epoch(active)
                train_losses, val_losses = out[0], out[1]
                scores = out[2] if len(out) > 2 else {}
                rows: list[dict | None] = [None] * n_models
                for m in active:
                    rows[m] = protocols[m].end_epoch(
                        epoch, train_losses[m], val_losses[m], lrs[m], scores.get(m, math.nan)
                    )
                seconds = time.perf_counter() - t0
                for m in active:
                    rows[m]["seconds"] = seconds / len(active)  # a group's time, shared equally
                    protocols[m].history.append(rows[m])
                report(epoch, rows, active, bar)
                bar.update(1)
                if checkpoint is not None:
                    save(False)
                if callback is not None:
                    callback(epoch, rows)
        finally:
            bar.close()

    resumed_from = int(state["epoch"]) if state is not None else 0
    read_back = state is not None and bool(state["finished"])
    results = [p.result(home, max_epochs, resumed_from, read_back) for p, home in zip(protocols, homes, strict=True)]
    if checkpoint is not None and not finished:
        save(True)
    return results


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
    score: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
) -> FitResult:
    """Train ``model`` with a protocol (``train_params["protocol"]``); return it with the kept weights restored.

    Parameters
    ----------
    model : nn.Module
        Initialised model; trained in place.
    train, validation : (inputs, targets)
        ``inputs``: tensor / tuple / dict of tensors with first dimension ``n_genes``;
        ``targets``: shape ``(n_genes,)`` (float for MSE; 0/1 or class indices for cross-entropy).
    train_params : mapping
        ``params["train"]``: ``lr, batch_size, max_epochs, lr_factor, lr_patience, min_lr,
        early_stopping_patience`` and optionally ``protocol`` (``murphy`` default, ``chromoformer``
        with its ``chromoformer_protocol`` block, ``fixed``; module docstring), ``lr_decay`` and
        ``grad_clip`` (gradient-norm clipping), ``mixed_precision`` (bf16 autocast on CUDA and
        CPU; on CPUs without native bf16 it is slower than float32 — use it there to measure
        accuracy) and ``weight_decay``. ``mixed_precision`` is part of the checkpoint
        fingerprint: a float32 checkpoint is not resumed under bf16, nor the reverse.
    loss : {"mse", "cross_entropy", "smooth_l1"} or a loss object
        Training loss. A loss object ``loss(output, target) -> scalar`` (e.g.
        :class:`chromexp.training.losses.HybridLoss` over ``(genes, cell types)`` outputs, or the
        Chromoformer study's focal and Chromoformer-diff losses) is averaged per batch like MSE; its
        validation loss is computed once over all validation genes (not batch by batch), and its
        name (a function's ``__name__``, else ``repr(loss)``) enters the checkpoint fingerprint.
    optimizer : {"adam", "adamw", "sgd"}
        Optimizer (see :func:`make_optimizer`); the ``chromoformer`` protocol always uses AdamW.
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
        Show a progress bar on a terminal (never in a notebook kernel: its frames would be saved in
        the notebook). The per-epoch line is logged at :data:`chromexp.utils.DETAIL` (the job's log) and
        one summary line per model at INFO.
    data_on_device : bool or None
        Keep the whole dataset on the device (``None``: when it takes < 50 % of free memory).
    eval_batch_size : int or None
        Batch size for the validation pass (default 4 × batch size; it does not change results).
    callback : callable or None
        ``callback(epoch, row)`` after each epoch's checkpoint (e.g. to interrupt in tests).
    name : str
        Shown in the progress bar and log.
    score : callable, optional
        ``score(outputs, targets) -> float`` over all validation genes, higher is better: the
        ``murphy`` and ``fixed`` protocols keep the epoch with the best score instead of the lowest
        validation loss (e.g. AUROC, as the baselines' reference codes). Recorded as ``val_score``.

    Returns
    -------
    FitResult
        The trained model (kept epoch restored) and its history.
    """
    if not is_loss_object(loss) and loss not in LOSSES:
        raise ValueError(
            f"Unknown loss {loss!r}; known: {LOSSES}, or a loss object such as chromexp.training.losses.HybridLoss."
        )
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {optimizer!r}; known: {OPTIMIZERS}.")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}.")
    tp = _check_train_params(train_params)
    tr_x, tr_y = _check_split(train, "train", loss)
    va_x, va_y = _check_split(validation, "validation", loss)
    dev = resolve_device(device)
    amp = bool(tp.get("mixed_precision", False))
    if amp and dev.type not in ("cuda", "cpu"):
        log.info("%s: mixed_precision is used on CUDA and CPU only; training in float32 on %s", name, dev)
    elif amp and dev.type == "cpu":
        log.info("%s: bf16 autocast on CPU (slower than float32 without native bf16 instructions)", name)
    batch_size = int(tp["batch_size"])
    eval_bs = int(eval_batch_size or 4 * batch_size)
    optimizer = protocol_optimizer(optimizer, tp)
    fingerprint = _fingerprint(model, tp, loss, optimizer, seed, (tr_x, tr_y), (va_x, va_y), score)
    home = next(model.parameters()).device if any(True for _ in model.parameters()) else torch.device("cpu")
    model.to(dev)
    proto = _Protocol(model, optimizer, tp, seed, name, scored=score is not None)
    clip = float(tp["grad_clip"]) if tp.get("grad_clip") is not None else None

    def make_epoch() -> EpochFn:
        tr, va = _Data(tr_x, tr_y, dev, data_on_device), _Data(va_x, va_y, dev, data_on_device)

        def run_epoch(active: list[int]) -> tuple[dict[int, float], dict[int, float]]:
            model.train()
            perm = torch.randperm(tr.n, generator=proto.shuffle)
            total = 0.0
            for start in range(0, tr.n, batch_size):
                idx = perm[start : start + batch_size]
                x, y = tr.batch(idx)
                proto.opt.zero_grad(set_to_none=True)
                with _autocast(dev, amp):
                    out = _call(model, x)
                batch_loss = compute_loss(out, y, loss)
                batch_loss.backward()
                if clip is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                proto.opt.step()
                proto.after_step()
                total += float(batch_loss.detach()) * len(idx)
            val_loss, val_score = _evaluate(model, va, loss, eval_bs, dev, amp, score)
            return {0: total / tr.n}, {0: val_loss}, {0: val_score}

        return run_epoch

    def report(epoch: int, rows: list[dict | None], active: list[int], bar) -> None:
        row = rows[0]
        log.log(
            DETAIL,
            "%s epoch %3d: train %.4f  val %.4f  lr %.1e  %.1fs%s",
            name,
            epoch,
            row["train_loss"],
            row["val_loss"],
            row["lr"],
            row["seconds"],
            "  *best" if row["improved"] else "",
        )
        bar.set_postfix(train=f"{row['train_loss']:.3f}", val=f"{row['val_loss']:.3f}", best=proto.best_epoch)

    (result,) = _run_protocol(
        [proto],
        make_epoch,
        homes=[home],
        device=dev,
        seed=seed,
        max_epochs=int(tp["max_epochs"]),
        checkpoint=Path(checkpoint_path) if checkpoint_path is not None else None,
        fingerprint=fingerprint,
        flat_checkpoint=True,
        progress=progress,
        desc=name,
        report=report,
        callback=None if callback is None else (lambda epoch, rows: callback(epoch, rows[0])),
    )
    return result


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

    Parameters
    ----------
    model : nn.Module
    inputs : tensor, tuple or dict of tensors (or NumPy arrays)
    batch_size : int
        Genes per forward pass (does not change the outputs).
    device : str, torch.device or None
        ``None`` = CUDA if available, else CPU.
    mixed_precision : bool
        Run the forward passes under bf16 autocast (CUDA or CPU); the outputs are returned as
        float32. The experiments predict in float32 also for models trained with
        ``train.mixed_precision`` (the weights are float32 either way).

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


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
