"""What every track-file reader shares: the error type, metadata, validation, number coercion.

No Qt or napari here. Positions stay in the file's units unless a reader is given a pixel size.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..tracks import TrackTableError, validate_table

META_KEY = "napari_step"

_MAX_EXACT_INT = 2**53  # larger track ids / frames cannot come from a float column exactly
_MICRON = {"micron", "microns", "um", "µm", "μm", "micrometer", "micrometre", "micrometers"}
_PIXEL = {"px", "pixel", "pixels"}


class TrackFileError(ValueError):
    """A track file that cannot be read or written; the message names the file and the problem."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """The JSON metadata sidecar of a table file: ``results.csv`` -> ``results.csv.json``.

    Parameters
    ----------
    path : str or path-like
        The table file.

    Returns
    -------
    pathlib.Path
        ``<path>.json``.
    """
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


def _first_line(text: str) -> str:
    return str(text).strip().splitlines()[0] if str(text).strip() else str(text)


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
            f"{sc.name}: metadata sidecar of {p.name} is unreadable ({e})"
        ) from None
    if not isinstance(meta, dict):
        raise TrackFileError(
            f"{sc.name}: metadata sidecar of {p.name} must hold a JSON object, "
            f"not {type(meta).__name__}"
        )
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


def _coerce(
    df: pd.DataFrame,
    name: str,
    columns,
    int_columns=(),
    label=None,
    allow_missing_int: bool = False,
) -> None:
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
                    + (f" ({int(bad.sum())} such values)" if bad.sum() > 1 else "")
                )
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
                    + (f" ({int(missing.sum())} empty values)" if missing.sum() > 1 else "")
                )
            with np.errstate(invalid="ignore"):
                wrong = ~missing & (
                    ~np.isfinite(v) | (np.abs(v) > _MAX_EXACT_INT) | (v != np.round(v))
                )
            if wrong.any():
                i = df.index[np.argmax(wrong)]
                raise TrackFileError(
                    f"{name}: column '{c}' must hold whole numbers, but {label(i)} has "
                    f"{_describe(df[c][i])}"
                )


def _space_unit_kind(unit) -> str | None:
    if not isinstance(unit, str):
        return None
    u = unit.strip().lower()
    if u in _PIXEL:
        return "pixel"
    if u in _MICRON:
        return "micron"
    return "physical" if u else None


def _apply_pixel_size(
    table: pd.DataFrame, meta: dict, pixel_size, name: str, assume_physical: bool
) -> None:
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
            + "; pixel_size only converts files in physical units (e.g. TrackMate, microns)"
        )
    for c in ("z", "y", "x"):  # one scale for all axes keeps distances (and D) isotropic
        if c in table.columns:
            table[c] = table[c] / ps
    meta["space_units"] = "px"
    meta["pixel_size"] = ps
    if unit:
        meta["pixel_size_units"] = unit
    if kind == "micron":
        meta["pixel_size_um"] = ps


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


TRACK_ALIASES = {
    "track_id": ["track_id", "particle"],
    "frame": ["frame"],
    "y": ["y"],
    "x": ["x"],
    "z": ["z"],
}


def _track_columns(names: list[str], name: str, aliases: dict, needs: str = "") -> dict:
    """{canonical: file column} for track_id, frame, (z,) y, x, or TrackFileError naming the
    missing ones (``needs`` ends the message, e.g. "; a trackpy CSV needs ...")."""
    found = _match_columns(names, aliases)
    missing = [
        ("/".join(reversed(aliases["track_id"])) if c == "track_id" else c)
        for c in ("track_id", "frame", "x", "y")
        if c not in found
    ]
    if missing:
        shown = names if len(names) <= 25 else names[:25] + ["..."]
        raise TrackFileError(f"{name}: missing column(s) {missing} (found: {shown}){needs}")
    return found


def _numeric_track_columns(df: pd.DataFrame, name: str, found: dict, label=None) -> pd.DataFrame:
    """Whole-number ids and frames, numeric positions, renamed to the canonical names."""
    _coerce(
        df,
        name,
        [found[c] for c in ("track_id", "frame", "z", "y", "x") if c in found],
        int_columns=[found["track_id"], found["frame"]],
        label=label,
    )
    return df.rename(columns={v: k for k, v in found.items()})
