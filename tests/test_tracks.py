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
    det = pd.DataFrame(
        {
            "frame": frames,
            "y": 10 + rng.normal(0, 0.2, len(frames)),
            "x": 10 + rng.normal(0, 0.2, len(frames)),
        }
    )
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
    t = pd.DataFrame(
        {
            "track_id": [2, 2, 1],
            "frame": [1, 0, 0],
            "y": [1.0, 2, 3],
            "x": [4.0, 5, 6],
            "mass": [7.0, 8, 9],
        }
    )
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
    unsorted = pd.DataFrame(
        {"track_id": [1, 1, 1], "frame": [2, 0, 1], "y": [2.0, 0, 1], "x": [0.0, 0, 0]}
    )
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


CLIP = __import__("pathlib").Path(__file__).parent / "data" / "bulk_water_clip.npz"


def test_link_leaves_trackpy_logging_alone(small_sample, caplog):
    """Issue 12: ``link`` used ``tp.quiet()``, silencing trackpy for the whole process."""
    import logging

    import trackpy as tp

    logger = logging.getLogger("trackpy")
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        det = detect(small_sample[0][:5], 7, minmass=400)
        with caplog.at_level(logging.INFO, logger="trackpy"):
            link(det, search_range=6)
            assert not [r for r in caplog.records if r.name.startswith("trackpy")]  # quiet inside
            assert logger.level == logging.INFO  # ...and only inside
            tp.link(det, 6)  # the user's own trackpy calls still report
        assert any(r.name.startswith("trackpy") for r in caplog.records)
    finally:
        logger.setLevel(old)


def test_parallel_detection_matches_serial():
    from napari_step.tracks import iter_locate

    movie = np.load(CLIP)["movie"][:12]
    serial = detect(movie, 11, minmass=50, invert=True)
    steps = []
    parallel = detect(
        movie, 11, minmass=50, invert=True, processes=2, progress=lambda d, n: steps.append((d, n))
    )
    pd.testing.assert_frame_equal(serial, parallel)
    assert steps[-1] == (12, 12)
    chunks = list(iter_locate(movie, 11, minmass=50, invert=True, chunk=5))
    assert [d for d, _ in chunks] == [5, 10, 12]


def test_suggestions_on_the_real_clip_and_the_sample(small_sample):
    """Issue 14 item 6: suggested parameters find the ~110 colloids of the real clip (the
    defaults find almost none) and the 12 rendered spots of the sample."""
    from napari_step.detection_hints import (
        suggest_detection,
        suggest_diameter,
        suggest_invert,
        suggest_minmass,
    )
    from napari_step.tracks import locate_frame

    movie = np.load(CLIP)["movie"]
    assert len(locate_frame(movie[0], 0, 7, minmass=400)) <= 5  # the old defaults
    for t in (0, 30, 59):
        hint = suggest_detection(movie[t])
        assert hint.invert and hint.diameter == 11
        assert 85 <= hint.n_found <= 140
    sample = small_sample[0]
    for t in (0, 20, 39):
        hint = suggest_detection(sample[t])
        assert not hint.invert and hint.diameter in (7, 9)
        assert hint.n_found == 12  # the noise blobs are below the suggested min. mass
        assert len(hint.features) > 20
    # the pieces on their own
    assert suggest_invert(255 - sample[0]) and not suggest_invert(255 - movie[0])
    assert suggest_diameter(sample[0], invert=False) == 9
    assert suggest_minmass([]) == 0.0 and suggest_minmass([5.0] * 3) == 0.0
    rng = np.random.default_rng(0)
    two_modes = np.concatenate([rng.normal(50, 10, 300), rng.normal(2000, 200, 40)])
    assert 100 < suggest_minmass(two_modes) < 1500
