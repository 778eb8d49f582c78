"""TA-MSD speed: vectorised `tamsd_d` against the seed tutorial's per-window polyfit loop.

Workload (the seed's): 6000 2-D tracks of 200 frames, window 20, lags (1, 2). Prints both times,
the ratio (target >= 500x) and the largest relative difference (target < 1e-6, float64).
"""

import argparse
import time

import numpy as np

from napari_step import tamsd_d
from napari_step.simulate import brownian_changepoints


def polyfit_loop(tracks, window=20, lags=(1, 2)):
    out = []
    for tr in tracks:
        d = np.full(len(tr), np.nan)
        for i in range(len(tr) - window + 1):
            w = tr[i : i + window]
            msd = [np.mean(np.sum((w[l:] - w[:-l]) ** 2, axis=1)) for l in lags]
            d[i + window // 2] = np.polyfit(lags, msd, 1)[0] / (2 * tr.shape[1])
        out.append(d)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-tracks", type=int, default=6000)
    ap.add_argument("--n-frames", type=int, default=200)
    args = ap.parse_args()
    sim = brownian_changepoints(args.n_tracks, args.n_frames, 2, (1, 4),
                                rng=np.random.default_rng(0))
    pos = sim.positions
    tamsd_d(pos[:10])  # warm-up
    t = time.perf_counter()
    fast = tamsd_d(pos, window=20, lags=(1, 2))
    t_fast = time.perf_counter() - t
    t = time.perf_counter()
    slow = polyfit_loop(pos)
    t_slow = time.perf_counter() - t
    f, s = np.concatenate(fast), np.concatenate(slow)
    ok = np.isfinite(s)
    assert np.array_equal(ok, np.isfinite(f))
    rel = np.max(np.abs(f[ok] - s[ok]) / np.maximum(np.abs(s[ok]), 1e-300))
    print(f"workload: {args.n_tracks} tracks x {args.n_frames} frames, window 20, lags (1, 2)")
    print(f"polyfit loop : {t_slow:9.3f} s")
    print(f"tamsd_d      : {t_fast:9.3f} s")
    print(f"speed-up     : {t_slow / t_fast:9.0f}x   (target >= 500x)")
    print(f"max rel diff : {rel:9.2e}   (target < 1e-6)")


if __name__ == "__main__":
    main()
