"""The MSD panel of the plot dock: the TA-MSD of the picked track and the ensemble MSD of the
layer's tracks, each with its power-law fit MSD = 2 dim D t^alpha (D, alpha in the legend),
as trackpy users expect (``imsd`` / ``emsd``). The per-track MSDs and fits are the core's
(:mod:`napari_step.track_summary`), computed for all tracks at once; with more than
``max_tracks`` tracks the ensemble uses a fixed random subset (the plot stays fast at 100 000
tracks). Layers of at least ``ASYNC_POINTS`` points get their curves from a worker thread
(:func:`start_msd_job`): the plot dock's tab says "computing" meanwhile and never freezes the
viewer for the MSD (half a second at 100 000 tracks on a loaded 2-core machine, the compiled
kernel's first load included)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._jobs import JobError

__all__ = ["ASYNC_POINTS", "msd_curves", "draw_msd", "msd_job", "start_msd_job"]

ASYNC_POINTS = 200_000  # layers with at least this many points: the MSD is computed in a worker


def _fit(msd_row, lags, dim: int, n_fit: int):
    """(K px^2/frame, alpha) of one MSD curve over its first ``n_fit`` lags."""
    from ..track_summary import fit_msd

    k, alpha = fit_msd(np.asarray(msd_row, float)[None, :], lags, dim, max_lag=n_fit)
    return float(np.ravel(k)[0]), float(np.ravel(alpha)[0])


def msd_curves(
    table: pd.DataFrame,
    track_id,
    px: float,
    dt: float,
    max_lag: int = 20,
    max_tracks: int = 20000,
    seed: int = 0,
) -> dict:
    """MSD of one track and of the ensemble, with fits, in physical units.

    Parameters
    ----------
    table : pandas.DataFrame
        Track table (``track_id``, ``frame``, positions in px).
    track_id : int or None
        The track to show (None: ensemble only).
    px, dt : float
        um per pixel and s per frame (1, 1: px and frames).
    max_lag : int
        Largest lag (frames).
    max_tracks : int
        At most this many tracks (a seeded random subset) enter the ensemble.

    Returns
    -------
    dict
        ``lag`` (s or frames), ``ensemble`` and ``track`` (MSD in um^2 or px^2, or None),
        ``ensemble_fit`` / ``track_fit`` ((D, alpha) with D in the results' D units), ``n``
        (tracks in the ensemble).
    """
    lags = np.arange(1, int(max_lag) + 1)
    ids = table["track_id"].unique()
    if len(ids) > max_tracks:
        keep = np.random.default_rng(seed).choice(ids, max_tracks, replace=False)
        if track_id is not None:
            keep = np.union1d(keep, [track_id])
        table = table[table["track_id"].isin(keep)]
    from ..track_summary import tamsd_per_track
    from ..tracks import position_columns

    dim = len(position_columns(table))
    tids, msd, count = tamsd_per_track(table, lags)
    with np.errstate(invalid="ignore", divide="ignore"):
        ens = np.nansum(msd * count, axis=0) / count.sum(axis=0)
    out = {
        "lag": lags * dt,
        "ensemble": ens * px**2,
        "n": len(tids),
        "track": None,
        "track_fit": None,
    }
    k, a = _fit(ens, lags, dim, max(2, len(lags) // 2))
    out["ensemble_fit"] = (k * px**2 / dt, a)
    if track_id is not None and int(track_id) in set(tids.tolist()):
        row = int(np.flatnonzero(tids == int(track_id))[0])
        n_obs = int(count[row, 0]) + 1
        k, a = _fit(msd[row], lags, dim, max(2, min(len(lags), n_obs // 4)))
        out["track"] = msd[row] * px**2
        out["track_fit"] = (k * px**2 / dt, a)
    out["dim"] = dim
    return out


def draw_msd(ax, curves: dict, units: str, track_id=None) -> None:
    """Log-log MSD of the ensemble and the picked track with their fits."""
    lag = curves["lag"]
    length = "um" if units != "px^2/frame" else "px"
    time = "s" if units != "px^2/frame" else "frames"
    dim, dt = curves["dim"], lag[0]

    def draw_fit(fit, color):
        d, a = fit
        if np.isfinite(d):
            ax.loglog(
                lag,
                2 * dim * d * dt * (lag / dt) ** a,
                "-",
                color=color,
                lw=1,
                label=f"fit: D = {d:.3g} {units}, alpha = {a:.2f}",
            )

    ax.loglog(
        lag, curves["ensemble"], "o", ms=3, color="k", label=f"ensemble ({curves['n']} tracks)"
    )
    draw_fit(curves["ensemble_fit"], "0.4")
    if curves["track"] is not None:
        ax.loglog(lag, curves["track"], "o", ms=3, color="C0", label=f"track {track_id}")
        draw_fit(curves["track_fit"], "C0")
    from matplotlib.ticker import NullFormatter

    for axis in (ax.xaxis, ax.yaxis):  # no crowded labels within a decade
        axis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(f"lag time ({time})")
    ax.set_ylabel(f"MSD ({length}^2)")
    ax.legend(frameon=False, fontsize=7, loc="upper left")


def msd_job(data: np.ndarray, track_id, px: float, dt: float, max_tracks: int = 5000):
    """:func:`msd_curves` of napari Tracks ``data`` (rows track_id, t, (z,) y, x; read, never
    modified), for a worker thread.

    Returns
    -------
    dict or JobError
        The curves, or why there are none.
    """
    from ..tracks import from_napari

    try:
        return msd_curves(from_napari(data), track_id, px, dt, max_tracks=max_tracks)
    except (ValueError, MemoryError) as e:
        return JobError(f"no MSD: {e}")


def start_msd_job(data, track_id, px: float, dt: float, max_tracks: int, on_done):
    """Run :func:`msd_job` in a napari worker thread; ``on_done(curves or JobError)`` is called
    in the GUI thread. Returns the (started) worker."""
    from napari.qt.threading import create_worker

    worker = create_worker(
        msd_job, np.asarray(data), track_id, px, dt, max_tracks, _start_thread=False
    )
    worker.returned.connect(on_done)
    worker.start()
    return worker
