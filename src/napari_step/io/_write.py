"""The one writer of tables: CSV or Parquet plus a JSON metadata sidecar, each file atomic.

Every export of the package (track tables, segments, per-track summaries, batch summaries, the
GUI's exports) goes through :func:`write_table`, so they all share one behaviour: data written to
a hidden temporary file in the target's folder, flushed to disk (``fsync``), then renamed over the
target (``os.replace``), so a crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from ._common import META_KEY, TrackFileError, _jsonable, sidecar_path

__all__ = ["atomic_write", "write_table", "PARQUET_SUFFIXES"]

PARQUET_SUFFIXES = (".parquet", ".pq")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(target: str | os.PathLike, write: Callable[[Path], object]) -> Path:
    """Write a file atomically: ``write(tmp)`` to a temporary file, fsync it, rename it.

    Parameters
    ----------
    target : str or path-like
        The final file name.
    write : callable
        ``write(tmp_path)`` writes the whole content to ``tmp_path`` (a hidden file next to
        ``target``).

    Returns
    -------
    pathlib.Path
        ``target``. On any error the temporary file is removed and ``target`` is untouched.
    """
    target = Path(os.fspath(target))
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
    _fsync_folder(target.parent if str(target.parent) else Path("."))
    return target


def _writable(path) -> Path:
    p = Path(os.fspath(path))
    name = p.name
    if not name:
        raise TrackFileError(f"{p}: not a file name")
    folder = p.parent if str(p.parent) else Path(".")
    if not folder.is_dir():
        raise TrackFileError(f"{name}: cannot write, the folder {folder} does not exist")
    if p.is_dir():
        raise TrackFileError(f"{name}: cannot write, a folder has this name ({p})")
    return p


def write_table(
    table: pd.DataFrame,
    path: str | os.PathLike,
    metadata: Mapping | None = None,
) -> Path:
    """Write a table as CSV (or Parquet for ``.parquet``/``.pq``) with a JSON sidecar, atomically.

    The one writer behind every export: track tables (:func:`write_tracks`), segment tables,
    per-track summaries and batch summaries.

    Parameters
    ----------
    table : pandas.DataFrame
        Written as it is (columns in their order, no index). CSV is UTF-8 with ``\\n`` line ends.
    path : str or path-like
        Target file; its folder must exist.
    metadata : mapping, optional
        Merged over ``table.attrs["napari_step"]`` and written to ``<path>.json`` (numpy values,
        paths and tuples become plain JSON). Parquet files also embed it. Without any metadata a
        stale sidecar from an earlier write is removed.

    Returns
    -------
    pathlib.Path
        The path of the table written.

    Raises
    ------
    TrackFileError
        Missing folder, a folder with that name, a failed write (message names the file), or
        Parquet without pyarrow.
    """
    p = _writable(path)
    meta: dict = {}
    attrs_meta = table.attrs.get(META_KEY)
    if isinstance(attrs_meta, dict):
        meta.update(attrs_meta)
    if metadata:
        meta.update(metadata)
    meta = _jsonable(meta)
    out = table.copy(deep=False)
    out.attrs = {META_KEY: meta} if meta else {}
    parquet = p.suffix.lower() in PARQUET_SUFFIXES

    def write_data(tmp: Path) -> None:
        if parquet:
            out.to_parquet(tmp, index=False)
        else:
            out.to_csv(tmp, index=False, lineterminator="\n", encoding="utf-8")

    text = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    sc = sidecar_path(p)
    try:
        atomic_write(p, write_data)
        if meta:
            atomic_write(sc, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        elif sc.exists():
            sc.unlink()
    except ImportError:
        raise TrackFileError(
            f"{p.name}: writing Parquet files needs pyarrow (pip install pyarrow)"
        ) from None
    except OSError as e:
        raise TrackFileError(f"{p.name}: cannot write ({e.strerror or e})") from None
    return p
