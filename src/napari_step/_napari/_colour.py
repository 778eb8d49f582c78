"""Colouring Tracks layers by log10 D over a fixed, stated range, with unanalysed tracks in grey.

napari 0.9.2 (issue #5901) normalises the ``color_by`` feature with ``np.min``/``np.ptp``, so a
single NaN in it makes every track transparent. We therefore never colour by a feature that may
hold NaN: the layer is coloured by :data:`COLOUR_FEATURE`, a NaN-free copy of ``step_log10_d``
expressed as the position inside the colour range (0 at ``lo``, 1 at ``hi``, clipped), in which
tracks without a STEP value hold :data:`SENTINEL` (below the range). A custom napari
:class:`~napari.utils.Colormap` registered in the layer's ``colormaps_dict`` for that feature
(so napari applies it without any data-dependent normalisation) draws the range with viridis and
everything at or below 0 - the sentinel - in neutral grey.
"""

from __future__ import annotations

import numpy as np

from ..plotting import DEFAULT_LOG10_RANGE, NEUTRAL

__all__ = [
    "COLOUR_FEATURE",
    "DEFAULT_RANGE",
    "GREY",
    "SENTINEL",
    "CMAP_NAME",
    "colour_values",
    "d_colormap",
    "mpl_colormap",
    "apply_colouring",
]

COLOUR_FEATURE = "step_log10_d_color"
DEFAULT_RANGE = tuple(DEFAULT_LOG10_RANGE)  # log10 D in the results' units (um^2/s by default)
SENTINEL = -1.0  # colour feature value of tracks (points) without a STEP D
GREY = tuple(NEUTRAL)  # the same neutral grey as the core's matplotlib track pictures
CMAP_NAME = "viridis"
_EPS = 1e-6  # analysed values never reach 0, which is reserved for grey


def colour_values(log10_d, lo: float, hi: float) -> np.ndarray:
    """NaN-free colour feature: (log10 D - lo) / (hi - lo) clipped to (0, 1]; NaN -> SENTINEL.

    ``-inf`` (a track that never moves, D = 0) is an analysed value below the range and maps to
    the bottom of the colour range, not to grey.
    """
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        raise ValueError(f"the colour range needs low < high, got {lo} .. {hi}")
    v = np.asarray(log10_d, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.clip((v - lo) / (hi - lo), _EPS, 1.0)
    out[np.isnan(v)] = SENTINEL
    return out


def d_colormap(name: str = CMAP_NAME):
    """napari Colormap for :data:`COLOUR_FEATURE`: ``name`` over (0, 1], grey at or below 0."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    base = ensure_colormap(name)
    return Colormap(
        colors=np.asarray(base.colors),
        controls=np.asarray(base.controls),
        name=f"step_{name}_grey",
        low_color=GREY,
        nan_color=GREY,
    )


def mpl_colormap(name: str = CMAP_NAME):
    """The matplotlib twin of :func:`d_colormap` (for the colour bar and the histogram)."""
    from matplotlib.colors import ListedColormap

    from napari.utils.colormaps import ensure_colormap

    cmap = ListedColormap(np.asarray(ensure_colormap(name).colors)[:, :3], name=f"step_{name}")
    return cmap.with_extremes(bad=GREY, under=GREY)


def apply_colouring(layer, lo: float | None = None, hi: float | None = None) -> None:
    """(Re)compute :data:`COLOUR_FEATURE` of a Tracks layer from ``step_log10_d`` and colour by it.

    ``lo``/``hi`` default to the range stored in the layer's metadata, else :data:`DEFAULT_RANGE`.
    The range used is stored in ``layer.metadata['napari_step']['colour_range']``.
    """
    from ._layers import results_metadata, set_layer_features

    meta = results_metadata(layer)
    stored = meta.get("colour_range", DEFAULT_RANGE)
    lo = float(stored[0] if lo is None else lo)
    hi = float(stored[1] if hi is None else hi)
    feats = layer.features.copy()
    if "step_log10_d" in feats.columns:
        feats[COLOUR_FEATURE] = colour_values(feats["step_log10_d"].to_numpy(float), lo, hi)
    else:
        feats[COLOUR_FEATURE] = np.full(len(layer.data), SENTINEL)
    set_layer_features(layer, feats)
    layer.colormaps_dict = {**layer.colormaps_dict, COLOUR_FEATURE: d_colormap()}
    layer.color_by = COLOUR_FEATURE  # recolours the tracks
    meta["colour_range"] = [lo, hi]
    layer.metadata = {**layer.metadata, "napari_step": meta}
