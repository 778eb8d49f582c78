"""trackpy CSV files (``particle``/``track_id``, ``frame``, ``x``, ``y``, optional ``z``, extras),
including the CSV that :func:`napari_step.io.write_tracks` writes."""

from __future__ import annotations

import os

import pandas as pd

from ._common import (
    META_KEY,
    TrackFileError,
    _coerce,
    _existing,
    _match_columns,
    _read_sidecar,
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
    found = _match_columns(
        names,
        {
            "track_id": ["track_id", "particle"],
            "frame": ["frame"],
            "y": ["y"],
            "x": ["x"],
            "z": ["z"],
        },
    )
    missing = [
        ("particle/track_id" if c == "track_id" else c)
        for c in ("track_id", "frame", "x", "y")
        if c not in found
    ]
    if missing:
        hint = ""
        if set(names) & TRACKMATE_CSV_MARKERS or "TRACK_ID" in names:
            hint = " (this looks like a TrackMate table: read it as 'trackmate-csv')"
        shown = names if len(names) <= 25 else names[:25] + ["..."]
        raise TrackFileError(
            f"{name}: missing column(s) {missing} (found: {shown}); a trackpy CSV needs "
            f"particle/track_id, frame, x, y{hint}"
        )
    df, label = _load_csv(p, layout, layout.header_line)
    if len(df) == 0:
        raise TrackFileError(f"{name}: the file has a header but no data rows")
    _coerce(
        df,
        name,
        [found[c] for c in ("track_id", "frame", "z", "y", "x") if c in found],
        int_columns=[found["track_id"], found["frame"]],
        label=label,
    )
    df = df.rename(columns={v: k for k, v in found.items()})
    if "z" in df.columns and df["z"].isna().all():
        df = df.drop(columns="z")
    table = _validated(df, name)
    meta = _read_sidecar(p)
    if meta is not None:
        table.attrs[META_KEY] = meta
    return table
