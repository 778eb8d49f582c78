"""Compiled (numba) kernel for sliding-window TA-MSD fits; imported lazily by :mod:`.tamsd`.

Every window sum is the sum of a block suffix and the next block's prefix (blocks of the
window's length), both sums of non-negative squared displacements, so no sum cancels and each
window is exact to about ``window`` ulps, whatever D does along the track. Tracks are processed
in chunks laid out time-major (frame, coordinate, track) so that the loops over the chunk's
tracks are independent and vectorise.
"""

from __future__ import annotations

import numpy as np
from numba import njit

CHUNK = 16  # tracks per chunk (pass as `chunk`): the scratch arrays stay in the L1/L2 caches


@njit(cache=True, nogil=True, error_model="numpy")
def _load_chunk(pos, k0, nc, buf, bad):  # pragma: no cover - compiled
    """Copy tracks k0..k0+nc into buf (t, dim, C); cumulative bad-frame counts if any is bad."""
    t, dim, chunk = buf.shape
    n_bad = 0
    for j in range(nc):
        for s in range(t):
            for c in range(dim):
                v = pos[k0 + j, s, c]
                buf[s, c, j] = v
                n_bad += (v - v) != 0.0  # NaN or inf
    for j in range(nc, chunk):
        buf[:, :, j] = 0.0
    if n_bad:
        for j in range(chunk):
            bad[0, j] = 0
        for s in range(t):
            for j in range(chunk):
                ok = 1
                for c in range(dim):
                    if not np.isfinite(buf[s, c, j]):
                        ok = 0
                bad[s + 1, j] = bad[s, j] + 1 - ok
    return n_bad > 0


@njit(cache=True, nogil=True, error_model="numpy")
def _lag_window_sums(buf, lag, m, any_bad, sd, pre, suf):  # pragma: no cover - compiled
    """Squared lag displacements sd (gaps as 0), in-block prefix and suffix sums (blocks of m)."""
    t, dim, chunk = buf.shape
    n_sd = t - lag
    for s in range(n_sd):
        for j in range(chunk):
            sd[s, j] = 0.0
        for c in range(dim):
            for j in range(chunk):
                dd = buf[s + lag, c, j] - buf[s, c, j]
                sd[s, j] += dd * dd
    if any_bad:
        for s in range(n_sd):
            for j in range(chunk):
                if not np.isfinite(sd[s, j]):
                    sd[s, j] = 0.0
    run = np.empty(chunk)
    for b0 in range(0, n_sd, m):
        b1 = min(b0 + m, n_sd)
        run[:] = 0.0
        for s in range(b0, b1):  # pre[s]: sum of the block's terms before s
            for j in range(chunk):
                pre[s, j] = run[j]
                run[j] += sd[s, j]
        last = 1.0 if b1 - b0 < m else 0.0  # pre[n_sd] closes a partial last block
        for j in range(chunk):
            pre[b1, j] = run[j] * last
            run[j] = 0.0
        for s in range(b1 - 1, b0 - 1, -1):  # suf[s]: sum of the block's terms from s on
            for j in range(chunk):
                run[j] += sd[s, j]
                suf[s, j] = run[j]


@njit(cache=True, nogil=True, error_model="numpy")
def window_fit(pos, window, lags, weights, offset, out, chunk):  # pragma: no cover - compiled
    """out[k, offset + i, o] = sum_j weights[j, o] * TA-MSD(lag_j) of window [i, i + window).

    ``pos`` (N, T, dim) float64, ``lags`` int64, ``weights`` (n_lags, n_out), ``out``
    (N, T_out, n_out) float64: every entry outside the windows and every window touching a
    non-finite position is NaN. ``chunk`` (tracks per chunk) is a run-time value on purpose:
    a compile-time constant gets the inner loops fully unrolled and not vectorised.
    """
    n, t, dim = pos.shape
    n_win = t - window + 1
    n_out = weights.shape[1]
    t_out = out.shape[1]
    buf = np.empty((t, dim, chunk))
    sd = np.empty((t, chunk))
    pre = np.empty((t + 1, chunk))
    suf = np.empty((t, chunk))
    bad = np.zeros((t + 1, chunk), np.int64)
    acc = np.empty((n_out, max(n_win, 0), chunk))
    for k0 in range(0, n, chunk):
        nc = min(chunk, n - k0)
        any_bad = n_win > 0 and _load_chunk(pos, k0, nc, buf, bad)
        acc[:] = 0.0
        for li in range(lags.size if n_win > 0 else 0):
            m = window - lags[li]
            _lag_window_sums(buf, lags[li], m, any_bad, sd, pre, suf)
            for o in range(n_out):
                wm = weights[li, o] / m
                for i in range(n_win):
                    for j in range(chunk):
                        acc[o, i, j] += wm * (suf[i, j] + pre[i + m, j])
        for j in range(nc):
            row = out[k0 + j]
            row[: min(offset, t_out)] = np.nan
            for iw in range(max(0, min(n_win, t_out - offset))):
                ok = not any_bad or bad[iw + window, j] == bad[iw, j]
                for o in range(n_out):
                    row[offset + iw, o] = acc[o, iw, j] if ok else np.nan
            row[max(offset, 0) + max(n_win, 0) :] = np.nan
    return out
