"""The track table and its conversions: trackpy detection/linking, napari Tracks data, splitting.

The track table is the project's shared currency: a pandas DataFrame with one row per observed
point and columns ``track_id`` (int), ``frame`` (int), ``y``, ``x`` (float, pixels) and ``z`` for
3-D, plus any extra columns (mass, results...). Frames a track skipped (trackpy ``memory``) have no
row; :func:`split_tracks` makes them explicit as NaN rows so no gap is ever silently closed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "TrackTableError",
    "position_columns",
    "validate_table",
    "detect",
    "locate_frame",
    "iter_locate",
    "link",
    "trackpy_quiet",
    "detections_table",
    "to_napari",
    "from_napari",
    "split_tracks",
    "TrackArrays",
    "contiguous_runs",
]


class TrackTableError(ValueError):
    """A track table that cannot be analysed as it is (missing columns, duplicates...)."""


def position_columns(table: pd.DataFrame) -> list[str]:
    """['z', 'y', 'x'] or ['y', 'x'] (or ['x'] for 1-D tables), in napari's axis order."""
    cols = [c for c in ("z", "y", "x") if c in table.columns]
    if "x" not in cols:
        raise TrackTableError("the track table has no 'x' column")
    return cols


def validate_table(table: pd.DataFrame, name: str = "track table") -> pd.DataFrame:
    """Check columns and types and return a sorted copy; the input is never modified.

    Raises :class:`TrackTableError` for missing columns, non-numeric values or a frame that
    appears twice in one track.
    """
    missing = [c for c in ("track_id", "frame") if c not in table.columns]
    if missing:
        raise TrackTableError(f"{name} lacks column(s) {missing}; it has {list(table.columns)}")
    pos = position_columns(table)
    out = table.copy()
    for c in ["track_id", "frame"] + pos:
        if not pd.api.types.is_numeric_dtype(out[c]):
            conv = pd.to_numeric(out[c], errors="coerce")
            bad = conv.isna() & out[c].notna()
            if bad.any():
                raise TrackTableError(
                    f"{name}: column '{c}' holds non-numeric values, e.g. {out[c][bad].iloc[0]!r}"
                )
            out[c] = conv
    for c in ("track_id", "frame"):
        if out[c].isna().any():
            raise TrackTableError(f"{name}: column '{c}' has missing values")
        if not np.allclose(out[c], np.round(out[c])):
            raise TrackTableError(f"{name}: column '{c}' must hold whole numbers")
        out[c] = out[c].round().astype(np.int64)
    dup = out.duplicated(["track_id", "frame"])
    if dup.any():
        tid, frame = (int(v) for v in out.loc[dup, ["track_id", "frame"]].iloc[0])
        raise TrackTableError(
            f"{name}: track {tid} has frame {frame} more than once "
            f"({int(dup.sum())} duplicated rows); merge or relink before analysis"
        )
    return out.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)


def locate_frame(
    image: np.ndarray,
    frame: int,
    diameter: int,
    minmass=None,
    separation=None,
    invert: bool = False,
    **kwargs,
) -> pd.DataFrame:
    """trackpy.locate on one frame.

    Parameters
    ----------
    image : ndarray
        One (Y, X) frame (read only).
    frame : int
        The frame number written into the ``frame`` column.
    diameter : int
        trackpy's feature size (px, odd, >= 3).
    minmass : float, optional
        Minimum integrated brightness (trackpy's units: grey levels x px).
    separation : float, optional
        Minimum distance between features (px; default diameter + 1).
    invert : bool
        True for dark particles on a bright background.
    **kwargs
        Further ``trackpy.locate`` options (``engine``, ``percentile``...).

    Returns
    -------
    DataFrame
        One row per detection (y, x, mass, size, ecc, signal, ..., frame).
    """
    import trackpy as tp

    diameter = int(diameter)
    if diameter < 3 or diameter % 2 == 0:
        raise ValueError(f"diameter must be an odd integer >= 3, got {diameter}")
    with warnings.catch_warnings():  # an empty frame is a normal outcome, not a warning
        warnings.filterwarnings("ignore", message="No maxima survived")
        f = tp.locate(
            np.asarray(image),
            diameter,
            minmass=minmass,
            separation=separation,
            invert=invert,
            **kwargs,
        )
    f["frame"] = int(frame)
    return f


def _locate_chunk(frames: np.ndarray, first: int, kwargs: dict) -> pd.DataFrame:
    """Detections of consecutive frames (run in a worker process by :func:`iter_locate`)."""
    parts = [locate_frame(im, first + i, **kwargs) for i, im in enumerate(frames)]
    return pd.concat(parts, ignore_index=True)


def _pool(processes: int):
    """A process pool for detection: forkserver children (never a fork of a GUI process)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    ctx = multiprocessing.get_context("forkserver")
    return ProcessPoolExecutor(max_workers=processes, mp_context=ctx)


def iter_locate(
    movie,
    diameter: int,
    minmass=None,
    separation=None,
    invert: bool = False,
    processes: int = 1,
    chunk: int = 16,
    **kwargs,
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Detect particles frame by frame, in chunks, optionally in worker processes.

    Parameters
    ----------
    movie : array-like
        (T, Y, X) images (numpy, dask, zarr...; frames are read in order, never modified).
    diameter, minmass, separation, invert, **kwargs
        As for :func:`locate_frame`.
    processes : int
        Worker processes (1: in this process). trackpy's numba engine is used when numba is
        installed, in every process.
    chunk : int
        Frames per step (and per task sent to a worker process).

    Yields
    ------
    (int, DataFrame)
        Frames done so far and the detections of the last chunk. Closing the generator
        (e.g. a cancelled job) stops the worker processes.
    """
    n = int(movie.shape[0])
    chunk = max(1, int(chunk))
    kw = dict(
        diameter=int(diameter),
        minmass=minmass,
        separation=separation,
        invert=bool(invert),
        **kwargs,
    )
    starts = range(0, n, chunk)
    if processes <= 1 or n <= chunk:
        for a in starts:
            b = min(a + chunk, n)
            yield b, _locate_chunk(np.asarray(movie[a:b]), a, kw)
        return
    pool = _pool(int(processes))
    try:
        pending = []
        todo = iter(starts)
        for a in todo:  # keep a few chunks in flight: bounded memory, workers never idle
            pending.append((a, pool.submit(_locate_chunk, np.asarray(movie[a : a + chunk]), a, kw)))
            if len(pending) > 2 * processes:
                first, fut = pending.pop(0)
                yield min(first + chunk, n), fut.result()
        for first, fut in pending:
            yield min(first + chunk, n), fut.result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def detect(
    movie,
    diameter: int,
    minmass=None,
    separation=None,
    invert: bool = False,
    progress=None,
    processes: int = 1,
    **kwargs,
) -> pd.DataFrame:
    """Detect particles in every frame of a (T, Y, X) movie with trackpy.

    Parameters
    ----------
    movie : array-like
        (T, Y, X) images.
    diameter, minmass, separation, invert, **kwargs
        As for :func:`locate_frame`.
    progress : callable, optional
        Called as ``progress(done, total)`` (frames).
    processes : int
        Worker processes (see :func:`iter_locate`).

    Returns
    -------
    DataFrame
        One row per detection (frame, y, x, mass, size, ecc, signal, ...).
    """
    movie = np.asarray(movie) if not hasattr(movie, "shape") else movie
    if len(movie.shape) != 3:
        raise ValueError(f"detection needs a (T, Y, X) movie, got shape {tuple(movie.shape)}")
    frames = []
    for done, part in iter_locate(
        movie, diameter, minmass, separation, invert, processes=processes, **kwargs
    ):
        frames.append(part)
        if progress:
            progress(done, movie.shape[0])
    return detections_table(frames)


def detections_table(parts) -> pd.DataFrame:
    """Concatenate per-frame detection tables: frame, y, x first (an empty table keeps them)."""
    cols = ["frame", "y", "x"]
    parts = [p for p in parts if len(p)]
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=cols)
    return out[cols + [c for c in out.columns if c not in cols]]


@contextlib.contextmanager
def trackpy_quiet():
    """Hide trackpy's INFO messages (one line per frame while linking) inside the block only;
    the ``trackpy`` logger's level is restored afterwards (unlike ``trackpy.quiet()``, which
    silences trackpy for the whole process)."""
    logger = logging.getLogger("trackpy")
    level = logger.level
    logger.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        logger.setLevel(level)


def link(
    detections: pd.DataFrame, search_range: float, memory: int = 0, min_length: int = 1
) -> pd.DataFrame:
    """Link detections into tracks (trackpy.link + filter_stubs) and return a track table.

    Parameters
    ----------
    detections : DataFrame
        frame, y, x (and z) columns, e.g. from :func:`detect`.
    search_range : float
        Largest displacement between two frames (px).
    memory : int
        Frames a particle may vanish and still keep its track (the skipped frames stay absent
        from the table: gaps are explicit).
    min_length : int
        Shortest track kept (points).

    Returns
    -------
    DataFrame
        The track table (track_id, frame, y, x, then the detection columns).
    """
    import trackpy as tp

    for c in ("frame", "y", "x"):
        if c not in detections.columns:
            raise TrackTableError(f"detections lack the '{c}' column")
    if len(detections) == 0:
        return pd.DataFrame(
            {
                "track_id": pd.Series(dtype=int),
                "frame": pd.Series(dtype=int),
                "y": pd.Series(dtype=float),
                "x": pd.Series(dtype=float),
            }
        )
    pos = [c for c in ("z", "y", "x") if c in detections.columns]
    with trackpy_quiet():
        linked = tp.link(
            detections.reset_index(drop=True),
            search_range,
            memory=memory,
            pos_columns=pos,
            t_column="frame",
        )
        if min_length > 1:
            linked = tp.filter_stubs(linked, min_length)
    linked = linked.rename(columns={"particle": "track_id"}).reset_index(drop=True)
    cols = ["track_id", "frame"] + pos
    linked = linked[cols + [c for c in linked.columns if c not in cols]]
    return linked.sort_values(["track_id", "frame"], kind="stable").reset_index(drop=True)


def to_napari(table: pd.DataFrame):
    """Track table -> (data (N, 2 + ndim) [track_id, t, (z,) y, x], features DataFrame)."""
    t = validate_table(table)
    pos = position_columns(t)
    data = t[["track_id", "frame"] + pos].to_numpy(dtype=float)
    features = t.drop(columns=["track_id", "frame"] + pos).reset_index(drop=True)
    return data, features


def from_napari(data: np.ndarray, features=None) -> pd.DataFrame:
    """napari Tracks data (+ features) -> track table (a new DataFrame)."""
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[1] not in (3, 4, 5):
        raise TrackTableError(f"napari tracks data must be (N, 3-5), got {data.shape}")
    pos = ["z", "y", "x"][-(data.shape[1] - 2) :]
    table = pd.DataFrame(data[:, 2:], columns=pos)
    table.insert(0, "frame", np.round(data[:, 1]).astype(np.int64))
    table.insert(0, "track_id", np.round(data[:, 0]).astype(np.int64))
    if features is not None and len(features):
        feats = pd.DataFrame(features).reset_index(drop=True)
        for c in feats.columns:
            if c not in table.columns:
                table[c] = feats[c].to_numpy()
    return table


@dataclass
class TrackArrays:
    """One track as arrays: every frame from first to last, NaN rows where it was not seen."""

    track_id: int
    frames: np.ndarray  # (T,) consecutive frames
    positions: np.ndarray  # (T, dim), NaN in gaps
    rows: np.ndarray  # (T,) row index into the table, -1 in gaps


def split_tracks(table: pd.DataFrame, track_ids=None) -> list[TrackArrays]:
    """Split a validated table into per-track arrays with gaps made explicit (NaN rows)."""
    pos = position_columns(table)
    out = []
    tid = table["track_id"].to_numpy()
    order = np.argsort(tid, kind="stable")
    bounds = np.flatnonzero(np.diff(tid[order])) + 1
    wanted = None if track_ids is None else set(int(i) for i in track_ids)
    xyz = table[pos].to_numpy(dtype=float)
    fr = table["frame"].to_numpy()
    for rows in np.split(order, bounds):
        if rows.size == 0:
            continue
        t_id = int(tid[rows[0]])
        if wanted is not None and t_id not in wanted:
            continue
        rows = rows[np.argsort(fr[rows], kind="stable")]
        f = fr[rows]
        frames = np.arange(f[0], f[-1] + 1)
        positions = np.full((frames.size, len(pos)), np.nan)
        idx = np.full(frames.size, -1)
        positions[f - f[0]] = xyz[rows]
        idx[f - f[0]] = rows
        out.append(TrackArrays(t_id, frames, positions, idx))
    return out


def contiguous_runs(valid: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop), ...] of the runs of True in a boolean array (gap-free pieces of a track)."""
    v = np.concatenate([[False], np.asarray(valid, bool), [False]])
    edges = np.flatnonzero(np.diff(v.astype(int)))
    return list(zip(edges[::2], edges[1::2]))
