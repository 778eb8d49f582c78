"""Does the movie's frame rate carry the particles' motion? A check of the steps of all tracks.

Camera physics (motion blur, white localisation noise) correlates a track's steps at lag 1 only:
from lag 2 on, Brownian steps are uncorrelated whatever the exposure and the noise. Compressed
video (H.264/MPEG B- and P-frames interpolate motion between reference frames), frame-rate
conversion or temporally smoothed localisations correlate steps over several frames instead: the
steps of one frame are then damped, a per-frame D reads low (on trackpy's bulk-water movie by
~25 %), and only steps over a few frames carry the true motion. The acquisition is shared by every
track of a movie, so the check pools all of them.

:func:`check_frame_step` finds the smallest frame step k at which the steps are again those of
camera physics: positive correlation beyond lag 1 at frame step 1, none beyond lag 1 between
k-frame steps, and a D that no longer changes from k to 2k and 4k frames, measured well enough
to tell. Anomalous motion (alpha != 1) is
self-similar, so no frame step removes its correlation and the check answers 1 for it; it answers
1 too when the data are too few to tell. :func:`napari_step.predict.predict_d` with
``frame_step=k`` then reads STEP on every k-th frame (all k phases) and gives D per frame.

:func:`choose_d_model` reads the other half of the camera's signature, the lag-1 correlation of
the steps the network will read (as the cosine between consecutive steps, blind to how D
changes): motion blur makes it positive, localisation noise negative, and both bias a reading
that assumes instantaneous, exact positions (the mean squared step reads D / (1 + 2 rho1)).
Where it is measurably away from 0 the "acquired" model
(trained on blurred, noisy tracks) reads D; where the tracks look like exact instantaneous
positions (simulations, or blur and noise that happen to cancel) the default model, which is
the more precise one there, does.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "DModelChoice",
    "FrameStepCheck",
    "check_frame_step",
    "choose_d_model",
    "step_autocorrelation",
]

CANDIDATE_STEPS = (2, 3, 4, 5, 6, 8)
MAX_LAG = 6
MIN_Z = 5.0  # significance of the correlation beyond lag 1 before anything is changed
MIN_EXCESS = 0.03  # and its size (sum of the autocorrelation at lags 2..4)
# choose_d_model: the mean cosine between consecutive steps (or its local rms) must be at least
# this far from 0 (about a lag-1 step correlation of 0.03, a bias of 1 / (1 + 2 rho1) - 1 of
# about 6 % on a reading that ignores blur and noise) and this many standard errors away from it
# before the acquired model is chosen; windows of CAMERA_WINDOW steps for the local rms
CAMERA_MIN_COS = 0.025
CAMERA_MIN_Z = 3.0
CAMERA_WINDOW = 10
ACQUIRED_MODEL = "acquired"


class _Pooled:
    """All positions of all tracks in one (M, dim) array, stacked once: ``ids`` gives each row's
    track, ``lengths`` each track's length. Subsets are row masks of whole tracks, so rows of one
    track stay contiguous and neighbouring tracks keep distinct ids."""

    def __init__(self, tracks):
        self.lengths = np.array([len(t) for t in tracks], dtype=np.int64)
        self.pos = np.concatenate([np.asarray(t, float) for t in tracks]) if len(tracks) else None
        self.ids = np.repeat(np.arange(len(tracks)), self.lengths)

    def rows(self, min_length: int, group: tuple[int, int] | None = None):
        """(pos, ids) of the tracks longer than ``min_length`` (of group g of n: id % n == g)."""
        keep = self.lengths > min_length
        if group is not None:
            keep &= np.arange(self.lengths.size) % group[1] == group[0]
        if self.pos is None or not keep.any():
            return None, None
        if keep.all():
            return self.pos, self.ids
        r = keep[self.ids]
        return self.pos[r], self.ids[r]


def _lagged_sums(pos: np.ndarray, ids: np.ndarray, k: int, max_lag: int):
    """Sums and counts of products of k-frame steps at lags 0..max_lag (in k-frame steps), over
    every start frame of every track (all k phases pooled), vectorised.

    The track's mean step is kept: removing it would bias every autocorrelation by about
    -1/length; a drift (directed motion) correlates all lags and grows with k, so the check never
    mistakes it for an artefact.
    """
    d = pos[k:] - pos[:-k]
    m = len(d)
    num = np.zeros(max_lag + 1)
    cnt = np.zeros(max_lag + 1)
    for lag in range(max_lag + 1):
        shift = lag * k
        if shift >= m:
            break
        ok = ids[: m - shift] == ids[shift + k :]  # both steps inside one track
        prod = d[: m - shift][ok] * d[shift:][ok]
        num[lag] = prod.sum()
        cnt[lag] = prod.size
    return num, cnt


def _autocorrelation(pooled: _Pooled, max_lag: int, k: int) -> tuple[np.ndarray, int]:
    pos, ids = pooled.rows(k)
    if pos is None:
        return np.full(max_lag, np.nan), 0
    num, cnt = _lagged_sums(pos, ids, k, max_lag)
    if cnt[0] == 0 or num[0] <= 0:
        return np.full(max_lag, np.nan), 0
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (num[1:] / cnt[1:]) / (num[0] / cnt[0])
    # products at one lag overlap k times across phases: n counts independent ones
    return rho, int(cnt[1] / k)


def step_autocorrelation(tracks, max_lag: int = MAX_LAG, k: int = 1) -> tuple[np.ndarray, int]:
    """Pooled autocorrelation of the k-frame steps of every track at lags 1..max_lag (in steps
    of k frames), and the number of step products at lag 1 (standard error about 1/sqrt(n)).

    Each step axis counts as one series; every start frame counts (all k phases).
    """
    return _autocorrelation(_Pooled(list(tracks)), max_lag, k)


def _cve_d(pooled: _Pooled, k: int, group: tuple[int, int] | None = None) -> float:
    """Covariance-estimator D (position^2 per frame) from k-frame steps, all tracks (of a
    group) pooled."""
    pos, ids = pooled.rows(2 * k, group)
    if pos is None:
        return np.nan
    num, cnt = _lagged_sums(pos, ids, k, 1)
    if not cnt[1]:
        return np.nan
    return (num[0] / cnt[0] + 2 * num[1] / cnt[1]) / (2 * k)


def _plateau(pooled: _Pooled, k: int, n_groups: int = 8) -> str:
    """Do the D of k-, 2k- and 4k-frame steps agree (within 10 %), measured well enough to
    tell (standard error of log(D_4k / D_k) across groups of tracks < 0.05)? A finite-memory
    artefact gives a plateau; anomalous motion a D that keeps changing with the step.
    Returns "flat", "changing" or "uncertain"."""
    d = np.array([_cve_d(pooled, j) for j in (k, 2 * k, 4 * k)])
    if not (np.isfinite(d).all() and d[0] > 0):
        return "uncertain"
    ratios = []
    for g in range(n_groups):
        lo, hi = _cve_d(pooled, k, (g, n_groups)), _cve_d(pooled, 4 * k, (g, n_groups))
        if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0 and hi > 0):
            return "uncertain"
        ratios.append(np.log(hi / lo))
    if float(np.std(ratios, ddof=1) / np.sqrt(n_groups)) >= 0.05:
        return "uncertain"
    return "changing" if np.any(np.abs(d / d[0] - 1) > 0.1) else "flat"


@dataclass
class FrameStepCheck:
    """What :func:`check_frame_step` found."""

    frame_step: int  # frames per step at which the steps carry the motion (1: the frame rate)
    autocorrelation: np.ndarray  # pooled step autocorrelation at lags 1..6, frame step 1
    n_products: int  # step products behind it (standard error ~ 1 / sqrt(n_products))
    d_ratio: float  # CVE D at the chosen frame step / at frame step 1
    message: str = ""
    details: dict = field(default_factory=dict)


def _excess(rho: np.ndarray) -> float:
    return float(np.nansum(rho[1:4]))


def check_frame_step(tracks, candidates=CANDIDATE_STEPS) -> FrameStepCheck:
    """The frame step at which the tracks' steps behave as camera physics allows (see module).

    Parameters
    ----------
    tracks : list of (T_i, dim) arrays
        Gap-free positions (any unit), all from one acquisition.
    candidates : sequence of int
        Frame steps tried, smallest first.

    Returns
    -------
    FrameStepCheck
        ``frame_step`` is 1 unless the correlation beyond lag 1 is significant (z >= 5 and the
        autocorrelation at lags 2..4 sums to >= 0.03) and some candidate k removes it with a D
        that stays flat from k to 4k frames (:func:`_plateau`); ``message`` says what was
        found, for the user.
    """
    pooled = _Pooled([np.asarray(t, float) for t in tracks if len(t) >= 4])
    rho, n = _autocorrelation(pooled, MAX_LAG, 1)
    base = FrameStepCheck(1, rho, n, 1.0)
    if n == 0:
        return base
    excess = _excess(rho)
    z = excess / np.sqrt(3.0 / n)
    base.details = {"excess": excess, "z": z}
    if excess < MIN_EXCESS or z < MIN_Z:
        return base
    d1 = _cve_d(pooled, 1)
    if not np.isfinite(d1) or d1 <= 0:
        return base
    uncertain = False
    for k in candidates:
        rho_k, n_k = _autocorrelation(pooled, 4, k)
        if n_k < 200:
            uncertain = True
            break
        excess_k = _excess(rho_k)
        # what remains must be insignificant (2 standard errors) and small
        if excess_k > max(2.0 * np.sqrt(3.0 / n_k), MIN_EXCESS):
            continue
        plateau = _plateau(pooled, k)
        uncertain |= plateau == "uncertain"
        if plateau != "flat":
            continue
        dk = _cve_d(pooled, k)
        ratio = dk / d1
        msg = (
            f"steps are correlated over {k} frames (autocorrelation at lags 2-4: {excess:.2f}, "
            "where blur and noise give 0): typical of compressed video or smoothed "
            f"localisations; D is read on {k}-frame steps (x{ratio:.2f} the one-frame D)"
        )
        return FrameStepCheck(k, rho, n, ratio, msg, {**base.details, "excess_k": excess_k})
    if uncertain:
        base.message = (
            f"steps are correlated beyond one frame (autocorrelation at lags 2-4: {excess:.2f}, "
            "where blur and noise give 0), but too few to tell an acquisition artefact "
            "(compressed video) from anomalous motion; D is read per frame (frame_step / "
            "--frame-step k reads it on k-frame steps)"
        )
    else:
        base.message = (
            f"steps are correlated beyond one frame (autocorrelation at lags 2-4: "
            f"{excess:.2f}) at every frame step tried: anomalous or directed motion or a common "
            "drift (subtract it: drift='ensemble', --subtract-drift, or 'subtract common drift' "
            "in the STEP widget), not an acquisition artefact; D is read per frame"
        )
    return base


@dataclass
class DModelChoice:
    """What :func:`choose_d_model` found."""

    model: str  # "default" or "acquired"
    persistence: float  # mean cosine between consecutive steps, all tracks pooled (NaN: none)
    stderr: float  # its standard error (exact for independent isotropic steps)
    local: float  # rms of the local mean cosine over windows of CAMERA_WINDOW steps
    local_z: float  # significance of that local signature
    n_tracks: int
    message: str = ""


def _turning_cosines(tracks, frame_step: int) -> tuple[list[np.ndarray], int]:
    """Per track, the cosine between consecutive (chained k-frame) steps, those STEP reads (the
    sign of their product in 1-D); steps of length 0 give none."""
    from .predict import _chained_phases  # the same steps the network reads

    out, dim = [], 2
    for t in tracks:
        t = np.asarray(t, float)
        if t.ndim != 2 or len(t) < 2 * frame_step + 3 or not np.isfinite(t).all():
            continue
        dim = t.shape[1]
        walk = _chained_phases(t, frame_step)[0] if frame_step > 1 else t
        dx = np.diff(walk, axis=0)
        norm = np.sqrt((dx**2).sum(axis=1))
        ok = (norm[1:] > 0) & (norm[:-1] > 0)
        cos = (dx[1:] * dx[:-1]).sum(axis=1)[ok] / (norm[1:] * norm[:-1])[ok]
        if len(cos):
            out.append(cos)
    return out, dim


def _local_signature(cosines: list[np.ndarray], dim: int) -> tuple[float, float]:
    """(rms local mean cosine, z) over windows of CAMERA_WINDOW consecutive cosines: blur in
    the fast parts of tracks and noise in their slow parts correlate steps with opposite signs,
    which a pooled mean can cancel; the windows' squared sums cannot. Under independent
    isotropic steps each cosine has mean 0 and variance 1 / dim whatever the step lengths, so
    the scaled squared window sums average exactly 1."""
    n = CAMERA_WINDOW
    sums = [c[: len(c) // n * n].reshape(-1, n).sum(axis=1) for c in cosines if len(c) >= n]
    if not sums:
        return np.nan, np.nan
    terms = np.concatenate(sums) ** 2 * dim / n  # mean 1 for independent isotropic steps
    if len(terms) < 2:
        return np.nan, np.nan
    excess = float(terms.mean() - 1.0)
    z = excess / float(terms.std(ddof=1) / np.sqrt(len(terms)))
    return float(np.sqrt(max(excess, 0.0) / (dim * n))), z


def choose_d_model(tracks, frame_step: int = 1) -> DModelChoice:
    """The shipped 2-D D model for these tracks: "acquired" where their steps carry the camera's
    signature (motion blur, localisation noise), "default" where they look like exact,
    instantaneous positions or are too few to tell.

    The signature is read from the cosines between consecutive steps: for independent isotropic
    steps they have mean 0 and variance 1 / dim whatever the steps' lengths (so changes of D
    along or between tracks do not matter); blur makes them positive (full exposure: about
    +0.2), localisation noise negative (sigma^2 = D dt: about -0.2).

    Parameters
    ----------
    tracks : list of (T_i, dim) arrays
        Gap-free positions (any unit), all from one acquisition (a movie, a file, a layer).
    frame_step : int
        The frame step STEP will read them at (:func:`check_frame_step`).

    Returns
    -------
    DModelChoice
        ``model`` is "acquired" when the mean cosine over all tracks, or its local rms over
        windows of ``CAMERA_WINDOW`` steps (blur and noise in different parts of the tracks),
        is at least ``CAMERA_MIN_COS`` and ``CAMERA_MIN_Z`` standard errors from 0 (1-D tracks:
        always "default", the only 1-D D model); ``message`` says what was found, for the user.
    """
    cosines, dim = _turning_cosines(tracks, int(frame_step))
    n = len(cosines)
    if not n:
        return DModelChoice(
            "default", np.nan, np.nan, np.nan, np.nan, 0, "no steps to read the camera from"
        )
    allc = np.concatenate(cosines)
    mean, se = float(allc.mean()), float(np.sqrt(1.0 / dim / len(allc)))
    local, local_z = _local_signature(cosines, dim)
    pooled = abs(mean) >= CAMERA_MIN_COS and abs(mean) >= CAMERA_MIN_Z * se
    mixed = np.isfinite(local) and local >= CAMERA_MIN_COS and local_z >= CAMERA_MIN_Z
    found = f"mean cosine between consecutive steps {mean:+.3f} +/- {se:.3f}"
    if np.isfinite(local):
        found += f", local rms {local:.3f}"
    found += f"; {n} tracks"
    if pooled:
        what = "motion blur" if mean > 0 else "localisation noise"
    else:
        what = "motion blur and localisation noise in different parts of the tracks"
    if (pooled or mixed) and dim >= 2:
        msg = f"{what} shows in the steps ({found}): D is read by the 'acquired' model"
        return DModelChoice(ACQUIRED_MODEL, mean, se, local, local_z, n, msg)
    if pooled or mixed:
        msg = (
            f"{what} shows in the steps ({found}) and biases D, but no 1-D model trained on "
            "blurred, noisy tracks ships: D is read by the default model"
        )
        return DModelChoice("default", mean, se, local, local_z, n, msg)
    # large enough to matter, too few steps to be sure (the pooled mean only: the local rms of a
    # few thousand windows reads about 0.03 from chance alone)
    if abs(mean) >= CAMERA_MIN_COS:
        msg = (
            f"too few steps to tell whether motion blur or localisation noise biases D ({found}):"
            " D is read by the default model (model='acquired' reads blurred, noisy tracks)"
        )
    else:
        msg = (
            f"no sign of motion blur or localisation noise ({found}), as for exact "
            "instantaneous positions: D is read by the default model"
        )
    return DModelChoice("default", mean, se, local, local_z, n, msg)
