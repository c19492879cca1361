"""Notebook 55's models: ExPecto ridge and Mittal's hierarchical CNNs on all cell types at once.

Mittal (2025) predicts every tissue of a gene from chromatin tracks around its TSS and asks two
questions of each model: how well it ranks genes within a cell type (**cross-gene**) and how well
it ranks a gene's cell types (**cross-celltype**, :mod:`chromexp.metrics`). This module holds
the recipes:

* :func:`load_cells` — every cell type's dataset store → one :class:`CellsData`: the genes in
  every store (others counted, never silently dropped), their 7 marks per cell type in 200-bp
  bins merged exactly from the stored 100-bp values (:func:`chromexp.baselines.expecto.merge_bins`),
  targets per cell type, and the chromosome folds with validation chromosomes chosen on these
  genes by the dataset's own rule.
* :func:`run_expecto` — ExPecto's spatial bases + ridge per (cell type, fold), ``matched`` (the cell
  type's 7 marks: 70 features) or ``all_cells`` (every cell type's marks: 70 × T features).
* :func:`run_cnn` — one hierarchical CNN (:mod:`chromexp.models.hierarchical_cnn`) per
  (variant, (α, β), fold), trained with the project's engine (:func:`chromexp.train.fit`) and the
  hybrid loss (:class:`chromexp.losses.HybridLoss`) over batches of B genes × T cell types.
* ``held_out`` in both: leave one cell type out — trained on the other cell types' genes of the
  training folds, tested on the held-out cell type's test-fold genes (``matched`` ExPecto and
  ``matched_shared`` only: the other variants have a fixed set of cell types).

Every function returns tidy prediction rows (``results.PREDICTION_COLUMNS`` plus ``scheme``):
one per (cell type, model, fold, test gene); the metrics are computed from them by
:mod:`chromexp.experiments.cross_celltype`.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..baselines.expecto import bin_centres, expression_target, features, fit_ridge, merge_bins
from ..constants import MARKS
from ..data import dataset as _dataset
from ..models import hierarchical_cnn as hc
from ..results import marks_key
from ..training import train
from ..training.losses import HybridLoss
from ..utils import get_logger

log = get_logger("chromexp.experiments.hierarchical")

#: Scheme of the ordinary chromosome folds and of the leave-one-cell-type-out runs.
SCHEME = "chrom_folds"
LOCO_SCHEME = "leave_one_cell_type_out"
#: Columns of the prediction rows this module returns.
COLUMNS: tuple[str, ...] = ("cell_type", "model", "marks", "scheme", "fold", "gene_id", "observed", "predicted")


# ----------------------------------------------------------------------------------------------
# data: all cell types at once
# ----------------------------------------------------------------------------------------------
@dataclass
class CellsData:
    """Every cell type of a run, on the genes they share.

    Attributes
    ----------
    cell_types : list of str
        In the run's order; channel blocks and target columns follow it.
    marks : list of str
    genes : pandas.DataFrame
        ``gene_id, chrom, fold`` of the shared genes (store order of the first cell type).
    x : numpy.ndarray, shape (n_genes, n_cells, n_marks, n_bins), float32
        Strand-oriented ``ln(mean depth + 1)`` bins of TSS ± half window.
    y : numpy.ndarray, shape (n_genes, n_cells), float64
        Targets (:func:`chromexp.baselines.expecto.expression_target`).
    bin_size : int
    target : str
    provenance : str
    excluded : pandas.DataFrame
        ``cell_type, n_genes_not_in_all`` — genes of a cell type's store missing from another's.
    validation_fraction : float
    """

    cell_types: list[str]
    marks: list[str]
    genes: pd.DataFrame
    x: np.ndarray
    y: np.ndarray
    bin_size: int
    target: str
    provenance: str
    excluded: pd.DataFrame
    validation_fraction: float = 0.12
    _splits: dict = field(default_factory=dict, repr=False)
    _digest: str | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        """SHA-1 of the inputs, targets, genes and cell types (names checkpoints; computed once)."""
        if self._digest is None:
            h = hashlib.sha1(repr((self.cell_types, self.marks, self.bin_size, self.target)).encode())
            for a in (self.x, self.y, self.genes["gene_id"].to_numpy().astype(str)):
                h.update(np.ascontiguousarray(a).tobytes())
            self._digest = h.hexdigest()
        return self._digest

    @property
    def distance_bp(self) -> np.ndarray:
        """Bin-centre distances from the TSS (bp, transcription orientation)."""
        return bin_centres(self.x.shape[-1], self.bin_size)

    def split(self, fold: int) -> dict[str, np.ndarray]:
        """Gene positions of ``train`` / ``validation`` / ``test`` for ``fold`` (the dataset's rule on these genes)."""
        fold = int(fold)
        if fold not in self._splits:
            counts = self.genes["chrom"].value_counts().to_dict()
            val = _dataset.validation_chromosomes(counts, fold, self.validation_fraction)
            test = np.flatnonzero(self.genes["fold"].to_numpy() == fold)
            validation = np.flatnonzero(self.genes["chrom"].isin(val).to_numpy())
            trn = np.setdiff1d(np.arange(len(self.genes)), np.concatenate([test, validation]))
            for part, idx in (("train", trn), ("validation", validation), ("test", test)):
                if idx.size < 2:
                    raise ValueError(f"Fold {fold} has {idx.size} {part} gene(s) shared by {self.cell_types}.")
            self._splits[fold] = {"train": trn, "validation": validation, "test": test}
        return self._splits[fold]

    def observed_table(self) -> pd.DataFrame:
        """``cell_type, fold, gene_id, observed``: every (cell type, gene)."""
        n = len(self.genes)
        return pd.DataFrame(
            {
                "cell_type": np.repeat(self.cell_types, n),
                "fold": np.tile(self.genes["fold"].to_numpy(), len(self.cell_types)),
                "gene_id": np.tile(self.genes["gene_id"].to_numpy(), len(self.cell_types)),
                "observed": self.y.T.ravel(),
            }
        )


def load_cells(
    cell_params: Mapping[str, Mapping],
    *,
    marks: Sequence[str] = MARKS,
    bin_size: int = 200,
    target: str = "log2p1",
) -> CellsData:
    """Load every cell type's store and keep the genes they share.

    Parameters
    ----------
    cell_params : mapping EID → merged parameters
        One entry per cell type of the run (``config.load_params(EID, ...)``), in the run's order.
    marks : sequence of str
        Marks per cell type (default all 7).
    bin_size : {200, 100}
        200: ExPecto's bins, each the exact merge of two stored 100-bp bins; 100: the stored bins.
    target : {"log2p1", "ln_pc"}

    Raises
    ------
    ValueError
        Fewer than 2 cell types, mixed provenances, or no gene in every store.
    """
    cells = list(cell_params)
    if len(cells) < 2:
        raise ValueError(f"Cross-celltype models need at least 2 cell types; the run has {cells}.")
    if int(bin_size) not in (100, 200):
        raise ValueError(f"bin_size must be 100 or 200; got {bin_size}.")
    stores = {c: _dataset.load_dataset(cell_params[c], c) for c in cells}
    prov = sorted({s.provenance for s in stores.values()})
    if len(prov) != 1:
        raise ValueError(f"The cell types' stores mix provenances {prov}; one run holds one kind of data.")
    ids = [set(s.genes["gene_id"]) for s in stores.values()]
    shared = set.intersection(*ids)
    first = stores[cells[0]].genes
    genes = first[first["gene_id"].isin(shared)][["gene_id", "chrom", "fold"]].reset_index(drop=True)
    excluded = pd.DataFrame(
        {"cell_type": cells, "n_genes_not_in_all": [len(i - shared) for i in ids], "n_genes_shared": len(shared)}
    )
    if genes.empty:
        raise ValueError(f"No gene is in every store of {cells}: nothing to compare across cell types.")
    xs, ys = [], []
    for c in cells:
        s = stores.pop(c)
        pos = pd.Index(s.genes["gene_id"]).get_indexer(genes["gene_id"])
        folds = s.genes["fold"].to_numpy()[pos]
        if not np.array_equal(folds, genes["fold"].to_numpy()):
            raise ValueError(f"{c}: the shared genes' folds differ from {cells[0]}'s (different gene tables?).")
        x = s.promoter(marks=list(marks), resolution=100, half_window=s.half_window, genes=pos)
        if int(bin_size) == 200:
            x = merge_bins(x, 2, s.settings["log_base"])
        xs.append(x)
        ys.append(expression_target(s.genes["rpkm"].to_numpy()[pos], target))
        del s  # with the store object goes its cached full arrays (memory with 11 cell types)
    return CellsData(
        cell_types=cells,
        marks=list(marks),
        genes=genes,
        x=np.stack(xs, axis=1).astype(np.float32),
        y=np.stack(ys, axis=1),
        bin_size=int(bin_size),
        target=target,
        provenance=prov[0],
        excluded=excluded,
        validation_fraction=float(next(iter(cell_params.values()))["dataset"]["validation_fraction"]),
    )


def _rows(data: CellsData, model: str, fold: int, rows: np.ndarray, pred: np.ndarray, cells, scheme: str):
    """Prediction rows of ``cells`` (columns of ``pred``) for genes ``rows``."""
    pred = np.asarray(pred, dtype=np.float64).reshape(len(rows), len(cells))
    frames = []
    for j, c in enumerate(cells):
        t = data.cell_types.index(c)
        frames.append(
            pd.DataFrame(
                {
                    "cell_type": c,
                    "model": model,
                    "marks": marks_key(data.marks),
                    "scheme": scheme,
                    "fold": int(fold),
                    "gene_id": data.genes["gene_id"].to_numpy()[rows],
                    "observed": data.y[rows, t],
                    "predicted": pred[:, j],
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


# ----------------------------------------------------------------------------------------------
# ExPecto
# ----------------------------------------------------------------------------------------------
def expecto_model_name(mode: str) -> str:
    """``expecto_matched`` / ``expecto_all_cells``."""
    return f"expecto_{mode}"


def run_expecto(
    data: CellsData,
    mode: str,
    folds: Sequence[int],
    *,
    alphas: Sequence[float] | None = None,
    held_out: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ExPecto ridge per (cell type, fold); or, with ``held_out``, one ``matched`` ridge for the unseen cell type.

    Parameters
    ----------
    data : CellsData
    mode : {"matched", "all_cells"}
        ``matched``: the target cell type's marks (70 features); ``all_cells``: every cell
        type's marks stacked (70 × T), as ExPecto and Mittal (tracks not matched to the target).
    folds : sequence of int
    alphas : sequence of float, optional
        Ridge penalties (default ``expecto.ALPHAS``: 10^-3 … 10^4, 15 values).
    held_out : str, optional
        Leave this cell type out: fit one ``matched`` ridge on the other cell types' (gene, cell
        type) pairs of the training folds (α chosen on their validation genes) and predict the
        held-out cell type's test genes.

    Returns
    -------
    predictions : pandas.DataFrame
        :data:`COLUMNS` rows.
    selection : pandas.DataFrame
        ``model, cell_type, fold, held_out, alpha, validation_spearman, chosen`` for every α tried.
    """
    from ..baselines.expecto import ALPHAS

    if mode not in ("matched", "all_cells"):
        raise ValueError(f"Unknown ExPecto mode {mode!r}; known: matched, all_cells.")
    if held_out is not None and mode != "matched":
        raise ValueError(
            "Only the matched ExPecto ridge can predict an unseen cell type (all_cells reads every cell type)."
        )
    alphas = list(alphas or ALPHAS)
    d = data.distance_bp
    per_cell = np.stack([features(data.x[:, t], d) for t in range(len(data.cell_types))], axis=1)  # (G, T, 70)
    z_all = features(data.x.reshape(data.x.shape[0], -1, data.x.shape[-1]), d) if mode == "all_cells" else None
    name = expecto_model_name(mode)
    preds, selections = [], []
    for fold in folds:
        s = data.split(fold)
        if held_out is not None:
            h = data.cell_types.index(held_out)
            others = [t for t in range(len(data.cell_types)) if t != h]
            zt = per_cell[s["train"]][:, others].reshape(-1, per_cell.shape[-1])
            yt = data.y[s["train"]][:, others].ravel()
            zv = per_cell[s["validation"]][:, others].reshape(-1, per_cell.shape[-1])
            yv = data.y[s["validation"]][:, others].ravel()
            fit = fit_ridge(zt, yt, zv, yv, alphas)
            pred = fit.predict(per_cell[s["test"], h])
            preds.append(_rows(data, name, fold, s["test"], pred, [held_out], LOCO_SCHEME))
            selections.append(_selection(fit, name, held_out, fold, held_out))
            continue
        for t, c in enumerate(data.cell_types):
            z = per_cell[:, t] if mode == "matched" else z_all
            fit = fit_ridge(
                z[s["train"]], data.y[s["train"], t], z[s["validation"]], data.y[s["validation"], t], alphas
            )
            preds.append(_rows(data, name, fold, s["test"], fit.predict(z[s["test"]]), [c], SCHEME))
            selections.append(_selection(fit, name, c, fold, None))
    return pd.concat(preds, ignore_index=True), pd.concat(selections, ignore_index=True)


def _selection(fit, model: str, cell: str, fold: int, held_out: str | None) -> pd.DataFrame:
    sel = fit.selection.assign(model=model, cell_type=cell, fold=int(fold), held_out=held_out or "")
    sel["chosen"] = sel["alpha"] == fit.alpha
    return sel[["model", "cell_type", "fold", "held_out", "alpha", "validation_spearman", "chosen"]]


# ----------------------------------------------------------------------------------------------
# hierarchical CNNs
# ----------------------------------------------------------------------------------------------
def cnn_model_name(variant: str, alpha: float = 0.0, beta: float = 1.0) -> str:
    """``hcnn_<variant>`` for the MSE, ``hcnn_<variant>_a<α>_b<β>`` for a hybrid loss (``hcnn_multi_tissue_a100_b1``)."""
    if float(alpha) == 0.0 and float(beta) == 1.0:
        return f"hcnn_{variant}"
    return f"hcnn_{variant}_a{float(alpha):g}_b{float(beta):g}"


def model_seed(seed: int, variant: str, fold: int, held_out: int = -1, target: int = -1) -> int:
    """Seed of one network: distinct per (variant, fold, held-out cell, target cell), the same in every run.

    The loss (α, β) and the grid point (lr, dropout) do not enter it: the networks of one grid start
    from the same weights, so they differ by what they were trained with only.
    """
    key = f"{variant}|{int(fold)}|{int(held_out)}|{int(target)}".encode()
    return int(seed) * 1_000_003 + zlib.crc32(key) % 1_000_000


@dataclass
class CNNRun:
    """What :func:`run_cnn` returns.

    Attributes
    ----------
    predictions : pandas.DataFrame
        :data:`COLUMNS` rows of the test genes.
    history : pandas.DataFrame
        Per-epoch history with ``model, fold, held_out, target_cell, lr, dropout``.
    selection : pandas.DataFrame
        ``model, fold, held_out, target_cell, lr, dropout, best_val_loss, chosen``.
    seconds : float
    gene_epochs : int
        (gene, cell type) pairs × epochs trained (0 when every model was read back).
    reused : int
        Models read back from finished checkpoints.
    """

    predictions: pd.DataFrame
    history: pd.DataFrame
    selection: pd.DataFrame
    seconds: float
    gene_epochs: int
    reused: int = 0


def _digest(*parts) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(np.ascontiguousarray(p).tobytes() if isinstance(p, np.ndarray) else repr(p).encode())
    return h.hexdigest()[:12]


def run_cnn(
    data: CellsData,
    params: Mapping,
    variant: str,
    folds: Sequence[int],
    *,
    alpha: float = 0.0,
    beta: float = 1.0,
    held_out: str | None = None,
    device: str | torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    progress: bool = False,
) -> CNNRun:
    """Train and test hierarchical CNNs of one variant and loss on ``folds``.

    * ``single_tissue``: one network per (target cell type, fold), input every cell type's marks
      stacked (7 × T channels), MSE (a cross-celltype term needs ≥ 2 outputs; ``alpha`` must be 0).
    * ``multi_tissue``: one network per fold, same input, T outputs, loss ``HybridLoss(α, β)``
      over batches of B genes × T cell types.
    * ``matched_shared``: one network per fold applied to each (gene, cell type) pair with that
      cell type's 7 marks, loss ``HybridLoss(α, β)`` over B genes × T cell types. With ``held_out``
      it trains on the other T − 1 cell types and predicts the held-out one (``scheme
      leave_one_cell_type_out``).

    Hyper-parameters (``params["model"]["hierarchical_cnn"]``): the tower (``channels``,
    ``kernel_size``, ``pool_size``, ``n_blocks``), ``max_epochs`` (replaces ``train.max_epochs``),
    and the grid ``lr`` × ``dropout``; one network per grid point, the one with the lowest
    validation loss kept (Mittal §3.1 selects on validation loss) [our choice for §2's models too].
    The rest of the protocol is ``params["train"]`` (Adam, batch 64, ReduceLROnPlateau, early
    stopping with the best epoch restored).

    Parameters
    ----------
    data : CellsData
    params : mapping
        Merged parameters (``model.hierarchical_cnn``, ``train``, ``seed``).
    variant : str
        One of ``hierarchical_cnn.VARIANTS``.
    folds : sequence of int
    alpha, beta : float
        Hybrid-loss weights ((0, 1) = MSE).
    held_out : str, optional
        ``matched_shared`` only: the unseen cell type.
    device : str, torch.device or None
    checkpoint_dir : path or None
        One checkpoint per network, named by a digest of its data, split, loss, seed and
        settings: a rerun resumes or reads finished networks back.
    progress : bool

    Returns
    -------
    CNNRun
    """
    if variant not in hc.VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; known: {hc.VARIANTS}.")
    if held_out is not None and variant != "matched_shared":
        raise ValueError(f"Only matched_shared can predict an unseen cell type; got variant {variant!r}.")
    if variant == "single_tissue" and (float(alpha), float(beta)) != (0.0, 1.0):
        raise ValueError(
            "single_tissue has one output: the cross-celltype Pearson term needs ≥ 2; use (α, β) = (0, 1)."
        )
    cfg = params["model"]["hierarchical_cnn"]
    tp = dict(params["train"], max_epochs=int(cfg["max_epochs"]))
    dev = train.resolve_device(device if device is not None else params.get("device"))
    cells = data.cell_types
    n_cells, n_marks, n_bins = data.x.shape[1:]
    h = cells.index(held_out) if held_out is not None else -1
    train_cells = [t for t in range(n_cells) if t != h]
    name = cnn_model_name(variant, alpha, beta)
    scheme = LOCO_SCHEME if held_out is not None else SCHEME
    loss = "mse" if variant == "single_tissue" else HybridLoss(alpha, beta)
    xt = torch.from_numpy(data.x)
    yt = torch.from_numpy(data.y.astype(np.float32))
    ckdir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    grid = [(float(lr), float(p)) for lr in cfg["lr"] for p in cfg["dropout"]]
    if not grid:
        raise ValueError("model.hierarchical_cnn.lr and .dropout must each list at least one value.")
    tower_cfg = {k: cfg[k] for k in ("channels", "kernel_size", "pool_size", "n_blocks")}
    jobs = [(fold, t) for fold in folds for t in (range(n_cells) if variant == "single_tissue" else [-1])]

    def inputs(rows: np.ndarray, cell_idx: list[int]) -> torch.Tensor:
        x = xt[rows][:, cell_idx]
        return x if variant == "matched_shared" else hc.stack_cell_types(x)

    preds, histories, selections = [], [], []
    gene_epochs, reused, t0 = 0, 0, time.perf_counter()
    for fold, target in jobs:
        s = data.split(fold)
        in_cells = train_cells
        out_cells = [target] if variant == "single_tissue" else train_cells
        tr = (
            inputs(s["train"], in_cells),
            yt[s["train"]][:, out_cells].squeeze(-1) if target >= 0 else yt[s["train"]][:, out_cells],
        )
        va = (
            inputs(s["validation"], in_cells),
            yt[s["validation"]][:, out_cells].squeeze(-1) if target >= 0 else yt[s["validation"]][:, out_cells],
        )
        best = None
        for lr, dropout in grid:
            seed = model_seed(params["seed"], variant, fold, h, target)
            torch.manual_seed(seed)
            net = hc.build(params, variant, n_cells - (1 if h >= 0 else 0), n_marks, n_bins, dropout=dropout)
            ckpt = None
            if ckdir is not None:
                tag = _digest(
                    data.digest,
                    s["train"],
                    s["validation"],
                    train.loss_name(loss),
                    tower_cfg,
                    tp,
                    lr,
                    dropout,
                    seed,
                    h,
                    target,
                    variant,
                )
                ckpt = ckdir / f"{name}_fold{fold}_h{h + 1}_t{target + 1}_{tag}.pt"
            was_done = train.is_finished_checkpoint(ckpt)
            r = train.fit(
                net,
                tr,
                va,
                train_params=dict(tp, lr=lr),
                loss=loss,
                device=dev,
                seed=seed,
                checkpoint_path=ckpt,
                progress=progress,
                name=f"{name} fold {fold}"
                + (f" without {held_out}" if held_out else "")
                + (f" → {cells[target]}" if target >= 0 else ""),
            )
            reused += int(was_done)
            gene_epochs += 0 if was_done else len(tr[1]) * len(out_cells) * (len(r.history) - r.resumed_from)
            histories.append(
                r.history.assign(
                    model=name,
                    fold=fold,
                    held_out=held_out or "",
                    target_cell=cells[target] if target >= 0 else "",
                    lr=lr,
                    dropout=dropout,
                )
            )
            selections.append(
                {
                    "model": name,
                    "fold": fold,
                    "held_out": held_out or "",
                    "target_cell": cells[target] if target >= 0 else "",
                    "lr": lr,
                    "dropout": dropout,
                    "best_val_loss": r.best_val_loss,
                }
            )
            if best is None or r.best_val_loss < best[0]:
                best = (r.best_val_loss, r.model, lr, dropout)
        _, model, lr, dropout = best
        for row in selections[-len(grid) :]:
            row["chosen"] = (row["lr"], row["dropout"]) == (lr, dropout)
        test = s["test"]
        if held_out is not None:
            pred = train.predict(model, xt[test][:, [h]], device=dev)
            preds.append(_rows(data, name, fold, test, pred, [held_out], scheme))
        elif variant == "single_tissue":
            pred = train.predict(model, inputs(test, in_cells), device=dev)
            preds.append(_rows(data, name, fold, test, pred, [cells[target]], scheme))
        else:
            pred = train.predict(model, inputs(test, in_cells), device=dev)
            preds.append(_rows(data, name, fold, test, pred, cells, scheme))
    return CNNRun(
        predictions=pd.concat(preds, ignore_index=True),
        history=pd.concat(histories, ignore_index=True),
        selection=pd.DataFrame(selections),
        seconds=time.perf_counter() - t0,
        gene_epochs=int(gene_epochs),
        reused=reused,
    )


def check_predictions(
    predictions: pd.DataFrame, data: CellsData, folds: Sequence[int], cnn_folds: Sequence[int]
) -> None:
    """Every model of notebook 55 predicts each test gene of each of its folds once per cell type it covers.

    Raises
    ------
    ValueError
        Naming the first (scheme, model, cell type, fold) whose predictions are incomplete,
        duplicated or non-finite.
    """
    if not np.isfinite(predictions["predicted"].to_numpy(float)).all():
        raise ValueError("Notebook 55's models have non-finite predictions.")
    ids = data.genes["gene_id"].to_numpy()
    for (scheme, model, cell), g in predictions.groupby(["scheme", "model", "cell_type"]):
        want = folds if model.startswith("expecto") else cnn_folds
        if sorted(g["fold"].unique()) != sorted(want):
            raise ValueError(f"{model} ({scheme}) {cell}: folds {sorted(g['fold'].unique())}, expected {sorted(want)}.")
        for fold, gf in g.groupby("fold"):
            test = set(ids[data.split(fold)["test"]])
            if not gf["gene_id"].is_unique or set(gf["gene_id"]) != test:
                raise ValueError(
                    f"{model} ({scheme}) {cell} fold {fold}: {len(gf)} predictions for {len(test)} test genes; "
                    "every test gene needs exactly one."
                )
