"""The "acquired" training world: Brownian tracks as a camera records them.

Every track is Brownian motion whose per-frame diffusion coefficient follows one of several
regimes, observed through a camera's motion blur and localisation noise:

* regimes: 0-4 change points (as the original STEP world), Markov switching between two or three
  states with dwell times down to a few frames, immobile periods (D 1e-4..1e-3 of the mobile D, so
  that only the localisation noise moves the spot) and, on top of any of them, smooth drifts of
  log10 D (:func:`napari_step.simulate.smooth_log_d_drift`);
* motion blur: the camera reports the mean position over an exposure lasting a fraction ``f`` of
  the frame interval, starting at the frame time (``f = 0``: an instantaneous snapshot; ``f = 1``:
  continuous illumination, blur coefficient R = f / 6);
* frame blending (a share of tracks, off by default): each stored frame mixes in the one or two
  frames before it (:func:`napari_step.simulate.blend_frames`), as video codecs and frame-rate
  conversion do, so displacements correlate over more than one frame;
* localisation noise: Gaussian, per axis, with signal-to-noise ratio ``sigma^2 / (D_ref dt)``
  log-uniform over a wide range (``D_ref`` the smallest mobile D of the track), constant or
  drifting along the track, absent on some tracks.

Labels follow the forward convention: ``log10 d[:, t]`` is the coefficient of the motion from frame
t to t+1 and the last frame repeats the one before it. The exposure of frame t integrates the motion
of interval t; the camera is :func:`napari_step.simulate.brownian_acquired` (exact blur, no
sub-steps).
"""

from __future__ import annotations

import numpy as np

from .simulate import (
    add_localisation_noise,
    blend_frames,
    brownian_acquired,
    brownian_changepoints,
    smooth_log_d_drift,
)

__all__ = ["acquired_tracks", "markov_d", "AcquiredWorld"]


class AcquiredWorld:
    """Parameters of the acquired world (defaults: the fine-tune of the shipped 2-D D model).

    Attributes hold ranges as (low, high); D is in px^2/frame, lengths in frames.
    """

    def __init__(self, **kw):
        self.d_range = (1e-3, 1e3)
        self.p_markov = 0.45  # share of Markov-switching tracks; the rest have change points
        self.p_three_states = 0.35
        self.dwell_range = (3.0, 100.0)  # mean dwell time per state, log-uniform
        self.ratio_range = (2.0, 100.0)  # D ratio between neighbouring Markov states
        self.p_immobile = 0.25  # tracks with an immobile state / segment
        self.immobile_range = (1e-4, 1e-3)  # immobile D relative to the mobile D
        self.p_drift = 0.2
        self.drift_decades = 2.0
        self.p_no_blur = 1 / 3
        self.p_noise_free = 0.15
        self.p_blend = 0.0  # share of tracks with frame blending (blend_frames)
        self.blend_max = 0.4  # weights of the 1 or 2 earlier frames, uniform in [0, blend_max]
        self.snr_range = (1e-3, 10.0)  # sigma^2 / (D_ref dt)
        self.p_noise_drift = 0.25
        self.noise_drift_decades = 1.0  # total change of sigma^2 along a drifting track
        self.max_changepoints = 4
        self.min_segment = 10
        for k, v in kw.items():
            if not hasattr(self, k):
                raise TypeError(f"unknown acquired-world parameter {k!r}")
            setattr(self, k, v)

    def describe(self) -> dict:
        """The parameters as plain data (for the model card and the training record)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(self).items()}


def _log_uniform(rng, lo_hi, size):
    lo, hi = np.log10(lo_hi[0]), np.log10(lo_hi[1])
    return 10 ** rng.uniform(lo, hi, size=size)


def markov_d(n_tracks: int, n_frames: int, world: AcquiredWorld, rng) -> np.ndarray:
    """Per-frame D (N, T) of tracks switching between 2 or 3 Markov states.

    Neighbouring states differ by a factor drawn from ``world.ratio_range``; each state's mean
    dwell time is log-uniform in ``world.dwell_range``; the next state is drawn uniformly among
    the others. The initial state is drawn from the states uniformly.
    """
    n_states = np.where(rng.uniform(size=n_tracks) < world.p_three_states, 3, 2)
    ratios = _log_uniform(rng, world.ratio_range, (n_tracks, 2))
    log_top = rng.uniform(np.log10(world.d_range[0]), np.log10(world.d_range[1]), n_tracks)
    logd = np.stack(
        [log_top, log_top - np.log10(ratios[:, 0]), log_top - np.log10(ratios[:, :2]).sum(1)],
        axis=1,
    )
    leave = 1.0 / _log_uniform(rng, world.dwell_range, (n_tracks, 3))
    state = rng.integers(0, n_states)
    states = np.empty((n_tracks, n_frames), dtype=int)
    for t in range(n_frames):
        states[:, t] = state
        jump = rng.uniform(size=n_tracks) < leave[np.arange(n_tracks), state]
        step = rng.integers(1, n_states)  # 1 .. n_states-1: a different state
        state = np.where(jump, (state + step) % n_states, state)
    return 10 ** np.take_along_axis(logd, states, axis=1)


def _make_immobile(d: np.ndarray, world: AcquiredWorld, rng) -> tuple[np.ndarray, np.ndarray]:
    """Turn the slowest level of a share of tracks immobile; returns (d, immobile mask)."""
    d = d.copy()
    mask = np.zeros(d.shape, dtype=bool)
    pick = rng.uniform(size=len(d)) < world.p_immobile
    levels_min = d.min(axis=1, keepdims=True)
    multi = d.max(axis=1) > levels_min[:, 0] * (1 + 1e-9)  # needs a mobile level left
    pick &= multi
    mask[pick] = d[pick] <= levels_min[pick] * (1 + 1e-9)
    rel = _log_uniform(rng, world.immobile_range, len(d))[:, None]
    mobile_min = np.where(mask, np.inf, d).min(axis=1, keepdims=True)
    d = np.where(mask, mobile_min * rel, d)
    return d, mask


def _noise_sigma(d, immobile, n_frames, world: AcquiredWorld, rng) -> np.ndarray:
    """Per-frame localisation noise std (N, T) in px (0 on noise-free tracks)."""
    n = len(d)
    d_ref = np.where(immobile, np.inf, d).min(axis=1)
    snr = _log_uniform(rng, world.snr_range, n)
    var = (snr * d_ref)[:, None] * np.ones((1, n_frames))
    drifting = rng.uniform(size=n) < world.p_noise_drift
    if drifting.any():
        ramp = np.linspace(-0.5, 0.5, n_frames)[None, :]
        amp = rng.uniform(-1, 1, size=(drifting.sum(), 1)) * world.noise_drift_decades
        var[drifting] *= 10 ** (amp * ramp)
    var[rng.uniform(size=n) < world.p_noise_free] = 0.0
    return np.sqrt(var)


def _changepoint_d(n: int, n_frames: int, world: AcquiredWorld, rng) -> np.ndarray:
    k_max = min(world.max_changepoints, n_frames // world.min_segment - 1)
    k_lo = 1 if k_max >= 1 and n_frames >= 50 else 0
    sim = brownian_changepoints(
        n, n_frames, 1, (k_lo, max(k_max, 0)), world.min_segment, world.d_range, rng=rng
    )
    return sim.d


def acquired_tracks(
    n_tracks: int, n_frames: int, dim: int, world: AcquiredWorld | None = None, rng=None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Simulated camera tracks of the acquired world.

    Parameters
    ----------
    n_tracks, n_frames, dim : int
        Number of tracks, frames per track, spatial dimension.
    world : AcquiredWorld, optional
        The world's parameters (defaults if None).
    rng : numpy.random.Generator or int, optional

    Returns
    -------
    positions : ndarray (N, T, dim)
        Observed positions, px, rescaled per track so the smallest mobile D is 1 px^2/frame.
    d : ndarray (N, T)
        Forward per-frame D of the rescaled tracks, px^2/frame.
    info : dict
        Per-track ``exposure`` (fraction of the frame), ``snr`` (mean sigma^2 / D_ref),
        ``markov`` (bool), ``immobile`` (bool: the track has immobile frames) and ``blend``
        ((N, 2) frame-blending weights, 0 where none).
    """
    world = world or AcquiredWorld()
    rng = np.random.default_rng(rng)
    markov = rng.uniform(size=n_tracks) < world.p_markov
    d = np.empty((n_tracks, n_frames))
    if markov.any():
        d[markov] = markov_d(int(markov.sum()), n_frames, world, rng)
    if (~markov).any():
        d[~markov] = _changepoint_d(int((~markov).sum()), n_frames, world, rng)
    d, immobile = _make_immobile(d, world, rng)
    drifting = rng.uniform(size=n_tracks) < world.p_drift
    if drifting.any():
        d[drifting] *= 10 ** smooth_log_d_drift(
            int(drifting.sum()), n_frames, world.drift_decades, rng
        )
    d[:, -1] = d[:, -2]  # forward convention: the last frame repeats the one before it
    immobile[:, -1] = immobile[:, -2]
    # a short track whose only mobile frame was the last one is all immobile now: it has no mobile
    # D to scale by (D would become 0 and log10 D -inf), so it counts as a slow mobile track
    immobile[immobile.all(axis=1)] = False
    d_ref = np.where(immobile, np.inf, d).min(axis=1, keepdims=True)
    d = d / d_ref  # rescale: the model is scale-equivariant, this keeps float32 comfortable
    exposure = np.where(
        rng.uniform(size=n_tracks) < world.p_no_blur, 0.0, 1.0 - rng.uniform(size=n_tracks)
    )  # (0, 1]
    sigma = _noise_sigma(d, immobile, n_frames, world, rng)
    blend = np.zeros((n_tracks, 2))
    if world.p_blend > 0:  # blend the recorded frames, then localise them (noise on top)
        pos = brownian_acquired(d, dim, exposure, 0.0, rng=rng)
        blend = rng.uniform(0, world.blend_max, size=(n_tracks, 2))
        blend[rng.uniform(size=n_tracks) < 0.5, 1] = 0.0
        blend[rng.uniform(size=n_tracks) >= world.p_blend] = 0.0
        pos = add_localisation_noise(blend_frames(pos, blend), sigma, rng)
    else:
        pos = brownian_acquired(d, dim, exposure, sigma, rng=rng)
    snr = (sigma**2).mean(axis=1)  # d_ref is 1 after rescaling
    info = {
        "exposure": exposure,
        "snr": snr,
        "markov": markov,
        "immobile": immobile.any(axis=1),
        "blend": blend,
    }
    return pos, d, info
