"""Sniffing and decoding of text tables: the one place that turns bytes into a CSV layout.

Refuses binary files by their magic bytes, NUL or control characters; decodes UTF-8, UTF-16 (with
BOM) and Windows-1252; finds the separator (comma, semicolon, tab, whitespace), a decimal comma, a
pandas index column and TrackMate's extra header rows; loads the data lines with pandas while
keeping the file's line numbers for error messages.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ._common import TrackFileError, _first_line

_HEAD_BYTES = 64 * 1024
_INDEX = "\0index"  # internal name of a pandas index column (NUL never survives sniffing)
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
TRACKMATE_CSV_MARKERS = {
    "POSITION_X",
    "SPOT_SOURCE_ID",
    "EDGE_TIME",
    "TRACK_DURATION",
    "TRACK_INDEX",
}


def _read_head(p: Path) -> bytes:
    try:
        with open(p, "rb") as fh:
            return fh.read(_HEAD_BYTES)
    except OSError as e:
        raise TrackFileError(f"{p.name}: cannot be read ({e.strerror or e})") from None


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
            f"{name}: this is a binary file (it contains NUL bytes), not a CSV text table"
        )
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
            f"{bad.group()!r} at character {bad.start()})"
        )
    return text, encoding


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


def _choose_separator(header: str, following: list[str]) -> str:
    """The candidate giving the most header fields, preferring one whose count the first data
    lines agree with; whitespace when no candidate splits the header."""
    best, best_key = ",", (0, False, 0)
    for sep in (",", ";", "\t"):
        n = len(_split_fields(header, sep))
        consistent = all(len(_split_fields(ln, sep)) == n for ln in following)
        key = (n > 1, consistent, n)
        if key > best_key:
            best, best_key = sep, key
    if best_key[2] <= 1 and len(header.split()) > 1:
        return r"\s+"
    return best


def _sample_records(body: str, sep: str, first_line: int, complete: bool) -> list:
    """[(physical line, fields)] of the sampled data lines (csv module: quoted separators)."""
    records = []
    try:
        if sep == r"\s+":
            records = [
                (first_line + i, ln.split()) for i, ln in enumerate(body.split("\n")) if ln.strip()
            ]
        else:
            reader = csv.reader(io.StringIO(body), delimiter=sep)
            start = 0
            for fields in reader:
                if any(f.strip() for f in fields):
                    records.append((first_line + start, fields))
                start = reader.line_num
    except csv.Error:
        records = records[:-1]
    if not complete and records:
        records = records[:-1]  # the last record of a cut sample may be cut
    return records


def _column_names(header: str, sep: str, records: list, name: str) -> list[str]:
    """Unique column names; ``_INDEX`` marks a pandas index column.

    An index column is written by ``df.to_csv()`` with an empty or "Unnamed: 0" header, or named
    like a real column (trackpy's frame index); or the data rows are one field longer than the
    header (pandas' implicit index).
    """
    names = [f.strip() for f in _split_fields(header, sep)]
    if (
        records
        and all(len(f) == len(names) + 1 for _, f in records)
        and not all(not f[-1].strip() for _, f in records)
    ):  # (not a trailing separator)
        names = [""] + names
    if len(names) > 1 and (
        names[0] in ("", "Unnamed: 0")
        or (names[0] in ("frame", "particle", "track_id") and names[0] in names[1:])
    ):
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
        if len(fields) > len(names) and any(f.strip() for f in fields[len(names) :]):
            raise TrackFileError(
                f"{name}: line {line_no} has {len(fields)} fields but the header has "
                f"{len(names)} ({_sep_name(sep)}-separated)"
            )
    return names


def _decimal_mark(sep: str, records: list) -> str:
    """ "," when the sampled numbers use a decimal comma (never with comma separators)."""
    if sep != ",":
        tokens = [f.strip() for _, fields in records for f in fields]
        if any(_COMMA_DECIMAL.match(t) for t in tokens) and not any(
            _DOT_DECIMAL.match(t) for t in tokens
        ):
            return ","
    return "."


def _sniff_csv(p: Path) -> _CsvLayout:
    """The layout of a CSV-like text table from its first 64 KiB."""
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
    following = [ln for ln in lines[h + 1 : h + 1 + _SAMPLE_RECORDS] if ln.strip()][:3]
    sep = _choose_separator(header, following)
    if sep != r"\s+" and header.count('"') % 2:
        raise TrackFileError(f'{name}: the header line has an unbalanced quote ("): {header!r}')
    body = "\n".join(lines[h + 1 : h + 1 + _SAMPLE_RECORDS])
    records = _sample_records(body, sep, h + 2, complete)
    names = _column_names(header, sep, records, name)
    return _CsvLayout(name, encoding, sep, _decimal_mark(sep, records), names, h + 1, records)


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
                p,
                sep=layout.sep,
                decimal=layout.decimal,
                header=None,
                names=layout.names,
                skiprows=skip,
                index_col=False,
                skip_blank_lines=False,
                skipinitialspace=True,
                encoding=layout.encoding,
                low_memory=False,
                engine="c",
            )
    except pd.errors.EmptyDataError:
        df = pd.DataFrame(columns=layout.names)
    except UnicodeDecodeError as e:
        raise TrackFileError(
            f"{name}: not valid {layout.encoding.replace('-sig', '')} text "
            f"({e.reason} at byte {e.start} of a block); is it a binary file?"
        ) from None
    except (
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        OverflowError,
        UnicodeError,
        csv.Error,
    ) as e:  # ParserError is a ValueError
        m = _PARSER_FIELDS.search(str(e))
        if "Too many columns specified" in str(e):  # only blank lines after the header
            df = pd.DataFrame(columns=layout.names)
        elif m:
            raise TrackFileError(
                f"{name}: line {m.group(2)} has {m.group(3)} fields but the header has "
                f"{m.group(1)} ({_sep_name(layout.sep)}-separated)"
            ) from None
        else:
            raise TrackFileError(
                f"{name}: cannot be read as a CSV table ({_first_line(e)})"
            ) from None
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
