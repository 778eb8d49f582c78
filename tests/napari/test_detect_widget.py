"""Detect & link on a rendered movie (against its truth) and on the real bulk-water clip:
suggestions, the preview in a worker, the mass histogram, progress in the dock, relinking that
replaces its previous result, then STEP on the linked tracks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from napari.layers import Points, Tracks

CLIP = Path(__file__).resolve().parents[1] / "data" / "bulk_water_clip.npz"


def _settle(qtbot, widget, timeout=60_000):
    """Wait until the widget's suggestion and preview workers are done."""
    qtbot.waitUntil(lambda: not widget._suggest_busy and not widget._preview_busy, timeout=timeout)
    qtbot.wait(20)


@pytest.fixture
def detect_widget(viewer, small_sample, qtbot):
    from napari_step._napari.detect_widget import DetectLinkWidget

    movie, _ = small_sample
    image = viewer.add_image(
        movie,
        name="movie",
        scale=(0.05, 0.1, 0.1),
        metadata={"pixel_size_um": 0.1, "frame_interval_s": 0.05},
    )
    widget = DetectLinkWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.image.value is image
    _settle(qtbot, widget)
    return widget


@pytest.fixture
def clip_viewer(viewer):
    """The committed real clip (bulk water, 60 x 200 x 300, dark colloids) as a user opens it."""
    movie = np.load(CLIP)["movie"]
    viewer.add_image(
        movie,
        name="bulk water",
        scale=(1 / 24, 100 / 285, 100 / 285),
        metadata={"pixel_size_um": 100 / 285, "frame_interval_s": 1 / 24},
    )
    return viewer


def _match_truth(table: pd.DataFrame, truth: pd.DataFrame, tol=1.5) -> pd.DataFrame:
    """Each linked point with the true particle it sits on (same frame, within ``tol`` px)."""
    m = table.merge(truth, on="frame", suffixes=("", "_true"))
    m = m[np.hypot(m["y"] - m["y_true"], m["x"] - m["x_true"]) < tol]
    return m


def test_preview_follows_frame_and_parameters(detect_widget, viewer, small_sample, qtbot):
    import threading

    movie, truth = small_sample
    w = detect_widget
    assert not w.invert.value and w.diameter.value in (7, 9)  # suggested: bright spots
    with qtbot.waitSignal(w.preview_updated, timeout=10_000) as blocker:
        viewer.dims.set_current_step(0, 17)
    pts = [lyr for lyr in viewer.layers if isinstance(lyr, Points)]
    assert len(pts) == 1 and pts[0] is w._preview_layer
    assert blocker.args == [len(pts[0].data)] == [(truth["frame"] == 17).sum()]
    assert np.all(pts[0].data[:, 0] == 17)  # points sit on the shown frame
    np.testing.assert_allclose(pts[0].scale, viewer.layers["movie"].scale)

    # the layer is only ever changed in the GUI thread (the detection runs in a worker)
    threads = []
    pts[0].events.data.connect(lambda e: threads.append(threading.current_thread()))
    with qtbot.waitSignal(w.preview_updated, timeout=10_000):
        viewer.dims.set_current_step(0, 40)
    assert np.all(pts[0].data[:, 0] == 40)
    assert threads and all(t is threading.main_thread() for t in threads)
    # the min. mass only filters the frame's features: the answer is immediate
    with qtbot.waitSignal(w.preview_updated, timeout=1000) as blocker:
        w.minmass.value = 1e7  # nothing is that bright
    assert blocker.args == [0] and len(pts[0].data) == 0
    assert len([lyr for lyr in viewer.layers if isinstance(lyr, Points)]) == 1  # reused


def test_detect_link_and_step_end_to_end(detect_widget, viewer, small_sample, wait_worker, qtbot):
    """The Detect button's method, then the Run button's method, on a real movie."""
    from scipy.stats import spearmanr

    from napari_step._napari.step_widget import StepAnalysisWidget

    movie, truth = small_sample
    before = movie.copy()
    detect_widget.memory.value = 2
    detect_widget.min_length.value = 20
    added = []
    detect_widget.tracks_added.connect(added.append)
    assert detect_widget._preview_layer is not None
    worker = detect_widget.detect()
    assert worker is not None and detect_widget.running
    assert not detect_widget.progress.native.isHidden()  # progress in the dock itself
    wait_worker(detect_widget)
    qtbot.waitUntil(lambda: len(added) == 1, timeout=5000)  # a turn after the preview went
    assert detect_widget.progress.native.isHidden()
    np.testing.assert_array_equal(viewer.layers["movie"].data, before)  # image untouched
    # the preview circles do not stay on top of the tracks
    assert not any(isinstance(lyr, Points) for lyr in viewer.layers)
    assert not detect_widget.preview.value

    # detections per frame close to the truth (12 particles in every frame)
    det = detect_widget._detections
    per_frame = det.groupby("frame").size().reindex(range(movie.shape[0]), fill_value=0)
    n_true = truth.groupby("frame").size()
    assert (np.abs(per_frame - n_true) <= 0.1 * n_true).mean() >= 0.95

    # a new Tracks layer, linked tracks recover the true ones
    assert len(added) == 1 and isinstance(added[0], Tracks)
    layer = added[0]
    np.testing.assert_allclose(layer.scale, [0.05, 0.1, 0.1])
    assert layer.metadata["pixel_size_um"] == 0.1
    from napari_step._napari._layers import layer_table

    table = layer_table(layer)
    assert len(table) <= len(det)  # no invented points: gaps stay gaps
    m = _match_truth(table, truth)
    recovered = 0
    for tid, g in m.groupby("track_id_true"):
        best = g.groupby("track_id").size().max()
        recovered += best >= 0.8 * movie.shape[0]
    assert recovered >= 0.8 * truth["track_id"].nunique()

    # STEP on all linked tracks through the widget
    step = StepAnalysisWidget(viewer)
    viewer.window.add_dock_widget(step)
    step.tracks.value = layer
    assert step.pixel_size.value == pytest.approx(0.1)  # pre-filled from the movie
    assert step.frame_interval.value == pytest.approx(0.05)
    step.mode.value = "all"
    step.min_length.value = 20
    assert step.run() is not None
    wait_worker(step)
    feats = layer.features
    for c in ("step_d", "tamsd_d", "step_log10_d", "tamsd_log10_d", "step_log10_d_color"):
        assert c in feats.columns
    assert layer.color_by == "step_log10_d_color"
    res = layer_table(layer)
    m = _match_truth(res, truth)
    ok = np.isfinite(m["step_log10_d"])
    assert ok.mean() > 0.9
    d_true_um = m["d_true"] * 0.1**2 / 0.05  # px^2/frame -> um^2/s
    rho = spearmanr(m.loc[ok, "step_log10_d"], np.log10(d_true_um[ok])).statistic
    assert rho > 0.6
    slow = m.loc[ok & (m["d_true"] < 0.1), "step_log10_d"].median()
    fast = m.loc[ok & (m["d_true"] > 0.1), "step_log10_d"].median()
    assert fast - slow > 0.8  # true difference: log10(16) = 1.2 decades
    assert abs(slow - np.log10(0.05 * 0.01 / 0.05)) < 0.4
    assert abs(fast - np.log10(0.8 * 0.01 / 0.05)) < 0.4

    # relinking keeps the analysed result and adds the new one beside it
    relinked = _relink(detect_widget, wait_worker, qtbot)
    assert isinstance(relinked, Tracks) and relinked is not layer
    assert layer in viewer.layers and relinked in viewer.layers


def test_tracks_layer_is_built_in_the_worker(
    detect_widget, viewer, wait_worker, make_napari_viewer, monkeypatch
):
    """The linked tracks' layer object is made in the worker thread (seconds at 100 000
    tracks) and only added in the GUI thread; it is the layer ``add_tracks`` makes."""
    import threading

    from napari_step._napari._detection_jobs import link_detections, tracks_layer_kwargs
    from napari_step.tracks import to_napari

    built, inserted = [], []
    real_init = Tracks.__init__

    def spy(self, *args, **kwargs):  # the real constructor, noting its thread
        built.append(threading.current_thread())
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Tracks, "__init__", spy)
    viewer.layers.events.inserted.connect(
        lambda e: inserted.append((e.value, threading.current_thread()))
    )
    w = detect_widget
    w.preview.value = False
    w.memory.value, w.min_length.value = 2, 10
    w.detect()
    wait_worker(w)
    monkeypatch.undo()
    layer = w._last_result
    assert isinstance(layer, Tracks) and layer in viewer.layers
    assert len(built) == 1 and built[0] is not threading.main_thread()
    assert inserted == [(layer, threading.main_thread())]

    image, det, lnk = viewer.layers["movie"], w.detection_params(), w.linking_params()
    data, feats = to_napari(link_detections(w._detections, lnk))
    ref = make_napari_viewer().add_tracks(
        data, features=feats, **tracks_layer_kwargs(image, det, lnk)
    )
    got_data, got, _ = layer.as_layer_data_tuple()
    ref_data, want, _ = ref.as_layer_data_tuple()
    np.testing.assert_array_equal(got_data, ref_data)
    pd.testing.assert_frame_equal(got.pop("features"), want.pop("features"))
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_equal(got[key], want[key], err_msg=key)
    np.testing.assert_array_equal(layer.track_colors, ref.track_colors)
    assert layer.name == "movie tracks" and "gaps" in w.status.value


def test_cancel_detection_adds_nothing(detect_widget, viewer, wait_worker, notes):
    n_layers = len(viewer.layers)
    worker = detect_widget.detect()
    assert worker is not None
    assert detect_widget.detect() is None  # a second start is refused
    assert any(lvl == "warning" and "already running" in m for lvl, m in notes)
    detect_widget.cancel()
    wait_worker(detect_widget)
    assert not any(isinstance(lyr, Tracks) for lyr in viewer.layers)
    assert len(viewer.layers) == n_layers
    assert any("cancelled" in m for _, m in notes)
    assert detect_widget.detect_button.enabled and not detect_widget.cancel_button.enabled


def _relink(widget, wait_worker, qtbot):
    """Click "Link again" and wait: the Tracks layer it added (None if none)."""
    added = []
    widget.tracks_added.connect(added.append)
    try:
        assert widget.relink() is not None and widget.running
        assert not widget.relink_button.enabled and not widget.detect_button.enabled
        wait_worker(widget)
        qtbot.waitUntil(lambda: bool(added) or "no track" in widget.status.value, timeout=5000)
    finally:
        widget.tracks_added.disconnect(added.append)
    assert widget.relink_button.enabled and widget.detect_button.enabled
    return added[0] if added else None


def test_relink_replaces_the_previous_result(detect_widget, viewer, wait_worker, notes, qtbot):
    detect_widget.preview.value = False
    detect_widget.min_length.value = 1
    detect_widget.detect()
    wait_worker(detect_widget)
    first = viewer.layers[-1]
    assert isinstance(first, Tracks) and detect_widget.relink_button.enabled
    detect_widget.min_length.value = 1000  # longer than the movie: nothing survives
    assert _relink(detect_widget, wait_worker, qtbot) is None
    assert first in viewer.layers  # a failed relink changes nothing
    assert notes[-1][0] == "warning" and "no track is long enough" in notes[-1][1]
    detect_widget.min_length.value = 30
    second = _relink(detect_widget, wait_worker, qtbot)
    assert isinstance(second, Tracks) and second is not first
    assert np.unique(second.data[:, 0], return_counts=True)[1].min() >= 30
    # not stacked: one Tracks layer, the same name, in the same place
    tracks = [lyr for lyr in viewer.layers if isinstance(lyr, Tracks)]
    assert tracks == [second] and second.name == first.name == "movie tracks"
    assert "replaced" in detect_widget.status.value


def test_bad_image_choices_notify(viewer, notes):
    from napari_step._napari.detect_widget import DetectLinkWidget

    widget = DetectLinkWidget(viewer)
    assert widget.detect() is None  # no image at all
    viewer.add_image(np.zeros((2, 3, 8, 8), np.uint16), name="4d")
    widget.reset_choices()
    assert widget.detect() is None  # wrong dimensionality
    assert [lvl for lvl, _ in notes] == ["error", "error"]
    assert "Image layer" in notes[0][1] and "dimensions" in notes[1][1]


def test_single_frame_image(viewer, small_sample, wait_worker, qtbot):
    """A 2-D image is one frame: preview and detection work, tracks get a time axis."""
    from napari_step._napari.detect_widget import DetectLinkWidget

    movie, truth = small_sample
    viewer.add_image(movie[5], name="frame 5", scale=(0.1, 0.1))
    widget = DetectLinkWidget(viewer)
    _settle(qtbot, widget)
    assert widget._preview_layer.ndim == 2
    assert len(widget._preview_layer.data) == (truth["frame"] == 5).sum()
    widget.min_length.value = 1
    widget.detect()
    wait_worker(widget)
    layer = viewer.layers[-1]
    assert isinstance(layer, Tracks) and layer.data.shape[1] == 4
    assert np.all(layer.data[:, 1] == 0)
    np.testing.assert_allclose(layer.scale, [1.0, 0.1, 0.1])


# ------------------------------------------------------------------ the real clip
def test_defaults_fail_and_suggestions_find_the_particles(clip_viewer, qtbot):
    """Issue 14 item 6: the defaults (diameter 7, min. mass 400, bright) find almost nothing on
    the real movie; the suggested parameters find the ~110 colloids of the 200 x 300 clip."""
    from napari_step._napari.detect_widget import DetectLinkWidget
    from napari_step.pipeline import DetectionParams
    from napari_step.tracks import locate_frame

    frame = np.load(CLIP)["movie"][30]
    d = DetectionParams()
    assert len(locate_frame(frame, 30, d.diameter, d.minmass, None, d.invert)) <= 5

    widget = DetectLinkWidget(clip_viewer)
    clip_viewer.window.add_dock_widget(widget)
    with qtbot.waitSignal(widget.suggested, timeout=60_000) as blocker:
        pass
    hint = blocker.args[0]
    _settle(qtbot, widget)
    assert widget.invert.value is True  # dark colloids on a bright background
    assert widget.diameter.value == hint.diameter and 9 <= hint.diameter <= 13
    assert widget.minmass.value == pytest.approx(hint.minmass)
    n = len(widget._preview_layer.data)
    assert 85 <= n <= 140, n
    assert "suggested" in widget.status.value and "dark" in widget.status.value
    # the histogram shows this frame's masses with the min. mass marked
    ax = widget.histogram.figure.axes[0]
    assert ax.lines[0].get_xdata()[0] == pytest.approx(widget.minmass.value)
    assert sum(p.get_height() for p in ax.patches) == len(hint.features)
    # clicking the histogram sets the min. mass; the preview follows at once
    with qtbot.waitSignal(widget.preview_updated, timeout=1000) as blocker:
        widget._set_minmass(300.0)
    assert blocker.args[0] < n
    ax = widget.histogram.figure.axes[0]
    assert ax.lines[0].get_xdata()[0] == pytest.approx(300.0)


def test_detect_and_link_the_real_clip(clip_viewer, qtbot, wait_worker):
    from napari_step._napari.detect_widget import DetectLinkWidget

    widget = DetectLinkWidget(clip_viewer)
    clip_viewer.window.add_dock_widget(widget)
    _settle(qtbot, widget)
    steps = []
    worker = widget.detect()
    worker.yielded.connect(steps.append)
    wait_worker(widget, timeout=120_000)
    assert steps and steps[-1] == (60, 60) and len(steps) <= 61  # (frames done, frames)
    det = widget._detections
    per_frame = det.groupby("frame").size()
    assert len(per_frame) == 60 and per_frame.between(85, 140).all()
    layer = clip_viewer.layers[-1]
    assert isinstance(layer, Tracks) and layer.metadata["detection"]["invert"] is True
    lengths = np.unique(layer.data[:, 0], return_counts=True)[1]
    assert len(lengths) >= 60 and np.median(lengths) >= 40


def test_preview_goes_with_its_image(clip_viewer, qtbot):
    """The preview layer never outlives its image, wherever it sits in the layer list."""
    from napari_step._napari.detect_widget import DetectLinkWidget

    widget = DetectLinkWidget(clip_viewer)
    _settle(qtbot, widget)
    pts = widget._preview_layer
    assert pts is not None and pts in clip_viewer.layers
    clip_viewer.layers.remove(clip_viewer.layers["bulk water"])
    assert pts not in clip_viewer.layers and widget._preview_layer is None
    assert len(clip_viewer.layers) == 0

    # again with the preview moved below its image
    image = clip_viewer.add_image(np.load(CLIP)["movie"], name="again")
    widget.preview.value = True
    _settle(qtbot, widget)
    qtbot.waitUntil(lambda: widget._preview_layer is not None, timeout=30_000)
    pts = widget._preview_layer
    clip_viewer.layers.move(clip_viewer.layers.index(pts), 0)
    clip_viewer.layers.remove(image)
    assert list(clip_viewer.layers) == []


def test_dock_scrolls_wraps_and_explains(detect_widget):
    from magicgui.widgets import Label
    from qtpy.QtWidgets import QDockWidget, QScrollArea

    w = detect_widget
    assert isinstance(w.native, QScrollArea)  # what napari docks: the scroll area
    assert isinstance(w.native.parentWidget(), QDockWidget)
    before = w.native.sizeHint().width()
    w.status.value = "a long status text " * 60
    assert w.native.sizeHint().width() <= max(before, 500)  # wraps, never widens the dock
    assert w.status.native.wordWrap()
    for control in w:
        if isinstance(control, Label):
            continue
        assert control.tooltip, f"{control.label or control.name} has no tooltip"
    assert w.histogram.toolTip()
