"""Matplotlib figures of results, shared by the CLI (PNG files) and the napari plot dock."""

from __future__ import annotations

import numpy as np

__all__ = ["DEFAULT_LOG10_RANGE", "draw_tracks", "draw_d_of_t", "save_tracks_png"]

DEFAULT_LOG10_RANGE = (-3.0, 1.0)  # log10 D colour range, um^2/s
NEUTRAL = (0.6, 0.6, 0.6, 1.0)


def draw_tracks(
    ax, table, column="step_log10_d", vrange=DEFAULT_LOG10_RANGE, cmap="viridis", units="um^2/s"
):
    """Draw every track as line segments coloured by ``column``; NaN segments are grey."""
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    norm = Normalize(*vrange)
    cm = colormaps[cmap]
    segs, cols = [], []
    for _, g in table.sort_values(["track_id", "frame"]).groupby("track_id"):
        xy = g[["x", "y"]].to_numpy()
        v = g[column].to_numpy() if column in g else np.full(len(g), np.nan)
        contiguous = np.diff(g["frame"].to_numpy()) == 1
        for i in np.flatnonzero(contiguous):
            segs.append(xy[i : i + 2])
            val = np.nanmean(v[i : i + 2]) if np.isfinite(v[i : i + 2]).any() else np.nan
            cols.append(NEUTRAL if np.isnan(val) else cm(norm(val)))
    ax.add_collection(LineCollection(segs, colors=cols, linewidths=1.2))
    ax.autoscale()
    ax.set_aspect("equal")
    ax.invert_yaxis()  # image convention: y down
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    from matplotlib.cm import ScalarMappable

    sm = ScalarMappable(norm=norm, cmap=cm)
    cb = ax.figure.colorbar(sm, ax=ax, fraction=0.046, pad=0.04)
    cb.set_label(f"log10 D ({units}); grey: not analysed")
    return cb


def draw_d_of_t(ax, frames, frame_interval, step_d, tamsd_d=None, d_true=None, units="um^2/s"):
    """D(t) of one track on a log axis: STEP, TA-MSD and (for simulations) the truth."""
    t = np.asarray(frames) * frame_interval
    ax.semilogy(t, step_d, label="STEP", color="C0", lw=1.5)
    if tamsd_d is not None:
        td = np.where(np.asarray(tamsd_d) > 0, tamsd_d, np.nan)
        ax.semilogy(t, td, label="TA-MSD (window)", color="C1", lw=1.2, alpha=0.8)
    if d_true is not None:
        ax.semilogy(t, d_true, label="true", color="k", ls="--", lw=1)
    ax.set_xlabel("time (s)" if frame_interval != 1 else "frame")
    ax.set_ylabel(f"D ({units})")
    ax.legend(frameon=False, fontsize=8)


def save_tracks_png(table, path, title=None, vrange=DEFAULT_LOG10_RANGE, units="um^2/s"):
    """Headless picture of the coloured tracks (no OpenGL needed)."""
    from matplotlib.figure import Figure  # no pyplot: safe inside a running Qt app

    fig = Figure(figsize=(7, 6), dpi=120)
    ax = fig.add_subplot()
    draw_tracks(ax, table, vrange=vrange, units=units)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return path
