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
