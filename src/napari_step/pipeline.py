"""Movie -> tracks -> D, the whole job in one call (used by the CLI demo, batch runs and tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .analysis import AnalysisSummary, analyse_tracks
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


def run_movie(
    movie,
    pixel_size: float = 1.0,
    frame_interval: float = 1.0,
    detection: DetectionParams | None = None,
    linking: LinkingParams | None = None,
    model="auto",
    device=None,
    window: int = 20,
    progress=None,
    **analysis,
) -> tuple[pd.DataFrame, AnalysisSummary, pd.DataFrame]:
    """Detect, link and analyse a movie.

    Parameters
    ----------
    movie : array-like
        (T, Y, X) images.
    pixel_size, frame_interval : float
        um per pixel and s per frame (D in um^2/s; 1 and 1 keep px^2/frame).
    detection, linking : DetectionParams, LinkingParams, optional
        trackpy parameters (defaults: the dataclasses' defaults).
    model, device, window
        As for :func:`napari_step.analysis.analyse_tracks`.
    progress : callable, optional
        ``(stage, done, total)`` with stage "detect" or "STEP".
    **analysis
        Further options of :func:`napari_step.analysis.analyse_tracks` (``segments``,
        ``estimator``, ``alpha``, ``alpha_model``, ``precision``, ``batch_size``).

    Returns
    -------
    results : DataFrame
        The linked tracks with the result columns.
    summary : AnalysisSummary
    detections : DataFrame
        trackpy's detections (frame, y, x, ...).
    """
    detection = detection or DetectionParams()
    linking = linking or LinkingParams()
    movie = np.asarray(movie)
    det = detect(
        movie,
        detection.diameter,
        detection.minmass,
        detection.separation,
        detection.invert,
        progress=(lambda d, t: progress("detect", d, t)) if progress else None,
    )
    tracks = link(det, linking.search_range, linking.memory, linking.min_length)
    results, summary = analyse_tracks(
        tracks,
        pixel_size,
        frame_interval,
        model=model,
        device=device,
        window=window,
        progress=(lambda d, t: progress("STEP", d, t)) if progress else None,
        **analysis,
    )
    return results, summary, det
