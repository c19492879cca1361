"""Hierarchical chromatin→expression CNNs of Mittal (2025) — a **reconstruction** (docs/deviations.md).

The thesis (Mittal 2025, §2.1 "Models", Fig. 2.2 caption) states only the building blocks: "8
convolutional layers, interspersed with residual connections and max pooling layers" made of a
Conv, ``ResidualConvBlock`` = BatchNorm → GELU → Conv with a residual connection around it,
MaxPool, and a final Linear layer (1 output for the single-tissue model, one per tissue for the
multi-tissue model). Channel widths, kernel sizes, pooling sizes and dropout placement are not
given anywhere (Fig. 2.2 is an image; no code was published). The tower below follows the
Basenji/Enformer conv-tower pattern the caption describes; its numbers are **our choice** and
are parameters (docs/deviations.md)::

    input (N, F, L)                                   F tracks, L bins (200 at 200 bp, 400 at 100 bp)
    Conv1d(F → C, k, 'same')                          conv layer 1
    n_blocks × [ResidualConvBlock(C, k); MaxPool1d(pool)]   conv layers 2–8 (n_blocks = 7)
          ResidualConvBlock: x + Conv1d(C → C, k, 'same')(GELU(BatchNorm1d(x)))
    Dropout(p) → Flatten → Linear(C · L_out → n_out)  L_out = L // pool**n_blocks (floor per pool)

With C = 128, k = 5, pool = 2, 7 blocks: **580,865** parameters for F = 7, L = 200, n_out = 1 and
**626,955** for F = 77, L = 200, n_out = 11 (the numbers measured when the reconstruction was
specified; tested).

Variants (:data:`VARIANTS`):

* ``single_tissue`` (faithful): the stacked marks of every cell type of the run (F = 7 × T,
  channel ``7·t + m`` = mark m of cell type t, cell types in the run's order) → 1 output, one
  network per target cell type. In the thesis the input is the same for every output tissue;
  tracks are not matched to the target.
* ``multi_tissue`` (faithful): the same stacked input → T outputs, one per cell type.
* ``matched_shared`` (extension, not in the thesis): one network with F = 7 applied to every
  (gene, cell type) pair, reading that cell type's own marks. Input ``(N, T, 7, L)`` → ``(N, T)``
  (or ``(N, 7, L)`` → ``(N,)``). It is what a cross-celltype loss over cell types needs to read
  cell-specific marks, and the only variant that can predict a cell type it never saw.
"""

from __future__ import annotations

import torch
from torch import nn

#: The reconstruction's default numbers (our choice; docs/deviations.md).
CHANNELS = 128
KERNEL_SIZE = 5
POOL_SIZE = 2
N_BLOCKS = 7
VARIANTS: tuple[str, ...] = ("single_tissue", "multi_tissue", "matched_shared")
#: Parameter counts of the default tower, as measured when it was specified (tested).
N_PARAMETERS_MATCHED = 580_865  # F = 7, L = 200, n_out = 1
N_PARAMETERS_MULTI_11 = 626_955  # F = 77, L = 200, n_out = 11


def pooled_length(n_bins: int, pool_size: int = POOL_SIZE, n_blocks: int = N_BLOCKS) -> int:
    """Bins left after ``n_blocks`` max pools of ``pool_size`` (floor at each pool, as ``MaxPool1d``)."""
    n = int(n_bins)
    for _ in range(int(n_blocks)):
        n //= int(pool_size)
    return n


class ResidualConvBlock(nn.Module):
    """``x + Conv1d(C → C, k, 'same')(GELU(BatchNorm1d(x)))`` (Mittal 2025, Fig. 2.2 caption).

    Shapes: ``(batch, channels, bins)`` → the same.
    """

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)
        self.act = nn.GELU()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding="same")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual block output, same shape as ``x``."""
        return x + self.conv(self.act(self.norm(x)))


class ConvTower(nn.Module):
    """The reconstructed tower: binned tracks ``(N, F, L)`` → ``(N, n_outputs)``.

    Parameters
    ----------
    n_tracks : int
        Input channels F (7 marks, or 7 × T stacked).
    n_bins : int
        Bins L per track.
    n_outputs : int
        Units of the final Linear layer.
    channels : int
        Width C of every convolution (residual blocks keep it).
    kernel_size : int
        Kernel of every convolution (odd sizes pad symmetrically; torch ``padding='same'``).
    pool_size : int
        Max-pool size after each residual block.
    n_blocks : int
        Residual blocks (with the first convolution: ``n_blocks + 1`` conv layers; 7 → the thesis's 8).
    dropout : float
        Dropout before the final Linear layer.
    """

    def __init__(
        self,
        n_tracks: int,
        n_bins: int,
        n_outputs: int = 1,
        *,
        channels: int = CHANNELS,
        kernel_size: int = KERNEL_SIZE,
        pool_size: int = POOL_SIZE,
        n_blocks: int = N_BLOCKS,
        dropout: float = 0.0,
    ):
        super().__init__()
        for name, value, low in (
            ("n_tracks", n_tracks, 1),
            ("n_bins", n_bins, 1),
            ("n_outputs", n_outputs, 1),
            ("channels", channels, 1),
            ("kernel_size", kernel_size, 1),
            ("pool_size", pool_size, 1),
            ("n_blocks", n_blocks, 0),
        ):
            if int(value) < low:
                raise ValueError(f"{name} must be at least {low}; got {value}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}.")
        self.n_tracks, self.n_bins, self.n_outputs = int(n_tracks), int(n_bins), int(n_outputs)
        self.n_out_bins = pooled_length(n_bins, pool_size, n_blocks)
        if self.n_out_bins < 1:
            raise ValueError(
                f"n_bins={n_bins} is too short for {n_blocks} max pools of size {pool_size} "
                f"(needs at least {int(pool_size) ** int(n_blocks)} bins)."
            )
        layers: list[nn.Module] = [nn.Conv1d(self.n_tracks, channels, kernel_size, padding="same")]
        for _ in range(int(n_blocks)):
            layers += [ResidualConvBlock(channels, kernel_size), nn.MaxPool1d(pool_size)]
        self.tower = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Dropout(float(dropout)), nn.Flatten(), nn.Linear(channels * self.n_out_bins, self.n_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, F, L)`` → ``(N, n_outputs)``."""
        if x.ndim != 3 or x.shape[1] != self.n_tracks or x.shape[2] != self.n_bins:
            raise ValueError(
                f"expected input of shape (batch, {self.n_tracks} tracks, {self.n_bins} bins); got {tuple(x.shape)}."
            )
        return self.head(self.tower(x))


class HierarchicalCNN(nn.Module):
    """One of the three variants of :data:`VARIANTS` around a :class:`ConvTower`.

    Parameters
    ----------
    variant : {"single_tissue", "multi_tissue", "matched_shared"}
    n_cell_types : int
        T: cell types stacked in the input (``single_tissue``, ``multi_tissue``) or predicted per
        call (``matched_shared``, where it only documents the training layout).
    n_marks : int
        Marks per cell type (7).
    n_bins : int
        Bins per track.
    **tower
        ``channels``, ``kernel_size``, ``pool_size``, ``n_blocks``, ``dropout`` of :class:`ConvTower`.

    Shapes
    ------
    ``single_tissue``: ``(N, T·M, L)`` → ``(N,)``. ``multi_tissue``: ``(N, T·M, L)`` → ``(N, T)``.
    ``matched_shared``: ``(N, T', M, L)`` → ``(N, T')`` for any T' ≥ 1 (each pair independently),
    or ``(N, M, L)`` → ``(N,)``.
    """

    def __init__(self, variant: str, n_cell_types: int, n_marks: int = 7, n_bins: int = 200, **tower):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"Unknown variant {variant!r}; known: {VARIANTS}.")
        if int(n_cell_types) < 1 or int(n_marks) < 1:
            raise ValueError(f"n_cell_types and n_marks must be ≥ 1; got {n_cell_types}, {n_marks}.")
        self.variant, self.n_cell_types, self.n_marks = variant, int(n_cell_types), int(n_marks)
        n_tracks = self.n_marks if variant == "matched_shared" else self.n_marks * self.n_cell_types
        n_out = self.n_cell_types if variant == "multi_tissue" else 1
        self.net = ConvTower(n_tracks, n_bins, n_out, **tower)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted expression; see the class docstring for shapes."""
        if self.variant == "matched_shared":
            if x.ndim == 3:
                return self.net(x).squeeze(-1)
            if x.ndim != 4:
                raise ValueError(
                    f"matched_shared expects (batch, cell types, {self.n_marks} marks, bins) or (batch, marks, bins); "
                    f"got {tuple(x.shape)}."
                )
            n, t = x.shape[:2]
            return self.net(x.reshape(n * t, *x.shape[2:])).reshape(n, t)
        out = self.net(x)
        return out.squeeze(-1) if self.variant == "single_tissue" else out


def stack_cell_types(x: torch.Tensor) -> torch.Tensor:
    """``(N, T, M, L)`` → ``(N, T·M, L)``: channel ``M·t + m`` is mark m of cell type t (cell-major)."""
    if x.ndim != 4:
        raise ValueError(f"expected (genes, cell types, marks, bins); got shape {tuple(x.shape)}.")
    return x.reshape(x.shape[0], x.shape[1] * x.shape[2], x.shape[3])


def build(
    params: dict, variant: str, n_cell_types: int, n_marks: int, n_bins: int, dropout: float | None = None
) -> HierarchicalCNN:
    """A :class:`HierarchicalCNN` from the merged parameters (``params["model"]["hierarchical_cnn"]``).

    ``dropout`` defaults to the first value of the ``dropout`` grid.
    """
    cfg = params["model"]["hierarchical_cnn"]
    if dropout is None:
        dropout = cfg["dropout"][0] if isinstance(cfg["dropout"], (list, tuple)) else cfg["dropout"]
    return HierarchicalCNN(
        variant,
        n_cell_types=n_cell_types,
        n_marks=n_marks,
        n_bins=n_bins,
        channels=int(cfg["channels"]),
        kernel_size=int(cfg["kernel_size"]),
        pool_size=int(cfg["pool_size"]),
        n_blocks=int(cfg["n_blocks"]),
        dropout=float(dropout),
    )
