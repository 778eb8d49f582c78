import numpy as np
import pandas as pd
import pytest

from napari_step.sample import make_sample
from napari_step.tracks import (
    TrackTableError,
    contiguous_runs,
    detect,
    from_napari,
    link,
    split_tracks,
    to_napari,
    validate_table,
)


@pytest.fixture(scope="module")
def small_sample():
    return make_sample(n_particles=12, n_frames=40, shape=(128, 128), seed=3)


@pytest.fixture(scope="module")
def linked(small_sample):
    movie, _ = small_sample
    det = detect(movie, 7, minmass=400)
    return det, link(det, search_range=6, memory=2, min_length=10)


def test_detection_finds_rendered_particles(small_sample, linked):
    movie, truth = small_sample
    det, _ = linked
    per_frame = det.groupby("frame").size().reindex(range(40), fill_value=0)
    assert abs(per_frame.mean() - 12) <= 1.0
    # every detection lies within 1 px of a true particle position
    t0 = truth[truth.frame == 0][["y", "x"]].to_numpy()
    d0 = det[det.frame == 0][["y", "x"]].to_numpy()
    dist = np.sqrt(((d0[:, None] - t0[None]) ** 2).sum(-1)).min(1)
    assert (dist < 1.0).mean() > 0.9


def test_linking_recovers_tracks(small_sample, linked):
    _, truth = small_sample
    _, tracks = linked
    assert list(tracks.columns[:4]) == ["track_id", "frame", "y", "x"]
    recovered = 0
    for tid, g in truth.groupby("track_id"):
        first = g[g.frame == 0][["y", "x"]].to_numpy()[0]
        cand = tracks[tracks.frame == 0]
        if cand.empty:
            continue
        j = np.argmin(((cand[["y", "x"]].to_numpy() - first) ** 2).sum(1))
        mine = tracks[tracks.track_id == cand.track_id.iloc[j]]
        merged = mine.merge(g, on="frame", suffixes=("", "_true"))
        err = np.hypot(merged.y - merged.y_true, merged.x - merged.x_true)
        if len(mine) >= 35 and (err < 1.0).mean() > 0.95:
            recovered += 1
    assert recovered >= 10


def test_memory_gaps_stay_explicit():
    rng = np.random.default_rng(0)
    frames = [f for f in range(20) if f not in (7, 8)]
    det = pd.DataFrame({"frame": frames, "y": 10 + rng.normal(0, 0.2, len(frames)),
                        "x": 10 + rng.normal(0, 0.2, len(frames))})
    tracks = link(det, search_range=3, memory=3)
    assert tracks.track_id.nunique() == 1
    assert 7 not in tracks.frame.values  # no invented rows
    [arr] = split_tracks(tracks)
    assert len(arr.frames) == 20 and np.isnan(arr.positions[7:9]).all()
    assert (arr.rows[7:9] == -1).all()
    assert contiguous_runs(np.isfinite(arr.positions).all(1)) == [(0, 7), (9, 20)]


def test_link_without_memory_splits_at_gap():
    det = pd.DataFrame({"frame": [0, 1, 2, 5, 6], "y": [1.0] * 5, "x": [1.0] * 5})
    assert link(det, 2, memory=0).track_id.nunique() == 2
    assert link(det.iloc[:0], 2).empty


def test_napari_round_trip_2d_and_3d():
    t = pd.DataFrame({"track_id": [2, 2, 1], "frame": [1, 0, 0], "y": [1.0, 2, 3],
                      "x": [4.0, 5, 6], "mass": [7.0, 8, 9]})
    data, feats = to_napari(t)
    assert data.tolist() == [[1, 0, 3, 6], [2, 0, 2, 5], [2, 1, 1, 4]]
    assert feats["mass"].tolist() == [9, 8, 7]
    back = from_napari(data, feats)
    assert back.equals(validate_table(t))
    t3 = t.assign(z=[0.5, 1.5, 2.5])
    data3, _ = to_napari(t3)
    assert data3.shape == (3, 5)
    assert from_napari(data3).z.tolist() == [2.5, 1.5, 0.5]


def test_validate_table_errors_and_no_mutation():
    t = pd.DataFrame({"track_id": [1, 1], "frame": [0, 0], "y": [0.0, 1], "x": [0.0, 1]})
    with pytest.raises(TrackTableError, match="track 1 has frame 0 more than once"):
        validate_table(t)
    with pytest.raises(TrackTableError, match="lacks column"):
        validate_table(t.drop(columns="frame"))
    bad = t.assign(frame=[0, 1]).astype({"x": object})
    bad.loc[1, "x"] = "abc"
    with pytest.raises(TrackTableError, match="non-numeric"):
        validate_table(bad)
    unsorted = pd.DataFrame({"track_id": [1, 1, 1], "frame": [2, 0, 1], "y": [2.0, 0, 1],
                             "x": [0.0, 0, 0]})
    before = unsorted.copy()
    out = validate_table(unsorted)
    assert out.frame.tolist() == [0, 1, 2] and out.y.tolist() == [0, 1, 2]
    assert unsorted.equals(before)


def test_real_movie_detection_and_linking():
    """Real bright-field frames of colloids (trackpy's bulk-water data, committed clip)."""
    from pathlib import Path

    movie = np.load(Path(__file__).parent / "data" / "bulk_water_clip.npz")["movie"]
    det = detect(movie, 11, minmass=100, invert=True)
    per_frame = det.groupby("frame").size()
    assert per_frame.min() > 60 and per_frame.std() < 0.1 * per_frame.mean()
    tracks = link(det, 5, memory=3, min_length=25)
    lengths = tracks.groupby("track_id").size()
    assert (lengths >= 50).sum() >= 40
