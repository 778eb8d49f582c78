"""Per-track summary: known D and alpha on simulated tracks, gaps, segments, states, real movie."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_step.analysis import analyse_tracks
from napari_step.tamsd import tamsd
from napari_step.track_summary import track_summary

PX, DT = 0.1, 0.05  # um per px, s per frame
FACTOR = PX**2 / DT  # px^2/frame -> um^2/s


def brownian_table(d_px, n_frames=200, seed=0, noise=0.0):
    """Free 2-D Brownian tracks, one per value of ``d_px`` (px^2/frame)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, d in enumerate(d_px):
        steps = rng.normal(0, np.sqrt(2 * d), (n_frames, 2))
        pos = steps.cumsum(0) + 50 + rng.normal(0, noise, (n_frames, 2))
        rows.append(
            pd.DataFrame(
                {
                    "track_id": i,
                    "frame": np.arange(n_frames) + 3 * i,
                    "y": pos[:, 0],
                    "x": pos[:, 1],
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def test_known_d_through_the_real_analysis():
    d_px = np.repeat([0.1, 1.0], 15)
    res, _ = analyse_tracks(brownian_table(d_px), pixel_size=PX, frame_interval=DT)
    s = track_summary(res)
    assert list(s.track_id) == list(range(30)) and (s.n_points == 200).all()
    assert np.allclose(s.duration, 199 * DT) and (s.first_frame == 3 * s.track_id).all()
    truth = d_px * FACTOR  # um^2/s
    for col in ("median_d", "tamsd_d", "msd_d"):
        ratio = s[col].to_numpy() / truth
        assert 0.75 < np.median(ratio) < 1.33, col
        assert (np.abs(np.log10(ratio)) < 0.3).all(), col
    assert (s.d_p16 <= s.median_d).all() and (s.median_d <= s.d_p84).all()
    assert np.abs(s.msd_alpha - 1).median() < 0.1
    # tracks of the fast group are told apart from the slow one by every estimator
    fast = d_px > 0.5
    assert s.median_d[~fast].max() < s.median_d[fast].min()
    assert np.isnan(s.n_segments).all()  # analysed without segments
    assert (s.immobile_fraction[fast] == 0).all()
    md = s.attrs["napari_step"]
    assert md["units"] == "um^2/s" and md["column_units"]["duration"] == "s"
    assert md["column_units"]["msd_d"] == "um^2/s"
    assert "0.01 um^2/s" in md["immobile_rule"]


def test_msd_alpha_of_directed_and_confined_motion():
    n = 300
    t = np.arange(n)
    rng = np.random.default_rng(1)
    directed = np.c_[2.0 * t, 0.5 * t] + rng.normal(0, 0.05, (n, 2))
    confined = rng.normal(0, 0.5, (n, 2))  # a particle rattling in place: MSD flat
    table = pd.concat(
        [
            pd.DataFrame({"track_id": 0, "frame": t, "y": directed[:, 0], "x": directed[:, 1]}),
            pd.DataFrame({"track_id": 1, "frame": t, "y": confined[:, 0], "x": confined[:, 1]}),
        ]
    )
    table["step_d"] = 1.0
    s = track_summary(table)
    assert s.msd_alpha[0] == pytest.approx(2.0, abs=0.05)
    assert abs(s.msd_alpha[1]) < 0.15
    assert s.attrs["napari_step"]["units"] == "px^2/frame"
    assert s.attrs["napari_step"]["column_units"]["duration"] == "frame"


def test_tamsd_honours_gaps_and_matches_the_per_track_estimator():
    rng = np.random.default_rng(2)
    table = brownian_table([0.3, 2.0, 0.05], n_frames=80, seed=2)
    table["step_d"] = 1.0
    ref = track_summary(table, max_lag=4)
    # whole-track TA-MSD D from lags 1, 2 as the TA-MSD module computes it
    for tid, g in table.groupby("track_id"):
        m = tamsd(g[["y", "x"]].to_numpy()[None], [1, 2])[0]
        assert ref.tamsd_d[tid] == pytest.approx((m[1] - m[0]) / 4)
    # drop frames: a displacement never spans a gap
    gapped = table.drop(index=rng.choice(len(table), 40, replace=False))
    s = track_summary(gapped, max_lag=4)
    for tid, g in gapped.groupby("track_id"):
        full = pd.DataFrame(index=np.arange(g.frame.min(), g.frame.max() + 1))
        pos = g.set_index("frame")[["y", "x"]].reindex(full.index).to_numpy()
        m = [np.nanmean(((pos[lag:] - pos[:-lag]) ** 2).sum(1)) for lag in (1, 2)]
        assert s.tamsd_d[tid] == pytest.approx((m[1] - m[0]) / 4)
        assert s.n_points[tid] == len(g)


def test_segments_states_and_immobile_fraction():
    frames = np.arange(10)
    t0 = pd.DataFrame(
        {
            "track_id": 7,
            "frame": frames,
            "y": frames * 1.0,
            "x": 0.0,
            "step_d": [0.001] * 4 + [1.0] * 6,
            "segment_d": [0.001] * 4 + [1.0] * 6,
            "changepoint": [False] * 4 + [True] + [False] * 5,
            "state": [0] * 4 + [2] * 6,
        }
    )
    # track 9: a gap (frame 5 missing) splits it into two analysed pieces, no change point
    f9 = np.array([0, 1, 2, 3, 4, 6, 7, 8])
    t9 = pd.DataFrame(
        {
            "track_id": 9,
            "frame": f9,
            "y": 0.0,
            "x": f9 * 2.0,
            "step_d": 0.5,
            "segment_d": 0.5,
            "changepoint": False,
            "state": [1] * 3 + [3] * 5,
        }
    )
    # track 11: never analysed
    t11 = t9.assign(track_id=11, step_d=np.nan, segment_d=np.nan, state=np.nan)
    table = pd.concat([t0, t9, t11], ignore_index=True)
    table.attrs["napari_step"] = {"units": "um^2/s", "pixel_size_um": 0.2, "frame_interval_s": 0.1}
    s = track_summary(table)
    assert list(s.track_id) == [7, 9]
    assert list(s.n_segments) == [2, 2]
    assert s.immobile_fraction.tolist() == [0.4, 0.0]
    assert s.time_immobile.tolist() == pytest.approx([0.4, 0.0])
    assert s.time_free.tolist() == pytest.approx([0.6, 0.0])
    assert s.time_confined.tolist() == pytest.approx([0.0, 0.3])
    assert s.time_directed.tolist() == pytest.approx([0.0, 0.5])
    assert s.attrs["napari_step"]["immobile_rule"].startswith("state 0")
    # without states the threshold decides
    no_state = track_summary(table.drop(columns="state"), immobile_d=0.01)
    assert no_state.immobile_fraction.tolist() == [0.4, 0.0]
    assert "time_free" not in no_state.columns
    assert len(track_summary(table, analysed_only=False)) == 3


def test_bad_inputs_are_refused_clearly():
    table = brownian_table([1.0], n_frames=20)
    with pytest.raises(ValueError, match="no 'step_d' column"):
        track_summary(table)
    table["step_d"] = 1.0
    with pytest.raises(ValueError, match="max_lag"):
        track_summary(table, max_lag=1)
    with pytest.raises(ValueError, match="frame interval"):
        track_summary(table, frame_interval=0)
    empty = track_summary(table.iloc[:0])  # no tracks: an empty table with every column
    assert len(empty) == 0 and "median_d" in empty.columns


def test_many_tracks_vectorised_equals_one_by_one():
    d_px = np.random.default_rng(3).uniform(0.05, 3, 2000)
    table = brownian_table(d_px, n_frames=30, seed=3)
    table["step_d"] = np.repeat(d_px, 30)
    s = track_summary(table)
    assert len(s) == 2000
    np.testing.assert_allclose(s.median_d, d_px)
    shuffled = track_summary(table.sample(frac=1.0, random_state=0))  # order does not matter
    pd.testing.assert_frame_equal(shuffled, s)
    np.testing.assert_allclose(s.d_p16, d_px)  # constant D per track: every quantile is D
    for tid in (0, 777, 1999):
        one = track_summary(table[table.track_id == tid])
        pd.testing.assert_series_equal(one.iloc[0], s.iloc[tid], check_names=False)


def test_real_colloid_movie_one_row_per_analysed_track():
    from napari_step.tracks import detect, link

    movie = np.load(Path(__file__).parent / "data" / "bulk_water_clip.npz")["movie"]
    tracks = link(detect(movie, 11, minmass=100, invert=True), 5, memory=3, min_length=50)
    res, summary = analyse_tracks(tracks, pixel_size=100 / 285, frame_interval=1 / 24)
    s = track_summary(res)
    analysed = res.groupby("track_id").step_d.apply(lambda d: d.notna().any())
    assert list(s.track_id) == list(analysed.index[analysed])
    assert len(s) >= 30
    # freely diffusing colloids: MSD linear in time, the three D estimates agree within 2x
    assert 0.7 < s.msd_alpha.median() < 1.3
    assert 0.5 < np.median(s.median_d / s.tamsd_d) < 2.0
    assert 0.5 < np.median(s.median_d / s.msd_d) < 2.0
    assert (s.duration > 49 / 24 - 1e-9).all()


def test_public_msd_helpers_agree_with_the_summary():
    from napari_step.track_summary import fit_msd, tamsd_per_track

    table = brownian_table([0.2, 1.5], n_frames=120, seed=4)
    table["step_d"] = 1.0
    ids, msd, counts = tamsd_per_track(table, [1, 2, 3, 4])
    assert ids.tolist() == [0, 1] and counts[:, 0].tolist() == [119, 119]
    k, alpha = fit_msd(msd, [1, 2, 3, 4], dim=2)
    s = track_summary(table, max_lag=4)
    np.testing.assert_allclose(k, s.msd_d)
    np.testing.assert_allclose(alpha, s.msd_alpha)
    k1, a1 = fit_msd(msd[1], [1, 2, 3, 4], dim=2, max_lag=2)  # one curve, two lags
    assert a1[0] == pytest.approx(np.log(msd[1, 1] / msd[1, 0]) / np.log(2))
    with pytest.raises(ValueError, match="lags"):
        tamsd_per_track(table, [0, 1])


def test_d_spread_matches_numpy_quantiles_with_missing_frames():
    rng = np.random.default_rng(5)
    table = brownian_table(np.ones(40), n_frames=25, seed=5)
    d = rng.lognormal(0, 1, len(table))
    d[rng.random(len(table)) < 0.3] = np.nan
    table["step_d"] = d
    s = track_summary(table)
    for tid, g in table.groupby("track_id"):
        vals = g.step_d.dropna().to_numpy()
        np.testing.assert_allclose(
            s.loc[s.track_id == tid, ["median_d", "d_p16", "d_p84"]].to_numpy()[0],
            np.quantile(vals, [0.5, 0.16, 0.84]),
        )
        assert s.n_analysed[s.track_id == tid].item() == len(vals)
