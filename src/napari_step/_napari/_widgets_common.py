"""Small helpers shared by the dock widgets (Qt and napari are available here)."""

from __future__ import annotations

import weakref

import numpy as np
from magicgui.widgets import FloatSpinBox

__all__ = [
    "BackgroundJob",
    "float_box",
    "layer_choices",
    "connect_layer_list",
    "is_alive",
    "unwrap_viewer",
    "wrap_labels",
    "compact_combo",
    "scroll_content",
    "make_scrollable",
    "ScrollableDock",
    "FollowsTracks",
    "default_tracks_layer",
    "register_dock",
    "docks_of",
]


def unwrap_viewer(viewer):
    """The real viewer behind napari's ``PublicOnlyProxy`` (what plugin widgets are given).

    The widgets compare layers by identity and keep per-layer state, which needs the real
    objects rather than a fresh proxy per attribute access.
    """
    try:
        import wrapt
    except ImportError:  # napari without wrapt has no proxies either
        return viewer
    while issubclass(type(viewer), wrapt.ObjectProxy):
        viewer = viewer.__wrapped__
    return viewer


def float_box(
    label: str,
    value: float,
    min: float,
    max: float,
    step: float,
    decimals: int = 4,
    tooltip: str | None = None,
) -> FloatSpinBox:
    """A FloatSpinBox that shows enough decimals for pixel sizes like 0.065 um."""
    box = FloatSpinBox(label=label, min=min, max=max, step=step, tooltip=tooltip)
    try:
        box.native.setDecimals(decimals)
    except AttributeError:  # another magicgui backend
        pass
    box.value = value
    return box


def layer_choices(viewer, layer_type):
    """A magicgui ``choices`` callable: (name, layer) of the viewer's layers of a type."""

    def _choices(_widget=None):
        return [(lyr.name, lyr) for lyr in viewer.layers if isinstance(lyr, layer_type)]

    return _choices


def connect_layer_list(viewer, callback) -> None:
    """Call ``callback(event)`` whenever layers are added, removed or moved.

    Pass a bound method: napari keeps only a weak reference to it, so a closed widget is not
    kept alive by the viewer.
    """
    ev = viewer.layers.events
    for name in ("inserted", "removed", "moved"):
        emitter = getattr(ev, name, None)
        if emitter is not None:
            emitter.connect(callback)


def is_alive(qobject) -> bool:
    """False once the C++ side of a Qt object was deleted."""
    try:
        from qtpy import sip  # PyQt

        return not sip.isdeleted(qobject)
    except ImportError:  # PySide
        try:
            import shiboken6

            return shiboken6.isValid(qobject)
        except ImportError:
            return True


def _job_then(job, args, then):
    """Generator: the job ``job(*args)`` (its steps pass through), then ``then(result)`` in the
    same (worker) thread; returns what ``then`` returns."""
    result = yield from job(*args)
    return then(result)


class BackgroundJob:
    """Mixin for a dock widget that runs one long job at a time in a napari ``thread_worker``.

    It owns the job controls: :meth:`_init_job_controls` makes ``run_button``, ``cancel_button``
    and a ``progress`` bar (shown in the dock while a job runs: determinate when the job's total
    is known, "busy" otherwise) and wires Run/Cancel. :meth:`_start_job` disables the Run button
    (and any ``also_disable`` widgets) until the job ends, then re-enables them and calls the
    widget's hooks. The widget supplies ``_on_error(exc)``, ``_on_aborted()`` and
    ``_on_finished()`` (optional). A job is a generator: each ``yield`` is a progress step
    (yield the number of steps done, or ``(done, total)`` when the total changes, or anything
    else to count one step) and a point where Cancel stops it.
    """

    _worker = None
    _job_disabled: tuple = ()

    @property
    def running(self) -> bool:
        """True while a job runs."""
        return self._worker is not None

    def _init_job_controls(self, run_text: str = "Run", run_tooltip: str = "", on_run=None) -> list:
        """Create ``run_button``, ``cancel_button`` and ``progress``; returns them (in that
        order) for the widget to place. ``on_run`` (default ``self.run``) is called by Run."""
        from magicgui.widgets import ProgressBar, PushButton

        self.run_button = PushButton(text=run_text, tooltip=run_tooltip or None)
        self.cancel_button = PushButton(
            text="Cancel",
            enabled=False,
            tooltip="stop the running job at its next step; nothing is changed",
        )
        self.progress = ProgressBar(
            min=0, max=1, value=0, visible=False, tooltip="progress of the running job"
        )
        self.progress.label = ""
        self.run_button.changed.connect(on_run if on_run is not None else self.run)
        self.cancel_button.changed.connect(self.cancel)
        return [self.run_button, self.cancel_button, self.progress]

    def cancel(self, *_):
        """Ask the running job to stop (at its next step)."""
        if self._worker is not None:
            self._worker.quit()

    def _start_job(
        self, job, *args, total: int, desc: str, on_returned, also_disable=(), then=None
    ):
        """Create (not start) the worker for ``job(*args)`` wired to this widget's handlers.

        ``total``: the number of steps (yields) the job will make (0 or None: unknown, the bar
        shows "busy"); ``desc`` is shown in the progress bar. ``then(result)``, when given, runs
        in the worker thread after the job and its value goes to ``on_returned``: the place for
        the heavy part of applying a result (merging, building arrays), so the GUI thread only
        assigns what it gets.
        """
        from napari.qt.threading import create_worker

        if then is not None:
            worker = create_worker(_job_then, job, args, then, _ignore_errors=True)
        else:
            worker = create_worker(job, *args, _ignore_errors=True)
        worker.returned.connect(on_returned)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.yielded.connect(self._on_job_step)
        worker.finished.connect(self._job_finished)
        self._worker = worker
        self._job_done = 0
        self._job_disabled = tuple(
            w for w in (getattr(self, "run_button", None), *also_disable) if w is not None
        )
        for w in self._job_disabled:
            w.enabled = False
        if getattr(self, "cancel_button", None) is not None:
            self.cancel_button.enabled = True
        self._set_progress(0, total, desc)
        return worker

    def _set_progress(self, done: int, total: int | None, desc: str | None = None):
        bar = getattr(self, "progress", None)
        if bar is None or not is_alive(bar.native):
            return
        native = bar.native
        total = int(total or 0)
        self._job_total = total
        native.setRange(0, max(total, 0))  # (0, 0): Qt's "busy" bar
        if total > 0:
            native.setValue(min(int(done), total))
        if desc is not None:
            self._job_desc = desc
        fmt = getattr(self, "_job_desc", "")
        native.setFormat(f"{fmt}: %v / %m" if total > 0 else fmt)
        native.setTextVisible(True)
        bar.visible = True

    def _on_job_step(self, value=None):
        """A job's ``yield``: advance the dock's progress bar."""
        if isinstance(value, tuple) and len(value) == 2:
            done, total = int(value[0]), int(value[1])
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            done, total = int(value), getattr(self, "_job_total", 0)
        else:
            done, total = getattr(self, "_job_done", 0) + 1, getattr(self, "_job_total", 0)
        self._job_done = done
        self._set_progress(done, total)

    def _job_finished(self, *_):
        self._worker = None
        if is_alive(self.native):
            for w in self._job_disabled:
                w.enabled = True
            if getattr(self, "cancel_button", None) is not None:
                self.cancel_button.enabled = False
            if getattr(self, "progress", None) is not None:
                self.progress.visible = False
        self._job_disabled = ()
        hook = getattr(self, "_on_finished", None)
        if hook is not None:
            hook()


def wrap_labels(container) -> None:
    """Word-wrap every :class:`magicgui.widgets.Label` in ``container`` (recursively) and let it
    take the row's width, so a long status text grows the dock in height, never in width."""
    from magicgui.widgets import ComboBox, Container, Label
    from qtpy.QtWidgets import QSizePolicy

    for w in container:
        if isinstance(w, Label):
            w.native.setWordWrap(True)
            w.native.setMinimumWidth(40)
            w.native.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        elif isinstance(w, ComboBox):
            compact_combo(w.native)
        elif isinstance(w, Container):
            wrap_labels(w)


def compact_combo(combo) -> None:
    """A QComboBox whose width does not follow its longest item (a long layer name)."""
    combo.setSizeAdjustPolicy(combo.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    combo.setMinimumContentsLength(8)


class ScrollableDock:
    """Mixin (before ``Container``) for a ``Container(scrollable=True)`` docked in napari.

    napari docks ``widget.native``; magicgui's ``native`` of a scrollable container is the
    content *inside* the scroll area, so the scroll area would be dropped and the dock would
    ask for the whole content's height. Here ``native`` is the scroll area itself and
    ``content`` the widget inside it. Call :meth:`_finish_dock` after adding the widgets.
    """

    @property
    def native(self):
        return self.root_native_widget

    @property
    def content(self):
        return scroll_content(self)

    def _finish_dock(self) -> None:
        make_scrollable(self)


def scroll_content(container):
    """The QWidget holding a scrollable container's widgets (inside its scroll area)."""
    from qtpy.QtWidgets import QScrollArea

    root = getattr(container, "root_native_widget", container.native)
    return root.widget() if isinstance(root, QScrollArea) else root


def make_scrollable(container) -> None:
    """Finish a dock: word-wrap its labels and let its scroll area (``scrollable=True``) ask
    for little height, so the main window never grows past the screen; the vertical scroll
    bar appears when the dock is shorter than its content."""
    from qtpy.QtWidgets import QScrollArea, QSizePolicy

    wrap_labels(container)
    root = getattr(container, "root_native_widget", container.native)
    if isinstance(root, QScrollArea):
        root.setFrameShape(root.Shape.NoFrame)
        root.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        root.setMinimumHeight(120)


def layer_in(viewer, layer) -> bool:
    """True when ``layer`` (by identity) is in the viewer."""
    return any(lyr is layer for lyr in viewer.layers)


def default_tracks_layer(viewer):
    """The Tracks layer a widget should work on: the selected one, else the newest."""
    from napari.layers import Tracks

    active = viewer.layers.selection.active
    if isinstance(active, Tracks):
        return active
    tracks = [lyr for lyr in viewer.layers if isinstance(lyr, Tracks)]
    return tracks[-1] if tracks else None


class FollowsTracks:
    """Mixin: keep a Tracks-layer ComboBox on what the user just did.

    A Tracks layer added to the viewer (a new linking, a file opened) or selected in the layer
    list becomes the choice; when the chosen layer is removed the newest remaining one is
    chosen; renamed layers show their new names. The widget calls :meth:`_follow_tracks` once
    and may override :meth:`_tracks_followed` (called after the choice changed by itself).
    """

    _follow_combo = None

    def _follow_tracks(self, viewer, combo) -> None:
        self._follow_viewer = viewer
        self._follow_combo = combo
        ev = viewer.layers.events
        ev.inserted.connect(self._on_tracks_inserted)
        ev.removed.connect(self._on_tracks_removed)
        ev.moved.connect(self._refresh_tracks_choices)
        viewer.layers.selection.events.active.connect(self._on_tracks_active)
        for lyr in viewer.layers:
            lyr.events.name.connect(self._refresh_tracks_choices)
        self._choose_tracks(default_tracks_layer(viewer))

    def _follow_alive(self) -> bool:
        native = getattr(self, "native", self)
        return self._follow_combo is not None and is_alive(native)

    def _choose_tracks(self, layer) -> None:
        combo = self._follow_combo
        combo.reset_choices()
        if layer is not None and combo.value is not layer:
            try:
                combo.value = layer
            except ValueError:  # not offered: not in this viewer
                return
        self._tracks_followed()

    def _tracks_followed(self) -> None:
        """Hook: the followed choice changed (or was refreshed)."""

    def _refresh_tracks_choices(self, *_):
        """New names or order in the choices; the chosen layer stays chosen (magicgui would
        fall back to the first choice when the chosen layer's name changed)."""
        if not self._follow_alive():
            return
        combo = self._follow_combo
        current = combo.value
        with combo.changed.blocked():
            combo.reset_choices()
            if current is not None and layer_in(self._follow_viewer, current):
                combo.value = current
        if combo.value is not current:
            combo.changed.emit(combo.value)

    def _on_tracks_inserted(self, event):
        from napari.layers import Tracks

        if not self._follow_alive():
            return
        layer = getattr(event, "value", None)
        if layer is not None:
            layer.events.name.connect(self._refresh_tracks_choices)
        if isinstance(layer, Tracks):
            self._choose_tracks(layer)
        else:
            self._refresh_tracks_choices()

    def _on_tracks_removed(self, event):
        if not self._follow_alive():
            return
        gone = getattr(event, "value", None)
        combo = self._follow_combo
        current = combo.value
        if current is None or current is gone:
            self._choose_tracks(default_tracks_layer(self._follow_viewer))
        else:
            combo.reset_choices()

    def _on_tracks_active(self, event):
        from napari.layers import Tracks

        if not self._follow_alive():
            return
        layer = getattr(event, "value", None)
        if isinstance(layer, Tracks) and self._follow_combo.value is not layer:
            self._choose_tracks(layer)


_DOCKS: weakref.WeakSet = weakref.WeakSet()


def register_dock(widget) -> None:
    """Remember a dock widget (it needs a ``_viewer``) for :func:`docks_of`."""
    _DOCKS.add(widget)


def docks_of(viewer, kind) -> list:
    """The live registered docks of type ``kind`` on ``viewer``."""
    out = []
    for d in list(_DOCKS):
        if not isinstance(d, kind):
            continue
        try:
            alive = is_alive(d.native if hasattr(type(d), "native") else d)
        except RuntimeError:  # the Qt side is gone
            alive = False
        if alive and getattr(d, "_viewer", None) is viewer:
            out.append(d)
    return out
