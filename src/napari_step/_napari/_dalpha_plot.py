"""The D-alpha tab of the plot dock: one point per analysed track, its median log10 D (STEP)
against its median alpha, coloured by its most frequent diffusive state (the state colours of
:mod:`._colour`, grey without states). Clicking a point picks that track (plots and the
outline in the canvas follow, as a click in the per-track table does); the picked track is
ringed. Shift-dragging a lasso selects the tracks inside it: the STEP widget of the viewer
switches to "typed IDs" with exactly those IDs, so the next Run analyses them."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.path import Path
from matplotlib.widgets import LassoSelector

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


def select_in_step_widgets(viewer, track_ids) -> int:
    """Make ``track_ids`` the selection of the STEP widget(s) of ``viewer`` (mode "typed IDs").

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose STEP analysis widgets are changed.
    track_ids : list of int
        The tracks a following Run analyses.

    Returns
    -------
    int
        How many STEP widgets were changed.
    """
    from ._analysis_jobs import parse_track_ids
    from ._widgets_common import docks_of
    from .step_widget import StepAnalysisWidget

    text = ", ".join(str(int(i)) for i in track_ids)
    widgets = docks_of(viewer, StepAnalysisWidget) if viewer is not None else []
    for w in widgets:
        w.settings.mode = "ids"
        if parse_track_ids(w.settings.track_ids) == [int(i) for i in track_ids]:
            continue
        w.settings.track_ids = text
    return len(widgets)


class DAlphaPanel:
    """The D-alpha figure; ``on_pick(track_id)`` is called when a point is clicked.

    ``owner`` (default: the object ``on_pick`` is bound to, the plot dock) gives the picked
    track (its ``track``, ringed) and the viewer (its ``_viewer``) whose STEP widget a lasso
    selection goes to.
    """

    def __init__(self, on_pick, owner=None):
        self.figure = Figure(figsize=(4.6, 3.4), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ax = self.figure.add_subplot(111)
        self.points = pd.DataFrame(columns=["track_id", "log10_d", "alpha", "state"])
        self.scatter = None
        self.ring = None  # the ring marker around the picked track's point
        self.selected: list[int] = []  # the tracks of the last lasso
        self.lasso = None
        self._on_pick = on_pick
        self._owner = owner if owner is not None else getattr(on_pick, "__self__", None)
        self.canvas.mpl_connect("button_press_event", self.click)
        self._new_lasso()

    def _new_lasso(self) -> None:
        if self.lasso is not None:
            self.lasso.disconnect_events()
        self.lasso = LassoSelector(self.ax, self.lasso_select, useblit=False)
        self.lasso.set_active(False)  # a shift-press activates it (see click)

    @property
    def picked(self) -> int | None:
        """The picked track (the owner's ``track``), ringed in the scatter."""
        track = getattr(self._owner, "track", None)
        return None if track is None else int(track)

    def lasso_select(self, verts) -> list[int]:
        """Select the tracks whose points lie inside the lasso ``verts`` (data coordinates,
        alpha then log10 D) and hand them to the STEP widget."""
        self.lasso.set_active(False)
        if len(verts) < 3 or len(self.points) == 0:
            return []
        inside = Path(np.asarray(verts, float)).contains_points(
            self.points[["alpha", "log10_d"]].to_numpy(float)
        )
        self.selected = [int(i) for i in self.points["track_id"].to_numpy()[inside]]
        if self.selected:
            select_in_step_widgets(getattr(self._owner, "_viewer", None), self.selected)
        return self.selected

    def draw(self, layer, units: str) -> None:
        """Redraw from ``layer``'s features (a message when it has no D and alpha)."""
        ax = self.ax
        ax.clear()
        self.scatter = self.ring = None
        self._new_lasso()
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
        self._draw_ring()
        ax.axvline(1.0, color="0.7", lw=0.8, zorder=0)
        ax.set_xlabel("median alpha", fontsize=8)
        ax.set_ylabel(f"median log10 D ({units})", fontsize=8)
        ax.set_title(f"{layer.name}: {len(self.points)} tracks", fontsize=9)
        ax.tick_params(labelsize=8)
        self.canvas.draw_idle()

    def _draw_ring(self) -> None:
        row = self.points["track_id"].to_numpy() == self.picked
        if self.picked is None or not row.any():
            return
        x, y = self.points.loc[row, ["alpha", "log10_d"]].to_numpy(float)[0]
        (self.ring,) = self.ax.plot(
            [x], [y], "o", ms=11, mfc="none", mec="#ff00ff", mew=1.8, zorder=5
        )

    def click(self, event) -> int | None:
        """Pick the track of the point nearest a click (within a few pixels); a shift-press
        starts a lasso instead."""
        if self.lasso is not None:
            self.lasso.set_active(event.key == "shift" and event.inaxes is self.ax)
            if self.lasso.active:
                return None
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
