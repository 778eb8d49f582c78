"""TrackMate spots-table CSV files ("Spots" / "All spots" table, "Export to CSV")."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ._common import META_KEY, TrackFileError, _apply_pixel_size, _coerce, _existing, _validated
from ._decode import _INDEX, _load_csv, _sniff_csv

__all__ = ["read_trackmate_csv"]


def read_trackmate_csv(path, pixel_size=None) -> pd.DataFrame:
    """Read a TrackMate spots table CSV ("Spots" / "All spots" table, "Export to CSV").

    TRACK_ID -> track_id, FRAME -> frame, POSITION_X/Y/Z -> x/y/z (z dropped when all zero),
    ID -> spot_id; other columns are kept as they are. Spots without a track are dropped. The
    extra header rows of TrackMate >= 7 (names, short names, units) are skipped and the units row
    gives ``attrs["napari_step"]["space_units"]``. Positions stay in the file's units unless
    ``pixel_size`` (size of a pixel in those units) is given, which converts them to pixels.
    TrackMate tracks that split or merge cannot be told apart in this table: use the XML file.
    """
    p = _existing(path)
    layout = _sniff_csv(p)
    name = layout.name
    names = [n for n in layout.names if n != _INDEX]
    required = ["TRACK_ID", "FRAME", "POSITION_X", "POSITION_Y"]
    missing = [c for c in required if c not in names]
    if missing:
        hint = ""
        if "SPOT_SOURCE_ID" in names:
            hint = " (this is TrackMate's edges table: export the spots table instead)"
        elif "TRACK_DURATION" in names or "NUMBER_SPOTS" in names:
            hint = " (this is TrackMate's tracks table: export the spots table instead)"
        shown = names if len(names) <= 25 else names[:25] + ["..."]
        raise TrackFileError(
            f"{name}: missing column(s) {missing} (found: {shown}); a TrackMate spots CSV "
            f"needs {', '.join(required)}{hint}"
        )

    # TrackMate >= 7: up to 3 rows of long names, short names and "(units)" under the header
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
    df = df.rename(
        columns={
            "TRACK_ID": "track_id",
            "FRAME": "frame",
            "POSITION_X": "x",
            "POSITION_Y": "y",
            "POSITION_Z": "z",
            "ID": "spot_id",
        }
    )
    if "z" in df.columns and (df["z"].fillna(0) == 0).all():
        df = df.drop(columns="z")
    df["trackmate_track_id"] = df["track_id"].round().astype(np.int64)
    _apply_pixel_size(df, meta, pixel_size, name, assume_physical=True)
    table = _validated(
        df,
        name,
        hint=(
            " - a TrackMate track that splits or merges has several spots per frame; the spots CSV "
            "cannot separate its branches, read the TrackMate XML file instead"
        ),
    )
    table.attrs[META_KEY] = meta
    return table
