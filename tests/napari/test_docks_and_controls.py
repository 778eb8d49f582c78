"""Issue 14, items 3, 7 and 8: docks that fit the screen (scroll areas, wrapped status text),
progress in the dock, frame rate and explicit units, tooltips, plot saving, the MSD plot, a
histogram axis not stretched by outliers."""

from __future__ import annotations

import numpy as np
import pytest

PX, DT = 0.1, 0.05


@pytest.fixture
def shown_viewer(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)
    return viewer


@pytest.fixture
def layer(viewer, step, truth_tracks):
    data, feats = truth_tracks
    lyr = viewer.add_tracks(
        data,
        features=feats.reset_index(drop=True),
        name="truth",
        metadata={"pixel_size_um": PX, "frame_interval_s": DT},
    )
    assert step.tracks.value is lyr
    return lyr


def _all_controls(container):
    from magicgui.widgets import Container, Label

    for w in container:
        if isinstance(w, Container):
            yield from _all_controls(w)
        elif not isinstance(w, Label):
            yield w


def test_docks_scroll_and_long_status_does_not_widen_them(shown_viewer, qtbot):
    from qtpy.QtWidgets import QScrollArea

    from napari_step._napari.step_widget import StepAnalysisWidget

    viewer = shown_viewer
    step = StepAnalysisWidget(viewer)
    dock = viewer.window.add_dock_widget(step, name="STEP analysis")
    plot, table = step.open_plot_dock(), step.open_table_dock()
    qtbot.wait(50)
    assert isinstance(step.native, QScrollArea) and dock.widget() is step.native
    # the dock asks for little height: its content scrolls
    assert dock.minimumSizeHint().height() < 250
    assert step.native.widget().minimumSizeHint().height() > 600
    width = dock.width()
    min_width = dock.minimumSizeHint().width()
    step.status.value = "a long status text " * 100
    qtbot.wait(50)
    assert dock.width() == width and dock.minimumSizeHint().width() == min_width
    assert step.status.native.wordWrap()
    # all the plugin's docks together fit a 1600 x 1100 screen (issue: the window grew to
    # 1688 px tall and the canvas shrank to 200 px)
    window = viewer.window._qt_window
    hint = window.minimumSizeHint()
    assert hint.height() <= 1100 and hint.width() <= 1600
    assert window.height() <= 1100 and window.width() <= 1600
    assert viewer.window._qt_viewer.canvas.native.height() > 600
    assert plot.minimumSizeHint().height() < 400 and table.minimumSizeHint().height() < 400


def test_progress_bar_in_the_dock(step, layer, wait_worker):
    from napari_step._napari._analysis_jobs import analysis_chunks
    from napari_step._napari._layers import layer_table

    steps = []
    step.mode.value = "all"
    step.min_length.value = 2
    worker = step.run()
    assert worker is not None
    bar = step.progress.native
    n_chunks = len(analysis_chunks(step.selected_track_ids(layer), layer_table(layer)))
    assert not bar.isHidden() and bar.maximum() == n_chunks and bar.value() == 0
    assert not step.run_button.enabled and step.cancel_button.enabled
    worker.yielded.connect(lambda _: steps.append(bar.value()))
    wait_worker(step)
    assert steps and steps[-1] == n_chunks and steps == sorted(steps)
    assert bar.isHidden() and step.run_button.enabled and not step.cancel_button.enabled


def test_frame_rate_is_exact_and_units_are_an_explicit_choice(step, layer, wait_worker):
    from napari_step._napari._settings import CALIBRATED, UNCALIBRATED

    assert step.settings.units == CALIBRATED  # the layer carries its calibration
    step.fps.value = 24
    assert step.settings.frame_interval_s == 1 / 24  # exactly, not 0.0417
    step.pixel_size.value = 1.0  # a calibrated 1.0 um pixel stays um^2/s
    step.mode.value = "ids"
    step.track_ids.value = "2"
    assert step.run() is not None
    wait_worker(step)
    meta = layer.metadata["napari_step"]
    assert meta["frame_interval_s"] == 1 / 24 and meta["pixel_size_um"] == 1.0
    assert meta["units"] == "um^2/s"
    # uncalibrated: D in px^2/frame whatever the boxes hold; earlier results are converted
    d_before = layer.features["step_d"].to_numpy(float).copy()
    step.units.value = UNCALIBRATED
    assert step.is_stale(layer)
    assert step.run() is not None
    wait_worker(step)
    meta = layer.metadata["napari_step"]
    assert meta["units"] == "px^2/frame" and meta["pixel_size_um"] == 1.0
    assert meta["frame_interval_s"] == 1.0
    ok = np.isfinite(d_before)
    np.testing.assert_allclose(
        layer.features["step_d"].to_numpy(float)[ok] * 24, d_before[ok], rtol=1e-6
    )


def test_every_control_has_a_tooltip(viewer, step):
    missing = [
        getattr(w, "label", "") or getattr(w, "text", "") or type(w).__name__
        for w in _all_controls(step)
        if not (w.tooltip or "").strip()
    ]
    assert not missing, missing
    plot, table = step.open_plot_dock(), step.open_table_dock()
    for w in (
        plot.layer_choice,
        plot.track_choice,
        plot.save_button,
        table.layer_choice,
        table.export_button,
        table.view,
    ):
        tip = w.tooltip if hasattr(w, "tooltip") and not callable(w.tooltip) else w.toolTip()
        assert tip.strip(), w


def test_plot_save_msd_and_robust_histogram(step, layer, wait_worker, tmp_path, qtbot):
    plot = step.open_plot_dock()
    step.mode.value = "ids"
    step.track_ids.value = "0-11"
    assert step.run() is not None
    wait_worker(step)
    step.set_current_track(3)
    # the clicked/picked track is outlined in the canvas
    from napari_step._napari._layers import HIGHLIGHT_KEY

    outline = [lyr for lyr in step._viewer.layers if HIGHLIGHT_KEY in lyr.metadata]
    assert len(outline) == 1 and outline[0].metadata["track_id"] == 3
    rows = np.round(layer.data[:, 0]) == 3
    np.testing.assert_allclose(outline[0].data[0], layer.data[rows][:, -2:])
    # saving the plot (PNG and SVG)
    png, svg = plot.save_figure(tmp_path / "d.png"), plot.save_figure(tmp_path / "d.svg")
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in open(svg, encoding="utf-8").read(2000)
    # MSD tab: ensemble and track with power-law fits; Brownian tracks give alpha near 1
    plot.tabs.setCurrentIndex(2)
    qtbot.wait(200)
    msd = plot.msd_data
    assert msd is not None and msd["track"] is not None and msd["n"] == 12
    d_ens, a_ens = msd["ensemble_fit"]
    assert 0.7 < a_ens < 1.3
    true_d = np.mean(layer.features["d_true"]) * PX**2 / DT  # the MSD averages D
    assert 0.5 * true_d < d_ens < 2 * true_d
    labels = [t.get_text() for t in plot.ax_msd.get_legend().get_texts()]
    assert any("alpha" in t and "D =" in t for t in labels)
    assert plot.save_figure(tmp_path / "msd.png")
    # a few outliers do not stretch the histogram axis
    feats = layer.features.copy()
    feats.loc[feats.index[:3], "step_log10_d"] = -9.0
    layer.features = feats
    plot.redraw()
    lo, hi = layer.metadata["napari_step"]["colour_range"]
    assert plot.ax_hist.get_xlim()[0] > -6
