"""Detect & link speed on the real bulk-water movie (480 frames, 424 x 640 px, uint8).

Issue 14 item 6: "Detect & link" took 53 s (9 frames/s) in the GUI on this 2-core machine; the
target is under 20 s. Measured, all on the whole movie with the parameters suggested from its
middle frame (dark particles, diameter 11 px) and the widget's default linking (search range
6 px, memory 2, min. length 20):

  reference   trackpy's plain ``tp.batch`` (one process) + ``tp.link`` + ``tp.filter_stubs``,
              in this process (numba used where installed, as trackpy does);
  before      the widget's job as it was: ``tp.locate`` frame by frame + link, in a child
              process where numba cannot be imported (the project did not install numba);
  after       the widget's job now (``_detection_jobs.detect_job`` driven by ``run_job``): chunked
              frames, trackpy's numba engine, with 1 and with 2 worker processes.

Usage: python benchmarks/detect_link_speed.py [--movie PATH] [--frames N]
Timings vary with the machine's load: the reference runs in the same process and conditions,
and the CPU seconds of the one-process runs are comparable even on a busy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MOVIE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bulk-water.mov"

BEFORE = r"""
import sys, time, json
sys.modules["numba"] = None  # trackpy falls back to its pure-Python engines
import numpy as np, trackpy as tp, pandas as pd
movie = np.load(sys.argv[1])
diameter, minmass, invert, search, memory, min_length = json.loads(sys.argv[2])
t0, c0 = time.perf_counter(), time.process_time()
frames = []
for t in range(movie.shape[0]):
    f = tp.locate(movie[t], diameter, minmass=minmass, invert=invert)
    f["frame"] = t
    frames.append(f)
det = pd.concat(frames, ignore_index=True)
t1 = time.perf_counter()
tp.quiet()
linked = tp.filter_stubs(tp.link(det, search, memory=memory, t_column="frame"), min_length)
t2 = time.perf_counter()
cpu = time.process_time() - c0
print(json.dumps([t1 - t0, t2 - t1, cpu, len(det), int(linked["particle"].nunique())]))
"""


def load_movie(path: Path) -> np.ndarray:
    """Decode a movie to (T, Y, X) uint8 grey levels with PyAV."""
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])


def reference(movie, det, lnk):
    import trackpy as tp

    tp.quiet()  # the benchmark's own process: the reference is silenced like the others
    t0, c0 = time.perf_counter(), time.process_time()
    f = tp.batch(movie, det.diameter, minmass=det.minmass, invert=det.invert, processes=1)
    t1 = time.perf_counter()
    linked = tp.filter_stubs(
        tp.link(f, lnk.search_range, memory=lnk.memory, t_column="frame"), lnk.min_length
    )
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, time.process_time() - c0, len(f), int(linked["particle"].nunique())


def before(movie, det, lnk, tmp: Path):
    np.save(tmp, movie)
    args = json.dumps(
        [det.diameter, det.minmass, det.invert, lnk.search_range, lnk.memory, lnk.min_length]
    )
    try:
        out = subprocess.run(
            [sys.executable, "-c", BEFORE, str(tmp), args],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        tmp.unlink(missing_ok=True)
    return tuple(json.loads(out.stdout.strip().splitlines()[-1]))


def after(movie, det, lnk, processes):
    from napari_step._napari._detection_jobs import detect_job, link_detections
    from napari_step._napari._jobs import run_job

    t0, c0 = time.perf_counter(), time.process_time()
    detections, tracks = run_job(detect_job(movie, det, None, processes=processes))
    t1 = time.perf_counter()
    tracks = link_detections(detections, lnk)
    t2 = time.perf_counter()
    cpu = time.process_time() - c0 if processes == 1 else float("nan")  # children not counted
    return t1 - t0, t2 - t1, cpu, len(detections), int(tracks["track_id"].nunique())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movie", type=Path, default=MOVIE)
    ap.add_argument("--frames", type=int, default=0, help="first N frames only (0: all)")
    args = ap.parse_args()
    from napari_step.detection_hints import suggest_detection
    from napari_step.pipeline import DetectionParams, LinkingParams

    movie = load_movie(args.movie)
    if args.frames:
        movie = movie[: args.frames]
    n = movie.shape[0]
    hint = suggest_detection(movie[n // 2])
    det = DetectionParams(hint.diameter, hint.minmass, None, hint.invert)
    lnk = LinkingParams()
    print(f"movie {movie.shape} {movie.dtype}; cpus {os.cpu_count()}; load {os.getloadavg()}")
    print(
        f"suggested: diameter {det.diameter}, minmass {det.minmass:g}, invert {det.invert} "
        f"({hint.n_found} particles on frame {n // 2}); linking {lnk}"
    )
    import trackpy.try_numba as tn

    print(f"trackpy numba available: {tn.NUMBA_AVAILABLE}")
    rows = [
        ("reference tp.batch + tp.link", reference(movie, det, lnk)),
        (
            "before (per-frame locate, no numba)",
            before(movie, det, lnk, Path(f"/tmp/detect_link_speed_{os.getpid()}.npy")),
        ),
    ]
    for p in (1, 2):
        rows.append((f"after, {p} process(es)", after(movie, det, lnk, p)))
    print(
        f"{'':38s} {'detect s':>9s} {'link s':>7s} {'total s':>8s} {'frames/s':>9s} "
        f"{'CPU s':>6s} {'detections':>10s} {'tracks':>7s}"
    )
    for name, (td, tl, cpu, nd, nt) in rows:
        print(
            f"{name:38s} {td:9.1f} {tl:7.1f} {td + tl:8.1f} {n / (td + tl):9.1f} {cpu:6.1f} "
            f"{nd:10d} {nt:7d}"
        )
    print(
        f"load after: {os.getloadavg()} (wall times on a shared machine; CPU s is this "
        "process's own time, comparable under load)"
    )


if __name__ == "__main__":
    main()
