"""The "STEP analysis" dock widget: time-resolved D of chosen tracks, coloured in the canvas.

- choose a Tracks layer and which of its tracks to analyse: all tracks of >= N points, typed
  IDs ("1, 4, 7-9"), tracks with a point inside the shapes of a Shapes layer, or tracks clicked
  in the canvas (the nearest track at the current time; the current selection is shown);
- units (pixel size um, frame interval s), model, device (auto / CPU / GPU; GPU without CUDA
  falls back to the CPU with a notification), TA-MSD window;
- *Run* analyses in a ``thread_worker`` (progress bar, Cancel); a second Run while one runs is
  refused; a layer deleted or edited meanwhile drops the result; results are **merged** per
  track into the features ``step_d``, ``tamsd_d`` (um^2/s with units), ``step_log10_d``,
  ``tamsd_log10_d`` (NaN for tracks never analysed);
- tracks are coloured by log10 D over a fixed, stated range (grey: not analysed), through the
  NaN-free feature ``step_log10_d_color`` (see :mod:`._colour`);
- units changed after a run mark the results **stale** (status text); the next Run converts the
  earlier tracks' values exactly to the new units while it analyses the selected ones;
- *Export* writes the results table with units and model in the metadata;
- *find change points (segments)*: Run also cuts each track into segments of constant D
  (:mod:`napari_step.segment`; per-segment D by ``mle`` or ``cve_pooled``), adds the features
  ``segment_d`` / ``segment_log10_d``, shows the change points as a Points layer
  "<tracks> change points", keeps the segments table in
  ``layer.metadata['napari_step_segments']`` (shown in the widget's table, merged per track
  across runs) and *Export segments...* writes it as CSV with a JSON sidecar of units;
- *anomalous exponent alpha(t)*: Run also predicts the per-frame anomalous exponent with the
  shipped STEP alpha model (:func:`napari_step.anomalous.predict_alpha`, gap-free piece by piece)
  into the feature ``step_alpha`` (no units; merged per track across runs); *colour by* "alpha"
  colours the tracks by alpha over 0..2 with a diverging map centred at 1 (feature
  ``step_alpha_color``, grey: no alpha).
"""

from __future__ import annotations

from functools import partial

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Points, Shapes, Tracks
from napari.utils import notifications
from psygnal import Signal

from ..analysis import d_units
from ..predict import available_models
from ..tracks import TrackTableError
from ._colour import ALPHA_RANGE, COLOUR_BY, DEFAULT_RANGE, apply_colouring
from ._layers import (
    acquisition_units,
    analysed_track_ids,
    layer_in_viewer,
    layer_segments,
    layer_table,
    merge_results,
    results_metadata,
    tracks_signature,
)
from ._pipeline import (
    ESTIMATORS,
    AnalysisParams,
    JobError,
    analyse_job,
    analysis_chunks,
    parse_track_ids,
)
from ._selection import format_ids, nearest_track, tracks_by_length, tracks_in_shapes
from ._widgets_common import (
    BackgroundJob,
    connect_layer_list,
    float_box,
    is_alive,
    layer_choices,
    unwrap_viewer,
)

__all__ = ["StepAnalysisWidget", "MODES", "DEVICES", "CHANGEPOINTS_KEY", "changepoints_layer"]

MODES = [
    ("all tracks >= N points", "all"),
    ("track IDs", "ids"),
    ("tracks inside shapes", "shapes"),
    ("tracks clicked in the canvas", "clicked"),
]
DEVICES = ["auto", "CPU", "GPU"]
CLICK_RADIUS_SCREEN_PX = 12  # how far (on screen) a click may be from a track
CHANGEPOINTS_KEY = "napari_step_changepoints_of"  # Points metadata: unique_id of its Tracks
ESTIMATOR_TIP = ("D of each segment: mle = maximum likelihood (best without localisation "
                 "noise); cve_pooled = covariance estimator with one localisation variance per "
                 "track, robust to localisation noise")
MAX_TABLE_ROWS = 5000  # the segments table shows at most this many rows (export writes all)
SEGMENT_TABLE_HEADERS = ["track", "start", "end", "D", "length"]


def changepoints_layer(viewer, tracks_layer):
    """The Points layer of change points this widget made for ``tracks_layer`` (or None)."""
    uid = str(getattr(tracks_layer, "unique_id", id(tracks_layer)))
    for lyr in viewer.layers:
        if isinstance(lyr, Points) and str((lyr.metadata or {}).get(CHANGEPOINTS_KEY)) == uid:
            return lyr
    return None


class StepAnalysisWidget(BackgroundJob, Container):
    """Analyse tracks with STEP (and TA-MSD) and colour them by their time-resolved D."""

    analysis_done = Signal(object)  # the Tracks layer that got new results
    current_track_changed = Signal(object)  # (layer, track_id)

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer = unwrap_viewer(napari_viewer)
        self.tracks = ComboBox(label="tracks", choices=layer_choices(napari_viewer, Tracks))
        self.mode = ComboBox(label="analyse", choices=MODES, value="all")
        self.min_length = SpinBox(label="N (min. points)", value=20, min=1, max=10**7)
        self.track_ids = LineEdit(label="track IDs", value="",
                                  tooltip="IDs and ranges, e.g. 1, 4, 7-9")
        self.shapes = ComboBox(label="shapes", choices=layer_choices(napari_viewer, Shapes))
        self.clear_clicked = PushButton(text="Clear clicked tracks")
        self.selection_info = Label(label="selection", value="")
        self.pixel_size = float_box("pixel size (um)", 1.0, 1e-6, 1e6, 0.01, 4)
        self.frame_interval = float_box("frame interval (s)", 1.0, 1e-9, 1e6, 0.01, 4)
        self._models = available_models()
        self.model = ComboBox(label="model", choices=list(self._models) or ["(none installed)"])
        self.device = ComboBox(label="device", choices=DEVICES, value="auto")
        self.window = SpinBox(label="TA-MSD window", value=20, min=3, max=100000,
                              tooltip="frames in the sliding TA-MSD window")
        self.colour_lo = float_box("colour from (log10 D)", DEFAULT_RANGE[0], -30.0, 30.0, 0.5, 2)
        self.colour_hi = float_box("colour to (log10 D)", DEFAULT_RANGE[1], -30.0, 30.0, 0.5, 2)
        self.colour_info = Label(label="colours", value="")
        self.segments = CheckBox(text="find change points (segments)",
                                 value=False,
                                 tooltip="also cut each track into segments of constant D")
        self.estimator = ComboBox(label="segment D", choices=list(ESTIMATORS), value="mle",
                                  tooltip=ESTIMATOR_TIP)
        self.alpha = CheckBox(text="anomalous exponent alpha(t)", value=False,
                              tooltip="also predict the per-frame anomalous exponent alpha "
                                      "(STEP alpha model; 1 = normal diffusion)")
        self.colour_by = ComboBox(label="colour by", choices=list(COLOUR_BY), value=COLOUR_BY[0],
                                  tooltip="colour the tracks by log10 D or by alpha (0..2)")
        self.run_button = PushButton(text="Run")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.plot_button = PushButton(text="Show D(t) plot")
        self.export_button = PushButton(text="Export results...")
        self.export_segments_button = PushButton(text="Export segments...")
        self.status = Label(label="", value="")
        self.extend([
            self.tracks, self.mode, self.min_length, self.track_ids, self.shapes,
            self.clear_clicked, self.selection_info, self.pixel_size, self.frame_interval,
            self.model, self.device, self.window, self.colour_lo, self.colour_hi,
            self.colour_by, self.colour_info, self.segments, self.estimator, self.alpha,
            self.run_button,
            self.cancel_button, self.plot_button, self.export_button,
            self.export_segments_button, self.status,
        ])
        self.segments_table = self._make_segments_table()
        self.native.layout().addWidget(self.segments_table)

        self._worker = None
        self._clicked: list[int] = []
        self._current_track: int | None = None
        self._run_layer = None

        self.mode.changed.connect(self._on_mode)
        for w in (self.min_length, self.track_ids, self.shapes):
            w.changed.connect(self._update_selection_info)
        self.track_ids.changed.connect(self._on_ids_typed)
        self.tracks.changed.connect(self._on_layer_choice)
        self.pixel_size.changed.connect(self._update_status)
        self.frame_interval.changed.connect(self._update_status)
        self.colour_lo.changed.connect(self._on_colour_range)
        self.colour_hi.changed.connect(self._on_colour_range)
        self.colour_by.changed.connect(self._on_colour_range)
        self.clear_clicked.changed.connect(self.clear_clicked_tracks)
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.plot_button.changed.connect(self.open_plot_dock)
        self.export_button.changed.connect(self._export_clicked)
        self.export_segments_button.changed.connect(self._export_segments_clicked)
        self.segments.changed.connect(self._on_segments_toggled)
        connect_layer_list(napari_viewer, self._on_layers_changed)
        callback = self._on_mouse_drag
        napari_viewer.mouse_drag_callbacks.append(callback)

        def _forget_callback(*_):  # a closed widget no longer listens to the canvas
            if callback in napari_viewer.mouse_drag_callbacks:
                napari_viewer.mouse_drag_callbacks.remove(callback)

        self.native.destroyed.connect(_forget_callback)
        self.reset_choices()
        self._on_mode()
        self._on_layer_choice()
        self._on_segments_toggled()
        self._update_colour_info()

    # ------------------------------------------------------------------ state
    @property
    def clicked_tracks(self) -> list[int]:
        return list(self._clicked)

    @property
    def current_track(self) -> int | None:
        return self._current_track

    def colour_range(self) -> tuple[float, float]:
        return float(self.colour_lo.value), float(self.colour_hi.value)

    def units(self) -> str:
        return d_units(float(self.pixel_size.value), float(self.frame_interval.value))

    def is_stale(self, layer=None) -> bool:
        """True when the layer's results were computed with other units than the widget's."""
        layer = layer if layer is not None else self.tracks.value
        if layer is None:
            return False
        meta = results_metadata(layer)
        if "pixel_size_um" not in meta or not analysed_track_ids(layer):
            return False
        return not (np.isclose(meta["pixel_size_um"], self.pixel_size.value)
                    and np.isclose(meta["frame_interval_s"], self.frame_interval.value))

    # --------------------------------------------------------------- reactions
    def _on_layers_changed(self, event=None):
        if not is_alive(self.native):
            return
        self.reset_choices()
        self._update_status()

    def _on_mode(self, *_):
        mode = self.mode.value
        self.min_length.visible = mode == "all"
        self.track_ids.visible = mode == "ids"
        self.shapes.visible = mode == "shapes"
        self.clear_clicked.visible = mode == "clicked"
        self._update_selection_info()

    def _on_layer_choice(self, *_):
        layer = self.tracks.value
        if layer is None:
            self._update_status()
            return
        meta = results_metadata(layer)
        px, dt = (meta.get("pixel_size_um"), meta.get("frame_interval_s"))
        if px is None or dt is None:
            px, dt = acquisition_units(layer)
        if px is not None:
            self.pixel_size.value = px
        if dt is not None:
            self.frame_interval.value = dt
        if "colour_range" in meta:
            lo, hi = meta["colour_range"]
            with self.colour_lo.changed.blocked(), self.colour_hi.changed.blocked():
                self.colour_lo.value, self.colour_hi.value = float(lo), float(hi)
            self._update_colour_info()
        if meta.get("colour_by") in COLOUR_BY:
            with self.colour_by.changed.blocked():
                self.colour_by.value = meta["colour_by"]
            self._update_colour_info()
        self._clicked = [i for i in self._clicked if i in set(np.round(layer.data[:, 0]))]
        self._update_selection_info()
        self._update_status()
        self.refresh_segments_table()

    def _on_ids_typed(self, *_):
        try:
            ids = parse_track_ids(self.track_ids.value)
        except ValueError:
            return
        if ids:
            self.set_current_track(ids[0])

    def _update_selection_info(self, *_):
        if not is_alive(self.native):
            return
        layer = self.tracks.value
        if layer is None:
            self.selection_info.value = "no Tracks layer"
            return
        ids = self.selected_track_ids(layer, notify=False)
        if ids is None:
            self.selection_info.value = "invalid selection"
        else:
            self.selection_info.value = f"{len(ids)}: {format_ids(ids)}"

    def _update_colour_info(self):
        if self.colour_by.value == "alpha":
            a, b = ALPHA_RANGE
            self.colour_info.value = (f"alpha from {a:g} to {b:g}, blue < 1 < red; "
                                      "grey: no alpha")
            return
        lo, hi = self.colour_range()
        self.colour_info.value = (f"log10 D from {lo:g} to {hi:g} ({self.units()}), viridis; "
                                  "grey: not analysed")

    def _update_status(self, *_):
        if not is_alive(self.native):
            return
        self._update_colour_info()
        layer = self.tracks.value
        if layer is None:
            self.status.value = "choose a Tracks layer"
            self.refresh_segments_table()
            return
        done = analysed_track_ids(layer)
        meta = results_metadata(layer)
        if not done:
            self.status.value = "no results yet"
        elif self.is_stale(layer):
            self.status.value = (
                f"STALE: results use pixel size {meta['pixel_size_um']:g} um and frame interval "
                f"{meta['frame_interval_s']:g} s; Run again to update (earlier tracks are "
                "converted to the new units)")
        else:
            self.status.value = (f"{len(done)} track(s) analysed, D in {meta.get('units', '?')}"
                                 f", model {meta.get('model', '?')}")

    def _on_colour_range(self, *_):
        lo, hi = self.colour_range()
        if not hi > lo:
            notifications.show_warning(
                f"STEP analysis: the colour range needs from < to (got {lo:g} .. {hi:g})")
            return
        self._update_colour_info()
        layer = self.tracks.value
        if layer is not None and analysed_track_ids(layer):
            apply_colouring(layer, lo, hi, by=str(self.colour_by.value))
            self._refresh_plots(layer)

    # -------------------------------------------------------------- selection
    def selected_track_ids(self, layer=None, notify: bool = True) -> list[int] | None:
        """IDs the current selection mode picks in ``layer`` (None when the choice is invalid;
        with ``notify`` the user is told why)."""
        layer = layer if layer is not None else self.tracks.value
        say = notifications.show_warning if notify else (lambda *_: None)
        mode = self.mode.value
        all_ids = set(int(i) for i in np.unique(np.round(np.asarray(layer.data)[:, 0])))
        if mode == "all":
            return tracks_by_length(layer, int(self.min_length.value))
        if mode == "ids":
            try:
                ids = parse_track_ids(self.track_ids.value)
            except ValueError as e:
                say(f"STEP analysis: {e}")
                return None
            missing = [i for i in ids if i not in all_ids]
            if missing and notify:
                say(f"STEP analysis: no track(s) {format_ids(missing)} in '{layer.name}'")
            return [i for i in ids if i in all_ids]
        if mode == "shapes":
            shapes = self.shapes.value
            if shapes is None:
                say("STEP analysis: choose a Shapes layer (draw the regions first)")
                return None
            ids, ignored = tracks_in_shapes(layer, shapes)
            if ignored and notify:
                say(f"STEP analysis: {ignored} line/path shape(s) enclose nothing and were ignored")
            return ids
        return [i for i in self._clicked if i in all_ids]

    def clear_clicked_tracks(self, *_):
        self._clicked = []
        self._update_selection_info()

    def _on_mouse_drag(self, viewer, event):
        """Viewer mouse callback: a click (press + release without dragging) picks a track."""
        if getattr(event, "type", None) != "mouse_press":
            return
        press_pos = np.asarray(getattr(event, "pos", (0, 0)), float)
        position = tuple(event.position)
        dragged = False
        yield
        while event.type == "mouse_move":
            if np.linalg.norm(np.asarray(getattr(event, "pos", press_pos), float)
                              - press_pos) > 3:
                dragged = True
            yield
        if not dragged:
            self.pick_track_at(position)

    def pick_track_at(self, world_position) -> int | None:
        """Pick the track nearest to a world position at the current time (a canvas click)."""
        if not is_alive(self.native):
            return None
        layer = self.tracks.value
        if layer is None or len(layer.data) == 0 or not layer.visible:
            return None
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9; viewer.camera before
        camera = scene.camera if scene is not None else self._viewer.camera
        zoom = float(getattr(camera, "zoom", 0) or 0)
        radius = CLICK_RADIUS_SCREEN_PX / zoom if zoom > 0 else None
        tid = nearest_track(layer, world_position, radius)
        if tid is None:
            return None
        if self.mode.value == "clicked" and tid not in self._clicked:
            self._clicked.append(tid)
            self._update_selection_info()
        self.set_current_track(tid)
        return tid

    def set_current_track(self, track_id, layer=None):
        """Make ``track_id`` the track shown in the D(t) plot dock(s)."""
        layer = layer if layer is not None else self.tracks.value
        self._current_track = None if track_id is None else int(track_id)
        if layer is not None:
            for plot in self._plots():
                plot.set_layer(layer)
                plot.show_track(self._current_track)
        self.current_track_changed.emit((layer, self._current_track))

    # ---------------------------------------------------------------- running
    def _device(self) -> str | None:
        choice = self.device.value
        if choice == "CPU":
            return "cpu"
        if choice == "GPU":
            import torch

            if not torch.cuda.is_available():
                notifications.show_warning(
                    "STEP analysis: no CUDA GPU is available, running on the CPU")
                return "cpu"
            return "cuda"
        return None

    def _checked_layer(self, layer):
        msg = None
        if layer is None:
            msg = "STEP analysis: choose a Tracks layer first (Detect & link makes one)"
        elif not isinstance(layer, Tracks):
            msg = f"STEP analysis: '{layer.name}' is not a Tracks layer"
        elif len(layer.data) == 0:
            msg = f"STEP analysis: the Tracks layer '{layer.name}' holds no tracks"
        elif not layer_in_viewer(self._viewer, layer):
            msg = f"STEP analysis: the layer '{layer.name}' is not in this viewer"
        if msg:
            notifications.show_error(msg)
            return None
        return layer

    def run(self, *_, layer=None):
        """Analyse the selected tracks in a worker thread; returns the worker (None if refused)."""
        if self._worker is not None:
            notifications.show_warning(
                "STEP analysis: an analysis is already running; wait for it or cancel it")
            return None
        layer = self._checked_layer(layer if layer is not None else self.tracks.value)
        if layer is None:
            return None
        if not self._models or self.model.value not in self._models:
            notifications.show_error("STEP analysis: no STEP model is installed")
            return None
        try:
            table = layer_table(layer)
        except (TrackTableError, ValueError) as e:
            notifications.show_error(f"STEP analysis: {e}")
            return None
        ids = self.selected_track_ids(layer)
        if ids is None:
            return None
        if not ids:
            notifications.show_warning("STEP analysis: the selection holds no track")
            return None
        params = AnalysisParams(
            pixel_size_um=float(self.pixel_size.value),
            frame_interval_s=float(self.frame_interval.value),
            model=str(self._models[self.model.value]),
            model_name=str(self.model.value),
            device=self._device(),
            tamsd_window=int(self.window.value),
            segments=bool(self.segments.value),
            estimator=str(self.estimator.value),
            alpha=bool(self.alpha.value),
        )
        min_length = int(self.min_length.value) if self.mode.value == "all" else 1
        n_chunks = len(analysis_chunks(ids, table))
        worker = self._start_job(
            analyse_job, table, ids, params, min_length, total=n_chunks, desc="STEP analysis",
            on_returned=partial(self._on_result, layer, tracks_signature(layer), ids, params),
        )
        self._run_layer = layer
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = f"analysing {len(ids)} track(s) of '{layer.name}'..."
        worker.start()
        return worker

    def _on_error(self, exc):
        notifications.show_error(f"STEP analysis failed: {exc}")

    def _on_aborted(self, *_):
        notifications.show_info("STEP analysis: cancelled, nothing was changed")

    def _on_finished(self, *_):
        self._worker = None
        self._run_layer = None
        if not is_alive(self.native):
            return
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        self._update_status()

    def _on_result(self, layer, signature, ids, params: AnalysisParams, result):
        if isinstance(result, JobError):
            notifications.show_error(f"STEP analysis: {result.message}")
            return
        if not layer_in_viewer(self._viewer, layer):
            notifications.show_warning(
                f"STEP analysis: the layer '{layer.name}' was removed during the analysis; "
                "its result was dropped")
            return
        if tracks_signature(layer) != signature:
            notifications.show_warning(
                f"STEP analysis: the tracks of '{layer.name}' changed during the analysis; "
                "the result was dropped, run again")
            return
        results, summary = result
        merge_results(layer, results, ids, params.metadata(),
                      segments=summary.segments if params.segments else None)
        n_cp = self._update_changepoints(layer)
        lo, hi = self.colour_range()
        if not hi > lo:
            lo, hi = DEFAULT_RANGE
        apply_colouring(layer, lo, hi, by=str(self.colour_by.value))
        done = set(int(i) for i in results.loc[np.isfinite(results["step_d"]), "track_id"])
        if self._current_track not in done and done:
            counts = results[results["track_id"].isin(done)].groupby("track_id").size()
            self._current_track = int(counts.idxmax())
        if is_alive(self.native):
            self._update_status()
        self._refresh_plots(layer)
        msg = (f"STEP analysis: {len(done)} of {len(ids)} selected track(s) got D(t) "
               f"({summary.n_points} points) in {summary.units}")
        if params.alpha and "step_alpha" in results.columns:
            n_alpha = int(np.isfinite(results["step_alpha"].to_numpy(float)).sum())
            msg += f"; alpha(t) for {n_alpha} point(s)"
        if params.segments and summary.segments is not None:
            n_new = int(summary.segments["changepoint"].sum())
            msg += f"; {n_new} change point(s) ({n_cp} in the layer)"
        if summary.messages:
            msg += "; " + "; ".join(summary.messages)
        if is_alive(self.native):
            self.refresh_segments_table()
        notifications.show_info(msg)
        self.analysis_done.emit(layer)

    # ------------------------------------------------------------ plot, export
    def _plots(self):
        from .plot_widget import plot_docks

        return plot_docks(self._viewer)

    def _refresh_plots(self, layer):
        for plot in self._plots():
            plot.set_layer(layer)
            plot.show_track(self._current_track)

    def open_plot_dock(self, *_):
        """Show (creating it if needed) the D(t) plot dock for this viewer."""
        from .plot_widget import DPlotWidget

        plots = self._plots()
        if plots:
            plot = plots[0]
        else:
            plot = DPlotWidget(self._viewer)
            self._viewer.window.add_dock_widget(plot, name="STEP D(t)", area="right")
        layer = self.tracks.value
        if layer is not None:
            plot.set_layer(layer)
            plot.show_track(self._current_track)
        return plot

    def export(self, path, layer=None) -> list[str] | None:
        """Write the chosen layer's results table to ``path`` (CSV or Parquet + JSON sidecar)."""
        from ._io import _file_errors, export_results

        layer = self._checked_layer(layer if layer is not None else self.tracks.value)
        if layer is None:
            return None
        if not analysed_track_ids(layer):
            notifications.show_warning(
                f"STEP analysis: '{layer.name}' has no results yet; exporting the tracks only")
        try:
            written = export_results(layer, path)
        except _file_errors() as e:
            notifications.show_error(f"STEP analysis: export failed: {e}")
            return None
        notifications.show_info(f"STEP analysis: results written to {written[0]}")
        return written

    def _export_clicked(self, *_):
        from qtpy.QtWidgets import QFileDialog

        layer = self.tracks.value
        if self._checked_layer(layer) is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Export STEP results", f"{layer.name}.csv",
            "CSV (*.csv);;Parquet (*.parquet)")
        if path:
            self.export(path, layer)

    # --------------------------------------------------------------- segments
    def _on_segments_toggled(self, *_):
        self.estimator.enabled = bool(self.segments.value)

    def _update_changepoints(self, layer) -> int:
        """Create or update the Points layer of ``layer``'s change points from its segments
        table (all tracks that have segments); returns the number of points. No other layer is
        touched; nothing is created for a layer that never had segments."""
        seg = layer_segments(layer)
        pts = changepoints_layer(self._viewer, layer)
        if seg is None and pts is None:
            return 0
        data = np.asarray(layer.data)
        ndim = data.shape[1] - 1
        positions = np.empty((0, ndim))
        feats = pd.DataFrame({"track_id": pd.Series(dtype=np.int64),
                              "frame": pd.Series(dtype=np.int64),
                              "d_before": pd.Series(dtype=float),
                              "d_after": pd.Series(dtype=float)})
        if seg is not None and len(seg):
            seg = seg.sort_values(["track_id", "start_frame"]).reset_index(drop=True)
            prev_d = seg.groupby("track_id")["d"].shift(1)
            cps = seg[seg["changepoint"].astype(bool)]
            index = pd.MultiIndex.from_arrays([np.round(data[:, 0]).astype(np.int64),
                                               np.round(data[:, 1]).astype(np.int64)])
            rows = index.get_indexer(pd.MultiIndex.from_arrays(
                [cps["track_id"].to_numpy(np.int64), cps["start_frame"].to_numpy(np.int64)]))
            ok = rows >= 0
            positions = data[rows[ok], 1:]
            feats = pd.DataFrame({
                "track_id": cps["track_id"].to_numpy(np.int64)[ok],
                "frame": cps["start_frame"].to_numpy(np.int64)[ok],
                "d_before": prev_d.loc[cps.index].to_numpy(float)[ok],
                "d_after": cps["d"].to_numpy(float)[ok],
            })
        if pts is None:
            if not len(positions):
                return 0
            selection = self._viewer.layers.selection
            active = selection.active
            pts = Points(
                positions, ndim=ndim, features=feats, name=f"{layer.name} change points",
                scale=layer.scale, translate=layer.translate, size=6, symbol="x",
                face_color="red", border_color="red",
                metadata={CHANGEPOINTS_KEY: str(getattr(layer, "unique_id", id(layer)))},
            )
            self._viewer.add_layer(pts)
            if active is not None and layer_in_viewer(self._viewer, active):
                selection.active = active  # the user's layer stays the active one
        else:
            pts.data = positions
            pts.features = feats
        return len(positions)

    def _make_segments_table(self):
        from qtpy.QtWidgets import QAbstractItemView, QTableWidget

        table = QTableWidget(0, len(SEGMENT_TABLE_HEADERS))
        table.setHorizontalHeaderLabels(SEGMENT_TABLE_HEADERS)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.verticalHeader().setVisible(False)
        table.setMinimumHeight(120)
        table.setToolTip("segments found by the last runs (start/end: first/last frame); "
                         "double-click a row to plot its track")
        table.cellDoubleClicked.connect(self._on_segment_row)
        return table

    def segments_frame(self, layer=None) -> pd.DataFrame | None:
        """The chosen layer's segments table (track_id, segment, start_frame, stop_frame
        (exclusive), n_frames, d in the results' units, changepoint), or None."""
        layer = layer if layer is not None else self.tracks.value
        return None if layer is None else layer_segments(layer)

    def refresh_segments_table(self):
        """Show the chosen layer's segments in the widget's table."""
        from qtpy.QtWidgets import QTableWidgetItem

        table = getattr(self, "segments_table", None)
        if table is None or not is_alive(self.native) or not is_alive(table):
            return
        layer = self.tracks.value
        seg = self.segments_frame(layer)
        units = results_metadata(layer).get("units", "?") if layer is not None else "?"
        headers = list(SEGMENT_TABLE_HEADERS)
        headers[3] = f"D ({units})"
        table.setHorizontalHeaderLabels(headers)
        if seg is None:
            table.setRowCount(0)
            return
        seg = seg.iloc[:MAX_TABLE_ROWS]
        table.setRowCount(len(seg))
        for r, row in enumerate(seg.itertuples(index=False)):
            vals = [str(int(row.track_id)), str(int(row.start_frame)),
                    str(int(row.stop_frame) - 1), f"{float(row.d):.4g}", str(int(row.n_frames))]
            for c, v in enumerate(vals):
                table.setItem(r, c, QTableWidgetItem(v))

    def _on_segment_row(self, row, _col=None):
        item = self.segments_table.item(row, 0)
        if item is not None:
            self.set_current_track(int(item.text()))

    def export_segments(self, path, layer=None) -> list[str] | None:
        """Write the chosen layer's segments table to ``path`` (CSV) with a JSON sidecar
        ``<path>.json`` (units, estimator, model, column units), both written atomically."""
        from ..io import _atomic_write, sidecar_path
        from ._io import export_metadata

        layer = self._checked_layer(layer if layer is not None else self.tracks.value)
        if layer is None:
            return None
        seg = layer_segments(layer)
        if seg is None:
            notifications.show_warning(
                f"STEP analysis: '{layer.name}' has no segments yet; run with "
                "'find change points (segments)' first")
            return None
        p = Path(os.fspath(path))
        if p.suffix.lower() != ".csv":
            notifications.show_error(f"STEP analysis: segments are written as .csv, not {p.name}")
            return None
        meta = results_metadata(layer)
        units = meta.get("units", "px^2/frame")
        md = export_metadata({**layer.metadata, "napari_step": meta}, layer.name, layer.scale,
                             layer.translate)
        md["column_units"] = {"track_id": "", "segment": "", "start_frame": "frame",
                              "stop_frame": "frame (exclusive)", "n_frames": "frames",
                              "d": units, "changepoint": ""}
        md["table"] = "segments"
        text = json.dumps(md, indent=2, ensure_ascii=False) + "\n"
        try:
            if not (p.parent if str(p.parent) else Path(".")).is_dir():
                raise OSError(f"the folder {p.parent} does not exist")
            _atomic_write(p, lambda tmp: seg.to_csv(tmp, index=False, lineterminator="\n",
                                                     encoding="utf-8"))
            sc = sidecar_path(p)
            _atomic_write(sc, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        except OSError as e:
            notifications.show_error(f"STEP analysis: segments export failed: {e}")
            return None
        notifications.show_info(f"STEP analysis: {len(seg)} segment(s) written to {p}")
        return [str(p), str(sc)]

    def _export_segments_clicked(self, *_):
        from qtpy.QtWidgets import QFileDialog

        layer = self.tracks.value
        if self._checked_layer(layer) is None:
            return
        path, _ = QFileDialog.getSaveFileName(
            self.native, "Export segments", f"{layer.name}_segments.csv", "CSV (*.csv)")
        if path:
            self.export_segments(path, layer)
