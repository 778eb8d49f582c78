"""Helpers shared by the simulator families (random generators, checks, the frame convention)."""

from __future__ import annotations

import numpy as np

RngLike = np.random.Generator | int | None  # a Generator, a seed, or None for a fresh one


def as_rng(rng: RngLike) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a Generator, a seed or None."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def check_dim(dim: int) -> None:
    """Raise unless ``dim`` is 1, 2 or 3."""
    if dim not in (1, 2, 3):
        raise ValueError(f"dim must be 1, 2 or 3, not {dim}")


def changepoint_range(n_changepoints) -> np.ndarray:
    """The numbers of change points of an int or an inclusive (low, high) range."""
    if np.isscalar(n_changepoints):
        lo = hi = n_changepoints
    else:
        lo, hi = n_changepoints
    ks = np.arange(lo, hi + 1)
    if ks.size == 0 or ks[0] < 0:
        raise ValueError(f"bad n_changepoints {n_changepoints}: need 0 <= low <= high")
    return ks


def changepoint_frames(n: int, t: int, k: int, min_seg: int, rng) -> np.ndarray:
    """(n, k) sorted change-point frames with every segment (first and last too) >= min_seg."""
    if min_seg < 2:
        raise ValueError(f"min_segment must be >= 2 frames (a segment needs a step), not {min_seg}")
    slack = t - (k + 1) * min_seg
    if slack < 0:
        raise ValueError(
            f"{k} change points with minimum segment {min_seg} do not fit in {t} frames"
        )
    base = np.sort(rng.integers(0, slack + 1, size=(n, k)), axis=1)
    return base + min_seg * np.arange(1, k + 1)


def segment_index(changepoints: np.ndarray, n_frames: int) -> np.ndarray:
    """(n, T) segment number of every frame for (n, k) change points (frame c starts segment)."""
    frames = np.arange(n_frames)[None, :, None]
    return (frames >= np.asarray(changepoints)[:, None, :]).sum(-1)


def repeat_last(labels: np.ndarray) -> np.ndarray:
    """Set the last frame of per-frame labels (N, T, ...) to the frame before (in place).

    Forward convention: the label at frame t describes the motion t -> t+1, so the last frame has
    no motion of its own and repeats the one before it.
    """
    if labels.shape[1] > 1:
        labels[:, -1] = labels[:, -2]
    return labels
