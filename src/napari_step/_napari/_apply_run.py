"""A finished STEP run into its Tracks layer without freezing the viewer.

At a large scale (100 000 tracks, a million points) merging a run's rows into the layer's
features, building the NaN-free colour columns and the vertex colours takes about a second; done
in the GUI thread that is a second of frozen viewer. So the work is split:

1. :func:`snapshot_layer` (GUI thread, when Run is clicked; no copies): what the merge reads from
   the layer: its features and data (napari replaces them on every change, never edits them),
   its metadata (copied), napari's row order, the colour choice and its colormaps;
2. :func:`prepare_run` (the worker thread, after the analysis): the merged features in the order
   napari expects them, the new metadata (colour range chosen from the data included), the
   vertex colours, the analysed track IDs, the change points and the run's message;
3. :func:`apply_prepared` (GUI thread): checks that the layer is as it was at Run time, then
   only assigns: features once, metadata once, vertex colours (napari recolours only when the
   layer was not yet coloured by that feature).

A layer that changed meanwhile (features or STEP metadata replaced) is prepared again from its
current state in the GUI thread, so no user edit is lost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ._colour import (
    COLOUR_BY,
    COLOUR_FEATURES,
    auto_range,
    colour_columns,
    feature_colormaps,
)
from ._layers import (
    SEGMENTS_KEY,
    changepoint_positions,
    merge_tables,
    results_metadata,
    tracks_with_values,
)

__all__ = ["LayerSnapshot", "PreparedRun", "snapshot_layer", "prepare_run", "apply_prepared"]


@dataclass
class LayerSnapshot:
    """What a run's merge reads from its layer, taken in the GUI thread (see module doc)."""

    features: pd.DataFrame  # the layer's features object (identity checked at apply time)
    columns: list
    data: np.ndarray  # the layer's data (sorted by track, frame)
    order: np.ndarray | None  # napari's permutation of the features it is given
    metadata: dict  # a shallow copy of layer.metadata
    colour: dict  # by, auto, lo, hi (see _layers.apply_results)
    colormaps: dict  # colour feature -> registered napari Colormap


@dataclass
class PreparedRun:
    """A run ready to be assigned to its layer (built by :func:`prepare_run`)."""

    snapshot: LayerSnapshot
    features: pd.DataFrame  # in napari's input order: ready for ``layer.features = ...``
    metadata: dict  # the new layer metadata (STEP entries; other keys re-read at apply time)
    feature: str  # the colour feature the layer is coloured by
    colours: np.ndarray  # RGBA per vertex (layer order) from that feature's colormap
    analysed: np.ndarray  # every track of the layer with a STEP D after the merge
    changepoints: tuple | None  # (positions, features) of the change points, when segments


def snapshot_layer(layer, colour: dict) -> LayerSnapshot:
    """What :func:`prepare_run` needs from ``layer`` (GUI thread; cheap: nothing is copied but
    the metadata dict).

    Parameters
    ----------
    layer : napari.layers.Tracks
        The layer a run will go to.
    colour : dict
        The colouring: ``by`` (one of :data:`._colour.COLOUR_BY`), ``auto`` (range from the
        data) and ``lo``/``hi`` (log10 D in the results' units).

    Returns
    -------
    LayerSnapshot
    """
    order = getattr(getattr(layer, "_manager", None), "_order", None)
    feats = layer.features
    return LayerSnapshot(
        features=feats,
        columns=list(feats.columns),
        data=np.asarray(layer.data),
        order=None if order is None else np.asarray(order),
        metadata=dict(layer.metadata or {}),
        colour=dict(colour),
        colormaps=feature_colormaps(list(COLOUR_FEATURES.values())),
    )


def _colour_range(feats: pd.DataFrame, colour: dict) -> tuple[float, float, bool]:
    auto = bool(colour.get("auto", True))
    if not auto and float(colour["hi"]) > float(colour["lo"]):
        return float(colour["lo"]), float(colour["hi"]), False
    return (*auto_range(feats["step_log10_d"].to_numpy(float)), True)


def prepare_run(
    snap: LayerSnapshot,
    results: pd.DataFrame,
    track_ids,
    params: dict,
    segments: pd.DataFrame | None,
) -> PreparedRun:
    """Merge a run into a snapshot of its layer and build everything the layer then gets
    (worker thread; nothing in the viewer is touched).

    Parameters
    ----------
    snap : LayerSnapshot
        The layer at Run time (:func:`snapshot_layer`).
    results, track_ids, params, segments
        As for :func:`._layers.merged_results` (``params``: the run's metadata, D units).

    Returns
    -------
    PreparedRun
        The new features (colour columns included, NaN kept in the result columns), metadata
        (colour range, colouring, units), vertex colours, analysed track IDs, change points.
    """
    feats, metadata = merge_tables(
        snap.features, snap.data, snap.metadata, results, track_ids, params, segments
    )
    by = str(snap.colour.get("by", COLOUR_BY[0]))
    by = by if by in COLOUR_BY else COLOUR_BY[0]
    lo, hi, auto = _colour_range(feats, snap.colour)
    colour = colour_columns(feats, lo, hi, by == "alpha", by == "state")
    feature = COLOUR_FEATURES[by]
    colours = snap.colormaps[feature].map(colour[feature])
    analysed = tracks_with_values(snap.data[:, 0], feats["step_d"])
    feats = pd.DataFrame({**{c: feats[c] for c in feats.columns}, **colour})  # 1 block/dtype
    order = snap.order
    if order is not None and len(order) == len(feats) and np.any(order != np.arange(len(order))):
        # napari applies features.iloc[order]: hand over the inverse permutation
        feats = feats.take(np.argsort(order)).reset_index(drop=True)
    meta = metadata["napari_step"]
    meta.update(colour_range=[float(lo), float(hi)], colour_by=by, colour_auto=auto)
    seg = metadata.get(SEGMENTS_KEY)
    cps = None if seg is None else changepoint_positions(snap.data, seg)
    return PreparedRun(snap, feats, metadata, feature, colours, analysed, cps)


def unchanged(layer, snap: LayerSnapshot) -> bool:
    """True when ``layer``'s features, data and STEP metadata (results metadata and segments
    table) are still those of ``snap`` (the same objects; other metadata may differ)."""
    md = layer.metadata or {}
    return (
        layer.features is snap.features
        and list(layer.features.columns) == snap.columns
        and np.asarray(layer.data) is snap.data
        and results_metadata(layer) == dict(snap.metadata.get("napari_step", {}) or {})
        and md.get(SEGMENTS_KEY) is snap.metadata.get(SEGMENTS_KEY)
    )


def apply_prepared(viewer, layer, prep: PreparedRun) -> bool:
    """Assign a prepared run to ``layer`` (GUI thread): features once, metadata once (the
    layer's other metadata kept as they are now), colours, change points, blending.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding ``layer`` (change points layer, blending).
    layer : napari.layers.Tracks
        The layer the run was prepared for.
    prep : PreparedRun
        From :func:`prepare_run`.

    Returns
    -------
    bool
        False (nothing done) when the layer changed since its snapshot (:func:`unchanged`).
    """
    from ._colour import choose_blending, paint_tracks
    from ._layers import update_changepoints

    if not unchanged(layer, prep.snapshot):
        return False
    layer.features = prep.features
    layer.metadata = {**layer.metadata, **prep.metadata}
    paint_tracks(layer, prep.feature, prep.colours, defer_colormap=True)
    update_changepoints(viewer, layer, prep.changepoints)
    choose_blending(viewer, layer)
    return True
