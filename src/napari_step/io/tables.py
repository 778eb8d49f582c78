"""Track tables written by napari-step: Parquet reading and the track-table writer.

(CSV files written by :func:`write_tracks` are read by :func:`read_trackpy_csv`.)
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..tracks import validate_table
from ._common import (
    META_KEY,
    TRACK_ALIASES,
    TrackFileError,
    _canonical_order,
    _existing,
    _first_line,
    _numeric_track_columns,
    _read_sidecar,
    _track_columns,
    _validated,
)
from ._decode import _empty_check, _read_head
from ._write import write_table

__all__ = ["read_parquet", "write_tracks"]


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    """Read a Parquet track table (as written by :func:`write_tracks`).

    Parameters
    ----------
    path : str or path-like
        Parquet file with ``track_id`` (or ``particle``), ``frame``, ``x``, ``y`` (px),
        optionally ``z``.

    Returns
    -------
    pandas.DataFrame
        Track table; metadata embedded in the file and from its sidecar ``<file>.json`` go into
        ``attrs["napari_step"]``.
    """
    p = _existing(path)
    name = p.name
    _empty_check(_read_head(p), name)
    try:
        df = pd.read_parquet(p)
    except ImportError:
        raise TrackFileError(
            f"{name}: reading Parquet files needs pyarrow (pip install pyarrow)"
        ) from None
    except Exception as e:  # pyarrow raises its own exception types for corrupt files
        raise TrackFileError(f"{name}: not a readable Parquet file ({_first_line(e)})") from None
    embedded = df.attrs.get(META_KEY)
    attrs = dict(embedded) if isinstance(embedded, dict) else {}
    if df.index.name is not None and df.index.name not in df.columns:
        df = df.reset_index()
    df = df.reset_index(drop=True)
    df.columns = [str(col) for col in df.columns]
    found = _track_columns(list(df.columns), name, TRACK_ALIASES)
    df = _numeric_track_columns(df, name, found)
    table = _validated(df, name)
    meta = _read_sidecar(p)
    if meta is not None:
        attrs.update(meta)
    if attrs:
        table.attrs[META_KEY] = attrs
    return table


def write_tracks(
    table: pd.DataFrame, path: str | os.PathLike, metadata: dict | None = None
) -> Path:
    """Write a track table as CSV, or Parquet when ``path`` ends in ``.parquet``/``.pq``.

    The table is validated and written sorted, with ``track_id, frame, (z,) y, x`` first, so
    :func:`read_tracks` gives back an equal table.

    Parameters
    ----------
    table : pandas.DataFrame
        A track table (see :mod:`napari_step.tracks`); positions in the table's units
        (pixels unless its metadata says otherwise).
    path : str or path-like
        Target file; its folder must exist.
    metadata : dict, optional
        Merged over ``table.attrs["napari_step"]`` into the JSON sidecar ``<path>.json`` (a stale
        sidecar is removed when there is no metadata at all).

    Returns
    -------
    pathlib.Path
        The path written. Both files are written atomically by :func:`write_table`.
    """
    out = validate_table(table, "track table to write")
    out.columns = [str(col) for col in out.columns]
    out = _canonical_order(out)
    attrs_meta = table.attrs.get(META_KEY)
    out.attrs = {META_KEY: dict(attrs_meta)} if isinstance(attrs_meta, dict) else {}
    return write_table(out, path, metadata)
