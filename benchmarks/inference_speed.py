"""predict_d throughput (tracks/s) on 2-D 200-frame tracks: default model vs paper configuration.

Both run in the same process on the same tracks and device; the paper configuration (8 M
parameters) uses random weights, which cost the same time as trained ones. Target: default at
least 5x the paper configuration's throughput. Prints the device used.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from napari_step import predict_d
from napari_step.model import PAPER_D_CONFIG, XResAttn, save_checkpoint
from napari_step.predict import resolve_device
from napari_step.simulate import brownian_changepoints


def rate(model, pos, device, repeats):
    predict_d(pos[:32], model=model, device=device)  # warm-up and model load
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        predict_d(pos, model=model, device=device)
        best = min(best, time.perf_counter() - t)
    return len(pos) / best


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n-tracks", type=int, default=1000)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    dev = resolve_device(args.device)
    pos = brownian_changepoints(args.n_tracks, 200, 2, (1, 4), rng=np.random.default_rng(0)).positions
    with tempfile.TemporaryDirectory() as tmp:
        paper = Path(tmp) / "paper.pt"
        torch.manual_seed(0)
        save_checkpoint(paper, XResAttn(PAPER_D_CONFIG))
        r_default = rate("default", pos, dev, args.repeats)
        r_paper = rate(str(paper), pos, dev, args.repeats)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; {args.n_tracks} tracks x 200 frames")
    print(f"default model : {r_default:10.1f} tracks/s")
    print(f"paper config  : {r_paper:10.1f} tracks/s")
    print(f"ratio         : {r_default / r_paper:10.1f}x  (target >= 5x)")


if __name__ == "__main__":
    main()
