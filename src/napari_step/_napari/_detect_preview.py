"""The live side of the "Detect & link" widget: parameter suggestions, the preview Points
layer and the mass histogram (a mixin of :class:`.detect_widget.DetectLinkWidget`).

Detection for the preview and the suggestions runs in worker threads (one at a time; a request
made meanwhile runs when the current one ends, answers to outdated requests are dropped); the
Points layer and the histogram are changed in the GUI thread only. A frame's detections are
kept without a mass limit, so moving the min. mass filters them at once.

The preview layer never outlives its image: when the image is being removed the preview is
hidden (no index may shift inside napari's ``removing`` event) and removed right after, before
anything is drawn (napari 0.9 / vispy on Mesa crash drawing a Points layer in the frame that
removes a 3-D image).
"""

from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.layers import Image

from ._detection_jobs import PreviewRequest, preview_features, suggest_job
from ._jobs import JobError
from ._layers import layer_in_viewer
from ._widgets_common import is_alive

__all__ = ["DetectionPreview", "MassHistogram"]

PREVIEW_CACHE = 8  # frames' detections kept for instant min. mass changes


class MassHistogram(FigureCanvasQTAgg):
    """A small histogram of one frame's feature masses with the min. mass marked."""

    def __init__(self, on_click=None):
        self.figure = Figure(figsize=(3.0, 1.3), dpi=80, layout="constrained")
        super().__init__(self.figure)
        self.setMinimumHeight(90)
        self.setMaximumHeight(120)
        self.setToolTip(
            "masses of the features found on the shown frame without a mass limit; "
            "red line: the min. mass (click to set it)"
        )
        self._on_click = on_click
        self.mpl_connect("button_press_event", self._clicked)

    def show_masses(self, masses, minmass: float, frame: int) -> None:
        """Redraw with ``masses`` (trackpy mass units) and the min. mass line."""
        self.figure.clear()
        ax = self.figure.add_subplot()
        m = np.asarray(masses, dtype=float)
        m = m[np.isfinite(m)]
        if m.size:
            hi = max(float(np.percentile(m, 99.5)), minmass) * 1.05 or 1.0
            ax.hist(np.clip(m, 0, hi), bins=40, range=(0, hi), color="0.55")
        ax.axvline(minmass, color="#ff3b30", lw=1.5)
        kept = int((m >= minmass).sum())
        ax.set_title(f"frame {frame}: {kept} of {m.size} features >= min. mass", fontsize=8)
        ax.set_xlabel("mass", fontsize=8, labelpad=1)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
        self.draw_idle()

    def _clicked(self, event):
        if event.xdata is not None and self._on_click is not None:
            self._on_click(max(0.0, float(event.xdata)))


class DetectionPreview:
    """Mixin: suggestions, preview and histogram for the Detect & link widget (which supplies
    the controls, ``_viewer``, ``_movie``, ``_checked_image``, ``current_frame`` and
    ``detection_params``)."""

    _preview_layer = None
    _preview_image = None
    _preview_busy = False
    _preview_pending = False
    _suggested_for = None  # the image the controls were last suggested for
    _suggest_busy = False

    def _on_image_choice(self, *_):
        layer = self._checked_image(notify=False)
        if layer is not None and layer is not self._suggested_for:
            self.suggest()
        self._schedule_preview()

    def suggest(self, *_):
        """Suggest diameter, min. mass and dark particles from the shown frame (in a worker);
        returns the worker (None without a usable image or while one runs)."""
        from napari.qt.threading import create_worker

        layer = self._checked_image(notify=False)
        if layer is None or self._suggest_busy:
            return None
        t = self.current_frame(layer)
        self._suggested_for = layer
        self._suggest_busy = True
        self.preview_info.value = f"suggesting parameters from frame {t}..."
        worker = create_worker(
            suggest_job, self._movie(layer)[t], id(layer), t, _start_thread=False
        )
        worker.returned.connect(self._on_suggestion)
        worker.finished.connect(self._suggest_done)
        worker.start()
        return worker

    def _suggest_done(self, *_):
        self._suggest_busy = False
        if is_alive(self.native) and self.image.value is not self._suggested_for:
            self._on_image_choice()  # another image was chosen meanwhile
        elif is_alive(self.native):
            self._schedule_preview()

    def _on_suggestion(self, result):
        image_id, t, hint = result
        layer = self.image.value
        if not is_alive(self.native) or layer is None or id(layer) != image_id:
            return
        if isinstance(hint, JobError):
            self.preview_info.value = hint.message
            return
        with self.changed.blocked():
            for w, v in (
                (self.diameter, hint.diameter),
                (self.invert, hint.invert),
                (self.minmass, hint.minmass),
            ):
                with w.changed.blocked():
                    w.value = v
        sep = self.detection_params().separation  # the features are frame t's preview
        self._remember(
            PreviewRequest(id(layer), t, hint.diameter, sep, hint.invert),
            hint.features.assign(frame=t),
        )
        kind = "dark" if hint.invert else "bright"
        self.status.value = (
            f"suggested from frame {t}: diameter {hint.diameter} px, min. mass "
            f"{hint.minmass:g}, {kind} particles ({hint.n_found} found)"
        )
        self.suggested.emit(hint)
        self._preview_now()

    # -------------------------------------------------------------------- preview
    def _on_layers_changed(self, event=None):
        if not is_alive(self.native):
            return
        self.reset_choices()
        if self._preview_layer is not None and not layer_in_viewer(
            self._viewer, self._preview_layer
        ):
            self._preview_layer = self._preview_image = None

    def _on_removing(self, event):
        """An image is about to be removed: take its preview (and the cache) with it."""
        layer = self._viewer.layers[event.index]
        if layer is self._preview_image and self._preview_layer is not None:
            self._preview_layer.visible = False  # no index may shift inside 'removing'
            self._viewer.layers.events.removed.connect(self._drop_orphan_preview)
        if isinstance(layer, Image):
            self._preview_cache = {
                k: v for k, v in self._preview_cache.items() if k.image_id != id(layer)
            }

    def _drop_orphan_preview(self, event=None):
        self._viewer.layers.events.removed.disconnect(self._drop_orphan_preview)
        self.remove_preview()

    def remove_preview(self) -> None:
        """Remove the preview Points layer (if any) from the viewer."""
        pts, self._preview_layer, self._preview_image = self._preview_layer, None, None
        if pts is not None and layer_in_viewer(self._viewer, pts):
            self._viewer.layers.remove(pts)

    def _schedule_preview(self, *_):
        if is_alive(self.native) and is_alive(self._timer):
            self._timer.start()

    def _on_minmass(self, *_):
        self._preview_now()  # the cached features are filtered at once

    def _set_minmass(self, value: float):
        self.minmass.value = float(f"{value:.2g}") if value > 0 else 0.0

    def _request(self, layer) -> PreviewRequest:
        p = self.detection_params()
        return PreviewRequest(
            id(layer), self.current_frame(layer), p.diameter, p.separation, p.invert
        )

    def _remember(self, req, feats):
        self._preview_cache[req] = feats
        while len(self._preview_cache) > PREVIEW_CACHE:
            self._preview_cache.pop(next(iter(self._preview_cache)))

    def _preview_now(self, *_):
        """Show the preview of the shown frame: at once from the cache, else detect in a
        worker (one at a time; a request made meanwhile runs when it ends)."""
        if not is_alive(self.native):
            return
        if not bool(self.preview.value):
            if self._preview_layer is not None and layer_in_viewer(
                self._viewer, self._preview_layer
            ):
                self._preview_layer.visible = False
            return
        layer = self._checked_image(notify=False)
        if layer is None:
            return
        req = self._request(layer)
        if req in self._preview_cache:
            self._apply_preview(layer, req, self._preview_cache[req])
            return
        if self._preview_busy or self._suggest_busy:  # a suggestion brings its own preview
            self._preview_pending = self._preview_pending or self._preview_busy
            return
        from napari.qt.threading import create_worker

        self._preview_busy, self._preview_pending = True, False
        frame = self._movie(layer)[req.frame]  # read in the worker (dask computes there)
        worker = create_worker(preview_features, frame, req, _start_thread=False)
        worker.returned.connect(self._on_preview_features)
        worker.finished.connect(self._preview_done)
        worker.start()

    def _preview_done(self, *_):
        self._preview_busy = False
        if self._preview_pending and is_alive(self.native):
            self._preview_now()

    def _on_preview_features(self, result):
        req, feats = result
        if not is_alive(self.native):
            return
        if isinstance(feats, JobError):
            self.preview_info.value = feats.message
            return
        self._remember(req, feats)
        layer = self.image.value
        if layer is not None and self._request(layer) == req:
            self._apply_preview(layer, req, feats)
        else:
            self._preview_pending = True  # outdated: the newest request runs next

    def _apply_preview(self, image, req, feats):
        minmass = float(self.minmass.value)
        found = feats[feats["mass"] >= minmass] if len(feats) else feats
        coords = found[["y", "x"]].to_numpy(float) if len(found) else np.empty((0, 2))
        if image.ndim == 3:
            coords = np.column_stack([np.full(len(coords), req.frame, float), coords])
        self._show_preview(image, coords, req.diameter)
        self.histogram.show_masses(feats["mass"] if len(feats) else [], minmass, req.frame)
        self.preview_info.value = f"frame {req.frame}: {len(coords)} particles"
        self.preview_updated.emit(len(coords))

    def _show_preview(self, image, coords, diameter):
        pts = self._preview_layer
        name = f"{image.name} detections (preview)"
        if pts is None or not layer_in_viewer(self._viewer, pts) or pts.ndim != image.ndim:
            self.remove_preview()
            kwargs = {
                "scale": image.scale,
                "translate": image.translate,
                "name": name,
                "size": diameter,
                "face_color": "transparent",
                "border_color": "#ff3b30",
                "border_width": 0.12,
                "opacity": 0.9,
                "units": image.units,
            }
            active = self._viewer.layers.selection.active
            pts = self._viewer.add_points(
                coords if len(coords) else None, ndim=image.ndim, **kwargs
            )
            self._preview_layer = pts
            self._viewer.layers.selection.active = active or image  # keep the user's focus
        else:
            pts.data = coords if len(coords) else np.empty((0, image.ndim))
            pts.size = diameter
            pts.visible = True
            pts.name = name
        self._preview_image = image
