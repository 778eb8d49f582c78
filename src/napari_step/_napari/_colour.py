"""Colouring Tracks layers by log10 D over a fixed, stated range, with unanalysed tracks in grey.

napari 0.9.2 (issue #5901) normalises the ``color_by`` feature with ``np.min``/``np.ptp``, so a
single NaN in it makes every track transparent. We therefore never colour by a feature that may
hold NaN: the layer is coloured by :data:`COLOUR_FEATURE`, a NaN-free copy of ``step_log10_d``
expressed as the position inside the colour range (0 at ``lo``, 1 at ``hi``, clipped), in which
tracks without a STEP value hold :data:`SENTINEL` (below the range). A custom napari
:class:`~napari.utils.Colormap` registered in the layer's ``colormaps_dict`` for that feature
(so napari applies it without any data-dependent normalisation) draws the range with viridis and
everything at or below 0 - the sentinel - in neutral grey.

Tracks with the per-frame anomalous exponent (``step_alpha``) can instead be coloured by alpha:
the same construction over the fixed range :data:`ALPHA_RANGE` (0..2) in the NaN-free feature
:data:`ALPHA_COLOUR_FEATURE`, drawn with a diverging map centred at alpha = 1 (blue:
subdiffusive, red: superdiffusive), grey where no alpha was predicted.
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
    "ALPHA_COLOUR_FEATURE",
    "ALPHA_RANGE",
    "ALPHA_CMAP_NAME",
    "COLOUR_BY",
    "alpha_colormap",
    "mpl_alpha_colormap",
    "colour_by",
]

COLOUR_FEATURE = "step_log10_d_color"
DEFAULT_RANGE = tuple(DEFAULT_LOG10_RANGE)  # log10 D in the results' units (um^2/s by default)
SENTINEL = -1.0  # colour feature value of tracks (points) without a STEP D
GREY = tuple(NEUTRAL)  # the same neutral grey as the core's matplotlib track pictures
CMAP_NAME = "viridis"
ALPHA_COLOUR_FEATURE = "step_alpha_color"
ALPHA_RANGE = (0.0, 2.0)  # alpha: 1 (normal diffusion) is the centre of the colour range
ALPHA_CMAP_NAME = "coolwarm"  # diverging: blue below alpha = 1, red above
COLOUR_BY = ("log10 D", "alpha")  # what the tracks can be coloured by
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


def _grey_below(name: str, label: str):
    """napari's colormap ``name`` over (0, 1] as a new Colormap ``label``, grey at or below 0
    (the sentinel of unanalysed points) and for NaN."""
    from napari.utils.colormaps import Colormap, ensure_colormap

    base = ensure_colormap(name)
    return Colormap(
        colors=np.asarray(base.colors),
        controls=np.asarray(base.controls),
        name=label,
        low_color=GREY,
        nan_color=GREY,
    )


def d_colormap(name: str = CMAP_NAME):
    """napari Colormap for :data:`COLOUR_FEATURE`: ``name`` over (0, 1], grey at or below 0."""
    return _grey_below(name, f"step_{name}_grey")


def mpl_colormap(name: str = CMAP_NAME):
    """The matplotlib twin of :func:`d_colormap` (for the colour bar and the histogram)."""
    from matplotlib.colors import ListedColormap

    from napari.utils.colormaps import ensure_colormap

    cmap = ListedColormap(np.asarray(ensure_colormap(name).colors)[:, :3], name=f"step_{name}")
    return cmap.with_extremes(bad=GREY, under=GREY)


def alpha_colormap():
    """napari Colormap for :data:`ALPHA_COLOUR_FEATURE`: diverging over (0, 1] (alpha 0..2),
    grey at or below 0 (the sentinel)."""
    return _grey_below(ALPHA_CMAP_NAME, f"step_alpha_{ALPHA_CMAP_NAME}_grey")


def mpl_alpha_colormap():
    """The matplotlib twin of :func:`alpha_colormap` (for the colour bar)."""
    from matplotlib.colors import LinearSegmentedColormap

    from napari.utils.colormaps import ensure_colormap

    base = ensure_colormap(ALPHA_CMAP_NAME)
    cmap = LinearSegmentedColormap.from_list(
        "step_alpha", list(zip(np.asarray(base.controls, float),
                               np.asarray(base.colors)[:, :3])))
    return cmap.with_extremes(bad=GREY, under=GREY)


def colour_by(layer) -> str:
    """What the layer's tracks are coloured by (one of :data:`COLOUR_BY`)."""
    from ._layers import results_metadata

    by = results_metadata(layer).get("colour_by", COLOUR_BY[0])
    return by if by in COLOUR_BY else COLOUR_BY[0]


def apply_colouring(layer, lo: float | None = None, hi: float | None = None,
                    by: str | None = None) -> None:
    """(Re)compute :data:`COLOUR_FEATURE` of a Tracks layer from ``step_log10_d`` and colour by it.

    ``lo``/``hi`` default to the range stored in the layer's metadata, else :data:`DEFAULT_RANGE`.
    The range used is stored in ``layer.metadata['napari_step']['colour_range']``. ``by``
    ("log10 D" or "alpha", default: the stored choice, else "log10 D") picks the colouring; with
    "alpha" the layer is coloured by :data:`ALPHA_COLOUR_FEATURE` (from ``step_alpha``, fixed
    range :data:`ALPHA_RANGE`); the choice is stored as ``colour_by`` in the same metadata.
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
    by = meta.get("colour_by", COLOUR_BY[0]) if by is None else by
    if by not in COLOUR_BY:
        raise ValueError(f"tracks are coloured by one of {COLOUR_BY}, not {by!r}")
    if by == "alpha" or "step_alpha" in feats.columns:
        if "step_alpha" in feats.columns:
            feats[ALPHA_COLOUR_FEATURE] = colour_values(feats["step_alpha"].to_numpy(float),
                                                        *ALPHA_RANGE)
        else:
            feats[ALPHA_COLOUR_FEATURE] = np.full(len(layer.data), SENTINEL)
    set_layer_features(layer, feats)
    cmaps = {**layer.colormaps_dict, COLOUR_FEATURE: d_colormap()}
    if ALPHA_COLOUR_FEATURE in feats.columns:
        cmaps[ALPHA_COLOUR_FEATURE] = alpha_colormap()
    layer.colormaps_dict = cmaps
    # recolours the tracks
    layer.color_by = ALPHA_COLOUR_FEATURE if by == "alpha" else COLOUR_FEATURE
    meta["colour_range"] = [lo, hi]
    meta["colour_by"] = by
    layer.metadata = {**layer.metadata, "napari_step": meta}
