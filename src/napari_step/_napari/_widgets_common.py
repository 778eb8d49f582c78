"""Small helpers shared by the dock widgets (Qt and napari are available here)."""

from __future__ import annotations

from magicgui.widgets import FloatSpinBox

__all__ = [
    "BackgroundJob",
    "float_box",
    "layer_choices",
    "connect_layer_list",
    "is_alive",
    "unwrap_viewer",
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


def float_box(label: str, value: float, min: float, max: float, step: float,
              decimals: int = 4, tooltip: str | None = None) -> FloatSpinBox:
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


class BackgroundJob:
    """Mixin for a dock widget that runs one long job at a time in a napari ``thread_worker``.

    The widget supplies ``_on_error(exc)``, ``_on_aborted()`` and ``_on_finished()``; the job
    reports progress through napari's progress bar and can be cancelled.
    """

    _worker = None

    @property
    def running(self) -> bool:
        return self._worker is not None

    def cancel(self, *_):
        if self._worker is not None:
            self._worker.quit()

    def _start_job(self, job, *args, total: int, desc: str, on_returned):
        """Create (not start) the worker for ``job(*args)`` wired to this widget's handlers."""
        from napari.qt.threading import create_worker

        worker = create_worker(job, *args, _progress={"total": total, "desc": desc},
                               _ignore_errors=True)
        worker.returned.connect(on_returned)
        worker.errored.connect(self._on_error)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        return worker
