"""ExPecto's linear expression model on binned chromatin tracks (docs/methods.md, "ExPecto linear model").

ExPecto (Zhou et al. 2018; FunctionLab/ExPecto) reduces each track's profile around the TSS to
10 numbers with exponential-decay *spatial bases* and fits one linear model per tissue; Mittal
(2025, §2.1) fits the same features with a tissue-specific ridge whose penalty is chosen on the
validation cross-gene Spearman ρ. Here:

* :func:`spatial_bases` — the 10 bases at arbitrary bin centres. For a signed distance ``d`` of a
  bin centre from the TSS in transcription orientation (``+`` = downstream) and
  ``k = floor(|d| / step_bp)`` (200 bp in ExPecto), with λ ∈ {0.01, 0.02, 0.05, 0.1, 0.2}:
  ``b_m(d) = exp(−λ_m k)·[d ≤ 0]`` (m = 0..4, upstream) and ``b_{5+m}(d) = exp(−λ_m k)·[d ≥ 0]``
  (downstream) — exactly ExPecto's ``compute_effects`` (predict.py@05f482c).
* :func:`features` — ``z[g, m·F + f] = Σ_j x[g, f, j]·b_m(d_j)``, basis-major like ExPecto's
  ``np.tile(effects, 10) * np.repeat(basis, nfeatures)``; ``10·F`` columns.
* :func:`merge_bins` — 200-bp bins from the stored 100-bp ``ln(mean depth + 1)`` values, merged
  on the depth scale: ``v200 = ln(((e^{v1} − 1) + (e^{v2} − 1)) / 2 + 1)``, exact because the two
  halves are equally long (not the mean of the two ln values).
* :func:`fit_ridge` — standardised features (on the training genes; [our choice], ExPecto did
  not standardise), ``sklearn.linear_model.Ridge`` over an α grid, α chosen by the validation
  cross-gene Spearman ρ.
* :func:`expression_target` — ``log2p1`` (the project's log2(RPKM + 1), default) or ``ln_pc``
  (ExPecto's ln(RPKM + 1e-4)).

The module is geometry-agnostic: the issue-26 real-data benchmark uses it on 10-kb bins by
passing those bins' centres (:func:`bin_centres`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..metrics import spearman_rho

#: ExPecto's decay rates per step (e-folding lengths 20, 10, 4, 2 and 1 kb at 200 bp).
LAMBDAS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)
#: ExPecto's step: distances are counted in whole 200-bp units.
STEP_BP = 200
N_BASES = 2 * len(LAMBDAS)
#: Ridge penalties tried (10^-3 ... 10^4, 15 log-spaced values).
ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-3, 4, 15))
#: Expression targets: the project's log2(RPKM + 1), or ExPecto's ln(RPKM + 1e-4).
TARGETS: tuple[str, ...] = ("log2p1", "ln_pc")
#: Feature modes: the target cell type's marks only, or every cell type's marks (as ExPecto / Mittal).
MODES: tuple[str, ...] = ("matched", "all_cells")
PSEUDOCOUNT = 1e-4


def bin_centres(n_bins: int, bin_size: int) -> np.ndarray:
    """Signed distances (bp) of the centres of ``n_bins`` strand-oriented bins around the TSS.

    The window ``[TSS − n_bins·bin_size/2, TSS + n_bins·bin_size/2)`` in transcription orientation,
    bin 0 most upstream, the TSS between bins ``n/2 − 1`` and ``n/2`` (the dataset's layout):
    ``d_j = −(n/2)·bin_size + (j + ½)·bin_size``. For 200 bins of 200 bp: −19,900 … +19,900.

    Returns
    -------
    numpy.ndarray, shape (n_bins,), float64
    """
    n, size = int(n_bins), int(bin_size)
    if n < 1 or n % 2 or size < 1:
        raise ValueError(f"n_bins must be a positive even number and bin_size positive; got {n_bins}, {bin_size}.")
    return (np.arange(n) - n // 2) * float(size) + size / 2.0


def spatial_bases(distance_bp, step_bp: int = STEP_BP, lambdas: Sequence[float] = LAMBDAS) -> np.ndarray:
    """ExPecto's exponential-decay bases at signed distances from the TSS.

    Parameters
    ----------
    distance_bp : array-like, shape (n_bins,)
        Signed distance of each bin centre from the TSS in transcription orientation
        (negative = upstream). Any geometry (200-bp, 100-bp or 10-kb bins).
    step_bp : int
        Distances count in whole steps: ``k = floor(|d| / step_bp)`` (ExPecto: 200).
    lambdas : sequence of float
        Decay per step (ExPecto's five).

    Returns
    -------
    numpy.ndarray, shape (2 · len(lambdas), n_bins), float64
        Rows 0..4 upstream (``d ≤ 0``), rows 5..9 downstream (``d ≥ 0``); a bin centred exactly on
        the TSS counts in both, as in ExPecto.
    """
    d = np.asarray(distance_bp, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"distance_bp must be a non-empty 1-D array of bin-centre distances; got shape {d.shape}.")
    if not np.isfinite(d).all():
        raise ValueError("distance_bp has non-finite values.")
    if int(step_bp) < 1:
        raise ValueError(f"step_bp must be a positive number of bp; got {step_bp}.")
    k = np.floor(np.abs(d) / float(step_bp))
    decay = np.exp(-np.asarray(lambdas, dtype=np.float64)[:, None] * k[None, :])
    return np.concatenate([decay * (d <= 0), decay * (d >= 0)], axis=0)


def features(x, distance_bp, step_bp: int = STEP_BP) -> np.ndarray:
    """Spatially transformed features: ``z[g, m·F + f] = Σ_j x[g, f, j] · b_m(d_j)`` (basis-major).

    Parameters
    ----------
    x : array-like, shape (n_genes, n_tracks, n_bins)
        Binned track values (e.g. 200-bp ``ln(mean depth + 1)``), strand-oriented.
    distance_bp : array-like, shape (n_bins,)
        Bin-centre distances (:func:`bin_centres`).
    step_bp : int
        See :func:`spatial_bases`.

    Returns
    -------
    numpy.ndarray, shape (n_genes, 10 · n_tracks), float64
    """
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"x must be (genes, tracks, bins); got shape {arr.shape}.")
    bases = spatial_bases(distance_bp, step_bp)
    if bases.shape[1] != arr.shape[2]:
        raise ValueError(f"x has {arr.shape[2]} bins but distance_bp has {bases.shape[1]} distances.")
    if not np.isfinite(arr).all():
        raise ValueError(f"x has {int((~np.isfinite(arr)).sum())} non-finite values.")
    return np.einsum("gfj,mj->gmf", arr, bases).reshape(arr.shape[0], -1)


def merge_bins(values, factor: int = 2, log_base: str | float = "e") -> np.ndarray:
    """Merge ``factor`` adjacent bins of ``log_base(mean depth + 1)`` values exactly, on the depth scale.

    ``v_merged = log((Σ_i (base^{v_i} − 1)) / factor + 1)``: the mean depth over equally long bins is
    the mean of their mean depths. Computed in float64, returned as float32 (the stored precision).

    Parameters
    ----------
    values : array-like, shape (..., n_bins)
        ``n_bins`` a multiple of ``factor``; bins contiguous and of equal length.
    factor : int
        Bins merged into one (2: 100 bp → 200 bp).
    log_base : "e", 2 or 10
        The base of the stored transform (``signal.log_base``).

    Returns
    -------
    numpy.ndarray, shape (..., n_bins // factor), float32
    """
    v = np.asarray(values, dtype=np.float64)
    f = int(factor)
    if f < 1 or v.shape[-1] % f:
        raise ValueError(f"The last axis ({v.shape[-1]} bins) must be a multiple of factor={factor}.")
    base = {"e": np.e, "2": 2.0, "10": 10.0}.get(str(log_base))
    if base is None:
        raise ValueError(f"log_base must be 'e', 2 or 10; got {log_base!r}.")
    depth = np.expm1(v) if base == np.e else np.power(base, v) - 1.0
    mean = depth.reshape(*v.shape[:-1], v.shape[-1] // f, f).mean(axis=-1)
    out = np.log1p(mean) if base == np.e else np.log1p(mean) / np.log(base)
    return out.astype(np.float32)


def expression_target(rpkm, target: str = "log2p1") -> np.ndarray:
    """``log2(RPKM + 1)`` (``"log2p1"``) or ExPecto's ``ln(RPKM + 1e-4)`` (``"ln_pc"``), float64."""
    r = np.asarray(rpkm, dtype=np.float64)
    if (r < 0).any() or not np.isfinite(r).all():
        raise ValueError("RPKM values must be finite and ≥ 0.")
    if target == "log2p1":
        return np.log2(r + 1.0)
    if target == "ln_pc":
        return np.log(r + PSEUDOCOUNT)
    raise ValueError(f"Unknown target {target!r}; known: {TARGETS}.")


@dataclass
class RidgeFit:
    """A fitted ExPecto ridge.

    Attributes
    ----------
    alpha : float
        The penalty chosen on the validation genes.
    coef : numpy.ndarray, shape (n_features,)
        Weights on the *standardised* features.
    intercept : float
    mean, scale : numpy.ndarray, shape (n_features,)
        Standardisation fitted on the training genes (``scale`` 1 for a constant feature).
    n_constant : int
        Features constant over the training genes (left unscaled; their weight is 0).
    selection : pandas.DataFrame
        ``alpha, validation_spearman`` for every α tried.
    """

    alpha: float
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    n_constant: int
    selection: pd.DataFrame = field(repr=False)

    def predict(self, z) -> np.ndarray:
        """Predictions for features ``z`` (n_genes, n_features), float64."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.coef.size:
            raise ValueError(f"z must be (genes, {self.coef.size}) features; got shape {z.shape}.")
        return ((z - self.mean) / self.scale) @ self.coef + self.intercept


def standardise(z_train: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and SD of each feature over the training genes; SD 1 where the feature is constant."""
    mean = z_train.mean(axis=0)
    sd = z_train.std(axis=0)
    constant = sd == 0
    return mean, np.where(constant, 1.0, sd), int(constant.sum())


def fit_ridge(
    z_train,
    y_train,
    z_validation,
    y_validation,
    alphas: Sequence[float] = ALPHAS,
) -> RidgeFit:
    """Ridge on standardised features, α chosen by the validation cross-gene Spearman ρ.

    For every α of ``alphas`` the ridge with an intercept (what ``sklearn.linear_model.Ridge``
    fits: ``w = (XᵀX + αI)⁻¹Xᵀy`` on the centred training data) is computed from one SVD of the
    standardised training features, in float64 (tested equal to ``Ridge`` and to the closed form);
    the α whose predictions of the validation genes have the highest Spearman ρ with
    ``y_validation`` is kept (ties: the larger α, the simpler model). The kept model is the one
    fitted on the training genes (validation genes only choose α).

    Parameters
    ----------
    z_train, z_validation : array-like, shape (n_genes, n_features)
    y_train, y_validation : array-like, shape (n_genes,)
    alphas : sequence of float
        Penalties (> 0).

    Returns
    -------
    RidgeFit
    """
    zt, zv = np.asarray(z_train, dtype=np.float64), np.asarray(z_validation, dtype=np.float64)
    yt, yv = np.asarray(y_train, dtype=np.float64), np.asarray(y_validation, dtype=np.float64)
    for name, z, y in (("train", zt, yt), ("validation", zv, yv)):
        if z.ndim != 2 or y.ndim != 1 or z.shape[0] != y.shape[0]:
            raise ValueError(
                f"The {name} features {z.shape} and targets {y.shape} must be (genes, features) and (genes,)."
            )
        if z.shape[0] < 2:
            raise ValueError(f"The {name} split has {z.shape[0]} gene(s); at least 2 are needed.")
        if not (np.isfinite(z).all() and np.isfinite(y).all()):
            raise ValueError(f"The {name} features or targets have non-finite values.")
    if zt.shape[1] != zv.shape[1]:
        raise ValueError(f"train has {zt.shape[1]} features but validation {zv.shape[1]}.")
    alphas = [float(a) for a in alphas]
    if not alphas or min(alphas) <= 0:
        raise ValueError(f"alphas must be positive; got {alphas}.")
    mean, scale, n_constant = standardise(zt)
    st, sv = (zt - mean) / scale, (zv - mean) / scale
    x_mean, y_mean = st.mean(axis=0), yt.mean()
    u, s, vt = np.linalg.svd(st - x_mean, full_matrices=False)
    uty = u.T @ (yt - y_mean)
    rows, fits = [], []
    for a in alphas:
        coef = vt.T @ (s / (s * s + a) * uty)
        intercept = y_mean - x_mean @ coef
        pred = sv @ coef + intercept
        rho = spearman_rho(yv, pred) if np.ptp(pred) > 0 else float("nan")
        rows.append({"alpha": a, "validation_spearman": rho})
        fits.append((coef, intercept))
    selection = pd.DataFrame(rows)
    scores = selection["validation_spearman"].fillna(-np.inf).to_numpy()
    best = int(np.flatnonzero(scores == scores.max())[-1])
    coef, intercept = fits[best]
    coef = np.where(zt.std(axis=0) == 0, 0.0, coef)  # a constant feature carries nothing: weight exactly 0
    return RidgeFit(
        alpha=alphas[best],
        coef=coef,
        intercept=float(intercept),
        mean=mean,
        scale=scale,
        n_constant=n_constant,
        selection=selection,
    )
