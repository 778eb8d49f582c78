"""Issue 16, GUI at scale: the paths that run on every layer insertion or result stay cheap
(no Python set of every track ID, a new colour-bar dock draws once)."""

from __future__ import annotations

import numpy as np


def test_typed_and_clicked_ids_are_checked_against_the_layer(viewer, step, truth_tracks, notes):
    data, _ = truth_tracks
    layer = viewer.add_tracks(data[data[:, 0] != 5], name="truth")  # tracks 0-11 but 5
    step.tracks.value = layer
    step.mode.value = "ids"
    step.track_ids.value = f"3, 5, 99, 1, {10**30}"
    assert step.selected_track_ids(layer) == [3, 1]  # typed order, absent IDs dropped
    assert notes[-1][0] == "warning"
    assert f"no track(s) 5, 99, {10**30} in 'truth'" in notes[-1][1]
    step.mode.value = "all"
    step.min_length.value = 1
    assert step.selected_track_ids(layer) == [i for i in range(12) if i != 5]
    step.min_length.value = 61  # longer than every track
    assert step.selected_track_ids(layer) == []
    step.mode.value = "clicked"
    step._clicked = [7, 5, 2]
    assert step.selected_track_ids(layer) == [7, 2]


def test_a_new_colour_bar_draws_once(viewer, step, truth_tracks, wait_worker, qtbot, monkeypatch):
    from matplotlib.colorbar import Colorbar

    from napari_step._napari._colour_bar import ColourBarWidget
    from napari_step._napari._widgets_common import docks_of

    drawn = []
    real_init = Colorbar.__init__

    def spy(self, ax, *args, **kwargs):  # the real colour bar, noting its figure
        drawn.append(ax.figure)
        real_init(self, ax, *args, **kwargs)

    monkeypatch.setattr(Colorbar, "__init__", spy)
    data, feats = truth_tracks
    layer = viewer.add_tracks(data, features=feats, name="truth")
    step.tracks.value = layer
    step.mode.value = "ids"
    step.track_ids.value = "0-2"
    assert step.run() is not None
    wait_worker(step)
    qtbot.waitUntil(lambda: len(docks_of(viewer, ColourBarWidget)) == 1, timeout=5000)
    qtbot.wait(50)  # the dock's own first-draw timer has fired
    (bar,) = docks_of(viewer, ColourBarWidget)
    assert bar.layer is layer and "log10 D" in bar.label
    assert sum(f is bar.figure for f in drawn) == 1

    layer.metadata = {**layer.metadata, "note": "not a colouring change"}
    qtbot.wait(20)
    assert sum(f is bar.figure for f in drawn) == 1
    step.settings.colour_auto = False
    step.settings.colour_lo = -3.0
    qtbot.wait(20)
    lo, hi = layer.metadata["napari_step"]["colour_range"]
    assert lo == -3.0 and (bar.colorbar.norm.vmin, bar.colorbar.norm.vmax) == (lo, hi)
    assert sum(f is bar.figure for f in drawn) >= 2
    assert np.isfinite(hi)


def _analysed(viewer, step, truth_tracks, wait_worker, ids="0-3"):
    data, feats = truth_tracks
    layer = viewer.add_tracks(
        data,
        features=feats,
        name="truth",
        metadata={"pixel_size_um": 0.1, "frame_interval_s": 0.05},
    )
    step.tracks.value = layer
    step.mode.value = "ids"
    step.track_ids.value = ids
    assert step.run() is not None
    wait_worker(step)
    return layer


def _spy_threads(monkeypatch, module, name):
    """Wrap ``module.name`` (the real function) to note the thread of every call."""
    import threading

    threads = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return threads


def test_large_layers_are_summarised_in_a_worker(
    viewer, step, truth_tracks, wait_worker, qtbot, monkeypatch
):
    """Above ASYNC_POINTS (lowered here to every layer) the per-track table is computed in a
    worker thread; it equals the summary computed in the GUI thread."""
    import threading

    import pandas as pd

    from napari_step._napari import _results_table
    from napari_step._napari._results_table import layer_track_summary

    layer = _analysed(viewer, step, truth_tracks, wait_worker)
    want = layer_track_summary(layer)
    monkeypatch.setattr(_results_table, "ASYNC_POINTS", 0)
    threads = _spy_threads(monkeypatch, _results_table, "summarise")
    table = step.open_table_dock()
    assert table.frame is None and "summarising" in table.info.text()
    qtbot.waitUntil(lambda: table.frame is not None, timeout=20_000)
    assert threads and all(t is not threading.main_thread() for t in threads)
    pd.testing.assert_frame_equal(table.frame, want)
    assert sorted(table.frame["track_id"]) == [0, 1, 2, 3]
    assert "4 analysed track(s)" in table.info.text()
    assert table.select_row(0) == int(table.model.value(0, "track_id"))


def test_large_layers_get_their_msd_from_a_worker(
    viewer, step, truth_tracks, wait_worker, qtbot, monkeypatch
):
    """Above ASYNC_POINTS the MSD tab computes in a worker; the newest pick wins and the
    curves equal those computed in the GUI thread."""
    import threading

    from napari_step._napari import _msd_plot
    from napari_step._napari._layers import layer_table

    layer = _analysed(viewer, step, truth_tracks, wait_worker)
    plot = step.open_plot_dock()
    monkeypatch.setattr(_msd_plot, "ASYNC_POINTS", 0)
    threads = _spy_threads(monkeypatch, _msd_plot, "msd_curves")
    plot.show(layer, 2)
    plot.tabs.setCurrentIndex(2)  # the MSD tab
    assert plot.msd_data is None
    assert plot.tabs.tabText(2) == "MSD (computing...)"
    plot.show_track(5)  # picked before the first answer: the answer for track 2 is dropped
    qtbot.waitUntil(lambda: plot.msd_data is not None, timeout=20_000)
    qtbot.wait(200)  # both workers done
    assert plot.tabs.tabText(2) == "MSD"
    assert threads and all(t is not threading.main_thread() for t in threads)
    want = _msd_plot.msd_curves(layer_table(layer), 5, 0.1, 0.05, max_tracks=5000)
    np.testing.assert_allclose(plot.msd_data["track"], want["track"])
    np.testing.assert_allclose(plot.msd_data["ensemble"], want["ensemble"])
    labels = [t.get_text() for t in plot.ax_msd.get_legend().get_texts()]
    assert any("track 5" in s for s in labels) and not any("track 2" in s for s in labels)


def test_the_run_worker_compiles_the_outline_kernel_off_the_gui_thread():
    """The first outline of a session (a picked track) froze the viewer 8 s on a fresh install:
    napari's own Shapes warm-up leaves out the path-edge kernel. The run worker's warm-up
    compiles (or loads) it; checked in a fresh interpreter, where nothing has used it yet."""
    import subprocess
    import sys

    code = (
        "from napari.layers.shapes import _accelerated_triangulate_numba as m\n"
        "from napari_step._napari._step_outputs import _warm_imports\n"
        "before = len(m.generate_2D_edge_meshes.signatures)\n"
        "_warm_imports()\n"
        "print(before, len(m.generate_2D_edge_meshes.signatures))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split()[-2:])
    assert before == 0 and after >= 1
