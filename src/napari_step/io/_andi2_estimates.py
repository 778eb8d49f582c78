"""Per-segment AnDi-2 estimates: K by maximum likelihood, alpha shrunk toward a prior by length.

Used by :func:`napari_step.io.andi2.andi2_segments` (the ``--andi2`` output) and
``benchmarks/andi2.py``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["andi2_alpha", "segment_mle_k", "ALPHA_PRIOR", "ALPHA_PRIOR_DEFAULT"]

# alpha of a segment: the mean of STEP's per-frame alpha shrunk toward a prior mean with weight
# n / (n + n0) for n frames (posterior mean of a Gaussian prior whose variance is that of the
# mean over n0 frames); chosen on the project's own AnDi-2 simulators (napari_step.simulate.
# andi2_world, seed 11), not on the benchmark: MAE of free segments 0.144 -> 0.128, of confined
# ones 0.185 -> 0.146 (their intrinsic alpha is lower, the compartment walls lower it further)
ALPHA_PRIOR = {1: (0.8, 40.0)}  # state -> (prior mean, n0 frames)
ALPHA_PRIOR_DEFAULT = (1.0, 15.0)  # free, directed and unknown states: Brownian


def andi2_alpha(alpha, n_frames, state) -> np.ndarray:
    """AnDi-2 alpha of segments from the mean per-frame alpha, shrunk toward a prior by length.

    Short segments' mean alpha is noisy: it is pulled toward the prior mean of the segment's
    state (``ALPHA_PRIOR``: 0.8 for confined segments, else 1) with weight n / (n + n0), i.e. the
    posterior mean under a Gaussian prior; immobile segments (state 0) get 0 as the challenge
    labels them; the result is clipped to [0, 2].

    Parameters
    ----------
    alpha : array_like
        Mean per-frame alpha of each segment (NaN: unknown, gives the prior mean).
    n_frames : array_like
        Frames of each segment.
    state : array_like of int
        AnDi-2 state of each segment (0 immobile, 1 confined, 2 free, 3 directed).

    Returns
    -------
    ndarray
        alpha per segment.
    """
    alpha = np.asarray(alpha, dtype=float)
    n = np.asarray(n_frames, dtype=float)
    state = np.asarray(state).astype(int)
    mean = np.full(alpha.shape, ALPHA_PRIOR_DEFAULT[0])
    n0 = np.full(alpha.shape, ALPHA_PRIOR_DEFAULT[1])
    for st, (m, k) in ALPHA_PRIOR.items():
        mean[state == st], n0[state == st] = m, k
    w = np.where(np.isfinite(alpha), n / (n + n0), 0.0)
    out = mean + w * (np.nan_to_num(alpha, nan=1.0) - mean)
    return np.where(state == 0, 0.0, np.clip(out, 0.0, 2.0))


def segment_mle_k(positions, bounds) -> np.ndarray:
    """Maximum-likelihood K (px^2/frame) of each segment of one track.

    K = mean squared step / (2 dim) over the steps leaving the segment's frames: the AnDi-2 K is
    the step-variance coefficient of (possibly anomalous) motion, which this reads whatever
    alpha is (up to the localisation variance, small against the mobile K the metric weighs);
    a noise correction from the lag-1 step covariance would take anomalous motion's correlated
    increments for noise.

    Parameters
    ----------
    positions : array_like, shape (T, dim)
        One gap-free track, px.
    bounds : sequence of (start, stop)
        Half-open frame ranges of the segments.

    Returns
    -------
    ndarray
        K per segment; NaN for a segment without a step.
    """
    pos = np.asarray(positions, dtype=float)
    r = ((pos[1:] - pos[:-1]) ** 2).sum(axis=1)
    out = []
    for a, b in bounds:
        steps = r[a : min(b, len(r))]
        out.append(steps.mean() / (2 * pos.shape[1]) if steps.size else np.nan)
    return np.asarray(out, dtype=float)
