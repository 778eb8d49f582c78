"""STEP widget with change points: segment_d feature, change-point Points layer, segments table,
segments export and the D(t) plot's segment line (real viewer, real weights, simulated tracks
with a known D step)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from napari_step._napari._layers import SEGMENTS_KEY, analysed_track_ids
from napari_step._napari.step_widget import changepoints_layer

PX, DT = 0.1, 0.05  # um, s: D(um^2/s) = D(px^2/frame) * PX**2 / DT
FACTOR = PX**2 / DT
N_FRAMES, CP = 120, 60
D1, D2 = 0.05, 2.0  # px^2/frame before / from frame CP on


def _simulate(track_ids, seed) -> tuple[np.ndarray, pd.DataFrame]:
    """Brownian tracks (napari Tracks data [id, t, y, x]) whose D steps from D1 to D2 at CP."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, tid in enumerate(track_ids):
        d = np.where(np.arange(1, N_FRAMES) < CP, D1, D2)  # step n arrives at frame n
        steps = rng.normal(size=(N_FRAMES - 1, 2)) * np.sqrt(2 * d)[:, None]
        pos = np.vstack([[0.0, 0.0], np.cumsum(steps, axis=0)]) + [60.0 + 25 * k, 60.0]
        frames = np.arange(N_FRAMES)
        rows.append(np.column_stack([np.full(N_FRAMES, tid), frames, pos]))
    data = np.vstack(rows)
    d_true = np.where(data[:, 1] < CP, D1, D2)
    return data, pd.DataFrame({"d_true": d_true})


@pytest.fixture
def layer(viewer, step):
    """8 tracks: 0-3 for the first run, 10-13 for the second."""
    data_a, feats_a = _simulate([0, 1, 2, 3], seed=11)
    data_b, feats_b = _simulate([10, 11, 12, 13], seed=12)
    lyr = viewer.add_tracks(
        np.vstack([data_a, data_b]),
        features=pd.concat([feats_a, feats_b], ignore_index=True),
        name="sim",
        metadata={"pixel_size_um": PX, "frame_interval_s": DT},
    )
    step.reset_choices()
    step.tracks.value = lyr
    return lyr


def _run_ids(step, wait_worker, ids, estimator="mle"):
    step.mode.value = "ids"
    step.track_ids.value = ", ".join(str(i) for i in ids)
    step.segments.value = True
    step.estimator.value = estimator
    worker = step.run()  # what the Run button calls
    assert worker is not None
    wait_worker(step, timeout=120_000)


def _check_segments(layer, viewer, ids):
    ids = list(ids)
    feats = layer.features
    tid = np.round(layer.data[:, 0]).astype(int)
    frame = np.round(layer.data[:, 1]).astype(int)
    assert {"segment_d", "segment_log10_d"} <= set(feats.columns)
    seg_d = feats["segment_d"].to_numpy(float)
    for t in ids:
        mine = tid == t
        assert np.isfinite(seg_d[mine]).all()
        # away from the change point the segment D matches the truth (um^2/s) within 30%
        before = np.median(seg_d[mine & (frame < CP - 3)])
        after = np.median(seg_d[mine & (frame >= CP + 3)])
        assert before == pytest.approx(D1 * FACTOR, rel=0.3), t
        assert after == pytest.approx(D2 * FACTOR, rel=0.3), t
    np.testing.assert_allclose(
        feats["segment_log10_d"].to_numpy(float)[np.isin(tid, ids)],
        np.log10(seg_d[np.isin(tid, ids)]),
    )

    pts = changepoints_layer(viewer, layer)
    assert pts is not None and pts.name == f"{layer.name} change points"
    pf = pts.features
    for t in ids:
        mine = pf["track_id"].to_numpy() == t
        assert mine.sum() == 1, t
        t_pos = pts.data[mine][0]
        assert abs(t_pos[0] - CP) <= 3
        # the point sits on the track's position at that frame ([t, y, x])
        row = np.flatnonzero((tid == t) & (frame == int(round(t_pos[0]))))[0]
        np.testing.assert_allclose(t_pos, layer.data[row, 1:])

    seg = layer.metadata[SEGMENTS_KEY]
    for t in ids:
        mine = seg[seg["track_id"] == t]
        assert len(mine) == 2, t
        assert list(mine["segment"]) == [0, 1]
        assert mine["start_frame"].iloc[0] == 0 and mine["stop_frame"].iloc[-1] == N_FRAMES
        assert abs(int(mine["start_frame"].iloc[1]) - CP) <= 3
        assert list(mine["changepoint"]) == [False, True]


def test_segments_run_table_export_merge_and_plot(
    viewer, step, layer, wait_worker, tmp_path, notes
):
    other_layers = [lyr for lyr in viewer.layers]
    plot = step.open_plot_dock()

    _run_ids(step, wait_worker, [0, 1, 2, 3])
    assert not [n for n in notes if n[0] == "error"], notes
    assert set(analysed_track_ids(layer)) == {0, 1, 2, 3}
    _check_segments(layer, viewer, [0, 1, 2, 3])
    # unanalysed tracks hold NaN
    tid = np.round(layer.data[:, 0]).astype(int)
    assert layer.features["segment_d"][tid >= 10].isna().all()
    assert layer.metadata["napari_step"]["segment_estimator"] == "mle"
    # no other layer was touched: the tracks layer is unchanged, one new Points layer (and
    # the outline of the picked track)
    from napari_step._napari._layers import HIGHLIGHT_KEY

    assert all(lyr in viewer.layers for lyr in other_layers)
    new = [lyr for lyr in viewer.layers if lyr not in other_layers]
    assert [type(lyr).__name__ for lyr in new if HIGHLIGHT_KEY not in lyr.metadata] == ["Points"]

    # the widget's table: 2 rows per track (track, start, end, D, length, and the core's
    # per-segment duration: seconds here, the layer being calibrated)
    table = step.segments_table
    assert table.rowCount() == 8
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["track", "start", "end", "D (um^2/s)", "length (frames)", "duration (s)"]
    first = [table.item(0, c).text() for c in range(table.columnCount())]
    assert first[0] == "0" and first[1] == "0"
    assert int(first[2]) - int(first[1]) + 1 == int(first[4])  # end: the last frame
    assert float(first[5]) == pytest.approx(int(first[4]) * DT)

    # export
    out = tmp_path / "segs.csv"
    written = step.export_segments(str(out))
    assert written is not None and out.is_file()
    df = pd.read_csv(out)
    assert list(df.columns) == [
        "track_id",
        "segment",
        "start_frame",
        "stop_frame",
        "n_frames",
        "d",
        "changepoint",
        "duration",
    ]
    assert len(df) == 8 and (df.groupby("track_id").size() == 2).all()
    np.testing.assert_allclose(df["d"], layer.metadata[SEGMENTS_KEY]["d"])
    side = json.loads((tmp_path / "segs.csv.json").read_text())
    assert side["units"] == "um^2/s" and side["column_units"]["d"] == "um^2/s"
    assert side["column_units"]["duration"] == "s" and "alpha" not in side["column_units"]
    assert side["segment_estimator"] == "mle"
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file

    # the plot shows the shown track's segments as a step line with change-point markers
    step.set_current_track(1)
    assert plot.segment_line is not None and plot.segment_line.get_label() == "segments"
    assert "segments" in [ln.get_label() for ln in plot.ax_d.lines]
    assert len(plot.changepoint_lines) == 1
    cp_t = plot.changepoint_lines[0].get_xdata()[0]
    assert abs(cp_t / DT - CP) <= 3

    # a second run on other tracks keeps the first tracks' segments and change points
    pts = changepoints_layer(viewer, layer)
    _run_ids(step, wait_worker, [10, 11, 12, 13])
    assert changepoints_layer(viewer, layer) is pts  # updated, not duplicated
    assert len(pts.data) == 8
    assert set(analysed_track_ids(layer)) == {0, 1, 2, 3, 10, 11, 12, 13}
    _check_segments(layer, viewer, [0, 1, 2, 3, 10, 11, 12, 13])
    assert step.segments_table.rowCount() == 16
    assert (
        len([lyr for lyr in viewer.layers if HIGHLIGHT_KEY not in lyr.metadata])
        == len(other_layers) + 1
    )

    # a run without segments drops the re-analysed track's segments only
    step.segments.value = False
    step.track_ids.value = "0"
    assert step.run() is not None
    wait_worker(step, timeout=120_000)
    tid = np.round(layer.data[:, 0]).astype(int)
    assert layer.features["segment_d"][tid == 0].isna().all()
    assert layer.features["segment_d"][tid == 1].notna().all()
    seg = layer.metadata[SEGMENTS_KEY]
    assert 0 not in set(seg["track_id"]) and len(seg) == 14
    assert len(pts.data) == 7 and 0 not in set(pts.features["track_id"])


def test_segments_export_without_segments_warns(viewer, step, layer, tmp_path, notes):
    assert step.export_segments(str(tmp_path / "none.csv")) is None
    assert any(level == "warning" and "no segments" in msg for level, msg in notes)
    assert not (tmp_path / "none.csv").exists()
    assert changepoints_layer(viewer, layer) is None


def test_estimator_choice_follows_checkbox(step):
    assert list(step.estimator.choices) == ["mle", "cve_pooled"]
    assert "localisation noise" in step.estimator.tooltip
    step.segments.value = False
    assert not step.estimator.enabled
    step.segments.value = True
    assert step.estimator.enabled


def test_analyse_job_threads_the_estimator():
    """The widget's estimator reaches the core: cve_pooled and mle give other segment D."""
    from napari_step._napari._analysis_jobs import AnalysisParams, analyse_job, run_job

    data, _ = _simulate([0, 1], seed=5)
    table = pd.DataFrame(data, columns=["track_id", "frame", "y", "x"])
    table = table.astype({"track_id": int, "frame": int})
    out = {}
    for est in ("mle", "cve_pooled"):
        params = AnalysisParams(pixel_size_um=PX, frame_interval_s=DT, segments=True, estimator=est)
        results, summary = run_job(analyse_job(table, [0, 1], params))
        assert {"segment_d", "segment_log10_d"} <= set(results.columns)
        assert list(summary.segments["track_id"]) == [0, 0, 1, 1]
        out[est] = summary.segments["d"].to_numpy(float)
    assert not np.allclose(out["mle"], out["cve_pooled"])
    params = AnalysisParams(pixel_size_um=PX, frame_interval_s=DT)  # segments off
    results, summary = run_job(analyse_job(table, [0, 1], params))
    assert "segment_d" not in results.columns and summary.segments is None
