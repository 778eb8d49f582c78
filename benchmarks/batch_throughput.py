"""Batch throughput: 200 track files (~100 tracks each) in one process vs a local Dask cluster.

Prints files per minute and tracks per second for both, their ratio, and the peak memory of each
Dask worker process. Run on the same machine back to back (same files, fresh output folders).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from napari_step.batch import analyze
from napari_step.simulate import brownian_changepoints


def make_files(folder: Path, n_files: int, n_tracks: int, n_frames: int):
    for i in range(n_files):
        sim = brownian_changepoints(
            n_tracks, n_frames, 2, (1, 4), 10, (1e-2, 1e2), rng=np.random.default_rng(i)
        )
        pos = sim.positions
        pd.DataFrame(
            {
                "particle": np.repeat(np.arange(n_tracks), n_frames),
                "frame": np.tile(np.arange(n_frames), n_tracks),
                "y": pos[..., 0].ravel(),
                "x": pos[..., 1].ravel(),
            }
        ).to_csv(folder / f"movie_{i:04d}.csv", index=False)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-files", type=int, default=200)
    ap.add_argument("--n-tracks", type=int, default=100)
    ap.add_argument("--n-frames", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "in").mkdir()
        make_files(tmp / "in", args.n_files, args.n_tracks, args.n_frames)
        inputs = [str(tmp / "in" / "*.csv")]
        total_tracks = args.n_files * args.n_tracks

        t = time.perf_counter()
        s1 = analyze(inputs, tmp / "single", scheduler="sync")
        t1 = time.perf_counter() - t

        from distributed import Client, LocalCluster

        with LocalCluster(
            n_workers=args.workers, threads_per_worker=1, dashboard_address=None
        ) as cluster:
            t = time.perf_counter()
            s2 = analyze(inputs, tmp / "dask", scheduler=cluster.scheduler_address)
            t2 = time.perf_counter() - t
            with Client(cluster.scheduler_address) as c:
                import resource

                mem = c.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        assert (s1.status == "done").all() and (s2.status == "done").all()
    print(f"{args.n_files} files x {args.n_tracks} tracks x {args.n_frames} frames")
    print(
        f"one process      : {t1:7.1f} s  {args.n_files / t1 * 60:7.1f} files/min  "
        f"{total_tracks / t1:7.1f} tracks/s"
    )
    print(
        f"Dask {args.workers} workers   : {t2:7.1f} s  {args.n_files / t2 * 60:7.1f} files/min  "
        f"{total_tracks / t2:7.1f} tracks/s"
    )
    print(f"speed-up         : {t1 / t2:7.2f}x")
    print("peak memory per worker: " + ", ".join(f"{v:.0f} MiB" for v in mem.values()))


if __name__ == "__main__":
    main()
