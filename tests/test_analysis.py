import numpy as np
import pandas as pd
import pytest

from napari_step.analysis import RESULT_COLUMNS, analyse_tracks
from napari_step.simulate import brownian_changepoints


def table_from(positions, start_id=0):
    n, t, _ = positions.shape
    return pd.DataFrame(
        {
            "track_id": np.repeat(np.arange(start_id, start_id + n), t),
            "frame": np.tile(np.arange(t), n),
            "y": positions[..., 0].ravel(),
            "x": positions[..., 1].ravel(),
        }
    )


@pytest.fixture(scope="module")
def sim():
    return brownian_changepoints(6, 120, 2, 1, d_range=(0.05, 5), rng=np.random.default_rng(0))


def test_units_and_columns(sim):
    table = table_from(sim.positions)
    before = table.copy()
    px, dt = 0.2, 0.05
    res, summary = analyse_tracks(table, px, dt)
    assert table.equals(before)  # user data untouched
    assert all(c in res for c in RESULT_COLUMNS)
    assert summary.units == "um^2/s" and res.attrs["napari_step"]["pixel_size_um"] == px
    raw, _ = analyse_tracks(table)
    assert np.allclose(res.step_d, raw.step_d * px**2 / dt)
    assert np.allclose(res.step_log10_d, np.log10(res.step_d))
    ratio = res.step_d.to_numpy() / (sim.d.ravel() * px**2 / dt)
    assert np.median(np.abs(np.log10(ratio))) < 0.15


def test_selected_tracks_only_others_nan(sim):
    table = table_from(sim.positions)
    res, summary = analyse_tracks(table, track_ids=[1, 4])
    done = res.groupby("track_id").step_d.apply(lambda s: s.notna().any())
    assert done[done].index.tolist() == [1, 4] and summary.n_tracks == 2
    res2, _ = analyse_tracks(table, min_length=121)
    assert res2.step_d.isna().all()


def test_gaps_split_tracks_and_stay_nan(sim):
    table = table_from(sim.positions[:1])
    gappy = table[~table.frame.isin([50, 51])].copy()
    gappy.loc[gappy.frame == 80, "x"] = np.nan
    gappy.loc[gappy.frame == 100, "y"] = np.inf
    res, summary = analyse_tracks(gappy)
    assert len(res) == len(gappy) and summary.n_gaps == 3 and summary.n_nonfinite == 2
    assert res.loc[res.frame.isin([80, 100]), "step_d"].isna().all()
    assert "2 point(s) with non-finite positions were skipped" in summary.messages
    piece = res[(res.frame < 50)]
    assert piece.step_d.notna().all()
    # the piece is analysed on its own: same result as analysing it as a separate track
    alone, _ = analyse_tracks(table[table.frame < 50])
    assert np.allclose(piece.step_d, alone.step_d)


def test_short_tracks_counted_not_fatal():
    rng = np.random.default_rng(1)
    table = pd.concat(
        [
            table_from(rng.standard_normal((1, n, 2)).cumsum(1), i)
            for i, n in enumerate([1, 2, 5, 40])
        ]
    )
    res, summary = analyse_tracks(table)
    assert summary.n_short_pieces == 3
    assert "3 track piece(s) too short" in summary.messages[0]
    assert res[res.track_id == 3].step_d.notna().all()


def test_empty_and_bad_parameters():
    empty = pd.DataFrame({"track_id": [], "frame": [], "y": [], "x": []})
    res, summary = analyse_tracks(empty)
    assert res.empty and summary.messages == ["no tracks to analyse"]
    with pytest.raises(ValueError, match="pixel size"):
        analyse_tracks(empty, pixel_size=0)
    with pytest.raises(ValueError, match="frame interval"):
        analyse_tracks(empty, frame_interval=-1)


def test_one_and_three_dimensional_tables():
    rng = np.random.default_rng(2)
    p3 = rng.standard_normal((2, 60, 3)).cumsum(1)
    t3 = table_from(p3[..., 1:]).assign(z=p3[..., 0].ravel())
    res, _ = analyse_tracks(t3)
    assert res.step_d.notna().all() and abs(np.log10(res.step_d.median() / 0.5)) < 0.2
    t1 = table_from(p3[..., :2]).drop(columns="y")  # 1-D tracks along x
    res1, _ = analyse_tracks(t1)
    assert res1.step_d.notna().all() and abs(np.log10(res1.step_d.median() / 0.5)) < 0.25


def test_segments_option_finds_the_change_and_units():
    rng = np.random.default_rng(7)
    d = np.where(np.arange(200) < 120, 0.1, 10.0)  # the step 120 -> 121 is the first fast one
    steps = rng.standard_normal((3, 200, 2)) * np.sqrt(2 * d)[None, :, None]
    pos = np.concatenate([np.zeros((3, 1, 2)), steps[:, :-1].cumsum(1)], axis=1)
    table = table_from(pos, start_id=5)
    table["frame"] += 30  # tracks starting later in the movie
    res, summary = analyse_tracks(table, 0.1, 0.5, segments=True)
    seg = summary.segments
    assert seg.track_id.tolist().count(5) == 2 and len(seg) == 6
    second = seg[seg.segment == 1]
    assert (np.abs(second.start_frame - 150) <= 3).all()
    first = seg[seg.segment == 0]
    assert np.allclose(first.d, 0.1 * 0.1**2 / 0.5, rtol=0.25)
    assert np.allclose(second.d, 10 * 0.1**2 / 0.5, rtol=0.25)
    assert res.changepoint.sum() == 3
    cps = res[res.changepoint]
    assert (np.abs(cps.frame - 150) <= 3).all()
    assert np.allclose(res.segment_d[res.frame < 140], 0.1 * 0.02, rtol=0.25)


def test_real_colloids_have_flat_consistent_d():
    """Real bright-field movie of freely diffusing colloids (trackpy's bulk-water clip): D is
    flat along tracks, consistent across particles, and STEP agrees with TA-MSD within 2x."""
    from pathlib import Path

    from napari_step.tracks import detect, link

    movie = np.load(Path(__file__).parent / "data" / "bulk_water_clip.npz")["movie"]
    tracks = link(detect(movie, 11, minmass=100, invert=True), 5, memory=3, min_length=50)
    res, _ = analyse_tracks(tracks, pixel_size=100 / 285, frame_interval=1 / 24)
    per_track = []
    for _, g in res.groupby("track_id"):
        d = g.step_d.dropna().to_numpy()
        if len(d) >= 40:
            half = len(d) // 2
            per_track.append(
                (np.median(d[:half]), np.median(d[half:]), np.median(d), np.nanmedian(g.tamsd_d))
            )
    per_track = np.array(per_track)
    assert len(per_track) >= 30
    drift = np.log10(per_track[:, 1] / per_track[:, 0])
    assert abs(np.median(drift)) < 0.1  # no trend in time
    spread = np.subtract(*np.percentile(np.log10(per_track[:, 2]), [75, 25]))
    assert spread < 0.35  # particles of one kind: similar D
    ratio = np.median(per_track[:, 2] / per_track[:, 3])
    assert 0.5 < ratio < 2.0


def test_alpha_option_shares_the_pieces_with_d(sim):
    """alpha=True predicts alpha per gap-free piece in the same run: the values equal
    predict_alpha on each piece alone, gap rows stay NaN, and the metadata names the model."""
    from napari_step.predict import predict_alpha

    table = table_from(sim.positions[:2])
    gappy = table[table.frame != 60].reset_index(drop=True)
    res, summary = analyse_tracks(gappy, 0.1, 0.5, alpha=True)
    assert summary.n_gaps == 2 and res.attrs["napari_step"]["alpha_model"] == "default"
    first = res[(res.track_id == 0) & (res.frame < 60)]
    alone = predict_alpha(sim.positions[0, :60])[0]
    np.testing.assert_allclose(first.step_alpha, alone, atol=1e-6)
    assert res.step_alpha.notna().all() and res.step_d.notna().all()
    # Brownian tracks: alpha near 1
    assert abs(np.median(res.step_alpha) - 1) < 0.25
    plain, _ = analyse_tracks(gappy, 0.1, 0.5)
    assert "step_alpha" not in plain.columns
    np.testing.assert_allclose(plain.step_d, res.step_d)


def test_gap_free_pieces_and_match_rows():
    from napari_step.analysis import gap_free_pieces, match_rows
    from napari_step.tracks import validate_table

    table = pd.DataFrame(
        {
            "track_id": [3, 3, 3, 3, 8, 8],
            "frame": [0, 1, 3, 4, 5, 6],
            "y": [0.0, 1, 2, np.nan, 0, 1],
            "x": [0.0, 1, 2, 3, 0, 1],
        }
    )
    pieces = gap_free_pieces(validate_table(table))
    assert pieces.track_ids == [3, 3, 8] and pieces.first_frames == [0, 3, 5]
    assert [r.tolist() for r in pieces.rows] == [[0, 1], [2], [4, 5]]
    assert pieces.n_gaps == 1 and pieces.n_nonfinite == 1 and pieces.n_tracks == 2
    assert len(gap_free_pieces(validate_table(table), track_ids=[8])) == 1
    assert len(gap_free_pieces(validate_table(table), min_length=3)) == 2  # track 8 too short
    rows = match_rows(table.track_id, table.frame, [8, 3, 3, 9], [6, 3, 2, 0])
    assert rows.tolist() == [5, 2, -1, -1]


def test_states_option_gives_the_most_probable_state_per_frame():
    """states=True: per-row AnDi-2 state from the shipped state model, piece by piece; a free
    Brownian track reads mostly "free" (2), a still one mostly "immobile" (0)."""
    from napari_step.states import predict_state

    rng = np.random.default_rng(4)
    free = rng.standard_normal((1, 150, 2)).cumsum(1)
    still = rng.standard_normal((1, 150, 2)) * 0.05  # only localisation noise
    table = pd.concat([table_from(free), table_from(still, start_id=1)], ignore_index=True)
    res, _ = analyse_tracks(table, states=True)
    assert res.attrs["napari_step"]["state_model"] == "default"
    s0 = res[res.track_id == 0].step_state.to_numpy()
    s1 = res[res.track_id == 1].step_state.to_numpy()
    assert np.mean(s0 == 2) > 0.8 and np.mean(s1 == 0) > 0.8
    np.testing.assert_array_equal(s0, np.argmax(predict_state(free)[0], axis=1))


def test_segment_table_gives_duration_alpha_state_and_confinement_radius():
    """Per segment: duration (s when calibrated), median alpha, majority state and, for confined
    segments, the compartment radius (um) within 25 % of the simulated one; NaN elsewhere."""
    from napari_step.simulate.phenom_spatial import confinement

    radius, px, dt = 3.0, 0.1, 0.05
    sim = confinement(
        3, 300, d=(1.0, 1.0), radius=radius, transmittance=0.0, start_inside=True, sigma=0.05,
        rng=1,
    )  # fmt: skip
    free = np.random.default_rng(2).standard_normal((1, 300, 2)).cumsum(1) * 1.5
    table = pd.concat([table_from(sim.positions), table_from(free, start_id=3)], ignore_index=True)
    res, summary = analyse_tracks(table, px, dt, segments=True, alpha=True, states=True)
    seg = summary.segments
    # durations (s) sum to each analysed track's length
    assert np.allclose(seg.groupby("track_id").duration.sum(), 300 * dt)
    assert np.allclose(seg.duration, seg.n_frames * dt)
    for _, s in seg.iterrows():
        rows = res[
            (res.track_id == s.track_id) & res.frame.between(s.start_frame, s.stop_frame - 1)
        ]
        assert s.alpha == pytest.approx(rows.step_alpha.median())
        assert s.state == rows.step_state.value_counts().idxmax()
    confined = seg[seg.track_id < 3]
    assert (confined.state == 1).all()
    assert np.allclose(confined.confinement_radius, radius * px, rtol=0.25)
    assert (seg.confinement_radius.isna() == (seg.state != 1)).all()
    assert (seg[seg.track_id == 3].state == 2).all()
    # uncalibrated: frames and px; no alpha/state/radius columns unless asked for
    _, plain = analyse_tracks(table[table.track_id == 0], segments=True)
    assert plain.segments.duration.sum() == 300 and plain.segments.duration.dtype.kind == "i"
    assert not {"alpha", "state", "confinement_radius"} & set(plain.segments.columns)


def test_confinement_radius_of_a_uniform_disc_and_bad_input():
    from napari_step.analysis import confinement_radius

    rng = np.random.default_rng(3)
    r = 4.0 * np.sqrt(rng.uniform(size=20000))
    phi = rng.uniform(0, 2 * np.pi, 20000)
    disc = np.c_[r * np.cos(phi), r * np.sin(phi)] + 7.0
    assert confinement_radius(disc) == pytest.approx(4.0, rel=0.02)
    assert np.isnan(confinement_radius(disc[:2]))
    with pytest.raises(ValueError, match="shape"):
        confinement_radius(np.zeros(5))
