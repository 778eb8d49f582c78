"""Make the README pictures of the diffusive states: tracks coloured by state with the legend
and the D-alpha tab, in a real napari window, as a user gets them.

Simulates tracks of the AnDi-2 phenomenological worlds with the package's own simulators (immobile
traps, confinement in compartments, free diffusion, and diffusion switching to directed motion),
one world per quarter of a 520 x 520 px field, opens them as a Tracks layer, docks the plugin's
STEP widget from napari's plugin menu, analyses every track with change points, alpha(t) and
states (0.16 um pixels, 20 frames per second), colours the tracks by state and shows the D-alpha
tab. Two pictures of the whole window:

- ``states_dalpha.png``: per-track D-alpha points, one track picked (ringed, outlined);
- ``states_segments_lasso.png``: one point per segment, a lasso around the immobile segments
  (their tracks outlined in the canvas and chosen in the STEP widget).

Run it on a virtual display::

    QT_QPA_PLATFORM=xcb xvfb-run -a -s "-screen 0 1600x1100x24" \\
        python docs/make_state_screenshots.py docs/images
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

PIXEL_SIZE_UM = 0.16
FPS = 20.0
N_FRAMES = 200
QUARTER = 260.0  # px: each world gets a 260 x 260 px quarter of the field


def worlds(seed: int = 4) -> np.ndarray:
    """napari Tracks data (track_id, t, y, x) of the four worlds, one per quarter."""
    from napari_step.simulate import andi2_like, multi_state

    rng = np.random.default_rng(seed)
    parts = [  # more noise than the challenge's (0.12 px): trapped spots show as blobs
        andi2_like("immobile_traps", 14, N_FRAMES, sigma=0.6, rng=rng).positions,
        andi2_like("confinement", 14, N_FRAMES, rng=rng).positions,
        andi2_like("single_state", 10, N_FRAMES, rng=rng).positions,
        multi_state(
            10, N_FRAMES, d=(0.3, 0.3), speed=(0.0, 1.0), transition=0.02, sigma=0.12, rng=rng
        ).positions,
    ]
    rows, tid = [], 0
    for k, pos in enumerate(parts):
        corner = QUARTER * np.array([k // 2, k % 2], float)
        if k >= 2:  # free and directed tracks start at 0: spread them over the quarter
            pos = pos - pos[:, :1] + rng.uniform(0.25, 0.75, (len(pos), 1, 2)) * QUARTER
        for p in pos:
            rows.append(np.column_stack([np.full(N_FRAMES, tid), np.arange(N_FRAMES), p + corner]))
            tid += 1
    return np.concatenate(rows)


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


def analyse(viewer, app, data):
    """Add the tracks, dock the STEP widget, analyse; returns (step widget, layer)."""
    layer = viewer.add_tracks(data, name="AnDi-2 worlds", tail_length=N_FRAMES, head_length=0)
    _, step = viewer.window.add_plugin_dock_widget("napari-step", "STEP analysis")
    step.tracks.value = layer
    step.fps.value = FPS
    step.pixel_size.value = PIXEL_SIZE_UM
    step.segments.value = True
    step.alpha.value = True
    step.states.value = True
    step.mode.value = "all"
    done = []
    step.analysis_done.connect(done.append)
    t0 = time.time()
    step.run()
    wait(app, lambda: done and not step.running, 900, "the STEP analysis")
    print(f"STEP: {time.time() - t0:.1f} s; {step.status.value}")
    step.colour_by.value = "state"
    return step, layer


def _dock_of(widget):
    from qtpy.QtWidgets import QDockWidget

    w = widget.native if hasattr(widget, "native") else widget
    while w is not None and not isinstance(w, QDockWidget):
        w = w.parentWidget()
    return w


def arrange(viewer, step, plot) -> None:
    """A wider right-hand column and a tall plot dock (a user drags the splitters the same
    way); wider tails, the whole field in view."""
    from qtpy.QtCore import Qt

    window = viewer.window._qt_window
    docks = [_dock_of(step), _dock_of(plot)]
    window.resizeDocks(docks, [560, 560], Qt.Orientation.Horizontal)
    window.resizeDocks(docks, [300, 660], Qt.Orientation.Vertical)
    viewer.reset_view()


def save(viewer, app, path: Path, max_kb: int = 400) -> None:
    """Screenshot of the whole window, scaled down until the PNG is under ``max_kb``."""
    from PIL import Image
    from qtpy.QtWidgets import QWidget

    settle(app, 1.0)
    for toast in viewer.window._qt_window.findChildren(QWidget):
        if type(toast).__name__ == "NapariQtNotification":
            toast.close()  # the "analysis done" message would cover the canvas
    settle(app, 0.5)
    img = Image.fromarray(viewer.screenshot(canvas_only=False, flash=False))
    scale = 1.0
    while True:
        out = (
            img
            if scale == 1.0
            else img.resize(
                (int(img.width * scale), int(img.height * scale)), Image.Resampling.LANCZOS
            )
        )
        out.convert("RGB").save(path, optimize=True)
        if path.stat().st_size <= max_kb * 1024 or scale < 0.5:
            break
        scale *= 0.9
    print(f"wrote {path} ({out.width} x {out.height}, {path.stat().st_size // 1024} KB)")


def main(out_dir: str) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_step._napari._colour_bar import ColourBarWidget
    from napari_step._napari._widgets_common import docks_of

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(title="napari-step: diffusive states", show=True)
    app = QApplication.instance()
    viewer.window._qt_window.resize(1600, 1060)
    step, layer = analyse(viewer, app, worlds())
    plot = step.open_plot_dock()
    plot.tabs.setCurrentIndex(3)  # D-alpha
    bars = docks_of(viewer, ColourBarWidget)
    print(f"colour-bar docks: {len(bars)}; legend: {bars and bars[0].legend is not None}")
    viewer.dims.set_current_step(0, N_FRAMES - 1)
    viewer.layers.selection.active = layer
    layer.tail_width = 4
    settle(app, 0.5)
    arrange(viewer, step, plot)
    settle(app, 0.5)
    viewer.reset_view()  # the canvas has its final size now

    step.set_current_track(20)  # a confined track: its point ringed, its path outlined
    save(viewer, app, out / "states_dalpha.png")

    panel = plot.dalpha
    panel.mode = "per segment"
    pts = panel.points
    immobile = pts[pts["state"] == 0]
    lo, hi = immobile["log10_d"].min() - 0.2, immobile["log10_d"].max() + 0.2
    a0, a1 = immobile["alpha"].min() - 0.1, immobile["alpha"].max() + 0.1
    chosen = panel.lasso_select([(a0, lo), (a1, lo), (a1, hi), (a0, hi)])
    print(f"{len(pts)} segments; lasso around {len(immobile)} immobile ones: tracks {chosen}")
    panel.ax.plot([a0, a1, a1, a0, a0], [lo, lo, hi, hi, lo], color="0.2", lw=1.0, ls="--")
    panel.canvas.draw_idle()
    save(viewer, app, out / "states_segments_lasso.png")
    viewer.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out_dir", nargs="?", default="docs/images")
    main(p.parse_args().out_dir)
