"""trackpy CSV files (``particle``/``track_id``, ``frame``, ``x``, ``y``, optional ``z``, extras),
including the CSV that :func:`napari_step.io.write_tracks` writes."""

from __future__ import annotations

import os

import pandas as pd

from ._common import (
    META_KEY,
    TRACK_ALIASES,
    TrackFileError,
    _existing,
    _numeric_track_columns,
    _read_sidecar,
    _track_columns,
    _validated,
)
from ._decode import _INDEX, TRACKMATE_CSV_MARKERS, _load_csv, _sniff_csv

__all__ = ["read_trackpy_csv"]


def read_trackpy_csv(path: str | os.PathLike) -> pd.DataFrame:
    """Read a trackpy-style CSV (or one written by :func:`write_tracks`).

    Parameters
    ----------
    path : str or path-like
        CSV (comma, semicolon, tab or whitespace separated) with ``particle`` or ``track_id``,
        ``frame``, ``x``, ``y`` (any letter case; px) and optionally ``z``; every other column
        is kept.

    Returns
    -------
    pandas.DataFrame
        Track table; a sidecar ``<file>.json`` is read into ``attrs["napari_step"]``.
    """
    p = _existing(path)
    layout = _sniff_csv(p)
    name = layout.name
    names = [n for n in layout.names if n != _INDEX]
    hint = ""
    if set(names) & TRACKMATE_CSV_MARKERS or "TRACK_ID" in names:
        hint = " (this looks like a TrackMate table: read it as 'trackmate-csv')"
    needs = f"; a trackpy CSV needs particle/track_id, frame, x, y{hint}"
    found = _track_columns(names, name, TRACK_ALIASES, needs)
    df, label = _load_csv(p, layout, layout.header_line)
    if len(df) == 0:
        raise TrackFileError(f"{name}: the file has a header but no data rows")
    df = _numeric_track_columns(df, name, found, label)
    if "z" in df.columns and df["z"].isna().all():
        df = df.drop(columns="z")
    table = _validated(df, name)
    meta = _read_sidecar(p)
    if meta is not None:
        table.attrs[META_KEY] = meta
    return table
