"""The detection jobs behind the "Detect & link" widget, as plain generators (no Qt).

The widget runs them in napari ``thread_worker`` threads (every ``yield`` is one progress step
and a point where Cancel can stop the job); :func:`._jobs.run_job` drives one to the end
without any GUI. Detection and linking are the core's functions (``tracks.locate_frame``,
``tracks.link``) with the core's parameter classes (``pipeline.DetectionParams``,
``pipeline.LinkingParams``), so the GUI computes exactly what ``pipeline.run_movie`` computes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..pipeline import DetectionParams, LinkingParams
from ..tracks import link, locate_frame
from ._jobs import JobError

__all__ = ["detect_job", "detection_kwargs", "link_detections"]


def _frame(movie, t: int) -> np.ndarray:
    return np.asarray(movie[t])


def detection_kwargs(p: DetectionParams) -> dict:
    return {
        "diameter": int(p.diameter),
        "minmass": p.minmass,
        "separation": p.separation,
        "invert": bool(p.invert),
    }


def detect_job(movie, detection: DetectionParams, linking: LinkingParams | None):
    """Generator: detect every frame (yields the number of frames done), then link.

    Returns ``(detections, tracks)`` (``tracks`` is None when ``linking`` is None) or a
    :class:`JobError`. ``movie`` is any (T, Y, X) array-like (numpy, dask, zarr); frames are read
    one at a time and never modified.
    """
    try:
        n = int(movie.shape[0])
        frames = []
        for t in range(n):
            frames.append(locate_frame(_frame(movie, t), t, **detection_kwargs(detection)))
            yield t + 1
        cols = ["frame", "y", "x"]
        detections = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)
        detections = detections[cols + [c for c in detections.columns if c not in cols]]
        if linking is None:
            return detections, None
        return detections, link_detections(detections, linking)
    except (ValueError, TypeError, MemoryError, RuntimeError) as e:  # bad parameters, bad data
        return JobError(f"detection failed: {e}")


def link_detections(detections: pd.DataFrame, linking: LinkingParams) -> pd.DataFrame:
    """trackpy linking with the widget's parameters; frames skipped by ``memory`` stay absent."""
    return link(
        detections,
        float(linking.search_range),
        int(linking.memory),
        max(1, int(linking.min_length)),
    )
