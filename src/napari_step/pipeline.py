"""Movie -> tracks -> D, the whole job in one call (used by the CLI demo, batch runs and tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .analysis import analyse_tracks
from .tracks import detect, link

__all__ = ["DetectionParams", "LinkingParams", "run_movie"]


@dataclass
class DetectionParams:
    """trackpy.locate parameters (pixels)."""

    diameter: int = 7
    minmass: float | None = 400.0
    separation: float | None = None
    invert: bool = False


@dataclass
class LinkingParams:
    """trackpy.link parameters (pixels, frames)."""

    search_range: float = 6.0
    memory: int = 2
    min_length: int = 20


def run_movie(movie, pixel_size=1.0, frame_interval=1.0, detection=None, linking=None,
              model="default", device=None, window=20, progress=None):
    """Detect, link and analyse a (T, Y, X) movie; returns (results table, summary, detections).

    ``progress`` is an optional callable ``(stage, done, total)``.
    """
    detection = detection or DetectionParams()
    linking = linking or LinkingParams()
    movie = np.asarray(movie)
    det = detect(movie, detection.diameter, detection.minmass, detection.separation,
                 detection.invert,
                 progress=(lambda d, t: progress("detect", d, t)) if progress else None)
    tracks = link(det, linking.search_range, linking.memory, linking.min_length)
    results, summary = analyse_tracks(
        tracks, pixel_size, frame_interval, model=model, device=device, window=window,
        progress=(lambda d, t: progress("STEP", d, t)) if progress else None,
    )
    return results, summary, det
