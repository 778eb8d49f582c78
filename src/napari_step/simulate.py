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
