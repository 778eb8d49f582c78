"""The D-alpha tab of the plot dock: one point per analysed track (its median log10 D (STEP)
against its median alpha) or, switched in the tab, one point per segment (the medians over the
segment, sized by its duration), coloured by the most frequent diffusive state (the state
colours of :mod:`._colour`, grey without states). Clicking a point picks its track (plots and
the outline in the canvas follow, as a click in the per-track table does); every point of the
picked track is ringed. Shift-dragging a lasso selects the tracks with a point inside it: the
STEP widget of the viewer switches to "typed IDs" with exactly those IDs, so the next Run
analyses them, and the canvas outlines them (:mod:`._selection_outline`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.path import Path
from matplotlib.widgets import LassoSelector

from ._colour import GREY, STATE_COLOURS, STATE_NAMES

__all__ = ["dalpha_points", "segment_points", "DAlphaPanel", "MODES"]

_PICK_PX = 8.0  # a click picks the nearest point within this many screen pixels
POINT_COLUMNS = ["track_id", "log10_d", "alpha", "state", "n_points"]
MODES = ("per track", "per segment")  # what one point of the scatter is
N_SIZES = 5  # per segment: marker sizes by duration, in this many steps


def _majority_state(group: np.ndarray, state: np.ndarray, n_groups: int) -> np.ndarray:
    """Per group the state (0..3) with the most frames (a tie: the lower number), -1 without
    any state."""
    ok = np.isin(state, np.arange(len(STATE_NAMES)))
    k = len(STATE_NAMES)
    counts = np.bincount(
        group[ok] * k + state[ok].astype(np.int64), minlength=n_groups * k
    ).reshape(n_groups, k)
    return np.where(counts.sum(axis=1) > 0, counts.argmax(axis=1), -1)


def _grouped(features: pd.DataFrame, tid: np.ndarray, group: np.ndarray) -> pd.DataFrame:
    """Medians of log10 D and alpha, the majority state and the number of points per group
    (``group``: dense 0..n-1 per row, -1 for rows in no group)."""
    n = int(group.max()) + 1 if group.size else 0
    has = group >= 0
    g = group[has]
    values = pd.DataFrame(
        {
            "log10_d": features["step_log10_d"].to_numpy(float)[has],
            "alpha": features["step_alpha"].to_numpy(float)[has],
        }
    ).replace([np.inf, -np.inf], np.nan)
    out = values.groupby(g).median().reindex(pd.RangeIndex(n))
    track = np.zeros(n, np.int64)
    track[g] = tid[has]  # every row of a group has the group's track
    out.insert(0, "track_id", track)
    state = features["step_state"].to_numpy(float)[has] if "step_state" in features else None
    out["state"] = -1 if state is None else _majority_state(g, state, n)
    out["n_points"] = np.bincount(g, minlength=n)
    return out


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
        ``track_id``, ``log10_d`` (median STEP log10 D, results' units), ``alpha`` (median),
        ``state`` (most frequent state 0..3, -1 without one) and ``n_points``, for the tracks
        with both a finite D and alpha, sorted by track.
    """
    if "step_log10_d" not in features.columns or "step_alpha" not in features.columns:
        return pd.DataFrame(columns=POINT_COLUMNS)
    tid = np.asarray(track_ids, dtype=np.int64)
    _, group = np.unique(tid, return_inverse=True)
    out = _grouped(features, tid, group.ravel())
    return out.dropna(subset=["log10_d", "alpha"]).reset_index(drop=True)[POINT_COLUMNS]


def _segment_of_rows(tid, frame, segments: pd.DataFrame) -> np.ndarray:
    """Per row (any order) the row of the segments table its frame lies in (-1: none)."""
    seg = segments.sort_values(["track_id", "start_frame"])
    s_tid = seg["track_id"].to_numpy(np.int64)
    ids = np.unique(np.concatenate([tid, s_tid]))
    f0 = min(int(frame.min()), int(seg["start_frame"].min()))
    span = max(int(frame.max()), int(seg["stop_frame"].max())) - f0 + 1
    start = np.searchsorted(ids, s_tid) * span + (seg["start_frame"].to_numpy(np.int64) - f0)
    key = np.searchsorted(ids, tid) * span + (frame - f0)
    i = np.searchsorted(start, key, side="right") - 1
    j = np.clip(i, 0, None)
    inside = (i >= 0) & (s_tid[j] == tid) & (frame < seg["stop_frame"].to_numpy(np.int64)[j])
    return np.where(inside, seg.index.to_numpy()[j], -1)


def _runs(tid: np.ndarray, frame: np.ndarray, value: np.ndarray | None) -> np.ndarray:
    """Per row its run: consecutive points (by frame) of a track with the same ``value``."""
    order = np.lexsort((frame, tid))
    t = tid[order]
    new = np.r_[True, t[1:] != t[:-1]]
    if value is not None:
        v = value[order]
        same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
        new[1:] |= ~same
    run = np.empty(tid.size, np.int64)
    run[order] = np.cumsum(new) - 1
    return run


def segment_points(features: pd.DataFrame, data, segments: pd.DataFrame | None = None):
    """One point per segment: the medians of a Tracks layer's results over each segment.

    Segments come from the layer's segments table (a run with change points); without one
    from the runs of equal ``segment_d`` (a file read back), else of equal ``step_state`` (a
    run with states but no change points), else a track is one segment.

    Parameters
    ----------
    features : DataFrame
        The layer's features (``step_log10_d``, ``step_alpha``, optionally ``step_state``,
        ``segment_d``), one row per point.
    data : array_like
        The layer's data (track_id, t, ...), one row per point.
    segments : DataFrame, optional
        ``track_id``, ``start_frame``, ``stop_frame`` (exclusive) per segment.

    Returns
    -------
    DataFrame
        ``track_id``, ``log10_d`` (median STEP log10 D over the segment, results' units),
        ``alpha`` (median), ``state`` (most frequent, -1 without one) and ``n_points`` (the
        segment's points: its duration in frames where no frame is missing), for the segments
        with a finite D and alpha, sorted by track and start.
    """
    if "step_log10_d" not in features.columns or "step_alpha" not in features.columns:
        return pd.DataFrame(columns=POINT_COLUMNS)
    data = np.asarray(data)
    tid = np.round(data[:, 0]).astype(np.int64)
    frame = np.round(data[:, 1]).astype(np.int64)
    if segments is not None and len(segments) and tid.size:
        segments = segments.sort_values(["track_id", "start_frame"]).reset_index(drop=True)
        group = _segment_of_rows(tid, frame, segments)
    else:
        by = next((c for c in ("segment_d", "step_state") if c in features.columns), None)
        value = None if by is None else features[by].to_numpy(float)
        group = _runs(tid, frame, value)
    if group.size and group.max() < 0:
        return pd.DataFrame(columns=POINT_COLUMNS)
    out = _grouped(features, tid, group)
    out = out[out["n_points"] > 0]  # segments without a point of the layer
    return out.dropna(subset=["log10_d", "alpha"]).reset_index(drop=True)[POINT_COLUMNS]


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
    selection goes to. ``widget`` (the "points" choice above the figure) is what is docked.
    """

    def __init__(self, on_pick, owner=None):
        from qtpy.QtWidgets import QComboBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

        self.figure = Figure(figsize=(4.6, 3.4), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ax = self.figure.add_subplot(111)
        self.points = pd.DataFrame(columns=POINT_COLUMNS)
        self.artists: list = []  # the marker lines of the points (one per colour and size)
        self.ring = None  # the ring markers around the picked track's point(s)
        self.selected: list[int] = []  # the tracks of the last lasso
        self.lasso = None
        self._on_pick = on_pick
        self._owner = owner if owner is not None else getattr(on_pick, "__self__", None)
        self._layer = None
        self._drawn = None  # what the scatter shows (layer, mode, units, version)
        self._version = 0  # bumped when the layer's results change
        self.mode_choice = QComboBox()
        self.mode_choice.addItems(list(MODES))
        self.mode_choice.setToolTip(
            "one point per track (medians over the track) or per segment (medians over "
            "each segment, sized by its duration)"
        )
        self.widget = QWidget()
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(QLabel("points"))
        row.addWidget(self.mode_choice)
        row.addStretch(1)
        lay = QVBoxLayout(self.widget)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row)
        lay.addWidget(self.canvas)
        self.mode_choice.currentTextChanged.connect(self._mode_changed)
        self.canvas.mpl_connect("button_press_event", self.click)
        self._new_lasso()

    @property
    def mode(self) -> str:
        """What one point is: "per track" or "per segment"."""
        return self.mode_choice.currentText()

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"D-alpha points are {' or '.join(MODES)}, not {value!r}")
        self.mode_choice.setCurrentText(value)

    def _mode_changed(self, *_):
        if self._drawn is not None:
            self.draw(self._layer, self._drawn[2])

    def invalidate(self) -> None:
        """The layer's results changed: the next :meth:`draw` recomputes the points."""
        self._version += 1

    def _new_lasso(self) -> None:
        if self.lasso is not None:
            self.lasso.disconnect_events()
        # blitting: a drag redraws the lasso line, not 100 000 points per mouse move
        self.lasso = LassoSelector(self.ax, self.lasso_select, useblit=True)
        self.lasso.set_active(False)  # a shift-press activates it (see click)

    @property
    def picked(self) -> int | None:
        """The picked track (the owner's ``track``), ringed in the scatter."""
        track = getattr(self._owner, "track", None)
        return None if track is None else int(track)

    def lasso_select(self, verts) -> list[int]:
        """Select the tracks with a point inside the lasso ``verts`` (data coordinates, alpha
        then log10 D), hand them to the STEP widget and outline them in the canvas."""
        from ._selection_outline import outline_tracks

        self.lasso.set_active(False)
        if len(verts) < 3 or len(self.points) == 0:
            return []
        inside = Path(np.asarray(verts, float)).contains_points(
            self.points[["alpha", "log10_d"]].to_numpy(float)
        )
        self.selected = [int(i) for i in np.unique(self.points["track_id"].to_numpy()[inside])]
        viewer = getattr(self._owner, "_viewer", None)
        if self.selected:
            select_in_step_widgets(viewer, self.selected)
        if viewer is not None and self._layer is not None:
            outline_tracks(viewer, self._layer, self.selected)  # empty lasso: no outline
        return self.selected

    def _compute(self, layer) -> None:
        if layer is None:
            self.points = self.points.iloc[0:0]
        elif self.mode == MODES[1]:
            from ._layers import layer_segments

            self.points = segment_points(layer.features, layer.data, layer_segments(layer))
        else:
            ids = np.round(np.asarray(layer.data)[:, 0]).astype(np.int64)
            self.points = dalpha_points(layer.features, ids)

    def draw(self, layer, units: str) -> None:
        """Draw the points of ``layer`` (a message when it has no D and alpha); only the ring
        moves when neither the layer, its results, the mode nor the units changed."""
        key = (id(layer), self.mode, units, self._version)
        if key == self._drawn and layer is self._layer and self.artists:
            self._draw_ring()
            self.canvas.draw_idle()
            return
        ax = self.ax
        ax.clear()
        self.artists, self.ring = [], None
        self._new_lasso()
        self._layer = layer
        self._compute(layer)
        self._drawn = key
        if len(self.points) == 0:
            ax.text(0.5, 0.5, "analyse tracks with alpha(t) ticked", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")  # fmt: skip
            self.canvas.draw_idle()
            return
        self._scatter()
        self._draw_ring()
        per_segment = self.mode == MODES[1]
        what = "segment" if per_segment else "track"
        ax.axvline(1.0, color="0.7", lw=0.8, zorder=0)
        ax.set_xlabel(f"median alpha per {what}", fontsize=8)
        ax.set_ylabel(f"median log10 D per {what} ({units})", fontsize=8)
        n_tracks = self.points["track_id"].nunique()
        title = f"{layer.name}: {n_tracks} tracks"
        if per_segment:
            title = (
                f"{layer.name}: {len(self.points)} segments of {n_tracks} tracks (size: duration)"
            )
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        self.canvas.draw_idle()

    def _scatter(self) -> None:
        """The points coloured by state (grey without one); per segment sized by duration (in
        :data:`N_SIZES` steps). One marker line per colour and size: matplotlib stamps the
        markers of a line, about 4x faster than a scatter of 100 000 points."""
        ax = self.ax
        palette = np.array([*STATE_COLOURS, GREY[:3]])
        state = self.points["state"].to_numpy(int)
        colour = np.where(state >= 0, state, len(STATE_COLOURS))  # -1 (no state) -> grey
        if self.mode == MODES[1]:
            n = self.points["n_points"].to_numpy(float)
            frac = np.sqrt(np.clip(n / max(np.percentile(n, 95), 1.0), 0.0, 1.0))
            step = np.rint(frac * (N_SIZES - 1)).astype(int)
        else:
            step = np.full(len(state), -1)  # one size per track
        xy = self.points[["alpha", "log10_d"]].to_numpy(float)
        fade = 0.8 if len(state) > 2000 else 1.0
        self.artists = []
        for c, k in np.unique(np.column_stack([colour, step]), axis=0):
            mine = (colour == c) & (step == k)
            area = 18.0 if k < 0 else 4.0 + 40.0 * k / (N_SIZES - 1)  # points^2, as scatter
            (line,) = ax.plot(xy[mine, 0], xy[mine, 1], ls="none", marker="o", mec="none",
                              ms=np.sqrt(area), mfc=palette[c], alpha=fade)  # fmt: skip
            self.artists.append(line)
        present = set(state)
        for k, name in enumerate(STATE_NAMES):
            if k in present:
                ax.scatter([], [], color=STATE_COLOURS[k], s=18, label=name)
        if present - {-1}:
            ax.legend(fontsize=7, loc=self._emptiest_corner(xy))

    def _emptiest_corner(self, xy: np.ndarray) -> str:
        """The axes corner with the fewest points (matplotlib's ``loc="best"`` searches again
        at every draw: half the drawing time at 100 000 points)."""
        (x0, x1), (y0, y1) = self.ax.get_xlim(), self.ax.get_ylim()
        u = (xy[:, 0] - x0) / ((x1 - x0) or 1.0)
        v = (xy[:, 1] - y0) / ((y1 - y0) or 1.0)
        corners = {
            "upper right": (u > 0.65) & (v > 0.7),
            "upper left": (u < 0.35) & (v > 0.7),
            "lower right": (u > 0.65) & (v < 0.3),
            "lower left": (u < 0.35) & (v < 0.3),
        }
        return min(corners, key=lambda c: int(corners[c].sum()))

    def drawn(self) -> pd.DataFrame:
        """What the figure shows, read back from its marker lines: one row per point with
        ``alpha``, ``log10_d``, ``colour`` (RGB tuple) and ``area`` (points^2)."""
        from matplotlib.colors import to_rgb

        rows = [
            pd.DataFrame(
                {
                    "alpha": line.get_xdata(),
                    "log10_d": line.get_ydata(),
                    "colour": [to_rgb(line.get_markerfacecolor())] * len(line.get_xdata()),
                    "area": line.get_markersize() ** 2,
                }
            )
            for line in self.artists
        ]
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()

    def _draw_ring(self) -> None:
        """Ring every point of the picked track (none when no track is picked)."""
        if self.ring is not None:
            self.ring.remove()
            self.ring = None
        if self.picked is None or len(self.points) == 0:
            return
        row = self.points["track_id"].to_numpy() == self.picked
        if not row.any():
            return
        xy = self.points.loc[row, ["alpha", "log10_d"]].to_numpy(float)
        (self.ring,) = self.ax.plot(
            xy[:, 0], xy[:, 1], "o", ms=11, mfc="none", mec="#ff00ff", mew=1.8, zorder=5
        )

    def click(self, event) -> int | None:
        """Pick the track of the point nearest a click (within a few pixels); a shift-press
        starts a lasso instead."""
        if self.lasso is not None:
            self.lasso.set_active(event.key == "shift" and event.inaxes is self.ax)
            if self.lasso.active:
                return None
        if event.inaxes is not self.ax or not self.artists or len(self.points) == 0:
            return None
        xy = self.ax.transData.transform(self.points[["alpha", "log10_d"]].to_numpy(float))
        dist = np.hypot(xy[:, 0] - event.x, xy[:, 1] - event.y)
        i = int(np.argmin(dist))
        if dist[i] > _PICK_PX:
            return None
        tid = int(self.points["track_id"].iloc[i])
        self._on_pick(tid)
        return tid
