"""Issue 14, items 4 and 5: a colouring that shows the data (range, blending, colour bar,
honest layer controls, NaN-safe) and the per-track results table dock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

PX, DT = 0.1, 0.05


def _add_tracks(viewer, truth_tracks):
    data, feats = truth_tracks
    return viewer.add_tracks(
        data,
        features=feats.reset_index(drop=True),
        name="truth",
        metadata={"pixel_size_um": PX, "frame_interval_s": DT},
    )


def _run(step, wait_worker, ids):
    step.mode.value = "ids"
    step.track_ids.value = ids
    assert step.run() is not None
    wait_worker(step)


@pytest.mark.parametrize("bright", [True, False])
def test_blending_colour_bar_and_honest_controls(
    viewer, step, truth_tracks, small_sample, wait_worker, bright
):
    from napari.utils.colormaps import AVAILABLE_COLORMAPS

    from napari_step._napari._colour import GREY
    from napari_step._napari._colour_bar import ColourBarWidget
    from napari_step._napari._widgets_common import docks_of

    movie = small_sample[0].astype(float)
    image = viewer.add_image(movie.max() - movie if bright else movie, name="movie")
    layer = _add_tracks(viewer, truth_tracks)
    assert image.contrast_limits
    _run(step, wait_worker, "0-5")
    # translucent over a bright field (additive washes colours out), additive over dark
    assert layer.blending == ("translucent" if bright else "additive")
    # the layer controls name the colormap really drawn
    assert layer.colormap in AVAILABLE_COLORMAPS
    assert layer.colormap == layer.colormaps_dict[layer.color_by].name
    # both kinds visible: analysed tracks coloured, the others grey, nothing transparent
    colours = np.asarray(layer.track_colors)
    assert np.all(colours[:, 3] == 1.0)
    ids = np.round(layer.data[:, 0]).astype(int)
    grey = np.all(np.isclose(colours[:, :3], GREY[:3]), axis=1)
    assert grey[ids > 5].all() and not grey[ids <= 5].any()
    assert len(np.unique(np.round(colours[ids <= 5, :3], 3), axis=0)) > 5
    assert layer.features["step_d"][ids > 5].isna().all()  # NaN kept in the table
    # a colour bar next to the canvas, with the layer's range and units
    bars = docks_of(viewer, ColourBarWidget)
    assert len(bars) == 1 and bars[0].layer is layer
    lo, hi = layer.metadata["napari_step"]["colour_range"]
    assert (bars[0].colorbar.norm.vmin, bars[0].colorbar.norm.vmax) == (lo, hi)
    assert "um^2/s" in bars[0].label


def test_colour_by_alpha_survives_save_and_reopen(viewer, step, tmp_path, wait_worker):
    from napari_step._napari._colour import ALPHA_COLOUR_FEATURE
    from napari_step._napari._io import export_results, get_reader
    from napari_step.simulate import fbm

    rng = np.random.default_rng(2)
    pos = fbm(3, 100, alpha=0.5, rng=rng)
    tid = np.repeat(np.arange(3), 100)
    data = np.column_stack([tid, np.tile(np.arange(100), 3), pos.reshape(-1, 2) * 3 + 50])
    layer = viewer.add_tracks(
        data, name="sim", metadata={"pixel_size_um": PX, "frame_interval_s": DT}
    )
    step.alpha.value = True
    step.colour_by.value = "alpha"
    _run(step, wait_worker, "0-2")
    assert layer.color_by == ALPHA_COLOUR_FEATURE
    path = tmp_path / "sim.csv"
    export_results(layer, path)
    reader = get_reader(str(path))
    ((data2, kwargs, kind),) = reader(str(path))
    reopened = viewer.add_tracks(data2, **kwargs)
    assert reopened.color_by == ALPHA_COLOUR_FEATURE
    assert reopened.metadata["napari_step"]["colour_by"] == "alpha"
    np.testing.assert_allclose(
        np.asarray(reopened.track_colors), np.asarray(layer.track_colors), atol=1e-6
    )


def test_per_track_table_rows_sorting_click_and_export(
    viewer, step, truth_tracks, wait_worker, tmp_path
):
    from qtpy.QtCore import Qt

    from napari_step._napari._layers import HIGHLIGHT_KEY

    _add_tracks(viewer, truth_tracks)
    table = step.open_table_dock()
    assert table.model.rowCount() == 0 and "no results" in table.info.text()
    _run(step, wait_worker, "0-7")
    assert table.model.rowCount() == 8  # one row per analysed track
    cols = list(table.frame.columns)
    for c in (
        "track_id",
        "n_points",
        "median_d",
        "tamsd_d",
        "msd_d",
        "msd_alpha",
        "n_segments",
        "immobile_fraction",
    ):
        assert c in cols
    assert sorted(table.frame["track_id"]) == list(range(8))
    # sortable: by median D, descending
    col = cols.index("median_d")
    table.view.sortByColumn(col, Qt.SortOrder.DescendingOrder)
    shown = [float(table.model.value(r, "median_d")) for r in range(8)]
    assert shown == sorted(shown, reverse=True)
    # a click picks the track: plots follow, the track is outlined in the canvas
    plot = step.open_plot_dock()
    tid = table.select_row(0)
    assert tid == int(table.frame.sort_values("median_d").iloc[-1]["track_id"])
    assert plot.track == tid and step.current_track == tid
    outline = [lyr for lyr in viewer.layers if HIGHLIGHT_KEY in lyr.metadata]
    assert outline and outline[0].metadata["track_id"] == tid
    # export: CSV and Parquet with a sidecar, through the core's writer
    for name in ("t.csv", "t.parquet"):
        written = table.export(tmp_path / name)
        assert written == str(tmp_path / name)
        assert (tmp_path / (name + ".json")).exists()
    back = pd.read_csv(tmp_path / "t.csv")
    assert len(back) == 8 and list(back.columns) == cols


def test_table_model_is_lazy_and_sorts_nan_last(qtbot):
    from qtpy.QtCore import Qt

    from napari_step._napari._results_table import FrameModel

    n = 100_000
    rng = np.random.default_rng(0)
    d = rng.lognormal(size=n)
    d[::1000] = np.nan
    model = FrameModel()
    model.set_frame(pd.DataFrame({"track_id": np.arange(n), "median_d": d}))
    assert model.rowCount() == n and model.columnCount() == 2
    model.sort(1, Qt.SortOrder.AscendingOrder)
    vals = np.array([model.value(r, "median_d") for r in range(n - 200, n)])
    assert np.isnan(vals[-100:]).all()
    head = np.array([model.value(r, "median_d") for r in range(100)])
    assert np.all(np.diff(head) >= 0) and head[0] == np.nanmin(d)
    model.sort(1, Qt.SortOrder.DescendingOrder)
    assert model.value(0, "median_d") == np.nanmax(d) and np.isnan(model.value(n - 1, "median_d"))
