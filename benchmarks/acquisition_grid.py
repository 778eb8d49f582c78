"""STEP under motion blur and localisation noise: the acquisition grid of issue 13.

Seeded 2-D Brownian tracks of 200 frames with one change point (minimum segment 10 frames), D per
segment log-uniform in 1e-3..1e3 px^2/frame, forward labels. Each cell of the grid records the same
paths through a camera (napari_step.simulate.brownian_acquired, exact blur): exposure fraction f in
{0, 0.5, 1} of the frame interval (blur coefficient R = f/6) and localisation noise with
sigma^2 / (D_min dt) in {0, 0.3, 1, 3} (D_min the slower segment's D).

Metric: mean over every frame of |D_pred / D_true - 1|. Methods:

* STEP: ``predict_d`` with the given model (no acquisition parameter given to it);
* CVE on the true segments (the oracle, knows the segments but not f or sigma): per segment
  D = (<dx^2> + 2 <dx_n dx_n+1>) / 2 per axis, averaged over axes; a negative estimate is clipped
  to 1e-12 of the segment's mean squared step (relative error 1);
* MLE on the true segments (mean squared step / 2 dim): what a blur- and noise-unaware per-segment
  estimator reads.

Target: STEP within 1.3x of the oracle in every cell.

Usage: ``python benchmarks/acquisition_grid.py [--model PATH] [--n-tracks 300]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from napari_step.predict import predict_d
from napari_step.simulate import brownian_acquired, brownian_changepoints

EXPOSURES = (0.0, 0.5, 1.0)
SNRS = (0.0, 0.3, 1.0, 3.0)


def segment_bounds(cps, n_frames: int) -> list[tuple[int, int]]:
    """[(a, b), ...]: segment frames a..b-1 (forward convention: their motion a -> b)."""
    b = np.concatenate([[0], np.asarray(cps, int), [n_frames]])
    return list(zip(b[:-1], b[1:]))


def per_segment(pos: np.ndarray, bounds, estimator, blurred: bool) -> np.ndarray:
    """Per-frame D (T,) from one estimate per true segment; segment [a, b) owns the
    displacements a -> a+1 .. b-1 -> b (the last segment stops at the last frame). Under blur the
    displacement b-1 -> b also carries the next segment's motion (frame b's exposure): the oracle,
    knowing the segments, leaves it out."""
    n = len(pos)
    dx = np.diff(pos, axis=0)
    out = np.empty(n)
    for a, b in bounds:
        stop = n - 1 if b == n else b - int(blurred)
        out[a:b] = estimator(dx[a:stop])
    return out


def cve(dx: np.ndarray) -> float:
    """Covariance-based estimator (Vestergaard et al. 2014), unbiased under blur and noise."""
    msd = (dx**2).mean()
    cov = (dx[1:] * dx[:-1]).mean() if len(dx) > 1 else 0.0
    return float(max((msd + 2 * cov) / 2, 1e-12 * msd))


def mle(dx: np.ndarray) -> float:
    """Mean squared step per axis / 2: blind to blur and noise."""
    return float((dx**2).mean() / 2)


def rel_err(pred, true, mask=None) -> float:
    """Mean over frames (those of ``mask`` if given) of |pred / true - 1|."""
    r = np.abs(np.asarray(pred) / true - 1)
    return float(r.mean() if mask is None else r[mask].mean())


def run(n_tracks: int = 300, model="default", seed: int = 2026) -> dict:
    """{(exposure, snr): {"step", "cve", "mle"}} mean relative errors."""
    rng = np.random.default_rng(seed)
    sim = brownian_changepoints(n_tracks, 200, 2, 1, 10, (1e-3, 1e3), rng=rng)
    bounds = [segment_bounds(c, 200) for c in sim.changepoints]
    d_min = sim.d.min(axis=1)
    cp = np.array([c[0] for c in sim.changepoints])[:, None]
    away = np.abs(np.arange(200)[None, :] - cp) >= 3  # frames 3+ from the change point
    out = {}
    for f in EXPOSURES:
        for snr in SNRS:
            cell_rng = np.random.default_rng([seed, int(f * 10), int(snr * 10)])
            pos = brownian_acquired(sim.d, 2, f, np.sqrt(snr * d_min), rng=cell_rng)
            step = np.stack(predict_d(pos, model=model))
            oracle = np.stack([per_segment(p, b, cve, f > 0) for p, b in zip(pos, bounds)])
            naive = np.stack([per_segment(p, b, mle, f > 0) for p, b in zip(pos, bounds)])
            out[(f, snr)] = {
                "step": rel_err(step, sim.d),
                "cve": rel_err(oracle, sim.d),
                "mle": rel_err(naive, sim.d),
                "step_away": rel_err(step, sim.d, away),
            }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", help="built-in name or checkpoint path")
    ap.add_argument("--n-tracks", type=int, default=300)
    args = ap.parse_args()
    t0 = time.time()
    res = run(args.n_tracks, args.model)
    print(f"{args.n_tracks} 2-D tracks x 200 frames, one change point, model {args.model}")
    print(
        f"{'f':>4} {'s2/Ddt':>7} | {'STEP':>6} | {'CVE true seg':>12} | {'MLE true seg':>12} | "
        f"STEP/CVE | STEP 3+ frames from the change point"
    )
    worst = 0.0
    for (f, snr), r in res.items():
        ratio = r["step"] / r["cve"]
        worst = max(worst, ratio)
        print(
            f"{f:4.1f} {snr:7.1f} | {r['step']:6.3f} | {r['cve']:12.3f} | {r['mle']:12.3f} | "
            f"{ratio:8.2f}{'' if ratio <= 1.3 else '*'} | {r['step_away']:6.3f}"
        )
    print(
        f"worst STEP/CVE ratio {worst:.2f} (target <= 1.3; * above it)  [{time.time() - t0:.0f} s]"
    )


if __name__ == "__main__":
    main()
