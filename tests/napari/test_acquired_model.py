"""The STEP widget offers the shipped "acquired" model and runs with it (issue 13): on blurred
tracks it reads the true D where the default model reads 2/3 of it."""

import numpy as np

ACQUIRED = "acquired (2-D, blur + noise)"


def test_acquired_model_from_the_widget_reads_blurred_tracks(viewer, step, wait_worker):
    from napari_step._napari._layers import layer_table
    from napari_step.simulate import brownian_acquired

    d_true = 0.5
    pos = brownian_acquired(np.full((30, 150), d_true), 2, 1.0, 0.0, rng=np.random.default_rng(2))
    rows = [
        np.column_stack([np.full(len(p), i), np.arange(len(p)), p + 30.0 * (i + 1)])
        for i, p in enumerate(pos)
    ]
    layer = viewer.add_tracks(np.concatenate(rows), name="blurred")
    assert ACQUIRED in step.model.choices
    step.reset_choices()
    step.tracks.value = layer
    step.mode.value = "all"
    medians = {}
    for model in ("default (2-D)", ACQUIRED):
        step.model.value = model
        assert step.run() is not None
        wait_worker(step, timeout=180_000)
        res = layer_table(layer)
        meta = layer.metadata["napari_step"]
        assert meta["model"] == model and meta["units"] == "px^2/frame", meta
        medians[model] = res.groupby("track_id")["step_d"].median().median() / d_true
    assert abs(medians[ACQUIRED] - 1) < 0.15, medians  # full blur: the true D
    assert medians["default (2-D)"] < 0.8, medians  # what a blur-unaware reading gives
