"""One row per track from a per-point results table: what a biologist reads first.

Input: the table :func:`napari_step.analysis.analyse_tracks` returns (``track_id``, ``frame``,
``(z,) y, x`` in pixels, per-frame ``step_d`` in the table's D units, optionally ``tamsd_d``,
``step_alpha``, ``segment_d``/``changepoint`` and a per-frame diffusive ``state``). Output: track
id, length, median D and its 16-84 % range, the TA-MSD D of the whole track, an MSD fit (D and
alpha), number of segments, immobile fraction and, when states exist, time in each state.

Everything is computed for all tracks at once (sorted arrays, ``np.bincount``, pandas groupby,
and one compiled pass for the TA-MSD): no Python loop over tracks, so 100 000 tracks take
seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .tracks import position_columns, validate_table

__all__ = ["track_summary", "tamsd_per_track", "fit_msd", "STATE_NAMES", "DEFAULT_IMMOBILE_D"]

#: AnDi-2 diffusive states (per-frame ``state`` column values)
STATE_NAMES = {0: "immobile", 1: "confined", 2: "free", 3: "directed"}
#: immobile threshold on D (in the table's D units) when the table has no state column
DEFAULT_IMMOBILE_D = 0.01
_STATE_COLUMNS = ("state", "step_state")
_META = "napari_step"


def _calibration(results: pd.DataFrame, pixel_size, frame_interval) -> tuple[float, float, str]:
    """(um per px, s per frame, D units) from the arguments or the table's metadata."""
    md = results.attrs.get(_META) if isinstance(results.attrs.get(_META), dict) else {}
    px = float(pixel_size if pixel_size is not None else md.get("pixel_size_um", 1.0))
    dt = float(frame_interval if frame_interval is not None else md.get("frame_interval_s", 1.0))
    for name, v in (("pixel size", px), ("frame interval", dt)):
        if not (np.isfinite(v) and v > 0):
            raise ValueError(f"track_summary: the {name} must be a positive number, got {v}")
    units = md.get("units") or ("px^2/frame" if (px, dt) == (1.0, 1.0) else "um^2/s")
    return px, dt, str(units)


def _track_bounds(codes: np.ndarray) -> np.ndarray:
    """First row of every track, then the number of rows (rows grouped by track)."""
    if len(codes) == 0:
        return np.zeros(1, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return np.r_[starts, len(codes)].astype(np.int64)


def _tamsd_by_track(codes, frames, positions, n_tracks: int, lags) -> tuple[np.ndarray, ...]:
    """TA-MSD of every track at every lag (px^2): (msd, count), each (n_tracks, n_lags).

    Rows are sorted by track, then frame. Missing frames are honoured: a displacement of lag L
    pairs frame f with frame f + L of the same track only where both exist and are finite.
    """
    from ._track_kernels import tamsd_sums  # compiled on first use (cached on disk)

    lags = np.asarray(lags, dtype=np.int64)
    col_of_lag = np.full(int(lags.max()) + 1, -1, dtype=np.int64)
    col_of_lag[lags] = np.arange(lags.size)
    total = np.zeros((n_tracks, lags.size))
    count = np.zeros((n_tracks, lags.size))
    tamsd_sums(
        _track_bounds(codes),
        np.ascontiguousarray(frames, np.int64),
        np.ascontiguousarray(positions, dtype=float),
        col_of_lag,
        total,
        count,
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan), count


def _msd_fit(msd, lags, max_lags, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-track least-squares line log MSD = log(2 dim K) + alpha log lag over lags 1..max_lag.

    ``max_lags`` (per track) limits the fit to the lags a track can measure well. Returns
    (K in px^2/frame, the coefficient at a one-frame lag, and alpha); NaN where fewer than two
    lags are usable.
    """
    lag = np.asarray(lags, dtype=float)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.log(np.where(msd > 0, msd, np.nan))
    use = np.isfinite(y) & (lag <= max_lags[:, None])
    x = np.where(use, np.log(lag), 0.0)
    y = np.where(use, y, 0.0)
    n = use.sum(axis=1)
    sx, sy = x.sum(axis=1), y.sum(axis=1)
    sxx, sxy = (x * x).sum(axis=1), (x * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = (n * sxy - sx * sy) / (n * sxx - sx * sx)
        intercept = (sy - alpha * sx) / n
    alpha = np.where(n >= 2, alpha, np.nan)
    k = np.where(n >= 2, np.exp(intercept) / (2.0 * dim), np.nan)
    return k, alpha


def tamsd_per_track(table: pd.DataFrame, lags) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Time-averaged MSD of every track of a track table at the given lags, all at once.

    Parameters
    ----------
    table : pandas.DataFrame
        Track table (``track_id``, ``frame``, ``(z,) y, x`` in px); missing frames are gaps (a
        displacement never spans one) and non-finite positions are skipped.
    lags : sequence of int
        Lags in frames (positive).

    Returns
    -------
    track_ids : numpy.ndarray
        Sorted track ids.
    msd : numpy.ndarray
        (n_tracks, n_lags) TA-MSD in px^2 (NaN where a track has no pair at that lag).
    counts : numpy.ndarray
        (n_tracks, n_lags) number of displacements averaged.
    """
    lags = np.asarray(lags, dtype=int)
    if lags.ndim != 1 or lags.size == 0 or (lags < 1).any():
        raise ValueError(f"lags must be positive whole numbers, got {lags.tolist()}")
    table = validate_table(table, "track table")
    codes, ids = pd.factorize(table["track_id"], sort=True)
    pos = table[position_columns(table)].to_numpy(dtype=float)
    frames = table["frame"].to_numpy(dtype=np.int64)
    msd, count = _tamsd_by_track(codes, frames, pos, len(ids), lags)
    return np.asarray(ids, dtype=np.int64), msd, count


def fit_msd(msd, lags, dim: int, max_lag=None) -> tuple[np.ndarray, np.ndarray]:
    """Power-law fit MSD(t) = 2 dim K t^alpha of MSD curves (least squares in log-log).

    Parameters
    ----------
    msd : array_like
        (n_curves, n_lags) or (n_lags,) MSD values (e.g. px^2); non-positive values are ignored.
    lags : sequence of float
        The lags of the columns (e.g. frames).
    dim : int
        Number of spatial dimensions.
    max_lag : float or array_like, optional
        Largest lag used, one value or one per curve (default: all lags).

    Returns
    -------
    k : numpy.ndarray
        K in MSD units per lag unit (px^2/frame for px and frames): the MSD at lag 1 over
        2 dim, which is D for alpha = 1. NaN where fewer than two lags are usable.
    alpha : numpy.ndarray
        The anomalous exponent.
    """
    msd = np.atleast_2d(np.asarray(msd, dtype=float))
    lags = np.asarray(lags, dtype=float)
    limit = np.inf if max_lag is None else max_lag
    max_lags = np.broadcast_to(np.asarray(limit, dtype=float), (msd.shape[0],))
    return _msd_fit(msd, lags, max_lags, dim)


def _segment_counts(table: pd.DataFrame, codes, n_tracks: int) -> np.ndarray:
    """Segments per track: change points plus gap-free analysed pieces (NaN without segments)."""
    if "segment_d" not in table.columns:
        return np.full(n_tracks, np.nan)
    seg = np.isfinite(table["segment_d"].to_numpy(dtype=float))
    frames = table["frame"].to_numpy()
    cp = (
        table["changepoint"].to_numpy(dtype=bool)
        if "changepoint" in table.columns
        else np.zeros(len(table), dtype=bool)
    )
    new_track = np.r_[True, codes[1:] != codes[:-1]]
    gap = np.r_[True, frames[1:] != frames[:-1] + 1]
    prev_seg = np.r_[False, seg[:-1]]
    starts = seg & (cp | new_track | gap | ~prev_seg)
    analysed = np.bincount(codes[seg], minlength=n_tracks) > 0
    counts = np.bincount(codes[starts], minlength=n_tracks).astype(float)
    return np.where(analysed, counts, np.nan)


def _state_column(table: pd.DataFrame) -> str | None:
    return next((c for c in _STATE_COLUMNS if c in table.columns), None)


def _d_statistics(d: np.ndarray, codes, n_tracks: int) -> pd.DataFrame:
    """Median and 16/84 % quantiles of per-frame D per track (NaN frames ignored)."""
    from ._track_kernels import track_quantiles

    q = np.empty((n_tracks, 3))
    track_quantiles(
        _track_bounds(codes),
        np.ascontiguousarray(d, dtype=float),
        np.array([0.5, 0.16, 0.84]),
        q,
    )
    return pd.DataFrame({"median_d": q[:, 0], "d_p16": q[:, 1], "d_p84": q[:, 2]})


def _sorted_table(results: pd.DataFrame) -> pd.DataFrame:
    """The table itself when it already is a valid sorted track table (as ``analyse_tracks``
    returns it), else the validated, sorted copy (:func:`napari_step.tracks.validate_table`)."""
    pos = [c for c in ("z", "y", "x") if c in results.columns]
    if (
        "x" in pos
        and {"track_id", "frame"} <= set(results.columns)
        and all(pd.api.types.is_integer_dtype(results[c]) for c in ("track_id", "frame"))
        and all(pd.api.types.is_float_dtype(results[c]) for c in pos)
    ):
        tid, fr = results["track_id"].to_numpy(), results["frame"].to_numpy()
        step = np.diff(tid)
        if (step >= 0).all() and (np.diff(fr)[step == 0] > 0).all():
            return results
    return validate_table(results, "results table")


def _state_times(table, codes, n_tracks: int, state_col: str, dt: float) -> dict:
    """Time (s, or frames uncalibrated) spent in each AnDi-2 state, per track."""
    st = table[state_col].to_numpy(dtype=float)
    out = {}
    for k, name in STATE_NAMES.items():
        hit = st == k
        out[f"time_{name}"] = np.bincount(codes[hit], minlength=n_tracks) * dt
    return out


def _immobile_fraction(table, codes, n_tracks, d, state_col, immobile_d) -> np.ndarray:
    """Share of a track's analysed frames that are immobile (state 0, else D < threshold)."""
    if state_col is not None:
        st = table[state_col].to_numpy(dtype=float)
        known, still = np.isfinite(st), st == 0
    else:
        known = np.isfinite(d)
        with np.errstate(invalid="ignore"):
            still = known & (d < immobile_d)
    n_known = np.bincount(codes[known], minlength=n_tracks)
    n_still = np.bincount(codes[still], minlength=n_tracks)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_known > 0, n_still / n_known, np.nan)


def _motion_columns(table, codes, ids, pos_cols, d, max_lag: int, px: float, dt: float):
    """Length, D statistics, whole-track TA-MSD D and the MSD fit of every track."""
    n_tracks, dim = len(ids), len(pos_cols)
    frames = table["frame"].to_numpy(dtype=np.int64)
    bounds = _track_bounds(codes)
    first, last = frames[bounds[:-1]], frames[bounds[1:] - 1]  # rows sorted by track, frame
    lags = np.arange(1, max_lag + 1)
    positions = table[pos_cols].to_numpy(dtype=float)
    msd, _ = _tamsd_by_track(codes, frames, positions, n_tracks, lags)
    k, alpha = _msd_fit(msd, lags, np.maximum(2, (last - first + 1) // 4), dim)
    out = pd.DataFrame(
        {
            "track_id": np.asarray(ids, dtype=np.int64),
            "n_points": np.bincount(codes, minlength=n_tracks),
            "first_frame": first,
            "last_frame": last,
            "duration": (last - first) * dt,
            "n_analysed": np.bincount(codes[np.isfinite(d)], minlength=n_tracks),
        }
    )
    out = pd.concat([out, _d_statistics(d, codes, n_tracks).reset_index(drop=True)], axis=1)
    out["tamsd_d"] = (msd[:, 1] - msd[:, 0]) / (2.0 * dim) * px**2 / dt
    out["msd_d"] = k * px**2 / dt  # K referred to the frame interval: MSD(dt) = 2 dim K dt
    out["msd_alpha"] = alpha
    if "step_alpha" in table.columns:
        per_track = pd.Series(table["step_alpha"].to_numpy(float)).groupby(codes).median()
        out["median_alpha"] = per_track.reindex(np.arange(n_tracks)).to_numpy()
    return out


def track_summary(
    results: pd.DataFrame,
    *,
    pixel_size: float | None = None,
    frame_interval: float | None = None,
    d_column: str = "step_d",
    immobile_d: float = DEFAULT_IMMOBILE_D,
    max_lag: int = 10,
    analysed_only: bool = True,
) -> pd.DataFrame:
    """One row per track of a per-point results table.

    Parameters
    ----------
    results : pandas.DataFrame
        Per-point table (``track_id``, ``frame``, ``(z,) y, x`` in px, per-frame ``d_column``
        in the table's D units; optional ``step_alpha``, ``segment_d``, ``changepoint``,
        ``state``/``step_state``). Its ``attrs["napari_step"]`` (as set by ``analyse_tracks``)
        gives the units, pixel size and frame interval.
    pixel_size : float, optional
        um per pixel; default: the table's metadata ``pixel_size_um``, else 1 (uncalibrated).
    frame_interval : float, optional
        Seconds per frame; default: the table's ``frame_interval_s``, else 1 (uncalibrated).
    d_column : str
        The per-frame D column summarised by its median and 16-84 % range.
    immobile_d : float
        Without a state column, frames with D below this value (in the table's D units,
        um^2/s when calibrated) count as immobile. With a state column, state 0 is immobile.
    max_lag : int
        Largest lag (frames) of the MSD fit; a track uses lags 1..max(2, its span // 4).
    analysed_only : bool
        Keep only tracks with at least one finite ``d_column`` value (default True).

    Returns
    -------
    pandas.DataFrame
        Sorted by ``track_id``, with columns ``track_id``, ``n_points`` (observed points),
        ``first_frame``, ``last_frame``, ``duration`` (last - first frame, in s when
        calibrated, else frames), ``n_analysed`` (frames with a D value), ``median_d``,
        ``d_p16``, ``d_p84`` (D units), ``tamsd_d`` (whole-track TA-MSD D from lags 1 and 2,
        D units), ``msd_d`` and ``msd_alpha`` (least-squares line through log TA-MSD versus
        log lag over the first lags: MSD(t) = 2 dim ``msd_d`` dt (t / dt)^alpha with dt the
        frame interval, so ``msd_d`` is in D units whatever alpha, and is D when alpha = 1),
        ``median_alpha`` (when ``step_alpha`` exists), ``n_segments`` (NaN without
        segments), ``immobile_fraction`` and, with a state column, ``time_immobile``,
        ``time_confined``, ``time_free``, ``time_directed`` (duration units).
        ``attrs["napari_step"]`` records units, ``column_units`` and the immobile rule.
    """
    if max_lag < 2:
        raise ValueError(f"track_summary: max_lag must be at least 2, got {max_lag}")
    if d_column not in results.columns:
        raise ValueError(
            f"track_summary: the table has no {d_column!r} column (analyse it "
            f"first); it has {list(results.columns)}"
        )
    px, dt, units = _calibration(results, pixel_size, frame_interval)
    table = _sorted_table(results)
    pos_cols = position_columns(table)
    codes, ids = pd.factorize(table["track_id"], sort=True)
    n_tracks = len(ids)
    d = table[d_column].to_numpy(dtype=float)
    state_col = _state_column(table)

    out = _motion_columns(table, codes, ids, pos_cols, d, max_lag, px, dt)
    out["n_segments"] = _segment_counts(table, codes, n_tracks)
    out["immobile_fraction"] = _immobile_fraction(table, codes, n_tracks, d, state_col, immobile_d)
    if state_col is not None:
        for name, values in _state_times(table, codes, n_tracks, state_col, dt).items():
            out[name] = values
    if analysed_only:
        out = out[out["n_analysed"] > 0].reset_index(drop=True)
    out.attrs[_META] = _summary_metadata(
        units, px, dt, d_column, immobile_d, state_col, max_lag, list(out.columns)
    )
    return out


def _summary_metadata(units, px, dt, d_column, immobile_d, state_col, max_lag, columns) -> dict:
    """Units of every column and how the summary was computed (for the JSON sidecar)."""
    calibrated = units != "px^2/frame"
    t_unit = "s" if calibrated else "frame"
    col_units = {c: "" for c in columns}
    col_units.update(
        {
            "first_frame": "frame",
            "last_frame": "frame",
            "duration": t_unit,
            "n_points": "points",
            "n_analysed": "frames",
            "median_d": units,
            "d_p16": units,
            "d_p84": units,
            "tamsd_d": units,
            "msd_d": units,
        }
    )
    col_units.update({c: t_unit for c in columns if c.startswith("time_")})
    rule = (
        f"state 0 ({state_col})" if state_col is not None else f"{d_column} < {immobile_d} {units}"
    )
    return {
        "table": "track summary",
        "units": units,
        "pixel_size_um": px,
        "frame_interval_s": dt,
        "d_column": d_column,
        "immobile_rule": rule,
        "immobile_d": immobile_d,
        "msd_max_lag": max_lag,
        "tamsd_lags": [1, 2],
        "column_units": {c: col_units[c] for c in columns},
    }
