"""STEP on real frames: trackpy's bulk-water colloids (committed clip, tests/data/README.md).

Particles in water diffuse freely, so every particle has the same D, constant in time, and the
ensemble MSD slope (trackpy's ``emsd`` over lags 1..10, fitted with an intercept that absorbs
motion blur and localisation noise) measures it. STEP, given no acquisition parameter, must read
the same D: median over tracks of the per-track median within 15 % (the clip is 60 frames of
about 85 tracks; issue 13's target on the full movie, benchmarks/real_movie.py, is 10 %)."""

from pathlib import Path

import numpy as np
import pytest
import trackpy as tp

from napari_step.predict import predict_d
from napari_step.tracks import detect, link

CLIP = Path(__file__).parent / "data" / "bulk_water_clip.npz"


@pytest.mark.xfail(
    strict=True,
    reason=(
        "issue 13 target not met on one-frame steps: the model 'auto' chooses here (acquired) "
        "reads 0.81 of the ensemble-MSD D on this clip (the default model 0.65); the movie is "
        "H.264 video whose "
        "steps correlate over ~3 frames, and 60 frames are too few for the acquisition check "
        "to tell (with frame_step=2 the acquired model reads 0.92)"
    ),
)
def test_step_reads_the_ensemble_msd_d_on_the_real_clip():
    movie = np.load(CLIP)["movie"]
    tracks = link(detect(movie, 11, minmass=100, invert=True), 5, memory=0, min_length=30)
    traj = tracks.rename(columns={"track_id": "particle"})
    traj = tp.subtract_drift(traj, tp.compute_drift(traj, smoothing=15)).reset_index(drop=True)
    em = tp.emsd(traj, 1, 1, max_lagtime=10)  # px^2 against lag in frames
    d_msd = np.polyfit(em.index.to_numpy(float), em.to_numpy(), 1)[0] / 4
    pos = [g.sort_values("frame")[["y", "x"]].to_numpy(float) for _, g in traj.groupby("particle")]
    assert len(pos) >= 60
    d_step = np.median([np.median(d) for d in predict_d(pos)])  # model "auto": no parameter
    msg = f"STEP {d_step:.4f} vs ensemble MSD {d_msd:.4f} px^2/frame"
    assert abs(d_step / d_msd - 1) < 0.15, msg
