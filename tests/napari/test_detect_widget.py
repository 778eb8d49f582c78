"""Detect & link on a real rendered movie, then STEP on the linked tracks, against the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from napari.layers import Points, Tracks


@pytest.fixture
def detect_widget(viewer, small_sample):
    from napari_step._napari.detect_widget import DetectLinkWidget

    movie, _ = small_sample
    image = viewer.add_image(movie, name="movie", scale=(0.05, 0.1, 0.1),
                             metadata={"pixel_size_um": 0.1, "frame_interval_s": 0.05})
    widget = DetectLinkWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.image.value is image
    return widget


def _match_truth(table: pd.DataFrame, truth: pd.DataFrame, tol=1.5) -> pd.DataFrame:
    """Each linked point with the true particle it sits on (same frame, within ``tol`` px)."""
    m = table.merge(truth, on="frame", suffixes=("", "_true"))
    m = m[np.hypot(m["y"] - m["y_true"], m["x"] - m["x_true"]) < tol]
    return m


def test_preview_follows_frame_and_parameters(detect_widget, viewer, small_sample, qtbot):
    movie, truth = small_sample
    viewer.dims.set_current_step(0, 17)
    n = detect_widget._preview_now()
    pts = [lyr for lyr in viewer.layers if isinstance(lyr, Points)]
    assert len(pts) == 1 and pts[0] is detect_widget._preview_layer
    assert n == len(pts[0].data) == (truth["frame"] == 17).sum()
    assert np.all(pts[0].data[:, 0] == 17)  # points sit on the shown frame
    np.testing.assert_allclose(pts[0].scale, viewer.layers["movie"].scale)

    # moving the time slider or a parameter re-runs the preview (debounced, via the timer)
    with qtbot.waitSignal(detect_widget.preview_updated, timeout=5000):
        viewer.dims.set_current_step(0, 40)
    assert np.all(pts[0].data[:, 0] == 40)
    with qtbot.waitSignal(detect_widget.preview_updated, timeout=5000) as blocker:
        detect_widget.minmass.value = 1e7  # nothing is that bright
    assert blocker.args == [0] and len(pts[0].data) == 0
    assert len([lyr for lyr in viewer.layers if isinstance(lyr, Points)]) == 1  # reused


def test_detect_link_and_step_end_to_end(detect_widget, viewer, small_sample, wait_worker):
    """The Detect button's method, then the Run button's method, on a real movie."""
    from scipy.stats import spearmanr

    from napari_step._napari.step_widget import StepAnalysisWidget

    movie, truth = small_sample
    before = movie.copy()
    detect_widget.memory.value = 2
    detect_widget.min_length.value = 20
    added = []
    detect_widget.tracks_added.connect(added.append)
    worker = detect_widget.detect()
    assert worker is not None and detect_widget.running
    wait_worker(detect_widget)
    np.testing.assert_array_equal(viewer.layers["movie"].data, before)  # image untouched

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


def test_relink_uses_new_parameters(detect_widget, viewer, wait_worker):
    detect_widget.preview.value = False
    detect_widget.min_length.value = 1
    detect_widget.detect()
    wait_worker(detect_widget)
    first = viewer.layers[-1]
    detect_widget.min_length.value = 1000  # longer than the movie: nothing survives
    assert detect_widget.relink() is None
    detect_widget.min_length.value = 30
    second = detect_widget.relink()
    assert isinstance(second, Tracks) and second is not first
    assert np.unique(second.data[:, 0], return_counts=True)[1].min() >= 30


def test_bad_image_choices_notify(viewer, notes):
    from napari_step._napari.detect_widget import DetectLinkWidget

    widget = DetectLinkWidget(viewer)
    assert widget.detect() is None  # no image at all
    viewer.add_image(np.zeros((2, 3, 8, 8), np.uint16), name="4d")
    widget.reset_choices()
    assert widget.detect() is None  # wrong dimensionality
    assert [lvl for lvl, _ in notes] == ["error", "error"]
    assert "Image layer" in notes[0][1] and "dimensions" in notes[1][1]


def test_single_frame_image(viewer, small_sample, wait_worker):
    """A 2-D image is one frame: preview and detection work, tracks get a time axis."""
    from napari_step._napari.detect_widget import DetectLinkWidget

    movie, truth = small_sample
    viewer.add_image(movie[5], name="frame 5", scale=(0.1, 0.1))
    widget = DetectLinkWidget(viewer)
    assert widget._preview_now() == (truth["frame"] == 5).sum()
    assert widget._preview_layer.ndim == 2
    widget.min_length.value = 1
    widget.detect()
    wait_worker(widget)
    layer = viewer.layers[-1]
    assert isinstance(layer, Tracks) and layer.data.shape[1] == 4
    assert np.all(layer.data[:, 1] == 0)
    np.testing.assert_allclose(layer.scale, [1.0, 0.1, 0.1])
