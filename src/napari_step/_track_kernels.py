"""Compiled (numba) kernels of the per-track table (:mod:`.track_summary`), one pass over rows
sorted by track, then frame (``starts``: first row of each track plus the row count).

``tamsd_sums``: each point is paired with the points of the same track up to the largest lag
ahead, so a track with missing frames needs no padding and no displacement spans a gap
(O(rows x largest lag)). ``track_quantiles``: quantiles of a per-frame value per track.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def tamsd_sums(starts, frames, pos, col_of_lag, total, count):  # pragma: no cover - compiled
    """Add squared displacements per (track, lag) into ``total`` and their number into ``count``.

    ``starts``: first row of each track plus the row count; ``col_of_lag[L]``: column of lag L
    in ``total``/``count`` (-1: not wanted); non-finite positions are skipped.
    """
    max_lag = col_of_lag.size - 1
    dim = pos.shape[1]
    for k in range(starts.size - 1):
        a, b = starts[k], starts[k + 1]
        for i in range(a, b):
            ok = True
            for c in range(dim):
                if not np.isfinite(pos[i, c]):
                    ok = False
            if not ok:
                continue
            j = i + 1
            while j < b and frames[j] - frames[i] <= max_lag:
                col = col_of_lag[frames[j] - frames[i]]
                if col >= 0:
                    sd = 0.0
                    for c in range(dim):
                        d = pos[j, c] - pos[i, c]
                        sd += d * d
                    if np.isfinite(sd):
                        total[k, col] += sd
                        count[k, col] += 1.0
                j += 1


@njit(cache=True, nogil=True)
def track_quantiles(starts, values, qs, out):  # pragma: no cover - compiled
    """``out[k, j]``: quantile ``qs[j]`` (linear interpolation, like numpy's default) of the
    finite ``values`` of track k (rows ``starts[k]:starts[k + 1]``); NaN for a track without."""
    for k in range(starts.size - 1):
        v = values[starts[k] : starts[k + 1]]
        v = np.sort(v[np.isfinite(v)])
        n = v.size
        for j in range(qs.size):
            if n == 0:
                out[k, j] = np.nan
                continue
            pos = qs[j] * (n - 1)
            lo = int(np.floor(pos))
            hi = min(lo + 1, n - 1)
            out[k, j] = v[lo] + (pos - lo) * (v[hi] - v[lo])
