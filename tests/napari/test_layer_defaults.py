"""Issue 14, item 1: the STEP widget and the plot docks work on the newest or the selected
Tracks layer, and follow layers being added, selected, renamed and removed (they used to keep
the oldest one: on the sample, the ground truth)."""

from __future__ import annotations

import numpy as np


def _tracks(viewer, truth_tracks, name, shift=0.0):
    data, feats = truth_tracks
    data = data.copy()
    data[:, 2:] += shift
    return viewer.add_tracks(data, features=feats.reset_index(drop=True), name=name)


def test_sample_then_linking_picks_the_new_tracks_not_the_ground_truth(viewer, truth_tracks):
    from napari_step._napari.plot_widget import DPlotWidget
    from napari_step._napari.step_widget import StepAnalysisWidget

    truth = _tracks(viewer, truth_tracks, "STEP sample ground truth")
    step = StepAnalysisWidget(viewer)
    plot = DPlotWidget(viewer)
    assert step.tracks.value is truth and plot.layer is truth  # the only one

    linked = _tracks(viewer, truth_tracks, "tracks", shift=0.5)  # what "Detect & link" adds
    assert step.tracks.value is linked
    assert plot.layer is linked and plot.layer_choice.value is linked
    again = _tracks(viewer, truth_tracks, "tracks [1]", shift=1.0)  # "Link again"
    assert step.tracks.value is again and plot.layer is again

    # selecting a layer in the layer list makes it the widget's choice
    viewer.layers.selection.active = linked
    assert step.tracks.value is linked and plot.layer is linked

    # renaming shows the new name in the choices
    linked.name = "my tracks"
    names = [c for c in step.tracks.choices]
    assert linked in names
    assert "my tracks" in [
        step.tracks.native.itemText(i) for i in range(step.tracks.native.count())
    ]

    # removing the chosen layer falls back to the newest remaining one, not the oldest
    viewer.layers.remove(linked)
    assert step.tracks.value is again and plot.layer is again
    viewer.layers.remove(again)
    assert step.tracks.value is truth and plot.layer is truth


def test_a_widget_opened_later_starts_on_the_newest(viewer, truth_tracks):
    from napari_step._napari._results_table import TrackTableWidget
    from napari_step._napari.step_widget import StepAnalysisWidget

    _tracks(viewer, truth_tracks, "ground truth")
    newest = _tracks(viewer, truth_tracks, "tracks", shift=0.5)
    viewer.layers.selection.active = viewer.add_image(np.zeros((4, 8, 8)), name="movie")
    step = StepAnalysisWidget(viewer)
    table = TrackTableWidget(viewer)
    assert step.tracks.value is newest and table.layer is newest


def test_each_layer_remembers_its_colour_range(viewer, truth_tracks, wait_worker):
    from napari_step._napari.step_widget import StepAnalysisWidget

    step = StepAnalysisWidget(viewer)
    first = _tracks(viewer, truth_tracks, "first")
    step.mode.value = "ids"
    step.track_ids.value = "0-3"
    assert step.run() is not None
    wait_worker(step)
    auto_first = tuple(first.metadata["napari_step"]["colour_range"])
    step.colour_hi.value = auto_first[1] + 1.0  # typed: no longer automatic
    second = _tracks(viewer, truth_tracks, "second", shift=0.5)
    assert step.tracks.value is second
    assert step.run() is not None
    wait_worker(step)
    assert second.metadata["napari_step"]["colour_auto"] is False  # the user's choice holds
    step.colour_auto.value = True  # the second layer back to automatic
    auto_second = tuple(second.metadata["napari_step"]["colour_range"])
    viewer.layers.selection.active = first  # back to the first: its typed range returns
    assert step.tracks.value is first
    assert (step.colour_lo.value, step.colour_hi.value) == (auto_first[0], auto_first[1] + 1.0)
    assert not step.colour_auto.value
    viewer.layers.selection.active = second
    assert (step.colour_lo.value, step.colour_hi.value) == auto_second
    assert step.colour_auto.value


def test_removing_tracks_removes_their_change_points_and_outline(viewer, truth_tracks, wait_worker):
    from napari_step._napari._layers import HIGHLIGHT_KEY, changepoints_layer
    from napari_step._napari.step_widget import StepAnalysisWidget

    step = StepAnalysisWidget(viewer)
    layer = _tracks(viewer, truth_tracks, "tracks")
    step.segments.value = True
    step.mode.value = "ids"
    step.track_ids.value = "0-3"
    assert step.run() is not None
    wait_worker(step)
    step.set_current_track(1)
    assert changepoints_layer(viewer, layer) is not None
    assert any(HIGHLIGHT_KEY in lyr.metadata for lyr in viewer.layers)
    viewer.layers.remove(layer)
    assert len(viewer.layers) == 0
