"""Anomalous diffusion with STEP: the seed tutorials' SBM and ATTM analyses.

* SBM (:func:`sbm_analysis`): for scaled Brownian motion D(t) ~ t^(alpha-1). A model trained only
  on Brownian motion with change points, applied frame by frame, recovers that power law; so does
  a sliding TA-MSD. The slope of log mean D(t) against log t measures alpha - 1.
* ATTM (:func:`attm_analysis`): annealed transit time motion is Brownian motion whose D jumps at
  random times with heavy-tailed waiting times. STEP's D(t) is compared with the true D(t) and
  with a sliding TA-MSD, track by track, in distribution, and through the waiting times between
  the jumps found in the STEP output.

The per-frame alpha model lives in the inference core (:func:`napari_step.predict.predict_alpha`,
re-exported here for existing code).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .predict import predict_alpha, predict_d
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
]


def loglog_slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of log y against log t.

    Parameters
    ----------
    t, y : array_like
        Abscissa (> 0) and values; points with non-finite or non-positive y are ignored.

    Returns
    -------
    float
        The slope, NaN with fewer than two usable points.
    """
    t, y = np.asarray(t, float), np.asarray(y, float)
    ok = np.isfinite(y) & (y > 0) & (t > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(t[ok]), np.log(y[ok]), 1)[0])


@dataclass
class SBMResult:
    """Output of :func:`sbm_analysis` (frames; D normalised, dimensionless)."""

    alphas: list
    frames: np.ndarray
    mean_step: dict  # alpha -> mean STEP D(t) over tracks, normalised to its first valid value
    mean_tamsd: dict
    slopes: pd.DataFrame  # alpha, expected, step_slope, tamsd_slope


def sbm_analysis(
    alphas: tuple = (0.1, 0.5),
    n_tracks: int = 3000,
    n_frames: int = 200,
    fit_frames: tuple[int, int] = (20, 90),
    window: int = 20,
    model="default",
    device=None,
    seed: int = 0,
    progress=None,
) -> SBMResult:
    """Scaled Brownian motion: STEP's and a sliding TA-MSD's mean D(t) against t^(alpha-1).

    Parameters
    ----------
    alphas : tuple of float
        Anomalous exponents simulated (2-D SBM, :func:`napari_step.simulate.scaled_brownian`).
    n_tracks, n_frames : int
        Tracks per alpha and frames per track.
    fit_frames : (int, int)
        Inclusive frame range of the log-log fits.
    window : int
        Sliding TA-MSD window, frames.
    model, device, progress
        As for :func:`napari_step.predict.predict_d`.
    seed : int
        Random seed.

    Returns
    -------
    SBMResult
        Normalised mean D(t) of STEP and TA-MSD per alpha and the fitted slopes (expected
        alpha - 1).
    """
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
        rows.append(
            {
                "alpha": alpha,
                "expected_slope": alpha - 1,
                "step_slope": loglog_slope(frames[fit], m_step[fit]),
                "tamsd_slope": loglog_slope(frames[fit], m_tamsd[fit]),
            }
        )
    return SBMResult(list(alphas), frames, mean_step, mean_tamsd, pd.DataFrame(rows))


def plot_sbm(result: SBMResult, path):
    """The tutorial's figure: normalised mean D(t), log-log, with t^(alpha-1) guides.

    Parameters
    ----------
    result : SBMResult
    path : str or Path
        Image file to write (format from the suffix).

    Returns
    -------
    str or Path
        ``path``.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4.5), dpi=120)
    ax = fig.add_subplot()
    t = result.frames
    for i, a in enumerate(result.alphas):
        ax.loglog(t[1:], result.mean_step[a][1:], color=f"C{i}", label=f"STEP, alpha={a}")
        ax.loglog(
            t[1:], result.mean_tamsd[a][1:], color=f"C{i}", ls=":", label=f"TA-MSD, alpha={a}"
        )
        ax.loglog(t[1:], (t[1:] / 1.0) ** (a - 1), color="k", lw=0.8, ls="--")
    ax.set_xlabel("frame t")
    ax.set_ylabel("normalised mean D(t)")
    ax.set_title("SBM: D(t) ~ t^(alpha-1) (dashed)")
    ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    return path


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


def _attm_errors(d_step: np.ndarray, d_true: np.ndarray, d_tamsd: np.ndarray) -> dict:
    """Per-frame log10 D and errors of STEP and TA-MSD against the truth (N, T) each."""
    with np.errstate(divide="ignore", invalid="ignore"):
        log_true = np.log10(d_true)
        log_step = np.log10(d_step)
        tamsd_ok = np.isfinite(d_tamsd) & (d_tamsd > 0)
        log_tamsd = np.where(tamsd_ok, np.log10(np.where(tamsd_ok, d_tamsd, 1.0)), np.nan)
        rel_step = np.abs(d_step / d_true - 1)
        rel_tamsd = np.where(tamsd_ok, np.abs(d_tamsd / d_true - 1), np.nan)
    return {
        "log_true": log_true,
        "log_step": log_step,
        "log_tamsd": log_tamsd,
        "tamsd_ok": tamsd_ok,
        "rel_step": rel_step,
        "rel_tamsd": rel_tamsd,
        "log_err_step": np.abs(log_step - log_true),
        "log_err_tamsd": np.abs(log_tamsd - log_true),
    }


def _attm_jumps(
    err: dict, pos: np.ndarray, true_jumps, tolerance: int, long_episode: int, clear_decades: float
) -> tuple[list, dict]:
    """Change points found in the STEP output per track and the recall/precision counts."""
    from .segment import find_changepoints

    n_frames = pos.shape[1]
    log_true = err["log_true"]
    detected = []
    counts = dict.fromkeys(
        ["true", "match_true", "det", "match_det", "long", "long_found", "clear", "clear_found"], 0
    )
    for i, track in enumerate(pos):
        cps = find_changepoints(err["log_step"][i], positions=track)
        detected.append(cps)
        tj = np.asarray(true_jumps[i], dtype=int)
        found = _match(tj, cps, tolerance)
        bounds = np.diff(np.concatenate([[0], tj, [n_frames]]))
        long = (bounds[:-1] >= long_episode) & (bounds[1:] >= long_episode)
        clear = long & (np.abs(log_true[i, tj] - log_true[i, tj - 1]) >= clear_decades)
        for key, value in (
            ("true", tj.size),
            ("match_true", found.sum()),
            ("det", cps.size),
            ("match_det", _match(cps, tj, tolerance).sum()),
            ("long", long.sum()),
            ("long_found", found[long].sum()),
            ("clear", clear.sum()),
            ("clear_found", found[clear].sum()),
        ):
            counts[key] += int(value)
    return detected, counts


def _attm_per_track(err: dict, true_jumps, detected) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN TA-MSD rows
        return pd.DataFrame(
            {
                "track": np.arange(len(detected)),
                "n_true_jumps": [len(j) for j in true_jumps],
                "n_detected_jumps": [c.size for c in detected],
                "step_rel_err": np.mean(err["rel_step"], axis=1),
                "tamsd_rel_err": np.nanmean(err["rel_tamsd"], axis=1),
                "step_log10_err": np.mean(err["log_err_step"], axis=1),
                "tamsd_log10_err": np.nanmean(err["log_err_tamsd"], axis=1),
            }
        )


def _frac(a: float, b: float) -> float:
    return float(a / b) if b else float("nan")


def _attm_summary(
    err: dict, counts: dict, waits_true: np.ndarray, waits_step: np.ndarray, n_tracks: int
) -> dict:
    from scipy.stats import ks_2samp, wasserstein_distance

    log_true, log_step, log_tamsd = err["log_true"], err["log_step"], err["log_tamsd"]
    fin_true, fin_step = np.isfinite(log_true), np.isfinite(log_step)
    ks = (
        float(ks_2samp(waits_true, waits_step).statistic)
        if waits_true.size and waits_step.size
        else float("nan")
    )
    return {
        "step_mean_rel_err": float(np.mean(err["rel_step"])),
        "step_median_rel_err": float(np.median(err["rel_step"])),
        "tamsd_mean_rel_err": float(np.nanmean(err["rel_tamsd"])),
        "tamsd_median_rel_err": float(np.nanmedian(err["rel_tamsd"])),
        "step_mean_log10_err": float(np.mean(err["log_err_step"])),
        "step_median_log10_err": float(np.median(err["log_err_step"])),
        "tamsd_mean_log10_err": float(np.nanmean(err["log_err_tamsd"])),
        "tamsd_median_log10_err": float(np.nanmedian(err["log_err_tamsd"])),
        "tamsd_valid_fraction": float(err["tamsd_ok"].mean()),
        "true_median_log10_d": float(np.median(log_true[fin_true])),
        "step_median_log10_d": float(np.median(log_step[fin_step])),
        "tamsd_median_log10_d": float(np.nanmedian(log_tamsd)),
        "step_log10_d_wasserstein": float(
            wasserstein_distance(log_true[fin_true], log_step[fin_step])
        ),
        "tamsd_log10_d_wasserstein": float(
            wasserstein_distance(log_true[fin_true], log_tamsd[np.isfinite(log_tamsd)])
        ),
        "true_jumps_per_track": _frac(counts["true"], n_tracks),
        "detected_jumps_per_track": _frac(counts["det"], n_tracks),
        "jump_recall": _frac(counts["match_true"], counts["true"]),
        "jump_precision": _frac(counts["match_det"], counts["det"]),
        "jump_recall_long_episodes": _frac(counts["long_found"], counts["long"]),
        "jump_recall_clear": _frac(counts["clear_found"], counts["clear"]),
        "true_median_wait": float(np.median(waits_true)) if waits_true.size else float("nan"),
        "detected_median_wait": float(np.median(waits_step)) if waits_step.size else float("nan"),
        "wait_ks_distance": ks,
    }


def _attm_examples(true_jumps, n_examples: int) -> list[int]:
    """Tracks with 2-6 jumps first, then any, for the figure."""
    n_tracks = len(true_jumps)
    n_j = np.array([len(j) for j in true_jumps])
    examples = [int(i) for i in np.flatnonzero((n_j >= 2) & (n_j <= 6))[:n_examples]]
    if len(examples) < min(n_examples, n_tracks):
        examples += [i for i in range(n_tracks) if i not in examples][: n_examples - len(examples)]
    return examples


def attm_analysis(
    n_tracks: int = 1000,
    n_frames: int = 200,
    sigma: float = 0.5,
    gamma: float = 1.0,
    d_max: float = 1.0,
    window: int = 20,
    model="default",
    device=None,
    seed: int = 0,
    tolerance: int = 3,
    long_episode: int = 10,
    clear_decades: float = 0.5,
    n_examples: int = 3,
    progress=None,
) -> ATTMResult:
    """STEP on annealed transit time motion, against the truth and a sliding TA-MSD.

    Parameters
    ----------
    n_tracks, n_frames : int
        Simulated 2-D tracks (:func:`napari_step.simulate.attm`) and their length (frames).
    sigma, gamma, d_max : float
        ATTM parameters; D up to ``d_max`` px^2/frame; alpha = sigma/gamma for sigma < gamma.
    window : int
        Sliding TA-MSD window (frames).
    model, device, progress
        As for :func:`napari_step.predict.predict_d`.
    seed : int
        Random seed of the simulation.
    tolerance : int
        Frames within which a detected jump matches a true one.
    long_episode : int
        Frames an episode must last on both sides of a jump to count in
        ``jump_recall_long_episodes``; ``clear_decades``: the change of log10 D a long-episode
        jump must also have to count in ``jump_recall_clear``.
    n_examples : int
        Tracks shown by :func:`plot_attm`.

    Returns
    -------
    ATTMResult
        ``summary``: pointwise relative error |D/D_true - 1| and |log10 D/D_true| of STEP and
        TA-MSD (mean and median over frames; TA-MSD where it is defined and positive,
        ``tamsd_valid_fraction``); 1-Wasserstein distance (decades) between the recovered and
        true distributions of log10 D; jumps found by :func:`napari_step.segment.find_changepoints`
        (hybrid detector) against the simulated ones (recall, precision); waiting times between
        consecutive jumps (medians, Kolmogorov-Smirnov distance). ``per_track``: the same errors
        per track. The default size runs in about a minute on a 2-core CPU.
    """
    params = {k: v for k, v in locals().items() if k not in ("device", "progress", "n_examples")}
    params["model"] = str(model)
    from .simulate import attm

    rng = np.random.default_rng(seed)
    pos, d_true, true_jumps = attm(n_tracks, n_frames, sigma, gamma, 2, d_max, rng=rng)
    d_step = np.stack(predict_d(pos, model=model, device=device, progress=progress))
    d_tamsd = np.stack(tamsd_d(pos, window=window))
    err = _attm_errors(d_step, d_true, d_tamsd)
    detected, counts = _attm_jumps(err, pos, true_jumps, tolerance, long_episode, clear_decades)
    waits_true = np.concatenate([np.diff(np.asarray(j, int)) for j in true_jumps] or [[]])
    waits_step = np.concatenate([np.diff(c) for c in detected] or [[]])
    summary = {k: params[k] for k in ("n_tracks", "n_frames", "sigma", "gamma")}
    summary["alpha_expected"] = sigma / gamma if sigma < gamma else 1.0
    summary.update(_attm_summary(err, counts, waits_true, waits_step, n_tracks))
    table = pd.DataFrame({"metric": list(summary), "value": [float(v) for v in summary.values()]})
    per_track = _attm_per_track(err, true_jumps, detected)
    waits = (waits_true.astype(int), waits_step.astype(int))
    arrays = (pos, d_true, d_step, d_tamsd, list(true_jumps), detected, *waits)
    return ATTMResult(params, *arrays, per_track, table, _attm_examples(true_jumps, n_examples))


def plot_attm(result: ATTMResult, path):
    """Figure of an ATTM analysis.

    Example tracks' D(t) (STEP, TA-MSD, truth, detected jumps); distributions of log10 D; waiting
    times between jumps (true and detected); per-track log10 errors.

    Parameters
    ----------
    result : ATTMResult
    path : str or Path
        As for :func:`plot_sbm`.

    Returns
    -------
    str or Path
        ``path``, once the figure is written.
    """
    from matplotlib.figure import Figure

    n_top = max(1, len(result.examples))
    fig = Figure(figsize=(4.0 * max(3, n_top), 7.5), dpi=110)
    gs = fig.add_gridspec(2, max(3, n_top))
    _plot_attm_examples(fig, gs, result)
    _plot_attm_distributions(fig.add_subplot(gs[1, 0]), result)
    _plot_attm_waits(fig.add_subplot(gs[1, 1]), result)
    _plot_attm_errors(fig.add_subplot(gs[1, 2]), result)
    p = result.params
    fig.suptitle(
        f"ATTM, sigma={p['sigma']}, gamma={p['gamma']}: {p['n_tracks']} tracks of "
        f"{p['n_frames']} frames",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path)
    return path


def _plot_attm_examples(fig, gs, result: ATTMResult) -> None:
    t = np.arange(result.d_true.shape[1])
    for k, i in enumerate(result.examples):
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


def _plot_attm_distributions(ax, result: ATTMResult) -> None:
    with np.errstate(divide="ignore", invalid="ignore"):
        lt = np.log10(result.d_true)
        ls = np.log10(result.d_step)
        lm = np.log10(np.where(result.d_tamsd > 0, result.d_tamsd, np.nan))
    fin = [v[np.isfinite(v)] for v in (lt, ls, lm)]
    lo = np.percentile(np.concatenate(fin), 0.5)
    hi = np.percentile(np.concatenate(fin), 99.5)
    bins = np.linspace(lo, hi, 50)
    for v, lab, col in zip(fin, ["true", "STEP", "TA-MSD"], ["k", "C0", "C1"]):
        ax.hist(np.clip(v, lo, hi), bins=bins, density=True, histtype="step", color=col, label=lab)
    ax.set_xlabel("log10 D per frame")
    ax.set_ylabel("density")
    ax.set_title("distribution of D", fontsize=9)
    ax.legend(fontsize=7, frameon=False)


def _plot_attm_waits(ax, result: ATTMResult) -> None:
    n_frames = result.d_true.shape[1]
    wbins = np.unique(np.round(np.logspace(0, np.log10(n_frames), 25)).astype(int))
    waits = [(result.waits_true, "true jumps", "k"), (result.waits_step, "STEP jumps", "C0")]
    for w, lab, col in waits:
        if w.size:
            ax.hist(
                w, bins=wbins, density=True, histtype="step", color=col, label=f"{lab} (n={w.size})"
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("waiting time between jumps (frames)")
    ax.set_title("waiting times", fontsize=9)
    ax.legend(fontsize=7, frameon=False)


def _plot_attm_errors(ax, result: ATTMResult) -> None:
    pt = result.per_track
    errs = [pt.step_log10_err.dropna(), pt.tamsd_log10_err.dropna()]
    top = max(float(np.percentile(np.concatenate([e.to_numpy() for e in errs]), 99)), 1e-3)
    ebins = np.linspace(0, top, 40)
    for e, lab, col in zip(errs, ["STEP", "TA-MSD"], ["C0", "C1"]):
        label = f"{lab}: median {np.median(e):.3f}"
        ax.hist(np.clip(e, 0, top), bins=ebins, histtype="step", color=col, label=label)
    ax.set_xlabel("per-track mean |log10 D/D_true|")
    ax.set_title("pointwise error per track", fontsize=9)
    ax.legend(fontsize=7, frameon=False)
