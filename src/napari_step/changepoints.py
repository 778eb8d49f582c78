"""Change-point detectors for per-frame signals and raw Brownian steps (px, frames).

* :func:`exact_changepoints`: the exact penalised maximum-likelihood segmentation of a track's raw
  steps (Brownian motion, one D per segment), by dynamic programming. The default detector of
  :func:`napari_step.segment.segment_track`.
* :func:`find_changepoints`: kernel change-point detection (``ruptures.KernelCPD``) on STEP's
  log10 D output, alone or as the hybrid (STEP proposals kept when the raw-step likelihood-ratio
  statistic passes a threshold, then moved to the maximum-likelihood frame).

Frame convention: frame t carries the step t -> t+1 (the last frame repeats the one before it) and
a change point c is the first frame of the new segment.

Why the exact segmentation is hand-written rather than ``ruptures.Pelt`` with a custom cost: both
find the same optimum (identical change points on all 400 tracks of ``benchmarks/changepoints.py
--pelt``, switching and 1-4 change-point sets) but Pelt calls a Python cost per candidate pair and
took 18-25 ms per 200-frame track against 4 ms for the vectorised dynamic programme here.
"""

from __future__ import annotations

import functools

import numpy as np

__all__ = [
    "find_changepoints",
    "exact_changepoints",
    "step_dispersion",
    "confirm_changepoints",
    "log_step_sizes",
    "DEFAULT_MIN_SIZE",
    "KCPD_PENALTY",
    "PROPOSAL_PENALTY",
    "GLR_THRESHOLD",
    "REFINE_WINDOW",
    "EXACT_PENALTY",
    "EXACT_MIN_SIZE",
    "CONFIRM_THRESHOLD",
]

# Defaults tuned on seeded tuning sets by benchmarks/changepoints.py (see its docstring); all
# penalties/thresholds are per log(T) so they scale with the track length T.
DEFAULT_MIN_SIZE = 5  # frames per segment at least
KCPD_PENALTY = 0.3  # plain KCPD on STEP log10 D (decades^2 per log T): ~1.6 at T = 200
PROPOSAL_PENALTY = 0.03  # hybrid: low KCPD penalty for candidates (~0.16 at T = 200)
GLR_THRESHOLD = 2.5  # hybrid: 2 x log-likelihood ratio per log T (~13 at T = 200)
REFINE_WINDOW = 5  # hybrid: frames either side searched for the ML change-point frame
EXACT_PENALTY = 2.0  # exact_changepoints: per change point, per log T (tuned for segmented D)
# exact_changepoints and confirm_changepoints: shortest segment, frames. 3 rather than 5 follows
# short dwells (benchmarks/changepoints.py tuning seed, segmented D on two-state switching 0.348 ->
# 0.339, noise-free 0.301 -> 0.286, 1-4 change points unchanged; own AnDi-2 simulators: CP
# Jaccard 0.922 -> 0.926, immobile traps 0.951 -> 0.965; constant tracks unchanged)
EXACT_MIN_SIZE = 3
DISPERSION_LAGS = 3  # exact_changepoints: lags of the squared-step autocorrelation summed
DISPERSION_MAX = 3.0  # exact_changepoints: largest variance inflation applied to the penalty
CONFIRM_THRESHOLD = 4.5  # confirm_changepoints: 2 x log-likelihood ratio per log T (x inflation)
BLIP_SIZE = 2  # exact_changepoints: inner candidate segments of 1-2 steps (outlying steps)
BLIP_WINDOW = 10  # wild_steps: neighbours either side
OUTLIER_FACTOR = 20.0  # confirm_changepoints(robust): a step this many times its side's mean


@functools.cache
def _chi2_median_over_mean(dim: int) -> float:
    """Median of a Brownian squared step of a dim-dimensional track in units of its mean (the
    median of a chi-square variable with dim degrees of freedom over dim)."""
    from scipy.stats import chi2

    return float(chi2.median(dim) / dim)


def _as_positions(positions) -> np.ndarray:
    a = np.asarray(positions, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    return a


def log_step_sizes(positions: np.ndarray) -> np.ndarray:
    """log10 of the squared step length per frame, the raw-data analogue of STEP's log10 D.

    Parameters
    ----------
    positions : array_like, shape (T, dim) or (T,)
        One track, px.

    Returns
    -------
    ndarray, shape (T,)
        log10 |x_{t+1} - x_t|^2 (px^2) at frame t, the last frame repeating the one before it
        (offset from log10 D by log10(2 dim) and much noisier). Zero steps get a finite floor
        instead of -inf; NaN for a single frame.
    """
    pos = _as_positions(positions)
    r = (np.diff(pos, axis=0) ** 2).sum(-1)
    if r.size == 0:
        return np.full(len(pos), np.nan)
    pos_r = r[r > 0]
    floor = pos_r.min() * 1e-3 if pos_r.size else 1.0
    s = np.log10(np.maximum(r, floor))
    return np.concatenate([s, s[-1:]])


# --------------------------------------------------------------------------------------------
# change points
# --------------------------------------------------------------------------------------------


def _clean_signal(signal: np.ndarray) -> np.ndarray | None:
    """Replace non-finite values (-inf for still frames) by the nearest finite level; None when
    nothing is finite."""
    finite = np.isfinite(signal)
    if not finite.any():
        return None
    if finite.all():
        return signal
    out = signal.copy()
    lo = np.nanmin(np.where(finite, signal, np.nan))
    out[np.isneginf(signal)] = lo
    idx = np.flatnonzero(finite)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        out[bad] = out[idx[np.clip(np.searchsorted(idx, bad), 0, idx.size - 1)]]
    return out


def _kcpd(signal: np.ndarray, penalty: float, min_size: int, kernel: str, kernel_params) -> list:
    import ruptures as rpt

    sig = signal.reshape(len(signal), -1)
    algo = rpt.KernelCPD(kernel=kernel, min_size=min_size, params=kernel_params).fit(sig)
    try:
        bkps = algo.predict(pen=penalty)
    except rpt.exceptions.BadSegmentationParameters:
        return []
    return [int(b) for b in bkps[:-1]]


class _StepLikelihood:
    """Gaussian (Brownian) negative log-likelihood of the steps leaving frames [a, b); steps
    outside ``mask`` (the outlying steps of blips) are left out of every segment."""

    def __init__(self, positions: np.ndarray, mask: np.ndarray | None = None):
        r = (np.diff(positions, axis=0) ** 2).sum(-1)  # r[t]: the step t -> t+1
        use = np.ones(r.size, bool) if mask is None else np.asarray(mask, bool)
        r = np.where(use, r, 0.0)
        self.r = r
        self.n_steps = r.size
        self.dim = positions.shape[1]
        self.cs = np.concatenate([[0.0], np.cumsum(r)])
        self.cn = np.concatenate([[0], np.cumsum(use)])
        pos_r = r[use & (r > 0)]
        self.floor = (pos_r.mean() if pos_r.size else 1.0) * 1e-12

    def nll(self, a: int, b: int, without: int | None = None) -> float:
        """Twice the negative log-likelihood (up to constants) of frames [a, b) at the ML D
        (``without``: leaving out the step from that frame, if it is inside)."""
        b = min(b, self.n_steps)
        if b <= a:
            return 0.0
        n, total = self.cn[b] - self.cn[a], self.cs[b] - self.cs[a]
        if without is not None and a <= without < b and self.cn[without + 1] > self.cn[without]:
            n, total = n - 1, total - self.r[without]
        if n <= 0:
            return 0.0
        return self.dim * n * np.log(max(total / n, self.floor))

    def glr(self, a: int, c: int, b: int) -> float:
        """2 x log-likelihood ratio of a change at c against none in [a, b)."""
        return self.nll(a, b) - self.nll(a, c) - self.nll(c, b)

    def robust_glr(self, a: int, c: int, b: int) -> float:
        """:meth:`glr`, but without the largest step of [a, b) when that step is wild (over
        ``OUTLIER_FACTOR`` times the mean of the other steps of its side of c; a Brownian step
        does that with probability under 1 % even among 3): one wild step (a mislink, a
        localisation outlier, the first jump of some andi-datasets tracks) cannot make a
        change alone, while a real change, carried by several steps, keeps its statistic."""
        g = self.glr(a, c, b)
        hi = min(b, self.n_steps)
        if hi <= a or self.cn[hi] - self.cn[a] < 3:
            return g
        j = a + int(np.argmax(self.r[a:hi]))
        lo_side, hi_side = (a, min(c, hi)) if j < c else (c, hi)
        n_other = self.cn[hi_side] - self.cn[lo_side] - 1
        if n_other < 1:  # its side is j alone
            n_all = self.cn[hi] - self.cn[a] - 1
            other = (self.cs[hi] - self.cs[a] - self.r[j]) / n_all
        else:
            other = (self.cs[hi_side] - self.cs[lo_side] - self.r[j]) / n_other
        if self.r[j] <= OUTLIER_FACTOR * max(other, self.floor):
            return g
        loo = self.nll(a, b, j) - self.nll(a, c, j) - self.nll(c, b, j)
        return min(g, loo)


def _glr_prune(
    cps: list, lik: _StepLikelihood, n_frames: int, threshold: float, robust: bool = False
) -> list:
    """Drop the weakest change point (smallest GLR against its neighbours) until all pass
    (``robust``: :meth:`_StepLikelihood.robust_glr`)."""
    stat = lik.robust_glr if robust else lik.glr
    b = [0] + list(cps) + [n_frames]  # b[i + 1] is change point i
    g = [stat(b[i], b[i + 1], b[i + 2]) for i in range(len(b) - 2)]
    while g:
        k = int(np.argmin(g))
        if g[k] >= threshold:
            break
        del b[k + 1], g[k]
        for i in (k - 1, k):  # only the two neighbours' statistics change
            if 0 <= i < len(g):
                g[i] = stat(b[i], b[i + 1], b[i + 2])
    return b[1:-1]


def _refine(cps: list, lik: _StepLikelihood, n_frames: int, window: int, min_size: int) -> list:
    out: list = []
    for i, c in enumerate(cps):
        a = out[-1] if out else 0
        b = cps[i + 1] if i + 1 < len(cps) else n_frames
        lo, hi = max(a + min_size, c - window), min(b - min_size, c + window)
        if hi < lo:
            out.append(c)
            continue
        cand = np.arange(lo, hi + 1)
        ll = [lik.glr(a, int(cc), b) for cc in cand]
        out.append(int(cand[int(np.argmax(ll))]))
    return out


def find_changepoints(
    log10_d_pred,
    positions=None,
    penalty: float | None = None,
    min_size: int = DEFAULT_MIN_SIZE,
    kernel: str = "linear",
    kernel_params: dict | None = None,
    threshold: float | None = None,
    refine: int = REFINE_WINDOW,
    scale_with_length: bool = True,
) -> np.ndarray:
    """Change points of one track from a per-frame signal, by kernel change-point detection.

    Parameters
    ----------
    log10_d_pred : array_like, shape (T,) or (T, k)
        STEP's log10 D (px^2/frame) or any signal indexed by frame (e.g. :func:`log_step_sizes`;
        (T, k) for multivariate KCPD). Non-finite values (-inf where the track does not move) are
        replaced by the lowest finite value.
    positions : array_like, shape (T, dim), optional
        The track (px): switches on the hybrid detector (module docstring): KCPD proposals at
        ``penalty`` (default ``PROPOSAL_PENALTY``) kept when the raw-step likelihood-ratio
        statistic exceeds ``threshold`` (default ``GLR_THRESHOLD``), then moved to the ML frame
        within ``refine`` frames. Without positions: plain ``ruptures.KernelCPD`` at ``penalty``
        (default ``KCPD_PENALTY``).
    penalty : float, optional
        Signal units squared (decades^2 for log10 D, linear kernel), per log(T) with
        ``scale_with_length``.
    min_size : int
        Shortest segment, frames.
    kernel : {"linear", "rbf", "cosine"}
        ruptures kernel (with ``kernel_params``); penalties of other kernels are on another scale.
    threshold : float, optional
        Hybrid only: 2 x log-likelihood ratio, per log(T) with ``scale_with_length``.
    refine : int
        Hybrid only: frames either side searched for the ML change-point frame (0: none).
    scale_with_length : bool
        Multiply ``penalty`` and ``threshold`` by log(T) so the false-alarm rate stays roughly
        constant across track lengths.

    Returns
    -------
    ndarray of int
        Sorted change-point frames, each the first frame of a new segment. None for an all-NaN
        signal (too short for the model) or one shorter than ``2 * min_size`` frames.
    """
    sig = np.asarray(log10_d_pred, dtype=float)
    n_frames = sig.shape[0]
    min_size = max(1, int(min_size))
    if n_frames < 2 * min_size:
        return np.empty(0, dtype=int)
    sig = _clean_signal(sig)
    if sig is None:
        return np.empty(0, dtype=int)
    hybrid = positions is not None
    if hybrid:
        pos = _as_positions(positions)
        if len(pos) != n_frames:
            raise ValueError(f"positions have {len(pos)} frames, the signal has {n_frames}")
        if not np.isfinite(pos).all():
            raise ValueError("positions must be finite (split tracks at gaps first)")
    scale = np.log(n_frames) if scale_with_length else 1.0
    if penalty is None:
        penalty = PROPOSAL_PENALTY if hybrid else KCPD_PENALTY
    cps = _kcpd(sig, float(penalty) * scale, min_size, kernel, kernel_params)
    if hybrid and cps:
        lik = _StepLikelihood(pos)
        thr = (GLR_THRESHOLD if threshold is None else float(threshold)) * scale
        cps = _glr_prune(cps, lik, n_frames, thr)
        if refine and cps:
            cps = _refine(cps, lik, n_frames, int(refine), min_size)
    return np.asarray(cps, dtype=int)


def _optimal_partition(
    r: np.ndarray,
    dim: int,
    pen: float,
    min_size: int,
    edge_size: int | None = None,
    blip_size: int = 0,
    wild: np.ndarray | None = None,
) -> list:
    """Exact penalised ML segmentation of squared steps ``r`` (optimal partitioning, O(n^2));
    inner segments have >= ``min_size`` steps or at most ``blip_size`` steps that are all
    ``wild`` (:func:`wild_steps` of ``r``), the first and the last >= ``edge_size``."""
    n = len(r)
    edge = min_size if edge_size is None else max(1, min(int(edge_size), min_size))
    blip_size = blip_size if wild is not None else 0
    smallest = 1 if blip_size else edge
    n_wild = np.concatenate([[0], np.cumsum(wild)]) if blip_size else None
    cs = np.concatenate([[0.0], np.cumsum(r)])
    floor = (r[r > 0].mean() if (r > 0).any() else 1.0) * 1e-12
    best = np.full(n + 1, np.inf)  # best[b]: optimal cost of steps [0, b)
    best[0] = -pen
    last = np.zeros(n + 1, dtype=int)
    for b in range(smallest, n + 1):
        a = np.arange(0, b - smallest + 1)
        size = b - a
        ok = (size >= min_size) | (((a == 0) | (b == n)) & (size >= edge))
        if blip_size:  # an inner blip: 1..blip_size steps, all of them wild
            ok |= (a > 0) & (b < n) & (size <= blip_size) & (n_wild[b] - n_wild[a] == size)
        a = a[ok & np.isfinite(best[a])]
        if not len(a):
            continue
        mean = np.maximum((cs[b] - cs[a]) / (b - a), floor)
        cost = best[a] + dim * (b - a) * np.log(mean) + pen
        k = int(np.argmin(cost))
        best[b], last[b] = cost[k], a[k]
    cps, b = [], n
    while b > 0:
        b = int(last[b])
        if b > 0:
            cps.append(b)  # the step b -> b + 1 is the first of the new segment
    return sorted(cps)


def wild_steps(r: np.ndarray, dim: int, window: int = BLIP_WINDOW) -> np.ndarray:
    """Which squared steps are wild: over ``OUTLIER_FACTOR`` times the mean squared step of their
    neighbourhood (the median of the ``window`` steps either side, over the median of a
    Brownian squared step in units of its mean), which a Brownian step exceeds with probability
    about exp(-20) in 2-D. Mislinks and escapes from a trap make such steps; a change of D
    does not (the steps after it are as large as each other)."""
    n = len(r)
    if n < 3:
        return np.zeros(n, dtype=bool)
    half = min(int(window), n - 1)
    padded = np.pad(r, half, mode="reflect")
    near = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    near = np.delete(near, half, axis=1)  # the step's own value left out
    ref = np.median(near, axis=1) / _chi2_median_over_mean(int(dim))
    return r > OUTLIER_FACTOR * np.maximum(ref, 1e-300)


def step_dispersion(r: np.ndarray, cps, max_lag: int = DISPERSION_LAGS) -> float:
    """Variance inflation of summed squared steps from their correlation within segments.

    The Brownian step likelihood treats the squared steps as independent. Localisation noise
    (neighbouring steps share a position error) and anomalous motion (correlated increments)
    make them correlated, so sums of squared steps vary more than it assumes and its
    likelihood-ratio statistics are inflated by ``1 + 2 sum_k rho_k`` (rho_k: lag-k
    autocorrelation of the squared steps, here of their ratio to the mean of their segment, so
    that a change of D does not count as correlation).

    Parameters
    ----------
    r : ndarray, shape (n,)
        Squared step lengths, px^2.
    cps : sequence of int
        Change points (step indices where a segment starts).
    max_lag : int
        Lags summed.

    Returns
    -------
    float
        The inflation factor, clipped to [1, DISPERSION_MAX]; 1 for fewer than 20 steps.
    """
    n = len(r)
    if n < 20:
        return 1.0
    edges = [0, *[int(c) for c in cps], n]
    u = np.empty(n)
    for a, b in zip(edges[:-1], edges[1:]):
        m = r[a:b].mean()
        u[a:b] = r[a:b] / m - 1.0 if m > 0 else 0.0
    var = float((u**2).mean())
    if var <= 0:
        return 1.0
    rho = [float((u[k:] * u[:-k]).mean()) / var for k in range(1, max_lag + 1)]
    return float(np.clip(1.0 + 2.0 * sum(rho), 1.0, DISPERSION_MAX))


def exact_changepoints(
    positions,
    penalty: float = EXACT_PENALTY,
    min_size: int = EXACT_MIN_SIZE,
    scale_with_length: bool = True,
    dispersion: bool = False,
    edge_size: int = 1,
    blip_size: int = BLIP_SIZE,
) -> np.ndarray:
    """Change points of a track from its raw steps: the exact penalised ML segmentation.

    The segmentation that minimises twice the Gaussian (Brownian) negative log-likelihood of the
    steps (one D per segment) plus ``penalty`` per change point, found exactly by dynamic
    programming (optimal partitioning, O(T^2), vectorised over the last change point). Its
    default penalty is low (sensitive: the per-frame segmented D follows fast switching);
    :func:`confirm_changepoints` then keeps the change points to report. With
    ``dispersion`` the likelihood is a quasi-likelihood: the penalty is multiplied by the
    variance inflation of the squared steps measured within the first segmentation
    (:func:`step_dispersion`: localisation noise, anomalous motion) and the segmentation redone,
    so that the false-alarm rate on constant tracks stays near that of independent Brownian
    steps. The default detector of :func:`napari_step.segment.segment_track`.

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px.
    penalty : float
        Per change point, per log(T) with ``scale_with_length``.
    min_size : int
        Shortest segment, frames (steps).
    scale_with_length : bool
        Multiply ``penalty`` by log(T).
    dispersion : bool
        Scale the penalty by the measured variance inflation (see above).
    edge_size : int
        Shortest first and last segment, steps (at most ``min_size``): one or two outlying
        steps at a track's start or end (a particle entering focus, a mislinked end) get a
        segment of their own instead of pulling a normal step into a ``min_size`` segment;
        :func:`confirm_changepoints` does not report segments that short.
    blip_size : int
        Inner segments of at most this many steps are allowed too (0: none): a blip, one or
        two outlying steps inside a track (a mislinked position makes two: to the wrong
        particle and back; a particle escaping a trap for a frame), gets a segment of its own
        instead of pulling normal steps into a ``min_size`` segment;
        :func:`confirm_changepoints` leaves its steps out and does not report it.

    Returns
    -------
    ndarray of int
        Sorted change-point frames (the step c -> c+1 is the first of the new segment).

    Raises
    ------
    ValueError
        Non-finite positions.
    """
    pos = _as_positions(positions)
    if not np.isfinite(pos).all():
        raise ValueError("positions must be finite (split tracks at gaps first)")
    r = (np.diff(pos, axis=0) ** 2).sum(-1)  # r[j]: the step j -> j + 1
    min_size = max(1, int(min_size))
    if len(r) < 2 * min_size:
        return np.empty(0, dtype=int)
    pen = float(penalty) * (np.log(len(pos)) if scale_with_length else 1.0)
    wild = wild_steps(r, pos.shape[1]) if blip_size else None
    cps = _optimal_partition(r, pos.shape[1], pen, min_size, edge_size, blip_size, wild)
    if dispersion:
        inflation = step_dispersion(r, cps)
        if inflation > 1.0:
            cps = _optimal_partition(
                r, pos.shape[1], pen * inflation, min_size, edge_size, blip_size, wild
            )
    return np.asarray(cps, dtype=int)


def _drop_blips(cps: list, wild: np.ndarray, min_size: int) -> tuple[list, np.ndarray]:
    """Candidate segments shorter than ``min_size`` steps are blips, not segments to report: a
    run of them at a track's start or end merges into its neighbour, one inside a track becomes
    a single change point at its start (the segments either side may still differ), and their
    wild steps (:func:`wild_steps`: a mislink, an escape) leave the likelihood (the returned
    mask of the steps kept)."""
    n_steps = len(wild)
    edges = [0, *cps, n_steps]
    mask = np.ones(n_steps, dtype=bool)
    out: list = []
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        if b - a < min_size:
            mask[a:b] = ~wild[a:b]
        elif i > 0:
            # a long segment after a long one, or after a run of blips that does not begin
            # the track: one change point, at the run's start
            j = i
            while j > 0 and edges[j] - edges[j - 1] < min_size:
                j -= 1
            if j > 0:
                out.append(edges[j])
    return out, mask


def confirm_changepoints(
    positions,
    changepoints,
    threshold: float = CONFIRM_THRESHOLD,
    scale_with_length: bool = True,
    dispersion: bool = True,
    refine: int = REFINE_WINDOW,
    min_size: int = EXACT_MIN_SIZE,
    robust: bool = True,
) -> np.ndarray:
    """Keep the change points that a likelihood-ratio test confirms at a low false-alarm rate.

    Repeatedly drops the weakest change point (smallest twice log-likelihood ratio of the
    Brownian step model against merging it with its neighbouring segments) until every
    remaining one exceeds ``threshold`` (x log T) times the variance inflation of the squared
    steps (:func:`step_dispersion`, measured within the given segmentation). Segments whose D
    are statistically indistinguishable are thereby merged; the result is a subset of
    ``changepoints``. With the default threshold a constant track (Brownian or fractional, with
    localisation noise, 20-200 frames) gets a false change point in under 1 % of cases
    (``tests/test_segment.py``).
    The threshold was chosen on the project's own AnDi-2 simulators (``napari_step.simulate.
    andi2_world``, seed 7, 600 tracks of 20-200 frames, scored by andi-datasets' metrics): CP
    Jaccard 0.886 without confirmation, 0.920 / 0.923 / 0.918 / 0.922 at 2.5 / 3.5 / 4 / 4.5,
    constant tracks 0.918 -> 1.000 at 4.5 (segments of 5 frames or more; with 3, the default,
    0.926 at 4.5).

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px.
    changepoints : array_like of int
        Candidate change points (e.g. of :func:`exact_changepoints`), frames in 1..T-1.
    threshold : float
        2 x log-likelihood ratio a change point must reach, per log(T) with
        ``scale_with_length``.
    scale_with_length : bool
        Multiply ``threshold`` by log(T).
    dispersion : bool
        Multiply ``threshold`` by the measured variance inflation.
    refine : int
        Then move each confirmed change point to its maximum-likelihood frame between its
        neighbours, within this many frames (0: not moved): a merge can leave the survivor of a
        close pair off the best frame.
    min_size : int
        Shortest segment the refinement may create, frames.
    robust : bool
        Test each change point without the largest step of its two segments too and keep the
        smaller statistic (:meth:`_StepLikelihood.robust_glr`): a single outlying step (a
        mislinked position; in andi-datasets' tracks, often the first step) then does not
        make a segment of its own.

    Returns
    -------
    ndarray of int
        The confirmed change points, sorted.
    """
    pos = _as_positions(positions)
    cps = sorted(int(c) for c in np.asarray(changepoints).ravel())
    if not cps:
        return np.empty(0, dtype=int)
    if cps[0] <= 0 or cps[-1] >= len(pos):
        raise ValueError(f"change points must be frames in 1..{len(pos) - 1}, got {cps}")
    r = (np.diff(pos, axis=0) ** 2).sum(-1)
    cps, mask = _drop_blips(cps, wild_steps(r, pos.shape[1]), max(1, int(min_size)))
    if not cps:
        return np.empty(0, dtype=int)
    thr = float(threshold) * (np.log(len(pos)) if scale_with_length else 1.0)
    if dispersion:
        kept_index = np.concatenate([[0], np.cumsum(mask)])  # change points among kept steps
        thr *= step_dispersion(r[mask], [int(kept_index[c]) for c in cps])
    lik = _StepLikelihood(pos, mask)
    kept = _glr_prune(cps, lik, len(pos), thr, robust)
    if refine and kept:
        kept = _refine(kept, lik, len(pos), int(refine), max(1, int(min_size)))
    return np.asarray(kept, dtype=int)
