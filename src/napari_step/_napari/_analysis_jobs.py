"""The STEP widget's analysis job, as a plain generator (no Qt): the widget runs it in a napari
``thread_worker`` thread (every ``yield`` is one progress step and a point where Cancel can stop
the job); :func:`._jobs.run_job` drives it to the end without any GUI. The analysis is the
core's :func:`napari_step.analysis.analyse_tracks`, so the GUI computes what the CLI computes.

Errors never escape a job: a job *returns* a :class:`JobError` (with a message for the user)
instead of raising, so a worker thread never turns a bad parameter into a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..analysis import (
    RESULT_COLUMNS,
    AnalysisSummary,
    analyse_tracks,
    choose_frame_step,
    choose_model,
    d_units,
    gap_free_pieces,
)
from ..drift import ensemble_drift, subtract_drift
from ..tracks import TrackTableError, from_napari, validate_table
from ._jobs import JobError, run_job

__all__ = [
    "JobError",
    "AnalysisParams",
    "analyse_job",
    "analysis_chunks",
    "analyse_layer_job",
    "n_analysis_chunks",
    "run_job",
    "parse_track_ids",
    "ESTIMATORS",
    "SEGMENT_FEATURES",
    "SEGMENTS_COLUMNS",
    "SEGMENT_DETAILS",
    "tidy_segments",
    "empty_segments",
    "ALPHA_FEATURE",
]

ESTIMATORS = ("mle", "cve_pooled")  # the per-segment D estimators the widget offers
SEGMENT_FEATURES = ["segment_d", "segment_log10_d"]  # per-point features of a segments run
# the merged segments table: the core's columns (stop_frame exclusive, d in the results' units)
# plus ``changepoint`` (True where the segment starts at a change point, False at the start of
# a track or of a gap-free piece)
ALPHA_FEATURE = "step_alpha"  # per-point anomalous exponent alpha(t) (scale-free, no units)
STATE_FEATURE = "step_state"  # per-point AnDi-2 state: 0 immobile, 1 confined, 2 free, 3 directed
ALPHA_MODEL = "default"  # the shipped 2-D STEP alpha model
SEGMENTS_COLUMNS = [
    "track_id",
    "segment",
    "start_frame",
    "stop_frame",
    "n_frames",
    "d",
    "changepoint",
]
_SEGMENT_DTYPES = {
    "track_id": np.int64,
    "segment": int,
    "start_frame": int,
    "stop_frame": int,
    "n_frames": int,
    "d": float,
    "changepoint": bool,
}
# per-segment columns the core adds when it can (napari_step.analysis.analyse_tracks):
# duration (s when calibrated, else frames), median alpha, the most frequent AnDi-2 state and
# the confinement radius of confined segments (um when calibrated, else px)
SEGMENT_DETAILS = ["duration", "alpha", "state", "confinement_radius"]


@dataclass
class AnalysisParams:
    pixel_size_um: float = 1.0
    frame_interval_s: float = 1.0
    model: str = "auto"  # "auto" (chosen from the tracks), a built-in name or a checkpoint path
    model_name: str = "auto"  # what the metadata and messages call it
    device: str | None = None  # None/'auto', 'cpu', 'cuda'
    tamsd_window: int = 20
    subtract_drift: bool = False  # subtract the layer's common drift before reading D
    segments: bool = False  # also find change points and per-segment D
    estimator: str = "mle"  # per-segment D estimator (see napari_step.segment.segment_track)
    alpha: bool = False  # also predict the per-frame anomalous exponent alpha(t)
    alpha_model: str = ALPHA_MODEL
    states: bool = False  # also predict the per-frame AnDi-2 state (STATE_FEATURE)
    frame_step: int | str = "auto"  # frames per step D is read at; "auto": acquisition check
    units: str = ""  # the D units label ("um^2/s", "px^2/frame"); "" = from the numbers

    def d_units(self) -> str:
        """The D units of the results: the explicit label, else from the numbers."""
        return self.units or d_units(self.pixel_size_um, self.frame_interval_s)

    def metadata(self) -> dict:
        md = {
            "pixel_size_um": self.pixel_size_um,
            "frame_interval_s": self.frame_interval_s,
            "model": self.model_name,
            "tamsd_window": self.tamsd_window,
            "units": self.d_units(),
        }
        if self.subtract_drift:
            md["drift_subtracted"] = True
        if self.segments:
            md["segment_estimator"] = self.estimator
        if self.alpha:
            md["alpha_model"] = str(self.alpha_model)
        return md


def tidy_segments(parts) -> pd.DataFrame:
    """Concatenate the core's segment tables (``summary.segments`` of each chunk) into one table
    with :data:`SEGMENTS_COLUMNS` and, where any part has them, the per-segment
    :data:`SEGMENT_DETAILS` (``duration``, ``alpha``, ``state``, ``confinement_radius``; missing
    values NaN / NA): segments numbered per track (the core numbers them per gap-free piece),
    sorted by track and start frame, ``changepoint`` marking the segments that start at a change
    point (not at a track's or piece's start)."""
    frames = []
    for p in parts:
        if p is None or len(p) == 0:
            continue
        p = p.copy()
        if "changepoint" not in p.columns:
            p["changepoint"] = p["segment"].to_numpy() > 0
        frames.append(p)
    if not frames:
        return empty_segments()
    out = pd.concat(frames, ignore_index=True)
    out = out.sort_values(["track_id", "start_frame"], kind="stable").reset_index(drop=True)
    out["segment"] = out.groupby("track_id").cumcount()
    details = [c for c in SEGMENT_DETAILS if c in out.columns]
    out = out[SEGMENTS_COLUMNS + details].astype(_SEGMENT_DTYPES)
    for c in details:
        out[c] = out[c].astype("Int64" if c == "state" else float)
    return out


def empty_segments() -> pd.DataFrame:
    """A segments table without rows (the :data:`SEGMENTS_COLUMNS`, typed)."""
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _SEGMENT_DTYPES.items()})


def analysis_chunks(track_ids, table: pd.DataFrame, n_chunks: int = 20, min_chunk: int = 8):
    """Split track IDs into chunks of similar track lengths (for batching and progress)."""
    ids = np.unique(np.asarray(list(track_ids), dtype=np.int64))
    if not ids.size:
        return []
    counts = table.groupby("track_id").size()
    n = counts.reindex(ids, fill_value=0).to_numpy()
    ids = ids[np.lexsort((ids, n))].tolist()  # by length, then ID (one sort, no Python key)
    size = _chunk_size(len(ids), n_chunks, min_chunk)
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def _chunk_size(n_ids: int, n_chunks: int, min_chunk: int) -> int:
    return max(min_chunk, int(np.ceil(n_ids / n_chunks)))


def n_analysis_chunks(n_ids: int, n_chunks: int = 20, min_chunk: int = 8) -> int:
    """How many chunks (progress steps) :func:`analysis_chunks` makes of ``n_ids`` distinct
    track IDs (it does not depend on the tracks' lengths).

    Parameters
    ----------
    n_ids : int
        Number of distinct track IDs.
    n_chunks, min_chunk : int
        As for :func:`analysis_chunks`.

    Returns
    -------
    int
        The number of chunks (0 without IDs).
    """
    return 0 if n_ids <= 0 else int(np.ceil(n_ids / _chunk_size(n_ids, n_chunks, min_chunk)))


def _combine(summaries: list[AnalysisSummary], units: str) -> AnalysisSummary:
    out = AnalysisSummary(units=units)
    for s in summaries:
        for f in ("n_tracks", "n_points", "n_pieces", "n_short_pieces", "n_gaps", "n_nonfinite"):
            setattr(out, f, getattr(out, f) + getattr(s, f))
    out.messages.extend(out.count_messages())
    if out.n_tracks == 0:
        out.messages.append("no tracks to analyse")
    return out


def analyse_job(table: pd.DataFrame, track_ids, params: AnalysisParams, min_length: int = 1):
    """Generator: STEP + TA-MSD on the chosen tracks, chunk by chunk (yields chunks done).

    Returns ``(results, summary)``: ``results`` holds track_id, frame and the result columns for
    the rows of the chosen tracks only; or a :class:`JobError`. With ``params.segments`` the
    results also hold :data:`SEGMENT_FEATURES` and ``summary.segments`` the segments table
    (:func:`tidy_segments`, D in the results' units). With ``params.alpha`` the results also
    hold :data:`ALPHA_FEATURE` (per-frame alpha from the core's ``analyse_tracks(alpha=True)``).
    """
    try:
        table = validate_table(table)
        ids = set(int(i) for i in track_ids)
        sub = table[table["track_id"].isin(ids)]
        chunks = analysis_chunks(ids, sub)
        # one drift estimate over every track of the layer, one acquisition check over every
        # chosen track (not per chunk)
        drift = ensemble_drift(table) if params.subtract_drift else None
        read = sub if drift is None else subtract_drift(sub, drift)  # what the check reads
        pieces = gap_free_pieces(read, ids, min_length)
        frame_step, check_message = choose_frame_step(params.frame_step, pieces)
        model, model_message = choose_model(params.model, pieces, frame_step)
        columns = ["track_id", "frame"] + RESULT_COLUMNS
        if params.segments:
            columns += SEGMENT_FEATURES
        if params.alpha:
            columns += [ALPHA_FEATURE]
        if params.states:
            columns += [STATE_FEATURE]
        parts, summaries = [], []
        for chunk in chunks:
            part, summary = analyse_tracks(
                sub[sub["track_id"].isin(chunk)],
                pixel_size=params.pixel_size_um,
                frame_interval=params.frame_interval_s,
                model=model,
                device=params.device,
                window=params.tamsd_window,
                min_length=min_length,
                segments=bool(params.segments),
                estimator=params.estimator,
                alpha=bool(params.alpha),
                alpha_model=params.alpha_model,
                states=bool(params.states),
                frame_step=frame_step,
                drift=None if drift is None else drift.drift,
            )
            if params.segments:
                if "segment_d" not in part.columns:
                    part["segment_d"] = np.nan
                seg = part["segment_d"].to_numpy(float)
                with np.errstate(divide="ignore", invalid="ignore"):
                    part["segment_log10_d"] = np.log10(np.where(seg > 0, seg, np.nan))
            parts.append(part[columns])
            summaries.append(summary)
            yield len(parts)
        results = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
        summary = _combine(summaries, params.d_units())
        summary.frame_step = frame_step
        if drift is not None:
            summary.messages.append(drift.describe())
        if check_message:
            summary.messages.append(check_message)
        if model_message:
            summary.messages.append(model_message)
        summary.model = str(model)
        if params.segments:
            summary.segments = tidy_segments([s.segments for s in summaries])
        return results, summary
    except (ValueError, TypeError, TrackTableError, RuntimeError, MemoryError, OSError) as e:
        return JobError(f"STEP analysis failed: {e}")


def analyse_layer_job(data, features, track_ids, params: AnalysisParams, min_length: int = 1):
    """Generator: :func:`analyse_job` on a Tracks layer's parts (the track table is built here,
    in the worker thread, not in the GUI thread).

    Parameters
    ----------
    data : ndarray, shape (N, 4 or 5)
        The layer's data: track_id, t, (z,) y, x (px, frames).
    features : pandas.DataFrame
        The layer's features (same row order).
    track_ids, params, min_length
        As for :func:`analyse_job`.

    Returns
    -------
    (pandas.DataFrame, AnalysisSummary) or JobError
        What :func:`analyse_job` returns; a :class:`JobError` when the data is not a track
        table.
    """
    try:
        table = from_napari(data, features)
    except (TrackTableError, ValueError) as e:
        return JobError(f"cannot read the tracks: {e}")
    return (yield from analyse_job(table, track_ids, params, min_length))


def parse_track_ids(text: str) -> list[int]:
    """'1, 4, 7-9' -> [1, 4, 7, 8, 9]; raises ValueError with a readable message."""
    ids: list[int] = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part[1:]:  # a range (a leading '-' would be a negative number)
            a, b = part[0] + part[1:].split("-", 1)[0], part[1:].split("-", 1)[1]
            try:
                lo, hi = int(a.strip()), int(b.strip())
            except ValueError:
                raise ValueError(f"cannot read the track ID range {part!r}") from None
            if hi < lo:
                raise ValueError(f"the range {part!r} runs backwards")
            if hi - lo > 1_000_000:
                raise ValueError(f"the range {part!r} is too long")
            ids.extend(range(lo, hi + 1))
        else:
            try:
                ids.append(int(part))
            except ValueError:
                raise ValueError(f"cannot read {part!r} as a track ID") from None
    return list(dict.fromkeys(ids))
