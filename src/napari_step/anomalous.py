"""Anomalous diffusion with STEP: the seed tutorials' analyses and the per-frame alpha model.

* SBM (:func:`sbm_analysis`): for scaled Brownian motion D(t) ~ t^(alpha-1). A model trained only
  on Brownian motion with change points, applied frame by frame, recovers that power law; so does
  a sliding TA-MSD. The slope of log mean D(t) against log t measures alpha - 1.
* ATTM (:func:`attm_analysis`): annealed transit time motion is Brownian motion whose D jumps at
  random times with heavy-tailed waiting times. STEP's D(t) is compared with the true D(t) and
  with a sliding TA-MSD, track by track, in distribution, and through the waiting times between
  the jumps found in the STEP output.
* :func:`predict_alpha`: per-frame anomalous exponent from a STEP model trained with
  ``target="alpha"`` (``napari-step train --target alpha``) on the AnDi models of
  :mod:`napari_step.simulate.anomalous`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from .predict import predict_d, predict_per_frame
from .simulate import scaled_brownian
from .tamsd import tamsd_d

__all__ = [
    "SBMResult",
    "loglog_slope",
    "sbm_analysis",
    "plot_sbm",
    "ATTMResult",
    "attm_analysis",
    "plot_attm",
    "predict_alpha",
    "ALPHA_WEIGHTS",
]


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


# ------------------------------------------------------------------------------------------------
# per-frame alpha
# ------------------------------------------------------------------------------------------------

# Built-in alpha models by (name, dim); the files live in napari_step/weights/ when they ship.
ALPHA_WEIGHTS = {("default", 2): "step_alpha_2d.pt"}


def _alpha_model_path(model, dim: int) -> Path:
    from .model import CheckpointError
    from .predict import WEIGHTS_DIR

    p = Path(str(model))
    if p.suffix == ".pt" or p.exists():
        return p
    names = sorted({n for n, _ in ALPHA_WEIGHTS})
    if str(model) not in names:
        raise ValueError(
            f"unknown alpha model {model!r}: use one of {names} or a path to a .pt file"
        )
    fname = ALPHA_WEIGHTS.get((str(model), dim))
    if fname is None or not (WEIGHTS_DIR / fname).exists():
        raise CheckpointError(
            f"no built-in {dim}-D alpha model ships with this version of napari-step yet "
            f"(expected {WEIGHTS_DIR / (fname or f'step_alpha_{dim}d.pt')}); train one with "
            f"`napari-step train --target alpha --dim {dim} --out step_alpha.pt` and pass "
            f"model='step_alpha.pt'"
        )
    return WEIGHTS_DIR / fname


def _load_alpha_model(model, dim: int, dev):
    from .model import XResAttn
    from .predict import load_model

    source = model if isinstance(model, XResAttn) else _alpha_model_path(model, dim)
    net = load_model(source, dim, dev)
    if net.config.target != "alpha":
        raise ValueError(
            f"the model predicts {net.config.target!r}, not alpha: give an alpha model "
            f"(trained with `napari-step train --target alpha`)"
        )
    return net


def _predict_alpha_block(net, pos: np.ndarray, dev) -> np.ndarray:
    """alpha (B, T) for equal-length tracks; windows for long tracks; NaN for still tracks."""
    import torch

    from .predict import _windows

    n_frames, dim = pos.shape[1], pos.shape[2]
    res = np.empty(pos.shape[:2])
    for start, stop, keep_from, keep_to in _windows(n_frames):
        seg = pos[:, start:stop] - pos[:, start : start + 1]  # centred in float64
        ms = (np.diff(seg, axis=1) ** 2).sum(-1).mean(1) / dim
        moving = ms > 0
        vals = np.full(seg.shape[:2], np.nan)
        if moving.any():  # unit RMS per-axis step, as in training (alpha is scale-free)
            scaled = seg[moving] / np.sqrt(ms[moving])[:, None, None]
            x = torch.as_tensor(scaled, dtype=torch.float32, device=dev)
            vals[moving] = net(x).float().cpu().numpy()
        res[:, keep_from:keep_to] = vals[:, keep_from - start : keep_to - start]
    return res


def predict_alpha(tracks, model="default", device=None, batch_size=None, progress=None
                  ) -> list[np.ndarray]:
    """Per-frame anomalous-diffusion exponent alpha predicted by a STEP alpha model.

    ``tracks``: an (N, T, dim) array or a list of (T_i, dim) arrays of positions (any unit: alpha
    is scale-free), one row per frame, no gaps. ``model``: a checkpoint path of a model trained
    with ``target="alpha"`` or a built-in name ("default": the shipped 2-D model
    ``weights/step_alpha_2d.pt``; other dimensions have no built-in model and raise
    :class:`napari_step.model.CheckpointError`, a ValueError, that says how to train one). 3-D tracks with a 2-D model get the mean over the three planar
    projections. Tracks shorter than the model's minimum get NaN with a warning, tracks that never
    move get NaN; non-finite positions raise ``ValueError``. Batching, devices and progress work
    as in :func:`napari_step.predict.predict_d`.
    """
    return predict_per_frame(tracks, partial(_load_alpha_model, model), _predict_alpha_block,
                             "alpha", device, batch_size, progress)


# ------------------------------------------------------------------------------------------------
# ATTM
# ------------------------------------------------------------------------------------------------


@dataclass
class ATTMResult:
    """Output of :func:`attm_analysis` (D in px^2/frame, frames)."""

    params: dict
    positions: np.ndarray  # (N, T, 2)
    d_true: np.ndarray  # (N, T)
    d_step: np.ndarray  # (N, T)
    d_tamsd: np.ndarray  # (N, T), NaN where no full window fits
    true_jumps: list  # per track: frames where the simulated D jumps
    detected_jumps: list  # per track: change points found in the STEP output
    waits_true: np.ndarray  # frames between consecutive true jumps (complete episodes)
    waits_step: np.ndarray  # frames between consecutive detected jumps
    per_track: pd.DataFrame
    summary: pd.DataFrame  # metric, value
    examples: list = field(default_factory=list)  # track indices shown by plot_attm

    def summary_dict(self) -> dict:
        return dict(zip(self.summary.metric, self.summary.value))


def _match(a: np.ndarray, b: np.ndarray, tol: int) -> np.ndarray:
    """For each frame in a, whether some frame of b lies within tol frames."""
    if a.size == 0:
        return np.zeros(0, dtype=bool)
    if b.size == 0:
        return np.zeros(a.size, dtype=bool)
    return (np.abs(a[:, None] - b[None, :]) <= tol).any(axis=1)


def attm_analysis(n_tracks: int = 1000, n_frames: int = 200, sigma: float = 0.5,
                  gamma: float = 1.0, d_max: float = 1.0, window: int = 20, model="default",
                  device=None, seed: int = 0, tolerance: int = 3, long_episode: int = 10,
                  clear_decades: float = 0.5, n_examples: int = 3, progress=None) -> ATTMResult:
    """STEP on annealed transit time motion (:func:`napari_step.simulate.attm`), against the truth
    and a sliding TA-MSD (``window`` frames).

    Reports (``result.summary``): pointwise relative error |D/D_true - 1| and |log10 D/D_true| of
    STEP and TA-MSD (mean and median over frames; TA-MSD over the frames where it is defined and
    positive, ``tamsd_valid_fraction``); the distance between the recovered and the true
    distributions of log10 D (1-Wasserstein, decades); the jumps found in the STEP output by
    :func:`napari_step.segment.find_changepoints` (hybrid detector) against the simulated jumps
    (recall and precision within ``tolerance`` frames; recall of jumps between two episodes of
    at least ``long_episode`` frames, and of those where D also changes by at least
    ``clear_decades``, ``jump_recall_clear``) and the waiting times between consecutive jumps
    (medians, Kolmogorov-Smirnov distance). ``alpha_expected`` is sigma/gamma. ``result.per_track`` has the
    same errors per track. The default size runs in about a minute on a 2-core CPU.
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    from .segment import find_changepoints
    from .simulate import attm

    rng = np.random.default_rng(seed)
    pos, d_true, true_jumps = attm(n_tracks, n_frames, sigma, gamma, 2, d_max, rng=rng)
    d_step = np.stack(predict_d(pos, model=model, device=device, progress=progress))
    d_tamsd = np.stack(tamsd_d(pos, window=window))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_true = np.log10(d_true)
        log_step = np.log10(d_step)
        tamsd_ok = np.isfinite(d_tamsd) & (d_tamsd > 0)
        log_tamsd = np.where(tamsd_ok, np.log10(np.where(tamsd_ok, d_tamsd, 1.0)), np.nan)
        rel_step = np.abs(d_step / d_true - 1)
        rel_tamsd = np.where(tamsd_ok, np.abs(d_tamsd / d_true - 1), np.nan)
    log_err_step = np.abs(log_step - log_true)
    log_err_tamsd = np.abs(log_tamsd - log_true)

    detected, waits_true, waits_step = [], [], []
    rows = []
    n_match_true = n_true = n_match_det = n_det = 0
    n_long = n_long_found = n_clear = n_clear_found = 0
    for i in range(n_tracks):
        cps = find_changepoints(log_step[i], positions=pos[i])
        detected.append(cps)
        tj = np.asarray(true_jumps[i], dtype=int)
        waits_true.append(np.diff(tj))
        waits_step.append(np.diff(cps))
        found = _match(tj, cps, tolerance)
        n_true += tj.size
        n_match_true += int(found.sum())
        n_det += cps.size
        n_match_det += int(_match(cps, tj, tolerance).sum())
        bounds = np.concatenate([[0], tj, [n_frames]])
        long = (np.diff(bounds)[:-1] >= long_episode) & (np.diff(bounds)[1:] >= long_episode)
        n_long += int(long.sum())
        n_long_found += int(found[long].sum())
        clear = long & (np.abs(log_true[i, tj] - log_true[i, tj - 1]) >= clear_decades)
        n_clear += int(clear.sum())
        n_clear_found += int(found[clear].sum())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN TA-MSD rows
            rows.append({
                "track": i,
                "n_true_jumps": tj.size,
                "n_detected_jumps": cps.size,
                "step_rel_err": float(np.mean(rel_step[i])),
                "tamsd_rel_err": float(np.nanmean(rel_tamsd[i])),
                "step_log10_err": float(np.mean(log_err_step[i])),
                "tamsd_log10_err": float(np.nanmean(log_err_tamsd[i])),
            })
    per_track = pd.DataFrame(rows)
    waits_true = np.concatenate(waits_true) if waits_true else np.zeros(0, int)
    waits_step = np.concatenate(waits_step) if waits_step else np.zeros(0, int)

    fin_true = np.isfinite(log_true)
    fin_step = np.isfinite(log_step)

    def frac(a, b):
        return float(a / b) if b else float("nan")

    def ks(a, b):
        return float(ks_2samp(a, b).statistic) if a.size and b.size else float("nan")

    def median(a):
        return float(np.median(a)) if a.size else float("nan")

    summary = {
        "n_tracks": n_tracks,
        "n_frames": n_frames,
        "sigma": sigma,
        "gamma": gamma,
        "alpha_expected": sigma / gamma if sigma < gamma else 1.0,
        "step_mean_rel_err": float(np.mean(rel_step)),
        "step_median_rel_err": float(np.median(rel_step)),
        "tamsd_mean_rel_err": float(np.nanmean(rel_tamsd)),
        "tamsd_median_rel_err": float(np.nanmedian(rel_tamsd)),
        "step_mean_log10_err": float(np.mean(log_err_step)),
        "step_median_log10_err": float(np.median(log_err_step)),
        "tamsd_mean_log10_err": float(np.nanmean(log_err_tamsd)),
        "tamsd_median_log10_err": float(np.nanmedian(log_err_tamsd)),
        "tamsd_valid_fraction": float(tamsd_ok.mean()),
        "true_median_log10_d": float(np.median(log_true[fin_true])),
        "step_median_log10_d": float(np.median(log_step[fin_step])),
        "tamsd_median_log10_d": float(np.nanmedian(log_tamsd)),
        "step_log10_d_wasserstein": float(
            wasserstein_distance(log_true[fin_true], log_step[fin_step])
        ),
        "tamsd_log10_d_wasserstein": float(
            wasserstein_distance(log_true[fin_true], log_tamsd[np.isfinite(log_tamsd)])
        ),
        "true_jumps_per_track": frac(n_true, n_tracks),
        "detected_jumps_per_track": frac(n_det, n_tracks),
        "jump_recall": frac(n_match_true, n_true),
        "jump_precision": frac(n_match_det, n_det),
        "jump_recall_long_episodes": frac(n_long_found, n_long),
        "jump_recall_clear": frac(n_clear_found, n_clear),
        "true_median_wait": median(waits_true),
        "detected_median_wait": median(waits_step),
        "wait_ks_distance": ks(waits_true, waits_step),
    }
    table = pd.DataFrame({"metric": list(summary), "value": [float(v) for v in summary.values()]})
    n_j = np.array([len(j) for j in true_jumps])
    examples = [int(i) for i in np.flatnonzero((n_j >= 2) & (n_j <= 6))[:n_examples]]
    if len(examples) < min(n_examples, n_tracks):
        examples += [i for i in range(n_tracks) if i not in examples][: n_examples - len(examples)]
    params = {"n_tracks": n_tracks, "n_frames": n_frames, "sigma": sigma, "gamma": gamma,
              "d_max": d_max, "window": window, "model": str(model), "seed": seed,
              "tolerance": tolerance, "long_episode": long_episode,
              "clear_decades": clear_decades}
    return ATTMResult(params, pos, d_true, d_step, d_tamsd, list(true_jumps), detected,
                      waits_true, waits_step, per_track, table, examples)


def plot_attm(result: ATTMResult, path):
    """Figure: example tracks' D(t) (STEP, TA-MSD, truth, detected jumps); distributions of log10 D;
    waiting times between jumps (true and detected); per-track log10 errors."""
    from matplotlib.figure import Figure

    ex = result.examples
    n_top = max(1, len(ex))
    fig = Figure(figsize=(4.0 * max(3, n_top), 7.5), dpi=110)
    gs = fig.add_gridspec(2, max(3, n_top))
    t = np.arange(result.d_true.shape[1])
    for k, i in enumerate(ex):
        ax = fig.add_subplot(gs[0, k])
        ax.semilogy(t, result.d_true[i], color="k", lw=1.5, drawstyle="steps-mid", label="true")
        ax.semilogy(t, result.d_step[i], color="C0", lw=1, label="STEP")
        tm = np.where(result.d_tamsd[i] > 0, result.d_tamsd[i], np.nan)
        ax.semilogy(t, tm, color="C1", lw=1, ls=":", label="TA-MSD")
        for c in result.detected_jumps[i]:
            ax.axvline(c, color="C0", lw=0.6, ls="--", alpha=0.6)
        ax.set_title(f"track {i}", fontsize=9)
        ax.set_xlabel("frame")
        if k == 0:
            ax.set_ylabel("D (px$^2$/frame)")
            ax.legend(fontsize=7, frameon=False)
    with np.errstate(divide="ignore", invalid="ignore"):
        lt = np.log10(result.d_true)
        ls = np.log10(result.d_step)
        lm = np.log10(np.where(result.d_tamsd > 0, result.d_tamsd, np.nan))
    fin = [v[np.isfinite(v)] for v in (lt, ls, lm)]
    lo = np.percentile(np.concatenate(fin), 0.5)
    hi = np.percentile(np.concatenate(fin), 99.5)
    bins = np.linspace(lo, hi, 50)
    ax = fig.add_subplot(gs[1, 0])
    for v, lab, col in zip(fin, ["true", "STEP", "TA-MSD"], ["k", "C0", "C1"]):
        ax.hist(np.clip(v, lo, hi), bins=bins, density=True, histtype="step", color=col, label=lab)
    ax.set_xlabel("log10 D per frame")
    ax.set_ylabel("density")
    ax.set_title("distribution of D", fontsize=9)
    ax.legend(fontsize=7, frameon=False)

    ax = fig.add_subplot(gs[1, 1])
    n_frames = result.d_true.shape[1]
    wbins = np.unique(np.round(np.logspace(0, np.log10(n_frames), 25)).astype(int))
    waits = [(result.waits_true, "true jumps", "k"), (result.waits_step, "STEP jumps", "C0")]
    for w, lab, col in waits:
        if w.size:
            ax.hist(w, bins=wbins, density=True, histtype="step", color=col,
                    label=f"{lab} (n={w.size})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("waiting time between jumps (frames)")
    ax.set_title("waiting times", fontsize=9)
    ax.legend(fontsize=7, frameon=False)

    ax = fig.add_subplot(gs[1, 2])
    pt = result.per_track
    errs = [pt.step_log10_err.dropna(), pt.tamsd_log10_err.dropna()]
    top = max(float(np.percentile(np.concatenate([e.to_numpy() for e in errs]), 99)), 1e-3)
    ebins = np.linspace(0, top, 40)
    for e, lab, col in zip(errs, ["STEP", "TA-MSD"], ["C0", "C1"]):
        ax.hist(np.clip(e, 0, top), bins=ebins, histtype="step", color=col,
                label=f"{lab}: median {np.median(e):.3f}")
    ax.set_xlabel("per-track mean |log10 D/D_true|")
    ax.set_title("pointwise error per track", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
    p = result.params
    fig.suptitle(f"ATTM, sigma={p['sigma']}, gamma={p['gamma']}: {p['n_tracks']} tracks of "
                 f"{p['n_frames']} frames", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    return path
