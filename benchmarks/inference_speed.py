"""STEP inference throughput (tracks/s): end to end and forward only, default and paper
configurations, fp32 and reduced precision.

* end to end, 200 frames: ``predict_d`` on N 2-D tracks of 200 frames, everything a user pays
  (validation, length buckets, host -> device transfers, rescaling in float64 on the device, the
  network, output conversion);
* end to end, mixed lengths: ``predict_d`` on N 2-D tracks with lengths drawn log-uniformly in
  20..1000 frames (many length buckets, windows for none), rate in tracks/s;
* forward only: the network alone on float32 tracks of 200 frames already on the device, in the
  batch size the core would use (the figure the README used to quote).

The paper configuration (8 M parameters) runs with random weights, which cost the same time as
trained ones. ``--compile`` adds ``torch.compile`` d runs (worth it on a GPU). Targets (issue 16,
one H100, end to end): default >= 150 000 tracks/s, paper >= 40 000 tracks/s.

Usage: ``python benchmarks/inference_speed.py --n-tracks 2000 --precisions fp32 bf16``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_step import _inference
from napari_step.model import PAPER_D_CONFIG, XResAttn, save_checkpoint
from napari_step.predict import load_model, predict_d, resolve_device, resolve_precision


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up (model load, allocator, compilation)
    best = np.inf
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def forward_only(model, pos: np.ndarray, dev, precision: str, repeats: int) -> float:
    net = load_model(model, 2, dev)
    engine = _inference.Engine(
        net, _inference.HEADS["log10_d"], dev, amp_dtype=resolve_precision(precision, dev)
    )
    rows = engine.batch_rows(pos.shape[1])
    x = torch.as_tensor(pos[:rows], dtype=torch.float32, device=dev)
    amp = dict(device_type=dev.type, dtype=engine.amp_dtype, enabled=engine.amp_dtype is not None)

    def run():
        with torch.inference_mode(), torch.autocast(**amp):
            net(x)

    return len(x) / best_time(run, repeats)


def end_to_end(model, tracks, dev, precision: str, repeats: int, compile_model) -> float:
    def run():
        predict_d(tracks, model=model, device=dev, precision=precision, compile_model=compile_model)

    return len(tracks) / best_time(run, repeats)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-tracks", type=int, default=2000, help="tracks, default model")
    ap.add_argument("--n-paper", type=int, default=None, help="tracks, paper config (default N/4)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile d runs")
    args = ap.parse_args()
    dev = resolve_device(args.device)
    rng = np.random.default_rng(0)
    n_max = args.n_tracks
    fixed = rng.standard_normal((n_max, 200, 2)).cumsum(1)
    lengths = np.round(10 ** rng.uniform(np.log10(20), 3, n_max)).astype(int)
    mixed = [rng.standard_normal((n, 2)).cumsum(0) for n in lengths]
    name = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; torch {torch.__version__}")
    print(
        f"{'model':8} {'precision':9} {'compile':7} {'N':>6} {'e2e 200 fr':>12} "
        f"{'e2e mixed':>12} {'forward':>12}   (tracks/s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        paper = Path(tmp) / "paper.pt"
        torch.manual_seed(0)
        save_checkpoint(paper, XResAttn(PAPER_D_CONFIG))
        n_paper = args.n_paper or max(1, n_max // 4)
        for label, model, n in (("default", "default", n_max), ("paper", str(paper), n_paper)):
            for precision in args.precisions:
                for comp in [False, True] if args.compile else [False]:
                    e2e = end_to_end(model, fixed[:n], dev, precision, args.repeats, comp)
                    mix = end_to_end(model, mixed[:n], dev, precision, args.repeats, comp)
                    fwd = forward_only(model, fixed, dev, precision, args.repeats)
                    print(
                        f"{label:8} {precision:9} {comp!s:7} {n:6d} {e2e:12.0f} {mix:12.0f} "
                        f"{fwd:12.0f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
