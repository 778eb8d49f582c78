"""Reading and writing track files (no Qt or napari here).

Readers return a validated, sorted track table (see :mod:`napari_step.tracks`): ``track_id``,
``frame``, ``(z,) y, x`` first, then every other column of the file. What is known about the
file's units goes into ``table.attrs["napari_step"]``:

* ``space_units`` - unit of ``x``/``y``/``z`` as written in the file ("micron", "px"...); absent
  when the file does not say (trackpy files are in pixels);
* ``time_units``, ``source_format``, ``source_pixel_size``, ``source_frame_interval`` - what a
  TrackMate file records about its image;
* ``pixel_size``, ``pixel_size_units`` (and ``pixel_size_um`` for micron files) - set when a
  ``pixel_size`` was given to convert physical positions to pixels;
* for files written by :func:`write_tracks`, whatever was in their JSON sidecar.

Every problem with a file raises :class:`TrackFileError` with a message that starts with the
file's name and says what is wrong; parser exceptions never escape.

One module per format, over one sniffing/decoding module (:mod:`._decode`) and one atomic
table-plus-sidecar writer (:func:`write_table`, used by every export of the package):

* :mod:`.trackpy_csv` - trackpy CSV (``particle`` or ``track_id``, ``frame``, ``x``, ``y``,
  optional ``z``, extras) and the CSV written by :func:`write_tracks`; comma, semicolon, tab or
  whitespace separated (a decimal comma is accepted with ``;``/tab), with or without a pandas
  index column.
* :mod:`.trackmate_csv` - TrackMate spots table CSV (TrackMate 7+ writes up to three extra header
  rows - names, short names, units - which are skipped; the units row gives ``space_units``).
* :mod:`.trackmate_xml` - TrackMate XML: the full session file and the simple "Export tracks to
  XML" file. Tracks that split or merge are cut into linear pieces (new ids) - the original id
  stays in ``trackmate_track_id``. DOCTYPE and ENTITY declarations are refused.
* :mod:`.tables` - Parquet (``.parquet``) and the track-table writer :func:`write_tracks`.
* :mod:`.andi2` - AnDi-2 challenge files: trajectories (``trajs_fov_*.csv``) in, single-trajectory
  and ensemble predictions out, the submission folder layout.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import pandas as pd

from ._common import META_KEY, TrackFileError, _apply_pixel_size, _existing, sidecar_path
from ._decode import TRACKMATE_CSV_MARKERS, _read_head, _sniff_csv
from ._write import atomic_write, write_table
from .andi2 import read_andi2_trajectories
from .tables import read_parquet, write_tracks
from .trackmate_csv import read_trackmate_csv
from .trackmate_xml import read_trackmate_xml
from .trackpy_csv import read_trackpy_csv

__all__ = [
    "TrackFileError",
    "FORMATS",
    "META_KEY",
    "read_tracks",
    "read_trackpy_csv",
    "read_trackmate_csv",
    "read_trackmate_xml",
    "read_parquet",
    "read_andi2_trajectories",
    "write_tracks",
    "write_table",
    "atomic_write",
    "sidecar_path",
]

FORMATS = ("auto", "csv", "trackpy", "trackmate-csv", "trackmate-xml", "parquet", "andi2")


def _guess_format(p: Path) -> str:
    head = _read_head(p)
    suffix = p.suffix.lower()
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq"):
        return "parquet"
    stripped = head
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if stripped.startswith(bom):
            stripped = stripped[len(bom) :]
    stripped = stripped.lstrip(b" \t\r\n")
    if suffix == ".xml" or stripped.startswith((b"<", b"\x00<")):
        return "trackmate-xml"
    layout = _sniff_csv(p)
    if set(layout.names) & TRACKMATE_CSV_MARKERS:
        return "trackmate-csv"
    if "traj_idx" in layout.names and not {"track_id", "particle"} & set(layout.names):
        return "andi2"
    return "csv"


def read_tracks(
    path: str | os.PathLike, format: str = "auto", *, pixel_size: float | None = None
) -> pd.DataFrame:
    """Read any supported track file into a validated track table.

    Parameters
    ----------
    path : str or path-like
        The track file.
    format : str
        "auto" (from the content and extension), "csv"/"trackpy" (trackpy or napari-step CSV),
        "trackmate-csv", "trackmate-xml", "parquet" or "andi2" (AnDi-2 ``trajs_fov_*.csv``).
    pixel_size : float, optional
        Size of a pixel in the file's space unit (e.g. um): converts positions in physical
        units (TrackMate files, or napari-step files whose sidecar says so) to pixels; for
        files already in pixels it is an error.

    Returns
    -------
    pandas.DataFrame
        Validated track table, ``track_id, frame, (z,) y, x`` first (positions in px unless
        the metadata says otherwise); what is known about units and the source goes into
        ``table.attrs["napari_step"]``.

    Raises
    ------
    TrackFileError
        Any problem with the file; the message starts with the file's name.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown track file format {format!r}; use one of {list(FORMATS)}")
    p = _existing(path)
    fmt = _guess_format(p) if format == "auto" else format
    if fmt == "trackmate-csv":
        return read_trackmate_csv(p, pixel_size)
    if fmt == "trackmate-xml":
        return read_trackmate_xml(p, pixel_size)
    if fmt == "andi2":
        table = read_andi2_trajectories(p)
        if pixel_size is not None:
            raise TrackFileError(f"{p.name}: AnDi-2 positions are already in pixels")
        return table
    table = read_parquet(p) if fmt == "parquet" else read_trackpy_csv(p)
    if pixel_size is not None:
        meta = dict(table.attrs.get(META_KEY) or {})
        _apply_pixel_size(table, meta, pixel_size, p.name, assume_physical=False)
        table.attrs[META_KEY] = meta
    return table
