"""Anomalous-diffusion simulators with a per-frame ground-truth exponent alpha (AnDi models).

The five models of the AnDi challenge (Muñoz-Gil et al., Nat. Commun. 2021), written here in
vectorised numpy (no andi-datasets dependency), each with ensemble MSD ~ t^alpha:

* ``attm`` (alpha in (0.05, 1)): annealed transit time motion, Brownian motion whose D jumps;
  slow episodes last long (:func:`napari_step.simulate.attm`, gamma uniform in (1, 2) and
  sigma = alpha gamma per track).
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
scale-free. Conventions as in :mod:`napari_step.simulate`: ``alpha[:, t]`` is the exponent of the
step arriving at frame t (frame 0 carries the first segment's), and a change point ``c`` means
frames >= c (so the step c-1 -> c) belong to the new segment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .simulate import _changepoint_frames, _rng, attm, scaled_brownian

__all__ = [
    "MODELS",
    "ALPHA_RANGES",
    "AnomalousChangepoints",
    "anomalous_changepoints",
    "simulate_model",
    "fbm",
    "ctrw",
    "levy_walk",
]

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
        raise ValueError(f"alpha {a[~ok][0]} is outside the valid range of {model}: "
                         f"({lo}, {hi}{bracket}")
    return a


# ------------------------------------------------------------------------------------------------
# increments of one model: (n, n_steps, dim); increment k is X(k + 1) - X(k), X(0) = 0
# ------------------------------------------------------------------------------------------------


def _fgn(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """Fractional Gaussian noise, unit variance, Hurst alpha/2 per track (Davies-Harte).

    The autocovariance is embedded in a circulant matrix of size 2 n_steps whose eigenvalues (an
    FFT) are non-negative for fractional Gaussian noise; one complex Gaussian vector then gives
    two independent exact samples (real and imaginary parts), i.e. two axes.
    """
    n = alpha.size
    out = np.empty((n, n_steps, dim))
    if n_steps == 0 or n == 0:
        return out
    h2 = alpha[:, None]  # 2H
    k = np.arange(n_steps + 1, dtype=float)[None, :]
    gamma = 0.5 * (np.abs(k + 1) ** h2 - 2 * k**h2 + np.abs(k - 1) ** h2)  # (n, n_steps + 1)
    row = np.concatenate([gamma, gamma[:, -2:0:-1]], axis=1)  # (n, M), M = 2 n_steps
    m = row.shape[1]
    lam = np.clip(np.fft.fft(row, axis=1).real, 0.0, None)
    amp = np.sqrt(lam / m)
    for axis in range(0, dim, 2):
        z = rng.standard_normal((n, m)) + 1j * rng.standard_normal((n, m))
        w = np.fft.fft(amp * z, axis=1)[:, :n_steps]
        out[:, :, axis] = w.real
        if axis + 1 < dim:
            out[:, :, axis + 1] = w.imag
    return out


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


def _unit_vectors(shape, dim: int, rng) -> np.ndarray:
    if dim == 1:
        return rng.choice([-1.0, 1.0], size=shape + (1,))
    v = rng.standard_normal(shape + (dim,))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


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
    pos = np.take_along_axis(start_pos, j[..., None], axis=1) + np.take_along_axis(
        vel, j[..., None], axis=1
    ) * (t - s)[..., None]
    return np.diff(pos, axis=1, prepend=np.zeros((n, 1, dim)))


def _attm_inc(alpha: np.ndarray, n_steps: int, dim: int, rng, gamma_range=ATTM_GAMMA_RANGE):
    """ATTM via :func:`simulate.attm` (one call per track: its sigma and gamma differ)."""
    n = alpha.size
    inc = np.empty((n, n_steps, dim))
    gammas = rng.uniform(*gamma_range, size=n)
    for i in range(n):
        pos, _, _ = attm(1, n_steps + 1, alpha[i] * gammas[i], gammas[i], dim, ATTM_D_MAX, rng)
        inc[i] = np.diff(pos[0], axis=0)
    return inc


def _sbm_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """SBM with per-axis MSD t^alpha (:func:`simulate.scaled_brownian` with K = 1/2)."""
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


def _check_dim(dim):
    if dim not in (1, 2, 3):
        raise ValueError(f"dim must be 1, 2 or 3, not {dim}")


def simulate_model(model: str, n_tracks: int, n_frames: int = 200, alpha=1.0, dim: int = 2,
                   rng=None) -> np.ndarray:
    """Positions (N, T, dim) starting at the origin of one AnDi ``model`` at exponent ``alpha``
    (a scalar or one value per track), at the model's unit scale (module docstring)."""
    rng = _rng(rng)
    _check_dim(dim)
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
    """Result of :func:`anomalous_changepoints`."""

    positions: np.ndarray  # (N, T, dim), typical step O(1)
    alpha: np.ndarray  # (N, T) per-frame anomalous exponent
    model: np.ndarray  # (N, T) int, index into MODELS
    changepoints: list  # per track: int array of frames where a new segment starts

    @property
    def model_names(self) -> tuple:
        return MODELS


def anomalous_changepoints(
    n_tracks: int,
    n_frames: int = 200,
    dim: int = 2,
    n_changepoints=(1, 4),
    min_segment: int = 10,
    models=MODELS,
    alpha_ranges: dict | None = None,
    min_alpha_diff: float = 0.0,
    d_range=None,
    normalise: bool = True,
    rng=None,
) -> AnomalousChangepoints:
    """Tracks whose diffusion model and exponent alpha change at random change points.

    ``n_changepoints`` is an int or an inclusive (low, high) range, split evenly over tracks;
    every segment is at least ``min_segment`` frames. Each segment draws a model uniformly from
    ``models`` and alpha uniformly from that model's range (``ALPHA_RANGES``, overridden per model
    by ``alpha_ranges``); consecutive segments of a track differ in alpha by at least
    ``min_alpha_diff``. A segment is a fresh realisation of its model started where the previous
    segment ended (tracks are continuous). ``d_range`` (optional, (low, high)) multiplies each
    segment's steps by sqrt(D) with D log-uniform in it, so the step size also changes at change
    points. ``normalise`` divides each track by its RMS per-axis step (typical step 1; tracks that
    never move are left as they are).
    """
    rng = _rng(rng)
    _check_dim(dim)
    models = (models,) if isinstance(models, str) else tuple(models)
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ValueError(f"unknown model(s) {unknown}: use some of {list(MODELS)}")
    ranges = {**ALPHA_RANGES, **(alpha_ranges or {})}
    for m in models:
        _alpha_array(ranges[m], 2, m)  # both ends inside the model's valid range
        if min_alpha_diff * 2 > ranges[m][1] - ranges[m][0]:
            raise ValueError(f"min_alpha_diff is too large for the alpha range of {m}")
    lo, hi = (n_changepoints, n_changepoints) if np.isscalar(n_changepoints) else n_changepoints
    ks = np.arange(lo, hi + 1)
    if ks.size == 0 or ks[0] < 0:
        raise ValueError(f"bad n_changepoints {n_changepoints}")
    k_of_track = ks[np.arange(n_tracks) % len(ks)]
    if n_tracks == 0:
        return AnomalousChangepoints(np.zeros((0, n_frames, dim)), np.zeros((0, n_frames)),
                                     np.zeros((0, n_frames), dtype=int), [])

    # segments of all tracks, flattened in track order: track, start, stop
    cps: list = [None] * n_tracks
    seg_track, seg_start, seg_stop = [], [], []
    for k in ks:
        idx = np.flatnonzero(k_of_track == k)
        if idx.size == 0:
            continue
        frames = _changepoint_frames(idx.size, n_frames, int(k), min_segment, rng)
        starts = np.concatenate([np.zeros((idx.size, 1), int), frames], axis=1)
        stops = np.concatenate([frames, np.full((idx.size, 1), n_frames)], axis=1)
        seg_track.append(np.repeat(idx, k + 1))
        seg_start.append(starts.ravel())
        seg_stop.append(stops.ravel())
        for row, i in enumerate(idx):
            cps[i] = frames[row]
    seg_track = np.concatenate(seg_track)
    order = np.argsort(seg_track, kind="stable")
    seg_track = seg_track[order]
    seg_start = np.concatenate(seg_start)[order]
    seg_stop = np.concatenate(seg_stop)[order]
    n_seg = seg_track.size

    codes = np.array([MODELS.index(m) for m in models])
    lo_a = np.array([ranges[m][0] for m in MODELS])
    hi_a = np.array([ranges[m][1] for m in MODELS])
    seg_model = codes[rng.integers(len(codes), size=n_seg)]
    seg_alpha = rng.uniform(lo_a[seg_model], hi_a[seg_model])
    if min_alpha_diff > 0:  # redraw (model and alpha) until consecutive segments differ enough
        has_prev = np.r_[False, seg_track[1:] == seg_track[:-1]]
        pos_in_track = np.zeros(n_seg, int)
        for i in np.flatnonzero(has_prev):  # tiny loop over segments
            pos_in_track[i] = pos_in_track[i - 1] + 1
        for p in range(1, pos_in_track.max(initial=0) + 1):
            sel = np.flatnonzero(pos_in_track == p)
            bad = sel[np.abs(seg_alpha[sel] - seg_alpha[sel - 1]) < min_alpha_diff]
            while bad.size:
                seg_model[bad] = codes[rng.integers(len(codes), size=bad.size)]
                seg_alpha[bad] = rng.uniform(lo_a[seg_model[bad]], hi_a[seg_model[bad]])
                bad = bad[np.abs(seg_alpha[bad] - seg_alpha[bad - 1]) < min_alpha_diff]

    # increments of segment s arrive at frames first[s] .. stop[s] - 1 (frame 0 has no step)
    first = np.maximum(seg_start, 1)
    n_inc = seg_stop - first
    scale = np.ones(n_seg)
    if d_range is not None:
        scale = np.sqrt(10 ** rng.uniform(*np.log10(d_range), size=n_seg))
    disp = np.zeros((n_tracks, n_frames, dim))
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
        rows = np.broadcast_to(seg_track[sel][:, None], valid.shape)[valid]
        cols = (first[sel][:, None] + kk)[valid]
        disp[rows, cols] = inc[valid]
    if normalise:
        ms = (disp[:, 1:] ** 2).mean(axis=(1, 2)) if n_frames > 1 else np.zeros(n_tracks)
        ms = np.where(ms > 0, ms, 1.0)
        disp /= np.sqrt(ms)[:, None, None]
    positions = np.cumsum(disp, axis=1)

    frames = np.arange(n_frames)[None, :]
    alpha = np.empty((n_tracks, n_frames))
    model = np.empty((n_tracks, n_frames), dtype=int)
    # segment index of every frame, one vectorised pass per number of segments
    first_seg = np.searchsorted(seg_track, np.arange(n_tracks))
    n_segs = np.bincount(seg_track, minlength=n_tracks)
    for k in np.unique(n_segs):
        rows = np.flatnonzero(n_segs == k)
        segs = first_seg[rows][:, None] + np.arange(k)[None, :]  # (r, k)
        local = (frames[:, :, None] >= seg_start[segs][:, None, :]).sum(-1) - 1  # (r, T)
        idx = np.take_along_axis(segs, local, axis=1)
        alpha[rows] = seg_alpha[idx]
        model[rows] = seg_model[idx]
    return AnomalousChangepoints(positions, alpha, model, cps)
