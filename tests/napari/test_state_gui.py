"""Diffusive states in the STEP widget: the per-frame state feature, colouring by state (four
fixed colours, grey where no state), and the legend in the colour-bar dock.

Real viewer, real shipped weights (D and state models), fractional Brownian motion tracks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_step._napari._colour import (
    COLOUR_FEATURE,
    GREY,
    SENTINEL,
    STATE_COLOUR_FEATURE,
    STATE_COLOURS,
    state_colormap,
    state_values,
)


@pytest.fixture
def tracks(viewer, step):
    """4 fBm tracks (alpha 0.4 and 1.6), 100 frames."""
    from napari_step.simulate import fbm

    rng = np.random.default_rng(3)
    pos = np.concatenate([fbm(2, 100, alpha=0.4, rng=rng), fbm(2, 100, alpha=1.6, rng=rng)])
    rows = [
        np.column_stack([np.full(100, i), np.arange(100), 3.0 * p + 30.0 * (i + 1)])
        for i, p in enumerate(pos)
    ]
    lyr = viewer.add_tracks(np.concatenate(rows), name="fbm")
    step.reset_choices()
    step.tracks.value = lyr
    return lyr


def test_state_values_and_colormap():
    vals = state_values([0, 1, 2, 3, np.nan, 7])
    np.testing.assert_allclose(vals, [0.125, 0.375, 0.625, 0.875, SENTINEL, SENTINEL])
    cols = state_colormap().map(vals)
    np.testing.assert_allclose(cols[:4, :3], np.asarray(STATE_COLOURS))
    np.testing.assert_allclose(cols[4:, :3], [GREY[:3], GREY[:3]])


def test_colour_by_state_and_legend(step, tracks, wait_worker):
    from napari_step._napari._colour_bar import ColourBarWidget
    from napari_step._napari._widgets_common import docks_of

    assert step.states.value is False
    step.states.value = True
    step.mode.value = "ids"
    step.track_ids.value = "0, 3"
    assert step.run() is not None
    wait_worker(step, timeout=120_000)
    ids = np.round(tracks.data[:, 0]).astype(int)
    state = tracks.features["step_state"].to_numpy(float)
    run = np.isin(ids, [0, 3])
    assert np.isin(state[run], [0, 1, 2, 3]).all()
    assert np.isnan(state[~run]).all()
    assert tracks.color_by == COLOUR_FEATURE  # D colouring stays the default

    step.colour_by.value = "state"
    assert tracks.color_by == STATE_COLOUR_FEATURE
    assert tracks.metadata["napari_step"]["colour_by"] == "state"
    vals = tracks.features[STATE_COLOUR_FEATURE].to_numpy(float)
    assert np.isfinite(vals).all()  # napari #5901: one NaN makes every track transparent
    colours = np.asarray(tracks._track_colors)
    assert np.all(colours[:, 3] == 1.0)
    expected = np.asarray(STATE_COLOURS)[np.nan_to_num(state[run]).astype(int)]
    np.testing.assert_allclose(colours[run, :3], expected, atol=1e-6)
    np.testing.assert_allclose(colours[~run, :3], np.broadcast_to(GREY[:3], (int((~run).sum()), 3)))
    assert "state" in step.colour_info.value

    (bar,) = docks_of(step._viewer, ColourBarWidget)
    assert bar.colorbar is None
    texts = [t.get_text() for t in bar.legend.get_texts()]
    assert texts == ["immobile", "confined", "free", "directed", "no state"]

    step.colour_by.value = "log10 D"
    assert tracks.color_by == COLOUR_FEATURE
    assert bar.colorbar is not None and "log10 D" in bar.label


def test_dalpha_tab_coloured_by_state_click_picks_track(step, tracks, wait_worker):
    from matplotlib.backend_bases import MouseEvent

    from napari_step._napari._layers import HIGHLIGHT_KEY

    step.alpha.value = True
    step.states.value = True
    step.mode.value = "all"
    assert step.run() is not None
    wait_worker(step, timeout=120_000)
    plot = step.open_plot_dock()
    plot.tabs.setCurrentIndex(3)
    panel = plot.dalpha
    pts = panel.points
    assert sorted(pts["track_id"]) == [0, 1, 2, 3]
    ids = np.round(tracks.data[:, 0]).astype(int)
    alpha = tracks.features["step_alpha"].to_numpy(float)
    for tid, a in zip(pts["track_id"], pts["alpha"]):
        assert a == pytest.approx(np.nanmedian(alpha[ids == tid]))
    # subdiffusive tracks (0, 1) left of the superdiffusive ones (2, 3)
    by_id = pts.set_index("track_id")["alpha"]
    assert max(by_id[0], by_id[1]) < min(by_id[2], by_id[3])
    shown = panel.drawn().sort_values(["alpha", "log10_d"])  # read back from the figure
    expected = pts.sort_values(["alpha", "log10_d"])
    np.testing.assert_allclose(shown[["alpha", "log10_d"]], expected[["alpha", "log10_d"]])
    colours = np.stack(shown["colour"].to_numpy())
    np.testing.assert_allclose(colours, np.asarray(STATE_COLOURS)[expected["state"].to_numpy()])

    panel.canvas.draw()
    row = int(np.flatnonzero(pts["track_id"].to_numpy() == 2)[0])
    x, y = panel.ax.transData.transform((pts["alpha"].iloc[row], pts["log10_d"].iloc[row]))
    event = MouseEvent("button_press_event", panel.canvas, x, y, button=1)
    panel.canvas.callbacks.process("button_press_event", event)
    assert plot.track == 2
    (outline,) = [lyr for lyr in step._viewer.layers if HIGHLIGHT_KEY in lyr.metadata]
    assert outline.metadata["track_id"] == 2 and len(outline.data) == 1
    # a click far from every point picks nothing
    assert panel.click(MouseEvent("button_press_event", panel.canvas, 1, 1, button=1)) is None
    assert plot.track == 2


def test_reader_colouring_by_state():
    """A saved file coloured by state opens coloured by state; without states, by D."""
    import pandas as pd

    from napari_step._napari._colour import colouring_kwargs

    feats = pd.DataFrame({"step_log10_d": [0.1, np.nan, -0.5], "step_state": [3, np.nan, 0]})
    kw = colouring_kwargs(feats, meta := {"colour_by": "state"})
    assert kw["color_by"] == STATE_COLOUR_FEATURE and meta["colour_by"] == "state"
    np.testing.assert_allclose(feats[STATE_COLOUR_FEATURE], [0.875, SENTINEL, 0.125])
    assert kw["colormaps_dict"][STATE_COLOUR_FEATURE].name == state_colormap().name
    no_states = pd.DataFrame({"step_log10_d": [0.1, -0.5]})
    assert colouring_kwargs(no_states, {"colour_by": "state"})["color_by"] == COLOUR_FEATURE


def test_dalpha_lasso_selects_tracks_and_ring_follows_pick(step, tracks, wait_worker):
    from matplotlib.backend_bases import MouseEvent

    from napari_step._napari._layers import HIGHLIGHT_KEY
    from napari_step._napari._selection_outline import SELECTION_KEY

    step.alpha.value = True
    step.mode.value = "all"
    assert step.run() is not None
    wait_worker(step, timeout=120_000)
    plot = step.open_plot_dock()
    plot.tabs.setCurrentIndex(3)
    panel = plot.dalpha
    pts = panel.points.set_index("track_id")

    def ring_at(tid):
        assert panel.ring is not None
        np.testing.assert_allclose(
            np.ravel(panel.ring.get_data()), [pts.loc[tid, "alpha"], pts.loc[tid, "log10_d"]]
        )

    # a pick in the STEP widget (the canvas click and the table go through it) moves the ring
    step.set_current_track(1)
    assert plot.track == 1
    ring_at(1)
    step.set_current_track(3)
    ring_at(3)
    # so does a click on a point of the scatter
    panel.canvas.draw()
    x, y = panel.ax.transData.transform((pts.loc[0, "alpha"], pts.loc[0, "log10_d"]))
    panel.canvas.callbacks.process(
        "button_press_event", MouseEvent("button_press_event", panel.canvas, x, y, button=1)
    )
    assert plot.track == 0
    ring_at(0)

    # a lasso (data coordinates) around the subdiffusive tracks 0, 1 (alpha < 1)
    lo, hi = pts["log10_d"].min() - 1.0, pts["log10_d"].max() + 1.0
    verts = [(-0.5, lo), (1.0, lo), (1.0, hi), (-0.5, hi)]
    assert sorted(panel.lasso_select(verts)) == [0, 1]
    assert step.settings.mode == "ids"
    assert step.selected_track_ids(tracks) == [0, 1]  # what the next Run analyses
    # the first selected track is the picked one (as typed IDs do); all are outlined
    (outline,) = [lyr for lyr in step._viewer.layers if HIGHLIGHT_KEY in lyr.metadata]
    assert len(outline.data) == 1 and outline.metadata["track_id"] == 0
    (selection,) = [lyr for lyr in step._viewer.layers if SELECTION_KEY in lyr.metadata]
    assert selection.metadata["track_ids"] == [0, 1] and len(selection.data) == 2 * 99
    ring_at(0)

    # the same with real mouse events: a shift-drag lasso around the superdiffusive tracks
    panel.canvas.draw()
    (x0, x1), (y0, y1) = panel.ax.get_xlim(), panel.ax.get_ylim()
    x0, y0, y1 = 1.0, y0 + 0.02 * (y1 - y0), y1 - 0.02 * (y1 - y0)
    x1 -= 0.02 * (x1 - x0)
    corners = panel.ax.transData.transform([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    path = [*corners, corners[0]]
    events = [("button_press_event", path[0])]
    events += [("motion_notify_event", p) for p in path[1:]]
    events += [("button_release_event", path[-1])]
    for name, (px, py) in events:
        panel.canvas.callbacks.process(
            name, MouseEvent(name, panel.canvas, px, py, button=1, key="shift")
        )
    assert sorted(panel.selected) == [2, 3]
    assert step.selected_track_ids(tracks) == [2, 3]
    assert plot.track == 2  # no press without shift picked a point on the way
    ring_at(2)
