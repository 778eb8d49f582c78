"""Simulators for single-particle tracks with a known per-frame diffusion coefficient.

Everything is vectorised over tracks and seeded through ``numpy.random.Generator`` so that
training data, tests and benchmarks are reproducible. Units are pixels and frames: a track with
diffusion coefficient D makes steps of variance ``2 * D`` per axis per frame.

Convention for per-frame D: ``d[:, t]`` is the coefficient of the step that arrives at frame t
(from t-1 to t); frame 0 carries the coefficient of the first step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "BrownianChangepoints",
    "brownian_changepoints",
    "scaled_brownian",
    "smooth_log_d_drift",
    "brownian_from_d",
    "attm",
    "add_localisation_noise",
    "render_movie",
]


def _rng(rng) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _integrate(d: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Positions (N, T, dim) starting at 0 from per-frame D (N, T)."""
    n, t = d.shape
    steps = rng.standard_normal((n, t, dim)) * np.sqrt(2.0 * d)[..., None]
    steps[:, 0] = 0.0
    return np.cumsum(steps, axis=1)


@dataclass
class BrownianChangepoints:
    """Result of :func:`brownian_changepoints`."""

    positions: np.ndarray  # (N, T, dim) px
    d: np.ndarray  # (N, T) px^2/frame, per frame
    changepoints: list  # per track: int array of frames where a new segment starts


def _changepoint_frames(n: int, t: int, k: int, min_seg: int, rng) -> np.ndarray:
    """(n, k) sorted change-point frames with every segment (incl. first/last) >= min_seg."""
    slack = t - (k + 1) * min_seg
    if slack < 0:
        raise ValueError(
            f"{k} change points with minimum segment {min_seg} do not fit in {t} frames"
        )
    base = np.sort(rng.integers(0, slack + 1, size=(n, k)), axis=1)
    return base + min_seg * np.arange(1, k + 1)


def brownian_changepoints(
    n_tracks: int,
    n_frames: int = 200,
    dim: int = 2,
    n_changepoints=(1, 4),
    min_segment: int = 10,
    d_range=(1e-3, 1e3),
    min_log_diff: float = 0.0,
    rng=None,
) -> BrownianChangepoints:
    """Brownian tracks whose D jumps at random change points (the STEP training distribution).

    ``n_changepoints`` is an int or an inclusive (low, high) range; tracks are split as evenly as
    possible over the values of the range. D per segment is log-uniform in ``d_range`` and
    consecutive segments differ by at least ``min_log_diff`` decades.
    """
    rng = _rng(rng)
    if dim not in (1, 2, 3):
        raise ValueError(f"dim must be 1, 2 or 3, not {dim}")
    lo, hi = (n_changepoints, n_changepoints) if np.isscalar(n_changepoints) else n_changepoints
    ks = np.arange(lo, hi + 1)
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
        frames = _changepoint_frames(idx.size, n_frames, int(k), min_segment, rng)
        logd = rng.uniform(log_lo, log_hi, size=(idx.size, k + 1))
        for j in range(1, k + 1):  # redraw segments too close to their predecessor
            bad = np.abs(logd[:, j] - logd[:, j - 1]) < max(min_log_diff, 1e-12)
            while bad.any():
                logd[bad, j] = rng.uniform(log_lo, log_hi, size=bad.sum())
                bad = np.abs(logd[:, j] - logd[:, j - 1]) < max(min_log_diff, 1e-12)
        seg = (np.arange(n_frames)[None, :, None] >= frames[:, None, :]).sum(-1)  # (n, T)
        d[idx] = 10.0 ** np.take_along_axis(logd, seg, axis=1)
        for row, i in enumerate(idx):
            cps[i] = frames[row]
    return BrownianChangepoints(_integrate(d, dim, rng), d, cps)


def smooth_log_d_drift(n_tracks: int, n_frames: int, max_decades: float = 2.0, rng=None):
    """Smooth per-frame changes of log10 D (N, T), zero-mean per track.

    Real D does not only jump: it drifts (ageing, SBM's D ~ t^(alpha-1)) or changes gradually.
    Each track gets one of three shapes, in equal shares: a power law in time
    ``beta log10(t + t0)`` (beta in [-1, 1], t0 log-uniform in [0.5, T], randomly time-reversed),
    a linear ramp, or a logistic transition 3..60 frames wide at a random frame. Total change is
    at most ``max_decades``.
    """
    if not max_decades >= 0:
        raise ValueError(f"max_decades must be >= 0, not {max_decades}")
    rng = _rng(rng)
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


def brownian_from_d(d: np.ndarray, dim: int = 2, rng=None) -> np.ndarray:
    """Positions (N, T, dim) of Brownian tracks with the given per-frame D (N, T), px^2/frame.

    Frame t's step (from t-1 to t) has variance 2 D[t] per axis; D[0] is unused.
    """
    return _integrate(np.asarray(d, float), dim, _rng(rng))


def scaled_brownian(
    n_tracks: int, n_frames: int = 200, alpha=1.0, dim: int = 2, k: float = 1.0, rng=None
):
    """Scaled Brownian motion: MSD = 2 dim K t^alpha, so D(t) = K (t^alpha - (t-1)^alpha).

    ``alpha`` is a scalar or one value per track. Returns (positions (N, T, dim), d (N, T)).
    """
    rng = _rng(rng)
    alpha = np.broadcast_to(np.asarray(alpha, float), (n_tracks,))[:, None]
    t = np.arange(1, n_frames, dtype=float)[None, :]
    inc = k * (t**alpha - (t - 1) ** alpha)
    d = np.concatenate([inc[:, :1], inc], axis=1)
    return _integrate(d, dim, rng), d


def attm(
    n_tracks: int,
    n_frames: int = 200,
    sigma: float = 0.5,
    gamma: float = 1.0,
    dim: int = 2,
    d_max: float = 1.0,
    rng=None,
):
    """Annealed transit time model: Brownian motion whose D jumps at random times.

    Each episode draws D with density ~ D^(sigma-1) on (0, d_max] and lasts
    tau = ceil((D/d_max)^(-gamma)) frames, so slow episodes last long (anomalous exponent
    sigma/gamma when sigma < gamma). Returns (positions, d (N, T), jump_frames per track).
    """
    rng = _rng(rng)
    d = np.empty((n_tracks, n_frames))
    filled = np.zeros(n_tracks, dtype=int)
    jumps: list = [[] for _ in range(n_tracks)]
    while (filled < n_frames).any():
        active = np.flatnonzero(filled < n_frames)
        u = rng.uniform(size=active.size)
        u = np.where(u <= 0, 1e-12, u)
        dval = d_max * u ** (1.0 / sigma)
        tau = np.minimum(np.ceil((dval / d_max) ** (-gamma)), n_frames).astype(int)
        for i, start, length, dv in zip(active, filled[active], tau, dval):
            d[i, start : start + length] = dv
            if start > 0:
                jumps[i].append(start)
        filled[active] += tau
    return _integrate(d, dim, rng), d, [np.asarray(j, dtype=int) for j in jumps]


def add_localisation_noise(positions: np.ndarray, sigma, rng=None) -> np.ndarray:
    """Return a copy of ``positions`` with Gaussian localisation noise of std ``sigma`` (px).

    ``sigma`` is a scalar or broadcastable to positions' leading axes (e.g. one value per track).
    """
    rng = _rng(rng)
    positions = np.asarray(positions, dtype=float)
    sigma = np.asarray(sigma, dtype=float)
    if sigma.ndim and sigma.ndim < positions.ndim:
        sigma = sigma.reshape(sigma.shape + (1,) * (positions.ndim - sigma.ndim))
    return positions + rng.standard_normal(positions.shape) * sigma


def _pixel_gaussian(centres: np.ndarray, n_pix: int, psf_sigma: float) -> np.ndarray:
    """(N, n_pix) fraction of a 1-D Gaussian's mass falling in each pixel."""
    from scipy.special import erf

    edges = np.arange(n_pix + 1) - 0.5
    z = (edges[None, :] - centres[:, None]) / (np.sqrt(2.0) * psf_sigma)
    return 0.5 * np.diff(erf(z), axis=1)


def render_movie(
    positions: np.ndarray,
    shape=(256, 256),
    psf_sigma: float = 1.5,
    photons: float = 2000.0,
    background: float = 100.0,
    rng=None,
) -> np.ndarray:
    """Render tracks (N, T, 2) in (y, x) pixels as a (T, Y, X) uint16 fluorescence movie.

    Each particle emits ``photons`` per frame spread by a pixel-integrated Gaussian PSF on a flat
    ``background`` (photons per pixel); the image is Poisson (shot) noise on top of that. NaN
    positions are particles absent from that frame.
    """
    rng = _rng(rng)
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
