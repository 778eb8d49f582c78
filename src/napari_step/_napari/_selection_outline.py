"""The outline of a multi-track selection in the canvas (a lasso in the D-alpha tab).

The selected tracks are drawn as line pieces between consecutive points in one Vectors layer
("<tracks> selection", 2-D: it shows at every frame, like the single picked track's outline):
napari draws a Vectors layer as one mesh, so 100 000 line pieces cost one layer update, where
a Shapes layer triangulates every path in Python. Above :data:`MAX_OUTLINE_POINTS` points every
k-th point of each track is kept (and its last one), so the outline stays cheap at any size.
No Points or Image layer is made here (see the napari 0.9 layer-removal crash in the README).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "SELECTION_KEY",
    "MAX_OUTLINE_POINTS",
    "selection_segments",
    "outline_tracks",
    "selection_outline",
]

SELECTION_KEY = "napari_step_selection_of"  # Vectors metadata: unique_id of its Tracks layer
MAX_OUTLINE_POINTS = 200_000  # above this, tracks are decimated (every k-th point)
COLOUR = "#ff00ff"  # the picked track's outline colour (its outline is wider)


def _uid(layer) -> str:
    return str(getattr(layer, "unique_id", id(layer)))


def selection_segments(data, track_ids, max_points: int = MAX_OUTLINE_POINTS) -> np.ndarray:
    """Line pieces joining consecutive points (by frame) of the chosen tracks.

    Parameters
    ----------
    data : array_like, shape (N, 4) or (N, 5)
        napari Tracks data (track_id, t, (z,) y, x), in data coordinates (px).
    track_ids : iterable of int
        The tracks outlined (IDs absent from ``data`` are ignored).
    max_points : int
        At most about this many points are used: above it every k-th point of each track (and
        its last point) is kept, k the smallest that fits.

    Returns
    -------
    ndarray, shape (M, 2, 2)
        napari Vectors data: per piece its start (y, x) and its displacement (dy, dx), px.
    """
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    data = np.asarray(data, dtype=float)
    ids = np.unique(np.asarray(list(track_ids), dtype=np.int64))
    if data.ndim != 2 or data.shape[1] < 4:
        raise ValueError(f"Tracks data must be (N, 4) or (N, 5), got shape {data.shape}")
    tid = np.round(data[:, 0]).astype(np.int64)
    rows = np.flatnonzero(np.isin(tid, ids))
    rows = rows[np.lexsort((data[rows, 1], tid[rows]))]
    t = tid[rows]
    if rows.size > max_points:
        k = int(np.ceil(rows.size / max_points))
        index = np.arange(rows.size)
        first = np.r_[True, t[1:] != t[:-1]]
        rank = index - np.maximum.accumulate(np.where(first, index, 0))
        last = np.r_[t[1:] != t[:-1], True]
        keep = (rank % k == 0) | last
        rows, t = rows[keep], t[keep]
    yx = data[rows, -2:]
    same = t[1:] == t[:-1]
    return np.stack([yx[:-1][same], (yx[1:] - yx[:-1])[same]], axis=1)


def selection_outline(viewer, tracks_layer):
    """The Vectors layer outlining a selection of ``tracks_layer`` (None when there is none)."""
    from napari.layers import Vectors

    uid = _uid(tracks_layer)
    for lyr in viewer.layers:
        if isinstance(lyr, Vectors) and str((lyr.metadata or {}).get(SELECTION_KEY)) == uid:
            return lyr
    return None


def _remove_with(viewer, tracks_layer, outline) -> None:
    """Remove ``outline`` when ``tracks_layer`` leaves the viewer (then stop listening)."""

    def _on_removed(event):
        gone = getattr(event, "value", None)
        if gone is outline:
            viewer.layers.events.removed.disconnect(_on_removed)
        elif gone is tracks_layer:
            viewer.layers.events.removed.disconnect(_on_removed)
            if any(lyr is outline for lyr in viewer.layers):
                viewer.layers.remove(outline)

    viewer.layers.events.removed.connect(_on_removed)


def outline_tracks(viewer, tracks_layer, track_ids, max_points: int = MAX_OUTLINE_POINTS):
    """Outline the tracks ``track_ids`` of ``tracks_layer`` in the canvas.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer showing ``tracks_layer``.
    tracks_layer : napari.layers.Tracks
        The layer whose tracks are outlined (its scale and translate are followed).
    track_ids : iterable of int
        The selection; an empty one empties the outline.
    max_points : int
        See :func:`selection_segments`.

    Returns
    -------
    napari.layers.Vectors or None
        The outline layer (made on first use, then updated in place, the active layer left
        as it was); None when there is nothing to outline and no outline yet.
    """
    from napari.layers import Vectors

    ids = sorted({int(i) for i in track_ids})
    pieces = selection_segments(tracks_layer.data, ids, max_points)
    outline = selection_outline(viewer, tracks_layer)
    if outline is None:
        if len(pieces) == 0:
            return None
        outline = Vectors(
            pieces,
            ndim=2,
            name=f"{tracks_layer.name} selection",
            scale=np.asarray(tracks_layer.scale)[-2:],
            translate=np.asarray(tracks_layer.translate)[-2:],
            edge_width=1.5,
            edge_color=COLOUR,
            opacity=0.8,
            vector_style="line",
            metadata={SELECTION_KEY: _uid(tracks_layer)},
        )
        active = viewer.layers.selection.active
        viewer.add_layer(outline)
        if active is not None and any(lyr is active for lyr in viewer.layers):
            viewer.layers.selection.active = active
        _remove_with(viewer, tracks_layer, outline)
    else:
        outline.data = pieces if len(pieces) else np.empty((0, 2, 2))
    outline.metadata = {**outline.metadata, "track_ids": ids}
    return outline
