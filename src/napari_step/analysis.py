"""The one analysis pipeline shared by the GUI, the CLI and the batch runner.

Takes a track table, analyses the chosen tracks (STEP and sliding TA-MSD, in pixels and frames),
and returns a new table with result columns in physical units. Gaps (missing frames, non-finite
positions) split a track into gap-free pieces that are analysed separately: a displacement across
a gap is never fed to an estimator as if it were one frame long.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .predict import predict_log10_d
from .tamsd import tamsd_d
from .tracks import contiguous_runs, split_tracks, validate_table

__all__ = ["analyse_tracks", "AnalysisSummary", "RESULT_COLUMNS", "d_units"]

RESULT_COLUMNS = ["step_d", "tamsd_d", "step_log10_d", "tamsd_log10_d"]


def d_units(pixel_size: float, frame_interval: float) -> str:
    return "px^2/frame" if (pixel_size, frame_interval) == (1.0, 1.0) else "um^2/s"


@dataclass
class AnalysisSummary:
    """What happened, for messages in the GUI and CLI."""

    n_tracks: int = 0
    n_points: int = 0
    n_pieces: int = 0
    n_short_pieces: int = 0
    n_gaps: int = 0
    n_nonfinite: int = 0
    units: str = "px^2/frame"
    messages: list = field(default_factory=list)
    segments: pd.DataFrame | None = None  # one row per segment when asked for (D in `units`)

    def count_messages(self) -> list[str]:
        """The user-facing lines for the counts (short pieces, gaps, skipped points)."""
        out = []
        if self.n_short_pieces:
            out.append(f"{self.n_short_pieces} track piece(s) too short for the model got no STEP D")
        if self.n_gaps:
            out.append(f"{self.n_gaps} gap(s) split tracks into separately analysed pieces")
        if self.n_nonfinite:
            out.append(f"{self.n_nonfinite} point(s) with non-finite positions were skipped")
        return out


def analyse_tracks(
    table: pd.DataFrame,
    pixel_size: float = 1.0,
    frame_interval: float = 1.0,
    model="default",
    device=None,
    window: int = 20,
    track_ids=None,
    min_length: int = 1,
    progress=None,
    batch_size=None,
    segments: bool = False,
    estimator: str = "mle",
) -> tuple[pd.DataFrame, AnalysisSummary]:
    """Analyse tracks and return (new table with RESULT_COLUMNS, summary).

    ``pixel_size`` (um) and ``frame_interval`` (s) convert D from px^2/frame to um^2/s. Only
    ``track_ids`` (default: all) with at least ``min_length`` observed points are analysed; other
    rows get NaN. The input table is not modified. ``segments=True`` also finds change points
    in the STEP output (:mod:`napari_step.segment`), adds per-frame ``segment_d`` and
    ``changepoint`` (True on the first frame of each new segment) and lists the segments in
    ``summary.segments`` (D re-estimated from the positions with ``estimator``).
    """
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel size must be a positive number, got {pixel_size}")
    if not (np.isfinite(frame_interval) and frame_interval > 0):
        raise ValueError(f"frame interval must be a positive number, got {frame_interval}")
    if window < 3:
        raise ValueError(f"TA-MSD window must be at least 3 frames, got {window}")
    out = validate_table(table)
    summary = AnalysisSummary(units=d_units(pixel_size, frame_interval))
    for c in RESULT_COLUMNS:
        out[c] = np.nan
    if track_ids is not None:
        track_ids = set(int(i) for i in track_ids)
    counts = out.groupby("track_id").size()
    eligible = counts.index[counts >= max(1, min_length)]
    if track_ids is not None:
        eligible = [i for i in eligible if i in track_ids]
    tracks = split_tracks(out, eligible)
    summary.n_tracks = len(tracks)

    if segments:
        out["segment_d"] = np.nan
        out["changepoint"] = False
    pieces, piece_rows, piece_tracks = [], [], []
    for tr in tracks:
        finite = np.isfinite(tr.positions).all(axis=1)
        summary.n_nonfinite += int(((tr.rows >= 0) & ~finite).sum())
        runs = contiguous_runs(finite)
        summary.n_gaps += max(0, len(runs) - 1)
        for a, b in runs:
            pieces.append(tr.positions[a:b])
            piece_rows.append(tr.rows[a:b])
            piece_tracks.append((tr.track_id, int(tr.frames[a])))
    summary.n_pieces = len(pieces)
    if not pieces:
        summary.messages.append("no tracks to analyse")
        return out, summary

    with warnings.catch_warnings(record=True):  # short pieces are counted below instead
        warnings.simplefilter("always")
        log_step = predict_log10_d(pieces, model, device, batch_size, progress)
    d_tamsd = tamsd_d(pieces, window=window)
    factor = pixel_size**2 / frame_interval
    step_col = np.full(len(out), np.nan)
    tamsd_col = np.full(len(out), np.nan)
    for rows, ls, dt in zip(piece_rows, log_step, d_tamsd):
        step_col[rows] = 10.0**ls * factor
        tamsd_col[rows] = dt * factor
        if np.isnan(ls).all():
            summary.n_short_pieces += 1
    summary.n_points = int(np.isfinite(step_col).sum())
    out["step_d"] = step_col
    out["tamsd_d"] = tamsd_col
    with np.errstate(divide="ignore", invalid="ignore"):
        out["step_log10_d"] = np.log10(step_col)
        out["tamsd_log10_d"] = np.log10(np.where(tamsd_col > 0, tamsd_col, np.nan))
    summary.messages.extend(summary.count_messages())
    if segments:
        _add_segments(out, summary, pieces, piece_rows, piece_tracks, log_step, estimator, factor)
    out.attrs["napari_step"] = {
        "units": summary.units,
        "pixel_size_um": pixel_size,
        "frame_interval_s": frame_interval,
        "model": str(model),
        "tamsd_window": window,
    }
    return out, summary


def _add_segments(out, summary, pieces, piece_rows, piece_tracks, log_step, estimator, factor):
    """Change points and per-segment D for every analysable piece, written into ``out``."""
    from .segment import segment_tracks, segments_table

    ok = [i for i, ls in enumerate(log_step) if np.isfinite(ls).all()]
    results = segment_tracks([pieces[i] for i in ok], estimator=estimator,
                             log10_d_preds=[log_step[i] for i in ok])
    seg_col = out["segment_d"].to_numpy(copy=True)
    cp_col = out["changepoint"].to_numpy(copy=True)
    for i, res in zip(ok, results):
        rows = piece_rows[i]
        seg_col[rows] = res.segmented_d * factor
        cp_col[rows[np.asarray(res.changepoints, dtype=int)]] = True
    out["segment_d"] = seg_col
    out["changepoint"] = cp_col
    table = segments_table([piece_tracks[i][0] for i in ok], results,
                           frame_offsets=[piece_tracks[i][1] for i in ok])
    table["d"] = table["d"] * factor
    summary.segments = table
