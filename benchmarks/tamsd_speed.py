"""TA-MSD speed and exactness: `tamsd_d` against the seed tutorial's own sliding-window function.

Reference (the STEP tutorial "anomalous diffusion from normal diffusion", reimplemented here):
``swin_D_tmsd(x, win_size=20)`` loops in Python over the windows ``x[i:i + 20]`` for
``i in range(len(x) - 20)`` and calls the STEP library's ``diffusion_coefficient_tamsd(window,
t_lag=[1, 2])``: per lag, the mean over the window of the squared lag displacement summed over
coordinates (on torch tensors, as the tutorial's ``trajs`` are), then ``np.polyfit(t_lag, tmsds,
1)[0] / (2 * dim)``. The tutorial runs it on 6000 2-D tracks of 200 frames ("can take a couple of
minutes"). The same function on numpy arrays (no tensor overhead) is timed too, as the stricter
anchor.

Prints both reference times (measured on a subset and scaled linearly to the full workload),
`tamsd_d`'s time (best of several, after a warm-up that compiles the kernel), the ratios, the
largest relative difference over every window of the subset, and the achieved memory bandwidth
next to the machine's (a large numpy copy timed in the same run).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_step import tamsd_d
from napari_step.simulate import brownian_changepoints
from napari_step.tamsd import window_frame_offset


def _tamsd_one_lag(x, dt):
    """STEP's `tamsd`: mean over the window of the squared dt-displacement summed over coords."""
    return ((x[dt:] - x[:-dt]) ** 2).sum(-1).mean()  # torch: Tensor.pow, as in STEP


def _diffusion_coefficient_tamsd(x, t_lag=(1, 2)):
    """STEP's `diffusion_coefficient_tamsd`: slope of a degree-1 polyfit / (2 dim)."""
    tmsds = [_tamsd_one_lag(x, dt) for dt in t_lag]  # 0-d tensors, converted by np.polyfit
    return np.polyfit(t_lag, tmsds, 1)[0] / (2 * x.shape[-1])


def swin_d_tmsd(x, win_size=20):
    """The tutorial's `swin_D_tmsd`: one call per window start i in range(len(x) - win_size)."""
    return np.array(
        [
            _diffusion_coefficient_tamsd(x[i : i + win_size], t_lag=[1, 2])
            for i in range(len(x) - win_size)
        ]
    )


def time_reference(trajs):
    t0 = time.perf_counter()
    out = np.stack([swin_d_tmsd(t) for t in trajs])
    return time.perf_counter() - t0, out


def best_of(fn, repeats):
    best_wall, best_cpu = np.inf, np.inf
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        res = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return best_wall, best_cpu, res


def machine_copy_bandwidth(n_bytes=512 * 2**20, repeats=5):
    """Bytes read + written per second by np.copyto of a large float64 array."""
    src = np.ones(n_bytes // 8)
    dst = np.empty_like(src)
    wall, _, _ = best_of(lambda: np.copyto(dst, src), repeats)
    return 2 * src.nbytes / wall


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--n-tracks", type=int, default=6000)
    ap.add_argument("--n-frames", type=int, default=200)
    ap.add_argument(
        "--ref-tracks",
        type=int,
        default=300,
        help="tracks the slow references run on; their time is scaled to --n-tracks",
    )
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    win = 20
    sim = brownian_changepoints(
        args.n_tracks, args.n_frames, 2, (1, 4), rng=np.random.default_rng(0)
    )
    pos = np.ascontiguousarray(sim.positions)
    n_ref = min(args.ref_tracks, args.n_tracks)
    scale = args.n_tracks / n_ref

    t0 = time.perf_counter()
    tamsd_d(pos[:4], window=win)  # first call: imports numba, loads or compiles the kernel
    first_call = time.perf_counter() - t0
    wall, cpu, fast = best_of(lambda: tamsd_d(pos, window=win, lags=(1, 2)), args.repeats)

    try:
        import torch

        t_torch, ref = time_reference(torch.tensor(pos[:n_ref]))
    except ImportError:
        t_torch, ref = np.nan, None
    t_numpy, ref_np = time_reference(pos[:n_ref])
    ref = ref_np if ref is None else ref

    off = window_frame_offset(win)
    f = np.stack(fast[:n_ref])[:, off : off + ref.shape[1]]  # the tutorial's windows
    assert np.isfinite(f).all() and np.isfinite(ref).all()
    rel = np.max(np.abs(f - ref) / np.abs(ref))
    rel_np = np.max(np.abs(f - ref_np) / np.abs(ref_np))

    bytes_moved = pos.nbytes + args.n_tracks * args.n_frames * 8  # positions in, D(t) out
    bw = bytes_moved / wall
    bw_machine = machine_copy_bandwidth()
    print(
        f"workload: {args.n_tracks} 2-D tracks x {args.n_frames} frames, window {win}, lags (1, 2) "
        f"({pos.nbytes / 1e6:.1f} MB of positions)"
    )
    print(
        f"reference, seed swin_D_tmsd on torch tensors : {t_torch * scale:9.2f} s "
        f"(measured {t_torch:.2f} s on {n_ref} tracks, x{scale:g})"
    )
    print(
        f"reference, same function on numpy arrays     : {t_numpy * scale:9.2f} s "
        f"(measured {t_numpy:.2f} s on {n_ref} tracks, x{scale:g})"
    )
    print(
        f"{f'tamsd_d (best of {args.repeats})':45s}: {wall * 1e3:9.2f} ms wall, "
        f"{cpu * 1e3:.2f} ms CPU (first call incl. numba load/compile {first_call:.2f} s)"
    )
    print(f"speed-up vs seed function (torch)            : {t_torch * scale / wall:9.0f}x")
    print(
        f"speed-up vs seed function (numpy arrays)     : {t_numpy * scale / wall:9.0f}x "
        f"(target >= 1000x)"
    )
    print(
        f"max relative difference, every window        : {rel:9.2e} vs torch, "
        f"{rel_np:.2e} vs numpy "
        f"(target < 1e-9; {ref.size} windows)"
    )
    print(
        f"memory bandwidth: tamsd_d {bw / 1e9:.2f} GB/s ({bytes_moved / 1e6:.1f} MB in+out) "
        f"vs machine {bw_machine / 1e9:.2f} GB/s (np.copyto, read+write of 512 MiB): "
        f"{bw / bw_machine:.0%}; per CPU second {bytes_moved / cpu / 1e9:.2f} GB/s "
        f"({bytes_moved / cpu / bw_machine:.0%}; wall > CPU means the process waited for a core)"
    )


if __name__ == "__main__":
    main()
