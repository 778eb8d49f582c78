"""Anomalous-diffusion simulators with a per-frame ground-truth exponent alpha (AnDi-1 models).

The five models of the AnDi challenge (Muñoz-Gil et al., Nat. Commun. 2021), written here in
vectorised numpy (no andi-datasets dependency), each with ensemble MSD ~ t^alpha:

* ``attm`` (alpha in (0.05, 1)): annealed transit time motion, Brownian motion whose D jumps;
  slow episodes last long (:func:`attm`, gamma uniform in (1, 2) and sigma = alpha gamma per
  track).
* ``ctrw`` (alpha in (0.05, 1)): continuous-time random walk, Gaussian jumps after power-law
  waiting times psi(tau) ~ tau^-(1+alpha), tau >= 1 frame.
* ``fbm`` (alpha in (0.05, 1.95)): fractional Brownian motion, exact Gaussian increments with Hurst
  exponent H = alpha/2 (circulant embedding, Davies-Harte).
* ``lw`` (alpha in (1.05, 2)): Lévy walk, constant-speed flights of power-law durations
  psi(tau) ~ tau^-(1+sigma), tau >= 1 frame, sigma = 3 - alpha.
* ``sbm`` (alpha in (0.05, 2)): scaled Brownian motion, D(t) ~ t^(alpha-1)
  (:func:`napari_step.simulate.scaled_brownian`).

The ranges are those :func:`anomalous_changepoints` draws from (``ALPHA_RANGES``). CTRW, ATTM
and Lévy-walk ensemble MSD exponents approach alpha only at long times (finite-time corrections
of about 0.1-0.2 over 200 frames); FBM and SBM are exact at all times.

:func:`napari_step.simulate.anomalous_changepoints` (:mod:`.andi1_changepoints`) stitches
segments of these models into tracks whose model and alpha change at random change points.

Units and scales: each model is simulated at its natural unit scale (FBM: per-axis MSD t^alpha;
CTRW: unit per-axis jump std; Lévy walk: speed sqrt(dim) px/frame; ATTM: D <= 0.5 px^2/frame; SBM:
mean per-axis step variance 1 over the segment), so every model has O(1) steps; alpha is
scale-free.
"""

from __future__ import annotations

import numpy as np

from ._common import (
    RngLike,
    as_rng,
    check_dim,
    repeat_last,
)
from ._increments import fgn as _fgn
from ._increments import unit_vectors as _unit_vectors
from .brownian import integrate_d, scaled_brownian

__all__ = [
    "MODELS",
    "ALPHA_RANGES",
    "simulate_model",
    "attm",
    "fbm",
    "ctrw",
    "levy_walk",
]


def attm(
    n_tracks: int,
    n_frames: int = 200,
    sigma: float = 0.5,
    gamma: float = 1.0,
    dim: int = 2,
    d_max: float = 1.0,
    rng: RngLike = None,
) -> tuple[np.ndarray, np.ndarray, list]:
    """Annealed transit time model: Brownian motion whose D jumps at random times.

    Each episode draws D with density ~ D^(sigma-1) on (0, d_max] and lasts
    tau = ceil((D/d_max)^(-gamma)) frames, so slow episodes last long (anomalous exponent
    sigma/gamma when sigma < gamma).

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    sigma, gamma : float
        Exponents of the D density and of the episode duration.
    dim : int
        Spatial dimension, 1, 2 or 3.
    d_max : float
        Largest D, px^2/frame.
    rng : numpy.random.Generator, int or None
        Random generator or seed; None draws a fresh one.

    Returns
    -------
    positions : ndarray, shape (N, T, dim)
        Positions in px, starting at the origin.
    d : ndarray, shape (N, T)
        Per-frame D in px^2/frame (forward convention).
    jumps : list of ndarray
        Per track, the first frames of every episode but the first.
    """
    rng = as_rng(rng)
    check_dim(dim)
    n_steps = max(n_frames - 1, 1)
    d = np.empty((n_tracks, n_steps))
    filled = np.zeros(n_tracks, dtype=int)
    jumps: list = [[] for _ in range(n_tracks)]
    while (filled < n_steps).any():
        active = np.flatnonzero(filled < n_steps)
        u = rng.uniform(size=active.size)
        u = np.where(u <= 0, 1e-12, u)
        dval = d_max * u ** (1.0 / sigma)
        tau = np.minimum(np.ceil((dval / d_max) ** (-gamma)), n_steps).astype(int)
        for i, start, length, dv in zip(active, filled[active], tau, dval):
            d[i, start : start + length] = dv
            if start > 0:
                jumps[i].append(start)
        filled[active] += tau
    d = repeat_last(np.concatenate([d, d[:, -1:]], axis=1)[:, :n_frames])
    return integrate_d(d, dim, rng), d, [np.asarray(j, dtype=int) for j in jumps]


MODELS = ("attm", "ctrw", "fbm", "lw", "sbm")  # per-frame model codes index this tuple
ALPHA_RANGES = {
    "attm": (0.05, 1.0),
    "ctrw": (0.05, 1.0),
    "fbm": (0.05, 1.95),
    "lw": (1.05, 2.0),
    "sbm": (0.05, 2.0),
}
ATTM_D_MAX = 0.5  # px^2/frame: the fastest ATTM episodes make per-axis steps of variance 1
ATTM_GAMMA_RANGE = (1.0, 2.0)  # gamma uniform here, sigma = alpha * gamma


_VALID = {  # (low, high, high inclusive): where each model's law is defined
    "attm": (0.0, 1.0, True),
    "ctrw": (0.0, 1.0, True),
    "fbm": (0.0, 2.0, False),
    "lw": (1.0, 2.0, True),
    "sbm": (0.0, np.inf, False),
}


def _alpha_array(alpha, n: int, model: str) -> np.ndarray:
    a = np.broadcast_to(np.asarray(alpha, dtype=float), (n,)).copy()
    lo, hi, closed = _VALID[model]
    ok = (a > lo) & ((a <= hi) if closed else (a < hi))
    if not ok.all():
        bracket = "]" if closed else ")"
        raise ValueError(
            f"alpha {a[~ok][0]} is outside the valid range of {model}: ({lo}, {hi}{bracket}"
        )
    return a


# ------------------------------------------------------------------------------------------------
# increments of one model: (n, n_steps, dim); increment k is X(k + 1) - X(k), X(0) = 0
# ------------------------------------------------------------------------------------------------


def _renewal_frames(tau: np.ndarray, n_steps: int):
    """Event times = cumsum(tau) per row (tau >= 1); returns (event times, increment index of
    each event (the event at time s falls in increment ceil(s) - 1), mask of events inside)."""
    with np.errstate(over="ignore", invalid="ignore"):
        times = np.cumsum(tau, axis=1)
        inside = times <= n_steps
        idx = np.where(inside, np.ceil(np.where(inside, times, 0)) - 1, -1).astype(int)
    return times, idx, inside


def _ctrw_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """Gaussian jumps (unit std per axis) after Pareto(alpha) waiting times (>= 1 frame)."""
    n = alpha.size
    inc = np.zeros((n, n_steps, dim))
    if n_steps == 0 or n == 0:
        return inc
    u = 1.0 - rng.uniform(size=(n, n_steps + 1))  # (0, 1]
    with np.errstate(over="ignore"):
        tau = u ** (-1.0 / alpha[:, None])
    _, idx, inside = _renewal_frames(tau, n_steps)
    rows = np.broadcast_to(np.arange(n)[:, None], idx.shape)[inside]
    np.add.at(inc, (rows, idx[inside]), rng.standard_normal((rows.size, dim)))
    return inc


def _levy_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """Lévy walk: flights of Pareto(3 - alpha) durations (>= 1 frame) at speed sqrt(dim) in
    uniformly random directions, observed at integer times."""
    n = alpha.size
    if n_steps == 0 or n == 0:
        return np.zeros((n, n_steps, dim))
    k = n_steps + 1  # flights last >= 1 frame, so k of them outlast the segment
    u = 1.0 - rng.uniform(size=(n, k))
    with np.errstate(over="ignore"):
        tau = u ** (-1.0 / (3.0 - alpha[:, None]))
    tau = np.minimum(tau, 2.0 * k)  # only the part inside the segment matters
    ends = np.cumsum(tau, axis=1)
    starts = ends - tau
    vel = _unit_vectors((n, k), dim, rng) * np.sqrt(dim)  # (n, k, dim)
    start_pos = np.cumsum(vel * tau[..., None], axis=1) - vel * tau[..., None]
    # flight in progress at time t = number of flights that ended at or before t
    counts = np.zeros((n, n_steps + 2), dtype=int)
    end_frame = np.minimum(np.ceil(ends), n_steps + 1).astype(int)  # ends <= t <=> ceil <= t
    np.add.at(counts, (np.broadcast_to(np.arange(n)[:, None], end_frame.shape), end_frame), 1)
    j = np.cumsum(counts, axis=1)[:, 1 : n_steps + 1]  # (n, n_steps) for t = 1..n_steps
    t = np.arange(1, n_steps + 1, dtype=float)[None, :]
    s = np.take_along_axis(starts, j, axis=1)
    pos = (
        np.take_along_axis(start_pos, j[..., None], axis=1)
        + np.take_along_axis(vel, j[..., None], axis=1) * (t - s)[..., None]
    )
    return np.diff(pos, axis=1, prepend=np.zeros((n, 1, dim)))


def _attm_inc(alpha: np.ndarray, n_steps: int, dim: int, rng, gamma_range=ATTM_GAMMA_RANGE):
    """ATTM via :func:`attm` (one call per track: its sigma and gamma differ)."""
    n = alpha.size
    inc = np.empty((n, n_steps, dim))
    gammas = rng.uniform(*gamma_range, size=n)
    for i in range(n):
        pos, _, _ = attm(1, n_steps + 1, alpha[i] * gammas[i], gammas[i], dim, ATTM_D_MAX, rng)
        inc[i] = np.diff(pos[0], axis=0)
    return inc


def _sbm_inc(alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    """SBM with per-axis MSD t^alpha (:func:`scaled_brownian` with K = 1/2)."""
    pos, _ = scaled_brownian(alpha.size, n_steps + 1, alpha, dim, k=0.5, rng=rng)
    return np.diff(pos, axis=1)


_INCREMENTS = {"attm": _attm_inc, "ctrw": _ctrw_inc, "fbm": _fgn, "lw": _levy_inc, "sbm": _sbm_inc}


def _sbm_scale(alpha, n_steps):
    """Factor making an SBM segment's mean per-axis step variance 1 (MSD(n) = n, not n^alpha)."""
    return np.sqrt(np.maximum(n_steps, 1) ** (1.0 - np.asarray(alpha, float)))


def _increments(model: str, alpha: np.ndarray, n_steps: int, dim: int, rng) -> np.ndarray:
    if model not in _INCREMENTS:
        raise ValueError(f"unknown model {model!r}: use one of {list(MODELS)}")
    return _INCREMENTS[model](alpha, n_steps, dim, rng)


def simulate_model(
    model: str,
    n_tracks: int,
    n_frames: int = 200,
    alpha: float | np.ndarray = 1.0,
    dim: int = 2,
    rng: RngLike = None,
) -> np.ndarray:
    """Tracks of one AnDi-1 model at the model's unit scale (module docstring).

    Parameters
    ----------
    model : str
        One of ``MODELS``: "attm", "ctrw", "fbm", "lw", "sbm".
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    alpha : float or array_like, shape (N,)
        Anomalous exponent, one value or one per track, inside the model's valid range.
    dim : int
        Spatial dimension, 1, 2 or 3.
    rng : numpy.random.Generator, int or None
        Random generator or seed; None draws a fresh one.

    Returns
    -------
    ndarray, shape (N, T, dim)
        Positions in px, starting at the origin.
    """
    rng = as_rng(rng)
    check_dim(dim)
    if model not in _INCREMENTS:
        raise ValueError(f"unknown model {model!r}: use one of {list(MODELS)}")
    a = _alpha_array(alpha, n_tracks, model)
    inc = _increments(model, a, n_frames - 1, dim, rng)
    if model == "sbm":
        inc = inc * _sbm_scale(a, n_frames - 1)[:, None, None]
    return np.concatenate([np.zeros((n_tracks, 1, dim)), np.cumsum(inc, axis=1)], axis=1)


def _one_model(model: str, name: str, alpha_default: float, summary: str):
    """A public simulator of one AnDi-1 model: :func:`simulate_model` with ``model`` fixed."""

    def simulate(
        n_tracks: int,
        n_frames: int = 200,
        alpha: float | np.ndarray = alpha_default,
        dim: int = 2,
        rng: RngLike = None,
    ) -> np.ndarray:
        return simulate_model(model, n_tracks, n_frames, alpha, dim, rng)

    simulate.__name__ = simulate.__qualname__ = name
    simulate.__doc__ = (
        f"{summary}\n\n    Parameters and returns as :func:`simulate_model` with "
        f'``model="{model}"``: positions\n    (N, T, dim) in px from the origin.\n    '
    )
    return simulate


fbm = _one_model(
    "fbm", "fbm", 1.0, "Fractional Brownian motion, alpha in (0, 2): per-axis MSD exactly t^alpha."
)
ctrw = _one_model(
    "ctrw",
    "ctrw",
    0.5,
    "Continuous-time random walk, alpha in (0, 1]: unit Gaussian jumps after power-law waits.",
)
levy_walk = _one_model(
    "lw", "levy_walk", 1.5, "Lévy walk, alpha in (1, 2]: flights at speed sqrt(dim) px/frame."
)
