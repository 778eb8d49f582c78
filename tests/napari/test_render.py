"""What napari actually draws: slow and fast tracks in clearly different colours, unanalysed
tracks grey and visible. Needs OpenGL: ``NAPARI_STEP_RENDER_TESTS=1 xvfb-run -a pytest -m render``.
"""

from __future__ import annotations

import numpy as np
import pytest


def _screen_px(viewer, world_yx, shot_shape):
    """Canvas pixel (row, col) of a world (y, x) position in a 2-D view."""
    native = viewer.window._qt_viewer.canvas.native
    ratio = shot_shape[1] / native.width()
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    cy, cx = np.asarray(camera.center)[-2:]
    zoom = camera.zoom
    row = ((world_yx[0] - cy) * zoom + native.height() / 2) * ratio
    col = ((world_yx[1] - cx) * zoom + native.width() / 2) * ratio
    return int(round(row)), int(round(col))


def _head_colour(shot, rc, half=4):
    """The most saturated colour near a pixel (the track head drawn on black)."""
    r, c = rc
    win = shot[max(r - half, 0) : r + half + 1, max(c - half, 0) : c + half + 1, :3].reshape(-1, 3)
    win = win.astype(float) / 255
    return win[np.argmax(win.sum(axis=1))]


@pytest.mark.render
def test_slow_and_fast_tracks_are_drawn_in_different_colours(make_napari_viewer, wait_worker):
    from napari_step._napari._colour import colour_values, d_colormap
    from napari_step._napari._sample_data import sample_data
    from napari_step._napari.step_widget import StepAnalysisWidget

    viewer = make_napari_viewer(show=True)
    (movie, mkw, _), (tdata, tkw, _) = sample_data()
    viewer.add_image(movie, **mkw).visible = False  # tracks on black: colours stay pure
    layer = viewer.add_tracks(tdata, **tkw)
    layer.tail_width = 6
    step = StepAnalysisWidget(viewer)
    step.tracks.value = layer
    step.mode.value = "ids"
    step.track_ids.value = "0-27"  # tracks 28 and 29 stay unanalysed
    step.run()
    wait_worker(step, timeout=120_000)
    frame = 12  # before any switch: even tracks slow, odd tracks fast
    viewer.dims.set_current_step(0, frame)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)

    ids = np.round(layer.data[:, 0]).astype(int)
    here = np.round(layer.data[:, 1]).astype(int) == frame
    colours = {}
    for tid in range(30):
        row = layer.data[(ids == tid) & here][0]
        world = layer.data_to_world(row[1:])[-2:]
        colours[tid] = _head_colour(shot, _screen_px(viewer, world, shot.shape))
    slow = np.array([colours[t] for t in range(0, 28, 2)])
    fast = np.array([colours[t] for t in range(1, 28, 2)])
    grey = np.array([colours[28], colours[29]])

    # what the colour map says these D values should look like
    cmap = d_colormap()
    feats = layer.features
    ref = {}
    for name, sel in (("slow", ids % 2 == 0), ("fast", ids % 2 == 1)):
        v = np.nanmedian(feats["step_log10_d"][sel & here & (ids < 28)])
        ref[name] = cmap.map(colour_values([v], -3, 1))[0, :3]
    assert np.linalg.norm(ref["slow"] - ref["fast"]) > 0.15

    s, f = np.median(slow, axis=0), np.median(fast, axis=0)
    assert np.linalg.norm(s - f) > 0.12, (s, f)
    # each group is drawn closer to its own expected colour than to the other one's
    for got, own, other in ((slow, "slow", "fast"), (fast, "fast", "slow")):
        d_own = np.linalg.norm(got - ref[own], axis=1)
        d_other = np.linalg.norm(got - ref[other], axis=1)
        assert (d_own < d_other).mean() >= 0.8
    # unanalysed tracks: visible, neutral grey
    assert np.all(grey.max(axis=1) > 0.3)
    assert np.all(grey.max(axis=1) - grey.min(axis=1) < 0.08)
