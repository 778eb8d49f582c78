"""STEP analysis widget: selection modes, NaN-safe colouring, merging, concurrency, units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from napari_step._napari._colour import COLOUR_FEATURE, GREY, SENTINEL
from napari_step._napari._layers import analysed_track_ids, layer_table
from napari_step.analysis import RESULT_COLUMNS

PX, DT = 0.1, 0.05


@pytest.fixture
def layer(viewer, step, truth_tracks):
    """The small sample's true tracks (12 x 60 frames) with tracks 0-3 cut to 15 frames."""
    data, feats = truth_tracks
    keep = ~((data[:, 0] <= 3) & (data[:, 1] >= 15))
    lyr = viewer.add_tracks(
        data[keep],
        features=feats[keep].reset_index(drop=True),
        name="truth",
        metadata={"pixel_size_um": PX, "frame_interval_s": DT},
    )
    step.reset_choices()
    step.tracks.value = lyr
    assert step.pixel_size.value == pytest.approx(PX)
    return lyr


def _run(step, wait_worker, **kw):
    worker = step.run(**kw)
    assert worker is not None
    wait_worker(step)


def _track_ids(layer):
    return np.round(layer.data[:, 0]).astype(int)


def _check_colours(layer, analysed: set[int]):
    """Analysed tracks coloured (not grey), all others grey; nothing transparent (napari #5901)."""
    colours = np.asarray(layer._track_colors)
    assert colours.shape == (len(layer.data), 4)
    assert np.all(colours[:, 3] == 1.0)  # no transparent vertex at all
    ids = _track_ids(layer)
    feats = layer.features
    is_done = np.isin(ids, list(analysed)) & np.isfinite(feats["step_log10_d"].to_numpy(float))
    grey = np.all(np.isclose(colours[:, :3], GREY[:3]), axis=1)
    assert np.all(grey[~np.isin(ids, list(analysed))])
    assert not np.any(grey[is_done])
    assert np.all(feats[COLOUR_FEATURE].to_numpy()[~np.isin(ids, list(analysed))] == SENTINEL)
    assert np.isfinite(feats[COLOUR_FEATURE]).all()


def _check_exactly(layer, chosen):
    assert set(analysed_track_ids(layer)) == set(chosen)
    feats = layer.features
    others = ~np.isin(_track_ids(layer), list(chosen))
    for c in RESULT_COLUMNS:
        assert feats[c][others].isna().all(), c
    _check_colours(layer, set(chosen))


class _Event:
    """The bits of a napari mouse event that the click callback reads."""

    def __init__(self, kind, position=None, pos=(200, 200)):
        self.type = kind
        self.position = position
        self.pos = np.asarray(pos, float)
        self.modifiers = ()
        self.button = 1
        self.handled = False
        self.is_dragging = kind == "mouse_move"


def click(viewer, world_position, drag_to=None):
    """Press (and maybe drag) and release through napari's own callback dispatch."""
    from napari.utils._proxies import ReadOnlyWrapper
    from napari.utils.interactions import (
        mouse_move_callbacks,
        mouse_press_callbacks,
        mouse_release_callbacks,
    )

    mouse_press_callbacks(
        viewer, ReadOnlyWrapper(_Event("mouse_press", world_position), exceptions=("handled",))
    )
    if drag_to is not None:
        mouse_move_callbacks(
            viewer,
            ReadOnlyWrapper(_Event("mouse_move", world_position, drag_to), exceptions=("handled",)),
        )
    mouse_release_callbacks(
        viewer, ReadOnlyWrapper(_Event("mouse_release", world_position), exceptions=("handled",))
    )


def _position(layer, track_id, frame):
    row = layer.data[(layer.data[:, 0] == track_id) & (layer.data[:, 1] == frame)][0]
    return tuple(layer.data_to_world(row[1:]))


@pytest.mark.parametrize("mode", ["all", "ids", "shapes", "clicked"])
def test_each_selection_mode_analyses_exactly_the_chosen_tracks(
    mode, viewer, step, layer, wait_worker
):
    step.mode.value = mode
    if mode == "all":
        step.min_length.value = 20
        expected = set(range(4, 12))  # tracks 0-3 have 15 points
    elif mode == "ids":
        step.track_ids.value = "1, 4, 7-9"
        expected = {1, 4, 7, 8, 9}
    elif mode == "shapes":
        data = layer.data
        y2, x2 = data[(data[:, 0] == 2) & (data[:, 1] == 5)][0, 2:]
        y6, x6 = data[(data[:, 0] == 6) & (data[:, 1] == 30)][0, 2:]
        shapes = viewer.add_shapes(
            [
                np.array([[y2 - 1, x2 - 1], [y2 - 1, x2 + 1], [y2 + 1, x2 + 1], [y2 + 1, x2 - 1]]),
                np.array(
                    [[y6 - 1.5, x6 - 1], [y6 - 1.5, x6 + 1], [y6 + 1.5, x6 + 1], [y6 + 1.5, x6 - 1]]
                ),
            ],
            shape_type=["rectangle", "ellipse"],
            name="regions",
        )
        step.reset_choices()
        step.shapes.value = shapes
        # brute force: any point inside the box / the ellipse
        y, x, tid = data[:, 2], data[:, 3], _track_ids(layer)
        in_box = (np.abs(y - y2) <= 1) & (np.abs(x - x2) <= 1)
        in_ell = ((y - y6) / 1.5) ** 2 + (x - x6) ** 2 <= 1
        expected = set(np.unique(tid[in_box | in_ell]).tolist())
        assert {2, 6} <= expected and len(expected) < 12
    else:
        viewer.dims.set_current_step(0, 10)
        click(viewer, _position(layer, 3, 10))
        click(viewer, _position(layer, 6, 10))
        click(viewer, _position(layer, 3, 10))  # a second click keeps it once
        expected = {3, 6}
        assert step.clicked_tracks == [3, 6]
        assert "3, 6" in step.selection_info.value
    assert set(step.selected_track_ids()) == expected
    _run(step, wait_worker)
    _check_exactly(layer, expected)


def test_click_picks_nearest_track_at_current_time_and_drag_does_not(viewer, step, layer):
    viewer.dims.set_current_step(0, 42)
    assert step.mode.value == "all"  # outside "clicked" mode a click only shows the track
    click(viewer, _position(layer, 9, 42))
    assert step.current_track == 9 and step.clicked_tracks == []
    step.mode.value = "clicked"
    y, x = _position(layer, 5, 42)[1:]
    click(viewer, (42, y + 0.3, x - 0.2))  # near, not on, track 5
    assert step.clicked_tracks == [5] and step.current_track == 5
    click(viewer, _position(layer, 7, 42), drag_to=(260, 240))  # a pan, not a click
    assert step.clicked_tracks == [5]
    step.clear_clicked_tracks()
    assert step.clicked_tracks == [] and step.selection_info.value.startswith("0")


def test_results_merge_and_units_change_marks_stale(viewer, step, layer, wait_worker, notes):
    step.mode.value = "ids"
    step.track_ids.value = "0-2"
    _run(step, wait_worker)
    first = layer.features.copy()
    step.track_ids.value = "5"
    _run(step, wait_worker)
    _check_exactly(layer, {0, 1, 2, 5})
    rows = np.isin(_track_ids(layer), [0, 1, 2])
    for c in RESULT_COLUMNS:  # earlier tracks untouched by the second run
        np.testing.assert_array_equal(layer.features[c][rows], first[c][rows])
    assert not step.is_stale()

    # changing the units marks the results stale (status text), running again converts them
    step.pixel_size.value = 2 * PX
    assert step.is_stale()
    assert "STALE" in step.status.value
    step.track_ids.value = "7"
    _run(step, wait_worker)
    assert not step.is_stale() and "STALE" not in step.status.value
    _check_exactly(layer, {0, 1, 2, 5, 7})
    np.testing.assert_allclose(layer.features["step_d"][rows], 4 * first["step_d"][rows])
    np.testing.assert_allclose(
        layer.features["step_log10_d"][rows], first["step_log10_d"][rows] + np.log10(4)
    )
    meta = layer.metadata["napari_step"]
    assert meta["pixel_size_um"] == pytest.approx(2 * PX) and meta["units"] == "um^2/s"
    assert not [m for lvl, m in notes if lvl == "error"]


def test_second_run_is_refused_while_running(step, layer, wait_worker, notes):
    assert step.run() is not None
    assert step.run() is None
    assert "warning" in [lvl for lvl, _ in notes] and any("already running" in m for _, m in notes)
    wait_worker(step)
    assert set(analysed_track_ids(layer)) == set(range(4, 12))


def test_deleting_the_layer_mid_run_drops_the_result(viewer, step, layer, wait_worker, notes):
    assert step.run() is not None
    viewer.layers.remove(layer)  # before the worker's result reaches the main thread
    wait_worker(step)
    assert any(lvl == "warning" and "removed" in m for lvl, m in notes)
    assert "step_d" not in layer.features.columns


def test_bad_layer_choices_notify_and_raise_nothing(viewer, step, truth_tracks, notes):
    assert step.tracks.value is None
    assert step.run() is None  # no layer at all
    image = viewer.add_image(np.zeros((5, 8, 8)), name="img")
    assert step.run(layer=image) is None  # wrong type
    data, feats = truth_tracks
    lonely = viewer.add_tracks(data[:1], name="one point")
    step.reset_choices()
    step.mode.value = "ids"
    step.track_ids.value = "1-"
    assert step.run(layer=lonely) is None  # unreadable IDs
    step.track_ids.value = "99"
    assert step.run(layer=lonely) is None  # no such track
    levels = [lvl for lvl, _ in notes]
    assert levels[:2] == ["error", "error"]
    assert "choose a Tracks layer" in notes[0][1] and "not a Tracks layer" in notes[1][1]
    assert "warning" in levels[2:]


def test_gpu_without_cuda_falls_back_to_cpu(monkeypatch, step, layer, wait_worker, notes):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    step.device.value = "GPU"
    step.mode.value = "ids"
    step.track_ids.value = "4"
    _run(step, wait_worker)
    assert any(lvl == "warning" and "CPU" in m for lvl, m in notes)
    assert analysed_track_ids(layer) == [4]


def test_colour_range_is_stated_and_changeable(step, layer, wait_worker):
    from napari_step._napari._colour import auto_range

    assert "from -3 to 1 (um^2/s, from the data)" in step.colour_info.value
    step.mode.value = "ids"
    step.track_ids.value = "4, 5"
    _run(step, wait_worker)
    # the range follows the data: 2-98 % of the analysed log10 D, rounded out to ticks
    v = layer.features["step_log10_d"].to_numpy(float)
    ok = np.isfinite(v)
    lo, hi = layer.metadata["napari_step"]["colour_range"]
    assert (lo, hi) == auto_range(v) != (-3.0, 1.0)
    assert lo <= np.percentile(v[ok], 2) and hi >= np.percentile(v[ok], 98)
    assert hi - lo < 3  # much tighter than the old fixed -3..1 on these tracks
    assert step.colour_lo.value == pytest.approx(lo) and step.colour_hi.value == pytest.approx(hi)
    before = np.asarray(layer._track_colors).copy()
    # a typed value overrides the automatic range, and is remembered on the layer
    step.colour_lo.value = lo - 1.0
    assert not step.colour_auto.value
    assert layer.metadata["napari_step"]["colour_range"] == [lo - 1.0, hi]
    assert layer.metadata["napari_step"]["colour_auto"] is False
    assert f"from {lo - 1.0:g} to {hi:g}" in step.colour_info.value
    np.testing.assert_allclose(
        layer.features[COLOUR_FEATURE][ok], np.clip((v[ok] - (lo - 1.0)) / (hi - lo + 1.0), 1e-6, 1)
    )
    assert not np.allclose(before, layer._track_colors)
    _check_colours(layer, {4, 5})
    # back to automatic
    step.colour_auto.value = True
    assert layer.metadata["napari_step"]["colour_range"] == [lo, hi]


def test_unsorted_layer_data_keeps_features_aligned(viewer, step, truth_tracks, wait_worker):
    """napari sorts Tracks data; results must land on the right points anyway."""
    data, feats = truth_tracks
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    shuffled = viewer.add_tracks(
        data[order], features=feats.iloc[order].reset_index(drop=True), name="shuffled"
    )
    step.reset_choices()
    step.tracks.value = shuffled
    step.pixel_size.value, step.frame_interval.value = PX, DT
    step.mode.value = "ids"
    step.track_ids.value = "0, 1"  # track 0 starts fast, track 1 slow... per make_sample
    _run(step, wait_worker)
    table = layer_table(shuffled)
    # d_true travelled with its point: compare against the ground truth by (track, frame)
    truth = pd.DataFrame(
        {
            "track_id": data[:, 0].astype(int),
            "frame": data[:, 1].astype(int),
            "d_true_ref": feats["d_true"].to_numpy(),
        }
    )
    m = table.merge(truth, on=["track_id", "frame"])
    np.testing.assert_array_equal(m["d_true"], m["d_true_ref"])
    done = m[m["track_id"].isin([0, 1])]
    slow = done.loc[done["d_true"] < 0.1, "step_log10_d"].median()
    fast = done.loc[done["d_true"] > 0.1, "step_log10_d"].median()
    assert fast - slow > 0.6


def test_cancel_leaves_the_layer_unchanged(step, layer, wait_worker, notes):
    assert step.run() is not None
    step.cancel()
    wait_worker(step)
    assert "step_d" not in layer.features.columns
    assert any(lvl == "info" and "cancelled" in m for lvl, m in notes)
    assert step.run_button.enabled and not step.cancel_button.enabled


def test_a_run_sets_the_layer_features_once(step, layer, wait_worker):
    """The result goes to the layer in one place: merged, coloured, one features update."""
    sets = []
    layer.events.properties.connect(lambda e: sets.append(1))
    step.segments.value = True
    step.mode.value = "ids"
    step.track_ids.value = "4, 5"
    _run(step, wait_worker)
    assert len(sets) == 1
    assert {"step_d", "segment_d", COLOUR_FEATURE} <= set(layer.features.columns)
