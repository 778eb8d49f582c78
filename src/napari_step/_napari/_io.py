"""Reader, writer and results export for Tracks layers (npe2 contributions).

The file formats themselves are the core's business (:mod:`napari_step.io`: trackpy CSV,
TrackMate CSV/XML, CSV/Parquet with a JSON sidecar, AnDi-2 trajectories); this module only
converts between track tables and napari layer data, and turns every failure into a notification.

Which reader napari uses: TrackMate XML and Parquet files have no other reader, so napari opens
them with napari-step directly (drag and drop, File > Open, ``viewer.open(path, plugin=None)``).
Every ``*.csv`` is also claimed by napari's built-in reader, so napari asks which reader to use
unless its reader preference names one; :func:`set_default_reader` sets that preference (what
the dialog's "remember" box does). ``viewer.open(path)`` with napari's default ``plugin="napari"``
always uses the built-in reader, which cannot read track CSVs: pass ``plugin="napari-step"`` or
``plugin=None``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from napari.utils import notifications

from ..io import TrackFileError, read_tracks, write_tracks
from ..tracks import TrackTableError, from_napari, to_napari
from ._colour import (
    ALPHA_COLOUR_FEATURE,
    COLOUR_FEATURE,
    STATE_COLOUR_FEATURE,
    colouring_kwargs,
)
from ._layers import layer_table, results_metadata

__all__ = [
    "TRACK_EXTENSIONS",
    "WRITE_EXTENSIONS",
    "get_reader",
    "read_tracks_file",
    "set_default_reader",
    "FILE_ERRORS",
    "tracks_layer_data",
    "write_tracks_layer",
    "export_results",
    "export_metadata",
]

TRACK_EXTENSIONS = (".csv", ".tsv", ".xml", ".parquet", ".pq")
WRITE_EXTENSIONS = (".csv", ".parquet")


FILE_ERRORS = (TrackFileError, TrackTableError, ValueError, OSError, KeyError)


def _file_errors() -> tuple:
    """The exceptions a bad track file or a failed write can raise (see :data:`FILE_ERRORS`)."""
    return FILE_ERRORS


_ID_COLUMNS = {"track_id", "particle", "traj_idx"}


def _looks_like_tracks(path: Path) -> bool:
    """Cheap sniffing so that we do not claim every CSV or XML file napari is asked to open.

    A table qualifies when its header names a ``frame`` column and a track id column
    (``track_id``, ``particle``, ``traj_idx``; TrackMate's ``TRACK_ID``): napari-step's own
    per-track and segment tables (``first_frame``, ``start_frame``) are left to other readers.
    """
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096).lower()
    except OSError:
        return False
    if suffix == ".xml":
        return "trackmate" in head or "<tracks" in head or "<model" in head
    first = head.lstrip("\ufeff").splitlines()[0] if head.strip() else ""
    names = {n.strip().strip('"') for n in re.split(r"[,;\t]|\s+", first)}
    return "frame" in names and bool(names & _ID_COLUMNS)


def get_reader(path):
    """npe2 reader: a callable for track files, else None (the file is left to other readers).

    Parameters
    ----------
    path : str or list of str
        One path (a list of exactly one path is accepted).

    Returns
    -------
    callable or None
        :func:`read_tracks_file` for CSV/TSV track tables (trackpy, TrackMate spots, napari-step
        results, AnDi-2 trajectories), TrackMate XML and Parquet files.
    """
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
    if p.suffix.lower() not in TRACK_EXTENSIONS or not p.is_file() or not _looks_like_tracks(p):
        return None
    return read_tracks_file


def set_default_reader(patterns: Sequence[str] = ("*.csv",)) -> dict[str, str]:
    """Make napari open files matching ``patterns`` with napari-step without asking.

    Sets napari's reader preference (``settings.plugins.extension2reader``, saved with the
    user's settings; what the reader dialog's "remember" box does). Files napari-step declines
    (CSV without track columns) then fail with napari-step and napari offers the other readers.

    Parameters
    ----------
    patterns : sequence of str
        Filename patterns, e.g. ``("*.csv",)`` or ``("*.results.csv",)``.

    Returns
    -------
    dict
        The preference mapping after the change.
    """
    from napari.settings import get_settings

    prefs = get_settings().plugins
    mapping = dict(prefs.extension2reader)
    for pattern in patterns:
        if not isinstance(pattern, str) or not pattern.startswith("*"):
            raise ValueError(f"reader patterns look like '*.csv', got {pattern!r}")
        mapping[pattern] = "napari-step"
    prefs.extension2reader = mapping
    return dict(prefs.extension2reader)


def read_tracks_file(path: str | list[str]) -> list[tuple]:
    """Read one track file into a Tracks layer; a failure is a notification, not a traceback.

    Parameters
    ----------
    path : str or list of str
        The file (see :func:`napari_step.io.read_tracks` for the formats).

    Returns
    -------
    list of tuple
        ``[(data, kwargs, "tracks")]``, or napari's "nothing to add" ``[(None,)]`` on failure.
    """
    if isinstance(path, (list, tuple)):
        path = path[0]
    p = Path(str(path))
    try:
        table = read_tracks(p)
        return [tracks_layer_data(table, name=p.stem)]
    except FILE_ERRORS as e:
        notifications.show_error(f"napari-step could not read {p.name}: {e}")
    return [(None,)]  # napari's "nothing to add" sentinel


_RESULT_KEYS = (
    "units",
    "pixel_size_um",
    "frame_interval_s",
    "model",
    "tamsd_window",
    "colour_range",
    "colour_by",
    "colour_auto",
    "segment_estimator",
    "alpha_model",
)
_SECONDS = {"s", "sec", "second", "seconds"}
_MICRONS = {"um", "micron", "microns", "µm", "μm", "micrometer", "micrometre", "micrometers"}


def _table_metadata(table: pd.DataFrame) -> dict:
    """The file's metadata (``table.attrs['napari_step']``, as :mod:`napari_step.io` sets it)."""
    md = (getattr(table, "attrs", {}) or {}).get("napari_step", {})
    return dict(md) if isinstance(md, dict) else {}


def _layer_metadata(md: dict, has_results: bool) -> dict:
    """Layer metadata from file metadata: acquisition units and, with results, how they were
    computed (see :mod:`._layers` for the conventions)."""
    out: dict = {"file": {k: v for k, v in md.items() if k != "layer"}}
    px, dt = md.get("pixel_size_um"), md.get("frame_interval_s")
    if px is None and str(md.get("space_units", "")).strip().lower() in _MICRONS:
        px = 1.0  # positions are already in microns
    if dt is None and str(md.get("time_units", "")).strip().lower() in _SECONDS:
        dt = md.get("source_frame_interval")
    if px is not None:
        out["pixel_size_um"] = float(px)
    if dt is not None:
        out["frame_interval_s"] = float(dt)
    if has_results and "units" in md:
        out["napari_step"] = {k: md[k] for k in _RESULT_KEYS if k in md}
    return out


def tracks_layer_data(
    table: pd.DataFrame, name: str = "tracks", metadata: dict | None = None
) -> tuple[np.ndarray, dict, str]:
    """napari layer data for a track table; result columns come with the STEP colouring.

    Parameters
    ----------
    table : pandas.DataFrame
        Track table (positions in px); its ``attrs["napari_step"]`` carries the file metadata.
    name : str
        Layer name.
    metadata : dict, optional
        Overrides of the file metadata.

    Returns
    -------
    tuple
        ``(data, kwargs, "tracks")``: napari Tracks data, layer keyword arguments (features,
        metadata with pixel size um / frame interval s, scale and translate as saved, the
        colouring when results are present) and the layer type.
    """
    md = {**_table_metadata(table), **(metadata or {})}
    data, feats = to_napari(table)
    has_results = "step_log10_d" in feats.columns
    layer_md = _layer_metadata(md, has_results)
    kwargs: dict = {"name": name, "features": feats, "metadata": layer_md, "tail_length": 30}
    layer_info = md.get("layer") if isinstance(md.get("layer"), dict) else {}
    ndim = data.shape[1] - 1
    for key in ("scale", "translate"):
        val = layer_info.get(key)
        if val is not None and len(val) == ndim:
            kwargs[key] = [float(v) for v in val]
    if has_results:  # the STEP widget's colouring, as saved (D or alpha, range)
        kwargs.update(colouring_kwargs(feats, layer_md.setdefault("napari_step", {})))
    return data, kwargs, "tracks"


_STATE_NAMES = {0: "immobile", 1: "confined", 2: "free", 3: "directed"}  # AnDi-2 numbering
_STATE_UNITS = ", ".join(f"{k} {name}" for k, name in _STATE_NAMES.items())  # as the segments'


def _column_units(units: str | None, columns) -> dict:
    """Units of the columns of an exported table ("" for numbers without units: alpha,
    probabilities, flags; the state numbering for ``step_state``, as the segments table's
    sidecar says it); without ``columns`` the usual ones."""
    out = {"track_id": "", "frame": "frame", "x": "px", "y": "px", "z": "px"}
    out["d_true"] = "px^2/frame"  # simulated truth, as the simulators give it
    if units is not None:
        log = f"log10({units})"
        out.update({c: units for c in ("step_d", "tamsd_d", "segment_d")})
        out.update({c: log for c in ("step_log10_d", "tamsd_log10_d", "segment_log10_d")})
        out.update({"step_alpha": "", "step_state": _STATE_UNITS, "changepoint": ""})
    if columns is None:
        return out
    return {str(c): out.get(str(c), "") for c in columns}


def export_metadata(
    layer_metadata: dict,
    name: str | None = None,
    scale=None,
    translate=None,
    columns=None,
) -> dict:
    """Flat metadata for the JSON sidecar of an exported layer.

    Parameters
    ----------
    layer_metadata : dict
        The layer's metadata (``napari_step`` results entry, ``pixel_size_um``,
        ``frame_interval_s``...).
    name : str, optional
        Layer name.
    scale, translate : array_like, optional
        The layer's geometry, so that a re-opened file lies where it was.
    columns : sequence of str, optional
        The exported table's columns: ``column_units`` then names every one of them ("" for
        unitless ones such as ``step_alpha`` and probabilities, the numbering for
        ``step_state``); without it, the usual columns.

    Returns
    -------
    dict
        JSON-ready: D units, model, pixel size (um) and frame interval (s) the results were
        computed with (else the acquisition's), ``column_units``, ``layer`` and, when
        ``step_state`` is exported, ``state_names`` (AnDi-2 number -> name).
    """
    layer_metadata = dict(layer_metadata or {})
    res = dict(layer_metadata.get("napari_step", {}) or {})
    md: dict = {}
    for k in ("pixel_size_um", "frame_interval_s", "source_image"):
        if k in layer_metadata:
            md[k] = layer_metadata[k]
    md.update({k: res[k] for k in _RESULT_KEYS if k in res})
    md["column_units"] = _column_units(res.get("units"), columns)
    if columns is not None and "step_state" in md["column_units"]:
        md["state_names"] = dict(_STATE_NAMES)
    md["layer"] = {
        "name": name,
        "scale": None if scale is None else [float(v) for v in np.asarray(scale)],
        "translate": None if translate is None else [float(v) for v in np.asarray(translate)],
    }
    return json.loads(
        json.dumps(md, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


def _without_colours(table: pd.DataFrame) -> pd.DataFrame:
    """The table without the colour columns (the reader computes them again)."""
    colours = [COLOUR_FEATURE, ALPHA_COLOUR_FEATURE, STATE_COLOUR_FEATURE]
    return table.drop(columns=colours, errors="ignore")


def _write(table: pd.DataFrame, path, metadata: dict) -> list[str]:
    p = Path(str(path))
    if p.suffix.lower() not in WRITE_EXTENSIONS:
        raise ValueError(f"tracks can be saved as {', '.join(WRITE_EXTENSIONS)}, not {p.name!r}")
    written = write_tracks(_without_colours(table), p, metadata=metadata)
    return [str(written or p)]


def write_tracks_layer(path: str, data, meta: dict) -> list[str]:
    """npe2 single-layer writer: a Tracks layer (positions + features) -> CSV/Parquet + sidecar.

    Parameters
    ----------
    path : str
        Target ``.csv`` or ``.parquet``.
    data : array_like
        napari Tracks data (track_id, t, (z,) y, x).
    meta : dict
        The layer's attributes (features, metadata, name, scale, translate).

    Returns
    -------
    list of str
        The paths written (empty on failure, which is a notification).
    """
    table = from_napari(np.asarray(data), meta.get("features"))
    table = _without_colours(table)
    md = export_metadata(
        meta.get("metadata", {}),
        meta.get("name"),
        meta.get("scale"),
        meta.get("translate"),
        columns=table.columns,
    )
    try:
        return _write(table, path, md)
    except FILE_ERRORS as e:
        notifications.show_error(f"napari-step could not save {Path(str(path)).name}: {e}")
        return []


def export_results(layer, path: str | os.PathLike) -> list[str]:
    """Write a Tracks layer's results table; what the STEP widget's Export button calls.

    Parameters
    ----------
    layer : napari.layers.Tracks
        The analysed layer.
    path : str or path-like
        Target ``.csv`` or ``.parquet`` (track_id, frame, positions in px, features incl. D in
        the layer's units; units and model in the JSON sidecar).

    Returns
    -------
    list of str
        The paths written. Raises :class:`napari_step.io.TrackFileError` or ValueError on
        failure.
    """
    table = layer_table(layer)
    table.attrs = {}
    meta = {**layer.metadata, "napari_step": results_metadata(layer)}
    table = _without_colours(table)
    md = export_metadata(meta, layer.name, layer.scale, layer.translate, columns=table.columns)
    return _write(table, path, md)
