"""The STEP widget on tracks whose steps are correlated over several frames (as in compressed
video): the acquisition check runs once over every chosen track, says so in the notification,
and D is read on k-frame steps; camera-physics tracks keep one-frame steps and say nothing."""

import numpy as np


def _layer(viewer, pos, name):
    rows = [
        np.column_stack([np.full(len(p), i), np.arange(len(p)), p + 30.0 * (i + 1)])
        for i, p in enumerate(pos)
    ]
    return viewer.add_tracks(np.concatenate(rows), name=name)


def _run(step, layer, wait_worker):
    step.reset_choices()
    step.tracks.value = layer
    step.mode.value = "all"
    assert step.run() is not None
    wait_worker(step, timeout=180_000)


def test_smoothed_tracks_are_read_on_k_frame_steps(viewer, step, wait_worker, notes):
    from napari_step._napari._layers import layer_table
    from napari_step.simulate import brownian_acquired
    from napari_step.simulate.acquisition import blend_frames

    rng = np.random.default_rng(5)
    pos = brownian_acquired(np.ones((300, 80)), 2, 0.0, 0.0, rng=rng)
    smooth = blend_frames(pos, np.tile([0.7, 0.4, 0.2], (300, 1)))
    layer = _layer(viewer, smooth, "smoothed")
    _run(step, layer, wait_worker)
    text = " ".join(m for _, m in notes)
    assert "steps are correlated over" in text and "compressed video" in text, notes
    res = layer_table(layer)
    assert res["tamsd_d"].mean() > 0.85  # true D 1; one-frame TA-MSD reads ~0.7 here
    notes.clear()
    plain = _layer(viewer, pos, "camera")
    _run(step, plain, wait_worker)
    assert not any("correlated" in m for _, m in notes), notes
    assert abs(layer_table(plain)["tamsd_d"].mean() - 1) < 0.1


def test_subtract_drift_reads_the_tracks_not_the_stage(viewer, step, wait_worker, notes):
    from napari_step._napari._layers import layer_table, results_metadata
    from napari_step.simulate import brownian_acquired
    from napari_step.simulate.acquisition import blend_frames

    rng = np.random.default_rng(6)
    pos = brownian_acquired(np.ones((300, 80)), 2, 0.0, 0.0, rng=rng)
    smooth = blend_frames(pos, np.tile([0.7, 0.4, 0.2], (300, 1)))
    moved = smooth + np.arange(80)[:, None] * np.array([0.6, 0.3])  # a drifting stage
    layer = _layer(viewer, moved, "drifting")
    data_before = layer.data.copy()
    _run(step, layer, wait_worker)
    text = " ".join(m for _, m in notes)
    assert "common drift" in text and "subtract common drift" in text, notes
    assert results_metadata(layer)["frame_step"] == 1
    assert results_metadata(layer)["drift_subtracted"] is False
    notes.clear()
    step.subtract_drift.value = True
    assert step.settings.subtract_drift is True
    _run(step, layer, wait_worker)
    text = " ".join(m for _, m in notes)
    assert "subtracted the common drift" in text and "compressed video" in text, notes
    meta = results_metadata(layer)
    assert meta["frame_step"] > 1 and meta["drift_subtracted"] is True
    np.testing.assert_array_equal(layer.data, data_before)  # the layer's positions stay
    assert abs(layer_table(layer)["tamsd_d"].mean() - 1) < 0.15
