"""The D-alpha tab per segment, the canvas outline of a lasso selection, and the exported
units table with the state column.

Real viewer, real shipped weights (D, alpha and state models), real change points: two tracks
jump from slow to fast diffusion (D x 100), two diffuse fast throughout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_step._napari._colour import STATE_COLOUR_FEATURE, STATE_COLOURS
from napari_step._napari._selection_outline import SELECTION_KEY, selection_segments

N_FRAMES, JUMP = 120, 60


@pytest.fixture
def analysed(viewer, step, wait_worker):
    """4 Brownian tracks (0, 1: D 0.02 then 2 px^2/frame from frame 60; 2, 3: D 2), analysed
    with change points, alpha and states."""
    from napari_step.simulate import brownian_from_d

    d = np.full((4, N_FRAMES), 2.0)
    d[:2, :JUMP] = 0.02
    pos = brownian_from_d(d, rng=np.random.default_rng(7))
    rows = [
        np.column_stack([np.full(N_FRAMES, i), np.arange(N_FRAMES), p + 40.0 * (i + 1)])
        for i, p in enumerate(pos)
    ]
    layer = viewer.add_tracks(np.concatenate(rows), name="jumps")
    step.reset_choices()
    step.tracks.value = layer
    step.segments.value = True
    step.alpha.value = True
    step.states.value = True
    step.mode.value = "all"
    assert step.run() is not None
    wait_worker(step, timeout=180_000)
    return step, layer


def _segments(layer):
    from napari_step._napari._layers import layer_segments

    seg = layer_segments(layer)
    assert seg is not None and len(seg) >= 6  # 4 tracks, two with a change point at least
    return seg.sort_values(["track_id", "start_frame"]).reset_index(drop=True)


def test_per_segment_points_states_lasso_and_outline(analysed):
    step, layer = analysed
    plot = step.open_plot_dock()
    plot.tabs.setCurrentIndex(3)
    panel = plot.dalpha
    assert panel.mode == "per track" and len(panel.points) == 4
    panel.mode = "per segment"  # the dock's own switch redraws
    seg = _segments(layer)
    pts = panel.points
    assert len(pts) == len(seg)  # one point per segment
    shown = panel.drawn().sort_values(["alpha", "log10_d"])  # read back from the figure
    assert len(shown) == len(seg)
    np.testing.assert_array_equal(pts["track_id"], seg["track_id"])

    # each point: medians and the most frequent state over its segment's frames
    ids = np.round(layer.data[:, 0]).astype(int)
    frames = np.round(layer.data[:, 1]).astype(int)
    feats = layer.features
    for k, s in seg.iterrows():
        rows = (ids == s["track_id"]) & (frames >= s["start_frame"]) & (frames < s["stop_frame"])
        assert pts.loc[k, "n_points"] == rows.sum()
        assert pts.loc[k, "log10_d"] == pytest.approx(np.nanmedian(feats["step_log10_d"][rows]))
        assert pts.loc[k, "alpha"] == pytest.approx(np.nanmedian(feats["step_alpha"][rows]))
        states = feats["step_state"].to_numpy(float)[rows]
        counts = np.bincount(states[np.isfinite(states)].astype(int), minlength=4)
        assert pts.loc[k, "state"] == int(np.argmax(counts))
    expected = pts.sort_values(["alpha", "log10_d"])
    np.testing.assert_allclose(shown[["alpha", "log10_d"]], expected[["alpha", "log10_d"]])
    colours = np.stack(shown["colour"].to_numpy())
    np.testing.assert_allclose(colours, np.asarray(STATE_COLOURS)[expected["state"].to_numpy()])
    area = shown["area"].to_numpy()
    longest = int(np.argmax(expected["n_points"].to_numpy()))
    assert area[longest] == pytest.approx(area.max()) and area.max() > area.min()  # duration

    # a picked track rings all of its points
    step.set_current_track(0)
    assert plot.track == 0
    ring = np.column_stack(panel.ring.get_data())
    mine = pts[pts["track_id"] == 0]
    assert len(mine) >= 2  # track 0 changes speed once at least
    np.testing.assert_allclose(ring, mine[["alpha", "log10_d"]].to_numpy(float))

    # a lasso around the slow segments (D 0.02: log10 D below the middle) selects 0 and 1
    mid = 0.5 * (np.log10(0.02) + np.log10(2.0))
    assert (pts["log10_d"] < mid).sum() >= 2
    lo = pts["log10_d"].min() - 1.0
    verts = [(-1.0, lo), (3.0, lo), (3.0, mid), (-1.0, mid)]
    assert panel.lasso_select(verts) == [0, 1]
    assert step.settings.mode == "ids"
    assert step.selected_track_ids(layer) == [0, 1]

    # ... and outlines both tracks in the canvas: every step of 0 and 1, none of 2 and 3
    (outline,) = [lyr for lyr in step._viewer.layers if SELECTION_KEY in lyr.metadata]
    assert outline.metadata["track_ids"] == [0, 1]
    vec = np.asarray(outline.data)
    assert vec.shape == (2 * (N_FRAMES - 1), 2, 2)
    yx = layer.data[:, -2:]
    sel = np.isin(ids, [0, 1])
    starts = {tuple(p) for p in np.round(yx[sel], 6)}
    assert {tuple(p) for p in np.round(vec[:, 0], 6)} <= starts
    ends = np.round(vec[:, 0] + vec[:, 1], 6)
    assert {tuple(p) for p in ends} <= starts
    assert not {tuple(p) for p in np.round(yx[~sel], 6)} & {tuple(p) for p in ends}

    # a lasso around the fast tracks replaces the outline; one around nothing empties it
    hi = pts["log10_d"].max() + 1.0
    assert panel.lasso_select([(-1.0, mid), (3.0, mid), (3.0, hi), (-1.0, hi)]) == [0, 1, 2, 3]
    assert len(outline.data) == 4 * (N_FRAMES - 1)
    assert panel.lasso_select([(10, 10), (11, 10), (11, 11)]) == []
    assert len(outline.data) == 0
    # back to one point per track
    panel.mode = "per track"
    assert sorted(panel.points["track_id"]) == [0, 1, 2, 3]
    # the outline leaves with its tracks
    step._viewer.layers.remove(layer)
    assert not [lyr for lyr in step._viewer.layers if SELECTION_KEY in lyr.metadata]


def test_table_rows_ctrl_clicked_select_and_outline_tracks(analysed, qtbot):
    from qtpy.QtCore import Qt

    step, layer = analysed
    table = step.open_table_dock()
    plot = step.open_plot_dock()
    assert table.model.rowCount() == 4
    row_of = {int(table.model.value(r, "track_id")): r for r in range(4)}
    view = table.view

    def click(track, modifier=Qt.KeyboardModifier.NoModifier):
        rect = view.visualRect(table.model.index(row_of[track], 0))
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, modifier, rect.center())

    click(1)  # a plain click picks one track: no selection outline
    assert step.current_track == 1 and plot.track == 1
    assert not [lyr for lyr in step._viewer.layers if SELECTION_KEY in lyr.metadata]
    click(3, Qt.KeyboardModifier.ControlModifier)  # ctrl-click: tracks 1 and 3
    (outline,) = [lyr for lyr in step._viewer.layers if SELECTION_KEY in lyr.metadata]
    assert outline.metadata["track_ids"] == [1, 3]
    assert len(outline.data) == 2 * (N_FRAMES - 1)
    assert step.settings.mode == "ids" and step.selected_track_ids(layer) == [1, 3]
    assert step.current_track == 3 and plot.track == 3  # the clicked row is the picked track


def test_units_table_names_the_state_column(analysed, tmp_path):
    from napari_step.io import read_tracks

    step, layer = analysed
    step.colour_by.value = "state"
    assert STATE_COLOUR_FEATURE in layer.features.columns
    path = tmp_path / "states.csv"
    assert step.export(path) == [str(path)]
    table = read_tracks(path)
    meta = json.loads(Path(str(path) + ".json").read_text())
    units = meta["column_units"]
    assert "step_state" in table.columns
    assert units["step_state"] == "0 immobile, 1 confined, 2 free, 3 directed"
    assert units["step_alpha"] == "" and units["segment_d"] == meta["units"]
    assert set(units) == set(table.columns)  # every exported column, no other
    assert STATE_COLOUR_FEATURE not in table.columns  # a display detail, not a result
    assert meta["state_names"] == {"0": "immobile", "1": "confined", "2": "free", "3": "directed"}


def test_selection_segments_decimates_long_selections():
    tid = np.repeat([3, 8, 9], 1000)
    frame = np.tile(np.arange(1000), 3)[::-1]  # any row order
    yx = np.random.default_rng(0).normal(size=(3000, 2)).cumsum(axis=0)
    data = np.column_stack([tid, frame, yx])
    full = selection_segments(data, [3, 9, 42])
    assert full.shape == (2 * 999, 2, 2)
    order = np.lexsort((frame, tid))
    first3 = data[order][0, 2:]
    np.testing.assert_allclose(full[0, 0], first3)
    np.testing.assert_allclose(full[0, 0] + full[0, 1], data[order][1, 2:])
    few = selection_segments(data, [3, 9], max_points=200)  # every 10th point and the last
    assert len(few) == 2 * 100
    ends = few[:, 0] + few[:, 1]
    last3 = data[order][999, 2:]
    assert np.isclose(ends, last3).all(axis=1).any()
    with pytest.raises(ValueError, match="max_points"):
        selection_segments(data, [3], max_points=1)


@pytest.mark.render
def test_selection_outline_is_drawn_in_the_canvas(make_napari_viewer, qtbot):
    """Under Xvfb: the outline of tracks 0, 1 (left half) is drawn in magenta, nothing of the
    unselected tracks 2, 3 (right half)."""
    from napari_step._napari._selection_outline import outline_tracks

    viewer = make_napari_viewer(show=True)
    viewer.window._qt_window.resize(1000, 800)
    rng = np.random.default_rng(1)
    rows = []
    for i, x0 in enumerate([50.0, 60.0, 250.0, 260.0]):
        walk = np.cumsum(rng.normal(size=(100, 2)), axis=0) + [100.0, x0]
        rows.append(np.column_stack([np.full(100, i), np.arange(100), walk]))
    layer = viewer.add_tracks(np.concatenate(rows), name="walks")
    outline = outline_tracks(viewer, layer, [0, 1])
    layer.visible = False  # only the outline is drawn
    outline.edge_width = 3
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    magenta = (shot[..., 0] > 150) & (shot[..., 2] > 150) & (shot[..., 1] < 100)
    ys, xs = np.nonzero(magenta)
    assert len(xs) > 200
    assert xs.max() < shot.shape[1] / 2  # the unselected tracks lie right of the middle
