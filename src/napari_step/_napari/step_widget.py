"""The "STEP analysis" dock widget: time-resolved D of chosen tracks, coloured in the canvas.

Panels (:mod:`._step_panels`) over one settings object (:class:`._settings.AnalysisSettings`):

- which tracks: the Tracks layer (the newest or the selected one, followed as layers are
  added, selected, renamed or removed), then all tracks of >= N points, typed IDs
  ("1, 4, 7-9"), tracks inside the shapes of a Shapes layer, or tracks clicked in the canvas;
- units (an explicit calibrated / uncalibrated choice; frame interval or frame rate), model,
  device (auto / CPU / GPU through :func:`napari_step.predict.resolve_device`), TA-MSD window;
- colours: by log10 D over a range chosen from the data (2-98 % percentiles, rounded; typed
  values override it) or by alpha; grey: not analysed (:mod:`._colour`, NaN-safe);
- segments (change points, per-segment D) and alpha(t);
- Run / Cancel with a progress bar in the dock (the job mixin), plots, the per-track table,
  exports, and a status line.

*Run* analyses in a ``thread_worker``; a second Run while one runs is refused; a layer deleted
or edited meanwhile drops the result. The worker also prepares the result for the layer
(:mod:`._apply_run`: merged per track, colour columns, vertex colours, counts), so the GUI
thread only assigns it, once (features, metadata, colours, change points, blending). Units
changed after a run mark the results **stale**; the next Run converts the earlier tracks'
values exactly to the new units.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import Container
from napari.layers import Tracks
from napari.utils import notifications
from psygnal import Signal

from ..predict import available_models
from . import _step_outputs as outputs
from ._analysis_jobs import AnalysisParams, analyse_layer_job, n_analysis_chunks
from ._apply_run import snapshot_layer
from ._colour import apply_colouring
from ._jobs import JobError
from ._layers import (
    CHANGEPOINTS_KEY,
    acquisition_units,
    analysed_track_ids,
    changepoints_layer,
    layer_in_viewer,
    results_metadata,
    tracks_signature,
)
from ._selection import format_ids
from ._settings import (
    CALIBRATED,
    UNCALIBRATED,
    AnalysisSettings,
    colour_from_layer,
    set_quietly,
)
from ._step_panels import (
    DEVICES,
    MODES,
    ColouringPanel,
    OutputsPanel,
    SegmentsPanel,
    SelectionPanel,
    UnitsModelPanel,
)
from ._step_selection import SelectionMixin
from ._widgets_common import (
    BackgroundJob,
    FollowsTracks,
    ScrollableDock,
    is_alive,
    register_dock,
    unwrap_viewer,
)

__all__ = ["StepAnalysisWidget", "MODES", "DEVICES", "CHANGEPOINTS_KEY", "changepoints_layer"]

AUTO_MODEL = "auto (from the steps)"  # the model combo's first, default choice


class StepAnalysisWidget(ScrollableDock, SelectionMixin, FollowsTracks, BackgroundJob, Container):
    """Analyse tracks with STEP (and TA-MSD) and colour them by their time-resolved D."""

    analysis_done = Signal(object)  # the Tracks layer that got new results
    current_track_changed = Signal(object)  # (layer, track_id)

    def __init__(self, napari_viewer):
        super().__init__(labels=False, scrollable=True)
        self._viewer = napari_viewer = unwrap_viewer(napari_viewer)
        # "auto" first: the widget picks the shipped model the tracks' steps call for
        # (napari_step.acquisition.choose_d_model), decided once over the selection
        installed = available_models()
        self._models = ({AUTO_MODEL: "auto"} if installed else {}) | installed
        self.settings = AnalysisSettings(model=next(iter(self._models), "(none installed)"))
        self.selection = SelectionPanel(napari_viewer, self.settings)
        self.units_panel = UnitsModelPanel(self.settings, self._models)
        self.colouring = ColouringPanel(self.settings)
        self.segments_panel = SegmentsPanel(self.settings)
        self.outputs = OutputsPanel(
            self._init_job_controls(
                "Run",
                "analyse the selected tracks (STEP D(t), TA-MSD; segments and alpha when ticked)",
            )
        )
        self.extend(
            [self.selection, self.units_panel, self.colouring, self.segments_panel, self.outputs]
        )
        self._expose_controls()
        self._clicked: list[int] = []
        self._current_track: int | None = None
        self._run_layer = None
        self._wire()
        self._finish_dock()
        register_dock(self)  # found by the plot dock's D-alpha lasso (docks_of)
        self._follow_tracks(napari_viewer, self.tracks)
        self._on_layer_choice()

    def _expose_controls(self):
        """The panels' controls as attributes of the widget (scripts and tests use them)."""
        for panel, names in (
            (
                self.selection,
                (
                    "tracks",
                    "mode",
                    "min_length",
                    "track_ids",
                    "shapes",
                    "clear_clicked",
                    "selection_info",
                ),
            ),
            (
                self.units_panel,
                (
                    "units",
                    "pixel_size",
                    "frame_interval",
                    "fps",
                    "model",
                    "device",
                    "window",
                    "subtract_drift",
                ),
            ),
            (self.colouring, ("colour_by", "colour_auto", "colour_lo", "colour_hi", "colour_info")),
            (self.segments_panel, ("segments", "estimator", "alpha", "states")),
            (
                self.outputs,
                (
                    "plot_button",
                    "table_button",
                    "export_button",
                    "export_segments_button",
                    "status",
                ),
            ),
        ):
            for name in names:
                setattr(self, name, getattr(panel, name))
        self.segments_table = self.segments_panel.table

    def _wire(self):
        ev = self.settings.events
        for name in ("mode", "min_length", "track_ids"):
            getattr(ev, name).connect(self._update_selection_info)
        self.shapes.changed.connect(self._update_selection_info)
        ev.track_ids.connect(self._on_ids_typed)
        self.tracks.changed.connect(self._on_layer_choice)
        for name in ("units", "pixel_size_um", "frame_interval_s"):
            getattr(ev, name).connect(self._update_status)
        for name in ("colour_lo", "colour_hi", "colour_by", "colour_auto"):
            getattr(ev, name).connect(self._on_colour_setting)
        self.clear_clicked.changed.connect(self.clear_clicked_tracks)
        self.plot_button.changed.connect(self.open_plot_dock)
        self.table_button.changed.connect(self.open_table_dock)
        self.export_button.changed.connect(partial(outputs.export_clicked, self))
        self.export_segments_button.changed.connect(partial(outputs.export_segments_clicked, self))
        self.segments_table.cellDoubleClicked.connect(self._on_segment_row)
        self._install_click_callback()

    # ------------------------------------------------------------------ state
    @property
    def clicked_tracks(self) -> list[int]:
        return list(self._clicked)

    @property
    def current_track(self) -> int | None:
        return self._current_track

    def colour_range(self) -> tuple[float, float]:
        return float(self.settings.colour_lo), float(self.settings.colour_hi)

    def units_label(self) -> str:
        """The D units a Run with the current settings gives."""
        return self.settings.d_units()

    def is_stale(self, layer=None, analysed=None) -> bool:
        """True when the layer's results were computed with other units than the widget's
        (``analysed``: the layer's analysed track IDs when already known)."""
        layer = layer if layer is not None else self.tracks.value
        if layer is None:
            return False
        meta = results_metadata(layer)
        done = analysed_track_ids(layer) if analysed is None else analysed
        if "pixel_size_um" not in meta or not len(done):
            return False
        px, dt = self.settings.scale()
        return not (
            np.isclose(meta["pixel_size_um"], px)
            and np.isclose(meta["frame_interval_s"], dt)
            and meta.get("units", self.units_label()) == self.units_label()
        )

    # --------------------------------------------------------------- reactions
    def _tracks_followed(self):
        self._update_status()

    def _on_tracks_removed(self, event):
        from napari.layers import Tracks

        from ._layers import remove_companions

        gone = getattr(event, "value", None)
        if isinstance(gone, Tracks):  # its change points and outline go with it
            remove_companions(self._viewer, gone)
        super()._on_tracks_removed(event)

    def _on_layer_choice(self, *_):
        layer = self.tracks.value
        if layer is not None:
            self._load_layer_settings(layer)
            if self._clicked:  # keep the clicked tracks this layer has (one vectorised test)
                here = np.isin(self._clicked, np.round(np.asarray(layer.data)[:, 0]))
                self._clicked = [i for i, ok in zip(self._clicked, here) if ok]
        self._update_selection_info()
        self._update_status()
        outputs.refresh_segments_table(self)
        outputs.show_colour_bar(self, layer, create=True)  # a coloured layer shows its bar

    def _load_layer_settings(self, layer):
        """Units, colour range and colouring stored on the layer -> the settings."""
        s, meta = self.settings, results_metadata(layer)
        px, dt = meta.get("pixel_size_um"), meta.get("frame_interval_s")
        if px is None or dt is None:
            px, dt = acquisition_units(layer)
        if meta.get("units") == "px^2/frame":
            s.units = UNCALIBRATED
        elif px is not None or dt is not None or meta.get("units") == "um^2/s":
            s.units = CALIBRATED
        if px is not None:
            s.pixel_size_um = float(px)
        if dt is not None:
            s.frame_interval_s = float(dt)
        set_quietly(s, self, **colour_from_layer(meta))

    def _update_colour_info(self):
        self.colouring.describe(self.units_label())

    def _update_status(self, *_, analysed=None):
        if not is_alive(self.native):
            return
        self._update_colour_info()
        layer = self.tracks.value
        if layer is None:
            self.status.value = "choose a Tracks layer"
            return
        if not self.running:
            if analysed is None:
                analysed = analysed_track_ids(layer)
            stale = self.is_stale(layer, analysed)
            self.status.value = outputs.status_text(layer, stale, analysed)

    def _on_colour_setting(self, *_):
        s = self.settings
        if s.colour_by == "log10 D" and not s.colour_hi > s.colour_lo:
            notifications.show_warning(
                f"STEP analysis: the colour range needs from < to (got {s.colour_lo:g} .. "
                f"{s.colour_hi:g})"
            )
            return
        self._update_colour_info()
        layer = self.tracks.value
        if layer is None or not analysed_track_ids(layer) or self.running:
            return
        meta = results_metadata(layer)
        if s.colour_auto:
            apply_colouring(layer, by=s.colour_by, auto=True)
            self._sync_colour_controls(layer)
        elif (
            meta.get("colour_range") == [s.colour_lo, s.colour_hi]
            and meta.get("colour_by") == s.colour_by
        ):  # only "automatic" was switched off: nothing to redraw
            meta["colour_auto"] = False
            layer.metadata = {**layer.metadata, "napari_step": meta}
            return
        else:
            apply_colouring(layer, s.colour_lo, s.colour_hi, by=s.colour_by, auto=False)
        self._refresh_plots(layer)

    # ---------------------------------------------------------------- running
    def _device(self) -> str:
        from ..predict import resolve_device

        choice = {"CPU": "cpu", "GPU": "cuda"}.get(self.settings.device)
        dev = resolve_device(choice)
        if choice == "cuda" and dev.type != "cuda":
            notifications.show_warning(
                "STEP analysis: no CUDA GPU is available, running on the CPU"
            )
        return dev.type

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

    def _params(self) -> AnalysisParams:
        s = self.settings
        px, dt = s.scale()
        return AnalysisParams(
            pixel_size_um=px,
            frame_interval_s=dt,
            model=str(self._models[s.model]),
            model_name=str(s.model),
            device=self._device(),
            tamsd_window=int(s.tamsd_window),
            subtract_drift=bool(s.subtract_drift),
            segments=bool(s.segments),
            estimator=str(s.estimator),
            alpha=bool(s.alpha),
            states=bool(s.states),
            units=s.d_units(),
        )

    def run(self, *_, layer=None):
        """Analyse the selected tracks in a worker thread; returns the worker (None if refused)."""
        if self._worker is not None:
            notifications.show_warning(
                "STEP analysis: an analysis is already running; wait for it or cancel it"
            )
            return None
        layer = self._checked_layer(layer if layer is not None else self.tracks.value)
        if layer is None:
            return None
        if not self._models or self.settings.model not in self._models:
            notifications.show_error("STEP analysis: no STEP model is installed")
            return None
        ids = self.selected_track_ids(layer)
        if ids is None:
            return None
        if not ids:
            notifications.show_warning("STEP analysis: the selection holds no track")
            return None
        params = self._params()
        min_length = int(self.settings.min_length) if self.settings.mode == "all" else 1
        snap = snapshot_layer(layer, outputs.colour_choice(self))
        worker = self._start_job(
            analyse_layer_job,
            snap.data,
            snap.features,
            ids,
            params,
            min_length,
            total=n_analysis_chunks(len(ids)),
            desc=f"STEP: {len(ids)} track(s)",
            on_returned=partial(self._on_result, layer, tracks_signature(layer)),
            then=partial(outputs.prepare_outcome, snap, ids, params),
        )
        self._run_layer = layer
        self.status.value = f"analysing {len(ids)} track(s) of '{layer.name}'..."
        worker.start()
        return worker

    def _on_error(self, exc):
        notifications.show_error(f"STEP analysis failed: {exc}")

    def _on_aborted(self, *_):
        notifications.show_info("STEP analysis: cancelled, nothing was changed")

    def _on_finished(self, *_):
        self._run_layer = None
        if is_alive(self.native):
            self._update_status()

    def _result_usable(self, layer, signature) -> bool:
        if not layer_in_viewer(self._viewer, layer):
            notifications.show_warning(
                f"STEP analysis: the layer '{layer.name}' was removed during the analysis; "
                "its result was dropped"
            )
            return False
        if tracks_signature(layer) != signature:
            notifications.show_warning(
                f"STEP analysis: the tracks of '{layer.name}' changed during the analysis; "
                "the result was dropped, run again"
            )
            return False
        return True

    def _on_result(self, layer, signature, outcome):
        """A run's outcome (prepared in the worker: :func:`._step_outputs.prepare_outcome`)
        into its layer; the GUI thread only assigns."""
        if isinstance(outcome, JobError):
            notifications.show_error(f"STEP analysis: {outcome.message}")
            return
        if not self._result_usable(layer, signature):
            return
        message = outputs.apply_outcome(self, layer, outcome)
        current = self._current_track
        if outcome.longest is not None and (current is None or current not in outcome.done):
            self._current_track = outcome.longest  # the longest analysed track
        if is_alive(self.native):
            self._sync_colour_controls(layer)
            self._update_status(analysed=outcome.prepared.analysed)
            outputs.refresh_segments_table(self)
        self._refresh_plots(layer)
        notifications.show_info(message)
        self.analysis_done.emit(layer)

    def _sync_colour_controls(self, layer):
        """The colour range the result got (maybe chosen from the data) -> settings/controls."""
        lo, hi = results_metadata(layer).get("colour_range", self.colour_range())
        set_quietly(self.settings, self, colour_lo=float(lo), colour_hi=float(hi))
        self._update_colour_info()

    # ------------------------------------------------------------ plot, table
    def _plots(self):
        import sys

        if __package__ + ".plot_widget" not in sys.modules:
            return []  # no plot dock was ever made (spares the matplotlib import)
        from .plot_widget import plot_docks

        return plot_docks(self._viewer)

    def _refresh_plots(self, layer):
        for plot in self._plots():
            plot.show(layer, self._current_track)
        outputs.show_colour_bar(self, layer, create=True, defer=True)
        for table in outputs.table_docks(self._viewer):
            table.set_layer(layer)

    def open_plot_dock(self, *_):
        """Show (creating it if needed) the D(t) plot dock for this viewer."""
        return outputs.open_plot_dock(self)

    def open_table_dock(self, *_):
        """Show (creating it if needed) the per-track results table dock for this viewer."""
        return outputs.open_table_dock(self)

    def export(self, path, layer=None) -> list[str] | None:
        """Write the chosen layer's results table to ``path`` (CSV or Parquet + JSON sidecar)."""
        return outputs.export(self, path, layer)

    def export_segments(self, path, layer=None) -> list[str] | None:
        """Write the chosen layer's segments table to ``path`` (CSV + JSON sidecar)."""
        return outputs.export_segments(self, path, layer)

    def segments_frame(self, layer=None):
        """The chosen layer's segments table (or None)."""
        from ._layers import layer_segments

        layer = layer if layer is not None else self.tracks.value
        return None if layer is None else layer_segments(layer)

    def refresh_segments_table(self):
        """Show the chosen layer's segments in the widget's table."""
        outputs.refresh_segments_table(self)

    def _on_segment_row(self, row, _col=None):
        item = self.segments_table.item(row, 0)
        if item is not None:
            self.set_current_track(int(item.text()))

    def set_current_track(self, track_id, layer=None):
        """Make ``track_id`` the track shown in the plot dock(s) and outlined in the canvas."""
        from ._layers import highlight_track

        layer = layer if layer is not None else self.tracks.value
        self._current_track = None if track_id is None else int(track_id)
        if layer is not None:
            for plot in self._plots():
                plot.set_layer(layer)
                plot.show_track(self._current_track)
            if layer_in_viewer(self._viewer, layer):
                highlight_track(self._viewer, layer, self._current_track)
        self.current_track_changed.emit((layer, self._current_track))

    def _selection_text(self, ids) -> str:
        return f"{len(ids)}: {format_ids(ids)}"
