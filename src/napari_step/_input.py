"""Normalising the ways users hand over tracks: one (N, T, dim) array or a list of (T_i, dim)."""

from __future__ import annotations

import numpy as np


def as_track_list(tracks, *, allow_nan: bool = True) -> list[np.ndarray]:
    """Return tracks as a list of float64 (T_i, dim) arrays, validating shape and dimension."""
    if isinstance(tracks, np.ndarray):
        if tracks.ndim == 2:  # a single track
            tracks = [tracks]
        elif tracks.ndim != 3:
            raise ValueError(
                f"tracks must be an (N, T, dim) array or a list of (T, dim) arrays, "
                f"got an array of shape {tracks.shape}"
            )
    out = []
    dims = set()
    for i, tr in enumerate(tracks):
        a = np.asarray(tr, dtype=float)
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
        dims.add(a.shape[1])
        out.append(a)
    if len(dims) > 1:
        raise ValueError(f"all tracks must have the same dimension, got {sorted(dims)}")
    return out


def group_by_length(tracks: list[np.ndarray]) -> dict[int, np.ndarray]:
    """Map each distinct track length to the indices of the tracks with that length."""
    lengths = np.array([len(t) for t in tracks], dtype=int)
    return {int(n): np.flatnonzero(lengths == n) for n in np.unique(lengths)}
