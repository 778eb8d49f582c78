"""The D(t) plot dock: one track's D(t) (STEP and TA-MSD, log axis, units), the histogram of
log10 D over the analysed tracks, and the colour bar of the Tracks colouring (napari draws none
for tracks). It follows the track picked in the STEP widget or clicked in the canvas, and can be
pointed at any track with its own controls. Tracks analysed with change points show their
per-segment D (``segment_d``) as a step line ("segments") and the change points as vertical
dotted lines. Tracks with a per-frame anomalous exponent (``step_alpha``) show alpha(t) on a
secondary axis ("alpha (STEP)"); when the tracks are coloured by alpha the colour bar shows the
alpha range. The "D-alpha" tab (:mod:`._dalpha_plot`) plots each track's (or each segment's)
median log10 D against its median alpha, coloured by state; clicking a point picks its track, a
shift-drag lasso selects and outlines tracks.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import ComboBox, Container, SpinBox
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter
from napari.layers import Tracks
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QPushButton, QTabWidget, QVBoxLayout, QWidget

from ..plotting import draw_d_of_t
from ._colour import ALPHA_RANGE, DEFAULT_RANGE, colour_by, mpl_alpha_colormap, mpl_colormap
from ._dalpha_plot import DAlphaPanel
from ._layers import layer_segments, results_metadata
from ._widgets_common import (
    FollowsTracks,
    compact_combo,
    docks_of,
    is_alive,
    layer_choices,
    register_dock,
    unwrap_viewer,
)

__all__ = ["DPlotWidget", "plot_docks", "robust_limits"]


def plot_docks(viewer) -> list[DPlotWidget]:
    """The live plot docks of a viewer (the STEP widget drives them)."""
    return docks_of(viewer, DPlotWidget)


def robust_limits(values, lo: float, hi: float, q=(0.5, 99.5)) -> tuple[float, float]:
    """Histogram limits: the colour range widened to the 0.5-99.5 % percentiles of the data,
    so a few outliers do not stretch the axis."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float(lo), float(hi)
    a, b = np.percentile(v, q)
    return float(min(lo, a)), float(max(hi, b))


class DPlotWidget(FollowsTracks, QWidget):
    """Matplotlib figures: D(t), the log10 D histogram and the colour bar; the MSD."""

    def __init__(self, napari_viewer, parent=None):
        super().__init__(parent)
        self._viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self._layer = None
        self._track: int | None = None
        self.step_line = None  # Line2D of STEP D(t) of the shown track
        self.tamsd_line = None  # Line2D of TA-MSD D(t)
        self.true_line = None  # Line2D of the true D (layers with a d_true feature)
        self.segment_line = None  # Line2D of the per-segment D (layers with segment_d)
        self.changepoint_lines: list = []  # vertical lines at the shown track's change points
        self.alpha_line = None  # Line2D of alpha(t) (layers with step_alpha)
        self.ax_alpha = None  # secondary axis of alpha(t)
        self._drawn = None  # (layer id, track) the D(t) plot shows; None: to redraw

        self.controls = Container(layout="horizontal", labels=True)
        self.layer_choice = ComboBox(label="tracks", choices=layer_choices(napari_viewer, Tracks))
        self.track_choice = SpinBox(label="track", value=0, min=-(2**31), max=2**31 - 1)
        self.layer_choice.tooltip = "the Tracks layer plotted (follows the newest or selected)"
        self.track_choice.tooltip = "the track plotted (or click it in the canvas)"
        self.controls.extend([self.layer_choice, self.track_choice])
        self.figure = Figure(figsize=(4.6, 3.0), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.ax_d = self.figure.add_subplot(111)
        self.hist_figure = Figure(figsize=(4.6, 3.0), dpi=90, layout="constrained")
        self.hist_canvas = FigureCanvasQTAgg(self.hist_figure)
        gs = self.hist_figure.add_gridspec(2, 1, height_ratios=[3.0, 0.25])
        self.ax_hist = self.hist_figure.add_subplot(gs[0])
        self.ax_cbar = self.hist_figure.add_subplot(gs[1])
        self.msd_figure = Figure(figsize=(4.6, 4.0), dpi=90, layout="constrained")
        self.msd_canvas = FigureCanvasQTAgg(self.msd_figure)
        self.ax_msd = self.msd_figure.add_subplot(111)
        self.msd_data = None
        self.dalpha = DAlphaPanel(self._pick_track)  # D-alpha scatter, a click picks a track
        self.tabs = QTabWidget()
        self.tabs.addTab(self.canvas, "D(t)")
        self.tabs.addTab(self.hist_canvas, "histogram")
        self.tabs.addTab(self.msd_canvas, "MSD")
        self.tabs.addTab(self.dalpha.widget, "D-alpha")
        for canvas in (self.canvas, self.hist_canvas, self.msd_canvas, self.dalpha.canvas):
            canvas.setMinimumHeight(150)
        self.tabs.currentChanged.connect(self._render_current)
        self.save_button = QPushButton("Save plot...")
        self.save_button.setToolTip("save the plot shown as PNG or SVG")
        self.save_button.clicked.connect(self._save_clicked)
        self.tabs.setCornerWidget(self.save_button, Qt.Corner.TopRightCorner)
        compact_combo(self.layer_choice.native)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.controls.native)
        lay.addWidget(self.tabs)
        self.setMinimumHeight(220)

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(80)
        self._timer.timeout.connect(self.redraw)
        self.layer_choice.changed.connect(self._on_layer_choice)
        self.track_choice.changed.connect(self._on_track_choice)
        register_dock(self)
        self._follow_tracks(napari_viewer, self.layer_choice)
        self._on_layer_choice()

    # ---------------------------------------------------------------- wiring
    @property
    def layer(self):
        return self._layer

    @property
    def track(self) -> int | None:
        return self._track

    def _tracks_followed(self):
        if self.layer_choice.value is not self._layer:
            self.set_layer(self.layer_choice.value)

    def _on_layer_choice(self, *_):
        if self.layer_choice.value is not self._layer:
            self.set_layer(self.layer_choice.value)

    def _on_track_choice(self, value):
        if value != self._track:
            self.show_track(int(value))

    def _schedule(self, *_):
        self._drawn = None  # the layer's results changed: the next pick redraws
        self.dalpha.invalidate()
        if is_alive(self) and is_alive(self._timer):
            self._timer.start()

    def set_layer(self, layer, redraw: bool = True) -> None:
        """Follow a Tracks layer (redraws when its features or metadata change)."""
        if layer is self._layer:
            return
        if self._layer is not None:
            for ev in (self._layer.events.properties, self._layer.events.metadata):
                try:
                    ev.disconnect(self._schedule)
                except (TypeError, ValueError, RuntimeError):
                    pass
        self._layer = layer
        if layer is not None:
            layer.events.properties.connect(self._schedule)
            layer.events.metadata.connect(self._schedule)
            if self.layer_choice.value is not layer:
                with self.layer_choice.changed.blocked():
                    try:
                        self.layer_choice.value = layer
                    except ValueError:  # not offered (yet): choices refresh later
                        pass
        if redraw:
            self.redraw()

    def _set_track(self, track_id) -> None:
        self._track = None if track_id is None else int(track_id)
        if self._track is not None and self.track_choice.value != self._track:
            with self.track_choice.changed.blocked():
                self.track_choice.value = self._track

    def show_track(self, track_id) -> None:
        """Plot another track of the layer (only the track's plots are redrawn)."""
        self._set_track(track_id)
        if is_alive(self) and self._drawn != (id(self._layer), self._track):
            self._redraw_track()  # once per pick (a table row also picks via the widget)

    def _pick_track(self, track_id) -> None:
        """A point of the D-alpha plot clicked: outline the track and plot it."""
        from ._layers import highlight_track

        if self._layer is not None:
            highlight_track(self._viewer, self._layer, track_id)
            self.show_track(track_id)

    def show(self, layer, track_id) -> None:
        """Show ``track_id`` of ``layer`` with every plot rebuilt (new results, colours)."""
        self.set_layer(layer, redraw=False)
        self._set_track(track_id)
        self.redraw()

    # ------------------------------------------------------------------ data
    def _units(self):
        meta = results_metadata(self._layer) if self._layer is not None else {}
        units = meta.get("units", "px^2/frame")
        dt = float(meta.get("frame_interval_s", 1.0)) if units != "px^2/frame" else 1.0
        px = float(meta.get("pixel_size_um", 1.0)) if units != "px^2/frame" else 1.0
        lo, hi = meta.get("colour_range", DEFAULT_RANGE)
        return units, dt, px, float(lo), float(hi)

    def _track_rows(self, track_id):
        """(frames, rows, slots) of a track: every frame from its first to its last, the layer
        rows of its observed points sorted by frame, and their places in ``frames``; None when
        there is no such track."""
        layer, tid = self._layer, self._track if track_id is None else track_id
        if layer is None or tid is None or len(layer.data) == 0:
            return None
        data = np.asarray(layer.data)
        rows = np.flatnonzero(np.round(data[:, 0]) == tid)
        if rows.size == 0:
            return None
        frames_obs = np.round(data[rows, 1]).astype(int)
        order = np.argsort(frames_obs, kind="stable")
        rows, frames_obs = rows[order], frames_obs[order]
        frames = np.arange(frames_obs[0], frames_obs[-1] + 1)
        return frames, rows, frames_obs - frames[0]

    def _track_feature(self, found, name, factor=1.0):
        """A feature of the track ``found`` by :meth:`_track_rows`, NaN in skipped frames."""
        feats = self._layer.features
        if name not in feats.columns:
            return None
        frames, rows, slots = found
        out = np.full(frames.size, np.nan)
        out[slots] = feats[name].to_numpy(float)[rows] * factor
        return out

    def track_data(self, track_id=None):
        """(frames, step_d, tamsd_d, d_true|None) of a track, NaN in skipped frames."""
        found = self._track_rows(track_id)
        if found is None:
            return None
        _, dt, px, _, _ = self._units()
        col = partial(self._track_feature, found)
        return found[0], col("step_d"), col("tamsd_d"), col("d_true", px**2 / dt)

    def alpha_data(self, track_id=None):
        """(frames, alpha) of a track, NaN in skipped frames; None without ``step_alpha`` or
        without any alpha for the track."""
        found = self._track_rows(track_id)
        alpha = None if found is None else self._track_feature(found, "step_alpha")
        if alpha is None or not np.isfinite(alpha).any():
            return None
        return found[0], alpha

    def segment_data(self, track_id=None):
        """(frames, segment_d, change-point frames) of a track, or None without ``segment_d``.

        Change points come from the layer's segments table; without one (e.g. a file read
        back) from the frames where ``segment_d`` jumps between consecutive frames."""
        found = self._track_rows(track_id)
        seg_d = None if found is None else self._track_feature(found, "segment_d")
        if seg_d is None or not np.isfinite(seg_d).any():
            return None
        layer, tid, frames = self._layer, self._track if track_id is None else track_id, found[0]
        table = layer_segments(layer)
        if table is not None:
            mine = table[(table["track_id"] == tid) & table["changepoint"].astype(bool)]
            cps = np.sort(mine["start_frame"].to_numpy(int))
        else:
            jump = np.isfinite(seg_d[1:]) & np.isfinite(seg_d[:-1]) & (seg_d[1:] != seg_d[:-1])
            cps = frames[1:][jump]
        return frames, seg_d, cps

    # ------------------------------------------------------------------ draw
    def redraw(self) -> None:
        """Rebuild every plot (the layer or its results changed); only the tab shown is
        rendered now, the others when they are shown."""
        if not is_alive(self):
            return
        self.dalpha.invalidate()
        units, _, _, lo, hi = self._units()
        self.ax_hist.clear()
        self.ax_cbar.clear()
        self._draw_histogram(units, lo, hi)
        self._draw_colourbar(units, lo, hi)
        self._redraw_track(render=False)
        self._render_current()

    def _redraw_track(self, render: bool = True) -> None:
        """Rebuild the D(t) plot of the picked track (the histogram does not depend on it)."""
        units, dt, _, _, _ = self._units()
        self.ax_d.clear()
        if self.ax_alpha is not None:
            self.ax_alpha.remove()
            self.ax_alpha = None
        self.step_line = self.tamsd_line = self.true_line = self.segment_line = None
        self.alpha_line = None
        self.changepoint_lines = []
        self._draw_track(units, dt)
        self._drawn = (id(self._layer), self._track)
        if render:
            self._render_current()

    def _render_current(self, *_):
        """Render the tab shown (the MSD is computed only when its tab is shown)."""
        if not is_alive(self):
            return
        index = self.tabs.currentIndex()
        if index == 2:
            self.redraw_msd()
        elif index == 3:
            self.dalpha.draw(self._layer, self._units()[0])
        else:
            (self.canvas, self.hist_canvas)[max(0, index)].draw_idle()

    def redraw_msd(self) -> None:
        """Draw the MSD tab (the picked track and the ensemble, with fits); a large layer's
        curves come from a worker thread (:data:`._msd_plot.ASYNC_POINTS`)."""
        from ._layers import layer_table
        from ._msd_plot import ASYNC_POINTS, msd_curves, start_msd_job

        if not is_alive(self):
            return
        self.msd_data = None
        self._msd_token = token = getattr(self, "_msd_token", 0) + 1  # the newest request wins
        layer = self._layer
        if layer is None or len(layer.data) == 0:
            return self._show_msd((token, None, None, None), "choose a Tracks layer")
        units, dt, px, _, _ = self._units()
        request = (token, layer, self._track, units)
        if len(layer.data) < ASYNC_POINTS:
            curves = msd_curves(layer_table(layer), self._track, px, dt, max_tracks=5000)
            return self._show_msd(request, curves)
        self.tabs.setTabText(2, "MSD (computing...)")  # no figure drawn for the wait
        show = partial(self._show_msd, request)
        self._msd_worker = start_msd_job(layer.data, self._track, px, dt, 5000, show)

    def _show_msd(self, request, curves) -> None:
        """Draw MSD ``curves`` (or a message) of ``request`` (token, layer, track, units)
        unless a newer request was made meanwhile."""
        from ._jobs import JobError
        from ._msd_plot import draw_msd

        token, layer, track, units = request
        if not is_alive(self) or token != self._msd_token:
            return
        self.tabs.setTabText(2, "MSD")
        ax = self.ax_msd
        ax.clear()
        if isinstance(curves, (str, JobError)):
            text = getattr(curves, "message", curves)
            ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
        else:
            self.msd_data = curves
            draw_msd(ax, curves, units, track)
            ax.set_title(f"{layer.name}: MSD", fontsize=9)
        self.msd_canvas.draw_idle()

    def save_figure(self, path) -> str:
        """Save the plot of the current tab (PNG, SVG or PDF by the file's suffix)."""
        figs = (self.figure, self.hist_figure, self.msd_figure, self.dalpha.figure)
        fig = figs[max(0, self.tabs.currentIndex())]
        fig.savefig(path, dpi=150)
        return str(path)

    def _save_clicked(self, *_):
        from qtpy.QtWidgets import QFileDialog

        name = ("d_of_t", "log10_d_histogram", "msd", "d_alpha")[max(0, self.tabs.currentIndex())]
        path, _ = QFileDialog.getSaveFileName(
            self, "Save plot", f"{name}.png", "PNG (*.png);;SVG (*.svg);;PDF (*.pdf)"
        )
        if path:
            self.save_figure(path)

    def _draw_track(self, units, dt):
        ax = self.ax_d
        td = self.track_data()
        if td is None or td[1] is None or not np.isfinite(td[1]).any():
            what = (
                "choose a Tracks layer"
                if self._layer is None
                else "pick a track (click it, or type its ID)"
                if self._track is None
                else f"track {self._track}: no STEP result"
            )
            ax.text(0.5, 0.5, what, ha="center", va="center", transform=ax.transAxes, color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            return
        frames, step_d, tamsd_d, d_true = td
        draw_d_of_t(ax, frames, dt, step_d, tamsd_d, d_true, units=units)
        ax.yaxis.set_minor_formatter(NullFormatter())  # no crowded labels on short decades
        self.step_line = ax.lines[0]
        self.tamsd_line = ax.lines[1] if tamsd_d is not None else None
        self.true_line = ax.lines[-1] if d_true is not None else None
        seg = self.segment_data()
        if seg is not None:
            s_frames, seg_d, cps = seg
            (self.segment_line,) = ax.step(
                s_frames * dt, seg_d, where="post", color="C3", lw=1.6, label="segments"
            )
            for i, c in enumerate(cps):
                self.changepoint_lines.append(
                    ax.axvline(
                        c * dt,
                        color="0.3",
                        ls=":",
                        lw=1,
                        label="change point" if i == 0 else "_nolegend_",
                    )
                )
            ax.legend(frameon=False, fontsize=8)
        al = self.alpha_data()
        if al is not None:
            a_frames, alpha = al
            self.ax_alpha = ax.twinx()
            (self.alpha_line,) = self.ax_alpha.plot(
                a_frames * dt, alpha, color="C4", lw=1.2, label="alpha (STEP)"
            )
            self.ax_alpha.axhline(1.0, color="C4", ls="--", lw=0.8, alpha=0.5)
            top = max(ALPHA_RANGE[1], float(np.nanmax(alpha)) + 0.1)
            self.ax_alpha.set_ylim(min(ALPHA_RANGE[0], float(np.nanmin(alpha)) - 0.1), top)
            self.ax_alpha.set_ylabel("alpha (STEP)", color="C4", fontsize=8)
            self.ax_alpha.tick_params(axis="y", colors="C4", labelsize=8)
            self.ax_alpha.legend(loc="lower right", frameon=False, fontsize=8)
        ax.set_title(f"{self._layer.name}: track {self._track}", fontsize=9)

    def _draw_histogram(self, units, lo, hi):
        ax = self.ax_hist
        feats = self._layer.features if self._layer is not None else None
        if feats is None or "step_log10_d" not in feats.columns:
            ax.text(
                0.5,
                0.5,
                "no results yet",
                ha="center",
                va="center",
                transform=ax.transAxes,
                color="0.4",
            )
            ax.set_xticks([])
            ax.set_yticks([])
            return
        step = feats["step_log10_d"].to_numpy(float)
        step = step[np.isfinite(step)]
        tamsd = (
            feats["tamsd_log10_d"].to_numpy(float)
            if "tamsd_log10_d" in feats.columns
            else np.array([])
        )
        tamsd = tamsd[np.isfinite(tamsd)]
        a, b = robust_limits(np.concatenate([step, tamsd]), lo, hi)
        bins = np.linspace(a, b, 49)
        step_in = np.clip(step, a, b)  # outliers land in the end bins, not on a longer axis
        cmap = mpl_colormap()
        if step.size:
            counts, edges, patches = ax.hist(step_in, bins=bins, label="STEP")
            centres = 0.5 * (edges[:-1] + edges[1:])
            for c, patch in zip(np.clip((centres - lo) / (hi - lo), 0, 1), patches):
                patch.set_facecolor(cmap(c))
        if tamsd.size:
            ax.hist(
                np.clip(tamsd, a, b), bins=bins, histtype="step", color="C1", lw=1.2, label="TA-MSD"
            )
        data = np.asarray(self._layer.data)
        n_tracks = (
            len(np.unique(np.round(data[np.isfinite(feats["step_log10_d"].to_numpy(float)), 0])))
            if step.size
            else 0
        )
        ax.set_xlabel(f"log10 D ({units})")
        ax.set_ylabel("points")
        ax.set_title(f"{n_tracks} analysed track(s), {step.size} points", fontsize=9)
        if step.size or tamsd.size:
            ax.legend(frameon=False, fontsize=8)

    def _draw_colourbar(self, units, lo, hi):
        from matplotlib.cm import ScalarMappable
        from matplotlib.colorbar import Colorbar
        from matplotlib.colors import Normalize

        if self._layer is not None and colour_by(self._layer) == "alpha":
            a, b = ALPHA_RANGE
            sm = ScalarMappable(norm=Normalize(a, b), cmap=mpl_alpha_colormap())
            self.colorbar = Colorbar(self.ax_cbar, sm, orientation="horizontal")
            self.colorbar.set_label(
                f"track colour: alpha, {a:g} to {b:g} (1: normal diffusion); grey: no alpha",
                fontsize=8,
            )
            self.ax_cbar.tick_params(labelsize=8)
            return
        sm = ScalarMappable(norm=Normalize(lo, hi), cmap=mpl_colormap())
        self.colorbar = Colorbar(self.ax_cbar, sm, orientation="horizontal")
        self.colorbar.set_label(
            f"track colour: log10 D ({units}), {lo:g} to {hi:g}; grey: not analysed", fontsize=8
        )
        self.ax_cbar.tick_params(labelsize=8)
