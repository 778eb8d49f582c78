"""Time-averaged mean squared displacement (TA-MSD) estimators of D and alpha.

All estimators work on whole batches: cumulative sums of squared displacements give every
window's MSD at once, so there is no Python loop over tracks of equal length, windows or frames.
NaN positions (gaps) make the windows that touch them NaN.
"""

from __future__ import annotations

import numpy as np

from ._input import as_track_list, group_by_length

__all__ = ["tamsd", "sliding_tamsd", "fit_d", "fit_alpha", "tamsd_d", "tamsd_alpha"]


def _check_lags(lags, window=None) -> np.ndarray:
    lags = np.asarray(lags, dtype=int)
    if lags.ndim != 1 or lags.size < 2 or (lags < 1).any() or len(set(lags.tolist())) != lags.size:
        raise ValueError(f"lags must be at least two distinct positive integers, got {lags.tolist()}")
    if window is not None and lags.max() >= window:
        raise ValueError(f"largest lag {lags.max()} must be smaller than the window {window}")
    return lags


def tamsd(positions: np.ndarray, lags) -> np.ndarray:
    """TA-MSD of whole tracks: (N, T, dim) -> (N, len(lags))."""
    positions = np.asarray(positions, dtype=float)
    lags = np.asarray(lags, dtype=int)
    out = np.empty(positions.shape[:1] + (lags.size,))
    for j, lag in enumerate(lags):  # loop over the few lags only
        sd = ((positions[:, lag:] - positions[:, :-lag]) ** 2).sum(-1)
        out[:, j] = sd.mean(axis=1) if sd.shape[1] else np.nan
    return out


def sliding_tamsd(positions: np.ndarray, window: int, lags) -> np.ndarray:
    """TA-MSD of every window [i, i+window): (N, T, dim) -> (N, T - window + 1, len(lags))."""
    positions = np.asarray(positions, dtype=float)
    n, t, _ = positions.shape
    lags = _check_lags(lags, window)
    n_win = t - window + 1
    if n_win < 1:
        return np.empty((n, 0, lags.size))
    out = np.empty((n, n_win, lags.size))
    for j, lag in enumerate(lags):
        sd = ((positions[:, lag:] - positions[:, :-lag]) ** 2).sum(-1)  # (N, T - lag)
        sd = np.where(np.isfinite(sd), sd, 0.0)  # gaps are masked below
        m = window - lag  # displacements of this lag inside one window
        # a strided view sums each window exactly (a cumsum difference would lose precision
        # when D spans decades along the track)
        out[:, :, j] = np.lib.stride_tricks.sliding_window_view(sd, m, axis=1)[:, :n_win].sum(-1) / m
    bad = ~np.isfinite(positions).all(-1)
    if bad.any():  # a window touching a missing frame has no honest value
        cb = np.concatenate([np.zeros((n, 1)), np.cumsum(bad, axis=1)], axis=1)
        out[(cb[:, window : window + n_win] - cb[:, :n_win]) > 0] = np.nan
    return out


def _slope_weights(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean()
    return xc / (xc**2).sum()


def fit_d(msd: np.ndarray, lags, dim: int) -> np.ndarray:
    """D from a least-squares line MSD = 2 dim D lag + c through the given lags (raw, may be <= 0)."""
    w = _slope_weights(np.asarray(lags, dtype=float))
    return (np.asarray(msd) @ w) / (2.0 * dim)


def fit_alpha(msd: np.ndarray, lags) -> np.ndarray:
    """Anomalous exponent from a least-squares line through log MSD versus log lag."""
    w = _slope_weights(np.log(np.asarray(lags, dtype=float)))
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log(np.where(np.asarray(msd) > 0, msd, np.nan))
    return logm @ w


def _sliding(tracks, window, lags, reduce) -> list[np.ndarray]:
    lags = _check_lags(lags, window)

    def batch(pos):  # equal-length tracks (B, T, dim) -> (B, T), value at window centres
        res = np.full(pos.shape[:2], np.nan)
        if pos.shape[1] >= window:
            vals = reduce(sliding_tamsd(pos, window, lags), pos.shape[2])
            res[:, window // 2 : window // 2 + vals.shape[1]] = vals
        return res

    if isinstance(tracks, np.ndarray) and tracks.ndim == 3:  # one batch, no split and restack
        return list(batch(tracks.astype(float, copy=False)))
    tracks = as_track_list(tracks)
    out: list = [None] * len(tracks)
    for idx in group_by_length(tracks).values():
        for i, row in zip(idx, batch(np.stack([tracks[i] for i in idx]))):
            out[i] = row
    return out


def tamsd_d(tracks, window: int = 20, lags=(1, 2)) -> list[np.ndarray]:
    """Sliding-window TA-MSD D per frame (px^2/frame).

    The D of window [i, i+window) is stored at frame i + window // 2; frames where no full window
    fits are NaN. Values are the raw line fit and can be <= 0 on noisy windows.
    """
    return _sliding(tracks, window, lags, lambda m, dim: fit_d(m, lags, dim))


def tamsd_alpha(tracks, window: int = 50, lags=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)) -> list[np.ndarray]:
    """Sliding-window anomalous exponent per frame from a log-log TA-MSD fit (same layout as tamsd_d)."""
    return _sliding(tracks, window, lags, lambda m, dim: fit_alpha(m, lags))
