"""Per-segment AnDi-2 estimates: K by maximum likelihood, alpha shrunk toward a prior by length.

Used by :func:`napari_step.io.andi2.andi2_segments` (the ``--andi2`` output) and
``benchmarks/andi2.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = [
    "andi2_alpha",
    "piecewise_alpha",
    "PIECE_MIN_FRAMES",
    "segment_mle_k",
    "pool_segment_k",
    "ALPHA_PRIOR",
    "ALPHA_PRIOR_DEFAULT",
    "POOL_THRESHOLD",
]

# alpha of a segment: the mean of STEP's per-frame alpha shrunk toward a prior mean with weight
# n / (n + n0) for n frames (posterior mean of a Gaussian prior whose variance is that of the
# mean over n0 frames); chosen on the project's own AnDi-2 simulators (napari_step.simulate.
# andi2_world, seed 11), not on the benchmark: MAE of free segments 0.144 -> 0.128, of confined
# ones 0.185 -> 0.146 (their intrinsic alpha is lower, the compartment walls lower it further)
ALPHA_PRIOR = {1: (0.8, 40.0)}  # state -> (prior mean, n0 frames)
ALPHA_PRIOR_DEFAULT = (1.0, 15.0)  # free, directed and unknown states: Brownian
# pool_segment_k: 2 x log-likelihood ratio below which segments of a track share one K; chosen on
# the project's own AnDi-2 simulators (seed 7; 4, 8, 16 tried): K MSLE 0.0059 -> 0.0046 overall,
# immobile traps 0.0048 -> 0.0027, dimerisation 0.0069 -> 0.0053, two-state 0.0097 -> 0.0080,
# confinement 0.0047 -> 0.0036 (short segments' K borrows from longer ones of the same state)
POOL_THRESHOLD = 8.0
# piecewise_alpha: segments of at least this many frames get STEP's alpha predicted on the segment
# alone; on the project's own AnDi-2 simulators (seed 303, true segments of tracks with a change
# point) the segment-mean alpha MAE falls 0.227 -> 0.152 (20-30 frames), 0.192 -> 0.127 (50-100),
# slow confined segments 0.259 -> 0.129; below 20 frames the piece alone is no better (10-20:
# 0.197 vs 0.194) or worse (< 10: 0.256 vs 0.346)
PIECE_MIN_FRAMES = 20


def andi2_alpha(alpha, n_frames, state, probs=None) -> np.ndarray:
    """AnDi-2 alpha of segments from the mean per-frame alpha, shrunk toward a prior by length.

    Short segments' mean alpha is noisy: it is pulled toward the prior mean of the segment's
    state (``ALPHA_PRIOR``: 0.8 for confined segments, else 1) with weight n / (n + n0), i.e. the
    posterior mean under a Gaussian prior; immobile segments (state 0) get 0 as the challenge
    labels them; the result is clipped to [0, 2].

    With ``probs`` (the segment's state probabilities) the estimate minimises the expected
    absolute error instead of trusting the most probable state: 0 only where the immobile
    probability exceeds 1/2 (the weighted median of "0" against a mobile alpha), else the
    mobile states' estimates averaged with their probabilities (a confined/free call near 1/2
    no longer decides between two priors). On the project's own AnDi-2 simulators (seeds 101
    and 202, 150 tracks per model, true segments) alpha MAE 0.1497 -> 0.1489 and
    0.1442 -> 0.1429; the immobile-traps and two-state models gain most.

    Parameters
    ----------
    alpha : array_like
        Mean per-frame alpha of each segment (NaN: unknown, gives the prior mean).
    n_frames : array_like
        Frames of each segment.
    state : array_like of int
        AnDi-2 state of each segment (0 immobile, 1 confined, 2 free, 3 directed).
    probs : array_like, shape (n_segments, 4), optional
        Probability of each state (0-3) per segment, e.g. the mean of the state model's
        per-frame probabilities or the share of frames in each state; rows without a finite
        positive sum fall back to ``state``.

    Returns
    -------
    ndarray
        alpha per segment.
    """
    alpha = np.asarray(alpha, dtype=float)
    n = np.asarray(n_frames, dtype=float)
    state = np.asarray(state).astype(int)
    per_state = np.stack([_shrunk(alpha, n, st) for st in range(4)], axis=-1)
    hard = np.take_along_axis(per_state, np.clip(state, 0, 3)[..., None], -1)[..., 0]
    out = np.where(state == 0, 0.0, hard)
    if probs is not None:
        p = np.asarray(probs, dtype=float).reshape(alpha.shape + (4,))
        mobile = np.where(np.isfinite(p[..., 1:]), np.clip(p[..., 1:], 0.0, None), 0.0)
        total = mobile.sum(axis=-1)
        ok = np.isfinite(p).all(axis=-1) & (total + np.clip(p[..., 0], 0, None) > 0)
        soft = (mobile * per_state[..., 1:]).sum(axis=-1) / np.where(total > 0, total, 1.0)
        soft = np.where(total > 0, soft, per_state[..., 2])
        out = np.where(ok, np.where(p[..., 0] > 0.5, 0.0, soft), out)
    return np.clip(out, 0.0, 2.0)


def _shrunk(alpha: np.ndarray, n: np.ndarray, state: int) -> np.ndarray:
    """Segment alpha shrunk toward the prior of ``state`` (``ALPHA_PRIOR``) by length."""
    mean, n0 = ALPHA_PRIOR.get(state, ALPHA_PRIOR_DEFAULT)
    w = np.where(np.isfinite(alpha), n / (n + n0), 0.0)
    return mean + w * (np.nan_to_num(alpha, nan=1.0) - mean)


def segment_mle_k(positions, bounds, pool: float | None = POOL_THRESHOLD) -> np.ndarray:
    """Maximum-likelihood K (px^2/frame) of each segment of one track.

    K = mean squared step / (2 dim) over the steps leaving the segment's frames: the AnDi-2 K is
    the step-variance coefficient of (possibly anomalous) motion, which this reads whatever
    alpha is (up to the localisation variance, small against the mobile K the metric weighs);
    a noise correction from the lag-1 step covariance would take anomalous motion's correlated
    increments for noise. With ``pool``, segments of the same state share one estimate
    (:func:`pool_segment_k`).

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px.
    bounds : sequence of (start, stop)
        Half-open frame ranges of the segments.
    pool : float or None
        Threshold of :func:`pool_segment_k`; None: each segment on its own.

    Returns
    -------
    ndarray
        K per segment; NaN for a segment without a step.
    """
    pos = np.asarray(positions, dtype=float)
    r = ((pos[1:] - pos[:-1]) ** 2).sum(axis=1)
    n = np.array([max(min(b, len(r)) - a, 0) for a, b in bounds], dtype=float)
    sums = np.array([r[a : min(b, len(r))].sum() for a, b in bounds], dtype=float)
    if pool is not None:
        return pool_segment_k(n, sums, pos.shape[1], pool)
    return np.where(n > 0, sums / np.maximum(n, 1) / (2 * pos.shape[1]), np.nan)


def pool_segment_k(n_steps, sq_sums, dim: int, threshold: float) -> np.ndarray:
    """ML K of one track's segments, pooled over segments of the same diffusive state.

    Segments of a track often revisit a few states (switching, trapping, dimerisation,
    confinement). Groups of segments (adjacent or not) are merged while the twice log-likelihood
    ratio of one common K against separate ones (Brownian steps) is below ``threshold``; each
    segment's K is then its group's pooled ML estimate, which for a short segment is far less
    noisy than its own few steps.

    Parameters
    ----------
    n_steps : array_like of int
        Steps per segment (0: no step).
    sq_sums : array_like
        Sum of the squared step lengths per segment, px^2.
    dim : int
        Number of axes.
    threshold : float
        2 x log-likelihood ratio below which two groups are taken for one state.

    Returns
    -------
    ndarray
        K per segment, px^2/frame; NaN for a segment without a step.
    """
    n = np.asarray(n_steps, dtype=float)
    s = np.asarray(sq_sums, dtype=float)
    groups = [[i] for i in np.flatnonzero((n > 0) & (s > 0))]
    gn = [n[g].sum() for g in groups]
    gs = [s[g].sum() for g in groups]

    def cost(nn, ss):
        return dim * nn * np.log(ss / nn)

    while len(groups) > 1:
        best, pair = np.inf, None
        for a in range(len(groups)):
            for b in range(a + 1, len(groups)):
                glr = cost(gn[a] + gn[b], gs[a] + gs[b]) - cost(gn[a], gs[a]) - cost(gn[b], gs[b])
                if glr < best:
                    best, pair = glr, (a, b)
        if best >= threshold:
            break
        a, b = pair
        groups[a], gn[a], gs[a] = groups[a] + groups[b], gn[a] + gn[b], gs[a] + gs[b]
        del groups[b], gn[b], gs[b]
    out = np.where(n > 0, s / np.maximum(n, 1) / (2 * dim), np.nan)
    for g, nn, ss in zip(groups, gn, gs):
        out[g] = ss / nn / (2 * dim)
    return out


def piecewise_alpha(
    tracks, bounds, context_alpha, min_frames: int = PIECE_MIN_FRAMES, **predict_kw
) -> list[np.ndarray]:
    """Mean STEP alpha of each segment, predicted on the segment alone where it is long enough.

    STEP's alpha read over a whole track judges a slow segment against the track's fast parts:
    a confined segment (D 0.05, alpha 0.6, localisation noise 0.12 px) reads 0.41 inside tracks
    that also move freely (D 1) but 0.66 on the same frames cut out alone, as it does in a track
    that never leaves its compartment. Segments of at least ``min_frames`` frames of a track with
    more than one segment are therefore predicted alone; the others keep the mean of
    ``context_alpha`` (the whole-track prediction) over their frames.

    Parameters
    ----------
    tracks : sequence of array_like, shape (T, dim)
        Gap-free tracks, px.
    bounds : sequence of sequences of (start, stop)
        Per track, the half-open frame ranges of its segments.
    context_alpha : sequence of array_like, shape (T,)
        Per track, STEP's per-frame alpha predicted on the whole track.
    min_frames : int
        Shortest segment predicted alone.
    **predict_kw
        Passed to :func:`napari_step.predict.predict_alpha` (model, device, ...).

    Returns
    -------
    list of ndarray
        Per track, the mean alpha of each segment (NaN where no frame has a finite alpha).
    """
    from napari_step.predict import predict_alpha

    def _mean(v) -> float:
        v = np.asarray(v, dtype=float)
        return float(np.nanmean(v)) if np.isfinite(v).any() else np.nan

    out = [
        np.array([_mean(np.asarray(c)[a:b]) for a, b in bd]) for c, bd in zip(context_alpha, bounds)
    ]
    jobs = [
        (i, j)
        for i, bd in enumerate(bounds)
        if len(bd) > 1
        for j, (a, b) in enumerate(bd)
        if b - a >= min_frames
    ]
    if jobs:
        pieces = [np.asarray(tracks[i], dtype=float)[slice(*bounds[i][j])] for i, j in jobs]
        for (i, j), pred in zip(jobs, predict_alpha(pieces, **predict_kw)):
            out[i][j] = _mean(pred)
    return out


def tracks_pooled_k(n_steps: np.ndarray, sq_sums: np.ndarray, track, dim: int) -> np.ndarray:
    """:func:`segment_mle_k` (pooled over each track's same-state segments) from per-segment step
    counts and squared-step sums.

    Parameters
    ----------
    n_steps, sq_sums : ndarray
        Steps and sum of squared step lengths (px^2) per segment.
    track : pandas.Series
        Track of each segment (a track's segments consecutive).
    dim : int
        Number of axes.

    Returns
    -------
    ndarray
        K per segment, px^2/frame.
    """
    out = np.full(len(n_steps), np.nan)
    for rows in track.groupby(track.to_numpy(), sort=False).indices.values():
        out[rows] = pool_segment_k(n_steps[rows], sq_sums[rows], dim, POOL_THRESHOLD)
    return out


def table_piecewise_alpha(out: pd.DataFrame, codes, offset, pos, device) -> np.ndarray:
    """Segment alpha of :func:`piecewise_alpha` for the segments of a per-point table.

    Parameters
    ----------
    out : pandas.DataFrame
        Segments (``track_id``, ``start``, ``stop`` in frames from the track start, ``alpha``:
        the mean whole-track alpha), a track's segments consecutive, tracks sorted.
    codes, offset : ndarray of int
        Per point: the track's code (sorted track IDs) and the frame from the track start.
    pos : ndarray, shape (n_points, dim)
        Positions, px.
    device : str or None
        Torch device of the alpha prediction.

    Returns
    -------
    ndarray
        alpha per segment; tracks with gaps or a single segment keep the given one.
    """
    alpha = out["alpha"].to_numpy(float).copy()
    seg_track = pd.factorize(out["track_id"], sort=True)[0]
    tracks, bounds, context, rows = [], [], [], []
    for c in np.unique(codes):
        at = np.flatnonzero(codes == c)
        mine = np.flatnonzero(seg_track == c)
        order = at[np.argsort(offset[at])]
        if len(mine) < 2 or not np.array_equal(offset[order], np.arange(len(order))):
            continue
        tracks.append(pos[order])
        bounds.append(list(zip(out["start"].to_numpy()[mine], out["stop"].to_numpy()[mine])))
        context.append(np.repeat(alpha[mine], [b - a for a, b in bounds[-1]]))
        rows.append(mine)
    if tracks:
        kw = {} if device is None else {"device": device}
        for mine, v in zip(rows, piecewise_alpha(tracks, bounds, context, **kw)):
            alpha[mine] = v
    return alpha
