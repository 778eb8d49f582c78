"""Which tracks the STEP widget analyses, and picking tracks with the mouse (a mixin)."""

from __future__ import annotations

import numpy as np
from napari.utils import notifications

from ._analysis_jobs import parse_track_ids
from ._selection import format_ids, nearest_track, tracks_by_length, tracks_in_shapes
from ._widgets_common import is_alive

__all__ = ["SelectionMixin", "CLICK_RADIUS_SCREEN_PX"]

CLICK_RADIUS_SCREEN_PX = 12  # how far (on screen) a click may be from a track


def _in_layer(ids: list[int], layer) -> np.ndarray:
    """Which of ``ids`` are track IDs of ``layer`` (bool per ID)."""
    if not ids:
        return np.zeros(0, bool)
    lim = np.iinfo(np.int64)
    fits = np.array([lim.min <= i <= lim.max for i in ids])  # a typed 10**30 is no track
    out = np.zeros(len(ids), bool)
    layer_ids = np.round(np.asarray(layer.data)[:, 0]).astype(np.int64)
    out[fits] = np.isin(np.array([i for i in ids if lim.min <= i <= lim.max], np.int64), layer_ids)
    return out


class SelectionMixin:
    """Track selection of :class:`.step_widget.StepAnalysisWidget` (its ``settings``,
    ``tracks``/``shapes`` combos, ``_clicked`` list and ``set_current_track``)."""

    def selected_track_ids(self, layer=None, notify: bool = True) -> list[int] | None:
        """IDs the current selection mode picks in ``layer`` (None when the choice is invalid;
        with ``notify`` the user is told why).

        Called on every layer insertion and setting change: "all" mode only counts points per
        track; typed and clicked IDs are checked against the layer with one vectorised test
        (no Python set of every track ID)."""
        layer = layer if layer is not None else self.tracks.value
        say = notifications.show_warning if notify else (lambda *_: None)
        mode = self.settings.mode
        if mode == "all":
            return tracks_by_length(layer, int(self.settings.min_length))
        if mode == "shapes":
            shapes = self.shapes.value
            if shapes is None:
                say("STEP analysis: choose a Shapes layer (draw the regions first)")
                return None
            ids, ignored = tracks_in_shapes(layer, shapes)
            if ignored and notify:
                say(f"STEP analysis: {ignored} line/path shape(s) enclose nothing and were ignored")
            return ids
        if mode == "ids":
            try:
                ids = parse_track_ids(self.settings.track_ids)
            except ValueError as e:
                say(f"STEP analysis: {e}")
                return None
        else:
            ids = list(self._clicked)
        here = _in_layer(ids, layer)
        missing = [i for i, ok in zip(ids, here) if not ok]
        if missing and mode == "ids" and notify:
            say(f"STEP analysis: no track(s) {format_ids(missing)} in '{layer.name}'")
        return [i for i, ok in zip(ids, here) if ok]

    def _update_selection_info(self, *_):
        if not is_alive(self.native):
            return
        layer = self.tracks.value
        if layer is None:
            self.selection_info.value = "no Tracks layer"
            return
        ids = self.selected_track_ids(layer, notify=False)
        self.selection_info.value = (
            "invalid selection" if ids is None else f"{len(ids)}: {format_ids(ids)}"
        )

    def _on_ids_typed(self, *_):
        try:
            ids = parse_track_ids(self.settings.track_ids)
        except ValueError:
            return
        if ids:
            self.set_current_track(ids[0])

    def clear_clicked_tracks(self, *_):
        self._clicked = []
        self._update_selection_info()

    def _install_click_callback(self):
        viewer = self._viewer
        callback = self._on_mouse_drag
        viewer.mouse_drag_callbacks.append(callback)

        def _forget_callback(*_):  # a closed widget no longer listens to the canvas
            if callback in viewer.mouse_drag_callbacks:
                viewer.mouse_drag_callbacks.remove(callback)

        self.native.destroyed.connect(_forget_callback)

    def _on_mouse_drag(self, viewer, event):
        """Viewer mouse callback: a click (press + release without dragging) picks a track."""
        if getattr(event, "type", None) != "mouse_press":
            return
        press_pos = np.asarray(getattr(event, "pos", (0, 0)), float)
        position = tuple(event.position)
        dragged = False
        yield
        while event.type == "mouse_move":
            if np.linalg.norm(np.asarray(getattr(event, "pos", press_pos), float) - press_pos) > 3:
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
        if self.settings.mode == "clicked" and tid not in self._clicked:
            self._clicked.append(tid)
            self._update_selection_info()
        self.set_current_track(tid)
        return tid
