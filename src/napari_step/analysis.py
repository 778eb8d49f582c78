"""The one analysis pipeline shared by the GUI, the CLI and the batch runner.

Takes a track table, analyses the chosen tracks (STEP D, optionally STEP alpha and segments, and
a sliding TA-MSD, in pixels and frames), and returns a new table with result columns in physical
units. Gaps (missing frames, non-finite positions) split a track into gap-free pieces
(:func:`gap_free_pieces`) that are analysed separately: a displacement across a gap is never fed to
an estimator as if it were one frame long.

Frame convention: the value in a row at frame t describes the motion from t to t+1 (the last
frame of a piece repeats the one before it); ``changepoint`` is True on the first frame of each
new segment.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .acquisition import check_frame_step, choose_d_model
from .drift import DriftEstimate, ensemble_drift, subtract_drift
from .predict import check_frame_step_value, predict_alpha, predict_log10_d
from .tamsd import tamsd_d
from .tracks import position_columns, validate_table

__all__ = [
    "analyse_tracks",
    "choose_frame_step",
    "choose_model",
    "AnalysisSummary",
    "Pieces",
    "gap_free_pieces",
    "match_rows",
    "RESULT_COLUMNS",
    "SEGMENT_COLUMNS",
    "ALPHA_COLUMN",
    "STATE_COLUMN",
    "d_units",
    "confinement_radius",
]

RESULT_COLUMNS = ["step_d", "tamsd_d", "step_log10_d", "tamsd_log10_d"]
SEGMENT_COLUMNS = ["segment_d", "changepoint"]  # per-row columns of a run with segments=True
ALPHA_COLUMN = "step_alpha"  # per-row anomalous exponent of a run with alpha=True
STATE_COLUMN = "step_state"  # per-row AnDi-2 state (0 immobile .. 3 directed) with states=True


def d_units(pixel_size: float, frame_interval: float) -> str:
    """ "px^2/frame" for pixel_size = frame_interval = 1, else "um^2/s"."""
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
    frame_step: int = 1  # frames per step D was read at (napari_step.acquisition)
    model: str = ""  # the D model read with (the one "auto" chose)

    def count_messages(self) -> list[str]:
        """The user-facing lines for the counts (short pieces, gaps, skipped points)."""
        out = []
        if self.n_short_pieces:
            out.append(
                f"{self.n_short_pieces} track piece(s) too short for the model got no STEP D"
            )
        if self.n_gaps:
            out.append(f"{self.n_gaps} gap(s) split tracks into separately analysed pieces")
        if self.n_nonfinite:
            out.append(f"{self.n_nonfinite} point(s) with non-finite positions were skipped")
        return out


@dataclass
class Pieces:
    """Gap-free pieces of the tracks of a table.

    ``positions``: (T_i, dim) px per piece, one row per frame. ``rows``: the table's row positions
    (0-based, ``iloc``) of each piece's frames. ``track_ids`` and ``first_frames``: the track and
    movie frame each piece starts at. ``n_tracks``: tracks split; ``n_gaps``: splits made;
    ``n_nonfinite``: rows skipped for non-finite positions.
    """

    positions: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    track_ids: list = field(default_factory=list)
    first_frames: list = field(default_factory=list)
    n_tracks: int = 0
    n_gaps: int = 0
    n_nonfinite: int = 0

    def __len__(self) -> int:
        return len(self.positions)


def gap_free_pieces(
    table: pd.DataFrame, track_ids: Iterable[int] | None = None, min_length: int = 1
) -> Pieces:
    """Split the tracks of a validated table at missing frames and non-finite positions.

    Parameters
    ----------
    table : DataFrame
        A table passed through :func:`napari_step.tracks.validate_table` (track_id, frame,
        positions in px).
    track_ids : iterable of int, optional
        Tracks to split (default: all).
    min_length : int
        Only tracks with at least this many rows (observed points) are split.

    Returns
    -------
    Pieces
    """
    counts = table.groupby("track_id").size()
    eligible = counts.index[counts >= max(1, int(min_length))].to_numpy(np.int64)
    if track_ids is not None:
        eligible = np.intersect1d(eligible, np.fromiter(track_ids, np.int64))
    out = Pieces(n_tracks=int(eligible.size))
    tid = table["track_id"].to_numpy(np.int64)
    frame = table["frame"].to_numpy(np.int64)
    rows = np.flatnonzero(np.isin(tid, eligible))
    rows = rows[np.lexsort((frame[rows], tid[rows]))]  # by track, then frame
    xyz = table[position_columns(table)].to_numpy(float)[rows]
    finite = np.isfinite(xyz).all(axis=1)
    out.n_nonfinite = int((~finite).sum())
    rows, xyz = rows[finite], xyz[finite]
    if rows.size == 0:
        return out
    t, f = tid[rows], frame[rows]
    # a piece starts at a new track or after a missing frame (or a dropped non-finite row)
    new_piece = np.ones(rows.size, bool)
    new_piece[1:] = (t[1:] != t[:-1]) | (f[1:] != f[:-1] + 1)
    starts = np.flatnonzero(new_piece)
    out.positions = np.split(xyz, starts[1:])
    out.rows = np.split(rows, starts[1:])
    out.track_ids = t[starts].tolist()
    out.first_frames = f[starts].tolist()
    out.n_gaps = int(starts.size - np.unique(t[starts]).size)
    return out


def match_rows(track_id, frame, query_track_id, query_frame) -> np.ndarray:
    """Where each (track, frame) pair of a query sits in a table: the (track, frame) join.

    Parameters
    ----------
    track_id, frame : array-like of int
        The table's keys, one per row (pairs unique).
    query_track_id, query_frame : array-like of int
        The pairs to look up.

    Returns
    -------
    ndarray of int
        Row position (0-based) in the table of each query pair; -1 where it is absent.
    """
    index = pd.MultiIndex.from_arrays(
        [np.asarray(track_id, dtype=np.int64), np.asarray(frame, dtype=np.int64)]
    )
    query = pd.MultiIndex.from_arrays(
        [np.asarray(query_track_id, dtype=np.int64), np.asarray(query_frame, dtype=np.int64)]
    )
    return index.get_indexer(query)


def _check_parameters(pixel_size: float, frame_interval: float, window: int) -> None:
    if not (np.isfinite(pixel_size) and pixel_size > 0):
        raise ValueError(f"pixel size must be a positive number, got {pixel_size}")
    if not (np.isfinite(frame_interval) and frame_interval > 0):
        raise ValueError(f"frame interval must be a positive number, got {frame_interval}")
    if window < 3:
        raise ValueError(f"TA-MSD window must be at least 3 frames, got {window}")


def _quietly(predict, pieces: Pieces, **kw) -> list[np.ndarray]:
    with warnings.catch_warnings(record=True):  # short pieces are counted instead
        warnings.simplefilter("always")
        return predict(pieces.positions, **kw)


def _per_row(n_rows: int, pieces: Pieces, values, scale: float = 1.0) -> np.ndarray:
    """Per-piece arrays scattered into a column of ``n_rows`` rows (NaN elsewhere)."""
    col = np.full(n_rows, np.nan)
    for rows, v in zip(pieces.rows, values):
        col[rows] = np.asarray(v, dtype=float) * scale
    return col


def _empty_columns(segments: bool, alpha: bool, states: bool) -> dict:
    """The result columns of a run, before any track is analysed."""
    empty = {c: np.nan for c in RESULT_COLUMNS}
    empty.update({"segment_d": np.nan, "changepoint": False} if segments else {})
    empty.update({ALPHA_COLUMN: np.nan} if alpha else {})
    empty.update({STATE_COLUMN: np.nan} if states else {})
    return empty


def _head_models(alpha_model, state_model) -> dict:
    """Metadata entries naming the optional heads' models (falsy: head not run)."""
    out = {"alpha_model": str(alpha_model)} if alpha_model else {}
    return {**out, "state_model": str(state_model)} if state_model else out


def _most_probable_states(pieces: Pieces, state_model) -> list[np.ndarray]:
    """Per piece, the most probable AnDi-2 state per frame (float, NaN where undefined)."""
    from .states import predict_state

    out = []
    for prob in predict_state(pieces.positions, model=state_model):
        ok = np.isfinite(prob).all(axis=1)
        out.append(np.where(ok, np.argmax(np.nan_to_num(prob), axis=1), np.nan))
    return out


def _add_d_columns(
    out: pd.DataFrame,
    pieces: Pieces,
    log_step: list,
    window: int,
    factor: float,
    summary: AnalysisSummary,
    frame_step: int = 1,
) -> None:
    """STEP and TA-MSD D (and their log10) in the table's units; TA-MSD at lags k and 2k for a
    frame step k (its window at least 3 of the longer lag)."""
    step_col = _per_row(len(out), pieces, [10.0**ls for ls in log_step], factor)
    k = frame_step
    ta = tamsd_d(pieces.positions, window=window if k == 1 else max(window, 6 * k), lags=(k, 2 * k))
    tamsd_col = _per_row(len(out), pieces, ta, factor)
    summary.n_short_pieces = sum(bool(np.isnan(ls).all()) for ls in log_step)
    summary.n_points = int(np.isfinite(step_col).sum())
    out["step_d"] = step_col
    out["tamsd_d"] = tamsd_col
    with np.errstate(divide="ignore", invalid="ignore"):
        out["step_log10_d"] = np.log10(step_col)
        out["tamsd_log10_d"] = np.log10(np.where(tamsd_col > 0, tamsd_col, np.nan))


def _add_segments(
    out: pd.DataFrame,
    summary: AnalysisSummary,
    pieces: Pieces,
    log_step: list,
    estimator: str,
    factor: float,
) -> np.ndarray:
    """Change points and per-segment D for every analysable piece, written into ``out``.

    Returns, per row of ``out``, the row of ``summary.segments`` its frame belongs to (-1: none).
    """
    from .segment import segment_tracks, segments_table

    ok = [i for i, ls in enumerate(log_step) if np.isfinite(ls).all()]
    results = segment_tracks(
        [pieces.positions[i] for i in ok],
        estimator=estimator,
        log10_d_preds=[log_step[i] for i in ok],
    )
    seg_col = np.full(len(out), np.nan)
    cp_col = np.zeros(len(out), dtype=bool)
    seg_of_row = np.full(len(out), -1, dtype=np.int64)
    n_seg = 0
    for i, res in zip(ok, results):
        rows = pieces.rows[i]
        seg_col[rows] = res.segmented_d * factor
        cp_col[rows[np.asarray(res.changepoints, dtype=int)]] = True
        for a, b, *_ in res.segments:  # same order as the rows of segments_table
            seg_of_row[rows[int(a) : int(b)]] = n_seg
            n_seg += 1
    out["segment_d"] = seg_col
    out["changepoint"] = cp_col
    table = segments_table(
        [pieces.track_ids[i] for i in ok],
        results,
        frame_offsets=[pieces.first_frames[i] for i in ok],
    )
    table["d"] = table["d"] * factor
    summary.segments = table
    return seg_of_row


def confinement_radius(positions: np.ndarray) -> float:
    """Radius of the compartment that a confined stretch of a track explored.

    Estimated from the radius of gyration: for positions spread uniformly over a ``dim``-ball of
    radius r, the mean squared distance to their centre is Rg^2 = dim / (dim + 2) r^2 (r^2 / 2 in
    2-D, i.e. half the MSD plateau r^2), so r = sqrt((dim + 2) / dim * Rg^2). Localisation noise
    sigma (per axis) adds dim sigma^2 to Rg^2 (an overestimate); a stretch too short to explore
    its compartment gives an underestimate.

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        Positions of the stretch (any length unit; the radius comes out in the same unit).
        Non-finite rows are ignored.

    Returns
    -------
    float
        The radius; NaN with fewer than 3 finite positions.
    """
    p = np.asarray(positions, dtype=float)
    if p.ndim != 2:
        raise ValueError(f"positions must be a (T, dim) array, got shape {p.shape}")
    p = p[np.isfinite(p).all(axis=1)]
    if len(p) < 3:
        return float("nan")
    dim = p.shape[1]
    rg2 = float(((p - p.mean(axis=0)) ** 2).sum(axis=1).mean())
    return float(np.sqrt((dim + 2) / dim * rg2))


def _add_segment_details(
    out: pd.DataFrame,
    seg: pd.DataFrame,
    seg_of_row: np.ndarray,
    pixel_size: float,
    frame_interval: float,
) -> None:
    """Complete the segments table ``seg`` (rows of ``out`` mapped to its rows by ``seg_of_row``).

    To the columns of :func:`napari_step.segment.segments_table` (``d`` already in table units)
    it adds ``duration`` (s when calibrated, else frames); with ``step_alpha`` in ``out`` the
    segment's median ``alpha``; with ``step_state`` its ``state`` (the one with the most frames)
    and ``confinement_radius`` of confined (state 1) segments (um when calibrated, else px; NaN
    for the others; :func:`confinement_radius`).
    """
    calibrated = d_units(pixel_size, frame_interval) != "px^2/frame"
    frames = (seg["stop_frame"] - seg["start_frame"]).to_numpy(float)
    seg["duration"] = frames * frame_interval if calibrated else frames.astype(int)
    has = seg_of_row >= 0
    key = seg_of_row[has]
    every = pd.RangeIndex(len(seg))
    if ALPHA_COLUMN in out.columns:
        alphas = pd.Series(out[ALPHA_COLUMN].to_numpy(float)[has])
        seg["alpha"] = alphas.groupby(key).median().reindex(every).to_numpy()
    if STATE_COLUMN not in out.columns:
        return
    st = pd.DataFrame({"seg": key, "state": out[STATE_COLUMN].to_numpy(float)[has]}).dropna()
    counts = st.groupby(["seg", "state"]).size().unstack(fill_value=0)
    # the state with the most frames; a tie goes to the lower state number
    state = counts.idxmax(axis=1) if len(counts) else pd.Series(dtype=float)
    seg["state"] = pd.array(state.reindex(every).to_numpy(), dtype="Int64")
    radius = np.full(len(seg), np.nan)
    xyz = out[position_columns(out)].to_numpy(float)
    for k in np.flatnonzero(seg["state"].to_numpy(dtype=float, na_value=np.nan) == 1):
        radius[k] = confinement_radius(xyz[seg_of_row == k]) * pixel_size
    seg["confinement_radius"] = radius


def analyse_tracks(
    table: pd.DataFrame,
    pixel_size: float = 1.0,
    frame_interval: float = 1.0,
    model: str | Path = "auto",
    device: str | None = None,
    window: int = 20,
    track_ids: Iterable[int] | None = None,
    min_length: int = 1,
    progress=None,
    batch_size: int | None = None,
    segments: bool = False,
    estimator: str = "mle_denoised",
    alpha: bool = False,
    alpha_model: str | Path = "default",
    precision: str = "auto",
    states: bool = False,
    state_model: str | Path | None = None,
    frame_step: int | str = "auto",
    drift=None,
) -> tuple[pd.DataFrame, AnalysisSummary]:
    """Analyse tracks: per-frame STEP D and TA-MSD, optionally alpha, states and segments.

    Parameters
    ----------
    table : DataFrame
        track_id, frame and positions (px); any other columns are kept. Not modified.
    pixel_size, frame_interval : float
        um per pixel and s per frame: D in um^2/s (px^2/frame when both are 1).
    model, device, batch_size, progress, precision
        As for :func:`napari_step.predict.predict_d`; ``window``: TA-MSD window (frames, >= 3).
        ``model="auto"`` (default) is decided once over every analysed track
        (:func:`choose_model`); the choice is one of ``summary.messages`` and the table's
        metadata names the model used.
    track_ids : iterable of int, optional
        Tracks to analyse (default: all; others get NaN), if they have >= ``min_length`` points.
    segments : bool
        Also segment the tracks (:mod:`napari_step.segment`, ``estimator``): per-row
        ``segment_d`` (table units) and ``changepoint`` (True on the first frame of each new
        segment), and ``summary.segments`` (one row per segment; columns: see
        :func:`_add_segment_details`).
    alpha : bool
        Also predict the per-frame anomalous exponent (column ``step_alpha``, dimensionless)
        with ``alpha_model`` (:func:`napari_step.predict.predict_alpha`).
    states : bool
        Also the most probable AnDi-2 state per frame (``step_state``: 0 immobile, 1 confined,
        2 free, 3 directed) from :func:`napari_step.states.predict_state` with ``state_model``.
    frame_step : int or "auto"
        Frames per step at which STEP and TA-MSD read D (``predict_d(frame_step=...)``, TA-MSD
        lags k and 2k). "auto": :func:`napari_step.acquisition.check_frame_step` on the analysed
        tracks (1 unless their steps are correlated beyond what blur and noise give, as in
        compressed video; its finding is one of ``summary.messages``).
    drift : None, "ensemble", DataFrame or DriftEstimate
        A common drift to subtract from the positions the estimators read (the returned table
        keeps the input's positions): "ensemble" estimates it from every track of ``table``
        (:func:`napari_step.drift.ensemble_drift`); a DataFrame (index frame, position columns,
        px) or :class:`napari_step.drift.DriftEstimate` is used as given (the GUI estimates it
        once over a whole layer). None: no subtraction.

    Returns
    -------
    results : DataFrame
        A copy of the table with :data:`RESULT_COLUMNS` (D in um^2/s, or px^2/frame when both
        factors are 1) and the optional columns; the value at frame t describes t -> t+1.
    summary : AnalysisSummary
    """
    _check_parameters(pixel_size, frame_interval, window)
    out = validate_table(table)
    summary = AnalysisSummary(units=d_units(pixel_size, frame_interval))
    out = out.assign(**_empty_columns(segments, alpha, states))
    work, drift_message = _without_drift(out, drift)
    pieces = gap_free_pieces(work, track_ids, min_length)
    summary.n_tracks, summary.n_gaps = pieces.n_tracks, pieces.n_gaps
    summary.n_nonfinite, summary.n_pieces = pieces.n_nonfinite, len(pieces)
    if not len(pieces):
        summary.messages.append("no tracks to analyse")
        return out, summary
    if drift_message:
        summary.messages.append(drift_message)
    k, check_message = choose_frame_step(frame_step, pieces)
    summary.frame_step = k
    if check_message:
        summary.messages.append(check_message)
    model, model_message = choose_model(model, pieces, k)
    summary.model = str(model)
    common = dict(device=device, batch_size=batch_size, progress=progress, precision=precision)
    log_step = _quietly(predict_log10_d, pieces, model=model, frame_step=k, **common)
    factor = pixel_size**2 / frame_interval
    _add_d_columns(out, pieces, log_step, window, factor, summary, k)
    summary.messages.extend(summary.count_messages())
    if model_message:
        summary.messages.append(model_message)
    if alpha:
        alphas = _quietly(predict_alpha, pieces, model=alpha_model, **common)
        out[ALPHA_COLUMN] = _per_row(len(out), pieces, alphas)
    if states:
        out[STATE_COLUMN] = _per_row(len(out), pieces, _most_probable_states(pieces, state_model))
    if segments:
        seg_of_row = _add_segments(out, summary, pieces, log_step, estimator, factor)
        _add_segment_details(out, summary.segments, seg_of_row, pixel_size, frame_interval)
    heads = _head_models(alpha and alpha_model, states and (state_model or "default"))
    out.attrs["napari_step"] = {
        **dict(units=summary.units, pixel_size_um=pixel_size, frame_interval_s=frame_interval),
        **dict(model=str(model), tamsd_window=window, frame_step=k, **heads),
    }
    if drift is not None:
        out.attrs["napari_step"].update(drift_subtracted=True, drift=drift_message)
    if check_message:  # the acquisition check's finding travels with the table (JSON sidecars)
        out.attrs["napari_step"]["acquisition_check"] = check_message
    if model_message:
        out.attrs["napari_step"]["model_choice"] = model_message
    return out, summary


def _without_drift(table: pd.DataFrame, drift) -> tuple[pd.DataFrame, str]:
    """The table the estimators read (same rows and order) and what was subtracted."""
    if drift is None:
        return table, ""
    if isinstance(drift, str):
        if drift != "ensemble":
            raise ValueError(f"drift must be None, 'ensemble' or a drift table, not {drift!r}")
        drift = ensemble_drift(table)
    if isinstance(drift, DriftEstimate):
        return subtract_drift(table, drift), drift.describe()
    if isinstance(drift, pd.DataFrame):
        return subtract_drift(table, drift), "subtracted the given drift"
    raise TypeError(f"drift must be None, 'ensemble' or a drift table, not {type(drift).__name__}")


def choose_frame_step(frame_step, pieces: Pieces) -> tuple[int, str]:
    """The frame step to read D at and what the acquisition check said ("auto": the check on
    all ``pieces`` pooled), or the user's frame step (validated) and no message."""
    if frame_step == "auto":
        check = check_frame_step(pieces.positions)
        return check.frame_step, check.message
    return check_frame_step_value(frame_step), ""


def choose_model(model, pieces: Pieces, frame_step: int) -> tuple[str | Path, str]:
    """The D model to read with and why: "auto" is decided on all ``pieces`` pooled, read at
    ``frame_step`` (:func:`napari_step.acquisition.choose_d_model`); any other model is the
    user's, with no message."""
    if isinstance(model, str) and model == "auto":
        choice = choose_d_model(pieces.positions, frame_step)
        return choice.model, choice.message
    return model, ""
