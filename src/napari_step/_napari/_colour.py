"""Colouring Tracks layers by log10 D over a stated range, with unanalysed tracks in grey.

The range is chosen from the data (:func:`auto_range`: 2-98 % percentiles of the analysed
log10 D, rounded out to readable ticks) unless the user sets one; the choice is stored in the
layer's metadata and in saved files. The layer is drawn translucent over bright images
(:func:`choose_blending`), where additive blending washes colours out.

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

Tracks with the per-frame AnDi-2 state (``step_state``) can be coloured by state: four fixed
colours (:data:`STATE_COLOURS`) from a step-wise ("zero"-interpolated) colormap over the
NaN-free feature :data:`STATE_COLOUR_FEATURE` (state k at (k + 0.5) / 4), grey where no state
was predicted.
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
    "nice_range",
    "auto_range",
    "colour_features",
    "colour_columns",
    "feature_colormaps",
    "COLOUR_FEATURES",
    "registered_colormap",
    "show_colouring",
    "paint_tracks",
    "choose_blending",
    "bright_background",
    "colouring_kwargs",
    "STATE_COLOUR_FEATURE",
    "STATE_NAMES",
    "STATE_COLOURS",
    "state_values",
    "state_colormap",
]

COLOUR_FEATURE = "step_log10_d_color"
DEFAULT_RANGE = tuple(DEFAULT_LOG10_RANGE)  # log10 D in the results' units (um^2/s by default)
SENTINEL = -1.0  # colour feature value of tracks (points) without a STEP D
GREY = tuple(NEUTRAL)  # the same neutral grey as the core's matplotlib track pictures
CMAP_NAME = "viridis"
ALPHA_COLOUR_FEATURE = "step_alpha_color"
ALPHA_RANGE = (0.0, 2.0)  # alpha: 1 (normal diffusion) is the centre of the colour range
ALPHA_CMAP_NAME = "coolwarm"  # diverging: blue below alpha = 1, red above
COLOUR_BY = ("log10 D", "alpha", "state")  # what the tracks can be coloured by
STATE_COLOUR_FEATURE = "step_state_color"
STATE_NAMES = ("immobile", "confined", "free", "directed")  # index = AnDi-2 state number
STATE_COLOURS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16))
COLOUR_FEATURES = {
    "log10 D": COLOUR_FEATURE,
    "alpha": ALPHA_COLOUR_FEATURE,
    "state": STATE_COLOUR_FEATURE,
}
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


def state_values(states) -> np.ndarray:
    """NaN-free colour feature of AnDi-2 states 0..3: (k + 0.5) / 4; NaN (or any other
    value) -> SENTINEL (grey)."""
    v = np.asarray(states, dtype=float)
    ok = np.isin(v, np.arange(len(STATE_NAMES)))
    return np.where(ok, (np.where(ok, v, 0.0) + 0.5) / len(STATE_NAMES), SENTINEL)


def state_colormap():
    """napari Colormap for :data:`STATE_COLOUR_FEATURE`: one fixed colour per state (steps of
    1/4 over (0, 1]), grey at or below 0 (the sentinel) and for NaN."""
    from napari.utils.colormaps import Colormap

    n = len(STATE_NAMES)
    return Colormap(
        colors=np.array([(*c, 1.0) for c in STATE_COLOURS]),
        controls=np.linspace(0.0, 1.0, n + 1),
        interpolation="zero",
        name="step_state_grey",
        display_name="STEP states (grey: none)",
        low_color=GREY,
        nan_color=GREY,
    )


_BINS = 256  # colours of the track colormaps (as many as napari's and matplotlib's tables)


def _grey_below(name: str, label: str):
    """napari's colormap ``name`` over (0, 1] as a new Colormap ``label``, grey at or below 0
    (the sentinel of unanalysed points) and for NaN.

    The map is a table of :data:`_BINS` colours ("zero" interpolation: each bin the base map's
    colour at its centre, at most 1/512 of the range away from the linear map): napari then
    colours a vertex with one binary search instead of four interpolations, which is 3-4 times
    faster on a million track points, and it draws what the matplotlib colour bar shows (a
    256-colour table too).
    """
    from napari.utils.colormaps import Colormap, ensure_colormap

    base = ensure_colormap(name)
    edges = np.linspace(0.0, 1.0, _BINS + 1)
    return Colormap(
        colors=np.asarray(base.map(0.5 * (edges[:-1] + edges[1:])), dtype=np.float32),
        controls=edges,
        interpolation="zero",
        name=label,
        display_name=f"STEP {name} (grey: none)",
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
        "step_alpha", list(zip(np.asarray(base.controls, float), np.asarray(base.colors)[:, :3]))
    )
    return cmap.with_extremes(bad=GREY, under=GREY)


def colour_by(layer) -> str:
    """What the layer's tracks are coloured by (one of :data:`COLOUR_BY`)."""
    from ._layers import results_metadata

    by = results_metadata(layer).get("colour_by", COLOUR_BY[0])
    return by if by in COLOUR_BY else COLOUR_BY[0]


def nice_range(lo: float, hi: float, max_ticks: int = 8) -> tuple[float, float]:
    """``lo``..``hi`` widened to multiples of a readable tick step (0.1, 0.2, 0.25, 0.5, 1, 2,
    5), the smallest step that gives at most ``max_ticks`` intervals."""
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        lo, hi = lo - 0.5, lo + 0.5
    for step in (0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        a, b = np.floor(lo / step + 1e-9) * step, np.ceil(hi / step - 1e-9) * step
        if (b - a) / step <= max_ticks:
            break
    return round(float(a), 6), round(float(b), 6)


def auto_range(log10_d, percentiles=(2.0, 98.0), min_span: float = 0.5) -> tuple[float, float]:
    """A colour range for log10 D from the data: robust percentiles (2-98 % by default) of the
    finite values, at least ``min_span`` decades wide, rounded out to readable ticks
    (:func:`nice_range`); :data:`DEFAULT_RANGE` when there is no finite value."""
    v = np.asarray(log10_d, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return tuple(float(x) for x in DEFAULT_RANGE)
    lo, hi = np.percentile(v, percentiles)
    if hi - lo < min_span:
        mid = 0.5 * (lo + hi)
        lo, hi = mid - min_span / 2, mid + min_span / 2
    return nice_range(lo, hi)


def colour_columns(feats, lo: float, hi: float, alpha: bool = False, state: bool = False) -> dict:
    """The NaN-free colour columns of a features table, as arrays (see
    :func:`colour_features`).

    Parameters
    ----------
    feats : pandas.DataFrame
        A Tracks layer's features (``step_log10_d``, maybe ``step_alpha``, ``step_state``).
    lo, hi : float
        The log10 D colour range (the results' units).
    alpha, state : bool
        Also make the alpha / state colour column when the features lack their source.

    Returns
    -------
    dict
        Colour feature name -> float64 array (values in (0, 1], :data:`SENTINEL` for none).
    """
    n = len(feats)
    out = {}
    if "step_log10_d" in feats.columns:
        out[COLOUR_FEATURE] = colour_values(feats["step_log10_d"].to_numpy(float), lo, hi)
    else:
        out[COLOUR_FEATURE] = np.full(n, SENTINEL)
    if "step_alpha" in feats.columns:
        out[ALPHA_COLOUR_FEATURE] = colour_values(feats["step_alpha"].to_numpy(float), *ALPHA_RANGE)
    elif alpha:
        out[ALPHA_COLOUR_FEATURE] = np.full(n, SENTINEL)
    if "step_state" in feats.columns:
        out[STATE_COLOUR_FEATURE] = state_values(feats["step_state"].to_numpy(float))
    elif state:
        out[STATE_COLOUR_FEATURE] = np.full(n, SENTINEL)
    return out


def colour_features(feats, lo: float, hi: float, alpha: bool = False, state: bool = False):
    """A copy of a Tracks layer's features with the NaN-free colour columns (re)computed:
    :data:`COLOUR_FEATURE` from ``step_log10_d`` over ``lo``..``hi`` and, when the features
    hold ``step_alpha`` (or ``alpha`` is asked for), :data:`ALPHA_COLOUR_FEATURE` over
    :data:`ALPHA_RANGE`; likewise :data:`STATE_COLOUR_FEATURE` from ``step_state`` (or
    ``state``). The result columns themselves keep their NaN. The copy is built in one go
    (one block per dtype), which napari takes over without consolidating it again."""
    import pandas as pd

    columns = {c: feats[c] for c in feats.columns}
    columns.update(colour_columns(feats, lo, hi, alpha, state))
    return pd.DataFrame(columns, index=feats.index)


def registered_colormap(by: str):
    """The grey-below napari Colormap of a colouring, registered with napari under its own
    name so the layer controls show the colormap that is really drawn."""
    from napari.utils.colormaps import ensure_colormap

    makers = {"alpha": alpha_colormap, "state": state_colormap}
    cmap = makers.get(by, d_colormap)()
    ensure_colormap(cmap)
    return cmap


def feature_colormaps(columns) -> dict:
    """colour feature -> registered colormap, for the colour features among ``columns``."""
    return {f: registered_colormap(by) for by, f in COLOUR_FEATURES.items() if f in columns}


def paint_tracks(layer, feature: str, colours=None, defer_colormap: bool = False) -> None:
    """Colour a Tracks layer by a colour ``feature`` (already in its features) with that
    feature's registered colormap, recolouring once where napari allows it.

    When the layer is already coloured by ``feature`` with that colormap, ``colours`` (the
    colormap applied to the feature, one RGBA row per point in the layer's order), when given,
    are assigned as they are and napari recolours nothing. Otherwise napari recolours; on a
    layer's very first colouring twice (once for the feature, once for the colormap the layer
    controls show): with ``defer_colormap`` the second one waits for the next turn of the Qt
    event loop, so the viewer is not frozen for both at once.
    """
    cmaps = feature_colormaps(layer.features.columns)
    layer.colormaps_dict = {**layer.colormaps_dict, **cmaps}
    name = cmaps[feature].name
    if layer.color_by != feature:
        layer.color_by = feature  # napari recolours from the colormaps_dict entry
        if layer.colormap != name and defer_colormap:
            _later(_show_colormap_name, layer, name)
        elif layer.colormap != name:
            layer.colormap = name
    elif layer.colormap != name:
        layer.colormap = name
    elif colours is not None:
        layer.track_colors = colours
    else:
        layer.color_by = feature  # recolours the tracks (one pass over the vertices)


def _later(fn, layer, *args) -> None:
    """``fn(layer, *args)`` at the next turn of the Qt event loop, unless the layer is gone."""
    import weakref

    from qtpy.QtCore import QTimer

    ref = weakref.ref(layer)

    def run():
        lyr = ref()
        if lyr is not None:
            fn(lyr, *args)

    QTimer.singleShot(0, run)


def _show_colormap_name(layer, name: str) -> None:
    """Let the layer controls show the colormap the tracks are drawn with (napari recolours
    with the same colours)."""
    if layer.colormap != name and layer.colormaps_dict.get(layer.color_by) is not None:
        if layer.colormaps_dict[layer.color_by].name == name:
            layer.colormap = name


def show_colouring(layer, lo: float, hi: float, by: str, auto: bool | None = None) -> None:
    """Colour a Tracks layer whose features already hold the colour columns
    (:func:`colour_features`): napari's per-feature colormap for the colour column, the layer's
    colormap set to that same (registered) colormap, and the choice stored in
    ``layer.metadata['napari_step']`` (``colour_range``, ``colour_by``, ``colour_auto``)."""
    from ._layers import results_metadata

    if by not in COLOUR_BY:
        raise ValueError(f"tracks are coloured by one of {COLOUR_BY}, not {by!r}")
    feature = COLOUR_FEATURES[by]
    if feature not in layer.features.columns:
        raise ValueError(f"the layer '{layer.name}' has no {feature!r} feature")
    paint_tracks(layer, feature)
    meta = results_metadata(layer)
    meta["colour_range"] = [float(lo), float(hi)]
    meta["colour_by"] = by
    if auto is not None:
        meta["colour_auto"] = bool(auto)
    layer.metadata = {**layer.metadata, "napari_step": meta}


def apply_colouring(
    layer,
    lo: float | None = None,
    hi: float | None = None,
    by: str | None = None,
    auto: bool | None = None,
) -> None:
    """(Re)compute the colour columns of a Tracks layer and colour it (one features update).

    ``lo``/``hi`` default to the range stored in the layer's metadata, else (``auto``, or no
    stored range) the range chosen from the data by :func:`auto_range`. ``by`` ("log10 D" or
    "alpha", default: the stored choice, else "log10 D"). Used by the STEP widget and by the
    reader, so a saved file opens coloured as it was.
    """
    from ._layers import results_metadata, set_layer_features

    meta = results_metadata(layer)
    if auto is None:
        auto = bool(meta.get("colour_auto", "colour_range" not in meta))
    if lo is None or hi is None:
        if auto and "step_log10_d" in layer.features.columns:
            rng = auto_range(layer.features["step_log10_d"].to_numpy(float))
        else:
            rng = meta.get("colour_range", DEFAULT_RANGE)
        lo = float(rng[0]) if lo is None else lo
        hi = float(rng[1]) if hi is None else hi
    by = meta.get("colour_by", COLOUR_BY[0]) if by is None else by
    if by not in COLOUR_BY:
        raise ValueError(f"tracks are coloured by one of {COLOUR_BY}, not {by!r}")
    set_layer_features(layer, colour_features(layer.features, lo, hi, by == "alpha", by == "state"))
    show_colouring(layer, lo, hi, by, auto)


def bright_background(viewer, layer, threshold: float = 0.4) -> bool:
    """True when a visible image under ``layer`` is bright (its current frame's median sits
    above ``threshold`` of its contrast range): additive blending would wash the colours out."""
    from napari.layers import Image

    layers = list(viewer.layers)
    below = layers[: layers.index(layer)] if layer in layers else layers
    for img in reversed(below):
        if not isinstance(img, Image) or not img.visible or img.rgb:
            continue
        data = img.data
        step = viewer.dims.current_step
        idx = tuple(
            min(max(int(step[i]) if i < len(step) else 0, 0), data.shape[i] - 1)
            for i in range(data.ndim - 2)
        )
        frame = np.asarray(data[idx][::4, ::4], dtype=float)
        lo, hi = (float(c) for c in img.contrast_limits)
        if hi > lo and frame.size:
            return bool((np.median(frame) - lo) / (hi - lo) > threshold)
    return False


def choose_blending(viewer, layer) -> str:
    """Blending for a coloured Tracks layer: translucent over a bright image, else additive."""
    blending = "translucent" if bright_background(viewer, layer) else "additive"
    layer.blending = blending
    return blending


def colouring_kwargs(feats, meta: dict) -> dict:
    """Tracks-layer keyword arguments that colour a file's results as they were saved.

    ``feats`` (the layer's features, result columns included) gets its colour columns added
    in place; ``meta`` is the saved ``napari_step`` metadata (``colour_range``, ``colour_by``,
    ``colour_auto``). The reader calls this, the widget :func:`apply_colouring`: both colour
    with :func:`colour_features` and the same registered colormaps.
    """
    by = meta.get("colour_by", COLOUR_BY[0])
    by = by if by in COLOUR_BY else COLOUR_BY[0]
    if "colour_range" in meta and not meta.get("colour_auto", False):
        lo, hi = (float(v) for v in meta["colour_range"])
    else:
        lo, hi = auto_range(feats["step_log10_d"].to_numpy(float))
    source = {"alpha": "step_alpha", "state": "step_state"}
    if by in source and source[by] not in feats.columns:
        by = COLOUR_BY[0]
    coloured = colour_features(feats, lo, hi)
    for c in COLOUR_FEATURES.values():
        if c in coloured.columns:
            feats[c] = coloured[c].to_numpy()
    cmaps = feature_colormaps(feats.columns)
    feature = COLOUR_FEATURES[by]
    meta.update({"colour_range": [lo, hi], "colour_by": by})
    return {"color_by": feature, "colormaps_dict": cmaps, "colormap": cmaps[feature].name}


# registered when the plugin's GUI loads, before any layer controls list the colormaps
for _by in COLOUR_BY:
    registered_colormap(_by)
del _by
