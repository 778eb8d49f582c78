"""Which tracks to analyse: by length, by typed IDs, inside shapes, nearest to a click."""

from __future__ import annotations

import numpy as np

__all__ = ["tracks_by_length", "tracks_in_shapes", "nearest_track", "format_ids"]


def _ids(layer) -> np.ndarray:
    return np.round(np.asarray(layer.data)[:, 0]).astype(np.int64)


def tracks_by_length(layer, min_length: int) -> list[int]:
    """Tracks with at least ``min_length`` points."""
    ids, counts = np.unique(_ids(layer), return_counts=True)
    return [int(i) for i in ids[counts >= int(min_length)]]


def _world_yx(layer, yx: np.ndarray) -> np.ndarray:
    """Data (y, x) -> world (y, x) with the layer's scale and translation (last two axes)."""
    return yx * np.asarray(layer.scale)[-2:] + np.asarray(layer.translate)[-2:]


def _inside_ellipse(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """napari stores an ellipse as the 4 corners of its (possibly rotated) bounding box."""
    centre = corners.mean(axis=0)
    e1, e2 = corners[1] - corners[0], corners[3] - corners[0]
    n1, n2 = np.linalg.norm(e1), np.linalg.norm(e2)
    if n1 == 0 or n2 == 0:
        return np.zeros(len(points), bool)
    d = points - centre
    u = d @ (e1 / n1) / (n1 / 2)
    w = d @ (e2 / n2) / (n2 / 2)
    return u**2 + w**2 <= 1.0


def tracks_in_shapes(tracks_layer, shapes_layer) -> tuple[list[int], int]:
    """Tracks with at least one point inside any closed shape (polygon, rectangle, ellipse).

    Only the two displayed spatial axes (y, x) count: a shape drawn on one frame selects tracks
    over the whole movie. Returns (track IDs, number of shapes ignored because they are open
    lines or paths).
    """
    data = np.asarray(tracks_layer.data)
    if len(data) == 0 or len(shapes_layer.data) == 0:
        return [], 0
    from matplotlib.path import Path

    world = _world_yx(tracks_layer, data[:, -2:])
    pts = (world - np.asarray(shapes_layer.translate)[-2:]) / np.asarray(shapes_layer.scale)[-2:]
    inside = np.zeros(len(pts), bool)
    ignored = 0
    for verts, kind in zip(shapes_layer.data, shapes_layer.shape_type):
        verts = np.asarray(verts, float)[:, -2:]
        if kind in ("polygon", "rectangle"):
            inside |= Path(verts).contains_points(pts, radius=1e-9)
        elif kind == "ellipse":
            inside |= _inside_ellipse(pts, verts)
        else:
            ignored += 1
    return sorted(int(i) for i in np.unique(_ids(tracks_layer)[inside])), ignored


def nearest_track(layer, world_position, max_distance: float | None = None) -> int | None:
    """The track nearest to a world position among the points at the position's time.

    ``max_distance`` is in world units (None: no limit). Only the last two (displayed) axes count
    for the distance; the time is the position's time in the layer's data coordinates.
    """
    data = np.asarray(layer.data)
    if len(data) == 0:
        return None
    pos = np.asarray(layer.world_to_data(np.asarray(world_position, float)), float)
    t = np.round(pos[0])
    here = np.flatnonzero(np.round(data[:, 1]) == t)
    if here.size == 0:
        return None
    scale = np.asarray(layer.scale)[-2:]
    dist = np.linalg.norm((data[here, -2:] - pos[-2:]) * scale, axis=1)
    best = int(np.argmin(dist))
    if max_distance is not None and dist[best] > max_distance:
        return None
    return int(round(data[here[best], 0]))


def format_ids(ids, limit: int = 12) -> str:
    ids = list(ids)
    if not ids:
        return "none"
    text = ", ".join(str(i) for i in ids[:limit])
    return text + (f", ... ({len(ids)} tracks)" if len(ids) > limit else "")
