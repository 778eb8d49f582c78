"""Change points and constant-D segments from STEP's per-frame output.

STEP predicts log10 D at every frame; a track whose D jumps shows up as a piecewise-constant
prediction with (correlated) noise. This module cuts tracks into segments of constant D and
re-estimates each segment's D from the raw displacements, which is more precise than averaging the
network output and makes the segment values statistically interpretable.

The default change-point detector is a hybrid, chosen by ``benchmarks/changepoints.py``:

1. kernel change-point detection (``ruptures.KernelCPD``, linear kernel, i.e. least-squares mean
   shifts) on the STEP log10 D signal with a *low* penalty proposes candidate change points
   (STEP locates changes well but a penalty that suppresses all its false alarms also misses
   weak changes);
2. each candidate is kept only if the exact Gaussian likelihood-ratio statistic of the raw
   displacements (Brownian motion: one variance per segment) for "two segments" against "one
   segment" between its neighbours exceeds a threshold proportional to log T; the weakest is
   dropped first, repeatedly;
3. each kept change point is moved to the maximum-likelihood frame within a few frames.

Without positions, :func:`find_changepoints` is plain KCPD on the STEP signal.

Benchmark (2-D, 200 frames, D log-uniform in 1e-3..1e3, test seed, no noise): on the STEP paper's
one-change-point protocol the Jaccard index is 0.860 for plain KCPD on STEP, 0.856 for the hybrid
and 0.826 for KCPD on log step sizes; the hybrid localises change points better (TP mean squared
error 0.78 vs 0.93 frames^2) and gives a lower pointwise error of the segmented D on tracks with
1-4 change points (0.127 vs 0.135 with the MLE; 0.098 on the true segments), with and without
localisation noise, which is why it is the default of :func:`segment_track`. The exact penalised
likelihood segmentation of the raw steps (:func:`exact_changepoints`, no STEP) reaches 0.125: most
of the remaining gap to the true segments comes from changes too small to detect in 200 frames.

Conventions (as everywhere in the package): pixels and frames, D in px^2/frame, ``d[t]`` is the D
of the step from frame t to frame t+1 (the last frame repeats the one before it), and a change
point ``c`` means frame c is the first frame of the new segment (so the step c -> c+1 is the first
with the new D). Segments are half-open frame ranges ``[start, stop)``; the D of a segment is
estimated from the steps that leave its frames, c..next-1 (the track's last frame has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = [
    "mle_d",
    "cve_d",
    "log_step_sizes",
    "find_changepoints",
    "exact_changepoints",
    "TrackSegments",
    "segment_track",
    "segment_tracks",
    "segments_table",
    "segments_from_changepoints",
    "SEGMENT_COLUMNS",
    "DEFAULT_MIN_SIZE",
    "KCPD_PENALTY",
    "PROPOSAL_PENALTY",
    "GLR_THRESHOLD",
    "EXACT_PENALTY",
]

# Defaults tuned on seeded tuning sets by benchmarks/changepoints.py (see its docstring); all
# penalties/thresholds are per log(T) so they scale with the track length T.
DEFAULT_MIN_SIZE = 5  # frames per segment at least
KCPD_PENALTY = 0.3  # plain KCPD on STEP log10 D (decades^2 per log T): ~1.6 at T = 200
PROPOSAL_PENALTY = 0.03  # hybrid: low KCPD penalty for candidates (~0.16 at T = 200)
GLR_THRESHOLD = 2.5  # hybrid: 2 x log-likelihood ratio per log T (~13 at T = 200)
REFINE_WINDOW = 5  # hybrid: frames either side searched for the ML change-point frame
EXACT_PENALTY = 2.5  # exact_changepoints: per change point, per log T (2.0-3.0 about equally good)

R_FULL_FRAME = 1.0 / 6.0  # motion-blur coefficient for continuous full-frame exposure


# --------------------------------------------------------------------------------------------
# D estimators
# --------------------------------------------------------------------------------------------


def _as_positions(positions) -> np.ndarray:
    a = np.asarray(positions, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    return a


def mle_d(positions, dim: int | None = None) -> np.ndarray | float:
    """Maximum-likelihood D of Brownian motion from a segment's positions (..., T, dim).

    ``D = sum |dx|^2 / (2 dim n)`` over the n = T - 1 displacements (px^2/frame). ``dim`` defaults
    to the last axis' size. Works on a single segment (T, dim) or a batch (N, T, dim) of equal
    length ones. NaN when there is no displacement. Unbiased for noise-free Brownian motion;
    localisation noise of variance sigma^2 per axis adds sigma^2 to it (use :func:`cve_d`).
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


def cve_d(positions, R: float = R_FULL_FRAME, return_sigma2: bool = False):
    """Covariance-based estimator (CVE) of D, unbiased under localisation noise.

    Vestergaard, Blainey & Flyvbjerg, Phys. Rev. E 89, 022726 (2014), with dt = 1 frame, per axis
    and averaged over the axes of positions (..., T, dim)::

        D       = <dx_n^2> / 2 + <dx_n dx_{n+1}>
        sigma^2 = R <dx_n^2> + (2R - 1) <dx_n dx_{n+1}>

    D does not depend on ``R``; the localisation variance sigma^2 (px^2, per axis) does: ``R`` is
    the motion-blur coefficient, 1/6 for continuous full-frame exposure (the default, for camera
    data) and 0 for instantaneous snapshots (as in :mod:`napari_step.simulate`). Needs at least
    two displacements (NaN otherwise). D (and sigma^2) can come out negative for short, noisy
    segments: that is the estimator's honest sampling error, not clipped here.

    Returns D, or (D, sigma^2) with ``return_sigma2=True``; scalars for one segment, arrays for a
    batch.
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


def log_step_sizes(positions) -> np.ndarray:
    """log10 |x_{t+1} - x_t|^2 per frame (T,), the last frame repeating the one before it (the
    per-frame convention).

    The raw-data analogue of STEP's log10 D output (offset by log10(2 dim) and much noisier), for
    change-point detection on step sizes. Zero steps give a finite floor instead of -inf.
    """
    pos = _as_positions(positions)
    r = (np.diff(pos, axis=0) ** 2).sum(-1)
    if r.size == 0:
        return np.full(len(pos), np.nan)
    pos_r = r[r > 0]
    floor = pos_r.min() * 1e-3 if pos_r.size else 1.0
    s = np.log10(np.maximum(r, floor))
    return np.concatenate([s, s[-1:]])


# --------------------------------------------------------------------------------------------
# change points
# --------------------------------------------------------------------------------------------


def _clean_signal(signal: np.ndarray) -> np.ndarray | None:
    """Replace non-finite values (-inf for still frames) by the nearest finite level; None when
    nothing is finite."""
    finite = np.isfinite(signal)
    if not finite.any():
        return None
    if finite.all():
        return signal
    out = signal.copy()
    lo = np.nanmin(np.where(finite, signal, np.nan))
    out[np.isneginf(signal)] = lo
    idx = np.flatnonzero(finite)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        out[bad] = out[idx[np.clip(np.searchsorted(idx, bad), 0, idx.size - 1)]]
    return out


def _kcpd(signal: np.ndarray, penalty: float, min_size: int, kernel: str, kernel_params) -> list:
    import ruptures as rpt

    sig = signal.reshape(len(signal), -1)
    algo = rpt.KernelCPD(kernel=kernel, min_size=min_size, params=kernel_params).fit(sig)
    try:
        bkps = algo.predict(pen=penalty)
    except rpt.exceptions.BadSegmentationParameters:
        return []
    return [int(b) for b in bkps[:-1]]


class _StepLikelihood:
    """Gaussian (Brownian) negative log-likelihood of the steps leaving frames [a, b)."""

    def __init__(self, positions: np.ndarray):
        r = (np.diff(positions, axis=0) ** 2).sum(-1)  # r[t]: the step t -> t+1
        self.n_steps = r.size
        self.dim = positions.shape[1]
        self.cs = np.concatenate([[0.0], np.cumsum(r)])
        pos_r = r[r > 0]
        self.floor = (pos_r.mean() if pos_r.size else 1.0) * 1e-12

    def nll(self, a: int, b: int) -> float:
        """Twice the negative log-likelihood (up to constants) of frames [a, b) at the ML D."""
        b = min(b, self.n_steps)
        n = b - a
        if n <= 0:
            return 0.0
        m = (self.cs[b] - self.cs[a]) / n
        return self.dim * n * np.log(max(m, self.floor))

    def glr(self, a: int, c: int, b: int) -> float:
        """2 x log-likelihood ratio of a change at c against none in [a, b)."""
        return self.nll(a, b) - self.nll(a, c) - self.nll(c, b)


def _glr_prune(cps: list, lik: _StepLikelihood, n_frames: int, threshold: float) -> list:
    """Drop the weakest change point (smallest GLR against its neighbours) until all pass."""
    b = [0] + list(cps) + [n_frames]  # b[i + 1] is change point i
    g = [lik.glr(b[i], b[i + 1], b[i + 2]) for i in range(len(b) - 2)]
    while g:
        k = int(np.argmin(g))
        if g[k] >= threshold:
            break
        del b[k + 1], g[k]
        for i in (k - 1, k):  # only the two neighbours' statistics change
            if 0 <= i < len(g):
                g[i] = lik.glr(b[i], b[i + 1], b[i + 2])
    return b[1:-1]


def _refine(cps: list, lik: _StepLikelihood, n_frames: int, window: int, min_size: int) -> list:
    out: list = []
    for i, c in enumerate(cps):
        a = out[-1] if out else 0
        b = cps[i + 1] if i + 1 < len(cps) else n_frames
        lo, hi = max(a + min_size, c - window), min(b - min_size, c + window)
        if hi < lo:
            out.append(c)
            continue
        cand = np.arange(lo, hi + 1)
        ll = [lik.glr(a, int(cc), b) for cc in cand]
        out.append(int(cand[int(np.argmax(ll))]))
    return out


def find_changepoints(
    log10_d_pred,
    positions=None,
    penalty: float | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    kernel: str = "linear",
    kernel_params: dict | None = None,
    threshold: float | None = None,
    refine: int = REFINE_WINDOW,
    scale_with_length: bool = True,
) -> np.ndarray:
    """Change-point frames (sorted int array) of one track from its STEP log10 D output (T,).

    ``positions`` (T, dim) of the same track switch on the hybrid detector (module docstring):
    KCPD proposals at ``penalty`` (default ``PROPOSAL_PENALTY``), kept when the raw-step
    likelihood-ratio statistic exceeds ``threshold`` (default ``GLR_THRESHOLD``), then moved to
    the ML frame within ``refine`` frames. Without positions it is plain ``ruptures.KernelCPD`` at
    ``penalty`` (default ``KCPD_PENALTY``); ``threshold`` and ``refine`` are then ignored.

    With ``scale_with_length`` (default) ``penalty`` and ``threshold`` are per log(T), i.e.
    multiplied by ``log(T)``, so the false-alarm rate stays roughly constant across track lengths;
    pass ``scale_with_length=False`` to give absolute values. ``penalty`` is in units of the
    signal squared (decades^2 for log10 D) for the linear kernel. ``kernel``: "linear" (default,
    best in the benchmark), "rbf" or "cosine" with ``kernel_params`` for ruptures (penalties for
    other kernels are on a different scale: give one). ``min_size``: shortest segment in frames.

    Any 1-D signal indexed by frame works as ``log10_d_pred`` (e.g. :func:`log_step_sizes`), and a
    (T, k) signal for multivariate KCPD. Non-finite values (-inf where the track does not move)
    are replaced by the lowest finite value; a track that is all NaN (too short for the model) or
    shorter than ``2 * min_size`` frames has no change point.
    """
    sig = np.asarray(log10_d_pred, dtype=float)
    n_frames = sig.shape[0]
    min_size = max(1, int(min_size))
    if n_frames < 2 * min_size:
        return np.empty(0, dtype=int)
    sig = _clean_signal(sig)
    if sig is None:
        return np.empty(0, dtype=int)
    hybrid = positions is not None
    if hybrid:
        pos = _as_positions(positions)
        if len(pos) != n_frames:
            raise ValueError(f"positions have {len(pos)} frames, the signal has {n_frames}")
        if not np.isfinite(pos).all():
            raise ValueError("positions must be finite (split tracks at gaps first)")
    scale = np.log(n_frames) if scale_with_length else 1.0
    if penalty is None:
        penalty = PROPOSAL_PENALTY if hybrid else KCPD_PENALTY
    cps = _kcpd(sig, float(penalty) * scale, min_size, kernel, kernel_params)
    if hybrid and cps:
        lik = _StepLikelihood(pos)
        thr = (GLR_THRESHOLD if threshold is None else float(threshold)) * scale
        cps = _glr_prune(cps, lik, n_frames, thr)
        if refine and cps:
            cps = _refine(cps, lik, n_frames, int(refine), min_size)
    return np.asarray(cps, dtype=int)


def exact_changepoints(
    positions,
    penalty: float = EXACT_PENALTY,
    min_size: int = DEFAULT_MIN_SIZE,
    scale_with_length: bool = True,
) -> np.ndarray:
    """Change points of a Brownian track (T, dim) from its raw steps alone, without STEP.

    The segmentation that minimises twice the Gaussian negative log-likelihood (one D per segment)
    plus ``penalty`` per change point, found exactly by dynamic programming (optimal
    partitioning, O(T^2)). The reference for what the data alone support: in
    ``benchmarks/changepoints.py`` it matches the hybrid's Jaccard index and gives slightly better
    segmented D, clearly better under a fixed localisation noise. ``penalty`` is per log(T) with
    ``scale_with_length`` (as in :func:`find_changepoints`); ``min_size`` is in frames.
    """
    pos = _as_positions(positions)
    if not np.isfinite(pos).all():
        raise ValueError("positions must be finite (split tracks at gaps first)")
    r = (np.diff(pos, axis=0) ** 2).sum(-1)  # r[j]: the step j -> j + 1
    dim, n = pos.shape[1], len(r)
    min_size = max(1, int(min_size))
    if n < 2 * min_size:
        return np.empty(0, dtype=int)
    pen = float(penalty) * (np.log(len(pos)) if scale_with_length else 1.0)
    cs = np.concatenate([[0.0], np.cumsum(r)])
    floor = (r[r > 0].mean() if (r > 0).any() else 1.0) * 1e-12
    best = np.full(n + 1, np.inf)  # best[b]: optimal cost of steps [0, b)
    best[0] = -pen
    last = np.zeros(n + 1, dtype=int)
    for b in range(min_size, n + 1):
        a = np.arange(0, b - min_size + 1)
        a = a[(a == 0) | (a >= min_size)]
        mean = np.maximum((cs[b] - cs[a]) / (b - a), floor)
        cost = best[a] + dim * (b - a) * np.log(mean) + pen
        k = int(np.argmin(cost))
        best[b], last[b] = cost[k], a[k]
    cps, b = [], n
    while b > 0:
        b = int(last[b])
        if b > 0:
            cps.append(b)  # the step b -> b + 1 is the first of the new segment
    return np.asarray(sorted(cps), dtype=int)


# --------------------------------------------------------------------------------------------
# segments
# --------------------------------------------------------------------------------------------


@dataclass
class TrackSegments:
    """Segmentation of one track.

    ``changepoints``: frames where a new segment starts. ``segments``: (start, stop, d, n_frames)
    per segment, frames [start, stop), d in px^2/frame (NaN where it cannot be estimated).
    ``segmented_d``: per-frame D of the segment each frame is in (T,). ``log10_d_pred``: the STEP
    output used. ``sigma2``: per-segment localisation variance (px^2 per axis) for the CVE
    estimators (the same pooled value for every segment with "cve_pooled"), else None.
    """

    changepoints: np.ndarray
    segments: list
    segmented_d: np.ndarray
    log10_d_pred: np.ndarray | None = None
    estimator: str = "mle"
    sigma2: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_segments(self) -> int:
        return len(self.segments)


def _fallback_step(ds, bounds, log10_pred):
    """Replace non-positive / NaN segment D by STEP's mean over the segment (trained on noisy
    tracks), the only usable value when a noise-corrected estimate comes out <= 0."""
    bad = ~(ds > 0)
    if bad.any() and log10_pred is not None:
        for i in np.flatnonzero(bad):
            a, b = bounds[i]
            vals = log10_pred[a:b]
            vals = vals[np.isfinite(vals)]
            if vals.size:
                ds[i] = 10.0 ** vals.mean()
    return ds


def _segment_estimates(pos: np.ndarray, bounds, estimator: str, R: float, log10_pred):
    """Per-segment D (and sigma^2 for the CVE estimators) over half-open frame ranges."""
    segs = [pos[a : b + 1] for a, b in bounds]  # the steps leaving frames a..b-1
    if estimator == "mle":
        return np.array([mle_d(s) if len(s) > 1 else np.nan for s in segs], dtype=float), None
    if estimator == "step":
        ds = []
        for a, b in bounds:
            vals = log10_pred[a:b] if log10_pred is not None else np.empty(0)
            vals = vals[np.isfinite(vals)]
            ds.append(10.0 ** vals.mean() if vals.size else np.nan)
        return np.asarray(ds, dtype=float), None
    # CVE: per segment <dx^2> and <dx_n dx_n+1>, per axis averaged over axes
    msq = np.array([(np.diff(s, axis=0) ** 2).mean() if len(s) > 1 else np.nan for s in segs])
    cov = np.array(
        [
            (np.diff(s, axis=0)[1:] * np.diff(s, axis=0)[:-1]).mean() if len(s) > 2 else np.nan
            for s in segs
        ]
    )
    s2 = R * msq + (2.0 * R - 1.0) * cov
    if estimator == "cve":
        ds = np.where(np.isfinite(cov), msq / 2.0 + cov, msq / 2.0)  # 1 step: MLE
    else:  # cve_pooled: one localisation variance per track, precision-weighted over segments
        n_pairs = np.array([max(len(s) - 2, 0) for s in segs], dtype=float)
        ok = np.isfinite(s2) & (n_pairs > 0) & (msq > 0)
        if ok.any():
            w = n_pairs[ok] / msq[ok] ** 2  # ~ 1 / var(cov estimate)
            pooled = max(float((w * s2[ok]).sum() / w.sum()), 0.0)
        else:
            pooled = 0.0
        ds = (msq / 2.0 - pooled) / (1.0 - 2.0 * R)
        s2 = np.full(len(segs), pooled)
    return _fallback_step(np.asarray(ds, dtype=float), bounds, log10_pred), s2


def segments_from_changepoints(
    positions, changepoints, estimator: str = "mle", log10_d_pred=None, R: float = R_FULL_FRAME
) -> TrackSegments:
    """Per-segment D of a track (T, dim) cut at given change-point frames (e.g. the true ones,
    or ones edited by hand). ``log10_d_pred`` is needed by the "step" estimator and as the CVE
    fallback; see :func:`segment_track` for the estimators."""
    _check_estimator(estimator)
    pos = _as_positions(positions)
    cps = sorted(int(c) for c in np.asarray(changepoints).ravel())
    if cps and (cps[0] <= 0 or cps[-1] >= len(pos) or len(set(cps)) != len(cps)):
        raise ValueError(f"change points must be distinct frames in 1..{len(pos) - 1}, got {cps}")
    pred = None if log10_d_pred is None else np.asarray(log10_d_pred, dtype=float)
    return _build(pos, pred, cps, estimator, R)


def _build(pos, log10_pred, cps, estimator, R) -> TrackSegments:
    n_frames = len(pos)
    edges = [0] + [int(c) for c in cps] + [n_frames]
    bounds = list(zip(edges[:-1], edges[1:]))
    ds, s2 = _segment_estimates(pos, bounds, estimator, R, log10_pred)
    segs = [(a, b, float(d), b - a) for (a, b), d in zip(bounds, ds)]
    per_frame = np.repeat(ds, [b - a for a, b in bounds]) if n_frames else np.empty(0)
    return TrackSegments(np.asarray(cps, dtype=int), segs, per_frame, log10_pred, estimator, s2)


_ESTIMATORS = ("mle", "cve", "cve_pooled", "step")


def _check_estimator(estimator: str) -> str:
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, not {estimator!r}")
    return estimator


def segment_track(
    positions,
    log10_d_pred=None,
    estimator: str = "mle",
    model="default",
    device=None,
    R: float = R_FULL_FRAME,
    use_positions: bool = True,
    **cp_kwargs,
) -> TrackSegments:
    """Change points and per-segment D of one track (T, dim) in pixels.

    ``log10_d_pred``: STEP's per-frame log10 D for this track; predicted with ``model`` when not
    given. ``estimator`` for each segment's D:

    - "mle" (default): maximum likelihood, :func:`mle_d`; best without localisation noise, reads
      D + sigma^2 with noise of variance sigma^2 per axis;
    - "cve": :func:`cve_d` per segment, unbiased under localisation noise but noisy on short
      segments (``R`` only changes the reported ``sigma2``);
    - "cve_pooled": one localisation variance per track (the CVE sigma^2 formula with motion-blur
      coefficient ``R``, precision-weighted over the segments, clipped at 0), subtracted from each
      segment's mean squared step: D = (<dx^2>/2 - sigma^2) / (1 - 2R). Assumes the noise is the
      same along the track; the most accurate under noise in the benchmark, but ``R`` must match
      the acquisition (1/6 full-frame camera exposure, 0 for instantaneous snapshots);
    - "step": 10 ** the mean STEP log10 D over the segment.

    A CVE that comes out <= 0 (D far below the noise on a short segment) falls back to the STEP
    segment mean. ``use_positions=False`` detects change points from the STEP output alone (plain
    KCPD). Other keyword arguments go to :func:`find_changepoints` (penalty, min_size, kernel,
    threshold, refine...).
    """
    _check_estimator(estimator)
    pos = _as_positions(positions)
    if log10_d_pred is None:
        from .predict import predict_log10_d

        log10_d_pred = predict_log10_d([pos], model=model, device=device)[0]
    pred = np.asarray(log10_d_pred, dtype=float)
    if pred.shape != (len(pos),):
        raise ValueError(f"log10_d_pred has shape {pred.shape}, expected ({len(pos)},)")
    cps = find_changepoints(pred, pos if use_positions else None, **cp_kwargs)
    return _build(pos, pred, cps, estimator, R)


def segment_tracks(
    tracks,
    model="default",
    estimator: str = "mle",
    device=None,
    log10_d_preds=None,
    progress=None,
    **kw,
) -> list[TrackSegments]:
    """:func:`segment_track` for many tracks: one batched STEP call, then change points per track.

    ``tracks``: an (N, T, dim) array or a list of (T_i, dim) arrays (pixels, no gaps).
    ``log10_d_preds``: precomputed STEP outputs (skips the model). Other keyword arguments as for
    :func:`segment_track` (R, use_positions) and :func:`find_changepoints`.
    """
    from ._input import as_track_list

    _check_estimator(estimator)
    tracks = as_track_list(tracks, allow_nan=False)
    if log10_d_preds is None:
        from .predict import predict_log10_d

        log10_d_preds = predict_log10_d(tracks, model=model, device=device, progress=progress)
    if len(log10_d_preds) != len(tracks):
        raise ValueError(f"{len(log10_d_preds)} predictions for {len(tracks)} tracks")
    return [
        segment_track(tr, log10_d_pred=p, estimator=estimator, **kw)
        for tr, p in zip(tracks, log10_d_preds)
    ]


SEGMENT_COLUMNS = ["track_id", "segment", "start_frame", "stop_frame", "n_frames", "d"]


def segments_table(track_ids, results, frame_offsets=None) -> pd.DataFrame:
    """One row per segment for export: track_id, segment (0-based), start_frame, stop_frame
    (exclusive), n_frames, d (px^2/frame).

    ``frame_offsets`` (optional, one per track) are added to the frame columns, for tracks that
    do not start at frame 0 of the movie.
    """
    track_ids = list(track_ids)
    if len(track_ids) != len(results):
        raise ValueError(f"{len(track_ids)} track ids for {len(results)} results")
    offsets = [0] * len(results) if frame_offsets is None else list(frame_offsets)
    rows = []
    for tid, res, off in zip(track_ids, results, offsets):
        for k, (a, b, d, n) in enumerate(res.segments):
            rows.append((tid, k, int(a + off), int(b + off), int(n), float(d)))
    df = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    return df.astype({"segment": int, "start_frame": int, "stop_frame": int, "n_frames": int})
