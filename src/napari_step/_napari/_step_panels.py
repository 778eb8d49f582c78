"""The panels of the STEP analysis widget, each a view of part of :class:`.AnalysisSettings`.

- :class:`SelectionPanel`: the Tracks layer and which of its tracks to analyse;
- :class:`UnitsModelPanel`: units (an explicit calibrated / uncalibrated choice), pixel size,
  frame interval and frame rate (24 fps is exact), model, device, TA-MSD window;
- :class:`ColouringPanel`: colour by log10 D or alpha, the range (automatic from the data or
  typed), what the colours mean;
- :class:`SegmentsPanel`: change points and alpha(t), the segments table;
- :class:`OutputsPanel`: Run / Cancel / progress (owned by the widget's job mixin), plots,
  the per-track table, exports and the status line.

Panels hold controls and keep them in sync with the settings; what happens on Run is the
widget's business (:mod:`.step_widget`).
"""

from __future__ import annotations

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Shapes, Tracks

from ._analysis_jobs import ESTIMATORS
from ._colour import ALPHA_RANGE, COLOUR_BY
from ._settings import CALIBRATED, UNCALIBRATED, UNITS_CHOICES, bind
from ._widgets_common import float_box, layer_choices

__all__ = [
    "MODES",
    "DEVICES",
    "SelectionPanel",
    "UnitsModelPanel",
    "ColouringPanel",
    "SegmentsPanel",
    "OutputsPanel",
    "SEGMENT_TABLE_HEADERS",
]

MODES = [
    ("all tracks >= N points", "all"),
    ("track IDs", "ids"),
    ("tracks inside shapes", "shapes"),
    ("tracks clicked in the canvas", "clicked"),
]
DEVICES = ["auto", "CPU", "GPU"]
ESTIMATOR_TIP = (
    "D of each segment: mle = maximum likelihood (best without localisation "
    "noise); cve_pooled = covariance estimator with one localisation variance per "
    "track, robust to localisation noise"
)
SEGMENT_TABLE_HEADERS = ["track", "start", "end", "D", "length"]


def _title(panel: Container, text: str) -> None:
    """A bold title above a panel's rows (spanning the label and value columns)."""
    from qtpy.QtWidgets import QLabel

    label = QLabel(f"<b>{text}</b>")
    label.setContentsMargins(0, 6, 0, 0)
    panel.native.layout().insertWidget(0, label)


class SelectionPanel(Container):
    """Which tracks: the layer, then all >= N points, typed IDs, inside shapes, or clicked."""

    def __init__(self, viewer, settings):
        super().__init__(labels=True)
        self.tracks = ComboBox(
            label="tracks",
            choices=layer_choices(viewer, Tracks),
            tooltip="the Tracks layer to analyse (follows the newest or the selected Tracks layer)",
        )
        self.mode = ComboBox(
            label="analyse",
            choices=MODES,
            value="all",
            tooltip="which tracks of the layer Run analyses",
        )
        self.min_length = SpinBox(
            label="N (min. points)",
            value=20,
            min=1,
            max=10**7,
            tooltip="analyse every track with at least N points",
        )
        self.track_ids = LineEdit(
            label="track IDs", value="", tooltip="IDs and ranges, e.g. 1, 4, 7-9"
        )
        self.shapes = ComboBox(
            label="shapes",
            choices=layer_choices(viewer, Shapes),
            tooltip="a Shapes layer: tracks with a point inside any of its "
            "closed shapes are analysed",
        )
        self.clear_clicked = PushButton(
            text="Clear clicked tracks", tooltip="forget the tracks clicked so far"
        )
        self.selection_info = Label(label="selection", value="")
        self.selection_info.tooltip = "how many tracks Run will analyse, and which"
        self.extend(
            [
                self.tracks,
                self.mode,
                self.min_length,
                self.track_ids,
                self.shapes,
                self.clear_clicked,
                self.selection_info,
            ]
        )
        _title(self, "Tracks")
        bind(
            settings,
            {"mode": self.mode, "min_length": self.min_length, "track_ids": self.track_ids},
        )
        settings.events.mode.connect(self._show_mode)
        self._show_mode(settings.mode)

    def _show_mode(self, mode):
        self.min_length.visible = mode == "all"
        self.track_ids.visible = mode == "ids"
        self.shapes.visible = mode == "shapes"
        self.clear_clicked.visible = mode == "clicked"


class UnitsModelPanel(Container):
    """Units (explicit calibrated / uncalibrated), pixel size, frame interval or rate, model."""

    def __init__(self, settings, model_names):
        super().__init__(labels=True)
        self._settings = settings
        self._make_controls(model_names)
        self.extend(
            [
                self.units,
                self.pixel_size,
                self.frame_interval,
                self.fps,
                self.model,
                self.device,
                self.window,
                self.subtract_drift,
            ]
        )
        _title(self, "Units and model")
        bind(
            settings,
            {
                "units": self.units,
                "pixel_size_um": self.pixel_size,
                "frame_interval_s": self.frame_interval,
                "model": self.model,
                "device": self.device,
                "tamsd_window": self.window,
                "subtract_drift": self.subtract_drift,
            },
        )
        # typing a pixel size or a time is an explicit calibration
        self.pixel_size.changed.connect(self._calibrate)
        self.frame_interval.changed.connect(self._calibrate)
        self.fps.changed.connect(self._on_fps)
        settings.events.frame_interval_s.connect(self._show_fps)
        settings.events.units.connect(self._show_units)
        self._show_fps(settings.frame_interval_s)
        self._show_units(settings.units)

    def _make_controls(self, model_names):
        self.units = ComboBox(
            label="units",
            choices=list(UNITS_CHOICES),
            value=UNCALIBRATED,
            tooltip="calibrated: D in um^2/s from the pixel size and frame "
            "interval; uncalibrated: D in px^2/frame",
        )
        self.pixel_size = float_box(
            "pixel size (um)",
            1.0,
            1e-6,
            1e6,
            0.01,
            4,
            tooltip="size of one camera pixel in the sample, in um",
        )
        self.frame_interval = float_box(
            "frame interval (s)",
            1.0,
            1e-9,
            1e6,
            0.01,
            6,
            tooltip="time between two frames, in seconds",
        )
        self.fps = float_box(
            "frame rate (fps)",
            1.0,
            1e-6,
            1e9,
            1.0,
            3,
            tooltip="frames per second (sets the frame interval to exactly 1/fps, e.g. 24 fps)",
        )
        self.model = ComboBox(
            label="model",
            choices=list(model_names) or ["(none installed)"],
            tooltip="the STEP model that predicts D(t) frame by frame; auto: 'acquired' "
            "(trained on blurred, noisy tracks) where the steps show motion blur or localisation "
            "noise, else 'default' (decided once over the selection; the notification says which)",
        )
        self.device = ComboBox(
            label="device",
            choices=DEVICES,
            value="auto",
            tooltip="where the network runs: auto = GPU if there is one",
        )
        self.window = SpinBox(
            label="TA-MSD window",
            value=20,
            min=3,
            max=100000,
            tooltip="frames in the sliding TA-MSD window (the cross-check)",
        )
        self.subtract_drift = CheckBox(
            text="subtract common drift",
            value=False,
            tooltip="estimate the drift of the whole field of view from all tracks of the layer "
            "(mean step per frame, smoothed over 15 frames) and subtract it before reading D; "
            "the layer's positions are not changed",
        )

    def _calibrate(self, *_):
        self._settings.units = CALIBRATED

    def _on_fps(self, fps):
        if fps > 0:
            self._settings.frame_interval_s = 1.0 / float(fps)
            self._calibrate()

    def _show_fps(self, dt):
        with self.fps.changed.blocked():
            self.fps.value = 1.0 / float(dt) if dt > 0 else 0.0

    def _show_units(self, units):
        faded = units != CALIBRATED
        for w in (self.pixel_size, self.frame_interval, self.fps):
            w.native.setStyleSheet("color: gray;" if faded else "")


class ColouringPanel(Container):
    """Colour by log10 D, alpha or state; the log10 D range automatic (from the data) or typed."""

    def __init__(self, settings):
        super().__init__(labels=True)
        self._settings = settings
        self.colour_by = ComboBox(
            label="colour by",
            choices=list(COLOUR_BY),
            value=COLOUR_BY[0],
            tooltip="colour the tracks by log10 D, by alpha (0..2) or by diffusive state",
        )
        self.colour_auto = CheckBox(
            text="range from the data (2-98 %)",
            value=True,
            tooltip="choose the log10 D colour range from the analysed "
            "values (robust percentiles, rounded); typing a "
            "range switches this off",
        )
        self.colour_lo = float_box(
            "colour from (log10 D)",
            -3.0,
            -30.0,
            30.0,
            0.1,
            2,
            tooltip="log10 D at the bottom of the colour range",
        )
        self.colour_hi = float_box(
            "colour to (log10 D)",
            1.0,
            -30.0,
            30.0,
            0.1,
            2,
            tooltip="log10 D at the top of the colour range",
        )
        self.colour_info = Label(label="colours", value="")
        self.colour_info.tooltip = "what the track colours mean"
        self.extend(
            [
                self.colour_by,
                self.colour_auto,
                self.colour_lo,
                self.colour_hi,
                self.colour_info,
            ]
        )
        _title(self, "Colours")
        # a typed bound switches the automatic range off before the new bound is applied
        self.colour_lo.changed.connect(self._typed)
        self.colour_hi.changed.connect(self._typed)
        bind(
            settings,
            {
                "colour_by": self.colour_by,
                "colour_auto": self.colour_auto,
                "colour_lo": self.colour_lo,
                "colour_hi": self.colour_hi,
            },
        )

    def _typed(self, *_):
        with self._settings.events.colour_auto.blocked():
            self._settings.colour_auto = False
        with self.colour_auto.changed.blocked():
            self.colour_auto.value = False

    def describe(self, units: str) -> str:
        """The text of ``colour_info`` for the current settings."""
        s = self._settings
        if s.colour_by == "alpha":
            a, b = ALPHA_RANGE
            text = f"alpha from {a:g} to {b:g}, blue < 1 < red; grey: no alpha"
        elif s.colour_by == "state":
            text = "state: immobile, confined, free, directed (legend); grey: no state"
        else:
            how = "from the data" if s.colour_auto else "typed"
            text = (
                f"log10 D from {s.colour_lo:g} to {s.colour_hi:g} ({units}, {how}), "
                "viridis; grey: not analysed"
            )
        self.colour_info.value = text
        return text


class SegmentsPanel(Container):
    """Change points (segments of constant D), alpha(t), and the segments table."""

    def __init__(self, settings):
        super().__init__(labels=True)
        self.segments = CheckBox(
            text="find change points (segments)",
            value=False,
            tooltip="also cut each track into segments of constant D",
        )
        self.estimator = ComboBox(
            label="segment D", choices=list(ESTIMATORS), value="mle", tooltip=ESTIMATOR_TIP
        )
        self.alpha = CheckBox(
            text="anomalous exponent alpha(t)",
            value=False,
            tooltip="also predict the per-frame anomalous exponent alpha "
            "(STEP alpha model; 1 = normal diffusion)",
        )
        self.states = CheckBox(
            text="diffusive states",
            value=False,
            tooltip="also predict the per-frame AnDi-2 state (immobile, confined, free, directed)",
        )
        self.extend([self.segments, self.estimator, self.alpha, self.states])
        _title(self, "Segments, alpha and states")
        widgets = {"segments": self.segments, "estimator": self.estimator, "alpha": self.alpha}
        bind(settings, {**widgets, "states": self.states})
        settings.events.segments.connect(self._show_segments)
        self._show_segments(settings.segments)
        self.table = self._make_table()
        self.native.layout().addWidget(self.table)

    def _show_segments(self, on):
        self.estimator.enabled = bool(on)

    @staticmethod
    def _make_table():
        from qtpy.QtWidgets import QAbstractItemView, QTableWidget

        table = QTableWidget(0, len(SEGMENT_TABLE_HEADERS))
        table.setHorizontalHeaderLabels(SEGMENT_TABLE_HEADERS)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.verticalHeader().setVisible(False)
        table.setMinimumHeight(100)
        table.setMaximumHeight(220)
        table.setToolTip(
            "segments found by the last runs (start/end: first/last frame); "
            "double-click a row to plot its track"
        )
        return table


class OutputsPanel(Container):
    """Run / Cancel / progress (given by the widget), plots, tables, exports, status."""

    def __init__(self, job_controls):
        super().__init__(labels=False)
        self.plot_button = PushButton(
            text="Show D(t) and MSD plots",
            tooltip="open the plot dock (D(t) of the picked track, histogram, MSD)",
        )
        self.table_button = PushButton(
            text="Show per-track table",
            tooltip="open the table of per-track results (sortable; click a row to pick the track)",
        )
        self.export_button = PushButton(
            text="Export results...",
            tooltip="write one row per point with D (CSV or Parquet, with a JSON sidecar of units)",
        )
        self.export_segments_button = PushButton(
            text="Export segments...", tooltip="write the segments table (CSV + JSON sidecar)"
        )
        self.status = Label(value="")
        self.status.tooltip = "what the analysis did last"
        self.extend(
            [
                *job_controls,
                self.plot_button,
                self.table_button,
                self.export_button,
                self.export_segments_button,
                self.status,
            ]
        )
