"""The common drift of a field of view (napari_step.drift) and its subtraction in the analysis."""

import json

import numpy as np
import pandas as pd
import pytest
import trackpy as tp

from napari_step.analysis import analyse_tracks
from napari_step.drift import ensemble_drift, subtract_drift
from napari_step.simulate.acquisition import blend_frames, brownian_acquired


def _table(pos, first_frames=None):
    first_frames = np.zeros(len(pos), int) if first_frames is None else first_frames
    rows = [
        pd.DataFrame({"track_id": i, "frame": f0 + np.arange(len(p)), "y": p[:, 0], "x": p[:, 1]})
        for i, (p, f0) in enumerate(zip(pos, first_frames))
    ]
    return pd.concat(rows, ignore_index=True)


def _drifting(n=100, t=120, d=0.5, velocity=(0.3, -0.2), seed=0):
    """Brownian tracks (D = d px^2/frame) on a field that moves ``velocity`` px per frame."""
    rng = np.random.default_rng(seed)
    x = brownian_acquired(np.full((n, t), d), 2, 0.0, 0.0, rng=rng)
    field = np.arange(t)[:, None] * np.asarray(velocity)
    return x, x + field, field


def test_drift_is_recovered_and_significant():
    _, moved, field = _drifting()
    est = ensemble_drift(_table(moved))
    assert est.tracks_per_frame == 100 and est.z > 20
    # the mean of 100 random walks of variance 1 per frame: sd sqrt(t / 100) ~ 1 px at the end
    err = est.drift.to_numpy() - field
    assert np.sqrt(np.mean(err**2)) < 1.5
    assert abs(est.excursion_px - np.hypot(*field[-1])) < 3


def test_no_drift_is_not_significant():
    x, _, _ = _drifting(seed=1)
    assert ensemble_drift(_table(x)).z < 4


def test_frames_no_track_spans_add_no_drift_and_undo_none():
    # two sets of tracks: frames 0-49 and 60-119; nothing spans 50-59
    _, moved, field = _drifting(n=60, seed=2)
    pos = [moved[i, :50] for i in range(30)] + [moved[i, 60:] for i in range(30, 60)]
    table = _table(pos, [0] * 30 + [60] * 30)
    est = ensemble_drift(table, smoothing=0)
    d = est.drift
    assert list(d.index) == list(range(120))
    assert np.allclose(d.loc[50:60].to_numpy(), d.loc[49].to_numpy())  # held through the gap
    # after it the drift keeps its velocity (trackpy's subtract_drift resets frames it lacks)
    slope = np.polyfit(np.arange(61, 120), d.loc[61:119, "y"].to_numpy(), 1)[0]
    assert abs(slope - 0.3) < 0.1


def test_subtract_drift_keeps_the_input_and_row_order():
    _, moved, field = _drifting(n=20, t=40, seed=3)
    table = _table(moved).sample(frac=1.0, random_state=0)  # any row order
    before = table.copy()
    out = subtract_drift(table, ensemble_drift(table))
    pd.testing.assert_frame_equal(table, before)
    assert (out.index == table.index).all() and (out["frame"] == table["frame"]).all()
    steps = out.sort_values(["track_id", "frame"]).groupby("track_id")["y"].diff()
    assert abs(steps.mean()) < 0.05  # 0.3 px/frame before


def test_centred_smoothing_does_not_lag_like_trackpys():
    # a drift that starts at frame 60: trackpy's trailing mean reacts late
    rng = np.random.default_rng(4)
    t = 120
    field = np.zeros((t, 2))
    field[60:, 0] = 0.5 * np.arange(t - 60)
    x = brownian_acquired(np.full((200, t), 0.2), 2, 0.0, 0.0, rng=rng) + field
    table = _table(x)
    ours = ensemble_drift(table, smoothing=15).drift["y"].to_numpy()
    theirs = tp.compute_drift(table.rename(columns={"track_id": "particle"}), smoothing=15)
    theirs = np.concatenate([[0.0], theirs["y"].to_numpy()])
    err_ours = np.abs(ours - field[:, 0]).max()
    err_theirs = np.abs(theirs - field[:, 0]).max()
    assert err_ours < 0.6 * err_theirs, (err_ours, err_theirs)


def test_analyse_tracks_reads_diffusion_not_drift():
    x, moved, _ = _drifting(n=60, t=100, d=0.5, velocity=(0.8, 0.5), seed=5)
    table = _table(moved)
    plain, s_plain = analyse_tracks(table, frame_step=1)
    sub, s_sub = analyse_tracks(table, frame_step=1, drift="ensemble")
    still, _ = analyse_tracks(_table(x), frame_step=1)  # the same tracks on a still field
    # the velocity (0.94 px/frame) adds its square to the MSD: D reads double
    assert plain["tamsd_d"].mean() > 1.5 * still["tamsd_d"].mean()
    for col in ("tamsd_d", "step_d"):
        assert abs(sub[col].mean() / still[col].mean() - 1) < 0.03, col
    # the returned table keeps the input's positions
    np.testing.assert_allclose(sub["y"].to_numpy(), plain["y"].to_numpy())
    assert any("subtracted the common drift" in m for m in s_sub.messages)
    assert not any("drift of the field" in m for m in s_plain.messages)
    meta = sub.attrs["napari_step"]
    assert meta["drift_subtracted"] is True and "drift" in meta
    assert "drift_subtracted" not in plain.attrs["napari_step"]


def test_drift_hides_a_compressed_movie_until_it_is_subtracted():
    rng = np.random.default_rng(6)
    x = brownian_acquired(np.ones((400, 80)), 2, 0.0, 0.0, rng=rng)
    smooth = blend_frames(x, np.tile([0.7, 0.4, 0.2], (400, 1)))
    moved = smooth + np.arange(80)[:, None] * np.array([0.6, 0.3])
    table = _table(moved)
    _, s_plain = analyse_tracks(table)
    assert s_plain.frame_step == 1
    assert any("common drift" in m and "--subtract-drift" in m for m in s_plain.messages)
    _, s_sub = analyse_tracks(table, drift="ensemble")
    assert s_sub.frame_step > 1
    assert any("compressed video" in m for m in s_sub.messages)


def test_bad_drift_arguments_say_what_is_wrong():
    table = _table([np.zeros((1, 2)), np.ones((1, 2))])
    with pytest.raises(ValueError, match="no track has two consecutive frames"):
        ensemble_drift(table)
    with pytest.raises(ValueError, match="smoothing"):
        ensemble_drift(table, smoothing=-1)
    good = _table([np.cumsum(np.ones((10, 2)), 0)])
    with pytest.raises(ValueError, match="'ensemble'"):
        analyse_tracks(good, drift="trackpy")
    with pytest.raises(ValueError, match="no column"):
        subtract_drift(good, pd.DataFrame({"x": [0.0]}, index=[0]))


def test_cli_subtract_drift(tmp_path):
    from napari_step.cli import main

    _, moved, _ = _drifting(n=40, t=60, d=0.5, velocity=(0.8, 0.5), seed=8)
    _table(moved).rename(columns={"track_id": "particle"}).to_csv(tmp_path / "t.csv", index=False)
    src = str(tmp_path / "t.csv")
    assert main(["analyze", src, "--out", str(tmp_path / "a"), "--subtract-drift"]) == 0
    res = pd.read_csv(next((tmp_path / "a").glob("t.results*.csv")))
    meta = json.loads(next((tmp_path / "a").glob("t.results*.json")).read_text())
    assert meta.get("napari_step", meta)["drift_subtracted"] is True
    assert abs(res["tamsd_d"].median() / 0.5 - 1) < 0.15
    np.testing.assert_allclose(np.sort(res["y"].to_numpy()), np.sort(_table(moved)["y"].to_numpy()))
