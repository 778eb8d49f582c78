"""Detection parameters suggested from the image, the way a trackpy user finds them by hand:
dark or bright particles from the grey levels, a ``diameter`` from the particles' size, then a
``minmass`` from the mass distribution of the features found at that diameter.

On the bulk-water movie (bright-field colloids, about 11 px across) this suggests dark
particles, diameter 11 px and a min. mass that keeps about 500 particles per frame; on the
rendered sample (Gaussian spots, sigma 1.5 px, 12 per frame) bright particles, diameter 9 px and
a min. mass between the noise blobs and the particles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .tracks import locate_frame

__all__ = [
    "DetectionHint",
    "suggest_detection",
    "suggest_diameter",
    "suggest_invert",
    "suggest_minmass",
]


@dataclass
class DetectionHint:
    """Detection parameters suggested from one frame (see :func:`suggest_detection`)."""

    diameter: int  # px, odd
    minmass: float  # trackpy mass units (grey levels x px)
    invert: bool  # dark particles on a bright background
    features: pd.DataFrame  # the frame's detections at ``diameter`` without a mass limit

    @property
    def n_found(self) -> int:
        """Detections kept by the suggested min. mass."""
        return int((self.features["mass"] >= self.minmass).sum()) if len(self.features) else 0


def suggest_invert(image: np.ndarray) -> bool:
    """True when the particles are darker than the background (bright-field images).

    The side of the grey-level distribution with the longer tail (0.5th and 99.5th percentiles
    against the median) is where the particles are.
    """
    lo, med, hi = np.percentile(np.asarray(image, dtype=float), [0.5, 50, 99.5])
    return bool(med - lo > hi - med)


def suggest_diameter(image: np.ndarray, invert: bool = False, max_diameter: int = 41) -> int:
    """A trackpy ``diameter`` (px, odd) from the size of the particles in one frame.

    The radial profile of the image's autocorrelation (background removed; zero lag dropped,
    it holds the pixel noise) falls to half its one-pixel value at a lag r that grows with the
    particles' size; the suggestion is the odd integer at or just above ``3.2 r`` (7-9 px for
    Gaussian spots of sigma 1.5 px, 11 px for the bulk-water colloids), in [5, ``max_diameter``].
    """
    from scipy import ndimage as ndi

    im = np.asarray(image, dtype=float)
    im = -im if invert else im
    x = im - ndi.gaussian_filter(im, 15.0)
    x -= x.mean()
    ac = np.fft.fftshift(np.fft.irfft2(np.abs(np.fft.rfft2(x)) ** 2, s=x.shape))
    cy, cx = np.array(ac.shape) // 2
    yy, xx = np.indices(ac.shape)
    r = np.round(np.hypot(yy - cy, xx - cx)).astype(int).ravel()
    prof = np.bincount(r, ac.ravel()) / np.maximum(np.bincount(r), 1)
    if not prof[1] > 0:
        return 5
    prof = prof[1 : max_diameter // 2 + 2] / prof[1]  # prof[i]: lag i + 1
    below = np.flatnonzero(prof < 0.5)
    if below.size == 0:
        return int(max_diameter) | 1
    i = int(below[0])  # prof[i - 1] >= 0.5 > prof[i]
    half = i + (prof[i - 1] - 0.5) / (prof[i - 1] - prof[i])  # lag (px) of the half value
    return int(np.clip(int(3.2 * half) | 1, 5, max_diameter)) | 1


def suggest_minmass(masses, min_gap: float = 0.3) -> float:
    """A trackpy ``minmass`` from the masses of one frame's detections (found without limit).

    Two populations (faint noise blobs below bright particles) show as a gap in the sorted
    log masses: when the widest gap with at least 5 % of the features (and 3) above it spans
    more than ``min_gap`` decades, the suggestion is its middle (geometric). Otherwise the
    features are one population and the suggestion only drops its faint tail: the median
    minus 2 scaled MADs (0 when that is negative). Rounded down to two significant digits.
    """
    m = np.asarray(masses, dtype=float)
    m = np.sort(m[np.isfinite(m) & (m > 0)])
    if m.size < 5:
        return 0.0
    lm = np.log10(m)
    gaps = np.diff(lm)
    above = m.size - 1 - np.arange(gaps.size)  # features above each gap
    gaps[above < max(3, 0.05 * m.size)] = 0.0
    k = int(np.argmax(gaps))
    if gaps[k] > min_gap:
        value = 10 ** ((lm[k] + lm[k + 1]) / 2)
    else:
        med = np.median(m)
        value = med - 2 * 1.4826 * np.median(np.abs(m - med))
    if value <= 0:
        return 0.0
    digits = 10 ** (np.floor(np.log10(value)) - 1)
    return float(np.floor(value / digits) * digits)


def suggest_detection(image: np.ndarray, separation=None, **kwargs) -> DetectionHint:
    """Suggested trackpy parameters for one frame, the way a trackpy user finds them: dark or
    bright particles from the grey levels, a diameter from the particles' size, then a min.
    mass from the mass distribution of the features found at that diameter.

    Parameters
    ----------
    image : ndarray
        One (Y, X) frame.
    separation : float, optional
        As for :func:`locate_frame`.
    **kwargs
        Further ``trackpy.locate`` options.

    Returns
    -------
    DetectionHint
        diameter (px), minmass, invert and the frame's features without a mass limit.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"suggestions need one (Y, X) frame, got shape {image.shape}")
    invert = suggest_invert(image)
    diameter = suggest_diameter(image, invert)
    feats = locate_frame(
        image, 0, diameter, minmass=0, separation=separation, invert=invert, **kwargs
    )
    return DetectionHint(diameter, suggest_minmass(feats["mass"]), invert, feats)
