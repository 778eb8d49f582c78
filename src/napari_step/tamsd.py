"""Time-averaged mean squared displacement (TA-MSD) estimators of D and alpha.

Units: positions in px, time in frames, so D is in px^2/frame.

Sliding windows hold ``window`` consecutive frames ``[i, i + window)``, that is the
``window - 1`` steps ``i .. i + window - 2`` (step ``s`` is the motion from frame ``s`` to
``s + 1``). Following the per-frame convention of STEP and andi-datasets (the value at frame t
describes the motion t -> t + 1), a window's value is stored at frame ``i + (window - 2) // 2``,
the centre of its steps (exact for even windows, half a frame early for odd ones). Frames where
no full window fits are NaN, and so is every window that touches a non-finite position (a gap).

Every window sum is computed without cancellation (block prefix and suffix sums of the
non-negative squared displacements), so a window's TA-MSD is exact to a few ulps whatever D
does along the track. A compiled kernel (numba) does the work at a few ns per frame; without
numba a vectorised numpy path computes the same sums.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import numpy as np

from ._input import as_track_list, group_by_length

__all__ = [
    "tamsd",
    "sliding_tamsd",
    "fit_d",
    "fit_alpha",
    "tamsd_d",
    "tamsd_alpha",
    "window_frame_offset",
]

Tracks = np.ndarray | Iterable[np.ndarray]


def _check_lags(lags, window: int | None = None) -> np.ndarray:
    lags = np.asarray(lags, dtype=np.int64)
    if lags.ndim != 1 or lags.size < 2 or (lags < 1).any() or len(set(lags.tolist())) != lags.size:
        raise ValueError(
            f"lags must be at least two distinct positive integers, got {lags.tolist()}"
        )
    if window is not None:
        if int(window) != window:
            raise ValueError(f"window must be an integer number of frames, got {window!r}")
        if lags.max() >= window:
            raise ValueError(f"largest lag {lags.max()} must be smaller than the window {window}")
    return lags


def window_frame_offset(window: int) -> int:
    """Frame, counted from a window's first frame, at which its value is stored.

    Parameters
    ----------
    window : int
        Window length in frames (``window - 1`` steps).

    Returns
    -------
    int
        ``(window - 2) // 2``: the centre of the window's steps under the forward per-frame
        convention (the value at frame t describes the motion t -> t + 1).
    """
    return (int(window) - 2) // 2


def tamsd(positions: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """TA-MSD of whole tracks.

    Parameters
    ----------
    positions : ndarray, shape (N, T, dim)
        Positions in px.
    lags : sequence of int
        Time lags in frames.

    Returns
    -------
    ndarray, shape (N, len(lags))
        Mean over the track of the squared lag displacement summed over coordinates (px^2);
        NaN where a lag does not fit in the track.
    """
    positions = np.asarray(positions, dtype=float)
    lags = np.asarray(lags, dtype=int)
    out = np.empty(positions.shape[:1] + (lags.size,))
    for j, lag in enumerate(lags):  # loop over the few lags only
        sd = ((positions[:, lag:] - positions[:, :-lag]) ** 2).sum(-1)
        out[:, j] = sd.mean(axis=1) if sd.shape[1] else np.nan
    return out


def _block_window_sums(sd: np.ndarray, m: int, n_win: int) -> np.ndarray:
    """Sums of sd[:, i:i+m] for i < n_win as a block suffix plus the next block's prefix."""
    n, length = sd.shape
    n_blocks = -(-length // m) + 1
    x = np.zeros((n, n_blocks, m))
    x.reshape(n, -1)[:, :length] = sd
    suffix = np.cumsum(x[:, :, ::-1], axis=2)[:, :, ::-1].reshape(n, -1)
    prefix = np.zeros_like(x)  # exclusive prefix inside each block
    np.cumsum(x[:, :, :-1], axis=2, out=prefix[:, :, 1:])
    return suffix[:, :n_win] + prefix.reshape(n, -1)[:, m : m + n_win]


def _window_fit_numpy(pos: np.ndarray, window: int, lags: np.ndarray, weights: np.ndarray):
    """(N, n_win, n_out) weighted window TA-MSDs; the numpy twin of the compiled kernel."""
    n, t, _ = pos.shape
    n_win = t - window + 1
    out = np.zeros((n, max(n_win, 0), weights.shape[1]))
    if n_win < 1:
        return out
    for j, lag in enumerate(lags):
        sd = ((pos[:, lag:] - pos[:, :-lag]) ** 2).sum(-1)
        sd[~np.isfinite(sd)] = 0.0  # gaps are masked below
        m = window - int(lag)
        out += _block_window_sums(sd, m, n_win)[:, :, None] * (weights[j] / m)
    bad = ~np.isfinite(pos).all(-1)
    if bad.any():  # a window touching a missing frame has no honest value
        cb = np.concatenate([np.zeros((n, 1)), np.cumsum(bad, axis=1)], axis=1)
        out[(cb[:, window : window + n_win] - cb[:, :n_win]) > 0] = np.nan
    return out


@lru_cache(maxsize=1)
def _kernel():
    """The compiled kernel module, or None where numba cannot be imported."""
    try:
        from . import _tamsd_kernel
    except ImportError:
        return None
    return _tamsd_kernel


def _window_fit(pos, window: int, lags, weights, offset: int, t_out: int) -> np.ndarray:
    """(N, t_out, n_out): weighted window TA-MSDs stored from frame ``offset`` on, NaN elsewhere."""
    pos = np.ascontiguousarray(pos, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    lags = np.ascontiguousarray(lags, dtype=np.int64)
    kern = _kernel()
    out = np.empty((pos.shape[0], t_out, weights.shape[1]))
    if kern is not None:
        return kern.window_fit(pos, int(window), lags, weights, int(offset), out, kern.CHUNK)
    vals = _window_fit_numpy(pos, int(window), lags, weights)
    out[:] = np.nan
    stop = min(t_out, offset + vals.shape[1])
    out[:, offset:stop] = vals[:, : stop - offset]
    return out


def sliding_tamsd(positions: np.ndarray, window: int, lags: Sequence[int]) -> np.ndarray:
    """TA-MSD of every window of ``window`` frames.

    Parameters
    ----------
    positions : ndarray, shape (N, T, dim)
        Positions in px; non-finite rows are gaps.
    window : int
        Window length in frames.
    lags : sequence of int
        At least two distinct lags in frames, all smaller than ``window``.

    Returns
    -------
    ndarray, shape (N, T - window + 1, len(lags))
        Entry ``[k, i, j]``: TA-MSD (px^2) at lag ``lags[j]`` of frames ``[i, i + window)`` of
        track k; NaN where that window touches a gap.
    """
    positions = np.asarray(positions, dtype=float)
    lags = _check_lags(lags, window)
    n_win = max(positions.shape[1] - window + 1, 0)
    return _window_fit(positions, window, lags, np.eye(lags.size), 0, n_win)


def _slope_weights(x: np.ndarray) -> np.ndarray:
    xc = x - x.mean()
    return xc / (xc**2).sum()


def fit_d(msd: np.ndarray, lags: Sequence[int], dim: int) -> np.ndarray:
    """D from a least-squares line MSD = 2 dim D lag + c through the given lags.

    Parameters
    ----------
    msd : ndarray, shape (..., len(lags))
        TA-MSD values in px^2.
    lags : sequence of int
        Lags in frames.
    dim : int
        Number of coordinates.

    Returns
    -------
    ndarray, shape (...)
        D in px^2/frame: the raw slope / (2 dim), which can be <= 0 on noisy windows.
    """
    w = _slope_weights(np.asarray(lags, dtype=float))
    return (np.asarray(msd) @ w) / (2.0 * dim)


def fit_alpha(msd: np.ndarray, lags: Sequence[int]) -> np.ndarray:
    """Anomalous exponent from a least-squares line through log MSD versus log lag.

    Parameters
    ----------
    msd : ndarray, shape (..., len(lags))
        TA-MSD values in px^2 (values <= 0 give NaN).
    lags : sequence of int
        Lags in frames.

    Returns
    -------
    ndarray, shape (...)
        The exponent alpha (dimensionless).
    """
    w = _slope_weights(np.log(np.asarray(lags, dtype=float)))
    with np.errstate(divide="ignore", invalid="ignore"):
        logm = np.log(np.where(np.asarray(msd) > 0, msd, np.nan))
    return logm @ w


def _per_frame(tracks: Tracks, window: int, lags, linear_d: bool) -> list[np.ndarray]:
    lags = _check_lags(lags, window)
    offset = window_frame_offset(window)

    def batch(pos: np.ndarray) -> np.ndarray:  # equal-length tracks (B, T, dim) -> (B, T)
        if linear_d:  # the line fit is linear in the MSDs: fold it into the kernel's weights
            w = (_slope_weights(lags.astype(float)) / (2.0 * pos.shape[2]))[:, None]
            return _window_fit(pos, window, lags, w, offset, pos.shape[1])[:, :, 0]
        msd = _window_fit(pos, window, lags, np.eye(lags.size), offset, pos.shape[1])
        return fit_alpha(msd, lags)

    if isinstance(tracks, np.ndarray) and tracks.ndim == 3:  # one batch, no split and restack
        return list(batch(tracks))
    tracks = _float_tracks(tracks)
    out: list = [None] * len(tracks)
    for n, idx in group_by_length(tracks).items():
        same = np.concatenate([tracks[i] for i in idx]).reshape(len(idx), n, -1)
        for i, row in zip(idx, batch(same)):
            out[i] = row
    return out


def _float_tracks(tracks: Tracks) -> list[np.ndarray]:
    """The tracks as validated float64 (T_i, dim) arrays; lists of such arrays (what the
    analysis hands over, often 100 000 of them) pass without a per-track check."""
    if isinstance(tracks, list) and tracks:
        dims = {t.shape[1] for t in tracks if type(t) is np.ndarray and t.ndim == 2}
        if (
            len(dims) == 1
            and 1 <= next(iter(dims)) <= 3
            and all(type(t) is np.ndarray and t.dtype == np.float64 and t.ndim == 2 for t in tracks)
        ):
            return tracks
    return as_track_list(tracks)


def tamsd_d(tracks: Tracks, window: int = 20, lags: Sequence[int] = (1, 2)) -> list[np.ndarray]:
    """Sliding-window TA-MSD D per frame.

    Parameters
    ----------
    tracks : ndarray (N, T, dim) or list of (T_i, dim) arrays
        Positions in px; non-finite rows are gaps.
    window : int
        Window length in frames (default 20, as in the STEP tutorials).
    lags : sequence of int
        Lags in frames for the line fit of TA-MSD against lag (default 1 and 2).

    Returns
    -------
    list of ndarray, shape (T_i,)
        D in px^2/frame per frame. The value of window ``[i, i + window)`` is stored at frame
        ``i + window_frame_offset(window)`` (the centre of its steps, forward convention); frames
        where no full window fits and windows touching a gap are NaN. Values are the raw line
        fit and can be <= 0 on noisy windows.
    """
    return _per_frame(tracks, window, lags, linear_d=True)


def tamsd_alpha(
    tracks: Tracks, window: int = 50, lags: Sequence[int] = tuple(range(1, 11))
) -> list[np.ndarray]:
    """Sliding-window anomalous exponent per frame from a log-log TA-MSD fit.

    Parameters
    ----------
    tracks : ndarray (N, T, dim) or list of (T_i, dim) arrays
        Positions in px; non-finite rows are gaps.
    window : int
        Window length in frames.
    lags : sequence of int
        Lags in frames (default 1..10).

    Returns
    -------
    list of ndarray, shape (T_i,)
        alpha (dimensionless) per frame, laid out as in :func:`tamsd_d`.
    """
    return _per_frame(tracks, window, lags, linear_d=False)
