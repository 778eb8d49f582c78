"""100 000 tracks through predict_d: time, progress calls and peak memory growth.

Shows that a huge table is processed in bounded-memory batches (peak RSS grows by about the size
of the inputs and outputs, not by the number of tracks times the model's activations).
"""

import argparse
import resource
import time

import numpy as np

from napari_step import predict_d


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-tracks", type=int, default=100_000)
    ap.add_argument("--n-frames", type=int, default=30)
    args = ap.parse_args()
    x = np.random.default_rng(0).standard_normal((args.n_tracks, args.n_frames, 2)).cumsum(1)
    predict_d(x[:10])
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    calls = []
    t = time.perf_counter()
    out = predict_d(x, progress=lambda d, n: calls.append(d))
    dt = time.perf_counter() - t
    grow = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - r0) / 1024
    print(
        f"{args.n_tracks} tracks x {args.n_frames} frames: {dt:.1f} s "
        f"({args.n_tracks / dt:.0f} tracks/s), {len(calls)} progress updates"
    )
    print(
        f"input {x.nbytes / 2**20:.0f} MiB, output {sum(o.nbytes for o in out) / 2**20:.0f} MiB, "
        f"peak RSS growth {grow:.0f} MiB"
    )


if __name__ == "__main__":
    main()
