"""Helpers between track tables and napari Tracks layers (no Qt widgets here).

napari keeps a Tracks layer's data sorted by (track_id, t) and reorders any features it is given
by the order of the *original* data, so features read from ``layer.features`` (sorted) must be
mapped back before they are set again: :func:`set_layer_features` does that.

Metadata conventions on a Tracks layer:

- ``layer.metadata['pixel_size_um']``, ``layer.metadata['frame_interval_s']``: acquisition
  units, when known (copied from the image or the file); the STEP widget pre-fills its units.
- ``layer.metadata['napari_step']``: how the result features were computed: ``units``,
  ``pixel_size_um``, ``frame_interval_s``, ``model``, ``tamsd_window``, ``colour_range``
  (and ``segment_estimator`` once a run found change points).
- ``layer.metadata['napari_step_segments']``: the segments table (a DataFrame with
  :data:`._pipeline.SEGMENTS_COLUMNS`, ``d`` in the results' units), merged per track across runs
  like the features ``segment_d`` / ``segment_log10_d``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis import RESULT_COLUMNS, d_units
from ..tracks import from_napari

__all__ = [
    "RESULT_COLUMNS",
    "layer_table",
    "set_layer_features",
    "results_metadata",
    "analysed_track_ids",
    "merge_results",
    "tracks_signature",
    "layer_in_viewer",
    "acquisition_units",
    "SEGMENTS_KEY",
    "layer_segments",
]

SEGMENTS_KEY = "napari_step_segments"
_SEGMENT_FEATURES = ["segment_d", "segment_log10_d"]
_ALPHA_FEATURE = "step_alpha"  # scale-free: never converted between units
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
    if order is not None and len(order) == len(features) and not np.array_equal(
        order, np.arange(len(order))
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
    tid = np.round(np.asarray(layer.data)[:, 0]).astype(np.int64)
    ok = np.isfinite(feats["step_d"].to_numpy(float))
    return sorted(int(i) for i in np.unique(tid[ok]))


def tracks_signature(layer) -> tuple:
    """Something that changes when the layer's points change (to spot edits during a run)."""
    data = np.asarray(layer.data)
    return (data.shape, hash(np.ascontiguousarray(data[:, :2]).tobytes()))


def layer_in_viewer(viewer, layer) -> bool:
    return any(lyr is layer for lyr in viewer.layers)


def merge_results(layer, results: pd.DataFrame, track_ids, params: dict,
                  segments: pd.DataFrame | None = None) -> dict:
    """Write the result columns of ``results`` for ``track_ids`` into the layer's features.

    Rows of the analysed tracks get this run's values (NaN where it produced none); every other
    track keeps its earlier values. When the earlier values were computed with other units
    (pixel size, frame interval) they are converted exactly to the new ones (D scales with
    pixel_size^2 / frame_interval), so one layer never mixes units. ``params`` holds
    ``pixel_size_um``, ``frame_interval_s``, ``model``, ``tamsd_window``. Returns the new
    ``napari_step`` metadata (also stored on the layer). Colouring is left to the caller.

    The segment features (``segment_d``, ``segment_log10_d``) and the segments table
    (``segments``, stored under :data:`SEGMENTS_KEY`) merge the same way: the analysed tracks'
    rows are replaced (dropped when this run did not look for segments), the others kept.
    ``step_alpha`` (per-frame anomalous exponent, no units) merges the same way.
    """
    px, dt = float(params["pixel_size_um"]), float(params["frame_interval_s"])
    feats = layer.features.copy()
    data = np.asarray(layer.data)
    tid = np.round(data[:, 0]).astype(np.int64)
    frame = np.round(data[:, 1]).astype(np.int64)
    old = results_metadata(layer)

    with_segments = segments is not None or all(c in results.columns for c in _SEGMENT_FEATURES)
    columns = list(RESULT_COLUMNS)
    if with_segments or any(c in feats.columns for c in _SEGMENT_FEATURES):
        columns += _SEGMENT_FEATURES
    if _ALPHA_FEATURE in results.columns or _ALPHA_FEATURE in feats.columns:
        columns.append(_ALPHA_FEATURE)
    for c in columns:
        if c not in feats.columns:
            feats[c] = np.nan
        feats[c] = feats[c].astype(float)
    converted = False
    ratio = 1.0
    if "pixel_size_um" in old and "frame_interval_s" in old:
        ratio = (px**2 / dt) / (float(old["pixel_size_um"]) ** 2 / float(old["frame_interval_s"]))
        if not np.isclose(ratio, 1.0):
            for c in _D_COLUMNS:
                if c in feats.columns:
                    feats[c] = feats[c] * ratio
            for c in _LOG_COLUMNS:
                if c in feats.columns:
                    feats[c] = feats[c] + np.log10(ratio)
            converted = True
        else:
            ratio = 1.0

    in_run = np.isin(tid, np.asarray(list(track_ids), dtype=np.int64))
    res_index = pd.MultiIndex.from_arrays(
        [results["track_id"].to_numpy(np.int64), results["frame"].to_numpy(np.int64)]
    )
    pos = res_index.get_indexer(pd.MultiIndex.from_arrays([tid[in_run], frame[in_run]]))
    for c in columns:
        col = feats[c].to_numpy(float).copy()
        if c in results.columns:
            vals = results[c].to_numpy(float)
            col[in_run] = np.where(pos >= 0, vals[np.clip(pos, 0, None)], np.nan)
        else:  # a run without segments (alpha): the analysed tracks lose their old ones
            col[in_run] = np.nan
        feats[c] = col
    set_layer_features(layer, feats)

    seg_table = _merge_segments(layer_segments(layer), segments, track_ids, ratio)

    models = [m for m in str(old.get("model", "")).split(" + ") if m]
    if params.get("model") and params["model"] not in models:
        models.append(str(params["model"]))
    meta = {
        **old,
        "units": d_units(px, dt),
        "pixel_size_um": px,
        "frame_interval_s": dt,
        "model": " + ".join(models),
        "tamsd_window": int(params.get("tamsd_window", old.get("tamsd_window", 20))),
        "converted_earlier_results": converted,
    }
    if params.get("segment_estimator"):
        meta["segment_estimator"] = str(params["segment_estimator"])
    if params.get("alpha_model"):
        meta["alpha_model"] = str(params["alpha_model"])
    new_md = {**layer.metadata, "napari_step": meta}
    if seg_table is not None:
        new_md[SEGMENTS_KEY] = seg_table
    layer.metadata = new_md
    return meta


def _merge_segments(old, new, track_ids, ratio: float):
    """Earlier segments of the tracks not in this run (D scaled by ``ratio`` to the new units)
    plus this run's segments; None when neither exists."""
    if old is None and new is None:
        return None
    from ._pipeline import SEGMENTS_COLUMNS, empty_segments, tidy_segments

    keep = empty_segments() if old is None else old
    keep = keep[~keep["track_id"].isin([int(i) for i in track_ids])].copy()
    if ratio != 1.0:
        keep["d"] = keep["d"].astype(float) * ratio
    parts = [keep] + ([] if new is None else [new])
    return tidy_segments(parts)[SEGMENTS_COLUMNS]
