"""Make the README screenshot: a real movie analysed in a real napari window, as a user does it.

Decodes the first frames of trackpy's bright-field bulk-water movie, saves them as a TIFF stack,
opens it with napari's own reader, docks the plugin's widgets from napari's plugin menu, detects
with the parameters the widget suggests (``--minmass`` for diameter 11, dark particles and a
given min. mass instead), links, runs STEP on all tracks of >= 20 points
(0.351 um per pixel, 24 frames per second) and saves a screenshot of the whole window. Run it on
a virtual display::

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1100x24" \\
        python docs/make_screenshot.py ../shared/data/bulk-water.mov docs/screenshot.png
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

PIXEL_SIZE_UM = 100 / 285  # as published with the movie
FPS = 24.0


def decode(path: str, n_frames: int) -> np.ndarray:
    """The first ``n_frames`` frames of a movie as an 8-bit grey (T, Y, X) array (PyAV)."""
    import av

    frames = []
    with av.open(path) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="gray"))
            if len(frames) >= n_frames:
                break
    return np.stack(frames)


def wait(app, condition, timeout: float, what: str) -> None:
    t0 = time.time()
    while not condition():
        if time.time() - t0 > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        app.processEvents()
        time.sleep(0.05)


def settle(app, seconds: float = 1.0) -> None:
    t0 = time.time()
    while time.time() - t0 < seconds:
        app.processEvents()
        time.sleep(0.05)


def analyse(viewer, app, tif: Path, minmass: float, min_length: int):
    """Open the TIFF, detect and link, run STEP; returns (detect, step, tracks layer)."""
    viewer.open(str(tif), plugin="napari")
    _, detect = viewer.window.add_plugin_dock_widget("napari-step", "Detect & link")
    _, step = viewer.window.add_plugin_dock_widget("napari-step", "STEP analysis")
    detect.image.value = viewer.layers[0]
    settle(app, 0.5)  # the widget suggests parameters from the frame (in a worker)
    wait(app, lambda: not getattr(detect, "_suggest_busy", False), 120, "the suggestion")
    print(
        f"suggested: diameter {detect.diameter.value}, min. mass {detect.minmass.value}, "
        f"dark particles {detect.invert.value}"
    )
    if minmass is not None:  # a user's own choice instead of the suggestion
        detect.diameter.value = 11
        detect.invert.value = True
        detect.minmass.value = minmass
    detect.min_length.value = min_length
    added = []
    detect.tracks_added.connect(added.append)
    t0 = time.time()
    detect.detect()
    wait(app, lambda: added and not detect.running, 600, "detection and linking")
    print(f"detect & link: {time.time() - t0:.1f} s, {len(added[-1].data)} points")
    step.fps.value = FPS
    step.pixel_size.value = PIXEL_SIZE_UM
    step.mode.value = "all"
    step.min_length.value = min_length
    step.subtract_drift.value = True  # the field drifts; the walkthrough ticks it
    done = []
    step.analysis_done.connect(done.append)
    t0 = time.time()
    step.run()
    wait(app, lambda: done and not step.running, 900, "the STEP analysis")
    print(f"STEP: {time.time() - t0:.1f} s; {step.status.value}")
    layer = done[-1]
    feats = layer.features.assign(track_id=layer.data[:, 0].astype(int))
    med = feats.groupby("track_id")["step_d"].median().median()
    meta = layer.metadata["napari_step"]
    print(
        f"model {meta['model']}, frame step {meta['frame_step']}; median of track medians {med:.3f}"
    )
    return detect, step, layer


def _share_height(viewer, *docks) -> None:
    """Give the right-hand docks readable heights (a user drags the splitters the same way)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    found, sizes = [], []
    for widget, height in docks:
        w = widget.native if hasattr(widget, "native") else widget
        while w is not None and not isinstance(w, QDockWidget):
            w = w.parentWidget()
        if w is not None:
            found.append(w)
            sizes.append(height)
    viewer.window._qt_window.resizeDocks(found, sizes, Qt.Orientation.Vertical)


def main(movie: str, out: str, n_frames: int, minmass, min_length: int) -> None:
    import napari
    import tifffile
    from qtpy.QtWidgets import QApplication

    frames = decode(movie, n_frames)
    with tempfile.TemporaryDirectory() as tmp:
        tif = Path(tmp) / "bulk-water.tif"
        tifffile.imwrite(tif, frames)
        viewer = napari.Viewer(title="napari-step: bulk water (trackpy)", show=True)
        app = QApplication.instance()
        viewer.window._qt_window.resize(1600, 1060)
        detect, step, layer = analyse(viewer, app, tif, minmass, min_length)
    table = step.open_table_dock()
    plot = step.open_plot_dock()  # tabbed with the table, shown in front
    _share_height(viewer, (detect, 230), (step, 430), (plot, 330))
    lengths = np.bincount(np.round(layer.data[:, 0]).astype(int))
    step.set_current_track(int(np.argmax(lengths)), layer=layer)
    viewer.dims.set_current_step(0, n_frames // 2)
    viewer.layers.selection.active = layer
    settle(app, 2.0)
    viewer.screenshot(out, canvas_only=False, flash=False)
    size = viewer.window._qt_window.size()
    print(
        f"wrote {out} (window {size.width()} x {size.height()}); "
        f"colour range {layer.metadata['napari_step']['colour_range']}, "
        f"{table.model.rowCount()} tracks in the table, plot track {plot.track}"
    )
    viewer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("movie", nargs="?", default="../shared/data/bulk-water.mov")
    p.add_argument("out", nargs="?", default="docs/screenshot.png")
    p.add_argument("--frames", type=int, default=150)
    p.add_argument(
        "--minmass",
        type=float,
        default=None,
        help="detect with diameter 11, dark particles and this min. mass instead "
        "of the widget's suggestion",
    )
    p.add_argument("--min-length", type=int, default=20)
    a = p.parse_args()
    main(a.movie, a.out, a.frames, a.minmass, a.min_length)
