"""The "Detect & link" dock widget: trackpy detection with a live preview, then linking.

- choose an Image layer (T, Y, X) (a single 2-D image counts as one frame); it is only read;
- the preview runs ``trackpy.locate`` on the frame shown in the viewer and puts the detections
  in a Points layer; it follows the parameters and the time slider, debounced;
- *Detect* runs detection over all frames in a ``thread_worker`` (progress bar in the viewer,
  *Cancel* stops it between two frames), then links the detections into a **new** Tracks layer;
- *Link again* relinks the last detections with the current linking parameters.

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
from ..tracks import locate_frame, to_napari
from ._detection_jobs import detect_job, link_detections
from ._layers import layer_in_viewer
from ._jobs import JobError
from ._widgets_common import (
    BackgroundJob,
    connect_layer_list,
    float_box,
    is_alive,
    layer_choices,
    unwrap_viewer,
)

__all__ = ["DetectLinkWidget"]

PREVIEW_DELAY_MS = 250


class DetectLinkWidget(BackgroundJob, Container):
    """Detect particles with trackpy and link them into a Tracks layer."""

    tracks_added = Signal(object)  # the new Tracks layer
    preview_updated = Signal(int)  # number of detections shown in the preview

    def __init__(self, napari_viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer = unwrap_viewer(napari_viewer)
        det, lnk = DetectionParams(), LinkingParams()
        self.image = ComboBox(label="image", choices=layer_choices(napari_viewer, Image),
                              tooltip="the movie (T, Y, X); it is never modified")
        self.diameter = SpinBox(label="diameter (px)", value=det.diameter, min=3, max=101, step=2,
                                tooltip="odd feature size for trackpy.locate")
        self.minmass = float_box("min. mass", det.minmass or 0.0, 0.0, 1e12, 10.0, 1,
                                 "minimum integrated brightness (0: trackpy's default)")
        self.separation = float_box("separation (px)", 0.0, 0.0, 1000.0, 0.5, 2,
                                    "minimum distance between features (0: diameter + 1)")
        self.invert = CheckBox(label="dark particles", value=det.invert)
        self.preview = CheckBox(label="live preview", value=True,
                                tooltip="detect on the current frame into a Points layer")
        self.preview_info = Label(label="preview", value="")
        self.search_range = float_box("search range (px)", lnk.search_range, 0.1, 1000.0, 0.5, 2)
        self.memory = SpinBox(label="memory (frames)", value=lnk.memory, min=0, max=1000,
                              tooltip="frames a particle may vanish; the gap stays a gap")
        self.min_length = SpinBox(label="min. track length", value=lnk.min_length, min=1,
                                  max=100000)
        self.detect_button = PushButton(text="Detect && link")
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.relink_button = PushButton(text="Link again", enabled=False,
                                        tooltip="relink the last detections")
        self.status = Label(label="", value="")
        self.extend([
            self.image, self.diameter, self.minmass, self.separation, self.invert, self.preview,
            self.preview_info, self.search_range, self.memory, self.min_length,
            self.detect_button, self.cancel_button, self.relink_button, self.status,
        ])

        self._worker = None
        self._detections = None
        self._detections_source = None  # (image layer, DetectionParams)
        self._preview_layer = None
        self._timer = QTimer(self.native)  # dies with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(PREVIEW_DELAY_MS)
        self._timer.timeout.connect(self._preview_now)

        for w in (self.image, self.diameter, self.minmass, self.separation, self.invert,
                  self.preview):
            w.changed.connect(self._schedule_preview)
        self.detect_button.changed.connect(self.detect)
        self.cancel_button.changed.connect(self.cancel)
        self.relink_button.changed.connect(self.relink)
        napari_viewer.dims.events.current_step.connect(self._on_dims)
        connect_layer_list(napari_viewer, self._on_layers_changed)
        self.reset_choices()

    # ----------------------------------------------------------------- parameters
    def detection_params(self) -> DetectionParams:
        return DetectionParams(
            diameter=int(self.diameter.value),
            minmass=float(self.minmass.value) or None,
            separation=float(self.separation.value) or None,
            invert=bool(self.invert.value),
        )

    def linking_params(self) -> LinkingParams:
        return LinkingParams(float(self.search_range.value), int(self.memory.value),
                             int(self.min_length.value))

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
            msg = (f"Detect & link: '{layer.name}' has {layer.ndim} dimensions; "
                   "a (T, Y, X) movie or a single (Y, X) frame is needed")
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
        layer = layer or self.image.value
        if layer is None or layer.ndim < 3:
            return 0
        t = layer.world_to_data(self._viewer.dims.point)[0]
        n = self._movie(layer).shape[0]
        return int(np.clip(np.round(t), 0, n - 1))

    # -------------------------------------------------------------------- preview
    def _on_dims(self, event=None):
        self._schedule_preview()

    def _on_layers_changed(self, event=None):
        if not is_alive(self.native):
            return
        self.reset_choices()
        if self._preview_layer is not None and not layer_in_viewer(self._viewer,
                                                                   self._preview_layer):
            self._preview_layer = None

    def _schedule_preview(self, *_):
        if is_alive(self.native) and is_alive(self._timer):
            self._timer.start()

    def _preview_now(self) -> int | None:
        """Detect on the current frame into the preview Points layer; returns the count."""
        if not is_alive(self.native):
            return None
        if not bool(self.preview.value):
            if self._preview_layer is not None and layer_in_viewer(self._viewer,
                                                                   self._preview_layer):
                self._preview_layer.visible = False
            return None
        layer = self._checked_image(notify=False)
        if layer is None:
            return None
        movie = self._movie(layer)
        t = self.current_frame(layer)
        p = self.detection_params()
        try:
            found = locate_frame(np.asarray(movie[t]), t, p.diameter, p.minmass, p.separation,
                                 p.invert)
        except (ValueError, TypeError, RuntimeError) as e:
            self.preview_info.value = f"preview failed: {e}"
            return None
        coords = found[["y", "x"]].to_numpy(float)
        if layer.ndim == 3:
            coords = np.column_stack([np.full(len(coords), t, float), coords])
        self._show_preview(layer, coords, p.diameter)
        self.preview_info.value = f"frame {t}: {len(coords)} particles"
        self.preview_updated.emit(len(coords))
        return len(coords)

    def _show_preview(self, image, coords, diameter):
        pts = self._preview_layer
        name = f"{image.name} detections (preview)"
        if pts is None or not layer_in_viewer(self._viewer, pts) or pts.ndim != image.ndim:
            kwargs = {"scale": image.scale, "translate": image.translate, "name": name,
                      "size": diameter, "face_color": "transparent", "border_color": "#ff3b30",
                      "border_width": 0.12, "opacity": 0.9}
            try:
                kwargs["units"] = image.units
            except AttributeError:
                pass
            active = self._viewer.layers.selection.active
            pts = self._viewer.add_points(coords if len(coords) else None, ndim=image.ndim,
                                          **kwargs)
            self._preview_layer = pts
            self._viewer.layers.selection.active = active or image  # keep the user's focus
        else:
            pts.data = coords if len(coords) else np.empty((0, image.ndim))
            pts.size = diameter
            pts.visible = True
            pts.name = name

    # ---------------------------------------------------------------- detection
    def detect(self, *_):
        """Start detection + linking over all frames; returns the worker (None if refused)."""
        if self._worker is not None:
            notifications.show_warning("Detect & link: a detection is already running")
            return None
        layer = self._checked_image()
        if layer is None:
            return None
        movie = self._movie(layer)
        det, lnk = self.detection_params(), self.linking_params()
        n = int(movie.shape[0])
        worker = self._start_job(detect_job, movie, det, lnk, total=n,
                                 desc=f"Detecting in {layer.name}",
                                 on_returned=partial(self._on_detected, layer, det, lnk))
        self.detect_button.enabled = False
        self.relink_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = f"detecting in {n} frame(s)..."
        worker.start()
        return worker

    def _on_error(self, exc):
        notifications.show_error(f"Detect & link failed: {exc}")

    def _on_aborted(self, *_):
        self.status.value = "detection cancelled"
        notifications.show_info("Detect & link: detection cancelled, nothing was added")

    def _on_finished(self, *_):
        self._worker = None
        if not is_alive(self.native):
            return
        self.detect_button.enabled = True
        self.cancel_button.enabled = False
        self.relink_button.enabled = self._detections is not None

    def _on_detected(self, image, det, lnk, result):
        if isinstance(result, JobError):
            self.status.value = result.message
            notifications.show_error(f"Detect & link: {result.message}")
            return
        detections, table = result
        self._detections = detections
        self._detections_source = (image, det)
        n_frames = int(self._movie(image).shape[0])
        per_frame = len(detections) / max(1, n_frames)
        self.status.value = f"{len(detections)} detections ({per_frame:.1f} per frame)"
        self._add_tracks(image, table, det, lnk)

    def relink(self, *_):
        """Link the last detections again with the current linking parameters."""
        if self._detections is None:
            notifications.show_warning("Detect & link: detect particles first")
            return None
        image, det = self._detections_source
        lnk = self.linking_params()
        try:
            table = link_detections(self._detections, lnk)
        except (ValueError, RuntimeError) as e:
            notifications.show_error(f"Detect & link: linking failed: {e}")
            return None
        return self._add_tracks(image, table, det, lnk)

    def _add_tracks(self, image, table, det, lnk):
        if len(table) == 0:
            notifications.show_warning(
                "Detect & link: no track is long enough; lower the minimum mass or the minimum "
                "track length, or raise the search range"
            )
            return None
        data, feats = to_napari(table)
        scale = list(image.scale) if image.ndim == 3 else [1.0, *image.scale]
        translate = list(image.translate) if image.ndim == 3 else [0.0, *image.translate]
        meta = {k: image.metadata[k] for k in ("pixel_size_um", "frame_interval_s")
                if k in (image.metadata or {})}
        meta["source_image"] = image.name
        meta["detection"] = {"diameter": det.diameter, "minmass": det.minmass,
                             "separation": det.separation, "invert": det.invert}
        meta["linking"] = {"search_range": lnk.search_range, "memory": lnk.memory,
                           "min_length": lnk.min_length}
        kwargs = {"name": f"{image.name} tracks", "features": feats, "scale": scale,
                  "translate": translate, "metadata": meta, "tail_length": 30,
                  "tail_width": 2}
        if image.ndim == 3:
            try:
                kwargs["units"] = image.units
                kwargs["axis_labels"] = image.axis_labels
            except AttributeError:
                pass
        layer = self._viewer.add_tracks(data, **kwargs)
        n_tracks = int(table["track_id"].nunique())
        frames = table.groupby("track_id")["frame"]
        n_gaps = int((frames.max() - frames.min() + 1 - frames.size()).clip(lower=0).sum())
        self.status.value = (f"{n_tracks} tracks, {len(table)} points -> '{layer.name}'"
                             + (f"; {n_gaps} skipped frame(s) left as gaps" if n_gaps else ""))
        notifications.show_info(f"Detect & link: {n_tracks} tracks added as '{layer.name}'")
        self.tracks_added.emit(layer)
        return layer
