"""Constant-D segments of tracks: change points, per-segment D, and the per-frame segmented D.

:func:`segment_track` cuts a track into segments of constant D and re-estimates each segment's D
from the raw displacements, which is more precise than STEP's per-frame output where D really is
piecewise constant, and statistically interpretable. Its defaults were chosen with
``benchmarks/changepoints.py --switching`` so that the segmented D is not worse than STEP's
per-frame output (pointwise mean |D/D_true - 1|, 2-D tracks of 200 frames, 1000 per set, test
seed): two-state switching with noise 0.345 vs STEP 0.378 (hybrid detector 0.466); 1-4 change
points without noise 0.129 vs 0.138 (0.135), with relative noise 0.150 vs 0.180 (0.189), with
0.05 px noise 0.164 vs 0.219 (0.298).

* detector "auto" (default): per track, the recurring-states HMM of :mod:`napari_step.switching`
  (each state's D pooled over all its visits) where its tied state D explain the exact
  segmentation's segments as well as one D per segment (BIC), else "exact" below. On
  ``benchmarks/changepoints.py --switching`` (1000 tracks per set, test seed): two-state
  switching with 0.12 px noise 0.345 (exact) -> 0.228 (true-segment MLE floor 0.226), the 1-4
  change-point sets 0.129 / 0.150 / 0.164 -> 0.131 / 0.152 / 0.166 (within run-to-run spread),
  constant tracks still 0 false change points;
* detector "exact" (:func:`napari_step.changepoints.exact_changepoints`): the exact penalised
  maximum-likelihood segmentation of the raw steps, penalty 2.0 log T per change point. It beat the
  STEP-proposal hybrid on every benchmark set (the hybrid stays available, ``detector="hybrid"``).
  Its change points are candidates: those reported (``changepoints``, ``segments``) are the ones
  :func:`napari_step.changepoints.confirm_changepoints` confirms (< 1 % false on constant tracks;
  a single wild step, e.g. a mislink, does not make a change, and no first or last segment is
  shorter than 3 steps); ``segmented_d`` keeps the finer candidate segmentation, which follows
  fast switching (its first and last segments may be 1-2 outlying steps);
* estimator "mle_denoised": the maximum-likelihood D of each segment minus the track's pooled
  localisation variance (from the lag-1 step covariance, assuming no motion blur), which removes
  the noise bias of the plain MLE and is never more biased than it whatever the blur;
* STEP fallback: a segment over which STEP's log10 D output has a standard deviation above
  ``spread`` (0.2 decades) is not a constant-D segment at this resolution (fast switching, short
  excursions, drifts): its frames keep STEP's per-frame value in ``segmented_d``; in the other
  segments ``segmented_d`` blends the segment D with STEP's (``blend``, log space).

Conventions (as everywhere in the package): pixels and frames, D in px^2/frame, ``d[t]`` is the D
of the step from frame t to frame t+1 (the last frame repeats the one before it), and a change
point ``c`` means frame c is the first frame of the new segment (so the step c -> c+1 is the first
with the new D). Segments are half-open frame ranges ``[start, stop)``; the D of a segment is
estimated from the steps that leave its frames, c..next-1 (the track's last frame has none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ._d_estimators import R_FULL_FRAME, cve_d, mle_d, noise_corrected_d
from .changepoints import (
    CONFIRM_THRESHOLD,
    DEFAULT_MIN_SIZE,
    EXACT_MIN_SIZE,
    EXACT_PENALTY,
    GLR_THRESHOLD,
    KCPD_PENALTY,
    PROPOSAL_PENALTY,
    _as_positions,
    confirm_changepoints,
    exact_changepoints,
    find_changepoints,
    log_step_sizes,
)
from .switching import fit_switching, prefer_switching, state_d

__all__ = [
    "mle_d",
    "cve_d",
    "log_step_sizes",
    "find_changepoints",
    "exact_changepoints",
    "confirm_changepoints",
    "TrackSegments",
    "segment_track",
    "segment_tracks",
    "segments_table",
    "segments_from_changepoints",
    "SEGMENT_COLUMNS",
    "ESTIMATORS",
    "DETECTORS",
    "DEFAULT_MIN_SIZE",
    "KCPD_PENALTY",
    "PROPOSAL_PENALTY",
    "GLR_THRESHOLD",
    "EXACT_PENALTY",
    "CONFIRM_THRESHOLD",
    "STEP_SPREAD",
    "STEP_BLEND",
]

STEP_SPREAD = 0.2  # decades: std of STEP's log10 D over a segment above which it is not constant
# segmented_d of a constant segment of n frames: 10 ** (w log10 D_seg + (1 - w) log10 D_STEP[t]),
# w = n / (n + STEP_BLEND): STEP's per-frame value weighs as much as the steps of STEP_BLEND
# frames. Chosen on benchmarks/changepoints.py's tuning seed (10-100 frames); 20 lowered
# every set's error (two-state switching 0.361 -> 0.348, noise-free 0.312 -> 0.301, 1-4 change
# points 0.143 / 0.157 / 0.162 -> 0.138 / 0.152 / 0.159)
STEP_BLEND = 20.0
ESTIMATORS = ("mle_denoised", "mle", "cve", "cve_pooled", "step")
DETECTORS = ("exact", "hybrid", "step", "hmm", "auto")


# --------------------------------------------------------------------------------------------
# segments
# --------------------------------------------------------------------------------------------


@dataclass
class TrackSegments:
    """Segmentation of one track.

    ``changepoints``: frames where a new segment starts. ``segments``: (start, stop, d, n_frames)
    per segment, frames [start, stop), d in px^2/frame (NaN where it cannot be estimated).
    ``segmented_d``: per-frame D (T,) px^2/frame: the D of the (candidate, see
    :func:`segment_track` ``confirm``) segment each frame is in, or STEP's per-frame D in
    segments that are not constant. ``log10_d_pred``: the STEP
    output used. ``sigma2``: per-segment localisation variance (px^2 per axis) for the CVE
    estimators (one pooled value for every segment with "cve_pooled" and "mle_denoised"), else
    None. ``constant``: per segment, whether STEP's output is consistent with one D over it.
    """

    changepoints: np.ndarray
    segments: list
    segmented_d: np.ndarray
    log10_d_pred: np.ndarray | None = None
    estimator: str = "mle_denoised"
    sigma2: np.ndarray | None = field(default=None, repr=False)
    constant: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_segments(self) -> int:
        return len(self.segments)


def _fallback_step(ds, parts, log10_pred):
    """Replace non-positive / NaN D of segments or states (``parts``: their frames, as slices
    or masks) by STEP's mean over their frames (trained on noisy tracks), the only usable value
    when a noise-corrected estimate comes out <= 0."""
    bad = ~(ds > 0)
    if bad.any() and log10_pred is not None:
        for i in np.flatnonzero(bad):
            vals = log10_pred[parts[i]]
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
    n_pairs = np.array([max(len(s) - 2, 0) for s in segs], dtype=float)
    ds, s2 = noise_corrected_d(msq, cov, n_pairs, estimator, R)
    parts = [slice(a, b) for a, b in bounds]
    return _fallback_step(np.asarray(ds, dtype=float), parts, log10_pred), s2


def _not_constant(log10_pred, bounds, spread: float | None) -> np.ndarray:
    """Per segment: whether STEP's log10 D varies by more than ``spread`` decades (std)."""
    out = np.zeros(len(bounds), dtype=bool)
    if spread is None or log10_pred is None:
        return out
    for i, (a, b) in enumerate(bounds):
        vals = log10_pred[a:b]
        vals = vals[np.isfinite(vals)]
        out[i] = vals.size > 1 and float(vals.std()) > spread
    return out


def _bounds(cps, n_frames: int) -> list:
    edges = [0] + [int(c) for c in cps] + [n_frames]
    return list(zip(edges[:-1], edges[1:]))


def _per_frame_d(pos, log10_pred, cps, estimator, R, spread, blend=None) -> np.ndarray:
    """Per-frame D of the segmentation ``cps``: STEP's own D over segments it finds varying;
    with ``blend`` (frames), the segment D and STEP's per-frame D combined in log space."""
    bounds = _bounds(cps, len(pos))
    ds, _ = _segment_estimates(pos, bounds, estimator, R, log10_pred)
    per_frame = np.repeat(ds, [b - a for a, b in bounds]) if len(pos) else np.empty(0)
    for (a, b), bad, d in zip(bounds, _not_constant(log10_pred, bounds, spread), ds):
        if bad:
            per_frame[a:b] = 10.0 ** log10_pred[a:b]
        elif blend and d > 0 and log10_pred is not None:
            w = (b - a) / (b - a + blend)
            step = log10_pred[a:b]
            mixed = 10.0 ** (w * np.log10(d) + (1.0 - w) * step)
            per_frame[a:b] = np.where(np.isfinite(step), mixed, d)
    return per_frame


def _build(pos, log10_pred, cps, estimator, R, spread=None, detail=None, blend=None):
    """Segments over ``cps``; the per-frame D over ``detail`` (a finer segmentation) if given."""
    bounds = _bounds(cps, len(pos))
    ds, s2 = _segment_estimates(pos, bounds, estimator, R, log10_pred)
    segs = [(a, b, float(d), b - a) for (a, b), d in zip(bounds, ds)]
    fine = cps if detail is None else detail
    per_frame = _per_frame_d(pos, log10_pred, fine, estimator, R, spread, blend)
    varying = _not_constant(log10_pred, bounds, spread)
    return TrackSegments(
        np.asarray(cps, dtype=int), segs, per_frame, log10_pred, estimator, s2, ~varying
    )


def _build_states(pos, log10_pred, states, estimator, R, confirm=None, blend=None):
    """Segments of a state path (detector "hmm"/"auto"): every frame gets the D of all its
    state's steps (:func:`napari_step.switching.state_d`; a state whose D cannot be estimated
    falls back to STEP's mean over its frames), blended with STEP as a segment of as many frames
    as the state has. With ``confirm``, the reported change points
    are the state changes :func:`confirm_changepoints` confirms (short visits stay in
    ``segmented_d`` only) and a reported segment's D is the mean of its frames' D."""
    if estimator == "step":
        raise ValueError('estimator "step" has no per-state form: use detector "exact"')
    d_state, s2_state = state_d(pos, states, estimator, R)
    d_state = _fallback_step(d_state, [states == j for j in range(len(d_state))], log10_pred)
    per_frame = d_state[states]
    if blend and log10_pred is not None and np.isfinite(log10_pred).any():
        # as for a segment of n frames, with n the frames of the state (its D pools them all)
        n = np.bincount(states, minlength=len(d_state))[states]
        w = n / (n + blend)
        mixed = 10.0 ** (w * np.log10(per_frame) + (1.0 - w) * log10_pred)
        per_frame = np.where(np.isfinite(mixed), mixed, per_frame)
    cps = np.flatnonzero(states[1:] != states[:-1]) + 1
    if confirm is not None and len(cps):
        cps = confirm_changepoints(pos, cps, confirm)
    bounds = _bounds(cps, len(pos))
    segs = [(a, b, float(np.mean(per_frame[a:b])), b - a) for a, b in bounds]
    s2 = None if s2_state is None else np.full(len(bounds), float(np.mean(s2_state)))
    return TrackSegments(
        np.asarray(cps, dtype=int), segs, per_frame, log10_pred, estimator, s2,
        np.ones(len(bounds), dtype=bool),
    )  # fmt: skip


def _check_estimator(estimator: str) -> str:
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}, not {estimator!r}")
    return estimator


def segments_from_changepoints(
    positions: np.ndarray,
    changepoints,
    estimator: str = "mle_denoised",
    log10_d_pred: np.ndarray | None = None,
    R: float = R_FULL_FRAME,
    spread: float | None = None,
    blend: float | None = None,
) -> TrackSegments:
    """Per-segment D of a track cut at given change points (e.g. the true or hand-edited ones).

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px.
    changepoints : array_like of int
        Distinct frames in 1..T-1, each the first frame of a new segment.
    estimator : str
        See :func:`segment_track`.
    log10_d_pred : array_like, shape (T,), optional
        STEP's log10 D (px^2/frame); needed by "step", the fallback of the CVE estimators and
        ``spread``.
    R : float
        Motion-blur coefficient for "cve" (its sigma^2) and "cve_pooled".
    spread : float, optional
        STEP fallback threshold in decades (default here: none, the segments are given).
    blend : float, optional
        Frames: log-space blend of constant segments' D with STEP in ``segmented_d`` (see
        :func:`segment_track`; default here: none).

    Returns
    -------
    TrackSegments
    """
    _check_estimator(estimator)
    pos = _as_positions(positions)
    cps = sorted(int(c) for c in np.asarray(changepoints).ravel())
    if cps and (cps[0] <= 0 or cps[-1] >= len(pos) or len(set(cps)) != len(cps)):
        raise ValueError(f"change points must be distinct frames in 1..{len(pos) - 1}, got {cps}")
    pred = None if log10_d_pred is None else np.asarray(log10_d_pred, dtype=float)
    return _build(pos, pred, cps, estimator, R, spread, blend=blend)


def _detect(pred: np.ndarray, pos: np.ndarray, detector: str, cp_kwargs: dict) -> np.ndarray:
    if detector == "exact":
        return exact_changepoints(pos, **cp_kwargs)
    if detector == "hybrid":
        return find_changepoints(pred, pos, **cp_kwargs)
    if detector == "step":
        return find_changepoints(pred, None, **cp_kwargs)
    raise ValueError(f"detector must be one of {DETECTORS}, not {detector!r}")


def segment_track(
    positions: np.ndarray,
    log10_d_pred: np.ndarray | None = None,
    estimator: str = "mle_denoised",
    model: str | Path = "default",
    device: str | None = None,
    R: float = R_FULL_FRAME,
    use_positions: bool = True,
    detector: str = "auto",
    spread: float | None = STEP_SPREAD,
    confirm: float | None = CONFIRM_THRESHOLD,
    blend: float | None = STEP_BLEND,
    **cp_kwargs,
) -> TrackSegments:
    """Change points, per-segment D and the per-frame segmented D of one track.

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px.
    log10_d_pred : array_like, shape (T,), optional
        STEP's per-frame log10 D (px^2/frame); predicted with ``model``/``device`` when not given.
    estimator : str
        Each segment's D (px^2/frame) from the steps leaving its frames:

        - "mle_denoised" (default): the MLE minus the track's pooled localisation variance,
          estimated from the lag-1 step covariance assuming instantaneous exposure (clipped at 0):
          unbiased under localisation noise, the MLE's blur bias under motion blur;
        - "mle": maximum likelihood, :func:`mle_d`; reads D + sigma^2 under noise of variance
          sigma^2 per axis;
        - "cve": :func:`cve_d` per segment, unbiased under noise, noisy on short segments;
        - "cve_pooled": one localisation variance per track from the CVE sigma^2 formula with
          motion-blur coefficient ``R`` (1/6 full-frame exposure, 0 snapshots), then
          D = (<dx^2>/2 - sigma^2) / (1 - 2R): unbiased under blur and noise when ``R`` is right;
        - "step": 10 ** the mean STEP log10 D over the segment.

        A noise-corrected D that comes out <= 0 falls back to the STEP segment mean.
    model, device
        For the STEP prediction (see :func:`napari_step.predict.predict_d`).
    R : float
        Motion-blur coefficient for "cve" (its sigma^2) and "cve_pooled".
    use_positions : bool
        False is ``detector="step"`` (kept for existing code).
    detector : {"auto", "exact", "hybrid", "step", "hmm"}
        "exact": :func:`exact_changepoints` on the raw steps; "hybrid": :func:`find_changepoints`
        with the positions; "step": plain KCPD on the STEP output; "hmm": a hidden Markov model
        of 1-3 recurring states (:func:`napari_step.switching.fit_switching`), each state's D
        estimated from all its visits: for tracks that switch back and forth between a few D
        values (binding/unbinding), where it is far more precise on short visits; not for D
        that drifts or takes many distinct values. ``confirm`` (the reported change points) and
        ``blend`` (weight: the state's frames) apply as for "exact"; ``spread`` does not.
        "auto": per track, "hmm" where its BIC beats that of the exact segmentation's
        independent segments (the segments are visits of a few recurring
        states: :func:`napari_step.switching.prefer_switching`), else "exact" (default).
    spread : float or None
        Decades: segments over which STEP's log10 D has a larger standard deviation keep STEP's
        per-frame D in ``segmented_d`` (``constant`` False); None switches the fallback off.
    confirm : float or None
        Detector "exact" only: the reported change points are those of the exact segmentation
        that :func:`confirm_changepoints` confirms at this threshold (2 x log-likelihood ratio
        per log T, times the squared steps' variance inflation): under 1 % false change points
        on constant tracks. ``segmented_d`` keeps the finer exact segmentation, which follows
        fast switching more closely (it is not worse than STEP's per-frame D there). None: no
        confirmation (every change point of the exact segmentation is reported).
    blend : float or None
        Frames: in ``segmented_d``, a constant segment's D and STEP's per-frame D are averaged
        in log space with weights n and ``blend`` for a segment of n frames (STEP reads the
        local context as precisely as a segment of about that many frames: the blend follows
        slow trends and misplaced boundaries better than either); None (or ``spread`` None):
        the segment D alone.
    **cp_kwargs
        Passed to the detector (penalty, min_size, scale_with_length, dispersion; kernel,
        threshold, refine).

    Returns
    -------
    TrackSegments
    """
    _check_estimator(estimator)
    pos = _as_positions(positions)
    if log10_d_pred is None:
        from .predict import predict_log10_d

        log10_d_pred = predict_log10_d([pos], model=model, device=device)[0]
    pred = np.asarray(log10_d_pred, dtype=float)
    if pred.shape != (len(pos),):
        raise ValueError(f"log10_d_pred has shape {pred.shape}, expected ({len(pos)},)")
    if not use_positions:
        detector = "step"
    if not np.isfinite(pred).any():  # too short for the model: no STEP to fall back on
        spread = None
    if spread is None:  # no STEP to lean on
        blend = None
    if detector == "hmm":
        states = fit_switching(pos, **cp_kwargs).states
        return _build_states(pos, pred, states, estimator, R, confirm, blend)
    cps = _detect(pred, pos, "exact" if detector == "auto" else detector, cp_kwargs)
    if detector == "auto" and estimator != "step" and len(cps):
        # (no candidate change point: one D explains the track, no states to pool)
        fit = fit_switching(pos)
        if prefer_switching(pos, fit, cps):
            return _build_states(pos, pred, fit.states, estimator, R, confirm, blend)
        detector = "exact"
    if detector != "exact" or confirm is None:
        return _build(pos, pred, cps, estimator, R, spread, blend=blend)
    min_size = cp_kwargs.get("min_size", EXACT_MIN_SIZE)
    kept = confirm_changepoints(pos, cps, confirm, min_size=min_size)
    return _build(pos, pred, kept, estimator, R, spread, detail=cps, blend=blend)


def segment_tracks(
    tracks: np.ndarray | list,
    model: str | Path = "default",
    estimator: str = "mle_denoised",
    device: str | None = None,
    log10_d_preds: list | None = None,
    progress=None,
    **kw,
) -> list[TrackSegments]:
    """:func:`segment_track` for many tracks: one batched STEP call, then segments per track.

    Parameters
    ----------
    tracks : ndarray or list of ndarray
        (N, T, dim) or a list of (T_i, dim) gap-free tracks, px.
    model, device, progress
        For the STEP prediction (see :func:`napari_step.predict.predict_d`).
    estimator : str
        See :func:`segment_track`.
    log10_d_preds : list of ndarray, optional
        Precomputed STEP outputs (log10 px^2/frame; skips the model).
    **kw
        As for :func:`segment_track` (R, detector, spread, use_positions, detector options).

    Returns
    -------
    list of TrackSegments
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


def segments_table(track_ids, results: list[TrackSegments], frame_offsets=None) -> pd.DataFrame:
    """One row per segment, for export.

    Parameters
    ----------
    track_ids : iterable of int
        One per result.
    results : list of TrackSegments
    frame_offsets : iterable of int, optional
        Added to the frame columns, for tracks that do not start at frame 0 of the movie.

    Returns
    -------
    DataFrame
        track_id, segment (0-based), start_frame, stop_frame (exclusive), n_frames, d
        (px^2/frame).
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
