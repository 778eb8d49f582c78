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
