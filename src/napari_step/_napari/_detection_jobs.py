"""The detection jobs behind the "Detect & link" widget, as plain functions and generators
(no Qt): the widget runs them in worker threads and only ever touches the viewer in the GUI
thread with what they return.

- :func:`detect_job`: detect every frame (chunked, optionally in worker processes), then link;
  each ``yield`` is ``(frames done, frames)`` for the dock's progress bar and a point where
  Cancel stops the job; :func:`._jobs.run_job` drives it to the end without a GUI.
- :func:`link_job`: link the last detections again ("Link again").
- :func:`prepare_tracks`: the step after either job, in the same worker: the napari Tracks
  layer object of the linked table, built but in no viewer yet (napari needs seconds to build
  one of 100 000 tracks; the GUI thread then only adds it), with the counts for the status line.
- :func:`preview_features`: one frame's detections without a mass limit (the preview and the
  mass histogram filter them by the min. mass, so changing the min. mass needs no detection).
- :func:`suggest_job`: suggested parameters from the shown frame.

Detection and linking are the core's functions (``tracks.iter_locate``, ``tracks.link``,
``detection_hints.suggest_detection``) with the core's parameter classes, so the GUI computes
exactly what ``pipeline.run_movie`` computes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..detection_hints import DetectionHint, suggest_detection
from ..pipeline import DetectionParams, LinkingParams
from ..tracks import detections_table, iter_locate, link, locate_frame
from ._jobs import JobError

__all__ = [
    "PreviewRequest",
    "default_processes",
    "detect_job",
    "detection_kwargs",
    "link_detections",
    "link_job",
    "LinkedTracks",
    "prepare_tracks",
    "preview_features",
    "replaceable",
    "suggest_job",
    "tracks_layer_kwargs",
]

MIN_FRAMES_PER_PROCESS = 120  # below this, starting worker processes costs more than it saves


def detection_kwargs(p: DetectionParams) -> dict:
    """trackpy.locate keyword arguments of a :class:`DetectionParams`."""
    return {
        "diameter": int(p.diameter),
        "minmass": p.minmass,
        "separation": p.separation,
        "invert": bool(p.invert),
    }


def default_processes(n_frames: int) -> int:
    """Worker processes for detecting ``n_frames`` frames: 2 when the movie is long enough to
    pay for starting them (their imports and numba compilation cost a few seconds) and the
    machine has a spare core (CPUs minus the 1-minute load average >= 1.5), else 1.

    On this project's 2-core machine, idle, two processes halve trackpy's detection time
    (12 -> 6 s for the 480-frame bulk-water movie); under a load of 8 they cost more than they
    save (see ``benchmarks/detect_link_speed.py``).
    """
    cpus = os.cpu_count() or 1
    try:
        spare = cpus - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average on this platform
        spare = cpus - 1
    if n_frames < MIN_FRAMES_PER_PROCESS * 2 or spare < 1.5:
        return 1
    return 2


def detect_job(
    movie, detection: DetectionParams, linking: LinkingParams | None, processes: int | None = None
):
    """Generator: detect every frame, then link.

    Parameters
    ----------
    movie : array-like
        (T, Y, X) images (numpy, dask, zarr); read chunk by chunk, never modified.
    detection : DetectionParams
    linking : LinkingParams or None
        None: detect only.
    processes : int, optional
        Worker processes for detection (default: :func:`default_processes`).

    Yields
    ------
    (int, int)
        Frames done and frames in all (about 50 steps, whatever the movie's length).

    Returns
    -------
    (DataFrame, DataFrame or None) or JobError
        The detections and the linked track table (None without ``linking``).
    """
    try:
        n = int(movie.shape[0])
        procs = default_processes(n) if processes is None else max(1, int(processes))
        chunk = max(1, min(32, n // 50))
        parts = []
        for done, part in iter_locate(
            movie, processes=procs, chunk=chunk, **detection_kwargs(detection)
        ):
            parts.append(part)
            yield done, n
        detections = detections_table(parts)
        if linking is None:
            return detections, None
        return detections, link_detections(detections, linking)
    except (ValueError, TypeError, MemoryError, RuntimeError, OSError) as e:  # bad input
        return JobError(f"detection failed: {e}")


def link_detections(detections: pd.DataFrame, linking: LinkingParams) -> pd.DataFrame:
    """trackpy linking with the widget's parameters; frames skipped by ``memory`` stay absent."""
    return link(
        detections,
        float(linking.search_range),
        int(linking.memory),
        max(1, int(linking.min_length)),
    )


def link_job(detections: pd.DataFrame, linking: LinkingParams):
    """Generator: link ``detections`` again (one step, before linking: Cancel stops it there).

    Returns
    -------
    (DataFrame, DataFrame) or JobError
        The detections and the linked track table.
    """
    yield 0
    try:
        return detections, link_detections(detections, linking)
    except (ValueError, RuntimeError, MemoryError) as e:  # trackpy's subnet limit: RuntimeError
        return JobError(f"linking failed: {e}")


@dataclass
class LinkedTracks:
    """A linking result ready for the viewer (made in the worker thread).

    ``layer`` is the napari Tracks layer of the linked table, in no viewer yet (None when no
    track is long enough); the counts are for the widget's status line.
    """

    layer: object
    n_detections: int
    n_tracks: int
    n_points: int
    n_gaps: int  # frames skipped inside tracks thanks to the linking memory


def prepare_tracks(layer_kwargs: dict, result):
    """The worker's step after :func:`detect_job` or :func:`link_job`: the Tracks layer of the
    linked table, built off the GUI thread.

    Parameters
    ----------
    layer_kwargs : dict
        Keyword arguments of ``napari.layers.Tracks`` (:func:`tracks_layer_kwargs`).
    result : (DataFrame, DataFrame or None) or JobError
        What the job returned: the detections and the linked table.

    Returns
    -------
    (DataFrame, LinkedTracks or None) or JobError
        The detections and the prepared tracks (None when the job only detected); a
        :class:`JobError` passes through.
    """
    if isinstance(result, JobError):
        return result
    detections, table = result
    if table is None:
        return detections, None
    n_det = len(detections) if detections is not None else len(table)
    if len(table) == 0:
        return detections, LinkedTracks(None, n_det, 0, 0, 0)
    from napari.layers import Tracks

    from ..tracks import to_napari

    try:
        data, feats = to_napari(table)
        layer = Tracks(data, features=feats, **layer_kwargs)
    except (ValueError, TypeError, MemoryError) as e:
        return JobError(f"the Tracks layer could not be made: {e}")
    span = table.groupby("track_id")["frame"].agg(["min", "max", "size"])
    n_gaps = int((span["max"] - span["min"] + 1 - span["size"]).clip(lower=0).sum())
    return detections, LinkedTracks(layer, n_det, len(span), len(table), n_gaps)


@dataclass(frozen=True)
class PreviewRequest:
    """What a preview detects: one frame of one image with the mass-independent parameters."""

    image_id: int  # id() of the image layer
    frame: int
    diameter: int
    separation: float | None
    invert: bool


def preview_features(image: np.ndarray, request: PreviewRequest):
    """The frame's detections without a mass limit (y, x, mass...), or a :class:`JobError`.

    Returns ``(request, features)`` so the widget can drop answers to outdated requests.
    """
    try:
        feats = locate_frame(
            image,
            request.frame,
            request.diameter,
            minmass=0,
            separation=request.separation,
            invert=request.invert,
        )
    except (ValueError, TypeError, RuntimeError, MemoryError) as e:
        return request, JobError(f"preview failed: {e}")
    return request, feats


def suggest_job(image: np.ndarray, image_id: int, frame: int):
    """Suggested parameters for one frame: ``(image_id, frame, DetectionHint)`` or a JobError."""
    try:
        hint: DetectionHint = suggest_detection(image)
    except (ValueError, TypeError, RuntimeError, MemoryError) as e:
        return image_id, frame, JobError(f"no suggestion: {e}")
    return image_id, frame, hint


def tracks_layer_kwargs(image, det: DetectionParams, lnk: LinkingParams) -> dict:
    """``napari.layers.Tracks`` keyword arguments for tracks found in ``image`` (an Image
    layer): its scale, translation, units and acquisition metadata, and the parameters used."""
    meta = {
        k: image.metadata[k]
        for k in ("pixel_size_um", "frame_interval_s")
        if k in (image.metadata or {})
    }
    meta["source_image"] = image.name
    meta["detection"] = {
        "diameter": det.diameter,
        "minmass": det.minmass,
        "separation": det.separation,
        "invert": det.invert,
    }
    meta["linking"] = {
        "search_range": lnk.search_range,
        "memory": lnk.memory,
        "min_length": lnk.min_length,
    }
    movie = image.ndim == 3
    kwargs = {
        "name": f"{image.name} tracks",
        "metadata": meta,
        "tail_length": 30,
        "tail_width": 2,
        "scale": list(image.scale) if movie else [1.0, *image.scale],
        "translate": list(image.translate) if movie else [0.0, *image.translate],
    }
    if movie:
        kwargs["units"] = image.units
        kwargs["axis_labels"] = image.axis_labels
    return kwargs


def replaceable(layers, old, image) -> bool:
    """Whether a new linking of ``image`` may replace ``old`` (the widget's previous Tracks
    layer): it is still among ``layers``, came from the same image and holds no analysis."""
    if old is None or not any(lyr is old for lyr in layers):
        return False
    if old.metadata.get("source_image") != image.name or "napari_step" in old.metadata:
        return False
    return not any(str(c).startswith("step_") for c in old.features.columns)
