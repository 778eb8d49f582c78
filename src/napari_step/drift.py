"""The common drift of a field of view: estimated from all its tracks, subtracted for analysis.

A stage or sample that drifts moves every particle by the same amount each frame. That motion is
not diffusion: it adds a directed part to every track, raises the MSD at long lags and correlates
steps at every lag (which :mod:`napari_step.acquisition` then cannot tell from anomalous motion).
As trackpy's ``compute_drift`` does, the drift is the cumulative sum of the mean one-frame
displacement of all tracks observed in both frames. Two differences from trackpy:

* the mean displacement is smoothed with a *centred* rolling mean (trackpy's trails, which lags
  the drift by half its window);
* a frame pair that no track spans adds no drift (trackpy's ``subtract_drift`` fills frames
  missing from the drift table with 0, which undoes the drift accumulated before them).

A particle's own step is 1/N of the mean of N tracks, so subtracting an unsmoothed drift also
removes about 1/N of its diffusion; smoothing over s frames makes that about 1/(N s). The drift is
only subtracted from the positions the estimators read: the user's table and layers keep their
positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .tracks import position_columns

__all__ = ["ensemble_drift", "subtract_drift", "DriftEstimate", "DEFAULT_SMOOTHING"]

DEFAULT_SMOOTHING = 15  # frames (trackpy's documented choice)


@dataclass
class DriftEstimate:
    """The drift per frame and how well it is known.

    Attributes
    ----------
    drift : DataFrame
        Index ``frame`` (every frame from the first to the last of the table), position columns
        (px): the displacement of the field since its first frame.
    tracks_per_frame : float
        Median number of tracks whose one-frame step went into each frame's mean.
    excursion_px : float
        Largest distance of the drift from its start (px).
    z : float
        Net displacement over the movie divided by its standard error (from the step scatter):
        above about 5, the drift is real and not the mean of random steps.
    """

    drift: pd.DataFrame
    tracks_per_frame: float
    excursion_px: float
    z: float

    def describe(self) -> str:
        """One line for the user: how far the field drifted and from how many tracks."""
        return (
            f"subtracted the common drift of the field of view ({self.excursion_px:.2g} px at "
            f"most, from a median of {self.tracks_per_frame:.0f} tracks per frame)"
        )


def _steps(table: pd.DataFrame, cols: list[str]):
    """(frame of arrival, displacement) of every one-frame step of every track."""
    t = table.sort_values(["track_id", "frame"], kind="stable")
    tid = t["track_id"].to_numpy(np.int64)
    frame = t["frame"].to_numpy(np.int64)
    xyz = t[cols].to_numpy(float)
    ok = (tid[1:] == tid[:-1]) & (frame[1:] == frame[:-1] + 1)
    ok &= np.isfinite(xyz[1:]).all(1) & np.isfinite(xyz[:-1]).all(1)
    return frame[1:][ok], (xyz[1:] - xyz[:-1])[ok]


def ensemble_drift(table: pd.DataFrame, smoothing: int = DEFAULT_SMOOTHING) -> DriftEstimate:
    """The common drift of all tracks in ``table`` (track_id, frame, positions in px).

    Parameters
    ----------
    table : DataFrame
        Tracks of one field of view; not modified.
    smoothing : int
        Centred rolling mean of the per-frame mean displacement over this many frames (0 or 1:
        none). Larger values follow slow drifts and remove less of each track's own motion.

    Returns
    -------
    DriftEstimate

    Raises
    ------
    ValueError
        If no track has two consecutive frames (nothing to estimate a drift from), or
        ``smoothing`` is negative.
    """
    if int(smoothing) != smoothing or smoothing < 0:
        raise ValueError(f"drift smoothing must be a whole number of frames >= 0, not {smoothing}")
    cols = position_columns(table)
    arrive, step = _steps(table, cols)
    if arrive.size == 0:
        raise ValueError("no track has two consecutive frames: there is no drift to estimate")
    first, last = int(table["frame"].min()), int(table["frame"].max())
    n_frames = last - first + 1
    idx = arrive - first
    count = np.bincount(idx, minlength=n_frames).astype(float)

    def per_frame(w):
        cols_w = [np.bincount(idx, w[:, j], minlength=n_frames) for j in range(w.shape[1])]
        return np.stack(cols_w, 1)

    total, sq = per_frame(step), per_frame(step**2)
    per_count = np.maximum(count, 1)[:, None]  # frames without steps have total = sq = 0
    raw = total / per_count  # mean one-frame step arriving at each frame
    mean = raw
    if smoothing > 1:
        # a count-weighted centred mean: frames without steps neither add drift nor dilute it
        win = dict(window=int(smoothing), center=True, min_periods=1)
        num = pd.DataFrame(total).rolling(**win).sum().to_numpy()
        den = pd.Series(count).rolling(**win).sum().to_numpy()[:, None]
        mean = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
        mean[count == 0] = 0.0
    drift = np.cumsum(mean, axis=0)
    # the net displacement against its standard error (steps scatter about the per-frame mean)
    var = np.maximum(sq / per_count - raw**2, 0.0)
    se2 = (var / per_count).sum(0)
    z = float(np.sqrt(np.sum(raw.sum(0) ** 2 / np.maximum(se2, 1e-300))))
    frames = pd.RangeIndex(first, last + 1, name="frame")
    return DriftEstimate(
        drift=pd.DataFrame(drift, index=frames, columns=cols),
        tracks_per_frame=float(np.median(count[count > 0])),
        excursion_px=float(np.sqrt((drift**2).sum(1)).max()),
        z=z / np.sqrt(len(cols)),
    )


def subtract_drift(table: pd.DataFrame, drift: pd.DataFrame | DriftEstimate) -> pd.DataFrame:
    """A copy of ``table`` with the drift subtracted from its positions at each frame.

    Frames outside the drift's range take its nearest end (no drift is invented there). The
    input table is not modified.
    """
    if isinstance(drift, DriftEstimate):
        drift = drift.drift
    cols = position_columns(table)
    missing = [c for c in cols if c not in drift.columns]
    if missing:
        raise ValueError(f"the drift has no column(s) {missing} for the table's positions")
    out = table.copy()
    frames = out["frame"].to_numpy(np.int64)
    d_frames = drift.index.to_numpy(np.int64)
    order = np.argsort(d_frames)
    d_frames = d_frames[order]
    at = np.clip(np.searchsorted(d_frames, frames), 0, d_frames.size - 1)
    values = drift[cols].to_numpy(float)[order][at]
    out[cols] = out[cols].to_numpy(float) - values
    return out
