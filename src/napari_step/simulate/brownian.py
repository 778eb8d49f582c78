"""Brownian tracks with a known per-frame diffusion coefficient: jumps, smooth drifts, SBM.

Units are pixels and frames: a track with diffusion coefficient D makes steps of variance
``2 D`` per axis per frame. Per-frame convention (forward, as andi-datasets and the STEP
reference): ``d[:, t]`` is the coefficient of the motion from frame t to t+1; the last frame
repeats the one before it; a change point ``c`` means frame c is the first frame of the new
segment (the step c -> c+1 has the new D).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import (
    RngLike,
    as_rng,
    changepoint_frames,
    changepoint_range,
    check_dim,
    segment_index,
)

__all__ = [
    "BrownianChangepoints",
    "brownian_changepoints",
    "scaled_brownian",
    "smooth_log_d_drift",
    "brownian_from_d",
]


def integrate_d(d: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (N, T, dim) starting at 0 from per-frame D (N, T), forward convention."""
    n, t = d.shape
    steps = rng.standard_normal((n, max(t - 1, 0), dim)) * np.sqrt(2.0 * d[:, :-1])[..., None]
    return np.concatenate([np.zeros((n, min(t, 1), dim)), np.cumsum(steps, axis=1)], axis=1)


@dataclass
class BrownianChangepoints:
    """Result of :func:`brownian_changepoints`.

    Attributes
    ----------
    positions : ndarray, shape (N, T, dim)
        Positions in px, starting at the origin.
    d : ndarray, shape (N, T)
        Per-frame diffusion coefficient in px^2/frame (forward convention).
    changepoints : list of ndarray
        Per track, the frames where a new segment starts.
    """

    positions: np.ndarray
    d: np.ndarray
    changepoints: list


def _log_d_segments(n: int, k: int, log_lo: float, log_hi: float, min_log_diff: float, rng):
    """(n, k + 1) log10 D per segment; consecutive segments differ by >= min_log_diff decades."""
    logd = rng.uniform(log_lo, log_hi, size=(n, k + 1))
    for j in range(1, k + 1):  # redraw segments too close to their predecessor
        bad = np.abs(logd[:, j] - logd[:, j - 1]) < max(min_log_diff, 1e-12)
        while bad.any():
            logd[bad, j] = rng.uniform(log_lo, log_hi, size=bad.sum())
            bad = np.abs(logd[:, j] - logd[:, j - 1]) < max(min_log_diff, 1e-12)
    return logd


def brownian_changepoints(
    n_tracks: int,
    n_frames: int = 200,
    dim: int = 2,
    n_changepoints: int | tuple[int, int] = (1, 4),
    min_segment: int = 10,
    d_range: tuple[float, float] = (1e-3, 1e3),
    min_log_diff: float = 0.0,
    rng: RngLike = None,
) -> BrownianChangepoints:
    """Brownian tracks whose D jumps at random change points (the STEP training distribution).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    dim : int
        Spatial dimension, 1, 2 or 3.
    n_changepoints : int or (int, int)
        Number of change points, or an inclusive range split as evenly as possible over tracks.
    min_segment : int
        Minimum segment length in frames (>= 2), first and last segments included.
    d_range : (float, float)
        D per segment is log-uniform in this range, px^2/frame.
    min_log_diff : float
        Consecutive segments differ by at least this many decades of D.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    BrownianChangepoints
        Positions (px), per-frame D (px^2/frame, forward convention) and change points.
    """
    rng = as_rng(rng)
    check_dim(dim)
    ks = changepoint_range(n_changepoints)
    k_of_track = ks[np.arange(n_tracks) % len(ks)]
    log_lo, log_hi = np.log10(d_range[0]), np.log10(d_range[1])
    if min_log_diff * 2 > (log_hi - log_lo):
        raise ValueError("min_log_diff is too large for d_range")
    d = np.empty((n_tracks, n_frames))
    cps: list = [None] * n_tracks
    for k in ks:
        idx = np.flatnonzero(k_of_track == k)
        if idx.size == 0:
            continue
        frames = changepoint_frames(idx.size, n_frames, int(k), min_segment, rng)
        logd = _log_d_segments(idx.size, int(k), log_lo, log_hi, min_log_diff, rng)
        d[idx] = 10.0 ** np.take_along_axis(logd, segment_index(frames, n_frames), axis=1)
        for row, i in enumerate(idx):
            cps[i] = frames[row]
    return BrownianChangepoints(integrate_d(d, dim, rng), d, cps)


def smooth_log_d_drift(
    n_tracks: int, n_frames: int, max_decades: float = 2.0, rng: RngLike = None
) -> np.ndarray:
    """Smooth per-frame changes of log10 D (N, T), zero-mean per track.

    Real D does not only jump: it drifts (ageing, SBM's D ~ t^(alpha-1)) or changes gradually.
    Each track gets one of three shapes, in equal shares: a power law in time
    ``beta log10(t + t0)`` (beta in [-1, 1], t0 log-uniform in [0.5, T], randomly time-reversed),
    a linear ramp, or a logistic transition 3..60 frames wide at a random frame.

    Parameters
    ----------
    n_tracks, n_frames : int
        Output shape.
    max_decades : float
        Largest total change along a track, decades (>= 0).
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray, shape (N, T)
        Added log10 D per frame (decades), mean 0 per track.
    """
    if not max_decades >= 0:
        raise ValueError(f"max_decades must be >= 0, not {max_decades}")
    rng = as_rng(rng)
    t = np.arange(n_frames, dtype=float)[None, :]
    kind = rng.integers(0, 3, size=n_tracks)[:, None]
    beta = rng.uniform(-1.0, 1.0, size=(n_tracks, 1))
    t0 = 10 ** rng.uniform(np.log10(0.5), np.log10(max(n_frames, 1)), size=(n_tracks, 1))
    power = beta * np.log10(t + t0)
    reverse = rng.uniform(size=(n_tracks, 1)) < 0.5
    power = np.where(reverse, power[:, ::-1], power)
    amp = rng.uniform(-max_decades, max_decades, size=(n_tracks, 1))
    ramp = amp * t / max(n_frames - 1, 1)
    centre = rng.uniform(0, n_frames, size=(n_tracks, 1))
    width = rng.uniform(3, 60, size=(n_tracks, 1)) / 4.4  # 10-90 % rise over the drawn width
    logistic = amp / (1 + np.exp(-(t - centre) / width))
    drift = np.where(kind == 0, power, np.where(kind == 1, ramp, logistic))
    span = drift.max(1, keepdims=True) - drift.min(1, keepdims=True)
    drift = drift * np.minimum(1.0, max_decades / np.maximum(span, 1e-12))
    return drift - drift.mean(1, keepdims=True)


def brownian_from_d(d: np.ndarray, dim: int = 2, rng: RngLike = None) -> np.ndarray:
    """Brownian tracks with a given per-frame diffusion coefficient.

    Parameters
    ----------
    d : array_like, shape (N, T)
        Per-frame D in px^2/frame, forward convention: the step from frame t to t+1 has variance
        ``2 d[:, t]`` per axis; ``d[:, -1]`` is not used.
    dim : int
        Spatial dimension, 1, 2 or 3.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray, shape (N, T, dim)
        Positions in px, starting at the origin.
    """
    check_dim(dim)
    d = np.asarray(d, float)
    if d.ndim != 2 or (d < 0).any():
        raise ValueError(f"d must be a non-negative (N, T) array, got shape {d.shape}")
    return integrate_d(d, dim, as_rng(rng))


def scaled_brownian(
    n_tracks: int,
    n_frames: int = 200,
    alpha: float | np.ndarray = 1.0,
    dim: int = 2,
    k: float = 1.0,
    rng: RngLike = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Scaled Brownian motion: MSD = 2 dim K t^alpha, so D(t) = K ((t+1)^alpha - t^alpha).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    alpha : float or array_like, shape (N,)
        Anomalous exponent, one value or one per track.
    dim : int
        Spatial dimension, 1, 2 or 3.
    k : float
        Generalised diffusion coefficient K, px^2/frame^alpha.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    positions : ndarray, shape (N, T, dim)
        Positions in px, starting at the origin.
    d : ndarray, shape (N, T)
        Per-frame D in px^2/frame (forward: the step t -> t+1; the last frame repeats).
    """
    rng = as_rng(rng)
    check_dim(dim)
    alpha = np.broadcast_to(np.asarray(alpha, float), (n_tracks,))[:, None]
    t = np.arange(max(n_frames - 1, 1), dtype=float)[None, :]
    inc = k * ((t + 1) ** alpha - t**alpha)
    d = np.concatenate([inc, inc[:, -1:]], axis=1)[:, :n_frames]
    return integrate_d(d, dim, rng), d
