"""alpha(t) in the STEP widget: the feature, colouring by alpha, merging, the plot's alpha line.

Real viewer, real shipped weights (D and alpha models), fractional Brownian motion tracks."""

from __future__ import annotations

import numpy as np
import pytest

from napari_step._napari._colour import (
    ALPHA_COLOUR_FEATURE,
    COLOUR_FEATURE,
    GREY,
    SENTINEL,
)

SUB, SUPER = [0, 1, 2], [3, 4, 5]


@pytest.fixture
def fbm_layer(viewer, step):
    """3 subdiffusive (alpha 0.4) and 3 superdiffusive (alpha 1.6) fBm tracks, 120 frames."""
    from napari_step.simulate import fbm

    rng = np.random.default_rng(7)
    pos = np.concatenate([fbm(3, 120, alpha=0.4, rng=rng), fbm(3, 120, alpha=1.6, rng=rng)])
    rows = []
    for i, p in enumerate(pos):
        yx = 3.0 * p + np.array([20.0 + 40.0 * (i % 3), 20.0 + 60.0 * (i // 3)])
        rows.append(np.column_stack([np.full(120, i), np.arange(120), yx]))
    lyr = viewer.add_tracks(np.concatenate(rows), name="fbm")
    step.reset_choices()
    step.tracks.value = lyr
    return lyr


def _run(step, wait_worker):
    worker = step.run()
    assert worker is not None
    wait_worker(step, timeout=120_000)


def _ids(layer):
    return np.round(layer.data[:, 0]).astype(int)


def _median_alpha(layer, tid):
    a = layer.features["step_alpha"].to_numpy(float)[_ids(layer) == tid]
    return float(np.nanmedian(a))


def _check_alpha_colours(layer, analysed):
    assert layer.color_by == ALPHA_COLOUR_FEATURE
    assert ALPHA_COLOUR_FEATURE in layer.colormaps_dict
    vals = layer.features[ALPHA_COLOUR_FEATURE].to_numpy(float)
    assert np.isfinite(vals).all()  # napari #5901: one NaN makes every track transparent
    colours = np.asarray(layer._track_colors)
    assert colours.shape == (len(layer.data), 4)
    assert np.all(colours[:, 3] == 1.0)
    ids = _ids(layer)
    others = ~np.isin(ids, list(analysed))
    grey = np.all(np.isclose(colours[:, :3], GREY[:3]), axis=1)
    assert np.all(grey[others])
    assert np.all(vals[others] == SENTINEL)
    has_alpha = np.isfinite(layer.features["step_alpha"].to_numpy(float))
    assert has_alpha[~others].any()
    assert not np.any(grey[has_alpha])


def test_alpha_off_by_default(step, fbm_layer, wait_worker):
    assert step.alpha.value is False
    assert step.colour_by.value == "log10 D"
    step.mode.value = "ids"
    step.track_ids.value = "0"
    _run(step, wait_worker)
    assert "step_alpha" not in fbm_layer.features.columns
    assert fbm_layer.color_by == COLOUR_FEATURE


def test_alpha_feature_colouring_and_plot(step, fbm_layer, wait_worker, qtbot):
    step.alpha.value = True
    step.mode.value = "all"
    step.min_length.value = 20
    _run(step, wait_worker)
    feats = fbm_layer.features
    assert "step_alpha" in feats.columns
    assert np.isfinite(feats["step_alpha"].to_numpy(float)).all()
    sub = [_median_alpha(fbm_layer, t) for t in SUB]
    sup = [_median_alpha(fbm_layer, t) for t in SUPER]
    assert max(sub) < 0.9 < min(sup), (sub, sup)
    # D colouring stays the default
    assert fbm_layer.color_by == COLOUR_FEATURE

    step.colour_by.value = "alpha"
    _check_alpha_colours(fbm_layer, set(SUB + SUPER))
    assert fbm_layer.metadata["napari_step"]["colour_by"] == "alpha"
    assert fbm_layer.metadata["napari_step"]["alpha_model"] == "default"

    plot = step.open_plot_dock()
    step.set_current_track(4)
    assert plot.alpha_line is not None
    assert plot.alpha_line.get_label() == "alpha (STEP)"
    y = np.asarray(plot.alpha_line.get_ydata(), float)
    assert np.nanmedian(y) == pytest.approx(_median_alpha(fbm_layer, 4))
    assert "alpha" in plot.colorbar.ax.get_xlabel()

    step.colour_by.value = "log10 D"
    assert fbm_layer.color_by == COLOUR_FEATURE
    assert "log10 D" in plot.colorbar.ax.get_xlabel()


def test_alpha_subset_and_merge(step, fbm_layer, wait_worker):
    step.alpha.value = True
    step.colour_by.value = "alpha"
    step.mode.value = "ids"
    step.track_ids.value = "0, 4"
    _run(step, wait_worker)
    ids = _ids(fbm_layer)
    alpha = fbm_layer.features["step_alpha"].to_numpy(float)
    assert np.isnan(alpha[~np.isin(ids, [0, 4])]).all()
    assert np.isfinite(alpha[np.isin(ids, [0, 4])]).all()
    _check_alpha_colours(fbm_layer, {0, 4})

    # a second run merges: earlier alpha kept, the new track added
    before = alpha[ids == 0].copy()
    step.track_ids.value = "2"
    _run(step, wait_worker)
    alpha = fbm_layer.features["step_alpha"].to_numpy(float)
    np.testing.assert_array_equal(alpha[ids == 0], before)
    assert np.isfinite(alpha[ids == 2]).all()
    assert np.isnan(alpha[np.isin(ids, [1, 3, 5])]).all()
    _check_alpha_colours(fbm_layer, {0, 2, 4})

    # the plot shows no alpha line for a track without alpha
    plot = step.open_plot_dock()
    step.set_current_track(1)
    assert plot.alpha_line is None
    step.set_current_track(2)
    assert plot.alpha_line is not None
