"""The "Detect & link" dock widget: trackpy detection with suggestions and a live preview, then
linking.

- choose an Image layer (T, Y, X) (a single 2-D image counts as one frame); it is only read;
- when the widget opens or another image is chosen, diameter, min. mass and "dark particles" are
  suggested from the shown frame (*Suggest* asks again on the frame shown now);
- the preview detects on the shown frame in a worker thread (debounced; the newest request
  wins) and shows the detections in a Points layer and their masses in a histogram with the
  min. mass marked (click the histogram to set the min. mass); changing the min. mass only
  filters, it needs no new detection;
- *Detect & link* detects every frame in a worker (a progress bar in the dock; *Cancel* stops
  it between two chunks of frames), then links the detections into a Tracks layer;
  *Link again* relinks the last detections with the current linking parameters (in a worker
  too). The worker also builds the Tracks layer object (seconds at 100 000 tracks): the GUI
  thread only adds it to the viewer. A new result
  replaces this widget's previous, not yet analysed result of the same movie (an analysed one
  is kept and the new one gets its own name).

The preview layer never outlives its image or a finished detection: it is hidden when its image
is being removed and removed right after (napari 0.9 / vispy on Mesa crash drawing a Points
layer in the frame that removes a 3-D image), and removed when detection succeeds. Worker
threads only compute (the new Tracks layer is built there, in no viewer); the viewer's layers
are changed in the GUI thread only.

Frames that a track skipped thanks to ``memory`` have no point in the layer: gaps stay explicit
(the STEP analysis splits tracks there).
"""

from __future__ import annotations

from functools import partial

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, PushButton, SpinBox
from napari.layers import Image
from napari.utils import notifications
from psygnal import Signal
from qtpy.QtCore import QTimer

from ..pipeline import DetectionParams, LinkingParams
from ._detect_preview import DetectionPreview, MassHistogram
from ._detection_jobs import (
    LinkedTracks,
    detect_job,
    link_job,
    prepare_tracks,
    replaceable,
    tracks_layer_kwargs,
)
from ._jobs import JobError
from ._widgets_common import (
    BackgroundJob,
    connect_layer_list,
    float_box,
    is_alive,
    layer_choices,
    make_scrollable,
    scroll_content,
    unwrap_viewer,
)

__all__ = ["DetectLinkWidget"]

PREVIEW_DELAY_MS = 150


class DetectLinkWidget(DetectionPreview, BackgroundJob, Container):
    """Detect particles with trackpy and link them into a Tracks layer."""

    tracks_added = Signal(object)  # the new Tracks layer
    preview_updated = Signal(int)  # number of detections shown in the preview
    suggested = Signal(object)  # the DetectionHint applied to the controls

    @property
    def native(self):
        """The scroll area around the controls: napari docks a magicgui widget's ``native``,
        which for a scrollable Container (magicgui 0.10) is the scroll area's content, so the
        dock would lose its scroll bar."""
        return self.root_native_widget

    def __init__(self, napari_viewer):
        super().__init__(labels=True, scrollable=True)
        self._viewer = napari_viewer = unwrap_viewer(napari_viewer)
        det, lnk = DetectionParams(), LinkingParams()
        self._make_controls(napari_viewer, det, lnk)
        self._worker = None
        self._detections = None
        self._detections_source = None  # (image layer, DetectionParams)
        self._last_result = None  # the Tracks layer of the last detection/linking
        self._preview_layer = self._preview_image = None
        self._preview_cache: dict = {}
        self._preview_busy = self._preview_pending = False
        self._suggested_for = None  # the image the controls were last suggested for
        self._suggest_busy = False
        self._timer = QTimer(self.native)  # dies with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self._preview_now)
        for w in (self.image, self.diameter, self.separation, self.invert, self.preview):
            w.changed.connect(self._schedule_preview)
        self.minmass.changed.connect(self._on_minmass)
        self.image.changed.connect(self._on_image_choice)
        self.suggest_button.changed.connect(self.suggest)
        self.relink_button.changed.connect(self.relink)
        napari_viewer.dims.events.current_step.connect(self._schedule_preview)
        connect_layer_list(napari_viewer, self._on_layers_changed)
        napari_viewer.layers.events.removing.connect(self._on_removing)
        self.reset_choices()
        make_scrollable(self)
        self._on_image_choice()

    def _make_controls(self, viewer, det: DetectionParams, lnk: LinkingParams) -> None:
        self.image = ComboBox(
            label="image",
            choices=layer_choices(viewer, Image),
            tooltip="the movie (T, Y, X) to detect particles in; it is never modified",
        )
        self.diameter = SpinBox(
            label="diameter (px)",
            value=det.diameter,
            min=3,
            max=101,
            step=2,
            tooltip="trackpy's feature size: an odd number of pixels a little larger than a "
            "particle (suggested from the image)",
        )
        self.minmass = float_box(
            "min. mass",
            det.minmass or 0.0,
            0.0,
            1e12,
            10.0,
            1,
            "minimum integrated brightness of a feature (0: no limit); see the histogram, "
            "click it to set the value",
        )
        self.separation = float_box(
            "separation (px)",
            0.0,
            0.0,
            1000.0,
            0.5,
            2,
            "minimum distance between two features (0: trackpy's default, diameter + 1)",
        )
        self.invert = CheckBox(
            label="dark particles",
            value=det.invert,
            tooltip="tick for dark particles on a bright background "
            "(bright-field); suggested from the grey levels",
        )
        self.suggest_button = PushButton(
            text="Suggest",
            tooltip="suggest diameter, min. mass and dark/bright particles "
            "from the frame shown now",
        )
        self.preview = CheckBox(
            label="live preview",
            value=True,
            tooltip="detect on the shown frame into a Points layer (red "
            "circles); switched off when a detection finishes",
        )
        self.preview_info = Label(label="preview", value="")
        self._make_linking_controls(lnk)
        self.status = Label(label="status", value="")
        self.extend(
            [self.image, self.diameter, self.minmass, self.separation, self.invert]
            + [self.suggest_button, self.preview, self.preview_info, self.search_range]
            + [self.memory, self.min_length, self.detect_button, self.cancel_button]
            + [self.progress, self.relink_button, self.status]
        )
        self.histogram = MassHistogram(on_click=self._set_minmass)
        layout = scroll_content(self).layout()
        layout.insertWidget(
            layout.indexOf(self.preview_info.native.parentWidget()) + 1, self.histogram
        )
        layout.addStretch(1)  # rows stay together at the top of a tall dock

    def _make_linking_controls(self, lnk: LinkingParams) -> None:
        self.search_range = float_box(
            "search range (px)",
            lnk.search_range,
            0.1,
            1000.0,
            0.5,
            2,
            "largest distance a particle moves between two frames (trackpy.link)",
        )
        self.memory = SpinBox(
            label="memory (frames)",
            value=lnk.memory,
            min=0,
            max=1000,
            tooltip="frames a particle may vanish and keep its track; the skipped frames stay gaps",
        )
        self.min_length = SpinBox(
            label="min. track length",
            value=lnk.min_length,
            min=1,
            max=100000,
            tooltip="shorter tracks are dropped (points)",
        )
        run, _cancel, _progress = self._init_job_controls(
            "Detect && link",
            "detect in every frame, then link into a Tracks layer",
            on_run=self.detect,
        )
        self.detect_button = run
        self.relink_button = PushButton(
            text="Link again",
            enabled=False,
            tooltip="relink the last detections with the linking "
            "parameters above; replaces the previous result",
        )

    # ----------------------------------------------------------------- parameters
    def detection_params(self) -> DetectionParams:
        """The detection parameters shown in the widget."""
        return DetectionParams(
            diameter=int(self.diameter.value),
            minmass=float(self.minmass.value) or None,
            separation=float(self.separation.value) or None,
            invert=bool(self.invert.value),
        )

    def linking_params(self) -> LinkingParams:
        """The linking parameters shown in the widget."""
        return LinkingParams(
            float(self.search_range.value), int(self.memory.value), int(self.min_length.value)
        )

    def _checked_image(self, notify=True):
        """The chosen Image layer if it can be detected on, else None (with a notification)."""
        layer = self.image.value
        msg = None
        if layer is None:
            msg = "Detect & link: choose an Image layer (the movie) first"
        elif not isinstance(layer, Image):
            msg = f"Detect & link: '{layer.name}' is not an Image layer"
        elif getattr(layer, "rgb", False):
            msg = f"Detect & link: '{layer.name}' is an RGB image; convert it to grey levels"
        elif layer.ndim not in (2, 3):
            msg = (
                f"Detect & link: '{layer.name}' has {layer.ndim} dimensions; "
                "a (T, Y, X) movie or a single (Y, X) frame is needed"
            )
        if msg:
            if notify:
                notifications.show_error(msg)
            return None
        return layer

    @staticmethod
    def _movie(layer):
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        return data[None] if len(data.shape) == 2 else data

    def current_frame(self, layer=None) -> int:
        """The frame of ``layer`` (default: the chosen image) shown in the viewer."""
        layer = layer or self.image.value
        if layer is None or layer.ndim < 3:
            return 0
        t = layer.world_to_data(self._viewer.dims.point)[0]
        n = self._movie(layer).shape[0]
        return int(np.clip(np.round(t), 0, n - 1))

    # ---------------------------------------------------------------- detection
    def detect(self, *_):
        """Start detection + linking over all frames; returns the worker (None if refused).

        The worker also builds the Tracks layer (:func:`._detection_jobs.prepare_tracks`): the
        GUI thread only adds it to the viewer."""
        if self._worker is not None:
            notifications.show_warning("Detect & link: a detection is already running")
            return None
        layer = self._checked_image()
        if layer is None:
            return None
        movie = self._movie(layer)
        det, lnk = self.detection_params(), self.linking_params()
        n = int(movie.shape[0])
        self._job_kind = "detection"
        worker = self._start_job(
            detect_job,
            movie,
            det,
            lnk,
            total=n,
            desc="frames",
            on_returned=partial(self._on_detected, layer, det),
            also_disable=(self.relink_button, self.suggest_button),
            then=partial(prepare_tracks, tracks_layer_kwargs(layer, det, lnk)),
        )
        self.status.value = f"detecting in {n} frame(s)..."
        worker.start()
        return worker

    def _on_error(self, exc):
        notifications.show_error(f"Detect & link failed: {exc}")

    def _on_aborted(self, *_):
        what = getattr(self, "_job_kind", "detection")
        self.status.value = f"{what} cancelled"
        notifications.show_info(f"Detect & link: {what} cancelled, nothing was added")

    def _on_finished(self, *_):
        if is_alive(self.native):
            self.relink_button.enabled = self._detections is not None

    def _on_detected(self, image, det, result):
        if isinstance(result, JobError):
            self.status.value = result.message
            notifications.show_error(f"Detect & link: {result.message}")
            return
        detections, linked = result
        self._detections = detections
        self._detections_source = (image, det)
        with self.preview.changed.blocked():
            self.preview.value = False  # the red circles would cover the tracks
        removed = self._preview_layer is not None
        self.remove_preview()
        self.preview_info.value = "off after detection (tick 'live preview' to see it again)"
        _after(removed, self._add_tracks, image, linked)

    def relink(self, *_):
        """Link the last detections again with the current linking parameters, in a worker
        (which also builds the Tracks layer); returns the worker (None if refused). The new
        layer replaces the previous result unless that one was analysed (``tracks_added``
        tells when it is in the viewer: the removal of the previous one and the new layer are
        one turn of the event loop apart)."""
        if self._worker is not None:
            notifications.show_warning("Detect & link: a detection or linking is running")
            return None
        if self._detections is None:
            notifications.show_warning("Detect & link: detect particles first")
            return None
        image, det = self._detections_source
        lnk = self.linking_params()
        self._job_kind = "linking"
        worker = self._start_job(
            link_job,
            self._detections,
            lnk,
            total=0,
            desc="linking",
            on_returned=partial(self._on_linked, image),
            also_disable=(self.relink_button, self.suggest_button),
            then=partial(prepare_tracks, tracks_layer_kwargs(image, det, lnk)),
        )
        self.status.value = f"linking {len(self._detections)} detections..."
        worker.start()
        return worker

    def _on_linked(self, image, result):
        if isinstance(result, JobError):
            self.status.value = result.message
            notifications.show_error(f"Detect & link: {result.message}")
            return
        self._add_tracks(image, result[1])

    def _add_tracks(self, image, linked: LinkedTracks | None) -> None:
        """Add the Tracks layer built in the worker, in place of the previous, unanalysed
        result of the same image (``tracks_added`` tells when it is in the viewer)."""
        if linked is None or linked.layer is None:
            self.status.value = "no track is long enough"
            notifications.show_warning(
                "Detect & link: no track is long enough; lower the minimum mass or the minimum "
                "track length, or raise the search range"
            )
            return
        layer = linked.layer
        old = self._last_result
        old = old if replaceable(self._viewer.layers, old, image) else None
        index = None
        if old is not None:
            index, layer.name = self._viewer.layers.index(old), old.name
            self._viewer.layers.remove(old)
        _after(old is not None, self._insert_tracks, layer, linked, index)

    def _insert_tracks(self, layer, linked: LinkedTracks, index: int | None) -> None:
        """Put the new layer into the viewer (at ``index``: the replaced one's place)."""
        self._viewer.add_layer(layer)
        if index is not None:
            self._viewer.layers.move(self._viewer.layers.index(layer), index)
        self._last_result = layer
        verb = "replaced" if index is not None else "added as"
        gaps = linked.n_gaps
        self.status.value = (
            f"{linked.n_detections} detections; {linked.n_tracks} tracks, {linked.n_points} "
            f"points {verb} '{layer.name}'"
            + (f"; {gaps} skipped frame(s) left as gaps" if gaps else "")
        )
        notifications.show_info(f"Detect & link: {linked.n_tracks} tracks {verb} '{layer.name}'")
        self.tracks_added.emit(layer)


def _after(removed: bool, fn, *args) -> None:
    """``fn(*args)`` now, or at the next turn of the Qt event loop when a layer was just
    removed: napari collects garbage on every removal (a third of a second in a session that
    holds 100 000 tracks), so the removal and the next layer change freeze the viewer apart,
    never at once."""
    if removed:
        QTimer.singleShot(0, partial(fn, *args))
    else:
        fn(*args)
