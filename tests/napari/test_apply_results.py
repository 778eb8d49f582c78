"""A run's result reaches its layer without freezing the viewer (issue 16): the merge, the
NaN-free colour columns, the vertex colours and the counts are built in the worker thread; the
GUI thread only assigns them, recolouring once at most. A layer edited during the run keeps
the edit. The segments table shows the core's per-segment details with their units.

Real viewer, real shipped weights, simulated tracks."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from napari_step._napari._colour import COLOUR_FEATURE, GREY, SENTINEL
from napari_step._napari._layers import (
    SEGMENTS_KEY,
    analysed_track_ids,
    merge_tables,
    set_layer_features,
)

PX, DT = 0.1, 0.05  # um, s


@pytest.fixture
def layer(viewer, step):
    """6 Brownian tracks of 60 frames, unsorted (napari reorders them), with a user column."""
    rng = np.random.default_rng(5)
    rows = []
    for k in range(6):
        pos = np.cumsum(rng.normal(size=(60, 2)) * np.sqrt(2 * 0.2 * (k + 1)), axis=0)
        rows.append(np.column_stack([np.full(60, k), np.arange(60), pos + 40.0 * (k + 1)]))
    data = np.concatenate(rows)
    order = rng.permutation(len(data))
    data = data[order]
    user = pd.DataFrame({"user_mass": data[:, 0] * 1000 + data[:, 1]})
    lyr = viewer.add_tracks(
        data,
        features=user,
        name="bm",
        metadata={"pixel_size_um": PX, "frame_interval_s": DT, "mine": "keep me"},
    )
    step.reset_choices()
    step.tracks.value = lyr
    step.mode.value = "ids"
    return lyr


def _mass_matches(layer) -> bool:
    """The user's column still sits on its own points (napari reorders features)."""
    d = np.asarray(layer.data)
    return np.array_equal(layer.features["user_mass"].to_numpy(), d[:, 0] * 1000 + d[:, 1])


def _count_recolours(layer) -> list:
    """napari's own recolouring passes of ``layer`` (an observer wrapped around it)."""
    calls = []
    real = layer._recolor_tracks

    def counted():
        calls.append(1)
        real()

    layer._recolor_tracks = counted
    return calls


def test_result_is_prepared_in_the_worker_and_assigned_once(step, layer, wait_worker, monkeypatch):
    from napari_step._napari import _step_outputs

    threads = []
    real = _step_outputs.prepare_outcome

    def observed(*a, **kw):
        threads.append(threading.get_ident())
        return real(*a, **kw)

    monkeypatch.setattr(_step_outputs, "prepare_outcome", observed)
    sets, recolours = [], _count_recolours(layer)
    layer.events.properties.connect(lambda e: sets.append(1))
    step.track_ids.value = "1, 4"
    assert step.run() is not None
    wait_worker(step)

    assert threads and threads[0] != threading.main_thread().ident  # merged in the worker
    assert len(sets) == 1  # features assigned once
    assert analysed_track_ids(layer) == [1, 4]
    ids = np.round(layer.data[:, 0]).astype(int)
    feats = layer.features
    run = np.isin(ids, [1, 4])
    assert np.isfinite(feats["step_d"][run]).all() and feats["step_d"][~run].isna().all()
    assert np.isfinite(feats[COLOUR_FEATURE]).all()  # napari #5901: no NaN in the colour column
    assert (feats[COLOUR_FEATURE][~run] == SENTINEL).all()
    assert _mass_matches(layer)  # the user's column kept, on its points
    assert layer.metadata["mine"] == "keep me"
    # the first colouring: napari recoloured for the feature, then (a moment later) for the
    # colormap the layer controls show; the colours are the colormap of the colour column
    assert layer.color_by == COLOUR_FEATURE
    cmap = layer.colormaps_dict[COLOUR_FEATURE]
    assert layer.colormap == cmap.name and len(recolours) == 2
    np.testing.assert_allclose(layer.track_colors, cmap.map(feats[COLOUR_FEATURE].to_numpy()))
    grey = np.all(np.isclose(np.asarray(layer.track_colors)[:, :3], GREY[:3]), axis=1)
    assert grey[~run].all() and not grey[run].any()
    assert step.status.value.startswith("'bm': 2 track(s) analysed")

    # a second run on a coloured layer: the worker's colours are assigned, napari recolours
    # nothing; earlier tracks keep their values
    before = feats["step_d"][run].to_numpy()
    recolours.clear()
    step.track_ids.value = "2"
    assert step.run() is not None
    wait_worker(step)
    assert recolours == []
    assert analysed_track_ids(layer) == [1, 2, 4]
    np.testing.assert_array_equal(layer.features["step_d"][run].to_numpy(), before)
    cmap = layer.colormaps_dict[COLOUR_FEATURE]
    np.testing.assert_allclose(
        layer.track_colors, cmap.map(layer.features[COLOUR_FEATURE].to_numpy())
    )
    assert _mass_matches(layer)


def test_a_layer_edited_during_the_run_keeps_the_edit(step, layer, wait_worker, notes):
    step.track_ids.value = "0, 3"
    assert step.run() is not None
    # while the worker runs (its result waits for the event loop): the user replaces the
    # features (a new column) and adds metadata; both survive the result
    feats = layer.features.copy()
    feats["note"] = np.round(layer.data[:, 0]).astype(int) % 2
    set_layer_features(layer, feats)  # layer order (napari reorders what it is given)
    layer.metadata = {**layer.metadata, "added": 7}
    wait_worker(step)
    assert not [n for n in notes if n[0] == "error"], notes
    assert analysed_track_ids(layer) == [0, 3]
    ids = np.round(layer.data[:, 0]).astype(int)
    np.testing.assert_array_equal(layer.features["note"].to_numpy(), ids % 2)
    assert _mass_matches(layer)
    assert layer.metadata["added"] == 7 and layer.metadata["mine"] == "keep me"
    assert np.isfinite(layer.features[COLOUR_FEATURE]).all()


def test_a_colour_range_typed_during_the_run_is_used(step, layer, wait_worker):
    step.track_ids.value = "0, 1, 2"
    assert step.run() is not None
    step.colour_lo.value, step.colour_hi.value = -4.0, 2.0  # typed: automatic is switched off
    wait_worker(step)
    meta = layer.metadata["napari_step"]
    assert meta["colour_range"] == [-4.0, 2.0] and meta["colour_auto"] is False
    v = layer.features["step_log10_d"].to_numpy(float)
    ok = np.isfinite(v)
    np.testing.assert_allclose(
        layer.features[COLOUR_FEATURE][ok], np.clip((v[ok] + 4.0) / 6.0, 1e-6, 1)
    )


def test_segments_table_shows_the_per_segment_details(step, layer, wait_worker):
    step.segments.value = True
    step.alpha.value = True
    step.states.value = True
    step.track_ids.value = "0, 5"
    assert step.run() is not None
    wait_worker(step, timeout=120_000)
    seg = layer.metadata[SEGMENTS_KEY]
    assert {"duration", "alpha", "state", "confinement_radius"} <= set(seg.columns)
    table = step.segments_table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == [
        "track",
        "start",
        "end",
        "D (um^2/s)",
        "length (frames)",
        "duration (s)",
        "alpha",
        "state",
        "confinement radius (um)",
    ]
    assert table.rowCount() == len(seg)
    row = {h: table.item(0, c).text() for c, h in enumerate(headers)}
    first = seg.iloc[0]
    assert float(row["duration (s)"]) == pytest.approx(first["n_frames"] * DT)
    assert float(row["alpha"]) == pytest.approx(first["alpha"], rel=1e-3)
    names = ("immobile", "confined", "free", "directed")
    assert row["state"] == ("" if pd.isna(first["state"]) else names[int(first["state"])])
    radius = first["confinement_radius"]
    assert row["confinement radius (um)"] == ("" if np.isnan(radius) else f"{radius:.4g}")


def test_earlier_segment_details_follow_new_units():
    """A run in new units converts the kept tracks' segment D, duration and radius exactly."""
    data = np.column_stack([np.repeat([1, 2], 10), np.tile(np.arange(10), 2), np.zeros((20, 2))])
    old_seg = pd.DataFrame(
        {
            "track_id": [1, 2],
            "segment": [0, 0],
            "start_frame": [0, 0],
            "stop_frame": [10, 10],
            "n_frames": [10, 10],
            "d": [0.5, 0.7],
            "changepoint": [False, False],
            "duration": [10 * 0.05, 10 * 0.05],
            "alpha": [0.8, 1.1],
            "state": pd.array([1, 2], dtype="Int64"),
            "confinement_radius": [0.3, np.nan],
        }
    )
    metadata = {
        "napari_step": {"pixel_size_um": 0.1, "frame_interval_s": 0.05, "units": "um^2/s"},
        SEGMENTS_KEY: old_seg,
    }
    results = pd.DataFrame({"track_id": np.repeat(2, 10), "frame": np.arange(10)})
    for c in ("step_d", "tamsd_d", "step_log10_d", "tamsd_log10_d", "segment_d"):
        results[c] = 1.0
    new_seg = old_seg.iloc[[1]].reset_index(drop=True)
    params = {"pixel_size_um": 0.2, "frame_interval_s": 0.1, "model": "m", "units": "um^2/s"}
    feats, md = merge_tables(
        pd.DataFrame(index=range(20)), data, metadata, results, [2], params, new_seg
    )
    seg = md[SEGMENTS_KEY]
    kept = seg[seg["track_id"] == 1].iloc[0]
    assert kept["d"] == pytest.approx(0.5 * (0.2**2 / 0.1) / (0.1**2 / 0.05))
    assert kept["duration"] == pytest.approx(10 * 0.1)
    assert kept["confinement_radius"] == pytest.approx(0.3 * 2)
    assert kept["alpha"] == pytest.approx(0.8) and kept["state"] == 1
    assert len(seg) == 2 and list(seg["track_id"]) == [1, 2]
    assert feats["step_d"].isna().sum() == 10  # track 1 had no features: NaN kept
    assert metadata[SEGMENTS_KEY] is old_seg and old_seg["d"].tolist() == [0.5, 0.7]
