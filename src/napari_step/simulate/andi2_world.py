"""The AnDi-2 challenge's world: its five phenomenological models with its parameter draws.

:func:`andi2_like` simulates tracks the way andi-datasets' ``challenge_phenom_dataset`` draws
them with the challenge's defaults, using napari-step's own simulators: one experiment (one draw
of the model's parameters) per field of 50 particles in a 230.4 px box, per-track D and alpha
from truncated Gaussians around the experiment's values, localisation noise 0.12 px. Tracks keep
all their frames (the challenge also cuts them to a 128 px field of view, 20 frames or more).
"""

from __future__ import annotations

import numpy as np

from ._common import RngLike, as_rng
from .phenom_spatial import ANDI_BOX, confinement, dimerisation, immobile_traps
from .phenomenological import PhenomTracks, multi_state, single_state

__all__ = ["ANDI2_MODELS", "andi2_parameters", "andi2_like", "truncated_normal"]

ANDI2_MODELS = ("single_state", "multi_state", "immobile_traps", "dimerization", "confinement")
ANDI2_NOISE = 0.12  # px, localisation noise std per axis
PER_FIELD = 50


def truncated_normal(mean, std, lo: float, hi: float, rng) -> np.ndarray:
    """Truncated Gaussian draws, as andi-datasets' bounded ``gaussian``.

    Parameters
    ----------
    mean, std : array_like
        Mean and standard deviation of each draw (broadcast together).
    lo, hi : float
        Open interval the draws are redrawn into.
    rng : numpy.random.Generator
        Random generator.

    Returns
    -------
    ndarray
        One draw per entry of ``mean``.
    """
    mean = np.asarray(mean, dtype=float)
    std = np.broadcast_to(np.asarray(std, dtype=float), mean.shape)
    out = rng.normal(mean, std)
    bad = (out <= lo) | (out >= hi)
    while bad.any():
        out[bad] = rng.normal(mean[bad], std[bad])
        bad = (out <= lo) | (out >= hi)
    return out


def andi2_parameters(
    model: str, n_tracks: int, rng: RngLike = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-track (D, alpha) of each state, drawn as the challenge does.

    Parameters
    ----------
    model : str
        One of ``ANDI2_MODELS``.
    n_tracks : int
        Number of tracks; each field of 50 tracks is one experiment.
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    d, alpha : ndarray, shape (N, K)
        D in px^2/frame and alpha per state (K = 1 for single state and immobile traps, else 2:
        the fast state first).
    """
    rng = as_rng(rng)
    if model not in ANDI2_MODELS:
        raise ValueError(f"unknown AnDi-2 model {model!r}: use one of {list(ANDI2_MODELS)}")
    n_fields = -(-n_tracks // PER_FIELD)
    field_of = np.arange(n_tracks) // PER_FIELD
    if model in ("single_state", "immobile_traps"):
        d_mean = np.ones((n_fields, 1))
        a_mean = rng.uniform(0.5, 1.5, size=(n_fields, 1))
    else:
        fast = 1.0 + 0.01 * rng.standard_normal(n_fields)
        slow = fast * rng.uniform(size=n_fields) * 0.09 + 0.01
        a1 = rng.uniform(0.8, 1.2, size=n_fields)
        d_mean = np.stack([fast, slow], 1)
        a_mean = np.stack([a1, a1 - rng.uniform(0.2, 0.6, size=n_fields)], 1)
    d_mean, a_mean = d_mean[field_of], a_mean[field_of]
    d = truncated_normal(d_mean, np.sqrt(0.01 * d_mean), 1e-12, 1e6, rng)
    alpha = truncated_normal(a_mean, 0.1, 0.0, 1.999, rng)
    return d, alpha


def andi2_like(
    model: str,
    n_tracks: int,
    n_frames: int = 200,
    sigma: float | np.ndarray = ANDI2_NOISE,
    exposure: float | np.ndarray = 0.0,
    rng: RngLike = None,
) -> PhenomTracks:
    """Tracks of one AnDi-2 phenomenological model with the challenge's default parameters.

    Parameters
    ----------
    model : str
        One of ``ANDI2_MODELS`` (andi-datasets' names).
    n_tracks, n_frames : int
        Number of tracks and frames per track.
    sigma : float or array_like
        Localisation noise std per axis, px (the challenge: 0.12).
    exposure : float or array_like, shape (N,)
        Exposure fraction for motion blur (the challenge: 0).
    rng : numpy.random.Generator, int or None
        Random generator or seed.

    Returns
    -------
    PhenomTracks
        Positions and per-frame labels (forward convention).
    """
    rng = as_rng(rng)
    d, alpha = andi2_parameters(model, n_tracks, rng)
    acq = {"exposure": exposure, "sigma": sigma, "rng": rng}
    field = {"box": ANDI_BOX, "per_field": PER_FIELD}
    if model == "single_state":
        return single_state(n_tracks, n_frames, d[:, 0], alpha[:, 0], **acq)
    if model == "multi_state":
        return multi_state(n_tracks, n_frames, d, alpha, transition=0.01, **acq)
    if model == "immobile_traps":
        return immobile_traps(
            n_tracks,
            n_frames,
            d[:, 0],
            alpha[:, 0],
            n_traps=300,
            trap_radius=0.4,
            p_bind=1.0,
            p_unbind=0.01,
            **field,
            **acq,
        )
    if model == "dimerization":
        return dimerisation(
            n_tracks, n_frames, d, alpha, radius=0.6, p_bind=1.0, p_unbind=0.01, **field, **acq
        )
    return confinement(
        n_tracks,
        n_frames,
        d,
        alpha,
        n_compartments=30,
        radius=5.0,
        transmittance=0.1,
        **field,
        **acq,
    )
