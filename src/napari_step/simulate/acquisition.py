"""Acquisition physics: motion blur, localisation noise and movie rendering.

A camera integrates a particle's position over the exposure and the localisation adds noise. With
exposure fraction f (0: instantaneous snapshot, 1: illuminated during the whole frame interval),
blur coefficient R = f / 6 and noise std sigma, a Brownian track's per-axis steps obey
(Berglund 2010)::

    <dx_n^2>          = 2 D dt (1 - 2 R) + 2 sigma^2
    <dx_n dx_(n+1)>   = 2 R D dt - sigma^2

Frame t is exposed during [t, t + f] (frames as time unit); the motion in force there is the
one of frame t in the forward convention (the value at frame t describes the motion t -> t+1).
Units are pixels and frames.
"""

from __future__ import annotations

import numpy as np

from ._common import RngLike, as_rng, check_dim
from .brownian import smooth_log_d_drift

__all__ = [
    "blur_coefficient",
    "blur_path",
    "brownian_acquired",
    "blur_steps",
    "localisation_sigma",
    "add_localisation_noise",
    "blend_frames",
    "render_movie",
]


def blur_coefficient(exposure: float | np.ndarray) -> float | np.ndarray:
    """Motion-blur coefficient of a uniform exposure.

    Parameters
    ----------
    exposure : float or array_like
        Exposure fraction f of the frame interval, in [0, 1].

    Returns
    -------
    float or ndarray
        R = f / 6 (0: snapshot, 1/6: exposed during the whole frame).
    """
    return np.asarray(exposure, float) / 6.0


def _per_track(value, n: int, name: str, lo: float = 0.0, hi: float = np.inf) -> np.ndarray:
    """``value`` (scalar or (n,)) as an (n,) float array inside [lo, hi]."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim > 1 or (arr.ndim == 1 and arr.size != n):
        raise ValueError(f"{name} must be a scalar or one value per track ({n}), got {arr.shape}")
    arr = np.broadcast_to(arr, (n,))
    if not np.all((arr >= lo) & (arr <= hi)):
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {arr.min()}..{arr.max()}")
    return arr


def blur_path(fine_positions: np.ndarray, n_sub: int, exposure: float | np.ndarray) -> np.ndarray:
    """Camera positions of paths simulated on a fine time grid: the average over the exposure.

    Parameters
    ----------
    fine_positions : ndarray, shape (N, T * n_sub + 1, dim)
        Positions (px) at times 0, 1/n_sub, ..., T (frames).
    n_sub : int
        Sub-steps per frame.
    exposure : float or array_like, shape (N,)
        Exposure fraction f of the frame interval in [0, 1], one value or one per track; frame t
        averages the path over [t, t + f] (trapezoidal rule, f rounded to a multiple of 1/n_sub).

    Returns
    -------
    ndarray, shape (N, T, dim)
        Blurred positions in px.
    """
    fine = np.asarray(fine_positions, dtype=float)
    if fine.ndim != 3 or n_sub < 1 or (fine.shape[1] - 1) % n_sub or fine.shape[1] < n_sub + 1:
        raise ValueError(
            f"fine_positions must be (N, T * n_sub + 1, dim) with T >= 1, got {fine.shape} "
            f"for n_sub={n_sub}"
        )
    n, length, _ = fine.shape
    n_frames = (length - 1) // n_sub
    m = np.rint(_per_track(exposure, n, "exposure", 0.0, 1.0) * n_sub).astype(int)[:, None]
    i0 = np.arange(n_frames)[None, :] * n_sub + np.zeros_like(m)  # (N, T)
    i1 = i0 + m
    csum = np.concatenate([np.zeros((n, 1, fine.shape[2])), np.cumsum(fine, axis=1)], axis=1)

    def take(a, idx):
        return np.take_along_axis(a, idx[..., None], axis=1)

    p0, p1 = take(fine, i0), take(fine, i1)
    total = take(csum, i1 + 1) - take(csum, i0) - 0.5 * (p0 + p1)
    return np.where(m[..., None] > 0, total / np.maximum(m, 1)[..., None], p0)


def brownian_acquired(
    d: np.ndarray,
    dim: int = 2,
    exposure: float | np.ndarray = 0.0,
    sigma: float | np.ndarray = 0.0,
    velocity: np.ndarray | None = None,
    rng: RngLike = None,
) -> np.ndarray:
    """Brownian tracks as a camera records them: motion blur and localisation noise, exactly.

    The underlying continuous path is Brownian with the per-frame D (forward convention: D[t]
    holds from frame t to t+1, so during frame t's exposure too). The exposure average is drawn
    exactly (jointly Gaussian with the path), without sub-steps.

    Parameters
    ----------
    d : array_like, shape (N, T)
        Per-frame diffusion coefficient, px^2/frame.
    dim : int
        Spatial dimension, 1, 2 or 3.
    exposure : float or array_like, shape (N,)
        Exposure fraction f in [0, 1] of the frame interval (blur coefficient R = f / 6).
    sigma : float or array_like, shape (N,) or (N, T)
        Localisation noise std per axis, px (see :func:`localisation_sigma`).
    velocity : array_like, shape (N, dim) or (N, T, dim), optional
        Drift velocity in px/frame (directed motion), forward convention.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray, shape (N, T, dim)
        Recorded positions in px; the true path starts at the origin.
    """
    rng = as_rng(rng)
    check_dim(dim)
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or (d < 0).any():
        raise ValueError(f"d must be a non-negative (N, T) array, got shape {d.shape}")
    n, t = d.shape
    f = _per_track(exposure, n, "exposure", 0.0, 1.0)[:, None, None]
    s = np.sqrt(2.0 * d)[..., None]
    start = s * np.sqrt(f) * rng.standard_normal((n, t, dim))  # x(t + f) - x(t)
    wobble = s * np.sqrt(f / 12.0) * rng.standard_normal((n, t, dim))  # average - start / 2
    rest = s * np.sqrt(1.0 - f) * rng.standard_normal((n, t, dim))  # x(t + 1) - x(t + f)
    step = start + rest
    offset = 0.5 * start + wobble
    if velocity is not None:
        v = np.asarray(velocity, dtype=float)
        v = np.broadcast_to(v[:, None, :] if v.ndim == 2 else v, (n, t, dim))
        step = step + v
        offset = offset + 0.5 * f * v
    path = np.concatenate([np.zeros((n, 1, dim)), np.cumsum(step[:, :-1], axis=1)], axis=1)
    return add_localisation_noise(path + offset, sigma, rng)


def blur_steps(
    path: np.ndarray, d: np.ndarray, exposure: float | np.ndarray, rng: RngLike = None
) -> np.ndarray:
    """Camera positions of a path known at whole frames only, blurred over the exposure.

    Frame t's recorded position is ``x(t) + Y`` with Y the exposure average of the motion from t
    to t+1 given its end points: for Brownian motion with diffusion coefficient D[t] (and any
    drift) Y is Gaussian with mean ``(f / 2) (x(t+1) - x(t))`` and variance
    ``D[t] f (2/3 - f/2)`` per axis, which is exact. For other motions (fBm with alpha != 1,
    reflections at walls) it is the Brownian approximation at the same D.

    Parameters
    ----------
    path : array_like, shape (N, T + 1, dim)
        True positions at frames 0..T in px (one frame more than recorded).
    d : array_like, shape (N, T)
        Per-frame diffusion coefficient in px^2/frame (forward convention).
    exposure : float or array_like, shape (N,)
        Exposure fraction f in [0, 1].
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray, shape (N, T, dim)
        Blurred positions in px (no localisation noise).
    """
    rng = as_rng(rng)
    path = np.asarray(path, dtype=float)
    d = np.asarray(d, dtype=float)
    if path.ndim != 3 or d.shape != (path.shape[0], path.shape[1] - 1):
        raise ValueError(f"path (N, T + 1, dim) and d (N, T) do not match: {path.shape}, {d.shape}")
    f = _per_track(exposure, len(path), "exposure", 0.0, 1.0)[:, None, None]
    step = np.diff(path, axis=1)
    spread = np.sqrt(np.maximum(d, 0.0)[..., None] * f * (2.0 / 3.0 - f / 2.0))
    return path[:, :-1] + 0.5 * f * step + spread * rng.standard_normal(step.shape)


def localisation_sigma(
    d: np.ndarray,
    sigma: float | np.ndarray | None = None,
    snr: float | np.ndarray | None = None,
    drift_decades: float = 0.0,
    rng: RngLike = None,
) -> np.ndarray:
    """Per-frame localisation noise std, absolute or relative to each track's D.

    Parameters
    ----------
    d : array_like, shape (N, T)
        Per-frame diffusion coefficient, px^2/frame (only its shape is used with ``sigma``).
    sigma : float or array_like, shape (N,), optional
        Noise std per axis in px, one value or one per track.
    snr : float or array_like, shape (N,), optional
        Noise relative to motion, sigma^2 / (D dt) with D the track's median per-frame D (so
        sigma scales with the track's D). Give exactly one of ``sigma`` and ``snr``.
    drift_decades : float
        If > 0, sigma^2 drifts smoothly along each track by up to this many decades in total
        (shapes of :func:`smooth_log_d_drift`, around the given level in log).
    rng : numpy.random.Generator, int or None
        Random generator or seed (for the drift).

    Returns
    -------
    ndarray, shape (N, T)
        Noise std per frame and axis, px.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim != 2:
        raise ValueError(f"d must be an (N, T) array, got shape {d.shape}")
    n, t = d.shape
    if (sigma is None) == (snr is None):
        raise ValueError("give exactly one of sigma (px) and snr (sigma^2 / (D dt))")
    if sigma is not None:
        level = _per_track(sigma, n, "sigma")
    else:
        level = np.sqrt(_per_track(snr, n, "snr") * np.median(d, axis=1))
    out = np.repeat(level[:, None], t, axis=1)
    if drift_decades > 0:
        out = out * 10 ** (0.5 * smooth_log_d_drift(n, t, drift_decades, rng))
    return out


def add_localisation_noise(positions: np.ndarray, sigma, rng: RngLike = None) -> np.ndarray:
    """A copy of ``positions`` with Gaussian localisation noise.

    Parameters
    ----------
    positions : array_like, shape (N, T, dim)
        Positions in px.
    sigma : float or array_like
        Noise std per axis in px; a scalar or broadcastable to positions' leading axes (one value
        per track (N,) or per frame (N, T)).
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray
        Noisy positions, same shape.
    """
    rng = as_rng(rng)
    positions = np.asarray(positions, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if sigma.ndim and sigma.ndim < positions.ndim:
        sigma = sigma.reshape(sigma.shape + (1,) * (positions.ndim - sigma.ndim))
    return positions + rng.standard_normal(positions.shape) * sigma


def blend_frames(positions: np.ndarray, weights) -> np.ndarray:
    """Positions of a movie whose frames mix in earlier frames (frame blending).

    Video codecs, deinterlacing, frame-rate conversion and temporal denoising make each stored
    frame a weighted mean of the recorded frame and the ones before it, so the displacements are
    correlated over more than one frame (a blur longer than the frame interval). Per track,
    frame t becomes ``(x[t] + w1 x[t-1] + w2 x[t-2] + ...) / (1 + w1 + w2 + ...)``; the first
    frames use the first frame for the missing ones.

    Parameters
    ----------
    positions : array_like, shape (N, T, dim)
    weights : array_like, shape (N, K)
        Non-negative weight of the frame k + 1 back, per track.

    Returns
    -------
    ndarray, shape (N, T, dim)
    """
    x = np.asarray(positions, dtype=float)
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or len(w) != len(x) or (w < 0).any():
        raise ValueError(f"weights must be a non-negative (N, K) array, got shape {w.shape}")
    out = x.copy()
    for k in range(w.shape[1]):
        back = np.concatenate([np.repeat(x[:, :1], k + 1, axis=1), x[:, : -k - 1]], axis=1)
        out += w[:, k, None, None] * back
    return out / (1.0 + w.sum(axis=1))[:, None, None]


def _pixel_gaussian(centres: np.ndarray, n_pix: int, psf_sigma: float) -> np.ndarray:
    """(N, n_pix) fraction of a 1-D Gaussian's mass falling in each pixel."""
    from scipy.special import erf

    edges = np.arange(n_pix + 1) - 0.5
    z = (edges[None, :] - centres[:, None]) / (np.sqrt(2.0) * psf_sigma)
    return 0.5 * np.diff(erf(z), axis=1)


def render_movie(
    positions: np.ndarray,
    shape: tuple[int, int] = (256, 256),
    psf_sigma: float = 1.5,
    photons: float = 2000.0,
    background: float = 100.0,
    rng: RngLike = None,
) -> np.ndarray:
    """Render tracks as a fluorescence movie with shot noise.

    Parameters
    ----------
    positions : array_like, shape (N, T, 2)
        Positions in (y, x) px; NaN marks a particle absent from that frame.
    shape : (int, int)
        Image size (Y, X) in px.
    psf_sigma : float
        Standard deviation of the pixel-integrated Gaussian PSF, px.
    photons : float
        Photons per particle per frame.
    background : float
        Flat background, photons per pixel.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    ndarray of uint16, shape (T, Y, X)
        Poisson-distributed photon counts.
    """
    rng = as_rng(rng)
    positions = np.asarray(positions, dtype=float)
    if positions.ndim != 3 or positions.shape[2] != 2:
        raise ValueError(f"positions must be (N, T, 2) in (y, x), got {positions.shape}")
    n_frames = positions.shape[1]
    movie = np.empty((n_frames,) + tuple(shape), dtype=np.uint16)
    for t in range(n_frames):
        p = positions[:, t]
        p = p[np.isfinite(p).all(axis=1)]
        gy = _pixel_gaussian(p[:, 0], shape[0], psf_sigma)
        gx = _pixel_gaussian(p[:, 1], shape[1], psf_sigma)
        expected = background + photons * (gy.T @ gx)
        movie[t] = np.clip(rng.poisson(expected), 0, np.iinfo(np.uint16).max)
    return movie
