"""Helpers between track tables and napari Tracks layers (no Qt widgets here).

napari keeps a Tracks layer's data sorted by (track_id, t) and reorders any features it is given
by the order of the *original* data, so features read from ``layer.features`` (sorted) must be
mapped back before they are set again: :func:`set_layer_features` does that.

Metadata conventions on a Tracks layer:

- ``layer.metadata['pixel_size_um']``, ``layer.metadata['frame_interval_s']``: acquisition
  units, when known (copied from the image or the file); the STEP widget pre-fills its units.
- ``layer.metadata['napari_step']``: how the result features were computed: ``units``,
  ``pixel_size_um``, ``frame_interval_s``, ``model``, ``tamsd_window``, ``colour_range``
  (and ``segment_estimator`` once a run found change points), ``frame_step`` (the frames per
  step the last run read D at) and ``drift_subtracted`` (the last run subtracted the common
  drift).
- ``layer.metadata['napari_step_segments']``: the segments table (a DataFrame with
  :data:`._analysis_jobs.SEGMENTS_COLUMNS`, ``d`` in the results' units), merged per track
  across runs like the features ``segment_d`` / ``segment_log10_d``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import RESULT_COLUMNS, d_units, match_rows
from ..tracks import from_napari

__all__ = [
    "RESULT_COLUMNS",
    "layer_table",
    "set_layer_features",
    "results_metadata",
    "analysed_track_ids",
    "tracks_with_values",
    "merge_tables",
    "tracks_signature",
    "layer_in_viewer",
    "acquisition_units",
    "SEGMENTS_KEY",
    "layer_segments",
    "changepoint_positions",
    "update_changepoints",
]

SEGMENTS_KEY = "napari_step_segments"
_SEGMENT_FEATURES = ["segment_d", "segment_log10_d"]
_ALPHA_FEATURE = "step_alpha"  # scale-free: never converted between units
_STATE_FEATURE = "step_state"  # AnDi-2 state 0..3 (NaN: not analysed)
_D_COLUMNS = ["step_d", "tamsd_d", "segment_d"]
_LOG_COLUMNS = ["step_log10_d", "tamsd_log10_d", "segment_log10_d"]


def layer_segments(layer) -> pd.DataFrame | None:
    """A copy of the layer's segments table (None when no run looked for change points)."""
    seg = (layer.metadata or {}).get(SEGMENTS_KEY)
    if seg is None:
        return None
    return pd.DataFrame(seg).copy()


def layer_table(layer) -> pd.DataFrame:
    """The Tracks layer as a track table (layer order: sorted by track_id, frame) with features."""
    feats = layer.features
    table = from_napari(np.asarray(layer.data), feats)
    return table


def set_layer_features(layer, features: pd.DataFrame) -> None:
    """Set features given in the layer's (sorted) data order, undoing napari's reordering."""
    features = pd.DataFrame(features).reset_index(drop=True)
    order = getattr(getattr(layer, "_manager", None), "_order", None)
    if (
        order is not None
        and len(order) == len(features)
        and not np.array_equal(order, np.arange(len(order)))
    ):
        # napari applies features.iloc[order]; hand over the inverse permutation
        features = features.iloc[np.argsort(order)].reset_index(drop=True)
    layer.features = features


def results_metadata(layer) -> dict:
    """A copy of ``layer.metadata['napari_step']`` (empty dict when absent)."""
    return dict(layer.metadata.get("napari_step", {}) or {})


def acquisition_units(layer) -> tuple[float | None, float | None]:
    """(pixel size um, frame interval s) stored on a layer, None where unknown."""
    md = layer.metadata or {}
    res = md.get("napari_step", {}) or {}
    px = md.get("pixel_size_um", res.get("pixel_size_um"))
    dt = md.get("frame_interval_s", res.get("frame_interval_s"))
    return (float(px) if px is not None else None, float(dt) if dt is not None else None)


def analysed_track_ids(layer) -> list[int]:
    """IDs of the tracks that have at least one STEP value in the layer's features."""
    feats = layer.features
    if "step_d" not in feats.columns or len(feats) == 0:
        return []
    return tracks_with_values(np.asarray(layer.data)[:, 0], feats["step_d"]).tolist()


def tracks_with_values(track_ids, values) -> np.ndarray:
    """The tracks that hold at least one finite value (vectorised: one pass when the IDs are
    sorted, as in a Tracks layer; else one sort).

    Parameters
    ----------
    track_ids : array-like of float or int, shape (N,)
        The track ID of each row (rounded to integers).
    values : array-like of float, shape (N,)
        One value per row (NaN: none).

    Returns
    -------
    ndarray of int64
        The sorted unique IDs of the rows whose value is finite.
    """
    tid = np.round(np.asarray(track_ids, dtype=float)).astype(np.int64)
    ok = np.isfinite(np.asarray(values, dtype=float))
    tid = tid[ok]
    if tid.size and not np.all(tid[1:] >= tid[:-1]):
        return np.unique(tid)
    return tid[np.r_[True, tid[1:] != tid[:-1]]] if tid.size else tid


def tracks_signature(layer) -> tuple:
    """Something that changes when the layer's points change (to spot edits during a run)."""
    data = np.asarray(layer.data)
    return (data.shape, hash(np.ascontiguousarray(data[:, :2]).tobytes()))


def layer_in_viewer(viewer, layer) -> bool:
    return any(lyr is layer for lyr in viewer.layers)


def merged_results(
    layer, results: pd.DataFrame, track_ids, params: dict, segments: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, dict]:
    """Write the result columns of ``results`` for ``track_ids`` into the layer's features.

    Rows of the analysed tracks get this run's values (NaN where it produced none); every other
    track keeps its earlier values. When the earlier values were computed with other units
    (pixel size, frame interval) they are converted exactly to the new ones (D scales with
    pixel_size^2 / frame_interval), so one layer never mixes units. ``params`` holds
    ``pixel_size_um``, ``frame_interval_s``, ``model``, ``tamsd_window`` and ``units`` (the D
    units label; default from the pixel size and frame interval). Returns the new features (in
    the layer's data order) and the new layer metadata; nothing is set on the layer
    (:func:`merge_tables` does the work on plain tables, also from a worker thread).

    The segment features (``segment_d``, ``segment_log10_d``) and the segments table
    (``segments``, stored under :data:`SEGMENTS_KEY`) merge the same way: the analysed tracks'
    rows are replaced (dropped when this run did not look for segments), the others kept.
    ``step_alpha`` (per-frame anomalous exponent, no units) and ``step_state`` (AnDi-2 state)
    merge the same way.
    """
    return merge_tables(
        layer.features, np.asarray(layer.data), layer.metadata, results, track_ids, params, segments
    )


def merge_tables(
    features: pd.DataFrame,
    data: np.ndarray,
    metadata: dict,
    results: pd.DataFrame,
    track_ids,
    params: dict,
    segments: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict]:
    """:func:`merged_results` on a layer's parts: its ``features`` and ``data`` (layer order:
    sorted by track, frame) and ``metadata``; none of them is modified. Vectorised (one join of
    the run's rows on the layer's (track, frame) keys); the new features are built in one go.

    Returns
    -------
    (pandas.DataFrame, dict)
        The new features (layer order; every column of ``features`` kept, result columns
        float64 with NaN where there is no value) and the new layer metadata.
    """
    px, dt = float(params["pixel_size_um"]), float(params["frame_interval_s"])
    data = np.asarray(data)
    tid = np.round(data[:, 0]).astype(np.int64)
    old = dict((metadata or {}).get("napari_step", {}) or {})
    have = set(features.columns)
    with_segments = segments is not None or all(c in results.columns for c in _SEGMENT_FEATURES)
    columns = list(RESULT_COLUMNS)
    if with_segments or have.intersection(_SEGMENT_FEATURES):
        columns += _SEGMENT_FEATURES
    columns += [c for c in (_ALPHA_FEATURE, _STATE_FEATURE) if c in results.columns or c in have]
    ratio = _unit_ratio(old, px, dt)
    in_run = np.isin(tid, np.unique(np.asarray(list(track_ids), dtype=np.int64)))
    frame = np.round(data[in_run, 1]).astype(np.int64)
    pos = match_rows(results["track_id"], results["frame"], tid[in_run], frame)
    found, take = pos >= 0, np.clip(pos, 0, None)
    features = features.reset_index(drop=True)  # no copy (copy-on-write)
    out = {c: features[c] for c in features.columns}
    for c in columns:
        if c in have:
            col = features[c].to_numpy(dtype=float, na_value=np.nan, copy=True)
            col = _rescaled(c, col, ratio)
        else:
            col = np.full(len(tid), np.nan)
        if c in results.columns:  # else (a run without segments/alpha): the old values go
            col[in_run] = np.where(found, results[c].to_numpy(float)[take], np.nan)
        else:
            col[in_run] = np.nan
        out[c] = col
    feats = pd.DataFrame(out, index=pd.RangeIndex(len(tid)))

    old_seg = (metadata or {}).get(SEGMENTS_KEY)
    old_seg = None if old_seg is None else pd.DataFrame(old_seg)
    seg_table = _merge_segments(old_seg, segments, track_ids, ratio, _segment_scale(old, params))
    earlier = "step_d" in have and bool(
        np.isfinite(features["step_d"].to_numpy(float, na_value=np.nan)[~in_run]).any()
    )
    meta = _run_metadata(old, params, px, dt, converted=ratio != 1.0, earlier=earlier)
    new_md = {**(metadata or {}), "napari_step": meta}
    if seg_table is not None:
        new_md[SEGMENTS_KEY] = seg_table
    return feats, new_md


def _unit_ratio(old: dict, px: float, dt: float) -> float:
    """Factor from the earlier results' D units to the new ones (1.0 when they agree)."""
    if "pixel_size_um" not in old or "frame_interval_s" not in old:
        return 1.0
    ratio = (px**2 / dt) / (float(old["pixel_size_um"]) ** 2 / float(old["frame_interval_s"]))
    return 1.0 if np.isclose(ratio, 1.0) else float(ratio)


def _segment_scale(old: dict, params: dict) -> tuple:
    """(new / old pixel size, new frame interval or None when uncalibrated) for the earlier
    segments' confinement radius and duration."""
    px, dt = float(params["pixel_size_um"]), float(params["frame_interval_s"])
    units = str(params.get("units") or d_units(px, dt))
    px_ratio = px / float(old.get("pixel_size_um", px))
    return px_ratio, (None if units == "px^2/frame" else dt)


def _rescaled(column: str, values: np.ndarray, ratio: float) -> np.ndarray:
    """A D column (or its log10) converted to the new units by ``ratio`` (others unchanged)."""
    if ratio == 1.0:
        return values
    if column in _D_COLUMNS:
        return values * ratio
    if column in _LOG_COLUMNS:
        return values + np.log10(ratio)
    return values


def _run_metadata(
    old: dict, params: dict, px: float, dt: float, converted: bool, earlier: bool = True
) -> dict:
    """The ``napari_step`` metadata after a run with ``params`` over earlier ``old`` ones;
    ``earlier``: results of earlier runs remain on tracks outside this run (their models stay
    named in ``model``)."""
    models = [m for m in str(old.get("model", "")).split(" + ") if m] if earlier else []
    if params.get("model") and params["model"] not in models:
        models.append(str(params["model"]))
    meta = {
        **old,
        "units": str(params.get("units") or d_units(px, dt)),
        "pixel_size_um": px,
        "frame_interval_s": dt,
        "model": " + ".join(models),
        "tamsd_window": int(params.get("tamsd_window", old.get("tamsd_window", 20))),
        "converted_earlier_results": converted,
    }
    for key in ("segment_estimator", "alpha_model"):
        if params.get(key):
            meta[key] = str(params[key])
    if "frame_step" in params:
        meta["frame_step"] = int(params["frame_step"])
    meta["drift_subtracted"] = bool(params.get("drift_subtracted", False))
    return meta


def _merge_segments(old, new, track_ids, ratio: float, scale: tuple | None = None):
    """Earlier segments of the tracks not in this run (converted to the new units: D by
    ``ratio``; with ``scale`` = (pixel-size ratio, new frame interval or None when
    uncalibrated), the confinement radius and the duration) plus this run's segments; None when
    neither exists."""
    if old is None and new is None:
        return None
    from ._analysis_jobs import empty_segments, tidy_segments

    keep = empty_segments() if old is None else old
    keep = keep[~keep["track_id"].isin(np.asarray(list(track_ids), dtype=np.int64))].copy()
    if ratio != 1.0:
        keep["d"] = keep["d"].astype(float) * ratio
    if scale is not None and len(keep):
        px_ratio, dt = scale
        if "confinement_radius" in keep.columns:
            keep["confinement_radius"] = keep["confinement_radius"].astype(float) * px_ratio
        if "duration" in keep.columns:
            frames = (keep["stop_frame"] - keep["start_frame"]).to_numpy(float)
            keep["duration"] = frames if dt is None else frames * dt
    parts = [keep] + ([] if new is None else [new])
    return tidy_segments(parts)


# ------------------------------------------------------------------ building layers (one place)
CHANGEPOINTS_KEY = "napari_step_changepoints_of"  # Points metadata: unique_id of its Tracks
HIGHLIGHT_KEY = "napari_step_highlight_of"  # Shapes metadata: unique_id of its Tracks


def _uid(layer) -> str:
    return str(getattr(layer, "unique_id", id(layer)))


def _companion(viewer, layer, key: str, kind):
    """The layer of type ``kind`` this plugin made for ``layer`` under metadata ``key``."""
    uid = _uid(layer)
    for lyr in viewer.layers:
        if isinstance(lyr, kind) and str((lyr.metadata or {}).get(key)) == uid:
            return lyr
    return None


def remove_companions(viewer, tracks_layer) -> int:
    """Remove the change-point and outline layers made for a Tracks layer (it was removed);
    returns how many were removed."""
    uid = _uid(tracks_layer)
    mine = [
        lyr
        for lyr in viewer.layers
        if uid
        in (
            str((lyr.metadata or {}).get(CHANGEPOINTS_KEY)),
            str((lyr.metadata or {}).get(HIGHLIGHT_KEY)),
        )
    ]
    for lyr in mine:
        viewer.layers.remove(lyr)
    return len(mine)


def changepoints_layer(viewer, tracks_layer):
    """The Points layer of change points made for ``tracks_layer`` (or None)."""
    from napari.layers import Points

    return _companion(viewer, tracks_layer, CHANGEPOINTS_KEY, Points)


def _add_keeping_focus(viewer, new_layer) -> None:
    """Add a layer without taking the user's active layer away."""
    selection = viewer.layers.selection
    active = selection.active
    viewer.add_layer(new_layer)
    if active is not None and layer_in_viewer(viewer, active):
        selection.active = active


def apply_results(
    viewer,
    layer,
    results: pd.DataFrame,
    track_ids,
    params: dict,
    segments: pd.DataFrame | None,
    colour: dict,
) -> dict:
    """Put one analysis run into a Tracks layer: merged results, colour columns, colouring,
    change points, blending; the layer's features are set once.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding ``layer`` (for the change-point layer and the blending choice).
    layer : napari.layers.Tracks
        The analysed layer.
    results, track_ids, params, segments
        As for :func:`merged_results`.
    colour : dict
        ``by`` ("log10 D" or "alpha"), ``auto`` (bool: range from the data) and, without
        ``auto``, ``lo``/``hi`` (log10 D in the results' units).

    Returns
    -------
    dict
        The new ``napari_step`` metadata of the layer.
    """
    from ._apply_run import apply_prepared, prepare_run, snapshot_layer

    prep = prepare_run(snapshot_layer(layer, colour), results, track_ids, params, segments)
    apply_prepared(viewer, layer, prep)
    return results_metadata(layer)


def changepoint_positions(data: np.ndarray, seg: pd.DataFrame) -> tuple:
    """The change points of a segments table, placed on the track points.

    Parameters
    ----------
    data : ndarray, shape (N, 4 or 5)
        A Tracks layer's data: track_id, t, (z,) y, x (data units).
    seg : pandas.DataFrame
        A segments table (:data:`._analysis_jobs.SEGMENTS_COLUMNS`, ``d`` in the results'
        units).

    Returns
    -------
    (ndarray, pandas.DataFrame)
        The positions (t, (z,) y, x) of the segments that start at a change point and their
        features: track_id, frame, d_before and d_after (the results' D units).
    """
    data = np.asarray(data)
    seg = seg.sort_values(["track_id", "start_frame"]).reset_index(drop=True)
    prev_d = seg.groupby("track_id")["d"].shift(1)
    cps = seg[seg["changepoint"].astype(bool)]
    rows = match_rows(
        np.round(data[:, 0]), np.round(data[:, 1]), cps["track_id"], cps["start_frame"]
    )
    ok = rows >= 0
    feats = pd.DataFrame(
        {
            "track_id": cps["track_id"].to_numpy(np.int64)[ok],
            "frame": cps["start_frame"].to_numpy(np.int64)[ok],
            "d_before": prev_d.loc[cps.index].to_numpy(float)[ok],
            "d_after": cps["d"].to_numpy(float)[ok],
        }
    )
    return data[rows[ok], 1:], feats


def update_changepoints(viewer, layer, prepared: tuple | None = None) -> int:
    """Create or update the Points layer of ``layer``'s change points from its segments table
    (``prepared``: its :func:`changepoint_positions`, already computed); returns the number of
    points. Nothing is created for a layer that never had segments."""
    from napari.layers import Points

    seg = layer_segments(layer)
    pts = changepoints_layer(viewer, layer)
    if seg is None and pts is None:
        return 0
    ndim = np.asarray(layer.data).shape[1] - 1
    if seg is not None and len(seg):
        positions, feats = prepared or changepoint_positions(layer.data, seg)
    else:
        positions, feats = np.empty((0, ndim)), None
    if pts is None:
        if not len(positions):
            return 0
        pts = Points(
            positions,
            ndim=ndim,
            features=feats,
            name=f"{layer.name} change points",
            scale=layer.scale,
            translate=layer.translate,
            size=6,
            symbol="x",
            face_color="red",
            border_color="red",
            metadata={CHANGEPOINTS_KEY: _uid(layer)},
        )
        _add_keeping_focus(viewer, pts)
    else:
        pts.data = positions
        if feats is not None:
            pts.features = feats
    return len(positions)


def highlight_track(viewer, layer, track_id) -> object:
    """Outline one track of ``layer`` in the canvas (a 2-D path over all its frames, in a
    Shapes layer "<tracks> selected track" kept for that layer); ``None`` clears it. Returns
    the Shapes layer (or None when there is nothing to show)."""
    from napari.layers import Shapes

    shapes = _companion(viewer, layer, HIGHLIGHT_KEY, Shapes)
    data = np.asarray(layer.data)
    rows = (
        np.flatnonzero(np.round(data[:, 0]) == int(track_id))
        if track_id is not None
        else np.array([], int)
    )
    if rows.size < 2:
        if shapes is not None:
            shapes.data = []
        return shapes
    rows = rows[np.argsort(data[rows, 1], kind="stable")]
    path = data[rows, -2:]
    if shapes is None:
        shapes = Shapes(
            ndim=2,
            name=f"{layer.name} selected track",
            scale=np.asarray(layer.scale)[-2:],
            translate=np.asarray(layer.translate)[-2:],
            metadata={HIGHLIGHT_KEY: _uid(layer)},
            opacity=0.9,
        )
        _add_keeping_focus(viewer, shapes)
    if shapes.nshapes == 1 and list(shapes.shape_type) == ["path"]:
        shapes.data = [path]  # one update keeps the outline's width and colour
    else:
        shapes.data = []
        shapes.add_paths([path], edge_width=2.5, edge_color="#ff00ff")
    shapes.metadata = {**shapes.metadata, "track_id": int(track_id)}
    return shapes
