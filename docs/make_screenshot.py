"""Make the README screenshot: the demo in a real napari window (run under xvfb-run).

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshot.py docs/screenshot.png
"""

import sys
import time

import napari
from qtpy.QtWidgets import QApplication

from napari_step._napari.demo import open_demo


def main(path):
    viewer = napari.Viewer(title="napari-step demo", show=True)
    viewer.window._qt_window.resize(1600, 1000)
    handles = open_demo(viewer)
    t0 = time.time()
    while not handles.done and time.time() - t0 < 600:
        QApplication.processEvents()
        time.sleep(0.05)
    if not handles.done:
        raise SystemExit(f"demo did not finish: {handles.errors}")
    viewer.dims.set_current_step(0, 150)
    layer = handles.tracks_layer
    tids = sorted(set(layer.data[:, 0].astype(int)))
    handles.step_widget.set_current_track(tids[3], layer=layer)
    for _ in range(40):
        QApplication.processEvents()
        time.sleep(0.05)
    viewer.screenshot(path, canvas_only=False, flash=False)
    print("wrote", path)
    viewer.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png")
