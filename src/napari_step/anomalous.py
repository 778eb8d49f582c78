"""Anomalous diffusion seen through a Brownian D(t): the seed tutorial's SBM analysis.

For scaled Brownian motion D(t) ~ t^(alpha-1). A model trained only on Brownian motion with
change points, applied frame by frame, recovers that power law; so does a sliding TA-MSD. The
slope of log mean D(t) against log t measures alpha - 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .predict import predict_d
from .simulate import scaled_brownian
from .tamsd import tamsd_d

__all__ = ["SBMResult", "loglog_slope", "sbm_analysis", "plot_sbm"]


def loglog_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log t over the finite, positive points."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0) & (t > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(t[ok]), np.log(y[ok]), 1)[0])


@dataclass
class SBMResult:
    alphas: list
    frames: np.ndarray
    mean_step: dict  # alpha -> mean STEP D(t) over tracks, normalised to its first valid value
    mean_tamsd: dict
    slopes: pd.DataFrame  # alpha, expected, step_slope, tamsd_slope


def sbm_analysis(alphas=(0.1, 0.5), n_tracks=3000, n_frames=200, fit_frames=(20, 90),
                 window=20, model="default", device=None, seed=0, progress=None) -> SBMResult:
    """Simulate SBM per alpha, predict D(t) (STEP and sliding TA-MSD), fit the log-log slopes."""
    rng = np.random.default_rng(seed)
    frames = np.arange(n_frames)
    mean_step, mean_tamsd, rows = {}, {}, []
    fit = (frames >= fit_frames[0]) & (frames <= fit_frames[1])
    for alpha in alphas:
        pos, _ = scaled_brownian(n_tracks, n_frames, alpha, 2, rng=rng)
        d_step = np.stack(predict_d(pos, model=model, device=device, progress=progress))
        d_tamsd = np.stack(tamsd_d(pos, window=window))
        m_step = d_step.mean(0)
        valid = d_tamsd > 0  # edge frames have no full window; noisy fits can be <= 0
        with np.errstate(invalid="ignore", divide="ignore"):
            m_tamsd = np.where(valid, d_tamsd, 0).sum(0) / valid.sum(0)
        mean_step[alpha] = m_step / m_step[1]
        first = np.flatnonzero(np.isfinite(m_tamsd))[0]
        mean_tamsd[alpha] = m_tamsd / m_tamsd[first]
        rows.append({
            "alpha": alpha,
            "expected_slope": alpha - 1,
            "step_slope": loglog_slope(frames[fit], m_step[fit]),
            "tamsd_slope": loglog_slope(frames[fit], m_tamsd[fit]),
        })
    return SBMResult(list(alphas), frames, mean_step, mean_tamsd, pd.DataFrame(rows))


def plot_sbm(result: SBMResult, path):
    """The tutorial's figure: normalised mean D(t), log-log, with t^(alpha-1) guides."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.add_subplot()
    t = result.frames
    for i, a in enumerate(result.alphas):
        ax.loglog(t[1:], result.mean_step[a][1:], color=f"C{i}", label=f"STEP, alpha={a}")
        ax.loglog(t[1:], result.mean_tamsd[a][1:], color=f"C{i}", ls=":", label=f"TA-MSD, alpha={a}")
        ax.loglog(t[1:], (t[1:] / 1.0) ** (a - 1), color="k", lw=0.8, ls="--")
    ax.set_xlabel("frame t")
    ax.set_ylabel("normalised mean D(t)")
    ax.set_title("SBM: D(t) ~ t^(alpha-1) (dashed)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    return path
