"""Tracks whose AnDi-1 model and exponent alpha change at random change points.

The training and test distribution of STEP's alpha model (Requena et al., arXiv 2302.00410):
segments of the models of :mod:`napari_step.simulate.andi1` stitched into continuous tracks.
Per-frame convention (forward, as andi-datasets): ``alpha[:, t]`` is the exponent of the motion
from frame t to t+1, the last frame repeats the one before it, and a change point ``c`` means
frame c is the first frame of the new segment (the step c -> c+1 is the new model's).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._common import RngLike, as_rng, changepoint_frames, changepoint_range, check_dim
from .andi1 import ALPHA_RANGES, MODELS, _alpha_array, _increments, _sbm_scale

__all__ = ["AnomalousChangepoints", "anomalous_changepoints"]


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
    rng: RngLike = None,
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
