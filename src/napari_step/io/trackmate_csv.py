"""TrackMate spots-table CSV files ("Spots" / "All spots" table, "Export to CSV")."""

from __future__ import annotations

import os
import re

import numpy as np
import pandas as pd

from ._common import META_KEY, TrackFileError, _apply_pixel_size, _coerce, _existing, _validated
from ._decode import _INDEX, _load_csv, _sniff_csv

__all__ = ["read_trackmate_csv"]


_REQUIRED = ["TRACK_ID", "FRAME", "POSITION_X", "POSITION_Y"]
_RENAME = {
    "TRACK_ID": "track_id",
    "FRAME": "frame",
    "POSITION_X": "x",
    "POSITION_Y": "y",
    "POSITION_Z": "z",
    "ID": "spot_id",
}
_SPLIT_HINT = (
    " - a TrackMate track that splits or merges has several spots per frame; the "
    "spots CSV cannot separate its branches, read the TrackMate XML file instead"
)


def _check_columns(names: list[str], name: str) -> None:
    missing = [c for c in _REQUIRED if c not in names]
    if not missing:
        return
    hint = ""
    if "SPOT_SOURCE_ID" in names:
        hint = " (this is TrackMate's edges table: export the spots table instead)"
    elif "TRACK_DURATION" in names or "NUMBER_SPOTS" in names:
        hint = " (this is TrackMate's tracks table: export the spots table instead)"
    shown = names if len(names) <= 25 else names[:25] + ["..."]
    raise TrackFileError(
        f"{name}: missing column(s) {missing} (found: {shown}); a TrackMate spots CSV "
        f"needs {', '.join(_REQUIRED)}{hint}"
    )


def _units_rows(layout) -> tuple[int, dict]:
    """(lines to skip, metadata): TrackMate >= 7 writes up to 3 rows of long names, short
    names and "(units)" under the header; the units row gives space and time units."""
    ix = layout.names.index("POSITION_X")
    it = layout.names.index("POSITION_T") if "POSITION_T" in layout.names else None
    skip = layout.header_line
    meta = {"source_format": "trackmate-csv"}
    for line_no, fields in layout.records[:3]:
        value = fields[ix].strip() if ix < len(fields) else ""
        try:
            float(value)
            break
        except ValueError:
            pass
        skip = line_no
        m = re.fullmatch(r"\((.*)\)", value)
        if m and m.group(1).strip():
            meta["space_units"] = m.group(1).strip()
        if it is not None and it < len(fields):
            mt = re.fullmatch(r"\((.*)\)", fields[it].strip())
            if mt and mt.group(1).strip():
                meta["time_units"] = mt.group(1).strip()
    return skip, meta


def read_trackmate_csv(path: str | os.PathLike, pixel_size: float | None = None) -> pd.DataFrame:
    """Read a TrackMate spots table CSV ("Spots" / "All spots" table, "Export to CSV").

    TRACK_ID -> track_id, FRAME -> frame, POSITION_X/Y/Z -> x/y/z (z dropped when all zero),
    ID -> spot_id; other columns are kept as they are. Spots without a track are dropped. The
    extra header rows of TrackMate >= 7 (names, short names, units) are skipped. TrackMate
    tracks that split or merge cannot be told apart in this table: use the XML file.

    Parameters
    ----------
    path : str or path-like
        The spots table.
    pixel_size : float, optional
        Size of a pixel in the file's space unit (e.g. um): converts positions to pixels.
        Without it positions stay in the file's units.

    Returns
    -------
    pandas.DataFrame
        Track table; ``attrs["napari_step"]`` holds ``source_format`` and, from the units row,
        ``space_units`` / ``time_units`` (and the pixel size when one was given).
    """
    p = _existing(path)
    layout = _sniff_csv(p)
    name = layout.name
    _check_columns([n for n in layout.names if n != _INDEX], name)
    skip, meta = _units_rows(layout)
    df, label = _load_csv(p, layout, skip)
    if len(df) == 0:
        raise TrackFileError(f"{name}: the file has a header but no spot rows")
    pos = [c for c in ("POSITION_Z", "POSITION_Y", "POSITION_X") if c in df.columns]
    _coerce(
        df,
        name,
        ["TRACK_ID", "FRAME"] + pos,
        int_columns=["TRACK_ID", "FRAME"],
        label=label,
        allow_missing_int=True,
    )
    n_spots = len(df)
    df = df[df["TRACK_ID"].notna()]
    if len(df) == 0:
        raise TrackFileError(
            f"{name}: none of the {n_spots} spots belongs to a track (TRACK_ID is empty)"
        )
    _coerce(df, name, ["FRAME"], int_columns=["FRAME"], label=label)
    df = df.rename(columns=_RENAME)
    if "z" in df.columns and (df["z"].fillna(0) == 0).all():
        df = df.drop(columns="z")
    df["trackmate_track_id"] = df["track_id"].round().astype(np.int64)
    _apply_pixel_size(df, meta, pixel_size, name, assume_physical=True)
    table = _validated(df, name, hint=_SPLIT_HINT)
    table.attrs[META_KEY] = meta
    return table
