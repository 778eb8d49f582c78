"""The D(t) plot dock follows the selected track; the demo runs the whole workflow."""

from __future__ import annotations

import numpy as np
import pytest

PX, DT = 0.1, 0.05


def _finite(a):
    a = np.asarray(a, float)
    return a[np.isfinite(a)]


def test_plot_dock_shows_the_selected_track(viewer, truth_tracks, wait_worker):
    from napari_step._napari.plot_widget import DPlotWidget, plot_docks
    from napari_step._napari.step_widget import StepAnalysisWidget

    data, feats = truth_tracks
    keep = ~((data[:, 0] == 3) & (data[:, 1] >= 20) & (data[:, 1] < 24))  # a 4-frame gap
    layer = viewer.add_tracks(
        data[keep],
        features=feats[keep].reset_index(drop=True),
        name="truth",
        metadata={"pixel_size_um": PX, "frame_interval_s": DT},
    )
    step = StepAnalysisWidget(viewer)
    step.tracks.value = layer
    plot = step.open_plot_dock()
    assert isinstance(plot, DPlotWidget) and plot_docks(viewer) == [plot]
    assert step.open_plot_dock() is plot  # one dock per viewer
    step.mode.value = "ids"
    step.track_ids.value = "2-4"
    assert step.current_track == 2  # the first typed ID is the one shown
    step.run()
    wait_worker(step)
    assert plot.layer is layer and plot.track == 2

    for tid in (3, 4):
        step.set_current_track(tid)
        assert plot.track == tid and plot.track_choice.value == tid
        rows = np.round(layer.data[:, 0]) == tid
        frames = np.round(layer.data[rows, 1])
        x, y = plot.step_line.get_data()
        # one sample per frame from first to last (NaN across the gap), time in seconds
        np.testing.assert_allclose(np.asarray(x)[np.isfinite(y)], frames * DT)
        np.testing.assert_allclose(_finite(y), layer.features["step_d"][rows].to_numpy())
        assert len(x) == frames.max() - frames.min() + 1
        _, ty = plot.tamsd_line.get_data()
        ref = layer.features["tamsd_d"][rows].to_numpy()
        np.testing.assert_allclose(_finite(ty), ref[np.isfinite(ref) & (ref > 0)])
        _, true_y = plot.true_line.get_data()  # ground truth converted to um^2/s
        np.testing.assert_allclose(
            _finite(true_y), feats["d_true"][(data[:, 0] == tid) & keep] * PX**2 / DT
        )
    ax = plot.ax_d
    assert ax.get_yscale() == "log"
    assert "um^2/s" in ax.get_ylabel() and "s" in ax.get_xlabel()
    assert "track 4" in ax.get_title()
    # histogram of log10 D over the analysed points, colour bar with range and units
    n_hist = sum(p.get_height() for p in plot.ax_hist.patches[:48])
    assert n_hist == np.isfinite(layer.features["step_log10_d"]).sum()
    assert "log10 D (um^2/s)" in plot.ax_hist.get_xlabel()
    label = plot.colorbar.ax.get_xlabel()
    lo, hi = layer.metadata["napari_step"]["colour_range"]  # chosen from the data
    assert "um^2/s" in label and f"{lo:g} to {hi:g}" in label and "grey" in label
    assert plot.colorbar.norm.vmin == lo and plot.colorbar.norm.vmax == hi

    # the dock's own track box works as well
    plot.track_choice.value = 2
    assert plot.track == 2
    np.testing.assert_allclose(
        _finite(plot.step_line.get_data()[1]),
        layer.features["step_d"][np.round(layer.data[:, 0]) == 2],
    )
    plot.show_track(7)  # not analysed: no line, a message instead
    assert plot.step_line is None


def test_demo_runs_detect_link_step_and_shows_results(viewer, qtbot):
    from napari_step._napari._colour import COLOUR_FEATURE
    from napari_step._napari.demo import open_demo

    demo = open_demo(viewer, n_particles=8, n_frames=50, shape=(96, 96), seed=2)
    assert not demo.errors
    qtbot.waitUntil(lambda: demo.done, timeout=120_000)
    qtbot.waitUntil(lambda: not demo.step_widget.running, timeout=10_000)
    layer = demo.tracks_layer
    assert layer is not None and layer in viewer.layers
    assert layer.color_by == COLOUR_FEATURE
    assert np.isfinite(layer.features["step_d"]).mean() > 0.9
    assert layer.metadata["napari_step"]["units"] == "um^2/s"
    assert demo.plot_widget.layer is layer and demo.plot_widget.step_line is not None
    assert not demo.truth_layer.visible and demo.movie_layer.visible
    assert demo.step_widget.pixel_size.value == pytest.approx(0.1)


def test_demo_takes_the_true_d_from_the_sample_module():
    """The demo's report of the true D comes from the sample's own constants (issue 12)."""
    import inspect

    from napari_step import cli
    from napari_step.sample import SAMPLE_D_FAST, SAMPLE_D_SLOW, make_sample

    _, truth = make_sample(n_particles=4, n_frames=30, shape=(64, 64), seed=1)
    assert set(truth["d_true"].unique()) == {SAMPLE_D_SLOW, SAMPLE_D_FAST}
    source = inspect.getsource(cli._cmd_demo)
    assert "SAMPLE_D_SLOW" in source and "SAMPLE_D_FAST" in source
    assert "0.05 *" not in source and "0.8 *" not in source
