"""AnDi-2 phenomenological models: switching, traps, dimers, compartments, directed motion.

Own implementations of the worlds of the AnDi-2 challenge (Muñoz-Gil et al. 2024; andi-datasets'
``models_phenom``), vectorised over tracks, plus directed motion with a drift velocity. Motion
between changes is fractional Brownian motion (alpha per state, a fresh fBm after every change)
with per-axis step variance ``2 D`` (D in px^2/frame). Each simulator returns a
:class:`PhenomTracks` with per-frame labels in the forward convention (the label at frame t
describes the motion t -> t+1, the last frame repeats the one before it, a change point c is the
first frame of the new segment) and AnDi-2 state classes: 0 immobile, 1 confined, 2 free,
3 directed. Optional motion blur (:func:`napari_step.simulate.blur_steps`) and localisation
noise are applied last; ``true_positions`` keeps the path without them.

The spatial models (:func:`immobile_traps`, :func:`confinement`, :func:`dimerisation`) live in
:mod:`napari_step.simulate.phenom_spatial`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._common import RngLike, as_rng, check_dim, repeat_last
from ._increments import fgn_segments, unit_vectors
from .acquisition import add_localisation_noise, blur_steps

__all__ = [
    "STATES",
    "IMMOBILE",
    "CONFINED",
    "FREE",
    "DIRECTED",
    "ALPHA_DIRECTED",
    "PhenomTracks",
    "label_changepoints",
    "single_state",
    "multi_state",
]

STATES = ("immobile", "confined", "free", "directed")  # AnDi-2 class numbers index this
IMMOBILE, CONFINED, FREE, DIRECTED = range(4)
ALPHA_DIRECTED = 1.9  # andi-datasets calls fBm with alpha >= 1.9 directed


@dataclass
class PhenomTracks:
    """Tracks of a phenomenological model with per-frame labels (forward convention).

    Attributes
    ----------
    positions : ndarray, shape (N, T, dim)
        Recorded positions in px (with motion blur and localisation noise if asked for).
    d : ndarray, shape (N, T)
        Diffusion coefficient in px^2/frame (0 while immobile).
    alpha : ndarray, shape (N, T)
        Anomalous exponent (0 while immobile).
    state : ndarray of int, shape (N, T)
        AnDi-2 class: 0 immobile, 1 confined, 2 free, 3 directed.
    changepoints : list of ndarray
        Per track, the frames where any label changes (first frame of a new segment).
    true_positions : ndarray, shape (N, T, dim)
        Positions without blur and noise, px.
    info : dict
        Model details (e.g. trap or compartment centres, the field of each track).
    """

    positions: np.ndarray
    d: np.ndarray
    alpha: np.ndarray
    state: np.ndarray
    changepoints: list
    true_positions: np.ndarray
    info: dict = field(default_factory=dict)


def label_changepoints(*labels: np.ndarray) -> list:
    """Change points of per-frame labels (forward convention).

    Parameters
    ----------
    *labels : ndarray, shape (N, T)
        Per-frame label arrays (e.g. D, alpha, state).

    Returns
    -------
    list of ndarray
        Per track, the frames c where any label differs from frame c - 1.
    """
    changed = np.zeros(labels[0].shape[0:1] + (max(labels[0].shape[1] - 1, 0),), dtype=bool)
    for lab in labels:
        changed |= lab[:, 1:] != lab[:, :-1]
    return [np.flatnonzero(row) + 1 for row in changed]


def finish(path, d, alpha, state, exposure, sigma, rng, info=None) -> PhenomTracks:
    """Labels to the forward convention, then blur and noise: a :class:`PhenomTracks`.

    ``path`` (N, T + 1, dim) holds one frame more than recorded (the motion of the last frame).
    """
    d, alpha, state = (repeat_last(np.array(a)) for a in (d, alpha, state))
    true = path[:, :-1]
    blurred = true if np.all(np.asarray(exposure) == 0) else blur_steps(path, d, exposure, rng)
    recorded = (
        blurred if np.all(np.asarray(sigma) == 0) else add_localisation_noise(blurred, sigma, rng)
    )
    cps = label_changepoints(d, alpha, state)
    return PhenomTracks(recorded, d, alpha, state.astype(int), cps, true, info or {})


def per_track(value, n: int, k: int, name: str) -> np.ndarray:
    """A scalar, (k,) or (n, k) parameter as an (n, k) float array."""
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0 or (arr.ndim == 1 and arr.size == k):
        return np.broadcast_to(arr, (n, k)).copy()
    if arr.ndim == 1 and k == 1 and arr.size == n:
        return arr[:, None].copy()
    if arr.shape == (n, k):
        return arr.copy()
    raise ValueError(
        f"{name} must be a scalar, {k} values (one per state) or ({n}, {k}), got shape {arr.shape}"
    )


def check_motion(d: np.ndarray, alpha: np.ndarray) -> None:
    """D >= 0 and alpha in (0, 2) wherever D > 0."""
    if (d < 0).any() or not np.isfinite(d).all():
        raise ValueError("D must be finite and >= 0 px^2/frame")
    moving = d > 0
    if ((alpha[moving] <= 0) | (alpha[moving] >= 2)).any():
        raise ValueError("alpha must lie in (0, 2) for every state with D > 0")


def state_class(d: np.ndarray, alpha: np.ndarray, speed: np.ndarray) -> np.ndarray:
    """AnDi-2 class of (track, state) parameters: immobile, directed or free."""
    directed = (speed > 0) | (alpha >= ALPHA_DIRECTED)
    return np.where((d == 0) & (speed == 0), IMMOBILE, np.where(directed, DIRECTED, FREE))


def _transition_matrices(transition, n: int, k: int) -> np.ndarray:
    """(n, k, k) row-stochastic matrices from a switching probability or matrices."""
    m = np.asarray(transition, dtype=float)
    if m.ndim == 0:
        if not 0 <= m <= 1:
            raise ValueError(f"switching probability must lie in [0, 1], not {m}")
        off = m / max(k - 1, 1) if k > 1 else 0.0
        m = np.full((k, k), off) + np.eye(k) * ((1 - m if k > 1 else 1.0) - off)
    if m.shape == (k, k):
        m = np.broadcast_to(m, (n, k, k))
    if m.shape != (n, k, k) or (m < 0).any() or not np.allclose(m.sum(-1), 1):
        raise ValueError(
            f"transition must be a probability, a ({k}, {k}) or ({n}, {k}, {k}) "
            "row-stochastic matrix"
        )
    return m


def _markov_states(m: np.ndarray, initial, n_frames: int, rng) -> np.ndarray:
    """(n, T) state sequences; state[t] is drawn from state[t - 1]; the last repeats."""
    n, k, _ = m.shape
    p0 = np.full(k, 1.0 / k) if initial is None else np.asarray(initial, float)
    if p0.shape != (k,) or (p0 < 0).any() or not np.isclose(p0.sum(), 1):
        raise ValueError(f"initial must be {k} probabilities summing to 1")
    states = np.empty((n, n_frames), dtype=int)
    states[:, 0] = rng.choice(k, size=n, p=p0)
    cum = np.cumsum(m, axis=2)
    rows = np.arange(n)
    u = rng.uniform(size=(n, n_frames))
    for t in range(1, n_frames):
        states[:, t] = np.minimum((u[:, t, None] > cum[rows, states[:, t - 1]]).sum(1), k - 1)
    return repeat_last(states)


def _segment_steps(states, d, alpha, speed, dim, rng) -> np.ndarray:
    """Steps (n, T, dim): a fresh fBm (and drift direction) for every run of one state."""
    n, t = states.shape
    starts = np.ones((n, t), dtype=bool)
    starts[:, 1:] = states[:, 1:] != states[:, :-1]
    seg_of_frame = np.cumsum(starts.ravel()) - 1
    seg_track = np.repeat(np.arange(n), t)[starts.ravel()]
    seg_state = states.ravel()[starts.ravel()]
    lengths = np.bincount(seg_of_frame)
    seg_alpha = alpha[seg_track, seg_state]
    seg_alpha = np.where(d[seg_track, seg_state] > 0, seg_alpha, 1.0)
    unit = fgn_segments(seg_alpha, lengths, dim, rng)
    rows = np.repeat(np.arange(n), t)
    scale = np.sqrt(2.0 * d[rows, states.ravel()])[:, None]
    drift = unit_vectors((lengths.size,), dim, rng) * speed[seg_track, seg_state][:, None]
    return (scale * unit + drift[seg_of_frame]).reshape(n, t, dim)


def multi_state(
    n_tracks: int,
    n_frames: int = 200,
    d: float | np.ndarray = (1.0, 0.1),
    alpha: float | np.ndarray = 1.0,
    speed: float | np.ndarray = 0.0,
    transition: float | np.ndarray = 0.01,
    initial: np.ndarray | None = None,
    dim: int = 2,
    exposure: float | np.ndarray = 0.0,
    sigma: float | np.ndarray = 0.0,
    rng: RngLike = None,
) -> PhenomTracks:
    """Markov switching between K diffusive states (AnDi-2 ``multi_state``).

    The number of states K is the length of ``d`` (last axis). A state with D = 0 and no drift is
    immobile (only the noise moves the spot), one with a drift or alpha >= 1.9 is directed, the
    others are free.

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    d : array_like, shape (K,) or (N, K)
        Diffusion coefficient of each state (per track), px^2/frame.
    alpha : float or array_like, shape (K,) or (N, K)
        Anomalous exponent of each state, in (0, 2) (fBm).
    speed : float or array_like, shape (K,) or (N, K)
        Drift speed of each state in px/frame, in a random direction per visit of the state.
    transition : float or array_like, shape (K, K) or (N, K, K)
        Switching probability per frame (to any other state, uniformly) or row-stochastic
        transition matrices (row = state at frame t - 1, column = state at frame t).
    initial : array_like, shape (K,), optional
        Probabilities of the first state (default: uniform, as andi-datasets).
    dim : int
        Spatial dimension, 1, 2 or 3.
    exposure : float or array_like, shape (N,)
        Exposure fraction for motion blur, in [0, 1].
    sigma : float or array_like, shape (N,) or (N, T)
        Localisation noise std per axis, px.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    PhenomTracks
        Positions and per-frame labels; the true path starts at the origin.
    """
    rng = as_rng(rng)
    check_dim(dim)
    k = np.atleast_1d(np.asarray(d)).shape[-1]
    d = per_track(d, n_tracks, k, "d")
    alpha = per_track(alpha, n_tracks, k, "alpha")
    speed = per_track(speed, n_tracks, k, "speed")
    check_motion(d, alpha)
    if (speed < 0).any():
        raise ValueError("speed must be >= 0 px/frame")
    m = _transition_matrices(transition, n_tracks, k)
    s = _markov_states(m, initial, n_frames, rng)  # the last frame's step is for the blur
    steps = _segment_steps(s, d, alpha, speed, dim, rng)
    path = np.concatenate([np.zeros((n_tracks, 1, dim)), np.cumsum(steps, axis=1)], axis=1)
    rows = np.arange(n_tracks)[:, None]
    cls = state_class(d, alpha, speed)[rows, s]
    alpha_t = np.where(cls == IMMOBILE, 0.0, alpha[rows, s])
    return finish(
        path,
        d[rows, s],
        alpha_t,
        cls,
        exposure,
        sigma,
        rng,
        {"model": "multi_state", "markov_state": s},
    )


def single_state(
    n_tracks: int,
    n_frames: int = 200,
    d: float | np.ndarray = 1.0,
    alpha: float | np.ndarray = 1.0,
    speed: float | np.ndarray = 0.0,
    dim: int = 2,
    exposure: float | np.ndarray = 0.0,
    sigma: float | np.ndarray = 0.0,
    rng: RngLike = None,
) -> PhenomTracks:
    """One diffusive state per track (AnDi-2 ``single_state``), optionally directed.

    Parameters
    ----------
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    d : float or array_like, shape (N,)
        Diffusion coefficient, px^2/frame.
    alpha : float or array_like, shape (N,)
        Anomalous exponent in (0, 2).
    speed : float or array_like, shape (N,)
        Drift speed in px/frame (directed motion, random direction per track).
    dim : int
        Spatial dimension, 1, 2 or 3.
    exposure, sigma
        Motion blur and localisation noise, as in :func:`multi_state`.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    PhenomTracks
        Positions and per-frame labels (no change points).
    """
    res = multi_state(
        n_tracks,
        n_frames,
        per_track(d, n_tracks, 1, "d"),
        per_track(alpha, n_tracks, 1, "alpha"),
        per_track(speed, n_tracks, 1, "speed"),
        0.0,
        None,
        dim,
        exposure,
        sigma,
        rng,
    )
    res.info["model"] = "single_state"
    return res
