"""Normalising the ways users hand over tracks: one (N, T, dim) array or a list of (T_i, dim)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _as_track(i: int, tr, allow_nan: bool) -> np.ndarray:
    raw = np.asarray(tr)
    if np.iscomplexobj(raw):
        raise ValueError(
            f"track {i} has complex positions: give real coordinates (e.g. np.c_[z.real, z.imag] "
            f"for x + iy)"
        )
    if raw.dtype.kind not in "biuf":
        try:
            raw = raw.astype(float)
        except (TypeError, ValueError):
            raise ValueError(
                f"track {i}: positions must be numbers, got dtype {raw.dtype}"
            ) from None
    a = np.asarray(raw, dtype=float)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or not 1 <= a.shape[1] <= 3:
        raise ValueError(f"track {i}: expected shape (T, dim) with dim 1-3, got {a.shape}")
    if not allow_nan and not np.isfinite(a).all():
        bad = np.flatnonzero(~np.isfinite(a).all(axis=1))
        raise ValueError(
            f"track {i} has non-finite positions at rows {bad[:5].tolist()}"
            f"{'...' if bad.size > 5 else ''}; drop or split those frames first"
        )
    return a


def as_track_list(tracks: np.ndarray | Iterable, *, allow_nan: bool = True) -> list[np.ndarray]:
    """Tracks as a list of float64 (T_i, dim) arrays, validated.

    Parameters
    ----------
    tracks : ndarray or iterable of array-like
        One (N, T, dim) array, one (T, dim) array (a single track) or a list of (T_i, dim) (or
        (T_i,) for 1-D) arrays of real positions.
    allow_nan : bool
        Accept non-finite positions; otherwise they raise ``ValueError`` naming the track.

    Returns
    -------
    list of ndarray
        float64 arrays (T_i, dim), dim 1-3 and the same for every track.

    Raises
    ------
    ValueError
        Wrong shapes, mixed dimensions, complex or non-numeric positions, non-finite positions
        (with ``allow_nan=False``).
    """
    if isinstance(tracks, np.ndarray):
        if tracks.ndim == 2:  # a single track
            tracks = [tracks]
        elif tracks.ndim != 3:
            raise ValueError(
                f"tracks must be an (N, T, dim) array or a list of (T, dim) arrays, "
                f"got an array of shape {tracks.shape}"
            )
    out = [_as_track(i, tr, allow_nan) for i, tr in enumerate(tracks)]
    dims = {a.shape[1] for a in out}
    if len(dims) > 1:
        raise ValueError(f"all tracks must have the same dimension, got {sorted(dims)}")
    return out


def group_by_length(tracks: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Map each distinct track length (frames) to the indices of the tracks with that length."""
    lengths = np.array([len(t) for t in tracks], dtype=int)
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}
