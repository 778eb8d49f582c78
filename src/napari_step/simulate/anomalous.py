"""Anomalous-diffusion simulators with a per-frame ground-truth exponent alpha (AnDi-1 models).

The five models of the AnDi challenge (Muñoz-Gil et al., Nat. Commun. 2021), written here in
vectorised numpy (no andi-datasets dependency), each with ensemble MSD ~ t^alpha:

* ``attm`` (alpha in (0.05, 1)): annealed transit time motion, Brownian motion whose D jumps;
  slow episodes last long (:func:`attm`, gamma uniform in (1, 2) and sigma = alpha gamma per
  track).
* ``ctrw`` (alpha in (0.05, 1)): continuous-time random walk, Gaussian jumps after power-law
  waiting times psi(tau) ~ tau^-(1+alpha), tau >= 1 frame.
* ``fbm`` (alpha in (0.05, 1.95)): fractional Brownian motion, exact Gaussian increments with Hurst
  exponent H = alpha/2 (circulant embedding, Davies-Harte).
* ``lw`` (alpha in (1.05, 2)): Lévy walk, constant-speed flights of power-law durations
  psi(tau) ~ tau^-(1+sigma), tau >= 1 frame, sigma = 3 - alpha.
* ``sbm`` (alpha in (0.05, 2)): scaled Brownian motion, D(t) ~ t^(alpha-1)
  (:func:`napari_step.simulate.scaled_brownian`).

The ranges are those :func:`anomalous_changepoints` draws from (``ALPHA_RANGES``). CTRW, ATTM
and Lévy-walk ensemble MSD exponents approach alpha only at long times (finite-time corrections
of about 0.1-0.2 over 200 frames); FBM and SBM are exact at all times.

:func:`anomalous_changepoints` stitches segments of these models into tracks whose model and
alpha change at random change points: the training and test distribution of STEP's alpha model
(Requena et al., arXiv 2302.00410).

Units and scales: each model is simulated at its natural unit scale (FBM: per-axis MSD t^alpha;
CTRW: unit per-axis jump std; Lévy walk: speed sqrt(dim) px/frame; ATTM: D <= 0.5 px^2/frame; SBM:
mean per-axis step variance 1 over the segment), so every model has O(1) steps; alpha is
scale-free. Per-frame convention (forward, as andi-datasets): ``alpha[:, t]`` is the exponent of
the motion from frame t to t+1, the last frame repeats the one before it, and a change point ``c``
means frame c is the first frame of the new segment (the step c -> c+1 is the new model's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import (
    as_rng,
    changepoint_frames,
    changepoint_range,
    check_dim,
    repeat_last,
)
from ._increments import fgn as _fgn
from ._increments import unit_vectors as _unit_vectors
from .brownian import integrate_d, scaled_brownian

__all__ = [
    "MODELS",
    "ALPHA_RANGES",
    "AnomalousChangepoints",
    "anomalous_changepoints",
    "simulate_model",
    "attm",
    "fbm",
    "ctrw",
    "levy_walk",
]


def attm(
    n_tracks: int,
    n_frames: int = 200,
    sigma: float = 0.5,
    gamma: float = 1.0,
    dim: int = 2,
    d_max: float = 1.0,
    rng=None,
) -> tuple[np.ndarray, np.ndarray, list]:
    """Annealed transit time model: Brownian motion whose D jumps at random times.

    Each episode draws D with density ~ D^(sigma-1) on (0, d_max] and lasts
    tau = ceil((D/d_max)^(-gamma)) frames, so slow episodes last long (anomalous exponent
    sigma/gamma when sigma < gamma).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    sigma, gamma : float
        Exponents of the D density and of the episode duration.
    dim : int
        Spatial dimension, 1, 2 or 3.
    d_max : float
        Largest D, px^2/frame.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    positions : ndarray, shape (N, T, dim)
        Positions in px, starting at the origin.
    d : ndarray, shape (N, T)
        Per-frame D in px^2/frame (forward convention).
    jumps : list of ndarray
        Per track, the first frames of every episode but the first.
    """
    rng = as_rng(rng)
    check_dim(dim)
    n_steps = max(n_frames - 1, 1)
    d = np.empty((n_tracks, n_steps))
    filled = np.zeros(n_tracks, dtype=int)
    jumps: list = [[] for _ in range(n_tracks)]
    while (filled < n_steps).any():
        active = np.flatnonzero(filled < n_steps)
        u = rng.uniform(size=active.size)
        u = np.where(u <= 0, 1e-12, u)
        dval = d_max * u ** (1.0 / sigma)
        tau = np.minimum(np.ceil((dval / d_max) ** (-gamma)), n_steps).astype(int)
        for i, start, length, dv in zip(active, filled[active], tau, dval):
            d[i, start : start + length] = dv
            if start > 0:
                jumps[i].append(start)
        filled[active] += tau
    d = repeat_last(np.concatenate([d, d[:, -1:]], axis=1)[:, :n_frames])
    return integrate_d(d, dim, rng), d, [np.asarray(j, dtype=int) for j in jumps]


MODELS = ("attm", "ctrw", "fbm", "lw", "sbm")  # per-frame model codes index this tuple
ALPHA_RANGES = {
    "attm": (0.05, 1.0),
    "ctrw": (0.05, 1.0),
    "fbm": (0.05, 1.95),
    "lw": (1.05, 2.0),
    "sbm": (0.05, 2.0),
}
ATTM_D_MAX = 0.5  # px^2/frame: the fastest ATTM episodes make per-axis steps of variance 1
ATTM_GAMMA_RANGE = (1.0, 2.0)  # gamma uniform here, sigma = alpha * gamma


_VALID = {  # (low, high, high inclusive): where each model's law is defined
    "attm": (0.0, 1.0, True),
    "ctrw": (0.0, 1.0, True),
    "fbm": (0.0, 2.0, False),
    "lw": (1.0, 2.0, True),
    "sbm": (0.0, np.inf, False),
}


def _alpha_array(alpha, n: int, model: str) -> np.ndarray:
    a = np.broadcast_to(np.asarray(alpha, dtype=float), (n,)).copy()
    lo, hi, closed = _VALID[model]
    ok = (a > lo) & ((a <= hi) if closed else (a < hi))
    if not ok.all():
        bracket = "]" if closed else ")"
        raise ValueError(
            f"alpha {a[~ok][0]} is outside the valid range of {model}: ({lo}, {hi}{bracket}"
        )
    return a


# ------------------------------------------------------------------------------------------------
# increments of one model: (n, n_steps, dim); increment k is X(k + 1) - X(k), X(0) = 0
# ------------------------------------------------------------------------------------------------


def _renewal_frames(tau: np.ndarray, n_steps: int):
    """Event times = cumsum(tau) per row (tau >= 1); returns (event times, increment index of
    each event (the event at time s falls in increment ceil(s) - 1), mask of events inside)."""
    with np.errstate(over="ignore", invalid="ignore"):
        times = np.cumsum(tau, axis=1)
        inside = times <= n_steps
        idx = np.where(inside, np.ceil(np.where(inside, times, 0)) - 1, -1).astype(int)
    return times, idx, inside


def _ctrw_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """Gaussian jumps (unit std per axis) after Pareto(alpha) waiting times (>= 1 frame)."""
    n = alpha.size
    inc = np.zeros((n, n_steps, dim))
    if n_steps == 0 or n == 0:
        return inc
    u = 1.0 - rng.uniform(size=(n, n_steps + 1))  # (0, 1]
    with np.errstate(over="ignore"):
        tau = u ** (-1.0 / alpha[:, None])
    _, idx, inside = _renewal_frames(tau, n_steps)
    rows = np.broadcast_to(np.arange(n)[:, None], idx.shape)[inside]
    np.add.at(inc, (rows, idx[inside]), rng.standard_normal((rows.size, dim)))
    return inc


def _levy_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """Lévy walk: flights of Pareto(3 - alpha) durations (>= 1 frame) at speed sqrt(dim) in
    uniformly random directions, observed at integer times."""
    n = alpha.size
    if n_steps == 0 or n == 0:
        return np.zeros((n, n_steps, dim))
    k = n_steps + 1  # flights last >= 1 frame, so k of them outlast the segment
    u = 1.0 - rng.uniform(size=(n, k))
    with np.errstate(over="ignore"):
        tau = u ** (-1.0 / (3.0 - alpha[:, None]))
    tau = np.minimum(tau, 2.0 * k)  # only the part inside the segment matters
    ends = np.cumsum(tau, axis=1)
    starts = ends - tau
    vel = _unit_vectors((n, k), dim, rng) * np.sqrt(dim)  # (n, k, dim)
    start_pos = np.cumsum(vel * tau[..., None], axis=1) - vel * tau[..., None]
    # flight in progress at time t = number of flights that ended at or before t
    counts = np.zeros((n, n_steps + 2), dtype=int)
    end_frame = np.minimum(np.ceil(ends), n_steps + 1).astype(int)  # ends <= t <=> ceil <= t
    np.add.at(counts, (np.broadcast_to(np.arange(n)[:, None], end_frame.shape), end_frame), 1)
    j = np.cumsum(counts, axis=1)[:, 1 : n_steps + 1]  # (n, n_steps) for t = 1..n_steps
    t = np.arange(1, n_steps + 1, dtype=float)[None, :]
    s = np.take_along_axis(starts, j, axis=1)
    pos = (
        np.take_along_axis(start_pos, j[..., None], axis=1)
        + np.take_along_axis(vel, j[..., None], axis=1) * (t - s)[..., None]
    )
    return np.diff(pos, axis=1, prepend=np.zeros((n, 1, dim)))


def _attm_inc(alpha: np.ndarray, n_steps: int, dim: int, rng, gamma_range=ATTM_GAMMA_RANGE):
    """ATTM via :func:`attm` (one call per track: its sigma and gamma differ)."""
    n = alpha.size
    inc = np.empty((n, n_steps, dim))
    gammas = rng.uniform(*gamma_range, size=n)
    for i in range(n):
        pos, _, _ = attm(1, n_steps + 1, alpha[i] * gammas[i], gammas[i], dim, ATTM_D_MAX, rng)
        inc[i] = np.diff(pos[0], axis=0)
    return inc


def _sbm_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """SBM with per-axis MSD t^alpha (:func:`scaled_brownian` with K = 1/2)."""
    pos, _ = scaled_brownian(alpha.size, n_steps + 1, alpha, dim, k=0.5, rng=rng)
    return np.diff(pos, axis=1)


_INCREMENTS = {"attm": _attm_inc, "ctrw": _ctrw_inc, "fbm": _fgn, "lw": _levy_inc, "sbm": _sbm_inc}


def _sbm_scale(alpha, n_steps):
    """Factor making an SBM segment's mean per-axis step variance 1 (MSD(n) = n, not n^alpha)."""
    return np.sqrt(np.maximum(n_steps, 1) ** (1.0 - np.asarray(alpha, float)))


def _increments(model: str, alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    if model not in _INCREMENTS:
        raise ValueError(f"unknown model {model!r}: use one of {list(MODELS)}")
    return _INCREMENTS[model](alpha, n_steps, dim, rng)


def simulate_model(
    model: str, n_tracks: int, n_frames: int = 200, alpha=1.0, dim: int = 2, rng=None
) -> np.ndarray:
    """Positions (N, T, dim) starting at the origin of one AnDi ``model`` at exponent ``alpha``
    (a scalar or one value per track), at the model's unit scale (module docstring)."""
    rng = as_rng(rng)
    check_dim(dim)
    if model not in _INCREMENTS:
        raise ValueError(f"unknown model {model!r}: use one of {list(MODELS)}")
    a = _alpha_array(alpha, n_tracks, model)
    inc = _increments(model, a, n_frames - 1, dim, rng)
    if model == "sbm":
        inc = inc * _sbm_scale(a, n_frames - 1)[:, None, None]
    return np.concatenate([np.zeros((n_tracks, 1, dim)), np.cumsum(inc, axis=1)], axis=1)


def fbm(n_tracks: int, n_frames: int = 200, alpha=1.0, dim: int = 2, rng=None) -> np.ndarray:
    """Fractional Brownian motion, per-axis MSD exactly t^alpha, alpha in (0, 2): (N, T, dim)."""
    return simulate_model("fbm", n_tracks, n_frames, alpha, dim, rng)


def ctrw(n_tracks: int, n_frames: int = 200, alpha=0.5, dim: int = 2, rng=None) -> np.ndarray:
    """Continuous-time random walk, alpha in (0, 1]: (N, T, dim), unit per-axis jumps."""
    return simulate_model("ctrw", n_tracks, n_frames, alpha, dim, rng)


def levy_walk(n_tracks: int, n_frames: int = 200, alpha=1.5, dim: int = 2, rng=None) -> np.ndarray:
    """Lévy walk, alpha in (1, 2]: (N, T, dim), speed sqrt(dim) px/frame."""
    return simulate_model("lw", n_tracks, n_frames, alpha, dim, rng)


# ------------------------------------------------------------------------------------------------
# tracks with change points
# ------------------------------------------------------------------------------------------------


@dataclass
class AnomalousChangepoints:
    """Result of :func:`anomalous_changepoints`.

    Attributes
    ----------
    positions : ndarray, shape (N, T, dim)
        Positions (typical step O(1) px), starting at the origin.
    alpha : ndarray, shape (N, T)
        Per-frame anomalous exponent (forward convention).
    model : ndarray of int, shape (N, T)
        Per-frame model code, an index into ``MODELS``.
    changepoints : list of ndarray
        Per track, the frames where a new segment starts.
    """

    positions: np.ndarray
    alpha: np.ndarray
    model: np.ndarray
    changepoints: list

    @property
    def model_names(self) -> tuple:
        return MODELS


@dataclass
class _Segments:
    """Segments of all tracks, flattened in track order (frames [start, stop) of track)."""

    track: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    changepoints: list


def _draw_segments(n_tracks, n_frames, ks, min_segment, rng) -> _Segments:
    k_of_track = ks[np.arange(n_tracks) % len(ks)]
    cps: list = [None] * n_tracks
    track, start, stop = [], [], []
    for k in ks:
        idx = np.flatnonzero(k_of_track == k)
        if idx.size == 0:
            continue
        frames = changepoint_frames(idx.size, n_frames, int(k), min_segment, rng)
        track.append(np.repeat(idx, k + 1))
        start.append(np.concatenate([np.zeros((idx.size, 1), int), frames], axis=1).ravel())
        stop.append(np.concatenate([frames, np.full((idx.size, 1), n_frames)], axis=1).ravel())
        for row, i in enumerate(idx):
            cps[i] = frames[row]
    track = np.concatenate(track)
    order = np.argsort(track, kind="stable")
    return _Segments(track[order], np.concatenate(start)[order], np.concatenate(stop)[order], cps)


def _draw_models(segs: _Segments, models, ranges, min_alpha_diff, rng):
    """(model code, alpha) per segment; consecutive segments differ by >= min_alpha_diff."""
    codes = np.array([MODELS.index(m) for m in models])
    lo_a = np.array([ranges[m][0] for m in MODELS])
    hi_a = np.array([ranges[m][1] for m in MODELS])
    n_seg = segs.track.size
    seg_model = codes[rng.integers(len(codes), size=n_seg)]
    seg_alpha = rng.uniform(lo_a[seg_model], hi_a[seg_model])
    if min_alpha_diff <= 0:
        return seg_model, seg_alpha
    first_of_track = np.searchsorted(segs.track, segs.track)
    pos_in_track = np.arange(n_seg) - first_of_track
    for p in range(1, pos_in_track.max(initial=0) + 1):  # redraw model and alpha
        sel = np.flatnonzero(pos_in_track == p)
        bad = sel[np.abs(seg_alpha[sel] - seg_alpha[sel - 1]) < min_alpha_diff]
        while bad.size:
            seg_model[bad] = codes[rng.integers(len(codes), size=bad.size)]
            seg_alpha[bad] = rng.uniform(lo_a[seg_model[bad]], hi_a[seg_model[bad]])
            bad = bad[np.abs(seg_alpha[bad] - seg_alpha[bad - 1]) < min_alpha_diff]
    return seg_model, seg_alpha


def _segment_steps(segs, seg_model, seg_alpha, shape, d_range, rng) -> np.ndarray:
    """Steps (N, T-1, dim); segment s owns steps start[s] .. min(stop[s], T-1) - 1."""
    n_tracks, n_steps, dim = shape
    n_inc = np.minimum(segs.stop, n_steps) - segs.start
    scale = np.ones(segs.track.size)
    if d_range is not None:
        scale = np.sqrt(10 ** rng.uniform(*np.log10(d_range), size=segs.track.size))
    steps = np.zeros(shape)
    for code in np.unique(seg_model):
        sel = np.flatnonzero(seg_model == code)
        name = MODELS[code]
        n_max = int(n_inc[sel].max())
        inc = _increments(name, seg_alpha[sel], n_max, dim, rng)  # prefixes are exact samples
        f = scale[sel]
        if name == "sbm":
            f = f * _sbm_scale(seg_alpha[sel], n_inc[sel])
        inc *= f[:, None, None]
        kk = np.arange(n_max)[None, :]
        valid = kk < n_inc[sel][:, None]
        rows = np.broadcast_to(segs.track[sel][:, None], valid.shape)[valid]
        steps[rows, (segs.start[sel][:, None] + kk)[valid]] = inc[valid]
    return steps


def _segment_of_frame(segs: _Segments, n_tracks: int, n_frames: int) -> np.ndarray:
    """(N, T) index into the flattened segments of every frame."""
    marks = np.zeros((n_tracks, n_frames), dtype=int)
    marks[segs.track, segs.start] = 1
    first = np.searchsorted(segs.track, np.arange(n_tracks))
    return first[:, None] + np.cumsum(marks, axis=1) - 1


def _check_models(models, ranges, min_alpha_diff) -> tuple:
    models = (models,) if isinstance(models, str) else tuple(models)
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}: use some of {list(MODELS)}")
    for m in models:
        _alpha_array(ranges[m], 2, m)  # both ends inside the model's valid range
        if min_alpha_diff * 2 > ranges[m][1] - ranges[m][0]:
            raise ValueError(f"min_alpha_diff is too large for the alpha range of {m}")
    return models


def anomalous_changepoints(
    n_tracks: int,
    n_frames: int = 200,
    dim: int = 2,
    n_changepoints: int | tuple[int, int] = (1, 4),
    min_segment: int = 10,
    models: str | tuple = MODELS,
    alpha_ranges: dict | None = None,
    min_alpha_diff: float = 0.0,
    d_range: tuple[float, float] | None = None,
    normalise: bool = True,
    rng=None,
) -> AnomalousChangepoints:
    """Tracks whose diffusion model and exponent alpha change at random change points.

    A segment is a fresh realisation of its model started where the previous segment ended
    (tracks are continuous).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    dim : int
        Spatial dimension, 1, 2 or 3.
    n_changepoints : int or (int, int)
        Number of change points, or an inclusive range split evenly over tracks.
    min_segment : int
        Minimum segment length in frames (>= 2).
    models : str or tuple of str
        Models to draw from (uniformly per segment), a subset of ``MODELS``.
    alpha_ranges : dict, optional
        Per-model (low, high) alpha ranges overriding ``ALPHA_RANGES``.
    min_alpha_diff : float
        Consecutive segments of a track differ in alpha by at least this much.
    d_range : (float, float), optional
        Multiplies each segment's steps by sqrt(D), D log-uniform in this range (px^2/frame at
        the model's unit scale), so the step size also changes at change points.
    normalise : bool
        Divide each track by its RMS per-axis step (typical step 1 px; tracks that never move are
        left as they are).
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    AnomalousChangepoints
        Positions, per-frame alpha and model code (forward convention), change points.
    """
    rng = as_rng(rng)
    check_dim(dim)
    ranges = {**ALPHA_RANGES, **(alpha_ranges or {})}
    models = _check_models(models, ranges, min_alpha_diff)
    ks = changepoint_range(n_changepoints)
    if n_tracks == 0:
        return AnomalousChangepoints(
            np.zeros((0, n_frames, dim)),
            np.zeros((0, n_frames)),
            np.zeros((0, n_frames), dtype=int),
            [],
        )
    segs = _draw_segments(n_tracks, n_frames, ks, min_segment, rng)
    seg_model, seg_alpha = _draw_models(segs, models, ranges, min_alpha_diff, rng)
    steps = _segment_steps(segs, seg_model, seg_alpha, (n_tracks, n_frames - 1, dim), d_range, rng)
    if normalise:
        ms = (steps**2).mean(axis=(1, 2)) if n_frames > 1 else np.zeros(n_tracks)
        steps /= np.sqrt(np.where(ms > 0, ms, 1.0))[:, None, None]
    positions = np.concatenate([np.zeros((n_tracks, 1, dim)), np.cumsum(steps, axis=1)], axis=1)
    idx = _segment_of_frame(segs, n_tracks, n_frames)
    return AnomalousChangepoints(positions, seg_alpha[idx], seg_model[idx], segs.changepoints)
