"""Switching between a few recurring diffusive states: a hidden Markov model of the step sizes.

Tracks that hop between the same two or three D values (binding and unbinding, a protein that
alternates between free and slowed-down forms; the AnDi-2 two-state model) are segmented best
by pooling every visit of a state: a change-point detector estimates each short segment's D from
its own few steps, an HMM estimates each state's D from all of them and places the switches by
the likelihood of the whole path. Per track, :func:`fit_switching` fits 1, 2 and 3 states by
expectation maximisation on the squared 2-D (or 1-D, 3-D) steps (per state a scaled chi-square
with ``dim`` degrees of freedom; Markov transitions) and keeps the number of states with the
lowest BIC; the Viterbi path gives the state of every step. Each state's D is then estimated
from its steps with the requested estimator (localisation noise removed with the track's lag-1
covariance, as in :mod:`napari_step.segment`), not from the EM variance, which includes the
noise.

Frame convention as everywhere: ``states[t]`` is the state of the step t -> t+1 (the last frame
repeats the one before it); a change point c is the first frame of the new state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ._d_estimators import noise_corrected_d

__all__ = ["SwitchingFit", "fit_switching", "MAX_STATES"]

MAX_STATES = 3
_EM_ITERATIONS = 60
_EM_TOL = 1e-6  # relative change of the log-likelihood that ends EM
_STAY0 = 0.95  # initial probability of staying in a state per frame
_MIN_RATIO = 1.5  # states whose step variances differ by less than this are one state


@dataclass
class SwitchingFit:
    """One track's switching model.

    ``states``: (T,) int, the state of each frame (the step leaving it; the last frame repeats).
    ``variances``: per state, the EM step variance per axis (px^2, noise included), ascending.
    ``transitions``: (K, K) per-frame transition probabilities. ``bic``: per number of states
    tried, the BIC (lower is better). ``posterior``: (T, K) state probabilities per frame.
    """

    states: np.ndarray
    variances: np.ndarray
    transitions: np.ndarray
    bic: dict
    posterior: np.ndarray

    @property
    def n_states(self) -> int:
        return len(self.variances)

    @property
    def changepoints(self) -> np.ndarray:
        return np.flatnonzero(self.states[1:] != self.states[:-1]) + 1


@numba.njit(cache=True, nogil=True)
def _forward_backward_scaled(b, a, pi):
    """Scaled forward-backward on emissions ``b`` (T, K) (each row scaled by any constant):
    posteriors (T, K), summed pair posteriors (K, K), and the per-step scale factors."""
    n, k = b.shape
    alpha = np.empty((n, k))
    scale = np.empty(n)
    alpha[0] = pi * b[0]
    scale[0] = alpha[0].sum()
    alpha[0] /= scale[0]
    for t in range(1, n):
        alpha[t] = (alpha[t - 1] @ a) * b[t]
        scale[t] = alpha[t].sum()
        alpha[t] /= scale[t]
    beta = np.empty((n, k))
    beta[n - 1] = 1.0
    xi = np.zeros((k, k))
    for t in range(n - 2, -1, -1):
        nb = b[t + 1] * beta[t + 1]
        for i in range(k):
            for j in range(k):
                xi[i, j] += alpha[t, i] * a[i, j] * nb[j] / scale[t + 1]
        beta[t] = (a @ nb) / scale[t + 1]
    gamma = alpha * beta
    for t in range(n):
        gamma[t] /= gamma[t].sum()
    return gamma, xi, scale


def _forward_backward(logb, log_a, log_pi):
    """Posteriors (T, K), pair sums (K, K) and the log-likelihood of the whole track."""
    m = logb.max(axis=1)
    b = np.ascontiguousarray(np.exp(logb - m[:, None]))
    gamma, xi, scale = _forward_backward_scaled(
        b, np.ascontiguousarray(np.exp(log_a)), np.exp(log_pi)
    )
    return gamma, xi, float(np.log(scale).sum() + m.sum())


@numba.njit(cache=True, nogil=True)
def _viterbi(logb, log_a, log_pi):
    n, k = logb.shape
    delta = log_pi + logb[0]
    back = np.zeros((n, k), dtype=np.int64)
    for t in range(1, n):
        new = np.empty(k)
        for j in range(k):
            best, arg = -np.inf, 0
            for i in range(k):
                v = delta[i] + log_a[i, j]
                if v > best:
                    best, arg = v, i
            new[j] = best + logb[t, j]
            back[t, j] = arg
        delta = new
    path = np.empty(n, dtype=np.int64)
    path[n - 1] = np.argmax(delta)
    for t in range(n - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path


def _log_emission(r: np.ndarray, var: np.ndarray, dim: int) -> np.ndarray:
    """log p(r | per-axis variance v) for squared steps r ~ v chi2(dim), up to a term in r alone
    (the same for every state and every number of states, so it cancels in EM and BIC)."""
    return -0.5 * dim * np.log(var)[None, :] - r[:, None] / (2.0 * var[None, :])


def _em(r: np.ndarray, dim: int, k: int):
    """EM fit of a k-state HMM to squared steps r; returns (variances, log A, log pi, loglik)."""
    qs = np.quantile(r, (np.arange(k) + 0.5) / k) / dim
    var = np.maximum(qs, r.mean() / dim * 1e-6)
    a = np.full((k, k), (1 - _STAY0) / max(k - 1, 1))
    np.fill_diagonal(a, _STAY0 if k > 1 else 1.0)
    pi = np.full(k, 1.0 / k)
    floor = max(r.mean() / dim * 1e-8, 1e-300)
    last = -np.inf
    for _ in range(_EM_ITERATIONS):
        logb = _log_emission(r, var, dim)
        gamma, xi, ll = _forward_backward(logb, np.log(a), np.log(pi))
        w = gamma.sum(axis=0)
        var = np.maximum((gamma * r[:, None]).sum(axis=0) / (dim * np.maximum(w, 1e-12)), floor)
        a = xi + 1e-12
        a /= a.sum(axis=1, keepdims=True)
        pi = gamma[0] + 1e-12
        pi /= pi.sum()
        if abs(ll - last) <= _EM_TOL * abs(ll):
            break
        last = ll
    order = np.argsort(var)
    return var[order], np.log(a[np.ix_(order, order)]), np.log(pi[order]), ll


def fit_switching(positions, max_states: int = MAX_STATES) -> SwitchingFit:
    """Fit 1..``max_states`` state HMMs to one track's steps and keep the best by BIC.

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px (T >= 3).
    max_states : int
        Largest number of states tried (1-3).

    Returns
    -------
    SwitchingFit
    """
    pos = np.asarray(positions, dtype=float)
    if pos.ndim == 1:
        pos = pos[:, None]
    if len(pos) < 3 or not np.isfinite(pos).all():
        raise ValueError("fit_switching needs a gap-free track of at least 3 finite positions")
    if not 1 <= max_states <= MAX_STATES:
        raise ValueError(f"max_states must be in 1..{MAX_STATES}, not {max_states}")
    dim = pos.shape[1]
    r = np.sum(np.diff(pos, axis=0) ** 2, axis=1)
    n = len(r)
    if not (r > 0).any():
        r = r + 1e-300
    fits, bic = {}, {}
    for k in range(1, max_states + 1):
        if k > 1 and n < 10 * k:  # too few steps to tell k states apart
            break
        var, log_a, log_pi, ll = _em(r, dim, k)
        if k > 1 and np.min(var[1:] / var[:-1]) < _MIN_RATIO:
            break  # two states with about the same D: more states only split noise
        n_par = k + k * (k - 1) + (k - 1)
        bic[k] = float(-2.0 * ll + n_par * np.log(n))
        fits[k] = (var, log_a, log_pi)
    best = min(bic, key=bic.get)
    var, log_a, log_pi = fits[best]
    logb = _log_emission(r, var, dim)
    path = _viterbi(logb, log_a, log_pi)
    gamma, _, _ = _forward_backward(logb, log_a, log_pi)
    states = np.append(path, path[-1])
    post = np.vstack([gamma, gamma[-1:]])
    return SwitchingFit(states, var, np.exp(log_a), bic, post)


def state_d(pos: np.ndarray, states: np.ndarray, estimator: str = "mle_denoised", R: float = 0.0):
    """Per-state D (px^2/frame) from every step the state makes, and the localisation variance.

    Parameters
    ----------
    pos : ndarray, shape (T, dim)
        The track, px.
    states : ndarray of int, shape (T,)
        State per frame (the step leaving it), e.g. :attr:`SwitchingFit.states`.
    estimator : {"mle_denoised", "mle", "cve", "cve_pooled"}
        As for :func:`napari_step.segment.segment_track`, with each state's steps pooled over
        all its visits; the lag-1 covariance uses only pairs of consecutive steps in one state.
    R : float
        Motion-blur coefficient for "cve" (its sigma^2) and "cve_pooled".

    Returns
    -------
    d : ndarray (K,)
        D per state (NaN where <= 0 or a state has no step).
    sigma2 : ndarray (K,) or None
        Localisation variance per axis (px^2) per state, for the noise-corrected estimators.
    """
    dx = np.diff(pos, axis=0)
    s = np.asarray(states)[: len(dx)]
    k = int(s.max()) + 1 if len(s) else 0
    same = s[1:] == s[:-1]
    pair = dx[1:] * dx[:-1]
    msq, cov, n_pairs = np.full(k, np.nan), np.full(k, np.nan), np.zeros(k)
    for j in range(k):
        if (s == j).any():
            msq[j] = float((dx[s == j] ** 2).mean())
        inside = same & (s[:-1] == j)
        n_pairs[j] = inside.sum()
        if n_pairs[j]:
            cov[j] = float(pair[inside].mean())
    if estimator == "mle":
        return np.where(msq > 0, msq / 2.0, np.nan), None
    if estimator not in ("cve", "mle_denoised", "cve_pooled"):
        raise ValueError(f"estimator {estimator!r} has no per-state form")
    d, s2 = noise_corrected_d(msq, cov, n_pairs, estimator, R)
    return np.where(d > 0, d, np.nan), s2


def _segment_ll(r: np.ndarray, dim: int, v: float) -> float:
    v = max(v, 1e-300)
    return float(np.sum(-0.5 * dim * np.log(v) - r / (2.0 * v)))


def prefer_switching(positions, fit: SwitchingFit, changepoints) -> bool:
    """Whether a track's segments are visits of the fit's few recurring states.

    At the given change points (e.g. the exact segmentation's), each segment is assigned the
    HMM state most of its frames are in, and the model with one D per state (tied) is compared
    with the model with one D per segment by BIC on the same steps: the per-segment D wins only
    if the likelihood it gains pays for its extra parameters. With no more segments than
    states (tying costs nothing), True when the fit finds more state changes than there are
    change points (visits the segmentation missed). Always False for a one-state fit.
    """
    if fit.n_states < 2:
        return False
    pos = np.asarray(positions, dtype=float)
    pos = pos[:, None] if pos.ndim == 1 else pos
    dim = pos.shape[1]
    r = np.sum(np.diff(pos, axis=0) ** 2, axis=1)
    edges = [0, *[int(c) for c in changepoints], len(r)]
    bounds = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    label = [int(np.bincount(fit.states[a:b], minlength=fit.n_states).argmax()) for a, b in bounds]
    used = sorted(set(label))
    extra = len(bounds) - len(used)
    if extra <= 0:
        return len(fit.changepoints) > len(changepoints)
    untied = sum(_segment_ll(r[a:b], dim, r[a:b].mean() / dim) for a, b in bounds)
    tied = 0.0
    for j in used:
        rj = np.concatenate([r[a:b] for (a, b), lab in zip(bounds, label) if lab == j])
        tied += _segment_ll(rj, dim, rj.mean() / dim)
    return 2.0 * (untied - tied) < extra * np.log(len(r))
