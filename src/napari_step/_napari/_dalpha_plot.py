"""The D-alpha tab of the plot dock: one point per analysed track, its median log10 D (STEP)
against its median alpha, coloured by its most frequent diffusive state (the state colours of
:mod:`._colour`, grey without states). Clicking a point picks that track (plots and the
outline in the canvas follow, as a click in the per-track table does)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from ._colour import GREY, STATE_COLOURS, STATE_NAMES

__all__ = ["dalpha_points", "DAlphaPanel"]

_PICK_PX = 8.0  # a click picks the nearest point within this many screen pixels


def dalpha_points(features: pd.DataFrame, track_ids) -> pd.DataFrame:
    """Per-track medians of a Tracks layer's results.

    Parameters
    ----------
    features : DataFrame
        The layer's features (``step_log10_d``, ``step_alpha``, optionally ``step_state``),
        one row per point.
    track_ids : array of int
        The track of each row.

    Returns
    -------
    DataFrame
        ``track_id``, ``log10_d`` (median STEP log10 D, results' units), ``alpha`` (median)
        and ``state`` (most frequent state 0..3, -1 without one), for the tracks with both a
        finite D and alpha.
    """
    cols = ["track_id", "log10_d", "alpha", "state"]
    if "step_log10_d" not in features.columns or "step_alpha" not in features.columns:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(
        {
            "track_id": np.asarray(track_ids, dtype=np.int64),
            "log10_d": features["step_log10_d"].to_numpy(float),
            "alpha": features["step_alpha"].to_numpy(float),
        }
    )
    if "step_state" in features.columns:
        df["state"] = features["step_state"].to_numpy(float)
    else:
        df["state"] = np.nan
    df = df.replace([np.inf, -np.inf], np.nan)
    groups = df.groupby("track_id")
    out = groups[["log10_d", "alpha"]].median()
    out["state"] = groups["state"].agg(lambda s: s.mode().iloc[0] if s.notna().any() else -1)
    out = out.dropna(subset=["log10_d", "alpha"]).reset_index()
    out["state"] = out["state"].astype(int)
    return out[cols]


class DAlphaPanel:
    """The D-alpha figure; ``on_pick(track_id)`` is called when a point is clicked."""

    def __init__(self, on_pick):
        self.figure = Figure(figsize=(4.6, 3.4), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ax = self.figure.add_subplot(111)
        self.points = pd.DataFrame(columns=["track_id", "log10_d", "alpha", "state"])
        self.scatter = None
        self._on_pick = on_pick
        self.canvas.mpl_connect("button_press_event", self.click)

    def draw(self, layer, units: str) -> None:
        """Redraw from ``layer``'s features (a message when it has no D and alpha)."""
        ax = self.ax
        ax.clear()
        self.scatter = None
        if layer is not None:
            ids = np.round(np.asarray(layer.data)[:, 0]).astype(np.int64)
            self.points = dalpha_points(layer.features, ids)
        else:
            self.points = self.points.iloc[0:0]
        if len(self.points) == 0:
            ax.text(0.5, 0.5, "analyse tracks with alpha(t) ticked", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")  # fmt: skip
            self.canvas.draw_idle()
            return
        palette = np.array([*STATE_COLOURS, GREY[:3]])
        colours = palette[self.points["state"].to_numpy()]  # -1 (no state) -> grey
        self.scatter = ax.scatter(
            self.points["alpha"], self.points["log10_d"], c=colours, s=18, edgecolors="none"
        )
        present = set(self.points["state"])
        for k, name in enumerate(STATE_NAMES):
            if k in present:
                ax.scatter([], [], color=STATE_COLOURS[k], s=18, label=name)
        if present - {-1}:
            ax.legend(fontsize=7, loc="best")
        ax.axvline(1.0, color="0.7", lw=0.8, zorder=0)
        ax.set_xlabel("median alpha", fontsize=8)
        ax.set_ylabel(f"median log10 D ({units})", fontsize=8)
        ax.set_title(f"{layer.name}: {len(self.points)} tracks", fontsize=9)
        ax.tick_params(labelsize=8)
        self.canvas.draw_idle()

    def click(self, event) -> int | None:
        """Pick the track of the point nearest a click (within a few pixels)."""
        if event.inaxes is not self.ax or self.scatter is None or len(self.points) == 0:
            return None
        xy = self.ax.transData.transform(self.points[["alpha", "log10_d"]].to_numpy(float))
        dist = np.hypot(xy[:, 0] - event.x, xy[:, 1] - event.y)
        i = int(np.argmin(dist))
        if dist[i] > _PICK_PX:
            return None
        tid = int(self.points["track_id"].iloc[i])
        self._on_pick(tid)
        return tid
