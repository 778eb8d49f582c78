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

Formats:

* trackpy CSV (``particle`` or ``track_id``, ``frame``, ``x``, ``y``, optional ``z``, extras) and
  the CSV written by :func:`write_tracks`; comma, semicolon, tab or whitespace separated (the
  separator is sniffed, a decimal comma is accepted with ``;``/tab), with or without a pandas
  index column.
* TrackMate spots table CSV (TrackMate 7+ writes up to three extra header rows - names, short
  names, units - which are skipped; the units row gives ``space_units``).
* TrackMate XML: the full session file (``<TrackMate>``) and the simple "Export tracks to XML"
  file (``<Tracks>``). Tracks that split or merge are cut into linear pieces (new ids) - the
  original id stays in ``trackmate_track_id``. DOCTYPE and ENTITY declarations are refused.
* Parquet (``.parquet``), as written by :func:`write_tracks`.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import json
import math
import os
import re
import uuid
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from xml.parsers import expat

import numpy as np
import pandas as pd

from .tracks import TrackTableError, validate_table

__all__ = [
    "TrackFileError",
    "FORMATS",
    "read_tracks",
    "read_trackpy_csv",
    "read_trackmate_csv",
    "read_trackmate_xml",
    "read_parquet",
    "write_tracks",
    "sidecar_path",
]

META_KEY = "napari_step"
FORMATS = ("auto", "csv", "trackpy", "trackmate-csv", "trackmate-xml", "parquet")

_HEAD_BYTES = 64 * 1024
_INDEX = "\0index"  # internal name of a pandas index column (NUL never survives sniffing)
_MAX_EXACT_INT = 2**53  # larger track ids / frames cannot come from a float column exactly
_SAMPLE_RECORDS = 50

_MAGIC = [
    (b"PK\x03\x04", "a ZIP archive (an Excel .xlsx workbook?); export it as CSV"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office file; export it as CSV"),
    (b"\x89HDF\r\n\x1a\n", "an HDF5 file (trackpy PandasHDFStore?); save the table as CSV"),
    (b"\x1f\x8b", "a gzip-compressed file; decompress it first"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"\x93NUMPY", "a NumPy .npy array"),
]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_COMMA_DECIMAL = re.compile(r"^[-+]?\d+,\d+(?:[eE][-+]?\d+)?$")
_DOT_DECIMAL = re.compile(r"^[-+]?\d*\.\d+(?:[eE][-+]?\d+)?$")
_MICRON = {"micron", "microns", "um", "µm", "μm", "micrometer", "micrometre", "micrometers"}
_PIXEL = {"px", "pixel", "pixels"}
_TRACKMATE_CSV_MARKERS = {"POSITION_X", "SPOT_SOURCE_ID", "EDGE_TIME", "TRACK_DURATION",
                          "TRACK_INDEX"}


class TrackFileError(ValueError):
    """A track file that cannot be read or written; the message names the file and the problem."""


# --------------------------------------------------------------------------------------------
# small helpers


def sidecar_path(path) -> Path:
    """The JSON metadata sidecar of a track file: ``results.csv`` -> ``results.csv.json``."""
    p = Path(os.fspath(path))
    return p.with_name(p.name + ".json")


def _existing(path) -> Path:
    p = Path(os.fspath(path))
    name = p.name or str(p)
    if not p.exists():
        raise TrackFileError(f"{name}: no such file ({p})")
    if p.is_dir():
        raise TrackFileError(f"{name}: is a folder, not a track file ({p})")
    return p


def _read_head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(_HEAD_BYTES)
    except OSError as e:
        raise TrackFileError(f"{p.name}: cannot be read ({e.strerror or e})") from None


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else str(text)


def _empty_check(head: bytes, name: str) -> None:
    if not head:
        raise TrackFileError(f"{name}: the file is empty (0 bytes)")
    if not head.strip(b" \t\r\n\f\v"):
        raise TrackFileError(f"{name}: the file is empty (only blank space)")


def _decode_head(head: bytes, name: str, complete: bool) -> tuple[str, str]:
    """(text, encoding) of the start of a text file, or TrackFileError for binary files."""
    _empty_check(head, name)
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise TrackFileError(f"{name}: this is {what}, not a text table")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif b"\x00" in head:
        raise TrackFileError(
            f"{name}: this is a binary file (it contains NUL bytes), not a CSV text table")
    else:
        encoding = "utf-8-sig"
    try:
        text = codecs.getincrementaldecoder(encoding)().decode(head, final=complete)
    except UnicodeDecodeError:
        try:  # Windows exports (TrackMate's FileWriter) may be cp1252, e.g. "(µm)"
            text = head.decode("cp1252")
            encoding = "cp1252"
        except UnicodeDecodeError as e:
            raise TrackFileError(
                f"{name}: this is not a text file (byte 0x{head[e.start]:02x} at position "
                f"{e.start} is neither UTF-8 nor Windows-1252 text)"
            ) from None
    text = text.lstrip("\ufeff")
    bad = _CONTROL.search(text)
    if bad:
        raise TrackFileError(
            f"{name}: this is a binary file, not a CSV text table (control character "
            f"{bad.group()!r} at character {bad.start()})")
    return text, encoding


def _jsonable(obj):
    """Metadata -> plain JSON types (numpy scalars/arrays, paths, tuples, sets)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def _read_sidecar(p: Path) -> dict | None:
    sc = sidecar_path(p)
    if not sc.is_file():
        return None
    try:
        meta = json.loads(sc.read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError) as e:
        raise TrackFileError(
            f"{sc.name}: metadata sidecar of {p.name} is unreadable ({e})") from None
    if not isinstance(meta, dict):
        raise TrackFileError(
            f"{sc.name}: metadata sidecar of {p.name} must hold a JSON object, "
            f"not {type(meta).__name__}")
    return meta


def _canonical_order(table: pd.DataFrame) -> pd.DataFrame:
    first = ["track_id", "frame"] + [c for c in ("z", "y", "x") if c in table.columns]
    return table[first + [c for c in table.columns if c not in first]]


def _validated(table: pd.DataFrame, name: str, hint: str = "") -> pd.DataFrame:
    if len(table) == 0:
        raise TrackFileError(f"{name}: the file holds no track points")
    try:
        out = validate_table(table, name)
    except TrackTableError as e:
        raise TrackFileError(f"{e}{hint}") from None
    return _canonical_order(out)


def _describe(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return repr(v)
    return repr(v.item() if isinstance(v, np.generic) else v)


def _coerce(df: pd.DataFrame, name: str, columns, int_columns=(), label=None,
            allow_missing_int: bool = False) -> None:
    """Make ``columns`` numeric in place, or raise TrackFileError saying where and why.

    ``label(index)`` says where a row comes from ("line 12", "spot 3456"). Whole-number columns
    (``int_columns``) must be finite, integral and (unless ``allow_missing_int``) present.
    """
    label = label or (lambda i: f"row {i}")
    for c in columns:
        s = df[c]
        if pd.api.types.is_bool_dtype(s):
            raise TrackFileError(f"{name}: column '{c}' holds True/False values, not numbers")
        if not pd.api.types.is_numeric_dtype(s):
            conv = pd.to_numeric(s, errors="coerce")
            bad = conv.isna() & s.notna()
            if bad.any():
                i = bad.idxmax()
                raise TrackFileError(
                    f"{name}: column '{c}' must hold numbers, but {label(i)} has {s[i]!r}"
                    + (f" ({int(bad.sum())} such values)" if bad.sum() > 1 else ""))
            if not pd.api.types.is_numeric_dtype(conv):
                conv = conv.astype(float)
            df[c] = conv
        if c in int_columns:
            v = df[c].to_numpy(dtype=float)
            missing = np.isnan(v)
            if missing.any() and not allow_missing_int:
                i = df.index[np.argmax(missing)]
                raise TrackFileError(
                    f"{name}: column '{c}' has no value on {label(i)}"
                    + (f" ({int(missing.sum())} empty values)" if missing.sum() > 1 else ""))
            with np.errstate(invalid="ignore"):
                wrong = ~missing & (~np.isfinite(v) | (np.abs(v) > _MAX_EXACT_INT)
                                    | (v != np.round(v)))
            if wrong.any():
                i = df.index[np.argmax(wrong)]
                raise TrackFileError(
                    f"{name}: column '{c}' must hold whole numbers, but {label(i)} has "
                    f"{_describe(df[c][i])}")


def _space_unit_kind(unit) -> str | None:
    if not isinstance(unit, str):
        return None
    u = unit.strip().lower()
    if u in _PIXEL:
        return "pixel"
    if u in _MICRON:
        return "micron"
    return "physical" if u else None


def _apply_pixel_size(table: pd.DataFrame, meta: dict, pixel_size, name: str,
                      assume_physical: bool) -> None:
    """Divide positions by ``pixel_size`` (in the file's space unit) and record it in ``meta``."""
    if pixel_size is None:
        return
    try:
        ps = float(pixel_size)
    except (TypeError, ValueError):
        raise ValueError(f"pixel_size must be a number, got {pixel_size!r}") from None
    if not (math.isfinite(ps) and ps > 0):
        raise ValueError(f"pixel_size must be a positive number, got {pixel_size!r}")
    unit = meta.get("space_units")
    kind = _space_unit_kind(unit)
    if kind == "pixel" or (kind is None and not assume_physical):
        raise TrackFileError(
            f"{name}: positions are already in pixels"
            + (f" (space units {unit!r})" if unit else "")
            + "; pixel_size only converts files in physical units (e.g. TrackMate, microns)")
    for c in ("z", "y", "x"):  # one scale for all axes keeps distances (and D) isotropic
        if c in table.columns:
            table[c] = table[c] / ps
    meta["space_units"] = "px"
    meta["pixel_size"] = ps
    if unit:
        meta["pixel_size_units"] = unit
    if kind == "micron":
        meta["pixel_size_um"] = ps


# --------------------------------------------------------------------------------------------
# CSV sniffing and loading


@dataclass
class _CsvLayout:
    name: str
    encoding: str
    sep: str
    decimal: str
    names: list  # column names, unique; _INDEX for a pandas index column
    header_line: int  # 1-based physical line of the header
    records: list  # [(physical line, fields)] of the first data records (sample)


def _split_fields(line: str, sep: str) -> list[str]:
    if sep == r"\s+":
        return line.split()
    try:
        return next(csv.reader([line], delimiter=sep))
    except (csv.Error, StopIteration):
        return line.split(sep)


def _sniff_csv(p: Path) -> _CsvLayout:
    name = p.name
    head = _read_head(p)
    complete = len(head) < _HEAD_BYTES
    text, encoding = _decode_head(head, name, complete)
    lines = re.split(r"\r\n|\r|\n", text)
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut
    h = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if h is None:
        raise TrackFileError(f"{name}: the file is empty (only blank lines)")
    header = lines[h]
    following = [ln for ln in lines[h + 1:h + 1 + _SAMPLE_RECORDS] if ln.strip()][:3]

    # separator: the candidate giving the most header fields, preferring one whose count the
    # first data lines agree with
    best, best_key = ",", (0, False, 0)
    for sep in (",", ";", "\t"):
        n = len(_split_fields(header, sep))
        consistent = all(len(_split_fields(ln, sep)) == n for ln in following)
        key = (n > 1, consistent, n)
        if key > best_key:
            best, best_key = sep, key
    sep = best
    if best_key[2] <= 1 and len(header.split()) > 1:
        sep = r"\s+"
    if sep != r"\s+" and header.count('"') % 2:
        raise TrackFileError(f"{name}: the header line has an unbalanced quote (\"): {header!r}")

    names = [f.strip() for f in _split_fields(header, sep)]

    # sample of the first data records (csv module: handles quoted separators)
    body = "\n".join(lines[h + 1:h + 1 + _SAMPLE_RECORDS])
    records = []
    try:
        if sep == r"\s+":
            records = [(h + 2 + i, ln.split()) for i, ln in enumerate(body.split("\n"))
                       if ln.strip()]
        else:
            reader = csv.reader(io.StringIO(body), delimiter=sep)
            start = 0
            for fields in reader:
                if any(f.strip() for f in fields):
                    records.append((h + 2 + start, fields))
                start = reader.line_num
    except csv.Error:
        records = records[:-1]
    if not complete and records:
        records = records[:-1]

    # pandas index column: written by df.to_csv() with an empty or "Unnamed: 0" header, or
    # named like a real column (trackpy's frame index); or data rows one field longer than the
    # header (pandas' implicit index)
    if records and all(len(f) == len(names) + 1 for _, f in records) and not all(
            not f[-1].strip() for _, f in records):  # (not a trailing separator)
        names = [""] + names
    if len(names) > 1 and (names[0] in ("", "Unnamed: 0") or (
            names[0] in ("frame", "particle", "track_id") and names[0] in names[1:])):
        names[0] = _INDEX
    names = [n if n else f"unnamed_{i}" for i, n in enumerate(names)]
    seen, dups = set(), []
    for n in names:
        if n in seen and n not in dups:
            dups.append(n)
        seen.add(n)
    if dups:
        raise TrackFileError(f"{name}: duplicate column name(s) {dups} in the header")
    for line_no, fields in records:
        if len(fields) > len(names) and any(f.strip() for f in fields[len(names):]):
            raise TrackFileError(
                f"{name}: line {line_no} has {len(fields)} fields but the header has "
                f"{len(names)} ({_sep_name(sep)}-separated)")

    decimal = "."
    if sep != ",":
        tokens = [f.strip() for _, fields in records for f in fields]
        if any(_COMMA_DECIMAL.match(t) for t in tokens) and not any(
                _DOT_DECIMAL.match(t) for t in tokens):
            decimal = ","
    return _CsvLayout(name, encoding, sep, decimal, names, h + 1, records)


def _sep_name(sep: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", r"\s+": "whitespace"}.get(sep, repr(sep))


_PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


def _load_csv(p: Path, layout: _CsvLayout, skip: int) -> tuple[pd.DataFrame, callable]:
    """Read the data lines after the first ``skip`` lines; return (table, label of row index).

    Blank lines are dropped; the row index stays the position in the file so that error
    messages can name the line.
    """
    name = layout.name
    keep = [n for n in layout.names if n != _INDEX]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            df = pd.read_csv(
                p, sep=layout.sep, decimal=layout.decimal, header=None, names=layout.names,
                skiprows=skip, index_col=False, skip_blank_lines=False,
                skipinitialspace=True, encoding=layout.encoding, low_memory=False,
                engine="c",
            )
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=layout.names)
    except UnicodeDecodeError as e:
        raise TrackFileError(
            f"{name}: not valid {layout.encoding.replace('-sig', '')} text "
            f"({e.reason} at byte {e.start} of a block); is it a binary file?") from None
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, UnicodeError,
            csv.Error) as e:  # ParserError is a ValueError
        m = _PARSER_FIELDS.search(str(e))
        if "Too many columns specified" in str(e):  # only blank lines after the header
            df = pd.DataFrame(columns=layout.names)
        elif m:
            raise TrackFileError(
                f"{name}: line {m.group(2)} has {m.group(3)} fields but the header has "
                f"{m.group(1)} ({_sep_name(layout.sep)}-separated)") from None
        else:
            raise TrackFileError(
                f"{name}: cannot be read as a CSV table ({_first_line(e)})") from None
    except OSError as e:
        raise TrackFileError(f"{name}: cannot be read ({e.strerror or e})") from None
    df = df[keep]
    if len(df):
        blank = df.isna().all(axis=1).to_numpy()
        if blank.any():
            df = df[~blank]
    for c in [c for c in df.columns if c.startswith("unnamed_")]:
        if df[c].isna().all():  # trailing separators
            df = df.drop(columns=c)

    def label(i, _skip=skip):
        return f"line {_skip + int(i) + 1}"

    return df, label


def _match_columns(names, wanted: dict) -> dict:
    """{canonical: file column} for each canonical name with aliases (exact, then any case)."""
    lower = defaultdict(list)
    for n in names:
        lower[n.lower()].append(n)
    out = {}
    for canon, aliases in wanted.items():
        for a in aliases:
            if a in names:
                out[canon] = a
                break
        else:
            for a in aliases:
                if len(lower.get(a.lower(), [])) == 1:
                    out[canon] = lower[a.lower()][0]
                    break
    return out


# --------------------------------------------------------------------------------------------
# readers


def read_trackpy_csv(path) -> pd.DataFrame:
    """Read a trackpy-style CSV (or one written by :func:`write_tracks`).

    Needs ``particle`` or ``track_id``, ``frame``, ``x``, ``y`` (any letter case), optional ``z``;
    every other column is kept. A sidecar ``<file>.json`` is read into ``attrs["napari_step"]``.
    """
    p = _existing(path)
    layout = _sniff_csv(p)
    name = layout.name
    names = [n for n in layout.names if n != _INDEX]
    found = _match_columns(names, {"track_id": ["track_id", "particle"], "frame": ["frame"],
                                   "y": ["y"], "x": ["x"], "z": ["z"]})
    missing = [("particle/track_id" if c == "track_id" else c)
               for c in ("track_id", "frame", "x", "y") if c not in found]
    if missing:
        hint = ""
        if set(names) & _TRACKMATE_CSV_MARKERS or "TRACK_ID" in names:
            hint = " (this looks like a TrackMate table: read it as 'trackmate-csv')"
        shown = names if len(names) <= 25 else names[:25] + ["..."]
        raise TrackFileError(
            f"{name}: missing column(s) {missing} (found: {shown}); a trackpy CSV needs "
            f"particle/track_id, frame, x, y{hint}")
    df, label = _load_csv(p, layout, layout.header_line)
    if len(df) == 0:
        raise TrackFileError(f"{name}: the file has a header but no data rows")
    _coerce(df, name, [found[c] for c in ("track_id", "frame", "z", "y", "x") if c in found],
            int_columns=[found["track_id"], found["frame"]], label=label)
    df = df.rename(columns={v: k for k, v in found.items()})
    if "z" in df.columns and df["z"].isna().all():
        df = df.drop(columns="z")
    table = _validated(df, name)
    meta = _read_sidecar(p)
    if meta is not None:
        table.attrs[META_KEY] = meta
    return table


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
            f"needs {', '.join(required)}{hint}")

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
    _coerce(df, name, ["TRACK_ID", "FRAME"] + pos, int_columns=["TRACK_ID", "FRAME"],
            label=label, allow_missing_int=True)
    n_spots = len(df)
    df = df[df["TRACK_ID"].notna()]
    if len(df) == 0:
        raise TrackFileError(
            f"{name}: none of the {n_spots} spots belongs to a track (TRACK_ID is empty)")
    _coerce(df, name, ["FRAME"], int_columns=["FRAME"], label=label)
    df = df.rename(columns={"TRACK_ID": "track_id", "FRAME": "frame", "POSITION_X": "x",
                            "POSITION_Y": "y", "POSITION_Z": "z", "ID": "spot_id"})
    if "z" in df.columns and (df["z"].fillna(0) == 0).all():
        df = df.drop(columns="z")
    df["trackmate_track_id"] = df["track_id"].round().astype(np.int64)
    _apply_pixel_size(df, meta, pixel_size, name, assume_physical=True)
    table = _validated(df, name, hint=(
        " - a TrackMate track that splits or merges has several spots per frame; the spots CSV "
        "cannot separate its branches, read the TrackMate XML file instead"))
    table.attrs[META_KEY] = meta
    return table


class _XmlCollector:
    """expat handlers that keep what the two TrackMate XML formats need, nothing else."""

    def __init__(self, name: str):
        self.name = name
        self.kind = None
        self.root_attrs = {}
        self.stack = []
        self.model_attrs = None
        self.image_attrs = {}
        self.spots = []
        self.spot_frames = []
        self.frame = None
        self.track = None
        self.tracks = []  # TRACK_ID of each <Track>, in order
        self.edges = ([], [], [])  # track, source, target
        self.filtered = None
        self.particles = []  # simple format: per particle, a list of detection attrs
        self.has_all_spots = False

    def start(self, tag, attrs):
        parent = self.stack[-1] if self.stack else None
        self.stack.append(tag)
        if self.kind is None:
            if tag == "TrackMate":
                self.kind = "full"
            elif tag in ("Tracks", "root"):
                self.kind = "simple"
            else:
                raise TrackFileError(
                    f"{self.name}: not a TrackMate file (the XML root element is <{tag}>, "
                    f"expected <TrackMate> or <Tracks>)")
            self.root_attrs = attrs
            return
        if self.kind == "simple":
            if tag == "particle":
                self.particles.append([])
            elif tag == "detection":
                if parent != "particle":
                    raise TrackFileError(f"{self.name}: <detection> outside a <particle>")
                self.particles[-1].append(attrs)
            return
        if tag == "Spot" and parent == "SpotsInFrame":
            self.spots.append(attrs)
            self.spot_frames.append(self.frame)
        elif tag == "SpotsInFrame":
            self.frame = attrs.get("frame")
        elif tag == "Edge" and parent == "Track":
            src = attrs.get("SPOT_SOURCE_ID", attrs.get("sourceID"))
            tgt = attrs.get("SPOT_TARGET_ID", attrs.get("targetID"))
            if src is None or tgt is None:
                raise TrackFileError(
                    f"{self.name}: an <Edge> of track {self.track} lacks SPOT_SOURCE_ID or "
                    f"SPOT_TARGET_ID")
            self.edges[0].append(self.track)
            self.edges[1].append(src)
            self.edges[2].append(tgt)
        elif tag == "Track" and parent == "AllTracks":
            self.track = attrs.get("TRACK_ID")
            if self.track is None:
                raise TrackFileError(f"{self.name}: a <Track> has no TRACK_ID attribute")
            self.tracks.append(self.track)
        elif tag == "TrackID" and parent == "FilteredTracks":
            if "TRACK_ID" in attrs:
                self.filtered.append(attrs["TRACK_ID"])
        elif tag == "FilteredTracks":
            self.filtered = []
        elif tag == "AllSpots":
            self.has_all_spots = True
        elif tag == "Model" and parent == "TrackMate":
            self.model_attrs = attrs
        elif tag == "ImageData":
            self.image_attrs = attrs

    def end(self, tag):
        self.stack.pop()


def _refuse_dtd(name):
    def handler(*args):
        raise TrackFileError(
            f"{name}: XML with a DOCTYPE or ENTITY declaration is refused (TrackMate never "
            "writes one, and entities can be used to attack the reader)")
    return handler


def _parse_xml(p: Path) -> _XmlCollector:
    name = p.name
    _empty_check(_read_head(p), name)
    c = _XmlCollector(name)
    parser = expat.ParserCreate()
    parser.StartElementHandler = c.start
    parser.EndElementHandler = c.end
    parser.StartDoctypeDeclHandler = _refuse_dtd(name)
    parser.EntityDeclHandler = _refuse_dtd(name)
    parser.ExternalEntityRefHandler = _refuse_dtd(name)
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        with open(p, "rb") as fh:
            while True:
                chunk = fh.read(1 << 20)
                if not chunk:
                    break
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
    except expat.ExpatError as e:
        msg = expat.errors.messages.get(e.code, str(e))
        truncated = {expat.errors.codes[k] for k in (
            expat.errors.XML_ERROR_NO_ELEMENTS, expat.errors.XML_ERROR_UNCLOSED_TOKEN,
            expat.errors.XML_ERROR_PARTIAL_CHAR, expat.errors.XML_ERROR_UNCLOSED_CDATA_SECTION)}
        if e.code in truncated and c.stack:
            raise TrackFileError(
                f"{name}: the XML ends before <{c.stack[-1]}> is closed (line {e.lineno}): the "
                "file is truncated or incomplete") from None
        raise TrackFileError(
            f"{name}: not well-formed XML ({msg} at line {e.lineno}, column {e.offset})") from None
    except OSError as e:
        raise TrackFileError(f"{name}: cannot be read ({e.strerror or e})") from None
    except (ValueError, LookupError, UnicodeError) as e:
        if isinstance(e, TrackFileError):
            raise
        raise TrackFileError(f"{name}: cannot be parsed as XML ({_first_line(e)})") from None
    if c.kind is None:
        raise TrackFileError(f"{name}: holds no XML element")
    return c


def _float_attr(attrs: dict, key: str):
    try:
        v = float(attrs[key])
    except (KeyError, TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _linear_segments(spots, order_key, edges):
    """Cut a branching track into linear pieces; ``edges`` are (earlier, later) spot pairs."""
    succ, pred = defaultdict(list), defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
        pred[b].append(a)
    segments = []
    for s in sorted(spots, key=order_key):
        ps = pred.get(s, [])
        if len(ps) == 1 and len(succ[ps[0]]) == 1:
            continue  # continues its predecessor's piece
        seg, cur = [s], s
        while len(succ.get(cur, ())) == 1 and len(pred[succ[cur][0]]) == 1:
            cur = succ[cur][0]
            seg.append(cur)
        segments.append(seg)
    return segments


def _table_from_full_xml(c: _XmlCollector, name: str) -> tuple[pd.DataFrame, dict]:
    if c.model_attrs is None or not c.has_all_spots:
        raise TrackFileError(
            f"{name}: this TrackMate XML has no <Model> with <AllSpots> (is it a settings-only "
            "file?)")
    meta = {"source_format": "trackmate-xml"}
    for key, attr in (("space_units", "spatialunits"), ("time_units", "timeunits")):
        if c.model_attrs.get(attr):
            meta[key] = c.model_attrs[attr]
    if c.root_attrs.get("version"):
        meta["trackmate_version"] = c.root_attrs["version"]
    for key, attr in (("source_pixel_size", "pixelwidth"),
                      ("source_frame_interval", "timeinterval")):
        v = _float_attr(c.image_attrs, attr)
        if v is not None:
            meta[key] = v
    if c.image_attrs.get("filename"):
        meta["source_image"] = c.image_attrs["filename"]

    if not c.spots:
        raise TrackFileError(f"{name}: the TrackMate file holds no spots")
    spots = pd.DataFrame.from_records(c.spots)
    if "FRAME" not in spots.columns:
        spots["FRAME"] = c.spot_frames
    else:
        spots["FRAME"] = spots["FRAME"].fillna(pd.Series(c.spot_frames, dtype=object))
    for col in ("ID", "POSITION_X", "POSITION_Y"):
        if col not in spots.columns:
            raise TrackFileError(f"{name}: <Spot> elements lack the {col} attribute")
    ids = spots["ID"]

    def spot_label(i):
        return f"spot ID={ids[i]!r}"

    pos = [c_ for c_ in ("POSITION_Z", "POSITION_Y", "POSITION_X") if c_ in spots.columns]
    _coerce(spots, name, ["ID", "FRAME"] + pos, int_columns=["ID", "FRAME"], label=spot_label)
    spots["ID"] = spots["ID"].astype(np.int64)
    spots["FRAME"] = spots["FRAME"].astype(np.int64)
    if spots["ID"].duplicated().any():
        dup = int(spots["ID"][spots["ID"].duplicated()].iloc[0])
        raise TrackFileError(f"{name}: spot ID {dup} appears more than once in <AllSpots>")

    # edges of the visible (filtered) tracks
    edges = pd.DataFrame({"track": c.edges[0], "src": c.edges[1], "tgt": c.edges[2]})
    _coerce(edges, name, ["track", "src", "tgt"], int_columns=["track", "src", "tgt"],
            label=lambda i: f"edge {int(i) + 1} (track {c.edges[0][i]!r})")
    edges = edges.astype(np.int64)
    if c.filtered is not None:
        try:
            keep = {int(t) for t in c.filtered}
        except ValueError:
            raise TrackFileError(f"{name}: <FilteredTracks> holds a TRACK_ID that is not a "
                                 "whole number") from None
        edges = edges[edges["track"].isin(keep)]
    if len(edges) == 0:
        raise TrackFileError(
            f"{name}: the TrackMate file holds no (visible) tracks, only "
            f"{len(spots)} unlinked spots")
    frame_of = pd.Series(spots["FRAME"].to_numpy(), index=spots["ID"].to_numpy())
    unknown = ~edges["src"].isin(frame_of.index) | ~edges["tgt"].isin(frame_of.index)
    if unknown.any():
        row = edges[unknown].iloc[0]
        sid = row.src if row.src not in frame_of.index else row.tgt
        raise TrackFileError(
            f"{name}: track {row.track} links spot {sid}, which is not in <AllSpots>")
    # orient every edge from the earlier to the later spot
    a, b = edges["src"].to_numpy(), edges["tgt"].to_numpy()
    fa, fb = frame_of[a].to_numpy(), frame_of[b].to_numpy()
    swap = (fa > fb) | ((fa == fb) & (a > b))
    early, late = np.where(swap, b, a), np.where(swap, a, b)
    edges = pd.DataFrame({"track": edges["track"].to_numpy(), "src": early, "tgt": late})

    member = pd.concat([edges[["src", "track"]].rename(columns={"src": "spot"}),
                        edges[["tgt", "track"]].rename(columns={"tgt": "spot"})])
    member = member.drop_duplicates()
    if member["spot"].duplicated().any():
        sid = int(member["spot"][member["spot"].duplicated()].iloc[0])
        raise TrackFileError(f"{name}: spot {sid} belongs to more than one track")
    spot_track = pd.Series(member["track"].to_numpy(), index=member["spot"].to_numpy())
    new_id = spot_track.copy()

    branching = (edges.groupby("src").size() > 1).reindex(spot_track.index, fill_value=False) | (
        edges.groupby("tgt").size() > 1).reindex(spot_track.index, fill_value=False)
    split_tracks = sorted(set(spot_track[branching[branching].index]))
    if split_tracks:
        # new ids after every TrackMate id in the file, filtered-out tracks included
        known = pd.to_numeric(pd.Series(c.tracks, dtype=object), errors="coerce")
        next_id = int(max(known.max(), spot_track.max())) + 1
        for t in split_tracks:
            te = edges[edges["track"] == t]
            members = spot_track.index[spot_track.to_numpy() == t]
            for seg in _linear_segments(members, lambda s: (frame_of[s], s),
                                        zip(te["src"], te["tgt"])):
                new_id[seg] = next_id
                next_id += 1
        meta["split_tracks"] = len(split_tracks)

    table = spots[spots["ID"].isin(spot_track.index)].copy()
    table.insert(0, "track_id", new_id[table["ID"].to_numpy()].to_numpy())
    table["trackmate_track_id"] = spot_track[table["ID"].to_numpy()].to_numpy()
    table = table.rename(columns={"FRAME": "frame", "POSITION_X": "x", "POSITION_Y": "y",
                                  "POSITION_Z": "z", "ID": "spot_id", "name": "LABEL"})
    for col in table.columns:  # other spot features: numbers where they all parse
        if table[col].dtype == object or pd.api.types.is_string_dtype(table[col]):
            conv = pd.to_numeric(table[col], errors="coerce")
            if not (conv.isna() & table[col].notna()).any():
                table[col] = conv
    return table, meta


def _table_from_simple_xml(c: _XmlCollector, name: str) -> tuple[pd.DataFrame, dict]:
    meta = {"source_format": "trackmate-tracks-xml"}
    for key, attr in (("space_units", "spaceUnits"), ("time_units", "timeUnits")):
        if c.root_attrs.get(attr):
            meta[key] = c.root_attrs[attr]
    v = _float_attr(c.root_attrs, "frameInterval")
    if v is not None:
        meta["source_frame_interval"] = v
    if c.root_attrs.get("from"):
        meta["trackmate_version"] = c.root_attrs["from"]
    if not c.particles:
        raise TrackFileError(f"{name}: holds no <particle> (track) elements")
    tid = np.repeat(np.arange(len(c.particles)), [len(d) for d in c.particles])
    rows = [d for det in c.particles for d in det]
    if not rows:
        raise TrackFileError(f"{name}: its <particle> elements hold no <detection>")
    table = pd.DataFrame.from_records(rows)
    missing = [a for a in ("t", "x", "y") if a not in table.columns]
    if missing:
        raise TrackFileError(f"{name}: <detection> elements lack attribute(s) {missing}")
    particle = tid

    def det_label(i):
        return f"detection {int(i) + 1} (particle {int(particle[i])})"

    pos = [a for a in ("z", "y", "x") if a in table.columns]
    _coerce(table, name, ["t"] + pos, int_columns=["t"], label=det_label)
    table = table.rename(columns={"t": "frame"})
    table.insert(0, "track_id", tid)
    return table, meta


def read_trackmate_xml(path, pixel_size=None) -> pd.DataFrame:
    """Read a TrackMate XML: a full session file (``<TrackMate>``) or "Export tracks to XML".

    From a session file: the spots of the visible tracks (``<FilteredTracks>``) with all their
    features (ID -> spot_id, name -> LABEL, FRAME -> frame, POSITION_X/Y/Z -> x/y/z, z dropped
    when all zero); a track that splits or merges is cut into linear pieces, each with a new
    ``track_id`` (``trackmate_track_id`` keeps TrackMate's id). From a simple tracks file:
    track_id is the particle's position in the file. Units, the image pixel size and frame
    interval go into ``attrs["napari_step"]``; ``pixel_size`` converts positions to pixels as in
    :func:`read_trackmate_csv`.
    """
    p = _existing(path)
    name = p.name
    c = _parse_xml(p)
    if c.kind == "full":
        table, meta = _table_from_full_xml(c, name)
    else:
        table, meta = _table_from_simple_xml(c, name)
    if "z" in table.columns and (table["z"].fillna(0) == 0).all():
        table = table.drop(columns="z")
    _apply_pixel_size(table, meta, pixel_size, name, assume_physical=True)
    out = _validated(table, name)
    out.attrs[META_KEY] = meta
    return out


def read_parquet(path) -> pd.DataFrame:
    """Read a Parquet track table (as written by :func:`write_tracks`)."""
    p = _existing(path)
    name = p.name
    _empty_check(_read_head(p), name)
    try:
        df = pd.read_parquet(p)
    except ImportError:
        raise TrackFileError(f"{name}: reading Parquet files needs pyarrow "
                             "(pip install pyarrow)") from None
    except Exception as e:  # pyarrow raises its own exception types for corrupt files
        raise TrackFileError(f"{name}: not a readable Parquet file ({_first_line(e)})") from None
    embedded = df.attrs.get(META_KEY)
    attrs = dict(embedded) if isinstance(embedded, dict) else {}
    if df.index.name is not None and df.index.name not in df.columns:
        df = df.reset_index()
    df = df.reset_index(drop=True)
    df.columns = [str(col) for col in df.columns]
    found = _match_columns(list(df.columns), {"track_id": ["track_id", "particle"],
                                              "frame": ["frame"], "y": ["y"], "x": ["x"],
                                              "z": ["z"]})
    missing = [("particle/track_id" if k == "track_id" else k)
               for k in ("track_id", "frame", "x", "y") if k not in found]
    if missing:
        raise TrackFileError(f"{name}: missing column(s) {missing} (found: {list(df.columns)})")
    _coerce(df, name, [found[k] for k in ("track_id", "frame", "z", "y", "x") if k in found],
            int_columns=[found["track_id"], found["frame"]])
    df = df.rename(columns={v: k for k, v in found.items()})
    table = _validated(df, name)
    meta = _read_sidecar(p)
    if meta is not None:
        attrs.update(meta)
    if attrs:
        table.attrs[META_KEY] = attrs
    return table


def _guess_format(p: Path) -> str:
    head = _read_head(p)
    suffix = p.suffix.lower()
    if head.startswith(b"PAR1") or suffix in (".parquet", ".pq"):
        return "parquet"
    stripped = head
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if stripped.startswith(bom):
            stripped = stripped[len(bom):]
    stripped = stripped.lstrip(b" \t\r\n")
    if suffix == ".xml" or stripped.startswith((b"<", b"\x00<")):
        return "trackmate-xml"
    layout = _sniff_csv(p)
    if set(layout.names) & _TRACKMATE_CSV_MARKERS:
        return "trackmate-csv"
    return "csv"


def read_tracks(path, format: str = "auto", *, pixel_size=None) -> pd.DataFrame:
    """Read any supported track file into a validated track table.

    ``format``: "auto" (from the content and extension), "csv"/"trackpy" (trackpy or our own
    CSV), "trackmate-csv", "trackmate-xml" or "parquet". ``pixel_size`` converts positions in
    physical units (TrackMate files, or our files whose sidecar says so) to pixels; for files
    already in pixels it is an error. Metadata go into ``table.attrs["napari_step"]``.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown track file format {format!r}; use one of {list(FORMATS)}")
    p = _existing(path)
    fmt = _guess_format(p) if format == "auto" else format
    if fmt == "trackmate-csv":
        return read_trackmate_csv(p, pixel_size)
    if fmt == "trackmate-xml":
        return read_trackmate_xml(p, pixel_size)
    table = read_parquet(p) if fmt == "parquet" else read_trackpy_csv(p)
    if pixel_size is not None:
        meta = dict(table.attrs.get(META_KEY) or {})
        _apply_pixel_size(table, meta, pixel_size, p.name, assume_physical=False)
        table.attrs[META_KEY] = meta
    return table


# --------------------------------------------------------------------------------------------
# writing


def _atomic_write(target: Path, write) -> None:
    """``write(tmp_path)`` to a hidden temporary file next to ``target``, then os.replace."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_tracks(table: pd.DataFrame, path, metadata: dict | None = None) -> Path:
    """Write a track table as CSV, or Parquet when ``path`` ends in ``.parquet``.

    The table is validated and written sorted, with ``track_id, frame, (z,) y, x`` first, so
    :func:`read_tracks` gives back an equal table. Metadata - ``table.attrs["napari_step"]``
    updated with ``metadata`` - go into the JSON sidecar ``<path>.json`` (a stale sidecar is
    removed when there is none). Both files are written atomically (temporary file in the same
    folder, then ``os.replace``). Returns the path written.
    """
    p = Path(os.fspath(path))
    name = p.name
    if not name:
        raise TrackFileError(f"{p}: not a file name")
    out = validate_table(table, "track table to write")
    out.columns = [str(col) for col in out.columns]
    out = _canonical_order(out)
    meta = {}
    attrs_meta = table.attrs.get(META_KEY)
    if isinstance(attrs_meta, dict):
        meta.update(attrs_meta)
    if metadata:
        meta.update(metadata)
    meta = _jsonable(meta)
    meta_text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    out.attrs = {META_KEY: meta} if meta else {}

    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise TrackFileError(f"{name}: cannot write, the folder {folder} does not exist")
    if p.is_dir():
        raise TrackFileError(f"{name}: cannot write, a folder has this name ({p})")
    parquet = p.suffix.lower() in (".parquet", ".pq")

    def write_data(tmp):
        if parquet:
            out.to_parquet(tmp, index=False)
        else:
            out.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")

    def write_meta(tmp):
        tmp.write_text(meta_text, encoding="utf-8")

    sc = sidecar_path(p)
    try:
        _atomic_write(p, write_data)
        if meta:
            _atomic_write(sc, write_meta)
        elif sc.exists():
            sc.unlink()
    except ImportError:
        raise TrackFileError(f"{name}: writing Parquet files needs pyarrow "
                             "(pip install pyarrow)") from None
    except OSError as e:
        raise TrackFileError(f"{name}: cannot write ({e.strerror or e})") from None
    return p
