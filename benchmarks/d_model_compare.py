"""Compare D checkpoints on the figures a new D model must not lose (and the ones it should win).

For each model (built-in name or checkpoint path), in one process on the same data:

* clean: the validation protocol of the shipped model (1000 noise-free 2-D tracks, 200 frames,
  1-4 change points, seed 12345): mean |D_pred / D_true - 1| per frame; and the same with
  localisation noise sigma = sqrt(2 D_min) (``noise_rel`` 1, the accuracy benchmark's r = 1);
* acquired: 200 constant-D Brownian tracks of 200 frames per (exposure fraction, sigma^2 / D dt)
  cell, the quality test's cells: median over tracks of the per-track median D / true D;
* real movie: trackpy's bulk-water clip, the real-movie benchmark's gap-free tracks (cached in
  ``--movie-cache`` after the first run): median of per-track median D over the ensemble-MSD
  slope D (lags 1..10), and second half / first half.

Usage: ``python benchmarks/d_model_compare.py default runs/ft.pt [--threads 1]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from napari_step.predict import predict_d
from napari_step.simulate import brownian_acquired
from napari_step.train_data import validation_set

HERE = Path(__file__).resolve().parent
CELLS = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.3), (1.0, 1.0), (0.0, 0.0)]


def clean_errors(model) -> dict:
    out = {}
    for name, rel in (("clean", 0.0), ("noise_r1", 1.0)):
        pos, d = validation_set(1000, 200, 2, noise_rel=rel)
        pred = np.stack(predict_d(pos, model=model))
        out[name] = float(np.abs(pred / d - 1).mean())
    return out


def acquired_ratios(model, d_true: float = 0.5) -> dict:
    out = {}
    for f, snr in CELLS:
        rng = np.random.default_rng(13)
        pos = brownian_acquired(np.full((200, 200), d_true), 2, f, np.sqrt(snr * d_true), rng=rng)
        pred = predict_d(pos, model=model)
        out[f"f={f:g},snr={snr:g}"] = float(np.median([np.median(p) for p in pred]) / d_true)
    return out


def movie_tracks(cache: Path) -> tuple[list[np.ndarray], float]:
    """Gap-free positions (px) of the real-movie benchmark and its ensemble-MSD D (um^2/s)."""
    sys.path.insert(0, str(HERE))
    import real_movie as rm

    if cache.exists():
        traj = pd.read_parquet(cache)
    else:
        traj = rm.gap_free_tracks(rm.read_movie(rm.MOVIE, 300))
        traj.to_parquet(cache)
    return rm.positions_of(traj), rm.ensemble_msd_d(traj), rm.PIXEL_SIZE**2 * rm.FPS


def movie_ratio(model, pos, d_emsd, to_um2_s) -> dict:
    meds, halves = [], []
    for d in predict_d(pos, model=model):
        h = len(d) // 2
        meds.append(np.median(d))
        halves.append(np.median(d[h:]) / np.median(d[:h]))
    return {
        "movie_ratio": float(np.median(meds) * to_um2_s / d_emsd),
        "movie_flat": float(np.median(halves)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--movie-cache", type=Path, default=Path("runs/bulk_water_tracks.parquet"))
    ap.add_argument("--no-movie", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    movie = None
    if not a.no_movie:
        a.movie_cache.parent.mkdir(parents=True, exist_ok=True)
        movie = movie_tracks(a.movie_cache)
        print(f"real movie: {len(movie[0])} tracks, ensemble-MSD D {movie[1]:.3f} um^2/s")
    for m in a.models:
        row = {**clean_errors(m), **acquired_ratios(m)}
        if movie is not None:
            row.update(movie_ratio(m, *movie))
        print(m + ": " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)


if __name__ == "__main__":
    main()
