"""Issue 13 end to end on images: a fluorescence movie of blurred Brownian particles (full-frame
exposure, photon shot noise), detected and linked by trackpy, analysed with the package
defaults (no acquisition parameter): model "auto" sees the blur in the steps, reads with the
acquired model and gets the true D, where the default model reads about 1 - 2R = 2/3 of it."""

import numpy as np

from napari_step.analysis import analyse_tracks
from napari_step.simulate import brownian_acquired, render_movie
from napari_step.tracks import detect, link

D_TRUE = 0.5  # px^2/frame


def _movie():
    rng = np.random.default_rng(21)
    grid = np.stack(np.meshgrid(np.arange(6), np.arange(6), indexing="ij"), -1).reshape(-1, 2)
    start = 32.0 + 38.0 * grid + rng.uniform(-3, 3, grid.shape)  # 36 particles, well apart
    paths = brownian_acquired(np.full((len(grid), 120), D_TRUE), 2, 1.0, 0.0, rng=rng)
    return render_movie(start[:, None, :] + paths, (256, 256), 1.5, 3000.0, 50.0, rng=rng)


def test_default_analysis_reads_the_true_d_of_a_blurred_movie():
    movie = _movie()
    tracks = link(detect(movie, 7, minmass=500), 4, memory=0, min_length=60)
    assert tracks["track_id"].nunique() >= 30
    res, summary = analyse_tracks(tracks)  # every default: model and frame step "auto"
    assert summary.frame_step == 1  # camera physics only: no codec correlation beyond lag 1
    assert summary.model == "acquired" and "motion blur" in res.attrs["napari_step"]["model_choice"]
    per_track = res.groupby("track_id")["step_d"].median()
    ratio = per_track.median() / D_TRUE
    plain, _ = analyse_tracks(tracks, model="default", frame_step=1)
    ratio_default = plain.groupby("track_id")["step_d"].median().median() / D_TRUE
    assert abs(ratio - 1) < 0.15, (ratio, ratio_default)
    assert ratio_default < 0.85, ratio_default  # what a reading blind to the blur gives
