"""Per-segment D estimators of Brownian motion (px, frames): maximum likelihood and the CVE.

Re-exported by :mod:`napari_step.segment`.
"""

from __future__ import annotations

import numpy as np

from .changepoints import _as_positions

__all__ = ["mle_d", "cve_d", "noise_corrected_d", "R_FULL_FRAME"]

R_FULL_FRAME = 1.0 / 6.0  # motion-blur coefficient for continuous full-frame exposure


def mle_d(positions: np.ndarray, dim: int | None = None) -> np.ndarray | float:
    """Maximum-likelihood D of Brownian motion from a segment's positions.

    Parameters
    ----------
    positions : array_like, shape (T, dim) or (N, T, dim)
        One segment or a batch of equal-length ones, px.
    dim : int, optional
        Number of axes (default: the last axis' size).

    Returns
    -------
    float or ndarray
        D = sum |dx|^2 / (2 dim n) over the n = T - 1 displacements, px^2/frame; NaN without a
        displacement. Unbiased for noise-free Brownian motion; localisation noise of variance
        sigma^2 per axis adds sigma^2 (see :func:`cve_d`, estimator "mle_denoised").
    """
    pos = _as_positions(positions)
    dim = pos.shape[-1] if dim is None else int(dim)
    dx = np.diff(pos, axis=-2)
    n = dx.shape[-2]
    if n == 0:
        out = np.full(pos.shape[:-2], np.nan)
        return float(out) if out.ndim == 0 else out
    out = (dx**2).sum(axis=(-2, -1)) / (2.0 * dim * n)
    return float(out) if np.ndim(out) == 0 else out


def cve_d(
    positions: np.ndarray, R: float = R_FULL_FRAME, return_sigma2: bool = False
) -> float | np.ndarray | tuple:
    """Covariance-based estimator (CVE) of D, unbiased under localisation noise.

    Vestergaard, Blainey & Flyvbjerg, Phys. Rev. E 89, 022726 (2014), with dt = 1 frame, per axis
    and averaged over the axes::

        D       = <dx_n^2> / 2 + <dx_n dx_{n+1}>
        sigma^2 = R <dx_n^2> + (2R - 1) <dx_n dx_{n+1}>

    Parameters
    ----------
    positions : array_like, shape (T, dim) or (N, T, dim)
        One segment or a batch of equal-length ones, px; at least three frames (else NaN).
    R : float
        Motion-blur coefficient: 1/6 for continuous full-frame exposure (default, camera data),
        0 for instantaneous snapshots. D does not depend on it, sigma^2 does.
    return_sigma2 : bool
        Also return the localisation variance.

    Returns
    -------
    d : float or ndarray
        px^2/frame. Can be negative for short, noisy segments (the estimator's honest sampling
        error, not clipped).
    sigma2 : float or ndarray
        Localisation variance per axis, px^2 (with ``return_sigma2``).
    """
    pos = _as_positions(positions)
    dx = np.diff(pos, axis=-2)
    if dx.shape[-2] < 2:
        d = np.full(pos.shape[:-2], np.nan)
        s2 = d.copy()
    else:
        msq = (dx**2).mean(axis=-2).mean(axis=-1)
        cov = (dx[..., 1:, :] * dx[..., :-1, :]).mean(axis=-2).mean(axis=-1)
        d = msq / 2.0 + cov
        s2 = R * msq + (2.0 * R - 1.0) * cov
    if np.ndim(d) == 0:
        d, s2 = float(d), float(s2)
    return (d, s2) if return_sigma2 else d


def noise_corrected_d(msq, cov, n_pairs, estimator: str, R: float):
    """D of groups of steps (segments or states) from their moments, noise removed.

    Parameters
    ----------
    msq, cov, n_pairs : ndarray (K,)
        Per group: mean squared step per axis, mean lag-1 step product per axis (NaN without a
        pair) and the number of such pairs.
    estimator : {"cve", "mle_denoised", "cve_pooled"}
        "cve": each group's own CVE (sigma^2 from ``R``); otherwise one localisation variance
        per track, precision-weighted over the groups ("mle_denoised": the no-blur form, never
        more biased than the MLE; "cve_pooled": with ``R``), then D = (msq/2 - sigma^2)/(1-2R).
    R : float
        Motion-blur coefficient.

    Returns
    -------
    d, sigma2 : ndarray (K,)
        D (may be <= 0 or NaN) and the localisation variance per group.
    """
    s2 = R * msq + (2.0 * R - 1.0) * cov
    if estimator == "cve":
        return np.where(np.isfinite(cov), msq / 2.0 + cov, msq / 2.0), s2  # no pair: the MLE
    if estimator == "mle_denoised":
        R, s2 = 0.0, -cov
    ok = np.isfinite(s2) & (n_pairs > 0) & (msq > 0)
    if ok.any():
        w = n_pairs[ok] / msq[ok] ** 2  # ~ 1 / var(cov estimate)
        pooled = max(float((w * s2[ok]).sum() / w.sum()), 0.0)
    else:
        pooled = 0.0
    return (msq / 2.0 - pooled) / (1.0 - 2.0 * R), np.full(len(msq), pooled)
